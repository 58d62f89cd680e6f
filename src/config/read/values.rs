//! The readers of each kind of value (`Kind` in `keys.rs`), with their
//! checks and messages: text, booleans, numbers, durations, paths,
//! addresses and hostnames, lists and commands.

use super::super::HookCommand;
use super::super::address::{address_problem, hostname_problem};
use super::super::suggest;
use super::super::yaml::{Node, Pos, Value};
use super::{Section, Walker};
use std::path::PathBuf;
use std::time::Duration;

impl Walker<'_> {
    /// A text value, or `None` if absent or empty. `what` describes it in
    /// a type error.
    pub(in crate::config) fn opt_string(
        &mut self,
        s: &Section,
        key: &str,
        what: &str,
    ) -> Option<(String, Pos)> {
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

    pub(in crate::config) fn bool(&mut self, s: &Section, key: &str, default: bool) -> bool {
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

    pub(in crate::config) fn uint(
        &mut self,
        s: &Section,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
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

    /// [`Walker::duration`], refusing a value below `floor`.
    pub(in crate::config) fn duration_at_least(
        &mut self,
        s: &Section,
        key: &str,
        default: Duration,
        floor: Duration,
    ) -> Duration {
        let d = self.duration(s, key, default);
        if d >= floor {
            return d;
        }
        if let Some(node) = s.given(key) {
            self.error(
                node.pos,
                format!(
                    "{}: {} is below the floor of {}; write at least {} (e.g. {})",
                    s.child(key),
                    humantime::format_duration(d),
                    humantime::format_duration(floor),
                    humantime::format_duration(floor),
                    humantime::format_duration(default)
                ),
            );
        }
        default
    }

    /// [`Walker::duration`], also accepting `0` (unit or none): "never".
    pub(in crate::config) fn duration_or_zero(
        &mut self,
        s: &Section,
        key: &str,
        default: Duration,
    ) -> Duration {
        if let Some(node) = s.given(key) {
            let zero = match &node.value {
                Value::Int(0) => true,
                Value::Str(t) => {
                    humantime::parse_duration(t.trim()).is_ok_and(|d| d.is_zero())
                        || t.trim() == "0"
                }
                _ => false,
            };
            if zero {
                return Duration::ZERO;
            }
        }
        self.duration(s, key, default)
    }

    pub(in crate::config) fn duration(
        &mut self,
        s: &Section,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(node) = s.given(key) else {
            return default;
        };
        let path = s.child(key);
        let text = match &node.value {
            Value::Str(t) => t.trim().to_owned(),
            Value::Int(i) => {
                self.error(
                    node.pos,
                    format!("{path}: {i} has no unit; {}", unit_hint(*i)),
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

    pub(in crate::config) fn abs_path(&mut self, s: &Section, key: &str) -> Option<PathBuf> {
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

    pub(in crate::config) fn address(&mut self, s: &Section, key: &str) -> Option<String> {
        let (a, pos) = self.opt_string(s, key, "an IP address or hostname")?;
        self.check_address(&a, pos, &s.child(key)).then_some(a)
    }

    pub(super) fn check_address(&mut self, a: &str, pos: Pos, path: &str) -> bool {
        match address_problem(a) {
            None => true,
            Some(why) => {
                self.error(pos, format!("{path}: `{a}` {why}"));
                false
            }
        }
    }

    pub(in crate::config) fn hostname(&mut self, s: &Section, key: &str) -> Option<String> {
        let (h, pos) = self.opt_string(s, key, "a hostname")?;
        self.check_hostname(&h, pos, &s.child(key)).then_some(h)
    }

    pub(super) fn check_hostname(&mut self, h: &str, pos: Pos, path: &str) -> bool {
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
    pub(super) fn list<'a>(&mut self, s: &Section<'a>, key: &str, what: &str) -> Vec<&'a Node> {
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

    pub(super) fn string_item(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
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

    pub(in crate::config) fn address_list(&mut self, s: &Section, key: &str) -> Vec<String> {
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

    pub(in crate::config) fn hostname_list(&mut self, s: &Section, key: &str) -> Vec<String> {
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
    pub(super) fn argv(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
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
    pub(in crate::config) fn commands(&mut self, s: &Section, key: &str) -> Vec<HookCommand> {
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

    pub(in crate::config) fn choice<T: Copy>(
        &mut self,
        s: &Section,
        key: &str,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
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
}

/// What a number without a unit most likely meant: a large number is
/// milliseconds (`timeout: 1500`), a small one seconds (`interval: 2`).
fn unit_hint(i: i128) -> String {
    if i.unsigned_abs() >= 100 {
        format!("write {i}ms (milliseconds, most likely meant) or {i}s")
    } else {
        format!("write {i}s or {i}ms")
    }
}
