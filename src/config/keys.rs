//! Every key of habeat.yml, declared once.
//!
//! Each section of the file is a [`Table`] of [`Key`]s. A key says its
//! name, its [`Kind`] (how its value is read, checked and shown) and a
//! one-line doc, in the way ripgrep's `flags/defs.rs` keeps a flag's name,
//! doc and parse together. Everything else follows from these tables:
//!
//! - the walker (`walk.rs`) reads each key of a section by its kind and
//!   takes the section's valid keys, and the "did you mean" candidates,
//!   from the table;
//! - `render.rs` prints each key by its kind, in table order;
//! - the key tables of `docs/configuration.md` are generated from the
//!   tables (`doc.rs`; its test fails when the file differs).
//!
//! A key's default is its field's value in the section's `Default` (in
//! `mod.rs`): the walker starts from it, and the docs print it.
//!
//! The order of a table is the order of the file, of `config check`'s
//! output and of the "valid here: ..." list of an unknown-key error.

use super::out::{self, Out};
use super::read::{Section, Walker};
use super::{
    Carbonio, Consul, Datacenter, Detection, FenceTarget, Fencing, HookCommand, Hooks, Journal,
    Lease, Local, Metrics, ProbeSpec, Probes, Replicas, Safety, SwitchCommands, Witnesses,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// The keys of one section, in file order.
pub struct Table<S: 'static> {
    /// The section's name at the top level (`local`); for the sections
    /// named by the operator (datacenters, proxy switch tools) what the
    /// docs call them (`<dc>`).
    pub name: &'static str,
    pub keys: &'static [Key<S>],
}

/// One key of a section.
pub struct Key<S: 'static> {
    /// As written in habeat.yml.
    pub name: &'static str,
    pub kind: Kind<S>,
    /// What the key changes, for docs/configuration.md (Markdown, one
    /// table cell).
    pub doc: &'static str,
}

/// Access to the field of `S` that a key fills in.
pub struct Field<S, T> {
    pub get: fn(&S) -> &T,
    pub set: fn(&mut S) -> &mut T,
}

/// `field!(threads)`: the [`Field`] for `s.threads`.
macro_rules! field {
    ($f:ident) => {
        Field {
            get: |s| &s.$f,
            set: |s| &mut s.$f,
        }
    };
}

/// How a key's value is read (with its checks and error messages, in
/// `walk.rs`) and shown (`config check`, the docs' default column).
pub enum Kind<S: 'static> {
    /// A datacenter name (required); `what` says which one in the
    /// "is missing" error.
    DcName {
        field: Field<S, String>,
        what: &'static str,
    },
    /// `true`/`false` (and the YAML 1.1 words).
    Bool(Field<S, bool>),
    /// A whole number in `min..=max`.
    Count {
        field: Field<S, u32>,
        min: u32,
        max: u32,
    },
    /// A TCP port, 1-65535.
    Port(Field<S, u16>),
    /// A humantime duration with a unit, longer than zero and not below
    /// `floor`.
    Duration {
        field: Field<S, Duration>,
        floor: Option<Duration>,
    },
    /// Free text; `what` names it in a type error.
    Text {
        field: Field<S, String>,
        what: &'static str,
    },
    /// An absolute path; the default stays when absent.
    Path(Field<S, PathBuf>),
    /// An IP address or hostname, or none.
    Address(Field<S, Option<String>>),
    /// A list of IP addresses or hostnames.
    Addresses(Field<S, Vec<String>>),
    /// An RFC 1123 hostname, or none.
    Hostname(Field<S, Option<String>>),
    /// A list of hostnames.
    Hostnames(Field<S, Vec<String>>),
    /// A list of commands (strings for `/bin/sh -c`, or argv lists).
    Commands(Field<S, Vec<HookCommand>>),
    /// A list of extra probes (`icmp`, `{ tcp: PORT }`, ...).
    Probes(Field<S, Vec<ProbeSpec>>),
    /// `{ <tool>: <section of [`SWITCH`]> }`, the proxy switch tools.
    Tools(Field<S, BTreeMap<String, SwitchCommands>>),
    /// A section of [`FENCE_TARGET`], or none; `ty` is what the docs say
    /// its value is.
    FenceTarget {
        field: Field<S, Option<FenceTarget>>,
        ty: &'static str,
    },
    /// An old spelling, read by the key it stands for (`of`) and never
    /// shown. `suggested: false` keeps a misspelling out of "did you
    /// mean" hints and out of the docs' tables.
    Alias { of: &'static str, suggested: bool },
    /// A key with its own reader in `read/`. `ty` is what the docs say
    /// its value is; `show` is `None` for what `config check` never
    /// prints as a value (the token).
    Custom {
        ty: &'static str,
        read: fn(&mut Walker<'_>, &Section<'_>, &str, &mut S),
        show: fn(&S) -> Option<Out>,
    },
}

