//! An operator's `habeat promote` without `--force` is judged on the
//! command's own probe round (invariant 1). Its promotion step run again
//! later (the daemon resuming it after a failure or a crash, or the next
//! command) is judged again as the command was, on the rounds of its time:
//! refused while a witness sees the source Up, and, before promoteAccounts,
//! the automatic path's `lease-before-takeover` check (invariant 14). A
//! forced promotion is not judged again: the operator took responsibility.

use crate::engine_harness;
use engine_harness::*;
use habeat::engine::{EventKind, OperatorCommand, Origin, PreStepCheck, PromoteTarget};
use habeat::model::{Component, Vote};
use std::time::Duration;

const ACCOUNTS: [&str; 2] = ["a@example.com", "b@example.com"];

fn promote(force: bool) -> OperatorCommand {
    OperatorCommand::Promote {
        target: PromoteTarget::SourceMailHost(SOURCE.into()),
        accounts: ACCOUNTS.iter().map(|a| a.to_string()).collect(),
        threads: None,
        force,
        evidence: all(Component::Appserver, Vote::Down),
        follow_ups: true,
    }
}

fn refused(sim: &Sim) -> usize {
    sim.events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Refused))
        .count()
}

/// The operator's promotion, its promoteAccounts failing once (the
/// servers cut off), then rounds past the retry delay seeing `vote`.
fn failed_once_then(force: bool, vote: Vote) -> Sim {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.round(all(Component::Appserver, Vote::Down));
    sim.world.failing = vec![is_promote];
    sim.operator(promote(force));
    assert!(sim.world.promoted.is_empty(), "{}", sim.why());
    sim.world.failing.clear();
    let wait = sim.cfg.retry_delay + Duration::from_secs(1);
    sim.rounds_for(wait, all(Component::Appserver, vote));
    sim
}

#[test]
fn run_again_while_a_witness_sees_the_source_up_it_is_refused_and_stops() {
    let sim = failed_once_then(false, Vote::Up);
    assert!(
        sim.world.promoted.is_empty(),
        "promoted beside a live source"
    );
    assert_eq!(refused(&sim), 1, "refused once, named, not retried forever");
    // Stopped for the operator (an attempt had run: some accounts may
    // have moved), saying why and what to do.
    let stall = sim
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::PipelineStalled { pipeline: 1 }))
        .expect("the promotion stopped");
    assert!(
        stall.message.contains("sees the source appserver") && stall.message.contains("--force"),
        "{}",
        stall.message
    );
}

#[test]
fn run_again_before_any_attempt_it_is_refused_and_stops_too() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.round(all(Component::Appserver, Vote::Down));
    sim.world.listing_broken = true;
    sim.operator(promote(false));
    sim.world.listing_broken = false;
    let wait = sim.cfg.retry_delay + Duration::from_secs(1);
    sim.rounds_for(wait, all(Component::Appserver, Vote::Up));
    assert!(
        sim.world.promoted.is_empty(),
        "promoted beside a live source"
    );
    assert_eq!(refused(&sim), 1);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PipelineStalled { pipeline: 1 })),
        "the promotion stopped"
    );
}

#[test]
fn run_again_with_the_source_down_it_waits_for_the_serving_lease() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.round(all(Component::Appserver, Vote::Down));
    sim.world.failing = vec![is_promote];
    sim.operator(promote(false));
    sim.world.failing.clear();
    // The primary holds its lease for the next attempt.
    sim.world.peer_lease_held = 1;
    let wait = sim.cfg.retry_delay + Duration::from_secs(1);
    sim.rounds_for(wait * 3, all(Component::Appserver, Vote::Down));
    assert_eq!(sim.world.promoted, ACCOUNTS, "{}", sim.why());
    let lease = PreStepCheck::PeerLeaseTakenOver {
        host: SOURCE.into(),
    };
    let promotes: Vec<_> = sim
        .world
        .handed
        .iter()
        .filter(|a| is_promote(&a.kind))
        .collect();
    assert!(promotes.iter().all(|a| a.origin == Origin::Operator));
    assert_eq!(promotes.len(), 3, "{promotes:?}");
    for a in &promotes {
        assert_eq!(
            a.checks,
            vec![lease.clone()],
            "the command's attempt and every run again"
        );
    }
    assert_eq!(sim.world.peer_lease_held, 0, "it waited for the lease");
}

#[test]
fn a_forced_promotion_run_again_is_not_judged_again() {
    let sim = failed_once_then(true, Vote::Up);
    assert_eq!(sim.world.promoted, ACCOUNTS, "{}", sim.why());
    assert_eq!(refused(&sim), 0);
    assert!(
        sim.world
            .handed
            .iter()
            .filter(|a| is_promote(&a.kind))
            .all(|a| a.checks.is_empty())
    );
}
