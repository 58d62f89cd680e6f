//! Hysteresis per witness and the verdict per component, each source one
//! vote (docs/decisions.md §1; `unknown-is-not-down`, `one-source-one-vote`).

use super::config::EngineConfig;
use super::record::{ComponentState, WitnessState};
use super::time::UnixMillis;
use crate::model::{Component, Observation, Quorum, Source, Verdict, Vote, by_source};

/// Fold one raw observation into a witness's hysteresis.
///
/// `fall` and `rise` are those of the witness's kind
/// ([`EngineConfig::fall_for`]): 1 and `rise` for the Serf witnesses by
/// default, `fall` and `rise` for the probes.
///
/// - Down: `fall` consecutive Down observations make the vote Down. A
///   witness that voted Up keeps voting Up until then (a single lost packet
///   does not make a live peer look dead).
/// - Up: `rise` consecutive Up observations make the vote Up. A witness
///   that voted Down stops voting Down at once (it is Unknown until it has
///   risen): Down must always be backed by consecutive Down observations.
/// - Unknown: the witness cannot tell; both streaks restart and it votes
///   Unknown. Unknown never advances Down.
/// - A witness not heard from for `stale_after` starts over unsettled.
pub fn observe(
    prev: Option<&WitnessState>,
    obs: &Observation,
    now: UnixMillis,
    cfg: &EngineConfig,
) -> WitnessState {
    let fresh = WitnessState {
        witness: obs.witness.clone(),
        vote: Vote::Unknown,
        last_raw: Vote::Unknown,
        reason: String::new(),
        down_streak: 0,
        up_streak: 0,
        last_seen: now,
        since: now,
    };
    let mut s = match prev {
        Some(p) if now.since(p.last_seen) <= cfg.stale_after && now >= p.last_seen => p.clone(),
        _ => fresh,
    };
    let before = s.vote;
    let fall = cfg.fall_for(&obs.witness.kind);
    let rise = cfg.rise_for(&obs.witness.kind);
    match obs.vote {
        Vote::Down => {
            s.down_streak = s.down_streak.saturating_add(1);
            s.up_streak = 0;
            s.vote = if s.down_streak >= fall {
                Vote::Down
            } else if s.vote == Vote::Up {
                Vote::Up
            } else {
                Vote::Unknown
            };
        }
        Vote::Up => {
            s.up_streak = s.up_streak.saturating_add(1);
            s.down_streak = 0;
            if s.up_streak >= rise {
                s.vote = Vote::Up;
            } else if s.vote == Vote::Down {
                s.vote = Vote::Unknown;
            }
        }
        Vote::Unknown => {
            s.down_streak = 0;
            s.up_streak = 0;
            s.vote = Vote::Unknown;
        }
    }
    s.last_raw = obs.vote;
    s.reason = obs.reason.clone();
    s.last_seen = now;
    if s.vote != before {
        s.since = now;
    }
    s
}

/// Merge duplicate observations of one witness in a round on the safe
/// side: any Up makes it Up, Down only if all say Down, else Unknown.
pub(crate) fn merge(a: &Observation, b: &Observation) -> Observation {
    let vote = match (a.vote, b.vote) {
        (Vote::Up, _) | (_, Vote::Up) => Vote::Up,
        (Vote::Down, Vote::Down) => Vote::Down,
        _ => Vote::Unknown,
    };
    let pick = if a.vote == vote { a } else { b };
    Observation {
        vote,
        ..pick.clone()
    }
}

/// One vote of a component: the witnesses of one [`Source`] and what
/// they say together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceVote<'a> {
    pub source: Source,
    /// The witnesses of this source, in report order.
    pub witnesses: Vec<&'a WitnessState>,
    /// Up when any of them votes Up; Down only when every one of them
    /// votes Down; otherwise Unknown.
    pub vote: Vote,
}

/// The votes on `component`: its witnesses grouped by source, each
/// source one vote (invariant `one-source-one-vote`), in the order of
/// each source's first witness.
pub fn votes(component: Component, witnesses: &[WitnessState]) -> Vec<SourceVote<'_>> {
    let mine = witnesses
        .iter()
        .filter(|w| w.witness.component == component);
    by_source(mine, |w| w.witness.kind.source())
        .into_iter()
        .map(|(source, witnesses)| {
            let vote = if witnesses.iter().any(|w| w.vote == Vote::Up) {
                Vote::Up
            } else if witnesses.iter().all(|w| w.vote == Vote::Down) {
                Vote::Down
            } else {
                Vote::Unknown
            };
            SourceVote {
                source,
                witnesses,
                vote,
            }
        })
        .collect()
}

