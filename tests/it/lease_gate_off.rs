//! `lease-before-takeover` with `safety.quorum_gate: false` (the
//! operator's emergency switch), through the binary: a serving lease that
//! cannot be read (no Consul leader on this side) does not hold the
//! promotion under `require_peer_lease: auto`, and the journal says so
//! before promoteAccounts runs; a lease that can be read and that the
//! peer still holds does hold it (docs/decisions.md §7, "With the quorum
//! gate off").

use crate::bed::{Bed, text};
use crate::support::{Need, require};
use serde_json::Value;

const SERVING: &str = "habeat/serving/mbox1.example.com";

/// The shared bed (a dead-able primary appserver in a namespace, Consul,
/// the fake CLI with one account) with the gate off.
async fn start() -> Bed {
    Bed::builder()
        .accounts(vec![crate::fake_carbonio::account(
            "alice@example.com",
            crate::bed::SOURCE,
            crate::bed::REPLICA,
        )])
        .tail("safety:\n  quorum_gate: false\n  require_peer_lease: auto\n")
        .start()
        .await
}

/// Where in `events` the first event of kind `kind` is.
fn position(events: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_gate_off_and_no_leader_an_unreadable_lease_does_not_hold_the_promotion_and_the_journal_says_so()
 {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::builder()
        .accounts(vec![crate::fake_carbonio::account(
            "alice@example.com",
            crate::bed::SOURCE,
            crate::bed::REPLICA,
        )])
        .add(
            "hooks",
            r#"on_event:
  - "cat >> \"$HABEAT_OUT/on_event.jsonl\""
  - "echo \"$HABEAT_EVENT $HABEAT_SEVERITY\" >> \"$HABEAT_OUT/on_event.env\"""#,
        )
        .tail("safety:\n  quorum_gate: false\n  require_peer_lease: auto\n")
        .start()
        .await;
    // The hooks find their directory through a variable they do not get
    // from habeat: only HABEAT_* variables reach them, so write it in.
    let dir = bed.dir.path();
    let yaml = std::fs::read_to_string(&bed.config)
        .expect("read config")
        .replace("$HABEAT_OUT", &dir.display().to_string());
    std::fs::write(&bed.config, yaml).expect("write config");
    bed.kill_peer();
    // This side has lost the leader: the lease key cannot be read.
    bed.consul.set_leader(None);
    let out = bed.run(&["check"]);
    assert_eq!(
        bed.promotions(),
        1,
        "an unreadable lease held the promotion with the gate off and `auto`: {}",
        text(&out)
    );
    let events = bed.journal();
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
    // The on_event hooks heard of it as of every journaled event, before
    // `check` exited, with the very JSON of the journal.
    let env = std::fs::read_to_string(dir.join("on_event.env")).unwrap_or_default();
    assert!(env.contains("peer_lease_unchecked warning"), "{env}");
    let delivered: Vec<Value> = std::fs::read_to_string(dir.join("on_event.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(delivered, events, "{}", text(&out));
    // `history` shows it to the operator.
    let history = bed.run(&["history"]);
    let h = String::from_utf8_lossy(&history.stdout);
    assert!(
        h.contains(SERVING) && h.contains("require_peer_lease"),
        "{}",
        text(&history)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_gate_off_a_lease_that_can_be_read_and_is_held_by_the_peer_holds_the_promotion() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = start().await;
    // The primary's keeper: a TTL-only session with the 15s lock-delay,
    // holding the serving key (the primary is cut off from this side's
    // witnesses but still reaches the Consul majority).
    let primary = bed.consul.hold_lease(SERVING).await;
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(
        bed.promotions(),
        0,
        "promoted beside a lease the peer holds: {}",
        text(&out)
    );
    assert_eq!(bed.consul.lock_holder(SERVING), Some(primary));
    let events = bed.journal();
    assert!(
        !events.iter().any(|e| e["event"] == "peer_lease_unchecked"),
        "{events:#?}"
    );
    let status = bed.run(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(v["why"][0]["kind"], "step_waiting", "{v:#}");
    assert_eq!(
        v["why"][0]["reason"]["waiting"]["wait"]["kind"], "held",
        "{v:#}"
    );
}
