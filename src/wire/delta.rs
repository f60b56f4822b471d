//! The fast path for the stream's hottest message: a `meters.<group>` DELTA
//! (`{"op":"DELTA","channel":…,"epoch":…,"seq":…,"patch":{"upsert":[…],"remove":[…]}}`)
//! read in one pass with a [`Cursor`] straight into [`MeterColumns`] (one
//! string for every id, one name per distinct resource: no `String` per row),
//! without the tree of generic values the general path ([`super::stream`])
//! builds; the general path gives the same columns
//! ([`MeterColumns::from_patch`]).
//!
//! Invariant: this path only ever says "yes, and here is the op" for a text
//! that the general path decodes to the very same op. Anything it is not sure
//! of (an error of any kind, a repeated key, `op` not the first key, `patch`
//! before `channel`, the `notices` channel, a text too large for the value
//! count to be bounded by its length) returns `None` and the caller runs the
//! general path, which alone words the errors. So the accepted language and
//! every error stay those of the general path by construction;
//! `tests/stream_delta_diff.rs` checks it on generated and mutated texts.

use super::field::{meter_id_problem, whole_json};
use super::lite::{self, Cursor, Limits, Number, Value};
use crate::core::decimal::Decimal;
use crate::core::session::{valid_channel_name, Payload, ServerOp};
use crate::core::stream::{MeterColumns, MeterRowRef, MeterStatus, METERS_PREFIX};
use std::borrow::Cow;

/// Depth of the top-level object, of the patch object and of a row object, as
/// [`lite::parse`] counts it (an unknown member's value nests below these).
const TOP: usize = 1;
const PATCH: usize = 2;
const ROW: usize = 4;

/// The shortest row text, `{"meter":"x","resource":"","ts":0,"value":0,"status":"ok","count":0,"total":"0"}`.
const MIN_ROW_BYTES: usize = 80;
/// No reservation for `remove`: an id's `String` is 8 times its shortest text.
const NO_HINT: usize = usize::MAX;

/// The `meters.<group>` DELTA op of `text`, or `None` when the general path
/// must decide (see the module doc). Never panics. Public (hidden) for the
/// differential test only.
#[doc(hidden)]
pub fn meters_delta(text: &str) -> Option<ServerOp> {
    // The general parser refuses more than MAX_VALUES values; a text no longer
    // than that cannot hold more, so this path needs no counter of its own.
    if text.len() > lite::MAX_VALUES {
        return None;
    }
    let mut c = Cursor::new(text);
    open(&mut c, b'{')?;
    if c.next_key(true).ok()?? != "op" || string(&mut c)? != "DELTA" {
        return None;
    }
    let (mut channel, mut epoch, mut seq, mut patch) = (None, None, None, None);
    while let Some(key) = c.next_key(false).ok()? {
        match &*key {
            "channel" => set(&mut channel, string(&mut c).filter(|s| valid_channel_name(s))?)?,
            "epoch" => set(&mut epoch, whole(&mut c)?)?,
            "seq" => set(&mut seq, whole(&mut c)?)?,
            // A repeated `op`: the general path reads the last one.
            "op" => return None,
            "patch" => {
                // The channel's kind decides how the patch reads: it must be known.
                if !channel.as_deref().is_some_and(|c: &str| c.starts_with(METERS_PREFIX)) {
                    return None;
                }
                set(&mut patch, meter_patch(&mut c)?)?
            }
            _ => other(&mut c, TOP)?,
        }
    }
    c.finish().ok()?;
    Some(ServerOp::Delta {
        channel: channel?.into_owned(),
        epoch: epoch?,
        seq: seq?,
        body: Payload::MeterColumns(Box::new(patch?)),
        wire_bytes: text.len(),
    })
}

/// Fills an empty slot; a repeated key (the general path keeps the last) is
/// left to the general path.
fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// Consumes the opening bracket `b`.
fn open(c: &mut Cursor<'_>, b: u8) -> Option<()> {
    (c.token().ok()? == b).then(|| c.bump())
}

fn string<'a>(c: &mut Cursor<'a>) -> Option<Cow<'a, str>> {
    (c.token().ok()? == b'"').then_some(())?;
    c.read_string().ok()
}

fn number<'a>(c: &mut Cursor<'a>) -> Option<Number<'a>> {
    matches!(c.token().ok()?, b'-' | b'0'..=b'9').then_some(())?;
    c.read_number().ok()
}

fn whole(c: &mut Cursor<'_>) -> Option<u64> {
    whole_json(number(c)?.text())
}

fn finite(c: &mut Cursor<'_>) -> Option<f64> {
    number(c)?.as_f64()
}

