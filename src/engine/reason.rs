//! Why the engine does what it does, as data.
//!
//! Every reason is a variant that carries what it is about, with one
//! `Display` written for the operator, and a stable `kind` (the serde
//! tag) for `status --json`, `/status`, the metrics and the tests. No
//! variant holds another one's sentence as text: where a reason has a
//! cause, the cause is a value of its own type, so a clause is never said
//! twice ("cannot prove ...: ... (quorum gate refused: cannot prove ...)").

use super::kind::{PipelineKind, serde_kind};
pub use super::operator::{GiveUp, OperatorRefusal, Stall};
use super::time::{UnixMillis, human};
use crate::model::{Component, Role, Verdict};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Why the quorum gate stays shut (from the executor, which asked Consul).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GateRefusal {
    /// No leader, the write failed, or the local agent did not answer:
    /// this side may be the minority of a partition.
    NoQuorum { detail: String },
    /// Consul answered but refused (the token) or answered nonsense.
    Consul { detail: String },
    /// The lock exists and another session holds it.
    HeldByAnother {
        host: String,
        holder: Option<String>,
    },
    /// The gate was held, but its Consul session is gone.
    Lost { keys: Vec<String> },
    /// A gated step came without the gate held.
    NotHeld,
    /// habeat has no Consul client (its configuration could not be used).
    NoClient { detail: String },
}

impl fmt::Display for GateRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateRefusal::NoQuorum { detail } => {
                write!(f, "this side has no Consul quorum ({detail})")
            }
            GateRefusal::Consul { detail } => {
                write!(f, "the failover lock could not be taken ({detail})")
            }
            GateRefusal::HeldByAnother { host, holder } => {
                write!(f, "another habeat holds the failover lock for {host}")?;
                match holder {
                    Some(h) if !h.is_empty() => write!(f, " ({h})"),
                    _ => Ok(()),
                }
            }
            GateRefusal::Lost { keys } => write!(
                f,
                "the quorum gate {} was lost (its Consul session is gone)",
                keys.join(", ")
            ),
            GateRefusal::NotHeld => f.write_str("no quorum gate is held"),
            GateRefusal::NoClient { detail } => write!(f, "Consul cannot be asked ({detail})"),
        }
    }
}

/// Why the secondary cannot take the primary's serving lease over yet
/// (`lease-before-takeover`): promoteAccounts waits, and is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PeerLeaseWait {
    /// The primary's session still holds the key: it is alive (or has not
    /// lapsed yet, and will fence itself before it does).
    Held { key: String },
    /// The key is free, but Consul's lock-delay after the primary's
    /// session was invalidated has not passed.
    LockDelay { key: String },
    /// The key never existed and `safety.require_peer_lease: always`.
    Absent { key: String },
    /// Consul could not be asked.
    Consul { key: String, detail: String },
}

impl fmt::Display for PeerLeaseWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerLeaseWait::Held { key } => write!(
                f,
                "the primary still holds its serving lease {key}: it is alive, or it fences itself \
                 before Consul lets the lease go (TTL, then lock-delay)"
            ),
            PeerLeaseWait::LockDelay { key } => write!(
                f,
                "the primary's serving lease {key} has expired, but Consul's lock-delay has not \
                 passed yet"
            ),
            PeerLeaseWait::Absent { key } => write!(
                f,
                "the primary has no serving lease {key} and safety.require_peer_lease is \
                 `always`: waiting for it (or set it to `auto` if the primary runs no lease)"
            ),
            PeerLeaseWait::Consul { key, detail } => {
                write!(
                    f,
                    "cannot read the primary's serving lease {key} ({detail})"
                )
            }
        }
    }
}

impl GateRefusal {
    /// Whether the refusal's cause is the local Consul's missing leader
    /// (or what it takes down with it, the session): a round that sees a
    /// leader again shows it gone.
    pub fn needs_a_leader(&self) -> bool {
        matches!(
            self,
            GateRefusal::NoQuorum { .. } | GateRefusal::Lost { .. }
        )
    }
}

