//! The run loop with a scripted fake driver: the order of systemd
//! notifications, no overlapping rounds, actions beside probing, reload,
//! and a stop that waits for a running action.
//!
//! The fake driver sends the loop its requests (reload, stop) from inside
//! chosen rounds, so every scenario is deterministic; the only timing in
//! these tests is the generous "did not hang" bound.

use habeat::daemon::{
    ActionEnd, ActionJob, Driver, Notifier, Request, RoundContext, RoundError, RoundReport,
    RunOptions, run,
};
use habeat::model::{Component, Round, Verdict};
use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const NO_HANG: Duration = Duration::from_secs(30);

/// What happened, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    RoundStart(u32),
    RoundEnd(u32),
    RoundCtx(u32, Option<String>),
    JobStart(String),
    JobEnd(String),
    Finished(String, &'static str),
    Reload,
    Shutdown,
}

type Log = Arc<Mutex<Vec<(Instant, Ev)>>>;

fn push(log: &Log, ev: Ev) {
    log.lock().unwrap().push((Instant::now(), ev));
}

/// What the fake does in a given round.
#[derive(Default)]
struct Step {
    /// Send this request to the loop at the start of the round.
    request_at_start: Option<Request>,
    /// Send this request at the end of the round.
    request_at_end: Option<Request>,
    fail: bool,
    /// Hang forever (after sending `request_at_start`).
    hang: bool,
    /// Hand back a job that runs this long, with this timeout.
    job: Option<(JobLen, Duration)>,
}

/// How long a fake job runs.
#[derive(Clone, Copy)]
enum JobLen {
    For(Duration),
    Forever,
    /// Until the fake has sent a stop request, then a little longer: so
    /// the job is certainly still running when the stop arrives.
    PastStop,
}

struct Fake {
    interval: Duration,
    round_time: Duration,
    n: u32,
    steps: HashMap<u32, Step>,
    reload_ok: bool,
    requests: mpsc::Sender<Request>,
    log: Log,
    /// Set by a job when its work is durably "recorded".
    recorded: Arc<AtomicBool>,
    /// Set when the fake sends `Request::Stop`.
    stop_sent: Arc<AtomicBool>,
    /// Hand back this job in the first round after round `.0` in which
    /// no job runs.
    job_when_idle_after: Option<(u32, JobLen, Duration)>,
}

impl Fake {
    fn new(requests: mpsc::Sender<Request>) -> Fake {
        Fake {
            interval: Duration::from_millis(10),
            round_time: Duration::from_millis(1),
            n: 0,
            steps: HashMap::new(),
            reload_ok: true,
            requests,
            log: Arc::default(),
            recorded: Arc::default(),
            stop_sent: Arc::default(),
            job_when_idle_after: None,
        }
    }

    fn events(&self) -> Vec<Ev> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }
}

impl Fake {
    async fn send(&self, r: Request) {
        if r == Request::Stop {
            self.stop_sent.store(true, Ordering::SeqCst);
        }
        // The loop may already be gone (a closed channel is a stop too).
        let _ = self.requests.send(r).await;
    }
}

