//! The replica survey (SPEC §4, "Replica survey"): what `getAccountStatus`
//! said about each account of the peer mailstore while it was Up, and the
//! classification of each account's replica as `ok` or at risk, with why.
//!
//! This module is pure data and rules (no I/O, no clock): the engine
//! records [`Risk`]s in the promotion, `status` and `/metrics` show a
//! [`Summary`]. `store.rs` keeps the last survey in `state_dir/survey.json`;
//! `act::carbonio` turns the CLI's output into [`Surveyed`] entries.
//!
//! Invariant `replicas-at-risk-named` (13): no account is promoted without
//! the operator being able to see, before (`status`) and after (the
//! promotion record, `history`), whether its replica was at risk and why.

pub mod job;
pub mod show;
pub mod store;

use crate::engine::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// Version of the `survey.json` layout.
pub const SURVEY_VERSION: u32 = 1;

/// One survey: every replicated account of `host`, as listed at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    /// [`SURVEY_VERSION`].
    pub version: u32,
    /// The mailstore that was surveyed (the peer appserver).
    pub host: String,
    /// When the listing finished.
    pub at: UnixMillis,
    /// Each account, in the CLI's order.
    pub accounts: Vec<Surveyed>,
}

/// One account as the survey saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surveyed {
    /// `accountName`.
    pub account: String,
    /// The source's `sequence`.
    pub source_sequence: Option<u64>,
    /// The source's `itemId`.
    pub source_item_id: Option<u64>,
    /// `paused` on the source.
    pub source_paused: bool,
    /// The replica promotion would use (lowest `priority`), if any.
    pub replica: Option<ReplicaSeen>,
    /// How many replicas the account has.
    pub replicas: usize,
    /// Counters that were numbers but no position (`sequence`, `replica
    /// itemId`...; `act::carbonio::parse_survey_listing` says which): how
    /// far the replica is cannot be told, so the account is at risk
    /// ([`ReplicaState::Unreadable`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// The fields of one replica that decide its class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReplicaSeen {
    /// Shared by the accounts replicated to the same mailstore (a survey
    /// holds the name once, not once per account).
    #[serde(default, with = "shared_str")]
    pub destination: Option<Arc<str>>,
    pub available: Option<bool>,
    pub can_connect_to_kafka: Option<bool>,
    pub paused: Option<bool>,
    pub sequence: Option<u64>,
    pub item_id: Option<u64>,
    pub priority: Option<i64>,
}

/// `Option<Arc<str>>` as an optional string in JSON (serde's own impl
/// needs its `rc` feature, which would rebuild every crate using serde).
mod shared_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&**v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Arc::from))
    }
}

/// The class of an account's replica. The order is the order of
/// precedence when several apply (an unavailable replica that is also
/// behind is counted as unavailable, and both are named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// No replica at all: promotion has nothing to promote to.
    NoReplica,
    /// `available: false`.
    Unavailable,
    /// `canConnectToKafka: false`: it no longer receives the event stream.
    NoKafka,
    /// Replication paused (on the source or the replica).
    Paused,
    /// A `sequence` or `itemId` that is no position (`-5`, `1.5`, `2^64`):
    /// how far behind the replica is cannot be told.
    Unreadable,
    /// A lower `sequence` or `itemId` than the source.
    Behind,
    /// None of the above.
    Ok,
}

impl ReplicaState {
    /// Every class, in the order of `/metrics` and `status`.
    pub const ALL: [ReplicaState; 7] = [
        ReplicaState::Ok,
        ReplicaState::Unavailable,
        ReplicaState::NoKafka,
        ReplicaState::Paused,
        ReplicaState::Unreadable,
        ReplicaState::Behind,
        ReplicaState::NoReplica,
    ];

    /// The stable name (`/metrics` label, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Ok => "ok",
            ReplicaState::Unavailable => "unavailable",
            ReplicaState::NoKafka => "no_kafka",
            ReplicaState::Paused => "paused",
            ReplicaState::Unreadable => "unreadable",
            ReplicaState::Behind => "behind",
            ReplicaState::NoReplica => "no_replica",
        }
    }
}

