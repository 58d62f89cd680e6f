//! `probes:`: extra witnesses per watched component.

use super::super::Probes;
use super::{Field, Key, Kind, Table};

pub const PROBES: Table<Probes> = Table {
    name: "probes",
    keys: &[
        Key {
            name: "appserver",
            kind: Kind::Probes(field!(appserver)),
            doc: "extra witnesses of the watched mailstore (`appserver_ip`).",
        },
        Key {
            name: "proxy",
            kind: Kind::Probes(field!(proxy)),
            doc: "of the watched proxy (`proxy_ip`).",
        },
        Key {
            name: "directory",
            kind: Kind::Probes(field!(directory)),
            doc: "of the watched directory (`directorysrv_ip`).",
        },
        Key {
            name: "consul",
            kind: Kind::Probes(field!(consul)),
            doc: "of the watched Consul servers (`consul_ips`).",
        },
    ],
};
