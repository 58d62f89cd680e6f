//! Running the operator's commands: `proxy_switch` activate/deactivate,
//! `hooks.after_promotion`, `hooks.on_peer_recovered` and `hooks.on_event`.
//!
//! This is the one place where a shell may run, and only for commands the
//! operator wrote as a string in the config. Whatever habeat knows (event,
//! source host, accounts, ...) reaches a hook only through `HABEAT_*`
//! environment variables and, for `on_event`, as JSON on stdin, never by
//! interpolation into the command.
//!
//! Hooks do not inherit habeat's environment (it may hold
//! `CONSUL_HTTP_TOKEN`): they get `PATH`, `HOME`, `LANG`, `TMPDIR` and the
//! `HABEAT_*` variables only. `TMPDIR` is `/var/tmp` because the shipped
//! units leave `/tmp` read-only (`mktemp` and most tools follow it).
//!
//! A hook that exits non-zero, is killed, runs over `hooks.timeout` (its
//! process group is then killed) or cannot start is a *failed* hook: the
//! caller turns it into an error event and `check` exits 3.

use super::process::{self, Spec, Status};
use crate::config::{Config, HookCommand};
use crate::engine::Event;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How much of a hook's output is kept for the journal.
pub const HOOK_TAIL_BYTES: usize = 4000;

/// PATH given to hooks.
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How many events may wait for the `on_event` hooks before new ones are
/// dropped (they stay in the journal). A failover journals a few dozen.
pub const EVENT_QUEUE: usize = 1024;

/// The data handed to a hook, as `HABEAT_<NAME>` environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HookEnv(BTreeMap<String, String>);

impl HookEnv {
    /// No variables yet.
    pub fn new() -> HookEnv {
        HookEnv::default()
    }

    /// Set `HABEAT_<name>` (name upper-cased; characters other than
    /// letters, digits and `_` become `_`). A NUL in the value, which the
    /// environment cannot carry, becomes U+FFFD.
    pub fn set(mut self, name: &str, value: impl AsRef<str>) -> HookEnv {
        let key: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let key = if key.starts_with("HABEAT_") {
            key
        } else {
            format!("HABEAT_{key}")
        };
        self.0.insert(key, value.as_ref().replace('\0', "\u{FFFD}"));
        self
    }

    /// The variables, already prefixed.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// What happens to the rest of a list when one hook fails.
///
/// Recommended use: `Stop` inside one `proxy_switch` list (its
/// commands are the ordered steps of one switch, like `set -e`); `Continue`
/// for `hooks.after_promotion` / `on_peer_recovered` (independent
/// notifications: one failing must not silence the others). Either way
/// every failure is in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Skip the rest of the list (reported as skipped).
    Stop,
    /// Run the rest anyway.
    Continue,
}

/// How one hook ended, for the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookOutcome {
    /// The command as written (argv rendering, or the shell string).
    pub command: String,
    /// `None` when it did not exit by itself (timeout, signal, not started).
    pub exit_code: Option<i32>,
    #[serde(with = "crate::model::humantime_serde_compat")]
    /// How long it ran.
    pub duration: Duration,
    /// Killed at `hooks.timeout`.
    pub timed_out: bool,
    /// The last [`HOOK_TAIL_BYTES`] of stdout+stderr, or why it did not start.
    pub tail: String,
    /// Exit code 0 within the timeout.
    pub ok: bool,
    /// Set when it failed: in words, for the event.
    pub failure: Option<String>,
}

/// A list of hooks run in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HookReport {
    /// One outcome per hook that ran, in order.
    pub outcomes: Vec<HookOutcome>,
    /// Hooks not run because an earlier one failed under [`OnFailure::Stop`].
    pub skipped: Vec<String>,
}

impl HookReport {
    /// True when every hook ran and succeeded.
    pub fn ok(&self) -> bool {
        self.skipped.is_empty() && self.outcomes.iter().all(|o| o.ok)
    }

    /// The failed outcomes.
    pub fn failures(&self) -> impl Iterator<Item = &HookOutcome> {
        self.outcomes.iter().filter(|o| !o.ok)
    }
}

/// Runs hooks with `hooks.timeout`.
#[derive(Debug, Clone)]
pub struct HookRunner {
    timeout: Duration,
}

