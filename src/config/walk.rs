//! The schema of habeat.yml and the walk that checks it.
//!
//! Each section lists its valid keys once; the walker reads a section's
//! keys into the effective types of [`super`], collecting every problem
//! (with its position) instead of stopping at the first, then checks what
//! spans sections (roles against addresses, the proxy switch, the quorum).

use super::address::{address_problem, hostname_problem};
use super::load::{LoadEnv, Problem, io_problem};
use super::suggest;
use super::yaml::{Key, Node, Pos, Value};
use super::{
    Carbonio, Config, Consul, Datacenter, Detection, HookCommand, Hooks, Journal, Local, Metrics,
    ProbeSpec, Probes, Quorum, Rearm, Safety, Scheme, Secret, SwitchCommands, TokenSource,
    Witnesses,
};
use crate::model::{Component, Role, WitnessKind};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Schema: the valid keys of each section, in the order the docs list them.

/// The fixed top-level sections; any other top-level key must be a
/// datacenter named by `local.whoami` or `local.dc_check`.
pub const SECTIONS: &[&str] = &[
    "local",
    "consul",
    "detection",
    "probes",
    "witnesses",
    "carbonio",
    "safety",
    "hooks",
    "metrics",
    "journal",
];

const LOCAL_KEYS: &[&str] = &[
    "whoami",
    "dc_check",
    "role",
    "roles",
    "checkDownFile",
    "checkPromotionFile",
    "checkRestartReplicaFile",
    "provider",
    "threads",
    "proxy_switch",
    "proxy_enable_activate",
    "proxy_enable_deactivate",
    "disable_ha_module",
    "flush_cache",
    "flush_arguments_a",
    "restart_replica",
    "state_dir",
];
const DC_KEYS: &[&str] = &[
    "proxy_ip",
    "appserver_ip",
    "directorysrv_ip",
    "consul_ips",
    "consul_vmnames",
    "appserver_vmname",
    "proxyserver_vmname",
    "proxy_switch",
];
/// `deativate` is the old file's spelling; accepted, never suggested.
const SWITCH_KEYS: &[&str] = &["activate", "deactivate", "deativate"];
const CONSUL_KEYS: &[&str] = &[
    "hostname",
    "port",
    "scheme",
    "ca_file",
    "token",
    "token_file",
    "service_discover_data",
];
const DETECTION_KEYS: &[&str] = &["interval", "timeout", "fall", "rise", "quorum"];
const PROBES_KEYS: &[&str] = &["appserver", "proxy", "directory", "consul"];
const PROBE_KINDS: &[&str] = &["icmp", "tcp", "http", "ldap"];
const WITNESS_KEYS: &[&str] = &["consul_members", "consul_health", "command"];
const CARBONIO_KEYS: &[&str] = &[
    "cli",
    "zmprov",
    "run_as",
    "module",
    "command_timeout",
    "promote_timeout",
];
const SAFETY_KEYS: &[&str] = &["quorum_gate", "recovery_grace", "promotion_block", "rearm"];
const HOOKS_KEYS: &[&str] = &[
    "timeout",
    "after_promotion",
    "on_peer_recovered",
    "on_event",
];
const METRICS_KEYS: &[&str] = &["listen"];
const JOURNAL_KEYS: &[&str] = &["max_size", "keep"];
const ROLE_NAMES: &[&str] = &["appserver", "proxyserver", "consulserver"];

/// Keys accepted for compatibility but never offered as a suggestion.
const HIDDEN_ALIASES: &[&str] = &["deativate"];

/// Defaults of the legacy lock-file templates (the old habeat.yml's
/// values), so runbooks that look for these files keep working.
pub const DEFAULT_CHECK_DOWN_FILE: &str = "/var/tmp/appserverdown-habeat";
pub const DEFAULT_CHECK_PROMOTION_FILE: &str = "/var/tmp/appserverprom-habeat";
pub const DEFAULT_CHECK_RESTART_REPLICA_FILE: &str = "/var/tmp/appserverrstopha";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/habeat";
pub const DEFAULT_THREADS: u32 = 5;

// ---------------------------------------------------------------------------
// The walker.

/// A mapping section being read: its dotted path (for messages), where it
/// starts, and its entries.
struct Section<'a> {
    path: String,
    pos: Pos,
    entries: &'a [(Key, Node)],
}

impl<'a> Section<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entry(key).map(|(_, v)| v)
    }
    fn entry(&self, key: &str) -> Option<&'a (Key, Node)> {
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

/// Positions kept for the cross-section checks done after the walk.
#[derive(Default)]
struct Marks {
    local: Option<Pos>,
    whoami: Option<Pos>,
    dc_check: Option<Pos>,
    roles: Option<Pos>,
    proxy_switch: Option<Pos>,
    dcs: BTreeMap<String, Pos>,
    quorum: Option<Pos>,
    quorum_gate: Option<Pos>,
    token: Option<Pos>,
    timeout: Option<Pos>,
    enable_activate: Option<Pos>,
    enable_deactivate: Option<Pos>,
    /// `dc.key` of every datacenter key written with a value (valid or
    /// not): a missing-address error is only for keys really absent.
    given: BTreeSet<String>,
    /// Top-level keys that are neither a section nor a named datacenter.
    other_top: Vec<String>,
}

