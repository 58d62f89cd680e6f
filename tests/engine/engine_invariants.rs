//! Property tests: random sequences of rounds, outcomes, operator commands,
//! clock steps, restarts and crashes, checked against the engine-side
//! safety invariants of SPEC section 5 (1, 2, 3, 4, 5, 7, 10).
//!
//! The witness oracle here is written independently of the engine's
//! hysteresis: from the raw history of a witness it says what its vote must
//! be, and a promotion is only allowed when that oracle agrees.

use habeat::config::{Quorum, Rearm};
use habeat::engine::{
    self, Action, ActionKind, ActionOutcome, CommandPurpose, EngineConfig, EventKind, Input,
    OperatorCommand, Origin, OutcomeResult, PromoteTarget, State, StepStatus, UnixMillis,
};
use habeat::model::{Component, Observation, Role, Round, Vote, WitnessId, WitnessKind};
use proptest::prelude::*;
use std::collections::HashSet;
use std::time::Duration;

const SOURCE: &str = "mbox1.example.com";
const KINDS: [WitnessKind; 3] = [
    WitnessKind::Icmp,
    WitnessKind::ConsulMembers,
    WitnessKind::ConsulHealth,
];

#[derive(Debug, Clone, Copy)]
enum Pattern {
    All(Vote),
    Each([Vote; 3]),
}

impl Pattern {
    fn votes(self) -> [Vote; 3] {
        match self {
            Pattern::All(v) => [v; 3],
            Pattern::Each(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Choice {
    Success,
    Fail,
    Timeout,
    Refuse,
}

#[derive(Debug, Clone)]
enum Op {
    Round {
        app: Pattern,
        proxy: Pattern,
        consul: Pattern,
        leader: Option<bool>,
        dt_ms: u64,
    },
    Outcome(Choice),
    Restart,
    Corrupt,
    Rearm,
    Pause(u64),
    Resume,
    Promote(bool),
    Jump(u64),
    /// Time passes without a round, and the engine is fed
    /// [`Input::Deadline`], as the daemon does when a witness's detection
    /// deadline comes before the next round has completed.
    Deadline(u64),
}

fn vote() -> impl Strategy<Value = Vote> {
    prop_oneof![Just(Vote::Up), Just(Vote::Down), Just(Vote::Unknown)]
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        5 => Just(Pattern::All(Vote::Down)),
        2 => Just(Pattern::All(Vote::Up)),
        1 => Just(Pattern::All(Vote::Unknown)),
        3 => [vote(), vote(), vote()].prop_map(Pattern::Each),
    ]
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        6 => Just(Choice::Success),
        1 => Just(Choice::Fail),
        1 => Just(Choice::Timeout),
        1 => Just(Choice::Refuse),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (pattern(), pattern(), pattern(), prop_oneof![Just(Some(true)), Just(Some(false)), Just(Some(false)), Just(None)], 500u64..4000)
            .prop_map(|(app, proxy, consul, leader, dt_ms)| Op::Round { app, proxy, consul, leader, dt_ms }),
        12 => choice().prop_map(Op::Outcome),
        2 => Just(Op::Restart),
        1 => Just(Op::Corrupt),
        2 => Just(Op::Rearm),
        1 => (10u64..7200).prop_map(Op::Pause),
        1 => Just(Op::Resume),
        1 => any::<bool>().prop_map(Op::Promote),
        2 => (30u64..10_000).prop_map(Op::Jump),
        4 => (1u64..3_000).prop_map(Op::Deadline),
    ]
}

fn config() -> impl Strategy<Value = EngineConfig> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_secs(600)),
            Just(Duration::from_secs(3600))
        ],
        1u32..5,
        1u32..4,
        (1u32..4, 1u32..4),
    )
        .prop_map(
            |(at_least_two, manual, gate, primary, block, fall, rise, serf)| {
                let mut c = EngineConfig::new(
                    if primary { "primary" } else { "secondary" },
                    if primary { "secondary" } else { "primary" },
                    &[Role::Appserver, Role::Proxyserver, Role::Consulserver],
                );
                c.source_mail_host = Some(SOURCE.into());
                c.peer_proxy_host = Some("proxy1.example.com".into());
                c.fall = fall;
                c.rise = rise;
                (c.serf_fall, c.serf_rise) = serf;
                c.quorum = if at_least_two {
                    Quorum::AtLeast(2)
                } else {
                    Quorum::All
                };
                c.rearm = if manual { Rearm::Manual } else { Rearm::Auto };
                c.quorum_gate = gate;
                c.disable_ha_module = primary;
                c.promotion_block = block;
                c.recovery_grace = Duration::from_secs(20);
                // The weakest raft rule, so raft recovery is exercised.
                c.raft_recovery = habeat::model::RaftRecoveryPolicy::Timer;
                c.flush_cache = true;
                c.restart_replica = true;
                c.proxy_enable_activate = true;
                c.proxy_enable_deactivate = true;
                c.proxy_activate = vec![vec!["announce".into()]];
                c.proxy_deactivate = vec![vec!["withdraw".into()]];
                c.after_promotion = vec![vec!["hook".into()]];
                c.on_peer_recovered = vec![vec!["recovered".into()]];
                c
            },
        )
}

