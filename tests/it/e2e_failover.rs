//! Failover rehearsals, end to end: the real `habeat` binary (`run` and
//! `check`) against the testbed (tests/support/testbed.rs): a primary DC in
//! network namespaces, the Consul API test server whose Serf view follows
//! the links, the fake carbonio with accounts on the primary's mailstore.
//! One test per way a datacenter fails or seems to, each asserting what an
//! operator would see: which carbonio commands ran, how often, which lock
//! files exist, which hooks ran in which order, what `habeat status` says.
//!
//! Intervals are short (300 ms, fall 3, Serf 2 s) to keep the file fast.
//! The "30% packet loss for a minute" scenario runs for 20 s. Waits are
//! generous upper bounds ("it did not hang"); a scenario where nothing must
//! happen watches for a fixed window that covers Serf's delay plus several
//! fall × interval periods.

use crate::support;

use std::time::Duration;
use support::require;
use support::testbed::{self, Binaries, Daemon, Host, Options, Testbed};

const SLOW: Duration = Duration::from_secs(60);

fn bins() -> Binaries {
    Binaries::beside(std::path::Path::new(env!("CARGO_BIN_EXE_habeat")))
        .unwrap_or_else(|e| panic!("{e}"))
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

/// Start the daemon and wait until it sees the peer appserver Up.
fn healthy_daemon(tb: &Testbed) -> Daemon {
    let mut d = tb.spawn_daemon();
    testbed::wait_until(SLOW, || verdict(tb, "appserver") == "up" || !d.running());
    assert!(
        d.running() && verdict(tb, "appserver") == "up",
        "the daemon never saw the peer appserver Up\nstate.json: {:?}\n{}",
        tb.state_json(),
        tb.diagnostics()
    );
    d
}

fn promoted_everything(tb: &Testbed) -> bool {
    tb.accounts_on(testbed::SOURCE_HOST).is_empty()
        && tb.hook_lines().iter().any(|l| l == "after_promotion")
}

/// Watch for `window` that no promoteAccounts is issued.
fn assert_no_promotion_for(tb: &Testbed, window: Duration, why: &str) {
    let promoted = testbed::wait_until(window, || !tb.promote_calls().is_empty());
    assert!(
        !promoted,
        "{why}: promoteAccounts was issued: {:?}\n{}",
        tb.promote_calls(),
        tb.diagnostics()
    );
    assert_eq!(
        tb.accounts_on(testbed::SOURCE_HOST).len(),
        tb.opts.accounts.len(),
        "{why}: accounts moved"
    );
}

#[test]
fn appserver_host_dies_accounts_promoted_once_locks_written_proxy_switch_and_hooks_in_order() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(Options::default(), bins());
    let _d = healthy_daemon(&tb);
    tb.kill_host(Host::Appserver);
    assert!(
        testbed::wait_until(SLOW, || promoted_everything(&tb)),
        "no complete promotion after the appserver died\n{}",
        tb.diagnostics()
    );
    // A few more rounds: nothing is repeated.
    std::thread::sleep(Duration::from_secs(3));
    let promotes = tb.promote_calls();
    assert_eq!(promotes.len(), 1, "promoted once: {promotes:?}");
    assert!(
        promotes[0]
            .args
            .contains(&format!("source_mail_host {}", testbed::SOURCE_HOST)),
        "{promotes:?}"
    );
    assert_eq!(
        tb.accounts_on(testbed::REPLICA_HOST),
        tb.opts.accounts,
        "every account now lives on this DC's mailstore"
    );
    // The listing came before the promotion, the cache flushes after it.
    let calls = tb.calls();
    let pos = |needle: &str| calls.iter().position(|c| c.args.contains(needle));
    let listed = pos("getAccountStatus").expect("accounts listed");
    let promoted = pos("promoteAccounts").expect("promoted");
    assert!(listed < promoted, "{calls:?}");
    for a in &tb.opts.accounts {
        let flushed = calls
            .iter()
            .position(|c| c.program == "zmprov" && c.args.contains(a.as_str()));
        assert!(
            flushed.is_some_and(|f| f > promoted),
            "cache of {a} flushed after the promotion: {calls:?}"
        );
    }
    let locks = tb.lock_files();
    for l in [
        "appserverdown-habeat-appserver",
        "appserverprom-habeat-appserver",
    ] {
        assert!(locks.iter().any(|x| x == l), "{l} written: {locks:?}");
    }
    assert_eq!(
        tb.hook_lines(),
        vec!["proxy_activate", "after_promotion"],
        "proxy switch activate, then after_promotion, once each"
    );
    // The quorum gate was taken for this source host.
    let gate = format!("habeat/failover/{}", testbed::SOURCE_HOST);
    assert!(
        tb.consul()
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path == format!("/v1/kv/{gate}")),
        "the quorum gate {gate} was acquired"
    );
}

