//! Re-protection after a failover (SPEC §4 "After a failover") and
//! `no-seed-over-a-diverged-copy` (15): which accounts get a replica
//! where, when the daemon does it by itself, and never over a diverged
//! account's only copy without the operator naming it.

use crate::engine_harness;

use engine_harness::*;
use habeat::engine::{
    ActionKind, Discard, EngineConfig, EventKind, Input, OperatorCommand, ReprotectRequest,
};
use habeat::model::{Component, ReprotectPolicy, Vote};
use habeat::replica::{ReplicaState, Risk};
use proptest::prelude::*;
use std::collections::BTreeSet;

const ACCOUNTS: [&str; 4] = [
    "a@example.com",
    "b@example.com",
    "c@example.com",
    "d@example.com",
];
const OWN: &str = "mbox2.example.com";

fn behind(account: &str, seq: u64, item: u64) -> Risk {
    Risk {
        account: account.into(),
        state: ReplicaState::Behind,
        also: Vec::new(),
        lag_sequence: Some(seq),
        lag_item_id: Some(item),
        destination: Some(OWN.into()),
    }
}

fn cfg(policy: ReprotectPolicy) -> EngineConfig {
    let mut c = appserver_config();
    c.reprotect = policy;
    c.own_mail_host = Some(OWN.into());
    c.reprotect_batch = 2;
    c
}

/// A world where b@ was 12 sequence / 3 itemId behind when promoted.
fn promoted(policy: ReprotectPolicy) -> Sim {
    let mut world = World::new(&ACCOUNTS);
    world.at_risk = vec![behind("b@example.com", 12, 3)];
    let mut sim = Sim::new(cfg(policy), world);
    sim.rounds(3, all(Component::Appserver, Vote::Down));
    assert_eq!(sim.world.promoted.len(), ACCOUNTS.len(), "{}", sim.why());
    sim
}

/// Every `setAccountDestination` the world was handed: (host, accounts).
fn seeded(sim: &Sim) -> Vec<(String, Vec<String>)> {
    sim.world
        .log
        .iter()
        .filter_map(|k| match k {
            ActionKind::SetAccountDestination {
                destination,
                accounts,
                ..
            } => Some((destination.clone(), accounts.clone())),
            _ => None,
        })
        .collect()
}

fn request(accounts: &[&str], discard: Discard, vote: Vote) -> OperatorCommand {
    OperatorCommand::Reprotect {
        request: ReprotectRequest {
            destination: SOURCE.into(),
            priority: 10,
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            discard,
            batch: 2,
            evidence: Some(all(Component::Appserver, vote)),
        },
    }
}

#[test]
fn a_promotion_marks_its_accounts_at_risk_diverged_with_their_gap() {
    let sim = promoted(ReprotectPolicy::Manual);
    let d = &sim.state.protection.diverged;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].account, "b@example.com");
    assert_eq!(d[0].mail_host, SOURCE);
    assert_eq!((d[0].sequence, d[0].item_id), (Some(12), Some(3)));
    assert!(sim.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::AccountsDiverged { accounts } if accounts[0].account == "b@example.com"
    )
        && e.message.contains("behind by 12 sequence and 3 itemId")));
}

#[test]
fn auto_reprotects_once_and_never_while_the_peer_is_down_or_unknown() {
    let mut sim = promoted(ReprotectPolicy::Auto);
    for _ in 0..5 {
        sim.round(all(Component::Appserver, Vote::Down));
        sim.round(all(Component::Appserver, Vote::Unknown));
    }
    // A peer that answers only some witnesses (Unknown verdict) neither.
    sim.rounds(
        4,
        vec![
            obs(Component::Appserver, kinds()[0].clone(), Vote::Down),
            obs(Component::Appserver, kinds()[1].clone(), Vote::Unknown),
        ],
    );
    assert!(seeded(&sim).is_empty(), "seeded while the peer was not Up");
    sim.rounds(6, all(Component::Appserver, Vote::Up));
    let got = seeded(&sim);
    assert_eq!(
        got,
        vec![
            (
                SOURCE.to_string(),
                vec!["a@example.com".to_string(), "c@example.com".to_string()]
            ),
            (SOURCE.to_string(), vec!["d@example.com".to_string()]),
        ],
        "the promoted accounts but the diverged one, in batches, once"
    );
    assert!(sim.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::ReprotectLeftOut { accounts, .. } if accounts[0].account == "b@example.com"
    ) && e.message.contains("--discard-diverged b@example.com")));
    // Down and back again: not a second time.
    sim.rounds(4, all(Component::Appserver, Vote::Down));
    sim.rounds(6, all(Component::Appserver, Vote::Up));
    assert_eq!(seeded(&sim).len(), 2);
}

