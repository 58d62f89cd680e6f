//! Every event habeat journals reaches the `on_event` hooks
//! (docs/configuration.md, `hooks.on_event`): each kind of event, one by
//! one, through the one door every writer of events is handed
//! ([`habeat::sink::EventSink`]). The writers outside the engine are
//! checked through the binary in their own areas: the lease keeper's
//! `lease_*` events in `lease_primary`, the executor's
//! `peer_lease_unchecked` in `lease_gate_off`; the engine's in
//! `cli_check`.

use crate::support;
use habeat::config::HookCommand;
use habeat::engine::{
    Action, ActionId, ActionKind, BootId, Event, EventKind, Idle, LockKind, Origin, Severity,
    UnixMillis, WaitOver,
};
use habeat::model::{
    CallEnd, Component, FenceAction, FenceCall, Role, Verdict, Vote, WitnessId, WitnessKind,
};
use habeat::sink::EventSink;
use habeat::survey::{ReplicaState, Risk};
use std::collections::BTreeSet;
use std::time::Duration;

/// One event of every kind. The match makes a new kind a compile error
/// here until it has a sample; [`serde_kinds`] catches a sample missing
/// from the list.
fn every_kind() -> Vec<EventKind> {
    let witness = WitnessId {
        component: Component::Appserver,
        kind: WitnessKind::Tcp { port: 7071 },
    };
    let action = Action {
        id: ActionId(7),
        role: Role::Appserver,
        origin: Origin::Automatic,
        step: None,
        kind: ActionKind::ListAccounts {
            source_mail_host: "mbox1.example.com".into(),
        },
        checks: Vec::new(),
    };
    let key = || "habeat/serving/mbox1.example.com".to_owned();
    let host = || "mbox1.example.com".to_owned();
    let risk = Risk {
        account: "alice@example.com".into(),
        state: ReplicaState::NoKafka,
        also: Vec::new(),
        lag_sequence: None,
        lag_item_id: None,
        destination: Some("mbox2.example.com".into()),
    };
    let all = vec![
        EventKind::VoteChanged {
            witness: witness.clone(),
            from: Vote::Up,
            to: Vote::Down,
        },
        EventKind::VerdictChanged {
            from: Verdict::Up,
            to: Verdict::Down,
        },
        EventKind::Decision {
            reason: Some(Idle::NotARole {
                role: Role::Appserver,
            }),
        },
        EventKind::ActionStarted {
            action: action.clone(),
        },
        EventKind::ActionSucceeded {
            action_id: ActionId(7),
            detail: "listed 2 accounts".into(),
        },
        EventKind::ActionFailed {
            action_id: ActionId(7),
            reason: "exited with code 1".into(),
            will_retry: true,
        },
        EventKind::GateRefused {
            key: "habeat/failover/mbox1.example.com".into(),
            reason: "no leader".into(),
        },
        EventKind::WaitEnded {
            over: WaitOver::GateOff,
        },
        EventKind::PromotionIntent {
            source_mail_host: host(),
            accounts: vec!["alice@example.com".into()],
            at_risk: vec![risk.clone()],
            held: Vec::new(),
        },
        EventKind::ReplicasAtRiskChanged {
            source_mail_host: host(),
            at_risk: vec![risk],
            added: vec!["alice@example.com".into()],
            cleared: Vec::new(),
        },
        EventKind::ReplicaSurveyFailed {
            source_mail_host: host(),
            reason: "carbonio timed out".into(),
        },
        EventKind::PipelineFinished { pipeline: 1 },
        EventKind::PipelineStalled { pipeline: 1 },
        EventKind::IntentAbandoned { pipeline: 1 },
        EventKind::Interrupted { action },
        EventKind::Rearmed,
        EventKind::Paused {
            until: UnixMillis(2_000_000_000_000),
        },
        EventKind::Resumed,
        EventKind::PauseEnded,
        EventKind::SafeHold,
        EventKind::LegacyLockAdopted {
            lock: LockKind::Promotion,
        },
        EventKind::LockRemovedByHand {
            lock: LockKind::Down,
        },
        EventKind::Refused,
        EventKind::PeerDcUnreachable {
            leaderless_since: UnixMillis(1_700_000_000_000),
        },
        EventKind::PeerConsulReturned { witness },
        EventKind::Fence {
            component: Component::Appserver,
            confirmed: true,
            calls: vec![FenceCall {
                plug: "mbox1".into(),
                action: FenceAction::Status,
                exit: CallEnd::Exited { code: 2 },
                tail: "Status: OFF".into(),
                elapsed: Duration::from_millis(30),
            }],
        },
        EventKind::WallClockOnly {
            previous_boot: BootId(1),
            boot: BootId(2),
        },
        EventKind::OutcomeIgnored {
            action_id: ActionId(9),
        },
        EventKind::LeaseFenced {
            key: key(),
            hooks_ok: true,
        },
        EventKind::LeaseUnfenced {
            key: key(),
            hooks_ok: true,
        },
        EventKind::LeaseStaysFenced {
            key: key(),
            moved: 1,
            moved_first: vec!["alice@example.com".into()],
        },
        EventKind::LeaseUnproven { key: key() },
        EventKind::LeaseLapsedPeerUp { key: key() },
        EventKind::PeerLeaseUnchecked {
            key: key(),
            detail: "no cluster leader".into(),
        },
        EventKind::AccountsUnprotectedChanged {
            mail_host: "mbox2.example.com".into(),
            unprotected_count: 1,
            unprotected: vec!["alice@example.com".into()],
            added_count: 1,
            added: vec!["alice@example.com".into()],
            cleared_count: 0,
            cleared: Vec::new(),
            since: Some(UnixMillis(1)),
        },
        EventKind::AccountsDiverged {
            accounts: vec![diverged()],
        },
        EventKind::ReprotectRecorded {
            pipeline: 3,
            destination: "mbox1.example.com".into(),
            batches: 1,
            accounts: 2,
        },
        EventKind::ReprotectLeftOut {
            destination: "mbox1.example.com".into(),
            accounts: vec![diverged()],
        },
        EventKind::DivergenceDiscarded {
            accounts: vec![diverged()],
        },
        EventKind::Switchover {
            id: 1,
            step: "wave_done".into(),
            wave: Some(1),
            accounts: vec!["alice@example.com".into()],
        },
    ];
    for k in &all {
        // No wildcard: a new kind is a compile error until it has a sample.
        match k {
            EventKind::VoteChanged { .. }
            | EventKind::VerdictChanged { .. }
            | EventKind::Decision { .. }
            | EventKind::ActionStarted { .. }
            | EventKind::ActionSucceeded { .. }
            | EventKind::ActionFailed { .. }
            | EventKind::GateRefused { .. }
            | EventKind::WaitEnded { .. }
            | EventKind::PromotionIntent { .. }
            | EventKind::ReplicasAtRiskChanged { .. }
            | EventKind::ReplicaSurveyFailed { .. }
            | EventKind::PipelineFinished { .. }
            | EventKind::PipelineStalled { .. }
            | EventKind::IntentAbandoned { .. }
            | EventKind::Interrupted { .. }
            | EventKind::Rearmed
            | EventKind::Paused { .. }
            | EventKind::Resumed
            | EventKind::PauseEnded
            | EventKind::SafeHold
            | EventKind::LegacyLockAdopted { .. }
            | EventKind::LockRemovedByHand { .. }
            | EventKind::Refused
            | EventKind::PeerDcUnreachable { .. }
            | EventKind::PeerConsulReturned { .. }
            | EventKind::Fence { .. }
            | EventKind::WallClockOnly { .. }
            | EventKind::OutcomeIgnored { .. }
            | EventKind::LeaseFenced { .. }
            | EventKind::LeaseUnfenced { .. }
            | EventKind::LeaseStaysFenced { .. }
            | EventKind::LeaseUnproven { .. }
            | EventKind::LeaseLapsedPeerUp { .. }
            | EventKind::PeerLeaseUnchecked { .. }
            | EventKind::AccountsUnprotectedChanged { .. }
            | EventKind::AccountsDiverged { .. }
            | EventKind::ReprotectRecorded { .. }
            | EventKind::ReprotectLeftOut { .. }
            | EventKind::DivergenceDiscarded { .. }
            | EventKind::Switchover { .. } => {}
        }
    }
    all
}

