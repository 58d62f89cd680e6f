//! `habeat run` inside the file-system sandbox of the shipped
//! `systemd/habeat.service`, promoting a dead peer's accounts in
//! `replicas.at_risk: hold` mode (`promoteAccounts input_file`) with the
//! proxy switch and an `after_promotion` hook that uses `mktemp`.
//!
//! Which sandbox: the unit's own settings, read from the shipped file, so
//! a change to the unit changes this test. A real systemd would be best
//! (`systemd-run -p ProtectSystem=strict ...`), but the test machines'
//! PID 1 is not systemd, and booting one in `systemd-nspawn` needs an OS
//! tree we cannot fetch offline. So the file-system settings are emulated
//! with a private mount namespace (`unshare -m`), as systemd itself builds
//! them: `ProtectSystem=strict` remounts every mount read-only except
//! /dev, /proc and /sys; `PrivateTmp=yes` would put fresh tmpfs on /tmp
//! and /var/tmp; `ProtectHome=` hides /home, /root and /run/user;
//! `ReadWritePaths=` (and `StateDirectory=`) bind the listed paths writable
//! again ("-" ignores a missing one); `UMask=`; `NoNewPrivileges=` and
//! `CapabilityBoundingSet=` through `setpriv`. The bed's scratch
//! directories are added as an administrator would in a drop-in
//! (docs/install.md §6). Not emulated: the seccomp filters
//! (`SystemCallArchitectures=`, `RestrictAddressFamilies=`, ...), which do
//! not decide where files may be written. A file-system setting the
//! emulation does not know fails the test rather than being ignored.

use crate::bed::{Bed, REPLICA, SOURCE, text};
use crate::fake_carbonio::{self, ReplicaState};
use crate::support::{Need, require};
use crate::systemd_units::{read_unit, section, words};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// "It did not hang": the bound on any single wait here.
const BOUND: Duration = Duration::from_secs(60);

/// File-system settings the emulation must understand if the unit uses
/// them: any of these appearing unhandled would make it a false pass.
const FS_SETTINGS: &[&str] = &[
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "ExecPaths",
    "NoExecPaths",
    "TemporaryFileSystem",
    "BindPaths",
    "BindReadOnlyPaths",
    "PrivateDevices",
    "RootDirectory",
    "RootImage",
    "RuntimeDirectory",
    "CacheDirectory",
    "LogsDirectory",
    "ConfigurationDirectory",
    "ProtectProc",
];

/// The shell script that builds the unit's sandbox in a fresh mount
/// namespace and then runs `argv` in it, `extra_rw` added to
/// `ReadWritePaths=` (the drop-in).
fn sandbox_script(unit: &str, extra_rw: &[&Path], argv: &[String]) -> String {
    let s = section(&read_unit(unit), "Service");
    for k in FS_SETTINGS {
        assert!(
            !s.contains_key(*k),
            "{unit} sets {k}=, which this emulation does not build: teach it"
        );
    }
    let one = |k: &str| s.get(k).and_then(|v| v.last()).map(String::as_str);
    let mut sh = vec!["set -e".to_owned(), "mount --make-rprivate /".to_owned()];
    if let Some(m) = one("UMask") {
        sh.push(format!("umask {m}"));
    }
    match one("PrivateTmp").unwrap_or("no") {
        "no" | "false" => {}
        "yes" | "true" => {
            sh.push("mount -t tmpfs -o mode=1777 tmpfs /tmp".into());
            sh.push("mount -t tmpfs -o mode=1777 tmpfs /var/tmp".into());
        }
        other => panic!("PrivateTmp={other} is not emulated"),
    }
    match one("ProtectSystem").unwrap_or("no") {
        "strict" => {
            // Every mount but the API file systems, read-only.
            sh.push("mount -o remount,bind,ro /".into());
            sh.push(
                "awk '{print $5}' /proc/self/mountinfo | while read -r mp; do \
                 mp=$(printf '%b' \"$mp\"); case \"$mp\" in /|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;; \
                 *) mount -o remount,bind,ro \"$mp\" ;; esac; done"
                    .into(),
            );
        }
        other => panic!("ProtectSystem={other} is not emulated (the unit ships strict)"),
    }
    match one("ProtectHome").unwrap_or("no") {
        "no" | "false" | "read-only" => {}
        mode @ ("yes" | "true" | "tmpfs") => {
            let perm = if mode == "tmpfs" { "0755" } else { "000" };
            for d in ["/home", "/root", "/run/user"] {
                sh.push(format!(
                    "if [ -d {d} ]; then mount -t tmpfs -o ro,mode={perm} tmpfs {d}; fi"
                ));
            }
        }
        other => panic!("ProtectHome={other} is not emulated"),
    }
    // systemd creates the StateDirectory= before it builds the namespace;
    // the emulation does not create it on the test machine, and nothing
    // here uses it (the bed's state_dir is in the drop-in).
    let made: Vec<String> = words(&s, "StateDirectory")
        .iter()
        .map(|d| format!("/var/lib/{d}"))
        .collect();
    let mut rw: Vec<String> = words(&s, "ReadWritePaths");
    rw.extend(made.iter().map(|p| format!("-{p}")));
    rw.extend(extra_rw.iter().map(|p| p.display().to_string()));
    for w in rw {
        let (optional, p) = match w.strip_prefix('-') {
            Some(p) => (true, p.trim_start_matches('+').to_owned()),
            None => (false, w.trim_start_matches('+').to_owned()),
        };
        let optional = optional || made.contains(&p);
        let bind = format!("mount --bind '{p}' '{p}' && mount -o remount,bind,rw '{p}'");
        sh.push(if optional {
            format!("if [ -e '{p}' ]; then {bind}; fi")
        } else {
            // systemd fails the unit (226/NAMESPACE) on a missing path.
            format!(
                "[ -e '{p}' ] || {{ echo 'ReadWritePaths={p} is missing' >&2; exit 226; }}; {bind}"
            )
        });
    }
    let mut exec = vec!["exec".to_owned(), "setpriv".to_owned()];
    if one("NoNewPrivileges") == Some("yes") {
        exec.push("--no-new-privs".into());
    }
    let caps = words(&s, "CapabilityBoundingSet");
    if !caps.is_empty() {
        let set = std::iter::once("-all".to_owned())
            .chain(
                caps.iter()
                    .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase())),
            )
            .collect::<Vec<_>>()
            .join(",");
        exec.push("--bounding-set".into());
        exec.push(set);
    }
    exec.push("--".into());
    exec.extend(
        argv.iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''"))),
    );
    sh.push(exec.join(" "));
    sh.join("\n")
}

