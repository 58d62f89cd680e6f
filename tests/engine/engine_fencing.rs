//! `fence-before-promotion` (invariant 12) in the engine: where a
//! component is fenced, its fence step sits after the quorum gate and
//! before the action it guards, and no confirmed OFF means no action.

use crate::engine_harness;

use engine_harness::*;
use habeat::engine::{ActionKind, EventKind, FencePlan, Idle, Input, Waiting};
use habeat::model::{Component, FenceAction, FenceFailure, Vote};
use std::time::Duration;

const ACCOUNTS: [&str; 2] = ["a@example.com", "b@example.com"];

fn fenced(c: Component, action: FenceAction) -> habeat::engine::EngineConfig {
    let mut cfg = appserver_config();
    cfg.fencing.insert(
        c,
        FencePlan {
            action,
            plugs: vec!["mbox1".into()],
        },
    );
    cfg
}

fn down() -> Vec<habeat::model::Observation> {
    all(Component::Appserver, Vote::Down)
}

#[test]
fn the_fence_step_runs_after_the_gate_and_before_promote_accounts() {
    let mut sim = Sim::new(
        fenced(Component::Appserver, FenceAction::Off),
        World::new(&ACCOUNTS),
    );
    let ran = sim.rounds(3, down());
    let n = names(&ran);
    assert_eq!(&n[..4], ["list", "gate", "fence", "promote"], "{n:?}");
    assert!(ran.iter().any(|k| matches!(
        k,
        ActionKind::Fence { component: Component::Appserver, action: FenceAction::Off, plugs } if plugs == &["mbox1".to_owned()]
    )));
    assert_eq!(sim.world.promoted, ACCOUNTS);
}

#[test]
fn without_a_confirmed_off_nothing_is_promoted_and_status_says_why_until_it_is() {
    let mut sim = Sim::new(
        fenced(Component::Appserver, FenceAction::Status),
        World::new(&ACCOUNTS),
    );
    sim.world.fence_confirms = false;
    let ran = sim.rounds(3, down());
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    match sim.reason() {
        Some(Idle::StepWaiting {
            waiting:
                Waiting::FenceUnconfirmed {
                    component: Component::Appserver,
                    failure: FenceFailure::On { .. },
                },
            ..
        }) => {}
        other => panic!("{other:?}: {}", sim.why()),
    }
    assert!(
        sim.why().contains("fencing.appserver did not confirm"),
        "{}",
        sim.why()
    );
    assert!(sim.events.iter().any(|e| matches!(
        e.kind,
        EventKind::Fence {
            confirmed: false,
            ..
        }
    )));
    // Retried like a refused gate, as often as it takes, never given up.
    for _ in 0..5 {
        let ran = sim.rounds_for(sim.cfg.retry_delay, down());
        assert!(!ran.iter().any(is_promote));
        assert!(
            names(&ran).contains(&"fence".to_owned()),
            "{:?}",
            names(&ran)
        );
    }
    sim.world.fence_confirms = true;
    let ran = sim.rounds_for(sim.cfg.retry_delay, down());
    let n = names(&ran);
    let fence = n.iter().position(|x| x == "fence").expect("fenced");
    let promote = n.iter().position(|x| x == "promote").expect("promoted");
    assert!(fence < promote, "{n:?}");
    assert_eq!(sim.world.promoted, ACCOUNTS);
}

#[test]
fn a_peer_back_before_the_promotion_drops_the_intent_even_after_a_fence_attempt() {
    let mut sim = Sim::new(
        fenced(Component::Appserver, FenceAction::Status),
        World::new(&ACCOUNTS),
    );
    sim.world.fence_confirms = false;
    sim.rounds(3, down());
    assert!(
        sim.state
            .role(habeat::model::Role::Appserver)
            .failover
            .is_some()
    );
    sim.rounds(3, all(Component::Appserver, Vote::Up));
    assert!(
        sim.state
            .role(habeat::model::Role::Appserver)
            .failover
            .is_none(),
        "nothing was promoted: the intent is dropped"
    );
}

#[test]
fn a_crash_during_the_fence_step_runs_it_again_and_promotes_once() {
    let mut sim = Sim::new(
        fenced(Component::Appserver, FenceAction::Off),
        World::new(&ACCOUNTS),
    );
    sim.rounds(2, down());
    // Run the chain by hand up to the fence action, then "crash".
    let mut next = sim.round_step(down());
    while let Some(a) = next.clone() {
        if matches!(a.kind, ActionKind::Fence { .. }) {
            break;
        }
        let result = sim.world.run(&a);
        next = sim.feed_one(Input::Outcome(habeat::engine::ActionOutcome {
            id: a.id,
            result,
        }));
    }
    assert!(matches!(
        next.map(|a| a.kind),
        Some(ActionKind::Fence { .. })
    ));
    sim.restart();
    let ran = sim.rounds(2, down());
    let n = names(&ran);
    assert_eq!(n.iter().filter(|x| *x == "fence").count(), 1, "{n:?}");
    assert_eq!(n.iter().filter(|x| *x == "promote").count(), 1, "{n:?}");
    let fence = n.iter().position(|x| x == "fence").expect("fence");
    let promote = n.iter().position(|x| x == "promote").expect("promote");
    assert!(fence < promote);
    let _ = Duration::ZERO;
}

