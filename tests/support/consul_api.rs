#![allow(dead_code)]
//! An in-test Consul HTTP API server (SPEC section 7: no Consul binary can be
//! installed, so tests serve its API).
//!
//! It listens on `127.0.0.1:<free port>` and answers the endpoints habeat
//! uses with bodies shaped as in Consul's API documentation:
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /v1/agent/members` | `[{Name, Addr, Port, Tags, Status, Protocol*, Delegate*}]` |
//! | `GET /v1/health/node/:node` | `[{Node, CheckID, Name, Status, Output, ...}]`, `[]` for an unknown node |
//! | `GET /v1/status/leader` | `"10.0.0.1:8300"`, or `""` without a leader |
//! | `GET /v1/operator/raft/configuration` | `{Servers: [{ID, Node, Address, Leader, Voter, ProtocolVersion}], Index}` |
//! | `PUT /v1/session/create` | `{"ID": "<uuid>"}` (body: `{Name, TTL, Behavior, LockDelay, Checks, NodeChecks, ServiceChecks}`) |
//! | `PUT /v1/session/renew/:id` | `[{session}]`, 404 when the session is gone |
//! | `PUT /v1/session/destroy/:id` | `true` |
//! | `PUT /v1/kv/:key?acquire=:id` / `?release=:id` | `true` / `false` |
//! | `GET /v1/kv/:key` | `[{Key, Value (base64), Session, LockIndex, ...}]`, 404 when absent |
//!
//! Semantics that matter to habeat are real: a lock is held by one session
//! at a time; a session dies when destroyed or when its TTL passes without
//! renewal (see [`ConsulApi::advance_clock`]) and its locks are released
//! (behavior `release`) or deleted (`delete`). As Consul documents it, the
//! TTL is a lower bound: a session expires some time between TTL and
//! 2 x TTL after its last renewal (Consul's servers arm their timer at
//! 2 x TTL); [`Builder::ttl_multiplier`] picks where in that window (default
//! 1, the earliest the docs allow and the worst case for a lock holder; 2
//! is what Consul's servers do, the worst case for whoever waits). After an invalidation (destroy or expiry, not a plain
//! release) the keys the session held cannot be acquired for its
//! lock-delay (default 15s, at most 60s); an acquire meanwhile answers
//! `false`. A session created without `Checks`/`NodeChecks` gets
//! `serfHealth`, as the agent adds it; `"Checks": []` means none.
//! Every invalidation is recorded with its wall-clock time
//! ([`ConsulApi::invalidations`]). Several agents of one cluster can be
//! served over one store ([`ConsulApi::add_agent`]), each with its own view
//! of the leader: a 1+1+1 layout where one side's agent loses the leader
//! while the other keeps it. Without a leader
//! ([`ConsulApi::set_leader`] with `None`) `status/leader` answers `""` and
//! every write or consistent read fails with HTTP 500 `No cluster leader`,
//! as Consul's do; `?stale` reads and `agent/members` still work. With a
//! token required ([`Builder::token`]), a request with another token gets
//! 403 `ACL not found` and one without a token 403 `Permission denied`.
//!
//! Faults on demand ([`Fault`]): slow answers, 500, 401, 403, a truncated
//! body, a body that is not JSON, a connection closed without an answer,
//! a token whose ACLs may read only some nodes ([`Fault::AclFiltered`]),
//! a fixed hostile body ([`Fault::Body`]); for every request or for a path
//! prefix.
//!
//! A race can be staged: [`ConsulApi::after_next`] changes the state right
//! after a given request is answered ([`Interleave`]).
//!
//! Every request is recorded ([`ConsulApi::requests`]) so that a test can
//! check which token and query parameters habeat sent.
//!
//! ```ignore
//! let api = ConsulApi::builder()
//!     .node("agent-mbox1-example-com", "10.0.0.5", member::ALIVE)
//!     .token("s3cret")
//!     .start()
//!     .await;
//! let cfg = api.consul_config();        // habeat::config::Consul pointing here
//! api.set_member_status("agent-mbox1-example-com", member::FAILED);
//! api.set_leader(None);                 // this side loses its quorum
//! api.set_fault(Some(Fault::Slow(Duration::from_secs(5))));
//! ```

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serf member status codes, as `/v1/agent/members` reports them.
pub mod member {
    pub const ALIVE: i64 = 1;
    pub const LEAVING: i64 = 2;
    pub const LEFT: i64 = 3;
    pub const FAILED: i64 = 4;
}

/// A failure the server produces on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// HTTP 500 with a body that is not "No cluster leader".
    ServerError,
    /// HTTP 401.
    Unauthorized,
    /// HTTP 403 `Permission denied`.
    Forbidden,
    /// The right headers, then half the body, then the connection closes.
    Truncated,
    /// HTTP 200 with an HTML page instead of JSON.
    NotJson,
    /// Close the connection without answering.
    Hangup,
    /// The token may read only these nodes (`node:read`), as Consul treats
    /// such a token: HTTP 200 with every other node left out of
    /// `agent/members` and `health/node/:node`, and the header
    /// `X-Consul-Results-Filtered-By-ACLs: true` when something was left
    /// out and the request carried a token (Consul sends the header to
    /// authenticated requests only).
    AclFiltered(Vec<String>),
    /// HTTP 200 with exactly this JSON body, whatever was asked: a hostile
    /// or self-contradicting answer (a check of another node, a session ID
    /// that is a path).
    Body(String),
}

