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
//!
//! Fenced, it unfences only on positive evidence that its accounts are
//! still its own (docs/decisions.md §7, "Unfencing"): the failover key's
//! `LockIndex` has not advanced, and a directory listing of its own mail
//! host taken after the lease came back still lists every account recorded
//! there while it served. The record is taken while serving, every
//! [`Lease::record_every`], off the renewal path. The listing is read from
//! this side's directory replica, which hears of a promotion only through
//! the link between the DCs: it counts only once a witness saw the
//! secondary's mailstore Up in a round that ended after the lease came
//! back (the DCs are joined again), and no round has seen it down since,
//! and a renewal period has passed since that sighting for replication
//! ([`Lease::directory_settle`]). A start without `lease.json` (a first
//! start, the operator's failback) does not trust a record from before:
//! it lists the directory and reads the failover key at once
//! ([`Lease::retaking_the_record`]), since after a failback it fences
//! before it serves whenever its previous session still holds the key.

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
    /// The directory's answer to [`Command::ReadDirectory`]: the accounts
    /// whose `mailHost` is this side's mail host (`getAccountStatus
    /// mailHost <own host>`), or why there is no answer (the CLI failed,
    /// its output could not be read). `started_at`: when the read began.
    Directory {
        started_at: Instant,
        accounts: Result<Vec<String>, String>,
    },
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
    /// operator (the accounts that moved, if that is how it was seen, are
    /// in [`Lease::moved`]).
    StayFenced,
    /// List the accounts living on this side's mail host, off the renewal
    /// path (answer with [`Observation::Directory`], started now or later).
    ReadDirectory,
    /// Keep [`Lease::recorded`] where a restart finds it.
    SaveRecord,
    /// A listing while serving failed: the previous record stands; say so.
    RecordFailed { reason: String },
    /// Fenced, the lease is back, but there is no evidence yet that the
    /// accounts are still this side's: stay fenced, ask again at the next
    /// renewal (the reason is also in [`Lease::unproven`]).
    NoEvidence { reason: String },
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
    /// The accounts recorded on this side's mail host while it served,
    /// sorted (`None`: no record was ever taken). Loaded from
    /// `state_dir` at start, replaced by every listing taken while serving.
    pub recorded: Option<Vec<String>>,
    /// How often the record is taken again while serving.
    pub record_every: Duration,
    /// Started without `lease.json`: the record is to be taken from the
    /// directory at once, at the first observation ([`Lease::retaking_the_record`]).
    retake: bool,
    /// When the listing asked for at start was asked for, until it answers.
    start_read: Option<Instant>,
    /// When the read in flight was asked for, if one is.
    reading: Option<Instant>,
    /// When the last read while serving was asked for.
    last_record_read: Option<Instant>,
    /// Fenced, the failover key unchanged: the listing that decides must
    /// have started at or after this.
    evidence_since: Option<Instant>,
    /// When this process last fenced: a listing started before is no
    /// record of what this side serves.
    fenced_at: Option<Instant>,
    /// Fenced: when the lease came back (the send time of the first
    /// renewal of the current run of renewals).
    back_since: Option<Instant>,
    /// Fenced, the lease back: the end of the first round since then in
    /// which a witness saw the secondary's mailstore Up, with no round
    /// seeing it down after.
    sighted_at: Option<Instant>,
    /// Why the last check after the lease came back did not unfence.
    pub unproven: Option<String>,
    /// The recorded accounts the directory no longer lists here, when
    /// that is how a promotion was seen.
    pub moved: Vec<String>,
}

/// Why a fenced side with its lease back does not read its directory yet.
pub const WAITING_FOR_THE_SECONDARY: &str = "waiting to see the secondary's mailstore from \
     here, so that the directory read here includes its writes (the lease can come back \
     through the third site while the link between the datacenters is still cut)";

/// How often the record is taken while serving when nothing else is said.
pub const RECORD_EVERY: Duration = Duration::from_secs(300);

