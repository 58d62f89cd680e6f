#![allow(dead_code)]
//! A failover rehearsal stage: the peer ("primary") datacenter built from
//! network namespaces, the Consul API test server whose Serf view follows
//! those namespaces, the fake carbonio with accounts on the primary's
//! mailstore, and a generated `habeat.yml` for a node of the secondary DC.
//!
//! Used by the end-to-end tests (`tests/e2e_*.rs`, through `support`), the
//! README demo (`examples/demo.rs`) and the failover benchmark
//! (`benches/failover.rs`), which include this one file with `#[path]`, so
//! that what the tests prove is what the demo shows and the bench measures.
//!
//! ```text
//!  root namespace (the node under test)          "primary" DC (one netns per host)
//!  ┌───────────────────────────────┐  veth   ┌──────────────────────────────┐
//!  │ habeat run / check            │─────────│ appserver  mbox1.primary.test│
//!  │ Consul API on 127.0.0.1:<port>│─────────│ proxy      proxy1.primary... │
//!  │ fake carbonio/zmprov (wrapped)│─────────│ directory  ldap1 (real slapd)│
//!  │ hooks -> hooks.log            │─────────│ consul     consul1 server    │
//!  └───────────────────────────────┘         └──────────────────────────────┘
//! ```
//!
//! Serf is real ([`SerfModel::Real`], the default): a HashiCorp Serf agent
//! per host, in the host's namespace, and one for this node in a namespace
//! of its own (`support/serf.rs`); the Consul stand-in answers
//! `/v1/agent/members` and `serfHealth` from this node's agent at each
//! request. A cut host turns `failed` when SWIM's probes, indirect probes
//! and suspicion say so (about 5-7 s with Serf's `lan` profile), and
//! `alive` again once it is reachable and has refuted its death. A test
//! that sets member statuses itself, or needs Serf's timing exact, takes
//! [`SerfModel::Timer`]: failed a fixed delay after the link dies, alive as
//! soon as it is back. A partition cuts every host *and* takes the leader
//! away from the local Consul (its servers' majority is on the other side),
//! so every consistent write, hence the quorum gate, fails.
//!
//! Everything (namespaces, veth links, nftables rules, slapd, the Consul
//! server, daemons started through [`Testbed::spawn_daemon`], the temporary
//! directory) is removed on drop, also when a test panics.

// Some test files also load this schema through `fake_carbonio.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "../../examples/fake_carbonio/state.rs"]
pub mod fake_state;

use super::consul_api::{ConsulApi, SerfSource, member};
use super::netns::Netns;
use super::serf;
use super::slapd::Slapd;
use fake_state::{Account, Fault, Invocation, ReplicaState, State as FakeState};
use serde_json::Value;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The mailstore whose accounts are promoted.
pub const SOURCE_HOST: &str = "mbox1.primary.test";
/// This node (the replica side).
pub const REPLICA_HOST: &str = "mbox2.secondary.test";
/// The primary's proxy.
pub const PROXY_HOST: &str = "proxy1.primary.test";
/// The primary's directory server.
pub const DIRECTORY_HOST: &str = "ldap1.primary.test";
/// The primary's Consul server.
pub const CONSUL_HOST: &str = "consul1.primary.test";
/// The primary's second Consul server ([`Options::two_plus_one`]).
pub const CONSUL2_HOST: &str = "consul3.primary.test";
/// This node's own Consul server ([`Options::two_plus_one`]).
pub const LOCAL_CONSUL_HOST: &str = "consul2.secondary.test";
/// Its node id (`node-id`, raft configuration).
pub const LOCAL_CONSUL_ID: &str = "5f1a9c1e-0000-4000-8000-000000000002";
/// Its server address in the raft configuration.
pub const LOCAL_CONSUL_ADDR: &str = "127.0.0.1:8300";

/// Unix milliseconds now (wall clock, comparable with the `at` of
/// `events.jsonl` and the wrapper's call log).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Poll `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the testbed needs of the machine (a test passes it to
/// `support::require`).
pub const NEEDS: &[super::Need] = &[super::Need::Netns, super::Need::SLAPD, super::Need::SERF];

/// Where the Consul stand-in's Serf view comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerfModel {
    /// Real Serf agents, one per host of both DCs.
    Real,
    /// A host turns `failed` this long after its link goes down and
    /// `alive` as soon as it is up; statuses set by the test through
    /// [`Testbed::consul`] stay until the links change. For tests that
    /// drive Serf's view themselves.
    Timer(Duration),
}

/// The programs a rehearsal runs: the real habeat and the fake carbonio.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub habeat: PathBuf,
    pub fake_carbonio: PathBuf,
}

