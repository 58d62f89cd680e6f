//! Vocabulary shared by the probes, the engine, the executor and the
//! configuration (`Quorum`, `Rearm`: the engine reads them, `config` parses
//! them).
//!
//! These types are plain data: the probes produce [`Observation`]s, the
//! engine consumes them. Keeping them here (and free of I/O) lets the engine
//! stay pure and lets tests build rounds by hand.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What a witness says about a component in one probe round, before
/// hysteresis. `Unknown` means "could not tell" (Consul unreachable, token
/// refused, ...): it never counts as Down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    Up,
    Down,
    Unknown,
}

/// The settled opinion about a component (after hysteresis and quorum).
/// Lowercase in JSON like every other word habeat prints there; the
/// capitalised form of early state files is still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[serde(alias = "Up")]
    Up,
    #[serde(alias = "Down")]
    Down,
    #[serde(alias = "Unknown")]
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Up => "Up",
            Verdict::Down => "Down",
            Verdict::Unknown => "Unknown",
        })
    }
}

/// A part of a datacenter that habeat watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Proxy,
    Appserver,
    Directory,
    Consul,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Proxy,
        Component::Appserver,
        Component::Directory,
        Component::Consul,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Proxy => "proxy",
            Component::Appserver => "appserver",
            Component::Directory => "directory",
            Component::Consul => "consul",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a node acts for. A node may hold several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Appserver,
    Proxyserver,
    Consulserver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Appserver => "appserver",
            Role::Proxyserver => "proxyserver",
            Role::Consulserver => "consulserver",
        }
    }

    /// The peer component whose loss this role acts on.
    pub fn watched_component(self) -> Component {
        match self {
            Role::Appserver => Component::Appserver,
            Role::Proxyserver => Component::Proxy,
            Role::Consulserver => Component::Consul,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many Down votes make a component Down (any Up vote vetoes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quorum {
    /// Every vote (so every witness) of the component must be Down.
    All,
    /// At least N votes must be Down (one per source).
    #[serde(untagged)]
    AtLeast(u32),
}

impl Quorum {
    /// How many Down votes, of the `votes` a component has, make it Down:
    /// the one count the engine's verdict, `config check` and `status` use.
    pub fn needed(self, votes: usize) -> usize {
        match self {
            Quorum::All => votes,
            Quorum::AtLeast(n) => usize::try_from(n.max(1)).unwrap_or(usize::MAX),
        }
    }
}

/// `items` grouped by their witness's source (`source`), each
/// group one vote (invariant `one-source-one-vote`), in the order of each
/// source's first item: the one grouping the engine's verdict and the
/// witness plan share.
pub fn by_source<T>(
    items: impl IntoIterator<Item = T>,
    source: impl Fn(&T) -> Source,
) -> Vec<(Source, Vec<T>)> {
    let mut out: Vec<(Source, Vec<T>)> = Vec::new();
    for item in items {
        let s = source(&item);
        match out.iter_mut().find(|(seen, _)| *seen == s) {
            Some((_, group)) => group.push(item),
            None => out.push((s, vec![item])),
        }
    }
    out
}

/// When the failover locks clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rearm {
    /// When the peer is Up again (the old behaviour).
    Auto,
    /// Only by `habeat rearm`.
    Manual,
}

impl Rearm {
    /// The values `safety.rearm` accepts.
    pub const CHOICES: &[(&str, Rearm)] = &[("auto", Rearm::Auto), ("manual", Rearm::Manual)];

    pub fn as_str(self) -> &'static str {
        match self {
            Rearm::Auto => "auto",
            Rearm::Manual => "manual",
        }
    }
}

/// `safety.require_peer_lease`: whether the secondary may promote a primary
/// host that has no serving lease key (`habeat/serving/<host>`) at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerLease {
    /// No key: the primary side runs no lease; nothing to take over, go on.
    Auto,
    /// No key: wait (the primary side must run a lease).
    Always,
}

