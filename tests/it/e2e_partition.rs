//! Partition or lost datacenter (SPEC §4, invariant 11,
//! `no-raft-recovery-on-time-alone`), through the real binary on the
//! testbed in the seeds' Consul layout: two servers in the primary
//! (consul1, consul3), one in the secondary (this node, with the
//! consulserver and appserver roles). A cut of the inter-DC link and the
//! loss of the primary look the same from here; only a third vantage point
//! (an arbiter, fencing) or the operator may tell raft to recover.
//!
//! `recovery_grace` is 3 s here; a window in which nothing must happen is
//! four times that, after the moment habeat said it would wait.

use crate::support;

use serde_json::Value;
use std::time::Duration;
use support::consul_api::member;
use support::testbed::{self, Binaries, Daemon, Host, Options, Testbed};
use support::{Need, require};

const SLOW: Duration = Duration::from_secs(60);
/// How long real Serf may take to mark every peer server failed after a
/// partition: a suspicion needs confirmations, and the members that could
/// give them are cut off too (one CI run took over a minute under load).
const PARTITION_SEEN: Duration = Duration::from_secs(150);
const GRACE: Duration = Duration::from_secs(3);

fn bins() -> Binaries {
    Binaries::beside(std::path::Path::new(env!("CARGO_BIN_EXE_habeat")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn two_plus_one() -> Options {
    Options {
        roles: vec!["appserver", "consulserver"],
        two_plus_one: true,
        recovery_grace: Some(GRACE),
        ..Options::default()
    }
}

fn verdict(tb: &Testbed, component: &str) -> String {
    tb.state_json()
        .and_then(|s| {
            s["components"][component]["verdict"]
                .as_str()
                .map(str::to_lowercase)
        })
        .unwrap_or_default()
}

/// The daemon, once it has seen the peer Up and recorded the healthy raft
/// configuration (three servers).
fn healthy_daemon(tb: &Testbed) -> Daemon {
    let mut d = tb.spawn_daemon();
    let healthy = |tb: &Testbed| {
        verdict(tb, "appserver") == "up"
            && verdict(tb, "consul") == "up"
            && tb.state_json().is_some_and(|s| {
                s["raft"]["last_healthy"]
                    .as_array()
                    .is_some_and(|a| a.len() == 3)
            })
    };
    testbed::wait_until(SLOW, || healthy(tb) || !d.running());
    assert!(
        d.running() && healthy(tb),
        "the daemon never saw the peer healthy\nstate.json: {:?}\n{}",
        tb.state_json(),
        tb.diagnostics()
    );
    d
}

fn promoted_everything(tb: &Testbed) -> bool {
    tb.accounts_on(testbed::SOURCE_HOST).is_empty()
        && tb.hook_lines().iter().any(|l| l == "after_promotion")
}

/// Nothing of a raft recovery or a promotion happens for `window`.
fn assert_nothing_for(tb: &Testbed, window: Duration, why: &str) {
    let acted = testbed::wait_until(window, || {
        !tb.promote_calls().is_empty()
            || !tb.service_calls().is_empty()
            || tb.peers_json().is_some()
    });
    assert!(
        !acted,
        "{why}: something was done: promoteAccounts {:?}, service-discover {:?}, peers.json {:?}\n{}",
        tb.promote_calls(),
        tb.service_calls(),
        tb.peers_json(),
        tb.diagnostics()
    );
    assert_eq!(
        tb.accounts_on(testbed::SOURCE_HOST).len(),
        tb.opts.accounts.len(),
        "{why}: accounts moved"
    );
}

/// The consulserver role's explanation in `status --json`.
fn consul_why(tb: &Testbed) -> Value {
    let (code, out, err) = tb.run_habeat(&["--json", "status"], SLOW);
    assert_eq!(code, Some(0), "status --json: {out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["why"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["role"] == "consulserver").cloned())
        .unwrap_or(Value::Null)
}

fn expected_peers() -> Value {
    serde_json::json!([{
        "id": testbed::LOCAL_CONSUL_ID,
        "address": testbed::LOCAL_CONSUL_ADDR,
        "non_voter": false,
    }])
}

#[test]
fn partition_outlasting_recovery_grace_recovers_nothing_promotes_nothing_and_status_explains() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(two_plus_one(), bins());
    let _d = healthy_daemon(&tb);
    tb.partition();
    assert!(
        testbed::wait_until(PARTITION_SEEN, || !tb
            .events_of("peer_dc_unreachable")
            .is_empty()
            || tb.peers_json().is_some()),
        "habeat never said it cannot tell a partition from a lost DC\n{}",
        tb.diagnostics()
    );
    assert_nothing_for(&tb, GRACE * 4, "partition outlasting recovery_grace");
    assert_eq!(
        tb.events_of("peer_dc_unreachable").len(),
        1,
        "peer_dc_unreachable raised once per episode"
    );
    let (code, out, err) = tb.run_habeat(&["status"], SLOW);
    assert_eq!(code, Some(0), "status: {out}{err}");
    for needle in [
        "cannot tell a partition",
        "witnesses.command",
        "fencing.consul",
        "habeat recover --peer-dc-lost",
    ] {
        assert!(out.contains(needle), "status names {needle:?}:\n{out}");
    }
    let why = consul_why(&tb);
    assert_eq!(why["kind"], "raft_not_ready", "{why}");
    assert_eq!(why["reason"]["wait"]["kind"], "unconfirmed", "{why}");
    assert!(tb.lock_files().is_empty(), "{:?}", tb.lock_files());
}

#[test]
fn arbiter_voting_down_recovers_raft_then_promotes_exactly_once() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            arbiter: true,
            ..two_plus_one()
        },
        bins(),
    );
    let _d = healthy_daemon(&tb);
    // The third site sees the primary gone.
    tb.set_arbiter(false);
    tb.partition();
    assert!(
        testbed::wait_until(SLOW, || promoted_everything(&tb)),
        "no complete promotion after the arbiter confirmed the loss\n{}",
        tb.diagnostics()
    );
    assert_eq!(
        tb.peers_json(),
        Some(expected_peers()),
        "peers.json lists this DC's server"
    );
    assert_eq!(
        tb.service_calls(),
        ["stop", "start"],
        "service-discover restarted once"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        tb.promote_calls().len(),
        1,
        "promoted once: {:?}",
        tb.promote_calls()
    );
    assert_eq!(tb.service_calls().len(), 2, "recovered once");
    assert!(
        tb.events_of("peer_dc_unreachable").is_empty(),
        "confirmed: nothing to ask"
    );
    // Raft recovery came before the promotion (which needed its leader).
    let events = tb.events();
    let pos = |kind: &str| {
        events
            .iter()
            .position(|e| e["event"] == "action_started" && e["action"]["kind"]["action"] == kind)
    };
    let raft =
        pos("raft_recovery").unwrap_or_else(|| panic!("raft recovery journaled: {events:?}"));
    let promote = pos("promote_accounts").unwrap_or_else(|| panic!("promotion journaled"));
    assert!(raft < promote);
    // The old primary comes back: its Consul servers must be wiped and
    // rejoined, not restarted as they are.
    tb.set_arbiter(true);
    tb.heal();
    assert!(
        testbed::wait_until(SLOW, || !tb.events_of("peer_consul_returned").is_empty()),
        "the returning servers were not reported\n{}",
        tb.diagnostics()
    );
    let (code, out, err) = tb.run_habeat(&["status"], SLOW);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("WARNING") && out.contains("wipe") && out.contains("rejoin"),
        "status warns about the returning servers:\n{out}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        tb.events_of("peer_consul_returned").len(),
        1,
        "reported once"
    );
    assert_eq!(tb.service_calls().len(), 2, "nothing restarted again");
}

