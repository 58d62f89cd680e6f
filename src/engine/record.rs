//! The engine's state: [`State`], everything that must survive a restart
//! (`state.json`, a versioned format), and [`Live`], the little that must
//! not (it lives only as long as the process that learnt it).

use super::action::{Action, ActionId, ActionKind, LockKind, Origin, PromoteTarget};
use super::kind::PipelineKind;
use super::reason::{Idle, Stall, Waiting};
use super::time::{BootId, BootTime, Now, UnixMillis};
use crate::model::{Component, Observation, RaftServer, Role, Verdict, Vote, WitnessId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the `state.json` layout. A file with another version is not
/// trusted (set aside, safe hold).
pub const STATE_VERSION: u32 = 1;

/// The whole durable state of habeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Layout version ([`STATE_VERSION`]).
    pub version: u32,
    /// Hysteresis of each witness seen in the last round.
    pub witnesses: Vec<WitnessState>,
    /// The last verdict of each component of the peer DC, with its reason.
    pub components: BTreeMap<Component, ComponentState>,
    /// Per-role failover records.
    pub roles: BTreeMap<Role, RoleState>,
    /// The last promotion (automatic or manual): `promotion_block` counts
    /// from it. Never cleared by `rearm`.
    pub last_promotion: Option<LastPromotion>,
    /// Maintenance pause, until a time.
    pub pause: Option<Pause>,
    /// No automatic action until an operator runs `habeat rearm`.
    pub safe_hold: Option<SafeHold>,
    /// Consul memory for raft recovery.
    pub raft: RaftMemory,
    /// When the last observation round was fed.
    pub last_round_at: Option<UnixMillis>,
    /// The action handed to the executor whose outcome has not come back.
    /// Found set after a restart, it means habeat died during it.
    pub in_flight: Option<Action>,
    /// The next action id (ids are never reused, across restarts too).
    pub next_action_id: u64,
    /// The next pipeline id.
    pub next_pipeline_id: u64,
    /// The boot of the last step: a step in another boot says once that
    /// the windows saved before are now measured by the wall clock alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootId>,
    /// The last operator command (`pause`, `resume`, `rearm`, `promote`,
    /// `recover`) and who gave it, stamped by the session that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operator: Option<OperatorMark>,
    /// Diverged accounts and re-protection (`no-seed-over-a-diverged-copy`).
    #[serde(default, skip_serializing_if = "Protection::is_empty")]
    pub protection: Protection,
}

/// Who gave an operator command, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorMark {
    /// The command (`pause`, `rearm`, ...).
    pub command: String,
    /// The user (`SUDO_USER`, else the login name) and the terminal:
    /// `alice on /dev/pts/3`.
    pub by: String,
    pub at: UnixMillis,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// What the engine knows only while this process runs; never saved, so a
/// restart forgets it, which is what each of these facts must do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Account listing obtained in this run; a new round or a restart
    /// forgets it, so a promotion always uses a fresh listing.
    pub fresh_listing: Option<Vec<String>>,
    /// `core getAllOperations` showed no promotion running, in this run,
    /// since the last promoteAccounts was handed out: a promotion may be
    /// issued again.
    pub no_promotion_running: bool,
    /// The quorum gate key held by this process. A restart loses it with
    /// the Consul session.
    pub gate_held: Option<(Role, String)>,
    /// The action this process handed out and is running: while it is
    /// [`State::in_flight`], a round fed meanwhile (the daemon keeps
    /// probing during a long promotion) is not mistaken for a crash. An
    /// in-flight action found in a loaded file has another id, or none
    /// here: that one was interrupted.
    pub running_here: Option<ActionId>,
    /// The last round fed saw the local Consul with a leader: a gate
    /// refused for want of one is then not a cause a round can show gone.
    pub leader_in_last_round: bool,
    /// When the probes of the round now out were sent, on both clocks, if
    /// the caller says (the daemon does; `None` for a caller that probes
    /// and feeds in one go). The round fed next takes it as the instant
    /// its answers prove the peer alive (the evidence a deadline counts
    /// from, not the instant the round was fed), and while they are out
    /// a deadline gives them their whole grace from it
    /// ([`super::witness::deadline`], docs/decisions.md §1).
    pub probes_out: Option<super::time::Now>,
    /// The witnesses whose probe now out has already been answered (Up),
    /// before the whole round is in: none of them votes Down by deadline,
    /// the round brings the answer.
    pub answered_out: Vec<crate::model::WitnessId>,
    /// The operator's promotion (pipeline id) this process judged on the
    /// command's own probe round: its first attempt stands on that
    /// judgement; a later run (after a round, an attempt, or in another
    /// process) is judged again on the rounds of its time.
    pub operator_judged: Option<u64>,
}

