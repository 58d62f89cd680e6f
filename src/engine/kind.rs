//! The plain names that the engine's records, reasons and events share:
//! what a pipeline does, and how a reason's stable `kind` is read and
//! written. Imports nothing of the engine, so the files above it (the
//! record of pipelines, the reasons, the actions) need not import each
//! other for these.

use serde::{Deserialize, Serialize};

/// What a pipeline does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineKind {
    /// appserver: promote the peer's accounts and follow-up steps.
    Promotion,
    /// appserver on the primary DC: stop the HA module once.
    HaModuleStop,
    /// proxyserver: switch proxy traffic to this DC.
    ProxyActivation,
    /// consulserver: recover raft with this DC's servers.
    RaftRecovery,
    /// A lock file found from an earlier habeat: a finished failover.
    Adopted,
    /// Re-arm: undo locks (and the HA module stop), run recovery hooks.
    Rearm,
    /// Re-protection: accounts get a new replica, in batches.
    Reprotect,
}

impl PipelineKind {
    /// What it is, in the operator's words.
    pub fn describe(self) -> &'static str {
        match self {
            PipelineKind::Promotion => "promotion",
            PipelineKind::HaModuleStop => "HA module stop",
            PipelineKind::ProxyActivation => "proxy switch",
            PipelineKind::RaftRecovery => "raft recovery",
            PipelineKind::Adopted => "failover (found as a lock file)",
            PipelineKind::Rearm => "re-arm",
            PipelineKind::Reprotect => "re-protection",
        }
    }
}

/// The serde tag (`kind`) of a reason: its stable machine-readable name.
pub(super) fn serde_kind<T: Serialize>(reason: &T) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Read a reason saved by an earlier release, which kept it as a
/// sentence: a sentence is no reason of this one and reads as none (the
/// engine then says its reason again once).
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}
