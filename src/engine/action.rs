//! What the engine asks the executor to do, and what the executor reports
//! back. Plain data: the executor matches on [`ActionKind`], runs it, and
//! feeds an [`ActionOutcome`] with the same [`ActionId`] back into
//! [`crate::engine::step`].

use super::check::PreStepCheck;
use super::config::EngineConfig;
use super::reason::GateRefusal;
use crate::model::{Component, FenceAction, FenceCall, FenceFailure, RaftServer, Role};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one action so that its outcome can be matched to it, also
/// across a restart (it is persisted with the in-flight action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub u64);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Who asked for an action: automatic actions obey pause, the quorum gate
/// and the safe hold; operator actions (`promote`, `rearm`) do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Decided by habeat from its witnesses.
    Automatic,
    /// Asked for by an operator command.
    Operator,
    /// Found as a lock file left by an earlier habeat (Python or Rust).
    Legacy,
}

/// Where a recorded step lives: which pipeline, which step of it. Lets the
/// driver (and tests) see that a finished step is never run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StepRef {
    pub pipeline: u64,
    pub index: usize,
}

/// One thing the executor must do. Actions are produced one at a time: the
/// next one depends on the outcome of this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: ActionId,
    /// The role on whose behalf it runs (lock files are per role).
    pub role: Role,
    pub origin: Origin,
    /// The recorded step this action carries out, if it is one.
    pub step: Option<StepRef>,
    pub kind: ActionKind,
    /// What the executor verifies right before it runs the action, in
    /// order; decided by the engine ([`super::PreStepCheck::for_action`]).
    /// Absent in a state file written before checks were handed out: such
    /// an in-flight action is never run again, only taken as interrupted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<PreStepCheck>,
}

/// Which accounts a promotion moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromoteTarget {
    /// `promoteAccounts source_mail_host <host>`: every account still on it.
    SourceMailHost(String),
    /// `promoteAccounts accounts a,b`: these accounts only.
    Accounts(Vec<String>),
}

/// The legacy lock files of a role (their old names, a JSON body: docs/decisions.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// `<checkDownFile>-<role>`: habeat saw the peer down and acted.
    Down,
    /// `<checkPromotionFile>-<role>`: habeat failed over; no automatic
    /// action until re-armed.
    Promotion,
    /// `checkRestartReplicaFile`: habeat stopped the HA module (primary DC).
    RestartReplica,
}

/// What an operator-written command is for (journal and environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandPurpose {
    /// `proxy_switch.<tool>.activate` of this DC.
    ProxyActivate,
    /// `proxy_switch.<tool>.deactivate` of this DC.
    ProxyDeactivate,
    /// `hooks.after_promotion`.
    AfterPromotion,
    /// `hooks.on_peer_recovered`.
    OnPeerRecovered,
}

impl CommandPurpose {
    /// In words, for the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandPurpose::ProxyActivate => "proxy switch activate",
            CommandPurpose::ProxyDeactivate => "proxy switch deactivate",
            CommandPurpose::AfterPromotion => "after_promotion hook",
            CommandPurpose::OnPeerRecovered => "on_peer_recovered hook",
        }
    }
}

/// The executor's work, in the operator's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionKind {
    /// `carbonio --json <module> getAccountStatus mailHost <host>`; answer
    /// with [`OutcomeResult::Listed`].
    ListAccounts { source_mail_host: String },
    /// `carbonio --json core getAllOperations`, before promoting again
    /// after an attempt that did not report success (a crash, a timeout, a
    /// failure): that attempt may still run on the mailbox server. Answer
    /// with [`OutcomeResult::Operations`].
    ListOperations { source_mail_host: String },
    /// Create a Consul session and acquire the KV lock `key` (a consistent
    /// write only a side with a raft leader can make). Answer
    /// `Succeeded` when held, `GateRefused` when not.
    AcquireQuorumGate { key: String },
    /// Release the KV lock and destroy the session.
    ReleaseQuorumGate { key: String },
    /// `carbonio --sync <module> promoteAccounts ... threads <n>`.
    PromoteAccounts {
        source_mail_host: String,
        target: PromoteTarget,
        threads: u32,
        /// Hand the accounts of [`PromoteTarget::Accounts`] over through
        /// `input_file` (a private copy, one per line), whatever the
        /// length of the list; otherwise as an argument while it fits.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        input_file: bool,
    },
    /// Write these lock files of `Action::role` (JSON: when, why, pid, version).
    WriteLocks {
        locks: Vec<LockKind>,
        reason: String,
    },
    /// Remove these lock files of `Action::role` (absent is fine).
    RemoveLocks { locks: Vec<LockKind> },
    /// `zmprov fc [-a] account <name>` for each account.
    FlushCache {
        accounts: Vec<String>,
        all_servers: bool,
    },
    /// `carbonio <module> pauseReplicas` for each account.
    PauseReplicas { accounts: Vec<String> },
    /// `carbonio <module> restartReplicas` for each account.
    RestartReplicas { accounts: Vec<String> },
    /// `carbonio <module> doStopService module`.
    StopHaModule,
    /// `carbonio <module> doStartService module`.
    StartHaModule,
    /// An operator-written command from the config (argv; a string command
    /// is already `/bin/sh -c <string>`), run with `hooks.timeout`.
    RunCommand {
        purpose: CommandPurpose,
        index: usize,
        argv: Vec<String>,
    },
    /// Stop service-discover, write `raft/peers.json` listing `servers`
    /// (empty: build the single entry from the local `node-id`), owned by
    /// `service-discover`, start it.
    RaftRecovery { servers: Vec<RaftServer> },
    /// Wait (bounded) for `/v1/status/leader` to name a leader; `Succeeded`
    /// when it does, `Failed` otherwise.
    ConfirmLeader,
    /// Run the fence agent of `fencing.<component>` for every plug: its
    /// `status` first, then (with `action: off` and the node ON) `off`
    /// and `status` again. Answer [`OutcomeResult::Fenced`] only when
    /// every plug is confirmed OFF, else [`OutcomeResult::FenceUnconfirmed`].
    Fence {
        component: Component,
        /// `fence_action` in JSON (`action` names the action kind there).
        #[serde(rename = "fence_action")]
        action: FenceAction,
        plugs: Vec<String>,
    },
    /// `carbonio <module> setAccountDestination <destination> <priority>
    /// input_file <private copy>`: each account gets a replica there.
    SetAccountDestination {
        destination: String,
        priority: u32,
        accounts: Vec<String>,
    },
}

