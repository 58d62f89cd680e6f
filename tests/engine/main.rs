//! The pure tests of the decision core, in a test binary of their own: the
//! engine (`habeat::engine::step`) through the engine harness, the property
//! test of its safety invariants, and the simulation of both sites (the
//! engine and the primary's lease machine in a modelled world). Nothing here starts a process, opens a socket
//! or needs root, so `cargo test --test engine` runs them alone, as any
//! user, in seconds. Everything with I/O is in `tests/it`.
//! Run one area with `cargo test --test engine <module>::`.

#[path = "../engine_harness/mod.rs"]
mod engine_harness;
#[path = "../sim/mod.rs"]
mod sim;

mod engine_checks;
mod engine_clock;
mod engine_deadline;
mod engine_decisions;
mod engine_fencing;
mod engine_invariants;
mod engine_operator_retry;
mod engine_reprotect;
mod engine_switchover;
