//! The executor checks the quorum gate itself before a gated automatic
//! action (SPEC invariant 5): the engine's belief that it holds the gate is
//! not enough once the Consul session behind it is gone.

use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{FakeCarbonio, account, with_accounts};
use habeat::engine::{
    Action, ActionId, ActionKind, GateRefusal, Origin, OutcomeResult, PromoteTarget,
};
use habeat::exec::Executor;
use habeat::model::Role;
use std::path::Path;
use std::time::Duration;
use support::consul_api::ConsulApi;

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
const KEY: &str = "habeat/failover/mbox1.example.com";

fn executor(api: &ConsulApi, fake: &FakeCarbonio, dir: &Path) -> Executor {
    let yaml = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  state_dir: {d}/state\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  checkRestartReplicaFile: {d}/rstop\n\
         primary:\n  appserver_ip: 192.0.2.1\n  appserver_vmname: {SOURCE}\n\
         secondary:\n  appserver_vmname: {REPLICA}\n\
         consul:\n  hostname: 127.0.0.1\n  port: {port}\n\
         carbonio:\n  cli: {cli}\n  zmprov: {zmprov}\n  run_as: \"\"\n  promote_timeout: 30s\n",
        d = dir.display(),
        port = api.addr().port(),
        cli = fake.carbonio.display(),
        zmprov = fake.zmprov.display(),
    );
    let cfg = habeat::config::load_str(&yaml, &dir.join("habeat.yml")).expect("config");
    Executor::new(&cfg)
}

fn action(id: u64, kind: ActionKind) -> Action {
    Action {
        id: ActionId(id),
        role: Role::Appserver,
        origin: Origin::Automatic,
        step: None,
        kind,
    }
}

fn promote() -> ActionKind {
    ActionKind::PromoteAccounts {
        source_mail_host: SOURCE.into(),
        target: PromoteTarget::SourceMailHost(SOURCE.into()),
        threads: 2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_whose_gate_session_was_lost_is_refused_and_never_runs() {
    let api = ConsulApi::builder().start().await;
    let fake = FakeCarbonio::new(&with_accounts(vec![account(
        "alice@example.com",
        SOURCE,
        REPLICA,
    )]));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut exec = executor(&api, &fake, dir.path());

    // Without any gate taken, a gated automatic action does not run.
    let out = exec.execute(&action(1, promote())).await;
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
        .execute(&action(
            2,
            ActionKind::AcquireQuorumGate { key: KEY.into() },
        ))
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
    let out = exec.execute(&action(3, promote())).await;
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
    assert_eq!(fake.accounts_on(REPLICA), Vec::<String>::new());
}
