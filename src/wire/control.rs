//! Whole page messages (PROTOCOL.md section 2) given as JSON values: the
//! payload envelopes (`readings`, `live`, `catchup`) and the control messages
//! (`config`, `query`, `reset`).
//!
//! A config patch is strict: an unknown field is `bad_config` naming it, so a
//! typo never passes silently. Everywhere else unknown fields are ignored, so
//! version 1 can grow.

use base64::Engine as _;

use super::lite::{self, Object, Value};

use super::{binary, check_payload_size, json, Arrival, Envelope};
use crate::core::config::{Config, ConfigPatch, Partition, ResourceSpec, Transport};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{Inbound, Query, ResetScope};
use crate::core::series::{Resolution, SeriesInput, SeriesQuery, SeriesTarget, MAX_SPAN_MS};

/// Decodes one page message given as JSON text (the binding's path: the page's
/// message as `JSON.stringify` wrote it). Never panics: anything undecodable
/// becomes `Inbound::Rejected(err)`; text that is not JSON is `malformed_json`.
pub fn decode_message_text(text: &str, cfg: &Config) -> Inbound {
    match lite::parse(text) {
        Ok(v) => decode_value(&v, cfg),
        Err(e) => Inbound::Rejected(CoreError::new(
            ErrorCode::MalformedJson,
            format!("message: not JSON ({e})"),
        )),
    }
}

/// Decodes one page message. Never panics: anything undecodable becomes
/// `Inbound::Rejected(err)`.
pub fn decode_value(msg: &Value<'_>, cfg: &Config) -> Inbound {
    match try_decode(msg, cfg) {
        Ok(inbound) => inbound,
        Err(e) => Inbound::Rejected(e),
    }
}

/// [`decode_value`] of a `serde_json` value (native callers: replay, the CLI,
/// tests; unused by the binding, so not in the `.wasm`),
/// through its JSON text: numbers are written by serde_json exactly as it holds
/// them (shortest round-trip `f64`, exact integers).
pub fn decode_message(msg: &serde_json::Value, cfg: &Config) -> Inbound {
    decode_message_text(&msg.to_string(), cfg)
}

/// [`decode_config_value`] of a `serde_json` value (native callers), through its JSON text.
pub fn decode_config(v: &serde_json::Value) -> Result<ConfigPatch, CoreError> {
    match lite::parse(&v.to_string()) {
        Ok(v) => decode_config_value(&v),
        Err(e) => Err(CoreError::new(ErrorCode::BadConfig, format!("config: not JSON ({e})"))),
    }
}

#[cold]
#[inline(never)]
fn bad_field(why: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::BadField, why)
}

fn try_decode(msg: &Value<'_>, cfg: &Config) -> Result<Inbound, CoreError> {
    let Value::Object(obj) = msg else {
        return Err(bad_field("message: must be an object with a string `type`"));
    };
    if let Some(v) = obj.get("v") {
        if v.as_f64() != Some(1.0) {
            return Err(CoreError::new(
                ErrorCode::UnsupportedVersion,
                format!("v: protocol version {v} is not supported (this worker speaks 1)"),
            ));
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(s)) => s.as_ref(),
        Some(_) => return Err(bad_field("type: must be a string")),
        None => return Err(bad_field("type: missing")),
    };
    match ty {
        "config" => match obj.get("config") {
            Some(c) => decode_config_value(c).map(Inbound::Config),
            None => Err(bad_field("config: missing")),
        },
        _ => cold_message(ty, obj, cfg),
    }
}

/// Every message type but `config`: out of line, in the module's cold part
/// (scripts/split-wasm.mjs, docs/SIZE.md "The split"), since a worker needs
/// only `config` to start.
#[inline(never)]
fn cold_message(ty: &str, obj: &Object<'_>, cfg: &Config) -> Result<Inbound, CoreError> {
    match ty {
        "readings" => payload(Envelope::Readings, obj, cfg),
        "live" => payload(Envelope::Live, obj, cfg),
        "catchup" => payload(Envelope::Catchup, obj, cfg),
        "query" => {
            let q = query(obj);
            match obj.get("id") {
                None | Some(Value::Null) => q.map(Inbound::Query),
                // An answer to a query with an `id` carries it, even when the query is refused.
                Some(v) => {
                    let id = ack_id(v.as_f64())?;
                    Ok(Inbound::Asked { id, query: q })
                }
            }
        }
        "series" => series_message(obj),
        "session" => super::stream::session_message(obj),
        "rendered" => super::stream::rendered_message(obj),
        "socket" => super::stream::socket_message(obj, cfg),
        "fetched" => super::stream::fetched_message(obj, cfg),
        "reset" => match obj.get("meter") {
            None | Some(Value::Null) => Ok(Inbound::Reset(ResetScope::All)),
            Some(Value::String(m)) => Ok(Inbound::Reset(ResetScope::Meter(m.to_string()))),
            Some(_) => Err(bad_field("meter: must be a string")),
        },
        other => Err(CoreError::new(
            ErrorCode::UnknownType,
            format!("type: unknown message type '{}'", other.chars().take(40).collect::<String>()),
        )),
    }
}

