//! Whether the state directory is habeat's alone.
//!
//! Everything habeat decides from (`state.json`, the journal, the lock)
//! lives in `state_dir`. A directory another user can write to lets that
//! user plant a symlink that makes habeat, as root, overwrite any file, or
//! replace the state (a promotion record erased, a pause forged). So it
//! must be owned by root or by the user habeat runs as, and writable by its
//! owner only; and none of its parents may let others rename it away
//! (writable by every user without the sticky bit, as `/tmp` has).

use super::StateError;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The files habeat keeps in the state directory (rotated journal files
/// are opened with `O_NOFOLLOW` too).
const FILES: [&str; 3] = ["lock", "state.json", super::journal::FILE];

/// Check `dir` before habeat uses it. A directory that does not exist yet
/// is fine (habeat creates it with mode 0700).
pub fn check_state_dir(dir: &Path) -> Result<(), StateError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StateError::io("inspect the state directory", dir, e)),
    };
    let unsafe_dir = |problem: String, fix: String| StateError::UnsafeDir {
        path: dir.to_owned(),
        problem,
        fix,
    };
    if !meta.is_dir() {
        return Err(unsafe_dir(
            "it is not a directory".into(),
            "set local.state_dir to a directory (habeat creates a missing one)".into(),
        ));
    }
    let me = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_dir(
            format!(
                "it is owned by {}, not by root or by {} (the user habeat runs as), so that \
                 user could change the state habeat decides from",
                user_name(meta.uid()),
                user_name(me)
            ),
            format!(
                "give it to habeat's user: `chown {} {}`",
                user_name(me),
                dir.display()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and every user",
            (true, false) => "its group",
            _ => "every user",
        };
        return Err(unsafe_dir(
            format!(
                "it is writable by {who} (mode {mode:04o}), so another user could plant \
                 files or symlinks in it"
            ),
            format!(
                "make it writable by its owner only: `chmod go-w {}`",
                dir.display()
            ),
        ));
    }
    // Checked before anything is changed, so that a command refused for a
    // link does not half happen (each file is also opened O_NOFOLLOW).
    for name in FILES {
        let p = dir.join(name);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(StateError::Symlink { path: p });
        }
    }
    // A parent others may write to (without the sticky bit) lets them rename
    // the directory away and put their own in its place.
    let real = std::fs::canonicalize(dir)
        .map_err(|e| StateError::io("resolve the state directory", dir, e))?;
    for parent in real.ancestors().skip(1) {
        let Ok(m) = std::fs::metadata(parent) else {
            continue;
        };
        let pmode = m.mode() & 0o7777;
        if pmode & 0o002 != 0 && pmode & 0o1000 == 0 {
            return Err(unsafe_dir(
                format!(
                    "its parent {} is writable by every user without the sticky bit (mode \
                     {pmode:04o}), so another user could replace it",
                    parent.display()
                ),
                format!(
                    "`chmod o-w {p}` (or `chmod +t {p}`), or move local.state_dir elsewhere",
                    p = parent.display()
                ),
            ));
        }
    }
    Ok(())
}

/// A uid as a name where the system knows it ("uid 1000 (alice)").
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {uid}"),
    }
}
