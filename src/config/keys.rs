//! Every key of habeat.yml, declared once.
//!
//! Each section of the file is a [`Table`] of [`Key`]s, in its own file
//! under `keys/` (`keys/local.rs`, ..., a sub-table beside its section);
//! this file holds their vocabulary. A key says its
//! name, its [`Kind`] (how its value is read, checked and shown) and a
//! one-line doc, in the way ripgrep's `flags/defs.rs` keeps a flag's name,
//! doc and parse together. Everything else follows from these tables:
//!
//! - the walk (`walk.rs`) reads each key of a section by its kind, with
//!   the readers of `read/`, and takes the section's valid keys, and the
//!   "did you mean" candidates, from the table;
//! - `render.rs` prints each key by its kind, in table order;
//! - the key tables of `docs/configuration.md` are generated from the
//!   tables (`doc.rs`; its test fails when the file differs).
//!
//! A key's default is its field's value in the section's `Default` (in
//! `mod.rs`): the walker starts from it, and the docs print it.
//!
//! The order of a table is the order of the file, of `config check`'s
//! output and of the "valid here: ..." list of an unknown-key error.

use super::out::{self, Out};
use super::read::{Section, Walker};
use super::{FenceTarget, HookCommand, ProbeSpec, SwitchCommands};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The keys of one section, in file order.
pub struct Table<S: 'static> {
    /// The section's name at the top level (`local`); for the sections
    /// named by the operator (datacenters, proxy switch tools) what the
    /// docs call them (`<dc>`).
    pub name: &'static str,
    pub keys: &'static [Key<S>],
}

/// One key of a section.
pub struct Key<S: 'static> {
    /// As written in habeat.yml.
    pub name: &'static str,
    pub kind: Kind<S>,
    /// What the key changes, for docs/configuration.md (Markdown, one
    /// table cell).
    pub doc: &'static str,
}

/// Access to the field of `S` that a key fills in.
pub struct Field<S, T> {
    pub get: fn(&S) -> &T,
    pub set: fn(&mut S) -> &mut T,
}

/// `field!(threads)`: the [`Field`] for `s.threads`.
macro_rules! field {
    ($f:ident) => {
        Field {
            get: |s| &s.$f,
            set: |s| &mut s.$f,
        }
    };
}

/// How a key's value is read (with its checks and error messages, by
/// `walk.rs` and `read/`) and shown (`config check`, the docs' default column).
pub enum Kind<S: 'static> {
    /// A datacenter name (required); `what` says which one in the
    /// "is missing" error.
    DcName {
        field: Field<S, String>,
        what: &'static str,
    },
    /// `true`/`false` (and the YAML 1.1 words).
    Bool(Field<S, bool>),
    /// A whole number in `min..=max`.
    Count {
        field: Field<S, u32>,
        min: u32,
        max: u32,
    },
    /// A TCP port, 1-65535.
    Port(Field<S, u16>),
    /// A humantime duration with a unit, longer than zero and not below
    /// `floor`.
    Duration {
        field: Field<S, Duration>,
        floor: Option<Duration>,
    },
    /// Free text; `what` names it in a type error.
    Text {
        field: Field<S, String>,
        what: &'static str,
    },
    /// An absolute path; the default stays when absent.
    Path(Field<S, PathBuf>),
    /// An IP address or hostname, or none.
    Address(Field<S, Option<String>>),
    /// A list of IP addresses or hostnames.
    Addresses(Field<S, Vec<String>>),
    /// An RFC 1123 hostname, or none.
    Hostname(Field<S, Option<String>>),
    /// A list of hostnames.
    Hostnames(Field<S, Vec<String>>),
    /// A list of commands (strings for `/bin/sh -c`, or argv lists).
    Commands(Field<S, Vec<HookCommand>>),
    /// A list of extra probes (`icmp`, `{ tcp: PORT }`, ...).
    Probes(Field<S, Vec<ProbeSpec>>),
    /// `{ <tool>: <section of [`SWITCH`]> }`, the proxy switch tools.
    Tools(Field<S, BTreeMap<String, SwitchCommands>>),
    /// A section of [`FENCE_TARGET`], or none; `ty` is what the docs say
    /// its value is.
    FenceTarget {
        field: Field<S, Option<FenceTarget>>,
        ty: &'static str,
    },
    /// An old spelling, read by the key it stands for (`of`) and never
    /// shown. `suggested: false` keeps a misspelling out of "did you
    /// mean" hints and out of the docs' tables.
    Alias { of: &'static str, suggested: bool },
    /// A key with its own reader in `read/`. `ty` is what the docs say
    /// its value is; `show` is `None` for what `config check` never
    /// prints as a value (the token).
    Custom {
        ty: &'static str,
        read: fn(&mut Walker<'_>, &Section<'_>, &str, &mut S),
        show: fn(&S) -> Option<Out>,
    },
}

