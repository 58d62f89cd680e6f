//! The secondary's executor, modelled: what running each engine
//! [`Action`] does to the simulated world, and the outcome fed back.
//!
//! Copies `src/exec/` (`Executor::run`, `pre_step_checks` carrying out
//! the action's `checks`: `gate_lost`, then `take_over_peer_lease` of
//! `src/exec/lease.rs`) and `src/consul/gate.rs` (the quorum gate: a
//! session and the KV lock `habeat/failover/<host>`; a key held by a dead
//! habeat of this node is taken over). Only what decides safety is kept:
//! the carbonio commands move accounts or fail, the fence agent confirms
//! OFF (powering the primary node off) or does not.

use super::schedule::Fails;
use super::world::{KeyName, Owner, PRIMARY_HOST, Side, World};
use habeat::engine::{
    Action, ActionKind, EngineConfig, GateRefusal, OutcomeResult, PeerLeaseWait, PreStepCheck,
    PromoteTarget,
};
use habeat::model::FenceFailure;

const GATE_LOCK_DELAY_MS: u64 = 15_000;

/// What the executor process holds in memory (lost with it).
#[derive(Debug, Default, Clone)]
pub struct ExecMem {
    /// The quorum gate's session (`Executor::gates`).
    pub gate: Option<usize>,
    /// With the gate off, the session of our own that took the serving
    /// lease over (`Executor::lease_sessions`).
    pub takeover: Option<usize>,
}

/// What happened, for the invariant checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    /// promoteAccounts ran (these accounts moved; perhaps none).
    Promoted(Vec<String>),
    /// The fence agent confirmed the primary node OFF.
    FencedOff,
}

/// Classes armed to fail at their next action.
#[derive(Debug, Default, Clone)]
pub struct Armed(pub Vec<Fails>);

impl Armed {
    fn take(&mut self, f: Fails) -> bool {
        match self.0.iter().position(|x| *x == f) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }
}

fn failed(why: &str) -> OutcomeResult {
    OutcomeResult::Failed { reason: why.into() }
}

fn ok() -> OutcomeResult {
    OutcomeResult::Succeeded {
        detail: "ok".into(),
    }
}

/// Run one action.
pub fn run(
    a: &Action,
    cfg: &EngineConfig,
    w: &mut World,
    mem: &mut ExecMem,
    armed: &mut Armed,
) -> (OutcomeResult, Effect) {
    if let Some(stop) = pre_step_checks(a, cfg, w, mem) {
        return (stop, Effect::None);
    }
    let now = w.now;
    match &a.kind {
        ActionKind::ListAccounts { .. } => {
            if armed.take(Fails::Listing) {
                return (failed("Unable to communicate with server"), Effect::None);
            }
            (
                OutcomeResult::Listed {
                    accounts: w.on(super::world::Home::Primary),
                    at_risk: Vec::new(),
                },
                Effect::None,
            )
        }
        ActionKind::ListOperations { .. } => (
            OutcomeResult::Operations {
                promotions: Vec::new(),
            },
            Effect::None,
        ),
        ActionKind::AcquireQuorumGate { .. } => (acquire_gate(w, mem, now), Effect::None),
        ActionKind::ReleaseQuorumGate { .. } => {
            if let Some(id) = mem.gate.take()
                && w.leader(Side::Secondary)
            {
                w.consul.release(KeyName::Failover, id);
                w.consul.invalidate(id, now);
            }
            (ok(), Effect::None)
        }
        ActionKind::PromoteAccounts { target, .. } => {
            if armed.take(Fails::Promote) {
                return (failed("promoteAccounts: exit status 1"), Effect::None);
            }
            let mut moved = Vec::new();
            for (i, acc) in super::world::ACCOUNTS.iter().enumerate() {
                let wanted = match target {
                    PromoteTarget::SourceMailHost(_) => true,
                    PromoteTarget::Accounts(l) => l.iter().any(|x| x == acc),
                };
                if wanted && w.accounts[i] == super::world::Home::Primary {
                    w.accounts[i] = super::world::Home::Secondary;
                    moved.push((*acc).to_owned());
                }
            }
            (ok(), Effect::Promoted(moved))
        }
        ActionKind::Fence { plugs, .. } => {
            if armed.take(Fails::Fence) {
                return (
                    OutcomeResult::FenceUnconfirmed {
                        failure: FenceFailure::On {
                            plug: plugs.first().cloned().unwrap_or_default(),
                        },
                        calls: Vec::new(),
                    },
                    Effect::None,
                );
            }
            w.primary_power = false;
            (
                OutcomeResult::Fenced { calls: Vec::new() },
                Effect::FencedOff,
            )
        }
        _ => {
            if armed.take(Fails::Other) {
                return (failed("exit status 1"), Effect::None);
            }
            (ok(), Effect::None)
        }
    }
}

