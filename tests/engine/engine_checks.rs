//! The engine decides which checks the executor makes right before an
//! action (`quorum-gate`, `lease-before-takeover`) and hands them out with
//! it; the executor only carries them out. Also the engine's choice of
//! `input_file` for an automatic promotion by name.

use crate::engine_harness;
use engine_harness::*;
use habeat::engine::{
    Action, ActionKind, EngineConfig, FencePlan, OperatorCommand, Origin, PreStepCheck,
    PromoteTarget,
};
use habeat::model::{Component, FenceAction, Vote};

const ACCOUNTS: [&str; 2] = ["a@example.com", "b@example.com"];

fn down() -> Vec<habeat::model::Observation> {
    all(Component::Appserver, Vote::Down)
}

/// The checks handed out with each action the world ran, by short name.
fn checks(sim: &Sim) -> Vec<(String, Vec<PreStepCheck>)> {
    sim.world
        .handed
        .iter()
        .map(|a: &Action| {
            (
                names(std::slice::from_ref(&a.kind)).remove(0),
                a.checks.clone(),
            )
        })
        .collect()
}

fn lease() -> PreStepCheck {
    PreStepCheck::PeerLeaseTakenOver {
        host: "mbox1.example.com".into(),
    }
}

fn fenced(mut cfg: EngineConfig) -> EngineConfig {
    cfg.fencing.insert(
        Component::Appserver,
        FencePlan {
            action: FenceAction::Off,
            plugs: vec!["mbox1".into()],
        },
    );
    cfg
}

#[test]
fn an_automatic_failover_hands_the_gate_and_lease_checks_to_the_fence_and_the_promotion() {
    let mut sim = Sim::new(fenced(appserver_config()), World::new(&ACCOUNTS));
    sim.rounds(3, down());
    assert_eq!(sim.world.promoted, ACCOUNTS, "{}", sim.why());
    let ran = names(&sim.world.log);
    for step in ["fence", "promote", "run:bgp-announce"] {
        assert!(ran.iter().any(|n| n == step), "{ran:?}");
    }
    for (name, checks) in checks(&sim) {
        let want = match name.as_str() {
            "fence" | "promote" => vec![PreStepCheck::GateStillHeld, lease()],
            // The proxy switch's activation: gated, no lease of its own.
            "run:bgp-announce" => vec![PreStepCheck::GateStillHeld],
            _ => vec![],
        };
        assert_eq!(checks, want, "{name}");
    }
}

#[test]
fn with_the_quorum_gate_off_only_the_lease_is_checked() {
    let mut cfg = fenced(appserver_config());
    cfg.quorum_gate = false;
    let mut sim = Sim::new(cfg, World::new(&ACCOUNTS));
    sim.rounds(3, down());
    assert_eq!(sim.world.promoted, ACCOUNTS, "{}", sim.why());
    for (name, checks) in checks(&sim) {
        let want = match name.as_str() {
            "fence" | "promote" => vec![lease()],
            _ => vec![],
        };
        assert_eq!(checks, want, "{name}");
    }
}

/// The operator's promotion carries no gate check and no input file; its
/// only check, without `--force`, is the primary's serving lease (the
/// command's judgement sees only the witnesses); with `--force`, none.
#[test]
fn an_operator_promotion_carries_only_the_lease_check_and_none_when_forced() {
    for force in [false, true] {
        let mut sim = Sim::new(appserver_config(), World::new(&ACCOUNTS));
        sim.operator(OperatorCommand::Promote {
            target: PromoteTarget::Accounts(vec!["b@example.com".into()]),
            accounts: vec![],
            threads: None,
            force,
            evidence: all(Component::Appserver, Vote::Down),
            follow_ups: true,
        });
        let promote = sim
            .world
            .handed
            .iter()
            .find(|a| is_promote(&a.kind))
            .expect("promoted");
        assert_eq!(promote.origin, Origin::Operator);
        let want = if force { vec![] } else { vec![lease()] };
        assert_eq!(promote.checks, want, "--force: {force}");
        assert!(
            matches!(
                promote.kind,
                ActionKind::PromoteAccounts {
                    input_file: false,
                    ..
                }
            ),
            "{:?}",
            promote.kind
        );
    }
}
