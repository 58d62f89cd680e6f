//! Parsing and validation of `habeat.yml` (legacy and new keys).
//!
//! Validation is complete before anything runs: every problem in the file
//! is collected (not just the first) and reported as one line
//! `file:line:column: what is wrong; what to do`, so an operator fixes the
//! whole file in one pass. Problems that concern the file itself (missing,
//! a directory, unreadable) name only the file: it has no lines to point at.
//!
//! The schema is the key tables of `keys.rs`; the walk over them (types,
//! cross-section checks) is in `walk.rs` with the readers of `read.rs`, over the spanned tree of
//! [`super::yaml`].

pub use super::problem::{FenceMetadata, HostCheck, LoadEnv, Problem};

use super::Config;
use super::problem::io_problem;
use super::read::Walker;
use super::walk;
use super::yaml::{self, Pos};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a configuration could not be used. Renders as one line per problem,
/// each starting with `file:line:column` (or just `file` when the file
/// itself is the problem), ready for the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all: missing, a directory, not a
    /// regular file, unreadable, too large.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// The file was read but its content is wrong; problems in file order.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The configuration file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::File { path, .. } | ConfigError::Invalid { path, .. } => path,
        }
    }

    /// Each problem as its own line (`file:line:column: message`).
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_owned).collect()
    }

    /// What `--json config check` prints for a file it refuses: `valid:
    /// false` and each problem with its file, line, column, the key it is
    /// about (when its message starts with one) and the message.
    pub fn to_json(&self) -> serde_json::Value {
        let file = self.path().display().to_string();
        let problems: Vec<serde_json::Value> = match self {
            ConfigError::File { message, .. } => vec![serde_json::json!({
                "file": file, "line": null, "column": null, "key": null, "message": message,
            })],
            ConfigError::Invalid { problems, .. } => problems
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "file": file,
                        "line": p.line,
                        "column": p.column,
                        "key": key_of(&p.message),
                        "message": p.message,
                    })
                })
                .collect(),
        };
        serde_json::json!({ "valid": false, "file": file, "problems": problems })
    }
}

/// The dotted key a message is about: the messages of one key start with
/// it (`detection.timeout: 1500 has no unit; ...`).
fn key_of(message: &str) -> Option<&str> {
    let (head, _) = message.split_once(": ")?;
    let key = head.split_whitespace().next()?;
    (key == head
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    .then_some(key)
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}:{}:{}: {}", path.display(), p.line, p.column, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read and validate the configuration file at `path`, taking
/// `CONSUL_HTTP_TOKEN` from the environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_file_with(path, &LoadEnv::from_process())
}

/// [`load_file`] with an explicit environment.
pub fn load_file_with(path: &Path, env: &LoadEnv) -> Result<Config, ConfigError> {
    let file_err = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| file_err(io_problem(&e)))?;
    if meta.is_dir() {
        return Err(file_err(format!(
            "is a directory, not a file; give the path of the YAML file itself \
             (e.g. --config {}/habeat.yml)",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(file_err(
            "is not a regular file (a device, pipe or socket); give the path of habeat.yml".into(),
        ));
    }
    let limit = yaml::MAX_FILE_BYTES as u64;
    if meta.len() > limit {
        return Err(file_err(format!(
            "is {} bytes; a habeat configuration is a few KiB (limit {limit}): is this the right file?",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| file_err(io_problem(&e)))?;
    if bytes.len() as u64 > limit {
        return Err(file_err(format!(
            "grew past {limit} bytes while being read; is this the right file?"
        )));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let pos = end_position(std::str::from_utf8(good).unwrap_or(""));
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: vec![Problem {
                    line: pos.line,
                    column: pos.column,
                    message: "the file is not UTF-8 text (binary data here); \
                              is this really habeat.yml? save it as UTF-8"
                        .into(),
                }],
            });
        }
    };
    use std::os::unix::fs::PermissionsExt;
    load_inner(&text, path, env, Some(meta.permissions().mode()))
}

/// Validate configuration text; `source` names it in messages. Takes
/// `CONSUL_HTTP_TOKEN` from the environment; reads `consul.token_file`.
pub fn load_str(text: &str, source: &Path) -> Result<Config, ConfigError> {
    load_str_with(text, source, &LoadEnv::from_process())
}

/// [`load_str`] with an explicit environment.
pub fn load_str_with(text: &str, source: &Path, env: &LoadEnv) -> Result<Config, ConfigError> {
    load_inner(text, source, env, None)
}

/// Line and column just after `text` (where the next character would be).
fn end_position(text: &str) -> Pos {
    let line = text.matches('\n').count() as u64 + 1;
    let last = text.rsplit('\n').next().unwrap_or("");
    Pos {
        line,
        column: last.chars().count() as u64 + 1,
    }
}

fn load_inner(
    text: &str,
    source: &Path,
    env: &LoadEnv,
    file_mode: Option<u32>,
) -> Result<Config, ConfigError> {
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        path: source.to_owned(),
        problems,
    };
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let mut w = Walker::new(source, env);
            w.error(e.pos, e.message);
            return Err(invalid(w.finish_problems()));
        }
    };
    let mut w = Walker::new(source, env);
    w.file_mode = file_mode;
    let cfg = walk::config(&mut w, &root);
    let problems = w.finish_problems();
    match cfg {
        Some(mut cfg) if problems.is_empty() => {
            cfg.warnings = w.finish_warnings();
            Ok(cfg)
        }
        _ => Err(invalid(problems)),
    }
}
