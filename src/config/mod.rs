//! Configuration: the typed, validated view of `habeat.yml`.
//!
//! The types in this file are the *effective* configuration that the rest
//! of habeat reads: defaults filled in, legacy keys mapped to their new
//! meaning, every address and duration already validated. Parsing and
//! validation (with file:line:column errors) live in [`load`].
//!
//! Each section has its own struct with a `Default` so that subsystems (and
//! their tests) can be configured without a whole file.

mod address;
pub mod doc;
mod for_engine;
mod keys;
pub mod load;
mod out;
mod problem;
mod read;
pub mod render;
pub mod serving_lease;
mod suggest;
mod walk;
pub mod witness_plan;
mod yaml;

pub use keys::SECTIONS;

pub use load::{
    ConfigError, FenceMetadata, HostCheck, LoadEnv, Problem, load_file, load_file_with, load_str,
    load_str_with,
};

/// Plain vocabulary the engine shares; re-exported so that
/// `config::Quorum` and `config::Rearm` keep working.
pub use crate::model::{AtRiskPolicy, FenceAction, Quorum, RaftRecoveryPolicy, Rearm};

use crate::model::{Component, PeerLease, Role};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Name of a datacenter as written in the config (`primary`, `secondary`).
pub type DcName = String;

/// The whole effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file this came from (for messages).
    pub source: PathBuf,
    pub local: Local,
    /// Every datacenter defined in the file, by name.
    pub dcs: BTreeMap<DcName, Datacenter>,
    pub consul: Consul,
    pub detection: Detection,
    pub probes: Probes,
    pub witnesses: Witnesses,
    pub carbonio: Carbonio,
    pub safety: Safety,
    pub replicas: Replicas,
    pub lease: Lease,
    pub hooks: Hooks,
    pub metrics: Metrics,
    pub journal: Journal,
    pub fencing: Fencing,
    /// Non-fatal findings (world-readable token, quorum gate disabled, ...),
    /// printed by `config check` and logged at every start.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Config {
    /// The datacenter this node watches.
    pub fn peer(&self) -> &Datacenter {
        // Validation guarantees dc_check names a defined DC.
        &self.dcs[&self.local.dc_check]
    }

    /// The datacenter this node is in, if the file defines it.
    pub fn own(&self) -> Option<&Datacenter> {
        self.dcs.get(&self.local.whoami)
    }

    /// True when this node sits in the DC named `primary`: never promotes
    /// automatically (`primary-never-promotes`).
    pub fn is_primary(&self) -> bool {
        self.local.whoami == "primary"
    }
}

/// `local:` — who this node is and what it does.
#[derive(Debug, Clone, Serialize)]
pub struct Local {
    pub whoami: DcName,
    pub dc_check: DcName,
    /// From `roles:` or the legacy single `role:`.
    pub roles: Vec<Role>,
    /// Legacy lock-file templates; the role name is appended (`<file>-<role>`).
    pub check_down_file: PathBuf,
    pub check_promotion_file: PathBuf,
    pub check_restart_replica_file: PathBuf,
    /// Carbonio promotion threads.
    pub threads: u32,
    /// Which `proxy_switch` tool of this DC to run (legacy: "bgp").
    pub proxy_switch: String,
    pub proxy_enable_activate: bool,
    pub proxy_enable_deactivate: bool,
    pub disable_ha_module: bool,
    pub flush_cache: bool,
    pub flush_arguments_a: bool,
    pub restart_replica: bool,
    pub state_dir: PathBuf,
}

/// The defaults of `local:`. `whoami` and `dc_check` are required and
/// have none: they are empty here, and a file that leaves them out is
/// refused.
impl Default for Local {
    fn default() -> Self {
        Local {
            whoami: String::new(),
            dc_check: String::new(),
            roles: vec![Role::Appserver],
            // The old habeat.yml's lock-file templates, so that runbooks
            // that look for these files keep working.
            check_down_file: PathBuf::from("/var/tmp/appserverdown-habeat"),
            check_promotion_file: PathBuf::from("/var/tmp/appserverprom-habeat"),
            check_restart_replica_file: PathBuf::from("/var/tmp/appserverrstopha"),
            threads: 5,
            proxy_switch: "bgp".into(),
            proxy_enable_activate: false,
            proxy_enable_deactivate: false,
            disable_ha_module: false,
            flush_cache: false,
            flush_arguments_a: false,
            restart_replica: false,
            state_dir: PathBuf::from("/var/lib/habeat"),
        }
    }
}

impl Local {
    pub fn down_file(&self, role: Role) -> PathBuf {
        with_role_suffix(&self.check_down_file, role)
    }
    pub fn promotion_file(&self, role: Role) -> PathBuf {
        with_role_suffix(&self.check_promotion_file, role)
    }
}

