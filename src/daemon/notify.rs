//! systemd service notifications (`sd_notify(3)`): READY, WATCHDOG,
//! STATUS, RELOADING, STOPPING.
//!
//! A thin layer over the `sd-notify` crate, which supplies the message
//! vocabulary ([`sd_notify::NotifyState`]), the `WATCHDOG_USEC` parsing and
//! the monotonic clock systemd wants with `RELOADING=1`. Unlike
//! `sd_notify::notify`, the socket address is captured once, when the
//! [`Notifier`] is built, instead of being read from the environment at
//! every call: that lets the daemon drop `NOTIFY_SOCKET` from its
//! environment before it starts children (a hook inheriting it could tell
//! systemd we are ready), and lets tests aim a notifier at a socket they
//! own without touching the process environment.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op, so the
//! same loop runs under systemd, in a terminal and in tests.

use sd_notify::NotifyState;
use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// How long one notification may block when systemd does not read its
/// socket. The datagram is small; if the manager is this stuck, losing one
/// notification is better than stalling the probe loop.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Where notifications go, and the watchdog deadline systemd set.
///
/// Cheap to clone; holds no open socket (one is created per message, like
/// `sd_notify(3)` itself does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifier {
    /// `NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace.
    socket: Option<OsString>,
    /// `WATCHDOG_USEC`, when it applies to this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that sends nothing (not running under systemd).
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Capture `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` from the
    /// environment, as systemd sets them for a `Type=notify` service.
    /// An empty `NOTIFY_SOCKET` counts as unset.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        Notifier {
            socket,
            watchdog: sd_notify::watchdog_enabled(),
        }
    }

    /// Like [`Notifier::from_env`], then remove `NOTIFY_SOCKET`,
    /// `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment so that no
    /// child (carbonio CLI, hooks) inherits them.
    ///
    /// # Safety
    ///
    /// Modifies the process environment: call it before any other thread
    /// exists (in `main`, before the tokio runtime is built), as
    /// [`std::env::remove_var`] requires.
    pub unsafe fn take_from_env() -> Notifier {
        let n = Notifier::from_env();
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe {
            std::env::remove_var("NOTIFY_SOCKET");
            std::env::remove_var("WATCHDOG_USEC");
            std::env::remove_var("WATCHDOG_PID");
        }
        n
    }

    /// A notifier aimed at a given socket (a path, or `@name` for the
    /// abstract namespace), with the given watchdog timeout. For tests and
    /// for callers that learned the socket some other way.
    pub fn to_socket(socket: impl Into<OsString>, watchdog: Option<Duration>) -> Notifier {
        Notifier {
            socket: Some(socket.into()),
            watchdog,
        }
    }

    /// True when notifications go somewhere (running under systemd).
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// The watchdog timeout systemd enforces (`WatchdogSec=`), if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often the loop must send `WATCHDOG=1` to be safe: half the
    /// timeout, as `sd_watchdog_enabled(3)` recommends. `None`: no watchdog,
    /// pings are pointless (but harmless).
    pub fn watchdog_ping_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// `READY=1` with a status line: startup (or a reload) is complete.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        let status = one_line(status);
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)])
    }

    /// `WATCHDOG=1`: the service is alive and making progress. Send it only
    /// after real progress (a completed probe round), never from a timer of
    /// its own, or the watchdog would not notice a stuck loop.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send(&[NotifyState::Watchdog])
    }

    /// `STATUS=<line>`: what `systemctl status` shows. Newlines are
    /// replaced by spaces (a newline would start a new notification field).
    pub fn status(&self, line: &str) -> io::Result<()> {
        let line = one_line(line);
        self.send(&[NotifyState::Status(&line)])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (systemd ≥ 253 needs the latter
    /// to pair the reload with its completion; older versions ignore it).
    /// Must be followed by [`Notifier::ready`] once the reload is over,
    /// whether it succeeded or not.
    pub fn reloading(&self) -> io::Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        let now = NotifyState::monotonic_usec_now()?;
        self.send(&[NotifyState::Reloading, now])
    }

    /// `STOPPING=1` with a status line saying what shutdown waits for.
    pub fn stopping(&self, status: &str) -> io::Result<()> {
        let status = one_line(status);
        self.send(&[NotifyState::Stopping, NotifyState::Status(&status)])
    }

    /// `EXTEND_TIMEOUT_USEC=`: ask systemd (≥ 236) for `by` more time before
    /// it escalates a stop, while a running promotion is allowed to finish.
    pub fn extend_timeout(&self, by: Duration) -> io::Result<()> {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)])
    }

    /// Send one datagram with the given fields, one per line.
    fn send(&self, states: &[NotifyState<'_>]) -> io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let mut msg = String::new();
        for s in states {
            msg.push_str(&s.to_string());
            msg.push('\n');
        }
        let sock = UnixDatagram::unbound()?;
        sock.set_write_timeout(Some(SEND_TIMEOUT))?;
        let bytes = socket.as_encoded_bytes();
        let sent = if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg.as_bytes(), &addr)?
        } else {
            sock.send_to(msg.as_bytes(), socket)?
        };
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "systemd notification truncated",
            ));
        }
        Ok(())
    }
}

/// A status line must stay one line: `\n` separates notification fields.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_notifier_sends_nothing_and_succeeds() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready("x").unwrap();
        n.watchdog().unwrap();
        n.reloading().unwrap();
        assert_eq!(n.watchdog_ping_interval(), None);
    }

    #[test]
    fn ping_interval_is_half_the_watchdog_timeout() {
        let n = Notifier::to_socket("/nonexistent", Some(Duration::from_secs(30)));
        assert_eq!(n.watchdog_ping_interval(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn a_status_cannot_inject_fields() {
        assert_eq!(one_line("a\nREADY=1\r"), "a READY=1 ");
    }
}
