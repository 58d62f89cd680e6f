//! The effective configuration as `config check` prints it.
//!
//! The text form is laid out like habeat.yml itself (same sections, same
//! key names, every default written out), so an operator can read it next
//! to the file and even load it back: it is a valid configuration with the
//! same meaning. The token is never part of it: the text shows where the
//! token comes from in a comment, the JSON shows `"********"`.

use super::{Config, Datacenter, HookCommand, ProbeSpec, Quorum, Rearm, Scheme, TokenSource};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::path::Path;
use std::time::Duration;

/// An ordered tree of the effective configuration, rendered as YAML-like
/// text or as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Null,
    Bool(bool),
    Int(u64),
    Str(String),
    Seq(Vec<Out>),
    Map(Vec<(String, Out)>),
    /// A secret that is set: a comment in text, `"********"` in JSON.
    Masked(String),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Null => s.serialize_unit(),
            Out::Bool(b) => s.serialize_bool(*b),
            Out::Int(i) => s.serialize_u64(*i),
            Out::Str(t) => s.serialize_str(t),
            Out::Masked(_) => s.serialize_str("********"),
            Out::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Out::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

fn s(v: impl Into<String>) -> Out {
    Out::Str(v.into())
}
fn p(v: &Path) -> Out {
    Out::Str(v.display().to_string())
}
fn d(v: Duration) -> Out {
    Out::Str(humantime::format_duration(v).to_string())
}
fn opt(v: &Option<String>) -> Out {
    v.as_ref().map_or(Out::Null, |x| s(x.as_str()))
}
fn strs(v: &[String]) -> Out {
    Out::Seq(v.iter().map(|x| s(x.as_str())).collect())
}
fn commands(v: &[HookCommand]) -> Out {
    Out::Seq(
        v.iter()
            .map(|c| match c {
                HookCommand::Shell(t) => s(t.as_str()),
                HookCommand::Argv(a) => strs(a),
            })
            .collect(),
    )
}
fn map(entries: Vec<(&str, Out)>) -> Out {
    Out::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

impl Config {
    /// The effective configuration as an ordered tree (file layout).
    pub fn to_out(&self) -> Out {
        let l = &self.local;
        let mut top = vec![(
            "local",
            map(vec![
                ("whoami", s(l.whoami.as_str())),
                ("dc_check", s(l.dc_check.as_str())),
                (
                    "roles",
                    Out::Seq(l.roles.iter().map(|r| s(r.as_str())).collect()),
                ),
                ("checkDownFile", p(&l.check_down_file)),
                ("checkPromotionFile", p(&l.check_promotion_file)),
                ("checkRestartReplicaFile", p(&l.check_restart_replica_file)),
                ("provider", s("consul")),
                ("threads", Out::Int(l.threads.into())),
                ("proxy_switch", s(l.proxy_switch.as_str())),
                ("proxy_enable_activate", Out::Bool(l.proxy_enable_activate)),
                (
                    "proxy_enable_deactivate",
                    Out::Bool(l.proxy_enable_deactivate),
                ),
                ("disable_ha_module", Out::Bool(l.disable_ha_module)),
                ("flush_cache", Out::Bool(l.flush_cache)),
                ("flush_arguments_a", Out::Bool(l.flush_arguments_a)),
                ("restart_replica", Out::Bool(l.restart_replica)),
                ("state_dir", p(&l.state_dir)),
            ]),
        )];
        let dc_entries: Vec<(String, Out)> = self
            .dcs
            .iter()
            .map(|(name, dc)| (name.clone(), datacenter(dc)))
            .collect();

        let c = &self.consul;
        let mut consul = vec![
            ("hostname", s(c.hostname.as_str())),
            ("port", Out::Int(c.port.into())),
            (
                "scheme",
                s(match c.scheme {
                    Scheme::Http => "http",
                    Scheme::Https => "https",
                }),
            ),
            ("ca_file", c.ca_file.as_deref().map_or(Out::Null, p)),
            ("token_file", c.token_file.as_deref().map_or(Out::Null, p)),
        ];
        if c.token.is_some() {
            let from = match c.token_source {
                Some(TokenSource::Config) => "from consul.token",
                Some(TokenSource::File) => "from consul.token_file",
                Some(TokenSource::Environment) => "from CONSUL_HTTP_TOKEN",
                None => "set",
            };
            consul.push(("token", Out::Masked(from.into())));
        }
        consul.push(("service_discover_data", p(&c.service_discover_data)));

        let det = &self.detection;
        let probes = &self.probes;
        let probe_list = |v: &[ProbeSpec]| {
            Out::Seq(
                v.iter()
                    .map(|p| match p {
                        ProbeSpec::Icmp => s("icmp"),
                        ProbeSpec::Tcp(port) => map(vec![("tcp", Out::Int((*port).into()))]),
                        ProbeSpec::Ldap(port) => map(vec![("ldap", Out::Int((*port).into()))]),
                        ProbeSpec::Http(url) => map(vec![("http", s(url.as_str()))]),
                    })
                    .collect(),
            )
        };
        let car = &self.carbonio;
        let saf = &self.safety;
        let hk = &self.hooks;
        let rest = vec![
            ("consul", map(consul)),
            (
                "detection",
                map(vec![
                    ("interval", d(det.interval)),
                    ("timeout", d(det.timeout)),
                    ("fall", Out::Int(det.fall.into())),
                    ("rise", Out::Int(det.rise.into())),
                    (
                        "quorum",
                        match det.quorum {
                            Quorum::All => s("all"),
                            Quorum::AtLeast(n) => Out::Int(n.into()),
                        },
                    ),
                ]),
            ),
            (
                "probes",
                map(vec![
                    ("appserver", probe_list(&probes.appserver)),
                    ("proxy", probe_list(&probes.proxy)),
                    ("directory", probe_list(&probes.directory)),
                    ("consul", probe_list(&probes.consul)),
                ]),
            ),
            (
                "witnesses",
                map(vec![
                    ("consul_members", Out::Bool(self.witnesses.consul_members)),
                    ("consul_health", Out::Bool(self.witnesses.consul_health)),
                    ("command", strs(&self.witnesses.command)),
                ]),
            ),
            (
                "carbonio",
                map(vec![
                    ("cli", p(&car.cli)),
                    ("zmprov", p(&car.zmprov)),
                    ("run_as", opt(&car.run_as)),
                    ("module", s(car.module.as_str())),
                    ("command_timeout", d(car.command_timeout)),
                    ("promote_timeout", d(car.promote_timeout)),
                ]),
            ),
            (
                "safety",
                map(vec![
                    ("quorum_gate", Out::Bool(saf.quorum_gate)),
                    ("recovery_grace", d(saf.recovery_grace)),
                    ("promotion_block", d(saf.promotion_block)),
                    (
                        "rearm",
                        s(match saf.rearm {
                            Rearm::Auto => "auto",
                            Rearm::Manual => "manual",
                        }),
                    ),
                ]),
            ),
            (
                "hooks",
                map(vec![
                    ("timeout", d(hk.timeout)),
                    ("after_promotion", commands(&hk.after_promotion)),
                    ("on_peer_recovered", commands(&hk.on_peer_recovered)),
                    ("on_event", commands(&hk.on_event)),
                ]),
            ),
            (
                "metrics",
                map(vec![(
                    "listen",
                    self.metrics.listen.map_or(Out::Null, |a| s(a.to_string())),
                )]),
            ),
            (
                "journal",
                map(vec![
                    (
                        "max_size",
                        s(super::walk::format_size(self.journal.max_size)),
                    ),
                    ("keep", Out::Int(self.journal.keep.into())),
                ]),
            ),
        ];
        top.extend(rest);
        let mut entries: Vec<(String, Out)> =
            top.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        // Datacenters right after local:, as in the old file.
        for (i, dc) in dc_entries.into_iter().enumerate() {
            entries.insert(1 + i, dc);
        }
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

fn datacenter(dc: &Datacenter) -> Out {
    let switch = Out::Map(
        dc.proxy_switch
            .iter()
            .map(|(tool, c)| {
                (
                    tool.clone(),
                    map(vec![
                        ("activate", commands(&c.activate)),
                        ("deactivate", commands(&c.deactivate)),
                    ]),
                )
            })
            .collect(),
    );
    map(vec![
        ("proxy_ip", opt(&dc.proxy_ip)),
        ("appserver_ip", opt(&dc.appserver_ip)),
        ("directorysrv_ip", opt(&dc.directorysrv_ip)),
        ("consul_ips", strs(&dc.consul_ips)),
        ("consul_vmnames", strs(&dc.consul_vmnames)),
        ("appserver_vmname", opt(&dc.appserver_vmname)),
        ("proxyserver_vmname", opt(&dc.proxyserver_vmname)),
        ("proxy_switch", switch),
    ])
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
fn flow(v: &Out) -> String {
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
