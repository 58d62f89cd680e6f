//! The in-test Consul server's sessions, held against Consul's documentation
//! (SPEC 7, "Consul sessions"). Each test quotes the statement it checks,
//! from developer.hashicorp.com/consul/docs/automate/session ("Sessions and
//! distributed locks overview", below: *sessions doc*) and
//! developer.hashicorp.com/consul/api-docs/session and api-docs/kv (*API
//! docs*). The stand-in's clock is moved with `advance_clock`, so no test
//! waits for a TTL.

use crate::support;

use serde_json::{Value, json};
use std::time::Duration;
use support::consul_api::{ConsulApi, InvalidatedBy};

struct Http {
    base: String,
    c: reqwest::Client,
}

impl Http {
    fn new(api: &ConsulApi) -> Http {
        Http {
            base: api.url(),
            c: reqwest::Client::new(),
        }
    }

    async fn put(&self, path: &str, body: Option<Value>) -> (u16, String) {
        let mut r = self.c.put(format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.body(b.to_string());
        }
        let resp = r.send().await.expect("stand-in answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    async fn create(&self, body: Value) -> String {
        let (status, text) = self.put("/v1/session/create", Some(body)).await;
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        v["ID"].as_str().expect("an ID").to_owned()
    }

    async fn acquire(&self, key: &str, session: &str) -> bool {
        let (status, text) = self
            .put(&format!("/v1/kv/{key}?acquire={session}"), None)
            .await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("true or false")
    }

    async fn release(&self, key: &str, session: &str) -> bool {
        let (_, text) = self
            .put(&format!("/v1/kv/{key}?release={session}"), None)
            .await;
        serde_json::from_str(&text).expect("true or false")
    }

    async fn renew(&self, session: &str) -> u16 {
        self.put(&format!("/v1/session/renew/{session}"), None)
            .await
            .0
    }

    async fn holder(&self, key: &str) -> Option<String> {
        let resp = self
            .c
            .get(format!("{}/v1/kv/{key}", self.base))
            .send()
            .await
            .expect("answer");
        if resp.status().as_u16() == 404 {
            return None;
        }
        let v: Value = resp.json().await.expect("JSON");
        v[0]["Session"].as_str().map(str::to_owned)
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

/// Sessions doc: "The contract of a TTL is that it represents a lower bound
/// for invalidation; that is, Consul will not expire the session before the
/// TTL is reached, but it is allowed to delay the expiration past the TTL."
/// And its servers delay it up to 2 x TTL (the API docs: "the session
/// invalidation may be up to double the TTL"; Consul arms its timer at
/// TTL x SessionTTLMultiplier = 2).
#[tokio::test]
async fn a_session_expires_between_its_ttl_and_twice_its_ttl() {
    for (multiplier, alive_at, dead_at) in [(2.0, S(19), S(20)), (1.0, S(9), S(10))] {
        let api = ConsulApi::builder()
            .ttl_multiplier(multiplier)
            .start()
            .await;
        let h = Http::new(&api);
        let id = h.create(json!({"TTL": "10s", "LockDelay": "0s"})).await;
        api.advance_clock(alive_at);
        assert_eq!(
            api.sessions(),
            vec![id.clone()],
            "x{multiplier}: not before"
        );
        api.advance_clock(dead_at - alive_at);
        assert!(api.sessions().is_empty(), "x{multiplier}: expired by then");
        let inv = api.invalidations();
        assert_eq!(inv.len(), 1);
        assert_eq!(inv[0].by, InvalidatedBy::Expiry);
    }
}

/// Sessions doc: "The TTL is renewed on session creation, on session renew,
/// and on leader failover." API docs (renew): a session that no longer
/// exists answers 404.
#[tokio::test]
async fn renewal_restarts_the_ttl_and_a_gone_session_answers_404() {
    let api = ConsulApi::builder().ttl_multiplier(1.0).start().await;
    let h = Http::new(&api);
    let id = h.create(json!({"TTL": "10s"})).await;
    for _ in 0..5 {
        api.advance_clock(S(8));
        assert_eq!(h.renew(&id).await, 200);
    }
    assert_eq!(api.sessions(), vec![id.clone()], "40s old, renewed: alive");
    api.advance_clock(S(10));
    assert_eq!(h.renew(&id).await, 404, "expired: not found");
}

/// API docs: "TTL ... must be between 10s and 86400s".
#[tokio::test]
async fn a_ttl_below_ten_seconds_is_refused_as_consul_does() {
    let api = ConsulApi::builder().start().await;
    let h = Http::new(&api);
    let (status, text) = h
        .put("/v1/session/create", Some(json!({"TTL": "5s"})))
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Invalid Session TTL"), "{text}");
}

/// Sessions doc: "If the release behavior is being used, any of the locks
/// held in association with the session are released" on invalidation
/// ("Session is explicitly destroyed", "TTL expires"); then "Consul
/// prevents any of the previously held locks from being re-acquired for
/// the lock-delay interval".
#[tokio::test]
async fn invalidation_releases_the_lock_and_lock_delay_blocks_reacquiring() {
    for by_expiry in [false, true] {
        let api = ConsulApi::builder().ttl_multiplier(1.0).start().await;
        let h = Http::new(&api);
        let a = h
            .create(json!({"TTL": "10s", "LockDelay": "15s", "Behavior": "release"}))
            .await;
        let b = h.create(json!({"LockDelay": "15s"})).await;
        assert!(h.acquire("habeat/serving/mbox1", &a).await);
        assert!(!h.acquire("habeat/serving/mbox1", &b).await, "held by a");
        if by_expiry {
            api.advance_clock(S(10));
        } else {
            h.put(&format!("/v1/session/destroy/{a}"), None).await;
        }
        assert_eq!(h.holder("habeat/serving/mbox1").await, None, "released");
        assert!(
            !h.acquire("habeat/serving/mbox1", &b).await,
            "lock-delay in effect"
        );
        api.advance_clock(S(14));
        assert!(!h.acquire("habeat/serving/mbox1", &b).await, "14s < 15s");
        api.advance_clock(Duration::from_millis(1100));
        assert!(h.acquire("habeat/serving/mbox1", &b).await, "after 15s");
        let inv = api.invalidations();
        assert_eq!(inv[0].session, a);
        assert_eq!(inv[0].keys, vec!["habeat/serving/mbox1".to_owned()]);
        assert_eq!(inv[0].lock_delay, S(15));
    }
}

/// Lock-delay follows an invalidation only: a holder that releases its
/// lock hands it over at once (the lock-delay "takes place" "when a session
/// invalidation takes place").
#[tokio::test]
async fn a_plain_release_hands_the_lock_over_at_once() {
    let api = ConsulApi::builder().start().await;
    let h = Http::new(&api);
    let a = h.create(json!({"LockDelay": "15s"})).await;
    let b = h.create(json!({})).await;
    assert!(h.acquire("k", &a).await);
    assert!(h.release("k", &a).await);
    assert!(h.acquire("k", &b).await);
}

/// API docs (create): "By default, the agent uses its own node name, and
/// provides the serfHealth check, along with a 15 second lock delay";
/// "LockDelay ... Small values are treated as seconds"; sessions doc: the
/// lock-delay "is a duration between 0 and 60 seconds"; a session may be
/// created with no checks ("Checks": [] / "NodeChecks": []), TTL only.
#[tokio::test]
async fn defaults_serf_health_and_fifteen_seconds_unless_told() {
    let api = ConsulApi::builder().start().await;
    let h = Http::new(&api);
    let d = h.create(json!({})).await;
    assert_eq!(
        api.session_node_checks(&d),
        Some(vec!["serfHealth".to_owned()])
    );
    assert_eq!(api.session_lock_delay(&d), Some(S(15)));
    let none = h
        .create(json!({"TTL": "10s", "Checks": [], "NodeChecks": [], "ServiceChecks": []}))
        .await;
    assert_eq!(api.session_node_checks(&none), Some(Vec::new()));
    let num = h.create(json!({"LockDelay": 7})).await;
    assert_eq!(api.session_lock_delay(&num), Some(S(7)));
    let big = h.create(json!({"LockDelay": "5m"})).await;
    assert_eq!(api.session_lock_delay(&big), Some(S(60)));
}

/// Sessions doc: with the delete behavior "the keys corresponding to any
/// of the held locks are simply deleted".
#[tokio::test]
async fn behavior_delete_deletes_the_key() {
    let api = ConsulApi::builder().start().await;
    let h = Http::new(&api);
    let a = h
        .create(json!({"Behavior": "delete", "LockDelay": "0s"}))
        .await;
    assert!(h.acquire("k", &a).await);
    h.put(&format!("/v1/session/destroy/{a}"), None).await;
    assert_eq!(
        h.c.get(format!("{}/v1/kv/k", h.base))
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16(),
        404
    );
}

/// Two agents of one cluster (1+1+1): the one that lost the leader cannot
/// renew (writes need the leader), while the other sees the same sessions
/// and keys, and the session expires on the majority's clock.
#[tokio::test]
async fn an_agent_without_the_leader_cannot_renew_while_the_other_sees_it_expire() {
    let primary_side = ConsulApi::builder().ttl_multiplier(1.0).start().await;
    let secondary_side = primary_side.add_agent().await;
    let p = Http::new(&primary_side);
    let s = Http::new(&secondary_side);
    let a = p
        .create(json!({"TTL": "10s", "LockDelay": "15s", "Checks": []}))
        .await;
    assert!(p.acquire("habeat/serving/mbox1", &a).await);
    assert_eq!(s.holder("habeat/serving/mbox1").await, Some(a.clone()));
    primary_side.set_agent_leader_lost(true);
    let (status, text) = p.put(&format!("/v1/session/renew/{a}"), None).await;
    assert_eq!((status, text.as_str()), (500, "No cluster leader"));
    let b = s.create(json!({"Checks": []})).await;
    assert!(!s.acquire("habeat/serving/mbox1", &b).await, "still held");
    primary_side.advance_clock(S(10));
    assert!(!s.acquire("habeat/serving/mbox1", &b).await, "lock-delay");
    primary_side.advance_clock(S(16));
    assert!(s.acquire("habeat/serving/mbox1", &b).await, "taken over");
    primary_side.set_agent_leader_lost(false);
    assert_eq!(p.renew(&a).await, 404, "the old session is gone for good");
}
