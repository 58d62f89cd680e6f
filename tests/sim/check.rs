//! The whole-system invariants, checked at every simulated step.
//!
//! "Serving": the primary side serves every account of its host while
//! its mailstore node is powered on and its routes are up
//! ([`super::world::World::primary_serving`]): cut off, it does not know
//! of a promotion, and its mailboxes stay writable. The secondary serves
//! the accounts the directory puts on it (promoted).

use habeat::engine::UnixMillis;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Which rule broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// (a) The primary went from not serving to serving (habeat's
    /// `hooks.on_unfence`) while accounts of its host live on the
    /// secondary: two sides serving one account.
    ResumedServing,
    /// (a) A promotion (automatic, or the operator's without `--force`)
    /// while the primary serves, where the configuration promises it
    /// cannot, its `lease.json` saying fenced (`hooks.on_fence` never
    /// completed).
    FencedButServing,
    /// (a) A promotion while the primary serves, where the configuration
    /// promises it cannot, the primary's fence hook not reported failed:
    /// an automatic one with `fencing.appserver`; an automatic one or an
    /// operator's without `--force` with the lease on and either the
    /// quorum gate on or the lease readable from the secondary's side
    /// ([`Promotion::lease_promised`]).
    PromotedBesideServing,
    /// (b) SPEC 12: an automatic promotion with `fencing.appserver` in
    /// the configuration in force and no confirmed OFF in its pipeline.
    PromotedWithoutFence,
    /// (c) SPEC 3: a second automatic promotion of one source before a
    /// re-arm, or one within `promotion_block` of the last promotion.
    PromotedTwice,
    /// SPEC 1 and 2: an automatic promotion while a witness votes Up, or
    /// on a verdict other than Down.
    PromotedNotDown,
}

impl Kind {
    /// The defect this kind showed before its fix, if one: the numbers of
    /// docs/simulation.md ("What it found").
    pub fn defect(self) -> Option<u8> {
        match self {
            Kind::ResumedServing => Some(1),
            Kind::FencedButServing => Some(2),
            Kind::PromotedWithoutFence => Some(3),
            Kind::PromotedBesideServing => Some(6),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub kind: Kind,
    /// Simulated second.
    pub at: u64,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}s {:?}: {}", self.at, self.kind, self.detail)
    }
}

/// What the checks remember across steps.
#[derive(Debug, Default)]
pub struct Checker {
    /// Pipelines with a confirmed OFF of the primary node.
    pub fenced: Vec<u64>,
    /// When each promotion pipeline's promoteAccounts was first handed
    /// out (engine time: what `last_promotion` records).
    pub first_handed: BTreeMap<u64, UnixMillis>,
    /// The last pipeline whose promoteAccounts ran, and whether it was
    /// automatic.
    pub last_run: Option<(u64, bool)>,
    /// A re-arm since the last automatic promotion ran.
    pub rearmed: bool,
    /// The operator promoted with `--force` over a witness that saw the
    /// primary Up: the two sides are theirs to reconcile (until the
    /// failback).
    pub operator_owned: bool,
    /// The primary served while its own directory replica already put
    /// accounts of its host on the secondary (a promotion beside it that
    /// the configuration does not prevent, and that the primary could
    /// see): a split that stood before any later fence, so an
    /// `on_unfence` after that fence puts back what was rather than
    /// making a split (until the failback).
    pub moved_beside_serving: bool,
}

/// A promoteAccounts that ran (past the executor's checks).
pub struct Promotion<'a> {
    pub at: u64,
    pub pipeline: u64,
    pub automatic: bool,
    /// The operator's `promote --force` (the pipeline's record).
    pub forced: bool,
    pub moved: &'a [String],
    pub fencing_configured: bool,
    /// `lease.enabled` in force on the primary.
    pub lease: bool,
    /// `safety.quorum_gate` in force on the secondary.
    pub quorum_gate: bool,
    /// The secondary reaches a Consul leader: the primary's serving lease
    /// can be read from its side.
    pub lease_readable: bool,
    pub primary_serving: bool,
    pub primary_record_fenced: bool,
    pub fence_hook_failed: bool,
    pub witness_up: bool,
    pub verdict_down: bool,
    pub block: Duration,
}

