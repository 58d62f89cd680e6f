//! The real [`Driver`] of `habeat run`: probe → engine → executor.
//!
//! Each round probes the peer; when no action is running it takes the
//! state lock briefly, feeds the round to the engine and persists the
//! result. An action the engine hands out runs as an [`ActionJob`] (with
//! the state lock and the session moved into it), so probing, STATUS and
//! WATCHDOG go on during a long promotion. While a job runs, the driver
//! says so ([`Activity::Running`]) and does not decide; the rounds it
//! completes meanwhile are queued for the job's session, which feeds them
//! to the engine between its actions (see `Session::watch_rounds`), so a
//! peer seen again stops a promotion that has not begun.

use super::metrics::Metrics;
use super::run::{ActionEnd, ActionJob, Driver, RoundContext, RoundError, RoundReport};
use crate::config::Config;
use crate::engine::{ActionKind, Input, OutcomeResult, State};
use crate::model::{Component, Verdict};
use crate::probe::Prober;
use crate::session::{Fed, Session};
use crate::sink::EventSink;
use crate::state::StateLock;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a daemon round waits for the state lock held by a `check` or
/// `promote` before skipping the decision this round.
const ROUND_LOCK_WAIT: Duration = Duration::from_millis(200);

/// What the daemon is doing with its session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Activity {
    /// No job: each round decides.
    Idle,
    /// A job owns the session (and the state lock) until it ends.
    Running { what: String },
}

/// The daemon's driver: probe, then decide through the session, and run
/// what it hands out as a job.
pub struct SessionDriver {
    config_path: PathBuf,
    cfg: Config,
    prober: Prober,
    session: Arc<Mutex<Session>>,
    /// A session for a configuration reloaded while a job runs: the job
    /// takes it up at its next action boundary (or the driver when the job
    /// ends first).
    reloaded: crate::session::Reloaded,
    /// Rounds completed while a job runs, for the job's session to see
    /// between its actions.
    meanwhile: crate::session::RoundsMeanwhile,
    metrics: Metrics,
    /// The latest `status --json`, served on `/status`.
    pub status: Arc<StdMutex<serde_json::Value>>,
    /// Why the last round could not decide (`state_dir` unusable), while
    /// it lasts: said loudly once when it starts, changes or ends, not
    /// every round.
    cannot_decide: Option<String>,
    activity: Activity,
    /// The serving lease's keeper (primary side, `lease.enabled`).
    lease: Option<crate::lease::keeper::KeeperHandle>,
    /// The replica survey running beside the rounds, if any.
    survey: Option<tokio::task::JoinHandle<()>>,
    /// When the last survey was started (a failed one is not retried
    /// before `replicas.survey_interval`).
    survey_tried: Option<std::time::Instant>,
    /// Whether the local Consul agent answered the last round (`None`
    /// before the first), to log its loss once.
    local_consul_up: Option<bool>,
    /// `state_dir/daemon.lock`, held for the daemon's life: how `status`
    /// knows a daemon runs.
    _running: crate::state::DaemonLock,
}

/// What an action job reports back.
pub struct JobResult {
    fed: Fed,
    error: Option<String>,
}

impl SessionDriver {
    /// Build the pipeline for a validated configuration.
    pub fn new(
        config_path: PathBuf,
        cfg: Config,
        metrics: Metrics,
    ) -> Result<SessionDriver, String> {
        let prober = Prober::new(&cfg).map_err(|e| e.to_string())?;
        let mut session = Session::open(&cfg, false).map_err(|e| e.to_string())?;
        let running = crate::state::DaemonLock::acquire(&cfg.local.state_dir)?;
        let meanwhile = crate::session::RoundsMeanwhile::default();
        session.watch_rounds(meanwhile.clone());
        let reloaded = crate::session::Reloaded::default();
        session.watch_reload(reloaded.clone());
        session.events().count_in(Arc::new(metrics.clone()));
        let lease = crate::lease::keeper::spawn(
            &cfg,
            session.events().clone(),
            Some(Arc::new(metrics.clone())),
        )?;
        metrics.declare_actions(crate::exec::ACTION_KINDS);
        Ok(SessionDriver {
            config_path,
            prober,
            status: Arc::new(StdMutex::new(crate::commands::status_json(
                &session.state,
                &cfg,
                &session.ecfg,
            ))),
            session: Arc::new(Mutex::new(session)),
            reloaded,
            meanwhile,
            cfg,
            metrics,
            cannot_decide: None,
            activity: Activity::Idle,
            lease,
            survey: None,
            survey_tried: None,
            local_consul_up: None,
            _running: running,
        })
    }