impl Live {
    /// Whether the in-flight action of `state` runs in this process.
    pub fn runs(&self, state: &State) -> bool {
        self.running_here.is_some() && state.in_flight.as_ref().map(|a| a.id) == self.running_here
    }
}

impl State {
    /// A fresh state: nothing observed, nothing recorded.
    pub fn new() -> State {
        State {
            version: STATE_VERSION,
            witnesses: Vec::new(),
            components: BTreeMap::new(),
            roles: BTreeMap::new(),
            last_promotion: None,
            pause: None,
            safe_hold: None,
            raft: RaftMemory::default(),
            last_round_at: None,
            in_flight: None,
            next_action_id: 1,
            next_pipeline_id: 1,
            boot: None,
            last_operator: None,
            protection: Default::default(),
        }
    }

    /// The state habeat starts from when `state.json` could not be trusted:
    /// no automatic action until `habeat rearm` (the lost file may have
    /// recorded a promotion).
    pub fn safe(now: UnixMillis, reason: impl Into<String>) -> State {
        let mut s = State::new();
        s.safe_hold = Some(SafeHold {
            since: now,
            reason: reason.into(),
        });
        s
    }

    /// The verdict last computed for a component (Unknown if never).
    pub fn verdict(&self, c: Component) -> Verdict {
        self.components
            .get(&c)
            .map(|s| s.verdict)
            .unwrap_or(Verdict::Unknown)
    }

    /// The state of a role (default: nothing recorded).
    pub fn role(&self, r: Role) -> RoleState {
        self.roles.get(&r).cloned().unwrap_or_default()
    }

    /// Whether a pause is in force at `now`.
    pub fn paused_at(&self, now: UnixMillis) -> bool {
        self.pause.as_ref().is_some_and(|p| now < p.until)
    }

    pub(crate) fn role_mut(&mut self, r: Role) -> &mut RoleState {
        self.roles.entry(r).or_default()
    }

    pub(crate) fn witness(&self, id: &WitnessId) -> Option<&WitnessState> {
        self.witnesses.iter().find(|w| &w.witness == id)
    }
}

/// Per-witness hysteresis (each witness keeps its own counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessState {
    /// Which witness.
    pub witness: WitnessId,
    /// The settled vote: Down after `fall` consecutive Down observations,
    /// Up after `rise` consecutive Up; Unknown while unsettled.
    pub vote: Vote,
    /// This round's raw observation.
    pub last_raw: Vote,
    /// The reason given with the last observation.
    pub reason: String,
    /// Consecutive raw Down observations.
    pub down_streak: u32,
    /// Consecutive raw Up observations.
    pub up_streak: u32,
    /// When it was last observed (gaps longer than `stale_after` reset it).
    pub last_seen: UnixMillis,
    /// When `vote` last changed.
    pub since: UnixMillis,
    /// When the probe the peer last answered was sent (its last raw Up),
    /// on both clocks; `None` after an Unknown or a gap past
    /// `stale_after`: the evidence a detection deadline counts from (see
    /// [`super::witness::deadline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_up: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_up_boot: Option<BootTime>,
    /// How long the peer took to answer then (milliseconds): the grace the
    /// last probe of a deadline gets scales with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_up_latency_ms: Option<u64>,
}

/// The verdict on one component, with the words that explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentState {
    /// Up, Down or Unknown.
    pub verdict: Verdict,
    /// Which witnesses said what.
    pub reason: String,
    /// When the verdict last changed.
    pub since: UnixMillis,
}

