//! The fence runner (`habeat::act::fence`) against the real ClusterLabs
//! agents: `fence_dummy --type=file` keeps a node's power state in a file.

use habeat::act::fence::{self, CallEnd, Power};
use habeat::config::{FenceAction, FenceTarget};
use habeat::model::FenceFailure;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FENCE_DUMMY: &str = "/usr/sbin/fence_dummy";

/// A `fence_dummy --type=file` target whose node's state lives in `file`.
pub fn dummy(file: &Path, action: FenceAction) -> FenceTarget {
    let mut options = BTreeMap::new();
    options.insert("type".to_owned(), "file".to_owned());
    options.insert("status_file".to_owned(), file.display().to_string());
    FenceTarget {
        agent: FENCE_DUMMY.into(),
        action,
        options,
        plugs: vec!["mbox1".into()],
    }
}

/// An executable shell script at `path`.
pub fn script(path: &Path, body: &str) -> PathBuf {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("script written");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_owned()
}

fn state(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap_or_default()
}

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn off_powers_an_on_node_off_and_status_confirms_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mbox1.state");
    std::fs::write(&file, "on").expect("write");
    let t = dummy(&file, FenceAction::Off);
    assert_eq!(fence::status(&t, "mbox1", T).await.power(), Ok(Power::On));
    let r = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(r.verdict, Ok(()), "{r:#?}");
    let actions: Vec<FenceAction> = r.calls.iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        [FenceAction::Status, FenceAction::Off, FenceAction::Status]
    );
    assert_eq!(state(&file), "off");
    // Resumed: OFF already, so only a status, no second power action.
    let again = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(again.verdict, Ok(()));
    assert_eq!(again.calls.len(), 1);
    assert_eq!(again.calls[0].action, FenceAction::Status);
    assert_eq!(again.calls[0].exit, CallEnd::Exited { code: 2 });
}

#[tokio::test]
async fn status_only_never_powers_off_and_refuses_an_on_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mbox1.state");
    std::fs::write(&file, "on").expect("write");
    let t = dummy(&file, FenceAction::Status);
    let r = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(
        r.verdict,
        Err(FenceFailure::On {
            plug: "mbox1".into()
        })
    );
    assert_eq!(r.calls.len(), 1);
    assert_eq!(state(&file), "on", "nothing was powered off");
    std::fs::write(&file, "off").expect("write");
    assert_eq!(fence::confirm_off(&t, "mbox1", T).await.verdict, Ok(()));
}

#[tokio::test]
async fn a_failing_agent_or_one_that_hangs_is_no_confirmation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mbox1.state");
    let mut t = dummy(&file, FenceAction::Off);
    // fence_dummy --type=fail: status reports neither on nor off.
    t.options.insert("type".into(), "fail".into());
    let r = fence::confirm_off(&t, "mbox1", T).await;
    assert!(
        matches!(r.verdict, Err(FenceFailure::AgentFailed { exit, .. }) if exit != 0 && exit != 2),
        "{r:#?}"
    );
    let hang = script(&dir.path().join("fence_hang"), "sleep 600 &\nwait\n");
    let t = FenceTarget {
        agent: hang,
        ..dummy(&file, FenceAction::Off)
    };
    let r = fence::confirm_off(&t, "mbox1", Duration::from_millis(300)).await;
    assert!(
        matches!(r.verdict, Err(FenceFailure::TimedOut { .. })),
        "{r:#?}"
    );
}

#[tokio::test]
async fn the_password_travels_on_stdin_only_and_is_scrubbed_from_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mbox1.state");
    std::fs::write(&file, "off").expect("write");
    let log = dir.path().join("argv.log");
    // Records its argv and the option names it was given, then runs the
    // real agent with the same stdin.
    let wrapper = script(
        &dir.path().join("fence_wrap"),
        &format!(
            "echo \"argv: $0 $*\" >> {log}\ninput=$(cat)\necho \"$input\" | cut -d= -f1 | tr '\\n' ' ' >> {log}\necho >> {log}\nprintf '%s\\n' \"$input\" | {FENCE_DUMMY}\n",
            log = log.display()
        ),
    );
    let mut t = dummy(&file, FenceAction::Off);
    t.agent = wrapper;
    t.options.insert("password".into(), "hunter2-pw".into());
    let r = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(r.verdict, Ok(()), "{r:#?}");
    let logged = std::fs::read_to_string(&log).expect("the wrapper ran");
    assert!(!logged.contains("hunter2-pw"), "{logged}");
    assert!(
        logged.contains("password "),
        "the option reached stdin: {logged}"
    );
    assert!(logged.contains("action plug"), "{logged}");
    // fence_dummy has no password option and echoes the line it ignores.
    let tail = &r.calls[0].tail;
    assert!(tail.contains("password=********"), "{tail}");
    assert!(!tail.contains("hunter2-pw"), "{tail}");
}

