//! Binary frames, version 1 (PROTOCOL.md 3.4, 3.5, 3.8): kind 1 (readings),
//! kind 2 (live ledger frame) and kind 3 (REST catch-up, in [`catchup`]),
//! decoded into core inputs; the Rust-side encoders live in [`encode`]
//! (re-exported here).
//!
//! Lengths are checked exactly before anything is copied: a frame shorter than
//! its header or declared contents is `truncated_frame`, trailing bytes are
//! `bad_frame`. The columns are then copied with `chunks_exact` and
//! `from_le_bytes`, three or four allocations per frame and none per record.
//! Kind-2 records are validated column-wise; only a frame with a bad record
//! takes the slower compacting pass that records positions.
//!
//! Kind-1 values and timestamps are range-checked by the engine against the
//! clock and `maxAbsValue`; binding ids and keys are checked by the owner of
//! the key table (the engine for kind 1, the ledger for kind 2). A binding that
//! is not UTF-8 cannot be represented and rejects the whole frame.

mod catchup;
mod encode;
mod meters;

pub use catchup::CATCHUP_HEADER_BYTES;
pub use encode::{
    encode_catchup, encode_catchup_columns, encode_live, encode_readings, CatchupHead, TsLayout,
};
pub use meters::{encode_meters_delta, METERS_HEADER_BYTES};

use super::field::{meter_id_problem, MAX_WHOLE};
use super::{check_payload_size, record_text, Arrival, Envelope};
use crate::core::config::Config;
use crate::core::decimal::{Decimal, MAX_SCALE};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{Inbound, KeyScope, LiveBinding, LiveFrame, ReadingBatch};
use crate::core::hlc::Hlc;

/// The four bytes every frame starts with, `"MFLW"`.
pub const MAGIC: [u8; 4] = *b"MFLW";
/// The frame format version.
pub const VERSION: u8 = 1;
/// Kind 1: readings for anomaly detection.
pub const KIND_READINGS: u8 = 1;
/// Kind 2: a live ledger frame.
pub const KIND_LIVE: u8 = 2;
/// Kind 3: a REST catch-up result.
pub const KIND_CATCHUP: u8 = 3;
/// Kind 4: a `meters.<group>` DELTA on the socket (negotiated).
pub const KIND_METERS_DELTA: u8 = 4;
/// Flag bit 0: one timestamp for all records.
pub const FLAG_SHARED_TS: u16 = 1;
/// Bytes of the common header.
pub const HEADER_BYTES: usize = 16;
/// Bytes of the kind-2 header before the channel name.
pub const LIVE_HEADER_BYTES: usize = 32;

/// Decodes a binary frame carried by `envelope`; `arrival` times a catch-up.
pub(crate) fn decode(envelope: Envelope, bytes: &[u8], arrival: Arrival, cfg: &Config) -> Inbound {
    let decoded = header(envelope, bytes, cfg).and_then(|h| match h.kind {
        KIND_READINGS => readings(&h, bytes).map(Inbound::Readings),
        _ => cold_frame(&h, bytes, arrival, cfg),
    });
    decoded.unwrap_or_else(Inbound::Rejected)
}

/// Catch-up (kind 3) and live (kind 2) frames: out of line, in the module's
/// cold part (scripts/split-wasm.mjs, docs/SIZE.md, "The split").
#[inline(never)]
fn cold_frame(
    h: &Header,
    bytes: &[u8],
    arrival: Arrival,
    cfg: &Config,
) -> Result<Inbound, CoreError> {
    match h.kind {
        KIND_CATCHUP => catchup::decode(h, bytes, arrival, cfg).map(Inbound::Catchup),
        _ => live(h, bytes, cfg).map(Inbound::Live),
    }
}

/// Whether `bytes` claims to be a kind-4 frame (magic and kind byte); the
/// socket's binary messages are kind 2 otherwise.
pub fn is_meters_delta(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC) && bytes.get(5) == Some(&KIND_METERS_DELTA)
}

/// Decodes a kind-4 frame (a `meters.<group>` DELTA from the socket) into its
/// op. Never panics; every refusal is a typed error.
pub fn decode_meters_delta(
    bytes: &[u8],
    cfg: &Config,
) -> Result<crate::core::session::ServerOp, CoreError> {
    let h = common_header(bytes, cfg)?;
    if h.kind != KIND_METERS_DELTA {
        return Err(bad_frame(format!("binary frame: kind {} is not a DELTA (4)", h.kind)));
    }
    meters::decode(&h, bytes)
}

