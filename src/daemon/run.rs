//! The run loop of `habeat run`, generic over a [`Driver`].
//!
//! The loop owns the timing and the systemd conversation; the driver owns
//! probing, deciding and acting. The shape:
//!
//! ```text
//!   tick ──► driver.round()  ──► RoundReport { status, round, verdicts, action? }
//!   (every      (probes +            │                                │
//!   interval,    engine,             ├─► READY=1 (first) / STATUS=    │ spawned on its
//!   never        bounded by          ├─► WATCHDOG=1 (completed only)  │ own task; rounds
//!   overlapping) the probe timeout)  └─► metrics                      ▼ go on meanwhile
//!                                              driver.action_finished(ActionEnd) ◄── job
//! ```
//!
//! - **Rounds never overlap**: a round is awaited before the next tick is
//!   taken; when a round is slower than the interval, the next one starts
//!   right after it and the schedule shifts (`MissedTickBehavior::Delay`),
//!   instead of a burst of catch-up rounds.
//! - **Actions run beside probing**: a promotion can take an hour. The
//!   driver returns it as an [`ActionJob`] (a `'static` future that owns
//!   what it needs); the loop spawns it on its own task and keeps running
//!   rounds, so probing, STATUS and the watchdog continue. At most one job
//!   runs at a time: [`RoundContext::action_running`] tells the driver, and
//!   a second job returned anyway is not started (reported back as
//!   [`ActionEnd::NotStarted`]). When the job ends, or overruns its
//!   [`ActionJob::timeout`] and is aborted, the loop calls
//!   [`Driver::action_finished`] so that the outcome reaches the engine;
//!   the driver may hand back the next job of the same chain (one job per
//!   action), which the loop starts at once.
//! - **Watchdog**: `WATCHDOG=1` only after a round that completed
//!   (`Ok` from [`Driver::round`]); a loop that is stuck, or whose rounds
//!   keep failing, is restarted by systemd. `READY=1` after the first
//!   completed round.
//! - **Requests** ([`Request`], from signals) are handled between rounds.
//!   Reload: `RELOADING=1`, reopen the `--log` file, [`Driver::reload`]
//!   (which keeps the old configuration when the new one is invalid and
//!   says why), then `READY=1`. Stop: finish the current round (or abandon
//!   it after [`RunOptions::stop_round_grace`]), start no new round or
//!   chain, wait for a running one (its jobs, each up to its timeout) while asking systemd
//!   for more time (`EXTEND_TIMEOUT_USEC`), then [`Driver::shutdown`]
//!   (release the Consul session), and return: the process exits 0.
//!
//! A job may be dropped unstarted (a stop arrived, or another job runs):
//! the loop then calls [`Driver::action_finished`] with
//! [`ActionEnd::NotStarted`] (with what the job held, see
//! [`ActionJob::holding`]), and the driver hands the action back to its
//! engine as interrupted (its intent was saved before the job was made),
//! so the next round decides again whether to run it.

use super::metrics::Metrics;
use super::notify::Notifier;
use super::signals::Request;
use crate::logging::LogHandle;
use crate::model::{Component, Round, Verdict};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// How often systemd is asked for more stop time while a job finishes, and
/// how much each time (comfortably more than the period).
const EXTEND_EVERY: Duration = Duration::from_secs(5);
const EXTEND_BY: Duration = Duration::from_secs(20);

/// What the loop tells the driver at the start of a round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundContext {
    /// The job still running from an earlier round (its
    /// [`ActionJob::what`]); `None` when the driver may start one.
    pub action_running: Option<String>,
    /// What the probes of [`Driver::probe`] saw, when the driver probes
    /// that way (the loop awaited them beside the detection deadline).
    pub probed: Option<Round>,
}

/// A round's probes, on their own (they borrow nothing of the driver), so
/// that the loop can feed a detection deadline while they run.
pub type Probing = Pin<Box<dyn Future<Output = Round> + Send + 'static>>;

