//! The `habeat` binary driven as a process, as an operator or a systemd
//! unit runs it.
//!
//! Use from a test file with `#[path = "support/bin.rs"] mod bin;` (not
//! part of `support/mod.rs`, which `examples/demo.rs` includes too, where
//! `CARGO_BIN_EXE_habeat` does not exist).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_habeat");

/// An address that never answers: TEST-NET-3 (RFC 5737) is reserved for
/// documentation and routed nowhere, so pings to it get no reply and the
/// peer component it stands for is seen Down without a network namespace.
pub const DEAD_IP: &str = "203.0.113.77";

/// `habeat --config <config> <args>`, stdin closed, no token from the
/// test's environment, the state lock waited for at most 5s.
pub fn habeat(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CONSUL_HTTP_TOKEN")
        .env("HABEAT_LOCK_WAIT", "5s")
        .stdin(Stdio::null())
        .output()
        .expect("run habeat")
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The JSON a `--json` command printed (its last line, for `check`,
/// which prints the status object last).
pub fn json(o: &Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}
