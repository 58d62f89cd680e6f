//! Every kind of action the executor carries out, one file each (tiny
//! relatives share one), in the shape of ripgrep's `flags/defs.rs`: a file
//! says all the executor knows of its kinds (the label, the time limit, how
//! it runs, how a dry run simulates it), and [`registry!`] below lists them,
//! one line per kind. Adding an action is a variant of the engine's
//! [`ActionKind`], its file here and its line in the registry; the
//! registry's exhaustive match names what is missing.

use super::{Executor, Given};
use crate::engine::{Action, ActionKind, OutcomeResult};
use std::time::Duration;

mod command;
mod fence;
mod gate;
pub use gate::acquire_gate;
mod ha_module;
mod listing;
mod locks;
mod promote;
mod raft;
mod replicas;
mod set_destination;

/// What one kind of action is to the executor. Implemented by a view of the
/// fields of its [`ActionKind`] variant.
pub(super) trait Effect {
    /// The serde tag of its [`ActionKind`] variant: its name in the
    /// journal and its label in `habeat_actions_total{kind=...}`.
    const LABEL: &'static str;

    /// The most it may take: the timeouts of what it runs, added up
    /// (without the executor's margin).
    fn time_limit(&self, ex: &Executor) -> Duration;

    /// Carry it out (the pre-step checks have passed).
    async fn run(self, ex: &mut Executor, act: &Action, given: &Given<'_>) -> OutcomeResult;

    /// `--dry-run`: make the read-only calls for real, print what would
    /// change, change nothing.
    async fn simulate(
        self,
        ex: &mut Executor,
        act: &Action,
        given: &Given<'_>,
        verbose: bool,
    ) -> OutcomeResult;
}

/// The one list of kinds: the [`ActionKind`] variant with its fields, and
/// the view that implements [`Effect`] for it. It makes the one
/// exhaustive match over [`ActionKind`] the executor has, and
/// [`ACTION_KINDS`].
macro_rules! registry {
    ($($variant:ident { $($field:ident),* } => $file:ident::$view:ident;)*) => {
        /// Every [`Effect::LABEL`], in the registry's order: the daemon
        /// exports `habeat_actions_total` at 0 for each from its start.
        pub const ACTION_KINDS: &[&str] = &[$(<$file::$view as Effect>::LABEL),*];

        /// The label of `kind` (its serde tag), for the metrics.
        pub fn label(kind: &ActionKind) -> &'static str {
            match kind {
                $(ActionKind::$variant { .. } => <$file::$view as Effect>::LABEL,)*
            }
        }

        /// [`Effect::time_limit`] of `kind`.
        pub(super) fn time_limit(kind: &ActionKind, ex: &Executor) -> Duration {
            match kind {
                $(ActionKind::$variant { $($field),* } => {
                    $file::$view { $($field),* }.time_limit(ex)
                })*
            }
        }

        /// [`Effect::run`] of `act`'s kind.
        pub(super) async fn run(ex: &mut Executor, act: &Action, given: &Given<'_>) -> OutcomeResult {
            match &act.kind {
                $(ActionKind::$variant { $($field),* } => {
                    $file::$view { $($field),* }.run(ex, act, given).await
                })*
            }
        }

        /// [`Effect::simulate`] of `act`'s kind.
        pub(super) async fn simulate(
            ex: &mut Executor,
            act: &Action,
            given: &Given<'_>,
            verbose: bool,
        ) -> OutcomeResult {
            match &act.kind {
                $(ActionKind::$variant { $($field),* } => {
                    $file::$view { $($field),* }.simulate(ex, act, given, verbose).await
                })*
            }
        }
    };
}

registry! {
    ListAccounts { source_mail_host } => listing::ListAccounts;
    ListOperations { source_mail_host } => listing::ListOperations;
    AcquireQuorumGate { key } => gate::AcquireQuorumGate;
    ReleaseQuorumGate { key } => gate::ReleaseQuorumGate;
    PromoteAccounts { source_mail_host, target, threads, input_file } => promote::PromoteAccounts;
    WriteLocks { locks, reason } => locks::WriteLocks;
    RemoveLocks { locks } => locks::RemoveLocks;
    FlushCache { accounts, all_servers } => replicas::FlushCache;
    PauseReplicas { accounts } => replicas::PauseReplicas;
    RestartReplicas { accounts } => replicas::RestartReplicas;
    StopHaModule {} => ha_module::StopHaModule;
    StartHaModule {} => ha_module::StartHaModule;
    RunCommand { purpose, index, argv } => command::RunCommand;
    RaftRecovery { servers } => raft::RaftRecovery;
    ConfirmLeader {} => raft::ConfirmLeader;
    Fence { component, action, plugs } => fence::Fence;
    SetAccountDestination { destination, priority, accounts } => set_destination::SetAccountDestination;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CommandPurpose, LockKind, PromoteTarget};
    use crate::model::{Component, FenceAction};

    /// One of each kind.
    fn every_kind() -> Vec<ActionKind> {
        let host = || "mbox1.example.com".to_string();
        vec![
            ActionKind::ListAccounts {
                source_mail_host: host(),
            },
            ActionKind::ListOperations {
                source_mail_host: host(),
            },
            ActionKind::AcquireQuorumGate { key: "k".into() },
            ActionKind::ReleaseQuorumGate { key: "k".into() },
            ActionKind::PromoteAccounts {
                source_mail_host: host(),
                target: PromoteTarget::SourceMailHost(host()),
                threads: 1,
                input_file: false,
            },
            ActionKind::WriteLocks {
                locks: vec![LockKind::Down],
                reason: "r".into(),
            },
            ActionKind::RemoveLocks {
                locks: vec![LockKind::Down],
            },
            ActionKind::FlushCache {
                accounts: vec![],
                all_servers: false,
            },
            ActionKind::PauseReplicas { accounts: vec![] },
            ActionKind::RestartReplicas { accounts: vec![] },
            ActionKind::StopHaModule,
            ActionKind::StartHaModule,
            ActionKind::RunCommand {
                purpose: CommandPurpose::AfterPromotion,
                index: 0,
                argv: vec!["true".into()],
            },
            ActionKind::RaftRecovery { servers: vec![] },
            ActionKind::ConfirmLeader,
            ActionKind::Fence {
                component: Component::Appserver,
                action: FenceAction::Off,
                plugs: vec![],
            },
            ActionKind::SetAccountDestination {
                destination: host(),
                priority: 10,
                accounts: vec!["a@example.com".into()],
            },
        ]
    }

    /// The metrics label of every kind is the name the journal gives it
    /// (its serde tag), and the exported list holds each exactly once.
    #[test]
    fn labels_are_the_serde_tags() {
        let kinds = every_kind();
        let mut tags = Vec::new();
        for k in &kinds {
            let json = serde_json::to_value(k).expect("serialize");
            let tag = json["action"].as_str().expect("tagged").to_owned();
            assert_eq!(label(k), tag, "{k:?}");
            tags.push(tag);
        }
        assert_eq!(
            ACTION_KINDS.to_vec(),
            tags,
            "one label per kind, in registry order"
        );
    }
}
