//! `witnesses:`: the Consul and external witnesses.

use super::super::Witnesses;
use super::super::out::{self};
use super::{Field, Key, Kind, Table};

pub const WITNESSES: Table<Witnesses> = Table {
    name: "witnesses",
    keys: &[
        Key {
            name: "consul_members",
            kind: Kind::Bool(field!(consul_members)),
            doc: "Serf membership of the component's node, from the local agent.",
        },
        Key {
            name: "consul_health",
            kind: Kind::Bool(field!(consul_health)),
            doc: "the node's health checks (`serfHealth`), asked with `?stale`.",
        },
        Key {
            name: "command",
            kind: Kind::Custom {
                ty: "argv list",
                read: |w, s, key, wi| wi.command = w.witness_command(s, key),
                show: |wi| Some(out::strs(&wi.command)),
            },
            doc: "external witness, an argv list: exit 0 Up, 1 Down, else Unknown. It is told what to judge in `HABEAT_COMPONENT`, `HABEAT_DC`, `HABEAT_ADDRESSES` and `HABEAT_HOSTNAMES`, and inherits only `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `TZ` and `TMPDIR` of habeat's environment (never `CONSUL_HTTP_TOKEN`).",
        },
    ],
};
