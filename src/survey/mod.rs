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

pub mod job;
pub mod own;
pub mod protect;
pub mod show;
pub mod store;

use crate::replica::classes;
pub use crate::replica::{
    Protection, ReplicaSeen, ReplicaState, Risk, Surveyed, classify, protection, risk,
};

use crate::engine::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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

/// [`at_promotion`] of an account listing as the CLI printed it.
pub fn at_promotion_of_listing(
    last: Option<&Survey>,
    list: &[crate::act::carbonio::AccountStatus],
) -> Vec<Risk> {
    let fresh: Vec<Surveyed> = list.iter().map(Surveyed::from).collect();
    at_promotion(last, &fresh)
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
