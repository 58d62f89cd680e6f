//! The walk that checks habeat.yml against its key tables.
//!
//! The walker opens each section with its [`Table`] (valid keys and "did
//! you mean" candidates come from it), reads every key by its [`Kind`]
//! into the section's effective type of [`super`] (which starts out as
//! the defaults), collecting every problem with its position instead of
//! stopping at the first, then checks what spans sections.
//!
//! - this file: the walker, the sections, the top level;
//! - `walk/values.rs`: the readers of each kind of value (and their
//!   messages);
//! - `walk/custom.rs`: the readers of the keys with a kind of their own
//!   (`Kind::Custom`: roles, the token, probes, ...);
//! - `walk/cross.rs`: the checks across sections (roles against
//!   addresses, the proxy switch, the quorum against the witness plan).

mod cross;
mod custom;
mod fence;
mod values;

pub(crate) use custom::format_size;

use super::keys::{self, Key, Kind, SECTIONS, Table};
use super::problem::{LoadEnv, Problem};
use super::suggest;
use super::yaml::{Key as YamlKey, Node, Pos, Value};
use super::{Config, Datacenter, Local};
use std::collections::BTreeMap;
use std::path::Path;

/// A mapping section being read: its dotted path (for messages), where it
/// starts, and its entries.
pub struct Section<'a> {
    path: String,
    pos: Pos,
    entries: &'a [(YamlKey, Node)],
}

impl<'a> Section<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entry(key).map(|(_, v)| v)
    }
    fn entry(&self, key: &str) -> Option<&'a (YamlKey, Node)> {
        self.entries.iter().find(|(k, _)| k.name == key)
    }
    /// The value, unless absent or written empty (`key:` / `key: ~`).
    fn given(&self, key: &str) -> Option<&'a Node> {
        self.get(key).filter(|n| n.value != Value::Null)
    }
    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
    /// Where a problem about `key` points: its value, else the section.
    fn pos_of(&self, key: &str) -> Pos {
        self.get(key).map_or(self.pos, |n| n.pos)
    }
}

/// Positions kept for the checks done after the walk.
#[derive(Default)]
struct Marks {
    /// The `local:` key.
    local: Option<Pos>,
    /// Each datacenter's key, by name.
    dcs: BTreeMap<String, Pos>,
    /// Where each declared key was written with a value (valid or not),
    /// by dotted path (`detection.quorum`, `primary.appserver_ip`): a
    /// missing-address error is only for keys really absent.
    given: BTreeMap<String, Pos>,
    /// Top-level keys that are neither a section nor a named datacenter.
    other_top: Vec<String>,
}

impl Marks {
    fn given(&self, path: &str) -> Option<Pos> {
        self.given.get(path).copied()
    }
}

