//! The `run` daemon: the probe loop under systemd.
//!
//! - [`notify`]: READY/WATCHDOG/STATUS/RELOADING/STOPPING to systemd.
//! - [`signals`]: SIGHUP → reload, SIGTERM/SIGINT → stop, as requests.
//! - [`run`]: the loop, generic over a [`run::Driver`] that does the probing,
//!   deciding and acting, so that the loop's guarantees (no overlapping
//!   rounds, watchdog only after progress, actions beside probing, a clean
//!   stop that waits for a running promotion) are tested on their own.
//! - [`metrics`]: the Prometheus registry and the `/metrics` and `/status`
//!   HTTP endpoint.

pub mod metrics;
pub mod notify;
pub mod run;
pub mod signals;

pub use metrics::{Metrics, MetricsServer, ServerOptions};
pub use notify::Notifier;
pub use run::{
    ActionEnd, ActionJob, Driver, RoundContext, RoundError, RoundReport, RunOptions, run,
};
pub use signals::Request;
