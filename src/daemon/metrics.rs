//! Prometheus metrics and the optional HTTP endpoint (`metrics.listen`).
//!
//! [`Metrics`] is a registry (prometheus-client, OpenMetrics text) with one
//! method per thing the daemon does; the run loop records rounds, the
//! executor records actions, promotions and quorum-gate refusals. It is
//! cheap to clone and safe to share between tasks.
//!
//! [`MetricsServer`] serves `GET /metrics` and `GET /status` on its own
//! task. It is bounded so that a scraper cannot hurt the daemon: at most
//! `max_connections` connections at once (more are closed at accept),
//! a deadline to send request headers, and a lifetime after which any
//! connection is closed, however slowly the client reads. Nothing in it
//! waits on the probe loop: `/status` returns whatever the status source
//! says now.
//!
//! Encoding of votes and verdicts as gauge values: `1` Up, `0` Down, `-1`
//! Unknown. Down is 0 so that the usual "is it up" alert (`== 0`) reads
//! naturally, and Unknown is set apart below both, so `min_over_time`
//! shows a period where the witness could not tell.

use crate::model::{Component, Role, Round, Verdict, Vote};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[path = "metrics_sinks.rs"]
mod sinks;

/// The content type of OpenMetrics text, which is what prometheus-client
/// produces (Prometheus negotiates and parses it natively).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the round duration histogram: a healthy round
/// takes milliseconds, a round with dead targets about `detection.timeout`
/// (1 s by default), anything above a few seconds is a problem.
const ROUND_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WitnessLabels {
    component: String,
    witness: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReplicaLabels {
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RoleLabels {
    role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    role: String,
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActionLabels {
    kind: String,
    outcome: String,
}

/// How an action ended, as the `outcome` label of `habeat_actions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionOutcome {
    /// Ran and succeeded.
    Succeeded,
    /// Ran and failed (non-zero exit, unexpected output).
    Failed,
    /// Ran past its timeout and was killed.
    TimedOut,
    /// Not run: `--dry-run`.
    DryRun,
}

impl ActionOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Succeeded => "succeeded",
            ActionOutcome::Failed => "failed",
            ActionOutcome::TimedOut => "timed_out",
            ActionOutcome::DryRun => "dry_run",
        }
    }
}

struct Inner {
    registry: Registry,
    rounds: Counter,
    round_duration: Histogram,
    witness_vote: Family<WitnessLabels, Gauge>,
    component_verdict: Family<ComponentLabels, Gauge>,
    actions: Family<ActionLabels, Counter>,
    events: Family<sinks::EventLabels, Counter>,
    promotions: Counter,
    quorum_gate_refusals: Counter,
    last_round: Gauge<f64, AtomicU64>,
    cannot_decide: Gauge,
    local_consul_up: Gauge,
    replica_accounts: Family<ReplicaLabels, Gauge>,
    replicas_at_risk: Gauge,
    replica_max_lag_sequence: Gauge,
    replica_max_lag_item_id: Gauge,
    replica_survey_age: Gauge,
    replica_survey_failed: Gauge,
    replica_survey_failures: Counter,
    lease_held: Gauge,
    fenced: Gauge,
    fence_failed: Gauge,
    paused_since: Gauge<f64, AtomicU64>,
    failover_locked: Family<RoleLabels, Gauge>,
    decision: Family<DecisionLabels, Gauge>,
    held_back: Family<RoleLabels, Gauge>,
    /// The `decision` series set now, one per role, to remove when the
    /// kind changes.
    last_decisions: Mutex<HashSet<DecisionLabels>>,
    /// Witnesses seen in the last round: a witness that disappears (after
    /// a reload) must disappear from `/metrics` too, not freeze at its last
    /// vote.
    last_witnesses: Mutex<HashSet<WitnessLabels>>,
}

/// The daemon's Prometheus metrics. Clone it freely: clones share the
/// same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn vote_value(v: Vote) -> i64 {
    match v {
        Vote::Up => 1,
        Vote::Down => 0,
        Vote::Unknown => -1,
    }
}

