//! The view as the scripts and the metrics read it: its keys, what only a
//! daemon adds, and the typed figures the metrics take agreeing with the
//! JSON `status --json` prints.

use super::{DaemonFacts, StatusView};
use crate::config::{Config, LoadEnv, load_str_with};
use crate::engine::{self, Now, OperatorRefusal, Pause, State, UnixMillis};
use crate::survey::{ReplicaSeen, Survey, Surveyed};
use std::collections::BTreeSet;
use std::path::Path;

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

fn config(state_dir: &Path) -> Config {
    let text = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  roles: [appserver]\n  state_dir: \
         {}\nprimary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n  \
         consul_ips: [192.0.2.31]\n  consul_vmnames: [svc1.example.com]\nsecondary:\n  \
         consul_vmnames: [svc2.example.com]\n",
        state_dir.display()
    );
    match load_str_with(&text, Path::new("h.yml"), &LoadEnv::default()) {
        Ok(c) => c,
        Err(e) => panic!("{:#?}", e.lines()),
    }
}

fn view(state: &State, cfg: &Config) -> StatusView {
    let now = Now {
        wall: NOW,
        boot: None,
    };
    let plan = engine::plan(state, &engine::EngineConfig::from(cfg), now);
    StatusView::read(state, cfg, plan, NOW)
}

fn keys(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn account(name: &str, replica: Option<ReplicaSeen>) -> Surveyed {
    Surveyed {
        account: name.into(),
        source_sequence: Some(100),
        source_item_id: Some(50),
        source_paused: false,
        replicas: usize::from(replica.is_some()),
        replica,
        unreadable: Vec::new(),
    }
}

/// The keys of `status --json` are the view's fields and the head's, in
/// sorted order; `cannot_decide` is the daemon's alone, `refused` and
/// `refusal` a refused operator command's.
#[test]
fn the_view_has_the_keys_of_status_json_and_only_the_daemon_adds_cannot_decide() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let v = view(&State::default(), &cfg).to_json();
    let want: BTreeSet<&str> = [
        "components",
        "daemon",
        "dc_check",
        "diverged",
        "evidence",
        "last_promotion",
        "last_round_at",
        "lease",
        "local_consul",
        "locks",
        "next_step",
        "pause",
        "protection",
        "quorum_gate",
        "raft",
        "replicas",
        "roles",
        "safe_hold",
        "switchover",
        "votes",
        "whoami",
        "why",
        "witnesses",
    ]
    .into();
    assert_eq!(keys(&v), want, "{v:#}");
    let text = v.to_string();
    assert!(
        text.starts_with(r#"{"components":"#),
        "keys come out sorted: {text}"
    );
    assert_eq!(v["daemon"]["state"], "not_running");
    assert_eq!(v["quorum_gate"]["enabled"], true);
    assert!(v["replicas"]["survey"].is_null() && v["lease"].is_null());
    assert_eq!(
        v["locks"].as_array().map(Vec::len),
        Some(3),
        "down, promotion and restart_replica for the appserver: {v:#}"
    );

    let served = view(&State::default(), &cfg)
        .with_daemon(
            DaemonFacts {
                cannot_decide: Some("state_dir is read-only".into()),
            },
            None,
        )
        .to_json();
    let mut with = want.clone();
    with.insert("cannot_decide");
    assert_eq!(keys(&served), with);
    assert_eq!(served["cannot_decide"], "state_dir is read-only");

    let refusal = OperatorRefusal::NoConsulWitness {
        dc: "primary".into(),
    };
    let refused = view(&State::default(), &cfg)
        .with_refusal(Some(&refusal))
        .to_json();
    assert_eq!(refused["refused"], refusal.to_string());
    assert_eq!(refused["refusal"], serde_json::json!(refusal));
}

/// The figures the metrics read from the view are the ones its JSON
/// shows under `replicas.survey`; a pause over is no pause.
#[test]
fn the_metrics_figures_are_the_jsons_and_an_ended_pause_is_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let ok = ReplicaSeen {
        destination: Some("mbox2.example.com".into()),
        available: Some(true),
        can_connect_to_kafka: Some(true),
        paused: Some(false),
        sequence: Some(100),
        item_id: Some(50),
        ..ReplicaSeen::default()
    };
    let behind = ReplicaSeen {
        sequence: Some(88),
        ..ok.clone()
    };
    let survey = Survey::new(
        "mbox1.example.com",
        UnixMillis(NOW.0 - 30_000),
        vec![
            account("alice@example.com", Some(ok)),
            account("behind@example.com", Some(behind)),
            account("none@example.com", None),
        ],
    );
    crate::survey::store::save(&cfg.local.state_dir, &survey).expect("save the survey");
    let state = State {
        pause: Some(Pause {
            since: UnixMillis(NOW.0 - 7_200_000),
            until: UnixMillis(NOW.0 - 3_600_000),
            reason: "maintenance".into(),
        }),
        ..State::default()
    };

    let v = view(&state, &cfg);
    let json = v.to_json();
    let s = v.replicas.survey.as_ref().expect("the survey is shown");
    let js = &json["replicas"]["survey"];
    assert_eq!(s.at_risk_count, 2);
    assert_eq!(js["at_risk_count"], s.at_risk_count);
    assert_eq!(s.max_lag_sequence, 12);
    assert_eq!(js["max_lag_sequence"], s.max_lag_sequence);
    assert_eq!(s.age_seconds, 30);
    assert_eq!(js["age_seconds"], s.age_seconds);
    for (class, n) in &s.counts {
        assert_eq!(js["counts"][class], *n, "{class}");
    }
    assert_eq!(s.counts.get("behind"), Some(&1));
    assert!(
        json["replicas"].get("accounts").is_none(),
        "every account only when asked: {json:#}"
    );
    let all = serde_json::to_value(crate::survey::show::with_accounts(&cfg, NOW))
        .expect("serialize the replicas");
    let names: Vec<&str> = all["accounts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["account"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "behind@example.com",
            "none@example.com",
            "alice@example.com"
        ],
        "those at risk first, then the healthy ones"
    );
    assert!(json["replicas"]["last_failure"].is_null());

    assert!(v.pause.is_none() && json["pause"].is_null(), "{json:#}");
    assert_eq!(v.failover_locked, [(crate::model::Role::Appserver, false)]);
    assert_eq!(json["why"], serde_json::json!(v.plan.explain()));
}
