//! `habeat reprotect` through the real binary, after a rehearsed failover
//! (`habeat check` with the peer's namespace cut off, then the link back):
//! which accounts get a replica on the returned primary, that a diverged
//! one is left out and named until the operator names it
//! (`no-seed-over-a-diverged-copy`), and that a kill -9 between two
//! batches neither repeats a finished batch nor skips one.

use crate::bed::{Bed, REPLICA, SOURCE, text};
use crate::fake_carbonio::{self, Account, Fault, Invocation};
use crate::support::{Need, require};
use std::time::Duration;

/// An account on the peer's mailstore with a replica here; `behind`: the
/// replica is 12 sequence and 3 itemId behind the source.
fn planted(name: &str, behind: bool) -> Account {
    let mut a = fake_carbonio::account(name, SOURCE, REPLICA);
    if behind {
        a.sequence = Some(112);
        a.item_id = Some(303);
        a.replicas[0].sequence = Some(100);
        a.replicas[0].item_id = Some(300);
    }
    a
}

/// The peer failed over by `check` and back: every account lives here,
/// none has a replica.
async fn after_failover(accounts: Vec<Account>) -> Bed {
    let bed = Bed::builder()
        .accounts(accounts)
        .carbonio_timeouts("10s", "10s")
        .start()
        .await;
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
    bed.revive_peer();
    bed
}

