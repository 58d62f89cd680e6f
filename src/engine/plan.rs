//! What the engine would do now, and why: the pure query beside
//! [`crate::engine::step`].
//!
//! `status`, `/status`, the metrics and the dry run all ask [`plan`] (or [`plan_round`]) instead of running a step on a copy
//! of the state and throwing its records away. Both `plan` and `step` take
//! each role's decision from the one place that makes it,
//! `Cx::role_next` (`machine.rs`), over the same list of roles
//! (`Cx::roles_to_decide`), so what `status` says habeat would do is what
//! the next step does.
//!
//! A decision may take several passes over a role's record (drop an intent
//! the peer's return made moot, start a re-arm, then decide again), and
//! each pass reads what the previous one changed: the query makes them on
//! a scratch copy of the state, in query mode, which records no journal
//! event and hands out no action. Nothing of it outlives the call.

use super::action::{ActionId, ActionKind};
use super::config::EngineConfig;
use super::machine::{Cx, Decision, Scope, roles_to_decide};
use super::reason::Idle;
use super::record::{Live, State};
use super::time::Now;
use super::witness;
use crate::model::{Component, Role, Round, Verdict};
use serde::Serialize;

/// What the engine would do next for one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "next", rename_all = "snake_case")]
pub enum Next {
    /// An action was handed out and has not reported back (if habeat is
    /// not running, the next run resumes it).
    InProgress { action: ActionId, kind: ActionKind },
    /// It would run this action now.
    Act { kind: ActionKind },
    /// It would do nothing now, for this reason.
    Idle(Idle),
}

/// One role's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePlan {
    /// The role planned for.
    pub role: Role,
    /// The peer component this role acts on, and its settled verdict.
    pub component: Component,
    pub verdict: Verdict,
    /// Which witnesses said what.
    pub verdict_reason: String,
    /// What it would do next.
    pub next: Next,
}

impl RolePlan {
    /// A stable name for the situation: `in_progress`, `would_act`, or the
    /// idle reason's kind.
    pub fn kind(&self) -> String {
        match &self.next {
            Next::InProgress { .. } => "in_progress".to_owned(),
            Next::Act { .. } => "would_act".to_owned(),
            Next::Idle(r) => r.kind(),
        }
    }

    /// The sentence for the operator.
    pub fn text(&self) -> String {
        match &self.next {
            Next::InProgress { action, kind } => format!(
                "in progress (action {action}): {} (if habeat is not running, the next run \
                 resumes it)",
                kind.describe()
            ),
            Next::Act { kind } => act_text(kind),
            Next::Idle(r) => r.to_string(),
        }
    }

    /// The peer component is Down and the role does nothing about it now
    /// (for a reason other than having acted already): what an alert on
    /// "habeat should act but is held back" wants to know.
    pub fn held_back(&self) -> bool {
        self.verdict == Verdict::Down && matches!(&self.next, Next::Idle(r) if r.holds_back())
    }

    /// The shape `status --json` and `/status` give under `why`.
    pub fn explain(&self) -> Explanation {
        let (would_act, reason) = match &self.next {
            Next::Act { kind } => (Some(kind.describe()), None),
            Next::Idle(r) => (None, Some(r.clone())),
            Next::InProgress { .. } => (None, None),
        };
        Explanation {
            role: self.role,
            component: self.component,
            verdict: self.verdict,
            verdict_reason: self.verdict_reason.clone(),
            would_act,
            reason,
            kind: self.kind(),
            text: self.text(),
        }
    }
}

/// What acting now means. The first steps of a promotion only read (the
/// account listing, the check for an earlier promotion still running):
/// named alone they hide that a promotion is what starts.
fn act_text(kind: &ActionKind) -> String {
    match kind {
        ActionKind::ListAccounts { source_mail_host }
        | ActionKind::ListOperations { source_mail_host } => format!(
            "would act now: promote the accounts of {source_mail_host} to this datacenter, \
             starting with: {}",
            kind.describe()
        ),
        _ => format!("would act now: {}", kind.describe()),
    }
}

/// One role's situation as `status --json` and `/status` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The role explained.
    pub role: Role,
    /// The peer component this role acts on, and its verdict.
    pub component: Component,
    pub verdict: Verdict,
    /// Which witnesses said what.
    pub verdict_reason: String,
    /// The action habeat would take next, if it would act now.
    pub would_act: Option<String>,
    /// Why it would not act, as data (`kind` names the variant).
    pub reason: Option<Idle>,
    /// A stable name for the situation: `in_progress`, `would_act`, or the
    /// reason's kind.
    pub kind: String,
    /// The sentence for the operator.
    pub text: String,
}

