//! The serving lease machine's rules, one test each.

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

/// Serving since `t0`, `alice` and `bob` recorded on this mail host.
fn running(t0: Instant) -> Lease {
    let mut l = Lease::start(t(), Saved::default(), t0, None);
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: t0 }, t0),
        vec![Command::ReadFailoverKey, Command::ReadDirectory]
    );
    l.observe(
        Observation::FailoverKey {
            lock_index: Some(3),
        },
        t0,
    );
    assert_eq!(
        l.observe(listing(t0, &["bob", "alice"]), t0),
        vec![Command::SaveRecord]
    );
    assert_eq!(l.recorded, Some(names(&["alice", "bob"])));
    l
}

/// `running`, fenced at t0 + 10s, the lease back at `back` and the
/// failover key unchanged: the directory is asked.
fn back_key_unchanged(t0: Instant, back: Instant) -> Lease {
    let mut l = running(t0);
    assert_eq!(
        l.observe(Observation::Tick, t0 + s(10)),
        vec![Command::Fence]
    );
    l.observe(Observation::FenceHooksDone, t0 + s(10));
    seen_back(&mut l, back - s(5));
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: back }, back),
        vec![Command::ReadFailoverKey]
    );
    assert_eq!(
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(3)
            },
            back
        ),
        vec![Command::ReadDirectory]
    );
    l
}

fn waiting(c: &[Command]) -> bool {
    matches!(c, [Command::NoEvidence { reason }] if reason == WAITING_FOR_THE_SECONDARY)
}

/// Fenced: the lease comes back at `at`, the failover key is unchanged,
/// but the secondary is not seen yet, so the directory is not read; then
/// a round ending at `at` sees the secondary's mailstore Up. A listing
/// counts from `at` + the settle time (one renewal period) on.
fn seen_back(l: &mut Lease, at: Instant) {
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: at }, at),
        vec![Command::ReadFailoverKey]
    );
    let c = l.observe(
        Observation::FailoverKey {
            lock_index: Some(3),
        },
        at,
    );
    assert!(waiting(&c), "{c:?}");
    assert_eq!(l.unproven.as_deref(), Some(WAITING_FOR_THE_SECONDARY));
    l.observe(Observation::Round { at, peer_up: true }, at);
}

#[test]
fn the_numbers_for_the_default_ttl() {
    assert_eq!(t().renew_every(), s(5));
    assert_eq!(t().margin(), s(10));
}

#[test]
fn a_blip_shorter_than_the_margin_does_nothing() {
    let t0 = Instant::now();
    let mut l = running(t0);
    for k in 1..10 {
        assert!(l.observe(Observation::RenewFailed, t0 + s(k)).is_empty());
    }
    l.observe(Observation::Renewed { sent_at: t0 + s(9) }, t0 + s(9));
    for k in 10..19 {
        assert!(
            !l.observe(Observation::RenewFailed, t0 + s(k))
                .contains(&Command::Fence)
        );
    }
    assert_eq!(l.phase(t0 + s(18)), Phase::Held);
}

#[test]
fn no_renewal_for_the_margin_fences_once() {
    let t0 = Instant::now();
    let mut l = running(t0);
    assert_eq!(
        l.observe(Observation::RenewFailed, t0 + s(10)),
        vec![Command::Fence]
    );
    assert!(l.saved.fenced);
    assert!(l.observe(Observation::Tick, t0 + s(11)).is_empty(), "once");
    assert_eq!(l.phase(t0 + s(11)), Phase::Fencing);
    l.observe(Observation::FenceHooksDone, t0 + s(12));
    assert!(l.observe(Observation::Tick, t0 + s(13)).is_empty(), "once");
    assert_eq!(l.phase(t0 + s(13)), Phase::Fenced);
}

#[test]
fn the_fence_comes_before_consul_can_expire_the_session() {
    // Renewal requests sent at r; Consul restarts the TTL no earlier.
    let t0 = Instant::now();
    let mut l = running(t0);
    let r = t0 + Duration::from_millis(4_321);
    l.observe(Observation::Renewed { sent_at: r }, r + s(1));
    let mut fenced_at = None;
    for ms in (0..30_000).step_by(50) {
        let now = t0 + Duration::from_millis(ms);
        if now < r + s(1) {
            continue;
        }
        if l.observe(Observation::Tick, now).contains(&Command::Fence) {
            fenced_at = Some(now);
            break;
        }
    }
    let fenced_at = fenced_at.expect("fences");
    // Earliest expiry r + ttl, earliest takeover r + ttl + lock-delay.
    assert!(fenced_at < r + TTL);
    assert!(fenced_at + TTL / 3 <= r + TTL + Duration::from_millis(50));
}