impl PeerLease {
    /// The values `safety.require_peer_lease` accepts.
    pub const CHOICES: &[(&str, PeerLease)] =
        &[("auto", PeerLease::Auto), ("always", PeerLease::Always)];

    pub fn as_str(self) -> &'static str {
        match self {
            PeerLease::Auto => "auto",
            PeerLease::Always => "always",
        }
    }
}

/// When the consulserver role may recover raft by itself
/// (`safety.raft_recovery`, invariant `no-raft-recovery-on-time-alone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftRecoveryPolicy {
    /// Only when a third vantage point agrees: the `witnesses.command`
    /// arbiter votes Down for the consul component, or `fencing.consul`
    /// confirms every peer Consul server OFF.
    Confirmed,
    /// Never by itself: only `habeat recover --peer-dc-lost`.
    Operator,
    /// The old rule: `recovery_grace` alone (a partition longer than it
    /// splits Consul); warned about at every start.
    Timer,
}

impl RaftRecoveryPolicy {
    /// The values `safety.raft_recovery` accepts.
    pub const CHOICES: &[(&str, RaftRecoveryPolicy)] = &[
        ("confirmed", RaftRecoveryPolicy::Confirmed),
        ("operator", RaftRecoveryPolicy::Operator),
        ("timer", RaftRecoveryPolicy::Timer),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RaftRecoveryPolicy::Confirmed => "confirmed",
            RaftRecoveryPolicy::Operator => "operator",
            RaftRecoveryPolicy::Timer => "timer",
        }
    }
}

/// What a fence agent may do to a peer node (`fencing.<component>.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FenceAction {
    /// Power the node off if `status` says ON, then `status` must say OFF.
    Off,
    /// Never power anything off: only a `status` of OFF is accepted. The
    /// default: powering off is asked for explicitly.
    #[default]
    Status,
}

impl FenceAction {
    /// The values `fencing.<component>.action` accepts.
    pub const CHOICES: &[(&str, FenceAction)] =
        &[("off", FenceAction::Off), ("status", FenceAction::Status)];

    pub fn as_str(self) -> &'static str {
        match self {
            FenceAction::Off => "off",
            FenceAction::Status => "status",
        }
    }
}

/// True for a fence agent option whose value is a secret (`password`,
/// `passwd`, `snmp_priv_passwd`, ...): its value is never printed, logged
/// or journaled. `password_script` (and any `*_script`) names a program,
/// not a secret, and is shown.
pub fn fence_option_is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    k.contains("passw") && !k.ends_with("_script")
}

/// Why a fence agent did not confirm a node OFF. Any of these is no
/// confirmation: the action it guards does not happen (invariant 12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FenceFailure {
    /// `status` says the node is ON (with `action: status`, or still ON
    /// after `off`).
    #[error("the fence agent's status says {plug} is ON")]
    On { plug: String },
    /// The agent exited with a code that is neither ON (0) nor OFF (2)
    /// for `status`, or not 0 for `off`.
    #[error("the fence agent's {action} for {plug} failed (exit {exit})")]
    AgentFailed {
        plug: String,
        action: FenceAction,
        exit: i32,
    },
    /// Killed by a signal that was not ours.
    #[error("the fence agent's {action} for {plug} was killed by signal {signal}")]
    Signaled {
        plug: String,
        action: FenceAction,
        signal: i32,
    },
    /// Ran past `fencing.timeout`; its process group was killed.
    #[error("the fence agent's {action} for {plug} ran past fencing.timeout and was killed")]
    TimedOut { plug: String, action: FenceAction },
    /// The agent could not be started at all.
    #[error("the fence agent could not be started: {message}")]
    Spawn { message: String },
    /// The executor could not run the step (no such target configured,
    /// the action's time limit): nothing was asked of the agent, or its
    /// answer was lost.
    #[error("the fence step did not run to its end: {reason}")]
    NotRun { reason: String },
}

impl fmt::Display for FenceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// The fence agent calls, as the runner (`act::fence`) reports them and
// the engine journals them.

