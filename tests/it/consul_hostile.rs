//! Hostile and self-contradicting Consul answers, through the real binary (a
//! Consul agent is not trusted with what reaches a URL or a verdict): a
//! health answer that contradicts itself is Unknown, never Down; a session
//! ID that is not a UUID never reaches a URL.
//!
//! The peer is "dead" without a network namespace: its address is one that
//! never answers ([`bin::DEAD_IP`]).

use crate::bin;
use crate::support;

use bin::{DEAD_IP, habeat, json, text};
use std::path::{Path, PathBuf};
use support::consul_api::{ConsulApi, Fault};

const SOURCE: &str = "mbox1.example.com";
const NODE: &str = "agent-mbox1-example-com";
const PROXY: &str = "proxy1.example.com";

/// A hostile session ID: a path that climbs out of
/// `/v1/session/destroy/` and a query that acquires another key.
const HOSTILE_ID: &str = "../../v1/kv/evil?dc=x&acquire=";

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

/// A proxyserver whose peer proxy is dead to ping (the only witness): its
/// proxy switch needs the quorum gate, so `check` creates a session.
fn proxy_config(dir: &Path, api: &ConsulApi) -> PathBuf {
    write_config(
        dir,
        &format!(
            "  roles: [proxyserver]\n  proxy_enable_activate: true\n\
             primary:\n  proxy_ip: {DEAD_IP}\n  proxyserver_vmname: {PROXY}\n\
             secondary:\n  proxy_switch:\n    bgp:\n      activate: [\"echo activate >> {d}/switched\"]\n\
             witnesses:\n  consul_members: false\n  consul_health: false\n\
             consul:\n  port: {}",
            api.addr().port(),
            d = dir.display()
        ),
    )
}

/// No request left the Consul API the client meant to call.
fn no_request_escaped(api: &ConsulApi) {
    for r in api.requests() {
        assert!(
            !r.path.starts_with("/v1/v1/") && !r.path.contains("evil") && !r.query.contains("evil"),
            "a hostile session ID reached a URL: {} {}?{}",
            r.method,
            r.path,
            r.query
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_session_id_that_is_a_path_is_refused_and_never_put_in_a_url() {
    let api = ConsulApi::builder().start().await;
    api.set_fault_on(
        "/v1/session/create",
        Fault::Body(serde_json::json!({ "ID": HOSTILE_ID }).to_string()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = proxy_config(dir.path(), &api);
    let out = habeat(&config, &["check"]);
    no_request_escaped(&api);
    assert!(
        !dir.path().join("switched").exists(),
        "switched without the gate: {}",
        text(&out)
    );
    let all = text(&out);
    assert!(all.contains("is not a UUID"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_held_by_a_session_id_that_is_a_path_is_not_taken_over_through_it() {
    let api = ConsulApi::builder().start().await;
    // The key says it is held by a habeat of this very node that is gone:
    // habeat would destroy the holder's session to resume.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned();
    let mut dead = std::process::Command::new("true").spawn().expect("spawn");
    let pid = dead.id();
    dead.wait().expect("wait");
    let holder = serde_json::json!({"node": hostname, "pid": pid, "version": "0.1.0",
                                    "purpose": "promotion"});
    api.put_locked(
        &format!("habeat/failover/{PROXY}"),
        holder.to_string().as_bytes(),
        HOSTILE_ID,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = proxy_config(dir.path(), &api);
    let out = habeat(&config, &["check"]);
    no_request_escaped(&api);
    assert!(
        !dir.path().join("switched").exists(),
        "switched without the gate: {}",
        text(&out)
    );
    // The gate was asked (the key was read), and said no.
    assert!(
        api.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == format!("/v1/kv/habeat/failover/{PROXY}")),
        "{}",
        text(&out)
    );
}
