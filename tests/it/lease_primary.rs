//! The primary side's serving lease, through the binary (SPEC 4 "Serving
//! lease", invariant `lease-before-takeover`). `habeat run` on the primary
//! (`whoami: primary`) talks to one agent of an in-test Consul cluster; the
//! test plays the secondary through a second agent of the same cluster
//! (one session and KV store seen through two agents: the 1+1+1 layout
//! where the primary's agent loses the leader and the other side keeps
//! it). The secondary's mailstore is "seen Up" as 127.0.0.1 with a TCP
//! listener, "gone" as a network namespace whose link is down, and seen
//! again ([`Bed::see_secondary`]) when that link comes up with a listener
//! inside: after a partition the fenced primary reads its directory only
//! once it sees the secondary again.
//!
//! No wall-clock durations are asserted: only the order of events (the
//! on_fence hook's timestamp, the stand-in's recorded expiry, the
//! secondary's takeover) and whether something happened at all.

use crate::fake_carbonio::{self, FakeCarbonio, Fault};
use crate::support;

use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::consul_api::{ConsulApi, InvalidatedBy};

const HOST: &str = "mbox1.example.com";
const KEY: &str = "habeat/serving/mbox1.example.com";
/// Generous bound for things that must happen (not a timing assertion).
const BOUND: Duration = Duration::from_secs(90);

struct Bed {
    primary_agent: ConsulApi,
    secondary_agent: ConsulApi,
    dir: tempfile::TempDir,
    config: PathBuf,
    _peer_listener: std::net::TcpListener,
    /// The probe port of the secondary's mailstore.
    port: u16,
    ns: Option<support::netns::Netns>,
    /// A listener on the probe port inside `ns`, once the secondary is
    /// seen again (slapd: any TCP server answers a TCP probe).
    seen: Option<support::slapd::Slapd>,
    /// The directory: alice and bob live on this side's mail host.
    fake: FakeCarbonio,
}

