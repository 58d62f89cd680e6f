//! The one way habeat writes a file that matters: temp file, fsync,
//! rename, fsync of the directory. After a crash the file is either the
//! old or the new content; a leftover temp file is ignored (and removed by
//! [`remove_leftover_temps`]).

use super::StateError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A fresh temp file name for `path`: this process's pid (so that a crashed
/// writer's leftovers can be told from a live one's) and a part no other
/// user can guess, since lock files may live in a world-writable directory
/// such as /var/tmp.
fn temp_for(path: &Path, attempt: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    path.with_file_name(format!(
        ".{name}.tmp-{}.{nanos:08x}{attempt}",
        std::process::id()
    ))
}

/// Create the temp file: a new file only (never one that exists, never
/// through a symlink someone planted), mode 0600.
fn create_temp(path: &Path) -> Result<(PathBuf, File), StateError> {
    let mut attempt = 0;
    loop {
        let tmp = temp_for(path, attempt);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            // Someone's file under our name: try another name, a few times.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 4 => {
                attempt += 1;
            }
            Err(e) => return Err(StateError::io("create", &tmp, e)),
        }
    }
}

/// `O_NOFOLLOW` for `open`: a symlink at the last component of the path is
/// an error (`ELOOP`), never followed.
pub(crate) const NOFOLLOW: i32 = nix::libc::O_NOFOLLOW;

/// An error from opening `path` with [`NOFOLLOW`], saying plainly when the
/// name was a symlink.
pub(crate) fn open_error(op: &'static str, path: &Path, e: std::io::Error) -> StateError {
    if e.raw_os_error() == Some(nix::libc::ELOOP) {
        StateError::Symlink {
            path: path.to_owned(),
        }
    } else {
        StateError::io(op, path, e)
    }
}

/// Open an existing file for reading, never through a symlink. Also never
/// blocking on a FIFO planted under the name: it is opened non-blocking
/// and must be a regular file.
pub(crate) fn open_read(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// [`std::fs::read`], never through a symlink: a symlink under the name
/// is an error that says so ([`StateError::Symlink`]'s words, for callers
/// that keep an `io::Error`).
pub(crate) fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = open_read(path).map_err(|e| {
        if e.raw_os_error() == Some(nix::libc::ELOOP) {
            std::io::Error::other(
                StateError::Symlink {
                    path: path.to_owned(),
                }
                .to_string(),
            )
        } else {
            e
        }
    })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Read a whole file, never through a symlink (the name being a symlink
/// is [`StateError::Symlink`]). `Ok(None)` when it does not exist.
pub fn read_nofollow(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    use std::io::Read;
    let mut f = match open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(open_error("read", path, e)),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| StateError::io("read", path, e))?;
    Ok(Some(bytes))
}

/// Atomically replace `path` with `bytes` (mode 0600 for a new file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = parent_dir(path);
    let (tmp, mut f) = create_temp(path)?;
    let result = (|| {
        f.write_all(bytes)
            .map_err(|e| StateError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| StateError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| StateError::io("rename into place", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A file written and fsynced beside its place, not yet renamed into it:
/// the slow part of [`write_atomic`] done ahead, so that whoever must hold
/// the state lock to replace the file only pays for the rename. Dropped
/// without [`Pending::commit`], the temp file is removed.
#[derive(Debug)]
pub struct Pending {
    tmp: PathBuf,
    path: PathBuf,
    done: bool,
}

impl Pending {
    /// Write `bytes` to a temp file beside `path` and fsync it.
    pub fn write(path: &Path, bytes: &[u8]) -> Result<Pending, StateError> {
        let (tmp, mut f) = create_temp(path)?;
        let pending = Pending {
            tmp,
            path: path.to_path_buf(),
            done: false,
        };
        f.write_all(bytes)
            .map_err(|e| StateError::io("write", &pending.tmp, e))?;
        f.sync_all()
            .map_err(|e| StateError::io("fsync", &pending.tmp, e))?;
        Ok(pending)
    }

    /// The temp file, whose size and modification time the file will have
    /// once renamed into place.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Rename it into place and fsync the directory.
    pub fn commit(mut self) -> Result<(), StateError> {
        fs::rename(&self.tmp, &self.path)
            .map_err(|e| StateError::io("rename into place", &self.path, e))?;
        self.done = true;
        sync_dir(parent_dir(&self.path))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The directory holding `path`.
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// fsync a directory, so that a rename or a removal in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("fsync directory", dir, e))
}

/// Remove temp files a crashed writer left next to `path`.
pub(crate) fn remove_leftover_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('.').next().unwrap_or_default();
        // A live process's temp file is a save in progress (the daemon
        // loads at start and on SIGHUP without the state lock, while a
        // `check` may be saving): removing it would make that save fail.
        let own = pid == std::process::id().to_string();
        if !own && !pid.is_empty() && Path::new("/proc").join(pid).exists() {
            continue;
        }
        let _ = fs::remove_file(e.path());
    }
}
