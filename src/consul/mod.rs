//! A small typed client for the local Consul agent's HTTP API.
//!
//! habeat asks the Consul agent of its own datacenter three kinds of
//! questions: what Serf gossip says about the peer's nodes (members, health),
//! whether this side still has a raft leader (status, raft configuration),
//! and — through sessions and a KV lock — whether this side holds the Consul
//! majority before it acts (the quorum gate, [`gate`]).
//!
//! Every call has a timeout, every body is size-bounded, and every failure is
//! an [`Error`] that says in words which of the operator's problems it is:
//! the agent is down, slow, refuses the token, has no leader, or answered
//! something that is not Consul's JSON. The ACL token travels only in the
//! `X-Consul-Token` header; it never appears in a URL, a log line or an error.

pub mod gate;
pub mod session;

pub use session::{KvPair, SessionChecks, SessionRequest};

use crate::config::{self, Secret};
use crate::model::RaftServer;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest body habeat reads from Consul. A members list of a few thousand
/// nodes fits easily; anything bigger is not an answer we want to parse.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// What went wrong talking to Consul. Each variant is a different thing for
/// the operator to fix, so the witnesses can say which one it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing answered at the agent's address (refused, no route, DNS).
    #[error(
        "cannot reach the Consul agent at {url}: {detail} (is service-discover running? check consul.hostname, consul.port and consul.scheme)"
    )]
    Unreachable { url: String, detail: String },
    /// The agent did not answer in time.
    #[error("the Consul agent did not answer {url} within {}", humantime::format_duration(*.after))]
    Timeout { url: String, after: Duration },
    /// HTTP 401 or 403: the ACL token is missing, unknown or too weak.
    #[error(
        "Consul refused {url} with HTTP {status} ({message}): the Consul token is wrong or lacks permission (check consul.token, consul.token_file or CONSUL_HTTP_TOKEN)"
    )]
    AuthRefused {
        url: String,
        status: u16,
        message: String,
    },
    /// The Consul cluster this agent belongs to has no raft leader: this
    /// side cannot make consistent reads or writes.
    #[error("Consul has no cluster leader (answering {url})")]
    NoLeader { url: String },
    /// Any other non-success HTTP status.
    #[error("Consul answered {url} with HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The answer was cut short, too large, or not the JSON Consul sends.
    #[error("Consul answered {url} with a body habeat cannot read: {detail}")]
    BadBody { url: String, detail: String },
    /// `consul.ca_file` could not be read or holds no usable certificate.
    #[error("cannot use the Consul CA file {path}: {detail} (check consul.ca_file)")]
    CaFile { path: String, detail: String },
    /// The HTTP client itself could not be built (TLS setup).
    #[error("cannot set up the HTTP client for Consul: {0}")]
    Client(String),
    /// A session id, KV key or node name that habeat will not put into a
    /// URL (a session id that is not a UUID, a key with a `.` or `..`
    /// segment, which the URL parser would resolve into another path).
    #[error("refusing to ask Consul about {what} {value:?}: {why}")]
    BadName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

impl Error {
    /// True for the errors that mean "this side cannot reach a Consul
    /// majority" rather than "habeat is misconfigured".
    pub fn is_quorum_loss(&self) -> bool {
        matches!(
            self,
            Error::NoLeader { .. }
                | Error::Unreachable { .. }
                | Error::Timeout { .. }
                | Error::Status { .. }
        )
    }
}

/// A Serf member as `/v1/agent/members` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Member {
    pub name: String,
    #[serde(default)]
    pub addr: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Serf status: 0 none, 1 alive, 2 leaving, 3 left, 4 failed.
    pub status: i64,
}

/// Serf member status codes (`github.com/hashicorp/serf/serf.MemberStatus`),
/// named so that the witnesses read as Consul's own CLI does.
pub mod member_status {
    /// Unknown to Serf.
    pub const NONE: i64 = 0;
    /// Gossiping: the node is up.
    pub const ALIVE: i64 = 1;
    /// Shutting down gracefully.
    pub const LEAVING: i64 = 2;
    /// Shut down gracefully.
    pub const LEFT: i64 = 3;
    /// Stopped answering gossip.
    pub const FAILED: i64 = 4;

