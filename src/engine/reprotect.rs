//! Re-protection (SPEC §4 "After a failover"): giving the accounts that
//! live on a mailstore without a usable replica a new one, through
//! `setAccountDestination`, in batches recorded as the steps of one
//! pipeline (so a kill -9 resumes at the first unfinished batch).
//!
//! The rule it keeps is `no-seed-over-a-diverged-copy` (15): an account
//! that was at risk when it was promoted is *diverged*: its old mailstore
//! may hold the only copy of what its replica had not received, and a
//! replica seeded onto that mailstore overwrites it. Such an account is
//! left out of every re-protection onto its old mailstore until the
//! operator names it (`habeat reprotect --discard-diverged`), which is
//! journaled and ends its divergence.

use super::action::{ActionKind, Origin, StepRef};
use super::event::{EventKind, Severity};
use super::kind::PipelineKind;
use super::machine::{Cx, Planned, Scope};
use super::protection::{AfterPromotion, DEFAULT_PRIORITY, Discard, Diverged, ReprotectRequest};
use super::reason::OperatorRefusal;
use super::record::{Pipeline, Protection, Step};
use crate::model::{Component, ReprotectPolicy, Role, Verdict, Vote};
use std::collections::BTreeSet;

/// A re-protection cut into batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub batches: Vec<Vec<String>>,
    /// Diverged onto the destination and not named: left out.
    pub left_out: Vec<Diverged>,
    /// Diverged onto the destination and named by the operator: included,
    /// their divergence resolved.
    pub discarded: Vec<Diverged>,
}

/// Cut `accounts` into batches for `destination`, leaving out each
/// account diverged onto it that `discard` does not name
/// (`no-seed-over-a-diverged-copy`).
pub fn split(
    protection: &Protection,
    destination: &str,
    accounts: &[String],
    discard: &Discard,
    batch: usize,
) -> Split {
    let mut list: Vec<String> = accounts.to_vec();
    list.sort();
    list.dedup();
    let mut out = Split::default();
    let mut kept = Vec::new();
    for a in list {
        match protection.diverged_onto(&a, destination) {
            Some(d) if discard.names(&a) => {
                out.discarded.push(d.clone());
                kept.push(a);
            }
            Some(d) => out.left_out.push(d.clone()),
            None => kept.push(a),
        }
    }
    out.batches = kept.chunks(batch.max(1)).map(<[String]>::to_vec).collect();
    out
}

/// The command that includes the accounts left out, for the operator.
pub fn include_command(left_out: &[Diverged], destination: &str) -> String {
    let names: Vec<&str> = left_out.iter().map(|d| d.account.as_str()).collect();
    format!(
        "habeat reprotect --to {destination} --accounts {} --discard-diverged {}",
        names.join(","),
        names.join(",")
    )
}

/// One line naming the accounts left out, their gap and the command.
pub fn left_out_sentence(left_out: &[Diverged], destination: &str) -> String {
    let each: Vec<String> = left_out
        .iter()
        .map(|d| format!("{} ({}, promoted from {})", d.account, d.gap(), d.mail_host))
        .collect();
    format!(
        "left out of the re-protection onto {destination}, diverged: {}; their old mailstore \
         may hold the only copy of mail their replica never received, and a new replica there \
         would overwrite it. Recover what you need from {destination} first, then: {}",
        each.join("; "),
        include_command(left_out, destination)
    )
}