/// `src/consul/gate.rs`: a new session, acquire the key; a key held by
/// a gate session of this node that is not ours (a dead habeat's) is
/// destroyed and acquired again.
fn acquire_gate(w: &mut World, mem: &mut ExecMem, now: u64) -> OutcomeResult {
    if !w.leader(Side::Secondary) {
        return OutcomeResult::GateRefused {
            refusal: GateRefusal::NoQuorum {
                detail: "No cluster leader".into(),
            },
        };
    }
    if let Some(h) = w.consul.failover.holder {
        if Some(h) == mem.gate {
            return ok();
        }
        if w.consul.sessions[h].owner == Owner::SecondaryGate {
            w.consul.invalidate(h, now);
        } else {
            return OutcomeResult::GateRefused {
                refusal: GateRefusal::HeldByAnother {
                    host: PRIMARY_HOST.into(),
                    holder: None,
                },
            };
        }
    }
    let id = w
        .consul
        .create(Owner::SecondaryGate, None, GATE_LOCK_DELAY_MS, now);
    if w.consul.acquire(KeyName::Failover, id, now) {
        mem.gate = Some(id);
        ok()
    } else {
        w.consul.invalidate(id, now);
        OutcomeResult::GateRefused {
            refusal: GateRefusal::Consul {
                detail: "lock-delay".into(),
            },
        }
    }
}

fn pre_step_checks(
    a: &Action,
    cfg: &EngineConfig,
    w: &mut World,
    mem: &mut ExecMem,
) -> Option<OutcomeResult> {
    // The checks the engine handed out with the action, in its order
    // (gate first): GateStillHeld (`Executor::gate_lost`).
    if a.checks.contains(&PreStepCheck::GateStillHeld) {
        let held = mem.gate.is_some_and(|id| {
            w.consul.valid(id) && w.consul.failover.holder == Some(id) && w.leader(Side::Secondary)
        });
        if !held {
            let refusal = match mem.gate.take() {
                Some(_) => GateRefusal::Lost {
                    keys: vec![EngineConfig::gate_key(PRIMARY_HOST)],
                },
                None => GateRefusal::NotHeld,
            };
            return Some(OutcomeResult::GateRefused { refusal });
        }
    }
    // PeerLeaseTakenOver (`take_over_peer_lease`).
    let leased = a
        .checks
        .iter()
        .any(|c| matches!(c, PreStepCheck::PeerLeaseTakenOver { .. }));
    if !leased {
        return None;
    }
    let key = habeat::lease::key(PRIMARY_HOST);
    let now = w.now;
    if !w.leader(Side::Secondary) {
        // Unreadable: with the gate off and require_peer_lease: auto
        // (the default), go on without it.
        return if cfg.quorum_gate {
            Some(OutcomeResult::PeerLeaseWait {
                wait: PeerLeaseWait::Consul {
                    key,
                    detail: "No cluster leader".into(),
                },
            })
        } else {
            None
        };
    }
    if !w.consul.serving.exists {
        return None;
    }
    let own = mem.gate.is_none();
    let session = match (mem.gate, mem.takeover) {
        (Some(g), _) => g,
        (None, Some(t)) if w.consul.valid(t) => t,
        _ => w.consul.create(Owner::SecondaryTakeover, None, 0, now),
    };
    let took = w.consul.acquire(KeyName::Serving, session, now);
    if own {
        if took {
            mem.takeover = Some(session);
        } else {
            mem.takeover = None;
            w.consul.invalidate(session, now);
        }
    }
    if took {
        None
    } else if w.consul.serving.holder.is_some() {
        Some(OutcomeResult::PeerLeaseWait {
            wait: PeerLeaseWait::Held { key },
        })
    } else {
        Some(OutcomeResult::PeerLeaseWait {
            wait: PeerLeaseWait::LockDelay { key },
        })
    }
}
