//! Sessions and the KV store: what the quorum gate ([`super::gate`]) and
//! the serving lease ([`crate::lease`]) are built on. A session is created
//! with a TTL, a behavior (`release`: its locks are released when it is
//! invalidated), a lock-delay and its checks; it must be renewed within its
//! TTL; a KV key is locked by acquiring it with a session.

use super::{
    Client, Error, Raw, base64_decode, check_status, excerpt, is_session_id, key_path, parse,
    session_segment,
};
use serde::Deserialize;

/// What a KV entry holds (`GET /v1/kv/:key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPair {
    pub key: String,
    /// The decoded value (Consul sends base64).
    pub value: Vec<u8>,
    /// The session holding the key's lock, if any.
    pub session: Option<String>,
    pub lock_index: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawKvPair {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    lock_index: u64,
}

/// Body of `PUT /v1/session/create`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionRequest {
    pub name: String,
    /// Humantime-free Consul duration, e.g. `"30s"`. Between 10s and 24h.
    #[serde(rename = "TTL")]
    pub ttl: String,
    /// `release` (locks are released when the session dies) or `delete`.
    pub behavior: String,
    /// How long a lock stays blocked after its session is invalidated.
    pub lock_delay: String,
    /// Which health checks the session depends on.
    #[serde(flatten)]
    pub checks: SessionChecks,
}

/// The health checks a session is bound to. The agent adds its node's
/// `serfHealth` unless the request names the checks itself; a session with
/// none lives by its TTL alone, so a Serf flap cannot invalidate it
/// (patroni#522: a serfHealth flap dropped the leader lock).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionChecks {
    /// Whatever the agent adds by default (`serfHealth`).
    #[default]
    AgentDefault,
    /// No checks at all (`"Checks": []`, `"NodeChecks": []`): TTL only.
    None,
}

impl serde::Serialize for SessionChecks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if *self == SessionChecks::None {
            let empty: [&str; 0] = [];
            m.serialize_entry("Checks", &empty)?;
            m.serialize_entry("NodeChecks", &empty)?;
        }
        m.end()
    }
}

#[derive(Deserialize)]
struct SessionCreated {
    #[serde(rename = "ID")]
    id: String,
}

impl Client {
    /// `PUT /v1/session/create`: returns the new session's ID.
    pub async fn session_create(&self, req: &SessionRequest) -> Result<String, Error> {
        let body = serde_json::to_vec(req).map_err(|e| Error::Client(e.to_string()))?;
        let created: SessionCreated = self
            .send_json(reqwest::Method::PUT, "/v1/session/create", Some(body))
            .await?;
        if !is_session_id(&created.id) {
            return Err(Error::BadBody {
                url: format!("{}/v1/session/create", self.base),
                detail: format!(
                    "the new session's ID {:?} is not a UUID, as Consul's session IDs are",
                    excerpt(&created.id)
                ),
            });
        }
        Ok(created.id)
    }

    /// `PUT /v1/session/renew/:id`: `false` when Consul no longer knows the
    /// session (it expired or was destroyed: its locks are gone).
    pub async fn session_renew(&self, id: &str) -> Result<bool, Error> {
        let path = format!("/v1/session/renew/{}", session_segment(id)?);
        match self
            .send_raw(reqwest::Method::PUT, &path, None)
            .await
            .and_then(|r| check_status(r.status, r.body, r.url))
        {
            Ok(_) => Ok(true),
            Err(Error::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PUT /v1/session/destroy/:id`: invalidates the session, releasing
    /// (behavior `release`) every lock it holds.
    pub async fn session_destroy(&self, id: &str) -> Result<bool, Error> {
        let path = format!("/v1/session/destroy/{}", session_segment(id)?);
        self.send_json(reqwest::Method::PUT, &path, None).await
    }

    /// `PUT /v1/kv/:key?acquire=:session`: `true` when this session now
    /// holds the lock, `false` when another session does.
    pub async fn kv_acquire(&self, key: &str, session: &str, value: &[u8]) -> Result<bool, Error> {
        let path = format!(
            "/v1/kv/{}?acquire={}",
            key_path(key)?,
            session_segment(session)?
        );
        self.send_json(reqwest::Method::PUT, &path, Some(value.to_vec()))
            .await
    }

    /// `PUT /v1/kv/:key?release=:session`: `true` when the lock was released.
    pub async fn kv_release(&self, key: &str, session: &str) -> Result<bool, Error> {
        let path = format!(
            "/v1/kv/{}?release={}",
            key_path(key)?,
            session_segment(session)?
        );
        self.send_json(reqwest::Method::PUT, &path, None).await
    }

    /// `GET /v1/kv/:key`: `None` when the key does not exist.
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvPair>, Error> {
        let path = format!("/v1/kv/{}", key_path(key)?);
        let Raw {
            status, body, url, ..
        } = self.send_raw(reqwest::Method::GET, &path, None).await?;
        if status == 404 {
            return Ok(None);
        }
        let body = check_status(status, body, url.clone())?;
        let raw: Vec<RawKvPair> = parse(&body, &url)?;
        let Some(first) = raw.into_iter().next() else {
            return Ok(None);
        };
        let value = match first.value {
            Some(v) => base64_decode(&v).ok_or_else(|| Error::BadBody {
                url: url.clone(),
                detail: "the KV value is not valid base64".into(),
            })?,
            None => Vec::new(),
        };
        let session = first.session.filter(|s| !s.is_empty());
        if let Some(id) = &session
            && !is_session_id(id)
        {
            // It would go into a URL next (to destroy a dead holder's
            // session): an answer that is not Consul's is no answer.
            return Err(Error::BadBody {
                url,
                detail: format!(
                    "the key's Session {:?} is not a UUID, as Consul's session IDs are",
                    excerpt(id)
                ),
            });
        }
        Ok(Some(KvPair {
            key: first.key,
            value,
            session,
            lock_index: first.lock_index,
        }))
    }

    /// The session holding `key`'s lock, `None` when the key does not exist
    /// or nobody holds it: who serves, for the lease takeover.
    pub async fn kv_holder(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self.kv_get(key).await?.and_then(|p| p.session))
    }
}
