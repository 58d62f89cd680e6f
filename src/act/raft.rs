//! Consul raft recovery for the consulserver role (docs/decisions.md §2): when the peer
//! DC's Consul servers are gone for good and this side has no leader,
//! Consul's documented "outage recovery" is the way back: stop the server,
//! write `raft/peers.json` listing the servers that survive, start it, and
//! wait for a leader.
//!
//! These are the building blocks; *when* to recover (every peer server
//! Down, no leader for `recovery_grace`, the command witness agreeing) is
//! the engine's decision, not this module's.
//!
//! `peers.json` follows raft protocol version 3, which Consul has used
//! since 1.0: `[{"id": "<node-id>", "address": "<ip>:<port>",
//! "non_voter": false}]`, `non_voter` a boolean (the old habeat wrote the
//! string `"false"`, which Consul rejects).

use super::process::{self, Spec, Status};
use crate::config;
use crate::model::RaftServer;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The user Carbonio's service-discover (Consul) runs as.
pub const DEFAULT_OWNER: &str = "service-discover";

/// How long each `systemctl` call may take.
pub const SERVICE_TIMEOUT: Duration = Duration::from_secs(90);

/// One entry of `peers.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// The server's node id (`node-id` file, raft configuration `ID`).
    pub id: String,
    /// Its server RPC address, `ip:port` (port 8300 by default).
    pub address: String,
    /// Always false: every surviving server must vote.
    pub non_voter: bool,
}

impl PeerEntry {
    /// A voting member (the only kind recovery writes).
    pub fn voter(id: impl Into<String>, address: impl Into<String>) -> PeerEntry {
        PeerEntry {
            id: id.into(),
            address: address.into(),
            non_voter: false,
        }
    }
}

/// Why raft recovery could not be done or confirmed.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// An empty survivor list (Consul would refuse it).
    #[error("raft recovery needs at least one surviving Consul server, and none was given")]
    NoPeers,
    /// A peer with a bad id or address, or listed twice.
    #[error("raft peer {id:?} ({address}): {reason}")]
    BadPeer {
        id: String,
        address: String,
        reason: String,
    },
    /// The `node-id` file is unreadable or holds no id.
    #[error("{path}: {reason}")]
    NodeId { path: PathBuf, reason: String },
    /// The owner of `peers.json` does not exist.
    #[error(
        "user {0:?} (owner of peers.json) does not exist on this node: is service-discover installed here?"
    )]
    NoSuchOwner(String),
    /// The user database could not be read.
    #[error("cannot look up user {0:?}: {1}")]
    OwnerLookup(String, String),
    /// `<data>/raft` is missing: the data directory is wrong.
    #[error(
        "{0} does not exist: consul.service_discover_data must be the Consul data directory (it holds raft/)"
    )]
    NoRaftDir(PathBuf),
    /// Writing, owning or renaming the file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `systemctl stop` or `start` failed or ran over its timeout.
    #[error("{step} failed: {reason}. Output: {tail:?}")]
    Service {
        step: String,
        reason: String,
        tail: String,
    },
    /// `systemctl stop` failed or ran over its timeout. Nothing was
    /// written, and the service was started (again) anyway: a failed or
    /// killed stop may have left it stopped or half-stopped.
    #[error(
        "stopping service-discover failed ({stop}); peers.json was not written, and service-discover was started again so that Consul is not left down{restart}"
    )]
    StopFailed {
        stop: Box<RaftError>,
        restart: String,
    },
    /// The write failed once the service was stopped (it was started again).
    #[error(
        "writing peers.json failed after service-discover was stopped ({write}); it was started again without it{restart}"
    )]
    WriteAfterStop {
        write: Box<RaftError>,
        restart: String,
    },
    /// No leader by `leader_deadline`.
    #[error(
        "service-discover restarted with peers.json, but no raft leader appeared within {after} (last check: {last}); look at `journalctl -u service-discover`"
    )]
    NoLeader { after: String, last: String },
}

/// The servers to list in `peers.json`: those of the last healthy raft
/// configuration whose node belongs to one of `own_hostnames` (this DC's
/// `consul_vmnames`). Carbonio names a server node `server-` + hostname
/// with `.` → `-`; the match strips the prefix and compares whole names.
pub fn survivors(last: &[RaftServer], own_hostnames: &[String]) -> Vec<PeerEntry> {
    last.iter()
        .filter(|s| own_hostnames.iter().any(|h| node_is_host(&s.node, h)))
        .map(|s| PeerEntry::voter(s.id.clone(), s.address.clone()))
        .collect()
}

