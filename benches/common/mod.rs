//! What several benches share: their knobs from the environment, the
//! binary's `done command=... duration=...` log lines, and `habeat run`
//! started on a config.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// `k` from the environment as a number, else `default`.
pub fn env_usize(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `26.396259ms`, `1.2s`, `850µs` (a `Duration`'s Debug form).
pub fn parse_debug_duration(s: &str) -> Option<Duration> {
    let i = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(i);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1e3,
        "µs" | "us" => n / 1e6,
        "ns" => n / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// One `done command=... duration=...` line of the binary's log.
pub struct Done {
    pub at: SystemTime,
    pub command: String,
    pub took: Duration,
}

/// Every `done` line of `log`, in order.
pub fn done_lines(log: &str) -> Vec<Done> {
    log.lines()
        .filter_map(|l| {
            let (at, rest) = l.split_once(' ')?;
            let rest = rest.trim_start().strip_prefix("INFO done command=")?;
            let (command, took) = rest.rsplit_once(" duration=")?;
            Some(Done {
                at: humantime::parse_rfc3339(at).ok()?,
                command: command.to_owned(),
                took: parse_debug_duration(took.split_whitespace().next()?)?,
            })
        })
        .collect()
}

/// `habeat run` on `config`, its output thrown away.
pub fn spawn_run(config: &Path) -> Result<Child, String> {
    Command::new(env!("CARGO_BIN_EXE_habeat"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start habeat run: {e}"))
}
