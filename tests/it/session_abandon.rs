//! A daemon job that ends without handing its outcome back (it overran,
//! panicked, or was never started) must not leave the engine waiting for
//! that outcome forever (`resumable-steps`: nothing unfinished is skipped).

use habeat::engine::{EventKind, Input, OperatorCommand, PromoteTarget};
use habeat::session::{Fed, Session};
use std::path::Path;

fn session(dir: &Path) -> Session {
    let yaml = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  state_dir: {d}/state\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  checkRestartReplicaFile: {d}/rstop\n\
         primary:\n  appserver_ip: 192.0.2.1\n  appserver_vmname: mbox1.example.com\n\
         secondary:\n  appserver_vmname: mbox2.example.com\n\
         carbonio:\n  cli: /bin/false\n  zmprov: /bin/false\n  run_as: \"\"\n",
        d = dir.display(),
    );
    let cfg = habeat::config::load_str(&yaml, &dir.join("habeat.yml")).expect("config");
    Session::open(&cfg, false).expect("session")
}

#[tokio::test]
async fn an_abandoned_action_is_taken_as_interrupted_and_handed_out_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = session(dir.path());
    let mut fed = Fed::default();
    // An operator's promotion: the engine hands out its first action, which
    // a daemon job would run.
    let first = s
        .decide(
            Input::Operator(OperatorCommand::Promote {
                target: PromoteTarget::Accounts(vec!["alice@example.com".into()]),
                accounts: vec!["alice@example.com".into()],
                threads: None,
                force: true,
                evidence: Vec::new(),
                follow_ups: true,
            }),
            &mut fed,
        )
        .expect("decide")
        .expect("an action");

    // While it runs here, the next input does not take it for a crash.
    let lock_files = s.lock_files().expect("scan");
    assert_eq!(s.decide(lock_files, &mut fed).expect("decide"), None);

    // The job is gone without an outcome: handed back, the action is in
    // doubt like after a crash, journaled as interrupted, and resumed.
    s.abandon_running().await;
    let mut fed = Fed::default();
    let lock_files = s.lock_files().expect("scan");
    let again = s.decide(lock_files, &mut fed).expect("decide");
    assert!(
        fed.events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Interrupted { action } if action.id == first.id)),
        "{:#?}",
        fed.events
    );
    let again = again.expect("the engine acts again instead of waiting forever");
    assert_ne!(again.id, first.id);
}
