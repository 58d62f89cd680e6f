//! The systemd units: `systemd-analyze verify` accepts them, they carry the
//! settings the daemon relies on, and their capability set and
//! NoNewPrivileges still let habeat run the Carbonio CLIs as another user,
//! ping, and kill an overrunning child.

use crate::support::{Need, require};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const UNITS: [&str; 3] = [
    "habeat.service",
    "habeat-check.service",
    "habeat-check.timer",
];
const INSTALLED_BINARY: &str = "/usr/local/sbin/habeat";

pub(crate) fn unit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

pub(crate) fn read_unit(name: &str) -> String {
    std::fs::read_to_string(unit_dir().join(name)).unwrap()
}

/// `Key=value` settings of one section (later keys append, like systemd
/// does for list settings).
pub(crate) fn section(unit: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut inside = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.starts_with('#') && !line.is_empty() {
            let (k, v) = line.split_once('=').unwrap();
            out.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    out
}

fn one<'a>(s: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    let v = s.get(key).unwrap_or_else(|| panic!("{key}= missing"));
    assert_eq!(v.len(), 1, "{key}= set more than once");
    &v[0]
}

pub(crate) fn words(s: &BTreeMap<String, Vec<String>>, key: &str) -> Vec<String> {
    s.get(key)
        .into_iter()
        .flatten()
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !require(&[Need::SYSTEMD_ANALYZE]) {
        return;
    }
    // verify checks that ExecStart= exists: point the copies at the binary
    // cargo just built instead of the install path.
    let dir = tempfile::tempdir().unwrap();
    let built = env!("CARGO_BIN_EXE_habeat");
    let mut paths = Vec::new();
    for name in UNITS {
        let text = read_unit(name);
        if name.ends_with(".service") {
            assert!(
                text.contains(INSTALLED_BINARY),
                "{name} runs {INSTALLED_BINARY}"
            );
        }
        let p = dir.path().join(name);
        std::fs::write(&p, text.replace(INSTALLED_BINARY, built)).unwrap();
        paths.push(p);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("habeat")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[test]
fn the_daemon_unit_has_what_the_run_loop_relies_on() {
    let unit = read_unit("habeat.service");
    let s = section(&unit, "Service");
    assert_eq!(one(&s, "Type"), "notify");
    assert_eq!(
        one(&s, "ExecStart"),
        "/usr/local/sbin/habeat --config /etc/habeat/habeat.yml run"
    );
    assert_eq!(one(&s, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one(&s, "Restart"), "on-failure");
    // SIGTERM must reach habeat only, or systemd would kill the carbonio
    // CLI in the middle of a promotion that habeat means to let finish.
    assert_eq!(one(&s, "KillMode"), "mixed");
    // The watchdog must allow several default rounds (detection.interval 2s).
    let wd = humantime::parse_duration(one(&s, "WatchdogSec")).unwrap();
    assert!(
        wd >= Duration::from_secs(6),
        "WatchdogSec={wd:?} is too tight"
    );
    hardening(&s, "habeat.service");
}

#[test]
fn the_check_unit_and_timer_fit_together() {
    let unit = read_unit("habeat-check.service");
    let s = section(&unit, "Service");
    assert_eq!(one(&s, "Type"), "oneshot");
    let exec = one(&s, "ExecStart");
    assert!(
        exec.starts_with("/usr/local/sbin/habeat --config ")
            && exec.contains("--log /var/log/habeat.log"),
        "{exec}"
    );
    hardening(&s, "habeat-check.service");

    let timer = read_unit("habeat-check.timer");
    let t = section(&timer, "Timer");
    let target = one(&t, "Unit");
    assert!(
        unit_dir().join(target).exists(),
        "the timer starts {target}, which is not shipped"
    );
    let every = humantime::parse_duration(one(&t, "OnUnitInactiveSec")).unwrap();
    assert!(
        every < Duration::from_secs(5 * 60),
        "checks at least as often as the old 5 minutes"
    );
    assert!(section(&timer, "Install").contains_key("WantedBy"));
}

fn hardening(s: &BTreeMap<String, Vec<String>>, name: &str) {
    assert_eq!(one(s, "ProtectSystem"), "strict", "{name}");
    assert_eq!(one(s, "ProtectHome"), "yes", "{name}");
    // Lock files keep their legacy place in /var/tmp, visible to operators.
    assert_eq!(one(s, "PrivateTmp"), "no", "{name}");
    assert_eq!(one(s, "NoNewPrivileges"), "yes", "{name}");
    let rw = words(s, "ReadWritePaths");
    for p in ["/var/lib/habeat", "/var/log", "/var/tmp"] {
        assert!(
            rw.iter().any(|w| w == p),
            "{name}: ReadWritePaths lacks {p}: {rw:?}"
        );
    }
    let mut caps = words(s, "CapabilityBoundingSet");
    caps.sort();
    assert_eq!(
        caps,
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_KILL",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID"
        ],
        "{name}"
    );
}

/// Child half of `run_as_ping_and_kill_work_inside_the_units_limits`:
/// runs under setpriv with the unit's bounding set and no_new_privs.
#[test]
#[ignore = "run by run_as_ping_and_kill_work_inside_the_units_limits in a child"]
fn child_acts_within_limits() {
    if std::env::var_os("HABEAT_TEST_CHILD").is_none() {
        return;
    }
    use habeat::act::process::{RunAs, Spec, Status, run};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let nobody = RunAs::lookup("nobody").unwrap();
        let mut spec = Spec::new(["/usr/bin/id", "-u"], Duration::from_secs(20));
        spec.user = Some(nobody.clone());
        match run(&spec).await {
            Ok(o) if o.success() => {
                println!("RUNAS {}", o.stdout.text().trim());
            }
            Ok(o) => println!("RUNAS failed: {:?} {}", o.status, o.tail(200)),
            Err(e) => println!("RUNAS failed: {e}"),
        }
        // An overrunning child of another user is killed at its timeout
        // (killing another uid's process group needs CAP_KILL).
        let mut spec = Spec::new(["/bin/sleep", "60"], Duration::from_millis(200));
        spec.user = Some(nobody);
        match run(&spec).await {
            Ok(o) if o.status == Status::TimedOut && o.duration < Duration::from_secs(30) => {
                println!("KILL ok");
            }
            Ok(o) => println!("KILL failed: {:?} after {:?}", o.status, o.duration),
            Err(e) => println!("KILL failed: {e}"),
        }
    });
    // ICMP needs a raw socket, which takes CAP_NET_RAW (bit 13) in the
    // effective set.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    if eff & (1 << 13) != 0 {
        println!("RAW ok");
    } else {
        println!("RAW failed: CapEff={eff:x}");
    }
}

