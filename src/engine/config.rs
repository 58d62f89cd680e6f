//! The part of the configuration the engine decides with.
//!
//! [`EngineConfig`] is plain values only (no paths, no secrets, no I/O
//! types), so the engine does not depend on the configuration loader and
//! tests can build one directly. The effective configuration is turned
//! into one by `impl From<&config::Config> for EngineConfig`, on the
//! config side; the rules that derive the engine's timings stay here
//! ([`EngineConfig::set_timing`]).

use crate::model::{Component, FenceAction, Quorum, RaftRecoveryPolicy, Rearm, Role, WitnessKind};
use std::collections::BTreeMap;
use std::time::Duration;

/// Everything the decision engine needs to know about this installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The DC this node is in.
    pub whoami: String,
    /// The DC this node watches.
    pub dc_check: String,
    /// `whoami == "primary"`: never promotes automatically (`primary-never-promotes`).
    pub is_primary: bool,
    /// The roles this node acts for, in a fixed order.
    pub roles: Vec<Role>,
    /// Consecutive Down observations before a witness votes Down.
    pub fall: u32,
    /// Consecutive Up observations before a witness votes Up.
    pub rise: u32,
    /// `fall` of the witnesses that read Serf (`consul_members`,
    /// `consul_health`): a `failed` member or a critical `serfHealth` has
    /// already been through Serf's own suspicion protocol, so by default
    /// one observation of it is enough (docs/decisions.md §1).
    pub serf_fall: u32,
    /// `rise` of the Serf witnesses (by default the same as `rise`).
    pub serf_rise: u32,
    /// Down votes needed for a Down verdict.
    pub quorum: Quorum,
    /// Time between probe rounds.
    pub interval: Duration,
    /// How long a probe waits for its answer (`detection.timeout`): bounds
    /// the grace a detection deadline gives the last probe
    /// ([`super::witness::deadline`]).
    pub probe_timeout: Duration,
    /// A witness (or the leaderless count) not heard from for this long
    /// starts over unsettled: "consecutive" must mean consecutive.
    pub stale_after: Duration,
    /// How long a verdict may be acted on after the round that produced it
    /// (the account listing and the quorum gate run in between): a little
    /// longer than `stale_after` plus one CLI call.
    pub verdict_valid_for: Duration,
    /// How long after a failed step (or an empty/failed account listing, or
    /// a refused quorum gate) the engine tries again.
    pub retry_delay: Duration,
    /// How often to ask again whether an earlier promotion still runs on
    /// the mailbox server before promoting what it left.
    pub operation_poll: Duration,
    /// The peer mailstore whose accounts are promoted (`appserver_vmname`
    /// of `dc_check`); `None` makes the appserver role unable to promote.
    pub source_mail_host: Option<String>,
    /// The peer proxy's name, used for the proxyserver quorum-gate key.
    pub peer_proxy_host: Option<String>,
    /// Carbonio promotion threads.
    pub threads: u32,
    /// Primary DC: stop the HA module once when the peer appserver is Down.
    pub disable_ha_module: bool,
    /// Flush each promoted account's cache (`zmprov fc`).
    pub flush_cache: bool,
    /// `zmprov fc -a` (flush on every application server).
    pub flush_all_servers: bool,
    /// `pauseReplicas` + `restartReplicas` for the promoted accounts.
    pub restart_replica: bool,
    /// Run the proxy switch `activate` commands on failover.
    pub proxy_enable_activate: bool,
    /// Run the proxy switch `deactivate` commands when the peer proxy returns.
    pub proxy_enable_deactivate: bool,
    /// This DC's proxy switch `activate` commands (argv each).
    pub proxy_activate: Vec<Vec<String>>,
    /// This DC's proxy switch `deactivate` commands (argv each).
    pub proxy_deactivate: Vec<Vec<String>>,
    /// `hooks.after_promotion` (argv each).
    pub after_promotion: Vec<Vec<String>>,
    /// `hooks.on_peer_recovered` (argv each), run on automatic re-arm.
    pub on_peer_recovered: Vec<Vec<String>>,
    /// Prove the Consul majority before promoting or switching proxies.
    pub quorum_gate: bool,
    /// Leaderless this long (consecutive rounds) before raft recovery.
    pub recovery_grace: Duration,
    /// No automatic promotion within this long of the last one.
    pub promotion_block: Duration,
    /// Whether records clear by themselves when the peer is Up again.
    pub rearm: Rearm,
    /// `replicas.at_risk`: whether an automatic promotion leaves the
    /// accounts at risk out.
    pub at_risk: crate::model::AtRiskPolicy,
    /// `replicas.reprotect`: whether the daemon re-protects by itself.
    pub reprotect: crate::model::ReprotectPolicy,
    /// This DC's mailstore (`appserver_vmname` of `whoami`): where the
    /// peer's unprotected accounts get a replica.
    pub own_mail_host: Option<String>,
    /// Accounts per `setAccountDestination` batch of an automatic
    /// re-protection.
    pub reprotect_batch: usize,
    /// An external `command` witness is configured: raft recovery also
    /// needs its Down vote (it is the arbiter of `raft_recovery: confirmed`).
    pub command_witness: bool,
    /// When raft recovery may run by itself (`no-raft-recovery-on-time-alone`).
    pub raft_recovery: RaftRecoveryPolicy,
    /// Hostnames of this DC's Consul servers.
    pub own_consul_hosts: Vec<String>,
    /// Hostnames of the peer DC's Consul servers.
    pub peer_consul_hosts: Vec<String>,
    /// The components with a fence agent (`fencing.<component>`): what it
    /// may do and which plugs it fences. The agent and its options stay
    /// with the executor.
    pub fencing: BTreeMap<Component, FencePlan>,
}

