//! Re-arming: the pipeline that undoes a recorded failover (HA module
//! started again, lock files removed, recovery hooks), automatically when
//! the peer is Up again or by the operator's `habeat rearm`.

use super::action::{CommandPurpose, LockKind, Origin};
use super::event::{EventKind, Severity};
use super::kind::PipelineKind;
use super::machine::Cx;
use super::pipeline::commands;
use super::record::{Pipeline, Step, StepStatus};
use crate::model::Role;

impl Cx<'_> {
    pub(super) fn rearm_by_operator(&mut self) {
        let had_hold = self.s.safe_hold.take().is_some();
        let mut any = had_hold;
        // The operator has handled the recovery (and the returning
        // servers): no more warning about them.
        if self.s.raft.recovered_at.take().is_some() {
            any = true;
        }
        self.s.raft.peer_returned_at = None;
        for role in self.s.roles.keys().copied().collect::<Vec<_>>() {
            let rs = self.s.role(role);
            {
                let rs = self.s.role_mut(role);
                rs.retry_at = None;
                rs.retry_reason = None;
                rs.retry_leader = None;
            }
            self.s.role_mut(role).last_decision = None;
            if let Some(mut rec) = rs.rearm.clone() {
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
                        EventKind::Decision { reason: None },
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
                    self.s.role_mut(role).rearm = Some(rec);
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
                        EventKind::Decision { reason: None },
                        Some(role),
                        format!(
                            "rearm cancels the unfinished steps of pipeline {}: {}",
                            p.id,
                            left.join(", ")
                        ),
                    );
                }
                self.start_rearm(role, &p, Origin::Operator);
            }
        }
        let msg = if any {
            "re-armed by the operator: failover locks cleared, automatic action possible again"
        } else {
            "rearm: nothing was locked"
        };
        self.event(Severity::Info, EventKind::Rearmed, None, msg.into());
    }

    /// `habeat switchover` brought the accounts home to `mail_host`: every
    /// recorded failover away from it (the appserver's promotion of that
    /// host, and the proxy switch) is re-armed, with the proxy switch's
    /// `deactivate` commands, as when the peer is seen back.
    pub(super) fn fail_back(&mut self, mail_host: &str) {
        let mut any = false;
        for role in self.s.roles.keys().copied().collect::<Vec<_>>() {
            let Some(p) = self.s.role(role).failover else {
                continue;
            };
            let away_from_it = match &p.promotion {
                Some(d) => d.source_mail_host.eq_ignore_ascii_case(mail_host),
                None => role == Role::Proxyserver,
            };
            if !away_from_it {
                continue;
            }
            any = true;
            let deactivate = self.cfg.proxy_enable_deactivate
                && (role == Role::Proxyserver
                    || p.step_started(|s| {
                        matches!(
                            s,
                            Step::Command {
                                action: super::action::ActionKind::RunCommand {
                                    purpose: CommandPurpose::ProxyActivate,
                                    ..
                                }
                            }
                        )
                    }));
            self.rearm_with(role, &p, Origin::Operator, deactivate);
        }
        let msg = if any {
            format!(
                "fail-back: the accounts are home on {mail_host}; its failover is re-armed,                  automatic action possible again"
            )
        } else {
            format!("fail-back to {mail_host}: no failover away from it was recorded")
        };
        self.event(Severity::Info, EventKind::Rearmed, None, msg);
    }

    /// Start re-arming `role`, whose failover record is `p`: undo what it
    /// did that must be undone, remove its locks, run the recovery hooks
    /// (automatic re-arm only). The failover record is cleared now; the
    /// re-arm pipeline is recorded in its place.
    pub(super) fn start_rearm(&mut self, role: Role, p: &Pipeline, origin: Origin) {
        let deactivate = origin == Origin::Automatic
            && role == Role::Proxyserver
            && self.cfg.proxy_enable_deactivate;
        self.rearm_with(role, p, origin, deactivate);
    }

    /// [`Cx::start_rearm`], the proxy switch's `deactivate` commands run
    /// when `deactivate`.
    fn rearm_with(&mut self, role: Role, p: &Pipeline, origin: Origin, deactivate: bool) {
        let mut steps = Vec::new();
        if p.step_started(|s| matches!(s, Step::StopHaModule)) {
            steps.push(Step::StartHaModule);
        }
        if deactivate {
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
        r.rearm = Some(rec);
        r.retry_at = None;
        r.retry_reason = None;
        r.retry_leader = None;
        self.event(
            Severity::Info,
            EventKind::Decision { reason: None },
            Some(role),
            format!("re-arming {role} (pipeline {id}): {reason}"),
        );
    }
}

/// True when `state` records a failover that moved accounts away from
/// `mail_host` (the promotion a fail-back to it re-arms).
pub fn promoted_from(state: &super::State, mail_host: &str) -> bool {
    state.roles.values().any(|r| {
        r.failover.as_ref().is_some_and(|p| {
            p.promotion
                .as_ref()
                .is_some_and(|d| d.source_mail_host.eq_ignore_ascii_case(mail_host))
        })
    })
}
