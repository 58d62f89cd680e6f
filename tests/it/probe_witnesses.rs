//! Witnesses on loopback: which witnesses a configuration gets, TCP/HTTP/ICMP
//! against real sockets, the operator's command, and the Consul witnesses
//! against the in-test Consul API (every fault is Unknown, never Down).

use crate::support;

use habeat::config::ProbeSpec;
use habeat::model::{Component, Observation, Role, Round, Vote, WitnessKind};
use habeat::probe::Prober;
use std::time::{Duration, Instant};
use support::consul_api::{ConsulApi, Fault, member};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn obs<'a>(round: &'a Round, component: Component, kind: &WitnessKind) -> &'a Observation {
    round
        .observations
        .iter()
        .find(|o| o.witness.component == component && &o.witness.kind == kind)
        .unwrap_or_else(|| panic!("no {component}/{kind} observation in {round:#?}"))
}

async fn timed_round(p: &Prober) -> Round {
    let t = Instant::now();
    let r = p.round().await;
    assert!(
        t.elapsed() < support::round_bound(p.timeout()),
        "round hung: {:?}",
        t.elapsed()
    );
    r
}

/// A tiny HTTP server answering every request with `status` and `body`.
async fn http_server(status: u16, body: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[test]
fn roles_decide_which_peer_components_are_watched() {
    let mut cfg = support::config(&[Role::Proxyserver]);
    {
        let peer = support::peer_mut(&mut cfg);
        peer.proxy_ip = Some("10.0.0.1".into());
        peer.appserver_ip = Some("10.0.0.2".into());
        peer.directorysrv_ip = Some("10.0.0.3".into());
        peer.consul_ips = vec!["10.0.0.4".into(), "10.0.0.5".into()];
        peer.proxyserver_vmname = Some("proxy1.example.com".into());
        peer.appserver_vmname = Some("mbox1.example.com".into());
        peer.consul_vmnames = vec!["svc1.example.com".into()];
    }
    cfg.probes.proxy = vec![ProbeSpec::Tcp(443), ProbeSpec::Icmp];
    cfg.probes.appserver = vec![ProbeSpec::Tcp(7071)];
    let p = Prober::new(&cfg).expect("prober");
    let ids: Vec<String> = p.witnesses().iter().map(ToString::to_string).collect();
    assert_eq!(
        ids,
        [
            "proxy/icmp",
            "proxy/tcp:443",
            "proxy/consul_members",
            "proxy/consul_health",
            "directory/icmp",
        ],
        "proxyserver watches the proxy (icmp once) and the directory only"
    );

    cfg.local.roles = vec![Role::Appserver, Role::Consulserver];
    let ids: Vec<String> = Prober::new(&cfg)
        .expect("prober")
        .witnesses()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        ids,
        [
            "appserver/icmp",
            "appserver/tcp:7071",
            "appserver/consul_members",
            "appserver/consul_health",
            "directory/icmp",
            "consul/icmp",
            "consul/consul_members",
            "consul/consul_health",
        ],
        "several consul IPs are one witness per kind"
    );
}

#[test]
fn an_address_that_is_not_an_ip_is_refused_with_its_name() {
    let mut cfg = support::config(&[Role::Appserver]);
    support::peer_mut(&mut cfg).appserver_ip = Some("mbox1.example".into());
    let err = Prober::new(&cfg).err().expect("not an IP");
    let text = err.to_string();
    assert!(
        text.contains("mbox1.example") && text.contains("appserver"),
        "{text}"
    );
}

#[tokio::test]
async fn loopback_answers_icmp_and_tcp_and_a_closed_port_is_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let closed = support::closed_port();
    let mut cfg = support::network_only(&[Role::Appserver], Duration::from_secs(1));
    support::peer_mut(&mut cfg).appserver_ip = Some("127.0.0.1".into());
    cfg.probes.appserver = vec![ProbeSpec::Tcp(open), ProbeSpec::Tcp(closed)];
    let p = Prober::new(&cfg).expect("prober");
    let r = timed_round(&p).await;

    let icmp = obs(&r, Component::Appserver, &WitnessKind::Icmp);
    assert_eq!(icmp.vote, Vote::Up, "{icmp:?}");
    assert!(
        icmp.reason.contains("echo reply from 127.0.0.1"),
        "{icmp:?}"
    );
    let up = obs(&r, Component::Appserver, &WitnessKind::Tcp { port: open });
    assert_eq!(up.vote, Vote::Up, "{up:?}");
    let down = obs(&r, Component::Appserver, &WitnessKind::Tcp { port: closed });
    assert_eq!(down.vote, Vote::Down, "{down:?}");
    assert!(down.reason.contains("refused"), "{down:?}");
    assert!(
        r.observations
            .iter()
            .all(|o| o.latency < Duration::from_secs(3))
    );
    // No Consul witness and no gate: the local agent is not asked.
    assert_eq!(r.local_leader, None);
    drop(listener);
}

