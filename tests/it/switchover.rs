//! `habeat switchover` through the binary, against the carbonio stand-in's
//! lifecycle (SPEC §7): an active account's source keeps moving, so its
//! replica is always a little behind, and only an account in maintenance
//! lets it catch up; a promotion of a replica that is behind is a loss the
//! stand-in records. Every test here asks the stand-in what happened to
//! the accounts, never habeat alone (`switchover-never-loses`).

use crate::bed::{Bed, REPLICA, SOURCE, text};
use crate::fake_carbonio::{Account, live_account};
use crate::support::{Need, require};
use nix::sys::signal::Signal;
use std::time::Duration;

/// Six live accounts on this DC's mailstore (after a failover), each with
/// a replica back on the returned primary; `carol` is `locked`.
fn home_later() -> Vec<Account> {
    ["alice", "bob", "carol", "dave", "erin", "frank"]
        .iter()
        .map(|n| {
            let mut a = live_account(
                &format!("{n}@example.com"),
                REPLICA,
                SOURCE,
                Duration::from_millis(300),
                Duration::from_millis(600),
            );
            if *n == "carol" {
                a.status = Some("locked".into());
            }
            a
        })
        .collect()
}

/// The stand-in's model starts at its first invocation: run it once and
/// let mail arrive for a while, so that every replica is behind its
/// source when the switchover starts, as on a live mailstore.
async fn bed(accounts: Vec<Account>) -> Bed {
    let bed = Bed::builder()
        .accounts(accounts)
        .carbonio_timeouts("10s", "10s")
        .start()
        .await;
    read_all(&bed);
    std::thread::sleep(Duration::from_millis(1500));
    let behind = read_all(&bed)
        .iter()
        .filter(|v| v["replicas"][0]["sequence"] != v["sequence"])
        .count();
    assert_eq!(behind, 6, "every replica is behind its live source");
    bed
}

/// `habeat switchover --to` the primary in waves of 3, each given ten
/// minutes to catch up, in the background (its output as "switchover").
fn waves_of_3(bed: &Bed) -> std::process::Child {
    bed.spawn(
        bed.command(&[
            "switchover",
            "--to",
            SOURCE,
            "--wave",
            "3",
            "--catch-up-timeout",
            "10m",
            "--yes",
        ]),
        "switchover",
    )
}

fn signal(child: &std::process::Child, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
}

/// `getAccountStatus mailHost` of this DC's mailstore, through the fake.
fn read_all(bed: &Bed) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(&bed.fake.carbonio)
        .args([
            "--json",
            "MailReplica",
            "getAccountStatus",
            "mailHost",
            REPLICA,
        ])
        .output()
        .expect("run the fake");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["response"]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn status_of(bed: &Bed, name: &str) -> String {
    bed.fake_state()
        .accounts
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.status.clone())
        .unwrap_or_else(|| "active".into())
}

