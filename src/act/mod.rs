//! The executor's edge: everything habeat does to the outside world
//! (processes, the carbonio CLI, hooks, Consul raft recovery).
//!
//! - [`process`]: the one way to run a child (argv, timeout, group kill).
//! - [`names`]: validated [`AccountName`] / [`MailHost`], the only form in
//!   which names from operators or the CLI's output travel through habeat.
//! - [`carbonio`]: one typed function per carbonio / zmprov command.
//! - [`hooks`]: operator commands and the non-blocking `on_event` dispatcher.
//! - [`fence`]: the ClusterLabs fence agents (options on stdin, status first).
//! - [`raft`]: `peers.json` and the service-discover restart of raft recovery.

pub mod carbonio;
pub mod fence;
pub mod hooks;
pub mod names;
pub mod process;
pub mod raft;

pub use names::{AccountName, MailHost, NameError};
