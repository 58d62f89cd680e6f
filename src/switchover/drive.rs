//! Runs a switchover's [`Op`]s against the CLIs: the record is saved
//! before each operation runs, each operation is one process (a zmprov
//! batch, one `getAccountStatus`, one promotion, one
//! `setAccountDestination`), and its result is fed back to the machine.

use super::machine::{self, End, Input, Op, Position, Record, ReplicaAt};
use crate::act::carbonio::{Carbonio, Located};
use crate::act::{AccountName, MailHost};
use crate::engine::{Event, EventKind, Severity, UnixMillis};
use crate::sink::EventSink;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Priority of the replica given back on the old mailstore.
pub const REPROTECT_PRIORITY: u32 = 10;

/// The wall clock in ms.
pub fn now_ms() -> u64 {
    crate::session::now().0
}

/// Validated account names.
pub fn names(accounts: &[String]) -> Result<Vec<AccountName>, String> {
    accounts
        .iter()
        .map(|a| AccountName::parse(a).map_err(|e| format!("{a:?}: {e}")))
        .collect()
}

/// `(account, status)` pairs with validated names.
pub fn status_pairs(statuses: &[(String, String)]) -> Result<Vec<(AccountName, String)>, String> {
    statuses
        .iter()
        .map(|(a, s)| {
            AccountName::parse(a)
                .map(|n| (n, s.clone()))
                .map_err(|e| format!("{a:?}: {e}"))
        })
        .collect()
}

/// A read as the machine sees it: each account's replica on `to`.
pub fn positions(read: &[Located], to: &str) -> Vec<Position> {
    read.iter()
        .map(|l| Position {
            account: l.account.to_string(),
            mail_host: l.mail_host.to_string(),
            source: (l.sequence, l.item_id),
            replica: l
                .replicas
                .iter()
                .find(|r| {
                    r.destination
                        .as_deref()
                        .is_some_and(|d| d.eq_ignore_ascii_case(to))
                })
                .map(|r| ReplicaAt {
                    sequence: r.sequence,
                    item_id: r.item_id,
                    available: r.available,
                    kafka: r.can_connect_to_kafka,
                }),
        })
        .collect()
}

/// Journal one switchover event.
pub fn journal(
    events: &EventSink,
    rec: &Record,
    step: &str,
    wave: Option<usize>,
    accounts: Vec<String>,
    severity: Severity,
    message: String,
) {
    events.report(Event {
        at: UnixMillis(now_ms()),
        severity,
        kind: EventKind::Switchover {
            id: rec.id,
            step: step.into(),
            wave: wave.map(|w| w + 1),
            accounts,
        },
        role: None,
        component: None,
        message: message.clone(),
        operator: None,
    });
    match severity {
        Severity::Info => tracing::info!("{message}"),
        Severity::Warning => tracing::warn!("{message}"),
        Severity::Error => tracing::error!("{message}"),
    }
}

/// What runs a switchover.
pub struct Driver {
    pub cli: Carbonio,
    pub events: EventSink,
    pub state_dir: PathBuf,
    /// Set by SIGTERM (or SIGINT): stop at the next safe point.
    pub stop: Arc<AtomicBool>,
    /// Between two catch-up reads.
    pub poll: Duration,
}

impl Driver {
    /// Run `rec` from `first` to its end. Errors are only those of saving
    /// the record (nothing is run that was not saved first).
    pub async fn run(&self, rec: &mut Record, first: Input) -> Result<End, String> {
        let mut input = first;
        loop {
            let mut op = machine::step(rec, input, now_ms());
            if self.stop.load(Ordering::SeqCst)
                && !rec.stop_requested
                && !matches!(op, Op::Finish(_))
            {
                // The operation just handed out does not run: the machine
                // decides again knowing it must stop.
                op = machine::step(rec, Input::Stop, now_ms());
            }
            if let Op::Finish(_) = op {
                rec.pid = None;
            }
            super::save(&self.state_dir, rec).map_err(|e| {
                format!("cannot save the switchover record, stopping before the next step: {e}")
            })?;
            self.note(rec, &op);
            input = match op {
                Op::Finish(end) => return Ok(end),
                Op::ReadStatuses { accounts, .. } => Input::Statuses(match names(&accounts) {
                    Ok(n) => self
                        .cli
                        .account_statuses(&n)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                }),
                Op::SetMaintenance { accounts, .. } => {
                    let pairs: Vec<(String, String)> = accounts
                        .iter()
                        .map(|a| (a.clone(), "maintenance".to_owned()))
                        .collect();
                    Input::MaintenanceSet(self.set(&pairs).await)
                }
                Op::ReadPositions { accounts, .. } => {
                    Input::Positions(self.read(&accounts).await.map(|l| positions(&l, &rec.to)))
                }
                Op::Sleep { ms } => {
                    self.sleep(Duration::from_millis(ms).min(self.poll)).await;
                    Input::Slept
                }
                Op::Promote { accounts, .. } => {
                    Input::Promoted(match (names(&accounts), MailHost::parse(&rec.to)) {
                        (Ok(n), Ok(to)) => self
                            .cli
                            .promote_to(&n, &to, rec.threads)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        (Err(e), _) => Err(e),
                        (_, Err(e)) => Err(e.to_string()),
                    })
                }
                Op::Locate { accounts, .. } => {
                    Input::Located(self.read(&accounts).await.map(|l| {
                        l.iter()
                            .map(|x| (x.account.to_string(), x.mail_host.to_string()))
                            .collect::<BTreeMap<_, _>>()
                    }))
                }
                Op::Restore { statuses, .. } => Input::Restored(self.set(&statuses).await),
                Op::Reprotect { accounts, .. } => {
                    Input::Reprotected(match (names(&accounts), MailHost::parse(&rec.from)) {
                        (Ok(n), Ok(from)) => self
                            .cli
                            .set_account_destination(&from, REPROTECT_PRIORITY, &n)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        (Err(e), _) => Err(e),
                        (_, Err(e)) => Err(e.to_string()),
                    })
                }
            };
        }
    }

