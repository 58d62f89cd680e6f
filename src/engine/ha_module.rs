//! The appserver role in the DC named `primary`: it never promotes; with
//! `disable_ha_module` it stops the HA module once when the peer mailstore
//! is Down, and the re-arm starts it again.

use super::action::LockKind;
use super::kind::PipelineKind;
use super::machine::{Cx, Next, Scope, Slot};
use super::reason::Idle;
use super::record::Step;
use crate::model::Role;

impl Cx<'_> {
    /// The peer mailstore is Down and this node is in the primary DC.
    pub(super) fn ha_module_start(&mut self) -> Next {
        if !self.cfg.disable_ha_module {
            return Next::Idle(Idle::PrimaryNeverPromotes);
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
        self.s.role_mut(Role::Appserver).failover = Some(p.clone());
        self.continue_pipeline(Role::Appserver, Slot::Failover, p, Scope::Round)
    }
}