/// What one round produced.
pub struct RoundReport<O> {
    /// One line for `STATUS=` (`systemctl status`), e.g. "peer primary:
    /// appserver Up, proxy Up, consul Up; armed". The loop appends the
    /// running job, if any.
    pub status: String,
    /// What the probes saw (for metrics).
    pub round: Round,
    /// The settled verdict of each watched component (for metrics).
    pub verdicts: Vec<(Component, Verdict)>,
    /// Work to start now, beside the probing.
    pub action: Option<ActionJob<O>>,
}

/// A piece of work the driver wants done outside the round: one action
/// of a promotion or of the steps after it, a proxy switch, raft recovery.
pub struct ActionJob<O> {
    /// What it is, for logs and STATUS ("promotion of the accounts of
    /// mbox1.example.com").
    pub what: String,
    /// The outer bound on its run time, if it has one. The job's own
    /// commands have their own timeouts; this is the backstop after which
    /// the loop aborts the future (killing its children), and how long a
    /// stop waits for it. `None`: the job bounds each of its steps itself
    /// (an action's commands and hooks have their own limits); the loop
    /// waits for it.
    pub timeout: Option<Duration>,
    work: Box<dyn Work<O>>,
}

/// What a job holds: started on its own task, or, when the loop does not
/// start it, handed back to the driver as it is (so that what it owns,
/// such as the executor and its quorum gates, is not dropped with it).
trait Work<O>: Send {
    fn start(self: Box<Self>) -> Pin<Box<dyn Future<Output = O> + Send + 'static>>;
    fn unstarted(self: Box<Self>) -> Option<O>;
}

struct Plain<F>(F);

impl<O, F: Future<Output = O> + Send + 'static> Work<O> for Plain<F> {
    fn start(self: Box<Self>) -> Pin<Box<dyn Future<Output = O> + Send + 'static>> {
        Box::pin(self.0)
    }
    fn unstarted(self: Box<Self>) -> Option<O> {
        None
    }
}

struct Held<T, S, U> {
    held: T,
    start: S,
    unstarted: U,
}

impl<O, T, F, S, U> Work<O> for Held<T, S, U>
where
    T: Send,
    F: Future<Output = O> + Send + 'static,
    S: FnOnce(T) -> F + Send,
    U: FnOnce(T) -> O + Send,
{
    fn start(self: Box<Self>) -> Pin<Box<dyn Future<Output = O> + Send + 'static>> {
        Box::pin((self.start)(self.held))
    }
    fn unstarted(self: Box<Self>) -> Option<O> {
        Some((self.unstarted)(self.held))
    }
}

impl<O: 'static> ActionJob<O> {
    /// Wrap a future that owns everything it needs (clone the config and
    /// clients into it): it runs on its own task.
    pub fn new(
        what: impl Into<String>,
        timeout: Duration,
        work: impl Future<Output = O> + Send + 'static,
    ) -> ActionJob<O> {
        ActionJob {
            what: what.into(),
            timeout: Some(timeout),
            work: Box::new(Plain(work)),
        }
    }

    /// A job without an outer bound: each of its steps is bounded by what
    /// it runs (see [`ActionJob::timeout`]).
    pub fn unbounded(
        what: impl Into<String>,
        work: impl Future<Output = O> + Send + 'static,
    ) -> ActionJob<O> {
        ActionJob {
            what: what.into(),
            timeout: None,
            work: Box::new(Plain(work)),
        }
    }

    /// A job without an outer bound that owns `held`: `start` makes its
    /// work of it; if the loop does not start the job, `unstarted` makes
    /// the value handed back in [`ActionEnd::NotStarted`] of it instead.
    pub fn holding<T, F>(
        what: impl Into<String>,
        held: T,
        start: impl FnOnce(T) -> F + Send + 'static,
        unstarted: impl FnOnce(T) -> O + Send + 'static,
    ) -> ActionJob<O>
    where
        T: Send + 'static,
        F: Future<Output = O> + Send + 'static,
    {
        ActionJob {
            what: what.into(),
            timeout: None,
            work: Box::new(Held {
                held,
                start,
                unstarted,
            }),
        }
    }

    /// The job will not run: what it hands back ([`ActionJob::holding`]).
    fn unstarted(self) -> ActionEnd<O> {
        ActionEnd::NotStarted(self.work.unstarted())
    }
}

