//! The survey's side of the driver: `getAccountStatus mailHost <peer>`
//! read strictly ([`super::parse_survey_listing`]) and turned into the
//! survey's [`Surveyed`] entries (the replica promotion would use: lowest
//! `priority`, the first listed on a tie or when none is given).

use super::entry::{Checked, CheckedReplica, Entry, Fields, Promoted, check};
use super::scan;
use super::stream::Sink;
use super::{AccountStatus, Carbonio, CarbonioError, MailHost, parse_survey_listing};
use crate::replica::{ReplicaSeen, Surveyed};
use std::sync::Arc;

impl From<&AccountStatus> for Surveyed {
    fn from(a: &AccountStatus) -> Surveyed {
        let mut first = Promoted::default();
        for r in &a.replicas {
            first.offer(CheckedReplica {
                destination: r.destination.as_deref(),
                available: r.available,
                priority: r.priority,
                sequence: r.sequence,
                item_id: r.item_id,
                can_connect_to_kafka: r.can_connect_to_kafka,
                paused: r.paused,
                unreadable: r.unreadable.clone(),
            });
        }
        let checked = Checked {
            account_id: &a.account_id,
            account_name: a.account_name.clone(),
            paused: a.paused,
            sequence: a.sequence,
            item_id: a.item_id,
            replicas: a.replicas.len(),
            unreadable: a.unreadable.clone(),
        };
        surveyed(checked, first, &mut Destinations::default())
    }
}

/// The mailstores replicas are on, each name kept once per survey: every
/// account of a mailstore usually replicates to the same one or two.
#[derive(Default)]
pub(super) struct Destinations(Vec<Arc<str>>);

impl Destinations {
    fn get(&mut self, d: &str) -> Arc<str> {
        if let Some(a) = self.0.iter().find(|a| ***a == *d) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(d);
        // A listing that names a new destination per account must not
        // make every lookup slower.
        if self.0.len() < 16 {
            self.0.push(a.clone());
        }
        a
    }
}

/// The survey's entry for a checked account: only what classifies it.
pub(super) fn surveyed(
    a: Checked<'_>,
    first: Promoted<'_>,
    destinations: &mut Destinations,
) -> Surveyed {
    let first = first.0;
    let mut unreadable: Vec<String> = a.unreadable.iter().map(|f| (*f).to_owned()).collect();
    if let Some(r) = &first {
        unreadable.extend(r.unreadable.iter().map(|f| format!("replica {f}")));
    }
    Surveyed {
        replica: first.map(|r| ReplicaSeen {
            destination: r.destination.map(|d| destinations.get(d)),
            available: r.available,
            can_connect_to_kafka: r.can_connect_to_kafka,
            paused: r.paused,
            sequence: r.sequence,
            item_id: r.item_id,
            priority: r.priority,
        }),
        replicas: a.replicas,
        account: a.account_name.into(),
        source_sequence: a.sequence,
        source_item_id: a.item_id,
        source_paused: a.paused,
        unreadable,
    }
}

/// One account entry read for the survey (strictly).
pub(super) fn survey_entry(
    e: &Entry<'_>,
    host: &MailHost,
    destinations: &mut Destinations,
) -> Option<Surveyed> {
    let mut first = Promoted::default();
    let c = check(e, host, Fields::Strict, |r| first.offer(r)).ok()?;
    Some(surveyed(c, first, destinations))
}

/// `getAccountStatus` output read for the survey: what
/// [`parse_survey_listing`] accepts, each account turned into its
/// [`Surveyed`] entry as it is read (no intermediate list of every
/// account's fields), with the same errors.
pub fn parse_survey(stdout: &[u8], host: &MailHost) -> Result<Vec<Surveyed>, String> {
    let mut destinations = Destinations::default();
    match scan::listing(stdout, |e| survey_entry(e, host, &mut destinations)) {
        Some(list) => Ok(list),
        None => Ok(parse_survey_listing(stdout, host)?
            .iter()
            .map(Surveyed::from)
            .collect()),
    }
}

/// Where a survey's accounts go as the listing is read (the survey
/// counts the healthy ones and keeps the ones at risk).
pub trait SurveySink: Send + 'static {
    /// One more account, in the listing's order; an error refuses the
    /// listing.
    fn account(&mut self, a: Surveyed) -> Result<(), String>;
    /// Forget every account taken so far (the listing is read again).
    fn clear(&mut self);
}

/// A [`SurveySink`] reading entries strictly.
struct Strict<S> {
    host: MailHost,
    destinations: Destinations,
    sink: S,
}

impl<S: SurveySink> Sink for Strict<S> {
    fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
        let mut first = Promoted::default();
        let c = check(e, &self.host, Fields::Strict, |r| first.offer(r))?;
        self.sink
            .account(surveyed(c, first, &mut self.destinations))
    }

    fn whole(&mut self, stdout: &[u8]) -> Result<(), String> {
        self.sink.clear();
        for a in parse_survey(stdout, &self.host)? {
            self.sink.account(a)?;
        }
        Ok(())
    }
}