#[tokio::test]
async fn http_status_and_body_decide_the_vote() {
    let ok = http_server(200, "carbonio ok").await;
    let redirect = http_server(302, "").await;
    let broken = http_server(503, "down for maintenance").await;
    let mut cfg = support::network_only(&[Role::Appserver], Duration::from_secs(1));
    support::peer_mut(&mut cfg).appserver_ip = Some("127.0.0.1".into());
    let urls = [
        format!("http://127.0.0.1:{ok}/"),
        format!("http://127.0.0.1:{redirect}/"),
        format!("http://127.0.0.1:{broken}/"),
        format!("http://127.0.0.1:{}/", support::closed_port()),
    ];
    cfg.probes.appserver = urls.iter().cloned().map(ProbeSpec::Http).collect();
    let r = timed_round(&Prober::new(&cfg).expect("prober")).await;
    let vote = |u: &str| {
        obs(
            &r,
            Component::Appserver,
            &WitnessKind::Http { url: u.into() },
        )
    };
    assert_eq!(vote(&urls[0]).vote, Vote::Up, "{:?}", vote(&urls[0]));
    assert_eq!(vote(&urls[1]).vote, Vote::Up, "3xx is alive");
    assert_eq!(vote(&urls[2]).vote, Vote::Down);
    assert!(
        vote(&urls[2]).reason.contains("503"),
        "{:?}",
        vote(&urls[2])
    );
    assert_eq!(vote(&urls[3]).vote, Vote::Down);

    // Optional body match (function level: the config has no key for it).
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let f = habeat::probe::net::http(&client, &urls[0], Some("carbonio ok"), deadline).await;
    assert_eq!(f.vote, Vote::Up, "{f:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let f = habeat::probe::net::http(&client, &urls[0], Some("zimbra"), deadline).await;
    assert_eq!(f.vote, Vote::Down, "{f:?}");
}

#[tokio::test]
async fn an_http_probe_this_host_cannot_even_try_is_unknown_not_down() {
    // A name that cannot resolve (RFC 2606 .invalid) proves nothing about
    // the peer: this host could not ask.
    let mut cfg = support::network_only(&[Role::Appserver], Duration::from_secs(1));
    support::peer_mut(&mut cfg).appserver_ip = Some("127.0.0.1".into());
    let unresolvable = "http://mbox1.habeat-test.invalid/".to_owned();
    let refused = format!("http://127.0.0.1:{}/", support::closed_port());
    cfg.probes.appserver = vec![
        ProbeSpec::Http(unresolvable.clone()),
        ProbeSpec::Http(refused.clone()),
    ];
    let r = timed_round(&Prober::new(&cfg).expect("prober")).await;
    let o = obs(
        &r,
        Component::Appserver,
        &WitnessKind::Http { url: unresolvable },
    );
    assert_eq!(o.vote, Vote::Unknown, "{o:?}");
    assert!(
        o.reason.contains("does not resolve from this host"),
        "{o:?}"
    );
    // A refused connection is still the peer's answer.
    let o = obs(
        &r,
        Component::Appserver,
        &WitnessKind::Http { url: refused },
    );
    assert_eq!(o.vote, Vote::Down, "{o:?}");

    // A URL no request can be built from is this host's configuration.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let f = habeat::probe::net::http(&client, "http://[::1/", None, deadline).await;
    assert_eq!(f.vote, Vote::Unknown, "{f:?}");
}

#[tokio::test]
async fn an_http_server_that_never_answers_is_down_within_the_timeout() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let mut cfg = support::network_only(&[Role::Appserver], Duration::from_millis(500));
    support::peer_mut(&mut cfg).appserver_ip = Some("127.0.0.1".into());
    let url = format!("http://127.0.0.1:{port}/");
    cfg.probes.appserver = vec![ProbeSpec::Http(url.clone())];
    let r = timed_round(&Prober::new(&cfg).expect("prober")).await;
    let o = obs(&r, Component::Appserver, &WitnessKind::Http { url });
    assert_eq!(o.vote, Vote::Down, "{o:?}");
    drop(l);
}

