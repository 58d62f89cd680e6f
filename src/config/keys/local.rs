//! `local:`: this node, its roles, its lock files and what it does after a promotion.

use super::super::Local;
use super::super::out::{self, Out};
use super::{Field, Key, Kind, Table};

pub const LOCAL: Table<Local> = Table {
    name: "local",
    keys: &[
        Key {
            name: "whoami",
            kind: Kind::DcName {
                field: field!(whoami),
                what: "the datacenter this node is in",
            },
            doc: "the datacenter this node is in. The DC named `primary` never promotes automatically.",
        },
        Key {
            name: "dc_check",
            kind: Kind::DcName {
                field: field!(dc_check),
                what: "the datacenter this node watches",
            },
            doc: "the datacenter this node watches; must differ from `whoami` and have its own section.",
        },
        Key {
            name: "role",
            kind: Kind::Alias {
                of: "roles",
                suggested: true,
            },
            doc: "legacy single role; same as `roles: [<role>]`. Use one of `role`/`roles`.",
        },
        Key {
            name: "roles",
            kind: Kind::Custom {
                ty: "list of roles",
                read: |w, s, _, l| l.roles = w.roles(s),
                show: |l| {
                    Some(Out::Seq(
                        l.roles.iter().map(|r| out::s(r.as_str())).collect(),
                    ))
                },
            },
            doc: "what this node acts for: `appserver` (promote the peer mailstore's accounts), `proxyserver` (switch proxy traffic), `consulserver` (recover the Consul raft quorum). Several allowed.",
        },
        Key {
            name: "checkDownFile",
            kind: Kind::Path(field!(check_down_file)),
            doc: "lock-file template, written when the peer component is Down; the role is appended (`...-habeat-appserver`).",
        },
        Key {
            name: "checkPromotionFile",
            kind: Kind::Path(field!(check_promotion_file)),
            doc: "lock-file template, written after a promotion; blocks a second one until re-armed.",
        },
        Key {
            name: "checkRestartReplicaFile",
            kind: Kind::Path(field!(check_restart_replica_file)),
            doc: "written when habeat stopped the HA module (`disable_ha_module`).",
        },
        Key {
            name: "provider",
            kind: Kind::Custom {
                ty: "`consul`",
                read: |w, s, key, _| w.provider(s, key),
                show: |_| Some(out::s("consul")),
            },
            doc: "only `consul` (Carbonio service discover) is supported; anything else is an error (for other evidence use `witnesses.command`).",
        },
        Key {
            name: "threads",
            kind: Kind::Count {
                field: field!(threads),
                min: 1,
                max: 256,
            },
            doc: "threads for `promoteAccounts`.",
        },
        Key {
            name: "proxy_switch",
            kind: Kind::Text {
                field: field!(proxy_switch),
                what: "the name of a proxy switch tool",
            },
            doc: "which tool under `<whoami>.proxy_switch` is run.",
        },
        Key {
            name: "proxy_enable_activate",
            kind: Kind::Bool(field!(proxy_enable_activate)),
            doc: "run the tool's `activate` commands after a promotion / when the peer proxy is Down. Requires `<whoami>.proxy_switch.<tool>.activate` to list commands.",
        },
        Key {
            name: "proxy_enable_deactivate",
            kind: Kind::Bool(field!(proxy_enable_deactivate)),
            doc: "run the tool's `deactivate` commands when the peer **proxy** is Up again (proxyserver role). Not after an appserver promotion: the accounts stay here, so their traffic does too. Requires `...deactivate` commands.",
        },
        Key {
            name: "disable_ha_module",
            kind: Kind::Bool(field!(disable_ha_module)),
            doc: "on a node in `primary`: when the peer mailstore is Down, stop the replica module once (`doStopService module`) and write `checkRestartReplicaFile`.",
        },
        Key {
            name: "flush_cache",
            kind: Kind::Bool(field!(flush_cache)),
            doc: "after promotion, `zmprov fc account <name>` per account.",
        },
        Key {
            name: "flush_arguments_a",
            kind: Kind::Bool(field!(flush_arguments_a)),
            doc: "with `flush_cache`: `zmprov fc -a` (all application servers).",
        },
        Key {
            name: "restart_replica",
            kind: Kind::Bool(field!(restart_replica)),
            doc: "after promotion, `pauseReplicas` and `restartReplicas` per account.",
        },
        Key {
            name: "state_dir",
            kind: Kind::Path(field!(state_dir)),
            doc: "`state.json`, `events.jsonl` and the process lock. Created with mode 0700 if missing. Must be owned by root or habeat's user and writable by its owner only (not `g+w`/`o+w`), or every command refuses it with the fix (`chmod go-w <dir>`).",
        },
    ],
};
