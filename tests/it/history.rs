//! `habeat history` and the journal's rotation, through the real binary:
//! read backwards in bounded memory (a journal may be hundreds of MB),
//! `--since`, `--limit`, `--follow` across rotations, rotation by size
//! keeping N files, and what a crash in the middle of a rotation leaves.

use crate::bin;

use bin::{DEAD_IP, habeat, text};
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// 2023-11-14T22:13:20Z, in Unix milliseconds: the first test event.
const T0: u64 = 1_700_000_000_000;

struct Bed {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Bed {
    /// A node whose journal rotates at `max_size` keeping `keep` files
    /// (the defaults when `None`).
    fn new(rotation: Option<(&str, u32)>) -> Bed {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let journal = rotation
            .map(|(size, keep)| format!("journal:\n  max_size: {size}\n  keep: {keep}\n"))
            .unwrap_or_default();
        let yaml = format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  state_dir: {d}/state\n  \
             checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  \
             checkRestartReplicaFile: {d}/rstop\n\
             primary:\n  appserver_ip: {DEAD_IP}\n  appserver_vmname: mbox1.example.com\n\
             {journal}"
        );
        let config = dir.path().join("habeat.yml");
        std::fs::write(&config, yaml).expect("write config");
        Bed { dir, config }
    }

    fn journal(&self, suffix: &str) -> PathBuf {
        self.dir.path().join(format!("state/events.jsonl{suffix}"))
    }

    /// Write events `range` (one a minute from [`T0`]) into a journal file.
    fn write(&self, suffix: &str, range: std::ops::Range<u64>) {
        let mut f = std::fs::File::create(self.journal(suffix)).expect("create");
        for i in range {
            writeln!(f, "{}", event(i)).expect("write");
        }
    }

    /// Append events from `start` to a journal file until one more would
    /// take it within 10 bytes of 64 KiB, then pad it there with blanks
    /// (which readers skip): habeat's next event does not fit, whatever its
    /// length. The events appended.
    fn top_up(&self, suffix: &str, start: u64) -> std::ops::Range<u64> {
        const FULL: u64 = 64 * 1024 - 10;
        let path = self.journal(suffix);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open");
        let mut size = f.metadata().expect("stat").len();
        let mut i = start;
        loop {
            let line = event(i);
            if size + line.len() as u64 + 2 > FULL {
                break;
            }
            writeln!(f, "{line}").expect("write");
            size += line.len() as u64 + 1;
            i += 1;
        }
        let pad = " ".repeat((FULL - size - 1) as usize);
        writeln!(f, "{pad}").expect("pad");
        start..i
    }

    fn history(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--json", "history"];
        all.extend_from_slice(args);
        habeat(&self.config, &all)
    }

