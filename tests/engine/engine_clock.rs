//! Which clock measures what (docs/decisions.md): the wall clock set
//! forward never ends `promotion_block` early, set back it never lengthens
//! a retry, and a mark from another boot is measured by the wall clock.

use crate::engine_harness;

use engine_harness::*;
use habeat::engine::{ActionKind, EventKind, Idle, UnixMillis};
use habeat::model::{Component, Vote};
use std::time::Duration;

const ACCOUNTS: [&str; 3] = ["a@example.com", "b@example.com", "c@example.com"];

fn down() -> Vec<habeat::model::Observation> {
    all(Component::Appserver, Vote::Down)
}
fn up() -> Vec<habeat::model::Observation> {
    all(Component::Appserver, Vote::Up)
}

const HOUR: Duration = Duration::from_secs(3600);

/// A promotion, the peer back and re-armed, then the source's accounts
/// back on it and its mailstore down again: only `promotion_block` stands
/// between this and a second promotion.
fn promoted_and_rearmed() -> Sim {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    assert!(sim.rounds(3, down()).iter().any(is_promote));
    sim.rounds(3, up());
    assert!(
        sim.state
            .role(habeat::model::Role::Appserver)
            .failover
            .is_none()
    );
    sim.world.on_source = vec!["d@example.com".into()];
    sim
}

#[test]
fn the_wall_clock_set_forward_does_not_end_promotion_block() {
    let mut sim = promoted_and_rearmed();
    sim.set_wall(sim.now.plus(2 * HOUR));
    let ran = sim.rounds(10, down());
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    match sim.reason() {
        Some(Idle::PromotionBlocked { until, .. }) => assert!(
            until > sim.now.plus(HOUR - Duration::from_secs(120)),
            "the block ends at {until}, which is not an hour of boot clock from now ({})",
            sim.now
        ),
        _ => panic!("{}", sim.why()),
    }
    // The block is saved with its boot clock: a restart keeps it.
    sim.restart();
    assert!(!sim.rounds(10, down()).iter().any(is_promote));
    // An hour later by both clocks, a new automatic promotion is allowed.
    sim.advance(HOUR);
    assert!(
        sim.rounds(3, down()).iter().any(is_promote),
        "{}",
        sim.why()
    );
}

#[test]
fn the_wall_clock_set_back_does_not_end_promotion_block_either() {
    let mut sim = promoted_and_rearmed();
    sim.advance(HOUR);
    sim.set_wall(UnixMillis(sim.now.0 - 2 * 3_600_000));
    assert!(!sim.rounds(10, down()).iter().any(is_promote));
    assert!(
        matches!(sim.reason(), Some(Idle::PromotionBlocked { .. })),
        "{}",
        sim.why()
    );
}

#[test]
fn the_wall_clock_set_back_does_not_lengthen_a_retry() {
    let mut w = World::new(&ACCOUNTS);
    w.failing = vec![|k| matches!(k, ActionKind::WriteLocks { .. })];
    let mut sim = Sim::new(appserver_config(), w);
    let ran = sim.rounds(3, down());
    assert!(
        !names(&ran).contains(&"flush".to_string()),
        "{:?}",
        names(&ran)
    );
    sim.world.failing.clear();
    sim.set_wall(UnixMillis(sim.now.0 - 3_600_000));
    let ran = sim.rounds_for(sim.cfg.retry_delay + sim.cfg.interval, down());
    assert!(
        names(&ran).contains(&"locks".to_string()),
        "the lock write waits for the wall clock to come back: {:?}\n{}",
        names(&ran),
        sim.why()
    );
}

#[test]
fn the_wall_clock_set_forward_ends_a_retry() {
    let mut w = World::new(&ACCOUNTS);
    w.failing = vec![|k| matches!(k, ActionKind::WriteLocks { .. })];
    let mut sim = Sim::new(appserver_config(), w);
    sim.rounds(3, down());
    sim.world.failing.clear();
    sim.set_wall(sim.now.plus(HOUR));
    let ran = sim.round(down());
    assert_eq!(names(&ran).first().map(String::as_str), Some("locks"));
}

#[test]
fn a_mark_from_another_boot_is_measured_by_the_wall_clock_and_said_once() {
    let mut sim = promoted_and_rearmed();
    sim.reboot();
    let ran = sim.rounds(5, down());
    assert!(!ran.iter().any(is_promote), "{:?}", names(&ran));
    let said: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WallClockOnly { .. }))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].message.contains("promotion_block since"),
        "{}",
        said[0].message
    );
    // The boot clock of the promotion means nothing in this boot: the
    // wall clock alone ends the block.
    sim.set_wall(sim.now.plus(HOUR));
    assert!(
        sim.rounds(3, down()).iter().any(is_promote),
        "{}",
        sim.why()
    );
    let said = sim
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WallClockOnly { .. }))
        .count();
    assert_eq!(said, 1);
}

#[test]
fn a_reboot_with_nothing_open_says_nothing() {
    let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
    sim.rounds(3, up());
    sim.reboot();
    sim.rounds(3, up());
    assert!(
        !sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::WallClockOnly { .. }))
    );
    assert!(sim.state.boot.is_some());
}
