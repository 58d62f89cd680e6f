//! The head of `habeat status` (and its `--json` keys): whether a daemon
//! watches at all, how old the evidence is, what the local Consul said and
//! whether the quorum gate could be taken, and, when this side has lost
//! the Consul majority, what to do and on which host.
//!
//! `status` reads saved state: without a running daemon, "appserver Up"
//! may be hours old. So every figure here carries its age, and evidence
//! older than the engine's `stale_after` (or left by a daemon that no
//! longer runs) says it is stale.

use crate::config::Config;
use crate::engine::{self, GateRefusal, State, UnixMillis, Waiting};
use crate::model::{Role, Verdict};
use crate::state::Daemon;
use crate::survey::age_seconds;
use crate::survey::show::ago;
use serde::{Serialize, Serializer};
use std::path::Path;

/// What the head of `status` is made of, read once.
#[derive(Debug, Clone)]
pub struct Head {
    daemon: Daemon,
    lock: std::path::PathBuf,
    /// Seconds since the last round fed to the engine, if any.
    round_age: Option<u64>,
    /// Why the saved evidence is not current, if it is not.
    stale: Option<String>,
    leader: Option<bool>,
    refusal: Option<GateRefusal>,
    gate_on: bool,
    next_step: Option<String>,
}

impl Head {
    pub fn read(state: &State, cfg: &Config, ecfg: &engine::EngineConfig, now: UnixMillis) -> Head {
        let daemon = crate::state::daemon(&cfg.local.state_dir);
        let round_age = state.last_round_at.map(|t| age_seconds(t, now));
        let too_old = state
            .last_round_at
            .is_some_and(|t| now.since(t) > ecfg.stale_after);
        let running = matches!(daemon, Daemon::Running { .. });
        let stale = match round_age {
            None => Some("no round yet".to_owned()),
            Some(a) if too_old && running => Some(format!(
                "as of {}, the daemon runs but its rounds stopped",
                ago(a)
            )),
            Some(a) if too_old => Some(format!("as of {}, daemon not running", ago(a))),
            Some(_) => None,
        };
        let refusal = gate_refusal(state);
        Head {
            lock: cfg.local.state_dir.join(crate::state::DAEMON_LOCK),
            daemon,
            round_age,
            stale,
            leader: state.raft.local_leader,
            next_step: next_step(state, cfg, refusal.as_ref()),
            refusal,
            gate_on: cfg.safety.quorum_gate,
        }
    }

    /// The evidence's age for a figure: `as of 3 s ago`, with `daemon not
    /// running` when nothing keeps it current, or the stale note.
    pub fn as_of(&self) -> String {
        match (&self.stale, self.round_age) {
            (Some(s), _) => format!("STALE: {s}"),
            (None, Some(a)) if !matches!(self.daemon, Daemon::Running { .. }) => {
                format!("as of {}, daemon not running", ago(a))
            }
            (None, Some(a)) => format!("as of {}", ago(a)),
            (None, None) => "no round yet".into(),
        }
    }

    /// The lines that open `status`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let round = match self.round_age {
            Some(a) => format!("last round {}", ago(a)),
            None => "no round yet".into(),
        };
        out.push(match &self.daemon {
            Daemon::Running { pid } => format!(
                "daemon:     running ({}); {round}{}",
                pid.map_or("pid unknown".into(), |p| format!("pid {p}")),
                match &self.stale {
                    Some(_) => " — rounds stopped: see `journalctl -u habeat`",
                    None => "",
                }
            ),
            Daemon::NotRunning => format!(
                "daemon:     NOT RUNNING (no `habeat run` holds {}): nothing watches the peer or \
                 acts; start it with `systemctl start habeat`; {round}",
                self.lock.display()
            ),
            Daemon::Unknown { why } => format!("daemon:     unknown ({why}); {round}"),
        });
        let consul = match (self.leader, self.round_age) {
            (_, None) => "not asked yet".to_owned(),
            (Some(true), _) => "the local agent has a raft leader".to_owned(),
            (Some(false), _) => "the local agent answers but has NO raft leader".to_owned(),
            (None, _) => "the local agent did NOT answer (consul.hostname/consul.port)".to_owned(),
        };
        out.push(format!("consul:     {consul} ({})", self.as_of()));
        out.push(format!("quorum gate: {}", self.gate_text()));
        if let Some(n) = &self.next_step {
            out.push(format!("WHAT TO DO: {n}"));
        }
        out
    }

    fn gate_text(&self) -> String {
        if !self.gate_on {
            return "off (safety.quorum_gate: false): nothing proves this side holds the Consul \
                    majority before failing over"
                .into();
        }
        match (&self.refusal, self.leader, self.round_age) {
            (Some(r), _, _) => format!("REFUSED the last time it was asked: {r}"),
            (None, _, None) => "not asked yet".into(),
            (None, Some(true), _) => {
                format!(
                    "could be taken (a Consul leader on this side, {})",
                    self.as_of()
                )
            }
            (None, Some(false), _) => format!(
                "could NOT be taken: no Consul leader on this side, so no failover ({})",
                self.as_of()
            ),
            (None, None, _) => format!(
                "could NOT be taken: the local Consul agent does not answer, so no failover ({})",
                self.as_of()
            ),
        }
    }

    /// Whether a daemon was found running.
    pub fn daemon_running(&self) -> bool {
        matches!(self.daemon, Daemon::Running { .. })
    }
}

/// The keys `status --json` has for the head, beside the others.
#[derive(Serialize)]
struct HeadKeys<'a> {
    daemon: DaemonKeys<'a>,
    evidence: EvidenceKeys<'a>,
    local_consul: LocalConsulKeys,
    quorum_gate: GateKeys<'a>,
    next_step: &'a Option<String>,
}

