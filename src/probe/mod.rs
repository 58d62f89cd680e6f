//! Witnesses: everything habeat uses to see the peer datacenter (docs/decisions.md §1).
//!
//! A [`Prober`] is built once from the configuration. It knows which peer
//! components the node's roles need (appserver → appserver, proxyserver →
//! proxy, consulserver → consul; the directory always), and for each one a
//! fixed set of witnesses: ICMP echo to its address(es), each `probes:`
//! entry, `consul_members`, `consul_health` and the operator's `command`.
//! A component with several addresses has *one* witness per kind, Up as
//! soon as any address answers.
//!
//! [`Prober::round`] runs every witness concurrently and returns a
//! [`Round`] within `detection.timeout` plus [`SLACK`], however many
//! targets are dead or black-holed: each witness works against the same
//! deadline, and whatever has not answered by then is cut off. Nothing here
//! decides anything; hysteresis and quorum are the engine's job.

pub mod command;
pub mod consul;
pub mod icmp;
pub mod net;

pub use crate::config::witness_plan::{
    PlanError, Planned, PlannedVote, Target, plan, votes, watched_components,
};

use crate::config::Config;
use crate::model::{Observation, RaftServer, Round, Vote, WitnessId};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How far past `detection.timeout` a round may run: the time to collect
/// answers, kill an overdue witness command and reap it.
pub const SLACK: Duration = Duration::from_millis(250);

/// A witness's answer before it becomes an [`Observation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub vote: Vote,
    /// Why, for the operator.
    pub reason: String,
}

impl Finding {
    /// The target showed it is alive.
    pub fn up(reason: impl Into<String>) -> Finding {
        Finding {
            vote: Vote::Up,
            reason: reason.into(),
        }
    }
    /// The target did not show it is alive (no answer, refused, bad answer).
    pub fn down(reason: impl Into<String>) -> Finding {
        Finding {
            vote: Vote::Down,
            reason: reason.into(),
        }
    }
    /// habeat could not ask (its own problem, or the witness cannot tell):
    /// never counted as Down.
    pub fn unknown(reason: impl Into<String>) -> Finding {
        Finding {
            vote: Vote::Unknown,
            reason: reason.into(),
        }
    }
}

/// Why a [`Prober`] cannot be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Consul(#[from] crate::consul::Error),
    #[error("cannot set up the HTTP client for probes: {0}")]
    Http(String),
}

/// The witnesses of a round still out that have seen the peer Up
/// ([`Prober::round_telling`]).
pub type Answered = Arc<std::sync::Mutex<Vec<WitnessId>>>;

/// Runs probe rounds against the peer datacenter. Cheap per round: the
/// HTTP clients, the Consul client and the ICMP sockets are built once and
/// reused.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    timeout: Duration,
    witnesses: Vec<Planned>,
    consul: Option<crate::consul::Client>,
    ask_local_consul: bool,
    http: reqwest::Client,
    icmp: icmp::Pinger,
    command: Vec<String>,
}

impl Prober {
    /// Set up the witnesses [`plan`] gives for `cfg` and the clients they
    /// share.
    pub fn new(cfg: &Config) -> Result<Prober, Error> {
        let witnesses = plan(cfg)?;
        let timeout = cfg.detection.timeout;
        let uses_consul = witnesses
            .iter()
            .any(|w| matches!(w.target, Target::ConsulMembers(_) | Target::ConsulHealth(_)));
        let ask_local_consul = uses_consul
            || cfg.safety.quorum_gate
            || cfg.local.roles.contains(&crate::model::Role::Consulserver);
        let consul = if ask_local_consul {
            Some(crate::consul::Client::new(&cfg.consul, timeout)?)
        } else {
            None
        };
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .connect_timeout(timeout)
            .user_agent(concat!(
                "habeat/",
                env!("CARGO_PKG_VERSION"),
                " liveness probe"
            ))
            .build()
            .map_err(|e| Error::Http(crate::consul::chain(&e)))?;
        Ok(Prober {
            inner: Arc::new(Inner {
                timeout,
                witnesses,
                consul,
                ask_local_consul,
                http,
                icmp: icmp::Pinger::new(),
                command: cfg.witnesses.command.clone(),
            }),
        })
    }

    /// The witnesses every round reports on, in report order.
    pub fn witnesses(&self) -> Vec<WitnessId> {
        self.inner.witnesses.iter().map(|w| w.id.clone()).collect()
    }

