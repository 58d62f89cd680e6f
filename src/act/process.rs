//! Running external programs safely: an argv (no shell), a timeout after
//! which the whole process group is killed, bounded captured output, an
//! optional user to run as, and data passed on stdin or in the environment.
//!
//! Every child habeat starts goes through [`run`] (`no-shell-bounded-children`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Default cap on captured stdout/stderr, per stream.
pub const DEFAULT_OUTPUT_LIMIT: usize = 1024 * 1024;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Spec {
    /// argv[0] is the program; it is never given to a shell.
    pub argv: Vec<OsString>,
    pub timeout: Duration,
    /// Extra environment variables (added to, or replacing, the inherited ones).
    pub env: BTreeMap<OsString, OsString>,
    /// Start from an empty environment before applying `env`.
    pub clear_env: bool,
    /// Bytes written to the child's stdin (then closed). `None`: /dev/null.
    pub stdin: Option<Vec<u8>>,
    /// Run as this user (uid, gid and supplementary groups set by the kernel
    /// before exec). `None`: as the current user.
    pub user: Option<RunAs>,
    pub cwd: Option<PathBuf>,
    /// Cap on captured bytes per stream; the rest is read and discarded.
    pub output_limit: usize,
}

/// A resolved user to run a child as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl RunAs {
    /// Look a user up in the system's user database.
    pub fn lookup(name: &str) -> Result<RunAs, Error> {
        match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok(RunAs {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                home: u.dir,
            }),
            Ok(None) => Err(Error::NoSuchUser(name.to_owned())),
            Err(e) => Err(Error::Lookup(name.to_owned(), e.to_string())),
        }
    }
}

impl Spec {
    pub fn new<I, S>(argv: I, timeout: Duration) -> Spec
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Spec {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout,
            env: BTreeMap::new(),
            clear_env: false,
            stdin: None,
            user: None,
            cwd: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Spec {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Spec {
        self.stdin = Some(bytes);
        self
    }

    /// A printable rendering of the argv for logs and `--dry-run`.
    pub fn display(&self) -> String {
        display_argv(&self.argv)
    }
}

/// Render an argv so that an operator can read (and paste) it: words with
/// spaces or shell metacharacters are single-quoted.
pub fn display_argv(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
            if plain {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (not by us).
    Signaled(i32),
    /// Ran past its timeout; its process group was killed.
    TimedOut,
}

/// The result of a finished child.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: Status,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// True when a stream produced more than `output_limit` bytes.
    pub truncated: bool,
    pub duration: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }

    /// The last `n` bytes of stdout+stderr, as text, for journals.
    pub fn tail(&self, n: usize) -> String {
        let mut all = String::from_utf8_lossy(&self.stdout).into_owned();
        let err = String::from_utf8_lossy(&self.stderr);
        if !err.is_empty() {
            if !all.is_empty() && !all.ends_with('\n') {
                all.push('\n');
            }
            all.push_str(&err);
        }
        if all.len() <= n {
            return all;
        }
        let mut start = all.len() - n;
        while !all.is_char_boundary(start) {
            start += 1;
        }
        format!("…{}", &all[start..])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("empty command")]
    Empty,
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "user {0:?} does not exist (set carbonio.run_as, or leave it empty to run as the current user)"
    )]
    NoSuchUser(String),
    #[error("cannot look up user {0:?}: {1}")]
    Lookup(String, String),
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Run a child to completion or until its timeout, whichever comes first.
/// On timeout the child's whole process group receives SIGKILL, so
/// grandchildren (a shell's pipeline, a JVM) die with it.
pub async fn run(spec: &Spec) -> Result<Output, Error> {
    let program = spec.argv.first().ok_or(Error::Empty)?;
    let program_name = program.to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&spec.argv[1..])
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if spec.clear_env {
        cmd.env_clear();
    }
    cmd.envs(&spec.env);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    if let Some(user) = &spec.user {
        // std applies `Command::uid` *before* `pre_exec` closures, so
        // supplementary groups could no longer be set after it; all three
        // switches are therefore done here, in the kernel's required order
        // (groups, gid, uid). The group list is resolved in the parent:
        // NSS lookups are not safe between fork and exec.
        let name = std::ffi::CString::new(user.name.clone())
            .map_err(|_| Error::Lookup(user.name.clone(), "the name contains a NUL byte".into()))?;
        let gid = nix::unistd::Gid::from_raw(user.gid);
        let uid = nix::unistd::Uid::from_raw(user.uid);
        let groups = nix::unistd::getgrouplist(&name, gid)
            .map_err(|e| Error::Lookup(user.name.clone(), e.to_string()))?;
        // SAFETY: setgroups, setgid and setuid are plain system calls
        // (async-signal-safe); the closure allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setgroups(&groups).map_err(std::io::Error::from)?;
                nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
                nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program_name.clone(),
        source,
    })?;
    let pgid = child.id();
    // If the caller drops this future (its own timeout, a task abort), the
    // whole group must still die, not only the direct child.
    let mut guard = GroupGuard(pgid);

    if let (Some(bytes), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        // A child that does not read its stdin must not block us.
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
            let _ = stdin.shutdown().await;
        });
    }
    let limit = spec.output_limit;
    let mut out = child.stdout.take().map(|s| Reader::spawn(s, limit));
    let mut err = child.stderr.take().map(|s| Reader::spawn(s, limit));

    let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt;
            match (st.code(), st.signal()) {
                (Some(c), _) => Status::Exited(c),
                (None, Some(s)) => Status::Signaled(s),
                (None, None) => Status::Exited(-1),
            }
        }
        Ok(Err(source)) => {
            return Err(Error::Wait {
                program: program_name,
                source,
            });
        }
        Err(_) => {
            kill_group(pgid);
            let _ = child.wait().await;
            Status::TimedOut
        }
    };
    // The child is reaped: its pid (the group id) may be reused from now on.
    guard.0 = None;
    // Descendants may still hold the pipes open; never wait on them long.
    // One that does is killed with the group, which closes the pipes, so
    // what our child printed is still read to its end; a descendant that
    // left the group (setsid) would keep them open: the readers are then
    // stopped, keeping what they had read, and the output is marked cut.
    let mut readers: Vec<&mut Reader> = out.iter_mut().chain(err.iter_mut()).collect();
    if !Reader::all_done(&mut readers, Duration::from_millis(200)).await {
        kill_group(pgid);
        if !Reader::all_done(&mut readers, Duration::from_secs(1)).await {
            for r in &mut readers {
                r.stop();
            }
        }
    }
    let (stdout, t1) = out.map(Reader::take).unwrap_or_default();
    let (stderr, t2) = err.map(Reader::take).unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
        truncated: t1 || t2,
        duration: started.elapsed(),
    })
}