impl HookRunner {
    /// A runner killing each hook's process group after `timeout`.
    pub fn new(timeout: Duration) -> HookRunner {
        HookRunner { timeout }
    }

    fn spec(&self, hook: &HookCommand, env: &HookEnv, stdin: Option<Vec<u8>>) -> Spec {
        let mut spec = Spec::new(hook.argv(), self.timeout);
        spec.clear_env = true;
        spec.env.insert("PATH".into(), HOOK_PATH.into());
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        spec.env.insert("HOME".into(), home);
        spec.env.insert("LANG".into(), "C.UTF-8".into());
        spec.env.insert("TMPDIR".into(), process::TEMP_ROOT.into());
        for (k, v) in env.vars() {
            spec.env.insert(k.into(), v.into());
        }
        spec.stdin = stdin;
        spec.output_limit = 64 * 1024;
        spec
    }

    /// Run one hook. Never returns an error: a hook that cannot even start
    /// is a failed outcome like any other.
    pub async fn run(
        &self,
        hook: &HookCommand,
        env: &HookEnv,
        stdin: Option<Vec<u8>>,
    ) -> HookOutcome {
        let command = describe(hook);
        if hook.argv().first().is_none_or(|p| p.is_empty()) {
            return failed_to_start(command, "the hook is an empty command".into());
        }
        let spec = self.spec(hook, env, stdin);
        let out = match process::run(&spec).await {
            Ok(o) => o,
            Err(e) => return failed_to_start(command, e.to_string()),
        };
        let tail = out.tail(HOOK_TAIL_BYTES);
        let (exit_code, failure) = match out.status {
            Status::Exited(0) => (Some(0), None),
            Status::Exited(c) => (
                Some(c),
                Some(format!("hook {command} exited with code {c}")),
            ),
            Status::Signaled(s) => (
                None,
                Some(format!("hook {command} was killed by signal {s}")),
            ),
            Status::TimedOut => (
                None,
                Some(format!(
                    "hook {command} ran over hooks.timeout ({}) and was killed with its process group",
                    humantime::format_duration(self.timeout)
                )),
            ),
        };
        if let Some(f) = &failure {
            tracing::error!(failure = %f, output = %tail, "hook failed");
        } else {
            tracing::info!(%command, duration = ?out.duration, "hook done");
        }
        HookOutcome {
            command,
            exit_code,
            duration: out.duration,
            timed_out: out.status == Status::TimedOut,
            tail,
            ok: failure.is_none(),
            failure,
        }
    }

    /// Run a list in order with the same environment, stopping at the first
    /// failure or continuing past it (see [`OnFailure`]).
    pub async fn run_all(
        &self,
        hooks: &[HookCommand],
        env: &HookEnv,
        policy: OnFailure,
    ) -> HookReport {
        let mut report = HookReport::default();
        for (i, hook) in hooks.iter().enumerate() {
            let outcome = self.run(hook, env, None).await;
            let failed = !outcome.ok;
            report.outcomes.push(outcome);
            if failed && policy == OnFailure::Stop {
                report.skipped = hooks[i + 1..].iter().map(describe).collect();
                break;
            }
        }
        report
    }
}

fn failed_to_start(command: String, why: String) -> HookOutcome {
    let failure = format!("hook {command} could not start: {why}");
    tracing::error!(%failure, "hook failed");
    HookOutcome {
        command,
        exit_code: None,
        duration: Duration::ZERO,
        timed_out: false,
        tail: why,
        ok: false,
        failure: Some(failure),
    }
}

/// How a hook is named in logs and the journal.
pub fn describe(hook: &HookCommand) -> String {
    match hook {
        HookCommand::Argv(v) => process::display_argv(
            &v.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>(),
        ),
        HookCommand::Shell(s) => format!("sh -c {s:?}"),
    }
}

/// Counters of an [`EventDispatcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DispatchStats {
    /// Events handed to the hooks.
    pub delivered: u64,
    /// Events dropped because the queue was full (a slow hook).
    pub dropped: u64,
    /// Hook runs that failed.
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

struct Job {
    json: Vec<u8>,
    env: HookEnv,
}