/// Something another client does between two requests of habeat, at a
/// moment chosen by the test ([`ConsulApi::after_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interleave {
    /// The session holding `key` expires (its lock is released), and a new
    /// session of another client acquires `key`, writing `value`.
    LockChangesHands { key: String, value: Vec<u8> },
}

/// A Serf member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
    pub status: i64,
}

impl Member {
    /// A client member (`role: node`) on the Serf LAN port.
    pub fn new(name: &str, addr: &str, status: i64) -> Member {
        let mut tags = BTreeMap::new();
        tags.insert("dc".into(), "dc1".into());
        tags.insert(
            "role".into(),
            if name.starts_with("server-") {
                "consul".into()
            } else {
                "node".into()
            },
        );
        Member {
            name: name.into(),
            addr: addr.into(),
            port: 8301,
            tags,
            status,
        }
    }
}

/// One raft server of `/v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftEntry {
    pub id: String,
    pub node: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
}

/// What the server saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Decoded path, without the query (`/v1/kv/habeat/failover/mbox1`).
    pub path: String,
    /// Raw query string (`stale`, `acquire=<id>`).
    pub query: String,
    /// The `X-Consul-Token` header, if any.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
struct Check {
    check_id: String,
    name: String,
    status: String,
    output: String,
}

#[derive(Debug, Clone)]
struct Session {
    name: String,
    ttl: Option<Duration>,
    behavior: String,
    lock_delay: Duration,
    /// The node checks the session depends on (`serfHealth` by default).
    node_checks: Vec<String>,
    service_checks: Vec<String>,
    renewed: Instant,
    create_index: u64,
}

/// Why a session was invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidatedBy {
    /// `PUT /v1/session/destroy/:id` (or [`ConsulApi::invalidate_session`]).
    Destroy,
    /// Its TTL (times the multiplier) passed without a renewal.
    Expiry,
}

/// One invalidation, as the stand-in recorded it.
#[derive(Debug, Clone)]
pub struct Invalidation {
    pub session: String,
    pub name: String,
    pub by: InvalidatedBy,
    /// Wall-clock time of the invalidation (the stand-in's own clock,
    /// without [`ConsulApi::advance_clock`]'s offset), for comparing with
    /// habeat's log timestamps.
    pub at: SystemTime,
    /// The keys it held, and until when (stand-in clock) each stays
    /// blocked by its lock-delay.
    pub keys: Vec<String>,
    pub lock_delay: Duration,
}

#[derive(Debug, Clone)]
struct KvEntry {
    value: Vec<u8>,
    session: Option<String>,
    lock_index: u64,
    create_index: u64,
    modify_index: u64,
}

#[derive(Debug)]
struct State {
    members: Vec<Member>,
    checks: BTreeMap<String, Vec<Check>>,
    leader: Option<String>,
    raft: Vec<RaftEntry>,
    token: Option<String>,
    faults: Vec<(String, Fault)>,
    sessions: BTreeMap<String, Session>,
    kv: BTreeMap<String, KvEntry>,
    index: u64,
    next_session: u64,
    clock_offset: Duration,
    requests: Vec<Recorded>,
    interleaves: Vec<(String, String, Interleave)>,
    /// A session expires `ttl_multiplier` x TTL after its last renewal.
    ttl_multiplier: f64,
    /// The smallest TTL accepted (Consul: 10s).
    min_ttl: Duration,
    /// Key -> until when an acquire is refused (lock-delay).
    lock_delays: BTreeMap<String, Instant>,
    invalidations: Vec<Invalidation>,
    /// Where `agent/members` and `serfHealth` come from instead of the
    /// stored members ([`ConsulApi::follow_serf`]).
    serf: Option<SerfSource>,
}

/// The member list of a real Serf agent, asked at each request.
#[derive(Clone)]
pub struct SerfSource(pub Arc<dyn Fn() -> Result<Vec<Member>, String> + Send + Sync>);

impl std::fmt::Debug for SerfSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SerfSource")
    }
}

