//! How the last survey shows: the lines of `habeat status` (a summary, each
//! account at risk named with why, the healthy ones only with
//! `--verbose`) and the `replicas` object of `status --json` and
//! `/status` (the whole classification).

use super::{ReplicaState, Survey, age_seconds, classify, store};
use crate::config::Config;
use crate::engine::UnixMillis;
use serde_json::{Value, json};

/// The last [`json`] built, by the file it was built from (path, size,
/// modification time): the daemon publishes `/status` every round, and a
/// survey of 100k accounts is megabytes to read and classify again.
type Cached = (std::path::PathBuf, u64, std::time::SystemTime, Value);
static CACHE: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);

/// The `replicas` member of `status --json` and `/status`: the last good
/// survey (`survey`, cached) and the failure after it (`last_failure`,
/// read each time: a small file).
pub fn json(cfg: &Config, now: UnixMillis) -> Value {
    let mut v = good_json(cfg, now);
    v["last_failure"] = match store::load_failure(&cfg.local.state_dir) {
        Some(f) => json!({
            "host": f.host,
            "at": f.at,
            "age_seconds": age_seconds(f.at, now),
            "reason": f.reason,
        }),
        None => Value::Null,
    };
    v
}

fn good_json(cfg: &Config, now: UnixMillis) -> Value {
    let path = store::path(&cfg.local.state_dir);
    let stamp = std::fs::symlink_metadata(&path)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    if let Some((len, mtime)) = stamp
        && let Ok(cache) = CACHE.lock()
        && let Some((p, l, t, v)) = cache.as_ref()
        && *p == path
        && *l == len
        && *t == mtime
    {
        let mut v = v.clone();
        if let Some(at) = v["survey"]["at"].as_u64() {
            v["survey"]["age_seconds"] = json!(age_seconds(UnixMillis(at), now));
        }
        return v;
    }
    let v = build(cfg, now);
    if let (Some((len, mtime)), Ok(mut cache)) = (stamp, CACHE.lock())
        && !v["survey"].is_null()
    {
        *cache = Some((path, len, mtime, v.clone()));
    }
    v
}

fn build(cfg: &Config, now: UnixMillis) -> Value {
    let interval = humantime::format_duration(cfg.replicas.survey_interval).to_string();
    let base = json!({
        "survey_interval": interval,
        "at_risk_policy": cfg.replicas.at_risk.as_str(),
    });
    let mut v = base;
    match store::load(&cfg.local.state_dir) {
        Ok(None) => v["survey"] = Value::Null,
        Err(e) => {
            v["survey"] = Value::Null;
            v["error"] = json!(e.to_string());
        }
        Ok(Some(s)) => {
            let sum = s.summary();
            let accounts: Vec<Value> = s
                .accounts
                .iter()
                .map(|a| {
                    let (states, ls, li) = classify(a);
                    json!({
                        "account": a.account,
                        "state": states[0].as_str(),
                        "also": states[1..].iter().map(|x| x.as_str()).collect::<Vec<_>>(),
                        "lag_sequence": ls,
                        "lag_item_id": li,
                        "destination": a.replica.as_ref().and_then(|r| r.destination.as_deref()),
                        "source_sequence": a.source_sequence,
                        "source_item_id": a.source_item_id,
                        "replica": a.replica,
                    })
                })
                .collect();
            v["survey"] = json!({
                "host": sum.host,
                "at": sum.at,
                "age_seconds": age_seconds(sum.at, now),
                "accounts": sum.accounts,
                "counts": sum.counts,
                "at_risk_count": sum.at_risk.len(),
                "at_risk": sum.at_risk,
                "max_lag_sequence": sum.max_lag_sequence,
                "max_lag_item_id": sum.max_lag_item_id,
                "destinations": sum.destinations,
                "nothing_to_fail_over": s.accounts.is_empty(),
                "warning": nothing_to_fail_over(&s),
            });
            v["accounts"] = Value::Array(accounts);
        }
    }
    v
}

/// The warning for a survey that found nothing a promotion could move: no
/// replicated account at all. A failover would then bring no mailbox
/// back, so this is never shown as healthy.
pub fn nothing_to_fail_over(s: &Survey) -> Option<String> {
    if !s.accounts.is_empty() {
        return None;
    }
    Some(format!(
        "nothing to fail over: the survey of {} lists no replicated account, so a promotion \
         would move no mailbox; set up the replicas of its accounts in Carbonio \
         (`getAccountStatus mailHost {}` lists them) before relying on habeat",
        s.host, s.host
    ))
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
        .map(|(d, n)| format!("{n} to {d}"))
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
        for a in &s.accounts {
            if classify(a).0[0] == ReplicaState::Ok {
                let dest = a
                    .replica
                    .as_ref()
                    .and_then(|r| r.destination.as_deref())
                    .unwrap_or("?");
                out.push(format!("  ok       {:<40} replica on {dest}", a.account));
            }
        }
    } else if sum.counts.get("ok").copied().unwrap_or(0) > 0 {
        out.push(format!(
            "  ({} healthy account(s) not listed; --verbose lists them)",
            sum.counts["ok"]
        ));
    }
    out
}
