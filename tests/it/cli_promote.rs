//! `habeat promote` in a crisis, through the real binary: the peer's
//! mailstore is gone (a network namespace whose link is cut) and the
//! operator fails over by hand. The promotion is followed by what an
//! automatic one runs (the proxy switch `activate`, the `after_promotion`
//! hooks) unless `--no-follow-ups`, which names each one it skips; it has
//! no fence step, and says so once. Run again later without `--force`, it
//! is judged again as the command was.

use crate::bed::{Bed, REPLICA, SOURCE, text};
use crate::fake_carbonio::Fault;
use crate::support::{Need, require};
use std::process::Output;
use std::time::Duration;

/// The whole failover configured (flush, restart, bgp switch, an
/// `after_promotion` hook, the commands logged to hooks.log), the peer
/// dead.
async fn dead_peer() -> Bed {
    let bed = Bed::builder()
        .alice_and_bob()
        .consul_provider_threads_3()
        .full_failover()
        .carbonio_timeouts("5s", "5s")
        .add(
            "hooks",
            r#"after_promotion: ["echo after_promotion >> {hooks}"]"#,
        )
        .start()
        .await;
    bed.kill_peer();
    bed
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn says_no_fence_once(o: &Output) {
    assert_eq!(
        stdout(o).matches("no fence step").count(),
        1,
        "the missing fence step is said once: {}",
        text(o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_switches_the_proxy_and_runs_the_hooks_like_a_failover() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = dead_peer().await;
    let out = bed.run(&["promote", "--source-mail-host", SOURCE, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        bed.fake.accounts_on(REPLICA),
        ["alice@example.com", "bob@example.com"]
    );
    let log = bed.hooks_log();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["activate", "after_promotion"],
        "{}",
        text(&out)
    );
    says_no_fence_once(&out);
    let s = stdout(&out);
    assert!(s.contains("echo activate"), "{}", text(&out));
    assert!(!s.contains("skipped"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_no_follow_ups_runs_neither_and_names_each_with_its_command() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = dead_peer().await;
    let out = bed.run(&[
        "promote",
        "--source-mail-host",
        SOURCE,
        "--yes",
        "--no-follow-ups",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        bed.fake.accounts_on(REPLICA),
        ["alice@example.com", "bob@example.com"]
    );
    assert_eq!(bed.hooks_log(), "", "{}", text(&out));
    let s = stdout(&out);
    let skipped: Vec<&str> = s.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 2, "{}", text(&out));
    assert!(
        skipped[0].contains("proxy switch activate") && skipped[0].contains("echo activate >>"),
        "{}",
        text(&out)
    );
    assert!(
        skipped[1].contains("after_promotion hook")
            && skipped[1].contains("echo after_promotion >>"),
        "{}",
        text(&out)
    );
    says_no_fence_once(&out);
    // The journal keeps what was skipped, for whoever reads it later.
    let hist = stdout(&bed.run(&["history"]));
    assert!(
        hist.contains("skipped (--no-follow-ups)") && hist.contains("echo activate"),
        "{hist}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_promote_lists_the_follow_ups_and_runs_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = dead_peer().await;
    let out = bed.run(&[
        "--dry-run",
        "promote",
        "--source-mail-host",
        SOURCE,
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    for cmd in ["echo activate >>", "echo after_promotion >>"] {
        assert!(s.contains(cmd), "{cmd} not listed: {}", text(&out));
    }
    says_no_fence_once(&out);
    assert_eq!(bed.hooks_log(), "");
    assert_eq!(bed.promotions(), 0);
}

/// An operator's `promote` (without `--force`, the peer dead) whose
/// promoteAccounts fails is run again by the next round (here a timer's
/// `habeat check`, the daemon's step): by then the peer is back, and the
/// run is judged again as the command was: refused, named in the journal,
/// nothing promoted beside the live source, the promotion stopped for the
/// operator rather than retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_promote_run_again_after_the_peer_came_back_is_refused() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = dead_peer().await;
    bed.fake
        .set_fault("promoteAccounts", Fault::Fail { exit_code: 1 });
    let out = bed.run(&["promote", "--source-mail-host", SOURCE, "--yes"]);
    assert!(
        bed.fake.accounts_on(REPLICA).is_empty(),
        "promoted although promoteAccounts failed: {}",
        text(&out)
    );
    bed.fake.update(|s| s.faults.clear());
    bed.revive_peer();
    // The step waits out its retry delay (30 s at least) before it runs
    // again; not an assertion on time, only the wait the engine asks for.
    std::thread::sleep(Duration::from_secs(31));
    let out = bed.run(&["check"]);
    assert!(
        bed.fake.accounts_on(REPLICA).is_empty(),
        "the retried promotion moved accounts beside a live source: {}",
        text(&out)
    );
    let journal = bed.journal_text();
    assert!(
        journal.contains("run again after its command, is refused: witness"),
        "{journal}"
    );
    assert!(journal.contains("pipeline_stalled"), "{journal}");
}

/// The command judges the witnesses, and they can all see the source Down
/// while its primary is alive: this side cut off from it, the primary
/// still reaching the Consul majority and holding its serving lease.
/// Without `--force` that is no promotion (invariant 14), said with the
/// key and the way out; with `--force`, the operator's word, it promotes.
#[tokio::test(flavor = "multi_thread")]
async fn a_promote_without_force_waits_while_the_primary_holds_its_serving_lease() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = dead_peer().await;
    bed.consul
        .hold_lease(&format!("habeat/serving/{SOURCE}"))
        .await;
    let out = bed.run(&["promote", "--source-mail-host", SOURCE, "--yes"]);
    assert!(
        bed.fake.accounts_on(REPLICA).is_empty(),
        "promoted while the primary holds its serving lease: {}",
        text(&out)
    );
    assert_eq!(bed.promotions(), 0, "{}", text(&out));
    assert_eq!(
        out.status.code(),
        Some(4),
        "refused for safety: {}",
        text(&out)
    );
    assert!(
        text(&out).contains(&format!("habeat/serving/{SOURCE}")),
        "the key it waits for is named: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("--force"),
        "the way out is named: {}",
        text(&out)
    );
    let status = bed.run(&["status"]);
    assert!(
        stdout(&status).contains(&format!("habeat/serving/{SOURCE}")),
        "status says what the promotion waits for: {}",
        text(&status)
    );
    let out = bed.run(&["promote", "--source-mail-host", SOURCE, "--yes", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        bed.fake.accounts_on(REPLICA),
        ["alice@example.com", "bob@example.com"]
    );
}
