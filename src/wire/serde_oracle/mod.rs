//! The serde_json-based JSON payload decoder this crate used before
//! `json.rs` moved onto `wire::lite` (issue 9: no serde_json in the `.wasm`),
//! kept verbatim, natively only, as the oracle `tests/wire_lite_payloads.rs`
//! holds the new decoder to: same values, same errors, on every payload.
//! Not part of the API; not built for wasm32.

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;

mod doc;
mod field;

use crate::core::config::{Config, ResourceSpec};
use crate::core::decimal::{Decimal, UnitsError};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, ReadingBatch, StreamHello,
};
use crate::wire::{check_batch_size, check_payload_size, Arrival, Envelope};
use doc::{Doc, List};
use field::{Loc, MAX_WHOLE};

/// Longest channel name, in bytes (the binary frame carries it in a `u8`).
const MAX_CHANNEL_BYTES: usize = 255;

const HOUR_MS: f64 = 3_600_000.0;

/// The serde_json decoder of a JSON payload (no readings scanner in front).
#[doc(hidden)]
pub fn decode_general(envelope: Envelope, text: &str, arrival: Arrival, cfg: &Config) -> Inbound {
    match check_payload_size(text.len(), cfg).and_then(|()| general(envelope, text, arrival, cfg)) {
        Ok(inbound) => inbound,
        Err(e) => Inbound::Rejected(e),
    }
}

fn general(
    envelope: Envelope,
    text: &str,
    arrival: Arrival,
    cfg: &Config,
) -> Result<Inbound, CoreError> {
    let what = || format!("{} payload", envelope.as_str());
    let doc =
        doc::parse(text, cfg.max_batch as usize).map_err(|e| field::payload_error(&e, &what()))?;
    field::version(doc.v)?;
    let ty = match doc.ty {
        Some(raw) => Some(field::string(raw, Loc::top(), "type")?),
        None => None,
    };
    match (envelope, ty.as_deref()) {
        (Envelope::Readings, None | Some("readings")) => readings(&doc, cfg).map(Inbound::Readings),
        (Envelope::Live, Some("frame")) => frame(&doc, cfg).map(Inbound::Live),
        (Envelope::Live, Some("hello")) => hello(&doc).map(Inbound::Hello),
        (Envelope::Live, None) => Err(Loc::top().missing("type")),
        (Envelope::Catchup, None | Some("catchup")) => {
            catchup(&doc, arrival, cfg).map(Inbound::Catchup)
        }
        (_, Some(other)) => Err(CoreError::new(
            ErrorCode::UnknownType,
            format!(
                "type: a '{}' message does not carry a payload of type '{}'",
                envelope.as_str(),
                other.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// The raw items of a required list field, at most `maxBatch` of them.
fn items<'a, 'd>(
    list: &'d List<'a>,
    field: &str,
    cfg: &Config,
) -> Result<&'d [&'a RawValue], CoreError> {
    match list {
        List::Items(items) => Ok(items),
        List::TooMany(n) => {
            check_batch_size(field, *n, cfg)?;
            Err(Loc::top().err(ErrorCode::PayloadTooLarge, field, "too many items"))
        }
        List::NotArray => Err(Loc::top().err(ErrorCode::BadField, field, "must be an array")),
        List::Missing => Err(Loc::top().missing(field)),
    }
}

/// Keeps `positions` in step with the records once an item has been skipped
/// (`skipped`): empty while record `i` is at position `i`.
/// `raw` if it is a JSON object (serde would also read an array positionally
/// into a struct, which the protocol does not allow).
fn object(raw: &RawValue) -> Option<&RawValue> {
    raw.get().starts_with('{').then_some(raw)
}

/// The error for an item that is not an object of distinct fields.
fn not_object(loc: Loc<'_>) -> CoreError {
    loc.err(ErrorCode::BadField, "", "must be an object with each field at most once")
}

fn note_position(positions: &mut Vec<u32>, records_before: usize, skipped: bool, pos: usize) {
    if skipped {
        if positions.is_empty() {
            positions.extend((0..records_before).map(|i| i as u32));
        }
        positions.push(u32::try_from(pos).unwrap_or(u32::MAX));
    }
}

// ---- 3.1 readings ----

#[derive(Deserialize)]
struct Reading<'a> {
    #[serde(borrow)]
    meter: Cow<'a, str>,
    ts: f64,
    value: f64,
}

#[derive(Deserialize)]
struct RawReading<'a> {
    #[serde(borrow, default)]
    meter: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// The texts the engine would never show: those of the errors past
/// `maxErrorsPerBatch`, which the decoders do not make (`wire::record_text`).
/// Here they are made, then dropped: the same answer by another route.
fn untold(errors: &mut [CoreError], cfg: &Config) {
    for e in errors.iter_mut().skip(cfg.max_errors_per_batch as usize) {
        e.message = String::new();
    }
}

fn readings(doc: &Doc<'_>, cfg: &Config) -> Result<ReadingBatch, CoreError> {
    let list = items(&doc.readings, "readings", cfg)?;
    let n = list.len();
    let mut b = ReadingBatch {
        scope: KeyScope::Batch,
        keys: Vec::with_capacity(n),
        ts: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
        ..Default::default()
    };
    let mut keys: FxHashMap<Cow<'_, str>, u32> = FxHashMap::default();
    for (pos, raw) in list.iter().copied().enumerate() {
        let r = match object(raw).and_then(|r| serde_json::from_str::<Reading<'_>>(r.get()).ok()) {
            Some(r) => {
                field::check_meter_id(&r.meter, Loc::item("readings", pos), "meter").map(|_| r)
            }
            None => explain_reading(raw, pos),
        };
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                b.errors.push(e);
                continue;
            }
        };
        let key = match keys.get(r.meter.as_ref()) {
            Some(&k) => k,
            None => {
                let k = b.bindings.len() as u32;
                b.bindings.push((k, r.meter.to_string()));
                keys.insert(r.meter, k);
                k
            }
        };
        note_position(&mut b.positions, b.keys.len(), !b.errors.is_empty(), pos);
        b.keys.push(key);
        b.ts.push(r.ts);
        b.values.push(r.value);
    }
    untold(&mut b.errors, cfg);
    Ok(b)
}

/// Why a reading failed the fast parse, as the first bad field's error.
fn explain_reading(raw: &RawValue, pos: usize) -> Result<Reading<'_>, CoreError> {
    let loc = Loc::item("readings", pos);
    let r: RawReading<'_> = object(raw)
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .ok_or_else(|| not_object(loc))?;
    let meter = field::meter_id(field::required(r.meter, loc, "meter")?, loc, "meter")?;
    let ts = field::number(field::required(r.ts, loc, "ts")?, loc, "ts", ErrorCode::BadTimestamp)?;
    let value =
        field::number(field::required(r.value, loc, "value")?, loc, "value", ErrorCode::BadValue)?;
    Ok(Reading { meter, ts, value })
}

