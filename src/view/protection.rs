//! Whether the accounts are protected against the loss of this DC's own
//! mailstore (SPEC §4, "After a failover"), for `status` (its headline),
//! `status --json`, `/status` and `/metrics`: the unprotected accounts of
//! this DC's mailstore, since when, the command that fixes it, and the
//! progress of re-protection (of this mailstore's accounts, and of the
//! peer's accounts that got a replica here).

use super::human_time;
use crate::config::Config;
use crate::engine::UnixMillis;
use crate::replica::Protection;
use crate::state::stamp::{Stamp, StampCache};
use crate::survey::protect::{OnItsWay, ProtectionSummary, Unprotected};
use crate::survey::show::{SurveyFailure, ago};
use crate::survey::{Survey, age_seconds, own, store};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many unprotected accounts the headline names without `--verbose`.
pub const HEADLINE_NAMES: usize = 5;

/// The `protection` member of `status --json` and `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ProtectionShown {
    /// This DC's mailstore (`<whoami>.appserver_vmname`), `null` when not
    /// configured (then it is never surveyed).
    pub mail_host: Option<String>,
    /// The last good survey of it (`null` before the first).
    pub survey: Option<Progress>,
    /// Accounts with no replica available and reaching Kafka (0 before
    /// the first survey).
    pub unprotected_count: usize,
    /// Every one of them, with why.
    pub unprotected: Vec<Unprotected>,
    /// Since when some have been unprotected.
    pub unprotected_since: Option<UnixMillis>,
    /// The command that gives them a replica (`null` when none is
    /// unprotected).
    pub command: Option<&'static str>,
    /// The survey lists no account on this mailstore at all.
    pub nothing_replicated: bool,
    /// The peer's accounts whose replica is on this DC's mailstore, from
    /// the peer's survey (`null` without one, or none replicated here).
    pub peer_replicas_here: Option<Progress>,
    /// Why `survey-own.json` could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The survey of this mailstore that failed after the last good one.
    pub last_failure: Option<SurveyFailure>,
}

/// The progress of a survey's accounts towards protected.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub host: String,
    pub at: UnixMillis,
    pub age_seconds: u64,
    pub accounts: usize,
    /// Accounts per stage: `no_replica`, `initialising`, `catching_up`,
    /// `protected`.
    pub counts: BTreeMap<&'static str, usize>,
    /// The replicas furthest from protected, slowest first.
    pub slowest: Vec<OnItsWay>,
}

impl Progress {
    fn of(s: ProtectionSummary, now: UnixMillis) -> Progress {
        Progress {
            age_seconds: age_seconds(s.at, now),
            host: s.host,
            at: s.at,
            accounts: s.accounts,
            counts: s.counts,
            slowest: s.slowest,
        }
    }

    fn count(&self, p: Protection) -> usize {
        self.counts.get(p.as_str()).copied().unwrap_or(0)
    }

    fn on_their_way(&self) -> usize {
        self.count(Protection::Initialising) + self.count(Protection::CatchingUp)
    }

    /// `1 initialising, 2 catching up, 3 protected; slowest: ...`
    fn stages(&self) -> String {
        let mut s = format!(
            "{} initialising, {} catching up, {} protected",
            self.count(Protection::Initialising),
            self.count(Protection::CatchingUp),
            self.count(Protection::Protected),
        );
        if !self.slowest.is_empty() {
            let slow: Vec<String> = self.slowest.iter().map(OnItsWay::describe).collect();
            s.push_str(&format!("; slowest: {}", slow.join(", ")));
        }
        s
    }
}

/// Each survey's protection summary, by the file it came from: the daemon
/// builds this every round. The peer's survey is summarised as the
/// replicas it puts on this DC's mailstore, so it is cached with that host.
static OWN: StampCache<Result<Option<ProtectionSummary>, String>> = StampCache::new();
static PEER_HERE: StampCache<(Option<String>, Option<ProtectionSummary>)> = StampCache::new();

struct Summaries {
    own: Result<Option<ProtectionSummary>, String>,
    peer_here: Option<ProtectionSummary>,
}

fn summaries(cfg: &Config) -> Summaries {
    let dir = &cfg.local.state_dir;
    let own_stamp = Stamp::of(&own::path(dir));
    let own = match own_stamp.as_ref().and_then(|s| OWN.get(s)) {
        Some(o) => o,
        None => {
            let o = own::load(dir)
                .map(|s| s.map(|s| s.protection(None)))
                .map_err(|e| e.to_string());
            if let Some(stamp) = own_stamp {
                OWN.put(stamp, o.clone());
            }
            o
        }
    };
    let host = own::own_host(cfg);
    let peer_stamp = Stamp::of(&store::path(dir));
    let peer_here = match peer_stamp.as_ref().and_then(|s| PEER_HERE.get(s)) {
        Some((h, p)) if h == host => p,
        _ => {
            let p = host.as_deref().and_then(|h| {
                let peer = store::load(dir).ok().flatten()?;
                peer_here_of(&peer, h)
            });
            if let Some(stamp) = peer_stamp {
                PEER_HERE.put(stamp, (host, p.clone()));
            }
            p
        }
    };
    Summaries { own, peer_here }
}

fn peer_here_of(peer: &Survey, here: &str) -> Option<ProtectionSummary> {
    let p = peer.protection(Some(here));
    (p.accounts > 0).then_some(p)
}