impl Binaries {
    /// For a benchmark: habeat at `habeat` (its `CARGO_BIN_EXE_habeat`),
    /// and the fake carbonio built first in the same profile, since `cargo
    /// bench` builds benches, not examples (run under `cargo`, which says
    /// where it is in `CARGO`).
    pub fn built_for(habeat: &Path) -> Result<Binaries, String> {
        if let Some(cargo) = std::env::var_os("CARGO") {
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "--example", "fake_carbonio"])
                .arg("--manifest-path")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
            if habeat
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "release")
            {
                cmd.arg("--release");
            }
            let st = cmd
                .status()
                .map_err(|e| format!("cannot run cargo to build the fake carbonio: {e}"))?;
            if !st.success() {
                return Err(format!("building the fake carbonio failed ({st})"));
            }
        }
        Binaries::beside(habeat)
    }

    /// habeat at `habeat`, the fake carbonio built beside it
    /// (`<target>/<profile>/examples/fake_carbonio[-hash]`, the newest).
    pub fn beside(habeat: &Path) -> Result<Binaries, String> {
        let dir = habeat
            .parent()
            .map(|d| d.join("examples"))
            .unwrap_or_default();
        let newest = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n == "fake_carbonio" || n.starts_with("fake_carbonio-")) && !n.contains('.')
            })
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let exec = m.is_file() && m.permissions().mode() & 0o111 != 0;
                exec.then(|| (m.modified().ok(), e.path()))
            })
            .max();
        let Some((_, fake)) = newest else {
            return Err(format!(
                "no fake_carbonio in {}: build it with `cargo build --example fake_carbonio` (add --release for a release build)",
                dir.display()
            ));
        };
        if !habeat.is_file() {
            return Err(format!(
                "{} does not exist: build it with `cargo build --bin habeat` (add --release for a release build)",
                habeat.display()
            ));
        }
        Ok(Binaries {
            habeat: habeat.to_owned(),
            fake_carbonio: fake,
        })
    }
}

/// This node's Consul (and Serf) node name.
pub fn local_node() -> String {
    format!("agent-{}", REPLICA_HOST.replace('.', "-"))
}

/// A host of the primary DC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Appserver,
    Proxy,
    Directory,
    ConsulServer,
    /// Only with [`Options::two_plus_one`]; not in [`Host::ALL`].
    ConsulServer2,
}

impl Host {
    /// Every host of the primary.
    pub const ALL: [Host; 4] = [
        Host::Appserver,
        Host::Proxy,
        Host::Directory,
        Host::ConsulServer,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Its hostname.
    pub fn hostname(self) -> &'static str {
        match self {
            Host::Appserver => SOURCE_HOST,
            Host::Proxy => PROXY_HOST,
            Host::Directory => DIRECTORY_HOST,
            Host::ConsulServer => CONSUL_HOST,
            Host::ConsulServer2 => CONSUL2_HOST,
        }
    }

    /// Its Consul node name, as Carbonio names nodes.
    pub fn node(self) -> String {
        let prefix = if matches!(self, Host::ConsulServer | Host::ConsulServer2) {
            "server-"
        } else {
            "agent-"
        };
        format!("{prefix}{}", self.hostname().replace('.', "-"))
    }
}

/// How the rehearsal is set up. [`Options::default`] is a fast rehearsal
/// (interval 300 ms, fall 3, real Serf) for an appserver+proxyserver node.
#[derive(Debug, Clone)]
pub struct Options {
    /// `local.roles` (ignored by the legacy layout, which has one `role`).
    pub roles: Vec<&'static str>,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    /// `detection.quorum`: `None` is `all`.
    pub quorum: Option<u32>,
    /// `witnesses.consul_members` and `consul_health`.
    pub consul_witnesses: bool,
    pub quorum_gate: bool,
    /// Real Serf agents, or the stand-in's timer.
    pub serf: SerfModel,
    /// Accounts on the primary's mailstore (names).
    pub accounts: Vec<String>,
    pub promotion_block: Duration,
    /// `safety.rearm`: `auto` or `manual`.
    pub rearm: &'static str,
    /// Write the old (Python habeat) layout: `role:`, `deativate`, no
    /// `roles`/`hooks` sections; only what cannot be expressed in it
    /// (`carbonio`, `state_dir`, `detection`, `safety`) is added.
    pub legacy_layout: bool,
    /// `promoteAccounts` takes this long in the fake.
    pub promote_delay: Option<Duration>,
    /// An LDAP probe against the directory's slapd.
    pub ldap_probe: bool,
    /// `local.flush_cache`: `zmprov fc account` per promoted account.
    pub flush_cache: bool,
    /// `local.restart_replica`: pause/restart replicas after promotion.
    pub restart_replica: bool,
    /// This node is in the DC named `primary` (it watches `secondary`,
    /// played by the namespaces), with `disable_ha_module: true`: it must
    /// never promote, only stop the HA module once.
    pub this_dc_is_primary: bool,
    /// The seeds' Consul layout: two servers in the primary (consul1,
    /// consul3), one in the secondary, this node ([`LOCAL_CONSUL_HOST`]),
    /// which gets a service-discover data directory and stand-ins for
    /// `systemctl stop/start service-discover`. After a start, the local
    /// Consul elects itself leader, as it does with a `peers.json`.
    pub two_plus_one: bool,
    /// `safety.raft_recovery` (`None`: the default).
    pub raft_recovery: Option<&'static str>,
    /// `safety.recovery_grace` (`None`: the default, 60 s).
    pub recovery_grace: Option<Duration>,
    /// `witnesses.command`: an arbiter whose vote the test sets
    /// ([`Testbed::set_arbiter`]); it starts voting Up.
    pub arbiter: bool,
    /// `fencing.consul`: the real `fence_dummy --type=file`, `action:
    /// status`, one plug per peer Consul server, their power state in
    /// [`Testbed::consul_power_file`] ([`Testbed::set_consul_power`]); on
    /// at the start.
    pub consul_fencing: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            roles: vec!["appserver", "proxyserver"],
            interval: Duration::from_millis(300),
            timeout: Duration::from_millis(250),
            fall: 3,
            rise: 2,
            quorum: None,
            consul_witnesses: true,
            quorum_gate: true,
            serf: SerfModel::Real,
            accounts: (1..=3).map(|i| format!("user{i}@example.test")).collect(),
            promotion_block: Duration::from_secs(3600),
            rearm: "auto",
            legacy_layout: false,
            promote_delay: None,
            ldap_probe: true,
            flush_cache: true,
            restart_replica: false,
            this_dc_is_primary: false,
            two_plus_one: false,
            raft_recovery: None,
            recovery_grace: None,
            arbiter: false,
            consul_fencing: false,
        }
    }
}

