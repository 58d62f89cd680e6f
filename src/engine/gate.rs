//! The quorum gate in front of an automatic action: take it, hand it over
//! between roles, and what a refusal does to the role that asked.

use super::action::{ActionKind, Origin};
use super::config::EngineConfig;
use super::event::{EventKind, Severity};
use super::machine::{Cx, Next, Planned};
use super::reason::{GateRefusal, Waiting};
use super::record::Pipeline;
use super::time::human;
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
        let rs = self.s.role_mut(role);
        rs.retry_at = Some(self.now.plus(self.cfg.retry_delay));
        rs.retry_reason = Some(why.clone());
        self.event(
            Severity::Warning,
            EventKind::GateRefused {
                key,
                reason: refusal.to_string(),
            },
            Some(role),
            format!(
                "{why}; {then}, retrying after {}",
                human(self.cfg.retry_delay)
            ),
        );
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
