//! The promotion pipeline of the appserver role: from a peer mailstore
//! judged Down to its accounts promoted here (the listing, the intent, the
//! promotion step with its guard against a promotion still running on the
//! server, and the follow-up steps), and the operator's `habeat promote`.

use super::action::{ActionKind, CommandPurpose, LockKind, Origin, PromoteTarget, StepRef};
use super::check::PreStepCheck;
use super::config::EngineConfig;
use super::event::{EventKind, Severity};
use super::kind::PipelineKind;
use super::machine::{Cx, Next, Planned};
use super::pipeline::{commands, fence_step};
use super::reason::{GiveUp, Idle, OperatorRefusal, hold_command};
use super::record::{Pipeline, PromotionDetails, Step};
use crate::model::{AtRiskPolicy, Component, Observation, Role, Verdict, Vote, WitnessId};
use crate::replica::Risk;
use std::collections::{BTreeSet, HashSet};

impl Cx<'_> {
    pub(super) fn appserver_start(&mut self, v: Verdict) -> Next {
        let _role = Role::Appserver;
        if v != Verdict::Down {
            return Next::Idle(Idle::PeerNotDown {
                component: Component::Appserver,
                verdict: v,
            });
        }
        if self.cfg.is_primary {
            return self.ha_module_start();
        }
        if let Some(last) = &self.s.last_promotion {
            let left = self
                .clock
                .window_left(last.at, last.at_boot, self.cfg.promotion_block);
            if !left.is_zero() {
                return Next::Idle(Idle::PromotionBlocked {
                    source_mail_host: last.source_mail_host.clone(),
                    last: last.at,
                    until: self.clock.wall_in(left),
                    block: self.cfg.promotion_block,
                });
            }
        }
        let Some(host) = self.cfg.source_mail_host.clone() else {
            return Next::Idle(Idle::NoSourceHost {
                dc: self.cfg.dc_check.clone(),
            });
        };
        Next::Act(Planned::new(
            ActionKind::ListAccounts {
                source_mail_host: host,
            },
            Origin::Automatic,
            None,
        ))
    }

    pub(super) fn on_listed(
        &mut self,
        role: Role,
        host: &str,
        accounts: &[String],
        at_risk: &[Risk],
    ) {
        let mut list: Vec<String> = accounts.to_vec();
        list.sort();
        list.dedup();
        let rs = self.s.role(role);
        match rs.failover {
            Some(p) if p.kind == PipelineKind::Promotion && !p.is_finished() => {
                self.live.fresh_listing = Some(list);
            }
            Some(_) => {}
            None => {
                if list.is_empty() {
                    self.s.role_mut(role).wait(self.clock, self.cfg.retry_delay);
                    self.note_decision(
                        role,
                        Idle::NoAccounts {
                            host: host.to_owned(),
                        },
                    );
                    return;
                }
                let id = self.new_pipeline_id();
                // `replicas.at_risk: hold`: the accounts at risk stay on
                // the source for the operator; the others are promoted by
                // name (`promoteAccounts input_file`).
                let held: Vec<String> = if self.cfg.at_risk == AtRiskPolicy::Hold
                    && !at_risk.is_empty()
                {
                    let mut h: Vec<String> = at_risk.iter().map(|r| r.account.clone()).collect();
                    h.sort();
                    h.dedup();
                    h
                } else {
                    Vec::new()
                };
                let (target, moved) = if held.is_empty() {
                    (PromoteTarget::SourceMailHost(host.to_owned()), list.clone())
                } else {
                    let keep: HashSet<&str> = held.iter().map(String::as_str).collect();
                    let others: Vec<String> = list
                        .iter()
                        .filter(|a| !keep.contains(a.as_str()))
                        .cloned()
                        .collect();
                    (PromoteTarget::Accounts(others.clone()), others)
                };
                // The hold left nothing to promote: no step at all. Not
                // the fence (nothing is promoted away from the peer), not
                // the gate, and none of the follow-ups: lock files that
                // say "promoted", a proxy switch drawing the users here
                // and `after_promotion` hooks would all announce a
                // failover that did not happen, and send users to a DC
                // that has none of their mailboxes. The record (finished
                // at once) keeps the role from listing and holding again
                // every round; the operator's `habeat promote --accounts`
                // replaces it and runs its own follow-ups.
                let all_held = !held.is_empty() && moved.is_empty();
                let steps: Vec<Step> = if all_held {
                    Vec::new()
                } else {
                    // fence-before-promotion: the peer node confirmed OFF
                    // after the gate (the fence action is gated) and
                    // before promoteAccounts.
                    let mut steps: Vec<Step> = fence_step(self.cfg, Component::Appserver)
                        .into_iter()
                        .collect();
                    steps.push(Step::PromoteAccounts);
                    steps.extend(self.promotion_follow_up(true));
                    steps
                };
                let p = Pipeline {
                    id,
                    kind: PipelineKind::Promotion,
                    origin: Origin::Automatic,
                    started_at: self.now,
                    reason: format!("peer appserver {host} is Down"),
                    promotion: Some(PromotionDetails {
                        source_mail_host: host.to_owned(),
                        target,
                        threads: self.cfg.threads,
                        accounts: moved.clone(),
                        at_risk: at_risk.to_vec(),
                        held: held.clone(),
                        forced: false,
                    }),
                    steps: self.steps(steps),
                    stalled: None,
                    finished_at: all_held.then_some(self.now),
                };
                self.s.role_mut(role).failover = Some(p);
                self.event(
                    Severity::Warning,
                    EventKind::PromotionIntent {
                        source_mail_host: host.to_owned(),
                        accounts: moved.clone(),
                        at_risk: at_risk.to_vec(),
                        held: held.clone(),
                    },
                    Some(role),
                    format!(
                        "recorded the intent to promote {} account(s) of {host} (pipeline {id}){}",
                        moved.len(),
                        at_risk_sentence(at_risk, &held)
                    ),
                );
                if all_held {
                    self.event(
                        Severity::Error,
                        EventKind::PipelineFinished { pipeline: id },
                        Some(role),
                        format!(
                            "pipeline {id} ended: {}",
                            Idle::AllHeld {
                                pipeline: id,
                                source_mail_host: host.to_owned(),
                                held,
                            }
                        ),
                    );
                    return;
                }
                self.live.fresh_listing = Some(list);
            }
        }
    }

    pub(super) fn manual_promotion(
        &mut self,
        target: &PromoteTarget,
        accounts: &[String],
        threads: Option<u32>,
        force: bool,
        evidence: &[Observation],
        follow_ups: bool,
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
        let seen = evidence
            .iter()
            .map(|o| (&o.witness, o.vote, o.reason.as_str()));
        if !force && let Some(why) = source_seen_up(&host, seen) {
            self.event(
                Severity::Error,
                EventKind::Refused,
                Some(role),
                why.to_string(),
            );
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
                EventKind::Decision { reason: None },
                Some(role),
                format!(
                    "the manual promotion replaces the recorded {:?} pipeline {}",
                    old.kind, old.id
                ),
            );
        }
        let id = self.new_pipeline_id();
        // No fence step: the peer's fence device may be in the datacenter
        // that was lost, and the operator has said the source is gone.
        // The proxy switch and the hooks do run (unless --no-follow-ups):
        // the operator reaching for `promote` is failing over by hand.
        let mut steps = vec![Step::PromoteAccounts];
        steps.extend(self.promotion_follow_up(follow_ups));
        let skipped: Vec<String> = if follow_ups {
            Vec::new()
        } else {
            follow_up_commands(self.cfg)
                .iter()
                .map(Step::name)
                .collect()
        };
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
                at_risk: Vec::new(),
                held: Vec::new(),
                forced: force,
            }),
            steps: self.steps(steps),
            stalled: None,
            finished_at: None,
        };
        self.live.operator_judged = Some(id);
        let r = self.s.role_mut(role);
        r.failover = Some(p);
        r.retry_at = None;
        r.retry_reason = None;
        r.retry_leader = None;
        self.event(
            Severity::Warning,
            EventKind::PromotionIntent {
                source_mail_host: host.clone(),
                accounts: list,
                at_risk: Vec::new(),
                held: Vec::new(),
            },
            Some(role),
            format!(
                "recorded a manual promotion from {host} (pipeline {id}){}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped (--no-follow-ups): {}", skipped.join("; "))
                }
            ),
        );
    }

    /// The promotion step: with a fresh listing of the source, promote what
    /// is still there; nothing left means the step is done. (An automatic
    /// promotion, first run or resumed, needs the peer Down right now:
    /// [`Self::verdict_forbids`], before any step.)
    pub(super) fn promote_step(&mut self, role: Role, p: Pipeline, idx: usize) -> Next {
        let Some(d) = p.promotion.clone() else {
            // Cannot happen for a promotion pipeline; stop rather than guess.
            self.give_up(
                role,
                StepRef {
                    pipeline: p.id,
                    index: idx,
                },
                GiveUp::NoSource,
            );
            return Next::Again;
        };
        let automatic = p.origin == Origin::Automatic;
        let sr = StepRef {
            pipeline: p.id,
            index: idx,
        };
        if let Some(next) = self.operator_judged_again(role, &p, &d, sr) {
            return next;
        }
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
        if p.steps[idx].attempts >= 1 && !self.live.no_promotion_running {
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
            let Some(list) = self.live.fresh_listing.clone() else {
                return Next::Act(Planned::new(
                    ActionKind::ListAccounts {
                        source_mail_host: d.source_mail_host.clone(),
                    },
                    p.origin,
                    None,
                ));
            };
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
                self.live.fresh_listing = None;
                self.event(
                    Severity::Info,
                    EventKind::Decision { reason: None },
                    Some(role),
                    format!(
                        "no account of pipeline {} is left on {}: the promotion step is done",
                        p.id, d.source_mail_host
                    ),
                );
                self.step_done(role, sr);
                return Next::Again;
            }
            // Remember every account that is being promoted. Sets, not
            // `Vec::contains` in a loop: a mailstore has up to 100k
            // accounts, and a quadratic pass over them took 19 s.
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
        // An automatic promotion by name is `replicas.at_risk: hold`
        // promoting the accounts not at risk: through `input_file`,
        // whatever the length of the list.
        let input_file =
            p.origin == Origin::Automatic && matches!(remaining, PromoteTarget::Accounts(_));
        let next = Next::Act(Planned::new(
            ActionKind::PromoteAccounts {
                source_mail_host: d.source_mail_host.clone(),
                target: remaining,
                threads: d.threads,
                input_file,
            },
            p.origin,
            Some(sr),
        ));
        self.gated(role, &p, next)
    }

    /// The steps after the promotion: the lock files, the cache flush and
    /// the replica restart, then (`commands_too`) [`follow_up_commands`].
    pub(super) fn promotion_follow_up(&self, commands_too: bool) -> Vec<Step> {
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
        if commands_too {
            steps.extend(follow_up_commands(self.cfg));
        }
        steps
    }
}

