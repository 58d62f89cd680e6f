//! How long from a loss at the peer DC to `promoteAccounts` being invoked,
//! split into phases, each printed beside its floor (what the physics of
//! the setup require) and the ratio between them.
//!
//! ```sh
//! sudo cargo bench --bench failover            # 10 repetitions per row
//! HABEAT_BENCH_REPS=20 sudo -E cargo bench --bench failover
//! HABEAT_BENCH_ROWS="DC lost" cargo bench --bench failover   # rows whose name has this
//! HABEAT_BENCH_GRACE=3s sudo -E cargo bench --bench failover  # recovery_grace of the testbed DC-lost row
//! ```
//!
//! Rows, all at `interval` 1s, `fall` 3, `timeout` 500ms. The testbed rows
//! run real HashiCorp Serf agents (Debian's `serf`, `lan` profile as in
//! Consul's LAN pool), one per host of both DCs in their network
//! namespaces; the Consul stand-in answers `/v1/agent/members` and
//! `serfHealth` from this node's agent. The simulated rows take Serf to
//! mark a dead host failed 5 s after its link dies.
//!
//! - **default**: every witness (ICMP, LDAP for the directory, Consul
//!   members, Consul serfHealth), `quorum: all`, the quorum gate on, on
//!   the testbed of the end-to-end tests (network namespaces, real Serf,
//!   the Consul API test server, the fake carbonio). Two figures: **serf**,
//!   the cut → this node's Serf agent marking the host failed (from the
//!   agent's log, stamped as it is written), beside SWIM's floor (one
//!   probe interval for the failed direct and indirect probes, plus the
//!   minimum suspicion timeout, `suspicion_mult` × probe interval: 1 s +
//!   4 s); and **detection**, beside its floor in each repetition: that
//!   repetition's Serf time (or ICMP's (fall − 1) × interval, if later) +
//!   interval + timeout (the last witness's own delay, one round of phase,
//!   one probe timeout). The goal is detection ≤ 1.05 × its floor.
//! - **icmp-only**: `quorum: 1`, Consul witnesses off (the gate stays on).
//!   Floor: fall × interval + timeout.
//! - **2+1, DC lost, arbiter confirms** (`recovery_grace` 60s and 3s): the
//!   DC with the Consul majority is lost; the appserver's gate is refused
//!   (no leader) until the consulserver role has recovered raft, which the
//!   arbiter (`witnesses.command` voting Down for consul) allows after
//!   `recovery_grace`. Driven through the real engine (`habeat::engine::step`)
//!   on a simulated clock (a testbed for raft recovery through the daemon
//!   does not exist yet): rounds every interval, a probe timing out after
//!   `timeout`, the service-discover restart taking [`SERVICE_RESTART`].
//!   Floor of the whole: `recovery_grace` + service restart + 2 rounds,
//!   where the grace is shorter than Serf's detection of the peer Consul
//!   servers (which raft recovery needs Down): that detection instead.
//!   One function, [`dc_lost`], is the scenario.
//! - **2+1, DC lost, arbiter confirms (testbed)**: the same through the
//!   binary on the 2 + 1 testbed (`Options::two_plus_one`, with the
//!   arbiter and stand-ins for `systemctl`), one function,
//!   [`dc_lost_once`]; `recovery_grace` from `HABEAT_BENCH_GRACE` (default
//!   10s). The stand-in service restart takes milliseconds, so its floor
//!   has none.
//!
//! Phases: **detection** (loss → the appserver verdict turns Down, from
//! `events.jsonl`), **recovery** (→ raft recovery's leader confirmed; DC
//! loss only), **gate** (→ the quorum gate acquired), **action** (→ the
//! fake carbonio's `promoteAccounts`, from the call log of its wrapper).
//!
//! The loss lands at a different phase of the probe round in each
//! repetition. Prints a table; no assertion (figures, not tests). The
//! testbed rows need root; they say why and are skipped when they cannot
//! run.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use habeat::engine::{
    self, ActionKind, ActionOutcome, EngineConfig, EventKind, GateRefusal, Input, OutcomeResult,
    State, UnixMillis,
};
use habeat::model::{
    Component, Observation, RaftServer, Role, Round, Verdict, Vote, WitnessId, WitnessKind,
};
use std::path::Path;
use std::time::Duration;
use support::testbed::{self, Binaries, Host, Options, SerfModel, Testbed};

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(500);
const FALL: u32 = 3;
/// Serf's delay in the simulated rows.
const SERF_DELAY: Duration = Duration::from_secs(5);
/// SWIM's floor with Serf's `lan` profile and fewer than 10 members: the
/// probe interval (the direct probe's timeout and the indirect probes fit
/// in it) plus the minimum suspicion timeout (4 × the probe interval),
/// reached when enough members confirm the suspicion.
const SERF_FLOOR: Duration = Duration::from_secs(5);
/// service-discover stopped, `peers.json` written, started, a leader
/// elected: what the DC-loss rows take raft recovery's action to last.
const SERVICE_RESTART: Duration = Duration::from_secs(3);