impl State {
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Invalidate sessions whose TTL (times the multiplier) passed without
    /// renewal.
    fn reap(&mut self) {
        let now = self.now();
        let m = self.ttl_multiplier;
        let dead: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.ttl
                    .is_some_and(|t| now.duration_since(s.renewed) >= t.mul_f64(m))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            self.invalidate(&id, InvalidatedBy::Expiry);
        }
    }

    fn invalidate(&mut self, id: &str, by: InvalidatedBy) {
        let Some(s) = self.sessions.remove(id) else {
            return;
        };
        let idx = self.bump();
        let now = self.now();
        let keys: Vec<String> = self
            .kv
            .iter()
            .filter(|(_, e)| e.session.as_deref() == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        if !s.lock_delay.is_zero() {
            for k in &keys {
                self.lock_delays.insert(k.clone(), now + s.lock_delay);
            }
        }
        self.invalidations.push(Invalidation {
            session: id.to_owned(),
            name: s.name.clone(),
            by,
            at: SystemTime::now(),
            keys,
            lock_delay: s.lock_delay,
        });
        if s.behavior == "delete" {
            self.kv.retain(|_, e| e.session.as_deref() != Some(id));
        } else {
            for e in self.kv.values_mut() {
                if e.session.as_deref() == Some(id) {
                    e.session = None;
                    e.modify_index = idx;
                }
            }
        }
    }

    fn interleave(&mut self, what: Interleave) {
        match what {
            Interleave::LockChangesHands { key, value } => {
                if let Some(old) = self.kv.get(&key).and_then(|e| e.session.clone()) {
                    self.invalidate(&old, InvalidatedBy::Destroy);
                }
                self.lock_delays.remove(&key);
                let n = self.next_session;
                self.next_session += 1;
                let id = format!("adf4238a-882b-9ddc-4a9d-{n:012x}");
                let idx = self.bump();
                let now = self.now();
                self.sessions.insert(
                    id.clone(),
                    Session {
                        name: "another client".into(),
                        ttl: Some(Duration::from_secs(3600)),
                        behavior: "release".into(),
                        lock_delay: Duration::ZERO,
                        node_checks: Vec::new(),
                        service_checks: Vec::new(),
                        renewed: now,
                        create_index: idx,
                    },
                );
                let e = self.kv.entry(key).or_insert(KvEntry {
                    value: Vec::new(),
                    session: None,
                    lock_index: 0,
                    create_index: idx,
                    modify_index: idx,
                });
                e.session = Some(id);
                e.lock_index += 1;
                e.value = value;
                e.modify_index = idx;
            }
        }
    }

    fn serf_from_status(&mut self, node: &str, status: i64) {
        let (st, out) = match status {
            member::ALIVE => ("passing", "Agent alive and reachable"),
            member::LEFT => {
                // A node that left gracefully is deregistered from the catalog.
                self.checks.remove(node);
                return;
            }
            _ => ("critical", "Agent not live or unreachable"),
        };
        let checks = self.checks.entry(node.to_owned()).or_default();
        checks.retain(|c| c.check_id != "serfHealth");
        checks.push(Check {
            check_id: "serfHealth".into(),
            name: "Serf Health Status".into(),
            status: st.into(),
            output: out.into(),
        });
    }
}

/// Builds a [`ConsulApi`] with its initial state.
pub struct Builder {
    state: State,
}

impl Builder {
    /// A Serf member plus its `serfHealth` check derived from the status
    /// (alive → passing, left → no checks, otherwise critical), as a real
    /// cluster shows a node.
    pub fn node(mut self, name: &str, addr: &str, status: i64) -> Builder {
        self.state.members.push(Member::new(name, addr, status));
        self.state.serf_from_status(name, status);
        self
    }

    /// A Serf member only (no catalog checks): a cluster whose views disagree.
    pub fn member(mut self, m: Member) -> Builder {
        self.state.members.push(m);
        self
    }

    /// A health check of a node (`passing`, `warning`, `critical`).
    pub fn check(mut self, node: &str, check_id: &str, status: &str) -> Builder {
        set_check(&mut self.state, node, check_id, status);
        self
    }

    /// The raft leader's address; `None`: the cluster has no leader.
    pub fn leader(mut self, addr: Option<&str>) -> Builder {
        self.state.leader = addr.map(str::to_owned);
        self
    }

    /// A raft server of the configuration.
    pub fn raft_server(mut self, id: &str, node: &str, address: &str, leader: bool) -> Builder {
        self.state.raft.push(RaftEntry {
            id: id.into(),
            node: node.into(),
            address: address.into(),
            leader,
            voter: true,
        });
        self
    }

    /// Require this ACL token on every request except `status/leader`.
    pub fn token(mut self, token: &str) -> Builder {
        self.state.token = Some(token.into());
        self
    }

    /// Where in Consul's documented expiry window (TTL to 2 x TTL after
    /// the last renewal) sessions expire: 1.0 (the default) is the
    /// earliest, 2.0 what Consul's servers do.
    pub fn ttl_multiplier(mut self, m: f64) -> Builder {
        assert!((1.0..=2.0).contains(&m), "Consul documents TTL..2xTTL");
        self.state.ttl_multiplier = m;
        self
    }

    /// Accept session TTLs down to `min` (Consul refuses below 10s). A
    /// test-only lower bound, for tests of the stand-in and of the client
    /// library that must not wait 10s; habeat's own config still refuses a
    /// `lease.ttl` below 10s.
    pub fn min_ttl(mut self, min: Duration) -> Builder {
        self.state.min_ttl = min;
        self
    }

