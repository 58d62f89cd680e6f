//! The driver shared by every command: feed the engine one input, persist
//! the state and journal *before* running the action it hands out, run it,
//! feed the outcome back, and repeat until the engine has nothing to do.
//!
//! This order is what makes a crash at any point resumable
//! (`resumable-steps`): the engine's step record is on disk before the
//! step starts.

use crate::config::Config;
use crate::engine::{
    self, Action, BootId, BootTime, EngineConfig, Event, Input, Live, Now, OutcomeResult, State,
    UnixMillis,
};
use crate::exec::Executor;
use crate::sink::EventSink;
use crate::state::{StateError, Store};

/// Guard against a runaway engine: no single input needs more steps.
pub const MAX_STEPS: usize = 200;

/// What one [`Session::feed`] did.
#[derive(Debug, Default)]
pub struct Fed {
    /// Each action handed out, with its result (`None` in `--dry-run`).
    pub actions: Vec<(Action, Option<OutcomeResult>)>,
    /// Events journaled.
    pub events: Vec<Event>,
    /// Set when the engine refused an operator command for safety.
    pub refusal: Option<engine::OperatorRefusal>,
    /// `--dry-run`: what the engine planned for the round fed, asked
    /// before its step ([`engine::plan_round`]), so that it speaks of the
    /// records as they are and not of the ones the simulation makes.
    pub plan: Option<engine::Plan>,
}

impl Fed {
    /// True when some action failed or timed out (exit 3).
    pub fn failed(&self) -> bool {
        self.actions.iter().any(|(_, r)| {
            matches!(
                r,
                Some(OutcomeResult::Failed { .. }) | Some(OutcomeResult::TimedOut { .. })
            )
        })
    }
}

impl Fed {
    /// True when the quorum gate refused an automatic action, or a fence
    /// agent did not confirm the peer OFF: habeat wanted to act and could
    /// not prove it may (exit 4 for `check`).
    pub fn gate_refused(&self) -> bool {
        self.actions.iter().any(|(_, r)| {
            matches!(
                r,
                Some(OutcomeResult::GateRefused { .. })
                    | Some(OutcomeResult::FenceUnconfirmed { .. })
            )
        })
    }
}

/// The engine, its persisted state and the executor, for one process.
pub struct Session {
    pub cfg: Config,
    pub ecfg: EngineConfig,
    pub state: State,
    /// What this process knows that is never saved (the fresh listing, the
    /// quorum gate held, the action running here).
    pub live: Live,
    store: Store,
    /// Where every event goes: the journal, the `on_event` hooks, the log
    /// (shared with the executor and, in the daemon, the lease keeper).
    events: EventSink,
    /// `None` while the daemon has lent it to the action running (see
    /// [`Session::lend_executor`]).
    exec: Option<Executor>,
    dry_run: bool,
    /// `--verbose`: a dry run names every account, not only the first
    /// [`crate::exec::PREVIEW`].
    pub verbose: bool,
    /// Who runs this command (`alice on /dev/pts/3`), for the operator's
    /// commands: their events and `State::last_operator` carry it.
    pub operator: Option<String>,
}

/// The wall clock, read once per step (the engine itself reads none).
pub fn now() -> UnixMillis {
    UnixMillis::from_system_time(std::time::SystemTime::now())
}

/// The wall clock and the boot clock, read once per step: what the
/// engine measures its windows and waits with (docs/decisions.md, "Which
/// clock measures what"). Without a boot id or `CLOCK_BOOTTIME` (not
/// Linux, no /proc) the boot clock is absent and the wall clock measures
/// alone, as across a reboot.
pub fn clock() -> Now {
    Now {
        wall: now(),
        boot: boot_time(),
    }
}

fn boot_time() -> Option<BootTime> {
    static BOOT: std::sync::OnceLock<Option<BootId>> = std::sync::OnceLock::new();
    let boot = (*BOOT.get_or_init(|| {
        match std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
            Ok(s) => s
                .parse()
                .map_err(|e| tracing::warn!("/proc/sys/kernel/random/boot_id: {e}; windows and waits are measured by the wall clock alone"))
                .ok(),
            Err(e) => {
                tracing::warn!("cannot read /proc/sys/kernel/random/boot_id ({e}): windows and waits are measured by the wall clock alone");
                None
            }
        }
    }))?;
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let ms = u64::try_from(t.tv_sec())
        .ok()?
        .saturating_mul(1000)
        .saturating_add(u64::try_from(t.tv_nsec() / 1_000_000).ok()?);
    Some(BootTime { boot, ms })
}

