//! Strict JSON, shared by everything that decides on a JSON answer from
//! outside (the Consul client, the carbonio driver).
//!
//! serde_json keeps the *last* of two equal keys of an object, and a struct
//! derived with serde refuses a repeated field only among the fields it
//! knows, and only at its own level. An answer such as
//! `{"response": {"values": []}, "response": {"values": [...]}}` is
//! ambiguous: two readers of it may act on different halves. habeat
//! refuses such a body outright, at every nesting level, before it reads
//! it for meaning: [`refuse_duplicate_keys`] walks the whole value without
//! building it (memory: the keys of the objects on the current path).

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// Check that no object anywhere in the first JSON value of `bytes` has a
/// key twice (keys compared after unescaping, so `"a"` and `"\u0061"` are
/// the same key). Text after that value is not looked at; a syntax error is
/// an error. The error names the key and, through serde_json, the line and
/// column of its second appearance.
pub fn refuse_duplicate_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Unique {
        path: &mut Vec::new(),
    }
    .deserialize(&mut de)
}

/// [`serde_json::from_slice`] that first refuses duplicate keys at every
/// level ([`refuse_duplicate_keys`]).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    refuse_duplicate_keys(bytes)?;
    serde_json::from_slice(bytes)
}

/// Accepts any JSON value whose objects have unique keys. `path` is where
/// in the document it is, for the message.
struct Unique<'p> {
    path: &'p mut Vec<String>,
}

impl Unique<'_> {
    fn here(&self) -> String {
        if self.path.is_empty() {
            "the top-level object".to_owned()
        } else {
            format!("the object at {}", self.path.concat())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            self.path.push(format!("[{i}]"));
            let more = seq.next_element_seed(Unique { path: self.path })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if keys.contains(&key) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in {}",
                    self.here()
                )));
            }
            self.path.push(format!(".{key}"));
            let r = map.next_value_seed(Unique { path: self.path });
            self.path.pop();
            r?;
            keys.insert(key);
        }
        Ok(())
    }
}

/// An object key, borrowed from the input where it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_keys_pass_at_any_depth() {
        for ok in [
            &br#"{"a": 1, "b": {"a": 2, "c": [{"a": 3}, {"a": 4}]}}"#[..],
            br#"[1, "x", null, true, 2.5, -3, {"k": {}}]"#,
            br#""just a string""#,
            br#"{"a": 1} trailing text is the caller's business"#,
        ] {
            if let Err(e) = refuse_duplicate_keys(ok) {
                panic!("{}: {e}", String::from_utf8_lossy(ok));
            }
        }
    }

    #[test]
    fn a_repeated_key_is_refused_at_every_level_and_named() {
        for (bad, key, at) in [
            (
                &br#"{"response": {"values": []}, "response": {"values": [1]}}"#[..],
                "response",
                "the top-level object",
            ),
            (
                br#"{"response": {"values": [], "values": [1]}}"#,
                "values",
                "the object at .response",
            ),
            (
                br#"{"r": {"values": [{"n": "a"}, {"n": "b", "n": "c"}]}}"#,
                "n",
                "the object at .r.values[1]",
            ),
            (br#"{"a": 1, "\u0061": 2}"#, "a", "the top-level object"),
        ] {
            let e = refuse_duplicate_keys(bad).expect_err(key).to_string();
            assert!(
                e.contains(&format!("the key {key:?} appears twice in {at}")),
                "{e}"
            );
            assert!(e.contains("line 1"), "{e}");
        }
    }

    #[test]
    fn syntax_errors_and_deep_nesting_are_errors_not_crashes() {
        assert!(refuse_duplicate_keys(br#"{"a": "#).is_err());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(refuse_duplicate_keys(deep.as_bytes()).is_err());
    }

    #[test]
    fn from_slice_refuses_what_a_derived_struct_would_take() {
        #[derive(serde::Deserialize, Debug)]
        struct Member {
            #[allow(dead_code)]
            #[serde(rename = "Tags")]
            tags: std::collections::BTreeMap<String, String>,
        }
        let body = br#"{"Tags": {"role": "node", "role": "consul"}}"#;
        assert!(
            serde_json::from_slice::<Member>(body).is_ok(),
            "serde alone"
        );
        assert!(from_slice::<Member>(body).is_err());
    }
}