/// The `fall` and `rise` of witness `i` of [`KINDS`]: the Serf witnesses
/// have their own (`detection.serf_fall`, `serf_rise`).
fn streaks(cfg: &EngineConfig, i: usize) -> (usize, usize) {
    let serf = matches!(
        KINDS[i],
        WitnessKind::ConsulMembers | WitnessKind::ConsulHealth
    );
    let (fall, rise) = if serf {
        (cfg.serf_fall, cfg.serf_rise)
    } else {
        (cfg.fall, cfg.rise)
    };
    (fall.max(1) as usize, rise.max(1) as usize)
}

/// The Down votes among the settled votes of [`KINDS`], each source one
/// vote (`one-source-one-vote`): ICMP is one, the two Serf witnesses
/// together are one, Down only when both are; and how many the quorum
/// needs (`all`: both sources, so every witness).
fn source_downs(cfg: &EngineConfig, votes: &[Vote]) -> (usize, usize) {
    let icmp = usize::from(votes[0] == Vote::Down);
    let serf = usize::from(votes[1] == Vote::Down && votes[2] == Vote::Down);
    let need = match cfg.quorum {
        Quorum::All => 2,
        Quorum::AtLeast(n) => n as usize,
    };
    (icmp + serf, need)
}

/// Model of one witness's settled vote from its raw history (oldest
/// first, already cut at gaps the engine treats as a restart), each entry
/// the time it was fed and the raw vote, `None` for a deadline fed
/// without a round (docs/decisions.md §1):
/// - Down after `fall` consecutive Downs, or at a deadline fed once `tol`
///   (`fall × interval` plus the last probe's grace) has passed since the
///   last Up, with at least `fall − 1` Downs (and nothing else) since it,
///   the last of them at most `fresh` (`interval + timeout`) before;
/// - Up after `rise` consecutive Ups; a Down vote then drops to Unknown
///   until those `rise` Ups;
/// - Unknown resets both counts and forgets the last Up.
///
/// [`evidence_for_down`] states the Down half again as a condition on the
/// history, not a simulation, and every Down vote is checked against it.
fn oracle(
    history: &[(UnixMillis, Option<Vote>)],
    fall: usize,
    rise: usize,
    tol: Duration,
    fresh: Duration,
) -> Vote {
    let mut vote = Vote::Unknown;
    let (mut ups, mut downs) = (0usize, 0usize);
    let mut last_up: Option<UnixMillis> = None;
    let mut last_seen: Option<UnixMillis> = None;
    for (t, v) in history {
        match v {
            None => {
                let due = last_up.is_some_and(|u| *t >= u && t.since(u) >= tol);
                let on_time = last_seen.is_some_and(|l| *t >= l && t.since(l) <= fresh);
                if vote != Vote::Down && downs > 0 && downs + 1 >= fall && due && on_time {
                    vote = Vote::Down;
                }
            }
            Some(Vote::Up) => {
                ups += 1;
                downs = 0;
                last_up = Some(*t);
                if ups >= rise {
                    vote = Vote::Up;
                } else if vote == Vote::Down {
                    vote = Vote::Unknown;
                }
            }
            Some(Vote::Down) => {
                downs += 1;
                ups = 0;
                if downs >= fall {
                    vote = Vote::Down;
                } else if vote != Vote::Up && vote != Vote::Down {
                    vote = Vote::Unknown;
                }
            }
            Some(Vote::Unknown) => {
                ups = 0;
                downs = 0;
                last_up = None;
                vote = Vote::Unknown;
            }
        }
        if v.is_some() {
            last_seen = Some(*t);
        }
    }
    vote
}

