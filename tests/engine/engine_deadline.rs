//! Detection by deadline (docs/decisions.md §1): a witness whose last
//! `fall − 1` probes went unanswered votes Down `fall × interval` (plus a
//! grace for the `fall`-th probe) after the peer last answered, at that
//! instant ([`Input::Deadline`]), not when that probe's whole timeout has
//! run out. Up still needs `rise` answers, any Up vote still vetoes,
//! Unknown clears the answer, time without probing is no evidence.

use crate::engine_harness;

use engine_harness::*;
use habeat::engine::{Input, UnixMillis, next_deadline};
use habeat::model::{Component, Verdict, Vote, WitnessKind};
use std::time::Duration;

const ACCOUNTS: [&str; 2] = ["a@example.com", "b@example.com"];

fn icmp(vote: Vote) -> Vec<habeat::model::Observation> {
    vec![obs(Component::Appserver, WitnessKind::Icmp, vote)]
}

/// An appserver watched by ICMP alone (interval 2 s, fall 3, timeout 1 s),
/// settled Up;
/// returns the sim and the instant of the peer's last answer.
fn settled_up() -> (Sim, UnixMillis) {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, icmp(Vote::Up));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    let at = sim.now;
    (sim, at)
}

/// `fall × interval` plus the grace of a peer that answered at once
/// (`interval / 20`).
fn tolerance(sim: &Sim) -> Duration {
    sim.cfg.interval * sim.cfg.fall + sim.cfg.interval / 20
}

#[test]
fn a_peer_gone_silent_is_down_the_instant_its_tolerance_runs_out_not_a_timeout_later() {
    let (mut sim, last_answer) = settled_up();
    // Two probes fail; the third is out, and would cost its whole timeout
    // before it counts.
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    let due = last_answer.plus(tolerance(&sim));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), Some(due));

    // A millisecond early: nothing.
    sim.advance(due.since(sim.now) - Duration::from_millis(1));
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);

    // At the deadline: Down, and the failover starts in the same step.
    sim.advance(Duration::from_millis(1));
    let ran = sim.feed(Input::Deadline);
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
    assert!(ran.iter().any(is_promote), "ran {:?}", names(&ran));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), None);
    // The third probe's failure arrives: still Down.
    sim.round(icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn fewer_than_fall_minus_one_failures_have_no_deadline() {
    let (mut sim, _) = settled_up();
    sim.round(icmp(Vote::Down));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), None);
    sim.advance(sim.cfg.interval + sim.cfg.interval / 2);
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
}

#[test]
fn time_without_probing_is_no_evidence() {
    // A late round (a stalled loop, a restart): two failures, and the
    // time of three rounds, but the third probe was never sent.
    let (mut sim, last_answer) = settled_up();
    sim.round(icmp(Vote::Down));
    sim.advance(sim.cfg.interval * 2);
    sim.round(icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    // Nor does a deadline fed after rounds stopped coming.
    sim.now = last_answer.plus(tolerance(&sim) * 2);
    sim.boot = sim.boot.map(|b| habeat::engine::BootTime {
        boot: b.boot,
        ms: b.ms + 60_000,
    });
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
}

#[test]
fn an_unknown_between_the_failures_clears_the_last_answer() {
    let (mut sim, _) = settled_up();
    sim.round(icmp(Vote::Down));
    sim.round(icmp(Vote::Unknown));
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), None);
    sim.advance(sim.cfg.interval);
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_ne!(sim.state.verdict(Component::Appserver), Verdict::Down);
    // Only `fall` consecutive failures make it Down now.
    sim.round(icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn the_wall_clock_set_forward_does_not_bring_the_deadline_early() {
    let (mut sim, _) = settled_up();
    sim.rounds(2, icmp(Vote::Down));
    let due = next_deadline(&sim.state, &sim.cfg).expect("a deadline runs");
    // `date -s` past the deadline, while the boot clock has moved 100 ms
    // (and the last failure is recent: rounds are on time).
    let boot = sim.boot;
    sim.advance(Duration::from_millis(100));
    sim.set_wall(due.plus(Duration::from_secs(1)));
    assert_eq!(sim.boot.map(|b| b.ms), boot.map(|b| b.ms + 100));
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
    sim.advance(sim.cfg.interval + sim.cfg.interval / 2);
    let ran = sim.feed(Input::Deadline);
    assert!(ran.is_empty(), "ran {:?}", names(&ran));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
}

#[test]
fn a_witness_that_never_saw_the_peer_answer_needs_fall_failures() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(next_deadline(&sim.state, &sim.cfg), None);
    sim.advance(sim.cfg.interval);
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_ne!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn the_last_probe_gets_four_times_what_the_peer_took_to_answer_at_most_the_timeout() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    let mut slow = icmp(Vote::Up);
    slow[0].latency = Duration::from_millis(150);
    sim.rounds(3, slow);
    let last_answer = sim.now;
    sim.rounds(2, icmp(Vote::Down));
    let fall_interval = sim.cfg.interval * sim.cfg.fall;
    assert_eq!(
        next_deadline(&sim.state, &sim.cfg),
        Some(last_answer.plus(fall_interval + Duration::from_millis(600)))
    );
    let mut slower = icmp(Vote::Up);
    slower[0].latency = Duration::from_millis(900);
    sim.rounds(3, slower);
    let last_answer = sim.now;
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(
        next_deadline(&sim.state, &sim.cfg),
        Some(last_answer.plus(fall_interval + sim.cfg.probe_timeout))
    );
}
