//! The `getAccountStatus` listing read in one pass, no tree built: each
//! account entry's fields go into an [`Entry`] (strings borrowed from the
//! output) and are handed to the caller as they are read, while the pass
//! checks what the reference reading ([`super::listing`]) checks of the
//! whole output: one JSON object and nothing after it, no key twice in any
//! object, no `ok` but `true` at the top or in `response`, a `response`
//! holding a `values` list.
//!
//! It answers only "this is the listing" (`Some`) or "not sure" (`None`):
//! on `None` the caller reads the output again the reference way, which
//! words the error (or, for output this pass is stricter about, such as
//! Unicode whitespace around the JSON, accepts it). So the errors an
//! operator sees are the reference reading's, and the cost of the tree is
//! paid only for output that is wrong.
//!
//! Held whole, the output is first read by hand over its bytes
//! (`scan/fast.rs`: the same entries, for output as the CLI prints it);
//! serde's pass below reads what that reading is not sure of, and the
//! output read from a pipe.

use super::entry::{Entry, Field, ReplicaFields, Replicas};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

/// Read the listing in `bytes`, calling `each` on every account entry in
/// order; `None` when the output is anything but a valid listing or
/// `each` refuses an entry (returns `None`).
pub(super) fn listing<'de, T>(
    bytes: &'de [u8],
    each: impl FnMut(&Entry<'de>) -> Option<T>,
) -> Option<Vec<T>> {
    listing_restarting(bytes, each, || {})
}

/// [`listing`], for an `each` that keeps what it is handed elsewhere:
/// `restart` is called when the reading starts again from the first entry
/// (the output is read by hand first, and by serde when that reading is
/// not sure of it), to forget what `each` kept.
pub(super) fn listing_restarting<'de, T>(
    bytes: &'de [u8],
    mut each: impl FnMut(&Entry<'de>) -> Option<T>,
    restart: impl FnOnce(),
) -> Option<Vec<T>> {
    // serde_json skips strings it ignores without checking their UTF-8,
    // and the reference reading refuses any output that is not UTF-8.
    let text = std::str::from_utf8(bytes).ok()?;
    // Room for as many entries as the output could hold at a few hundred
    // bytes each: the list is then not copied as it grows (a copy would
    // hold it twice), and what is not filled is never touched, so it
    // costs no memory.
    let guess = bytes.len() / 256;
    match fast::listing(text, &mut each, guess) {
        Ok(out) => return Some(out),
        // The same entry, read by serde, would be refused too.
        Err(fast::Stop::Refused) => return None,
        Err(fast::Stop::Unsupported) => restart(),
    }
    listing_serde(text, each, guess)
}

/// The listing in `text` read by serde, visiting every key and field.
fn listing_serde<'de, T>(
    text: &'de str,
    each: impl FnMut(&Entry<'de>) -> Option<T>,
    guess: usize,
) -> Option<Vec<T>> {
    let mut de = serde_json::Deserializer::from_str(text);
    read(&mut de, each, guess, true).ok()
}

/// [`listing`] of output read as it comes (a pipe), never held whole: the
/// same checks, every string checked as UTF-8 as it is read. The error
/// says where the output stopped being the listing (its reason is only
/// "not the listing" when a rule of this pass refused it).
pub(super) fn listing_from_reader<T>(
    r: impl std::io::Read,
    each: impl FnMut(&Entry<'_>) -> Option<T>,
) -> Result<Vec<T>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(r);
    read(&mut de, each, 0, false)
}

fn read<'de, R: serde_json::de::Read<'de>, T>(
    de: &mut serde_json::Deserializer<R>,
    mut each: impl FnMut(&Entry<'de>) -> Option<T>,
    guess: usize,
    raw: bool,
) -> Result<Vec<T>, serde_json::Error> {
    let mut scratch = Keys {
        list: Vec::new(),
        raw,
    };
    let listing = Wrapped {
        key: "response",
        inner: Wrapped {
            key: "values",
            inner: Values {
                each: &mut each,
                guess,
                _t: PhantomData,
            },
        },
    };
    let out = listing.read(&mut *de, &mut scratch)?;
    de.end()?;
    Ok(out)
}

/// Keys of the objects being read (a stack: each object pushes its own
/// above the others and truncates back when done). Objects have few keys,
/// so a linear search beats hashing, and one buffer serves them all.
struct Keys<'de> {
    list: Vec<Cow<'de, str>>,
    /// Values nobody reads can be taken as printed (output held whole);
    /// from a pipe they are walked instead.
    raw: bool,
}

impl<'de> std::ops::Deref for Keys<'de> {
    type Target = Vec<Cow<'de, str>>;
    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

impl std::ops::DerefMut for Keys<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.list
    }
}

fn refuse<E: de::Error>() -> E {
    // Never shown: the reference reading words the error.
    E::custom("not the listing")
}

/// Note `key` among the keys of the object whose keys start at `from`;
/// refuse a key seen before.
fn unique<'de, E: de::Error>(
    keys: &mut Keys<'de>,
    from: usize,
    key: Cow<'de, str>,
) -> Result<(), E> {
    if keys[from..].contains(&key) {
        return Err(refuse());
    }
    keys.push(key);
    Ok(())
}

