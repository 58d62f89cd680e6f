//! The legacy lock files as inputs: a lock file found without a record
//! (left by the Python habeat) is adopted as a finished failover, and one
//! removed by hand is taken as `habeat rearm` for its role.

use super::action::{LockKind, Origin};
use super::event::{EventKind, Severity};
use super::kind::PipelineKind;
use super::machine::Cx;
use super::record::{LastPromotion, LockFileSeen, Pipeline, Step, StepState, StepStatus};
use crate::model::Role;

impl Cx<'_> {
    pub(super) fn on_lock_files(&mut self, seen: &[LockFileSeen]) {
        for l in seen {
            let rs = self.s.role(l.role);
            if rs.rearm.is_some() {
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

    pub(super) fn adopt(&mut self, l: &LockFileSeen) {
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
                    // The lock file's own time is a wall time; one without
                    // a time was found now, in this boot.
                    at_boot: if l.written_at.is_some() {
                        None
                    } else {
                        self.clock.boot
                    },
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
}