fn truncated(what: &str, at: usize, len: usize) -> CoreError {
    CoreError::new(
        ErrorCode::TruncatedFrame,
        format!("binary frame ends at byte {len} inside its {what} (which starts at byte {at})"),
    )
}

fn bad_frame(why: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::BadFrame, why)
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CoreError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(truncated(what, self.pos, self.buf.len())),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CoreError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, CoreError> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }

    fn u16(&mut self, what: &str) -> Result<u16, CoreError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, CoreError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn f64(&mut self, what: &str) -> Result<f64, CoreError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// Skips the zero padding up to the next multiple of 8 from the frame start.
    fn pad8(&mut self, what: &str) -> Result<(), CoreError> {
        let at = self.pos;
        let pad = self.take((8 - at % 8) % 8, what)?;
        if pad.iter().any(|&b| b != 0) {
            return Err(bad_frame(format!("binary frame: non-zero padding at byte {at}")));
        }
        Ok(())
    }

    /// `n` values of `width` bytes each.
    fn column(&mut self, n: u32, width: usize, what: &str) -> Result<&'a [u8], CoreError> {
        match (n as usize).checked_mul(width) {
            Some(bytes) => self.take(bytes, what),
            None => Err(truncated(what, self.pos, self.buf.len())),
        }
    }

    /// A kind-2/kind-3 binding: `u32 key, u16 meter_len, u8 resource_len`, then
    /// the names, which must be UTF-8. The meter id must follow the one meter-id
    /// rule; only a kind-3 binding may leave it empty (`empty_meter`: a resource
    /// total).
    fn pair_binding(&mut self, empty_meter: bool) -> Result<(u32, &'a str, &'a str), CoreError> {
        let key = self.u32("bindings")?;
        let (meter_len, resource_len) = (self.u16("bindings")?, self.u8("bindings")?);
        let meter = self.take(usize::from(meter_len), "bindings")?;
        let resource = self.take(usize::from(resource_len), "bindings")?;
        let meter = if empty_meter && meter.is_empty() { "" } else { meter_id(meter, key)? };
        Ok((key, meter, utf8(resource, ErrorCode::UnknownResource, "resource", key)?))
    }

    fn finish(&self) -> Result<(), CoreError> {
        if self.pos != self.buf.len() {
            return Err(bad_frame(format!(
                "binary frame: {} trailing bytes after the last column (frame is {} bytes, contents end at {})",
                self.buf.len() - self.pos,
                self.buf.len(),
                self.pos
            )));
        }
        Ok(())
    }
}

#[inline]
fn le_u32(c: &[u8]) -> u32 {
    u32::from_le_bytes(c.try_into().unwrap_or([0; 4]))
}

#[inline]
fn le_f64(c: &[u8]) -> f64 {
    f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))
}

/// The common header.
struct Header {
    kind: u8,
    shared_ts: bool,
    bindings: u32,
    records: u32,
}

fn header(envelope: Envelope, bytes: &[u8], cfg: &Config) -> Result<Header, CoreError> {
    let h = common_header(bytes, cfg)?;
    let kind = h.kind;
    let fits = matches!(
        (envelope, kind),
        (Envelope::Readings, KIND_READINGS)
            | (Envelope::Live, KIND_LIVE)
            | (Envelope::Catchup, KIND_CATCHUP)
    );
    if !fits {
        return Err(CoreError::new(
            ErrorCode::UnknownType,
            format!(
                "a '{}' message does not carry a binary frame of kind {kind}",
                envelope.as_str()
            ),
        ));
    }
    Ok(h)
}

/// The common header, checked for every kind: size, magic, version, a known
/// kind and flags, and `records` within `maxBatchSize`.
fn common_header(bytes: &[u8], cfg: &Config) -> Result<Header, CoreError> {
    check_payload_size(bytes.len(), cfg)?;
    let mut r = Reader { buf: bytes, pos: 0 };
    let magic: [u8; 4] = r.array("header")?;
    let (version, kind, flags) = (r.u8("header")?, r.u8("header")?, r.u16("header")?);
    let (bindings, records) = (r.u32("header")?, r.u32("header")?);
    if magic != MAGIC {
        return Err(bad_frame(format!("binary frame: magic {magic:02x?} is not \"MFLW\"")));
    }
    if version != VERSION {
        return Err(bad_frame(format!("binary frame: version {version} is not 1")));
    }
    if !matches!(kind, KIND_READINGS | KIND_LIVE | KIND_CATCHUP | KIND_METERS_DELTA) {
        return Err(bad_frame(format!("binary frame: unknown kind {kind}")));
    }
    if flags & !FLAG_SHARED_TS != 0 {
        return Err(bad_frame(format!("binary frame: unknown flags {flags:#06x}")));
    }
    super::check_batch_size("binary frame records", records as usize, cfg)?;
    Ok(Header { kind, shared_ts: flags & FLAG_SHARED_TS != 0, bindings, records })
}

