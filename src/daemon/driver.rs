//! The real [`Driver`] of `habeat run`: probe → engine → executor.
//!
//! The driver owns the daemon's [`Session`] (the engine's state, what
//! only this process knows, the executor) and is driven by one task, the
//! run loop: everything reaches the engine through it, one input at a
//! time, in plain calls.
//!
//! ```text
//!   round()           probes ──► Session::decide(lock files, round) ──► action?
//!                                                    │ (state lock kept for the chain)
//!                              run(action): executor lent ▼ to a task of its own
//!   action_finished() ◄── Ran { executor, action, result } ◄──────────────┘
//!         └─► Session::outcome ──► next action? ──► run(next) … or the chain ends
//! ```
//!
//! Each round probes the peer; with no chain of actions running it takes
//! the state lock briefly and feeds the lock files and the round to the
//! engine. An action the engine hands out runs on a task of its own with
//! the executor (ownership passes there and back, nothing is shared), so
//! probing, STATUS and WATCHDOG go on during a long promotion; the state
//! lock is kept until the chain ends. A round completed meanwhile is fed
//! to the engine at once: with an action in flight it only updates the
//! verdicts, so a peer seen again stops a promotion that has not begun.

mod chain;
mod deadline;

use super::metrics::Metrics;
use super::run::{ActionEnd, ActionJob, Driver, RoundContext, RoundError, RoundReport};
use crate::config::Config;
use crate::engine::{ActionKind, Input, OutcomeResult, State};
use crate::model::{Component, Verdict};
use crate::probe::Prober;
use crate::session::{Fed, Session};
use crate::sink::EventSink;
use crate::state::StateLock;
use crate::survey::Survey;
use chain::{Chain, Lost, Ran};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a daemon round waits for the state lock held by a `check` or
/// `promote` before skipping the decision this round.
const ROUND_LOCK_WAIT: Duration = Duration::from_millis(200);

/// The daemon's driver: probe, then decide through the session, and run
/// what it hands out as a job.
pub struct SessionDriver {
    config_path: PathBuf,
    cfg: Config,
    prober: Prober,
    /// This driver's alone: no lock around it. Its executor is lent to
    /// the action running, if any.
    session: Session,
    /// The chain of actions running, if any.
    chain: Option<Chain>,
    metrics: Metrics,
    /// The latest `status --json`, served on `/status`.
    pub status: Arc<StdMutex<Published>>,
    /// Why the last round could not decide (`state_dir` unusable), while
    /// it lasts: said loudly once when it starts, changes or ends, not
    /// every round.
    cannot_decide: Option<String>,
    /// The serving lease's keeper (primary side, `lease.enabled`).
    lease: Option<crate::lease::keeper::KeeperHandle>,
    /// The replica survey running beside the rounds, if any.
    survey: Option<tokio::task::JoinHandle<()>>,
    /// When the last survey of the peer's mailstore and of this DC's
    /// was started (a failed one is not retried before
    /// `replicas.survey_interval`), each apart: a survey of one says
    /// nothing about when the other is due.
    survey_tried: SurveyTried,
    /// When the daemon last looked for statuses a crashed switchover left
    /// in maintenance (once a minute, beside the rounds).
    switchover_checked: Option<std::time::Instant>,
    /// Where a survey task posts what it fetched, for the next round to
    /// keep under the state lock.
    surveyed_tx: mpsc::UnboundedSender<Fetched>,
    surveyed: mpsc::UnboundedReceiver<Fetched>,
    /// Whether the local Consul agent answered the last round (`None`
    /// before the first), to log its loss once.
    local_consul_up: Option<bool>,
    /// The detection deadline last fed to the engine (each is fed once).
    deadline_fed: Option<crate::engine::UnixMillis>,
    /// The witnesses of the round out that have already seen the peer Up.
    answered: crate::probe::Answered,
    /// `state_dir/daemon.lock`, held for the daemon's life: how `status`
    /// knows a daemon runs.
    _running: crate::state::DaemonLock,
}

/// When a survey of each mailstore was last started.
#[derive(Debug, Default)]
struct SurveyTried {
    peer: Option<std::time::Instant>,
    own: Option<std::time::Instant>,
}