/// What the engine knows of one fenced component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencePlan {
    pub action: FenceAction,
    pub plugs: Vec<String>,
}

/// How many times a failed step is tried before habeat gives it up.
pub const MAX_ATTEMPTS: u32 = 3;

impl EngineConfig {
    /// A configuration with the documented defaults, for `whoami` watching
    /// `dc_check` with `roles`. Used by tests and as the base of the
    /// conversion from the effective configuration.
    pub fn new(whoami: &str, dc_check: &str, roles: &[Role]) -> EngineConfig {
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let interval = Duration::from_secs(2);
        EngineConfig {
            at_risk: crate::model::AtRiskPolicy::Promote,
            reprotect: crate::model::ReprotectPolicy::Manual,
            own_mail_host: None,
            reprotect_batch: super::protection::DEFAULT_BATCH,
            whoami: whoami.to_owned(),
            dc_check: dc_check.to_owned(),
            is_primary: whoami == "primary",
            roles,
            fall: 3,
            rise: 2,
            serf_fall: 1,
            serf_rise: 2,
            quorum: Quorum::All,
            interval,
            probe_timeout: Duration::from_secs(1),
            stale_after: stale_after(interval),
            verdict_valid_for: stale_after(interval) + Duration::from_secs(120),
            retry_delay: retry_delay(interval),
            operation_poll: operation_poll(interval),
            source_mail_host: None,
            peer_proxy_host: None,
            threads: 5,
            disable_ha_module: false,
            flush_cache: false,
            flush_all_servers: false,
            restart_replica: false,
            proxy_enable_activate: false,
            proxy_enable_deactivate: false,
            proxy_activate: Vec::new(),
            proxy_deactivate: Vec::new(),
            after_promotion: Vec::new(),
            on_peer_recovered: Vec::new(),
            quorum_gate: true,
            recovery_grace: Duration::from_secs(60),
            promotion_block: Duration::from_secs(3600),
            rearm: Rearm::Auto,
            command_witness: false,
            raft_recovery: RaftRecoveryPolicy::Confirmed,
            own_consul_hosts: Vec::new(),
            peer_consul_hosts: Vec::new(),
            fencing: BTreeMap::new(),
        }
    }

    /// Set the probe timing and what the engine derives from it: how long
    /// a silent witness stays "consecutive", how long a verdict may be
    /// acted on, and the retry and listing-poll periods.
    pub fn set_timing(
        &mut self,
        interval: Duration,
        probe_timeout: Duration,
        command_timeout: Duration,
    ) {
        self.interval = interval;
        self.probe_timeout = probe_timeout;
        self.stale_after = stale_after(interval + probe_timeout);
        self.verdict_valid_for = self.stale_after + command_timeout;
        self.retry_delay = retry_delay(interval);
        self.operation_poll = operation_poll(interval);
    }

    /// The consecutive Down observations a witness of `kind` needs before
    /// it votes Down.
    pub fn fall_for(&self, kind: &WitnessKind) -> u32 {
        if kind.reads_serf() {
            self.serf_fall.max(1)
        } else {
            self.fall.max(1)
        }
    }

    /// The consecutive Up observations a witness of `kind` needs before it
    /// votes Up.
    pub fn rise_for(&self, kind: &WitnessKind) -> u32 {
        if kind.reads_serf() {
            self.serf_rise.max(1)
        } else {
            self.rise.max(1)
        }
    }

    /// The Consul KV key of the quorum gate for a source host
    /// (`habeat/failover/<host>`): one habeat in the installation acts per
    /// source host.
    pub fn gate_key(host: &str) -> String {
        format!("habeat/failover/{host}")
    }
}

/// A witness silent for five round periods has not been observed
/// "consecutively" any more; at least 10s so a slow round is not a gap.
fn stale_after(period: Duration) -> Duration {
    (period * 5).max(Duration::from_secs(10))
}

/// Every 5 rounds, at least 5s: a promotion of many accounts takes
/// minutes, and the failover goes on as soon as it ends.
fn operation_poll(interval: Duration) -> Duration {
    (interval * 5).max(Duration::from_secs(5))
}

/// Retry a failed step after 15 rounds, at least 30s: long enough not to
/// hammer a broken CLI, short enough for the next timer run to retry.
fn retry_delay(interval: Duration) -> Duration {
    (interval * 15).max(Duration::from_secs(30))
}
