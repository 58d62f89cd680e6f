//! Both sites in one loop, one simulated second at a time: faults of the
//! schedule, Consul's TTLs, the primary's keeper, the secondary's daemon
//! (a probe round every `interval`, its chain of actions run through the
//! executor model), the operator, and the checks.

use super::check::{Checker, Promotion, Violation};
use super::executor::{self, Armed, Effect, ExecMem};
use super::keeper::{HookKind, Primary, Report};
use super::schedule::{Fault, Schedule};
use super::world::{Home, Link, PRIMARY_HOST, Side, World};
use habeat::engine::{
    self, Action, ActionKind, ActionOutcome, EngineConfig, EventKind, FencePlan, Input, Live,
    OperatorCommand, Origin, PromoteTarget, State, UnixMillis,
};
use habeat::model::{
    Component, FenceAction, Observation, Rearm, Role, Round, Verdict, Vote, WitnessId, WitnessKind,
};
use std::time::{Duration, Instant};

/// `promotion_block` in the simulation: shorter than a history, so that a
/// second promotion is possible in one.
pub const BLOCK: Duration = Duration::from_secs(600);

pub fn engine_config(quorum_gate: bool, fencing: bool, rearm_auto: bool) -> EngineConfig {
    let mut c = EngineConfig::new("secondary", "primary", &[Role::Appserver]);
    c.source_mail_host = Some(PRIMARY_HOST.into());
    c.promotion_block = BLOCK;
    c.quorum_gate = quorum_gate;
    c.rearm = if rearm_auto {
        Rearm::Auto
    } else {
        Rearm::Manual
    };
    set_fencing(&mut c, fencing);
    c
}

fn set_fencing(c: &mut EngineConfig, on: bool) {
    if on {
        c.fencing.insert(
            Component::Appserver,
            FencePlan {
                action: FenceAction::Off,
                plugs: vec!["mbox1-ipmi".into()],
            },
        );
    } else {
        c.fencing.remove(&Component::Appserver);
    }
}

struct Secondary {
    /// `state.json`.
    file: State,
    live: Live,
    cfg: EngineConfig,
    mem: ExecMem,
    up: bool,
    back_at: u64,
    /// (at the k-th next action, after its effect, down for, armed at).
    kill: Option<(u32, bool, u64, u64)>,
    armed: Armed,
}

/// Counts over a history, to see that the schedule reaches the rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub auto_promotions: u32,
    pub manual_promotions: u32,
    pub fenced_off: u32,
    pub lease_fenced: u32,
    pub stay_fenced: u32,
    pub unfenced: u32,
    pub fence_hooks_interrupted: u32,
}

pub struct System {
    pub w: World,
    primary: Primary,
    /// `lease.enabled` in force on the primary, and as reloaded (in
    /// force from its next restart: `SessionDriver::reload`).
    lease: bool,
    lease_reloaded: bool,
    sec: Secondary,
    check: Checker,
    heals: Vec<(u64, &'static [Link])>,
    pub trace: Vec<String>,
    pub stats: Stats,
    tracing: bool,
    /// The operator's `promote --force` running now overrides a witness
    /// that sees the primary Up.
    forced_over_up: bool,
}

impl System {
    pub fn new(s: &Schedule, tracing: bool) -> System {
        let base = Instant::now();
        System {
            w: World::new(),
            primary: Primary::new(base, s.setup.lease),
            lease: s.setup.lease,
            lease_reloaded: s.setup.lease,
            sec: Secondary {
                file: State::new(),
                live: Live::default(),
                cfg: engine_config(s.setup.quorum_gate, s.setup.fencing, s.setup.rearm_auto),
                mem: ExecMem::default(),
                up: true,
                back_at: 0,
                kill: None,
                armed: Armed::default(),
            },
            check: Checker::default(),
            heals: Vec::new(),
            trace: Vec::new(),
            stats: Stats::default(),
            tracing,
            forced_over_up: false,
        }
    }

    fn note(&mut self, what: impl FnOnce() -> String) {
        if self.tracing {
            let t = self.w.now / 1000;
            self.trace.push(format!("t={t:>4}s {}", what()));
        }
    }

    /// Run the schedule; the first violation ends it.
    pub fn run(&mut self, s: &Schedule) -> Result<(), Violation> {
        let mut faults = s.faults.iter().peekable();
        for sec in 0..s.secs {
            self.w.now = sec * 1000;
            while let Some((t, f)) = faults.peek() {
                if *t > sec {
                    break;
                }
                faults.next();
                self.fault(f)?;
            }
            self.heal(sec);
            self.w.consul.expire(self.w.now);
            self.w.replicate();
            // The primary serves while its own directory replica already
            // puts its accounts on the secondary: a split that stands.
            if self.w.primary_serving()
                && self.w.primary_sees_on_primary().len() < self.w.accounts.len()
                && !self.w.on(Home::Secondary).is_empty()
            {
                self.check.moved_beside_serving = true;
            }
            self.primary_tick()?;
            self.secondary_tick(sec)?;
        }
        Ok(())
    }

