//! `habeat status` (text and `--json`, also served on `/status`): what
//! habeat knows now, the votes, and the engine's plan for each role.

use super::headline::Head;
use super::{Failure, Outcome, human_time};
use crate::config::Config;
use crate::engine::{self, State};
use crate::exit;
use crate::model::Component;
use crate::session::now;
use serde_json::{Value, json};

/// `habeat status`: what habeat knows now, and why it would or would not act.
pub fn status(cfg: &Config, json_out: bool, verbose: bool) -> Outcome {
    let state = read_state(cfg)?;
    let ecfg = engine::EngineConfig::from(cfg);
    if json_out {
        crate::outln!("{}", status_json(&state, cfg, &ecfg));
        return Ok(exit::OK);
    }
    crate::outln!(
        "habeat on {} watching {} (roles: {})",
        cfg.local.whoami,
        cfg.local.dc_check,
        cfg.local
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let head = Head::read(&state, cfg, &ecfg, now());
    for l in head.lines() {
        crate::outln!("{l}");
    }
    print_verdicts_as_of(&state, cfg, Some(&head.as_of()));
    print_holds(&state, cfg);
    for l in crate::survey::show::lines(cfg, now(), verbose) {
        crate::outln!("{l}");
    }
    // Every witness the configuration plans, heard from or not, then any
    // the state remembers that the configuration no longer has.
    let plan = crate::probe::plan(cfg).unwrap_or_default();
    crate::outln!("witnesses (their last votes, {}):", head.as_of());
    for p in &plan {
        match state.witnesses.iter().find(|w| w.witness == p.id) {
            Some(w) => crate::outln!(
                "    {:<32} {:<8} {}",
                w.witness.to_string(),
                format!("{:?}", w.vote),
                w.reason
            ),
            None => crate::outln!("    {:<32} {:<8} not heard from yet", p.id.to_string(), "-"),
        }
    }
    for w in state
        .witnesses
        .iter()
        .filter(|w| !plan.iter().any(|p| p.id == w.witness))
    {
        crate::outln!(
            "    {:<32} {:<8} no longer configured (last: {})",
            w.witness.to_string(),
            format!("{:?}", w.vote),
            w.reason
        );
    }
    print_votes(&state, cfg);
    for r in engine::plan(&state, &ecfg, crate::session::clock()).roles {
        crate::outln!("{}: {}", r.role, r.text());
    }
    if let Some(l) = crate::lease::keeper::file_status(cfg) {
        crate::outln!("lease: {}", l["message"].as_str().unwrap_or_default());
    }
    if let Some(w) = returned_warning(&state) {
        crate::outln!("WARNING: {w}");
    }
    Ok(exit::OK)
}

/// Pause, safe hold, the lock files and the last promotion: what keeps
/// habeat from acting or says it acted, right under the verdicts.
fn print_holds(state: &State, cfg: &Config) {
    match crate::state::scan_locks(&cfg.local, &cfg.local.roles) {
        Ok(locks) => {
            for l in locks.iter().filter(|l| l.present) {
                crate::outln!(
                    "lock: {} ({:?}, {})",
                    crate::state::lock_path(&cfg.local, l.role, l.lock).display(),
                    l.lock,
                    l.role
                );
            }
        }
        Err(e) => crate::outln!("lock files: cannot read: {e}"),
    }
    if let Some(p) = state.pause.as_ref().filter(|_| state.paused_at(now())) {
        crate::outln!("paused until {} ({})", human_time(p.until), p.reason);
    }
    if let Some(h) = &state.safe_hold {
        crate::outln!(
            "SAFE HOLD since {}: {} — `habeat rearm` to clear",
            human_time(h.since),
            h.reason
        );
    }
    if let Some(p) = &state.last_promotion {
        crate::outln!(
            "last promotion: {} of {} ({:?})",
            human_time(p.at),
            p.source_mail_host,
            p.origin
        );
    }
}

/// The warning `status` gives once a peer Consul server answers again
/// after this side recovered raft without it.
fn returned_warning(state: &State) -> Option<String> {
    let at = state.raft.peer_returned_at?;
    state.raft.recovered_at?;
    Some(format!(
        "since {}: {}",
        human_time(at),
        engine::PeerReturnedWarning
    ))
}

/// The state as last saved, without taking the lock or changing anything.
fn read_state(cfg: &Config) -> Result<State, Failure> {
    crate::state::check_state_dir(&cfg.local.state_dir).map_err(Failure::runtime)?;
    crate::state::Store::at(&cfg.local.state_dir)
        .peek(now())
        .map_err(Failure::runtime)
}

pub(super) fn print_verdicts(state: &State, cfg: &Config) {
    print_verdicts_as_of(state, cfg, None);
}

/// The verdicts, headed with the evidence's age when `status` shows saved
/// state (`check` shows the verdicts it just reached).
fn print_verdicts_as_of(state: &State, cfg: &Config, as_of: Option<&str>) {
    match as_of {
        Some(a) => crate::outln!("peer {} ({a}):", cfg.local.dc_check),
        None => crate::outln!("peer {}:", cfg.local.dc_check),
    }
    let watched = crate::probe::watched_components(cfg);
    for (c, cs) in state.components.iter().filter(|(c, _)| watched.contains(c)) {
        crate::outln!(
            "  {:<10} {:<8} since {}  {}",
            c.as_str(),
            cs.verdict.to_string(),
            human_time(cs.since),
            cs.reason
        );
    }
}

/// The votes on one watched component (`one-source-one-vote`): each
/// source of the plan with its witnesses and what they say together now
/// (`None` before any of them was heard from), and how many Down votes the
/// quorum needs.
struct ComponentVotes {
    component: Component,
    needed: usize,
    sources: Vec<(crate::probe::PlannedVote, Option<crate::model::Vote>)>,
}

fn component_votes(state: &State, cfg: &Config) -> Vec<ComponentVotes> {
    let plan = crate::probe::plan(cfg).unwrap_or_default();
    crate::probe::watched_components(cfg)
        .into_iter()
        .map(|c| {
            let now = engine::votes(c, &state.witnesses);
            let sources: Vec<_> = crate::probe::votes(&plan, c)
                .into_iter()
                .map(|v| {
                    let seen = now.iter().find(|n| n.source == v.source).map(|n| n.vote);
                    (v, seen)
                })
                .collect();
            let needed = cfg.detection.quorum.needed(sources.len());
            ComponentVotes {
                component: c,
                needed,
                sources,
            }
        })
        .collect()
}

fn print_votes(state: &State, cfg: &Config) {
    crate::outln!(
        "votes (one per source; consul_members and consul_health are one, Serf), \
         detection.quorum: {}",
        match cfg.detection.quorum {
            crate::config::Quorum::All => "all".to_owned(),
            crate::config::Quorum::AtLeast(n) => n.to_string(),
        }
    );
    for cv in component_votes(state, cfg) {
        let each: Vec<String> = cv
            .sources
            .iter()
            .map(|(v, seen)| {
                let seen = seen.map_or("-".to_owned(), |s| format!("{s:?}"));
                format!("{} {seen}", v.describe())
            })
            .collect();
        let never = if cv.needed > cv.sources.len() {
            " (fewer votes than the quorum: never judged Down)"
        } else {
            ""
        };
        crate::outln!(
            "  {:<10} {} vote(s), {} Down needed{never}: {}",
            cv.component.as_str(),
            cv.sources.len(),
            cv.needed,
            if each.is_empty() {
                "none".to_owned()
            } else {
                each.join("; ")
            }
        );
    }
}

fn votes_json(state: &State, cfg: &Config) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for cv in component_votes(state, cfg) {
        let sources: Vec<_> = cv
            .sources
            .iter()
            .map(|(v, seen)| {
                json!({
                    "source": v.source,
                    "witnesses": v.witnesses.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                    "vote": seen,
                })
            })
            .collect();
        out.insert(
            cv.component.as_str().to_owned(),
            json!({
                "count": cv.sources.len(),
                "needed": cv.needed,
                "sources": sources,
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// The JSON of `habeat status --json` (also served on `/status`).
pub fn status_json(state: &State, cfg: &Config, ecfg: &engine::EngineConfig) -> serde_json::Value {
    status_json_planned(
        state,
        cfg,
        &engine::plan(state, ecfg, crate::session::clock()),
    )
}

/// [`status_json`] with the engine's plan already asked.
pub fn status_json_planned(state: &State, cfg: &Config, plan: &engine::Plan) -> serde_json::Value {
    let locks: Vec<_> = crate::state::scan_locks(&cfg.local, &cfg.local.roles)
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            json!({
                "role": l.role, "lock": l.lock, "present": l.present,
                "path": crate::state::lock_path(&cfg.local, l.role, l.lock),
            })
        })
        .collect();
    // The explanation as it is: `kind` names the situation and `reason`
    // carries its data, beside the sentence.
    let why = plan.explain();
    let head = Head::read(state, cfg, &engine::EngineConfig::from(cfg), now()).json();
    let mut v = json!({
        "whoami": cfg.local.whoami,
        "dc_check": cfg.local.dc_check,
        "roles": cfg.local.roles,
        "components": state.components,
        "witnesses": state.witnesses,
        "votes": votes_json(state, cfg),
        "locks": locks,
        "pause": state.pause.as_ref().filter(|_| state.paused_at(now())),
        "safe_hold": state.safe_hold,
        "last_promotion": state.last_promotion,
        "last_round_at": state.last_round_at,
        "why": why,
        "replicas": crate::survey::show::json(cfg, now()),
        "lease": crate::lease::keeper::file_status(cfg),
        "raft": {
            "leaderless_since": state.raft.leaderless_since,
            "recovered_at": state.raft.recovered_at,
            "peer_returned_at": state.raft.peer_returned_at,
            "warning": returned_warning(state),
        },
    });
    if let (Some(v), Value::Object(head)) = (v.as_object_mut(), head) {
        v.extend(head);
    }
    v
}
