//! Detection by deadline (docs/decisions.md §1): a witness whose last
//! `fall − 1` probes went unanswered votes Down `fall × interval` (plus a
//! grace for the `fall`-th probe) after the peer last answered, at that
//! instant ([`Input::Deadline`]), not when that probe's whole timeout has
//! run out. Up still needs `rise` answers, any Up vote still vetoes,
//! Unknown clears the answer, time without probing is no evidence.

use crate::engine_harness;

use engine_harness::*;
use habeat::engine::{Input, Now, UnixMillis, next_deadline};
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
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), Some(due));

    // A millisecond early: nothing.
    sim.advance(due.since(sim.now) - Duration::from_millis(1));
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);

    // At the deadline: Down, and the failover starts in the same step.
    sim.advance(Duration::from_millis(1));
    let ran = sim.feed(Input::Deadline);
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
    assert!(ran.iter().any(is_promote), "ran {:?}", names(&ran));
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), None);
    // The third probe's failure arrives: still Down.
    sim.round(icmp(Vote::Down));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn fewer_than_fall_minus_one_failures_have_no_deadline() {
    let (mut sim, _) = settled_up();
    sim.round(icmp(Vote::Down));
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), None);
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
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), None);
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
    let due = next_deadline(&sim.state, &sim.live, &sim.cfg).expect("a deadline runs");
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
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), None);
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
        next_deadline(&sim.state, &sim.live, &sim.cfg),
        Some(last_answer.plus(fall_interval + Duration::from_millis(600)))
    );
    let mut slower = icmp(Vote::Up);
    slower[0].latency = Duration::from_millis(900);
    sim.rounds(3, slower);
    let last_answer = sim.now;
    sim.rounds(2, icmp(Vote::Down));
    assert_eq!(
        next_deadline(&sim.state, &sim.live, &sim.cfg),
        Some(last_answer.plus(fall_interval + sim.cfg.probe_timeout))
    );
}

/// The daemon says when a round's probes went out (`Live::probes_out`)
/// and feeds the round when all of them are in, `took` later; rounds go
/// out every `interval` (the previous one was fed `took` after it went
/// out).
fn round_sent(sim: &mut Sim, observations: Vec<habeat::model::Observation>, took: Duration) {
    sim.advance(sim.cfg.interval - took);
    sim.live.probes_out = Some(Now {
        wall: sim.now,
        boot: sim.boot,
    });
    sim.advance(took);
    sim.feed(Input::Round(habeat::model::Round {
        observations,
        local_leader: Some(true),
        raft_servers: None,
    }));
}

#[test]
fn the_deadline_counts_from_when_the_answered_probe_went_out_not_from_when_its_round_was_fed() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    // Each round is fed 300 ms after its probes went out (another witness,
    // the local Consul, a busy machine): the peer proved itself alive
    // after the probe went out, not when the round was fed.
    let took = Duration::from_millis(300);
    for _ in 0..3 {
        round_sent(&mut sim, icmp(Vote::Up), took);
    }
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    let sent = UnixMillis(sim.now.0 - 300);
    for _ in 0..2 {
        round_sent(&mut sim, icmp(Vote::Down), took);
    }
    let due = sent.plus(tolerance(&sim));
    // The `fall`-th probe goes out on the schedule.
    sim.advance(sim.cfg.interval - took);
    sim.live.probes_out = Some(Now {
        wall: sim.now,
        boot: sim.boot,
    });
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), Some(due));
    sim.advance(due.since(sim.now) - Duration::from_millis(1));
    assert!(sim.feed(Input::Deadline).is_empty());
    sim.advance(Duration::from_millis(1));
    let ran = sim.feed(Input::Deadline);
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
    assert!(ran.iter().any(is_promote), "ran {:?}", names(&ran));
}

#[test]
fn the_last_probe_gets_its_whole_grace_from_when_it_went_out_even_late() {
    let (mut sim, last_answer) = settled_up();
    sim.rounds(2, icmp(Vote::Down));
    let due = last_answer.plus(tolerance(&sim));
    // The `fall`-th round goes out 400 ms late (a busy machine): the
    // schedule's deadline would judge a probe out for less than its grace.
    sim.advance(sim.cfg.interval + Duration::from_millis(400));
    let out = sim.now;
    sim.live.probes_out = Some(Now {
        wall: out,
        boot: sim.boot,
    });
    let grace = sim.cfg.interval / 20;
    assert!(out.plus(grace) > due);
    assert_eq!(
        next_deadline(&sim.state, &sim.live, &sim.cfg),
        Some(out.plus(grace))
    );
    sim.advance(grace - Duration::from_millis(1));
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    sim.advance(Duration::from_millis(1));
    sim.feed(Input::Deadline);
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Down);
}

#[test]
fn a_witness_whose_probe_out_has_been_answered_is_not_down_by_deadline() {
    let (mut sim, last_answer) = settled_up();
    sim.rounds(2, icmp(Vote::Down));
    sim.advance(sim.cfg.interval);
    sim.live.probes_out = Some(Now {
        wall: sim.now,
        boot: sim.boot,
    });
    // The ICMP echo came back; the round is not in yet (another probe of
    // it is still out).
    let witness = icmp(Vote::Up).remove(0).witness;
    sim.live.answered_out = vec![witness];
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), None);
    sim.now = last_answer.plus(tolerance(&sim) + Duration::from_millis(100));
    sim.boot = sim.boot.map(|b| habeat::engine::BootTime {
        boot: b.boot,
        ms: b.ms + 150,
    });
    assert!(sim.feed(Input::Deadline).is_empty());
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    // The round lands with the answer: Up, no deadline runs.
    sim.feed(Input::Round(habeat::model::Round {
        observations: icmp(Vote::Up),
        local_leader: Some(true),
        raft_servers: None,
    }));
    assert_eq!(sim.state.verdict(Component::Appserver), Verdict::Up);
    assert_eq!(next_deadline(&sim.state, &sim.live, &sim.cfg), None);
}