/// Every `event` tag the journal's reader accepts, as serde's derive
/// lists them (in the error for a tag it does not know): a kind added to
/// `EventKind` is in this list without anyone writing it down.
fn serde_kinds() -> BTreeSet<String> {
    let err = serde_json::from_str::<EventKind>(r#"{"event":"no_such_event"}"#)
        .expect_err("an unknown event kind is refused")
        .to_string();
    let (_, list) = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde's error no longer lists the kinds: {err}"));
    list.split(", ")
        .map(|s| {
            s.split('`')
                .nth(1)
                .unwrap_or_else(|| panic!("{err}"))
                .to_owned()
        })
        .collect()
}

fn lines(p: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn the_samples_are_every_kind_and_each_is_named_as_its_json_says() {
    let kinds = every_kind();
    let names: BTreeSet<String> = kinds.iter().map(|k| k.name().to_owned()).collect();
    assert_eq!(names.len(), kinds.len(), "a kind sampled twice: {names:?}");
    assert_eq!(names, serde_kinds(), "a kind has no sample in every_kind()");
    for k in kinds {
        let v = serde_json::to_value(&k).expect("json");
        assert_eq!(v["event"], k.name(), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_event_journaled_reaches_the_on_event_hooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let mut cfg = support::config(&[Role::Appserver]);
    cfg.local.state_dir = dir.path().join("state");
    std::fs::create_dir_all(&cfg.local.state_dir).expect("state dir");
    cfg.hooks.on_event = vec![
        HookCommand::Shell(format!("cat >> {d}/on_event.jsonl")),
        HookCommand::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo \"$HABEAT_EVENT $HABEAT_SEVERITY\" >> {d}/on_event.env"),
        ]),
    ];
    let sink = EventSink::open(&cfg, false);
    let kinds = every_kind();
    for (i, kind) in kinds.iter().enumerate() {
        let event = Event {
            at: UnixMillis(1_700_000_000_000 + i as u64),
            severity: [Severity::Info, Severity::Warning, Severity::Error][i % 3],
            kind: kind.clone(),
            role: None,
            component: None,
            message: format!("sample {}", kind.name()),
            operator: None,
        };
        sink.record(std::slice::from_ref(&event)).expect("journal");
    }
    let stats = sink
        .close(Duration::from_secs(60))
        .await
        .expect("on_event hooks");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    let journaled = lines(&habeat::state::Journal::in_dir(&cfg.local.state_dir));
    assert_eq!(journaled.len(), kinds.len());
    // Each reached the hooks once, in order, as the same JSON.
    assert_eq!(lines(&dir.path().join("on_event.jsonl")), journaled);
    let env = std::fs::read_to_string(dir.path().join("on_event.env")).unwrap_or_default();
    let heard: Vec<&str> = env.lines().filter_map(|l| l.split(' ').next()).collect();
    let names: Vec<&str> = kinds.iter().map(EventKind::name).collect();
    assert_eq!(heard, names, "HABEAT_EVENT of each");
}

/// `--dry-run` only logs: nothing journaled, no hook run.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_sink_writes_nothing_and_runs_no_hook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = support::config(&[Role::Appserver]);
    cfg.local.state_dir = dir.path().join("state");
    cfg.hooks.on_event = vec![HookCommand::Shell(format!(
        "touch {}/ran",
        dir.path().display()
    ))];
    let sink = EventSink::open(&cfg, true);
    let e = Event {
        at: UnixMillis(1),
        severity: Severity::Info,
        kind: EventKind::Rearmed,
        role: None,
        component: None,
        message: "rearmed".into(),
        operator: None,
    };
    sink.record(&[e]).expect("dry run");
    assert!(sink.close(Duration::from_secs(5)).await.is_none());
    assert!(!cfg.local.state_dir.exists());
    assert!(!dir.path().join("ran").exists());
}

fn diverged() -> habeat::engine::Diverged {
    habeat::engine::Diverged {
        account: "bob@example.com".into(),
        mail_host: "mbox1.example.com".into(),
        sequence: Some(12),
        item_id: Some(3),
        why: "behind the source by 12 sequence and 3 itemId".into(),
        promotion: 2,
        at: UnixMillis(1_700_000_000_000),
    }
}
