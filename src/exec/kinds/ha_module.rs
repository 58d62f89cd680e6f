//! The HA module of the primary DC (`disable_ha_module`): stopped when the
//! peer appserver is lost, started again on re-arm.

use super::{Effect, Given};
use crate::act::carbonio::Command;
use crate::engine::{Action, OutcomeResult};
use crate::exec::dry::{P, assumed, say};
use crate::exec::{Executor, report};
use std::time::Duration;

/// `carbonio <module> doStopService module`.
pub(super) struct StopHaModule;

impl Effect for StopHaModule {
    const LABEL: &'static str = "stop_ha_module";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        match ex.cli() {
            Ok(c) => report(c.stop_module().await),
            Err(r) => r,
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        simulate(ex, Command::StopModule)
    }
}

/// `carbonio <module> doStartService module`.
pub(super) struct StartHaModule;

impl Effect for StartHaModule {
    const LABEL: &'static str = "start_ha_module";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        match ex.cli() {
            Ok(c) => report(c.start_module().await),
            Err(r) => r,
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        simulate(ex, Command::StartModule)
    }
}

fn simulate(ex: &Executor, cmd: Command) -> OutcomeResult {
    match ex.cli() {
        Ok(cli) => {
            say!("{P} would run: {}", cli.display(&cmd));
            assumed("it succeeds")
        }
        Err(r) => r,
    }
}