fn with_role_suffix(template: &std::path::Path, role: Role) -> PathBuf {
    let mut s = template.as_os_str().to_owned();
    s.push("-");
    s.push(role.as_str());
    PathBuf::from(s)
}

/// One datacenter block (`primary:`, `secondary:`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Datacenter {
    pub proxy_ip: Option<String>,
    pub appserver_ip: Option<String>,
    pub directorysrv_ip: Option<String>,
    pub consul_ips: Vec<String>,
    /// Hostnames of the Consul servers (node names derive from them).
    pub consul_vmnames: Vec<String>,
    /// The mailstore whose accounts are promoted when it is lost.
    pub appserver_vmname: Option<String>,
    pub proxyserver_vmname: Option<String>,
    /// Proxy switch tools of this DC, by name (`bgp`).
    pub proxy_switch: BTreeMap<String, SwitchCommands>,
}

impl Datacenter {
    /// The addresses the network witness pings for a component.
    pub fn addresses(&self, c: Component) -> Vec<String> {
        match c {
            Component::Proxy => self.proxy_ip.iter().cloned().collect(),
            Component::Appserver => self.appserver_ip.iter().cloned().collect(),
            Component::Directory => self.directorysrv_ip.iter().cloned().collect(),
            Component::Consul => self.consul_ips.clone(),
        }
    }

    /// The hostnames whose Consul node names stand for a component.
    pub fn hostnames(&self, c: Component) -> Vec<String> {
        match c {
            Component::Proxy => self.proxyserver_vmname.iter().cloned().collect(),
            Component::Appserver => self.appserver_vmname.iter().cloned().collect(),
            Component::Directory => Vec::new(),
            Component::Consul => self.consul_vmnames.clone(),
        }
    }
}

/// `proxy_switch: { <tool>: { activate: [...], deactivate: [...] } }`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SwitchCommands {
    pub activate: Vec<HookCommand>,
    /// Also accepted under the legacy misspelling `deativate`.
    pub deactivate: Vec<HookCommand>,
}

/// A command written by the operator: an argv list (run directly) or a
/// string (run by `/bin/sh -c`). Data is passed in environment variables,
/// never interpolated into the string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HookCommand {
    Argv(Vec<String>),
    Shell(String),
}

impl HookCommand {
    /// The argv to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            HookCommand::Argv(v) => v.clone(),
            HookCommand::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        }
    }
}

/// `consul:` — how to reach the local Consul agent.
#[derive(Debug, Clone, Serialize)]
pub struct Consul {
    pub hostname: String,
    pub port: u16,
    pub scheme: Scheme,
    pub ca_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// The ACL token, from `token`, `token_file` or `CONSUL_HTTP_TOKEN`.
    pub token: Option<Secret>,
    /// Where the token came from (shown by `config check`; the token never is).
    pub token_source: Option<TokenSource>,
    pub service_discover_data: PathBuf,
    /// How raft recovery stops this node's Consul server (argv).
    pub service_stop: Vec<String>,
    /// How raft recovery starts it again (argv).
    pub service_start: Vec<String>,
    /// The owner of `raft/peers.json`: the user Consul runs as.
    pub service_discover_user: String,
}

impl Default for Consul {
    fn default() -> Self {
        Consul {
            hostname: "127.0.0.1".into(),
            port: 8500,
            scheme: Scheme::Http,
            ca_file: None,
            token_file: None,
            token: None,
            token_source: None,
            service_discover_data: PathBuf::from("/var/lib/service-discover/data"),
            service_stop: ["systemctl", "stop", "service-discover"]
                .map(String::from)
                .to_vec(),
            service_start: ["systemctl", "start", "service-discover"]
                .map(String::from)
                .to_vec(),
            service_discover_user: "service-discover".into(),
        }
    }
}

impl Consul {
    /// Base URL of the agent's HTTP API, e.g. `http://127.0.0.1:8500`.
    pub fn base_url(&self) -> String {
        let scheme = self.scheme.as_str();
        if self.hostname.contains(':') {
            format!("{scheme}://[{}]:{}", self.hostname, self.port)
        } else {
            format!("{scheme}://{}:{}", self.hostname, self.port)
        }
    }
}

/// Which of the three token sources supplied the Consul token, by
/// precedence: `consul.token`, `consul.token_file`, `CONSUL_HTTP_TOKEN`.
/// Operators need to know which one is in force when a token is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `consul.token` in habeat.yml.
    Config,
    /// The file named by `consul.token_file`.
    File,
    /// The `CONSUL_HTTP_TOKEN` environment variable.
    Environment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The values `consul.scheme` accepts.
    pub const CHOICES: &[(&str, Scheme)] = &[("http", Scheme::Http), ("https", Scheme::Https)];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A secret (the Consul token). Its `Debug` and `Serialize` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: only for the `X-Consul-Token` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

