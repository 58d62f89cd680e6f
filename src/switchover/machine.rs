//! The switchover's decisions, pure: a [`Record`] (what is saved in
//! `switchover.json`) and [`step`], which takes what the last operation
//! returned and says which operation runs next. No I/O, no clock: the
//! driver (`drive.rs`) saves the record *before* it runs the operation
//! handed out, runs it, and feeds the result back.
//!
//! Why it is safe (`switchover-never-loses`, invariant 16):
//! - [`Op::Promote`] is handed out only after a [`Input::Positions`] read
//!   taken while every account of the wave was in maintenance showed each
//!   replica on the target at the source's `sequence` and `itemId`,
//!   available and reaching Kafka; with the accounts quiesced nothing can
//!   arrive between that read and the promotion.
//! - [`Wave::maintenance`] is set before the `ma` batch runs and cleared
//!   only when the restore batch succeeded: whatever ends the run (an
//!   error, a timeout, SIGTERM, kill -9), a wave with it set is restored
//!   to [`Wave::statuses`], the statuses read before.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How often the catch-up of a wave is read while it waits.
pub const POLL_MS: u64 = 1000;

/// Restore attempts in one run before the run gives up (the next habeat
/// to start tries again).
pub const RESTORE_TRIES: u32 = 3;

/// The saved switchover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When it started (ms since the epoch): its id in the journal.
    pub id: u64,
    /// The mailstore the accounts leave.
    pub from: String,
    /// The mailstore they move to.
    pub to: String,
    pub waves: Vec<Wave>,
    /// `--catch-up-timeout`, in ms.
    pub catch_up_timeout_ms: u64,
    /// Give the moved accounts a replica back on `from`.
    pub reprotect: bool,
    /// `promoteAccounts ... threads N`.
    pub threads: u32,
    /// The process running it (none once it ended or crashed).
    #[serde(default)]
    pub pid: Option<u32>,
    /// SIGTERM asked it to stop at the next safe point.
    #[serde(default)]
    pub stop_requested: bool,
    /// How it ended; `None` while it runs or was interrupted.
    #[serde(default)]
    pub end: Option<End>,
}

/// One wave and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// The accounts still to move in this wave.
    pub accounts: Vec<String>,
    pub step: WaveStep,
    /// Each account's `zimbraAccountStatus` as read before the wave set
    /// maintenance: what it gets back.
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
    /// Some statuses may be `maintenance` by this switchover and are not
    /// restored yet.
    #[serde(default)]
    pub maintenance: bool,
    /// When maintenance was set (ms).
    #[serde(default)]
    pub quiesced_at: Option<u64>,
    /// How long the catch-up took once quiesced (ms).
    #[serde(default)]
    pub catch_up_ms: Option<u64>,
    /// The accounts confirmed on `to`.
    #[serde(default)]
    pub moved: Vec<String>,
    /// The last read of the replicas that were not caught up: account,
    /// sequence gap, itemId gap (or why it cannot be told).
    #[serde(default)]
    pub behind: Vec<Behind>,
    /// Why the wave failed, when it did.
    #[serde(default)]
    pub failure: Option<String>,
    /// Failed restore attempts of this run.
    #[serde(default)]
    pub restore_failures: u32,
    /// Re-protection failed (the accounts moved all the same).
    #[serde(default)]
    pub reprotect_failure: Option<String>,
}

/// Where a wave is: the step recorded before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveStep {
    /// Not started.
    Pending,
    /// `zmprov ga` of the wave's statuses.
    Recording,
    /// `zmprov ma ... maintenance`.
    Quiescing,
    /// Waiting for every replica on `to` to reach its source.
    CatchingUp,
    /// `promoteAccounts input_file ... destination to`.
    Promoting,
    /// `getAccountStatus`: where each account now lives.
    Confirming,
    /// `zmprov ma` back to the recorded statuses.
    Restoring,
    /// `setAccountDestination from`.
    Reprotecting,
    /// Finished: every account on `to`.
    Done,
    /// Rolled back or failed: statuses restored, the switchover stopped.
    Failed,
    /// A crash interrupted it; its statuses were restored at the next
    /// start: `--resume` first looks where its accounts live.
    Interrupted,
    /// `--resume`: where do the accounts of an interrupted wave live.
    Locating,
}

