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
        LoadEnv { consul_http_token }
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
