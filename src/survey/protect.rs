//! Protection against the loss of a mailstore, as a survey shows it (SPEC
//! §4, "After a failover"): which accounts have no replica that is
//! available and reaches Kafka (unprotected), and how far the new
//! replicas have come (initialising, catching up, protected). Pure: one
//! pass over a [`Survey`], like [`Survey::summary`].

use super::{Survey, protection, risk};
use crate::engine::UnixMillis;
use crate::replica::Protection;
use serde::Serialize;
use std::collections::BTreeMap;

/// How many of the slowest new replicas are named.
pub const SLOWEST: usize = 5;

/// One unprotected account, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unprotected {
    pub account: String,
    /// `no_replica` or `initialising`.
    pub protection: Protection,
    /// In words: `no replica`, `replica unavailable (replica on HOST)`.
    pub why: String,
}

/// A replica on its way: being seeded, or available and catching up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnItsWay {
    pub account: String,
    /// `initialising` or `catching_up`.
    pub protection: Protection,
    /// The replica's mailstore.
    pub destination: Option<String>,
    /// The replica's `sequence` and the source's.
    pub sequence: Option<u64>,
    pub source_sequence: Option<u64>,
    /// How far behind the source, when it is.
    pub lag_sequence: Option<u64>,
    pub lag_item_id: Option<u64>,
    /// The replica's `sequence` as a share of the source's, in percent.
    pub percent: Option<u64>,
}

impl OnItsWay {
    /// `u1@x 40% (sequence 40 of 100, replica on HOST)`.
    pub fn describe(&self) -> String {
        let mut s = self.account.clone();
        if let Some(p) = self.percent {
            s.push_str(&format!(" {p}%"));
        }
        if let (Some(r), Some(src)) = (self.sequence, self.source_sequence) {
            s.push_str(&format!(" (sequence {r} of {src}"));
        } else {
            s.push_str(" (");
        }
        if let Some(d) = &self.destination {
            s.push_str(&format!(", replica on {d}"));
        }
        s.push(')');
        s
    }
}

/// The protection of a survey's accounts, in figures and names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectionSummary {
    pub host: String,
    pub at: UnixMillis,
    /// The accounts counted (all of the survey's, or those replicated to
    /// the host asked for).
    pub accounts: usize,
    /// Accounts per [`Protection`], every one present.
    pub counts: BTreeMap<&'static str, usize>,
    /// Every unprotected account, in the survey's order.
    pub unprotected: Vec<Unprotected>,
    /// The [`SLOWEST`] replicas furthest from protected, slowest first.
    pub slowest: Vec<OnItsWay>,
}

impl ProtectionSummary {
    /// How many accounts are at `p`.
    pub fn count(&self, p: Protection) -> usize {
        self.counts.get(p.as_str()).copied().unwrap_or(0)
    }

    /// Replicas on their way (initialising or catching up).
    pub fn on_their_way(&self) -> usize {
        self.count(Protection::Initialising) + self.count(Protection::CatchingUp)
    }
}

const ALL: [Protection; 4] = [
    Protection::NoReplica,
    Protection::Initialising,
    Protection::CatchingUp,
    Protection::Protected,
];