#[test]
fn manual_policy_never_reprotects_by_itself() {
    let mut sim = promoted(ReprotectPolicy::Manual);
    sim.rounds(8, all(Component::Appserver, Vote::Up));
    assert!(seeded(&sim).is_empty());
}

#[test]
fn an_auto_run_stopped_by_a_peer_going_down_waits_for_it_to_be_up() {
    let mut sim = promoted(ReprotectPolicy::Auto);
    sim.rounds(2, all(Component::Appserver, Vote::Up));
    // Rise is 2: the verdict is Up from the second round; take one batch
    // by hand, then the peer falls before the next.
    let before = seeded(&sim).len();
    sim.rounds(4, all(Component::Appserver, Vote::Down));
    sim.rounds(4, all(Component::Appserver, Vote::Unknown));
    assert_eq!(
        seeded(&sim).len(),
        before,
        "a batch ran with the peer not Up"
    );
}

#[test]
fn the_operator_is_refused_while_no_witness_sees_the_destination_up() {
    let mut sim = promoted(ReprotectPolicy::Manual);
    sim.operator(request(&["a@example.com"], Discard::None, Vote::Down));
    assert!(seeded(&sim).is_empty());
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Refused) && e.message.contains(SOURCE))
    );
}

#[test]
fn the_operator_seeds_the_others_and_a_diverged_account_only_once_named() {
    let mut sim = promoted(ReprotectPolicy::Manual);
    sim.operator(request(&ACCOUNTS, Discard::None, Vote::Up));
    let all_seeded: Vec<String> = seeded(&sim).into_iter().flat_map(|(_, a)| a).collect();
    assert_eq!(
        all_seeded,
        ["a@example.com", "c@example.com", "d@example.com"]
    );
    assert_eq!(sim.state.protection.left_out.len(), 1);
    assert_eq!(sim.state.protection.diverged.len(), 1, "still diverged");
    sim.operator(request(
        &["b@example.com"],
        Discard::Named(vec!["b@example.com".into()]),
        Vote::Up,
    ));
    assert_eq!(
        seeded(&sim).last().map(|(_, a)| a.clone()),
        Some(vec!["b@example.com".to_string()])
    );
    assert!(sim.state.protection.diverged.is_empty(), "resolved");
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::DivergenceDiscarded { .. }))
    );
}

#[test]
fn a_run_killed_between_batches_resumes_at_the_first_unfinished_one() {
    let mut sim = promoted(ReprotectPolicy::Manual);
    // The first batch runs; the process dies with the second handed out.
    let first = sim
        .feed_one(Input::Operator(request(&ACCOUNTS, Discard::None, Vote::Up)))
        .expect("first batch");
    let r = sim.world.run(&first);
    let second = sim
        .feed_one(Input::Outcome(habeat::engine::ActionOutcome {
            id: first.id,
            result: r,
        }))
        .expect("second batch");
    assert!(matches!(
        second.kind,
        ActionKind::SetAccountDestination { .. }
    ));
    sim.restart();
    sim.operator(request(&["x@example.com"], Discard::None, Vote::Up));
    let got = seeded(&sim);
    assert_eq!(
        got,
        vec![
            (
                SOURCE.into(),
                vec!["a@example.com".into(), "c@example.com".into()]
            ),
            (SOURCE.into(), vec!["d@example.com".into()]),
        ],
        "the interrupted run goes on, neither repeating the first batch nor skipping the second"
    );
}

#[test]
fn auto_gives_a_new_account_on_the_peer_a_replica_here_once() {
    let mut sim = Sim::new(cfg(ReprotectPolicy::Auto), World::new(&ACCOUNTS));
    sim.rounds(3, all(Component::Appserver, Vote::Up));
    sim.feed(Input::Unreplicated {
        accounts: vec!["new@example.com".into()],
    });
    assert!(
        seeded(&sim).is_empty(),
        "only noted: the next round decides"
    );
    sim.round(all(Component::Appserver, Vote::Up));
    assert_eq!(
        seeded(&sim),
        vec![(OWN.to_string(), vec!["new@example.com".to_string()])]
    );
    // The next survey still lists it without a replica (it initialises):
    // once per account.
    sim.feed(Input::Unreplicated {
        accounts: vec!["new@example.com".into()],
    });
    sim.rounds(3, all(Component::Appserver, Vote::Up));
    assert_eq!(seeded(&sim).len(), 1);
}

