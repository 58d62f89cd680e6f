//! The simulated outside world: the network between the three Consul
//! servers (one per DC and the arbiter), the Consul sessions and the two
//! KV keys habeat uses, the carbonio directory (which host each account
//! lives on) and the primary mailstore node (power, proxy routes).
//!
//! Consul, as the real one behaves for what habeat asks of it
//! (`tests/support/consul_api.rs` is held to the same docs by
//! `consul_sessions`): a session with a TTL is invalidated at `renewed +
//! ttl` (the earliest Consul may: the adversarial choice for the
//! lease-before-takeover argument); invalidating a session releases its
//! keys and blocks them for its lock-delay; an acquire by a new holder
//! raises the key's `LockIndex`; a KV read or write needs a raft leader,
//! reached through this side's local agent.
//!
//! The directory: the truth (`accounts`, written by promoteAccounts on the
//! secondary and by the operator's failback) and the primary DC's replica
//! of it, a few seconds behind and frozen while the DCs are cut apart:
//! what a directory read on the primary sees.

use std::collections::BTreeMap;

pub const PRIMARY_HOST: &str = "mbox1.example.com";
pub const ACCOUNTS: [&str; 3] = ["alice@example.com", "bob@example.com", "carol@example.com"];

/// A link whose cut the schedule injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// Primary DC <-> secondary DC (probes, gossip, the server link).
    PrimarySecondary,
    /// Primary DC <-> arbiter Consul server.
    PrimaryArbiter,
    /// Secondary DC <-> arbiter Consul server.
    SecondaryArbiter,
    /// The primary node <-> its own DC's Consul server (local agent cut).
    PrimaryLocal,
    /// The secondary node <-> its own DC's Consul server.
    SecondaryLocal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Primary,
    Secondary,
}

#[derive(Debug, Default, Clone)]
pub struct Net {
    /// How many partitions in force cut each link (they overlap).
    cuts: BTreeMap<Link, u32>,
}

impl Net {
    pub fn up(&self, l: Link) -> bool {
        self.cuts.get(&l).copied().unwrap_or(0) == 0
    }

    pub fn cut(&mut self, l: Link) {
        *self.cuts.entry(l).or_default() += 1;
    }

    pub fn heal(&mut self, l: Link) {
        if let Some(n) = self.cuts.get_mut(&l) {
            *n = n.saturating_sub(1);
        }
    }

    /// Whether a node of `side` reaches a raft leader: its DC's server is
    /// in a connected group of at least two of the three servers, and its
    /// local link is up.
    pub fn leader(&self, side: Side) -> bool {
        let ps = self.up(Link::PrimarySecondary);
        let pa = self.up(Link::PrimaryArbiter);
        let sa = self.up(Link::SecondaryArbiter);
        let (local, with_arbiter) = match side {
            Side::Primary => (self.up(Link::PrimaryLocal), pa),
            Side::Secondary => (self.up(Link::SecondaryLocal), sa),
        };
        // Three servers: the own one is in a majority when it reaches
        // another one directly.
        local && (ps || with_arbiter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The primary's serving lease session (TTL, lock-delay 15s).
    PrimaryLease,
    /// The secondary's quorum-gate session.
    SecondaryGate,
    /// The secondary executor's own session that took a serving lease over
    /// with the gate off.
    SecondaryTakeover,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub owner: Owner,
    pub ttl_ms: Option<u64>,
    pub renewed_at: u64,
    pub lock_delay_ms: u64,
    pub valid: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    /// `habeat/failover/<primary host>` (the quorum gate).
    Failover,
    /// `habeat/serving/<primary host>` (the primary's lease).
    Serving,
}

#[derive(Debug, Clone, Default)]
pub struct KvKey {
    pub exists: bool,
    pub holder: Option<usize>,
    pub lock_index: u64,
    pub delay_until: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Consul {
    pub sessions: Vec<Session>,
    pub failover: KvKey,
    pub serving: KvKey,
}

impl Consul {
    pub fn key(&mut self, k: KeyName) -> &mut KvKey {
        match k {
            KeyName::Failover => &mut self.failover,
            KeyName::Serving => &mut self.serving,
        }
    }

    pub fn create(
        &mut self,
        owner: Owner,
        ttl_ms: Option<u64>,
        lock_delay_ms: u64,
        now: u64,
    ) -> usize {
        self.sessions.push(Session {
            owner,
            ttl_ms,
            renewed_at: now,
            lock_delay_ms,
            valid: true,
        });
        self.sessions.len() - 1
    }

    pub fn valid(&self, id: usize) -> bool {
        self.sessions.get(id).is_some_and(|s| s.valid)
    }

    pub fn renew(&mut self, id: usize, now: u64) -> bool {
        match self.sessions.get_mut(id) {
            Some(s) if s.valid => {
                s.renewed_at = now;
                true
            }
            _ => false,
        }
    }

    /// Invalidate (destroy or expire) a session: its keys are released and
    /// blocked for its lock-delay.
    pub fn invalidate(&mut self, id: usize, now: u64) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        if !s.valid {
            return;
        }
        s.valid = false;
        let delay = s.lock_delay_ms;
        for k in [&mut self.failover, &mut self.serving] {
            if k.holder == Some(id) {
                k.holder = None;
                k.delay_until = now + delay;
            }
        }
    }

    /// TTL expiry, at the earliest moment Consul may expire a session.
    pub fn expire(&mut self, now: u64) {
        let due: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| {
                let s = &self.sessions[i];
                s.valid && s.ttl_ms.is_some_and(|t| now >= s.renewed_at + t)
            })
            .collect();
        for i in due {
            self.invalidate(i, now);
        }
    }

    pub fn acquire(&mut self, k: KeyName, id: usize, now: u64) -> bool {
        if !self.valid(id) {
            return false;
        }
        let key = self.key(k);
        match key.holder {
            Some(h) => h == id,
            None if now < key.delay_until => false,
            None => {
                key.holder = Some(id);
                key.exists = true;
                key.lock_index += 1;
                true
            }
        }
    }

    pub fn release(&mut self, k: KeyName, id: usize) {
        let key = self.key(k);
        if key.holder == Some(id) {
            key.holder = None;
        }
    }
}

/// Where an account lives in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    Primary,
    Secondary,
}