impl Session {
    /// Whether this session writes nothing (`--dry-run`).
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Load the state of `cfg.local.state_dir`. A corrupt state file is set
    /// aside and reported; the engine then starts in its safe hold.
    pub fn open(cfg: &Config, dry_run: bool) -> Result<Session, StateError> {
        let store = if dry_run {
            Store::at(&cfg.local.state_dir)
        } else {
            Store::open(&cfg.local.state_dir)?
        };
        crate::state::check_state_dir(store.dir())?;
        let loaded = if dry_run {
            // Read only: a corrupt file is reported, not moved aside.
            crate::state::Loaded {
                state: store.peek(now())?,
                set_aside: None,
            }
        } else {
            store.load(now())?
        };
        report_set_aside(&loaded);
        let events = EventSink::open(cfg, dry_run);
        Ok(Session {
            ecfg: EngineConfig::from(cfg),
            cfg: cfg.clone(),
            state: loaded.state,
            live: Live::default(),
            store,
            exec: Some(Executor::new(cfg, events.clone())),
            events,
            dry_run,
            verbose: false,
            operator: None,
        })
    }

    /// Feed the legacy lock files as they are on disk now.
    pub async fn feed_lock_files(&mut self) -> Result<Fed, StateError> {
        let input = self.lock_files()?;
        self.feed(input).await
    }

    /// The legacy lock files as they are on disk now, as an engine input.
    pub fn lock_files(&self) -> Result<Input, StateError> {
        Ok(Input::LockFiles(crate::state::scan_locks(
            &self.cfg.local,
            &self.cfg.local.roles,
        )?))
    }

    /// The chain that was running here ended without handing its outcome
    /// back: it overran, panicked, or was dropped before it started.
    /// Treat it as a crash would be treated: the action in flight is in
    /// doubt (the next input journals it as interrupted and the engine
    /// decides whether to run it again), and the quorum gate is given
    /// back, to be taken again if a step still needs it.
    pub async fn abandon_running(&mut self) {
        self.live.running_here = None;
        self.live.gate_held = None;
        self.release_gates().await;
    }

    /// Give back every quorum gate the executor holds.
    pub async fn release_gates(&mut self) {
        self.executor().release_all().await;
    }

    /// The executor, made anew if a lent one never came back (its gates
    /// are then lost with it, and expire with their Consul sessions).
    fn executor(&mut self) -> &mut Executor {
        let (cfg, events) = (&self.cfg, &self.events);
        self.exec
            .get_or_insert_with(|| Executor::new(cfg, events.clone()))
    }

    /// Lend the executor to the action about to run on a task of its own
    /// (the daemon): give it back with [`Session::take_back`].
    pub fn lend_executor(&mut self) -> Executor {
        self.exec
            .take()
            .unwrap_or_else(|| Executor::new(&self.cfg, self.events.clone()))
    }

    /// The executor lent to an action is back. A reload may have put a
    /// new one in its place meanwhile: that one takes over the quorum
    /// gates and lease sessions the lent one holds.
    pub fn take_back(&mut self, mut lent: Executor) {
        match &mut self.exec {
            Some(new) => lent.hand_over_gates(new),
            None => self.exec = Some(lent),
        }
    }

    /// Carry on from `old`, the session of the configuration before a
    /// reload: its state, what only this process knows (the action running
    /// here, the quorum gate taken) and, when it holds its executor, the
    /// gates of that executor (else they come with it, [`Session::take_back`]).
    pub fn carry_on_from(&mut self, old: &mut Session) {
        std::mem::swap(&mut self.state, &mut old.state);
        std::mem::swap(&mut self.live, &mut old.live);
        self.verbose = old.verbose;
        if let Some(lent) = old.exec.take() {
            self.take_back(lent);
        }
    }

    /// Step the engine with `input`, then run its actions to completion.
    pub async fn feed(&mut self, input: Input) -> Result<Fed, StateError> {
        let mut fed = Fed::default();
        let first = self.decide(input, &mut fed)?;
        self.drive(first, &mut fed).await?;
        Ok(fed)
    }

