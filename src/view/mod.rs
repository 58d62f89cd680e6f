//! What habeat knows now, as one typed value: [`StatusView`]. `habeat
//! status` (text and `--json`), the daemon's `/status` and its metrics are
//! all read from it, so none of them is built from another's JSON and
//! they cannot drift apart.
//!
//! It sits below both the commands and the daemon: it reads the saved
//! state, the configuration, the engine's plan and the files beside the
//! state (the lock files, the replica survey, `lease.json`,
//! `daemon.lock`), and takes what only a running daemon knows
//! ([`DaemonFacts`]) as an argument.

pub mod all;
pub mod head;
pub mod protection;
pub mod votes;

pub use head::Head;

use crate::config::Config;
use crate::engine::{
    self, ComponentState, Explanation, LastPromotion, LockKind, OperatorRefusal, Pause, Plan,
    SafeHold, State, UnixMillis, WitnessState,
};
use crate::lease::status::{FileStatus, LeaseStatus};
use crate::model::{Component, Role};
use crate::survey::show::Replicas;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The JSON of `habeat status --json` and `/status`, typed. Serialized
/// through [`StatusView::to_json`], its keys come out sorted, as scripts
/// and tests have always read them.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub whoami: String,
    pub dc_check: String,
    pub roles: Vec<Role>,
    pub components: BTreeMap<Component, ComponentState>,
    pub witnesses: Vec<WitnessState>,
    pub votes: votes::Votes,
    /// Every lock file this node's roles may have, present or not.
    pub locks: Vec<LockShown>,
    /// The pause, while it lasts.
    pub pause: Option<Pause>,
    pub safe_hold: Option<SafeHold>,
    pub last_promotion: Option<LastPromotion>,
    pub last_round_at: Option<UnixMillis>,
    /// The engine's plan of each role, explained: `kind` names the
    /// situation and `reason` carries its data, beside the sentence.
    pub why: Vec<Explanation>,
    pub replicas: Replicas,
    /// This DC's own mailstore: its unprotected accounts, since when, and
    /// the progress of re-protection.
    pub protection: protection::ProtectionShown,
    /// Accounts at risk at their promotion, with their gap, until the
    /// operator names them in `reprotect --discard-diverged`.
    pub diverged: Vec<engine::Diverged>,
    /// The serving lease (`null` without one).
    pub lease: Option<LeaseShown>,
    pub raft: RaftShown,
    /// The recorded `habeat switchover` (`null` without one): its
    /// progress while it runs, how it ended after.
    pub switchover: Option<crate::switchover::Shown>,
    /// Whether a daemon watches, how old the evidence is, the local
    /// Consul, the quorum gate and what to do: keys of their own.
    #[serde(flatten)]
    pub head: Head,
    /// What only a running daemon knows (absent from `status --json`).
    #[serde(flatten)]
    pub daemon: Option<DaemonFacts>,
    /// An operator command the engine refused (only in that command's
    /// output).
    #[serde(flatten)]
    pub refused: Option<Refused>,
    /// The plan [`Self::why`] explains, for the metrics.
    #[serde(skip)]
    pub plan: Plan,
    /// Each configured role and whether it has failed over and waits for
    /// `habeat rearm`.
    #[serde(skip)]
    pub failover_locked: Vec<(Role, bool)>,
    /// Why the lock files could not be read, when they could not (they
    /// show as none then).
    #[serde(skip)]
    pub locks_error: Option<String>,
}

/// One lock file and whether it is there.
#[derive(Debug, Clone, Serialize)]
pub struct LockShown {
    pub role: Role,
    pub lock: LockKind,
    pub present: bool,
    pub path: PathBuf,
}

/// The serving lease: as the daemon's keeper holds it, or as
/// `state_dir/lease.json` last recorded it (another process, or a daemon
/// without a keeper that was fenced under one).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum LeaseShown {
    Keeper(LeaseStatus),
    File(FileStatus),
}

impl LeaseShown {
    /// What the operator should know (and do), in words.
    pub fn message(&self) -> &str {
        match self {
            LeaseShown::Keeper(s) => &s.message,
            LeaseShown::File(s) => &s.message,
        }
    }
}

/// What this side remembers of raft: when it lost its leader, when the
/// operator recovered it, and when a peer Consul server came back after.
#[derive(Debug, Clone, Serialize)]
pub struct RaftShown {
    pub leaderless_since: Option<UnixMillis>,
    pub recovered_at: Option<UnixMillis>,
    pub peer_returned_at: Option<UnixMillis>,
    /// The warning once a peer server answers after a recovery without it.
    pub warning: Option<String>,
}

