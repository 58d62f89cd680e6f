//! SIGHUP after logrotate: the loop reopens the `--log` file and a rejected
//! configuration keeps the daemon running.
//!
//! Alone in its test binary on purpose: it installs a thread-local tracing
//! subscriber, and tracing's per-callsite interest cache is shared by the
//! whole process, so a parallel test hitting the same log statements first
//! could make this one lose lines.

use habeat::daemon::{
    ActionEnd, ActionJob, Driver, Notifier, Request, RoundContext, RoundError, RoundReport,
    RunOptions, run,
};
use habeat::logging::{self, Console, LogFormat, LogOptions};
use habeat::model::Round;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// Round 2: logrotate moves the file, then `systemctl reload`;
/// round 4: `systemctl stop`. Every reload is rejected.
struct Fake {
    n: u32,
    requests: mpsc::Sender<Request>,
    log: PathBuf,
    rotated: PathBuf,
}

impl Driver for Fake {
    type Outcome = ();
    fn interval(&self) -> Duration {
        Duration::from_millis(10)
    }
    async fn round(&mut self, _ctx: RoundContext) -> Result<RoundReport<()>, RoundError> {
        self.n += 1;
        match self.n {
            2 => {
                std::fs::rename(&self.log, &self.rotated).unwrap();
                self.requests.send(Request::Reload).await.unwrap();
            }
            4 => self.requests.send(Request::Stop).await.unwrap(),
            _ => {}
        }
        Ok(RoundReport {
            status: format!("round {}", self.n),
            round: Round::default(),
            verdicts: Vec::new(),
            action: None,
        })
    }
    async fn action_finished(&mut self, _what: &str, _end: ActionEnd<()>) -> Option<ActionJob<()>> {
        None
    }
    async fn reload(&mut self) -> Result<(), String> {
        Err("/etc/habeat/habeat.yml:3:7: unknown key `intervall`".into())
    }
    async fn shutdown(&mut self) {}
}

#[tokio::test]
async fn a_rejected_reload_keeps_running_and_the_log_file_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("habeat.log");
    let rotated = dir.path().join("habeat.log.1");
    let (sub, handle) = logging::subscriber(&LogOptions {
        file: Some(log.clone()),
        format: LogFormat::Text,
        console: Console::Plain,
        filter: "info".into(),
    })
    .unwrap();
    // Current-thread runtime: the loop logs on this thread.
    let _guard = tracing::subscriber::set_default(sub);

    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let (tx, rx) = mpsc::channel(8);
    let mut fake = Fake {
        n: 0,
        requests: tx,
        log: log.clone(),
        rotated: rotated.clone(),
    };
    let opts = RunOptions {
        notifier: Notifier::to_socket(&sock_path, None),
        log: handle,
        ..RunOptions::default()
    };
    tokio::time::timeout(Duration::from_secs(30), run(&mut fake, rx, opts))
        .await
        .expect("the loop stops when asked");
    assert_eq!(fake.n, 4, "rounds go on after a rejected reload");

    // The reload still ends with READY=1 (systemd waits for it).
    let mut msgs = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let r = msgs
        .iter()
        .position(|m| m.starts_with("RELOADING=1"))
        .unwrap();
    assert_eq!(msgs[r + 1], "READY=1\nSTATUS=round 2\n", "{msgs:?}");

    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&log).unwrap();
    let both = format!("old file:\n{old}\nnew file:\n{new}");
    assert!(old.contains("first round done"), "{both}");
    assert!(old.contains("reload requested"), "{both}");
    assert!(!new.contains("first round done"), "{both}");
    assert!(
        new.contains(
            "new configuration rejected, keeping the running one: /etc/habeat/habeat.yml:3:7"
        ),
        "{both}"
    );
    assert!(new.contains("stopped"), "{both}");
}
