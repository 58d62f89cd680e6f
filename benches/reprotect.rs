//! Re-protection at 10,000 accounts, through the binary, the testbed (the
//! peer's namespace cut off and back) and the carbonio stand-in, each
//! figure beside its floor:
//!
//! (1) `replicas.reprotect: auto`: 10,000 accounts promoted here by a real
//!     failover of `habeat run` (every hundredth one at risk, so diverged
//!     and left out), then the peer back: the time from its return to every
//!     non-diverged account protected (its new replica available, reaching
//!     Kafka, caught up, as the stand-in's model has it). Floor: the
//!     `setAccountDestination` calls as the binary timed them (one per
//!     batch) plus the replica's initialisation time the stand-in is set to.
//! (2) The daemon's probe round (`habeat_round_duration_seconds` from its
//!     /metrics) with both mailstores holding 10,000 accounts each, surveys
//!     off (the floor), every 10 s and every second: the round's time must
//!     not move.
//!
//! Run as root (network namespaces), the stand-in built first in the same
//! profile: `cargo build --examples && cargo test --bench reprotect --
//! --bench` (debug), or `cargo build --release --examples && cargo bench
//! --bench reprotect`. `HABEAT_BENCH_PART=1` or `2` runs one part,
//! `HABEAT_BENCH_ACCOUNTS` changes the size. Returns at once without
//! `--bench` (`cargo test --all-targets` runs it).

#[path = "../tests/support/bed.rs"]
mod bed;
#[path = "../tests/support/bin.rs"]
mod bin;
mod common;
#[path = "../tests/support/fake_carbonio.rs"]
mod fake_carbonio;
#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use bed::{Bed, REPLICA, SOURCE};
use common::{done_lines, env_usize, spawn_run};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The replica's initialisation (seeding) time in the stand-in.
const CATCH_UP: Duration = Duration::from_secs(5);

