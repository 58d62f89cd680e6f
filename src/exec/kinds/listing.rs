//! The read-only listings the engine decides from: the replicated accounts
//! of the lost mailstore, and the promotions still running on the mailbox
//! server. A dry run makes them for real.

use super::{Effect, Given};
use crate::act::MailHost;
use crate::act::carbonio::{AccountStatus, Carbonio, CarbonioError, Command, Operation};
use crate::engine::{Action, OutcomeResult};
use crate::exec::dry::{P, names_preview, say};
use crate::exec::{Executor, cli_error, failed};
use crate::survey;
use crate::survey::Surveyed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `carbonio --json <module> getAccountStatus mailHost <host>`.
pub(super) struct ListAccounts<'a> {
    pub source_mail_host: &'a String,
}

impl Effect for ListAccounts<'_> {
    const LABEL: &'static str = "list_accounts";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, _: &Action, given: &Given<'_>) -> OutcomeResult {
        let host = match MailHost::parse(self.source_mail_host) {
            Ok(h) => h,
            Err(e) => return failed(format!("source host {:?}: {e}", self.source_mail_host)),
        };
        match ex.cli() {
            Ok(c) => match listed(c, &host, given).await {
                Ok(out) => out,
                Err(e) => cli_error(e),
            },
            Err(r) => r,
        }
    }

    async fn simulate(
        self,
        ex: &mut Executor,
        _: &Action,
        given: &Given<'_>,
        verbose: bool,
    ) -> OutcomeResult {
        let host = match MailHost::parse(self.source_mail_host) {
            Ok(h) => h,
            Err(e) => return failed(format!("source host {:?}: {e}", self.source_mail_host)),
        };
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let cmd = Command::GetAccountStatus {
            mail_host: host.clone(),
        };
        say!("{P} running the read-only {}", cli.display(&cmd));
        let out = match listed(cli, &host, given).await {
            Ok(out) => out,
            Err(e) => {
                say!("{P}   it failed, as the real run would: {e}");
                return cli_error(e);
            }
        };
        if let OutcomeResult::Listed { accounts, at_risk } = &out {
            say!(
                "{P}   {} replicated account(s) on {host}: {}",
                accounts.len(),
                names_preview(accounts, verbose)
            );
            if at_risk.is_empty() {
                say!(
                    "{P}   no account's replica is at risk (this listing against the last survey)"
                );
            } else {
                say!(
                    "{P}   {} account(s) at risk (this listing against the last survey):",
                    at_risk.len()
                );
                for r in at_risk {
                    say!("{P}     {}: {r}", r.account);
                }
            }
        }
        out
    }
}

/// A listing as the engine takes it: the names, and the accounts at risk
/// from this listing against the last survey its caller read (the
/// source's last `sequence`/`itemId` are the survey's: the source is
/// usually gone). Each account is judged as it is read: of a listing of
/// any length only the names and the accounts at risk are kept.
async fn listed(
    cli: &Carbonio,
    host: &MailHost,
    given: &Given<'_>,
) -> Result<OutcomeResult, CarbonioError> {
    let last = given.last_survey.cloned().map(Arc::new);
    let at_risk = Arc::new(Mutex::new(Vec::new()));
    let risks = at_risk.clone();
    let accounts = cli
        .each_account(host, move |a: AccountStatus| {
            if let Some(r) = survey::at_promotion_of(last.as_deref(), &Surveyed::from(&a))
                && let Ok(mut v) = risks.lock()
            {
                v.push(r);
            }
            Some(a.account_name.to_string())
        })
        .await?;
    let at_risk = std::mem::take(&mut *at_risk.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(OutcomeResult::Listed { accounts, at_risk })
}

/// `carbonio --json core getAllOperations`, before promoting again after an
/// attempt that did not report success.
pub(super) struct ListOperations<'a> {
    // The listing covers the whole mailbox server, whatever the host.
    #[allow(dead_code)]
    pub source_mail_host: &'a String,
}

impl Effect for ListOperations<'_> {
    const LABEL: &'static str = "list_operations";

    fn time_limit(&self, ex: &Executor) -> Duration {
        ex.few_calls()
    }

    async fn run(self, ex: &mut Executor, _: &Action, _: &Given<'_>) -> OutcomeResult {
        match ex.cli() {
            Ok(c) => match c.get_all_operations().await {
                Ok(ops) => OutcomeResult::Operations {
                    promotions: promotions_running(&ops),
                },
                Err(e) => cli_error(e),
            },
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
        let cli = match ex.cli() {
            Ok(c) => c,
            Err(r) => return r,
        };
        say!(
            "{P} running the read-only {}",
            cli.display(&Command::GetAllOperations)
        );
        match cli.get_all_operations().await {
            Ok(ops) => {
                let promotions = promotions_running(&ops);
                say!(
                    "{P}   {} operation(s), {} promotion(s) running",
                    ops.len(),
                    promotions.len()
                );
                OutcomeResult::Operations { promotions }
            }
            Err(e) => cli_error(e),
        }
    }
}

/// The running operations that are promotions, in words. The fields of
/// `core getAllOperations` vary between releases, so the whole entry is
/// searched: any mention of a promotion counts (waiting for a promotion
/// that is not one costs a little time; promoting beside one does not
/// bear thinking about).
fn promotions_running(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .filter(|o| o.raw.to_string().to_ascii_lowercase().contains("promot"))
        .map(|o| match (&o.id, &o.name) {
            (Some(id), Some(name)) => format!("{name} ({id})"),
            (None, Some(name)) => name.clone(),
            (Some(id), None) => format!("operation {id}"),
            (None, None) => o.raw.to_string(),
        })
        .collect()
}