fn statuses(bed: &Bed) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = bed
        .fake_state()
        .accounts
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.status.clone().unwrap_or_else(|| "active".into()),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_back_moves_every_account_home_losing_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed(home_later()).await;
    // The dry run reads, prints each wave and every argv, changes nothing.
    let dry = bed.run(&["--dry-run", "switchover", "--to", SOURCE, "--wave", "3"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let said = text(&dry);
    assert!(said.contains("wave 2 of 2"), "{said}");
    assert!(
        said.contains("promoteAccounts input_file")
            && said.contains("destination mbox1.example.com"),
        "{said}"
    );
    assert!(bed.fake.zmprov_processes().is_empty() && bed.promotions() == 0);
    assert!(!bed.path("state/switchover.json").exists());
    let out = bed.run(&["switchover", "--to", SOURCE, "--wave", "3", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.fake.accounts_on(SOURCE).len(), 6, "{}", text(&out));
    assert!(bed.fake.accounts_on(REPLICA).is_empty());
    assert_eq!(
        bed.fake.losses(),
        Vec::new(),
        "the stand-in recorded a loss"
    );
    assert_eq!(status_of(&bed, "carol@example.com"), "locked");
    for a in ["alice", "bob", "dave", "erin", "frank"] {
        assert_eq!(status_of(&bed, &format!("{a}@example.com")), "active");
    }
    // Re-protected in reverse: a replica back on the secondary.
    for a in bed.fake_state().accounts {
        assert!(
            a.replicas.iter().any(|r| r.destination == REPLICA),
            "{} has no replica on {REPLICA}: {:?}",
            a.name,
            a.replicas
        );
    }
    // Batched: ga, ma and the restore per wave, one process each.
    let zmprov = bed.fake.zmprov_processes();
    assert!(
        zmprov.len() <= 6,
        "{} zmprov processes: {:?}",
        zmprov.len(),
        zmprov.iter().map(|i| &i.stdin).collect::<Vec<_>>()
    );
    assert_eq!(bed.promotions(), 2, "one promotion per wave");
    let journal = bed.journal_text();
    assert!(journal.contains("\"event\":\"switchover\""), "{journal}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wave_whose_replica_never_catches_up_is_rolled_back() {
    if !require(&[Need::Netns]) {
        return;
    }
    let mut accounts = home_later();
    // dave's replica lags an hour: it cannot reach its source in time.
    accounts[3].replicas[0].delay = Some(3600.0);
    let bed = bed(accounts).await;
    let before = statuses(&bed);
    let out = bed.run(&[
        "switchover",
        "--to",
        SOURCE,
        "--wave",
        "3",
        "--catch-up-timeout",
        "3s",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // The first wave moved; nothing of the second (dave's) was promoted.
    assert_eq!(
        bed.fake.accounts_on(SOURCE),
        ["alice@example.com", "bob@example.com", "carol@example.com"]
    );
    assert_eq!(
        bed.fake.accounts_on(REPLICA),
        ["dave@example.com", "erin@example.com", "frank@example.com"]
    );
    assert_eq!(bed.fake.losses(), Vec::new());
    assert_eq!(statuses(&bed), before, "every status restored");
    assert!(text(&out).contains("dave@example.com"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_ready_replica_on_the_target_is_refused_changing_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let mut accounts = home_later();
    accounts[4].replicas[0].available = false;
    let bed = bed(accounts).await;
    let out = bed.run(&["switchover", "--to", SOURCE, "--yes"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("erin@example.com"), "{}", text(&out));
    assert!(
        bed.fake.zmprov_processes().is_empty(),
        "no status read or changed"
    );
    assert_eq!(bed.promotions(), 0);
    assert_eq!(bed.fake.accounts_on(REPLICA).len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_a_wave_waits_is_restored_and_resumed() {
    if !require(&[Need::Netns]) {
        return;
    }
    let mut accounts = home_later();
    accounts[0].replicas[0].delay = Some(3600.0);
    let bed = bed(accounts).await;
    let before = statuses(&bed);
    let mut child = waves_of_3(&bed);
    // Wait until the first wave is in maintenance and waiting.
    let mut waiting = false;
    for _ in 0..400 {
        if status_of(&bed, "alice@example.com") == "maintenance"
            && !bed.calls("getAccountStatus").is_empty()
        {
            waiting = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(waiting, "{}", bed.output_of("switchover"));
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, Signal::SIGKILL);
    let _ = child.wait();
    assert_eq!(
        status_of(&bed, "alice@example.com"),
        "maintenance",
        "{}\n{}",
        bed.output_of("switchover"),
        bed.journal_text()
    );
    // Any command first gives the statuses back.
    let out = bed.run(&["status"]);
    assert_eq!(statuses(&bed), before, "{}", text(&out));
    assert_eq!(bed.promotions(), 0);
    // The replica is healthy again: --resume finishes, losing nothing.
    bed.fake.update(|s| {
        for a in &mut s.accounts {
            for r in &mut a.replicas {
                r.delay = Some(0.6);
            }
        }
    });
    let out = bed.run(&["switchover", "--resume", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.fake.accounts_on(SOURCE).len(), 6);
    assert_eq!(bed.fake.losses(), Vec::new());
    assert_eq!(statuses(&bed), before);
}

/// The whole story: a failover promotes the primary's accounts here; the
/// primary comes back and gets replicas; the switchover brings every
/// account home losing nothing more, and re-arms the failover: the
/// promotion record is gone, the lock files removed, the proxy switch's
/// `deactivate` ran.
#[tokio::test(flavor = "multi_thread")]
async fn fail_back_after_a_failover_rearms_and_deactivates_the_proxy_switch() {
    if !require(&[Need::Netns]) {
        return;
    }
    let accounts: Vec<Account> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| {
            live_account(
                &format!("{n}@example.com"),
                SOURCE,
                REPLICA,
                Duration::from_millis(300),
                Duration::from_millis(600),
            )
        })
        .collect();
    let bed = Bed::builder()
        .accounts(accounts)
        .carbonio_timeouts("10s", "10s")
        .set("local", "proxy_switch: bgp")
        .set("local", "proxy_enable_activate: true")
        .set("local", "proxy_enable_deactivate: true")
        .set("safety", "rearm: manual")
        .bgp_hooks("deactivate")
        .start()
        .await;
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.fake.accounts_on(REPLICA).len(), 3, "{}", text(&out));
    assert_eq!(bed.hooks_log().lines().collect::<Vec<_>>(), ["activate"]);
    assert!(bed.lock("appserverprom-habeat-appserver").exists());
    // The primary is back; its accounts get a replica there again.
    bed.revive_peer();
    bed.fake.set_catch_up(SOURCE, Duration::from_millis(300));
    let out = std::process::Command::new(&bed.fake.carbonio)
        .args([
            "MailReplica",
            "setAccountDestination",
            SOURCE,
            "10",
            "accounts",
            "alice@example.com,bob@example.com,carol@example.com",
        ])
        .output()
        .expect("run the fake");
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(1500));
    read_all(&bed);
    let lost_in_failover = bed.fake.losses().len();
    let out = bed.run(&["switchover", "--to", SOURCE, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.fake.accounts_on(SOURCE).len(), 3);
    assert_eq!(
        bed.fake.losses().len(),
        lost_in_failover,
        "the switchover lost mail"
    );
    assert_eq!(
        bed.hooks_log().lines().collect::<Vec<_>>(),
        ["activate", "deactivate"],
        "{}",
        text(&out)
    );
    assert!(
        !bed.lock("appserverprom-habeat-appserver").exists(),
        "{}",
        text(&out)
    );
    assert!(
        bed.state()["roles"]["appserver"]["failover"].is_null(),
        "{}",
        bed.state()
    );
    // `status` and `history` tell the story.
    let status = bed.run(&["status"]);
    assert!(
        text(&status).contains("switchover mbox2.example.com → mbox1.example.com: done"),
        "{}",
        text(&status)
    );
    let history = text(&bed.run(&["history"]));
    assert!(history.contains("fail-back"), "{history}");
}

/// `status` while a wave waits: which wave, how many moved, how many in
/// maintenance now.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_a_running_switchover() {
    if !require(&[Need::Netns]) {
        return;
    }
    let mut accounts = home_later();
    accounts[3].replicas[0].delay = Some(3600.0);
    let bed = bed(accounts).await;
    let mut child = waves_of_3(&bed);
    let mut seen = String::new();
    for _ in 0..400 {
        let out = bed.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let s = &v["switchover"];
        if s["wave"] == 2 && s["in_maintenance"] == 3 {
            seen = s.to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&child, Signal::SIGTERM);
    let code = child.wait().map(|s| s.code());
    assert!(!seen.is_empty(), "{}", bed.output_of("switchover"));
    assert!(seen.contains("\"moved\":3"), "{seen}");
    assert!(seen.contains("\"state\":\"running\""), "{seen}");
    // SIGTERM rolled the waiting wave back: nobody is left in maintenance.
    assert_eq!(
        code.ok().flatten(),
        Some(3),
        "{}",
        bed.output_of("switchover")
    );
    assert!(
        bed.fake_state()
            .accounts
            .iter()
            .all(|a| a.status.as_deref() != Some("maintenance")),
        "{}",
        bed.output_of("switchover")
    );
    let text_status = text(&bed.run(&["status"]));
    assert!(text_status.contains("stopped"), "{text_status}");
}

/// A switchover killed while the daemon runs: the daemon gives the
/// statuses back by itself, no command needed (it looks once a minute).
#[tokio::test(flavor = "multi_thread")]
async fn the_running_daemon_restores_what_a_killed_switchover_left() {
    if !require(&[Need::Netns]) {
        return;
    }
    let mut accounts = home_later();
    accounts[0].replicas[0].delay = Some(3600.0);
    let bed = bed(accounts).await;
    let before = statuses(&bed);
    let mut daemon = bed.spawn(bed.command(&["run"]), "daemon");
    let mut child = waves_of_3(&bed);
    let mut waiting = false;
    for _ in 0..600 {
        if status_of(&bed, "alice@example.com") == "maintenance" {
            waiting = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(waiting, "{}", bed.output_of("switchover"));
    signal(&child, Signal::SIGKILL);
    let _ = child.wait();
    let mut restored = false;
    for _ in 0..900 {
        if statuses(&bed) == before {
            restored = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&daemon, Signal::SIGTERM);
    let _ = daemon.wait();
    assert!(restored, "{}", bed.output_of("daemon"));
    assert_eq!(bed.promotions(), 0);
}