pub struct Walker<'e> {
    source: &'e Path,
    env: &'e LoadEnv,
    pub(super) file_mode: Option<u32>,
    problems: Vec<(Pos, String)>,
    warnings: Vec<(Pos, String)>,
    /// Every token value seen; scrubbed from all messages as a last defence.
    secrets: Vec<String>,
    marks: Marks,
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

    fn warn(&mut self, pos: Pos, message: impl Into<String>) {
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

    fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        self.error(
            node.pos,
            format!("{path}: expected {expected}, found {}", node.value.kind()),
        );
    }

    // -- sections -------------------------------------------------------------

    /// Open `node` as the section `path` declared by `table`; unknown keys
    /// are reported with the nearest valid one. An empty value is an empty
    /// section (all defaults).
    fn section<'a, S>(&mut self, node: &'a Node, path: &str, table: &Table<S>) -> Section<'a> {
        let entries: &'a [(YamlKey, Node)] = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            _ => {
                self.type_error(node, path, "a mapping of `key: value` lines");
                &[]
            }
        };
        let shown: Vec<&str> = table
            .keys
            .iter()
            .filter(|k| k.suggested())
            .map(|k| k.name)
            .collect();
        for (k, _) in entries {
            if !table.names().any(|n| n == k.name) {
                let hint = suggest::hint(&k.name, &shown);
                self.error(k.pos, format!("{path}: unknown key `{}`; {hint}", k.name));
            }
        }
        Section {
            path: path.to_owned(),
            pos: node.pos,
            entries,
        }
    }

    /// Read every key of `table` from `s` into `into`, which holds the
    /// defaults: a key absent, or refused (and reported), keeps its default.
    fn read_keys<S>(&mut self, s: &Section, table: &Table<S>, into: &mut S) {
        for key in table.keys {
            if let Some(n) = s.given(key.name) {
                self.marks.given.insert(s.child(key.name), n.pos);
            }
            self.read_key(s, key, into);
        }
    }

    fn read_key<S>(&mut self, s: &Section, key: &Key<S>, into: &mut S) {
        let name = key.name;
        match &key.kind {
            Kind::DcName { field, what } => {
                if let Some(v) = self.dc_name(s, name, what) {
                    *(field.set)(into) = v;
                }
            }
            Kind::Bool(f) => {
                let default = *(f.get)(into);
                *(f.set)(into) = self.bool(s, name, default);
            }
            Kind::Count { field, min, max } => {
                let default = (*(field.get)(into)).into();
                let v = self.uint(s, name, default, (*min).into(), (*max).into());
                *(field.set)(into) = u32::try_from(v).unwrap_or(*max);
            }
            Kind::Port(f) => {
                let default = (*(f.get)(into)).into();
                let v = self.uint(s, name, default, 1, 65535);
                *(f.set)(into) = u16::try_from(v).unwrap_or(u16::MAX);
            }
            Kind::Duration { field, floor } => {
                let default = *(field.get)(into);
                *(field.set)(into) = match floor {
                    Some(floor) => self.duration_at_least(s, name, default, *floor),
                    None => self.duration(s, name, default),
                };
            }
            Kind::Text { field, what } => {
                if let Some((v, _)) = self.opt_string(s, name, what) {
                    *(field.set)(into) = v;
                }
            }
            Kind::Path(f) => {
                if let Some(p) = self.abs_path(s, name) {
                    *(f.set)(into) = p;
                }
            }
            Kind::Address(f) => *(f.set)(into) = self.address(s, name),
            Kind::Addresses(f) => *(f.set)(into) = self.address_list(s, name),
            Kind::Hostname(f) => *(f.set)(into) = self.hostname(s, name),
            Kind::Hostnames(f) => *(f.set)(into) = self.hostname_list(s, name),
            Kind::Commands(f) => *(f.set)(into) = self.commands(s, name),
            Kind::Probes(f) => *(f.set)(into) = self.probe_list(s, name),
            // Read by the key it stands for.
            Kind::Alias { .. } => {}
            Kind::Custom { read, .. } => read(self, s, name, into),
        }
    }

    /// Open and read a whole section whose value is `node`.
    fn read_section<S: Default>(&mut self, node: &Node, path: &str, table: &Table<S>) -> S {
        let s = self.section(node, path, table);
        let mut v = S::default();
        self.read_keys(&s, table, &mut v);
        v
    }

    // -- the file -------------------------------------------------------------

    pub(super) fn config(&mut self, root: &Node) -> Option<Config> {
        let entries = match &root.value {
            Value::Map(entries) => entries,
            Value::Null => {
                self.error(
                    Pos::START,
                    "the file is empty (only blank lines or comments); start from the \
                     example config/habeat.yml and set at least local.whoami and local.dc_check",
                );
                return None;
            }
            other => {
                self.error(
                    root.pos,
                    format!(
                        "the file holds {} where habeat expects sections such as `local:` \
                         and `primary:`; is this really habeat.yml?",
                        other.kind()
                    ),
                );
                return None;
            }
        };
        let top = Section {
            path: String::new(),
            pos: root.pos,
            entries,
        };
        let local = match top.entry(keys::LOCAL.name) {
            Some((k, v)) => {
                self.marks.local = Some(k.pos);
                self.local(v)
            }
            None => {
                self.error(
                    Pos::START,
                    "there is no `local:` section; add one with at least whoami (this \
                     node's datacenter) and dc_check (the datacenter it watches)",
                );
                None
            }
        };
        let empty = Node {
            value: Value::Null,
            pos: root.pos,
        };
        let get = |k: &str| top.get(k).unwrap_or(&empty);
        macro_rules! section {
            ($table:expr) => {
                self.read_section(get($table.name), $table.name, &$table)
            };
        }
        let consul = section!(keys::CONSUL);
        let detection = section!(keys::DETECTION);
        let probes = section!(keys::PROBES);
        let witnesses = section!(keys::WITNESSES);
        let carbonio = section!(keys::CARBONIO);
        let safety = section!(keys::SAFETY);
        let replicas = section!(keys::REPLICAS);
        let lease = section!(keys::LEASE);
        let hooks = section!(keys::HOOKS);
        let metrics = section!(keys::METRICS);
        let journal = section!(keys::JOURNAL);
        let fencing = section!(keys::FENCING);

        let mut dcs = BTreeMap::new();
        let dc_names: Vec<&str> = local
            .as_ref()
            .map(|l| vec![l.whoami.as_str(), l.dc_check.as_str()])
            .unwrap_or_default();
        for (k, v) in entries {
            if SECTIONS.contains(&k.name.as_str()) {
                continue;
            }
            if dc_names.contains(&k.name.as_str()) {
                self.marks.dcs.insert(k.name.clone(), k.pos);
                let dc = self.read_section::<Datacenter>(v, &k.name, &keys::DATACENTER);
                dcs.insert(k.name.clone(), dc);
            } else if local.is_some() {
                self.marks.other_top.push(k.name.clone());
                let mut candidates: Vec<&str> = SECTIONS.to_vec();
                candidates.extend(dc_names.iter().copied());
                let hint = match suggest::nearest(&k.name, &candidates) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!(
                        "a top-level key is a section ({}) or a datacenter named by \
                         local.whoami (`{}`) or local.dc_check (`{}`)",
                        SECTIONS.join(", "),
                        dc_names[0],
                        dc_names[1]
                    ),
                };
                self.error(k.pos, format!("unknown top-level key `{}`; {hint}", k.name));
            }
        }

        let mut cfg = Config {
            source: self.source.to_owned(),
            local: local?,
            dcs,
            consul,
            detection,
            probes,
            witnesses,
            carbonio,
            safety,
            replicas,
            lease,
            hooks,
            metrics,
            journal,
            fencing,
            warnings: Vec::new(),
        };
        self.cross_checks(&mut cfg);
        self.fence_cross(&cfg);
        Some(cfg)
    }

    /// `local:`; `None` when it cannot name the two datacenters.
    fn local(&mut self, node: &Node) -> Option<Local> {
        let s = self.section(node, keys::LOCAL.name, &keys::LOCAL);
        if !matches!(node.value, Value::Map(_) | Value::Null) {
            return None; // wrong type: already reported
        }
        let mut local = Local::default();
        self.read_keys(&s, &keys::LOCAL, &mut local);
        // A name that is missing or refused stays empty (and is reported).
        if local.whoami.is_empty() || local.dc_check.is_empty() {
            return None;
        }
        if local.whoami == local.dc_check {
            self.error(
                s.pos_of("dc_check"),
                format!(
                    "local.dc_check is `{}`, the same as local.whoami: a node watches the \
                     other datacenter; set dc_check to the peer's name",
                    local.dc_check
                ),
            );
        }
        Some(local)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LoadEnv, load_str_with};
    use std::path::Path;

    /// Every key of `local:` is read by its table, so a missing `whoami`
    /// no longer hides the problems of the keys after it (the old walker
    /// stopped reading `local:` at the first missing name).
    #[test]
    fn a_missing_whoami_hides_no_other_problem_of_local() {
        let text = "local:\n  dc_check: primary\n  flush_cache: 5\n  state_dir: rel\nprimary:\n  appserver_ip: 192.0.2.20\n";
        let Err(e) = load_str_with(text, Path::new("h.yml"), &LoadEnv::default()) else {
            panic!("a file without local.whoami is refused");
        };
        let lines = e.lines();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].starts_with("h.yml:1:1: local.whoami is missing;"));
        assert_eq!(
            lines[1],
            "h.yml:3:16: local.flush_cache: expected true or false, found a number"
        );
        assert!(lines[2].starts_with("h.yml:4:14: local.state_dir: `rel` is a relative path;"));
    }
}
