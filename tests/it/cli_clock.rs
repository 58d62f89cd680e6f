//! The wall clock set forward for the `habeat` process alone (libfaketime,
//! the boot clock left real): `promotion_block` still holds, because it is
//! measured with the boot clock too (docs/decisions.md, "Which clock
//! measures what").

use crate::bed::{Bed, SOURCE, text};
use crate::support;

use std::process::Command;
use support::{Need, require};

#[tokio::test(flavor = "multi_thread")]
async fn a_wall_clock_set_two_hours_forward_after_a_promotion_and_a_rearm_does_not_promote_again() {
    if !require(&[Need::Netns, Need::FAKETIME]) {
        return;
    }
    let bed = Bed::builder()
        .alice_and_bob()
        .consul_provider_threads_3()
        .full_failover()
        .carbonio_timeouts("5s", "3s")
        .start()
        .await;
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.promotions(), 1, "{}", text(&out));

    let rearm = bed.run(&["rearm"]);
    assert_eq!(rearm.status.code(), Some(0), "{}", text(&rearm));
    // The source's accounts are back on it and it is down again: only
    // promotion_block (1h by default) stands between this and a second
    // promotion.
    bed.fake.update(|s| {
        for a in &mut s.accounts {
            a.mail_host = SOURCE.into();
        }
    });

    // The wall clock two hours ahead for habeat alone. libfaketime fakes
    // CLOCK_BOOTTIME and CLOCK_MONOTONIC too unless told not to.
    let before = std::time::SystemTime::now();
    let out = Command::new(Need::FAKETIME.program())
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .args(["-f", "+2h", env!("CARGO_BIN_EXE_habeat")])
        .arg("--config")
        .arg(&bed.config)
        .arg("check")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run habeat under faketime");
    // The step really reached the process: its events are dated two
    // hours ahead.
    let journal = bed.journal();
    let last = journal.last().cloned().unwrap_or_default();
    let at = last["at"].as_u64().unwrap_or(0);
    let real = before
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    assert!(at > real + 3_600_000, "not faked: {last}\n{}", text(&out));

    assert_eq!(
        bed.promotions(),
        1,
        "promoted again within promotion_block: {}",
        text(&out)
    );
    assert!(
        bed.journal()
            .iter()
            .any(|e| e["reason"]["kind"] == "promotion_blocked"),
        "{}",
        bed.journal_text()
    );
}