/// Kills the child's process group when dropped while still armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Reads one output pipe in the background into a bounded buffer that
/// outlives the task, so that what was read before a stop is kept.
struct Reader {
    task: tokio::task::JoinHandle<()>,
    /// (bytes kept, truncated: more came than kept, or reading was cut)
    got: std::sync::Arc<std::sync::Mutex<(Vec<u8>, bool)>>,
}

impl Reader {
    fn spawn<R: AsyncRead + Unpin + Send + 'static>(mut r: R, limit: usize) -> Reader {
        let got = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), false)));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut g = sink.lock().unwrap_or_else(|p| p.into_inner());
                        let room = limit.saturating_sub(g.0.len());
                        if n > room {
                            g.1 = true;
                        }
                        g.0.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        });
        Reader { task, got }
    }

    /// True when every reader reached the end of its pipe within `wait`.
    async fn all_done(readers: &mut [&mut Reader], wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        for r in readers.iter_mut() {
            if r.task.is_finished() {
                continue;
            }
            if tokio::time::timeout_at(deadline, &mut r.task)
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Stop reading; what was read is kept and marked cut.
    fn stop(&mut self) {
        if !self.task.is_finished() {
            self.task.abort();
            self.got.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        }
    }

    fn take(self) -> (Vec<u8>, bool) {
        self.task.abort();
        std::mem::take(&mut *self.got.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Spec {
        Spec::new(["/bin/sh", "-c", script], timeout)
    }

    #[tokio::test]
    async fn captures_exit_code_and_output() {
        let out = run(&sh(
            "echo out; echo err >&2; exit 7",
            Duration::from_secs(5),
        ))
        .await
        .expect("runs");
        assert_eq!(out.status, Status::Exited(7));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("grandchild-survived");
        // The grandchild would create the marker after 1.5s if it survived.
        let script = format!("(sleep 1.5; touch {}) & sleep 30", marker.display());
        let out = run(&sh(&script, Duration::from_millis(300)))
            .await
            .expect("runs");
        assert_eq!(out.status, Status::TimedOut);
        assert!(out.duration < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn what_the_child_printed_is_kept_when_a_descendant_holds_the_pipe() {
        // The CLI prints its failure and exits 0, leaving a background
        // process with its stdout: the failure line must still be seen
        // (it was thrown away with the cancelled reader), and the
        // descendant killed.
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("descendant-survived");
        let script = format!(
            "echo 'Unable to communicate with server'; (sleep 1.5; touch {}) & exit 0",
            marker.display()
        );
        let out = run(&sh(&script, Duration::from_secs(10)))
            .await
            .expect("runs");
        assert_eq!(out.status, Status::Exited(0));
        assert_eq!(out.stdout, b"Unable to communicate with server\n");
        assert!(out.duration < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!marker.exists(), "the descendant outlived the command");
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let mut spec = sh("head -c 100000 /dev/zero", Duration::from_secs(5));
        spec.output_limit = 1000;
        let out = run(&spec).await.expect("runs");
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
    }

    #[tokio::test]
    async fn stdin_and_environment_reach_the_child_without_a_shell() {
        let hostile = "$(touch /tmp/habeat-should-not-exist) 'quoted' \n newline";
        let spec =
            Spec::new(["/bin/cat"], Duration::from_secs(5)).stdin(hostile.as_bytes().to_vec());
        let out = run(&spec).await.expect("runs");
        assert_eq!(out.stdout, hostile.as_bytes());
        let spec = Spec::new(["/usr/bin/printenv", "HABEAT_X"], Duration::from_secs(5))
            .env("HABEAT_X", hostile);
        let out = run(&spec).await.expect("runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            hostile.trim_end()
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let err = run(&Spec::new(
            ["/nonexistent/carbonio"],
            Duration::from_secs(1),
        ))
        .await
        .expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/carbonio"), "{err}");
    }

    #[test]
    fn argv_display_quotes_what_a_shell_would_split() {
        let argv: Vec<OsString> = ["carbonio", "--json", "a b", "it's"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(display_argv(&argv), r"carbonio --json 'a b' 'it'\''s'");
    }
}
