//! Binary frames of kind 4: a `meters.<group>` DELTA (PROTOCOL.md 3.10), sent
//! on the socket only to a client that asked for it (`binary_deltas` in
//! IDENTIFY/RESUME); the JSON DELTA stays the default.
//!
//! The same op as the JSON text in columns: the channel, `epoch` and `seq` in
//! the kind header; a table of resource names; every meter id (upserted rows,
//! then removed ids) as length-prefixed UTF-8; then fixed-width columns `ts`,
//! `value`, `count`, total mantissa, resource index, total scale, status.
//!
//! Every value is checked as the JSON path checks it (meter ids by the one
//! meter-id rule, `ts`/`value` finite, `count` whole ≤ 2^53, totals exact,
//! normalised like `Decimal::parse`, resource names cut to 64 characters), and
//! as there one bad row refuses the whole message. A decoded frame is a
//! [`MeterColumns`]: its ids share one string, so applying it costs no `String`
//! per row once the store knows the meter.

use super::{bad_frame, le_f64, whole, Header, Reader, HEADER_BYTES, KIND_METERS_DELTA, MAGIC};
use super::{truncated, VERSION};
use crate::core::decimal::{Decimal, MAX_SCALE};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::session::{valid_channel_name, Payload, ServerOp};
use crate::core::stream::{MeterColumns, MeterRowRef, MeterStatus, METERS_PREFIX};
use crate::wire::field::{meter_id_problem, MAX_WHOLE};

/// Bytes of the kind-4 header after the common header (before the channel).
pub const METERS_HEADER_BYTES: usize = 24;

/// Status byte: 0 `ok`, 1 `stale`, 2 `offline`.
fn status_byte(s: MeterStatus) -> u8 {
    match s {
        MeterStatus::Ok => 0,
        MeterStatus::Stale => 1,
        MeterStatus::Offline => 2,
    }
}

fn status_of(b: u8) -> Option<MeterStatus> {
    match b {
        0 => Some(MeterStatus::Ok),
        1 => Some(MeterStatus::Stale),
        2 => Some(MeterStatus::Offline),
        _ => None,
    }
}

/// `Decimal::parse`'s form of `mantissa × 10^-scale`: no trailing fraction zeros.
fn normal(mut mantissa: i64, mut scale: u8) -> Decimal {
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    Decimal::new(mantissa, scale)
}

fn bad_value(why: String) -> CoreError {
    CoreError::new(ErrorCode::BadValue, why)
}

