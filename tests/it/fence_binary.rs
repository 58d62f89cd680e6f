//! `fence-before-promotion` (SPEC invariant 12) through the real binary,
//! with the real ClusterLabs `fence_dummy --type=file` (its node's power
//! state is a file): the peer mailstore is a network namespace whose link
//! is cut, Consul the API test server, Carbonio the fake CLI (SPEC 7).
//!
//! The agent is a small wrapper around `fence_dummy` that logs each call
//! (its argv, the option names on its stdin, and how many
//! `promoteAccounts` the fake Carbonio had seen by then) and can block,
//! so a test can kill habeat in the middle of a fence call.

use crate::bed::{self, LockNames, text};
use crate::support;

use serde_json::Value;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Output};
use std::time::{Duration, Instant};
use support::{Need, require};

/// Given to the agent as `password`: must never show anywhere.
const PASSWORD: &str = "Sup3r-s3cret-Fence-PW";
const PATIENCE: Duration = Duration::from_secs(90);

/// The shared bed (`support::bed`) with a peer proxy beside the peer
/// mailstore, and the fence agent in its scratch directory.
struct Bed(bed::Bed);

impl Deref for Bed {
    type Target = bed::Bed;
    fn deref(&self) -> &bed::Bed {
        &self.0
    }
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
        let (role, target) = if s.proxy {
            ("proxyserver", "proxy")
        } else {
            ("appserver", "appserver")
        };
        let agent = if s.agent.is_some() {
            "fence_other"
        } else {
            "fence_wrap"
        };
        let shared = bed::Bed::builder()
            .alice_and_bob()
            .lock_names(LockNames::Short)
            .set("local", &format!("role: {role}"))
            .set("local", "proxy_switch: bgp")
            .set("local", "proxy_enable_activate: true")
            .peer_proxy()
            .bgp_hooks("deactivate")
            .carbonio_timeouts("20s", "30s")
            .add(
                "fencing",
                &format!(
                    "timeout: 30s\n{target}:\n  agent: {{d}}/{agent}\n  action: {action}\n  \
                     options: {{ type: file, status_file: {{d}}/node.power, password: {PASSWORD} }}\n  \
                     plugs: [node1]",
                    action = s.action,
                ),
            )
            .start()
            .await;
        let d = shared.dir.path().display().to_string();
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
            fake_state = shared.fake.state_path.display(),
        );
        let program = |name: &str, body: &str| {
            let p = shared.path(name);
            std::fs::write(&p, body).expect("agent");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        program("fence_wrap", &body);
        if let Some(a) = s.agent {
            program("fence_other", a);
        }
        Bed(shared)
    }

    fn set_power(&self, state: &str) {
        std::fs::write(self.path("node.power"), state).expect("power file");
    }

    fn power(&self) -> String {
        std::fs::read_to_string(self.path("node.power")).unwrap_or_default()
    }

    fn spawn_check(&self) -> Child {
        self.spawn(self.command(&["check"]), "first")
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
        // The file alone: the logging wrapper is no agent that answers
        // `-o metadata`, and fence_dummy knows no `password` (which is
        // here to be masked).
        let check = self.run(&["config", "check", "--file-only"]);
        assert!(!text(&check).contains(PASSWORD), "{}", text(&check));
        let check = self.run(&["config", "check", "--file-only", "--json"]);
        assert!(!text(&check).contains(PASSWORD), "{}", text(&check));
        assert!(
            text(&check).contains("********"),
            "the password is shown masked: {}",
            text(&check)
        );
    }
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
    if !require(&[Need::Netns]) {
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
    if !require(&[Need::Netns]) {
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
    if !require(&[Need::Netns]) {
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
    if !require(&[Need::Netns]) {
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
    if !require(&[Need::Netns]) {
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
    if !require(&[Need::Netns]) {
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
