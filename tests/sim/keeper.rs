//! The primary's habeat, modelled around the real pure lease machine
//! (`habeat::lease::machine::Lease`, driven as is): the keeper's I/O.
//!
//! Copies `src/lease/keeper.rs`, `Keeper::run` / `renew_once` / `feed` /
//! `fence` / `unfence`:
//! - a renewal every ttl/3 after a success, soon after a failure (ttl/12
//!   there; one simulated second here); without a session: create one
//!   (TTL, lock-delay 15s) and acquire `habeat/serving/<host>`;
//! - `feed`: the session and (on a renewal) the wall-clock time put into
//!   `Saved`, the machine observed, its commands carried out in order
//!   (`ReadFailoverKey` reads the key and observes its `LockIndex`), then
//!   `lease.json` saved if `Saved` changed;
//! - `Command::Fence` saves `lease.json` *before* running `hooks.on_fence`
//!   (`Keeper::fence`), and the keeper does nothing else while a hook
//!   runs (it is awaited inside `feed`); when the hook ends, its outcome
//!   goes back into the machine (`FenceHooksDone`, or `FenceHooksFailed`
//!   for a hook that failed or was killed at `hooks.timeout`) and the
//!   commands that answer brings join the pending ones (`Keeper::feed`);
//! - an owed fence (failed, or left unfinished by the previous process)
//!   runs again when `Lease::fence_due_at` passes: a `Tick` then (the
//!   `fence_due` arm of `Keeper::run`'s inner loop);
//! - `Command::ReadDirectory` starts a listing that answers a second
//!   later, off the renewal path (`record::Directory::read`); what it
//!   lists is the primary DC's directory replica as the listing starts
//!   (the oldest view the listing could return); `Command::SaveRecord`
//!   keeps `Lease::recorded` in `lease-accounts.json`, which survives
//!   restarts (`record::Directory::save`, `record::load` at start);
//!   `RecordFailed` and `NoEvidence` only journal;
//! - a restart starts the machine from `lease.json` with
//!   `Lease::start(.., since_saved_renewal)` aged by the wall clock and
//!   `.with_record(lease-accounts.json, RECORD_EVERY)`, and renews the
//!   saved session; a start without `lease.json` (the first, the
//!   failback) takes no record from `lease-accounts.json`, and its
//!   machine (`.retaking_the_record()`) is fed a `Tick` before the first
//!   renewal, which asks for the listing that becomes the record.
//!
//! A hook takes effect when it ends with success: `on_fence` takes the
//! primary's routes down, `on_unfence` puts them up. A kill -9 while a
//! hook runs leaves the routes as they were (`KeeperHandle::stop`: the
//! task is aborted, the hook's process group killed with it). A SIGTERM
//! lets the `feed` in progress finish, running hook included, and its
//! outcome be saved (`KeeperHandle::shutdown`: `stop` is looked at only
//! between steps); listings in flight die with the process.

use super::schedule::HookFault;
use super::world::{KeyName, Owner, Side, World};
use habeat::lease::machine::{Command, Lease, Observation, RECORD_EVERY, Saved, Timing};
use std::time::{Duration, Instant};

pub const TTL: Duration = Duration::from_secs(15);
const LOCK_DELAY_MS: u64 = 15_000;
/// `hooks.timeout` (its default).
const HOOK_TIMEOUT_MS: u64 = 60_000;
/// How long a hook that works takes.
const HOOK_MS: u64 = 2_000;
/// How long a directory listing takes.
const LISTING_MS: u64 = 1_000;
/// The primary's probe interval (its rounds feed `Observation::Round`).
const ROUND_MS: u64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Fence,
    Unfence,
}

#[derive(Debug, Clone)]
struct Running {
    kind: HookKind,
    ends_at: u64,
    works: bool,
}

/// What a keeper step reports to the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A hook ended; `ok`: it did its work.
    HookEnded {
        kind: HookKind,
        ok: bool,
    },
    StayFenced,
    /// `RecordFailed` or `NoEvidence`: journaled, nothing done.
    NoEvidence,
    /// The process died at an I/O step (kill armed).
    Died,
}

