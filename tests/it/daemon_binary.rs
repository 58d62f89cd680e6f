//! `habeat run`, the real binary, as systemd would run it: a unix datagram
//! socket standing in for `NOTIFY_SOCKET`, signals for reload and stop, the
//! metrics endpoint scraped over HTTP, against a real dead host (a network
//! namespace whose link is cut), the Consul API test server and the fake
//! carbonio.

use crate::bed::{self, REPLICA};
use crate::fake_carbonio;
use crate::support;

use fake_carbonio::Fault;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{Need, require};
use tokio::net::UnixDatagram;

/// "It did not hang": the bound on any single wait in these tests.
const BOUND: Duration = Duration::from_secs(30);

/// One rehearsal: a primary appserver in a namespace, Consul, the fake CLI,
/// a habeat.yml, a scratch directory (`support::bed`) and the notify socket.
struct Bed {
    shared: bed::Bed,
    notify: UnixDatagram,
    notify_path: PathBuf,
    metrics_port: u16,
}

impl Deref for Bed {
    type Target = bed::Bed;
    fn deref(&self) -> &bed::Bed {
        &self.shared
    }
}

impl Bed {
    async fn new() -> Bed {
        let metrics_port = support::free_port();
        let shared = bed::Bed::builder()
            .alice_and_bob()
            .consul_provider_threads_3()
            .full_failover()
            .carbonio_timeouts("5s", "20s")
            .add(
                "hooks",
                r#"after_promotion: ["echo after_promotion >> {hooks}"]"#,
            )
            // The survey and the promotion's listing are the same CLI call
            // (`getAccountStatus mailHost <peer>`): nothing in an invocation
            // tells them apart, and a fault on it slows both.
            .add(
                "replicas",
                "# No replica survey: these rehearsals count the CLI's getAccountStatus\n\
                 # calls as the promotion's listings (the survey has its own tests).\n\
                 survey_interval: 0",
            )
            .set("metrics", &format!("listen: 127.0.0.1:{metrics_port}"))
            .start()
            .await;
        let notify_path = shared.path("notify");
        let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        Bed {
            shared,
            notify,
            notify_path,
            metrics_port,
        }
    }

    /// Write habeat.yml; the `after_promotion` hook appends `marker` to
    /// hooks.log, which shows which configuration a promotion ran with.
    fn write_config(&self, marker: &str) {
        self.write_config_with(marker, "5s");
    }

