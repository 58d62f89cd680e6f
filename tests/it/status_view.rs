//! `habeat status --json` and the daemon's `/status` are one view of the
//! same state: a script that reads one may read the other. On the same
//! saved round they carry the same keys with the same values; the daemon
//! adds only what it alone knows (`cannot_decide`).

use crate::bed::text;
use crate::support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use support::{Need, require};

/// How many times the three reads are tried before giving up: each try
/// fails only when a round of the daemon (every 300 ms) falls between them.
const TRIES: usize = 200;

/// The figures that move with the wall clock between two reads of the
/// same round, removed everywhere.
fn without_ages(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("age_seconds");
            m.remove("last_round_age_seconds");
            m.values_mut().for_each(without_ages);
        }
        Value::Array(a) => a.iter_mut().for_each(without_ages),
        _ => {}
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get_status(base: &str) -> Option<Value> {
    reqwest::get(format!("{base}/status"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// With a survey naming accounts at risk, a daemon running: `/status`,
/// then `status --json`, then `/status` again, until the three saw the
/// same round; every key of `status --json` is in `/status` with the same
/// value (ages aside), and `/status` has only `cannot_decide` besides.
#[tokio::test(flavor = "multi_thread")]
async fn status_json_and_the_daemons_status_agree_on_the_same_state() {
    if !require(&[Need::Netns]) {
        return;
    }
    let port = support::free_port();
    let bed = crate::replica_survey::start(
        "  survey_interval: 5m",
        &format!("metrics:\n  listen: 127.0.0.1:{port}"),
    )
    .await;
    let out = bed.operator(&["check"], "5s");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _daemon = Daemon(
        bed.command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the daemon"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut agreed = None;
    for _ in 0..TRIES {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let Some(before) = get_status(&base).await else {
            continue;
        };
        if before["last_round_at"].is_null() || before["daemon"]["running"] != true {
            continue;
        }
        let out = bed.operator(&["status", "--json"], "5s");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let json = crate::bin::json(&out);
        let Some(after) = get_status(&base).await else {
            continue;
        };
        let round = &before["last_round_at"];
        if &json["last_round_at"] == round && &after["last_round_at"] == round {
            agreed = Some((after, json));
            break;
        }
    }
    let (mut served, mut json) =
        agreed.unwrap_or_else(|| panic!("no round seen alike by /status and status --json"));
    assert!(
        !json["replicas"]["survey"].is_null(),
        "the survey is part of the comparison: {json}"
    );
    assert!(served["cannot_decide"].is_null(), "{served}");
    without_ages(&mut served);
    without_ages(&mut json);
    let only_served: Vec<_> = keys(&served).difference(&keys(&json)).cloned().collect();
    assert_eq!(only_served, ["cannot_decide"], "{served}");
    let only_json: Vec<_> = keys(&json).difference(&keys(&served)).cloned().collect();
    assert!(only_json.is_empty(), "missing from /status: {only_json:?}");
    for k in keys(&json) {
        assert_eq!(
            served[&k], json[&k],
            "{k} differs: /status vs status --json"
        );
    }
}
