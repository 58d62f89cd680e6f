//! The primary side's fence through the binary: `hooks.on_fence` counts as
//! done only once every hook succeeded (docs/decisions.md §7, "The fence
//! is done when its hooks are"). A SIGTERM while the hooks run lets them
//! finish; a crash while they run leaves the fence owed and the next start
//! runs it; failing hooks run again until they succeed, and `status` says
//! FAILED meanwhile, never that a fence it did not finish was done.
//!
//! The same stage as `lease_primary` (an in-test Consul cluster whose
//! primary-side agent loses the leader, the secondary's mailstore gone in
//! a namespace whose link is down). No durations asserted: every wait is
//! on a condition, with a generous ceiling.

use crate::support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::consul_api::ConsulApi;

const HOST: &str = "mbox1.example.com";
const KEY: &str = "habeat/serving/mbox1.example.com";
/// Generous bound for things that must happen (not a timing assertion).
const BOUND: Duration = Duration::from_secs(120);

struct Bed {
    agent: ConsulApi,
    dir: tempfile::TempDir,
    config: PathBuf,
    metrics: u16,
    _ns: support::netns::Netns,
}

impl Bed {
    /// An isolated-to-be primary whose `on_fence` is the script `on_fence`
    /// (run with `/bin/sh`; `$D` is the test's directory).
    async fn new(on_fence: &str) -> Bed {
        let agent = ConsulApi::builder().start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let script = dir.path().join("on_fence.sh");
        std::fs::write(&script, format!("#!/bin/sh\nD={d}\n{on_fence}\n")).expect("script");
        let ns = support::netns::Netns::create();
        ns.set_link(false);
        let metrics = support::free_port();
        let config = dir.path().join("habeat.yml");
        let yaml = format!(
            r#"local:
  whoami: primary
  dc_check: secondary
  role: appserver
  checkDownFile: {d}/appserverdown-habeat
  checkPromotionFile: {d}/appserverprom-habeat
  checkRestartReplicaFile: {d}/appserverrstopha
  provider: consul
  state_dir: {d}/state
primary:
  appserver_vmname: {HOST}
secondary:
  appserver_ip: {peer_ip}
  appserver_vmname: mbox2.example.com
consul:
  hostname: 127.0.0.1
  port: {cport}
detection:
  interval: 500ms
  timeout: 300ms
  fall: 2
  rise: 1
probes:
  appserver: [ {{ tcp: 9 }} ]
witnesses:
  consul_members: false
  consul_health: false
lease:
  enabled: true
  ttl: 10s
metrics:
  listen: 127.0.0.1:{metrics}
hooks:
  timeout: 60s
  on_fence: ["/bin/sh {script}"]
"#,
            peer_ip = ns.ip(),
            cport = agent.addr().port(),
            script = script.display(),
        );
        std::fs::write(&config, yaml).expect("write config");
        Bed {
            agent,
            dir,
            config,
            metrics,
            _ns: ns,
        }
    }