fn verdict_value(v: Verdict) -> i64 {
    match v {
        Verdict::Up => 1,
        Verdict::Down => 0,
        Verdict::Unknown => -1,
    }
}

impl Metrics {
    /// A fresh registry with every habeat metric (prefix `habeat_`).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("habeat");
        let rounds = Counter::default();
        registry.register("rounds", "Probe rounds completed", rounds.clone());
        let round_duration = Histogram::new(ROUND_BUCKETS);
        registry.register_with_unit(
            "round_duration",
            "Wall time of one probe round (all witnesses, concurrently)",
            Unit::Seconds,
            round_duration.clone(),
        );
        let witness_vote = Family::<WitnessLabels, Gauge>::default();
        registry.register(
            "witness_vote",
            "Last raw vote of each witness of the peer DC, before fall/rise: 1 up, 0 down, -1 unknown",
            witness_vote.clone(),
        );
        let component_verdict = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "component_verdict",
            "Settled verdict per peer component: 1 up, 0 down, -1 unknown",
            component_verdict.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Actions executed (promotion, proxy switch, hooks, raft recovery) by kind and outcome",
            actions.clone(),
        );
        let events = sinks::register_events(&mut registry);
        let promotions = Counter::default();
        registry.register(
            "promotions",
            "Promotions of mailbox replicas (automatic and manual)",
            promotions.clone(),
        );
        let quorum_gate_refusals = Counter::default();
        registry.register(
            "quorum_gate_refusals",
            "Automatic actions refused because this side could not prove it holds the Consul majority",
            quorum_gate_refusals.clone(),
        );
        let last_round = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "last_round_timestamp",
            "Unix time at which the last probe round completed",
            Unit::Seconds,
            last_round.clone(),
        );
        let cannot_decide = Gauge::default();
        registry.register(
            "cannot_decide",
            "1 while the daemon probes but cannot decide (state_dir unusable: read-only, full, \
             its lock unusable): no automatic action happens until it is 0 again",
            cannot_decide.clone(),
        );
        let local_consul_up = Gauge::default();
        registry.register(
            "local_consul_up",
            "1 while the local Consul agent (consul.hostname:consul.port) answers the rounds, 0 \
             when it does not: no failover is possible then (the quorum gate needs it); -1 \
             before the first round",
            local_consul_up.clone(),
        );
        local_consul_up.set(-1);
        let replica_accounts = Family::<ReplicaLabels, Gauge>::default();
        registry.register(
            "replica_accounts",
            "Accounts of the peer mailstore by the state of their replica at the last survey: \
             ok, unavailable, no_kafka, paused, unreadable, behind, no_replica (0 before the first survey; \
             habeat_replica_survey_age_seconds is then -1)",
            replica_accounts.clone(),
        );
        // Every state from the start, so that the series exist for the
        // dashboard and the rules before a survey has run.
        for s in crate::survey::ReplicaState::ALL {
            replica_accounts
                .get_or_create(&ReplicaLabels {
                    state: s.as_str().into(),
                })
                .set(0);
        }
        let replicas_at_risk = Gauge::default();
        registry.register(
            "replicas_at_risk",
            "Accounts whose replica was at risk (any state but ok) at the last survey",
            replicas_at_risk.clone(),
        );
        let replica_max_lag_sequence = Gauge::default();
        registry.register(
            "replica_max_lag_sequence",
            "Largest source sequence minus replica sequence of any account at the last survey",
            replica_max_lag_sequence.clone(),
        );
        let replica_max_lag_item_id = Gauge::default();
        registry.register(
            "replica_max_lag_item_id",
            "Largest source itemId minus replica itemId of any account at the last survey",
            replica_max_lag_item_id.clone(),
        );
        let replica_survey_age = Gauge::default();
        registry.register(
            "replica_survey_age_seconds",
            "Seconds since the last complete replica survey (-1: none yet)",
            replica_survey_age.clone(),
        );
        replica_survey_age.set(-1);
        let replica_survey_failed = Gauge::default();
        registry.register(
            "replica_survey_failed",
            "1 while the last replica survey failed (the CLI, its output, or a field that makes \
             no sense; habeat status says why): the replicas' state is as of the last good \
             survey, or unknown; 0 otherwise",
            replica_survey_failed.clone(),
        );
        let replica_survey_failures = Counter::default();
        registry.register(
            "replica_survey_failures",
            "Replica surveys that failed since the daemon started",
            replica_survey_failures.clone(),
        );
        let lease_held = Gauge::default();
        registry.register(
            "lease_held",
            "1 while this primary side holds its serving lease (habeat/serving/<host>), \
             renewed within ttl - ttl/3; 0 otherwise or with lease.enabled off",
            lease_held.clone(),
        );
        let fenced = Gauge::default();
        registry.register(
            "fenced",
            "1 while this primary side fences itself for losing its serving lease (hooks.on_fence \
             due, running or done: habeat_fence_failed says whether they failed), 2 when a \
             promotion happened meanwhile and only the operator unfences",
            fenced.clone(),
        );
        let fence_failed = Gauge::default();
        registry.register(
            "fence_failed",
            "1 while hooks.on_fence failed for a lost serving lease and has not succeeded since \
             (habeat runs it again, 5s doubling to 5min): this side may still serve",
            fence_failed.clone(),
        );
        let paused_since = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "paused_since_timestamp",
            "Unix time at which the current maintenance pause began (habeat pause); 0 while not paused",
            Unit::Seconds,
            paused_since.clone(),
        );
        let failover_locked = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "failover_locked",
            "1 while a role has failed over (promotion, proxy switch, raft recovery) and waits for \
             an operator's habeat rearm; 0 when armed",
            failover_locked.clone(),
        );
        let decision = Family::<DecisionLabels, Gauge>::default();
        registry.register(
            "decision",
            "1 for what each role would do now, by the engine's plan: kind is would_act, \
             in_progress, or why it does nothing (its stable name, as in status --json)",
            decision.clone(),
        );
        let held_back = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "held_back",
            "1 while the peer component a role acts on is Down and the role does nothing about \
             it (gate refused, paused, held, waiting, blocked...); 0 otherwise, and after it acted",
            held_back.clone(),
        );
        Metrics(Arc::new(Inner {
            decision,
            held_back,
            last_decisions: Mutex::new(HashSet::new()),
            replica_accounts,
            replicas_at_risk,
            replica_max_lag_sequence,
            replica_max_lag_item_id,
            replica_survey_age,
            replica_survey_failed,
            replica_survey_failures,
            registry,
            paused_since,
            failover_locked,
            rounds,
            round_duration,
            witness_vote,
            component_verdict,
            actions,
            events,
            promotions,
            quorum_gate_refusals,
            last_round,
            cannot_decide,
            local_consul_up,
            lease_held,
            fenced,
            fence_failed,
            last_witnesses: Mutex::new(HashSet::new()),
        }))
    }

    /// Record a completed probe round: what each witness voted, the
    /// settled verdict of each component, how long the round took.
    pub fn record_round(
        &self,
        round: &Round,
        duration: Duration,
        verdicts: &[(Component, Verdict)],
    ) {
        let m = &self.0;
        m.rounds.inc();
        m.round_duration.observe(duration.as_secs_f64());
        let mut seen = HashSet::with_capacity(round.observations.len());
        for obs in &round.observations {
            let labels = WitnessLabels {
                component: obs.witness.component.as_str().to_owned(),
                witness: obs.witness.kind.to_string(),
            };
            m.witness_vote
                .get_or_create(&labels)
                .set(vote_value(obs.vote));
            seen.insert(labels);
        }
        {
            let mut last = m.last_witnesses.lock().unwrap_or_else(|p| p.into_inner());
            for gone in last.difference(&seen) {
                m.witness_vote.remove(gone);
            }
            *last = seen;
        }
        for (component, verdict) in verdicts {
            m.component_verdict
                .get_or_create(&ComponentLabels {
                    component: component.as_str().to_owned(),
                })
                .set(verdict_value(*verdict));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        m.last_round.set(now);
    }

    /// Record one executed action. `kind` is a fixed name chosen by the
    /// executor (`promote_accounts`, `proxy_activate`, `hook`,
    /// `raft_recovery`, ...), never data from outside.
    pub fn record_action(&self, kind: &str, outcome: ActionOutcome) {
        self.0
            .actions
            .get_or_create(&ActionLabels {
                kind: kind.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// Export `habeat_actions_total` at 0 for each of `kinds` and each
    /// outcome the daemon can record (not `dry_run`), before any action
    /// ran: a counter that first appears at 1 shows no `increase()`, so an
    /// alert on the first failure would miss it.
    pub fn declare_actions(&self, kinds: &[&str]) {
        for kind in kinds {
            for outcome in [
                ActionOutcome::Succeeded,
                ActionOutcome::Failed,
                ActionOutcome::TimedOut,
            ] {
                // Creating the series is the point; the guard goes at once.
                let _ = self.0.actions.get_or_create(&ActionLabels {
                    kind: (*kind).to_owned(),
                    outcome: outcome.as_str().to_owned(),
                });
            }
        }
    }

    /// Record a promotion of mailbox replicas (counted once per promotion,
    /// whatever the number of accounts).
    pub fn record_promotion(&self) {
        self.0.promotions.inc();
    }

    /// Count a replica survey that failed.
    pub fn record_survey_failure(&self) {
        self.0.replica_survey_failures.inc();
    }

    /// Whether the last survey failed (`replicas.last_failure` of
    /// `status --json` is set).
    pub fn set_survey_failed(&self, failed: bool) {
        self.0.replica_survey_failed.set(i64::from(failed));
    }

    /// The last survey, as `status --json` shows it (`replicas.survey`,
    /// `null` when there is none yet).
    pub fn record_survey(&self, survey: &serde_json::Value) {
        let i = &self.0;
        let n = |v: &serde_json::Value| {
            v.as_u64()
                .map_or(0, |x| i64::try_from(x).unwrap_or(i64::MAX))
        };
        if survey.is_null() {
            i.replica_survey_age.set(-1);
            return;
        }
        for s in crate::survey::ReplicaState::ALL {
            i.replica_accounts
                .get_or_create(&ReplicaLabels {
                    state: s.as_str().into(),
                })
                .set(n(&survey["counts"][s.as_str()]));
        }
        i.replicas_at_risk.set(n(&survey["at_risk_count"]));
        i.replica_max_lag_sequence
            .set(n(&survey["max_lag_sequence"]));
        i.replica_max_lag_item_id.set(n(&survey["max_lag_item_id"]));
        i.replica_survey_age.set(n(&survey["age_seconds"]));
    }

    /// Whether the daemon can decide (and so act) at all.
    pub fn set_cannot_decide(&self, blocked: bool) {
        self.0.cannot_decide.set(i64::from(blocked));
    }

    /// The serving lease: held or not, fenced (0 no, 1 yes, 2 after a
    /// promotion), and whether the `on_fence` hooks failed.
    pub fn set_lease(&self, held: bool, fenced: i64, fence_failed: bool) {
        self.0.lease_held.set(i64::from(held));
        self.0.fenced.set(fenced);
        self.0.fence_failed.set(i64::from(fence_failed));
    }

    /// The saved state's pause and failover locks, after each round and
    /// action: `paused_since` is when the current pause began (`None`
    /// when not paused), `locked` each configured role and whether it
    /// has failed over and waits for `habeat rearm`.
    pub fn record_state(
        &self,
        paused_since: Option<Duration>,
        locked: impl IntoIterator<Item = (Role, bool)>,
    ) {
        let m = &self.0;
        m.paused_since
            .set(paused_since.map_or(0.0, |d| d.as_secs_f64()));
        for (role, is_locked) in locked {
            m.failover_locked
                .get_or_create(&RoleLabels {
                    role: role.as_str().to_owned(),
                })
                .set(i64::from(is_locked));
        }
    }

    /// The engine's plan: one `decision` series per role (the old kind's
    /// removed), and whether the role is held back.
    pub fn record_plan(&self, plan: &crate::engine::Plan) {
        let m = &self.0;
        let now: HashSet<DecisionLabels> = plan
            .roles
            .iter()
            .map(|r| DecisionLabels {
                role: r.role.as_str().to_owned(),
                kind: r.kind(),
            })
            .collect();
        // The new series first, then the old ones removed: a scrape in
        // between sees one more, never none.
        for labels in &now {
            m.decision.get_or_create(labels).set(1);
        }
        for r in &plan.roles {
            m.held_back
                .get_or_create(&RoleLabels {
                    role: r.role.as_str().to_owned(),
                })
                .set(i64::from(r.held_back()));
        }
        if let Ok(mut last) = m.last_decisions.lock() {
            for gone in last.difference(&now) {
                m.decision.remove(gone);
                // A role no longer planned for (removed by a reload) keeps
                // no held_back series that would page for ever.
                if !now.iter().any(|n| n.role == gone.role) {
                    m.held_back.remove(&RoleLabels {
                        role: gone.role.clone(),
                    });
                }
            }
            *last = now;
        }
    }

    /// Whether the local Consul agent answered the last round.
    pub fn set_local_consul_up(&self, up: bool) {
        self.0.local_consul_up.set(i64::from(up));
    }

    /// Record an automatic action refused by the quorum gate.
    pub fn record_quorum_gate_refusal(&self) {
        self.0.quorum_gate_refusals.inc();
    }

    /// The registry in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a
        // bug in a metric name, and an empty scrape says so loudly enough.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.0.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// Supplies the body of `GET /status` (the JSON of `habeat status --json`,
/// built by whoever owns the state). Called on the server's task for each
/// request, so it must be quick: typically it reads a `watch` channel.
pub type StatusSource = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Limits that keep slow or hostile clients from tying up the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Time a client has to send the request headers (also the idle limit
    /// between keep-alive requests).
    pub header_timeout: Duration,
    /// Any connection is closed after this long, whatever it is doing.
    pub connection_lifetime: Duration,
    /// Connections served at once; more are closed right after accept.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
            max_connections: 16,
        }
    }
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listening socket could not be bound (port taken, address not
    /// local, no permission for a port below 1024).
    #[error(
        "cannot listen on {addr} for metrics: {source} (is another program using that port? change or remove metrics.listen in the configuration)"
    )]
    Bind {
        /// The address from `metrics.listen`.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// The running `/metrics` + `/status` endpoint. Dropping it (or calling
/// [`MetricsServer::shutdown`]) stops accepting and closes connections.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Bind `addr` and serve on a background task (inside a tokio runtime).
    /// Use port 0 to let the kernel choose (tests); [`Self::local_addr`]
    /// says which.
    pub async fn start(
        addr: SocketAddr,
        metrics: Metrics,
        status: StatusSource,
        opts: ServerOptions,
    ) -> Result<MetricsServer, MetricsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let task = tokio::spawn(accept_loop(listener, metrics, status, opts));
        tracing::info!("serving /metrics and /status on http://{local}");
        Ok(MetricsServer { addr: local, task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    metrics: Metrics,
    status: StatusSource,
    opts: ServerOptions,
) {
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    // Connection tasks die with the accept loop (abort on shutdown).
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("metrics endpoint: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics endpoint: too many connections, closing one from {peer}");
            drop(stream);
            continue;
        };
        let metrics = metrics.clone();
        let status = status.clone();
        conns.spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let resp = respond(&req, &metrics, &status);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(opts.header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            match tokio::time::timeout(opts.connection_lifetime, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("metrics endpoint: connection from {peer}: {e}"),
                Err(_) => tracing::debug!(
                    "metrics endpoint: closed a connection from {peer} that outlived its limit"
                ),
            }
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    status: &StatusSource,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/status");
    if !known {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /status\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let (body, ctype) = if path == "/metrics" {
        (metrics.encode(), METRICS_CONTENT_TYPE)
    } else {
        let mut s = serde_json::to_string(&status()).unwrap_or_else(|e| {
            serde_json::json!({ "error": format!("cannot serialize status: {e}") }).to_string()
        });
        s.push('\n');
        (s, "application/json")
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn plain(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