/// One host of the primary: its namespace and the Serf bookkeeping.
struct HostNs {
    host: Host,
    ns: Netns,
    /// Since when its link is down (None: up).
    cut_since: Mutex<Option<Instant>>,
}

struct Shared {
    hosts: Vec<HostNs>,
    api: ConsulApi,
    /// `Some` with [`SerfModel::Timer`].
    serf_delay: Option<Duration>,
    /// The real agents ([`SerfModel::Real`]); this node's is the first.
    cluster: Option<Arc<serf::Cluster>>,
    /// This node's own namespace, where its Serf agent runs.
    local_ns: Option<Netns>,
    stop: AtomicBool,
    /// The stand-in systemctl's log (`stop`/`start` lines), and how many
    /// starts have been answered with a local leader.
    service_log: PathBuf,
    starts_seen: AtomicU32,
    /// The raft configuration at the start (restored by a reset).
    initial_raft: Mutex<Vec<super::consul_api::RaftEntry>>,
}

impl Shared {
    fn host(&self, h: Host) -> &HostNs {
        &self.hosts[h.index()]
    }

    fn set_link(&self, h: Host, up: bool) {
        let hn = self.host(h);
        hn.ns.set_link(up);
        let mut cut = hn.cut_since.lock().unwrap_or_else(|p| p.into_inner());
        *cut = if up { None } else { Some(Instant::now()) };
    }

    /// service-discover started again (with a `peers.json`): this server
    /// alone in the raft configuration, and its own leader.
    fn follow_service(&self) {
        let starts = std::fs::read_to_string(&self.service_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.trim() == "start")
            .count();
        let starts = u32::try_from(starts).unwrap_or(u32::MAX);
        if starts > self.starts_seen.load(Ordering::SeqCst) {
            self.starts_seen.store(starts, Ordering::SeqCst);
            self.api
                .set_raft_servers(vec![super::consul_api::RaftEntry {
                    id: LOCAL_CONSUL_ID.into(),
                    node: format!("server-{}", LOCAL_CONSUL_HOST.replace('.', "-")),
                    address: LOCAL_CONSUL_ADDR.into(),
                    leader: true,
                    voter: true,
                }]);
            self.api.set_leader(Some(LOCAL_CONSUL_ADDR));
        }
    }

    /// Serf: failed `serf_delay` after the link went down, alive when up.
    fn follow_serf(&self, seen: &mut [i64]) {
        let Some(delay) = self.serf_delay else {
            return;
        };
        for (i, hn) in self.hosts.iter().enumerate() {
            let cut = *hn.cut_since.lock().unwrap_or_else(|p| p.into_inner());
            let want = match cut {
                None => member::ALIVE,
                Some(t) if t.elapsed() >= delay => member::FAILED,
                Some(_) => seen[i],
            };
            if want != seen[i] {
                self.api.set_member_status(&hn.host.node(), want);
                seen[i] = want;
            }
        }
    }
}