/// After a failed listing while serving, the next try comes after this
/// many renewal periods (not at every renewal: the listing is heavy).
const RECORD_RETRY_RENEWALS: u32 = 6;

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
            recorded: None,
            record_every: RECORD_EVERY,
            retake: false,
            start_read: None,
            reading: None,
            last_record_read: None,
            evidence_since: None,
            fenced_at: None,
            back_since: None,
            sighted_at: None,
            unproven: None,
            moved: Vec::new(),
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

    /// The record saved by an earlier process (`None`: none, or not
    /// readable), and how often to take it again while serving.
    pub fn with_record(mut self, recorded: Option<Vec<String>>, every: Duration) -> Lease {
        self.recorded = recorded.map(sorted);
        self.record_every = every;
        self
    }

    /// Started without `lease.json`: the operator's failback (the
    /// stays-fenced message asks for the file's removal once the accounts
    /// are home) or a first start, either way the statement that this side
    /// serves what the directory puts on its mail host now. A record from
    /// before (`lease-accounts.json`, taken while accounts may have lived
    /// elsewhere) is not trusted: the directory is listed at the first
    /// observation, before any fence, and that listing is the record,
    /// whenever it answers; the failover key is read then too, its index
    /// the one a later promotion must pass (docs/decisions.md §7, "The
    /// record after a failback").
    pub fn retaking_the_record(mut self) -> Lease {
        self.recorded = None;
        self.retake = true;
        self
    }

    /// The listing of [`Lease::retaking_the_record`] is still to be asked
    /// for: the keeper feeds an observation (a `Tick`) at once.
    pub fn retake_pending(&self) -> bool {
        self.retake
    }

    /// How long after the secondary's mailstore is seen from here a
    /// directory listing here counts as evidence: one renewal period, for
    /// the secondary's writes made while the DCs were apart to replicate
    /// to this side's directory replica.
    pub fn directory_settle(&self) -> Duration {
        self.timing.renew_every()
    }

    /// Fenced and the lease back: whether a listing started at `at` sees
    /// what the secondary wrote while the DCs were apart.
    fn directory_caught_up(&self, at: Instant) -> bool {
        self.sighted_at
            .is_some_and(|s| at >= s + self.directory_settle())
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
        if std::mem::take(&mut self.retake) {
            self.start_read = Some(now);
            self.last_record_read = Some(now);
            self.read_directory(now, &mut out);
            // The failover key's index as the failback left it: the
            // promotion that was failed back took it, and compared with
            // no index at all it would keep this side fenced for good at
            // its first fence. (A renewal reads it anyway.)
            if !matches!(obs, Observation::Renewed { .. }) {
                out.push(Command::ReadFailoverKey);
            }
        }
        match obs {
            Observation::Renewed { sent_at } => {
                if self.saved.fenced && (self.back_since.is_none() || sent_at >= self.deadline) {
                    // The lease is back (first renewal since the fence, or
                    // after it lapsed again): a sighting before says
                    // nothing of the DCs now.
                    self.back_since = Some(sent_at);
                    self.sighted_at = None;
                }
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
                    if self.record_due(now) {
                        self.last_record_read = Some(now);
                        self.read_directory(now, &mut out);
                    }
                }
            }
            Observation::FailoverKey { lock_index } => {
                if self.checking && self.saved.fenced && !self.saved.stuck {
                    self.checking = false;
                    if lock_index.unwrap_or(0) > self.saved.failover_lock_index.unwrap_or(0) {
                        self.saved.stuck = true;
                        out.push(Command::StayFenced);
                    } else if !self.directory_caught_up(now) {
                        // The lease can come back through the third site
                        // while the DCs are still apart: this side's
                        // directory replica then does not know of a
                        // promotion. Asked again at the next renewal. An
                        // empty record waits too: the routes on_unfence
                        // puts back are routed by this side's directory,
                        // which must know of a promotion first.
                        self.evidence_since = None;
                        let reason = WAITING_FOR_THE_SECONDARY.to_owned();
                        self.unproven = Some(reason.clone());
                        out.push(Command::NoEvidence { reason });
                    } else {
                        // The key is not enough (a manual promote, or one
                        // with the gate off, never takes it): the
                        // directory decides, read from now on.
                        self.evidence_since = Some(now);
                        if self.reading.is_none() {
                            self.read_directory(now, &mut out);
                        }
                    }
                } else if !self.saved.fenced && now < self.deadline() {
                    self.saved.failover_lock_index = lock_index;
                }
            }
            Observation::Directory {
                started_at,
                accounts,
            } => self.directory(started_at, accounts, now, &mut out),
            Observation::Round { at, peer_up } => {
                self.last_round = Some((at, peer_up));
                if !peer_up {
                    self.sighted_at = None;
                } else if self.sighted_at.is_none() && self.back_since.is_some_and(|b| at >= b) {
                    self.sighted_at = Some(at);
                }
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
            self.evidence_since = None;
            self.back_since = None;
            self.sighted_at = None;
            self.fenced_at = Some(now);
        }
        // A fence owed from before (a failed run whose backoff is over, or
        // a run the previous process did not finish) runs now; not while
        // the failover key or the directory that may unfence this side is
        // being asked for.
        let asking = self.saved.fenced
            && (out.contains(&Command::ReadFailoverKey) || self.evidence_since.is_some());
        if !asking && self.fence_due_at(now).is_some_and(|at| now >= at) {
            self.saved.fence = Some(FenceRun::Due);
            self.fence_running = true;
            out.push(Command::Fence);
        }
        out
    }

    fn record_due(&self, now: Instant) -> bool {
        self.reading.is_none()
            && self
                .last_record_read
                .is_none_or(|t| now.saturating_duration_since(t) >= self.record_every)
    }

    fn read_directory(&mut self, now: Instant, out: &mut Vec<Command>) {
        self.reading = Some(now);
        out.push(Command::ReadDirectory);
    }

    fn unfence(&mut self, out: &mut Vec<Command>) {
        self.evidence_since = None;
        if self.fence_running {
            // on_unfence must not overtake running on_fence hooks: the
            // next renewal asks again.
            return;
        }
        self.saved.fenced = false;
        self.saved.fence = None;
        self.saved.fence_failed = None;
        self.fence_retry_at = None;
        self.unproven = None;
        out.push(Command::Unfence);
    }

    fn directory(
        &mut self,
        started_at: Instant,
        accounts: Result<Vec<String>, String>,
        now: Instant,
        out: &mut Vec<Command>,
    ) {
        self.reading = None;
        if self.start_read.is_some_and(|asked| started_at >= asked) {
            // The listing a start without lease.json asked for. Begun
            // before any fence of this process, while this side served on
            // the operator's word, it is the record even when it answers
            // after a fence: a listing of 100k accounts can outlast the
            // margin, and a failback's restart fences at once while the
            // previous process's session keeps the key (no record would
            // then leave the fence for the operator at every failback).
            self.start_read = None;
            match accounts {
                Ok(found) => self.take_record(Ok(found), now, out),
                Err(reason) => {
                    // Asked again at the next renewal while serving.
                    self.last_record_read = None;
                    out.push(Command::RecordFailed { reason });
                }
            }
            if self.saved.fenced && self.evidence_since.is_some() && !self.saved.stuck {
                // Begun before the lease came back: no evidence of now.
                self.read_directory(now, out);
            }
            return;
        }
        if self.saved.fenced {
            let Some(since) = self.evidence_since else {
                return;
            };
            if self.saved.stuck {
                self.evidence_since = None;
                return;
            }
            if started_at < since {
                // Begun before the lease came back: no evidence of now.
                self.read_directory(now, out);
                return;
            }
            if !self.directory_caught_up(started_at) {
                // The secondary was seen down again since the read was
                // asked for: wait for it to be seen again.
                self.evidence_since = None;
                let reason = WAITING_FOR_THE_SECONDARY.to_owned();
                self.unproven = Some(reason.clone());
                out.push(Command::NoEvidence { reason });
                return;
            }
            self.evidence_since = None;
            let reason = match (accounts, &self.recorded) {
                (Err(e), _) => format!(
                    "the directory listing of this mail host failed ({e}): no evidence that its \
                     accounts are still here"
                ),
                (Ok(_), None) => "no record of the accounts this side served was taken before \
                                  the fence: no evidence that they are still here"
                    .to_owned(),
                (Ok(found), Some(rec)) => {
                    let moved = missing(rec, &sorted(found));
                    if !moved.is_empty() {
                        self.moved = moved;
                        self.saved.stuck = true;
                        out.push(Command::StayFenced);
                    } else if now < self.deadline() {
                        self.unfence(out);
                    }
                    return;
                }
            };
            self.unproven = Some(reason.clone());
            out.push(Command::NoEvidence { reason });
            return;
        }
        // A record only of what this side served while it held the lease.
        let serving = self.renewed_here
            && now < self.deadline()
            && self.fenced_at.is_none_or(|f| started_at > f);
        if serving {
            self.take_record(accounts, now, out);
        }
    }

    /// A listing taken while this side serves: the new record, or why not.
    fn take_record(
        &mut self,
        accounts: Result<Vec<String>, String>,
        now: Instant,
        out: &mut Vec<Command>,
    ) {
        match accounts {
            Ok(found) => {
                let found = sorted(found);
                if self.recorded.as_ref() != Some(&found) {
                    self.recorded = Some(found);
                    out.push(Command::SaveRecord);
                }
            }
            Err(reason) => {
                // Try again sooner than the full period, but not at once.
                let retry =
                    (self.timing.renew_every() * RECORD_RETRY_RENEWALS).min(self.record_every);
                self.last_record_read = now.checked_sub(self.record_every.saturating_sub(retry));
                out.push(Command::RecordFailed { reason });
            }
        }
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v.dedup();
    v
}

/// The names of `recorded` that `found` lacks (both sorted).
fn missing(recorded: &[String], found: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut f = found.iter().peekable();
    for r in recorded {
        while f.next_if(|x| *x < r).is_some() {}
        if f.peek() != Some(&r) {
            out.push(r.clone());
        }
    }
    out
}

#[cfg(test)]
mod fence_tests;

#[cfg(test)]
mod retake_tests;

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
