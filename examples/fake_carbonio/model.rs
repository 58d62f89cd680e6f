//! The mailbox lifecycle the fake models (see the top of `main.rs`): mail
//! arriving at an active source, replicas streaming it with a latency,
//! new replicas being seeded, and what a promotion loses.
//!
//! Everything moves only when [`evolve`] brings the model from the time it
//! was last brought to up to `now`, so the same state and the same clock
//! give the same answers.

use crate::state::{Account, DEFAULT_CATCH_UP, Loss, Mark, ReplicaState, Seeding, State};

/// How far back the source's positions are kept (the longest replication
/// latency the model follows exactly).
const HORIZON: f64 = 3600.0;

/// The model's clock: frozen by the test, or the wall clock.
pub fn now(st: &State) -> f64 {
    st.clock.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    })
}

pub fn status(a: &Account) -> &str {
    a.status.as_deref().unwrap_or("active")
}

/// Maintenance defers mail at the MTA: the source stops moving.
fn receives_mail(a: &Account) -> bool {
    status(a) != "maintenance"
}

pub fn source(a: &Account) -> (u64, u64) {
    (a.sequence.unwrap_or(1), a.item_id.unwrap_or(257))
}

/// A replica's position (`None` fields: the source's).
pub fn position(a: &Account, r: &ReplicaState) -> (u64, u64) {
    let (s, i) = source(a);
    (r.sequence.unwrap_or(s), r.item_id.unwrap_or(i))
}

/// Seconds a new replica on `host` takes to be seeded.
pub fn catch_up_for(st: &State, host: &str) -> f64 {
    st.catch_up
        .get(host)
        .or_else(|| st.catch_up.get("*"))
        .copied()
        .unwrap_or(DEFAULT_CATCH_UP)
        .max(0.0)
}

/// Bring the model forward to `now` (never backwards).
pub fn evolve(st: &mut State, now: f64) {
    let from = st.model_time.unwrap_or(now);
    let now = now.max(from);
    for a in &mut st.accounts {
        evolve_account(a, from, now);
    }
    st.model_time = Some(now);
}

fn evolve_account(a: &mut Account, from: f64, now: f64) {
    let streams = a
        .replicas
        .iter()
        .any(|r| r.delay.is_some() || r.seeding.is_some());
    if a.mail_every.is_none() && !streams {
        return;
    }
    // A moving source or a streaming replica needs explicit positions.
    let (seq, item) = source(a);
    for r in &mut a.replicas {
        if r.delay.is_some() || r.seeding.is_some() {
            r.sequence.get_or_insert(seq);
            r.item_id.get_or_insert(item);
        }
    }
    a.sequence = Some(seq);
    a.item_id = Some(item);
    if a.marks.is_empty() {
        a.marks.push(Mark {
            at: from,
            sequence: seq,
            item_id: item,
        });
    }
    if let Some(every) = a.mail_every.filter(|e| *e > 0.0)
        && receives_mail(a)
    {
        // Mail arrives at the multiples of `every`, so the arrivals do not
        // depend on how often the fake is invoked.
        let first = (from / every).floor() as u64 + 1;
        let last = (now / every).floor() as u64;
        if last >= first {
            let n = last - first + 1;
            // Only the arrivals within the horizon are worth a mark.
            let kept = ((HORIZON / every).ceil() as u64 + 1).min(n);
            let base = (seq + 2 * (n - kept), item + (n - kept));
            for k in 0..kept {
                a.marks.push(Mark {
                    at: (last - kept + 1 + k) as f64 * every,
                    sequence: base.0 + 2 * (k + 1),
                    item_id: base.1 + k + 1,
                });
            }
            a.sequence = Some(seq + 2 * n);
            a.item_id = Some(item + n);
        }
    }
    // Forget marks no replica can still need, keeping the newest one at or
    // before the horizon as the baseline.
    if let Some(keep) = a.marks.iter().rposition(|m| m.at <= now - HORIZON) {
        a.marks.drain(..keep);
    }
    let paused = a.paused;
    let marks = a.marks.clone();
    for r in &mut a.replicas {
        evolve_replica(r, &marks, paused, now);
    }
}

/// The source's position as it was at `at` (the oldest known before the
/// first mark).
fn as_of(marks: &[Mark], at: f64) -> Option<(u64, u64)> {
    marks
        .iter()
        .rev()
        .find(|m| m.at <= at)
        .or(marks.first())
        .map(|m| (m.sequence, m.item_id))
}

fn evolve_replica(r: &mut ReplicaState, marks: &[Mark], account_paused: bool, now: f64) {
    let delay = r.delay.unwrap_or(0.0).max(0.0);
    let Some(target) = as_of(marks, now - delay) else {
        return;
    };
    if let Some(Seeding { started, duration }) = r.seeding {
        let done = if duration <= 0.0 {
            1.0
        } else {
            ((now - started) / duration).clamp(0.0, 1.0)
        };
        // Seeding copies the mailbox so far, proportionally to the time.
        let part = |x: u64| (x as f64 * done).floor() as u64;
        r.sequence = Some(r.sequence.unwrap_or(0).max(part(target.0)));
        r.item_id = Some(r.item_id.unwrap_or(0).max(part(target.1)));
        if done >= 1.0 {
            r.seeding = None;
            r.available = true;
            r.can_connect_to_kafka = true;
        }
        return;
    }
    if r.delay.is_none() || account_paused || r.paused == Some(true) || !r.can_connect_to_kafka {
        return;
    }
    r.sequence = Some(r.sequence.unwrap_or(0).max(target.0));
    r.item_id = Some(r.item_id.unwrap_or(0).max(target.1));
}

/// A new replica on `host`, being seeded from now on.
pub fn new_replica(st: &State, host: &str, priority: i64, now: f64) -> ReplicaState {
    ReplicaState {
        available: false,
        priority,
        sequence: Some(0),
        item_id: Some(0),
        can_connect_to_kafka: false,
        delay: Some(st.replication_delay.max(0.0)),
        seeding: Some(Seeding {
            started: now,
            duration: catch_up_for(st, host),
        }),
        ..ReplicaState::on(host)
    }
}

/// Promote account `a` to its replica at `index`: it now lives there, at
/// the replica's position, with no replica on that host any more; the gap
/// to the old source, if any, is returned as a loss.
pub fn promote_to(a: &mut Account, index: usize, now: f64) -> Option<Loss> {
    let r = a.replicas.remove(index);
    let (src_seq, src_item) = source(a);
    let (seq, item) = position(a, &r);
    let old = std::mem::replace(&mut a.mail_host, r.destination.clone());
    let loss = (seq < src_seq || item < src_item).then(|| Loss {
        account: a.name.clone(),
        from: old,
        to: r.destination.clone(),
        at: now,
        sequence: src_seq.saturating_sub(seq),
        item_id: src_item.saturating_sub(item),
    });
    a.sequence = Some(seq);
    a.item_id = Some(item);
    a.marks = if a.mail_every.is_some() {
        vec![Mark {
            at: now,
            sequence: seq,
            item_id: item,
        }]
    } else {
        Vec::new()
    };
    // The other replicas (if any) followed the old source; they now follow
    // the new one from where they are.
    for other in &mut a.replicas {
        other.sequence = Some(other.sequence.unwrap_or(src_seq).min(seq));
        other.item_id = Some(other.item_id.unwrap_or(src_item).min(item));
    }
    loss
}
