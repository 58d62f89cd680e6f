//! The executor checks the quorum gate itself before a gated automatic
//! action (SPEC invariant 5): the engine's belief that it holds the gate is
//! not enough once the Consul session behind it is gone.

use crate::bed::{ExecBed, automatic as action, promote_source as promote};
use habeat::engine::{ActionKind, GateRefusal, OutcomeResult};
use std::time::Duration;

const KEY: &str = "habeat/failover/mbox1.example.com";

#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_whose_gate_session_was_lost_is_refused_and_never_runs() {
    let bed = ExecBed::start().await;
    let (api, fake) = (&bed.api, &bed.fake);
    let mut exec = bed.executor("");

    // Without any gate taken, a gated automatic action does not run.
    let out = exec
        .execute(&action(1, promote()), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(
            &out.result,
            OutcomeResult::GateRefused {
                refusal: GateRefusal::NotHeld
            }
        ),
        "{:?}",
        out.result
    );
    assert!(
        fake.invocations().is_empty(),
        "the CLI ran without the gate"
    );

    // The gate is taken, then its session is invalidated behind our back
    // (a Consul restart, an operator's `consul session destroy`); the
    // renewer notices at its next renewal (a third of the TTL, which is
    // max(promote_timeout, 60 s)).
    let out = exec
        .execute(
            &action(2, ActionKind::AcquireQuorumGate { key: KEY.into() }),
            &habeat::exec::Given::default(),
        )
        .await;
    assert!(
        matches!(out.result, OutcomeResult::Succeeded { .. }),
        "{:?}",
        out.result
    );
    for s in api.sessions() {
        api.invalidate_session(&s);
    }
    tokio::time::sleep(Duration::from_secs(22)).await;
    let out = exec
        .execute(&action(3, promote()), &habeat::exec::Given::default())
        .await;
    assert!(
        matches!(
            &out.result,
            OutcomeResult::GateRefused {
                refusal: GateRefusal::Lost { .. }
            }
        ),
        "{:?}",
        out.result
    );
    assert!(
        !fake
            .invocations()
            .iter()
            .any(|i| i.args.iter().any(|a| a == "promoteAccounts")),
        "promoteAccounts ran after the gate was lost"
    );
    assert_eq!(fake.accounts_on(crate::bed::REPLICA), Vec::<String>::new());
}