impl ActionKind {
    /// One line for logs, the journal and `--dry-run`.
    pub fn describe(&self) -> String {
        match self {
            ActionKind::ListAccounts { source_mail_host } => {
                format!("list the replicated accounts of {source_mail_host}")
            }
            ActionKind::ListOperations { source_mail_host } => format!(
                "check that no earlier promotion of {source_mail_host} still runs on the \
                 mailbox server (core getAllOperations)"
            ),
            ActionKind::AcquireQuorumGate { key } => {
                format!("acquire the Consul quorum gate {key}")
            }
            ActionKind::ReleaseQuorumGate { key } => {
                format!("release the Consul quorum gate {key}")
            }
            ActionKind::PromoteAccounts {
                source_mail_host,
                target,
                threads,
                ..
            } => match target {
                PromoteTarget::SourceMailHost(h) => {
                    format!("promote every account of {h} ({threads} threads)")
                }
                PromoteTarget::Accounts(a) => format!(
                    "promote {} account(s) of {source_mail_host} ({threads} threads): {}",
                    a.len(),
                    preview(a)
                ),
            },
            ActionKind::WriteLocks { locks, .. } => format!("write lock files {locks:?}"),
            ActionKind::RemoveLocks { locks } => format!("remove lock files {locks:?}"),
            ActionKind::FlushCache {
                accounts,
                all_servers,
            } => format!(
                "flush the cache of {} account(s){}",
                accounts.len(),
                if *all_servers {
                    " on every server (-a)"
                } else {
                    ""
                }
            ),
            ActionKind::PauseReplicas { accounts } => {
                format!("pause the replicas of {} account(s)", accounts.len())
            }
            ActionKind::RestartReplicas { accounts } => {
                format!("restart the replicas of {} account(s)", accounts.len())
            }
            ActionKind::StopHaModule => "stop the HA module (doStopService module)".into(),
            ActionKind::StartHaModule => "start the HA module (doStartService module)".into(),
            ActionKind::RunCommand {
                purpose,
                index,
                argv,
            } => format!(
                "run {} #{}: {}",
                purpose.as_str(),
                index + 1,
                argv.join(" ")
            ),
            ActionKind::RaftRecovery { servers } => {
                if servers.is_empty() {
                    "recover Consul raft with the local server alone (from node-id)".into()
                } else {
                    let names: Vec<&str> = servers.iter().map(|s| s.node.as_str()).collect();
                    format!("recover Consul raft with {}", names.join(", "))
                }
            }
            ActionKind::ConfirmLeader => "confirm the local Consul elected a leader".into(),
            ActionKind::Fence {
                component,
                action,
                plugs,
            } => format!(
                "fence the peer {component} ({}): confirm it powered off{}",
                plugs.join(", "),
                match action {
                    FenceAction::Off => ", powering it off if it is on",
                    FenceAction::Status => " (status only, never powering anything off)",
                }
            ),
            ActionKind::SetAccountDestination {
                destination,
                priority,
                accounts,
            } => format!(
                "give {} account(s) a replica on {destination} (setAccountDestination, priority \
                 {priority}): {}",
                accounts.len(),
                preview(accounts)
            ),
        }
    }

    /// Whether this action changes something only a side holding the
    /// Consul majority may change (`quorum-gate`).
    pub fn needs_gate(&self) -> bool {
        matches!(
            self,
            ActionKind::PromoteAccounts { .. }
                | ActionKind::RunCommand {
                    purpose: CommandPurpose::ProxyActivate,
                    ..
                }
        ) || matches!(self, ActionKind::Fence { component, .. } if *component != Component::Consul)
    }
}