    /// The word Consul's own CLI prints for a status code.
    pub fn name(status: i64) -> &'static str {
        match status {
            NONE => "none",
            ALIVE => "alive",
            LEAVING => "leaving",
            LEFT => "left",
            FAILED => "failed",
            _ => "unknown",
        }
    }
}

/// One health check of a node, from `/v1/health/node/:node`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    #[serde(default)]
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    #[serde(default)]
    pub name: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
    #[serde(default)]
    pub output: String,
}

/// The check every Consul node has: Serf's view of whether it is alive.
pub const SERF_HEALTH: &str = "serfHealth";

/// The response header with which Consul says it left out of an answer what
/// the request's ACL token may not read. A token without `node:read` gets
/// HTTP 200 and a shortened list (not a 403) from `/v1/agent/members` and
/// `/v1/health/node/:node`: a node missing from such a list proves nothing.
/// Consul sends the header only to requests that carry a token (its own,
/// or the agent's default token).
pub const RESULTS_FILTERED_BY_ACLS: &str = "X-Consul-Results-Filtered-By-ACLs";

/// An answer, and whether Consul filtered it by the token's ACLs
/// ([`RESULTS_FILTERED_BY_ACLS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible<T> {
    pub value: T,
    /// Consul left out entries the token may not read.
    pub filtered_by_acls: bool,
}

/// `/v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfiguration {
    pub servers: Vec<RaftConfigServer>,
    #[serde(default)]
    pub index: u64,
}

/// One server of the raft configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfigServer {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    #[serde(default)]
    pub leader: bool,
    #[serde(default)]
    pub voter: bool,
}

impl From<RaftConfigServer> for RaftServer {
    fn from(s: RaftConfigServer) -> RaftServer {
        RaftServer {
            id: s.id,
            node: s.node,
            address: s.address,
            leader: s.leader,
            voter: s.voter,
        }
    }
}

/// The Carbonio node-name prefixes: Consul clients are `agent-<host>`,
/// Consul servers `server-<host>`.
pub const NODE_PREFIXES: [&str; 2] = ["agent-", "server-"];

/// The hostname as it appears inside a Carbonio node name: dots become
/// dashes, case and a trailing root dot are dropped
/// (`mbox1.example.com` → `mbox1-example-com`).
pub fn dashed_hostname(hostname: &str) -> String {
    hostname
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .replace('.', "-")
}

/// The node names Carbonio may register for a host, client name first.
pub fn candidate_node_names(hostname: &str) -> Vec<String> {
    let d = dashed_hostname(hostname);
    NODE_PREFIXES.iter().map(|p| format!("{p}{d}")).collect()
}

/// Whether a Consul node name is the Carbonio name of `hostname`.
///
/// The prefix is stripped and the rest compared whole: `agent-mbox1` is
/// `mbox1`, while `agent-mbox10` is not, and neither is `agent-mbox1-old`.
pub fn node_matches_host(node_name: &str, hostname: &str) -> bool {
    let want = dashed_hostname(hostname);
    let node = node_name.to_ascii_lowercase();
    NODE_PREFIXES
        .iter()
        .any(|p| node.strip_prefix(p).is_some_and(|rest| rest == want))
}

