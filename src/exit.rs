//! Process exit codes (`habeat --help`, docs/decisions.md). Scripts and runbooks depend on them,
//! so they are named once here and nowhere else.

/// Done, whatever the verdict.
pub const OK: i32 = 0;
/// A runtime error (I/O, Consul, a bug): the message says what.
pub const RUNTIME: i32 = 1;
/// Bad configuration or command-line usage.
pub const USAGE: i32 = 2;
/// An action (promotion, hook, proxy switch) failed.
pub const ACTION_FAILED: i32 = 3;
/// Refused for safety (e.g. `promote` while a witness sees the source Up).
pub const REFUSED: i32 = 4;
/// Another habeat holds the state lock and the wait ran out.
pub const LOCKED: i32 = 5;
