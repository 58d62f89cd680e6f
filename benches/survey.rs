//! The replica survey's cost, each figure beside its floor.
//!
//! (a) A survey of 10,000 and of 100,000 accounts in-process, one fresh
//!     child process per measure (so that peak RSS is its own):
//!     - parse + classify: `parse_survey` of the `getAccountStatus` JSON
//!       (every field checked, each account turned into a `Surveyed`) and
//!       the survey summarised (counts, at-risk names, lags, destinations),
//!       the median of 5, in CPU time of the thread (the machine is shared);
//!       floor: one pass of serde_json over the same bytes that builds
//!       nothing (`IgnoredAny`);
//!     - peak RSS (VmHWM) of the child, which holds the survey of another
//!       mailstore of as many accounts while it surveys (the last survey of
//!       both mailstores is held); floor: a child that only holds the
//!       listing's bytes and both mailstores' account names;
//!     - the 100k figures over the 10k ones (linear: 10).
//! (b) The probe round (ICMP and TCP to loopback, what a round costs on
//!     this machine) without and with surveys of 10,000 accounts running
//!     back to back beside it through the fake carbonio (the daemon's
//!     survey job: a child process and its parse, on the same runtime).
//!     Floor: the round alone. The round must not slow down. The bench
//!     builds the fake itself (`cargo build --profile bench --example
//!     fake_carbonio`: `cargo bench` builds no examples).
//!
//! (c) The daemon itself (`habeat run`, release build) with a mailstore of
//!     200,000 accounts (one in 50 at risk) in the fake carbonio: its
//!     resident memory (VmRSS, and VmHWM, the peak) once its own survey
//!     job has listed, classified and kept them, then after 4 clients GET
//!     `/status` at once (5 times), then `/status?accounts=all` likewise.
//!     Floor: the same daemon with surveys off (`survey_interval: 0`).
//!
//! Run: `cargo bench --bench survey` (ICMP needs root or ping_group_range).
//! Returns at once without `--bench` (`cargo test --all-targets` runs it).

mod common;
#[path = "../tests/support/fake_carbonio.rs"]
mod fake_carbonio;
#[path = "../tests/support/mod.rs"]
mod support;