/// What a Down vote must rest on: the history's last `fall` observations
/// are Down; or, after the peer's last answer at `u`, only Down
/// observations, and a deadline fed at `T >= u + tol` with at least
/// `fall − 1` of them before it, the last at most `fresh` before `T`.
fn evidence_for_down(
    history: &[(UnixMillis, Option<Vote>)],
    fall: usize,
    tol: Duration,
    fresh: Duration,
) -> bool {
    let seen: Vec<(UnixMillis, Vote)> = history
        .iter()
        .filter_map(|(t, v)| v.map(|v| (*t, v)))
        .collect();
    if seen.len() >= fall
        && seen[seen.len() - fall..]
            .iter()
            .all(|(_, v)| *v == Vote::Down)
    {
        return true;
    }
    let Some(k) = seen.iter().rposition(|(_, v)| *v != Vote::Down) else {
        return false;
    };
    let (u, v) = seen[k];
    if v != Vote::Up {
        return false;
    }
    history.iter().any(|(t, v)| {
        let before: Vec<&(UnixMillis, Vote)> =
            seen[k + 1..].iter().filter(|(s, _)| s <= t).collect();
        v.is_none()
            && *t >= u
            && t.since(u) >= tol
            && before.len() + 1 >= fall
            && !before.is_empty()
            && before.last().is_some_and(|(l, _)| t.since(*l) <= fresh)
    })
}

/// A deadline's tolerance for a witness of `fall` whose peer answered at
/// once (the tests' observations have no latency): `fall × interval` plus
/// `interval / 20`, the grace at most the probe timeout.
fn tol(cfg: &EngineConfig, fall: usize) -> Duration {
    cfg.interval * fall as u32 + (cfg.interval / 20).min(cfg.probe_timeout)
}

/// How recent the last failure must be for a deadline to count.
fn fresh(cfg: &EngineConfig) -> Duration {
    cfg.interval + cfg.probe_timeout
}

/// Witness `i`'s raw history out of a component's.
fn of_witness(h: &[(UnixMillis, Option<[Vote; 3]>)], i: usize) -> Vec<(UnixMillis, Option<Vote>)> {
    h.iter().map(|(t, r)| (*t, r.map(|r| r[i]))).collect()
}

struct Checker {
    cfg: EngineConfig,
    state: State,
    /// The engine's process memory; a restart loses it.
    live: engine::Live,
    now: UnixMillis,
    pending: Option<Action>,
    /// Raw appserver votes per witness since the last gap.
    history: Vec<(UnixMillis, Option<[Vote; 3]>)>,
    last_round_at: Option<UnixMillis>,
    last_app: [Vote; 3],
    /// Raw consul-server votes since the last gap, and the local leader.
    consul_history: Vec<(UnixMillis, Option<[Vote; 3]>)>,
    /// Raw peer-proxy votes since the last gap.
    proxy_history: Vec<(UnixMillis, Option<[Vote; 3]>)>,
    last_leader: Option<bool>,
    gate: Option<String>,
    paused_until: Option<UnixMillis>,
    safe: bool,
    commits: Vec<(u64, UnixMillis)>,
    rearmed_since_commit: bool,
    done: HashSet<(Role, u64, usize)>,
    promotions: usize,
}

