//! The state lock: one habeat acts at a time (`one-actor`).
//!
//! `state_dir/lock` is locked with `flock` (std's `File::try_lock`). The
//! kernel drops the lock when the holder's file is closed, including when
//! the holder is killed with SIGKILL, so a dead holder never wedges it.
//! The file descriptor is close-on-exec, so children (hooks) never inherit
//! it. The holder writes its pid into the file so a waiter can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Held while this process may change state. Dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

/// Why the state lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another habeat holds it and the wait ran out (exit code 5).
    #[error(
        "another habeat ({}) holds the state lock {} and did not release it within {}; \
         wait for it to finish or stop it (`systemctl stop habeat`)",
        match .holder_pid { Some(p) => format!("pid {p}"), None => "pid unknown".to_string() },
        .path.display(),
        humantime::format_duration(*.waited)
    )]
    Busy {
        path: PathBuf,
        holder_pid: Option<u32>,
        waited: Duration,
    },
    #[error("cannot use the state lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state directory is not habeat's alone, or the lock is a symlink.
    #[error(transparent)]
    State(#[from] super::StateError),
}

impl LockError {
    /// The process exit code for this error (5 when busy).
    pub fn exit_code(&self) -> i32 {
        match self {
            LockError::Busy { .. } => crate::exit::LOCKED,
            LockError::Io { .. } | LockError::State(_) => crate::exit::RUNTIME,
        }
    }
}

impl StateLock {
    /// Take the lock on `state_dir/lock`, waiting at most `wait` for a
    /// current holder to finish.
    ///
    /// The directory must be habeat's alone ([`super::check_state_dir`]),
    /// and the lock file is never opened through a symlink: the holder
    /// truncates it to write its pid, which through a planted link would
    /// truncate whatever the link names.
    pub fn acquire(state_dir: &Path, wait: Duration) -> Result<StateLock, LockError> {
        super::check_state_dir(state_dir)?;
        let path = state_dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(super::atomic::NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(|e| super::atomic::open_error("open", &path, e))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() >= wait {
                        return Err(LockError::Busy {
                            holder_pid: read_pid(&mut file),
                            path,
                            waited: wait,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50).min(wait));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StateLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid written in a lock file (the holder, or the last holder).
    pub fn holder_pid(state_dir: &Path) -> Option<u32> {
        let mut f = super::atomic::open_read(&state_dir.join("lock")).ok()?;
        read_pid(&mut f)
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Leave the pid of a former holder out of the file, then unlock.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_pid(f: &mut File) -> Option<u32> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}
