//! The healthy accounts of a survey, kept compact: a healthy account is
//! counted, and only what a promotion judges it against is kept of it
//! (its name, its source's last `sequence` and `itemId`, where its replica
//! is), about 25 bytes beside its name instead of a whole entry. A
//! survey of 200k accounts then holds a few MiB, not a tree per account.
//!
//! The names sit one after the other in one string, in the listing's
//! order; an index sorted by name is made the first time a promotion's
//! listing looks an account up, not while the survey is read.

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// No destination (the replica did not name one).
const NO_DEST: u16 = u16::MAX;

/// The healthy accounts of one survey (see the module).
#[derive(Debug, Clone, Default)]
pub struct Healthy {
    /// Every name, one after the other (sorted once finished).
    names: String,
    /// Where each name ends in `names`.
    ends: Vec<u32>,
    /// The source's `sequence` and `itemId` (0 where unknown, see `known`).
    source: Vec<[u64; 2]>,
    /// Bit 0: `sequence` known; bit 1: `itemId` known.
    known: Vec<u8>,
    /// Index into `dests` ([`NO_DEST`]: none).
    dest: Vec<u16>,
    /// The replicas' mailstores, each once.
    dests: Vec<Arc<str>>,
    /// The accounts' positions sorted by name, made when first needed.
    by_name: std::sync::OnceLock<Vec<u32>>,
}

impl PartialEq for Healthy {
    fn eq(&self, o: &Healthy) -> bool {
        // Whether the index was made yet says nothing of the accounts.
        (
            &self.names,
            &self.ends,
            &self.source,
            &self.known,
            &self.dest,
            &self.dests,
        ) == (&o.names, &o.ends, &o.source, &o.known, &o.dest, &o.dests)
    }
}

impl Eq for Healthy {}

/// One healthy account, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthyAccount<'a> {
    pub account: &'a str,
    pub source_sequence: Option<u64>,
    pub source_item_id: Option<u64>,
    pub destination: Option<&'a str>,
}

impl Healthy {
    /// How many.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Keep one more account. Fails only past 4 GiB of names.
    pub fn push(
        &mut self,
        account: &str,
        source_sequence: Option<u64>,
        source_item_id: Option<u64>,
        destination: Option<&str>,
    ) -> Result<(), String> {
        let dest = match destination {
            None => NO_DEST,
            Some(d) => match self.dests.iter().position(|x| &**x == d) {
                Some(i) => i as u16,
                // Past 65,534 mailstores the rest show without one: the
                // counts per destination are kept apart, whole.
                None if self.dests.len() >= usize::from(NO_DEST) => NO_DEST,
                None => {
                    self.dests.push(Arc::from(d));
                    (self.dests.len() - 1) as u16
                }
            },
        };
        self.names.push_str(account);
        let end = u32::try_from(self.names.len())
            .map_err(|_| "more than 4 GiB of account names in one survey".to_owned())?;
        self.ends.push(end);
        self.source
            .push([source_sequence.unwrap_or(0), source_item_id.unwrap_or(0)]);
        self.known
            .push(u8::from(source_sequence.is_some()) | (u8::from(source_item_id.is_some()) << 1));
        self.dest.push(dest);
        Ok(())
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.names[start..self.ends[i] as usize]
    }

    /// The `i`-th account.
    pub fn get(&self, i: usize) -> HealthyAccount<'_> {
        let [s, it] = self.source[i];
        let k = self.known[i];
        HealthyAccount {
            account: self.name(i),
            source_sequence: (k & 1 != 0).then_some(s),
            source_item_id: (k & 2 != 0).then_some(it),
            destination: self.dests.get(usize::from(self.dest[i])).map(|d| &**d),
        }
    }

    /// Every account, in the listing's order.
    pub fn iter(&self) -> impl Iterator<Item = HealthyAccount<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The account named `name`.
    pub fn find(&self, name: &str) -> Option<HealthyAccount<'_>> {
        let by_name = self.by_name.get_or_init(|| {
            let mut order: Vec<u32> = (0..self.len() as u32).collect();
            order.sort_unstable_by(|a, b| self.name(*a as usize).cmp(self.name(*b as usize)));
            order
        });
        by_name
            .binary_search_by(|i| self.name(*i as usize).cmp(name))
            .ok()
            .map(|i| self.get(by_name[i] as usize))
    }
}

/// In `survey.json`: the mailstores once, then one short list per account
/// (`[name, sequence, itemId, mailstore index]`, `null` where unknown).
impl Serialize for Healthy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Rows<'a>(&'a Healthy);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for i in 0..self.0.len() {
                    let a = self.0.get(i);
                    let d = self.0.dest[i];
                    seq.serialize_element(&(
                        a.account,
                        a.source_sequence,
                        a.source_item_id,
                        (d != NO_DEST).then_some(d),
                    ))?;
                }
                seq.end()
            }
        }
        let dests: Vec<&str> = self.dests.iter().map(|d| &**d).collect();
        let mut st = s.serialize_struct("Healthy", 2)?;
        st.serialize_field("replicas_on", &dests)?;
        st.serialize_field("accounts", &Rows(self))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Healthy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Healthy, D::Error> {
        d.deserialize_struct("Healthy", &["replicas_on", "accounts"], HealthyVisitor)
    }
}

struct HealthyVisitor;

type Row = (String, Option<u64>, Option<u64>, Option<u16>);

impl<'de> Visitor<'de> for HealthyVisitor {
    type Value = Healthy;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the healthy accounts")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Healthy, A::Error> {
        let mut h = Healthy::default();
        let mut rows_at: Vec<Option<u16>> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "replicas_on" => {
                    let d: Vec<String> = map.next_value()?;
                    h.dests = d.into_iter().map(Arc::from).collect();
                }
                "accounts" => rows_at = map.next_value_seed(RowsSeed(&mut h))?,
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        // Indices are checked once the mailstores are known, whatever the
        // order of the keys.
        for (i, d) in rows_at.into_iter().enumerate() {
            h.dest[i] = match d {
                None => NO_DEST,
                Some(d) if usize::from(d) < h.dests.len() => d,
                Some(d) => {
                    return Err(de::Error::custom(format!(
                        "account {i} names mailstore {d} of {}",
                        h.dests.len()
                    )));
                }
            };
        }
        Ok(h)
    }
}

/// The rows, read one at a time into the compact form.
struct RowsSeed<'h>(&'h mut Healthy);

impl<'de> de::DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Vec<Option<u16>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Vec<Option<u16>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of healthy accounts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut dests = Vec::new();
        while let Some((name, s, i, d)) = seq.next_element::<Row>()? {
            self.0.push(&name, s, i, None).map_err(de::Error::custom)?;
            dests.push(d);
        }
        Ok(dests)
    }
}
