//! `detection:`: the probe rounds and how witnesses' votes judge a component.

use super::super::Detection;
use super::super::out::{self, Out};
use super::{Field, Key, Kind, Table};
use std::time::Duration;

/// The shortest `detection.interval` habeat accepts: below it a round
/// costs more CPU than it buys detection time (at `1ns` the daemon used
/// 27 % of a core and sent ~118 WATCHDOG messages a second), and no
/// witness (Serf gossip, ICMP across datacenters) changes that fast.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest `detection.timeout`: a probe given less than any real
/// round trip times out against a live peer, and a timed-out probe votes
/// Down.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);

pub const DETECTION: Table<Detection> = Table {
    name: "detection",
    keys: &[
        Key {
            name: "interval",
            kind: Kind::Duration {
                field: field!(interval),
                floor: Some(MIN_INTERVAL),
            },
            doc: "time between probe rounds (faster rounds cost CPU and flood systemd's watchdog without detecting anything sooner).",
        },
        Key {
            name: "timeout",
            kind: Kind::Duration {
                field: field!(timeout),
                floor: Some(MIN_TIMEOUT),
            },
            doc: "per probe (a probe timed out against a live peer votes Down); a warning if longer than `interval`.",
        },
        Key {
            name: "fall",
            kind: Kind::Count {
                field: field!(fall),
                min: 1,
                max: 1000,
            },
            doc: "consecutive Down rounds before a witness votes Down.",
        },
        Key {
            name: "rise",
            kind: Kind::Count {
                field: field!(rise),
                min: 1,
                max: 1000,
            },
            doc: "consecutive Up rounds before it votes Up again.",
        },
        Key {
            name: "serf_fall",
            kind: Kind::Count {
                field: field!(serf_fall),
                min: 1,
                max: 1000,
            },
            doc: "`fall` of the two witnesses that read Serf (`consul_members`, `consul_health`). A `failed` member has already been through Serf's own suspicion protocol, so one round is enough; ICMP and the other probes keep `fall`, and `quorum: all` still needs them.",
        },
        Key {
            name: "serf_rise",
            kind: Kind::Custom {
                ty: "number 1-1000",
                read: |w, s, key, d| {
                    if let Some(n) = w.opt_count(s, key, 1, 1000) {
                        d.serf_rise = Some(n);
                    }
                },
                show: |d| Some(Out::Int(d.serf_rise().into())),
            },
            doc: "`rise` of the Serf witnesses; absent: the same as `rise` (the default shown is that of `rise`).",
        },
        Key {
            name: "quorum",
            kind: Kind::Custom {
                ty: "`all` or a number ≥ 1",
                read: |w, s, key, d| d.quorum = w.quorum(s, key, d.quorum),
                show: |d| {
                    Some(match d.quorum {
                        super::super::Quorum::All => out::s("all"),
                        super::super::Quorum::AtLeast(n) => Out::Int(n.into()),
                    })
                },
            },
            doc: "Down votes needed to judge a component Down. Any Up vote vetoes. A number larger than the component's independent votes is an error (it could never be reached); `consul_members` and `consul_health` read the same Serf gossip and are one vote.",
        },
    ],
};