fn preview(a: &[String]) -> String {
    let mut s: Vec<&str> = a.iter().take(5).map(String::as_str).collect();
    if a.len() > 5 {
        s.push("...");
    }
    s.join(", ")
}

/// What happened when the executor ran an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    pub id: ActionId,
    pub result: OutcomeResult,
}

/// The result of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OutcomeResult {
    /// It worked; `detail` (output tail, duration) goes to the journal.
    Succeeded { detail: String },
    /// `ListAccounts` worked and printed these account names; `at_risk`:
    /// those whose replica is at risk, from this listing against the last
    /// survey (`replicas-at-risk-named`).
    Listed {
        accounts: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        at_risk: Vec<crate::replica::Risk>,
    },
    /// `ListOperations` worked: the promotion operations still running on
    /// the mailbox server, in words (empty: none).
    Operations { promotions: Vec<String> },
    /// It failed: non-zero exit, unexpected output, I/O error...
    Failed { reason: String },
    /// It ran over its timeout and was killed with its process group.
    TimedOut { reason: String },
    /// `AcquireQuorumGate`: the lock could not be taken (no Consul leader on
    /// this side, or another habeat holds it).
    GateRefused { refusal: GateRefusal },
    /// The executor could not take the primary's serving lease over before
    /// an automatic promotion: the promotion did not run.
    PeerLeaseWait { wait: super::reason::PeerLeaseWait },
    /// `Fence`: every plug confirmed OFF; the calls made, tails scrubbed.
    Fenced { calls: Vec<FenceCall> },
    /// `Fence`: not confirmed (ON, a failure, a timeout): no action.
    FenceUnconfirmed {
        failure: FenceFailure,
        calls: Vec<FenceCall>,
    },
}

impl OutcomeResult {
    pub(crate) fn error_text(&self) -> Option<String> {
        match self {
            OutcomeResult::Succeeded { .. }
            | OutcomeResult::Listed { .. }
            | OutcomeResult::Operations { .. }
            | OutcomeResult::Fenced { .. } => None,
            OutcomeResult::FenceUnconfirmed { failure, .. } => {
                Some(format!("no confirmed OFF: {failure}"))
            }
            OutcomeResult::Failed { reason } => Some(reason.clone()),
            OutcomeResult::TimedOut { reason } => Some(format!("timed out: {reason}")),
            OutcomeResult::GateRefused { refusal } => {
                Some(format!("quorum gate refused: {refusal}"))
            }
            OutcomeResult::PeerLeaseWait { wait } => Some(wait.to_string()),
        }
    }
}

/// Decided here, beside the actions they guard; the type and the order's
/// reasons are in [`super::check`].
impl PreStepCheck {
    /// The checks of an action, in the order they run (see the type's doc).
    /// Operator and legacy actions get none: an operator's `promote` and
    /// `rearm` do not obey the gate. (An operator's promotion without
    /// `--force` run again after its command also takes the peer's lease
    /// over: the promotion pipeline adds that check, since only it knows
    /// the run is a later one.)
    pub fn for_action(origin: Origin, kind: &ActionKind, cfg: &EngineConfig) -> Vec<PreStepCheck> {
        if origin != Origin::Automatic {
            return Vec::new();
        }
        let mut checks = Vec::new();
        if cfg.quorum_gate && kind.needs_gate() {
            checks.push(PreStepCheck::GateStillHeld);
        }
        // The promotion away from the host, and the power-off of its node
        // (`fencing.appserver`, the peer mailstore `source_mail_host` names).
        let leased = match kind {
            ActionKind::PromoteAccounts {
                source_mail_host, ..
            } => Some(source_mail_host.clone()),
            ActionKind::Fence {
                component: Component::Appserver,
                ..
            } => cfg.source_mail_host.clone(),
            _ => None,
        };
        if let Some(host) = leased {
            checks.push(PreStepCheck::PeerLeaseTakenOver { host });
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ActionId, PromoteTarget};
    use crate::model::Role;

    /// An in-flight action in a `state.json` written before the engine
    /// handed out checks (no `checks`, no `input_file`) still loads.
    #[test]
    fn an_action_saved_before_checks_were_handed_out_still_loads() {
        let action = Action {
            id: ActionId(7),
            role: Role::Appserver,
            origin: Origin::Automatic,
            step: None,
            kind: ActionKind::PromoteAccounts {
                source_mail_host: "mbox1".into(),
                target: PromoteTarget::Accounts(vec!["a@example.com".into()]),
                threads: 5,
                input_file: true,
            },
            checks: vec![PreStepCheck::GateStillHeld],
        };
        let mut old = serde_json::to_value(&action).expect("serialize");
        assert_eq!(old["checks"][0]["check"], "gate_still_held");
        assert_eq!(old["kind"]["input_file"], true);
        old.as_object_mut().expect("object").remove("checks");
        old["kind"]
            .as_object_mut()
            .expect("object")
            .remove("input_file");
        let back: Action = serde_json::from_value(old).expect("an old in-flight action loads");
        assert!(back.checks.is_empty());
        assert!(matches!(
            back.kind,
            ActionKind::PromoteAccounts {
                input_file: false,
                ..
            }
        ));
    }
}
