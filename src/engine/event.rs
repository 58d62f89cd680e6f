//! Journal entries: every transition and every action with its outcome.
//! The engine produces them as data; [`crate::state::Journal`] appends them
//! to `events.jsonl`, `on_event` hooks receive them on stdin.

use super::action::{Action, ActionId};
use super::reason::Idle;
use super::time::UnixMillis;
use crate::model::{Component, Role, Verdict, Vote, WitnessId};
use serde::{Deserialize, Serialize};

/// How loudly an event should be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A normal transition.
    Info,
    /// Worth a look: a refused gate, an interrupted action, a Down verdict.
    Warning,
    /// A failed action or a condition that needs an operator: makes `check`
    /// exit non-zero.
    Error,
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (the `now` of the engine step).
    pub at: UnixMillis,
    /// How loudly to report it.
    pub severity: Severity,
    /// What happened, with its data.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The role concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The peer component concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
    /// The sentence an operator reads in `habeat history`.
    pub message: String,
    /// Who gave the operator command this event follows from (`alice on
    /// /dev/pts/3`); none for what habeat did by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A witness's settled vote changed (after hysteresis).
    VoteChanged {
        witness: WitnessId,
        from: Vote,
        to: Vote,
    },
    /// A component's verdict changed.
    VerdictChanged {
        from: Verdict,
        to: Verdict,
    },
    /// Why a role does (or does not) act, logged when the reason changes.
    Decision {
        /// The reason as data, where the decision is a role's reason for
        /// doing nothing (its `kind` names it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Idle>,
    },
    /// An action was handed to the executor.
    ActionStarted {
        action: Action,
    },
    /// An action succeeded.
    ActionSucceeded {
        action_id: ActionId,
        detail: String,
    },
    /// An action failed or timed out.
    ActionFailed {
        action_id: ActionId,
        reason: String,
        /// Whether habeat will try again by itself.
        will_retry: bool,
    },
    /// The quorum gate could not be acquired: no automatic action.
    GateRefused {
        key: String,
        reason: String,
    },
    /// A role's wait ended before its time: its cause is seen gone.
    WaitEnded {
        over: super::reason::WaitOver,
    },
    /// A promotion intent was recorded durably (before promoting).
    PromotionIntent {
        source_mail_host: String,
        accounts: Vec<String>,
        /// The accounts whose replica was at risk, with why and how far
        /// behind (`replicas-at-risk-named`); absent in older journals.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        at_risk: Vec<crate::replica::Risk>,
        /// With `replicas.at_risk: hold`: the accounts left out, for the
        /// operator.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        held: Vec<String>,
    },
    /// A replica survey found another set of accounts at risk than the
    /// one before (the first survey counts as a change when any is).
    ReplicasAtRiskChanged {
        source_mail_host: String,
        /// Every account at risk now, with why.
        at_risk: Vec<crate::replica::Risk>,
        /// At risk now and not before.
        #[serde(default)]
        added: Vec<String>,
        /// At risk before and not now.
        #[serde(default)]
        cleared: Vec<String>,
    },
    /// A replica survey failed (the CLI, its output, or a field that makes
    /// no sense): the last good survey, if any, is kept and shown with its
    /// age beside this reason.
    ReplicaSurveyFailed {
        source_mail_host: String,
        reason: String,
    },
    /// The survey of this DC's own mailstore found another set of
    /// unprotected accounts (no replica available and reaching Kafka) than
    /// the one before. Names at most 100 of each list; the counts are whole.
    AccountsUnprotectedChanged {
        mail_host: String,
        unprotected_count: usize,
        unprotected: Vec<String>,
        added_count: usize,
        added: Vec<String>,
        cleared_count: usize,
        cleared: Vec<String>,
        /// Since when the set has been non-empty (`None`: it is empty now).
        since: Option<UnixMillis>,
    },
    /// A recorded failover or re-arm finished (every step done or given up).
    PipelineFinished {
        pipeline: u64,
    },
    /// A recorded failover stopped at a step that needs an operator.
    PipelineStalled {
        pipeline: u64,
    },
    /// A recorded promotion intent was dropped before anything was promoted.
    IntentAbandoned {
        pipeline: u64,
    },
    /// habeat found an action started before it stopped, with no outcome.
    Interrupted {
        action: Action,
    },
    /// Locks cleared: automatic action is possible again.
    Rearmed,
    Paused {
        until: UnixMillis,
    },
    Resumed,
    /// The pause reached its end by itself.
    PauseEnded,
    /// habeat holds all automatic action (e.g. after a corrupt state file).
    SafeHold,
    /// A lock file left by an earlier habeat was taken as a recorded failover.
    LegacyLockAdopted {
        lock: super::action::LockKind,
    },
    /// An operator removed a lock file by hand: taken as a re-arm.
    LockRemovedByHand {
        lock: super::action::LockKind,
    },
    /// A manual promotion was refused (a witness sees the source Up).
    Refused,
    /// consulserver: every peer Consul server Down and no local leader for
    /// `recovery_grace`, and nothing can confirm the peer DC is lost rather
    /// than cut off: raised once per episode, for the operator.
    PeerDcUnreachable {
        leaderless_since: UnixMillis,
    },
    /// After a raft recovery, a peer Consul server answers again: it must
    /// be wiped and rejoined, not restarted with its old data.
    PeerConsulReturned {
        witness: WitnessId,
    },
    /// A fence step ran its agent: every call (action, exit, scrubbed
    /// output tail, time) and whether the peer node is confirmed OFF.
    Fence {
        component: crate::model::Component,
        confirmed: bool,
        calls: Vec<crate::model::FenceCall>,
    },
    /// The first step in a new boot found windows or waits saved in an
    /// earlier one: their boot clock means nothing now, so the wall clock
    /// alone measures them (docs/decisions.md, "Which clock measures
    /// what"). Once per boot.
    WallClockOnly {
        previous_boot: super::time::BootId,
        boot: super::time::BootId,
    },
    /// An outcome that matches no action in flight (ignored).
    OutcomeIgnored {
        action_id: ActionId,
    },
    /// The primary side's serving lease was not renewed for ttl - ttl/3:
    /// it fenced itself (`hooks.on_fence`).
    LeaseFenced {
        key: String,
        hooks_ok: bool,
    },
    /// The lease is back and no promotion was made: `hooks.on_unfence` ran.
    LeaseUnfenced {
        key: String,
        hooks_ok: bool,
    },
    /// The lease is back but the secondary promoted meanwhile: stays
    /// fenced for the operator.
    LeaseStaysFenced {
        key: String,
        /// How many accounts recorded here while serving the directory
        /// lists elsewhere now (0: seen by the failover key).
        #[serde(default)]
        moved: usize,
        /// The first of them, by name.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        moved_first: Vec<String>,
    },
    /// The lease is back and the failover key unchanged, but there is no
    /// evidence yet that this side's accounts are still its own (the
    /// directory listing failed, or no record was taken): stays fenced and
    /// asks again at every renewal.
    LeaseUnproven {
        key: String,
    },
    /// The lease lapsed but a witness sees the secondary's mailstore Up:
    /// not fencing.
    LeaseLapsedPeerUp {
        key: String,
    },
    /// The secondary could not read the peer's serving lease before an
    /// automatic promotion (or the fence of the peer mailstore), and went
    /// on without it: `safety.quorum_gate` is off and
    /// `safety.require_peer_lease` is `auto` (`lease-before-takeover`,
    /// docs/decisions.md §7). Journaled before the step runs.
    PeerLeaseUnchecked {
        key: String,
        /// Why it could not be read (the Consul error).
        detail: String,
    },
    /// Accounts at risk at their promotion are now known diverged, with
    /// their gap (`no-seed-over-a-diverged-copy`).
    AccountsDiverged {
        accounts: Vec<super::protection::Diverged>,
    },
    /// A re-protection was recorded: its batches are the steps of
    /// pipeline `pipeline`.
    ReprotectRecorded {
        pipeline: u64,
        destination: String,
        batches: usize,
        accounts: usize,
    },
    /// Diverged accounts left out of a re-protection onto their old
    /// mailstore (`no-seed-over-a-diverged-copy`), with their gap.
    ReprotectLeftOut {
        destination: String,
        accounts: Vec<super::protection::Diverged>,
    },
    /// The operator named diverged accounts (`reprotect
    /// --discard-diverged`): their old copy is given up for a replica.
    DivergenceDiscarded {
        accounts: Vec<super::protection::Diverged>,
    },
    /// A step of `habeat switchover` (started, a wave's step, a wave done
    /// or rolled back, statuses restored after a crash, the end).
    Switchover {
        /// The switchover's id (when it started, ms).
        id: u64,
        /// `started`, `maintenance_set`, `caught_up`, `promoted`,
        /// `restored`, `reprotected`, `wave_done`, `rolled_back`,
        /// `restored_after_crash`, `done`, `failed`, `stopped`.
        step: String,
        /// The wave (1-based), when the step is a wave's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wave: Option<usize>,
        /// The accounts concerned.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        accounts: Vec<String>,
    },
}

