//! `metrics:`: the HTTP listener.

use super::super::Metrics;
use super::super::out::{self, Out};
use super::{Key, Kind, Table};

pub const METRICS: Table<Metrics> = Table {
    name: "metrics",
    keys: &[Key {
        name: "listen",
        kind: Kind::Custom {
            ty: "`ip:port`",
            read: |w, s, key, m| m.listen = w.listen(s, key),
            show: |m| Some(m.listen.map_or(Out::Null, |a| out::s(a.to_string()))),
        },
        doc: "for `/metrics` and `/status` (IPv6 in brackets, no hostnames).",
    }],
};