#[test]
fn fencing_proxy_comes_before_the_first_proxy_switch_command() {
    let mut cfg = fenced(Component::Proxy, FenceAction::Off);
    cfg.roles = vec![habeat::model::Role::Proxyserver];
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.world.fence_confirms = false;
    let ran = sim.rounds(3, all(Component::Proxy, Vote::Down));
    let n = names(&ran);
    assert!(n.contains(&"fence".to_owned()), "{n:?}");
    assert!(!n.iter().any(|x| x.starts_with("run:")), "{n:?}");
    sim.world.fence_confirms = true;
    let n = names(&sim.rounds_for(sim.cfg.retry_delay, all(Component::Proxy, Vote::Down)));
    let fence = n.iter().position(|x| x == "fence").expect("fence");
    let switch = n
        .iter()
        .position(|x| x == "run:bgp-announce")
        .expect("switch");
    assert!(fence < switch, "{n:?}");
}

/// Fencing added (a reload) while a promotion without it waits to retry:
/// the retry fences first, and without a confirmed OFF promotes nothing.
#[test]
fn fencing_added_during_a_retry_wait_fences_before_the_retried_promotion() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.world.failing.push(is_promote);
    let n = names(&sim.rounds(3, down()));
    assert_eq!(n.iter().filter(|x| *x == "promote").count(), 1, "{n:?}");
    assert!(!n.contains(&"fence".to_owned()), "{n:?}");
    assert!(sim.world.promoted.is_empty());

    sim.cfg = fenced(Component::Appserver, FenceAction::Status);
    sim.world.failing.clear();
    sim.world.fence_confirms = false;
    for _ in 0..3 {
        let n = names(&sim.rounds_for(sim.cfg.retry_delay, down()));
        assert!(n.contains(&"fence".to_owned()), "{n:?}");
        assert!(!n.contains(&"promote".to_owned()), "{n:?}");
    }
    assert!(sim.world.promoted.is_empty());
    assert!(
        sim.events
            .iter()
            .any(|e| e.message.contains("fencing.appserver is configured now")),
        "the journal says why a fence step appeared"
    );

    sim.world.fence_confirms = true;
    let n = names(&sim.rounds_for(sim.cfg.retry_delay, down()));
    let fence = n.iter().position(|x| x == "fence").expect("fenced");
    let promote = n.iter().position(|x| x == "promote").expect("promoted");
    assert!(fence < promote, "{n:?}");
    assert_eq!(sim.world.promoted, ACCOUNTS);
    // One fence step was added, not one per attempt.
    let p = sim
        .state
        .role(habeat::model::Role::Appserver)
        .failover
        .clone()
        .expect("pipeline");
    let fences = p
        .steps
        .iter()
        .filter(|s| matches!(s.step, habeat::engine::Step::Fence { .. }))
        .count();
    assert_eq!(fences, 1);
}

/// Fencing removed (its fence step skipped) and then added again before
/// the promotion: the skipped step confirmed nothing, so one runs.
#[test]
fn fencing_removed_then_added_again_still_fences_before_the_promotion() {
    let mut sim = Sim::new(
        fenced(Component::Appserver, FenceAction::Status),
        World::new(&ACCOUNTS),
    );
    sim.world.fence_confirms = false;
    let n = names(&sim.rounds(3, down()));
    assert!(n.contains(&"fence".to_owned()), "{n:?}");
    sim.cfg = appserver_config();
    sim.world.failing.push(is_promote);
    let n = names(&sim.rounds_for(sim.cfg.retry_delay, down()));
    assert!(n.contains(&"promote".to_owned()), "{n:?}");
    assert!(!n.contains(&"fence".to_owned()), "{n:?}");

    sim.cfg = fenced(Component::Appserver, FenceAction::Status);
    sim.world.failing.clear();
    let n = names(&sim.rounds_for(sim.cfg.retry_delay, down()));
    assert!(n.contains(&"fence".to_owned()), "{n:?}");
    assert!(!n.contains(&"promote".to_owned()), "{n:?}");
    assert!(sim.world.promoted.is_empty());
}

/// The same for a proxy failover: fencing.proxy added while its first
/// switch command waits for the quorum gate (a command is not retried
/// after it fails, a refused gate is).
#[test]
fn fencing_proxy_added_while_the_switch_waits_fences_before_it() {
    let mut cfg = appserver_config();
    cfg.roles = vec![habeat::model::Role::Proxyserver];
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.world.quorum = false;
    let n = names(&sim.rounds(3, all(Component::Proxy, Vote::Down)));
    assert!(n.contains(&"gate".to_owned()), "{n:?}");
    assert!(!n.iter().any(|x| x.starts_with("run:")), "{n:?}");
    assert!(!n.contains(&"fence".to_owned()), "{n:?}");

    let mut fenced_cfg = fenced(Component::Proxy, FenceAction::Status);
    fenced_cfg.roles = vec![habeat::model::Role::Proxyserver];
    sim.cfg = fenced_cfg;
    sim.world.quorum = true;
    sim.world.fence_confirms = false;
    let n = names(&sim.rounds_for(sim.cfg.retry_delay, all(Component::Proxy, Vote::Down)));
    assert!(n.contains(&"fence".to_owned()), "{n:?}");
    assert!(!n.iter().any(|x| x.starts_with("run:")), "{n:?}");
    sim.world.fence_confirms = true;
    let n = names(&sim.rounds_for(sim.cfg.retry_delay, all(Component::Proxy, Vote::Down)));
    let fence = n.iter().position(|x| x == "fence").expect("fence");
    let switch = n
        .iter()
        .position(|x| x.starts_with("run:"))
        .expect("switch");
    assert!(fence < switch, "{n:?}");
}