/// Decodes a kind-4 frame whose common header `h` was checked into the
/// `DELTA` op it carries.
pub(super) fn decode(h: &Header, bytes: &[u8]) -> Result<ServerOp, CoreError> {
    if h.shared_ts {
        return Err(bad_frame("binary DELTA: flag SHARED_TS does not apply to kind 4"));
    }
    let mut r = Reader { buf: bytes, pos: HEADER_BYTES };
    let what = "kind-4 header";
    let (epoch, seq) = (r.f64(what)?, r.f64(what)?);
    let (resources, channel_len, reserved) = (r.u16(what)?, r.u8(what)?, r.u8(what)?);
    let reserved2 = r.u32(what)?;
    let epoch = whole(epoch).ok_or_else(|| {
        bad_value(format!("binary DELTA: epoch {epoch} is not a whole number in 0..=2^53"))
    })?;
    let seq = whole(seq).ok_or_else(|| {
        bad_value(format!("binary DELTA: seq {seq} is not a whole number in 0..=2^53"))
    })?;
    if reserved != 0 || reserved2 != 0 {
        return Err(bad_frame("binary DELTA: reserved kind-4 header bytes are not zero"));
    }
    let channel = r.take(usize::from(channel_len), "channel")?;
    let channel = std::str::from_utf8(channel)
        .ok()
        .filter(|c| valid_channel_name(c) && c.starts_with(METERS_PREFIX))
        .ok_or_else(|| {
            CoreError::new(
                ErrorCode::BadChannel,
                "binary DELTA: the channel is not a valid meters.<group> name",
            )
        })?
        .to_owned();

    // A name serves at least one row: more names than rows is not a frame
    // any encoder writes, and would let a byte of input hold a `String`.
    if u32::from(resources) > h.records.max(1) {
        return Err(bad_frame(format!(
            "binary DELTA: {resources} resource names for {} rows",
            h.records
        )));
    }
    let mut c = MeterColumns::default();
    c.resources.reserve(super::bindings_fit(u32::from(resources), &r, 1)?);
    for _ in 0..resources {
        let len = r.u8("resource names")?;
        let name = r.take(usize::from(len), "resource names")?;
        let name = std::str::from_utf8(name).map_err(|_| {
            CoreError::new(ErrorCode::UnknownResource, "binary DELTA: a resource name is not UTF-8")
        })?;
        // At most 64 characters, as the JSON path keeps it.
        c.resources.push(if name.len() <= 64 {
            name.to_owned()
        } else {
            name.chars().take(64).collect()
        });
    }
    let rows = h.records;
    let ids =
        rows.checked_add(h.bindings).ok_or_else(|| truncated("meter ids", r.pos, bytes.len()))?;
    // Every id is at least 3 bytes (length and one byte): the count is bounded
    // by the payload before anything is reserved.
    c.ends.reserve(super::bindings_fit(ids, &r, 3)?);
    // The ids' bytes: what is left of the frame less 2 bytes of length per
    // id and the rows' 36 bytes of columns (a bound that follows the
    // payload), so the string grows once.
    let fixed = (ids as usize).saturating_mul(2).saturating_add((rows as usize).saturating_mul(36));
    c.ids.reserve(bytes.len().saturating_sub(r.pos).saturating_sub(fixed));
    for n in 0..ids {
        let len = r.u16("meter ids")?;
        let id = r.take(usize::from(len), "meter ids")?;
        let id = std::str::from_utf8(id).map_err(|_| {
            CoreError::new(
                ErrorCode::BadMeterId,
                format!("binary DELTA: meter id {n} is not UTF-8"),
            )
        })?;
        if let Some(why) = meter_id_problem(id) {
            return Err(CoreError::new(
                ErrorCode::BadMeterId,
                format!("binary DELTA: meter id {n}: {why}"),
            ));
        }
        if !c.push_remove(id) {
            return Err(bad_frame("binary DELTA: meter ids longer than 4 GiB"));
        }
    }
    r.pad8("padding after the meter ids")?;
    let ts = r.column(rows, 8, "ts column")?;
    let value = r.column(rows, 8, "value column")?;
    let count = r.column(rows, 8, "count column")?;
    let mantissa = r.column(rows, 8, "total column")?;
    let resource = r.column(rows, 2, "resource column")?;
    let scale = r.column(rows, 1, "scale column")?;
    let status = r.column(rows, 1, "status column")?;
    r.pad8("padding after the status column")?;
    r.finish()?;

    let n = rows as usize;
    c.ts = ts.chunks_exact(8).map(le_f64).collect();
    c.value = value.chunks_exact(8).map(le_f64).collect();
    c.count = Vec::with_capacity(n);
    c.total = Vec::with_capacity(n);
    c.resource = Vec::with_capacity(n);
    c.status = Vec::with_capacity(n);
    let columns = count.chunks_exact(8).zip(mantissa.chunks_exact(8)).zip(resource.chunks_exact(2));
    for (i, (((count, m), res), (&scale, &status))) in
        columns.zip(scale.iter().zip(status)).enumerate()
    {
        let row_err =
            |code, why: String| CoreError::at(code, i, format!("binary DELTA row {i}: {why}"));
        let (t, v) =
            (c.ts.get(i).copied().unwrap_or(f64::NAN), c.value.get(i).copied().unwrap_or(f64::NAN));
        if !t.is_finite() {
            return Err(row_err(ErrorCode::BadTimestamp, format!("ts {t} is not finite")));
        }
        if !v.is_finite() {
            return Err(row_err(ErrorCode::BadValue, format!("value {v} is not finite")));
        }
        let count = le_f64(count);
        let count = whole(count).ok_or_else(|| {
            row_err(ErrorCode::BadValue, format!("count {count} is not a whole number in 0..=2^53"))
        })?;
        if scale > MAX_SCALE {
            return Err(row_err(
                ErrorCode::BadValue,
                format!("total scale {scale} is above {MAX_SCALE}"),
            ));
        }
        let res = u16::from_le_bytes([
            res.first().copied().unwrap_or(0),
            res.get(1).copied().unwrap_or(0),
        ]);
        if usize::from(res) >= c.resources.len() {
            return Err(row_err(
                ErrorCode::UnknownResource,
                format!("resource {res} is not in the frame's {} names", c.resources.len()),
            ));
        }
        let status = status_of(status).ok_or_else(|| {
            row_err(ErrorCode::BadValue, format!("status {status} is not 0, 1 or 2"))
        })?;
        let m = i64::from_le_bytes(m.try_into().unwrap_or([0; 8]));
        c.count.push(count);
        c.total.push(normal(m, scale));
        c.resource.push(res);
        c.status.push(status);
    }
    Ok(ServerOp::Delta {
        channel,
        epoch,
        seq,
        body: Payload::MeterColumns(Box::new(c)),
        wire_bytes: bytes.len(),
    })
}