/// The durations of the binary's `done command=...` log lines whose
/// command contains `what`.
fn done(log: &str, what: &str) -> Vec<Duration> {
    done_lines(log)
        .into_iter()
        .filter(|d| d.command.contains(what))
        .map(|d| d.took)
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `habeat run` in the background (killed on drop).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every account living here whose replica is not diverged has a replica
/// on the returned mailstore that is available, reaches Kafka and is
/// caught up; `None` while not.
fn all_protected(bed: &Bed, diverged: &dyn Fn(&str) -> bool) -> bool {
    // The model moves at the stand-in's invocations: make one.
    let _ = Command::new(&bed.fake.carbonio)
        .args([
            "--json",
            "MailReplica",
            "getAccountStatus",
            "accounts",
            "bench@example.com",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    bed.fake_state()
        .accounts
        .iter()
        .filter(|a| a.mail_host == REPLICA && !diverged(&a.name))
        .all(|a| {
            a.replicas.iter().any(|r| {
                r.destination == SOURCE
                    && r.available
                    && r.can_connect_to_kafka
                    && r.seeding.is_none()
                    && (r.sequence.is_none() || r.sequence == a.sequence)
            })
        })
}

async fn auto_reprotect(n: usize) {
    let name = |i: usize| format!("user{i:05}@example.com");
    let diverged = |s: &str| {
        s.strip_prefix("user")
            .and_then(|r| r.get(..5))
            .and_then(|d| d.parse::<usize>().ok())
            .is_some_and(|i| i % 100 == 0)
    };
    let accounts = (0..n)
        .map(|i| {
            let mut a = fake_carbonio::account(&name(i), SOURCE, REPLICA);
            if i % 100 == 0 {
                a.sequence = Some(112);
                a.item_id = Some(303);
                a.replicas[0].sequence = Some(100);
                a.replicas[0].item_id = Some(300);
            }
            a
        })
        .collect();
    let bed = Bed::builder()
        .accounts(accounts)
        .carbonio_timeouts("10m", "10m")
        .add("replicas", "reprotect: auto\nsurvey_interval: 0")
        .start()
        .await;
    bed.fake.set_catch_up(SOURCE, CATCH_UP);
    let _d = Daemon(bed.spawn(bed.command(&["run"]), "daemon"));
    let round = || bed.state()["last_round_at"].clone();
    let r0 = round();
    wait_until("a first round", Duration::from_secs(120), || round() != r0);
    bed.kill_peer();
    wait_until("the promotion", Duration::from_secs(600), || {
        bed.promotions() == 1
            && bed
                .fake_state()
                .accounts
                .iter()
                .all(|a| a.mail_host == REPLICA)
    });
    // Let the daemon settle on Down for a few rounds.
    for _ in 0..3 {
        let r = round();
        wait_until("a round", Duration::from_secs(120), || round() != r);
    }
    let before = bed.fake_state().invocations.len();
    let back = Instant::now();
    let back_at = SystemTime::now();
    bed.revive_peer();
    wait_until("every account protected", Duration::from_secs(1800), || {
        all_protected(&bed, &diverged)
    });
    let took = back.elapsed();
    let log = bed.output_of("daemon");
    let seeds = done(&log, "setAccountDestination");
    let seeding: Duration = seeds.iter().sum();
    let batches = bed.calls("setAccountDestination").len();
    let carbonio = bed
        .fake_state()
        .invocations
        .iter()
        .skip(before)
        .filter(|i| i.program == "carbonio" && !i.args.iter().any(|a| a == "bench@example.com"))
        .count();
    let first_seed = bed
        .journal()
        .into_iter()
        .find(|e| e["event"] == "reprotect_recorded")
        .and_then(|e| match &e["at"] {
            serde_json::Value::Number(ms) => ms
                .as_u64()
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
            v => v.as_str().and_then(|at| humantime::parse_rfc3339(at).ok()),
        })
        .and_then(|t| t.duration_since(back_at).ok());
    println!(
        "(1) replicas.reprotect: auto, {n} accounts promoted here, {} diverged (left out), replica initialisation {CATCH_UP:?}",
        n.div_ceil(100)
    );
    println!(
        "    peer back -> every non-diverged account protected: {} [floor {}: {} setAccountDestination ({} batches, as timed by the binary) + {} initialisation]",
        secs(took),
        secs(seeding + CATCH_UP),
        secs(seeding),
        batches,
        secs(CATCH_UP)
    );
    if let Some(d) = first_seed {
        println!(
            "    peer back -> re-protection recorded in the journal: {}",
            secs(d)
        );
    }
    println!(
        "    carbonio processes after the peer's return: {carbonio} (floor {batches}: one per batch)"
    );
}

/// The daemon's mean round time over `window`, from its /metrics, with
/// 10,000 accounts on each mailstore, surveys every `interval` (`0`: off).
fn round_time(n: usize, interval: &str, window: Duration) -> Result<Rounds, String> {
    let mut state = fake_carbonio::State::default();
    for (host, replica) in [(SOURCE, REPLICA), (REPLICA, SOURCE)] {
        state.bulk.push(fake_carbonio::state::Bulk {
            mail_host: host.into(),
            replica: replica.into(),
            count: n,
            behind_every: 50,
        });
    }
    let fake = fake_carbonio::FakeCarbonio::new(&state);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = support::free_port();
    let d = dir.path().display();
    let yaml = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  provider: consul\n  threads: 3\n  state_dir: {d}/state\n\
         primary:\n  appserver_ip: 127.0.0.1\n  appserver_vmname: {SOURCE}\n\
         secondary:\n  appserver_vmname: {REPLICA}\n\
         consul:\n  hostname: 127.0.0.1\n  port: {consul}\n\
         detection:\n  timeout: 250ms\n\
         witnesses:\n  consul_members: false\n  consul_health: false\n\
         safety:\n  quorum_gate: false\n\
         replicas:\n  survey_interval: {interval}\n\
         metrics:\n  listen: 127.0.0.1:{port}\n\
         carbonio:\n  cli: {cli}\n  zmprov: {zmprov}\n  run_as: \"\"\n  command_timeout: 120s\n  promote_timeout: 120s\n",
        consul = support::free_port(),
        cli = fake.carbonio.display(),
        zmprov = fake.zmprov.display(),
    );
    let config = dir.path().join("habeat.yml");
    std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
    let _d = Daemon(spawn_run(&config)?);
    let metrics = || -> Option<Histo> {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let val = |k: &str| {
            text.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse::<f64>().ok())
        };
        Some(Histo {
            sum: val("habeat_round_duration_seconds_sum")?,
            count: val("habeat_round_duration_seconds_count")? as u64,
            le_25ms: val("habeat_round_duration_seconds_bucket{le=\"0.025\"}")? as u64,
            le_100ms: val("habeat_round_duration_seconds_bucket{le=\"0.1\"}")? as u64,
        })
    };
    // Settle (the first surveys of both mailstores), then measure.
    std::thread::sleep(Duration::from_secs(10));
    let h0 = metrics().ok_or("no /metrics")?;
    std::thread::sleep(window);
    let h1 = metrics().ok_or("no /metrics")?;
    let surveys = fake
        .state()
        .invocations
        .iter()
        .filter(|i| i.args.iter().any(|a| a == "getAccountStatus"))
        .count();
    let rounds = h1.count.saturating_sub(h0.count);
    if rounds == 0 {
        return Err("no round in the window".into());
    }
    Ok(Rounds {
        rounds,
        mean_ms: (h1.sum - h0.sum) / rounds as f64 * 1e3,
        over_25ms: rounds - h1.le_25ms.saturating_sub(h0.le_25ms),
        over_100ms: rounds - h1.le_100ms.saturating_sub(h0.le_100ms),
        surveys,
    })
}

/// The round-duration histogram as /metrics shows it.
struct Histo {
    sum: f64,
    count: u64,
    le_25ms: u64,
    le_100ms: u64,
}

/// The rounds of one window.
struct Rounds {
    rounds: u64,
    mean_ms: f64,
    over_25ms: u64,
    over_100ms: u64,
    surveys: usize,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("reprotect bench: run with `cargo bench --bench reprotect` for figures");
        return;
    }
    let n = env_usize("HABEAT_BENCH_ACCOUNTS", 10_000);
    let only = std::env::var("HABEAT_BENCH_PART").unwrap_or_default();
    if only != "2" {
        if support::require(&[support::Need::Netns]) {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(auto_reprotect(n));
        } else {
            println!("(1) skipped: needs network namespaces (root)");
        }
    }
    if only != "1" {
        let window = Duration::from_secs(30);
        println!("(2) the daemon's round, both mailstores at {n} accounts each, {window:?} window");
        for interval in ["0", "10s", "1s"] {
            match round_time(n, interval, window) {
                Ok(r) => println!(
                    "    surveys {}: {} rounds, mean {:.1} ms, {} over 25 ms, {} over 100 ms ({} getAccountStatus calls since the start){}",
                    if interval == "0" {
                        "off".to_owned()
                    } else {
                        format!("every {interval}")
                    },
                    r.rounds,
                    r.mean_ms,
                    r.over_25ms,
                    r.over_100ms,
                    r.surveys,
                    if interval == "0" { " [floor]" } else { "" }
                ),
                Err(e) => println!("    surveys {interval}: {e}"),
            }
        }
    }
}