/// What the daemon alone knows.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonFacts {
    /// Why its rounds cannot decide (`state_dir` unusable), while so.
    pub cannot_decide: Option<String>,
}

/// An operator command refused for safety: the sentence and its data
/// (exit 4 alone does not tell a script what to fix).
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub refused: String,
    pub refusal: OperatorRefusal,
}

impl StatusView {
    /// The view of `state` under `cfg` at `now`, with the engine's `plan`
    /// of it; the files beside the state are read now.
    pub fn read(state: &State, cfg: &Config, plan: Plan, now: UnixMillis) -> StatusView {
        let (locks, locks_error) = match crate::state::scan_locks(&cfg.local, &cfg.local.roles) {
            Ok(l) => (l, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let locks = locks
            .into_iter()
            .map(|l| LockShown {
                role: l.role,
                lock: l.lock,
                present: l.present,
                path: crate::state::lock_path(&cfg.local, l.role, l.lock),
            })
            .collect();
        let ecfg = engine::EngineConfig::from(cfg);
        StatusView {
            whoami: cfg.local.whoami.clone(),
            dc_check: cfg.local.dc_check.clone(),
            roles: cfg.local.roles.clone(),
            components: state.components.clone(),
            witnesses: state.witnesses.clone(),
            votes: votes::shown(votes::component_votes(state, cfg)),
            locks,
            locks_error,
            pause: state.pause.clone().filter(|_| state.paused_at(now)),
            safe_hold: state.safe_hold.clone(),
            last_promotion: state.last_promotion.clone(),
            last_round_at: state.last_round_at,
            why: plan.explain(),
            plan,
            replicas: {
                let mut r = crate::survey::show::replicas(cfg, now);
                if let Some(s) = r.survey.as_mut()
                    && s.nothing_to_fail_over
                    && crate::survey::show::last_promoted_from(state, &s.host)
                {
                    s.warning = Some(crate::survey::show::promoted_away(&s.host));
                }
                r
            },
            protection: protection::ProtectionShown::read(cfg, now),
            diverged: state.protection.diverged.clone(),
            lease: crate::lease::status::file_status(cfg).map(LeaseShown::File),
            raft: RaftShown {
                leaderless_since: state.raft.leaderless_since,
                recovered_at: state.raft.recovered_at,
                peer_returned_at: state.raft.peer_returned_at,
                warning: returned_warning(state),
            },
            switchover: crate::switchover::shown(&cfg.local.state_dir),
            head: Head::read(state, cfg, &ecfg, now),
            daemon: None,
            refused: None,
            failover_locked: cfg
                .local
                .roles
                .iter()
                .map(|r| {
                    let locked = state.roles.get(r).is_some_and(|rs| rs.failover.is_some());
                    (*r, locked)
                })
                .collect(),
        }
    }

    /// [`Self::read`] with the plan a fresh process (no gate held, no
    /// listing) would make of `state` at `clock`.
    pub fn planned(state: &State, cfg: &Config, clock: engine::Now) -> StatusView {
        let plan = engine::plan(state, &engine::EngineConfig::from(cfg), clock);
        StatusView::read(state, cfg, plan, clock.wall)
    }

    /// The view as a running daemon serves it: what it alone knows, and
    /// the lease as its keeper holds it (when it has one).
    pub fn with_daemon(mut self, facts: DaemonFacts, keeper: Option<LeaseStatus>) -> StatusView {
        self.daemon = Some(facts);
        if let Some(k) = keeper {
            self.lease = Some(LeaseShown::Keeper(k));
        }
        self
    }

    /// The view with an operator command's refusal.
    pub fn with_refusal(mut self, refusal: Option<&OperatorRefusal>) -> StatusView {
        self.refused = refusal.map(|r| Refused {
            refused: r.to_string(),
            refusal: r.clone(),
        });
        self
    }

    /// The JSON, its keys sorted.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(
            |e| serde_json::json!({ "error": format!("cannot serialize the status: {e}") }),
        )
    }
}

/// The warning `status` gives once a peer Consul server answers again
/// after this side recovered raft without it.
pub fn returned_warning(state: &State) -> Option<String> {
    let at = state.raft.peer_returned_at?;
    state.raft.recovered_at?;
    Some(format!(
        "since {}: {}",
        human_time(at),
        engine::PeerReturnedWarning
    ))
}

/// A timestamp for people: RFC 3339 in UTC, to the second.
pub fn human_time(t: UnixMillis) -> String {
    humantime::format_rfc3339_seconds(t.to_system_time()).to_string()
}

#[cfg(test)]
mod tests;