/// The power state a `status` call reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    On,
    Off,
}

/// How one agent call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallEnd {
    Exited { code: i32 },
    Signaled { signal: i32 },
    TimedOut,
    Spawn { message: String },
}

/// One call of a fence agent, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceCall {
    pub plug: String,
    /// `status` or `off`: what `action=` said.
    pub action: FenceAction,
    pub exit: CallEnd,
    /// The end of stdout+stderr, secret option values scrubbed.
    pub tail: String,
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub elapsed: Duration,
}

impl FenceCall {
    /// What the call says about the node's power: for `status`, 0 is ON
    /// and 2 is OFF; for `off`, 0 is done. Anything else is a failure.
    pub fn power(&self) -> Result<Power, FenceFailure> {
        let plug = self.plug.clone();
        let action = self.action;
        match (&self.exit, action) {
            (CallEnd::Exited { code: 0 }, FenceAction::Status) => Ok(Power::On),
            (CallEnd::Exited { code: 2 }, FenceAction::Status) => Ok(Power::Off),
            (CallEnd::Exited { code: 0 }, FenceAction::Off) => Ok(Power::Off),
            (CallEnd::Exited { code }, _) => Err(FenceFailure::AgentFailed {
                plug,
                action,
                exit: *code,
            }),
            (CallEnd::Signaled { signal }, _) => Err(FenceFailure::Signaled {
                plug,
                action,
                signal: *signal,
            }),
            (CallEnd::TimedOut, _) => Err(FenceFailure::TimedOut { plug, action }),
            (CallEnd::Spawn { message }, _) => Err(FenceFailure::Spawn {
                message: message.clone(),
            }),
        }
    }
}

/// What an automatic promotion does with accounts whose replica is at
/// risk (`replicas.at_risk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AtRiskPolicy {
    /// Promote every account, naming those at risk (the old behaviour,
    /// made visible).
    #[default]
    Promote,
    /// Promote the others; leave those at risk for the operator, named,
    /// with the command that moves them.
    Hold,
}

impl AtRiskPolicy {
    /// The values `replicas.at_risk` accepts.
    pub const CHOICES: &[(&str, AtRiskPolicy)] = &[
        ("promote", AtRiskPolicy::Promote),
        ("hold", AtRiskPolicy::Hold),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AtRiskPolicy::Promote => "promote",
            AtRiskPolicy::Hold => "hold",
        }
    }
}

/// Whether the daemon gives accounts a new replica by itself
/// (`replicas.reprotect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReprotectPolicy {
    /// Only `habeat reprotect` does it.
    #[default]
    Manual,
    /// Once when the peer appserver is Up again after a promotion, and
    /// once per account the survey first finds without a replica on the
    /// peer's mailstore.
    Auto,
}

impl ReprotectPolicy {
    /// The values `replicas.reprotect` accepts.
    pub const CHOICES: &[(&str, ReprotectPolicy)] = &[
        ("manual", ReprotectPolicy::Manual),
        ("auto", ReprotectPolicy::Auto),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReprotectPolicy::Manual => "manual",
            ReprotectPolicy::Auto => "auto",
        }
    }
}

/// The kind of evidence a witness gathers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WitnessKind {
    /// ICMP echo to the component's address(es).
    Icmp,
    /// TCP connect to a port.
    Tcp { port: u16 },
    /// HTTP(S) GET of a URL.
    Http { url: String },
    /// Anonymous LDAP rootDSE search on a port.
    Ldap { port: u16 },
    /// Serf membership of the component's node, from the local Consul agent.
    ConsulMembers,
    /// The node's health checks (serfHealth), from the local Consul agent.
    ConsulHealth,
    /// The operator's external witness command.
    Command,
}

impl WitnessKind {
    /// Whether the witness reads Serf's verdict (through the local Consul
    /// agent) rather than probing the peer itself: Serf has already
    /// confirmed a `failed` member with its own suspicion protocol.
    pub fn reads_serf(&self) -> bool {
        matches!(self, WitnessKind::ConsulMembers | WitnessKind::ConsulHealth)
    }