/// The accounts handed to each `setAccountDestination` call, in order.
fn seeded(bed: &Bed) -> Vec<(String, Vec<String>)> {
    bed.calls("setAccountDestination")
        .into_iter()
        .map(|i: Invocation| {
            let at = i.args.iter().position(|a| a == "setAccountDestination");
            let host = at
                .and_then(|p| i.args.get(p + 1))
                .cloned()
                .unwrap_or_default();
            (host, i.input)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reprotect_seeds_all_but_the_diverged_account_which_it_names_until_discarded() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = after_failover(vec![
        planted("alice@example.com", false),
        planted("bob@example.com", true),
        planted("carol@example.com", false),
    ])
    .await;

    // Known diverged, with its gap, in status (text and JSON) and history.
    let status = bed.run(&["status"]);
    let s = String::from_utf8_lossy(&status.stdout);
    assert!(
        s.lines()
            .any(|l| l.contains("bob@example.com")
                && l.contains("behind by 12 sequence and 3 itemId")),
        "{s}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&bed.run(&["status", "--json"]).stdout).expect("status --json");
    assert_eq!(json["diverged"][0]["account"], "bob@example.com", "{json}");
    assert_eq!(json["diverged"][0]["sequence"], 12, "{json}");
    let history = text(&bed.run(&["history"]));
    assert!(
        history.contains("bob@example.com (behind by 12 sequence and 3 itemId)"),
        "{history}"
    );

    // The dry run shows the batch and its argv, and seeds nothing.
    let dry = bed.run(&["--dry-run", "reprotect"]);
    let d = text(&dry);
    assert!(
        d.contains("setAccountDestination mbox1.example.com 10 input_file"),
        "{d}"
    );
    assert!(seeded(&bed).is_empty(), "a dry run seeded: {d}");

    let out = bed.run(&["reprotect", "--yes"]);
    let o = text(&out);
    assert_eq!(out.status.code(), Some(4), "{o}");
    assert_eq!(
        seeded(&bed),
        vec![(
            SOURCE.to_string(),
            vec![
                "alice@example.com".to_string(),
                "carol@example.com".to_string()
            ]
        )],
        "{o}"
    );
    assert!(
        o.contains("bob@example.com (behind by 12 sequence and 3 itemId"),
        "{o}"
    );
    let include = format!(
        "habeat reprotect --to {SOURCE} --accounts bob@example.com --discard-diverged bob@example.com"
    );
    assert!(o.contains(&include), "{o}");

    // Named by the operator: included, and no longer diverged.
    let out = bed.run(&[
        "reprotect",
        "--yes",
        "--json",
        "--accounts",
        "bob@example.com",
        "--discard-diverged",
        "bob@example.com",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reprotect --json");
    assert_eq!(v["batches"][0]["accounts"][0], "bob@example.com", "{v}");
    assert_eq!(v["batches"][0]["status"], "done", "{v}");
    assert_eq!(seeded(&bed).len(), 2);
    assert_eq!(seeded(&bed)[1].1, ["bob@example.com"]);
    let json: serde_json::Value =
        serde_json::from_slice(&bed.run(&["status", "--json"]).stdout).expect("status --json");
    assert_eq!(json["diverged"], serde_json::json!([]), "{json}");
    assert!(bed.journal_text().contains("divergence_discarded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reprotect_is_refused_while_the_destination_is_down() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = after_failover(vec![planted("alice@example.com", false)]).await;
    bed.kill_peer();
    let out = bed.run(&["reprotect", "--yes"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("refused"), "{}", text(&out));
    assert!(seeded(&bed).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reprotect_killed_between_batches_neither_repeats_a_finished_batch_nor_skips_one() {
    if !require(&[Need::Netns]) {
        return;
    }
    let names = [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ];
    let bed = after_failover(names.iter().map(|n| planted(n, false)).collect()).await;
    bed.fake
        .set_fault("setAccountDestination", Fault::Slow { seconds: 1.5 });
    let mut child = bed.spawn(
        bed.command(&["reprotect", "--yes", "--batch-size", "1"]),
        "first",
    );
    // Kill it once the first batch is recorded done and the second has
    // started.
    let step = |i: usize| {
        bed.state()["protection"]["run"]["steps"][i]["status"]
            .as_str()
            .map(str::to_owned)
    };
    let mut waited = 0;
    while !(step(0).as_deref() == Some("done") && step(1).as_deref() == Some("started")) {
        assert!(
            waited < 300,
            "the first batch never finished: {}",
            bed.output_of("first")
        );
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    // The fake's slow call outlives habeat; let it end.
    std::thread::sleep(Duration::from_secs(2));
    bed.fake.update(|s| s.faults.clear());
    let out = bed.run(&["reprotect", "--yes", "--batch-size", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = seeded(&bed);
    let count = |n: &str| {
        calls
            .iter()
            .filter(|(_, a)| a.iter().any(|x| x == n))
            .count()
    };
    assert_eq!(
        count("a@example.com"),
        1,
        "a finished batch ran again: {calls:?}"
    );
    for n in &names[1..] {
        assert!(count(n) >= 1, "batch of {n} skipped: {calls:?}");
    }
    // Only the batch in doubt at the kill may run twice.
    assert_eq!(count("c@example.com"), 1, "{calls:?}");
    assert_eq!(count("d@example.com"), 1, "{calls:?}");
    let steps = bed.state()["protection"]["run"]["steps"].clone();
    assert!(
        steps
            .as_array()
            .is_some_and(|s| s.len() == 4 && s.iter().all(|x| x["status"] == "done")),
        "{steps}"
    );
}

/// `habeat run` in the background (killed on drop).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll `done` (every 50 ms, at most 30 s) or fail saying `what`.
fn wait_until(bed: &Bed, what: &str, done: impl Fn() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} within 30s\n{}", bed.output_of("daemon"));
}

/// Let the daemon complete `n` more rounds (each saves `last_round_at`).
fn rounds(bed: &Bed, n: usize) {
    for _ in 0..n {
        let before = bed.state()["last_round_at"].clone();
        wait_until(bed, "a round", || bed.state()["last_round_at"] != before);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_reprotects_once_when_the_old_primary_returns_and_not_before() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::builder()
        .accounts(vec![
            planted("alice@example.com", false),
            planted("bob@example.com", true),
            planted("carol@example.com", false),
        ])
        .carbonio_timeouts("10s", "10s")
        .add("replicas", "reprotect: auto\nsurvey_interval: 0")
        .start()
        .await;
    let _d = Daemon(bed.spawn(bed.command(&["run"]), "daemon"));
    rounds(&bed, 2);
    bed.kill_peer();
    wait_until(&bed, "the promotion", || bed.promotions() == 1);
    // Down: nothing seeded onto the lost mailstore.
    rounds(&bed, 6);
    assert!(seeded(&bed).is_empty(), "{:?}", seeded(&bed));
    bed.revive_peer();
    wait_until(&bed, "the re-protection", || !seeded(&bed).is_empty());
    rounds(&bed, 8);
    assert_eq!(
        seeded(&bed),
        vec![(
            SOURCE.to_string(),
            vec![
                "alice@example.com".to_string(),
                "carol@example.com".to_string()
            ]
        )],
        "once, without the diverged account\n{}",
        bed.output_of("daemon")
    );
    let left_out: Vec<serde_json::Value> = bed
        .journal()
        .into_iter()
        .filter(|e| e["event"] == "reprotect_left_out")
        .collect();
    assert_eq!(left_out.len(), 1, "{left_out:?}");
    assert_eq!(left_out[0]["accounts"][0]["account"], "bob@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_gives_a_new_account_on_the_peer_a_replica_here_within_one_survey_once() {
    if !require(&[Need::Netns]) {
        return;
    }
    let mut newbie = fake_carbonio::account("newbie@example.com", SOURCE, REPLICA);
    newbie.replicas.clear();
    let bed = Bed::builder()
        .accounts(vec![planted("alice@example.com", false), newbie])
        .carbonio_timeouts("10s", "10s")
        .add("replicas", "reprotect: auto\nsurvey_interval: 1s")
        .start()
        .await;
    let _d = Daemon(bed.spawn(bed.command(&["run"]), "daemon"));
    wait_until(&bed, "a replica for the new account", || {
        !seeded(&bed).is_empty()
    });
    assert_eq!(
        seeded(&bed),
        vec![(REPLICA.to_string(), vec!["newbie@example.com".to_string()])]
    );
    // Two more surveys: still once.
    let listings = || bed.calls("getAccountStatus").len();
    let n = listings();
    wait_until(&bed, "two more surveys", || listings() >= n + 2);
    rounds(&bed, 2);
    assert_eq!(seeded(&bed).len(), 1, "{:?}", seeded(&bed));
    assert!(bed.journal_text().contains("reprotect_recorded"));
}
