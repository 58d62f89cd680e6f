//! `--dry-run`: a simulation, not a guess (SPEC §1). The read-only calls
//! the real run would make are made for real (the account listing with its
//! at-risk analysis, `core getAllOperations`, the Consul leader and who
//! holds the gate key); every command that would change something is
//! printed with its exact argv and not run, and where its outcome decides
//! what follows, the output says that it cannot be known and what is
//! assumed. Nothing is written (`dry-run-changes-nothing`): no state, no
//! journal, no lock, no temporary account file.
//!
//! How each kind of action is simulated lives with it, in `super::kinds`;
//! here are the simulation's common parts.

use crate::engine::OutcomeResult;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many account names a dry run prints without `--verbose`.
pub const PREVIEW: usize = 20;

/// The lines a dry run prints start with this.
pub(super) const P: &str = "dry run:";

/// With `--json`, stdout is one JSON document for scripts: the
/// simulation's lines go to stderr instead.
pub(super) static ON_STDERR: AtomicBool = AtomicBool::new(false);

/// Send the simulation's lines to stderr (`--dry-run --json`).
pub fn report_on_stderr() {
    ON_STDERR.store(true, Ordering::Relaxed);
}

/// A line of the simulation, on stdout (or stderr, see [`report_on_stderr`]).
macro_rules! say {
    ($($t:tt)*) => {
        if $crate::exec::dry::ON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            crate::outln!($($t)*)
        }
    };
}
pub(super) use say;

/// Assumed outcome of a command that is not run.
pub(super) fn assumed(what: &str) -> OutcomeResult {
    say!("{P}   its outcome cannot be known without running it; assumed: {what}");
    OutcomeResult::Succeeded {
        detail: "dry run: not executed".into(),
    }
}

pub(super) fn names_preview(names: &[String], verbose: bool) -> String {
    let shown = if verbose {
        names.len()
    } else {
        names.len().min(PREVIEW)
    };
    let mut s = names[..shown].join(", ");
    if shown < names.len() {
        s.push_str(&format!(
            ", … and {} more (--verbose lists all)",
            names.len() - shown
        ));
    }
    s
}
