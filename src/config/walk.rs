//! The walk that checks habeat.yml against its key tables.
//!
//! The walk opens each section with its [`Table`] (valid keys and "did
//! you mean" candidates come from it), reads every key by its [`Kind`]
//! with the readers of [`super::read`] into the section's effective type
//! of [`super`] (which starts out as the defaults), collecting every
//! problem with its position instead of stopping at the first, then
//! checks what spans sections.
//!
//! Here: the sections, the top level, and the keys whose value is itself
//! a section of a table (a proxy switch tool, a fence target) or must
//! not be a section's name (the datacenter names).

use super::keys::{self, Key, Kind, SECTIONS, Table};
use super::read::{Section, Walker};
use super::suggest;
use super::yaml::{Key as YamlKey, Node, Pos, Value};
use super::{Config, Datacenter, FenceTarget, Local, SwitchCommands};
use std::collections::BTreeMap;

/// The configuration in `root`, read by `w` (which keeps the problems);
/// `None` when `local:` cannot name the two datacenters.
pub(super) fn config(w: &mut Walker<'_>, root: &Node) -> Option<Config> {
    w.config(root)
}

impl Walker<'_> {
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
            Kind::Tools(f) => *(f.set)(into) = self.proxy_switch(s, name),
            Kind::FenceTarget { field, .. } => *(field.set)(into) = self.fence_target(s, name),
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

    fn config(&mut self, root: &Node) -> Option<Config> {
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
                // `whoami: Secondary` beside a `secondary:` section: the
                // name in local: is what to fix, not the section.
                let case_only = ["whoami", "dc_check"]
                    .into_iter()
                    .zip(dc_names.iter())
                    .find(|(_, n)| n.eq_ignore_ascii_case(&k.name));
                let hint = match (case_only, suggest::nearest(&k.name, &candidates)) {
                    (Some((key, named)), _) => format!(
                        "datacenter names are case-sensitive: local.{key} is `{named}`; did you \
                         mean `{key}: {}`?",
                        k.name
                    ),
                    (None, Some(c)) => format!("did you mean `{c}`?"),
                    (None, None) => format!(
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
        self.host_checks(&cfg);
        Some(cfg)
    }

    // -- keys read as sections ------------------------------------------------

    fn dc_name(&mut self, s: &Section, key: &str, what: &str) -> Option<String> {
        let Some((name, pos)) = self.opt_string(s, key, "a datacenter name such as primary") else {
            if matches!(s.given(key), Some(n) if !matches!(&n.value, Value::Str(_))) {
                return None; // wrong type: already reported
            }
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
        Some(name)
    }

    /// `<dc>.proxy_switch`: each tool is a section of [`keys::SWITCH`].
    fn proxy_switch(&mut self, s: &Section, key: &str) -> BTreeMap<String, SwitchCommands> {
        let mut out = BTreeMap::new();
        let Some(sw) = s.get(key) else {
            return out;
        };
        let path = s.child(key);
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
            let t = self.section(body, &tpath, &keys::SWITCH);
            let mut commands = SwitchCommands::default();
            self.read_keys(&t, &keys::SWITCH, &mut commands);
            out.insert(tool.name.clone(), commands);
        }
        out
    }

    /// `fencing.<component>`: absent or `~` is no fencing for it.
    fn fence_target(&mut self, s: &Section, key: &str) -> Option<FenceTarget> {
        let node = s.given(key)?;
        let path = s.child(key);
        if !matches!(node.value, Value::Map(_)) {
            self.type_error(
                node,
                &path,
                "a mapping with agent, action, options and plugs",
            );
            return None;
        }
        let t = self.section(node, &path, &keys::FENCE_TARGET);
        let mut target = FenceTarget::default();
        self.read_keys(&t, &keys::FENCE_TARGET, &mut target);
        if target.agent.as_os_str().is_empty() {
            if t.given("agent").is_none() {
                self.error(
                    node.pos,
                    format!(
                        "{path}.agent is missing; name the fence agent program, e.g. \
                         agent: /usr/sbin/fence_vmware_rest (Debian package fence-agents)"
                    ),
                );
            }
            return None;
        }
        // `options.plug` (or the agent's other name for it, `port`) is
        // the one plug of a single-node target.
        let in_options: Vec<String> = ["plug", "port"]
            .iter()
            .filter_map(|k| target.options.remove(*k))
            .collect();
        if !in_options.is_empty() {
            if t.given("plugs").is_some() || in_options.len() > 1 {
                self.error(
                    t.pos_of("plugs"),
                    format!(
                        "{path}: the plug is given twice (options.plug and plugs); keep one of them"
                    ),
                );
            }
            target.plugs = in_options;
        }
        Some(target)
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
