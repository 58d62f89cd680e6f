//! `habeat status` in a crisis, as the administrator reads it, through the
//! real binary: whether a daemon watches at all and how old the evidence
//! is (saved state is not news), what the local Consul said and whether
//! the quorum gate could be taken, and, when the primary DC holding the
//! Consul majority is gone, the host where `recover --peer-dc-lost` runs.

use crate::bed::{Bed, text};
use crate::support;

use std::process::{Output, Stdio};
use std::time::Duration;
use support::{Need, require};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status_json(bed: &Bed) -> serde_json::Value {
    let out = bed.operator(&["status", "--json"], "5s");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&out)))
}

/// The last check's "appserver Up" replayed with no daemon running is said
/// to be stale, with the daemon not running; with `habeat run` holding its
/// lock, status says it runs (its pid) and how old its last round is; once
/// it is killed, not running again. Witness rows have a heading.
#[tokio::test(flavor = "multi_thread")]
async fn status_says_whether_a_daemon_runs_and_how_old_its_evidence_is() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::builder().start().await;
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let st = stdout(&bed.operator(&["status"], "5s"));
    let daemon = st
        .lines()
        .find(|l| l.starts_with("daemon:"))
        .unwrap_or_else(|| panic!("no daemon line:\n{st}"));
    assert!(daemon.contains("NOT RUNNING"), "{daemon}");
    assert!(daemon.contains("systemctl start habeat"), "{daemon}");
    let peer = st
        .lines()
        .find(|l| l.starts_with("peer primary"))
        .unwrap_or_else(|| panic!("no peer line:\n{st}"));
    assert!(
        peer.contains("as of") && peer.contains("daemon not running"),
        "the verdicts carry no age: {peer}"
    );
    assert!(
        st.lines().any(|l| l.starts_with("consul:")),
        "no line for the local Consul:\n{st}"
    );
    assert!(
        st.lines()
            .any(|l| l.starts_with("quorum gate:") && l.contains("could be taken")),
        "no line for the quorum gate:\n{st}"
    );
    assert!(
        st.lines().any(|l| l.starts_with("witnesses (")),
        "the witness rows have no heading:\n{st}"
    );
    // Left alone, the check's evidence grows old (stale after five
    // intervals, at least 10 s): then it says so.
    let mut stale = None;
    for _ in 0..600 {
        let st = stdout(&bed.operator(&["status"], "5s"));
        if st
            .lines()
            .any(|l| l.starts_with("peer primary (STALE: as of"))
        {
            stale = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = stale.unwrap_or_else(|| panic!("the old verdicts never said they are stale"));
    assert!(
        st.lines()
            .any(|l| l.starts_with("peer primary (STALE") && l.contains("daemon not running")),
        "{st}"
    );
    let v = status_json(&bed);
    assert_eq!(v["daemon"]["running"], false, "{v:#}");
    assert_eq!(v["evidence"]["stale"], true, "{v:#}");
    assert_eq!(v["local_consul"]["leader"], true, "{v:#}");
    assert_eq!(v["quorum_gate"]["can_be_taken"], true, "{v:#}");
    assert!(v["components"].is_object(), "existing keys kept: {v:#}");

    let mut daemon = bed
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let mut seen = None;
    for _ in 0..600 {
        let v = status_json(&bed);
        if v["daemon"]["running"] == true && v["evidence"]["stale"] == false {
            seen = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = seen.unwrap_or_else(|| panic!("status never saw the daemon running"));
    assert_eq!(v["daemon"]["pid"], daemon.id(), "{v:#}");
    let st = stdout(&bed.operator(&["status"], "5s"));
    assert!(
        st.lines()
            .any(|l| l.starts_with("daemon:")
                && l.contains(&format!("running (pid {})", daemon.id()))),
        "{st}"
    );
    assert!(
        st.lines()
            .any(|l| l.starts_with("peer primary (as of") && !l.contains("STALE")),
        "{st}"
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let v = status_json(&bed);
    assert_eq!(
        v["daemon"]["running"], false,
        "a killed daemon still runs: {v:#}"
    );
}

/// The seeds' Consul layout (two servers in the primary DC, one in the
/// secondary) and no arbiter: the primary DC lost, a mailstore here sees
/// no Consul leader and the gate refuses for ever. `status` says what to
/// do and on which host (this DC's Consul server, from
/// `secondary.consul_vmnames`); `recover --peer-dc-lost` on the mailstore
/// names that host too; `--dry-run check` exits as the real run does.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_primary_dc_seen_from_a_mailstore_names_where_recover_runs() {
    if !require(&[Need::Netns]) {
        return;
    }
    const HOST: &str = "consul3.example.com";
    let bed = Bed::builder()
        .alice_and_bob()
        .consul_provider_threads_3()
        .carbonio_timeouts("5s", "3s")
        .set(
            "primary",
            "consul_vmnames: [consul1.example.com, consul2.example.com]",
        )
        .set("secondary", &format!("consul_vmnames: [{HOST}]"))
        .start()
        .await;
    bed.kill_peer();
    bed.consul.set_leader(None);
    // A dry run first, as an operator checks before acting, then the real
    // run: the same exit code, 4 (refused for safety).
    let dry = bed.run(&["--dry-run", "check"]);
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(
        dry.status.code(),
        out.status.code(),
        "--dry-run check exits otherwise than the real run:\n{}",
        text(&dry)
    );
    assert_eq!(bed.promotions(), 0);

    let st = stdout(&bed.operator(&["status"], "5s"));
    let todo = st
        .lines()
        .find(|l| l.starts_with("WHAT TO DO"))
        .unwrap_or_else(|| panic!("status does not say what to do:\n{st}"));
    assert!(
        todo.contains("habeat recover --peer-dc-lost") && todo.contains(HOST),
        "{todo}"
    );
    assert!(
        todo.contains("2 Consul server(s) in primary, 1 in secondary"),
        "{todo}"
    );
    let v = status_json(&bed);
    assert!(
        v["next_step"].as_str().is_some_and(|n| n.contains(HOST)),
        "{v:#}"
    );
    assert_eq!(v["quorum_gate"]["can_be_taken"], false, "{v:#}");

    let rec = bed.operator(&["recover", "--peer-dc-lost", "--yes"], "5s");
    assert_ne!(rec.status.code(), Some(0), "{}", text(&rec));
    assert!(
        String::from_utf8_lossy(&rec.stderr).contains(HOST),
        "recover on a mailstore does not name where to run it: {}",
        text(&rec)
    );

    // While the refusal's wait lasts, the next runs are refused as well,
    // real and dry alike.
    let real = bed.run(&["check"]);
    let dry = bed.run(&["--dry-run", "check"]);
    assert_eq!(real.status.code(), Some(4), "{}", text(&real));
    assert_eq!(dry.status.code(), Some(4), "{}", text(&dry));
    assert_eq!(bed.promotions(), 0);
}
