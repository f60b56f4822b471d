//! JSON text payloads (PROTOCOL.md 3.1, 3.2, 3.3, 3.6): readings, live frames,
//! hellos and REST catch-up bodies, into core inputs.
//!
//! The top level is parsed once into a `Doc` (`doc.rs`), whose fields stay raw
//! JSON text and whose item list is split into raw items in the same pass;
//! each item is then read on its own (`doc::fields`, with `wire::lite`'s
//! cursor: no serde, so none in the `.wasm`) so a bad item costs only itself.
//! An item whose fields have the expected types takes the short path
//! (borrowed meter ids, no per-item allocation); any other is checked field by
//! field to say exactly what is wrong, in the order and with the messages the
//! serde_json decoder gave (`wire::serde_oracle`, `tests/wire_lite_payloads.rs`).
//! Each distinct meter (or meter and resource) is bound once per batch.

use std::borrow::Cow;

use super::doc::{self, present, Doc, List, Raw};
use super::field::{self, Loc, MAX_WHOLE};
use super::{check_batch_size, check_payload_size, Arrival, Envelope};
use crate::core::config::{Config, ResourceSpec};
use crate::core::decimal::{Decimal, UnitsError};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, ReadingBatch, StreamHello,
};
use rustc_hash::FxHashMap;

/// Longest channel name, in bytes (the binary frame carries it in a `u8`).
pub const MAX_CHANNEL_BYTES: usize = 255;

const HOUR_MS: f64 = 3_600_000.0;

/// Decodes a JSON payload carried by `envelope`.
pub(crate) fn decode(envelope: Envelope, text: &str, arrival: Arrival, cfg: &Config) -> Inbound {
    match try_decode(envelope, text, arrival, cfg) {
        Ok(inbound) => inbound,
        Err(e) => Inbound::Rejected(e),
    }
}

/// The general decoder alone, without the readings scanner in front of it: the
/// oracle the scanner is tested against (`tests/wire_scan.rs`) and benchmarked
/// against (`benches/wire.rs`). Same results as [`decode`].
#[doc(hidden)]
pub fn decode_general(envelope: Envelope, text: &str, arrival: Arrival, cfg: &Config) -> Inbound {
    match check_payload_size(text.len(), cfg).and_then(|()| general(envelope, text, arrival, cfg)) {
        Ok(inbound) => inbound,
        Err(e) => Inbound::Rejected(e),
    }
}

fn try_decode(
    envelope: Envelope,
    text: &str,
    arrival: Arrival,
    cfg: &Config,
) -> Result<Inbound, CoreError> {
    check_payload_size(text.len(), cfg)?;
    // The common readings shape in one pass; anything else below (scan.rs).
    if envelope == Envelope::Readings {
        if let Some(batch) = super::scan::readings(text.as_bytes(), cfg) {
            return Ok(Inbound::Readings(batch));
        }
    }
    general(envelope, text, arrival, cfg)
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
) -> Result<&'d [Raw<'a>], CoreError> {
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

/// The string `raw` is, if it is one (a typed string field).
fn typed_string(raw: Option<Raw<'_>>) -> Option<Cow<'_, str>> {
    let raw = raw?;
    field::string(raw, Loc::top(), "").ok()
}

/// The finite number `raw` is, if it is one (a typed number field).
fn typed_number(raw: Option<Raw<'_>>) -> Option<f64> {
    field::number(raw?, Loc::top(), "", ErrorCode::BadValue).ok()
}

/// The error for an item that is not an object of distinct fields.
fn not_object(loc: Loc<'_>) -> CoreError {
    loc.err(ErrorCode::BadField, "", "must be an object with each field at most once")
}

/// Keeps `positions` in step with the records once an item has been skipped
/// (`skipped`): empty while record `i` is at position `i`.
fn note_position(positions: &mut Vec<u32>, records_before: usize, skipped: bool, pos: usize) {
    if skipped {
        if positions.is_empty() {
            positions.extend((0..records_before).map(|i| i as u32));
        }
        positions.push(u32::try_from(pos).unwrap_or(u32::MAX));
    }
}

// ---- 3.1 readings ----

/// A reading whose fields have the expected types.
struct Reading<'a> {
    meter: Cow<'a, str>,
    ts: f64,
    value: f64,
}

/// A reading's `meter`, `ts` and `value` as found (`None`: not an object of
/// distinct fields).
type ReadingFields<'a> = Option<[Option<Raw<'a>>; 3]>;

fn typed_reading(fields: ReadingFields<'_>) -> Option<Reading<'_>> {
    let [meter, ts, value] = fields?;
    Some(Reading {
        meter: typed_string(meter)?,
        ts: typed_number(ts)?,
        value: typed_number(value)?,
    })
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
        let fields = doc::fields(raw, ["meter", "ts", "value"]);
        let loc = Loc::record("readings", pos, b.errors.len(), cfg);
        let r = match typed_reading(fields) {
            Some(r) => field::check_meter_id(&r.meter, loc, "meter").map(|_| r),
            None => explain_reading(fields, loc),
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
    Ok(b)
}

/// Why a reading failed the fast parse, as the first bad field's error.
fn explain_reading<'a>(fields: ReadingFields<'a>, loc: Loc<'_>) -> Result<Reading<'a>, CoreError> {
    let [meter, ts, value] = fields.ok_or_else(|| not_object(loc))?.map(present);
    let meter = field::meter_id(field::required(meter, loc, "meter")?, loc, "meter")?;
    let ts = field::number(field::required(ts, loc, "ts")?, loc, "ts", ErrorCode::BadTimestamp)?;
    let value =
        field::number(field::required(value, loc, "value")?, loc, "value", ErrorCode::BadValue)?;
    Ok(Reading { meter, ts, value })
}

// ---- 3.2 live frame ----

/// A live reading whose fields have the expected types (`id` and `amount`
/// present, `null` included: their checks say what is wrong with them).
struct FrameReading<'a> {
    meter: Cow<'a, str>,
    resource: Cow<'a, str>,
    id: Raw<'a>,
    ts: f64,
    amount: Raw<'a>,
}

/// A live reading's `meter`, `resource`, `id`, `ts` and `amount` as found.
type FrameFields<'a> = Option<[Option<Raw<'a>>; 5]>;

