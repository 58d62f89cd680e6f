#![allow(dead_code)]
//! Real HashiCorp Serf agents (Debian's `serf`), one per host, each in the
//! host's network namespace: the gossip layer under Consul's
//! `/v1/agent/members` and `serfHealth`, so that what the Consul stand-in
//! reports about a cut host is SWIM's own failure detection (probes,
//! indirect probes, suspicion and its confirmations), not a timer.
//!
//! Every agent runs Serf's `lan` profile, the one Consul's LAN pool uses
//! (probe every 1 s, 500 ms probe timeout, suspicion multiplier 4). The
//! namespaces reach each other through the root namespace
//! ([`Netns::route_via_root`]), as the hosts of a datacenter do. One agent
//! plays "this node's" agent; the stand-in asks it ([`Cluster::members`],
//! `serf members -format=json -rpc-addr=…`), as Consul's agent asks its
//! own Serf.
//!
//! Each agent's log is read line by line as it is written and stamped with
//! the wall clock (Unix ms), so that [`Cluster::failed_at`] says when the
//! local agent marked a member failed (Serf logs `EventMemberFailed` at
//! the moment it changes the member's status; its event handlers are
//! coalesced and would be late).
//!
//! Serf is a test dependency (`.ci/deps` installs it): [`available`] skips
//! a test without it, and fails it with `CI=true`.

use super::consul_api::{Member, member};
use super::netns::Netns;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Serf LAN port.
pub const PORT: u16 = 7946;
/// The agents' RPC port (on their namespace's address).
pub const RPC_PORT: u16 = 7373;

/// One host's agent.
pub struct Agent {
    pub node: String,
    /// Its gossip address (the namespace's).
    pub addr: SocketAddr,
    pub rpc: SocketAddr,
    child: Child,
    /// Its log, each line prefixed with the Unix ms it was read at.
    pub log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member failure as the local agent logged it.
#[derive(Debug, Clone)]
struct Failure {
    at: u64,
    node: String,
}

/// The agents of both DCs; the first is this node's own.
pub struct Cluster {
    agents: Vec<Agent>,
    failures: Arc<Mutex<Vec<Failure>>>,
    /// The last answer of the local agent, shared by concurrent askers.
    cache: Mutex<Option<(Instant, Answer)>>,
}

/// The local agent's members, or why it could not be asked.
type Answer = Result<Vec<Member>, String>;

/// A host to run an agent for: its namespace, node name and tags.
pub struct Spec<'a> {
    pub ns: &'a Netns,
    pub node: String,
    pub tags: Vec<(&'static str, String)>,
}

impl Cluster {
    /// Start an agent per host (the first is the local one, which the
    /// others join), each in its namespace, logs in `dir`; wait until the
    /// local agent lists every one alive. Panics with the agents' logs if
    /// that takes more than 30 s (test set-up).
    pub fn start(hosts: &[Spec<'_>], dir: &Path) -> Cluster {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut agents = Vec::new();
        let mut join: Option<SocketAddr> = None;
        for (i, h) in hosts.iter().enumerate() {
            h.ns.route_via_root();
            let addr = SocketAddr::new(h.ns.ip(), PORT);
            let rpc = SocketAddr::new(h.ns.ip(), RPC_PORT);
            let log = dir.join(format!("serf-{}.log", h.node));
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &h.ns.name, "serf", "agent"])
                .arg(format!("-node={}", h.node))
                .arg(format!("-bind={addr}"))
                .arg(format!("-rpc-addr={rpc}"))
                .arg("-profile=lan")
                .arg("-log-level=info");
            for (k, v) in &h.tags {
                cmd.arg("-tag").arg(format!("{k}={v}"));
            }
            if let Some(j) = join {
                // Retried: the first agent may still be binding.
                cmd.arg(format!("-retry-join={j}"))
                    .arg("-retry-interval=200ms");
            }
            // A host back from a cut is joined again within a second,
            // not after Serf's default 30 s.
            let conf = dir.join(format!("serf-{}.json", h.node));
            std::fs::write(&conf, r#"{"reconnect_interval": "1s"}"#)
                .expect("write the serf agent's config");
            cmd.arg(format!("-config-file={}", conf.display()));
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start serf agent for {}: {e}", h.node));
            let out = child.stdout.take();
            let err = child.stderr.take();
            let file = std::fs::File::create(&log).expect("create the serf agent's log");
            let file = Arc::new(Mutex::new(file));
            let fails = (i == 0).then(|| failures.clone());
            if let Some(o) = out {
                stamp_lines(o, file.clone(), fails);
            }
            if let Some(e) = err {
                stamp_lines(e, file, None);
            }
            join.get_or_insert(addr);
            agents.push(Agent {
                node: h.node.clone(),
                addr,
                rpc,
                child,
                log,
            });
        }
        let c = Cluster {
            agents,
            failures,
            cache: Mutex::new(None),
        };
        let names: Vec<String> = hosts.iter().map(|h| h.node.clone()).collect();
        if !c.wait_alive(&names, Duration::from_secs(30)) {
            panic!(
                "the serf agents did not all join within 30s: {:?}\n{}",
                c.members(),
                c.logs()
            );
        }
        c
    }