#[test]
fn a_witness_seeing_the_secondary_up_holds_the_fence_back() {
    let t0 = Instant::now();
    let mut l = running(t0);
    l.observe(
        Observation::Round {
            at: t0 + s(9),
            peer_up: true,
        },
        t0 + s(9),
    );
    assert!(l.observe(Observation::Tick, t0 + s(10)).is_empty());
    assert_eq!(l.phase(t0 + s(10)), Phase::LapsedPeerUp);
    l.observe(
        Observation::Round {
            at: t0 + s(12),
            peer_up: true,
        },
        t0 + s(12),
    );
    assert!(l.observe(Observation::Tick, t0 + s(14)).is_empty());
    // The Up vote goes stale (no round for ttl/3): fence.
    assert_eq!(
        l.observe(Observation::Tick, t0 + s(17)),
        vec![Command::Fence]
    );
    // Or the peer is seen Down.
    let mut l = running(t0);
    l.observe(
        Observation::Round {
            at: t0 + s(9),
            peer_up: true,
        },
        t0 + s(9),
    );
    assert_eq!(
        l.observe(
            Observation::Round {
                at: t0 + s(11),
                peer_up: false
            },
            t0 + s(11)
        ),
        vec![Command::Fence]
    );
}

#[test]
fn lease_back_without_a_promotion_unfences() {
    let t0 = Instant::now();
    let back = t0 + s(40);
    let mut l = back_key_unchanged(t0, back);
    assert_eq!(l.phase(back), Phase::Fenced, "not on the key alone");
    // Every recorded account still here (and a new one): unfence.
    assert_eq!(
        l.observe(listing(back, &["carol", "bob", "alice"]), back),
        vec![Command::Unfence]
    );
    assert!(!l.saved.fenced);
    assert_eq!(l.phase(back), Phase::Held);
}

#[test]
fn a_promotion_that_left_the_failover_key_alone_is_seen_in_the_directory() {
    // A manual promote, or one with the quorum gate off: the key's
    // LockIndex never moved, but bob's mailHost did.
    let t0 = Instant::now();
    let back = t0 + s(40);
    let mut l = back_key_unchanged(t0, back);
    assert_eq!(
        l.observe(listing(back, &["alice"]), back),
        vec![Command::StayFenced]
    );
    assert!(l.saved.fenced && l.saved.stuck);
    assert_eq!(l.moved, names(&["bob"]));
    for k in 41..60 {
        let now = t0 + s(k);
        let c = l.observe(Observation::Renewed { sent_at: now }, now);
        assert!(c.is_empty(), "{c:?}");
        let c = l.observe(listing(now, &["alice", "bob"]), now);
        assert!(c.is_empty(), "stuck is for good: {c:?}");
    }
    assert_eq!(l.phase(t0 + s(60)), Phase::FencedAfterPromotion);
}

#[test]
fn a_listing_that_fails_is_no_evidence_and_is_asked_again() {
    let t0 = Instant::now();
    let back = t0 + s(40);
    let mut l = back_key_unchanged(t0, back);
    let failed = Observation::Directory {
        started_at: back,
        accounts: Err("Unable to communicate with server".into()),
    };
    let c = l.observe(failed, back);
    assert!(
        matches!(&c[..], [Command::NoEvidence { reason }] if reason.contains("Unable")),
        "{c:?}"
    );
    assert!(l.saved.fenced && !l.saved.stuck);
    assert!(l.unproven.is_some());
    assert_eq!(l.phase(back), Phase::Fenced);
    // The next renewal asks again; this time the directory answers.
    let next = back + s(5);
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: next }, next),
        vec![Command::ReadFailoverKey]
    );
    assert_eq!(
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(3)
            },
            next
        ),
        vec![Command::ReadDirectory]
    );
    assert_eq!(
        l.observe(listing(next, &["alice", "bob"]), next),
        vec![Command::Unfence]
    );
    assert!(l.unproven.is_none());
}