    /// The source this witness's evidence comes from: witnesses of one
    /// source make one vote for `detection.quorum` (docs/decisions.md §1).
    pub fn source(&self) -> Source {
        if self.reads_serf() {
            Source::Serf
        } else {
            Source::Own(self.clone())
        }
    }
}

/// Where a witness's evidence comes from. Witnesses of one source are one
/// observation, however many of them report it, so they make **one vote**
/// for `detection.quorum` (invariant `one-source-one-vote`).
///
/// - `consul_members` and `consul_health` are both the local Consul
///   agent's report of the same Serf gossip (member status and the
///   `serfHealth` check that Serf's failure detector drives): one source.
/// - Every other witness makes its own observation of the peer (its own
///   echo requests, connections, HTTP requests, LDAP searches, the
///   operator's command) and is a source by itself. A component with
///   several addresses (the Consul servers) has one ICMP witness, Up as
///   soon as any address answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Serf's gossip, as the local Consul agent learned it.
    Serf,
    /// A witness that observes the peer by itself.
    Own(WitnessKind),
}

impl Source {
    /// Whether more than one witness kind can report this source.
    pub fn is_shared(&self) -> bool {
        matches!(self, Source::Serf)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Serf => f.write_str("serf"),
            Source::Own(kind) => kind.fmt(f),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for WitnessKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WitnessKind::Icmp => f.write_str("icmp"),
            WitnessKind::Tcp { port } => write!(f, "tcp:{port}"),
            WitnessKind::Http { url } => write!(f, "http:{url}"),
            WitnessKind::Ldap { port } => write!(f, "ldap:{port}"),
            WitnessKind::ConsulMembers => f.write_str("consul_members"),
            WitnessKind::ConsulHealth => f.write_str("consul_health"),
            WitnessKind::Command => f.write_str("command"),
        }
    }
}

/// One independent source of evidence about one component of the peer DC.
/// Its identity is stable across rounds so that the engine can keep
/// per-witness fall/rise counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WitnessId {
    pub component: Component,
    pub kind: WitnessKind,
}

impl fmt::Display for WitnessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.component, self.kind)
    }
}

/// One witness's answer in one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub witness: WitnessId,
    pub vote: Vote,
    /// Why, in words an operator understands ("no echo reply from 10.0.0.5
    /// within 1s", "member server-svc1 status 4 (failed)").
    pub reason: String,
    #[serde(with = "humantime_serde_compat")]
    pub latency: Duration,
}

/// Serialize a `Duration` as a humantime string ("1s 200ms") in JSON.
pub mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// One raft server as the local Consul last reported it
/// (`/v1/operator/raft/configuration`). Kept while healthy so that raft
/// recovery can write `peers.json` with the right ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftServer {
    pub id: String,
    /// Consul node name (`server-svc1-example-com`).
    pub node: String,
    /// `ip:port` of the server's raft (server RPC) address.
    pub address: String,
    pub leader: bool,
    pub voter: bool,
}

/// Everything the probes learned in one round: the input of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// One observation per witness of the peer DC.
    pub observations: Vec<Observation>,
    /// Whether the local Consul has a raft leader (`/v1/status/leader` not
    /// `""`); `None` when the local agent could not be asked.
    pub local_leader: Option<bool>,
    /// The raft configuration, when the local Consul could report one.
    pub raft_servers: Option<Vec<RaftServer>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_lowercase_in_json_and_early_capitalised_state_files_still_load() {
        assert_eq!(
            serde_json::to_string(&Verdict::Down).ok().as_deref(),
            Some("\"down\"")
        );
        for (text, v) in [("\"Up\"", Verdict::Up), ("\"up\"", Verdict::Up)] {
            assert_eq!(serde_json::from_str::<Verdict>(text).ok(), Some(v));
        }
    }
}