// ---- 3.2 live frame ----

#[derive(Deserialize)]
struct FrameReading<'a> {
    #[serde(borrow)]
    meter: Cow<'a, str>,
    #[serde(borrow)]
    resource: Cow<'a, str>,
    #[serde(borrow)]
    id: &'a RawValue,
    ts: f64,
    #[serde(borrow)]
    amount: &'a RawValue,
}

#[derive(Deserialize)]
struct RawFrameReading<'a> {
    #[serde(borrow, default)]
    meter: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
}

/// A checked live reading.
struct LiveReading<'a> {
    meter: Cow<'a, str>,
    resource: Cow<'a, str>,
    id: u64,
    ts: f64,
    amount: Decimal,
}

fn channel(raw: Option<&RawValue>) -> Result<String, CoreError> {
    let Some(raw) = raw else { return Ok(String::new()) };
    let c = field::string(raw, Loc::top(), "channel")?;
    if c.len() > MAX_CHANNEL_BYTES {
        return Err(Loc::top().err(
            ErrorCode::BadField,
            "channel",
            format_args!("must be at most {MAX_CHANNEL_BYTES} bytes, got {}", c.len()),
        ));
    }
    Ok(c.into_owned())
}

fn frame(doc: &Doc<'_>, cfg: &Config) -> Result<LiveFrame, CoreError> {
    let top = Loc::top();
    let channel = channel(doc.channel)?;
    let epoch = field::whole(field::required(doc.epoch, top, "epoch")?, top, "epoch", MAX_WHOLE)?;
    let seq = field::whole(field::required(doc.seq, top, "seq")?, top, "seq", MAX_WHOLE)?;
    let stamp = field::hlc(field::required(doc.hlc, top, "hlc")?, top, "hlc")?;
    let list = items(&doc.readings, "readings", cfg)?;
    let n = list.len();
    let mut f = LiveFrame {
        channel,
        epoch,
        seq,
        stamp,
        scope: KeyScope::Batch,
        keys: Vec::with_capacity(n),
        ids: Vec::with_capacity(n),
        ts: Vec::with_capacity(n),
        amounts: Vec::with_capacity(n),
        ..Default::default()
    };
    let mut keys: FxHashMap<(Cow<'_, str>, Cow<'_, str>), u32> = FxHashMap::default();
    for (pos, raw) in list.iter().copied().enumerate() {
        let r = match object(raw)
            .and_then(|r| serde_json::from_str::<FrameReading<'_>>(r.get()).ok())
        {
            Some(r) => check_live(r, pos, cfg),
            None => explain_live(raw, pos, cfg),
        };
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                f.errors.push(e);
                continue;
            }
        };
        let pair = (r.meter, r.resource);
        let key = match keys.get(&pair) {
            Some(&k) => k,
            None => {
                let k = f.bindings.len() as u32;
                f.bindings.push(LiveBinding {
                    key: k,
                    meter: pair.0.to_string(),
                    resource: pair.1.to_string(),
                });
                keys.insert(pair, k);
                k
            }
        };
        note_position(&mut f.positions, f.keys.len(), !f.errors.is_empty(), pos);
        f.keys.push(key);
        f.ids.push(r.id);
        f.ts.push(r.ts);
        f.amounts.push(r.amount);
    }
    untold(&mut f.errors, cfg);
    Ok(f)
}