/// Why one account is at risk, as data: its class, every other class that
/// also applies, how far behind it is, and where it would be promoted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    pub account: String,
    /// The class (never `Ok`).
    pub state: ReplicaState,
    /// Further classes that apply, in precedence order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<ReplicaState>,
    /// Source `sequence` minus the replica's, when the replica is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_sequence: Option<u64>,
    /// Source `itemId` minus the replica's, when the replica is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_item_id: Option<u64>,
    /// The replica's mailstore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

impl fmt::Display for Risk {
    /// `unavailable, behind by 12 sequence and 3 itemId`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in std::iter::once(self.state).chain(self.also.iter().copied()) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match s {
                ReplicaState::NoReplica => f.write_str("no replica")?,
                ReplicaState::Unavailable => f.write_str("replica unavailable")?,
                ReplicaState::NoKafka => f.write_str("replica cannot reach Kafka")?,
                ReplicaState::Paused => f.write_str("replication paused")?,
                ReplicaState::Unreadable => {
                    f.write_str("sequence unreadable (a sequence or itemId that is no position)")?
                }
                ReplicaState::Behind => {
                    f.write_str("behind the source by")?;
                    let parts: Vec<String> = [
                        self.lag_sequence.map(|n| format!("{n} sequence")),
                        self.lag_item_id.map(|n| format!("{n} itemId")),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    write!(f, " {}", parts.join(" and "))?;
                }
                ReplicaState::Ok => f.write_str("ok")?,
            }
        }
        if let Some(d) = &self.destination {
            write!(f, " (replica on {d})")?;
        }
        Ok(())
    }
}

/// The classes of one account, first the one it is counted as; the lags
/// when it is behind. `Ok` alone when nothing applies.
pub fn classify(a: &Surveyed) -> (Vec<ReplicaState>, Option<u64>, Option<u64>) {
    let (c, lag_sequence, lag_item_id) = classes(a);
    (c.as_slice().to_vec(), lag_sequence, lag_item_id)
}

/// The classes [`classify`] lists, without a list on the heap: a survey
/// classifies every account of a mailstore.
struct Classes {
    states: [ReplicaState; 5],
    len: usize,
}

impl Classes {
    fn one(s: ReplicaState) -> Classes {
        Classes {
            states: [s; 5],
            len: 1,
        }
    }

    fn push(&mut self, s: ReplicaState) {
        self.states[self.len] = s;
        self.len += 1;
    }

    fn as_slice(&self) -> &[ReplicaState] {
        &self.states[..self.len]
    }
}

fn classes(a: &Surveyed) -> (Classes, Option<u64>, Option<u64>) {
    let Some(r) = &a.replica else {
        return (Classes::one(ReplicaState::NoReplica), None, None);
    };
    let mut out = Classes::one(ReplicaState::Ok);
    out.len = 0;
    if r.available == Some(false) {
        out.push(ReplicaState::Unavailable);
    }
    if r.can_connect_to_kafka == Some(false) {
        out.push(ReplicaState::NoKafka);
    }
    if a.source_paused || r.paused == Some(true) {
        out.push(ReplicaState::Paused);
    }
    if !a.unreadable.is_empty() {
        out.push(ReplicaState::Unreadable);
    }
    let lag = |src: Option<u64>, rep: Option<u64>| match (src, rep) {
        (Some(s), Some(r)) if r < s => Some(s - r),
        _ => None,
    };
    let lag_sequence = lag(a.source_sequence, r.sequence);
    let lag_item_id = lag(a.source_item_id, r.item_id);
    if lag_sequence.is_some() || lag_item_id.is_some() {
        out.push(ReplicaState::Behind);
    }
    if out.len == 0 {
        out.push(ReplicaState::Ok);
    }
    (out, lag_sequence, lag_item_id)
}

