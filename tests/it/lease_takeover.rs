//! The secondary's side of `lease-before-takeover` (SPEC 14): before an
//! automatic promotion of a host whose serving lease `habeat/serving/<host>`
//! exists, the executor takes that key over with the quorum gate's session,
//! which Consul allows only after the primary's session has expired and
//! its lock-delay has passed. Until then promoteAccounts does not run and
//! the outcome says why (typed). The stand-in's clock is moved by hand.

use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{FakeCarbonio, account, with_accounts};
use habeat::engine::{
    Action, ActionId, ActionKind, Origin, OutcomeResult, PeerLeaseWait, PromoteTarget,
};
use habeat::exec::Executor;
use habeat::model::Role;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use support::consul_api::ConsulApi;

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
const GATE: &str = "habeat/failover/mbox1.example.com";
const SERVING: &str = "habeat/serving/mbox1.example.com";

fn executor(api: &ConsulApi, fake: &FakeCarbonio, dir: &Path, require: &str) -> Executor {
    executor_with(api, fake, dir, require, "")
}

fn executor_with(
    api: &ConsulApi,
    fake: &FakeCarbonio,
    dir: &Path,
    require: &str,
    extra_safety: &str,
) -> Executor {
    let yaml = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  state_dir: {d}/state\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  checkRestartReplicaFile: {d}/rstop\n\
         primary:\n  appserver_ip: 192.0.2.1\n  appserver_vmname: {SOURCE}\n\
         secondary:\n  appserver_vmname: {REPLICA}\n\
         consul:\n  hostname: 127.0.0.1\n  port: {port}\n\
         carbonio:\n  cli: {cli}\n  zmprov: {zmprov}\n  run_as: \"\"\n  promote_timeout: 30s\n\
         safety:\n  require_peer_lease: {require}\n{extra_safety}",
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

fn promoted(fake: &FakeCarbonio) -> bool {
    fake.invocations()
        .iter()
        .any(|i| i.args.iter().any(|a| a == "promoteAccounts"))
}

/// What the primary's keeper does: a TTL-only session with the 15s
/// lock-delay, holding the serving key.
async fn primary_holds_the_lease(api: &ConsulApi) -> String {
    let c = reqwest::Client::new();
    let v: serde_json::Value = c
        .put(format!("{}/v1/session/create", api.url()))
        .body(json!({"TTL": "10s", "LockDelay": "15s", "Checks": [], "NodeChecks": []}).to_string())
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = v["ID"].as_str().expect("id").to_owned();
    let ok: bool = c
        .put(format!("{}/v1/kv/{SERVING}?acquire={id}", api.url()))
        .send()
        .await
        .expect("acquire")
        .json()
        .await
        .expect("bool");
    assert!(ok);
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn no_promotion_while_the_primary_holds_its_lease_nor_before_its_lock_delay_has_passed() {
    let api = ConsulApi::builder().start().await;
    let fake = FakeCarbonio::new(&with_accounts(vec![account(
        "alice@example.com",
        SOURCE,
        REPLICA,
    )]));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut exec = executor(&api, &fake, dir.path(), "auto");
    let primary = primary_holds_the_lease(&api).await;
    let out = exec
        .execute(&action(
            1,
            ActionKind::AcquireQuorumGate { key: GATE.into() },
        ))
        .await;
    assert!(matches!(out.result, OutcomeResult::Succeeded { .. }));

    let out = exec.execute(&action(2, promote())).await;
    assert!(
        matches!(&out.result, OutcomeResult::PeerLeaseWait { wait: PeerLeaseWait::Held { key } } if key == SERVING),
        "{:?}",
        out.result
    );
    assert!(!promoted(&fake), "promoted beside a held lease");

    // The primary stops renewing; its session expires (TTL)...
    api.advance_clock(Duration::from_secs(10));
    assert_eq!(api.lock_holder(SERVING), None);
    let out = exec.execute(&action(3, promote())).await;
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
    assert!(!promoted(&fake), "promoted inside the lock-delay");
    // ...and after its lock-delay the secondary takes the key and promotes.
    api.advance_clock(Duration::from_secs(15));
    let out = exec.execute(&action(4, promote())).await;
    assert!(
        matches!(out.result, OutcomeResult::Succeeded { .. }),
        "{:?}",
        out.result
    );
    assert!(promoted(&fake));
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
        let api = ConsulApi::builder().start().await;
        let fake = FakeCarbonio::new(&with_accounts(vec![account(
            "alice@example.com",
            SOURCE,
            REPLICA,
        )]));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut exec = executor(&api, &fake, dir.path(), require);
        exec.execute(&action(
            1,
            ActionKind::AcquireQuorumGate { key: GATE.into() },
        ))
        .await;
        let out = exec.execute(&action(2, promote())).await;
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
            assert!(!promoted(&fake));
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
            assert!(promoted(&fake));
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
    let api = ConsulApi::builder().start().await;
    let fake = FakeCarbonio::new(&with_accounts(vec![account(
        "alice@example.com",
        SOURCE,
        REPLICA,
    )]));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut exec = executor_with(&api, &fake, dir.path(), "auto", "  quorum_gate: false\n");
    let primary = primary_holds_the_lease(&api).await;
    for id in 1..=3 {
        let out = exec.execute(&action(id, promote())).await;
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
    assert!(!promoted(&fake));

    // The primary's session expires, its lock-delay passes: taken over,
    // but promoteAccounts fails this time...
    api.advance_clock(Duration::from_secs(10));
    assert_eq!(api.lock_holder(SERVING), None);
    api.advance_clock(Duration::from_secs(15));
    fake.set_fault(
        "promoteAccounts",
        fake_carbonio::Fault::Fail { exit_code: 1 },
    );
    let out = exec.execute(&action(4, promote())).await;
    assert!(
        matches!(out.result, OutcomeResult::Failed { .. }),
        "{:?}",
        out.result
    );
    let ours = api.lock_holder(SERVING).expect("taken over");
    assert_ne!(ours, primary);
    // ...and the retry promotes: this side's own hold is no wait.
    fake.update(|s| s.faults.clear());
    let out = exec.execute(&action(5, promote())).await;
    assert!(
        matches!(out.result, OutcomeResult::Succeeded { .. }),
        "{:?}",
        out.result
    );
    assert!(promoted(&fake));
    assert_eq!(api.lock_holder(SERVING), Some(ours.clone()));
    assert_eq!(api.sessions(), vec![ours], "one session, the holder's");
}