/// Delivers events to the `on_event` hooks in the background, so that a
/// slow or hanging hook never holds up a decision: [`dispatch`] only puts
/// the event on a bounded queue. Events run through the hooks one at a
/// time, in order; when the queue is full the event is dropped, counted
/// and logged (the journal still has it).
///
/// [`dispatch`]: EventDispatcher::dispatch
pub struct EventDispatcher {
    tx: Option<mpsc::Sender<Job>>,
    counters: Arc<Counters>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl EventDispatcher {
    /// The dispatcher of `hooks.on_event`, started; `None` when there are
    /// no such hooks, or no tokio runtime to run them on (never the case
    /// in habeat: every command runs inside one).
    pub fn for_config(cfg: &Config) -> Option<EventDispatcher> {
        if cfg.hooks.on_event.is_empty() {
            return None;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!(
                "hooks.on_event cannot run outside the async runtime; events are only journaled"
            );
            return None;
        }
        Some(EventDispatcher::spawn(
            HookRunner::new(cfg.hooks.timeout),
            cfg.hooks.on_event.clone(),
            EVENT_QUEUE,
        ))
    }

    /// Start the background worker (needs a tokio runtime). `capacity` is
    /// the number of events that may wait.
    pub fn spawn(runner: HookRunner, hooks: Vec<HookCommand>, capacity: usize) -> EventDispatcher {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let worker = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                for hook in &hooks {
                    let out = runner.run(hook, &job.env, Some(job.json.clone())).await;
                    if !out.ok {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                c.delivered.fetch_add(1, Ordering::Relaxed);
            }
        });
        EventDispatcher {
            tx: Some(tx),
            counters,
            worker: Some(worker),
        }
    }

    /// Queue an event for the hooks; returns at once. The event goes to
    /// stdin as one line of JSON; `env` adds `HABEAT_*` variables (e.g. the
    /// event kind). Returns false when it was dropped (queue full or
    /// dispatcher closed).
    pub fn dispatch(&self, event: &impl Serialize, env: HookEnv) -> bool {
        let mut json = match serde_json::to_vec(event) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise an event for the on_event hooks");
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        };
        json.push(b'\n');
        let Some(tx) = &self.tx else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match tx.try_send(Job { json, env }) {
            Ok(()) => true,
            Err(_) => {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    dropped_total = n,
                    "on_event hooks are too slow: an event was not delivered to them (it is still in the journal)"
                );
                false
            }
        }
    }

    /// The counters so far (for metrics and status).
    pub fn stats(&self) -> DispatchStats {
        DispatchStats {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Stop taking events and give the queued ones up to `wait` to reach
    /// the hooks (a `check` run does this before exiting); what is left
    /// after that is abandoned (its hook's process group is killed).
    pub async fn close(mut self, wait: Duration) -> DispatchStats {
        self.tx = None;
        if let Some(mut w) = self.worker.take()
            && tokio::time::timeout(wait, &mut w).await.is_err()
        {
            w.abort();
            let _ = w.await;
        }
        self.stats()
    }
}

/// The `HABEAT_*` variables an `on_event` hook gets beside the event JSON
/// on stdin: `HABEAT_EVENT` (the event's `event` field, e.g.
/// `verdict_changed`), `HABEAT_SEVERITY`, `HABEAT_ROLE` and
/// `HABEAT_COMPONENT` when the event has them, and `HABEAT_WHOAMI`,
/// `HABEAT_DC_CHECK`, `HABEAT_SOURCE_HOST` as the other hooks get them.
pub fn event_env(cfg: &Config, event: &Event) -> HookEnv {
    let json = serde_json::to_value(event).unwrap_or_default();
    let field = |name: &str| {
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut env = HookEnv::new()
        .set("event", field("event"))
        .set("severity", field("severity"))
        .set("whoami", &cfg.local.whoami)
        .set("dc_check", &cfg.local.dc_check)
        .set(
            "source_host",
            cfg.peer().appserver_vmname.clone().unwrap_or_default(),
        );
    if let Some(r) = event.role {
        env = env.set("role", r.as_str());
    }
    if let Some(c) = event.component {
        env = env.set("component", c.as_str());
    }
    env
}

impl Drop for EventDispatcher {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.abort();
        }
    }
}