/// Why a role waits before its next try (`retry_at` says until when).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Waiting {
    /// The quorum gate was refused.
    GateRefused { refusal: GateRefusal },
    /// The gate was found lost just before a gated step, which did not run.
    GateLost { step: String, refusal: GateRefusal },
    /// The primary's serving lease cannot be taken over yet.
    PeerLease { wait: PeerLeaseWait },
    /// An earlier promotion still runs on the mailbox server.
    PromotionRunning {
        host: String,
        operations: Vec<String>,
    },
    /// The fence agent did not confirm the peer node OFF
    /// (`fence-before-promotion`).
    FenceUnconfirmed {
        component: Component,
        failure: crate::model::FenceFailure,
    },
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::GateRefused { refusal } => {
                write!(f, "cannot prove the peer is gone: {refusal}")
            }
            // The refusal says what was lost ("the quorum gate ... was
            // lost"); this only adds before what.
            Waiting::GateLost { step, refusal } => {
                write!(f, "cannot prove the peer is gone: {refusal}, before {step}")
            }
            Waiting::PeerLease { wait } => write!(f, "not promoting yet: {wait}"),
            Waiting::PromotionRunning { host, operations } => write!(
                f,
                "an earlier promotion is still running on the mailbox server ({}): waiting for \
                 it to end before promoting what it leaves on {host}",
                operations.join("; ")
            ),
            Waiting::FenceUnconfirmed { component, failure } => write!(
                f,
                "fencing.{} did not confirm the peer {component} powered off ({failure}): no \
                 {} without it; check the agent by hand with its `status` action \
                 (docs/fencing.md)",
                component.as_str(),
                match component {
                    Component::Proxy => "proxy switch",
                    Component::Consul => "raft recovery",
                    _ => "promotion",
                }
            ),
        }
    }
}

impl Waiting {
    /// The gate refusal the wait is about, if it is about the gate.
    pub fn gate_refusal(&self) -> Option<&GateRefusal> {
        match self {
            Waiting::GateRefused { refusal } | Waiting::GateLost { refusal, .. } => Some(refusal),
            Waiting::PromotionRunning { .. }
            | Waiting::FenceUnconfirmed { .. }
            | Waiting::PeerLease { .. } => None,
        }
    }
}

/// Why a wait ended before its time: what caused it is seen gone. Only
/// waits with a cause a round (or the configuration) shows end so; a
/// failed action's backoff ends by the clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitOver {
    /// The wait was for the quorum gate, and the configuration no longer
    /// asks for it (`safety.quorum_gate: false`).
    GateOff,
    /// The gate was refused for want of a Consul leader, and a round has
    /// seen the local Consul with a leader since.
    LeaderBack { at: UnixMillis },
}

impl fmt::Display for WaitOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitOver::GateOff => {
                f.write_str("the wait for the quorum gate is over: safety.quorum_gate is off")
            }
            WaitOver::LeaderBack { at } => write!(
                f,
                "the wait for the quorum gate is over: the local Consul has a leader again (round at {at}); trying now"
            ),
        }
    }
}

/// Why raft recovery may not run now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RaftWait {
    PeerServersNot {
        verdict: Verdict,
    },
    LocalLeaderPresent,
    Grace {
        leaderless_since: UnixMillis,
        #[serde(with = "crate::model::humantime_serde_compat")]
        grace: Duration,
    },
    ArbiterDisagrees,
    /// `raft_recovery: confirmed` and nothing here can confirm that the
    /// peer DC is lost rather than cut off (no arbiter, no fencing.consul).
    Unconfirmed {
        leaderless_since: UnixMillis,
    },
    /// `raft_recovery: operator`: only the operator recovers raft.
    OperatorOnly {
        leaderless_since: UnixMillis,
    },
}

/// What `status` says to do when raft recovery waits for a confirmation.
pub const PEER_DC_LOST_HINT: &str = "habeat cannot tell a partition of the inter-DC link from a lost datacenter: both look \
     the same from here. A third vantage point would confirm it: an arbiter \
     (witnesses.command, run from or asking a third site, voting Down for consul) or \
     fencing.consul confirming every peer Consul server OFF. If you know the peer datacenter \
     is lost, run `habeat recover --peer-dc-lost`";

