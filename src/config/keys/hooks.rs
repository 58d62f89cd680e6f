//! `hooks:`: the operator's commands and their limit.

use super::super::Hooks;
use super::{Field, Key, Kind, Table};

pub const HOOKS: Table<Hooks> = Table {
    name: "hooks",
    keys: &[
        Key {
            name: "timeout",
            kind: Kind::Duration {
                field: field!(timeout),
                floor: None,
            },
            doc: "each hook's limit; its process group is killed after it.",
        },
        Key {
            name: "after_promotion",
            kind: Kind::Commands(field!(after_promotion)),
            doc: "commands run after the proxy switch `activate` commands.",
        },
        Key {
            name: "on_peer_recovered",
            kind: Kind::Commands(field!(on_peer_recovered)),
            doc: "commands run after the proxy switch `deactivate` commands.",
        },
        Key {
            name: "on_event",
            kind: Kind::Commands(field!(on_event)),
            doc: "commands run on every state change, the event JSON on stdin; never block decisions.",
        },
        Key {
            name: "on_fence",
            kind: Kind::Commands(field!(on_fence)),
            doc: "primary side, `lease.enabled`: run when the serving lease is lost (withdraw routes, stop the proxy or mailbox), again until every hook succeeds; keep them idempotent.",
        },
        Key {
            name: "on_unfence",
            kind: Kind::Commands(field!(on_unfence)),
            doc: "primary side: run when the lease is back and `habeat/failover/<own host>` shows no promotion meanwhile.",
        },
    ],
};
