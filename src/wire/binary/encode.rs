//! Encoders for binary frames v1, for tests, benchmarks, fuzzing and the demo
//! feed. They write exactly the layout the decoders read (PROTOCOL.md 3.4/3.5/3.8)
//! and refuse, with a `CoreError`, what the layout cannot carry.

use super::{
    CATCHUP_HEADER_BYTES, FLAG_SHARED_TS, HEADER_BYTES, KIND_CATCHUP, KIND_LIVE, KIND_READINGS,
    MAGIC, VERSION,
};
use crate::core::decimal::{Decimal, MAX_SCALE};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{Catchup, LiveFrame, ReadingBatch};
use crate::core::hlc::Hlc;

/// How a frame carries its timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsLayout {
    /// One timestamp per record.
    PerRecord,
    /// One timestamp for all records (flag `SHARED_TS`); every record's `ts` must be equal.
    Shared,
}

#[cold]
#[inline(never)]
fn refuse(why: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::BadField, why)
}

fn count(n: usize, what: &str) -> Result<u32, CoreError> {
    u32::try_from(n).map_err(|_| refuse(format!("too many {what} for a frame")))
}

fn pad8(buf: &mut Vec<u8>) {
    buf.resize(buf.len().div_ceil(8) * 8, 0);
}

fn header(
    buf: &mut Vec<u8>,
    kind: u8,
    layout: TsLayout,
    bindings: usize,
    records: usize,
) -> Result<(), CoreError> {
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.push(kind);
    let flags = if layout == TsLayout::Shared { FLAG_SHARED_TS } else { 0 };
    buf.extend_from_slice(&flags.to_le_bytes());
    buf.extend_from_slice(&count(bindings, "bindings")?.to_le_bytes());
    buf.extend_from_slice(&count(records, "records")?.to_le_bytes());
    debug_assert_eq!(buf.len(), HEADER_BYTES);
    Ok(())
}

/// Writes a kind-2/kind-3 binding: `u32 key, u16 meter_len, u8 resource_len`, names.
fn pair_binding(buf: &mut Vec<u8>, key: u32, meter: &str, resource: &str) -> Result<(), CoreError> {
    let meter_len =
        u16::try_from(meter.len()).map_err(|_| refuse("meter id longer than 65535 bytes"))?;
    let resource_len =
        u8::try_from(resource.len()).map_err(|_| refuse("resource longer than 255 bytes"))?;
    buf.extend_from_slice(&key.to_le_bytes());
    buf.extend_from_slice(&meter_len.to_le_bytes());
    buf.push(resource_len);
    buf.extend_from_slice(meter.as_bytes());
    buf.extend_from_slice(resource.as_bytes());
    Ok(())
}

/// Writes padding, the keys column, and padding again.
fn keys_column(buf: &mut Vec<u8>, keys: &[u32]) {
    pad8(buf);
    for k in keys {
        buf.extend_from_slice(&k.to_le_bytes());
    }
    pad8(buf);
}

/// Writes the ts column: one per record, or one shared by all.
fn ts_column(buf: &mut Vec<u8>, ts: &[f64], layout: TsLayout) -> Result<(), CoreError> {
    match layout {
        TsLayout::PerRecord => {
            for t in ts {
                buf.extend_from_slice(&t.to_le_bytes());
            }
        }
        TsLayout::Shared => {
            let first = ts.first().copied().unwrap_or(0.0);
            if ts.iter().any(|t| t.to_bits() != first.to_bits()) {
                return Err(refuse("TsLayout::Shared needs every record's ts to be equal"));
            }
            buf.extend_from_slice(&first.to_le_bytes());
        }
    }
    Ok(())
}

fn check_columns(n: usize, lens: &[usize]) -> Result<(), CoreError> {
    if lens.iter().any(|&l| l != n) {
        return Err(refuse("record columns differ in length"));
    }
    Ok(())
}