/// The [`Risk`] of one account, or `None` when its replica is ok.
pub fn risk(a: &Surveyed) -> Option<Risk> {
    let (states, lag_sequence, lag_item_id) = classify(a);
    if states[0] == ReplicaState::Ok {
        return None;
    }
    Some(Risk {
        account: a.account.clone(),
        state: states[0],
        also: states[1..].to_vec(),
        lag_sequence,
        lag_item_id,
        destination: a
            .replica
            .as_ref()
            .and_then(|r| r.destination.as_deref().map(str::to_owned)),
    })
}

/// What `status`, `/status` and `/metrics` show of a survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub host: String,
    pub at: UnixMillis,
    pub accounts: usize,
    /// Accounts per class (every class present, zeros included).
    pub counts: BTreeMap<&'static str, usize>,
    /// Every account at risk, in the survey's order.
    pub at_risk: Vec<Risk>,
    /// The largest `sequence` lag of any account (0: none behind).
    pub max_lag_sequence: u64,
    /// The largest `itemId` lag.
    pub max_lag_item_id: u64,
    /// Where a promotion would move the accounts: destination → count
    /// (`(none)` for accounts without a replica or a destination).
    pub destinations: BTreeMap<String, usize>,
}

impl Survey {
    /// Count, name and measure: one pass over the accounts.
    pub fn summary(&self) -> Summary {
        let mut by_class = [0usize; ReplicaState::ALL.len()];
        let mut at_risk = Vec::new();
        let (mut max_seq, mut max_item) = (0, 0);
        let mut destinations: BTreeMap<String, usize> = BTreeMap::new();
        for a in &self.accounts {
            let (states, ls, li) = classes(a);
            let states = states.as_slice();
            by_class[states[0] as usize] += 1;
            max_seq = max_seq.max(ls.unwrap_or(0));
            max_item = max_item.max(li.unwrap_or(0));
            let dest = a
                .replica
                .as_ref()
                .and_then(|r| r.destination.as_deref())
                .unwrap_or("(none)");
            // Looked up by reference: a copy of the name per account
            // would be most of the summary's time.
            match destinations.get_mut(dest) {
                Some(n) => *n += 1,
                None => {
                    destinations.insert(dest.to_owned(), 1);
                }
            }
            if states[0] != ReplicaState::Ok {
                at_risk.push(Risk {
                    account: a.account.clone(),
                    state: states[0],
                    also: states[1..].to_vec(),
                    lag_sequence: ls,
                    lag_item_id: li,
                    destination: a
                        .replica
                        .as_ref()
                        .and_then(|r| r.destination.as_deref().map(str::to_owned)),
                });
            }
        }
        let counts = ReplicaState::ALL
            .iter()
            .map(|s| (s.as_str(), by_class[*s as usize]))
            .collect();
        Summary {
            host: self.host.clone(),
            at: self.at,
            accounts: self.accounts.len(),
            counts,
            at_risk,
            max_lag_sequence: max_seq,
            max_lag_item_id: max_item,
            destinations,
        }
    }

    /// The names of the accounts at risk, sorted (what a
    /// `replicas_at_risk_changed` event compares).
    pub fn at_risk_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .accounts
            .iter()
            .filter(|a| risk(a).is_some())
            .map(|a| a.account.clone())
            .collect();
        v.sort();
        v
    }
}

/// The at-risk analysis at promotion time: the listing made just before
/// promoting (`fresh`, the replicas' current fields) against the last
/// survey. The source is usually gone by then, so its `sequence` and
/// `itemId` are the survey's (or the fresh listing's, when higher or when
/// the survey does not know the account). Returns the accounts at risk,
/// in the listing's order.
pub fn at_promotion(last: Option<&Survey>, fresh: &[Surveyed]) -> Vec<Risk> {
    let by_name: HashMap<&str, &Surveyed> = last
        .map(|s| s.accounts.iter().map(|a| (a.account.as_str(), a)).collect())
        .unwrap_or_default();
    fresh
        .iter()
        .filter_map(|a| {
            let mut a = a.clone();
            if let Some(old) = by_name.get(a.account.as_str()) {
                a.source_sequence = a.source_sequence.max(old.source_sequence);
                a.source_item_id = a.source_item_id.max(old.source_item_id);
                a.source_paused |= old.source_paused;
            }
            risk(&a)
        })
        .collect()
}

