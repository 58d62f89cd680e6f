//! What was built from a file, cached by the file's identity (path, size,
//! modification time): the daemon shows both surveys every round, and a
//! survey of 100k accounts is megabytes to read and classify again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A file as a cache key: its path, size and modification time. A file
/// renamed into place keeps the size and time it had under its temp name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

impl Stamp {
    /// The file at `path` now, `None` when there is none (or its time
    /// cannot be read).
    pub fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Stamp {
            path: path.to_path_buf(),
            len: m.len(),
            modified: m.modified().ok()?,
        })
    }

    /// The stamp `temp` will have once renamed to `path`.
    pub fn renamed(temp: &Path, path: &Path) -> Option<Stamp> {
        Stamp::of(temp).map(|s| Stamp {
            path: path.to_path_buf(),
            ..s
        })
    }
}

/// Two entries: the file in place now and the next one, built ahead of
/// its rename (by the survey task), so that neither evicts the other.
pub struct StampCache<T> {
    entries: Mutex<Vec<(Stamp, T)>>,
}

impl<T: Clone> StampCache<T> {
    pub const fn new() -> StampCache<T> {
        StampCache {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// What was built from the file with this stamp, if kept. The
    /// entries kept before it are dropped: that file has been replaced.
    pub fn get(&self, stamp: &Stamp) -> Option<T> {
        let mut e = self.entries.lock().ok()?;
        let i = e.iter().position(|(s, _)| s == stamp)?;
        e.drain(..i);
        e.first().map(|(_, v)| v.clone())
    }

    /// Keep `value` for `stamp`, in place of the oldest entry.
    pub fn put(&self, stamp: Stamp, value: T) {
        if let Ok(mut e) = self.entries.lock() {
            e.retain(|(s, _)| *s != stamp);
            if e.len() >= 2 {
                e.remove(0);
            }
            e.push((stamp, value));
        }
    }
}

impl<T: Clone> Default for StampCache<T> {
    fn default() -> Self {
        StampCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len: u64) -> Stamp {
        Stamp {
            path: PathBuf::from("/x"),
            len,
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_next_files_entry_does_not_evict_the_current_ones() {
        let c = StampCache::new();
        c.put(stamp(1), "current");
        c.put(stamp(2), "next");
        assert_eq!(c.get(&stamp(1)), Some("current"));
        assert_eq!(c.get(&stamp(2)), Some("next"));
        c.put(stamp(3), "after");
        assert_eq!(c.get(&stamp(1)), None);
        assert_eq!(c.get(&stamp(2)), Some("next"));
    }

    #[test]
    fn once_the_next_file_is_in_place_the_replaced_ones_entry_is_dropped() {
        let c = StampCache::new();
        c.put(stamp(1), "replaced");
        c.put(stamp(2), "in place");
        assert_eq!(c.get(&stamp(2)), Some("in place"));
        assert_eq!(c.get(&stamp(1)), None);
    }
}
