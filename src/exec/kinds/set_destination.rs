//! `carbonio <module> setAccountDestination HOST N input_file FILE`: one
//! batch of a re-protection.

use super::{Effect, Given};
use crate::act::MailHost;
use crate::act::carbonio::Command;
use crate::engine::{Action, OutcomeResult};
use crate::exec::dry::{P, assumed, names_preview, say};
use crate::exec::{Executor, accounts, failed, report};
use std::time::Duration;

/// Each account of the batch gets a replica on `destination`.
pub(super) struct SetAccountDestination<'a> {
    pub destination: &'a String,
    pub priority: &'a u32,
    pub accounts: &'a Vec<String>,
}

impl Effect for SetAccountDestination<'_> {
    const LABEL: &'static str = "set_account_destination";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let host = match MailHost::parse(self.destination) {
            Ok(h) => h,
            Err(e) => return failed(format!("destination {:?}: {e}", self.destination)),
        };
        let names = match accounts(self.accounts) {
            Ok(n) => n,
            Err(r) => return r,
        };
        report(
            cli.set_account_destination(&host, *self.priority, &names)
                .await,
        )
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        act: &Action,
        _: &Given<'_>,
        verbose: bool,
    ) -> OutcomeResult {
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let destination = match MailHost::parse(self.destination) {
            Ok(h) => h,
            Err(e) => return failed(format!("destination {:?}: {e}", self.destination)),
        };
        say!(
            "{P} batch of {} account(s): {}",
            self.accounts.len(),
            names_preview(self.accounts, verbose)
        );
        let cmd = Command::SetAccountDestination {
            destination,
            priority: *self.priority,
            path: "<a private copy of those accounts, one per line>".into(),
        };
        say!("{P} would {}: {}", act.kind.describe(), cli.display(&cmd));
        assumed("the replicas' initialisation starts (the real run then records the batch done)")
    }
}