#[test]
fn partition_with_the_primary_alive_promotes_nothing_and_status_says_why() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(Options::default(), bins());
    let _d = healthy_daemon(&tb);
    tb.partition();
    // Every witness turns Down (links cut, Serf failed after 2 s), and the
    // gate must refuse because this side's Consul has no leader.
    assert!(
        testbed::wait_until(SLOW, || !tb.events_of("gate_refused").is_empty()),
        "the quorum gate was never tried and refused\n{}",
        tb.diagnostics()
    );
    assert_no_promotion_for(&tb, Duration::from_secs(4), "partition");
    let (code, out, err) = tb.run_habeat(&["status"], SLOW);
    assert_eq!(code, Some(0), "status: {out}{err}");
    assert!(
        out.to_lowercase().contains("quorum"),
        "status explains that this side has no Consul quorum:\n{out}"
    );
    assert!(tb.hook_lines().is_empty(), "no proxy switch, no hook");
    assert!(
        !tb.lock_files()
            .iter()
            .any(|l| l.starts_with("appserverprom")),
        "no promotion lock"
    );
}

#[test]
fn consul_api_down_while_the_appserver_is_unreachable_promotes_nothing() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(Options::default(), bins());
    let _d = healthy_daemon(&tb);
    tb.consul_down();
    tb.kill_host(Host::Appserver);
    // ICMP says Down; Consul's witnesses cannot be asked (Unknown): the
    // verdict must stay Unknown, never Down.
    assert_no_promotion_for(&tb, Duration::from_secs(8), "Consul API down");
    assert_ne!(verdict(&tb, "appserver"), "down");
    assert!(
        tb.events_of("promotion_intent").is_empty(),
        "no promotion intent recorded"
    );
}

#[test]
fn thirty_percent_packet_loss_promotes_nothing() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(Options::default(), bins());
    let _d = healthy_daemon(&tb);
    for h in Host::ALL {
        tb.packet_loss(h, 30);
    }
    // A minute, about 200 rounds: long enough for a lossy witness to turn
    // Down now and then; the others must keep the verdict from Down.
    assert_no_promotion_for(&tb, Duration::from_secs(60), "30% packet loss");
    assert!(tb.hook_lines().is_empty());
}

