//! The YAML layer: text to a tree of values that each know their line and
//! column.
//!
//! Why a tree and not `#[derive(Deserialize)]` structs: the datacenter
//! blocks have names chosen by the operator (`primary`, `secondary`), an
//! unknown key must be reported with the nearest valid one, and every
//! message must point at a line and column. A small spanned tree, walked by
//! hand in [`super::load`], gives all three with one uniform message style;
//! serde's `flatten` would lose the spans and its messages are written for
//! programmers.
//!
//! Parsing uses serde-saphyr with a tight [`Budget`]: a configuration file is
//! a few hundred lines, so anything that expands into more than a few
//! thousand events (an alias bomb, runaway nesting) is refused before it can
//! eat memory.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, Location, Options, Spanned};
use std::fmt;

/// A line and column in the configuration file, both starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    /// The start of the file: where problems without a better place point.
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn from_location(l: &Location) -> Pos {
        // Location::UNKNOWN is line 0; never print "0:0" to an operator.
        Pos {
            line: l.line().max(1),
            column: l.column().max(1),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// The shapes a YAML value can take once its scalar type is resolved
/// (YAML 1.1 booleans such as `yes`/`no` included, as the Python habeat
/// accepted them).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// How the value is described to the operator in a type error. The
    /// value itself is never shown (it may be the Consul token).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (an empty value)",
            Value::Bool(_) => "true/false",
            Value::Int(_) => "a number",
            Value::Float(_) => "a decimal number",
            Value::Str(_) => "text",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping (key: value lines)",
        }
    }
}

/// A YAML syntax or resource problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Limits far above any real habeat.yml (a few hundred events) and far
/// below what would hurt the host.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_reader_input_bytes = Some(MAX_FILE_BYTES);
    budget.max_events = 20_000;
    budget.max_aliases = 200;
    budget.max_anchors = 200;
    budget.max_depth = 32;
    budget.max_documents = 1;
    budget.max_nodes = 10_000;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES;
    budget.max_merge_keys = 200;
    let mut opts = Options::default();
    opts.budget = Some(budget);
    opts.alias_limits.max_total_replayed_events = 10_000;
    opts.alias_limits.max_replay_stack_depth = 16;
    opts.alias_limits.max_alias_expansions_per_anchor = 200;
    opts.with_snippet = false;
    opts
}

/// Largest configuration file habeat reads (1 MiB; real ones are ~5 KiB).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Parse one YAML document into a spanned tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options()) {
        Ok(root) => Ok(root.into_node()),
        Err(e) => Err(describe(&e)),
    }
}

/// Turn a serde-saphyr error into one sentence for the operator: what is
/// wrong and what to do, without the library's hints for programmers.
fn describe(e: &serde_saphyr::Error) -> SyntaxError {
    use serde_saphyr::Error as E;
    let pos = e
        .location()
        .map(|l| Pos::from_location(&l))
        .unwrap_or(Pos::START);
    // Alias and snippet wrappers hide the kind of the original error.
    let mut inner = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let raw = inner.to_string();
    let text = strip_location_suffix(&raw);
    // Some limits reach us re-wrapped as a plain message: match the text too.
    let lower = text.to_ascii_lowercase();
    let expansion = matches!(
        inner,
        E::Budget { .. }
            | E::AliasReplayCounterOverflow { .. }
            | E::AliasReplayLimitExceeded { .. }
            | E::AliasExpansionLimitExceeded { .. }
            | E::AliasReplayStackDepthExceeded { .. }
    ) || lower.contains("budget")
        || (lower.contains("alias") && (lower.contains("limit") || lower.contains("exceeded")));
    let message = match inner {
        E::MultipleDocuments { .. } => several_documents(),
        _ if lower.contains("documents") => several_documents(),
        _ if expansion => format!(
            "the YAML expands to far more than a configuration needs \
             ({text}): an alias bomb or runaway nesting; write the values out \
             instead of repeating anchors"
        ),
        E::InvalidUtf8Input => {
            "the file is not UTF-8 text; save it as UTF-8 (plain ASCII is fine)".to_string()
        }
        _ if text.contains("duplicate mapping key") => {
            let key = text
                .split("duplicate mapping key:")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .map(str::trim)
                .unwrap_or("");
            format!("key `{key}` appears twice in the same section; keep one of them")
        }
        _ => format!(
            "not valid YAML: {text}; check the indentation (spaces, not tabs) \
             and the quoting around this place"
        ),
    };
    SyntaxError { pos, message }
}

fn several_documents() -> String {
    "the file holds more than one YAML document (a second `---`); keep a single document".into()
}

/// serde-saphyr appends " at line L, column C" (and for aliases, where
/// the anchor was defined); we print the place first.
fn strip_location_suffix(s: &str) -> &str {
    match s.find(" at line ") {
        Some(i) if s[i..].contains(", column ") => &s[..i],
        _ => s,
    }
}

/// The tree as serde-saphyr hands it over (positions in `Spanned`).
#[derive(Debug)]
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

trait IntoNode {
    fn into_node(self) -> Node;
}

impl IntoNode for Spanned<Raw> {
    fn into_node(self) -> Node {
        let pos = Pos::from_location(&self.referenced);
        let value = match self.value {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Int(i) => Value::Int(i),
            Raw::Float(f) => Value::Float(f),
            Raw::Str(s) => Value::Str(s),
            Raw::Seq(items) => Value::Seq(items.into_iter().map(IntoNode::into_node).collect()),
            Raw::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                pos: Pos::from_location(&k.referenced),
                                name: k.value,
                            },
                            v.into_node(),
                        )
                    })
                    .collect(),
            ),
        };
        Node { value, pos }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Raw, E> {
                Ok(Raw::Int(i.into()))
            }
            fn visit_u64<E>(self, i: u64) -> Result<Raw, E> {
                Ok(Raw::Int(i.into()))
            }
            fn visit_i128<E>(self, i: i128) -> Result<Raw, E> {
                Ok(Raw::Int(i))
            }
            fn visit_u128<E: serde::de::Error>(self, i: u128) -> Result<Raw, E> {
                i128::try_from(i)
                    .map(Raw::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Raw, E> {
                Ok(Raw::Float(f))
            }
            fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
                Ok(Raw::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Raw, E> {
                Ok(Raw::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Raw::Map(entries))
            }
        }
        d.deserialize_any(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_point_at_values() {
        let n = parse("a:\n  b: 5\n").unwrap();
        let Value::Map(top) = &n.value else { panic!() };
        assert_eq!(top[0].0.pos, Pos { line: 1, column: 1 });
        let Value::Map(inner) = &top[0].1.value else {
            panic!()
        };
        assert_eq!(inner[0].1.value, Value::Int(5));
        assert_eq!(inner[0].1.pos, Pos { line: 2, column: 6 });
    }

    #[test]
    fn yaml11_booleans_and_nulls_resolve_like_pyyaml() {
        let n = parse("a: yes\nb: no\nc:\nd: ~\ne: \"yes\"\n").unwrap();
        let Value::Map(m) = n.value else { panic!() };
        let vals: Vec<_> = m.into_iter().map(|(_, v)| v.value).collect();
        assert_eq!(
            vals,
            vec![
                Value::Bool(true),
                Value::Bool(false),
                Value::Null,
                Value::Null,
                Value::Str("yes".into())
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_named() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, column: 1 });
        assert!(e.message.contains("key `a` appears twice"), "{}", e.message);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            s.push_str(&format!(
                "{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let e = parse(&s).unwrap_err();
        assert!(e.message.contains("alias bomb"), "{}", e.message);
    }
}
