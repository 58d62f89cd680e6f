//! Time as plain data: the wall clock and the boot clock.
//!
//! The engine never reads a clock: the caller passes [`Now`]. The wall
//! clock (`UnixMillis`) is what `state.json`, the journal and the operator
//! speak; it keeps its meaning across restarts and reboots, but it jumps
//! when it is set (NTP step, an operator's `date`). The boot clock
//! (`CLOCK_BOOTTIME`, with the kernel's boot id) never jumps and counts
//! suspend too, but means nothing in another boot. Windows and waits are
//! saved with both, and measured as docs/decisions.md says ("Which clock
//! measures what"): a safety window stays open while either clock says
//! so, a liveness wait ends when either clock says so, and a mark from
//! another boot is measured by the wall clock alone.

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

/// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): boot-clock
/// readings compare only within one boot. Saved as the UUID the kernel
/// prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootId(pub u128);

impl fmt::Display for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_u128(self.0).hyphenated().fmt(f)
    }
}

impl std::str::FromStr for BootId {
    type Err = String;
    fn from_str(s: &str) -> Result<BootId, String> {
        uuid::Uuid::parse_str(s.trim())
            .map(|u| BootId(u.as_u128()))
            .map_err(|e| format!("not a boot id ({e})"))
    }
}

impl Serialize for BootId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BootId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BootId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A reading of the boot clock: milliseconds of `CLOCK_BOOTTIME` in the
/// boot `boot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootTime {
    /// Which boot.
    pub boot: BootId,
    /// Milliseconds since that boot, suspend included.
    pub ms: u64,
}

impl BootTime {
    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> BootTime {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        BootTime {
            boot: self.boot,
            ms: self.ms.saturating_add(ms),
        }
    }
}

/// The time an engine step is fed: the wall clock, and the boot clock when
/// the caller could read it (`None`: measured by the wall clock alone, as
/// for a mark from another boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// The wall clock.
    pub wall: UnixMillis,
    /// The boot clock.
    pub boot: Option<BootTime>,
}

impl From<UnixMillis> for Now {
    /// A time with no boot clock: everything is measured by the wall.
    fn from(wall: UnixMillis) -> Now {
        Now { wall, boot: None }
    }
}

impl Now {
    /// Both clocks `d` later (a deadline saved beside its wall time).
    pub fn plus(self, d: Duration) -> Now {
        Now {
            wall: self.wall.plus(d),
            boot: self.boot.map(|b| b.plus(d)),
        }
    }

    /// The boot-clock readings of now and of `mark`, when `mark` is from
    /// this boot.
    fn same_boot(&self, mark: Option<BootTime>) -> Option<(u64, u64)> {
        match (self.boot, mark) {
            (Some(n), Some(m)) if n.boot == m.boot => Some((n.ms, m.ms)),
            _ => None,
        }
    }

    /// Whether `mark` was taken in another boot than this one (its boot
    /// clock cannot be compared: the wall clock measures it alone).
    pub fn other_boot(&self, mark: Option<BootTime>) -> bool {
        mark.is_some() && self.same_boot(mark).is_none()
    }

    /// How much of a safety window of `d` that opened at `since` (wall)
    /// and `since_boot` (boot) is left: the longer of what the two clocks
    /// say, so that no step of the wall clock ends it early. Zero once
    /// both say it is over.
    pub fn window_left(
        &self,
        since: UnixMillis,
        since_boot: Option<BootTime>,
        d: Duration,
    ) -> Duration {
        let wall = d.saturating_sub(self.wall.since(since));
        let boot = self
            .same_boot(since_boot)
            .map(|(n, m)| d.saturating_sub(Duration::from_millis(n.saturating_sub(m))))
            .unwrap_or_default();
        wall.max(boot)
    }

    /// How much of a liveness wait that ends at `until` (wall) and
    /// `until_boot` (boot) is left: the shorter of what the two clocks say,
    /// so that no step of the wall clock back lengthens it. Zero once
    /// either says it is over.
    pub fn wait_left(&self, until: UnixMillis, until_boot: Option<BootTime>) -> Duration {
        let wall = until.since(self.wall);
        match self.same_boot(until_boot) {
            Some((n, m)) => wall.min(Duration::from_millis(m.saturating_sub(n))),
            None => wall,
        }
    }

    /// `now + left` on the wall clock: when a window or wait ends, as the
    /// operator reads it.
    pub fn wall_in(&self, left: Duration) -> UnixMillis {
        self.wall.plus(left)
    }
}

/// A duration in words for messages ("1h 30m").
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}