impl Checker {
    fn new(cfg: EngineConfig) -> Checker {
        Checker {
            cfg,
            state: State::new(),
            live: engine::Live::default(),
            now: UnixMillis(1_800_000_000_000),
            pending: None,
            history: Vec::new(),
            last_round_at: None,
            last_app: [Vote::Unknown; 3],
            consul_history: Vec::new(),
            proxy_history: Vec::new(),
            last_leader: None,
            gate: None,
            paused_until: None,
            safe: false,
            commits: Vec::new(),
            rearmed_since_commit: true,
            done: HashSet::new(),
            promotions: 0,
        }
    }

    fn apply(&mut self, input: Input) -> Result<(), TestCaseError> {
        let t = engine::step(&self.state, &self.live, &input, self.now, &self.cfg);
        for e in &t.events {
            if matches!(
                e.kind,
                EventKind::Rearmed | EventKind::LockRemovedByHand { .. }
            ) {
                self.rearmed_since_commit = true;
            }
        }
        if let Input::Operator(OperatorCommand::Promote {
            force: false,
            evidence,
            ..
        }) = &input
            && evidence.iter().any(|o| o.vote == Vote::Up)
        {
            prop_assert!(
                t.refusal.is_some(),
                "manual promotion accepted while a witness sees the source Up"
            );
            prop_assert!(t.actions.is_empty());
        }
        prop_assert!(t.actions.len() <= 1);
        self.state = t.state;
        self.live = t.live.clone();
        self.pending = t.actions.into_iter().next();
        if let Some(a) = self.pending.clone() {
            self.check(&a)?;
        }
        Ok(())
    }

    fn paused(&self) -> bool {
        self.paused_until.is_some_and(|u| self.now < u)
    }

