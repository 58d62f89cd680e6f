//! The replica survey's cost, each figure beside its floor.
//!
//! (a) A survey of 10,000 accounts in-process, one fresh child process per
//!     measure (so that peak RSS is its own):
//!     - parse + classify: `parse_survey_listing` of the `getAccountStatus`
//!       JSON (every field checked), each account turned into a
//!       `Surveyed` and the survey summarised (counts, at-risk names, lags,
//!       destinations); floor: one pass of serde_json over the same bytes
//!       that builds nothing (`IgnoredAny`);
//!     - peak RSS (VmHWM) of the child; floor: a child that only holds the
//!       listing's bytes and the account names.
//! (b) The probe round (ICMP and TCP to loopback, what a round costs on
//!     this machine) without and with surveys of 10,000 accounts running
//!     back to back beside it through the fake carbonio (the daemon's
//!     survey job: a child process and its parse, on the same runtime).
//!     Floor: the round alone. The round must not slow down.
//!
//! Run: `cargo bench --bench survey` (ICMP needs root or ping_group_range).
//! Returns at once without `--bench` (`cargo test --all-targets` runs it).

#[path = "../tests/support/fake_carbonio.rs"]
mod fake_carbonio;
#[path = "../tests/support/mod.rs"]
mod support;

use habeat::act::carbonio::{MailHost, parse_survey_listing};
use habeat::engine::UnixMillis;
use habeat::model::Role;
use habeat::probe::Prober;
use habeat::survey::{SURVEY_VERSION, Survey, Surveyed};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
const N: usize = 10_000;
const ROUNDS: usize = 40;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--one" || a == "--floor") {
        let r = if args[i] == "--one" { one() } else { floor() };
        if let Err(e) = r {
            eprintln!("survey bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("survey bench: run with `cargo bench --bench survey` for figures");
        return;
    }
    if let Err(e) = run() {
        eprintln!("survey bench: {e}");
        std::process::exit(1);
    }
}

fn child(mode: &str) -> Result<Vec<f64>, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(me)
        .arg(mode)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect())
}

fn run() -> Result<(), String> {
    println!("(a) a survey of {N} accounts in-process; figure [floor]");
    let one = child("--one")?;
    let fl = child("--floor")?;
    let [parse, parse_floor, rss, at_risk] = one[..] else {
        return Err(format!("unexpected child output {one:?}"));
    };
    println!(
        "    parse + classify {parse:.1} ms [{parse_floor:.1} ms], peak RSS {rss:.1} MiB [{:.1} MiB], {at_risk} at risk",
        fl.first().copied().unwrap_or(0.0)
    );

    println!("(b) the probe round, {ROUNDS} rounds each; median / max [floor: without a survey]");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let mut cfg = support::network_only(&[Role::Appserver], Duration::from_millis(500));
        let peer = support::peer_mut(&mut cfg);
        peer.appserver_ip = Some("127.0.0.1".into());
        peer.appserver_vmname = Some(SOURCE.into());
        cfg.probes.appserver = vec![habeat::config::ProbeSpec::Tcp(port)];
        let prober = Prober::new(&cfg).map_err(|e| e.to_string())?;
        let alone = rounds(&prober, ROUNDS).await;

        let fake = fake_carbonio::FakeCarbonio::new(&fake_carbonio::with_accounts(
            (0..N)
                .map(|i| fake_carbonio::account(&format!("user{i:06}@example.com"), SOURCE, REPLICA))
                .collect(),
        ));
        let cli = fake.driver();
        let host = MailHost::parse(SOURCE).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (s2, d2) = (stop.clone(), done.clone());
        let beside = tokio::spawn(async move {
            while !s2.load(Ordering::Relaxed) {
                if let Ok(list) = cli.survey(&host).await {
                    let s = Survey {
                        version: SURVEY_VERSION,
                        host: SOURCE.into(),
                        at: UnixMillis(0),
                        accounts: list,
                    };
                    std::hint::black_box(s.summary());
                    d2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let with = rounds(&prober, ROUNDS).await;
        stop.store(true, Ordering::Relaxed);
        let _ = beside.await;
        println!(
            "    round median {:.1} ms / max {:.1} ms with {} survey(s) beside it [alone: {:.1} / {:.1} ms]",
            median(&with),
            max(&with),
            done.load(Ordering::Relaxed),
            median(&alone),
            max(&alone)
        );
        drop(listener);
        Ok::<(), String>(())
    })
}

async fn rounds(prober: &Prober, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(prober.round().await);
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// `getAccountStatus` for [`N`] accounts with every field, one in 50 at
/// risk in some way (written as text, not built as a JSON value).
fn listing() -> Vec<u8> {
    use std::fmt::Write;
    let mut v = String::with_capacity(N * 520 + 32);
    v.push_str(r#"{"response":{"values":["#);
    for i in 0..N {
        if i > 0 {
            v.push(',');
        }
        let id = format!("9e94{i:08x}-0000-4000-8000-000000000000");
        let (avail, kafka, rseq) = match i % 50 {
            1 => (false, true, 1000),
            2 => (true, false, 1000),
            3 => (true, true, 990),
            _ => (true, true, 1000),
        };
        let _ = write!(
            v,
            r#"{{"accountId":"{id}","accountName":"user{i:06}@example.com","accountMailHost":"{SOURCE}","paused":false,"mailboxId":{i},"sequence":1000,"itemId":"{item}","replicas":[{{"accountId":"{id}","itemId":{item},"sequence":{rseq},"mailboxId":7,"destination":"{REPLICA}","available":{avail},"priority":10,"canConnectToKafka":{kafka}}}]}}"#,
            item = 257 + i
        );
    }
    v.push_str("]}}\n");
    v.into_bytes()
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn one() -> Result<(), String> {
    let bytes = listing();
    let host = MailHost::parse(SOURCE).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let accounts: Vec<Surveyed> = parse_survey_listing(&bytes, &host)?
        .iter()
        .map(Surveyed::from)
        .collect();
    let s = Survey {
        version: SURVEY_VERSION,
        host: SOURCE.into(),
        at: UnixMillis(0),
        accounts,
    };
    let sum = s.summary();
    let parse = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|e| e.to_string())?;
    let floor = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{parse:.2} {floor:.2} {:.2} {}",
        peak_rss_mib(),
        sum.at_risk.len()
    );
    Ok(())
}

fn floor() -> Result<(), String> {
    let bytes = listing();
    let names: Vec<String> = (0..N).map(|i| format!("user{i:06}@example.com")).collect();
    std::hint::black_box((&bytes, &names));
    println!("{:.2}", peak_rss_mib());
    Ok(())
}
