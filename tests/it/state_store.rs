//! state.json, the journal and the legacy lock files on a real filesystem.

use habeat::config::Local;
use habeat::engine::{Event, EventKind, LockKind, OperatorCommand, Severity, State, UnixMillis};
use habeat::model::Role;
use habeat::state::{Journal, Store, lock_path, read_lock, remove_locks, scan_locks, write_locks};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

fn a_state() -> State {
    let cfg = habeat::engine::EngineConfig::new("secondary", "primary", &[Role::Appserver]);
    let t = habeat::engine::step(
        &State::new(),
        &habeat::engine::Live::default(),
        &habeat::engine::Input::Operator(OperatorCommand::Pause {
            until: NOW.plus(Duration::from_secs(60)),
            reason: "test".into(),
        }),
        NOW,
        &cfg,
    );
    t.state
}

#[test]
fn a_saved_state_loads_back_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state")).expect("open");
    let s = a_state();
    store.save(&s).expect("save");
    let loaded = store.load(NOW).expect("load");
    assert!(loaded.set_aside.is_none());
    assert_eq!(loaded.state, s);
}

#[test]
fn a_missing_state_file_is_a_fresh_start_not_a_safe_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let loaded = store.load(NOW).expect("load");
    assert!(loaded.set_aside.is_none());
    assert!(loaded.state.safe_hold.is_none());
}

#[test]
fn a_leftover_temp_file_from_a_crash_is_ignored_and_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let s = a_state();
    store.save(&s).expect("save");
    // A writer died between writing its temp file and renaming it.
    let tmp = dir.path().join(".state.json.tmp-99999");
    std::fs::write(&tmp, b"{\"version\": 1, \"witn").expect("write temp");
    let loaded = store.load(NOW).expect("load");
    assert_eq!(loaded.state, s);
    assert!(loaded.set_aside.is_none());
    assert!(!tmp.exists());
}

#[test]
fn a_temp_name_planted_in_a_shared_directory_is_never_written_through() {
    // Lock files may live in /var/tmp, where any user can create names.
    // The old temp name was `.<name>.tmp-<pid>`: a symlink planted there
    // made habeat (root) write through it.
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious\n").expect("write victim");
    let target = dir.path().join("appserverprom-habeat-appserver");
    for name in [
        format!(".appserverprom-habeat-appserver.tmp-{}", std::process::id()),
        format!(
            ".appserverprom-habeat-appserver.tmp-{}.0",
            std::process::id()
        ),
    ] {
        std::os::unix::fs::symlink(&victim, dir.path().join(name)).expect("plant symlink");
    }
    habeat::state::write_atomic(&target, b"{\"why\":\"test\"}\n").expect("write");
    assert_eq!(std::fs::read(&victim).expect("read victim"), b"precious\n");
    assert_eq!(
        std::fs::read(&target).expect("read target"),
        b"{\"why\":\"test\"}\n"
    );
}

fn corrupt_case(bytes: &[u8], expect_in_reason: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    std::fs::write(store.state_path(), bytes).expect("write");
    let loaded = store.load(NOW).expect("a corrupt file is not an error");
    let aside = loaded.set_aside.expect("set aside");
    assert!(aside.reason.contains(expect_in_reason), "{}", aside.reason);
    assert_eq!(
        aside.moved_to,
        dir.path().join(format!("state.json.corrupt-{}", NOW.0))
    );
    assert_eq!(std::fs::read(&aside.moved_to).expect("kept"), bytes);
    assert!(!store.state_path().exists());
    let hold = loaded.state.safe_hold.expect("safe hold");
    assert!(hold.reason.contains("state.json"));
}

#[test]
fn a_truncated_state_file_is_set_aside_and_habeat_starts_safe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store.save(&a_state()).expect("save");
    let full = std::fs::read(store.state_path()).expect("read");
    corrupt_case(&full[..full.len() / 2], "not valid habeat state");
}

#[test]
fn garbage_and_empty_state_files_are_set_aside() {
    corrupt_case(b"\x00\x01garbage", "not valid habeat state");
    corrupt_case(b"", "not valid habeat state");
}

#[test]
fn a_state_of_another_layout_version_is_set_aside() {
    let mut s = a_state();
    s.version = 99;
    corrupt_case(&serde_json::to_vec(&s).expect("ser"), "layout version 99");
}