impl WaveStep {
    /// The steps after the promotion was handed out: the accounts may
    /// live on either host.
    pub fn promotion_started(self) -> bool {
        matches!(
            self,
            WaveStep::Promoting
                | WaveStep::Confirming
                | WaveStep::Restoring
                | WaveStep::Reprotecting
        )
    }
}

/// A replica that was behind at a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behind {
    pub account: String,
    pub why: String,
}

/// How the switchover ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum End {
    /// Every wave done.
    Done,
    /// A wave failed: exit 3.
    Failed { reason: String },
    /// SIGTERM: stopped at a safe point, `--resume` goes on.
    Stopped,
}

/// What one account looks like in a `getAccountStatus` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub account: String,
    pub mail_host: String,
    /// The source's `sequence`, `itemId`.
    pub source: (Option<u64>, Option<u64>),
    /// The replica on the target, if any.
    pub replica: Option<ReplicaAt>,
}

/// A replica's position and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAt {
    pub sequence: Option<u64>,
    pub item_id: Option<u64>,
    pub available: bool,
    pub kafka: bool,
}

/// Why an account's replica on the target is not ready to be promoted
/// (`None`: it has everything).
pub fn not_caught_up(p: &Position, from: &str) -> Option<String> {
    if p.mail_host != from {
        return Some(format!("lives on {}, not on {from}", p.mail_host));
    }
    let Some(r) = &p.replica else {
        return Some("no replica on the target".into());
    };
    if !r.available {
        return Some("replica unavailable".into());
    }
    if !r.kafka {
        return Some("replica cannot reach Kafka".into());
    }
    match (p.source, (r.sequence, r.item_id)) {
        ((Some(ss), Some(si)), (Some(rs), Some(ri))) if rs >= ss && ri >= si => None,
        ((Some(ss), Some(si)), (Some(rs), Some(ri))) => Some(format!(
            "replica behind by {} sequence, {} itemId",
            ss.saturating_sub(rs),
            si.saturating_sub(ri)
        )),
        _ => Some("position not reported".into()),
    }
}

/// Why an account cannot be switched over at all (preflight): no replica
/// on the target that is available and reaches Kafka.
pub fn not_ready(p: &Position) -> Option<String> {
    match &p.replica {
        None => Some("no replica on the target".into()),
        Some(r) if !r.available => Some("its replica there is unavailable".into()),
        Some(r) if !r.kafka => Some("its replica there cannot reach Kafka".into()),
        Some(_) => None,
    }
}

/// What the driver runs next. The record is saved before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// One `zmprov` batch: `ga ACCOUNT zimbraAccountStatus` for each.
    ReadStatuses { wave: usize, accounts: Vec<String> },
    /// One `zmprov` batch: `ma ACCOUNT zimbraAccountStatus maintenance`.
    SetMaintenance { wave: usize, accounts: Vec<String> },
    /// One `getAccountStatus input_file` read of the wave.
    ReadPositions { wave: usize, accounts: Vec<String> },
    /// Wait this long, then feed [`Input::Slept`].
    Sleep { ms: u64 },
    /// `promoteAccounts input_file F destination to threads N`.
    Promote { wave: usize, accounts: Vec<String> },
    /// One `getAccountStatus input_file` read: where each account lives.
    Locate { wave: usize, accounts: Vec<String> },
    /// One `zmprov` batch: `ma ACCOUNT zimbraAccountStatus RECORDED`.
    Restore {
        wave: usize,
        statuses: Vec<(String, String)>,
    },
    /// `setAccountDestination from 10 input_file F`.
    Reprotect { wave: usize, accounts: Vec<String> },
    /// Nothing more: the switchover ended so.
    Finish(End),
}

/// What the last operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Begin, or `--resume`.
    Start,
    Statuses(Result<BTreeMap<String, String>, String>),
    MaintenanceSet(Result<(), String>),
    Positions(Result<Vec<Position>, String>),
    Slept,
    Promoted(Result<(), String>),
    Located(Result<BTreeMap<String, String>, String>),
    Restored(Result<(), String>),
    Reprotected(Result<(), String>),
    /// SIGTERM.
    Stop,
}

