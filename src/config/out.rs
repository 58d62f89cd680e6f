//! The value tree that `config check` prints, and how each kind of value
//! becomes part of it (a duration in humantime, a path as text, a fence
//! target's secrets masked). The key tables (`keys.rs`) show their values
//! with these; `render.rs` writes the tree as text or JSON.

use super::{FenceTarget, HookCommand, ProbeSpec};
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

pub(super) fn s(v: impl Into<String>) -> Out {
    Out::Str(v.into())
}
pub(super) fn p(v: &Path) -> Out {
    Out::Str(v.display().to_string())
}
pub(super) fn d(v: Duration) -> Out {
    Out::Str(humantime::format_duration(v).to_string())
}
pub(super) fn opt(v: &Option<String>) -> Out {
    v.as_ref().map_or(Out::Null, |x| s(x.as_str()))
}
pub(super) fn strs(v: &[String]) -> Out {
    Out::Seq(v.iter().map(|x| s(x.as_str())).collect())
}
pub(super) fn commands(v: &[HookCommand]) -> Out {
    Out::Seq(
        v.iter()
            .map(|c| match c {
                HookCommand::Shell(t) => s(t.as_str()),
                HookCommand::Argv(a) => strs(a),
            })
            .collect(),
    )
}
pub(super) fn probes(v: &[ProbeSpec]) -> Out {
    let one = |k: &str, v: Out| Out::Map(vec![(k.to_owned(), v)]);
    Out::Seq(
        v.iter()
            .map(|p| match p {
                ProbeSpec::Icmp => s("icmp"),
                ProbeSpec::Tcp(port) => one("tcp", Out::Int((*port).into())),
                ProbeSpec::Ldap(port) => one("ldap", Out::Int((*port).into())),
                ProbeSpec::Http(url) => one("http", s(url.as_str())),
            })
            .collect(),
    )
}

/// A target's options, secret values masked (a comment in text,
/// `"********"` in JSON).
pub(super) fn fence_options(t: &FenceTarget) -> Out {
    Out::Map(
        t.options
            .iter()
            .map(|(k, v)| {
                let shown = if crate::model::fence_option_is_secret(k) {
                    Out::Masked("a secret".into())
                } else {
                    s(v.as_str())
                };
                (k.clone(), shown)
            })
            .collect(),
    )
}

/// A size as config check prints it: the largest unit it is a whole
/// number of (`10MiB`, `65KiB`, `100B`).
pub(super) fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}