#[tokio::test]
async fn a_password_the_tail_cut_would_split_is_still_masked_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mbox1.state");
    let pw = "Zq7-vault-Passw0rd-26char";
    // The agent echoes the password, then enough output that the journal's
    // tail (fence::TAIL_BYTES) begins in the middle of it.
    let keep = fence::TAIL_BYTES - 10;
    let agent = script(
        &dir.path().join("fence_chatty"),
        &format!(
            "cat >/dev/null\nprintf 'login with %s' '{pw}'\nhead -c {keep} /dev/zero | tr '\\0' x\nexit 2\n"
        ),
    );
    let mut t = dummy(&file, FenceAction::Status);
    t.agent = agent;
    t.options.insert("password".into(), pw.into());
    let r = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(r.verdict, Ok(()), "{r:#?}");
    let tail = &r.calls[0].tail;
    // No 6 characters of the password in a row survive.
    for w in pw.as_bytes().windows(6) {
        let piece = std::str::from_utf8(w).expect("ascii");
        assert!(
            !tail.contains(piece),
            "{piece:?} leaked: {}",
            &tail[..tail.len().min(60)]
        );
    }
    assert!(tail.ends_with('x'), "the tail is still the end: {tail}");
}

// --- a networked agent: the real fence_redfish against a Redfish stand-in

const REDFISH: &str = "/usr/sbin/fence_redfish";

fn redfish(
    bmc: &crate::support::redfish::Redfish,
    password: &str,
    action: FenceAction,
) -> FenceTarget {
    let mut options = BTreeMap::new();
    for (k, v) in [
        ("ip", "127.0.0.1".to_owned()),
        ("ipport", bmc.port().to_string()),
        ("username", "habeat".to_owned()),
        ("password", password.to_owned()),
        ("ssl_insecure", "1".to_owned()),
    ] {
        options.insert(k.to_owned(), v);
    }
    FenceTarget {
        agent: REDFISH.into(),
        action,
        options,
        plugs: vec!["mbox1".into()],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fence_redfish_powers_a_system_off_through_the_redfish_api() {
    use crate::support::redfish::Redfish;
    let bmc = Redfish::start("On", "habeat", "bmc-Pa55word").await;
    let t = redfish(&bmc, "bmc-Pa55word", FenceAction::Off);
    let r = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(r.verdict, Ok(()), "{r:#?}");
    let exits: Vec<&CallEnd> = r.calls.iter().map(|c| &c.exit).collect();
    assert_eq!(
        exits,
        [
            &CallEnd::Exited { code: 0 },
            &CallEnd::Exited { code: 0 },
            &CallEnd::Exited { code: 2 }
        ],
        "status ON, off done, status OFF: {r:#?}"
    );
    assert_eq!(bmc.power(), "Off");
    let resets: Vec<_> = bmc
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(resets.len(), 1, "one power action: {resets:?}");
    assert_eq!(resets[0].reset_type.as_deref(), Some("ForceOff"));
    assert!(resets[0].path.ends_with("/Actions/ComputerSystem.Reset"));
    for c in &r.calls {
        assert!(!c.tail.contains("bmc-Pa55word"), "{}", c.tail);
    }
    // Resumed: OFF, so status only, and no second reset.
    let again = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(again.verdict, Ok(()));
    assert_eq!(again.calls.len(), 1);
    assert_eq!(bmc.seen().iter().filter(|s| s.method == "POST").count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn fence_redfish_status_on_and_a_refused_login_are_no_confirmation() {
    use crate::support::redfish::Redfish;
    let bmc = Redfish::start("On", "habeat", "bmc-Pa55word").await;
    let t = redfish(&bmc, "bmc-Pa55word", FenceAction::Status);
    let r = fence::confirm_off(&t, "mbox1", T).await;
    assert_eq!(
        r.verdict,
        Err(FenceFailure::On {
            plug: "mbox1".into()
        }),
        "{r:#?}"
    );
    assert_eq!(bmc.power(), "On", "status only: no reset sent");
    assert!(bmc.seen().iter().all(|s| s.method == "GET"));
    let wrong = redfish(&bmc, "wrong-password", FenceAction::Off);
    let r = fence::confirm_off(&wrong, "mbox1", T).await;
    assert!(
        matches!(r.verdict, Err(FenceFailure::AgentFailed { exit, .. }) if exit != 0 && exit != 2),
        "{r:#?}"
    );
    assert_eq!(bmc.power(), "On");
    assert!(
        !r.calls[0].tail.contains("wrong-password"),
        "{}",
        r.calls[0].tail
    );
}
