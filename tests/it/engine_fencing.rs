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