impl Survey {
    /// The protection of every account (`replicas_on: None`), or of those
    /// whose replica is on `replicas_on` (the peer's accounts that got a
    /// replica on this DC's mailstore): one pass.
    pub fn protection(&self, replicas_on: Option<&str>) -> ProtectionSummary {
        let mut by = [0usize; ALL.len()];
        let mut unprotected = Vec::new();
        let mut way: Vec<OnItsWay> = Vec::new();
        let mut accounts = 0;
        // A healthy account's replica is available, reaches Kafka and is
        // caught up: protected. Only its count (on the host asked for)
        // is needed, which the compact survey keeps.
        for h in self.healthy.iter() {
            if let Some(on) = replicas_on
                && !h.destination.is_some_and(|d| d.eq_ignore_ascii_case(on))
            {
                continue;
            }
            accounts += 1;
            by[Protection::Protected as usize] += 1;
        }
        for a in &self.at_risk {
            let dest = a.replica.as_ref().and_then(|r| r.destination.as_deref());
            if let Some(h) = replicas_on
                && !dest.is_some_and(|d| d.eq_ignore_ascii_case(h))
            {
                continue;
            }
            accounts += 1;
            let p = protection(a);
            by[p as usize] += 1;
            if p.unprotected() {
                unprotected.push(Unprotected {
                    account: a.account.clone(),
                    protection: p,
                    why: risk(a).map_or_else(|| "no replica".to_owned(), |r| r.to_string()),
                });
            }
            if matches!(p, Protection::Initialising | Protection::CatchingUp) {
                let r = a.replica.as_ref();
                let seq = r.and_then(|r| r.sequence);
                let item = r.and_then(|r| r.item_id);
                let lag = |s: Option<u64>, r: Option<u64>| match (s, r) {
                    (Some(s), Some(r)) if r < s => Some(s - r),
                    _ => None,
                };
                way.push(OnItsWay {
                    account: a.account.clone(),
                    protection: p,
                    destination: dest.map(str::to_owned),
                    sequence: seq,
                    source_sequence: a.source_sequence,
                    lag_sequence: lag(a.source_sequence, seq),
                    lag_item_id: lag(a.source_item_id, item),
                    percent: match (seq, a.source_sequence) {
                        (Some(r), Some(s)) if s > 0 => Some((r.min(s) * 100) / s),
                        _ => None,
                    },
                });
                // Only the slowest few are kept, however many are on
                // their way.
                if way.len() > 4 * SLOWEST {
                    slowest_first(&mut way);
                    way.truncate(SLOWEST);
                }
            }
        }
        slowest_first(&mut way);
        way.truncate(SLOWEST);
        ProtectionSummary {
            host: self.host.clone(),
            at: self.at,
            accounts,
            counts: ALL.iter().map(|p| (p.as_str(), by[*p as usize])).collect(),
            unprotected,
            slowest: way,
        }
    }
}

/// Initialising before catching up; then the least seeded, then the
/// furthest behind.
fn slowest_first(v: &mut [OnItsWay]) {
    v.sort_by(|a, b| {
        a.protection
            .cmp(&b.protection)
            .then(a.percent.unwrap_or(0).cmp(&b.percent.unwrap_or(0)))
            .then(b.lag_sequence.cmp(&a.lag_sequence))
            .then(a.account.cmp(&b.account))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{ReplicaSeen, Surveyed};

    fn acct(name: &str, rep: Option<ReplicaSeen>) -> Surveyed {
        Surveyed {
            unreadable: Vec::new(),
            account: name.into(),
            source_sequence: Some(100),
            source_item_id: Some(50),
            source_paused: false,
            replicas: usize::from(rep.is_some()),
            replica: rep,
        }
    }

    fn rep(dest: &str, available: bool, seq: u64) -> ReplicaSeen {
        ReplicaSeen {
            destination: Some(dest.into()),
            available: Some(available),
            can_connect_to_kafka: Some(available),
            paused: Some(false),
            sequence: Some(seq),
            item_id: Some(50),
            priority: Some(10),
        }
    }

    #[test]
    fn no_replica_and_a_replica_not_yet_available_are_unprotected_the_rest_on_their_way() {
        let s = Survey::new(
            "mbox2",
            UnixMillis(0),
            vec![
                acct("none@x", None),
                acct("seeding@x", Some(rep("mbox1", false, 40))),
                acct("seeding2@x", Some(rep("mbox1", false, 10))),
                acct("behind@x", Some(rep("mbox1", true, 90))),
                acct("ok@x", Some(rep("mbox1", true, 100))),
                acct("elsewhere@x", Some(rep("mbox3", true, 100))),
            ],
        );
        let p = s.protection(None);
        let names: Vec<&str> = p.unprotected.iter().map(|u| u.account.as_str()).collect();
        assert_eq!(names, ["none@x", "seeding@x", "seeding2@x"]);
        assert_eq!(p.unprotected[0].why, "no replica");
        assert_eq!(p.count(Protection::Protected), 2);
        assert_eq!(p.count(Protection::CatchingUp), 1);
        let slow: Vec<&str> = p.slowest.iter().map(|w| w.account.as_str()).collect();
        assert_eq!(slow, ["seeding2@x", "seeding@x", "behind@x"]);
        assert_eq!(p.slowest[0].percent, Some(10));
        let here = s.protection(Some("MBOX1"));
        assert_eq!(here.accounts, 4);
        assert_eq!(here.count(Protection::Protected), 1);
    }
}
