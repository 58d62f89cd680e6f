//! The LDAP witness against a real OpenLDAP slapd: an LDAP server is Up; a
//! port that accepts TCP but does not speak LDAP, or a closed port, is Down.

use crate::support;

use habeat::config::ProbeSpec;
use habeat::model::{Component, Role, Round, Vote, WitnessKind};
use habeat::probe::Prober;
use std::time::{Duration, Instant};
use support::slapd::Slapd;
use support::{Need, require};
use tokio::io::AsyncWriteExt;

async fn ldap_round(port: u16) -> (Round, Duration) {
    let mut cfg = support::network_only(&[Role::Appserver], Duration::from_secs(1));
    support::peer_mut(&mut cfg).directorysrv_ip = Some("127.0.0.1".into());
    cfg.probes.directory = vec![ProbeSpec::Ldap(port)];
    let p = Prober::new(&cfg).expect("prober");
    let t = Instant::now();
    let r = p.round().await;
    (r, t.elapsed())
}

fn ldap_vote(r: &Round, port: u16) -> (Vote, String) {
    let o = r
        .observations
        .iter()
        .find(|o| {
            o.witness.component == Component::Directory
                && o.witness.kind == WitnessKind::Ldap { port }
        })
        .expect("ldap observation");
    (o.vote, o.reason.clone())
}

#[tokio::test]
async fn a_real_slapd_is_up() {
    if !require(&[Need::SLAPD]) {
        return;
    }
    let server = Slapd::start();
    let port = server.addr.port();
    let (r, took) = ldap_round(port).await;
    let (vote, reason) = ldap_vote(&r, port);
    assert_eq!(vote, Vote::Up, "{reason}; slapd log: {}", server.log());
    assert!(reason.contains("rootDSE"), "{reason}");
    assert!(took < support::round_bound(Duration::from_secs(1)));

    // The same server stopped: the port is closed, the witness says Down.
    drop(server);
    let (r, _) = ldap_round(port).await;
    let (vote, reason) = ldap_vote(&r, port);
    assert_eq!(vote, Vote::Down, "{reason}");
}

#[tokio::test]
async fn a_tcp_listener_that_does_not_speak_ldap_is_down() {
    // Silent: accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    // Chatty: answers with an HTTP error page, as a misrouted port would.
    let chatty = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let chatty_port = chatty.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = chatty.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });

    let (r, took) = ldap_round(silent_port).await;
    let (vote, reason) = ldap_vote(&r, silent_port);
    assert_eq!(vote, Vote::Down, "{reason}");
    assert!(reason.contains("no LDAP answer"), "{reason}");
    assert!(took < support::round_bound(Duration::from_secs(1)));

    let (r, _) = ldap_round(chatty_port).await;
    let (vote, reason) = ldap_vote(&r, chatty_port);
    assert_eq!(vote, Vote::Down, "{reason}");
}

#[tokio::test]
async fn a_closed_port_is_down() {
    let port = support::closed_port();
    let (r, _) = ldap_round(port).await;
    let (vote, reason) = ldap_vote(&r, port);
    assert_eq!(vote, Vote::Down, "{reason}");
    assert!(reason.contains("refused"), "{reason}");
}