#[test]
fn a_listing_begun_before_the_lease_came_back_is_not_evidence() {
    let t0 = Instant::now();
    let mut l = running(t0);
    // A record read begun while serving, still in flight at the fence.
    let r = t0 + s(300);
    l.observe(Observation::Renewed { sent_at: r }, r);
    assert!(l.reading.is_some());
    assert_eq!(
        l.observe(Observation::Tick, r + s(10)),
        vec![Command::Fence]
    );
    l.observe(Observation::FenceHooksDone, r + s(10));
    let back = r + s(40);
    seen_back(&mut l, back - s(5));
    l.observe(Observation::Renewed { sent_at: back }, back);
    // One read at a time: the key says go, the read in flight is awaited.
    assert!(
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(3)
            },
            back
        )
        .is_empty()
    );
    // It answers, but it began before the lease came back: read again.
    assert_eq!(
        l.observe(listing(r, &["alice", "bob"]), back),
        vec![Command::ReadDirectory]
    );
    assert_eq!(l.recorded, Some(names(&["alice", "bob"])));
    assert_eq!(
        l.observe(listing(back, &["alice", "bob"]), back),
        vec![Command::Unfence]
    );
}

#[test]
fn a_listing_that_returns_after_the_fence_does_not_replace_the_record() {
    let t0 = Instant::now();
    let mut l = running(t0);
    let r = t0 + s(300);
    l.observe(Observation::Renewed { sent_at: r }, r);
    l.observe(Observation::Tick, r + s(10));
    // Begun while serving, answered fenced: bob already moved.
    assert!(l.observe(listing(r, &["alice"]), r + s(11)).is_empty());
    assert_eq!(l.recorded, Some(names(&["alice", "bob"])));
}

#[test]
fn the_record_is_taken_again_every_record_every_and_sooner_after_a_failure() {
    let t0 = Instant::now();
    let mut l = running(t0);
    for k in 1..60 {
        let now = t0 + s(5 * k);
        let c = l.observe(Observation::Renewed { sent_at: now }, now);
        assert_eq!(c, vec![Command::ReadFailoverKey], "at {k}");
    }
    let due = t0 + RECORD_EVERY;
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: due }, due),
        vec![Command::ReadFailoverKey, Command::ReadDirectory]
    );
    // An unchanged listing is not saved again.
    assert!(l.observe(listing(due, &["alice", "bob"]), due).is_empty());
    let due = due + RECORD_EVERY;
    l.observe(Observation::Renewed { sent_at: due }, due);
    let c = l.observe(
        Observation::Directory {
            started_at: due,
            accounts: Err("timed out".into()),
        },
        due,
    );
    assert!(matches!(&c[..], [Command::RecordFailed { .. }]), "{c:?}");
    assert_eq!(l.recorded, Some(names(&["alice", "bob"])), "kept");
    // Retried after six renewal periods, not a whole record_every.
    let retry = due + t().renew_every() * 6;
    let c = l.observe(Observation::Renewed { sent_at: retry }, retry);
    assert!(c.contains(&Command::ReadDirectory), "{c:?}");
}

#[test]
fn zero_accounts_recorded_wait_for_the_directory_like_any_record() {
    // Nothing lived here when the record was taken, but the directory
    // this side's proxies route by may not know of a promotion yet (the
    // DCs apart): the unfence waits for the secondary seen from here and
    // the settle time, as for any record.
    let t0 = Instant::now();
    let mut l = Lease::start(t(), Saved::default(), t0, None).with_record(None, RECORD_EVERY);
    l.observe(Observation::Renewed { sent_at: t0 }, t0);
    l.observe(Observation::FailoverKey { lock_index: None }, t0);
    assert_eq!(l.observe(listing(t0, &[]), t0), vec![Command::SaveRecord]);
    l.observe(Observation::Tick, t0 + s(10));
    l.observe(Observation::FenceHooksDone, t0 + s(10));
    let back = t0 + s(40);
    l.observe(Observation::Renewed { sent_at: back }, back);
    let c = l.observe(Observation::FailoverKey { lock_index: None }, back);
    assert!(waiting(&c), "{c:?}");
    l.observe(
        Observation::Round {
            at: back,
            peer_up: true,
        },
        back,
    );
    let then = back + s(5);
    l.observe(Observation::Renewed { sent_at: then }, then);
    assert_eq!(
        l.observe(Observation::FailoverKey { lock_index: None }, then),
        vec![Command::ReadDirectory]
    );
    assert_eq!(l.observe(listing(then, &[]), then), vec![Command::Unfence]);
}

