//! How habeat copes with a large mailstore: the account listing of 1k,
//! 10k and 100k accounts, each figure beside its floor.
//!
//! (a) In-process, one fresh child process per size (so that peak RSS is
//!     that size's own):
//!     - parse: `parse_account_listing` of the `getAccountStatus` JSON
//!       (what habeat runs on it); floor: one pass of serde_json over the
//!       same bytes that builds nothing (`IgnoredAny`);
//!     - handle: the engine step that takes the listing (the interval from
//!       "action finished: list" to "done: list": step, save `state.json`,
//!       append the journal); floor: writing the resulting `state.json`
//!       once (serialise, write, fsync), which the step must do anyway;
//!     - peak RSS (VmHWM) of the child; floor: a child that only holds
//!       the listing's bytes and the account names.
//! (b) Through the binary: `habeat promote --source-mail-host` against the
//!     fake carbonio (list, list again, promote), wall time and habeat's
//!     peak RSS; floor: the same three fake CLI calls run directly.
//!
//! Run: `cargo bench --bench listing` (no root needed). Returns at once
//! without `--bench` (`cargo test --all-targets` runs it).

#[path = "../tests/support/fake_carbonio.rs"]
mod fake_carbonio;

use habeat::act::carbonio::{MailHost, parse_account_listing};
use habeat::engine::{
    ActionKind, ActionOutcome, Input, OperatorCommand, OutcomeResult, PromoteTarget,
};
use habeat::session::{Fed, Session};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--one" || a == "--floor") {
        let n = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(1000);
        let r = if args[i] == "--one" { one(n) } else { floor(n) };
        if let Err(e) = r {
            eprintln!("listing bench ({n}): {e}");
            std::process::exit(1);
        }
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("listing bench: run with `cargo bench --bench listing` for figures");
        return;
    }
    if let Err(e) = run() {
        eprintln!("listing bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    println!("(a) the listing in-process (one child per size); figure [floor]");
    println!(
        "{:>8} {:>22} {:>22} {:>22}",
        "accounts", "parse ms", "handle ms", "peak RSS MiB"
    );
    for n in SIZES {
        let child = |mode: &str| -> Result<Vec<f64>, String> {
            let out = Command::new(&me)
                .args([mode, &n.to_string()])
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
        };
        let one = child("--one")?;
        let fl = child("--floor")?;
        let [parse, parse_floor, handle, handle_floor, rss] = one[..] else {
            return Err(format!("unexpected child output {one:?}"));
        };
        let rss_floor = fl.first().copied().unwrap_or(0.0);
        println!(
            "{n:>8} {:>22} {:>22} {:>22}",
            format!("{parse:.1} [{parse_floor:.1}]"),
            format!("{handle:.1} [{handle_floor:.1}]"),
            format!("{rss:.1} [{rss_floor:.1}]"),
        );
    }
    println!();
    println!("(b) habeat promote --source-mail-host through the binary and the fake CLI");
    println!(
        "{:>8} {:>22} {:>14}",
        "accounts", "wall s [fake alone]", "habeat RSS MiB"
    );
    let habeat = Path::new(env!("CARGO_BIN_EXE_habeat"));
    build_fake(habeat)?;
    for n in SIZES {
        let (wall, rss, fake) = end_to_end(habeat, n)?;
        println!(
            "{n:>8} {:>22} {:>14.1}",
            format!("{wall:.2} [{fake:.2}]"),
            rss
        );
    }
    Ok(())
}

/// The `getAccountStatus` answer for `n` accounts, shaped as the fake
/// carbonio prints it (written as text: building it as a JSON value first
/// would set this process's peak RSS).
fn listing(n: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut v = String::with_capacity(n * 400 + 32);
    v.push_str(r#"{"response":{"values":["#);
    for i in 0..n {
        if i > 0 {
            v.push(',');
        }
        let id = format!("9e94{i:08x}-0000-4000-8000-000000000000");
        let _ = write!(
            v,
            r#"{{"accountId":"{id}","accountName":"user{i:06}@example.com","accountMailHost":"{SOURCE}","paused":false,"mailboxId":{i},"sequence":1,"itemId":257,"replicas":[{{"accountId":"{id}","destination":"{REPLICA}","available":true,"priority":10,"canConnectToKafka":true}}]}}"#
        );
    }
    v.push_str("]}}\n");
    v.into_bytes()
}

/// What habeat does with the listing's bytes (`Carbonio::get_account_status`
/// and the executor): validated accounts, then their names.
fn parse(bytes: &[u8]) -> Result<Vec<String>, String> {
    let host = MailHost::parse(SOURCE).map_err(|e| e.to_string())?;
    Ok(parse_account_listing(bytes, &host)?
        .into_iter()
        .map(|a| a.account_name.to_string())
        .collect())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// This process's peak resident set, in MiB.
fn peak_rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The floor of peak RSS: the listing's bytes (which the output buffer
/// holds) and the list of names the engine is handed, nothing else.
fn floor(n: usize) -> Result<(), String> {
    let bytes = listing(n);
    let names: Vec<String> = (0..n).map(|i| format!("user{i:06}@example.com")).collect();
    std::hint::black_box((&bytes, &names));
    println!("{:.1}", peak_rss_mib("self"));
    Ok(())
}

fn config(dir: &Path) -> Result<habeat::config::Config, String> {
    let d = dir.display();
    let yaml = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  \
         checkRestartReplicaFile: {d}/rstop\n  provider: consul\n  state_dir: {d}/state\n\
         primary:\n  appserver_ip: 127.0.0.1\n  appserver_vmname: {SOURCE}\n\
         secondary:\n  appserver_vmname: {REPLICA}\n\
         consul:\n  hostname: 127.0.0.1\n  port: 1\n\
         carbonio:\n  run_as: \"\"\n"
    );
    let path = dir.join("habeat.yml");
    std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
    habeat::config::load_file(&path).map_err(|e| e.lines().join("; "))
}

fn one(n: usize) -> Result<(), String> {
    let bytes = listing(n);
    let t = Instant::now();
    let names = parse(&bytes)?;
    let parse_ms = ms(t.elapsed());
    let t = Instant::now();
    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|e| e.to_string())?;
    let parse_floor = ms(t.elapsed());
    drop(bytes);

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cfg = config(dir.path())?;
    let mut s = Session::open(&cfg, false).map_err(|e| e.to_string())?;
    let mut fed = Fed::default();
    // An operator's promotion of the whole mailstore: the engine lists it
    // again before promoting, as an automatic failover does.
    let list = s
        .decide(
            Input::Operator(OperatorCommand::Promote {
                target: PromoteTarget::SourceMailHost(SOURCE.into()),
                accounts: names.clone(),
                threads: None,
                force: true,
                evidence: Vec::new(),
                follow_ups: true,
            }),
            &mut fed,
        )
        .map_err(|e| e.to_string())?
        .ok_or("the engine handed out no listing")?;
    if !matches!(list.kind, ActionKind::ListAccounts { .. }) {
        return Err(format!("expected a listing, got {:?}", list.kind));
    }
    let t = Instant::now();
    let next = s
        .decide(
            Input::Outcome(ActionOutcome {
                id: list.id,
                result: OutcomeResult::Listed {
                    accounts: names,
                    at_risk: Vec::new(),
                },
            }),
            &mut fed,
        )
        .map_err(|e| e.to_string())?;
    let handle_ms = ms(t.elapsed());
    if !matches!(
        next.as_ref().map(|a| &a.kind),
        Some(ActionKind::PromoteAccounts { .. })
    ) {
        return Err(format!("expected the promotion next, got {next:?}"));
    }
    let t = Instant::now();
    let mut body = serde_json::to_vec_pretty(&s.state).map_err(|e| e.to_string())?;
    body.push(b'\n');
    let path = dir.path().join("floor.json");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        f.write_all(&body).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
    }
    let handle_floor = ms(t.elapsed());
    println!(
        "{parse_ms:.3} {parse_floor:.3} {handle_ms:.3} {handle_floor:.3} {:.1}",
        peak_rss_mib("self")
    );
    Ok(())
}