#[test]
fn arbiter_voting_up_during_a_partition_changes_nothing() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            arbiter: true,
            ..two_plus_one()
        },
        bins(),
    );
    let _d = healthy_daemon(&tb);
    tb.partition();
    // Every other witness turns Down; the arbiter keeps seeing the primary.
    let serf_down = |tb: &Testbed| {
        tb.state_json().is_some_and(|s| {
            s["witnesses"].as_array().is_some_and(|ws| {
                ws.iter().any(|w| {
                    w["vote"] == "down"
                        && w["witness"].to_string().contains("consul_members")
                        && w["witness"]["component"] == "consul"
                })
            })
        })
    };
    assert!(
        testbed::wait_until(SLOW, || serf_down(&tb) || !tb.promote_calls().is_empty()),
        "Serf never saw the peer Consul servers failed\n{}",
        tb.diagnostics()
    );
    assert_nothing_for(&tb, GRACE * 4, "partition, arbiter Up");
    assert_ne!(verdict(&tb, "consul"), "down");
    assert_ne!(verdict(&tb, "appserver"), "down");
}

#[test]
fn recover_peer_dc_lost_is_refused_while_a_peer_server_is_up_then_recovers_and_the_promotion_follows()
 {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(two_plus_one(), bins());
    let _d = healthy_daemon(&tb);
    // Everything is up: refused for safety.
    let (code, out, err) = tb.run_habeat(&["recover", "--peer-dc-lost", "--yes"], SLOW);
    assert_eq!(code, Some(4), "refused while the peer is up: {out}{err}");
    assert!(err.contains("partition"), "says why: {err}");
    // One of the two peer servers gone, the other still answering: refused.
    tb.kill_host(Host::ConsulServer);
    // Serf has marked consul1 failed and ICMP misses it.
    assert!(
        tb.wait_serf(Host::ConsulServer, member::FAILED, SLOW),
        "Serf never marked consul1 failed\n{}",
        tb.serf_logs()
    );
    let (code, out, err) = tb.run_habeat(&["recover", "--peer-dc-lost", "--yes"], SLOW);
    assert_eq!(code, Some(4), "refused while consul3 answers: {out}{err}");
    assert!(tb.service_calls().is_empty() && tb.peers_json().is_none());

    tb.partition();
    assert!(
        testbed::wait_until(PARTITION_SEEN, || !tb
            .events_of("peer_dc_unreachable")
            .is_empty()),
        "\n{}",
        tb.diagnostics()
    );
    // Without --yes and without a terminal: a usage error, nothing done.
    let (code, _, err) = tb.run_habeat(&["recover", "--peer-dc-lost"], SLOW);
    assert_eq!(code, Some(2), "{err}");
    // A dry run prints what it would do and changes nothing.
    let (code, out, err) = tb.run_habeat(&["--dry-run", "recover", "--peer-dc-lost"], SLOW);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("would recover Consul raft"), "{out}");
    assert!(tb.service_calls().is_empty() && tb.peers_json().is_none());
    assert!(tb.promote_calls().is_empty());
    // The operator says the DC is lost.
    let (code, out, err) = tb.run_habeat(&["recover", "--peer-dc-lost", "--yes"], SLOW);
    assert_eq!(code, Some(0), "recovered: {out}{err}");
    assert_eq!(tb.peers_json(), Some(expected_peers()));
    assert_eq!(tb.service_calls(), ["stop", "start"]);
    let operator_raft = tb.events_of("action_started").into_iter().any(|e| {
        e["action"]["kind"]["action"] == "raft_recovery" && e["action"]["origin"] == "operator"
    });
    assert!(
        operator_raft,
        "journaled as the operator's: {:?}",
        tb.events()
    );
    // The failover goes on through the gate, promptly and once.
    assert!(
        testbed::wait_until(SLOW, || promoted_everything(&tb)),
        "no promotion after the operator's recovery\n{}",
        tb.diagnostics()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(tb.promote_calls().len(), 1);
    assert_eq!(tb.service_calls().len(), 2);
}