#[derive(Serialize)]
struct DaemonKeys<'a> {
    state: &'static str,
    running: bool,
    pid: Option<u32>,
    error: Option<&'a str>,
    lock: &'a Path,
    last_round_age_seconds: Option<u64>,
}

#[derive(Serialize)]
struct EvidenceKeys<'a> {
    age_seconds: Option<u64>,
    stale: bool,
    stale_reason: &'a Option<String>,
}

#[derive(Serialize)]
struct LocalConsulKeys {
    answered: Option<bool>,
    leader: Option<bool>,
    age_seconds: Option<u64>,
}

#[derive(Serialize)]
struct GateKeys<'a> {
    enabled: bool,
    can_be_taken: Option<bool>,
    refusal: &'a Option<GateRefusal>,
    text: String,
}

impl Serialize for Head {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (state, pid, why) = match &self.daemon {
            Daemon::Running { pid } => ("running", *pid, None),
            Daemon::NotRunning => ("not_running", None, None),
            Daemon::Unknown { why } => ("unknown", None, Some(why.as_str())),
        };
        HeadKeys {
            daemon: DaemonKeys {
                state,
                running: self.daemon_running(),
                pid,
                error: why,
                lock: &self.lock,
                last_round_age_seconds: self.round_age,
            },
            evidence: EvidenceKeys {
                age_seconds: self.round_age,
                stale: self.stale.is_some(),
                stale_reason: &self.stale,
            },
            local_consul: LocalConsulKeys {
                answered: self.round_age.map(|_| self.leader.is_some()),
                leader: self.leader,
                age_seconds: self.round_age,
            },
            quorum_gate: GateKeys {
                enabled: self.gate_on,
                can_be_taken: match (&self.refusal, self.round_age) {
                    _ if !self.gate_on => None,
                    (Some(_), _) => Some(false),
                    (None, None) => None,
                    (None, Some(_)) => Some(self.leader == Some(true)),
                },
                refusal: &self.refusal,
                text: self.gate_text(),
            },
            next_step: &self.next_step,
        }
        .serialize(s)
    }
}

/// The refusal of the quorum gate a role waits on, if any.
pub fn gate_refusal(state: &State) -> Option<GateRefusal> {
    state.roles.values().find_map(|r| match &r.retry_reason {
        Some(Waiting::GateRefused { refusal }) | Some(Waiting::GateLost { refusal, .. }) => {
            Some(refusal.clone())
        }
        _ => None,
    })
}

/// Whether a role waits on a refused gate while the peer component it
/// acts on is still Down: the refusal stands (`check` exits 4 for it,
/// real or dry, until the gate passes or the peer is back).
pub fn refused_while_down(state: &State) -> bool {
    state.roles.iter().any(|(role, r)| {
        matches!(
            r.retry_reason,
            Some(Waiting::GateRefused { .. }) | Some(Waiting::GateLost { .. })
        ) && state.verdict(role.watched_component()) == Verdict::Down
    })
}

/// Where `habeat recover --peer-dc-lost` runs for this datacenter: this
/// node when it has the consulserver role, else the first of this DC's
/// `consul_vmnames` (the Consul servers the configuration names), with the
/// key it comes from.
pub fn recover_host(cfg: &Config) -> String {
    let own = &cfg.local.whoami;
    if cfg.local.roles.contains(&Role::Consulserver) {
        return "this node (it has the consulserver role)".into();
    }
    match cfg.dcs.get(own).map(|d| d.consul_vmnames.as_slice()) {
        Some([one]) => format!("{one} ({own}.consul_vmnames, the consulserver role there)"),
        Some(all) if !all.is_empty() => format!(
            "one of {} ({own}.consul_vmnames, the consulserver role there)",
            all.join(", ")
        ),
        _ => format!(
            "this datacenter's Consul server (the node with the consulserver role; \
             {own}.consul_vmnames names none)"
        ),
    }
}

/// What to do when this side cannot take the gate for want of a Consul
/// leader while the peer looks gone: the only way out is the operator's
/// raft recovery on this datacenter's Consul server, and only if the peer
/// datacenter is really lost.
fn next_step(state: &State, cfg: &Config, refusal: Option<&GateRefusal>) -> Option<String> {
    let no_quorum = matches!(refusal, Some(GateRefusal::NoQuorum { .. }));
    let peer_down = crate::probe::watched_components(cfg)
        .into_iter()
        .any(|c| state.verdict(c) == Verdict::Down);
    let leaderless = state.raft.local_leader == Some(false) && peer_down;
    if !(no_quorum || leaderless) || !cfg.safety.quorum_gate {
        return None;
    }
    let (own, peer) = (&cfg.local.whoami, &cfg.local.dc_check);
    let count = |dc: &str| cfg.dcs.get(dc).map_or(0, |d| d.consul_vmnames.len());
    let layout = match (count(peer), count(own)) {
        (p, o) if p > o => {
            format!(" ({p} Consul server(s) in {peer}, {o} in {own}: the majority was in {peer})")
        }
        _ => String::new(),
    };
    Some(format!(
        "this side has no Consul leader{layout}, so habeat cannot prove the peer is gone and \
         will not fail over by itself. If datacenter {peer} is lost, run `habeat recover \
         --peer-dc-lost` on {}: once Consul has a leader again, habeat fails over here at its \
         next round. If {peer} is only cut off from here, wait: failing over would leave two \
         sides serving the same mail.",
        recover_host(cfg)
    ))
}