    /// `habeat pause --for 1m`: one event journaled by habeat itself.
    fn journal_one(&self) {
        let out = habeat(&self.config, &["pause", "--for", "1m"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
}

/// Event `i`: a decision at T0 + i minutes saying `event i`.
fn event(i: u64) -> String {
    format!(
        r#"{{"at":{},"severity":"info","event":"decision","role":"appserver","message":"event {i}"}}"#,
        T0 + i * 60_000
    )
}

/// The messages a `--json history` printed, in its order.
fn messages(out: &std::process::Output) -> Vec<String> {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            v["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn numbered(range: impl Iterator<Item = u64>) -> Vec<String> {
    range.map(|i| format!("event {i}")).collect()
}

#[test]
fn history_reads_the_rotated_files_too_newest_first_with_limit_and_since() {
    let bed = Bed::new(None);
    bed.write(".2", 0..40);
    bed.write(".1", 40..80);
    bed.write("", 80..100);
    // Newest first across the files; 50 by default.
    assert_eq!(
        messages(&bed.history(&[])),
        numbered((50..100).rev()),
        "the rotated files are part of the journal"
    );
    assert_eq!(
        messages(&bed.history(&["-n", "3"])),
        numbered((97..100).rev())
    );
    assert_eq!(
        messages(&bed.history(&["--limit", "25"])),
        numbered((75..100).rev())
    );
    // --since a timestamp (event 30 is at 22:43:20Z): everything since, no
    // default limit; with an offset it is the same instant.
    assert_eq!(
        messages(&bed.history(&["--since", "2023-11-14T22:43:20Z"])),
        numbered((30..100).rev())
    );
    assert_eq!(
        messages(&bed.history(&["--since", "2023-11-14T23:43:20+01:00"])),
        numbered((30..100).rev())
    );
    assert_eq!(
        messages(&bed.history(&["--since", "2023-11-14T22:43:20Z", "-n", "5"])),
        numbered((95..100).rev())
    );
    // --since a duration: these events are years old.
    assert_eq!(
        messages(&bed.history(&["--since", "2h"])),
        Vec::<String>::new()
    );
    let bad = bed.history(&["--since", "yesterday-ish"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    // The text form, for people.
    let out = habeat(&bed.config, &["history", "-n", "1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2023-11-14T23:52:20Z  Info  event 99\n",
        "{}",
        text(&out)
    );
}

#[test]
fn history_help_teaches_the_new_flags() {
    let out = std::process::Command::new(bin::BIN)
        .args(["history", "--help"])
        .output()
        .expect("run habeat");
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{help}");
    for want in [
        "--since <WHEN>",
        "--limit <N>",
        "--follow",
        "2h",
        "2026-01-31T08:00:00Z",
        "events.jsonl.1",
        "tail -f",
    ] {
        assert!(help.contains(want), "no {want:?} in:\n{help}");
    }
}

#[test]
fn the_journal_rotates_by_size_keeping_n_files_and_loses_nothing_kept() {
    let bed = Bed::new(Some(("64KiB", 2)));
    let config = habeat(&bed.config, &["config", "check", "--file-only"]);
    let shown = String::from_utf8_lossy(&config.stdout);
    assert!(
        shown.contains("journal:\n  max_size: 64KiB\n  keep: 2\n"),
        "{}",
        text(&config)
    );
    // A full journal: habeat's next event starts a new file.
    let first = bed.top_up("", 0);
    bed.journal_one();
    assert!(bed.journal(".1").exists(), "not rotated");
    assert!(!bed.journal(".2").exists());
    let rotated = std::fs::read_to_string(bed.journal(".1")).expect("read .1");
    assert_eq!(
        rotated.lines().filter(|l| !l.trim().is_empty()).count() as u64,
        first.end - first.start,
        "the rotated file is the old one, whole"
    );
    let current = std::fs::read_to_string(bed.journal("")).expect("read");
    assert_eq!(
        current.lines().count(),
        1,
        "the new event starts the new file"
    );

    // Two more rotations: the oldest file goes, two rotated files stay.
    let second = bed.top_up("", 1000);
    bed.journal_one();
    let third = bed.top_up("", 2000);
    bed.journal_one();
    assert!(bed.journal(".2").exists());
    assert!(!bed.journal(".3").exists(), "kept more than journal.keep");
    // history sees all that is kept, each once, newest first; the first
    // file (events 0.., before the first pause) was dropped.
    let got: Vec<String> = messages(&bed.history(&["-n", "100000"]))
        .into_iter()
        .map(|m| {
            if m.starts_with("paused") {
                "paused".into()
            } else {
                m
            }
        })
        .collect();
    let mut want = vec!["paused".to_owned()];
    want.extend(numbered(third.rev()));
    want.push("paused".into());
    want.extend(numbered(second.rev()));
    want.push("paused".into());
    assert_eq!(got, want);
}

#[test]
fn a_crash_between_two_renames_of_a_rotation_loses_and_repeats_nothing() {
    let bed = Bed::new(Some(("64KiB", 3)));
    // A rotation of events.jsonl, .1 and .2 was killed after its first
    // rename (.2 -> .3) and before the next (.1 -> .2): .2 is missing.
    bed.write(".3", 0..10);
    bed.write(".1", 10..20);
    let current = bed.top_up("", 20);
    let before = messages(&bed.history(&["-n", "100000"]));
    assert_eq!(before, numbered((0..current.end).rev()));
    // The next append rotates again: the gap is filled, nothing dropped.
    bed.journal_one();
    assert!(bed.journal(".3").exists() && bed.journal(".2").exists());
    let after = messages(&bed.history(&["-n", "100000"]));
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert!(after[0].starts_with("paused"), "{after:?}");
    assert_eq!(after[1..], before[..]);

    // A reader that opened a file under its old and its new name (a
    // rotation between two of its opens) reads it once: a hard link shows
    // the same file twice.
    std::fs::hard_link(bed.journal(".3"), bed.journal(".4")).expect("link");
    let linked = messages(&bed.history(&["-n", "100000"]));
    assert_eq!(linked, after, "a file seen under two names was read twice");
}

/// `habeat <args>` run under GNU time: its exit status and its peak RSS in
/// KiB. Measured by `time`, a small process that forks habeat, not by this
/// test process: a child's peak RSS counts what it had before its exec,
/// and a child spawned from the test binary (which holds every test, and
/// what they allocated) starts with the test binary's pages.
fn max_rss_kib(config: &std::path::Path, args: &[&str]) -> (i32, i64) {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let status = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(bin::BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run habeat under /usr/bin/time (Debian package `time`)");
    let text = std::fs::read_to_string(report.path()).expect("time's report");
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("time's report is not a number: {text:?}"));
    (status.code().unwrap_or(-1), kib)
}

#[test]
fn history_on_a_200_mb_journal_stays_small() {
    let bed = Bed::new(None);
    // Events as the daemon writes them each round, 200 MB of them.
    let mut f = std::io::BufWriter::new(std::fs::File::create(bed.journal("")).expect("create"));
    let mut written = 0u64;
    let mut i = 0u64;
    while written < 200 * 1024 * 1024 {
        let line = event(i);
        writeln!(f, "{line}").expect("write");
        written += line.len() as u64 + 1;
        i += 1;
    }
    f.flush().expect("flush");
    drop(f);
    let (status, max_rss_kib) = max_rss_kib(&bed.config, &["history", "-n", "20"]);
    assert_eq!(status, 0);
    // Reading the whole file took 500 MB; reading it backwards, a few MiB
    // besides the program itself.
    assert!(
        max_rss_kib < 100 * 1024,
        "history -n 20 on a 200 MB journal peaked at {max_rss_kib} KiB"
    );
    let out = bed.history(&["-n", "2"]);
    assert_eq!(messages(&out), numbered((i - 2..i).rev()));
}

/// Lines a running `history --follow --json` printed, read as they come.
struct Follow {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follow {
    fn start(config: &Path, args: &[&str]) -> Follow {
        let mut child = std::process::Command::new(bin::BIN)
            .arg("--config")
            .arg(config)
            .args(["--json", "history", "--follow"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    /// The next `n` messages (a generous bound tells a hang from a wait).
    fn next(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let line = self
                    .lines
                    .recv_timeout(Duration::from_secs(60))
                    .expect("history --follow printed nothing new");
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
                v["message"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn follow_prints_the_backlog_oldest_first_then_new_events_across_rotations() {
    let bed = Bed::new(Some(("64KiB", 2)));
    bed.write(".1", 0..10);
    let full = bed.top_up("", 10);
    let follow = Follow::start(&bed.config, &["-n", "3"]);
    assert_eq!(
        follow.next(3),
        numbered(full.end - 3..full.end),
        "the backlog, oldest first"
    );
    // Written by habeat: the first one rotates the journal.
    bed.journal_one();
    assert!(
        std::fs::read_to_string(bed.journal(".1"))
            .expect("read .1")
            .contains("event 10"),
        "not rotated"
    );
    assert!(follow.next(1)[0].starts_with("paused"));
    bed.journal_one();
    assert!(follow.next(1)[0].starts_with("paused"));
    // More, up to the size, then habeat rotates again.
    let more = bed.top_up("", 5000);
    bed.journal_one();
    let mut want = numbered(more);
    let got = follow.next(want.len() + 1);
    let last = got[want.len()].clone();
    assert!(last.starts_with("paused"), "{last}");
    want.push(last);
    assert_eq!(got, want, "each event once, in order");
    // And the next line is the next event.
    bed.journal_one();
    assert!(follow.next(1)[0].starts_with("paused"));
}

#[test]
fn follow_with_no_journal_yet_waits_for_it() {
    let bed = Bed::new(None);
    let follow = Follow::start(&bed.config, &[]);
    bed.journal_one();
    assert!(follow.next(1)[0].starts_with("paused"));
}

/// `habeat <args>` as `sudo -u root` run by `alice` leaves it.
fn as_alice(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_habeat"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CONSUL_HTTP_TOKEN")
        .env("HABEAT_LOCK_WAIT", "5s")
        .env("SUDO_USER", "alice")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run habeat")
}

#[test]
fn operator_commands_name_who_gave_them_and_say_when_there_is_nothing_to_undo() {
    let bed = Bed::new(None);
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let resume = as_alice(&bed.config, &["resume"]);
    assert_eq!(resume.status.code(), Some(0), "{}", text(&resume));
    assert_eq!(
        out(&resume),
        "nothing to resume: not paused\n",
        "{}",
        text(&resume)
    );
    let rearm = as_alice(&bed.config, &["rearm"]);
    assert_eq!(rearm.status.code(), Some(0), "{}", text(&rearm));
    assert!(
        out(&rearm).starts_with("nothing to re-arm"),
        "{}",
        text(&rearm)
    );

    let zero = as_alice(&bed.config, &["pause", "--for", "0s"]);
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero));
    assert!(
        err(&zero).contains("to resume, use habeat resume"),
        "{}",
        text(&zero)
    );
    let month = as_alice(&bed.config, &["pause", "--for", "31d"]);
    assert_eq!(month.status.code(), Some(2), "{}", text(&month));
    assert!(
        err(&month).contains("longer than 30d is refused"),
        "{}",
        text(&month)
    );
    let long = as_alice(&bed.config, &["pause", "--for", "25h"]);
    assert_eq!(long.status.code(), Some(0), "{}", text(&long));
    assert!(
        err(&long).contains("no automatic failover for more than 1d"),
        "{}",
        text(&long)
    );

    // The pause names alice in the journal, its JSON and state.json.
    let shown = habeat(&bed.config, &["history", "-n", "1"]);
    assert!(
        out(&shown).contains("(by alice on no terminal)"),
        "{}",
        text(&shown)
    );
    let json = habeat(&bed.config, &["--json", "history", "-n", "1"]);
    let v: serde_json::Value = serde_json::from_str(out(&json).trim()).expect("one JSON line");
    assert_eq!(v["operator"], "alice on no terminal", "{v}");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bed.dir.path().join("state/state.json")).expect("state.json"),
    )
    .expect("JSON");
    assert_eq!(state["last_operator"]["command"], "pause", "{state}");
    assert_eq!(
        state["last_operator"]["by"], "alice on no terminal",
        "{state}"
    );
    let resume = as_alice(&bed.config, &["resume"]);
    assert_eq!(
        out(&resume),
        "resumed: automatic action is enabled again\n",
        "{}",
        text(&resume)
    );
}
