//! An action's outcome fed back: the step it ran marked done, failed,
//! given up or interrupted, and what follows from it (a listing kept, a
//! gate held, a fence confirmed). Part of [`super::machine::Cx`].

use super::action::{Action, ActionKind, ActionOutcome, OutcomeResult, StepRef};
use super::event::{EventKind, Severity};
use super::machine::Cx;
use super::reason::{GateRefusal, Waiting};
use super::record::StepStatus;
use super::time::human;
use crate::model::{Component, Role};

impl Cx<'_> {
    /// Returns false when the outcome was ignored (nothing else to do).
    pub(super) fn on_outcome(&mut self, o: &ActionOutcome) -> bool {
        let Some(a) = self.s.in_flight.clone().filter(|a| a.id == o.id) else {
            self.event(
                Severity::Warning,
                EventKind::OutcomeIgnored { action_id: o.id },
                None,
                format!(
                    "ignored an outcome for action {} which is not the one in progress",
                    o.id
                ),
            );
            return false;
        };
        self.s.in_flight = None;
        self.live.running_here = None;
        let role = a.role;
        let err = match (&a.kind, &o.result) {
            (ActionKind::ListAccounts { .. }, OutcomeResult::Succeeded { .. }) => {
                Some("the account listing returned no account list".to_string())
            }
            (ActionKind::ListOperations { .. }, OutcomeResult::Succeeded { .. }) => {
                Some("core getAllOperations returned no operation list".to_string())
            }
            (_, r) => r.error_text(),
        };

        // Non-step actions first.
        match &a.kind {
            ActionKind::AcquireQuorumGate { key } => {
                match err {
                    None => {
                        self.live.gate_held = Some((role, key.clone()));
                        self.success_event(&a, o);
                    }
                    Some(reason) => {
                        let refusal = match &o.result {
                            OutcomeResult::GateRefused { refusal } => refusal.clone(),
                            _ => GateRefusal::Consul { detail: reason },
                        };
                        let why = Waiting::GateRefused {
                            refusal: refusal.clone(),
                        };
                        self.gate_refused(role, key.clone(), &refusal, why, "no automatic action")
                    }
                }
                return true;
            }
            ActionKind::ReleaseQuorumGate { .. } => {
                self.live.gate_held = None;
                match err {
                    None => self.success_event(&a, o),
                    Some(reason) => self.event(
                        Severity::Warning,
                        EventKind::ActionFailed {
                            action_id: a.id,
                            reason: reason.clone(),
                            will_retry: false,
                        },
                        Some(role),
                        format!(
                            "could not release the quorum gate ({reason}); Consul frees it \
                             when the session expires"
                        ),
                    ),
                }
                return true;
            }
            ActionKind::ListOperations { source_mail_host } => {
                let host = source_mail_host.clone();
                match (&o.result, err) {
                    (OutcomeResult::Operations { promotions }, None) if !promotions.is_empty() => {
                        let why = Waiting::PromotionRunning {
                            host,
                            operations: promotions.clone(),
                        };
                        let rs = self.s.role_mut(role);
                        rs.wait(self.clock, self.cfg.operation_poll);
                        rs.retry_reason = Some(why.clone());
                        self.event(
                            Severity::Warning,
                            EventKind::Decision { reason: None },
                            Some(role),
                            why.to_string(),
                        );
                    }
                    (_, None) => {
                        self.success_event(&a, o);
                        self.live.no_promotion_running = true;
                    }
                    (_, Some(reason)) => {
                        // Not knowing must not strand a failover half-done:
                        // the fresh listing still limits the promotion to
                        // the accounts that are left on the source.
                        self.event(
                            Severity::Warning,
                            EventKind::ActionFailed {
                                action_id: a.id,
                                reason: reason.clone(),
                                will_retry: false,
                            },
                            Some(role),
                            format!(
                                "could not ask the mailbox server which operations run \
                                 ({reason}); promoting what the account listing still shows \
                                 on {host}"
                            ),
                        );
                        self.live.no_promotion_running = true;
                    }
                }
                return true;
            }
            ActionKind::ListAccounts { source_mail_host } => {
                let host = source_mail_host.clone();
                match (&o.result, err) {
                    (OutcomeResult::Listed { accounts, at_risk }, None) => {
                        self.success_event(&a, o);
                        self.on_listed(role, &host, accounts, at_risk);
                    }
                    (_, reason) => {
                        let reason = reason.unwrap_or_default();
                        self.s.role_mut(role).wait(self.clock, self.cfg.retry_delay);
                        self.event(
                            Severity::Error,
                            EventKind::ActionFailed {
                                action_id: a.id,
                                reason: reason.clone(),
                                will_retry: true,
                            },
                            Some(role),
                            format!(
                                "could not list the accounts of {host}: {reason}; nothing \
                                 promoted, retrying after {}",
                                human(self.cfg.retry_delay)
                            ),
                        );
                    }
                }
                return true;
            }
            _ => {}
        }

        let Some(sr) = a.step else {
            return true;
        };
        if let OutcomeResult::PeerLeaseWait { wait } = &o.result {
            // `lease-before-takeover`: the primary's serving lease is not
            // ours yet, so promoteAccounts did not run. Like a lost gate,
            // the step neither failed nor counts as tried; the gate stays.
            if let Some((p, _)) = self.pipeline_mut(role, sr.pipeline)
                && let Some(st) = p.steps.get_mut(sr.index)
            {
                st.attempts = st.attempts.saturating_sub(1);
                st.status = if st.attempts == 0 {
                    StepStatus::Pending
                } else {
                    StepStatus::Failed
                };
            }
            let rs = self.s.role_mut(role);
            rs.wait(self.clock, self.cfg.retry_delay);
            let why = Waiting::PeerLease { wait: wait.clone() };
            rs.retry_reason = Some(why.clone());
            self.event(
                Severity::Warning,
                EventKind::Decision { reason: None },
                Some(role),
                format!(
                    "{why}; retrying after {}",
                    super::time::human(self.cfg.retry_delay)
                ),
            );
            return true;
        }
        if let OutcomeResult::GateRefused { refusal } = &o.result {
            // The executor found the gate lost before a gated step: the
            // step did not run, so it neither failed nor counts as tried.
            let key = self
                .live
                .gate_held
                .take()
                .map(|(_, k)| k)
                .unwrap_or_default();
            if let Some((p, _)) = self.pipeline_mut(role, sr.pipeline)
                && let Some(st) = p.steps.get_mut(sr.index)
            {
                st.attempts = st.attempts.saturating_sub(1);
                st.status = if st.attempts == 0 {
                    StepStatus::Pending
                } else {
                    StepStatus::Failed
                };
            }
            let why = Waiting::GateLost {
                step: a.kind.describe(),
                refusal: refusal.clone(),
            };
            self.gate_refused(role, key, refusal, why, "not run");
            return true;
        }
        if let ActionKind::Fence { component, .. } = &a.kind {
            self.on_fenced(role, sr, *component, &o.result);
            return true;
        }
        match err {
            None => {
                if matches!(a.kind, ActionKind::ConfirmLeader) {
                    // The executor saw the leader raft recovery brought
                    // back: a wait for one is over now, not a round later.
                    self.watch_leader(true);
                }
                self.success_event(&a, o);
                self.step_done(role, sr);
            }
            Some(reason) => self.step_failed(role, sr, &a, reason),
        }
        true
    }

    /// A fence step's outcome: confirmed OFF is the step done; anything
    /// else is no action, retried like a refused gate (never given up,
    /// never counted as an attempt: it changed nothing of the mail
    /// system) with the reason in `status`.
    fn on_fenced(&mut self, role: Role, sr: StepRef, component: Component, result: &OutcomeResult) {
        let (failure, calls) = match result {
            OutcomeResult::Fenced { calls } => {
                self.event(
                    Severity::Info,
                    EventKind::Fence {
                        component,
                        confirmed: true,
                        calls: calls.clone(),
                    },
                    Some(role),
                    format!(
                        "fencing.{component}: the peer {component} is confirmed powered off \
                         ({} agent call(s))",
                        calls.len()
                    ),
                );
                self.step_done(role, sr);
                return;
            }
            OutcomeResult::FenceUnconfirmed { failure, calls } => (failure.clone(), calls.clone()),
            other => (
                crate::model::FenceFailure::NotRun {
                    reason: other
                        .error_text()
                        .unwrap_or_else(|| "no fence report".into()),
                },
                Vec::new(),
            ),
        };
        let now = self.now;
        if let Some((p, _)) = self.pipeline_mut(role, sr.pipeline)
            && let Some(st) = p.steps.get_mut(sr.index)
        {
            st.attempts = st.attempts.saturating_sub(1);
            st.status = StepStatus::Failed;
            st.last_error = Some(failure.to_string());
            st.updated_at = now;
        }
        let why = Waiting::FenceUnconfirmed {
            component,
            failure: failure.clone(),
        };
        let rs = self.s.role_mut(role);
        rs.wait(self.clock, self.cfg.retry_delay);
        rs.retry_reason = Some(why.clone());
        self.event(
            Severity::Error,
            EventKind::Fence {
                component,
                confirmed: false,
                calls,
            },
            Some(role),
            format!(
                "{why}; nothing done, retrying after {}",
                human(self.cfg.retry_delay)
            ),
        );
    }

    pub(super) fn success_event(&mut self, a: &Action, o: &ActionOutcome) {
        let detail = match &o.result {
            OutcomeResult::Succeeded { detail } => detail.clone(),
            OutcomeResult::Listed { accounts, .. } => format!("{} account(s)", accounts.len()),
            OutcomeResult::Operations { .. } => "no promotion running".into(),
            _ => String::new(),
        };
        self.event(
            Severity::Info,
            EventKind::ActionSucceeded {
                action_id: a.id,
                detail: detail.clone(),
            },
            Some(a.role),
            format!("done: {}", a.kind.describe()),
        );
    }
}