fn typed_live(fields: FrameFields<'_>) -> Option<FrameReading<'_>> {
    let [meter, resource, id, ts, amount] = fields?;
    Some(FrameReading {
        meter: typed_string(meter)?,
        resource: typed_string(resource)?,
        id: id?,
        ts: typed_number(ts)?,
        amount: amount?,
    })
}

/// A checked live reading.
struct LiveReading<'a> {
    meter: Cow<'a, str>,
    resource: Cow<'a, str>,
    id: u64,
    ts: f64,
    amount: Decimal,
}

fn channel(raw: Option<Raw<'_>>) -> Result<String, CoreError> {
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
        let fields = doc::fields(raw, ["meter", "resource", "id", "ts", "amount"]);
        let loc = Loc::record("readings", pos, f.errors.len(), cfg);
        let r = match typed_live(fields) {
            Some(r) => check_live(r, loc, cfg),
            None => explain_live(fields, loc, cfg),
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
    loc: Loc<'_>,
    cfg: &Config,
) -> Result<LiveReading<'a>, CoreError> {
    field::check_meter_id(&r.meter, loc, "meter")?;
    let spec = resource(&r.resource, cfg, loc)?;
    let id = field::whole(r.id, loc, "id", MAX_WHOLE)?;
    let amount = check_amount(field::decimal(r.amount, loc, "amount")?, spec, loc, "amount")?;
    Ok(LiveReading { meter: r.meter, resource: r.resource, id, ts: r.ts, amount })
}

fn explain_live<'a>(
    fields: FrameFields<'a>,
    loc: Loc<'_>,
    cfg: &Config,
) -> Result<LiveReading<'a>, CoreError> {
    let [meter, resource_name, id, ts, amount] =
        fields.ok_or_else(|| not_object(loc))?.map(present);
    let meter = field::meter_id(field::required(meter, loc, "meter")?, loc, "meter")?;
    let resource_name =
        field::string(field::required(resource_name, loc, "resource")?, loc, "resource")?;
    let spec = resource(&resource_name, cfg, loc)?;
    let id = field::whole(field::required(id, loc, "id")?, loc, "id", MAX_WHOLE)?;
    let ts = field::number(field::required(ts, loc, "ts")?, loc, "ts", ErrorCode::BadTimestamp)?;
    let amount = field::decimal(field::required(amount, loc, "amount")?, loc, "amount")?;
    let amount = check_amount(amount, spec, loc, "amount")?;
    Ok(LiveReading { meter, resource: resource_name, id, ts, amount })
}

// ---- 3.3 hello ----

fn optional_time(raw: Option<Raw<'_>>, field: &str) -> Result<Option<f64>, CoreError> {
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

/// A bucket whose fields have the expected types (`total` present, `null`
/// included).
struct Bucket<'a> {
    meter: Option<Cow<'a, str>>,
    resource: Cow<'a, str>,
    hour: f64,
    total: Raw<'a>,
}

/// A bucket's `meter`, `resource`, `hour` and `total` as found.
type BucketFields<'a> = Option<[Option<Raw<'a>>; 4]>;

fn typed_bucket(fields: BucketFields<'_>) -> Option<Bucket<'_>> {
    let [meter, resource, hour, total] = fields?;
    let meter = match present(meter) {
        None => None,
        Some(m) => Some(typed_string(Some(m))?),
    };
    Some(Bucket {
        meter,
        resource: typed_string(resource)?,
        hour: typed_number(hour)?,
        total: total?,
    })
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
    let hour = |raw: Option<Raw<'_>>, name: &str| -> Result<Option<f64>, CoreError> {
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
        let loc = Loc::record("buckets", pos, c.errors.len(), cfg);
        let fields = doc::fields(raw, ["meter", "resource", "hour", "total"]);
        let b = match typed_bucket(fields) {
            Some(b) => Ok(b),
            None => explain_bucket(fields, loc),
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
    Ok(c)
}

fn explain_bucket<'a>(fields: BucketFields<'a>, loc: Loc<'_>) -> Result<Bucket<'a>, CoreError> {
    let [meter, resource, hour, total] = fields.ok_or_else(|| not_object(loc))?.map(present);
    let resource = field::string(field::required(resource, loc, "resource")?, loc, "resource")?;
    let hour =
        field::number(field::required(hour, loc, "hour")?, loc, "hour", ErrorCode::BadTimestamp)?;
    let total = field::required(total, loc, "total")?;
    let meter = meter.map(|m| field::meter_id(m, loc, "meter")).transpose()?;
    Ok(Bucket { meter, resource, hour, total })
}