#[tokio::test]
async fn the_command_witness_maps_exit_codes_and_kills_on_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("witness.sh");
    // The witness reads its subject from the environment, never from argv
    // built by habeat; it answers by the component it is asked about.
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$HABEAT_COMPONENT\" in\n\
         appserver) echo \"vm $HABEAT_HOSTNAMES running\"; exit 0;;\n\
         directory) echo \"vm stopped at $HABEAT_ADDRESSES\"; exit 1;;\n\
         proxy) exit 7;;\n\
         consul) sleep 30;;\n\
         esac\n",
    )
    .expect("write script");
    let mut cfg = support::network_only(
        &[Role::Appserver, Role::Proxyserver, Role::Consulserver],
        Duration::from_millis(700),
    );
    {
        let peer = support::peer_mut(&mut cfg);
        peer.appserver_vmname = Some("mbox1.example.com".into());
        peer.directorysrv_ip = Some("127.0.0.9".into());
    }
    cfg.witnesses.command = vec!["/bin/sh".into(), script.display().to_string()];
    let r = timed_round(&Prober::new(&cfg).expect("prober")).await;
    let c = |comp| obs(&r, comp, &WitnessKind::Command);
    assert_eq!(c(Component::Appserver).vote, Vote::Up);
    assert!(
        c(Component::Appserver)
            .reason
            .contains("vm mbox1.example.com running"),
        "{:?}",
        c(Component::Appserver)
    );
    assert_eq!(c(Component::Directory).vote, Vote::Down);
    assert!(c(Component::Directory).reason.contains("127.0.0.9"));
    assert_eq!(c(Component::Proxy).vote, Vote::Unknown);
    assert!(c(Component::Proxy).reason.contains("exited 7"));
    assert_eq!(c(Component::Consul).vote, Vote::Unknown);
    assert!(
        c(Component::Consul).reason.contains("killed"),
        "{:?}",
        c(Component::Consul)
    );
}

fn consul_cfg(api: &ConsulApi, roles: &[Role]) -> habeat::config::Config {
    let mut cfg = support::config(roles);
    cfg.consul = api.consul_config();
    cfg.detection.timeout = Duration::from_millis(800);
    let peer = support::peer_mut(&mut cfg);
    peer.appserver_vmname = Some("mbox1.example.com".into());
    peer.consul_vmnames = vec!["svc1.example.com".into(), "svc2.example.com".into()];
    cfg
}

