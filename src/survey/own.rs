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

use super::{Survey, store};
use crate::act::MailHost;
use crate::act::carbonio::Carbonio;
use crate::config::Config;
use crate::engine::{Event, EventKind, Severity, UnixMillis};
use crate::model::Role;
use crate::state::stamp::Stamp;
use crate::state::{Pending, StateError, read_nofollow};
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
        .map(|at| {
            Survey::new(
                own_host(cfg).unwrap_or_default(),
                UnixMillis::from_system_time(at),
                Vec::new(),
            )
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
    let built = carbonio
        .survey(&mail_host, crate::survey::Builder::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(built.finish(host, clock()))
}

/// A survey of this mailstore made ready to keep off the daemon's round:
/// the last one read and compared, the new one written beside its place.
/// [`commit`] then only renames it, under the state lock.
pub struct Staged {
    /// What the survey says against the file in place when staged.
    judged: Judged,
    /// That file (`None`: there was none).
    before: Option<Stamp>,
    /// The new survey's file, fsynced, not yet in place (`None` in a dry
    /// run).
    file: Option<Pending>,
}

impl Staged {
    /// The stamp the new survey's file will have in place.
    pub fn stamp(&self, state_dir: &Path) -> Option<Stamp> {
        self.file
            .as_ref()
            .and_then(|f| Stamp::renamed(f.temp_path(), &path(state_dir)))
    }
}

/// Since when the accounts are unprotected, and the event if the set
/// changed, against the survey kept now.
struct Judged {
    since: Option<UnixMillis>,
    event: Option<Event>,
}

/// Stage a complete survey of this mailstore (nothing written in a dry
/// run); see [`Staged`].
pub fn stage(cfg: &Config, survey: &Survey, dry_run: bool) -> Result<Staged, String> {
    let dir = &cfg.local.state_dir;
    let before = Stamp::of(&path(dir));
    let judged = judge(dir, survey);
    let file = if dry_run {
        None
    } else {
        let p = path(dir);
        let file = store::encode(&p, survey).and_then(|bytes| Pending::write(&p, &bytes));
        Some(file.map_err(|e| format!("cannot keep the survey of this DC's mailstore: {e}"))?)
    };
    Ok(Staged {
        judged,
        before,
        file,
    })
}

/// Keep a staged survey in place of the last one, with since when its
/// accounts are unprotected (called with the state lock held); returns
/// the `accounts_unprotected_changed` event when the set changed. If
/// another habeat kept a survey since it was staged, it is judged again
/// against that one.
pub fn commit(cfg: &Config, staged: Staged, survey: &Survey) -> Result<Option<Event>, String> {
    let dir = &cfg.local.state_dir;
    let Judged { since, event } = if Stamp::of(&path(dir)) == staged.before {
        staged.judged
    } else {
        judge(dir, survey)
    };
    if let Some(file) = staged.file {
        let keep = || -> Result<(), StateError> {
            file.commit()?;
            if load_since(dir) != since {
                match since {
                    Some(since) => store::save_small(&dir.join(SINCE_FILE), &Since { since })?,
                    None => remove(&dir.join(SINCE_FILE))?,
                }
            }
            remove(&dir.join(FAILED_FILE))
        };
        keep().map_err(|e| format!("cannot keep the survey of this DC's mailstore: {e}"))?;
    }
    Ok(event)
}

/// Keep a complete survey of this mailstore (unless `dry_run`) at once:
/// [`stage`] then [`commit`].
pub fn keep(cfg: &Config, survey: &Survey, dry_run: bool) -> Result<Option<Event>, String> {
    commit(cfg, stage(cfg, survey, dry_run)?, survey)
}

fn judge(dir: &Path, survey: &Survey) -> Judged {
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
    Judged {
        since,
        event: changed(survey, &old, &now, since),
    }
}

fn changed(
    survey: &Survey,
    old: &BTreeSet<String>,
    now: &super::protect::ProtectionSummary,
    since: Option<UnixMillis>,
) -> Option<Event> {
    let new: BTreeSet<String> = now.unprotected.iter().map(|u| u.account.clone()).collect();
    if *old == new {
        return None;
    }
    let added: Vec<String> = new.difference(old).cloned().collect();
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
    Some(Event {
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
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoadEnv, load_str_with};
    use crate::replica::Surveyed;

    fn cfg(dir: &Path) -> Config {
        let mut cfg = load_str_with(
            "local:\n  whoami: secondary\n  dc_check: primary\nprimary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\nsecondary:\n  appserver_vmname: mbox2.example.com\n",
            Path::new("t.yml"),
            &LoadEnv::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        cfg.local.state_dir = dir.to_path_buf();
        cfg
    }

    /// `protected`: which of a@x and b@x have a usable replica.
    fn survey(at: u64, protected: &[bool]) -> Survey {
        let acct =
            |name: &str, ok: bool| Surveyed::caught_up(name, ok.then_some("mbox1.example.com"));
        Survey::new(
            "mbox2.example.com",
            UnixMillis(at),
            vec![acct("a@x", protected[0]), acct("b@x", protected[1])],
        )
    }

    fn counts(e: &Event) -> (usize, usize, usize, Option<UnixMillis>) {
        match &e.kind {
            EventKind::AccountsUnprotectedChanged {
                unprotected_count,
                added_count,
                cleared_count,
                since,
                ..
            } => (*unprotected_count, *added_count, *cleared_count, *since),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn since_is_when_the_set_became_non_empty_and_each_change_is_an_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(dir.path());
        let keep = |s: &Survey| keep(&cfg, s, false).unwrap_or_else(|e| panic!("{e}"));
        // Both protected from the start: no change, no record.
        assert!(keep(&survey(500, &[true, true])).is_none());
        assert_eq!(load_since(dir.path()), None);
        let e = keep(&survey(1000, &[false, false])).expect("a change");
        assert_eq!(counts(&e), (2, 2, 0, Some(UnixMillis(1000))));
        assert_eq!(e.severity, Severity::Warning);
        assert!(e.message.contains(FIX), "{}", e.message);
        // Same set: no event, since unchanged.
        assert!(keep(&survey(1500, &[false, false])).is_none());
        let e = keep(&survey(2000, &[true, false])).expect("a change");
        assert_eq!(counts(&e), (1, 0, 1, Some(UnixMillis(1000))));
        assert_eq!(load_since(dir.path()), Some(UnixMillis(1000)));
        let e = keep(&survey(3000, &[true, true])).expect("a change");
        assert_eq!(counts(&e), (0, 0, 1, None));
        assert_eq!(e.severity, Severity::Info);
        assert_eq!(load_since(dir.path()), None);
        let e = keep(&survey(4000, &[false, true])).expect("a change");
        assert_eq!(counts(&e).3, Some(UnixMillis(4000)));
        // A dry run judges but writes nothing.
        let before = std::fs::read(path(dir.path())).expect("survey-own.json");
        assert!(super::keep(&cfg, &survey(5000, &[true, true]), true).is_ok());
        assert_eq!(std::fs::read(path(dir.path())).expect("kept"), before);
        assert_eq!(load_since(dir.path()), Some(UnixMillis(4000)));
    }

    #[test]
    fn a_survey_staged_before_another_habeat_kept_one_is_judged_against_that_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(dir.path());
        assert!(keep(&cfg, &survey(500, &[true, true]), false).is_ok());
        // Staged against "all protected": a staged change of both.
        let staged = stage(&cfg, &survey(2000, &[false, false]), false).expect("staged");
        let stamp = staged.stamp(dir.path()).expect("its stamp");
        // Meanwhile a `check` keeps a survey where a@x is unprotected.
        let e = keep(&cfg, &survey(1000, &[false, true]), false).expect("kept");
        assert_eq!(
            counts(&e.expect("a change")),
            (1, 1, 0, Some(UnixMillis(1000)))
        );
        let e = commit(&cfg, staged, &survey(2000, &[false, false]))
            .expect("committed")
            .expect("a change");
        // Against the one kept meanwhile: b@x is the only new one, and the
        // set has been non-empty since that survey.
        assert_eq!(counts(&e), (2, 1, 0, Some(UnixMillis(1000))));
        assert_eq!(load_since(dir.path()), Some(UnixMillis(1000)));
        assert_eq!(
            crate::state::stamp::Stamp::of(&path(dir.path())),
            Some(stamp)
        );
        let kept = load(dir.path()).expect("readable").expect("kept");
        assert_eq!(kept.at, UnixMillis(2000));
    }

    #[test]
    fn a_staged_survey_never_kept_leaves_neither_file_nor_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(dir.path());
        assert!(keep(&cfg, &survey(500, &[true, true]), false).is_ok());
        let before: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        drop(stage(&cfg, &survey(2000, &[false, false]), false).expect("staged"));
        let after: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(before, after);
        assert_eq!(
            load(dir.path()).expect("readable").expect("kept").at,
            UnixMillis(500)
        );
    }
}