    /// [`Bed::write_config`] with another `carbonio.command_timeout`.
    fn write_config_with(&self, marker: &str, command_timeout: &str) {
        self.rewrite_config(|y| {
            y.set("carbonio", &format!("command_timeout: {command_timeout}"));
            y.set(
                "hooks",
                &format!(r#"after_promotion: ["echo {marker} >> {{hooks}}"]"#),
            );
        });
    }

    /// Start `habeat --config F run` with NOTIFY_SOCKET aimed at our socket.
    fn start(&self) -> Daemon {
        let stderr = self.dir.path().join("stderr.log");
        let child = self
            .command(&["run"])
            .env("NOTIFY_SOCKET", &self.notify_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("create stderr.log"))
            .spawn()
            .expect("start habeat run");
        Daemon { child, stderr }
    }

    /// The next sd_notify datagram.
    async fn recv(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(BOUND, self.notify.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no notification within {BOUND:?}"))
            .expect("read the notify socket");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Read notifications until one satisfies `want`; returns it and all
    /// that came before it.
    async fn until(&self, want: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            if want(&m) {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// Let `n` more rounds complete (each ends with WATCHDOG=1).
    async fn rounds(&self, n: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut pings = 0;
        while pings < n {
            let m = self.recv().await;
            if m.contains("WATCHDOG=1") {
                pings += 1;
            }
            seen.push(m);
        }
        seen
    }

    async fn get(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        let resp = reqwest::get(&url).await.expect("GET the metrics endpoint");
        assert_eq!(resp.status(), 200, "GET {url}");
        resp.text().await.expect("read the body")
    }

    async fn scrape(&self) -> prometheus_parse::Scrape {
        let body = self.get("/metrics").await;
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
            .expect("parse /metrics")
    }
}

/// The running daemon; killed on drop if a test fails before stopping it.
struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    fn signal(&self, sig: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), sig).expect("signal habeat");
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait for the exit (bounded), returning the exit code.
    async fn exit_code(&mut self, bound: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for habeat") {
                return status.code();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "habeat did not exit within {bound:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Poll `done` until it holds, failing with `what` (and the daemon's log,
/// when given) after [`BOUND`].
async fn wait_until(what: &str, log: impl Fn() -> String, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {BOUND:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .and_then(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_socket_gets_ready_after_the_first_round_then_watchdog_and_a_verdict_status() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    let mut daemon = bed.start();
    let first = bed.recv().await;
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"READY=1"),
        "{first:?}\n{}",
        daemon.log()
    );
    let status = lines
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("READY=1 without STATUS=: {first:?}"));
    assert!(
        status.contains("peer primary") && status.contains("appserver Up"),
        "STATUS is not the verdict: {status:?}"
    );
    assert!(!status.contains('\n'));
    let more = bed.rounds(3).await;
    assert!(
        more.iter().all(|m| !m.contains("READY=1")),
        "READY=1 sent twice: {more:?}"
    );

    // The verdict follows the peer: STATUS changes when it goes Down.
    bed.kill_peer();
    let (down, _) = bed.until(|m| m.contains("appserver Down")).await;
    assert!(down.starts_with("STATUS=peer primary"), "{down:?}");
    assert!(daemon.alive(), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_a_valid_config_and_keeps_the_old_one_when_the_new_is_invalid() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.rounds(1).await;

    // A valid new config: a different after_promotion hook.
    bed.write_config("reloaded");
    daemon.signal(Signal::SIGHUP);
    let (_, _) = bed.until(|m| m.starts_with("RELOADING=1")).await;
    let after = bed.recv().await;
    assert!(
        after.starts_with("READY=1"),
        "RELOADING=1 not followed by READY=1: {after:?}"
    );
    bed.rounds(2).await;
    assert!(daemon.alive(), "{}", daemon.log());

    // An invalid one: kept out, the reason logged, still running.
    std::fs::write(
        &bed.config,
        std::fs::read_to_string(&bed.config)
            .expect("read config")
            .replace("interval: 300ms", "interval: banana"),
    )
    .expect("write config");
    daemon.signal(Signal::SIGHUP);
    bed.until(|m| m.starts_with("RELOADING=1")).await;
    let after = bed.recv().await;
    assert!(after.starts_with("READY=1"), "{after:?}");
    bed.rounds(2).await;
    assert!(daemon.alive(), "an invalid reload stopped habeat");
    let log = daemon.log();
    assert!(
        log.contains("banana"),
        "the rejected value is not in the log:\n{log}"
    );

    // The configuration in force is the valid new one.
    bed.kill_peer();
    bed.until(|_| bed.hooks_log().contains("reloaded")).await;
    assert_eq!(bed.hooks_log(), "activate\nreloaded\n");
    assert_eq!(bed.promotions(), 1);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_slow_promotion_lets_it_finish_and_exits_0() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 3.0 });
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.kill_peer();
    wait_until("no promotion", || daemon.log(), || bed.promotions() > 0).await;
    assert!(
        bed.fake.accounts_on(REPLICA).is_empty(),
        "the fake promotion was not slow"
    );
    daemon.signal(Signal::SIGTERM);
    let code = daemon.exit_code(Duration::from_secs(60)).await;
    let log = daemon.log();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        bed.fake.accounts_on(REPLICA),
        ["alice@example.com", "bob@example.com"],
        "{log}"
    );
    assert!(
        bed.lock("appserverprom-habeat-appserver").exists(),
        "promotion not recorded:\n{log}"
    );
    assert_eq!(bed.promotions(), 1);
    assert_eq!(
        bed.consul.lock_holder("habeat/failover/mbox1.example.com"),
        None,
        "gate not released:\n{log}"
    );
    // systemd was told we were stopping.
    let mut saw_stopping = false;
    let mut buf = [0u8; 4096];
    while let Ok(n) = bed.notify.try_recv(&mut buf) {
        saw_stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(saw_stopping, "no STOPPING=1:\n{log}");
}

/// A reload while promoteAccounts runs under the quorum gate: the action
/// finishes under the executor it started with, the chain runs on to its
/// end (the steps recorded with the promotion), and the gate the action
/// started under is given back at the end of the chain by the executor of
/// the new configuration, not left to a Consul session nobody renews.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_during_a_slow_promotion_lets_its_chain_end_and_gives_the_gate_back() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 3.0 });
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.kill_peer();
    let gate = "habeat/failover/mbox1.example.com";
    // Read systemd's messages meanwhile, as systemd does: a full socket
    // would slow every notification down.
    let drain = || {
        let mut buf = [0u8; 4096];
        while bed.notify.try_recv(&mut buf).is_ok() {}
    };
    wait_until(
        "no promotion",
        || daemon.log(),
        || {
            drain();
            bed.promotions() > 0
        },
    )
    .await;
    assert!(
        bed.fake.accounts_on(REPLICA).is_empty(),
        "the fake promotion was not slow"
    );
    assert!(
        bed.consul.lock_holder(gate).is_some(),
        "no gate held during the promotion:\n{}",
        daemon.log()
    );

    bed.write_config("reloaded");
    daemon.signal(Signal::SIGHUP);
    wait_until(
        "the promotion's chain did not end with the gate given back",
        || daemon.log(),
        || {
            drain();
            bed.hooks_log().contains("after_promotion") && bed.consul.lock_holder(gate).is_none()
        },
    )
    .await;
    let log = daemon.log();
    assert!(
        log.contains("an action is running"),
        "the reload came after the promotion:\n{log}"
    );
    assert_eq!(
        bed.fake.accounts_on(REPLICA),
        ["alice@example.com", "bob@example.com"],
        "{log}"
    );
    assert!(
        bed.lock("appserverprom-habeat-appserver").exists(),
        "promotion not recorded:\n{log}"
    );
    assert_eq!(bed.promotions(), 1, "{log}");
    assert!(bed.consul.sessions().is_empty(), "a session left:\n{log}");
    assert!(daemon.alive(), "{log}");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

/// A reload that moves `local.state_dir` while an action runs is refused
/// with what to do: the chain holds the old directory's state lock and
/// records its steps there, to their end.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_moving_the_state_dir_during_a_promotion_is_refused_and_the_chain_ends() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 3.0 });
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.kill_peer();
    let drain = || {
        let mut buf = [0u8; 4096];
        while bed.notify.try_recv(&mut buf).is_ok() {}
    };
    wait_until(
        "no promotion",
        || daemon.log(),
        || {
            drain();
            bed.promotions() > 0
        },
    )
    .await;
    assert!(
        bed.fake.accounts_on(REPLICA).is_empty(),
        "the fake promotion was not slow"
    );
    bed.rewrite_config(|y| y.set("local", "state_dir: {d}/elsewhere"));
    daemon.signal(Signal::SIGHUP);
    wait_until(
        "the promotion's chain did not end",
        || daemon.log(),
        || {
            drain();
            bed.hooks_log().contains("after_promotion")
        },
    )
    .await;
    let log = daemon.log();
    assert!(
        log.contains("new configuration rejected")
            && log.contains("local.state_dir changed while")
            && log.contains("reload again"),
        "{log}"
    );
    assert!(
        bed.lock("appserverprom-habeat-appserver").exists(),
        "promotion not recorded:\n{log}"
    );
    assert!(
        bed.journal_text().contains("promote_accounts"),
        "the chain's steps are not in the old directory's journal:\n{log}"
    );
    assert!(daemon.alive(), "{log}");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_status_endpoints_follow_the_rounds_and_a_dead_appserver_is_promoted_once() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    // READY's round pings too: count pings to bound the rounds counter.
    let mut pings = 1 + bed
        .rounds(2)
        .await
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    let s1 = bed.scrape().await;
    let r1 = value(&s1, "habeat_rounds_total", &[]).expect("habeat_rounds_total");
    // Every round counted once (one may have ended since the last ping).
    assert!(
        r1 >= 2.0 && r1 <= (pings + 2) as f64,
        "{r1} rounds counted after {pings} watchdog pings"
    );
    assert_eq!(
        value(
            &s1,
            "habeat_component_verdict",
            &[("component", "appserver")]
        ),
        Some(1.0),
        "appserver verdict gauge: {:?}",
        s1.samples
    );
    assert!(
        s1.samples.iter().any(|x| x.metric == "habeat_witness_vote"),
        "no witness votes"
    );
    pings += bed.rounds(3).await.len();
    let s2 = bed.scrape().await;
    let r2 = value(&s2, "habeat_rounds_total", &[]).expect("habeat_rounds_total");
    assert!(r2 > r1, "the rounds counter did not grow ({r1} -> {r2})");
    assert!(r2 <= (pings + 2) as f64, "{r2} rounds after {pings} pings");

    let status: serde_json::Value =
        serde_json::from_str(&bed.get("/status").await).expect("/status is JSON");
    assert_eq!(status["dc_check"], "primary", "{status:#}");
    assert_eq!(
        status["components"]["appserver"]["verdict"], "up",
        "{status:#}"
    );

    bed.kill_peer();
    bed.until(|_| bed.hooks_log().contains("after_promotion"))
        .await;
    // Ten more rounds with the peer still gone: nothing more is done.
    bed.rounds(10).await;
    assert_eq!(bed.promotions(), 1, "{}", daemon.log());
    assert_eq!(bed.hooks_log(), "activate\nafter_promotion\n");
    let s3 = bed.scrape().await;
    assert_eq!(value(&s3, "habeat_promotions_total", &[]), Some(1.0));
    assert_eq!(
        value(
            &s3,
            "habeat_component_verdict",
            &[("component", "appserver")]
        ),
        Some(0.0),
        "{}\n{}",
        bed.get("/status").await,
        daemon.log()
    );
    let status: serde_json::Value =
        serde_json::from_str(&bed.get("/status").await).expect("/status is JSON");
    assert_eq!(
        status["components"]["appserver"]["verdict"], "down",
        "{status:#}"
    );
    assert!(!status["last_promotion"].is_null(), "{status:#}");
    assert!(daemon.alive());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

/// `habeat <args>` against the bed's config, as an operator beside the
/// daemon; a short state-lock wait so a wrongly locking command shows fast.
fn operator(bed: &Bed, args: &[&str]) -> (Option<i32>, String) {
    let out = bed.operator(args, "1s");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_dry_runs_work_beside_the_daemon_even_during_its_promotion_and_a_real_check_waits()
 {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 8.0 });
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.rounds(2).await;

    // Healthy peer: every read-only or dry-run command answers at once.
    let (code, out) = operator(&bed, &["status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("appserver"), "{out}");
    let (code, out) = operator(&bed, &["--dry-run", "check"]);
    assert_eq!(code, Some(0), "{out}");

    // The peer dies; the daemon holds the state lock for its promotion.
    bed.kill_peer();
    wait_until("no promotion", || daemon.log(), || bed.promotions() > 0).await;
    let (code, out) = operator(&bed, &["status"]);
    assert_eq!(code, Some(0), "status during the promotion: {out}");
    assert!(out.contains("Down"), "status shows the verdict: {out}");
    let (code, out) = operator(&bed, &["--dry-run", "check"]);
    assert_eq!(code, Some(0), "check --dry-run during the promotion: {out}");
    let (code, out) = operator(
        &bed,
        &[
            "--dry-run",
            "promote",
            "--yes",
            "--accounts",
            "alice@example.com",
        ],
    );
    assert_ne!(
        code,
        Some(5),
        "promote --dry-run took the state lock: {out}"
    );
    assert!(out.contains("dry run") || code == Some(4), "{out}");
    let (history_code, history) = operator(&bed, &["history"]);
    assert_eq!(history_code, Some(0), "{history}");
    // A real check is an actor: it must not act beside the daemon.
    let (code, out) = operator(&bed, &["check"]);
    assert_eq!(code, Some(5), "a second actor ran beside the daemon: {out}");
    assert!(
        out.contains(&daemon.child.id().to_string()),
        "exit 5 names the holder's pid: {out}"
    );

    bed.until(|_| bed.hooks_log().contains("after_promotion"))
        .await;
    assert_eq!(bed.promotions(), 1, "{}", daemon.log());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operators_promotion_resumed_by_the_daemon_runs_beside_the_rounds_not_inside_one() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    // Every cache flush takes 4 s (command_timeout is 5 s).
    bed.fake.set_fault("fc", Fault::Slow { seconds: 4.0 });
    let flushes = || {
        bed.fake
            .invocations()
            .into_iter()
            .filter(|i| i.args.iter().any(|a| a == "fc"))
            .collect::<Vec<_>>()
    };
    // An operator's promotion, killed (lost ssh session) while it flushes
    // the account's cache: its record is left unfinished.
    let mut promote = bed
        .command(&[
            "promote",
            "--yes",
            "--force",
            "--accounts",
            "alice@example.com",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run habeat promote");
    wait_until("promote never flushed", String::new, || {
        !flushes().is_empty()
    })
    .await;
    promote.kill().expect("kill -9 habeat promote");
    let _ = promote.wait();
    assert_eq!(bed.fake.accounts_on(REPLICA), ["alice@example.com"]);

    // The daemon resumes it at its first round. The flush runs as an
    // action beside the rounds: systemd hears READY and watchdog pings
    // while the flush is still running, not only after it.
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    wait_until(
        "the daemon did not resume the flush",
        || daemon.log(),
        || flushes().len() >= 2,
    )
    .await;
    let resumed = flushes().pop().expect("the daemon's flush");
    bed.rounds(2).await;
    assert!(
        fake_carbonio::group_alive(resumed.pgid),
        "no round completed while the resumed flush ran: the daemon ran it inside a round\n{}",
        daemon.log()
    );
    // And it finishes: the operator's record is completed, once.
    wait_until("the flush did not end", String::new, || {
        !fake_carbonio::group_alive(resumed.pgid)
    })
    .await;
    // The outcome reaches the journal when the job's pipes close and its
    // session saves, which a loaded machine may take longer than a few
    // rounds to do: wait for it (within BOUND), not for a count of rounds.
    let done = || {
        let (code, history) = operator(&bed, &["history"]);
        code == Some(0) && history.contains("done: flush the cache of 1 account")
    };
    wait_until(
        "the resumed flush was never journaled as done",
        || operator(&bed, &["history"]).1,
        done,
    )
    .await;
    assert_eq!(bed.promotions(), 1, "{}", daemon.log());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_seen_again_while_its_accounts_are_listed_is_not_promoted() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    // The listing is slow, as the real CLI (a JVM) can be.
    bed.fake
        .set_fault("getAccountStatus", Fault::Slow { seconds: 3.0 });
    let listings = || {
        bed.fake
            .invocations()
            .iter()
            .filter(|i| i.args.iter().any(|a| a == "getAccountStatus"))
            .count()
    };
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.kill_peer();
    wait_until(
        "the daemon never listed the accounts",
        || daemon.log(),
        || listings() > 0,
    )
    .await;
    // The peer answers again while habeat lists its accounts.
    bed.revive_peer();
    // The listing ends; rounds go on well past it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    bed.rounds(10).await;
    assert_eq!(
        bed.promotions(),
        0,
        "promoted a peer seen again during the listing:\n{}",
        daemon.log()
    );
    assert!(bed.fake.accounts_on(REPLICA).is_empty());
    let (_, history) = operator(&bed, &["history"]);
    assert!(
        history.contains("Up again before anything was done")
            || history.contains("continues only while"),
        "{history}"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_longer_than_the_witnesses_staleness_does_not_unsettle_a_dead_peer() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.write_config_with("after_promotion", "60s");
    // Longer than a witness may go unheard (5 intervals, at least 10 s),
    // as the listing of a mailstore with 100k accounts is. With only the
    // newest round of the listing's time fed to the engine, every witness
    // started over unsettled, the peer was Unknown, and habeat listed
    // again and again without ever promoting.
    bed.fake
        .set_fault("getAccountStatus", Fault::Slow { seconds: 11.0 });
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.kill_peer();
    // Two listings (the engine lists again before the promotion step) and
    // the rest: well within 120 s; without the fix, never.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while bed.promotions() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead peer was never promoted:\n{}",
            daemon.log()
        );
        // Keep reading the notify socket, as systemd does.
        let _ = bed.rounds(1).await;
    }
    wait_until(
        "the promotion did not finish",
        || daemon.log(),
        || bed.fake.accounts_on(REPLICA).len() == 2,
    )
    .await;
    assert_eq!(bed.promotions(), 1, "{}", daemon.log());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

/// A read-only bind mount of a directory over itself, undone on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &std::path::Path) -> ReadOnly {
        let run = |args: &[&str]| {
            let out = Command::new("mount")
                .args(args)
                .output()
                .expect("run mount");
            assert!(out.status.success(), "mount {args:?}: {out:?}");
        };
        let d = dir.to_str().expect("utf-8 path");
        run(&["--bind", d, d]);
        let ro = ReadOnly(dir.to_owned());
        run(&["-o", "remount,bind,ro", d]);
        ro
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

/// A daemon whose state directory becomes unusable
/// keeps probing but can decide nothing. It used to say so only at INFO,
/// once per round; now it is an ERROR once, the systemd STATUS line and
/// `habeat_cannot_decide`, and the end of it is said too.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_state_dir_is_an_error_once_a_status_line_and_a_metric() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.rounds(1).await;
    assert_eq!(
        value(&bed.scrape().await, "habeat_cannot_decide", &[]),
        Some(0.0),
        "{}",
        daemon.log()
    );

    let ro = ReadOnly::mount(&bed.dir.path().join("state"));
    let (status, _) = bed
        .until(|m| m.contains("STATUS=") && m.contains("CANNOT DECIDE"))
        .await;
    assert!(
        status.contains("state"),
        "the STATUS line names no cause: {status}"
    );
    bed.rounds(5).await;
    assert_eq!(
        value(&bed.scrape().await, "habeat_cannot_decide", &[]),
        Some(1.0),
        "{}",
        daemon.log()
    );
    let errors = |log: &str| {
        log.lines()
            .filter(|l| l.contains("ERROR") && l.contains("cannot decide"))
            .count()
    };
    assert_eq!(errors(&daemon.log()), 1, "not said once:\n{}", daemon.log());
    assert!(daemon.alive(), "{}", daemon.log());

    drop(ro);
    bed.until(|m| m.contains("STATUS=") && !m.contains("CANNOT DECIDE"))
        .await;
    bed.rounds(2).await;
    assert_eq!(
        value(&bed.scrape().await, "habeat_cannot_decide", &[]),
        Some(0.0),
        "{}",
        daemon.log()
    );
    assert!(daemon.log().contains("usable again"), "{}", daemon.log());
    assert_eq!(errors(&daemon.log()), 1, "{}", daemon.log());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(BOUND).await, Some(0), "{}", daemon.log());
}

/// Detection by deadline through the daemon: with the peer cut, the ICMP
/// witness votes Down `fall × interval` (plus a short grace) after the
/// peer's last answer, fed by the run loop while the next round's probe is
/// still out, not when that probe's `timeout` has run out. What an
/// operator sees: the journal says the witness turned Down because the
/// peer has not answered for that long, and the promotion follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_judged_at_its_deadline_while_the_last_probe_is_still_out() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    // One round a second, and a probe timeout close to it: the deadline
    // (the last answer + 2 s + a grace of at most 50 ms) comes well before
    // the second failed probe times out.
    bed.rewrite_config(|y| {
        y.set("detection", "interval: 1s");
        y.set("detection", "timeout: 900ms");
    });
    let mut daemon = bed.start();
    bed.until(|m| m.contains("READY=1")).await;
    bed.rounds(3).await;
    bed.kill_peer();
    bed.until(|_| bed.hooks_log().contains("after_promotion"))
        .await;
    let icmp_down: Vec<String> = bed
        .journal()
        .iter()
        .filter(|e| {
            e["event"] == "vote_changed"
                && e["witness"]["kind"] == "icmp"
                && e["to"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("down"))
        })
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        icmp_down.iter().any(|m| m.contains("no answer for")),
        "the ICMP witness did not turn Down at its deadline: {icmp_down:?}\n{}",
        daemon.log()
    );
    assert_eq!(bed.promotions(), 1, "{}", daemon.log());
    assert!(daemon.alive());
}