/// The typed client. Cheap to clone (the connection pool is shared), so the
/// prober and the quorum gate can each hold one.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<Secret>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("consul::Client")
            .field("base", &self.base)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// A client for the agent described by `consul:`; every call gives up
    /// after `timeout` unless told otherwise ([`Client::with_timeout`]).
    pub fn new(cfg: &config::Consul, timeout: Duration) -> Result<Client, Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // The agent is local; an HTTP_PROXY meant for the Internet must
            // not sit between habeat and it.
            .no_proxy()
            .user_agent(concat!("habeat/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| Error::CaFile {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::CaFile {
                path: shown.clone(),
                detail: format!("not a PEM certificate bundle: {e}"),
            })?;
            if certs.is_empty() {
                return Err(Error::CaFile {
                    path: shown,
                    detail: "no certificate found in it".into(),
                });
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| Error::Client(chain(&e)))?;
        Ok(Client {
            http,
            base: cfg.base_url(),
            token: cfg.token.clone(),
            timeout,
        })
    }

    /// The same client (same connection pool) with another per-call timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// The agent's base URL (`http://127.0.0.1:8500`), for messages.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET /v1/agent/members`: Serf's LAN view from the local agent.
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        self.members_visible().await.map(|v| v.value)
    }

    /// [`Client::members`], saying whether the token's ACLs hid members.
    pub async fn members_visible(&self) -> Result<Visible<Vec<Member>>, Error> {
        self.get_visible("/v1/agent/members").await
    }

    /// `GET /v1/health/node/:node?stale`: the node's checks, answerable by
    /// any server (no leader needed). An unknown node yields an empty list.
    pub async fn node_health(&self, node: &str) -> Result<Vec<HealthCheck>, Error> {
        self.node_health_visible(node).await.map(|v| v.value)
    }

    /// [`Client::node_health`], saying whether the token's ACLs hid checks.
    pub async fn node_health_visible(
        &self,
        node: &str,
    ) -> Result<Visible<Vec<HealthCheck>>, Error> {
        let node = segment("node name", node)?;
        self.get_visible(&format!("/v1/health/node/{node}?stale"))
            .await
    }

    /// `GET /v1/status/leader`: the raft leader's address, `None` when the
    /// cluster has none (Consul answers `""`).
    pub async fn leader(&self) -> Result<Option<String>, Error> {
        let s: String = self.get_json("/v1/status/leader").await?;
        Ok(if s.is_empty() { None } else { Some(s) })
    }

    /// `GET /v1/operator/raft/configuration` (default consistency: only a
    /// side with a leader answers, so what comes back is a healthy view).
    pub async fn raft_configuration(&self) -> Result<RaftConfiguration, Error> {
        self.get_json("/v1/operator/raft/configuration").await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.send_json(reqwest::Method::GET, path, None).await
    }

    async fn get_visible<T: DeserializeOwned>(&self, path: &str) -> Result<Visible<T>, Error> {
        let r = self.send_raw(reqwest::Method::GET, path, None).await?;
        let filtered_by_acls = r.filtered_by_acls;
        let body = check_status(r.status, r.body, r.url.clone())?;
        Ok(Visible {
            value: parse(&body, &r.url)?,
            filtered_by_acls,
        })
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let r = self.send_raw(method, path, body).await?;
        let bytes = check_status(r.status, r.body, r.url.clone())?;
        parse(&bytes, &r.url)
    }

    /// One request. Only transport-level failures are errors here; HTTP
    /// statuses are judged by the caller.
    async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Raw, Error> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).timeout(self.timeout);
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token.expose());
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let overall = tokio::time::timeout(self.timeout, async {
            let mut resp = req.send().await.map_err(|e| self.transport(&url, &e))?;
            let status = resp.status().as_u16();
            let filtered_by_acls = resp
                .headers()
                .get(RESULTS_FILTERED_BY_ACLS)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let mut buf = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if buf.len() + chunk.len() > MAX_BODY {
                            return Err(Error::BadBody {
                                url: url.clone(),
                                detail: format!("more than {MAX_BODY} bytes"),
                            });
                        }
                        buf.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(e) if e.is_timeout() => {
                        return Err(Error::Timeout {
                            url: url.clone(),
                            after: self.timeout,
                        });
                    }
                    Err(e) => {
                        return Err(Error::BadBody {
                            url: url.clone(),
                            detail: format!("the answer was cut short ({})", chain(&e)),
                        });
                    }
                }
            }
            Ok((status, buf, filtered_by_acls))
        })
        .await;
        match overall {
            Ok(Ok((status, body, filtered_by_acls))) => Ok(Raw {
                status,
                body,
                url,
                filtered_by_acls,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout {
                url,
                after: self.timeout,
            }),
        }
    }

    fn transport(&self, url: &str, e: &reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout {
                url: url.to_owned(),
                after: self.timeout,
            }
        } else {
            Error::Unreachable {
                url: url.to_owned(),
                detail: chain(e),
            }
        }
    }
}

