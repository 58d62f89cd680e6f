//! Each branch of SPEC section 4, named as an operator would describe it.

use crate::engine_harness;

use engine_harness::*;
use habeat::config::{Quorum, Rearm};
use habeat::engine::{
    ActionKind, Blocked, EventKind, Idle, Input, LockFileSeen, LockKind, OperatorCommand,
    PromoteTarget, RaftWait, State, StepStatus, Waiting,
};
use habeat::model::{Component, RaftRecoveryPolicy, RaftServer, Role, Verdict, Vote, WitnessKind};
use std::time::Duration;

const ACCOUNTS: [&str; 3] = ["a@example.com", "b@example.com", "c@example.com"];

fn down() -> Vec<habeat::model::Observation> {
    all(Component::Appserver, Vote::Down)
}
fn up() -> Vec<habeat::model::Observation> {
    all(Component::Appserver, Vote::Up)
}

#[test]
fn peer_appserver_down_promotes_its_accounts_then_runs_every_follow_up_in_order() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    assert!(
        sim.rounds(2, down()).is_empty(),
        "no action before fall rounds"
    );
    let ran = sim.round(down());
    assert_eq!(
        names(&ran),
        [
            "list",
            "gate",
            "promote",
            "locks",
            "flush",
            "pause-replicas",
            "restart-replicas",
            "run:bgp-announce",
            "run:notify-promoted",
            "run:page-oncall",
            "release"
        ]
    );
    assert_eq!(sim.world.promoted, ACCOUNTS);
    assert!(sim.world.on_source.is_empty());
    // The intent was recorded before the promotion ran.
    let intent = sim
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::PromotionIntent { .. }))
        .expect("intent event");
    let promote = sim
        .events
        .iter()
        .position(
            |e| matches!(&e.kind, EventKind::ActionStarted { action } if is_promote(&action.kind)),
        )
        .expect("promote event");
    assert!(intent < promote);
    // Flush uses -a only when configured, and lists the promoted accounts.
    assert!(ran.iter().any(|k| matches!(k, ActionKind::FlushCache { accounts, all_servers: false } if accounts.len() == 3)));
}

#[test]
fn promotion_recorded_and_not_rearmed_does_nothing_on_later_outages() {
    let mut cfg = appserver_config();
    cfg.rearm = Rearm::Manual;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.rounds(3, down());
    sim.world.on_source = vec!["late@example.com".into()];
    sim.advance(Duration::from_secs(2 * 3600));
    let ran = sim.rounds(10, down());
    assert!(ran.is_empty(), "ran {:?}", names(&ran));
    assert!(
        matches!(sim.reason(), Some(Idle::Recorded { .. })),
        "{}",
        sim.why()
    );
}

#[test]
fn peer_unreachable_but_consul_alive_does_not_promote() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    let round = vec![
        obs(Component::Appserver, WitnessKind::Icmp, Vote::Down),
        obs(Component::Appserver, WitnessKind::ConsulMembers, Vote::Up),
        obs(Component::Appserver, WitnessKind::ConsulHealth, Vote::Up),
    ];
    let ran = sim.rounds(20, round);
    assert!(ran.is_empty());
    assert!(sim.world.promoted.is_empty());
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::PeerNotDown {
                component: Component::Appserver,
                verdict: Verdict::Up
            })
        ),
        "{}",
        sim.why()
    );
}

#[test]
fn consul_unreachable_gives_unknown_and_never_promotes() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    let round = vec![
        obs(Component::Appserver, WitnessKind::Icmp, Vote::Down),
        obs(
            Component::Appserver,
            WitnessKind::ConsulMembers,
            Vote::Unknown,
        ),
        obs(
            Component::Appserver,
            WitnessKind::ConsulHealth,
            Vote::Unknown,
        ),
    ];
    assert!(sim.rounds(20, round).is_empty());
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::PeerNotDown {
                verdict: Verdict::Unknown,
                ..
            })
        ),
        "{}",
        sim.why()
    );
}

#[test]
fn quorum_of_two_promotes_with_one_witness_unsure_but_never_with_one_up() {
    let mut cfg = appserver_config();
    cfg.quorum = Quorum::AtLeast(2);
    // Three votes (ICMP, the TCP probe, Serf: its two witnesses are one
    // source), the TCP probe unsure: two independent Down votes.
    let unsure = vec![
        obs(Component::Appserver, WitnessKind::Icmp, Vote::Down),
        obs(
            Component::Appserver,
            WitnessKind::Tcp { port: 7071 },
            Vote::Unknown,
        ),
        obs(Component::Appserver, WitnessKind::ConsulMembers, Vote::Down),
        obs(Component::Appserver, WitnessKind::ConsulHealth, Vote::Down),
    ];
    let mut sim = Sim::new(cfg.clone(), World::new(&ACCOUNTS));
    assert!(sim.rounds(3, unsure).iter().any(is_promote));

    let one_up = vec![
        obs(Component::Appserver, WitnessKind::Icmp, Vote::Down),
        obs(Component::Appserver, WitnessKind::ConsulMembers, Vote::Down),
        obs(Component::Appserver, WitnessKind::ConsulHealth, Vote::Up),
    ];
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    assert!(sim.rounds(10, one_up).is_empty());
}

#[test]
fn a_single_fresh_sighting_of_the_peer_vetoes_down() {
    let mut cfg = appserver_config();
    cfg.quorum = Quorum::AtLeast(2);
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.rounds(2, down());
    // tcp answered once: not settled Up, but it saw the peer alive.
    let mut r = down();
    r[2] = obs(Component::Appserver, WitnessKind::ConsulHealth, Vote::Up);
    assert!(sim.round(r).is_empty());
}

#[test]
fn primary_dc_never_promotes() {
    let mut cfg = appserver_config();
    cfg.whoami = "primary".into();
    cfg.dc_check = "secondary".into();
    cfg.is_primary = true;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    assert!(sim.rounds(20, down()).is_empty());
    assert_eq!(
        sim.reason(),
        Some(Idle::PrimaryNeverPromotes),
        "{}",
        sim.why()
    );
}

#[test]
fn primary_dc_stops_the_ha_module_once_and_starts_it_when_the_peer_returns() {
    let mut cfg = appserver_config();
    cfg.is_primary = true;
    cfg.disable_ha_module = true;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    let ran = sim.rounds(20, down());
    assert_eq!(names(&ran), ["stop-ha", "locks"]);
    assert!(
        matches!(&ran[1], ActionKind::WriteLocks { locks, .. } if locks == &[LockKind::RestartReplica])
    );
    assert!(sim.world.promoted.is_empty());
    let ran = sim.rounds(3, up());
    assert_eq!(names(&ran), ["start-ha", "unlock", "run:notify-recovered"]);
    assert!(
        matches!(&ran[1], ActionKind::RemoveLocks { locks } if locks == &[LockKind::RestartReplica])
    );
}

#[test]
fn second_outage_within_promotion_block_does_not_promote() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    assert!(sim.rounds(3, down()).iter().any(is_promote));
    // Peer returns: auto re-arm, then fails again 10 minutes later.
    sim.rounds(3, up());
    sim.world.on_source = vec!["d@example.com".into()];
    sim.advance(Duration::from_secs(600));
    let ran = sim.rounds(10, down());
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    assert!(
        matches!(sim.reason(), Some(Idle::PromotionBlocked { .. })),
        "{}",
        sim.why()
    );
    // Also after a restart (the block is in state.json).
    sim.restart();
    assert!(!sim.rounds(10, down()).iter().any(is_promote));
    // After the block, a new automatic promotion is allowed.
    sim.advance(Duration::from_secs(3600));
    assert!(sim.rounds(3, down()).iter().any(is_promote));
}

#[test]
fn peer_back_with_auto_rearm_removes_locks_and_runs_recovery_hooks_but_never_fails_back() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, down());
    let ran = sim.rounds(1, up());
    assert!(
        ran.is_empty(),
        "one Up round is not settled: {:?}",
        names(&ran)
    );
    let ran = sim.rounds(1, up());
    assert_eq!(names(&ran), ["unlock", "run:notify-recovered"]);
    assert!(
        matches!(&ran[0], ActionKind::RemoveLocks { locks } if locks == &[LockKind::Down, LockKind::Promotion])
    );
    assert!(sim.world.on_source.is_empty(), "accounts stay promoted");
    assert!(
        !sim.world
            .log
            .iter()
            .any(|k| matches!(k, ActionKind::RunCommand { argv, .. } if argv[0] == "bgp-withdraw"))
    );
    assert!(sim.state.role(Role::Appserver).failover.is_none());
}

#[test]
fn manual_rearm_waits_for_the_operator() {
    let mut cfg = appserver_config();
    cfg.rearm = Rearm::Manual;
    cfg.promotion_block = Duration::ZERO;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.rounds(3, down());
    assert!(sim.rounds(5, up()).is_empty());
    assert!(
        matches!(sim.reason(), Some(Idle::PeerBackRearmManual { .. })),
        "{}",
        sim.why()
    );
    let ran = sim.operator(OperatorCommand::Rearm);
    assert_eq!(
        names(&ran),
        ["unlock"],
        "operator rearm runs no recovery hooks"
    );
    sim.world.on_source = vec!["d@example.com".into()];
    assert!(sim.rounds(3, down()).iter().any(is_promote));
}