fn run_limited(caps: &[String]) -> String {
    let bounding = std::iter::once("-all".to_owned())
        .chain(
            caps.iter()
                .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase())),
        )
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("setpriv")
        .args(["--no-new-privs", "--bounding-set", &bounding, "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "systemd_units::child_acts_within_limits",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .env("HABEAT_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn run_as_ping_and_kill_work_inside_the_units_limits() {
    // habeat runs as root under systemd, within the unit's capabilities.
    if !require(&[Need::Root, Need::SETPRIV]) {
        return;
    }
    let s = section(&read_unit("habeat.service"), "Service");
    let caps = words(&s, "CapabilityBoundingSet");
    let out = run_limited(&caps);
    assert!(
        out.contains("RUNAS 65534"),
        "run_as works under the unit's limits:\n{out}"
    );
    assert!(out.contains("KILL ok"), "{out}");
    assert!(out.contains("RAW ok"), "{out}");

    // Control: the same check fails without CAP_SETUID, so the test does
    // prove the capability is needed and present.
    let fewer: Vec<String> = caps.into_iter().filter(|c| c != "CAP_SETUID").collect();
    let out = run_limited(&fewer);
    assert!(out.contains("RUNAS failed"), "{out}");
}

/// Every unit names its documentation (`systemctl status` and `systemctl
/// help` show it; lintian wants it): `man:` pages only, each one a page
/// the packages ship (examples/package_assets.rs writes one per
/// subcommand, from the same clap command), `habeat(8)` first.
#[test]
fn every_unit_documents_itself_with_pages_the_packages_ship() {
    use clap::CommandFactory;
    let cli = habeat::cli::Cli::command();
    let mut shipped = vec!["habeat(8)".to_owned()];
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        shipped.push(format!("habeat-{}(8)", sub.get_name()));
    }
    for name in UNITS {
        let unit = read_unit(name);
        let docs = words(&section(&unit, "Unit"), "Documentation");
        assert_eq!(
            docs.first().map(String::as_str),
            Some("man:habeat(8)"),
            "{name}: Documentation= starts with man:habeat(8): {docs:?}"
        );
        for d in &docs {
            let page = d
                .strip_prefix("man:")
                .unwrap_or_else(|| panic!("{name}: {d} is not a man page (no docs URL exists)"));
            assert!(
                shipped.iter().any(|s| s == page),
                "{name}: Documentation= names {page}, which the packages do not ship: {shipped:?}"
            );
        }
    }
}
