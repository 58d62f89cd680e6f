//! Which witnesses a configuration asks about each peer component.
//!
//! One plan, pure and built from the configuration alone, serves every
//! place that needs to know: the [`Prober`](crate::probe::Prober) runs it,
//! the configuration check holds `detection.quorum` against its votes (a
//! quorum the plan cannot reach would mean a component that can never be
//! Down; witnesses of one source, the two that read Serf, are one vote),
//! and `status` lists it, so a witness that has not answered yet shows too.
//! It lives on the configuration's side, which it reads and nothing else,
//! so that the check needs nothing of the prober; `crate::probe`
//! re-exports it.

use super::{Config, ProbeSpec};
use crate::model::{Component, Source, WitnessId, WitnessKind, by_source};
use std::net::IpAddr;

/// Why no plan can be made from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("local.dc_check names {0:?}, which the configuration does not define")]
    NoPeer(String),
    #[error(
        "the {component} address {addr:?} of datacenter {dc:?} is not an IP address (write the IP, e.g. 10.0.0.5)"
    )]
    BadAddress {
        dc: String,
        component: Component,
        addr: String,
    },
}

/// What the operator's witness command (`witnesses.command`) is asked
/// about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub component: Component,
    pub dc: String,
    pub addresses: Vec<String>,
    pub hostnames: Vec<String>,
}

/// What one witness looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Icmp(Vec<IpAddr>),
    Tcp(Vec<IpAddr>, u16),
    Http(String),
    Ldap(Vec<IpAddr>, u16),
    ConsulMembers(Vec<String>),
    ConsulHealth(Vec<String>),
    Command(Subject),
}

/// One witness of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub id: WitnessId,
    pub target: Target,
}

/// The peer components a configuration watches, in a stable order: the one
/// each role acts on, and the directory (a witness of "the whole DC is gone").
pub fn watched_components(cfg: &Config) -> Vec<Component> {
    Component::ALL
        .into_iter()
        .filter(|c| {
            *c == Component::Directory
                || cfg.local.roles.iter().any(|r| r.watched_component() == *c)
        })
        .collect()
}

/// The witnesses of every watched component, in report order, one per
/// kind (a component with several addresses has one ICMP witness, Up as
/// soon as any answers). ICMP needs an address; the Consul witnesses need
/// a hostname (the Consul node name comes from it); the operator's
/// command asks about every component.
pub fn plan(cfg: &Config) -> Result<Vec<Planned>, PlanError> {
    let dc = cfg.local.dc_check.clone();
    let peer = cfg
        .dcs
        .get(&dc)
        .ok_or_else(|| PlanError::NoPeer(dc.clone()))?;
    let mut witnesses: Vec<Planned> = Vec::new();
    let mut push = |id: WitnessId, target: Target| {
        if !witnesses.iter().any(|w| w.id == id) {
            witnesses.push(Planned { id, target });
        }
    };
    for component in watched_components(cfg) {
        let raw_addrs = peer.addresses(component);
        let mut addrs = Vec::new();
        for a in &raw_addrs {
            let ip: IpAddr = a.trim().parse().map_err(|_| PlanError::BadAddress {
                dc: dc.clone(),
                component,
                addr: a.clone(),
            })?;
            addrs.push(ip);
        }
        let hosts = peer.hostnames(component);
        let id = |kind: WitnessKind| WitnessId { component, kind };
        if !addrs.is_empty() {
            push(id(WitnessKind::Icmp), Target::Icmp(addrs.clone()));
        }
        for spec in cfg.probes.for_component(component) {
            match spec {
                ProbeSpec::Icmp => push(id(WitnessKind::Icmp), Target::Icmp(addrs.clone())),
                ProbeSpec::Tcp(p) => push(
                    id(WitnessKind::Tcp { port: *p }),
                    Target::Tcp(addrs.clone(), *p),
                ),
                ProbeSpec::Http(u) => push(
                    id(WitnessKind::Http { url: u.clone() }),
                    Target::Http(u.clone()),
                ),
                ProbeSpec::Ldap(p) => push(
                    id(WitnessKind::Ldap { port: *p }),
                    Target::Ldap(addrs.clone(), *p),
                ),
            }
        }
        if !hosts.is_empty() {
            if cfg.witnesses.consul_members {
                push(
                    id(WitnessKind::ConsulMembers),
                    Target::ConsulMembers(hosts.clone()),
                );
            }
            if cfg.witnesses.consul_health {
                push(
                    id(WitnessKind::ConsulHealth),
                    Target::ConsulHealth(hosts.clone()),
                );
            }
        }
        if !cfg.witnesses.command.is_empty() {
            push(
                id(WitnessKind::Command),
                Target::Command(Subject {
                    component,
                    dc: dc.clone(),
                    addresses: raw_addrs.clone(),
                    hostnames: hosts.clone(),
                }),
            );
        }
    }
    Ok(witnesses)
}

/// One vote of the plan on a component: the witnesses of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVote {
    pub source: Source,
    pub witnesses: Vec<WitnessId>,
}

impl PlannedVote {
    /// `icmp`, or `serf (consul_members + consul_health)` for a source
    /// several witnesses report.
    pub fn describe(&self) -> String {
        match self.witnesses.as_slice() {
            [one] if !self.source.is_shared() => one.kind.to_string(),
            many => format!(
                "{} ({})",
                self.source,
                many.iter()
                    .map(|w| w.kind.to_string())
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
        }
    }
}

/// The votes of `plan` on component `c`, in report order: its witnesses
/// grouped by source, each source one vote for `detection.quorum` (the
/// engine counts them the same way, `engine::votes`).
pub fn votes(plan: &[Planned], c: Component) -> Vec<PlannedVote> {
    let mine = plan
        .iter()
        .filter(|w| w.id.component == c)
        .map(|w| w.id.clone());
    by_source(mine, |id| id.kind.source())
        .into_iter()
        .map(|(source, witnesses)| PlannedVote { source, witnesses })
        .collect()
}