/// How a job ended, as reported to [`Driver::action_finished`].
#[derive(Debug)]
pub enum ActionEnd<O> {
    /// The job's future completed with this value.
    Finished(O),
    /// It ran past [`ActionJob::timeout`] and was aborted.
    TimedOut,
    /// Its task panicked (a bug); the message says where.
    Panicked(String),
    /// Never started: another job was running, or the daemon is stopping.
    /// What the job held, if it was made with [`ActionJob::holding`].
    NotStarted(Option<O>),
}

/// A round that did not complete (e.g. the state could not be written).
/// No watchdog ping follows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RoundError(pub String);

/// The part of the daemon that probes, decides and acts. The loop calls
/// its methods one at a time (never concurrently), so `&mut self` is safe.
pub trait Driver {
    /// What a job returns (the executor's outcome, fed back to the engine).
    type Outcome: Send + 'static;

    /// Time between the starts of two rounds (`detection.interval`). Read
    /// at start and after each reload.
    fn interval(&self) -> Duration;

    /// The probes of the next round, if the driver runs them apart from
    /// [`Driver::round`] (which then gets their result in
    /// [`RoundContext::probed`]). `None`: `round` probes itself.
    fn probe(&mut self) -> Option<Probing> {
        None
    }

    /// When the engine must be fed although no round has completed: a
    /// witness's detection deadline (docs/decisions.md §1). Each deadline
    /// is reported once.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// The deadline of [`Driver::deadline`] has come: feed it, and hand
    /// back a job if the engine decides one (the loop starts it at once).
    fn at_deadline(&mut self) -> impl Future<Output = Option<ActionJob<Self::Outcome>>> + Send {
        std::future::ready(None)
    }

    /// Probe (unless [`RoundContext::probed`] has the probes' result),
    /// decide, and optionally hand back a job. Must be bounded in time
    /// (the probes' timeout): the loop awaits it.
    fn round(
        &mut self,
        ctx: RoundContext,
    ) -> impl Future<Output = Result<RoundReport<Self::Outcome>, RoundError>> + Send;

    /// A job ended (or was not started): feed its outcome to the engine,
    /// record it, and hand back the next job of the same chain, if any
    /// (the loop starts it at once, also while stopping). After
    /// [`ActionEnd::NotStarted`] the driver hands back none.
    fn action_finished(
        &mut self,
        what: &str,
        end: ActionEnd<Self::Outcome>,
    ) -> impl Future<Output = Option<ActionJob<Self::Outcome>>> + Send;

    /// Re-read the configuration. On `Err(why)` the driver keeps running
    /// with the old configuration; the loop logs `why`.
    fn reload(&mut self) -> impl Future<Output = Result<(), String>> + Send;

    /// Last words before exit (release the Consul session, flush state).
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

/// The loop's collaborators and limits.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where READY/WATCHDOG/STATUS go (a no-op outside systemd).
    pub notifier: Notifier,
    /// Rounds are recorded here when set.
    pub metrics: Option<Metrics>,
    /// Reopened on reload (logrotate).
    pub log: LogHandle,
    /// After a stop request, how long a round in progress may still take
    /// before it is abandoned. Rounds are bounded by the probe timeout, so
    /// this only matters when something is stuck.
    pub stop_round_grace: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            notifier: Notifier::disabled(),
            metrics: None,
            log: LogHandle::default(),
            stop_round_grace: Duration::from_secs(10),
        }
    }
}

