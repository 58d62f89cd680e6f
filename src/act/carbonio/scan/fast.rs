//! The listing held whole, read by hand over its bytes: the output as the
//! CLI prints it (compact or indented JSON, strings without escapes,
//! whole numbers, `true`/`false`/`null`) costs a little over one pass of
//! the parser that builds nothing, where serde's visiting of each key and
//! field cost about three.
//!
//! It takes less than serde's one pass does, never more: whatever it is
//! not sure of (an escape in a string, a number with a fraction or an
//! exponent, a negative one, a list or object where no field habeat reads
//! is one, a key twice, text after the object...) makes it give up
//! ([`Stop::Unsupported`]) and the serde pass reads the output instead.
//! What it takes, it hands on as the same [`Entry`] values, in the same
//! order, as the serde pass would.

use super::super::entry::{Entry, Field, ReplicaFields, Replicas};
use std::borrow::Cow;

/// Why the reading stopped before the end.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// Not sure the output is valid, or not read this way: for the serde
    /// pass to read.
    Unsupported,
    /// An entry the caller's `each` refused (`None`).
    Refused,
}

type Res<T> = Result<T, Stop>;

/// Read the listing in `text`, calling `each` on every account entry in
/// order (see the module).
pub(super) fn listing<'a, T>(
    text: &'a str,
    each: &mut impl FnMut(&Entry<'a>) -> Option<T>,
    guess: usize,
) -> Res<Vec<T>> {
    let mut c = Cur {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    c.ws();
    let mut out = c.wrapped("response", |c| c.response(each, guess))?;
    c.ws();
    if c.i != c.b.len() {
        return Err(Stop::Unsupported);
    }
    out.shrink_to_fit();
    Ok(out)
}

/// Where the reading is in the output.
struct Cur<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Keys of one object that are not fields of an entry, to refuse one
/// seen twice (objects have few keys: a linear search beats hashing).
#[derive(Default)]
struct Others<'a>(Vec<&'a str>);

impl<'a> Others<'a> {
    fn note(&mut self, key: &'a str) -> Res<()> {
        if self.0.contains(&key) {
            return Err(Stop::Unsupported);
        }
        self.0.push(key);
        Ok(())
    }
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Res<u8> {
        self.b.get(self.i).copied().ok_or(Stop::Unsupported)
    }

