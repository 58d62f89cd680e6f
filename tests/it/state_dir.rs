//! The state directory and the legacy lock files against another local user
//! (root writes there, so a user who can plant a file must not steer it),
//! through the real binary: nothing is written through a symlink, a state
//! directory others may write to is refused with what to do, and a lock file
//! planted in world-writable /var/tmp is looked at, never followed or waited
//! for.

use crate::bin;
use crate::support::{Need, require};

use bin::{DEAD_IP, habeat, text};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A scratch installation: `state/` (mode 0700, as habeat creates it) for
/// `local.state_dir`, and `tmp/` (mode 1777, like /var/tmp) for the
/// legacy lock files.
struct Bed {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Bed {
    fn new() -> Bed {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        set_mode(&state, 0o700);
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("tmp dir");
        set_mode(&tmp, 0o1777);
        let yaml = format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  state_dir: {d}/state\n  \
             checkDownFile: {d}/tmp/appserverdown-habeat\n  \
             checkPromotionFile: {d}/tmp/appserverprom-habeat\n  \
             checkRestartReplicaFile: {d}/tmp/appserverrstopha\n\
             primary:\n  appserver_ip: {DEAD_IP}\n  appserver_vmname: mbox1.example.com\n"
        );
        let config = dir.path().join("habeat.yml");
        std::fs::write(&config, yaml).expect("write config");
        Bed { dir, config }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A file outside the state directory that habeat must never touch.
    fn victim(&self) -> PathBuf {
        let v = self.dir.path().join("victim");
        std::fs::write(&v, "precious\n").expect("write victim");
        v
    }

    /// `habeat pause --for 1m`: takes the state lock, saves the state and
    /// journals an event, with no witness to ask.
    fn pause(&self) -> std::process::Output {
        habeat(&self.config, &["pause", "--for", "1m"])
    }
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[track_caller]
fn refused(out: &std::process::Output, words: &[&str]) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for w in words {
        assert!(stderr.contains(w), "stderr does not say {w:?}: {all}");
    }
}

#[test]
fn a_state_lock_that_is_a_symlink_is_refused_and_its_target_left_alone() {
    let bed = Bed::new();
    let victim = bed.victim();
    let lock = bed.state().join("lock");
    std::os::unix::fs::symlink(&victim, &lock).expect("plant symlink");
    let out = bed.pause();
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n",
        "the lock was written through the symlink: {}",
        text(&out)
    );
    refused(&out, &[&lock.display().to_string(), "symbolic link", "rm "]);
}

#[test]
fn a_journal_that_is_a_symlink_is_not_appended_to() {
    let bed = Bed::new();
    let victim = bed.victim();
    let journal = bed.state().join("events.jsonl");
    std::os::unix::fs::symlink(&victim, &journal).expect("plant symlink");
    let out = bed.pause();
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n",
        "the journal was appended through the symlink: {}",
        text(&out)
    );
    refused(&out, &[&journal.display().to_string(), "symbolic link"]);
}

#[test]
fn a_state_dir_other_users_can_write_is_refused_with_the_fix() {
    for (mode, who) in [
        (0o777, "its group and every user"),
        (0o770, "its group"),
        (0o703, "every user"),
    ] {
        let bed = Bed::new();
        let state = bed.state();
        set_mode(&state, mode);
        let shown = state.display().to_string();
        let fix = format!("chmod go-w {shown}");
        let out = bed.pause();
        refused(&out, &[&shown, who, &fix]);
        assert!(
            std::fs::read_dir(&state).expect("read").next().is_none(),
            "{mode:o}: habeat wrote into it: {}",
            text(&out)
        );
        // Reading what others could have forged is refused too.
        for cmd in [
            &["status"][..],
            &["history"][..],
            &["--dry-run", "check"][..],
        ] {
            let out = habeat(&bed.config, cmd);
            refused(&out, &[&shown, &fix]);
        }
    }
}

#[test]
fn a_state_dir_owned_by_another_user_is_refused_with_the_fix() {
    // chown to another user.
    if !require(&[Need::Root]) {
        return;
    }
    let bed = Bed::new();
    let state = bed.state();
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map_or(65534, |u| u.uid.as_raw());
    std::os::unix::fs::chown(&state, Some(nobody), None).expect("chown");
    let out = bed.pause();
    refused(
        &out,
        &[&state.display().to_string(), "owned by", "chown root "],
    );
}

#[test]
fn a_state_dir_whose_parent_anyone_may_rename_it_in_is_refused() {
    let bed = Bed::new();
    set_mode(bed.dir.path(), 0o777);
    let out = bed.pause();
    refused(
        &out,
        &[
            &bed.dir.path().display().to_string(),
            "without the sticky bit",
            "chmod o-w",
        ],
    );
    // /tmp's mode (sticky) is fine.
    set_mode(bed.dir.path(), 0o1777);
    let out = bed.pause();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Wait for `child` at most `bound` (generous: it only tells a hang from
/// an answer), killing it if it is still running.
fn finishes_within(
    mut child: std::process::Child,
    bound: Duration,
) -> Option<std::process::Output> {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_lock_file_planted_in_var_tmp_as_a_fifo_or_a_symlink_is_present_and_never_opened_through() {
    let bed = Bed::new();
    let tmp = bed.dir.path().join("tmp");
    // Another user's FIFO, and a symlink to another FIFO: opening either
    // for reading waits for a writer that never comes.
    let fifo = bed.dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).expect("mkfifo");
    nix::unistd::mkfifo(
        &tmp.join("appserverdown-habeat-appserver"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .expect("mkfifo");
    std::os::unix::fs::symlink(&fifo, tmp.join("appserverprom-habeat-appserver"))
        .expect("plant symlink");
    let child = std::process::Command::new(bin::BIN)
        .arg("--config")
        .arg(&bed.config)
        .args(["--json", "status"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn habeat");
    let out = finishes_within(child, Duration::from_secs(60))
        .expect("`habeat status` hung opening a planted lock file");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = bin::json(&out);
    let present: Vec<&str> = v["locks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["present"] == true)
        .filter_map(|l| l["lock"].as_str())
        .collect();
    // Something is there under each name: it counts, as a lock written by
    // hand does (the safe side: it holds automatic promotion back).
    assert_eq!(present, ["down", "promotion"], "{}", text(&out));
}
