//! How the last survey shows: the lines of `habeat status` (a summary, each
//! account at risk named with why, the healthy ones only with
//! `--verbose`) and the `replicas` object of `status --json` and
//! `/status`: the counts and the accounts at risk, and every account only
//! when asked (`status --json --accounts all`, `/status?accounts=all`), so
//! that what is shown each round stays the size of the accounts at risk.

use super::{ReplicaSeen, ReplicaState, Risk, Survey, age_seconds, classify, store};
use crate::config::Config;
use crate::engine::UnixMillis;
use crate::state::stamp::{Stamp, StampCache};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `replicas` member of `status --json` and `/status`: the last good
/// survey and the failure after it.
#[derive(Debug, Clone, Serialize)]
pub struct Replicas {
    /// `replicas.survey_interval`, in words.
    pub survey_interval: String,
    /// `replicas.at_risk`.
    pub at_risk_policy: &'static str,
    /// The last good survey's summary (`null` before the first).
    pub survey: Option<SurveySummary>,
    /// Why `survey.json` could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every account of the last good survey, classified: only when asked
    /// ([`with_accounts`]), written from the survey as it is serialized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AllAccounts>,
    /// The survey that failed after the last good one (`null`: none).
    pub last_failure: Option<SurveyFailure>,
}

/// Every account of a survey as `replicas.accounts` lists them: those at
/// risk first, then the healthy ones, each in the CLI's order (of
/// which the survey keeps no replica fields: `replica` is `null`).
#[derive(Debug, Clone)]
pub struct AllAccounts(pub Arc<Survey>);

impl Serialize for AllAccounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let survey = &*self.0;
        let mut seq = s.serialize_seq(Some(survey.len()))?;
        for a in &survey.at_risk {
            let (states, ls, li) = classify(a);
            seq.serialize_element(&AccountShown {
                account: &a.account,
                state: states[0].as_str(),
                also: states[1..].iter().map(|x| x.as_str()).collect(),
                lag_sequence: ls,
                lag_item_id: li,
                destination: a.replica.as_ref().and_then(|r| r.destination.as_deref()),
                source_sequence: a.source_sequence,
                source_item_id: a.source_item_id,
                replica: a.replica.as_ref(),
            })?;
        }
        for h in survey.healthy.iter() {
            seq.serialize_element(&AccountShown {
                account: h.account,
                state: ReplicaState::Ok.as_str(),
                also: Vec::new(),
                lag_sequence: None,
                lag_item_id: None,
                destination: h.destination,
                source_sequence: h.source_sequence,
                source_item_id: h.source_item_id,
                replica: None,
            })?;
        }
        seq.end()
    }
}

/// What the last good survey found, in figures.
#[derive(Debug, Clone, Serialize)]
pub struct SurveySummary {
    pub host: String,
    pub at: UnixMillis,
    pub age_seconds: u64,
    /// How many accounts were surveyed.
    pub accounts: usize,
    /// Accounts per class, every class present.
    pub counts: BTreeMap<&'static str, usize>,
    pub at_risk_count: usize,
    pub at_risk: Vec<Risk>,
    pub max_lag_sequence: u64,
    pub max_lag_item_id: u64,
    pub destinations: BTreeMap<String, usize>,
    pub nothing_to_fail_over: bool,
    pub warning: Option<String>,
}

/// One account of the survey with its class.
#[derive(Debug, Clone, Serialize)]
pub struct AccountShown<'a> {
    pub account: &'a str,
    pub state: &'static str,
    pub also: Vec<&'static str>,
    pub lag_sequence: Option<u64>,
    pub lag_item_id: Option<u64>,
    pub destination: Option<&'a str>,
    pub source_sequence: Option<u64>,
    pub source_item_id: Option<u64>,
    pub replica: Option<&'a ReplicaSeen>,
}

/// A survey that failed.
#[derive(Debug, Clone, Serialize)]
pub struct SurveyFailure {
    pub host: String,
    pub at: UnixMillis,
    pub age_seconds: u64,
    pub reason: String,
}

/// The [`Replicas`] built from a good survey, by the file it was built
/// from: the daemon publishes `/status` every round.
type Built = (Replicas, Option<Arc<Survey>>);
static CACHE: StampCache<Built> = StampCache::new();