/// The number of bindings `n` as a capacity, once the bytes left can hold
/// them at `min_bytes` each: otherwise the frame is `truncated_frame` before
/// anything is reserved or read (so a count far past the payload costs nothing).
fn bindings_fit(n: u32, r: &Reader<'_>, min_bytes: usize) -> Result<usize, CoreError> {
    let left = r.buf.len().saturating_sub(r.pos);
    match usize::try_from(n).ok().and_then(|n| n.checked_mul(min_bytes)) {
        Some(need) if need <= left => Ok(n as usize),
        _ => Err(truncated("bindings", r.pos, r.buf.len())),
    }
}

/// A binding's meter id, checked by the one meter-id rule (`field::meter_id_problem`):
/// a bad one is `bad_meter_id` for the whole frame, since its key cannot be bound.
fn meter_id(bytes: &[u8], key: u32) -> Result<&str, CoreError> {
    let id = utf8(bytes, ErrorCode::BadMeterId, "meter id", key)?;
    match meter_id_problem(id) {
        None => Ok(id),
        Some(why) => Err(CoreError::new(
            ErrorCode::BadMeterId,
            format!("binary frame: the meter id bound to key {key}: {why}"),
        )),
    }
}

fn utf8<'a>(bytes: &'a [u8], code: ErrorCode, what: &str, key: u32) -> Result<&'a str, CoreError> {
    std::str::from_utf8(bytes).map_err(|_| {
        CoreError::new(code, format!("binary frame: the {what} bound to key {key} is not UTF-8"))
    })
}

fn readings(h: &Header, bytes: &[u8]) -> Result<ReadingBatch, CoreError> {
    let mut r = Reader { buf: bytes, pos: HEADER_BYTES };
    let mut bindings = Vec::with_capacity(bindings_fit(h.bindings, &r, 6)?);
    for _ in 0..h.bindings {
        let key = r.u32("bindings")?;
        let len = r.u16("bindings")?;
        let id = r.take(usize::from(len), "bindings")?;
        bindings.push((key, meter_id(id, key)?.to_owned()));
    }
    r.pad8("padding after the bindings")?;
    let keys = r.column(h.records, 4, "keys column")?;
    r.pad8("padding after the keys")?;
    let ts = r.column(if h.shared_ts { 1 } else { h.records }, 8, "ts column")?;
    let values = r.column(h.records, 8, "values column")?;
    r.finish()?;
    let n = h.records as usize;
    Ok(ReadingBatch {
        scope: KeyScope::Stream,
        bindings,
        keys: keys.chunks_exact(4).map(le_u32).collect(),
        ts: if h.shared_ts {
            vec![le_f64(ts); n]
        } else {
            ts.chunks_exact(8).map(le_f64).collect()
        },
        values: values.chunks_exact(8).map(le_f64).collect(),
        positions: Vec::new(),
        errors: Vec::new(),
    })
}

/// A whole number in `0..=2^53` given as an f64, if it is one.
#[inline]
fn whole(x: f64) -> Option<u64> {
    let u = x as u64; // saturating; NaN becomes 0
    (u as f64 == x && u <= MAX_WHOLE).then_some(u)
}

