//! The survey of this DC's own mailstore (SPEC §4, "After a failover")
//! through the real binary: after a rehearsed failover the promoted
//! accounts live on this DC's mailstore with no replica at all, and
//! `status` (its headline), `status --json`, `/status` and `/metrics`
//! count and name them, an event says when the set changes; a replica
//! seeded with `setAccountDestination` is followed from initialising to
//! catching up to protected.

use crate::bed::{Bed, REPLICA, SOURCE, text};
use crate::fake_carbonio::{self, Account, STATE_ENV};
use crate::support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::{Need, require};

fn habeat(bed: &Bed, args: &[&str]) -> Output {
    bed.operator(args, "5s")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The fake's own CLI, as an operator would run it on the mailstore.
fn carbonio(bed: &Bed, args: &[&str]) -> String {
    let out = Command::new(&bed.fake.carbonio)
        .args(args)
        .env(STATE_ENV, &bed.fake.state_path)
        .output()
        .expect("run the fake carbonio");
    assert_eq!(
        out.status.code(),
        Some(0),
        "carbonio {args:?}: {}",
        text(&out)
    );
    stdout(&out)
}

/// Seven accounts on the peer, each replicated here: more than the
/// headline names without `--verbose`.
fn seven() -> Vec<Account> {
    (1..=7)
        .map(|i| fake_carbonio::account(&format!("user{i}@example.com"), SOURCE, REPLICA))
        .collect()
}

fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["account"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    n.sort();
    n
}

fn changes(bed: &Bed) -> Vec<serde_json::Value> {
    bed.journal()
        .into_iter()
        .filter(|e| e["event"] == "accounts_unprotected_changed")
        .collect()
}

/// After a rehearsed failover every promoted account is on this DC's
/// mailstore without a replica: `status` opens with them (the first five
/// named, all with `--verbose`, since when, `habeat reprotect`), `--json`
/// and the daemon's `/status` and `/metrics` count and name them, and the
/// change is an `accounts_unprotected_changed` event, again when one of
/// them gets a replica.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_failover_the_unprotected_accounts_are_named_counted_and_alerted() {
    if !require(&[Need::Netns]) {
        return;
    }
    let port = support::free_port();
    let bed = Bed::builder()
        .accounts(seven())
        .consul_provider_threads_3()
        .carbonio_timeouts("20s", "20s")
        .tail(&format!(
            "replicas:\n  survey_interval: 1ms\nmetrics:\n  listen: 127.0.0.1:{port}\n"
        ))
        .start()
        .await;
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = stdout(&habeat(&bed, &["status"]));
    assert!(!before.contains("UNPROTECTED"), "{before}");
    assert!(
        before.contains(&format!(
            "this DC's mailstore {REPLICA}: no replicated account lives here"
        )),
        "an empty mailstore is not said plainly:\n{before}"
    );
    assert!(changes(&bed).is_empty(), "{}", bed.journal_text());

    bed.kill_peer();
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.fake.accounts_on(REPLICA).len(), 7, "{}", text(&out));
    // The next check surveys this DC's mailstore, now holding them all.
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let all: Vec<String> = (1..=7).map(|i| format!("user{i}@example.com")).collect();
    let st = habeat(&bed, &["status"]);
    let s = stdout(&st);
    let first = s.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "UNPROTECTED: 7 of 7 account(s) on {REPLICA} (this DC's mailstore)"
        )),
        "status does not open with the unprotected accounts:\n{s}"
    );
    assert!(first.contains(" since "), "{first}");
    assert!(first.contains("`habeat reprotect`"), "{first}");
    let named: Vec<&String> = all.iter().filter(|a| s.contains(a.as_str())).collect();
    assert_eq!(named.len(), 5, "the first five named:\n{s}");
    assert!(s.contains("and 2 more"), "{s}");
    let verbose = stdout(&habeat(&bed, &["status", "--verbose"]));
    for a in &all {
        let line = verbose
            .lines()
            .find(|l| l.contains("unprotected") && l.contains(a.as_str()))
            .unwrap_or_else(|| panic!("--verbose does not name {a}:\n{verbose}"));
        assert!(line.contains("no replica"), "{line}");
    }

    let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    let p = &js["protection"];
    assert_eq!(p["unprotected_count"], 7, "{p:#}");
    assert_eq!(names(&p["unprotected"]), all, "{p:#}");
    assert_eq!(p["command"], "habeat reprotect");
    assert_eq!(p["mail_host"], REPLICA);
    let since = p["unprotected_since"].as_u64().expect("since when");

    let ev = changes(&bed);
    assert_eq!(ev.len(), 1, "{}", bed.journal_text());
    assert_eq!(ev[0]["unprotected_count"], 7, "{:#}", ev[0]);
    assert_eq!(ev[0]["added_count"], 7);

    // One gets a replica that is available at once: the set changes,
    // and that is an event too; the others' since stays.
    bed.fake.set_catch_up(SOURCE, Duration::ZERO);
    carbonio(
        &bed,
        &[
            "MailReplica",
            "setAccountDestination",
            SOURCE,
            "10",
            "accounts",
            "user1@example.com",
        ],
    );
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ev = changes(&bed);
    assert_eq!(ev.len(), 2, "{}", bed.journal_text());
    assert_eq!(ev[1]["unprotected_count"], 6, "{:#}", ev[1]);
    assert_eq!(
        ev[1]["cleared"],
        serde_json::json!(["user1@example.com"]),
        "{:#}",
        ev[1]
    );
    let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    assert_eq!(js["protection"]["unprotected_count"], 6);
    assert_eq!(js["protection"]["unprotected_since"].as_u64(), Some(since));

    // The daemon surveys this DC's mailstore itself: a second account
    // gets a replica, and /status and /metrics follow.
    carbonio(
        &bed,
        &[
            "MailReplica",
            "setAccountDestination",
            SOURCE,
            "10",
            "accounts",
            "user2@example.com",
        ],
    );
    let mut daemon = bed
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let base = format!("http://127.0.0.1:{port}");
    let mut scrape = None;
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(format!("{base}/metrics")).await
            && let Ok(body) = r.text().await
            && body.contains("habeat_accounts_unprotected 5")
        {
            scrape = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status: serde_json::Value = reqwest::get(format!("{base}/status"))
        .await
        .expect("GET /status")
        .json()
        .await
        .expect("/status is JSON");
    let _ = daemon.kill();
    let _ = daemon.wait();
    let body = scrape.expect("/metrics never showed habeat_accounts_unprotected 5");
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("parse /metrics");
    let gauge = |name: &str, state: Option<&str>| {
        parsed
            .samples
            .iter()
            .find(|x| x.metric == name && state.is_none_or(|s| x.labels.get("state") == Some(s)))
            .and_then(|x| match x.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    };
    let at = gauge("habeat_accounts_unprotected_since_timestamp_seconds", None)
        .expect("since when, in /metrics");
    assert!(
        (at - since as f64 / 1000.0).abs() < 0.01,
        "{at} vs {since}: {body}"
    );
    assert_eq!(
        gauge("habeat_accounts_protection", Some("no_replica")),
        Some(5.0)
    );
    assert_eq!(
        gauge("habeat_accounts_protection", Some("protected")),
        Some(2.0)
    );
    assert_eq!(
        status["protection"]["unprotected_count"], 5,
        "/status: {status}"
    );
    assert_eq!(
        names(&status["protection"]["unprotected"]),
        all[2..].to_vec()
    );
    assert_eq!(
        changes(&bed).len(),
        3,
        "the daemon's change is an event too"
    );
}

/// A replica seeded by `setAccountDestination` (the stand-in's: it starts
/// unavailable, is seeded over its catch-up time, then streams with a
/// latency) is followed by the survey: `status` and `--json` show it
/// initialising, then catching up (available, behind the mail that just
/// arrived), then protected, naming the slowest.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_replica_is_followed_from_initialising_to_catching_up_to_protected() {
    if !require(&[Need::Netns]) {
        return;
    }
    // Carol lives here already (promoted): no replica, a mail every 100 s.
    let carol = Account {
        replicas: Vec::new(),
        sequence: Some(1000),
        item_id: Some(500),
        mail_every: Some(100.0),
        ..fake_carbonio::account("carol@example.com", REPLICA, SOURCE)
    };
    // Dave lives on the peer with no replica at all (created after
    // replication was set up): he gets one here.
    let dave = Account {
        replicas: Vec::new(),
        ..fake_carbonio::account("dave@example.com", SOURCE, REPLICA)
    };
    let bed = Bed::builder()
        .accounts(vec![carol, dave])
        .consul_provider_threads_3()
        .carbonio_timeouts("20s", "20s")
        .tail("replicas:\n  survey_interval: 1ms\n")
        .start()
        .await;
    // Just after a mail (at 1 800 000 000); seeding takes 10 s, replicas
    // stream 2 s late.
    bed.fake.freeze_clock(1_800_000_000.5);
    bed.fake.set_catch_up("*", Duration::from_secs(10));
    bed.fake.update(|s| s.replication_delay = 2.0);
    let stage = |bed: &Bed| {
        let out = habeat(bed, &["check"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let s = stdout(&habeat(bed, &["status"]));
        let js = crate::bin::json(&habeat(bed, &["--json", "status"]));
        (s, js["protection"].clone())
    };
    let (s, p) = stage(&bed);
    assert!(s.starts_with("UNPROTECTED: 1 of 1"), "{s}");
    assert_eq!(p["survey"]["counts"]["no_replica"], 1, "{p:#}");

    carbonio(
        &bed,
        &[
            "MailReplica",
            "setAccountDestination",
            SOURCE,
            "10",
            "accounts",
            "carol@example.com",
        ],
    );
    carbonio(
        &bed,
        &[
            "MailReplica",
            "setAccountDestination",
            REPLICA,
            "10",
            "accounts",
            "dave@example.com",
        ],
    );
    bed.fake.advance(Duration::from_secs(4));
    let (s, p) = stage(&bed);
    let peer = s
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "re-protection of {SOURCE}'s accounts on {REPLICA}"
            ))
        })
        .unwrap_or_else(|| panic!("no progress of the peer's accounts replicated here:\n{s}"));
    assert!(
        peer.contains("1 initialising, 0 catching up, 0 protected")
            && peer.contains("dave@example.com"),
        "{peer}"
    );
    assert_eq!(
        p["peer_replicas_here"]["counts"]["initialising"], 1,
        "{p:#}"
    );
    let line = s
        .lines()
        .find(|l| l.starts_with(&format!("re-protection of {REPLICA}'s accounts")))
        .unwrap_or_else(|| panic!("no progress line:\n{s}"));
    assert!(
        line.contains("1 initialising, 0 catching up, 0 protected"),
        "{line}"
    );
    assert!(line.contains("carol@example.com"), "the slowest: {line}");
    assert_eq!(p["survey"]["counts"]["initialising"], 1, "{p:#}");
    assert_eq!(p["survey"]["slowest"][0]["account"], "carol@example.com");
    assert_eq!(
        p["unprotected_count"], 1,
        "an initialising replica protects nothing yet"
    );

    // Seeded, available, reaching Kafka; a mail arrived 1 s ago, and the
    // replica streams 2 s late: behind.
    bed.fake.advance(Duration::from_secs(96));
    let (s, p) = stage(&bed);
    assert!(!s.contains("UNPROTECTED"), "{s}");
    let line = s
        .lines()
        .find(|l| l.starts_with(&format!("re-protection of {REPLICA}'s accounts")))
        .unwrap_or_else(|| panic!("no progress line:\n{s}"));
    assert!(
        line.contains("0 initialising, 1 catching up, 0 protected"),
        "{line}"
    );
    assert_eq!(p["survey"]["counts"]["catching_up"], 1, "{p:#}");
    assert_eq!(p["unprotected_count"], 0);
    // Dave's replica, on a static account, is seeded and done.
    assert_eq!(p["peer_replicas_here"]["counts"]["protected"], 1, "{p:#}");
    assert!(!s.contains(&format!("re-protection of {SOURCE}'s")), "{s}");

    // Two seconds on, it has the mail: protected.
    bed.fake.advance(Duration::from_secs(2));
    let (s, p) = stage(&bed);
    assert_eq!(p["survey"]["counts"]["protected"], 1, "{p:#}");
    assert!(
        s.contains(&format!(
            "this DC's mailstore {REPLICA}: 1 account(s), 0 unprotected"
        )),
        "{s}"
    );
    assert!(!s.contains("re-protection of"), "{s}");
}

