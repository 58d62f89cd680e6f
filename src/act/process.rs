//! Running external programs safely: an argv (no shell), a timeout after
//! which the whole process group is killed, bounded captured output, an
//! optional user to run as, and data passed on stdin or in the environment.
//!
//! Every child habeat starts goes through [`run`] (`no-shell-bounded-children`).
//!
//! - this file: what to run ([`Spec`]), starting it in its own process
//!   group, the timeout, and what is handed back ([`Output`], [`Error`]);
//! - `process/capture.rs`: reading the output streams into a bounded head
//!   and tail, and watching them for sentences;
//! - `process/holders.rs`: naming, from `/proc`, who kept a pipe open
//!   after the child ended.

mod capture;
mod holders;

pub use capture::{Captured, Forward, TAIL_KEEP};
pub use holders::PipeHolder;

use capture::{Reader, Watch};
use holders::{pipe_holders, pipe_inode};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Where habeat keeps its temporary files, and the `TMPDIR` it gives the
/// programs it runs. Not `/tmp`: the shipped units set
/// `ProtectSystem=strict` with `PrivateTmp=no`, which leaves `/tmp`
/// read-only, while `/var/tmp` is in their `ReadWritePaths=` (the legacy
/// lock files live there). Not `state_dir` either: the `input_file` copy
/// must be reachable by `carbonio.run_as` (zextras), and `state_dir` is
/// 0750 root (`StateDirectoryMode=`), which that user cannot enter. A
/// sticky, world-writable directory shared with the rest of the system
/// (no private tmp), so the copy's path means the same to the Carbonio
/// services that read it.
pub const TEMP_ROOT: &str = "/var/tmp";

/// Default cap on the head of captured stdout/stderr, per stream.
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
    /// Cap on the captured head of each stream. A longer stream is still
    /// read to its end: its last [`TAIL_KEEP`] bytes are kept too, and
    /// what lies between is counted and dropped.
    pub output_limit: usize,
    /// Sentences looked for in the *whole* of each stream while it is read
    /// (also where they straddle two reads, or fall in the part that is
    /// not kept): [`Output::seen`] says which appeared. A failure a CLI
    /// prints after megabytes of progress lines must not be lost with the
    /// bytes the bounded buffer drops.
    pub watch_for: Vec<String>,
    /// After the child exited, how long its output may still be read
    /// before its group is killed, and then after that kill, while a
    /// descendant holds the pipes. A caller that decides by the exit
    /// status alone (a witness, inside a probe round) keeps these short.
    pub drain: Drain,
}

/// See [`Spec::drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    pub before_kill: Duration,
    pub after_kill: Duration,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            before_kill: Duration::from_millis(200),
            after_kill: Duration::from_secs(1),
        }
    }
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
            watch_for: Vec::new(),
            drain: Drain::default(),
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
    pub stdout: Captured,
    pub stderr: Captured,
    /// The sentences of [`Spec::watch_for`] that appeared anywhere in
    /// stdout or stderr, kept or not, in the order of `watch_for`.
    pub seen: Vec<String>,
    /// The command ended, but a descendant that left its process group
    /// (`setsid`, a daemonising program) kept an output pipe open, so
    /// reading was stopped: the output may lack its end. Those processes,
    /// as far as `/proc` shows them.
    pub pipe_held: Option<Vec<PipeHolder>>,
    pub duration: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }

    /// True when a stream was longer than `output_limit`.
    pub fn overflowed(&self) -> bool {
        !self.stdout.complete() || !self.stderr.complete()
    }

    /// The last `n` bytes of stdout+stderr, as text, for journals: the real
    /// end of each stream, also when its middle was not kept.
    pub fn tail(&self, n: usize) -> String {
        // Only the last `n` bytes of each stream are turned into text: the
        // head of a listing can be tens of MiB.
        let (mut all, mut cut) = self.stdout.last_text(n);
        let (err, err_cut) = self.stderr.last_text(n);
        if !err.is_empty() {
            if !all.is_empty() && !all.ends_with('\n') {
                all.push('\n');
            }
            all.push_str(&err);
            cut |= err_cut;
        }
        if all.len() <= n && !cut {
            return all;
        }
        let mut start = all.len().saturating_sub(n);
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
    run_forwarding(spec, None).await
}