    /// Step the engine with `input` and persist the result, without running
    /// the action it hands out (returned). The daemon runs it later, beside
    /// probing, through [`Session::drive`].
    pub fn decide(&mut self, input: Input, fed: &mut Fed) -> Result<Option<Action>, StateError> {
        if !matches!(input, Input::Outcome(_)) {
            self.refresh()?;
        }
        let at = clock();
        if self.dry_run
            && let Input::Round(round) = &input
        {
            fed.plan = Some(engine::plan_round(
                &self.state,
                &self.live,
                round,
                at,
                &self.ecfg,
            ));
        }
        let mut t = engine::step(&self.state, &self.live, &input, at, &self.ecfg);
        if let (Input::Operator(cmd), Some(by)) = (&input, &self.operator) {
            stamp_operator(&mut t, cmd, by, at.wall);
        }
        if fed.refusal.is_none() {
            fed.refusal = t.refusal.clone();
        }
        self.commit(&t)?;
        fed.events.extend(t.events.iter().cloned());
        Ok(t.actions.first().cloned())
    }

    /// Run `action` and every action that follows from its outcome.
    pub async fn drive(
        &mut self,
        mut next: Option<Action>,
        fed: &mut Fed,
    ) -> Result<(), StateError> {
        for _ in 0..MAX_STEPS {
            let Some(action) = next.take() else {
                break;
            };
            let result = if self.dry_run {
                let verbose = self.verbose;
                let survey = last_survey_for(&action, &self.cfg.local.state_dir);
                let given = crate::exec::Given {
                    last_survey: survey.as_ref(),
                };
                self.executor().simulate(&action, &given, verbose).await
            } else {
                let dir = self.cfg.local.state_dir.clone();
                run_action(self.executor(), &action, &dir).await
            };
            next = self.outcome(action, result, fed)?;
        }
        if let Some(action) = next {
            // Handed out (saved as in flight, "running here") but past the
            // bound: give it back, so the next input takes it as
            // interrupted and decides again, instead of waiting for it.
            tracing::error!(
                "stopped a chain after {MAX_STEPS} actions before: {}; the next round takes it \
                 up again",
                action.kind.describe()
            );
            self.abandon_running().await;
        }
        Ok(())
    }

    /// Step the engine with the outcome of `action` (run by
    /// [`run_action`], or simulated) and persist the result: the next
    /// action of the chain, if any.
    pub fn outcome(
        &mut self,
        action: Action,
        result: OutcomeResult,
        fed: &mut Fed,
    ) -> Result<Option<Action>, StateError> {
        let outcome = engine::ActionOutcome {
            id: action.id,
            result: result.clone(),
        };
        fed.actions
            .push((action, (!self.dry_run).then_some(result)));
        self.decide(Input::Outcome(outcome), fed)
    }

    /// Start from `state.json` as it is on disk now, not from this
    /// process's memory: the daemon holds the state lock only while it
    /// decides, and between its rounds an operator's `pause`, `rearm` or
    /// `promote`, or a timer's `check`, may have changed the file. Deciding
    /// from the old copy would overwrite their record (a pause ignored, a
    /// promotion forgotten). Called with the state lock held, before every
    /// input except an action's outcome (an outcome continues this
    /// process's own chain). What is never saved is in [`Live`], apart,
    /// and needs no copying back: an action found in flight on disk runs
    /// here only if it is the one this process handed out.
    /// `--dry-run` keeps its simulated state: it writes nothing.
    fn refresh(&mut self) -> Result<(), StateError> {
        if self.dry_run {
            return Ok(());
        }
        let loaded = self.store.load(now())?;
        report_set_aside(&loaded);
        self.state = loaded.state;
        Ok(())
    }

    fn commit(&mut self, t: &engine::Transition) -> Result<(), StateError> {
        let (state, events) = (&t.state, &t.events[..]);
        if !self.dry_run {
            self.store.save(state)?;
            if self.state.safe_hold.is_some() && state.safe_hold.is_none() {
                self.store.clear_hold()?;
            }
        }
        self.events.record(events)?;
        self.state = state.clone();
        self.live = t.live.clone();
        Ok(())
    }