/// One answer as it came: status, body, the URL (for messages) and
/// [`RESULTS_FILTERED_BY_ACLS`].
struct Raw {
    status: u16,
    body: Vec<u8>,
    url: String,
    filtered_by_acls: bool,
}

/// Map an HTTP status to the error an operator can act on.
fn check_status(status: u16, body: Vec<u8>, url: String) -> Result<Vec<u8>, Error> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let message = body_excerpt(&body);
    if status == 401 || status == 403 {
        return Err(Error::AuthRefused {
            url,
            status,
            message,
        });
    }
    if message.to_ascii_lowercase().contains("no cluster leader") {
        return Err(Error::NoLeader { url });
    }
    Err(Error::Status {
        url,
        status,
        message,
    })
}

fn parse<T: DeserializeOwned>(body: &[u8], url: &str) -> Result<T, Error> {
    // Duplicate keys refused at every level, not only among a struct's
    // own fields (crate::json).
    crate::json::from_slice(body).map_err(|e| Error::BadBody {
        url: url.to_owned(),
        detail: if e.is_eof() {
            format!("the JSON is cut short ({e})")
        } else {
            format!(
                "not the JSON Consul sends ({e}); it starts with {:?}",
                body_excerpt(body)
            )
        },
    })
}

/// The first line of a body, bounded, for messages.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(120).collect();
    if line.chars().count() > 120 {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("empty body");
    }
    out
}

/// An error with its causes, innermost last ("error sending request: ...:
/// Connection refused (os error 111)").
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// What is percent-encoded in a path segment or query value: everything but
/// the unreserved characters of RFC 3986 (letters, digits, `-._~`). So `/`,
/// `?`, `#`, `&`, `=` and `%` in a name can never end the segment, start a
/// query or a parameter, or be read as an escape.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment (or query value), percent-encoded. `.` and `..` are
/// refused: the URL parser resolves them (also as `%2e`) into another path,
/// which is how `../../v1/kv/evil` would leave `/v1/session/renew/`.
fn segment(what: &'static str, s: &str) -> Result<String, Error> {
    let why = match s {
        "" => "it is empty",
        "." | ".." => "it is a relative path segment",
        _ => return Ok(percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()),
    };
    Err(Error::BadName {
        what,
        value: excerpt(s),
        why,
    })
}