impl Promotion<'_> {
    /// The serving lease promises this promotion waits for the primary to
    /// have fenced itself. An automatic promotion and an operator's
    /// without `--force` carry the lease check at every attempt, and the
    /// executor honours the lease whenever it can read it. Unreadable (no
    /// Consul leader on the secondary's side) it waits with the quorum gate
    /// on, and goes on with `peer_lease_unchecked` with the gate off and
    /// `safety.require_peer_lease: auto` (docs/decisions.md §7, "With the
    /// quorum gate off"): no promise then. An operator's promotion takes no
    /// gate, but the gate's setting decides this all the same.
    fn lease_promised(&self) -> bool {
        self.lease && (self.quorum_gate || self.lease_readable)
    }
}

impl Checker {
    pub fn promotion(&mut self, p: &Promotion) -> Option<Violation> {
        let v = |kind, detail: String| {
            Some(Violation {
                kind,
                at: p.at,
                detail,
            })
        };
        let id = p.pipeline;
        let previous = self.last_run;
        if previous.is_none_or(|(q, _)| q != id) {
            self.last_run = Some((id, p.automatic));
            if p.automatic {
                let rearmed = std::mem::replace(&mut self.rearmed, false);
                if let Some((q, q_auto)) = previous {
                    let (a, b) = (self.first_handed.get(&q), self.first_handed.get(&id));
                    if let (Some(a), Some(b)) = (a, b)
                        && *b < a.plus(p.block)
                    {
                        return v(
                            Kind::PromotedTwice,
                            format!(
                                "pipeline {id} promotes {} ms after pipeline {q}, within \
                                 promotion_block",
                                b.0.saturating_sub(a.0)
                            ),
                        );
                    }
                    if q_auto && !rearmed {
                        return v(
                            Kind::PromotedTwice,
                            format!(
                                "pipeline {id} promotes after automatic pipeline {q} with no re-arm"
                            ),
                        );
                    }
                }
            }
        }
        if !p.automatic {
            return Self::operator_promotion(p);
        }
        if p.fencing_configured && !self.fenced.contains(&id) {
            return v(
                Kind::PromotedWithoutFence,
                format!(
                    "pipeline {id} runs promoteAccounts with fencing.appserver configured and no \
                     confirmed OFF in it"
                ),
            );
        }
        if p.witness_up || !p.verdict_down {
            return v(
                Kind::PromotedNotDown,
                format!(
                    "pipeline {id} promotes with a witness Up ({}) or a verdict other than Down",
                    p.witness_up
                ),
            );
        }
        Self::beside_serving(p, p.fencing_configured || p.lease_promised())
    }

    /// An operator's promotion: with `--force` the operator has taken the
    /// split on themselves (exempt). Without it, held to the lease as an
    /// automatic one is; never to the fence (it has no fence step).
    fn operator_promotion(p: &Promotion) -> Option<Violation> {
        if p.forced {
            return None;
        }
        Self::beside_serving(p, p.lease_promised())
    }

    /// Rule (a) at a promotion: accounts moved while the primary serves,
    /// where `promised` says the configuration prevents it.
    fn beside_serving(p: &Promotion, promised: bool) -> Option<Violation> {
        if p.moved.is_empty() || !p.primary_serving || !promised || p.fence_hook_failed {
            return None;
        }
        let (id, who) = (
            p.pipeline,
            if p.automatic {
                "automatic"
            } else {
                "operator's (without --force)"
            },
        );
        let (kind, detail) = if p.primary_record_fenced {
            (
                Kind::FencedButServing,
                format!(
                    "{who} pipeline {id} promoted {:?} while the primary serves them: its \
                     lease.json says fenced, its routes are up (hooks.on_fence never completed)",
                    p.moved
                ),
            )
        } else {
            (
                Kind::PromotedBesideServing,
                format!(
                    "{who} pipeline {id} promoted {:?} while the primary serves them",
                    p.moved
                ),
            )
        };
        Some(Violation {
            kind,
            at: p.at,
            detail,
        })
    }

