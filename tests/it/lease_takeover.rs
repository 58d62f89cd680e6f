//! The secondary's side of `lease-before-takeover` (SPEC 14): before an
//! automatic promotion of a host whose serving lease `habeat/serving/<host>`
//! exists, the executor takes that key over with the quorum gate's session,
//! which Consul allows only after the primary's session has expired and
//! its lock-delay has passed. Until then promoteAccounts does not run and
//! the outcome says why (typed). The stand-in's clock is moved by hand.

use crate::bed::{ExecBed, automatic as action, promote_source as promote};
use habeat::engine::{ActionKind, OutcomeResult, PeerLeaseWait};
use std::time::Duration;

const GATE: &str = "habeat/failover/mbox1.example.com";
const SERVING: &str = "habeat/serving/mbox1.example.com";

fn require(r: &str) -> String {
    format!("safety:\n  require_peer_lease: {r}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn no_promotion_while_the_primary_holds_its_lease_nor_before_its_lock_delay_has_passed() {
    let bed = ExecBed::start().await;
    let api = &bed.api;
    let mut exec = bed.executor(&require("auto"));
    let primary = api.hold_lease(SERVING).await;
    let out = exec
        .execute(
            &action(1, ActionKind::AcquireQuorumGate { key: GATE.into() }),
            &habeat::exec::Given::default(),
        )
        .await;
    assert!(matches!(out.result, OutcomeResult::Succeeded { .. }));

    let out = exec
        .execute(&action(2, promote()), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(&out.result, OutcomeResult::PeerLeaseWait { wait: PeerLeaseWait::Held { key } } if key == SERVING),
        "{:?}",
        out.result
    );
    assert!(!bed.promoted(), "promoted beside a held lease");

    // The primary stops renewing; its session expires (TTL)...
    api.advance_clock(Duration::from_secs(10));
    assert_eq!(api.lock_holder(SERVING), None);
    let out = exec
        .execute(&action(3, promote()), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(
            &out.result,
            OutcomeResult::PeerLeaseWait {
                wait: PeerLeaseWait::LockDelay { .. }
            }
        ),
        "{:?}",
        out.result
    );
    assert!(!bed.promoted(), "promoted inside the lock-delay");
    // ...and after its lock-delay the secondary takes the key and promotes.
    api.advance_clock(Duration::from_secs(15));
    let out = exec
        .execute(&action(4, promote()), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(out.result, OutcomeResult::Succeeded { .. }),
        "{:?}",
        out.result
    );
    assert!(bed.promoted());
    let holder = api.lock_holder(SERVING).expect("taken over");
    assert_ne!(holder, primary);
    assert_eq!(
        api.lock_holder(GATE),
        Some(holder),
        "with the gate's session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_never_there_promotes_with_auto_and_waits_with_always() {
    for (require, waits) in [("auto", false), ("always", true)] {
        let bed = ExecBed::start().await;
        let mut exec = bed.executor(&self::require(require));
        exec.execute(
            &action(1, ActionKind::AcquireQuorumGate { key: GATE.into() }),
            &habeat::exec::Given::default(),
        )
        .await;
        let out = exec
            .execute(&action(2, promote()), &habeat::exec::Given::default())
            .await;
        if waits {
            assert!(
                matches!(
                    &out.result,
                    OutcomeResult::PeerLeaseWait {
                        wait: PeerLeaseWait::Absent { .. }
                    }
                ),
                "{:?}",
                out.result
            );
            assert!(!bed.promoted());
            let OutcomeResult::PeerLeaseWait { wait } = &out.result else {
                unreachable!()
            };
            assert!(wait.to_string().contains("require_peer_lease"), "{wait}");
        } else {
            assert!(
                matches!(out.result, OutcomeResult::Succeeded { .. }),
                "{:?}",
                out.result
            );
            assert!(bed.promoted());
        }
    }
}

/// With `safety.quorum_gate: false` the takeover uses a session of its own
/// (there is no gate session). Waiting for a held lease must not leave a
/// session behind at every attempt, and once the lease is taken, a
/// promoteAccounts that failed is retried with the same session, not held
/// up by this side's own earlier takeover as if the primary still held it.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_gate_off_the_takeover_session_is_reused_and_none_is_left_behind() {
    let bed = ExecBed::start().await;
    let api = &bed.api;
    let mut exec = bed.executor(&format!("{}  quorum_gate: false\n", require("auto")));
    let action = |id, kind| crate::bed::automatic_gated(id, kind, false);
    let primary = api.hold_lease(SERVING).await;
    for id in 1..=3 {
        let out = exec
            .execute(&action(id, promote()), &habeat::exec::Given::default())
            .await;
        assert!(
            matches!(
                &out.result,
                OutcomeResult::PeerLeaseWait {
                    wait: PeerLeaseWait::Held { .. }
                }
            ),
            "{:?}",
            out.result
        );
    }
    assert_eq!(
        api.sessions(),
        vec![primary.clone()],
        "each wait left a session of its own behind"
    );
    assert!(!bed.promoted());

    // The primary's session expires, its lock-delay passes: taken over,
    // but promoteAccounts fails this time...
    api.advance_clock(Duration::from_secs(10));
    assert_eq!(api.lock_holder(SERVING), None);
    api.advance_clock(Duration::from_secs(15));
    bed.fake.set_fault(
        "promoteAccounts",
        crate::fake_carbonio::Fault::Fail { exit_code: 1 },
    );
    let out = exec
        .execute(&action(4, promote()), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(out.result, OutcomeResult::Failed { .. }),
        "{:?}",
        out.result
    );
    let ours = api.lock_holder(SERVING).expect("taken over");
    assert_ne!(ours, primary);
    // ...and the retry promotes: this side's own hold is no wait.
    bed.fake.update(|s| s.faults.clear());
    let out = exec
        .execute(&action(5, promote()), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(out.result, OutcomeResult::Succeeded { .. }),
        "{:?}",
        out.result
    );
    assert!(bed.promoted());
    assert_eq!(api.lock_holder(SERVING), Some(ours.clone()));
    assert_eq!(api.sessions(), vec![ours], "one session, the holder's");
}
