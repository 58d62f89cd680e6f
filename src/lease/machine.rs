//! The serving lease's decisions, pure: fed observations and monotonic
//! times, it says what to do. No I/O, no clock (`now` comes in), so every
//! rule is a unit test (`invariant lease-before-takeover`, SPEC 14).
//!
//! The rule (docs/decisions.md, "The serving lease"): the lease was last
//! renewed at `r` (the moment the successful renewal request was *sent*,
//! by this process's monotonic clock: Consul restarted the session's TTL no
//! earlier than that). With no renewal since, at `r + ttl - ttl/3` this
//! side fences itself, unless a witness saw the secondary's mailstore Up
//! in a round that ended less than `ttl/3` ago (then the secondary sees
//! this side too and will not promote it: Patroni's `failsafe_mode`; a
//! local Consul agent crash alone never takes mail down). Consul expires
//! the session no earlier than `r + ttl` and keeps its key blocked for the
//! lock-delay after that: the secondary cannot take the key over before
//! `r + ttl + lock_delay`.
//!
//! A fence counts as done only once every `on_fence` hook has finished
//! with success: until then it is *due* (saved so, before the hooks run),
//! and a due fence runs again: after a failure with a bounded backoff
//! ([`fence_retry_delay`]), and at the start of a new process when the
//! previous one was stopped, killed or crashed while the hooks ran.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The two durations the rule needs, from `lease.ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ttl: Duration,
}

impl Timing {
    /// How often the session is renewed: ttl/3.
    pub fn renew_every(self) -> Duration {
        self.ttl / 3
    }

    /// How long without a renewal before fencing: ttl - ttl/3.
    pub fn margin(self) -> Duration {
        self.ttl - self.ttl / 3
    }
}

/// The first wait before running failed `on_fence` hooks again; it doubles
/// at each failure up to [`FENCE_RETRY_MAX`].
pub const FENCE_RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between two runs of failing `on_fence` hooks.
pub const FENCE_RETRY_MAX: Duration = Duration::from_secs(300);

/// How long to wait after the `attempts`-th failed run of the `on_fence`
/// hooks: 5s, 10s, 20s, ... at most 5 min. Bounded, because a side that
/// lost its lease and is not fenced may be serving beside a promoted
/// secondary; not a tight loop, because a hook that fails at once would
/// flood the journal.
pub fn fence_retry_delay(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    FENCE_RETRY_FIRST
        .saturating_mul(1 << doublings)
        .min(FENCE_RETRY_MAX)
}

/// How far the fence got, while [`Saved::fenced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceRun {
    /// The `on_fence` hooks are owed: not run yet, running, interrupted
    /// (SIGTERM, kill -9, crash, watchdog) or failed.
    Due,
    /// Every `on_fence` hook finished with success.
    Done,
}

/// The `on_fence` hooks failed and have not succeeded since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceFailure {
    /// Seconds since the epoch of the first failed run.
    pub since_unix: u64,
    /// Failed runs in a row.
    pub attempts: u32,
    /// What went wrong in the latest run, in words.
    pub error: String,
}

/// What survives a restart of habeat (`state_dir/lease.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// This side lost its lease and fences itself: `on_fence` is due or
    /// done (see `fence`), and `on_unfence` has not run since.
    pub fenced: bool,
    /// While `fenced`: whether the `on_fence` hooks are done or still due.
    /// Absent (`None`) in a lease.json written before this field existed:
    /// that habeat saved `fenced: true` *before* its hooks ran, so whether
    /// they finished is unknown and the fence counts as due (it runs again
    /// while the lease is still lost; `on_fence` steps are idempotent).
    #[serde(default)]
    pub fence: Option<FenceRun>,
    /// The `on_fence` hooks' failed runs since they last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_failed: Option<FenceFailure>,
    /// Fenced and a promotion happened meanwhile: only the operator
    /// unfences (after failing back).
    pub stuck: bool,
    /// `LockIndex` of `habeat/failover/<own host>` as last read while the
    /// lease was held (`None`: the key did not exist). A higher index after
    /// a fence means the secondary took the gate for this host: a
    /// promotion was (or is being) made.
    pub failover_lock_index: Option<u64>,
    /// Seconds since the epoch of the last renewal (only to age the lease
    /// across a restart of habeat, when the monotonic clock is new).
    pub last_renewed_unix: Option<u64>,
    /// The Consul session holding the key, so that a restarted habeat
    /// renews it instead of waiting out its own dead session's TTL and
    /// lock-delay (which would fence this side at every restart).
    #[serde(default)]
    pub session: Option<String>,
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A renewal (or the acquisition) succeeded; `sent_at` is when its
    /// request left.
    Renewed { sent_at: Instant },
    /// A renewal or acquisition failed (agent down, no leader, the key
    /// held by another session, lock-delay): nothing changes until the
    /// margin has passed.
    RenewFailed,
    /// A probe round ended at `at`; `peer_up`: a witness voted Up for the
    /// secondary's mailstore.
    Round { at: Instant, peer_up: bool },
    /// `habeat/failover/<own host>` read while held, or after the lease
    /// came back: its `LockIndex`, `None` when the key is absent.
    FailoverKey { lock_index: Option<u64> },
    /// Every `on_fence` hook finished with success.
    FenceHooksDone,
    /// An `on_fence` hook failed (non-zero exit, killed at
    /// `hooks.timeout`, could not start); `at_unix`: when, by the wall
    /// clock (only shown to the operator).
    FenceHooksFailed { error: String, at_unix: u64 },
    /// Only the clock moved.
    Tick,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Save the state (the fence is due), run every `hooks.on_fence`
    /// hook, journal it, and answer with [`Observation::FenceHooksDone`]
    /// or [`Observation::FenceHooksFailed`]. Not asked again before the
    /// answer.
    Fence,
    /// Read `habeat/failover/<own host>` (answer with
    /// [`Observation::FailoverKey`]).
    ReadFailoverKey,
    /// Run `hooks.on_unfence`, journal it.
    Unfence,
    /// Fenced, and a promotion was made meanwhile: stay fenced, tell the
    /// operator.
    StayFenced,
}