impl<S> Key<S> {
    /// The value `config check` prints for this key, if any.
    pub fn show(&self, v: &S) -> Option<Out> {
        Some(match &self.kind {
            Kind::DcName { field, .. } | Kind::Text { field, .. } => out::s((field.get)(v)),
            Kind::Bool(f) => Out::Bool(*(f.get)(v)),
            Kind::Count { field, .. } => Out::Int((*(field.get)(v)).into()),
            Kind::Port(f) => Out::Int((*(f.get)(v)).into()),
            Kind::Duration { field, .. } => out::d(*(field.get)(v)),
            Kind::Path(f) => out::p((f.get)(v)),
            Kind::Address(f) | Kind::Hostname(f) => out::opt((f.get)(v)),
            Kind::Addresses(f) | Kind::Hostnames(f) => out::strs((f.get)(v)),
            Kind::Commands(f) => out::commands((f.get)(v)),
            Kind::Probes(f) => out::probes((f.get)(v)),
            Kind::Tools(f) => Out::Map(
                (f.get)(v)
                    .iter()
                    .map(|(tool, c)| (tool.clone(), SWITCH.show(c)))
                    .collect(),
            ),
            Kind::FenceTarget { field, .. } => (field.get)(v)
                .as_ref()
                .map_or(Out::Null, |t| FENCE_TARGET.show(t)),
            Kind::Alias { .. } => return None,
            Kind::Custom { show, .. } => return show(v),
        })
    }

    /// Offered in "did you mean" hints and listed in the docs.
    pub fn suggested(&self) -> bool {
        !matches!(
            self.kind,
            Kind::Alias {
                suggested: false,
                ..
            }
        )
    }
}

impl<S> Table<S> {
    /// Every key the section accepts, aliases included.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.keys.iter().map(|k| k.name)
    }

    /// A section as `config check` prints it: every key that has a value
    /// to show, in table order.
    pub fn show(&self, v: &S) -> Out {
        Out::Map(
            self.keys
                .iter()
                .filter_map(|k| Some((k.name.to_owned(), k.show(v)?)))
                .collect(),
        )
    }
}

/// The fixed top-level sections, in file order; any other top-level key
/// must be a datacenter named by `local.whoami` or `local.dc_check`.
pub const SECTIONS: &[&str] = &[
    LOCAL.name,
    CONSUL.name,
    DETECTION.name,
    PROBES.name,
    WITNESSES.name,
    CARBONIO.name,
    SAFETY.name,
    REPLICAS.name,
    LEASE.name,
    HOOKS.name,
    METRICS.name,
    JOURNAL.name,
    FENCING.name,
];

// ---------------------------------------------------------------------------
// The tables.

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
                read: |w, s, key, c| c.scheme = w.choice(s, key, c.scheme, super::Scheme::CHOICES),
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
                        super::Quorum::All => out::s("all"),
                        super::Quorum::AtLeast(n) => Out::Int(n.into()),
                    })
                },
            },
            doc: "Down votes needed to judge a component Down. Any Up vote vetoes. A number larger than the component's witnesses is an error (it could never be reached).",
        },
    ],
};

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
            doc: "external witness, an argv list: exit 0 Up, 1 Down, else Unknown.",
        },
    ],
};

