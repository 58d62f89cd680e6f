//! The executor: carries out one engine [`Action`] against the outside
//! world and reports its [`ActionOutcome`]. It decides nothing: every "if"
//! about *whether* to act lives in the engine.

use crate::act::carbonio::{Carbonio, CarbonioError};
use crate::act::hooks::{HookEnv, HookRunner};
use crate::act::raft::{
    PeerEntry, RaftRecovery, local_addresses, own_server_address, read_node_id,
};
use crate::act::{AccountName, MailHost};
use crate::config::{Config, HookCommand};
use crate::consul::{self, gate};
use crate::engine::{
    Action, ActionKind, ActionOutcome, Origin, OutcomeResult, PromoteTarget, UnixMillis,
};
use crate::engine::{GateRefusal, PeerLeaseWait};
use crate::model::PeerLease;
use crate::state;

mod dry;
mod lease;
pub use dry::{PREVIEW, report_on_stderr};
use lease::take_over;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long raft recovery waits for a leader after restarting Consul.
const LEADER_DEADLINE: Duration = Duration::from_secs(60);

/// How long resolving a `consul_ips` hostname may take during recovery.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the executor checks right before it runs an action, in this
/// order; the first that fails is the action's outcome and the action does
/// not run (nor count as tried: the engine retries it). These are
/// preconditions the engine cannot see from its records, because they live
/// in Consul and may have changed since the engine decided. Each one is
/// idempotent and made again at every attempt, so a kill -9 before or
/// after it resumes correctly (`resumable-steps`).
///
/// 1. [`PreStepCheck::GateStillHeld`], `quorum-gate`: the gate's Consul
///    session is still ours. First, because everything after it leans on
///    it: the lease is taken over *with that session*, and a side that has
///    lost the gate has no proof it holds the Consul majority.
/// 2. [`PreStepCheck::PeerLeaseTakenOver`], `lease-before-takeover`: the
///    peer's serving lease `habeat/serving/<host>` is ours. After the gate
///    (it needs its session), and before the fence step of the peer
///    mailstore as before promoteAccounts: a primary that still holds its
///    lease is alive and reaches the Consul majority, so it is neither
///    powered off nor promoted away from.
/// 3. Then the fence, where `fencing.<component>` is set
///    (`fence-before-promotion`): not a check here but a step of its own,
///    recorded, that the engine puts after the gate and before the
///    promotion (or the proxyserver's first switch command). Both checks
///    above run before it, so the peer is powered off only once the gate
///    and the lease are this side's.
const PRE_STEP_CHECKS: [PreStepCheck; 2] = [
    PreStepCheck::GateStillHeld,
    PreStepCheck::PeerLeaseTakenOver,
];

/// One check of [`PRE_STEP_CHECKS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreStepCheck {
    /// Before a gated automatic action (`ActionKind::needs_gate`) with the
    /// quorum gate on: [`Executor::gate_lost`].
    GateStillHeld,
    /// Before an automatic promoteAccounts and the automatic fence of the
    /// peer mailstore: [`Executor::take_over_peer_lease`].
    PeerLeaseTakenOver,
}

/// Runs actions; holds the quorum-gate locks between acquire and release.
pub struct Executor {
    cfg: Config,
    carbonio: Result<Carbonio, String>,
    hooks: HookRunner,
    consul: Result<consul::Client, String>,
    gates: HashMap<String, gate::FailoverLock>,
    /// With the quorum gate off: the session of our own that holds (or was
    /// last used to take) each peer serving lease, by key. Kept so a retry
    /// after the takeover reuses it instead of finding the key held by
    /// this side's earlier session, as if the primary still held it.
    lease_sessions: HashMap<String, String>,
    /// Where the events it writes itself go (`peer_lease_unchecked`).
    events: crate::sink::EventSink,
}

