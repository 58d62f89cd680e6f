//! Consul raft recovery (`no-raft-recovery-on-time-alone`): rewrite
//! `raft/peers.json` and restart service-discover, then wait for a leader.

use super::{Effect, Given};
use crate::act::raft::{
    PeerEntry, RaftRecovery as Recovery, local_addresses, own_server_address, read_node_id,
    render_peers_json,
};
use crate::engine::{Action, OutcomeResult};
use crate::exec::dry::{P, assumed, say};
use crate::exec::{Executor, failed, round_ms, succeeded};
use crate::model::RaftServer;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long confirming the leader waits for one after restarting Consul.
const LEADER_DEADLINE: Duration = Duration::from_secs(60);

/// How long resolving a `consul_ips` hostname may take during recovery.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Stop service-discover, write `raft/peers.json` listing `servers`
/// (empty: the local server alone, from its `node-id`), start it.
pub(super) struct RaftRecovery<'a> {
    pub servers: &'a Vec<RaftServer>,
}

impl Effect for RaftRecovery<'_> {
    const LABEL: &'static str = "raft_recovery";

    fn time_limit(&self, ex: &Executor) -> Duration {
        Recovery::new(&ex.cfg.consul).time_limit()
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let recovery = Recovery::new(&ex.cfg.consul);
        let peers = match raft_peers(ex, &recovery, self.servers).await {
            Ok(p) => p,
            Err(reason) => return failed(reason),
        };
        let client = match ex.consul.as_ref() {
            Ok(c) => c.clone(),
            Err(e) => return failed(e.clone()),
        };
        let res = recovery
            .recover(&peers, || {
                let c = client.clone();
                async move {
                    c.leader()
                        .await
                        .map(|l| l.is_some())
                        .map_err(|e| e.to_string())
                }
            })
            .await;
        match res {
            Ok(r) => succeeded(format!(
                "raft recovered with {} server(s); leader after {}",
                r.peers.len(),
                humantime::format_duration(round_ms(r.leader_after))
            )),
            Err(e) => failed(e.to_string()),
        }
    }

    /// The servers as the real run finds them (the recorded configuration,
    /// or `node-id` and this node's address read for real) and the
    /// `peers.json` it would write, printed whole; the stop and start are
    /// only named.
    async fn simulate(
        self,
        ex: &mut Executor,
        act: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        say!("{P} would {}", act.kind.describe());
        let recovery = Recovery::new(&ex.cfg.consul);
        let peers = match raft_peers(ex, &recovery, self.servers).await {
            Ok(p) => p,
            Err(reason) => {
                say!("{P}   the real run would fail here: {reason}");
                return failed(reason);
            }
        };
        let text = match render_peers_json(&peers) {
            Ok(t) => t,
            Err(e) => {
                say!("{P}   the real run would fail here: {e}");
                return failed(e.to_string());
            }
        };
        let c = &ex.cfg.consul;
        say!(
            "{P} would stop service-discover: {}",
            c.service_stop.join(" ")
        );
        say!(
            "{P} would write {} ({} server(s)):",
            recovery.data_dir.join("raft/peers.json").display(),
            peers.len()
        );
        for line in text.lines() {
            say!("{P}   {line}");
        }
        say!(
            "{P} would start service-discover: {}",
            c.service_start.join(" ")
        );
        assumed("service-discover restarts and a leader is elected")
    }
}

/// Wait (bounded) for `/v1/status/leader` to name a leader.
pub(super) struct ConfirmLeader;

impl Effect for ConfirmLeader {
    const LABEL: &'static str = "confirm_leader";

    fn time_limit(&self, ex: &Executor) -> Duration {
        LEADER_DEADLINE + ex.cfg.carbonio.command_timeout
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let c = match ex.consul.as_ref() {
            Ok(c) => c,
            Err(e) => return failed(e.clone()),
        };
        let deadline = Instant::now() + LEADER_DEADLINE;
        loop {
            match c.leader().await {
                Ok(Some(l)) => return succeeded(format!("raft leader {l}")),
                _ if Instant::now() >= deadline => {
                    return OutcomeResult::TimedOut {
                        reason: "no raft leader appeared".into(),
                    };
                }
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    async fn simulate(
        self,
        _: &mut Executor,
        act: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        say!("{P} would {}", act.kind.describe());
        assumed("it succeeds")
    }
}

/// The servers `peers.json` names: those recorded while this side had a
/// leader, or else this server alone, at its own address (not merely the
/// first one this DC lists) with its `node-id`, and only if it is the DC's
/// only server. The dry run asks the same.
async fn raft_peers(
    ex: &Executor,
    recovery: &Recovery,
    servers: &[RaftServer],
) -> Result<Vec<PeerEntry>, String> {
    if servers.is_empty() {
        let ip = own_consul_address(ex).await?;
        let id = read_node_id(&recovery.data_dir).map_err(|e| e.to_string())?;
        Ok(vec![PeerEntry::voter(
            id,
            SocketAddr::new(ip, 8300).to_string(),
        )])
    } else {
        Ok(servers
            .iter()
            .map(|s| PeerEntry::voter(s.id.clone(), s.address.clone()))
            .collect())
    }
}

/// This node's address among its DC's `consul_ips` (hostnames are
/// resolved, within [`RESOLVE_TIMEOUT`]); see [`own_server_address`].
async fn own_consul_address(ex: &Executor) -> Result<IpAddr, String> {
    let dc = &ex.cfg.local.whoami;
    let listed = ex
        .cfg
        .own()
        .map(|d| d.consul_ips.clone())
        .unwrap_or_default();
    let mut servers = Vec::new();
    for name in listed {
        let addrs = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let lookup = tokio::net::lookup_host((name.as_str(), 8300));
                match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(Ok(a)) => a.map(|s| s.ip()).collect(),
                    Ok(Err(e)) => {
                        return Err(format!("{dc}.consul_ips: cannot resolve {name}: {e}"));
                    }
                    Err(_) => {
                        return Err(format!(
                            "{dc}.consul_ips: resolving {name} took over {}",
                            humantime::format_duration(RESOLVE_TIMEOUT)
                        ));
                    }
                }
            }
        };
        servers.push((name, addrs));
    }
    let local = if servers.len() == 1 {
        local_addresses()?
    } else {
        Vec::new()
    };
    own_server_address(dc, &servers, &local)
}