#[test]
fn a_link_flapping_faster_than_fall_promotes_nothing() {
    if !require(testbed::NEEDS) {
        return;
    }
    // Only the ICMP witness, so that nothing but its hysteresis stands
    // between the flap and a promotion. The kernel delays a link's "up"
    // (linkwatch batches carrier-up events, up to 1 s), so a 400 ms cut is
    // seen as up to ~1.4 s of silence, and the 2 s up phase as ~1 s of
    // answers: fall 8 × 300 ms (2.4 s) is still longer than any silence,
    // and every up phase holds at least one Up round.
    let tb = Testbed::start(
        Options {
            consul_witnesses: false,
            fall: 8,
            ..Options::default()
        },
        bins(),
    );
    let _d = healthy_daemon(&tb);
    let mut saw_down = false;
    {
        let _flap = tb.flap(
            Host::Appserver,
            Duration::from_millis(400),
            Duration::from_millis(2000),
        );
        let until = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < until {
            saw_down |= tb.state_json().is_some_and(|s| {
                s["witnesses"].as_array().is_some_and(|ws| {
                    ws.iter().any(|w| {
                        w["witness"]["component"] == "appserver"
                            && w["down_streak"].as_u64().unwrap_or(0) > 0
                    })
                })
            });
            assert!(
                tb.promote_calls().is_empty(),
                "flapping link caused a promotion\n{}",
                tb.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(
        saw_down,
        "the flap was seen by ICMP (else this test proves nothing)"
    );
    assert_no_promotion_for(&tb, Duration::from_secs(2), "flapping");
}

/// Invariant 10 with the Serf witnesses taken at one round
/// (`detection.serf_fall: 1`): Serf says `failed` and `alive` in turn,
/// about once a round, while the link flaps faster than ICMP's `fall`
/// (as in the test above). The Serf witnesses vote Down again and again;
/// ICMP never settles Down, and `quorum: all` needs it: nothing promoted.
/// `fall` 12 × 300 ms: a loaded machine once stalled every probe (of all
/// hosts, flapped or not) for 8 rounds, which made ICMP's Down real.
#[test]
fn serf_flapping_failed_and_alive_faster_than_icmp_fall_promotes_nothing() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            fall: 12,
            ..Options::default()
        },
        bins(),
    );
    let _d = healthy_daemon(&tb);
    let node = Host::Appserver.node();
    let (mut serf_down, mut icmp_down) = (false, false);
    {
        let _flap = tb.flap(
            Host::Appserver,
            Duration::from_millis(400),
            Duration::from_millis(2000),
        );
        let start = std::time::Instant::now();
        let mut failed = false;
        let mut flipped = start;
        while start.elapsed() < Duration::from_secs(15) {
            if flipped.elapsed() >= tb.opts.interval {
                failed = !failed;
                let status = if failed {
                    support::consul_api::member::FAILED
                } else {
                    support::consul_api::member::ALIVE
                };
                tb.consul().set_member_status(&node, status);
                flipped = std::time::Instant::now();
            }
            if let Some(s) = tb.state_json()
                && let Some(ws) = s["witnesses"].as_array()
            {
                for w in ws
                    .iter()
                    .filter(|w| w["witness"]["component"] == "appserver")
                {
                    match w["witness"]["kind"].as_str() {
                        Some("consul_members") => serf_down |= w["vote"] == "down",
                        Some("icmp") => icmp_down |= w["down_streak"].as_u64().unwrap_or(0) > 0,
                        _ => {}
                    }
                }
            }
            assert!(
                tb.promote_calls().is_empty(),
                "Serf flapping caused a promotion\n{}",
                tb.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        tb.consul()
            .set_member_status(&node, support::consul_api::member::ALIVE);
    }
    assert!(
        serf_down,
        "the Serf witness never voted Down (else this test proves nothing)\n{}",
        tb.diagnostics()
    );
    assert!(icmp_down, "the flap was seen by ICMP");
    assert_no_promotion_for(&tb, Duration::from_secs(2), "Serf flapping");
}

/// `consul_members` and `consul_health` report the same Serf gossip: one
/// source, one vote (`one-source-one-vote`). A timer `check` starts with
/// no settled vote (its witnesses start over, SPEC §4); the appserver
/// died before it, and Serf has marked it failed. With `quorum: 2` the two
/// Serf witnesses (`serf_fall: 1`) used to make the quorum alone in the
/// check's first round, and it promoted while ICMP (fall 20) had seen the
/// peer gone once. Now the verdict waits for ICMP's fall: the journal
/// shows ICMP's Down vote before the Down verdict, then the promotion.
/// No clock is asserted: only the order of the journal's events.
#[test]
fn with_quorum_two_the_serf_witnesses_are_one_vote_and_check_waits_for_icmp() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            roles: vec!["appserver"],
            fall: 20,
            quorum: Some(2),
            ..Options::default()
        },
        bins(),
    );
    tb.kill_host(Host::Appserver);
    // Let Serf declare the host failed before the timer fires.
    std::thread::sleep(tb.opts.serf_delay + Duration::from_millis(500));
    let (code, out, err) = tb.run_habeat(&["check"], SLOW);
    assert_eq!(code, Some(0), "check: {out}{err}\n{}", tb.diagnostics());
    assert!(
        promoted_everything(&tb),
        "check promoted\n{out}{err}\n{}",
        tb.diagnostics()
    );
    let events = tb.events();
    let first = |what: &dyn Fn(&serde_json::Value) -> bool| events.iter().position(what);
    let vote_down = |kind: &'static str| {
        move |e: &serde_json::Value| {
            e["event"] == "vote_changed"
                && e["witness"]["component"] == "appserver"
                && e["witness"]["kind"] == kind
                && e["to"] == "down"
        }
    };
    let down = first(&|e| {
        e["component"] == "appserver" && e["event"] == "verdict_changed" && e["to"] == "down"
    })
    .unwrap_or_else(|| panic!("no Down verdict journaled\n{}", tb.diagnostics()));
    let icmp = first(&vote_down("icmp"))
        .unwrap_or_else(|| panic!("ICMP never voted Down\n{}", tb.diagnostics()));
    let members = first(&vote_down("consul_members"))
        .unwrap_or_else(|| panic!("consul_members never voted Down\n{}", tb.diagnostics()));
    let health = first(&vote_down("consul_health"))
        .unwrap_or_else(|| panic!("consul_health never voted Down\n{}", tb.diagnostics()));
    assert!(
        members < icmp && health < icmp,
        "Serf said failed before ICMP settled (else this test proves nothing): members at \
         {members}, health at {health}, icmp at {icmp}\n{}",
        tb.diagnostics()
    );
    assert!(
        icmp < down,
        "the peer appserver was judged Down (event {down}) before ICMP voted Down (event \
         {icmp}): the two Serf witnesses made the quorum of 2 alone\n{:#?}",
        &events[..=down]
    );
    assert!(
        events[down]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 of 2 votes confirm it down")),
        "{}",
        events[down]
    );
    assert_eq!(tb.promote_calls().len(), 1, "promoted once");
    // `status --json` shows the votes as the engine counted them.
    let (code, out, err) = tb.run_habeat(&["--json", "status"], SLOW);
    assert_eq!(code, Some(0), "status: {err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(
        status["votes"]["appserver"],
        serde_json::json!({
            "count": 2,
            "needed": 2,
            "sources": [
                { "source": "icmp", "witnesses": ["appserver/icmp"], "vote": "down" },
                { "source": "serf",
                  "witnesses": ["appserver/consul_members", "appserver/consul_health"],
                  "vote": "down" },
            ],
        })
    );
}

