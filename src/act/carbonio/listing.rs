//! Reading the CLI's `--json` output: exactly one JSON object with a
//! `response` (no key twice, no `"ok": false`), the `getAccountStatus`
//! listing entry by entry, and `getAllOperations`.

use super::entry::{Entry, Fields, check, truncate};
use super::scan;
use super::{AccountName, MailHost};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// One account as `getAccountStatus` reports it (fields of the User Mail
/// Replica documentation; the ones habeat does not use are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountStatus {
    /// `accountId` (a UUID), kept as reported.
    pub account_id: String,
    /// `accountName`, validated.
    pub account_name: AccountName,
    /// `accountMailHost`: always the host that was asked about.
    pub account_mail_host: MailHost,
    /// Replication paused on the source.
    pub paused: bool,
    /// `sequence` on the source (its MariaDB), when reported.
    pub sequence: Option<u64>,
    /// `itemId`, the highest item id on the source, when reported.
    pub item_id: Option<u64>,
    /// Where the account is replicated (`replicas`).
    pub replicas: Vec<Replica>,
    /// The survey's counters (`sequence`, `itemId`) that were numbers but
    /// no position (see [`parse_survey_listing`]): read as unknown.
    pub unreadable: Vec<&'static str>,
}

/// One replica of an account. Informational only: nothing here is passed
/// to a command, so fields are kept as reported (absent ones are `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    /// The mailstore holding the replica.
    pub destination: Option<String>,
    /// Whether the replica can be promoted.
    pub available: Option<bool>,
    /// Lower is preferred by promotion.
    pub priority: Option<i64>,
    /// `sequence` on the replica.
    pub sequence: Option<u64>,
    /// `itemId`, the highest item id on the replica.
    pub item_id: Option<u64>,
    /// `canConnectToKafka`: whether the replica receives the event stream.
    pub can_connect_to_kafka: Option<bool>,
    /// `paused`, where a release reports it per replica.
    pub paused: Option<bool>,
    /// As [`AccountStatus::unreadable`], for this replica.
    pub unreadable: Vec<&'static str>,
}

/// One running operation of `core getAllOperations` (whose exact fields
/// vary between releases: the whole object is kept in `raw`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// `id` / `operationId`, when present.
    pub id: Option<String>,
    /// `name` / `operationName` / `description`, when present.
    pub name: Option<String>,
    /// The whole entry as printed.
    pub raw: Value,
}

/// The strict reading of a `--json` output: exactly one JSON object
/// (surrounding whitespace allowed), holding a `response`. Returns the
/// `response` value.
pub fn parse_response(stdout: &[u8]) -> Result<Value, String> {
    let raw = response_raw(stdout)?;
    serde_json::from_str(raw.get()).map_err(|e| format!("the output is not valid JSON ({e})"))
}

/// An object's members, their values left unparsed (borrowed from the
/// output), so that a listing of 100k accounts is never one tree in memory.
type RawObject<'a> = BTreeMap<String, &'a RawValue>;

/// The checks of [`parse_response`]; returns `response` unparsed.
pub(super) fn response_raw(stdout: &[u8]) -> Result<&RawValue, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "the output is not UTF-8".to_owned())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the output is empty (expected a JSON object)".into());
    }
    if !trimmed.starts_with('{') {
        let first = trimmed.lines().next().unwrap_or_default();
        return Err(format!(
            "the output does not start with a JSON object (first line: {:?})",
            truncate(first, 200)
        ));
    }
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<&RawValue>();
    let value = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(format!("the output is not valid JSON ({e})")),
        None => return Err("the output is empty (expected a JSON object)".into()),
    };
    let end = stream.byte_offset();
    let rest = trimmed[end..].trim();
    if !rest.is_empty() {
        return Err(format!(
            "there is text after the JSON object ({:?})",
            truncate(rest, 200)
        ));
    }
    // serde_json keeps the last of two equal keys: a body with two
    // `response`s (or two `values`) is ambiguous, not an answer.
    crate::json::refuse_duplicate_keys(&trimmed.as_bytes()[..end])
        .map_err(|e| format!("the JSON is ambiguous ({e})"))?;
    let obj: RawObject =
        serde_json::from_str(value.get()).map_err(|_| "the JSON is not an object".to_owned())?;
    refuse_not_ok(&obj, "")?;
    match obj.get("response") {
        None => Err("the JSON object has no \"response\"".into()),
        Some(r) if r.get() == "null" => Err("the JSON object has no \"response\"".into()),
        Some(r) => {
            if let Ok(inner) = serde_json::from_str::<RawObject>(r.get()) {
                refuse_not_ok(&inner, "response.")?;
            }
            Ok(r)
        }
    }
}