/// What habeat has done (and is doing) for one role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleState {
    /// The failover record: present from the promotion intent (or HA-module
    /// stop, proxy activation, raft recovery) until re-armed. Its presence
    /// is what "locks" the role.
    pub failover: Option<Pipeline>,
    /// A re-arm in progress (locks being removed, hooks running). Saved
    /// as `recovery` by earlier releases.
    #[serde(alias = "recovery")]
    pub rearm: Option<Pipeline>,
    /// No automatic step of this role before this time (after a failure,
    /// an empty listing or a refused gate).
    pub retry_at: Option<UnixMillis>,
    /// `retry_at` on the boot clock: the wait ends when either clock
    /// reaches its end, so a wall clock set back never lengthens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at_boot: Option<BootTime>,
    /// Why `retry_at` was set, when no step recorded an error (a refused
    /// quorum gate): shown by `status`.
    #[serde(default, deserialize_with = "super::kind::lenient")]
    pub retry_reason: Option<Waiting>,
    /// For a wait caused by a missing Consul leader: what the rounds since
    /// have shown of the leader. `None` for other waits, and in state
    /// saved by earlier releases (their waits end by the clock).
    #[serde(default)]
    pub retry_leader: Option<LeaderWatch>,
    /// The last decision reason logged, to journal only changes.
    #[serde(default, deserialize_with = "super::kind::lenient")]
    pub last_decision: Option<Idle>,
}

impl RoleState {
    /// Wait `d` from `now` before the next automatic try (both clocks).
    pub(crate) fn wait(&mut self, now: Now, d: std::time::Duration) {
        let until = now.plus(d);
        self.retry_at = Some(until.wall);
        self.retry_at_boot = until.boot;
    }
}

/// What the rounds have shown of the local Consul leader since a wait for
/// one began. The wait ends on `Back`: a round saw a leader after one saw
/// none. A refusal for want of a leader while the rounds see one is not a
/// cause a round can show gone, so it waits out its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "seen", rename_all = "snake_case")]
pub enum LeaderWatch {
    /// Every round since (and the one before) saw a leader.
    Present,
    /// A round saw no leader (or could not ask).
    Missing,
    /// A round (or raft recovery's leader check) saw a leader again.
    Back { at: UnixMillis },
}

/// An ordered list of recorded steps. Each step is marked Started in the
/// persisted state *before* its action runs and Done *after* its outcome,
/// so a crash leaves at most one step in doubt (`resumable-steps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Unique across the life of the state (never reused).
    pub id: u64,
    /// What it does.
    pub kind: PipelineKind,
    /// Automatic pipelines obey pause and safe hold; operator ones do not.
    pub origin: Origin,
    /// When it was recorded.
    pub started_at: UnixMillis,
    /// Why, in words (also the `why` of its lock files).
    pub reason: String,
    /// For promotions: what is promoted.
    pub promotion: Option<PromotionDetails>,
    /// The steps, in the order they run.
    pub steps: Vec<StepState>,
    /// Set when a step that cannot be skipped gave up: operator needed.
    pub stalled: Option<Stall>,
    /// When every step was done or given up (or it stalled).
    pub finished_at: Option<UnixMillis>,
}

impl Pipeline {
    /// A promotion that `replicas.at_risk: hold` left with nothing to
    /// promote: recorded with no step, every account held for the
    /// operator.
    pub fn held_everything(&self) -> bool {
        self.steps.is_empty() && self.promotion.as_ref().is_some_and(|d| !d.held.is_empty())
    }

    /// Every step done or given up, or stalled.
    pub fn is_finished(&self) -> bool {
        self.stalled.is_some()
            || self
                .steps
                .iter()
                .all(|s| matches!(s.status, StepStatus::Done | StepStatus::GaveUp))
    }

    /// Whether anything irreversible may have happened: the promotion (or
    /// first step) was started at least once. Before that it is only an
    /// intent, which is dropped if the peer comes back.
    pub fn committed(&self) -> bool {
        self.first_acting().is_some_and(|s| s.attempts > 0)
    }

