//! The quorum gate (`quorum-gate`): the Consul KV lock only a side with a
//! raft leader can take, held between its acquire and its release by the
//! executor ([`Executor`]'s `gates`).

use super::{Effect, Given};
use crate::consul::gate;
use crate::engine::{Action, GateRefusal, OutcomeResult};
use crate::exec::dry::{P, assumed, say};
use crate::exec::lease::take_over;
use crate::exec::{Executor, succeeded};
use std::time::Duration;

/// Create a Consul session and acquire the KV lock `key`.
pub(super) struct AcquireQuorumGate<'a> {
    pub key: &'a String,
}

impl Effect for AcquireQuorumGate<'_> {
    const LABEL: &'static str = "acquire_quorum_gate";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let key = self.key.as_str();
        if ex.gates.get(key).is_some_and(|l| l.is_held()) {
            return succeeded(format!("{key} already held"));
        }
        let client = match ex.consul.as_ref() {
            Ok(c) => c,
            Err(e) => {
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoClient { detail: e.clone() },
                };
            }
        };
        let host = key.rsplit('/').next().unwrap_or(key);
        let holder = gate::Holder::this_process("promotion");
        let ttl = ex.cfg.carbonio.promote_timeout.max(Duration::from_secs(60));
        let mut res = gate::acquire(client, host, &holder, ttl).await;
        if let Err(gate::Refusal::HeldByAnother {
            holder: Some(held),
            session,
            ..
        }) = &res
            && stale_own_holder(held, &holder)
            && take_over(client, key, session.as_deref()).await
        {
            res = gate::acquire(client, host, &holder, ttl).await;
        }
        match res {
            Ok(lock) => {
                ex.gates.insert(key.to_owned(), lock);
                succeeded(format!(
                    "acquired {key}: this side holds the Consul majority"
                ))
            }
            Err(refusal) => OutcomeResult::GateRefused {
                refusal: gate_refusal(refusal),
            },
        }
    }

    /// The gate, read and not taken: the Consul leader this side sees, and
    /// who holds the key now. No leader is the refusal the real run would
    /// meet; a key held by another session too. A free key may still be
    /// taken by another habeat before the real run: that is said.
    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        let key = self.key.as_str();
        let client = match ex.consul.as_ref() {
            Ok(c) => c,
            Err(e) => {
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoClient { detail: e.clone() },
                };
            }
        };
        say!(
            "{P} reading the Consul leader ({}/v1/status/leader) and the gate key {key}",
            client.base_url()
        );
        match client.leader().await {
            Ok(Some(leader)) => say!("{P}   Consul leader: {leader}"),
            Ok(None) => {
                say!("{P}   no Consul leader on this side: the real run would be refused here");
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoQuorum {
                        detail: "no leader (dry run)".into(),
                    },
                };
            }
            Err(e) => {
                say!("{P}   Consul did not answer ({e}): the real run would be refused here");
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoQuorum {
                        detail: e.to_string(),
                    },
                };
            }
        }
        match client.kv_get(key).await {
            Ok(Some(kv)) if kv.session.is_some() => {
                let holder = String::from_utf8_lossy(&kv.value).into_owned();
                say!(
                    "{P}   {key} is held by session {} ({holder}): the real run would be refused, \
                     unless that holder is a dead habeat of this node",
                    kv.session.as_deref().unwrap_or_default()
                );
                OutcomeResult::GateRefused {
                    refusal: GateRefusal::HeldByAnother {
                        host: key.to_owned(),
                        holder: Some(holder),
                    },
                }
            }
            Ok(_) => {
                say!(
                    "{P}   {key} is free; would create a Consul session and acquire it \
                     (PUT /v1/session/create, PUT /v1/kv/{key}?acquire=<session>)"
                );
                assumed("acquired (another habeat may take it first)")
            }
            Err(e) => {
                say!("{P}   cannot read {key} ({e}): the real run would be refused here");
                OutcomeResult::GateRefused {
                    refusal: GateRefusal::Consul {
                        detail: e.to_string(),
                    },
                }
            }
        }
    }
}

/// Release the KV lock and destroy the session.
pub(super) struct ReleaseQuorumGate<'a> {
    pub key: &'a String,
}

impl Effect for ReleaseQuorumGate<'_> {
    const LABEL: &'static str = "release_quorum_gate";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let key = self.key;
        if let Some(lock) = ex.gates.remove(key)
            && let Err(e) = lock.release().await
        {
            tracing::warn!("releasing the quorum gate {key}: {e} (its session expires by itself)");
        }
        succeeded(format!("released {key}"))
    }

    async fn simulate(
        self,
        _: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        say!(
            "{P} would release the Consul quorum gate {} (and destroy its session)",
            self.key
        );
        OutcomeResult::Succeeded {
            detail: "dry run: not executed".into(),
        }
    }
}

/// Take the quorum gate for `host` for `purpose` (an operator's command
/// that holds it for its whole run), taking the place of a habeat of this
/// node that held it and is gone (see [`stale_own_holder`]).
pub async fn acquire_gate(
    client: &crate::consul::Client,
    host: &str,
    purpose: &str,
    ttl: Duration,
) -> Result<gate::FailoverLock, gate::Refusal> {
    let holder = gate::Holder::this_process(purpose);
    let res = gate::acquire(client, host, &holder, ttl).await;
    if let Err(gate::Refusal::HeldByAnother {
        holder: Some(held),
        session,
        ..
    }) = &res
        && stale_own_holder(held, &holder)
        && take_over(client, &gate::lock_key(host), session.as_deref()).await
    {
        return gate::acquire(client, host, &holder, ttl).await;
    }
    res
}

/// True when the gate's holder (the JSON it wrote into the key) is a habeat
/// of this very node whose process is gone: a habeat killed during a
/// promotion. Its Consul session lives on until its TTL
/// (`max(promote_timeout, 60s)`, an hour by default, up to twice that in
/// Consul), and would lock the restarted habeat out of resuming its own
/// failover for that long. We hold the state lock, so no other habeat of
/// this node is acting; a dead holder on this node proves nothing about the
/// peer, and taking its place still needs a Consul write (the majority).
/// A live pid (even a reused one) is left alone: its session expires.
fn stale_own_holder(held: &str, me: &gate::Holder) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(held) else {
        return false;
    };
    let node = v.get("node").and_then(|n| n.as_str());
    let pid = v.get("pid").and_then(serde_json::Value::as_u64);
    match (node, pid) {
        (Some(n), Some(pid)) if n == me.node && pid != u64::from(me.pid) => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

/// The gate's refusal in the engine's words (the engine knows no Consul).
fn gate_refusal(r: gate::Refusal) -> GateRefusal {
    match r {
        gate::Refusal::NoQuorum { cause } => GateRefusal::NoQuorum {
            detail: cause.to_string(),
        },
        gate::Refusal::Consul { cause } => GateRefusal::Consul {
            detail: cause.to_string(),
        },
        gate::Refusal::HeldByAnother { host, holder, .. } => {
            GateRefusal::HeldByAnother { host, holder }
        }
    }
}