#[tokio::test]
async fn consul_members_and_health_follow_the_peer_nodes() {
    let api = ConsulApi::builder()
        // mbox10 is alive; mbox1 must not be mistaken for it.
        .node("agent-mbox10-example-com", "10.0.0.10", member::ALIVE)
        .node("agent-mbox1-example-com", "10.0.0.1", member::FAILED)
        .node("server-svc1-example-com", "10.0.0.21", member::FAILED)
        .node("server-svc2-example-com", "10.0.0.22", member::ALIVE)
        .raft_server("uuid-1", "server-svc1-example-com", "10.0.0.21:8300", false)
        .raft_server("uuid-9", "server-local", "10.1.0.9:8300", true)
        .token("tok")
        .start()
        .await;
    let p = Prober::new(&consul_cfg(&api, &[Role::Appserver, Role::Consulserver])).expect("prober");

    let r = timed_round(&p).await;
    let m = obs(&r, Component::Appserver, &WitnessKind::ConsulMembers);
    assert_eq!(
        m.vote,
        Vote::Down,
        "mbox1 failed even though mbox10 is alive: {m:?}"
    );
    assert!(
        m.reason
            .contains("agent-mbox1-example-com status 4 (failed)"),
        "{m:?}"
    );
    let h = obs(&r, Component::Appserver, &WitnessKind::ConsulHealth);
    assert_eq!(h.vote, Vote::Down, "{h:?}");
    assert!(h.reason.contains("critical"), "{h:?}");
    // One of two consul servers alive: the component is Up.
    assert_eq!(
        obs(&r, Component::Consul, &WitnessKind::ConsulMembers).vote,
        Vote::Up
    );
    assert_eq!(
        obs(&r, Component::Consul, &WitnessKind::ConsulHealth).vote,
        Vote::Up
    );
    assert_eq!(r.local_leader, Some(true));
    let raft = r.raft_servers.as_ref().expect("raft configuration");
    assert_eq!(raft.len(), 2);
    assert_eq!(raft[0].id, "uuid-1");
    assert_eq!(raft[1].address, "10.1.0.9:8300");

    // mbox1 comes back; svc2 leaves; svc1 stays failed: consul all Down.
    api.set_member_status("agent-mbox1-example-com", member::ALIVE);
    api.set_member_status("server-svc2-example-com", member::LEFT);
    api.set_leader(None);
    let r = timed_round(&p).await;
    assert_eq!(
        obs(&r, Component::Appserver, &WitnessKind::ConsulMembers).vote,
        Vote::Up
    );
    assert_eq!(
        obs(&r, Component::Appserver, &WitnessKind::ConsulHealth).vote,
        Vote::Up
    );
    assert_eq!(
        obs(&r, Component::Consul, &WitnessKind::ConsulMembers).vote,
        Vote::Down
    );
    // svc2 left: the catalog forgot it, so health cannot say Down for it.
    let ch = obs(&r, Component::Consul, &WitnessKind::ConsulHealth);
    assert_eq!(ch.vote, Vote::Unknown, "{ch:?}");
    assert_eq!(r.local_leader, Some(false));
    assert_eq!(
        r.raft_servers, None,
        "no leader: no trustworthy configuration"
    );

    // A node that is absent from the members list is Down.
    api.remove_member("agent-mbox1-example-com");
    let r = timed_round(&p).await;
    let m = obs(&r, Component::Appserver, &WitnessKind::ConsulMembers);
    assert_eq!(m.vote, Vote::Down, "{m:?}");
    assert!(
        m.reason.contains("no member named agent-mbox1-example-com"),
        "{m:?}"
    );
}

#[tokio::test]
async fn every_consul_fault_is_unknown_with_the_reason() {
    let api = ConsulApi::builder()
        .node("agent-mbox1-example-com", "10.0.0.1", member::FAILED)
        .start()
        .await;
    let p = Prober::new(&consul_cfg(&api, &[Role::Appserver])).expect("prober");
    let r = timed_round(&p).await;
    assert_eq!(
        obs(&r, Component::Appserver, &WitnessKind::ConsulMembers).vote,
        Vote::Down,
        "sanity: without a fault the failed node is Down"
    );
    let cases = [
        (Fault::Slow(Duration::from_secs(5)), "did not answer"),
        (Fault::ServerError, "HTTP 500"),
        (
            Fault::Forbidden,
            "the Consul token is wrong or lacks permission",
        ),
        (
            Fault::Unauthorized,
            "the Consul token is wrong or lacks permission",
        ),
        (Fault::Truncated, "cut short"),
        (Fault::NotJson, "not the JSON Consul sends"),
        (Fault::Hangup, "cannot reach the Consul agent"),
    ];
    for (fault, words) in cases {
        api.set_fault(Some(fault.clone()));
        let r = timed_round(&p).await;
        for kind in [WitnessKind::ConsulMembers, WitnessKind::ConsulHealth] {
            let o = obs(&r, Component::Appserver, &kind);
            assert_eq!(o.vote, Vote::Unknown, "{fault:?}: {o:?}");
            assert!(o.reason.contains(words), "{fault:?}: {o:?}");
        }
        assert_eq!(r.local_leader, None, "{fault:?}: leader unknown");
    }
    api.set_fault(None);

    // The agent is not running at all.
    let mut cfg = consul_cfg(&api, &[Role::Appserver]);
    cfg.consul.port = support::closed_port();
    let r = timed_round(&Prober::new(&cfg).expect("prober")).await;
    let o = obs(&r, Component::Appserver, &WitnessKind::ConsulMembers);
    assert_eq!(o.vote, Vote::Unknown, "{o:?}");
    assert!(o.reason.contains("cannot reach"), "{o:?}");
}