impl Cx<'_> {
    /// `habeat reprotect`: continue an unfinished run, or record a new one
    /// (refused while the destination's appserver is not seen Up).
    pub(super) fn reprotect_by_operator(&mut self, req: &ReprotectRequest) {
        let role = Role::Appserver;
        if let Some(evidence) = &req.evidence
            && !evidence
                .iter()
                .any(|o| o.witness.component == Component::Appserver && o.vote == Vote::Up)
        {
            let detail = evidence
                .iter()
                .filter(|o| o.witness.component == Component::Appserver)
                .map(|o| format!("{} {:?} ({})", o.witness, o.vote, o.reason))
                .collect::<Vec<_>>()
                .join("; ");
            let why = OperatorRefusal::DestinationNotUp {
                host: req.destination.clone(),
                detail: if detail.is_empty() {
                    "no witness observes it".into()
                } else {
                    detail
                },
            };
            self.event(
                Severity::Error,
                EventKind::Refused,
                Some(role),
                why.to_string(),
            );
            self.refusal = Some(why);
            return;
        }
        if let Some(p) = self.s.protection.unfinished_run() {
            let id = p.id;
            self.event(
                Severity::Info,
                EventKind::Decision { reason: None },
                Some(role),
                format!(
                    "re-protection (pipeline {id}) was interrupted: it goes on with its first \
                     unfinished batch; finished batches are not run again"
                ),
            );
            if let Some(p) = self.s.protection.run.as_mut() {
                p.origin = Origin::Operator;
            }
            return;
        }
        let split = split(
            &self.s.protection,
            &req.destination,
            &req.accounts,
            &req.discard,
            req.batch,
        );
        self.record_run(
            role,
            Origin::Operator,
            &req.destination,
            req.priority,
            split,
        );
    }

    /// Record a run: the divergences the operator named resolved, the
    /// accounts left out named, the batches as steps.
    fn record_run(
        &mut self,
        role: Role,
        origin: Origin,
        destination: &str,
        priority: u32,
        split: Split,
    ) {
        if !split.discarded.is_empty() {
            self.s
                .protection
                .diverged
                .retain(|d| !split.discarded.contains(d));
            self.event(
                Severity::Warning,
                EventKind::DivergenceDiscarded {
                    accounts: split.discarded.clone(),
                },
                Some(role),
                format!(
                    "diverged account(s) named by the operator, their old copy on {destination} \
                     given up for a new replica: {}",
                    split
                        .discarded
                        .iter()
                        .map(|d| format!("{} ({})", d.account, d.gap()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if !split.left_out.is_empty() {
            self.event(
                Severity::Warning,
                EventKind::ReprotectLeftOut {
                    destination: destination.to_owned(),
                    accounts: split.left_out.clone(),
                },
                Some(role),
                left_out_sentence(&split.left_out, destination),
            );
        }
        self.s.protection.left_out = split.left_out;
        if split.batches.is_empty() {
            self.s.protection.run = None;
            return;
        }
        let n: usize = split.batches.iter().map(Vec::len).sum();
        let steps = split
            .batches
            .into_iter()
            .map(|accounts| Step::SetDestination {
                destination: destination.to_owned(),
                priority,
                accounts,
            })
            .collect();
        let mut p = self.new_pipeline(
            PipelineKind::Reprotect,
            &format!("give {n} account(s) a replica on {destination}"),
            steps,
        );
        p.origin = origin;
        self.event(
            Severity::Info,
            EventKind::ReprotectRecorded {
                pipeline: p.id,
                destination: destination.to_owned(),
                batches: p.steps.len(),
                accounts: n,
            },
            Some(role),
            format!(
                "re-protection recorded (pipeline {}): {n} account(s) get a replica on \
                 {destination}, in {} batch(es)",
                p.id,
                p.steps.len()
            ),
        );
        self.s.protection.run = Some(p);
    }

    /// A promotion step starts: its accounts at risk become diverged, and
    /// its accounts wait for a replica on the old mailstore.
    pub(super) fn note_promoted(&mut self, p: &Pipeline) {
        let Some(d) = &p.promotion else {
            return;
        };
        let now = self.now;
        let mut new = Vec::new();
        for r in &d.at_risk {
            if d.held.contains(&r.account) {
                continue;
            }
            let entry = Diverged {
                account: r.account.clone(),
                mail_host: d.source_mail_host.clone(),
                sequence: r.lag_sequence,
                item_id: r.lag_item_id,
                why: r.to_string(),
                promotion: p.id,
                at: now,
            };
            let known = &mut self.s.protection.diverged;
            match known.iter_mut().find(|k| {
                k.account.eq_ignore_ascii_case(&entry.account)
                    && k.mail_host.eq_ignore_ascii_case(&entry.mail_host)
            }) {
                // The same promotion listed again: keep the first record.
                Some(k) if k.promotion == p.id => {}
                Some(k) => {
                    *k = entry.clone();
                    new.push(entry);
                }
                None => {
                    known.push(entry.clone());
                    new.push(entry);
                }
            }
        }
        if !new.is_empty() {
            let each: Vec<String> = new
                .iter()
                .map(|d| format!("{} ({})", d.account, d.gap()))
                .collect();
            self.event(
                Severity::Warning,
                EventKind::AccountsDiverged {
                    accounts: new.clone(),
                },
                Some(Role::Appserver),
                format!(
                    "diverged (at risk when promoted from {}; that mailstore may hold the only \
                     copy of their lost tail): {}",
                    d.source_mail_host,
                    each.join(", ")
                ),
            );
        }
        let accounts = d
            .accounts
            .iter()
            .filter(|a| !d.held.contains(a))
            .cloned()
            .collect();
        self.s.protection.after_promotion = Some(AfterPromotion {
            pipeline: p.id,
            at: now,
            source_mail_host: d.source_mail_host.clone(),
            accounts,
        });
    }

    /// The survey found these accounts of the peer's mailstore without a
    /// replica: the ones never covered wait for one here.
    pub(super) fn note_uncovered(&mut self, accounts: &[String]) {
        let p = &mut self.s.protection;
        p.uncovered = accounts
            .iter()
            .filter(|a| !p.covered.contains(*a))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    }

    /// The next batch of a re-protection, or a new automatic one.
    pub(super) fn reprotect_next(&mut self, scope: Scope) -> Option<Planned> {
        if let Some(p) = self.s.protection.unfinished_run().cloned() {
            if p.origin != Origin::Operator && !self.auto_may_act(scope) {
                return None;
            }
            let idx = p.next_index()?;
            let Step::SetDestination {
                destination,
                priority,
                accounts,
            } = &p.steps[idx].step
            else {
                return None;
            };
            return Some(Planned::new(
                ActionKind::SetAccountDestination {
                    destination: destination.clone(),
                    priority: *priority,
                    accounts: accounts.clone(),
                },
                p.origin,
                Some(StepRef {
                    pipeline: p.id,
                    index: idx,
                }),
            ));
        }
        if self.cfg.reprotect != ReprotectPolicy::Auto || !self.cfg.roles.contains(&Role::Appserver)
        {
            return None;
        }
        if !self.auto_may_act(scope) {
            return None;
        }
        if let Some(ap) = self.s.protection.after_promotion.take() {
            let split = split(
                &self.s.protection,
                &ap.source_mail_host,
                &ap.accounts,
                &Discard::None,
                self.cfg.reprotect_batch,
            );
            self.record_run(
                Role::Appserver,
                Origin::Automatic,
                &ap.source_mail_host,
                DEFAULT_PRIORITY,
                split,
            );
            return self.reprotect_next(scope);
        }
        if !self.s.protection.uncovered.is_empty()
            && let Some(own) = self.cfg.own_mail_host.clone()
        {
            let accounts = std::mem::take(&mut self.s.protection.uncovered);
            self.s.protection.covered.extend(accounts.iter().cloned());
            // Nothing of these accounts lives here yet: no divergence.
            let split = split(
                &self.s.protection,
                &own,
                &accounts,
                &Discard::None,
                self.cfg.reprotect_batch,
            );
            self.record_run(
                Role::Appserver,
                Origin::Automatic,
                &own,
                DEFAULT_PRIORITY,
                split,
            );
            return self.reprotect_next(scope);
        }
        None
    }

    /// Whether the daemon may take an automatic re-protection step now: in
    /// a round's scope, not paused or held, on a fresh verdict that sees
    /// the peer appserver Up (never Down or Unknown: a replica is seeded
    /// from and onto live mailstores only).
    fn auto_may_act(&self, scope: Scope) -> bool {
        scope == Scope::Round
            && self.automatic_blocked().is_none()
            && self.fresh()
            && self.s.verdict(Component::Appserver) == Verdict::Up
    }
}
