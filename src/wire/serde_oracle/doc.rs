//! (The serde_json decoder's copy, kept as the oracle: see `serde_oracle`.)
//!
//! The top level of a JSON payload, read in one pass.
//!
//! [`Doc`] keeps every known top-level field as raw JSON text and splits the
//! item list (`readings` or `buckets`) into raw items during the same pass, so
//! a payload's text is scanned once for its structure and once more per item.
//! At most `maxBatch` items are kept: past it the rest are only counted, so a
//! hostile payload of millions of tiny items costs no memory beyond the limit.
//! Unknown fields are skipped; a repeated field keeps its last value.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// An item list as found in the payload.
#[derive(Debug, Default)]
pub(crate) enum List<'a> {
    /// Not present.
    #[default]
    Missing,
    /// An array of at most the limit's items.
    Items(Vec<&'a RawValue>),
    /// An array of this many items, more than the limit.
    TooMany(usize),
    /// Present but not an array.
    NotArray,
}

/// Every top-level field any payload type has, as raw JSON text.
#[derive(Debug, Default)]
pub(crate) struct Doc<'a> {
    pub ty: Option<&'a RawValue>,
    pub v: Option<&'a RawValue>,
    pub channel: Option<&'a RawValue>,
    pub epoch: Option<&'a RawValue>,
    pub seq: Option<&'a RawValue>,
    pub hlc: Option<&'a RawValue>,
    pub next_seq: Option<&'a RawValue>,
    pub server_time: Option<&'a RawValue>,
    pub as_of: Option<&'a RawValue>,
    pub from: Option<&'a RawValue>,
    pub to: Option<&'a RawValue>,
    /// `readings` (readings, frames).
    pub readings: List<'a>,
    /// `buckets` (catch-ups).
    pub buckets: List<'a>,
}

/// Parses `text` as a top-level object, keeping at most `max_items` list items.
pub(crate) fn parse(text: &str, max_items: usize) -> Result<Doc<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let doc = DocSeed { max_items }.deserialize(&mut de)?;
    de.end()?;
    Ok(doc)
}

struct DocSeed {
    max_items: usize,
}

impl<'de> DeserializeSeed<'de> for DocSeed {
    type Value = Doc<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

/// A field name, borrowed unless it has escapes.
struct Key(KeyText);

enum KeyText {
    Known(&'static str),
    Other,
}

const KNOWN: [&str; 13] = [
    "type",
    "v",
    "channel",
    "epoch",
    "seq",
    "hlc",
    "nextSeq",
    "serverTime",
    "asOf",
    "from",
    "to",
    "readings",
    "buckets",
];

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(Key(KNOWN
                    .iter()
                    .find(|k| **k == s)
                    .map_or(KeyText::Other, |k| KeyText::Known(k))))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for DocSeed {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut doc = Doc::default();
        while let Some(Key(key)) = map.next_key::<Key>()? {
            let name = match key {
                KeyText::Known(name) => name,
                KeyText::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let slot = match name {
                "readings" | "buckets" => {
                    let list = map.next_value_seed(ListSeed { max_items: self.max_items })?;
                    if name == "readings" {
                        doc.readings = list;
                    } else {
                        doc.buckets = list;
                    }
                    continue;
                }
                "type" => &mut doc.ty,
                "v" => &mut doc.v,
                "channel" => &mut doc.channel,
                "epoch" => &mut doc.epoch,
                "seq" => &mut doc.seq,
                "hlc" => &mut doc.hlc,
                "nextSeq" => &mut doc.next_seq,
                "serverTime" => &mut doc.server_time,
                "asOf" => &mut doc.as_of,
                "from" => &mut doc.from,
                _ => &mut doc.to,
            };
            // `null` counts as absent, as an optional field would.
            let raw: &RawValue = map.next_value()?;
            *slot = (raw.get() != "null").then_some(raw);
        }
        Ok(doc)
    }
}

struct ListSeed {
    max_items: usize,
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = List<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<List<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = List<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max_items));
        while items.len() < self.max_items {
            match seq.next_element::<&'de RawValue>()? {
                Some(item) => items.push(item),
                None => return Ok(List::Items(items)),
            }
        }
        let mut n = items.len();
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(if n > self.max_items { List::TooMany(n) } else { List::Items(items) })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<List<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(List::NotArray)
    }

    fn visit_bool<E>(self, _: bool) -> Result<List<'de>, E> {
        Ok(List::NotArray)
    }

    fn visit_i64<E>(self, _: i64) -> Result<List<'de>, E> {
        Ok(List::NotArray)
    }

    fn visit_u64<E>(self, _: u64) -> Result<List<'de>, E> {
        Ok(List::NotArray)
    }

    fn visit_f64<E>(self, _: f64) -> Result<List<'de>, E> {
        Ok(List::NotArray)
    }

    fn visit_str<E>(self, _: &str) -> Result<List<'de>, E> {
        Ok(List::NotArray)
    }

    fn visit_unit<E>(self) -> Result<List<'de>, E> {
        Ok(List::Missing)
    }
}