/// A link toggled down/up in a background thread until dropped.
pub struct Flapper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `habeat run` started by the testbed; killed (SIGKILL) on drop.
pub struct Daemon {
    child: Child,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Daemon {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `bound` for it to exit (SIGKILL after).
    pub fn terminate(&mut self, bound: Duration) -> Option<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + bound;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One call of the wrapped carbonio/zmprov, from `calls.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Unix milliseconds when the wrapper started.
    pub at: u64,
    /// `carbonio` or `zmprov`.
    pub program: String,
    /// Its arguments, space-joined.
    pub args: String,
}

/// The rehearsal stage. See the module documentation.
pub struct Testbed {
    pub opts: Options,
    pub bins: Binaries,
    shared: Arc<Shared>,
    slapd: Option<Slapd>,
    rt: Option<tokio::runtime::Runtime>,
    serf: Option<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
    /// The generated habeat.yml.
    pub config: PathBuf,
    /// `local.state_dir`.
    pub state_dir: PathBuf,
    /// The directory holding the lock files.
    pub lock_dir: PathBuf,
    /// Where hooks and proxy-switch commands append one line each.
    pub hook_log: PathBuf,
    /// Where the carbonio/zmprov wrappers log each call with its time.
    pub call_log: PathBuf,
    /// The fake carbonio's state file.
    pub fake_state: PathBuf,
    /// The arbiter's vote: `0` Up, `1` Down ([`Options::arbiter`]).
    pub arbiter_file: PathBuf,
    /// `consul.service_discover_data` ([`Options::two_plus_one`]).
    pub sd_data: PathBuf,
    /// One line per stand-in systemctl call: `stop` or `start`.
    pub service_log: PathBuf,
    /// fence_dummy's state file for the peer Consul servers: `on` or `off`.
    pub consul_power_file: PathBuf,
    daemons: AtomicU32,
}

impl Testbed {
    /// Build the stage (namespaces, slapd, Consul API, fake carbonio,
    /// habeat.yml). Panics with the failing step on error: it is test set-up.
    pub fn start(opts: Options, bins: Binaries) -> Testbed {
        let dir = tempfile::Builder::new()
            .prefix("habeat-e2e-")
            .tempdir()
            .expect("create a temporary directory for the testbed");
        let present: Vec<Host> = Host::ALL
            .iter()
            .copied()
            .chain(opts.two_plus_one.then_some(Host::ConsulServer2))
            .collect();
        let hosts: Vec<HostNs> = present
            .iter()
            .map(|h| HostNs {
                host: *h,
                ns: Netns::create(),
                cut_since: Mutex::new(None),
            })
            .collect();
        let dir_ns = &hosts[Host::Directory.index()].ns;
        let slapd = Slapd::start_at(SocketAddr::new(dir_ns.ip(), 389), &dir_ns.exec_prefix());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the Consul API test server");
        let consul_ip = hosts[Host::ConsulServer.index()].ns.addr;
        let mut builder = ConsulApi::builder()
            .leader(Some(&format!("{consul_ip}:8300")))
            .raft_server(
                "5f1a9c1e-0000-4000-8000-000000000001",
                &Host::ConsulServer.node(),
                &format!("{consul_ip}:8300"),
                true,
            )
            .node(&local_node(), "127.0.0.1", member::ALIVE);
        if opts.two_plus_one {
            let ip2 = hosts[Host::ConsulServer2.index()].ns.addr;
            builder = builder
                .raft_server(
                    "5f1a9c1e-0000-4000-8000-000000000003",
                    &Host::ConsulServer2.node(),
                    &format!("{ip2}:8300"),
                    false,
                )
                .raft_server(
                    LOCAL_CONSUL_ID,
                    &format!("server-{}", LOCAL_CONSUL_HOST.replace('.', "-")),
                    LOCAL_CONSUL_ADDR,
                    false,
                );
        }
        for hn in &hosts {
            builder = builder.node(&hn.host.node(), &hn.ns.addr.to_string(), member::ALIVE);
        }
        let api = rt.block_on(builder.start());
        let (cluster, local_ns) = match opts.serf {
            SerfModel::Timer(_) => (None, None),
            SerfModel::Real => {
                let local_ns = Netns::create();
                let mut specs = vec![serf::Spec {
                    ns: &local_ns,
                    node: local_node(),
                    tags: vec![("role", "node".into()), ("dc", "secondary".into())],
                }];
                for hn in &hosts {
                    let role = if hn.host.node().starts_with("server-") {
                        "consul"
                    } else {
                        "node"
                    };
                    specs.push(serf::Spec {
                        ns: &hn.ns,
                        node: hn.host.node(),
                        tags: vec![("role", role.into()), ("dc", "primary".into())],
                    });
                }
                let cluster = Arc::new(serf::Cluster::start(&specs, dir.path()));
                let c = cluster.clone();
                api.follow_serf(SerfSource(Arc::new(move || c.members())));
                (Some(cluster), Some(local_ns))
            }
        };
        let initial_raft = api.raft_servers();
        let service_log = dir.path().join("service-discover.log");
        let shared = Arc::new(Shared {
            hosts,
            api,
            serf_delay: match opts.serf {
                SerfModel::Timer(d) => Some(d),
                SerfModel::Real => None,
            },
            cluster,
            local_ns,
            stop: AtomicBool::new(false),
            service_log: service_log.clone(),
            starts_seen: AtomicU32::new(0),
            initial_raft: Mutex::new(initial_raft),
        });
        let s = shared.clone();
        let serf = rt.spawn(async move {
            let mut seen = vec![member::ALIVE; s.hosts.len()];
            while !s.stop.load(Ordering::SeqCst) {
                s.follow_serf(&mut seen);
                s.follow_service();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });

        let d = dir.path();
        let state_dir = d.join("state");
        let lock_dir = d.join("locks");
        let bin = d.join("bin");
        let fake_dir = d.join("fake");
        for p in [&state_dir, &lock_dir, &bin, &fake_dir] {
            std::fs::create_dir_all(p).expect("create a testbed directory");
        }
        let fake_state = d.join("fake-state.json");
        let call_log = d.join("calls.log");
        let hook_log = d.join("hooks.log");
        let mut st = FakeState {
            accounts: opts
                .accounts
                .iter()
                .map(|a| Account {
                    id: format!("id-{a}"),
                    name: a.clone(),
                    mail_host: SOURCE_HOST.into(),
                    replicas: vec![ReplicaState::on(REPLICA_HOST)],
                    ..Account::default()
                })
                .collect(),
            ..FakeState::default()
        };
        if let Some(delay) = opts.promote_delay {
            st.faults.insert(
                "promoteAccounts".into(),
                Fault::Slow {
                    seconds: delay.as_secs_f64(),
                },
            );
        }
        std::fs::write(
            &fake_state,
            serde_json::to_string_pretty(&st).expect("serialise the fake's state"),
        )
        .expect("write the fake's state");
        // habeat starts the CLIs with a clean environment, so the fake's
        // state file is named by a wrapper, which also logs the call time.
        for prog in ["carbonio", "zmprov"] {
            std::os::unix::fs::symlink(&bins.fake_carbonio, fake_dir.join(prog))
                .expect("symlink the fake carbonio");
            let script = format!(
                "#!/bin/sh\necho \"$(date +%s%3N) {prog} $*\" >> {log}\nFAKE_CARBONIO_STATE={state} exec {fake} \"$@\"\n",
                log = call_log.display(),
                state = fake_state.display(),
                fake = fake_dir.join(prog).display(),
            );
            let p = bin.join(prog);
            std::fs::write(&p, script).expect("write the carbonio wrapper");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .expect("make the wrapper executable");
        }
        // The arbiter and the systemctl stand-in use shell built-ins only:
        // habeat starts them with an empty environment.
        let arbiter_file = d.join("arbiter-vote");
        std::fs::write(&arbiter_file, "0\n").expect("write the arbiter's vote");
        let script = |name: &str, body: String| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}")).expect("write a test script");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .expect("make a test script executable");
        };
        script(
            "arbiter",
            format!("read v < {}\nexit \"$v\"\n", arbiter_file.display()),
        );
        script(
            "service-discover-ctl",
            format!("echo \"$1\" >> {}\n", service_log.display()),
        );
        let consul_power_file = d.join("consul-power");
        std::fs::write(&consul_power_file, "on").expect("write the fence state");
        let sd_data = d.join("sd-data");
        std::fs::create_dir_all(sd_data.join("raft")).expect("create the raft directory");
        std::fs::write(sd_data.join("node-id"), LOCAL_CONSUL_ID).expect("write node-id");
        let config = d.join("habeat.yml");
        let mut tb = Testbed {
            opts,
            bins,
            shared,
            slapd: Some(slapd),
            rt: Some(rt),
            serf: Some(serf),
            config,
            state_dir,
            lock_dir,
            hook_log,
            call_log,
            fake_state,
            arbiter_file,
            sd_data,
            service_log,
            consul_power_file,
            dir,
            daemons: AtomicU32::new(0),
        };
        tb.write_config();
        tb
    }

    /// Every host of this stage's primary.
    pub fn hosts(&self) -> Vec<Host> {
        self.shared.hosts.iter().map(|h| h.host).collect()
    }

    /// The arbiter (`witnesses.command`) votes Up (`true`) or Down for
    /// every component of the primary from its next run on.
    pub fn set_arbiter(&self, up: bool) {
        std::fs::write(&self.arbiter_file, if up { "0\n" } else { "1\n" })
            .expect("write the arbiter's vote");
    }

    /// The peer Consul servers' power, as `fence_dummy` reports it.
    pub fn set_consul_power(&self, on: bool) {
        std::fs::write(&self.consul_power_file, if on { "on" } else { "off" })
            .expect("write the fence state");
    }

    /// The stand-in systemctl's calls (`stop`, `start`), in order.
    pub fn service_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.service_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `raft/peers.json` as raft recovery wrote it, if it did.
    pub fn peers_json(&self) -> Option<Value> {
        let t = std::fs::read_to_string(self.sd_data.join("raft/peers.json")).ok()?;
        serde_json::from_str(&t).ok()
    }

    /// The Consul API test server (to inject faults or read locks).
    pub fn consul(&self) -> &ConsulApi {
        &self.shared.api
    }

    /// A host's address.
    pub fn ip(&self, h: Host) -> IpAddr {
        self.shared.host(h).ns.ip()
    }

    fn write_config(&mut self) {
        let o = &self.opts;
        let d = self.dir.path();
        let ip = |h: Host| self.shared.host(h).ns.addr.to_string();
        let hook = |what: &str| format!("echo {what} >> {}", self.hook_log.display());
        let quorum = o.quorum.map_or("all".to_owned(), |q| q.to_string());
        let ms = |x: Duration| format!("{}ms", x.as_millis());
        let addr = self.shared.api.addr();
        let probes = if o.ldap_probe {
            "probes:\n  directory: [ { ldap: 389 } ]\n"
        } else {
            ""
        };
        let common_tail = format!(
            "detection:\n  interval: {interval}\n  timeout: {timeout}\n  fall: {fall}\n  rise: {rise}\n  quorum: {quorum}\n\
             {probes}\
             witnesses:\n  consul_members: {cw}\n  consul_health: {cw}\n{arbiter}\
             carbonio:\n  cli: {bin}/carbonio\n  zmprov: {bin}/zmprov\n  run_as: \"\"\n  command_timeout: 20s\n  promote_timeout: 60s\n\
             safety:\n  quorum_gate: {gate}\n  promotion_block: {block}\n  rearm: {rearm}\n{raft}",
            arbiter = if o.arbiter {
                format!("  command: [{}/arbiter]\n", d.join("bin").display())
            } else {
                String::new()
            },
            raft = o
                .raft_recovery
                .map(|r| format!("  raft_recovery: {r}\n"))
                .unwrap_or_default()
                + &o.recovery_grace
                    .map(|g| format!("  recovery_grace: {}\n", ms(g)))
                    .unwrap_or_default(),
            interval = ms(o.interval),
            timeout = ms(o.timeout),
            fall = o.fall,
            rise = o.rise,
            cw = o.consul_witnesses,
            bin = d.join("bin").display(),
            gate = o.quorum_gate,
            block = ms(o.promotion_block),
            rearm = o.rearm,
        );
        let (me, peer) = if o.this_dc_is_primary {
            ("primary", "secondary")
        } else {
            ("secondary", "primary")
        };
        let (consul2_ip, consul2_name, own_consul, consul_local) = if o.two_plus_one {
            (
                format!("  - {}\n", ip(Host::ConsulServer2)),
                format!("  - {CONSUL2_HOST}\n"),
                format!(
                    "  consul_ips:\n  - 127.0.0.1\n  consul_vmnames:\n  - {LOCAL_CONSUL_HOST}\n"
                ),
                format!(
                    "  service_discover_data: {sd}\n  service_stop: [{ctl}, stop]\n  service_start: [{ctl}, start]\n  service_discover_user: root\n",
                    sd = self.sd_data.display(),
                    ctl = d.join("bin/service-discover-ctl").display(),
                ),
            )
        } else {
            Default::default()
        };
        let primary = format!(
            "{peer}:\n  proxy_ip: {proxy}\n  appserver_ip: {app}\n  directorysrv_ip: {dir}\n  consul_ips:\n  - {consul}\n{consul2_ip}  consul_vmnames:\n  - {CONSUL_HOST}\n{consul2_name}  appserver_vmname: {SOURCE_HOST}\n  proxyserver_vmname: {PROXY_HOST}\n",
            proxy = ip(Host::Proxy),
            app = ip(Host::Appserver),
            dir = ip(Host::Directory),
            consul = ip(Host::ConsulServer),
        );
        let locks = format!(
            "  checkDownFile: {l}/appserverdown-habeat\n  checkPromotionFile: {l}/appserverprom-habeat\n  checkRestartReplicaFile: {l}/appserverrstopha\n",
            l = self.lock_dir.display()
        );
        let text = if o.legacy_layout {
            // The Python habeat's layout, key for key (config/legacy-habeat.yml).
            format!(
                "local:\n  whoami: \"{me}\"\n  dc_check: \"{peer}\"\n  role: \"appserver\"\n{locks}  provider: consul\n  threads: 5\n  proxy_switch: \"bgp\"\n  proxy_enable_activate: true\n  proxy_enable_deactivate: true\n  disable_ha_module: {ha}\n  flush_cache: {fc}\n  flush_arguments_a: false\n  restart_replica: {rr}\n  state_dir: {state}\n\
                 {primary}\
                 {me}:\n  appserver_vmname: {REPLICA_HOST}\n  proxy_switch:\n    bgp:\n      activate:\n        - {act}\n      deativate:\n        - {deact}\n\
                 consul:\n  hostname: {host}\n  port: {port}\n  token:\n\
                 {common_tail}",
                fc = o.flush_cache,
                rr = o.restart_replica,
                ha = o.this_dc_is_primary,
                state = self.state_dir.display(),
                act = hook("proxy_activate"),
                deact = hook("proxy_deactivate"),
                host = addr.ip(),
                port = addr.port(),
            )
        } else {
            format!(
                "local:\n  whoami: {me}\n  dc_check: {peer}\n  roles: [{roles}]\n{locks}  threads: 5\n  proxy_switch: bgp\n  proxy_enable_activate: true\n  proxy_enable_deactivate: true\n  disable_ha_module: {ha}\n  flush_cache: {fc}\n  restart_replica: {rr}\n  state_dir: {state}\n\
                 {primary}\
                 {me}:\n  appserver_vmname: {REPLICA_HOST}\n{own_consul}  proxy_switch:\n    bgp:\n      activate:\n        - {act}\n      deactivate:\n        - {deact}\n\
                 consul:\n  hostname: {host}\n  port: {port}\n{consul_local}\
                 {common_tail}\
                 hooks:\n  timeout: 10s\n  after_promotion:\n    - {after}\n  on_peer_recovered:\n    - {recovered}\n{fencing}",
                fencing = if o.consul_fencing {
                    format!(
                        "fencing:\n  timeout: 20s\n  consul:\n    agent: /usr/sbin/fence_dummy\n    action: status\n    options: {{ type: file, status_file: {} }}\n    plugs: [consul1, consul3]\n",
                        self.consul_power_file.display()
                    )
                } else {
                    String::new()
                },
                roles = o.roles.join(", "),
                fc = o.flush_cache,
                rr = o.restart_replica,
                ha = o.this_dc_is_primary,
                state = self.state_dir.display(),
                act = hook("proxy_activate"),
                deact = hook("proxy_deactivate"),
                host = addr.ip(),
                port = addr.port(),
                after = hook("after_promotion"),
                recovered = hook("on_peer_recovered"),
            )
        };
        std::fs::write(&self.config, text).expect("write habeat.yml");
    }

    /// Rewrite habeat.yml from changed options (e.g. a shorter interval).
    pub fn reconfigure(&mut self, f: impl FnOnce(&mut Options)) {
        f(&mut self.opts);
        self.write_config();
    }

    /// `habeat --config <ours> <args>`, ready to run.
    pub fn habeat(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bins.habeat);
        c.arg("--config").arg(&self.config).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run `habeat <args>` to completion: (exit code, stdout, stderr).
    /// Killed after `bound` (a hang is a failure the caller sees as `None`).
    pub fn run_habeat(&self, args: &[&str], bound: Duration) -> (Option<i32>, String, String) {
        let n = self.daemons.fetch_add(1, Ordering::SeqCst);
        let out_p = self.dir.path().join(format!("cmd-{n}.out"));
        let err_p = self.dir.path().join(format!("cmd-{n}.err"));
        let mut cmd = self.habeat(args);
        let (Ok(out), Ok(err)) = (std::fs::File::create(&out_p), std::fs::File::create(&err_p))
        else {
            panic!(
                "cannot create output files in {}",
                self.dir.path().display()
            );
        };
        cmd.stdout(out).stderr(err);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bins.habeat.display()));
        let until = Instant::now() + bound;
        let code = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st.code();
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (code, read(&out_p), read(&err_p))
    }

    /// Start `habeat run` in the background, stderr to a log file.
    pub fn spawn_daemon(&self) -> Daemon {
        let n = self.daemons.fetch_add(1, Ordering::SeqCst);
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let f = std::fs::File::create(&log).expect("create the daemon's log file");
        let child = self
            .habeat(&["run"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bins.habeat.display()));
        Daemon { child, log }
    }

    /// Cut a host off (its link down: no carrier, packets vanish). Returns
    /// the wall-clock time (Unix ms) at which the link was down.
    pub fn kill_host(&self, h: Host) -> u64 {
        self.shared.set_link(h, false);
        now_ms()
    }

    /// Bring a host back (link up; Serf sees it alive once it has refuted
    /// its death, at once with [`SerfModel::Timer`]).
    pub fn restore_host(&self, h: Host) {
        self.shared.set_link(h, true);
    }

    /// The inter-DC link goes down while the primary lives: every primary
    /// host unreachable, and this side's Consul loses its leader (the
    /// primary keeps the majority of the servers).
    pub fn partition(&self) {
        for h in self.hosts() {
            self.shared.set_link(h, false);
        }
        self.shared.api.set_leader(None);
    }

    /// What the local Consul agent answers at `/v1/status/leader` (`None`:
    /// no leader), e.g. a third site's server keeping this side's quorum
    /// through a partition.
    pub fn set_local_leader(&self, addr: Option<&str>) {
        self.shared.api.set_leader(addr);
    }

    /// End a partition: links up, leader back.
    pub fn heal(&self) {
        let consul_ip = self.shared.host(Host::ConsulServer).ns.addr;
        for h in self.hosts() {
            self.shared.set_link(h, true);
        }
        self.shared
            .api
            .set_leader(Some(&format!("{consul_ip}:8300")));
    }

    /// Drop `percent`% of the packets entering a host (nftables random
    /// drop). Serf, with its indirect probes, keeps the host alive.
    pub fn packet_loss(&self, h: Host, percent: u8) {
        self.shared.host(h).ns.drop_incoming(percent);
    }

    /// Remove the packet loss of a host.
    pub fn clear_loss(&self, h: Host) {
        self.shared.host(h).ns.clear_drops();
    }

    /// Toggle a host's link: `down` for this long, `up` for that long,
    /// until the returned [`Flapper`] is dropped (the link ends up).
    pub fn flap(&self, h: Host, down: Duration, up: Duration) -> Flapper {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let shared = self.shared.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                shared.set_link(h, false);
                std::thread::sleep(down);
                shared.set_link(h, true);
                std::thread::sleep(up);
            }
        });
        Flapper {
            stop,
            thread: Some(thread),
        }
    }

    /// The status (`member::*`) of a host's node in Serf's view as the
    /// Consul stand-in answers it; `None` when not listed or not asked.
    pub fn serf_status(&self, h: Host) -> Option<i64> {
        let node = h.node();
        match &self.shared.cluster {
            Some(c) => c
                .members()
                .ok()?
                .into_iter()
                .find(|m| m.name == node)
                .map(|m| m.status),
            None => self.shared.api.member_status(&node),
        }
    }

    /// Wait (up to `bound`) until Serf lists `h` with `status`.
    pub fn wait_serf(&self, h: Host, status: i64, bound: Duration) -> bool {
        wait_until(bound, || self.serf_status(h) == Some(status))
    }

    /// When (Unix ms) this node's Serf agent marked `h` failed, at or after
    /// `since`; `None` with [`SerfModel::Timer`] or before it happens.
    pub fn serf_failed_at(&self, h: Host, since: u64) -> Option<u64> {
        self.shared.cluster.as_ref()?.failed_at(&h.node(), since)
    }

    /// The Serf agents' logs (empty with [`SerfModel::Timer`]).
    pub fn serf_logs(&self) -> String {
        self.shared
            .cluster
            .as_ref()
            .map(|c| c.logs())
            .unwrap_or_default()
    }

    /// The local Consul agent stops answering (every request hung up).
    pub fn consul_down(&self) {
        self.shared
            .api
            .set_fault(Some(super::consul_api::Fault::Hangup));
    }

    /// The local Consul agent answers again.
    pub fn consul_up(&self) {
        self.shared.api.set_fault(None);
    }

    /// `events.jsonl`, one JSON value per complete line.
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state_dir.join("events.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Events whose `event` is `kind`.
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// `state.json`, if present and readable.
    pub fn state_json(&self) -> Option<Value> {
        let t = std::fs::read_to_string(self.state_dir.join("state.json")).ok()?;
        serde_json::from_str(&t).ok()
    }

    /// Whether `state.json` holds the appserver verdict Up.
    pub fn appserver_up(&self) -> bool {
        self.state_json()
            .and_then(|s| {
                s["components"]["appserver"]["verdict"]
                    .as_str()
                    .map(str::to_owned)
            })
            .is_some_and(|v| v.eq_ignore_ascii_case("up"))
    }

    /// When (Unix ms, from `events.jsonl`) the appserver verdict turned
    /// Down, the first time at or after about `t0` (a second's slack for
    /// the two clocks of a cut).
    pub fn appserver_down_at(&self, t0: u64) -> Option<u64> {
        self.events()
            .iter()
            .filter(|e| {
                e["event"] == "verdict_changed"
                    && e["component"] == "appserver"
                    && e["to"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case("down"))
            })
            .filter_map(|e| e["at"].as_u64())
            .find(|at| *at + 1000 >= t0)
    }

    /// Change the fake carbonio's state (under its lock), e.g. to move
    /// accounts back as an operator's fail-back would.
    pub fn fake_update(&self, f: impl FnOnce(&mut FakeState)) {
        let Ok(mut file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.fake_state)
        else {
            panic!("cannot open {}", self.fake_state.display());
        };
        file.lock().expect("lock the fake's state");
        let mut s = String::new();
        file.read_to_string(&mut s).expect("read the fake's state");
        let mut st: FakeState = serde_json::from_str(&s).expect("parse the fake's state");
        f(&mut st);
        let out = serde_json::to_string_pretty(&st).expect("serialise the fake's state");
        use std::io::{Seek, Write};
        file.set_len(0).expect("truncate the fake's state");
        file.rewind().expect("rewind the fake's state");
        file.write_all(out.as_bytes())
            .expect("write the fake's state");
    }

    /// Start over on the same stage (for repeated measurements: a process
    /// may create only so many namespaces): every host back, Consul
    /// healthy, no state, journal, lock file, hook or call log, and the
    /// accounts back on the primary's mailstore. Stop daemons first.
    pub fn reset(&self) {
        self.heal();
        self.consul_up();
        for h in self.hosts() {
            self.clear_loss(h);
        }
        let _ = std::fs::remove_file(&self.service_log);
        let _ = std::fs::remove_file(self.sd_data.join("raft/peers.json"));
        self.shared.starts_seen.store(0, Ordering::SeqCst);
        let raft = self
            .shared
            .initial_raft
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.shared.api.set_raft_servers(raft);
        self.set_arbiter(true);
        self.set_consul_power(true);
        for dir in [&self.state_dir, &self.lock_dir] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_file(&self.hook_log);
        let _ = std::fs::remove_file(&self.call_log);
        if let Some(c) = &self.shared.cluster {
            let nodes: Vec<String> = self.hosts().iter().map(|h| h.node()).collect();
            assert!(
                c.wait_alive(&nodes, Duration::from_secs(60)),
                "Serf did not see every host alive again within 60s of the reset\n{}",
                c.logs()
            );
        }
        self.fake_update(|s| {
            for a in &mut s.accounts {
                a.mail_host = SOURCE_HOST.into();
            }
            s.invocations.clear();
            s.module_running = true;
        });
    }

    /// The wrapped CLI calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let text = std::fs::read_to_string(&self.call_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (at, rest) = l.split_once(' ')?;
                let (program, args) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Call {
                    at: at.parse().ok()?,
                    program: program.into(),
                    args: args.into(),
                })
            })
            .collect()
    }

    /// The `promoteAccounts` calls so far.
    pub fn promote_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.args.contains("promoteAccounts"))
            .collect()
    }

    /// The fake carbonio's state (a shared lock while reading, so a
    /// running fake never shows a half-written file).
    pub fn fake(&self) -> FakeState {
        let read = || -> Option<FakeState> {
            let mut f = std::fs::File::open(&self.fake_state).ok()?;
            f.lock_shared().ok()?;
            let mut s = String::new();
            f.read_to_string(&mut s).ok()?;
            serde_json::from_str(&s).ok()
        };
        for _ in 0..50 {
            if let Some(s) = read() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "cannot read the fake carbonio's state {}",
            self.fake_state.display()
        );
    }

    /// Every invocation of the fake, in order.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.fake().invocations
    }

    /// What the promotions so far lost, per account (the fake's record).
    pub fn losses(&self) -> Vec<fake_state::Loss> {
        self.fake().losses
    }

    /// Accounts now on `host`, sorted.
    pub fn accounts_on(&self, host: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .fake()
            .accounts
            .into_iter()
            .filter(|a| a.mail_host == host)
            .map(|a| a.name)
            .collect();
        v.sort();
        v
    }

    /// The lines the hooks and proxy-switch commands appended, in order.
    pub fn hook_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.hook_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lock files present (file names), sorted.
    pub fn lock_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.lock_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    /// The testbed's scratch directory (logs of every command run).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything worth reading when a rehearsal fails: the daemon logs,
    /// the journal, the calls, the hooks.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "log" || e == "err" || e == "out")
            })
            .collect();
        names.sort();
        names.push(self.state_dir.join("events.jsonl"));
        for p in names {
            let t = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: String = t
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            out.push_str(&format!("==== {} ====\n{tail}\n", p.display()));
        }
        out
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.serf.take() {
            t.abort();
        }
        self.slapd.take();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        // The namespaces go with `shared` (Netns::drop) once the last
        // flapper thread has let go of it.
    }
}
