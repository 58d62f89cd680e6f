//! `lease:`: the primary side's serving lease.

use super::super::Lease;
use super::{Field, Key, Kind, Table};

pub const LEASE: Table<Lease> = Table {
    name: "lease",
    keys: &[
        Key {
            name: "enabled",
            kind: Kind::Bool(field!(enabled)),
            doc: "primary side (`whoami: primary`, appserver or proxyserver role): hold the serving lease `habeat/serving/<own mail host>` in a TTL-only Consul session, and fence this side (`hooks.on_fence`) when it cannot be renewed. Held by the daemon (`habeat run`) only, not by the timer's `check`. See docs/decisions.md §7.",
        },
        Key {
            name: "ttl",
            kind: Kind::Duration {
                field: field!(ttl),
                floor: Some(Lease::MIN_TTL),
            },
            doc: "the session's TTL (Consul: at least 10s). Renewed every ttl/3; no renewal for ttl - ttl/3 fences. The secondary can take the lease over no sooner than ttl + 15s (Consul's lock-delay) after the last renewal.",
        },
    ],
};