/// After a failover the peer's mailstore lists nothing: its accounts live
/// here now. `status` says so, not that replication was never set up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_an_empty_peer_survey_says_where_the_accounts_went() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::builder()
        .accounts(seven())
        .consul_provider_threads_3()
        .carbonio_timeouts("20s", "20s")
        .tail("replicas:\n  survey_interval: 1ms\n")
        .start()
        .await;
    bed.kill_peer();
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.fake.accounts_on(REPLICA).len(), 7, "{}", text(&out));
    bed.revive_peer();
    // Checks until one has surveyed the returned peer's (empty) mailstore.
    let mut s = String::new();
    for _ in 0..20 {
        let out = habeat(&bed, &["check"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        s = stdout(&habeat(&bed, &["status"]));
        if s.contains(&format!(
            "the survey of {SOURCE} lists no replicated account"
        )) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        s.contains("habeat promoted them to this DC's mailstore"),
        "status does not say where the accounts went:\n{s}"
    );
    assert!(
        !s.contains("set up the replicas of its accounts"),
        "status gives the advice for a mailstore never replicated:\n{s}"
    );
    let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    let w = js["replicas"]["survey"]["warning"]
        .as_str()
        .unwrap_or_default();
    assert!(w.contains("habeat promoted them"), "{js:#}");
}
