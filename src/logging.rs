//! Logging setup: one `tracing` subscriber for every command.
//!
//! - On a terminal: human lines with timestamps and colours.
//! - Under systemd (stderr is the journal stream named by `JOURNAL_STREAM`):
//!   no timestamps, since journald adds its own, and each line starts with
//!   a syslog priority prefix (`<3>` error, `<4>` warning, `<6>` info,
//!   `<7>` debug) so that `journalctl -p warning` works.
//! - Anywhere else (a pipe, a file): plain lines with timestamps.
//! - `--log FILE` also appends every line, with a timestamp, to FILE. The
//!   file is reopened by [`LogHandle::reopen`] (the daemon calls it on
//!   SIGHUP), so logrotate can move it away and the next line lands in a
//!   new file at the same path.
//! - `HABEAT_LOG_FORMAT=json` turns every line (stderr and file) into one
//!   JSON object: `{"timestamp", "level", "message", ...fields}`. Under
//!   journald the object has no timestamp and still gets the `<N>` prefix,
//!   which journald strips, so `journalctl -o cat` shows clean JSON.
//! - The level filter comes from `HABEAT_LOG`, else `RUST_LOG`, else `info`,
//!   in `tracing-subscriber`'s `EnvFilter` syntax (`debug`,
//!   `habeat=debug,hyper=info`).
//!
//! Timestamps are RFC 3339 in UTC (`2025-01-31T10:00:00.123456Z`), so lines
//! from both datacenters compare without guessing time zones.

#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{self as tfmt, FmtContext, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Environment variable choosing the line format (`text` or `json`).
pub const FORMAT_ENV: &str = "HABEAT_LOG_FORMAT";
/// Environment variable with the level filter; wins over `RUST_LOG`.
pub const FILTER_ENV: &str = "HABEAT_LOG";
/// The filter used when neither `HABEAT_LOG` nor `RUST_LOG` is set.
pub const DEFAULT_FILTER: &str = "info";

/// Why logging could not be set up. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `HABEAT_LOG`/`RUST_LOG` does not parse as a filter.
    #[error(
        "{var}={value:?} is not a log filter: {reason} (examples: info, debug, habeat=debug,hyper=warn)"
    )]
    Filter {
        /// The variable the filter came from.
        var: &'static str,
        /// Its value.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    #[error("{FORMAT_ENV}={0:?} is not a log format: use text or json")]
    /// `HABEAT_LOG_FORMAT` is neither `text` nor `json`.
    Format(String),
    #[error(
        "cannot open log file {path}: {source} (check that its directory exists and is writable, or drop --log)"
    )]
    /// The `--log` file cannot be opened for appending.
    Open {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// `init` was called twice (a bug in the caller).
    #[error("a logger is already installed in this process")]
    AlreadyInstalled,
}

/// The shape of every log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

impl LogFormat {
    /// The format named by `HABEAT_LOG_FORMAT` (`text`, `json`; unset or
    /// empty: text).
    pub fn from_env() -> Result<LogFormat, LogError> {
        match std::env::var(FORMAT_ENV) {
            Err(_) => Ok(LogFormat::Text),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(LogError::Format(v)),
            },
        }
    }
}

/// What stderr is connected to, which decides how console lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// An interactive terminal: colours and timestamps.
    Terminal,
    /// The systemd journal: no timestamps, syslog priority prefixes.
    Journal,
    /// A pipe or file: plain lines with timestamps.
    Plain,
}

impl Console {
    /// Look at stderr. It is the journal when `JOURNAL_STREAM` names the
    /// device and inode of stderr itself (as `systemd.exec(5)` recommends
    /// checking: a child whose stderr was redirected inherits the variable
    /// but not the journal).
    pub fn detect() -> Console {
        if journal_stream_is_stderr() {
            Console::Journal
        } else if io::stderr().is_terminal() {
            Console::Terminal
        } else {
            Console::Plain
        }
    }
}

fn journal_stream_is_stderr() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let value = value.to_string_lossy();
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// Everything that decides how habeat logs.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Also append to this file (`--log`).
    pub file: Option<PathBuf>,
    /// Text or JSON lines.
    pub format: LogFormat,
    /// What stderr is (decides timestamps, colours, priority prefixes).
    pub console: Console,
    /// `EnvFilter` directives (`info`, `habeat=debug`).
    pub filter: String,
}

impl LogOptions {
    /// Options from the environment (`HABEAT_LOG`/`RUST_LOG`,
    /// `HABEAT_LOG_FORMAT`, what stderr is) plus the `--log` file.
    pub fn from_env(file: Option<PathBuf>) -> Result<LogOptions, LogError> {
        let filter = [FILTER_ENV, "RUST_LOG"]
            .into_iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_FILTER.to_owned());
        Ok(LogOptions {
            file,
            format: LogFormat::from_env()?,
            console: Console::detect(),
            filter,
        })
    }
}

