//! The typed Consul client against the in-test Consul API server: bodies
//! as Consul's documentation shapes them, the token in its header, and every
//! fault turned into the error an operator can act on.

use crate::support;

use habeat::consul::{Client, Error, SessionRequest};
use std::time::Duration;
use support::consul_api::{ConsulApi, Fault, member};

fn client(api: &ConsulApi) -> Client {
    Client::new(&api.consul_config(), Duration::from_millis(800)).expect("client")
}

#[tokio::test]
async fn reads_members_health_leader_and_raft_configuration() {
    let api = ConsulApi::builder()
        .node("agent-mbox1-example-com", "10.0.0.5", member::ALIVE)
        .node("server-svc1-example-com", "10.0.0.7", member::FAILED)
        .raft_server("id-1", "server-svc1-example-com", "10.0.0.7:8300", true)
        .raft_server("id-2", "server-svc2-example-com", "10.0.0.8:8300", false)
        .leader(Some("10.0.0.7:8300"))
        .start()
        .await;
    let c = client(&api);

    let members = c.members().await.expect("members");
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].name, "agent-mbox1-example-com");
    assert_eq!(members[0].addr, "10.0.0.5");
    assert_eq!(members[0].port, 8301);
    assert_eq!(members[0].status, 1);
    assert_eq!(members[1].status, 4);

    let checks = c
        .node_health("server-svc1-example-com")
        .await
        .expect("health");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].check_id, "serfHealth");
    assert_eq!(checks[0].status, "critical");
    assert!(
        c.node_health("agent-nobody")
            .await
            .expect("unknown node")
            .is_empty()
    );
    let health_req = api
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/v1/health/node/"))
        .expect("health request recorded");
    assert_eq!(health_req.query, "stale", "health must be read with ?stale");

    assert_eq!(
        c.leader().await.expect("leader").as_deref(),
        Some("10.0.0.7:8300")
    );
    let raft = c.raft_configuration().await.expect("raft");
    assert_eq!(raft.servers.len(), 2);
    assert_eq!(raft.servers[0].id, "id-1");
    assert!(raft.servers[0].leader && raft.servers[0].voter);
    assert_eq!(raft.servers[1].address, "10.0.0.8:8300");
}

#[tokio::test]
async fn without_a_leader_reads_say_so_and_writes_fail_as_no_leader() {
    let api = ConsulApi::builder().leader(None).start().await;
    let c = client(&api);
    assert_eq!(c.leader().await.expect("leader answers"), None);
    let err = c.raft_configuration().await.expect_err("needs a leader");
    assert!(matches!(err, Error::NoLeader { .. }), "{err:?}");
    let err = c
        .session_create(&SessionRequest {
            name: "t".into(),
            ttl: "15s".into(),
            behavior: "release".into(),
            lock_delay: "0s".into(),
            checks: Default::default(),
        })
        .await
        .expect_err("writes need a leader");
    assert!(matches!(err, Error::NoLeader { .. }), "{err:?}");
    // The gate's refusal says "this side has no Consul quorum" around
    // this error; the error itself says what Consul answered, once.
    assert!(err.to_string().contains("no cluster leader"), "{err}");
    // Gossip is local: members still answer.
    assert!(c.members().await.is_ok());
}

#[tokio::test]
async fn the_token_goes_in_the_header_and_a_wrong_one_is_reported_as_a_token_problem() {
    let api = ConsulApi::builder().token("right-token-123").start().await;
    let good = client(&api);
    good.members().await.expect("right token accepted");
    let rec = api.requests();
    assert_eq!(rec[0].token.as_deref(), Some("right-token-123"));
    assert!(
        rec.iter().all(|r| !r.query.contains("right-token")),
        "token leaked into a URL"
    );

    let mut cfg = api.consul_config();
    cfg.token = Some(habeat::config::Secret::new("wrong-token-456"));
    let bad = Client::new(&cfg, Duration::from_secs(1)).expect("client");
    let err = bad.members().await.expect_err("wrong token refused");
    assert!(
        matches!(err, Error::AuthRefused { status: 403, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("the Consul token is wrong or lacks permission"),
        "{text}"
    );
    assert!(!text.contains("wrong-token-456"), "token leaked: {text}");

    cfg.token = None;
    let none = Client::new(&cfg, Duration::from_secs(1)).expect("client");
    let err = none.members().await.expect_err("no token refused");
    assert!(matches!(err, Error::AuthRefused { .. }), "{err:?}");
}

#[tokio::test]
async fn every_fault_maps_to_its_own_error() {
    let api = ConsulApi::builder()
        .node("agent-mbox1", "10.0.0.5", member::ALIVE)
        .start()
        .await;
    let c = client(&api);
    type IsRight = fn(&Error) -> bool;
    let cases: Vec<(Fault, IsRight, &str)> = vec![
        (
            Fault::Slow(Duration::from_secs(3)),
            |e| matches!(e, Error::Timeout { .. }),
            "did not answer",
        ),
        (
            Fault::ServerError,
            |e| matches!(e, Error::Status { status: 500, .. }),
            "HTTP 500",
        ),
        (
            Fault::Forbidden,
            |e| matches!(e, Error::AuthRefused { status: 403, .. }),
            "token is wrong",
        ),
        (
            Fault::Unauthorized,
            |e| matches!(e, Error::AuthRefused { status: 401, .. }),
            "token is wrong",
        ),
        (
            Fault::Truncated,
            |e| matches!(e, Error::BadBody { .. }),
            "cut short",
        ),
        (
            Fault::NotJson,
            |e| matches!(e, Error::BadBody { .. }),
            "not the JSON",
        ),
        (
            Fault::Hangup,
            |e| matches!(e, Error::Unreachable { .. }),
            "cannot reach",
        ),
    ];
    for (fault, is_right, words) in cases {
        api.set_fault(Some(fault.clone()));
        let err = c.members().await.expect_err("fault must fail");
        assert!(is_right(&err), "{fault:?} gave {err:?}");
        assert!(err.to_string().contains(words), "{fault:?}: {err}");
    }
    api.set_fault(None);
    assert!(c.members().await.is_ok(), "healthy again after the faults");
}

#[tokio::test]
async fn an_agent_that_is_not_running_is_unreachable() {
    let port = support::closed_port();
    let cfg = habeat::config::Consul {
        port,
        ..habeat::config::Consul::default()
    };
    let c = Client::new(&cfg, Duration::from_secs(1)).expect("client");
    let err = c.members().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("service-discover"), "{err}");
}

#[tokio::test]
async fn a_missing_ca_file_is_a_clear_configuration_error() {
    let cfg = habeat::config::Consul {
        scheme: habeat::config::Scheme::Https,
        ca_file: Some("/nonexistent/consul-ca.pem".into()),
        ..habeat::config::Consul::default()
    };
    let err = Client::new(&cfg, Duration::from_secs(1)).expect_err("no CA file");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/consul-ca.pem") && text.contains("consul.ca_file"),
        "{text}"
    );
}