/// What the engine would do now, role by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub roles: Vec<RolePlan>,
}

impl Plan {
    /// The plan of one role, if it is planned for.
    pub fn role(&self, role: Role) -> Option<&RolePlan> {
        self.roles.iter().find(|r| r.role == role)
    }

    /// The `why` array of `status --json`.
    pub fn explain(&self) -> Vec<Explanation> {
        self.roles.iter().map(RolePlan::explain).collect()
    }
}

/// What each role would do at `now` from the saved `state`, and why, with
/// no new round: what `status` shows. Pure; `state` is not changed.
pub fn plan(state: &State, cfg: &EngineConfig, now: impl Into<Now>) -> Plan {
    plan_live(state, &Live::default(), cfg, now)
}

/// [`plan`] by the process that holds `live` beside `state` (the daemon:
/// the gate it holds, the listing it has), so that what it says it would
/// do next is the step it would take, not a fresh process's first one.
pub fn plan_live(state: &State, live: &Live, cfg: &EngineConfig, now: impl Into<Now>) -> Plan {
    // An action in flight: no role decides anything until its outcome, so
    // there is no decision to make and no scratch copy to make it on.
    if let Some(a) = &state.in_flight {
        let roles = roles_to_decide(state, cfg)
            .into_iter()
            .map(|role| {
                role_plan(
                    state,
                    role,
                    Next::InProgress {
                        action: a.id,
                        kind: a.kind.clone(),
                    },
                )
            })
            .collect();
        return Plan { roles };
    }
    let mut cx = Cx::query(state, live, cfg, now.into());
    cx.plan_roles()
}

/// A role's plan: its peer component's verdict beside `next`.
fn role_plan(state: &State, role: Role, next: Next) -> RolePlan {
    let component = role.watched_component();
    let cs = state.components.get(&component);
    RolePlan {
        role,
        component,
        verdict: cs.map(|x| x.verdict).unwrap_or(Verdict::Unknown),
        verdict_reason: cs
            .map(|x| x.reason.clone())
            .unwrap_or_else(|| "not observed yet".into()),
        next,
    }
}

/// What the step for this `round` would decide, and why, before it does
/// anything: what the dry run shows beside the steps it simulates. Pure.
pub fn plan_round(
    state: &State,
    live: &Live,
    round: &Round,
    now: impl Into<Now>,
    cfg: &EngineConfig,
) -> Plan {
    let mut cx = Cx::query(state, live, cfg, now.into());
    cx.resume_in_flight();
    cx.on_round(round);
    cx.plan_roles()
}

impl Cx<'_> {
    /// Each role's decision, as a round's step would take it: the same
    /// roles, the same waits ended first, the same rules.
    fn plan_roles(&mut self) -> Plan {
        self.end_waits_without_cause();
        let roles = self.roles_to_decide();
        let mut out = Vec::with_capacity(roles.len());
        for role in roles {
            let next = match &self.s.in_flight {
                Some(a) => Next::InProgress {
                    action: a.id,
                    kind: a.kind.clone(),
                },
                None => match self.role_next(role, Scope::Round) {
                    Decision::Act(p) => Next::Act { kind: p.kind },
                    Decision::Idle(r) => Next::Idle(r),
                },
            };
            out.push(role_plan(&self.s, role, next));
        }
        Plan { roles: out }
    }
}

/// Whether another probe round could change the decision soon: a watched
/// witness is part-way through its fall/rise streak, or the consulserver
/// role is counting its leaderless grace. `check` keeps probing (every
/// `interval`, bounded) while this is true, so one run reaches a confirmed
/// verdict.
pub fn wants_more_rounds(state: &State, cfg: &EngineConfig, now: impl Into<Now>) -> bool {
    let now = now.into();
    for role in cfg.roles.iter().copied() {
        let c = role.watched_component();
        if state
            .witnesses
            .iter()
            .any(|w| w.witness.component == c && witness::unsettled(w))
        {
            return true;
        }
        if role == Role::Consulserver
            && state.role(role).failover.is_none()
            && state.verdict(Component::Consul) == Verdict::Down
            && let Some(since) = state.raft.leaderless_since
            && !now
                .window_left(since, state.raft.leaderless_since_boot, cfg.recovery_grace)
                .is_zero()
        {
            return true;
        }
    }
    false
}