    /// The primary's serving changed from `before` to `after` by
    /// habeat's doing, with `promoted` accounts living on the secondary.
    pub fn primary_transition(
        &self,
        at: u64,
        before: bool,
        after: bool,
        promoted: &[String],
    ) -> Option<Violation> {
        let standing = self.operator_owned || self.moved_beside_serving;
        (!before && after && !promoted.is_empty() && !standing).then(|| Violation {
            kind: Kind::ResumedServing,
            at,
            detail: format!(
                "the primary's hooks.on_unfence put its routes up while {promoted:?} live on \
                 the secondary"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(at: u64, pipeline: u64) -> Promotion<'static> {
        Promotion {
            at,
            pipeline,
            automatic: true,
            forced: false,
            moved: &[],
            fencing_configured: false,
            lease: true,
            quorum_gate: true,
            lease_readable: true,
            primary_serving: false,
            primary_record_fenced: false,
            fence_hook_failed: false,
            witness_up: false,
            verdict_down: true,
            block: Duration::from_secs(600),
        }
    }

    /// The rules the engine keeps today still break in the checker when
    /// they are broken: the checks are not vacuous.
    #[test]
    fn each_rule_can_break() {
        let mut c = Checker::default();
        c.first_handed.insert(1, UnixMillis(0));
        c.first_handed.insert(2, UnixMillis(700_000));
        assert!(c.promotion(&auto(0, 1)).is_none());
        assert_eq!(
            c.promotion(&auto(700, 2)).map(|v| v.kind),
            Some(Kind::PromotedTwice),
            "no re-arm between"
        );
        let mut c = Checker::default();
        c.first_handed.insert(1, UnixMillis(0));
        c.first_handed.insert(2, UnixMillis(100_000));
        assert!(c.promotion(&auto(0, 1)).is_none());
        c.rearmed = true;
        assert_eq!(
            c.promotion(&auto(100, 2)).map(|v| v.kind),
            Some(Kind::PromotedTwice),
            "within promotion_block"
        );
        let mut c = Checker::default();
        let mut p = auto(0, 1);
        p.witness_up = true;
        assert_eq!(c.promotion(&p).map(|v| v.kind), Some(Kind::PromotedNotDown));
        let mut c = Checker::default();
        let mut p = auto(0, 1);
        p.fencing_configured = true;
        assert_eq!(
            c.promotion(&p).map(|v| v.kind),
            Some(Kind::PromotedWithoutFence)
        );
        c.fenced.push(1);
        let moved = ["a".to_owned()];
        p.moved = &moved;
        p.primary_serving = true;
        assert_eq!(
            c.promotion(&p).map(|v| v.kind),
            Some(Kind::PromotedBesideServing)
        );
        assert!(c.primary_transition(0, false, true, &moved).is_some());
        assert!(c.primary_transition(0, true, true, &moved).is_none());
    }

    /// An operator's promotion beside the serving primary breaks rule (a)
    /// where its lease check promises it cannot, and only there.
    #[test]
    fn an_operators_promotion_is_held_to_the_lease() {
        let moved = ["a".to_owned()];
        let op = |forced, quorum_gate, lease_readable| Promotion {
            automatic: false,
            forced,
            moved: &moved,
            quorum_gate,
            lease_readable,
            primary_serving: true,
            // Neither of the automatic path's conditions applies.
            fencing_configured: true,
            witness_up: true,
            verdict_down: false,
            ..auto(0, 1)
        };
        let kind = |p: Promotion| Checker::default().promotion(&p).map(|v| v.kind);
        assert_eq!(
            kind(op(false, true, false)),
            Some(Kind::PromotedBesideServing),
            "the gate on: an unreadable lease holds it"
        );
        assert_eq!(
            kind(op(false, false, true)),
            Some(Kind::PromotedBesideServing),
            "the gate off: a readable lease still holds it"
        );
        assert_eq!(
            kind(op(false, false, false)),
            None,
            "the gate off and the lease unreadable: peer_lease_unchecked, by design"
        );
        assert_eq!(kind(op(true, true, true)), None, "--force is exempt");
        assert_eq!(
            kind(Promotion {
                quorum_gate: false,
                lease_readable: true,
                moved: &moved,
                primary_serving: true,
                ..auto(0, 1)
            }),
            Some(Kind::PromotedBesideServing),
            "an automatic one too: the gate off, the lease readable"
        );
        assert_eq!(
            kind(Promotion {
                lease: false,
                ..op(false, true, true)
            }),
            None,
            "no lease, no promise"
        );
        assert_eq!(
            kind(Promotion {
                fence_hook_failed: true,
                ..op(false, true, true)
            }),
            None,
            "the primary's on_fence failed: the operator's hook"
        );
    }
}
