//! `fence-before-promotion` (SPEC invariant 12) through the real binary,
//! with the real ClusterLabs `fence_dummy --type=file` (its node's power
//! state is a file): the peer mailstore is a network namespace whose link
//! is cut, Consul the API test server, Carbonio the fake CLI (SPEC 7).
//!
//! The agent is a small wrapper around `fence_dummy` that logs each call
//! (its argv, the option names on its stdin, and how many
//! `promoteAccounts` the fake Carbonio had seen by then) and can block,
//! so a test can kill habeat in the middle of a fence call.

use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{FakeCarbonio, account, with_accounts};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::consul_api::ConsulApi;
use support::netns::{Netns, may_use_netns};

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";
const NODE: &str = "agent-mbox1-example-com";
const PROXY: &str = "proxy1.example.com";
const PROXY_NODE: &str = "agent-proxy1-example-com";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
/// Given to the agent as `password`: must never show anywhere.
const PASSWORD: &str = "Sup3r-s3cret-Fence-PW";
const PATIENCE: Duration = Duration::from_secs(90);

struct Bed {
    ns: Netns,
    consul: ConsulApi,
    fake: FakeCarbonio,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// What the fenced component is and how the agent behaves.
struct Setup {
    proxy: bool,
    action: &'static str,
    /// The agent program: `None` is the logging wrapper of fence_dummy.
    agent: Option<&'static str>,
}

impl Bed {
    async fn new(s: Setup) -> Bed {
        let ns = Netns::create();
        let ip = ns.ip().to_string();
        let consul = ConsulApi::builder()
            .node(NODE, &ip, 1)
            .check(NODE, "serfHealth", "passing")
            .node(PROXY_NODE, &ip, 1)
            .check(PROXY_NODE, "serfHealth", "passing")
            .leader(Some("127.0.0.1:8300"))
            .start()
            .await;
        let fake = FakeCarbonio::new(&with_accounts(vec![
            account(ALICE, SOURCE, REPLICA),
            account(BOB, SOURCE, REPLICA),
        ]));
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let wrapper = dir.path().join("fence_wrap");
        // Logs `<action> promotions=<n>` and its argv, then hands the same
        // stdin to the real agent. On its first `off` it powers the node
        // off and then blocks while `block` exists (an agent that hangs
        // after acting: habeat can be killed in the middle of the call).
        let body = format!(
            r#"#!/bin/sh
input=$(cat)
action=$(printf '%s\n' "$input" | sed -n 's/^action=//p')
n=$(grep -o promoteAccounts {fake_state} | wc -l)
echo "$action promotions=$n" >> {d}/fence.log
echo "argv: $0 $*" >> {d}/argv.log
printf '%s\n' "$input" | cut -d= -f1 | tr '\n' ' ' >> {d}/argv.log
echo >> {d}/argv.log
printf '%s\n' "$input" | /usr/sbin/fence_dummy
rc=$?
if [ "$action" = off ] && [ -e {d}/block ] && [ ! -e {d}/blocked-once ]; then
  touch {d}/blocked-once
  while [ -e {d}/block ]; do sleep 0.1; done
fi
exit $rc
"#,
            fake_state = fake.state_path.display(),
        );
        std::fs::write(&wrapper, body).expect("wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let agent = s
            .agent
            .map(|a| {
                let p = dir.path().join("fence_other");
                std::fs::write(&p, a).expect("agent");
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
                p
            })
            .unwrap_or(wrapper);
        let (role, target) = if s.proxy {
            ("proxyserver", "proxy")
        } else {
            ("appserver", "appserver")
        };
        let yaml = format!(
            r#"local:
  whoami: secondary
  dc_check: primary
  role: {role}
  checkDownFile: {d}/down
  checkPromotionFile: {d}/prom
  checkRestartReplicaFile: {d}/rstopha
  proxy_switch: bgp
  proxy_enable_activate: true
  state_dir: {d}/state
primary:
  appserver_ip: {ip}
  appserver_vmname: {SOURCE}
  proxy_ip: {ip}
  proxyserver_vmname: {PROXY}
secondary:
  appserver_vmname: {REPLICA}
  proxy_switch:
    bgp:
      activate: ["echo activate >> {d}/hooks.log"]
      deactivate: ["echo deactivate >> {d}/hooks.log"]
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
  command_timeout: 20s
  promote_timeout: 30s
fencing:
  timeout: 30s
  {target}:
    agent: {agent}
    action: {action}
    options: {{ type: file, status_file: {d}/node.power, password: {PASSWORD} }}
    plugs: [node1]
"#,
            port = consul.addr().port(),
            cli = fake.carbonio.display(),
            zmprov = fake.zmprov.display(),
            agent = agent.display(),
            action = s.action,
        );
        let config = dir.path().join("habeat.yml");
        std::fs::write(&config, yaml).expect("write config");
        Bed {
            ns,
            consul,
            fake,
            dir,
            config,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set_power(&self, state: &str) {
        std::fs::write(self.path("node.power"), state).expect("power file");
    }

    fn power(&self) -> String {
        std::fs::read_to_string(self.path("node.power")).unwrap_or_default()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Cut the primary DC off, as Serf would see it.
    fn kill_peer(&self) {
        self.ns.set_link(false);
        for n in [NODE, PROXY_NODE] {
            self.consul.set_member_status(n, 4);
            self.consul.set_check(n, "serfHealth", "critical");
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_habeat"));
        c.arg("--config").arg(&self.config).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run habeat")
    }

    fn spawn_check(&self) -> Child {
        let out = std::fs::File::create(self.path("first.out")).expect("out");
        let err = std::fs::File::create(self.path("first.err")).expect("err");
        self.command(&["check"])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn habeat check")
    }

    fn journal_text(&self) -> String {
        self.read("state/events.jsonl")
    }

    fn journal(&self) -> Vec<Value> {
        self.journal_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn promotions(&self) -> usize {
        self.fake
            .state()
            .invocations
            .iter()
            .filter(|i| i.args.iter().any(|a| a == "promoteAccounts"))
            .count()
    }

    fn fence_log(&self) -> Vec<String> {
        self.read("fence.log").lines().map(str::to_owned).collect()
    }

    /// The password appears nowhere habeat writes, nor in the agent's argv.
    fn assert_password_nowhere(&self, outputs: &[&Output]) {
        for (what, text) in [
            ("journal", self.journal_text()),
            ("state.json", self.read("state/state.json")),
            ("agent argv", self.read("argv.log")),
        ] {
            assert!(
                !text.contains(PASSWORD),
                "the password is in the {what}:\n{text}"
            );
        }
        for o in outputs {
            assert!(!text(o).contains(PASSWORD), "{}", text(o));
        }
        let check = self.run(&["config", "check"]);
        assert!(!text(&check).contains(PASSWORD), "{}", text(&check));
        let check = self.run(&["config", "check", "--json"]);
        assert!(!text(&check).contains(PASSWORD), "{}", text(&check));
        assert!(
            text(&check).contains("********"),
            "the password is shown masked: {}",
            text(&check)
        );
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

/// Index of the first journal event matching `pred`.
fn first(j: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    j.iter().position(pred)
}

fn is_fence_event(e: &Value, confirmed: bool) -> bool {
    e["event"] == "fence" && e["confirmed"] == confirmed
}

fn is_promote_started(e: &Value) -> bool {
    e["event"] == "action_started" && e["action"]["kind"]["action"] == "promote_accounts"
}

#[tokio::test(flavor = "multi_thread")]
async fn action_off_powers_the_peer_off_before_promote_accounts() {
    if !may_use_netns("fence_off_before_promotion") {
        return;
    }
    let bed = Bed::new(Setup {
        proxy: false,
        action: "\"off\"",
        agent: None,
    })
    .await;
    bed.set_power("on");
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.power(), "off", "the agent powered the node off");
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
    assert_eq!(
        bed.fence_log(),
        [
            "status promotions=0",
            "off promotions=0",
            "status promotions=0"
        ],
        "status, off, status: all before promoteAccounts"
    );
    let j = bed.journal();
    let fenced = first(&j, |e| is_fence_event(e, true)).expect("a fence event");
    let promoted = first(&j, is_promote_started).expect("promoteAccounts started");
    assert!(fenced < promoted, "{}", bed.journal_text());
    let calls = j[fenced]["calls"].as_array().expect("calls");
    let exits: Vec<String> = calls.iter().map(|c| c["exit"].to_string()).collect();
    assert_eq!(calls.len(), 3, "{exits:?}");
    assert_eq!(calls[0]["exit"]["code"], 0, "ON");
    assert_eq!(calls[2]["exit"]["code"], 2, "OFF");
    // fence_dummy has no password option: it prints the line it ignores,
    // which reaches the journal scrubbed.
    assert!(
        bed.journal_text().contains("password=********"),
        "{}",
        bed.journal_text()
    );
    let argv = bed.read("argv.log");
    assert!(
        argv.lines()
            .filter(|l| l.starts_with("argv:"))
            .all(|l| l.trim_end().ends_with("fence_wrap")),
        "nothing but the program in argv: {argv}"
    );
    assert!(
        argv.contains("password "),
        "the password went on stdin: {argv}"
    );
    bed.assert_password_nowhere(&[&out]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_says_on_with_action_status_blocks_the_promotion() {
    if !may_use_netns("fence_status_on_blocks") {
        return;
    }
    let bed = Bed::new(Setup {
        proxy: false,
        action: "status",
        agent: None,
    })
    .await;
    bed.set_power("on");
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "refused for safety: {}",
        text(&out)
    );
    assert_eq!(bed.promotions(), 0, "{}", text(&out));
    assert_eq!(bed.power(), "on", "status only: nothing powered off");
    assert_eq!(bed.fence_log(), ["status promotions=0"]);
    let status = bed.run(&["status"]);
    let t = text(&status);
    assert!(t.contains("fencing.appserver did not confirm"), "{t}");
    assert!(t.contains("node1 is ON"), "{t}");
    let json = bed.run(&["status", "--json"]);
    assert!(
        text(&json).contains("\"fence_unconfirmed\""),
        "{}",
        text(&json)
    );
    assert!(
        first(&bed.journal(), |e| is_fence_event(e, false)).is_some(),
        "an error event: {}",
        bed.journal_text()
    );
    bed.assert_password_nowhere(&[&out, &status, &json]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_fails_blocks_the_promotion() {
    if !may_use_netns("fence_failing_blocks") {
        return;
    }
    let bed = Bed::new(Setup {
        proxy: false,
        action: "\"off\"",
        agent: Some("#!/bin/sh\ncat >/dev/null\necho 'Failed: Unable to connect/login to fencing device' >&2\nexit 1\n"),
    })
    .await;
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(bed.promotions(), 0);
    let t = text(&bed.run(&["status"]));
    assert!(t.contains("failed (exit 1)"), "{t}");
    assert!(
        bed.journal_text()
            .contains("Unable to connect/login to fencing device"),
        "the agent's tail is journaled: {}",
        bed.journal_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_the_fence_step_resumes_with_status_and_promotes_once() {
    if !may_use_netns("fence_kill9") {
        return;
    }
    let bed = Bed::new(Setup {
        proxy: false,
        action: "\"off\"",
        agent: None,
    })
    .await;
    bed.set_power("on");
    std::fs::write(bed.path("block"), "").expect("block");
    bed.kill_peer();
    let mut child = bed.spawn_check();
    let start = Instant::now();
    while !bed.path("blocked-once").exists() {
        assert!(
            start.elapsed() < PATIENCE,
            "the agent's off never ran: {}",
            bed.read("first.err")
        );
        if let Ok(Some(code)) = child.try_wait() {
            panic!("habeat exited ({code}): {}", bed.read("first.err"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL habeat");
    let _ = child.wait();
    std::fs::remove_file(bed.path("block")).expect("unblock the orphaned agent");
    assert_eq!(bed.promotions(), 0, "promoted during the fence step");
    assert_eq!(bed.fence_log(), ["status promotions=0", "off promotions=0"]);
    // The dead run's quorum gate session must expire first.
    bed.consul.advance_clock(Duration::from_secs(300));
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        bed.fence_log(),
        [
            "status promotions=0",
            "off promotions=0",
            "status promotions=0"
        ],
        "the resumed step asked status first and did not power off again"
    );
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
    assert_eq!(bed.power(), "off");
}

#[tokio::test(flavor = "multi_thread")]
async fn fencing_proxy_blocks_the_proxy_switch_until_confirmed() {
    if !may_use_netns("fence_proxy_blocks") {
        return;
    }
    let bed = Bed::new(Setup {
        proxy: true,
        action: "status",
        agent: None,
    })
    .await;
    bed.set_power("on");
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(bed.read("hooks.log"), "", "no proxy switch: {}", text(&out));
    let t = text(&bed.run(&["status"]));
    assert!(t.contains("fencing.proxy did not confirm"), "{t}");
    assert!(t.contains("no proxy switch without it"), "{t}");
    // The switch command's step never started; the fence step waits.
    let st: Value = serde_json::from_str(&bed.read("state/state.json")).expect("state.json");
    let steps = st["roles"]["proxyserver"]["failover"]["steps"]
        .as_array()
        .expect("a proxy switch record")
        .clone();
    assert_eq!(steps[0]["step"]["step"], "fence", "{steps:#?}");
    assert_eq!(steps[1]["attempts"], 0, "{steps:#?}");
    bed.assert_password_nowhere(&[&out]);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_asks_status_only_and_powers_nothing_off() {
    if !may_use_netns("fence_dry_run") {
        return;
    }
    let bed = Bed::new(Setup {
        proxy: false,
        action: "\"off\"",
        agent: None,
    })
    .await;
    bed.set_power("on");
    bed.kill_peer();
    let out = bed.run(&["check", "--dry-run"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("node1 is ON; would power it off"), "{t}");
    assert!(
        t.contains("would promote"),
        "the rest of the failover is shown: {t}"
    );
    assert_eq!(bed.fence_log(), ["status promotions=0"], "status only");
    assert_eq!(bed.power(), "on", "nothing powered off");
    assert_eq!(bed.promotions(), 0);
    assert!(!t.contains(PASSWORD), "{t}");
}
