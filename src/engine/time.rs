//! Wall-clock time as plain data.
//!
//! The engine never reads a clock: the caller passes `now`. It is a wall
//! clock (not `Instant`) because it is persisted in `state.json` and must
//! keep its meaning across restarts (`promotion_block`, pause end).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (UTC). Serialized as a plain integer so
/// that `state.json` and `events.jsonl` stay easy to read with `jq`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// Convert a wall-clock reading (taken by the caller, at the edge).
    /// Times before 1970 (a broken clock) become 0.
    pub fn from_system_time(t: SystemTime) -> UnixMillis {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        UnixMillis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The same instant as a `SystemTime` (for formatting).
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// `self + d`, saturating (a huge configured duration never wraps).
    pub fn plus(self, d: Duration) -> UnixMillis {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        UnixMillis(self.0.saturating_add(ms))
    }

    /// Time elapsed from `earlier` to `self`; zero if the clock went back.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for UnixMillis {
    /// RFC 3339 in UTC, to the second: what an operator compares with logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_seconds(self.to_system_time())
        )
    }
}

/// A duration in words for messages ("1h 30m").
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}
