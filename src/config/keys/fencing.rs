//! `fencing:`: the fence agents that confirm the peer's nodes OFF.

use super::super::out;
use super::super::{FenceTarget, Fencing};
use super::{Field, Key, Kind, Table};

/// `target!(appserver, ty, doc)`: the key `appserver`, whose value is a
/// section of [`FENCE_TARGET`] filling in `Fencing::appserver`. Every
/// fenced component is declared by it, so they are read, shown and
/// documented alike.
macro_rules! target {
    ($component:ident, $ty:literal, $doc:literal) => {
        Key {
            name: stringify!($component),
            kind: Kind::FenceTarget {
                field: field!($component),
                ty: $ty,
            },
            doc: $doc,
        }
    };
}

pub const FENCING: Table<Fencing> = Table {
    name: "fencing",
    keys: &[
        Key {
            name: "timeout",
            kind: Kind::Duration {
                field: field!(timeout),
                floor: None,
            },
            doc: "each fence agent call's limit; its process group is killed after it, and the call is no confirmation.",
        },
        target!(
            appserver,
            "fence target (`fencing.<component>` below)",
            "the peer mailstore's node: confirmed OFF after the quorum gate and before `promoteAccounts`; no confirmed OFF, no promotion."
        ),
        target!(
            proxy,
            "fence target",
            "the peer proxy's node (proxyserver role): confirmed OFF before the first proxy switch command."
        ),
        target!(
            consul,
            "fence target",
            "the peer datacenter's Consul servers (consulserver role): every one confirmed OFF lets raft recovery go ahead; `plugs` names one per peer `consul_vmnames` entry, in the same order."
        ),
    ],
};

/// `fencing.appserver`, `fencing.proxy`, `fencing.consul`: one agent.
pub const FENCE_TARGET: Table<FenceTarget> = Table {
    name: "fencing.<component>",
    keys: &[
        Key {
            name: "agent",
            kind: Kind::Custom {
                ty: "absolute path of an executable",
                read: |w, s, key, t| {
                    if let Some(p) = w.fence_agent(s, key) {
                        t.agent = p;
                    }
                },
                show: |t| Some(out::p(&t.agent)),
            },
            doc: "a ClusterLabs fence-agents program (`/usr/sbin/fence_vmware_rest`, `fence_redfish`, `fence_ipmilan`, ...); required. Run directly, never through a shell.",
        },
        Key {
            name: "action",
            kind: Kind::Custom {
                ty: "`off` or `status`",
                read: |w, s, key, t| t.action = w.fence_action(s, key, t.action),
                show: |t| Some(out::s(t.action.as_str())),
            },
            doc: "`off`: when `status` says ON, power the node off, then `status` must say OFF; `status`: never power anything off, only a `status` of OFF is accepted.",
        },
        Key {
            name: "options",
            kind: Kind::Custom {
                ty: "mapping of `option: scalar`",
                read: |w, s, key, t| t.options = w.fence_options(s, key),
                show: |t| Some(out::fence_options(t)),
            },
            doc: "the agent's options, written on its standard input as `key=value` lines (never in argv): `ip`, `username`, `password_script`, `ssl_insecure`, ... Values of `password`/`passwd` options are never shown or logged; prefer `password_script`. `plug` here is the same as `plugs: [one]`.",
        },
        Key {
            name: "plugs",
            kind: Kind::Custom {
                ty: "list of plug names",
                read: |w, s, key, t| t.plugs = w.fence_plugs(s, key),
                show: |t| Some(out::strs(&t.plugs)),
            },
            doc: "the agent's `plug` per node (VM name, system id): exactly one for `appserver` and `proxy` (or `options.plug`), one per peer Consul server for `consul`.",
        },
    ],
};