    /// The per-probe timeout (`detection.timeout`).
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// One probe round: every witness concurrently, one [`Observation`] per
    /// witness (in [`Prober::witnesses`] order), plus the local Consul's
    /// leader and raft configuration. Returns within `timeout` + [`SLACK`].
    pub async fn round(&self) -> Round {
        self.round_telling(None).await
    }

    /// [`Prober::round`], telling `answered` each witness that saw the
    /// peer Up as soon as it did, before the whole round is in: the run
    /// loop holds that witness's detection deadline until the round lands.
    pub async fn round_telling(&self, answered: Option<Answered>) -> Round {
        let inner = &self.inner;
        let start = Instant::now();
        let deadline = start + inner.timeout;
        let hard = deadline + SLACK;
        let cut_off = inner.timeout + SLACK;
        let mut observations: Vec<Observation> = inner
            .witnesses
            .iter()
            .map(|w| Observation {
                witness: w.id.clone(),
                vote: Vote::Unknown,
                reason: format!("no verdict within {}", ms(cut_off)),
                latency: cut_off,
            })
            .collect();

        let local = if inner.ask_local_consul {
            inner
                .consul
                .clone()
                .map(|c| tokio::spawn(tokio::time::timeout_at(hard, local_state(c, deadline))))
        } else {
            None
        };

        let mut set = JoinSet::new();
        for i in 0..inner.witnesses.len() {
            let inner = self.inner.clone();
            set.spawn(async move {
                let t0 = Instant::now();
                let f = tokio::time::timeout_at(hard, inner.observe(i, deadline)).await;
                (i, f.ok(), t0.elapsed())
            });
        }
        let grace = hard + Duration::from_millis(50);
        while let Ok(Some(joined)) = tokio::time::timeout_at(grace, set.join_next()).await {
            if let Ok((i, Some(f), latency)) = joined {
                let o = &mut observations[i];
                if f.vote == Vote::Up
                    && let Some(a) = &answered
                {
                    a.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(o.witness.clone());
                }
                o.vote = f.vote;
                o.reason = f.reason;
                o.latency = latency;
            }
        }
        set.abort_all();

        let (local_leader, raft_servers) = match local {
            Some(h) => match tokio::time::timeout_at(grace, h).await {
                Ok(Ok(Ok(state))) => state,
                _ => (None, None),
            },
            None => (None, None),
        };
        Round {
            observations,
            local_leader,
            raft_servers,
        }
    }
}

/// Whether the local Consul has a leader, and its raft configuration.
async fn local_state(
    client: crate::consul::Client,
    deadline: Instant,
) -> (Option<bool>, Option<Vec<RaftServer>>) {
    let c = client.with_timeout(left(deadline));
    let (leader, raft) = tokio::join!(c.leader(), c.raft_configuration());
    let leader = leader.ok().map(|l| l.is_some());
    let raft = raft
        .ok()
        .map(|r| r.servers.into_iter().map(RaftServer::from).collect());
    (leader, raft)
}

/// Time left until `deadline` (at least 1ms, so a timeout is never zero).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

impl Inner {
    async fn observe(&self, i: usize, deadline: Instant) -> Finding {
        let w = &self.witnesses[i];
        match &w.target {
            Target::Icmp(addrs) => self.icmp.check(addrs, deadline).await,
            Target::Tcp(addrs, port) => net::tcp(addrs, *port, deadline).await,
            Target::Http(url) => net::http(&self.http, url, None, deadline).await,
            Target::Ldap(addrs, port) => net::ldap(addrs, *port, deadline).await,
            Target::ConsulMembers(hosts) => match &self.consul {
                Some(c) => consul::members(&c.with_timeout(left(deadline)), hosts).await,
                None => Finding::unknown("no Consul client"),
            },
            Target::ConsulHealth(hosts) => match &self.consul {
                Some(c) => consul::health(&c.with_timeout(left(deadline)), hosts).await,
                None => Finding::unknown("no Consul client"),
            },
            Target::Command(subject) => command::run(&self.command, subject, left(deadline)).await,
        }
    }
}

/// A duration as an operator reads it, to the millisecond ("1s", "250ms").
pub(crate) fn ms(d: Duration) -> String {
    let rounded = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(rounded).to_string()
}

/// A short list of addresses for a reason ("10.0.0.1, 10.0.0.2, … 1000 addresses").
pub(crate) fn list(addrs: &[IpAddr]) -> String {
    const SHOWN: usize = 4;
    let mut s = addrs
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if addrs.len() > SHOWN {
        s.push_str(&format!(", … ({} addresses)", addrs.len()));
    }
    s
}