    /// Journal events that did not come from an engine step (a replica
    /// survey's `replicas_at_risk_changed`) and hand them to the
    /// `on_event` hooks, as a step's events are. `--dry-run` only logs them.
    pub fn record_events(&mut self, events: &[Event]) -> Result<(), StateError> {
        self.events.record(events)
    }

    /// Where this session's events go, for the other writers of events
    /// (the daemon's lease keeper) and the daemon's metrics.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// Run a replica survey when one is due ([`crate::survey::job::due`]),
    /// keep it (not in `--dry-run`) and journal a change of the accounts at
    /// risk. A failed survey is logged and leaves the last one; it never
    /// fails the command.
    pub async fn survey_if_due(&mut self) -> Result<Option<crate::survey::Survey>, StateError> {
        let last = crate::survey::store::load(&self.cfg.local.state_dir)
            .ok()
            .flatten();
        if !crate::survey::job::due(&self.cfg, &self.state, last.as_ref(), now()) {
            return Ok(None);
        }
        let cli = match crate::act::carbonio::Carbonio::new(&self.cfg.carbonio) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("no replica survey: {e}");
                return Ok(None);
            }
        };
        match crate::survey::job::fetch(&self.cfg, &cli, now).await {
            Ok(survey) => {
                self.keep_survey(&survey)?;
                Ok(Some(survey))
            }
            Err(e) => {
                self.survey_failed(&e)?;
                Ok(None)
            }
        }
    }

    /// Survey this DC's own mailstore when due
    /// ([`crate::survey::own::due`]): kept (not in `--dry-run`), and a
    /// change of its unprotected accounts journaled. A failure is logged
    /// and recorded, never fatal to the command.
    pub async fn survey_own_if_due(&mut self) -> Result<(), StateError> {
        use crate::survey::own;
        let dir = &self.cfg.local.state_dir;
        let last = own::load(dir).ok().flatten();
        if !own::due(&self.cfg, last.as_ref(), now()) {
            return Ok(());
        }
        drop(last);
        let Ok(cli) = crate::act::carbonio::Carbonio::new(&self.cfg.carbonio) else {
            return Ok(());
        };
        let fetched = own::fetch(&self.cfg, &cli, now).await;
        self.keep_own_survey(fetched)
    }

    /// Keep a survey of this DC's own mailstore, or record its failure
    /// (with the state lock held).
    pub fn keep_own_survey(
        &mut self,
        fetched: Result<crate::survey::Survey, String>,
    ) -> Result<(), StateError> {
        self.keep_staged_own_survey(fetched.and_then(|survey| {
            let staged = crate::survey::own::stage(&self.cfg, &survey, self.dry_run)?;
            Ok((survey, staged))
        }))
    }

    /// [`Session::keep_own_survey`] of a survey staged beforehand
    /// ([`crate::survey::own::stage`]), so that keeping it costs a rename.
    pub fn keep_staged_own_survey(
        &mut self,
        fetched: Result<(crate::survey::Survey, crate::survey::own::Staged), String>,
    ) -> Result<(), StateError> {
        use crate::survey::own;
        match fetched {
            Ok((survey, staged)) => match own::commit(&self.cfg, staged, &survey) {
                Ok(Some(e)) => self.record_events(std::slice::from_ref(&e)),
                Ok(None) => Ok(()),
                Err(e) => {
                    tracing::warn!("{e}");
                    Ok(())
                }
            },
            Err(reason) => {
                tracing::warn!("{}", own::failed(&self.cfg, &reason, now(), self.dry_run));
                Ok(())
            }
        }
    }

    /// A survey failed: one WARNING (the journaled event's message), the
    /// failure recorded for `status` and `/metrics`, the event journaled
    /// and handed to the `on_event` hooks.
    pub fn survey_failed(&mut self, reason: &str) -> Result<(), StateError> {
        let e = crate::survey::job::failed(&self.cfg, reason, now(), self.dry_run);
        tracing::warn!(target: "habeat::event", "{}", e.message);
        self.events.record_logged(std::slice::from_ref(&e))
    }

    /// Keep a complete survey and journal a change of the accounts at risk
    /// (with the state lock held).
    pub fn keep_survey(&mut self, survey: &crate::survey::Survey) -> Result<(), StateError> {
        match crate::survey::job::keep(&self.cfg, survey, self.dry_run) {
            Ok(Some(e)) => self.record_events(std::slice::from_ref(&e))?,
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
        self.note_unreplicated(crate::survey::job::unreplicated(survey))
    }

    /// [`Session::keep_survey`] of a survey staged beforehand, so that
    /// keeping it costs a rename (the daemon stages it in its survey
    /// task, off the round).
    pub fn keep_staged_survey(
        &mut self,
        s: crate::survey::job::StagedSurvey,
    ) -> Result<(), StateError> {
        match crate::survey::job::commit(&self.cfg, s.staged, &s.survey) {
            Ok(Some(e)) => self.record_events(std::slice::from_ref(&e))?,
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
        self.note_unreplicated(s.unreplicated)
    }

    /// With `replicas.reprotect: auto`, tell the engine which accounts of
    /// the peer's mailstore the survey found without any replica: the
    /// next round gives each never covered one a replica here.
    fn note_unreplicated(&mut self, accounts: Vec<String>) -> Result<(), StateError> {
        if self.ecfg.reprotect != crate::model::ReprotectPolicy::Auto
            || !self.ecfg.roles.contains(&crate::model::Role::Appserver)
        {
            return Ok(());
        }
        if accounts.is_empty() && self.state.protection.uncovered.is_empty() {
            return Ok(());
        }
        let mut fed = Fed::default();
        self.decide(Input::Unreplicated { accounts }, &mut fed)?;
        Ok(())
    }

    /// Give the `on_event` hooks at most `hooks.timeout` to finish the
    /// events queued so far, then stop them: a one-shot command calls this
    /// before it exits, so that its events are delivered. (The daemon keeps
    /// its session, and so its dispatcher, for its lifetime.)
    pub async fn close_hooks(&mut self) {
        if let Some(stats) = self.events.close(self.cfg.hooks.timeout).await
            && (stats.dropped > 0 || stats.failed > 0)
        {
            tracing::warn!(
                delivered = stats.delivered,
                dropped = stats.dropped,
                failed = stats.failed,
                "not every event reached the on_event hooks (the journal has them all)"
            );
        }
    }
}

/// Run one action the engine handed out (and whose intent is saved).
pub async fn run_action(
    exec: &mut Executor,
    action: &Action,
    state_dir: &std::path::Path,
) -> OutcomeResult {
    tracing::info!("{}", action.kind.describe());
    let survey = last_survey_for(action, state_dir);
    let given = crate::exec::Given {
        last_survey: survey.as_ref(),
    };
    exec.execute(action, &given).await.result
}

/// What `action` is judged against: an account listing names the
/// accounts at risk against the last survey (`survey.json`); nothing else
/// needs one.
fn last_survey_for(action: &Action, state_dir: &std::path::Path) -> Option<crate::survey::Survey> {
    matches!(action.kind, engine::ActionKind::ListAccounts { .. })
        .then(|| crate::survey::store::load_for_listing(state_dir))
        .flatten()
}

/// Say loudly that a corrupt `state.json` was set aside. The reason names
/// the file and where it was kept.
fn report_set_aside(loaded: &crate::state::Loaded) {
    if let Some(aside) = &loaded.set_aside {
        tracing::error!(
            "{}; habeat holds all automatic action until `habeat rearm`",
            aside.reason
        );
    }
}

/// Name the operator in what their command changed: each event of the
/// step (its message ends "by alice on /dev/pts/3", for `history`) and
/// `State::last_operator`. The engine knows no user or terminal; the
/// session that read them stamps them.
fn stamp_operator(
    t: &mut engine::Transition,
    cmd: &engine::OperatorCommand,
    by: &str,
    at: UnixMillis,
) {
    for e in &mut t.events {
        e.operator = Some(by.to_owned());
        e.message = format!("{} (by {by})", e.message);
    }
    let command = match cmd {
        engine::OperatorCommand::Rearm => "rearm",
        engine::OperatorCommand::Pause { .. } => "pause",
        engine::OperatorCommand::Resume => "resume",
        engine::OperatorCommand::Promote { .. } => "promote",
        engine::OperatorCommand::RecoverPeerDcLost { .. } => "recover --peer-dc-lost",
        engine::OperatorCommand::Reprotect { .. } => "reprotect",
        engine::OperatorCommand::FailBack { .. } => "switchover",
    };
    t.state.last_operator = Some(engine::OperatorMark {
        command: command.to_owned(),
        by: by.to_owned(),
        at,
    });
}