#[test]
fn state_file_is_private_to_habeat() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store.save(&a_state()).expect("save");
    let mode = std::fs::metadata(store.state_path())
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

fn event(i: u64) -> Event {
    Event {
        operator: None,
        at: UnixMillis(i),
        severity: Severity::Info,
        kind: EventKind::Decision { reason: None },
        role: Some(Role::Appserver),
        component: None,
        message: format!("event {i}"),
    }
}

#[test]
fn the_journal_appends_one_json_line_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::new(&dir.path().join("events.jsonl"));
    j.append(&[event(1), event(2)]).expect("append");
    j.append(&[event(3)]).expect("append");
    let text = std::fs::read_to_string(j.path()).expect("read");
    assert_eq!(text.lines().count(), 3);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(v["event"], "decision");
    }
    let r = j.read().expect("read");
    assert_eq!(r.events, vec![event(1), event(2), event(3)]);
    assert!(!r.truncated_tail);
}

#[test]
fn a_truncated_last_journal_line_is_tolerated_and_not_glued_to_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::new(&dir.path().join("events.jsonl"));
    j.append(&[event(1)]).expect("append");
    // A crash in the middle of an append.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(j.path())
        .expect("open");
    f.write_all(b"{\"at\":2,\"severity\":\"in").expect("write");
    drop(f);
    let r = j.read().expect("read");
    assert_eq!(r.events, vec![event(1)]);
    assert!(r.truncated_tail);
    j.append(&[event(3)]).expect("append");
    let r = j.read().expect("read");
    assert_eq!(r.events, vec![event(1), event(3)]);
    assert_eq!(r.skipped, 1, "the fragment is now a complete bad line");
}

fn local(dir: &Path) -> Local {
    Local {
        whoami: "secondary".into(),
        dc_check: "primary".into(),
        roles: vec![Role::Appserver],
        check_down_file: dir.join("appserverdown-habeat"),
        check_promotion_file: dir.join("appserverprom-habeat"),
        check_restart_replica_file: dir.join("appserverrstopha"),
        threads: 5,
        proxy_switch: "bgp".into(),
        proxy_enable_activate: false,
        proxy_enable_deactivate: false,
        disable_ha_module: false,
        flush_cache: false,
        flush_arguments_a: false,
        restart_replica: false,
        state_dir: dir.join("state"),
    }
}

#[test]
fn lock_files_keep_their_old_names_and_hold_a_small_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = local(dir.path());
    write_locks(
        &l,
        Role::Appserver,
        &[LockKind::Down, LockKind::Promotion],
        "peer appserver is Down",
        NOW,
    )
    .expect("write");
    let down = dir.path().join("appserverdown-habeat-appserver");
    let prom = dir.path().join("appserverprom-habeat-appserver");
    assert_eq!(lock_path(&l, Role::Appserver, LockKind::Down), down);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&prom).expect("read")).expect("json");
    assert_eq!(v["why"], "peer appserver is Down");
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["when"], NOW.0);
    assert!(v["version"].is_string());
    assert!(down.exists());
    let seen = scan_locks(&l, &[Role::Appserver]).expect("scan");
    assert!(
        seen.iter()
            .any(|s| s.lock == LockKind::Promotion && s.present && s.written_at == Some(NOW))
    );
    assert!(
        seen.iter()
            .any(|s| s.lock == LockKind::RestartReplica && !s.present)
    );
    remove_locks(
        &l,
        Role::Appserver,
        &[
            LockKind::Down,
            LockKind::Promotion,
            LockKind::RestartReplica,
        ],
    )
    .expect("remove, absent ones too");
    assert!(!down.exists() && !prom.exists());
}

#[test]
fn an_empty_lock_file_from_the_python_habeat_counts_with_its_mtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = local(dir.path());
    let prom = dir.path().join("appserverprom-habeat-appserver");
    std::fs::write(&prom, b"").expect("touch");
    let (body, when) = read_lock(&prom).expect("read").expect("present");
    assert!(body.is_none());
    let mtime = UnixMillis::from_system_time(
        std::fs::metadata(&prom)
            .expect("m")
            .modified()
            .expect("mtime"),
    );
    assert_eq!(when, mtime);
    let seen = scan_locks(&l, &[Role::Appserver]).expect("scan");
    assert!(
        seen.iter()
            .any(|s| s.lock == LockKind::Promotion && s.present)
    );
}

