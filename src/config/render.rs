//! The effective configuration as `config check` prints it.
//!
//! The text form is laid out like habeat.yml itself (same sections, same
//! key names, every default written out), so an operator can read it next
//! to the file and even load it back: it is a valid configuration with the
//! same meaning. The token is never part of it: the text shows where the
//! token comes from in a comment, the JSON shows `"********"`.

pub use super::out::Out;

use super::keys;
use super::out::s;
use super::{Config, Consul, TokenSource};

impl Config {
    /// The effective configuration as an ordered tree (file layout): each
    /// section by its key table, the datacenters right after `local:` as in
    /// the old file.
    pub fn to_out(&self) -> Out {
        let mut entries = vec![(keys::LOCAL.name.to_owned(), keys::LOCAL.show(&self.local))];
        for (name, dc) in &self.dcs {
            entries.push((name.clone(), keys::DATACENTER.show(dc)));
        }
        entries.push((keys::CONSUL.name.to_owned(), consul(&self.consul)));
        macro_rules! section {
            ($table:expr, $value:expr) => {
                entries.push(($table.name.to_owned(), $table.show($value)))
            };
        }
        section!(keys::DETECTION, &self.detection);
        section!(keys::PROBES, &self.probes);
        section!(keys::WITNESSES, &self.witnesses);
        section!(keys::CARBONIO, &self.carbonio);
        section!(keys::SAFETY, &self.safety);
        section!(keys::REPLICAS, &self.replicas);
        section!(keys::LEASE, &self.lease);
        section!(keys::HOOKS, &self.hooks);
        section!(keys::METRICS, &self.metrics);
        section!(keys::JOURNAL, &self.journal);
        section!(keys::FENCING, &self.fencing);
        Out::Map(entries)
    }

    /// The effective configuration as readable YAML (a valid habeat.yml).
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "# Effective configuration of {} (defaults filled in; the Consul token is never shown).\n",
            self.source.display()
        );
        if let Out::Map(entries) = self.to_out() {
            for (k, v) in &entries {
                write_entry(&mut out, 0, k, v);
            }
        }
        out
    }

    /// The effective configuration as pretty JSON (token masked).
    pub fn render_json(&self) -> String {
        let mut v = self.to_out();
        if let (Out::Map(entries), Some(src)) = (&mut v, self.consul.token_source) {
            // Machines may want to know where the token came from.
            if let Some((_, Out::Map(consul))) = entries.iter_mut().find(|(k, _)| k == "consul") {
                let from = match src {
                    TokenSource::Config => "config",
                    TokenSource::File => "token_file",
                    TokenSource::Environment => "environment",
                };
                consul.push(("token_source".into(), s(from)));
            }
        }
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// `consul:` by its table, and the token, which is never shown: when one
/// is set, the text says where it came from (after `token_file`, where
/// the operator looks for it), the JSON shows `"********"`.
fn consul(c: &Consul) -> Out {
    let Out::Map(mut entries) = keys::CONSUL.show(c) else {
        return Out::Null;
    };
    if c.token.is_some() {
        let from = match c.token_source {
            Some(TokenSource::Config) => "from consul.token",
            Some(TokenSource::File) => "from consul.token_file",
            Some(TokenSource::Environment) => "from CONSUL_HTTP_TOKEN",
            None => "set",
        };
        let at = entries
            .iter()
            .position(|(k, _)| k == "token_file")
            .map_or(entries.len(), |i| i + 1);
        entries.insert(at, ("token".to_owned(), Out::Masked(from.into())));
    }
    Out::Map(entries)
}

fn write_entry(out: &mut String, indent: usize, key: &str, v: &Out) {
    let pad = "  ".repeat(indent);
    let k = scalar_text(key);
    match v {
        Out::Masked(from) => {
            out.push_str(&format!("{pad}# {k}: ******** ({from}; never shown)\n"));
        }
        Out::Map(entries) if !entries.is_empty() => {
            out.push_str(&format!("{pad}{k}:\n"));
            for (ck, cv) in entries {
                write_entry(out, indent + 1, ck, cv);
            }
        }
        Out::Seq(items) if !items.is_empty() => {
            out.push_str(&format!("{pad}{k}:\n"));
            for item in items {
                out.push_str(&format!("{pad}  - {}\n", flow(item)));
            }
        }
        _ => out.push_str(&format!("{pad}{k}: {}\n", flow(v))),
    }
}

/// A value on one line (flow style).
pub(super) fn flow(v: &Out) -> String {
    match v {
        Out::Null => "~".into(),
        Out::Bool(b) => b.to_string(),
        Out::Int(i) => i.to_string(),
        Out::Str(t) => scalar_text(t),
        Out::Masked(_) => "\"********\"".into(),
        Out::Seq(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Out::Map(entries) if entries.is_empty() => "{}".into(),
        Out::Map(entries) => format!(
            "{{ {} }}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar_text(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A string as a YAML scalar: plain when that reads back as the same
/// string, else double-quoted (JSON string syntax is valid YAML).
fn scalar_text(t: &str) -> String {
    if is_plain_safe(t) {
        t.to_owned()
    } else {
        serde_json::to_string(t).unwrap_or_else(|_| format!("{t:?}"))
    }
}

fn is_plain_safe(t: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let Some(first) = t.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == '/') {
        return false;
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
    {
        return false;
    }
    if WORDS.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        return false;
    }
    // Anything YAML could read as a number stays quoted; dotted quads
    // (IPv4) are not numbers.
    let numeric = t.chars().all(|c| c.is_ascii_digit() || "._-".contains(c));
    if numeric {
        return t.matches('.').count() >= 2 && !t.contains(['_', '-']);
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("0x") || lower.starts_with("0o") || lower.starts_with("0b") {
        return false;
    }
    // Exponent forms such as 1e5 or 2E-3.
    t.parse::<f64>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_strings_are_quoted() {
        for t in [
            "yes", "No", "5", "1.5", "1e5", "0x10", "", "a b", "~", "-x", "a: b",
        ] {
            assert!(scalar_text(t).starts_with('"'), "{t}");
        }
        for t in [
            "10.0.0.5",
            "mbox1.example.com",
            "/var/lib/habeat",
            "2s",
            "1h 30m",
        ] {
            let shown = scalar_text(t);
            assert_eq!(shown == t, !t.contains(' '), "{t} -> {shown}");
        }
    }
}