impl Driver for Fake {
    type Outcome = &'static str;

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn round(&mut self, ctx: RoundContext) -> Result<RoundReport<&'static str>, RoundError> {
        self.n += 1;
        let n = self.n;
        push(&self.log, Ev::RoundStart(n));
        let idle = ctx.action_running.is_none();
        push(&self.log, Ev::RoundCtx(n, ctx.action_running));
        let mut step = self.steps.remove(&n).unwrap_or_default();
        if let Some((after, len, timeout)) = self.job_when_idle_after
            && n > after
            && idle
        {
            step.job = Some((len, timeout));
            self.job_when_idle_after = None;
        }
        if let Some(r) = step.request_at_start {
            self.send(r).await;
        }
        if step.hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.round_time).await;
        push(&self.log, Ev::RoundEnd(n));
        if let Some(r) = step.request_at_end {
            self.send(r).await;
        }
        if step.fail {
            return Err(RoundError(format!("round {n}: cannot write state")));
        }
        let action = step.job.map(|(runs, timeout)| {
            let what = format!("promotion {n}");
            let log = self.log.clone();
            let recorded = self.recorded.clone();
            let stop_sent = self.stop_sent.clone();
            let w = what.clone();
            ActionJob::new(what, timeout, async move {
                push(&log, Ev::JobStart(w.clone()));
                match runs {
                    JobLen::For(d) => tokio::time::sleep(d).await,
                    JobLen::Forever => std::future::pending().await,
                    JobLen::PastStop => {
                        while !stop_sent.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                recorded.store(true, Ordering::SeqCst);
                push(&log, Ev::JobEnd(w));
                "promoted"
            })
        });
        Ok(RoundReport {
            status: format!("round {n}"),
            round: Round::default(),
            verdicts: vec![(Component::Appserver, Verdict::Up)],
            action,
        })
    }

    async fn action_finished(
        &mut self,
        what: &str,
        end: ActionEnd<&'static str>,
    ) -> Option<ActionJob<&'static str>> {
        let kind = match end {
            ActionEnd::Finished(o) => o,
            ActionEnd::TimedOut => "timed out",
            ActionEnd::Panicked(_) => "panicked",
            ActionEnd::NotStarted(_) => "not started",
        };
        push(&self.log, Ev::Finished(what.to_owned(), kind));
        None
    }

    async fn reload(&mut self) -> Result<(), String> {
        push(&self.log, Ev::Reload);
        if self.reload_ok {
            Ok(())
        } else {
            Err("/etc/habeat/habeat.yml:3:7: unknown key `intervall`".into())
        }
    }

    async fn shutdown(&mut self) {
        push(&self.log, Ev::Shutdown);
    }
}