use habeat::act::carbonio::{MailHost, parse_survey_into};
use habeat::engine::UnixMillis;
use habeat::model::Role;
use habeat::probe::Prober;
use habeat::survey::{Builder, Survey};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
/// The other mailstore, whose survey is held while `SOURCE` is surveyed.
const OTHER: &str = "mbox3.example.com";
const N: usize = 10_000;
const SIZES: [usize; 2] = [10_000, 100_000];
const REPEAT: usize = 5;
const ROUNDS: usize = 40;
/// Accounts of the mailstore the daemon surveys in (c).
const DAEMON_N: usize = 200_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--one" || a == "--floor") {
        let n = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(N);
        let r = if args[i] == "--one" { one(n) } else { floor(n) };
        if let Err(e) = r {
            eprintln!("survey bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--daemon") {
        let n = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(DAEMON_N);
        if let Err(e) = build_fake().and_then(|()| daemon_memory(n)) {
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

fn child(mode: &str, n: usize) -> Result<Vec<f64>, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(me)
        .arg(mode)
        .arg(n.to_string())
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
    println!(
        "(a) a survey in-process, the survey of another mailstore of as many accounts held; figure [floor]"
    );
    let mut rows = Vec::new();
    for n in SIZES {
        let one = child("--one", n)?;
        let fl = child("--floor", n)?;
        let [parse, parse_floor, rss, at_risk] = one[..] else {
            return Err(format!("unexpected child output {one:?}"));
        };
        let rss_floor = fl.first().copied().unwrap_or(0.0);
        println!(
            "    {n:>7} accounts: parse + classify {parse:.1} ms CPU [{parse_floor:.1} ms] ({:.1}x), peak RSS {rss:.1} MiB [{rss_floor:.1} MiB], {at_risk} at risk",
            parse / parse_floor
        );
        rows.push((parse, parse_floor, rss, rss_floor));
    }
    if let [small, large] = rows[..] {
        println!(
            "    {} / {} accounts: time x{:.1} [floor x{:.1}], peak RSS above the floor x{:.1} (linear: x{})",
            SIZES[1],
            SIZES[0],
            large.0 / small.0,
            large.1 / small.1,
            (large.2 - large.3) / (small.2 - small.3),
            SIZES[1] / SIZES[0]
        );
    }

    build_fake()?;
    daemon_memory(DAEMON_N)?;

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
                if let Ok(b) = cli.survey(&host, Builder::default()).await {
                    let s = b.finish(SOURCE.into(), UnixMillis(0));
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

/// `cargo bench` builds benches, not examples: build the fake carbonio in
/// this bench's profile, where `fake_carbonio::binary()` looks for it.
fn build_fake() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--quiet", "--example", "fake_carbonio"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    let habeat = Path::new(env!("CARGO_BIN_EXE_habeat"));
    if habeat
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "release")
    {
        // The bench profile, not `--release`: the same build of habeat as
        // this bench's, so that neither build makes the other rebuild.
        cmd.args(["--profile", "bench"]);
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "building the fake carbonio failed ({s}): run `cargo build --profile bench --example fake_carbonio` to see why"
        )),
        Err(e) => Err(format!(
            "cannot run {} to build the fake carbonio ({e}): run `cargo build --profile bench --example fake_carbonio` first",
            Path::new(&cargo).display()
        )),
    }
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

/// `getAccountStatus` of `host` for `n` accounts with every field, one in
/// 50 at risk in some way (written as text, not built as a JSON value).
fn listing(host: &str, n: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut v = String::with_capacity(n * 520 + 32);
    v.push_str(r#"{"response":{"values":["#);
    for i in 0..n {
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
            r#"{{"accountId":"{id}","accountName":"{}","accountMailHost":"{host}","paused":false,"mailboxId":{i},"sequence":1000,"itemId":"{item}","replicas":[{{"accountId":"{id}","itemId":{item},"sequence":{rseq},"mailboxId":7,"destination":"{REPLICA}","available":{avail},"priority":10,"canConnectToKafka":{kafka}}}]}}"#,
            name(host, i),
            item = 257 + i
        );
    }
    v.push_str("]}}\n");
    v.into_bytes()
}

/// The `i`th account of `host`'s listing.
fn name(host: &str, i: usize) -> String {
    let domain = if host == SOURCE {
        "example.com"
    } else {
        "example.net"
    };
    format!("user{i:06}@{domain}")
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

/// A survey of `host` as the daemon's job makes one.
fn survey(host: &str, bytes: &[u8]) -> Result<Survey, String> {
    let mail_host = MailHost::parse(host).map_err(|e| e.to_string())?;
    Ok(
        parse_survey_into(bytes, &mail_host, Builder::default())?
            .finish(host.into(), UnixMillis(0)),
    )
}

/// This thread's CPU time in ms: the machine is shared (2 cores, several
/// builds), and wall time would measure the others' load too.
fn cpu_ms() -> f64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0.0, |t| {
        t.tv_sec() as f64 * 1000.0 + t.tv_nsec() as f64 / 1e6
    })
}

fn one(n: usize) -> Result<(), String> {
    // The last survey of the other mailstore, held throughout.
    let other = survey(OTHER, &listing(OTHER, n))?;
    let bytes = listing(SOURCE, n);
    let mut times = Vec::with_capacity(REPEAT);
    let mut floors = Vec::with_capacity(REPEAT);
    let mut at_risk = 0;
    for _ in 0..REPEAT {
        let t = cpu_ms();
        let s = survey(SOURCE, &bytes)?;
        let sum = s.summary();
        times.push(cpu_ms() - t);
        at_risk = sum.at_risk.len();
        std::hint::black_box((&s, &sum));
        let t = cpu_ms();
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|e| e.to_string())?;
        floors.push(cpu_ms() - t);
    }
    std::hint::black_box(&other);
    println!(
        "{:.3} {:.3} {:.2} {at_risk}",
        median(&times),
        median(&floors),
        peak_rss_mib()
    );
    Ok(())
}

fn floor(n: usize) -> Result<(), String> {
    let bytes = listing(SOURCE, n);
    let names: Vec<String> = [SOURCE, OTHER]
        .iter()
        .flat_map(|h| (0..n).map(move |i| name(h, i)))
        .collect();
    std::hint::black_box((&bytes, &names));
    println!("{:.2}", peak_rss_mib());
    Ok(())
}