impl Cx<'_> {
    /// An operator's promotion without `--force` run again after the
    /// command that judged it (resumed by the daemon after a failure or a
    /// crash, or by the next command): judged again as the command was,
    /// on the witnesses of the latest round (invariant 1), since the
    /// source may be back by then. Refused, it ends, stopped for the
    /// operator (the stall names the refusal and the commands). `None`: go on
    /// (judged by this process's command, forced, or no witness sees the
    /// source Up); the lease check it then carries is
    /// [`Self::operator_step_checks`].
    fn operator_judged_again(
        &mut self,
        role: Role,
        p: &Pipeline,
        d: &PromotionDetails,
        sr: StepRef,
    ) -> Option<Next> {
        if p.origin != Origin::Operator || d.forced || self.live.operator_judged == Some(p.id) {
            return None;
        }
        if !self.fresh() {
            return Some(Next::Idle(Idle::NotObserved {
                last_round: self.s.last_round_at,
            }));
        }
        // A witness whose last observation was Up sees the source Up, as
        // one that still votes Up (not yet `fall` Down observations) does.
        let seen = self.s.witnesses.iter().map(|w| {
            let vote = if w.last_raw == Vote::Up {
                Vote::Up
            } else {
                w.vote
            };
            (&w.witness, vote, w.reason.as_str())
        });
        let why = source_seen_up(&d.source_mail_host, seen)?;
        self.event(
            Severity::Error,
            EventKind::Refused,
            Some(role),
            format!(
                "the manual promotion from {} (pipeline {}), run again after its command, is {why}",
                d.source_mail_host, p.id
            ),
        );
        // Stopped, not dropped: the record it replaced (an automatic
        // promotion done, not re-armed) or an attempt of its own may have
        // moved accounts, and without a record a later round could
        // promote again before any re-arm (invariant 3).
        self.give_up(role, sr, GiveUp::Refused { refusal: why });
        Some(Next::Again)
    }

    /// The checks an operator's promotion step carries beyond its
    /// origin's (none, [`PreStepCheck::for_action`]): without `--force`,
    /// the automatic path's `lease-before-takeover`, at every attempt. The
    /// command's own judgement sees only the witnesses, and they can all
    /// see the source Down while its primary still holds its serving lease
    /// (this side cut off from it, the primary still reaching the Consul
    /// majority): the operator's command promised no split (invariant 14).
    pub(super) fn operator_step_checks(
        &mut self,
        role: Role,
        planned: &Planned,
    ) -> Vec<PreStepCheck> {
        let (
            Origin::Operator,
            Some(sr),
            ActionKind::PromoteAccounts {
                source_mail_host, ..
            },
        ) = (planned.origin, planned.step, &planned.kind)
        else {
            return Vec::new();
        };
        // The command's judgement covers its first attempt only.
        self.live.operator_judged.take();
        let forced = self
            .pipeline_mut(role, sr.pipeline)
            .and_then(|(p, _)| p.promotion.as_ref())
            .is_some_and(|d| d.forced);
        if forced {
            return Vec::new();
        }
        vec![PreStepCheck::PeerLeaseTakenOver {
            host: source_mail_host.clone(),
        }]
    }
}