pub struct Keeper {
    pub machine: Lease,
    session: Option<usize>,
    next_renew: u64,
    next_round: u64,
    hook: Option<Running>,
    /// The commands of the `feed` in progress, and `Saved` before it.
    pending: Vec<Command>,
    before: Option<Saved>,
    /// Listings in flight: when each started (ms), and what it lists.
    listings: Vec<(u64, Vec<String>)>,
    /// SIGTERM received: stop once the `feed` in progress is over.
    stopping: Option<u64>,
}

/// The primary node's habeat: `lease.json` (survives), the keeper
/// (memory; `None` while the process is down).
pub struct Primary {
    pub file: Option<Saved>,
    /// `lease-accounts.json`: the accounts recorded while serving.
    pub record: Option<Vec<String>>,
    pub keeper: Option<Keeper>,
    pub back_at: Option<u64>,
    /// kill -9 (or SIGTERM: `true`) at the k-th next I/O step.
    pub kill_at_io: Option<(u32, u64, bool)>,
    pub hook_fault: Option<HookFault>,
    /// The last `hooks.on_fence` reported failure (journaled as an Error:
    /// the operator's hook says it did not fence), or hangs.
    pub fence_hook_failed: bool,
    /// Kills that interrupted a running `hooks.on_fence`.
    pub fence_hooks_interrupted: u32,
    base: Instant,
}

