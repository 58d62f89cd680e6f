//! What the commands print on stdout. A reader that goes away
//! (`habeat status | head -1`, `config check | true`) must not turn into a
//! panic: `println!` panics on a write error, so every line of a command's
//! output goes through [`write`], which stops printing on the first error
//! and lets the command finish what it does. Muting rather than exiting is
//! deliberate: `promote` prints between its steps, and a closed pipe must
//! not stop a failover halfway. SIGPIPE stays ignored (Rust's default) so
//! that no socket or child pipe can kill the process either.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write to stdout and flush; after the first failure, nothing more.
/// A broken pipe is the reader's choice and is said nowhere; any other
/// error (a full disk under a redirection) is said once on stderr.
pub fn write(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            eprintln!("habeat: cannot write to stdout: {e}; the rest of the output is dropped");
        }
    }
}

/// Raw bytes (generated text such as completions), as [`write`].
pub fn bytes(b: &[u8]) {
    write(format_args!("{}", String::from_utf8_lossy(b)));
}

/// Whether stdout stopped being written (its reader went away).
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `println!` for a command's output: see the module.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` for a command's output: see the module.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::out::write(format_args!($($t)*)) };
}
