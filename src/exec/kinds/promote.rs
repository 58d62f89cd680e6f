//! `carbonio --sync <module> promoteAccounts`: the failover itself.

use super::{Effect, Given};
use crate::act::MailHost;
use crate::act::carbonio::{ACCOUNT_LIST_ARG_MAX, Command};
use crate::engine::{Action, OutcomeResult, PromoteTarget};
use crate::exec::dry::{P, assumed, names_preview, say};
use crate::exec::{Executor, accounts, failed, report};
use std::time::Duration;

/// `promoteAccounts source_mail_host <host>` or `accounts a,b` (through
/// `input_file` when the engine says so, or when the list is too long for
/// one argument).
pub(super) struct PromoteAccounts<'a> {
    // The host is in the target; the engine's description names it.
    #[allow(dead_code)]
    pub source_mail_host: &'a String,
    pub target: &'a PromoteTarget,
    pub threads: &'a u32,
    pub input_file: &'a bool,
}

impl Effect for PromoteAccounts<'_> {
    const LABEL: &'static str = "promote_accounts";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.cfg.carbonio.promote_timeout
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let threads = *self.threads;
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let res = match self.target {
            PromoteTarget::SourceMailHost(h) => match MailHost::parse(h) {
                Ok(h) => cli.promote_source_host(&h, threads).await,
                Err(e) => return failed(format!("source host {h:?}: {e}")),
            },
            PromoteTarget::Accounts(a) => match accounts(a) {
                Ok(a) if *self.input_file => cli.promote_accounts_file(&a, Some(threads)).await,
                Ok(a) => cli.promote_accounts(&a, Some(threads)).await,
                Err(r) => return r,
            },
        };
        report(res)
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        act: &Action,
        _: &Given<'_>,
        verbose: bool,
    ) -> OutcomeResult {
        let threads = *self.threads;
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let cmd = match self.target {
            PromoteTarget::SourceMailHost(h) => match MailHost::parse(h) {
                Ok(source) => Command::PromoteSourceHost { source, threads },
                Err(e) => return failed(format!("source host {h:?}: {e}")),
            },
            PromoteTarget::Accounts(a) => {
                let names = match accounts(a) {
                    Ok(n) => n,
                    Err(r) => return r,
                };
                say!(
                    "{P} the accounts to promote ({}): {}",
                    a.len(),
                    names_preview(a, verbose)
                );
                if *self.input_file
                    || ACCOUNT_LIST_ARG_MAX < a.iter().map(|x| x.len() + 1).sum::<usize>()
                {
                    Command::PromoteInputFile {
                        path: "<a private copy of those accounts, one per line>".into(),
                        threads: Some(threads),
                    }
                } else {
                    Command::PromoteAccounts {
                        accounts: names,
                        threads: Some(threads),
                    }
                }
            }
        };
        say!("{P} would {}: {}", act.kind.describe(), cli.display(&cmd));
        assumed("the promotion succeeds (the real run then records it)")
    }
}