pub(super) struct Walker<'e> {
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

    /// Open `node` as a section with the given valid keys; unknown keys are
    /// reported with the nearest valid one. An empty value is an empty
    /// section (all defaults).
    fn section<'a>(&mut self, node: &'a Node, path: &str, valid: &[&str]) -> Section<'a> {
        let entries: &'a [(Key, Node)] = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            _ => {
                self.type_error(node, path, "a mapping of `key: value` lines");
                &[]
            }
        };
        let shown: Vec<&str> = valid
            .iter()
            .copied()
            .filter(|k| !HIDDEN_ALIASES.contains(k))
            .collect();
        for (k, _) in entries {
            if !valid.contains(&k.name.as_str()) {
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

    // -- scalars ------------------------------------------------------------

    /// A text value, or `None` if absent or empty. `what` describes it in
    /// a type error.
    fn opt_string(&mut self, s: &Section, key: &str, what: &str) -> Option<(String, Pos)> {
        let node = s.given(key)?;
        match &node.value {
            Value::Str(v) if v.trim().is_empty() => None,
            Value::Str(v) => Some((v.trim().to_owned(), node.pos)),
            _ => {
                self.type_error(node, &s.child(key), what);
                None
            }
        }
    }

    fn bool(&mut self, s: &Section, key: &str, default: bool) -> bool {
        let Some(node) = s.given(key) else {
            return default;
        };
        match node.value {
            Value::Bool(b) => b,
            _ => {
                self.type_error(node, &s.child(key), "true or false");
                default
            }
        }
    }

    fn uint(&mut self, s: &Section, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(node) = s.given(key) else {
            return default;
        };
        match node.value {
            Value::Int(i) if i >= i128::from(min) && i <= i128::from(max) => i as u64,
            Value::Int(i) => {
                let why = if i < i128::from(min) {
                    format!("must be at least {min}")
                } else {
                    format!("must be at most {max}")
                };
                self.error(
                    node.pos,
                    format!("{}: {i} is out of range: {why}", s.child(key)),
                );
                default
            }
            _ => {
                self.type_error(
                    node,
                    &s.child(key),
                    &format!("a whole number ({min}-{max})"),
                );
                default
            }
        }
    }

    fn duration(&mut self, s: &Section, key: &str, default: Duration) -> Duration {
        let Some(node) = s.given(key) else {
            return default;
        };
        let path = s.child(key);
        let text = match &node.value {
            Value::Str(t) => t.trim().to_owned(),
            Value::Int(i) => {
                self.error(
                    node.pos,
                    format!("{path}: {i} has no unit; write a duration such as {i}s or {i}m"),
                );
                return default;
            }
            _ => {
                self.type_error(node, &path, "a duration such as 2s, 1m30s or 1h");
                return default;
            }
        };
        match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() => {
                self.error(
                    node.pos,
                    format!(
                        "{path}: must be longer than zero; write e.g. {}",
                        humantime::format_duration(default)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    node.pos,
                    format!(
                        "{path}: `{text}` is not a duration ({e}); write e.g. 2s, 500ms, 1m30s or 1h"
                    ),
                );
                default
            }
        }
    }

    fn abs_path(&mut self, s: &Section, key: &str) -> Option<PathBuf> {
        let (p, pos) = self.opt_string(s, key, "a file path")?;
        let path = PathBuf::from(&p);
        if path.is_absolute() {
            Some(path)
        } else {
            self.error(
                pos,
                format!(
                    "{}: `{p}` is a relative path; write the full path starting with /",
                    s.child(key)
                ),
            );
            None
        }
    }

    fn abs_path_or(&mut self, s: &Section, key: &str, default: &str) -> PathBuf {
        self.abs_path(s, key)
            .unwrap_or_else(|| PathBuf::from(default))
    }

    fn address(&mut self, s: &Section, key: &str) -> Option<String> {
        let (a, pos) = self.opt_string(s, key, "an IP address or hostname")?;
        self.check_address(&a, pos, &s.child(key)).then_some(a)
    }

    fn check_address(&mut self, a: &str, pos: Pos, path: &str) -> bool {
        match address_problem(a) {
            None => true,
            Some(why) => {
                self.error(pos, format!("{path}: `{a}` {why}"));
                false
            }
        }
    }

    fn hostname(&mut self, s: &Section, key: &str) -> Option<String> {
        let (h, pos) = self.opt_string(s, key, "a hostname")?;
        self.check_hostname(&h, pos, &s.child(key)).then_some(h)
    }

    fn check_hostname(&mut self, h: &str, pos: Pos, path: &str) -> bool {
        match hostname_problem(h) {
            None => true,
            Some(why) => {
                self.error(
                    pos,
                    format!(
                        "{path}: `{h}` is not a valid hostname ({why}); write the server's \
                         name as Consul knows it, e.g. mbox1.example.com"
                    ),
                );
                false
            }
        }
    }

    /// The items of a list. Empty entries (`-` with nothing after it, as in
    /// the old example file) are skipped with a warning.
    fn list<'a>(&mut self, s: &Section<'a>, key: &str, what: &str) -> Vec<&'a Node> {
        let Some(node) = s.given(key) else {
            return Vec::new();
        };
        let path = s.child(key);
        match &node.value {
            Value::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    if item.value == Value::Null {
                        self.warn(
                            item.pos,
                            format!("{path}: an empty list entry is ignored; fill it in or remove the line"),
                        );
                    } else {
                        out.push(item);
                    }
                }
                out
            }
            _ => {
                self.type_error(
                    node,
                    &path,
                    &format!("a list of {what} (one `- item` per line)"),
                );
                Vec::new()
            }
        }
    }

    fn string_item(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
            Value::Str(_) => {
                self.error(
                    node.pos,
                    format!("{path}: empty entry; write {what} or remove the line"),
                );
                None
            }
            _ => {
                self.type_error(node, path, what);
                None
            }
        }
    }

    fn address_list(&mut self, s: &Section, key: &str) -> Vec<String> {
        let path = s.child(key);
        let items = self.list(s, key, "IP addresses or hostnames");
        let mut out = Vec::new();
        for item in items {
            if let Some(a) = self.string_item(item, &path, "an IP address or hostname")
                && self.check_address(&a, item.pos, &path)
            {
                out.push(a);
            }
        }
        out
    }

    fn hostname_list(&mut self, s: &Section, key: &str) -> Vec<String> {
        let path = s.child(key);
        let items = self.list(s, key, "hostnames");
        let mut out = Vec::new();
        for item in items {
            if let Some(h) = self.string_item(item, &path, "a hostname")
                && self.check_hostname(&h, item.pos, &path)
            {
                out.push(h);
            }
        }
        out
    }

    /// An argv list: `["/usr/local/bin/x", "--flag", 5]` (numbers become
    /// their decimal text).
    fn argv(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &node.value else {
            self.type_error(
                node,
                path,
                "an argv list such as [\"/usr/local/bin/witness\", \"--dc\", \"primary\"]",
            );
            return None;
        };
        let mut argv = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::Str(a) => argv.push(a.clone()),
                Value::Int(n) => argv.push(n.to_string()),
                _ => {
                    self.type_error(item, &format!("{path}[{i}]"), "text (quote it)");
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        match argv.first() {
            None => {
                self.error(
                    node.pos,
                    format!(
                        "{path}: the command is an empty list; write the program and its arguments"
                    ),
                );
                None
            }
            Some(p) if p.trim().is_empty() => {
                self.error(node.pos, format!("{path}: the program name is empty"));
                None
            }
            Some(_) => Some(argv),
        }
    }

    /// A list of commands; each is a string (run by `/bin/sh -c`) or an argv
    /// list (run directly).
    fn commands(&mut self, s: &Section, key: &str) -> Vec<HookCommand> {
        let path = s.child(key);
        let items = self.list(s, key, "commands");
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match &item.value {
                Value::Str(c) if c.trim().is_empty() => self.error(
                    item.pos,
                    format!("{item_path}: empty command; write it or remove the line"),
                ),
                Value::Str(c) => out.push(HookCommand::Shell(c.clone())),
                Value::Seq(_) => {
                    if let Some(argv) = self.argv(item, &item_path) {
                        out.push(HookCommand::Argv(argv));
                    }
                }
                _ => self.type_error(
                    item,
                    &item_path,
                    "a command: a string (run by /bin/sh -c) or an argv list",
                ),
            }
        }
        out
    }

    fn choice<T: Copy>(&mut self, s: &Section, key: &str, default: T, choices: &[(&str, T)]) -> T {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let what = format!("one of: {}", names.join(", "));
        let Some((v, pos)) = self.opt_string(s, key, &what) else {
            return default;
        };
        if let Some((_, t)) = choices.iter().find(|(n, _)| n.eq_ignore_ascii_case(&v)) {
            return *t;
        }
        let hint = suggest::hint(&v, &names);
        self.error(pos, format!("{}: `{v}` is not valid; {hint}", s.child(key)));
        default
    }

    // -- sections -------------------------------------------------------------

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
        let local = match top.entry("local") {
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
        let consul = self.consul(get("consul"));
        let detection = self.detection(get("detection"));
        let probes = self.probes(get("probes"));
        let witnesses = self.witnesses(get("witnesses"));
        let carbonio = self.carbonio(get("carbonio"));
        let safety = self.safety(get("safety"));
        let hooks = self.hooks(get("hooks"));
        let metrics = self.metrics(get("metrics"));
        let journal = self.journal(get("journal"));

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
                let dc = self.datacenter(v, &k.name);
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
            hooks,
            metrics,
            journal,
            warnings: Vec::new(),
        };
        self.cross_checks(&mut cfg);
        Some(cfg)
    }

    fn dc_name(&mut self, s: &Section, key: &str) -> Option<(String, Pos)> {
        let Some((name, pos)) = self.opt_string(s, key, "a datacenter name such as primary") else {
            if matches!(s.given(key), Some(n) if !matches!(&n.value, Value::Str(_))) {
                return None; // wrong type: already reported
            }
            let what = if key == "whoami" {
                "the datacenter this node is in"
            } else {
                "the datacenter this node watches"
            };
            self.error(
                self.marks.local.unwrap_or(s.pos),
                format!(
                    "{} is missing; set it to the name of {what} (e.g. primary or \
                     secondary), matching a top-level section of the same name",
                    s.child(key)
                ),
            );
            return None;
        };
        if SECTIONS.contains(&name.as_str()) {
            self.error(
                pos,
                format!(
                    "{}: `{name}` is the name of a section; name the datacenter \
                     differently (e.g. primary, secondary)",
                    s.child(key)
                ),
            );
            return None;
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.error(
                pos,
                format!(
                    "{}: `{name}` is not a usable datacenter name; use letters, digits, `_` and `-`",
                    s.child(key)
                ),
            );
            return None;
        }
        Some((name, pos))
    }

    fn local(&mut self, node: &Node) -> Option<Local> {
        let s = self.section(node, "local", LOCAL_KEYS);
        if !matches!(node.value, Value::Map(_) | Value::Null) {
            return None; // wrong type: already reported
        }
        let whoami = self.dc_name(&s, "whoami");
        let dc_check = self.dc_name(&s, "dc_check");
        if let (Some((w, _)), Some((d, pos))) = (&whoami, &dc_check)
            && w == d
        {
            self.error(
                *pos,
                format!(
                    "local.dc_check is `{d}`, the same as local.whoami: a node watches the \
                     other datacenter; set dc_check to the peer's name"
                ),
            );
        }
        self.marks.whoami = whoami.as_ref().map(|(_, p)| *p);
        self.marks.dc_check = dc_check.as_ref().map(|(_, p)| *p);

        let roles = self.roles(&s);
        self.marks.enable_activate = s.given("proxy_enable_activate").map(|n| n.pos);
        self.marks.enable_deactivate = s.given("proxy_enable_deactivate").map(|n| n.pos);

        if let Some((p, pos)) = self.opt_string(&s, "provider", "the text consul")
            && p != "consul"
        {
            self.error(
                pos,
                format!(
                    "local.provider: `{p}` is not supported; habeat asks Carbonio's \
                     service discover: write `provider: consul` (or remove the line); \
                     for another source of evidence use witnesses.command"
                ),
            );
        }
        let threads = self.uint(&s, "threads", DEFAULT_THREADS.into(), 1, 256) as u32;
        let proxy_switch =
            match self.opt_string(&s, "proxy_switch", "the name of a proxy switch tool") {
                Some((t, pos)) => {
                    self.marks.proxy_switch = Some(pos);
                    t
                }
                None => "bgp".into(),
            };
        let local = Local {
            whoami: whoami?.0,
            dc_check: dc_check?.0,
            roles,
            check_down_file: self.abs_path_or(&s, "checkDownFile", DEFAULT_CHECK_DOWN_FILE),
            check_promotion_file: self.abs_path_or(
                &s,
                "checkPromotionFile",
                DEFAULT_CHECK_PROMOTION_FILE,
            ),
            check_restart_replica_file: self.abs_path_or(
                &s,
                "checkRestartReplicaFile",
                DEFAULT_CHECK_RESTART_REPLICA_FILE,
            ),
            threads,
            proxy_switch,
            proxy_enable_activate: self.bool(&s, "proxy_enable_activate", false),
            proxy_enable_deactivate: self.bool(&s, "proxy_enable_deactivate", false),
            disable_ha_module: self.bool(&s, "disable_ha_module", false),
            flush_cache: self.bool(&s, "flush_cache", false),
            flush_arguments_a: self.bool(&s, "flush_arguments_a", false),
            restart_replica: self.bool(&s, "restart_replica", false),
            state_dir: self.abs_path_or(&s, "state_dir", DEFAULT_STATE_DIR),
        };
        Some(local)
    }

    fn role(&mut self, node: &Node, path: &str) -> Option<Role> {
        let name = self.string_item(node, path, "a role name")?;
        match name.as_str() {
            "appserver" => Some(Role::Appserver),
            "proxyserver" => Some(Role::Proxyserver),
            "consulserver" => Some(Role::Consulserver),
            other => {
                let hint = suggest::hint(other, ROLE_NAMES);
                self.error(node.pos, format!("{path}: unknown role `{other}`; {hint}"));
                None
            }
        }
    }

    fn roles(&mut self, s: &Section) -> Vec<Role> {
        let role = s.given("role");
        let roles = s.given("roles");
        if let (Some(_), Some(r)) = (role, roles) {
            self.error(
                r.pos,
                "local.role and local.roles are both set; keep `roles` (a list) and remove `role`",
            );
        }
        let mut out = Vec::new();
        if let Some(node) = roles {
            self.marks.roles = Some(node.pos);
            let items = self.list(s, "roles", "roles");
            if items.is_empty() && matches!(node.value, Value::Seq(_)) {
                self.error(
                    node.pos,
                    format!(
                        "local.roles is empty; list at least one of {}",
                        ROLE_NAMES.join(", ")
                    ),
                );
            }
            for item in items {
                if let Some(r) = self.role(item, "local.roles")
                    && !out.contains(&r)
                {
                    out.push(r);
                }
            }
        } else if let Some(node) = role {
            self.marks.roles = Some(node.pos);
            if let Some(r) = self.role(node, "local.role") {
                out.push(r);
            }
        } else {
            out.push(Role::Appserver);
        }
        out
    }

    fn datacenter(&mut self, node: &Node, name: &str) -> Datacenter {
        let s = self.section(node, name, DC_KEYS);
        for key in DC_KEYS {
            if s.given(key).is_some() {
                self.marks.given.insert(format!("{name}.{key}"));
            }
        }
        let mut proxy_switch = BTreeMap::new();
        if let Some(sw) = s.get("proxy_switch") {
            let path = s.child("proxy_switch");
            let tools = match &sw.value {
                Value::Map(entries) => entries.as_slice(),
                Value::Null => &[],
                _ => {
                    self.type_error(sw, &path, "a mapping of tool names, e.g. `bgp:`");
                    &[]
                }
            };
            for (tool, body) in tools {
                let tpath = format!("{path}.{}", tool.name);
                let t = self.section(body, &tpath, SWITCH_KEYS);
                let activate = self.commands(&t, "activate");
                let deactivate = if t.given("deactivate").is_some()
                    && t.given("deativate").is_some()
                {
                    self.error(
                        t.pos_of("deativate"),
                        format!(
                            "{tpath}: both `deactivate` and the old spelling `deativate` are set; keep `deactivate`"
                        ),
                    );
                    Vec::new()
                } else if t.given("deactivate").is_some() {
                    self.commands(&t, "deactivate")
                } else {
                    self.commands(&t, "deativate")
                };
                proxy_switch.insert(
                    tool.name.clone(),
                    SwitchCommands {
                        activate,
                        deactivate,
                    },
                );
            }
        }
        Datacenter {
            proxy_ip: self.address(&s, "proxy_ip"),
            appserver_ip: self.address(&s, "appserver_ip"),
            directorysrv_ip: self.address(&s, "directorysrv_ip"),
            consul_ips: self.address_list(&s, "consul_ips"),
            consul_vmnames: self.hostname_list(&s, "consul_vmnames"),
            appserver_vmname: self.hostname(&s, "appserver_vmname"),
            proxyserver_vmname: self.hostname(&s, "proxyserver_vmname"),
            proxy_switch,
        }
    }

    fn consul(&mut self, node: &Node) -> Consul {
        let s = self.section(node, "consul", CONSUL_KEYS);
        let d = Consul::default();
        let hostname = match self.opt_string(&s, "hostname", "an IP address or hostname") {
            Some((h, pos)) if self.check_address(&h, pos, "consul.hostname") => h,
            _ => d.hostname.clone(),
        };
        let port = self.uint(&s, "port", d.port.into(), 1, 65535) as u16;
        let scheme = self.choice(
            &s,
            "scheme",
            Scheme::Http,
            &[("http", Scheme::Http), ("https", Scheme::Https)],
        );
        let ca_file = self.abs_path(&s, "ca_file");
        if let Some(ca) = &ca_file {
            let pos = s.pos_of("ca_file");
            if !ca.is_file() {
                self.error(
                    pos,
                    format!(
                        "consul.ca_file: {} does not exist or is not a file; give the CA \
                         certificate that signed the Consul agent's certificate",
                        ca.display()
                    ),
                );
            } else if scheme == Scheme::Http {
                self.warn(
                    pos,
                    "consul.ca_file is ignored with scheme: http; set scheme: https to use TLS",
                );
            }
        }
        let token_file = self.abs_path(&s, "token_file");
        let (token, token_source) = self.token(&s, token_file.as_deref());
        Consul {
            hostname,
            port,
            scheme,
            ca_file,
            token_file,
            token,
            token_source,
            service_discover_data: self.abs_path_or(
                &s,
                "service_discover_data",
                "/var/lib/service-discover/data",
            ),
        }
    }

    /// The token, by precedence: `consul.token`, then `consul.token_file`,
    /// then `CONSUL_HTTP_TOKEN`. Its value never enters a message.
    fn token(
        &mut self,
        s: &Section,
        token_file: Option<&Path>,
    ) -> (Option<Secret>, Option<TokenSource>) {
        let mut inline = None;
        if let Some(node) = s.given("token") {
            self.marks.token = Some(node.pos);
            match &node.value {
                Value::Str(t) if t.trim().is_empty() => {}
                Value::Str(t) => {
                    let t = t.trim().to_owned();
                    self.secrets.push(t.clone());
                    if self.token_ok(&t, node.pos, "consul.token") {
                        inline = Some(Secret::new(t));
                    }
                }
                // A token that YAML read as a number or boolean: say so
                // without echoing it.
                _ => self.error(
                    node.pos,
                    format!(
                        "consul.token: expected text, found {}; put the token in quotes",
                        node.value.kind()
                    ),
                ),
            }
        }
        if let Some(path) = token_file {
            let pos = s.pos_of("token_file");
            if s.given("token").is_some() {
                self.error(
                    pos,
                    "consul.token and consul.token_file are both set; keep one (token_file \
                     keeps the secret out of habeat.yml)",
                );
                return (inline, Some(TokenSource::Config));
            }
            return match self.read_token_file(path, pos) {
                Some(t) => (Some(t), Some(TokenSource::File)),
                None => (None, None),
            };
        }
        if let Some(t) = inline {
            if self.file_mode.is_some_and(|m| m & 0o004 != 0) {
                let mode = self.file_mode.unwrap_or(0) & 0o777;
                self.warn(
                    self.marks.token.unwrap_or(Pos::START),
                    format!(
                        "consul.token is in a file every local user can read (mode {mode:04o}); \
                         run `chmod 600 {}`, or move the token to a root-only consul.token_file",
                        self.source.display()
                    ),
                );
            }
            return (Some(t), Some(TokenSource::Config));
        }
        match &self.env.consul_http_token {
            Some(t) => (Some(t.clone()), Some(TokenSource::Environment)),
            None => (None, None),
        }
    }

    fn token_ok(&mut self, t: &str, pos: Pos, path: &str) -> bool {
        if t.chars().any(|c| c.is_control() || c == ' ') {
            self.error(
                pos,
                format!("{path}: the token contains spaces or control characters; copy it again (a Consul token is one word, usually a UUID)"),
            );
            return false;
        }
        true
    }

    fn read_token_file(&mut self, path: &Path, pos: Pos) -> Option<Secret> {
        let meta = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                self.error(
                    pos,
                    format!("consul.token_file: {} is not a regular file; give the file that holds the token", path.display()),
                );
                return None;
            }
            Err(e) => {
                self.error(
                    pos,
                    format!("consul.token_file: {} {}", path.display(), io_problem(&e)),
                );
                return None;
            }
        };
        let mut text = String::new();
        let read =
            std::fs::File::open(path).and_then(|f| f.take(64 * 1024).read_to_string(&mut text));
        if let Err(e) = read {
            let why = if e.kind() == std::io::ErrorKind::InvalidData {
                "is not text".to_owned()
            } else {
                io_problem(&e)
            };
            self.error(pos, format!("consul.token_file: {} {why}", path.display()));
            return None;
        }
        let t = text.trim().to_owned();
        if t.is_empty() {
            self.error(
                pos,
                format!(
                    "consul.token_file: {} is empty; put the Consul ACL token in it",
                    path.display()
                ),
            );
            return None;
        }
        self.secrets.push(t.clone());
        if !self.token_ok(&t, pos, "consul.token_file") {
            return None;
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o004 != 0 {
            self.warn(
                pos,
                format!(
                    "consul.token_file {} can be read by every local user (mode {:04o}); run `chmod 600` on it",
                    path.display(),
                    mode & 0o777
                ),
            );
        }
        Some(Secret::new(t))
    }

    fn detection(&mut self, node: &Node) -> Detection {
        let s = self.section(node, "detection", DETECTION_KEYS);
        let d = Detection::default();
        self.marks.timeout = s.given("timeout").map(|n| n.pos);
        let quorum = match s.given("quorum") {
            None => d.quorum,
            Some(n) => {
                self.marks.quorum = Some(n.pos);
                match &n.value {
                    Value::Str(t) if t.trim().eq_ignore_ascii_case("all") => Quorum::All,
                    Value::Int(i) if *i >= 1 && *i <= 1000 => Quorum::AtLeast(*i as u32),
                    Value::Int(i) => {
                        self.error(
                            n.pos,
                            format!("detection.quorum: {i} is out of range; write `all` or the number of Down votes needed (at least 1)"),
                        );
                        d.quorum
                    }
                    _ => {
                        self.type_error(
                            n,
                            "detection.quorum",
                            "`all` or a number of Down votes (at least 1)",
                        );
                        d.quorum
                    }
                }
            }
        };
        Detection {
            interval: self.duration(&s, "interval", d.interval),
            timeout: self.duration(&s, "timeout", d.timeout),
            fall: self.uint(&s, "fall", d.fall.into(), 1, 1000) as u32,
            rise: self.uint(&s, "rise", d.rise.into(), 1, 1000) as u32,
            quorum,
        }
    }

    fn probes(&mut self, node: &Node) -> Probes {
        let s = self.section(node, "probes", PROBES_KEYS);
        Probes {
            appserver: self.probe_list(&s, "appserver"),
            proxy: self.probe_list(&s, "proxy"),
            directory: self.probe_list(&s, "directory"),
            consul: self.probe_list(&s, "consul"),
        }
    }

    fn probe_list(&mut self, s: &Section, key: &str) -> Vec<ProbeSpec> {
        let path = s.child(key);
        let items = self.list(s, key, "probes such as { tcp: 7071 }");
        let mut out = Vec::new();
        for item in items {
            if let Some(p) = self.probe(item, &path)
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
        out
    }

    fn probe(&mut self, node: &Node, path: &str) -> Option<ProbeSpec> {
        let (kind, arg, kpos) = match &node.value {
            Value::Str(k) => (k.trim().to_owned(), None, node.pos),
            Value::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                (k.name.clone(), Some(v), k.pos)
            }
            Value::Map(_) => {
                self.error(
                    node.pos,
                    format!("{path}: one probe per list entry; write each on its own `- ` line, e.g. `- {{ tcp: 7071 }}`"),
                );
                return None;
            }
            _ => {
                self.type_error(
                    node,
                    path,
                    "a probe: icmp, { tcp: PORT }, { http: URL } or { ldap: PORT }",
                );
                return None;
            }
        };
        let port = |w: &mut Self, v: Option<&Node>| -> Option<u16> {
            match v.map(|v| (&v.value, v.pos)) {
                Some((Value::Int(p), _)) if (1..=65535).contains(p) => Some(*p as u16),
                Some((_, pos)) => {
                    w.error(
                        pos,
                        format!(
                            "{path}: `{kind}` needs a port number (1-65535), e.g. {{ {kind}: 389 }}"
                        ),
                    );
                    None
                }
                None => {
                    w.error(
                        kpos,
                        format!("{path}: `{kind}` needs a port number, e.g. {{ {kind}: 389 }}"),
                    );
                    None
                }
            }
        };
        match kind.as_str() {
            "icmp" => match arg.map(|a| &a.value) {
                None | Some(Value::Null) | Some(Value::Bool(true)) => Some(ProbeSpec::Icmp),
                Some(_) => {
                    self.error(
                        kpos,
                        format!("{path}: icmp takes no argument; write `- icmp`"),
                    );
                    None
                }
            },
            "tcp" => port(self, arg).map(ProbeSpec::Tcp),
            "ldap" => port(self, arg).map(ProbeSpec::Ldap),
            "http" => match arg.map(|a| (&a.value, a.pos)) {
                Some((Value::Str(u), pos)) => {
                    let u = u.trim();
                    if (u.starts_with("http://") || u.starts_with("https://"))
                        && u.len() > "https://".len()
                        && !u.contains(char::is_whitespace)
                    {
                        Some(ProbeSpec::Http(u.to_owned()))
                    } else {
                        self.error(
                            pos,
                            format!("{path}: `{u}` is not an http:// or https:// URL"),
                        );
                        None
                    }
                }
                other => {
                    let pos = other.map_or(kpos, |(_, p)| p);
                    self.error(pos, format!("{path}: http needs a URL, e.g. {{ http: \"https://mbox1.example.com/\" }}"));
                    None
                }
            },
            other => {
                let hint = suggest::hint(other, PROBE_KINDS);
                self.error(
                    kpos,
                    format!("{path}: unknown probe kind `{other}`; {hint}"),
                );
                None
            }
        }
    }

    fn witnesses(&mut self, node: &Node) -> Witnesses {
        let s = self.section(node, "witnesses", WITNESS_KEYS);
        let d = Witnesses::default();
        let command = match s.given("command") {
            Some(n) if n.value == Value::Seq(Vec::new()) => Vec::new(),
            Some(n) => self.argv(n, "witnesses.command").unwrap_or_default(),
            None => Vec::new(),
        };
        Witnesses {
            consul_members: self.bool(&s, "consul_members", d.consul_members),
            consul_health: self.bool(&s, "consul_health", d.consul_health),
            command,
        }
    }

    fn carbonio(&mut self, node: &Node) -> Carbonio {
        let s = self.section(node, "carbonio", CARBONIO_KEYS);
        let d = Carbonio::default();
        let run_as = match s.get("run_as") {
            None => d.run_as.clone(),
            Some(_) => match self.opt_string(&s, "run_as", "a user name") {
                None => None,
                Some((u, pos)) => {
                    if u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                    {
                        Some(u)
                    } else {
                        self.error(pos, format!("carbonio.run_as: `{u}` is not a user name"));
                        None
                    }
                }
            },
        };
        let module = match self.opt_string(&s, "module", "a module name such as MailReplica") {
            Some((m, _)) if m.chars().all(|c| c.is_ascii_alphanumeric()) => m,
            Some((m, pos)) => {
                self.error(
                    pos,
                    format!("carbonio.module: `{m}` is not a module name; write MailReplica (or ha before the rename)"),
                );
                d.module.clone()
            }
            None => d.module.clone(),
        };
        Carbonio {
            cli: self.abs_path_or(&s, "cli", "/opt/zextras/bin/carbonio"),
            zmprov: self.abs_path_or(&s, "zmprov", "/opt/zextras/bin/zmprov"),
            run_as,
            module,
            command_timeout: self.duration(&s, "command_timeout", d.command_timeout),
            promote_timeout: self.duration(&s, "promote_timeout", d.promote_timeout),
        }
    }

    fn safety(&mut self, node: &Node) -> Safety {
        let s = self.section(node, "safety", SAFETY_KEYS);
        let d = Safety::default();
        self.marks.quorum_gate = s.given("quorum_gate").map(|n| n.pos);
        Safety {
            quorum_gate: self.bool(&s, "quorum_gate", d.quorum_gate),
            recovery_grace: self.duration(&s, "recovery_grace", d.recovery_grace),
            promotion_block: self.duration(&s, "promotion_block", d.promotion_block),
            rearm: self.choice(
                &s,
                "rearm",
                d.rearm,
                &[("auto", Rearm::Auto), ("manual", Rearm::Manual)],
            ),
        }
    }

    fn hooks(&mut self, node: &Node) -> Hooks {
        let s = self.section(node, "hooks", HOOKS_KEYS);
        let d = Hooks::default();
        Hooks {
            timeout: self.duration(&s, "timeout", d.timeout),
            after_promotion: self.commands(&s, "after_promotion"),
            on_peer_recovered: self.commands(&s, "on_peer_recovered"),
            on_event: self.commands(&s, "on_event"),
        }
    }

    fn metrics(&mut self, node: &Node) -> Metrics {
        let s = self.section(node, "metrics", METRICS_KEYS);
        let listen = match self.opt_string(&s, "listen", "ip:port, e.g. 127.0.0.1:9873") {
            None => None,
            Some((l, pos)) => match l.parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.error(
                        pos,
                        format!(
                            "metrics.listen: `{l}` is not ip:port; write e.g. 127.0.0.1:9873 \
                             (an IPv6 address in brackets: [::1]:9873; no hostnames)"
                        ),
                    );
                    None
                }
            },
        };
        Metrics { listen }
    }

    fn journal(&mut self, node: &Node) -> Journal {
        let s = self.section(node, "journal", JOURNAL_KEYS);
        let d = Journal::default();
        Journal {
            max_size: self.size(
                &s,
                "max_size",
                d.max_size,
                Journal::MIN_SIZE,
                Journal::MAX_SIZE,
            ),
            keep: self.uint(&s, "keep", d.keep.into(), 1, Journal::MAX_KEEP.into()) as u32,
        }
    }

    /// A size with a unit (`512KiB`, `10MiB`, `1GiB`; `K`, `M`, `G` are the
    /// same powers of 1024), between `min` and `max` bytes.
    fn size(&mut self, s: &Section, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(node) = s.given(key) else {
            return default;
        };
        let path = s.child(key);
        let hint = "write a size with a unit, e.g. 512KiB, 10MiB or 1GiB";
        let text = match &node.value {
            Value::Str(t) => t.trim().to_owned(),
            Value::Int(i) => {
                self.error(node.pos, format!("{path}: {i} has no unit; {hint}"));
                return default;
            }
            _ => {
                self.type_error(node, &path, "a size such as 10MiB");
                return default;
            }
        };
        match parse_size(&text) {
            Some(n) if (min..=max).contains(&n) => n,
            Some(_) => {
                self.error(
                    node.pos,
                    format!(
                        "{path}: `{text}` is out of range: it must be between {} and {}",
                        format_size(min),
                        format_size(max)
                    ),
                );
                default
            }
            None => {
                self.error(node.pos, format!("{path}: `{text}` is not a size; {hint}"));
                default
            }
        }
    }

    // -- checks across sections ---------------------------------------------

    fn cross_checks(&mut self, cfg: &mut Config) {
        let local = &cfg.local;
        let roles_pos = self.marks.roles.or(self.marks.local).unwrap_or(Pos::START);
        let roles_where = match self.marks.roles {
            Some(p) => format!("local.roles, line {}", p.line),
            None => "the default when local.roles is not set".to_owned(),
        };

        let peer = match cfg.dcs.get(&local.dc_check) {
            Some(p) => Some(p.clone()),
            None => {
                if local.whoami != local.dc_check {
                    let others: Vec<&str> =
                        self.marks.other_top.iter().map(String::as_str).collect();
                    let hint = match suggest::nearest(&local.dc_check, &others) {
                        Some(near) => {
                            format!("did you mean `{near}`? (the file defines `{near}:`)")
                        }
                        None => format!(
                            "add the watched datacenter's addresses under `{}:` (proxy_ip, \
                             appserver_ip, ...)",
                            local.dc_check
                        ),
                    };
                    self.error(
                        self.marks.dc_check.unwrap_or(Pos::START),
                        format!(
                            "local.dc_check names `{}`, but the file has no `{}:` section; {hint}",
                            local.dc_check, local.dc_check
                        ),
                    );
                }
                None
            }
        };
        let peer_name = local.dc_check.clone();
        let peer_pos = self
            .marks
            .dcs
            .get(&peer_name)
            .copied()
            .unwrap_or(Pos::START);
        let consul_witness = cfg.witnesses.consul_members || cfg.witnesses.consul_health;

        if let Some(peer) = &peer {
            for role in local.roles.clone() {
                let mut need: Vec<(&str, &str)> = Vec::new();
                match role {
                    Role::Appserver => {
                        if peer.appserver_ip.is_none() {
                            need.push(("appserver_ip", "the address habeat pings"));
                        }
                        if peer.appserver_vmname.is_none() {
                            need.push((
                                "appserver_vmname",
                                "the mailstore whose accounts are promoted",
                            ));
                        }
                    }
                    Role::Proxyserver => {
                        if peer.proxy_ip.is_none() {
                            need.push(("proxy_ip", "the address habeat pings"));
                        }
                        if consul_witness && peer.proxyserver_vmname.is_none() {
                            need.push((
                                "proxyserver_vmname",
                                "the proxy's node name for the Consul witnesses",
                            ));
                        }
                    }
                    Role::Consulserver => {
                        if peer.consul_ips.is_empty() {
                            need.push(("consul_ips", "the Consul servers habeat pings"));
                        }
                        if peer.consul_vmnames.is_empty() {
                            need.push((
                                "consul_vmnames",
                                "the Consul servers' names, to tell them Down",
                            ));
                        }
                    }
                }
                for (key, why) in need {
                    if self.marks.given.contains(&format!("{peer_name}.{key}")) {
                        continue; // written but invalid: already reported where it is
                    }
                    self.error(
                        peer_pos,
                        format!(
                            "{peer_name}.{key} is not set, but the {role} role ({roles_where}) needs it ({why}); add it under `{peer_name}:`"
                        ),
                    );
                }
            }
        }
        let own_name = local.whoami.clone();
        let own = cfg.dcs.get(&own_name);
        let own_pos = self.marks.dcs.get(&own_name).copied();
        if local.roles.contains(&Role::Consulserver)
            && own.is_none_or(|o| o.consul_vmnames.is_empty())
            && !self
                .marks
                .given
                .contains(&format!("{own_name}.consul_vmnames"))
        {
            self.error(
                own_pos.unwrap_or(roles_pos),
                format!(
                    "{own_name}.consul_vmnames is not set, but the consulserver role \
                     ({roles_where}) needs this datacenter's own Consul servers \
                     (the survivors written to peers.json on raft recovery); add them under `{own_name}:`"
                ),
            );
        }

        // The proxy switch tool named by local.proxy_switch, when enabled.
        let tool = local.proxy_switch.clone();
        for (enabled, what, key, pos) in [
            (
                local.proxy_enable_activate,
                "activate",
                "proxy_enable_activate",
                self.marks.enable_activate,
            ),
            (
                local.proxy_enable_deactivate,
                "deactivate",
                "proxy_enable_deactivate",
                self.marks.enable_deactivate,
            ),
        ] {
            if !enabled {
                continue;
            }
            let cmds = own.and_then(|o| o.proxy_switch.get(&tool)).map(|c| {
                if what == "activate" {
                    &c.activate
                } else {
                    &c.deactivate
                }
            });
            match cmds {
                Some(c) if !c.is_empty() => {}
                Some(_) => self.error(
                    pos.or(own_pos).unwrap_or(Pos::START),
                    format!(
                        "local.{key} is true, but {own_name}.proxy_switch.{tool}.{what} lists \
                         no command; add the commands or set {key}: false"
                    ),
                ),
                None => self.error(
                    pos.or(self.marks.proxy_switch).unwrap_or(Pos::START),
                    format!(
                        "local.{key} is true, but `{own_name}:` has no proxy_switch.{tool} \
                         (the tool named by local.proxy_switch); add `proxy_switch: {{ {tool}: \
                         {{ activate: [...], deactivate: [...] }} }}` under `{own_name}:`"
                    ),
                ),
            }
        }

        // A quorum larger than the witnesses of a watched component could
        // never be reached: habeat would silently never act.
        if let Quorum::AtLeast(n) = cfg.detection.quorum {
            for role in &local.roles {
                let c = role.watched_component();
                let count = witness_count(cfg, c);
                if n as usize > count {
                    self.error(
                        self.marks.quorum.unwrap_or(Pos::START),
                        format!(
                            "detection.quorum is {n}, but the {c} component has only {count} \
                             witness(es) (icmp, probes.{c}, Consul witnesses, witnesses.command); \
                             it could never be judged Down; lower the quorum or add probes"
                        ),
                    );
                }
            }
        }

        if !cfg.safety.quorum_gate {
            self.warn(
                self.marks.quorum_gate.unwrap_or(Pos::START),
                "safety.quorum_gate is false: habeat will act on ping and Serf alone, and a \
                 network partition between the datacenters can make it promote while the \
                 primary is alive (split brain); set it to true unless you accept that",
            );
        }
        if cfg.detection.timeout > cfg.detection.interval {
            self.warn(
                self.marks.timeout.unwrap_or(Pos::START),
                format!(
                    "detection.timeout ({}) is longer than detection.interval ({}): probe \
                     rounds will be further apart than the interval says",
                    humantime::format_duration(cfg.detection.timeout),
                    humantime::format_duration(cfg.detection.interval)
                ),
            );
        }
    }
}

