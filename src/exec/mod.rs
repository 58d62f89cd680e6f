//! The executor: carries out one engine [`Action`] against the outside
//! world and reports its [`ActionOutcome`]. It decides nothing: every "if"
//! about *whether* to act lives in the engine, down to the checks made
//! right before an action runs ([`Action::checks`]). What each kind of
//! action is to the executor lives in [`kinds`], one file per kind.

use crate::act::AccountName;
use crate::act::carbonio::{Carbonio, CarbonioError};
use crate::act::hooks::HookRunner;
use crate::config::Config;
use crate::consul::{self, gate};
use crate::engine::{Action, ActionOutcome, OutcomeResult, PreStepCheck, UnixMillis};
use crate::engine::{GateRefusal, PeerLeaseWait};
use crate::model::PeerLease;

mod dry;
mod kinds;
mod lease;
pub use dry::{PREVIEW, report_on_stderr};
pub use kinds::{ACTION_KINDS, acquire_gate, label};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the caller hands the executor with an action besides the action:
/// data read from disk, which the executor does not read itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given<'a> {
    /// The last replica survey (`survey.json`), against which an account
    /// listing names the accounts at risk; `None`: none, or unreadable
    /// ([`crate::survey::store::load_for_listing`]).
    pub last_survey: Option<&'a crate::survey::Survey>,
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
    pub async fn execute(&mut self, action: &Action, given: &Given<'_>) -> ActionOutcome {
        let started = Instant::now();
        let limit = self.time_limit(&action.kind);
        let result = match tokio::time::timeout(limit, self.run(action, given)).await {
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

    /// The most `kind` may take: the timeouts of what it runs, added up
    /// ([`kinds`]), plus a margin. Each command already has its own
    /// timeout; this is the backstop for what has none (a bug, a stuck
    /// system call).
    pub fn time_limit(&self, kind: &crate::engine::ActionKind) -> Duration {
        const MARGIN: Duration = Duration::from_secs(30);
        kinds::time_limit(kind, self).saturating_add(MARGIN)
    }

    /// Listings, the HA module, Consul calls (a few requests each), lock
    /// files.
    pub(crate) fn few_calls(&self) -> Duration {
        self.cfg.carbonio.command_timeout * 4
    }

    /// `n` CLI calls in a row.
    pub(crate) fn per_call(&self, n: usize) -> Duration {
        self.cfg.carbonio.command_timeout * u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Give the quorum gates held (and the peer lease sessions kept) to
    /// `to`, the executor of a reloaded configuration that carries on this
    /// one's chain: the engine still counts on them. A gate whose session
    /// the new configuration cannot renew is found lost before the next
    /// gated step ([`PreStepCheck::GateStillHeld`]) and taken again.
    pub fn hand_over_gates(&mut self, to: &mut Executor) {
        to.gates.extend(self.gates.drain());
        to.lease_sessions.extend(self.lease_sessions.drain());
    }

    /// Release every quorum-gate lock still held (on exit).
    pub async fn release_all(&mut self) {
        for (_, lock) in self.gates.drain() {
            let _ = lock.release().await;
        }
    }

    /// [`PreStepCheck::GateStillHeld`]: an action that carries it runs
    /// only while the quorum gate is really held: its Consul session may have
    /// been lost (invalidated, not renewed for a TTL) while an earlier step
    /// ran, and the lock may now be someone else's. The engine then takes
    /// the gate again.
    fn gate_lost(&mut self) -> Option<OutcomeResult> {
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

    /// The action's [`PreStepCheck`]s, in their order: the first that
    /// fails is the outcome, and the action does not run.
    async fn pre_step_checks(&mut self, action: &Action) -> Option<OutcomeResult> {
        for check in &action.checks {
            let stop = match check {
                PreStepCheck::GateStillHeld => self.gate_lost(),
                PreStepCheck::PeerLeaseTakenOver { host } => self
                    .take_over_peer_lease(host)
                    .await
                    .map(|wait| OutcomeResult::PeerLeaseWait { wait }),
            };
            if stop.is_some() {
                return stop;
            }
        }
        None
    }

    async fn run(&mut self, action: &Action, given: &Given<'_>) -> OutcomeResult {
        if let Some(refused) = self.pre_step_checks(action).await {
            return refused;
        }
        kinds::run(self, action, given).await
    }

    /// Simulate `action` (`--dry-run`): see [`dry`].
    pub async fn simulate(
        &mut self,
        action: &Action,
        given: &Given<'_>,
        verbose: bool,
    ) -> OutcomeResult {
        kinds::simulate(self, action, given, verbose).await
    }

    fn cli(&self) -> Result<&Carbonio, OutcomeResult> {
        self.carbonio.as_ref().map_err(|e| failed(e.clone()))
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