    fn start(&self) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .expect("log");
        Daemon(
            Command::new(env!("CARGO_BIN_EXE_habeat"))
                .args(["--config", self.config.to_str().expect("utf-8"), "run"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start habeat run"),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    async fn until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + BOUND;
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Start habeat and cut its Consul agent off from the leader once it
    /// holds the lease: it fences itself.
    async fn start_and_isolate(&self) -> Daemon {
        let d = self.start();
        self.until("the lease is taken", || {
            self.agent.lock_holder(KEY).is_some()
        })
        .await;
        self.agent.set_agent_leader_lost(true);
        d
    }

    /// `habeat status` (text) and `habeat status --json`'s `lease`.
    fn status(&self) -> (String, serde_json::Value) {
        let run = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_habeat"))
                .args(["--config", self.config.to_str().expect("utf-8")])
                .args(args)
                .output()
                .expect("habeat status");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let text = run(&["status"]);
        let json: serde_json::Value =
            serde_json::from_str(&run(&["status", "--json"])).unwrap_or_default();
        (text, json["lease"].clone())
    }

    /// `status` must not claim a fence whose hook has not written its
    /// marker.
    fn assert_status_honest(&self) {
        let (text, lease) = self.status();
        if self.lines("fenced").is_empty() {
            assert!(
                !text.contains("FENCED") && lease["fence"] != "done",
                "status claims a fence that did not complete:\n{text}\n{lease}"
            );
        }
    }

    async fn scrape(&self, metric: &str) -> Option<f64> {
        let body = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{metric} ")))
            .and_then(|v| v.trim().parse().ok())
    }
}

struct Daemon(Child);

impl Daemon {
    fn signal(&self, sig: Signal) {
        let pid = i32::try_from(self.0.id()).expect("pid");
        kill(Pid::from_raw(pid), sig).expect("signal habeat");
    }

    async fn exited(&mut self, bed: &Bed) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            if let Some(st) = self.0.try_wait().expect("wait") {
                return st;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "habeat did not exit; log:\n{}",
                bed.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes its pid (= its process group) to `started`, takes a while, then
/// writes `fenced`: the marker of a hook that ran to its end.
const SLOW_HOOK: &str = "echo $$ >> $D/started\nsleep 6\ndate +%s.%N >> $D/fenced";

/// SIGTERM while on_fence runs: the daemon lets the hook finish, saves
/// the fence as done, then exits 0; `status` said it was still fencing
/// until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_on_fence_lets_the_hook_finish_before_habeat_exits() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(SLOW_HOOK).await;
    let mut d = bed.start_and_isolate().await;
    bed.until("on_fence starts", || !bed.lines("started").is_empty())
        .await;
    bed.assert_status_honest();
    d.signal(Signal::SIGTERM);
    let st = d.exited(&bed).await;
    assert!(st.success(), "{st:?}; log:\n{}", bed.log());
    assert_eq!(
        bed.lines("fenced").len(),
        1,
        "the running on_fence hook was cut short by the stop; log:\n{}",
        bed.log()
    );
    let (text, lease) = bed.status();
    assert_eq!(lease["fence"], "done", "{lease}");
    assert!(text.contains("FENCED: the serving lease"), "{text}");
}

/// kill -9 of habeat and of the hook's process group while on_fence runs
/// (a crash, or the watchdog under KillMode=mixed): `status` does not call
/// it fenced, and the next start, still isolated, runs the hook to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_fence_cut_short_by_a_crash_runs_again_at_the_next_start() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(SLOW_HOOK).await;
    let mut d = bed.start_and_isolate().await;
    bed.until("on_fence starts", || !bed.lines("started").is_empty())
        .await;
    let hook: i32 = bed.lines("started")[0].trim().parse().expect("hook pid");
    d.signal(Signal::SIGKILL);
    d.exited(&bed).await;
    let _ = kill(Pid::from_raw(-hook), Signal::SIGKILL);
    assert!(bed.lines("fenced").is_empty(), "the hook was not cut short");
    bed.assert_status_honest();
    let (text, lease) = bed.status();
    assert_eq!(lease["fence"], "due", "{lease}");
    assert!(text.contains("FENCING"), "{text}");

    let _d = bed.start();
    bed.until("on_fence runs again", || bed.lines("started").len() >= 2)
        .await;
    bed.assert_status_honest();
    bed.until("the rerun finishes", || bed.lines("fenced").len() == 1)
        .await;
    bed.until("status says fenced", || bed.status().1["fence"] == "done")
        .await;
}

/// on_fence fails twice, then succeeds: habeat runs it again (with a
/// backoff) until it does; meanwhile `status`, `status --json` and
/// `habeat_fence_failed` say the fence FAILED, with the hook's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_on_fence_runs_again_until_it_succeeds_and_status_says_failed_meanwhile() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(
        "n=$(cat $D/count 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > $D/count\n\
         if [ $n -le 2 ]; then echo \"cannot withdraw the route ($n)\" >&2; exit 3; fi\n\
         date +%s.%N >> $D/fenced",
    )
    .await;
    let _d = bed.start_and_isolate().await;
    bed.until("status says the fence failed", || {
        let (text, lease) = bed.status();
        text.contains("FENCE FAILED") && lease["fence"] == "failed"
    })
    .await;
    let (text, lease) = bed.status();
    assert!(text.contains("exited with code 3"), "{text}");
    let fence_line = text
        .lines()
        .find(|l| l.contains("FENCE FAILED"))
        .unwrap_or_default();
    assert!(
        !fence_line.contains("  "),
        "the sentence reads as one line, without runs of spaces: {fence_line}"
    );
    assert!(
        lease["fence_error"]
            .as_str()
            .is_some_and(|e| e.contains("exited with code 3")),
        "{lease}"
    );
    assert!(lease["fence_failed_since"].as_u64().is_some(), "{lease}");
    assert!(bed.lines("fenced").is_empty());
    let deadline = tokio::time::Instant::now() + BOUND;
    while bed.scrape("habeat_fence_failed").await != Some(1.0) {
        assert!(
            bed.lines("fenced").is_empty() && tokio::time::Instant::now() < deadline,
            "habeat_fence_failed was never 1 while the fence failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.until("on_fence succeeds at its third run", || {
        bed.lines("fenced").len() == 1
    })
    .await;
    assert_eq!(bed.lines("count"), vec!["3"]);
    bed.until("status says fenced", || {
        let (text, lease) = bed.status();
        text.contains("FENCED: the serving lease") && lease["fence"] == "done"
    })
    .await;
    assert_eq!(bed.scrape("habeat_fence_failed").await, Some(0.0));
    let journal =
        std::fs::read_to_string(bed.dir.path().join("state/events.jsonl")).unwrap_or_default();
    assert_eq!(journal.matches("\"event\":\"lease_fenced\"").count(), 3);
    // Each counted as it was journaled: failed twice (error), done once.
    let counted =
        |sev: &str| format!("habeat_events_total{{event=\"lease_fenced\",severity=\"{sev}\"}}");
    let deadline = tokio::time::Instant::now() + BOUND;
    while bed.scrape(&counted("warning")).await != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fence done was never counted in habeat_events_total"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bed.scrape(&counted("error")).await, Some(2.0));
}