#[test]
fn without_a_record_there_is_no_evidence() {
    // Fenced before any listing succeeded (or the record was lost): the
    // directory cannot say what moved, so it proves nothing.
    let t0 = Instant::now();
    let saved = Saved {
        fenced: true,
        fence: Some(FenceRun::Done),
        failover_lock_index: Some(3),
        last_renewed_unix: Some(1),
        ..Saved::default()
    };
    let mut l = Lease::start(t(), saved, t0, Some(s(100))).with_record(None, RECORD_EVERY);
    seen_back(&mut l, t0);
    let t1 = t0 + s(5);
    l.observe(Observation::Renewed { sent_at: t1 }, t1);
    assert_eq!(
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(3)
            },
            t1
        ),
        vec![Command::ReadDirectory]
    );
    let c = l.observe(listing(t1, &["alice"]), t1);
    assert!(matches!(&c[..], [Command::NoEvidence { .. }]), "{c:?}");
    assert!(l.saved.fenced && !l.saved.stuck);
    // A record from before the restart is evidence.
    let saved = l.saved.clone();
    let mut l = Lease::start(t(), saved, t0, Some(s(100)))
        .with_record(Some(names(&["alice"])), RECORD_EVERY);
    seen_back(&mut l, t0);
    l.observe(Observation::Renewed { sent_at: t1 }, t1);
    l.observe(
        Observation::FailoverKey {
            lock_index: Some(3),
        },
        t1,
    );
    assert_eq!(
        l.observe(listing(t1, &["alice"]), t1),
        vec![Command::Unfence]
    );
}

#[test]
fn missing_finds_what_the_directory_no_longer_lists() {
    let r = names(&["a", "b", "c", "d"]);
    assert_eq!(missing(&r, &names(&["a", "b", "c", "d"])), names(&[]));
    assert_eq!(missing(&r, &names(&["a", "c", "e"])), names(&["b", "d"]));
    assert_eq!(missing(&r, &names(&[])), r);
    assert_eq!(missing(&[], &names(&["x"])), names(&[]));
}

#[test]
fn lease_back_after_a_promotion_stays_fenced_for_good() {
    let t0 = Instant::now();
    let mut l = running(t0);
    l.observe(Observation::Tick, t0 + s(10));
    l.observe(Observation::FenceHooksDone, t0 + s(10));
    let back = t0 + s(40);
    l.observe(Observation::Renewed { sent_at: back }, back);
    assert_eq!(
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(4)
            },
            back
        ),
        vec![Command::StayFenced]
    );
    assert!(l.saved.fenced && l.saved.stuck);
    for k in 41..60 {
        let now = t0 + s(k);
        let c = l.observe(Observation::Renewed { sent_at: now }, now);
        assert!(!c.contains(&Command::Unfence), "{c:?}");
    }
    assert_eq!(l.phase(t0 + s(60)), Phase::FencedAfterPromotion);
    // A failover key that appeared where there was none counts too.
    let mut l = Lease::start(t(), Saved::default(), t0, None);
    l.observe(Observation::Renewed { sent_at: t0 }, t0);
    l.observe(Observation::FailoverKey { lock_index: None }, t0);
    l.observe(Observation::Tick, t0 + s(10));
    l.observe(Observation::FenceHooksDone, t0 + s(10));
    l.observe(Observation::Renewed { sent_at: back }, back);
    assert_eq!(
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(1)
            },
            back
        ),
        vec![Command::StayFenced]
    );
}

#[test]
fn the_fenced_state_survives_a_restart() {
    let t0 = Instant::now();
    let mut l = running(t0);
    l.observe(Observation::Tick, t0 + s(10));
    l.observe(Observation::FenceHooksDone, t0 + s(10));
    let saved = l.saved.clone();
    let t1 = t0 + s(100);
    let mut l2 = Lease::start(t(), saved, t1, Some(s(90)));
    assert_eq!(l2.phase(t1), Phase::Fenced);
    assert!(
        l2.observe(Observation::Tick, t1 + s(30)).is_empty(),
        "not fenced twice"
    );
}

