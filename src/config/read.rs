//! The readers of habeat.yml's values, and the state they share.
//!
//! A [`Walker`] reads the values of a [`Section`]: each reader checks one
//! kind of value and reports what is wrong with its position, collecting
//! every problem instead of stopping at the first. The readers know
//! nothing of the key tables (`keys.rs` names them for each key; the walk
//! over the tables, `walk.rs`, calls them):
//!
//! - this file: the walker's state (problems, warnings, secrets, the
//!   positions kept for later checks) and the section being read;
//! - `read/values.rs`: the readers of each kind of value (and their
//!   messages);
//! - `read/custom.rs`: the readers of the keys with a kind of their own
//!   (`Kind::Custom`: roles, the token, probes, ...);
//! - `read/fence.rs`: the readers of a fence target's keys, and
//!   `read/fence_meta.rs` those keys held against the agent's own metadata;
//! - `read/cross.rs`: the checks across sections (roles against
//!   addresses, the proxy switch, the quorum against the witness plan);
//! - `read/host.rs`: the programs and the user the file names, looked for
//!   on this host (`LoadEnv::host`).

mod cross;
mod custom;
mod fence;
mod fence_meta;
mod host;
mod values;

use super::problem::{LoadEnv, Problem};
use super::yaml::{Key as YamlKey, Node, Pos, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A mapping section being read: its dotted path (for messages), where it
/// starts, and its entries.
pub struct Section<'a> {
    pub(super) path: String,
    pub(super) pos: Pos,
    pub(super) entries: &'a [(YamlKey, Node)],
}

impl<'a> Section<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entry(key).map(|(_, v)| v)
    }
    pub(super) fn entry(&self, key: &str) -> Option<&'a (YamlKey, Node)> {
        self.entries.iter().find(|(k, _)| k.name == key)
    }
    /// The value, unless absent or written empty (`key:` / `key: ~`).
    pub(super) fn given(&self, key: &str) -> Option<&'a Node> {
        self.get(key).filter(|n| n.value != Value::Null)
    }
    pub(super) fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
    /// Where a problem about `key` points: its value, else the section.
    pub(super) fn pos_of(&self, key: &str) -> Pos {
        self.get(key).map_or(self.pos, |n| n.pos)
    }
}

/// Positions kept for the checks done after the walk.
#[derive(Default)]
pub(super) struct Marks {
    /// The `local:` key.
    pub(super) local: Option<Pos>,
    /// Each datacenter's key, by name.
    pub(super) dcs: BTreeMap<String, Pos>,
    /// Where each declared key was written with a value (valid or not),
    /// by dotted path (`detection.quorum`, `primary.appserver_ip`): a
    /// missing-address error is only for keys really absent.
    pub(super) given: BTreeMap<String, Pos>,
    /// Top-level keys that are neither a section nor a named datacenter.
    pub(super) other_top: Vec<String>,
}

impl Marks {
    pub(super) fn given(&self, path: &str) -> Option<Pos> {
        self.given.get(path).copied()
    }
}

pub struct Walker<'e> {
    pub(super) source: &'e Path,
    env: &'e LoadEnv,
    pub(super) file_mode: Option<u32>,
    problems: Vec<(Pos, String)>,
    warnings: Vec<(Pos, String)>,
    /// Every token value seen; scrubbed from all messages as a last defence.
    secrets: Vec<String>,
    pub(super) marks: Marks,
}

impl<'e> Walker<'e> {
    pub(super) fn new(source: &'e Path, env: &'e LoadEnv) -> Self {
        let mut secrets = Vec::new();
        if let Some(t) = &env.consul_http_token {
            secrets.push(t.expose().to_owned());
        }
        Walker {
            source,
            env,
            file_mode: None,
            problems: Vec::new(),
            warnings: Vec::new(),
            secrets,
            marks: Marks::default(),
        }
    }

    pub(super) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push((pos, message.into()));
    }

    pub(super) fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push((pos, message.into()));
    }

    fn scrub(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for secret in self.secrets.iter().filter(|s| s.len() >= 4) {
            out = out.replace(secret.as_str(), "********");
        }
        out
    }

    pub(super) fn finish_problems(&mut self) -> Vec<Problem> {
        let mut list = std::mem::take(&mut self.problems);
        list.sort_by_key(|(p, _)| *p);
        list.dedup();
        list.into_iter()
            .map(|(pos, m)| Problem {
                line: pos.line,
                column: pos.column,
                message: self.scrub(&m),
            })
            .collect()
    }

    pub(super) fn finish_warnings(&mut self) -> Vec<String> {
        let mut list = std::mem::take(&mut self.warnings);
        list.sort_by_key(|(p, _)| *p);
        list.dedup();
        list.into_iter()
            .map(|(pos, m)| format!("{}:{pos}: {}", self.source.display(), self.scrub(&m)))
            .collect()
    }

    pub(super) fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        self.error(
            node.pos,
            format!("{path}: expected {expected}, found {}", node.value.kind()),
        );
    }
}
