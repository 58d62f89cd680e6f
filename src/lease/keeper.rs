//! The serving lease's I/O: the Consul session and key, the renewal
//! timer, the hooks, the journal and `state_dir/lease.json`. Every
//! decision is [`super::machine`]'s.
//!
//! The keeper runs as its own task beside the daemon's probe loop, so a
//! long round or a running promotion never delays a renewal, and a slow
//! Consul call never delays the fence: each call gives up after ttl/3, and
//! the deadline is watched on its own timer.

use super::machine::{Command, Lease, Observation, Phase, Saved, Timing};
use crate::act::hooks::{HookEnv, HookRunner, OnFailure};
use crate::config::{Config, HookCommand};
use crate::consul::{Client, SessionChecks, SessionRequest};
use crate::engine::{Event, EventKind, Severity, UnixMillis};
use crate::model::{Component, Role, Round, Vote};
use crate::state::Journal;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The lease file in `state_dir`.
pub const FILE: &str = "lease.json";

/// What `status` and `/metrics` show of the lease.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaseStatus {
    pub key: String,
    pub phase: Phase,
    pub held: bool,
    pub fenced: bool,
    /// What the operator should know (and do), in words.
    pub message: String,
}

/// Whether this node holds a serving lease: `lease.enabled`, on the
/// primary side, with the appserver or proxyserver role, and its own mail
/// host named (`<whoami>.appserver_vmname`). `None`: no lease.
pub fn lease_key(cfg: &Config) -> Option<String> {
    if !cfg.lease.enabled || cfg.local.whoami != "primary" {
        return None;
    }
    if !cfg
        .local
        .roles
        .iter()
        .any(|r| matches!(r, Role::Appserver | Role::Proxyserver))
    {
        return None;
    }
    let host = cfg.dcs.get(&cfg.local.whoami)?.appserver_vmname.clone()?;
    Some(super::key(&host))
}

/// The lease as `state_dir/lease.json` last recorded it, for `habeat
/// status` (another process than the daemon): `None` without a lease.
pub fn file_status(cfg: &Config) -> Option<serde_json::Value> {
    let key = lease_key(cfg)?;
    let path = cfg.local.state_dir.join(FILE);
    let saved: Option<Saved> = match crate::state::read_nofollow(&path) {
        Ok(Some(b)) => serde_json::from_slice(&b).ok(),
        _ => None,
    };
    let (fenced, stuck) = saved.map_or((false, false), |s| (s.fenced, s.stuck));
    let message = if stuck {
        format!(
            "FENCED after a promotion: {key} was lost and the secondary promoted meanwhile; fail \
             the accounts back, undo the on_fence steps by hand, then remove {}",
            path.display()
        )
    } else if fenced {
        format!("FENCED: the serving lease {key} was lost (hooks.on_fence ran)")
    } else {
        format!("serving lease {key}: not fenced")
    };
    Some(serde_json::json!({
        "key": key, "fenced": fenced, "stuck": stuck, "message": message,
    }))
}

/// Whether a witness of this round voted Up for the peer's mailstore.
pub fn peer_mailstore_up(round: &Round) -> bool {
    round
        .observations
        .iter()
        .any(|o| o.witness.component == Component::Appserver && o.vote == Vote::Up)
}

/// A running keeper: feed it rounds, read its status.
pub struct KeeperHandle {
    rounds: watch::Sender<Option<(Instant, bool)>>,
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

    /// Stop renewing (the session then expires on its own: a stopping
    /// habeat does not hand its lease over early).
    pub fn stop(&self) {
        self.task.abort();
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
    journal: Journal,
    runner: HookRunner,
    on_fence: Vec<HookCommand>,
    on_unfence: Vec<HookCommand>,
    machine: Lease,
    session: Option<String>,
    status: Arc<Mutex<LeaseStatus>>,
    metrics: Option<crate::daemon::Metrics>,
    lapsed_said: bool,
}

/// Start the keeper if this node holds a lease ([`lease_key`]).
pub fn spawn(
    cfg: &Config,
    metrics: Option<crate::daemon::Metrics>,
) -> Result<Option<KeeperHandle>, String> {
    let Some(key) = lease_key(cfg) else {
        return Ok(None);
    };
    let host = key[super::KEY_PREFIX.len()..].to_owned();
    let timing = Timing { ttl: cfg.lease.ttl };
    let client = Client::new(&cfg.consul, timing.renew_every()).map_err(|e| e.to_string())?;
    let state_path = cfg.local.state_dir.join(FILE);
    let saved = match crate::state::read_nofollow(&state_path) {
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
    let since = saved.last_renewed_unix.and_then(|t| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH + Duration::from_secs(t))
            .ok()
    });
    let machine = Lease::start(timing, saved, Instant::now(), since);
    let status = Arc::new(Mutex::new(LeaseStatus {
        key: key.clone(),
        phase: machine.phase(Instant::now()),
        held: false,
        fenced: machine.saved.fenced,
        message: String::new(),
    }));
    let (tx, rx) = watch::channel(None);
    let keeper = Keeper {
        client,
        failover_key: crate::consul::gate::lock_key(&host),
        host,
        key,
        ttl: cfg.lease.ttl,
        state_path,
        journal: Journal::with_rotation(
            &cfg.local.state_dir.join("events.jsonl"),
            (&cfg.journal).into(),
        ),
        runner: HookRunner::new(cfg.hooks.timeout),
        on_fence: cfg.hooks.on_fence.clone(),
        on_unfence: cfg.hooks.on_unfence.clone(),
        session: machine.saved.session.clone(),
        machine,
        status: status.clone(),
        metrics,
        lapsed_said: false,
    };
    let task = tokio::spawn(keeper.run(rx));
    Ok(Some(KeeperHandle {
        rounds: tx,
        status,
        task,
    }))
}

