//! What the carbonio CLI prints decides whether habeat promotes: hostile
//! and odd outputs, through the real binary (`habeat promote`, which runs
//! the same driver and engine steps as a failover) and the fake carbonio.
//! No network namespace: the operator's `--force` stands in for a dead
//! peer, so these run without root.

use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{FakeCarbonio, Fault, account, with_accounts};
use std::path::PathBuf;
use std::process::Output;

const SOURCE: &str = "mbox1.example.com";
const REPLICA: &str = "mbox2.example.com";

/// The fake CLI with three accounts on the source, a habeat.yml pointing
/// at it, and a scratch directory for state and lock files.
struct Bed {
    fake: FakeCarbonio,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Bed {
    fn new() -> Bed {
        let fake = FakeCarbonio::new(&with_accounts(vec![
            account("alice@example.com", SOURCE, REPLICA),
            account("bob@example.com", SOURCE, REPLICA),
            account("carol@example.com", SOURCE, REPLICA),
        ]));
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
  provider: consul
  threads: 3
  state_dir: {d}/state
primary:
  appserver_ip: 127.0.0.1
  appserver_vmname: {SOURCE}
secondary:
  appserver_vmname: {REPLICA}
consul:
  hostname: 127.0.0.1
  port: {port}
detection:
  timeout: 250ms
carbonio:
  cli: {cli}
  zmprov: {zmprov}
  run_as: ""
  command_timeout: 20s
  promote_timeout: 20s
"#,
            port = support::free_port(),
            cli = fake.carbonio.display(),
            zmprov = fake.zmprov.display(),
        );
        let config = dir.path().join("habeat.yml");
        std::fs::write(&config, yaml).expect("write config");
        Bed { fake, dir, config }
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

    /// `habeat promote --source-mail-host mbox1 --force --yes`.
    fn promote_source(&self) -> Output {
        self.habeat(&["promote", "--source-mail-host", SOURCE, "--force", "--yes"])
    }

    fn calls(&self, sub: &str) -> usize {
        self.fake
            .invocations()
            .iter()
            .filter(|i| i.args.iter().any(|a| a == sub))
            .count()
    }

    fn promotion_lock(&self) -> PathBuf {
        self.dir.path().join("appserverprom-habeat-appserver")
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        // A failing run's log may hold megabytes of the CLI's output tail.
        String::from_utf8_lossy(&o.stderr)
            .chars()
            .take(20_000)
            .collect::<String>()
    )
}

#[test]
fn a_promotion_that_fails_after_megabytes_of_progress_is_a_failure_not_done() {
    let bed = Bed::new();
    // About 3 MB of progress (three times what the output buffer keeps),
    // then the sentence with which the CLI says it failed, and exit 0.
    bed.fake.set_fault(
        "promoteAccounts",
        Fault::ProgressThen {
            bytes: 3_000_000,
            line: "Unable to communicate with server. Check whether the server is running.".into(),
        },
    );
    let out = bed.promote_source();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("could not reach the mailbox service"),
        "the failure sentence was not seen: {all}"
    );
    assert_eq!(bed.calls("promoteAccounts"), 1, "{all}");
    assert!(
        !bed.promotion_lock().exists(),
        "a failed promotion wrote the promotion lock: {all}"
    );
    // Nothing was promoted; the record says so, not "finished".
    assert_eq!(bed.fake.accounts_on(SOURCE).len(), 3);
    let history = bed.habeat(&["history"]);
    let h = String::from_utf8_lossy(&history.stdout);
    assert!(!h.contains("finished"), "{h}");
    assert!(h.contains("could not reach the mailbox service"), "{h}");
}

/// A `getAccountStatus` body listing every account of the fake's source.
fn values(names: &[&str]) -> String {
    let v: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            serde_json::json!({
                "accountId": format!("id-{n}"), "accountName": n,
                "accountMailHost": SOURCE, "paused": false,
                "replicas": [{"destination": REPLICA, "available": true, "priority": 10}],
            })
        })
        .collect();
    serde_json::json!({ "values": v }).to_string()
}

const THREE: [&str; 3] = ["alice@example.com", "bob@example.com", "carol@example.com"];