fn too_long(what: &str) -> CoreError {
    CoreError::new(ErrorCode::BadValue, format!("binary DELTA: {what}"))
}

/// Encodes a `meters.<group>` DELTA as a kind-4 frame: `rows` upserted, then
/// `remove`. Sizes the frame first and allocates once. Refuses (`bad_value`)
/// what the frame cannot carry or the decoder would refuse: a channel that is
/// not `meters.<group>`, an epoch/seq/count past 2^53, a meter id past 65,535
/// bytes, a resource name past 255, more than 65,535 distinct resources.
pub fn encode_meters_delta(
    channel: &str,
    epoch: u64,
    seq: u64,
    rows: &[MeterRowRef<'_>],
    remove: &[&str],
) -> Result<Vec<u8>, CoreError> {
    if !valid_channel_name(channel) || !channel.starts_with(METERS_PREFIX) {
        return Err(CoreError::new(
            ErrorCode::BadChannel,
            "binary DELTA: not a meters.<group> channel",
        ));
    }
    if epoch > MAX_WHOLE || seq > MAX_WHOLE {
        return Err(too_long("epoch or seq past 2^53"));
    }
    // The distinct resources, in first-seen order (a handful per channel).
    let mut names: Vec<&str> = Vec::new();
    let mut index = Vec::with_capacity(rows.len());
    for r in rows {
        let i = match names.iter().position(|n| *n == r.resource) {
            Some(i) => i,
            None => {
                names.push(r.resource);
                names.len() - 1
            }
        };
        index.push(u16::try_from(i).map_err(|_| too_long("more than 65535 resources"))?);
        if r.count > MAX_WHOLE {
            return Err(too_long("a count past 2^53"));
        }
    }
    if names.iter().any(|n| n.len() > 255) {
        return Err(too_long("a resource name longer than 255 bytes"));
    }
    let ids = rows.iter().map(|r| r.meter).chain(remove.iter().copied());
    if ids.clone().any(|id| id.len() > usize::from(u16::MAX)) {
        return Err(too_long("a meter id longer than 65535 bytes"));
    }
    let n_rows = u32::try_from(rows.len()).map_err(|_| too_long("too many rows"))?;
    let n_removes = u32::try_from(remove.len()).map_err(|_| too_long("too many removes"))?;
    let pad = |x: usize| x.next_multiple_of(8);
    let head = HEADER_BYTES + METERS_HEADER_BYTES + channel.len();
    let names_bytes: usize = names.iter().map(|n| 1 + n.len()).sum();
    let ids_bytes: usize = ids.clone().map(|id| 2 + id.len()).sum();
    let body = pad(head + names_bytes + ids_bytes);
    let total = pad(body + rows.len() * (8 * 4 + 2 + 1 + 1));
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&[VERSION, KIND_METERS_DELTA, 0, 0]);
    b.extend_from_slice(&n_removes.to_le_bytes());
    b.extend_from_slice(&n_rows.to_le_bytes());
    b.extend_from_slice(&(epoch as f64).to_le_bytes());
    b.extend_from_slice(&(seq as f64).to_le_bytes());
    // `names.len()` fits: each index above did.
    b.extend_from_slice(&(names.len() as u16).to_le_bytes());
    // A valid channel name is at most 64 bytes.
    b.extend_from_slice(&[channel.len() as u8, 0, 0, 0, 0, 0]);
    b.extend_from_slice(channel.as_bytes());
    for n in &names {
        b.push(n.len() as u8);
        b.extend_from_slice(n.as_bytes());
    }
    for id in ids {
        b.extend_from_slice(&(id.len() as u16).to_le_bytes());
        b.extend_from_slice(id.as_bytes());
    }
    b.resize(body, 0);
    for r in rows {
        b.extend_from_slice(&r.ts.to_le_bytes());
    }
    for r in rows {
        b.extend_from_slice(&r.value.to_le_bytes());
    }
    for r in rows {
        b.extend_from_slice(&(r.count as f64).to_le_bytes());
    }
    for r in rows {
        b.extend_from_slice(&r.total.mantissa.to_le_bytes());
    }
    for i in &index {
        b.extend_from_slice(&i.to_le_bytes());
    }
    b.extend(rows.iter().map(|r| r.total.scale));
    b.extend(rows.iter().map(|r| status_byte(r.status)));
    b.resize(total, 0);
    Ok(b)
}