/// Handle on the logger's `--log` file, kept by the daemon to reopen it on
/// SIGHUP. Cloning shares the same file.
#[derive(Debug, Clone, Default)]
pub struct LogHandle {
    file: Option<LogFile>,
}

impl LogHandle {
    /// Reopen the `--log` file at its path: after logrotate moved it away,
    /// the next line goes to a fresh file. On error the old file is kept
    /// (nothing is lost; the caller logs why). Without `--log`: nothing.
    pub fn reopen(&self) -> Result<(), LogError> {
        match &self.file {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }

    /// The `--log` file, if any.
    pub fn file_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }
}

/// An append-only log file that can be swapped for a fresh open of the
/// same path. Each event is written with one `write_all` under the lock,
/// so lines never interleave.
#[derive(Debug, Clone)]
struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: &Path) -> Result<LogFile, LogError> {
        Ok(LogFile {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    fn reopen(&self) -> Result<(), LogError> {
        let fresh = open_append(&self.path)?;
        *lock(&self.file) = fresh;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })
}

/// A poisoned lock only means another thread panicked mid-write; the file
/// itself is still fine to write to.
fn lock(m: &Mutex<File>) -> MutexGuard<'_, File> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer `tracing-subscriber` gets for one event: holds the lock.
pub struct LogFileWriter<'a>(MutexGuard<'a, File>);

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(lock(&self.file))
    }
}

/// Prefix each line with its syslog priority, for journald.
struct SyslogPrefix<F>(F);

fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl<S, N, F> FormatEvent<S, N> for SyslogPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // Every line: journald reads each line of its stream as an entry,
        // and one without a prefix (the rest of a command's output tail)
        // would be filed as info.
        let mut text = String::new();
        self.0.format_event(ctx, Writer::new(&mut text), event)?;
        let p = syslog_priority(event.metadata().level());
        for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
            writeln!(writer, "<{p}>{line}")?;
        }
        Ok(())
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The fmt layer for one destination.
fn layer_for<W>(writer: W, format: LogFormat, console: Console) -> BoxedLayer
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let ansi = console == Console::Terminal;
    let journal = console == Console::Journal;
    match format {
        LogFormat::Text => {
            let base = text_format().with_target(false);
            let l = tfmt::layer().with_writer(writer).with_ansi(ansi);
            if journal {
                l.event_format(SyslogPrefix(base.without_time())).boxed()
            } else {
                l.event_format(base).boxed()
            }
        }
        LogFormat::Json => {
            let base = text_format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false);
            let l = tfmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .fmt_fields(JsonFields::new());
            if journal {
                l.event_format(SyslogPrefix(base.without_time())).boxed()
            } else {
                l.event_format(base).boxed()
            }
        }
    }
}

fn text_format() -> format::Format {
    format::Format::default()
}

/// Build the subscriber without installing it (tests install it with
/// `tracing::subscriber::with_default`). Returns the handle that reopens
/// the `--log` file.
pub fn subscriber(
    opts: &LogOptions,
) -> Result<(impl Subscriber + Send + Sync + 'static, LogHandle), LogError> {
    let filter = EnvFilter::try_new(&opts.filter).map_err(|e| LogError::Filter {
        var: if std::env::var_os(FILTER_ENV).is_some() {
            FILTER_ENV
        } else {
            "RUST_LOG"
        },
        value: opts.filter.clone(),
        reason: e.to_string(),
    })?;
    let mut layers: Vec<BoxedLayer> = vec![layer_for(io::stderr, opts.format, opts.console)];
    let mut handle = LogHandle::default();
    if let Some(path) = &opts.file {
        let file = LogFile::open(path)?;
        // The file always gets timestamps and never colours.
        layers.push(layer_for(file.clone(), opts.format, Console::Plain));
        handle.file = Some(file);
    }
    let sub = Registry::default().with(layers).with(filter);
    Ok((sub, handle))
}

/// Install the process-wide logger. Call once, early in `main`; keep the
/// returned handle for SIGHUP.
pub fn init(opts: &LogOptions) -> Result<LogHandle, LogError> {
    let (sub, handle) = subscriber(opts)?;
    tracing::subscriber::set_global_default(sub).map_err(|_| LogError::AlreadyInstalled)?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }

    #[test]
    fn a_bad_filter_is_reported_with_its_variable() {
        let opts = LogOptions {
            file: None,
            format: LogFormat::Text,
            console: Console::Plain,
            filter: "habeat=loud".into(),
        };
        let err = subscriber(&opts)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("habeat=loud"), "{err}");
        assert!(err.contains("examples"), "{err}");
    }
}