/// One repetition, in milliseconds per phase.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The cut → this node's Serf agent marking the host failed (the last
    /// of the hosts the row's component needs).
    serf: Option<u64>,
    detection: u64,
    recovery: Option<u64>,
    gate: u64,
    action: u64,
}

impl Sample {
    fn total(&self) -> u64 {
        self.detection + self.recovery.unwrap_or(0) + self.gate + self.action
    }
}

/// What a row's figures are compared with, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Floors {
    detection: u64,
    total: Option<u64>,
    /// The detection floor of each repetition follows its Serf time.
    serf_bound: bool,
}

/// A repetition's detection floor when its last witness is Serf's.
fn serf_floor(serf: u64) -> u64 {
    serf.max(ms(INTERVAL * (FALL - 1))) + ms(INTERVAL + TIMEOUT)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn binaries() -> Result<Binaries, String> {
    Binaries::built_for(Path::new(env!("CARGO_BIN_EXE_habeat")))
}

fn once(tb: &Testbed, rep: u32) -> Result<Sample, String> {
    tb.reset();
    let mut daemon = tb.spawn_daemon();
    if !testbed::wait_until(Duration::from_secs(30), || tb.appserver_up()) {
        return Err(format!(
            "habeat never saw the appserver Up:\n{}",
            tb.diagnostics()
        ));
    }
    // Land the link-down at a different phase of the round each time.
    let phase = (u64::from(rep) * 137) % 1000;
    std::thread::sleep(Duration::from_millis(1000 + phase));
    let t0 = tb.kill_host(Host::Appserver);
    if !testbed::wait_until(Duration::from_secs(60), || !tb.promote_calls().is_empty()) {
        return Err(format!(
            "no promoteAccounts within 60s:\n{}",
            tb.diagnostics()
        ));
    }
    let promoted = tb.promote_calls()[0].at;
    let events = tb.events();
    let confirmed = tb
        .appserver_down_at(t0)
        .ok_or_else(|| format!("no Down verdict in the journal:\n{}", tb.diagnostics()))?;
    // The gate acquired: the success of the last gate action started
    // before the promotion.
    let gate_ids: Vec<u64> = events
        .iter()
        .filter(|e| {
            e["event"] == "action_started" && e["action"]["kind"]["action"] == "acquire_quorum_gate"
        })
        .filter_map(|e| e["action"]["id"].as_u64())
        .collect();
    let gated = events
        .iter()
        .rev()
        .filter(|e| {
            e["event"] == "action_succeeded"
                && e["action_id"]
                    .as_u64()
                    .is_some_and(|id| gate_ids.contains(&id))
        })
        .filter_map(|e| e["at"].as_u64())
        .find(|at| *at <= promoted + 1000)
        .unwrap_or(confirmed);
    let serf = tb
        .serf_failed_at(Host::Appserver, t0)
        .map(|at| at.saturating_sub(t0));
    daemon.terminate(Duration::from_secs(10));
    Ok(Sample {
        serf,
        detection: confirmed.saturating_sub(t0),
        recovery: None,
        gate: gated.saturating_sub(confirmed),
        action: promoted.saturating_sub(gated),
    })
}

/// The peer DC of a 2+1 layout is lost (the appserver, and two of three
/// Consul servers: this side's Consul has no leader), `phase` ms into a
/// probe round. The arbiter (`witnesses.command` for consul) sees the loss
/// from the first round after it. Runs the real engine on a simulated
/// clock; returns the phases of one repetition.
fn dc_lost(grace: Duration, phase: u64) -> Result<Sample, String> {
    let mut cfg = EngineConfig::new(
        "secondary",
        "primary",
        &[Role::Appserver, Role::Consulserver],
    );
    cfg.source_mail_host = Some("mbox1.example.com".into());
    cfg.own_consul_hosts = vec!["svc2.example.com".into()];
    cfg.peer_consul_hosts = vec!["svc1.example.com".into(), "svc3.example.com".into()];
    cfg.fall = FALL;
    cfg.set_timing(INTERVAL, TIMEOUT, Duration::from_secs(120));
    cfg.recovery_grace = grace;
    cfg.command_witness = true;
    let raft: Vec<RaftServer> = ["svc1", "svc2", "svc3"]
        .iter()
        .enumerate()
        .map(|(i, n)| RaftServer {
            id: format!("id-{n}"),
            node: format!("server-{n}-example-com"),
            address: format!("10.0.0.{}:8300", i + 1),
            leader: i == 0,
            voter: true,
        })
        .collect();
    let mut state = State::new();
    let mut live = engine::Live::default();
    let start = UnixMillis(1_800_000_000_000);
    // The loss lands `phase` ms after a round starts.
    let t0 = start.plus(INTERVAL * 10).plus(Duration::from_millis(phase));
    let mut round_at = start;
    let mut leader_back: Option<UnixMillis> = None;
    let (mut confirmed, mut recovered, mut gated, mut promoted) = (None, None, None, None);
    let mut accounts = vec!["a@example.com".to_owned(), "b@example.com".to_owned()];
    while promoted.is_none() {
        if round_at.since(t0) > Duration::from_secs(600) {
            return Err("no promotion within 10 minutes of simulated time".into());
        }
        let lost = round_at >= t0;
        let serf_failed = lost && round_at.since(t0) >= SERF_DELAY;
        // A round ends when its slowest probe does: the timeout, once the
        // peer is gone.
        let mut now = if lost {
            round_at.plus(TIMEOUT)
        } else {
            round_at
        };
        let mut observations = Vec::new();
        for c in [Component::Appserver, Component::Consul] {
            let icmp = if lost { Vote::Down } else { Vote::Up };
            let serf = if serf_failed { Vote::Down } else { Vote::Up };
            for (kind, vote) in [
                (WitnessKind::Icmp, icmp),
                (WitnessKind::ConsulMembers, serf),
                (WitnessKind::ConsulHealth, serf),
            ] {
                observations.push(Observation {
                    witness: WitnessId { component: c, kind },
                    vote,
                    reason: String::new(),
                    latency: Duration::ZERO,
                });
            }
        }
        observations.push(Observation {
            witness: WitnessId {
                component: Component::Consul,
                kind: WitnessKind::Command,
            },
            vote: if lost { Vote::Down } else { Vote::Up },
            reason: String::new(),
            latency: Duration::ZERO,
        });
        let leader = !lost || leader_back.is_some_and(|t| t <= round_at);
        let mut input = Input::Round(Round {
            observations,
            local_leader: Some(leader),
            raft_servers: (!lost).then(|| raft.clone()),
        });
        loop {
            let t = engine::step(&state, &live, &input, now, &cfg);
            state = t.state;
            live = t.live;
            for e in &t.events {
                if confirmed.is_none()
                    && e.component == Some(Component::Appserver)
                    && matches!(
                        e.kind,
                        EventKind::VerdictChanged {
                            to: Verdict::Down,
                            ..
                        }
                    )
                {
                    confirmed = Some(e.at);
                }
            }
            let Some(a) = t.actions.into_iter().next() else {
                break;
            };
            let result = match &a.kind {
                ActionKind::ListAccounts { .. } => OutcomeResult::Listed {
                    accounts: accounts.clone(),
                    at_risk: Vec::new(),
                },
                ActionKind::ListOperations { .. } => OutcomeResult::Operations {
                    promotions: Vec::new(),
                },
                ActionKind::AcquireQuorumGate { .. } if leader_back.is_none() => {
                    OutcomeResult::GateRefused {
                        refusal: GateRefusal::NoQuorum {
                            detail: "No cluster leader".into(),
                        },
                    }
                }
                ActionKind::AcquireQuorumGate { .. } => {
                    gated.get_or_insert(now);
                    OutcomeResult::Succeeded {
                        detail: "ok".into(),
                    }
                }
                ActionKind::RaftRecovery { .. } => {
                    now = now.plus(SERVICE_RESTART);
                    leader_back = Some(now);
                    OutcomeResult::Succeeded {
                        detail: "ok".into(),
                    }
                }
                ActionKind::ConfirmLeader => {
                    recovered.get_or_insert(now);
                    OutcomeResult::Succeeded {
                        detail: "ok".into(),
                    }
                }
                ActionKind::PromoteAccounts { .. } => {
                    promoted.get_or_insert(now);
                    accounts.clear();
                    OutcomeResult::Succeeded {
                        detail: "ok".into(),
                    }
                }
                _ => OutcomeResult::Succeeded {
                    detail: "ok".into(),
                },
            };
            // Every action costs a little (a CLI call, a Consul request).
            now = now.plus(Duration::from_millis(10));
            input = Input::Outcome(ActionOutcome { id: a.id, result });
        }
        // The next round starts on the interval's grid, after this one.
        while round_at <= now {
            round_at = round_at.plus(INTERVAL);
        }
    }
    let at = |t: Option<UnixMillis>, what: &str| t.ok_or_else(|| format!("no {what}"));
    let confirmed = at(confirmed, "Down verdict")?;
    let recovered = at(recovered, "raft recovery")?;
    let gated = at(gated, "gate")?;
    let promoted = at(promoted, "promotion")?;
    Ok(Sample {
        serf: Some(ms(SERF_DELAY)),
        detection: ms(confirmed.since(t0)),
        recovery: Some(ms(recovered.since(confirmed))),
        gate: ms(gated.since(recovered)),
        action: ms(promoted.since(gated)),
    })
}

/// The whole primary of the 2 + 1 testbed cut off (its two Consul servers
/// with it, so this side has no leader), the arbiter seeing it gone; the
/// phases from the journal and the call log.
fn dc_lost_once(tb: &Testbed, rep: u32) -> Result<Sample, String> {
    tb.reset();
    let mut daemon = tb.spawn_daemon();
    let healthy = || {
        tb.state_json().is_some_and(|s| {
            s["components"]["consul"]["verdict"] == "up"
                && s["components"]["appserver"]["verdict"] == "up"
                && s["raft"]["last_healthy"]
                    .as_array()
                    .is_some_and(|a| a.len() == 3)
        })
    };
    if !testbed::wait_until(Duration::from_secs(30), healthy) {
        return Err(format!(
            "habeat never saw the peer healthy:\n{}",
            tb.diagnostics()
        ));
    }
    let phase = (u64::from(rep) * 137) % 1000;
    std::thread::sleep(Duration::from_millis(1000 + phase));
    tb.set_arbiter(false);
    let t0 = testbed::now_ms();
    tb.partition();
    if !testbed::wait_until(Duration::from_secs(180), || !tb.promote_calls().is_empty()) {
        return Err(format!(
            "no promoteAccounts within 180s:\n{}",
            tb.diagnostics()
        ));
    }
    let promoted = tb.promote_calls()[0].at;
    let events = tb.events();
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .filter(|e| e["at"].as_u64().is_some_and(|a| a + 1000 >= t0))
            .find(|e| pred(e))
            .and_then(|e| e["at"].as_u64())
    };
    let down =
        at(&|e| e["event"] == "verdict_changed" && e["component"] == "consul" && e["to"] == "down")
            .ok_or("no consul Down verdict in the journal")?;
    let started =
        at(&|e| e["event"] == "action_started" && e["action"]["kind"]["action"] == "raft_recovery")
            .ok_or("no raft recovery in the journal")?;
    // Recovery ends with the raft recovery action (service-discover
    // restarted with peers.json): rounds fed during it see the leader back,
    // so the promotion may come before the leader check and lock files
    // that end the raft pipeline.
    let recovery_ids: Vec<u64> = events
        .iter()
        .filter(|e| {
            e["event"] == "action_started" && e["action"]["kind"]["action"] == "raft_recovery"
        })
        .filter_map(|e| e["action"]["id"].as_u64())
        .collect();
    let finished = at(&|e| {
        e["event"] == "action_succeeded"
            && e["action_id"]
                .as_u64()
                .is_some_and(|id| recovery_ids.contains(&id))
    })
    .ok_or_else(|| format!("raft recovery never succeeded:\n{}", tb.diagnostics()))?;
    let gate_ids: Vec<u64> = events
        .iter()
        .filter(|e| {
            e["event"] == "action_started" && e["action"]["kind"]["action"] == "acquire_quorum_gate"
        })
        .filter_map(|e| e["action"]["id"].as_u64())
        .collect();
    let gated = events
        .iter()
        .rev()
        .filter(|e| {
            e["event"] == "action_succeeded"
                && e["action_id"]
                    .as_u64()
                    .is_some_and(|id| gate_ids.contains(&id))
        })
        .filter_map(|e| e["at"].as_u64())
        .find(|at| *at <= promoted + 1000)
        .unwrap_or(finished)
        .max(finished);
    let _ = started;
    // The consul verdict needs both peer servers failed in Serf.
    let serf = [Host::ConsulServer, Host::ConsulServer2]
        .iter()
        .map(|h| tb.serf_failed_at(*h, t0).map(|at| at.saturating_sub(t0)))
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().max());
    daemon.terminate(Duration::from_secs(10));
    Ok(Sample {
        serf,
        detection: down.saturating_sub(t0),
        recovery: Some(finished.saturating_sub(down)),
        gate: gated.saturating_sub(finished),
        action: promoted.saturating_sub(gated),
    })
}