impl EventKind {
    /// The `event` field of its JSON (the serde tag): what `on_event`
    /// hooks get as `HABEAT_EVENT` and the metrics count by. A new kind
    /// must be named here (the match has no wildcard).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::VoteChanged { .. } => "vote_changed",
            EventKind::VerdictChanged { .. } => "verdict_changed",
            EventKind::Decision { .. } => "decision",
            EventKind::ActionStarted { .. } => "action_started",
            EventKind::ActionSucceeded { .. } => "action_succeeded",
            EventKind::ActionFailed { .. } => "action_failed",
            EventKind::GateRefused { .. } => "gate_refused",
            EventKind::WaitEnded { .. } => "wait_ended",
            EventKind::PromotionIntent { .. } => "promotion_intent",
            EventKind::ReplicasAtRiskChanged { .. } => "replicas_at_risk_changed",
            EventKind::ReplicaSurveyFailed { .. } => "replica_survey_failed",
            EventKind::AccountsUnprotectedChanged { .. } => "accounts_unprotected_changed",
            EventKind::PipelineFinished { .. } => "pipeline_finished",
            EventKind::PipelineStalled { .. } => "pipeline_stalled",
            EventKind::IntentAbandoned { .. } => "intent_abandoned",
            EventKind::Interrupted { .. } => "interrupted",
            EventKind::Rearmed => "rearmed",
            EventKind::Paused { .. } => "paused",
            EventKind::Resumed => "resumed",
            EventKind::PauseEnded => "pause_ended",
            EventKind::SafeHold => "safe_hold",
            EventKind::LegacyLockAdopted { .. } => "legacy_lock_adopted",
            EventKind::LockRemovedByHand { .. } => "lock_removed_by_hand",
            EventKind::Refused => "refused",
            EventKind::PeerDcUnreachable { .. } => "peer_dc_unreachable",
            EventKind::PeerConsulReturned { .. } => "peer_consul_returned",
            EventKind::Fence { .. } => "fence",
            EventKind::WallClockOnly { .. } => "wall_clock_only",
            EventKind::OutcomeIgnored { .. } => "outcome_ignored",
            EventKind::LeaseFenced { .. } => "lease_fenced",
            EventKind::LeaseUnfenced { .. } => "lease_unfenced",
            EventKind::LeaseStaysFenced { .. } => "lease_stays_fenced",
            EventKind::LeaseUnproven { .. } => "lease_unproven",
            EventKind::LeaseLapsedPeerUp { .. } => "lease_lapsed_peer_up",
            EventKind::PeerLeaseUnchecked { .. } => "peer_lease_unchecked",
            EventKind::ReprotectRecorded { .. } => "reprotect_recorded",
            EventKind::AccountsDiverged { .. } => "accounts_diverged",
            EventKind::ReprotectLeftOut { .. } => "reprotect_left_out",
            EventKind::DivergenceDiscarded { .. } => "divergence_discarded",
            EventKind::Switchover { .. } => "switchover",
        }
    }
}
