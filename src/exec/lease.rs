//! The peer's serving lease before a promotion (`lease-before-takeover`,
//! docs/decisions.md §7): taken over with the quorum gate's session, or,
//! with the gate off, with a session of the executor's own that it keeps
//! and destroys when it took nothing. Part of [`super::Executor`].

use super::*;

impl Executor {
    /// [`PreStepCheck::PeerLeaseTakenOver`], `lease-before-takeover`: before
    /// an automatic promotion of `host` (or the fence of its node), take its serving lease `habeat/serving/<host>` over with the
    /// quorum gate's session. Consul lets that happen only once the
    /// primary's session has expired and its lock-delay has passed, by
    /// which time the primary has fenced itself (docs/decisions.md §7).
    /// `None`: go on (taken, or never there with `require_peer_lease:
    /// auto`); otherwise why the promotion waits.
    pub(super) async fn take_over_peer_lease(&mut self, host: &str) -> Option<PeerLeaseWait> {
        let key = crate::lease::key(host);
        // With the quorum gate off the operator has chosen to act without
        // Consul's proof (the documented emergency switch): a lease that
        // cannot be read then does not hold the promotion, unless
        // `require_peer_lease: always` demands one. A lease that can be
        // read is still honoured.
        // Said in the journal (and so in `history`) before the step runs.
        let unreadable = |key: String, detail: String| {
            if !self.cfg.safety.quorum_gate && self.cfg.safety.require_peer_lease == PeerLease::Auto
            {
                self.lease_unchecked(&key, &detail);
                None
            } else {
                Some(PeerLeaseWait::Consul { key, detail })
            }
        };
        let client = match self.consul.as_ref() {
            Ok(c) => c.clone(),
            Err(e) => return unreadable(key, e.clone()),
        };
        let consul_err = |key: &str, e: consul::Error| PeerLeaseWait::Consul {
            key: key.to_owned(),
            detail: e.to_string(),
        };
        let pair = match client.kv_get(&key).await {
            Ok(p) => p,
            Err(e) => return unreadable(key, e.to_string()),
        };
        let Some(pair) = pair else {
            return match self.cfg.safety.require_peer_lease {
                PeerLease::Auto => None,
                PeerLease::Always => Some(PeerLeaseWait::Absent { key }),
            };
        };
        // The gate's session (held: checked just before); without a gate
        // (`safety.quorum_gate: false`) a session of its own, which keeps
        // the key for as long as this node lives: the one that took it
        // before if there is one, else a new one, destroyed again when it
        // takes nothing (a wait must not leave a session per attempt).
        let session = match self.gates.values().next() {
            Some(lock) => lock.session().to_owned(),
            None => match self.lease_sessions.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let req = consul::SessionRequest {
                        name: format!("habeat took over {key}"),
                        ttl: String::new(),
                        behavior: "release".into(),
                        lock_delay: "0s".into(),
                        checks: consul::SessionChecks::AgentDefault,
                    };
                    match client.session_create(&req).await {
                        Ok(s) => s,
                        Err(e) => return Some(consul_err(&key, e)),
                    }
                }
            },
        };
        let own = self.gates.is_empty();
        let holder = gate::Holder::this_process(format!("took over the serving lease of {host}"));
        let value = serde_json::to_vec(&holder).unwrap_or_default();
        let res = client.kv_acquire(&key, &session, &value).await;
        if own {
            if matches!(res, Ok(true)) {
                self.lease_sessions.insert(key.clone(), session.clone());
            } else {
                // It holds nothing (an acquire by the holder succeeds):
                // forget it and destroy it, so no session is left behind.
                self.lease_sessions.remove(&key);
                let _ = client.session_destroy(&session).await;
            }
        }
        match res {
            Ok(true) => {
                tracing::warn!(%key, "took over the primary's serving lease: it has lapsed");
                None
            }
            Ok(false) if pair.session.is_some() => Some(PeerLeaseWait::Held { key }),
            Ok(false) => Some(PeerLeaseWait::LockDelay { key }),
            Err(e) => Some(consul_err(&key, e)),
        }
    }
}

impl Executor {
    /// The journal entry (and log line) of a serving lease that could not
    /// be read and did not hold the promotion: the guarantee of
    /// `lease-before-takeover` then rests on the operator's judgement, as
    /// the gate's does, and the operator must be able to see that it did.
    pub(super) fn lease_unchecked(&self, key: &str, detail: &str) {
        let message = format!(
            "cannot read the primary's serving lease {key} ({detail}); safety.quorum_gate is off \
             and safety.require_peer_lease is auto: going on without it (set require_peer_lease: \
             always to wait for the lease instead)"
        );
        tracing::warn!(%key, "{message}");
        self.events.report(crate::engine::Event {
            operator: None,
            at: UnixMillis::from_system_time(std::time::SystemTime::now()),
            severity: crate::engine::Severity::Warning,
            kind: crate::engine::EventKind::PeerLeaseUnchecked {
                key: key.to_owned(),
                detail: detail.to_owned(),
            },
            role: Some(crate::model::Role::Appserver),
            component: Some(crate::model::Component::Appserver),
            message,
        });
    }
}

/// Destroy `session`, the one that held `key` in the very read whose holder
/// [`stale_own_holder`] judged to be a dead habeat of this node. True when
/// it is gone and acquiring again may work.
///
/// Only that session: the key is not read again, because by then the dead
/// session may have expired and another node's habeat may hold the lock
/// with a live session, which must never be destroyed. If that happened,
/// destroying the expired session does nothing and the next acquire is
/// refused as it should be.
pub(super) async fn take_over(client: &consul::Client, key: &str, session: Option<&str>) -> bool {
    let Some(session) = session else {
        // The key had no session in that read: nothing to destroy.
        return true;
    };
    tracing::warn!(
        "the quorum gate {key} is held by session {session} of a habeat of this node that is \
         no longer running (killed during a failover?): destroying that session to resume"
    );
    client.session_destroy(session).await.unwrap_or(false)
}
