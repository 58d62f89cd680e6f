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
//!
//! How `main` wires it (the driver being the probe → engine → executor
//! pipeline):
//!
//! ```ignore
//! // Before any thread exists: capture and drop NOTIFY_SOCKET so that no
//! // child inherits it.
//! let notifier = unsafe { Notifier::take_from_env() };
//! let log = logging::init(&LogOptions::from_env(cli.log.clone())?)?;
//! let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let requests = daemon::signals::listen()?;          // before READY
//!     let metrics = Metrics::new();
//!     let _server = match cfg.metrics.listen {
//!         Some(addr) => Some(MetricsServer::start(addr, metrics.clone(),
//!                            status_source, ServerOptions::default()).await?),
//!         None => None,
//!     };
//!     let mut driver = SessionDriver::new(config_path, cfg, metrics.clone())?;
//!     daemon::run(&mut driver, requests, RunOptions {
//!         notifier, metrics: Some(metrics), log, ..RunOptions::default()
//!     }).await;                                           // then exit 0
//! })
//! ```

#![warn(missing_docs)]

pub mod driver;
pub mod endpoint;
pub mod metrics;
pub mod notify;
pub mod run;
pub mod signals;

pub use endpoint::{MetricsServer, ServerOptions};
pub use metrics::Metrics;
pub use notify::Notifier;
pub use run::{
    ActionEnd, ActionJob, Driver, RoundContext, RoundError, RoundReport, RunOptions, run,
};
pub use signals::Request;
