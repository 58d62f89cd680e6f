//! habeat: failover daemon for two-datacenter Carbonio mail installations.
//!
//! The crate follows the picture of `docs/ARCHITECTURE.md`: probes (I/O) feed
//! observation rounds into a pure decision engine, whose actions are carried
//! out by the executor; the state store persists what must survive a crash.
//! The binary (`src/main.rs`) is a thin command-line layer over this library.

pub mod act;
pub mod cli;
pub mod commands;
pub mod config;
pub mod consul;
pub mod daemon;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod json;
pub mod lease;
pub mod logging;
pub mod model;
pub mod out;
pub mod probe;
pub mod replica;
pub mod session;
pub mod sink;
pub mod state;
pub mod survey;
pub mod switchover;
pub mod view;