/// Summarise a survey of this DC's mailstore from the file it is about
/// to become (`stamp`), rather than read it back after its rename: the
/// daemon's survey task does this, so that the round that keeps the
/// survey does not read it.
pub fn prepare_own(stamp: Stamp, survey: &Survey) {
    OWN.put(stamp, Ok(Some(survey.protection(None))));
}

/// [`prepare_own`] for a survey of the peer's mailstore.
pub fn prepare_peer(cfg: &Config, stamp: Stamp, survey: &Survey) {
    let host = own::own_host(cfg);
    let p = host.as_deref().and_then(|h| peer_here_of(survey, h));
    PEER_HERE.put(stamp, (host, p));
}

impl ProtectionShown {
    /// What the files beside the state say now.
    pub fn read(cfg: &Config, now: UnixMillis) -> ProtectionShown {
        let dir = &cfg.local.state_dir;
        let s = summaries(cfg);
        let (own, error) = match s.own {
            Ok(o) => (o, None),
            Err(e) => (None, Some(e)),
        };
        let unprotected = own
            .as_ref()
            .map(|o| o.unprotected.clone())
            .unwrap_or_default();
        ProtectionShown {
            mail_host: own::own_host(cfg),
            unprotected_count: unprotected.len(),
            unprotected_since: own::load_since(dir).filter(|_| !unprotected.is_empty()),
            command: (!unprotected.is_empty()).then_some(own::FIX),
            nothing_replicated: own.as_ref().is_some_and(|o| o.accounts == 0),
            unprotected,
            survey: own.map(|o| Progress::of(o, now)),
            peer_replicas_here: s.peer_here.map(|p| Progress::of(p, now)),
            error,
            last_failure: own::load_failure(dir).map(|f| SurveyFailure {
                age_seconds: age_seconds(f.at, now),
                host: f.host,
                at: f.at,
                reason: f.reason,
            }),
        }
    }

    /// The headline that opens `status` while accounts are unprotected:
    /// how many, since when, the first few named (all with `verbose`),
    /// and the command that fixes it. Empty otherwise.
    pub fn headline(&self, now: UnixMillis, verbose: bool) -> Vec<String> {
        if self.unprotected.is_empty() {
            return Vec::new();
        }
        let host = self.mail_host.as_deref().unwrap_or("this DC's mailstore");
        let since = self.unprotected_since.map_or(String::new(), |t| {
            format!(" since {} ({})", human_time(t), ago(age_seconds(t, now)))
        });
        let of = self.survey.as_ref().map_or(0, |s| s.accounts);
        let mut out = vec![format!(
            "UNPROTECTED: {} of {of} account(s) on {host} (this DC's mailstore) have no replica \
             that is available and reaches Kafka{since}: losing {host} now loses their mail. \
             Fix: `{}` gives each a replica on the peer's mailstore once it is Up.",
            self.unprotected.len(),
            own::FIX,
        )];
        let shown = if verbose {
            self.unprotected.len()
        } else {
            HEADLINE_NAMES
        };
        for u in self.unprotected.iter().take(shown) {
            out.push(format!("  unprotected  {:<40} {}", u.account, u.why));
        }
        let more = self.unprotected.len().saturating_sub(shown);
        if more > 0 {
            out.push(format!(
                "  ... and {more} more (`habeat status --verbose` names them all)"
            ));
        }
        out
    }

    /// The lines about this DC's mailstore and the new replicas: one
    /// summary, the progress of re-protection while replicas are on their
    /// way, a failed survey.
    pub fn lines(&self, cfg: &Config) -> Vec<String> {
        let mut out = Vec::new();
        let Some(host) = &self.mail_host else {
            return out;
        };
        if let Some(f) = &self.last_failure {
            out.push(format!(
                "WARNING: the listing of this DC's mailstore {host} FAILED {}: {}; which of its \
                 accounts are unprotected is {}",
                ago(f.age_seconds),
                f.reason,
                match &self.survey {
                    Some(s) => format!("as of the last good listing, {}", ago(s.age_seconds)),
                    None => "unknown".to_owned(),
                }
            ));
        }
        if let Some(e) = &self.error {
            out.push(format!("this DC's mailstore {host}: {e}"));
        }
        match &self.survey {
            None if cfg.replicas.survey_interval.is_zero() => {}
            None if self.error.is_none() => out.push(format!(
                "this DC's mailstore {host}: not surveyed yet (every {}; a `habeat check` makes one)",
                humantime::format_duration(cfg.replicas.survey_interval)
            )),
            None => {}
            Some(s) if s.accounts == 0 => out.push(format!(
                "this DC's mailstore {host}: no replicated account lives here, so nothing of it \
                 to protect or fail over (surveyed {})",
                ago(s.age_seconds)
            )),
            Some(s) => {
                out.push(format!(
                    "this DC's mailstore {host}: {} account(s), {} unprotected (surveyed {})",
                    s.accounts,
                    self.unprotected_count,
                    ago(s.age_seconds)
                ));
                if s.on_their_way() > 0 {
                    out.push(format!(
                        "re-protection of {host}'s accounts: {}",
                        s.stages()
                    ));
                }
            }
        }
        if let Some(p) = &self.peer_replicas_here
            && p.on_their_way() > 0
        {
            out.push(format!(
                "re-protection of {}'s accounts on {host}: {}",
                p.host,
                p.stages()
            ));
        }
        out
    }
}