/// `ok`, where present, must be the boolean `true`.
fn ok<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    if map.next_value::<bool>()? {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Pass over a value nobody reads: taken as it is printed when it is a
/// string without escapes, `true`, `false` or `null`; anything else is
/// walked, for keys that appear twice and for what taking a value as
/// printed does not check but the reference reading refuses (a `\u`
/// escape of half a surrogate pair, a number beyond a float). From a
/// pipe, where nothing can be borrowed, it is walked whole.
fn skip<'de, A: MapAccess<'de>>(map: &mut A, keys: &Keys<'de>) -> Result<(), A::Error> {
    if !keys.raw {
        return map.next_value_seed(AnyValue);
    }
    let raw: &'de RawValue = map.next_value()?;
    let text = raw.get();
    let plain = match text.as_bytes().first() {
        Some(b'"') => !text.contains('\\'),
        Some(b't' | b'f' | b'n') => true,
        _ => false,
    };
    if !plain {
        let mut de = serde_json::Deserializer::from_str(text);
        AnyValue
            .deserialize(&mut de)
            .map_err(|_| refuse::<A::Error>())?;
    }
    Ok(())
}

/// An object around the listing (the output, then its `response`): `ok`
/// must be `true` where present, no key twice, and `key` holds what
/// `inner` reads.
struct Wrapped<S> {
    key: &'static str,
    inner: S,
}

/// A [`Wrapped`] being read, with the key stack.
struct WrappedVisitor<'k, 'de, S> {
    key: &'static str,
    inner: S,
    scratch: &'k mut Keys<'de>,
}

/// What a [`Wrapped`] object holds: read with the key stack.
trait Inner<'de> {
    type Value;
    fn read<D: de::Deserializer<'de>>(
        self,
        d: D,
        scratch: &mut Keys<'de>,
    ) -> Result<Self::Value, D::Error>;
}

impl<'de, S: Inner<'de>> Inner<'de> for Wrapped<S> {
    type Value = S::Value;
    fn read<D: de::Deserializer<'de>>(
        self,
        d: D,
        scratch: &mut Keys<'de>,
    ) -> Result<S::Value, D::Error> {
        d.deserialize_map(WrappedVisitor {
            key: self.key,
            inner: self.inner,
            scratch,
        })
    }
}

impl<'de, S: Inner<'de>> Visitor<'de> for WrappedVisitor<'_, 'de, S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S::Value, A::Error> {
        let mut out = None;
        let mut inner = Some(self.inner);
        let from = self.scratch.len();
        while let Some(key) = map.next_key_seed(Key)? {
            if key == "ok" {
                ok(&mut map)?;
            } else if key == self.key
                && let Some(inner) = inner.take()
            {
                out = Some(map.next_value_seed(Seeded {
                    inner,
                    scratch: &mut *self.scratch,
                })?);
            } else {
                skip(&mut map, self.scratch)?;
            }
            unique(self.scratch, from, key)?;
        }
        self.scratch.truncate(from);
        out.ok_or_else(refuse)
    }
}

/// An [`Inner`] with the key stack, as serde's seed.
struct Seeded<'k, 'de, S> {
    inner: S,
    scratch: &'k mut Keys<'de>,
}

impl<'de, S: Inner<'de>> DeserializeSeed<'de> for Seeded<'_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.read(d, self.scratch)
    }
}

struct Values<'f, F, T> {
    each: &'f mut F,
    guess: usize,
    _t: PhantomData<T>,
}

impl<'de, F, T> Inner<'de> for Values<'_, F, T>
where
    F: FnMut(&Entry<'de>) -> Option<T>,
{
    type Value = Vec<T>;

    fn read<D: de::Deserializer<'de>>(
        self,
        d: D,
        scratch: &mut Keys<'de>,
    ) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(ValuesVisitor {
            each: self.each,
            guess: self.guess,
            scratch,
            _t: PhantomData,
        })
    }
}

struct ValuesVisitor<'f, 'k, 'de, F, T> {
    each: &'f mut F,
    guess: usize,
    scratch: &'k mut Keys<'de>,
    _t: PhantomData<T>,
}

impl<'de, F, T> Visitor<'de> for ValuesVisitor<'_, '_, 'de, F, T>
where
    F: FnMut(&Entry<'de>) -> Option<T>,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(self.guess);
        // One entry is filled in place for each account in turn (moving
        // it costs more than reading some of its fields), its list of
        // replicas kept for the next.
        let mut entry = Entry::default();
        loop {
            let spare = entry.recycle();
            let seed = EntrySeed {
                scratch: &mut *self.scratch,
                spare,
                entry: &mut entry,
            };
            if seq.next_element_seed(seed)?.is_none() {
                break;
            }
            out.push((self.each)(&entry).ok_or_else(refuse)?);
        }
        out.shrink_to_fit();
        Ok(out)
    }
}