    /// Bind to a free loopback port and start serving.
    pub async fn start(self) -> ConsulApi {
        let shared = Arc::new(Mutex::new(self.state));
        let (addr, task, view) = listen(shared.clone()).await;
        ConsulApi {
            addr,
            shared,
            task,
            view,
        }
    }
}

/// What one agent sees of the cluster beyond the shared store.
#[derive(Debug, Default)]
struct AgentView {
    /// This agent has lost the leader (its side is the minority), whatever
    /// the cluster's leader is.
    leader_lost: AtomicBool,
}

async fn listen(
    shared: Arc<Mutex<State>>,
) -> (SocketAddr, tokio::task::JoinHandle<()>, Arc<AgentView>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the Consul test server to a loopback port");
    let addr = listener.local_addr().expect("local address");
    let view = Arc::new(AgentView::default());
    let v = view.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let s = shared.clone();
            let v = v.clone();
            tokio::spawn(async move {
                let _ = serve(stream, s, v).await;
            });
        }
    });
    (addr, task, view)
}

fn set_check(state: &mut State, node: &str, check_id: &str, status: &str) {
    let checks = state.checks.entry(node.to_owned()).or_default();
    checks.retain(|c| c.check_id != check_id);
    checks.push(Check {
        check_id: check_id.into(),
        name: if check_id == "serfHealth" {
            "Serf Health Status".into()
        } else {
            check_id.into()
        },
        status: status.into(),
        output: String::new(),
    });
}

/// A running test server. Dropping it stops it.
pub struct ConsulApi {
    addr: SocketAddr,
    shared: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
    view: Arc<AgentView>,
}

impl Drop for ConsulApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConsulApi {
    /// An empty cluster with a leader (`10.0.0.1:8300`) and no token.
    pub fn builder() -> Builder {
        Builder {
            state: State {
                members: Vec::new(),
                checks: BTreeMap::new(),
                leader: Some("10.0.0.1:8300".into()),
                raft: Vec::new(),
                token: None,
                faults: Vec::new(),
                sessions: BTreeMap::new(),
                kv: BTreeMap::new(),
                index: 10,
                next_session: 1,
                clock_offset: Duration::ZERO,
                requests: Vec::new(),
                interleaves: Vec::new(),
                ttl_multiplier: 1.0,
                min_ttl: Duration::from_secs(10),
                lock_delays: BTreeMap::new(),
                invalidations: Vec::new(),
                serf: None,
            },
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `consul:` section pointing habeat at this server, with the
    /// required token if there is one.
    pub fn consul_config(&self) -> habeat::config::Consul {
        habeat::config::Consul {
            hostname: self.addr.ip().to_string(),
            port: self.addr.port(),
            token: self.state().token.clone().map(habeat::config::Secret::new),
            ..habeat::config::Consul::default()
        }
    }

    /// Answer `agent/members` and the `serfHealth` checks from a real
    /// Serf agent, asked at every such request (as Consul's agent asks its
    /// own Serf): its members replace the stored ones of the same name,
    /// alive → passing, left → deregistered, otherwise critical. A failure
    /// to ask is an HTTP 500 naming it.
    pub fn follow_serf(&self, source: SerfSource) {
        self.state().serf = Some(source);
    }

    /// Change a member's Serf status and its `serfHealth` accordingly;
    /// adds the member (address 10.255.0.1) if it does not exist.
    pub fn set_member_status(&self, name: &str, status: i64) {
        let mut st = self.state();
        match st.members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.status = status,
            None => st.members.push(Member::new(name, "10.255.0.1", status)),
        }
        st.serf_from_status(name, status);
    }

    /// A member's stored status (what `agent/members` answers without
    /// [`ConsulApi::follow_serf`]).
    pub fn member_status(&self, name: &str) -> Option<i64> {
        self.state()
            .members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.status)
    }

    /// Change a member's Serf status only (health untouched).
    pub fn set_member_status_only(&self, name: &str, status: i64) {
        let mut st = self.state();
        if let Some(m) = st.members.iter_mut().find(|m| m.name == name) {
            m.status = status;
        }
    }

    /// Add or replace a member.
    pub fn upsert_member(&self, m: Member) {
        let mut st = self.state();
        st.members.retain(|x| x.name != m.name);
        st.members.push(m);
    }

    /// Remove a member (and its catalog checks): the node was reaped.
    pub fn remove_member(&self, name: &str) {
        let mut st = self.state();
        st.members.retain(|m| m.name != name);
        st.checks.remove(name);
    }

    /// Set one health check of a node.
    pub fn set_check(&self, node: &str, check_id: &str, status: &str) {
        set_check(&mut self.state(), node, check_id, status);
    }

    /// Remove every check of a node (the catalog forgets it).
    pub fn clear_checks(&self, node: &str) {
        self.state().checks.remove(node);
    }

    /// The raft leader; `None`: no leader (writes fail, leader is `""`).
    pub fn set_leader(&self, addr: Option<&str>) {
        self.state().leader = addr.map(str::to_owned);
    }