impl fmt::Display for RaftWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaftWait::PeerServersNot { verdict } => write!(
                f,
                "peer Consul servers are {verdict}: raft recovery only when every one is Down"
            ),
            RaftWait::LocalLeaderPresent => f.write_str(
                "peer Consul servers are Down, but the local Consul has a leader (or could not \
                 be asked): no raft recovery needed",
            ),
            RaftWait::Grace {
                leaderless_since,
                grace,
            } => write!(
                f,
                "peer Consul servers are Down and the local Consul has had no leader since \
                 {leaderless_since}; raft recovery after recovery_grace ({})",
                human(*grace)
            ),
            RaftWait::ArbiterDisagrees => write!(
                f,
                "the command witness does not confirm the peer Consul servers are Down: no raft \
                 recovery. {PEER_DC_LOST_HINT}"
            ),
            RaftWait::Unconfirmed { leaderless_since } => write!(
                f,
                "every peer Consul server is Down and the local Consul has had no leader since \
                 {leaderless_since}, but no raft recovery without a confirmation \
                 (safety.raft_recovery: confirmed): {PEER_DC_LOST_HINT}"
            ),
            RaftWait::OperatorOnly { leaderless_since } => write!(
                f,
                "every peer Consul server is Down and the local Consul has had no leader since \
                 {leaderless_since}; safety.raft_recovery is operator, so habeat never recovers \
                 raft by itself: {PEER_DC_LOST_HINT}"
            ),
        }
    }
}

/// What `status` and the journal say once a peer Consul server answers
/// again after this side recovered raft without it.
pub struct PeerReturnedWarning;

impl fmt::Display for PeerReturnedWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a peer Consul server answers again after this side recovered raft without it: \
             wipe its data directory and rejoin it (docs/install.md, \"Rejoining the old \
             primary's Consul servers\"); do not restart it as it is, a server left out of \
             peers.json must not rejoin with its old raft data. `habeat rearm` clears this \
             warning once done",
        )
    }
}

/// Why automatic action is impossible for every role now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocked {
    SafeHold { since: UnixMillis, reason: String },
    Paused { until: UnixMillis, reason: String },
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocked::SafeHold { since, reason } => write!(
                f,
                "automatic action is held since {since} ({reason}): run `habeat rearm` once you \
                 have checked"
            ),
            Blocked::Paused { until, reason } => write!(
                f,
                "paused until {until} ({reason}): watching, no automatic action"
            ),
        }
    }
}

/// Why a role does nothing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Idle {
    /// After an operator's command only operator pipelines advance; the
    /// next round decides the rest (never shown: no round, no status).
    OperatorScope,
    NotARole {
        role: Role,
    },
    Blocked {
        blocked: Blocked,
    },
    NotObserved {
        last_round: Option<UnixMillis>,
    },
    PeerNotDown {
        component: Component,
        verdict: Verdict,
    },
    PrimaryNeverPromotes,
    PromotionBlocked {
        source_mail_host: String,
        last: UnixMillis,
        until: UnixMillis,
        #[serde(with = "crate::model::humantime_serde_compat")]
        block: Duration,
    },
    NoSourceHost {
        dc: String,
    },
    NoAccounts {
        host: String,
    },
    PeerBackRearmManual {
        component: Component,
    },
    Stalled {
        pipeline: u64,
        why: Stall,
    },
    Recorded {
        pipeline: PipelineKind,
        at: UnixMillis,
        component: Component,
        verdict: Verdict,
    },
    /// `replicas.at_risk: hold` left no account to promote: the automatic
    /// promotion ended without a step (nothing promoted, no lock files, no
    /// proxy switch, no hooks); the operator decides.
    AllHeld {
        pipeline: u64,
        source_mail_host: String,
        /// Every account of the source, all at risk, held back.
        held: Vec<String>,
    },
    RetryWait {
        until: UnixMillis,
    },
    /// An unfinished automatic pipeline may not go on while automatic
    /// action is blocked.
    PipelineBlocked {
        pipeline: PipelineKind,
        id: u64,
        blocked: Blocked,
    },
    /// An unfinished automatic pipeline goes on only on the verdict it
    /// needs (Down before a failover's decisive step, Up for a re-arm).
    VerdictForbids {
        pipeline: PipelineKind,
        id: u64,
        source_mail_host: Option<String>,
        component: Component,
        needed: Verdict,
        /// `None`: not freshly observed.
        now: Option<Verdict>,
        rearm: bool,
    },
    PipelineFinished {
        id: u64,
    },
    StepWaiting {
        pipeline: PipelineKind,
        step: String,
        waiting: Waiting,
        until: UnixMillis,
    },
    StepFailed {
        pipeline: PipelineKind,
        step: String,
        error: String,
        until: UnixMillis,
    },
    RaftNotReady {
        wait: RaftWait,
    },
    RaftUnfinished {
        wait: RaftWait,
    },
    Unsettled {
        role: Role,
        passes: usize,
    },
}