/// `getAccountStatus` output read as [`parse_response`] and
/// [`parse_account_status`] read it, one account entry at a time: peak
/// memory is the output and the result, not a JSON tree of the whole
/// listing (263 MiB at 100k accounts).
pub fn parse_account_listing(stdout: &[u8], host: &MailHost) -> Result<Vec<AccountStatus>, String> {
    parse_listing(stdout, host, Fields::Lenient)
}

/// The survey's reading of the same output: as [`parse_account_listing`],
/// and every replica field (`sequence`, `itemId`, `available`,
/// `canConnectToKafka`, `paused`, `priority`, `destination`) must be of a
/// type a server could send (a number or a numeric string, a boolean or
/// `"true"`/`"false"`, a non-negative whole number for counters), or the
/// whole survey is refused with the account and field named. Fields habeat
/// does not know are ignored.
///
/// One judgement instead of a refusal: a counter that is a number but no
/// position a server could hold — negative (`-5`), fractional (`1.5`),
/// beyond 2^53 as a float or beyond u64 (`2^64`) — makes that account's
/// position unknown (`unreadable` names the field; the survey classes the
/// account at risk, "sequence unreadable"), since one odd account must
/// not blind the operator to all the others. `NaN` is not JSON (the whole
/// output is refused), and the string `"NaN"` or `"twelve"` is no number
/// (refused, the field named). Output that is not one JSON object (text
/// before it), an account on another `mailHost` than the one asked, or
/// output over the capture cap fail the whole survey: they say the answer
/// is not the listing asked for.
pub fn parse_survey_listing(stdout: &[u8], host: &MailHost) -> Result<Vec<AccountStatus>, String> {
    parse_listing(stdout, host, Fields::Strict)
}

pub(super) fn parse_listing(
    stdout: &[u8],
    host: &MailHost,
    fields: Fields,
) -> Result<Vec<AccountStatus>, String> {
    scan::listing(stdout, |e| AccountStatus::check(e, host, fields).ok())
        .map_or_else(|| parse_listing_whole(stdout, host, fields), Ok)
}

/// The reference reading of a listing, which words every error: the
/// output checked whole, then each entry built as a tree. Only output
/// that [`scan::listing`] did not take as a listing comes here.
pub(super) fn parse_listing_whole(
    stdout: &[u8],
    host: &MailHost,
    fields: Fields,
) -> Result<Vec<AccountStatus>, String> {
    let response = response_raw(stdout)?;
    let values = serde_json::from_str::<RawObject>(response.get())
        .ok()
        .and_then(|r| r.get("values").copied())
        .ok_or("the response has no \"values\" list")?;
    let entries: Vec<&RawValue> = serde_json::from_str(values.get())
        .map_err(|_| "\"values\" in the response is not a list".to_owned())?;
    entries
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_str::<Value>(raw.get())
                .map_err(|e| e.to_string())
                .and_then(|v| parse_account(&v, host, fields))
                .map_err(|e| format!("account entry {}: {e}", i + 1))
        })
        .collect()
}

