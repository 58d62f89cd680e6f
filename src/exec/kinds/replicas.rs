//! What follows a promotion account by account: the cache flush, and the
//! pause and restart of the replicas.

use super::{Effect, Given};
use crate::act::AccountName;
use crate::act::carbonio::{Command, account_batches};
use crate::engine::{Action, OutcomeResult};
use crate::exec::dry::{P, PREVIEW, assumed, say};
use crate::exec::{Executor, accounts, cli_error, report, succeeded};
use std::time::Duration;

/// `zmprov fc [-a] account <name>` for each account.
pub(super) struct FlushCache<'a> {
    pub accounts: &'a Vec<String>,
    pub all_servers: &'a bool,
}

impl Effect for FlushCache<'_> {
    const LABEL: &'static str = "flush_cache";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.per_call(self.accounts.len())
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let names = match accounts(self.accounts) {
            Ok(n) => n,
            Err(r) => return r,
        };
        for name in &names {
            if let Err(e) = cli.flush_cache(name, *self.all_servers).await {
                return cli_error(e);
            }
        }
        succeeded(format!("flushed the cache of {} account(s)", names.len()))
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        verbose: bool,
    ) -> OutcomeResult {
        let names = self.accounts;
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let shown = if verbose {
            names.len()
        } else {
            names.len().min(PREVIEW)
        };
        say!("{P} would flush the cache of {} account(s):", names.len());
        for n in &names[..shown] {
            if let Ok(account) = AccountName::parse(n) {
                let cmd = Command::FlushCache {
                    account,
                    all_servers: *self.all_servers,
                };
                say!("{P}   {}", cli.display(&cmd));
            }
        }
        if shown < names.len() {
            say!(
                "{P}   … and {} more (--verbose lists all)",
                names.len() - shown
            );
        }
        assumed("every flush succeeds")
    }
}

/// `carbonio <module> pauseReplicas` for each account.
pub(super) struct PauseReplicas<'a> {
    pub accounts: &'a Vec<String>,
}

impl Effect for PauseReplicas<'_> {
    const LABEL: &'static str = "pause_replicas";

    fn time_limit(&self, ex: &Executor) -> Duration {
        batches_limit(ex, self.accounts)
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        match (ex.cli(), accounts(self.accounts)) {
            (Ok(c), Ok(n)) => report(c.pause_replicas(&n).await),
            (Err(r), _) | (_, Err(r)) => r,
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        simulate_batches(ex, self.accounts, |accounts| Command::PauseReplicas {
            accounts,
        })
    }
}

/// `carbonio <module> restartReplicas` for each account.
pub(super) struct RestartReplicas<'a> {
    pub accounts: &'a Vec<String>,
}

impl Effect for RestartReplicas<'_> {
    const LABEL: &'static str = "restart_replicas";

    fn time_limit(&self, ex: &Executor) -> Duration {
        batches_limit(ex, self.accounts)
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        match (ex.cli(), accounts(self.accounts)) {
            (Ok(c), Ok(n)) => report(c.restart_replicas(&n).await),
            (Err(r), _) | (_, Err(r)) => r,
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        _: &Given<'_>,
        _verbose: bool,
    ) -> OutcomeResult {
        simulate_batches(ex, self.accounts, |accounts| Command::RestartReplicas {
            accounts,
        })
    }
}

/// One command per batch of accounts (the CLI takes them comma-separated,
/// as long as the list fits in one argument).
fn batches_limit(ex: &Executor, accounts: &[String]) -> Duration {
    ex.per_call(account_batches(accounts).len())
}

fn simulate_batches(
    ex: &Executor,
    names: &[String],
    cmd: impl Fn(Vec<AccountName>) -> Command,
) -> OutcomeResult {
    let cli = match ex.cli() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let valid: Vec<AccountName> = names
        .iter()
        .filter_map(|n| AccountName::parse(n).ok())
        .collect();
    for batch in account_batches(&valid) {
        say!("{P} would run: {}", cli.display(&cmd(batch.to_vec())));
    }
    assumed("it succeeds")
}