/// What a survey task fetched: of the peer's mailstore, or of this DC's,
/// staged when it could be (read, compared and written beside its place
/// in the task, so that the round that keeps it only renames it).
enum Fetched {
    Peer(Result<Survey, String>),
    PeerStaged(Box<crate::survey::job::StagedSurvey>),
    Own(Result<Survey, String>),
    OwnStaged(Box<(Survey, crate::survey::own::Staged)>),
}

impl Fetched {
    /// Stage a survey of the peer's mailstore, and show it ahead from the
    /// file it will be: all the reading and writing a kept survey costs,
    /// done here rather than in the round. A survey that cannot be staged
    /// is kept the slow way (which says why it cannot).
    fn peer(cfg: &Config, survey: Survey, dry_run: bool) -> Fetched {
        let s = match crate::survey::job::StagedSurvey::new(cfg, survey, dry_run) {
            Ok(s) => s,
            Err(survey) => return Fetched::Peer(Ok(*survey)),
        };
        if let Some(stamp) = s.staged.stamp(&cfg.local.state_dir) {
            crate::view::protection::prepare_peer(cfg, stamp.clone(), &s.survey);
            crate::survey::show::prepare(cfg, stamp, s.survey.clone());
        }
        Fetched::PeerStaged(Box::new(s))
    }

    /// [`Fetched::peer`] for a survey of this DC's mailstore.
    fn own(cfg: &Config, survey: Survey, dry_run: bool) -> Fetched {
        let staged = match crate::survey::own::stage(cfg, &survey, dry_run) {
            Ok(s) => s,
            Err(_) => return Fetched::Own(Ok(survey)),
        };
        if let Some(stamp) = staged.stamp(&cfg.local.state_dir) {
            crate::view::protection::prepare_own(stamp, &survey);
        }
        Fetched::OwnStaged(Box::new((survey, staged)))
    }
}

/// `/status` as the last round left it: its body serialized once (every
/// request shares it), and the last survey for `?accounts=all`.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The JSON of `status --json`, on one line.
    pub body: hyper::body::Bytes,
    /// Every account of the last good survey (shared with the cache that
    /// shows it).
    pub accounts: Option<crate::survey::show::AllAccounts>,
}

impl Published {
    fn of(
        view: &crate::view::StatusView,
        cfg: &Config,
        now: crate::engine::UnixMillis,
    ) -> Published {
        Published {
            body: super::endpoint::json_body(&view.to_json()),
            accounts: crate::survey::show::with_accounts(cfg, now).accounts,
        }
    }

    /// The body for `q`.
    pub fn body(&self, q: super::endpoint::StatusQuery) -> hyper::body::Bytes {
        match (&self.accounts, q.all_accounts) {
            (Some(a), true) => crate::view::all::with_all_accounts(&self.body, a)
                .map(Into::into)
                .unwrap_or_else(|_| self.body.clone()),
            _ => self.body.clone(),
        }
    }
}
/// How often the daemon looks for a crashed switchover's statuses.
const SWITCHOVER_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