/// `argv` in the sandbox of `unit` plus `extra_rw`.
fn sandboxed(unit: &str, extra_rw: &[&Path], argv: &[String]) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "--",
        "sh",
        "-c",
        &sandbox_script(unit, extra_rw, argv),
    ]);
    c.stdin(Stdio::null());
    c
}

/// The unit's sandbox rebuilt by hand: network namespaces for the peer
/// hosts, a mount namespace for its view of the file system, setpriv for
/// its capability bounding set.
const SANDBOX: &[Need] = &[Need::Netns, Need::MountNamespace, Need::SETPRIV];

/// Kills the daemon if the test fails before it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until(what: &str, log: impl Fn() -> String, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {BOUND:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon under the shipped unit's sandbox promotes a dead peer in
/// hold mode: the `input_file` copy, the proxy switch and a hook that
/// makes a temporary file all find a writable place, and the copy is gone
/// afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_promotes_in_hold_mode_inside_the_shipped_units_sandbox() {
    if !require(SANDBOX) {
        return;
    }
    let paused = {
        let mut r = ReplicaState::on(REPLICA);
        r.paused = Some(true);
        fake_carbonio::Account {
            replicas: vec![r],
            ..fake_carbonio::account("paused@example.com", SOURCE, REPLICA)
        }
    };
    let bed = Bed::builder()
        .accounts(vec![
            fake_carbonio::account("alice@example.com", SOURCE, REPLICA),
            paused,
        ])
        .consul_provider_threads_3()
        .full_failover()
        .carbonio_timeouts("10s", "20s")
        .add(
            "hooks",
            r#"after_promotion: ["t=$(mktemp) && echo after_promotion > \"$t\" && cat \"$t\" >> {hooks} && rm \"$t\""]"#,
        )
        .tail("replicas:\n  survey_interval: 5m\n  at_risk: hold\n")
        .start()
        .await;
    let rw = [bed.dir.path(), bed.fake.dir.path()];

    // The emulation does confine: /tmp is not writable in it, the drop-in's
    // directory is.
    let probe = sandboxed(
        "habeat.service",
        &rw,
        &[
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "touch {}/probe; if touch /tmp/habeat-sandbox-probe 2>/dev/null; then \
                 rm -f /tmp/habeat-sandbox-probe; echo TMP-WRITABLE; fi",
                bed.dir.path().display()
            ),
        ],
    )
    .output()
    .expect("run the sandbox probe");
    assert!(probe.status.success(), "{}", text(&probe));
    assert!(
        !String::from_utf8_lossy(&probe.stdout).contains("TMP-WRITABLE"),
        "the shipped unit leaves /tmp read-only, the emulation must too"
    );
    assert!(bed.path("probe").exists(), "the drop-in path is writable");

    let log = bed.path("daemon.err");
    let child = sandboxed(
        "habeat.service",
        &rw,
        &[
            env!("CARGO_BIN_EXE_habeat").to_owned(),
            "--config".into(),
            bed.config.display().to_string(),
            "run".into(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).expect("create daemon.err"))
    .spawn()
    .expect("start habeat run in the sandbox");
    let _daemon = Daemon(child);
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();

    wait_until("the first replica survey", daemon_log, || {
        bed.path("state/survey.json").exists()
    })
    .await;
    bed.kill_peer();
    wait_until(
        "alice promoted and the after_promotion hook run",
        || format!("{}\n--- journal\n{}", daemon_log(), bed.journal_text()),
        || {
            bed.fake.accounts_on(REPLICA) == ["alice@example.com"]
                && bed.hooks_log().contains("after_promotion")
        },
    )
    .await;

    assert_eq!(bed.fake.accounts_on(SOURCE), ["paused@example.com"]);
    let promote = bed
        .calls("promoteAccounts")
        .into_iter()
        .next()
        .expect("promoteAccounts ran");
    let at = promote
        .args
        .iter()
        .position(|a| a == "input_file")
        .unwrap_or_else(|| panic!("hold promotes through input_file: {:?}", promote.args));
    let copy = PathBuf::from(&promote.args[at + 1]);
    assert!(!copy.exists(), "{} is left behind", copy.display());
    assert!(
        bed.hooks_log().contains("activate"),
        "the proxy switch ran: {}",
        bed.hooks_log()
    );
    let errors: Vec<String> = bed
        .journal()
        .into_iter()
        .filter(|e| e["severity"] == "error")
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "errors journaled: {errors:#?}");
}
