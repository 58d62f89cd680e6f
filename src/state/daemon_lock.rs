//! `state_dir/daemon.lock`: held (`flock`, exclusive) by `habeat run` for
//! its whole life, so that `status` can tell a running daemon from state
//! saved by one that is gone. A lock, not a heartbeat file: the kernel
//! drops it the moment the daemon dies (SIGKILL included), so `status`
//! never reports a dead daemon as running, and no clock or interval has to
//! be guessed. The age of the last round (`state.json`) says the rest.
//!
//! It also keeps a second `habeat run` off the same state directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file name inside `state_dir`.
pub const FILE: &str = "daemon.lock";

/// How long a starting daemon waits for the lock: a `status` holds it
/// shared for an instant, a daemon being restarted releases it on exit.
const WAIT: Duration = Duration::from_secs(10);

/// Held by the running daemon. Dropping it releases the lock.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
}

impl DaemonLock {
    /// Take the daemon lock of `state_dir`, or say which daemon holds it.
    pub fn acquire(state_dir: &Path) -> Result<DaemonLock, String> {
        let path = state_dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(super::atomic::NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(|e| super::atomic::open_error("open", &path, e).to_string())?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < WAIT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(format!(
                        "another `habeat run` ({}) already runs on {}: stop it first \
                         (`systemctl stop habeat`)",
                        read_pid(&mut file).map_or("pid unknown".into(), |p| format!("pid {p}")),
                        state_dir.display()
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()));
                }
            }
        }
        let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DaemonLock { _file: file })
    }
}

/// Whether a `habeat run` holds the daemon lock of `state_dir` now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    /// It does (with its pid, when written).
    Running { pid: Option<u32> },
    /// Nobody holds it (or no daemon ever ran here).
    NotRunning,
    /// The lock file could not be read.
    Unknown { why: String },
}

/// Ask the daemon lock of `state_dir`, without waiting or changing it
/// (a shared lock taken and released at once, never held).
pub fn daemon(state_dir: &Path) -> Daemon {
    let path: PathBuf = state_dir.join(FILE);
    let mut file = match super::atomic::open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Daemon::NotRunning,
        Err(e) => {
            return Daemon::Unknown {
                why: format!("cannot read {}: {e}", path.display()),
            };
        }
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Daemon::NotRunning
        }
        Err(std::fs::TryLockError::WouldBlock) => Daemon::Running {
            pid: read_pid(&mut file),
        },
        Err(std::fs::TryLockError::Error(e)) => Daemon::Unknown {
            why: format!("cannot read the lock {}: {e}", path.display()),
        },
    }
}

fn read_pid(f: &mut File) -> Option<u32> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}