impl SessionDriver {
    /// A switchover killed while this daemon runs leaves its wave in
    /// maintenance: give the statuses back without waiting for a restart
    /// or a command (`switchover-never-loses`). Looked at once a minute,
    /// while no chain holds the state lock.
    async fn restore_after_switchover_crash(&mut self) {
        if self
            .switchover_checked
            .is_some_and(|t| t.elapsed() < SWITCHOVER_CHECK)
        {
            return;
        }
        self.switchover_checked = Some(std::time::Instant::now());
        match crate::switchover::restore_after_crash(&self.cfg).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "a switchover was interrupted: the zimbraAccountStatus of {n} account(s) it had \
                 set to maintenance is restored; `habeat switchover --resume` goes on"
            ),
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Build the pipeline for a validated configuration.
    pub fn new(
        config_path: PathBuf,
        cfg: Config,
        metrics: Metrics,
    ) -> Result<SessionDriver, String> {
        let prober = Prober::new(&cfg).map_err(|e| e.to_string())?;
        let session = Session::open(&cfg, false).map_err(|e| e.to_string())?;
        let running = crate::state::DaemonLock::acquire(&cfg.local.state_dir)?;
        let (surveyed_tx, surveyed) = mpsc::unbounded_channel();
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
            status: Arc::new(StdMutex::new(Published::of(
                &crate::view::StatusView::planned(&session.state, &cfg, crate::session::clock()),
                &cfg,
                crate::session::now(),
            ))),
            session,
            chain: None,
            cfg,
            metrics,
            cannot_decide: None,
            lease,
            survey: None,
            survey_tried: SurveyTried::default(),
            switchover_checked: None,
            surveyed_tx,
            surveyed,
            local_consul_up: None,
            deadline_fed: None,
            answered: Arc::default(),
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
    /// lock, and start the chain of what it decides.
    fn decide(
        &mut self,
        lock: StateLock,
        round: &crate::model::Round,
    ) -> Result<Option<ActionJob<Ran>>, crate::state::StateError> {
        // Session::decide re-reads state.json first: a `check` or
        // `promote` may have acted since our last round. The lock files
        // go first (one removed by hand re-arms); whatever either input
        // hands out runs on a task of its own, never inside the round: an
        // operator's promotion resumed here may take an hour.
        let mut fed = Fed::default();
        let locks = self.session.lock_files()?;
        let from_locks = self.session.decide(locks, &mut fed)?;
        // With an action handed out above, this only updates the
        // verdicts: one action at a time.
        let from_round = self.session.decide(Input::Round(round.clone()), &mut fed)?;
        let Some(action) = from_locks.or(from_round) else {
            drop(lock);
            self.start_survey();
            return Ok(None);
        };
        self.chain = Some(Chain {
            _lock: lock,
            what: String::new(),
            steps: 0,
        });
        Ok(Some(self.run(action)))
    }

    /// The replica survey, beside probing and deciding, never inside a
    /// round and never in their way: a task of its own, not an action, so
    /// a peer that dies while the CLI lists (up to
    /// `carbonio.command_timeout`) is still judged and acted on at the
    /// round's pace. Started only with nothing else to do, at most one at
    /// a time, and, after an attempt that failed, not again before
    /// `survey_interval` has passed. What it fetched comes back to the
    /// next round ([`SessionDriver::keep_survey`]).
    fn start_survey(&mut self) {
        if self.survey.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let interval = self.cfg.replicas.survey_interval;
        let waited =
            |tried: Option<std::time::Instant>| tried.is_none_or(|at| at.elapsed() >= interval);
        let now = crate::session::now();
        let peer = waited(self.survey_tried.peer)
            && crate::survey::job::due_by_mtime(&self.cfg, &self.session.state, now);
        // This DC's own mailstore, on the same interval, whatever the peer.
        let own = waited(self.survey_tried.own) && crate::survey::own::due_by_mtime(&self.cfg, now);
        if !peer && !own {
            return;
        }
        let Ok(cli) = crate::act::carbonio::Carbonio::new(&self.cfg.carbonio) else {
            return;
        };
        let started = Some(std::time::Instant::now());
        if peer {
            self.survey_tried.peer = started;
        }
        if own {
            self.survey_tried.own = started;
        }
        let (cfg, tx) = (self.cfg.clone(), self.surveyed_tx.clone());
        let metrics = self.metrics.clone();
        let dry_run = self.session.dry_run();
        self.survey = Some(tokio::spawn(async move {
            // Sends fail only when the daemon is gone.
            if peer {
                let fetched = match crate::survey::job::fetch(&cfg, &cli, crate::session::now).await
                {
                    Ok(survey) => {
                        let cfg = cfg.clone();
                        tokio::task::spawn_blocking(move || Fetched::peer(&cfg, survey, dry_run))
                            .await
                            .unwrap_or_else(|e| Fetched::Peer(Err(e.to_string())))
                    }
                    Err(e) => {
                        metrics.record_survey_failure();
                        Fetched::Peer(Err(e))
                    }
                };
                let _ = tx.send(fetched);
            }
            if own {
                let fetched = match crate::survey::own::fetch(&cfg, &cli, crate::session::now).await
                {
                    Ok(survey) => {
                        let cfg = cfg.clone();
                        tokio::task::spawn_blocking(move || Fetched::own(&cfg, survey, dry_run))
                            .await
                            .unwrap_or_else(|e| Fetched::Own(Err(e.to_string())))
                    }
                    Err(e) => Fetched::Own(Err(e)),
                };
                let _ = tx.send(fetched);
            }
        }));
    }

    /// Keep the survey finished since the last round (the newest, if
    /// several), with the state lock held (`lock`); without it (a chain of
    /// actions or another habeat holds it), it costs this survey (said,
    /// and tried again next interval), never the action.
    fn keep_survey(&mut self, lock: Result<(), String>) {
        let (mut fetched, mut own) = (None, None);
        while let Ok(f) = self.surveyed.try_recv() {
            match f {
                f @ (Fetched::Peer(_) | Fetched::PeerStaged(_)) => fetched = Some(f),
                f @ (Fetched::Own(_) | Fetched::OwnStaged(_)) => own = Some(f),
            }
        }
        if fetched.is_none() && own.is_none() {
            return;
        }
        if let Err(e) = lock {
            tracing::warn!("replica survey not recorded: {e}");
            return;
        }
        if let Some(fetched) = fetched {
            let done = match fetched {
                Fetched::PeerStaged(s) => self.session.keep_staged_survey(*s),
                Fetched::Peer(Ok(survey)) => self.session.keep_survey(&survey),
                Fetched::Peer(Err(e)) => self.session.survey_failed(&e),
                Fetched::Own(_) | Fetched::OwnStaged(_) => Ok(()),
            };
            if let Err(e) = done {
                tracing::error!("replica survey not recorded: {e}");
            }
        }
        let own = match own {
            Some(Fetched::OwnStaged(s)) => Some(self.session.keep_staged_own_survey(Ok(*s))),
            Some(Fetched::Own(f)) => Some(self.session.keep_own_survey(f)),
            _ => None,
        };
        if let Some(Err(e)) = own {
            tracing::error!("survey of this DC's mailstore not recorded: {e}");
        }
    }

    fn publish(
        &self,
        state: &State,
        live: &crate::engine::Live,
        ecfg: &crate::engine::EngineConfig,
    ) {
        let clock = crate::session::clock();
        // One plan for the metrics and /status: what each role would do.
        let plan = crate::engine::plan_live(state, live, ecfg, clock);
        // The lock files are read again here, not taken from the round:
        // an action that ended since may have written or removed them.
        let view = crate::view::StatusView::read(state, &self.cfg, plan, clock.wall).with_daemon(
            crate::view::DaemonFacts {
                cannot_decide: self.cannot_decide.clone(),
            },
            self.lease.as_ref().map(|l| l.status()),
        );
        self.metrics.record_view(&view);
        let published = Published::of(&view, &self.cfg, clock.wall);
        if let Ok(mut s) = self.status.lock() {
            *s = published;
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
    type Outcome = Ran;

    fn interval(&self) -> Duration {
        self.cfg.detection.interval
    }

    fn probe(&mut self) -> Option<super::run::Probing> {
        let prober = self.prober.clone();
        // A fresh list for this round: one still held by the previous
        // round's probes (cut off, not awaited) is let go.
        self.answered = Arc::default();
        let answered = self.answered.clone();
        self.session.live.probes_out = Some(crate::session::clock());
        self.session.live.answered_out.clear();
        Some(Box::pin(async move {
            prober.round_telling(Some(answered)).await
        }))
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.next_deadline()
    }

    async fn at_deadline(&mut self) -> Option<ActionJob<Ran>> {
        self.feed_deadline().await
    }

    async fn round(&mut self, ctx: RoundContext) -> Result<RoundReport<Ran>, RoundError> {
        let report = self.feed_round(ctx).await;
        // The probes are in, fed or not: none is out until the next
        // round's, so no deadline runs before they go out.
        self.session.live.probes_out = None;
        self.session.live.answered_out.clear();
        report
    }

    async fn action_finished(&mut self, what: &str, end: ActionEnd<Ran>) -> Option<ActionJob<Ran>> {
        // The run loop has logged how the job ended; what matters here is
        // whether its outcome reaches the engine.
        let ran = match end {
            ActionEnd::Finished(ran) | ActionEnd::NotStarted(Some(ran)) => ran,
            ActionEnd::TimedOut | ActionEnd::Panicked(_) | ActionEnd::NotStarted(None) => {
                // The executor went with the task: its gates expire with
                // their Consul sessions.
                self.hand_back(what).await;
                return None;
            }
        };
        self.session.take_back(ran.exec);
        match ran.result {
            Ok(result) => self.next_of_chain(what, ran.action, result).await,
            Err(lost) => {
                if let Lost::Panicked(p) = lost {
                    tracing::error!("{what} crashed (a bug, please report): {p}");
                }
                self.hand_back(what).await;
                None
            }
        }
    }

    async fn reload(&mut self) -> Result<(), String> {
        let cfg = crate::config::load_file(&self.config_path).map_err(|e| e.lines().join("; "))?;
        if let Some(chain) = &self.chain
            && cfg.local.state_dir != self.cfg.local.state_dir
        {
            // The chain holds the old directory's state lock and goes on
            // saving its steps there.
            return Err(format!(
                "local.state_dir changed while {} runs, whose state is in {}: reload again \
                 (systemctl reload habeat) once it has ended",
                chain.what,
                self.cfg.local.state_dir.display()
            ));
        }
        let prober = Prober::new(&cfg).map_err(|e| e.to_string())?;
        let mut session = Session::open(&cfg, false).map_err(|e| e.to_string())?;
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
        session.events().count_in(Arc::new(self.metrics.clone()));
        self.reload_lease(&cfg, session.events())?;
        self.prober = prober;
        if self.chain.is_some() {
            // The action running finishes under the executor it started
            // with, which hands its gates to the new one when it comes
            // back; the engine decides its outcome, and the actions after
            // it, under the reloaded configuration (fencing added now
            // guards the promotion that follows).
            tracing::info!(
                "an action is running: it finishes with the previous configuration, the actions \
                 after it use the reloaded one"
            );
            session.carry_on_from(&mut self.session);
        }
        self.session = session;
        self.cfg = cfg;
        tracing::info!("configuration reloaded from {}", self.config_path.display());
        Ok(())
    }

    async fn shutdown(&mut self) {
        if let Some(l) = &mut self.lease {
            l.shutdown().await;
        }
        self.session.release_gates().await;
        // The last events (the stop itself, a promotion that just ended)
        // still reach the on_event hooks, within hooks.timeout.
        self.session.close_hooks().await;
    }
}

impl SessionDriver {
    /// Probe (unless the loop has), feed the round, report it.
    async fn feed_round(&mut self, ctx: RoundContext) -> Result<RoundReport<Ran>, RoundError> {
        let round = match ctx.probed {
            Some(round) => round,
            None => self.prober.round().await,
        };
        self.note_local_consul(round.local_leader.is_some());
        if let Some(l) = &self.lease {
            l.round(&round);
        }
        if let Some(chain) = &self.chain {
            // This driver holds the state lock for the chain.
            let status = format!(
                "peer {}: action running: {}",
                self.cfg.local.dc_check, chain.what
            );
            let busy = format!("{} holds the state lock", chain.what);
            self.feed_round_while_running(&round);
            self.keep_survey(Err(busy));
            // Report the probe results only.
            return Ok(RoundReport {
                status,
                round,
                verdicts: Vec::new(),
                action: None,
            });
        }
        self.restore_after_switchover_crash().await;
        let dir = self.cfg.local.state_dir.clone();
        let lock = tokio::task::spawn_blocking(move || StateLock::acquire(&dir, ROUND_LOCK_WAIT))
            .await
            .map_err(|e| RoundError(e.to_string()))?;
        let mut job = None;
        match lock {
            Err(e @ crate::state::LockError::Busy { .. }) => {
                tracing::info!("not deciding this round: {e}");
                self.keep_survey(Err(e.to_string()));
            }
            Err(e) => {
                self.keep_survey(Err(e.to_string()));
                self.note_deciding(Some(e.to_string()));
            }
            Ok(lock) => {
                self.keep_survey(Ok(()));
                match self.decide(lock, &round) {
                    Ok(j) => {
                        self.note_deciding(None);
                        job = j;
                    }
                    Err(e) => {
                        // The first input may have handed out an action
                        // (saved as in flight, "running here") before the
                        // second failed: nothing runs it, so hand it back,
                        // or the engine would wait for it for good.
                        self.hand_back("the action handed out").await;
                        self.note_deciding(Some(e.to_string()))
                    }
                }
            }
        }
        // Only the components this node watches: a component it does not
        // watch has no verdict, and an exported "unknown" for it would
        // fire the peer-component alert for ever.
        let watched = crate::probe::watched_components(&self.cfg);
        let state = &self.session.state;
        let verdicts: Vec<(Component, Verdict)> = state
            .components
            .iter()
            .filter(|(c, _)| watched.contains(c))
            .map(|(c, s)| (*c, s.verdict))
            .collect();
        // The run loop records the round in the metrics (also while an
        // action runs); recording it here too would count every round twice.
        self.publish(state, &self.session.live, &self.session.ecfg);
        Ok(RoundReport {
            status: self.status_line(state),
            round,
            verdicts,
            action: job,
        })
    }
}
