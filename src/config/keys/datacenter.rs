//! `<dc>:`: a datacenter's addresses and hostnames, and its proxy switch tools.

use super::super::out::{self};
use super::super::{Datacenter, SwitchCommands};
use super::{Field, Key, Kind, Table};

pub const DATACENTER: Table<Datacenter> = Table {
    name: "<dc>",
    keys: &[
        Key {
            name: "proxy_ip",
            kind: Kind::Address(field!(proxy_ip)),
            doc: "pinged for the proxy component.",
        },
        Key {
            name: "appserver_ip",
            kind: Kind::Address(field!(appserver_ip)),
            doc: "pinged for the mailstore.",
        },
        Key {
            name: "directorysrv_ip",
            kind: Kind::Address(field!(directorysrv_ip)),
            doc: "pinged for the directory (shown in status, evidence of \"whole DC gone\").",
        },
        Key {
            name: "consul_ips",
            kind: Kind::Addresses(field!(consul_ips)),
            doc: "the Consul servers of that DC, pinged.",
        },
        Key {
            name: "consul_vmnames",
            kind: Kind::Hostnames(field!(consul_vmnames)),
            doc: "their hostnames; Consul node names derive from them (`server-svc1-example-com`).",
        },
        Key {
            name: "appserver_vmname",
            kind: Kind::Hostname(field!(appserver_vmname)),
            doc: "the mailstore's hostname: its Consul node, and the `source_mail_host` whose accounts are promoted.",
        },
        Key {
            name: "proxyserver_vmname",
            kind: Kind::Hostname(field!(proxyserver_vmname)),
            doc: "the proxy's hostname (its Consul node).",
        },
        Key {
            name: "proxy_switch",
            kind: Kind::Tools(field!(proxy_switch)),
            doc: "`{ <tool>: { activate: [commands], deactivate: [commands] } }`; `deativate` is accepted as the old spelling of `deactivate` (not both).",
        },
    ],
};

/// One tool under `<dc>.proxy_switch`.
pub const SWITCH: Table<SwitchCommands> = Table {
    name: "<dc>.proxy_switch.<tool>",
    keys: &[
        Key {
            name: "activate",
            kind: Kind::Commands(field!(activate)),
            doc: "run with `local.proxy_enable_activate`: after a promotion, or when the peer proxy is Down.",
        },
        Key {
            name: "deactivate",
            kind: Kind::Custom {
                ty: "list of commands",
                read: |w, s, key, c| c.deactivate = w.deactivate(s, key),
                show: |c| Some(out::commands(&c.deactivate)),
            },
            doc: "run with `local.proxy_enable_deactivate`: when the peer proxy is Up again. The old spelling `deativate` is accepted (not both).",
        },
        Key {
            name: "deativate",
            kind: Kind::Alias {
                of: "deactivate",
                suggested: false,
            },
            doc: "",
        },
    ],
};