/// `detection:` — probe timing and hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Detection {
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub interval: Duration,
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    /// `fall` of the Serf witnesses (`consul_members`, `consul_health`).
    pub serf_fall: u32,
    /// `rise` of the Serf witnesses; `None`: the same as `rise`.
    pub serf_rise: Option<u32>,
    pub quorum: Quorum,
}

impl Detection {
    /// The `rise` of the Serf witnesses in force.
    pub fn serf_rise(&self) -> u32 {
        self.serf_rise.unwrap_or(self.rise)
    }

    /// The longest streak any witness needs to settle (Down or Up), in
    /// rounds: what `check` probes for and the daemon keeps of the rounds
    /// completed during an action.
    pub fn longest_streak(&self) -> u32 {
        self.fall
            .max(self.rise)
            .max(self.serf_fall)
            .max(self.serf_rise())
            .max(1)
    }
}

impl Default for Detection {
    fn default() -> Self {
        Detection {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            serf_fall: 1,
            serf_rise: None,
            quorum: Quorum::All,
        }
    }
}

/// `probes:` — extra network checks per component of the peer DC.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Probes {
    pub appserver: Vec<ProbeSpec>,
    pub proxy: Vec<ProbeSpec>,
    pub directory: Vec<ProbeSpec>,
    pub consul: Vec<ProbeSpec>,
}

impl Probes {
    pub fn for_component(&self, c: Component) -> &[ProbeSpec] {
        match c {
            Component::Appserver => &self.appserver,
            Component::Proxy => &self.proxy,
            Component::Directory => &self.directory,
            Component::Consul => &self.consul,
        }
    }
}

/// One extra probe of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeSpec {
    Icmp,
    Tcp(u16),
    Http(String),
    Ldap(u16),
}

/// `witnesses:` — which non-network witnesses are used.
#[derive(Debug, Clone, Serialize)]
pub struct Witnesses {
    pub consul_members: bool,
    pub consul_health: bool,
    /// External witness argv; empty: none.
    pub command: Vec<String>,
}

impl Default for Witnesses {
    fn default() -> Self {
        Witnesses {
            consul_members: true,
            consul_health: true,
            command: Vec::new(),
        }
    }
}

/// `carbonio:` — how the Zextras CLIs are run.
#[derive(Debug, Clone, Serialize)]
pub struct Carbonio {
    pub cli: PathBuf,
    pub zmprov: PathBuf,
    /// User to run the CLIs as; `None` runs as the current user.
    pub run_as: Option<String>,
    /// `MailReplica`, or `ha` for releases before the rename.
    pub module: String,
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub command_timeout: Duration,
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub promote_timeout: Duration,
}

impl Default for Carbonio {
    fn default() -> Self {
        Carbonio {
            cli: PathBuf::from("/opt/zextras/bin/carbonio"),
            zmprov: PathBuf::from("/opt/zextras/bin/zmprov"),
            run_as: Some("zextras".into()),
            module: "MailReplica".into(),
            command_timeout: Duration::from_secs(120),
            promote_timeout: Duration::from_secs(3600),
        }
    }
}

/// `safety:` — the rules that keep habeat from splitting mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Safety {
    pub quorum_gate: bool,
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub recovery_grace: Duration,
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub promotion_block: Duration,
    pub rearm: Rearm,
    pub require_peer_lease: PeerLease,
    pub raft_recovery: RaftRecoveryPolicy,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            quorum_gate: true,
            recovery_grace: Duration::from_secs(60),
            promotion_block: Duration::from_secs(3600),
            rearm: Rearm::Auto,
            require_peer_lease: PeerLease::Auto,
            raft_recovery: RaftRecoveryPolicy::Confirmed,
        }
    }
}

/// `replicas:` — the replica survey (`getAccountStatus` while the peer is
/// Up) and what a promotion does with accounts at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Replicas {
    /// How often to survey while the peer appserver is Up; zero: never.
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub survey_interval: Duration,
    pub at_risk: AtRiskPolicy,
    /// Whether the daemon re-protects by itself.
    pub reprotect: crate::model::ReprotectPolicy,
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas {
            survey_interval: Duration::from_secs(300),
            at_risk: AtRiskPolicy::Promote,
            reprotect: crate::model::ReprotectPolicy::Manual,
        }
    }
}

/// `hooks:` — operator commands run around actions.
#[derive(Debug, Clone, Serialize)]
pub struct Hooks {
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub timeout: Duration,
    pub after_promotion: Vec<HookCommand>,
    pub on_peer_recovered: Vec<HookCommand>,
    pub on_event: Vec<HookCommand>,
    pub on_fence: Vec<HookCommand>,
    pub on_unfence: Vec<HookCommand>,
}