#[test]
fn no_accounts_on_source_logs_and_does_nothing() {
    let mut sim = Sim::new(appserver_config(), World::new(&[]));
    let ran = sim.rounds(3, down());
    assert_eq!(names(&ran), ["list"]);
    assert!(
        sim.events
            .iter()
            .any(|e| e.message.contains("no accounts on mbox1.example.com"))
    );
    assert!(sim.state.role(Role::Appserver).failover.is_none());
    // Listing again only after retry_delay, not every round.
    let d = sim.cfg.retry_delay;
    assert_eq!(names(&sim.rounds_for(d, down())), ["list"]);
}

#[test]
fn bad_listing_output_is_an_error_event_and_is_retried_later() {
    let mut w = World::new(&ACCOUNTS);
    w.listing_broken = true;
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert_eq!(names(&ran), ["list"]);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ActionFailed { .. })
                && e.severity == habeat::engine::Severity::Error)
    );
    assert!(sim.world.promoted.is_empty());
    sim.world.listing_broken = false;
    assert!(
        sim.rounds_for(sim.cfg.retry_delay, down())
            .iter()
            .any(is_promote)
    );
}

#[test]
fn quorum_gate_refused_means_no_promotion_and_status_says_why() {
    let mut w = World::new(&ACCOUNTS);
    w.quorum = false;
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert_eq!(names(&ran), ["list", "gate"]);
    assert!(sim.world.promoted.is_empty());
    assert!(
        sim.events
            .iter()
            .any(|e| e.message.contains("cannot prove the peer is gone"))
    );
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::StepWaiting {
                waiting: Waiting::GateRefused { .. },
                ..
            }) | Some(Idle::RetryWait { .. })
        ),
        "{}",
        sim.why()
    );
    // Quorum regained (raft recovered): the intent proceeds.
    sim.world.quorum = true;
    assert!(
        sim.rounds_for(sim.cfg.retry_delay, down())
            .iter()
            .any(is_promote)
    );
    assert_eq!(sim.world.promoted.len(), 3);
}

#[test]
fn quorum_gate_disabled_acts_on_witnesses_alone() {
    let mut cfg = appserver_config();
    cfg.quorum_gate = false;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    let ran = sim.rounds(3, down());
    assert!(!names(&ran).contains(&"gate".to_string()));
    assert!(ran.iter().any(is_promote));
}

#[test]
fn gate_refused_then_peer_returns_drops_the_intent_without_a_promotion_record() {
    let mut w = World::new(&ACCOUNTS);
    w.quorum = false;
    let mut cfg = appserver_config();
    cfg.rearm = Rearm::Manual;
    let mut sim = Sim::new(cfg, w);
    sim.rounds(3, down());
    assert!(sim.state.role(Role::Appserver).failover.is_some());
    sim.rounds(2, up());
    assert!(sim.state.role(Role::Appserver).failover.is_none());
    assert!(
        sim.state.last_promotion.is_none(),
        "nothing was promoted: no block"
    );
}

#[test]
fn pause_blocks_automatic_action_and_ends_by_itself() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    let until = sim.now.plus(Duration::from_secs(60));
    sim.operator(OperatorCommand::Pause {
        until,
        reason: "maintenance".into(),
    });
    assert!(sim.rounds(10, down()).is_empty());
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::Blocked {
                blocked: Blocked::Paused { .. }
            }) | Some(Idle::PipelineBlocked {
                blocked: Blocked::Paused { .. },
                ..
            })
        ),
        "{}",
        sim.why()
    );
    let ran = sim.rounds_for(Duration::from_secs(60), down());
    assert!(ran.iter().any(is_promote), "{:?}", names(&ran));
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PauseEnded))
    );
}

#[test]
fn resume_does_not_act_on_old_verdicts_until_a_new_round() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.operator(OperatorCommand::Pause {
        until: sim.now.plus(Duration::from_secs(3600)),
        reason: "maintenance".into(),
    });
    sim.rounds(5, down());
    assert!(sim.operator(OperatorCommand::Resume).is_empty());
    assert!(sim.rounds(1, down()).iter().any(is_promote));
}

#[test]
fn crash_during_promote_accounts_relists_and_promotes_the_rest_in_the_same_record() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, down());
    // Third round: run the chain by hand up to the promotion, which dies
    // half-way (two accounts moved, then kill -9).
    let mut next = sim.round_step(down());
    while let Some(a) = next.clone() {
        if is_promote(&a.kind) {
            break;
        }
        let r = sim.world.run(&a);
        next = sim.feed_one(Input::Outcome(habeat::engine::ActionOutcome {
            id: a.id,
            result: r,
        }));
    }
    let pid = sim.state.role(Role::Appserver).failover.expect("record").id;
    let moved: Vec<String> = sim.world.on_source.drain(..2).collect();
    sim.world.promoted.extend(moved);
    sim.restart();

    let ran = sim.rounds(3, down());
    // The server is asked first whether the killed promotion still runs.
    assert_eq!(names(&ran)[..4], ["ops", "list", "gate", "promote"]);
    assert_eq!(
        sim.world.promoted, ACCOUNTS,
        "each account promoted exactly once"
    );
    let rec = sim.state.role(Role::Appserver).failover.expect("record");
    assert_eq!(rec.id, pid, "never a second promotion record");
    assert!(rec.steps.iter().all(|s| s.status == StepStatus::Done));
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Interrupted { .. }))
    );
}

#[test]
fn a_promotion_still_running_on_the_server_after_a_crash_is_waited_for_not_repeated() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, down());
    let mut next = sim.round_step(down());
    while let Some(a) = next.clone() {
        if is_promote(&a.kind) {
            break; // promoteAccounts started, then habeat was killed
        }
        let r = sim.world.run(&a);
        next = sim.feed_one(Input::Outcome(habeat::engine::ActionOutcome {
            id: a.id,
            result: r,
        }));
    }
    // The killed habeat's promotion goes on on the mailbox server.
    sim.world.operations = vec!["PromoteAccounts (op-1)".into()];
    sim.restart();
    let ran = sim.rounds_for(Duration::from_secs(60), down());
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    assert!(names(&ran).iter().all(|n| n == "ops"), "{:?}", names(&ran));
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::StepWaiting {
                waiting: Waiting::PromotionRunning { .. },
                ..
            })
        ),
        "{}",
        sim.why()
    );
    // It finishes; habeat sees nothing left and goes on with the rest.
    sim.world.operations.clear();
    sim.world.promoted.append(&mut sim.world.on_source);
    let ran = sim.rounds_for(Duration::from_secs(30), down());
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    assert!(
        names(&ran).contains(&"locks".to_string()),
        "{:?}",
        names(&ran)
    );
    assert_eq!(sim.world.promoted, ACCOUNTS);
}

#[test]
fn crash_after_promote_when_source_is_empty_marks_the_step_done_without_promoting_again() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, down());
    let mut next = sim.round_step(down());
    while let Some(a) = next.clone() {
        let r = sim.world.run(&a);
        if is_promote(&a.kind) {
            break; // the promotion completed, then habeat died before recording it
        }
        next = sim.feed_one(Input::Outcome(habeat::engine::ActionOutcome {
            id: a.id,
            result: r,
        }));
    }
    sim.restart();
    let ran = sim.rounds(3, down());
    assert_eq!(names(&ran)[..2], ["ops", "list"]);
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    assert!(names(&ran).contains(&"locks".to_string()));
}

#[test]
fn crash_at_every_step_resumes_at_the_first_unfinished_step_and_never_repeats_a_finished_one() {
    for crash_at in 0..11 {
        let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
        sim.rounds(2, down());
        let mut next = sim.round_step(down());
        let mut done = Vec::new();
        let mut n = 0;
        while let Some(a) = next.clone() {
            if n == crash_at {
                break; // killed before this action ran
            }
            let r = sim.world.run(&a);
            done.push(a.clone());
            next = sim.feed_one(Input::Outcome(habeat::engine::ActionOutcome {
                id: a.id,
                result: r,
            }));
            n += 1;
        }
        sim.restart();
        let after = sim.rounds(4, down());
        let all: Vec<String> = names(&done.iter().map(|a| a.kind.clone()).collect::<Vec<_>>())
            .into_iter()
            .chain(names(&after))
            .filter(|n| !["ops", "list", "gate", "release"].contains(&n.as_str()))
            .collect();
        assert_eq!(
            all,
            [
                "promote",
                "locks",
                "flush",
                "pause-replicas",
                "restart-replicas",
                "run:bgp-announce",
                "run:notify-promoted",
                "run:page-oncall"
            ],
            "crash before action {crash_at}"
        );
        assert_eq!(sim.world.promoted, ACCOUNTS);
    }
}

