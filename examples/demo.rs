//! A failover rehearsal in under a minute, for a newcomer:
//!
//! ```sh
//! sudo cargo run --release --example demo
//! ```
//!
//! It builds a "primary" datacenter out of network namespaces (appserver,
//! proxy, a directory with a real slapd, a Consul server), an in-process
//! Consul API whose Serf view follows those namespaces, and a fake carbonio
//! CLI holding five accounts on the primary's mailstore; then it starts the
//! real `habeat run` for a node of the secondary DC, cuts the appserver
//! off, and prints what happens: each witness turning, the verdict, the
//! quorum gate, the promotion with its accounts, the proxy switch and the
//! hooks; then the peer's return and the re-arm. Everything is removed at
//! the end (also on Ctrl-C or a failure).
//!
//! Needs root (namespaces, nftables), iproute2 and slapd. It builds the
//! `habeat` binary and the fake carbonio of the same profile first, with
//! the cargo that runs it.
//!
//! The testbed is the one the end-to-end tests use
//! (`tests/support/testbed.rs`), included here by path.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::testbed::{self, Binaries, Daemon, Host, Options, Testbed};

/// Set by Ctrl-C: the rehearsal stops and the testbed is torn down (its
/// `Drop`), instead of leaving namespaces behind.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_interrupt() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// Sleep, in small steps, unless interrupted.
fn pause(d: Duration) -> Result<(), String> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted; cleaning up".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Prints everything new in the journal, the CLI call log and the hook log,
/// each line stamped with the time since the demo started.
struct Timeline {
    start_ms: u64,
    events_seen: usize,
    calls_seen: usize,
    hooks_seen: usize,
}

impl Timeline {
    fn stamp(&self, at_ms: u64) -> String {
        let d = at_ms.saturating_sub(self.start_ms);
        format!("[{:>3}.{}s]", d / 1000, (d % 1000) / 100)
    }

    fn say(&self, what: &str) {
        println!("{} ── {what}", self.stamp(testbed::now_ms()));
    }

    /// Print what is new; returns the new journal events.
    fn pump(&mut self, tb: &Testbed) -> Vec<Value> {
        let events = tb.events();
        let new: Vec<Value> = events.iter().skip(self.events_seen).cloned().collect();
        self.events_seen = events.len();
        // Journal events and CLI calls in the order they happened (an
        // action's start is journaled before its command runs).
        let mut lines: Vec<(u64, String)> = new
            .iter()
            .filter_map(|e| {
                let at = e["at"].as_u64().unwrap_or_else(testbed::now_ms);
                describe(e).map(|line| (at, line))
            })
            .collect();
        let calls = tb.calls();
        lines.extend(
            calls
                .iter()
                .skip(self.calls_seen)
                .map(|c| (c.at, format!("    $ {} {}", c.program, c.args))),
        );
        self.calls_seen = calls.len();
        lines.sort_by_key(|(at, _)| *at);
        for (at, line) in lines {
            println!("{} {line}", self.stamp(at));
        }
        let hooks = tb.hook_lines();
        for h in hooks.iter().skip(self.hooks_seen) {
            println!("{}     hook ran: {h}", self.stamp(testbed::now_ms()));
        }
        self.hooks_seen = hooks.len();
        new
    }