/// `lease:` — the primary side's serving lease (SPEC 4, "Serving lease";
/// [`crate::lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub enabled: bool,
    /// The Consul session's TTL; renewed every ttl/3, fenced after
    /// ttl - ttl/3 without a renewal. At least [`Lease::MIN_TTL`].
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub ttl: Duration,
}

impl Lease {
    /// Consul refuses a session TTL below 10s.
    pub const MIN_TTL: Duration = Duration::from_secs(10);
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            enabled: false,
            ttl: Duration::from_secs(15),
        }
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            timeout: Duration::from_secs(60),
            after_promotion: Vec::new(),
            on_peer_recovered: Vec::new(),
            on_event: Vec::new(),
            on_fence: Vec::new(),
            on_unfence: Vec::new(),
        }
    }
}

/// `journal:` — when `state_dir/events.jsonl` is rotated, and how many
/// rotated files (`events.jsonl.1`, newest, to `events.jsonl.<keep>`) stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Journal {
    /// Bytes: an append that would take the journal past this starts a new
    /// file first.
    pub max_size: u64,
    /// Rotated files kept; older ones are removed.
    pub keep: u32,
}

impl Journal {
    /// The smallest `max_size` accepted (a few large events).
    pub const MIN_SIZE: u64 = 64 * 1024;
    /// The largest `max_size` accepted.
    pub const MAX_SIZE: u64 = 1 << 40;
    /// The most rotated files accepted.
    pub const MAX_KEEP: u32 = 1000;
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            max_size: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// `metrics:` — the optional HTTP endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub listen: Option<SocketAddr>,
}

/// `fencing:` — STONITH through the ClusterLabs fence agents: a peer
/// node confirmed OFF before its accounts are promoted (`appserver`),
/// before the first proxy switch command (`proxy`), or before raft
/// recovery (`consul`, every peer Consul server).
#[derive(Debug, Clone, Serialize)]
pub struct Fencing {
    /// Each agent call's limit; its process group is killed after it.
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub timeout: Duration,
    pub appserver: Option<FenceTarget>,
    pub proxy: Option<FenceTarget>,
    pub consul: Option<FenceTarget>,
}

impl Default for Fencing {
    fn default() -> Self {
        Fencing {
            timeout: Duration::from_secs(60),
            appserver: None,
            proxy: None,
            consul: None,
        }
    }
}

impl Fencing {
    /// The target configured for a component, if any.
    pub fn target(&self, c: Component) -> Option<&FenceTarget> {
        match c {
            Component::Appserver => self.appserver.as_ref(),
            Component::Proxy => self.proxy.as_ref(),
            Component::Consul => self.consul.as_ref(),
            Component::Directory => None,
        }
    }
}

/// One fence agent and what it fences. The `Default` (no agent, action
/// `status`) is only the walker's starting point: a target without an
/// agent is refused.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
pub struct FenceTarget {
    /// The agent program (`/usr/sbin/fence_vmware_rest`), run directly.
    pub agent: PathBuf,
    pub action: FenceAction,
    /// Written on the agent's stdin as `key=value` lines, never in argv.
    /// `plug` is not among them: it is in `plugs`. Serialized with secret
    /// values masked.
    #[serde(serialize_with = "masked_options")]
    pub options: BTreeMap<String, String>,
    /// The agent's plug (VM name, BMC system) per node fenced: one for
    /// `appserver` and `proxy`, one per peer Consul server for `consul`.
    pub plugs: Vec<String>,
}

impl FenceTarget {
    /// The options as shown anywhere (logs, `config check`, JSON): every
    /// secret value replaced by `********`.
    pub fn shown_options(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .map(|(k, v)| {
                let v = if crate::model::fence_option_is_secret(k) {
                    "********".to_owned()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The values of the secret options (to scrub from any output).
    pub fn secrets(&self) -> Vec<String> {
        self.options
            .iter()
            .filter(|(k, v)| crate::model::fence_option_is_secret(k) && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// `Debug` masks secret option values too: a config printed with `{:?}`
/// (a log line, a panic) never shows a password.
impl std::fmt::Debug for FenceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FenceTarget")
            .field("agent", &self.agent)
            .field("action", &self.action)
            .field("options", &self.shown_options())
            .field("plugs", &self.plugs)
            .finish()
    }
}

fn masked_options<S: serde::Serializer>(
    options: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(options.len()))?;
    for (k, v) in options {
        if crate::model::fence_option_is_secret(k) {
            m.serialize_entry(k, "********")?;
        } else {
            m.serialize_entry(k, v)?;
        }
    }
    m.end()
}
