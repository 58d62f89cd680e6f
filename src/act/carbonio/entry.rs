//! One `getAccountStatus` account entry, read by the same rules whichever
//! way it was parsed: from a `serde_json::Value` (the reference reading,
//! which also words every error) or field by field while the listing
//! streams past ([`super::scan`], which builds no tree). Both fill an
//! [`Entry`] and [`check`] decides on it, so the two readings cannot
//! disagree about what is valid.

use super::{AccountName, MailHost};
use serde_json::{Number, Value};
use std::borrow::Cow;

/// How [`check`] treats a replica field that makes no sense (a
/// `sequence` of `"abc"` or `-3`, an `available` of `"maybe"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fields {
    /// The promotion's listing: such a field is unknown (`None`), since
    /// nothing of it reaches a command and the names alone decide.
    Lenient,
    /// The survey: the output is refused with the field named, so that a
    /// nonsense value is never classified as healthy or as behind.
    Strict,
}

/// One field's value as the rules read it: a scalar as JSON has it, or a
/// list or object, which no field habeat reads may be (`replicas` aside).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Field<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
    /// A list or an object: the tree when the entry was built as one, to
    /// quote it in a message (the streaming reading never words errors).
    Compound(Option<&'a Value>),
}

impl<'a> Field<'a> {
    pub(super) fn of(v: &'a Value) -> Field<'a> {
        match v {
            Value::Null => Field::Null,
            Value::Bool(b) => Field::Bool(*b),
            Value::Number(n) => Field::Num(n.clone()),
            Value::String(s) => Field::Str(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Field::Compound(Some(v)),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    /// As `Value::to_string` prints it (compact JSON).
    fn shown(&self) -> String {
        match self {
            Field::Null => "null".into(),
            Field::Bool(b) => b.to_string(),
            Field::Num(n) => n.to_string(),
            Field::Str(s) => Value::String(s.to_string()).to_string(),
            Field::Compound(Some(v)) => v.to_string(),
            Field::Compound(None) => "a list or an object".into(),
        }
    }
}

/// The fields of one account entry habeat reads (`None`: absent). Other
/// fields are not kept.
#[derive(Debug, Default)]
pub(super) struct Entry<'a> {
    pub account_id: Option<Field<'a>>,
    pub account_name: Option<Field<'a>>,
    pub account_mail_host: Option<Field<'a>>,
    pub paused: Option<Field<'a>>,
    pub sequence: Option<Field<'a>>,
    pub item_id: Option<Field<'a>>,
    pub replicas: Replicas<'a>,
}

/// An entry's `replicas`.
#[derive(Debug, Default)]
pub(super) enum Replicas<'a> {
    /// Absent or `null`.
    #[default]
    None,
    /// A list; `None` for an element that is not an object.
    List(Vec<Option<ReplicaFields<'a>>>),
    /// Anything else.
    NotList,
}

/// The fields of one replica habeat reads.
#[derive(Debug, Default)]
pub(super) struct ReplicaFields<'a> {
    pub destination: Option<Field<'a>>,
    pub available: Option<Field<'a>>,
    pub priority: Option<Field<'a>>,
    pub sequence: Option<Field<'a>>,
    pub item_id: Option<Field<'a>>,
    pub can_connect_to_kafka: Option<Field<'a>>,
    pub paused: Option<Field<'a>>,
}

impl<'a> Entry<'a> {
    /// Empty this entry for the next account, and hand back its list of
    /// replicas emptied, for that account's to reuse: one entry is filled
    /// in place for each account in turn (moving it costs more than
    /// reading some of its fields).
    pub(super) fn recycle(&mut self) -> Vec<Option<ReplicaFields<'a>>> {
        let spare = match std::mem::take(&mut self.replicas) {
            Replicas::List(mut list) => {
                list.clear();
                list
            }
            _ => Vec::new(),
        };
        *self = Entry::default();
        spare
    }

    /// The entry of a parsed tree.
    pub(super) fn of(v: &'a Value) -> Result<Entry<'a>, String> {
        let obj = v.as_object().ok_or("it is not an object")?;
        let get = |k: &str| obj.get(k).map(Field::of);
        let replicas = match obj.get("replicas") {
            None | Some(Value::Null) => Replicas::None,
            Some(Value::Array(rs)) => Replicas::List(
                rs.iter()
                    .map(|r| {
                        let r = r.as_object()?;
                        let get = |k: &str| r.get(k).map(Field::of);
                        Some(ReplicaFields {
                            destination: get("destination"),
                            available: get("available"),
                            priority: get("priority"),
                            sequence: get("sequence"),
                            item_id: get("itemId"),
                            can_connect_to_kafka: get("canConnectToKafka"),
                            paused: get("paused"),
                        })
                    })
                    .collect(),
            ),
            Some(_) => Replicas::NotList,
        };
        Ok(Entry {
            account_id: get("accountId"),
            account_name: get("accountName"),
            account_mail_host: get("accountMailHost"),
            paused: get("paused"),
            sequence: get("sequence"),
            item_id: get("itemId"),
            replicas,
        })
    }
}

/// An entry that passed [`check`], its strings borrowed from the entry.
#[derive(Debug)]
pub(super) struct Checked<'e> {
    pub account_id: &'e str,
    pub account_name: AccountName,
    pub paused: bool,
    pub sequence: Option<u64>,
    pub item_id: Option<u64>,
    /// How many replicas (each was handed to [`check`]'s `replica`).
    pub replicas: usize,
    /// Counters that were numbers but no position (see
    /// [`super::parse_survey_listing`]).
    pub unreadable: Vec<&'static str>,
}

/// A replica of a [`Checked`] entry.
#[derive(Debug, Clone)]
pub(super) struct CheckedReplica<'e> {
    pub destination: Option<&'e str>,
    pub available: Option<bool>,
    pub priority: Option<i64>,
    pub sequence: Option<u64>,
    pub item_id: Option<u64>,
    pub can_connect_to_kafka: Option<bool>,
    pub paused: Option<bool>,
    pub unreadable: Vec<&'static str>,
}