#[test]
fn a_failed_hook_is_reported_not_retried_and_the_following_steps_still_run() {
    let mut w = World::new(&ACCOUNTS);
    w.failing =
        vec![|k| matches!(k, ActionKind::RunCommand { argv, .. } if argv[0] == "notify-promoted")];
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert!(names(&ran).contains(&"run:page-oncall".to_string()));
    assert!(sim.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::ActionFailed {
            will_retry: false,
            ..
        }
    )));
    sim.advance(Duration::from_secs(3600));
    let again = sim.rounds(3, down());
    assert!(again.is_empty(), "{:?}", names(&again));
    let rec = sim.state.role(Role::Appserver).failover.expect("record");
    assert!(rec.steps.iter().any(|s| s.status == StepStatus::GaveUp));
}

#[test]
fn promotion_failing_three_times_stops_and_asks_for_an_operator() {
    let mut w = World::new(&ACCOUNTS);
    w.failing = vec![is_promote];
    let mut sim = Sim::new(appserver_config(), w);
    let mut promotes = 0;
    for _ in 0..6 {
        let d = sim.cfg.retry_delay;
        promotes += sim
            .rounds_for(d, down())
            .iter()
            .filter(|k| is_promote(k))
            .count();
    }
    assert_eq!(promotes, 3);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PipelineStalled { .. }))
    );
    assert!(
        matches!(
            &sim.reason(),
            Some(Idle::Stalled {
                why: habeat::engine::Stall::GaveUp {
                    source_mail_host: Some(_),
                    ..
                },
                ..
            })
        ),
        "{}",
        sim.why()
    );
}

#[test]
fn a_failed_lock_write_is_retried_later() {
    let mut w = World::new(&ACCOUNTS);
    w.failing = vec![|k| matches!(k, ActionKind::WriteLocks { .. })];
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert_eq!(names(&ran).last().map(String::as_str), Some("release"));
    assert!(!names(&ran).contains(&"flush".to_string()));
    sim.world.failing.clear();
    let ran = sim.rounds_for(sim.cfg.retry_delay, down());
    assert_eq!(names(&ran)[0], "locks");
    assert!(names(&ran).contains(&"flush".to_string()));
}

#[test]
fn flapping_peer_never_triggers_action() {
    let mut sim = Sim::new(full_config(), World::new(&ACCOUNTS));
    for i in 0..200 {
        let v = if i % 3 == 2 { Vote::Up } else { Vote::Down };
        let mut r = all(Component::Appserver, v);
        r.extend(all(Component::Proxy, v));
        r.extend(all(Component::Consul, v));
        assert!(sim.round_with(r, Some(false), None).is_empty());
    }
}

#[test]
fn peer_proxy_down_switches_traffic_and_switches_back_when_it_returns() {
    let mut cfg = full_config();
    cfg.roles = vec![Role::Proxyserver];
    let mut sim = Sim::new(cfg, World::new(&[]));
    let ran = sim.rounds(3, all(Component::Proxy, Vote::Down));
    assert_eq!(
        names(&ran),
        ["gate", "run:bgp-announce", "locks", "release"]
    );
    assert!(sim.rounds(5, all(Component::Proxy, Vote::Down)).is_empty());
    let ran = sim.rounds(2, all(Component::Proxy, Vote::Up));
    assert_eq!(
        names(&ran),
        ["run:bgp-withdraw", "unlock", "run:notify-recovered"]
    );
}

#[test]
fn proxy_switch_without_activation_only_writes_the_locks() {
    let mut cfg = full_config();
    cfg.roles = vec![Role::Proxyserver];
    cfg.proxy_enable_activate = false;
    let mut sim = Sim::new(cfg, World::new(&[]));
    let ran = sim.rounds(3, all(Component::Proxy, Vote::Down));
    assert_eq!(names(&ran), ["locks"]);
}

fn raft() -> Vec<RaftServer> {
    ["svc1", "svc2", "svc3"]
        .iter()
        .enumerate()
        .map(|(i, n)| RaftServer {
            id: format!("id-{n}"),
            node: format!("server-{n}-example-com"),
            address: format!("10.0.0.{}:8300", i + 1),
            leader: i == 0,
            voter: true,
        })
        .collect()
}

fn consul_cfg() -> habeat::engine::EngineConfig {
    let mut cfg = full_config();
    cfg.roles = vec![Role::Consulserver];
    cfg
}

/// The old rule (`safety.raft_recovery: timer`): the grace period alone.
fn timer_cfg() -> habeat::engine::EngineConfig {
    let mut cfg = consul_cfg();
    cfg.raft_recovery = RaftRecoveryPolicy::Timer;
    cfg
}

fn unreachable_events(sim: &Sim) -> usize {
    sim.events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::PeerDcUnreachable { .. }))
        .count()
}

#[test]
fn by_default_raft_is_never_recovered_on_time_alone_and_the_operator_is_told_once() {
    let mut sim = Sim::new(consul_cfg(), World::new(&[]));
    sim.round_with(all(Component::Consul, Vote::Up), Some(true), Some(raft()));
    let mut ran = Vec::new();
    // Ten times recovery_grace.
    for _ in 0..300 {
        ran.extend(sim.round_with(all(Component::Consul, Vote::Down), Some(false), None));
    }
    assert!(
        ran.is_empty(),
        "nothing done on time alone: {:?}",
        names(&ran)
    );
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::RaftNotReady {
                wait: RaftWait::Unconfirmed { .. }
            })
        ),
        "{}",
        sim.why()
    );
    let why = sim.why();
    for needle in [
        "cannot tell a partition",
        "witnesses.command",
        "fencing.consul",
        "habeat recover --peer-dc-lost",
    ] {
        assert!(why.contains(needle), "status names {needle:?}: {why}");
    }
    assert_eq!(unreachable_events(&sim), 1, "peer_dc_unreachable once");
    // A restart does not raise it again for the same episode.
    sim.restart();
    for _ in 0..10 {
        sim.round_with(all(Component::Consul, Vote::Down), Some(false), None);
    }
    assert_eq!(unreachable_events(&sim), 1);
    // A leader seen, then a new leaderless episode: told again, once.
    sim.round_with(all(Component::Consul, Vote::Down), Some(true), None);
    for _ in 0..60 {
        sim.round_with(all(Component::Consul, Vote::Down), Some(false), None);
    }
    assert_eq!(unreachable_events(&sim), 2);
}

#[test]
fn raft_recovery_operator_never_recovers_by_itself_even_with_the_arbiter_down() {
    let mut cfg = consul_cfg();
    cfg.raft_recovery = RaftRecoveryPolicy::Operator;
    cfg.command_witness = true;
    let mut sim = Sim::new(cfg, World::new(&[]));
    let mut r = all(Component::Consul, Vote::Down);
    r.push(obs(Component::Consul, WitnessKind::Command, Vote::Down));
    let ran: Vec<_> = (0..200)
        .flat_map(|_| sim.round_with(r.clone(), Some(false), None))
        .collect();
    assert!(ran.is_empty(), "{:?}", names(&ran));
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::RaftNotReady {
                wait: RaftWait::OperatorOnly { .. }
            })
        ),
        "{}",
        sim.why()
    );
    assert_eq!(unreachable_events(&sim), 1);
}

#[test]
fn the_arbiter_down_confirms_a_lost_dc_and_raft_is_recovered_after_the_grace() {
    let mut cfg = consul_cfg();
    cfg.command_witness = true;
    let mut sim = Sim::new(cfg, World::new(&[]));
    sim.round_with(all(Component::Consul, Vote::Up), Some(true), Some(raft()));
    let mut r = all(Component::Consul, Vote::Down);
    r.push(obs(Component::Consul, WitnessKind::Command, Vote::Down));
    let ran: Vec<_> = (0..60)
        .flat_map(|_| sim.round_with(r.clone(), Some(false), None))
        .collect();
    assert_eq!(names(&ran), ["raft-recovery", "confirm-leader", "locks"]);
    assert_eq!(unreachable_events(&sim), 0, "confirmed: nothing to tell");
}

fn consul_fenced_cfg() -> habeat::engine::EngineConfig {
    let mut cfg = consul_cfg();
    cfg.fencing.insert(
        Component::Consul,
        habeat::engine::FencePlan {
            action: habeat::model::FenceAction::Status,
            plugs: vec!["svc1".into(), "svc3".into()],
        },
    );
    cfg
}

#[test]
fn fencing_consul_confirming_every_peer_server_off_opens_the_raft_recovery() {
    let mut sim = Sim::new(consul_fenced_cfg(), World::new(&[]));
    sim.round_with(all(Component::Consul, Vote::Up), Some(true), Some(raft()));
    let ran: Vec<_> = (0..60)
        .flat_map(|_| sim.round_with(all(Component::Consul, Vote::Down), Some(false), None))
        .collect();
    assert_eq!(
        names(&ran),
        ["fence", "raft-recovery", "confirm-leader", "locks"]
    );
    match &ran[0] {
        ActionKind::Fence {
            component, plugs, ..
        } => {
            assert_eq!(*component, Component::Consul);
            assert_eq!(plugs, &["svc1", "svc3"]);
        }
        _ => unreachable!(),
    }
}