    /// Pump until `done` holds for an event, or `bound` passes.
    fn until(
        &mut self,
        tb: &Testbed,
        daemon: &mut Daemon,
        bound: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<bool, String> {
        let until = Instant::now() + bound;
        while Instant::now() < until {
            if self.pump(tb).iter().any(&done) {
                return Ok(true);
            }
            if !daemon.running() {
                return Err(format!(
                    "habeat run exited early; its log:\n{}",
                    daemon.output()
                ));
            }
            pause(Duration::from_millis(100))?;
        }
        Ok(false)
    }
}

/// One journal event in a line, or `None` for the chatter.
fn describe(e: &Value) -> Option<String> {
    let kind = e["event"].as_str().unwrap_or("?");
    let msg = e["message"].as_str().unwrap_or("");
    let label = match kind {
        "vote_changed" => {
            let w = &e["witness"];
            // `icmp`, or `{"ldap": {"port": 389}}` for a probe with a port.
            let kind = match &w["kind"] {
                Value::String(k) => k.clone(),
                Value::Object(o) => o
                    .iter()
                    .next()
                    .map(
                        |(k, v)| match v.as_object().and_then(|v| v.values().next()) {
                            Some(p) => format!("{k}:{p}"),
                            None => k.clone(),
                        },
                    )
                    .unwrap_or_default(),
                _ => "?".into(),
            };
            let name = format!("{}/{kind}", w["component"].as_str().unwrap_or("?"));
            return Some(format!(
                "  witness {name:<24} {} → {}",
                e["from"].as_str().unwrap_or("?"),
                e["to"].as_str().unwrap_or("?")
            ));
        }
        "verdict_changed" => "VERDICT",
        "gate_refused" => "GATE REFUSED",
        "promotion_intent" => {
            let accounts: Vec<&str> = e["accounts"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            return Some(format!(
                "▶ PROMOTION of {} account(s) from {}: {}",
                accounts.len(),
                e["source_mail_host"].as_str().unwrap_or("?"),
                accounts.join(", ")
            ));
        }
        "action_started" => "  action",
        "action_succeeded" => return Some(format!("  ✓ {}", msg.trim_start_matches("done: "))),
        "action_failed" => "  FAILED",
        "pipeline_finished" => "✓ finished",
        "rearmed" => "✓ RE-ARMED",
        "decision" => "  decision",
        _ => kind,
    };
    Some(format!("{label}: {msg}"))
}

/// `target/<profile>` of this example, and whether it is `release`.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/examples/demo
    exe.parent()?.parent().map(Path::to_path_buf)
}

/// Build habeat and the fake carbonio for this profile with the cargo
/// that runs the demo (a no-op when they are fresh).
fn build(profile: &Path) -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(()); // not under cargo: use what is there
    };
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--bin",
        "habeat",
        "--example",
        "fake_carbonio",
    ])
    .arg("--manifest-path")
    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let st = cmd
        .status()
        .map_err(|e| format!("cannot run cargo to build habeat: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("building habeat failed ({st})"))
    }
}

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "demo: the rehearsal builds network namespaces and needs root:\n  sudo cargo run --release --example demo"
        );
        return ExitCode::from(2);
    }
    if !support::need::lacking(testbed::NEEDS).is_empty() {
        // A fresh machine: install what the rehearsal needs (namespaces,
        // nftables, a real slapd) with the script CI uses, and only that
        // (`--demo`: not the packaging and contrib tools of the suite).
        let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/deps");
        eprintln!(
            "demo: installing the rehearsal's packages ({} --demo)",
            deps.display()
        );
        let installed = std::process::Command::new("bash")
            .arg(&deps)
            .arg("--demo")
            .status()
            .is_ok_and(|s| s.success());
        if !installed || !support::need::lacking(testbed::NEEDS).is_empty() {
            eprintln!(
                "demo: install iproute2, nftables and slapd (apt-get install iproute2 nftables slapd)"
            );
            return ExitCode::from(2);
        }
    }
    let Some(profile) = profile_dir() else {
        eprintln!("demo: cannot tell where this example was built");
        return ExitCode::from(1);
    };
    if let Err(e) = build(&profile) {
        eprintln!("demo: {e}");
        return ExitCode::from(1);
    }
    let bins = match Binaries::beside(&profile.join("habeat")) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    catch_interrupt();
    match rehearse(bins) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(1)
        }
    }
}

