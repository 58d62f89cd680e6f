//! A deterministic simulation of both sites, in the manner of
//! FoundationDB's simulation testing and TigerBeetle's VOPR: one `u64`
//! seed is one history of the whole system, checked at every step.
//!
//! The system under test is the real pure code: the secondary's
//! `habeat::engine::step` (fed rounds, outcomes and operator commands, its
//! `State` saved and its `Live` lost at every crash) and the primary's
//! `habeat::lease::machine::Lease`. Everything with I/O is a small model:
//! - `world.rs`: the network (three Consul servers, one per DC and the
//!   arbiter; five links a partition can cut), Consul (sessions, TTL,
//!   lock-delay, `habeat/failover/<host>` with its `LockIndex`,
//!   `habeat/serving/<host>`), carbonio's directory (which host each
//!   account lives on), the primary node's power and proxy routes;
//! - `executor.rs`: the secondary's executor (copies `src/exec/`, the
//!   quorum gate of `src/consul/gate.rs`, the lease takeover of
//!   `src/exec/lease.rs`);
//! - `keeper.rs`: the primary's keeper (copies `src/lease/keeper.rs`);
//! - `system.rs`: the two processes (kill -9 at the k-th next I/O step or
//!   action, SIGTERM, restart from what was saved), the session driver of
//!   `src/session.rs` (save before act), the operator (`promote
//!   [--force]`, `rearm`, `pause`, `resume`, the failback the stays-fenced
//!   message asks for), reloads (`safety.quorum_gate`, `fencing.appserver`),
//!   wall-clock steps both ways;
//! - `schedule.rs`: the seeded schedule of faults; `check.rs`: the
//!   invariants (a) no two sides serving one account, (b) no automatic
//!   promotion without its confirmed fence where one is configured
//!   (SPEC 12), (c) no second automatic promotion before a re-arm or within
//!   `promotion_block` (SPEC 3), and SPEC 1-2 (no automatic promotion
//!   while a witness votes Up, none on Unknown).
//!
//! When a history breaks a rule, it is shrunk (faults removed one at a
//! time while the same rule still breaks) and printed with its seed, its
//! trace and the command that replays it:
//! `HABEAT_SIM_SEED=<seed> cargo test --test engine sim::replay -- --ignored --nocapture`.
//! `sim::budget` runs a fixed set of seeds (`HABEAT_SIM_SEEDS` to run
//! more). docs/simulation.md says what is and is not modelled.

mod check;
mod executor;
mod keeper;
mod rng;
mod schedule;
mod system;
mod world;

mod regressions;

use check::{Kind, Violation};
use schedule::Schedule;
use system::{Stats, System};

/// Seeds `sim::budget` runs in CI (a few seconds in debug).
const CI_SEEDS: u64 = 400;

pub struct Outcome {
    pub violation: Option<Violation>,
    pub stats: Stats,
    pub trace: Vec<String>,
}

pub fn run(s: &Schedule, tracing: bool) -> Outcome {
    let mut sys = System::new(s, tracing);
    let violation = sys.run(s).err();
    let mut stats = sys.stats;
    stats.fence_hooks_interrupted = sys.fence_hooks_interrupted();
    Outcome {
        violation,
        stats,
        trace: sys.trace,
    }
}

/// The smallest schedule (by faults removed one at a time, and its end
/// brought to the violation) that still breaks the same rule.
pub fn shrink(s: &Schedule, kind: Kind) -> Schedule {
    let breaks = |c: &Schedule| {
        run(c, false)
            .violation
            .filter(|v| v.kind == kind)
            .map(|v| v.at)
    };
    let mut best = s.clone();
    let Some(at) = breaks(&best) else {
        return best;
    };
    best.secs = at + 1;
    best.faults.retain(|(t, _)| *t <= at);
    loop {
        let mut smaller = false;
        for i in 0..best.faults.len() {
            let mut c = best.clone();
            c.faults.remove(i);
            if let Some(at) = breaks(&c) {
                c.secs = at + 1;
                best = c;
                smaller = true;
                break;
            }
        }
        if !smaller {
            return best;
        }
    }
}

