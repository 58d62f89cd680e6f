//! What the serving lease shows: the [`LeaseStatus`] the keeper publishes
//! for `/status` and `/metrics`, and `lease.json` as `habeat status` (a
//! process other than the daemon) reads it back.

use super::machine::{FenceFailure, FenceRun, Phase, Saved, fence_retry_delay};
pub use crate::config::serving_lease::lease_key;

use crate::config::Config;
use crate::model::{Component, Round, Vote};
use serde::Serialize;
use std::time::{Duration, UNIX_EPOCH};

/// The lease file in `state_dir`.
pub const FILE: &str = "lease.json";

/// What `status` and `/metrics` show of the lease.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaseStatus {
    pub key: String,
    pub phase: Phase,
    pub held: bool,
    pub fenced: bool,
    /// The `on_fence` hooks failed and have not succeeded since.
    pub fence_failed: Option<FenceFailure>,
    /// What the operator should know (and do), in words.
    pub message: String,
    /// Renewals failing since when, and the last error.
    pub renewals_failing: Option<Failing>,
}

/// Renewals of the lease failing (the Consul agent down, no leader, the
/// token refused): since when (seconds since the epoch) and the last
/// error. Kept in `lease.json` beside [`Saved`] so that `habeat status`,
/// another process, can say so: a lease that cannot renew must not read
/// as a healthy one.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Failing {
    pub since_unix: u64,
    pub error: String,
}

impl Failing {
    pub(super) fn sentence(&self) -> String {
        let since = UNIX_EPOCH + Duration::from_secs(self.since_unix);
        format!(
            "renewals failing since {} ({})",
            humantime::format_rfc3339_seconds(since),
            self.error
        )
    }
}

/// `lease.json` as the keeper writes it: the machine's [`Saved`] and, while
/// renewals fail, [`Failing`].
#[derive(Serialize)]
pub(super) struct OnDisk<'a> {
    #[serde(flatten)]
    pub(super) saved: &'a Saved,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) renewals_failing: Option<&'a Failing>,
}

/// What `status` says of a fence that is owed (due, running, interrupted
/// or failed) or done; `None` when not fenced or fenced after a promotion
/// with the hooks done (that has its own message).
pub(super) fn fence_message(key: &str, saved: &Saved) -> Option<String> {
    if !saved.fenced {
        return None;
    }
    if saved.fence == Some(FenceRun::Done) {
        return (!saved.stuck)
            .then(|| format!("FENCED: the serving lease {key} was lost (hooks.on_fence ran)"));
    }
    Some(match &saved.fence_failed {
        Some(f) => format!(
            "FENCE FAILED since {} ({} run(s)): the serving lease {key} was lost and \
             hooks.on_fence has not succeeded, so this side may still serve beside a promoted \
             secondary. Last error: {}. habeat runs the hooks again (next in at most {}); fix \
             the hook (habeat history, the daemon's log) or do its steps by hand",
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(f.since_unix)),
            f.attempts,
            f.error,
            humantime::format_duration(fence_retry_delay(f.attempts)),
        ),
        None => format!(
            "FENCING: the serving lease {key} was lost and hooks.on_fence has not finished yet \
             (running, or interrupted: habeat runs it again when it starts)"
        ),
    })
}

/// The lease as `state_dir/lease.json` last recorded it, as `habeat
/// status` (another process than the daemon) shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileStatus {
    /// The lease configured now (`None`: no lease, yet fenced under one).
    pub key: Option<String>,
    pub fenced: bool,
    /// Fenced after a promotion: only the operator unfences.
    pub stuck: bool,
    /// The fence's progress, with a lease configured.
    #[serde(flatten)]
    pub fence: Option<FenceShown>,
    /// What the operator should know (and do), in words.
    pub message: String,
}

/// The fence of [`FileStatus`]: `none`, `done`, `due` or `failed`, the
/// failure while it is owed, and failing renewals.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FenceShown {
    pub fence: &'static str,
    pub fence_failed_since: Option<u64>,
    pub fence_attempts: Option<u32>,
    pub fence_error: Option<String>,
    pub renewals_failing: Option<Failing>,
}

/// [`FileStatus`] of `state_dir/lease.json`: `None` without a lease.
pub fn file_status(cfg: &Config) -> Option<FileStatus> {
    let path = cfg.local.state_dir.join(FILE);
    let bytes = match crate::state::read_nofollow(&path) {
        Ok(Some(b)) => Some(b),
        _ => None,
    };
    let saved: Option<Saved> = bytes.as_ref().and_then(|b| serde_json::from_slice(b).ok());
    let failing: Option<Failing> = bytes
        .as_ref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| serde_json::from_value(v.get("renewals_failing")?.clone()).ok());
    let saved = saved.unwrap_or_default();
    let (fenced, stuck) = (saved.fenced, saved.stuck);
    let Some(key) = lease_key(cfg) else {
        // No lease configured now, but this side was fenced under one
        // (lease.enabled turned off, by a reload or a restart): nothing
        // will run hooks.on_unfence, and the fence stands until the
        // operator lifts it.
        return fenced.then(|| FileStatus {
            key: None,
            fenced: true,
            stuck,
            fence: None,
            message: format!(
                "FENCED: {} says this side was fenced when the serving lease was lost, and no \
                 lease is configured now (lease.enabled off): hooks.on_unfence will not run. \
                 Undo the on_fence steps by hand, then remove {}",
                path.display(),
                path.display()
            ),
        });
    };
    let owed = fenced && saved.fence != Some(FenceRun::Done);
    let fence = match (fenced, owed, &saved.fence_failed) {
        (false, _, _) => "none",
        (true, false, _) => "done",
        (true, true, None) => "due",
        (true, true, Some(_)) => "failed",
    };
    // The same order as `Lease::phase`: a failed fence first, then the
    // promotion meanwhile, then the fence's progress.
    let first = !stuck || (owed && saved.fence_failed.is_some());
    let message = if let Some(m) = fence_message(&key, &saved).filter(|_| first) {
        m
    } else if stuck {
        format!(
            "FENCED after a promotion: {key} was lost and the secondary promoted meanwhile; fail \
             the accounts back, undo the on_fence steps by hand, then remove {}",
            path.display()
        )
    } else if let Some(f) = &failing {
        format!(
            "serving lease {key}: not fenced, but {}; this side fences itself lease.ttl - \
             lease.ttl/3 after the last renewal unless a witness sees the secondary Up: check \
             the Consul agent and consul.token",
            f.sentence()
        )
    } else {
        format!("serving lease {key}: not fenced")
    };
    let failed = saved.fence_failed.as_ref().filter(|_| owed);
    Some(FileStatus {
        key: Some(key),
        fenced,
        stuck,
        fence: Some(FenceShown {
            fence,
            fence_failed_since: failed.map(|f| f.since_unix),
            fence_attempts: failed.map(|f| f.attempts),
            fence_error: failed.map(|f| f.error.clone()),
            renewals_failing: failing,
        }),
        message,
    })
}

/// Whether a witness of this round voted Up for the peer's mailstore.
pub fn peer_mailstore_up(round: &Round) -> bool {
    round
        .observations
        .iter()
        .any(|o| o.witness.component == Component::Appserver && o.vote == Vote::Up)
}
