//! Which serving lease this node holds, from the configuration alone: the
//! configuration check warns when `lease.enabled` gives this node none,
//! and the lease keeper (`crate::lease`) takes the one it names. Kept on
//! the configuration's side so that the check needs nothing of the keeper.

use super::Config;
use crate::model::Role;

/// The KV prefix of serving leases.
pub const KEY_PREFIX: &str = "habeat/serving/";

/// Whether this node holds a serving lease: `lease.enabled`, on the
/// primary side, with the appserver or proxyserver role, and its own mail
/// host named (`<whoami>.appserver_vmname`). `None`: no lease.
pub fn lease_key(cfg: &Config) -> Option<String> {
    if !cfg.lease.enabled || cfg.local.whoami != "primary" {
        return None;
    }
    if !cfg
        .local
        .roles
        .iter()
        .any(|r| matches!(r, Role::Appserver | Role::Proxyserver))
    {
        return None;
    }
    let host = cfg.dcs.get(&cfg.local.whoami)?.appserver_vmname.clone()?;
    Some(key(&host))
}

/// The serving lease key of a mail host.
pub fn key(mail_host: &str) -> String {
    format!("{KEY_PREFIX}{mail_host}")
}
