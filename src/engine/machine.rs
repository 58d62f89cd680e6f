//! The decision function: one input (a round, an outcome, an operator
//! command, the lock files found) and `now` in, the new state, at most one
//! action and the journal events out. See docs/decisions.md.

use super::action::{
    Action, ActionId, ActionKind, ActionOutcome, CommandPurpose, LockKind, Origin, OutcomeResult,
    PromoteTarget, StepRef,
};
use super::config::EngineConfig;
use super::event::{Event, EventKind, Severity};
use super::record::{
    LastPromotion, LockFileSeen, OperatorCommand, Pause, Pipeline, PipelineKind, PromotionDetails,
    State, Step, StepState, StepStatus,
};
use super::time::{UnixMillis, human};
use super::witness;
use crate::config::Rearm;
use crate::model::{Component, Observation, RaftServer, Role, Round, Verdict, Vote, WitnessKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};

/// What the engine is fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// One probe round of the peer DC.
    Round(Round),
    /// The outcome of the action handed out last.
    Outcome(ActionOutcome),
    /// An operator's command (`rearm`, `pause`, `resume`, `promote`).
    Operator(OperatorCommand),
    /// The legacy lock files as found on disk (read before deciding, so an
    /// upgrade from the Python habeat and hand-removed locks are honoured).
    LockFiles(Vec<LockFileSeen>),
}

/// The result of one engine step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state. The driver must persist it (atomically) *before*
    /// running `actions`: that is what makes a promotion intent durable and
    /// a crash resumable.
    pub state: State,
    /// At most one action; run it, then feed its outcome back.
    pub actions: Vec<Action>,
    /// Journal entries, in order.
    pub events: Vec<Event>,
    /// Set when an operator command was refused for safety (exit 4).
    pub refusal: Option<String>,
}

/// The one pure function of the engine. No I/O, no clock, no randomness:
/// the same inputs give the same transition.
pub fn step(prev: &State, input: &Input, now: UnixMillis, cfg: &EngineConfig) -> Transition {
    let mut cx = Cx {
        s: prev.clone(),
        events: Vec::new(),
        now,
        cfg,
        refusal: None,
    };
    let scope = match input {
        Input::Round(r) => {
            cx.recover_in_flight();
            cx.on_round(r);
            Scope::Round
        }
        Input::Outcome(o) => {
            // A chain keeps the scope it started in: the outcome of an
            // operator's step (`rearm`, `promote`) never leads to an
            // automatic decision on a verdict the operator's command did
            // not observe; the next round makes those.
            let operator_chain =
                cx.s.in_flight
                    .as_ref()
                    .is_some_and(|a| a.id == o.id && a.origin == Origin::Operator);
            if !cx.on_outcome(o) {
                return cx.finish(None);
            }
            if operator_chain {
                Scope::Operator
            } else {
                Scope::Round
            }
        }
        Input::Operator(c) => {
            cx.recover_in_flight();
            cx.on_operator(c);
            Scope::Operator
        }
        Input::LockFiles(l) => {
            cx.recover_in_flight();
            cx.on_lock_files(l);
            Scope::Operator
        }
    };
    if cx.refusal.is_some() {
        // A refused command does nothing else in the same step.
        return cx.finish(None);
    }
    let action = cx.next_action(scope);
    cx.finish(action)
}

/// `step` with a round.
pub fn decide(prev: &State, round: &Round, now: UnixMillis, cfg: &EngineConfig) -> Transition {
    step(prev, &Input::Round(round.clone()), now, cfg)
}

/// `step` with an action outcome.
pub fn on_outcome(
    prev: &State,
    outcome: &ActionOutcome,
    now: UnixMillis,
    cfg: &EngineConfig,
) -> Transition {
    step(prev, &Input::Outcome(outcome.clone()), now, cfg)
}

/// Which pipelines may advance in this step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// After a round (or an outcome): everything, automatic included.
    Round,
    /// After an operator command: only operator-started pipelines, so that
    /// `resume` or `rearm` never acts on verdicts from an old round.
    Operator,
}

/// What a role would do next.
pub(crate) enum Next {
    Act(Planned),
    Idle(String),
}

pub(crate) struct Planned {
    pub kind: ActionKind,
    pub origin: Origin,
    pub step: Option<StepRef>,
    /// The role the action belongs to when not the deciding one (releasing
    /// a gate another role took).
    pub role_hint: Option<Role>,
}

impl Planned {
    fn new(kind: ActionKind, origin: Origin, step: Option<StepRef>) -> Planned {
        Planned {
            kind,
            origin,
            step,
            role_hint: None,
        }
    }
}

pub(crate) struct Cx<'a> {
    pub s: State,
    pub events: Vec<Event>,
    pub now: UnixMillis,
    pub cfg: &'a EngineConfig,
    pub refusal: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Failover,
    Recovery,
}

impl<'a> Cx<'a> {
    fn finish(mut self, action: Option<Action>) -> Transition {
        if let Some(a) = &action {
            self.s.in_flight = Some(a.clone());
            self.s.in_flight_live = true;
        }
        Transition {
            state: self.s,
            actions: action.into_iter().collect(),
            events: self.events,
            refusal: self.refusal,
        }
    }

    fn event(&mut self, severity: Severity, kind: EventKind, role: Option<Role>, message: String) {
        self.events.push(Event {
            at: self.now,
            severity,
            kind,
            role,
            component: role.map(Role::watched_component),
            message,
        });
    }

    // ----- inputs -------------------------------------------------------

    /// An action handed out before a restart never reported back: habeat
    /// died during it. Its step is in doubt; decide whether to re-run it.
    fn recover_in_flight(&mut self) {
        if self.s.in_flight_live {
            // Still running in this process: its outcome will come.
            return;
        }
        let Some(a) = self.s.in_flight.take() else {
            return;
        };
        self.event(
            Severity::Warning,
            EventKind::Interrupted { action: a.clone() },
            Some(a.role),
            format!(
                "habeat stopped while it was doing: {} (action {}); no outcome was recorded",
                a.kind.describe(),
                a.id
            ),
        );
        if let Some(sr) = a.step {
            self.interrupt_step(a.role, sr);
        }
    }