/// The wave being worked on: the first that is not done.
pub fn current(rec: &Record) -> Option<usize> {
    rec.waves.iter().position(|w| w.step != WaveStep::Done)
}

/// The statuses a wave gets back.
pub fn restore_list(w: &Wave) -> Vec<(String, String)> {
    w.statuses
        .iter()
        .map(|(a, s)| (a.clone(), s.clone()))
        .collect()
}

/// Feed `input` (the result of the last operation, at `now` ms), get the
/// next operation. The record is updated in place.
pub fn step(rec: &mut Record, input: Input, now: u64) -> Op {
    if rec.end.is_some() {
        return Op::Finish(rec.end.clone().unwrap_or(End::Done));
    }
    let Some(i) = current(rec) else {
        return finish(rec, End::Done);
    };
    let to = rec.to.clone();
    let from = rec.from.clone();
    let timeout = rec.catch_up_timeout_ms;
    let reprotect = rec.reprotect;
    if matches!(input, Input::Stop) {
        rec.stop_requested = true;
        let w = &mut rec.waves[i];
        return match w.step {
            // Nothing set yet: stop here.
            WaveStep::Pending
            | WaveStep::Recording
            | WaveStep::Interrupted
            | WaveStep::Locating => {
                if w.step == WaveStep::Recording {
                    w.step = WaveStep::Pending;
                }
                finish(rec, End::Stopped)
            }
            // Quiesced, nothing promoted (the driver feeds `Stop` instead
            // of running the operation just handed out): roll back.
            WaveStep::Quiescing | WaveStep::CatchingUp | WaveStep::Promoting => {
                w.failure = Some("stopped by SIGTERM before its promotion".into());
                w.step = WaveStep::Restoring;
                Op::Restore {
                    wave: i,
                    statuses: restore_list(w),
                }
            }
            // The promotion is out: finish the wave, stop after it. The
            // driver feeds the result of the running operation next.
            _ => resume_op(rec, i),
        };
    }
    let w = &mut rec.waves[i];
    match (w.step, input) {
        (WaveStep::Failed, _) => {
            let reason = w.failure.clone().unwrap_or_else(|| "a wave failed".into());
            finish(rec, End::Failed { reason })
        }
        (_, Input::Start) => start(rec, i),
        (WaveStep::Recording, Input::Statuses(Ok(found))) => {
            let missing: Vec<&String> = w
                .accounts
                .iter()
                .filter(|a| !found.contains_key(*a))
                .collect();
            if !missing.is_empty() {
                let reason = format!(
                    "zimbraAccountStatus not read for {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return fail_unset(rec, i, reason);
            }
            w.statuses = w
                .accounts
                .iter()
                .filter_map(|a| found.get(a).map(|s| (a.clone(), s.clone())))
                .collect();
            // Recorded before the `ma` batch runs: a crash from here on
            // restores them.
            w.maintenance = true;
            w.step = WaveStep::Quiescing;
            Op::SetMaintenance {
                wave: i,
                accounts: w.accounts.clone(),
            }
        }
        (WaveStep::Recording, Input::Statuses(Err(e))) => {
            fail_unset(rec, i, format!("cannot read the statuses: {e}"))
        }
        (WaveStep::Quiescing, Input::MaintenanceSet(Ok(()))) => {
            w.quiesced_at = Some(now);
            w.step = WaveStep::CatchingUp;
            Op::ReadPositions {
                wave: i,
                accounts: w.accounts.clone(),
            }
        }
        (WaveStep::Quiescing, Input::MaintenanceSet(Err(e))) => {
            roll_back(w, i, format!("setting maintenance failed: {e}"))
        }
        (WaveStep::CatchingUp, Input::Positions(read)) => {
            let behind: Vec<Behind> = match &read {
                Ok(ps) => w
                    .accounts
                    .iter()
                    .filter_map(|a| {
                        let why = match ps.iter().find(|p| &p.account == a) {
                            Some(p) => not_caught_up(p, &from)?,
                            None => "not in the read".into(),
                        };
                        Some(Behind {
                            account: a.clone(),
                            why,
                        })
                    })
                    .collect(),
                Err(e) => vec![Behind {
                    account: "*".into(),
                    why: format!("the read failed: {e}"),
                }],
            };
            let since = now.saturating_sub(w.quiesced_at.unwrap_or(now));
            w.behind = behind;
            if w.behind.is_empty() {
                w.catch_up_ms = Some(since);
                w.step = WaveStep::Promoting;
                return Op::Promote {
                    wave: i,
                    accounts: w.accounts.clone(),
                };
            }
            if since >= timeout {
                let first = &w.behind[0];
                let reason = format!(
                    "not caught up within the catch-up timeout ({} of {} behind, first {}: {})",
                    w.behind.len(),
                    w.accounts.len(),
                    first.account,
                    first.why
                );
                return roll_back(w, i, reason);
            }
            Op::Sleep {
                ms: POLL_MS.min(timeout - since).max(1),
            }
        }
        (WaveStep::CatchingUp, Input::Slept) => Op::ReadPositions {
            wave: i,
            accounts: w.accounts.clone(),
        },
        (WaveStep::Promoting, Input::Promoted(r)) => {
            if let Err(e) = r {
                w.failure = Some(format!("the promotion failed: {e}"));
            }
            w.step = WaveStep::Confirming;
            Op::Locate {
                wave: i,
                accounts: w.accounts.clone(),
            }
        }
        (WaveStep::Confirming, Input::Located(r)) => {
            match r {
                Ok(hosts) => {
                    let (moved, stayed): (Vec<String>, Vec<String>) = w
                        .accounts
                        .iter()
                        .cloned()
                        .partition(|a| hosts.get(a).is_some_and(|h| *h == to));
                    add_moved(w, moved);
                    if !stayed.is_empty() && w.failure.is_none() {
                        w.failure = Some(format!(
                            "not on {to} after the promotion: {}",
                            stayed.join(", ")
                        ));
                    }
                }
                Err(e) => {
                    if w.failure.is_none() {
                        w.failure = Some(format!("cannot confirm where the accounts live: {e}"));
                    }
                }
            }
            w.step = WaveStep::Restoring;
            Op::Restore {
                wave: i,
                statuses: restore_list(w),
            }
        }
        (WaveStep::Restoring, Input::Restored(Ok(()))) => {
            w.maintenance = false;
            w.restore_failures = 0;
            if reprotect && !w.moved.is_empty() {
                w.step = WaveStep::Reprotecting;
                return Op::Reprotect {
                    wave: i,
                    accounts: w.moved.clone(),
                };
            }
            close_wave(rec, i, now)
        }
        (WaveStep::Restoring, Input::Restored(Err(e))) => {
            w.restore_failures += 1;
            if w.restore_failures >= RESTORE_TRIES {
                let reason = format!(
                    "restoring the statuses failed {} times ({e}); the next habeat to start tries again",
                    w.restore_failures
                );
                w.failure = Some(reason.clone());
                // `maintenance` stays set: the next start restores.
                return finish(rec, End::Failed { reason });
            }
            Op::Restore {
                wave: i,
                statuses: restore_list(w),
            }
        }
        (WaveStep::Reprotecting, Input::Reprotected(r)) => {
            if let Err(e) = r {
                w.reprotect_failure = Some(e);
            }
            close_wave(rec, i, now)
        }
        (WaveStep::Locating, Input::Located(r)) => match r {
            Ok(hosts) => {
                let (moved, stayed): (Vec<String>, Vec<String>) = w
                    .accounts
                    .iter()
                    .cloned()
                    .partition(|a| hosts.get(a).is_some_and(|h| *h == to));
                add_moved(w, moved);
                w.accounts = stayed;
                w.statuses.clear();
                w.behind.clear();
                w.failure = None;
                if w.accounts.is_empty() {
                    if reprotect && !w.moved.is_empty() {
                        w.step = WaveStep::Reprotecting;
                        return Op::Reprotect {
                            wave: i,
                            accounts: w.moved.clone(),
                        };
                    }
                    return close_wave(rec, i, now);
                }
                // The rest goes through the whole wave again.
                w.step = WaveStep::Recording;
                Op::ReadStatuses {
                    wave: i,
                    accounts: w.accounts.clone(),
                }
            }
            Err(e) => {
                w.step = WaveStep::Interrupted;
                finish(
                    rec,
                    End::Failed {
                        reason: format!(
                            "cannot tell where the interrupted wave's accounts live: {e}"
                        ),
                    },
                )
            }
        },
        // Anything else is not this step's answer: do the step again.
        _ => resume_op(rec, i),
    }
}

fn add_moved(w: &mut Wave, moved: Vec<String>) {
    for a in moved {
        if !w.moved.contains(&a) {
            w.moved.push(a);
        }
    }
}

/// Begin (or take up again) wave `i`.
fn start(rec: &mut Record, i: usize) -> Op {
    let w = &mut rec.waves[i];
    match w.step {
        WaveStep::Interrupted | WaveStep::Locating => {
            w.step = WaveStep::Locating;
            Op::Locate {
                wave: i,
                accounts: w.accounts.clone(),
            }
        }
        WaveStep::Pending | WaveStep::Recording => {
            w.step = WaveStep::Recording;
            Op::ReadStatuses {
                wave: i,
                accounts: w.accounts.clone(),
            }
        }
        _ => resume_op(rec, i),
    }
}

/// The operation of wave `i`'s recorded step, run again.
fn resume_op(rec: &mut Record, i: usize) -> Op {
    let w = &mut rec.waves[i];
    let accounts = w.accounts.clone();
    match w.step {
        WaveStep::Pending | WaveStep::Recording => {
            w.step = WaveStep::Recording;
            Op::ReadStatuses { wave: i, accounts }
        }
        WaveStep::Quiescing => Op::SetMaintenance { wave: i, accounts },
        WaveStep::CatchingUp => Op::ReadPositions { wave: i, accounts },
        // A promotion in doubt is never run twice: look where they live.
        WaveStep::Promoting | WaveStep::Confirming => {
            w.step = WaveStep::Confirming;
            Op::Locate { wave: i, accounts }
        }
        WaveStep::Restoring => Op::Restore {
            wave: i,
            statuses: restore_list(w),
        },
        WaveStep::Reprotecting => Op::Reprotect {
            wave: i,
            accounts: w.moved.clone(),
        },
        WaveStep::Interrupted | WaveStep::Locating => {
            w.step = WaveStep::Locating;
            Op::Locate { wave: i, accounts }
        }
        WaveStep::Done => Op::Finish(End::Done),
        WaveStep::Failed => {
            let reason = w.failure.clone().unwrap_or_default();
            finish(rec, End::Failed { reason })
        }
    }
}

/// A wave that set nothing fails: stop.
fn fail_unset(rec: &mut Record, i: usize, reason: String) -> Op {
    let w = &mut rec.waves[i];
    w.failure = Some(reason.clone());
    w.step = WaveStep::Failed;
    finish(rec, End::Failed { reason })
}

/// A quiesced wave that is not promoted: restore, then fail.
fn roll_back(w: &mut Wave, i: usize, reason: String) -> Op {
    w.failure = Some(reason);
    w.step = WaveStep::Restoring;
    Op::Restore {
        wave: i,
        statuses: restore_list(w),
    }
}

/// Wave `i` is through its restore (and re-protection): done, or failed
/// when something went wrong; then the next wave, or the end.
fn close_wave(rec: &mut Record, i: usize, now: u64) -> Op {
    let w = &mut rec.waves[i];
    if rec.stop_requested && w.moved.is_empty() {
        // Rolled back for SIGTERM: `--resume` starts it afresh.
        w.step = WaveStep::Pending;
        w.failure = None;
        w.statuses.clear();
        w.behind.clear();
        return finish(rec, End::Stopped);
    }
    if let Some(reason) = w.failure.clone() {
        w.step = WaveStep::Failed;
        return finish(rec, End::Failed { reason });
    }
    w.step = WaveStep::Done;
    if rec.stop_requested {
        return finish(rec, End::Stopped);
    }
    match current(rec) {
        Some(next) => start(rec, next),
        None => {
            let _ = now;
            finish(rec, End::Done)
        }
    }
}

fn finish(rec: &mut Record, end: End) -> Op {
    rec.end = Some(end.clone());
    Op::Finish(end)
}

/// After a crash: the waves whose statuses this switchover set and did
/// not restore, with what they get back. The driver restores them, then
/// calls [`restored_after_crash`].
pub fn to_restore(rec: &Record) -> Vec<(usize, Vec<(String, String)>)> {
    rec.waves
        .iter()
        .enumerate()
        .filter(|(_, w)| w.maintenance)
        .map(|(i, w)| (i, restore_list(w)))
        .collect()
}

/// Wave `i`'s statuses are back after a crash: `--resume` starts it by
/// looking where its accounts live.
pub fn restored_after_crash(rec: &mut Record, i: usize) {
    let w = &mut rec.waves[i];
    w.maintenance = false;
    w.restore_failures = 0;
    if !matches!(w.step, WaveStep::Done | WaveStep::Failed) {
        w.step = WaveStep::Interrupted;
    }
}

/// A crashed run (no `end`, its process gone) is taken up by `--resume`:
/// the waves that were started go through [`WaveStep::Interrupted`].
pub fn take_up(rec: &mut Record) {
    rec.end = None;
    rec.stop_requested = false;
    for w in &mut rec.waves {
        match w.step {
            WaveStep::Recording => w.step = WaveStep::Pending,
            WaveStep::Failed => {
                // A failed wave is tried again from where its accounts are.
                w.step = WaveStep::Interrupted;
                w.failure = None;
            }
            s if s != WaveStep::Done && s != WaveStep::Pending && !w.maintenance => {
                w.step = WaveStep::Interrupted;
            }
            _ => {}
        }
    }
}

/// How a switchover runs, beside its hosts and accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Accounts per wave.
    pub wave: usize,
    /// `--catch-up-timeout`, in ms.
    pub catch_up_timeout_ms: u64,
    /// Give the moved accounts a replica back on `from`.
    pub reprotect: bool,
    /// `promoteAccounts ... threads N`.
    pub threads: u32,
}