#[test]
fn the_peer_comes_back_rearms_without_fail_back_and_no_second_promotion_within_the_block() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(Options::default(), bins());
    let _d = healthy_daemon(&tb);
    tb.kill_host(Host::Appserver);
    assert!(
        testbed::wait_until(SLOW, || promoted_everything(&tb)),
        "{}",
        tb.diagnostics()
    );
    tb.restore_host(Host::Appserver);
    assert!(
        testbed::wait_until(SLOW, || !tb.events_of("rearmed").is_empty()),
        "no re-arm after the peer came back\n{}",
        tb.diagnostics()
    );
    assert!(
        testbed::wait_until(SLOW, || !tb
            .lock_files()
            .iter()
            .any(|l| l.starts_with("appserverprom"))),
        "promotion lock removed: {:?}",
        tb.lock_files()
    );
    assert!(
        testbed::wait_until(SLOW, || tb
            .hook_lines()
            .iter()
            .any(|l| l == "on_peer_recovered")),
        "{:?}",
        tb.hook_lines()
    );
    // The re-arm runs the recovery hook after the failover's hooks. (The
    // proxy switch `deactivate` belongs to the proxyserver role's own
    // failover, which did not happen here: the proxy never went down.)
    let hooks = tb.hook_lines();
    assert_eq!(
        hooks.iter().filter(|l| *l == "on_peer_recovered").count(),
        1,
        "{hooks:?}"
    );
    assert_eq!(
        &hooks[..2],
        ["proxy_activate", "after_promotion"],
        "{hooks:?}"
    );
    assert_eq!(
        tb.accounts_on(testbed::REPLICA_HOST),
        tb.opts.accounts,
        "no automatic fail-back"
    );
    // An operator fails the accounts back by hand; the primary dies again
    // within promotion_block (1 h): no second automatic promotion.
    tb.fake_update(|s| {
        for a in &mut s.accounts {
            a.mail_host = testbed::SOURCE_HOST.into();
        }
    });
    tb.kill_host(Host::Appserver);
    assert_no_promotion_for_second(&tb);
}

fn assert_no_promotion_for_second(tb: &Testbed) {
    let second = testbed::wait_until(Duration::from_secs(8), || tb.promote_calls().len() > 1);
    assert!(
        !second,
        "a second promotion within promotion_block\n{}",
        tb.diagnostics()
    );
    assert_eq!(tb.promote_calls().len(), 1);
}

#[test]
fn primary_dc_never_promotes_but_stops_and_restarts_the_ha_module() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            roles: vec!["appserver"],
            this_dc_is_primary: true,
            ..Options::default()
        },
        bins(),
    );
    let _d = healthy_daemon(&tb);
    tb.kill_host(Host::Appserver);
    let stop = |tb: &Testbed| {
        tb.calls()
            .iter()
            .filter(|c| c.args.contains("doStopService"))
            .count()
    };
    assert!(
        testbed::wait_until(SLOW, || stop(&tb) == 1 && !tb.fake().module_running),
        "the HA module was not stopped\n{}",
        tb.diagnostics()
    );
    assert!(
        testbed::wait_until(SLOW, || tb
            .lock_files()
            .iter()
            .any(|l| l == "appserverrstopha")),
        "{:?}",
        tb.lock_files()
    );
    assert_no_promotion_for(&tb, Duration::from_secs(3), "primary DC");
    assert_eq!(stop(&tb), 1, "stopped once");
    tb.restore_host(Host::Appserver);
    assert!(
        testbed::wait_until(SLOW, || tb.fake().module_running),
        "the HA module was not restarted when the peer came back\n{}",
        tb.diagnostics()
    );
    assert!(testbed::wait_until(SLOW, || !tb
        .lock_files()
        .iter()
        .any(|l| l == "appserverrstopha")));
}