/// [`run`], every chunk of stdout also sent to `stdout_to` as it is read
/// (the capture stays bounded by `output_limit`): a listing longer than
/// any cap is read by its consumer while the child prints it. The sender
/// is dropped when stdout ends (or reading stops), which ends the
/// consumer's stream.
pub async fn run_forwarding(spec: &Spec, stdout_to: Option<Forward>) -> Result<Output, Error> {
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
    let watch = std::sync::Arc::new(Watch::new(&spec.watch_for));
    let mut pipes = Vec::new();
    let mut out = child.stdout.take().map(|s| {
        pipes.extend(pipe_inode(&s));
        Reader::spawn(s, limit, watch.clone(), stdout_to)
    });
    let mut err = child.stderr.take().map(|s| {
        pipes.extend(pipe_inode(&s));
        Reader::spawn(s, limit, watch.clone(), None)
    });

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
    // stopped, keeping what they had read, and the output says who held
    // the pipes (docs/decisions.md: why no cgroup kills them).
    let mut readers: Vec<&mut Reader> = out.iter_mut().chain(err.iter_mut()).collect();
    let mut pipe_held = None;
    if !Reader::all_done(&mut readers, spec.drain.before_kill).await {
        kill_group(pgid);
        if !Reader::all_done(&mut readers, spec.drain.after_kill).await {
            for r in &mut readers {
                r.stop();
            }
            let holders = tokio::task::spawn_blocking(move || pipe_holders(&pipes))
                .await
                .unwrap_or_default();
            pipe_held = Some(holders);
        }
    }
    let stdout = out.map(Reader::take).unwrap_or_default();
    let stderr = err.map(Reader::take).unwrap_or_default();
    Ok(Output {
        status,
        seen: watch.seen(),
        stdout,
        stderr,
        pipe_held,
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
        assert_eq!(out.stdout.head, b"out\n");
        assert_eq!(out.stderr.head, b"err\n");
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
        assert_eq!(out.stdout.head, b"Unable to communicate with server\n");
        assert_eq!(out.pipe_held, None, "the descendant was in the group");
        assert!(out.duration < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!marker.exists(), "the descendant outlived the command");
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let mut spec = sh("head -c 100000 /dev/zero", Duration::from_secs(5));
        spec.output_limit = 1000;
        let out = run(&spec).await.expect("runs");
        assert_eq!(out.stdout.head.len(), 1000);
        assert_eq!(out.stdout.tail.len(), TAIL_KEEP);
        assert_eq!(out.stdout.len(), 100_000);
        assert!(out.overflowed());
    }

    #[tokio::test]
    async fn the_end_of_a_long_output_is_kept_and_watched_sentences_are_seen_anywhere() {
        // 3 MB of progress, then the failure: the head is full long before.
        let mut spec = sh(
            "yes 'promoting account user@example.com: 42%' | head -c 3000000; \
             echo 'Unable to communicate with server'; echo done >&2",
            Duration::from_secs(20),
        );
        spec.watch_for = vec![
            "Unable to communicate with server".into(),
            "never printed".into(),
        ];
        let out = run(&spec).await.expect("runs");
        assert_eq!(out.seen, ["Unable to communicate with server"]);
        assert!(out.overflowed());
        assert!(out.stdout.head.len() <= DEFAULT_OUTPUT_LIMIT);
        let tail = out.tail(200);
        assert!(
            tail.ends_with("Unable to communicate with server\ndone\n"),
            "{tail:?}"
        );
    }

    #[test]
    fn the_tail_is_the_end_of_each_stream_and_says_when_it_is_cut() {
        let out = |stdout: Captured, stderr: Captured| Output {
            status: Status::Exited(0),
            stdout,
            stderr,
            seen: Vec::new(),
            pipe_held: None,
            duration: Duration::ZERO,
        };
        let mut long = Captured::default();
        long.push(&b"h".repeat(5000), 1000);
        long.push("é end".as_bytes(), 1000);
        long.finish();
        let short = |b: &[u8]| Captured {
            head: b.to_vec(),
            ..Captured::default()
        };
        assert_eq!(
            out(short(b"ok\n"), short(b"warn\n")).tail(100),
            "ok\nwarn\n"
        );
        assert_eq!(out(short(b"ok"), short(b"warn")).tail(100), "ok\nwarn");
        assert_eq!(
            out(short("aé".as_bytes()), Captured::default()).tail(2),
            "…é"
        );
        let t = out(long.clone(), Captured::default()).tail(10);
        assert_eq!(t, "…hhhhé end");
        let t = out(long, short(b"x")).tail(100_000);
        assert!(t.starts_with(&"h".repeat(1000)), "{t}");
        assert!(t.ends_with("é end\nx"), "{t}");
        assert_eq!(t.matches('h').count(), 5000, "{t}");
    }

    #[tokio::test]
    async fn a_descendant_that_left_the_group_is_named_not_taken_for_a_long_output() {
        let mut spec = sh(
            "echo started; setsid sleep 30 & echo exiting",
            Duration::from_secs(20),
        );
        spec.output_limit = 1000;
        let out = run(&spec).await.expect("runs");
        assert_eq!(out.status, Status::Exited(0));
        assert!(!out.overflowed(), "{out:?}");
        assert_eq!(out.stdout.head, b"started\nexiting\n");
        let holders = out.pipe_held.expect("the pipe was held open");
        let sleep = holders
            .iter()
            .find(|h| h.name == "sleep")
            .unwrap_or_else(|| panic!("{holders:?}"));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sleep.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    #[tokio::test]
    async fn stdin_and_environment_reach_the_child_without_a_shell() {
        let hostile = "$(touch /tmp/habeat-should-not-exist) 'quoted' \n newline";
        let spec =
            Spec::new(["/bin/cat"], Duration::from_secs(5)).stdin(hostile.as_bytes().to_vec());
        let out = run(&spec).await.expect("runs");
        assert_eq!(out.stdout.head, hostile.as_bytes());
        let spec = Spec::new(["/usr/bin/printenv", "HABEAT_X"], Duration::from_secs(5))
            .env("HABEAT_X", hostile);
        let out = run(&spec).await.expect("runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout.head).trim_end(),
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