/// Encodes a kind-1 frame: `batch.bindings` bind stream keys, then one record per key.
pub fn encode_readings(batch: &ReadingBatch, layout: TsLayout) -> Result<Vec<u8>, CoreError> {
    let n = batch.keys.len();
    check_columns(n, &[batch.ts.len(), batch.values.len()])?;
    let names: usize = batch.bindings.iter().map(|(_, m)| m.len() + 6).sum();
    let mut buf = Vec::with_capacity(HEADER_BYTES + names + 8 + n * 20 + 16);
    header(&mut buf, KIND_READINGS, layout, batch.bindings.len(), n)?;
    for (key, meter) in &batch.bindings {
        let len =
            u16::try_from(meter.len()).map_err(|_| refuse("meter id longer than 65535 bytes"))?;
        buf.extend_from_slice(&key.to_le_bytes());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(meter.as_bytes());
    }
    keys_column(&mut buf, &batch.keys);
    ts_column(&mut buf, &batch.ts, layout)?;
    for v in &batch.values {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    Ok(buf)
}

/// The mantissa of `d` at `scale`, as the f64 a kind-2 frame carries.
fn mantissa(d: Decimal, scale: u8, i: usize) -> Result<f64, CoreError> {
    let m = d.to_units(scale).map_err(|_| {
        CoreError::at(ErrorCode::BadValue, i, format!("amount {d:?} does not fit scale {scale}"))
    })?;
    if !(0..=1i64 << 53).contains(&m) {
        return Err(CoreError::at(
            ErrorCode::BadValue,
            i,
            format!("amount mantissa {m} outside 0..=2^53"),
        ));
    }
    Ok(m as f64)
}

/// Encodes a kind-2 frame: `frame.bindings` bind stream keys to (meter,
/// resource); amounts are written as mantissas of `10^-scale`.
pub fn encode_live(frame: &LiveFrame, scale: u8, layout: TsLayout) -> Result<Vec<u8>, CoreError> {
    let n = frame.keys.len();
    check_columns(n, &[frame.ids.len(), frame.ts.len(), frame.amounts.len()])?;
    if scale > MAX_SCALE {
        return Err(refuse(format!("scale {scale} is above {MAX_SCALE}")));
    }
    let channel_len =
        u8::try_from(frame.channel.len()).map_err(|_| refuse("channel longer than 255 bytes"))?;
    let names: usize = frame.bindings.iter().map(|b| b.meter.len() + b.resource.len() + 7).sum();
    let mut buf = Vec::with_capacity(48 + frame.channel.len() + names + 8 + n * 28 + 16);
    header(&mut buf, KIND_LIVE, layout, frame.bindings.len(), n)?;
    buf.extend_from_slice(&(frame.epoch as f64).to_le_bytes());
    buf.extend_from_slice(&(frame.seq as f64).to_le_bytes());
    buf.extend_from_slice(&(frame.stamp.wall_ms as f64).to_le_bytes());
    buf.extend_from_slice(&frame.stamp.counter.to_le_bytes());
    buf.push(scale);
    buf.push(channel_len);
    buf.extend_from_slice(&0u16.to_le_bytes());
    buf.extend_from_slice(frame.channel.as_bytes());
    for b in &frame.bindings {
        pair_binding(&mut buf, b.key, &b.meter, &b.resource)?;
    }
    keys_column(&mut buf, &frame.keys);
    for id in &frame.ids {
        buf.extend_from_slice(&(*id as f64).to_le_bytes());
    }
    ts_column(&mut buf, &frame.ts, layout)?;
    for (i, a) in frame.amounts.iter().enumerate() {
        buf.extend_from_slice(&mantissa(*a, scale, i)?.to_le_bytes());
    }
    Ok(buf)
}

/// Encodes a kind-3 frame (a REST catch-up): one binding per distinct
/// `(meter, resource)` of `c.buckets` (an empty meter name for a resource
/// total), keys in order of first use, totals as mantissas of `10^-scale`;
/// absent range or server time as NaN. Written by [`encode_catchup_columns`].
pub fn encode_catchup(c: &Catchup, scale: u8) -> Result<Vec<u8>, CoreError> {
    if scale > MAX_SCALE {
        return Err(refuse(format!("scale {scale} is above {MAX_SCALE}")));
    }
    let mut keys: Vec<u32> = Vec::with_capacity(c.buckets.len());
    let mut bound: std::collections::HashMap<(&str, &str), u32> = std::collections::HashMap::new();
    let mut bindings: Vec<(&str, &str)> = Vec::new();
    for b in &c.buckets {
        let pair = (b.meter.as_deref().unwrap_or(""), b.resource.as_str());
        let key = *bound.entry(pair).or_insert_with(|| {
            bindings.push(pair);
            bindings.len() as u32 - 1
        });
        keys.push(key);
    }
    let mut mantissas = Vec::with_capacity(c.buckets.len());
    for (i, b) in c.buckets.iter().enumerate() {
        mantissas.push(b.total.to_units(scale).map_err(|_| {
            CoreError::at(
                ErrorCode::BadValue,
                i,
                format!("amount {:?} does not fit scale {scale}", b.total),
            )
        })?);
    }
    let head = CatchupHead {
        as_of: c.as_of,
        scale,
        from_hour_ms: c.from_hour_ms,
        to_hour_ms: c.to_hour_ms,
        server_time_ms: c.server_time_ms,
    };
    let records =
        keys.iter().zip(&c.buckets).zip(&mantissas).map(|((&k, b), &m)| (k, b.hour_ms, m));
    encode_catchup_columns(&head, &bindings, c.buckets.len(), records)
}

/// The kind-3 header fields (PROTOCOL.md 3.8) for [`encode_catchup_columns`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CatchupHead {
    /// The watermark.
    pub as_of: Hlc,
    /// Totals are mantissas of `10^-scale`.
    pub scale: u8,
    /// Hour range and server time; `None` is written as NaN (absent).
    pub from_hour_ms: Option<f64>,
    pub to_hour_ms: Option<f64>,
    pub server_time_ms: Option<f64>,
}

