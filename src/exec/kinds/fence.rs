//! The fence step (`fence-before-promotion`): the fence agent of
//! `fencing.<component>` confirms every plug OFF, powering it off first
//! where it may.

use super::{Effect, Given};
use crate::act::fence::{self, Power};
use crate::engine::{Action, OutcomeResult};
use crate::exec::Executor;
use crate::exec::dry::{P, say};
use crate::model::{Component, FenceAction, FenceFailure};
use std::time::Duration;

/// Run the agent's `status` for every plug, then (with `action: off` and
/// the node ON) `off` and `status` again.
pub(super) struct Fence<'a> {
    pub component: &'a Component,
    pub action: &'a FenceAction,
    pub plugs: &'a Vec<String>,
}

impl Effect for Fence<'_> {
    const LABEL: &'static str = "fence";

    /// At most status, off, status per plug.
    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.cfg.fencing.timeout * 3 * u32::try_from(self.plugs.len().max(1)).unwrap_or(u32::MAX)
    }

    /// The agent and its options from the config, what it may do and the
    /// plugs as the engine recorded them. Confirmed only when every plug
    /// is confirmed OFF.
    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let (component, plugs) = (*self.component, self.plugs);
        let Some(t) = ex.cfg.fencing.target(component) else {
            return not_configured(component);
        };
        let target = crate::config::FenceTarget {
            action: *self.action,
            ..t.clone()
        };
        let reports = fence::confirm_all_off(&target, plugs, ex.cfg.fencing.timeout).await;
        let failure = reports.iter().find_map(|r| r.verdict.clone().err());
        let calls: Vec<_> = reports.into_iter().flat_map(|r| r.calls).collect();
        match failure {
            None if !plugs.is_empty() => OutcomeResult::Fenced { calls },
            None => OutcomeResult::FenceUnconfirmed {
                failure: FenceFailure::NotRun {
                    reason: format!("fencing.{component} names no plug"),
                },
                calls,
            },
            Some(failure) => OutcomeResult::FenceUnconfirmed { failure, calls },
        }
    }

    /// The agent's `status` only (it changes nothing), printed; a node ON
    /// with `action: off` is taken as powered off for the rest of the run
    /// (the real run would do it), one ON with `action: status`, or an
    /// agent failure, stops it there as the real run would stop.
    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        let component = *self.component;
        let Some(t) = ex.cfg.fencing.target(component) else {
            return not_configured(component);
        };
        let mut calls = Vec::new();
        for plug in self.plugs {
            say!("{P} asking the fence agent of fencing.{component} for the status of {plug}");
            let call = fence::status(t, plug, ex.cfg.fencing.timeout).await;
            let power = call.power();
            calls.push(call);
            let failure = match power {
                Ok(Power::Off) => {
                    say!("{P}   fencing.{component}: {plug} is OFF (status)");
                    continue;
                }
                Ok(Power::On) if *self.action == FenceAction::Off => {
                    say!(
                        "{P}   fencing.{component}: {plug} is ON; would power it off, then ask \
                         status again"
                    );
                    say!("{P}   its outcome cannot be known without running it; assumed: OFF");
                    continue;
                }
                Ok(Power::On) => FenceFailure::On { plug: plug.clone() },
                Err(f) => f,
            };
            say!("{P}   fencing.{component}: no confirmed OFF: {failure}");
            return OutcomeResult::FenceUnconfirmed { failure, calls };
        }
        OutcomeResult::Fenced { calls }
    }
}

fn not_configured(component: Component) -> OutcomeResult {
    OutcomeResult::FenceUnconfirmed {
        failure: FenceFailure::NotRun {
            reason: format!("fencing.{component} is not configured"),
        },
        calls: Vec::new(),
    }
}
