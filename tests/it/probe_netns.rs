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
use support::netns::{Netns, may_use_netns};
use support::slapd::{self, Slapd};

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
    let test = "a_live_host_answers_and_a_host_whose_link_is_down_does_not";
    if !may_use_netns(test) || !slapd::available(test) {
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
    if !may_use_netns("many_black_holed_targets_finish_within_the_bound") {
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
    if !may_use_netns("packet_loss_does_not_make_a_live_host_look_dead_in_most_rounds") {
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
    if !may_use_netns("a_component_with_several_addresses_is_up_if_any_answers") {
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
    let test = "an_icmp_error_about_our_echo_is_not_an_answer";
    if !may_use_netns(test) {
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