/// A KV key as URL path: each `/`-separated segment encoded on its own (the
/// key's `/` stay path separators, as Consul expects); no segment may be
/// `.` or `..`.
fn key_path(key: &str) -> Result<String, Error> {
    if key.is_empty() {
        return Err(Error::BadName {
            what: "the KV key",
            value: String::new(),
            why: "it is empty",
        });
    }
    key.split('/')
        .map(|part| match part {
            // Consul keys may have empty segments (`a//b`); the URL keeps them.
            "" => Ok(String::new()),
            p => segment("the KV key", p).map_err(|_| Error::BadName {
                what: "the KV key",
                value: excerpt(key),
                why: "it has a `.` or `..` segment",
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|parts| parts.join("/"))
}

/// Whether `id` is a session ID as Consul makes them: a UUID in its
/// hyphenated 8-4-4-4-12 form (not braced, URN or bare hex).
pub fn is_session_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// A session ID as a path segment or query value: only a UUID.
fn session_segment(id: &str) -> Result<String, Error> {
    if !is_session_id(id) {
        return Err(Error::BadName {
            what: "the session",
            value: excerpt(id),
            why: "it is not a UUID, as Consul's session IDs are",
        });
    }
    segment("the session", id)
}

/// A name from outside, bounded, for messages.
fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Standard base64 (with padding), as Consul encodes KV values.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    }
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_with_a_key_twice_at_any_level_is_not_consuls() {
        let ok = br#"[{"Name": "agent-a", "Status": 1, "Tags": {"role": "node"}}]"#;
        assert!(parse::<Vec<Member>>(ok, "/v1/agent/members").is_ok());
        for bad in [
            &br#"[{"Name": "agent-a", "Status": 4, "Status": 1}]"#[..],
            br#"[{"Name": "agent-a", "Status": 1, "Tags": {"role": "node", "role": "consul"}}]"#,
            br#"[{"Name": "agent-a", "Status": 1, "Extra": {"x": 1, "x": 2}}]"#,
        ] {
            let e = parse::<Vec<Member>>(bad, "/v1/agent/members").expect_err("duplicate");
            assert!(matches!(e, Error::BadBody { .. }), "{e}");
            assert!(e.to_string().contains("appears twice"), "{e}");
        }
    }

    #[test]
    fn node_names_follow_carbonio() {
        assert_eq!(
            candidate_node_names("mbox1.example.com"),
            vec!["agent-mbox1-example-com", "server-mbox1-example-com"]
        );
        assert_eq!(dashed_hostname("MBOX1.Example.com."), "mbox1-example-com");
    }

    #[test]
    fn prefix_match_is_whole_not_substring() {
        assert!(node_matches_host(
            "agent-mbox1-example-com",
            "mbox1.example.com"
        ));
        assert!(node_matches_host(
            "server-mbox1-example-com",
            "mbox1.example.com"
        ));
        assert!(!node_matches_host(
            "agent-mbox10-example-com",
            "mbox1.example.com"
        ));
        assert!(!node_matches_host("agent-mbox1", "mbox10"));
        assert!(!node_matches_host("agent-mbox10", "mbox1"));
        assert!(!node_matches_host("mbox1-example-com", "mbox1.example.com"));
        assert!(!node_matches_host("xagent-mbox1", "mbox1"));
        assert!(!node_matches_host("agent-old-mbox1", "mbox1"));
    }

    #[test]
    fn base64_roundtrip_of_known_values() {
        assert_eq!(base64_decode("aGFiZWF0").as_deref(), Some(&b"habeat"[..]));
        assert_eq!(
            base64_decode("aGFiZWF0MQ==").as_deref(),
            Some(&b"habeat1"[..])
        );
        assert_eq!(base64_decode("bad!"), None);
    }

    #[test]
    fn names_are_encoded_segment_by_segment_and_dot_segments_refused() {
        assert_eq!(
            key_path("habeat/failover/mbox1.example.com").as_deref(),
            Ok("habeat/failover/mbox1.example.com")
        );
        assert_eq!(
            key_path("habeat/x?acquire=y&z#w %").as_deref(),
            Ok("habeat/x%3Facquire%3Dy%26z%23w%20%25")
        );
        assert!(key_path("habeat/../v1/kv/evil").is_err());
        assert!(key_path("habeat/.").is_err());
        assert!(key_path("").is_err());
        assert_eq!(
            segment("node name", "agent-a/../b").as_deref(),
            Ok("agent-a%2F..%2Fb")
        );
        assert!(segment("node name", "..").is_err());
    }

    #[test]
    fn session_ids_are_hyphenated_uuids_only() {
        assert!(is_session_id("adf4238a-882b-9ddc-4a9d-5b6758e4159e"));
        for bad in [
            "../../v1/kv/evil?dc=x&acquire=",
            "adf4238a882b9ddc4a9d5b6758e4159e",
            "{adf4238a-882b-9ddc-4a9d-5b6758e4159e}",
            "urn:uuid:adf4238a-882b-9ddc-4a9d-5b6758e4159e",
            "adf4238a-882b-9ddc-4a9d-5b6758e4159",
            "",
        ] {
            assert!(!is_session_id(bad), "{bad}");
            assert!(session_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_operator_errors() {
        let e = check_status(403, b"ACL not found".to_vec(), "u".into()).unwrap_err();
        assert!(e.to_string().contains("token is wrong"), "{e}");
        let e = check_status(500, b"No cluster leader".to_vec(), "u".into()).unwrap_err();
        assert_eq!(e, Error::NoLeader { url: "u".into() });
        let e = check_status(500, b"boom".to_vec(), "u".into()).unwrap_err();
        assert!(matches!(e, Error::Status { status: 500, .. }));
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let cfg = config::Consul {
            token: Some(Secret::new("s3cr3t-token")),
            ..config::Consul::default()
        };
        let c = Client::new(&cfg, Duration::from_secs(1)).expect("client builds");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
