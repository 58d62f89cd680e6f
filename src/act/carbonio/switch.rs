//! The commands of a planned switchover: zmprov's batch mode (one process
//! per wave and step, never one per account), the read of named accounts
//! wherever they live, the promotion to a named destination, and a new
//! replica (`setAccountDestination`). Every account list reaches the CLI
//! through a private `input_file` copy, so a wave of any size is one call.

use super::accounts::AccountListCopy;
use super::entry::Fields;
use super::listing::{parse_account, response_raw, values_of};
use super::{AccountName, Carbonio, CarbonioError, Command, CommandReport, MailHost};
use crate::act::process::TEMP_ROOT;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One account as read by [`Carbonio::account_positions`]: where it lives
/// and how far each replica is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub account: AccountName,
    pub mail_host: MailHost,
    pub sequence: Option<u64>,
    pub item_id: Option<u64>,
    pub replicas: Vec<ReplicaPosition>,
}

/// One replica of a [`Located`] account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaPosition {
    pub destination: Option<String>,
    pub sequence: Option<u64>,
    pub item_id: Option<u64>,
    pub available: bool,
    pub can_connect_to_kafka: bool,
}

/// A `getAccountStatus` answer about named accounts: each entry checked
/// as a listing's entry is, on the host it reports.
pub fn parse_located(stdout: &[u8]) -> Result<Vec<Located>, String> {
    let response: Value = serde_json::from_str(response_raw(stdout)?.get())
        .map_err(|e| format!("the response is not JSON: {e}"))?;
    values_of(&response)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let host = v
                .get("accountMailHost")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("account entry {}: no accountMailHost", i + 1))
                .and_then(|h| {
                    MailHost::parse(h).map_err(|e| format!("account entry {}: {e}", i + 1))
                })?;
            let a = parse_account(v, &host, Fields::Lenient)
                .map_err(|e| format!("account entry {}: {e}", i + 1))?;
            Ok(Located {
                account: a.account_name,
                mail_host: host,
                sequence: a.sequence,
                item_id: a.item_id,
                replicas: a
                    .replicas
                    .into_iter()
                    .map(|r| ReplicaPosition {
                        destination: r.destination,
                        sequence: r.sequence,
                        item_id: r.item_id,
                        available: r.available == Some(true),
                        can_connect_to_kafka: r.can_connect_to_kafka == Some(true),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// zmprov's `ga` text (`# name ACCOUNT` then `attr: value` lines), as
/// account → `zimbraAccountStatus`.
pub fn parse_statuses(stdout: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut name: Option<String> = None;
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("# name ") {
            name = Some(n.trim().to_owned());
        } else if let (Some(n), Some(v)) = (&name, line.strip_prefix("zimbraAccountStatus:")) {
            out.insert(n.clone(), v.trim().to_owned());
        }
    }
    out
}

/// The values zmprov accepts for `zimbraAccountStatus`: nothing else is
/// ever written into a batch line.
pub const ACCOUNT_STATUSES: [&str; 6] = [
    "active",
    "maintenance",
    "locked",
    "closed",
    "lockout",
    "pending",
];

impl Carbonio {
    /// habeat's private copy of `accounts` for `probe`'s `input_file`
    /// (never empty, readable by `run_as`).
    pub(super) fn list_copy(
        &self,
        accounts: &[AccountName],
        probe: &Command,
    ) -> Result<AccountListCopy, CarbonioError> {
        self.non_empty(accounts, probe)?;
        let (user, _, _) = self.user(probe)?;
        AccountListCopy::create(accounts, user.as_ref()).map_err(|reason| {
            CarbonioError::InputFile {
                path: PathBuf::from(TEMP_ROOT),
                reason,
            }
        })
    }

    /// Run one zmprov process that reads `lines` on its standard input.
    pub async fn zmprov_batch(
        &self,
        lines: &[String],
    ) -> Result<(String, CommandReport), CarbonioError> {
        let cmd = Command::ZmprovBatch { lines: lines.len() };
        let mut input = lines.join("\n");
        input.push('\n');
        let (stdout, mut report) = self.exec_with(&cmd, Some(input.into_bytes())).await?;
        report.command = format!("{} <{} commands on stdin>", report.command, lines.len());
        Ok((String::from_utf8_lossy(&stdout).into_owned(), report))
    }

    /// Each account's `zimbraAccountStatus`, in one zmprov batch.
    pub async fn account_statuses(
        &self,
        accounts: &[AccountName],
    ) -> Result<BTreeMap<String, String>, CarbonioError> {
        let lines: Vec<String> = accounts
            .iter()
            .map(|a| format!("ga {} zimbraAccountStatus", a.as_str()))
            .collect();
        let (stdout, _) = self.zmprov_batch(&lines).await?;
        Ok(parse_statuses(&stdout))
    }

    /// Set each account's `zimbraAccountStatus`, in one zmprov batch. A
    /// status zmprov would not accept is refused before anything runs.
    pub async fn set_account_statuses(
        &self,
        statuses: &[(AccountName, String)],
    ) -> Result<CommandReport, CarbonioError> {
        let mut lines = Vec::with_capacity(statuses.len());
        for (a, s) in statuses {
            if !ACCOUNT_STATUSES.contains(&s.as_str()) {
                return Err(CarbonioError::BadOutput {
                    command: "zmprov ma".into(),
                    reason: format!("{a}: {s:?} is not a zimbraAccountStatus zmprov accepts"),
                    tail: String::new(),
                });
            }
            lines.push(format!("ma {} zimbraAccountStatus {s}", a.as_str()));
        }
        Ok(self.zmprov_batch(&lines).await?.1)
    }

    /// The named accounts, wherever they live: one `getAccountStatus
    /// input_file` call.
    pub async fn account_positions(
        &self,
        accounts: &[AccountName],
    ) -> Result<Vec<Located>, CarbonioError> {
        let probe = Command::GetAccountStatusOf {
            path: PathBuf::from(TEMP_ROOT),
        };
        let copy = self.list_copy(accounts, &probe)?;
        let cmd = Command::GetAccountStatusOf {
            path: copy.file.clone(),
        };
        let (stdout, report) = self.exec(&cmd).await?;
        parse_located(&stdout).map_err(|reason| CarbonioError::BadOutput {
            command: report.command,
            reason,
            tail: report.tail,
        })
    }

    /// Promote exactly these accounts to `destination` (a planned move:
    /// both mailstores alive), one call whatever their number.
    pub async fn promote_to(
        &self,
        accounts: &[AccountName],
        destination: &MailHost,
        threads: u32,
    ) -> Result<CommandReport, CarbonioError> {
        let probe = Command::PromoteTo {
            path: PathBuf::from(TEMP_ROOT),
            destination: destination.clone(),
            threads,
        };
        let copy = self.list_copy(accounts, &probe)?;
        self.exec_text(Command::PromoteTo {
            path: copy.file.clone(),
            destination: destination.clone(),
            threads,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_from_a_batch_of_ga() {
        let out = "# name a@x.com\nzimbraAccountStatus: locked\n\n# name b@x.com\nzimbraAccountStatus: active\n\n";
        let m = parse_statuses(out);
        assert_eq!(m.get("a@x.com").map(String::as_str), Some("locked"));
        assert_eq!(m.get("b@x.com").map(String::as_str), Some("active"));
    }
}
