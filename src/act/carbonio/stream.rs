//! `getAccountStatus` read while the CLI prints it: its stdout goes, chunk
//! by chunk, through the one-pass reading of `scan.rs` on a blocking
//! thread, and each account entry is handed to a [`Sink`] that keeps only
//! what its caller needs (the names, the survey's counts and its accounts
//! at risk). The listing is never held whole, so no output cap applies to
//! it: a mailstore of 500k accounts (about 180 MiB of JSON) is listed and
//! failed over like one of ten.
//!
//! Only its first [`STREAM_KEEP`] bytes are also kept: output the one pass
//! refuses is read again from them the reference way (`listing.rs`), which
//! words the error as for any JSON command; longer output it refuses is
//! refused with where and why the pass stopped.

use super::entry::{Entry, Fields};
use super::listing::parse_listing;
use super::scan;
use super::{AccountStatus, Carbonio, CarbonioError, Command, CommandReport, MailHost};
use crate::act::process;
use std::io::Read;
use tokio::sync::mpsc;

/// How much of a streamed listing's stdout is kept besides being read:
/// enough to word the error of any short wrong output the reference way.
pub const STREAM_KEEP: usize = 1024 * 1024;

/// Chunks of stdout in flight between the pipe and the reading thread: the
/// CLI waits on the pipe while the reading is behind.
const CHUNKS_IN_FLIGHT: usize = 32;

/// What a listing read as it comes keeps of it.
pub(super) trait Sink: Send + 'static {
    /// One account entry, in the listing's order; an error refuses the
    /// listing (with why, for output too long to read again).
    fn entry(&mut self, e: &Entry<'_>) -> Result<(), String>;
    /// Start again from the whole output, read the reference way (the one
    /// pass refused it): what [`Sink::entry`] kept so far is dropped.
    fn whole(&mut self, stdout: &[u8]) -> Result<(), String>;
}

/// A channel of chunks read as a [`Read`]: what the blocking thread reads.
struct Chunks {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.cur = c;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A [`Sink`] and the first refusal it gave, with the entry's place.
struct Refusing<S> {
    sink: S,
    index: usize,
    refused: Option<String>,
}

fn read_stream<S: Sink>(rx: mpsc::Receiver<Vec<u8>>, sink: S) -> (Result<(), String>, S) {
    let chunks = Chunks {
        rx,
        cur: Vec::new(),
        at: 0,
    };
    let mut r = Refusing {
        sink,
        index: 0,
        refused: None,
    };
    let read =
        scan::listing_from_reader(std::io::BufReader::with_capacity(64 * 1024, chunks), |e| {
            let i = r.index;
            r.index += 1;
            match r.sink.entry(e) {
                Ok(()) => Some(()),
                Err(why) => {
                    r.refused = Some(format!("account entry {i}: {why}"));
                    None
                }
            }
        });
    let res = match read {
        Ok(_) => Ok(()),
        Err(e) => Err(r.refused.take().unwrap_or_else(|| {
            format!(
                "the output is not the account listing (one JSON object with a \"response\" \
                 holding a \"values\" list, no key twice): {e}"
            )
        })),
    };
    (res, r.sink)
}

impl Carbonio {
    /// `getAccountStatus mailHost <host>`, its stdout read as it comes into
    /// `sink`; complete or an error, as any JSON command.
    pub(super) async fn listing_into<S: Sink>(
        &self,
        host: &MailHost,
        sink: S,
    ) -> Result<S, CarbonioError> {
        let cmd = Command::GetAccountStatus {
            mail_host: host.clone(),
        };
        let mut spec = self.spec(&cmd)?;
        spec.output_limit = STREAM_KEEP;
        let command = spec.display();
        tracing::info!(%command, "running");
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let reading = tokio::task::spawn_blocking(move || read_stream(rx, sink));
        let out = process::run_forwarding(&spec, Some(tx))
            .await
            .map_err(|source| CarbonioError::Start {
                command: command.clone(),
                source,
            })?;
        let report = self.judge(&cmd, command, &out)?;
        let bad = |report: CommandReport, reason: String| CarbonioError::BadOutput {
            command: report.command,
            reason,
            tail: report.tail,
        };
        let (read, mut sink) = match reading.await {
            Ok(x) => x,
            Err(e) => {
                return Err(bad(report, format!("reading the listing stopped: {e}")));
            }
        };
        match read {
            Ok(()) => {}
            // Short enough to have been kept: read again the reference
            // way, which words the error (or takes output this pass is
            // stricter about).
            Err(_) if out.stdout.complete() => {
                sink.whole(&out.stdout.head)
                    .map_err(|reason| bad(report.clone(), reason))?;
            }
            Err(reason) => {
                return Err(bad(
                    report,
                    format!("{reason} ({} bytes were printed)", out.stdout.len()),
                ));
            }
        }
        tracing::info!(command = %report.command, duration = ?out.duration, "done");
        Ok(sink)
    }

    /// The replicated accounts whose mailbox is on `host` (what promotion
    /// of that host would move). An empty list means the CLI answered
    /// properly and there are none; every failure is an error.
    pub async fn get_account_status(
        &self,
        host: &MailHost,
    ) -> Result<Vec<AccountStatus>, CarbonioError> {
        self.each_account(host, Some).await
    }

    /// [`Self::get_account_status`], each account turned by `each` into
    /// what the caller keeps of it (`None`: nothing) as it is read: a
    /// listing of any length costs what is kept, not the listing.
    pub async fn each_account<T: Send + 'static>(
        &self,
        host: &MailHost,
        each: impl FnMut(AccountStatus) -> Option<T> + Send + 'static,
    ) -> Result<Vec<T>, CarbonioError> {
        let sink = Accounts {
            host: host.clone(),
            each,
            kept: Vec::new(),
        };
        Ok(self.listing_into(host, sink).await?.kept)
    }
}

/// The promotion's reading of a listing: each entry checked leniently.
struct Accounts<F, T> {
    host: MailHost,
    each: F,
    kept: Vec<T>,
}

impl<F, T> Sink for Accounts<F, T>
where
    F: FnMut(AccountStatus) -> Option<T> + Send + 'static,
    T: Send + 'static,
{
    fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
        let a = AccountStatus::check(e, &self.host, Fields::Lenient)?;
        self.kept.extend((self.each)(a));
        Ok(())
    }

    fn whole(&mut self, stdout: &[u8]) -> Result<(), String> {
        self.kept.clear();
        for a in parse_listing(stdout, &self.host, Fields::Lenient)? {
            self.kept.extend((self.each)(a));
        }
        Ok(())
    }
}