    fn heal(&mut self, sec: u64) {
        let due: Vec<&'static [Link]> = self
            .heals
            .iter()
            .filter(|(t, _)| *t <= sec)
            .map(|(_, l)| *l)
            .collect();
        self.heals.retain(|(t, _)| *t > sec);
        for links in due {
            for l in links {
                self.w.net.heal(*l);
            }
            self.note(|| format!("healed {links:?}"));
        }
    }

    fn fault(&mut self, f: &Fault) -> Result<(), Violation> {
        self.note(|| format!("FAULT {f:?}"));
        let now = self.w.now;
        match f {
            Fault::Partition { shape, secs } => {
                for l in shape.links() {
                    self.w.net.cut(*l);
                }
                self.heals.push((now / 1000 + secs, shape.links()));
            }
            Fault::KillPrimary {
                at_io,
                down,
                sigterm,
            } => {
                if self.primary.keeper.is_none() {
                    // habeat runs without a keeper (the lease off): a
                    // restart, which applies a reloaded lease.enabled.
                    if self.w.primary_power && self.primary.back_at.is_none() {
                        self.primary.back_at = Some(now + down * 1000);
                    }
                } else {
                    let back = now + down * 1000;
                    match (*at_io, *sigterm) {
                        (0, true) => self.primary.term(back),
                        (0, false) => self.primary.kill(back),
                        (k, term) => self.primary.kill_at_io = Some((k - 1, back, term)),
                    }
                }
            }
            Fault::KillSecondary {
                at_action,
                after_effect,
                down,
            } => {
                if self.sec.up {
                    self.sec.kill = Some((*at_action, *after_effect, *down, now));
                }
            }
            Fault::TermSecondary { down } => {
                if self.sec.up {
                    self.kill_secondary(*down);
                }
            }
            Fault::Hook(h) => self.primary.hook_fault = Some(*h),
            Fault::ReloadLease { on } => self.lease_reloaded = *on,
            Fault::Fail(c) => self.sec.armed.0.push(*c),
            Fault::Reload {
                quorum_gate,
                fencing,
            } => {
                self.sec.cfg.quorum_gate = *quorum_gate;
                set_fencing(&mut self.sec.cfg, *fencing);
            }
            Fault::Promote { force } => {
                let evidence: Vec<Observation> = observations(&self.w)
                    .into_iter()
                    .filter(|o| o.witness.component == Component::Appserver)
                    .collect();
                self.forced_over_up = *force && evidence.iter().any(|o| o.vote == Vote::Up);
                let cmd = OperatorCommand::Promote {
                    target: PromoteTarget::SourceMailHost(PRIMARY_HOST.into()),
                    accounts: self.w.on(Home::Primary),
                    threads: None,
                    force: *force,
                    evidence,
                    follow_ups: true,
                };
                let r = self.operator(cmd);
                self.forced_over_up = false;
                r?;
            }
            Fault::Rearm => self.operator(OperatorCommand::Rearm)?,
            Fault::Pause { secs } => {
                let until = self.engine_now().plus(Duration::from_secs(*secs));
                self.operator(OperatorCommand::Pause {
                    until,
                    reason: "simulated operator".into(),
                })?;
            }
            Fault::Resume => self.operator(OperatorCommand::Resume)?,
            Fault::FailBack => {
                let all_up = [
                    Link::PrimarySecondary,
                    Link::PrimaryArbiter,
                    Link::SecondaryArbiter,
                    Link::PrimaryLocal,
                    Link::SecondaryLocal,
                ]
                .iter()
                .all(|l| self.w.net.up(*l));
                if all_up {
                    self.w.primary_power = true;
                    // Promoted back by `habeat promote` on the primary:
                    // written in the primary DC, its replica has it at once.
                    self.w
                        .write_on_primary(vec![Home::Primary; self.w.accounts.len()]);
                    self.w.routes_up = true;
                    self.primary.file = None;
                    self.primary.fence_hook_failed = false;
                    self.primary.keeper = None;
                    self.primary.back_at = Some(now);
                    self.check.operator_owned = false;
                    self.check.moved_beside_serving = false;
                    self.operator(OperatorCommand::Rearm)?;
                }
            }
            Fault::WallStep { primary, secs } => {
                let side = if *primary {
                    Side::Primary
                } else {
                    Side::Secondary
                };
                self.w.wall_offset[side as usize] += secs * 1000;
            }
        }
        Ok(())
    }