    /// The raft configuration now.
    pub fn raft_servers(&self) -> Vec<RaftEntry> {
        self.state().raft.clone()
    }

    /// Replace the raft configuration.
    pub fn set_raft_servers(&self, servers: Vec<RaftEntry>) {
        self.state().raft = servers;
    }

    /// Require a token (`Some`) or accept any request (`None`).
    pub fn set_token(&self, token: Option<&str>) {
        self.state().token = token.map(str::to_owned);
    }

    /// A fault for every request (`None` clears all faults).
    pub fn set_fault(&self, fault: Option<Fault>) {
        let mut st = self.state();
        st.faults.clear();
        if let Some(f) = fault {
            st.faults.push((String::new(), f));
        }
    }

    /// A fault for requests whose path starts with `prefix`
    /// (`/v1/agent/members`, `/v1/kv/`).
    pub fn set_fault_on(&self, prefix: &str, fault: Fault) {
        self.state().faults.push((prefix.to_owned(), fault));
    }

    /// Live session IDs.
    pub fn sessions(&self) -> Vec<String> {
        let mut st = self.state();
        st.reap();
        st.sessions.keys().cloned().collect()
    }

    /// Invalidate a session as Consul does when its node's health fails.
    pub fn invalidate_session(&self, id: &str) {
        self.state().invalidate(id, InvalidatedBy::Destroy);
    }

    /// Another agent of the same cluster: its own address, the same
    /// sessions, KV, members and checks. Dropping it stops it.
    pub async fn add_agent(&self) -> ConsulApi {
        let (addr, task, view) = listen(self.shared.clone()).await;
        ConsulApi {
            addr,
            shared: self.shared.clone(),
            task,
            view,
        }
    }

    /// This agent loses (`true`) or regains the cluster leader: it answers
    /// `status/leader` with `""` and every write or consistent read with
    /// `No cluster leader`, while other agents ([`ConsulApi::add_agent`])
    /// keep theirs. Sessions keep expiring on the majority's clock.
    pub fn set_agent_leader_lost(&self, lost: bool) {
        self.view.leader_lost.store(lost, Ordering::SeqCst);
    }

    /// Every session invalidation so far, oldest first.
    pub fn invalidations(&self) -> Vec<Invalidation> {
        let mut st = self.state();
        st.reap();
        st.invalidations.clone()
    }

    /// The node checks a live session depends on (`None`: no such session).
    pub fn session_node_checks(&self, id: &str) -> Option<Vec<String>> {
        let mut st = self.state();
        st.reap();
        st.sessions.get(id).map(|s| s.node_checks.clone())
    }

    /// A live session's lock-delay.
    pub fn session_lock_delay(&self, id: &str) -> Option<Duration> {
        self.state().sessions.get(id).map(|s| s.lock_delay)
    }

    /// Move the server's clock forward: sessions not renewed within their
    /// TTL of the new time expire (their locks are released).
    pub fn advance_clock(&self, by: Duration) {
        let mut st = self.state();
        st.clock_offset += by;
        st.reap();
    }

    /// The session holding `key`'s lock, if any.
    pub fn lock_holder(&self, key: &str) -> Option<String> {
        let mut st = self.state();
        st.reap();
        st.kv.get(key).and_then(|e| e.session.clone())
    }

    /// What a primary's lease keeper does, through the HTTP API: a
    /// TTL-only session (10 s, the 15 s lock-delay, no checks) that
    /// acquires `key`. Returns the session.
    pub async fn hold_lease(&self, key: &str) -> String {
        let c = reqwest::Client::new();
        let v: serde_json::Value = c
            .put(format!("{}/v1/session/create", self.url()))
            .body(
                serde_json::json!({"TTL": "10s", "LockDelay": "15s", "Checks": [], "NodeChecks": []})
                    .to_string(),
            )
            .send()
            .await
            .expect("create a session")
            .json()
            .await
            .expect("the session's JSON");
        let id = v["ID"].as_str().expect("a session id").to_owned();
        let ok: bool = c
            .put(format!("{}/v1/kv/{key}?acquire={id}", self.url()))
            .send()
            .await
            .expect("acquire")
            .json()
            .await
            .expect("true or false");
        assert!(ok, "{key} acquired");
        id
    }

    /// Store `key` as locked by `session` with `value`, whatever `session`
    /// is (no such session needs to exist): what a compromised or broken
    /// agent could answer in the key's `Session` field.
    pub fn put_locked(&self, key: &str, value: &[u8], session: &str) {
        let mut st = self.state();
        let idx = st.bump();
        st.kv.insert(
            key.to_owned(),
            KvEntry {
                value: value.to_vec(),
                session: Some(session.to_owned()),
                lock_index: 1,
                create_index: idx,
                modify_index: idx,
            },
        );
    }