    fn check(&mut self, a: &Action) -> Result<(), TestCaseError> {
        let automatic = a.origin == Origin::Automatic;
        let changes = !matches!(a.kind, ActionKind::ReleaseQuorumGate { .. });
        if automatic && changes {
            prop_assert!(
                !self.paused(),
                "invariant 5: automatic {:?} while paused",
                a.kind
            );
            prop_assert!(!self.safe, "automatic {:?} during the safe hold", a.kind);
        }
        let gated = matches!(
            a.kind,
            ActionKind::PromoteAccounts { .. }
                | ActionKind::RunCommand {
                    purpose: CommandPurpose::ProxyActivate,
                    ..
                }
        );
        if automatic && gated && self.cfg.quorum_gate {
            prop_assert!(
                self.gate.is_some(),
                "invariant 5: {:?} without the quorum gate",
                a.kind
            );
        }
        if let ActionKind::PromoteAccounts { .. } = &a.kind {
            self.promotions += 1;
            let sr = a.step.expect("a promotion is a recorded step");
            if automatic {
                prop_assert!(
                    !self.cfg.is_primary,
                    "invariant 4: automatic promotion from primary"
                );
                prop_assert_eq!(
                    self.gate.as_deref().is_some() || !self.cfg.quorum_gate,
                    true
                );
                if self.cfg.quorum_gate {
                    prop_assert_eq!(self.gate.clone(), Some(format!("habeat/failover/{SOURCE}")));
                }
                // Invariants 1 and 2 from the independent oracle.
                let votes: Vec<Vote> = (0..3)
                    .map(|i| {
                        let h = of_witness(&self.history, i);
                        let (fall, rise) = streaks(&self.cfg, i);
                        oracle(&h, fall, rise, tol(&self.cfg, fall), fresh(&self.cfg))
                    })
                    .collect();
                prop_assert!(
                    !votes.contains(&Vote::Up),
                    "invariant 1: promotion while a witness votes Up: {votes:?}"
                );
                prop_assert!(
                    !self.last_app.contains(&Vote::Up),
                    "promotion right after a witness saw the source Up"
                );
                let (downs, need) = source_downs(&self.cfg, &votes);
                prop_assert!(
                    downs >= need,
                    "invariant 2: promotion without {need} independent Down votes: {votes:?}"
                );
            }
            if !self.commits.iter().any(|(p, _)| *p == sr.pipeline) {
                if automatic && let Some((_, at)) = self.commits.last() {
                    prop_assert!(
                        self.rearmed_since_commit,
                        "invariant 3: second automatic promotion without a re-arm"
                    );
                    prop_assert!(
                        self.now.since(*at) >= self.cfg.promotion_block,
                        "invariant 3: second automatic promotion within promotion_block"
                    );
                }
                self.commits.push((sr.pipeline, self.now));
                self.rearmed_since_commit = false;
            }
        }
        // The decisive step of a proxy switch or an HA module stop, first
        // run or retried or replayed after a crash, needs its peer Down
        // (invariants 1 and 2 for the other roles); a re-arm's switch back
        // needs its peer Up (any witness seeing it).
        if automatic {
            let settled = |h: &[(UnixMillis, Option<[Vote; 3]>)]| -> Vec<Vote> {
                (0..3)
                    .map(|i| {
                        let h = of_witness(h, i);
                        let (fall, rise) = streaks(&self.cfg, i);
                        oracle(&h, fall, rise, tol(&self.cfg, fall), fresh(&self.cfg))
                    })
                    .collect()
            };
            let is_down = |votes: &[Vote]| {
                let (downs, need) = source_downs(&self.cfg, votes);
                !votes.contains(&Vote::Up) && downs >= need
            };
            match &a.kind {
                ActionKind::RunCommand {
                    purpose: CommandPurpose::ProxyActivate,
                    ..
                } if a.role == Role::Proxyserver => {
                    let votes = settled(&self.proxy_history);
                    prop_assert!(
                        is_down(&votes),
                        "proxy switched while the peer proxy is not Down: {votes:?}"
                    );
                }
                ActionKind::StopHaModule => {
                    let votes = settled(&self.history);
                    prop_assert!(
                        is_down(&votes),
                        "HA module stopped while the peer appserver is not Down: {votes:?}"
                    );
                }
                ActionKind::RunCommand {
                    purpose: CommandPurpose::ProxyDeactivate,
                    ..
                } => {
                    let votes = settled(&self.proxy_history);
                    prop_assert!(
                        votes.contains(&Vote::Up),
                        "traffic switched back while the peer proxy is not Up: {votes:?}"
                    );
                }
                _ => {}
            }
        }
        if let ActionKind::RaftRecovery { .. } = &a.kind {
            let votes: Vec<Vote> = (0..3)
                .map(|i| {
                    let h = of_witness(&self.consul_history, i);
                    let (fall, rise) = streaks(&self.cfg, i);
                    oracle(&h, fall, rise, tol(&self.cfg, fall), fresh(&self.cfg))
                })
                .collect();
            let (downs, need) = source_downs(&self.cfg, &votes);
            prop_assert!(
                !votes.contains(&Vote::Up) && downs >= need,
                "raft recovery while the peer Consul servers are not Down: {votes:?}"
            );
            prop_assert_eq!(
                self.last_leader,
                Some(false),
                "raft recovery while the local Consul has a leader"
            );
        }
        if let Some(sr) = a.step {
            prop_assert!(
                !self.done.contains(&(a.role, sr.pipeline, sr.index)),
                "invariant 7: finished step {:?} run again",
                a.kind
            );
            let rs = self.state.role(a.role);
            let p = [rs.failover, rs.rearm]
                .into_iter()
                .flatten()
                .find(|p| p.id == sr.pipeline)
                .expect("the pipeline of a step action is recorded");
            for s in &p.steps[..sr.index] {
                prop_assert!(
                    matches!(s.status, StepStatus::Done | StepStatus::GaveUp),
                    "invariant 7: step {:?} skipped an unfinished one",
                    a.kind
                );
            }
        }
        Ok(())
    }