#[test]
fn kill_9_of_the_daemon_mid_promotion_and_restart_never_promotes_twice() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            promote_delay: Some(Duration::from_secs(4)),
            ..Options::default()
        },
        bins(),
    );
    let mut d = healthy_daemon(&tb);
    tb.kill_host(Host::Appserver);
    assert!(
        testbed::wait_until(SLOW, || !tb.promote_calls().is_empty()),
        "{}",
        tb.diagnostics()
    );
    d.kill9();
    let _d2 = tb.spawn_daemon();
    // The orphaned promoteAccounts finishes by itself after 4 s; the new
    // daemon must not issue another, neither before nor after (it sees the
    // running operation in `core getAllOperations` and waits for it), and
    // it must finish the failover the killed one started.
    assert!(testbed::wait_until(SLOW, || tb
        .accounts_on(testbed::SOURCE_HOST)
        .is_empty()));
    assert!(
        testbed::wait_until(SLOW, || promoted_everything(&tb)),
        "the restarted daemon did not finish the failover\n{}",
        tb.diagnostics()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        tb.promote_calls().len(),
        1,
        "promoteAccounts repeated after a crash\n{}",
        tb.diagnostics()
    );
    assert_eq!(
        tb.hook_lines(),
        vec!["proxy_activate", "after_promotion"],
        "{}",
        tb.diagnostics()
    );
}

#[test]
fn the_daemon_and_timer_checks_together_promote_once() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(Options::default(), bins());
    let _d = healthy_daemon(&tb);
    tb.kill_host(Host::Appserver);
    std::thread::scope(|s| {
        let checker = s.spawn(|| {
            let mut codes = Vec::new();
            let until = std::time::Instant::now() + Duration::from_secs(15);
            while std::time::Instant::now() < until {
                let (code, _, _) = tb.run_habeat(&["check"], SLOW);
                codes.push(code);
                std::thread::sleep(Duration::from_millis(200));
            }
            codes
        });
        assert!(
            testbed::wait_until(SLOW, || promoted_everything(&tb)),
            "{}",
            tb.diagnostics()
        );
        let codes = checker.join().expect("checker thread");
        assert!(codes.iter().all(|c| c.is_some()), "a check hung: {codes:?}");
    });
    assert_eq!(tb.promote_calls().len(), 1, "{}", tb.diagnostics());
    assert_eq!(
        tb.hook_lines(),
        vec!["proxy_activate", "after_promotion"],
        "hooks once; events:\n{}",
        tb.events()
            .iter()
            .filter(|e| e["event"] != "decision")
            .map(|e| format!("{} {} {}", e["at"], e["event"], e["message"]))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The carbonio/zmprov calls of one timer `check` after the appserver died,
/// with the given layout.
fn promotion_by_check(legacy: bool) -> Vec<String> {
    let tb = Testbed::start(
        Options {
            roles: vec!["appserver"],
            legacy_layout: legacy,
            interval: Duration::from_millis(500),
            ..Options::default()
        },
        bins(),
    );
    tb.kill_host(Host::Appserver);
    // Let Serf declare the host failed before the timer fires.
    std::thread::sleep(tb.opts.serf_delay + Duration::from_millis(500));
    let (code, out, err) = tb.run_habeat(&["check"], SLOW);
    assert_eq!(
        code,
        Some(0),
        "check (legacy layout: {legacy}): {out}{err}\n{}",
        tb.diagnostics()
    );
    assert!(
        tb.accounts_on(testbed::SOURCE_HOST).is_empty(),
        "check (legacy: {legacy}) promoted\n{}",
        tb.diagnostics()
    );
    assert!(
        tb.lock_files()
            .iter()
            .any(|l| l == "appserverprom-habeat-appserver"),
        "{:?}",
        tb.lock_files()
    );
    assert_eq!(
        tb.hook_lines().first().map(String::as_str),
        Some("proxy_activate")
    );
    tb.calls()
        .into_iter()
        .map(|c| format!("{} {}", c.program, c.args))
        .collect()
}

#[test]
fn the_legacy_habeat_yml_drives_the_same_promotion_as_the_new_layout() {
    if !require(testbed::NEEDS) {
        return;
    }
    let legacy = promotion_by_check(true);
    let new = promotion_by_check(false);
    assert!(
        legacy
            .iter()
            .filter(|c| c.contains("promoteAccounts"))
            .count()
            == 1,
        "{legacy:?}"
    );
    assert_eq!(legacy, new, "the same carbonio commands in the same order");
}
