//! The legacy lock files (`<checkDownFile>-<role>`,
//! `<checkPromotionFile>-<role>`, `checkRestartReplicaFile`), at their old
//! paths so existing runbooks keep working. They now hold a small JSON
//! body saying when, why, by which pid and habeat version.

use super::StateError;
use super::atomic::write_atomic;
use crate::config::Local;
use crate::engine::{LockFileSeen, LockKind, UnixMillis};
use crate::model::Role;
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The JSON body of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBody {
    /// Unix milliseconds.
    pub when: UnixMillis,
    /// The same instant in RFC 3339, for people.
    pub when_text: String,
    pub why: String,
    pub pid: u32,
    pub version: String,
}

impl LockBody {
    /// A body written now by this process and version.
    pub fn new(now: UnixMillis, why: &str) -> LockBody {
        LockBody {
            when: now,
            when_text: now.to_string(),
            why: why.to_owned(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Where a role's lock file of a kind lives.
pub fn lock_path(local: &Local, role: Role, kind: LockKind) -> PathBuf {
    match kind {
        LockKind::Down => local.down_file(role),
        LockKind::Promotion => local.promotion_file(role),
        LockKind::RestartReplica => local.check_restart_replica_file.clone(),
    }
}

/// Write lock files (atomically), for `ActionKind::WriteLocks`.
pub fn write_locks(
    local: &Local,
    role: Role,
    kinds: &[LockKind],
    why: &str,
    now: UnixMillis,
) -> Result<(), StateError> {
    let body = LockBody::new(now, why);
    let mut bytes = serde_json::to_vec_pretty(&body).map_err(|e| StateError::Encode {
        path: PathBuf::new(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    for k in kinds {
        write_atomic(&lock_path(local, role, *k), &bytes)?;
    }
    Ok(())
}

/// Remove lock files (absent ones are fine), for `ActionKind::RemoveLocks`.
pub fn remove_locks(local: &Local, role: Role, kinds: &[LockKind]) -> Result<(), StateError> {
    for k in kinds {
        let p = lock_path(local, role, *k);
        match std::fs::remove_file(&p) {
            // Made durable: a lock that comes back after a crash would
            // hold off automatic action until the next re-arm.
            Ok(()) => super::atomic::sync_dir(super::atomic::parent_dir(&p))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io("remove", &p, e)),
        }
    }
    Ok(())
}

/// The most of a lock file's body that is read: habeat writes a few
/// hundred bytes.
const MAX_LOCK_BODY: u64 = 64 * 1024;

/// Read a lock file: `None` when absent. A file with a legacy (empty or
/// non-JSON) body is present with `body: None` and its mtime as the time.
///
/// Lock files live in a directory every user may write to (`/var/tmp` by
/// default), so whatever is under the name is only looked at, never
/// followed or waited for: a symlink (to `/dev/zero`, say) or a FIFO
/// planted there is present, with no body, and its content is never read;
/// a regular file is read up to [`MAX_LOCK_BODY`].
pub fn read_lock(path: &Path) -> Result<Option<(Option<LockBody>, UnixMillis)>, StateError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("inspect", path, e)),
    };
    let mtime = meta
        .modified()
        .map(UnixMillis::from_system_time)
        .unwrap_or_default();
    let body = super::atomic::open_read(path)
        .ok()
        .and_then(|f| {
            use std::io::Read;
            let mut b = Vec::new();
            f.take(MAX_LOCK_BODY).read_to_end(&mut b).ok().map(|_| b)
        })
        .and_then(|b| serde_json::from_slice::<LockBody>(&b).ok());
    let when = body.as_ref().map(|b| b.when).unwrap_or(mtime);
    Ok(Some((body, when)))
}

/// Which lock files of `roles` exist, for `Input::LockFiles` before each
/// decision (adopts the Python habeat's locks, honours hand removals).
pub fn scan_locks(local: &Local, roles: &[Role]) -> Result<Vec<LockFileSeen>, StateError> {
    let mut out = Vec::new();
    for role in roles {
        let mut kinds = vec![LockKind::Down, LockKind::Promotion];
        if *role == Role::Appserver {
            kinds.push(LockKind::RestartReplica);
        }
        for lock in kinds {
            let found = read_lock(&lock_path(local, *role, lock))?;
            out.push(LockFileSeen {
                role: *role,
                lock,
                present: found.is_some(),
                written_at: found.map(|(_, when)| when),
            });
        }
    }
    Ok(out)
}