/// A socket standing in for systemd, read on its own thread (the kernel
/// queues only a few datagrams).
struct FakeSystemd {
    _dir: tempfile::TempDir,
    notifier: Notifier,
    msgs: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (m, d) = (msgs.clone(), done.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => m
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(_) if d.load(Ordering::SeqCst) => break,
                    Err(_) => {}
                }
            }
        });
        FakeSystemd {
            _dir: dir,
            notifier: Notifier::to_socket(path, Some(Duration::from_secs(30))),
            msgs,
            done,
            reader: Some(reader),
        }
    }

    /// Every message received, with MONOTONIC_USEC values blanked.
    fn messages(mut self) -> Vec<String> {
        self.done.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let msgs = self.msgs.lock().unwrap();
        msgs.iter()
            .map(|m| {
                m.lines()
                    .map(|l| {
                        if l.starts_with("MONOTONIC_USEC=") {
                            "MONOTONIC_USEC=*".to_owned()
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect()
    }
}

async fn run_fake(fake: &mut Fake, rx: mpsc::Receiver<Request>, opts: RunOptions) {
    tokio::time::timeout(NO_HANG, run(fake, rx, opts))
        .await
        .expect("the loop must stop when asked");
}

fn opts(sd: &FakeSystemd) -> RunOptions {
    RunOptions {
        notifier: sd.notifier.clone(),
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn notifications_follow_rounds_reload_and_stop() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx);
    fake.steps.insert(
        2,
        Step {
            fail: true,
            ..Step::default()
        },
    );
    fake.steps.insert(
        3,
        Step {
            request_at_end: Some(Request::Reload),
            ..Step::default()
        },
    );
    fake.steps.insert(
        4,
        Step {
            request_at_end: Some(Request::Stop),
            ..Step::default()
        },
    );
    let sd = FakeSystemd::new();
    run_fake(&mut fake, rx, opts(&sd)).await;

    assert_eq!(
        sd.messages(),
        vec![
            "READY=1\nSTATUS=round 1",
            "WATCHDOG=1",
            // Round 2 failed: no watchdog ping, no status.
            "STATUS=round 3",
            "WATCHDOG=1",
            "RELOADING=1\nMONOTONIC_USEC=*",
            "READY=1\nSTATUS=round 3",
            "STATUS=round 4",
            "WATCHDOG=1",
            "STOPPING=1\nSTATUS=stopping",
        ]
    );
    let ev = fake.events();
    let pos = |e: &Ev| ev.iter().position(|x| x == e).unwrap();
    // The reload asked for during round 3 happens after it, before round 4.
    assert!(pos(&Ev::RoundEnd(3)) < pos(&Ev::Reload));
    assert!(pos(&Ev::Reload) < pos(&Ev::RoundStart(4)));
    assert_eq!(ev.last(), Some(&Ev::Shutdown));
    assert!(!ev.contains(&Ev::RoundStart(5)), "no round after stop");
}

#[tokio::test]
async fn slow_rounds_never_overlap() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx);
    fake.interval = Duration::from_millis(5);
    fake.round_time = Duration::from_millis(25);
    fake.steps.insert(
        6,
        Step {
            request_at_end: Some(Request::Stop),
            ..Step::default()
        },
    );
    let sd = FakeSystemd::new();
    run_fake(&mut fake, rx, opts(&sd)).await;

    let log = fake.log.lock().unwrap().clone();
    let mut open: Option<u32> = None;
    let mut last_end: Option<Instant> = None;
    for (t, e) in &log {
        match e {
            Ev::RoundStart(n) => {
                assert_eq!(open, None, "round {n} started while another ran");
                if let Some(end) = last_end {
                    assert!(*t >= end);
                }
                open = Some(*n);
            }
            Ev::RoundEnd(n) => {
                assert_eq!(open, Some(*n));
                open = None;
                last_end = Some(*t);
            }
            _ => {}
        }
    }
    let msgs = sd.messages();
    let pings = msgs.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert_eq!(pings, 6, "one ping per completed round: {msgs:?}");
}

#[tokio::test]
async fn rounds_go_on_while_an_action_runs_and_stop_waits_for_it() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx);
    // Round 1 starts a promotion that takes a while.
    fake.steps.insert(
        1,
        Step {
            job: Some((JobLen::PastStop, Duration::from_secs(60))),
            ..Step::default()
        },
    );
    // Round 3 (buggy driver) asks for a second action meanwhile.
    fake.steps.insert(
        3,
        Step {
            job: Some((
                JobLen::For(Duration::from_millis(1)),
                Duration::from_secs(60),
            )),
            ..Step::default()
        },
    );
    // Round 4: SIGTERM while the promotion still runs.
    fake.steps.insert(
        4,
        Step {
            request_at_end: Some(Request::Stop),
            ..Step::default()
        },
    );
    let recorded = fake.recorded.clone();
    let sd = FakeSystemd::new();
    run_fake(&mut fake, rx, opts(&sd)).await;

    assert!(recorded.load(Ordering::SeqCst), "the promotion completed");
    let ev = fake.events();
    let pos = |e: &Ev| {
        ev.iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("{e:?} missing from {ev:?}"))
    };
    let p1 = "promotion 1".to_owned();
    // Probing went on while the promotion ran, and the driver knew.
    assert!(pos(&Ev::JobStart(p1.clone())) < pos(&Ev::RoundEnd(4)));
    assert!(pos(&Ev::RoundEnd(4)) < pos(&Ev::JobEnd(p1.clone())));
    assert!(ev.contains(&Ev::RoundCtx(2, Some(p1.clone()))));
    // The second action was refused, not run beside the first.
    assert!(ev.contains(&Ev::Finished("promotion 3".into(), "not started")));
    assert!(!ev.contains(&Ev::JobStart("promotion 3".into())));
    // Stop waited: the outcome reached the driver, then shutdown.
    let fin = pos(&Ev::Finished(p1.clone(), "promoted"));
    assert_eq!(fin + 1, pos(&Ev::Shutdown));
    assert!(pos(&Ev::JobEnd(p1)) < fin);
    assert!(!ev.contains(&Ev::RoundStart(5)));

    let msgs = sd.messages();
    assert_eq!(msgs[0], "READY=1\nSTATUS=round 1; running: promotion 1");
    // Watchdog pings continued during the action (rounds 1 to 4).
    assert_eq!(msgs.iter().filter(|m| *m == "WATCHDOG=1").count(), 4);
    let stopping = msgs
        .iter()
        .position(|m| m.starts_with("STOPPING=1\nSTATUS=stopping: waiting for promotion 1"))
        .unwrap_or_else(|| panic!("{msgs:?}"));
    assert!(
        msgs[stopping + 1].starts_with("EXTEND_TIMEOUT_USEC="),
        "{msgs:?}"
    );
}

