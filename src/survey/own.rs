//! The survey of this DC's own mailstore (SPEC §4, "After a failover"):
//! `getAccountStatus mailHost <own appserver_vmname>` on the same
//! `replicas.survey_interval`, in the daemon and in `check`. After a
//! promotion the promoted accounts live here with no replica at all (their
//! replica was the copy promoted): until they get a new one, the loss of
//! this mailstore loses their mail. An account is unprotected when no
//! replica of it is available and reaches Kafka
//! ([`crate::replica::protection`]).
//!
//! Kept in `state_dir/survey-own.json` (the same [`Survey`], the same
//! atomic rules as `survey.json`), the time the unprotected set became
//! non-empty in `unprotected.json`, a failed survey in
//! `survey-own-failed.json`. Whether it is due does not depend on the
//! peer: this mailstore is the one that must not be lost.

use super::{SURVEY_VERSION, Survey, store};
use crate::act::MailHost;
use crate::act::carbonio::Carbonio;
use crate::config::Config;
use crate::engine::{Event, EventKind, Severity, UnixMillis};
use crate::model::Role;
use crate::state::{StateError, read_nofollow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The survey of this DC's mailstore, inside `state_dir`.
pub const FILE: &str = "survey-own.json";
/// Since when accounts have been unprotected, inside `state_dir`.
pub const SINCE_FILE: &str = "unprotected.json";
/// The last failed survey of this DC's mailstore, inside `state_dir`.
pub const FAILED_FILE: &str = "survey-own-failed.json";
/// How many accounts an event names (the counts are always whole).
const NAMED: usize = 100;
/// The command that gives unprotected accounts a replica.
pub const FIX: &str = "habeat reprotect";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// This DC's mailstore: its own `appserver_vmname`.
pub fn own_host(cfg: &Config) -> Option<String> {
    cfg.dcs
        .get(&cfg.local.whoami)
        .and_then(|d| d.appserver_vmname.clone())
}

/// Since when the unprotected set has been non-empty (absent: it is
/// empty, or there is no survey yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    pub since: UnixMillis,
}

pub fn load(state_dir: &Path) -> Result<Option<Survey>, store::SurveyError> {
    store::load_file(path(state_dir))
}

/// Since when accounts are unprotected; an unreadable record counts as
/// none (the next survey rewrites it).
pub fn load_since(state_dir: &Path) -> Option<UnixMillis> {
    let bytes = read_nofollow(&state_dir.join(SINCE_FILE)).ok()??;
    serde_json::from_slice::<Since>(&bytes)
        .ok()
        .map(|s| s.since)
}

/// The last failed survey of this mailstore, until a good one.
pub fn load_failure(state_dir: &Path) -> Option<store::Failure> {
    let bytes = read_nofollow(&state_dir.join(FAILED_FILE)).ok()??;
    serde_json::from_slice(&bytes).ok()
}

fn remove(p: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError::io("remove", p, e)),
        _ => Ok(()),
    }
}

/// Whether a survey of this mailstore is due: surveys are on, this node
/// has the appserver role, its DC names its mailstore, and the last
/// survey of it is older than the interval (or missing, or of another
/// host, or from a wall clock set back since).
pub fn due(cfg: &Config, last: Option<&Survey>, now: UnixMillis) -> bool {
    let interval = cfg.replicas.survey_interval;
    if interval.is_zero() || !cfg.local.roles.contains(&Role::Appserver) {
        return false;
    }
    let Some(host) = own_host(cfg) else {
        return false;
    };
    match last {
        Some(s) if s.host.eq_ignore_ascii_case(&host) => {
            now < s.at || Duration::from_millis(now.0.saturating_sub(s.at.0)) >= interval
        }
        _ => true,
    }
}

/// [`due`] from the file's modification time (the daemon asks every
/// round; the file may be megabytes).
pub fn due_by_mtime(cfg: &Config, now: UnixMillis) -> bool {
    let last = std::fs::symlink_metadata(path(&cfg.local.state_dir))
        .and_then(|m| m.modified())
        .ok()
        .map(|at| Survey {
            version: SURVEY_VERSION,
            host: own_host(cfg).unwrap_or_default(),
            at: UnixMillis::from_system_time(at),
            accounts: Vec::new(),
        });
    due(cfg, last.as_ref(), now)
}

