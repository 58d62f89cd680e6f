//! The serving lease across a SIGHUP reload, through the binary: `habeat
//! run` on the primary side (`whoami: primary`) against the Consul
//! stand-in, the secondary's mailstore "seen Up" (a TCP listener on
//! 127.0.0.1), so a lease that lapses never fences here.
//!
//! - A token rotated in Consul: the keeper renews with the reloaded
//!   `consul.token`, and while renewals fail `status` says so.
//! - `lease.enabled` turned on by a reload takes the key; turned off while
//!   fenced, `status` still says FENCED.

use crate::support::consul_api::ConsulApi;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const HOST: &str = "mbox1.example.com";
const KEY: &str = "habeat/serving/mbox1.example.com";
/// Generous bound for things that must happen (not a timing assertion).
const BOUND: Duration = Duration::from_secs(60);

struct Bed {
    consul: ConsulApi,
    dir: tempfile::TempDir,
    config: PathBuf,
    _peer_listener: std::net::TcpListener,
    daemon: Option<Child>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(c) = self.daemon.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Bed {
    async fn new(consul: ConsulApi) -> Bed {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let config = dir.path().join("habeat.yml");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        Bed {
            consul,
            dir,
            config,
            _peer_listener: listener,
            daemon: None,
        }
    }

    fn write_config(&self, token: &str, lease: bool) {
        let d = self.dir.path().display();
        let port = self._peer_listener.local_addr().expect("addr").port();
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
  appserver_ip: 127.0.0.1
  appserver_vmname: mbox2.example.com
consul:
  hostname: 127.0.0.1
  port: {cport}
  token: {token}
detection:
  interval: 500ms
  timeout: 300ms
  fall: 2
  rise: 1
probes:
  appserver: [ {{ tcp: {port} }} ]
witnesses:
  consul_members: false
  consul_health: false
lease:
  enabled: {lease}
  ttl: 10s
"#,
            cport = self.consul.addr().port(),
        );
        std::fs::write(&self.config, yaml).expect("write config");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_habeat"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("CONSUL_HTTP_TOKEN")
            .stdin(Stdio::null());
        c
    }

    fn start(&mut self) {
        let err = std::fs::File::create(self.dir.path().join("stderr.log")).expect("log");
        let child = self
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start habeat run");
        self.daemon = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    async fn reload(&self) {
        let before = self.log().matches("configuration reloaded from").count();
        let pid = self.daemon.as_ref().map(Child::id).expect("daemon");
        kill(
            Pid::from_raw(i32::try_from(pid).expect("pid")),
            Signal::SIGHUP,
        )
        .expect("SIGHUP");
        self.until("the reload", || {
            self.log().matches("configuration reloaded from").count() > before
        })
        .await;
    }

    fn status(&self) -> String {
        let o: Output = self.command(&["status"]).output().expect("status");
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    fn lease_line(&self) -> String {
        self.status()
            .lines()
            .find(|l| l.starts_with("lease:"))
            .unwrap_or_default()
            .to_owned()
    }

    async fn until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + BOUND;
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen; status:\n{}\nlog:\n{}",
                self.status(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn renewals_with(&self, token: &str) -> usize {
        self.consul
            .requests()
            .iter()
            .filter(|r| {
                r.path.starts_with("/v1/session/renew/") && r.token.as_deref() == Some(token)
            })
            .count()
    }
}

/// The token is rotated in Consul and in habeat.yml, then SIGHUP: the
/// lease keeper renews with the new token (as the probes and actions do).
/// Rotated in Consul only: the renewals fail 403 and `status` says so
/// instead of a plain "not fenced".
#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_token_reaches_the_lease_keeper_and_failing_renewals_show_in_status() {
    let consul = ConsulApi::builder().token("token-one").start().await;
    let mut bed = Bed::new(consul).await;
    bed.write_config("token-one", true);
    bed.start();
    bed.until("the lease is taken", || {
        bed.consul.lock_holder(KEY).is_some()
    })
    .await;
    let session = bed.consul.lock_holder(KEY).expect("held");

    bed.consul.set_token(Some("token-two"));
    bed.write_config("token-two", true);
    bed.reload().await;
    bed.until("a renewal with the new token", || {
        bed.renewals_with("token-two") > 0
    })
    .await;
    assert_eq!(
        bed.consul.lock_holder(KEY).as_deref(),
        Some(session.as_str()),
        "the same session goes on"
    );
    bed.until("status without failing renewals", || {
        let l = bed.lease_line();
        l.contains("not fenced") && !l.contains("failing")
    })
    .await;

    // Rotated in Consul, not (yet) in habeat.yml.
    bed.consul.set_token(Some("token-three"));
    bed.until("status naming the failing renewals", || {
        bed.lease_line().contains("renewals failing since")
    })
    .await;
    let line = bed.lease_line();
    assert!(line.contains("403"), "{line}");
    assert!(line.contains("ACL not found"), "{line}");
    assert!(line.contains("consul.token"), "{line}");
}

/// `lease.enabled: false` → `true` by SIGHUP: the keeper starts and takes
/// the key; `status` does not claim a lease nobody holds.
#[tokio::test(flavor = "multi_thread")]
async fn lease_enabled_by_a_reload_takes_the_key() {
    let consul = ConsulApi::builder().start().await;
    let mut bed = Bed::new(consul).await;
    bed.write_config("t", false);
    bed.start();
    bed.until("the first round", || {
        bed.log().contains("READY") || bed.dir.path().join("state/state.json").exists()
    })
    .await;
    assert!(bed.lease_line().is_empty(), "{}", bed.status());
    bed.write_config("t", true);
    bed.reload().await;
    bed.until("the lease is taken", || {
        bed.consul.lock_holder(KEY).is_some()
    })
    .await;
    assert!(bed.lease_line().contains("not fenced"), "{}", bed.status());
}

/// `lease.enabled: true` → `false` by SIGHUP while this side is fenced
/// (after a promotion, so only the operator unfences): `status` still
/// says FENCED and names what to do.
#[tokio::test(flavor = "multi_thread")]
async fn lease_disabled_by_a_reload_while_fenced_still_shows_the_fence() {
    let consul = ConsulApi::builder().start().await;
    let mut bed = Bed::new(consul).await;
    std::fs::write(
        bed.dir.path().join("state/lease.json"),
        r#"{"fenced":true,"stuck":true,"failover_lock_index":null,"last_renewed_unix":null}"#,
    )
    .expect("lease.json");
    bed.write_config("t", true);
    bed.start();
    bed.until("the keeper says FENCED", || {
        bed.lease_line().contains("FENCED")
    })
    .await;
    bed.until("the first round", || {
        bed.dir.path().join("state/state.json").exists()
    })
    .await;
    bed.write_config("t", false);
    bed.reload().await;
    let line = bed.lease_line();
    assert!(line.contains("FENCED"), "{}", bed.status());
    assert!(line.contains("lease.json"), "{line}");
    assert!(
        bed.log().contains("FENCED"),
        "the reload said the fence stands:\n{}",
        bed.log()
    );
}
