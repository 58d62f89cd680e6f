//! The replica survey (SPEC §4, "Replica survey"): what `getAccountStatus`
//! said about each account of the peer mailstore while it was Up, and the
//! classification of each account's replica as `ok` or at risk, with why.
//!
//! This file is pure data and rules (no I/O, no clock): `status` and
//! `/metrics` show a [`Summary`]. One account's classes and its [`Risk`]
//! are `crate::replica`'s (re-exported here), below the engine, which
//! records them in the promotion, and below `act::carbonio`, which turns
//! the CLI's output into [`Surveyed`] entries. `store.rs` keeps the last
//! survey in `state_dir/survey.json`; `job.rs` runs one.
//!
//! Invariant `replicas-at-risk-named` (13): no account is promoted without
//! the operator being able to see, before (`status`) and after (the
//! promotion record, `history`), whether its replica was at risk and why.

mod healthy;
pub mod job;
pub mod own;
pub mod protect;
pub mod show;
pub mod store;

pub use healthy::{Healthy, HealthyAccount};

use crate::replica::classes;
pub use crate::replica::{
    Protection, ReplicaSeen, ReplicaState, Risk, Surveyed, classify, protection, risk,
};

use crate::engine::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the `survey.json` layout (1: every account whole).
pub const SURVEY_VERSION: u32 = 2;

/// One survey of `host`, as listed at `at`: every account counted, the
/// accounts at risk kept whole, the healthy ones compact ([`Healthy`]).
/// Its memory grows with the accounts at risk, and by about 25 bytes
/// beside its name per healthy account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    /// [`SURVEY_VERSION`].
    pub version: u32,
    /// The mailstore that was surveyed (the peer appserver).
    pub host: String,
    /// When the listing finished.
    pub at: UnixMillis,
    /// Each account at risk, whole, in the CLI's order.
    pub at_risk: Vec<Surveyed>,
    /// The healthy accounts, in the CLI's order.
    pub healthy: Healthy,
    /// Where a promotion would move the accounts: destination → count.
    pub destinations: BTreeMap<String, usize>,
    /// [`Self::at_risk`]'s positions sorted by name (rebuilt on load).
    #[serde(skip)]
    by_name: Vec<u32>,
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

/// A survey being filled as the listing is read, one account at a time.
#[derive(Debug, Default)]
pub struct Builder {
    at_risk: Vec<Surveyed>,
    healthy: Healthy,
    destinations: BTreeMap<String, usize>,
}

impl Builder {
    /// Count one account, and keep what is needed of it.
    pub fn push(&mut self, a: Surveyed) -> Result<(), String> {
        let dest = a.replica.as_ref().and_then(|r| r.destination.as_deref());
        // Looked up by reference: a copy of the name per account would be
        // most of the time spent here.
        match self.destinations.get_mut(dest.unwrap_or("(none)")) {
            Some(n) => *n += 1,
            None => {
                self.destinations
                    .insert(dest.unwrap_or("(none)").to_owned(), 1);
            }
        }
        if classes(&a).0.as_slice()[0] == ReplicaState::Ok {
            self.healthy
                .push(&a.account, a.source_sequence, a.source_item_id, dest)
        } else {
            self.at_risk.push(a);
            Ok(())
        }
    }

    /// The survey of `host` at `at`.
    pub fn finish(mut self, host: String, at: UnixMillis) -> Survey {
        self.at_risk.shrink_to_fit();
        let mut s = Survey {
            version: SURVEY_VERSION,
            host,
            at,
            at_risk: self.at_risk,
            healthy: self.healthy,
            destinations: self.destinations,
            by_name: Vec::new(),
        };
        s.reindex();
        s
    }
}

impl crate::act::carbonio::SurveySink for Builder {
    fn account(&mut self, a: Surveyed) -> Result<(), String> {
        self.push(a)
    }

    fn clear(&mut self) {
        *self = Builder::default();
    }
}

impl Survey {
    /// The survey of `accounts` (in the CLI's order).
    pub fn new(host: impl Into<String>, at: UnixMillis, accounts: Vec<Surveyed>) -> Survey {
        let mut b = Builder::default();
        for a in accounts {
            // Only past 4 GiB of names, which a Vec of them could not hold.
            let _ = b.push(a);
        }
        b.finish(host.into(), at)
    }

    /// Rebuild what is not saved (after reading `survey.json`).
    pub(crate) fn reindex(&mut self) {
        let mut by_name: Vec<u32> = (0..self.at_risk.len() as u32).collect();
        by_name.sort_by(|a, b| {
            self.at_risk[*a as usize]
                .account
                .cmp(&self.at_risk[*b as usize].account)
        });
        self.by_name = by_name;
    }

    /// How many accounts were surveyed.
    pub fn len(&self) -> usize {
        self.at_risk.len() + self.healthy.len()
    }

