//! How long from the peer appserver's link going down to `promoteAccounts`
//! being invoked, split into detection (until the appserver verdict turns
//! Down, from `events.jsonl`) and action (from there to the fake carbonio's
//! `promoteAccounts`, from the call log written by its wrapper).
//!
//! ```sh
//! sudo cargo bench --bench failover            # 10 repetitions per setup
//! HABEAT_BENCH_REPS=20 sudo -E cargo bench --bench failover
//! ```
//!
//! Two setups, both at `interval` 1s, `fall` 3, `timeout` 500ms, on the
//! testbed of the end-to-end tests (network namespaces, the Consul API test
//! server, the fake carbonio):
//!
//! - **default**: every witness (ICMP, LDAP for the directory, Consul
//!   members, Consul serfHealth), `quorum: all`, the quorum gate on; Serf
//!   declares the host failed 5 s after its link dies, as a real cluster
//!   does, so detection is bounded below by Serf plus fall × interval.
//! - **icmp-only**: `quorum: 1`, Consul witnesses off (the gate stays on):
//!   detection is bounded by fall × interval (+ timeout).
//!
//! The link goes down at a different phase of the probe round in each
//! repetition. Prints a table; no assertion (figures, not tests). Needs
//! root; says why and exits 0 when it cannot run.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::path::Path;
use std::time::Duration;
use support::testbed::{self, Binaries, Host, Options, Testbed};

/// One repetition: milliseconds of detection and action.
#[derive(Debug, Clone, Copy)]
struct Sample {
    detection: u64,
    action: u64,
}

fn binaries() -> Result<Binaries, String> {
    let habeat = Path::new(env!("CARGO_BIN_EXE_habeat"));
    if let Some(cargo) = std::env::var_os("CARGO") {
        // `cargo bench` builds benches, not the fake carbonio example.
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--quiet", "--example", "fake_carbonio"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        if habeat
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "release")
        {
            cmd.arg("--release");
        }
        let st = cmd
            .status()
            .map_err(|e| format!("cannot run cargo to build the fake carbonio: {e}"))?;
        if !st.success() {
            return Err(format!("building the fake carbonio failed ({st})"));
        }
    }
    Binaries::beside(habeat)
}

fn once(tb: &Testbed, rep: u32) -> Result<Sample, String> {
    tb.reset();
    let mut daemon = tb.spawn_daemon();
    let up = || {
        tb.state_json()
            .and_then(|s| {
                s["components"]["appserver"]["verdict"]
                    .as_str()
                    .map(str::to_owned)
            })
            .is_some_and(|v| v.eq_ignore_ascii_case("up"))
    };
    if !testbed::wait_until(Duration::from_secs(30), up) {
        return Err(format!(
            "habeat never saw the appserver Up:\n{}",
            tb.diagnostics()
        ));
    }
    // Land the link-down at a different phase of the round each time.
    let phase = (u64::from(rep) * 137) % 1000;
    std::thread::sleep(Duration::from_millis(1000 + phase));
    let t0 = tb.kill_host(Host::Appserver);
    if !testbed::wait_until(Duration::from_secs(60), || !tb.promote_calls().is_empty()) {
        return Err(format!(
            "no promoteAccounts within 60s:\n{}",
            tb.diagnostics()
        ));
    }
    let promoted = tb.promote_calls()[0].at;
    let confirmed = tb
        .events_of("verdict_changed")
        .iter()
        .filter(|e| {
            e["component"] == "appserver"
                && e["to"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("down"))
        })
        .filter_map(|e| e["at"].as_u64())
        .find(|at| *at + 1000 >= t0)
        .ok_or_else(|| format!("no Down verdict in the journal:\n{}", tb.diagnostics()))?;
    daemon.terminate(Duration::from_secs(10));
    Ok(Sample {
        detection: confirmed.saturating_sub(t0),
        action: promoted.saturating_sub(confirmed),
    })
}

fn stats(mut v: Vec<u64>) -> (u64, u64, u64, u64) {
    v.sort_unstable();
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (v[0], pick(0.5), pick(0.9), v[v.len() - 1])
}

fn main() {
    // `cargo test --all-targets` runs bench programs too, without `--bench`:
    // the figures are for `cargo bench`, so don't spend CI time on them.
    if !std::env::args().any(|a| a == "--bench") {
        println!("failover bench: run with `sudo cargo bench --bench failover` for figures");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!("failover bench: SKIPPED (needs root for network namespaces)");
        return;
    }
    if !testbed::available("failover bench") {
        return;
    }
    let bins = match binaries() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("failover bench: {e}");
            std::process::exit(1);
        }
    };
    let reps: u32 = std::env::var("HABEAT_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let base = Options {
        roles: vec!["appserver"],
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        fall: 3,
        rise: 2,
        serf_delay: Duration::from_secs(5),
        flush_cache: false,
        ..Options::default()
    };
    let setups = [
        ("default (all witnesses, quorum all, Serf 5s)", base.clone()),
        (
            "icmp-only (quorum 1, Consul witnesses off)",
            Options {
                quorum: Some(1),
                consul_witnesses: false,
                ..base.clone()
            },
        ),
    ];
    println!(
        "failover latency: appserver link down -> promoteAccounts invoked; interval 1s, fall 3, timeout 500ms; {reps} repetitions each; habeat {}",
        bins.habeat.display()
    );
    let mut rows = Vec::new();
    for (name, opts) in &setups {
        let mut samples = Vec::new();
        // One stage per setup, reset between repetitions.
        let tb = Testbed::start(opts.clone(), bins.clone());
        for rep in 0..reps {
            match once(&tb, rep) {
                Ok(s) => {
                    eprintln!(
                        "  {name} #{rep}: detection {} ms, action {} ms",
                        s.detection, s.action
                    );
                    samples.push(s);
                }
                Err(e) => eprintln!("  {name} #{rep}: FAILED: {e}"),
            }
        }
        rows.push((name, samples));
    }
    println!();
    println!(
        "| setup | n | phase | min ms | median ms | p90 ms | max ms |\n|---|---|---|---|---|---|---|"
    );
    for (name, samples) in rows {
        if samples.is_empty() {
            println!("| {name} | 0 | - | - | - | - | - |");
            continue;
        }
        let n = samples.len();
        for (phase, v) in [
            (
                "detection",
                samples.iter().map(|s| s.detection).collect::<Vec<_>>(),
            ),
            ("action", samples.iter().map(|s| s.action).collect()),
            (
                "total",
                samples.iter().map(|s| s.detection + s.action).collect(),
            ),
        ] {
            let (min, med, p90, max) = stats(v);
            println!("| {name} | {n} | {phase} | {min} | {med} | {p90} | {max} |");
        }
    }
}