/// (c): see the module.
fn daemon_memory(n: usize) -> Result<(), String> {
    println!(
        "(c) the daemon with a mailstore of {n} accounts (1 in 50 at risk), its own survey job; VmRSS / VmHWM [floor: surveys off]"
    );
    let floor = Daemon::start(0, false)?;
    let with = Daemon::start(n, true)?;
    let (rss, hwm) = with.memory()?;
    let (frss, fhwm) = floor.memory()?;
    println!(
        "    after the survey:              {rss:.1} / {hwm:.1} MiB [{frss:.1} / {fhwm:.1} MiB]"
    );
    let small = with.get_4x5("/status")?;
    let (rss, hwm) = with.memory()?;
    let fsmall = floor.get_4x5("/status")?;
    let (frss, fhwm) = floor.memory()?;
    println!(
        "    4 x GET /status at once, x5:   {rss:.1} / {hwm:.1} MiB [{frss:.1} / {fhwm:.1} MiB]; body {:.1} KiB [{:.1} KiB]",
        small as f64 / 1024.0,
        fsmall as f64 / 1024.0
    );
    let all = with.get_4x5("/status?accounts=all")?;
    let (rss, hwm) = with.memory()?;
    println!(
        "    4 x GET /status?accounts=all, x5: {rss:.1} / {hwm:.1} MiB; body {:.1} MiB",
        all as f64 / 1024.0 / 1024.0
    );
    Ok(())
}

/// A `habeat run` against the fake carbonio, killed when dropped.
struct Daemon {
    child: std::process::Child,
    port: u16,
    _fake: fake_carbonio::FakeCarbonio,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(n: usize, survey: bool) -> Result<Daemon, String> {
        let mut state = fake_carbonio::State::default();
        state.bulk.push(fake_carbonio::state::Bulk {
            mail_host: SOURCE.into(),
            replica: REPLICA.into(),
            count: n,
            behind_every: 50,
        });
        let fake = fake_carbonio::FakeCarbonio::new(&state);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = support::free_port();
        let d = dir.path().display();
        let yaml = format!(
            r#"local:
  whoami: secondary
  dc_check: primary
  role: appserver
  checkDownFile: {d}/appserverdown-habeat
  checkPromotionFile: {d}/appserverprom-habeat
  checkRestartReplicaFile: {d}/appserverrstopha
  provider: consul
  threads: 3
  state_dir: {d}/state
primary:
  appserver_ip: 127.0.0.1
  appserver_vmname: {SOURCE}
secondary:
  appserver_vmname: {REPLICA}
consul:
  hostname: 127.0.0.1
  port: {consul}
detection:
  timeout: 250ms
witnesses:
  consul_members: false
  consul_health: false
safety:
  quorum_gate: false
replicas:
  survey_interval: {interval}
metrics:
  listen: 127.0.0.1:{port}
carbonio:
  cli: {cli}
  zmprov: {zmprov}
  run_as: ""
  command_timeout: 120s
  promote_timeout: 120s
"#,
            consul = support::free_port(),
            interval = if survey { "1h" } else { "0" },
            cli = fake.carbonio.display(),
            zmprov = fake.zmprov.display(),
        );
        let config = dir.path().join("habeat.yml");
        std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
        let child = common::spawn_run(&config)?;
        let daemon = Daemon {
            child,
            port,
            _fake: fake,
            _dir: dir,
        };
        // Up when /status answers, and (surveying) shows the survey.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "the daemon did not show a survey of {n} accounts in time"
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
            let Ok(body) = daemon.get("/status") else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
                continue;
            };
            if !survey || v["replicas"]["survey"]["accounts"] == n {
                break;
            }
        }
        // A few rounds after it, as the daemon lives on.
        std::thread::sleep(Duration::from_secs(3));
        Ok(daemon)
    }

    /// VmRSS and VmHWM, MiB.
    fn memory(&self) -> Result<(f64, f64), String> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .map_err(|e| e.to_string())?;
        let field = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    /// The body of one GET.
    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        use std::io::{Read, Write};
        let mut c =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut all = Vec::new();
        c.read_to_end(&mut all).map_err(|e| e.to_string())?;
        let at = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no HTTP header")?;
        Ok(all.split_off(at + 4))
    }

    /// 4 clients GET `path` at once, 5 times; the body's length.
    fn get_4x5(&self, path: &str) -> Result<usize, String> {
        let mut len = 0;
        for _ in 0..5 {
            let bodies: Vec<Result<Vec<u8>, String>> = std::thread::scope(|s| {
                let h: Vec<_> = (0..4).map(|_| s.spawn(|| self.get(path))).collect();
                h.into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("client panicked".into())))
                    .collect()
            });
            for b in bodies {
                len = b?.len();
            }
        }
        Ok(len)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