    /// The first step that changes something of the mail system: a fence
    /// step before it only confirms (or makes sure) the peer is off.
    fn first_acting(&self) -> Option<&StepState> {
        self.steps
            .iter()
            .find(|s| !matches!(s.step, Step::Fence { .. }))
    }

    /// Whether the step that commits this failover has run to its end:
    /// the promotion, the HA module stop, the first proxy switch command.
    /// Before it, the failover is still only a decision about the peer and
    /// needs the peer Down at every attempt; after it, the follow-up steps
    /// (lock files, caches, hooks) must finish whatever the peer does.
    pub fn decisive_done(&self) -> bool {
        match self.kind {
            PipelineKind::Promotion => self.step_done(|s| matches!(s, Step::PromoteAccounts)),
            PipelineKind::HaModuleStop | PipelineKind::ProxyActivation => self
                .first_acting()
                .is_none_or(|s| matches!(s.status, StepStatus::Done | StepStatus::GaveUp)),
            PipelineKind::RaftRecovery
            | PipelineKind::Adopted
            | PipelineKind::Rearm
            | PipelineKind::Reprotect => true,
        }
    }

    /// The index of the first step not yet done or given up.
    pub fn next_index(&self) -> Option<usize> {
        if self.stalled.is_some() {
            return None;
        }
        self.steps
            .iter()
            .position(|s| !matches!(s.status, StepStatus::Done | StepStatus::GaveUp))
    }

    /// Whether a step of this kind is done.
    pub(crate) fn step_done(&self, pred: impl Fn(&Step) -> bool) -> bool {
        self.steps
            .iter()
            .any(|s| pred(&s.step) && s.status == StepStatus::Done)
    }

    /// Whether a step of this kind ever started (done, or possibly done).
    pub(crate) fn step_started(&self, pred: impl Fn(&Step) -> bool) -> bool {
        self.steps.iter().any(|s| pred(&s.step) && s.attempts > 0)
    }
}

/// What a promotion moves: recorded with the intent, before promoting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionDetails {
    /// The mailstore the accounts are promoted from.
    pub source_mail_host: String,
    /// All its accounts, or some.
    pub target: PromoteTarget,
    /// Carbonio promotion threads.
    pub threads: u32,
    /// Every account listed on the source while promoting (the union of
    /// the listings): what cache flush and replica restart apply to.
    pub accounts: Vec<String>,
    /// The accounts whose replica was at risk when the promotion was
    /// decided, with why and how far behind (`replicas-at-risk-named`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_risk: Vec<crate::replica::Risk>,
    /// With `replicas.at_risk: hold`: the accounts at risk left out of
    /// this promotion, for the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// The operator's `promote --force`: promoted over any witness, so a
    /// retry of its promotion step is not judged again. Absent (an
    /// automatic promotion, or one recorded by an earlier build): judged
    /// again, the safe side.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    /// What the step does.
    pub step: Step,
    /// Where it stands.
    pub status: StepStatus,
    /// How many times the step was started (crashes included).
    pub attempts: u32,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// When its status last changed.
    pub updated_at: UnixMillis,
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started yet.
    Pending,
    /// Handed to the executor; no outcome yet. Found after a restart, the
    /// step is in doubt: it may or may not have run.
    Started,
    /// Finished with success: never run again.
    Done,
    /// Failed; will be tried again after `retry_delay`.
    Failed,
    /// Failed too often (or not retryable): an error event told the operator.
    GaveUp,
}

/// A step of a pipeline, in the operator's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    PromoteAccounts,
    WriteLocks {
        locks: Vec<LockKind>,
    },
    RemoveLocks {
        locks: Vec<LockKind>,
    },
    FlushCache,
    PauseReplicas,
    RestartReplicas,
    StopHaModule,
    StartHaModule,
    Command {
        action: ActionKind,
    },
    RaftRecovery {
        servers: Vec<RaftServer>,
    },
    ConfirmLeader,
    /// The fence agent of `fencing.<component>` confirms the peer node
    /// OFF (`fence-before-promotion`): before `promoteAccounts`, before
    /// the first proxy switch command.
    Fence {
        component: Component,
    },
    /// One batch of a re-protection: `setAccountDestination` of these
    /// accounts onto `destination`.
    SetDestination {
        destination: String,
        priority: u32,
        accounts: Vec<String>,
    },
}