/// How old a survey taken at `at` is at `now`, in whole seconds.
pub fn age_seconds(at: UnixMillis, now: UnixMillis) -> u64 {
    now.0.saturating_sub(at.0) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(name: &str, src: (u64, u64), rep: Option<ReplicaSeen>) -> Surveyed {
        Surveyed {
            unreadable: Vec::new(),
            account: name.into(),
            source_sequence: Some(src.0),
            source_item_id: Some(src.1),
            source_paused: false,
            replicas: usize::from(rep.is_some()),
            replica: rep,
        }
    }

    fn healthy(seq: u64, item: u64) -> ReplicaSeen {
        ReplicaSeen {
            destination: Some("mbox2.example.com".into()),
            available: Some(true),
            can_connect_to_kafka: Some(true),
            paused: Some(false),
            sequence: Some(seq),
            item_id: Some(item),
            priority: Some(10),
        }
    }

    #[test]
    fn each_field_gives_its_class_and_the_lag_is_measured() {
        let s = Survey {
            version: SURVEY_VERSION,
            host: "mbox1.example.com".into(),
            at: UnixMillis(0),
            accounts: vec![
                acct("ok@x", (10, 5), Some(healthy(10, 5))),
                acct("ahead@x", (10, 5), Some(healthy(11, 6))),
                acct(
                    "unavail@x",
                    (10, 5),
                    Some(ReplicaSeen {
                        available: Some(false),
                        ..healthy(10, 5)
                    }),
                ),
                acct(
                    "kafka@x",
                    (10, 5),
                    Some(ReplicaSeen {
                        can_connect_to_kafka: Some(false),
                        ..healthy(10, 5)
                    }),
                ),
                acct(
                    "paused@x",
                    (10, 5),
                    Some(ReplicaSeen {
                        paused: Some(true),
                        ..healthy(10, 5)
                    }),
                ),
                acct("seq@x", (100, 5), Some(healthy(88, 5))),
                acct("item@x", (10, 50), Some(healthy(10, 47))),
                acct("none@x", (10, 5), None),
            ],
        };
        let sum = s.summary();
        let names: Vec<(&str, ReplicaState)> = sum
            .at_risk
            .iter()
            .map(|r| (r.account.as_str(), r.state))
            .collect();
        assert_eq!(
            names,
            vec![
                ("unavail@x", ReplicaState::Unavailable),
                ("kafka@x", ReplicaState::NoKafka),
                ("paused@x", ReplicaState::Paused),
                ("seq@x", ReplicaState::Behind),
                ("item@x", ReplicaState::Behind),
                ("none@x", ReplicaState::NoReplica),
            ]
        );
        assert_eq!(sum.counts["ok"], 2);
        assert_eq!(sum.counts["behind"], 2);
        assert_eq!(sum.max_lag_sequence, 12);
        assert_eq!(sum.max_lag_item_id, 3);
        assert_eq!(sum.destinations["mbox2.example.com"], 7);
        assert_eq!(sum.destinations["(none)"], 1);
        assert_eq!(
            sum.at_risk[3].to_string(),
            "behind the source by 12 sequence (replica on mbox2.example.com)"
        );
    }

    #[test]
    fn at_promotion_the_source_values_come_from_the_survey() {
        let last = Survey {
            version: SURVEY_VERSION,
            host: "h".into(),
            at: UnixMillis(0),
            accounts: vec![acct("a@x", (100, 50), Some(healthy(100, 50)))],
        };
        // The source is gone: the fresh listing reports no source values,
        // and the replica stopped at 90.
        let mut fresh = acct("a@x", (0, 0), Some(healthy(90, 50)));
        fresh.source_sequence = None;
        fresh.source_item_id = None;
        let r = at_promotion(Some(&last), &[fresh.clone()]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].lag_sequence, Some(10));
        assert!(at_promotion(None, &[fresh]).is_empty());
    }
}
