//! Hysteresis per witness and the verdict per component, each source one
//! vote (docs/decisions.md §1; `unknown-is-not-down`, `one-source-one-vote`).

use super::config::EngineConfig;
use super::record::{ComponentState, WitnessState};
use super::time::{Now, UnixMillis};
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
/// - Down by deadline ([`expire`], fed as [`super::Input::Deadline`]
///   between rounds, never by a round itself): see [`deadline`].
/// - Unknown: the witness cannot tell; both streaks restart and it votes
///   Unknown. Unknown never advances Down, and it clears the last answer:
///   after it, no deadline runs until the peer answers again.
/// - A witness not heard from for `stale_after` starts over unsettled.
///
/// `sent` is when the round's probes went out (`clock` when the caller
/// does not say): an answer proves the peer alive after that instant, and
/// the deadline counts from it, not from when the round was fed.
pub fn observe(
    prev: Option<&WitnessState>,
    obs: &Observation,
    clock: Now,
    sent: Now,
    cfg: &EngineConfig,
) -> WitnessState {
    let now = clock.wall;
    let fresh = WitnessState {
        witness: obs.witness.clone(),
        vote: Vote::Unknown,
        last_raw: Vote::Unknown,
        reason: String::new(),
        down_streak: 0,
        up_streak: 0,
        last_seen: now,
        since: now,
        last_up: None,
        last_up_boot: None,
        last_up_latency_ms: None,
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
            s.last_up = Some(sent.wall);
            s.last_up_boot = sent.boot;
            s.last_up_latency_ms = Some(u64::try_from(obs.latency.as_millis()).unwrap_or(u64::MAX));
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
            s.last_up = None;
            s.last_up_boot = None;
            s.last_up_latency_ms = None;
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

/// When a round's probes went out (`out`, [`super::Live::probes_out`]):
/// its answers prove the peer alive after that instant, the one a
/// deadline counts from. One before the previous round (`last_round`) or
/// after `clock` is not believed (a clock stepped between): then `clock`,
/// the instant the round is fed.
pub(crate) fn sent_at(out: Option<Now>, clock: Now, last_round: Option<UnixMillis>) -> Now {
    out.filter(|s| {
        s.wall <= clock.wall
            && last_round.is_none_or(|t| s.wall >= t)
            && match (s.boot, clock.boot) {
                (Some(a), Some(b)) if a.boot == b.boot => a.ms <= b.ms,
                _ => true,
            }
    })
    .unwrap_or(clock)
}

/// When `w` votes Down by deadline if nothing new is heard, as keepalived
/// takes over `3 × advert_int` (plus a skew) after the last advert: at
/// `fall × interval` after the probe the peer last answered was sent,
/// plus a grace for the `fall`-th probe since that answer, which is out by
/// then; and, when the caller says when the probes now out were sent
/// (`out`, [`super::Live::probes_out`]), not before they have been out for
/// that grace (a round that went out late gets its grace all the same).
///
/// Only for a witness whose last `fall − 1` probes (at least one) all went
/// unanswered since that answer (no Unknown: it clears the answer) and
/// that does not vote Down yet. The deadline's Down therefore rests on
/// `fall` unanswered probes, like the `fall` rule, the last one judged by
/// the grace instead of the whole `timeout`: the grace is four times what
/// the peer took to answer the last time, at least `interval / 20`, at
/// most `timeout` (docs/decisions.md §1). `None` when no deadline runs.
pub fn deadline(w: &WitnessState, out: Option<Now>, cfg: &EngineConfig) -> Option<UnixMillis> {
    let fall = cfg.fall_for(&w.witness.kind);
    if w.vote == Vote::Down
        || w.last_raw != Vote::Down
        || w.down_streak == 0
        || w.down_streak.saturating_add(1) < fall
    {
        return None;
    }
    let due = w.last_up?.plus(tolerance(w, cfg));
    Some(match last_probe(w, out) {
        Some(out) => due.max(out.wall.plus(grace(w, cfg))),
        None => due,
    })
}

/// The probes now out, when they went out after `w`'s last failure was
/// fed: the `fall`-th probe the deadline judges.
fn last_probe(w: &WitnessState, out: Option<Now>) -> Option<Now> {
    out.filter(|o| o.wall >= w.last_seen)
}

/// What the `fall`-th probe gets to come back: four times what the peer
/// took to answer the last time, at least `interval / 20`, at most
/// `timeout` (see [`deadline`]).
fn grace(w: &WitnessState, cfg: &EngineConfig) -> std::time::Duration {
    let answered = std::time::Duration::from_millis(w.last_up_latency_ms.unwrap_or(0));
    (answered * 4).max(cfg.interval / 20).min(cfg.probe_timeout)
}

/// `fall × interval` for this witness's kind, plus the grace of its last
/// probe (see [`deadline`]).
fn tolerance(w: &WitnessState, cfg: &EngineConfig) -> std::time::Duration {
    cfg.interval
        .saturating_mul(cfg.fall_for(&w.witness.kind))
        .saturating_add(grace(w, cfg))
}

/// Settle `w` at `clock` without a new observation: Down once its
/// [`deadline`] has passed on both clocks (like a safety window, no step
/// of the wall clock ends it early). `None` when nothing changes, and
/// when its last failure was reported more than `interval + timeout`
/// ago: rounds are not coming on time (a stalled loop, a restart), so the
/// probe the deadline counts on may never have been sent, and time
/// without probing is no evidence.
pub fn expire(
    w: &WitnessState,
    clock: Now,
    out: Option<Now>,
    cfg: &EngineConfig,
) -> Option<WitnessState> {
    let now = clock.wall;
    if now < w.last_seen || now.since(w.last_seen) > cfg.interval + cfg.probe_timeout {
        return None;
    }
    deadline(w, out, cfg)?;
    let up = w.last_up?;
    if !clock
        .window_left(up, w.last_up_boot, tolerance(w, cfg))
        .is_zero()
    {
        return None;
    }
    if let Some(out) = last_probe(w, out)
        && !clock
            .window_left(out.wall, out.boot, grace(w, cfg))
            .is_zero()
    {
        return None;
    }
    let mut s = w.clone();
    s.vote = Vote::Down;
    s.since = now;
    Some(s)
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

/// The earliest instant (wall clock) at which [`super::Input::Deadline`] could
/// change a witness's vote, if any: when to feed it.
pub fn next_deadline(
    state: &super::State,
    live: &super::Live,
    cfg: &super::EngineConfig,
) -> Option<UnixMillis> {
    state
        .witnesses
        .iter()
        .filter(|w| !live.answered_out.contains(&w.witness))
        .filter_map(|w| deadline(w, live.probes_out, cfg))
        .min()
}
