//! Naming the processes that hold a child's output pipes open after it
//! ended (a descendant that left its process group), from `/proc`, for
//! the message that says why the output may lack its end.

/// A process that held a child's output pipe open after the child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeHolder {
    pub pid: i32,
    /// Its `comm` (program name, at most 15 bytes).
    pub name: String,
}

impl std::fmt::Display for PipeHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.name)
    }
}

/// The inode of a pipe end (both ends share it).
pub(super) fn pipe_inode(fd: &impl std::os::fd::AsFd) -> Option<u64> {
    nix::sys::stat::fstat(fd).ok().map(|st| st.st_ino)
}

/// Most holders [`pipe_holders`] names.
const MAX_HOLDERS: usize = 16;

/// The processes other than this one that have one of these pipes open,
/// from `/proc/<pid>/fd` (those this user may read), for the message.
pub(super) fn pipe_holders(inodes: &[u64]) -> Vec<PipeHolder> {
    let me = std::process::id();
    let wanted: Vec<String> = inodes.iter().map(|i| format!("pipe:[{i}]")).collect();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim_end().to_owned())
                .unwrap_or_default();
            found.push(PipeHolder {
                pid: i32::try_from(pid).unwrap_or(i32::MAX),
                name,
            });
            if found.len() >= MAX_HOLDERS {
                break;
            }
        }
    }
    found.sort_by_key(|h| h.pid);
    found
}