/// Where the lease stands, for `status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not renewed yet since this process started.
    Starting,
    /// Renewed within the margin.
    Held,
    /// Not renewed for the margin, but the secondary's mailstore is seen
    /// Up: not fencing.
    LapsedPeerUp,
    /// The lease is lost and the `on_fence` hooks are due or running.
    Fencing,
    /// The lease is lost and the `on_fence` hooks failed: they run again
    /// after a backoff.
    FenceFailed,
    /// Fenced (every `on_fence` hook succeeded); waiting for the lease to
    /// come back.
    Fenced,
    /// Fenced after a promotion: the operator's turn.
    FencedAfterPromotion,
}

/// The machine: [`Saved`] plus what only this process knows.
#[derive(Debug, Clone)]
pub struct Lease {
    pub timing: Timing,
    pub saved: Saved,
    /// When the margin runs out: the send time of the last successful
    /// renewal plus the margin; at start, see [`Lease::start`].
    deadline: Instant,
    /// Renewed at least once in this process.
    renewed_here: bool,
    /// The latest probe round: when it ended and whether the peer was Up.
    last_round: Option<(Instant, bool)>,
    /// Fenced and the lease is back: waiting for the failover key.
    checking: bool,
    /// [`Command::Fence`] was given and not answered yet.
    fence_running: bool,
    /// When failed `on_fence` hooks run again (`None`: at once).
    fence_retry_at: Option<Instant>,
}

impl Lease {
    /// A machine for a process started at `now`, `since_saved_renewal`
    /// after the saved last renewal by the wall clock (`None`: none saved,
    /// or the wall clock went backwards).
    ///
    /// A new process does not know when the old one last renewed, and the
    /// old session may expire any time from then on: count from the saved
    /// renewal. Without one, count from now only if no lease was ever
    /// saved (nothing can be owed); else the margin is already gone.
    pub fn start(
        timing: Timing,
        saved: Saved,
        now: Instant,
        since_saved_renewal: Option<Duration>,
    ) -> Lease {
        let age = match since_saved_renewal {
            Some(a) => a,
            None if saved.last_renewed_unix.is_none() => Duration::ZERO,
            None => timing.margin(),
        };
        Lease {
            timing,
            saved,
            deadline: now + timing.margin().saturating_sub(age),
            renewed_here: false,
            last_round: None,
            checking: false,
            fence_running: false,
            fence_retry_at: None,
        }
    }

    /// Fenced, and the `on_fence` hooks have not all succeeded yet.
    pub fn fence_owed(&self) -> bool {
        self.saved.fenced && self.saved.fence != Some(FenceRun::Done)
    }

    /// When the owed fence is to run (again), given `now`: `None` when no
    /// fence is owed or its hooks are running.
    pub fn fence_due_at(&self, now: Instant) -> Option<Instant> {
        (self.fence_owed() && !self.fence_running).then(|| self.fence_retry_at.unwrap_or(now))
    }

    /// When the margin runs out without another renewal.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the lease counts as held at `now`.
    pub fn held(&self, now: Instant) -> bool {
        self.renewed_here && now < self.deadline && !self.saved.fenced
    }

    pub fn phase(&self, now: Instant) -> Phase {
        if self.fence_owed() && self.saved.fence_failed.is_some() {
            Phase::FenceFailed
        } else if self.saved.stuck {
            Phase::FencedAfterPromotion
        } else if self.fence_owed() {
            Phase::Fencing
        } else if self.saved.fenced {
            Phase::Fenced
        } else if now >= self.deadline() {
            Phase::LapsedPeerUp
        } else if self.renewed_here {
            Phase::Held
        } else {
            Phase::Starting
        }
    }