    fn answer(&mut self, c: Choice) -> Result<(), TestCaseError> {
        let Some(a) = self.pending.take() else {
            return Ok(());
        };
        let result = match (&a.kind, c) {
            (ActionKind::ListAccounts { .. }, Choice::Success) => OutcomeResult::Listed {
                accounts: vec!["a@x".into(), "b@x".into()],
                at_risk: Vec::new(),
            },
            (ActionKind::AcquireQuorumGate { .. }, Choice::Refuse) => OutcomeResult::GateRefused {
                refusal: habeat::engine::GateRefusal::NoQuorum {
                    detail: "no leader".into(),
                },
            },
            (_, Choice::Success) => OutcomeResult::Succeeded {
                detail: String::new(),
            },
            (_, Choice::Timeout) => OutcomeResult::TimedOut {
                reason: "1h".into(),
            },
            _ => OutcomeResult::Failed {
                reason: "exit 1".into(),
            },
        };
        let success = matches!(
            result,
            OutcomeResult::Succeeded { .. } | OutcomeResult::Listed { .. }
        );
        match &a.kind {
            ActionKind::AcquireQuorumGate { key } if success => self.gate = Some(key.clone()),
            ActionKind::ReleaseQuorumGate { .. } => self.gate = None,
            _ => {}
        }
        if success && let Some(sr) = a.step {
            self.done.insert((a.role, sr.pipeline, sr.index));
        }
        self.apply(Input::Outcome(ActionOutcome { id: a.id, result }))
    }

    /// Every appserver witness's vote is the oracle's for its history.
    fn votes_match_the_oracle(&self) -> Result<(), TestCaseError> {
        for (i, kind) in KINDS.iter().enumerate() {
            let id = WitnessId {
                component: Component::Appserver,
                kind: kind.clone(),
            };
            let Some(w) = self.state.witnesses.iter().find(|w| w.witness == id) else {
                continue;
            };
            let (fall, rise) = streaks(&self.cfg, i);
            let h = of_witness(&self.history, i);
            let expected = oracle(&h, fall, rise, tol(&self.cfg, fall), fresh(&self.cfg));
            prop_assert_eq!(w.vote, expected, "witness {} disagrees with the oracle", id);
            if w.vote == Vote::Down {
                prop_assert!(
                    evidence_for_down(&h, fall, tol(&self.cfg, fall), fresh(&self.cfg)),
                    "witness {} votes Down without the evidence: {:?}",
                    id,
                    h
                );
            }
        }
        Ok(())
    }

