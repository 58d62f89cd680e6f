//! The decision function: one input (a round, an outcome, an operator
//! command, the lock files found) and `now` in, the new state, at most one
//! action and the journal events out. See docs/decisions.md.

use super::action::{Action, ActionKind, ActionOutcome, Origin, StepRef};
use super::config::EngineConfig;
use super::event::{Event, EventKind, Severity};
use super::kind::PipelineKind;
use super::reason::{Blocked, GiveUp, Idle, OperatorRefusal};
use super::record::{Live, LockFileSeen, OperatorCommand, Pause, State, StepStatus};
use super::time::{Now, UnixMillis};
use super::witness;
use crate::model::{Component, Observation, Rearm, Role, Round, Verdict, Vote};
use serde::{Deserialize, Serialize};

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
    /// A replica survey of the peer's mailstore found these accounts with
    /// no replica at all (`replicas.reprotect: auto` gives each one here,
    /// once).
    Unreplicated { accounts: Vec<String> },
    /// No new observation, only time: fed when a witness's detection
    /// deadline ([`witness::next_deadline`]) passes before the next round has
    /// completed, so that a peer gone silent is judged at the instant its
    /// tolerance runs out, not a probe timeout later.
    Deadline,
}

/// The result of one engine step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state. The driver must persist it (atomically) *before*
    /// running `actions`: that is what makes a promotion intent durable and
    /// a crash resumable.
    pub state: State,
    /// What this process knows besides: keep it for the next step, never
    /// save it.
    pub live: Live,
    /// At most one action; run it, then feed its outcome back.
    pub actions: Vec<Action>,
    /// Journal entries, in order.
    pub events: Vec<Event>,
    /// Set when an operator command was refused for safety (exit 4).
    pub refusal: Option<OperatorRefusal>,
}

/// The one pure function of the engine. No I/O, no clock, no randomness:
/// the same inputs give the same transition.
pub fn step(
    prev: &State,
    live: &Live,
    input: &Input,
    now: impl Into<Now>,
    cfg: &EngineConfig,
) -> Transition {
    let clock = now.into();
    let mut cx = Cx {
        s: prev.clone(),
        live: live.clone(),
        events: Vec::new(),
        now: clock.wall,
        clock,
        cfg,
        refusal: None,
        query: false,
    };
    cx.note_boot();
    let scope = match input {
        Input::Round(r) => {
            cx.resume_in_flight();
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
            cx.resume_in_flight();
            cx.on_operator(c);
            Scope::Operator
        }
        Input::LockFiles(l) => {
            cx.resume_in_flight();
            cx.on_lock_files(l);
            Scope::Operator
        }
        Input::Unreplicated { accounts } => {
            // Only noted: the next round decides (with its fresh verdict),
            // so a survey kept beside a running action never starts one.
            cx.note_uncovered(accounts);
            return cx.finish(None);
        }
        Input::Deadline => {
            cx.resume_in_flight();
            if !cx.on_deadline() {
                return cx.finish(None);
            }
            Scope::Round
        }
    };
    if cx.refusal.is_some() {
        // A refused command does nothing else in the same step.
        return cx.finish(None);
    }
    let action = cx.next_action(scope);
    cx.finish(action)
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
    Idle(Idle),
    /// The role's record changed (an intent dropped, a re-arm started or
    /// finished, a step found already done): decide again from the new
    /// record. [`Cx::role_next`] loops on it, a bounded number of times.
    Again,
}

/// What a role does next, once its record has settled.
pub(crate) enum Decision {
    Act(Planned),
    Idle(Idle),
}

/// More passes than any chain of record changes needs (drop an intent,
/// start a re-arm, finish it, start a failover): a bound, not a budget.
const MAX_PASSES: usize = 16;

pub(crate) struct Planned {
    pub kind: ActionKind,
    pub origin: Origin,
    pub step: Option<StepRef>,
    /// The role the action belongs to when not the deciding one (releasing
    /// a gate another role took).
    pub role_hint: Option<Role>,
}

