//! habeat beside keepalived on the same tolerance: both watch a peer that
//! goes silent at the same instant, and each pair prints how long each
//! took to take over, and their ratio.
//!
//! ```sh
//! .ci/deps --bench                                  # keepalived (Debian), as root
//! sudo cargo bench --bench keepalived               # 20 pairs
//! HABEAT_BENCH_REPS=10 sudo -E cargo bench --bench keepalived
//! HABEAT_BENCH_TRACE=1 sudo -E cargo bench --bench keepalived  # + each step after Down
//! ```
//!
//! - **keepalived** 2.2.7 from Debian, two instances in two network
//!   namespaces joined by a veth pair: MASTER (priority 150) and BACKUP
//!   (priority 100), `advert_int 1`; its tolerance is 3 adverts (plus the
//!   skew of a priority-100 backup, 0.61 s). Measured: the cut → the
//!   backup's `notify` script saying MASTER.
//! - **habeat**: the failover testbed (network namespaces, the Consul
//!   stand-in, the fake carbonio), ICMP only (`quorum: 1`, the Consul
//!   witnesses off, the quorum gate on), `interval` 1 s, `fall` 3,
//!   `timeout` 500 ms: a tolerance of 3 missed rounds. Measured: the cut →
//!   `promoteAccounts` invoked (the fake's call log), and the detection
//!   (the cut → the appserver verdict Down in `events.jsonl`) against its
//!   deadline: when the probe the peer last answered went out +
//!   `fall × interval` (the floor: no detection on this tolerance can come
//!   earlier) + the last probe's grace (`state.json`'s witness `last_up`
//!   and its latency; docs/decisions.md §1).
//!
//! The cut: every packet the keepalived MASTER sends is dropped
//! (nftables), and the link of the primary's appserver goes down, one
//! right after the other (both instants are recorded). The cut lands at a
//! random phase of the rounds and adverts in each pair, and habeat's
//! rounds start at a random offset from keepalived's adverts, so each
//! pair's ratio is an independent draw of the two phases (0.60–1.07).
//! 20 pairs are run unless told otherwise (at least 10): the median of 20
//! draws swings less than that of 10; the ratio of the mean times moves
//! less still. Figures, not a test: nothing is asserted.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::testbed::{self, Binaries, Host, Options, Testbed};

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(500);
const FALL: u32 = 3;

