//! The mailbox lifecycle of the carbonio/zmprov stand-in (SPEC 7), driven
//! through the fake's own command line as habeat drives it, on a frozen
//! clock that the tests move on: a promoted account has no replica left;
//! `setAccountDestination` seeds a replica that catches up over its time;
//! an active source keeps moving and only maintenance lets its replica
//! reach it; a promotion of a replica that is behind records the loss;
//! `zmprov ga`/`ma` read and set `zimbraAccountStatus`, also in batch mode.

use crate::fake_carbonio::{self, FakeCarbonio, Loss, STATE_ENV, live_account, with_accounts};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const MBOX1: &str = "mbox1.example.com";
const MBOX2: &str = "mbox2.example.com";
const MBOX3: &str = "mbox3.example.com";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
/// Any fixed moment: the model's clock is frozen here, then moved on.
const T0: f64 = 1_800_000_000.0;

/// Run `program` (the fake's carbonio or zmprov) with `args`, `stdin` on
/// its standard input: exit code, stdout, stderr.
fn run(fake: &FakeCarbonio, program: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .env(STATE_ENV, &fake.state_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the fake");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .expect("write the fake's stdin");
    }
    let out = child.wait_with_output().expect("wait for the fake");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn carbonio(fake: &FakeCarbonio, args: &[&str]) -> String {
    let (code, out, err) = run(fake, &fake.carbonio, args, "");
    assert_eq!(code, 0, "carbonio {args:?}: {out}{err}");
    out
}

fn zmprov(fake: &FakeCarbonio, args: &[&str]) -> String {
    let (code, out, err) = run(fake, &fake.zmprov, args, "");
    assert_eq!(code, 0, "zmprov {args:?}: {out}{err}");
    out
}

/// `carbonio --json MailReplica getAccountStatus FILTER...`: the values.
fn status(fake: &FakeCarbonio, filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["--json", "MailReplica", "getAccountStatus"];
    args.extend_from_slice(filter);
    let out = carbonio(fake, &args);
    let js: Value = serde_json::from_str(&out).expect("getAccountStatus prints JSON");
    js["response"]["values"]
        .as_array()
        .cloned()
        .expect("a values list")
}

/// One account's entry, by name.
fn one(fake: &FakeCarbonio, name: &str) -> Value {
    let v = status(fake, &["accounts", name]);
    assert_eq!(v.len(), 1, "{v:?}");
    v[0].clone()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The source's (sequence, itemId) and its replica on `host`'s.
fn positions(account: &Value, host: &str) -> ((u64, u64), (u64, u64)) {
    let r = replica(account, host);
    (
        (num(account, "sequence"), num(account, "itemId")),
        (num(&r, "sequence"), num(&r, "itemId")),
    )
}

fn replica(account: &Value, host: &str) -> Value {
    account["replicas"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["destination"] == host))
        .cloned()
        .unwrap_or_else(|| panic!("no replica on {host} in {account}"))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// alice (and bob) on mbox1, a mail a second, a replica on mbox2 that
/// streams with 2 s of latency; the clock frozen at [`T0`].
fn live() -> FakeCarbonio {
    let fake = FakeCarbonio::new(&with_accounts(vec![
        live_account(ALICE, MBOX1, MBOX2, secs(1.0), secs(2.0)),
        live_account(BOB, MBOX1, MBOX2, secs(1.0), secs(2.0)),
    ]));
    fake.freeze_clock(T0);
    fake
}

#[test]
fn a_promoted_account_has_no_replica_left() {
    let fake = FakeCarbonio::new(&with_accounts(vec![
        fake_carbonio::account(ALICE, MBOX1, MBOX2),
        fake_carbonio::account(BOB, MBOX1, MBOX2),
    ]));
    carbonio(
        &fake,
        &[
            "--sync",
            "MailReplica",
            "promoteAccounts",
            "accounts",
            ALICE,
        ],
    );
    let alice = one(&fake, ALICE);
    assert_eq!(alice["accountMailHost"], MBOX2, "{alice}");
    assert_eq!(alice["replicas"], serde_json::json!([]), "{alice}");
    // Only bob still has a replica on mbox2.
    let on_mbox2: Vec<Value> = status(&fake, &["replicaServer", MBOX2])
        .iter()
        .map(|a| a["accountName"].clone())
        .collect();
    assert_eq!(on_mbox2, [BOB]);
    // A caught-up replica loses nothing.
    assert_eq!(fake.losses(), Vec::<Loss>::new());
}

#[test]
fn a_new_replica_starts_unavailable_and_catches_up_over_its_catch_up_time() {
    let fake = live();
    fake.set_catch_up(MBOX3, secs(10.0));
    fake.set_catch_up("*", secs(60.0));
    let list = fake.dir.path().join("accounts");
    std::fs::write(&list, format!("{ALICE}\n{BOB}\n")).expect("write the account list");
    let list = list.display().to_string();
    carbonio(
        &fake,
        &[
            "MailReplica",
            "setAccountDestination",
            MBOX3,
            "20",
            "input_file",
            &list,
        ],
    );
    // The per-account form, to a host with the default (`*`) catch-up.
    carbonio(
        &fake,
        &[
            "MailReplica",
            "setAccountDestination",
            "mbox4.example.com",
            "30",
            "accounts",
            ALICE,
        ],
    );
    let seeded: Vec<Value> = status(&fake, &["replicaServer", MBOX3])
        .iter()
        .map(|a| a["accountName"].clone())
        .collect();
    assert_eq!(seeded, [ALICE, BOB]);

    let seeding: Vec<Value> = status(&fake, &["replicaStatus", "unavailable"])
        .iter()
        .map(|a| a["accountName"].clone())
        .collect();
    assert_eq!(seeding, [ALICE, BOB]);
    assert_eq!(
        status(&fake, &["accountStatus", "paused"]),
        Vec::<Value>::new()
    );
    let alice = one(&fake, ALICE);
    let new = replica(&alice, MBOX3);
    assert_eq!(new["available"], false, "{new}");
    assert_eq!(new["canConnectToKafka"], false, "{new}");
    assert_eq!(new["priority"], 20, "{new}");
    assert_eq!((num(&new, "sequence"), num(&new, "itemId")), (0, 0));

    fake.advance(secs(5.0));
    let alice = one(&fake, ALICE);
    let (source, half) = positions(&alice, MBOX3);
    assert_eq!(replica(&alice, MBOX3)["available"], false, "{alice}");
    assert!(
        half.0 > 0 && half.0 < source.0 && half.1 > 0 && half.1 < source.1,
        "half-way through its seeding the replica is part-way: {alice}"
    );

    fake.advance(secs(6.0));
    let alice = one(&fake, ALICE);
    let (source, done) = positions(&alice, MBOX3);
    let r = replica(&alice, MBOX3);
    assert_eq!(r["available"], true, "{alice}");
    assert_eq!(r["canConnectToKafka"], true, "{alice}");
    assert!(done.0 > half.0 && done.1 > half.1, "{alice}");
    assert!(done.0 <= source.0 && done.1 <= source.1, "{alice}");
    // The other destination has a catch-up time of its own.
    let slow = replica(&alice, "mbox4.example.com");
    assert_eq!(slow["available"], false, "{alice}");
    assert_eq!(slow["canConnectToKafka"], false, "{alice}");
    fake.advance(secs(50.0));
    let alice = one(&fake, ALICE);
    assert_eq!(
        replica(&alice, "mbox4.example.com")["available"],
        true,
        "{alice}"
    );
}

#[test]
fn an_active_source_keeps_moving_and_only_maintenance_lets_its_replica_reach_it() {
    let fake = live();
    let start = positions(&one(&fake, ALICE), MBOX2);
    assert_eq!(start, ((1000, 500), (1000, 500)));

    // A mail a second: 2 sequence and 1 item each; the replica trails by
    // the 2 s of latency, whenever it is read.
    let mut last = start;
    for _ in 0..3 {
        fake.advance(secs(10.0));
        let (source, rep) = positions(&one(&fake, ALICE), MBOX2);
        assert_eq!(source, (last.0.0 + 20, last.0.1 + 10));
        assert!(rep.0 > last.1.0 && rep.1 > last.1.1, "the replica moves");
        assert_eq!(rep, (source.0 - 4, source.1 - 2), "the replica is behind");
        last = (source, rep);
    }

    zmprov(&fake, &["ma", ALICE, "zimbraAccountStatus", "maintenance"]);
    // What was in flight still is.
    let (source, rep) = positions(&one(&fake, ALICE), MBOX2);
    assert_eq!(source, last.0);
    assert!(rep < source);
    fake.advance(secs(3.0));
    let (held, rep) = positions(&one(&fake, ALICE), MBOX2);
    assert_eq!(held, source, "no mail reaches an account in maintenance");
    assert_eq!(rep, held, "its replica reaches the source");
    // bob, still active, stays behind.
    let (bob_source, bob_rep) = positions(&one(&fake, BOB), MBOX2);
    assert!(bob_rep.0 < bob_source.0, "bob's replica is behind");

    zmprov(&fake, &["ma", ALICE, "zimbraAccountStatus", "active"]);
    fake.advance(secs(5.0));
    let (source, rep) = positions(&one(&fake, ALICE), MBOX2);
    assert_eq!(source, (held.0 + 10, held.1 + 5), "mail arrives again");
    assert!(rep < source, "the replica is behind again");
}

#[test]
fn promoting_a_replica_that_is_behind_records_the_loss() {
    let fake = live();
    one(&fake, ALICE);
    fake.advance(secs(30.0));
    let (source, rep) = positions(&one(&fake, ALICE), MBOX2);
    assert!(rep < source, "{source:?} {rep:?}");

    let list = fake.dir.path().join("promote");
    std::fs::write(&list, format!("{ALICE}\n")).expect("write the account list");
    carbonio(
        &fake,
        &[
            "--json",
            "--sync",
            "MailReplica",
            "promoteAccounts",
            "input_file",
            &list.display().to_string(),
            "destination",
            MBOX2,
            "threads",
            "2",
        ],
    );
    let losses = fake.losses();
    assert_eq!(
        losses,
        [Loss {
            account: ALICE.into(),
            from: MBOX1.into(),
            to: MBOX2.into(),
            at: T0 + 30.0,
            sequence: source.0 - rep.0,
            item_id: source.1 - rep.1,
        }]
    );
    // The account now lives where its replica was, at the replica's
    // position: the gap is gone from the CLI's view.
    let alice = one(&fake, ALICE);
    assert_eq!(alice["accountMailHost"], MBOX2);
    assert_eq!((num(&alice, "sequence"), num(&alice, "itemId")), rep);

    // bob in maintenance until his replica has everything: no loss.
    zmprov(&fake, &["ma", BOB, "zimbraAccountStatus", "maintenance"]);
    fake.advance(secs(3.0));
    let (source, rep) = positions(&one(&fake, BOB), MBOX2);
    assert_eq!(source, rep);
    carbonio(
        &fake,
        &[
            "--sync",
            "MailReplica",
            "promoteAccounts",
            "accounts",
            BOB,
            "destination",
            MBOX2,
        ],
    );
    assert_eq!(fake.losses().len(), 1, "{:?}", fake.losses());
    assert_eq!(one(&fake, BOB)["accountMailHost"], MBOX2);
}

#[test]
fn a_promotion_to_a_destination_without_a_replica_changes_nothing() {
    let fake = live();
    let (code, _, err) = run(
        &fake,
        &fake.carbonio,
        &[
            "MailReplica",
            "promoteAccounts",
            "accounts",
            &format!("{ALICE},{BOB}"),
            "destination",
            MBOX3,
        ],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has no replica on mbox3.example.com"), "{err}");
    assert_eq!(fake.accounts_on(MBOX1), [ALICE, BOB]);
    assert_eq!(fake.losses(), Vec::<Loss>::new());
}

#[test]
fn zmprov_reads_and_sets_the_account_status_also_in_batch_mode() {
    let fake = live();
    assert_eq!(
        zmprov(&fake, &["ga", ALICE, "zimbraAccountStatus"]),
        format!("# name {ALICE}\nzimbraAccountStatus: active\n\n")
    );
    zmprov(&fake, &["ma", BOB, "zimbraAccountStatus", "locked"]);

    // One process: record, set maintenance, and an unknown account that
    // fails without stopping the rest.
    let batch = format!(
        "ga {ALICE} zimbraAccountStatus\nga {BOB} zimbraAccountStatus\n\
         ma {ALICE} zimbraAccountStatus maintenance\n\
         ma nobody@example.com zimbraAccountStatus maintenance\n\
         ma \"{BOB}\" zimbraAccountStatus maintenance\n"
    );
    let before = fake.zmprov_processes().len();
    let (code, out, err) = run(&fake, &fake.zmprov, &[], &batch);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no such account: nobody@example.com"), "{err}");
    assert_eq!(
        out,
        format!(
            "# name {ALICE}\nzimbraAccountStatus: active\n\n# name {BOB}\nzimbraAccountStatus: locked\n\n"
        )
    );
    let procs = fake.zmprov_processes();
    assert_eq!(procs.len(), before + 1, "one process for the batch");
    assert_eq!(procs[before].args, Vec::<String>::new());
    assert_eq!(procs[before].stdin.len(), 5, "{:?}", procs[before].stdin);
    for who in [ALICE, BOB] {
        assert_eq!(
            zmprov(&fake, &["ga", who, "zimbraAccountStatus"]),
            format!("# name {who}\nzimbraAccountStatus: maintenance\n\n")
        );
    }

    // Restored exactly: locked stays locked.
    let (code, out, err) = run(
        &fake,
        &fake.zmprov,
        &[],
        &format!("ma {ALICE} zimbraAccountStatus active\nma {BOB} zimbraAccountStatus locked\n"),
    );
    assert_eq!(code, 0, "{out}{err}");
    let names: Vec<(String, Option<String>)> = fake
        .state()
        .accounts
        .into_iter()
        .map(|a| (a.name, a.status))
        .collect();
    assert_eq!(
        names,
        [
            (ALICE.to_string(), Some("active".to_string())),
            (BOB.to_string(), Some("locked".to_string()))
        ]
    );

    let (code, _, err) = run(
        &fake,
        &fake.zmprov,
        &["ma", ALICE, "zimbraAccountStatus", "asleep"],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("INVALID_ATTR_VALUE"), "{err}");
}