#[test]
fn recover_peer_dc_lost_is_refused_while_the_local_consul_still_has_a_leader() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(two_plus_one(), bins());
    // Cut off from the primary DC, but a third site's server keeps this
    // side's quorum (1 + 1 + 1): the local agent still answers a leader.
    tb.partition();
    tb.set_local_leader(Some("10.254.0.9:8300"));
    // Serf marks the peer servers failed; ICMP misses them.
    for h in [Host::ConsulServer, Host::ConsulServer2] {
        assert!(
            tb.wait_serf(h, member::FAILED, SLOW),
            "Serf never marked {h:?} failed\n{}",
            tb.serf_logs()
        );
    }
    let (code, out, err) = tb.run_habeat(&["recover", "--peer-dc-lost", "--yes"], SLOW);
    assert_eq!(code, Some(4), "refused while a leader answers: {out}{err}");
    assert!(err.contains("leader"), "says why: {err}");
    assert!(
        tb.service_calls().is_empty() && tb.peers_json().is_none(),
        "raft left alone: {:?} {:?}",
        tb.service_calls(),
        tb.peers_json()
    );
    // The leader gone too: now the operator's word recovers raft.
    tb.set_local_leader(None);
    let (code, out, err) = tb.run_habeat(&["recover", "--peer-dc-lost", "--yes"], SLOW);
    assert_eq!(code, Some(0), "recovered: {out}{err}");
    assert_eq!(tb.service_calls(), ["stop", "start"]);
}

#[test]
fn fence_agent_showing_the_peer_servers_off_recovers_raft_and_showing_them_on_does_nothing() {
    if !require(&[Need::Netns, Need::SLAPD, Need::FENCE_DUMMY]) {
        return;
    }
    let tb = Testbed::start(
        Options {
            consul_fencing: true,
            ..two_plus_one()
        },
        bins(),
    );
    let _d = healthy_daemon(&tb);
    // A partition: the peer servers are powered on.
    tb.partition();
    assert!(
        testbed::wait_until(SLOW, || !tb.events_of("fence").is_empty()),
        "the fence agent was never asked\n{}",
        tb.diagnostics()
    );
    assert_nothing_for(&tb, GRACE * 4, "fence_dummy says ON");
    let fence = tb.events_of("fence");
    assert!(
        fence.iter().all(|e| e["confirmed"] == false),
        "never confirmed: {fence:?}"
    );
    let (code, out, err) = tb.run_habeat(&["status"], SLOW);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("fencing.consul") && out.contains("ON"),
        "status says why:\n{out}"
    );
    // The primary DC is lost: its servers are off.
    tb.set_consul_power(false);
    assert!(
        testbed::wait_until(SLOW * 2, || promoted_everything(&tb)),
        "no recovery and promotion once fence_dummy says OFF\n{}",
        tb.diagnostics()
    );
    assert_eq!(tb.peers_json(), Some(expected_peers()));
    assert_eq!(tb.service_calls(), ["stop", "start"]);
    assert!(
        tb.events_of("fence").iter().any(|e| e["confirmed"] == true),
        "the confirmed OFF is journaled"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(tb.promote_calls().len(), 1);
}