/// The CLI's own verdict: an object saying `"ok": false` reports a
/// failure, whatever else it holds; an `ok` that is not a boolean is not
/// trusted either. (No `ok` at all is fine: not every release prints it.)
fn refuse_not_ok(obj: &RawObject, at: &str) -> Result<(), String> {
    let value = |k: &str| {
        obj.get(k)
            .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
    };
    match value("ok") {
        None if !obj.contains_key("ok") => Ok(()),
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::Bool(false)) => {
            let why = ["error", "message", "exception", "errors"]
                .iter()
                .find_map(|k| value(k))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .map(|m| format!(": {}", truncate(&m, 300)))
                .unwrap_or_default();
            Err(format!(
                "the CLI reported a failure (\"{at}ok\": false){why}"
            ))
        }
        other => Err(format!(
            "\"{at}ok\" is {}, not true or false",
            truncate(&other.unwrap_or_default().to_string(), 50)
        )),
    }
}

/// The `values` list of a CLI's `response`, or why there is none.
pub(super) fn values_of(response: &Value) -> Result<&Vec<Value>, String> {
    response
        .get("values")
        .ok_or("the response has no \"values\" list")?
        .as_array()
        .ok_or_else(|| "\"values\" in the response is not a list".to_owned())
}

/// `response.values` of `getAccountStatus`, every entry validated and on
/// the host that was asked about.
pub fn parse_account_status(
    response: &Value,
    host: &MailHost,
) -> Result<Vec<AccountStatus>, String> {
    values_of(response)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            parse_account(v, host, Fields::Lenient)
                .map_err(|e| format!("account entry {}: {e}", i + 1))
        })
        .collect()
}

pub(super) fn parse_account(
    v: &Value,
    host: &MailHost,
    fields: Fields,
) -> Result<AccountStatus, String> {
    AccountStatus::check(&Entry::of(v)?, host, fields)
}

impl AccountStatus {
    /// [`check`] an entry and keep all of it.
    pub(super) fn check(e: &Entry<'_>, host: &MailHost, fields: Fields) -> Result<Self, String> {
        let mut replicas = Vec::new();
        let c = check(e, host, fields, |r| {
            replicas.push(Replica {
                destination: r.destination.map(str::to_owned),
                available: r.available,
                priority: r.priority,
                sequence: r.sequence,
                item_id: r.item_id,
                can_connect_to_kafka: r.can_connect_to_kafka,
                paused: r.paused,
                unreadable: r.unreadable,
            });
        })?;
        Ok(AccountStatus {
            account_id: c.account_id.to_owned(),
            account_name: c.account_name,
            account_mail_host: host.clone(),
            paused: c.paused,
            sequence: c.sequence,
            item_id: c.item_id,
            replicas,
            unreadable: c.unreadable,
        })
    }
}

