//! How long from the peer appserver's link going down to `promoteAccounts`
//! being invoked, split into detection (until the appserver verdict turns
//! Down, from `events.jsonl`) and action (from there to the fake carbonio's
//! `promoteAccounts`, from the call log written by its wrapper).
//!
//! ```sh
//! sudo cargo bench --bench failover            # 10 repetitions per setup
//! HABEAT_BENCH_REPS=20 sudo -E cargo bench --bench failover
//! HABEAT_BENCH_GRACE=60s sudo -E cargo bench --bench failover   # DC-lost row
//! HABEAT_BENCH_ONLY=dc-lost sudo -E cargo bench --bench failover # that row alone
//! ```
//!
//! A third row, "DC lost, arbiter confirms" ([`dc_lost_arbiter_confirms`]),
//! times the whole primary cut off in the 2+1 Consul layout to
//! `promoteAccounts`, through the raft recovery the arbiter allows.
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

/// "DC lost, arbiter confirms": the seeds' 2+1 Consul layout, this node
/// with the consulserver and appserver roles, an arbiter
/// (`witnesses.command`) that sees the primary gone. The whole primary
/// is cut at t0; the phases, each from the journal or the call log:
/// detection (t0 → the consul verdict Down), recovery_grace (→ the raft
/// recovery started: the grace counts from the first leaderless round, at
/// t0), recovery (→ its pipeline finished: service-discover stopped,
/// peers.json, started, leader confirmed, locks), gate (→ promoteAccounts:
/// the quorum gate, now passable, and the account listing).
fn dc_lost_arbiter_confirms(bins: &Binaries, reps: u32, grace: Duration) {
    let opts = Options {
        roles: vec!["appserver", "consulserver"],
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        fall: 3,
        rise: 2,
        serf_delay: Duration::from_secs(5),
        flush_cache: false,
        two_plus_one: true,
        arbiter: true,
        recovery_grace: Some(grace),
        ..Options::default()
    };
    let tb = Testbed::start(opts, bins.clone());
    let mut samples: Vec<[u64; 4]> = Vec::new();
    for rep in 0..reps {
        match dc_lost_once(&tb, rep) {
            Ok(s) => {
                eprintln!(
                    "  dc lost #{rep}: detection {} ms, grace {} ms, recovery {} ms, gate {} ms",
                    s[0], s[1], s[2], s[3]
                );
                samples.push(s);
            }
            Err(e) => eprintln!("  dc lost #{rep}: FAILED: {e}"),
        }
    }
    println!();
    println!(
        "DC lost, arbiter confirms: primary cut -> promoteAccounts; 2+1 Consul servers, interval 1s, fall 3, timeout 500ms, Serf 5s, recovery_grace {}; {reps} repetitions",
        humantime::format_duration(grace)
    );
    println!(
        "| phase | n | min ms | median ms | p90 ms | max ms | floor |\n|---|---|---|---|---|---|---|"
    );
    if samples.is_empty() {
        println!("| - | 0 | - | - | - | - | - |");
        return;
    }
    let n = samples.len();
    let floors = [
        "Serf 5 s + fall x interval".to_owned(),
        format!(
            "recovery_grace ({}) - detection",
            humantime::format_duration(grace)
        ),
        "two service calls + one leader poll".to_owned(),
        "gate + listing (4 CLI/Consul calls)".to_owned(),
        "recovery_grace (counted from the cut) + recovery + gate".to_owned(),
    ];
    let names = ["detection", "recovery_grace", "recovery", "gate", "total"];
    for (i, name) in names.iter().enumerate() {
        let v: Vec<u64> = if i < 4 {
            samples.iter().map(|s| s[i]).collect()
        } else {
            samples.iter().map(|s| s.iter().sum()).collect()
        };
        let (min, med, p90, max) = stats(v);
        println!(
            "| {name} | {n} | {min} | {med} | {p90} | {max} | {} |",
            floors[i]
        );
    }
}

fn dc_lost_once(tb: &Testbed, rep: u32) -> Result<[u64; 4], String> {
    tb.reset();
    let mut daemon = tb.spawn_daemon();
    let healthy = || {
        tb.state_json().is_some_and(|s| {
            s["components"]["consul"]["verdict"] == "up"
                && s["components"]["appserver"]["verdict"] == "up"
                && s["raft"]["last_healthy"]
                    .as_array()
                    .is_some_and(|a| a.len() == 3)
        })
    };
    if !testbed::wait_until(Duration::from_secs(30), healthy) {
        return Err(format!(
            "habeat never saw the peer healthy:\n{}",
            tb.diagnostics()
        ));
    }
    let phase = (u64::from(rep) * 137) % 1000;
    std::thread::sleep(Duration::from_millis(1000 + phase));
    tb.set_arbiter(false);
    let t0 = testbed::now_ms();
    tb.partition();
    if !testbed::wait_until(Duration::from_secs(180), || !tb.promote_calls().is_empty()) {
        return Err(format!(
            "no promoteAccounts within 180s:\n{}",
            tb.diagnostics()
        ));
    }
    let promoted = tb.promote_calls()[0].at;
    let events = tb.events();
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .filter(|e| e["at"].as_u64().is_some_and(|a| a + 1000 >= t0))
            .find(|e| pred(e))
            .and_then(|e| e["at"].as_u64())
    };
    let down =
        at(&|e| e["event"] == "verdict_changed" && e["component"] == "consul" && e["to"] == "down")
            .ok_or("no consul Down verdict in the journal")?;
    let started =
        at(&|e| e["event"] == "action_started" && e["action"]["kind"]["action"] == "raft_recovery")
            .ok_or("no raft recovery in the journal")?;
    // The recovery ends when its leader is confirmed: the roles waiting
    // out a refused gate go on at once, before its lock files are written.
    let confirm_id = events
        .iter()
        .find(|e| {
            e["event"] == "action_started" && e["action"]["kind"]["action"] == "confirm_leader"
        })
        .map(|e| e["action"]["id"].clone())
        .ok_or("no leader confirmation in the journal")?;
    let finished = at(&|e| e["event"] == "action_succeeded" && e["action_id"] == confirm_id)
        .ok_or("the raft recovery never confirmed its leader")?;
    daemon.terminate(Duration::from_secs(10));
    Ok([
        down.saturating_sub(t0),
        started.saturating_sub(down),
        finished.saturating_sub(started),
        promoted.saturating_sub(finished),
    ])
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
    let only_dc_lost = std::env::var("HABEAT_BENCH_ONLY").as_deref() == Ok("dc-lost");
    let setups = if only_dc_lost {
        vec![]
    } else {
        vec![
            ("default (all witnesses, quorum all, Serf 5s)", base.clone()),
            (
                "icmp-only (quorum 1, Consul witnesses off)",
                Options {
                    quorum: Some(1),
                    consul_witnesses: false,
                    ..base.clone()
                },
            ),
        ]
    };
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
    let grace = std::env::var("HABEAT_BENCH_GRACE")
        .ok()
        .and_then(|s| humantime::parse_duration(&s).ok())
        .unwrap_or(Duration::from_secs(10));
    dc_lost_arbiter_confirms(&bins, reps, grace);
}
