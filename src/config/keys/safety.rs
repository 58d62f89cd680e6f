//! `safety:`: the gates in front of an automatic promotion and raft recovery.

use super::super::Safety;
use super::super::out::{self};
use super::{Field, Key, Kind, Table};

pub const SAFETY: Table<Safety> = Table {
    name: "safety",
    keys: &[
        Key {
            name: "quorum_gate",
            kind: Kind::Bool(field!(quorum_gate)),
            doc: "before any automatic promotion or proxy switch, prove this side holds the Consul majority (a KV lock). `false` restores the old ping-and-Serf behaviour and is warned about at every start: a partition can then cause split brain. With two Consul servers in `primary` and one in `secondary`, a full primary loss passes the gate only after the consulserver role has recovered raft on the secondary side — intended.",
        },
        Key {
            name: "recovery_grace",
            kind: Kind::Duration {
                field: field!(recovery_grace),
                floor: None,
            },
            doc: "consulserver: leaderless this long before raft recovery.",
        },
        Key {
            name: "promotion_block",
            kind: Kind::Duration {
                field: field!(promotion_block),
                floor: None,
            },
            doc: "no second automatic promotion within this window.",
        },
        Key {
            name: "rearm",
            kind: Kind::Custom {
                ty: "`auto` or `manual`",
                read: |w, s, key, sa| {
                    sa.rearm = w.choice(s, key, sa.rearm, super::super::Rearm::CHOICES)
                },
                show: |sa| Some(out::s(sa.rearm.as_str())),
            },
            doc: "`auto`: locks clear when the peer is Up again (old behaviour); `manual`: only `habeat rearm` clears them.",
        },
        Key {
            name: "raft_recovery",
            kind: Kind::Custom {
                ty: "`confirmed`, `operator` or `timer`",
                read: |w, s, key, sa| {
                    sa.raft_recovery = w.choice(
                        s,
                        key,
                        sa.raft_recovery,
                        super::super::RaftRecoveryPolicy::CHOICES,
                    )
                },
                show: |sa| Some(out::s(sa.raft_recovery.as_str())),
            },
            doc: "consulserver: when raft recovery may run by itself. `confirmed`: only when a third vantage point agrees (the `witnesses.command` arbiter votes Down for the consul component, or `fencing.consul` confirms every peer Consul server OFF), since a partition and a lost datacenter look the same from here; `operator`: never by itself, only `habeat recover --peer-dc-lost`; `timer`: the old rule, `recovery_grace` alone, which splits Consul on a partition longer than the grace, warned about at every start.",
        },
        Key {
            name: "require_peer_lease",
            kind: Kind::Custom {
                ty: "`auto` or `always`",
                read: |w, s, key, sa| {
                    sa.require_peer_lease = w.choice(
                        s,
                        key,
                        sa.require_peer_lease,
                        crate::model::PeerLease::CHOICES,
                    )
                },
                show: |sa| Some(out::s(sa.require_peer_lease.as_str())),
            },
            doc: "before promoting a primary host the secondary takes over its serving lease (`habeat/serving/<host>`, see `lease`). When that key was never there: `auto` promotes (the primary side runs no lease), `always` waits for it.",
        },
    ],
};
