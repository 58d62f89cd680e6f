//! The seeded random schedule: the setup (what is configured at the
//! start) and the faults, each at a second of simulated time. Every
//! nondeterministic thing of a history is one of these faults (an action
//! failing, a hook hanging, a kill at the k-th next I/O step), so that a
//! history shrinks by removing faults.

use super::rng::Rng;
use std::fmt;

/// The shape of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The link between the two DCs; both still reach the arbiter.
    InterDc,
    /// The primary DC cut from the secondary and the arbiter.
    IsolatePrimary,
    /// The secondary DC cut from the primary and the arbiter.
    IsolateSecondary,
    /// The arbiter cut from both DCs.
    ArbiterCut,
    /// Every server alone: no side has a leader.
    AllApart,
    /// The primary node's local Consul agent cut off.
    PrimaryConsul,
    /// The secondary node's local Consul agent cut off.
    SecondaryConsul,
}

impl Shape {
    pub const ALL: [Shape; 7] = [
        Shape::InterDc,
        Shape::IsolatePrimary,
        Shape::IsolateSecondary,
        Shape::ArbiterCut,
        Shape::AllApart,
        Shape::PrimaryConsul,
        Shape::SecondaryConsul,
    ];

    pub fn links(self) -> &'static [super::world::Link] {
        use super::world::Link::*;
        match self {
            Shape::InterDc => &[PrimarySecondary],
            Shape::IsolatePrimary => &[PrimarySecondary, PrimaryArbiter],
            Shape::IsolateSecondary => &[PrimarySecondary, SecondaryArbiter],
            Shape::ArbiterCut => &[PrimaryArbiter, SecondaryArbiter],
            Shape::AllApart => &[PrimarySecondary, PrimaryArbiter, SecondaryArbiter],
            Shape::PrimaryConsul => &[PrimaryLocal],
            Shape::SecondaryConsul => &[SecondaryLocal],
        }
    }
}

/// An action class the executor model can be told to fail once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fails {
    Listing,
    Promote,
    /// The fence agent does not confirm OFF.
    Fence,
    /// Any other step (lock files, cache flush, replicas, hooks).
    Other,
}

/// What a hook does when it runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookFault {
    /// Exits non-zero at once, having done nothing.
    Fails,
    /// Hangs until `hooks.timeout` and is killed, having done nothing.
    Hangs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Partition {
        shape: Shape,
        secs: u64,
    },
    /// kill -9 of the primary's habeat at the keeper's `at_io`-th next I/O
    /// step (0: now); `sigterm` is the same for the keeper (its task is
    /// aborted, the hook's process group killed); back after `down` s.
    KillPrimary {
        at_io: u32,
        sigterm: bool,
        down: u64,
    },
    /// kill -9 of the secondary's habeat at its `at_action`-th next
    /// action, before (`after_effect: false`) or after the action's
    /// effect and before its outcome is fed back.
    KillSecondary {
        at_action: u32,
        after_effect: bool,
        down: u64,
    },
    /// SIGTERM of the secondary's daemon: the running job finishes first.
    TermSecondary {
        down: u64,
    },
    /// The primary's next hook.
    Hook(HookFault),
    /// The next action of this class fails.
    Fail(Fails),
    /// A reload of the secondary's configuration.
    Reload {
        quorum_gate: bool,
        fencing: bool,
    },
    /// A reload of the primary's `lease.enabled`: like the real daemon's
    /// reload, it takes effect when the primary's habeat restarts.
    ReloadLease {
        on: bool,
    },
    /// `habeat promote` on the secondary (with or without `--force`).
    Promote {
        force: bool,
    },
    /// `habeat rearm` on the secondary.
    Rearm,
    /// `habeat pause --for <secs>` on the secondary.
    Pause {
        secs: u64,
    },
    /// `habeat resume` on the secondary.
    Resume,
    /// The operator's failback on the primary (powered on, the accounts
    /// promoted back, `lease.json` removed, routes up), as the
    /// stays-fenced message tells them; only once every partition healed.
    FailBack,
    /// A side's wall clock jumps by `secs` (either way).
    WallStep {
        primary: bool,
        secs: i64,
    },
}

/// What is configured at the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// `lease.enabled` on the primary.
    pub lease: bool,
    /// `safety.quorum_gate` on the secondary.
    pub quorum_gate: bool,
    /// `fencing.appserver` on the secondary.
    pub fencing: bool,
    /// `safety.rearm: auto` (else manual).
    pub rearm_auto: bool,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    pub setup: Setup,
    /// Simulated seconds.
    pub secs: u64,
    /// (second, fault), sorted by second.
    pub faults: Vec<(u64, Fault)>,
}

