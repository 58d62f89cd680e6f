//! The serving lease's I/O: the Consul session and key, the renewal
//! timer, the hooks, the journal and `state_dir/lease.json`. Every
//! decision is [`super::machine`]'s.
//!
//! The keeper runs as its own task beside the daemon's probe loop, so a
//! long round or a running promotion never delays a renewal, and a slow
//! Consul call never delays the fence: each call gives up after ttl/3, and
//! the deadline is watched on its own timer.

use super::machine::{Command, Lease, Observation, Phase, Saved, Timing, fence_retry_delay};
use super::record::{Directory, Listing};
pub use super::status::{FILE, Failing, LeaseStatus, file_status, lease_key, peer_mailstore_up};
use super::status::{OnDisk, fence_message};
use crate::act::hooks::{HookEnv, HookRunner, OnFailure};
use crate::config::{Config, HookCommand};
use crate::consul::{Client, SessionChecks, SessionRequest};
use crate::engine::{Event, EventKind, Severity, UnixMillis};
use crate::model::Round;
use crate::sink::EventSink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// How many moved accounts the journal and the status name.
const MOVED_NAMED: usize = 10;

/// A running keeper: feed it rounds, read its status.
pub struct KeeperHandle {
    rounds: watch::Sender<Option<(Instant, bool)>>,
    /// A Consul client for a reloaded `consul:` section (a rotated token).
    client: watch::Sender<Option<Client>>,
    ttl: Duration,
    stop: watch::Sender<bool>,
    fencing: Arc<AtomicBool>,
    /// Where its events go, for a reloaded configuration's sink.
    events: watch::Sender<EventSink>,
    pub status: Arc<Mutex<LeaseStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl KeeperHandle {
    /// A probe round ended now.
    pub fn round(&self, round: &Round) {
        let _ = self
            .rounds
            .send(Some((Instant::now(), peer_mailstore_up(round))));
    }

    pub fn status(&self) -> LeaseStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Renew with the `consul:` section of `cfg` from the next renewal on
    /// (a reload: a token rotated, the agent moved). The session stays
    /// the same.
    pub fn set_consul(&self, cfg: &Config) -> Result<(), String> {
        let timing = Timing { ttl: self.ttl };
        let client = Client::new(&cfg.consul, timing.renew_every()).map_err(|e| e.to_string())?;
        let _ = self.client.send(Some(client));
        Ok(())
    }

    /// Send its events to `events` from now on (a reload: the new
    /// configuration's journal and `on_event` hooks).
    pub fn set_events(&self, events: EventSink) {
        let _ = self.events.send(events);
    }

    /// Stop at once, as a kill -9 would: nothing more is renewed, running
    /// hooks are abandoned (their process groups killed) and a due fence
    /// stays due in `lease.json`.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Stop renewing (the session then expires on its own: a stopping
    /// habeat does not hand its lease over early). Running `on_fence`
    /// hooks finish first (each within `hooks.timeout`), and their outcome
    /// is saved: a fence is this side's promotion, not abandoned halfway.
    pub async fn shutdown(&mut self) {
        if self.fencing.load(Ordering::SeqCst) {
            tracing::warn!(
                "stopping: waiting for hooks.on_fence to finish (each hook within hooks.timeout)"
            );
        }
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for KeeperHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Keeper {
    client: Client,
    key: String,
    failover_key: String,
    host: String,
    ttl: Duration,
    state_path: PathBuf,
    /// The journal and the `on_event` hooks (the daemon session's sink).
    events: watch::Receiver<EventSink>,
    runner: HookRunner,
    on_fence: Vec<HookCommand>,
    on_unfence: Vec<HookCommand>,
    machine: Lease,
    session: Option<String>,
    status: Arc<Mutex<LeaseStatus>>,
    metrics: Option<Arc<dyn super::LeaseMetrics>>,
    lapsed_said: bool,
    new_client: watch::Receiver<Option<Client>>,
    /// Why the last renewal failed, set by [`Keeper::renew_once`].
    renew_error: Option<String>,
    failing: Option<Failing>,
    fencing: Arc<AtomicBool>,
    directory: Directory,
    /// The last reason given for not unfencing, journaled once.
    unproven_said: Option<String>,
}

/// Start the keeper if this node holds a lease ([`lease_key`]). Its
/// events go to `events`, its gauges to `metrics`.
pub fn spawn(
    cfg: &Config,
    events: EventSink,
    metrics: Option<Arc<dyn super::LeaseMetrics>>,
) -> Result<Option<KeeperHandle>, String> {
    let Some(key) = lease_key(cfg) else {
        return Ok(None);
    };
    let host = key[super::KEY_PREFIX.len()..].to_owned();
    let timing = Timing { ttl: cfg.lease.ttl };
    let client = Client::new(&cfg.consul, timing.renew_every()).map_err(|e| e.to_string())?;
    let state_path = cfg.local.state_dir.join(FILE);
    let read = crate::state::read_nofollow(&state_path);
    // No lease.json: a first start or the operator's failback, whose word
    // is that this side serves what the directory puts on it now.
    let retake = matches!(read, Ok(None));
    let saved = match read {
        Ok(None) => Saved::default(),
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a lease file habeat wrote ({e}); it says whether this side is fenced, \
                 so habeat will not guess: check it, or remove it if this side is known \
                 unfenced",
                state_path.display()
            )
        })?,
        Err(e) => return Err(format!("{}: {e}", state_path.display())),
    };
    let since = match saved.last_renewed_unix {
        None => None,
        Some(t) => {
            let Some(at) = UNIX_EPOCH.checked_add(Duration::from_secs(t)) else {
                return Err(format!(
                    "{}: last_renewed_unix {t} is not a time habeat could have written; the \
                     file says whether this side is fenced, so habeat will not guess: check \
                     it, or remove it if this side is known unfenced",
                    state_path.display()
                ));
            };
            SystemTime::now().duration_since(at).ok()
        }
    };
    let record_every = match cfg.replicas.survey_interval {
        d if d.is_zero() => super::machine::RECORD_EVERY,
        d => d,
    };
    let recorded = (!retake)
        .then(|| super::record::load(&cfg.local.state_dir, &host))
        .flatten();
    let mut machine =
        Lease::start(timing, saved, Instant::now(), since).with_record(recorded, record_every);
    if retake {
        tracing::info!(
            "{} is absent (a first start, or the failback the stays-fenced message asks for): \
             this side serves what the directory puts on {host}; listing those accounts now into \
             {} (an older record there is not trusted) and reading {}",
            state_path.display(),
            super::record::FILE,
            crate::consul::gate::lock_key(&host)
        );
        machine = machine.retaking_the_record();
    }
    let (directory, listings) = Directory::new(
        crate::act::carbonio::Carbonio::new(&cfg.carbonio).map_err(|e| e.to_string()),
        host.clone(),
        &cfg.local.state_dir,
    );
    let status = Arc::new(Mutex::new(LeaseStatus {
        key: key.clone(),
        phase: machine.phase(Instant::now()),
        held: false,
        fenced: machine.saved.fenced,
        fence_failed: None,
        message: String::new(),
        renewals_failing: None,
    }));
    let (tx, rx) = watch::channel(None);
    let (client_tx, new_client) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let fencing = Arc::new(AtomicBool::new(false));
    let (events_tx, events) = watch::channel(events);
    let keeper = Keeper {
        client,
        failover_key: crate::consul::gate::lock_key(&host),
        host,
        key,
        ttl: cfg.lease.ttl,
        state_path,
        events,
        runner: HookRunner::new(cfg.hooks.timeout),
        on_fence: cfg.hooks.on_fence.clone(),
        on_unfence: cfg.hooks.on_unfence.clone(),
        session: machine.saved.session.clone(),
        machine,
        status: status.clone(),
        metrics,
        lapsed_said: false,
        new_client,
        renew_error: None,
        failing: None,
        fencing: fencing.clone(),
        directory,
        unproven_said: None,
    };
    let task = tokio::spawn(keeper.run(rx, stop_rx, listings));
    Ok(Some(KeeperHandle {
        rounds: tx,
        client: client_tx,
        ttl: cfg.lease.ttl,
        stop: stop_tx,
        fencing,
        events: events_tx,
        status,
        task,
    }))
}