/// The replicas as `status --json` and `/status` show them: the last good
/// survey (cached) and the failure after it (read each time: a small
/// file).
pub fn replicas(cfg: &Config, now: UnixMillis) -> Replicas {
    replicas_with(cfg, now, false)
}

/// [`replicas`] with every account of the last good survey
/// (`replicas.accounts`).
pub fn with_accounts(cfg: &Config, now: UnixMillis) -> Replicas {
    replicas_with(cfg, now, true)
}

fn replicas_with(cfg: &Config, now: UnixMillis, all: bool) -> Replicas {
    let (mut r, survey) = good(cfg, now);
    if all {
        r.accounts = survey.map(AllAccounts);
    }
    r.last_failure = store::load_failure(&cfg.local.state_dir).map(|f| SurveyFailure {
        age_seconds: age_seconds(f.at, now),
        host: f.host,
        at: f.at,
        reason: f.reason,
    });
    r
}

fn good(cfg: &Config, now: UnixMillis) -> (Replicas, Option<Arc<Survey>>) {
    let stamp = Stamp::of(&store::path(&cfg.local.state_dir));
    if let Some((mut r, survey)) = stamp.as_ref().and_then(|s| CACHE.get(s)) {
        if let Some(s) = &mut r.survey {
            s.age_seconds = age_seconds(s.at, now);
        }
        return (r, survey);
    }
    let (r, survey) = build(cfg, now);
    if let Some(stamp) = stamp
        && r.survey.is_some()
    {
        CACHE.put(stamp, (r.clone(), survey.clone()));
    }
    (r, survey)
}

/// Show `survey` from the file it is about to become (`stamp`), built
/// now rather than read back after its rename: the daemon's survey task
/// does this, so that the round that keeps the survey does not read it.
pub fn prepare(cfg: &Config, stamp: Stamp, survey: Arc<Survey>) {
    let mut r = empty(cfg);
    r.survey = Some(summary_of(&survey, survey.at));
    CACHE.put(stamp, (r, Some(survey)));
}

fn empty(cfg: &Config) -> Replicas {
    Replicas {
        survey_interval: humantime::format_duration(cfg.replicas.survey_interval).to_string(),
        at_risk_policy: cfg.replicas.at_risk.as_str(),
        survey: None,
        error: None,
        accounts: None,
        last_failure: None,
    }
}

fn summary_of(s: &Survey, now: UnixMillis) -> SurveySummary {
    let sum = s.summary();
    SurveySummary {
        age_seconds: age_seconds(sum.at, now),
        host: sum.host,
        at: sum.at,
        accounts: sum.accounts,
        counts: sum.counts,
        at_risk_count: sum.at_risk.len(),
        at_risk: sum.at_risk,
        max_lag_sequence: sum.max_lag_sequence,
        max_lag_item_id: sum.max_lag_item_id,
        destinations: sum.destinations,
        nothing_to_fail_over: s.is_empty(),
        warning: nothing_to_fail_over(s),
    }
}

fn build(cfg: &Config, now: UnixMillis) -> (Replicas, Option<Arc<Survey>>) {
    let mut r = empty(cfg);
    match store::load(&cfg.local.state_dir) {
        Ok(None) => {}
        Err(e) => r.error = Some(e.to_string()),
        Ok(Some(s)) => {
            r.survey = Some(summary_of(&s, now));
            return (r, Some(Arc::new(s)));
        }
    }
    (r, None)
}

/// The warning for a survey that found nothing a promotion could move: no
/// replicated account at all. A failover would then bring no mailbox
/// back, so this is never shown as healthy.
pub fn nothing_to_fail_over(s: &Survey) -> Option<String> {
    if !s.is_empty() {
        return None;
    }
    Some(format!(
        "nothing to fail over: the survey of {} lists no replicated account, so a promotion \
         would move no mailbox; set up the replicas of its accounts in Carbonio \
         (`getAccountStatus mailHost {}` lists them) before relying on habeat",
        s.host, s.host
    ))
}

/// What an empty survey of `host` means once habeat has promoted its
/// accounts away (they live on this DC's mailstore now): not a mailstore
/// never replicated, so not the advice to set replicas up there.
pub fn promoted_away(host: &str) -> String {
    format!(
        "the survey of {host} lists no replicated account: habeat promoted them to this DC's \
         mailstore, where they live now (see this DC's mailstore below); they return with \
         `habeat reprotect` then `habeat switchover --to {host}` (docs/install.md §8)"
    )
}

