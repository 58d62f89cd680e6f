//! ICMP echo, in-process (no `ping` subprocess: no fork per probe, no
//! parsing of a tool's output, and one socket shared by every target).
//!
//! The socket is a raw ICMP socket when the process may open one (root or
//! `CAP_NET_RAW`), otherwise an unprivileged ICMP datagram socket where
//! `net.ipv4.ping_group_range` allows it. If neither works the witness says
//! Unknown with the fix, never Down: not being allowed to ask proves nothing.

use super::Finding;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Echo requests sent per address within one timeout: a single lost packet
/// on a lossy inter-DC link must not make a live host look dead.
pub const ECHOES_PER_ADDRESS: u32 = 3;

const PAYLOAD: &[u8] = b"habeat-liveness!";

/// Pings many addresses concurrently over one socket per address family.
/// Created once per [`super::Prober`]; the sockets open lazily on first use
/// (they need a running tokio runtime) and are reused every round.
pub struct Pinger {
    v4: Mutex<Option<Client>>,
    v6: Mutex<Option<Client>>,
    ident: u16,
    seq: AtomicU16,
}

impl Default for Pinger {
    fn default() -> Self {
        Self::new()
    }
}

impl Pinger {
    /// A pinger with its own ICMP identifier (so that two habeat processes,
    /// or two probers in one test, never take each other's replies).
    pub fn new() -> Pinger {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        static COUNTER: AtomicU16 = AtomicU16::new(0);
        let ident = (std::process::id() as u16)
            ^ (nanos as u16)
            ^ COUNTER.fetch_add(0x9e37, Ordering::Relaxed);
        Pinger {
            v4: Mutex::new(None),
            v6: Mutex::new(None),
            ident,
            seq: AtomicU16::new(0),
        }
    }

    fn client(&self, v6: bool) -> Result<Client, String> {
        let slot = if v6 { &self.v6 } else { &self.v4 };
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let kind = if v6 { ICMP::V6 } else { ICMP::V4 };
        // DGRAM first (unprivileged ICMP), RAW as the fallback (root or
        // CAP_NET_RAW): surge-ping tries both in that order.
        let config = Config::builder().kind(kind).build();
        let client = Client::new(&config).map_err(|e| {
            format!(
                "cannot open an ICMP socket ({}): run habeat as root or with CAP_NET_RAW \
                 (systemd: AmbientCapabilities=CAP_NET_RAW), or allow unprivileged ping with \
                 sysctl net.ipv4.ping_group_range",
                e.to_string().lines().next().unwrap_or("permission denied")
            )
        })?;
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Up as soon as any address answers an echo before `deadline`; Down
    /// when none does; Unknown when habeat cannot send ICMP at all.
    pub async fn check(&self, addrs: &[IpAddr], deadline: Instant) -> Finding {
        if addrs.is_empty() {
            return Finding::unknown("no address configured to ping");
        }
        let start = Instant::now();
        let budget = deadline.saturating_duration_since(start);
        let mut attempts = JoinSet::new();
        for &addr in addrs {
            let client = match self.client(addr.is_ipv6()) {
                Ok(c) => c,
                Err(reason) => return Finding::unknown(reason),
            };
            for n in 0..ECHOES_PER_ADDRESS {
                let send_at = start + budget * n / ECHOES_PER_ADDRESS;
                let seq = PingSequence(self.seq.fetch_add(1, Ordering::Relaxed));
                let ident = PingIdentifier(self.ident);
                let client = client.clone();
                attempts.spawn(async move {
                    tokio::time::sleep_until(send_at).await;
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return (addr, Err(None));
                    }
                    let mut pinger = client.pinger(addr, ident).await;
                    pinger.timeout(left);
                    match pinger.ping(seq, PAYLOAD).await {
                        Ok((packet, rtt)) if is_echo_reply(&packet) => (addr, Ok(rtt)),
                        // An ICMP error about our echo (e.g. "host
                        // unreachable" from the local kernel once ARP for a
                        // dead neighbour fails) is routed to the same waiter:
                        // it proves the host is NOT answering.
                        Ok(_) => (addr, Err(None)),
                        Err(SurgeError::Timeout { .. }) => (addr, Err(None)),
                        Err(e) => (addr, Err(Some((e.to_string(), about_this_side(&e))))),
                    }
                });
            }
        }
        let mut send_errors: Vec<String> = Vec::new();
        let mut own_errors: Vec<String> = Vec::new();
        let overall = tokio::time::timeout_at(deadline + Duration::from_millis(20), async {
            while let Some(joined) = attempts.join_next().await {
                match joined {
                    Ok((addr, Ok(rtt))) => return Some((addr, rtt)),
                    Ok((addr, Err(Some((e, own))))) => {
                        let msg = format!("{addr}: {e}");
                        let list = if own {
                            &mut own_errors
                        } else {
                            &mut send_errors
                        };
                        if !list.contains(&msg) {
                            list.push(msg);
                        }
                    }
                    _ => {}
                }
            }
            None
        })
        .await;
        attempts.abort_all();
        let shown = super::list(addrs);
        match overall {
            Ok(Some((addr, rtt))) => {
                Finding::up(format!("echo reply from {addr} in {}", super::ms(rtt)))
            }
            // The echo could not even leave (the kernel refused the send:
            // no permission, a firewall rule on this node): nothing was
            // learnt about the peer (`unknown-is-not-down`).
            _ if !own_errors.is_empty() => Finding::unknown(format!(
                "cannot send ICMP echo from this node ({}); this says nothing about the peer: \
                 check this node's firewall (output rules) and ICMP permission \
                 (net.ipv4.ping_group_range, or CAP_NET_RAW)",
                own_errors.join("; ")
            )),
            _ if !send_errors.is_empty() => Finding::down(format!(
                "no echo reply from {shown} within {} ({})",
                super::ms(budget),
                send_errors.join("; ")
            )),
            _ => Finding::down(format!(
                "no echo reply from {shown} within {} ({} echoes each)",
                super::ms(budget),
                ECHOES_PER_ADDRESS
            )),
        }
    }
}

/// Whether a ping error is about this node rather than the path to the
/// peer: the kernel refused to send (EACCES, EPERM: permission, a local
/// firewall rule), or the client itself failed.
fn about_this_side(e: &SurgeError) -> bool {
    match e {
        SurgeError::IOError(io) => io.kind() == std::io::ErrorKind::PermissionDenied,
        SurgeError::ClientDestroyed | SurgeError::IncorrectBufferSize => true,
        _ => false,
    }
}

/// Only an echo reply (ICMPv4 type 0, ICMPv6 type 129) shows the host is up;
/// surge-ping also hands back ICMP errors quoting our echo request.
fn is_echo_reply(packet: &surge_ping::IcmpPacket) -> bool {
    match packet {
        surge_ping::IcmpPacket::V4(p) => p.get_icmp_type().0 == 0,
        surge_ping::IcmpPacket::V6(p) => p.get_icmpv6_type().0 == 129,
    }
}