/// The configured resource named `name`.
fn resource<'c>(name: &str, cfg: &'c Config, loc: Loc<'_>) -> Result<&'c ResourceSpec, CoreError> {
    cfg.resources.iter().find(|r| r.name == name).ok_or_else(|| {
        loc.err(
            ErrorCode::UnknownResource,
            "resource",
            format_args!(
                "'{}' is not a configured resource",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Checks an amount or total: not negative, and a whole number of the resource's
/// resolution that fits.
fn check_amount(
    d: Decimal,
    spec: &ResourceSpec,
    loc: Loc<'_>,
    field: &str,
) -> Result<Decimal, CoreError> {
    if d.is_negative() {
        return Err(loc.err(ErrorCode::BadValue, field, "must not be negative"));
    }
    match d.to_units(spec.decimals) {
        Ok(_) => Ok(d),
        Err(UnitsError::TooFine) => Err(loc.err(
            ErrorCode::BadValue,
            field,
            format_args!(
                "is finer than the resolution of '{}' ({} decimals)",
                spec.name, spec.decimals
            ),
        )),
        Err(UnitsError::Overflow) => {
            Err(loc.err(ErrorCode::BadValue, field, "is too large to count exactly"))
        }
    }
}

fn check_live<'a>(
    r: FrameReading<'a>,
    pos: usize,
    cfg: &Config,
) -> Result<LiveReading<'a>, CoreError> {
    let loc = Loc::item("readings", pos);
    field::check_meter_id(&r.meter, loc, "meter")?;
    let spec = resource(&r.resource, cfg, loc)?;
    let id = field::whole(r.id, loc, "id", MAX_WHOLE)?;
    let amount = check_amount(field::decimal(r.amount, loc, "amount")?, spec, loc, "amount")?;
    Ok(LiveReading { meter: r.meter, resource: r.resource, id, ts: r.ts, amount })
}

fn explain_live<'a>(
    raw: &'a RawValue,
    pos: usize,
    cfg: &Config,
) -> Result<LiveReading<'a>, CoreError> {
    let loc = Loc::item("readings", pos);
    let r: RawFrameReading<'_> = object(raw)
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .ok_or_else(|| not_object(loc))?;
    let meter = field::meter_id(field::required(r.meter, loc, "meter")?, loc, "meter")?;
    let resource_name =
        field::string(field::required(r.resource, loc, "resource")?, loc, "resource")?;
    let spec = resource(&resource_name, cfg, loc)?;
    let id = field::whole(field::required(r.id, loc, "id")?, loc, "id", MAX_WHOLE)?;
    let ts = field::number(field::required(r.ts, loc, "ts")?, loc, "ts", ErrorCode::BadTimestamp)?;
    let amount = field::decimal(field::required(r.amount, loc, "amount")?, loc, "amount")?;
    let amount = check_amount(amount, spec, loc, "amount")?;
    Ok(LiveReading { meter, resource: resource_name, id, ts, amount })
}

// ---- 3.3 hello ----

fn optional_time(raw: Option<&RawValue>, field: &str) -> Result<Option<f64>, CoreError> {
    raw.map(|r| field::number(r, Loc::top(), field, ErrorCode::BadTimestamp)).transpose()
}

fn hello(doc: &Doc<'_>) -> Result<StreamHello, CoreError> {
    let top = Loc::top();
    Ok(StreamHello {
        channel: channel(doc.channel)?,
        epoch: field::whole(field::required(doc.epoch, top, "epoch")?, top, "epoch", MAX_WHOLE)?,
        next_seq: doc.next_seq.map(|r| field::whole(r, top, "nextSeq", MAX_WHOLE)).transpose()?,
        stamp: doc.hlc.map(|r| field::hlc(r, top, "hlc")).transpose()?,
        server_time_ms: optional_time(doc.server_time, "serverTime")?,
    })
}

// ---- 3.6 catch-up ----

#[derive(Deserialize)]
struct Bucket<'a> {
    #[serde(borrow, default)]
    meter: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource: Cow<'a, str>,
    hour: f64,
    #[serde(borrow)]
    total: &'a RawValue,
}

