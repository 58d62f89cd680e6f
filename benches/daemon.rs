//! Benchmarks of the real binary, printed as tables:
//!
//! (a) wall time of `habeat check` against a healthy loopback peer, with
//!     `fall: 1` and with the default detection settings;
//! (b) steady-state RSS and CPU of `habeat run` at `interval: 1s` with 20
//!     targets on loopback (ICMP to 127.0.0.x plus TCP probes to listeners
//!     this bench opens), sampled from /proc/<pid>/status and /proc/<pid>/stat.
//!
//! Run: `cargo bench --bench daemon` (10 minutes for (b)); shorter:
//! `HABEAT_BENCH_RUN=2m cargo bench --bench daemon`. `HABEAT_BENCH_CHECKS`
//! sets the number of `check` runs (default 20). Needs root (ICMP).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HABEAT: &str = env!("CARGO_BIN_EXE_habeat");

fn main() {
    // `cargo test --all-targets` runs bench programs too, without `--bench`:
    // the figures are for `cargo bench`, so don't spend CI time on them.
    if !std::env::args().any(|a| a == "--bench") {
        println!("daemon bench: run with `cargo bench --bench daemon` for figures");
        return;
    }
    let run_for = std::env::var("HABEAT_BENCH_RUN")
        .ok()
        .and_then(|s| humantime::parse_duration(&s).ok())
        .unwrap_or(Duration::from_secs(600));
    let checks: usize = std::env::var("HABEAT_BENCH_CHECKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .max(1);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("daemon bench: cannot create a scratch directory: {e}");
            std::process::exit(1);
        }
    };
    let targets = Targets::open();

    println!("habeat check against a healthy loopback peer ({checks} runs each)");
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "detection", "min", "median", "max"
    );
    for (label, detection) in [
        (
            "fall 1 (interval 1s, timeout 1s)",
            "detection:\n  interval: 1s\n  fall: 1\n  rise: 1\n",
        ),
        ("defaults (interval 2s, fall 3)", ""),
    ] {
        let cfg = targets.config(
            dir.path(),
            label.split(' ').next().unwrap_or("x"),
            detection,
        );
        let mut times = Vec::with_capacity(checks);
        for _ in 0..checks {
            let started = Instant::now();
            let out = Command::new(HABEAT)
                .args(["--config", &cfg.display().to_string(), "check"])
                .stdin(Stdio::null())
                .output();
            let took = started.elapsed();
            match out {
                Ok(o) if o.status.success() => times.push(took),
                Ok(o) => {
                    eprintln!(
                        "habeat check failed ({:?}): {}",
                        o.status.code(),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("cannot run {HABEAT}: {e}");
                    std::process::exit(1);
                }
            }
        }
        times.sort();
        println!(
            "{:<34} {:>9} {:>9} {:>9}",
            label,
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }

    println!();
    println!(
        "habeat run, interval 1s, {} targets, for {}",
        targets.count(),
        humantime::format_duration(run_for)
    );
    let cfg = targets.config(
        dir.path(),
        "run",
        "detection:\n  interval: 1s\n  timeout: 500ms\n",
    );
    steady_state(&cfg, run_for);
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The peer on loopback: component addresses and TCP listeners that accept.
struct Targets {
    /// (component key in `probes`, addresses, tcp ports)
    components: Vec<(&'static str, Vec<Ipv4Addr>, Vec<u16>)>,
}

impl Targets {
    fn open() -> Targets {
        let lo = |last: u8| Ipv4Addr::new(127, 0, 0, last);
        let plan: [(&'static str, Vec<Ipv4Addr>, usize); 4] = [
            ("appserver", vec![lo(2)], 4),
            ("proxy", vec![lo(3)], 3),
            ("directory", vec![lo(4)], 2),
            ("consul", vec![lo(5), lo(6), lo(7), lo(8)], 1),
        ];
        let mut components = Vec::new();
        for (name, addrs, ntcp) in plan {
            let mut ports = Vec::new();
            for _ in 0..ntcp {
                // One port, listened on at every address of the component.
                let first = listen(SocketAddr::from((addrs[0], 0)));
                let port = first.local_addr().map(|a| a.port()).unwrap_or(0);
                accept_forever(first);
                for a in &addrs[1..] {
                    accept_forever(listen(SocketAddr::from((*a, port))));
                }
                ports.push(port);
            }
            components.push((name, addrs, ports));
        }
        Targets { components }
    }

    /// Addresses pinged plus (address, port) pairs probed.
    fn count(&self) -> usize {
        self.components
            .iter()
            .map(|(_, a, p)| a.len() * (1 + p.len()))
            .sum()
    }

    fn config(&self, dir: &Path, name: &str, detection: &str) -> PathBuf {
        let d = dir.join(name);
        let _ = std::fs::create_dir_all(&d);
        let addr = |c: &str| {
            self.components
                .iter()
                .find(|(n, _, _)| *n == c)
                .map(|(_, a, _)| a.clone())
                .unwrap_or_default()
        };
        let mut probes = String::from("probes:\n");
        for (n, _, ports) in &self.components {
            let list: Vec<String> = ports.iter().map(|p| format!("{{tcp: {p}}}")).collect();
            probes.push_str(&format!("  {n}: [{}]\n", list.join(", ")));
        }
        let consul: Vec<String> = addr("consul").iter().map(|a| a.to_string()).collect();
        let yaml = format!(
            r#"local:
  whoami: secondary
  dc_check: primary
  roles: [appserver, proxyserver, consulserver]
  checkDownFile: {d}/down
  checkPromotionFile: {d}/prom
  checkRestartReplicaFile: {d}/rstop
  state_dir: {d}/state
primary:
  appserver_ip: {app}
  proxy_ip: {proxy}
  directorysrv_ip: {dir}
  consul_ips: [{consul}]
  consul_vmnames: [c1, c2, c3, c4]
  appserver_vmname: mbox1.example.com
secondary:
  appserver_vmname: mbox2.example.com
  consul_vmnames: [c5]
witnesses:
  consul_members: false
  consul_health: false
safety:
  quorum_gate: false
carbonio:
  cli: /bin/false
  zmprov: /bin/false
  run_as: ""
{probes}{detection}"#,
            d = d.display(),
            app = addr("appserver")[0],
            proxy = addr("proxy")[0],
            dir = addr("directory")[0],
            consul = consul.join(", "),
        );
        let path = d.join("habeat.yml");
        if let Err(e) = std::fs::write(&path, yaml) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        path
    }
}

fn listen(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| {
        eprintln!("cannot listen on {addr}: {e}");
        std::process::exit(1);
    })
}

fn accept_forever(l: TcpListener) {
    std::thread::spawn(move || {
        for conn in l.incoming() {
            drop(conn);
        }
    });
}

/// One reading of a process.
#[derive(Clone, Copy)]
struct Sample {
    /// VmRSS, KiB: everything resident.
    rss: u64,
    /// RssAnon, KiB: heap and stacks. The rest of the RSS is mostly the
    /// binary's own code pages, which grow as new code paths first run and
    /// which the kernel can drop and re-read: a leak shows here.
    anon: u64,
    /// utime + stime, clock ticks.
    ticks: u64,
}

fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let rss = kib("VmRSS:")?;
    let anon = kib("RssAnon:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line (11 and 12 after the name).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Sample { rss, anon, ticks })
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn steady_state(cfg: &Path, run_for: Duration) {
    let log = cfg.with_file_name("run.log");
    let stderr = match std::fs::File::create(&log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot create {}: {e}", log.display());
            std::process::exit(1);
        }
    };
    let mut child = match Command::new(HABEAT)
        .args(["--config", &cfg.display().to_string(), "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {HABEAT} run: {e}");
            std::process::exit(1);
        }
    };
    let pid = child.id();
    let tck = clock_ticks();
    // Warm-up: the first rounds, the runtime's threads, the first probes.
    let warmup = Duration::from_secs(5).min(run_for / 4);
    std::thread::sleep(warmup);
    let Some(first) = sample(pid) else {
        eprintln!(
            "habeat run exited early; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::process::exit(1);
    };
    let t0 = Instant::now();
    let mut rss_max = first.rss;
    let mut last = first;
    let every = Duration::from_secs(5)
        .min(run_for / 10)
        .max(Duration::from_millis(500));
    println!("{:>8} {:>10} {:>10} {:>8}", "t", "RSS", "anon", "CPU %");
    while t0.elapsed() < run_for {
        std::thread::sleep(every);
        match sample(pid) {
            Some(s) => {
                rss_max = rss_max.max(s.rss);
                let secs = t0.elapsed().as_secs_f64();
                if (secs as u64) % 30 < every.as_secs().max(1) {
                    println!(
                        "{:>7.0}s {:>6} KiB {:>6} KiB {:>7.2}",
                        secs,
                        s.rss,
                        s.anon,
                        (s.ticks - first.ticks) as f64 / tck / secs * 100.0
                    );
                }
                last = s;
            }
            None => {
                eprintln!(
                    "habeat run died; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                std::process::exit(1);
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (last.ticks - first.ticks) as f64 / tck / secs * 100.0;
    let _ = child.kill();
    let _ = child.wait();
    let rounds = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n");
    println!();
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>11} {:>10} {:>12}",
        "window", "RSS start", "RSS end", "RSS max", "anon start", "anon end", "CPU % 1 core"
    );
    println!(
        "{:<12} {:>6} KiB {:>6} KiB {:>6} KiB {:>7} KiB {:>6} KiB {:>12.2}",
        humantime::format_duration(Duration::from_secs(secs as u64)).to_string(),
        first.rss,
        last.rss,
        rss_max,
        first.anon,
        last.anon,
        cpu
    );
    if !rounds.is_empty() {
        println!("\nwarnings/errors in the daemon's log (first 5):\n{rounds}");
    }
}
