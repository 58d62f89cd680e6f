//! The legacy lock files of a role (docs/decisions.md §5).

use super::{Effect, Given};
use crate::engine::{Action, LockKind, OutcomeResult, UnixMillis};
use crate::exec::dry::{P, say};
use crate::exec::{Executor, failed, succeeded};
use crate::state;
use std::time::Duration;

/// Write these lock files of the action's role.
pub(super) struct WriteLocks<'a> {
    pub locks: &'a Vec<LockKind>,
    pub reason: &'a String,
}

impl Effect for WriteLocks<'_> {
    const LABEL: &'static str = "write_locks";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, act: &Action, _: &Given<'_>) -> OutcomeResult {
        let now = UnixMillis::from_system_time(std::time::SystemTime::now());
        let locks = self.locks;
        match state::write_locks(&ex.cfg.local, act.role, locks, self.reason, now) {
            Ok(()) => succeeded(format!("wrote lock files {locks:?}")),
            Err(e) => failed(e.to_string()),
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        act: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        for l in self.locks {
            say!(
                "{P} would write {}",
                state::lock_path(&ex.cfg.local, act.role, *l).display()
            );
        }
        OutcomeResult::Succeeded {
            detail: "dry run: not executed".into(),
        }
    }
}

/// Remove these lock files of the action's role (absent is fine).
pub(super) struct RemoveLocks<'a> {
    pub locks: &'a Vec<LockKind>,
}

impl Effect for RemoveLocks<'_> {
    const LABEL: &'static str = "remove_locks";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, act: &Action, _: &Given<'_>) -> OutcomeResult {
        let locks = self.locks;
        match state::remove_locks(&ex.cfg.local, act.role, locks) {
            Ok(()) => succeeded(format!("removed lock files {locks:?}")),
            Err(e) => failed(e.to_string()),
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        act: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        for l in self.locks {
            say!(
                "{P} would remove {}",
                state::lock_path(&ex.cfg.local, act.role, *l).display()
            );
        }
        OutcomeResult::Succeeded {
            detail: "dry run: not executed".into(),
        }
    }
}