    /// The value stored under `key`.
    pub fn kv_value(&self, key: &str) -> Option<Vec<u8>> {
        self.state().kv.get(key).map(|e| e.value.clone())
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Once the next `method` request for exactly `path` has been answered
    /// (its answer shows the state before), do `what`, so that habeat's
    /// following request sees the change: a race made deterministic.
    pub fn after_next(&self, method: &str, path: &str, what: Interleave) {
        self.state()
            .interleaves
            .push((method.to_owned(), path.to_owned(), what));
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    query: String,
    token: Option<String>,
    body: Vec<u8>,
}

impl Request {
    fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| percent_decode(v))
        })
    }
    fn has(&self, name: &str) -> bool {
        self.query
            .split('&')
            .any(|kv| kv.split('=').next() == Some(name))
    }
}

/// What to send back.
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// Headers besides Content-Type, Content-Length and Connection.
    headers: Vec<(&'static str, String)>,
}

fn json_resp(status: u16, v: Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: v.to_string().into_bytes(),
        headers: Vec::new(),
    }
}

fn text(status: u16, s: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: s.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

/// [`Fault::AclFiltered`]: leave out of a members or node-health answer
/// the nodes the token may not read, as Consul's ACL filter does.
fn acl_filter(req: &Request, mut resp: Response, readable: &[String]) -> Response {
    let field = if req.path == "/v1/agent/members" {
        "Name"
    } else if req.path.starts_with("/v1/health/node/") {
        "Node"
    } else {
        return resp;
    };
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&resp.body) else {
        return resp;
    };
    let total = items.len();
    let kept: Vec<Value> = items
        .into_iter()
        .filter(|v| {
            v.get(field)
                .and_then(Value::as_str)
                .is_some_and(|n| readable.iter().any(|r| r == n))
        })
        .collect();
    let filtered = kept.len() != total;
    resp.body = Value::Array(kept).to_string().into_bytes();
    if filtered && req.token.is_some() {
        resp.headers
            .push(("X-Consul-Results-Filtered-By-ACLs", "true".into()));
    }
    resp
}