#[tokio::test]
async fn a_token_that_cannot_read_the_peer_nodes_is_unknown_not_down() {
    // mbox1 (the peer) is alive; mbox2 is this node. The token may read
    // only its own node: Consul answers 200 with mbox1 left out.
    let api = ConsulApi::builder()
        .node("agent-mbox1-example-com", "10.0.0.1", member::ALIVE)
        .node("agent-mbox2-example-com", "10.0.0.2", member::ALIVE)
        .token("tok")
        .start()
        .await;
    api.set_fault(Some(Fault::AclFiltered(vec![
        "agent-mbox2-example-com".into(),
    ])));
    let p = Prober::new(&consul_cfg(&api, &[Role::Appserver])).expect("prober");
    let r = timed_round(&p).await;
    for kind in [WitnessKind::ConsulMembers, WitnessKind::ConsulHealth] {
        let o = obs(&r, Component::Appserver, &kind);
        assert_eq!(
            o.vote,
            Vote::Unknown,
            "a live peer voted {:?}: {o:?}",
            o.vote
        );
        assert!(o.reason.contains("token cannot read nodes"), "{o:?}");
        assert!(o.reason.contains("node:read"), "{o:?}");
    }

    // A peer node the token may read still counts, filtered list or not.
    api.set_member_status("agent-mbox1-example-com", member::FAILED);
    api.set_fault(Some(Fault::AclFiltered(vec![
        "agent-mbox1-example-com".into(),
    ])));
    let r = timed_round(&p).await;
    for kind in [WitnessKind::ConsulMembers, WitnessKind::ConsulHealth] {
        let o = obs(&r, Component::Appserver, &kind);
        assert_eq!(o.vote, Vote::Down, "{o:?}");
    }

    // Without a token Consul sends no header; a list without even this
    // node's own agent is still recognisably not the whole picture.
    api.set_member_status("agent-mbox1-example-com", member::ALIVE);
    api.set_token(None);
    api.set_fault(Some(Fault::AclFiltered(Vec::new())));
    let mut cfg = consul_cfg(&api, &[Role::Appserver]);
    cfg.consul.token = None;
    let r = timed_round(&Prober::new(&cfg).expect("prober")).await;
    let o = obs(&r, Component::Appserver, &WitnessKind::ConsulMembers);
    assert_eq!(o.vote, Vote::Unknown, "{o:?}");
    assert!(o.reason.contains("token cannot read nodes"), "{o:?}");
}

#[tokio::test]
async fn consul_health_is_unknown_when_one_node_name_errs_and_the_other_is_critical() {
    // mbox1's node is agent-mbox1-example-com (critical); habeat also asks
    // about server-mbox1-example-com, and that question fails.
    let api = ConsulApi::builder()
        .node("agent-mbox1-example-com", "10.0.0.1", member::FAILED)
        .start()
        .await;
    let p = Prober::new(&consul_cfg(&api, &[Role::Appserver])).expect("prober");
    let r = timed_round(&p).await;
    let h = obs(&r, Component::Appserver, &WitnessKind::ConsulHealth);
    assert_eq!(h.vote, Vote::Down, "sanity: every answer critical: {h:?}");

    for (fault, words) in [
        (Fault::Forbidden, "token is wrong or lacks permission"),
        (Fault::Slow(Duration::from_secs(5)), "did not answer"),
    ] {
        api.set_fault(None);
        api.set_fault_on("/v1/health/node/server-mbox1-example-com", fault.clone());
        let r = timed_round(&p).await;
        let h = obs(&r, Component::Appserver, &WitnessKind::ConsulHealth);
        assert_eq!(
            h.vote,
            Vote::Unknown,
            "{fault:?}: a question that failed made a Down: {h:?}"
        );
        assert!(h.reason.contains("critical"), "{fault:?}: {h:?}");
        assert!(h.reason.contains(words), "{fault:?}: {h:?}");
    }
}

#[tokio::test]
async fn a_wrong_token_is_unknown_and_says_token_not_down() {
    let api = ConsulApi::builder()
        .node("agent-mbox1-example-com", "10.0.0.1", member::FAILED)
        .token("the-right-one")
        .start()
        .await;
    let mut cfg = consul_cfg(&api, &[Role::Appserver]);
    cfg.consul.token = Some(habeat::config::Secret::new("a-wrong-one"));
    let r = timed_round(&Prober::new(&cfg).expect("prober")).await;
    for kind in [WitnessKind::ConsulMembers, WitnessKind::ConsulHealth] {
        let o = obs(&r, Component::Appserver, &kind);
        assert_eq!(o.vote, Vote::Unknown, "{o:?}");
        assert!(o.reason.contains("token is wrong"), "{o:?}");
        assert!(!o.reason.contains("a-wrong-one"), "token leaked: {o:?}");
    }
}