/// An optional page time (`sentAt`, `receivedAt`).
fn time(obj: &Object<'_>, field: &str) -> Result<Option<f64>, CoreError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad_field(format!("{field}: must be a number (ms since the epoch)"))),
    }
}

fn payload(envelope: Envelope, obj: &Object<'_>, cfg: &Config) -> Result<Inbound, CoreError> {
    // `id` asks for an `ack`, which answers even a refused payload.
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(ack_id(v.as_f64())?),
    };
    let input = (|| {
        let arrival =
            Arrival { sent_at_ms: time(obj, "sentAt")?, received_at_ms: time(obj, "receivedAt")? };
        payload_inner(envelope, obj, arrival, cfg)
    })();
    Ok(acked(id, input.unwrap_or_else(Inbound::Rejected)))
}

/// A payload message's optional `id` (PROTOCOL.md 2): a finite number.
pub fn ack_id(id: Option<f64>) -> Result<f64, CoreError> {
    id.filter(|x| x.is_finite()).ok_or_else(|| bad_field("id: must be a finite number"))
}

/// `input` answered with an `ack` when its page message carried an `id`.
pub fn acked(id: Option<f64>, input: Inbound) -> Inbound {
    match id {
        Some(id) => Inbound::Acked { id, input: Box::new(input) },
        None => input,
    }
}

fn payload_inner(
    envelope: Envelope,
    obj: &Object<'_>,
    arrival: Arrival,
    cfg: &Config,
) -> Result<Inbound, CoreError> {
    match (obj.get("data"), obj.get("dataBase64")) {
        (Some(Value::String(text)), _) => Ok(json::decode(envelope, text, arrival, cfg)),
        (Some(inline @ (Value::Object(_) | Value::Array(_))), _) => {
            // Re-serialised: numbers keep the text they came with (from the
            // page, what `JSON.stringify` wrote: send `data` as a string when
            // amounts need more digits than an f64 keeps).
            let mut text = String::new();
            inline.write_json(&mut text);
            Ok(json::decode(envelope, &text, arrival, cfg))
        }
        (Some(_), _) => Err(bad_field("data: must be a string of JSON or a JSON object")),
        (None, Some(Value::String(b64))) => {
            // Base64 is 4 characters per 3 bytes: refuse before decoding a giant.
            check_payload_size(b64.len() / 4 * 3, cfg)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad_field(format!("dataBase64: not base64 ({e})")))?;
            Ok(binary::decode(envelope, &bytes, arrival, cfg))
        }
        (None, Some(_)) => Err(bad_field("dataBase64: must be a string")),
        (None, None) => Err(bad_field("data: missing")),
    }
}

fn query(obj: &Object<'_>) -> Result<Query, CoreError> {
    let meter = || match obj.get("meter") {
        Some(Value::String(m)) => Ok(m.to_string()),
        Some(_) => Err(bad_field("meter: must be a string")),
        None => Err(bad_field("meter: missing (required by this query)")),
    };
    match obj.get("query") {
        Some(Value::String(q)) => match q.as_ref() {
            "stats" => Ok(Query::Stats),
            "totals" => Ok(Query::Totals),
            "window" => Ok(Query::Window { meter: meter()? }),
            "meter" => Ok(Query::Meter { meter: meter()? }),
            "series" => series_query(obj).map(Query::Series),
            _ => Err(bad_field("query: must be one of stats, totals, window, meter, series")),
        },
        Some(_) => Err(bad_field("query: must be a string")),
        None => Err(bad_field("query: missing")),
    }
}

/// The fields of a `series` query or subscription (PROTOCOL.md 2, `series`).
fn series_query(obj: &Object<'_>) -> Result<SeriesQuery, CoreError> {
    let text = |f: &str| match obj.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.to_string())),
        Some(_) => Err(bad_field(format!("{f}: must be a string"))),
    };
    let target = match (text("meter")?, text("group")?) {
        (Some(m), None) => SeriesTarget::Meter(m),
        (None, Some(g)) => SeriesTarget::Group(g),
        _ => return Err(bad_field("series: exactly one of `meter` and `group` is required")),
    };
    let resource = text("resource")?.ok_or_else(|| bad_field("resource: missing"))?;
    let span_ms = match obj.get("spanMs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|x| x.is_finite() && *x > 0.0 && *x <= MAX_SPAN_MS)
                .ok_or_else(|| bad_field("spanMs: must be a number in (0, 21600000] (6 h)"))?,
        ),
    };
    let resolution = match text("resolution")?.as_deref() {
        None => None,
        Some("1m") => Some(Resolution::Minute),
        Some("5m") => Some(Resolution::FiveMinutes),
        Some(_) => return Err(bad_field("resolution: must be \"1m\" or \"5m\"")),
    };
    Ok(SeriesQuery { target, resource, span_ms, resolution })
}