#[test]
fn fencing_consul_not_confirming_off_means_no_raft_recovery_retried_and_explained() {
    let mut w = World::new(&[]);
    w.fence_confirms = false;
    let mut sim = Sim::new(consul_fenced_cfg(), w);
    sim.round_with(all(Component::Consul, Vote::Up), Some(true), Some(raft()));
    let mut ran = Vec::new();
    for _ in 0..300 {
        ran.extend(sim.round_with(all(Component::Consul, Vote::Down), Some(false), None));
    }
    assert!(
        ran.iter().all(|k| matches!(k, ActionKind::Fence { .. })),
        "only fence attempts: {:?}",
        names(&ran)
    );
    assert!(ran.len() >= 2, "retried: {:?}", names(&ran));
    assert!(sim.why().contains("ON"), "status says why: {}", sim.why());
    // The peer comes back: the intent is dropped, nothing was recovered.
    for _ in 0..5 {
        ran.extend(sim.round_with(all(Component::Consul, Vote::Up), Some(false), None));
    }
    assert!(
        !ran.iter()
            .any(|k| matches!(k, ActionKind::RaftRecovery { .. }))
    );
    assert!(sim.state.role(Role::Consulserver).failover.is_none());
}

fn recover_cmd(v: Vote) -> OperatorCommand {
    OperatorCommand::RecoverPeerDcLost {
        evidence: all(Component::Consul, v),
        local_leader: Some(false),
    }
}

#[test]
fn recover_peer_dc_lost_is_refused_while_a_witness_sees_a_peer_server_up() {
    let mut sim = Sim::new(consul_cfg(), World::new(&[]));
    sim.round_with(all(Component::Consul, Vote::Up), Some(true), Some(raft()));
    for _ in 0..40 {
        sim.round_with(all(Component::Consul, Vote::Down), Some(false), None);
    }
    let mut evidence = all(Component::Consul, Vote::Down);
    evidence.push(obs(Component::Consul, WitnessKind::Icmp, Vote::Up));
    let t = habeat::engine::step(
        &sim.state,
        &sim.live,
        &Input::Operator(OperatorCommand::RecoverPeerDcLost {
            evidence,
            local_leader: Some(false),
        }),
        sim.now,
        &sim.cfg,
    );
    assert!(t.actions.is_empty());
    assert!(
        matches!(
            t.refusal,
            Some(habeat::engine::OperatorRefusal::PeerConsulUp { .. })
        ),
        "{:?}",
        t.refusal
    );
    assert!(t.state.role(Role::Consulserver).failover.is_none());
    // No evidence at all is no evidence either.
    let t = habeat::engine::step(
        &sim.state,
        &sim.live,
        &Input::Operator(OperatorCommand::RecoverPeerDcLost {
            evidence: vec![],
            local_leader: Some(false),
        }),
        sim.now,
        &sim.cfg,
    );
    assert!(t.refusal.is_some() && t.actions.is_empty());
    // Every peer server Down, but the local agent reports a leader: raft
    // has its quorum (a third site), nothing to recover.
    let t = habeat::engine::step(
        &sim.state,
        &sim.live,
        &Input::Operator(OperatorCommand::RecoverPeerDcLost {
            evidence: all(Component::Consul, Vote::Down),
            local_leader: Some(true),
        }),
        sim.now,
        &sim.cfg,
    );
    assert!(
        matches!(
            t.refusal,
            Some(habeat::engine::OperatorRefusal::LocalLeader)
        ),
        "{:?}",
        t.refusal
    );
    assert!(t.actions.is_empty());
    assert!(t.state.role(Role::Consulserver).failover.is_none());
}

#[test]
fn recover_peer_dc_lost_runs_the_recovery_as_the_operators_and_clears_retry_waits() {
    let mut cfg = consul_cfg();
    cfg.roles = vec![Role::Appserver, Role::Consulserver];
    let mut w = World::new(&ACCOUNTS);
    // This side has no Consul majority: the gate is refused.
    w.quorum = false;
    let mut sim = Sim::new(cfg, w);
    let mut up = all(Component::Consul, Vote::Up);
    up.extend(all(Component::Appserver, Vote::Up));
    sim.round_with(up, Some(true), Some(raft()));
    let mut down = all(Component::Consul, Vote::Down);
    down.extend(all(Component::Appserver, Vote::Down));
    for _ in 0..40 {
        sim.round_with(down.clone(), Some(false), None);
    }
    assert!(
        sim.state.role(Role::Appserver).retry_at.is_some(),
        "gate refused"
    );
    assert!(sim.world.promoted.is_empty());
    sim.world.quorum = true;
    let ran = sim.operator(recover_cmd(Vote::Down));
    assert_eq!(names(&ran), ["raft-recovery", "confirm-leader", "locks"]);
    let p = sim
        .state
        .role(Role::Consulserver)
        .failover
        .expect("recorded");
    assert_eq!(p.origin, habeat::engine::Origin::Operator);
    assert!(sim.state.role(Role::Appserver).retry_at.is_none());
    // The next round promotes through the gate, without waiting.
    let ran = sim.round_with(down.clone(), Some(true), None);
    assert_eq!(
        ran.iter().filter(|k| is_promote(k)).count(),
        1,
        "{:?}",
        names(&ran)
    );
}

#[test]
fn a_peer_consul_server_seen_again_after_a_recovery_is_one_event_and_a_warning() {
    let mut sim = Sim::new(timer_cfg(), World::new(&[]));
    sim.round_with(all(Component::Consul, Vote::Up), Some(true), Some(raft()));
    for _ in 0..40 {
        sim.round_with(all(Component::Consul, Vote::Down), Some(false), None);
    }
    assert!(sim.state.raft.recovered_at.is_some());
    for _ in 0..10 {
        sim.round_with(all(Component::Consul, Vote::Up), Some(true), None);
    }
    let returned: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::PeerConsulReturned { .. }))
        .collect();
    assert_eq!(returned.len(), 1);
    assert!(
        returned[0].message.contains("wipe"),
        "{}",
        returned[0].message
    );
    assert!(sim.state.raft.peer_returned_at.is_some());
    sim.operator(OperatorCommand::Rearm);
    assert!(sim.state.raft.peer_returned_at.is_none());
}

#[test]
fn peer_consul_servers_down_and_leaderless_for_grace_recovers_raft_with_the_surviving_servers() {
    let mut sim = Sim::new(timer_cfg(), World::new(&[]));
    sim.round_with(all(Component::Consul, Vote::Up), Some(true), Some(raft()));
    let mut ran = Vec::new();
    for _ in 0..40 {
        ran.extend(sim.round_with(all(Component::Consul, Vote::Down), Some(false), None));
    }
    assert_eq!(names(&ran), ["raft-recovery", "confirm-leader", "locks"]);
    match &ran[0] {
        ActionKind::RaftRecovery { servers } => {
            assert_eq!(servers.len(), 1);
            assert_eq!(servers[0].id, "id-svc2");
        }
        _ => unreachable!(),
    }
    // Not before recovery_grace of leaderless rounds.
    let rec = sim.state.role(Role::Consulserver).failover.expect("record");
    assert!(
        rec.started_at
            .since(sim.state.raft.leaderless_since.expect("since"))
            >= Duration::from_secs(60)
    );
}

#[test]
fn raft_recovery_never_when_peer_consul_servers_are_up_or_unknown() {
    for v in [Vote::Up, Vote::Unknown] {
        let mut sim = Sim::new(consul_cfg(), World::new(&[]));
        for _ in 0..100 {
            assert!(
                sim.round_with(all(Component::Consul, v), Some(false), None)
                    .is_empty()
            );
        }
    }
}

#[test]
fn a_leader_seen_in_between_restarts_the_recovery_grace() {
    let mut sim = Sim::new(consul_cfg(), World::new(&[]));
    for i in 0..100 {
        let leader = i % 20 == 19;
        assert!(
            sim.round_with(all(Component::Consul, Vote::Down), Some(!leader), None)
                .is_empty()
        );
    }
}

#[test]
fn raft_recovery_needs_the_command_witness_to_agree_where_configured() {
    let mut cfg = consul_cfg();
    cfg.command_witness = true;
    cfg.quorum = Quorum::AtLeast(2);
    let mut sim = Sim::new(cfg, World::new(&[]));
    let mut r = all(Component::Consul, Vote::Down);
    r.push(obs(Component::Consul, WitnessKind::Command, Vote::Unknown));
    for _ in 0..60 {
        assert!(sim.round_with(r.clone(), Some(false), None).is_empty());
    }
    assert_eq!(
        sim.reason(),
        Some(Idle::RaftNotReady {
            wait: RaftWait::ArbiterDisagrees
        }),
        "{}",
        sim.why()
    );
    let mut r = all(Component::Consul, Vote::Down);
    r.push(obs(Component::Consul, WitnessKind::Command, Vote::Down));
    let ran: Vec<_> = (0..5)
        .flat_map(|_| sim.round_with(r.clone(), Some(false), None))
        .collect();
    assert_eq!(names(&ran)[0], "raft-recovery");
}