async fn serve(
    mut stream: TcpStream,
    shared: Arc<Mutex<State>>,
    view: Arc<AgentView>,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let serf = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .serf
        .clone()
        .filter(|_| {
            req.method == "GET"
                && (req.path == "/v1/agent/members" || req.path.starts_with("/v1/health/node/"))
        });
    if let Some(SerfSource(ask)) = serf {
        // `serf members` is a process: not on the runtime's one thread.
        let members = tokio::task::spawn_blocking(move || ask())
            .await
            .unwrap_or_else(|e| Err(format!("asking serf panicked: {e}")));
        match members {
            Ok(members) => {
                let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
                for m in members {
                    st.serf_from_status(&m.name, m.status);
                    st.members.retain(|x| x.name != m.name);
                    st.members.push(m);
                }
            }
            Err(e) => {
                let resp = text(500, &format!("serf: {e}"));
                let head = format!(
                    "HTTP/1.1 500 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reason(500),
                    resp.content_type,
                    resp.body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&resp.body).await?;
                return stream.shutdown().await;
            }
        }
    }
    let fault = {
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        st.requests.push(Recorded {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            token: req.token.clone(),
        });
        st.faults
            .iter()
            .find(|(p, _)| req.path.starts_with(p.as_str()))
            .map(|(_, f)| f.clone())
    };
    let resp = match fault {
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            handle(&req, &shared, &view)
        }
        Some(Fault::ServerError) => text(500, "rpc error making call: internal failure"),
        Some(Fault::Unauthorized) => text(401, "Unauthorized"),
        Some(Fault::Forbidden) => text(403, "Permission denied"),
        Some(Fault::NotJson) => Response {
            status: 200,
            content_type: "text/html",
            body: b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            headers: Vec::new(),
        },
        Some(Fault::Hangup) => return stream.shutdown().await,
        Some(Fault::AclFiltered(readable)) => {
            acl_filter(&req, handle(&req, &shared, &view), &readable)
        }
        Some(Fault::Body(body)) => Response {
            status: 200,
            content_type: "application/json",
            body: body.into_bytes(),
            headers: Vec::new(),
        },
        Some(Fault::Truncated) => {
            let full = handle(&req, &shared, &view);
            let head = format!(
                "HTTP/1.1 {} OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                full.status,
                full.content_type,
                full.body.len().max(2)
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&full.body[..full.body.len() / 2]).await?;
            stream.flush().await?;
            return stream.shutdown().await;
        }
        None => handle(&req, &shared, &view),
    };
    {
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = st
            .interleaves
            .iter()
            .position(|(m, p, _)| *m == req.method && *p == req.path)
        {
            let (_, _, what) = st.interleaves.remove(i);
            st.interleave(what);
        }
    }
    let extra: String = resp
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&resp.body).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut content_length = 0usize;
    let mut token = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "content-length" {
                content_length = v.parse().unwrap_or(0);
            } else if k == "x-consul-token" {
                token = Some(v.to_owned());
            }
        }
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < content_length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(content_length);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Some(Request {
        method,
        path: percent_decode(path),
        query: query.to_owned(),
        token,
        body,
    }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn no_leader() -> Response {
    text(500, "No cluster leader")
}

fn handle(req: &Request, shared: &Arc<Mutex<State>>, view: &AgentView) -> Response {
    let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
    st.reap();
    let path = req.path.as_str();
    if let Some(required) = st.token.clone()
        && path != "/v1/status/leader"
    {
        match &req.token {
            None => return text(403, "Permission denied"),
            Some(t) if *t != required => return text(403, "ACL not found"),
            Some(_) => {}
        }
    }
    let leader = if view.leader_lost.load(Ordering::SeqCst) {
        None
    } else {
        st.leader.clone()
    };
    let stale = req.has("stale");
    let consistent_ok = leader.is_some() || stale;
    match (req.method.as_str(), path) {
        ("GET", "/v1/agent/members") => json_resp(
            200,
            Value::Array(
                st.members
                    .iter()
                    .map(|m| {
                        json!({
                            "Name": m.name, "Addr": m.addr, "Port": m.port, "Tags": m.tags,
                            "Status": m.status, "ProtocolMin": 1, "ProtocolMax": 5,
                            "ProtocolCur": 2, "DelegateMin": 2, "DelegateMax": 5,
                            "DelegateCur": 4
                        })
                    })
                    .collect(),
            ),
        ),
        ("GET", "/v1/status/leader") => json_resp(200, json!(leader.unwrap_or_default())),
        ("GET", "/v1/operator/raft/configuration") => {
            if !consistent_ok {
                return no_leader();
            }
            let servers: Vec<Value> = st
                .raft
                .iter()
                .map(|s| {
                    json!({"ID": s.id, "Node": s.node, "Address": s.address,
                           "Leader": s.leader, "Voter": s.voter, "ProtocolVersion": "3"})
                })
                .collect();
            json_resp(200, json!({"Servers": servers, "Index": st.index}))
        }
        ("GET", p) if p.starts_with("/v1/health/node/") => {
            if !consistent_ok {
                return no_leader();
            }
            let node = &p["/v1/health/node/".len()..];
            let checks: Vec<Value> = st
                .checks
                .get(node)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            json!({"Node": node, "CheckID": c.check_id, "Name": c.name,
                                   "Status": c.status, "Notes": "", "Output": c.output,
                                   "ServiceID": "", "ServiceName": "", "ServiceTags": [],
                                   "Type": "", "Namespace": "default",
                                   "CreateIndex": 10, "ModifyIndex": 10})
                        })
                        .collect()
                })
                .unwrap_or_default();
            json_resp(200, Value::Array(checks))
        }
        ("PUT", "/v1/session/create") => {
            if leader.is_none() {
                return no_leader();
            }
            let body: Value = if req.body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(&req.body) {
                    Ok(v) => v,
                    Err(e) => return text(400, &format!("Request decode failed: {e}")),
                }
            };
            let min_ttl = st.min_ttl;
            let ttl = match body.get("TTL").and_then(Value::as_str) {
                None | Some("") | Some("0s") => None,
                Some(t) => match humantime::parse_duration(t) {
                    Ok(d) if (min_ttl..=Duration::from_secs(86_400)).contains(&d) => Some(d),
                    _ => {
                        return text(
                            400,
                            &format!("Invalid Session TTL '{t}', must be between [10s=24h0m0s]"),
                        );
                    }
                },
            };
            let behavior = body
                .get("Behavior")
                .and_then(Value::as_str)
                .unwrap_or("release")
                .to_owned();
            // "Small values are treated as seconds, and otherwise it is
            // provided with nanosecond granularity"; a string is a Go
            // duration. Consul caps it at 60s.
            let lock_delay = match body.get("LockDelay") {
                None | Some(Value::Null) => Duration::from_secs(15),
                Some(Value::String(t)) if t == "0" => Duration::ZERO,
                Some(Value::String(t)) => match humantime::parse_duration(t) {
                    Ok(d) => d,
                    Err(_) => {
                        return text(400, &format!("Request decode failed: bad LockDelay {t:?}"));
                    }
                },
                Some(Value::Number(n)) => {
                    let n = n.as_u64().unwrap_or(0);
                    if n < 1_000_000 {
                        Duration::from_secs(n)
                    } else {
                        Duration::from_nanos(n)
                    }
                }
                Some(_) => return text(400, "Request decode failed: bad LockDelay"),
            }
            .min(Duration::from_secs(60));
            let list = |k: &str| -> Option<Vec<String>> {
                body.get(k).map(|v| {
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default()
                })
            };
            // The agent adds serfHealth unless the body names the checks
            // itself: `"Checks": []` (or `"NodeChecks": []`) means none.
            let node_checks = match (list("NodeChecks"), list("Checks")) {
                (Some(n), Some(c)) => n.into_iter().chain(c).collect(),
                (Some(n), None) => n,
                (None, Some(c)) => c,
                (None, None) => vec!["serfHealth".to_owned()],
            };
            let service_checks = list("ServiceChecks").unwrap_or_default();
            let n = st.next_session;
            st.next_session += 1;
            let id = format!("adf4238a-882b-9ddc-4a9d-{n:012x}");
            let idx = st.bump();
            let now = st.now();
            st.sessions.insert(
                id.clone(),
                Session {
                    name: body
                        .get("Name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    ttl,
                    behavior,
                    lock_delay,
                    node_checks,
                    service_checks,
                    renewed: now,
                    create_index: idx,
                },
            );
            json_resp(200, json!({"ID": id}))
        }
        ("PUT", p) if p.starts_with("/v1/session/renew/") => {
            if leader.is_none() {
                return no_leader();
            }
            let id = p["/v1/session/renew/".len()..].to_owned();
            let now = st.now();
            match st.sessions.get_mut(&id) {
                Some(s) => {
                    s.renewed = now;
                    let s = s.clone();
                    json_resp(200, json!([session_json(&id, &s)]))
                }
                None => text(404, &format!("Session id '{id}' not found")),
            }
        }
        ("PUT", p) if p.starts_with("/v1/session/destroy/") => {
            if leader.is_none() {
                return no_leader();
            }
            let id = p["/v1/session/destroy/".len()..].to_owned();
            st.invalidate(&id, InvalidatedBy::Destroy);
            json_resp(200, json!(true))
        }
        ("PUT", p) if p.starts_with("/v1/kv/") => {
            if leader.is_none() {
                return no_leader();
            }
            let key = p["/v1/kv/".len()..].to_owned();
            kv_put(&mut st, &key, req)
        }
        ("GET", p) if p.starts_with("/v1/kv/") => {
            if !consistent_ok {
                return no_leader();
            }
            let key = &p["/v1/kv/".len()..];
            match st.kv.get(key) {
                None => Response {
                    status: 404,
                    content_type: "text/plain",
                    body: Vec::new(),
                    headers: Vec::new(),
                },
                Some(e) => {
                    let mut v = json!({
                        "Key": key, "Flags": 0, "Value": base64(&e.value),
                        "LockIndex": e.lock_index, "CreateIndex": e.create_index,
                        "ModifyIndex": e.modify_index
                    });
                    if let Some(s) = &e.session {
                        v["Session"] = json!(s);
                    }
                    json_resp(200, json!([v]))
                }
            }
        }
        (m, _) if m != "GET" && m != "PUT" => text(405, "method not allowed"),
        _ => text(404, "Invalid URL path: not a recognized HTTP API endpoint"),
    }
}

