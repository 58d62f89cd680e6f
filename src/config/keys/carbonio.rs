//! `carbonio:`: the Carbonio CLIs and their limits.

use super::super::Carbonio;
use super::super::out::{self};
use super::{Field, Key, Kind, Table};

pub const CARBONIO: Table<Carbonio> = Table {
    name: "carbonio",
    keys: &[
        Key {
            name: "cli",
            kind: Kind::Path(field!(cli)),
            doc: "the Carbonio CLI.",
        },
        Key {
            name: "zmprov",
            kind: Kind::Path(field!(zmprov)),
            doc: "zmprov, for cache flushes.",
        },
        Key {
            name: "run_as",
            kind: Kind::Custom {
                ty: "user name",
                read: |w, s, key, c| c.run_as = w.run_as(s, key, c.run_as.take()),
                show: |c| Some(out::opt(&c.run_as)),
            },
            doc: "user the CLIs run as; empty (`run_as:` or `\"\"`) runs them as habeat's own user.",
        },
        Key {
            name: "module",
            kind: Kind::Custom {
                ty: "module name",
                read: |w, s, key, c| {
                    if let Some(m) = w.module(s, key) {
                        c.module = m;
                    }
                },
                show: |c| Some(out::s(c.module.as_str())),
            },
            doc: "`ha` for releases before the rename.",
        },
        Key {
            name: "command_timeout",
            kind: Kind::Duration {
                field: field!(command_timeout),
                floor: None,
            },
            doc: "every CLI call except promotion.",
        },
        Key {
            name: "promote_timeout",
            kind: Kind::Duration {
                field: field!(promote_timeout),
                floor: None,
            },
            doc: "`promoteAccounts`.",
        },
    ],
};
