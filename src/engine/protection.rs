//! What re-protection keeps and is fed, as data (the rules are
//! `reprotect.rs`'s): a diverged account with its gap, the promotion the
//! daemon re-protects once the peer is back, the operator's request and
//! the accounts it names in `--discard-diverged`. A leaf: the state, the
//! events and the configuration name these types without reaching the
//! pipeline that uses them.

use super::time::UnixMillis;
use crate::model::Observation;
use serde::{Deserialize, Serialize};

/// Accounts per `setAccountDestination` call unless told otherwise.
pub const DEFAULT_BATCH: usize = 100;

/// The `setAccountDestination` priority unless told otherwise.
pub const DEFAULT_PRIORITY: u32 = 10;

/// An account whose replica was at risk when it was promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diverged {
    pub account: String,
    /// The mailstore it was promoted from: the one that may hold the only
    /// copy of its lost tail.
    pub mail_host: String,
    /// How far its replica was behind: source minus replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<u64>,
    /// Why its replica was at risk, in words.
    pub why: String,
    /// The promotion pipeline that recorded it.
    pub promotion: u64,
    pub at: UnixMillis,
}

impl Diverged {
    /// `behind by 12 sequence and 3 itemId` (or why it was at risk).
    pub fn gap(&self) -> String {
        match (self.sequence, self.item_id) {
            (None, None) => self.why.clone(),
            (s, i) => format!(
                "behind by {} sequence and {} itemId",
                s.unwrap_or(0),
                i.unwrap_or(0)
            ),
        }
    }
}

/// The promotion whose accounts the daemon re-protects once the peer is
/// back (`replicas.reprotect: auto`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterPromotion {
    pub pipeline: u64,
    pub at: UnixMillis,
    /// The old mailstore: where the replicas go once it is back.
    pub source_mail_host: String,
    pub accounts: Vec<String>,
}

/// Which diverged accounts the operator names (`--discard-diverged`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discard {
    #[default]
    None,
    All,
    Named(Vec<String>),
}

impl Discard {
    pub(super) fn names(&self, account: &str) -> bool {
        match self {
            Discard::None => false,
            Discard::All => true,
            Discard::Named(n) => n.iter().any(|a| a.eq_ignore_ascii_case(account)),
        }
    }
}

/// `habeat reprotect`, as the engine is fed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprotectRequest {
    /// The mailstore the replicas go to.
    pub destination: String,
    pub priority: u32,
    /// The accounts to re-protect (read live, or named by the operator).
    pub accounts: Vec<String>,
    #[serde(default)]
    pub discard: Discard,
    /// Accounts per batch.
    pub batch: usize,
    /// A fresh probe round of the destination's appserver witnesses;
    /// `None` when the destination is this DC's own mailstore.
    #[serde(default)]
    pub evidence: Option<Vec<Observation>>,
}
