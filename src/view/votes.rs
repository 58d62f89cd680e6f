//! The votes on each watched component (`one-source-one-vote`): each
//! source of the plan with its witnesses and what they say together now,
//! and how many Down votes the quorum needs.

use crate::config::Config;
use crate::engine::{self, State};
use crate::model::{Component, Vote};
use crate::probe::PlannedVote;
use serde::Serialize;
use std::collections::BTreeMap;

/// The votes on one watched component: each source of the plan with what
/// it says now (`None` before any of its witnesses was heard from).
pub struct ComponentVotes {
    pub component: Component,
    pub needed: usize,
    pub sources: Vec<(PlannedVote, Option<Vote>)>,
}

/// [`ComponentVotes`] of every component this node watches.
pub fn component_votes(state: &State, cfg: &Config) -> Vec<ComponentVotes> {
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

/// The `votes` of `status --json`, by component name.
pub type Votes = BTreeMap<&'static str, VotesShown>;

/// The votes on one component as `status --json` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct VotesShown {
    pub count: usize,
    pub needed: usize,
    pub sources: Vec<SourceShown>,
}

/// One source's vote.
#[derive(Debug, Clone, Serialize)]
pub struct SourceShown {
    pub source: crate::model::Source,
    pub witnesses: Vec<String>,
    pub vote: Option<Vote>,
}

/// [`Votes`] from [`component_votes`].
pub fn shown(all: Vec<ComponentVotes>) -> Votes {
    all.into_iter()
        .map(|cv| {
            let sources = cv
                .sources
                .into_iter()
                .map(|(v, seen)| SourceShown {
                    witnesses: v.witnesses.iter().map(|w| w.to_string()).collect(),
                    source: v.source,
                    vote: seen,
                })
                .collect::<Vec<_>>();
            let shown = VotesShown {
                count: sources.len(),
                needed: cv.needed,
                sources,
            };
            (cv.component.as_str(), shown)
        })
        .collect()
}