fn rehearse(bins: Binaries) -> Result<(), String> {
    let started = Instant::now();
    let opts = Options {
        interval: Duration::from_millis(500),
        timeout: Duration::from_millis(400),
        fall: 3,
        rise: 2,
        serf_delay: Duration::from_secs(3),
        accounts: ["alice", "bob", "carol", "dave", "erin"]
            .iter()
            .map(|n| format!("{n}@example.test"))
            .collect(),
        ..Options::default()
    };
    println!("habeat failover rehearsal");
    println!("=========================");
    println!(
        "This node: a mailstore in DC `secondary` (roles appserver, proxyserver).\n\
         Peer DC `primary`, built from network namespaces:"
    );
    let tb = Testbed::start(opts, bins);
    for (h, what) in [
        (Host::Appserver, "appserver (mailstore) "),
        (Host::Proxy, "proxy                 "),
        (Host::Directory, "directory (real slapd)"),
        (Host::ConsulServer, "consul server         "),
    ] {
        println!("  {what} {:<22} {}", h.hostname(), tb.ip(h));
    }
    println!(
        "Witnesses per component: ICMP, Consul Serf membership, Consul serfHealth (+ LDAP for the directory).\n\
         Detection: interval 500ms, timeout 400ms, fall 3, rise 2; Serf declares a host failed 3s after its link dies.\n\
         Accounts on {}: {}\n\
         Config: {}\n",
        testbed::SOURCE_HOST,
        tb.opts.accounts.join(", "),
        tb.config.display()
    );
    let mut tl = Timeline {
        start_ms: testbed::now_ms(),
        events_seen: 0,
        calls_seen: 0,
        hooks_seen: 0,
    };
    let mut daemon = tb.spawn_daemon();
    tl.say(&format!("habeat run started (pid {})", daemon.pid()));
    let healthy = |e: &Value| {
        e["event"] == "verdict_changed"
            && e["component"] == "appserver"
            && e["to"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("up"))
    };
    if !tl.until(&tb, &mut daemon, Duration::from_secs(30), healthy)? {
        return Err(format!(
            "habeat never saw the peer appserver Up; its log:\n{}",
            daemon.output()
        ));
    }
    tl.pump(&tb);
    pause(Duration::from_secs(1))?;
    tl.pump(&tb);
    tl.say("HEALTHY: every witness sees the primary Up. Now cutting the appserver off...");
    tb.kill_host(Host::Appserver);
    tl.say(&format!(
        "✂ {} link down (no carrier: pings vanish; Serf will notice in 3s)",
        testbed::SOURCE_HOST
    ));
    let finished = |e: &Value| e["event"] == "pipeline_finished";
    if !tl.until(&tb, &mut daemon, Duration::from_secs(40), finished)? {
        return Err(format!(
            "no finished promotion within 40s; habeat's log:\n{}",
            daemon.output()
        ));
    }
    let moved = tb.accounts_on(testbed::REPLICA_HOST);
    tl.say(&format!(
        "FAILED OVER: {} account(s) now on {}: {}",
        moved.len(),
        testbed::REPLICA_HOST,
        moved.join(", ")
    ));
    tl.say(&format!("lock files: {}", tb.lock_files().join(", ")));
    pause(Duration::from_secs(1))?;
    tl.pump(&tb);
    tl.say("The primary's appserver comes back...");
    tb.restore_host(Host::Appserver);
    let rearmed = |e: &Value| e["event"] == "rearmed";
    if !tl.until(&tb, &mut daemon, Duration::from_secs(30), rearmed)? {
        return Err(format!(
            "no re-arm within 30s of the peer's return; habeat's log:\n{}",
            daemon.output()
        ));
    }
    // Let the recovery hooks show.
    let hooks_done = |tb: &Testbed| tb.hook_lines().iter().any(|l| l == "on_peer_recovered");
    testbed::wait_until(Duration::from_secs(10), || hooks_done(&tb));
    pause(Duration::from_millis(500))?;
    tl.pump(&tb);
    let locks: BTreeSet<String> = tb.lock_files().into_iter().collect();
    tl.say(&format!(
        "RE-ARMED: lock files now: {}; accounts stay on {} (fail-back is never automatic)",
        if locks.is_empty() {
            "none".to_owned()
        } else {
            locks.into_iter().collect::<Vec<_>>().join(", ")
        },
        testbed::REPLICA_HOST
    ));
    let st = daemon.terminate(Duration::from_secs(20));
    tl.say(&format!(
        "habeat stopped ({})",
        st.map_or("killed".to_owned(), |s| s.to_string())
    ));
    println!(
        "\nRehearsal done in {:.1}s. promoteAccounts ran {} time(s); hooks in order: {}.\n\
         Try next: `habeat status`, `habeat history` against your own config; docs/ARCHITECTURE.md.",
        started.elapsed().as_secs_f64(),
        tb.promote_calls().len(),
        tb.hook_lines().join(" → ")
    );
    Ok(())
}
