//! An operator-written command from the configuration: the proxy switch's
//! `activate`/`deactivate`, `hooks.after_promotion`, `hooks.on_peer_recovered`.

use super::{Effect, Given};
use crate::act::hooks::HookEnv;
use crate::act::process::display_argv;
use crate::config::HookCommand;
use crate::engine::{Action, CommandPurpose, OutcomeResult};
use crate::exec::dry::{P, assumed, say};
use crate::exec::{Executor, failed, round_ms, succeeded};
use std::time::Duration;

/// Run `argv` with `hooks.timeout`, its purpose and role in its environment.
pub(super) struct RunCommand<'a> {
    pub purpose: &'a CommandPurpose,
    // Which of the configured commands: the engine's description says it.
    #[allow(dead_code)]
    pub index: &'a usize,
    pub argv: &'a Vec<String>,
}

impl Effect for RunCommand<'_> {
    const LABEL: &'static str = "run_command";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.cfg.hooks.timeout
    }

    async fn run(self, ex: &mut Executor, act: &Action, _: &Given<'_>) -> OutcomeResult {
        let env = HookEnv::new()
            .set("purpose", self.purpose.as_str())
            .set("role", act.role.as_str())
            .set("whoami", &ex.cfg.local.whoami)
            .set("dc_check", &ex.cfg.local.dc_check)
            .set(
                "source_host",
                ex.cfg.peer().appserver_vmname.clone().unwrap_or_default(),
            );
        let out = ex
            .hooks
            .run(&HookCommand::Argv(self.argv.clone()), &env, None)
            .await;
        let detail = format!(
            "{} exited {} after {}; output: {}",
            out.command,
            out.exit_code
                .map_or("without a code".to_string(), |c| c.to_string()),
            humantime::format_duration(round_ms(out.duration)),
            out.tail.trim()
        );
        if out.ok {
            succeeded(detail)
        } else if out.timed_out {
            OutcomeResult::TimedOut { reason: detail }
        } else {
            failed(detail)
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        let words: Vec<std::ffi::OsString> = self.argv.iter().map(Into::into).collect();
        say!(
            "{P} would run {} (timeout {}): {}",
            self.purpose.as_str(),
            humantime::format_duration(ex.cfg.hooks.timeout),
            display_argv(&words)
        );
        assumed("it exits 0")
    }
}
