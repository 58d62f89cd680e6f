//! Consul raft recovery building blocks: peers.json on disk, the service
//! restart through (stand-ins for) systemctl, the leader confirmation.

use habeat::act::raft::{
    PeerEntry, RaftError, RaftRecovery, ServiceControl, read_node_id, write_peers_json,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ID1: &str = "adf4238a-882b-9ddc-4a9d-5b6758e4159e";
const ID2: &str = "8b3bd2a8-25cd-4a8a-8c0f-3c0f1d2e3f40";

fn data_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(d.path().join("raft")).expect("raft dir");
    d
}

fn peers() -> Vec<PeerEntry> {
    vec![
        PeerEntry::voter(ID1, "10.2.0.1:8300"),
        PeerEntry::voter(ID2, "10.2.0.2:8300"),
    ]
}

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody exists")
}

#[test]
fn peers_json_is_written_atomically_with_its_owner_and_raft_v3_content() {
    // chown to another user.
    if !support::require(&[support::Need::Root]) {
        return;
    }
    let d = data_dir();
    let path = write_peers_json(d.path(), &peers(), "nobody").expect("written");
    assert_eq!(path, d.path().join("raft/peers.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(
        v,
        serde_json::json!([
            {"id": ID1, "address": "10.2.0.1:8300", "non_voter": false},
            {"id": ID2, "address": "10.2.0.2:8300", "non_voter": false},
        ])
    );
    assert!(v[0]["non_voter"].is_boolean());
    let meta = std::fs::metadata(&path).expect("stat");
    assert_eq!(meta.uid(), nobody().uid.as_raw());
    assert_eq!(meta.gid(), nobody().gid.as_raw());
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let names: Vec<_> = std::fs::read_dir(d.path().join("raft"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["peers.json"], "a temporary file was left behind");
}

#[test]
fn a_missing_owner_or_raft_dir_is_a_clear_error_and_nothing_is_written() {
    let d = data_dir();
    let err = write_peers_json(d.path(), &peers(), "habeat-no-such-user").expect_err("no user");
    assert!(matches!(err, RaftError::NoSuchOwner(_)), "{err}");
    assert!(err.to_string().contains("habeat-no-such-user"), "{err}");
    assert!(!d.path().join("raft/peers.json").exists());

    let empty = tempfile::tempdir().expect("tempdir");
    let err = write_peers_json(empty.path(), &peers(), "root").expect_err("no raft dir");
    assert!(err.to_string().contains("service_discover_data"), "{err}");
}

#[test]
fn the_node_id_file_is_the_fallback_id() {
    let d = data_dir();
    std::fs::write(d.path().join("node-id"), format!("{ID1}\n")).expect("write");
    assert_eq!(read_node_id(d.path()).expect("id"), ID1);
    std::fs::write(d.path().join("node-id"), "<html>oops</html>").expect("write");
    let err = read_node_id(d.path()).expect_err("garbage");
    assert!(err.to_string().contains("node-id"), "{err}");
}

/// A stand-in for systemctl that logs each call, and whether peers.json
/// existed at that moment.
fn logging_service(log: &Path, peers: &Path, stop_exit: i32) -> ServiceControl {
    let step = |name: &str, exit: i32| {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            format!(
                "if [ -e '{p}' ]; then w=with; else w=without; fi; echo \"{name} $w peers.json\" >> '{l}'; exit {exit}",
                p = peers.display(),
                l = log.display()
            ),
        ]
    };
    ServiceControl {
        stop: step("stop", stop_exit),
        start: step("start", 0),
        timeout: Duration::from_secs(20),
    }
}

fn recovery(d: &Path, log: &Path, stop_exit: i32) -> RaftRecovery {
    RaftRecovery {
        data_dir: d.to_owned(),
        owner: "root".into(),
        service: logging_service(log, &d.join("raft/peers.json"), stop_exit),
        leader_deadline: Duration::from_secs(20),
        poll_interval: Duration::from_millis(20),
    }
}

fn lines(p: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn recovery_stops_writes_starts_and_waits_for_a_leader() {
    let d = data_dir();
    let log = d.path().join("service.log");
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let report = recovery(d.path(), &log, 0)
        .recover(&peers(), move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err("connection refused".to_owned()),
                    1 => Ok(false),
                    _ => Ok(true),
                }
            }
        })
        .await
        .expect("recovered");
    assert_eq!(
        lines(&log),
        ["stop without peers.json", "start with peers.json"]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(report.steps.len(), 3);
    assert!(report.steps[1].step.starts_with("write "));
    assert_eq!(report.peers_file, d.path().join("raft/peers.json"));
}

#[tokio::test]
async fn no_leader_by_the_deadline_is_an_error_saying_what_was_last_seen() {
    let d = data_dir();
    let log = d.path().join("service.log");
    let mut r = recovery(d.path(), &log, 0);
    r.leader_deadline = Duration::from_millis(500);
    let started = Instant::now();
    let err = r
        .recover(&peers(), || async {
            Err::<bool, _>("connection refused".to_owned())
        })
        .await
        .expect_err("no leader");
    assert!(started.elapsed() < Duration::from_secs(20), "did not hang");
    assert!(matches!(err, RaftError::NoLeader { .. }), "{err}");
    assert!(err.to_string().contains("connection refused"), "{err}");

    // A check that never answers is bounded by the deadline too.
    let started = Instant::now();
    let err = r
        .recover(&peers(), std::future::pending::<Result<bool, String>>)
        .await
        .expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(20), "did not hang");
    assert!(matches!(err, RaftError::NoLeader { .. }), "{err}");
}