/// The replica a promotion would use: the lowest `priority`, the first
/// listed on a tie or when none is given. Offered each replica in order.
#[derive(Debug, Default)]
pub(super) struct Promoted<'e>(pub Option<CheckedReplica<'e>>);

impl<'e> Promoted<'e> {
    pub(super) fn offer(&mut self, r: CheckedReplica<'e>) {
        let rank = |r: &CheckedReplica<'_>| r.priority.unwrap_or(i64::MAX);
        if self.0.as_ref().is_none_or(|best| rank(&r) < rank(best)) {
            self.0 = Some(r);
        }
    }
}

/// Where in an entry a field is, for a message: `replica 2: ` (or nothing
/// for the account's own fields). Worded only when a message is.
#[derive(Clone, Copy)]
struct At(Option<usize>);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(i) => write!(f, "replica {}: ", i + 1),
            None => Ok(()),
        }
    }
}

/// Validate an entry: names, the asked host, and each field by `fields`;
/// each replica is handed to `replica` in order as it passes. The error
/// names the account (once its name is known) and the field.
pub(super) fn check<'e>(
    e: &'e Entry<'_>,
    host: &MailHost,
    fields: Fields,
    mut replica: impl FnMut(CheckedReplica<'e>),
) -> Result<Checked<'e>, String> {
    let text = |f: &'e Option<Field<'_>>, key: &str| -> Result<&'e str, String> {
        f.as_ref()
            .ok_or_else(|| format!("\"{key}\" is missing"))?
            .as_str()
            .ok_or_else(|| format!("\"{key}\" is not a string"))
    };
    let name = text(&e.account_name, "accountName")?;
    let account_name = AccountName::parse(name).map_err(|err| err.to_string())?;
    let reported = text(&e.account_mail_host, "accountMailHost")
        .map_err(|err| format!("{account_name}: {err}"))?;
    // The common case without an allocation: the host asked for, in any
    // case (what `MailHost::parse` would accept and lower-case to it).
    if !reported.eq_ignore_ascii_case(host.as_str()) {
        let account_mail_host =
            MailHost::parse(reported).map_err(|err| format!("{account_name}: {err}"))?;
        if &account_mail_host != host {
            return Err(format!(
                "{account_name} is reported on mail host {account_mail_host}, not on {host} as asked"
            ));
        }
    }
    let account_id =
        text(&e.account_id, "accountId").map_err(|err| format!("{account_name}: {err}"))?;
    let paused = match &e.paused {
        None | Some(Field::Null) => false,
        Some(p) => loose_bool(p)
            .ok_or_else(|| format!("{account_name}: \"paused\" is not true or false"))?,
    };
    let flag = |f: &Option<Field<'_>>, key: &str, at: At| {
        field(f, key, fields, at, "true or false", loose_bool)
    };
    let mut unreadable = Vec::new();
    let sequence = counter(&e.sequence, "sequence", fields, At(None), &mut unreadable)
        .map_err(|err| format!("{account_name}: {err}"))?;
    let item_id = counter(&e.item_id, "itemId", fields, At(None), &mut unreadable)
        .map_err(|err| format!("{account_name}: {err}"))?;
    let replicas = match &e.replicas {
        Replicas::None => 0,
        Replicas::NotList => return Err(format!("{account_name}: \"replicas\" is not a list")),
        Replicas::List(rs) => {
            let mut n = 0;
            for (i, r) in rs.iter().enumerate() {
                let at = At(Some(i));
                let Some(r) = r else {
                    if fields == Fields::Strict {
                        return Err(format!("{account_name}: {at}it is not an object"));
                    }
                    continue;
                };
                let mut odd = Vec::new();
                let checked = (|| {
                    Ok::<_, String>(CheckedReplica {
                        destination: field(
                            &r.destination,
                            "destination",
                            fields,
                            at,
                            "a host name",
                            Field::as_str,
                        )?,
                        available: flag(&r.available, "available", at)?,
                        priority: field(
                            &r.priority,
                            "priority",
                            fields,
                            at,
                            "a whole number",
                            loose_int,
                        )?,
                        sequence: counter(&r.sequence, "sequence", fields, at, &mut odd)?,
                        item_id: counter(&r.item_id, "itemId", fields, at, &mut odd)?,
                        can_connect_to_kafka: flag(
                            &r.can_connect_to_kafka,
                            "canConnectToKafka",
                            at,
                        )?,
                        paused: flag(&r.paused, "paused", at)?,
                        unreadable: odd,
                    })
                })()
                .map_err(|err| format!("{account_name}: {err}"))?;
                replica(checked);
                n += 1;
            }
            n
        }
    };
    Ok(Checked {
        account_id,
        account_name,
        paused,
        sequence,
        item_id,
        replicas,
        unreadable,
    })
}

