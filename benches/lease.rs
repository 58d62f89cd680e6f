//! The DC-loss latency the serving lease adds (issue 17): how long after
//! the primary's last lease renewal the secondary can take the lease over,
//! and so promote. On a primary that is really gone this comes on top of
//! detection; the bound is 2 x TTL + lock-delay + one round.
//!
//! ```sh
//! cargo test --bench lease -- --bench         # 3 repetitions per setup
//! HABEAT_BENCH_REPS=5 cargo test --bench lease -- --bench
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

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::consul_api::ConsulApi;

const TTL: Duration = Duration::from_secs(15);
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
    let keeper = habeat::lease::keeper::spawn(&cfg, None)?.ok_or("no lease for this config")?;
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
    let lock_delay = habeat::lease::LOCK_DELAY;
    println!("| Consul expiry | n | min s | median s | max s | floor s | bound s |");
    println!("|---|---|---|---|---|---|---|");
    for (label, m) in [
        ("1 x TTL (earliest)", 1.0),
        ("2 x TTL (Consul's servers)", 2.0),
    ] {
        let mut v = Vec::new();
        for _ in 0..reps {
            match once(m, dir.path()).await {
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
