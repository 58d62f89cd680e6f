//! Why a carbonio or zmprov command did not give a usable answer.

use super::UNREACHABLE_MARKER;
use crate::act::process;
use std::path::PathBuf;

/// Why a carbonio or zmprov command did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CarbonioError {
    /// `carbonio.module` is not a word.
    #[error(
        "carbonio.module {0:?} is not a module name (expected letters and digits, e.g. MailReplica, or ha before the rename)"
    )]
    BadModule(String),
    /// A command that needs accounts got none.
    #[error("{command}: refusing to run with an empty account list")]
    NoAccounts { command: String },
    /// The `run_as` user is missing, or habeat may not switch to it.
    #[error("{command}: cannot run as user {user:?}: {reason}")]
    RunAs {
        command: String,
        user: String,
        reason: String,
    },
    /// The program could not be started (missing, not executable).
    #[error("{command}: {source}")]
    Start {
        command: String,
        #[source]
        source: process::Error,
    },
    /// Ran over its timeout; its process group was killed.
    #[error(
        "{command} did not finish within {after} and was killed with its process group; check the mailbox service and carbonio.{which}. Last output: {tail:?}"
    )]
    TimedOut {
        command: String,
        after: String,
        which: &'static str,
        tail: String,
    },
    /// The CLI printed "Unable to communicate with server".
    #[error(
        "{command}: the CLI could not reach the mailbox service (\"{UNREACHABLE_MARKER}\"); check that carbonio runs on this node. Output: {tail:?}"
    )]
    Unreachable { command: String, tail: String },
    /// Non-zero exit, or killed by a signal.
    #[error("{command} failed ({status}). Output: {tail:?}")]
    Failed {
        command: String,
        status: String,
        tail: String,
    },
    /// Exit 0, but the output is not what the command must print.
    #[error("{command} printed output habeat cannot trust: {reason}. Output: {tail:?}")]
    BadOutput {
        command: String,
        reason: String,
        tail: String,
    },
    /// A manual promotion's account file is unreadable or invalid.
    #[error("account list {path}: {reason}")]
    InputFile { path: PathBuf, reason: String },
}

impl CarbonioError {
    /// The same error, saying that it ended call `k` of `n` and how many
    /// accounts the calls before it handled.
    pub(super) fn in_call(mut self, k: usize, n: usize, done: usize) -> CarbonioError {
        let note = format!(
            " (call {k} of {n}; the {done} account(s) of the calls before it were done, the rest were not attempted)"
        );
        match &mut self {
            CarbonioError::NoAccounts { command }
            | CarbonioError::RunAs { command, .. }
            | CarbonioError::Start { command, .. }
            | CarbonioError::TimedOut { command, .. }
            | CarbonioError::Unreachable { command, .. }
            | CarbonioError::Failed { command, .. }
            | CarbonioError::BadOutput { command, .. } => command.push_str(&note),
            CarbonioError::BadModule(_) | CarbonioError::InputFile { .. } => {}
        }
        self
    }

    /// A short stable tag for the journal and metrics: `timeout`,
    /// `unreachable`, `exit`, `bad_output`, `start`, `config`, `input`.
    pub fn kind(&self) -> &'static str {
        match self {
            CarbonioError::BadModule(_) | CarbonioError::RunAs { .. } => "config",
            CarbonioError::NoAccounts { .. } | CarbonioError::InputFile { .. } => "input",
            CarbonioError::Start { .. } => "start",
            CarbonioError::TimedOut { .. } => "timeout",
            CarbonioError::Unreachable { .. } => "unreachable",
            CarbonioError::Failed { .. } => "exit",
            CarbonioError::BadOutput { .. } => "bad_output",
        }
    }
}
