//! A SIGHUP reload that adds `fencing.appserver` while a promotion is
//! under way (`fence-before-promotion`, SPEC invariant 12), through the
//! real binary and the real `fence_dummy --type=file`: the daemon starts
//! without fencing, so the promotion it records has no fence step; the
//! fence is a pre-step check of the config in force when the step runs.
//!
//! - During the retry wait after a failed promoteAccounts: the retry
//!   fences first, and an agent that says ON stops it.
//! - During the listing that starts the chain (the job runs): the job
//!   takes up the reloaded config before its next action.

use crate::bed::{self, text};
use crate::fake_carbonio::Fault;
use crate::support::{Need, require};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Child;
use std::time::Duration;

/// How long anything here may take (the retry after a failed
/// promoteAccounts comes 30 s later).
const PATIENCE: Duration = Duration::from_secs(120);

struct Daemon {
    bed: bed::Bed,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// The bed, with the fence agent (a wrapper of fence_dummy that logs
    /// each action it is asked for) in its directory and the peer's power
    /// file saying `power`, and `habeat run` started without fencing.
    async fn start(power: &str, fault: Option<(&str, Fault)>) -> Daemon {
        let bed = bed::Bed::builder()
            .alice_and_bob()
            .carbonio_timeouts("20s", "30s")
            .start()
            .await;
        let d = bed.dir.path().display().to_string();
        let agent = bed.path("fence_wrap");
        std::fs::write(
            &agent,
            format!(
                "#!/bin/sh\ninput=$(cat)\nprintf '%s\\n' \"$input\" | sed -n 's/^action=//p' >> \
                 {d}/fence.log\nprintf '%s\\n' \"$input\" | /usr/sbin/fence_dummy\n"
            ),
        )
        .expect("agent");
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(bed.path("node.power"), power).expect("power file");
        if let Some((command, fault)) = fault {
            bed.fake.set_fault(command, fault);
        }
        let child = bed.spawn(bed.command(&["run"]), "daemon");
        Daemon { bed, child }
    }

    /// Add `fencing.appserver` (`action`) to habeat.yml and send SIGHUP;
    /// returns once the daemon says it reloaded.
    async fn add_fencing_and_reload(&self, action: &str) {
        self.bed.rewrite_config(|y| {
            y.add(
                "fencing",
                &format!(
                    "timeout: 30s\nappserver:\n  agent: {{d}}/fence_wrap\n  action: {action}\n  \
                     options: {{ type: file, status_file: {{d}}/node.power }}\n  plugs: [node1]"
                ),
            )
        });
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), Signal::SIGHUP).expect("SIGHUP");
        self.until("the reload", || {
            self.bed
                .output_of("daemon")
                .contains("configuration reloaded from")
        })
        .await;
    }

    async fn until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what}:\n{}\n{}",
                self.bed.output_of("daemon"),
                self.bed.journal_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn fence_log(&self) -> Vec<String> {
        self.bed
            .read("fence.log")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The index of each journal event matching `pred`.
    fn events(&self, pred: impl Fn(&Value) -> bool) -> Vec<usize> {
        let j = self.bed.journal();
        (0..j.len()).filter(|&i| pred(&j[i])).collect()
    }
}

fn promote_started(e: &Value) -> bool {
    e["event"] == "action_started" && e["action"]["kind"]["action"] == "promote_accounts"
}

fn promote_failed(d: &Daemon) -> bool {
    d.bed
        .journal()
        .iter()
        .any(|e| e["event"] == "action_failed" && e["will_retry"] == true)
}

fn fence_event(e: &Value, confirmed: bool) -> bool {
    e["event"] == "fence" && e["confirmed"] == confirmed
}

