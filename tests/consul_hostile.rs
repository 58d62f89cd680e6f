//! Hostile and self-contradicting Consul answers, through the real binary
//! (issue 18, item 6): a health answer that contradicts itself is Unknown,
//! never Down.
//!
//! The peer is "dead" without a network namespace: its address is one that
//! never answers ([`bin::DEAD_IP`]).

#[path = "support/bin.rs"]
mod bin;
mod support;

use bin::{DEAD_IP, habeat, json, text};
use std::path::{Path, PathBuf};
use support::consul_api::{ConsulApi, Fault};

const SOURCE: &str = "mbox1.example.com";
const NODE: &str = "agent-mbox1-example-com";

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let d = dir.display();
    let yaml = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  state_dir: {d}/state\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  \
         checkRestartReplicaFile: {d}/rstop\n{body}\ndetection:\n  interval: 200ms\n  \
         timeout: 400ms\n  fall: 1\n  rise: 1\n"
    );
    let path = dir.join("habeat.yml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// An appserver whose peer mailstore is dead to ping and failed in Serf,
/// so that the health witness alone decides whether it is Down.
fn appserver_config(dir: &Path, api: &ConsulApi) -> PathBuf {
    write_config(
        dir,
        &format!(
            "primary:\n  appserver_ip: {DEAD_IP}\n  appserver_vmname: {SOURCE}\n\
             consul:\n  port: {}\ncarbonio:\n  cli: {d}/no-carbonio\n  zmprov: {d}/no-zmprov\n  \
             run_as: \"\"",
            api.addr().port(),
            d = dir.display()
        ),
    )
}

/// A `serfHealth` check as `/v1/health/node/:node` lists it.
fn serf_health(status: &str, node: &str) -> serde_json::Value {
    serde_json::json!({"Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status",
        "Status": status, "Notes": "", "Output": "", "ServiceID": "", "ServiceName": "",
        "ServiceTags": [], "Type": "", "CreateIndex": 10, "ModifyIndex": 10})
}

/// The consul_health witness's settled vote and the appserver verdict
/// after one `habeat check`.
fn health_vote_and_verdict(config: &Path) -> (String, String, String) {
    let out = habeat(config, &["--json", "check"]);
    let status = json(&out);
    let witness = status["witnesses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["witness"]["kind"] == "consul_health")
        .unwrap_or_else(|| panic!("no consul_health witness: {}", text(&out)))
        .clone();
    (
        witness["vote"].as_str().unwrap_or_default().to_owned(),
        status["components"]["appserver"]["verdict"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        text(&out),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn serf_health_listed_twice_critical_and_passing_is_unknown_not_down() {
    let api = ConsulApi::builder().node(NODE, DEAD_IP, 4).start().await;
    let body = serde_json::json!([serf_health("critical", NODE), serf_health("passing", NODE),]);
    api.set_fault_on(
        &format!("/v1/health/node/{NODE}"),
        Fault::Body(body.to_string()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (vote, verdict, out) = health_vote_and_verdict(&appserver_config(dir.path(), &api));
    assert_eq!(vote, "unknown", "{out}");
    assert_ne!(verdict, "down", "a contradictory answer made a Down: {out}");
    assert!(out.contains("lists serfHealth 2 times"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_health_check_of_another_node_is_unknown_not_down() {
    let api = ConsulApi::builder().node(NODE, DEAD_IP, 4).start().await;
    // Both node names are answered with the critical check of a third node.
    let body = serde_json::json!([serf_health("critical", "agent-mbox9-example-com")]);
    api.set_fault_on("/v1/health/node/", Fault::Body(body.to_string()));
    let dir = tempfile::tempdir().expect("tempdir");
    let (vote, verdict, out) = health_vote_and_verdict(&appserver_config(dir.path(), &api));
    assert_eq!(vote, "unknown", "{out}");
    assert_ne!(verdict, "down", "another node's check made a Down: {out}");
    assert!(out.contains("agent-mbox9-example-com"), "{out}");
}