#[test]
fn no_leader_after_raft_recovery_stops_for_an_operator() {
    let mut w = World::new(&[]);
    w.leader_after_recovery = false;
    let mut sim = Sim::new(timer_cfg(), w);
    let mut ran = Vec::new();
    for _ in 0..200 {
        ran.extend(sim.round_with(all(Component::Consul, Vote::Down), Some(false), None));
        sim.advance(Duration::from_secs(1));
    }
    assert_eq!(
        ran.iter()
            .filter(|k| matches!(k, ActionKind::RaftRecovery { .. }))
            .count(),
        1
    );
    assert_eq!(
        ran.iter()
            .filter(|k| matches!(k, ActionKind::ConfirmLeader))
            .count(),
        3
    );
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PipelineStalled { .. }))
    );
}

#[test]
fn manual_promote_is_refused_while_a_witness_sees_the_source_up() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    let t = habeat::engine::step(
        &sim.state,
        &sim.live,
        &Input::Operator(OperatorCommand::Promote {
            target: PromoteTarget::SourceMailHost(SOURCE.into()),
            accounts: ACCOUNTS.iter().map(|s| s.to_string()).collect(),
            threads: None,
            force: false,
            evidence: vec![obs(Component::Appserver, WitnessKind::Icmp, Vote::Up)],
            follow_ups: true,
        }),
        sim.now,
        &sim.cfg,
    );
    assert!(matches!(
        t.refusal,
        Some(habeat::engine::OperatorRefusal::SourceAppserverUp { .. })
    ));
    assert!(t.actions.is_empty());
    assert!(t.state.role(Role::Appserver).failover.is_none());
    // With --force it promotes, and records it like an automatic one.
    let ran = sim.operator(OperatorCommand::Promote {
        target: PromoteTarget::SourceMailHost(SOURCE.into()),
        accounts: ACCOUNTS.iter().map(|s| s.to_string()).collect(),
        threads: Some(8),
        force: true,
        evidence: vec![obs(Component::Appserver, WitnessKind::Icmp, Vote::Up)],
        follow_ups: true,
    });
    assert_eq!(
        names(&ran),
        [
            "list",
            "promote",
            "locks",
            "flush",
            "pause-replicas",
            "restart-replicas",
            // The same follow-ups as an automatic failover: the operator
            // reaching for `promote` is failing over by hand.
            "run:bgp-announce",
            "run:notify-promoted",
            "run:page-oncall"
        ]
    );
    assert!(matches!(
        &ran[1],
        ActionKind::PromoteAccounts { threads: 8, .. }
    ));
    assert!(matches!(&ran[3], ActionKind::FlushCache { accounts, .. } if accounts.len() == 3));
    assert_eq!(sim.world.promoted, ACCOUNTS);
    // The daemon will not promote again.
    sim.world.on_source = vec!["x@example.com".into()];
    assert!(!sim.rounds(10, down()).iter().any(is_promote));
}

#[test]
fn manual_promote_of_some_accounts_works_while_paused_and_without_the_gate() {
    let mut w = World::new(&ACCOUNTS);
    w.quorum = false;
    let mut sim = Sim::new(appserver_config(), w);
    sim.operator(OperatorCommand::Pause {
        until: sim.now.plus(Duration::from_secs(3600)),
        reason: "m".into(),
    });
    let ran = sim.operator(OperatorCommand::Promote {
        target: PromoteTarget::Accounts(vec!["b@example.com".into()]),
        accounts: vec![],
        threads: None,
        force: false,
        evidence: all(Component::Appserver, Vote::Down),
        follow_ups: true,
    });
    assert_eq!(names(&ran)[0], "promote");
    assert_eq!(sim.world.promoted, ["b@example.com"]);
}

#[test]
fn a_lock_file_left_by_the_python_habeat_blocks_automatic_promotion() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    let when = sim.now;
    sim.feed(Input::LockFiles(vec![LockFileSeen {
        role: Role::Appserver,
        lock: LockKind::Promotion,
        present: true,
        written_at: Some(when),
    }]));
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::LegacyLockAdopted { .. }))
    );
    sim.advance(Duration::from_secs(5 * 3600));
    assert!(!sim.rounds(10, down()).iter().any(is_promote));
}

#[test]
fn removing_the_promotion_lock_by_hand_rearms_like_the_old_runbook() {
    let mut cfg = appserver_config();
    cfg.rearm = Rearm::Manual;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.rounds(3, down());
    sim.feed(Input::LockFiles(vec![LockFileSeen {
        role: Role::Appserver,
        lock: LockKind::Promotion,
        present: false,
        written_at: None,
    }]));
    assert!(sim.state.role(Role::Appserver).failover.is_none());
    sim.world.on_source = vec!["d@example.com".into()];
    sim.advance(Duration::from_secs(3601));
    assert!(sim.rounds(3, down()).iter().any(is_promote));
}

#[test]
fn after_a_corrupt_state_nothing_happens_until_rearm() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.state = State::safe(sim.now, "state.json was truncated");
    assert!(sim.rounds(10, down()).is_empty());
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::Blocked {
                blocked: Blocked::SafeHold { .. }
            })
        ),
        "{}",
        sim.why()
    );
    assert!(
        sim.why().contains("habeat rearm"),
        "the hold says how to end it"
    );
    sim.operator(OperatorCommand::Rearm);
    assert!(sim.rounds(1, down()).iter().any(is_promote));
}

#[test]
fn why_says_what_habeat_would_do_now() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, down());
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::PeerNotDown {
                verdict: Verdict::Unknown,
                ..
            })
        ),
        "{}",
        sim.why()
    );
    let e = habeat::engine::plan(&sim.state, &sim.cfg, sim.now).roles;
    assert_eq!(e.len(), 1);
    assert!(habeat::engine::wants_more_rounds(
        &sim.state, &sim.cfg, sim.now
    ));
}

#[test]
fn a_stale_round_does_not_count_towards_fall() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, down());
    sim.advance(Duration::from_secs(300)); // the next timer run
    assert!(
        sim.rounds(2, down()).is_empty(),
        "streak restarted after the gap"
    );
    assert!(sim.rounds(1, down()).iter().any(is_promote));
}

#[test]
fn engine_config_is_derived_from_the_effective_config() {
    use habeat::config::*;
    use std::collections::BTreeMap;
    let mut dcs = BTreeMap::new();
    dcs.insert(
        "primary".to_string(),
        Datacenter {
            appserver_vmname: Some("mbox1.example.com".into()),
            proxyserver_vmname: Some("proxy1.example.com".into()),
            consul_vmnames: vec!["svc1.example.com".into(), "svc3.example.com".into()],
            ..Datacenter::default()
        },
    );
    let mut switch = BTreeMap::new();
    switch.insert(
        "bgp".to_string(),
        SwitchCommands {
            activate: vec![HookCommand::Argv(vec![
                "vtysh".into(),
                "-c".into(),
                "announce".into(),
            ])],
            deactivate: vec![HookCommand::Shell("withdraw-routes".into())],
        },
    );
    dcs.insert(
        "secondary".to_string(),
        Datacenter {
            consul_vmnames: vec!["svc2.example.com".into()],
            proxy_switch: switch,
            ..Datacenter::default()
        },
    );
    let cfg = Config {
        source: "/etc/hamon/habeat.yml".into(),
        local: Local {
            whoami: "secondary".into(),
            dc_check: "primary".into(),
            roles: vec![Role::Proxyserver, Role::Appserver],
            check_down_file: "/var/tmp/appserverdown-habeat".into(),
            check_promotion_file: "/var/tmp/appserverprom-habeat".into(),
            check_restart_replica_file: "/var/tmp/appserverrstopha".into(),
            threads: 7,
            proxy_switch: "bgp".into(),
            proxy_enable_activate: true,
            proxy_enable_deactivate: true,
            disable_ha_module: false,
            flush_cache: true,
            flush_arguments_a: true,
            restart_replica: false,
            state_dir: "/var/lib/habeat".into(),
        },
        dcs,
        consul: Consul::default(),
        detection: Detection::default(),
        probes: Probes::default(),
        witnesses: Witnesses {
            command: vec!["/usr/local/bin/vcenter-witness".into()],
            ..Witnesses::default()
        },
        carbonio: Carbonio::default(),
        safety: Safety {
            rearm: Rearm::Manual,
            ..Safety::default()
        },
        replicas: Default::default(),
        lease: Default::default(),
        hooks: Hooks::default(),
        metrics: Metrics::default(),
        journal: habeat::config::Journal::default(),
        fencing: habeat::config::Fencing::default(),
        warnings: Vec::new(),
    };
    let e = habeat::engine::EngineConfig::from(&cfg);
    assert!(!e.is_primary);
    assert_eq!(e.roles, [Role::Appserver, Role::Proxyserver], "fixed order");
    assert_eq!(e.source_mail_host.as_deref(), Some("mbox1.example.com"));
    assert_eq!(e.peer_proxy_host.as_deref(), Some("proxy1.example.com"));
    assert_eq!(e.threads, 7);
    assert!(e.flush_all_servers && e.command_witness);
    assert_eq!(e.proxy_activate, [vec!["vtysh", "-c", "announce"]]);
    assert_eq!(
        e.proxy_deactivate,
        [vec!["/bin/sh", "-c", "withdraw-routes"]]
    );
    assert_eq!(e.own_consul_hosts, ["svc2.example.com"]);
    assert_eq!(e.peer_consul_hosts.len(), 2);
    assert_eq!(e.rearm, Rearm::Manual);
    assert_eq!((e.fall, e.rise), (3, 2));
    assert!(e.verdict_valid_for > e.stale_after);
}

