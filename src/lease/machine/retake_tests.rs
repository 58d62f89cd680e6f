//! A start without `lease.json` (a first start, the operator's failback):
//! the record is listed again at once, and one from before is not
//! trusted.

use super::*;

const TTL: Duration = Duration::from_secs(15);

fn t() -> Timing {
    Timing { ttl: TTL }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn listing(started_at: Instant, v: &[&str]) -> Observation {
    Observation::Directory {
        started_at,
        accounts: Ok(names(v)),
    }
}

/// Started at `t0` without `lease.json`, `lease-accounts.json` still
/// saying (from before the failback) that nothing lives here.
fn failed_back(t0: Instant) -> Lease {
    let l = Lease::start(t(), Saved::default(), t0, None)
        .with_record(Some(Vec::new()), RECORD_EVERY)
        .retaking_the_record();
    assert_eq!(l.recorded, None, "the record from before is not trusted");
    assert!(l.retake_pending());
    l
}

/// The lease back at `back` (the failover key absent, as a forced
/// promotion leaves it), the secondary seen from here, the settle time
/// over: the commands of the renewal that then asks the directory.
fn back_and_seen(l: &mut Lease, back: Instant) -> Vec<Command> {
    l.observe(Observation::Renewed { sent_at: back }, back);
    l.observe(Observation::FailoverKey { lock_index: None }, back);
    l.observe(
        Observation::Round {
            at: back,
            peer_up: true,
        },
        back,
    );
    let then = back + l.directory_settle();
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: then }, then),
        vec![Command::ReadFailoverKey]
    );
    l.observe(Observation::FailoverKey { lock_index: None }, then)
}

#[test]
fn a_failback_fenced_before_it_served_keeps_the_accounts_listed_at_its_start() {
    // The restarted habeat cannot take its key (its previous session still
    // holds it, then the lock-delay): it fences before any renewal. The
    // listing asked for at its start, answered after the fence, is the
    // record; a promotion while fenced then shows in the directory.
    let t0 = Instant::now();
    let mut l = failed_back(t0);
    assert_eq!(
        l.observe(Observation::Tick, t0),
        vec![Command::ReadDirectory, Command::ReadFailoverKey]
    );
    assert!(!l.retake_pending());
    assert!(l.observe(Observation::RenewFailed, t0 + s(1)).is_empty());
    assert_eq!(
        l.observe(Observation::Tick, t0 + s(10)),
        vec![Command::Fence]
    );
    l.observe(Observation::FenceHooksDone, t0 + s(12));
    assert_eq!(
        l.observe(listing(t0, &["bob", "alice"]), t0 + s(13)),
        vec![Command::SaveRecord]
    );
    assert_eq!(l.recorded, Some(names(&["alice", "bob"])));
    // The lease back at t0 + 60s: not unfenced on the key alone.
    let c = back_and_seen(&mut l, t0 + s(60));
    assert_eq!(c, vec![Command::ReadDirectory]);
    let now = t0 + s(66);
    assert_eq!(
        l.observe(listing(t0 + s(65), &[]), now),
        vec![Command::StayFenced]
    );
    assert_eq!(l.moved, names(&["alice", "bob"]));
    assert!(l.saved.fenced && l.saved.stuck);
    // Without the promotion: every account still here, it unfences.
    let mut l = failed_back(t0);
    l.observe(Observation::Tick, t0);
    l.observe(Observation::Tick, t0 + s(10));
    l.observe(Observation::FenceHooksDone, t0 + s(12));
    l.observe(listing(t0, &["alice", "bob"]), t0 + s(13));
    back_and_seen(&mut l, t0 + s(60));
    assert_eq!(
        l.observe(listing(t0 + s(65), &["alice", "bob"]), now),
        vec![Command::Unfence]
    );
}

#[test]
fn the_start_listing_still_out_when_the_lease_comes_back_is_the_record_not_the_evidence() {
    let t0 = Instant::now();
    let mut l = failed_back(t0);
    l.observe(Observation::Tick, t0);
    l.observe(Observation::Tick, t0 + s(10));
    l.observe(Observation::FenceHooksDone, t0 + s(12));
    // The key says go, the start listing is awaited (one read at a time).
    assert!(back_and_seen(&mut l, t0 + s(60)).is_empty());
    // It answers: the record, and a listing of now is asked for.
    assert_eq!(
        l.observe(listing(t0, &["alice"]), t0 + s(66)),
        vec![Command::SaveRecord, Command::ReadDirectory]
    );
    assert_eq!(
        l.observe(listing(t0 + s(66), &[]), t0 + s(67)),
        vec![Command::StayFenced]
    );
}