    /// The serving lease under a reloaded `cfg`, so that what `status`
    /// says of it is what runs: `lease.enabled` turned on starts the
    /// keeper, turned off stops it (a fence stands: `lease.json` keeps
    /// saying so and `status` shows it until the operator removes it);
    /// a changed `consul:` section (a rotated token) reaches the keeper's
    /// own client. Other lease settings need a restart, as said. An error
    /// (an unreadable `lease.json`) refuses the whole reload.
    fn reload_lease(&mut self, cfg: &Config, events: &EventSink) -> Result<(), String> {
        use crate::lease::keeper;
        match (&self.lease, keeper::lease_key(cfg)) {
            (None, Some(key)) => {
                self.lease =
                    keeper::spawn(cfg, events.clone(), Some(Arc::new(self.metrics.clone())))?;
                tracing::info!("lease.enabled is on now: taking the serving lease {key}");
            }
            (Some(l), None) => {
                let st = l.status();
                l.stop();
                self.lease = None;
                // habeat_fenced as the keeper last set it (2: only the
                // operator unfences), since the fence stands.
                let fenced = match st.phase {
                    crate::lease::machine::Phase::FencedAfterPromotion => 2,
                    _ => i64::from(st.fenced),
                };
                self.metrics
                    .set_lease(false, fenced, st.fence_failed.is_some());
                if st.fenced {
                    tracing::error!(
                        "the serving lease is off now (lease.enabled, local.whoami or roles \
                         changed), but this side is FENCED ({}): hooks.on_unfence will not run. \
                         Undo the on_fence steps by hand, then remove {}",
                        st.message,
                        self.cfg.local.state_dir.join(keeper::FILE).display()
                    );
                } else {
                    tracing::warn!(
                        "the serving lease is off now: {} is no longer renewed and its session \
                         expires within lease.ttl",
                        st.key
                    );
                }
            }
            (Some(l), Some(key)) => {
                // Whatever changed in consul: (the token above all): the
                // next renewal uses it, as the probes and actions do.
                l.set_consul(cfg)?;
                l.set_events(events.clone());
                if keeper::lease_key(&self.cfg).as_deref() != Some(key.as_str())
                    || self.cfg.lease != cfg.lease
                    || self.cfg.hooks.on_fence != cfg.hooks.on_fence
                    || self.cfg.hooks.on_unfence != cfg.hooks.on_unfence
                {
                    // Restarting the keeper would drop its session mid-lease.
                    tracing::warn!(
                        "the lease settings (lease.ttl, hooks.on_fence, hooks.on_unfence, the \
                         own mail host) changed: they take effect when habeat restarts; the \
                         serving lease {key} goes on as before"
                    );
                }
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// Note whether this round could decide. Another habeat holding the
    /// state lock for a moment (a `check`, a `promote`) is not a problem;
    /// a state directory habeat cannot use is: nothing automatic happens
    /// until it is fixed, so the operator must hear of it (an ERROR, the
    /// systemd STATUS line, `habeat_cannot_decide`), once per change.
    fn note_deciding(&mut self, problem: Option<String>) {
        if problem == self.cannot_decide {
            return;
        }
        match &problem {
            Some(p) => tracing::error!(
                "cannot decide: {p}; habeat keeps probing but takes no automatic action until \
                 this is fixed"
            ),
            None => tracing::info!("the state directory is usable again: deciding"),
        }
        self.metrics.set_cannot_decide(problem.is_some());
        self.cannot_decide = problem;
    }

    /// Note whether the local Consul agent answered this round. Without
    /// it the quorum gate cannot be taken, so no failover can happen: a
    /// WARNING when it stops answering (once per change), an INFO when it
    /// answers again, and `habeat_local_consul_up` for the alert.
    fn note_local_consul(&mut self, up: bool) {
        self.metrics.set_local_consul_up(up);
        if self.local_consul_up == Some(up) {
            return;
        }
        let agent = format!("{}:{}", self.cfg.consul.hostname, self.cfg.consul.port);
        if up {
            if self.local_consul_up.is_some() {
                tracing::info!("the local Consul agent ({agent}) answers again");
            }
        } else {
            tracing::warn!(
                "the local Consul agent ({agent}, consul.hostname/consul.port) does not answer: \
                 no failover is possible until it does (the quorum gate needs it); check it \
                 with `consul members` and `systemctl status service-discover`"
            );
        }
        self.local_consul_up = Some(up);
    }

    /// Feed the lock files and `round` to the engine under the state
    /// lock, and hand out what it decides as the job.
    async fn decide(
        &mut self,
        lock: StateLock,
        round: &crate::model::Round,
    ) -> Result<Option<ActionJob<JobResult>>, crate::state::StateError> {
        let mut s = self.session.lock().await;
        // Session::decide re-reads state.json first: a `check` or
        // `promote` may have acted since our last round. The lock files
        // go first (one removed by hand re-arms); whatever either input
        // hands out runs as the job, never inside the round: an
        // operator's promotion resumed here may take an hour.
        let mut fed = Fed::default();
        let locks = s.lock_files()?;
        let from_locks = s.decide(locks, &mut fed)?;
        // With an action handed out above, this only updates the
        // verdicts: one action at a time.
        let from_round = s.decide(Input::Round(round.clone()), &mut fed)?;
        let Some(action) = from_locks.or(from_round) else {
            drop(lock);
            let state = s.state.clone();
            drop(s);
            self.start_survey(&state);
            return Ok(None);
        };
        let session = self.session.clone();
        let what = action.kind.describe();
        // Every step is bounded by the executor (its own command, hook
        // or Consul timeouts, and a backstop per step); a chain's length
        // depends on the accounts and hooks, so the job as a whole is not.
        Ok(Some(ActionJob::unbounded(what, async move {
            let _lock = lock;
            let mut s = session.lock().await;
            let mut fed = Fed::default();
            let error = s
                .drive(Some(action), &mut fed)
                .await
                .err()
                .map(|e| e.to_string());
            JobResult { fed, error }
        })))
    }

    /// The replica survey, beside probing and deciding, never inside a
    /// round and never in their way: a task of its own, not a job, so a
    /// peer that dies while the CLI lists (up to `carbonio.command_timeout`)
    /// is still judged and acted on at the round's pace. Started only with
    /// nothing else to do, at most one at a time, and, after an attempt
    /// that failed, not again before `survey_interval` has passed. The
    /// state lock is taken only to keep the survey; an action holding it
    /// then costs this survey (said, and tried again next interval), never
    /// the action.
    fn start_survey(&mut self, state: &State) {
        if self.survey.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let interval = self.cfg.replicas.survey_interval;
        if self.survey_tried.is_some_and(|at| at.elapsed() < interval) {
            return;
        }
        let now = crate::session::now();
        if !crate::survey::job::due_by_mtime(&self.cfg, state, now) {
            return;
        }
        let Ok(cli) = crate::act::carbonio::Carbonio::new(&self.cfg.carbonio) else {
            return;
        };
        self.survey_tried = Some(std::time::Instant::now());
        let (cfg, session) = (self.cfg.clone(), self.session.clone());
        let metrics = self.metrics.clone();
        self.survey = Some(tokio::spawn(async move {
            let fetched = crate::survey::job::fetch(&cfg, &cli, crate::session::now).await;
            if fetched.is_err() {
                metrics.record_survey_failure();
            }
            let dir = cfg.local.state_dir.clone();
            match tokio::task::spawn_blocking(move || StateLock::acquire(&dir, ROUND_LOCK_WAIT))
                .await
            {
                Ok(Ok(_lock)) => {
                    let mut s = session.lock().await;
                    let done = match &fetched {
                        Ok(survey) => s.keep_survey(survey),
                        Err(e) => s.survey_failed(e),
                    };
                    if let Err(e) = done {
                        tracing::error!("replica survey not recorded: {e}");
                    }
                }
                Ok(Err(e)) => tracing::warn!("replica survey not recorded: {e}"),
                Err(e) => tracing::error!("replica survey not recorded: {e}"),
            }
        }));
    }

    fn publish(
        &self,
        state: &State,
        live: &crate::engine::Live,
        ecfg: &crate::engine::EngineConfig,
    ) {
        let clock = crate::session::clock();
        let now = clock.wall;
        let paused_since = state
            .pause
            .as_ref()
            .filter(|_| state.paused_at(now))
            .map(|p| std::time::Duration::from_millis(p.since.0));
        self.metrics.record_state(
            paused_since,
            self.cfg.local.roles.iter().map(|r| {
                let locked = state.roles.get(r).is_some_and(|rs| rs.failover.is_some());
                (*r, locked)
            }),
        );
        // One plan for the metrics and /status: what each role would do.
        let plan = crate::engine::plan_live(state, live, ecfg, clock);
        self.metrics.record_plan(&plan);
        let mut v = crate::commands::status_json_planned(state, &self.cfg, &plan);
        v["cannot_decide"] = self.cannot_decide.clone().into();
        self.metrics.record_survey(&v["replicas"]["survey"]);
        self.metrics
            .set_survey_failed(!v["replicas"]["last_failure"].is_null());
        if let Some(l) = &self.lease {
            v["lease"] = serde_json::to_value(l.status()).unwrap_or_default();
        }
        if let Ok(mut s) = self.status.lock() {
            *s = v;
        }
    }

    fn status_line(&self, state: &State) -> String {
        let parts: Vec<String> = crate::probe::watched_components(&self.cfg)
            .into_iter()
            .map(|c| format!("{c} {}", state.verdict(c)))
            .collect();
        let mode = if state.safe_hold.is_some() {
            "SAFE HOLD"
        } else if state.paused_at(crate::session::now()) {
            "paused"
        } else if state.last_promotion.is_some() {
            "promoted"
        } else {
            "armed"
        };
        let line = format!(
            "peer {}: {}; {mode}",
            self.cfg.local.dc_check,
            parts.join(", ")
        );
        match &self.cannot_decide {
            Some(p) => format!("CANNOT DECIDE ({p}); {line}"),
            None => line,
        }
    }

    fn record_fed(&self, fed: &Fed) {
        for (action, result) in &fed.actions {
            let kind = crate::exec::label(&action.kind);
            let outcome = match result {
                Some(OutcomeResult::Succeeded { .. })
                | Some(OutcomeResult::Listed { .. })
                | Some(OutcomeResult::Operations { .. })
                | Some(OutcomeResult::Fenced { .. }) => super::metrics::ActionOutcome::Succeeded,
                Some(OutcomeResult::FenceUnconfirmed { .. }) => {
                    super::metrics::ActionOutcome::Failed
                }
                Some(OutcomeResult::TimedOut { .. }) => super::metrics::ActionOutcome::TimedOut,
                Some(OutcomeResult::GateRefused { .. }) => {
                    self.metrics.record_quorum_gate_refusal();
                    super::metrics::ActionOutcome::Failed
                }
                Some(OutcomeResult::Failed { .. }) | Some(OutcomeResult::PeerLeaseWait { .. }) => {
                    super::metrics::ActionOutcome::Failed
                }
                None => super::metrics::ActionOutcome::DryRun,
            };
            if matches!(action.kind, ActionKind::PromoteAccounts { .. })
                && outcome == super::metrics::ActionOutcome::Succeeded
            {
                self.metrics.record_promotion();
            }
            self.metrics.record_action(kind, outcome);
        }
    }
}

impl Driver for SessionDriver {
    type Outcome = JobResult;

    fn interval(&self) -> Duration {
        self.cfg.detection.interval
    }

    async fn round(&mut self, _ctx: RoundContext) -> Result<RoundReport<JobResult>, RoundError> {
        let round = self.prober.round().await;
        self.note_local_consul(round.local_leader.is_some());
        if let Some(l) = &self.lease {
            l.round(&round);
        }
        let mut job = None;
        let running = self.activity != Activity::Idle;
        // A running job's session sees this round between its actions; a
        // round fed here directly must not be fed again by the next job.
        {
            let mut q = self.meanwhile.lock().unwrap_or_else(|p| p.into_inner());
            if running {
                q.push_back(round.clone());
                // Enough to settle every witness; older ones add nothing
                // to consecutive counts (and each costs a state save).
                let keep = self.cfg.detection.longest_streak() as usize;
                while q.len() > keep {
                    q.pop_front();
                }
            } else {
                q.clear();
            }
        }
        if !running {
            let dir = self.cfg.local.state_dir.clone();
            let lock =
                tokio::task::spawn_blocking(move || StateLock::acquire(&dir, ROUND_LOCK_WAIT))
                    .await
                    .map_err(|e| RoundError(e.to_string()))?;
            match lock {
                Err(e @ crate::state::LockError::Busy { .. }) => {
                    tracing::info!("not deciding this round: {e}")
                }
                Err(e) => self.note_deciding(Some(e.to_string())),
                Ok(lock) => match self.decide(lock, &round).await {
                    Ok(j) => {
                        self.note_deciding(None);
                        job = j;
                    }
                    Err(e) => {
                        // The first input may have handed out an action
                        // (saved as in flight, "running here") before the
                        // second failed: no job runs it, so hand it back,
                        // or the engine would wait for it for good.
                        self.session.lock().await.abandon_running().await;
                        self.note_deciding(Some(e.to_string()))
                    }
                },
            }
        }
        if let Activity::Running { what } = &self.activity {
            // A job owns the session: report the probe results only.
            let status = format!("peer {}: action running: {what}", self.cfg.local.dc_check);
            return Ok(RoundReport {
                status,
                round,
                verdicts: Vec::new(),
                action: job,
            });
        }
        let (state, live, ecfg) = {
            let s = self.session.lock().await;
            (s.state.clone(), s.live.clone(), s.ecfg.clone())
        };
        if let Some(j) = &job {
            self.activity = Activity::Running {
                what: j.what.clone(),
            };
        }
        // Only the components this node watches: a component it does not
        // watch has no verdict, and an exported "unknown" for it would
        // fire the peer-component alert for ever.
        let watched = crate::probe::watched_components(&self.cfg);
        let verdicts: Vec<(Component, Verdict)> = state
            .components
            .iter()
            .filter(|(c, _)| watched.contains(c))
            .map(|(c, s)| (*c, s.verdict))
            .collect();
        // The run loop records the round in the metrics (also while a job
        // runs); recording it here too would count every round twice.
        self.publish(&state, &live, &ecfg);
        Ok(RoundReport {
            status: self.status_line(&state),
            round,
            verdicts,
            action: job,
        })
    }

    async fn action_finished(&mut self, what: &str, end: ActionEnd<JobResult>) {
        // The run loop has logged how the job ended; what matters here is
        // whether its outcome reached the engine.
        self.activity = Activity::Idle;
        let outcome_lost = match end {
            ActionEnd::Finished(r) => {
                self.record_fed(&r.fed);
                if r.fed.failed() {
                    tracing::error!("{what}: an action failed; see `habeat history`");
                }
                if let Some(e) = &r.error {
                    tracing::error!("{what}: cannot save the state: {e}");
                }
                r.error.is_some()
            }
            ActionEnd::TimedOut | ActionEnd::Panicked(_) | ActionEnd::NotStarted => true,
        };
        if outcome_lost {
            tracing::warn!("{what}: no outcome recorded; the next round takes it as interrupted");
            self.session.lock().await.abandon_running().await;
        }
        {
            let s = self.session.lock().await;
            self.publish(&s.state, &s.live, &s.ecfg);
        }
        let pending = self
            .reloaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(session) = pending {
            self.session.lock().await.exec.release_all().await;
            self.session = Arc::new(Mutex::new(session));
            tracing::info!("the reloaded configuration now drives actions too");
        }
    }

    async fn reload(&mut self) -> Result<(), String> {
        let cfg = crate::config::load_file(&self.config_path).map_err(|e| e.lines().join("; "))?;
        let prober = Prober::new(&cfg).map_err(|e| e.to_string())?;
        let mut session = Session::open(&cfg, false).map_err(|e| e.to_string())?;
        session.watch_rounds(self.meanwhile.clone());
        session.watch_reload(self.reloaded.clone());
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
        session.events().count_in(Arc::new(self.metrics.clone()));
        self.reload_lease(&cfg, session.events())?;
        self.prober = prober;
        if self.activity == Activity::Idle {
            self.session = Arc::new(Mutex::new(session));
        } else {
            // A job owns the session: the action running finishes under
            // the configuration it started with; the job takes up the new
            // one before it decides its next action.
            tracing::info!(
                "an action is running: it finishes with the previous configuration, the actions \
                 after it use the reloaded one"
            );
            *self.reloaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
        }
        self.cfg = cfg;
        tracing::info!("configuration reloaded from {}", self.config_path.display());
        Ok(())
    }

    async fn shutdown(&mut self) {
        if let Some(l) = &mut self.lease {
            l.shutdown().await;
        }
        let mut s = self.session.lock().await;
        s.exec.release_all().await;
        // The last events (the stop itself, a promotion that just ended)
        // still reach the on_event hooks, within hooks.timeout.
        s.close_hooks().await;
    }
}
