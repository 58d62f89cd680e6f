//! The proxyserver role's failover: switch proxy traffic to this DC when
//! the peer proxy is Down.

use super::action::{CommandPurpose, LockKind};
use super::kind::PipelineKind;
use super::machine::{Cx, Next, Scope, Slot};
use super::pipeline::{commands, fence_step};
use super::reason::Idle;
use super::record::Step;
use crate::model::Component;
use crate::model::{Role, Verdict};

impl Cx<'_> {
    pub(super) fn proxyserver_start(&mut self, v: Verdict) -> Next {
        if v != Verdict::Down {
            return Next::Idle(Idle::PeerNotDown {
                component: Component::Proxy,
                verdict: v,
            });
        }
        let mut steps = Vec::new();
        if self.cfg.proxy_enable_activate && !self.cfg.proxy_activate.is_empty() {
            // fence-before-promotion: the peer proxy confirmed OFF before
            // the first proxy switch command (gated like it).
            steps.extend(fence_step(self.cfg, Component::Proxy));
        }
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
}
