//! The replica survey (invariant 13 `replicas-at-risk-named`)
//! through the real binary: a primary appserver in a network namespace,
//! the Consul API test server, and the fake carbonio modelling every field
//! of `getAccountStatus` per account (available, Kafka, paused, lagging
//! `sequence` or `itemId`, no replica, numbers as strings, extra fields).

use crate::bed::{Bed, REPLICA, SOURCE, text, tree};
use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{Account, Fault, ReplicaState, account};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use support::{Need, require};

/// The accounts at risk, with the word `status` uses for why.
const AT_RISK: &[(&str, &str)] = &[
    ("unavailable@example.com", "replica unavailable"),
    ("nokafka@example.com", "cannot reach Kafka"),
    ("paused@example.com", "replication paused"),
    ("behindseq@example.com", "behind the source by 12 sequence"),
    ("behinditem@example.com", "behind the source by 3 itemId"),
    ("noreplica@example.com", "no replica"),
];
/// The healthy ones: one plain, one printed with strings for numbers and
/// booleans and fields habeat does not know (a newer release).
const HEALTHY: &[&str] = &["alice@example.com", "strings@example.com"];

fn accounts() -> Vec<Account> {
    let r = |f: &dyn Fn(&mut ReplicaState)| {
        let mut x = ReplicaState::on(REPLICA);
        f(&mut x);
        vec![x]
    };
    let with = |name: &str, replicas: Vec<ReplicaState>| Account {
        replicas,
        sequence: Some(100),
        item_id: Some(50),
        ..account(name, SOURCE, REPLICA)
    };
    let mut strings = with("strings@example.com", r(&|_| {}));
    strings.as_strings = true;
    strings.extra = serde_json::json!({
        "quotaUsed": 12345,
        "lastSync": "2026-12-01T10:00:00Z",
        "replica": { "lagMs": 3, "nodeId": "n2" },
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    vec![
        with("alice@example.com", r(&|_| {})),
        strings,
        with("unavailable@example.com", r(&|x| x.available = false)),
        with(
            "nokafka@example.com",
            r(&|x| x.can_connect_to_kafka = false),
        ),
        with("paused@example.com", r(&|x| x.paused = Some(true))),
        with("behindseq@example.com", r(&|x| x.sequence = Some(88))),
        with("behinditem@example.com", r(&|x| x.item_id = Some(47))),
        with("noreplica@example.com", Vec::new()),
    ]
}

/// A primary appserver in a namespace, Consul, the fake CLI with
/// [`accounts`], no switch or flush after the promotion; `replicas`
/// (indented lines) and `extra` (whole sections) end the config.
pub(crate) async fn start(replicas: &str, extra: &str) -> Bed {
    Bed::builder()
        .accounts(accounts())
        .consul_provider_threads_3()
        .carbonio_timeouts("20s", "20s")
        .tail(&format!("replicas:\n{replicas}\n{extra}"))
        .start()
        .await
}

/// `habeat <args>` as `bin::habeat` runs it: no token, a 5 s lock wait.
fn habeat(bed: &Bed, args: &[&str]) -> Output {
    bed.operator(args, "5s")
}

fn survey_file(bed: &Bed) -> PathBuf {
    bed.path("state/survey.json")
}

fn surveys(bed: &Bed) -> usize {
    bed.calls("getAccountStatus").len()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn at_risk_names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v["at_risk"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["account"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    n.sort();
    n
}

fn expected_at_risk() -> Vec<String> {
    let mut n: Vec<String> = AT_RISK.iter().map(|(a, _)| (*a).to_owned()).collect();
    n.sort();
    n
}

/// A survey while the peer is Up names exactly the accounts at risk, with
/// why, in `status`, `status --json`, and (the daemon) `/status` and
/// `/metrics`; the healthy ones only with `--verbose`; the change is a
/// journaled `replicas_at_risk_changed` event.
#[tokio::test(flavor = "multi_thread")]
async fn a_survey_names_exactly_the_accounts_at_risk_everywhere() {
    if !require(&[Need::Netns]) {
        return;
    }
    let port = support::free_port();
    let bed = start(
        "  survey_interval: 5m",
        &format!("metrics:\n  listen: 127.0.0.1:{port}"),
    )
    .await;
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        survey_file(&bed).is_file(),
        "no survey.json: {}",
        text(&out)
    );

    let st = habeat(&bed, &["status"]);
    let s = stdout(&st);
    assert!(
        s.contains(&format!("replicas of {SOURCE}: 8 accounts, 6 at risk")),
        "{}",
        text(&st)
    );
    for (name, why) in AT_RISK {
        let line = s
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not named: {}", text(&st)));
        assert!(line.contains(why), "{name}: {line:?} does not say {why:?}");
    }
    for name in HEALTHY {
        assert!(!s.contains(name), "healthy {name} listed without --verbose");
    }
    let verbose = stdout(&habeat(&bed, &["status", "--verbose"]));
    for name in HEALTHY {
        assert!(verbose.contains(name), "--verbose does not list {name}");
    }

    let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    let survey = &js["replicas"]["survey"];
    assert_eq!(at_risk_names(survey), expected_at_risk(), "{js}");
    assert_eq!(survey["counts"]["ok"], 2);
    assert_eq!(survey["counts"]["behind"], 2);
    assert_eq!(survey["max_lag_sequence"], 12);
    assert_eq!(survey["max_lag_item_id"], 3);
    assert!(
        js["replicas"].get("accounts").is_none(),
        "status --json lists every account only when asked: {js}"
    );
    let all = crate::bin::json(&habeat(&bed, &["--json", "status", "--accounts", "all"]));
    assert_eq!(
        all["replicas"]["accounts"].as_array().map(Vec::len),
        Some(8),
        "--accounts all: the whole classification"
    );

    let hist = stdout(&habeat(&bed, &["history"]));
    assert!(
        hist.contains("6 of 8 account(s) at risk"),
        "no replicas_at_risk_changed event: {hist}"
    );

    // The daemon: /status and /metrics, from the survey it keeps.
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
            && body.contains("habeat_replicas_at_risk 6")
        {
            scrape = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status: serde_json::Value = reqwest::get(format!("{base}/status"))
        .await
        .expect("GET /status")
        .json()
        .await
        .expect("/status is JSON");
    let everyone: serde_json::Value = reqwest::get(format!("{base}/status?accounts=all"))
        .await
        .expect("GET /status?accounts=all")
        .json()
        .await
        .expect("/status?accounts=all is JSON");
    let refused = reqwest::get(format!("{base}/status?accounts=some"))
        .await
        .expect("GET /status?accounts=some");
    let _ = daemon.kill();
    assert!(
        status["replicas"].get("accounts").is_none(),
        "/status lists every account only when asked: {status}"
    );
    let listed: Vec<&str> = everyone["replicas"]["accounts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["account"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed.len(), 8, "/status?accounts=all: {everyone}");
    let mut at_risk_first: Vec<String> = listed[..6].iter().map(|s| s.to_string()).collect();
    at_risk_first.sort();
    assert_eq!(at_risk_first, expected_at_risk(), "{everyone}");
    assert_eq!(everyone["replicas"]["survey"], status["replicas"]["survey"]);
    assert_eq!(refused.status(), 400);
    let _ = daemon.wait();
    let body = scrape.expect("/metrics never showed habeat_replicas_at_risk 6");
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
    for (state, n) in [
        ("ok", 2.0),
        ("unavailable", 1.0),
        ("no_kafka", 1.0),
        ("paused", 1.0),
        ("behind", 2.0),
        ("no_replica", 1.0),
    ] {
        assert_eq!(
            gauge("habeat_replica_accounts", Some(state)),
            Some(n),
            "{state}: {body}"
        );
    }
    assert_eq!(gauge("habeat_replica_max_lag_sequence", None), Some(12.0));
    assert_eq!(gauge("habeat_replica_max_lag_item_id", None), Some(3.0));
    assert!(gauge("habeat_replica_survey_age_seconds", None).is_some_and(|a| a >= 0.0));
    assert_eq!(
        at_risk_names(&status["replicas"]["survey"]),
        expected_at_risk(),
        "/status: {status}"
    );
}

/// The promotion compares its listing with the last survey and records,
/// per account at risk, why and how far behind: in `state.json`'s
/// promotion record and in `history` (`replicas-at-risk-named`).
#[tokio::test(flavor = "multi_thread")]
async fn the_promotion_record_and_history_name_the_accounts_at_risk() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = start("  survey_interval: 5m", "").await;
    assert_eq!(habeat(&bed, &["check"]).status.code(), Some(0));
    bed.kill_peer();
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The default (`promote`) moves every account that has a replica.
    assert!(
        bed.fake.accounts_on(SOURCE) == vec!["noreplica@example.com".to_owned()],
        "{:?}",
        bed.fake.accounts_on(SOURCE)
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bed.dir.path().join("state/state.json")).expect("state.json"),
    )
    .expect("state.json is JSON");
    let details = &state["roles"]["appserver"]["failover"]["promotion"];
    assert_eq!(at_risk_names(details), expected_at_risk(), "{state}");
    let seq = details["at_risk"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["account"] == "behindseq@example.com"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(seq["lag_sequence"], 12, "{seq}");
    let hist = stdout(&habeat(&bed, &["history"]));
    for (name, why) in AT_RISK {
        assert!(
            hist.contains(&format!("{name}: ")) && hist.contains(why),
            "history does not name {name} with {why:?}: {hist}"
        );
    }
}

/// `replicas.at_risk: hold` promotes the others through
/// `promoteAccounts input_file`, leaves those at risk on the source, and
/// names the command that moves them.
#[tokio::test(flavor = "multi_thread")]
async fn hold_promotes_only_the_accounts_not_at_risk() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = start("  survey_interval: 5m\n  at_risk: hold", "").await;
    assert_eq!(habeat(&bed, &["check"]).status.code(), Some(0));
    bed.kill_peer();
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut left = bed.fake.accounts_on(SOURCE);
    left.sort();
    assert_eq!(left, expected_at_risk(), "{}", text(&out));
    let mut moved = bed.fake.accounts_on(REPLICA);
    moved.sort();
    assert_eq!(
        moved,
        HEALTHY.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    );
    let promote = bed
        .fake
        .invocations()
        .into_iter()
        .find(|i| i.args.iter().any(|a| a == "promoteAccounts"))
        .expect("promoteAccounts ran");
    assert!(
        promote.args.iter().any(|a| a == "input_file"),
        "{:?}",
        promote.args
    );
    let hist = stdout(&habeat(&bed, &["history"]));
    let mut held = expected_at_risk();
    held.sort();
    assert!(
        hist.contains(&format!("habeat promote --accounts {}", held.join(","))),
        "the command for the rest is not named: {hist}"
    );
}

/// A dry run against a dead peer after a survey: the real listing names
/// every account, the at-risk analysis is printed, promoteAccounts' argv
/// is shown, and nothing in the state directory changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_against_a_dead_peer_simulates_and_changes_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = start("  survey_interval: 5m", "").await;
    assert_eq!(habeat(&bed, &["check"]).status.code(), Some(0));
    bed.kill_peer();
    let before = tree(bed.dir.path());
    let out = habeat(&bed, &["--dry-run", "--verbose", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    for name in HEALTHY.iter().chain(AT_RISK.iter().map(|(n, _)| n)) {
        assert!(s.contains(name), "{name} not named: {}", text(&out));
    }
    assert!(s.contains("6 account(s) at risk"), "{}", text(&out));
    assert!(
        s.contains(&format!(
            "promoteAccounts source_mail_host {SOURCE} threads 3"
        )),
        "{}",
        text(&out)
    );
    assert!(
        s.contains("Consul leader: 127.0.0.1:8300"),
        "{}",
        text(&out)
    );
    assert_eq!(tree(bed.dir.path()), before, "--dry-run changed a file");
    assert!(
        bed.fake.accounts_on(SOURCE).len() == 8,
        "--dry-run promoted"
    );
}

/// kill -9 during a survey, and a survey whose output makes no sense,
/// leave the earlier survey as it was.
#[tokio::test(flavor = "multi_thread")]
async fn neither_kill_9_during_a_survey_nor_a_bad_answer_loses_the_earlier_survey() {
    if !require(&[Need::Netns]) {
        return;
    }
    // Every check surveys (the interval is shorter than a check).
    let bed = start("  survey_interval: 1ms", "").await;
    assert_eq!(habeat(&bed, &["check"]).status.code(), Some(0));
    let good = std::fs::read(survey_file(&bed)).expect("a first survey");

    // A field that makes no sense: refused, named, the survey kept.
    bed.fake.update(|st| {
        st.accounts[0]
            .extra
            .insert("sequence".into(), serde_json::json!("twelve"));
    });
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"sequence\" is \"twelve\""),
        "the nonsense is not named: {}",
        text(&out)
    );
    assert_eq!(std::fs::read(survey_file(&bed)).expect("survey"), good);
    bed.fake.update(|st| {
        st.accounts[0].extra.remove("sequence");
    });

    // kill -9 while the CLI lists.
    bed.fake.set_fault("getAccountStatus", Fault::Hang);
    let before = surveys(&bed);
    let mut child = bed
        .command(&["check"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start check");
    let mut started = false;
    for _ in 0..600 {
        if surveys(&bed) > before {
            started = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    assert!(started, "the survey never started");
    assert_eq!(
        std::fs::read(survey_file(&bed)).expect("survey"),
        good,
        "kill -9 during a survey changed the last survey"
    );
    let st = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    assert_eq!(at_risk_names(&st["replicas"]["survey"]), expected_at_risk());
    // The hung CLI outlived the killed habeat (its own process group, as
    // every child of habeat): end it.
    for i in bed.fake.invocations() {
        if i.args.iter().any(|a| a == "getAccountStatus") && fake_carbonio::group_alive(i.pgid) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(i.pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    bed.fake.update(|st| st.faults.clear());
}

/// `replicas.at_risk: hold` when every account of the dead peer is at
/// risk: nothing is promoted, and so neither the lock files (which say
/// "promoted") nor the `after_promotion` hooks run; the pipeline ends at
/// once saying so with the exact `habeat promote --accounts ...`, `status`
/// says it, later checks do not list and hold again, and the operator's
/// `habeat promote --accounts` then promotes and runs its follow-ups.
#[tokio::test(flavor = "multi_thread")]
async fn hold_with_every_account_at_risk_promotes_nothing_runs_no_follow_up_and_names_the_command()
{
    if !require(&[Need::Netns]) {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let hooks = scratch.path().join("hooks.log");
    let bed = start(
        "  survey_interval: 5m\n  at_risk: hold",
        &format!(
            "hooks:\n  after_promotion: [\"echo after_promotion >> {}\"]",
            hooks.display()
        ),
    )
    .await;
    bed.fake
        .update(|s| s.accounts.retain(|a| !HEALTHY.contains(&a.name.as_str())));
    let healthy = habeat(&bed, &["check"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy));
    bed.kill_peer();
    let out = habeat(&bed, &["check"]);
    assert_eq!(bed.promotions(), 0, "{}", text(&out));
    // Mail for those accounts stays down until the operator acts: the
    // run that decided it exits 4, like a refusal for safety.
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let mut left = bed.fake.accounts_on(SOURCE);
    left.sort();
    assert_eq!(left, expected_at_risk());
    let down = bed.lock("appserverdown-habeat-appserver");
    let prom = bed.lock("appserverprom-habeat-appserver");
    assert!(
        !down.exists() && !prom.exists(),
        "lock files announce a promotion that did not happen: {}",
        text(&out)
    );
    assert!(
        !hooks.exists(),
        "after_promotion ran with nothing promoted: {}",
        std::fs::read_to_string(&hooks).unwrap_or_default()
    );
    let command = format!("habeat promote --accounts {}", expected_at_risk().join(","));
    let hist = stdout(&habeat(&bed, &["history"]));
    assert!(
        hist.lines()
            .any(|l| l.contains("nothing promoted") && l.contains(&command)),
        "the end of the pipeline does not say so with the command: {hist}"
    );
    let status = habeat(&bed, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(v["why"][0]["kind"], "all_held", "{v:#}");
    assert!(
        stdout(&habeat(&bed, &["status"])).contains(&command),
        "status does not name the command"
    );

    // The peer stays dead: later checks neither list nor hold again.
    let again = habeat(&bed, &["check"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let hist = habeat(&bed, &["history", "--json"]);
    let intents = String::from_utf8_lossy(&hist.stdout)
        .lines()
        .filter(|l| l.contains("\"promotion_intent\""))
        .count();
    assert_eq!(intents, 1, "{}", text(&hist));

    // The operator decides: their promote runs as it always does.
    let held = expected_at_risk().join(",");
    let op = habeat(&bed, &["promote", "--accounts", &held, "--yes"]);
    assert_eq!(op.status.code(), Some(0), "{}", text(&op));
    assert_eq!(bed.promotions(), 1, "{}", text(&op));
    let mut moved = bed.fake.accounts_on(REPLICA);
    moved.sort();
    // All but the one with no replica to promote to.
    let mut with_replica = expected_at_risk();
    with_replica.retain(|a| a != "noreplica@example.com");
    assert_eq!(moved, with_replica);
    assert!(down.exists() && prom.exists(), "{}", text(&op));
}

/// A peer mailstore with no replicated account at all: nothing to fail
/// over. `status` says so plainly as a warning (not "0 accounts, 0 at
/// risk", and never a sentence cut off), and `--json` carries it.
#[tokio::test(flavor = "multi_thread")]
async fn no_replicated_account_is_a_warning_that_there_is_nothing_to_fail_over() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::builder()
        .consul_provider_threads_3()
        .carbonio_timeouts("20s", "20s")
        .tail("replicas:\n  survey_interval: 5m\n")
        .start()
        .await;
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(survey_file(&bed).is_file(), "no survey: {}", text(&out));
    let st = habeat(&bed, &["status"]);
    let s = stdout(&st);
    let line = s
        .lines()
        .find(|l| l.contains("nothing to fail over"))
        .unwrap_or_else(|| panic!("no warning that there is nothing to fail over:\n{s}"));
    assert!(line.starts_with("WARNING"), "{line}");
    assert!(line.contains(SOURCE), "{line}");
    assert!(
        !s.lines().any(|l| l.trim_end().ends_with("would move")),
        "a sentence cut off:\n{s}"
    );
    let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    assert_eq!(
        js["replicas"]["survey"]["nothing_to_fail_over"], true,
        "{js}"
    );
    assert!(
        js["replicas"]["survey"]["warning"]
            .as_str()
            .is_some_and(|w| w.contains("nothing to fail over")),
        "{js}"
    );
}

/// A survey that fails (here: log text around the JSON) is not invisible:
/// one WARNING, a journaled `replica_survey_failed` event, `status` and
/// `status --json` give the reason beside the age of the last good survey
/// (still shown, its accounts at risk still named), and the daemon's
/// `/metrics` has `habeat_replica_survey_failed` 1 and counts it. With no
/// good survey at all, `status` says the failure, not "no survey yet".
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_survey_is_an_event_shown_with_its_reason_and_a_metric() {
    if !require(&[Need::Netns]) {
        return;
    }
    let port = support::free_port();
    let bed = start(
        "  survey_interval: 1ms",
        &format!("metrics:\n  listen: 127.0.0.1:{port}"),
    )
    .await;
    assert_eq!(habeat(&bed, &["check"]).status.code(), Some(0));
    assert!(survey_file(&bed).is_file());

    bed.fake.set_fault("getAccountStatus", Fault::TextAround);
    let out = habeat(&bed, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("survey"))
        .collect();
    assert_eq!(warnings.len(), 1, "one WARNING line: {}", text(&out));

    let s = stdout(&habeat(&bed, &["status"]));
    let line = s
        .lines()
        .find(|l| l.contains("FAILED"))
        .unwrap_or_else(|| panic!("status does not show the failed survey:\n{s}"));
    assert!(line.contains("the last good survey"), "{line}");
    assert!(line.contains("does not start with a JSON object"), "{line}");
    assert!(
        s.contains("unavailable@example.com"),
        "the last good survey's accounts at risk are no longer named:\n{s}"
    );
    let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    assert!(
        js["replicas"]["last_failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("JSON")),
        "{js}"
    );
    assert_eq!(at_risk_names(&js["replicas"]["survey"]), expected_at_risk());
    let hist = stdout(&habeat(&bed, &["history"]));
    assert!(
        hist.contains(&format!("replica survey of {SOURCE} failed")),
        "the failure is not journaled: {hist}"
    );

    // The daemon: the failure in /metrics.
    let mut daemon = bed
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let mut scrape = None;
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await
            && let Ok(body) = r.text().await
            && body.contains("habeat_replica_survey_failed 1")
            && !body.contains("habeat_replica_survey_failures_total 0")
        {
            scrape = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(scrape.is_some(), "/metrics never showed the failed survey");

    // A good survey clears the failure.
    bed.fake.update(|st| st.faults.clear());
    assert_eq!(habeat(&bed, &["check"]).status.code(), Some(0));
    let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
    assert!(js["replicas"]["last_failure"].is_null(), "{js}");

    // No good survey at all: the failure, not "no survey yet".
    let fresh = start("  survey_interval: 1ms", "").await;
    fresh.fake.set_fault("getAccountStatus", Fault::TextAround);
    assert_eq!(habeat(&fresh, &["check"]).status.code(), Some(0));
    let s = stdout(&habeat(&fresh, &["status"]));
    assert!(!s.contains("no survey yet"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.contains("FAILED") && l.contains("there is no good survey")),
        "{s}"
    );
}

/// A `sequence` that is a number but no position (-5, 1.5, 2^64) is
/// judged, not fatal: the survey is kept and that account is at risk,
/// "sequence unreadable"; the others are classed as usual.
#[tokio::test(flavor = "multi_thread")]
async fn an_odd_sequence_makes_its_account_at_risk_and_fails_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = start("  survey_interval: 1ms", "").await;
    for odd in [
        serde_json::json!(-5),
        serde_json::json!(1.5),
        serde_json::json!(18_446_744_073_709_551_616.0_f64),
    ] {
        bed.fake.update(|st| {
            st.accounts[0].extra.insert("sequence".into(), odd.clone());
        });
        let out = habeat(&bed, &["check"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let js = crate::bin::json(&habeat(&bed, &["--json", "status"]));
        assert!(
            js["replicas"]["last_failure"].is_null(),
            "{odd} failed the survey: {js}"
        );
        let mut want = expected_at_risk();
        want.push("alice@example.com".into());
        want.sort();
        assert_eq!(
            at_risk_names(&js["replicas"]["survey"]),
            want,
            "{odd}: {js}"
        );
        let s = stdout(&habeat(&bed, &["status"]));
        let line = s
            .lines()
            .find(|l| l.contains("alice@example.com"))
            .unwrap_or_else(|| panic!("{odd}: alice not named:\n{s}"));
        assert!(line.contains("sequence unreadable"), "{odd}: {line}");
    }
}

/// A daemon that starts while the peer cannot be reached surveys only this
/// DC's mailstore. The peer's survey follows once the peer is Up, not a
/// `survey_interval` (here an hour) later: a survey of one mailstore says
/// nothing about when the other is due.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_surveys_the_peer_once_it_is_back_though_its_own_mailstore_went_first() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = start("  survey_interval: 1h", "").await;
    // Paused, so that the peer unreachable at the start is no failover.
    let out = habeat(&bed, &["pause", "--for", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    bed.kill_peer();
    let mut daemon = bed
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let own = bed.path("state/survey-own.json");
    for _ in 0..600 {
        if own.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bed.revive_peer();
    let mut both = false;
    for _ in 0..600 {
        if own.exists() && survey_file(&bed).exists() {
            both = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(own.exists(), "this DC's mailstore was never surveyed");
    assert!(
        both,
        "the peer's mailstore was not surveyed within a minute of the daemon's start (surveys \
         every hour; getAccountStatus calls: {:?})",
        bed.calls("getAccountStatus")
            .iter()
            .map(|c| c.args.join(" "))
            .collect::<Vec<_>>()
    );
}
