//! The hook runner and the on_event dispatcher, with real processes.

use crate::fake_carbonio;

use fake_carbonio::process_alive;
use habeat::act::hooks::{EventDispatcher, HookEnv, HookRunner, OnFailure};
use habeat::config::HookCommand;
use std::path::Path;
use std::time::{Duration, Instant};

fn argv(v: &[&str]) -> HookCommand {
    HookCommand::Argv(v.iter().map(|s| s.to_string()).collect())
}

fn shell(s: &str) -> HookCommand {
    HookCommand::Shell(s.to_owned())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn pid_in(p: &Path) -> i32 {
    read(p).trim().parse().expect("a pid")
}

async fn wait_dead(pids: &[i32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| process_alive(p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !pids.iter().any(|&p| process_alive(p))
}

async fn wait_for_file(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hooks_run_in_order_and_get_data_only_through_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let marker = dir.path().join("pwned");
    let hostile = format!("$(touch {}) `touch {}`", marker.display(), marker.display());
    let env = HookEnv::new()
        .set("out", out.display().to_string())
        .set("source_host", "mbox1.example.com")
        .set("accounts", &hostile);
    let hooks = [
        shell("echo \"one $HABEAT_SOURCE_HOST\" >> \"$HABEAT_OUT\""),
        argv(&[
            "/bin/sh",
            "-c",
            "echo \"two $HABEAT_ACCOUNTS\" >> \"$HABEAT_OUT\"",
        ]),
        shell("echo three >> \"$HABEAT_OUT\""),
    ];
    let report = HookRunner::new(Duration::from_secs(20))
        .run_all(&hooks, &env, OnFailure::Stop)
        .await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        read(&out),
        format!("one mbox1.example.com\ntwo {hostile}\nthree\n")
    );
    assert!(!marker.exists(), "data was interpreted by a shell");
    assert_eq!(report.outcomes.len(), 3);
    assert!(report.outcomes.iter().all(|o| o.exit_code == Some(0)));
}

#[tokio::test]
async fn hooks_do_not_inherit_habeats_environment() {
    let report = HookRunner::new(Duration::from_secs(20))
        .run_all(
            &[argv(&["/usr/bin/env"])],
            &HookEnv::new().set("event", "promotion"),
            OnFailure::Stop,
        )
        .await;
    let tail = &report.outcomes[0].tail;
    let keys: Vec<&str> = tail
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(tail.contains("HABEAT_EVENT=promotion"), "{tail}");
    // /tmp is read-only under the shipped units: mktemp goes to /var/tmp.
    assert!(tail.contains("TMPDIR=/var/tmp"), "{tail}");
    for k in &keys {
        assert!(
            ["PATH", "HOME", "LANG", "TMPDIR"].contains(k) || k.starts_with("HABEAT_"),
            "hook saw {k}: {tail}"
        );
    }
}

#[tokio::test]
async fn a_failed_hook_is_reported_and_stop_or_continue_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let after = dir.path().join("after");
    let env = HookEnv::new().set("after", after.display().to_string());
    let hooks = [
        shell("echo failing on purpose >&2; exit 3"),
        shell("touch \"$HABEAT_AFTER\""),
    ];
    let runner = HookRunner::new(Duration::from_secs(20));

    let r = runner.run_all(&hooks, &env, OnFailure::Stop).await;
    assert!(!r.ok());
    assert_eq!(r.outcomes.len(), 1);
    assert_eq!(r.outcomes[0].exit_code, Some(3));
    assert!(r.outcomes[0].tail.contains("failing on purpose"));
    assert!(
        r.outcomes[0]
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("exited with code 3"))
    );
    assert_eq!(r.skipped.len(), 1);
    assert!(!after.exists(), "Stop ran a hook after a failure");

    let r = runner.run_all(&hooks, &env, OnFailure::Continue).await;
    assert!(!r.ok(), "a failure stays a failure even when the rest ran");
    assert_eq!(r.failures().count(), 1);
    assert!(after.exists(), "Continue skipped a hook");

    let r = runner
        .run_all(&[argv(&["/nonexistent/hook"])], &env, OnFailure::Stop)
        .await;
    assert!(!r.ok());
    assert!(
        r.outcomes[0]
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("could not start") && f.contains("/nonexistent/hook"))
    );
}

#[tokio::test]
async fn a_hook_running_over_its_timeout_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let env = HookEnv::new().set("pids", pids.display().to_string());
    let started = Instant::now();
    let r = HookRunner::new(Duration::from_secs(1))
        .run_all(
            &[shell(
                "echo $$ > \"$HABEAT_PIDS.sh\"; sleep 300 & echo $! > \"$HABEAT_PIDS\"; wait",
            )],
            &env,
            OnFailure::Stop,
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(30), "did not hang");
    let o = &r.outcomes[0];
    assert!(o.timed_out && !o.ok && o.exit_code.is_none(), "{o:?}");
    assert!(
        o.failure
            .as_deref()
            .is_some_and(|f| f.contains("hooks.timeout"))
    );
    let sh = pid_in(&dir.path().join("pids.sh"));
    let sleeper = pid_in(&pids);
    assert!(
        wait_dead(&[sh, sleeper]).await,
        "a process of the hook survived"
    );
}

#[tokio::test]
async fn on_event_hooks_get_the_event_json_on_stdin_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("events");
    let d = EventDispatcher::spawn(
        HookRunner::new(Duration::from_secs(20)),
        vec![shell(
            "{ printf '%s ' \"$HABEAT_EVENT\"; cat; } >> \"$HABEAT_LOG\"",
        )],
        16,
    );
    for i in 0..3 {
        let env = HookEnv::new()
            .set("event", format!("e{i}"))
            .set("log", log.display().to_string());
        assert!(d.dispatch(&serde_json::json!({"seq": i, "kind": "verdict"}), env));
    }
    let stats = d.close(Duration::from_secs(20)).await;
    assert_eq!(stats.delivered, 3);
    assert_eq!((stats.dropped, stats.failed), (0, 0));
    let lines: Vec<String> = read(&log).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            r#"e0 {"kind":"verdict","seq":0}"#,
            r#"e1 {"kind":"verdict","seq":1}"#,
            r#"e2 {"kind":"verdict","seq":2}"#,
        ]
    );
}

#[tokio::test]
async fn a_slow_on_event_hook_never_blocks_the_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let env = HookEnv::new().set("pids", pids.display().to_string());
    let d = EventDispatcher::spawn(
        HookRunner::new(Duration::from_secs(600)),
        vec![shell(
            "echo $$ > \"$HABEAT_PIDS.sh\"; sleep 300 & echo $! > \"$HABEAT_PIDS\"; wait",
        )],
        2,
    );
    let started = Instant::now();
    let accepted = (0..20)
        .filter(|i| d.dispatch(&serde_json::json!({ "seq": i }), env.clone()))
        .count();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "dispatch waited for the hook"
    );
    // One event may already be with the worker, two wait in the queue.
    assert!((2..=3).contains(&accepted), "accepted {accepted}");
    assert_eq!(d.stats().dropped, 20 - accepted as u64);

    // Closing abandons the hung hook: its whole process group dies.
    wait_for_file(&pids).await;
    let sh = pid_in(&dir.path().join("pids.sh"));
    let sleeper = pid_in(&pids);
    let stats = d.close(Duration::from_millis(300)).await;
    assert_eq!(stats.delivered, 0);
    assert!(
        wait_dead(&[sh, sleeper]).await,
        "an abandoned hook survived"
    );
}
