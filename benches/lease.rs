//! The DC-loss latency the serving lease adds: how long after
//! the primary's last lease renewal the secondary can take the lease over,
//! and so promote. On a primary that is really gone this comes on top of
//! detection; the bound is 2 x TTL + lock-delay + one round.
//!
//! ```sh
//! cargo test --bench lease -- --bench         # 3 repetitions per setup
//! HABEAT_BENCH_REPS=5 cargo test --bench lease -- --bench
//! HABEAT_BENCH_ONLY=round cargo test --bench lease -- --bench   # (b) alone
//! ```
//!
//! The primary side is habeat's own lease keeper (`lease::keeper`, TTL
//! 15s, the default) against the in-test Consul; "the DC dies" is the
//! keeper stopping dead (as kill -9 or a powered-off DC look to Consul:
//! no more renewals). The secondary asks for the key once per round
//! (`interval` 1s). Two setups: the stand-in expiring sessions at 1 x TTL
//! after the last renewal (the earliest Consul's docs allow) and at 2 x
//! TTL (what Consul's servers do). The figures are Consul's timers, not
//! CPU: a debug build gives the same. Prints a table; no assertion.
//!
//! (b) The probe round beside the lease keeper (three Consul users per
//! round: the keeper must not slow the prober down): the prober (ICMP, and Serf membership and
//! health from the same in-test Consul) timed as the daemon's round is,
//! `prober.round()` plus handing the round to the keeper, [`ROUNDS`]
//! rounds each, median / max, with the lease off (the floor), on, and on
//! with every renewal answered [`SLOW_RENEW`] late. The keeper's TTL is 3s
//! here (renewals every 1s, so a run sees several; the stand-in is told to
//! accept it) instead of the 10s floor `lease.ttl` allows. ICMP needs root.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::consul_api::ConsulApi;

const TTL: Duration = Duration::from_secs(15);
const ROUNDS: usize = 150;
const SLOW_RENEW: Duration = Duration::from_millis(400);
const ROUND: Duration = Duration::from_secs(1);
const KEY: &str = "habeat/serving/mbox1.example.com";

