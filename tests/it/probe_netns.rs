//! Network witnesses against hosts in network namespaces: real kernel
//! networking, hosts killed by taking their link down or by nftables drop
//! rules, packet loss by random drop. Needs root (skips otherwise, fails on
//! CI).

use crate::support;

use habeat::config::{Config, ProbeSpec};
use habeat::model::{Component, Observation, Role, Round, Vote, WitnessKind};
use habeat::probe::Prober;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::netns::Netns;
use support::slapd::Slapd;
use support::{Need, require};

fn obs<'a>(round: &'a Round, component: Component, kind: &WitnessKind) -> &'a Observation {
    round
        .observations
        .iter()
        .find(|o| o.witness.component == component && &o.witness.kind == kind)
        .unwrap_or_else(|| panic!("no {component}/{kind} in {round:#?}"))
}

async fn bounded_round(p: &Prober) -> Round {
    let t = Instant::now();
    let r = p.round().await;
    let took = t.elapsed();
    assert!(
        took < support::round_bound(p.timeout()),
        "round took {took:?} with timeout {:?}",
        p.timeout()
    );
    r
}

#[tokio::test]
async fn a_live_host_answers_and_a_host_whose_link_is_down_does_not() {
    if !require(&[Need::Netns, Need::SLAPD]) {
        return;
    }
    let alive = Netns::create();
    let dead = Netns::create();
    let ldap = Slapd::start_at(SocketAddr::new(alive.ip(), 389), &alive.exec_prefix());
    dead.set_link(false);

    let mut cfg: Config = support::network_only(&[Role::Appserver], Duration::from_secs(1));
    {
        let peer = support::peer_mut(&mut cfg);
        peer.appserver_ip = Some(alive.addr.to_string());
        peer.directorysrv_ip = Some(dead.addr.to_string());
    }
    cfg.probes.appserver = vec![ProbeSpec::Tcp(389), ProbeSpec::Ldap(389)];
    cfg.probes.directory = vec![ProbeSpec::Tcp(389), ProbeSpec::Ldap(389)];
    let p = Prober::new(&cfg).expect("prober");
    let r = bounded_round(&p).await;

    for kind in [
        WitnessKind::Icmp,
        WitnessKind::Tcp { port: 389 },
        WitnessKind::Ldap { port: 389 },
    ] {
        let up = obs(&r, Component::Appserver, &kind);
        assert_eq!(up.vote, Vote::Up, "{up:?}; slapd: {}", ldap.log());
        let down = obs(&r, Component::Directory, &kind);
        assert_eq!(down.vote, Vote::Down, "{down:?}");
        assert!(
            down.reason.contains(&dead.addr.to_string()),
            "the reason names the address: {down:?}"
        );
    }

    // The dead host comes back; the live one loses its link.
    dead.set_link(true);
    alive.set_link(false);
    // A host coming back needs ARP again; give it a few rounds.
    let mut r = bounded_round(&p).await;
    for _ in 0..4 {
        if obs(&r, Component::Directory, &WitnessKind::Icmp).vote == Vote::Up {
            break;
        }
        r = bounded_round(&p).await;
    }
    let back = obs(&r, Component::Directory, &WitnessKind::Icmp);
    assert_eq!(back.vote, Vote::Up, "{back:?}");
    assert_eq!(
        obs(&r, Component::Directory, &WitnessKind::Tcp { port: 389 }).vote,
        Vote::Down,
        "the host is back but nothing listens on 389"
    );
    for kind in [
        WitnessKind::Icmp,
        WitnessKind::Tcp { port: 389 },
        WitnessKind::Ldap { port: 389 },
    ] {
        assert_eq!(obs(&r, Component::Appserver, &kind).vote, Vote::Down);
    }
}

#[tokio::test]
async fn many_black_holed_targets_finish_within_the_bound() {
    if !require(&[Need::Netns]) {
        return;
    }
    let ns = Netns::create();
    let block = ns.host_block(254);
    ns.drop_incoming(100);
    let mut cfg = support::network_only(&[Role::Consulserver], Duration::from_secs(1));
    support::peer_mut(&mut cfg).consul_ips = block.iter().map(ToString::to_string).collect();
    support::peer_mut(&mut cfg).directorysrv_ip = Some(block[0].to_string());
    cfg.probes.consul = vec![ProbeSpec::Tcp(8500), ProbeSpec::Ldap(389)];
    cfg.probes.directory = vec![ProbeSpec::Tcp(389), ProbeSpec::Ldap(389)];
    let p = Prober::new(&cfg).expect("prober");
    for _ in 0..2 {
        let r = bounded_round(&p).await;
        for o in &r.observations {
            assert_eq!(o.vote, Vote::Down, "{o:?}");
            assert!(o.reason.contains("within"), "a timeout reason: {o:?}");
        }
    }

    // One address of the 254 comes alive (the drop rule lets it through):
    // the whole consul component's ICMP witness is Up.
    ns.run(&[
        "nft",
        &format!(
            "insert rule inet habeat_probe input ip daddr {} accept",
            block[200]
        ),
    ]);
    let r = bounded_round(&p).await;
    assert_eq!(
        obs(&r, Component::Consul, &WitnessKind::Icmp).vote,
        Vote::Up
    );
}