/// Whether a Consul node name stands for a hostname
/// (`server-mbox1-example-com` for `mbox1.example.com`).
pub fn node_is_host(node: &str, hostname: &str) -> bool {
    let bare = node
        .strip_prefix("server-")
        .or_else(|| node.strip_prefix("agent-"))
        .unwrap_or(node);
    let want = hostname.replace('.', "-");
    bare.eq_ignore_ascii_case(&want) || node.eq_ignore_ascii_case(hostname)
}

/// This server's node id from `<data>/node-id`: the fallback when habeat
/// never saw a healthy raft configuration.
pub fn read_node_id(data_dir: &Path) -> Result<String, RaftError> {
    let path = data_dir.join("node-id");
    let err = |reason: String| RaftError::NodeId {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let id = text.trim();
    check_id(id).map_err(|r| err(format!("it does not hold a node id: {r}")))?;
    Ok(id.to_owned())
}

/// The IP addresses assigned to this node's network interfaces.
///
/// This is how the recovery fallback finds which of this DC's
/// `consul_ips` is this very server. Asking the kernel for the addresses it
/// has assigned is exact. The alternatives are not: matching the hostname
/// to the position in `consul_vmnames` relies on two independent lists
/// being in the same order and on the hostname being spelled as in the
/// config (short name or FQDN), and binding a socket to each address also
/// succeeds for addresses that are not local when
/// `net.ipv4.ip_nonlocal_bind` is set (common on hosts that carry a
/// keepalived VIP).
pub fn local_addresses() -> Result<Vec<IpAddr>, String> {
    let addrs = nix::ifaddrs::getifaddrs()
        .map_err(|e| format!("cannot list this node's network addresses: {e}"))?;
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// This server's own address, for `peers.json` when no raft configuration
/// was recorded while healthy (the local server alone, from `node-id`).
///
/// `servers` are this DC's `consul_ips` (`dc` names it), each with the
/// addresses it stands for (itself for an IP, what it resolved to for a
/// hostname); `local` are this node's addresses ([`local_addresses`]).
/// Refused with the reason when:
/// - the DC lists no Consul server;
/// - it lists more than one: each surviving server would write a
///   `peers.json` holding only itself and the survivors would split into
///   separate one-server clusters (recover those by hand, with every
///   survivor's node id);
/// - the one listed is not an address of this node (so not this server).
pub fn own_server_address(
    dc: &str,
    servers: &[(String, Vec<IpAddr>)],
    local: &[IpAddr],
) -> Result<IpAddr, String> {
    let none = "no raft configuration was recorded while this side had a leader";
    let own = |addrs: &[IpAddr]| addrs.iter().copied().find(|a| local.contains(a));
    match servers {
        [] => Err(format!("{none}, and {dc}.consul_ips is empty")),
        [(name, addrs)] => own(addrs).ok_or_else(|| {
            format!(
                "{none}, and {dc}.consul_ips lists {name}, which is not an address of this node \
                 ({}): cannot tell this server's address for peers.json",
                if local.is_empty() {
                    "it has none".to_owned()
                } else {
                    format!(
                        "its addresses: {}",
                        local
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )
        }),
        many => Err(format!(
            "{none}, and {dc}.consul_ips lists {} Consul servers ({}): a peers.json with this \
             server alone would split the survivors into separate clusters; recover by hand \
             (Consul outage recovery) with the node id of every surviving server",
            many.len(),
            many.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Consul node ids are UUIDs; accept hex digits and hyphens.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("it is empty".into());
    }
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(format!("{id:?} is not a UUID"));
    }
    Ok(())
}

/// Render `peers.json` (pretty, with a final newline), validating every
/// entry: a UUID-like id, an `ip:port` address, no duplicates.
pub fn render_peers_json(peers: &[PeerEntry]) -> Result<String, RaftError> {
    if peers.is_empty() {
        return Err(RaftError::NoPeers);
    }
    for (i, p) in peers.iter().enumerate() {
        let bad = |reason: String| RaftError::BadPeer {
            id: p.id.clone(),
            address: p.address.clone(),
            reason,
        };
        check_id(&p.id).map_err(|r| bad(format!("bad id: {r}")))?;
        if p.address.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "the address must be ip:port (the server RPC address, port 8300 by default)".into(),
            ));
        }
        if peers[..i]
            .iter()
            .any(|q| q.id == p.id || q.address == p.address)
        {
            return Err(bad("listed twice".into()));
        }
    }
    let mut s = serde_json::to_string_pretty(peers).map_err(|e| RaftError::BadPeer {
        id: String::new(),
        address: String::new(),
        reason: e.to_string(),
    })?;
    s.push('\n');
    Ok(s)
}

/// Write `<data_dir>/raft/peers.json` atomically (temporary file, fsync,
/// rename, fsync of the directory), owned by `owner` and its group, mode
/// 0644. Returns the path written.
pub fn write_peers_json(
    data_dir: &Path,
    peers: &[PeerEntry],
    owner: &str,
) -> Result<PathBuf, RaftError> {
    PeersFile::prepare(data_dir, peers, owner)?.write()
}

/// Everything that can be checked before service-discover is stopped:
/// valid peers, the owner exists, the raft directory is there.
struct PeersFile {
    body: String,
    uid: u32,
    gid: u32,
    dir: PathBuf,
}

impl PeersFile {
    fn prepare(data_dir: &Path, peers: &[PeerEntry], owner: &str) -> Result<PeersFile, RaftError> {
        let body = render_peers_json(peers)?;
        let user = match nix::unistd::User::from_name(owner) {
            Ok(Some(u)) => u,
            Ok(None) => return Err(RaftError::NoSuchOwner(owner.to_owned())),
            Err(e) => return Err(RaftError::OwnerLookup(owner.to_owned(), e.to_string())),
        };
        let dir = data_dir.join("raft");
        if !dir.is_dir() {
            return Err(RaftError::NoRaftDir(dir));
        }
        Ok(PeersFile {
            body,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            dir,
        })
    }

    fn write(&self) -> Result<PathBuf, RaftError> {
        let path = self.dir.join("peers.json");
        let tmp = self
            .dir
            .join(format!(".peers.json.habeat-{}", std::process::id()));
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| RaftError::Io { path: p, source }
        };
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(self.body.as_bytes()).map_err(io(&tmp))?;
            std::os::unix::fs::fchown(&f, Some(self.uid), Some(self.gid)).map_err(io(&tmp))?;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| path)
    }
}