impl Executor {
    /// An executor for `cfg`. Problems that only matter when an action runs
    /// (an unknown `run_as` user, an unreadable CA file) are reported then,
    /// as a failed action, not here: `status` must work regardless. The
    /// events it writes go to `events`, its session's.
    pub fn new(cfg: &Config, events: crate::sink::EventSink) -> Executor {
        Executor {
            cfg: cfg.clone(),
            carbonio: Carbonio::new(&cfg.carbonio).map_err(|e| e.to_string()),
            hooks: HookRunner::new(cfg.hooks.timeout),
            consul: consul::Client::new(
                &cfg.consul,
                cfg.carbonio.command_timeout.min(Duration::from_secs(10)),
            )
            .map_err(|e| e.to_string()),
            gates: HashMap::new(),
            lease_sessions: HashMap::new(),
            events,
        }
    }

    /// Carry out `action` and say how it went. However it is carried out,
    /// it ends by [`Executor::time_limit`]: what runs past it is dropped
    /// (its children killed with their process group) and reported as
    /// timed out, so that no step can hold a chain, or the daemon, forever.
    pub async fn execute(&mut self, action: &Action) -> ActionOutcome {
        let started = Instant::now();
        let limit = self.time_limit(&action.kind);
        let result = match tokio::time::timeout(limit, self.run(action)).await {
            Ok(r) => r,
            Err(_) => OutcomeResult::TimedOut {
                reason: format!(
                    "did not finish within {}, the most its commands may take; stopped",
                    humantime::format_duration(limit)
                ),
            },
        };
        tracing::info!(
            action = %action.kind.describe(),
            took = %humantime::format_duration(round_ms(started.elapsed())),
            result = %brief(&result),
            "action finished"
        );
        ActionOutcome {
            id: action.id,
            result,
        }
    }

    /// The most `kind` may take: the timeouts of what it runs, added up,
    /// plus a margin. Each command already has its own timeout; this is
    /// the backstop for what has none (a bug, a stuck system call).
    pub fn time_limit(&self, kind: &ActionKind) -> Duration {
        const MARGIN: Duration = Duration::from_secs(30);
        let c = &self.cfg.carbonio;
        let per_account = |n: usize| c.command_timeout * u32::try_from(n).unwrap_or(u32::MAX);
        let limit = match kind {
            ActionKind::PromoteAccounts { .. } => c.promote_timeout,
            ActionKind::FlushCache { accounts, .. } => per_account(accounts.len()),
            ActionKind::PauseReplicas { accounts } | ActionKind::RestartReplicas { accounts } => {
                per_account(crate::act::carbonio::account_batches(accounts).len())
            }
            ActionKind::RunCommand { .. } => self.cfg.hooks.timeout,
            ActionKind::RaftRecovery { .. } => RaftRecovery::new(&self.cfg.consul).time_limit(),
            ActionKind::ConfirmLeader => LEADER_DEADLINE + c.command_timeout,
            // At most status, off, status per plug.
            ActionKind::Fence { plugs, .. } => {
                self.cfg.fencing.timeout * 3 * u32::try_from(plugs.len().max(1)).unwrap_or(u32::MAX)
            }
            // Listings, HA module, Consul calls (a few requests each),
            // lock files.
            ActionKind::ListAccounts { .. }
            | ActionKind::ListOperations { .. }
            | ActionKind::StopHaModule
            | ActionKind::StartHaModule
            | ActionKind::AcquireQuorumGate { .. }
            | ActionKind::ReleaseQuorumGate { .. }
            | ActionKind::WriteLocks { .. }
            | ActionKind::RemoveLocks { .. } => c.command_timeout * 4,
        };
        limit.saturating_add(MARGIN)
    }

    /// Release every quorum-gate lock still held (on exit).
    /// Give the quorum gates held (and the peer lease sessions kept) to
    /// `to`, the executor of a reloaded configuration that carries on this
    /// one's chain: the engine still counts on them. A gate whose session
    /// the new configuration cannot renew is found lost before the next
    /// gated step ([`PreStepCheck::GateStillHeld`]) and taken again.
    pub fn hand_over_gates(&mut self, to: &mut Executor) {
        to.gates.extend(self.gates.drain());
        to.lease_sessions.extend(self.lease_sessions.drain());
    }

    pub async fn release_all(&mut self) {
        for (_, lock) in self.gates.drain() {
            let _ = lock.release().await;
        }
    }