/// [`parse_survey`] into `sink`, each account handed over as it is read.
pub fn parse_survey_into<S: SurveySink>(
    stdout: &[u8],
    host: &MailHost,
    sink: S,
) -> Result<S, String> {
    let mut destinations = Destinations::default();
    let mut refused = None;
    let sink = std::cell::RefCell::new(sink);
    let read = scan::listing_restarting(
        stdout,
        |e| {
            let a = survey_entry(e, host, &mut destinations)?;
            match sink.borrow_mut().account(a) {
                Ok(()) => Some(()),
                Err(why) => {
                    refused = Some(why);
                    None
                }
            }
        },
        || sink.borrow_mut().clear(),
    );
    let mut sink = sink.into_inner();
    if read.is_some() {
        return Ok(sink);
    }
    if let Some(why) = refused {
        return Err(why);
    }
    sink.clear();
    for a in parse_survey(stdout, host)? {
        sink.account(a)?;
    }
    Ok(sink)
}

impl Carbonio {
    /// Survey `host`: every replicated account with its replica's fields,
    /// handed to `sink` as the listing is read (never held whole). Any
    /// failure (the CLI, its output, a field that makes no sense) is an
    /// error: a half survey is no survey.
    pub async fn survey<S: SurveySink>(
        &self,
        host: &MailHost,
        sink: S,
    ) -> Result<S, CarbonioError> {
        let strict = Strict {
            host: host.clone(),
            destinations: Destinations::default(),
            sink,
        };
        Ok(self.listing_into(host, strict).await?.sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_survey_holds_each_replica_mailstore_once_and_reads_as_the_listing_says() {
        let entry = |i: usize, dest: &str| {
            format!(
                r#"{{"accountId":"{i}","accountName":"u{i}@example.com","accountMailHost":"mbox1.example.com","sequence":"5","itemId":7,"replicas":[{{"destination":"{dest}","priority":20,"sequence":4}},{{"destination":"mbox9.example.com","priority":10,"sequence":5,"itemId":7,"available":"true"}}]}}"#
            )
        };
        let out = format!(
            r#"{{"response":{{"values":[{},{},{}]}}}}"#,
            entry(1, "mbox2.example.com"),
            entry(2, "mbox3.example.com"),
            entry(3, "mbox2.example.com")
        );
        let host = MailHost::parse("mbox1.example.com").expect("valid");
        let list = parse_survey(out.as_bytes(), &host).expect("a valid listing");
        let dest = |i: usize| list[i].replica.as_ref().and_then(|r| r.destination.clone());
        let (a, b) = (dest(0).expect("a replica"), dest(2).expect("a replica"));
        assert!(Arc::ptr_eq(&a, &b), "the name is held once");
        let whole: Vec<Surveyed> = parse_survey_listing(out.as_bytes(), &host)
            .expect("a valid listing")
            .iter()
            .map(Surveyed::from)
            .collect();
        assert_eq!(list, whole);
        let first = list[0].replica.as_ref().expect("a replica");
        assert_eq!(
            (
                first.destination.as_deref(),
                first.priority,
                first.available
            ),
            (Some("mbox9.example.com"), Some(10), Some(true)),
            "the replica promotion would use: the lowest priority"
        );
        assert_eq!(list[0].replicas, 2);
        assert_eq!(list[0].source_sequence, Some(5));
    }

    #[test]
    fn a_listing_read_again_from_the_start_hands_each_account_over_once() {
        struct Kept(Vec<String>);
        impl SurveySink for Kept {
            fn account(&mut self, a: Surveyed) -> Result<(), String> {
                self.0.push(a.account);
                Ok(())
            }
            fn clear(&mut self) {
                self.0.clear();
            }
        }
        // The third name is written with an escape: the reading by hand
        // hands over two accounts, gives up there, and serde reads the
        // listing again from its first account.
        let entry = |name: &str| {
            format!(
                r#"{{"accountId":"1","accountName":"{name}","accountMailHost":"mbox1.example.com","sequence":5,"itemId":7,"replicas":[{{"destination":"mbox2.example.com","sequence":5,"itemId":7}}]}}"#
            )
        };
        let out = format!(
            r#"{{"response":{{"values":[{},{},{},{}]}}}}"#,
            entry("u1@example.com"),
            entry("u2@example.com"),
            entry(r"u3\u0040example.com"),
            entry("u4@example.com")
        );
        let host = MailHost::parse("mbox1.example.com").expect("valid");
        let kept = parse_survey_into(out.as_bytes(), &host, Kept(Vec::new())).expect("a listing");
        assert_eq!(
            kept.0,
            [
                "u1@example.com",
                "u2@example.com",
                "u3@example.com",
                "u4@example.com"
            ]
        );
    }
}