impl Keeper {
    async fn run(mut self, mut rounds: watch::Receiver<Option<(Instant, bool)>>) {
        tracing::info!(
            key = %self.key,
            ttl = %humantime::format_duration(self.ttl),
            "serving lease: holding {} (renewed every ttl/3, fenced after ttl - ttl/3 without a renewal)",
            self.key
        );
        self.publish();
        loop {
            let sent = Instant::now();
            let obs = self.renew_once(sent).await;
            let ok = matches!(obs, Observation::Renewed { .. });
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
                let deadline = self.machine.deadline().max(Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => break,
                    _ = tokio::time::sleep_until(deadline.into()), if !self.machine.saved.fenced => {
                        self.feed(Observation::Tick).await;
                        // Not fenced (a witness sees the peer Up): look
                        // again at the next round or renewal.
                        if !self.machine.saved.fenced {
                            tokio::select! {
                                _ = tokio::time::sleep_until(next.into()) => break,
                                r = rounds.changed() => if r.is_err() { return },
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

    /// One renewal (or, without a session, create + acquire).
    async fn renew_once(&mut self, sent: Instant) -> Observation {
        if let Some(id) = self.session.clone() {
            return match self.client.session_renew(&id).await {
                Ok(true) => Observation::Renewed { sent_at: sent },
                Ok(false) => {
                    tracing::warn!(key = %self.key, "the serving lease's Consul session is gone; taking a new one");
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
                Observation::RenewFailed
            }
            Err(e) => {
                let _ = self.client.session_destroy(&id).await;
                tracing::warn!(key = %self.key, "cannot take the serving lease: {e}");
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
                Command::Fence => self.fence().await,
                Command::Unfence => self.unfence().await,
                Command::StayFenced => self.stay_fenced(),
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

    async fn fence(&mut self) {
        tracing::error!(
            key = %self.key,
            "FENCING: the serving lease {} was not renewed for ttl - ttl/3 ({}) and no witness sees \
             the secondary's mailstore Up; running hooks.on_fence before the secondary can take \
             the lease over",
            self.key,
            humantime::format_duration(self.machine.timing.margin())
        );
        // Saved before the hooks run: a crash while they run still leaves
        // this side fenced on restart.
        self.save();
        let env = self.env("fence");
        let report = self
            .runner
            .run_all(&self.on_fence, &env, OnFailure::Continue)
            .await;
        let ok = report.ok();
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
            format!(
                "fenced: the serving lease {} was lost; hooks.on_fence ran ({} hook(s){})",
                self.key,
                self.on_fence.len(),
                if ok { "" } else { ", some FAILED" }
            ),
        );
    }

    async fn unfence(&mut self) {
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
                "unfenced: the serving lease {} is back and {} shows no promotion; \
                 hooks.on_unfence ran",
                self.key, self.failover_key
            ),
        );
    }

    fn stay_fenced(&mut self) {
        let msg = self.stuck_message();
        tracing::error!(key = %self.key, "{msg}");
        self.journal_event(
            Severity::Error,
            EventKind::LeaseStaysFenced {
                key: self.key.clone(),
            },
            msg,
        );
    }

    fn stuck_message(&self) -> String {
        format!(
            "stays fenced: the serving lease {} is back, but {} was taken while this side was \
             fenced (the secondary promoted, or began to promote, {}). hooks.on_unfence will not \
             run. Fail the accounts back first (habeat promote on this side, then habeat rearm on \
             the secondary), then undo your on_fence steps by hand and remove {} to clear the fence",
            self.key,
            self.failover_key,
            self.host,
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
        if let Err(err) = self.journal.append(std::slice::from_ref(&e)) {
            tracing::error!("cannot journal the lease event ({}): {err}", e.message);
        }
    }

    fn save(&self) {
        let bytes = match serde_json::to_vec_pretty(&self.machine.saved) {
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
            Phase::Held => format!("holding the serving lease {}", self.key),
            Phase::LapsedPeerUp => format!(
                "the serving lease {} lapsed; not fencing while a witness sees the secondary's \
                 mailstore Up",
                self.key
            ),
            Phase::Fenced => format!(
                "FENCED: the serving lease {} was lost (hooks.on_fence ran); waiting for it to \
                 come back",
                self.key
            ),
            Phase::FencedAfterPromotion => self.stuck_message(),
        };
        let fenced = self.machine.saved.fenced;
        if let Some(m) = &self.metrics {
            m.set_lease(
                held,
                match phase {
                    Phase::FencedAfterPromotion => 2,
                    _ => i64::from(fenced),
                },
            );
        }
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = LeaseStatus {
            key: self.key.clone(),
            phase,
            held,
            fenced,
            message,
        };
    }
}