/// The seed of the operator's swarm is the seed xor this.
const OPERATOR_STREAM: u64 = 0x0B5E_55ED_0F0E_7A70;
/// Per mille of the cuts the operator's swarm reaches.
const OPERATOR_SWARM: u64 = 300;

/// Simulated seconds of one history.
pub const SECS: u64 = 900;
/// No fault before this second.
pub const WARM_UP: u64 = 30;

impl Schedule {
    pub fn generate(seed: u64) -> Schedule {
        let mut r = Rng::new(seed);
        let setup = Setup {
            lease: r.chance(850),
            quorum_gate: r.chance(750),
            fencing: r.chance(350),
            rearm_auto: r.chance(700),
        };
        // The operator's swarm below draws from a stream of its own, so
        // that every other fault of a seed is what it was without it.
        let mut op = Rng::new(seed ^ OPERATOR_STREAM);
        let n = r.range(8, 40);
        let mut faults = Vec::with_capacity(n as usize);
        for _ in 0..n {
            // After a warm-up: the lease held once, as in any running
            // installation (before its first acquisition it protects
            // nothing, by design).
            let at = r.range(WARM_UP, SECS - 60);
            let f = match r.below(100) {
                0..=27 => Fault::Partition {
                    shape: Shape::ALL[r.below(Shape::ALL.len() as u64) as usize],
                    secs: r.range(5, 150),
                },
                28..=37 => kill_primary(&mut r),
                38..=44 => Fault::KillSecondary {
                    at_action: r.below(6) as u32,
                    after_effect: r.chance(500),
                    down: r.range(1, 60),
                },
                45..=47 => Fault::TermSecondary {
                    down: r.range(1, 30),
                },
                48..=51 => Fault::Hook(if r.chance(500) {
                    HookFault::Fails
                } else {
                    HookFault::Hangs
                }),
                52..=63 => Fault::Fail(match r.below(4) {
                    0 => Fails::Listing,
                    1 => Fails::Promote,
                    2 => Fails::Fence,
                    _ => Fails::Other,
                }),
                64..=73 => Fault::Reload {
                    quorum_gate: r.chance(750),
                    fencing: r.chance(500),
                },
                74..=79 => Fault::Promote {
                    force: r.chance(800),
                },
                80..=84 => Fault::Rearm,
                85..=87 => Fault::Pause {
                    secs: r.range(10, 300),
                },
                88..=89 => Fault::Resume,
                90..=94 => Fault::FailBack,
                95..=96 => Fault::ReloadLease { on: r.chance(500) },
                _ => Fault::WallStep {
                    primary: r.chance(500),
                    secs: i64::try_from(r.range(1, 7200)).unwrap_or(1)
                        * if r.chance(500) { 1 } else { -1 },
                },
            };
            // Swarm the interesting moment: a primary cut from the
            // Consul majority fences itself after ttl - ttl/3; a kill
            // near then lands on the fence's I/O steps.
            if let Fault::Partition { shape, .. } = &f
                && matches!(
                    shape,
                    Shape::IsolatePrimary | Shape::AllApart | Shape::PrimaryConsul
                )
                && r.chance(700)
            {
                let mut k = kill_primary(&mut r);
                if let Fault::KillPrimary { at_io, .. } = &mut k {
                    *at_io %= 3;
                }
                faults.push((at + r.range(4, 12), k));
            }
            // Swarm the operator's moment: the secondary cut off from the
            // primary, which still reaches the Consul majority through the
            // arbiter and holds its serving lease; every witness sees it
            // Down, so `habeat promote` without `--force` passes its
            // command's judgement, and only the lease check stands between
            // it and a split.
            if let Fault::Partition { shape, secs } = &f
                && matches!(shape, Shape::InterDc | Shape::IsolateSecondary)
                && op.chance(OPERATOR_SWARM)
            {
                faults.push((at + op.range(1, *secs), Fault::Promote { force: false }));
            }
            faults.push((at, f));
        }
        faults.sort_by_key(|(t, _)| *t);
        Schedule {
            seed,
            setup,
            secs: SECS,
            faults,
        }
    }
}

/// kill -9 (systemd restarts it after `RestartSec=5s`) or SIGTERM (a
/// restart: an upgrade, `systemctl restart`) of the primary's habeat. A
/// habeat stopped for longer than ttl + lock-delay leaves its side
/// unprotected by design (docs/decisions.md §7, "Restarts"): not
/// simulated.
fn kill_primary(r: &mut Rng) -> Fault {
    let sigterm = r.chance(400);
    Fault::KillPrimary {
        at_io: r.below(6) as u32,
        sigterm,
        down: if sigterm { r.range(1, 5) } else { 5 },
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} ({} s): {:?}", self.seed, self.secs, self.setup)?;
        for (t, x) in &self.faults {
            writeln!(f, "  t={t:>4}s  {x:?}")?;
        }
        Ok(())
    }
}
