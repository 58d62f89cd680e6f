//! The mechanics every pipeline shares: take its next step (asking the
//! verdict again, waiting out a retry, putting the gate in front), start
//! the action, and record a step done, failed, given up or the pipeline
//! finished.

use super::action::{Action, ActionId, ActionKind, CommandPurpose, Origin, StepRef};
use super::check::PreStepCheck;
use super::event::{EventKind, Severity};
use super::machine::{Cx, Next, Planned, Scope, Slot};

use super::kind::PipelineKind;
use super::reason::{GiveUp, Idle, Stall, Waiting};
use super::record::{LastPromotion, Pipeline, Step, StepState, StepStatus};
use super::time::human;
use crate::model::{Component, Role, Verdict};

impl Cx<'_> {
    pub(super) fn continue_pipeline(
        &mut self,
        role: Role,
        slot: Slot,
        p: Pipeline,
        scope: Scope,
    ) -> Next {
        let automatic = p.origin != Origin::Operator;
        if automatic {
            if scope == Scope::Operator {
                return Next::Idle(Idle::OperatorScope);
            }
            if let Some(blocked) = self.automatic_blocked() {
                return Next::Idle(Idle::PipelineBlocked {
                    pipeline: p.kind,
                    id: p.id,
                    blocked,
                });
            }
        }
        if automatic && let Some(why) = self.verdict_forbids(role, slot, &p) {
            return Next::Idle(why);
        }
        let Some(idx) = p.next_index() else {
            // Finished: a re-arm ends the role's record.
            if slot == Slot::Rearm {
                self.s.role_mut(role).rearm = None;
                return Next::Again;
            }
            return Next::Idle(Idle::PipelineFinished { id: p.id });
        };
        let st = &p.steps[idx];
        if let Some(t) = self.waiting_until(role) {
            // A reason given with the wait is newer than the step's error.
            if let Some(why) = &self.s.role(role).retry_reason {
                return Next::Idle(Idle::StepWaiting {
                    pipeline: p.kind,
                    step: st.step.name(),
                    waiting: why.clone(),
                    until: t,
                });
            }
            return Next::Idle(Idle::StepFailed {
                pipeline: p.kind,
                step: st.step.name(),
                error: st.last_error.clone().unwrap_or_default(),
                until: t,
            });
        }
        if automatic && let Some(component) = self.fence_now_required(&p, idx) {
            return self.insert_fence(role, p.id, idx, component);
        }
        let sr = Some(StepRef {
            pipeline: p.id,
            index: idx,
        });
        let plan = |kind: ActionKind| Next::Act(Planned::new(kind, p.origin, sr));
        let accounts = p
            .promotion
            .as_ref()
            .map(|d| d.accounts.clone())
            .unwrap_or_default();
        let next = match &st.step {
            Step::PromoteAccounts => return self.promote_step(role, p.clone(), idx),
            Step::WriteLocks { locks } => plan(ActionKind::WriteLocks {
                locks: locks.clone(),
                reason: p.reason.clone(),
            }),
            Step::RemoveLocks { locks } => plan(ActionKind::RemoveLocks {
                locks: locks.clone(),
            }),
            Step::FlushCache => plan(ActionKind::FlushCache {
                accounts,
                all_servers: self.cfg.flush_all_servers,
            }),
            Step::PauseReplicas => plan(ActionKind::PauseReplicas { accounts }),
            Step::RestartReplicas => plan(ActionKind::RestartReplicas { accounts }),
            Step::StopHaModule => plan(ActionKind::StopHaModule),
            Step::StartHaModule => plan(ActionKind::StartHaModule),
            Step::Command { action } => plan(action.clone()),
            Step::RaftRecovery { servers } => {
                if automatic && let Err(wait) = self.raft_ready() {
                    return Next::Idle(Idle::RaftUnfinished { wait });
                }
                plan(ActionKind::RaftRecovery {
                    servers: servers.clone(),
                })
            }
            Step::ConfirmLeader => plan(ActionKind::ConfirmLeader),
            Step::SetDestination {
                destination,
                priority,
                accounts,
            } => plan(ActionKind::SetAccountDestination {
                destination: destination.clone(),
                priority: *priority,
                accounts: accounts.clone(),
            }),
            Step::Fence { .. }
                if automatic
                    && p.kind == PipelineKind::RaftRecovery
                    && let Err(wait) = self.raft_ready() =>
            {
                // A raft recovery's fence (perhaps a power-off) only while
                // recovery is still wanted: the peer servers still Down.
                return Next::Idle(Idle::RaftUnfinished { wait });
            }
            Step::Fence { component } => match self.cfg.fencing.get(component) {
                Some(f) => plan(ActionKind::Fence {
                    component: *component,
                    action: f.action,
                    plugs: f.plugs.clone(),
                }),
                None => {
                    // fencing.<component> was removed from the config
                    // since the pipeline was recorded: the operator
                    // chose to act without it.
                    self.event(
                        Severity::Warning,
                        EventKind::Decision { reason: None },
                        Some(role),
                        format!(
                            "fencing.{component} is no longer configured: the fence step of \
                             pipeline {} is skipped",
                            p.id
                        ),
                    );
                    if let Some(sr) = sr {
                        self.step_done(role, sr);
                    }
                    return Next::Again;
                }
            },
        };
        self.gated(role, &p, next)
    }

    /// Why an automatic pipeline may not take its next step on the verdict
    /// of now, if so. A failover before its decisive step (the promotion,
    /// the HA module stop, the first proxy switch command) needs the peer
    /// Down right now, like the decision that started it: a retry after a
    /// refused gate or a failed command, or a replay after a crash, must
    /// not promote, switch proxy traffic or stop the HA module beside a
    /// peer that is coming back (Unknown) or back (Up). A re-arm needs the peer Up at
    /// every step: it must not switch traffic back to a peer that fell
    /// again; it waits, holding off any new failover, until the peer is Up
    /// or an operator runs `habeat rearm`.
    pub(super) fn verdict_forbids(&self, role: Role, slot: Slot, p: &Pipeline) -> Option<Idle> {
        let needed = match slot {
            Slot::Failover if !p.decisive_done() => Verdict::Down,
            Slot::Rearm if p.next_index().is_some() => Verdict::Up,
            _ => return None,
        };
        let component = role.watched_component();
        let v = self.s.verdict(component);
        let fresh = self.fresh();
        if v == needed && fresh {
            return None;
        }
        Some(Idle::VerdictForbids {
            pipeline: p.kind,
            id: p.id,
            source_mail_host: p.promotion.as_ref().map(|d| d.source_mail_host.clone()),
            component,
            needed,
            now: fresh.then_some(v),
            rearm: slot == Slot::Rearm,
        })
    }

    pub(super) fn start(&mut self, role: Role, planned: Planned) -> Action {
        let id = ActionId(self.s.next_action_id);
        self.s.next_action_id += 1;
        let role = planned.role_hint.unwrap_or(role);
        let now = self.now;
        if let Some(sr) = planned.step {
            let mut commit = None;
            let mut promoted = None;
            if let Some((p, _)) = self.pipeline_mut(role, sr.pipeline)
                && let Some(st) = p.steps.get_mut(sr.index)
            {
                st.status = StepStatus::Started;
                st.attempts += 1;
                st.updated_at = now;
                let promoting = st.step == Step::PromoteAccounts;
                if st.step == Step::PromoteAccounts && st.attempts == 1 {
                    commit = p
                        .promotion
                        .as_ref()
                        .map(|d| (d.source_mail_host.clone(), p.origin));
                }
                if promoting {
                    promoted = Some(p.clone());
                }
            }
            if let Some(p) = promoted {
                self.note_promoted(&p);
            }
            if let Some((host, origin)) = commit {
                self.s.last_promotion = Some(LastPromotion {
                    at: now,
                    at_boot: self.clock.boot,
                    source_mail_host: host,
                    origin,
                });
            }
        }
        if matches!(planned.kind, ActionKind::PromoteAccounts { .. }) {
            self.live.fresh_listing = None;
            self.live.no_promotion_running = false;
        }
        let mut checks = PreStepCheck::for_action(planned.origin, &planned.kind, self.cfg);
        checks.extend(self.operator_step_checks(role, &planned));
        let action = Action {
            id,
            role,
            origin: planned.origin,
            step: planned.step,
            kind: planned.kind,
            checks,
        };
        self.event(
            Severity::Info,
            EventKind::ActionStarted {
                action: action.clone(),
            },
            Some(role),
            format!("{}: {}", role, action.kind.describe()),
        );
        self.s.in_flight = Some(action.clone());
        action
    }

    pub(super) fn step_done(&mut self, role: Role, sr: StepRef) {
        let now = self.now;
        let mut finished = None;
        let (mut recovered, mut leader) = (false, false);
        let mut reprotect = false;
        if let Some((p, slot)) = self.pipeline_mut(role, sr.pipeline) {
            reprotect = slot == Slot::Reprotect;
            if let Some(st) = p.steps.get_mut(sr.index) {
                st.status = StepStatus::Done;
                st.updated_at = now;
                st.last_error = None;
                recovered = matches!(st.step, Step::RaftRecovery { .. });
                leader = matches!(st.step, Step::ConfirmLeader);
            }
            if p.is_finished() && p.finished_at.is_none() {
                p.finished_at = Some(now);
                finished = Some((p.id, p.kind, slot));
            }
        }
        if recovered {
            // From now on a peer Consul server seen again must be wiped.
            self.s.raft.recovered_at = Some(now);
            self.s.raft.peer_returned_at = None;
        }
        if leader {
            // This side has a raft leader again: a role that waits because
            // the quorum gate was refused (no leader) tries at once.
            for rs in self.s.roles.values_mut() {
                if matches!(
                    rs.retry_reason,
                    Some(Waiting::GateRefused { .. } | Waiting::GateLost { .. })
                ) {
                    rs.retry_at = None;
                    rs.retry_reason = None;
                }
            }
        }
        if !reprotect {
            // A batch of a re-protection says nothing about the role's own
            // failover: its waits stay.
            let rs = self.s.role_mut(role);
            rs.retry_at = None;
            rs.retry_reason = None;
            rs.retry_leader = None;
        }
        if let Some((id, kind, slot)) = finished {
            self.pipeline_finished(role, id, kind, slot);
        }
    }

    pub(super) fn pipeline_finished(
        &mut self,
        role: Role,
        id: u64,
        kind: PipelineKind,
        slot: Slot,
    ) {
        let any_gave_up = self
            .pipeline_mut(role, id)
            .map(|(p, _)| p.steps.iter().any(|s| s.status == StepStatus::GaveUp))
            .unwrap_or(false);
        let (sev, msg) = if any_gave_up {
            (
                Severity::Error,
                format!(
                    "{} (pipeline {id}) finished, but some steps were given up: see the \
                     journal",
                    kind.describe()
                ),
            )
        } else {
            (
                Severity::Info,
                format!("{} (pipeline {id}) finished", kind.describe()),
            )
        };
        self.event(
            sev,
            EventKind::PipelineFinished { pipeline: id },
            Some(role),
            msg,
        );
        if slot == Slot::Rearm {
            self.s.role_mut(role).rearm = None;
            self.event(
                Severity::Info,
                EventKind::Rearmed,
                Some(role),
                format!("{role} re-armed: automatic action possible again"),
            );
        }
    }

    pub(super) fn step_failed(&mut self, role: Role, sr: StepRef, a: &Action, reason: String) {
        let now = self.now;
        let retry_delay = self.cfg.retry_delay;
        let mut give_up = false;
        if let Some((p, _)) = self.pipeline_mut(role, sr.pipeline)
            && let Some(st) = p.steps.get_mut(sr.index)
        {
            st.last_error = Some(reason.clone());
            st.updated_at = now;
            if st.attempts >= st.step.max_failures() {
                give_up = true;
            } else {
                st.status = StepStatus::Failed;
            }
        }
        self.event(
            Severity::Error,
            EventKind::ActionFailed {
                action_id: a.id,
                reason: reason.clone(),
                will_retry: !give_up,
            },
            Some(role),
            if give_up {
                format!("failed: {}: {reason}", a.kind.describe())
            } else {
                format!(
                    "failed: {}: {reason}; trying again after {}",
                    a.kind.describe(),
                    human(retry_delay)
                )
            },
        );
        if give_up {
            self.give_up(role, sr, GiveUp::Failed { error: reason });
        } else {
            let rs = self.s.role_mut(role);
            rs.wait(self.clock, retry_delay);
            // The step's error is the reason now; a failed action's cause
            // cannot be seen gone, so it waits out the backoff.
            rs.retry_reason = None;
            rs.retry_leader = None;
        }
    }

    pub(super) fn give_up(&mut self, role: Role, sr: StepRef, cause: GiveUp) {
        let now = self.now;
        let mut stalled = None;
        let mut finished = None;
        if let Some((p, slot)) = self.pipeline_mut(role, sr.pipeline)
            && let Some(st) = p.steps.get_mut(sr.index)
        {
            st.status = StepStatus::GaveUp;
            st.updated_at = now;
            let name = st.step.name();
            if st.step.stalls_on_give_up() {
                let why = Stall::GaveUp {
                    step: name,
                    cause,
                    source_mail_host: p.promotion.as_ref().map(|d| d.source_mail_host.clone()),
                };
                p.stalled = Some(why.clone());
                p.finished_at = Some(now);
                stalled = Some((p.id, why));
            } else if p.is_finished() && p.finished_at.is_none() {
                p.finished_at = Some(now);
                finished = Some((p.id, p.kind, slot));
            }
        }
        if let Some((id, why)) = stalled {
            self.event(
                Severity::Error,
                EventKind::PipelineStalled { pipeline: id },
                Some(role),
                format!("pipeline {id} stopped: {why}"),
            );
        }
        if let Some((id, kind, slot)) = finished {
            self.pipeline_finished(role, id, kind, slot);
        }
    }

    pub(super) fn steps(&self, steps: Vec<Step>) -> Vec<StepState> {
        steps
            .into_iter()
            .map(|step| StepState {
                step,
                status: StepStatus::Pending,
                attempts: 0,
                last_error: None,
                updated_at: self.now,
            })
            .collect()
    }

    pub(super) fn new_pipeline_id(&mut self) -> u64 {
        let id = self.s.next_pipeline_id;
        self.s.next_pipeline_id += 1;
        id
    }

    pub(super) fn new_pipeline(
        &mut self,
        kind: PipelineKind,
        reason: &str,
        steps: Vec<Step>,
    ) -> Pipeline {
        let id = self.new_pipeline_id();
        Pipeline {
            id,
            kind,
            origin: Origin::Automatic,
            started_at: self.now,
            reason: reason.into(),
            promotion: None,
            steps: self.steps(steps),
            stalled: None,
            finished_at: None,
        }
    }

    /// The component whose fence must come before step `idx` of an
    /// automatic pipeline and has not: the promotion (appserver) or a
    /// proxy switch command of a proxy failover (proxy), while
    /// `fencing.<component>` is configured now and no fence of it was
    /// confirmed earlier in this pipeline. A pipeline's steps are recorded
    /// when it starts, but the fence is a pre-step check of the config in
    /// force when the step runs: fencing added by a reload (after a failed
    /// promotion, during its retry wait) must guard the retry
    /// (`fence-before-promotion`), as fencing removed is no longer run.
    /// A fence step that was skipped because its fencing was removed
    /// (done without an attempt) confirmed nothing.
    fn fence_now_required(&self, p: &Pipeline, idx: usize) -> Option<Component> {
        let component = match (p.kind, &p.steps[idx].step) {
            (PipelineKind::Promotion, Step::PromoteAccounts) => Component::Appserver,
            (
                PipelineKind::ProxyActivation,
                Step::Command {
                    action:
                        ActionKind::RunCommand {
                            purpose: CommandPurpose::ProxyActivate,
                            ..
                        },
                },
            ) => Component::Proxy,
            _ => return None,
        };
        if !self.cfg.fencing.contains_key(&component) {
            return None;
        }
        let confirmed = p.steps[..idx].iter().any(|s| {
            s.step == (Step::Fence { component }) && s.status == StepStatus::Done && s.attempts > 0
        });
        (!confirmed).then_some(component)
    }

    /// Put a fence step of `component` before step `idx` of pipeline `id`;
    /// it runs next, gated like the step it guards.
    fn insert_fence(&mut self, role: Role, id: u64, idx: usize, component: Component) -> Next {
        let now = self.now;
        let mut guarded = None;
        if let Some((p, _)) = self.pipeline_mut(role, id) {
            guarded = p.steps.get(idx).map(|s| s.step.name());
            p.steps.insert(
                idx,
                StepState {
                    step: Step::Fence { component },
                    status: StepStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    updated_at: now,
                },
            );
        }
        self.event(
            Severity::Warning,
            EventKind::Decision { reason: None },
            Some(role),
            format!(
                "fencing.{component} is configured now but was not when pipeline {id} started: \
                 the peer {component} must be confirmed powered off before its {} step, so a \
                 fence step is added before it",
                guarded.unwrap_or_default()
            ),
        );
        Next::Again
    }

    pub(super) fn pipeline_mut(&mut self, role: Role, id: u64) -> Option<(&mut Pipeline, Slot)> {
        if role == Role::Appserver
            && let Some(p) = self.s.protection.run.as_mut()
            && p.id == id
        {
            return Some((p, Slot::Reprotect));
        }
        let r = self.s.roles.get_mut(&role)?;
        if let Some(p) = r.failover.as_mut()
            && p.id == id
        {
            return Some((p, Slot::Failover));
        }
        if let Some(p) = r.rearm.as_mut()
            && p.id == id
        {
            return Some((p, Slot::Rearm));
        }
        None
    }
}

/// The fence step of `component`, when `fencing.<component>` is set.
pub(super) fn fence_step(cfg: &super::config::EngineConfig, component: Component) -> Option<Step> {
    cfg.fencing
        .contains_key(&component)
        .then_some(Step::Fence { component })
}

pub(super) fn commands(purpose: CommandPurpose, argvs: &[Vec<String>]) -> Vec<Step> {
    argvs
        .iter()
        .enumerate()
        .map(|(index, argv)| Step::Command {
            action: ActionKind::RunCommand {
                purpose,
                index,
                argv: argv.clone(),
            },
        })
        .collect()
}
