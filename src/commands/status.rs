//! `habeat status` (text and `--json`, also served on `/status`): what
//! habeat knows now, the votes, and the engine's plan for each role.

use super::{Failure, Outcome, human_time};
use crate::config::Config;
use crate::engine::State;
use crate::exit;
use crate::session::now;
use crate::view::{StatusView, votes::component_votes};

/// `habeat status`: what habeat knows now, and why it would or would not act.
pub fn status(cfg: &Config, json_out: bool, verbose: bool, all_accounts: bool) -> Outcome {
    let state = read_state(cfg)?;
    let mut view = StatusView::planned(&state, cfg, crate::session::clock());
    if json_out {
        if all_accounts {
            view.replicas = crate::survey::show::with_accounts(cfg, now());
        }
        crate::outln!("{}", view.to_json());
        return Ok(exit::OK);
    }
    // Accounts whose mail the next loss of this mailstore would lose come
    // first: nothing below matters more.
    for l in view.protection.headline(now(), verbose) {
        crate::outln!("{l}");
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
    let head = &view.head;
    for l in head.lines() {
        crate::outln!("{l}");
    }
    if let Some(s) = &view.switchover {
        crate::outln!("{}", s.message);
        for b in s.behind.iter().take(if verbose { usize::MAX } else { 10 }) {
            crate::outln!("    behind: {} ({})", b.account, b.why);
        }
    }
    print_verdicts_as_of(&state, cfg, Some(&head.as_of()));
    print_holds(&view);
    for l in diverged_lines(&view.diverged) {
        crate::outln!("{l}");
    }
    for l in crate::survey::show::lines(cfg, now(), verbose) {
        // An empty survey of a mailstore habeat promoted away from is the
        // failover's doing, not replication never set up.
        match view.replicas.survey.as_ref() {
            Some(s)
                if s.nothing_to_fail_over
                    && l.starts_with("WARNING: nothing to fail over")
                    && crate::survey::show::last_promoted_from(&state, &s.host) =>
            {
                crate::outln!("replicas: {}", crate::survey::show::promoted_away(&s.host));
            }
            _ => crate::outln!("{l}"),
        }
    }
    for l in view.protection.lines(cfg) {
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
    for r in &view.plan.roles {
        crate::outln!("{}: {}", r.role, r.text());
    }
    if let Some(l) = &view.lease {
        crate::outln!("lease: {}", l.message());
    }
    if let Some(w) = &view.raft.warning {
        crate::outln!("WARNING: {w}");
    }
    Ok(exit::OK)
}

/// Pause, safe hold, the lock files and the last promotion: what keeps
/// habeat from acting or says it acted, right under the verdicts.
fn print_holds(view: &StatusView) {
    match &view.locks_error {
        None => {
            for l in view.locks.iter().filter(|l| l.present) {
                crate::outln!("lock: {} ({:?}, {})", l.path.display(), l.lock, l.role);
            }
        }
        Some(e) => crate::outln!("lock files: cannot read: {e}"),
    }
    if let Some(p) = &view.pause {
        crate::outln!("paused until {} ({})", human_time(p.until), p.reason);
    }
    if let Some(h) = &view.safe_hold {
        crate::outln!(
            "SAFE HOLD since {}: {} — `habeat rearm` to clear",
            human_time(h.since),
            h.reason
        );
    }
    if let Some(p) = &view.last_promotion {
        crate::outln!(
            "last promotion: {} of {} ({:?})",
            human_time(p.at),
            p.source_mail_host,
            p.origin
        );
    }
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

/// The diverged accounts, each with its gap and where its lost tail is.
fn diverged_lines(diverged: &[crate::engine::Diverged]) -> Vec<String> {
    if diverged.is_empty() {
        return Vec::new();
    }
    let mut out = vec![format!(
        "diverged: {} account(s) were at risk when promoted; their old mailstore may hold the \
         only copy of mail their replica never received. `habeat reprotect` leaves them out \
         of a replica there until you name them in --discard-diverged:",
        diverged.len()
    )];
    for d in diverged {
        out.push(format!(
            "    {} {}, promoted from {} (pipeline {}, {})",
            d.account,
            d.gap(),
            d.mail_host,
            d.promotion,
            human_time(d.at)
        ));
    }
    out
}
