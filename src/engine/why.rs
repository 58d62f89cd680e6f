//! Why habeat would or would not act now, in words (for `status`, the
//! metrics endpoint's `/status` and sd-notify's STATUS=).

use super::config::EngineConfig;
use super::machine::{Cx, Decision, Scope};
use super::reason::Idle;
use super::record::{Live, State};
use super::time::UnixMillis;
use super::witness;
use crate::model::{Component, Role, Verdict};
use serde::Serialize;

/// One role's situation.
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

/// Explain each role's decision as the engine would take it at `now` from
/// `state` (which is not changed). Uses the very same rules as
/// [`crate::engine::step`], so status cannot disagree with what habeat does.
pub fn why(state: &State, cfg: &EngineConfig, now: UnixMillis) -> Vec<Explanation> {
    let mut out = Vec::new();
    for role in cfg.roles.iter().copied() {
        let c = role.watched_component();
        let cs = state.components.get(&c);
        let verdict = cs.map(|x| x.verdict).unwrap_or(Verdict::Unknown);
        let verdict_reason = cs
            .map(|x| x.reason.clone())
            .unwrap_or_else(|| "not observed yet".into());
        let (would_act, reason, text) = if let Some(a) = &state.in_flight {
            (
                None,
                None,
                format!(
                    "in progress (action {}): {} (if habeat is not running, the next run \
                     resumes it)",
                    a.id,
                    a.kind.describe()
                ),
            )
        } else {
            let mut cx = Cx {
                s: state.clone(),
                live: Live::default(),
                events: Vec::new(),
                now,
                cfg,
                refusal: None,
            };
            match cx.role_next(role, Scope::Round) {
                Decision::Act(p) => {
                    let d = p.kind.describe();
                    (Some(d.clone()), None, format!("would act now: {d}"))
                }
                Decision::Idle(r) => (None, Some(r.clone()), r.to_string()),
            }
        };
        let kind = match (&would_act, &reason) {
            (_, Some(r)) => r.kind(),
            (Some(_), None) => "would_act".to_owned(),
            (None, None) => "in_progress".to_owned(),
        };
        out.push(Explanation {
            role,
            component: c,
            verdict,
            verdict_reason,
            would_act,
            reason,
            kind,
            text,
        });
    }
    out
}

/// Whether another probe round could change the decision soon: a watched
/// witness is part-way through its fall/rise streak, or the consulserver
/// role is counting its leaderless grace. `check` keeps probing (every
/// `interval`, bounded) while this is true, so one run reaches a confirmed
/// verdict.
pub fn wants_more_rounds(state: &State, cfg: &EngineConfig, now: UnixMillis) -> bool {
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
            && now.since(since) < cfg.recovery_grace
        {
            return true;
        }
    }
    false
}
