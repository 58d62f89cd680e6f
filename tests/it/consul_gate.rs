//! The quorum gate (SPEC 4): the failover lock can only be taken by a side
//! with a raft leader, by one habeat at a time, and frees itself when its
//! holder goes away.

use crate::support;

use habeat::consul::Client;
use habeat::consul::gate::{self, DEFAULT_TTL, Holder, Refusal};
use std::time::Duration;
use support::consul_api::{ConsulApi, Fault, Interleave};

fn client(api: &ConsulApi) -> Client {
    Client::new(&api.consul_config(), Duration::from_secs(1)).expect("client")
}

fn holder(purpose: &str) -> Holder {
    Holder {
        node: "mbox2.example.com".into(),
        pid: 4242,
        version: "test".into(),
        purpose: purpose.into(),
    }
}

#[tokio::test]
async fn one_habeat_holds_the_lock_and_the_other_is_told_who() {
    let api = ConsulApi::builder().start().await;
    let c = client(&api);
    let lock = gate::acquire(
        &c,
        "mbox1.example.com",
        &holder("promote mbox1"),
        DEFAULT_TTL,
    )
    .await
    .expect("first habeat takes the lock");
    assert_eq!(lock.key(), "habeat/failover/mbox1.example.com");
    assert!(lock.is_held());
    assert_eq!(
        api.lock_holder("habeat/failover/mbox1.example.com")
            .as_deref(),
        Some(lock.session())
    );

    let refusal = gate::acquire(&c, "mbox1.example.com", &holder("second"), DEFAULT_TTL)
        .await
        .expect_err("second habeat is refused");
    assert!(
        matches!(refusal, Refusal::HeldByAnother { .. }),
        "{refusal:?}"
    );
    let text = refusal.to_string();
    assert!(
        text.starts_with("another habeat holds the failover lock for mbox1.example.com"),
        "{text}"
    );
    assert!(text.contains("promote mbox1"), "holder shown: {text}");
    // The refused attempt cleaned up its own session.
    assert_eq!(api.sessions(), vec![lock.session().to_owned()]);

    // Another source host is a different lock.
    let other = gate::acquire(&c, "mbox3.example.com", &holder("other"), DEFAULT_TTL)
        .await
        .expect("other host's lock is free");

    lock.release().await.expect("release");
    assert_eq!(api.lock_holder("habeat/failover/mbox1.example.com"), None);
    let again = gate::acquire(&c, "mbox1.example.com", &holder("after"), DEFAULT_TTL)
        .await
        .expect("free again after release");
    drop(again);
    drop(other);
}

