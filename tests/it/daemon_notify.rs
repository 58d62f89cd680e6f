//! sd_notify messages reach a real unix datagram socket, as systemd's would.

use habeat::daemon::Notifier;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

/// A socket standing in for systemd's notify socket.
struct FakeSystemd {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    sock: UnixDatagram,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        FakeSystemd {
            _dir: dir,
            path,
            sock,
        }
    }

    fn recv(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).expect("a notification within 10s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }
}

#[test]
fn messages_arrive_in_order_with_systemd_fields() {
    let sd = FakeSystemd::new();
    let n = Notifier::to_socket(&sd.path, Some(Duration::from_secs(20)));
    assert!(n.is_enabled());
    assert_eq!(n.watchdog_ping_interval(), Some(Duration::from_secs(10)));

    n.ready("peer primary: appserver Up").unwrap();
    n.watchdog().unwrap();
    n.status("peer primary: appserver Down\nREADY=1").unwrap();
    n.reloading().unwrap();
    n.ready("reloaded").unwrap();
    n.stopping("stopping").unwrap();
    n.extend_timeout(Duration::from_secs(20)).unwrap();

    assert_eq!(sd.recv(), "READY=1\nSTATUS=peer primary: appserver Up\n");
    assert_eq!(sd.recv(), "WATCHDOG=1\n");
    // A status cannot smuggle in a second field.
    assert_eq!(sd.recv(), "STATUS=peer primary: appserver Down READY=1\n");
    let reloading = sd.recv();
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"));
    let mono = lines.next().unwrap();
    let usec: u64 = mono
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("expected MONOTONIC_USEC, got {mono:?}"))
        .parse()
        .unwrap();
    // CLOCK_MONOTONIC counts from boot: positive, and not wall-clock time
    // (that would be > 1.6e15 µs).
    assert!(usec > 0 && usec < 1_600_000_000_000_000, "{usec}");
    assert_eq!(sd.recv(), "READY=1\nSTATUS=reloaded\n");
    assert_eq!(sd.recv(), "STOPPING=1\nSTATUS=stopping\n");
    assert_eq!(sd.recv(), "EXTEND_TIMEOUT_USEC=20000000\n");
}

#[test]
fn abstract_socket_names_work() {
    let name = format!("habeat-daemon-test-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    Notifier::to_socket(format!("@{name}"), None)
        .watchdog()
        .unwrap();
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"WATCHDOG=1\n");
}

#[test]
fn a_missing_socket_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let n = Notifier::to_socket(dir.path().join("nobody-listens"), None);
    assert!(n.ready("x").is_err());
}

/// The half of `from_env_reads_notify_socket_and_watchdog` that runs in a
/// child process with the environment systemd would give it.
#[test]
#[ignore = "run by from_env_reads_notify_socket_and_watchdog in a child"]
fn child_notifies_from_env() {
    if std::env::var_os("HABEAT_TEST_CHILD").is_none() {
        return;
    }
    let n = Notifier::from_env();
    let wd = n
        .watchdog_timeout()
        .map(|d| d.as_micros().to_string())
        .unwrap_or_else(|| "none".into());
    n.ready(&format!("child watchdog={wd}")).unwrap();
}

fn run_child(envs: &[(&str, String)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "daemon_notify::child_notifies_from_env",
        "--ignored",
        "--nocapture",
    ])
    .env("HABEAT_TEST_CHILD", "1")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("WATCHDOG_USEC")
    .env_remove("WATCHDOG_PID");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn from_env_reads_notify_socket_and_watchdog() {
    let sd = FakeSystemd::new();
    let path = sd.path.to_string_lossy().into_owned();
    run_child(&[
        ("NOTIFY_SOCKET", path.clone()),
        ("WATCHDOG_USEC", "30000000".into()),
    ]);
    assert_eq!(sd.recv(), "READY=1\nSTATUS=child watchdog=30000000\n");

    // WATCHDOG_PID naming another process: the watchdog is not ours.
    run_child(&[
        ("NOTIFY_SOCKET", path),
        ("WATCHDOG_USEC", "30000000".into()),
        ("WATCHDOG_PID", "1".into()),
    ]);
    assert_eq!(sd.recv(), "READY=1\nSTATUS=child watchdog=none\n");

    // No NOTIFY_SOCKET: silently nothing (the child still succeeds).
    run_child(&[]);
    sd.sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(sd.sock.recv(&mut buf).is_err(), "nothing may arrive");
}