    /// No account at all: nothing a promotion could move.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Count, name and measure: one pass over the accounts at risk.
    pub fn summary(&self) -> Summary {
        let mut by_class = [0usize; ReplicaState::ALL.len()];
        by_class[ReplicaState::Ok as usize] = self.healthy.len();
        let mut at_risk = Vec::with_capacity(self.at_risk.len());
        let (mut max_seq, mut max_item) = (0, 0);
        for a in &self.at_risk {
            let (states, ls, li) = classes(a);
            let states = states.as_slice();
            by_class[states[0] as usize] += 1;
            max_seq = max_seq.max(ls.unwrap_or(0));
            max_item = max_item.max(li.unwrap_or(0));
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
        let counts = ReplicaState::ALL
            .iter()
            .map(|s| (s.as_str(), by_class[*s as usize]))
            .collect();
        Summary {
            host: self.host.clone(),
            at: self.at,
            accounts: self.len(),
            counts,
            at_risk,
            max_lag_sequence: max_seq,
            max_lag_item_id: max_item,
            destinations: self.destinations.clone(),
        }
    }

    /// The names of the accounts at risk, sorted (what a
    /// `replicas_at_risk_changed` event compares).
    pub fn at_risk_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .at_risk
            .iter()
            .filter(|a| risk(a).is_some())
            .map(|a| a.account.clone())
            .collect();
        v.sort();
        v
    }

    /// What the survey saw of `account`'s source: its `sequence`, its
    /// `itemId` and whether it was paused.
    pub fn source_of(&self, account: &str) -> Option<(Option<u64>, Option<u64>, bool)> {
        if let Ok(i) = self
            .by_name
            .binary_search_by(|i| self.at_risk[*i as usize].account.as_str().cmp(account))
        {
            let a = &self.at_risk[self.by_name[i] as usize];
            return Some((a.source_sequence, a.source_item_id, a.source_paused));
        }
        self.healthy
            .find(account)
            .map(|h| (h.source_sequence, h.source_item_id, false))
    }
}

/// The at-risk analysis at promotion time of one account of the listing
/// made just before promoting (`fresh`, the replica's current fields)
/// against the last survey. The source is usually gone by then, so its
/// `sequence` and `itemId` are the survey's (or the fresh listing's, when
/// higher or when the survey does not know the account).
pub fn at_promotion_of(last: Option<&Survey>, fresh: &Surveyed) -> Option<Risk> {
    let Some(old) = last.and_then(|s| s.source_of(&fresh.account)) else {
        return risk(fresh);
    };
    let mut a = fresh.clone();
    a.source_sequence = a.source_sequence.max(old.0);
    a.source_item_id = a.source_item_id.max(old.1);
    a.source_paused |= old.2;
    risk(&a)
}

/// [`at_promotion_of`] each account of a listing: the accounts at risk,
/// in the listing's order.
pub fn at_promotion(last: Option<&Survey>, fresh: &[Surveyed]) -> Vec<Risk> {
    fresh
        .iter()
        .filter_map(|a| at_promotion_of(last, a))
        .collect()
}

/// [`at_promotion`] of an account listing as the CLI printed it.
pub fn at_promotion_of_listing(
    last: Option<&Survey>,
    list: &[crate::act::carbonio::AccountStatus],
) -> Vec<Risk> {
    list.iter()
        .filter_map(|a| at_promotion_of(last, &Surveyed::from(a)))
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
        let s = Survey::new(
            "mbox1.example.com",
            UnixMillis(0),
            vec![
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
        );
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
        let last = Survey::new(
            "h",
            UnixMillis(0),
            vec![acct("a@x", (100, 50), Some(healthy(100, 50)))],
        );
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

    #[test]
    fn a_survey_reads_back_as_written_and_finds_every_account() {
        let mut accounts: Vec<Surveyed> = (0..50)
            .rev()
            .map(|i| acct(&format!("u{i:02}@x"), (10, 5), Some(healthy(10, 5))))
            .collect();
        accounts.push(acct("behind@x", (100, 5), Some(healthy(88, 5))));
        accounts.push(acct("none@x", (7, 5), None));
        let s = Survey::new("h", UnixMillis(3), accounts);
        assert_eq!((s.len(), s.healthy.len(), s.at_risk.len()), (52, 50, 2));
        let text = serde_json::to_string(&s).expect("serialize");
        let mut back: Survey = serde_json::from_str(&text).expect("read back");
        back.reindex();
        assert_eq!(back, s);
        assert_eq!(back.summary(), s.summary());
        assert_eq!(back.source_of("u07@x"), Some((Some(10), Some(5), false)));
        assert_eq!(
            back.source_of("behind@x"),
            Some((Some(100), Some(5), false))
        );
        assert_eq!(back.source_of("none@x"), Some((Some(7), Some(5), false)));
        assert_eq!(back.source_of("u99@x"), None);
        let h = back.healthy.find("u31@x").expect("found");
        assert_eq!(h.destination, Some("mbox2.example.com"));
    }
}
