//! The event sink: the one door every event goes through, whoever writes
//! it (an engine step, a replica survey, the serving lease's keeper, the
//! executor's lease check). Each event is appended to the journal
//! (`events.jsonl`), then handed to the `on_event` hooks with
//! [`event_env`], logged, and counted by the daemon's metrics when it has
//! some. The writers hold a sink, never the journal itself, so an event
//! cannot be journaled without reaching the hooks.
//!
//! The journal comes first: a hook never hears of an event that `habeat
//! history` does not show. `--dry-run` only logs, saying what the real run
//! would record.
//!
//! One sink per configuration, shared by cloning: its events reach the
//! hooks through one queue, in the order they were journaled, and
//! [`EventSink::close`] gives every queued event its chance before a
//! command exits.

use crate::act::hooks::{DispatchStats, EventDispatcher, event_env};
use crate::config::Config;
use crate::engine::Event;
use crate::state::{Journal, StateError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What counts the events (the daemon's `/metrics`), narrowed to what the
/// sink needs, so that no writer of events depends on the daemon.
pub trait EventMetrics: Send + Sync {
    /// One event was journaled.
    fn event(&self, event: &Event);
}

/// The journal, the `on_event` hooks, the log and the event metrics,
/// behind one type. Clones share everything.
#[derive(Clone)]
pub struct EventSink(Arc<Inner>);

struct Inner {
    /// For [`event_env`].
    cfg: Config,
    journal: Journal,
    dry_run: bool,
    /// `None` without `hooks.on_event`, in `--dry-run`, and once closed.
    hooks: Mutex<Option<EventDispatcher>>,
    metrics: Mutex<Option<Arc<dyn EventMetrics>>>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("journal", &self.0.journal.path())
            .field("dry_run", &self.0.dry_run)
            .finish_non_exhaustive()
    }
}

impl EventSink {
    /// The sink of `cfg`: its `state_dir`'s journal, its `hooks.on_event`
    /// (started; none in `--dry-run`, which runs no hook and writes
    /// nothing).
    pub fn open(cfg: &Config, dry_run: bool) -> EventSink {
        EventSink(Arc::new(Inner {
            cfg: cfg.clone(),
            journal: Journal::of(cfg),
            dry_run,
            hooks: Mutex::new(if dry_run {
                None
            } else {
                EventDispatcher::for_config(cfg)
            }),
            metrics: Mutex::new(None),
        }))
    }

    /// Count every event from now on in `metrics`.
    pub fn count_in(&self, metrics: Arc<dyn EventMetrics>) {
        *lock(&self.0.metrics) = Some(metrics);
    }

    /// Whether this is a `--dry-run` sink (nothing is written).
    pub fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    /// Journal `events`, then hand them to the hooks and the metrics, and
    /// log each. A journal that cannot be written is the caller's error:
    /// the events then go nowhere else.
    pub fn record(&self, events: &[Event]) -> Result<(), StateError> {
        self.put(events)?;
        log(events, self.0.dry_run);
        Ok(())
    }

    /// [`EventSink::record`] for events their writer has already logged in
    /// its own words (a WARNING, say): not logged again.
    pub fn record_logged(&self, events: &[Event]) -> Result<(), StateError> {
        self.put(events)
    }

    /// [`EventSink::record_logged`] of one event by a writer that cannot
    /// stop for a journal it cannot write (the lease keeper, a step about
    /// to run): that failure is logged as an ERROR naming the event.
    pub fn report(&self, event: Event) {
        if let Err(e) = self.put(std::slice::from_ref(&event)) {
            tracing::error!(
                "cannot journal this event ({}): {e}; it did not reach the on_event hooks either",
                event.message
            );
        }
    }

    fn put(&self, events: &[Event]) -> Result<(), StateError> {
        if self.0.dry_run || events.is_empty() {
            return Ok(());
        }
        self.0.journal.append(events)?;
        if let Some(d) = lock(&self.0.hooks).as_ref() {
            for e in events {
                d.dispatch(e, event_env(&self.0.cfg, e));
            }
        }
        if let Some(m) = lock(&self.0.metrics).as_ref() {
            for e in events {
                m.event(e);
            }
        }
        Ok(())
    }

    /// Stop taking events for the hooks and give the queued ones up to
    /// `wait` to reach them (a command does this before it exits; the
    /// daemon when it stops). Events recorded afterwards are journaled
    /// only. `None` when there were no hooks (or they were closed before).
    pub async fn close(&self, wait: Duration) -> Option<DispatchStats> {
        let d = lock(&self.0.hooks).take()?;
        Some(d.close(wait).await)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The log line of each event. In `--dry-run` nothing happened and
/// nothing is recorded: the line says what the real run would record, so
/// that "recorded a manual promotion" or "raft recovery starts now" is not
/// read as done.
fn log(events: &[Event], dry_run: bool) {
    for e in events {
        if dry_run {
            tracing::info!(
                target: "habeat::event",
                "dry run: the real run would record: {}",
                e.message
            );
        } else {
            tracing::info!(target: "habeat::event", "{}", e.message);
        }
    }
}