/// Writes a kind-3 frame from prepared columns, the one writer of the layout
/// (PROTOCOL.md 3.8): `bindings[k]` names key `k` (`(meter, resource)`, an
/// empty meter for a resource total); `records` yields exactly `count`
/// `(key, hour start ms, total mantissa)`. The frame's size is known before
/// the first byte, so it is one allocation, and each record's three fields
/// go straight to their columns: a large catch-up (the feed's per-meter
/// hours, 150,000 records) costs a pass over its records, no per-record
/// allocation. Refuses (nothing returned) a mantissa outside `0..=2^53`, a
/// record count other than `count`, names too long for their length fields.
pub fn encode_catchup_columns(
    head: &CatchupHead,
    bindings: &[(&str, &str)],
    n_records: usize,
    records: impl IntoIterator<Item = (u32, f64, i64)>,
) -> Result<Vec<u8>, CoreError> {
    if head.scale > MAX_SCALE {
        return Err(refuse(format!("scale {} is above {MAX_SCALE}", head.scale)));
    }
    let names: usize = bindings.iter().map(|(m, r)| 7 + m.len() + r.len()).sum();
    let keys_at = (HEADER_BYTES + CATCHUP_HEADER_BYTES + names).div_ceil(8) * 8;
    let hours_at = (keys_at + 4 * n_records).div_ceil(8) * 8;
    let len = hours_at + 16 * n_records;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| {
        CoreError::new(ErrorCode::OutOfMemory, format!("no memory for a {len}-byte catch-up"))
    })?;
    header(&mut buf, KIND_CATCHUP, TsLayout::PerRecord, bindings.len(), n_records)?;
    buf.extend_from_slice(&(head.as_of.wall_ms as f64).to_le_bytes());
    buf.extend_from_slice(&head.as_of.counter.to_le_bytes());
    buf.extend_from_slice(&[head.scale, 0, 0, 0]);
    for x in [head.from_hour_ms, head.to_hour_ms, head.server_time_ms] {
        buf.extend_from_slice(&x.unwrap_or(f64::NAN).to_le_bytes());
    }
    for (key, (meter, resource)) in bindings.iter().enumerate() {
        pair_binding(&mut buf, key as u32, meter, resource)?;
    }
    debug_assert!(buf.len() <= keys_at);
    buf.resize(len, 0);
    let columns = buf.get_mut(keys_at..).unwrap_or_default();
    let (keys, rest) = columns.split_at_mut((hours_at - keys_at).min(columns.len()));
    let (hours, totals) = rest.split_at_mut((8 * n_records).min(rest.len()));
    let mut records = records.into_iter();
    let slots =
        keys.chunks_exact_mut(4).zip(hours.chunks_exact_mut(8)).zip(totals.chunks_exact_mut(8));
    let mut written = 0usize;
    for (((k, h), t), (key, hour_ms, m)) in slots.zip(records.by_ref()) {
        if !(0..=1i64 << 53).contains(&m) {
            return Err(CoreError::at(
                ErrorCode::BadValue,
                written,
                format!("total mantissa {m} outside 0..=2^53"),
            ));
        }
        k.copy_from_slice(&key.to_le_bytes());
        h.copy_from_slice(&hour_ms.to_le_bytes());
        t.copy_from_slice(&(m as f64).to_le_bytes());
        written += 1;
    }
    if written != n_records || records.next().is_some() {
        return Err(refuse(format!("catch-up records do not number {n_records}")));
    }
    Ok(buf)
}