impl fmt::Display for Idle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Idle::OperatorScope => f.write_str("the next round decides"),
            Idle::NotARole { role } => write!(f, "{role} is not a role of this node"),
            Idle::Blocked { blocked } => blocked.fmt(f),
            Idle::NotObserved {
                last_round: Some(t),
            } => {
                write!(f, "no fresh observation of the peer (last round at {t})")
            }
            Idle::NotObserved { last_round: None } => {
                f.write_str("the peer has not been observed yet")
            }
            Idle::PeerNotDown { component, verdict } => {
                write!(f, "peer {component} is {verdict}: nothing to do")
            }
            Idle::PrimaryNeverPromotes => f.write_str(
                "peer appserver is Down, but this is the primary DC: habeat never promotes from it",
            ),
            Idle::PromotionBlocked {
                source_mail_host,
                last,
                until,
                block,
            } => write!(
                f,
                "peer appserver is Down, but the last promotion (of {source_mail_host} at {last}) \
                 is less than promotion_block ({}) ago: no automatic promotion before {until}",
                human(*block)
            ),
            Idle::NoSourceHost { dc } => write!(
                f,
                "peer appserver is Down, but `{dc}.appserver_vmname` is not set: habeat cannot \
                 tell which mailstore to promote from"
            ),
            Idle::NoAccounts { host } => write!(f, "no accounts on {host}: nothing to promote"),
            Idle::PeerBackRearmManual { component } => write!(
                f,
                "the peer {component} is Up again; rearm is manual: run `habeat rearm` once the \
                 failover is handled"
            ),
            Idle::Stalled { pipeline, why } => {
                write!(f, "failover pipeline {pipeline} stopped: {why}")
            }
            Idle::Recorded {
                pipeline,
                at,
                component,
                verdict,
            } => write!(
                f,
                "{} recorded at {at} and not re-armed: nothing to do (peer {component} is \
                 {verdict})",
                pipeline.describe()
            ),
            Idle::AllHeld {
                pipeline,
                source_mail_host,
                held,
            } => write!(
                f,
                "nothing promoted from {source_mail_host} (pipeline {pipeline}): every one of its \
                 {} account(s) has a replica at risk and replicas.at_risk is hold, so the lock \
                 files, proxy switch and hooks did not run either; to promote them anyway: {}",
                held.len(),
                hold_command(held)
            ),
            Idle::RetryWait { until } => write!(f, "waiting until {until} before trying again"),
            Idle::PipelineBlocked {
                pipeline,
                id,
                blocked,
            } => write!(
                f,
                "{} pipeline {id} is unfinished; {blocked}",
                pipeline.describe()
            ),
            Idle::VerdictForbids {
                pipeline,
                id,
                source_mail_host,
                component,
                needed,
                now,
                rearm,
            } => {
                match source_mail_host {
                    Some(h) => write!(f, "the {} of {h} (pipeline {id})", pipeline.describe())?,
                    None => write!(f, "the {} (pipeline {id})", pipeline.describe())?,
                }
                write!(
                    f,
                    " is unfinished; it continues only while the peer {component} is {needed} \
                     (now {})",
                    match now {
                        Some(v) => v.to_string(),
                        None => "not freshly observed".to_owned(),
                    }
                )?;
                if *rearm {
                    f.write_str("; `habeat rearm` finishes it by hand")?;
                }
                Ok(())
            }
            Idle::PipelineFinished { id } => write!(f, "pipeline {id} finished"),
            Idle::StepWaiting {
                pipeline,
                step,
                waiting,
                until,
            } => write!(
                f,
                "{}: waiting before step \"{step}\": {waiting}; trying again after {until}",
                pipeline.describe()
            ),
            Idle::StepFailed {
                pipeline,
                step,
                error,
                until,
            } => write!(
                f,
                "{}: step \"{step}\" failed ({error}); trying again after {until}",
                pipeline.describe()
            ),
            Idle::RaftNotReady { wait } => wait.fmt(f),
            Idle::RaftUnfinished { wait } => write!(f, "raft recovery is unfinished; {wait}"),
            Idle::Unsettled { role, passes } => write!(
                f,
                "{role}: the decision did not settle after {passes} passes; nothing done (a bug: \
                 please report it with `habeat status --json`)"
            ),
        }
    }
}