async fn once(multiplier: f64, dir: &std::path::Path) -> Result<Duration, String> {
    let api = ConsulApi::builder()
        .ttl_multiplier(multiplier)
        .start()
        .await;
    let yaml = format!(
        "local:\n  whoami: primary\n  dc_check: secondary\n  role: appserver\n  state_dir: {d}/state\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  checkRestartReplicaFile: {d}/rstop\n\
         primary:\n  appserver_vmname: mbox1.example.com\n\
         secondary:\n  appserver_ip: 192.0.2.1\n  appserver_vmname: mbox2.example.com\n\
         consul:\n  hostname: 127.0.0.1\n  port: {port}\n\
         lease:\n  enabled: true\n  ttl: 15s\n",
        d = dir.display(),
        port = api.addr().port(),
    );
    let _ = std::fs::remove_dir_all(dir.join("state"));
    std::fs::create_dir_all(dir.join("state")).map_err(|e| e.to_string())?;
    let cfg = habeat::config::load_str(&yaml, &dir.join("habeat.yml"))
        .map_err(|e| e.lines().join("; "))?;
    let keeper =
        habeat::lease::keeper::spawn(&cfg, habeat::sink::EventSink::open(&cfg, false), None)?
            .ok_or("no lease for this config")?;
    let t = Instant::now();
    while api.lock_holder(KEY).is_none() {
        if t.elapsed() > Duration::from_secs(10) {
            return Err("the keeper never took the lease".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Die at some phase of the renewal period (the last renewal was at
    // most ttl/3 before).
    tokio::time::sleep(Duration::from_millis(1000 + rand_phase())).await;
    keeper.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let died = Instant::now();
    let c = reqwest::Client::new();
    let v: serde_json::Value = c
        .put(format!("{}/v1/session/create", api.url()))
        .body(json!({"Checks": [], "LockDelay": "0s"}).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let s = v["ID"].as_str().ok_or("no session id")?.to_owned();
    loop {
        let ok: bool = c
            .put(format!("{}/v1/kv/{KEY}?acquire={s}", api.url()))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if ok {
            return Ok(died.elapsed());
        }
        if died.elapsed() > Duration::from_secs(120) {
            return Err("no takeover within 120s".into());
        }
        tokio::time::sleep(ROUND).await;
    }
}

fn rand_phase() -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(n) % (TTL.as_millis() as u64 / 3)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("lease bench: run with `cargo test --bench lease -- --bench` for figures");
        return;
    }
    let reps: u32 = std::env::var("HABEAT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let only_rounds = std::env::var("HABEAT_BENCH_ONLY").is_ok_and(|v| v == "round");
    if !only_rounds {
        takeover(reps, dir.path()).await;
    }
    round_beside_keeper(dir.path()).await;
}

/// (a): the primary's death to the secondary's takeover.
async fn takeover(reps: u32, dir: &std::path::Path) {
    let lock_delay = habeat::lease::LOCK_DELAY;
    println!("| Consul expiry | n | min s | median s | max s | floor s | bound s |");
    println!("|---|---|---|---|---|---|---|");
    for (label, m) in [
        ("1 x TTL (earliest)", 1.0),
        ("2 x TTL (Consul's servers)", 2.0),
    ] {
        let mut v = Vec::new();
        for _ in 0..reps {
            match once(m, dir).await {
                Ok(d) => v.push(d.as_secs_f64()),
                Err(e) => {
                    println!("lease bench: FAILED: {e}");
                    return;
                }
            }
        }
        v.sort_by(f64::total_cmp);
        let floor = (TTL.mul_f64(m) + lock_delay).as_secs_f64() - TTL.as_secs_f64() / 3.0;
        let bound = (TTL * 2 + lock_delay + ROUND).as_secs_f64();
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} | {floor:.1} | {bound:.1} |",
            v.len(),
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
    println!(
        "(seconds from the primary's death to the secondary's takeover; floor: \
         expiry + lock-delay - one renewal period; bound: 2 x TTL + lock-delay + one round)"
    );
}

/// (b): the probe round with the lease keeper beside it, or not.
async fn round_beside_keeper(dir: &std::path::Path) {
    println!(
        "(b) the probe round beside the lease keeper, {ROUNDS} rounds each; median / max [floor: \
         lease off]"
    );
    let mut floor = None;
    for (label, lease, slow) in [
        ("lease off", false, false),
        ("lease on", true, false),
        ("lease on, renewals answered 400ms late", true, true),
    ] {
        match probe_rounds(dir, lease, slow).await {
            Ok((v, renewals)) => {
                let (med, mx) = (median(&v), v.iter().copied().fold(0.0, f64::max));
                let f = *floor.get_or_insert((med, mx));
                println!(
                    "    {label}: round {med:.2} / {mx:.2} ms, {renewals} renewal(s) meanwhile \
                     [lease off: {:.2} / {:.2} ms]",
                    f.0, f.1
                );
            }
            Err(e) => {
                println!("lease bench: FAILED: {e}");
                return;
            }
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// [`ROUNDS`] probe rounds of a primary whose peer (the secondary's
/// mailstore, 127.0.0.1 and a Serf member of the same Consul) is Up, with
/// or without the lease keeper beside them; each round's duration in ms,
/// and how many renewals the keeper sent meanwhile.
async fn probe_rounds(
    dir: &std::path::Path,
    lease: bool,
    slow: bool,
) -> Result<(Vec<f64>, usize), String> {
    let api = ConsulApi::builder()
        .node("agent-mbox2-example-com", "127.0.0.1", 1)
        .check("agent-mbox2-example-com", "serfHealth", "passing")
        .min_ttl(Duration::from_secs(1))
        .start()
        .await;
    if slow {
        api.set_fault_on(
            "/v1/session/renew",
            support::consul_api::Fault::Slow(SLOW_RENEW),
        );
    }
    let yaml = format!(
        "local:\n  whoami: primary\n  dc_check: secondary\n  role: appserver\n  state_dir: {d}/state\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  checkRestartReplicaFile: {d}/rstop\n\
         primary:\n  appserver_vmname: mbox1.example.com\n\
         secondary:\n  appserver_ip: 127.0.0.1\n  appserver_vmname: mbox2.example.com\n\
         consul:\n  hostname: 127.0.0.1\n  port: {port}\n\
         detection:\n  timeout: 500ms\n\
         lease:\n  enabled: {lease}\n  ttl: 15s\n",
        d = dir.display(),
        port = api.addr().port(),
    );
    let _ = std::fs::remove_dir_all(dir.join("state"));
    std::fs::create_dir_all(dir.join("state")).map_err(|e| e.to_string())?;
    let mut cfg = habeat::config::load_str(&yaml, &dir.join("habeat.yml"))
        .map_err(|e| e.lines().join("; "))?;
    cfg.lease.ttl = Duration::from_secs(3);
    let prober = habeat::probe::Prober::new(&cfg).map_err(|e| e.to_string())?;
    let keeper =
        habeat::lease::keeper::spawn(&cfg, habeat::sink::EventSink::open(&cfg, false), None)?;
    if lease {
        let t = Instant::now();
        while api.lock_holder(KEY).is_none() {
            if t.elapsed() > Duration::from_secs(10) {
                return Err("the keeper never took the lease".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    api.clear_requests();
    let mut out = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let round = prober.round().await;
        if let Some(k) = &keeper {
            k.round(&round);
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(round);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let renewals = api
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/session/renew/"))
        .count();
    if let Some(k) = keeper {
        k.stop();
    }
    Ok((out, renewals))
}
