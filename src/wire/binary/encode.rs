//! Encoders for binary frames v1, for tests, benchmarks, fuzzing and the demo
//! feed. They write exactly the layout the decoders read (PROTOCOL.md 3.4/3.5/3.8)
//! and refuse, with a `CoreError`, what the layout cannot carry.

use super::{FLAG_SHARED_TS, HEADER_BYTES, KIND_CATCHUP, KIND_LIVE, KIND_READINGS, MAGIC, VERSION};
use crate::core::decimal::{Decimal, MAX_SCALE};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{Catchup, LiveFrame, ReadingBatch};

/// How a frame carries its timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsLayout {
    /// One timestamp per record.
    PerRecord,
    /// One timestamp for all records (flag `SHARED_TS`); every record's `ts` must be equal.
    Shared,
}

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
/// total), totals as mantissas of `10^-scale`; absent range or server time as NaN.
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
    let mut buf = Vec::with_capacity(HEADER_BYTES + 40 + bindings.len() * 24 + keys.len() * 20);
    header(&mut buf, KIND_CATCHUP, TsLayout::PerRecord, bindings.len(), keys.len())?;
    buf.extend_from_slice(&(c.as_of.wall_ms as f64).to_le_bytes());
    buf.extend_from_slice(&c.as_of.counter.to_le_bytes());
    buf.extend_from_slice(&[scale, 0, 0, 0]);
    for x in [c.from_hour_ms, c.to_hour_ms, c.server_time_ms] {
        buf.extend_from_slice(&x.unwrap_or(f64::NAN).to_le_bytes());
    }
    for (key, (meter, resource)) in bindings.iter().enumerate() {
        pair_binding(&mut buf, key as u32, meter, resource)?;
    }
    keys_column(&mut buf, &keys);
    for b in &c.buckets {
        buf.extend_from_slice(&b.hour_ms.to_le_bytes());
    }
    for (i, b) in c.buckets.iter().enumerate() {
        buf.extend_from_slice(&mantissa(b.total, scale, i)?.to_le_bytes());
    }
    Ok(buf)
}