/// Survey this DC's mailstore: complete or an error. Writes nothing.
pub async fn fetch(
    cfg: &Config,
    carbonio: &Carbonio,
    clock: impl Fn() -> UnixMillis,
) -> Result<Survey, String> {
    let host = own_host(cfg).ok_or_else(|| {
        format!(
            "no survey of this DC's mailstore: {}.appserver_vmname is not set",
            cfg.local.whoami
        )
    })?;
    let mail_host = MailHost::parse(&host).map_err(|e| format!("no survey of {host:?}: {e}"))?;
    let accounts = carbonio
        .survey(&mail_host)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Survey {
        version: SURVEY_VERSION,
        host,
        at: clock(),
        accounts,
    })
}

/// Keep a complete survey of this mailstore (unless `dry_run`), with since
/// when its accounts are unprotected; returns the
/// `accounts_unprotected_changed` event when the set changed.
pub fn keep(cfg: &Config, survey: &Survey, dry_run: bool) -> Result<Option<Event>, String> {
    let dir = &cfg.local.state_dir;
    let before = load(dir).unwrap_or_else(|e| {
        tracing::warn!("{e}");
        None
    });
    let old: BTreeSet<String> = before
        .filter(|b| b.host.eq_ignore_ascii_case(&survey.host))
        .map(|b| {
            b.protection(None)
                .unprotected
                .into_iter()
                .map(|u| u.account)
                .collect()
        })
        .unwrap_or_default();
    let now = survey.protection(None);
    let since = match (now.unprotected.is_empty(), load_since(dir)) {
        (true, _) => None,
        (false, Some(s)) if !old.is_empty() => Some(s),
        (false, _) => Some(survey.at),
    };
    if !dry_run {
        let keep = || -> Result<(), StateError> {
            store::save_file(path(dir), survey)?;
            match since {
                Some(since) => store::save_small(&dir.join(SINCE_FILE), &Since { since })?,
                None => remove(&dir.join(SINCE_FILE))?,
            }
            remove(&dir.join(FAILED_FILE))
        };
        keep().map_err(|e| format!("cannot keep the survey of this DC's mailstore: {e}"))?;
    }
    let new: BTreeSet<String> = now.unprotected.iter().map(|u| u.account.clone()).collect();
    if old == new {
        return Ok(None);
    }
    let added: Vec<String> = new.difference(&old).cloned().collect();
    let cleared: Vec<String> = old.difference(&new).cloned().collect();
    let named: Vec<String> = now
        .unprotected
        .iter()
        .take(20)
        .map(|u| format!("{} ({})", u.account, u.why))
        .collect();
    let more = new.len().saturating_sub(named.len());
    let message = if new.is_empty() {
        format!(
            "every account on {} (this DC's mailstore) is protected again: {} no longer \
             unprotected",
            survey.host,
            cleared.len()
        )
    } else {
        format!(
            "{} of {} account(s) on {} (this DC's mailstore) UNPROTECTED: no replica available \
             and reaching Kafka, so losing {} loses their mail ({} newly, {} no longer): {}{}; \
             `{FIX}` gives them a replica",
            new.len(),
            now.accounts,
            survey.host,
            survey.host,
            added.len(),
            cleared.len(),
            named.join("; "),
            if more > 0 {
                format!("; and {more} more (habeat status --verbose)")
            } else {
                String::new()
            }
        )
    };
    let cap = |v: &[String]| v.iter().take(NAMED).cloned().collect::<Vec<_>>();
    Ok(Some(Event {
        operator: None,
        at: survey.at,
        severity: if new.is_empty() {
            Severity::Info
        } else {
            Severity::Warning
        },
        kind: EventKind::AccountsUnprotectedChanged {
            mail_host: survey.host.clone(),
            unprotected_count: new.len(),
            unprotected: cap(&now
                .unprotected
                .iter()
                .map(|u| u.account.clone())
                .collect::<Vec<_>>()),
            added_count: added.len(),
            added: cap(&added),
            cleared_count: cleared.len(),
            cleared: cap(&cleared),
            since,
        },
        role: Some(Role::Appserver),
        component: None,
        message,
    }))
}

/// Record a failed survey of this mailstore (unless `dry_run`); the
/// sentence to log. The last good one is kept and shown beside it.
pub fn failed(cfg: &Config, reason: &str, at: UnixMillis, dry_run: bool) -> String {
    let host = own_host(cfg).unwrap_or_default();
    if !dry_run {
        let f = store::Failure {
            host: host.clone(),
            at,
            reason: reason.to_owned(),
        };
        if let Err(e) = store::save_small(&cfg.local.state_dir.join(FAILED_FILE), &f) {
            tracing::warn!("cannot record the failed listing of {host}: {e}");
        }
    }
    format!(
        "cannot list the accounts of this DC's mailstore {host} (getAccountStatus mailHost \
         {host}): {reason}; which of them are unprotected is as of the last good listing, or \
         unknown"
    )
}