/// A new record: `accounts` in waves of `settings.wave`.
pub fn plan(id: u64, from: &str, to: &str, accounts: &[String], settings: Settings) -> Record {
    let Settings {
        wave,
        catch_up_timeout_ms,
        reprotect,
        threads,
    } = settings;
    Record {
        id,
        from: from.into(),
        to: to.into(),
        waves: accounts
            .chunks(wave.max(1))
            .map(|c| Wave {
                accounts: c.to_vec(),
                step: WaveStep::Pending,
                statuses: BTreeMap::new(),
                maintenance: false,
                quiesced_at: None,
                catch_up_ms: None,
                moved: Vec::new(),
                behind: Vec::new(),
                failure: None,
                restore_failures: 0,
                reprotect_failure: None,
            })
            .collect(),
        catch_up_timeout_ms,
        reprotect,
        threads,
        pid: None,
        stop_requested: false,
        end: None,
    }
}

/// Progress, for `status`: waves done of all, accounts moved, accounts in
/// maintenance now, the slowest catch-up so far (ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub wave: usize,
    pub waves: usize,
    pub moved: usize,
    pub accounts: usize,
    pub in_maintenance: usize,
    pub slowest_catch_up_ms: Option<u64>,
}

pub fn progress(rec: &Record) -> Progress {
    Progress {
        wave: current(rec).map_or(rec.waves.len(), |i| i + 1),
        waves: rec.waves.len(),
        moved: rec.waves.iter().map(|w| w.moved.len()).sum(),
        accounts: rec
            .waves
            .iter()
            .map(|w| w.moved.len() + w.accounts.iter().filter(|a| !w.moved.contains(a)).count())
            .sum(),
        in_maintenance: rec
            .waves
            .iter()
            .filter(|w| w.maintenance)
            .map(|w| w.statuses.len())
            .sum(),
        slowest_catch_up_ms: rec.waves.iter().filter_map(|w| w.catch_up_ms).max(),
    }
}