impl Planned {
    pub(super) fn new(kind: ActionKind, origin: Origin, step: Option<StepRef>) -> Planned {
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
    pub live: Live,
    pub events: Vec<Event>,
    /// The wall clock of `clock`: what events and records are dated with.
    pub now: UnixMillis,
    /// Both clocks, for the windows and waits (docs/decisions.md, "Which
    /// clock measures what").
    pub clock: Now,
    pub cfg: &'a EngineConfig,
    pub refusal: Option<OperatorRefusal>,
    /// Asked by [`crate::engine::plan`], not stepping: the state is a
    /// scratch copy, and no journal event is recorded.
    pub query: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Failover,
    Rearm,
    Reprotect,
}

impl<'a> Cx<'a> {
    /// A context for a query ([`crate::engine::plan`]): a scratch copy of
    /// `state` that nobody saves, and no events.
    pub(super) fn query(state: &State, live: &Live, cfg: &'a EngineConfig, now: Now) -> Cx<'a> {
        Cx {
            s: state.clone(),
            live: live.clone(),
            events: Vec::new(),
            now: now.wall,
            clock: now,
            cfg,
            refusal: None,
            query: true,
        }
    }

    pub(super) fn finish(mut self, action: Option<Action>) -> Transition {
        if let Some(a) = &action {
            self.s.in_flight = Some(a.clone());
            self.live.running_here = Some(a.id);
        }
        Transition {
            state: self.s,
            live: self.live,
            actions: action.into_iter().collect(),
            events: self.events,
            refusal: self.refusal,
        }
    }

    pub(super) fn event(
        &mut self,
        severity: Severity,
        kind: EventKind,
        role: Option<Role>,
        message: String,
    ) {
        self.record(Event {
            operator: None,
            at: self.now,
            severity,
            kind,
            role,
            component: role.map(Role::watched_component),
            message,
        });
    }

    /// Keep a journal event, unless asked by [`crate::engine::plan`]
    /// (query mode records none).
    fn record(&mut self, event: Event) {
        if !self.query {
            self.events.push(event);
        }
    }

    /// A step in another boot than the last: the boot clock saved with
    /// the windows and waits of that boot cannot be compared with this
    /// one's, so they are measured by the wall clock alone
    /// ([`super::time::Now::window_left`]). Say so once, naming them.
    fn note_boot(&mut self) {
        let Some(now) = self.clock.boot else {
            return;
        };
        let Some(previous) = self.s.boot.replace(now.boot).filter(|b| *b != now.boot) else {
            return;
        };
        let clock = self.clock;
        let mut open = Vec::new();
        if let Some(p) = self.s.last_promotion.as_ref().filter(|p| {
            clock.other_boot(p.at_boot) && clock.wall.since(p.at) < self.cfg.promotion_block
        }) {
            open.push(format!("promotion_block since {}", p.at));
        }
        for (role, rs) in &self.s.roles {
            if let Some(t) = rs
                .retry_at
                .filter(|t| clock.other_boot(rs.retry_at_boot) && clock.wall < *t)
            {
                open.push(format!("the {role} role's wait until {t}"));
            }
        }
        if let Some(t) = self
            .s
            .raft
            .leaderless_since
            .filter(|_| clock.other_boot(self.s.raft.leaderless_since_boot))
        {
            open.push(format!("recovery_grace since {t}"));
        }
        if open.is_empty() {
            return;
        }
        self.event(
            Severity::Warning,
            EventKind::WallClockOnly {
                previous_boot: previous,
                boot: now.boot,
            },
            None,
            format!(
                "the machine was restarted (boot id {previous}, now {}): {} are measured \
                 by the wall clock alone from now on; if the clock was set since, compare it \
                 with `timedatectl` and `habeat status`",
                now.boot,
                open.join(", ")
            ),
        );
    }

    /// An action handed out before a restart never reported back: habeat
    /// died during it. Its step is in doubt; decide whether to re-run it.
    pub(super) fn resume_in_flight(&mut self) {
        if self.live.runs(&self.s) {
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

    pub(super) fn interrupt_step(&mut self, role: Role, sr: StepRef) {
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
            self.give_up(role, sr, GiveUp::Interrupted);
        } else {
            st.status = StepStatus::Pending;
        }
    }

    pub(super) fn on_round(&mut self, round: &Round) {
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
        self.live.fresh_listing = None;
        self.live.no_promotion_running = false;
        // An operator's promotion is judged on this round from now on.
        self.live.operator_judged = None;

        // Hysteresis, one state per witness present in this round.
        let mut merged: Vec<Observation> = Vec::new();
        for o in &round.observations {
            match merged.iter_mut().find(|m| m.witness == o.witness) {
                Some(m) => *m = witness::merge(m, o),
                None => merged.push(o.clone()),
            }
        }
        let sent = witness::sent_at(
            self.live.probes_out.take(),
            self.clock,
            self.s.last_round_at,
        );
        self.live.answered_out.clear();
        let mut next = Vec::with_capacity(merged.len());
        for o in &merged {
            let prev = self.s.witness(&o.witness);
            let w = witness::observe(prev, o, self.clock, sent, self.cfg);
            let before = prev.map(|p| p.vote).unwrap_or(Vote::Unknown);
            if w.vote != before {
                self.record(Event {
                    operator: None,
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
        self.watch_returning_servers();
        self.settle_verdicts();

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
        self.live.leader_in_last_round = round.local_leader == Some(true);
        self.watch_leader(round.local_leader == Some(true));
        let (since, since_boot) = match (round.local_leader, self.s.raft.leaderless_since) {
            (Some(false), Some(t)) if continuous => (Some(t), self.s.raft.leaderless_since_boot),
            (Some(false), _) => (Some(now), self.clock.boot),
            _ => (None, None),
        };
        self.s.raft.leaderless_since = since;
        self.s.raft.leaderless_since_boot = since_boot;
        self.s.raft.local_leader = round.local_leader;
        self.s.last_round_at = Some(now);
    }

    /// Each component's verdict from its witnesses' votes, with an event
    /// for each that changed.
    fn settle_verdicts(&mut self) {
        let now = self.now;
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
                self.record(Event {
                    operator: None,
                    at: now,
                    severity,
                    kind: EventKind::VerdictChanged { from, to: v },
                    role: None,
                    component: Some(c),
                    message: format!("peer {c} is now {v}: {reason}"),
                });
            }
        }
    }

    /// [`Input::Deadline`]: the witnesses whose deadline has passed vote
    /// Down, and the verdicts follow. False when nothing changed (a
    /// deadline fed late, after a round settled it): nothing to decide.
    pub(super) fn on_deadline(&mut self) -> bool {
        let now = self.now;
        let mut changed = Vec::new();
        for w in &mut self.s.witnesses {
            if self.live.answered_out.contains(&w.witness) {
                continue;
            }
            if let Some(next) = witness::expire(w, self.clock, self.live.probes_out, self.cfg) {
                changed.push((w.vote, next.clone()));
                *w = next;
            }
        }
        for (before, w) in &changed {
            self.record(Event {
                operator: None,
                at: now,
                severity: Severity::Info,
                kind: EventKind::VoteChanged {
                    witness: w.witness.clone(),
                    from: *before,
                    to: w.vote,
                },
                role: None,
                component: Some(w.witness.component),
                message: format!(
                    "witness {} now votes {:?} ({}; no answer for {} since {})",
                    w.witness,
                    w.vote,
                    w.reason,
                    super::time::human(now.since(w.last_up.unwrap_or(now))),
                    w.last_up.unwrap_or(now),
                ),
            });
        }
        if changed.is_empty() {
            return false;
        }
        // New evidence, as a round's: a listing taken before it, and what
        // the server was running then, are not acted on after it.
        self.live.fresh_listing = None;
        self.live.no_promotion_running = false;
        self.settle_verdicts();
        true
    }

    pub(super) fn on_operator(&mut self, c: &OperatorCommand) {
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
                follow_ups,
            } => self.manual_promotion(target, accounts, *threads, *force, evidence, *follow_ups),
            OperatorCommand::RecoverPeerDcLost {
                evidence,
                local_leader,
            } => self.recover_peer_dc_lost(evidence, *local_leader),
            OperatorCommand::Reprotect { request } => self.reprotect_by_operator(request),
            OperatorCommand::FailBack { mail_host } => self.fail_back(mail_host),
        }
    }

    pub(super) fn next_action(&mut self, scope: Scope) -> Option<Action> {
        if self.s.in_flight.is_some() {
            return None;
        }
        if scope == Scope::Round {
            self.end_waits_without_cause();
        }
        for role in self.roles_to_decide() {
            match self.role_next(role, scope) {
                Decision::Act(p) => return Some(self.start(role, p)),
                Decision::Idle(reason) => {
                    if scope == Scope::Round {
                        self.note_decision(role, reason);
                    }
                }
            }
        }
        // The failover roles are idle: a re-protection batch may run.
        if let Some(p) = self.reprotect_next(scope) {
            return Some(self.start(Role::Appserver, p));
        }
        // Nothing left to do in this chain: give the gate back.
        if let Some((role, key)) = self.live.gate_held.clone() {
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

    /// The roles a step decides for, in order: the configured ones, plus
    /// any role with a re-arm or an operator's promotion under way
    /// (`promote` on a node without the appserver role, a role removed
    /// from the config since). [`crate::engine::plan`] asks the same.
    pub(super) fn roles_to_decide(&self) -> Vec<Role> {
        roles_to_decide(&self.s, self.cfg)
    }

    pub(super) fn note_decision(&mut self, role: Role, reason: Idle) {
        let r = self.s.role_mut(role);
        if r.last_decision.as_ref() == Some(&reason) {
            return;
        }
        r.last_decision = Some(reason.clone());
        let message = reason.to_string();
        self.event(
            Severity::Info,
            EventKind::Decision {
                reason: Some(reason),
            },
            Some(role),
            message,
        );
    }

    pub(crate) fn fresh(&self) -> bool {
        self.s
            .last_round_at
            .is_some_and(|t| self.now >= t && self.now.since(t) <= self.cfg.verdict_valid_for)
    }

    /// Why automatic action is impossible now, if it is.
    pub(crate) fn automatic_blocked(&self) -> Option<Blocked> {
        if let Some(h) = &self.s.safe_hold {
            return Some(Blocked::SafeHold {
                since: h.since,
                reason: h.reason.clone(),
            });
        }
        if let Some(p) = &self.s.pause
            && self.now < p.until
        {
            return Some(Blocked::Paused {
                until: p.until,
                reason: p.reason.clone(),
            });
        }
        None
    }

    /// What `role` does next, deciding again while its record changes.
    pub(crate) fn role_next(&mut self, role: Role, scope: Scope) -> Decision {
        for _ in 0..MAX_PASSES {
            match self.role_pass(role, scope) {
                Next::Again => continue,
                Next::Act(p) => return Decision::Act(p),
                Next::Idle(why) => return Decision::Idle(why),
            }
        }
        Decision::Idle(Idle::Unsettled {
            role,
            passes: MAX_PASSES,
        })
    }

    /// One pass of [`Cx::role_next`].
    fn role_pass(&mut self, role: Role, scope: Scope) -> Next {
        let rs = self.s.role(role);
        // A re-arm in progress finishes first.
        if let Some(p) = &rs.rearm {
            return self.continue_pipeline(role, Slot::Rearm, p.clone(), scope);
        }
        if let Some(p) = &rs.failover
            && p.origin == Origin::Operator
            && !p.is_finished()
        {
            return self.continue_pipeline(role, Slot::Failover, p.clone(), scope);
        }
        if scope == Scope::Operator {
            return Next::Idle(Idle::OperatorScope);
        }
        if !self.cfg.roles.contains(&role) {
            return Next::Idle(Idle::NotARole { role });
        }
        if let Some(blocked) = self.automatic_blocked() {
            return Next::Idle(Idle::Blocked { blocked });
        }
        if !self.fresh() {
            return Next::Idle(Idle::NotObserved {
                last_round: self.s.last_round_at,
            });
        }
        let c = role.watched_component();
        let v = self.s.verdict(c);
        if let Some(p) = rs.failover {
            // Positive evidence the peer is back and nothing irreversible
            // happened yet: drop the intent. Not an operator's promotion
            // stopped on its refusal: it may have replaced a record of a
            // promotion done, which must stand until a re-arm.
            if v == Verdict::Up && !p.committed() && p.origin != Origin::Operator {
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
                return Next::Again;
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
                            EventKind::Decision { reason: None },
                            Some(role),
                            format!(
                                "the peer {c} came back while the {} of pipeline {} was \
                                 unfinished: {what}, check it",
                                p.kind.describe(),
                                p.id
                            ),
                        );
                    }
                    self.start_rearm(role, &p, Origin::Automatic);
                    return Next::Again;
                }
                return Next::Idle(Idle::PeerBackRearmManual { component: c });
            }
            if p.is_finished() {
                return Next::Idle(match &p.stalled {
                    Some(why) => Idle::Stalled {
                        pipeline: p.id,
                        why: why.clone(),
                    },
                    None if p.held_everything()
                        && let Some(d) = p.promotion.as_ref() =>
                    {
                        Idle::AllHeld {
                            pipeline: p.id,
                            source_mail_host: d.source_mail_host.clone(),
                            held: d.held.clone(),
                        }
                    }
                    None => Idle::Recorded {
                        pipeline: p.kind,
                        at: p.started_at,
                        component: c,
                        verdict: v,
                    },
                });
            }
            return self.continue_pipeline(role, Slot::Failover, p, scope);
        }
        if let Some(t) = self.waiting_until(role) {
            return Next::Idle(Idle::RetryWait { until: t });
        }
        match role {
            Role::Appserver => self.appserver_start(v),
            Role::Proxyserver => self.proxyserver_start(v),
            Role::Consulserver => self.consulserver_start(),
        }
    }
}

/// The roles a step decides for, in order: the configured ones, plus any
/// role with a re-arm or an operator's promotion under way.
pub(super) fn roles_to_decide(s: &State, cfg: &EngineConfig) -> Vec<Role> {
    let mut roles = cfg.roles.clone();
    for (r, rs) in &s.roles {
        let operator = rs
            .failover
            .as_ref()
            .is_some_and(|p| p.origin == Origin::Operator && !p.is_finished());
        if (rs.rearm.is_some() || operator) && !roles.contains(r) {
            roles.push(*r);
        }
    }
    roles
}