impl Keeper {
    /// Renew, watch the deadline and the owed fence, until `stop` changes.
    /// `stop` is only looked at between steps: a step that runs the fence
    /// hooks finishes first.
    async fn run(
        mut self,
        mut rounds: watch::Receiver<Option<(Instant, bool)>>,
        mut stop: watch::Receiver<bool>,
        mut listings: mpsc::UnboundedReceiver<Listing>,
    ) {
        tracing::info!(
            key = %self.key,
            ttl = %humantime::format_duration(self.ttl),
            "serving lease: holding {} (renewed every ttl/3, fenced after ttl - ttl/3 without a renewal)",
            self.key
        );
        self.publish();
        if self.machine.retake_pending() {
            // The record is listed before the first renewal, which can
            // take ttl/3 to fail.
            self.feed(Observation::Tick).await;
        }
        loop {
            if *stop.borrow() {
                return;
            }
            let sent = Instant::now();
            if self.new_client.has_changed().unwrap_or(false)
                && let Some(c) = self.new_client.borrow_and_update().clone()
            {
                self.client = c;
            }
            let obs = tokio::select! {
                o = self.renew_once(sent) => o,
                _ = stop.changed() => return,
            };
            let ok = matches!(obs, Observation::Renewed { .. });
            self.note_renewal(ok);
            self.feed(obs).await;
            // After a failure, try again soon: the next regular renewal
            // would fall on the fence deadline itself (2 x ttl/3), so one
            // missed renewal would fence. A blip shorter than the margin
            // must not.
            let every = self.machine.timing.renew_every();
            let next = if ok {
                sent + every
            } else {
                Instant::now() + every / 4
            };
            loop {
                let now = Instant::now();
                let deadline = self.machine.deadline().max(now);
                let fence_due = self.machine.fence_due_at(now);
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => break,
                    _ = stop.changed() => return,
                    // An owed fence (failed, or left unfinished by the
                    // previous process) runs when its backoff is over.
                    _ = tokio::time::sleep_until(fence_due.unwrap_or(now).into()), if fence_due.is_some() => {
                        self.feed(Observation::Tick).await;
                    }
                    _ = tokio::time::sleep_until(deadline.into()), if !self.machine.saved.fenced => {
                        self.feed(Observation::Tick).await;
                        // Not fenced (a witness sees the peer Up): look
                        // again at the next round or renewal.
                        if !self.machine.saved.fenced {
                            tokio::select! {
                                _ = tokio::time::sleep_until(next.into()) => break,
                                _ = stop.changed() => return,
                                r = rounds.changed() => if r.is_err() { return },
                                Some(l) = listings.recv() => {
                                    self.feed_listing(l).await;
                                    continue;
                                }
                            }
                            self.feed_round(&rounds).await;
                        }
                    }
                    r = rounds.changed() => {
                        if r.is_err() {
                            return;
                        }
                        self.feed_round(&rounds).await;
                    }
                    Some(l) = listings.recv() => self.feed_listing(l).await,
                }
            }
        }
    }

    async fn feed_round(&mut self, rounds: &watch::Receiver<Option<(Instant, bool)>>) {
        let latest = *rounds.borrow();
        if let Some((at, peer_up)) = latest {
            self.feed(Observation::Round { at, peer_up }).await;
        }
    }

    async fn feed_listing(&mut self, (started_at, accounts): Listing) {
        self.feed(Observation::Directory {
            started_at,
            accounts,
        })
        .await;
    }

    /// One renewal (or, without a session, create + acquire).
    async fn renew_once(&mut self, sent: Instant) -> Observation {
        if let Some(id) = self.session.clone() {
            return match self.client.session_renew(&id).await {
                Ok(true) => Observation::Renewed { sent_at: sent },
                Ok(false) => {
                    tracing::warn!(key = %self.key, "the serving lease's Consul session is gone; taking a new one");
                    self.renew_error = Some("the session is gone".into());
                    self.session = None;
                    Observation::RenewFailed
                }
                Err(crate::consul::Error::BadName { .. }) => {
                    // Not a session id (a hand-edited lease.json): start over.
                    self.session = None;
                    Observation::RenewFailed
                }
                Err(e) => {
                    tracing::warn!(key = %self.key, "cannot renew the serving lease: {e}");
                    self.renew_error = Some(e.to_string());
                    Observation::RenewFailed
                }
            };
        }
        let req = SessionRequest {
            name: format!("habeat serving {}", self.host),
            ttl: format!("{}s", self.ttl.as_secs()),
            behavior: "release".into(),
            lock_delay: format!("{}s", super::LOCK_DELAY.as_secs()),
            checks: SessionChecks::None,
        };
        let id = match self.client.session_create(&req).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(key = %self.key, "cannot create the serving lease's session: {e}");
                self.renew_error = Some(e.to_string());
                return Observation::RenewFailed;
            }
        };
        let holder = crate::consul::gate::Holder::this_process(format!("serve {}", self.host));
        let value = serde_json::to_vec(&holder).unwrap_or_default();
        match self.client.kv_acquire(&self.key, &id, &value).await {
            Ok(true) => {
                self.session = Some(id);
                Observation::Renewed { sent_at: sent }
            }
            Ok(false) => {
                let _ = self.client.session_destroy(&id).await;
                tracing::warn!(
                    key = %self.key,
                    "cannot take the serving lease: another session holds it, or its lock-delay \
                     after an expired session has not passed yet"
                );
                self.renew_error = Some("the key is held by another session".into());
                Observation::RenewFailed
            }
            Err(e) => {
                let _ = self.client.session_destroy(&id).await;
                tracing::warn!(key = %self.key, "cannot take the serving lease: {e}");
                self.renew_error = Some(e.to_string());
                Observation::RenewFailed
            }
        }
    }

    async fn feed(&mut self, obs: Observation) {
        let before = self.machine.saved.clone();
        self.machine.saved.session = self.session.clone();
        if matches!(obs, Observation::Renewed { .. }) {
            self.machine.saved.last_renewed_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs());
        }
        let mut pending = self.machine.observe(obs, Instant::now());
        while let Some(cmd) = (!pending.is_empty()).then(|| pending.remove(0)) {
            match cmd {
                Command::ReadFailoverKey => {
                    if let Ok(pair) = self.client.kv_get(&self.failover_key).await {
                        let more = self.machine.observe(
                            Observation::FailoverKey {
                                lock_index: pair.map(|p| p.lock_index),
                            },
                            Instant::now(),
                        );
                        pending.extend(more);
                    }
                }
                Command::Fence => {
                    let answer = self.fence().await;
                    pending.extend(self.machine.observe(answer, Instant::now()));
                }
                Command::Unfence => self.unfence().await,
                Command::StayFenced => self.stay_fenced(),
                Command::ReadDirectory => self.directory.read(),
                Command::SaveRecord => {
                    if let Some(r) = &self.machine.recorded {
                        tracing::info!(
                            key = %self.key,
                            "recorded {} account(s) living on {} while serving",
                            r.len(),
                            self.host
                        );
                        self.directory.save(r.clone());
                    }
                }
                Command::RecordFailed { reason } => tracing::warn!(
                    key = %self.key,
                    "cannot list the accounts living on {} ({}): {reason}",
                    self.host,
                    match self.machine.recorded {
                        Some(_) => "kept the previous record",
                        None => "no record yet: asked again while serving",
                    }
                ),
                Command::NoEvidence { reason } => self.no_evidence(reason),
            }
        }
        let now = Instant::now();
        if self.machine.phase(now) == Phase::LapsedPeerUp && !self.lapsed_said {
            self.lapsed_said = true;
            self.journal_event(
                Severity::Warning,
                EventKind::LeaseLapsedPeerUp {
                    key: self.key.clone(),
                },
                format!(
                    "the serving lease {} was not renewed for ttl - ttl/3, but a witness sees the \
                     secondary's mailstore Up: not fencing (the secondary sees this side too and \
                     will not promote it)",
                    self.key
                ),
            );
        } else if self.machine.phase(now) != Phase::LapsedPeerUp {
            self.lapsed_said = false;
        }
        if self.machine.saved != before {
            self.save();
        }
        self.publish();
    }

    /// Run the `on_fence` hooks; the machine's answer says how they ended.
    async fn fence(&mut self) -> Observation {
        let again = self.machine.saved.fence_failed.as_ref().map(|f| f.attempts);
        tracing::error!(
            key = %self.key,
            "FENCING: the serving lease {} was not renewed for ttl - ttl/3 ({}) and no witness sees \
             the secondary's mailstore Up; running hooks.on_fence{}",
            self.key,
            humantime::format_duration(self.machine.timing.margin()),
            match again {
                Some(n) => format!(" again (it failed {n} time(s))"),
                None => String::new(),
            }
        );
        // Saved as due before the hooks run: a stop, crash or kill while
        // they run leaves the fence owed, and the next start runs it.
        self.save();
        self.publish();
        self.fencing.store(true, Ordering::SeqCst);
        let env = self.env("fence");
        let report = self
            .runner
            .run_all(&self.on_fence, &env, OnFailure::Continue)
            .await;
        self.fencing.store(false, Ordering::SeqCst);
        let ok = report.ok();
        let error = report
            .failures()
            .filter_map(|o| o.failure.clone())
            .collect::<Vec<_>>()
            .join("; ");
        self.journal_event(
            if ok {
                Severity::Warning
            } else {
                Severity::Error
            },
            EventKind::LeaseFenced {
                key: self.key.clone(),
                hooks_ok: ok,
            },
            if ok {
                format!(
                    "fenced: the serving lease {} was lost; every hooks.on_fence hook ({}) succeeded",
                    self.key,
                    self.on_fence.len(),
                )
            } else {
                format!(
                    "fence FAILED: the serving lease {} was lost and hooks.on_fence failed ({error}); \
                     habeat runs the hooks again in {} (doubling, at most {}): fix the hook or do its \
                     steps by hand",
                    self.key,
                    humantime::format_duration(fence_retry_delay(again.unwrap_or(0) + 1)),
                    humantime::format_duration(super::machine::FENCE_RETRY_MAX),
                )
            },
        );
        if ok {
            Observation::FenceHooksDone
        } else {
            Observation::FenceHooksFailed {
                error,
                at_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            }
        }
    }

    fn no_evidence(&mut self, reason: String) {
        let msg = format!(
            "stays fenced for now: the serving lease {} is back and {} shows no promotion, but \
             {reason}. Asking again at every renewal",
            self.key, self.failover_key
        );
        tracing::warn!(key = %self.key, "{msg}");
        if self.unproven_said.as_ref() != Some(&reason) {
            self.unproven_said = Some(reason);
            self.journal_event(
                Severity::Warning,
                EventKind::LeaseUnproven {
                    key: self.key.clone(),
                },
                msg,
            );
        }
    }

    async fn unfence(&mut self) {
        self.unproven_said = None;
        tracing::warn!(key = %self.key, "the serving lease is back and no promotion was made meanwhile: running hooks.on_unfence");
        let env = self.env("unfence");
        let report = self
            .runner
            .run_all(&self.on_unfence, &env, OnFailure::Continue)
            .await;
        let ok = report.ok();
        self.journal_event(
            if ok { Severity::Info } else { Severity::Error },
            EventKind::LeaseUnfenced {
                key: self.key.clone(),
                hooks_ok: ok,
            },
            format!(
                "unfenced: the serving lease {} is back, {} shows no promotion and the directory \
                 still lists every account recorded on {} while serving ({}); hooks.on_unfence \
                 ran",
                self.key,
                self.failover_key,
                self.host,
                self.machine.recorded.as_ref().map_or(0, Vec::len)
            ),
        );
    }

    fn stay_fenced(&mut self) {
        let msg = self.stuck_message();
        tracing::error!(key = %self.key, "{msg}");
        let moved = &self.machine.moved;
        self.journal_event(
            Severity::Error,
            EventKind::LeaseStaysFenced {
                key: self.key.clone(),
                moved: moved.len(),
                moved_first: moved.iter().take(MOVED_NAMED).cloned().collect(),
            },
            msg,
        );
    }

    fn stuck_message(&self) -> String {
        let moved = &self.machine.moved;
        let seen = if moved.is_empty() {
            format!(
                "{} was taken while this side was fenced (the secondary promoted, or began to \
                 promote, {})",
                self.failover_key, self.host
            )
        } else {
            let first = moved
                .iter()
                .take(MOVED_NAMED)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let more = moved.len().saturating_sub(MOVED_NAMED);
            format!(
                "{} of the accounts recorded on {} while serving now live elsewhere in the \
                 directory (a promotion was made while this side was fenced): {first}{}",
                moved.len(),
                self.host,
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        };
        format!(
            "stays fenced: the serving lease {} is back, but {seen}. hooks.on_unfence will not \
             run. Fail the accounts back first (habeat promote on this side, then habeat rearm on \
             the secondary), then undo your on_fence steps by hand and remove {} to clear the fence",
            self.key,
            self.state_path.display()
        )
    }

    fn env(&self, what: &str) -> HookEnv {
        HookEnv::new()
            .set("HABEAT_LEASE", what)
            .set("HABEAT_LEASE_KEY", &self.key)
            .set("HABEAT_HOST", &self.host)
    }

    fn journal_event(&self, severity: Severity, kind: EventKind, message: String) {
        let e = Event {
            operator: None,
            at: UnixMillis::from_system_time(SystemTime::now()),
            severity,
            kind,
            role: None,
            component: None,
            message,
        };
        let sink = self.events.borrow().clone();
        sink.report(e);
    }

    /// Keep [`Failing`] up to date after a renewal; saved when it starts,
    /// ends or its error changes.
    fn note_renewal(&mut self, ok: bool) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let error = self.renew_error.take().unwrap_or_else(|| "failed".into());
        let failing = (!ok).then(|| Failing {
            since_unix: self.failing.as_ref().map_or(now, |f| f.since_unix),
            error,
        });
        if failing != self.failing {
            self.failing = failing;
            self.save();
        }
    }

    fn save(&self) {
        let on_disk = OnDisk {
            saved: &self.machine.saved,
            renewals_failing: self.failing.as_ref(),
        };
        let bytes = match serde_json::to_vec_pretty(&on_disk) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot serialize the lease state: {e}");
                return;
            }
        };
        if let Err(e) = crate::state::write_atomic(&self.state_path, &bytes) {
            tracing::error!(
                "cannot save the lease state to {}: {e}",
                self.state_path.display()
            );
        }
    }

    fn publish(&self) {
        let now = Instant::now();
        let phase = self.machine.phase(now);
        let held = self.machine.held(now);
        let message = match phase {
            Phase::Starting => format!("taking the serving lease {}", self.key),
            Phase::Held => match &self.failing {
                Some(f) => format!(
                    "holding the serving lease {}, but {}",
                    self.key,
                    f.sentence()
                ),
                None => format!("holding the serving lease {}", self.key),
            },
            Phase::LapsedPeerUp => format!(
                "the serving lease {} lapsed; not fencing while a witness sees the secondary's \
                 mailstore Up",
                self.key
            ),
            Phase::Fencing | Phase::FenceFailed => {
                fence_message(&self.key, &self.machine.saved).unwrap_or_default()
            }
            Phase::Fenced => match &self.machine.unproven {
                None => format!(
                    "FENCED: the serving lease {} was lost (hooks.on_fence ran); waiting for it \
                     to come back",
                    self.key
                ),
                Some(why) => format!(
                    "FENCED: the serving lease {} is back but {why}; asking again at every \
                     renewal. If this side's accounts are known to be its own, run your \
                     on_unfence steps by hand and remove {}",
                    self.key,
                    self.state_path.display()
                ),
            },
            Phase::FencedAfterPromotion => self.stuck_message(),
        };
        let saved = &self.machine.saved;
        let fenced = saved.fenced;
        let fence_failed = saved
            .fence_failed
            .clone()
            .filter(|_| self.machine.fence_owed());
        if let Some(m) = &self.metrics {
            m.set_lease(
                held,
                if saved.stuck { 2 } else { i64::from(fenced) },
                fence_failed.is_some(),
            );
        }
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = LeaseStatus {
            key: self.key.clone(),
            phase,
            held,
            fenced,
            message: match (&self.failing, phase) {
                (Some(f), Phase::LapsedPeerUp | Phase::Starting) => {
                    format!("{message}; {}", f.sentence())
                }
                _ => message,
            },
            renewals_failing: self.failing.clone(),
            fence_failed,
        };
    }
}
