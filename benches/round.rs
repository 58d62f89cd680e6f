//! One probe round over 10, 100 and 1,000 black-holed targets, timeout 1 s.
//!
//! The targets are addresses routed into a network namespace that drops
//! every packet (nftables), so nothing ever answers: the worst case for the
//! round bound. Each target gets an ICMP echo and a TCP connect (one
//! component with N addresses) and an HTTP GET (N separate witnesses), i.e.
//! 3·N probes per round. Prints wall time per round (min/median/max over
//! several rounds) and the peak RSS of the process (VmHWM). Target: every
//! round under 1.2 s.
//!
//! Needs root (network namespaces). Run: `cargo bench --bench round`.

#[path = "../tests/support/mod.rs"]
mod support;

use habeat::config::{Config, ProbeSpec};
use habeat::model::{Role, Vote};
use habeat::probe::Prober;
use std::time::{Duration, Instant};
use support::netns;

const REPETITIONS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(1);

/// A consulserver node whose peer has `targets` as Consul server addresses,
/// each also probed over TCP and HTTP; network witnesses only.
fn config(targets: &[std::net::IpAddr]) -> Config {
    let mut cfg = support::network_only(&[Role::Consulserver], TIMEOUT);
    support::peer_mut(&mut cfg).consul_ips = targets.iter().map(ToString::to_string).collect();
    cfg.probes.consul = std::iter::once(ProbeSpec::Tcp(8500))
        .chain(
            targets
                .iter()
                .map(|t| ProbeSpec::Http(format!("http://{t}:8080/"))),
        )
        .collect();
    cfg
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    // `cargo test --all-targets` runs bench programs too, without `--bench`:
    // the figures are for `cargo bench`, so don't spend CI time on them.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench round: run with `cargo bench --bench round` for figures");
        return;
    }
    let lacking = support::need::lacking(&[support::Need::Netns]);
    if !lacking.is_empty() {
        println!("bench round: SKIPPED ({})", lacking.join("; "));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ns = netns::Netns::create();
    let all = ns.host_block(1000);
    ns.drop_incoming(100);
    println!(
        "one round, timeout {}, 3 probes per black-holed target (icmp, tcp, http), {REPETITIONS} rounds each",
        humantime::format_duration(TIMEOUT)
    );
    println!(
        "{:>8} {:>8} {:>10} {:>10} {:>10} {:>14}",
        "targets", "probes", "min", "median", "max", "peak RSS"
    );
    let mut worst = Duration::ZERO;
    for n in [10usize, 100, 1000] {
        let cfg = config(&all[..n]);
        let prober = Prober::new(&cfg).expect("prober");
        let mut times = Vec::new();
        rt.block_on(async {
            // Warm-up: opens the ICMP socket once, as the daemon's first round.
            let _ = prober.round().await;
            for _ in 0..REPETITIONS {
                let t = Instant::now();
                let round = prober.round().await;
                times.push(t.elapsed());
                assert!(
                    round.observations.iter().all(|o| o.vote == Vote::Down),
                    "a black-holed target answered"
                );
                assert_eq!(round.observations.len(), n + 2);
            }
        });
        times.sort();
        worst = worst.max(times[times.len() - 1]);
        println!(
            "{:>8} {:>8} {:>10.3?} {:>10.3?} {:>10.3?} {:>11} KiB",
            n,
            3 * n,
            times[0],
            times[times.len() / 2],
            times[times.len() - 1],
            vm_hwm_kib().map_or("?".into(), |k| k.to_string())
        );
    }
    println!(
        "worst round: {worst:.3?} ({})",
        if worst < Duration::from_millis(1200) {
            "within the 1.2 s target"
        } else {
            "OVER the 1.2 s target"
        }
    );
}
