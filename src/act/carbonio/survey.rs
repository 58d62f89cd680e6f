//! The survey's side of the driver: `getAccountStatus mailHost <peer>`
//! read strictly ([`super::parse_survey_listing`]) and turned into the
//! survey's [`Surveyed`] entries (the replica promotion would use: lowest
//! `priority`, the first listed on a tie or when none is given).

use super::{AccountStatus, Carbonio, CarbonioError, Command, MailHost, parse_survey_listing};
use crate::replica::{ReplicaSeen, Surveyed};

impl From<&AccountStatus> for Surveyed {
    fn from(a: &AccountStatus) -> Surveyed {
        let first = a
            .replicas
            .iter()
            .enumerate()
            .min_by_key(|(i, r)| (r.priority.unwrap_or(i64::MAX), *i))
            .map(|(_, r)| ReplicaSeen {
                destination: r.destination.clone(),
                available: r.available,
                can_connect_to_kafka: r.can_connect_to_kafka,
                paused: r.paused,
                sequence: r.sequence,
                item_id: r.item_id,
                priority: r.priority,
            });
        Surveyed {
            account: a.account_name.to_string(),
            source_sequence: a.sequence,
            source_item_id: a.item_id,
            source_paused: a.paused,
            unreadable: a
                .unreadable
                .iter()
                .map(|f| (*f).to_owned())
                .chain(
                    a.replicas
                        .iter()
                        .enumerate()
                        .min_by_key(|(i, r)| (r.priority.unwrap_or(i64::MAX), *i))
                        .into_iter()
                        .flat_map(|(_, r)| r.unreadable.iter().map(|f| format!("replica {f}"))),
                )
                .collect(),
            replica: first,
            replicas: a.replicas.len(),
        }
    }
}

impl Carbonio {
    /// Survey `host`: every replicated account with its replica's fields.
    /// Any failure (the CLI, its output, a field that makes no sense) is an
    /// error: a half survey is no survey.
    pub async fn survey(&self, host: &MailHost) -> Result<Vec<Surveyed>, CarbonioError> {
        let cmd = Command::GetAccountStatus {
            mail_host: host.clone(),
        };
        let (stdout, report) = self.exec(&cmd).await?;
        let list =
            parse_survey_listing(&stdout, host).map_err(|reason| CarbonioError::BadOutput {
                command: report.command,
                reason,
                tail: report.tail,
            })?;
        Ok(list.iter().map(Surveyed::from).collect())
    }
}
