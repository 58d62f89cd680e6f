//! The status JSON with every account of the last replica survey
//! (`status --json --accounts all`, `/status?accounts=all`): the body the
//! daemon serialized for the round, with `replicas.accounts` written into
//! it straight from the survey, so that the list is never a JSON tree.

use crate::survey::show::AllAccounts;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

/// `body` (a status JSON) with `replicas.accounts` listing `accounts`,
/// keys still sorted; a trailing newline.
pub fn with_all_accounts(
    body: &[u8],
    accounts: &AllAccounts,
) -> Result<Vec<u8>, serde_json::Error> {
    let status: Value = serde_json::from_slice(body)?;
    let mut out = serde_json::to_vec(&WithAll {
        status: &status,
        accounts,
    })?;
    out.push(b'\n');
    Ok(out)
}

struct WithAll<'a> {
    status: &'a Value,
    accounts: &'a AllAccounts,
}

impl Serialize for WithAll<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(top) = self.status else {
            return self.status.serialize(s);
        };
        let mut map = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match v {
                Value::Object(replicas) if k == "replicas" => map.serialize_entry(
                    k,
                    &Replicas {
                        replicas,
                        accounts: self.accounts,
                    },
                )?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

struct Replicas<'a> {
    replicas: &'a serde_json::Map<String, Value>,
    accounts: &'a AllAccounts,
}

impl Serialize for Replicas<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const KEY: &str = "accounts";
        let mut map = s.serialize_map(None)?;
        let mut written = false;
        for (k, v) in self.replicas {
            if !written && k.as_str() >= KEY {
                map.serialize_entry(KEY, self.accounts)?;
                written = true;
            }
            if k != KEY {
                map.serialize_entry(k, v)?;
            }
        }
        if !written {
            map.serialize_entry(KEY, self.accounts)?;
        }
        map.end()
    }
}