/// How a vote is named in a reason: a source of one witness by that
/// witness, a shared one by its source and its witnesses.
fn describe(v: &SourceVote<'_>, each: impl Fn(&WitnessState) -> String) -> String {
    match v.witnesses.as_slice() {
        [one] if !v.source.is_shared() => each(one),
        many => format!(
            "{} as one vote ({})",
            v.source,
            many.iter().map(|w| each(w)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The verdict on `component` from its witnesses' settled votes, each
/// source one vote: Up when any witness votes Up; Down when at least
/// `quorum` sources vote Down (`all`: every source, so every witness),
/// no witness votes Up and none has just seen it Up in this round;
/// otherwise Unknown.
pub fn verdict(
    component: Component,
    witnesses: &[WitnessState],
    quorum: Quorum,
) -> (Verdict, String) {
    let mine: Vec<&WitnessState> = witnesses
        .iter()
        .filter(|w| w.witness.component == component)
        .collect();
    if mine.is_empty() {
        return (
            Verdict::Unknown,
            format!("no witness reports on the peer {component}"),
        );
    }
    if let Some(up) = mine.iter().find(|w| w.vote == Vote::Up) {
        return (
            Verdict::Up,
            format!("{} sees it up ({})", up.witness, up.reason),
        );
    }
    if let Some(fresh_up) = mine.iter().find(|w| w.last_raw == Vote::Up) {
        return (
            Verdict::Unknown,
            format!(
                "{} has just seen it up ({}); not settled yet",
                fresh_up.witness, fresh_up.reason
            ),
        );
    }
    let votes = votes(component, witnesses);
    let downs: Vec<&SourceVote<'_>> = votes.iter().filter(|v| v.vote == Vote::Down).collect();
    let need = quorum.needed(votes.len());
    if downs.len() >= need {
        let names: Vec<String> = downs
            .iter()
            .map(|v| describe(v, |w| format!("{} ({})", w.witness, w.reason)))
            .collect();
        return (
            Verdict::Down,
            format!(
                "{} of {} votes confirm it down: {}",
                downs.len(),
                votes.len(),
                names.join("; ")
            ),
        );
    }
    let unsure: Vec<String> = votes
        .iter()
        .filter(|v| v.vote != Vote::Down)
        .map(|v| {
            describe(v, |w| {
                if w.vote == Vote::Down {
                    format!("{} down", w.witness)
                } else if w.last_raw == Vote::Down {
                    format!("{} down {} time(s), not settled", w.witness, w.down_streak)
                } else {
                    format!("{} cannot tell ({})", w.witness, w.reason)
                }
            })
        })
        .collect();
    (
        Verdict::Unknown,
        format!(
            "{} of {} votes down, {} needed: {}",
            downs.len(),
            votes.len(),
            need,
            unsure.join("; ")
        ),
    )
}

/// Whether a witness is part-way through a streak that could still settle
/// it: `check` keeps probing until none is.
pub(crate) fn unsettled(w: &WitnessState) -> bool {
    match w.last_raw {
        Vote::Down => w.vote != Vote::Down,
        Vote::Up => w.vote != Vote::Up,
        Vote::Unknown => false,
    }
}

/// Update the component record, returning the previous verdict if changed.
pub(crate) fn set_component(
    slot: &mut Option<ComponentState>,
    verdict: Verdict,
    reason: String,
    now: UnixMillis,
) -> Option<Verdict> {
    match slot {
        Some(c) if c.verdict == verdict => {
            c.reason = reason;
            None
        }
        Some(c) => {
            let from = c.verdict;
            *c = ComponentState {
                verdict,
                reason,
                since: now,
            };
            Some(from)
        }
        None => {
            *slot = Some(ComponentState {
                verdict,
                reason,
                since: now,
            });
            Some(Verdict::Unknown).filter(|_| verdict != Verdict::Unknown)
        }
    }
}
