//! The quorum gate in front of an automatic action: take it, hand it over
//! between roles, and what a refusal does to the role that asked.

use super::action::{ActionKind, Origin};
use super::config::EngineConfig;
use super::event::{EventKind, Severity};
use super::machine::{Cx, Next, Planned};
use super::reason::{GateRefusal, WaitOver, Waiting};
use super::record::{LeaderWatch, Pipeline};
use super::time::{UnixMillis, human};
use crate::model::Role;

impl Cx<'_> {
    /// No quorum gate: no automatic action of `role` before `retry_delay`;
    /// `why` is what the status says meanwhile, `then` what habeat does
    /// next (for the event).
    pub(super) fn gate_refused(
        &mut self,
        role: Role,
        key: String,
        refusal: &GateRefusal,
        why: Waiting,
        then: &str,
    ) {
        let now = self.clock;
        let watch = refusal
            .needs_a_leader()
            .then_some(if self.live.leader_in_last_round {
                LeaderWatch::Present
            } else {
                LeaderWatch::Missing
            });
        let rs = self.s.role_mut(role);
        rs.wait(now, self.cfg.retry_delay);
        rs.retry_reason = Some(why.clone());
        rs.retry_leader = watch;
        let then = if refusal.needs_a_leader() {
            format!(
                "{then}, retrying on the first round that sees a Consul leader (at the latest \
                 after {})",
                human(self.cfg.retry_delay)
            )
        } else {
            format!("{then}, retrying after {}", human(self.cfg.retry_delay))
        };
        self.event(
            Severity::Warning,
            EventKind::GateRefused {
                key,
                reason: refusal.to_string(),
            },
            Some(role),
            format!("{why}; {then}"),
        );
    }

    /// Until when `role` waits before its next try, if it does: the
    /// wait's time, unless its cause is seen gone ([`Cx::wait_over`]).
    /// Every wait check goes through here, so `status` never shows a wait
    /// whose reason no longer applies.
    pub(crate) fn waiting_until(&self, role: Role) -> Option<UnixMillis> {
        let rs = self.s.role(role);
        let left = self.clock.wait_left(rs.retry_at?, rs.retry_at_boot);
        if left.is_zero() || self.wait_over(role).is_some() {
            return None;
        }
        Some(self.clock.wall_in(left))
    }

    /// Whether the cause of `role`'s wait is seen gone, and how (pure:
    /// from the state and the configuration). A wait for the quorum gate
    /// ends when the gate is no longer asked for, and one for a Consul
    /// leader on the first round that saw a leader after it began.
    pub(crate) fn wait_over(&self, role: Role) -> Option<WaitOver> {
        let rs = self.s.role(role);
        rs.retry_at?;
        let refusal = rs.retry_reason.as_ref()?.gate_refusal()?;
        if !self.cfg.quorum_gate {
            return Some(WaitOver::GateOff);
        }
        match rs.retry_leader {
            Some(LeaderWatch::Back { at }) if refusal.needs_a_leader() => {
                Some(WaitOver::LeaderBack { at })
            }
            _ => None,
        }
    }

    /// Follow the local Consul leader for every wait caused by its
    /// absence: `leader` is what a round (or raft recovery's leader check)
    /// saw at `now`.
    pub(super) fn watch_leader(&mut self, leader: bool) {
        let now = self.now;
        for rs in self.s.roles.values_mut() {
            rs.retry_leader = match (rs.retry_leader, leader) {
                (None, _) => None,
                (Some(LeaderWatch::Back { at }), _) => Some(LeaderWatch::Back { at }),
                (Some(LeaderWatch::Missing), true) => Some(LeaderWatch::Back { at: now }),
                (Some(_), false) => Some(LeaderWatch::Missing),
                (Some(LeaderWatch::Present), true) => Some(LeaderWatch::Present),
            };
        }
    }

    /// End the waits whose cause is gone (after a round, or with the
    /// configuration of this step), saying so in the journal.
    pub(super) fn end_waits_without_cause(&mut self) {
        let roles: Vec<Role> = self.s.roles.keys().copied().collect();
        for role in roles {
            let Some(over) = self.wait_over(role) else {
                continue;
            };
            let rs = self.s.role_mut(role);
            rs.retry_at = None;
            rs.retry_reason = None;
            rs.retry_leader = None;
            let message = over.to_string();
            self.event(
                Severity::Info,
                EventKind::WaitEnded { over },
                Some(role),
                message,
            );
        }
    }

    pub(super) fn gated(&mut self, role: Role, p: &Pipeline, next: Next) -> Next {
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
        match &self.live.gate_held {
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

    pub(super) fn gate_host(&self, role: Role, p: &Pipeline) -> String {
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