/// How many distinct witnesses vote on component `c` of the peer DC:
/// the ICMP network witness, each extra probe kind, the two Consul
/// witnesses when enabled, and the external command.
pub fn witness_count(cfg: &Config, c: Component) -> usize {
    let mut kinds: BTreeSet<WitnessKind> = BTreeSet::new();
    kinds.insert(WitnessKind::Icmp);
    for p in cfg.probes.for_component(c) {
        kinds.insert(match p {
            ProbeSpec::Icmp => WitnessKind::Icmp,
            ProbeSpec::Tcp(port) => WitnessKind::Tcp { port: *port },
            ProbeSpec::Http(url) => WitnessKind::Http { url: url.clone() },
            ProbeSpec::Ldap(port) => WitnessKind::Ldap { port: *port },
        });
    }
    if cfg.witnesses.consul_members {
        kinds.insert(WitnessKind::ConsulMembers);
    }
    if cfg.witnesses.consul_health {
        kinds.insert(WitnessKind::ConsulHealth);
    }
    if !cfg.witnesses.command.is_empty() {
        kinds.insert(WitnessKind::Command);
    }
    kinds.len()
}

/// `10MiB` → 10485760. A whole number, optional blanks, then a unit:
/// `B`, `KiB`/`K`, `MiB`/`M`, `GiB`/`G`, `TiB`/`T` (powers of 1024, case
/// ignored). `None` for anything else, including no unit.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = text.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// A size as config check prints it: the largest unit it is a whole
/// number of (`10MiB`, `65KiB`, `100B`).
pub(crate) fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}