pub const CARBONIO: Table<Carbonio> = Table {
    name: "carbonio",
    keys: &[
        Key {
            name: "cli",
            kind: Kind::Path(field!(cli)),
            doc: "the Carbonio CLI.",
        },
        Key {
            name: "zmprov",
            kind: Kind::Path(field!(zmprov)),
            doc: "zmprov, for cache flushes.",
        },
        Key {
            name: "run_as",
            kind: Kind::Custom {
                ty: "user name",
                read: |w, s, key, c| c.run_as = w.run_as(s, key, c.run_as.take()),
                show: |c| Some(out::opt(&c.run_as)),
            },
            doc: "user the CLIs run as; empty (`run_as:` or `\"\"`) runs them as habeat's own user.",
        },
        Key {
            name: "module",
            kind: Kind::Custom {
                ty: "module name",
                read: |w, s, key, c| {
                    if let Some(m) = w.module(s, key) {
                        c.module = m;
                    }
                },
                show: |c| Some(out::s(c.module.as_str())),
            },
            doc: "`ha` for releases before the rename.",
        },
        Key {
            name: "command_timeout",
            kind: Kind::Duration {
                field: field!(command_timeout),
                floor: None,
            },
            doc: "every CLI call except promotion.",
        },
        Key {
            name: "promote_timeout",
            kind: Kind::Duration {
                field: field!(promote_timeout),
                floor: None,
            },
            doc: "`promoteAccounts`.",
        },
    ],
};

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
                read: |w, s, key, sa| sa.rearm = w.choice(s, key, sa.rearm, super::Rearm::CHOICES),
                show: |sa| Some(out::s(sa.rearm.as_str())),
            },
            doc: "`auto`: locks clear when the peer is Up again (old behaviour); `manual`: only `habeat rearm` clears them.",
        },
        Key {
            name: "raft_recovery",
            kind: Kind::Custom {
                ty: "`confirmed`, `operator` or `timer`",
                read: |w, s, key, sa| {
                    sa.raft_recovery =
                        w.choice(s, key, sa.raft_recovery, super::RaftRecoveryPolicy::CHOICES)
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

pub const REPLICAS: Table<Replicas> = Table {
    name: "replicas",
    keys: &[
        Key {
            name: "survey_interval",
            kind: Kind::Custom {
                ty: "duration, or `0`",
                read: |w, s, key, r| {
                    r.survey_interval = w.duration_or_zero(s, key, r.survey_interval)
                },
                show: |r| Some(out::d(r.survey_interval)),
            },
            doc: "how often, while the peer appserver is Up, to read `getAccountStatus mailHost <peer>` and classify each account's replica (ok, unavailable, no Kafka, paused, behind, no replica); a `check` surveys when the last survey is older. `0`: never.",
        },
        Key {
            name: "at_risk",
            kind: Kind::Custom {
                ty: "`promote` or `hold`",
                read: |w, s, key, r| {
                    r.at_risk = w.choice(s, key, r.at_risk, super::AtRiskPolicy::CHOICES)
                },
                show: |r| Some(out::s(r.at_risk.as_str())),
            },
            doc: "`promote`: an automatic promotion moves every account and names those at risk; `hold`: it moves the others (`promoteAccounts input_file`) and leaves those at risk for the operator, named, with the `habeat promote --accounts ...` that moves them.",
        },
    ],
};

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
            doc: "primary side, `lease.enabled`: run once when the serving lease is lost (withdraw routes, stop the proxy or mailbox).",
        },
        Key {
            name: "on_unfence",
            kind: Kind::Commands(field!(on_unfence)),
            doc: "primary side: run when the lease is back and `habeat/failover/<own host>` shows no promotion meanwhile.",
        },
    ],
};

pub const METRICS: Table<Metrics> = Table {
    name: "metrics",
    keys: &[Key {
        name: "listen",
        kind: Kind::Custom {
            ty: "`ip:port`",
            read: |w, s, key, m| m.listen = w.listen(s, key),
            show: |m| Some(m.listen.map_or(Out::Null, |a| out::s(a.to_string()))),
        },
        doc: "for `/metrics` and `/status` (IPv6 in brackets, no hostnames).",
    }],
};

pub const JOURNAL: Table<Journal> = Table {
    name: "journal",
    keys: &[
        Key {
            name: "max_size",
            kind: Kind::Custom {
                ty: "size (`64KiB`-`1TiB`)",
                read: |w, s, key, j| j.max_size = w.size(s, key, j.max_size),
                show: |j| Some(out::s(out::format_size(j.max_size))),
            },
            doc: "largest `events.jsonl` before it is rotated. A round's events are a few hundred bytes, a failover's a few KiB (more with many accounts: the promotion intent names each).",
        },
        Key {
            name: "keep",
            kind: Kind::Count {
                field: field!(keep),
                min: 1,
                max: Journal::MAX_KEEP,
            },
            doc: "rotated files kept: with the defaults at most 60 MiB in all. A lower value removes the files beyond it at the next rotation.",
        },
    ],
};

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
        Key {
            name: "appserver",
            kind: Kind::FenceTarget {
                field: field!(appserver),
                ty: "fence target (`fencing.<component>` below)",
            },
            doc: "the peer mailstore's node: confirmed OFF after the quorum gate and before `promoteAccounts`; no confirmed OFF, no promotion.",
        },
        Key {
            name: "proxy",
            kind: Kind::FenceTarget {
                field: field!(proxy),
                ty: "fence target",
            },
            doc: "the peer proxy's node (proxyserver role): confirmed OFF before the first proxy switch command.",
        },
        Key {
            name: "consul",
            kind: Kind::FenceTarget {
                field: field!(consul),
                ty: "fence target",
            },
            doc: "the peer datacenter's Consul servers (consulserver role): every one confirmed OFF lets raft recovery go ahead; `plugs` names one per peer `consul_vmnames` entry, in the same order.",
        },
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