    fn restart(&mut self, corrupt: bool) {
        if corrupt {
            self.state = State::safe(self.now, "test: state.json was corrupt");
            self.safe = true;
            // The pause was in the lost file too; the safe hold replaces it.
            self.paused_until = None;
            // A corrupt file loses the journal of done steps with it; the
            // legacy lock files are what remains (not modelled here).
            self.done.clear();
            self.commits.clear();
            self.rearmed_since_commit = true;
            // And the witnesses' counters: the engine starts them afresh,
            // as after a gap.
            self.history.clear();
            self.consul_history.clear();
            self.proxy_history.clear();
        } else {
            let json = serde_json::to_vec(&self.state).expect("serialize");
            self.state = serde_json::from_slice(&json).expect("deserialize");
        }
        self.live = engine::Live::default(); // a new process knows nothing
        self.pending = None; // killed during the action, if one was running
        self.gate = None; // the Consul session dies with the process
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Outcome(c) => return self.answer(*c),
            Op::Restart => {
                self.restart(false);
                return Ok(());
            }
            Op::Corrupt => {
                self.restart(true);
                return Ok(());
            }
            Op::Jump(s) => {
                self.now = self.now.plus(Duration::from_secs(*s));
                return Ok(());
            }
            _ => {}
        }
        // The driver never feeds a new input while an action runs: finish
        // the chain (a crash in the middle is what Restart models).
        let mut guard = 0;
        while self.pending.is_some() {
            self.answer(Choice::Success)?;
            guard += 1;
            prop_assert!(guard < 100, "a chain of actions never ends");
        }
        match op {
            Op::Round {
                app,
                proxy,
                consul,
                leader,
                dt_ms,
            } => {
                self.now = self.now.plus(Duration::from_millis(*dt_ms));
                if self
                    .last_round_at
                    .is_some_and(|t| self.now.since(t) > self.cfg.stale_after)
                {
                    self.history.clear();
                    self.consul_history.clear();
                    self.proxy_history.clear();
                }
                self.consul_history.push((self.now, Some(consul.votes())));
                self.proxy_history.push((self.now, Some(proxy.votes())));
                self.last_leader = *leader;
                self.last_round_at = Some(self.now);
                self.history.push((self.now, Some(app.votes())));
                self.last_app = app.votes();
                let mut observations = Vec::new();
                for (c, p) in [
                    (Component::Appserver, app),
                    (Component::Proxy, proxy),
                    (Component::Consul, consul),
                ] {
                    for (k, v) in KINDS.iter().zip(p.votes()) {
                        observations.push(Observation {
                            witness: WitnessId {
                                component: c,
                                kind: k.clone(),
                            },
                            vote: v,
                            reason: String::new(),
                            latency: Duration::ZERO,
                        });
                    }
                }
                self.apply(Input::Round(Round {
                    observations,
                    local_leader: *leader,
                    raft_servers: None,
                }))?;
                self.votes_match_the_oracle()
            }
            Op::Deadline(ms) => {
                self.now = self.now.plus(Duration::from_millis(*ms));
                // A deadline past `stale_after` of the last round settles
                // nothing (the witness starts over at its next round).
                if self
                    .last_round_at
                    .is_some_and(|t| self.now.since(t) <= self.cfg.stale_after)
                {
                    for h in [
                        &mut self.history,
                        &mut self.consul_history,
                        &mut self.proxy_history,
                    ] {
                        h.push((self.now, None));
                    }
                }
                self.apply(Input::Deadline)?;
                self.votes_match_the_oracle()
            }
            Op::Rearm => {
                self.safe = false;
                self.apply(Input::Operator(OperatorCommand::Rearm))
            }
            Op::Pause(s) => {
                let until = self.now.plus(Duration::from_secs(*s));
                self.paused_until = Some(until);
                self.apply(Input::Operator(OperatorCommand::Pause {
                    until,
                    reason: "test".into(),
                }))
            }
            Op::Resume => {
                self.paused_until = None;
                self.apply(Input::Operator(OperatorCommand::Resume))
            }
            Op::Promote(force) => {
                let evidence = KINDS
                    .iter()
                    .zip(self.last_app)
                    .map(|(k, v)| Observation {
                        witness: WitnessId {
                            component: Component::Appserver,
                            kind: k.clone(),
                        },
                        vote: v,
                        reason: String::new(),
                        latency: Duration::ZERO,
                    })
                    .collect();
                self.apply(Input::Operator(OperatorCommand::Promote {
                    target: PromoteTarget::SourceMailHost(SOURCE.into()),
                    accounts: vec!["a@x".into()],
                    threads: None,
                    force: *force,
                    evidence,
                    follow_ups: true,
                }))
            }
            _ => Ok(()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Invariants 1, 2, 3 (across restarts), 4, 5 and 7 over random runs.
    #[test]
    fn safety_invariants_hold_over_random_runs(cfg in config(), ops in prop::collection::vec(op(), 1..120)) {
        let mut c = Checker::new(cfg);
        for op in &ops {
            c.run(op)?;
        }
    }
}

/// Runs of Down shorter than `fall` and of Up shorter than `rise`, with
/// Unknown anywhere: a peer flapping faster than the hysteresis.
fn flapping(fall: u32, rise: u32) -> impl Strategy<Value = Vec<Vote>> {
    let run = prop_oneof![
        (1..fall.max(2)).prop_map(|n| vec![Vote::Down; n as usize]),
        (1..rise.max(2)).prop_map(|n| vec![Vote::Up; n as usize]),
        Just(vec![Vote::Unknown]),
    ];
    prop::collection::vec(run, 1..60).prop_map(|runs| {
        // Join runs so that no two Down runs (or Up runs) touch.
        let mut out: Vec<Vote> = Vec::new();
        for r in runs {
            if let (Some(last), Some(first)) = (out.last(), r.first())
                && last == first
                && *first != Vote::Unknown
            {
                out.push(Vote::Unknown);
            }
            out.extend(r);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Invariant 10: a peer that flaps faster than fall/rise never triggers
    /// any action, whatever the roles, across restarts too.
    #[test]
    fn flapping_peer_never_triggers_action(
        fall in 2u32..5,
        seqs in (2u32..5).prop_flat_map(|f| [flapping(f, 2), flapping(f, 2), flapping(f, 2)]),
        restarts in prop::collection::vec(any::<bool>(), 200),
    ) {
        let _ = fall;
        let mut cfg = EngineConfig::new("secondary", "primary", &[Role::Appserver, Role::Proxyserver, Role::Consulserver]);
        cfg.source_mail_host = Some(SOURCE.into());
        cfg.quorum_gate = false;
        cfg.recovery_grace = Duration::ZERO;
        cfg.raft_recovery = habeat::model::RaftRecoveryPolicy::Timer;
        // fall is taken from the longest Down run + 1 so no run reaches it.
        let longest = seqs.iter().flat_map(|s| s.chunk_by(|a, b| a == b)).filter(|r| r[0] == Vote::Down).map(|r| r.len()).max().unwrap_or(0);
        cfg.fall = u32::try_from(longest).unwrap_or(u32::MAX) + 1;
        let mut state = State::new();
        let mut live = engine::Live::default();
        let mut now = UnixMillis(1_800_000_000_000);
        let n = seqs.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..n {
            now = now.plus(cfg.interval);
            let mut observations = Vec::new();
            for (w, seq) in seqs.iter().enumerate() {
                let v = seq.get(i).copied().unwrap_or(Vote::Unknown);
                for c in [Component::Appserver, Component::Proxy, Component::Consul] {
                    observations.push(Observation {
                        witness: WitnessId { component: c, kind: KINDS[w].clone() },
                        vote: v,
                        reason: String::new(),
                        latency: Duration::ZERO,
                    });
                }
            }
            let round = Input::Round(Round { observations, local_leader: Some(false), raft_servers: None });
            let t = engine::step(&state, &live, &round, now, &cfg);
            prop_assert!(t.actions.is_empty(), "flapping triggered {:?}", t.actions);
            state = t.state;
            live = t.live;
            if restarts.get(i).copied().unwrap_or(false) {
                state = serde_json::from_slice(&serde_json::to_vec(&state).expect("ser")).expect("de");
                live = engine::Live::default();
            }
        }
    }
}

#[test]
fn oracle_matches_the_documented_hysteresis() {
    use Vote::*;
    // One round a second; a deadline 3.1 s after the last answer, the
    // last failure at most 1.5 s before it.
    let at = |votes: &[Vote]| -> Vec<(UnixMillis, Option<Vote>)> {
        (0u64..)
            .zip(votes)
            .map(|(i, v)| (UnixMillis(i * 1000), Some(*v)))
            .collect()
    };
    let (tol, fresh) = (Duration::from_millis(3100), Duration::from_millis(1500));
    let o = |h: &[(UnixMillis, Option<Vote>)]| oracle(h, 3, 2, tol, fresh);
    assert_eq!(o(&at(&[Down, Down, Down])), Down);
    assert_eq!(o(&at(&[Down, Down])), Unknown);
    assert_eq!(o(&at(&[Up, Up, Down, Down])), Up);
    assert_eq!(o(&at(&[Up, Up, Down, Unknown])), Unknown);
    assert_eq!(o(&at(&[Down, Down, Down, Up])), Unknown);
    // By deadline: the last answer at 1 s, two failures, fed at 4.1 s.
    let mut h = at(&[Up, Up, Down, Down]);
    h.push((UnixMillis(4099), None));
    assert_eq!(o(&h), Up);
    h.push((UnixMillis(4100), None));
    assert_eq!(o(&h), Down);
    assert!(evidence_for_down(&h, 3, tol, fresh));
    // One failure only: no deadline.
    let mut one = at(&[Up, Up, Down]);
    one.push((UnixMillis(5000), None));
    assert_eq!(o(&one), Up);
    assert!(!evidence_for_down(&one, 3, tol, fresh));
    // A late round: time without probing is no evidence.
    let late = vec![
        (UnixMillis(0), Some(Up)),
        (UnixMillis(1000), Some(Down)),
        (UnixMillis(3500), Some(Down)),
        (UnixMillis(5200), None),
    ];
    assert_ne!(o(&late), Down);
    assert!(!evidence_for_down(&late, 3, tol, fresh));
}