/// The promotion failed once, fencing (action off) is added during the
/// wait: the retry has the agent confirm OFF (status, off, status) before
/// promoteAccounts runs again.
#[tokio::test(flavor = "multi_thread")]
async fn fencing_added_during_the_retry_wait_powers_the_peer_off_before_the_retry() {
    if !require(&[Need::Netns]) {
        return;
    }
    let d = Daemon::start(
        "on",
        Some(("promoteAccounts", Fault::Fail { exit_code: 1 })),
    )
    .await;
    d.bed.kill_peer();
    d.until("failed promoteAccounts", || promote_failed(&d))
        .await;
    assert!(d.fence_log().is_empty(), "{:?}", d.fence_log());
    d.bed.fake.update(|s| {
        s.faults.clear();
    });
    d.add_fencing_and_reload("\"off\"").await;
    d.until("second promoteAccounts", || d.bed.promotions() >= 2)
        .await;
    d.until("the promotion finished", || {
        d.bed
            .fake_state()
            .accounts
            .iter()
            .all(|a| a.mail_host != bed::SOURCE)
    })
    .await;
    assert_eq!(d.fence_log(), ["status", "off", "status"]);
    assert_eq!(d.bed.read("node.power"), "off");
    let promotes = d.events(promote_started);
    let fenced = d.events(|e| fence_event(e, true));
    assert_eq!(promotes.len(), 2, "{}", d.bed.journal_text());
    assert_eq!(fenced.len(), 1, "{}", d.bed.journal_text());
    assert!(
        promotes[0] < fenced[0] && fenced[0] < promotes[1],
        "the fence comes between the failed promotion and its retry:\n{}",
        d.bed.journal_text()
    );
    assert!(
        d.bed
            .journal_text()
            .contains("fencing.appserver is configured now"),
        "the journal says why a fence step appeared:\n{}",
        d.bed.journal_text()
    );
}

/// The same with an agent that says the peer is ON (`action: status`):
/// the retry does not promote.
#[tokio::test(flavor = "multi_thread")]
async fn fencing_added_during_the_retry_wait_with_the_peer_on_promotes_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let d = Daemon::start(
        "on",
        Some(("promoteAccounts", Fault::Fail { exit_code: 1 })),
    )
    .await;
    d.bed.kill_peer();
    d.until("failed promoteAccounts", || promote_failed(&d))
        .await;
    d.bed.fake.update(|s| {
        s.faults.clear();
    });
    d.add_fencing_and_reload("status").await;
    d.until("an unconfirmed fence or a promotion", || {
        !d.events(|e| fence_event(e, false)).is_empty() || d.bed.promotions() > 1
    })
    .await;
    assert_eq!(d.fence_log(), ["status"]);
    assert_eq!(d.bed.promotions(), 1, "only the failed one");
    let st = d.bed.run(&["status"]);
    assert!(
        text(&st).contains("fencing.appserver did not confirm"),
        "{}",
        text(&st)
    );
}

/// fencing.appserver added while the job lists the accounts (the chain
/// runs): the chain takes up the reloaded config before its next action,
/// so the promotion it records has the fence, and the agent's ON stops it.
#[tokio::test(flavor = "multi_thread")]
async fn fencing_added_while_the_chain_lists_guards_its_promotion() {
    if !require(&[Need::Netns]) {
        return;
    }
    let d = Daemon::start("on", None).await;
    // The listing of the source takes long enough for a reload.
    d.bed
        .fake
        .set_fault("getAccountStatus", Fault::Slow { seconds: 6.0 });
    d.bed.kill_peer();
    d.until("the listing", || {
        !d.events(|e| {
            e["event"] == "action_started" && e["action"]["kind"]["action"] == "list_accounts"
        })
        .is_empty()
    })
    .await;
    d.add_fencing_and_reload("status").await;
    assert!(
        d.bed.output_of("daemon").contains("an action is running"),
        "the reload came while the job ran:\n{}",
        d.bed.output_of("daemon")
    );
    d.until("an unconfirmed fence or a promotion", || {
        !d.events(|e| fence_event(e, false)).is_empty() || d.bed.promotions() > 0
    })
    .await;
    assert_eq!(d.bed.promotions(), 0, "{}", d.bed.journal_text());
}