fn run(argv: &[&str]) -> Result<(), String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("{argv:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{argv:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Two keepalived instances, MASTER and BACKUP, in namespaces of their
/// own; removed on drop.
struct Pair {
    dir: PathBuf,
    ns: [String; 2],
    procs: Vec<Child>,
}

impl Pair {
    fn start(dir: &Path) -> Result<Pair, String> {
        let pid = std::process::id() % 100_000;
        let ns = [format!("kam{pid}"), format!("kab{pid}")];
        let ifs = [format!("vkam{pid}"), format!("vkab{pid}")];
        for n in &ns {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            run(&["ip", "netns", "add", n])?;
        }
        let mut pair = Pair {
            dir: dir.to_owned(),
            ns: ns.clone(),
            procs: Vec::new(),
        };
        run(&[
            "ip", "link", "add", &ifs[0], "type", "veth", "peer", "name", &ifs[1],
        ])?;
        for (i, (n, ifc)) in ns.iter().zip(&ifs).enumerate() {
            run(&["ip", "link", "set", ifc, "netns", n])?;
            run(&[
                "ip",
                "-n",
                n,
                "addr",
                "add",
                &format!("10.254.0.{}/24", i + 1),
                "dev",
                ifc,
            ])?;
            run(&["ip", "-n", n, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", n, "link", "set", ifc, "up"])?;
        }
        for (i, (role, prio)) in [("MASTER", 150), ("BACKUP", 100)].iter().enumerate() {
            let notify = dir.join(format!("notify-{i}.sh"));
            let log = dir.join(format!("state-{i}.log"));
            std::fs::write(
                &notify,
                format!(
                    "#!/bin/sh\necho \"$(date +%s%3N) $3\" >> {}\n",
                    log.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            let conf = dir.join(format!("keepalived-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "global_defs {{\n  router_id bench_{i}\n  script_user root\n}}\n\
                     vrrp_instance VI_1 {{\n  state {role}\n  interface {}\n  \
                     virtual_router_id 51\n  priority {prio}\n  advert_int 1\n  \
                     virtual_ipaddress {{ 10.254.0.100/24 }}\n  notify \"{}\"\n}}\n",
                    ifs[i],
                    notify.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let out = std::fs::File::create(dir.join(format!("keepalived-{i}.out")))
                .map_err(|e| e.to_string())?;
            let p = |s: &str| dir.join(format!("{s}-{i}.pid")).display().to_string();
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns[i],
                    "keepalived",
                    "-n",
                    "-l",
                    "-D",
                    "--vrrp",
                ])
                .arg("-f")
                .arg(&conf)
                .args(["-p", &p("main"), "-r", &p("vrrp"), "-c", &p("checkers")])
                .stdout(out.try_clone().map_err(|e| e.to_string())?)
                .stderr(out)
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start keepalived: {e}"))?;
            pair.procs.push(child);
        }
        Ok(pair)
    }

    /// The notify lines of instance `i` (0 MASTER, 1 BACKUP): (Unix ms,
    /// state).
    fn states(&self, i: usize) -> Vec<(u64, String)> {
        std::fs::read_to_string(self.dir.join(format!("state-{i}.log")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (at, st) = l.split_once(' ')?;
                Some((at.parse().ok()?, st.to_owned()))
            })
            .collect()
    }

    /// Both instances settled: the first MASTER, the second BACKUP.
    fn settled(&self) -> bool {
        let last = |i| self.states(i).last().map(|(_, s)| s.clone());
        last(0).as_deref() == Some("MASTER") && last(1).as_deref() == Some("BACKUP")
    }

    /// The MASTER goes silent: every packet it sends is dropped.
    fn cut(&self) -> Result<u64, String> {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns[0],
            "nft",
            "add table inet bench_cut; add chain inet bench_cut out { type filter hook output priority 0; policy drop; }",
        ])?;
        Ok(testbed::now_ms())
    }

    fn heal(&self) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns[0],
                "nft",
                "delete",
                "table",
                "inet",
                "bench_cut",
            ])
            .output();
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// One pair of measurements, in milliseconds from each one's cut.
#[derive(Debug, Clone, Copy)]
struct Sample {
    keepalived: u64,
    habeat: u64,
    detection: u64,
    /// The peer's last answer + `fall × interval`, from the cut.
    floor: u64,
    /// The last probe's grace: the deadline is `floor + grace`.
    grace: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A delay of 0 to 999 ms, different at each call: the nanoseconds of the
/// wall clock are as good as a random number at this scale.
fn random_phase() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(u64::from(nanos / 1_000 % 1_000))
}

fn once(tb: &Testbed, pair: &Pair, rep: u32) -> Result<Sample, String> {
    tb.reset();
    pair.heal();
    // keepalived's adverts keep the rhythm they started with; habeat's
    // rounds start with its daemon. Started at a random offset, each
    // pair's two phases at the cut are drawn apart: started in step, every
    // pair of a run would share one offset, and a run of pairs would be
    // one draw of it (medians of 10 pairs swung from 0.77 to 0.92 so).
    std::thread::sleep(random_phase());
    let mut daemon = tb.spawn_daemon();
    if !testbed::wait_until(Duration::from_secs(30), || tb.appserver_up()) {
        return Err(format!(
            "habeat never saw the appserver Up:\n{}",
            tb.diagnostics()
        ));
    }
    if !testbed::wait_until(Duration::from_secs(30), || pair.settled()) {
        return Err("keepalived never settled (MASTER, BACKUP)".into());
    }
    // Land the cut at a random phase of the rounds and adverts.
    std::thread::sleep(Duration::from_secs(1) + random_phase());
    // Alternate which is cut first: the two cuts are a few ms apart.
    let (tk, th) = if rep.is_multiple_of(2) {
        let tk = pair.cut()?;
        (tk, tb.kill_host(Host::Appserver))
    } else {
        let th = tb.kill_host(Host::Appserver);
        (pair.cut()?, th)
    };
    let master = || {
        pair.states(1)
            .into_iter()
            .find(|(at, st)| *at >= tk && st == "MASTER")
            .map(|(at, _)| at)
    };
    if !testbed::wait_until(Duration::from_secs(60), || {
        !tb.promote_calls().is_empty() && master().is_some()
    }) {
        return Err(format!(
            "no takeover within 60 s (promoteAccounts: {}, keepalived MASTER: {})\n{}",
            !tb.promote_calls().is_empty(),
            master().is_some(),
            tb.diagnostics()
        ));
    }
    let promoted = tb.promote_calls()[0].at;
    let down = tb
        .appserver_down_at(th)
        .ok_or_else(|| format!("no Down verdict in the journal:\n{}", tb.diagnostics()))?;
    let witness = tb
        .state_json()
        .and_then(|s| {
            s["witnesses"]
                .as_array()?
                .iter()
                .find(|w| w["witness"]["component"] == "appserver")
                .cloned()
        })
        .ok_or("state.json has no appserver witness")?;
    let last_up = witness["last_up"]
        .as_u64()
        .ok_or("state.json has no last answer (last_up) for the appserver witness")?;
    // The grace of the last probe (docs/decisions.md §1): four times the
    // last answer's latency, at least interval / 20, at most timeout.
    let answered = witness["last_up_latency_ms"].as_u64().unwrap_or(0);
    let grace = (answered * 4).clamp(ms(INTERVAL / 20), ms(TIMEOUT).max(ms(INTERVAL / 20)));
    if std::env::var_os("HABEAT_BENCH_TRACE").is_some() {
        trace(tb, down);
    }
    daemon.terminate(Duration::from_secs(10));
    let tolerance = ms(INTERVAL * FALL);
    Ok(Sample {
        keepalived: master().unwrap_or(tk).saturating_sub(tk),
        habeat: promoted.saturating_sub(th),
        detection: down.saturating_sub(th),
        floor: (last_up + tolerance).saturating_sub(th),
        grace,
    })
}

/// Where the time went from the Down verdict to `promoteAccounts`: each
/// journal event and each carbonio call, in ms from the verdict
/// (`HABEAT_BENCH_TRACE=1`).
fn trace(tb: &Testbed, down: u64) {
    let mut lines: Vec<(i64, String)> = tb
        .events()
        .iter()
        .filter_map(|e| {
            let at = e["at"].as_u64()?;
            let kind = e["event"].as_str().unwrap_or("?");
            let what: String = e["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(70)
                .collect();
            Some((at as i64 - down as i64, format!("event {kind} {what}")))
        })
        .chain(tb.calls().into_iter().map(|c| {
            let what: String = c
                .args
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            (
                c.at as i64 - down as i64,
                format!("call {} {what}", c.program),
            )
        }))
        .filter(|(d, _)| (-100..2000).contains(d))
        .collect();
    lines.sort();
    for (d, what) in lines {
        println!("    {d:+5} ms  {what}");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("keepalived bench: run with `sudo cargo bench --bench keepalived` for figures");
        return;
    }
    let reps: u32 = std::env::var("HABEAT_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .max(1);
    if !nix::unistd::geteuid().is_root() {
        eprintln!("keepalived bench: needs root (network namespaces); run it with sudo");
        std::process::exit(1);
    }
    if Command::new("keepalived")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("keepalived bench: keepalived is not installed; run `.ci/deps --bench` as root");
        std::process::exit(1);
    }
    let lacking = support::need::lacking(testbed::NEEDS);
    if !lacking.is_empty() {
        eprintln!(
            "keepalived bench: cannot build the testbed: {}",
            lacking.join("; ")
        );
        std::process::exit(1);
    }
    let bins = match Binaries::built_for(Path::new(env!("CARGO_BIN_EXE_habeat"))) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("keepalived bench: {e}");
            std::process::exit(1);
        }
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("keepalived bench: no temporary directory: {e}");
            std::process::exit(1);
        }
    };
    let pair = match Pair::start(dir.path()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("keepalived bench: {e}");
            std::process::exit(1);
        }
    };
    let tb = Testbed::start(
        Options {
            roles: vec!["appserver"],
            interval: INTERVAL,
            timeout: TIMEOUT,
            fall: FALL,
            rise: 2,
            quorum: Some(1),
            consul_witnesses: false,
            flush_cache: false,
            ..Options::default()
        },
        bins,
    );
    println!(
        "habeat vs keepalived, the same tolerance (interval/advert_int 1s, 3 misses; habeat ICMP only, timeout 500ms, the quorum gate on); {reps} pairs"
    );
    println!(
        "| pair | keepalived ms | habeat ms | habeat/keepalived | habeat detection ms | last answer + fall × interval ms | + grace ms | detection/deadline |\n|---|---|---|---|---|---|---|---|"
    );
    let mut ratios = Vec::new();
    let mut over = Vec::new();
    let (mut sum_h, mut sum_k) = (0u64, 0u64);
    for rep in 0..reps {
        match once(&tb, &pair, rep) {
            Ok(s) => {
                let ratio = s.habeat as f64 / s.keepalived.max(1) as f64;
                let det = s.detection as f64 / (s.floor + s.grace).max(1) as f64;
                println!(
                    "| {rep} | {} | {} | {ratio:.2} | {} | {} | {} | {det:.3} |",
                    s.keepalived, s.habeat, s.detection, s.floor, s.grace
                );
                ratios.push(ratio);
                over.push(det);
                sum_h += s.habeat;
                sum_k += s.keepalived;
            }
            Err(e) => println!("| {rep} | FAILED: {} |", e.lines().next().unwrap_or("")),
        }
    }
    let worst = over.iter().copied().fold(f64::NAN, f64::max);
    println!();
    println!(
        "median habeat/keepalived: {:.2} (goal <= 0.90) over {} pairs; worst detection/deadline: {worst:.3} (goal <= 1.05)",
        median(ratios.clone()),
        ratios.len()
    );
    println!(
        "mean habeat / mean keepalived: {:.2}",
        sum_h as f64 / sum_k.max(1) as f64
    );
}