impl Idle {
    /// The stable machine-readable name of the variant (its serde tag).
    pub fn kind(&self) -> String {
        serde_kind(self)
    }

    /// Whether, with the peer component Down, this reason leaves the mail
    /// of the peer's users unserved until something changes or an
    /// operator acts (`habeat_held_back`, the `HabeatHeldBack` alert).
    /// Reasons that are the design working (the primary side never
    /// promotes, nothing to promote, done already) are not. Exhaustive, so
    /// a new reason must be classified.
    pub fn holds_back(&self) -> bool {
        match self {
            Idle::OperatorScope
            | Idle::NotARole { .. }
            | Idle::PeerNotDown { .. }
            | Idle::PrimaryNeverPromotes
            | Idle::NoAccounts { .. }
            | Idle::PeerBackRearmManual { .. }
            | Idle::Recorded { .. }
            | Idle::PipelineFinished { .. } => false,
            Idle::Blocked { .. }
            | Idle::NotObserved { .. }
            | Idle::PromotionBlocked { .. }
            | Idle::NoSourceHost { .. }
            | Idle::Stalled { .. }
            | Idle::AllHeld { .. }
            | Idle::RetryWait { .. }
            | Idle::PipelineBlocked { .. }
            | Idle::VerdictForbids { .. }
            | Idle::StepWaiting { .. }
            | Idle::StepFailed { .. }
            | Idle::RaftNotReady { .. }
            | Idle::RaftUnfinished { .. }
            | Idle::Unsettled { .. } => true,
        }
    }
}

/// The command that promotes the accounts a `hold` left on the source.
pub fn hold_command(held: &[String]) -> String {
    format!("habeat promote --accounts {}", held.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_pipeline_says_operator_needed_once() {
        let idle = Idle::Stalled {
            pipeline: 7,
            why: Stall::GaveUp {
                step: "promote accounts".into(),
                cause: GiveUp::Interrupted,
                source_mail_host: None,
            },
        };
        let text = idle.to_string();
        assert_eq!(text.matches("operator").count(), 1, "{text}");
        assert_eq!(text.matches("stopped").count(), 1, "{text}");
    }

    #[test]
    fn the_design_at_work_is_not_held_back_and_an_operator_needed_is() {
        assert!(!Idle::PrimaryNeverPromotes.holds_back());
        assert!(
            !Idle::NoAccounts {
                host: "mbox1".into()
            }
            .holds_back()
        );
        assert!(!Idle::PipelineFinished { id: 1 }.holds_back());
        assert!(
            Idle::Stalled {
                pipeline: 1,
                why: Stall::Recorded { text: "x".into() }
            }
            .holds_back()
        );
        assert!(
            Idle::RetryWait {
                until: UnixMillis(0)
            }
            .holds_back()
        );
    }
}