/// Helper for the crash test below: saves states in a loop until killed.
#[test]
#[ignore = "helper: run by crash_while_saving_never_leaves_an_unreadable_state"]
fn helper_save_forever() {
    let Ok(dir) = std::env::var("HABEAT_STATE_SAVE_HELPER") else {
        return;
    };
    let store = Store::open(Path::new(&dir)).expect("open");
    let mut s = a_state();
    println!("SAVING");
    let _ = std::io::stdout().flush();
    for i in 0u64.. {
        s.next_action_id = i;
        // Make the file big enough that a kill can land mid-write.
        s.raft.last_healthy = Some(
            (0..200)
                .map(|k| habeat::model::RaftServer {
                    id: format!("{i}-{k}"),
                    node: "server-x".into(),
                    address: "10.0.0.1:8300".into(),
                    leader: false,
                    voter: true,
                })
                .collect(),
        );
        store.save(&s).expect("save");
    }
}

#[test]
fn crash_while_saving_never_leaves_an_unreadable_state() {
    let exe = std::env::current_exe().expect("test binary");
    for round in 0..5u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "state_store::helper_save_forever",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HABEAT_STATE_SAVE_HELPER", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn helper");
        // Let it write for a while, then kill -9.
        let started = Instant::now();
        while !dir.path().join("state.json").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "helper never saved"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20 + 17 * round));
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        let store = Store::open(dir.path()).expect("open");
        let loaded = store.load(NOW).expect("load");
        assert!(
            loaded.set_aside.is_none(),
            "crash left a corrupt state: {:?}",
            loaded.set_aside
        );
        assert!(loaded.state.pause.is_some());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left after load");
    }
}

#[test]
fn a_state_saved_before_the_rearm_rename_still_loads_its_rearm() {
    // Earlier releases saved a role's re-arm as `recovery`.
    let cfg = habeat::engine::EngineConfig::new("secondary", "primary", &[Role::Appserver]);
    let mut state = a_state();
    let t = habeat::engine::step(
        &state,
        &habeat::engine::Live::default(),
        &habeat::engine::Input::Operator(OperatorCommand::Rearm),
        NOW,
        &cfg,
    );
    state = t.state;
    let mut v = serde_json::to_value(&state).expect("ser");
    let roles = v["roles"].as_object_mut().expect("roles");
    roles.insert(
        "appserver".into(),
        serde_json::json!({"failover": null, "recovery": {
            "id": 9, "kind": "rearm", "origin": "operator", "started_at": NOW.0,
            "reason": "rearm by the operator", "promotion": null, "steps": [],
            "stalled": null, "finished_at": null
        }, "retry_at": null, "last_decision": "a sentence of an earlier release"}),
    );
    let back: State = serde_json::from_value(v).expect("an earlier release's state loads");
    let rs = back.role(Role::Appserver);
    assert_eq!(rs.rearm.as_ref().map(|p| p.id), Some(9));
    assert_eq!(
        rs.last_decision, None,
        "a saved sentence reads as no reason"
    );
}

#[test]
fn a_stalled_pipeline_saved_with_its_reason_as_a_sentence_still_loads_and_stays_stalled() {
    // Builds before the typed `Stall` saved why a pipeline stopped as a
    // sentence; such a pipeline must stay stopped (operator needed), and
    // status must still say why in the same words.
    let mut v = serde_json::to_value(a_state()).expect("ser");
    let sentence = "step \"promote accounts\" gave up: exit 1; operator needed: handle it by \
                    hand, then `habeat rearm`";
    v["roles"].as_object_mut().expect("roles").insert(
        "appserver".into(),
        serde_json::json!({"failover": {
            "id": 3, "kind": "promotion", "origin": "automatic", "started_at": NOW.0,
            "reason": "the peer appserver is down", "promotion": null, "steps": [],
            "stalled": sentence, "finished_at": NOW.0
        }, "rearm": null, "retry_at": null, "last_decision": null}),
    );
    let back: State = serde_json::from_value(v).expect("the earlier state loads");
    let p = back
        .role(Role::Appserver)
        .failover
        .clone()
        .expect("the pipeline is kept");
    assert!(p.is_finished(), "a stalled pipeline loads as stopped");
    assert_eq!(p.stalled.map(|s| s.to_string()).as_deref(), Some(sentence));
}