/// The operations list of `core getAllOperations`: an `operations` (or
/// `values`) list in the response.
pub fn parse_operations(response: &Value) -> Result<Vec<Operation>, String> {
    let list = ["operations", "values"]
        .iter()
        .find_map(|k| response.get(*k))
        .ok_or("the response has no \"operations\" list")?
        .as_array()
        .ok_or("the operations in the response are not a list")?;
    let field = |v: &Value, keys: &[&str]| {
        keys.iter().find_map(|k| v.get(*k)).map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    Ok(list
        .iter()
        .map(|v| Operation {
            id: field(v, &["id", "operationId"]),
            name: field(v, &["name", "operationName", "description"]),
            raw: v.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> MailHost {
        MailHost::parse("mbox1.example.com").expect("valid")
    }

    #[test]
    fn strict_json_accepts_exactly_one_object_with_a_response() {
        assert!(parse_response(b" {\"response\": {\"values\": []}}\n").is_ok());
        assert!(parse_response(b"{\"ok\": true, \"response\": {\"values\": []}}").is_ok());
        for (bad, why) in [
            (&b""[..], "empty"),
            (
                b"INFO starting\n{\"response\": {}}",
                "does not start with a JSON object",
            ),
            (
                b"{\"response\": {}}\nWARN done",
                "text after the JSON object",
            ),
            (b"{\"response\": {}", "not valid JSON"),
            (b"[1,2]", "does not start with a JSON object"),
            (b"{\"values\": []}", "no \"response\""),
            (b"{\"response\": null}", "no \"response\""),
            (b"\xff\xfe", "not UTF-8"),
            (
                b"{\"response\": {\"values\": []}, \"response\": {\"values\": [1]}}",
                "the key \"response\" appears twice",
            ),
            (
                b"{\"response\": {\"values\": [{\"accountName\": \"a@x\", \"accountName\": \"b@x\"}]}}",
                "appears twice in the object at .response.values[0]",
            ),
            (
                b"{\"ok\": false, \"error\": \"no such module\", \"response\": {\"values\": []}}",
                "reported a failure (\"ok\": false): no such module",
            ),
            (
                b"{\"response\": {\"ok\": false, \"values\": []}}",
                "(\"response.ok\": false)",
            ),
            (b"{\"ok\": \"no\", \"response\": {}}", "not true or false"),
        ] {
            let e = parse_response(bad).expect_err(why);
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn account_entries_are_validated_and_must_be_on_the_asked_host() {
        let ok = serde_json::json!({"values": [{
            "accountId": "9e94", "accountName": "u@example.com",
            "accountMailHost": "MBOX1.example.com", "paused": "false",
            "replicas": [{"destination": "mbox2.example.com", "available": true, "priority": "10"}]
        }]});
        let list = parse_account_status(&ok, &host()).expect("valid");
        assert_eq!(list[0].account_name.as_str(), "u@example.com");
        assert_eq!(list[0].replicas[0].priority, Some(10));
        assert!(!list[0].paused);

        let other = serde_json::json!({"values": [{
            "accountId": "1", "accountName": "u@example.com", "accountMailHost": "mbox2.example.com"
        }]});
        let e = parse_account_status(&other, &host()).expect_err("other host");
        assert!(e.contains("not on mbox1.example.com"), "{e}");

        let missing = serde_json::json!({"values": [{"accountName": "u@example.com"}]});
        let e = parse_account_status(&missing, &host()).expect_err("missing host");
        assert!(e.contains("accountMailHost"), "{e}");

        let e = parse_account_status(&serde_json::json!({}), &host()).expect_err("no values");
        assert!(e.contains("no \"values\""), "{e}");
    }

    #[test]
    fn the_listing_read_entry_by_entry_says_what_the_whole_tree_reading_says() {
        let entry = |name: &str, host: &str| {
            serde_json::json!({"accountId": "9e94", "accountName": name,
                "accountMailHost": host, "paused": "false",
                "replicas": [{"destination": "mbox2.example.com", "available": true, "priority": "10"}]})
        };
        for response in [
            serde_json::json!({"values": [entry("u@example.com", "MBOX1.example.com"),
                                          entry("v@example.com", "mbox1.example.com")]}),
            serde_json::json!({"values": []}),
            serde_json::json!({"values": [entry("u@example.com", "mbox2.example.com")]}),
            serde_json::json!({"values": [{"accountName": "u@example.com"}]}),
            serde_json::json!({"values": [entry("u@example.com", "mbox1.example.com"), 7]}),
            serde_json::json!({"values": null}),
            serde_json::json!({"values": {"a": 1}}),
            serde_json::json!({}),
            serde_json::json!([1, 2]),
            serde_json::json!("text"),
        ] {
            let body = serde_json::json!({ "response": response.clone() }).to_string();
            let whole =
                parse_response(body.as_bytes()).and_then(|r| parse_account_status(&r, &host()));
            let by_entry = parse_account_listing(body.as_bytes(), &host());
            assert_eq!(by_entry, whole, "{body}");
        }
        for bad in [
            &b"{\"response\": null}"[..],
            b"{\"ok\": false, \"response\": {\"values\": []}}",
        ] {
            assert_eq!(
                parse_account_listing(bad, &host()),
                parse_response(bad).map(|_| Vec::new())
            );
        }
    }
}