impl Step {
    /// How many failures a step survives before habeat gives it up.
    /// Operator-written commands and raft recovery have side effects habeat
    /// cannot judge: they are not retried after a failure (only re-run once
    /// their run was interrupted by a crash).
    pub(crate) fn max_failures(&self) -> u32 {
        match self {
            // A failed batch stops the run for the operator, without a
            // retry wait that would hold the appserver role's failover.
            Step::Command { .. } | Step::RaftRecovery { .. } | Step::SetDestination { .. } => 1,
            _ => super::config::MAX_ATTEMPTS,
        }
    }

    /// Whether giving this step up stops the pipeline (the following steps
    /// make no sense without it).
    pub(crate) fn stalls_on_give_up(&self) -> bool {
        matches!(
            self,
            Step::PromoteAccounts
                | Step::RaftRecovery { .. }
                | Step::ConfirmLeader
                | Step::Fence { .. }
                | Step::SetDestination { .. }
        )
    }

    pub(crate) fn name(&self) -> String {
        match self {
            Step::PromoteAccounts => "promote accounts".into(),
            Step::WriteLocks { .. } => "write lock files".into(),
            Step::RemoveLocks { .. } => "remove lock files".into(),
            Step::FlushCache => "flush account caches".into(),
            Step::PauseReplicas => "pause replicas".into(),
            Step::RestartReplicas => "restart replicas".into(),
            Step::StopHaModule => "stop the HA module".into(),
            Step::StartHaModule => "start the HA module".into(),
            Step::Command { action } => action.describe(),
            Step::RaftRecovery { .. } => "raft recovery".into(),
            Step::ConfirmLeader => "confirm a Consul leader".into(),
            Step::Fence { component } => format!("fence the peer {component}"),
            Step::SetDestination {
                destination,
                accounts,
                ..
            } => format!(
                "give {} account(s) a replica on {destination}",
                accounts.len()
            ),
        }
    }
}

/// When and what was last promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPromotion {
    /// When `promoteAccounts` first started for it.
    pub at: UnixMillis,
    /// `at` on the boot clock: `promotion_block` holds until both clocks
    /// say it is over, so a wall clock set forward never shortens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_boot: Option<BootTime>,
    /// From which mailstore.
    pub source_mail_host: String,
    /// Automatic, by an operator, or found as a lock file.
    pub origin: Origin,
}

/// A maintenance pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// When the operator paused.
    pub since: UnixMillis,
    /// When the pause ends by itself.
    pub until: UnixMillis,
    /// What the operator said (or `habeat pause`).
    pub reason: String,
}

/// Why automatic action is held until `habeat rearm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafeHold {
    /// Since when.
    pub since: UnixMillis,
    /// What could not be trusted.
    pub reason: String,
}

/// What habeat remembers about Consul raft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMemory {
    /// The last raft configuration seen while the local Consul had a leader.
    pub last_healthy: Option<Vec<RaftServer>>,
    /// When that configuration was seen.
    pub last_healthy_at: Option<UnixMillis>,
    /// Since when consecutive rounds saw no local leader.
    pub leaderless_since: Option<UnixMillis>,
    /// `leaderless_since` on the boot clock: `recovery_grace` holds until
    /// both clocks say it is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaderless_since_boot: Option<BootTime>,
    /// The `leaderless_since` of the episode for which `peer_dc_unreachable`
    /// was raised: once per episode.
    #[serde(default)]
    pub unreachable_reported: Option<UnixMillis>,
    /// When this node last recovered raft (automatic or operator): from
    /// then on, a peer Consul server seen again must be wiped and rejoined.
    #[serde(default)]
    pub recovered_at: Option<UnixMillis>,
    /// When a peer Consul server was first seen Up again after that
    /// recovery (`peer_consul_returned`); `habeat rearm` clears both.
    #[serde(default)]
    pub peer_returned_at: Option<UnixMillis>,
    /// What the last round saw of the local Consul: `Some(true)` a raft
    /// leader, `Some(false)` none, `None` the agent did not answer (or no
    /// round yet). `status` shows it with the round's age.
    #[serde(default)]
    pub local_leader: Option<bool>,
}

