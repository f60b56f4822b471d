//! A socket text whose top level has a `sent` object, read in one pass: the
//! `HEARTBEAT_ACK`'s `sent` map straight into a compact list of
//! `(channel, position)` entries in document order, every other member into
//! a value as the general path ([`super::stream`]) reads it. The general path
//! builds a tree of the whole text first, an array and two numbers per
//! `sent` entry, then reads it back: on 767,463 entries the tree and its
//! walk were most of the 0.24–0.33 s the message took (docs/PERFORMANCE.md,
//! "Hostile payloads").
//!
//! Invariant: what this reader returns is what the general path decides on
//! the same text. It reads with the tree reader's own steps
//! ([`Cursor::read_value`], `next_key`, `next_item`, `read_number`) and counts
//! every value as [`lite::parse`] does ([`Cursor::count_value`]), so it fails
//! exactly when [`lite::parse`] fails ([`Read::NotJson`]). It defers
//! ([`Read::Defer`]) while deferring is cheap: before a `sent` object has
//! been read, at an `op` other than a string `HEARTBEAT_ACK` or at any
//! member whose value is an array or object (a v1 frame's `readings`, a
//! DELTA's `patch`); after one, it reads the rest as values, so no text
//! costs two passes over a large `sent`. `tests/stream_ack_diff.rs` holds it
//! to the general path on generated and mutated texts.

use super::lite::{self, Cursor, ErrorKind, Object, Value};
use crate::core::session::{valid_channel_name, ChannelPos};
use std::borrow::Cow;

/// Nesting of the top-level object's member values, of `sent`'s entries and
/// of an entry array's items, as [`lite::parse`] counts it.
const TOP: usize = 1;
const SENT: usize = 2;
const ENTRY: usize = 3;

/// One member of `sent`: the channel name, and `(epoch, seq)` if its value is
/// an array of exactly two whole numbers in `0..=2^53`.
pub(super) type SentEntry<'a> = (Cow<'a, str>, Option<(u64, u64)>);

/// What the one-pass reader made of a text.
pub(super) enum Read<'a> {
    /// Not decided here: the general path reads the text.
    Defer,
    /// Not JSON as [`lite::parse`] reads it.
    NotJson,
    /// A top-level object.
    Object {
        /// Its members other than `sent`, in document order.
        members: Object<'a>,
        /// The last `sent` member's entries in document order, if it is an
        /// object (none if absent or not an object).
        sent: Vec<SentEntry<'a>>,
    },
}

/// Reads `text` if it is an object holding a `sent` object (see the module
/// doc). Never panics.
pub(super) fn read(text: &str) -> Read<'_> {
    let mut c = Cursor::new(text);
    if c.token() != Ok(b'{') {
        return Read::Defer;
    }
    match object(&mut c) {
        Ok(Some((members, sent))) => Read::Object { members: Object::from_members(members), sent },
        Ok(None) => Read::Defer,
        Err(_) => Read::NotJson,
    }
}

type Members<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// The top-level object at the cursor's `{`; `None` to defer.
fn object<'a>(c: &mut Cursor<'a>) -> Result<Option<(Members<'a>, Vec<SentEntry<'a>>)>, ErrorKind> {
    c.count_value()?;
    c.bump();
    let mut members = Vec::new();
    let mut sent = Vec::new();
    // A `sent` object has been read: from here on deferring would read it again.
    let mut committed = false;
    let mut first = true;
    while let Some(key) = c.next_key(first)? {
        first = false;
        let container = matches!(c.token()?, b'{' | b'[');
        if key == "sent" && c.token()? == b'{' {
            sent = entries(c)?;
            committed = true;
            continue;
        }
        if container && !committed {
            return Ok(None);
        }
        let value = c.read_value(TOP)?;
        if key == "sent" {
            // The last `sent` is not an object: the ack lists no position.
            sent = Vec::new();
            continue;
        }
        if key == "op" && !committed && value.as_str() != Some("HEARTBEAT_ACK") {
            return Ok(None);
        }
        members.push((key, value));
    }
    c.finish()?;
    Ok(Some((members, sent)))
}

/// The `sent` object at the cursor's `{`, its entries in document order.
fn entries<'a>(c: &mut Cursor<'a>) -> Result<Vec<SentEntry<'a>>, ErrorKind> {
    c.count_value()?;
    c.bump();
    let mut out = Vec::new();
    let mut first = true;
    while let Some(key) = c.next_key(first)? {
        first = false;
        let position = if c.token()? == b'[' {
            position(c)?
        } else {
            c.read_value(SENT)?;
            None
        };
        out.push((key, position));
    }
    Ok(out)
}

/// An entry's array at the cursor's `[`: `(epoch, seq)` if it holds exactly
/// two whole numbers, every item read (and counted) either way.
fn position(c: &mut Cursor<'_>) -> Result<Option<(u64, u64)>, ErrorKind> {
    c.count_value()?;
    c.bump();
    let mut wholes = [None, None];
    let mut items = 0usize;
    let mut first = true;
    while c.next_item(first)? {
        first = false;
        let whole = if matches!(c.token()?, b'-' | b'0'..=b'9') {
            c.count_value()?;
            super::field::whole_json(c.read_number()?.text())
        } else {
            c.read_value(ENTRY)?;
            None
        };
        if let Some(slot) = wholes.get_mut(items) {
            *slot = whole;
        }
        items += 1;
    }
    Ok(match (items, wholes) {
        (2, [Some(epoch), Some(seq)]) => Some((epoch, seq)),
        _ => None,
    })
}

/// Of `entries` (a `sent` map's members in document order), each channel's
/// last position, by channel name, as a map keeps them; or the first channel
/// (by name) whose last entry is not a position of a valid channel name.
pub(super) fn by_channel<'e>(entries: &'e [SentEntry<'_>]) -> Result<Vec<ChannelPos>, &'e str> {
    let order = lite::last_of_each_by_key(entries.iter().map(|(k, _)| k.as_ref()));
    // When every entry is a valid position (an honest ack), no choice of
    // repeats can fail: each name is copied in document order, reading the
    // text in order, and only moved into name order. Walking the text in
    // name order instead cost a cache miss per name on a shuffled map
    // (docs/PERFORMANCE.md, "Hostile payloads").
    let valid = |(k, p): &SentEntry<'_>| match p {
        Some((epoch, seq)) if valid_channel_name(k) => {
            Some(ChannelPos { channel: k.to_string(), epoch: *epoch, seq: *seq })
        }
        _ => None,
    };
    if entries.iter().all(|e| e.1.is_some() && valid_channel_name(&e.0)) {
        let mut made: Vec<Option<ChannelPos>> = entries.iter().map(valid).collect();
        return Ok(order
            .iter()
            .filter_map(|&(_, i)| made.get_mut(i).and_then(Option::take))
            .collect());
    }
    let mut out = Vec::with_capacity(order.len());
    for (channel, i) in order {
        match entries.get(i).and_then(valid) {
            Some(pos) => out.push(pos),
            None => return Err(channel),
        }
    }
    Ok(out)
}
