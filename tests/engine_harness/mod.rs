//! Test driver for the engine: a fake Carbonio (accounts that really move
//! on promotion), a fake Consul gate, and a loop that runs each action and
//! feeds its outcome back, like the executor will.
#![allow(dead_code)]

use habeat::engine::{
    self, Action, ActionKind, ActionOutcome, EngineConfig, Event, GateRefusal, Input,
    OperatorCommand, OutcomeResult, PreStepCheck, PromoteTarget, State, UnixMillis,
};
use habeat::model::{Component, Observation, Role, Round, Vote, WitnessId, WitnessKind};
use std::time::Duration;

pub const SOURCE: &str = "mbox1.example.com";

/// A secondary-DC node watching `primary`, with every optional step on.
pub fn full_config() -> EngineConfig {
    let mut c = EngineConfig::new(
        "secondary",
        "primary",
        &[Role::Appserver, Role::Proxyserver, Role::Consulserver],
    );
    c.source_mail_host = Some(SOURCE.into());
    c.peer_proxy_host = Some("proxy1.example.com".into());
    c.flush_cache = true;
    c.restart_replica = true;
    c.proxy_enable_activate = true;
    c.proxy_enable_deactivate = true;
    c.proxy_activate = vec![argv("bgp-announce")];
    c.proxy_deactivate = vec![argv("bgp-withdraw")];
    c.after_promotion = vec![argv("notify-promoted"), argv("page-oncall")];
    c.on_peer_recovered = vec![argv("notify-recovered")];
    c.own_consul_hosts = vec!["svc2.example.com".into()];
    c.peer_consul_hosts = vec!["svc1.example.com".into(), "svc3.example.com".into()];
    c
}

/// Only the appserver role.
pub fn appserver_config() -> EngineConfig {
    let mut c = full_config();
    c.roles = vec![Role::Appserver];
    c
}