#[test]
fn a_whole_dc_loss_runs_each_role_under_its_own_quorum_gate() {
    let mut sim = Sim::new(full_config(), World::new(&ACCOUNTS));
    let mut r = all(Component::Appserver, Vote::Down);
    r.extend(all(Component::Proxy, Vote::Down));
    r.extend(all(Component::Consul, Vote::Up));
    let ran = sim.rounds(3, r);
    let mut held: Option<String> = None;
    for k in &ran {
        match k {
            ActionKind::AcquireQuorumGate { key } => {
                assert!(held.is_none(), "one gate at a time");
                held = Some(key.clone());
            }
            ActionKind::ReleaseQuorumGate { key } => {
                assert_eq!(held.as_ref(), Some(key));
                held = None;
            }
            ActionKind::PromoteAccounts { .. } => {
                assert_eq!(held.as_deref(), Some("habeat/failover/mbox1.example.com"))
            }
            ActionKind::RunCommand {
                purpose: habeat::engine::CommandPurpose::ProxyActivate,
                ..
            } => {
                assert!(held.is_some())
            }
            _ => {}
        }
    }
    assert!(held.is_none(), "the gate is given back at the end");
    let n = names(&ran);
    assert_eq!(
        n.iter().filter(|x| *x == "run:bgp-announce").count(),
        2,
        "{n:?}"
    );
    assert!(n.contains(&"gate".to_string()));
    assert!(ran.iter().any(|k| matches!(k, ActionKind::AcquireQuorumGate { key } if key == "habeat/failover/proxy1.example.com")));
}

#[test]
fn rounds_fed_during_a_long_promotion_do_not_interrupt_it() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, down());
    let mut next = sim.round_step(down());
    while let Some(a) = next.clone() {
        if is_promote(&a.kind) {
            break;
        }
        let r = sim.world.run(&a);
        next = sim.feed_one(Input::Outcome(habeat::engine::ActionOutcome {
            id: a.id,
            result: r,
        }));
    }
    let promote = next.expect("promotion handed out");
    // The daemon keeps probing while promoteAccounts runs: no new action,
    // no "interrupted", status stays fresh.
    for _ in 0..30 {
        let extra = sim.round_step(up());
        assert!(extra.is_none());
    }
    assert!(
        !sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Interrupted { .. }))
    );
    let e = habeat::engine::plan(&sim.state, &sim.cfg, sim.now).roles;
    assert!(
        matches!(e[0].next, habeat::engine::Next::InProgress { .. }),
        "{}",
        sim.why()
    );
    let r = sim.world.run(&promote);
    let next = sim.feed_one(Input::Outcome(habeat::engine::ActionOutcome {
        id: promote.id,
        result: r,
    }));
    assert_eq!(
        names(&[next.expect("the follow-up steps continue").kind]),
        ["locks"]
    );
}

#[test]
fn manual_promote_works_on_a_node_without_the_appserver_role() {
    let mut cfg = full_config();
    cfg.roles = vec![Role::Proxyserver];
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    let ran = sim.operator(OperatorCommand::Promote {
        target: PromoteTarget::SourceMailHost(SOURCE.into()),
        accounts: vec![],
        threads: None,
        force: false,
        evidence: vec![],
        follow_ups: true,
    });
    assert_eq!(names(&ran)[..3], ["list", "promote", "locks"]);
    assert_eq!(sim.world.promoted, ACCOUNTS);
    let ran = sim.operator(OperatorCommand::Rearm);
    assert_eq!(names(&ran), ["unlock"]);
}

/// One fresh sighting of the peer proxy: its witness is Up, the others
/// still Down. The verdict is Up ("any Up vote makes it Up") once settled,
/// Unknown before `rise`.
fn proxy_coming_back() -> Vec<habeat::model::Observation> {
    let mut o = all(Component::Proxy, Vote::Down);
    o[0].vote = Vote::Up;
    o
}

#[test]
fn a_proxy_switch_retried_after_a_refused_gate_waits_while_the_peer_proxy_comes_back() {
    let mut cfg = full_config();
    cfg.roles = vec![Role::Proxyserver];
    // Slow to believe the peer is back: Unknown for the whole retry delay.
    cfg.rise = 100;
    let mut w = World::new(&[]);
    w.quorum = false;
    let mut sim = Sim::new(cfg, w);
    let ran = sim.rounds(3, all(Component::Proxy, Vote::Down));
    assert_eq!(names(&ran), ["gate"], "the gate refused the switch");
    // Quorum is back, and so (not yet settled) is the peer proxy: its
    // verdict is Unknown. The retry must not switch traffic.
    sim.world.quorum = true;
    let ran = sim.rounds_for(sim.cfg.retry_delay * 2, proxy_coming_back());
    assert!(
        !ran.iter()
            .any(|k| matches!(k, ActionKind::RunCommand { argv, .. } if argv[0] == "bgp-announce")),
        "proxy switched while the peer proxy was coming back: {:?}",
        names(&ran)
    );
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::VerdictForbids {
                component: Component::Proxy,
                needed: Verdict::Down,
                ..
            })
        ),
        "{}",
        sim.why()
    );
    // Down again for good: the switch goes ahead.
    let ran = sim.rounds(3, all(Component::Proxy, Vote::Down));
    assert!(
        names(&ran).contains(&"run:bgp-announce".to_string()),
        "{:?}",
        names(&ran)
    );
}

#[test]
fn a_failed_ha_module_stop_is_not_retried_once_the_peer_is_back() {
    let mut cfg = appserver_config();
    cfg.is_primary = true;
    cfg.disable_ha_module = true;
    cfg.rearm = Rearm::Manual;
    let mut w = World::new(&ACCOUNTS);
    w.failing = vec![|k| matches!(k, ActionKind::StopHaModule)];
    let mut sim = Sim::new(cfg, w);
    let ran = sim.rounds(3, down());
    assert_eq!(names(&ran), ["stop-ha"], "the stop failed once");
    sim.world.failing.clear();
    // The peer is seen again before the retry is due.
    let ran = sim.rounds_for(sim.cfg.retry_delay * 2, up());
    assert!(
        !ran.iter().any(|k| matches!(k, ActionKind::StopHaModule)),
        "HA module stopped beside a healthy peer: {:?}",
        names(&ran)
    );
}

#[test]
fn a_crash_during_the_proxy_switch_is_not_replayed_beside_a_peer_that_is_back() {
    let mut cfg = full_config();
    cfg.roles = vec![Role::Proxyserver];
    let mut sim = Sim::new(cfg, World::new(&[]));
    sim.rounds(2, all(Component::Proxy, Vote::Down));
    // Third Down round: the gate, then habeat dies running `bgp-announce`.
    let gate = sim
        .round_step(all(Component::Proxy, Vote::Down))
        .expect("gate");
    let result = sim.world.run(&gate);
    let announce = sim
        .feed_one(Input::Outcome(habeat::engine::ActionOutcome {
            id: gate.id,
            result,
        }))
        .expect("announce");
    assert!(
        matches!(&announce.kind, ActionKind::RunCommand { argv, .. } if argv[0] == "bgp-announce")
    );
    sim.restart();
    // Restarted, it sees the peer proxy back: no replay of the switch.
    let ran = sim.rounds(5, all(Component::Proxy, Vote::Up));
    assert!(
        !ran.iter()
            .any(|k| matches!(k, ActionKind::RunCommand { argv, .. } if argv[0] == "bgp-announce")),
        "{:?}",
        names(&ran)
    );
    // It re-arms instead, switching traffic back, and says what may have run.
    assert!(
        names(&ran).contains(&"run:bgp-withdraw".to_string()),
        "{:?}",
        names(&ran)
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.message.contains("proxy switch may have been activated")),
        "no error event about the half-done switch"
    );
}