#[tokio::test]
async fn stop_waits_for_an_action_at_most_its_timeout() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx);
    fake.steps.insert(
        1,
        Step {
            job: Some((JobLen::Forever, Duration::from_millis(300))),
            request_at_end: Some(Request::Stop),
            ..Step::default()
        },
    );
    let sd = FakeSystemd::new();
    run_fake(&mut fake, rx, opts(&sd)).await;
    let ev = fake.events();
    assert!(
        ev.contains(&Ev::Finished("promotion 1".into(), "timed out")),
        "{ev:?}"
    );
    assert_eq!(ev.last(), Some(&Ev::Shutdown));
    assert!(!fake.recorded.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_overrunning_action_is_stopped_and_the_next_may_start() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx);
    fake.steps.insert(
        1,
        Step {
            job: Some((JobLen::Forever, Duration::from_millis(100))),
            ..Step::default()
        },
    );
    // Once the first job has been cut off, a new one may start; it
    // finishes before the stop.
    fake.job_when_idle_after = Some((
        1,
        JobLen::For(Duration::from_millis(1)),
        Duration::from_secs(5),
    ));
    let (tx2, watch) = (fake.requests.clone(), fake.log.clone());
    let stopper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let done = watch
                .lock()
                .unwrap()
                .iter()
                .any(|(_, e)| matches!(e, Ev::Finished(w, "promoted") if w != "promotion 1"));
            if done {
                let _ = tx2.send(Request::Stop).await;
                break;
            }
        }
    });
    let sd = FakeSystemd::new();
    run_fake(&mut fake, rx, opts(&sd)).await;
    stopper.await.unwrap();
    let ev = fake.events();
    let t = ev
        .iter()
        .position(|e| *e == Ev::Finished("promotion 1".into(), "timed out"))
        .unwrap_or_else(|| panic!("{ev:?}"));
    let second = ev
        .iter()
        .position(|e| matches!(e, Ev::JobStart(w) if w != "promotion 1"))
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(t < second, "{ev:?}");
    let _ = sd.messages();
}

#[tokio::test]
async fn stop_during_a_round_lets_it_finish_within_the_grace() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx);
    fake.round_time = Duration::from_millis(100);
    fake.steps.insert(
        2,
        Step {
            request_at_start: Some(Request::Stop),
            ..Step::default()
        },
    );
    let sd = FakeSystemd::new();
    run_fake(&mut fake, rx, opts(&sd)).await;
    let ev = fake.events();
    assert!(ev.contains(&Ev::RoundEnd(2)), "{ev:?}");
    assert!(!ev.contains(&Ev::RoundStart(3)), "{ev:?}");
    let msgs = sd.messages();
    assert_eq!(msgs.iter().filter(|m| *m == "WATCHDOG=1").count(), 2);
}

#[tokio::test]
async fn stop_abandons_a_hung_round_after_the_grace() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx);
    fake.steps.insert(
        2,
        Step {
            request_at_start: Some(Request::Stop),
            hang: true,
            ..Step::default()
        },
    );
    let sd = FakeSystemd::new();
    let o = RunOptions {
        stop_round_grace: Duration::from_millis(100),
        ..opts(&sd)
    };
    run_fake(&mut fake, rx, o).await;
    let ev = fake.events();
    assert!(!ev.contains(&Ev::RoundEnd(2)), "{ev:?}");
    assert_eq!(ev.last(), Some(&Ev::Shutdown));
    let _ = sd.messages();
}

#[tokio::test]
async fn closing_the_request_channel_stops_the_loop() {
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake::new(tx.clone());
    drop(tx);
    // The fake keeps a sender; replace it with a closed one.
    let (closed, _) = mpsc::channel(1);
    fake.requests = closed;
    run_fake(&mut fake, rx, RunOptions::default()).await;
    assert_eq!(fake.events().last(), Some(&Ev::Shutdown));
}
