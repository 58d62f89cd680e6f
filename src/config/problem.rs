//! What the loader reads from the environment and what it reports back:
//! [`LoadEnv`] in, [`Problem`]s out, and the one wording of a file that
//! cannot be read ([`io_problem`]).
//!
//! Both the entry points (`load.rs`) and the walk (`walk.rs`) use these;
//! keeping them here lets neither import the other's internals.

use super::Secret;
use std::fmt;

/// One problem in the file: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// "what is wrong; what to do", without the location.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// What the loader reads from the process environment, made explicit so
/// tests can supply it without touching the real environment.
#[derive(Debug, Clone, Default)]
pub struct LoadEnv {
    /// `CONSUL_HTTP_TOKEN`, the token the Consul CLI also reads.
    pub consul_http_token: Option<Secret>,
    /// Whether the programs and the user the file names are looked for on
    /// this host (`read/host.rs`), and what a missing one is.
    pub host: HostCheck,
    /// How a fence agent's metadata (`AGENT -o metadata`, XML) is asked
    /// for, when `host` is not `Off`: the child is run by `act::fence`,
    /// which the config may not import (it imports the config).
    pub fence_metadata: Option<FenceMetadata>,
}

/// `act::fence::metadata_blocking`, or a test's stand-in.
pub type FenceMetadata = fn(&std::path::Path) -> Result<String, String>;

/// What a program or user the file names but this host lacks is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostCheck {
    /// Not looked for: commands that only read (`status`, `history`) and
    /// `config check --file-only` (a build host, CI, a template).
    #[default]
    Off,
    /// A warning: `check`, `run`, `promote` and `recover` start anyway,
    /// since detection, the journal and the other steps still work and a
    /// daemon that refused to start would watch nothing.
    Warn,
    /// An error at its line: `config check`, where the administrator asks
    /// whether this host can run the file.
    Refuse,
}

impl LoadEnv {
    /// The environment of this process (an empty `CONSUL_HTTP_TOKEN` counts
    /// as unset, as it does for the Consul CLI).
    pub fn from_process() -> Self {
        let consul_http_token = std::env::var("CONSUL_HTTP_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        LoadEnv {
            consul_http_token,
            host: HostCheck::Off,
            fence_metadata: None,
        }
    }
}

/// Why a file (the config or `consul.token_file`) could not be read, as
/// the tail of a sentence that starts with its path.
pub(super) fn io_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file; pass the right path with --config \
             (the default is /etc/habeat/habeat.yml; the old one was /etc/hamon/habeat.yml)"
            .into(),
        std::io::ErrorKind::PermissionDenied => "cannot be read: permission denied; run habeat \
             as root, or let its user read the file"
            .into(),
        std::io::ErrorKind::NotADirectory => {
            "a part of this path is a file, not a directory; check the path".into()
        }
        _ => format!("cannot be read: {e}"),
    }
}
