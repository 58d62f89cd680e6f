//! The quorum gate (`quorum-gate`; docs/decisions.md §2): before any automatic promotion or proxy
//! switch, habeat proves that its side of the installation holds the Consul
//! majority by taking a lock that only a side with a raft leader can write.
//!
//! Ping and Serf gossip cross the same inter-DC link, so during a partition
//! they make a live peer look dead from both sides. A KV lock acquisition is
//! a consistent raft write: the minority side cannot make it, so at most one
//! side acts. The same lock (`habeat/failover/<source host>`) also ensures
//! that one habeat in the whole installation acts per source host.
//!
//! The lock lives in a Consul session with a TTL and behavior `release`: it
//! is renewed while held, released and destroyed on [`FailoverLock::release`]
//! or drop, and released by Consul itself when habeat dies and stops renewing.

use super::{Client, Error, SessionChecks, SessionRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The KV prefix of failover locks.
pub const KEY_PREFIX: &str = "habeat/failover/";

/// Default session TTL: long enough to ride out a slow renewal, short enough
/// that a crashed habeat's lock frees itself within a minute.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The KV key of the failover lock for a source host.
pub fn lock_key(source_host: &str) -> String {
    format!("{KEY_PREFIX}{source_host}")
}

/// Why the gate stays shut. Each is a reason *not* to act automatically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No leader, the write failed, or the agent did not answer: this side
    /// may be the minority of a partition.
    #[error("cannot prove the peer is gone: this side has no Consul quorum ({cause})")]
    NoQuorum { cause: Error },
    /// Consul answered but refused (token) or answered nonsense.
    #[error("cannot prove the peer is gone: the failover lock could not be taken ({cause})")]
    Consul { cause: Error },
    /// The lock exists and another session holds it.
    #[error("another habeat holds the failover lock for {host}{}", holder_suffix(.holder))]
    HeldByAnother {
        host: String,
        /// What the holder wrote into the key, when it could be read.
        holder: Option<String>,
        /// The session that held the key in that same read: the one to
        /// destroy if `holder` turns out to be a dead habeat of this node
        /// (never a session read later, which may be someone else's).
        session: Option<String>,
    },
}

fn holder_suffix(h: &Option<String>) -> String {
    match h {
        Some(h) if !h.is_empty() => format!(" ({h})"),
        _ => String::new(),
    }
}

impl Refusal {
    fn from_error(cause: Error) -> Refusal {
        if cause.is_quorum_loss() {
            Refusal::NoQuorum { cause }
        } else {
            Refusal::Consul { cause }
        }
    }
}

/// Who takes the lock; written into the KV value so that an operator (and a
/// refused peer) can see which habeat holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    /// This node's hostname.
    pub node: String,
    pub pid: u32,
    pub version: String,
    /// Why it takes the lock ("promote accounts of mbox1").
    pub purpose: String,
}

impl Holder {
    /// This process, on this node, for `purpose`.
    pub fn this_process(purpose: impl Into<String>) -> Holder {
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        Holder {
            node,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            purpose: purpose.into(),
        }
    }
}

/// A held failover lock. While it lives, a background task renews the
/// session; [`FailoverLock::release`] (or drop) gives it back.
#[derive(Debug)]
pub struct FailoverLock {
    client: Client,
    key: String,
    session: String,
    held: Arc<AtomicBool>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

/// Take the failover lock for `source_host`, or say why not.
///
/// Creates a session (TTL `ttl`, behavior `release`, no lock delay so that
/// a restarted habeat is not locked out by its own dead session) and
/// acquires `habeat/failover/<source_host>` with it.
pub async fn acquire(
    client: &Client,
    source_host: &str,
    holder: &Holder,
    ttl: Duration,
) -> Result<FailoverLock, Refusal> {
    let ttl = ttl.clamp(Duration::from_secs(10), Duration::from_secs(86_400));
    let key = lock_key(source_host);
    let req = SessionRequest {
        name: format!("habeat failover {source_host}"),
        ttl: format!("{}s", ttl.as_secs()),
        behavior: "release".into(),
        lock_delay: "0s".into(),
        checks: SessionChecks::AgentDefault,
    };
    let session = client
        .session_create(&req)
        .await
        .map_err(Refusal::from_error)?;
    let value = serde_json::to_vec(holder).unwrap_or_default();
    match client.kv_acquire(&key, &session, &value).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = client.session_destroy(&session).await;
            let (holder, session) = match client.kv_get(&key).await {
                Ok(Some(pair)) => (
                    Some(String::from_utf8_lossy(&pair.value).into_owned()),
                    pair.session,
                ),
                _ => (None, None),
            };
            return Err(Refusal::HeldByAnother {
                host: source_host.to_owned(),
                holder,
                session,
            });
        }
        Err(e) => {
            let _ = client.session_destroy(&session).await;
            return Err(Refusal::from_error(e));
        }
    }
    let held = Arc::new(AtomicBool::new(true));
    let renewer = tokio::spawn(renew_loop(
        client.clone(),
        session.clone(),
        ttl,
        held.clone(),
    ));
    Ok(FailoverLock {
        client: client.clone(),
        key,
        session,
        held,
        renewer: Some(renewer),
        released: false,
    })
}

/// Renew every third of the TTL; give the lock up for lost when Consul says
/// the session is gone or no renewal succeeded for a whole TTL.
async fn renew_loop(client: Client, session: String, ttl: Duration, held: Arc<AtomicBool>) {
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match client.session_renew(&session).await {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => {
                tracing::warn!(%session, "the failover lock's Consul session is gone; the lock is lost");
                held.store(false, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::warn!(%session, "cannot renew the failover lock's Consul session: {e}");
                if last_ok.elapsed() >= ttl {
                    held.store(false, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

impl FailoverLock {
    /// The KV key held (`habeat/failover/<host>`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The Consul session that holds it.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// False once a renewal found the session gone (or none succeeded for a
    /// whole TTL): the lock may now belong to someone else, so an action
    /// that has not started yet must not start.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Release the lock and destroy the session.
    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let released = self.client.kv_release(&self.key, &self.session).await;
        let destroyed = self.client.session_destroy(&self.session).await;
        released.and(destroyed).map(|_| ())
    }
}

impl Drop for FailoverLock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if self.released {
            return;
        }
        // Best effort: without a runtime (or if this fails) the session
        // simply expires after its TTL and Consul releases the lock.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let key = std::mem::take(&mut self.key);
            let session = std::mem::take(&mut self.session);
            rt.spawn(async move {
                let _ = client.kv_release(&key, &session).await;
                let _ = client.session_destroy(&session).await;
            });
        }
    }
}