fn live(h: &Header, bytes: &[u8], cfg: &Config) -> Result<LiveFrame, CoreError> {
    let mut r = Reader { buf: bytes, pos: HEADER_BYTES };
    let (epoch, seq) = (r.f64("kind-2 header")?, r.f64("kind-2 header")?);
    let (wall_ms, counter) = (r.f64("kind-2 header")?, r.u32("kind-2 header")?);
    let (scale, channel_len, reserved) =
        (r.u8("kind-2 header")?, r.u8("kind-2 header")?, r.u16("kind-2 header")?);
    let channel = r.take(usize::from(channel_len), "channel")?;
    let bad_value = |what: &str, x: f64| {
        CoreError::new(
            ErrorCode::BadValue,
            format!("binary frame: {what} {x} is not a whole number in 0..=2^53"),
        )
    };
    let epoch = whole(epoch).ok_or_else(|| bad_value("epoch", epoch))?;
    let seq = whole(seq).ok_or_else(|| bad_value("seq", seq))?;
    let stamp = Hlc::from_f64(wall_ms, f64::from(counter)).ok_or_else(|| {
        CoreError::new(
            ErrorCode::BadTimestamp,
            format!("binary frame: stamp wallMs {wall_ms} counter {counter} out of range"),
        )
    })?;
    if scale > MAX_SCALE {
        return Err(bad_frame(format!("binary frame: amount scale {scale} is above {MAX_SCALE}")));
    }
    if reserved != 0 {
        return Err(bad_frame("binary frame: reserved kind-2 header bytes are not zero"));
    }
    let channel = std::str::from_utf8(channel)
        .map_err(|_| bad_frame("binary frame: channel is not UTF-8"))?
        .to_owned();

    let mut bindings = Vec::with_capacity(bindings_fit(h.bindings, &r, 7)?);
    for _ in 0..h.bindings {
        let (key, meter, resource) = r.pair_binding(false)?;
        bindings.push(LiveBinding { key, meter: meter.to_owned(), resource: resource.to_owned() });
    }
    r.pad8("padding after the bindings")?;
    let keys = r.column(h.records, 4, "keys column")?;
    r.pad8("padding after the keys")?;
    let ids = r.column(h.records, 8, "ids column")?;
    let ts = r.column(if h.shared_ts { 1 } else { h.records }, 8, "ts column")?;
    let amounts = r.column(h.records, 8, "amounts column")?;
    r.finish()?;

    let n = h.records as usize;
    let mut f = LiveFrame {
        channel,
        epoch,
        seq,
        stamp,
        scope: KeyScope::Stream,
        bindings,
        ..Default::default()
    };
    f.keys = keys.chunks_exact(4).map(le_u32).collect();
    let mut ok = true;
    f.ids = ids
        .chunks_exact(8)
        .map(|c| {
            let x = le_f64(c);
            ok &= whole(x).is_some();
            x as u64
        })
        .collect();
    f.ts = if h.shared_ts {
        let t = le_f64(ts);
        ok &= t.is_finite();
        vec![t; n]
    } else {
        ts.chunks_exact(8)
            .map(|c| {
                let t = le_f64(c);
                ok &= t.is_finite();
                t
            })
            .collect()
    };
    f.amounts = amounts
        .chunks_exact(8)
        .map(|c| {
            let x = le_f64(c);
            ok &= whole(x).is_some();
            Decimal::new(x as i64, scale)
        })
        .collect();
    if !ok {
        drop_bad_records(&mut f, ids, amounts, cfg);
    }
    Ok(f)
}

/// Removes the records whose id, timestamp or amount is invalid, reporting
/// each with its position (the text only under the cap, `wire::record_text`),
/// and records the positions of the rest.
fn drop_bad_records(f: &mut LiveFrame, ids: &[u8], amounts: &[u8], cfg: &Config) {
    // All four columns have one entry per record by construction; the minimum
    // keeps every swap below in bounds regardless.
    let n = f.keys.len().min(f.ids.len()).min(f.ts.len()).min(f.amounts.len());
    let mut keep = 0;
    f.positions = Vec::with_capacity(n);
    let raw_ids = ids.chunks_exact(8).map(le_f64);
    let raw_amounts = amounts.chunks_exact(8).map(le_f64);
    for (i, (id, amount)) in raw_ids.zip(raw_amounts).enumerate().take(n) {
        let ts = f.ts.get(i).copied().unwrap_or(f64::NAN);
        let shown = f.errors.len();
        let err = if whole(id).is_none() {
            Some((
                ErrorCode::BadValue,
                record_text(shown, cfg, || {
                    format!("record {i}: id {id} is not a whole number in 0..=2^53")
                }),
            ))
        } else if !ts.is_finite() {
            Some((
                ErrorCode::BadTimestamp,
                record_text(shown, cfg, || format!("record {i}: ts {ts} is not finite")),
            ))
        } else if whole(amount).is_none() {
            Some((
                ErrorCode::BadValue,
                record_text(shown, cfg, || {
                    format!(
                        "record {i}: amount mantissa {amount} is not a whole number in 0..=2^53"
                    )
                }),
            ))
        } else {
            None
        };
        if let Some((code, message)) = err {
            f.errors.push(CoreError::at(code, i, message));
            continue;
        }
        f.keys.swap(keep, i);
        f.ids.swap(keep, i);
        f.ts.swap(keep, i);
        f.amounts.swap(keep, i);
        f.positions.push(i as u32);
        keep += 1;
    }
    f.keys.truncate(keep);
    f.ids.truncate(keep);
    f.ts.truncate(keep);
    f.amounts.truncate(keep);
}