/// Whether the last promotion habeat recorded moved the accounts away
/// from `host` (kept after a re-arm: the accounts stay here until a
/// switchover takes them home, which fills `host`'s survey again).
pub fn last_promoted_from(state: &crate::engine::State, host: &str) -> bool {
    state
        .last_promotion
        .as_ref()
        .is_some_and(|p| p.source_mail_host.eq_ignore_ascii_case(host))
}

/// How long ago, in words (`3 min ago`).
pub fn ago(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=5999 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

/// The summary line and the accounts at risk, for `status`.
pub fn lines(cfg: &Config, now: UnixMillis, verbose: bool) -> Vec<String> {
    let good = store::load(&cfg.local.state_dir);
    let Some(f) = store::load_failure(&cfg.local.state_dir) else {
        return good_lines(good, cfg, now, verbose);
    };
    let last = match &good {
        Ok(Some(s)) => format!(
            "the last good survey, {}, is shown below",
            ago(age_seconds(s.at, now))
        ),
        _ => "there is no good survey: which accounts are at risk is unknown".to_owned(),
    };
    let mut out = vec![format!(
        "WARNING: the replica survey of {} FAILED {}: {}; {last}; `habeat history` has each \
         failure, the next survey is tried every {}",
        f.host,
        ago(age_seconds(f.at, now)),
        f.reason,
        humantime::format_duration(cfg.replicas.survey_interval)
    )];
    if let Ok(Some(s)) = &good {
        out.extend(survey_lines(s, now, verbose));
    }
    out
}

fn good_lines(
    good: Result<Option<Survey>, store::SurveyError>,
    cfg: &Config,
    now: UnixMillis,
    verbose: bool,
) -> Vec<String> {
    match good {
        Ok(Some(s)) => survey_lines(&s, now, verbose),
        Ok(None) if cfg.replicas.survey_interval.is_zero() => {
            vec!["replicas: no survey (replicas.survey_interval is 0: never)".into()]
        }
        Ok(None) => vec![format!(
            "replicas: no survey yet (every {} while the peer appserver is Up; a `habeat check` makes one)",
            humantime::format_duration(cfg.replicas.survey_interval)
        )],
        Err(e) => vec![format!("replicas: {e}")],
    }
}

/// [`lines`] for one survey.
pub fn survey_lines(s: &Survey, now: UnixMillis, verbose: bool) -> Vec<String> {
    let sum = s.summary();
    let moves: Vec<String> = sum
        .destinations
        .iter()
        .map(|(d, n)| match d.as_str() {
            // Accounts without a replica (or one without a destination)
            // stay where they are.
            "(none)" => format!("{n} nowhere (no replica)"),
            d => format!("{n} to {d}"),
        })
        .collect();
    let when = ago(age_seconds(sum.at, now));
    if let Some(w) = nothing_to_fail_over(s) {
        return vec![format!("WARNING: {w} (surveyed {when})")];
    }
    let mut out = vec![format!(
        "replicas of {}: {} accounts, {} at risk (surveyed {when}); promotion would move {}",
        sum.host,
        sum.accounts,
        sum.at_risk.len(),
        if moves.is_empty() {
            "no account (none has a replica)".to_owned()
        } else {
            moves.join(", ")
        }
    )];
    for r in &sum.at_risk {
        out.push(format!("  at risk  {:<40} {r}", r.account));
    }
    if verbose {
        for a in s.healthy.iter() {
            let dest = a.destination.unwrap_or("?");
            out.push(format!("  ok       {:<40} replica on {dest}", a.account));
        }
    } else if sum.counts.get("ok").copied().unwrap_or(0) > 0 {
        out.push(format!(
            "  ({} healthy account(s) not listed; --verbose lists them)",
            sum.counts["ok"]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::Surveyed;

    #[test]
    fn accounts_without_a_replica_stay_and_the_sentence_says_so() {
        let s = Survey::new(
            "mbox1.example.com",
            UnixMillis(0),
            vec![Surveyed {
                account: "a@x".into(),
                source_sequence: Some(1),
                source_item_id: Some(1),
                source_paused: false,
                replica: None,
                replicas: 0,
                unreadable: Vec::new(),
            }],
        );
        let lines = survey_lines(&s, UnixMillis(0), false);
        assert!(
            lines[0].ends_with("promotion would move 1 nowhere (no replica)"),
            "{lines:?}"
        );
    }
}
