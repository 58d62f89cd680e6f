//! The fence's own rules: done only when every `on_fence` hook succeeded,
//! owed (and run again) after a failure, a stop or a crash.

use super::*;

const TTL: Duration = Duration::from_secs(15);

fn t() -> Timing {
    Timing { ttl: TTL }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Holding the lease since `t0`, the failover key's index read as 3.
fn running(t0: Instant) -> Lease {
    let mut l = Lease::start(t(), Saved::default(), t0, None).with_record(Some(Vec::new()), s(300));
    l.observe(Observation::Renewed { sent_at: t0 }, t0);
    l.observe(
        Observation::FailoverKey {
            lock_index: Some(3),
        },
        t0,
    );
    l
}

fn failed(l: &mut Lease, now: Instant) -> Vec<Command> {
    l.observe(
        Observation::FenceHooksFailed {
            error: "hook ./withdraw exited with code 1".into(),
            at_unix: 1_000,
        },
        now,
    )
}

#[test]
fn the_fence_is_done_only_when_every_hook_succeeded() {
    let t0 = Instant::now();
    let mut l = running(t0);
    assert_eq!(
        l.observe(Observation::Tick, t0 + s(10)),
        vec![Command::Fence]
    );
    // Saved as due before the hooks run, and shown as such.
    assert!(l.saved.fenced);
    assert_eq!(l.saved.fence, Some(FenceRun::Due));
    assert_eq!(l.phase(t0 + s(11)), Phase::Fencing);
    assert!(
        l.observe(Observation::Tick, t0 + s(12)).is_empty(),
        "running"
    );
    assert!(
        l.observe(Observation::FenceHooksDone, t0 + s(16))
            .is_empty()
    );
    assert_eq!(l.saved.fence, Some(FenceRun::Done));
    assert_eq!(l.phase(t0 + s(16)), Phase::Fenced);
    for k in 17..400 {
        assert!(l.observe(Observation::Tick, t0 + s(k)).is_empty());
    }
}

#[test]
fn a_fence_interrupted_by_a_stop_or_crash_runs_again_at_start() {
    let t0 = Instant::now();
    let mut l = running(t0);
    l.observe(Observation::Tick, t0 + s(10));
    // The process ends while the hooks run: what it saved says due.
    let saved = l.saved.clone();
    let t1 = t0 + s(30);
    let mut l2 =
        Lease::start(t(), saved.clone(), t1, Some(s(30))).with_record(Some(Vec::new()), s(300));
    assert_eq!(l2.phase(t1), Phase::Fencing);
    assert_eq!(
        l2.observe(Observation::RenewFailed, t1),
        vec![Command::Fence]
    );
    // Lease back at start: the failover key is read first; unchanged, the
    // directory cannot prove anything before the secondary is seen from
    // here, so the owed fence runs meanwhile.
    let mut l3 =
        Lease::start(t(), saved.clone(), t1, Some(s(30))).with_record(Some(Vec::new()), s(300));
    assert_eq!(
        l3.observe(Observation::Renewed { sent_at: t1 }, t1),
        vec![Command::ReadFailoverKey]
    );
    let c = l3.observe(
        Observation::FailoverKey {
            lock_index: Some(3),
        },
        t1,
    );
    assert!(
        matches!(&c[..], [Command::NoEvidence { .. }, Command::Fence]),
        "{c:?}"
    );
    // ... and after a promotion, the owed fence runs.
    let mut l4 = Lease::start(t(), saved, t1, Some(s(30))).with_record(Some(Vec::new()), s(300));
    l4.observe(Observation::Renewed { sent_at: t1 }, t1);
    assert_eq!(
        l4.observe(
            Observation::FailoverKey {
                lock_index: Some(4)
            },
            t1
        ),
        vec![Command::StayFenced, Command::Fence]
    );
}

#[test]
fn an_old_lease_file_saying_fenced_owes_the_fence() {
    // Written before `fence` existed, with `fenced` saved before the
    // hooks ran: whether they finished is unknown.
    let old = r#"{"fenced":true,"stuck":false,"failover_lock_index":3,"last_renewed_unix":1}"#;
    let saved: Saved = serde_json::from_str(old).expect("an old lease.json loads");
    assert_eq!(saved.fence, None);
    let t0 = Instant::now();
    let mut l = Lease::start(t(), saved, t0, Some(s(60))).with_record(Some(Vec::new()), s(300));
    assert!(l.fence_owed());
    assert_eq!(
        l.observe(Observation::RenewFailed, t0),
        vec![Command::Fence]
    );
    // Not fenced, in the old format: nothing owed.
    let old = r#"{"fenced":false,"stuck":false,"failover_lock_index":3,"last_renewed_unix":1}"#;
    let saved: Saved = serde_json::from_str(old).expect("loads");
    assert!(
        !Lease::start(t(), saved, t0, Some(s(1)))
            .with_record(Some(Vec::new()), s(300))
            .fence_owed()
    );
}

#[test]
fn failed_fence_hooks_run_again_with_a_bounded_backoff() {
    let t0 = Instant::now();
    let mut l = running(t0);
    l.observe(Observation::Tick, t0 + s(10));
    let mut now = t0 + s(11);
    assert!(failed(&mut l, now).is_empty());
    assert_eq!(l.phase(now), Phase::FenceFailed);
    let mut waits = Vec::new();
    for _ in 0..10 {
        let due = l.fence_due_at(now).expect("owed");
        waits.push((due - now).as_secs());
        assert!(
            l.observe(Observation::Tick, due - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(l.observe(Observation::Tick, due), vec![Command::Fence]);
        assert_eq!(l.fence_due_at(due), None, "not twice at once");
        now = due + s(1);
        assert!(failed(&mut l, now).is_empty());
    }
    assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
    let f = l.saved.fence_failed.clone().expect("failure kept");
    assert_eq!((f.attempts, f.since_unix), (11, 1_000));
    // Success at last: done, the failure forgotten.
    let due = l.fence_due_at(now).expect("owed");
    l.observe(Observation::Tick, due);
    l.observe(Observation::FenceHooksDone, due + s(1));
    assert_eq!(l.saved.fence, Some(FenceRun::Done));
    assert_eq!(l.saved.fence_failed, None);
    assert_eq!(l.phase(due + s(1)), Phase::Fenced);
    assert_eq!(l.fence_due_at(due + s(1)), None);
}

#[test]
fn a_failed_fence_is_retried_even_after_a_promotion() {
    let t0 = Instant::now();
    let mut l = running(t0);
    l.observe(Observation::Tick, t0 + s(10));
    failed(&mut l, t0 + s(11));
    let back = t0 + s(12);
    l.observe(Observation::Renewed { sent_at: back }, back);
    assert_eq!(
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(9)
            },
            back
        ),
        vec![Command::StayFenced]
    );
    assert_eq!(l.phase(back), Phase::FenceFailed);
    assert_eq!(
        l.observe(Observation::Tick, t0 + s(16)),
        vec![Command::Fence]
    );
}

#[test]
fn on_unfence_never_overtakes_running_fence_hooks() {
    let t0 = Instant::now();
    let mut l = running(t0);
    let listing = |at| Observation::Directory {
        started_at: at,
        accounts: Ok(Vec::new()),
    };
    // The record read of the first renewal answers.
    l.observe(listing(t0), t0);
    l.observe(Observation::Tick, t0 + s(10));
    let back = t0 + s(12);
    l.observe(Observation::Renewed { sent_at: back }, back);
    let key = Observation::FailoverKey {
        lock_index: Some(3),
    };
    l.observe(key.clone(), back);
    l.observe(
        Observation::Round {
            at: back,
            peer_up: true,
        },
        back,
    );
    // The directory proves the accounts are here while the hooks run.
    let then = back + s(5);
    l.observe(Observation::Renewed { sent_at: then }, then);
    assert_eq!(l.observe(key.clone(), then), vec![Command::ReadDirectory]);
    assert!(l.observe(listing(then), then).is_empty());
    assert!(l.saved.fenced);
    l.observe(Observation::FenceHooksDone, then + s(1));
    let again = then + s(5);
    l.observe(Observation::Renewed { sent_at: again }, again);
    assert_eq!(l.observe(key, again), vec![Command::ReadDirectory]);
    assert_eq!(l.observe(listing(again), again), vec![Command::Unfence]);
}