fn session_json(id: &str, s: &Session) -> Value {
    json!({
        "ID": id, "Name": s.name, "Node": "agent-local",
        "LockDelay": u64::try_from(s.lock_delay.as_nanos()).unwrap_or(u64::MAX),
        "Behavior": s.behavior,
        "TTL": s.ttl.map(|t| humantime::format_duration(t).to_string()).unwrap_or_default(),
        "NodeChecks": s.node_checks, "ServiceChecks": if s.service_checks.is_empty() { Value::Null } else { json!(s.service_checks) },
        "CreateIndex": s.create_index, "ModifyIndex": s.create_index
    })
}

fn kv_put(st: &mut State, key: &str, req: &Request) -> Response {
    let idx = st.bump();
    if let Some(session) = req.param("acquire") {
        if !st.sessions.contains_key(&session) {
            return text(
                500,
                &format!("rpc error making call: invalid session \"{session}\""),
            );
        }
        // Consul's KVS endpoint refuses (answers false) an acquire while
        // the key's lock-delay is in effect, whoever asks.
        let now = st.now();
        let free = st.kv.get(key).is_none_or(|e| e.session.is_none());
        if free && st.lock_delays.get(key).is_some_and(|until| *until > now) {
            return json_resp(200, json!(false));
        }
        let entry = st.kv.entry(key.to_owned()).or_insert(KvEntry {
            value: Vec::new(),
            session: None,
            lock_index: 0,
            create_index: idx,
            modify_index: idx,
        });
        return match &entry.session {
            Some(holder) if *holder != session => json_resp(200, json!(false)),
            Some(_) => {
                entry.value = req.body.clone();
                entry.modify_index = idx;
                json_resp(200, json!(true))
            }
            None => {
                entry.session = Some(session);
                entry.lock_index += 1;
                entry.value = req.body.clone();
                entry.modify_index = idx;
                json_resp(200, json!(true))
            }
        };
    }
    if let Some(session) = req.param("release") {
        return match st.kv.get_mut(key) {
            Some(e) if e.session.as_deref() == Some(session.as_str()) => {
                e.session = None;
                e.modify_index = idx;
                json_resp(200, json!(true))
            }
            _ => json_resp(200, json!(false)),
        };
    }
    let entry = st.kv.entry(key.to_owned()).or_insert(KvEntry {
        value: Vec::new(),
        session: None,
        lock_index: 0,
        create_index: idx,
        modify_index: idx,
    });
    entry.value = req.body.clone();
    entry.modify_index = idx;
    json_resp(200, json!(true))
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