/// A `series` message: subscribe or unsubscribe.
fn series_message(obj: &Object<'_>) -> Result<Inbound, CoreError> {
    let sub = match obj.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.to_string(),
        _ => return Err(bad_field("sub: must be a string of 1..=256 bytes")),
    };
    match obj.get("op").and_then(Value::as_str) {
        Some("subscribe") => {
            Ok(Inbound::Series(SeriesInput::Subscribe { sub, query: series_query(obj)? }))
        }
        Some("unsubscribe") => Ok(Inbound::Series(SeriesInput::Unsubscribe { sub })),
        _ => Err(bad_field("op: must be \"subscribe\" or \"unsubscribe\"")),
    }
}

// The field readers below are out of line: `decode_config_value` calls them
// from about 70 match arms, each of which inlined its own copy (docs/SIZE.md).
#[cold]
#[inline(never)]
fn bad_config(field: &str, why: &str) -> CoreError {
    CoreError::new(ErrorCode::BadConfig, format!("config.{field}: {why}"))
}

#[inline(never)]
fn uint(field: &str, v: &Value<'_>) -> Result<u32, CoreError> {
    let n = match v {
        Value::Number(n) => super::field::whole_text(n.text(), u64::from(u32::MAX)),
        _ => None,
    };
    n.map(|n| n as u32).ok_or_else(|| bad_config(field, "must be a whole number in 0..=4294967295"))
}

#[inline(never)]
fn float(field: &str, v: &Value<'_>) -> Result<f64, CoreError> {
    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| bad_config(field, "must be a number"))
}

#[inline(never)]
fn boolean(field: &str, v: &Value<'_>) -> Result<bool, CoreError> {
    v.as_bool().ok_or_else(|| bad_config(field, "must be true or false"))
}

/// `{"index": i, "of": n}`, both whole numbers (ranges checked by `Config::validate`).
#[inline(never)]
fn partition(field: &str, v: &Value<'_>) -> Result<Partition, CoreError> {
    let shape = "must be an object {index, of} of whole numbers";
    let Value::Object(obj) = v else { return Err(bad_config(field, shape)) };
    if obj.len() != 2 {
        return Err(bad_config(field, shape));
    }
    match (obj.get("index"), obj.get("of")) {
        (Some(i), Some(n)) => Ok(Partition { index: uint(field, i)?, of: uint(field, n)? }),
        _ => Err(bad_config(field, shape)),
    }
}

#[inline(never)]
fn transport(field: &str, v: &Value<'_>) -> Result<Transport, CoreError> {
    match v.as_str() {
        Some("page") => Ok(Transport::Page),
        Some("worker") => Ok(Transport::Worker),
        _ => Err(bad_config(field, "must be \"page\" or \"worker\"")),
    }
}

#[inline(never)]
fn text(field: &str, v: &Value<'_>) -> Result<String, CoreError> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(bad_config(field, "must be a string")),
    }
}

#[inline(never)]
fn resources(field: &str, v: &Value<'_>) -> Result<Vec<ResourceSpec>, CoreError> {
    let shape = "must be an array of {name: string, unit: string, decimals: 0..=9}";
    let Value::Array(list) = v else { return Err(bad_config(field, shape)) };
    if list.len() > crate::core::config::MAX_RESOURCES {
        return Err(bad_config(field, "must list 1..=32 resources"));
    }
    list.iter()
        .map(|r| {
            let name = r.get("name").and_then(Value::as_str);
            let unit = r.get("unit").and_then(Value::as_str);
            let decimals = r.get("decimals").map(|d| uint(field, d)).transpose()?;
            match (name, unit, decimals) {
                (Some(name), Some(unit), Some(d)) => {
                    let decimals = u8::try_from(d).map_err(|_| bad_config(field, shape))?;
                    Ok(ResourceSpec { name: name.into(), unit: unit.into(), decimals })
                }
                _ => Err(bad_config(field, shape)),
            }
        })
        .collect()
}

