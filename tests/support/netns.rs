#![allow(dead_code)]
//! Network namespaces that stand in for hosts of the peer datacenter.
//!
//! [`Netns::create`] makes a namespace joined to the root namespace by a veth
//! pair with its own /30 (`10.<201+pid%50>.<n>.1` on the host side,
//! `.2` inside). Tests then kill the "host" the ways a datacenter dies:
//! [`Netns::set_link`] takes the namespace's side down (no carrier: packets
//! vanish, a black hole), [`Netns::drop_incoming`] adds an nftables rule that
//! drops all or a random share of incoming packets (black hole or packet
//! loss). Everything is removed on drop, also when the test panics.
//!
//! Namespaces need root, iproute2 and nftables: a test that builds them
//! starts with `if !require(&[Need::Netns]) { return; }` (`super::need`).

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Run a command, panicking with its stderr if it fails (test set-up).
fn must(argv: &[&str]) -> Output {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace reachable from the root namespace over a veth pair.
pub struct Netns {
    pub name: String,
    host_if: String,
    ns_if: String,
    /// The root namespace's end of the link.
    pub host_addr: Ipv4Addr,
    /// The namespace's address: the "peer host".
    pub addr: Ipv4Addr,
}

impl Netns {
    /// Create the namespace, the veth pair, the addresses, and bring both
    /// ends (and the namespace's loopback) up.
    pub fn create() -> Netns {
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // 48 /30 links per second octet (10.x.0.0-10.x.191.255; `.200.0/22`
        // is kept for `host_block`), 16 second octets per process: every
        // test of the one integration binary gets its own addresses.
        assert!(n < 48 * 16, "too many namespaces in one test process");
        let name = format!("probe{pid}-{n}");
        let host_if = format!("pb{}h{n}", pid % 100_000);
        let ns_if = format!("pb{}n{n}", pid % 100_000);
        let second = 200 + ((pid % 3) * 16 + n / 48) as u8;
        let third = ((n % 48) * 4) as u8;
        let host_addr = Ipv4Addr::new(10, second, third, 1);
        let addr = Ipv4Addr::new(10, second, third, 2);
        // Leftovers from a killed earlier run with the same pid would block us.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        must(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name,
            host_if,
            ns_if,
            host_addr,
            addr,
        };
        must(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        must(&["ip", "link", "set", &ns.ns_if, "netns", &ns.name]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{host_addr}/30"),
            "dev",
            &ns.host_if,
        ]);
        must(&["ip", "link", "set", &ns.host_if, "up"]);
        must(&[
            "ip",
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            &ns.ns_if,
        ]);
        must(&["ip", "-n", &ns.name, "link", "set", &ns.ns_if, "up"]);
        must(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's address as an `IpAddr`.
    pub fn ip(&self) -> IpAddr {
        IpAddr::V4(self.addr)
    }

    /// The argv prefix that runs a program inside the namespace.
    pub fn exec_prefix(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }

    /// Run a command inside the namespace and wait for it.
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut full: Vec<&str> = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        must(&full)
    }

    /// Bring the namespace's end of the link up or down. Down is a dead
    /// host: no carrier, packets to it vanish without an answer.
    pub fn set_link(&self, up: bool) {
        must(&[
            "ip",
            "-n",
            &self.name,
            "link",
            "set",
            &self.ns_if,
            if up { "up" } else { "down" },
        ]);
        if up {
            self.wait_carrier();
        }
    }

    /// Wait (up to 5 s) until the host's end of the link has carrier again.
    fn wait_carrier(&self) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < until {
            let out = must(&["ip", "link", "show", "dev", &self.host_if]);
            if String::from_utf8_lossy(&out.stdout).contains("LOWER_UP") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{} has no carrier 5s after link up", self.host_if);
    }

    /// Drop `percent`% of the packets entering the namespace (100: all of
    /// them, a black hole that still answers ARP). Replaces earlier rules.
    pub fn drop_incoming(&self, percent: u8) {
        self.clear_drops();
        self.run(&["nft", "add", "table", "inet", "habeat_probe"]);
        self.run(&[
            "nft",
            "add chain inet habeat_probe input { type filter hook input priority 0; policy accept; }",
        ]);
        if percent >= 100 {
            self.run(&[
                "nft",
                "add",
                "rule",
                "inet",
                "habeat_probe",
                "input",
                "drop",
            ]);
        } else {
            self.run(&[
                "nft",
                &format!("add rule inet habeat_probe input numgen random mod 100 < {percent} drop"),
            ]);
        }
    }

    /// Route a block of addresses to this namespace, which accepts every
    /// one of them as its own: up to 1,020 "hosts" that live and die with
    /// the namespace. One block per second octet (`10.<second>.200.0/22`),
    /// so at most one namespace per process may call this.
    pub fn host_block(&self, count: usize) -> Vec<IpAddr> {
        let second = self.addr.octets()[1];
        let net = format!("10.{second}.200.0/22");
        must(&[
            "ip",
            "route",
            "replace",
            &net,
            "via",
            &self.addr.to_string(),
            "dev",
            &self.host_if,
        ]);
        self.run(&["ip", "route", "add", "local", &net, "dev", "lo"]);
        (200u8..=203)
            .flat_map(|third| (1u8..=254).map(move |h| Ipv4Addr::new(10, second, third, h)))
            .map(IpAddr::V4)
            .take(count)
            .collect()
    }

    /// Remove the drop rules.
    pub fn clear_drops(&self) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "nft",
                "delete",
                "table",
                "inet",
                "habeat_probe",
            ])
            .output();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