fn build_fake(habeat: &Path) -> Result<(), String> {
    // `cargo bench` builds benches, not the fake carbonio example.
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let mut cmd = Command::new(cargo);
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
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("building the fake carbonio failed ({s})")),
        Err(e) => Err(format!("cannot run cargo to build the fake carbonio: {e}")),
    }
}

/// (wall s, habeat peak RSS MiB, the fake's calls alone s)
fn end_to_end(habeat: &Path, n: usize) -> Result<(f64, f64, f64), String> {
    let accounts: Vec<fake_carbonio::Account> = (0..n)
        .map(|i| fake_carbonio::account(&format!("user{i:06}@example.com"), SOURCE, REPLICA))
        .collect();
    let state = fake_carbonio::with_accounts(accounts);
    let fake = fake_carbonio::FakeCarbonio::new(&state);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path().display();
    let yaml = format!(
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  \
         checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  \
         checkRestartReplicaFile: {d}/rstop\n  provider: consul\n  state_dir: {d}/state\n\
         primary:\n  appserver_ip: 127.0.0.1\n  appserver_vmname: {SOURCE}\n\
         secondary:\n  appserver_vmname: {REPLICA}\n\
         consul:\n  hostname: 127.0.0.1\n  port: 1\n\
         detection:\n  timeout: 250ms\n\
         carbonio:\n  cli: {cli}\n  zmprov: {zm}\n  run_as: \"\"\n  \
         command_timeout: 10m\n  promote_timeout: 10m\n",
        cli = fake.carbonio.display(),
        zm = fake.zmprov.display(),
    );
    let cfg = dir.path().join("habeat.yml");
    std::fs::write(&cfg, yaml).map_err(|e| e.to_string())?;

    let t = Instant::now();
    let mut child = Command::new(habeat)
        .arg("--config")
        .arg(&cfg)
        .args(["promote", "--source-mail-host", SOURCE, "--force", "--yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id().to_string();
    let mut rss: f64 = 0.0;
    let status = loop {
        rss = rss.max(peak_rss_mib(&pid));
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(st) => break st,
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let wall = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("habeat promote ({n} accounts) failed: {status}"));
    }
    if fake.accounts_on(REPLICA).len() != n {
        return Err(format!("not all {n} accounts were promoted"));
    }

    // The floor: the fake's own three calls, from the same starting state.
    fake.set_state(&state);
    let t = Instant::now();
    for args in [
        &[
            "--json",
            "MailReplica",
            "getAccountStatus",
            "mailHost",
            SOURCE,
        ][..],
        &[
            "--json",
            "MailReplica",
            "getAccountStatus",
            "mailHost",
            SOURCE,
        ],
        &[
            "--sync",
            "MailReplica",
            "promoteAccounts",
            "source_mail_host",
            SOURCE,
            "threads",
            "1",
        ],
    ] {
        let st = Command::new(&fake.carbonio)
            .args(args)
            .env(fake_carbonio::STATE_ENV, &fake.state_path)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("the fake carbonio failed ({st})"));
        }
    }
    Ok((wall, rss, t.elapsed().as_secs_f64()))
}
