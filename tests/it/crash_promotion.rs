//! SPEC invariant 7 with the real binary: `habeat check` killed with
//! SIGKILL at each step of a promotion (after the intent, during
//! `promoteAccounts`, after it, during an `after_promotion` hook) and run
//! again. The next run neither repeats a finished step nor skips an
//! unfinished one. Also: two `check`s, or the daemon and a `check`, at
//! once promote once; an operator's `pause` made while the daemon runs is
//! kept; a `check` that cannot get the state lock exits 5 naming the
//! holder; the quorum gate left by a killed habeat is taken over at once,
//! one held by a live process is not.
//!
//! The peer is a network namespace whose link is cut, Consul is the API
//! test server, Carbonio is the fake CLI (SPEC 7), as in tests/cli_check.rs.

use crate::bed::{self, REPLICA, SOURCE, text};
use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{Fault, Invocation};
use serde_json::Value;
use std::ops::Deref;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use support::consul_api;
use support::{Need, require};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
/// "It did not hang": the bound for any wait in these tests.
const PATIENCE: Duration = Duration::from_secs(60);

/// One rehearsal: a secondary appserver watching a primary mailstore that
/// lives in a namespace, Consul, the fake CLI, a habeat.yml and a scratch
/// directory for state, lock files and the hooks' log (`support::bed`),
/// with the crash tests' own helpers.
struct Bed(bed::Bed);

impl Deref for Bed {
    type Target = bed::Bed;
    fn deref(&self) -> &bed::Bed {
        &self.0
    }
}

impl Bed {
    async fn new() -> Bed {
        // The after_promotion hook logs its start (with its pid, the leader
        // of its process group) and its end; it sleeps while `hook-sleep`
        // exists, so a test can kill habeat in the middle of it.
        let shared = bed::Bed::builder()
            .alice_and_bob()
            .consul_provider_threads_3()
            .full_failover()
            .carbonio_timeouts("20s", "30s")
            .add(
                "hooks",
                r#"after_promotion: ["echo after_promotion start $$ >> {hooks}; while [ -e {d}/hook-sleep ]; do sleep 0.1; done; echo after_promotion end >> {hooks}"]"#,
            )
            .start()
            .await;
        Bed(shared)
    }

    /// `habeat <args>`, with `HABEAT_LOCK_WAIT` when given (the test's
    /// environment otherwise).
    fn command(&self, args: &[&str], lock_wait: Option<&str>) -> Command {
        let mut c = self.0.command(args);
        if let Some(w) = lock_wait {
            c.env("HABEAT_LOCK_WAIT", w);
        }
        c
    }

    /// Run `habeat check` to its end.
    fn check(&self) -> Output {
        self.command(&["check"], None)
            .output()
            .expect("run habeat check")
    }

    /// Start `habeat check` in the background, its output to files in the
    /// scratch directory (named after `tag`).
    fn spawn_check(&self, tag: &str, lock_wait: Option<&str>) -> Child {
        self.spawn(self.command(&["check"], lock_wait), tag)
    }

    /// How many promotion intents (records) the journal holds.
    fn intents(&self) -> usize {
        self.journal()
            .iter()
            .filter(|e| e.to_string().contains("\"promotion_intent\""))
            .count()
    }

    fn invocations(&self) -> Vec<Invocation> {
        self.fake_state().invocations
    }

    fn accounts_on(&self, host: &str) -> Vec<String> {
        self.fake.accounts_on(host)
    }

    /// `zmprov fc` invocations for `name`, from invocation `from` on.
    fn flushes(&self, name: &str, from: usize) -> usize {
        self.invocations()
            .iter()
            .skip(from)
            .filter(|i| i.program == "zmprov" && i.args.last().is_some_and(|a| a == name))
            .count()
    }

