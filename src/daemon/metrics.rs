//! Prometheus metrics of the daemon (served by [`super::endpoint`]).
//!
//! [`Metrics`] is a registry (prometheus-client, OpenMetrics text) with one
//! method per thing the daemon does; the run loop records rounds, the
//! executor records actions, promotions and quorum-gate refusals. It is
//! cheap to clone and safe to share between tasks.
//!
//! Encoding of votes and verdicts as gauge values: `1` Up, `0` Down, `-1`
//! Unknown. Down is 0 so that the usual "is it up" alert (`== 0`) reads
//! naturally, and Unknown is set apart below both, so `min_over_time`
//! shows a period where the witness could not tell.

use crate::model::{Component, Role, Round, Verdict, Vote};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "metrics_sinks.rs"]
mod sinks;

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

/// The `state` labels of `habeat_accounts_protection`.
const PROTECTION: [&str; 4] = ["no_replica", "initialising", "catching_up", "protected"];

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
    accounts_unprotected: Gauge,
    accounts_unprotected_since: Gauge<f64, AtomicU64>,
    accounts_protection: Family<ReplicaLabels, Gauge>,
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
        let accounts_unprotected = Gauge::default();
        registry.register(
            "accounts_unprotected",
            "Accounts on this DC's own mailstore with no replica that is available and reaches \
             Kafka at its last survey (losing that mailstore loses their mail; habeat reprotect \
             gives them one); -1 before its first survey",
            accounts_unprotected.clone(),
        );
        accounts_unprotected.set(-1);
        let accounts_unprotected_since = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "accounts_unprotected_since_timestamp_seconds",
            "Unix time since which some account on this DC's own mailstore has been unprotected \
             (0 while none is)",
            accounts_unprotected_since.clone(),
        );
        let accounts_protection = Family::<ReplicaLabels, Gauge>::default();
        registry.register(
            "accounts_protection",
            "Accounts on this DC's own mailstore by how far their replica is: no_replica, \
             initialising (unavailable or without Kafka), catching_up (available, behind), \
             protected, at its last survey",
            accounts_protection.clone(),
        );
        for p in PROTECTION {
            accounts_protection
                .get_or_create(&ReplicaLabels { state: p.into() })
                .set(0);
        }
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
            accounts_unprotected,
            accounts_unprotected_since,
            accounts_protection,
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

    /// What the status view says now: the pause and failover locks, the
    /// engine's plan, the last survey and whether the one after it failed.
    pub fn record_view(&self, view: &crate::view::StatusView) {
        let paused_since = view
            .pause
            .as_ref()
            .map(|p| Duration::from_millis(p.since.0));
        self.record_state(paused_since, view.failover_locked.iter().copied());
        self.record_plan(&view.plan);
        self.record_survey(view.replicas.survey.as_ref());
        let failed = view.replicas.last_failure.is_some();
        self.0.replica_survey_failed.set(i64::from(failed));
        self.record_protection(&view.protection);
    }

    /// This DC's own mailstore: its unprotected accounts and since when,
    /// and its accounts by stage of protection.
    fn record_protection(&self, p: &crate::view::protection::ProtectionShown) {
        let i = &self.0;
        let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        let Some(s) = &p.survey else {
            i.accounts_unprotected.set(-1);
            i.accounts_unprotected_since.set(0.0);
            return;
        };
        i.accounts_unprotected.set(n(p.unprotected_count));
        i.accounts_unprotected_since.set(
            p.unprotected_since
                .map_or(0.0, |t| Duration::from_millis(t.0).as_secs_f64()),
        );
        for name in PROTECTION {
            i.accounts_protection
                .get_or_create(&ReplicaLabels { state: name.into() })
                .set(n(s.counts.get(name).copied().unwrap_or(0)));
        }
    }

    /// The last survey (`None` before the first).
    fn record_survey(&self, survey: Option<&crate::survey::show::SurveySummary>) {
        let i = &self.0;
        let n = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
        let Some(survey) = survey else {
            i.replica_survey_age.set(-1);
            return;
        };
        for s in crate::survey::ReplicaState::ALL {
            let count = survey.counts.get(s.as_str()).copied().unwrap_or(0);
            i.replica_accounts
                .get_or_create(&ReplicaLabels {
                    state: s.as_str().into(),
                })
                .set(n(count as u64));
        }
        i.replicas_at_risk.set(n(survey.at_risk_count as u64));
        i.replica_max_lag_sequence.set(n(survey.max_lag_sequence));
        i.replica_max_lag_item_id.set(n(survey.max_lag_item_id));
        i.replica_survey_age.set(n(survey.age_seconds));
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
    fn record_state(
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
    fn record_plan(&self, plan: &crate::engine::Plan) {
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
