//! `habeat switchover`: a planned, zero-loss move of accounts from one
//! live mailstore to the other, in waves (SPEC §4 "Switchover";
//! `switchover-never-loses`, invariant 16). The decisions are pure
//! ([`machine`]); [`drive`] runs them against the CLIs, saving the record
//! (`state_dir/switchover.json`) before every step; [`restore_after_crash`]
//! is what every habeat runs first, so that no account stays in
//! maintenance after a kill -9.

pub mod drive;
pub mod machine;

use crate::config::Config;
use crate::state::StateError;
use machine::Record;
use std::path::{Path, PathBuf};

/// The record's file in the state directory.
pub const FILE: &str = "switchover.json";

/// Where the record of `state_dir` lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The saved switchover, if any. An unreadable file is an error: it may
/// hold statuses still to restore.
pub fn load(state_dir: &Path) -> Result<Option<Record>, String> {
    let p = path(state_dir);
    match crate::state::read_nofollow(&p) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is not a switchover record: {e}", p.display())),
        Err(e) => Err(e.to_string()),
    }
}

/// Save the record atomically (before the step it names runs).
pub fn save(state_dir: &Path, rec: &Record) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(rec).unwrap_or_default();
    crate::state::write_atomic(&path(state_dir), &bytes)
}

/// True while a switchover is recorded and has not ended (running, or
/// interrupted and waiting for `--resume`).
pub fn unfinished(rec: &Record) -> bool {
    rec.end.is_none() || !machine::to_restore(rec).is_empty()
}

/// What every habeat does first (the daemon at start, any command but a
/// dry run): give back every `zimbraAccountStatus` a switchover set and
/// did not restore, because the process that set it is gone. Taken with
/// the state lock: a switchover that runs holds it for its whole run, so
/// a record found with the lock free is one whose process died. When the
/// lock is busy its holder is alive (and runs this itself when it is a
/// habeat that started after the crash).
pub async fn restore_after_crash(cfg: &Config) -> Result<usize, String> {
    let dir = &cfg.local.state_dir;
    if !path(dir).exists() {
        return Ok(0);
    }
    let Ok(_lock) = crate::state::StateLock::acquire(dir, std::time::Duration::ZERO) else {
        return Ok(0);
    };
    let Some(mut rec) = load(dir)? else {
        return Ok(0);
    };
    let pending = machine::to_restore(&rec);
    if pending.is_empty() {
        return Ok(0);
    }
    let cli = crate::act::carbonio::Carbonio::new(&cfg.carbonio).map_err(|e| e.to_string())?;
    let events = crate::sink::EventSink::open(cfg, false);
    let mut restored = 0;
    for (i, statuses) in pending {
        let pairs = drive::status_pairs(&statuses)?;
        cli.set_account_statuses(&pairs).await.map_err(|e| {
            format!(
                "a switchover left {} account(s) of wave {} in maintenance and restoring them \
                 failed: {e}; habeat tries again at its next start, or set each back by hand \
                 (zmprov ma ACCOUNT zimbraAccountStatus STATUS, the statuses are in {})",
                statuses.len(),
                i + 1,
                path(dir).display()
            )
        })?;
        machine::restored_after_crash(&mut rec, i);
        rec.pid = None;
        save(dir, &rec).map_err(|e| e.to_string())?;
        restored += statuses.len();
        let names: Vec<String> = statuses.iter().map(|(a, _)| a.clone()).collect();
        drive::journal(
            &events,
            &rec,
            "restored_after_crash",
            Some(i),
            names,
            crate::engine::Severity::Warning,
            format!(
                "switchover {}: the process running it is gone; the {} account(s) of wave {} it \
                 had set to maintenance have their statuses back; `habeat switchover --resume` \
                 goes on",
                rec.id,
                statuses.len(),
                i + 1
            ),
        );
    }
    events.close(cfg.hooks.timeout).await;
    Ok(restored)
}

/// A switchover as `status` shows it (text, `--json`, `/status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    pub id: u64,
    pub from: String,
    pub to: String,
    /// `running`, `interrupted` (its process is gone: `--resume`),
    /// `done`, `failed`, `stopped`.
    pub state: String,
    #[serde(flatten)]
    pub progress: machine::Progress,
    /// The replicas of the current wave that the last read found behind.
    pub behind: Vec<machine::Behind>,
    pub failure: Option<String>,
    /// The sentence `status` prints.
    pub message: String,
}

/// The recorded switchover of `state_dir`, as `status` shows it (`None`:
/// none recorded, or the file cannot be read, which is logged).
pub fn shown(state_dir: &Path) -> Option<Shown> {
    let rec = match load(state_dir) {
        Ok(r) => r?,
        Err(e) => {
            tracing::warn!("{e}");
            return None;
        }
    };
    let alive = rec
        .pid
        .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
    let state = match (&rec.end, alive) {
        (Some(machine::End::Done), _) => "done",
        (Some(machine::End::Failed { .. }), _) => "failed",
        (Some(machine::End::Stopped), _) => "stopped",
        (None, true) => "running",
        (None, false) => "interrupted",
    };
    let p = machine::progress(&rec);
    let cur = machine::current(&rec).and_then(|i| rec.waves.get(i));
    let failure = rec.waves.iter().find_map(|w| w.failure.clone());
    let slowest = p
        .slowest_catch_up_ms
        .map(|ms| {
            format!(
                ", slowest catch-up {}",
                humantime::format_duration(std::time::Duration::from_millis(ms))
            )
        })
        .unwrap_or_default();
    let what = match state {
        "running" => format!(
            "running, wave {} of {}, {} of {} account(s) moved, {} in maintenance now{slowest}",
            p.wave, p.waves, p.moved, p.accounts, p.in_maintenance
        ),
        "interrupted" => format!(
            "interrupted ({} of {} account(s) moved, {} in maintenance): `habeat switchover \
             --resume` goes on",
            p.moved, p.accounts, p.in_maintenance
        ),
        "done" => format!("done, {} account(s) moved{slowest}", p.moved),
        _ => format!(
            "{state} at wave {} of {} ({} of {} account(s) moved{}): `habeat switchover \
             --resume` goes on",
            p.wave,
            p.waves,
            p.moved,
            p.accounts,
            failure
                .as_ref()
                .map(|f| format!("; {f}"))
                .unwrap_or_default()
        ),
    };
    Some(Shown {
        id: rec.id,
        message: format!("switchover {} → {}: {what}", rec.from, rec.to),
        from: rec.from.clone(),
        to: rec.to.clone(),
        state: state.into(),
        behind: cur.map(|w| w.behind.clone()).unwrap_or_default(),
        failure,
        progress: p,
    })
}
