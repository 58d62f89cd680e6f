//! Running a survey: `getAccountStatus mailHost <peer>` through the
//! carbonio driver, the new survey saved only once it is complete
//! ([`super::store`]), and the `replicas_at_risk_changed` event when the
//! set of accounts at risk differs from the last survey's.
//!
//! Who calls it: `check` after its rounds ([`due`]), the daemon as a job
//! beside probing (never inside a round), `status`/`--dry-run` never (they
//! read the last one).

use super::{Survey, store};
use crate::act::MailHost;
use crate::act::carbonio::Carbonio;
use crate::config::Config;
use crate::engine::{Event, EventKind, Severity, State, UnixMillis};
use crate::model::{Component, Role, Verdict};
use crate::state::Pending;
use crate::state::stamp::Stamp;
use std::collections::BTreeSet;
use std::time::Duration;

/// The mailstore the survey reads: the peer appserver's
/// `appserver_vmname`.
pub fn peer_host(cfg: &Config) -> Option<String> {
    cfg.dcs
        .get(&cfg.local.dc_check)
        .and_then(|d| d.appserver_vmname.clone())
}

/// Whether a survey is due now: surveys are on (`survey_interval` > 0),
/// this node has the appserver role, the peer appserver is Up, and the
/// last survey (of that host) is older than the interval or missing.
pub fn due(cfg: &Config, state: &State, last: Option<&Survey>, now: UnixMillis) -> bool {
    let interval = cfg.replicas.survey_interval;
    if interval.is_zero()
        || !cfg.local.roles.contains(&Role::Appserver)
        || state.verdict(Component::Appserver) != Verdict::Up
    {
        return false;
    }
    let Some(host) = peer_host(cfg) else {
        return false;
    };
    match last {
        Some(s) if s.host.eq_ignore_ascii_case(&host) => {
            // A wall clock set back before the last survey makes it due:
            // waiting for the clock to pass it again could take longer
            // than any interval.
            now < s.at || Duration::from_millis(now.0.saturating_sub(s.at.0)) >= interval
        }
        _ => true,
    }
}

/// The daemon's cheap test of [`due`], once per round: the age of
/// `survey.json` from its modification time (no read of a file of
/// megabytes every round).
pub fn due_by_mtime(cfg: &Config, state: &State, now: UnixMillis) -> bool {
    let modified = std::fs::symlink_metadata(store::path(&cfg.local.state_dir))
        .and_then(|m| m.modified())
        .ok()
        .map(UnixMillis::from_system_time);
    let last = modified.map(|at| Survey::new(peer_host(cfg).unwrap_or_default(), at, Vec::new()));
    due(cfg, state, last.as_ref(), now)
}