/// One thing that happens in a random history.
#[derive(Debug, Clone)]
enum Op {
    Round(Vote),
    Reprotect {
        accounts: Vec<usize>,
        discard: Option<Vec<usize>>,
        all: bool,
        evidence: Vote,
    },
    Unreplicated(Vec<usize>),
    Restart,
    /// A batch handed out is left unanswered (the process is killed).
    Kill,
}

fn vote() -> impl Strategy<Value = Vote> {
    prop_oneof![Just(Vote::Up), Just(Vote::Down), Just(Vote::Unknown)]
}

fn op() -> impl Strategy<Value = Op> {
    let idx = prop::collection::vec(0usize..6, 0..6);
    prop_oneof![
        4 => vote().prop_map(Op::Round),
        2 => (idx.clone(), prop::option::of(idx.clone()), any::<bool>(), vote()).prop_map(
            |(accounts, discard, all, evidence)| Op::Reprotect { accounts, discard, all, evidence }
        ),
        1 => idx.prop_map(Op::Unreplicated),
        1 => Just(Op::Restart),
        1 => Just(Op::Kill),
    ]
}

const NAMES: [&str; 6] = [
    "a@example.com",
    "b@example.com",
    "c@example.com",
    "d@example.com",
    "e@example.com",
    "f@example.com",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// `no-seed-over-a-diverged-copy` (15): over random histories
    /// (promotions with random accounts at risk, the peer up, down and
    /// unknown, operator runs with and without --discard-diverged, kills
    /// and restarts, either policy), no `setAccountDestination` seeds a
    /// diverged account onto the mailstore it was promoted from unless
    /// the operator named it first.
    #[test]
    fn no_diverged_account_is_seeded_onto_its_old_mailstore_unless_named(
        at_risk in prop::collection::vec(0usize..4, 0..4),
        auto in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let policy = if auto { ReprotectPolicy::Auto } else { ReprotectPolicy::Manual };
        let mut world = World::new(&ACCOUNTS);
        world.at_risk = at_risk.iter().map(|i| behind(NAMES[*i], 5, 1)).collect();
        let mut sim = Sim::new(cfg(policy), world);
        let mut named: BTreeSet<String> = BTreeSet::new();
        let mut checked = 0;
        for op in &ops {
            match op {
                Op::Round(v) => {
                    sim.round(all(Component::Appserver, *v));
                }
                Op::Reprotect { accounts, discard, all: every, evidence } => {
                    let accounts: Vec<&str> = accounts.iter().map(|i| NAMES[*i]).collect();
                    let discard = match (discard, every) {
                        (_, true) => Discard::All,
                        (Some(d), false) => Discard::Named(d.iter().map(|i| NAMES[*i].to_string()).collect()),
                        (None, false) => Discard::None,
                    };
                    for a in &accounts {
                        let is_named = match &discard {
                            Discard::All => true,
                            Discard::Named(n) => n.iter().any(|x| x == a),
                            Discard::None => false,
                        };
                        if is_named {
                            named.insert(a.to_string());
                        }
                    }
                    sim.operator(request(&accounts, discard, *evidence));
                }
                Op::Unreplicated(list) => {
                    sim.feed(Input::Unreplicated {
                        accounts: list.iter().map(|i| NAMES[*i].to_string()).collect(),
                    });
                }
                Op::Restart => sim.restart(),
                Op::Kill => {
                    sim.advance(sim.cfg.interval);
                    let _ = sim.feed_one(Input::Round(habeat::model::Round {
                        observations: all(Component::Appserver, Vote::Up),
                        local_leader: Some(true),
                        raft_servers: None,
                    }));
                    sim.restart();
                }
            }
            // Every batch handed out since (run or killed), against the
            // accounts at risk that were promoted from SOURCE.
            for e in &sim.events[checked..] {
                let EventKind::ActionStarted { action: a } = &e.kind else { continue };
                if let ActionKind::SetAccountDestination { destination, accounts, .. } = &a.kind {
                    for acc in accounts {
                        let diverged = destination == SOURCE
                            && sim.world.promoted.contains(acc)
                            && at_risk.iter().any(|i| NAMES[*i] == acc);
                        prop_assert!(
                            !diverged || named.contains(acc),
                            "{acc} seeded onto {destination} unnamed"
                        );
                    }
                }
            }
            checked = sim.events.len();
        }
    }
}