#[derive(Deserialize)]
struct RawBucket<'a> {
    #[serde(borrow, default)]
    meter: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
    #[serde(borrow, default)]
    hour: Option<&'a RawValue>,
    #[serde(borrow, default)]
    total: Option<&'a RawValue>,
}

/// An hour start: whole, >= 0, a multiple of 3,600,000 ms.
fn check_hour(hour: f64, loc: Loc<'_>, field: &str) -> Result<f64, CoreError> {
    if hour >= 0.0 && hour % HOUR_MS == 0.0 && hour <= 2f64.powi(53) {
        Ok(hour)
    } else {
        Err(loc.err(
            ErrorCode::BadTimestamp,
            field,
            format_args!("{hour} is not an hour start (a multiple of 3600000 ms)"),
        ))
    }
}

fn catchup(doc: &Doc<'_>, arrival: Arrival, cfg: &Config) -> Result<Catchup, CoreError> {
    let top = Loc::top();
    let as_of = field::hlc(field::required(doc.as_of, top, "asOf")?, top, "asOf")?;
    let hour = |raw: Option<&RawValue>, name: &str| -> Result<Option<f64>, CoreError> {
        optional_time(raw, name)?.map(|h| check_hour(h, top, name)).transpose()
    };
    let from_hour_ms = hour(doc.from, "from")?;
    let to_hour_ms = hour(doc.to, "to")?;
    if let (Some(f), Some(t)) = (from_hour_ms, to_hour_ms) {
        if f > t {
            return Err(top.err(
                ErrorCode::BadTimestamp,
                "from",
                format_args!("{f} is after to {t}"),
            ));
        }
    }
    let list = items(&doc.buckets, "buckets", cfg)?;
    let mut c = Catchup {
        as_of,
        from_hour_ms,
        to_hour_ms,
        buckets: Vec::with_capacity(list.len()),
        server_time_ms: optional_time(doc.server_time, "serverTime")?,
        sent_at_ms: arrival.sent_at_ms.filter(|x| x.is_finite()),
        received_at_ms: arrival.received_at_ms.filter(|x| x.is_finite()),
        errors: Vec::new(),
    };
    for (pos, raw) in list.iter().copied().enumerate() {
        let loc = Loc::item("buckets", pos);
        let b = match object(raw).and_then(|r| serde_json::from_str::<Bucket<'_>>(r.get()).ok()) {
            Some(b) => Ok(b),
            None => explain_bucket(raw, loc),
        };
        let checked = b.and_then(|b| {
            // The grammar first: a malformed bucket refuses the body even when its
            // resource is one this dashboard ignores (PROTOCOL.md 3.6).
            if let Some(m) = &b.meter {
                field::check_meter_id(m, loc, "meter")?;
            }
            let hour_ms = check_hour(b.hour, loc, "hour")?;
            let total = field::decimal(b.total, loc, "total")?;
            let spec = resource(&b.resource, cfg, loc)?;
            let total = check_amount(total, spec, loc, "total")?;
            let position = pos as u32;
            Ok(CatchupBucket {
                meter: b.meter.map(Cow::into_owned),
                resource: b.resource.into_owned(),
                hour_ms,
                total,
                position,
            })
        });
        match checked {
            Ok(b) => c.buckets.push(b),
            Err(e) => c.errors.push(e),
        }
    }
    untold(&mut c.errors, cfg);
    Ok(c)
}

fn explain_bucket<'a>(raw: &'a RawValue, loc: Loc<'_>) -> Result<Bucket<'a>, CoreError> {
    let b: RawBucket<'_> = object(raw)
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .ok_or_else(|| not_object(loc))?;
    let resource = field::string(field::required(b.resource, loc, "resource")?, loc, "resource")?;
    let hour =
        field::number(field::required(b.hour, loc, "hour")?, loc, "hour", ErrorCode::BadTimestamp)?;
    let total = field::required(b.total, loc, "total")?;
    let meter = b.meter.map(|m| field::meter_id(m, loc, "meter")).transpose()?;
    Ok(Bucket { meter, resource, hour, total })
}