#[tokio::test]
async fn kv_lock_semantics_through_the_client() {
    let api = ConsulApi::builder().start().await;
    let c = client(&api);
    let req = SessionRequest {
        name: "a".into(),
        ttl: "15s".into(),
        behavior: "release".into(),
        lock_delay: "0s".into(),
        checks: Default::default(),
    };
    let s1 = c.session_create(&req).await.expect("session 1");
    let s2 = c.session_create(&req).await.expect("session 2");
    assert_ne!(s1, s2);
    assert!(
        c.kv_acquire("habeat/x", &s1, b"one")
            .await
            .expect("acquire")
    );
    assert!(
        !c.kv_acquire("habeat/x", &s2, b"two")
            .await
            .expect("acquire 2")
    );
    let pair = c.kv_get("habeat/x").await.expect("get").expect("exists");
    assert_eq!(pair.value, b"one");
    assert_eq!(pair.session.as_deref(), Some(s1.as_str()));
    assert!(
        !c.kv_release("habeat/x", &s2)
            .await
            .expect("release by non-holder")
    );
    assert!(c.kv_release("habeat/x", &s1).await.expect("release"));
    assert!(
        c.kv_acquire("habeat/x", &s2, b"two")
            .await
            .expect("now free")
    );
    assert!(c.session_renew(&s2).await.expect("renew"));
    assert!(c.session_destroy(&s2).await.expect("destroy"));
    assert!(!c.session_renew(&s2).await.expect("renew of a dead session"));
    assert_eq!(
        api.lock_holder("habeat/x"),
        None,
        "destroy released the lock"
    );
    assert_eq!(c.kv_get("habeat/missing").await.expect("get"), None);
}

/// Run openssl (test set-up), panicking with its stderr on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn https_trusts_the_configured_ca_and_nothing_else() {
    if !support::require(&[support::Need::OPENSSL]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=habeat test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(d, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(d, &csr);
    std::fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let port = support::free_port();
    let server = KillOnDrop(
        std::process::Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", "srv.pem", "-key", "srv.key", "-www", "-quiet"])
            .current_dir(d)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start openssl s_server"),
    );
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < until, "s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut cfg = habeat::config::Consul {
        port,
        scheme: habeat::config::Scheme::Https,
        ca_file: Some(d.join("ca.pem")),
        ..habeat::config::Consul::default()
    };
    // With the CA the TLS handshake succeeds; s_server answers an HTML
    // status page, which is (rightly) not Consul's JSON.
    let err = Client::new(&cfg, Duration::from_secs(2))
        .expect("client with CA")
        .members()
        .await
        .expect_err("not Consul");
    assert!(matches!(err, Error::BadBody { .. }), "{err:?}");

    // Without it, the same server is not trusted.
    cfg.ca_file = None;
    let err = Client::new(&cfg, Duration::from_secs(2))
        .expect("client without CA")
        .members()
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    drop(server);
}

#[tokio::test]
async fn a_token_without_node_read_gets_a_filtered_list_and_the_client_says_so() {
    let api = ConsulApi::builder()
        .node("agent-mbox1-example-com", "10.0.0.5", member::ALIVE)
        .node("agent-mbox2-example-com", "10.0.0.6", member::ALIVE)
        .token("tok")
        .start()
        .await;
    let c = client(&api);
    let all = c.members_visible().await.expect("members");
    assert_eq!(all.value.len(), 2);
    assert!(!all.filtered_by_acls, "nothing was hidden");

    // The token may read its own node only: Consul answers 200, leaves the
    // other node out and says so in a header, not with a 403.
    api.set_fault(Some(Fault::AclFiltered(vec![
        "agent-mbox2-example-com".into(),
    ])));
    let seen = c.members_visible().await.expect("still HTTP 200");
    assert!(seen.filtered_by_acls, "{seen:?}");
    let names: Vec<&str> = seen.value.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["agent-mbox2-example-com"]);
    let hidden = c
        .node_health_visible("agent-mbox1-example-com")
        .await
        .expect("still HTTP 200");
    assert!(
        hidden.value.is_empty() && hidden.filtered_by_acls,
        "{hidden:?}"
    );
    let own = c
        .node_health_visible("agent-mbox2-example-com")
        .await
        .expect("health");
    assert_eq!(own.value.len(), 1);
    assert!(!own.filtered_by_acls, "{own:?}");
}
