//! Real signals become loop requests: SIGHUP → Reload, SIGTERM/SIGINT → Stop.
//!
//! One test in its own binary: it installs process-wide handlers and sends
//! signals to its own process.

use habeat::daemon::{Request, signals};
use nix::sys::signal::{Signal, raise};
use std::time::Duration;

#[tokio::test]
async fn signals_become_requests_and_no_longer_kill() {
    let mut rx = signals::listen().unwrap();
    for (sig, want) in [
        (Signal::SIGHUP, Request::Reload),
        (Signal::SIGTERM, Request::Stop),
        (Signal::SIGINT, Request::Stop),
        (Signal::SIGHUP, Request::Reload),
    ] {
        raise(sig).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no request for {sig}"));
        assert_eq!(got, Some(want), "{sig}");
    }
    // Still alive after SIGTERM and SIGINT: they were handled, not fatal.
}