/// How service-discover is stopped and started. The argvs are
/// configurable so that tests can stand in for systemctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceControl {
    /// Default `systemctl stop service-discover`.
    pub stop: Vec<String>,
    /// Default `systemctl start service-discover`.
    pub start: Vec<String>,
    /// Per call ([`SERVICE_TIMEOUT`]).
    pub timeout: Duration,
}

impl Default for ServiceControl {
    fn default() -> Self {
        ServiceControl {
            stop: ["systemctl", "stop", "service-discover"]
                .map(String::from)
                .to_vec(),
            start: ["systemctl", "start", "service-discover"]
                .map(String::from)
                .to_vec(),
            timeout: SERVICE_TIMEOUT,
        }
    }
}

/// One step of a recovery, for the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// What was done, e.g. the argv, or "write /var/.../peers.json".
    pub step: String,
    /// How long it took.
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub duration: Duration,
    /// The end of its output.
    pub tail: String,
}

/// A recovery that ended with a leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// stop, write, start, in order.
    pub steps: Vec<StepReport>,
    /// Where `peers.json` was written.
    pub peers_file: PathBuf,
    /// What it listed.
    pub peers: Vec<PeerEntry>,
    /// Time from the service start to the first leader seen.
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub leader_after: Duration,
}

/// The recovery procedure and its parameters.
#[derive(Debug, Clone)]
pub struct RaftRecovery {
    /// `consul.service_discover_data`.
    pub data_dir: PathBuf,
    /// Owner of `peers.json` ([`DEFAULT_OWNER`]).
    pub owner: String,
    /// How the service is stopped and started.
    pub service: ServiceControl,
    /// How long after the start a leader must appear.
    pub leader_deadline: Duration,
    /// Time between leader checks.
    pub poll_interval: Duration,
}

