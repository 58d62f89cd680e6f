//! `consul:`: the local Consul agent, its token, and how raft recovery stops and starts it.

use super::super::Consul;
use super::super::out::{self, Out};
use super::{Field, Key, Kind, Table};

pub const CONSUL: Table<Consul> = Table {
    name: "consul",
    keys: &[
        Key {
            name: "hostname",
            kind: Kind::Custom {
                ty: "address",
                read: |w, s, key, c| {
                    if let Some(h) = w.address(s, key) {
                        c.hostname = h;
                    }
                },
                show: |c| Some(out::s(c.hostname.as_str())),
            },
            doc: "the local Consul agent (IP or hostname).",
        },
        Key {
            name: "port",
            kind: Kind::Port(field!(port)),
            doc: "its HTTP port.",
        },
        Key {
            name: "scheme",
            kind: Kind::Custom {
                ty: "`http` or `https`",
                read: |w, s, key, c| {
                    c.scheme = w.choice(s, key, c.scheme, super::super::Scheme::CHOICES)
                },
                show: |c| Some(out::s(c.scheme.as_str())),
            },
            doc: "`https` for TLS.",
        },
        Key {
            name: "ca_file",
            kind: Kind::Custom {
                ty: "absolute path",
                read: |w, s, key, c| c.ca_file = w.ca_file(s, key, c.scheme),
                show: |c| Some(c.ca_file.as_deref().map_or(Out::Null, out::p)),
            },
            doc: "CA certificate for `https`; must exist. Ignored (with a warning) under `http`.",
        },
        Key {
            name: "token",
            kind: Kind::Custom {
                ty: "text",
                // Read with `token_file` (below): which one is in force
                // depends on both. Never shown as a value: `render.rs`
                // says where it came from instead.
                read: |_, _, _, _| {},
                show: |_| None,
            },
            doc: "the ACL token, inline.",
        },
        Key {
            name: "token_file",
            kind: Kind::Custom {
                ty: "absolute path",
                read: |w, s, key, c| {
                    c.token_file = w.abs_path(s, key);
                    (c.token, c.token_source) = w.token(s, c.token_file.as_deref());
                },
                show: |c| Some(c.token_file.as_deref().map_or(Out::Null, out::p)),
            },
            doc: "an absolute path to a file holding only the token (whitespace trimmed).",
        },
        Key {
            name: "service_discover_data",
            kind: Kind::Path(field!(service_discover_data)),
            doc: "Consul's data dir; raft recovery writes `raft/peers.json` here.",
        },
        Key {
            name: "service_stop",
            kind: Kind::Custom {
                ty: "argv list",
                read: |w, s, key, c| {
                    if let Some(a) = w.service_argv(s, key) {
                        c.service_stop = a
                    }
                },
                show: |c| Some(out::strs(&c.service_stop)),
            },
            doc: "how raft recovery stops this node's Consul server (default `[systemctl, stop, service-discover]`).",
        },
        Key {
            name: "service_start",
            kind: Kind::Custom {
                ty: "argv list",
                read: |w, s, key, c| {
                    if let Some(a) = w.service_argv(s, key) {
                        c.service_start = a
                    }
                },
                show: |c| Some(out::strs(&c.service_start)),
            },
            doc: "how raft recovery starts it again with `peers.json` (default `[systemctl, start, service-discover]`).",
        },
        Key {
            name: "service_discover_user",
            kind: Kind::Custom {
                ty: "a user name",
                read: |w, s, key, c| {
                    if let Some(u) = w.user_name(s, key) {
                        c.service_discover_user = u
                    }
                },
                show: |c| Some(out::s(c.service_discover_user.clone())),
            },
            doc: "the user Consul runs as, owner of `raft/peers.json`.",
        },
    ],
};