/// Survey the peer mailstore: the listing, read strictly, complete or an
/// error (a sentence saying the last survey is kept). Writes nothing.
pub async fn fetch(
    cfg: &Config,
    carbonio: &Carbonio,
    clock: impl Fn() -> UnixMillis,
) -> Result<Survey, String> {
    let host = peer_host(cfg).ok_or_else(|| {
        format!(
            "no survey: {}.appserver_vmname is not set, so habeat does not know which mailstore to ask",
            cfg.local.dc_check
        )
    })?;
    let mail_host = MailHost::parse(&host).map_err(|e| format!("no survey of {host:?}: {e}"))?;
    let accounts = carbonio
        .survey(&mail_host, super::Builder::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(accounts.finish(host, clock()))
}

/// A survey made ready to keep off the daemon's round: the last one read
/// and compared, the new one written beside its place. [`commit`] then
/// only renames it, under the state lock.
pub struct Staged {
    /// The `replicas_at_risk_changed` event against the file in place
    /// when staged.
    event: Option<Event>,
    /// That file (`None`: there was none).
    before: Option<Stamp>,
    /// The new survey's file, fsynced, not yet in place (`None` in a dry
    /// run).
    file: Option<Pending>,
}

impl Staged {
    /// The stamp the new survey's file will have in place.
    pub fn stamp(&self, state_dir: &std::path::Path) -> Option<Stamp> {
        self.file
            .as_ref()
            .and_then(|f| Stamp::renamed(f.temp_path(), &store::path(state_dir)))
    }
}

/// Stage a complete survey (nothing written in a dry run); see [`Staged`].
pub fn stage(cfg: &Config, survey: &Survey, dry_run: bool) -> Result<Staged, String> {
    let dir = &cfg.local.state_dir;
    let before = Stamp::of(&store::path(dir));
    let event = changed(last(dir).as_ref(), survey);
    let file = if dry_run {
        None
    } else {
        Some(
            store::stage(dir, survey)
                .map_err(|e| format!("cannot keep the replica survey: {e}"))?,
        )
    };
    Ok(Staged {
        event,
        before,
        file,
    })
}

/// Keep a staged survey in place of the last one (called with the state
/// lock held); returns the `replicas_at_risk_changed` event when the set
/// of accounts at risk changed. If another habeat kept a survey since it
/// was staged, it is judged again against that one.
pub fn commit(cfg: &Config, staged: Staged, survey: &Survey) -> Result<Option<Event>, String> {
    let dir = &cfg.local.state_dir;
    let event = if Stamp::of(&store::path(dir)) == staged.before {
        staged.event
    } else {
        changed(last(dir).as_ref(), survey)
    };
    if let Some(file) = staged.file {
        file.commit()
            .map_err(|e| format!("cannot keep the replica survey: {e}"))?;
        if let Err(e) = store::clear_failure(dir) {
            tracing::warn!("{e}");
        }
    }
    Ok(event)
}

/// Keep a complete survey (unless `dry_run`) in place of the last one at
/// once: [`stage`] then [`commit`].
pub fn keep(cfg: &Config, survey: &Survey, dry_run: bool) -> Result<Option<Event>, String> {
    commit(cfg, stage(cfg, survey, dry_run)?, survey)
}

/// A finished survey of the peer's mailstore, staged, with the accounts
/// it found with no replica at all ([`unreplicated`]).
pub struct StagedSurvey {
    pub survey: std::sync::Arc<Survey>,
    pub staged: Staged,
    pub unreplicated: Vec<String>,
}

impl StagedSurvey {
    /// Stage `survey` ([`stage`]) and find its accounts with no replica;
    /// the survey back when it cannot be staged (kept the slow way, by
    /// [`keep`], it says why).
    pub fn new(cfg: &Config, survey: Survey, dry_run: bool) -> Result<StagedSurvey, Box<Survey>> {
        let Ok(staged) = stage(cfg, &survey, dry_run) else {
            return Err(Box::new(survey));
        };
        Ok(StagedSurvey {
            staged,
            unreplicated: unreplicated(&survey),
            survey: std::sync::Arc::new(survey),
        })
    }
}

/// The accounts of the peer's mailstore with no replica at all (created
/// after replication was set up): what `replicas.reprotect: auto` covers.
pub fn unreplicated(survey: &Survey) -> Vec<String> {
    survey
        .summary()
        .at_risk
        .into_iter()
        .filter(|r| r.state == crate::replica::ReplicaState::NoReplica)
        .map(|r| r.account)
        .collect()
}

fn last(dir: &std::path::Path) -> Option<Survey> {
    store::load(dir).unwrap_or_else(|e| {
        tracing::warn!("{e}");
        None
    })
}

/// The `replicas_at_risk_changed` event between two surveys, if the set of
/// accounts at risk differs (a first survey with none at risk is no
/// change).
pub fn changed(before: Option<&Survey>, now: &Survey) -> Option<Event> {
    let old: BTreeSet<String> = before
        .filter(|b| b.host.eq_ignore_ascii_case(&now.host))
        .map(|b| b.at_risk_names().into_iter().collect())
        .unwrap_or_default();
    let sum = now.summary();
    let new: BTreeSet<String> = sum.at_risk.iter().map(|r| r.account.clone()).collect();
    if old == new {
        return None;
    }
    let added: Vec<String> = new.difference(&old).cloned().collect();
    let cleared: Vec<String> = old.difference(&new).cloned().collect();
    let named: Vec<String> = sum
        .at_risk
        .iter()
        .take(20)
        .map(|r| format!("{}: {r}", r.account))
        .collect();
    let more = sum.at_risk.len().saturating_sub(named.len());
    let message = format!(
        "replicas of {}: {} of {} account(s) at risk now ({} newly, {} no longer){}{}",
        now.host,
        new.len(),
        sum.accounts,
        added.len(),
        cleared.len(),
        if named.is_empty() {
            String::new()
        } else {
            format!(": {}", named.join("; "))
        },
        if more > 0 {
            format!("; and {more} more (habeat status --verbose)")
        } else {
            String::new()
        }
    );
    Some(Event {
        operator: None,
        at: now.at,
        severity: if new.is_empty() {
            Severity::Info
        } else {
            Severity::Warning
        },
        kind: EventKind::ReplicasAtRiskChanged {
            source_mail_host: now.host.clone(),
            at_risk: sum.at_risk,
            added,
            cleared,
        },
        role: Some(Role::Appserver),
        component: Some(Component::Appserver),
        message,
    })
}

/// Record a failed survey (unless `dry_run`): `survey-failed.json` for
/// `status` and `/metrics`, and the `replica_survey_failed` event to
/// journal (a failed survey is news: with `replicas.at_risk: hold` the
/// accounts at risk are named only by a good one).
pub fn failed(cfg: &Config, reason: &str, at: UnixMillis, dry_run: bool) -> Event {
    let host = peer_host(cfg).unwrap_or_default();
    if !dry_run {
        let f = store::Failure {
            host: host.clone(),
            at,
            reason: reason.to_owned(),
        };
        if let Err(e) = store::save_failure(&cfg.local.state_dir, &f) {
            tracing::warn!("cannot record the failed replica survey: {e}");
        }
    }
    let last = match store::load(&cfg.local.state_dir) {
        Ok(Some(s)) => format!(
            "the last good survey ({}) is kept",
            super::show::ago(super::age_seconds(s.at, at))
        ),
        _ => "there is no good survey yet".to_owned(),
    };
    Event {
        at,
        severity: Severity::Warning,
        kind: EventKind::ReplicaSurveyFailed {
            source_mail_host: host.clone(),
            reason: reason.to_owned(),
        },
        role: Some(Role::Appserver),
        component: Some(Component::Appserver),
        message: format!("replica survey of {host} failed: {reason}; {last}"),
        operator: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoadEnv, load_str_with};
    use crate::engine::ComponentState;

    fn setup() -> (Config, State) {
        let cfg = load_str_with(
            "local:\n  whoami: secondary\n  dc_check: primary\nprimary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n",
            std::path::Path::new("t.yml"),
            &LoadEnv::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut state = State::new();
        state.components.insert(
            Component::Appserver,
            ComponentState {
                verdict: Verdict::Up,
                reason: String::new(),
                since: UnixMillis(0),
            },
        );
        (cfg, state)
    }

    fn survey_at(at: u64) -> Survey {
        Survey::new("mbox1.example.com", UnixMillis(at), Vec::new())
    }

    #[test]
    fn a_wall_clock_set_back_before_the_last_survey_makes_the_next_one_due() {
        let (cfg, state) = setup();
        let last = survey_at(10_000_000);
        assert!(!due(&cfg, &state, Some(&last), UnixMillis(10_060_000)));
        assert!(due(
            &cfg,
            &state,
            Some(&last),
            UnixMillis(10_000_000 - 3_600_000)
        ));
    }

    /// A survey of mbox1 where the accounts named in `at_risk` have no
    /// replica.
    fn with_at_risk(at: u64, at_risk: &[&str]) -> Survey {
        let acct = |name: &str| {
            let on = (!at_risk.contains(&name)).then_some("mbox2.example.com");
            crate::replica::Surveyed::caught_up(name, on)
        };
        Survey::new(
            "mbox1.example.com",
            UnixMillis(at),
            vec![acct("a@x"), acct("b@x")],
        )
    }

    fn added(e: &Event) -> Vec<String> {
        match &e.kind {
            EventKind::ReplicasAtRiskChanged { added, .. } => added.clone(),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn a_survey_staged_before_another_habeat_kept_one_is_judged_against_that_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut cfg, _) = setup();
        cfg.local.state_dir = dir.path().to_path_buf();
        let staged = stage(&cfg, &with_at_risk(2000, &["a@x", "b@x"]), false).expect("staged");
        // Meanwhile a `check` keeps a survey where a@x is at risk.
        let e = keep(&cfg, &with_at_risk(1000, &["a@x"]), false).expect("kept");
        assert_eq!(added(&e.expect("a change")), ["a@x"]);
        let e = commit(&cfg, staged, &with_at_risk(2000, &["a@x", "b@x"]))
            .expect("committed")
            .expect("a change");
        assert_eq!(
            added(&e),
            ["b@x"],
            "judged against the survey kept meanwhile"
        );
        let kept = store::load(dir.path()).expect("readable").expect("kept");
        assert_eq!(kept.at, UnixMillis(2000));
        assert_eq!(unreplicated(&kept), ["a@x", "b@x"]);
    }
}