    pub fn fence_hooks_interrupted(&self) -> u32 {
        self.primary.fence_hooks_interrupted
    }

    fn engine_now(&self) -> UnixMillis {
        UnixMillis(self.w.wall(Side::Secondary))
    }

    fn primary_tick(&mut self) -> Result<(), Violation> {
        let now = self.w.now;
        if !self.w.primary_power {
            self.primary.keeper = None;
            self.primary.back_at = None;
            return Ok(());
        }
        if self.primary.keeper.is_none() && self.primary.back_at.is_some_and(|t| t <= now) {
            self.primary.back_at = None;
            self.lease = self.lease_reloaded;
            if self.lease {
                self.primary.start(&self.w);
            }
            let lease = self.lease;
            self.note(|| format!("primary habeat started (lease {lease})"));
        }
        let before = self.w.primary_serving();
        let mut out = Vec::new();
        self.primary.tick(&mut self.w, &mut out);
        let after = self.w.primary_serving();
        for r in out {
            match r {
                Report::HookEnded { kind, ok } => {
                    match kind {
                        HookKind::Fence => self.stats.lease_fenced += 1,
                        HookKind::Unfence => self.stats.unfenced += 1,
                    }
                    // What a directory read on the primary would show
                    // now (its replica): whether it could know.
                    let seen = self.w.primary_sees_on_primary().len();
                    self.note(|| {
                        format!(
                            "primary: hook {kind:?} ended, ok={ok} (its directory replica puts                              {seen} account(s) on it)"
                        )
                    });
                }
                Report::StayFenced => {
                    self.stats.stay_fenced += 1;
                    self.note(|| "primary: stays fenced (a promotion seen)".into());
                }
                Report::Died => self.note(|| "primary habeat killed at an I/O step".into()),
                Report::NoEvidence => {
                    let why = self.primary.unproven();
                    self.note(|| format!("primary: stays fenced for now ({why})"));
                }
            }
        }
        let promoted = self.w.on(Home::Secondary);
        match self
            .check
            .primary_transition(now / 1000, before, after, &promoted)
        {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    fn kill_secondary(&mut self, down: u64) {
        self.sec.up = false;
        self.sec.live = Live::default();
        self.sec.mem = ExecMem::default();
        self.sec.kill = None;
        self.sec.back_at = self.w.now + down * 1000;
        self.note(|| "secondary habeat stopped".into());
    }

    fn secondary_tick(&mut self, sec: u64) -> Result<(), Violation> {
        let now = self.w.now;
        if !self.sec.up && now >= self.sec.back_at {
            // A new process: only state.json survives.
            let json = serde_json::to_vec(&self.sec.file).expect("state serializes");
            self.sec.file = serde_json::from_slice(&json).expect("state deserializes");
            self.sec.up = true;
            self.note(|| "secondary habeat started".into());
        }
        if let Some((_, _, down, armed_at)) = self.sec.kill
            && now >= armed_at + 60_000
        {
            // No action came: killed while idle.
            self.kill_secondary(down);
        }
        if !self.sec.up || !sec.is_multiple_of(self.sec.cfg.interval.as_secs().max(1)) {
            return Ok(());
        }
        let round = Round {
            observations: observations(&self.w),
            local_leader: Some(self.w.leader(Side::Secondary)),
            raft_servers: None,
        };
        self.drive(Input::Round(round), true)
    }

    fn operator(&mut self, cmd: OperatorCommand) -> Result<(), Violation> {
        // Its own process: its own memory and executor, the daemon's
        // state.json.
        self.drive(Input::Operator(cmd), false)
    }

    /// The session driver (`src/session.rs`): step, save, run the action,
    /// feed its outcome back, until no action is handed out.
    fn drive(&mut self, input: Input, daemon: bool) -> Result<(), Violation> {
        let now = self.engine_now();
        let (mut live, mut mem) = if daemon {
            (self.sec.live.clone(), self.sec.mem.clone())
        } else {
            (Live::default(), ExecMem::default())
        };
        let mut t = engine::step(&self.sec.file, &live, &input, now, &self.sec.cfg);
        for _ in 0..200 {
            self.sec.file = t.state;
            live = t.live;
            for e in &t.events {
                if matches!(e.kind, EventKind::Rearmed) {
                    self.check.rearmed = true;
                }
            }
            let Some(a) = t.actions.into_iter().next() else {
                break;
            };
            if daemon && self.kill_now(false) {
                return Ok(());
            }
            self.handed(&a, now);
            let (result, effect) = executor::run(
                &a,
                &self.sec.cfg,
                &mut self.w,
                &mut mem,
                &mut self.sec.armed,
            );
            self.note(|| {
                format!(
                    "secondary {:?}: {} -> {result:?}",
                    a.origin,
                    a.kind.describe()
                )
            });
            self.ran(&a, &effect)?;
            if daemon && self.kill_now(true) {
                return Ok(());
            }
            t = engine::step(
                &self.sec.file,
                &live,
                &Input::Outcome(ActionOutcome { id: a.id, result }),
                now,
                &self.sec.cfg,
            );
        }
        if daemon {
            self.sec.live = live;
            self.sec.mem = mem;
        }
        Ok(())
    }

    /// Whether an armed kill -9 fires at this point of the chain.
    fn kill_now(&mut self, after_effect: bool) -> bool {
        let Some((k, after, down, at)) = self.sec.kill else {
            return false;
        };
        if k == 0 && after == after_effect {
            self.kill_secondary(down);
            return true;
        }
        if after_effect {
            self.sec.kill = Some((k.saturating_sub(1), after, down, at));
        }
        false
    }

    fn handed(&mut self, a: &Action, now: UnixMillis) {
        if let (ActionKind::PromoteAccounts { .. }, Some(sr)) = (&a.kind, a.step) {
            self.check.first_handed.entry(sr.pipeline).or_insert(now);
        }
    }

    fn ran(&mut self, a: &Action, effect: &Effect) -> Result<(), Violation> {
        let automatic = a.origin == Origin::Automatic;
        match effect {
            Effect::None => Ok(()),
            Effect::FencedOff => {
                self.stats.fenced_off += 1;
                if let Some(sr) = a.step {
                    self.check.fenced.push(sr.pipeline);
                }
                Ok(())
            }
            Effect::Promoted(moved) => {
                if automatic {
                    self.stats.auto_promotions += 1;
                } else {
                    self.stats.manual_promotions += 1;
                    // A forced promotion over a witness that sees the
                    // primary Up, now or when the daemon goes on with it.
                    let forced = self.forced_over_up
                        || self
                            .sec
                            .file
                            .role(Role::Appserver)
                            .failover
                            .as_ref()
                            .is_some_and(|p| p.reason.ends_with("(--force)"))
                            && observations(&self.w).iter().any(|o| o.vote == Vote::Up);
                    if forced && !moved.is_empty() {
                        self.check.operator_owned = true;
                    }
                }
                // The world before the move: serving is about the primary.
                let witness_up = self
                    .sec
                    .file
                    .witnesses
                    .iter()
                    .any(|w| w.witness.component == Component::Appserver && w.vote == Vote::Up);
                let pipeline = a.step.map_or(0, |s| s.pipeline);
                // `--force` as its pipeline records it (saved before the
                // step ran): the command's, or a later run's.
                let forced = self
                    .sec
                    .file
                    .role(Role::Appserver)
                    .failover
                    .as_ref()
                    .filter(|p| p.id == pipeline)
                    .and_then(|p| p.promotion.as_ref())
                    .is_some_and(|d| d.forced);
                let p = Promotion {
                    at: self.w.now / 1000,
                    pipeline,
                    automatic,
                    forced,
                    moved,
                    fencing_configured: self.sec.cfg.fencing.contains_key(&Component::Appserver),
                    lease: self.lease,
                    quorum_gate: self.sec.cfg.quorum_gate,
                    lease_readable: self.w.leader(Side::Secondary),
                    primary_serving: self.w.primary_serving(),
                    primary_record_fenced: self.primary.file.as_ref().is_some_and(|s| s.fenced),
                    fence_hook_failed: self.primary.fence_hook_failed,
                    witness_up,
                    verdict_down: self.sec.file.verdict(Component::Appserver) == Verdict::Down,
                    block: self.sec.cfg.promotion_block,
                };
                match self.check.promotion(&p) {
                    Some(v) => Err(v),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The secondary's probe round of the primary mailstore: ICMP needs the
/// inter-DC link and the node on; the two Serf witnesses read the local
/// agent's gossip (Unknown when it is cut off).
pub fn observations(w: &World) -> Vec<Observation> {
    let reach = w.net.up(Link::PrimarySecondary) && w.primary_power;
    let vote = if reach { Vote::Up } else { Vote::Down };
    let serf = if !w.net.up(Link::SecondaryLocal) {
        Vote::Unknown
    } else {
        vote
    };
    [
        (WitnessKind::Icmp, vote),
        (WitnessKind::ConsulMembers, serf),
        (WitnessKind::ConsulHealth, serf),
    ]
    .into_iter()
    .map(|(kind, vote)| Observation {
        witness: WitnessId {
            component: Component::Appserver,
            kind,
        },
        vote,
        reason: format!("simulated {vote:?}"),
        latency: Duration::ZERO,
    })
    .collect()
}