    /// [`PreStepCheck::GateStillHeld`]: a gated automatic action runs only
    /// while the quorum gate is really held: its Consul session may have
    /// been lost (invalidated, not renewed for a TTL) while an earlier step
    /// ran, and the lock may now be someone else's. The engine then takes
    /// the gate again.
    fn gate_lost(&mut self, action: &Action) -> Option<OutcomeResult> {
        if action.origin != Origin::Automatic
            || !self.cfg.safety.quorum_gate
            || !action.kind.needs_gate()
        {
            return None;
        }
        let lost: Vec<String> = self
            .gates
            .iter()
            .filter(|(_, l)| !l.is_held())
            .map(|(k, _)| k.clone())
            .collect();
        for k in &lost {
            self.gates.remove(k);
        }
        if self.gates.is_empty() {
            let refusal = if lost.is_empty() {
                GateRefusal::NotHeld
            } else {
                GateRefusal::Lost { keys: lost }
            };
            return Some(OutcomeResult::GateRefused { refusal });
        }
        None
    }

    /// A listing as the engine takes it: the names, and the accounts at
    /// risk from this listing against the last survey (the source's last
    /// `sequence`/`itemId` are the survey's: the source is usually gone).
    /// A survey file that cannot be read is reported and the analysis
    /// made from the listing alone.
    pub fn listed(&self, list: &[crate::act::carbonio::AccountStatus]) -> OutcomeResult {
        let last = match crate::survey::store::load(&self.cfg.local.state_dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{e}; the accounts at risk are judged from the listing alone");
                None
            }
        };
        let fresh: Vec<crate::survey::Surveyed> =
            list.iter().map(crate::survey::Surveyed::from).collect();
        OutcomeResult::Listed {
            accounts: list.iter().map(|a| a.account_name.to_string()).collect(),
            at_risk: crate::survey::at_promotion(last.as_ref(), &fresh),
        }
    }

    /// The checks of [`PRE_STEP_CHECKS`], in their order: the first that
    /// fails is the outcome, and the action does not run.
    async fn pre_step_checks(&mut self, action: &Action) -> Option<OutcomeResult> {
        for check in PRE_STEP_CHECKS {
            let stop = match check {
                PreStepCheck::GateStillHeld => self.gate_lost(action),
                PreStepCheck::PeerLeaseTakenOver => match self.lease_host(action) {
                    Some(host) => self
                        .take_over_peer_lease(&host)
                        .await
                        .map(|wait| OutcomeResult::PeerLeaseWait { wait }),
                    None => None,
                },
            };
            if stop.is_some() {
                return stop;
            }
        }
        None
    }

    /// [`PreStepCheck::PeerLeaseTakenOver`] applies to an automatic
    /// promoteAccounts (the host it promotes from) and to the fence step of
    /// the peer mailstore (the host `fencing.appserver` powers off): the
    /// serving lease of that host.
    fn lease_host(&self, action: &Action) -> Option<String> {
        match (&action.origin, &action.kind) {
            (
                Origin::Automatic,
                ActionKind::PromoteAccounts {
                    source_mail_host, ..
                },
            ) => Some(source_mail_host.clone()),
            (
                Origin::Automatic,
                ActionKind::Fence {
                    component: crate::model::Component::Appserver,
                    ..
                },
            ) => self.cfg.peer().appserver_vmname.clone(),
            _ => None,
        }
    }

    async fn run(&mut self, action: &Action) -> OutcomeResult {
        if let Some(refused) = self.pre_step_checks(action).await {
            return refused;
        }
        let now = UnixMillis::from_system_time(std::time::SystemTime::now());
        match &action.kind {
            ActionKind::ListAccounts { source_mail_host } => {
                let host = match MailHost::parse(source_mail_host) {
                    Ok(h) => h,
                    Err(e) => return failed(format!("source host {source_mail_host:?}: {e}")),
                };
                match self.cli() {
                    Ok(c) => match c.get_account_status(&host).await {
                        Ok(list) => self.listed(&list),
                        Err(e) => cli_error(e),
                    },
                    Err(r) => r,
                }
            }
            ActionKind::ListOperations { .. } => match self.cli() {
                Ok(c) => match c.get_all_operations().await {
                    Ok(ops) => OutcomeResult::Operations {
                        promotions: promotions_running(&ops),
                    },
                    Err(e) => cli_error(e),
                },
                Err(r) => r,
            },
            ActionKind::PromoteAccounts {
                target, threads, ..
            } => {
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let res = match target {
                    PromoteTarget::SourceMailHost(h) => match MailHost::parse(h) {
                        Ok(h) => cli.promote_source_host(&h, *threads).await,
                        Err(e) => return failed(format!("source host {h:?}: {e}")),
                    },
                    // An automatic promotion by name is `replicas.at_risk:
                    // hold` promoting the accounts not at risk: through
                    // `input_file`, whatever the length of the list.
                    PromoteTarget::Accounts(a) if action.origin == Origin::Automatic => {
                        match accounts(a) {
                            Ok(a) => cli.promote_accounts_file(&a, Some(*threads)).await,
                            Err(r) => return r,
                        }
                    }
                    PromoteTarget::Accounts(a) => match accounts(a) {
                        Ok(a) => cli.promote_accounts(&a, Some(*threads)).await,
                        Err(r) => return r,
                    },
                };
                report(res)
            }
            ActionKind::FlushCache {
                accounts: a,
                all_servers,
            } => {
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let names = match accounts(a) {
                    Ok(n) => n,
                    Err(r) => return r,
                };
                for name in &names {
                    if let Err(e) = cli.flush_cache(name, *all_servers).await {
                        return cli_error(e);
                    }
                }
                succeeded(format!("flushed the cache of {} account(s)", names.len()))
            }
            ActionKind::PauseReplicas { accounts: a } => match (self.cli(), accounts(a)) {
                (Ok(c), Ok(n)) => report(c.pause_replicas(&n).await),
                (Err(r), _) | (_, Err(r)) => r,
            },
            ActionKind::RestartReplicas { accounts: a } => match (self.cli(), accounts(a)) {
                (Ok(c), Ok(n)) => report(c.restart_replicas(&n).await),
                (Err(r), _) | (_, Err(r)) => r,
            },
            ActionKind::StopHaModule => match self.cli() {
                Ok(c) => report(c.stop_module().await),
                Err(r) => r,
            },
            ActionKind::StartHaModule => match self.cli() {
                Ok(c) => report(c.start_module().await),
                Err(r) => r,
            },
            ActionKind::WriteLocks { locks, reason } => {
                match state::write_locks(&self.cfg.local, action.role, locks, reason, now) {
                    Ok(()) => succeeded(format!("wrote lock files {locks:?}")),
                    Err(e) => failed(e.to_string()),
                }
            }
            ActionKind::RemoveLocks { locks } => {
                match state::remove_locks(&self.cfg.local, action.role, locks) {
                    Ok(()) => succeeded(format!("removed lock files {locks:?}")),
                    Err(e) => failed(e.to_string()),
                }
            }
            ActionKind::RunCommand { purpose, argv, .. } => {
                let env = HookEnv::new()
                    .set("purpose", purpose.as_str())
                    .set("role", action.role.as_str())
                    .set("whoami", &self.cfg.local.whoami)
                    .set("dc_check", &self.cfg.local.dc_check)
                    .set(
                        "source_host",
                        self.cfg.peer().appserver_vmname.clone().unwrap_or_default(),
                    );
                let out = self
                    .hooks
                    .run(&HookCommand::Argv(argv.clone()), &env, None)
                    .await;
                let detail = format!(
                    "{} exited {} after {}; output: {}",
                    out.command,
                    out.exit_code
                        .map_or("without a code".to_string(), |c| c.to_string()),
                    humantime::format_duration(round_ms(out.duration)),
                    out.tail.trim()
                );
                if out.ok {
                    succeeded(detail)
                } else if out.timed_out {
                    OutcomeResult::TimedOut { reason: detail }
                } else {
                    failed(detail)
                }
            }
            ActionKind::AcquireQuorumGate { key } => self.acquire_gate(key).await,
            ActionKind::ReleaseQuorumGate { key } => {
                if let Some(lock) = self.gates.remove(key)
                    && let Err(e) = lock.release().await
                {
                    tracing::warn!(
                        "releasing the quorum gate {key}: {e} (its session expires by itself)"
                    );
                }
                succeeded(format!("released {key}"))
            }
            ActionKind::RaftRecovery { servers } => self.raft_recovery(servers).await,
            ActionKind::ConfirmLeader => match self.consul.as_ref() {
                Ok(c) => {
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
                Err(e) => failed(e.clone()),
            },
            ActionKind::Fence {
                component,
                action,
                plugs,
            } => self.fence(*component, *action, plugs).await,
        }
    }

    /// The fence step: the agent and its options from the config, what
    /// it may do and the plugs as the engine recorded them. Confirmed only
    /// when every plug is confirmed OFF.
    async fn fence(
        &self,
        component: crate::model::Component,
        action: crate::model::FenceAction,
        plugs: &[String],
    ) -> OutcomeResult {
        let Some(t) = self.cfg.fencing.target(component) else {
            return OutcomeResult::FenceUnconfirmed {
                failure: crate::model::FenceFailure::NotRun {
                    reason: format!("fencing.{component} is not configured"),
                },
                calls: Vec::new(),
            };
        };
        let target = crate::config::FenceTarget {
            action,
            ..t.clone()
        };
        let reports =
            crate::act::fence::confirm_all_off(&target, plugs, self.cfg.fencing.timeout).await;
        let failure = reports.iter().find_map(|r| r.verdict.clone().err());
        let calls: Vec<_> = reports.into_iter().flat_map(|r| r.calls).collect();
        match failure {
            None if !plugs.is_empty() => OutcomeResult::Fenced { calls },
            None => OutcomeResult::FenceUnconfirmed {
                failure: crate::model::FenceFailure::NotRun {
                    reason: format!("fencing.{component} names no plug"),
                },
                calls,
            },
            Some(failure) => OutcomeResult::FenceUnconfirmed { failure, calls },
        }
    }

    fn cli(&self) -> Result<&Carbonio, OutcomeResult> {
        self.carbonio.as_ref().map_err(|e| failed(e.clone()))
    }

    async fn acquire_gate(&mut self, key: &str) -> OutcomeResult {
        if self.gates.get(key).is_some_and(|l| l.is_held()) {
            return succeeded(format!("{key} already held"));
        }
        let client = match self.consul.as_ref() {
            Ok(c) => c,
            Err(e) => {
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoClient { detail: e.clone() },
                };
            }
        };
        let host = key.rsplit('/').next().unwrap_or(key);
        let holder = gate::Holder::this_process("promotion");
        let ttl = self
            .cfg
            .carbonio
            .promote_timeout
            .max(Duration::from_secs(60));
        let mut res = gate::acquire(client, host, &holder, ttl).await;
        if let Err(gate::Refusal::HeldByAnother {
            holder: Some(held),
            session,
            ..
        }) = &res
            && stale_own_holder(held, &holder)
            && take_over(client, key, session.as_deref()).await
        {
            res = gate::acquire(client, host, &holder, ttl).await;
        }
        match res {
            Ok(lock) => {
                self.gates.insert(key.to_owned(), lock);
                succeeded(format!(
                    "acquired {key}: this side holds the Consul majority"
                ))
            }
            Err(refusal) => OutcomeResult::GateRefused {
                refusal: gate_refusal(refusal),
            },
        }
    }

    async fn raft_recovery(&mut self, servers: &[crate::model::RaftServer]) -> OutcomeResult {
        let recovery = RaftRecovery::new(&self.cfg.consul);
        let peers = match self.raft_peers(&recovery, servers).await {
            Ok(p) => p,
            Err(reason) => return failed(reason),
        };
        let client = match self.consul.as_ref() {
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
}

impl Executor {
    /// The servers `peers.json` names: those recorded while this side had
    /// a leader, or else this server alone, at its own address (not merely
    /// the first one this DC lists) with its `node-id`, and only if it is
    /// the DC's only server. The dry run asks the same.
    pub(super) async fn raft_peers(
        &self,
        recovery: &RaftRecovery,
        servers: &[crate::model::RaftServer],
    ) -> Result<Vec<PeerEntry>, String> {
        if servers.is_empty() {
            let ip = self.own_consul_address().await?;
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
    async fn own_consul_address(&self) -> Result<IpAddr, String> {
        let dc = &self.cfg.local.whoami;
        let listed = self
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
}

/// True when the gate's holder (the JSON it wrote into the key) is a habeat
/// of this very node whose process is gone: a habeat killed during a
/// promotion. Its Consul session lives on until its TTL
/// (`max(promote_timeout, 60s)`, an hour by default, up to twice that in
/// Consul), and would lock the restarted habeat out of resuming its own
/// failover for that long. We hold the state lock, so no other habeat of
/// this node is acting; a dead holder on this node proves nothing about the
/// peer, and taking its place still needs a Consul write (the majority).
/// A live pid (even a reused one) is left alone: its session expires.
fn stale_own_holder(held: &str, me: &gate::Holder) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(held) else {
        return false;
    };
    let node = v.get("node").and_then(|n| n.as_str());
    let pid = v.get("pid").and_then(serde_json::Value::as_u64);
    match (node, pid) {
        (Some(n), Some(pid)) if n == me.node && pid != u64::from(me.pid) => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

/// The gate's refusal in the engine's words (the engine knows no Consul).
fn gate_refusal(r: gate::Refusal) -> GateRefusal {
    match r {
        gate::Refusal::NoQuorum { cause } => GateRefusal::NoQuorum {
            detail: cause.to_string(),
        },
        gate::Refusal::Consul { cause } => GateRefusal::Consul {
            detail: cause.to_string(),
        },
        gate::Refusal::HeldByAnother { host, holder, .. } => {
            GateRefusal::HeldByAnother { host, holder }
        }
    }
}

/// An outcome for the log line: a listing by its size (its names, up to
/// 100k of them, are in the journal's promotion record, not in one log
/// line of megabytes), everything else as it is.
fn brief(result: &OutcomeResult) -> String {
    match result {
        OutcomeResult::Listed { accounts, .. } => {
            format!("Listed {{ {} account(s) }}", accounts.len())
        }
        other => format!("{other:?}"),
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

fn succeeded(detail: String) -> OutcomeResult {
    OutcomeResult::Succeeded { detail }
}

fn failed(reason: String) -> OutcomeResult {
    OutcomeResult::Failed { reason }
}

fn accounts(names: &[String]) -> Result<Vec<AccountName>, OutcomeResult> {
    names
        .iter()
        .map(|n| AccountName::parse(n).map_err(|e| failed(format!("account {n:?}: {e}"))))
        .collect()
}

fn cli_error(e: CarbonioError) -> OutcomeResult {
    if matches!(e, CarbonioError::TimedOut { .. }) {
        OutcomeResult::TimedOut {
            reason: e.to_string(),
        }
    } else {
        failed(e.to_string())
    }
}

fn report(r: Result<crate::act::carbonio::CommandReport, CarbonioError>) -> OutcomeResult {
    match r {
        Ok(rep) => succeeded(format!(
            "{} ({})",
            rep.command,
            humantime::format_duration(round_ms(rep.duration))
        )),
        Err(e) => cli_error(e),
    }
}

/// The running operations that are promotions, in words. The fields of
/// `core getAllOperations` vary between releases, so the whole entry is
/// searched: any mention of a promotion counts (waiting for a promotion
/// that is not one costs a little time; promoting beside one does not
/// bear thinking about).
fn promotions_running(ops: &[crate::act::carbonio::Operation]) -> Vec<String> {
    ops.iter()
        .filter(|o| o.raw.to_string().to_ascii_lowercase().contains("promot"))
        .map(|o| match (&o.id, &o.name) {
            (Some(id), Some(name)) => format!("{name} ({id})"),
            (None, Some(name)) => name.clone(),
            (Some(id), None) => format!("operation {id}"),
            (None, None) => o.raw.to_string(),
        })
        .collect()
}