fn follow_ups_default() -> bool {
    true
}

/// An operator's command, fed to the engine like a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum OperatorCommand {
    /// `habeat rearm`: clear the failover locks (and the safe hold).
    Rearm,
    /// `habeat pause --for`: no automatic action until `until`.
    Pause { until: UnixMillis, reason: String },
    /// `habeat resume`.
    Resume,
    /// `habeat promote`: a manual promotion, recorded like an automatic one.
    Promote {
        target: PromoteTarget,
        /// The accounts the operator was shown, recorded with the intent (a
        /// whole mailstore is listed again by the engine before promoting).
        accounts: Vec<String>,
        threads: Option<u32>,
        /// Promote even while a witness sees the source appserver Up.
        force: bool,
        /// A fresh probe round of the source appserver's witnesses.
        evidence: Vec<Observation>,
        /// Run the proxy switch `activate` commands and the
        /// `after_promotion` hooks after it, as an automatic promotion
        /// does (`--no-follow-ups` clears it).
        #[serde(default = "follow_ups_default")]
        follow_ups: bool,
    },
    /// `habeat recover --peer-dc-lost`: the operator confirms the peer DC
    /// is lost; raft recovery now, journaled as the operator's.
    /// `habeat reprotect`: give accounts a replica on a mailstore.
    Reprotect {
        request: super::protection::ReprotectRequest,
    },
    RecoverPeerDcLost {
        /// A fresh probe round of the peer Consul servers' witnesses.
        evidence: Vec<Observation>,
        /// What the local Consul agent said of its leader in that round
        /// (`None`: it could not be asked). A leader that answers means
        /// this side still has a raft quorum: recovery would drop voters.
        #[serde(default)]
        local_leader: Option<bool>,
    },
    /// `habeat switchover` moved the accounts home to `mail_host`: the
    /// promotion that moved them away from it is re-armed, and the proxy
    /// switch's `deactivate` commands run, as an automatic re-arm does.
    FailBack { mail_host: String },
}

/// Presence of one legacy lock file, read by the driver before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFileSeen {
    /// Whose lock file.
    pub role: Role,
    /// Which one.
    pub lock: LockKind,
    /// Whether it exists.
    pub present: bool,
    /// The `when` of its JSON body, if it had one.
    pub written_at: Option<UnixMillis>,
}

/// What habeat keeps about the protection of accounts after promotions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Every account at risk at its promotion, until the operator
    /// resolves it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diverged: Vec<super::protection::Diverged>,
    /// The last promotion whose accounts the daemon has not re-protected
    /// yet (`replicas.reprotect: auto` does it once the peer is Up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_promotion: Option<super::protection::AfterPromotion>,
    /// Accounts of the peer's mailstore the survey found without a
    /// replica, not yet given one here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncovered: Vec<String>,
    /// Accounts of the peer's mailstore already given a replica here by
    /// the daemon: once per account.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub covered: std::collections::BTreeSet<String>,
    /// The last re-protection: its batches are its steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Pipeline>,
    /// The diverged accounts the last re-protection left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<super::protection::Diverged>,
}

impl Protection {
    pub fn is_empty(&self) -> bool {
        *self == Protection::default()
    }

    /// The divergence of `account` onto `host`, if it has one there.
    pub fn diverged_onto(&self, account: &str, host: &str) -> Option<&super::protection::Diverged> {
        self.diverged.iter().find(|d| {
            d.account.eq_ignore_ascii_case(account) && d.mail_host.eq_ignore_ascii_case(host)
        })
    }

    /// The current run, while it has batches left.
    pub fn unfinished_run(&self) -> Option<&Pipeline> {
        self.run.as_ref().filter(|p| !p.is_finished())
    }
}