impl Primary {
    pub fn new(base: Instant, lease: bool) -> Primary {
        let mut p = Primary {
            file: None,
            record: None,
            keeper: None,
            back_at: None,
            kill_at_io: None,
            hook_fault: None,
            fence_hook_failed: false,
            fence_hooks_interrupted: 0,
            base,
        };
        if lease {
            p.start(&World::new());
        }
        p
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// `keeper::spawn`: the machine from `lease.json`.
    pub fn start(&mut self, w: &World) {
        let saved = self.file.clone().unwrap_or_default();
        let wall_s = w.wall(Side::Primary) / 1000;
        let since = saved
            .last_renewed_unix
            .and_then(|t| wall_s.checked_sub(t))
            .map(Duration::from_secs);
        // No lease.json (a first start, the failback): the record is
        // listed again at once, an older one not trusted.
        let retake = self.file.is_none();
        let record = if retake { None } else { self.record.clone() };
        let mut machine = Lease::start(Timing { ttl: TTL }, saved, self.at(w.now), since)
            .with_record(record, RECORD_EVERY);
        if retake {
            machine = machine.retaking_the_record();
        }
        self.keeper = Some(Keeper {
            session: machine.saved.session.as_ref().and_then(|s| s.parse().ok()),
            machine,
            next_renew: w.now,
            next_round: w.now,
            hook: None,
            pending: Vec::new(),
            before: None,
            listings: Vec::new(),
            stopping: None,
        });
    }

    /// SIGTERM (`KeeperHandle::shutdown`): nothing more is renewed; the
    /// `feed` in progress, with a running hook, finishes first.
    pub fn term(&mut self, back_at: u64) {
        if let Some(k) = self.keeper.as_mut() {
            k.stopping = Some(back_at);
        }
        self.kill_at_io = None;
        self.stop_if_idle();
    }

    /// Why the machine last did not unfence (`Lease::unproven`).
    pub fn unproven(&self) -> String {
        self.keeper
            .as_ref()
            .and_then(|k| k.machine.unproven.clone())
            .unwrap_or_else(|| "a listing failed".into())
    }

    fn stop_if_idle(&mut self) {
        if let Some(k) = &self.keeper
            && let Some(back) = k.stopping
            && k.hook.is_none()
            && k.pending.is_empty()
        {
            self.keeper = None;
            self.back_at = Some(back);
        }
    }

    pub fn kill(&mut self, back_at: u64) {
        if self
            .keeper
            .as_ref()
            .is_some_and(|k| k.hook.as_ref().is_some_and(|h| h.kind == HookKind::Fence))
        {
            self.fence_hooks_interrupted += 1;
        }
        self.keeper = None;
        self.back_at = Some(back_at);
        self.kill_at_io = None;
    }

    /// One I/O step: false when the process dies right here.
    fn io(&mut self) -> bool {
        match &mut self.kill_at_io {
            Some((0, down, true)) => {
                let back = *down;
                if let Some(k) = self.keeper.as_mut() {
                    k.stopping = Some(back);
                }
                self.kill_at_io = None;
                true
            }
            Some((0, down, false)) => {
                let back = *down;
                self.kill(back);
                false
            }
            Some((k, _, _)) => {
                *k -= 1;
                true
            }
            None => true,
        }
    }

    /// One simulated second of the keeper.
    pub fn tick(&mut self, w: &mut World, out: &mut Vec<Report>) {
        self.step(w, out);
        self.stop_if_idle();
    }

    fn step(&mut self, w: &mut World, out: &mut Vec<Report>) {
        let Some(k) = self.keeper.as_mut() else {
            return;
        };
        let now = w.now;
        if let Some(h) = k.hook.clone() {
            if now < h.ends_at {
                return;
            }
            if !self.io() {
                out.push(Report::Died);
                return;
            }
            let k = self.keeper.as_mut().expect("alive");
            k.hook = None;
            let ok = h.works && w.primary_power;
            if ok {
                w.routes_up = h.kind == HookKind::Unfence;
            }
            if h.kind == HookKind::Fence {
                self.fence_hook_failed = !ok;
                // `Keeper::fence` returns the hooks' outcome, observed at
                // once inside `feed`, its commands joining the pending.
                let answer = if ok {
                    Observation::FenceHooksDone
                } else {
                    Observation::FenceHooksFailed {
                        error: "hooks.on_fence failed".into(),
                        at_unix: w.wall(Side::Primary) / 1000,
                    }
                };
                let at = self.at(now);
                let k = self.keeper.as_mut().expect("alive");
                let more = k.machine.observe(answer, at);
                k.pending.extend(more);
            }
            out.push(Report::HookEnded { kind: h.kind, ok });
            self.run_pending(w, out);
            return;
        }
        if k.stopping.is_some() {
            return;
        }
        // Started without lease.json: the listing before the first
        // renewal (`Keeper::run`).
        if k.machine.retake_pending() {
            self.feed(Observation::Tick, w, out);
        }
        let Some(k) = self.keeper.as_mut() else {
            return;
        };
        // A listing's answer (`Keeper::run`, the `listings` arm).
        if let Some(i) = k.listings.iter().position(|(t, _)| t + LISTING_MS <= now) {
            let (started, accounts) = k.listings.remove(i);
            let started_at = self.at(started);
            self.feed(
                Observation::Directory {
                    started_at,
                    accounts: Ok(accounts),
                },
                w,
                out,
            );
            return;
        }
        if now >= k.next_renew {
            let sent = now;
            if !self.io() {
                out.push(Report::Died);
                return;
            }
            let k = self.keeper.as_mut().expect("alive");
            if k.stopping.is_some() {
                // SIGTERM while renewing: `Keeper::run` returns.
                return;
            }
            let obs = self.renew_once(w, sent);
            let ok = matches!(obs, Observation::Renewed { .. });
            let k = self.keeper.as_mut().expect("alive");
            k.next_renew = if ok {
                sent + TTL.as_millis() as u64 / 3
            } else {
                now + 1_000
            };
            self.feed(obs, w, out);
            return;
        }
        let inst = self.base + Duration::from_millis(now);
        let lapsed = !k.machine.saved.fenced && inst >= k.machine.deadline();
        // An owed fence whose backoff is over (`Keeper::run`, `fence_due`).
        let fence_due = k.machine.fence_due_at(inst).is_some_and(|at| inst >= at);
        if lapsed || fence_due {
            self.feed(Observation::Tick, w, out);
            return;
        }
        if now >= k.next_round {
            k.next_round = now + ROUND_MS;
            // A witness of the primary sees the secondary's mailstore Up.
            let peer_up = w.net.up(super::world::Link::PrimarySecondary);
            let at = self.at(now);
            self.feed(Observation::Round { at, peer_up }, w, out);
        }
    }

    fn renew_once(&mut self, w: &mut World, sent: u64) -> Observation {
        let now = w.now;
        let reach = w.leader(Side::Primary);
        let k = self.keeper.as_mut().expect("alive");
        if let Some(id) = k.session {
            if !reach {
                return Observation::RenewFailed;
            }
            return if w.consul.renew(id, now) {
                Observation::Renewed {
                    sent_at: self.at(sent),
                }
            } else {
                k.session = None;
                Observation::RenewFailed
            };
        }
        if !reach {
            return Observation::RenewFailed;
        }
        let id = w.consul.create(
            Owner::PrimaryLease,
            Some(TTL.as_millis() as u64),
            LOCK_DELAY_MS,
            now,
        );
        if w.consul.acquire(KeyName::Serving, id, now) {
            k.session = Some(id);
            Observation::Renewed {
                sent_at: self.at(sent),
            }
        } else {
            w.consul.invalidate(id, now);
            Observation::RenewFailed
        }
    }

    fn feed(&mut self, obs: Observation, w: &mut World, out: &mut Vec<Report>) {
        let now = self.at(w.now);
        let wall_s = w.wall(Side::Primary) / 1000;
        let k = self.keeper.as_mut().expect("alive");
        k.before = Some(k.machine.saved.clone());
        k.machine.saved.session = k.session.map(|s| s.to_string());
        if matches!(obs, Observation::Renewed { .. }) {
            k.machine.saved.last_renewed_unix = Some(wall_s);
        }
        k.pending = k.machine.observe(obs, now);
        self.run_pending(w, out);
    }

    /// The command loop of `Keeper::feed`, resumable after a hook.
    fn run_pending(&mut self, w: &mut World, out: &mut Vec<Report>) {
        loop {
            let Some(k) = self.keeper.as_mut() else {
                return;
            };
            if k.pending.is_empty() {
                break;
            }
            let cmd = k.pending.remove(0);
            match cmd {
                Command::ReadFailoverKey => {
                    if !self.io() {
                        out.push(Report::Died);
                        return;
                    }
                    if w.leader(Side::Primary) {
                        let key = &w.consul.failover;
                        let lock_index = key.exists.then_some(key.lock_index);
                        let now = self.at(w.now);
                        let k = self.keeper.as_mut().expect("alive");
                        let more = k
                            .machine
                            .observe(Observation::FailoverKey { lock_index }, now);
                        k.pending.extend(more);
                    }
                }
                Command::Fence => {
                    // Saved before the hook runs (`Keeper::fence`).
                    if !self.io() {
                        out.push(Report::Died);
                        return;
                    }
                    let k = self.keeper.as_ref().expect("alive");
                    self.file = Some(k.machine.saved.clone());
                    self.start_hook(HookKind::Fence, w);
                    return;
                }
                Command::Unfence => {
                    self.start_hook(HookKind::Unfence, w);
                    return;
                }
                Command::StayFenced => out.push(Report::StayFenced),
                Command::ReadDirectory => {
                    // `Directory::read`: started now, answered later.
                    let seen = w.primary_sees_on_primary();
                    let k = self.keeper.as_mut().expect("alive");
                    k.listings.push((w.now, seen));
                }
                Command::SaveRecord => {
                    // `Directory::save`, written to lease-accounts.json.
                    let k = self.keeper.as_ref().expect("alive");
                    if let Some(r) = &k.machine.recorded {
                        self.record = Some(r.clone());
                    }
                }
                Command::RecordFailed { .. } | Command::NoEvidence { .. } => {
                    out.push(Report::NoEvidence);
                }
            }
        }
        let k = self.keeper.as_mut().expect("alive");
        let before = k.before.take();
        if before.as_ref() != Some(&k.machine.saved) {
            let saved = k.machine.saved.clone();
            if !self.io() {
                out.push(Report::Died);
                return;
            }
            self.file = Some(saved);
        }
    }

    fn start_hook(&mut self, kind: HookKind, w: &World) {
        let fault = self.hook_fault.take();
        if kind == HookKind::Fence {
            // A hung on_fence overruns the budget docs/decisions.md §7
            // gives it ("keep on_fence quick"): the operator's to fix, as
            // one that fails.
            self.fence_hook_failed = fault == Some(HookFault::Hangs);
        }
        let k = self.keeper.as_mut().expect("alive");
        let (ends_at, works) = match fault {
            None => (w.now + HOOK_MS, true),
            Some(HookFault::Fails) => (w.now + 1_000, false),
            Some(HookFault::Hangs) => (w.now + HOOK_TIMEOUT_MS, false),
        };
        k.hook = Some(Running {
            kind,
            ends_at,
            works,
        });
    }
}