struct EntrySeed<'k, 'de> {
    scratch: &'k mut Keys<'de>,
    spare: Vec<Option<ReplicaFields<'de>>>,
    entry: &'k mut Entry<'de>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an account entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let e = self.entry;
        let mut spare = Some(self.spare);
        let mut seen = 0u8;
        let from = self.scratch.len();
        while let Some(key) = map.next_key_seed(Key)? {
            let (bit, slot) = match &*key {
                "accountId" => (1, &mut e.account_id),
                "accountName" => (2, &mut e.account_name),
                "accountMailHost" => (4, &mut e.account_mail_host),
                "paused" => (8, &mut e.paused),
                "sequence" => (16, &mut e.sequence),
                "itemId" => (32, &mut e.item_id),
                "replicas" => {
                    let Some(list) = spare.take() else {
                        return Err(refuse());
                    };
                    e.replicas = map.next_value_seed(ReplicasSeed {
                        scratch: &mut *self.scratch,
                        list,
                    })?;
                    continue;
                }
                _ => {
                    skip(&mut map, self.scratch)?;
                    unique(self.scratch, from, key)?;
                    continue;
                }
            };
            if seen & bit != 0 {
                return Err(refuse());
            }
            seen |= bit;
            *slot = Some(map.next_value_seed(FieldSeed)?);
        }
        self.scratch.truncate(from);
        Ok(())
    }
}

struct ReplicasSeed<'k, 'de> {
    scratch: &'k mut Keys<'de>,
    /// Where the replicas go (empty).
    list: Vec<Option<ReplicaFields<'de>>>,
}

impl<'de> DeserializeSeed<'de> for ReplicasSeed<'_, 'de> {
    type Value = Replicas<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Replicas<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReplicasSeed<'_, 'de> {
    type Value = Replicas<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of replicas")
    }

    fn visit_unit<E>(self) -> Result<Replicas<'de>, E> {
        Ok(Replicas::None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Replicas<'de>, A::Error> {
        let mut out = self.list;
        while let Some(r) = seq.next_element_seed(ReplicaSeed {
            scratch: &mut *self.scratch,
        })? {
            out.push(r);
        }
        Ok(Replicas::List(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Replicas<'de>, A::Error> {
        AnyValue.visit_map(map)?;
        Ok(Replicas::NotList)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Replicas<'de>, E> {
        Ok(Replicas::NotList)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Replicas<'de>, E> {
        Ok(Replicas::NotList)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Replicas<'de>, E> {
        Ok(Replicas::NotList)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Replicas<'de>, E> {
        Ok(Replicas::NotList)
    }
    fn visit_str<E>(self, _: &str) -> Result<Replicas<'de>, E> {
        Ok(Replicas::NotList)
    }
}

struct ReplicaSeed<'k, 'de> {
    scratch: &'k mut Keys<'de>,
}

impl<'de> DeserializeSeed<'de> for ReplicaSeed<'_, 'de> {
    type Value = Option<ReplicaFields<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReplicaSeed<'_, 'de> {
    type Value = Option<ReplicaFields<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a replica")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = ReplicaFields::default();
        let mut seen = 0u8;
        let from = self.scratch.len();
        while let Some(key) = map.next_key_seed(Key)? {
            let (bit, slot) = match &*key {
                "destination" => (1, &mut r.destination),
                "available" => (2, &mut r.available),
                "priority" => (4, &mut r.priority),
                "sequence" => (8, &mut r.sequence),
                "itemId" => (16, &mut r.item_id),
                "canConnectToKafka" => (32, &mut r.can_connect_to_kafka),
                "paused" => (64, &mut r.paused),
                _ => {
                    skip(&mut map, self.scratch)?;
                    unique(self.scratch, from, key)?;
                    continue;
                }
            };
            if seen & bit != 0 {
                return Err(refuse());
            }
            seen |= bit;
            *slot = Some(map.next_value_seed(FieldSeed)?);
        }
        self.scratch.truncate(from);
        Ok(Some(r))
    }

    // Not an object: no replica (the rules decide what that means), its
    // contents still checked for repeated keys.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        AnyValue.visit_seq(seq)?;
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A field's value, kept as a [`Field`].
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Field<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Field<'de>, E> {
        Ok(Field::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Field<'de>, E> {
        Ok(Field::Num(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Field<'de>, E> {
        Ok(Field::Num(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Field<'de>, E> {
        // As `serde_json::Value` reads it.
        Ok(Number::from_f64(n).map_or(Field::Null, Field::Num))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
        AnyValue.visit_seq(seq)?;
        Ok(Field::Compound(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
        AnyValue.visit_map(map)?;
        Ok(Field::Compound(None))
    }
}

/// An object key, borrowed from the output unless it has escapes
/// (`Cow`'s own `Deserialize` always copies).
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
}

/// Any value nobody reads: only checked for repeated keys (rare enough
/// that a set per object costs nothing).
struct AnyValue;

impl<'de> DeserializeSeed<'de> for AnyValue {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
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
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(AnyValue)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            map.next_value_seed(AnyValue)?;
            if !keys.insert(key) {
                return Err(refuse());
            }
        }
        Ok(())
    }
}

mod fast;

#[cfg(test)]
mod tests;
