//! `lease-before-takeover` with `safety.quorum_gate: false` (the
//! operator's emergency switch), through the binary: a serving lease that
//! cannot be read (no Consul leader on this side) does not hold the
//! promotion under `require_peer_lease: auto`, and the journal says so
//! before promoteAccounts runs; a lease that can be read and that the
//! peer still holds does hold it (docs/decisions.md §7, "With the quorum
//! gate off").

use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{FakeCarbonio, account, with_accounts};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Output;
use support::consul_api::ConsulApi;
use support::netns::{Netns, may_use_netns};

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
const NODE: &str = "agent-mbox1-example-com";
const SERVING: &str = "habeat/serving/mbox1.example.com";

/// A dead primary appserver (a namespace with its link cut, failed in
/// Serf), Consul, the fake CLI and a habeat.yml with the gate off.
struct Bed {
    ns: Netns,
    consul: ConsulApi,
    fake: FakeCarbonio,
    _dir: tempfile::TempDir,
    config: PathBuf,
    journal: PathBuf,
}

impl Bed {
    async fn new() -> Bed {
        let ns = Netns::create();
        let consul = ConsulApi::builder()
            .node(NODE, &ns.ip().to_string(), 1)
            .check(NODE, "serfHealth", "passing")
            .leader(Some("127.0.0.1:8300"))
            .start()
            .await;
        let fake = FakeCarbonio::new(&with_accounts(vec![account(
            "alice@example.com",
            SOURCE,
            REPLICA,
        )]));
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let yaml = format!(
            r#"local:
  whoami: secondary
  dc_check: primary
  role: appserver
  checkDownFile: {d}/appserverdown-habeat
  checkPromotionFile: {d}/appserverprom-habeat
  checkRestartReplicaFile: {d}/appserverrstopha
  state_dir: {d}/state
primary:
  appserver_ip: {ip}
  appserver_vmname: {SOURCE}
secondary:
  appserver_vmname: {REPLICA}
consul:
  hostname: 127.0.0.1
  port: {port}
detection:
  interval: 300ms
  timeout: 250ms
  fall: 2
  rise: 1
carbonio:
  cli: {cli}
  zmprov: {zmprov}
  run_as: ""
  command_timeout: 5s
  promote_timeout: 3s
safety:
  quorum_gate: false
  require_peer_lease: auto
"#,
            ip = ns.ip(),
            port = consul.addr().port(),
            cli = fake.carbonio.display(),
            zmprov = fake.zmprov.display(),
        );
        let config = dir.path().join("habeat.yml");
        std::fs::write(&config, yaml).expect("write config");
        let journal = dir.path().join("state/events.jsonl");
        Bed {
            ns,
            consul,
            fake,
            _dir: dir,
            config,
            journal,
        }
    }

    fn kill_appserver(&self) {
        self.ns.set_link(false);
        self.consul.set_member_status(NODE, 4);
        self.consul.set_check(NODE, "serfHealth", "critical");
    }

    fn habeat(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config", self.config.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        std::process::Command::new(env!("CARGO_BIN_EXE_habeat"))
            .args(&all)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run habeat")
    }

    fn promotions(&self) -> usize {
        self.fake
            .invocations()
            .iter()
            .filter(|i| i.args.iter().any(|a| a == "promoteAccounts"))
            .count()
    }

    /// The journal's events, in order.
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a journal line is JSON"))
            .collect()
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Where in `events` the first event of kind `kind` is.
fn position(events: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_gate_off_and_no_leader_an_unreadable_lease_does_not_hold_the_promotion_and_the_journal_says_so()
 {
    if !may_use_netns("gate_off_unreadable_lease") {
        return;
    }
    let bed = Bed::new().await;
    bed.kill_appserver();
    // This side has lost the leader: the lease key cannot be read.
    bed.consul.set_leader(None);
    let out = bed.habeat(&["check"]);
    assert_eq!(
        bed.promotions(),
        1,
        "an unreadable lease held the promotion with the gate off and `auto`: {}",
        text(&out)
    );
    let events = bed.events();
    let unchecked = position(&events, |e| e["event"] == "peer_lease_unchecked")
        .unwrap_or_else(|| panic!("nothing journaled about the lease: {events:#?}"));
    let e = &events[unchecked];
    assert_eq!(e["key"], SERVING, "{e:#}");
    assert_eq!(e["severity"], "warning", "{e:#}");
    assert!(
        e["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no cluster leader")),
        "{e:#}"
    );
    // Said before the promotion ran, not after: a crash in between still
    // leaves the operator the reason.
    let promoted = position(&events, |e| {
        e["event"] == "action_succeeded"
            && events.iter().any(|s| {
                s["event"] == "action_started"
                    && s["action"]["id"] == e["action_id"]
                    && s["action"]["kind"]["action"] == "promote_accounts"
            })
    })
    .unwrap_or_else(|| panic!("no promotion journaled: {events:#?}"));
    assert!(unchecked < promoted, "{events:#?}");
    // `history` shows it to the operator.
    let history = bed.habeat(&["history"]);
    let h = String::from_utf8_lossy(&history.stdout);
    assert!(
        h.contains(SERVING) && h.contains("require_peer_lease"),
        "{}",
        text(&history)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_gate_off_a_lease_that_can_be_read_and_is_held_by_the_peer_holds_the_promotion() {
    if !may_use_netns("gate_off_held_lease") {
        return;
    }
    let bed = Bed::new().await;
    // The primary's keeper: a TTL-only session with the 15s lock-delay,
    // holding the serving key (the primary is cut off from this side's
    // witnesses but still reaches the Consul majority).
    let c = reqwest::Client::new();
    let v: Value = c
        .put(format!("{}/v1/session/create", bed.consul.url()))
        .body(json!({"TTL": "10s", "LockDelay": "15s", "Checks": [], "NodeChecks": []}).to_string())
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let primary = v["ID"].as_str().expect("id").to_owned();
    bed.consul.put_locked(SERVING, b"{}", &primary);
    bed.kill_appserver();
    let out = bed.habeat(&["check"]);
    assert_eq!(
        bed.promotions(),
        0,
        "promoted beside a lease the peer holds: {}",
        text(&out)
    );
    assert_eq!(bed.consul.lock_holder(SERVING), Some(primary));
    let events = bed.events();
    assert!(
        !events.iter().any(|e| e["event"] == "peer_lease_unchecked"),
        "{events:#?}"
    );
    let status = bed.habeat(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(v["why"][0]["kind"], "step_waiting", "{v:#}");
    assert_eq!(
        v["why"][0]["reason"]["waiting"]["wait"]["kind"], "held",
        "{v:#}"
    );
}