#[test]
fn a_restart_ages_the_lease_by_its_saved_renewal() {
    let t0 = Instant::now() + s(100);
    let saved = Saved {
        last_renewed_unix: Some(1),
        failover_lock_index: Some(3),
        ..Saved::default()
    };
    // Restarted 8s after the old process's last renewal: 2s left.
    let mut l = Lease::start(t(), saved.clone(), t0, Some(s(8)));
    assert!(l.observe(Observation::RenewFailed, t0 + s(1)).is_empty());
    assert_eq!(
        l.observe(Observation::RenewFailed, t0 + s(2)),
        vec![Command::Fence]
    );
    // The wall clock went backwards: no age known, lapsed at once.
    let mut l = Lease::start(t(), saved, t0, None);
    assert_eq!(l.observe(Observation::Tick, t0), vec![Command::Fence]);
    // Never held under a lease before: count from the start.
    let mut l = Lease::start(t(), Saved::default(), t0, None);
    assert!(l.observe(Observation::Tick, t0 + s(9)).is_empty());
}

/// `running`, fenced at t0 + 10s with its hooks done.
fn fenced(t0: Instant) -> Lease {
    let mut l = running(t0);
    assert_eq!(
        l.observe(Observation::Tick, t0 + s(10)),
        vec![Command::Fence]
    );
    l.observe(Observation::FenceHooksDone, t0 + s(10));
    l
}

/// One renewal at `at` and the failover key read unchanged: the commands.
fn renew_and_key(l: &mut Lease, at: Instant) -> Vec<Command> {
    assert_eq!(
        l.observe(Observation::Renewed { sent_at: at }, at),
        vec![Command::ReadFailoverKey]
    );
    l.observe(
        Observation::FailoverKey {
            lock_index: Some(3),
        },
        at,
    )
}

#[test]
fn the_directory_is_not_read_before_the_secondary_is_seen_from_here() {
    // The lease came back through the third site while the link between
    // the DCs is still cut: this side's directory replica has not heard
    // of a promotion made meanwhile, so its listing proves nothing.
    let t0 = Instant::now();
    let mut l = fenced(t0);
    for k in (40..=80).step_by(5) {
        let now = t0 + s(k);
        l.observe(
            Observation::Round {
                at: now,
                peer_up: false,
            },
            now,
        );
        let c = renew_and_key(&mut l, now);
        assert!(waiting(&c), "{c:?}");
        assert!(l.saved.fenced);
        assert_eq!(l.phase(now), Phase::Fenced);
    }
    // The DCs are joined again: the secondary is seen at 81s. A listing
    // counts only once its writes had time to replicate here.
    let seen = t0 + s(81);
    l.observe(
        Observation::Round {
            at: seen,
            peer_up: true,
        },
        seen,
    );
    let c = renew_and_key(&mut l, t0 + s(85));
    assert!(waiting(&c), "not before the settle time: {c:?}");
    let after = seen + l.directory_settle();
    assert_eq!(renew_and_key(&mut l, after), vec![Command::ReadDirectory]);
    assert_eq!(
        l.observe(listing(after, &["alice", "bob"]), after),
        vec![Command::Unfence]
    );
    assert!(l.unproven.is_none());
}

#[test]
fn a_sighting_before_the_lease_came_back_does_not_count() {
    let t0 = Instant::now();
    let mut l = fenced(t0);
    // Seen Up while the lease was still lost (cut from the Consul
    // majority, the link to the secondary up): it proves nothing of the
    // DCs when the lease comes back.
    let before = t0 + s(30);
    l.observe(
        Observation::Round {
            at: before,
            peer_up: true,
        },
        before,
    );
    let c = renew_and_key(&mut l, t0 + s(40));
    assert!(waiting(&c), "{c:?}");
    let c = renew_and_key(&mut l, t0 + s(45));
    assert!(waiting(&c), "{c:?}");
}

#[test]
fn the_secondary_seen_down_again_withdraws_the_sighting() {
    let t0 = Instant::now();
    let mut l = fenced(t0);
    seen_back(&mut l, t0 + s(40));
    // Cut apart again before the listing: wait for a new sighting.
    let down = t0 + s(43);
    l.observe(
        Observation::Round {
            at: down,
            peer_up: false,
        },
        down,
    );
    let c = renew_and_key(&mut l, t0 + s(45));
    assert!(waiting(&c), "{c:?}");
    // Seen down while a listing asked for runs: that listing is no
    // evidence either.
    let up = t0 + s(46);
    l.observe(
        Observation::Round {
            at: up,
            peer_up: true,
        },
        up,
    );
    let at = up + l.directory_settle();
    assert_eq!(renew_and_key(&mut l, at), vec![Command::ReadDirectory]);
    l.observe(Observation::Round { at, peer_up: false }, at);
    let c = l.observe(listing(at, &["alice", "bob"]), at);
    assert!(waiting(&c), "{c:?}");
    assert!(l.saved.fenced);
}