    /// JSON's whitespace (and only it).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Res<()> {
        if self.peek()? != byte {
            return Err(Stop::Unsupported);
        }
        self.i += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        if !self.b[self.i..].starts_with(word) {
            return Err(Stop::Unsupported);
        }
        self.i += word.len();
        Ok(())
    }

    /// An object, `key` called on each key with the reading at its value
    /// (which it must read); a key twice is left to `key` to refuse.
    fn object(&mut self, mut key: impl FnMut(&mut Self, &'a str) -> Res<()>) -> Res<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.eat(b'"')?;
            let k = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            key(self, k)?;
            if !self.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// After an element of an object or a list: `,` (another follows) or
    /// `close` (the end), read.
    fn more(&mut self, close: u8) -> Res<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.ws();
                Ok(true)
            }
            c if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Stop::Unsupported),
        }
    }

    /// A list, `item` called with the reading at each element.
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Res<()>) -> Res<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            if !self.more(b']')? {
                return Ok(());
            }
        }
    }

    /// The rest of a string whose opening quote was read: without escapes
    /// or control characters (JSON refuses the latter, serde reads the
    /// former), eight bytes at a time.
    fn string(&mut self) -> Res<&'a str> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let start = self.i;
        let mut i = start;
        // The lowest byte flagged in each test is exact (a borrow only
        // flags bytes above a true one), and the lowest is the one wanted.
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        while let Some(chunk) = self.b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            let hit = zero(x ^ (ONES * u64::from(b'"')))
                | zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if hit != 0 {
                i += (hit.trailing_zeros() / 8) as usize;
                return self.string_end(start, i);
            }
            i += 8;
        }
        while let Some(&byte) = self.b.get(i) {
            if byte == b'"' || byte == b'\\' || byte < 0x20 {
                return self.string_end(start, i);
            }
            i += 1;
        }
        Err(Stop::Unsupported)
    }

    fn string_end(&mut self, start: usize, end: usize) -> Res<&'a str> {
        if self.b[end] != b'"' {
            return Err(Stop::Unsupported);
        }
        self.i = end + 1;
        // Both ends are next to a quote, so on a character's boundary.
        self.text.get(start..end).ok_or(Stop::Unsupported)
    }

    /// A whole number of at least 0 that fits in a `u64`, as JSON prints
    /// it (no leading zero); anything else is left to serde.
    fn number(&mut self) -> Res<u64> {
        let first = self.peek()?;
        if !first.is_ascii_digit() {
            return Err(Stop::Unsupported);
        }
        self.i += 1;
        let mut n = u64::from(first - b'0');
        if n != 0 {
            while let Some(&d) = self.b.get(self.i) {
                if !d.is_ascii_digit() {
                    break;
                }
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    .ok_or(Stop::Unsupported)?;
                self.i += 1;
            }
        }
        // A fraction, an exponent or a digit after a leading zero.
        if let Some(b'.' | b'e' | b'E' | b'0'..=b'9') = self.b.get(self.i) {
            return Err(Stop::Unsupported);
        }
        Ok(n)
    }

    /// A field's value, as the serde pass's `FieldSeed` keeps it.
    fn field(&mut self) -> Res<Field<'a>> {
        Ok(match self.peek()? {
            b'"' => {
                self.i += 1;
                Field::Str(Cow::Borrowed(self.string()?))
            }
            b't' => {
                self.literal(b"true")?;
                Field::Bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                Field::Bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                Field::Null
            }
            _ => Field::Num(self.number()?.into()),
        })
    }

    /// A value nobody reads: a string, a number, `true`, `false` or
    /// `null`.
    fn skip_scalar(&mut self) -> Res<()> {
        self.field().map(drop)
    }

    /// `ok`, which must be `true`.
    fn ok_true(&mut self) -> Res<()> {
        self.literal(b"true")
    }

    /// An object around the listing (the output, then its `response`):
    /// `ok` must be `true` where present, no key twice, and `key` holds
    /// what `inner` reads.
    fn wrapped<V>(
        &mut self,
        key: &'static str,
        mut inner: impl FnMut(&mut Self) -> Res<V>,
    ) -> Res<V> {
        let mut out = None;
        let mut others = Others::default();
        self.object(|c, k| {
            others.note(k)?;
            if k == "ok" {
                c.ok_true()
            } else if k == key {
                out = Some(inner(c)?);
                Ok(())
            } else {
                c.skip_scalar()
            }
        })?;
        out.ok_or(Stop::Unsupported)
    }

    /// The `response`: `ok` and a `values` list of entries.
    fn response<T>(
        &mut self,
        each: &mut impl FnMut(&Entry<'a>) -> Option<T>,
        guess: usize,
    ) -> Res<Vec<T>> {
        self.wrapped("values", |c| c.values(each, guess))
    }

    fn values<T>(
        &mut self,
        each: &mut impl FnMut(&Entry<'a>) -> Option<T>,
        guess: usize,
    ) -> Res<Vec<T>> {
        let mut out = Vec::with_capacity(guess);
        // One entry filled in turn for each account, its list of replicas
        // kept for the next, as the serde pass does.
        let mut entry = Entry::default();
        let (mut others, mut replica_others) = (Others::default(), Others::default());
        self.list(|c| {
            let spare = entry.recycle();
            others.0.clear();
            c.entry(&mut entry, spare, &mut others, &mut replica_others)?;
            out.push(each(&entry).ok_or(Stop::Refused)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn entry(
        &mut self,
        e: &mut Entry<'a>,
        spare: Vec<Option<ReplicaFields<'a>>>,
        others: &mut Others<'a>,
        replica_others: &mut Others<'a>,
    ) -> Res<()> {
        let mut spare = Some(spare);
        let mut seen = 0u8;
        self.object(|c, key| {
            let (bit, slot) = match key {
                "accountId" => (1, &mut e.account_id),
                "accountName" => (2, &mut e.account_name),
                "accountMailHost" => (4, &mut e.account_mail_host),
                "paused" => (8, &mut e.paused),
                "sequence" => (16, &mut e.sequence),
                "itemId" => (32, &mut e.item_id),
                "replicas" => {
                    let mut list = spare.take().ok_or(Stop::Unsupported)?;
                    e.replicas = if c.peek()? == b'n' {
                        c.literal(b"null")?;
                        Replicas::None
                    } else {
                        c.list(|c| {
                            replica_others.0.clear();
                            list.push(Some(c.replica(replica_others)?));
                            Ok(())
                        })?;
                        Replicas::List(list)
                    };
                    return Ok(());
                }
                _ => {
                    others.note(key)?;
                    return c.skip_scalar();
                }
            };
            if seen & bit != 0 {
                return Err(Stop::Unsupported);
            }
            seen |= bit;
            *slot = Some(c.field()?);
            Ok(())
        })
    }

    fn replica(&mut self, others: &mut Others<'a>) -> Res<ReplicaFields<'a>> {
        let mut r = ReplicaFields::default();
        let mut seen = 0u8;
        self.object(|c, key| {
            let (bit, slot) = match key {
                "destination" => (1, &mut r.destination),
                "available" => (2, &mut r.available),
                "priority" => (4, &mut r.priority),
                "sequence" => (8, &mut r.sequence),
                "itemId" => (16, &mut r.item_id),
                "canConnectToKafka" => (32, &mut r.can_connect_to_kafka),
                "paused" => (64, &mut r.paused),
                _ => {
                    others.note(key)?;
                    return c.skip_scalar();
                }
            };
            if seen & bit != 0 {
                return Err(Stop::Unsupported);
            }
            seen |= bit;
            *slot = Some(c.field()?);
            Ok(())
        })?;
        Ok(r)
    }
}
