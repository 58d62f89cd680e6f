//! Durable state in `state_dir`: `state.json` (the engine's [`State`]),
//! `events.jsonl` (the journal), the legacy lock files at their old paths,
//! and the process lock that lets one habeat act at a time.
//!
//! Everything here is plain file I/O with the crash-safety the engine's
//! step model relies on: a state written with [`Store::save`] is either the
//! old one or the new one after a crash, never a mix, and a file habeat
//! cannot trust is set aside and replaced by a *safe* state (no automatic
//! action until `habeat rearm`), never a panic.
//!
//! [`State`]: crate::engine::State

mod atomic;
mod daemon_lock;
mod dir;
mod journal;
mod lock_files;
pub mod stamp;
mod state_lock;
mod store;

pub use atomic::{Pending, read_nofollow, write_atomic};
pub use daemon_lock::{Daemon, DaemonLock, FILE as DAEMON_LOCK, daemon};
pub use dir::check_state_dir;
pub use journal::{
    Backward, FILE as JOURNAL_FILE, Follower, ForwardEnd, Journal, JournalRead, Located, MAX_LINE,
    Rotation, Snapshot,
};
pub use lock_files::{LockBody, lock_path, read_lock, remove_locks, scan_locks, write_locks};
pub use state_lock::{LockError, StateLock};
pub use store::{Loaded, SetAside, Store};

use std::path::PathBuf;

/// A file operation on habeat's state that failed. The message names the
/// file and the operation so the administrator knows where to look.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot {op} {path}: {source} (check that the directory exists and is writable by habeat)"
    )]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the state for {path}: {message}")]
    Encode { path: PathBuf, message: String },
    /// A file habeat keeps is a symbolic link: never followed, since a link
    /// planted there would make habeat (root) write to whatever it names.
    #[error(
        "refusing to use {path}: it is a symbolic link, and habeat never reads or writes \
         its files through one (a planted link would make it overwrite what the link names); \
         remove the link (`rm {path}`), or move the file it points to in its place"
    )]
    Symlink { path: PathBuf },
    /// The state directory could be changed by another user.
    #[error("refusing to use the state directory {path}: {problem}; {fix}")]
    UnsafeDir {
        path: PathBuf,
        problem: String,
        fix: String,
    },
}

impl StateError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        StateError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
