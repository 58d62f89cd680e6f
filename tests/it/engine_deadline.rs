//! Detection by deadline (docs/decisions.md §1): a witness whose probes go
//! unanswered votes Down when `fall × interval` has passed since the peer
//! last answered, at that instant ([`Input::Deadline`]), not at the round
//! boundary after its `fall`-th failed probe. Up still needs `rise`
//! answers, any Up vote still vetoes, Unknown starts the count over.

use crate::engine_harness;

use engine_harness::*;
use habeat::engine::{Input, UnixMillis, next_deadline};
use habeat::model::{Component, Verdict, Vote, WitnessKind};
use std::time::Duration;

const ACCOUNTS: [&str; 2] = ["a@example.com", "b@example.com"];

fn icmp(vote: Vote) -> Vec<habeat::model::Observation> {
    vec![obs(Component::Appserver, WitnessKind::Icmp, vote)]
}

/// An appserver watched by ICMP alone (interval 2 s, fall 3), settled Up;
/// returns the sim and the instant of the peer's last answer.
fn settled_up() -> (Sim, UnixMillis) {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, icmp(Vote::Up));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    let at = sim.now;
    (sim, at)
}

fn tolerance(sim: &Sim) -> Duration {
    sim.cfg.interval * sim.cfg.fall
}

#[test]
fn a_peer_gone_silent_is_down_the_instant_its_tolerance_runs_out_not_a_round_later() {
    let (mut sim, last_answer) = settled_up();
    // Two probes fail; the third is still in flight (it would cost its
    // whole timeout before it counts).
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    let due = last_answer.plus(tolerance(&sim));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), Some(due));

    // A millisecond early: nothing.
    sim.advance(sim.cfg.interval - Duration::from_millis(1));
    assert_eq!(sim.now, UnixMillis(due.0 - 1));
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);

    // At the deadline: Down, and the failover starts in the same step.
    sim.advance(Duration::from_millis(1));
    let ran = sim.feed(Input::Deadline);
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
    assert!(ran.iter().any(is_promote), "ran {:?}", names(&ran));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), None);
    // The probe still in flight fails: still Down, the failover goes on.
    sim.round(icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn a_late_round_with_fewer_than_fall_failures_is_down_when_the_tolerance_has_passed() {
    let (mut sim, _) = settled_up();
    sim.round(icmp(Vote::Down));
    // The next round completes late (a slow probe), past the tolerance.
    sim.advance(sim.cfg.interval * 2);
    sim.round(icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn an_unknown_between_the_failures_starts_the_count_over() {
    let (mut sim, last_answer) = settled_up();
    sim.round(icmp(Vote::Down));
    sim.round(icmp(Vote::Unknown));
    sim.round(icmp(Vote::Down));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), None);
    sim.now = last_answer.plus(tolerance(&sim) * 2);
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_ne!(sim.state.verdict(Component::Appserver), Verdict::Down);
    // Only `fall` consecutive failures make it Down now.
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn the_wall_clock_set_forward_does_not_bring_the_deadline_early() {
    let (mut sim, last_answer) = settled_up();
    sim.round(icmp(Vote::Down));
    // `date -s` an hour ahead; the boot clock has moved one interval.
    sim.set_wall(last_answer.plus(Duration::from_secs(3600)));
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
}

#[test]
fn an_up_vote_of_another_witness_still_vetoes_a_deadline() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, all(Component::Appserver, Vote::Up));
    let mut mixed = all(Component::Appserver, Vote::Down);
    mixed[1].vote = Vote::Up; // Serf still sees the member alive
    sim.rounds(2, mixed);
    sim.advance(sim.cfg.interval * 2);
    let ran = sim.feed(Input::Deadline);
    assert!(ran.is_empty(), "ran {:?}", names(&ran));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
}

#[test]
fn a_witness_that_never_saw_the_peer_answer_needs_fall_failures() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), None);
    sim.advance(sim.cfg.interval * 10);
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_ne!(sim.state.verdict(Component::Appserver), Verdict::Down);
}