#[test]
fn a_start_listing_that_fails_leaves_no_record_and_is_asked_again_while_serving() {
    let t0 = Instant::now();
    let mut l = failed_back(t0);
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: t0 }, t0),
        vec![Command::ReadDirectory, Command::ReadFailoverKey]
    );
    let c = l.observe(
        Observation::Directory {
            started_at: t0,
            accounts: Err("carbonio timed out".into()),
        },
        t0 + s(1),
    );
    assert!(matches!(&c[..], [Command::RecordFailed { .. }]), "{c:?}");
    assert_eq!(l.recorded, None, "nothing from before stands in for it");
    let r = t0 + s(5);
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: r }, r),
        vec![Command::ReadFailoverKey, Command::ReadDirectory]
    );
    assert_eq!(
        l.observe(listing(r, &["alice"]), r),
        vec![Command::SaveRecord]
    );
    // Fenced before any listing succeeded: no evidence, as before.
    let mut l = failed_back(t0);
    l.observe(Observation::Tick, t0);
    l.observe(
        Observation::Directory {
            started_at: t0,
            accounts: Err("carbonio timed out".into()),
        },
        t0 + s(1),
    );
    l.observe(Observation::Tick, t0 + s(10));
    l.observe(Observation::FenceHooksDone, t0 + s(12));
    assert_eq!(
        back_and_seen(&mut l, t0 + s(60)),
        vec![Command::ReadDirectory]
    );
    let c = l.observe(listing(t0 + s(65), &["alice"]), t0 + s(66));
    assert!(matches!(&c[..], [Command::NoEvidence { .. }]), "{c:?}");
    assert!(l.saved.fenced && !l.saved.stuck);
}

#[test]
fn serving_from_the_start_the_start_listing_is_the_first_record() {
    // A first start whose key is free: one listing, not a second at the
    // first renewal; the next after record_every.
    let t0 = Instant::now();
    let mut l = Lease::start(t(), Saved::default(), t0, None)
        .with_record(None, RECORD_EVERY)
        .retaking_the_record();
    assert_eq!(
        l.observe(Observation::Tick, t0),
        vec![Command::ReadDirectory, Command::ReadFailoverKey]
    );
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: t0 }, t0),
        vec![Command::ReadFailoverKey]
    );
    assert_eq!(
        l.observe(listing(t0, &["alice"]), t0 + s(1)),
        vec![Command::SaveRecord]
    );
    let r = t0 + s(5);
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: r }, r),
        vec![Command::ReadFailoverKey]
    );
    let due = t0 + RECORD_EVERY;
    assert!(
        l.observe(Observation::Renewed { sent_at: due }, due)
            .contains(&Command::ReadDirectory)
    );
}

#[test]
fn a_restart_with_lease_json_keeps_its_record_and_lists_nothing_at_start() {
    let t0 = Instant::now();
    let saved = Saved {
        fenced: true,
        fence: Some(FenceRun::Done),
        last_renewed_unix: Some(1),
        ..Saved::default()
    };
    let mut l = Lease::start(t(), saved, t0, Some(s(100)))
        .with_record(Some(names(&["alice"])), RECORD_EVERY);
    assert!(!l.retake_pending());
    assert!(l.observe(Observation::Tick, t0).is_empty());
    assert_eq!(l.recorded, Some(names(&["alice"])));
}

#[test]
fn the_failover_key_read_at_start_is_the_index_a_later_promotion_must_pass() {
    // The failback of an automatic promotion: the key's index is 4 (taken
    // by the promotion that was failed back). The restarted habeat fences
    // before it serves; with the lease back and no promotion since, the
    // directory decides, and a new promotion (5) keeps it fenced.
    let t0 = Instant::now();
    for (at_back, unfenced) in [(4, true), (5, false)] {
        let mut l = failed_back(t0);
        l.observe(Observation::Tick, t0);
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(4),
            },
            t0,
        );
        assert_eq!(l.saved.failover_lock_index, Some(4));
        l.observe(listing(t0, &["alice"]), t0 + s(1));
        l.observe(Observation::Tick, t0 + s(10));
        l.observe(Observation::FenceHooksDone, t0 + s(12));
        let back = t0 + s(60);
        l.observe(Observation::Renewed { sent_at: back }, back);
        let key = Observation::FailoverKey {
            lock_index: Some(at_back),
        };
        let c = l.observe(key.clone(), back);
        if !unfenced {
            assert_eq!(c, vec![Command::StayFenced]);
            continue;
        }
        l.observe(
            Observation::Round {
                at: back,
                peer_up: true,
            },
            back,
        );
        let then = back + s(5);
        l.observe(Observation::Renewed { sent_at: then }, then);
        assert_eq!(l.observe(key, then), vec![Command::ReadDirectory]);
        assert_eq!(
            l.observe(listing(then, &["alice"]), then),
            vec![Command::Unfence]
        );
    }
}