#[tokio::test]
async fn a_failed_stop_writes_nothing_and_starts_the_service_again() {
    let d = data_dir();
    let log = d.path().join("service.log");
    let err = recovery(d.path(), &log, 1)
        .recover(&peers(), || async { Ok(true) })
        .await
        .expect_err("stop failed");
    assert!(matches!(err, RaftError::StopFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("exit code 1"), "{msg}");
    assert!(msg.contains("started again"), "{msg}");
    assert!(!msg.contains("failed too"), "{msg}");
    // A stop that failed may still have stopped it: service-discover is
    // started, and peers.json was never written.
    assert_eq!(
        lines(&log),
        ["stop without peers.json", "start without peers.json"]
    );
    assert!(!d.path().join("raft/peers.json").exists());
}

#[tokio::test]
async fn a_stop_that_times_out_is_followed_by_a_start_and_both_are_reported() {
    let d = data_dir();
    let log = d.path().join("service.log");
    let mut r = recovery(d.path(), &log, 0);
    r.service.timeout = Duration::from_secs(1);
    r.service.stop = vec!["/bin/sh".into(), "-c".into(), "sleep 30".into()];
    r.service.start = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "echo start >> '{}'; echo 'Job failed' >&2; exit 5",
            log.display()
        ),
    ];
    let started = Instant::now();
    let err = r
        .recover(&peers(), || async { Ok(true) })
        .await
        .expect_err("stop timed out");
    assert!(started.elapsed() < Duration::from_secs(20), "did not hang");
    let msg = err.to_string();
    assert!(matches!(err, RaftError::StopFailed { .. }), "{msg}");
    assert!(msg.contains("did not finish within 1s"), "{msg}");
    assert!(msg.contains("starting it failed too"), "{msg}");
    assert!(msg.contains("exit code 5"), "{msg}");
    assert_eq!(lines(&log), ["start"]);
    assert!(!d.path().join("raft/peers.json").exists());
}

#[tokio::test]
async fn what_can_be_checked_is_checked_before_the_service_is_stopped() {
    let d = data_dir();
    let log = d.path().join("service.log");
    let mut r = recovery(d.path(), &log, 0);
    r.owner = "habeat-no-such-user".into();
    let err = r
        .recover(&peers(), || async { Ok(true) })
        .await
        .expect_err("no owner");
    assert!(matches!(err, RaftError::NoSuchOwner(_)), "{err}");
    let err = recovery(d.path(), &log, 0)
        .recover(&[PeerEntry::voter(ID1, "svc1.example.com")], || async {
            Ok(true)
        })
        .await
        .expect_err("bad address");
    assert!(matches!(err, RaftError::BadPeer { .. }), "{err}");
    assert!(lines(&log).is_empty(), "the service was touched");
}

#[tokio::test]
async fn a_write_failing_after_the_stop_starts_the_service_again() {
    let d = data_dir();
    // A directory where peers.json should go makes the rename fail.
    std::fs::create_dir_all(d.path().join("raft/peers.json/x")).expect("blocker");
    let log = d.path().join("service.log");
    let err = recovery(d.path(), &log, 0)
        .recover(&peers(), || async { Ok(true) })
        .await
        .expect_err("write failed");
    assert!(matches!(err, RaftError::WriteAfterStop { .. }), "{err}");
    assert!(err.to_string().contains("started again"), "{err}");
    assert_eq!(
        lines(&log),
        ["stop with peers.json", "start with peers.json"]
    );
}

use crate::support;

/// The executor's raft recovery when no raft configuration was recorded:
/// this DC's Consul servers are `consul_ips`, the data dir holds a
/// `node-id` (but no `raft/`, so that nothing could ever be stopped here).
async fn recovery_without_a_recorded_configuration(consul_ips: &[&str]) -> String {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("node-id"), format!("{ID1}\n")).expect("node-id");
    let mut cfg = support::config(&[habeat::model::Role::Consulserver]);
    cfg.consul.service_discover_data = d.path().to_owned();
    cfg.dcs.get_mut("secondary").expect("own dc").consul_ips =
        consul_ips.iter().map(|s| s.to_string()).collect();
    let action = habeat::engine::Action {
        id: habeat::engine::ActionId(1),
        role: habeat::model::Role::Consulserver,
        origin: habeat::engine::Origin::Automatic,
        step: None,
        kind: habeat::engine::ActionKind::RaftRecovery {
            servers: Vec::new(),
        },
        checks: Vec::new(),
    };
    match habeat::exec::Executor::new(&cfg, habeat::sink::EventSink::open(&cfg, false))
        .execute(&action, &habeat::exec::Given::default())
        .await
        .result
    {
        habeat::engine::OutcomeResult::Failed { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_recorded_configuration_a_dc_of_several_servers_is_not_recovered_alone() {
    // This node (127.0.0.1) is listed second: the first entry is another
    // server, whose address must not be written as this node's.
    let reason = recovery_without_a_recorded_configuration(&["192.0.2.1", "127.0.0.1"]).await;
    assert!(reason.contains("lists 2 Consul servers"), "{reason}");
    assert!(reason.contains("split the survivors"), "{reason}");
}

#[tokio::test]
async fn without_a_recorded_configuration_a_server_that_is_not_this_node_is_refused() {
    let reason = recovery_without_a_recorded_configuration(&["192.0.2.1"]).await;
    assert!(
        reason.contains("192.0.2.1, which is not an address of this node"),
        "{reason}"
    );
    assert!(
        reason.contains("127.0.0.1"),
        "this node's addresses: {reason}"
    );
}
