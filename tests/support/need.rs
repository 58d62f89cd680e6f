//! What a test needs from the machine, and the one way a test may go
//! without it: [`require`].
//!
//! A test that cannot do its work here (no root, no network namespaces, a
//! program missing) must not pass as if it had. [`require`] is the only
//! place that lets it return early:
//! - with `CI` set (to anything but empty, `0` or `false`) it panics,
//!   naming what is missing and the Debian package that `.ci/deps`
//!   installs for it: on CI every test runs or the run fails (`.ci/run`
//!   sets `CI=true`, also where `sudo` dropped the runner's environment);
//! - elsewhere (a developer's `cargo test` as a user) it writes a
//!   `SKIPPED <test>: ...` line straight to the process's stderr, past
//!   libtest's output capture, so that it shows between the `ok` lines of
//!   a plain `cargo test`, and returns false.
//!
//! `tests/it/test_guards.rs` fails if a test returns early, prints a skip
//! or reads `CI` anywhere else.

use std::io::Write;
use std::process::{Command, Stdio};

/// One thing a test needs from the machine.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Root: switching users, chown to another user, raw ICMP.
    Root,
    /// Network namespaces: root, `ip netns` (iproute2), `nft` (nftables).
    Netns,
    /// A mount namespace: root and `unshare -m` (util-linux).
    MountNamespace,
    /// A program, by absolute path or looked up on `PATH`, and the Debian
    /// package that provides it (`.ci/deps` installs it).
    Program {
        name: &'static str,
        package: &'static str,
    },
}

impl Need {
    /// The real directory server of the LDAP witness tests and the testbed.
    pub const SLAPD: Need = Need::Program {
        name: "/usr/sbin/slapd",
        package: "slapd",
    };
    /// The ClusterLabs agent the fencing tests run.
    pub const FENCE_DUMMY: Need = Need::Program {
        name: "/usr/sbin/fence_dummy",
        package: "fence-agents",
    };
    /// Makes the certificates of the HTTPS tests.
    pub const OPENSSL: Need = Need::Program {
        name: "openssl",
        package: "openssl",
    };
    pub const SYSTEMD_ANALYZE: Need = Need::Program {
        name: "systemd-analyze",
        package: "systemd",
    };
    /// Drops capabilities to the unit's bounding set.
    pub const SETPRIV: Need = Need::Program {
        name: "setpriv",
        package: "util-linux",
    };
    /// Sets the wall clock of one process.
    pub const FAKETIME: Need = Need::Program {
        name: "/usr/bin/faketime",
        package: "faketime",
    };
    /// Checks and unit-tests the alerting rules in contrib/.
    pub const PROMTOOL: Need = Need::Program {
        name: "/usr/bin/promtool",
        package: "prometheus",
    };
    /// A real server that scrapes `habeat run` and evaluates the rules.
    pub const PROMETHEUS: Need = Need::Program {
        name: "/usr/bin/prometheus",
        package: "prometheus",
    };

    /// Every need a test may name: `tests/it/test_guards.rs` checks that
    /// `.ci/deps` installs the packages of each.
    pub const ALL: &[Need] = &[
        Need::Root,
        Need::Netns,
        Need::MountNamespace,
        Need::SLAPD,
        Need::FENCE_DUMMY,
        Need::OPENSSL,
        Need::SYSTEMD_ANALYZE,
        Need::SETPRIV,
        Need::FAKETIME,
        Need::PROMTOOL,
        Need::PROMETHEUS,
    ];

    /// The program of a [`Need::Program`], to run it by the name checked.
    pub fn program(self) -> &'static str {
        match self {
            Need::Program { name, .. } => name,
            other => panic!("{other:?} is not a program"),
        }
    }

    /// The Debian packages that provide it.
    pub fn packages(self) -> Vec<&'static str> {
        match self {
            Need::Root => vec![],
            Need::Netns => vec!["iproute2", "nftables"],
            Need::MountNamespace => vec!["util-linux"],
            Need::Program { package, .. } => vec![package],
        }
    }

    /// None when the machine has it, else what is missing and how to get it.
    fn missing(self) -> Option<String> {
        let root = nix::unistd::geteuid().is_root();
        match self {
            Need::Root if root => None,
            Need::Root => Some("not running as root".into()),
            Need::Netns => {
                if !root {
                    Some("network namespaces need root, and this runs as a user".into())
                } else if !succeeds("ip", &["netns", "list"]) {
                    Some("`ip netns list` fails (install iproute2)".into())
                } else if !succeeds("nft", &["--version"]) {
                    Some("`nft` does not run (install nftables)".into())
                } else {
                    None
                }
            }
            Need::MountNamespace => {
                if !root {
                    Some("a mount namespace needs root, and this runs as a user".into())
                } else if !succeeds("unshare", &["-m", "true"]) {
                    Some("`unshare -m true` fails (install util-linux)".into())
                } else {
                    None
                }
            }
            Need::Program { name, package } => (!installed(name))
                .then(|| format!("{name} is not installed (install the {package} package)")),
        }
    }
}

/// What of `needs` this machine lacks, each with how to get it (empty:
/// nothing). For the demo and the benchmarks, which are not tests and
/// decide for themselves; a test uses [`require`].
pub fn lacking(needs: &[Need]) -> Vec<String> {
    needs.iter().filter_map(|n| n.missing()).collect()
}

/// Whether CI runs this: `CI` set to anything but empty, `0` or `false`.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Whether the calling test has everything in `needs`. When it has not:
/// panics on CI ([`on_ci`]); elsewhere says `SKIPPED` loudly and returns
/// false, and the test returns at once (`if !require(..) { return; }`).
#[must_use = "a test that lacks what it needs must return at once"]
pub fn require(needs: &[Need]) -> bool {
    let missing = lacking(needs);
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("this test")
        .to_owned();
    let why = missing.join("; ");
    if on_ci() {
        panic!(
            "{test} cannot run here and CI must not skip it: {why}. \
             `bash .ci/deps` installs the packages; run the suite as root \
             (`sudo bash .ci/run`)"
        );
    }
    // Straight to the file descriptor: libtest captures what eprintln!
    // writes and shows it only for a failing test.
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: {why} (it runs as root after `bash .ci/deps`; with CI=true this is a failure)"
    );
    false
}

fn succeeds(prog: &str, args: &[&str]) -> bool {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An executable file at `name` (a path), or of that name in a `PATH`
/// directory.
fn installed(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return executable(std::path::Path::new(name));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| executable(&d.join(name))))
}