struct Running<O> {
    what: String,
    deadline: Option<Instant>,
    handle: JoinHandle<O>,
}

/// Wait for the running job (forever when there is none), aborting it at
/// its deadline.
async fn job_end<O>(job: &mut Option<Running<O>>) -> ActionEnd<O> {
    let Some(r) = job else {
        return std::future::pending().await;
    };
    tokio::select! {
        res = &mut r.handle => match res {
            Ok(o) => ActionEnd::Finished(o),
            Err(e) if e.is_panic() => ActionEnd::Panicked(panic_message(e)),
            Err(_) => ActionEnd::TimedOut, // cancelled: only we abort it
        },
        () = sleep_until_opt(r.deadline) => {
            r.handle.abort();
            ActionEnd::TimedOut
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let p = e.into_panic();
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

fn new_interval(period: Duration, first: Instant) -> tokio::time::Interval {
    // A zero period would panic in tokio and spin the CPU; config
    // validation forbids it, this is the backstop.
    let period = period.max(Duration::from_millis(1));
    let mut i = tokio::time::interval_at(first, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

fn notify_err(what: &str, r: std::io::Result<()>) {
    if let Err(e) = r {
        tracing::warn!("cannot notify systemd ({what}): {e}");
    }
}

/// Run rounds until a stop request (or until `requests` closes, since
/// nothing could stop the loop otherwise). Returns when the daemon may
/// exit 0.
pub async fn run<D: Driver>(
    driver: &mut D,
    mut requests: mpsc::Receiver<Request>,
    opts: RunOptions,
) {
    let n = &opts.notifier;
    let mut period = driver.interval();
    if let Some(ping) = n.watchdog_ping_interval()
        && ping < period
    {
        tracing::warn!(
            "WatchdogSec={} leaves less than two rounds of detection.interval={} between pings: systemd may restart habeat; set WatchdogSec to at least {}",
            humantime::format_duration(n.watchdog_timeout().unwrap_or_default()),
            humantime::format_duration(period),
            humantime::format_duration(period * 3),
        );
    }
    let mut ticks = new_interval(period, Instant::now());
    let mut ready = false;
    let mut last_status = String::from("starting");
    let mut sent_status = String::new();
    let mut job: Option<Running<D::Outcome>> = None;

    'main: loop {
        tokio::select! {
            // Requests first: a stop must not wait behind an overdue tick.
            biased;
            req = requests.recv() => match req {
                Some(Request::Reload) => {
                    reload(driver, &opts, ready, &status_with_job(&last_status, &job)).await;
                    if driver.interval() != period {
                        period = driver.interval();
                        ticks = new_interval(period, Instant::now() + period);
                    }
                    continue 'main;
                }
                Some(Request::Stop) | None => break 'main,
            },
            end = job_end(&mut job) => {
                if let Some(r) = job.take() {
                    log_job_end(&r.what, &end);
                    job = driver.action_finished(&r.what, end).await.map(start_job);
                    let line = status_with_job(&last_status, &job);
                    notify_err("status", n.status(&line));
                    sent_status = line;
                }
                continue 'main;
            }
            () = sleep_until_opt(driver.deadline()) => {
                if let Some(new) = driver.at_deadline().await {
                    job = offer(driver, job, new, false).await;
                    let line = status_with_job(&last_status, &job);
                    notify_err("status", n.status(&line));
                    sent_status = line;
                }
                continue 'main;
            }
            _ = ticks.tick() => {}
        }

        // One round, during which requests are noted, not acted on. Its
        // probes run first, beside the detection deadline: a peer gone
        // silent is judged the instant its tolerance runs out, not when
        // the probe still out has timed out.
        let started = Instant::now();
        let mut reload_pending = false;
        let mut stop_deadline: Option<Instant> = None;
        let mut probed = None;
        if let Some(mut probing) = driver.probe() {
            loop {
                tokio::select! {
                    r = &mut probing => {
                        probed = Some(r);
                        break;
                    }
                    () = sleep_until_opt(driver.deadline()) => {
                        if let Some(new) = driver.at_deadline().await {
                            job = offer(driver, job, new, stop_deadline.is_some()).await;
                        }
                    }
                    // A chain goes on while the probes are out: its next
                    // action does not wait for a probe's timeout.
                    end = job_end(&mut job) => {
                        if let Some(r) = job.take() {
                            log_job_end(&r.what, &end);
                            job = driver.action_finished(&r.what, end).await.map(start_job);
                        }
                    }
                    req = requests.recv(), if stop_deadline.is_none() => match req {
                        Some(Request::Reload) => reload_pending = true,
                        Some(Request::Stop) | None => {
                            stop_deadline = Some(Instant::now() + opts.stop_round_grace);
                        }
                    },
                    () = sleep_until_opt(stop_deadline) => break,
                }
            }
        }
        let ctx = RoundContext {
            action_running: job.as_ref().map(|r| r.what.clone()),
            probed,
        };
        let probes_abandoned =
            ctx.probed.is_none() && stop_deadline.is_some_and(|d| Instant::now() >= d);
        let outcome = if probes_abandoned {
            None
        } else {
            let round = driver.round(ctx);
            tokio::pin!(round);
            loop {
                tokio::select! {
                    r = &mut round => break Some(r),
                    req = requests.recv(), if stop_deadline.is_none() => match req {
                        Some(Request::Reload) => reload_pending = true,
                        Some(Request::Stop) | None => {
                            stop_deadline = Some(Instant::now() + opts.stop_round_grace);
                        }
                    },
                    () = sleep_until_opt(stop_deadline) => break None,
                }
            }
        };
        let duration = started.elapsed();
        match outcome {
            None => tracing::warn!(
                "abandoned a probe round still running {} after the stop request",
                humantime::format_duration(opts.stop_round_grace)
            ),
            Some(Err(e)) => {
                tracing::error!("probe round failed, not telling the systemd watchdog: {e}");
            }
            Some(Ok(report)) => {
                if let Some(m) = &opts.metrics {
                    m.record_round(&report.round, duration, &report.verdicts);
                }
                last_status = report.status;
                if let Some(new) = report.action {
                    job = offer(driver, job, new, stop_deadline.is_some()).await;
                }
                let line = status_with_job(&last_status, &job);
                if !ready {
                    notify_err("ready", n.ready(&line));
                    tracing::info!("first round done: {line}");
                    ready = true;
                    sent_status = line;
                } else if line != sent_status {
                    notify_err("status", n.status(&line));
                    sent_status = line;
                }
                notify_err("watchdog", n.watchdog());
            }
        }
        if stop_deadline.is_some() {
            break 'main;
        }
        if reload_pending {
            reload(driver, &opts, ready, &status_with_job(&last_status, &job)).await;
            if driver.interval() != period {
                period = driver.interval();
                ticks = new_interval(period, Instant::now() + period);
            }
        }
    }

    stop(driver, &mut requests, &opts, job).await;
}

/// A job the driver handed out: started, unless one runs already or
/// habeat is stopping (then handed back unstarted). Returns the job that
/// runs now.
async fn offer<D: Driver>(
    driver: &mut D,
    job: Option<Running<D::Outcome>>,
    new: ActionJob<D::Outcome>,
    stopping: bool,
) -> Option<Running<D::Outcome>> {
    if let Some(r) = &job {
        tracing::error!(
            "not starting {}: {} is still running (one action at a time)",
            new.what,
            r.what
        );
        not_started(driver, new).await;
        job
    } else if stopping {
        tracing::warn!("not starting {}: habeat is stopping", new.what);
        not_started(driver, new).await;
        job
    } else {
        Some(start_job(new))
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn status_with_job<O>(status: &str, job: &Option<Running<O>>) -> String {
    match job {
        Some(r) => format!("{status}; running: {}", r.what),
        None => status.to_owned(),
    }
}

/// Start `job` on its own task.
fn start_job<O: Send + 'static>(job: ActionJob<O>) -> Running<O> {
    match job.timeout {
        Some(t) => tracing::info!(
            "starting {} (at most {})",
            job.what,
            humantime::format_duration(t)
        ),
        None => tracing::info!("starting {}", job.what),
    }
    Running {
        deadline: job.timeout.map(|t| Instant::now() + t),
        handle: tokio::spawn(job.work.start()),
        what: job.what,
    }
}

/// Hand `job` back to the driver unstarted, with what it holds.
async fn not_started<D: Driver>(driver: &mut D, job: ActionJob<D::Outcome>) {
    let mut next = Some(job);
    while let Some(job) = next.take() {
        let what = job.what.clone();
        next = driver.action_finished(&what, job.unstarted()).await;
    }
}

fn log_job_end<O>(what: &str, end: &ActionEnd<O>) {
    match end {
        ActionEnd::Finished(_) => tracing::info!("{what} ended"),
        ActionEnd::TimedOut => {
            tracing::error!("{what} ran past its time limit and was stopped")
        }
        ActionEnd::Panicked(p) => tracing::error!("{what} crashed (a bug, please report): {p}"),
        ActionEnd::NotStarted(_) => {}
    }
}

async fn reload<D: Driver>(driver: &mut D, opts: &RunOptions, ready: bool, status: &str) {
    let n = &opts.notifier;
    // Before READY=1, systemd is still starting us: no reload protocol.
    if ready {
        notify_err("reloading", n.reloading());
    }
    tracing::info!("reload requested (SIGHUP)");
    if let Err(e) = opts.log.reopen() {
        tracing::error!("{e}; still writing to the previous log file");
    }
    match driver.reload().await {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(why) => tracing::error!("new configuration rejected, keeping the running one: {why}"),
    }
    if ready {
        notify_err("ready", n.ready(status));
    }
}

async fn stop<D: Driver>(
    driver: &mut D,
    requests: &mut mpsc::Receiver<Request>,
    opts: &RunOptions,
    mut job: Option<Running<D::Outcome>>,
) {
    let n = &opts.notifier;
    if let Some(r) = &job {
        let line = match r.deadline {
            Some(d) => format!(
                "stopping: waiting for {} to finish (at most {})",
                r.what,
                humantime::format_duration(Duration::from_secs(
                    d.saturating_duration_since(Instant::now()).as_secs()
                ))
            ),
            None => format!(
                "stopping: waiting for {} to finish (each of its steps has its own time limit)",
                r.what
            ),
        };
        tracing::warn!("{line}");
        notify_err("stopping", n.stopping(&line));
        notify_err("extend timeout", n.extend_timeout(EXTEND_BY));
        let mut extend = tokio::time::interval_at(Instant::now() + EXTEND_EVERY, EXTEND_EVERY);
        let mut requests_open = true;
        // The chain a running job belongs to runs on to its end, as
        // the first of its jobs would if it were the whole chain.
        while job.is_some() {
            tokio::select! {
                end = job_end(&mut job) => if let Some(r) = job.take() {
                    log_job_end(&r.what, &end);
                    job = driver.action_finished(&r.what, end).await.map(start_job);
                },
                _ = extend.tick() => notify_err("extend timeout", n.extend_timeout(EXTEND_BY)),
                req = requests.recv(), if requests_open => match req {
                    Some(_) => tracing::warn!("{line} (already stopping)"),
                    None => requests_open = false,
                },
            }
        }
    } else {
        notify_err("stopping", n.stopping("stopping"));
    }
    driver.shutdown().await;
    tracing::info!("stopped");
}