    fn interrupt_step(&mut self, role: Role, sr: StepRef) {
        let now = self.now;
        let Some((p, _)) = self.pipeline_mut(role, sr.pipeline) else {
            return;
        };
        let Some(st) = p.steps.get_mut(sr.index) else {
            return;
        };
        if st.status != StepStatus::Started {
            return;
        }
        let limit = st.step.max_failures().max(1) + 1;
        st.updated_at = now;
        st.last_error = Some("interrupted: habeat stopped during this step".into());
        if st.attempts >= limit.min(super::config::MAX_ATTEMPTS) {
            self.give_up(role, sr, "it was interrupted too many times".into());
        } else {
            st.status = StepStatus::Pending;
        }
    }

    fn on_round(&mut self, round: &Round) {
        let now = self.now;
        if let Some(p) = &self.s.pause
            && now >= p.until
        {
            self.s.pause = None;
            self.event(
                Severity::Info,
                EventKind::PauseEnded,
                None,
                "the pause ended: automatic action is possible again".into(),
            );
        }
        // A new round invalidates an account listing of an earlier one,
        // and what the server was running then.
        self.s.fresh_listing = None;
        self.s.no_promotion_running = false;

        // Hysteresis, one state per witness present in this round.
        let mut merged: Vec<Observation> = Vec::new();
        for o in &round.observations {
            match merged.iter_mut().find(|m| m.witness == o.witness) {
                Some(m) => *m = witness::merge(m, o),
                None => merged.push(o.clone()),
            }
        }
        let mut next = Vec::with_capacity(merged.len());
        for o in &merged {
            let prev = self.s.witness(&o.witness);
            let w = witness::observe(prev, o, now, self.cfg);
            let before = prev.map(|p| p.vote).unwrap_or(Vote::Unknown);
            if w.vote != before {
                self.events.push(Event {
                    at: now,
                    severity: Severity::Info,
                    kind: EventKind::VoteChanged {
                        witness: w.witness.clone(),
                        from: before,
                        to: w.vote,
                    },
                    role: None,
                    component: Some(w.witness.component),
                    message: format!(
                        "witness {} now votes {:?} ({})",
                        w.witness, w.vote, w.reason
                    ),
                });
            }
            next.push(w);
        }
        self.s.witnesses = next;

        for c in Component::ALL {
            let (v, reason) = witness::verdict(c, &self.s.witnesses, self.cfg.quorum);
            let mut slot = self.s.components.remove(&c);
            let changed = witness::set_component(&mut slot, v, reason.clone(), now);
            if let Some(slot) = slot {
                self.s.components.insert(c, slot);
            }
            if let Some(from) = changed {
                let severity = if v == Verdict::Down {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                self.events.push(Event {
                    at: now,
                    severity,
                    kind: EventKind::VerdictChanged { from, to: v },
                    role: None,
                    component: Some(c),
                    message: format!("peer {c} is now {v}: {reason}"),
                });
            }
        }

        // Consul memory: the last healthy raft configuration, and how long
        // this side has been leaderless in consecutive rounds.
        let continuous = self
            .s
            .last_round_at
            .is_some_and(|t| now >= t && now.since(t) <= self.cfg.stale_after);
        if round.local_leader == Some(true)
            && let Some(servers) = &round.raft_servers
            && !servers.is_empty()
        {
            self.s.raft.last_healthy = Some(servers.clone());
            self.s.raft.last_healthy_at = Some(now);
        }
        self.s.raft.leaderless_since = match (round.local_leader, self.s.raft.leaderless_since) {
            (Some(false), Some(t)) if continuous => Some(t),
            (Some(false), _) => Some(now),
            _ => None,
        };
        self.s.last_round_at = Some(now);
    }

    /// Returns false when the outcome was ignored (nothing else to do).
    fn on_outcome(&mut self, o: &ActionOutcome) -> bool {
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
        self.s.in_flight_live = false;
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
                        self.s.gate_held = Some((role, key.clone()));
                        self.success_event(&a, o);
                    }
                    Some(reason) => self.gate_refused(
                        role,
                        key.clone(),
                        &reason,
                        format!(
                            "cannot prove the peer is gone: this side has no Consul quorum \
                             ({reason})"
                        ),
                        "no automatic action",
                    ),
                }
                return true;
            }
            ActionKind::ReleaseQuorumGate { .. } => {
                self.s.gate_held = None;
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
                        let why = format!(
                            "an earlier promotion is still running on the mailbox server ({}): \
                             waiting for it to end before promoting what it leaves on {host}",
                            promotions.join("; ")
                        );
                        let rs = self.s.role_mut(role);
                        rs.retry_at = Some(self.now.plus(self.cfg.operation_poll));
                        rs.retry_reason = Some(why.clone());
                        self.event(Severity::Warning, EventKind::Decision, Some(role), why);
                    }
                    (_, None) => {
                        self.success_event(&a, o);
                        self.s.no_promotion_running = true;
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
                        self.s.no_promotion_running = true;
                    }
                }
                return true;
            }
            ActionKind::ListAccounts { source_mail_host } => {
                let host = source_mail_host.clone();
                match (&o.result, err) {
                    (OutcomeResult::Listed { accounts }, None) => {
                        self.success_event(&a, o);
                        self.on_listed(role, &host, accounts);
                    }
                    (_, reason) => {
                        let reason = reason.unwrap_or_default();
                        self.s.role_mut(role).retry_at = Some(self.now.plus(self.cfg.retry_delay));
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
        if let OutcomeResult::GateRefused { reason } = &o.result {
            // The executor found the gate lost before a gated step: the
            // step did not run, so it neither failed nor counts as tried.
            let key = self.s.gate_held.take().map(|(_, k)| k).unwrap_or_default();
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
            let why = format!(
                "cannot prove the peer is gone: the quorum gate was lost before {} ({reason})",
                a.kind.describe()
            );
            self.gate_refused(role, key, reason, why, "not run");
            return true;
        }
        match err {
            None => {
                self.success_event(&a, o);
                self.step_done(role, sr);
            }
            Some(reason) => self.step_failed(role, sr, &a, reason),
        }
        true
    }

    /// No quorum gate: no automatic action of `role` before `retry_delay`;
    /// `why` is what the status says meanwhile, `then` what habeat does
    /// next (for the event).
    fn gate_refused(&mut self, role: Role, key: String, reason: &str, why: String, then: &str) {
        let rs = self.s.role_mut(role);
        rs.retry_at = Some(self.now.plus(self.cfg.retry_delay));
        rs.retry_reason = Some(why.clone());
        self.event(
            Severity::Warning,
            EventKind::GateRefused {
                key,
                reason: reason.to_owned(),
            },
            Some(role),
            format!(
                "{why}; {then}, retrying after {}",
                human(self.cfg.retry_delay)
            ),
        );
    }

    fn success_event(&mut self, a: &Action, o: &ActionOutcome) {
        let detail = match &o.result {
            OutcomeResult::Succeeded { detail } => detail.clone(),
            OutcomeResult::Listed { accounts } => format!("{} account(s)", accounts.len()),
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

    fn on_listed(&mut self, role: Role, host: &str, accounts: &[String]) {
        let mut list: Vec<String> = accounts.to_vec();
        list.sort();
        list.dedup();
        let rs = self.s.role(role);
        match rs.failover {
            Some(p) if p.kind == PipelineKind::Promotion && !p.is_finished() => {
                self.s.fresh_listing = Some(list);
            }
            Some(_) => {}
            None => {
                if list.is_empty() {
                    self.s.role_mut(role).retry_at = Some(self.now.plus(self.cfg.retry_delay));
                    self.note_decision(role, format!("no accounts on {host}: nothing to promote"));
                    return;
                }
                let id = self.new_pipeline_id();
                let mut steps = vec![Step::PromoteAccounts];
                steps.extend(self.promotion_follow_up(true));
                let p = Pipeline {
                    id,
                    kind: PipelineKind::Promotion,
                    origin: Origin::Automatic,
                    started_at: self.now,
                    reason: format!("peer appserver {host} is Down"),
                    promotion: Some(PromotionDetails {
                        source_mail_host: host.to_owned(),
                        target: PromoteTarget::SourceMailHost(host.to_owned()),
                        threads: self.cfg.threads,
                        accounts: list.clone(),
                    }),
                    steps: self.steps(steps),
                    stalled: None,
                    finished_at: None,
                };
                self.s.role_mut(role).failover = Some(p);
                self.event(
                    Severity::Warning,
                    EventKind::PromotionIntent {
                        source_mail_host: host.to_owned(),
                        accounts: list.clone(),
                    },
                    Some(role),
                    format!(
                        "recorded the intent to promote {} account(s) of {host} (pipeline {id})",
                        list.len()
                    ),
                );
                self.s.fresh_listing = Some(list);
            }
        }
    }

    fn on_operator(&mut self, c: &OperatorCommand) {
        match c {
            OperatorCommand::Pause { until, reason } => {
                self.s.pause = Some(Pause {
                    since: self.now,
                    until: *until,
                    reason: reason.clone(),
                });
                self.event(
                    Severity::Warning,
                    EventKind::Paused { until: *until },
                    None,
                    format!("paused until {until} ({reason}): probing, no automatic action"),
                );
            }
            OperatorCommand::Resume => {
                self.s.pause = None;
                self.event(
                    Severity::Info,
                    EventKind::Resumed,
                    None,
                    "pause ended by the operator".into(),
                );
            }
            OperatorCommand::Rearm => self.rearm_by_operator(),
            OperatorCommand::Promote {
                target,
                accounts,
                threads,
                force,
                evidence,
            } => self.manual_promotion(target, accounts, *threads, *force, evidence),
        }
    }

    fn rearm_by_operator(&mut self) {
        let had_hold = self.s.safe_hold.take().is_some();
        let mut any = had_hold;
        for role in self.s.roles.keys().copied().collect::<Vec<_>>() {
            let rs = self.s.role(role);
            {
                let rs = self.s.role_mut(role);
                rs.retry_at = None;
                rs.retry_reason = None;
            }
            self.s.role_mut(role).last_decision = None;
            if let Some(mut rec) = rs.recovery.clone() {
                any = true;
                if rec.origin != Origin::Operator && !rec.is_finished() {
                    // An automatic re-arm waiting for the peer to be Up:
                    // the operator takes it over. Like any operator
                    // re-arm, it runs no commands (proxy deactivate,
                    // on_peer_recovered): those are for a peer seen back.
                    let now = self.now;
                    let mut cancelled = Vec::new();
                    for st in &mut rec.steps {
                        if matches!(st.step, Step::Command { .. })
                            && !matches!(st.status, StepStatus::Done | StepStatus::GaveUp)
                        {
                            st.status = StepStatus::GaveUp;
                            st.last_error = Some("cancelled by `habeat rearm`".into());
                            st.updated_at = now;
                            cancelled.push(st.step.name());
                        }
                    }
                    rec.origin = Origin::Operator;
                    self.event(
                        Severity::Warning,
                        EventKind::Decision,
                        Some(role),
                        format!(
                            "rearm takes over the unfinished re-arm (pipeline {}){}",
                            rec.id,
                            if cancelled.is_empty() {
                                String::new()
                            } else {
                                format!("; not run: {}", cancelled.join(", "))
                            }
                        ),
                    );
                    self.s.role_mut(role).recovery = Some(rec);
                }
                continue;
            }
            if let Some(p) = rs.failover {
                any = true;
                if !p.is_finished() {
                    let left: Vec<String> = p
                        .steps
                        .iter()
                        .filter(|s| !matches!(s.status, StepStatus::Done | StepStatus::GaveUp))
                        .map(|s| s.step.name())
                        .collect();
                    self.event(
                        Severity::Warning,
                        EventKind::Decision,
                        Some(role),
                        format!(
                            "rearm cancels the unfinished steps of pipeline {}: {}",
                            p.id,
                            left.join(", ")
                        ),
                    );
                }
                self.start_recovery(role, &p, Origin::Operator);
            }
        }
        let msg = if any {
            "re-armed by the operator: failover locks cleared, automatic action possible again"
        } else {
            "rearm: nothing was locked"
        };
        self.event(Severity::Info, EventKind::Rearmed, None, msg.into());
    }

    fn manual_promotion(
        &mut self,
        target: &PromoteTarget,
        accounts: &[String],
        threads: Option<u32>,
        force: bool,
        evidence: &[Observation],
    ) {
        let role = Role::Appserver;
        let host = match target {
            PromoteTarget::SourceMailHost(h) => h.clone(),
            PromoteTarget::Accounts(_) => self
                .cfg
                .source_mail_host
                .clone()
                .unwrap_or_else(|| "(unknown source)".into()),
        };
        if !force
            && let Some(up) = evidence
                .iter()
                .find(|o| o.witness.component == Component::Appserver && o.vote == Vote::Up)
        {
            let why = format!(
                "refused: witness {} sees the source appserver {host} up ({}); promoting now \
                 would split mail between two datacenters. Use --force only if you know it is gone",
                up.witness, up.reason
            );
            self.event(Severity::Error, EventKind::Refused, Some(role), why.clone());
            self.refusal = Some(why);
            return;
        }
        let mut list: Vec<String> = match target {
            PromoteTarget::Accounts(a) => a.clone(),
            PromoteTarget::SourceMailHost(_) => accounts.to_vec(),
        };
        list.sort();
        list.dedup();
        let rs = self.s.role(role);
        if let Some(old) = &rs.failover {
            self.event(
                Severity::Warning,
                EventKind::Decision,
                Some(role),
                format!(
                    "the manual promotion replaces the recorded {:?} pipeline {}",
                    old.kind, old.id
                ),
            );
        }
        let id = self.new_pipeline_id();
        let mut steps = vec![Step::PromoteAccounts];
        steps.extend(self.promotion_follow_up(false));
        let p = Pipeline {
            id,
            kind: PipelineKind::Promotion,
            origin: Origin::Operator,
            started_at: self.now,
            reason: format!(
                "manual promotion from {host}{}",
                if force { " (--force)" } else { "" }
            ),
            promotion: Some(PromotionDetails {
                source_mail_host: host.clone(),
                target: target.clone(),
                threads: threads.unwrap_or(self.cfg.threads).max(1),
                accounts: list.clone(),
            }),
            steps: self.steps(steps),
            stalled: None,
            finished_at: None,
        };
        let r = self.s.role_mut(role);
        r.failover = Some(p);
        r.retry_at = None;
        r.retry_reason = None;
        self.event(
            Severity::Warning,
            EventKind::PromotionIntent {
                source_mail_host: host.clone(),
                accounts: list,
            },
            Some(role),
            format!("recorded a manual promotion from {host} (pipeline {id})"),
        );
    }

    fn on_lock_files(&mut self, seen: &[LockFileSeen]) {
        for l in seen {
            let rs = self.s.role(l.role);
            if rs.recovery.is_some() {
                continue;
            }
            match (&rs.failover, l.present) {
                (None, true) if l.lock != LockKind::Down => self.adopt(l),
                (Some(p), false)
                    if l.lock != LockKind::Down
                        && p.is_finished()
                        && p.step_done(
                            |s| matches!(s, Step::WriteLocks { locks } if locks.contains(&l.lock)),
                        ) =>
                {
                    let path_kind = l.lock;
                    self.s.role_mut(l.role).failover = None;
                    self.event(
                        Severity::Warning,
                        EventKind::LockRemovedByHand { lock: path_kind },
                        Some(l.role),
                        format!(
                            "the {path_kind:?} lock file of {} was removed by hand: taken as \
                             `habeat rearm` for this role (promotion_block still applies)",
                            l.role
                        ),
                    );
                }
                _ => {}
            }
        }
    }

    fn adopt(&mut self, l: &LockFileSeen) {
        let id = self.new_pipeline_id();
        let when = l.written_at.unwrap_or(self.now);
        let steps = match l.lock {
            LockKind::RestartReplica => vec![
                Step::StopHaModule,
                Step::WriteLocks {
                    locks: vec![LockKind::RestartReplica],
                },
            ],
            _ => vec![Step::WriteLocks {
                locks: vec![LockKind::Down, LockKind::Promotion],
            }],
        };
        let steps = steps
            .into_iter()
            .map(|step| StepState {
                step,
                status: StepStatus::Done,
                attempts: 1,
                last_error: None,
                updated_at: when,
            })
            .collect();
        self.s.role_mut(l.role).failover = Some(Pipeline {
            id,
            kind: PipelineKind::Adopted,
            origin: Origin::Legacy,
            started_at: when,
            reason: format!("{:?} lock file found", l.lock),
            promotion: None,
            steps,
            stalled: None,
            finished_at: Some(when),
        });
        if l.lock == LockKind::Promotion && l.role == Role::Appserver {
            let newer = self.s.last_promotion.as_ref().is_none_or(|p| p.at < when);
            if newer {
                self.s.last_promotion = Some(LastPromotion {
                    at: when,
                    source_mail_host: self.cfg.source_mail_host.clone().unwrap_or_default(),
                    origin: Origin::Legacy,
                });
            }
        }
        self.event(
            Severity::Warning,
            EventKind::LegacyLockAdopted { lock: l.lock },
            Some(l.role),
            format!(
                "found the {:?} lock file of {} left by an earlier habeat: taken as a recorded \
                 failover; no automatic action for this role until re-armed",
                l.lock, l.role
            ),
        );
    }

    // ----- deciding what to do next ----------------------------------------

    fn next_action(&mut self, scope: Scope) -> Option<Action> {
        if self.s.in_flight.is_some() {
            return None;
        }
        // Configured roles, plus any role with a re-arm or an operator's
        // promotion under way (`promote` on a node without the appserver
        // role, a role removed from the config since).
        let mut roles = self.cfg.roles.clone();
        for (r, rs) in &self.s.roles {
            let operator = rs
                .failover
                .as_ref()
                .is_some_and(|p| p.origin == Origin::Operator && !p.is_finished());
            if (rs.recovery.is_some() || operator) && !roles.contains(r) {
                roles.push(*r);
            }
        }
        for role in roles {
            match self.role_next(role, scope) {
                Next::Act(p) => return Some(self.start(role, p)),
                Next::Idle(reason) => {
                    if scope == Scope::Round {
                        self.note_decision(role, reason);
                    }
                }
            }
        }
        // Nothing left to do in this chain: give the gate back.
        if let Some((role, key)) = self.s.gate_held.clone() {
            return Some(self.start(
                role,
                Planned::new(
                    ActionKind::ReleaseQuorumGate { key },
                    Origin::Automatic,
                    None,
                ),
            ));
        }
        None
    }

    fn note_decision(&mut self, role: Role, reason: String) {
        let r = self.s.role_mut(role);
        if r.last_decision.as_deref() == Some(reason.as_str()) {
            return;
        }
        r.last_decision = Some(reason.clone());
        self.event(Severity::Info, EventKind::Decision, Some(role), reason);
    }

    pub(crate) fn fresh(&self) -> bool {
        self.s
            .last_round_at
            .is_some_and(|t| self.now >= t && self.now.since(t) <= self.cfg.verdict_valid_for)
    }

    /// Why automatic action is impossible now, if it is.
    pub(crate) fn automatic_blocked(&self) -> Option<String> {
        if let Some(h) = &self.s.safe_hold {
            return Some(format!(
                "automatic action is held since {} ({}): run `habeat rearm` once you have checked",
                h.since, h.reason
            ));
        }
        if let Some(p) = &self.s.pause
            && self.now < p.until
        {
            return Some(format!(
                "paused until {} ({}): watching, no automatic action",
                p.until, p.reason
            ));
        }
        None
    }

    pub(crate) fn role_next(&mut self, role: Role, scope: Scope) -> Next {
        let rs = self.s.role(role);
        // A re-arm in progress finishes first.
        if let Some(p) = &rs.recovery {
            return self.continue_pipeline(role, Slot::Recovery, p.clone(), scope);
        }
        if let Some(p) = &rs.failover
            && p.origin == Origin::Operator
            && !p.is_finished()
        {
            return self.continue_pipeline(role, Slot::Failover, p.clone(), scope);
        }
        if scope == Scope::Operator {
            return Next::Idle(String::new());
        }
        if !self.cfg.roles.contains(&role) {
            return Next::Idle(format!("{role} is not a role of this node"));
        }
        if let Some(why) = self.automatic_blocked() {
            return Next::Idle(why);
        }
        if !self.fresh() {
            return Next::Idle(match self.s.last_round_at {
                Some(t) => format!("no fresh observation of the peer (last round at {t})"),
                None => "the peer has not been observed yet".into(),
            });
        }
        let c = role.watched_component();
        let v = self.s.verdict(c);
        if let Some(p) = rs.failover {
            // Positive evidence the peer is back and nothing irreversible
            // happened yet: drop the intent.
            if v == Verdict::Up && !p.committed() {
                self.s.role_mut(role).failover = None;
                self.event(
                    Severity::Info,
                    EventKind::IntentAbandoned { pipeline: p.id },
                    Some(role),
                    format!(
                        "the peer {c} is Up again before anything was done: pipeline {} dropped",
                        p.id
                    ),
                );
                return self.role_next(role, scope);
            }
            let undecided = !p.decisive_done();
            if v == Verdict::Up && (p.is_finished() || undecided) {
                if self.cfg.rearm == Rearm::Auto {
                    if undecided && !p.is_finished() {
                        let what = match p.kind {
                            PipelineKind::Promotion => "some accounts may have been promoted",
                            PipelineKind::ProxyActivation => {
                                "the proxy switch may have been activated"
                            }
                            _ => "its first step may have run",
                        };
                        self.event(
                            Severity::Error,
                            EventKind::Decision,
                            Some(role),
                            format!(
                                "the peer {c} came back while the {} of pipeline {} was \
                                 unfinished: {what}, check it",
                                describe_kind(p.kind),
                                p.id
                            ),
                        );
                    }
                    self.start_recovery(role, &p, Origin::Automatic);
                    return self.role_next(role, scope);
                }
                return Next::Idle(format!(
                    "the peer {c} is Up again; rearm is manual: run `habeat rearm` once the \
                     failover is handled"
                ));
            }
            if p.is_finished() {
                return Next::Idle(match &p.stalled {
                    Some(why) => format!(
                        "failover pipeline {} stopped and needs an operator: {why}",
                        p.id
                    ),
                    None => format!(
                        "{} recorded at {} and not re-armed: nothing to do (peer {c} is {v})",
                        describe_kind(p.kind),
                        p.started_at
                    ),
                });
            }
            return self.continue_pipeline(role, Slot::Failover, p, scope);
        }
        if let Some(t) = rs.retry_at
            && self.now < t
        {
            return Next::Idle(format!("waiting until {t} before trying again"));
        }
        match role {
            Role::Appserver => self.appserver_start(v),
            Role::Proxyserver => self.proxyserver_start(v),
            Role::Consulserver => self.consulserver_start(),
        }
    }

    fn appserver_start(&mut self, v: Verdict) -> Next {
        let role = Role::Appserver;
        if v != Verdict::Down {
            return Next::Idle(format!("peer appserver is {v}: nothing to do"));
        }
        if self.cfg.is_primary {
            if !self.cfg.disable_ha_module {
                return Next::Idle(
                    "peer appserver is Down, but this is the primary DC: habeat never promotes \
                     from it"
                        .into(),
                );
            }
            let steps = vec![
                Step::StopHaModule,
                Step::WriteLocks {
                    locks: vec![LockKind::RestartReplica],
                },
            ];
            let p = self.new_pipeline(
                PipelineKind::HaModuleStop,
                "peer appserver is Down and this is the primary DC: stop the HA module once",
                steps,
            );
            self.s.role_mut(role).failover = Some(p.clone());
            return self.continue_pipeline(role, Slot::Failover, p, Scope::Round);
        }
        if let Some(last) = &self.s.last_promotion {
            let until = last.at.plus(self.cfg.promotion_block);
            if self.now < until {
                return Next::Idle(format!(
                    "peer appserver is Down, but the last promotion (of {} at {}) is less than \
                     promotion_block ({}) ago: no automatic promotion before {until}",
                    last.source_mail_host,
                    last.at,
                    human(self.cfg.promotion_block)
                ));
            }
        }
        let Some(host) = self.cfg.source_mail_host.clone() else {
            return Next::Idle(format!(
                "peer appserver is Down, but `{}.appserver_vmname` is not set: habeat cannot \
                 tell which mailstore to promote from",
                self.cfg.dc_check
            ));
        };
        Next::Act(Planned::new(
            ActionKind::ListAccounts {
                source_mail_host: host,
            },
            Origin::Automatic,
            None,
        ))
    }

    fn proxyserver_start(&mut self, v: Verdict) -> Next {
        if v != Verdict::Down {
            return Next::Idle(format!("peer proxy is {v}: nothing to do"));
        }
        let mut steps = Vec::new();
        if self.cfg.proxy_enable_activate {
            steps.extend(commands(
                CommandPurpose::ProxyActivate,
                &self.cfg.proxy_activate,
            ));
        }
        steps.push(Step::WriteLocks {
            locks: vec![LockKind::Down, LockKind::Promotion],
        });
        let p = self.new_pipeline(
            PipelineKind::ProxyActivation,
            "peer proxy is Down: switch proxy traffic to this DC",
            steps,
        );
        self.s.role_mut(Role::Proxyserver).failover = Some(p.clone());
        self.continue_pipeline(Role::Proxyserver, Slot::Failover, p, Scope::Round)
    }

    /// Whether raft recovery may run now, or why not.
    pub(crate) fn raft_ready(&self) -> Result<(), String> {
        let v = self.s.verdict(Component::Consul);
        if v != Verdict::Down {
            return Err(format!(
                "peer Consul servers are {v}: raft recovery only when every one is Down"
            ));
        }
        let Some(since) = self.s.raft.leaderless_since else {
            return Err(
                "peer Consul servers are Down, but the local Consul has a leader (or \
                        could not be asked): no raft recovery needed"
                    .into(),
            );
        };
        let lasted = self.now.since(since);
        if lasted < self.cfg.recovery_grace {
            return Err(format!(
                "peer Consul servers are Down and the local Consul has had no leader since \
                 {since}; raft recovery after recovery_grace ({})",
                human(self.cfg.recovery_grace)
            ));
        }
        if self.cfg.command_witness {
            let agrees = self.s.witnesses.iter().any(|w| {
                w.witness.component == Component::Consul
                    && w.witness.kind == WitnessKind::Command
                    && w.vote == Vote::Down
            });
            if !agrees {
                return Err(
                    "the command witness does not confirm the peer Consul servers are \
                            Down: no raft recovery"
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn consulserver_start(&mut self) -> Next {
        if let Err(why) = self.raft_ready() {
            return Next::Idle(why);
        }
        let servers = self.surviving_servers();
        let steps = vec![
            Step::RaftRecovery { servers },
            Step::ConfirmLeader,
            Step::WriteLocks {
                locks: vec![LockKind::Down, LockKind::Promotion],
            },
        ];
        let p = self.new_pipeline(
            PipelineKind::RaftRecovery,
            "every peer Consul server is Down and this side has had no leader for \
             recovery_grace: recover raft with this DC's servers",
            steps,
        );
        self.s.role_mut(Role::Consulserver).failover = Some(p.clone());
        self.continue_pipeline(Role::Consulserver, Slot::Failover, p, Scope::Round)
    }

    /// This DC's servers from the last healthy raft configuration: those
    /// named after this DC's `consul_vmnames`, or, when those are not
    /// configured, every server not named after the peer's.
    fn surviving_servers(&self) -> Vec<RaftServer> {
        let Some(all) = &self.s.raft.last_healthy else {
            return Vec::new();
        };
        let matches = |node: &str, hosts: &[String]| {
            let stripped = node
                .strip_prefix("server-")
                .or_else(|| node.strip_prefix("agent-"))
                .unwrap_or(node);
            hosts.iter().any(|h| h.replace('.', "-") == stripped)
        };
        all.iter()
            .filter(|s| {
                if self.cfg.own_consul_hosts.is_empty() {
                    !matches(&s.node, &self.cfg.peer_consul_hosts)
                } else {
                    matches(&s.node, &self.cfg.own_consul_hosts)
                }
            })
            .cloned()
            .collect()
    }

    // ----- pipelines -------------------------------------------------------

    fn continue_pipeline(&mut self, role: Role, slot: Slot, p: Pipeline, scope: Scope) -> Next {
        let automatic = p.origin != Origin::Operator;
        if automatic {
            if scope == Scope::Operator {
                return Next::Idle(String::new());
            }
            if let Some(why) = self.automatic_blocked() {
                return Next::Idle(format!(
                    "{} pipeline {} is unfinished; {why}",
                    describe_kind(p.kind),
                    p.id
                ));
            }
        }
        if automatic && let Some(why) = self.verdict_forbids(role, slot, &p) {
            return Next::Idle(why);
        }
        let Some(idx) = p.next_index() else {
            // Finished: a recovery pipeline ends the role's record.
            if slot == Slot::Recovery {
                self.s.role_mut(role).recovery = None;
                return self.role_next(role, scope);
            }
            return Next::Idle(format!("pipeline {} finished", p.id));
        };
        let st = &p.steps[idx];
        let retry_at = self.s.role(role).retry_at;
        if let Some(t) = retry_at
            && self.now < t
        {
            // A reason given with the wait is newer than the step's error.
            if let Some(why) = &self.s.role(role).retry_reason {
                return Next::Idle(format!(
                    "{}: waiting before step \"{}\": {why}; trying again after {t}",
                    describe_kind(p.kind),
                    st.step.name(),
                ));
            }
            return Next::Idle(format!(
                "{}: step \"{}\" failed ({}); trying again after {t}",
                describe_kind(p.kind),
                st.step.name(),
                st.last_error.clone().unwrap_or_default()
            ));
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
            Step::PromoteAccounts => return self.promote_step(role, slot, p.clone(), idx, scope),
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
                if automatic && let Err(why) = self.raft_ready() {
                    return Next::Idle(format!("raft recovery is unfinished; {why}"));
                }
                plan(ActionKind::RaftRecovery {
                    servers: servers.clone(),
                })
            }
            Step::ConfirmLeader => plan(ActionKind::ConfirmLeader),
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
    fn verdict_forbids(&self, role: Role, slot: Slot, p: &Pipeline) -> Option<String> {
        let needed = match slot {
            Slot::Failover if !p.decisive_done() => Verdict::Down,
            Slot::Recovery if p.next_index().is_some() => Verdict::Up,
            _ => return None,
        };
        let c = role.watched_component();
        let v = self.s.verdict(c);
        let fresh = self.fresh();
        if v == needed && fresh {
            return None;
        }
        let what = match &p.promotion {
            Some(d) => format!(
                "the {} of {} (pipeline {})",
                describe_kind(p.kind),
                d.source_mail_host,
                p.id
            ),
            None => format!("the {} (pipeline {})", describe_kind(p.kind), p.id),
        };
        let now = if fresh {
            v.to_string()
        } else {
            "not freshly observed".to_owned()
        };
        let by_hand = match slot {
            Slot::Recovery => "; `habeat rearm` finishes it by hand",
            Slot::Failover => "",
        };
        Some(format!(
            "{what} is unfinished; it continues only while the peer {c} is {needed} (now \
             {now}){by_hand}"
        ))
    }

    /// Put the quorum gate in front of an automatic action that needs it.
    fn gated(&mut self, role: Role, p: &Pipeline, next: Next) -> Next {
        let Next::Act(planned) = next else {
            return next;
        };
        if planned.origin != Origin::Automatic
            || !self.cfg.quorum_gate
            || !planned.kind.needs_gate()
        {
            return Next::Act(planned);
        }
        let key = EngineConfig::gate_key(&self.gate_host(role, p));
        match &self.s.gate_held {
            Some((_, k)) if *k == key => Next::Act(planned),
            Some((held_role, k)) => Next::Act(Planned::new(
                ActionKind::ReleaseQuorumGate { key: k.clone() },
                Origin::Automatic,
                None,
            ))
            .with_role_hint(*held_role),
            None => Next::Act(Planned::new(
                ActionKind::AcquireQuorumGate { key },
                Origin::Automatic,
                None,
            )),
        }
    }

    fn gate_host(&self, role: Role, p: &Pipeline) -> String {
        if let Some(d) = &p.promotion {
            return d.source_mail_host.clone();
        }
        match role {
            Role::Proxyserver => self
                .cfg
                .peer_proxy_host
                .clone()
                .unwrap_or_else(|| format!("{}-proxy", self.cfg.dc_check)),
            _ => self
                .cfg
                .source_mail_host
                .clone()
                .unwrap_or_else(|| format!("{}-appserver", self.cfg.dc_check)),
        }
    }

    /// The promotion step: with a fresh listing of the source, promote what
    /// is still there; nothing left means the step is done. (An automatic
    /// promotion, first run or resumed, needs the peer Down right now:
    /// [`Self::verdict_forbids`], before any step.)
    fn promote_step(
        &mut self,
        role: Role,
        slot: Slot,
        p: Pipeline,
        idx: usize,
        scope: Scope,
    ) -> Next {
        let Some(d) = p.promotion.clone() else {
            // Cannot happen for a promotion pipeline; stop rather than guess.
            self.give_up(
                role,
                StepRef {
                    pipeline: p.id,
                    index: idx,
                },
                "the promotion record has no source".into(),
            );
            return self.role_next(role, scope);
        };
        let automatic = p.origin == Origin::Automatic;
        let sr = StepRef {
            pipeline: p.id,
            index: idx,
        };
        // An operator's list of accounts is promoted as given the first
        // time; a whole mailstore is listed first so the record knows the
        // accounts (for cache flush, replicas, and a resume after a crash).
        let first_manual = !automatic
            && p.steps[idx].attempts == 0
            && matches!(d.target, PromoteTarget::Accounts(_));
        // An earlier attempt that did not report success (habeat killed
        // during it, its client timed out or failed) may still be running
        // on the mailbox server: promoting again beside it would run two
        // promotions of the same accounts at once. Ask the server first.
        if p.steps[idx].attempts >= 1 && !self.s.no_promotion_running {
            return Next::Act(Planned::new(
                ActionKind::ListOperations {
                    source_mail_host: d.source_mail_host.clone(),
                },
                p.origin,
                None,
            ));
        }
        let remaining = if first_manual {
            match &d.target {
                PromoteTarget::Accounts(a) => PromoteTarget::Accounts(a.clone()),
                t => t.clone(),
            }
        } else {
            let Some(list) = self.s.fresh_listing.clone() else {
                return Next::Act(Planned::new(
                    ActionKind::ListAccounts {
                        source_mail_host: d.source_mail_host.clone(),
                    },
                    p.origin,
                    None,
                ));
            };
            // Sets, not `Vec::contains` in a loop: a mailstore has up to
            // 100k accounts, and a quadratic pass over them took 19 s.
            let left: Vec<String> = match &d.target {
                PromoteTarget::SourceMailHost(_) => list.clone(),
                PromoteTarget::Accounts(a) => {
                    let listed: HashSet<&str> = list.iter().map(String::as_str).collect();
                    a.iter()
                        .filter(|x| listed.contains(x.as_str()))
                        .cloned()
                        .collect()
                }
            };
            if left.is_empty() {
                self.s.fresh_listing = None;
                self.event(
                    Severity::Info,
                    EventKind::Decision,
                    Some(role),
                    format!(
                        "no account of pipeline {} is left on {}: the promotion step is done",
                        p.id, d.source_mail_host
                    ),
                );
                self.step_done(role, sr);
                let _ = slot;
                return self.role_next(role, scope);
            }
            // Remember every account that is being promoted.
            if let Some((pp, _)) = self.pipeline_mut(role, p.id)
                && let Some(pd) = pp.promotion.as_mut()
            {
                let mut all: BTreeSet<String> =
                    std::mem::take(&mut pd.accounts).into_iter().collect();
                all.extend(left.iter().cloned());
                pd.accounts = all.into_iter().collect();
            }
            match &d.target {
                PromoteTarget::SourceMailHost(h) => PromoteTarget::SourceMailHost(h.clone()),
                PromoteTarget::Accounts(_) => PromoteTarget::Accounts(left),
            }
        };
        let next = Next::Act(Planned::new(
            ActionKind::PromoteAccounts {
                source_mail_host: d.source_mail_host.clone(),
                target: remaining,
                threads: d.threads,
            },
            p.origin,
            Some(sr),
        ));
        self.gated(role, &p, next)
    }

    fn start(&mut self, role: Role, planned: Planned) -> Action {
        let id = ActionId(self.s.next_action_id);
        self.s.next_action_id += 1;
        let role = planned.role_hint.unwrap_or(role);
        let now = self.now;
        if let Some(sr) = planned.step {
            let mut commit = None;
            if let Some((p, _)) = self.pipeline_mut(role, sr.pipeline)
                && let Some(st) = p.steps.get_mut(sr.index)
            {
                st.status = StepStatus::Started;
                st.attempts += 1;
                st.updated_at = now;
                if st.step == Step::PromoteAccounts && st.attempts == 1 {
                    commit = p
                        .promotion
                        .as_ref()
                        .map(|d| (d.source_mail_host.clone(), p.origin));
                }
            }
            if let Some((host, origin)) = commit {
                self.s.last_promotion = Some(LastPromotion {
                    at: now,
                    source_mail_host: host,
                    origin,
                });
            }
        }
        if matches!(planned.kind, ActionKind::PromoteAccounts { .. }) {
            self.s.fresh_listing = None;
            self.s.no_promotion_running = false;
        }
        let action = Action {
            id,
            role,
            origin: planned.origin,
            step: planned.step,
            kind: planned.kind,
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

    fn step_done(&mut self, role: Role, sr: StepRef) {
        let now = self.now;
        let mut finished = None;
        if let Some((p, slot)) = self.pipeline_mut(role, sr.pipeline) {
            if let Some(st) = p.steps.get_mut(sr.index) {
                st.status = StepStatus::Done;
                st.updated_at = now;
                st.last_error = None;
            }
            if p.is_finished() && p.finished_at.is_none() {
                p.finished_at = Some(now);
                finished = Some((p.id, p.kind, slot));
            }
        }
        {
            let rs = self.s.role_mut(role);
            rs.retry_at = None;
            rs.retry_reason = None;
        }
        if let Some((id, kind, slot)) = finished {
            self.pipeline_finished(role, id, kind, slot);
        }
    }

    fn pipeline_finished(&mut self, role: Role, id: u64, kind: PipelineKind, slot: Slot) {
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
                    describe_kind(kind)
                ),
            )
        } else {
            (
                Severity::Info,
                format!("{} (pipeline {id}) finished", describe_kind(kind)),
            )
        };
        self.event(
            sev,
            EventKind::PipelineFinished { pipeline: id },
            Some(role),
            msg,
        );
        if slot == Slot::Recovery {
            self.s.role_mut(role).recovery = None;
            self.event(
                Severity::Info,
                EventKind::Rearmed,
                Some(role),
                format!("{role} re-armed: automatic action possible again"),
            );
        }
    }

    fn step_failed(&mut self, role: Role, sr: StepRef, a: &Action, reason: String) {
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
            self.give_up(role, sr, reason);
        } else {
            let rs = self.s.role_mut(role);
            rs.retry_at = Some(now.plus(retry_delay));
            // The step's error is the reason now.
            rs.retry_reason = None;
        }
    }

    fn give_up(&mut self, role: Role, sr: StepRef, reason: String) {
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
                let hint = match &p.promotion {
                    Some(d) => format!(
                        "promote by hand (`habeat promote --source-mail-host {} --force`) or, \
                         if you handled it, `habeat rearm`",
                        d.source_mail_host
                    ),
                    None => "handle it by hand, then `habeat rearm`".into(),
                };
                let why = format!("step \"{name}\" gave up: {reason}; operator needed: {hint}");
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

    /// Start re-arming `role`, whose failover record is `p`: undo what it
    /// did that must be undone, remove its locks, run the recovery hooks
    /// (automatic re-arm only). The failover record is cleared now; the
    /// recovery pipeline is recorded in its place.
    fn start_recovery(&mut self, role: Role, p: &Pipeline, origin: Origin) {
        let mut steps = Vec::new();
        if p.step_started(|s| matches!(s, Step::StopHaModule)) {
            steps.push(Step::StartHaModule);
        }
        if origin == Origin::Automatic
            && role == Role::Proxyserver
            && self.cfg.proxy_enable_deactivate
        {
            steps.extend(commands(
                CommandPurpose::ProxyDeactivate,
                &self.cfg.proxy_deactivate,
            ));
        }
        let mut locks: Vec<LockKind> = Vec::new();
        for s in &p.steps {
            if let Step::WriteLocks { locks: l } = &s.step {
                locks.extend(l.iter().copied());
            }
        }
        if locks.is_empty() {
            locks = vec![LockKind::Down, LockKind::Promotion];
        }
        locks.sort();
        locks.dedup();
        steps.push(Step::RemoveLocks { locks });
        if origin == Origin::Automatic {
            steps.extend(commands(
                CommandPurpose::OnPeerRecovered,
                &self.cfg.on_peer_recovered,
            ));
        }
        let id = self.new_pipeline_id();
        let reason = match origin {
            Origin::Automatic => format!("the peer {} is Up again", role.watched_component()),
            _ => "rearm by the operator".into(),
        };
        let rec = Pipeline {
            id,
            kind: PipelineKind::Rearm,
            origin,
            started_at: self.now,
            reason: reason.clone(),
            promotion: None,
            steps: self.steps(steps),
            stalled: None,
            finished_at: None,
        };
        let r = self.s.role_mut(role);
        r.failover = None;
        r.recovery = Some(rec);
        r.retry_at = None;
        r.retry_reason = None;
        self.event(
            Severity::Info,
            EventKind::Decision,
            Some(role),
            format!("re-arming {role} (pipeline {id}): {reason}"),
        );
    }

    // ----- helpers --------------------------------------------------------

    fn promotion_follow_up(&self, automatic: bool) -> Vec<Step> {
        let mut steps = vec![Step::WriteLocks {
            locks: vec![LockKind::Down, LockKind::Promotion],
        }];
        if self.cfg.flush_cache {
            steps.push(Step::FlushCache);
        }
        if self.cfg.restart_replica {
            steps.push(Step::PauseReplicas);
            steps.push(Step::RestartReplicas);
        }
        if automatic {
            if self.cfg.proxy_enable_activate {
                steps.extend(commands(
                    CommandPurpose::ProxyActivate,
                    &self.cfg.proxy_activate,
                ));
            }
            steps.extend(commands(
                CommandPurpose::AfterPromotion,
                &self.cfg.after_promotion,
            ));
        }
        steps
    }

    fn steps(&self, steps: Vec<Step>) -> Vec<StepState> {
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

    fn new_pipeline_id(&mut self) -> u64 {
        let id = self.s.next_pipeline_id;
        self.s.next_pipeline_id += 1;
        id
    }

    fn new_pipeline(&mut self, kind: PipelineKind, reason: &str, steps: Vec<Step>) -> Pipeline {
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

    fn pipeline_mut(&mut self, role: Role, id: u64) -> Option<(&mut Pipeline, Slot)> {
        let r = self.s.roles.get_mut(&role)?;
        if let Some(p) = r.failover.as_mut()
            && p.id == id
        {
            return Some((p, Slot::Failover));
        }
        if let Some(p) = r.recovery.as_mut()
            && p.id == id
        {
            return Some((p, Slot::Recovery));
        }
        None
    }
}

impl Next {
    /// A gate release may belong to another role than the one deciding.
    fn with_role_hint(self, role: Role) -> Next {
        match self {
            Next::Act(mut p) => {
                p.role_hint = Some(role);
                Next::Act(p)
            }
            n => n,
        }
    }
}

fn commands(purpose: CommandPurpose, argvs: &[Vec<String>]) -> Vec<Step> {
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

pub(crate) fn describe_kind(k: PipelineKind) -> &'static str {
    match k {
        PipelineKind::Promotion => "promotion",
        PipelineKind::HaModuleStop => "HA module stop",
        PipelineKind::ProxyActivation => "proxy switch",
        PipelineKind::RaftRecovery => "raft recovery",
        PipelineKind::Adopted => "failover (found as a lock file)",
        PipelineKind::Rearm => "re-arm",
    }
}
