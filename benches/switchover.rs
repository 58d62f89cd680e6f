//! `habeat switchover` of 10,000 accounts in waves of 500, through the
//! binary and the carbonio stand-in (SPEC §7: a live source keeps moving,
//! a replica follows 1 s behind, only maintenance lets it catch up; every
//! tenth account is live), each figure beside its floor:
//!
//! - each account's time in maintenance (from the end of its wave's `ma`
//!   batch to the end of the restore batch), median and max; floor: the
//!   stand-in's catch-up after quiescing (its replication latency, 1 s)
//!   plus that wave's promotion and its two zmprov batches (`ma`, the
//!   restore), as the binary measured them;
//! - the zmprov and carbonio processes (floor: 3 zmprov per wave: `ga`,
//!   `ma`, the restore; carbonio: the listing and the preflight read, then
//!   per wave at least one catch-up read, the promotion, the confirmation
//!   and `setAccountDestination`);
//! - the whole switchover's duration.
//!
//! Run: `cargo test --release --bench switchover -- --bench` or `cargo
//! bench --bench switchover` (the stand-in is an example: `cargo build
//! [--release] --examples` first). `HABEAT_BENCH_ACCOUNTS` and
//! `HABEAT_BENCH_WAVE` change the sizes. Returns at once without
//! `--bench` (`cargo test --all-targets` runs it).

mod common;
#[path = "../tests/support/fake_carbonio.rs"]
mod fake_carbonio;

use common::{Done, done_lines, env_usize};
use fake_carbonio::{FakeCarbonio, live_account, with_accounts};
use std::process::Command;
use std::time::{Duration, Instant};

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
/// The stand-in's replica latency: the catch-up after quiescing.
const DELAY: Duration = Duration::from_secs(1);

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("switchover bench: run with `cargo bench --bench switchover` for figures");
        return;
    }
    let n = env_usize("HABEAT_BENCH_ACCOUNTS", 10_000);
    let wave = env_usize("HABEAT_BENCH_WAVE", 500).max(1);
    // Every tenth account receives mail (one every 10 s) and its replica
    // streams 1 s behind; the others are quiet, their replicas caught up.
    // The stand-in rewrites its whole state file at every call, and each
    // mail of a live account is a mark in it: all 10,000 live would make
    // the stand-in, not habeat, the figure.
    let accounts = (0..n)
        .map(|i| {
            let name = format!("user{i:05}@example.com");
            if i % 10 == 0 {
                live_account(&name, REPLICA, SOURCE, Duration::from_secs(10), DELAY)
            } else {
                fake_carbonio::account(&name, REPLICA, SOURCE)
            }
        })
        .collect();
    let fake = FakeCarbonio::new(&with_accounts(accounts));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("habeat.yml");
    std::fs::write(
        &config,
        format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  state_dir: {d}/state\n\
             primary:\n  appserver_ip: 192.0.2.1\n  appserver_vmname: {SOURCE}\n\
             secondary:\n  appserver_vmname: {REPLICA}\n\
             safety:\n  quorum_gate: false\n\
             carbonio:\n  cli: {cli}\n  zmprov: {zm}\n  run_as: \"\"\n  command_timeout: 10m\n  promote_timeout: 10m\n",
            d = dir.path().display(),
            cli = fake.carbonio.display(),
            zm = fake.zmprov.display(),
        ),
    )
    .expect("write config");
    // The model starts at its first invocation: let mail arrive first, so
    // every replica is behind its live source when the switchover starts.
    let _ = Command::new(&fake.carbonio)
        .args([
            "--json",
            "MailReplica",
            "getAccountStatus",
            "mailHost",
            REPLICA,
        ])
        .output();
    std::thread::sleep(Duration::from_secs(12));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_habeat"))
        .arg("--config")
        .arg(&config)
        .args([
            "switchover",
            "--to",
            SOURCE,
            "--wave",
            &wave.to_string(),
            "--yes",
        ])
        .env("HABEAT_LOCK_WAIT", "1s")
        .output()
        .expect("run habeat");
    let total = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("{}{log}", String::from_utf8_lossy(&out.stdout));
        panic!("the switchover failed: {:?}", out.status);
    }
    let state = fake.state();
    let moved = state
        .accounts
        .iter()
        .filter(|a| a.mail_host == SOURCE)
        .count();
    assert_eq!(moved, n, "every account moved");
    assert!(
        state.losses.is_empty(),
        "the stand-in recorded {} losses",
        state.losses.len()
    );
    let zmprov = state
        .invocations
        .iter()
        .filter(|i| i.program == "zmprov")
        .count();
    let carbonio = state.invocations.len() - zmprov;
    // Per wave, in order: zmprov ga, zmprov ma, reads..., promote, read,
    // zmprov restore, setAccountDestination.
    let done = done_lines(&log);
    let mut in_maintenance = Vec::new();
    let mut floors = Vec::new();
    let zmprov_done: Vec<&Done> = done
        .iter()
        .filter(|d| d.command.ends_with("/zmprov"))
        .collect();
    let promotions: Vec<&Done> = done
        .iter()
        .filter(|d| d.command.contains("promoteAccounts"))
        .collect();
    let waves = n.div_ceil(wave);
    for w in 0..waves {
        let (Some(ma), Some(restore), Some(promote)) = (
            zmprov_done.get(3 * w + 1),
            zmprov_done.get(3 * w + 2),
            promotions.get(w),
        ) else {
            panic!("wave {w}: the log lacks its commands");
        };
        let held = restore.at.duration_since(ma.at).unwrap_or_default() + ma.took;
        let size = wave.min(n - w * wave);
        in_maintenance.extend(std::iter::repeat_n(held, size));
        floors.extend(std::iter::repeat_n(
            DELAY + promote.took + ma.took + restore.took,
            size,
        ));
    }
    let (med, max) = (pct(&mut in_maintenance, 0.5), pct(&mut in_maintenance, 1.0));
    let (fmed, fmax) = (pct(&mut floors, 0.5), pct(&mut floors, 1.0));
    println!(
        "switchover of {n} accounts in waves of {wave} ({waves} waves), replica latency {DELAY:?}, every tenth account live (a mail every 10 s)"
    );
    println!(
        "  time in maintenance per account: median {} (floor {}), max {} (floor {})",
        ms(med),
        ms(fmed),
        ms(max),
        ms(fmax)
    );
    println!("  zmprov processes: {zmprov} (floor {})", 3 * waves);
    println!("  carbonio processes: {carbonio} (floor {})", 2 + 4 * waves);
    println!(
        "  whole switchover: {:.1} s; losses recorded by the stand-in: 0",
        total.as_secs_f64()
    );
}