/// An unknown member's value, inside a container at depth `outer`: skipped,
/// then checked as the general parser would have read it (surrogate pairing,
/// depth), since the skip alone accepts a little more.
fn other(c: &mut Cursor<'_>, outer: usize) -> Option<()> {
    let text = c.skip().ok()?;
    let limits =
        Limits { max_depth: lite::MAX_DEPTH.checked_sub(outer)?, max_values: lite::MAX_VALUES };
    lite::parse_with(text, limits).ok().map(drop)
}

/// `null` (an empty list) or an array whose `[` is next; each item by `item`.
/// `min_item_bytes`: no item's text is shorter, so reserving the rest of the
/// text over it is room for every item and still follows the payload.
fn list<'a, T>(
    c: &mut Cursor<'a>,
    min_item_bytes: usize,
    mut item: impl FnMut(&mut Cursor<'a>) -> Option<T>,
) -> Option<Vec<T>> {
    if c.token().ok()? == b'n' {
        return matches!(c.read_literal().ok()?, Value::Null).then(Vec::new);
    }
    open(c, b'[')?;
    let mut out = Vec::new();
    out.try_reserve(c.remaining() / min_item_bytes).ok()?;
    let mut first = true;
    while c.next_item(first).ok()? {
        first = false;
        out.push(item(c)?);
    }
    Some(out)
}

fn meter_patch(c: &mut Cursor<'_>) -> Option<MeterColumns> {
    open(c, b'{')?;
    let mut cols = MeterColumns::default();
    let (mut upsert, mut remove) = (None, None);
    let mut first = true;
    while let Some(key) = c.next_key(first).ok()? {
        first = false;
        match &*key {
            "upsert" => set(&mut upsert, meter_rows(c, &mut cols)?)?,
            "remove" => set(
                &mut remove,
                list(c, NO_HINT, |c| {
                    let id = string(c)?;
                    meter_id_problem(&id).is_none().then_some(id)
                })?,
            )?,
            _ => other(c, PATCH)?,
        }
    }
    // Columns hold the upserted rows' ids first, then the removed ones,
    // whichever came first in the text.
    for id in remove.iter().flatten() {
        cols.push_remove(id).then_some(())?;
    }
    Some(cols)
}

/// `null` (no rows) or an array of rows whose `[` is next, each appended to
/// `cols`. No row's text is shorter than [`MIN_ROW_BYTES`], so reserving the
/// rest of the text over it is room for every row and follows the payload.
fn meter_rows(c: &mut Cursor<'_>, cols: &mut MeterColumns) -> Option<()> {
    if c.token().ok()? == b'n' {
        return matches!(c.read_literal().ok()?, Value::Null).then_some(());
    }
    open(c, b'[')?;
    let n = c.remaining() / MIN_ROW_BYTES;
    cols.ends.try_reserve(n).ok()?;
    cols.resource.try_reserve(n).ok()?;
    cols.ts.try_reserve(n).ok()?;
    cols.value.try_reserve(n).ok()?;
    cols.status.try_reserve(n).ok()?;
    cols.count.try_reserve(n).ok()?;
    cols.total.try_reserve(n).ok()?;
    let mut first = true;
    while c.next_item(first).ok()? {
        first = false;
        meter_row(c, cols)?;
    }
    Some(())
}

/// One row object, appended to `cols`.
fn meter_row(c: &mut Cursor<'_>, cols: &mut MeterColumns) -> Option<()> {
    open(c, b'{')?;
    let (mut meter, mut resource, mut ts, mut value) = (None, None, None, None);
    let (mut status, mut count, mut total) = (None, None, None);
    let mut first = true;
    while let Some(key) = c.next_key(first).ok()? {
        first = false;
        match &*key {
            "meter" => set(&mut meter, string(c).filter(|m| meter_id_problem(m).is_none())?)?,
            "resource" => set(&mut resource, string(c)?)?,
            "ts" => set(&mut ts, finite(c)?)?,
            "value" => set(&mut value, finite(c)?)?,
            "status" => set(&mut status, MeterStatus::parse(&string(c)?)?)?,
            "count" => set(&mut count, whole(c)?)?,
            "total" => set(&mut total, Decimal::parse(&string(c)?)?)?,
            _ => other(c, ROW)?,
        }
    }
    // At most 64 characters, as the general path keeps it.
    let resource = resource?;
    let resource: Cow<'_, str> = if resource.len() <= 64 {
        resource
    } else {
        Cow::Owned(resource.chars().take(64).collect())
    };
    let index = cols.resource_index(&resource)?;
    let row = MeterRowRef {
        meter: &meter?,
        resource: &resource,
        ts: ts?,
        value: value?,
        status: status?,
        count: count?,
        total: total?,
    };
    cols.push_row(row, index).then_some(())
}