impl<S> Key<S> {
    /// The value `config check` prints for this key, if any.
    pub fn show(&self, v: &S) -> Option<Out> {
        Some(match &self.kind {
            Kind::DcName { field, .. } | Kind::Text { field, .. } => out::s((field.get)(v)),
            Kind::Bool(f) => Out::Bool(*(f.get)(v)),
            Kind::Count { field, .. } => Out::Int((*(field.get)(v)).into()),
            Kind::Port(f) => Out::Int((*(f.get)(v)).into()),
            Kind::Duration { field, .. } => out::d(*(field.get)(v)),
            Kind::Path(f) => out::p((f.get)(v)),
            Kind::Address(f) | Kind::Hostname(f) => out::opt((f.get)(v)),
            Kind::Addresses(f) | Kind::Hostnames(f) => out::strs((f.get)(v)),
            Kind::Commands(f) => out::commands((f.get)(v)),
            Kind::Probes(f) => out::probes((f.get)(v)),
            Kind::Tools(f) => Out::Map(
                (f.get)(v)
                    .iter()
                    .map(|(tool, c)| (tool.clone(), SWITCH.show(c)))
                    .collect(),
            ),
            Kind::FenceTarget { field, .. } => (field.get)(v)
                .as_ref()
                .map_or(Out::Null, |t| FENCE_TARGET.show(t)),
            Kind::Alias { .. } => return None,
            Kind::Custom { show, .. } => return show(v),
        })
    }

    /// Offered in "did you mean" hints and listed in the docs.
    pub fn suggested(&self) -> bool {
        !matches!(
            self.kind,
            Kind::Alias {
                suggested: false,
                ..
            }
        )
    }
}

impl<S> Table<S> {
    /// Every key the section accepts, aliases included.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.keys.iter().map(|k| k.name)
    }

    /// A section as `config check` prints it: every key that has a value
    /// to show, in table order.
    pub fn show(&self, v: &S) -> Out {
        Out::Map(
            self.keys
                .iter()
                .filter_map(|k| Some((k.name.to_owned(), k.show(v)?)))
                .collect(),
        )
    }
}

/// The fixed top-level sections, in file order; any other top-level key
/// must be a datacenter named by `local.whoami` or `local.dc_check`.
pub const SECTIONS: &[&str] = &[
    LOCAL.name,
    CONSUL.name,
    DETECTION.name,
    PROBES.name,
    WITNESSES.name,
    CARBONIO.name,
    SAFETY.name,
    REPLICAS.name,
    LEASE.name,
    HOOKS.name,
    METRICS.name,
    JOURNAL.name,
    FENCING.name,
];

// ---------------------------------------------------------------------------
// The tables, a file per section (in file order).

mod carbonio;
mod consul;
mod datacenter;
mod detection;
mod fencing;
mod hooks;
mod journal;
mod lease;
mod local;
mod metrics;
mod probes;
mod replicas;
mod safety;
mod witnesses;

pub use carbonio::CARBONIO;
pub use consul::CONSUL;
pub use datacenter::{DATACENTER, SWITCH};
pub use detection::DETECTION;
pub use fencing::{FENCE_TARGET, FENCING};
pub use hooks::HOOKS;
pub use journal::JOURNAL;
pub use lease::LEASE;
pub use local::LOCAL;
pub use metrics::METRICS;
pub use probes::PROBES;
pub use replicas::REPLICAS;
pub use safety::SAFETY;
pub use witnesses::WITNESSES;