#[tokio::test]
async fn without_a_leader_the_gate_refuses_for_lack_of_quorum() {
    let api = ConsulApi::builder().leader(None).start().await;
    let refusal = gate::acquire(&client(&api), "mbox1", &holder("p"), DEFAULT_TTL)
        .await
        .expect_err("no leader, no lock");
    assert!(matches!(refusal, Refusal::NoQuorum { .. }), "{refusal:?}");
    assert!(
        refusal
            .to_string()
            .starts_with("cannot prove the peer is gone: this side has no Consul quorum"),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_failing_lock_write_refuses_and_leaves_no_session_behind() {
    let api = ConsulApi::builder().start().await;
    api.set_fault_on("/v1/kv/", Fault::ServerError);
    let refusal = gate::acquire(&client(&api), "mbox1", &holder("p"), DEFAULT_TTL)
        .await
        .expect_err("write failed");
    assert!(matches!(refusal, Refusal::NoQuorum { .. }), "{refusal:?}");
    assert!(api.sessions().is_empty(), "session was destroyed");
}

#[tokio::test]
async fn an_unreachable_agent_refuses_for_lack_of_quorum() {
    let cfg = habeat::config::Consul {
        port: support::closed_port(),
        ..habeat::config::Consul::default()
    };
    let c = Client::new(&cfg, Duration::from_secs(1)).expect("client");
    let refusal = gate::acquire(&c, "mbox1", &holder("p"), DEFAULT_TTL)
        .await
        .expect_err("nobody to ask");
    assert!(matches!(refusal, Refusal::NoQuorum { .. }), "{refusal:?}");
}

#[tokio::test]
async fn a_refused_token_is_not_mistaken_for_quorum_loss() {
    let api = ConsulApi::builder().token("right").start().await;
    let mut cfg = api.consul_config();
    cfg.token = Some(habeat::config::Secret::new("wrong"));
    let c = Client::new(&cfg, Duration::from_secs(1)).expect("client");
    let refusal = gate::acquire(&c, "mbox1", &holder("p"), DEFAULT_TTL)
        .await
        .expect_err("token refused");
    assert!(matches!(refusal, Refusal::Consul { .. }), "{refusal:?}");
    let text = refusal.to_string();
    assert!(text.starts_with("cannot prove the peer is gone"), "{text}");
    assert!(text.contains("token is wrong"), "{text}");
}

#[tokio::test]
async fn a_dead_holder_frees_the_lock_when_its_session_expires() {
    let api = ConsulApi::builder().start().await;
    let c = client(&api);
    let lock = gate::acquire(&c, "mbox1", &holder("crashing"), DEFAULT_TTL)
        .await
        .expect("lock");
    // The holder "crashes": its renewals stop (forget without Drop).
    std::mem::forget(lock);
    api.advance_clock(DEFAULT_TTL + Duration::from_secs(1));
    assert_eq!(api.lock_holder("habeat/failover/mbox1"), None);
    gate::acquire(&c, "mbox1", &holder("successor"), DEFAULT_TTL)
        .await
        .expect("successor takes the expired lock");
}

#[tokio::test]
async fn dropping_the_lock_releases_it() {
    let api = ConsulApi::builder().start().await;
    let c = client(&api);
    let lock = gate::acquire(&c, "mbox1", &holder("p"), DEFAULT_TTL)
        .await
        .expect("lock");
    drop(lock);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while api.lock_holder("habeat/failover/mbox1").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "drop did not release the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(api.sessions().is_empty(), "drop destroyed the session");
}

#[tokio::test]
async fn an_invalidated_session_lets_another_habeat_in() {
    let api = ConsulApi::builder().start().await;
    let c = client(&api);
    let lock = gate::acquire(&c, "mbox1", &holder("p"), DEFAULT_TTL)
        .await
        .expect("lock");
    api.invalidate_session(lock.session());
    gate::acquire(&c, "mbox1", &holder("next"), DEFAULT_TTL)
        .await
        .expect("lock released by invalidation");
}

const KEY: &str = "habeat/failover/mbox1.example.com";

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// The gate held by a habeat of this node that is gone (killed during a
/// promotion): its session lives on in Consul.
async fn held_by_a_dead_habeat_of_this_node(c: &Client) -> String {
    let dead = Holder {
        pid: dead_pid(),
        ..Holder::this_process("promotion")
    };
    let lock = gate::acquire(c, "mbox1.example.com", &dead, Duration::from_secs(3600))
        .await
        .expect("the dead habeat had the lock");
    let session = lock.session().to_owned();
    std::mem::forget(lock); // it died: no release
    session
}

fn gate_action() -> habeat::engine::Action {
    habeat::engine::Action {
        id: habeat::engine::ActionId(1),
        role: habeat::model::Role::Appserver,
        origin: habeat::engine::Origin::Automatic,
        step: None,
        kind: habeat::engine::ActionKind::AcquireQuorumGate { key: KEY.into() },
        checks: Vec::new(),
    }
}

fn executor(api: &ConsulApi) -> habeat::exec::Executor {
    let mut cfg = support::config(&[habeat::model::Role::Appserver]);
    cfg.consul = api.consul_config();
    habeat::exec::Executor::new(&cfg, habeat::sink::EventSink::open(&cfg, false))
}

#[tokio::test]
async fn the_gate_of_a_dead_habeat_of_this_node_is_taken_over() {
    let api = ConsulApi::builder().start().await;
    let dead = held_by_a_dead_habeat_of_this_node(&client(&api)).await;
    let mut exec = executor(&api);
    let out = exec
        .execute(&gate_action(), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(out.result, habeat::engine::OutcomeResult::Succeeded { .. }),
        "{:?}",
        out.result
    );
    assert!(!api.sessions().contains(&dead), "the dead session is gone");
    let now = api.lock_holder(KEY).expect("held");
    assert_ne!(now, dead);
    exec.release_all().await;
}

#[tokio::test]
async fn a_lock_that_changed_hands_after_the_stale_check_is_not_taken_from_its_new_holder() {
    let api = ConsulApi::builder().start().await;
    let dead = held_by_a_dead_habeat_of_this_node(&client(&api)).await;
    // Right after habeat reads the holder (and finds it dead), the dead
    // session expires and the peer's habeat takes the lock.
    let peer = br#"{"node":"mbox9.other-dc.example.com","pid":77,"version":"0.1.0","purpose":"promotion"}"#;
    api.after_next(
        "GET",
        &format!("/v1/kv/{KEY}"),
        Interleave::LockChangesHands {
            key: KEY.into(),
            value: peer.to_vec(),
        },
    );
    let out = executor(&api)
        .execute(&gate_action(), &habeat::exec::Given::default())
        .await;
    let other = api.lock_holder(KEY).expect("the peer holds the lock");
    assert_ne!(other, dead);
    assert!(
        api.sessions().contains(&other),
        "the peer's live session was destroyed"
    );
    assert_eq!(api.kv_value(KEY).as_deref(), Some(&peer[..]));
    match out.result {
        habeat::engine::OutcomeResult::GateRefused {
            refusal: habeat::engine::GateRefusal::HeldByAnother { holder, .. },
        } => assert!(
            holder
                .as_deref()
                .is_some_and(|h| h.contains("mbox9.other-dc.example.com")),
            "{holder:?}"
        ),
        other => panic!("expected the gate to refuse, got {other:?}"),
    }
}