    /// The local agent's member list, as Consul's `/v1/agent/members`
    /// shows it (status codes, address and port apart). Answers younger
    /// than 25 ms are reused: several witnesses ask at once.
    pub fn members(&self) -> Result<Vec<Member>, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, r)) = cache.as_ref()
            && at.elapsed() < Duration::from_millis(25)
        {
            return r.clone();
        }
        let r = self.ask();
        *cache = Some((Instant::now(), r.clone()));
        r
    }

    fn ask(&self) -> Result<Vec<Member>, String> {
        let rpc = self.agents[0].rpc;
        let out = Command::new("serf")
            .args(["members", "-format=json"])
            .arg(format!("-rpc-addr={rpc}"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run serf members: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "serf members -rpc-addr={rpc} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        parse_members(&out.stdout)
    }

    /// Wait until the local agent lists every one of `nodes` alive.
    pub fn wait_alive(&self, nodes: &[String], bound: Duration) -> bool {
        self.wait_status(nodes, member::ALIVE, bound)
    }

    /// Wait until the local agent lists every one of `nodes` with `status`.
    pub fn wait_status(&self, nodes: &[String], status: i64, bound: Duration) -> bool {
        let until = Instant::now() + bound;
        loop {
            if let Ok(ms) = self.members()
                && nodes
                    .iter()
                    .all(|n| ms.iter().any(|m| &m.name == n && m.status == status))
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// When (Unix ms) the local agent first marked `node` failed at or
    /// after `since`.
    pub fn failed_at(&self, node: &str, since: u64) -> Option<u64> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|f| f.node == node && f.at >= since)
            .map(|f| f.at)
    }

    /// Every agent's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for a in &self.agents {
            let t = std::fs::read_to_string(&a.log).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(20).collect();
            out.push_str(&format!("==== {} ====\n", a.log.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// Copy an agent's output to its log, each line stamped with the time it
/// was read; note the member failures the local agent reports.
fn stamp_lines(
    from: impl std::io::Read + Send + 'static,
    to: Arc<Mutex<std::fs::File>>,
    failures: Option<Arc<Mutex<Vec<Failure>>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let at = super::testbed::now_ms();
            if let Some(f) = &failures
                && let Some(node) = failed_node(&line)
            {
                f.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Failure { at, node });
            }
            let mut file = to.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(file, "{at} {line}");
        }
    });
}

/// The node of a `serf: EventMemberFailed: <node> <addr>` log line.
fn failed_node(line: &str) -> Option<String> {
    let rest = line.split("serf: EventMemberFailed: ").nth(1)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// `serf members -format=json` as Consul's members: the status names
/// turned into Serf's status codes, as Consul's API reports them.
pub fn parse_members(json: &[u8]) -> Result<Vec<Member>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("serf members: not JSON: {e}"))?;
    let list = v["members"]
        .as_array()
        .ok_or("serf members: no \"members\" list")?;
    list.iter()
        .map(|m| {
            let name = m["name"].as_str().ok_or("serf member without a name")?;
            let addr = m["addr"].as_str().unwrap_or_default();
            let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
            let status = match m["status"].as_str() {
                Some("alive") => member::ALIVE,
                Some("leaving") => member::LEAVING,
                Some("left") => member::LEFT,
                Some("failed") => member::FAILED,
                _ => 0,
            };
            let tags: BTreeMap<String, String> = m["tags"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Member {
                name: name.to_owned(),
                addr: host.to_owned(),
                port: port.parse().unwrap_or(0),
                tags,
                status,
            })
        })
        .collect()
}
