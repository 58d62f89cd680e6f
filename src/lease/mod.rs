//! The primary side's serving lease (SPEC 4, "Serving lease"; invariant
//! `lease-before-takeover`, SPEC 14).
//!
//! habeat on the primary side holds `habeat/serving/<own mail host>` in a
//! TTL-only Consul session and renews it every ttl/3; when it cannot for
//! ttl - ttl/3 it fences itself (`hooks.on_fence`). The decisions are
//! [`machine`] (pure); [`keeper`] is the I/O around it, [`record`] its
//! directory listing and the record of the accounts served here.

pub mod keeper;
pub mod machine;
pub mod record;
pub mod status;

pub use crate::config::serving_lease::{KEY_PREFIX, key};

/// Consul's default lock-delay, which the lease session asks for
/// explicitly: after the primary's session is invalidated, nobody can take
/// its key for this long.
pub const LOCK_DELAY: std::time::Duration = std::time::Duration::from_secs(15);
