//! `state_dir/events.jsonl`: append-only journal, one JSON event per line.
//!
//! Each append is fsync'd, so an event that was reported is on disk. A
//! crash can leave a truncated last line: reading tolerates it, and the
//! next append starts on a new line so it never glues onto the fragment.

use super::StateError;
use crate::engine::Event;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The event journal file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

/// What [`Journal::read`] found.
#[derive(Debug, Clone, Default)]
pub struct JournalRead {
    /// Events in the order they were written.
    pub events: Vec<Event>,
    /// Complete lines that were not events (hand edits): skipped.
    pub skipped: usize,
    /// The last line was cut short (a crash while appending): ignored.
    pub truncated_tail: bool,
}

impl Journal {
    /// The journal at `path` (normally [`crate::state::Store::journal_path`]).
    pub fn new(path: &Path) -> Journal {
        Journal {
            path: path.to_owned(),
        }
    }

    /// Where it is (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append events (one line each) and fsync.
    pub fn append(&self, events: &[Event]) -> Result<(), StateError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in events {
            let line = serde_json::to_vec(e).map_err(|e| StateError::Encode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            buf.extend_from_slice(&line);
            buf.push(b'\n');
        }
        // Never through a symlink: appending to whatever a planted link
        // names would be a write anywhere, as root.
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .custom_flags(super::atomic::NOFOLLOW)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| super::atomic::open_error("open", &self.path, e))?;
        if ends_without_newline(&f).map_err(|e| StateError::io("read", &self.path, e))? {
            buf.insert(0, b'\n');
        }
        f.write_all(&buf)
            .map_err(|e| StateError::io("append to", &self.path, e))?;
        f.sync_data()
            .map_err(|e| StateError::io("fsync", &self.path, e))
    }

    /// Read every event. A missing journal is empty.
    pub fn read(&self) -> Result<JournalRead, StateError> {
        let Some(bytes) = super::atomic::read_nofollow(&self.path)? else {
            return Ok(JournalRead::default());
        };
        let mut out = JournalRead::default();
        let complete = bytes.ends_with(b"\n");
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Event>(line) {
                Ok(e) => out.events.push(e),
                Err(_) if i + 1 == n && !complete => out.truncated_tail = true,
                Err(_) => out.skipped += 1,
            }
        }
        Ok(out)
    }
}

fn ends_without_newline(f: &File) -> std::io::Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}
