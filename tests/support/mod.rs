#![allow(dead_code)]
//! Shared test support: stand-ins for what habeat talks to (SPEC section 7).
//!
//! - [`consul_api`]: an in-test Consul HTTP API server.
//! - [`netns`]: network namespaces with veth links, link down, nftables drop.
//! - [`slapd`]: a real OpenLDAP server on a free port.
//! - [`need`]: what a test needs from the machine; [`require`] is the one
//!   way a test may go without it (a failure on CI, a loud skip elsewhere).
//!
//! Each test binary uses a subset, hence `dead_code` is allowed here.

pub mod consul_api;
pub mod need;
pub mod netns;
pub mod redfish;
pub mod slapd;
pub mod testbed;

// The demo and the benchmarks include this module too and use neither.
#[allow(unused_imports)]
pub use need::{Need, require};

use habeat::config::{
    Carbonio, Config, Consul, Datacenter, Detection, Hooks, Local, Metrics, Probes, Safety,
    Witnesses,
};
use habeat::model::Role;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A complete effective configuration built in code: this node is in
/// `secondary`, watches `primary`, holds `roles`; both DCs exist and are
/// empty, every other section has its defaults. Tests fill in the peer with
/// [`peer_mut`] and adjust the rest.
pub fn config(roles: &[Role]) -> Config {
    let mut dcs = BTreeMap::new();
    dcs.insert("primary".to_owned(), Datacenter::default());
    dcs.insert("secondary".to_owned(), Datacenter::default());
    let state = std::env::temp_dir().join("habeat-test-state");
    Config {
        source: PathBuf::from("<test>"),
        local: Local {
            whoami: "secondary".into(),
            dc_check: "primary".into(),
            roles: roles.to_vec(),
            check_down_file: state.join("checkDown"),
            check_promotion_file: state.join("checkPromotion"),
            check_restart_replica_file: state.join("checkRestartReplica"),
            threads: 4,
            proxy_switch: "bgp".into(),
            proxy_enable_activate: false,
            proxy_enable_deactivate: false,
            disable_ha_module: false,
            flush_cache: false,
            flush_arguments_a: false,
            restart_replica: false,
            state_dir: state,
        },
        dcs,
        consul: Consul::default(),
        detection: Detection::default(),
        probes: Probes::default(),
        witnesses: Witnesses::default(),
        carbonio: Carbonio::default(),
        safety: Safety::default(),
        replicas: Default::default(),
        lease: Default::default(),
        hooks: Hooks::default(),
        metrics: Metrics::default(),
        journal: habeat::config::Journal::default(),
        fencing: habeat::config::Fencing::default(),
        warnings: Vec::new(),
    }
}

/// The watched (peer) datacenter of a config from [`config`].
pub fn peer_mut(cfg: &mut Config) -> &mut Datacenter {
    let name = cfg.local.dc_check.clone();
    cfg.dcs.entry(name).or_default()
}

/// A config that only runs network witnesses (no Consul, no gate).
pub fn network_only(roles: &[Role], timeout: Duration) -> Config {
    let mut cfg = config(roles);
    cfg.witnesses.consul_members = false;
    cfg.witnesses.consul_health = false;
    cfg.safety.quorum_gate = false;
    cfg.detection.timeout = timeout;
    cfg
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

/// A loopback port on which nothing listens (bound then closed).
pub fn closed_port() -> u16 {
    free_port()
}

/// "It did not hang": a generous bound for one round with `timeout`.
pub fn round_bound(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(2)
}
