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
    /// Every witness of the component must vote Down.
    All,
    /// At least N witnesses must vote Down.
    #[serde(untagged)]
    AtLeast(u32),
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
