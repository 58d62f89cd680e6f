//! The state lock across real processes: exclusion, the holder's pid in
//! the error, and a holder killed with kill -9 never wedging it.

use habeat::state::{LockError, StateLock};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Helper process: takes the lock, says so, holds it for the given time.
#[test]
#[ignore = "helper: run by the tests below in a child process"]
fn helper_hold_lock() {
    let Ok(dir) = std::env::var("HABEAT_LOCK_HELPER_DIR") else {
        return;
    };
    let hold: u64 = std::env::var("HABEAT_LOCK_HELPER_HOLD_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60_000);
    let lock = StateLock::acquire(Path::new(&dir), Duration::from_secs(10)).expect("helper lock");
    println!("\nLOCKED {}", std::process::id());
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_millis(hold));
    drop(lock);
}

fn spawn_holder(dir: &Path, hold_ms: u64) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "state_lock::helper_hold_lock",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HABEAT_LOCK_HELPER_DIR", dir)
        .env("HABEAT_LOCK_HELPER_HOLD_MS", hold_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn helper");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("LOCKED ") {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the helper took the lock (did not hang)");
    child
}

#[test]
fn a_second_habeat_waits_then_fails_naming_the_holder_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut holder = spawn_holder(dir.path(), 60_000);
    let err = StateLock::acquire(dir.path(), Duration::from_millis(300)).expect_err("busy");
    match &err {
        LockError::Busy { holder_pid, .. } => assert_eq!(*holder_pid, Some(holder.id())),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(err.exit_code(), habeat::exit::LOCKED);
    let msg = err.to_string();
    assert!(msg.contains(&format!("pid {}", holder.id())), "{msg}");
    assert_eq!(StateLock::holder_pid(dir.path()), Some(holder.id()));
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_holder_killed_with_kill_9_never_wedges_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut holder = spawn_holder(dir.path(), 60_000);
    holder.kill().expect("SIGKILL");
    holder.wait().expect("reaped");
    let started = Instant::now();
    let lock = StateLock::acquire(dir.path(), Duration::from_secs(20)).expect("lock after kill -9");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(StateLock::holder_pid(dir.path()), Some(std::process::id()));
    drop(lock);
}

#[test]
fn a_waiting_habeat_gets_the_lock_when_the_holder_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut holder = spawn_holder(dir.path(), 300);
    let lock = StateLock::acquire(dir.path(), Duration::from_secs(30)).expect("lock after release");
    drop(lock);
    let _ = holder.wait();
}

#[test]
fn two_locks_in_one_process_also_exclude_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = StateLock::acquire(dir.path(), Duration::ZERO).expect("first");
    assert!(matches!(
        StateLock::acquire(dir.path(), Duration::from_millis(100)),
        Err(LockError::Busy { .. })
    ));
    drop(first);
    StateLock::acquire(dir.path(), Duration::ZERO).expect("after drop");
}