#[test]
fn an_automatic_rearm_never_switches_traffic_back_to_a_peer_that_fell_again() {
    let mut cfg = full_config();
    cfg.roles = vec![Role::Proxyserver];
    let mut sim = Sim::new(cfg, World::new(&[]));
    sim.rounds(3, all(Component::Proxy, Vote::Down));
    // The peer proxy is back: the re-arm starts with `bgp-withdraw`, and
    // habeat dies while it runs.
    sim.rounds(1, all(Component::Proxy, Vote::Up));
    let withdraw = sim
        .round_step(all(Component::Proxy, Vote::Up))
        .expect("withdraw");
    assert!(
        matches!(&withdraw.kind, ActionKind::RunCommand { argv, .. } if argv[0] == "bgp-withdraw")
    );
    sim.restart();
    // Restarted ten minutes later, it finds the peer proxy dead again.
    sim.advance(Duration::from_secs(600));
    let ran = sim.rounds(10, all(Component::Proxy, Vote::Down));
    assert!(
        !names(&ran)
            .iter()
            .any(|n| n == "run:bgp-withdraw" || n == "unlock"),
        "re-arm went on beside a dead peer: {:?}",
        names(&ran)
    );
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::VerdictForbids {
                component: Component::Proxy,
                needed: Verdict::Up,
                rearm: true,
                ..
            })
        ),
        "{}",
        sim.why()
    );
    // The operator takes it over: locks removed, no traffic switched back.
    let ran = sim.operator(OperatorCommand::Rearm);
    assert_eq!(names(&ran), ["unlock"]);
    assert!(sim.state.role(Role::Proxyserver).rearm.is_none());
}

#[test]
fn a_quorum_gate_lost_before_the_promotion_is_taken_again_and_costs_no_attempt() {
    let mut w = World::new(&ACCOUNTS);
    w.gate_lost = true;
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert_eq!(names(&ran), ["list", "gate", "promote"]);
    assert!(sim.world.promoted.is_empty(), "the executor did not run it");
    assert!(
        sim.live.gate_held.is_none(),
        "the engine still thinks it holds the gate"
    );
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::StepWaiting {
                waiting: Waiting::GateLost { .. },
                ..
            })
        ),
        "{}",
        sim.why()
    );
    // After the retry delay: the gate is taken again, then the promotion,
    // as a first attempt (no getAllOperations check: nothing ran).
    let ran = sim.rounds_for(sim.cfg.retry_delay, down());
    let n = names(&ran);
    let gate = n
        .iter()
        .position(|x| x == "gate")
        .expect("gate taken again");
    assert_eq!(n[gate + 1], "promote", "{n:?}");
    assert!(!n.contains(&"ops".to_string()), "{n:?}");
    assert_eq!(sim.world.promoted, ACCOUNTS);
    let p = sim.state.role(Role::Appserver).failover.expect("record");
    assert_eq!(p.steps[0].attempts, 1, "the lost-gate try was counted");
}

#[test]
fn rearm_by_the_operator_clears_the_record_and_leaves_new_decisions_to_the_next_round() {
    let mut cfg = appserver_config();
    cfg.rearm = Rearm::Manual;
    cfg.promotion_block = Duration::ZERO;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.rounds(3, down());
    // Still Down, and a new account appeared on the source meanwhile.
    sim.rounds(2, down());
    sim.world.on_source = vec!["d@example.com".into()];
    // `habeat rearm` removes the locks and does nothing else: the promotion
    // of what is left is the next round's decision, not the command's.
    let ran = sim.operator(OperatorCommand::Rearm);
    assert_eq!(names(&ran), ["unlock"]);
    let ran = sim.round(down());
    assert!(ran.iter().any(is_promote), "{:?}", names(&ran));
}

/// `lease-before-takeover`: while the executor cannot take the primary's
/// serving lease over, promoteAccounts does not run, the status says why,
/// and the waits (more of them than a step's attempts) never stall the
/// pipeline: once the lease is taken over, the accounts are promoted.
#[test]
fn a_promotion_waits_for_the_peer_lease_without_using_up_its_attempts() {
    let mut w = World::new(&ACCOUNTS);
    w.peer_lease_held = habeat::engine::MAX_ATTEMPTS + 3;
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert!(names(&ran).contains(&"promote".to_string()), "{ran:?}");
    assert!(sim.world.promoted.is_empty());
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::StepWaiting {
                waiting: Waiting::PeerLease { .. },
                ..
            })
        ),
        "{}",
        sim.why()
    );
    assert!(
        sim.why().contains("still holds its serving lease"),
        "{}",
        sim.why()
    );
    for _ in 0..(habeat::engine::MAX_ATTEMPTS + 4) {
        sim.rounds_for(sim.cfg.retry_delay, down());
    }
    assert_eq!(sim.world.promoted, ACCOUNTS, "{}", sim.why());
}

// -- Serf is not debounced twice ---------------------------------------------

/// A round where ICMP says `icmp` and both Serf witnesses say `serf`.
fn icmp_serf(icmp: Vote, serf: Vote) -> Vec<habeat::model::Observation> {
    vec![
        obs(Component::Appserver, WitnessKind::Icmp, icmp),
        obs(Component::Appserver, WitnessKind::ConsulMembers, serf),
        obs(Component::Appserver, WitnessKind::ConsulHealth, serf),
    ]
}

#[test]
fn a_serf_failed_member_counts_at_once_while_icmp_keeps_its_fall() {
    // The link dies; ICMP sees it at once, Serf marks the member failed
    // two rounds later (its own suspicion protocol ran meanwhile).
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, up());
    assert!(sim.rounds(2, icmp_serf(Vote::Down, Vote::Up)).is_empty());
    // Round 3 of ICMP Down (its fall) and the first round of Serf failed:
    // confirmed by every witness now, not `fall` rounds after Serf.
    let ran = sim.round(icmp_serf(Vote::Down, Vote::Down));
    assert!(
        ran.iter().any(is_promote),
        "{:?}\n{}",
        names(&ran),
        sim.why()
    );
}

#[test]
fn serf_failed_alone_never_promotes_before_icmp_reaches_its_fall() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, up());
    // Serf says failed from the first round; ICMP needs its 3 rounds and
    // until then keeps its Up vote, which vetoes.
    assert!(sim.rounds(2, icmp_serf(Vote::Down, Vote::Down)).is_empty());
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::PeerNotDown {
                verdict: Verdict::Up,
                ..
            })
        ),
        "{}",
        sim.why()
    );
    assert!(
        sim.round(icmp_serf(Vote::Down, Vote::Down))
            .iter()
            .any(is_promote)
    );
}

#[test]
fn serf_fall_set_back_to_fall_debounces_serf_again() {
    let mut cfg = appserver_config();
    cfg.serf_fall = 3;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.rounds(3, up());
    sim.rounds(2, icmp_serf(Vote::Down, Vote::Up));
    assert!(sim.rounds(2, icmp_serf(Vote::Down, Vote::Down)).is_empty());
    assert!(
        sim.round(icmp_serf(Vote::Down, Vote::Down))
            .iter()
            .any(is_promote)
    );
}

#[test]
fn serf_flapping_faster_than_icmp_fall_promotes_nothing() {
    // Invariant 10 with Serf taken at one round: Serf alternates failed
    // and alive every round, ICMP loses the peer for fewer rounds than its
    // fall. No witness set ever agrees on Down.
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, up());
    let icmp = [Vote::Down, Vote::Down, Vote::Up];
    for i in 0..60 {
        let serf = if i % 2 == 0 { Vote::Down } else { Vote::Up };
        let ran = sim.round(icmp_serf(icmp[i % 3], serf));
        assert!(ran.is_empty(), "round {i}: {:?}", names(&ran));
    }
    assert!(sim.world.promoted.is_empty());
}

#[test]
fn serf_rise_stays_at_rise_so_a_returning_member_is_not_trusted_at_once() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, icmp_serf(Vote::Unknown, Vote::Down));
    let w = |sim: &Sim| {
        sim.state
            .witnesses
            .iter()
            .find(|w| w.witness.kind == WitnessKind::ConsulMembers)
            .map(|w| w.vote)
    };
    assert_eq!(w(&sim), Some(Vote::Down));
    sim.round(icmp_serf(Vote::Unknown, Vote::Up));
    assert_eq!(w(&sim), Some(Vote::Unknown), "Up after one round");
    sim.round(icmp_serf(Vote::Unknown, Vote::Up));
    assert_eq!(w(&sim), Some(Vote::Up));
}

// -- The Serf witnesses are one source, so one vote -------------------------

/// The verdict the engine holds on the peer appserver now.
fn appserver_verdict(sim: &Sim) -> Option<Verdict> {
    sim.state
        .components
        .get(&Component::Appserver)
        .map(|c| c.verdict)
}

#[test]
fn serf_failed_for_one_round_is_one_vote_so_a_quorum_of_two_waits_for_a_second_source() {
    // `consul_members` and `consul_health` both report the local agent's
    // Serf gossip, and with `serf_fall: 1` both turn Down in the round Serf
    // marks the member failed. Counted as two witnesses they made a quorum
    // of 2 by themselves, while ICMP (one address, fall 3) was still
    // settling: a promotion on one observation.
    let mut cfg = appserver_config();
    cfg.quorum = Quorum::AtLeast(2);
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    for round in 1..=2 {
        let ran = sim.round(icmp_serf(Vote::Down, Vote::Down));
        assert!(
            !ran.iter().any(is_promote) && sim.world.promoted.is_empty(),
            "round {round}: promoted on Serf alone: {:?}\n{}",
            names(&ran),
            sim.why()
        );
        assert_eq!(
            appserver_verdict(&sim),
            Some(Verdict::Unknown),
            "round {round}: {}",
            sim.why()
        );
    }
    // ICMP reaches its fall: a second, independent source agrees.
    let ran = sim.round(icmp_serf(Vote::Down, Vote::Down));
    assert!(
        ran.iter().any(is_promote),
        "{:?}\n{}",
        names(&ran),
        sim.why()
    );
    let reason = &sim.state.components[&Component::Appserver].reason;
    assert!(
        reason.starts_with("2 of 2 votes confirm it down"),
        "{reason}"
    );
}