pub fn argv(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

pub fn obs(component: Component, kind: WitnessKind, vote: Vote) -> Observation {
    Observation {
        witness: WitnessId { component, kind },
        vote,
        reason: format!("test says {vote:?}"),
        latency: Duration::ZERO,
    }
}

/// The three usual witnesses of a component.
pub fn kinds() -> [WitnessKind; 3] {
    [
        WitnessKind::Icmp,
        WitnessKind::ConsulMembers,
        WitnessKind::ConsulHealth,
    ]
}

/// A round where every witness of `component` says `vote`.
pub fn all(component: Component, vote: Vote) -> Vec<Observation> {
    kinds()
        .into_iter()
        .map(|k| obs(component, k, vote))
        .collect()
}

/// What the fake outside world does with each action.
#[derive(Debug, Clone)]
pub struct World {
    /// Accounts still hosted on the source mailstore.
    pub on_source: Vec<String>,
    /// Accounts promoted to this DC, in order, with repeats (a repeat is a bug).
    pub promoted: Vec<String>,
    /// Whether this side holds the Consul majority.
    pub quorum: bool,
    /// Actions run, in order.
    pub log: Vec<ActionKind>,
    /// Listing fails (bad output).
    pub listing_broken: bool,
    /// These kinds fail.
    pub failing: Vec<fn(&ActionKind) -> bool>,
    /// A leader appears after raft recovery.
    pub leader_after_recovery: bool,
    /// Promotions `core getAllOperations` shows running on the server.
    pub operations: Vec<String>,
    /// The executor finds the quorum gate lost before the next gated
    /// action (its Consul session expired during an earlier step).
    pub gate_lost: bool,
    /// The primary's serving lease cannot be taken over for this many
    /// more automatic promotion attempts (`lease-before-takeover`).
    pub peer_lease_held: u32,
    /// Raft recovery gives this side the Consul majority (the quorum gate
    /// opens from then on), as in the loss of the peer DC.
    pub quorum_after_recovery: bool,
    /// The fence agent confirms the peer node OFF.
    pub fence_confirms: bool,
    /// Every action handed to the world, whole (with its checks).
    pub handed: Vec<Action>,
    /// The accounts the listing names at risk (with their gap).
    pub at_risk: Vec<habeat::replica::Risk>,
}

impl World {
    pub fn new(accounts: &[&str]) -> World {
        World {
            on_source: accounts.iter().map(|s| s.to_string()).collect(),
            promoted: Vec::new(),
            quorum: true,
            log: Vec::new(),
            listing_broken: false,
            failing: Vec::new(),
            leader_after_recovery: true,
            operations: Vec::new(),
            gate_lost: false,
            peer_lease_held: 0,
            quorum_after_recovery: false,
            fence_confirms: true,
            handed: Vec::new(),
            at_risk: Vec::new(),
        }
    }

    /// Carry out an action, like the executor would.
    pub fn run(&mut self, a: &Action) -> OutcomeResult {
        self.log.push(a.kind.clone());
        self.handed.push(a.clone());
        if self.failing.iter().any(|f| f(&a.kind)) {
            return OutcomeResult::Failed {
                reason: "exit status 1".into(),
            };
        }
        // The checks the engine handed out with the action, as the
        // executor carries them out.
        if self.gate_lost && a.checks.contains(&PreStepCheck::GateStillHeld) {
            self.gate_lost = false;
            return OutcomeResult::GateRefused {
                refusal: GateRefusal::Lost {
                    keys: vec!["habeat/failover/test".into()],
                },
            };
        }
        if self.peer_lease_held > 0
            && a.checks
                .iter()
                .any(|c| matches!(c, PreStepCheck::PeerLeaseTakenOver { .. }))
        {
            self.peer_lease_held -= 1;
            return OutcomeResult::PeerLeaseWait {
                wait: habeat::engine::PeerLeaseWait::Held {
                    key: "habeat/serving/test".into(),
                },
            };
        }
        match &a.kind {
            ActionKind::ListAccounts { .. } => {
                if self.listing_broken {
                    OutcomeResult::Failed {
                        reason: "Unable to communicate with server".into(),
                    }
                } else {
                    OutcomeResult::Listed {
                        accounts: self.on_source.clone(),
                        at_risk: self
                            .at_risk
                            .iter()
                            .filter(|r| self.on_source.contains(&r.account))
                            .cloned()
                            .collect(),
                    }
                }
            }
            ActionKind::ListOperations { .. } => OutcomeResult::Operations {
                promotions: self.operations.clone(),
            },
            ActionKind::AcquireQuorumGate { .. } => {
                if self.quorum {
                    ok()
                } else {
                    OutcomeResult::GateRefused {
                        refusal: GateRefusal::NoQuorum {
                            detail: "No cluster leader".into(),
                        },
                    }
                }
            }
            ActionKind::PromoteAccounts { target, .. } => {
                let moving: Vec<String> = match target {
                    PromoteTarget::SourceMailHost(_) => self.on_source.clone(),
                    PromoteTarget::Accounts(a) => a
                        .iter()
                        .filter(|x| self.on_source.contains(x))
                        .cloned()
                        .collect(),
                };
                self.on_source.retain(|x| !moving.contains(x));
                self.promoted.extend(moving);
                ok()
            }
            ActionKind::RaftRecovery { .. } => {
                if self.quorum_after_recovery {
                    self.quorum = true;
                }
                ok()
            }
            ActionKind::Fence { plugs, .. } => {
                if self.fence_confirms {
                    OutcomeResult::Fenced { calls: Vec::new() }
                } else {
                    OutcomeResult::FenceUnconfirmed {
                        failure: habeat::model::FenceFailure::On {
                            plug: plugs.first().cloned().unwrap_or_default(),
                        },
                        calls: Vec::new(),
                    }
                }
            }
            ActionKind::ConfirmLeader => {
                if self.leader_after_recovery {
                    ok()
                } else {
                    OutcomeResult::Failed {
                        reason: "no leader after 60s".into(),
                    }
                }
            }
            _ => ok(),
        }
    }
}

pub fn ok() -> OutcomeResult {
    OutcomeResult::Succeeded {
        detail: "ok".into(),
    }
}

/// The engine plus a world and a clock.
pub struct Sim {
    pub cfg: EngineConfig,
    pub state: State,
    /// What the engine's process knows besides (never saved).
    pub live: engine::Live,
    pub now: UnixMillis,
    /// The boot clock beside `now` (`None`: the engine measures by the
    /// wall clock alone). [`Sim::advance`] moves both; [`Sim::set_wall`]
    /// steps the wall clock alone, [`Sim::reboot`] starts another boot.
    pub boot: Option<habeat::engine::BootTime>,
    pub world: World,
    pub events: Vec<Event>,
    /// The action handed out and not yet answered.
    pub pending: Option<Action>,
}

impl Sim {
    pub fn new(cfg: EngineConfig, world: World) -> Sim {
        Sim {
            cfg,
            state: State::new(),
            live: engine::Live::default(),
            now: UnixMillis(1_800_000_000_000),
            boot: Some(habeat::engine::BootTime {
                boot: habeat::engine::BootId(1),
                ms: 3_600_000,
            }),
            world,
            events: Vec::new(),
            pending: None,
        }
    }

    fn apply(&mut self, input: Input) -> Option<Action> {
        // The query beside the step: what `plan_round` says the round
        // leads to is what the step hands out (in every scenario of every
        // test that uses this harness).
        let planned = match &input {
            Input::Round(r) => Some(
                engine::plan_round(&self.state, &self.live, r, self.clock(), &self.cfg)
                    .roles
                    .into_iter()
                    .find_map(|p| match p.next {
                        engine::Next::Act { kind } => Some(kind),
                        _ => None,
                    }),
            ),
            _ => None,
        };
        let t = engine::step(&self.state, &self.live, &input, self.clock(), &self.cfg);
        if let Some(planned) = planned {
            // With no role acting, a step gives back a gate it holds, or
            // takes a re-protection batch; the plan, which asks the roles
            // only, names neither.
            let handed = t.actions.first().map(|a| a.kind.clone()).filter(|k| {
                planned.is_some()
                    || !matches!(
                        k,
                        ActionKind::ReleaseQuorumGate { .. }
                            | ActionKind::SetAccountDestination { .. }
                    )
            });
            assert_eq!(planned, handed, "plan_round and step disagree");
        }
        // Every state the engine hands out must survive a save/load.
        let json = serde_json::to_string(&t.state).expect("state serializes");
        let back: State = serde_json::from_str(&json).expect("state deserializes");
        assert_eq!(back.version, t.state.version);
        self.state = t.state;
        self.live = t.live;
        self.events.extend(t.events);
        assert!(
            t.actions.len() <= 1,
            "the engine hands out one action at a time"
        );
        self.pending = t.actions.into_iter().next();
        self.pending.clone()
    }

    /// Feed one input; return the action handed out (not run).
    pub fn feed_one(&mut self, input: Input) -> Option<Action> {
        self.apply(input)
    }

    /// Feed an input and run the resulting chain of actions to its end.
    pub fn feed(&mut self, input: Input) -> Vec<ActionKind> {
        let mut ran = Vec::new();
        let mut next = self.apply(input);
        while let Some(a) = next {
            ran.push(a.kind.clone());
            let result = self.world.run(&a);
            next = self.apply(Input::Outcome(ActionOutcome { id: a.id, result }));
        }
        ran
    }

    /// One probe round `interval` after the previous, actions run.
    pub fn round(&mut self, observations: Vec<Observation>) -> Vec<ActionKind> {
        self.round_with(observations, Some(true), None)
    }

    pub fn round_with(
        &mut self,
        observations: Vec<Observation>,
        local_leader: Option<bool>,
        raft_servers: Option<Vec<habeat::model::RaftServer>>,
    ) -> Vec<ActionKind> {
        self.advance(self.cfg.interval);
        self.feed(Input::Round(Round {
            observations,
            local_leader,
            raft_servers,
        }))
    }

    /// One round `interval` after the previous; returns the action it
    /// hands out without running it (to crash or answer by hand).
    pub fn round_step(&mut self, observations: Vec<Observation>) -> Option<Action> {
        self.advance(self.cfg.interval);
        self.feed_one(Input::Round(Round {
            observations,
            local_leader: Some(true),
            raft_servers: None,
        }))
    }

    /// `n` rounds of the same observations; all actions run.
    pub fn rounds(&mut self, n: u32, observations: Vec<Observation>) -> Vec<ActionKind> {
        (0..n)
            .flat_map(|_| self.round(observations.clone()))
            .collect()
    }

    /// Rounds every `interval` for (at least) `d`; all actions run.
    pub fn rounds_for(&mut self, d: Duration, observations: Vec<Observation>) -> Vec<ActionKind> {
        let n = d.as_millis().div_ceil(self.cfg.interval.as_millis().max(1));
        self.rounds(u32::try_from(n).unwrap_or(u32::MAX), observations)
    }

    pub fn operator(&mut self, c: OperatorCommand) -> Vec<ActionKind> {
        self.feed(Input::Operator(c))
    }

    /// Time passes: both clocks move by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.plus(d);
        self.boot = self.boot.map(|b| b.plus(d));
    }

    /// The wall clock is set to `wall` (an NTP step, `date -s`); the boot
    /// clock does not move.
    pub fn set_wall(&mut self, wall: UnixMillis) {
        self.now = wall;
    }

    /// The machine boots again: another boot id, its boot clock from
    /// zero; the wall clock goes on.
    pub fn reboot(&mut self) {
        self.boot = self.boot.map(|b| habeat::engine::BootTime {
            boot: habeat::engine::BootId(b.boot.0 + 1),
            ms: 0,
        });
        self.restart();
    }

    /// What the engine is fed as the time.
    pub fn clock(&self) -> habeat::engine::Now {
        habeat::engine::Now {
            wall: self.now,
            boot: self.boot,
        }
    }

    /// A restart: only what `state.json` holds survives.
    pub fn restart(&mut self) {
        let json = serde_json::to_vec(&self.state).expect("serialize");
        self.state = serde_json::from_slice(&json).expect("deserialize");
        // A new process: what the old one knew only in memory is gone.
        self.live = engine::Live::default();
        self.pending = None;
    }

    /// The reason the first role gives for doing nothing now, as data.
    pub fn reason(&self) -> Option<engine::Idle> {
        engine::plan(&self.state, &self.cfg, self.clock())
            .roles
            .into_iter()
            .next()
            .and_then(|r| match r.next {
                engine::Next::Idle(reason) => Some(reason),
                _ => None,
            })
    }

    pub fn why(&self) -> String {
        engine::plan(&self.state, &self.cfg, self.clock())
            .roles
            .iter()
            .map(|r| format!("{}: {}", r.role, r.text()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub fn is_promote(k: &ActionKind) -> bool {
    matches!(k, ActionKind::PromoteAccounts { .. })
}

/// Short names of actions, for readable assertions.
pub fn names(ks: &[ActionKind]) -> Vec<String> {
    ks.iter()
        .map(|k| match k {
            ActionKind::ListAccounts { .. } => "list".into(),
            ActionKind::ListOperations { .. } => "ops".into(),
            ActionKind::AcquireQuorumGate { .. } => "gate".into(),
            ActionKind::ReleaseQuorumGate { .. } => "release".into(),
            ActionKind::PromoteAccounts { .. } => "promote".into(),
            ActionKind::WriteLocks { .. } => "locks".into(),
            ActionKind::RemoveLocks { .. } => "unlock".into(),
            ActionKind::FlushCache { .. } => "flush".into(),
            ActionKind::PauseReplicas { .. } => "pause-replicas".into(),
            ActionKind::RestartReplicas { .. } => "restart-replicas".into(),
            ActionKind::StopHaModule => "stop-ha".into(),
            ActionKind::StartHaModule => "start-ha".into(),
            ActionKind::RunCommand { argv, .. } => format!("run:{}", argv.join(" ")),
            ActionKind::RaftRecovery { .. } => "raft-recovery".into(),
            ActionKind::ConfirmLeader => "confirm-leader".into(),
            ActionKind::Fence { .. } => "fence".into(),
            ActionKind::SetAccountDestination { .. } => "set-destination".into(),
        })
        .collect()
}