impl RaftRecovery {
    /// The procedure for this node's Consul: data dir, owner and service
    /// commands from the config (systemctl by default), two minutes for a
    /// leader, checked every second.
    pub fn new(consul: &config::Consul) -> RaftRecovery {
        RaftRecovery {
            data_dir: consul.service_discover_data.clone(),
            owner: consul.service_discover_user.clone(),
            service: ServiceControl {
                stop: consul.service_stop.clone(),
                start: consul.service_start.clone(),
                timeout: SERVICE_TIMEOUT,
            },
            leader_deadline: Duration::from_secs(120),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// The most [`RaftRecovery::recover`] may take: a stop, a start (or a
    /// start again after a failure) and the wait for a leader.
    pub fn time_limit(&self) -> Duration {
        self.service.timeout * 2 + self.leader_deadline
    }

    /// Stop service-discover, write `peers.json`, start it, and wait for a
    /// leader. `has_leader` asks the local Consul (`/v1/status/leader` not
    /// empty): `Ok(true)` ends the wait, `Ok(false)` or `Err` (Consul not
    /// answering yet) keeps waiting until `leader_deadline`.
    ///
    /// The peers, the owner and the raft directory are checked before
    /// anything is stopped. If the stop fails or times out, or the write
    /// fails after the stop, the service is started again (without
    /// `peers.json`) so that Consul is not left down.
    pub async fn recover<F, Fut>(
        &self,
        peers: &[PeerEntry],
        mut has_leader: F,
    ) -> Result<RecoveryReport, RaftError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, String>>,
    {
        let file = PeersFile::prepare(&self.data_dir, peers, &self.owner)?;
        let mut steps = Vec::new();
        match self.service_step(&self.service.stop).await {
            Ok(step) => steps.push(step),
            Err(stop) => {
                return Err(RaftError::StopFailed {
                    stop: Box::new(stop),
                    restart: self.start_again().await,
                });
            }
        }

        let started = Instant::now();
        let written = file.write();
        let peers_file = match written {
            Ok(p) => {
                steps.push(StepReport {
                    step: format!("write {}", p.display()),
                    duration: started.elapsed(),
                    tail: String::new(),
                });
                p
            }
            Err(write) => {
                return Err(RaftError::WriteAfterStop {
                    write: Box::new(write),
                    restart: self.start_again().await,
                });
            }
        };

        steps.push(self.service_step(&self.service.start).await?);
        let start = Instant::now();
        let deadline = start + self.leader_deadline;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let last = match tokio::time::timeout(
                remaining.max(Duration::from_millis(1)),
                has_leader(),
            )
            .await
            {
                Ok(Ok(true)) => {
                    tracing::info!(after = ?start.elapsed(), "raft leader elected after recovery");
                    return Ok(RecoveryReport {
                        steps,
                        peers_file,
                        peers: peers.to_vec(),
                        leader_after: start.elapsed(),
                    });
                }
                Ok(Ok(false)) => "Consul answered: no leader".to_owned(),
                Ok(Err(e)) => e,
                Err(_) => "the leader check did not answer in time".to_owned(),
            };
            if Instant::now() + self.poll_interval >= deadline {
                return Err(RaftError::NoLeader {
                    after: humantime::format_duration(self.leader_deadline).to_string(),
                    last,
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Start the service after a step failed, so that Consul is not left
    /// down: `""` when it started, else why not (to append to the error).
    async fn start_again(&self) -> String {
        match self.service_step(&self.service.start).await {
            Ok(_) => String::new(),
            Err(e) => format!(", but starting it failed too: {e}"),
        }
    }

    async fn service_step(&self, argv: &[String]) -> Result<StepReport, RaftError> {
        let spec = Spec::new(argv.iter().cloned(), self.service.timeout);
        let step = spec.display();
        let fail = |reason: String, tail: String| RaftError::Service {
            step: step.clone(),
            reason,
            tail,
        };
        let out = process::run(&spec)
            .await
            .map_err(|e| fail(e.to_string(), String::new()))?;
        let tail = out.tail(2000);
        match out.status {
            Status::Exited(0) => Ok(StepReport {
                step,
                duration: out.duration,
                tail,
            }),
            Status::Exited(c) => Err(fail(format!("exit code {c}"), tail)),
            Status::Signaled(s) => Err(fail(format!("killed by signal {s}"), tail)),
            Status::TimedOut => Err(fail(
                format!(
                    "did not finish within {} and was killed",
                    humantime::format_duration(self.service.timeout)
                ),
                tail,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, node: &str, addr: &str) -> RaftServer {
        RaftServer {
            id: id.into(),
            node: node.into(),
            address: addr.into(),
            leader: false,
            voter: true,
        }
    }

    #[test]
    fn peers_json_is_raft_v3_with_a_boolean_non_voter() {
        let s = render_peers_json(&[PeerEntry::voter(
            "adf4238a-882b-9ddc-4a9d-5b6758e4159e",
            "10.1.0.1:8300",
        )])
        .expect("valid");
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(
            v,
            serde_json::json!([{"id": "adf4238a-882b-9ddc-4a9d-5b6758e4159e",
                                "address": "10.1.0.1:8300", "non_voter": false}])
        );
    }

    #[test]
    fn bad_peers_are_refused_before_anything_is_written() {
        assert!(matches!(render_peers_json(&[]), Err(RaftError::NoPeers)));
        for (id, addr) in [
            ("", "10.0.0.1:8300"),
            ("not a uuid", "10.0.0.1:8300"),
            ("abcd", "svc1.example.com:8300"),
            ("abcd", "10.0.0.1"),
        ] {
            assert!(
                render_peers_json(&[PeerEntry::voter(id, addr)]).is_err(),
                "{id} {addr}"
            );
        }
        let dup = [
            PeerEntry::voter("ab", "10.0.0.1:8300"),
            PeerEntry::voter("ab", "10.0.0.2:8300"),
        ];
        assert!(render_peers_json(&dup).is_err());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_fallback_address_is_this_nodes_own_not_the_first_listed() {
        let local = [ip("127.0.0.1"), ip("10.2.0.7"), ip("fe80::1")];
        let one = |n: &str, a: &[&str]| (n.to_owned(), a.iter().map(|x| ip(x)).collect());
        // This node is the DC's only Consul server.
        assert_eq!(
            own_server_address("secondary", &[one("10.2.0.7", &["10.2.0.7"])], &local),
            Ok(ip("10.2.0.7"))
        );
        // Listed by a hostname that resolves to one of this node's addresses.
        assert_eq!(
            own_server_address(
                "secondary",
                &[one("svc1.dc2.example.com", &["10.9.9.9", "10.2.0.7"])],
                &local
            ),
            Ok(ip("10.2.0.7"))
        );
        // The one listed is another node: no address to write.
        let e = own_server_address("secondary", &[one("10.2.0.1", &["10.2.0.1"])], &local)
            .expect_err("not this node");
        assert!(
            e.contains("10.2.0.1, which is not an address of this node"),
            "{e}"
        );
        assert!(e.contains("10.2.0.7"), "local addresses shown: {e}");
        // Several servers: never alone, even when this node is one of them.
        let e = own_server_address(
            "secondary",
            &[
                one("10.2.0.1", &["10.2.0.1"]),
                one("10.2.0.7", &["10.2.0.7"]),
            ],
            &local,
        )
        .expect_err("several servers");
        assert!(
            e.contains("lists 2 Consul servers (10.2.0.1, 10.2.0.7)"),
            "{e}"
        );
        assert!(e.contains("split the survivors"), "{e}");
        let e = own_server_address("secondary", &[], &local).expect_err("none");
        assert!(e.contains("secondary.consul_ips is empty"), "{e}");
    }

    #[test]
    fn local_addresses_include_loopback() {
        let l = local_addresses().expect("getifaddrs");
        assert!(l.contains(&ip("127.0.0.1")), "{l:?}");
    }

    #[test]
    fn survivors_are_this_dcs_servers_matched_by_whole_node_name() {
        let last = [
            server("aa", "server-svc1-dc1-example-com", "10.1.0.1:8300"),
            server("bb", "server-svc2-dc1-example-com", "10.1.0.2:8300"),
            server("cc", "server-svc1-dc2-example-com", "10.2.0.1:8300"),
            // A substring match would wrongly take this one for svc1.dc2.
            server("dd", "server-xsvc1-dc2-example-com", "10.2.0.9:8300"),
        ];
        let own = vec!["svc1.dc2.example.com".to_owned()];
        assert_eq!(
            survivors(&last, &own),
            vec![PeerEntry::voter("cc", "10.2.0.1:8300")]
        );
    }
}
