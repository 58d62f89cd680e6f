//! One account's replica as a survey sees it, and why it is at risk:
//! plain data and rules, imported by the engine (which records [`Risk`]s
//! in a promotion), by `act::carbonio` (which turns the CLI's listing into
//! [`Surveyed`] entries) and by `survey` (which keeps, shows and counts
//! them). It imports nothing of habeat, so none of them has to import a
//! module above it to reach these.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

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

#[cfg(test)]
impl Surveyed {
    /// An account whose source is at sequence and itemId 5, with a replica
    /// on `replica_on` caught up, available and reaching Kafka, or with
    /// none.
    pub fn caught_up(account: &str, replica_on: Option<&str>) -> Surveyed {
        Surveyed {
            account: account.into(),
            source_sequence: Some(5),
            source_item_id: Some(5),
            source_paused: false,
            replica: replica_on.map(|d| ReplicaSeen {
                destination: Some(d.into()),
                available: Some(true),
                can_connect_to_kafka: Some(true),
                paused: Some(false),
                sequence: Some(5),
                item_id: Some(5),
                priority: Some(10),
            }),
            replicas: usize::from(replica_on.is_some()),
            unreadable: Vec::new(),
        }
    }
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
pub(crate) struct Classes {
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

    pub(crate) fn as_slice(&self) -> &[ReplicaState] {
        &self.states[..self.len]
    }
}

pub(crate) fn classes(a: &Surveyed) -> (Classes, Option<u64>, Option<u64>) {
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

/// How far an account is protected against the loss of the mailstore it
/// lives on, judged from the replica a promotion would use (an account
/// whose other replicas are fine but whose first one is not is named: a
/// promotion would pick that first one). Beside [`classify`], which says
/// whether that replica is fit to be promoted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// No replica at all (an account just promoted: its replica was the
    /// copy promoted).
    NoReplica,
    /// A replica that is not available or cannot reach Kafka: one being
    /// seeded after `setAccountDestination`, or one that broke.
    Initialising,
    /// A replica that is available and reaches Kafka but is behind,
    /// paused or unreadable: protected, not yet caught up.
    CatchingUp,
    /// A replica available, reaching Kafka, caught up.
    Protected,
}

impl Protection {
    /// Unprotected: no replica that is available and reaches Kafka.
    pub fn unprotected(self) -> bool {
        matches!(self, Protection::NoReplica | Protection::Initialising)
    }

    /// The stable name (JSON, `/metrics` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::NoReplica => "no_replica",
            Protection::Initialising => "initialising",
            Protection::CatchingUp => "catching_up",
            Protection::Protected => "protected",
        }
    }
}

/// The [`Protection`] of one account.
pub fn protection(a: &Surveyed) -> Protection {
    let (c, _, _) = classes(a);
    let c = c.as_slice();
    if c[0] == ReplicaState::NoReplica {
        Protection::NoReplica
    } else if c
        .iter()
        .any(|s| matches!(s, ReplicaState::Unavailable | ReplicaState::NoKafka))
    {
        Protection::Initialising
    } else if c[0] == ReplicaState::Ok {
        Protection::Protected
    } else {
        Protection::CatchingUp
    }
}