#[tokio::test]
async fn packet_loss_does_not_make_a_live_host_look_dead_in_most_rounds() {
    if !require(&[Need::Netns]) {
        return;
    }
    let ns = Netns::create();
    ns.drop_incoming(30);
    let mut cfg = support::network_only(&[Role::Appserver], Duration::from_millis(600));
    support::peer_mut(&mut cfg).appserver_ip = Some(ns.addr.to_string());
    let p = Prober::new(&cfg).expect("prober");
    let mut up = 0;
    let rounds = 10;
    for _ in 0..rounds {
        let r = bounded_round(&p).await;
        let o = obs(&r, Component::Appserver, &WitnessKind::Icmp);
        assert_ne!(o.vote, Vote::Unknown, "{o:?}");
        if o.vote == Vote::Up {
            up += 1;
        }
    }
    // Three echoes per round: a round is lost with probability 0.3^3.
    assert!(up >= 7, "only {up} of {rounds} rounds saw the live host");

    // Total loss: Down every round, still within the bound.
    ns.drop_incoming(100);
    for _ in 0..2 {
        let r = bounded_round(&p).await;
        assert_eq!(
            obs(&r, Component::Appserver, &WitnessKind::Icmp).vote,
            Vote::Down
        );
    }
    ns.clear_drops();
    let r = bounded_round(&p).await;
    assert_eq!(
        obs(&r, Component::Appserver, &WitnessKind::Icmp).vote,
        Vote::Up
    );
}

#[tokio::test]
async fn a_component_with_several_addresses_is_up_if_any_answers() {
    if !require(&[Need::Netns]) {
        return;
    }
    let dead = Netns::create();
    let alive = Netns::create();
    dead.set_link(false);
    let mut cfg = support::network_only(&[Role::Consulserver], Duration::from_secs(1));
    support::peer_mut(&mut cfg).consul_ips = vec![dead.addr.to_string(), alive.addr.to_string()];
    let p = Prober::new(&cfg).expect("prober");
    let r = bounded_round(&p).await;
    let o = obs(&r, Component::Consul, &WitnessKind::Icmp);
    assert_eq!(o.vote, Vote::Up, "{o:?}");
    assert!(o.reason.contains(&alive.addr.to_string()), "{o:?}");
    assert_eq!(
        r.observations.len(),
        1,
        "one witness for two addresses: {r:#?}"
    );

    alive.set_link(false);
    let r = bounded_round(&p).await;
    let o = obs(&r, Component::Consul, &WitnessKind::Icmp);
    assert_eq!(o.vote, Vote::Down, "{o:?}");
}

#[tokio::test]
async fn an_icmp_error_about_our_echo_is_not_an_answer() {
    if !require(&[Need::Netns]) {
        return;
    }
    // A router (or our own kernel, once ARP gives up) answers an echo to a
    // dead host with "destination host unreachable": an ICMP packet from
    // the target's direction that carries our echo inside. It is not a
    // sign of life.
    let host = Netns::create();
    host.run(&["nft", "add", "table", "inet", "habeat_probe"]);
    host.run(&[
        "nft",
        "add chain inet habeat_probe input { type filter hook input priority 0; policy accept; }",
    ]);
    host.run(&[
        "nft",
        "add rule inet habeat_probe input icmp type echo-request reject with icmp type host-unreachable",
    ]);
    let mut cfg: Config = support::network_only(&[Role::Appserver], Duration::from_secs(1));
    support::peer_mut(&mut cfg).appserver_ip = Some(host.addr.to_string());
    let p = Prober::new(&cfg).expect("prober");
    for _ in 0..3 {
        let r = bounded_round(&p).await;
        let o = obs(&r, Component::Appserver, &WitnessKind::Icmp);
        assert_eq!(o.vote, Vote::Down, "{o:?}");
        assert!(o.reason.starts_with("no echo reply"), "{o:?}");
    }
}

/// An echo the kernel refuses to send (a firewall rule on this node's
/// output: EPERM, like EACCES without ICMP permission) says nothing about
/// the peer: the ICMP witness votes Unknown, not Down
/// (`unknown-is-not-down`). Run through the binary inside the namespace,
/// whose own output rule refuses the send, so the host is not touched.
#[test]
fn an_echo_this_node_cannot_send_is_unknown_not_down() {
    if !require(&[Need::Netns]) {
        return;
    }
    let ns = Netns::create();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let config = dir.path().join("habeat.yml");
    std::fs::write(
        &config,
        format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  state_dir: {d}/state\n  \
             checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  \
             checkRestartReplicaFile: {d}/rstop\n\
             primary:\n  appserver_ip: {}\n  appserver_vmname: mbox1.example.com\n\
             consul:\n  hostname: 127.0.0.1\n  port: 1\n\
             detection:\n  interval: 500ms\n  timeout: 300ms\n\
             carbonio:\n  cli: /bin/true\n  zmprov: /bin/true\n  run_as: \"\"\n",
            ns.host_addr
        ),
    )
    .expect("config");
    ns.run(&["nft", "add", "table", "inet", "habeat_probe"]);
    ns.run(&[
        "nft",
        "add chain inet habeat_probe output { type filter hook output priority 0; policy accept; }",
    ]);
    ns.run(&[
        "nft",
        "add rule inet habeat_probe output meta l4proto icmp drop",
    ]);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(env!("CARGO_BIN_EXE_habeat"))
        .arg("--config")
        .arg(&config)
        .args(["--dry-run", "--json", "check"])
        .env_remove("CONSUL_HTTP_TOKEN")
        .output()
        .expect("run habeat in the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let icmp = v["witnesses"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["witness"]["kind"] == "icmp"))
        .unwrap_or_else(|| panic!("no icmp witness: {v:#}"));
    assert_eq!(icmp["last_raw"], "unknown", "{icmp:#}");
    assert!(
        icmp["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot send ICMP echo from this node"),
        "{icmp:#}"
    );
}