    fn hook_lines(&self, prefix: &str) -> usize {
        self.hooks_log()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn lock_file(&self, name: &str) -> bool {
        self.lock(name).exists()
    }

    /// Wait until `ready` holds for state.json (and the fake's log), or
    /// fail, saying what `child` printed.
    fn wait_for(&self, what: &str, child: &mut Child, tag: &str, ready: impl Fn(&Bed) -> bool) {
        let start = Instant::now();
        while !ready(self) {
            if let Ok(Some(code)) = child.try_wait() {
                panic!(
                    "habeat exited ({code}) before {what}\n{}\nstate: {}",
                    self.output_of(tag),
                    self.state()
                );
            }
            assert!(
                start.elapsed() < PATIENCE,
                "never saw {what}\n{}\nstate: {}",
                self.output_of(tag),
                self.state()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, as `kill -9` or an OOM killer would: no destructor runs,
    /// the children habeat started are left as they are.
    fn kill9(&self, child: &mut Child) {
        child.kill().expect("SIGKILL habeat");
        let _ = child.wait();
    }

    /// The dead habeat's Consul session still holds the quorum gate until
    /// its TTL runs out (`max(promote_timeout, 60s)`); a restart on a real
    /// node waits that long. Let the test server's clock run past it.
    fn outlive_dead_session(&self) {
        self.consul.advance_clock(Duration::from_secs(300));
        assert_eq!(
            self.consul.lock_holder(&gate_key()),
            None,
            "the dead habeat's session still holds the gate after its TTL"
        );
    }

    /// The gate is still held by the killed run's session.
    fn assert_gate_held_by_the_dead(&self) {
        assert!(
            self.consul.lock_holder(&gate_key()).is_some(),
            "the killed habeat did not hold the gate (the test kills too early or too late)"
        );
    }

    /// What every crash test demands of the run after the restart: the
    /// whole failover done once, recorded once.
    fn assert_failover_complete(&self, out: &Output, pipeline: &Value) {
        let t = text(out);
        assert_eq!(out.status.code(), Some(0), "{t}");
        assert_eq!(self.accounts_on(REPLICA), [ALICE, BOB], "{t}");
        assert!(self.accounts_on(SOURCE).is_empty(), "{t}");
        assert!(self.lock_file("appserverdown-habeat-appserver"), "{t}");
        assert!(self.lock_file("appserverprom-habeat-appserver"), "{t}");
        // The journal is appended after state.json is saved, so a kill in
        // between may lose the first intent's line: at most one, and the
        // record on disk is the one the killed run wrote.
        assert!(self.intents() <= 1, "a second promotion record: {t}");
        let st = self.state();
        let p = &st["roles"]["appserver"]["failover"];
        assert_eq!(&p["id"], pipeline, "a new promotion record: {t}");
        assert_eq!(p["origin"], "automatic", "{t}");
        assert!(
            p["finished_at"].is_number(),
            "the failover pipeline is unfinished: {p:#}\n{t}"
        );
        for s in p["steps"].as_array().expect("steps") {
            assert_eq!(s["status"], "done", "a step not done: {s}\n{t}");
        }
        assert_eq!(
            self.consul.lock_holder(&gate_key()),
            None,
            "gate not released: {t}"
        );
        assert_eq!(self.calls("pauseReplicas").len(), 1, "{t}");
        assert_eq!(self.calls("restartReplicas").len(), 1, "{t}");
        assert_eq!(self.hook_lines("activate"), 1, "{}", self.hooks_log());
        assert_eq!(
            self.hook_lines("after_promotion end"),
            1,
            "{}",
            self.hooks_log()
        );
    }
}

fn gate_key() -> String {
    format!("habeat/failover/{SOURCE}")
}

/// The status of the first step named `name` of the appserver's failover.
fn step_status(st: &Value, name: &str) -> Option<String> {
    st["roles"]["appserver"]["failover"]["steps"]
        .as_array()?
        .iter()
        .find(|s| s["step"]["step"] == name)
        .and_then(|s| s["status"].as_str().map(str::to_owned))
}

/// The kind of the action in flight (`acquire_quorum_gate`, ...).
fn in_flight(st: &Value) -> Option<String> {
    st["in_flight"]["kind"]["action"]
        .as_str()
        .map(str::to_owned)
}

/// The id of the appserver's failover pipeline (the promotion record).
fn pipeline_id(st: &Value) -> Value {
    st["roles"]["appserver"]["failover"]["id"].clone()
}

fn started_at(st: &Value) -> Value {
    st["last_promotion"]["at"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_intent_resumes_and_promotes_once() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_peer();
    // The quorum gate (the step after the intent) answers slowly.
    bed.consul.set_fault_on(
        "/v1/session/create",
        consul_api::Fault::Slow(Duration::from_secs(30)),
    );
    let mut child = bed.spawn_check("first", None);
    bed.wait_for("the intent on disk", &mut child, "first", |b| {
        let st = b.state();
        step_status(&st, "promote_accounts").as_deref() == Some("pending")
            && in_flight(&st).as_deref() == Some("acquire_quorum_gate")
    });
    bed.kill9(&mut child);
    let pipeline = pipeline_id(&bed.state());
    assert!(
        pipeline.is_number(),
        "no record before the restart: {}",
        bed.state()
    );
    assert_eq!(bed.promotions(), 0, "promoted before the gate");
    let st = bed.state();
    let accounts = &st["roles"]["appserver"]["failover"]["promotion"]["accounts"];
    assert_eq!(accounts, &serde_json::json!([ALICE, BOB]), "{st:#}");
    let listings = bed.calls("getAccountStatus").len();

    bed.consul.set_fault(None);
    let out = bed.check();
    bed.assert_failover_complete(&out, &pipeline);
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
    assert!(
        bed.calls("getAccountStatus").len() > listings,
        "the accounts were not listed again before promoting: {}",
        text(&out)
    );
    assert_eq!(bed.flushes(ALICE, 0), 1);
    assert_eq!(bed.flushes(BOB, 0), 1);
    assert_eq!(bed.hook_lines("after_promotion start"), 1);
}

/// Kill habeat while `promoteAccounts` runs. The real CLI is a client of a
/// server-side operation, which goes on without it; habeat must not count
/// on either outcome. Returns the bed, after the kill, with the fake's
/// promoteAccounts process still running.
async fn killed_during_promote_accounts() -> (Bed, Invocation, Value) {
    let bed = Bed::new().await;
    bed.kill_peer();
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 3.0 });
    let mut child = bed.spawn_check("first", None);
    bed.wait_for("promoteAccounts running", &mut child, "first", |b| {
        step_status(&b.state(), "promote_accounts").as_deref() == Some("started")
            && b.promotions() == 1
    });
    bed.kill9(&mut child);
    let running = bed
        .calls("promoteAccounts")
        .pop()
        .expect("promoteAccounts invoked");
    let at = started_at(&bed.state());
    assert!(at.is_number(), "no last promotion time: {}", bed.state());
    (bed, running, at)
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_promote_accounts_that_finished_server_side_is_not_promoted_again() {
    if !require(&[Need::Netns]) {
        return;
    }
    let (bed, running, at) = killed_during_promote_accounts().await;
    let pipeline = pipeline_id(&bed.state());
    assert!(
        pipeline.is_number(),
        "no record before the restart: {}",
        bed.state()
    );
    // The operation completes on the server although its client is gone.
    let start = Instant::now();
    while fake_carbonio::process_alive(running.pid) {
        assert!(start.elapsed() < PATIENCE, "the fake promotion never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(bed.accounts_on(REPLICA), [ALICE, BOB]);
    bed.fake.update(|s| s.faults.clear());
    // No waiting for the dead run's Consul session: the restarted habeat
    // takes over the quorum gate its own dead process held.
    bed.assert_gate_held_by_the_dead();

    let out = bed.check();
    bed.assert_failover_complete(&out, &pipeline);
    assert_eq!(
        bed.promotions(),
        1,
        "promoted again although no account was left: {}",
        text(&out)
    );
    assert_eq!(started_at(&bed.state()), at, "the promotion time moved");
    assert_eq!(bed.flushes(ALICE, 0), 1);
    assert_eq!(bed.flushes(BOB, 0), 1);
    assert_eq!(bed.hook_lines("after_promotion start"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_a_partial_promote_accounts_promotes_only_what_is_left() {
    if !require(&[Need::Netns]) {
        return;
    }
    let (bed, running, at) = killed_during_promote_accounts().await;
    let pipeline = pipeline_id(&bed.state());
    assert!(
        pipeline.is_number(),
        "no record before the restart: {}",
        bed.state()
    );
    // This time the operation died half-way: alice was moved, bob not.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(running.pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let start = Instant::now();
    while fake_carbonio::process_alive(running.pid) {
        assert!(start.elapsed() < PATIENCE, "the fake survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    bed.fake.update(|s| {
        s.faults.clear();
        for a in s.accounts.iter_mut().filter(|a| a.name == ALICE) {
            a.mail_host = REPLICA.into();
            a.replicas[0].destination = SOURCE.into();
            a.replicas[0].available = false;
        }
    });
    let before = bed.invocations().len();
    // No waiting for the dead run's Consul session: the restarted habeat
    // takes over the quorum gate its own dead process held.
    bed.assert_gate_held_by_the_dead();

    let out = bed.check();
    bed.assert_failover_complete(&out, &pipeline);
    let promotes = bed.calls("promoteAccounts");
    assert_eq!(promotes.len(), 2, "{}", text(&out));
    assert!(
        promotes[1].args.contains(&SOURCE.to_string()),
        "{:?}",
        promotes[1].args
    );
    assert_eq!(started_at(&bed.state()), at, "the promotion time moved");
    // Both accounts are in the record, so both get their cache flushed.
    assert_eq!(bed.flushes(ALICE, before), 1);
    assert_eq!(bed.flushes(BOB, before), 1);
    assert_eq!(bed.hook_lines("after_promotion start"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_promote_accounts_does_not_promote_again_and_finishes_the_rest() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_peer();
    // The step after the lock files: the cache flush, slow.
    bed.fake.set_fault("fc", Fault::Slow { seconds: 20.0 });
    let mut child = bed.spawn_check("first", None);
    bed.wait_for("the flush running", &mut child, "first", |b| {
        let st = b.state();
        step_status(&st, "promote_accounts").as_deref() == Some("done")
            && step_status(&st, "flush_cache").as_deref() == Some("started")
            && b.flushes(ALICE, 0) == 1
    });
    bed.kill9(&mut child);
    let pipeline = pipeline_id(&bed.state());
    assert!(
        pipeline.is_number(),
        "no record before the restart: {}",
        bed.state()
    );
    assert!(bed.lock_file("appserverprom-habeat-appserver"));
    for fc in bed.calls("fc") {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(fc.pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    bed.fake.update(|s| s.faults.clear());
    let before = bed.invocations().len();
    // No waiting for the dead run's Consul session: the restarted habeat
    // takes over the quorum gate its own dead process held.
    bed.assert_gate_held_by_the_dead();

    let out = bed.check();
    bed.assert_failover_complete(&out, &pipeline);
    assert_eq!(bed.promotions(), 1, "promoted twice: {}", text(&out));
    // The flush in doubt is run again (it is idempotent), once per account.
    assert_eq!(bed.flushes(ALICE, before), 1, "{}", text(&out));
    assert_eq!(bed.flushes(BOB, before), 1, "{}", text(&out));
    assert_eq!(bed.hook_lines("after_promotion start"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_the_after_promotion_hook_runs_it_once_more_and_nothing_else() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_peer();
    let sleep_marker = bed.dir.path().join("hook-sleep");
    std::fs::write(&sleep_marker, "").expect("marker");
    let mut child = bed.spawn_check("first", None);
    bed.wait_for("the hook running", &mut child, "first", |b| {
        in_flight(&b.state()).as_deref() == Some("run_command")
            && b.hook_lines("after_promotion start") == 1
    });
    bed.kill9(&mut child);
    let pipeline = pipeline_id(&bed.state());
    assert!(
        pipeline.is_number(),
        "no record before the restart: {}",
        bed.state()
    );
    // systemd would kill the unit's whole cgroup with it.
    let pid: i32 = bed
        .hooks_log()
        .lines()
        .find_map(|l| l.strip_prefix("after_promotion start "))
        .and_then(|p| p.trim().parse().ok())
        .expect("the hook logged its pid");
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    std::fs::remove_file(&sleep_marker).expect("remove marker");
    let before = bed.invocations().len();
    // Nothing left needs the gate; the dead run's session frees it at its
    // TTL (on a real node an hour by default).
    bed.outlive_dead_session();

    let out = bed.check();
    bed.assert_failover_complete(&out, &pipeline);
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
    assert_eq!(bed.flushes(ALICE, 0), 1);
    assert_eq!(bed.flushes(BOB, 0), 1);
    assert_eq!(
        bed.invocations().len(),
        before,
        "the CLI was run again after the crash in the hook: {}",
        text(&out)
    );
    // The interrupted hook is run again once (hooks must be idempotent).
    assert_eq!(
        bed.hook_lines("after_promotion start"),
        2,
        "{}",
        bed.hooks_log()
    );
    // And never a third time.
    let again = bed.check();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(bed.hook_lines("after_promotion start"), 2);
    assert_eq!(bed.promotions(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_checks_at_once_promote_once() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_peer();
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 1.0 });
    let mut a = bed.spawn_check("a", Some("60s"));
    let mut b = bed.spawn_check("b", Some("60s"));
    let ea = a.wait().expect("wait a");
    let eb = b.wait().expect("wait b");
    assert_eq!(ea.code(), Some(0), "{}", bed.output_of("a"));
    assert_eq!(eb.code(), Some(0), "{}", bed.output_of("b"));
    assert_eq!(
        bed.promotions(),
        1,
        "{}\n{}",
        bed.output_of("a"),
        bed.output_of("b")
    );
    assert_eq!(bed.intents(), 1);
    assert_eq!(bed.accounts_on(REPLICA), [ALICE, BOB]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_that_cannot_get_the_state_lock_exits_5_naming_the_holder() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_peer();
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 5.0 });
    let mut holder = bed.spawn_check("holder", None);
    bed.wait_for("promoteAccounts running", &mut holder, "holder", |b| {
        b.promotions() == 1
    });
    let started = Instant::now();
    let second = bed
        .command(&["check"], Some("1s"))
        .output()
        .expect("second check");
    assert_eq!(second.status.code(), Some(5), "{}", text(&second));
    assert!(
        started.elapsed() < PATIENCE,
        "the second check did not give up"
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("pid {}", holder.id())),
        "the holder's pid is not named: {}",
        text(&second)
    );
    let done = holder.wait().expect("wait holder");
    assert_eq!(done.code(), Some(0), "{}", bed.output_of("holder"));
    assert_eq!(bed.promotions(), 1);

    let bad = bed
        .command(&["check"], Some("soon"))
        .output()
        .expect("check with a bad wait");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("HABEAT_LOCK_WAIT"),
        "{}",
        text(&bad)
    );
}

impl Bed {
    /// Start the daemon (`habeat run`), its output to files named `tag`.
    fn spawn_daemon(&self, tag: &str) -> Child {
        let mut c = self.command(&["run"], None);
        c.env_remove("NOTIFY_SOCKET");
        self.spawn(c, tag)
    }
}

/// Stop the daemon as systemd does (SIGTERM) and wait for it.
fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_and_a_timer_check_together_promote_once() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_peer();
    bed.fake
        .set_fault("promoteAccounts", Fault::Slow { seconds: 1.0 });
    let mut daemon = bed.spawn_daemon("daemon");
    let mut check = bed.spawn_check("check", Some("60s"));
    let code = check.wait().expect("wait check");
    // Whoever promoted, the failover must be complete once both had their
    // say: let the daemon run a few more rounds.
    bed.wait_for("the failover finished", &mut daemon, "daemon", |b| {
        b.state()["roles"]["appserver"]["failover"]["finished_at"].is_number()
    });
    std::thread::sleep(Duration::from_secs(2));
    stop(&mut daemon);
    assert_eq!(code.code(), Some(0), "{}", bed.output_of("check"));
    assert_eq!(
        bed.promotions(),
        1,
        "{}\n{}",
        bed.output_of("check"),
        bed.output_of("daemon")
    );
    assert!(bed.intents() <= 1);
    assert_eq!(bed.accounts_on(REPLICA), [ALICE, BOB]);
    assert_eq!(bed.calls("restartReplicas").len(), 1);
    assert_eq!(bed.hook_lines("after_promotion end"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_pause_while_the_daemon_runs_is_kept() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    let mut daemon = bed.spawn_daemon("daemon");
    bed.wait_for("a daemon round", &mut daemon, "daemon", |b| {
        b.state()["last_round_at"].is_number()
    });
    let paused = bed
        .command(&["pause", "--for", "1h"], Some("60s"))
        .output()
        .expect("pause");
    assert_eq!(paused.status.code(), Some(0), "{}", text(&paused));
    // A few daemon rounds later the pause is still on disk...
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        bed.state()["pause"].is_object(),
        "the daemon overwrote the operator's pause: {}\n{}",
        bed.state(),
        bed.output_of("daemon")
    );
    // ...and honoured: the peer dies, nothing is promoted.
    bed.kill_peer();
    std::thread::sleep(Duration::from_secs(3));
    stop(&mut daemon);
    assert_eq!(bed.promotions(), 0, "{}", bed.output_of("daemon"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_held_by_a_live_process_of_this_node_is_not_taken_over() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_peer();
    // This test process stands for another habeat of this node, alive.
    let client = habeat::consul::Client::new(&bed.consul.consul_config(), Duration::from_secs(5))
        .expect("consul client");
    let me = habeat::consul::gate::Holder::this_process("test: a live holder");
    let held = habeat::consul::gate::acquire(&client, SOURCE, &me, Duration::from_secs(60))
        .await
        .expect("take the gate");
    let out = bed.check();
    assert_eq!(
        bed.promotions(),
        0,
        "the gate was taken from a live holder: {}",
        text(&out)
    );
    assert!(bed.consul.lock_holder(&gate_key()).is_some());
    held.release().await.expect("release the gate");
}
