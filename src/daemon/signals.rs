//! Unix signals as requests to the run loop.
//!
//! systemd talks to the daemon with signals: `systemctl reload` sends
//! SIGHUP (through `ExecReload=`), `systemctl stop` SIGTERM, and a terminal
//! sends SIGINT on Ctrl-C. The loop does not handle signals itself: it
//! reads [`Request`]s from a channel, so that tests drive it with the same
//! requests without signalling their own process.

use std::io;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// What the operator (or systemd) asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGHUP: re-read the configuration and reopen the `--log` file.
    Reload,
    /// SIGTERM or SIGINT: stop probing, let a running action finish, exit.
    Stop,
}

/// Install handlers for SIGHUP, SIGTERM and SIGINT and forward them as
/// [`Request`]s. Must be called inside a tokio runtime. From then on these
/// signals no longer kill the process: the receiver must be read.
///
/// Fails only if the handlers cannot be registered (no such thing on
/// Linux in practice); the caller should then refuse to start, since
/// systemd could not stop the daemon cleanly.
pub fn listen() -> io::Result<mpsc::Receiver<Request>> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (req, name) = tokio::select! {
                Some(()) = hup.recv() => (Request::Reload, "SIGHUP"),
                Some(()) = term.recv() => (Request::Stop, "SIGTERM"),
                Some(()) = int.recv() => (Request::Stop, "SIGINT"),
                else => break,
            };
            tracing::debug!("received {name}");
            if tx.send(req).await.is_err() {
                break; // the loop is gone
            }
        }
    });
    Ok(rx)
}