fn stats(mut v: Vec<u64>) -> (u64, u64, u64, u64) {
    v.sort_unstable();
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (v[0], pick(0.5), pick(0.9), v[v.len() - 1])
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

/// One repetition's figures beside their floors.
fn print_rep(name: &str, rep: u32, s: &Sample, floors: Floors) {
    match s.serf.filter(|_| floors.serf_bound) {
        Some(serf) => {
            let f = serf_floor(serf);
            println!(
                "  {name} #{rep}: serf {serf} ms [floor {}], detection {} ms [floor {f}] = {:.3} x floor",
                ms(SERF_FLOOR),
                s.detection,
                s.detection as f64 / f as f64
            );
        }
        None => println!(
            "  {name} #{rep}: detection {} ms [floor {}] = {:.3} x floor",
            s.detection,
            floors.detection,
            s.detection as f64 / floors.detection as f64
        ),
    }
}

/// A phase's name, figures, floor and median ratio to the floor (when
/// not the median's ratio to the floor).
type Phase = (&'static str, Vec<u64>, Option<u64>, Option<f64>);

fn print_row(name: &str, samples: &[Sample], floors: Floors) {
    if samples.is_empty() {
        println!("| {name} | 0 | - | - | - | - | - | - | - |");
        return;
    }
    let n = samples.len();
    let mut phases: Vec<Phase> = Vec::new();
    let serfs: Option<Vec<u64>> = samples.iter().map(|s| s.serf).collect();
    match serfs.filter(|_| floors.serf_bound) {
        Some(serfs) => {
            let fl: Vec<u64> = serfs.iter().map(|s| serf_floor(*s)).collect();
            let ratios: Vec<f64> = samples
                .iter()
                .zip(&fl)
                .map(|(s, f)| s.detection as f64 / *f as f64)
                .collect();
            phases.push(("serf", serfs, Some(ms(SERF_FLOOR)), None));
            phases.push((
                "detection",
                samples.iter().map(|s| s.detection).collect(),
                Some(stats(fl).1),
                Some(median_f(ratios)),
            ));
        }
        None => phases.push((
            "detection",
            samples.iter().map(|s| s.detection).collect(),
            Some(floors.detection),
            None,
        )),
    }
    if samples.iter().all(|s| s.recovery.is_some()) {
        phases.push((
            "recovery",
            samples.iter().map(|s| s.recovery.unwrap_or(0)).collect(),
            None,
            None,
        ));
    }
    phases.push(("gate", samples.iter().map(|s| s.gate).collect(), None, None));
    phases.push((
        "action",
        samples.iter().map(|s| s.action).collect(),
        None,
        None,
    ));
    phases.push((
        "total",
        samples.iter().map(Sample::total).collect(),
        floors.total,
        None,
    ));
    for (phase, v, floor, ratio) in phases {
        let (min, med, p90, max) = stats(v);
        let (f, ratio) = match floor {
            Some(f) if f > 0 => (
                f.to_string(),
                format!("{:.2}", ratio.unwrap_or(med as f64 / f as f64)),
            ),
            _ => ("—".to_owned(), "—".to_owned()),
        };
        println!("| {name} | {n} | {phase} | {min} | {med} | {p90} | {max} | {f} | {ratio} |");
    }
}

fn main() {
    // `cargo test --all-targets` runs bench programs too, without `--bench`:
    // the figures are for `cargo bench`, so don't spend CI time on them.
    if !std::env::args().any(|a| a == "--bench") {
        println!("failover bench: run with `sudo cargo bench --bench failover` for figures");
        return;
    }
    let reps: u32 = std::env::var("HABEAT_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    println!(
        "failover latency: loss at the peer DC -> promoteAccounts invoked; interval 1s, fall 3, timeout 500ms, real Serf (lan profile) on the testbed, Serf 5s simulated; {reps} repetitions each"
    );
    let mut rows: Vec<(String, Vec<Sample>, Floors)> = Vec::new();
    let base = Options {
        roles: vec!["appserver"],
        interval: INTERVAL,
        timeout: TIMEOUT,
        fall: FALL,
        rise: 2,
        serf: SerfModel::Real,
        flush_cache: false,
        ..Options::default()
    };
    let grace = std::env::var("HABEAT_BENCH_GRACE")
        .ok()
        .and_then(|s| humantime::parse_duration(&s).ok())
        .unwrap_or(Duration::from_secs(10));
    type Once = fn(&Testbed, u32) -> Result<Sample, String>;
    let testbed_rows: [(String, Options, Floors, Once); 3] = [
        (
            "default (all witnesses, quorum all, real Serf)".to_owned(),
            base.clone(),
            Floors {
                detection: serf_floor(ms(SERF_FLOOR)),
                total: None,
                serf_bound: true,
            },
            once,
        ),
        (
            "icmp-only (quorum 1, Consul witnesses off)".to_owned(),
            Options {
                quorum: Some(1),
                consul_witnesses: false,
                ..base.clone()
            },
            Floors {
                detection: ms(INTERVAL * FALL + TIMEOUT),
                total: None,
                serf_bound: false,
            },
            once,
        ),
        (
            format!(
                "2+1, DC lost, arbiter confirms, recovery_grace {} (testbed)",
                humantime::format_duration(grace)
            ),
            Options {
                roles: vec!["appserver", "consulserver"],
                two_plus_one: true,
                arbiter: true,
                recovery_grace: Some(grace),
                ..base.clone()
            },
            Floors {
                detection: serf_floor(ms(SERF_FLOOR)),
                total: Some(ms(grace.max(SERF_FLOOR + INTERVAL + TIMEOUT) + INTERVAL * 2)),
                serf_bound: true,
            },
            dc_lost_once,
        ),
    ];
    let only = std::env::var("HABEAT_BENCH_ROWS").unwrap_or_default();
    let wanted = |name: &str| name.contains(only.as_str());
    let can_testbed = if !testbed_rows.iter().any(|(n, _, _, _)| wanted(n)) {
        false
    } else {
        let mut lacking = support::need::lacking(testbed::NEEDS);
        if !lacking.is_empty() && nix::unistd::geteuid().is_root() {
            // A fresh machine: install what the rehearsal needs (iproute2,
            // nftables, slapd, serf) with the script CI uses.
            let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/deps");
            println!(
                "failover bench: installing the testbed's packages ({} --demo)",
                deps.display()
            );
            let _ = std::process::Command::new("bash")
                .arg(&deps)
                .arg("--demo")
                .status();
            lacking = support::need::lacking(testbed::NEEDS);
        }
        if !lacking.is_empty() {
            println!(
                "failover bench: testbed rows SKIPPED ({})",
                lacking.join("; ")
            );
        }
        lacking.is_empty()
    };
    if can_testbed {
        let bins = match binaries() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("failover bench: {e}");
                std::process::exit(1);
            }
        };
        println!("habeat {}", bins.habeat.display());
        for (name, opts, floors, run) in testbed_rows.iter().filter(|(n, _, _, _)| wanted(n)) {
            let mut samples = Vec::new();
            // One stage per setup, reset between repetitions.
            let tb = Testbed::start(opts.clone(), bins.clone());
            for rep in 0..reps {
                match run(&tb, rep) {
                    Ok(s) => {
                        print_rep(name, rep, &s, *floors);
                        samples.push(s);
                    }
                    Err(e) => eprintln!("  {name} #{rep}: FAILED: {e}"),
                }
            }
            rows.push((name.clone(), samples, *floors));
        }
    }
    for grace in [Duration::from_secs(60), Duration::from_secs(3)] {
        let name = format!(
            "2+1, DC lost, arbiter confirms, recovery_grace {}s (engine, simulated clock)",
            grace.as_secs()
        );
        if !wanted(&name) {
            continue;
        }
        let floors = Floors {
            detection: ms(SERF_DELAY + INTERVAL + TIMEOUT),
            // Raft recovery needs the peer Consul servers judged Down, so
            // it cannot start before Serf's detection either.
            total: Some(ms(grace.max(SERF_DELAY + INTERVAL + TIMEOUT)
                + SERVICE_RESTART
                + INTERVAL * 2)),
            serf_bound: false,
        };
        let mut samples = Vec::new();
        for rep in 0..reps {
            match dc_lost(grace, (u64::from(rep) * 137) % 1000) {
                Ok(s) => samples.push(s),
                Err(e) => eprintln!("  {name} #{rep}: FAILED: {e}"),
            }
        }
        rows.push((name, samples, floors));
    }
    println!();
    println!(
        "| setup | n | phase | min ms | median ms | p90 ms | max ms | floor ms | median/floor |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (name, samples, floors) in &rows {
        print_row(name, samples, *floors);
    }
}