/// Decodes a config object (the `config` field of a `config` message, the
/// engine constructor's argument, `meterflow replay --config`) into a patch.
/// Field names are the camelCase names of [`Config`]'s fields. An unknown
/// field or a value of the wrong type is `bad_config` naming the field; ranges
/// and relations are checked when the engine applies the patch.
pub fn decode_config_value(v: &Value<'_>) -> Result<ConfigPatch, CoreError> {
    let Value::Object(obj) = v else {
        return Err(CoreError::new(ErrorCode::BadConfig, "config: must be an object"));
    };
    let mut p = ConfigPatch::default();
    // By name, each once (its last value), so the first error named is that of
    // the first bad field in name order whatever order the page wrote them in.
    for (k, val) in obj.entries_by_key() {
        macro_rules! set {
            ($($name:literal => $f:ident : $kind:ident),* $(,)?) => {
                match k {
                    $( $name => p.$f = Some($kind(k, val)?), )*
                    _ => {
                        let shown: String = k.chars().take(64).collect();
                        return Err(bad_config(&shown, "unknown field"));
                    }
                }
            };
        }
        set!(
            "window" => window: uint,
            "maxMeters" => max_meters: uint,
            "tickMs" => tick_ms: float,
            "statsIntervalMs" => stats_interval_ms: float,
            "memoryCeilingBytes" => memory_ceiling_bytes: float,
            "reducedWindow" => reduced_window: uint,
            "warmup" => warmup: uint,
            "spikeZ" => spike_z: float,
            "spikeVotesOf" => spike_votes_of: uint,
            "spikeVotesNeeded" => spike_votes_needed: uint,
            "driftShort" => drift_short: uint,
            "driftZ" => drift_z: float,
            "driftConsecutive" => drift_consecutive: uint,
            "stuckRun" => stuck_run: uint,
            "stuckFactor" => stuck_factor: float,
            "baselineReadings" => baseline_readings: uint,
            "silentAfterMs" => silent_after_ms: float,
            "clearAfter" => clear_after: uint,
            "criticalFactor" => critical_factor: float,
            "stdFloor" => std_floor: float,
            "stdFloorRel" => std_floor_rel: float,
            "spikeWidenMax" => spike_widen_max: float,
            "recomputeEvery" => recompute_every: uint,
            "maxScansPerTick" => max_scans_per_tick: uint,
            "maxHeldAcks" => max_held_acks: uint,
            "maxPayloadBytes" => max_payload_bytes: uint,
            "maxBatch" => max_batch: uint,
            "maxStreamKeys" => max_stream_keys: uint,
            "maxAbsValue" => max_abs_value: float,
            "maxAgeMs" => max_age_ms: float,
            "maxFutureMs" => max_future_ms: float,
            "maxErrorsPerBatch" => max_errors_per_batch: uint,
            "partition" => partition: partition,
            "resources" => resources: resources,
            "historyHours" => history_hours: uint,
            "maxOffsetMs" => max_offset_ms: float,
            "maxClockSkewMs" => max_clock_skew_ms: float,
            "totalsFlushMs" => totals_flush_ms: float,
            "catchupIntervalMs" => catchup_interval_ms: float,
            "fetchRetryMs" => fetch_retry_ms: float,
            "maxCatchupPages" => max_catchup_pages: uint,
            "catchupOnStart" => catchup_on_start: boolean,
            "maxPendingReadings" => max_pending_readings: uint,
            "dedupWindow" => dedup_window: uint,
            "maxMissingSeqs" => max_missing_seqs: uint,
            "maxChannels" => max_channels: uint,
            "nodeId" => node_id: uint,
            "detectLive" => detect_live: boolean,
            "binaryDeltas" => binary_deltas: boolean,
            "transport" => transport: transport,
            "feedUrl" => feed_url: text,
            "maxSubscriptions" => max_subscriptions: uint,
            "maxBufferedDeltas" => max_buffered_deltas: uint,
            "maxBufferedBytes" => max_buffered_bytes: uint,
            "creditWindow" => credit_window: uint,
            "backoffBaseMs" => backoff_base_ms: float,
            "backoffCapMs" => backoff_cap_ms: float,
            "helloTimeoutMs" => hello_timeout_ms: float,
            "streamSeed" => stream_seed: uint,
            "maxMeterEntities" => max_meter_entities: uint,
            "maxNotices" => max_notices: uint,
            "detailCacheSize" => detail_cache_size: uint,
            "maxDetailBytes" => max_detail_bytes: uint,
            "detailTtlMs" => detail_ttl_ms: float,
            "maxGroups" => max_groups: uint,
            "maxGroupsPerMeter" => max_groups_per_meter: uint,
            "groupsRefreshMs" => groups_refresh_ms: float,
            "maxUpdatesPerMessage" => max_updates_per_message: uint,
            "maxSeriesSubscriptions" => max_series_subscriptions: uint,
            "maxConcurrentQueries" => max_concurrent_queries: uint,
            "seriesChunkMeters" => series_chunk_meters: uint,
            "maxSeriesPairs" => max_series_pairs: uint,
            "maxRowLogReadings" => max_row_log_readings: uint,
            "deltaFlushMs" => delta_flush_ms: float,
        );
    }
    Ok(p)
}