impl Bed {
    async fn new(peer_up: bool) -> Bed {
        let primary_agent = ConsulApi::builder().start().await;
        let secondary_agent = primary_agent.add_agent().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let config = dir.path().join("habeat.yml");
        let d = dir.path().display();
        let ns = (!peer_up).then(|| {
            let ns = support::netns::Netns::create();
            ns.set_link(false);
            ns
        });
        let fake = FakeCarbonio::new(&fake_carbonio::with_accounts(vec![
            fake_carbonio::account("alice@example.com", HOST, "mbox2.example.com"),
            fake_carbonio::account("bob@example.com", HOST, "mbox2.example.com"),
        ]));
        let peer_ip = match &ns {
            Some(ns) => ns.ip().to_string(),
            None => "127.0.0.1".to_owned(),
        };
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
  appserver: [ {{ tcp: {port} }} ]
witnesses:
  consul_members: false
  consul_health: false
lease:
  enabled: true
  ttl: 10s
hooks:
  on_fence: ["date +%s.%N >> {d}/fenced"]
  on_unfence: ["date +%s.%N >> {d}/unfenced"]
  on_event:
    - "cat >> {d}/on_event.jsonl"
    - "echo \"$HABEAT_EVENT $HABEAT_SEVERITY $HABEAT_WHOAMI\" >> {d}/on_event.env"
carbonio:
  cli: {cli}
  zmprov: {zmprov}
  run_as: ""
"#,
            cport = primary_agent.addr().port(),
            cli = fake.carbonio.display(),
            zmprov = fake.zmprov.display(),
        );
        std::fs::write(&config, yaml).expect("write config");
        Bed {
            primary_agent,
            secondary_agent,
            dir,
            config,
            _peer_listener: listener,
            port,
            ns,
            seen: None,
            fake,
        }
    }

    /// The record of the accounts served here, once taken.
    /// The link between the DCs is back: the primary's witness sees the
    /// secondary's mailstore Up again (the namespace's link up, a listener
    /// on the probe port inside it).
    fn see_secondary(&mut self) {
        let Some(ns) = &self.ns else {
            return;
        };
        ns.set_link(true);
        let addr = std::net::SocketAddr::new(ns.ip(), self.port);
        self.seen = Some(support::slapd::Slapd::start_at(addr, &ns.exec_prefix()));
    }

    fn record(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state/lease-accounts.json"))
            .unwrap_or_default()
    }

    fn lease_file(&self) -> serde_json::Value {
        std::fs::read(self.dir.path().join("state/lease.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn status(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_habeat"))
            .args(["--config", self.config.to_str().expect("utf-8"), "status"])
            .output()
            .expect("status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_habeat"))
            .args(["--config", self.config.to_str().expect("utf-8"), "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("stderr.log")).expect("log"))
            .spawn()
            .expect("start habeat run")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn stamps(&self, file: &str) -> Vec<f64> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn journal(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state/events.jsonl")).unwrap_or_default()
    }

    /// Wait until the `on_event` hooks have heard of a `kind` event: its
    /// `HABEAT_EVENT`, and on stdin the very JSON the journal has.
    async fn until_hooks_hear(&self, kind: &str) {
        let heard = || {
            std::fs::read_to_string(self.dir.path().join("on_event.env"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with(&format!("{kind} ")))
        };
        self.until(&format!("on_event hears {kind}"), heard).await;
        let of_kind = |text: String| -> Vec<serde_json::Value> {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|e| e["event"] == kind)
                .collect()
        };
        let journaled = of_kind(self.journal());
        assert!(!journaled.is_empty(), "{kind} not journaled");
        self.until(&format!("on_event gets the {kind} JSON"), || {
            let got = of_kind(
                std::fs::read_to_string(self.dir.path().join("on_event.jsonl")).unwrap_or_default(),
            );
            journaled.iter().all(|e| got.contains(e))
        })
        .await;
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

    /// The secondary's session, on its own agent (no TTL: the test renews
    /// nothing).
    async fn secondary_session(&self) -> String {
        let r = reqwest::Client::new()
            .put(format!("{}/v1/session/create", self.secondary_agent.url()))
            .body(json!({"Name": "secondary", "Checks": [], "LockDelay": "0s"}).to_string())
            .send()
            .await
            .expect("create");
        let v: serde_json::Value = r.json().await.expect("json");
        v["ID"].as_str().expect("id").to_owned()
    }

    async fn secondary_acquire(&self, key: &str, session: &str) -> bool {
        let r = reqwest::Client::new()
            .put(format!(
                "{}/v1/kv/{key}?acquire={session}",
                self.secondary_agent.url()
            ))
            .send()
            .await
            .expect("acquire");
        r.json().await.expect("bool")
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One isolated-primary run at `phase` ms into a renewal period: the
/// primary's agent loses the leader (its DC is cut off from the Consul
/// majority) and no witness sees the secondary. habeat runs on_fence once,
/// before the stand-in expires its session and before the secondary
/// (retrying all the while on its own agent) can take the key over.
async fn isolated_run(phase: u64) {
    let bed = Bed::new(false).await;
    let _d = Killed(bed.start());
    bed.until("the lease is taken", || {
        bed.primary_agent.lock_holder(KEY).is_some()
    })
    .await;
    let held_by = bed.primary_agent.lock_holder(KEY).expect("held");
    // TTL only, and Consul's lock-delay.
    assert_eq!(
        bed.primary_agent.session_node_checks(&held_by),
        Some(vec![])
    );
    assert_eq!(
        bed.primary_agent.session_lock_delay(&held_by),
        Some(Duration::from_secs(15))
    );
    tokio::time::sleep(Duration::from_millis(phase)).await;
    bed.primary_agent.set_agent_leader_lost(true);
    let s = bed.secondary_session().await;
    let taken_at = loop {
        if bed.secondary_acquire(KEY, &s).await {
            break unix_now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fenced = bed.stamps("fenced");
    assert_eq!(fenced.len(), 1, "on_fence ran once; log:\n{}", bed.log());
    let expiry = bed
        .primary_agent
        .invalidations()
        .into_iter()
        .find(|i| i.session == held_by)
        .expect("the session expired");
    assert_eq!(expiry.by, InvalidatedBy::Expiry);
    assert!(
        fenced[0] < unix(expiry.at),
        "phase {phase}ms: fenced at {} but the session expired at {}",
        fenced[0],
        unix(expiry.at)
    );
    assert!(fenced[0] < taken_at, "phase {phase}ms");
    let j = bed.journal();
    assert!(j.contains("\"event\":\"lease_fenced\""), "{j}");
}

/// A fenced primary is what an operator's pager must hear: `lease_fenced`
/// reaches the `on_event` hooks as every journaled event does, with
/// `HABEAT_EVENT`, its severity and the same JSON as the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_primary_tells_the_on_event_hooks() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(false).await;
    let _d = Killed(bed.start());
    bed.until("the lease is taken", || {
        bed.primary_agent.lock_holder(KEY).is_some()
    })
    .await;
    bed.primary_agent.set_agent_leader_lost(true);
    bed.until("on_fence", || !bed.stamps("fenced").is_empty())
        .await;
    bed.until("lease_fenced journaled", || {
        bed.journal().contains("\"event\":\"lease_fenced\"")
    })
    .await;
    bed.until_hooks_hear("lease_fenced").await;
    let env = std::fs::read_to_string(bed.dir.path().join("on_event.env")).unwrap_or_default();
    assert!(env.contains("lease_fenced warning primary"), "{env}");
}

/// The isolated primary, 20 times at random phases of the renewal period
/// (five at a time): never in the wrong order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_primary_fences_before_the_secondary_can_take_its_lease_over() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let mut seed = u64::from(std::process::id()) ^ unix_now().to_bits();
    let mut phases = Vec::new();
    for _ in 0..20 {
        // xorshift: a different phase each run, printed for a rerun.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        phases.push(seed % 3333);
    }
    eprintln!("phases (ms): {phases:?}");
    for batch in phases.chunks(5) {
        let runs: Vec<_> = batch
            .iter()
            .map(|p| tokio::spawn(isolated_run(*p)))
            .collect();
        for r in runs {
            if let Err(e) = r.await {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

/// kill -9 of the primary's habeat: nothing renews, the session lapses on
/// Consul's side, and the secondary's takeover follows from it: not before
/// the recorded expiry plus the lock-delay (both on the stand-in's clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_habeat_lets_the_lease_lapse_and_the_takeover_follows_from_it() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(false).await;
    let mut d = Killed(bed.start());
    bed.until("the lease is taken", || {
        bed.primary_agent.lock_holder(KEY).is_some()
    })
    .await;
    let held_by = bed.primary_agent.lock_holder(KEY).expect("held");
    d.0.kill().expect("kill -9");
    let _ = d.0.wait();
    let s = bed.secondary_session().await;
    let mut refused = 0;
    let taken_at = loop {
        if bed.secondary_acquire(KEY, &s).await {
            break SystemTime::now();
        }
        refused += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refused > 0, "the lease was free at once");
    let expiry = bed
        .primary_agent
        .invalidations()
        .into_iter()
        .find(|i| i.session == held_by)
        .expect("the session expired");
    assert_eq!(expiry.by, InvalidatedBy::Expiry);
    assert!(taken_at >= expiry.at + expiry.lock_delay);
}

/// A Consul blip shorter than the margin (ttl - ttl/3): no fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_shorter_than_the_margin_does_not_fence() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(false).await;
    let _d = Killed(bed.start());
    bed.until("the lease is taken", || {
        bed.primary_agent.lock_holder(KEY).is_some()
    })
    .await;
    let held_by = bed.primary_agent.lock_holder(KEY).expect("held");
    bed.primary_agent.set_agent_leader_lost(true);
    // A renewal fails (the next would be due ttl/3 later; the margin is
    // 2 x ttl/3).
    bed.until("a renewal fails", || {
        bed.log().matches("cannot renew the serving lease").count() >= 1
    })
    .await;
    bed.primary_agent.set_agent_leader_lost(false);
    let renewed = bed.log().matches("cannot renew").count();
    bed.until("a renewal succeeds again", || {
        bed.primary_agent
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/v1/session/renew/"))
            .count()
            > renewed + 2
    })
    .await;
    // Past the time a fence would have come, had the blip been longer.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(bed.stamps("fenced").is_empty(), "log:\n{}", bed.log());
    assert_eq!(bed.primary_agent.lock_holder(KEY), Some(held_by));
}

/// The local Consul agent "crashes" (answers nothing but errors) while a
/// witness still sees the secondary's mailstore Up: the lease lapses, yet
/// habeat never fences (mail stays up), and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_consul_crash_alone_never_fences_while_the_secondary_is_seen_up() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(true).await;
    let _d = Killed(bed.start());
    bed.until("the lease is taken", || {
        bed.primary_agent.lock_holder(KEY).is_some()
    })
    .await;
    bed.primary_agent
        .set_fault(Some(support::consul_api::Fault::ServerError));
    bed.until("the lapse is journaled", || {
        bed.journal().contains("lease_lapsed_peer_up")
    })
    .await;
    bed.until_hooks_hear("lease_lapsed_peer_up").await;
    // Until the session has certainly expired on Consul's side, and more.
    let held_by_gone = || bed.secondary_agent.lock_holder(KEY).is_none();
    bed.until("the session expires", held_by_gone).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(bed.stamps("fenced").is_empty(), "log:\n{}", bed.log());
    assert!(!bed.journal().contains("lease_fenced"));
}

/// Fenced, then the lease comes back: with no promotion meanwhile
/// on_unfence runs; after the secondary took `habeat/failover/<host>`
/// (a promotion) it stays fenced, and `status` says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_back_unfences_unless_a_promotion_happened_meanwhile() {
    if !support::require(&[support::Need::Netns, support::Need::SLAPD]) {
        return;
    }
    for promoted in [false, true] {
        let mut bed = Bed::new(false).await;
        let _d = Killed(bed.start());
        bed.until("the lease is taken", || {
            bed.primary_agent.lock_holder(KEY).is_some()
        })
        .await;
        // Let habeat read the failover key and record its accounts while
        // it serves.
        tokio::time::sleep(Duration::from_secs(4)).await;
        bed.until("the accounts are recorded", || {
            bed.record().contains("bob@example.com")
        })
        .await;
        bed.primary_agent.set_agent_leader_lost(true);
        bed.until("on_fence", || !bed.stamps("fenced").is_empty())
            .await;
        if promoted {
            let s = bed.secondary_session().await;
            assert!(
                bed.secondary_acquire("habeat/failover/mbox1.example.com", &s)
                    .await
            );
        }
        bed.primary_agent.set_agent_leader_lost(false);
        bed.see_secondary();
        if promoted {
            bed.until("stays fenced", || {
                bed.journal().contains("lease_stays_fenced")
            })
            .await;
            assert!(bed.stamps("unfenced").is_empty());
            let text = bed.status();
            assert!(text.contains("FENCED after a promotion"), "{text}");
            bed.until_hooks_hear("lease_stays_fenced").await;
        } else {
            bed.until("on_unfence", || !bed.stamps("unfenced").is_empty())
                .await;
            // The hook writes its stamp before it ends; the journal follows.
            bed.until("lease_unfenced journaled", || {
                bed.journal().contains("lease_unfenced")
            })
            .await;
            bed.until_hooks_hear("lease_unfenced").await;
        }
        bed.until_hooks_hear("lease_fenced").await;
    }
}

/// Fenced, then the accounts' mailHost moved to the secondary's host the
/// way `habeat promote --source-mail-host` (or a promotion with the quorum
/// gate off) moves it: `habeat/failover/<host>` never taken. When the lease
/// comes back, the directory shows the promotion: on_unfence must not run,
/// and the fence is for the operator. A listing that fails is no evidence
/// either way: it stays fenced until the directory answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_that_never_took_the_failover_key_keeps_the_primary_fenced() {
    if !support::require(&[support::Need::Netns, support::Need::SLAPD]) {
        return;
    }
    for promoted in [true, false] {
        let mut bed = Bed::new(false).await;
        let _d = Killed(bed.start());
        bed.until("the accounts are recorded", || {
            let r = bed.record();
            r.contains("alice@example.com") && r.contains("bob@example.com")
        })
        .await;
        bed.primary_agent.set_agent_leader_lost(true);
        bed.until("on_fence", || !bed.stamps("fenced").is_empty())
            .await;
        if promoted {
            bed.fake.update(|s| {
                for a in &mut s.accounts {
                    a.mail_host = "mbox2.example.com".into();
                }
            });
        } else {
            bed.fake.set_fault("getAccountStatus", Fault::Unreachable);
        }
        bed.primary_agent.set_agent_leader_lost(false);
        bed.see_secondary();
        if promoted {
            bed.until("stays fenced", || {
                bed.journal().contains("lease_stays_fenced")
            })
            .await;
            let j = bed.journal();
            assert!(
                j.contains("bob@example.com"),
                "the moved accounts named: {j}"
            );
            assert!(!j.contains("lease_unfenced"), "{j}");
            bed.until("lease.json says stuck", || {
                let lease = bed.lease_file();
                lease["fenced"] == true && lease["stuck"] == true
            })
            .await;
            // Renewals go on; none of them unfences.
            let renewed = || {
                bed.primary_agent
                    .requests()
                    .iter()
                    .filter(|r| r.path.starts_with("/v1/session/renew/"))
                    .count()
            };
            let now = renewed();
            bed.until("more renewals", || renewed() > now + 2).await;
            assert!(bed.stamps("unfenced").is_empty(), "log:\n{}", bed.log());
            let text = bed.status();
            assert!(text.contains("FENCED after a promotion"), "{text}");
        } else {
            bed.until("no evidence is journaled", || {
                bed.journal().contains("lease_unproven")
            })
            .await;
            bed.until_hooks_hear("lease_unproven").await;
            assert!(bed.stamps("unfenced").is_empty(), "log:\n{}", bed.log());
            assert_eq!(bed.lease_file()["fenced"], true);
            bed.fake.update(|s| s.faults.clear());
            bed.until("on_unfence", || !bed.stamps("unfenced").is_empty())
                .await;
            // The hook writes its stamp before it ends; the journal follows.
            bed.until("lease_unfenced journaled", || {
                bed.journal().contains("lease_unfenced")
            })
            .await;
            bed.until("lease.json says unfenced", || {
                bed.lease_file()["fenced"] == false
            })
            .await;
        }
    }
}

/// The operator's failback: the accounts are home, `lease.json` removed,
/// habeat started. `lease-accounts.json` still holds the record taken
/// while the accounts lived on the secondary (nothing lives here), and the
/// restarted habeat cannot take its key (the previous session still holds
/// it), so it fences before it ever serves. The record is listed again at
/// its start: when a promotion that never took the failover key (`habeat
/// promote --force`) moves the accounts away while it is fenced, the
/// lease back does not unfence it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failback_lists_its_accounts_at_start_and_a_later_promotion_keeps_it_fenced() {
    if !support::require(&[support::Need::Netns, support::Need::SLAPD]) {
        return;
    }
    let mut bed = Bed::new(false).await;
    let state = bed.dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(
        state.join("lease-accounts.json"),
        format!(r#"{{"mail_host": "{HOST}", "taken_unix": 1, "accounts": []}}"#),
    )
    .expect("write the record from before the failback");
    // The session of the habeat before the failback, still holding the key.
    let previous = bed.secondary_session().await;
    assert!(bed.secondary_acquire(KEY, &previous).await);
    let _d = Killed(bed.start());
    bed.until("on_fence", || !bed.stamps("fenced").is_empty())
        .await;
    // The listing asked for at start (awaited, not asserted here: without
    // it the outcome below is what shows).
    let recorded = || {
        let r = bed.record();
        r.contains("alice@example.com") && r.contains("bob@example.com")
    };
    let deadline = tokio::time::Instant::now() + BOUND;
    while !recorded() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.fake.update(|s| {
        for a in &mut s.accounts {
            a.mail_host = "mbox2.example.com".into();
        }
    });
    bed.primary_agent.invalidate_session(&previous);
    bed.see_secondary();
    bed.until("stays fenced, or unfences", || {
        bed.journal().contains("lease_stays_fenced") || !bed.stamps("unfenced").is_empty()
    })
    .await;
    assert!(
        bed.stamps("unfenced").is_empty(),
        "unfenced beside the promoted accounts; record: {}; log:\n{}",
        bed.record(),
        bed.log()
    );
    let j = bed.journal();
    assert!(
        j.contains("bob@example.com"),
        "the moved accounts named: {j}"
    );
    let text = bed.status();
    assert!(text.contains("FENCED after a promotion"), "{text}");
}

/// A `lease.json` whose last renewal is no time habeat could have written
/// (past what the clock can add up to) is refused at start, as any lease
/// file habeat cannot read, naming the file: never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_file_with_an_impossible_renewal_time_is_refused_at_start() {
    if !support::require(&[support::Need::Netns]) {
        return;
    }
    let bed = Bed::new(true).await;
    let state = bed.dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(
        state.join("lease.json"),
        r#"{"fenced": false, "stuck": false, "failover_lock_index": null,
            "last_renewed_unix": 9223372036854775808}"#,
    )
    .expect("write lease.json");
    let mut d = Killed(bed.start());
    let deadline = std::time::Instant::now() + BOUND;
    let status = loop {
        if let Some(s) = d.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "habeat run kept running; log:\n{}",
            bed.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = bed.log();
    assert!(!status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("lease.json") && log.contains("last_renewed_unix"),
        "{log}"
    );
    assert!(bed.primary_agent.lock_holder(KEY).is_none());
}