/// The report of a failing seed: the minimal history and how to replay.
pub fn report(seed: u64) -> Option<String> {
    let s = Schedule::generate(seed);
    let v = run(&s, false).violation?;
    let min = shrink(&s, v.kind);
    let out = run(&min, true);
    let mut text = format!(
        "seed {seed}: {v}\nminimal history ({} of {} faults):\n{min}trace:\n",
        min.faults.len(),
        s.faults.len()
    );
    for l in &out.trace {
        text.push_str("  ");
        text.push_str(l);
        text.push('\n');
    }
    if let Some(mv) = out.violation {
        text.push_str(&format!("  => {mv}\n"));
    }
    text.push_str(&format!(
        "replay: HABEAT_SIM_SEED={seed} cargo test --test engine sim::replay -- --ignored --nocapture\n"
    ));
    Some(text)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The CI budget: every seed of `0..HABEAT_SIM_SEEDS` (default
/// [`CI_SEEDS`]) keeps every invariant.
#[test]
fn budget() {
    let n = env_u64("HABEAT_SIM_SEEDS").unwrap_or(CI_SEEDS);
    let mut failing = Vec::new();
    let mut total = Stats::default();
    for seed in 0..n {
        let o = run(&Schedule::generate(seed), false);
        total.auto_promotions += o.stats.auto_promotions;
        total.manual_promotions += o.stats.manual_promotions;
        total.fenced_off += o.stats.fenced_off;
        total.lease_fenced += o.stats.lease_fenced;
        total.stay_fenced += o.stats.stay_fenced;
        total.unfenced += o.stats.unfenced;
        total.fence_hooks_interrupted += o.stats.fence_hooks_interrupted;
        if let Some(v) = o.violation {
            failing.push((seed, v));
        }
    }
    eprintln!("{n} seeds: {total:?}");
    // The schedule reaches the rules at all.
    assert!(total.auto_promotions > 0 && total.lease_fenced > 0 && total.fenced_off > 0);
    // The report (each rule's first failure shrunk) only when one breaks.
    assert!(failing.is_empty(), "{}", budget_report(n, &failing));
}

fn budget_report(n: u64, failing: &[(u64, Violation)]) -> String {
    let mut msg = format!("{} of {n} seeds break an invariant:\n", failing.len());
    for (seed, v) in failing {
        msg.push_str(&format!("  seed {seed}: {v}\n"));
    }
    // The first failure of each rule, shrunk.
    let mut shown = Vec::new();
    for (seed, v) in failing {
        if !shown.contains(&v.kind) {
            shown.push(v.kind);
            msg.push('\n');
            msg.push_str(&report(*seed).unwrap_or_default());
        }
    }
    msg
}

/// Replays `HABEAT_SIM_SEED` with its trace. A tool, not a test: ignored,
/// so that it never counts as a pass without a seed to replay.
#[test]
#[ignore = "a tool: HABEAT_SIM_SEED=<seed> cargo test --test engine sim::replay -- --ignored --nocapture"]
fn replay() {
    let Some(seed) = env_u64("HABEAT_SIM_SEED") else {
        panic!(
            "sim::replay replays one seed: set HABEAT_SIM_SEED=<seed> (a failing run prints it)"
        );
    };
    let s = Schedule::generate(seed);
    let o = run(&s, true);
    eprintln!("{s}");
    for l in &o.trace {
        eprintln!("  {l}");
    }
    eprintln!("{:?}", o.stats);
    if let Some(r) = report(seed) {
        panic!("{r}");
    }
}

/// Which seed first shows each rule broken, scanning from 0
/// (`HABEAT_SIM_SEEDS` seeds, default 5000): how the schedule's
/// probabilities are tuned. Not a test of habeat.
#[test]
#[ignore = "a measurement: cargo test --test engine sim::census -- --ignored --nocapture"]
fn census() {
    let n = env_u64("HABEAT_SIM_SEEDS").unwrap_or(5000);
    let mut seen: std::collections::BTreeMap<Kind, Vec<u64>> = Default::default();
    for seed in 0..n {
        if let Some(v) = run(&Schedule::generate(seed), false).violation {
            seen.entry(v.kind).or_default().push(seed);
        }
    }
    for (k, seeds) in seen {
        eprintln!(
            "{k:?} (defect {:?}): {} of {n} seeds, the first: {:?}",
            k.defect(),
            seeds.len(),
            &seeds[..seeds.len().min(12)]
        );
    }
}

/// One seed is one history: the same trace twice, violation included.
#[test]
fn one_seed_one_history() {
    for seed in [22, 47, 65, 1] {
        let s = Schedule::generate(seed);
        let (a, b) = (run(&s, true), run(&s, true));
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(
            a.violation.map(|v| (v.kind, v.at)),
            b.violation.map(|v| (v.kind, v.at))
        );
    }
}