    /// The secondary's mailstore was seen Up in a round that ended less
    /// than ttl/3 before `now`.
    fn peer_seen_up(&self, now: Instant) -> bool {
        self.last_round.is_some_and(|(at, up)| {
            up && now.saturating_duration_since(at) < self.timing.renew_every()
        })
    }

    /// Feed one observation at `now`; the commands to carry out, in order.
    pub fn observe(&mut self, obs: Observation, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        match obs {
            Observation::Renewed { sent_at } => {
                let d = sent_at + self.timing.margin();
                if d > self.deadline || !self.renewed_here {
                    self.deadline = d;
                }
                self.renewed_here = true;
                if self.saved.fenced && !self.saved.stuck {
                    // Asked again at every renewal until it is answered.
                    self.checking = true;
                    out.push(Command::ReadFailoverKey);
                } else if !self.saved.fenced {
                    // Keep the failover key's index fresh while serving.
                    out.push(Command::ReadFailoverKey);
                }
            }
            Observation::FailoverKey { lock_index } => {
                if self.checking && self.saved.fenced && !self.saved.stuck {
                    self.checking = false;
                    if lock_index.unwrap_or(0) > self.saved.failover_lock_index.unwrap_or(0) {
                        self.saved.stuck = true;
                        out.push(Command::StayFenced);
                    } else if self.fence_running {
                        // on_unfence must not overtake running on_fence
                        // hooks: ask again at the next renewal.
                        self.checking = true;
                    } else if now < self.deadline() {
                        self.saved.fenced = false;
                        self.saved.fence = None;
                        self.saved.fence_failed = None;
                        self.fence_retry_at = None;
                        out.push(Command::Unfence);
                    }
                } else if !self.saved.fenced && now < self.deadline() {
                    self.saved.failover_lock_index = lock_index;
                }
            }
            Observation::Round { at, peer_up } => {
                self.last_round = Some((at, peer_up));
            }
            Observation::FenceHooksDone => {
                self.fence_running = false;
                if self.saved.fenced {
                    self.saved.fence = Some(FenceRun::Done);
                    self.saved.fence_failed = None;
                    self.fence_retry_at = None;
                }
            }
            Observation::FenceHooksFailed { error, at_unix } => {
                self.fence_running = false;
                if self.saved.fenced {
                    let prev = self.saved.fence_failed.take();
                    let attempts = prev.as_ref().map_or(0, |f| f.attempts) + 1;
                    self.saved.fence_failed = Some(FenceFailure {
                        since_unix: prev.map_or(at_unix, |f| f.since_unix),
                        attempts,
                        error,
                    });
                    self.fence_retry_at = Some(now + fence_retry_delay(attempts));
                }
            }
            Observation::RenewFailed | Observation::Tick => {}
        }
        if !self.saved.fenced && now >= self.deadline() && !self.peer_seen_up(now) {
            self.saved.fenced = true;
            self.saved.fence = Some(FenceRun::Due);
            self.saved.fence_failed = None;
            self.fence_retry_at = None;
            self.checking = false;
        }
        // A fence owed from before (a failed run whose backoff is over, or
        // a run the previous process did not finish) runs now; not while
        // the failover key that may unfence this side is being asked for.
        let asking = self.saved.fenced && out.contains(&Command::ReadFailoverKey);
        if !asking && self.fence_due_at(now).is_some_and(|at| now >= at) {
            self.saved.fence = Some(FenceRun::Due);
            self.fence_running = true;
            out.push(Command::Fence);
        }
        out
    }
}

#[cfg(test)]
mod fence_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(15);

    fn t() -> Timing {
        Timing { ttl: TTL }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn running(t0: Instant) -> Lease {
        let mut l = Lease::start(t(), Saved::default(), t0, None);
        assert!(
            l.observe(Observation::Renewed { sent_at: t0 }, t0)
                .contains(&Command::ReadFailoverKey)
        );
        l.observe(
            Observation::FailoverKey {
                lock_index: Some(3),
            },
            t0,
        );
        l
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
        let mut l = running(t0);
        l.observe(Observation::Tick, t0 + s(10));
        l.observe(Observation::FenceHooksDone, t0 + s(11));
        let back = t0 + s(40);
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
            vec![Command::Unfence]
        );
        assert!(!l.saved.fenced);
        assert_eq!(l.saved.fence, None);
        assert_eq!(l.phase(back), Phase::Held);
    }

    #[test]
    fn lease_back_after_a_promotion_stays_fenced_for_good() {
        let t0 = Instant::now();
        let mut l = running(t0);
        l.observe(Observation::Tick, t0 + s(10));
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
        l.observe(Observation::FenceHooksDone, t0 + s(11));
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
}