/// The judgement of `habeat promote` without `--force`: refused while any
/// witness sees the source appserver `host` Up (invariant 1). `seen`: each
/// witness with what it sees and why, from the command's own probe round
/// or, for a later run, from the latest round.
fn source_seen_up<'a>(
    host: &str,
    seen: impl IntoIterator<Item = (&'a WitnessId, Vote, &'a str)>,
) -> Option<OperatorRefusal> {
    let (witness, _, detail) = seen
        .into_iter()
        .find(|(w, vote, _)| w.component == Component::Appserver && *vote == Vote::Up)?;
    Some(OperatorRefusal::SourceAppserverUp {
        witness: witness.to_string(),
        detail: detail.to_owned(),
        host: host.to_owned(),
    })
}

/// The operator's commands a promotion ends with: this DC's proxy switch
/// `activate` (with `local.proxy_enable_activate`), then
/// `hooks.after_promotion`. `habeat promote --no-follow-ups` skips them
/// and names them.
pub fn follow_up_commands(cfg: &EngineConfig) -> Vec<Step> {
    let mut steps = Vec::new();
    if cfg.proxy_enable_activate {
        steps.extend(commands(CommandPurpose::ProxyActivate, &cfg.proxy_activate));
    }
    steps.extend(commands(
        CommandPurpose::AfterPromotion,
        &cfg.after_promotion,
    ));
    steps
}

/// What the promotion intent's journal line adds about the accounts at
/// risk: each named with why, and with `hold` the command that moves the
/// ones left out.
pub(crate) fn at_risk_sentence(at_risk: &[Risk], held: &[String]) -> String {
    if at_risk.is_empty() {
        return "; no account's replica was at risk".into();
    }
    let named: Vec<String> = at_risk
        .iter()
        .map(|r| format!("{}: {r}", r.account))
        .collect();
    let mut s = format!(
        "; {} account(s) at risk: {}",
        at_risk.len(),
        named.join("; ")
    );
    if !held.is_empty() {
        s.push_str(&format!(
            ". Held back (replicas.at_risk: hold); to promote them: {}",
            hold_command(held)
        ));
    }
    s
}