#[derive(Debug, Clone)]
pub struct World {
    pub now: u64,
    pub net: Net,
    pub consul: Consul,
    pub accounts: Vec<Home>,
    /// The primary mailstore node is powered on (a fence agent's OFF
    /// stops it, and the primary's habeat with it).
    pub primary_power: bool,
    /// The primary's proxy routes are up (`hooks.on_fence` takes them
    /// down, `hooks.on_unfence` up again).
    pub routes_up: bool,
    /// Wall-clock offsets from the true time, per side (ms).
    pub wall_offset: [i64; 2],
    /// The directory as it was at each change (ms, accounts' homes): the
    /// primary DC's replica of it lags by [`REPLICATION_LAG_MS`] and stops
    /// while the link between the DCs is cut.
    pub history: Vec<(u64, Vec<Home>)>,
    /// The primary DC's replica of the directory.
    pub primary_view: Vec<Home>,
}

/// How long a directory change takes to reach the other DC's replica.
pub const REPLICATION_LAG_MS: u64 = 3_000;

impl World {
    pub fn new() -> World {
        World {
            now: 0,
            net: Net::default(),
            consul: Consul::default(),
            accounts: vec![Home::Primary; ACCOUNTS.len()],
            primary_power: true,
            routes_up: true,
            wall_offset: [0, 0],
            history: Vec::new(),
            primary_view: vec![Home::Primary; ACCOUNTS.len()],
        }
    }

    /// Once a simulated second: record a change of the directory, and
    /// replicate it to the primary DC when the link allows.
    pub fn replicate(&mut self) {
        if self.history.last().is_none_or(|(_, d)| *d != self.accounts) {
            self.history.push((self.now, self.accounts.clone()));
        }
        if self.net.up(Link::PrimarySecondary)
            && let Some((_, d)) = self
                .history
                .iter()
                .rev()
                .find(|(t, _)| t + REPLICATION_LAG_MS <= self.now)
        {
            self.primary_view = d.clone();
        }
    }

    /// A directory write made in the primary DC (the failback's
    /// `habeat promote` there): its replica has it at once.
    pub fn write_on_primary(&mut self, homes: Vec<Home>) {
        self.accounts = homes;
        self.primary_view = self.accounts.clone();
        let at = self.now.saturating_sub(REPLICATION_LAG_MS);
        self.history.push((at, self.accounts.clone()));
    }

    /// The accounts the primary DC's directory replica puts on its host
    /// (`getAccountStatus mailHost <own host>` run on the primary).
    pub fn primary_sees_on_primary(&self) -> Vec<String> {
        ACCOUNTS
            .iter()
            .zip(&self.primary_view)
            .filter(|(_, x)| **x == Home::Primary)
            .map(|(a, _)| (*a).to_owned())
            .collect()
    }

    /// The primary side serves an account (see the module doc of
    /// `sim`): its mailstore is on and its routes are up. It does not
    /// know of a promotion made while it was cut off, so it serves every
    /// account of its host.
    pub fn primary_serving(&self) -> bool {
        self.primary_power && self.routes_up
    }

    pub fn on(&self, h: Home) -> Vec<String> {
        ACCOUNTS
            .iter()
            .zip(&self.accounts)
            .filter(|(_, x)| **x == h)
            .map(|(a, _)| (*a).to_owned())
            .collect()
    }

    pub fn leader(&self, side: Side) -> bool {
        self.net.leader(side)
    }

    /// A side's wall clock, ms since the epoch.
    pub fn wall(&self, side: Side) -> u64 {
        let base: i64 = 1_800_000_000_000;
        let off = self.wall_offset[side as usize];
        u64::try_from(base + i64::try_from(self.now).unwrap_or(0) + off).unwrap_or(0)
    }
}