#[test]
fn serf_alone_never_makes_a_quorum_of_two_however_long_icmp_cannot_tell() {
    let mut cfg = appserver_config();
    cfg.quorum = Quorum::AtLeast(2);
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    for round in 0..30 {
        let ran = sim.round(icmp_serf(Vote::Unknown, Vote::Down));
        assert!(ran.is_empty(), "round {round}: {:?}", names(&ran));
    }
    assert!(sim.world.promoted.is_empty());
    let reason = &sim.state.components[&Component::Appserver].reason;
    assert!(
        reason.contains("1 of 2 votes down, 2 needed")
            && reason.contains("appserver/icmp cannot tell"),
        "{reason}"
    );
}

#[test]
fn a_serf_source_votes_down_only_when_both_of_its_witnesses_do() {
    // quorum 2 of ICMP, a TCP probe and Serf: with ICMP and Serf's
    // membership Down but its serfHealth unable to tell, Serf's vote is
    // Unknown and ICMP alone is one vote; the TCP probe makes the second.
    let mut cfg = appserver_config();
    cfg.quorum = Quorum::AtLeast(2);
    let round = |tcp: Vote| {
        vec![
            obs(Component::Appserver, WitnessKind::Icmp, Vote::Down),
            obs(Component::Appserver, WitnessKind::Tcp { port: 7071 }, tcp),
            obs(Component::Appserver, WitnessKind::ConsulMembers, Vote::Down),
            obs(
                Component::Appserver,
                WitnessKind::ConsulHealth,
                Vote::Unknown,
            ),
        ]
    };
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    assert!(
        sim.rounds(6, round(Vote::Unknown)).is_empty(),
        "{}",
        sim.why()
    );
    assert!(sim.rounds(3, round(Vote::Down)).iter().any(is_promote));
}

#[test]
fn quorum_all_still_needs_every_witness_of_a_shared_source() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    let r = vec![
        obs(Component::Appserver, WitnessKind::Icmp, Vote::Down),
        obs(Component::Appserver, WitnessKind::ConsulMembers, Vote::Down),
        obs(
            Component::Appserver,
            WitnessKind::ConsulHealth,
            Vote::Unknown,
        ),
    ];
    assert!(sim.rounds(10, r).is_empty(), "{}", sim.why());
    assert!(sim.round(down()).iter().any(is_promote));
}

// -- A wait ends when its cause is gone --------------------------------------

/// How many of `ran` are attempts at the quorum gate.
fn gate_attempts(ran: &[ActionKind]) -> usize {
    ran.iter()
        .filter(|k| matches!(k, ActionKind::AcquireQuorumGate { .. }))
        .count()
}

#[test]
fn a_gate_refused_for_want_of_a_leader_is_retried_on_the_first_round_with_a_leader() {
    let mut w = World::new(&ACCOUNTS);
    w.quorum = false;
    let mut sim = Sim::new(appserver_config(), w);
    let mut ran = Vec::new();
    for _ in 0..3 {
        ran.extend(sim.round_with(down(), Some(false), None));
    }
    assert_eq!(names(&ran), ["list", "gate"]);
    // Leaderless rounds: the cause is still there, nothing is tried.
    for _ in 0..5 {
        assert!(sim.round_with(down(), Some(false), None).is_empty());
    }
    assert!(
        matches!(
            sim.reason(),
            Some(Idle::StepWaiting {
                waiting: Waiting::GateRefused { .. },
                ..
            })
        ),
        "{}",
        sim.why()
    );
    // The leader is back, long before retry_delay is out: this very round
    // retries, and the gate opens.
    sim.world.quorum = true;
    let ran = sim.round_with(down(), Some(true), None);
    assert_eq!(gate_attempts(&ran), 1, "{:?}", names(&ran));
    assert!(ran.iter().any(is_promote), "{:?}", names(&ran));
    assert_eq!(sim.world.promoted, ACCOUNTS);
    assert!(sim.events.iter().any(|e| matches!(
        e.kind,
        EventKind::WaitEnded {
            over: habeat::engine::WaitOver::LeaderBack { .. }
        }
    )));
}

#[test]
fn a_gate_refused_while_rounds_see_a_leader_waits_out_its_time() {
    // No cause a round can show gone (the leader was there all along):
    // the refusal is not retried every round.
    let mut w = World::new(&ACCOUNTS);
    w.quorum = false;
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert_eq!(gate_attempts(&ran), 1);
    let rounds =
        u32::try_from((sim.cfg.retry_delay.as_millis() / sim.cfg.interval.as_millis()) - 1)
            .expect("few rounds");
    let ran = sim.rounds(rounds, down());
    assert_eq!(gate_attempts(&ran), 0, "{:?}", names(&ran));
    let ran = sim.rounds(2, down());
    assert_eq!(gate_attempts(&ran), 1, "{:?}", names(&ran));
}

#[test]
fn turning_the_gate_off_ends_the_wait_for_it_and_status_says_so_at_once() {
    let mut w = World::new(&ACCOUNTS);
    w.quorum = false;
    let mut sim = Sim::new(appserver_config(), w);
    for _ in 0..3 {
        sim.round_with(down(), Some(false), None);
    }
    assert!(
        matches!(sim.reason(), Some(Idle::StepWaiting { .. })),
        "{}",
        sim.why()
    );
    // The operator's emergency switch; no round yet: status must not
    // show the wait for a gate no longer asked for.
    sim.cfg.quorum_gate = false;
    assert!(
        !matches!(
            sim.reason(),
            Some(Idle::StepWaiting { .. } | Idle::RetryWait { .. })
        ),
        "stale wait: {}",
        sim.why()
    );
    // The next round (`habeat check`) acts, the Consul leader still gone.
    let ran = sim.round_with(down(), Some(false), None);
    assert!(ran.iter().any(is_promote), "{:?}", names(&ran));
    assert_eq!(gate_attempts(&ran), 0);
    assert!(sim.events.iter().any(|e| matches!(
        e.kind,
        EventKind::WaitEnded {
            over: habeat::engine::WaitOver::GateOff
        }
    )));
}

#[test]
fn a_failed_promotion_keeps_its_backoff_whatever_the_leader_does() {
    let mut w = World::new(&ACCOUNTS);
    w.failing = vec![is_promote];
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert_eq!(ran.iter().filter(|k| is_promote(k)).count(), 1);
    // Leader lost and back: not the cause of a failed command.
    sim.round_with(down(), Some(false), None);
    let ran = sim.round_with(down(), Some(true), None);
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    assert!(
        matches!(sim.reason(), Some(Idle::StepFailed { .. })),
        "{}",
        sim.why()
    );
}

#[test]
fn dc_loss_promotes_within_two_rounds_of_the_leader_raft_recovery_brings_back() {
    // The 2+1 layout loses the DC with the Consul majority: the appserver's
    // gate is refused (no leader), the consulserver role recovers raft
    // after recovery_grace, and the promotion must follow the leader's
    // return, not the 30 s retry of the earlier refusal.
    let mut cfg = full_config();
    cfg.roles = vec![Role::Appserver, Role::Consulserver];
    cfg.recovery_grace = Duration::from_secs(20);
    // The arbiter (a third vantage point) confirms the peer DC is gone.
    cfg.command_witness = true;
    let mut w = World::new(&ACCOUNTS);
    w.quorum_after_recovery = true;
    let mut sim = Sim::new(cfg, w);
    let mut healthy = all(Component::Appserver, Vote::Up);
    healthy.extend(all(Component::Consul, Vote::Up));
    sim.round_with(healthy, Some(true), Some(raft()));
    let mut lost = all(Component::Appserver, Vote::Down);
    lost.extend(all(Component::Consul, Vote::Down));
    lost.push(obs(Component::Consul, WitnessKind::Command, Vote::Down));
    sim.world.quorum = false;
    let mut recovered_at = None;
    let mut promoted_at = None;
    for round in 0..60u32 {
        // Rounds see the leader once raft recovery has brought it back.
        let leader = recovered_at.is_some();
        let ran = sim.round_with(lost.clone(), Some(leader), None);
        if recovered_at.is_none() && names(&ran).iter().any(|n| n == "confirm-leader") {
            recovered_at = Some(round);
        }
        if promoted_at.is_none() && ran.iter().any(is_promote) {
            promoted_at = Some(round);
        }
    }
    let recovered_at = recovered_at.expect("raft recovered");
    let promoted_at = promoted_at.expect("promoted");
    assert!(
        promoted_at >= recovered_at && promoted_at - recovered_at <= 2,
        "raft recovered in round {recovered_at}, promoted in round {promoted_at}"
    );
    assert_eq!(sim.world.promoted, ACCOUNTS);
}