#[test]
fn a_listing_with_a_key_twice_is_refused_and_nothing_is_promoted() {
    for (body, why) in [
        (
            format!(
                r#"{{"response": {{"values": []}}, "response": {}}}"#,
                values(&THREE)
            ),
            r#"the key "response" appears twice"#,
        ),
        (
            format!(
                r#"{{"response": {{"values": [], "values": {}}}}}"#,
                values(&THREE)
                    .trim_start_matches(r#"{"values":"#)
                    .trim_end_matches('}')
            ),
            r#"the key "values" appears twice in the object at .response"#,
        ),
    ] {
        let bed = Bed::new();
        bed.fake.set_fault(
            "getAccountStatus",
            Fault::Body {
                stdout: format!("{body}\n"),
            },
        );
        let out = bed.promote_source();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(3), "{body}: {all}");
        assert!(all.contains("cannot list the accounts"), "{all}");
        assert!(all.contains(why), "{all}");
        assert_eq!(bed.calls("promoteAccounts"), 0, "promoted: {all}");
        assert_eq!(bed.fake.accounts_on(SOURCE).len(), 3);
        assert!(!bed.promotion_lock().exists(), "{all}");
    }
}

#[test]
fn a_listing_that_says_ok_false_is_a_failure() {
    let bed = Bed::new();
    let body = format!(
        r#"{{"ok": false, "error": "mailbox service not ready", "response": {}}}"#,
        values(&THREE)
    );
    bed.fake.set_fault(
        "getAccountStatus",
        Fault::Body {
            stdout: format!("{body}\n"),
        },
    );
    let out = bed.promote_source();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains(r#"reported a failure ("ok": false): mailbox service not ready"#),
        "{all}"
    );
    assert_eq!(bed.calls("promoteAccounts"), 0, "promoted: {all}");
    assert!(!bed.promotion_lock().exists(), "{all}");
}

#[test]
fn a_descendant_that_left_the_process_group_is_named_not_taken_for_a_huge_output() {
    let bed = Bed::new();
    bed.fake.set_fault("getAccountStatus", Fault::Escape);
    let out = bed.promote_source();
    let escaped: Vec<i32> = bed
        .fake
        .invocations()
        .iter()
        .filter_map(|i| i.child_pid)
        .collect();
    for pid in &escaped {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(!all.contains("exceeded"), "{all}");
    let pid = escaped.first().expect("the fake left a process behind");
    assert!(
        all.contains(&format!(
            "a descendant that left the process group (pid {pid} (sleep)) kept the output pipe open after the command exited"
        )),
        "{all}"
    );
    assert_eq!(bed.calls("promoteAccounts"), 0, "promoted: {all}");
}

/// How many accounts make the listing longer than the output cap of any
/// other JSON command (`JSON_OUTPUT_LIMIT`, 64 MiB): at about 300 bytes
/// an account, 240k print about 70 MiB.
const ABOVE_THE_CAP: usize = 240_000;

#[test]
fn a_mailstore_whose_listing_exceeds_the_output_cap_fails_over() {
    let bed = Bed::new();
    bed.fake.update(|s| {
        s.bulk.push(fake_carbonio::state::Bulk {
            mail_host: SOURCE.into(),
            replica: REPLICA.into(),
            count: ABOVE_THE_CAP,
            behind_every: 0,
        })
    });
    // The listing really is longer than the cap: the fake asked directly.
    let listing = std::process::Command::new(&bed.fake.carbonio)
        .args([
            "--json",
            "MailReplica",
            "getAccountStatus",
            "mailHost",
            SOURCE,
        ])
        .env(fake_carbonio::state::STATE_ENV, &bed.fake.state_path)
        .output()
        .expect("run the fake");
    assert!(
        listing.stdout.len() > habeat::act::carbonio::JSON_OUTPUT_LIMIT,
        "the listing is only {} bytes",
        listing.stdout.len()
    );
    drop(listing);

    let out = bed.promote_source();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(bed.calls("promoteAccounts"), 1, "{all}");
    let st = bed.fake.state();
    assert_eq!(
        st.bulk[0].mail_host, REPLICA,
        "the mailstore's accounts were not promoted: {all}"
    );
    assert!(bed.fake.accounts_on(SOURCE).is_empty(), "{all}");
    assert!(bed.promotion_lock().exists(), "{all}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&(ABOVE_THE_CAP + 3).to_string()),
        "the promotion does not count every account: {all}"
    );
}
