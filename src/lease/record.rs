//! The keeper's directory I/O: listing the accounts whose `mailHost` is
//! this side's mail host (`carbonio --json <module> getAccountStatus
//! mailHost <own host>`), and keeping the record taken while serving in
//! `state_dir/lease-accounts.json`. Both run off the renewal path: a
//! listing of 100k accounts takes seconds and a record is megabytes, and
//! neither may delay a renewal or the fence. What to make of a listing is
//! [`super::machine`]'s.

use crate::act::MailHost;
use crate::act::carbonio::Carbonio;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// The record in `state_dir`, beside `lease.json`.
pub const FILE: &str = "lease-accounts.json";

/// One listing's answer: when it began, the names or why there are none.
pub type Listing = (Instant, Result<Vec<String>, String>);

#[derive(Deserialize)]
struct RecordFile {
    /// The mail host listed: a record of another host (the config's
    /// `appserver_vmname` changed) says nothing about this one.
    mail_host: String,
    /// Sorted. (`taken_unix`, for the operator, is not read back.)
    accounts: Vec<String>,
}

/// [`RecordFile`] as written, borrowing the names.
#[derive(Serialize)]
struct RecordOut<'a> {
    mail_host: &'a str,
    taken_unix: Option<u64>,
    accounts: &'a [String],
}

/// The record a previous process left for `host`: `None` when there is
/// none or it cannot be read, which the machine takes as no evidence (a
/// fenced side then stays fenced; a serving one takes a new record).
pub fn load(state_dir: &Path, host: &str) -> Option<Vec<String>> {
    let path = state_dir.join(FILE);
    let bytes = match crate::state::read_nofollow(&path) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("{}: {e}; taken as no record", path.display());
            return None;
        }
    };
    match serde_json::from_slice::<RecordFile>(&bytes) {
        Ok(r) if r.mail_host == host => Some(r.accounts),
        Ok(r) => {
            tracing::warn!(
                "{}: a record of {}, not of {host}; taken as no record",
                path.display(),
                r.mail_host
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                "{}: not a record habeat wrote ({e}); taken as no record",
                path.display()
            );
            None
        }
    }
}

/// Reads the directory and saves the record, each in a task of its own.
pub struct Directory {
    cli: Result<Carbonio, String>,
    host: String,
    answers: mpsc::UnboundedSender<Listing>,
    saves: watch::Sender<Option<Arc<Vec<String>>>>,
}

impl Directory {
    /// A directory reader for `host`; its answers come on the receiver.
    /// The record is written to `state_dir` by a task that ends with the
    /// returned [`Directory`].
    pub fn new(
        cli: Result<Carbonio, String>,
        host: String,
        state_dir: &Path,
    ) -> (Directory, mpsc::UnboundedReceiver<Listing>) {
        let (answers, rx) = mpsc::unbounded_channel();
        let (saves, to_save) = watch::channel(None);
        tokio::spawn(writer(to_save, state_dir.join(FILE), host.clone()));
        (
            Directory {
                cli,
                host,
                answers,
                saves,
            },
            rx,
        )
    }

    /// Start a listing; its answer comes on the receiver, always (a
    /// failure is an answer: the machine waits for one).
    pub fn read(&self) {
        let started_at = Instant::now();
        let cli = self.cli.clone();
        let host = self.host.clone();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let listed = async {
                let cli = cli.map_err(|e| format!("the carbonio section: {e}"))?;
                let h = MailHost::parse(&host).map_err(|e| format!("{host:?}: {e}"))?;
                cli.each_account(&h, |a| Some(a.account_name.to_string()))
                    .await
                    .map_err(|e| e.to_string())
            };
            let _ = answers.send((started_at, listed.await));
        });
    }

    /// Save `accounts` as the record (the latest asked for wins).
    pub fn save(&self, accounts: Vec<String>) {
        self.saves.send_replace(Some(Arc::new(accounts)));
    }
}

/// Writes each record asked for, in order, the latest winning.
async fn writer(
    mut to_save: watch::Receiver<Option<Arc<Vec<String>>>>,
    path: PathBuf,
    host: String,
) {
    while to_save.changed().await.is_ok() {
        let Some(accounts) = to_save.borrow_and_update().clone() else {
            continue;
        };
        let (to, host) = (path.clone(), host.clone());
        let wrote = tokio::task::spawn_blocking(move || {
            let file = RecordOut {
                mail_host: &host,
                taken_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs()),
                accounts: &accounts,
            };
            let bytes = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
            crate::state::write_atomic(&to, &bytes).map_err(|e| e.to_string())
        })
        .await;
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                "cannot save the record of the accounts on this mail host to {}: {e}",
                path.display()
            ),
            Err(e) => tracing::error!("cannot save {}: {e}", path.display()),
        }
    }
}