    async fn set(&self, statuses: &[(String, String)]) -> Result<(), String> {
        let pairs = status_pairs(statuses)?;
        self.cli
            .set_account_statuses(&pairs)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn read(&self, accounts: &[String]) -> Result<Vec<Located>, String> {
        let n = names(accounts)?;
        self.cli
            .account_positions(&n)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sleep, cut short by SIGTERM.
    async fn sleep(&self, d: Duration) {
        let step = Duration::from_millis(50);
        let mut left = d;
        while !left.is_zero() && !self.stop.load(Ordering::SeqCst) {
            let s = left.min(step);
            tokio::time::sleep(s).await;
            left = left.saturating_sub(s);
        }
    }

    /// Journal the step about to run (the record says it already).
    fn note(&self, rec: &Record, op: &Op) {
        let id = rec.id;
        let n = rec.waves.len();
        let j = |step: &str, wave: usize, accounts: Vec<String>, sev, msg: String| {
            journal(&self.events, rec, step, Some(wave), accounts, sev, msg)
        };
        match op {
            Op::SetMaintenance { wave, accounts } => j(
                "maintenance",
                *wave,
                accounts.clone(),
                Severity::Info,
                format!(
                    "switchover {id}: wave {} of {n}: {} account(s) set to maintenance (statuses \
                     recorded: {})",
                    wave + 1,
                    accounts.len(),
                    summary(&rec.waves[*wave].statuses)
                ),
            ),
            Op::Promote { wave, accounts } => j(
                "caught_up",
                *wave,
                accounts.clone(),
                Severity::Info,
                format!(
                    "switchover {id}: wave {} of {n}: every replica on {} has everything after {} \
                     in maintenance; promoting {} account(s)",
                    wave + 1,
                    rec.to,
                    humantime::format_duration(Duration::from_millis(
                        rec.waves[*wave].catch_up_ms.unwrap_or(0)
                    )),
                    accounts.len()
                ),
            ),
            Op::Restore { wave, statuses } => {
                let w = &rec.waves[*wave];
                let (step, sev, why) = match &w.failure {
                    Some(f) => ("rolling_back", Severity::Warning, format!(" ({f})")),
                    None => ("restoring", Severity::Info, String::new()),
                };
                j(
                    step,
                    *wave,
                    statuses.iter().map(|(a, _)| a.clone()).collect(),
                    sev,
                    format!(
                        "switchover {id}: wave {} of {n}: restoring {} status(es){why}; moved to \
                         {}: {}",
                        wave + 1,
                        statuses.len(),
                        rec.to,
                        w.moved.len()
                    ),
                )
            }
            Op::Reprotect { wave, accounts } => j(
                "reprotect",
                *wave,
                accounts.clone(),
                Severity::Info,
                format!(
                    "switchover {id}: wave {} of {n}: giving {} account(s) a replica back on {} \
                     (setAccountDestination, priority {REPROTECT_PRIORITY})",
                    wave + 1,
                    accounts.len(),
                    rec.from
                ),
            ),
            Op::Finish(end) => {
                let p = machine::progress(rec);
                let (step, sev, what) = match end {
                    End::Done => ("done", Severity::Info, "done".to_owned()),
                    End::Failed { reason } => {
                        ("failed", Severity::Error, format!("FAILED: {reason}"))
                    }
                    End::Stopped => (
                        "stopped",
                        Severity::Warning,
                        "stopped by SIGTERM at a safe point; `habeat switchover --resume` goes on"
                            .to_owned(),
                    ),
                };
                journal(
                    &self.events,
                    rec,
                    step,
                    None,
                    Vec::new(),
                    sev,
                    format!(
                        "switchover {id} from {} to {}: {what}; {} of {} account(s) now live on {}",
                        rec.from, rec.to, p.moved, p.accounts, rec.to
                    ),
                );
            }
            _ => {}
        }
    }
}

/// `3 active, 1 locked`.
fn summary(statuses: &BTreeMap<String, String>) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for s in statuses.values() {
        *count.entry(s.as_str()).or_default() += 1;
    }
    count
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}
