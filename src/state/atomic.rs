//! The one way habeat writes a file that matters: temp file, fsync,
//! rename, fsync of the directory. After a crash the file is either the
//! old or the new content; a leftover temp file is ignored (and removed by
//! [`remove_leftover_temps`]).

use super::StateError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temp file name used for `path` by this process.
fn temp_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Atomically replace `path` with `bytes` (mode 0600 for a new file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = temp_for(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| StateError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| StateError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| StateError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| StateError::io("rename into place", path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StateError::io("fsync directory", dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
        let Some(pid) = file.strip_prefix(&prefix) else {
            continue;
        };
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