/// A counter (`sequence`, `itemId`), read once: [`field`] of
/// [`counter_value`], but in the survey a number that is no position
/// (see [`super::parse_survey_listing`]) is unknown with `key` noted as
/// unreadable instead of refused (a value that is no number at all is
/// still refused).
fn counter(
    f: &Option<Field<'_>>,
    key: &'static str,
    fields: Fields,
    at: At,
    unreadable: &mut Vec<&'static str>,
) -> Result<Option<u64>, String> {
    let Some(v) = f else {
        return Ok(None);
    };
    if let Some(n) = counter_value(v) {
        return Ok(Some(n));
    }
    let numeric = match v {
        Field::Num(_) => true,
        Field::Str(s) => s.trim().parse::<f64>().is_ok_and(f64::is_finite),
        _ => false,
    };
    if fields == Fields::Strict && numeric {
        unreadable.push(key);
        return Ok(None);
    }
    field(
        f,
        key,
        fields,
        at,
        "a whole number of at least 0",
        counter_value,
    )
}

/// One optional field: absent or `null` is `None`; a value `read`
/// understands is `Some`; anything else is `None` when lenient and an
/// error naming the field and what it should be when strict.
fn field<'e, 'a, T>(
    f: &'e Option<Field<'a>>,
    key: &str,
    fields: Fields,
    at: At,
    expected: &str,
    read: impl Fn(&'e Field<'a>) -> Option<T>,
) -> Result<Option<T>, String> {
    match f {
        None | Some(Field::Null) => Ok(None),
        Some(v) => match read(v) {
            Some(t) => Ok(Some(t)),
            None if fields == Fields::Lenient => Ok(None),
            None => Err(format!(
                "{at}\"{key}\" is {}, not {expected}",
                truncate(&v.shown(), 60)
            )),
        },
    }
}

/// A counter (`sequence`, `itemId`): a non-negative whole number, printed
/// as a JSON number (also `12.0`) or as a string of digits.
fn counter_value(v: &Field<'_>) -> Option<u64> {
    match v {
        Field::Num(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        }),
        Field::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `true`/`false`, also when the CLI prints them as strings.
fn loose_bool(v: &Field<'_>) -> Option<bool> {
    match v {
        Field::Bool(b) => Some(*b),
        Field::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Field::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn loose_int(v: &Field<'_>) -> Option<i64> {
    match v {
        Field::Num(n) => n.as_i64(),
        Field::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `s`, cut to `n` characters with an ellipsis: for quoting what a CLI
/// printed in an error message.
pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}
