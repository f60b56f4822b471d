//! Stream v2 at the edge (docs/STREAM.md, PROTOCOL.md §7): socket messages,
//! fetched bodies and the page's session messages, decoded into
//! `Inbound::Stream(SessionInput)` with every body already in core types.
//!
//! - A text message with an `op` is a server op; without one it is a v1
//!   payload (a `frame` of the `totals` channel becomes a `DELTA` of it; a v1
//!   `hello` goes to the ledger as before). A binary message is a v1 kind-2
//!   live frame (`totals`).
//! - A `DELTA`'s patch is decoded whole or not at all: one bad row refuses the
//!   message (`Inbound::Rejected`); the session then sees a gap and recovers.
//! - A fetched body that cannot be used becomes `SessionInput::BadFetch`, so
//!   the session retries instead of waiting forever; a failed fetch becomes
//!   `FetchFailed`.
//! - A `meters.<group>` DELTA is first tried by the one-pass reader in
//!   `wire::delta`, which returns the same op or defers to this module.

use std::borrow::Cow;

use super::ack::{self, SentEntry};
use super::field::{meter_id_problem, whole_json};
use super::lite::{self, Object, Value};
use super::{binary, check_payload_size, json, Arrival, Envelope};
use crate::core::config::Config;
use crate::core::decimal::{Decimal, ParseError};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Inbound;
use crate::core::session::{valid_channel_name, Payload, ServerOp, SessionInput, SnapshotReply};
use crate::core::stream::{
    MeterColumns, MeterPatch, MeterRow, MeterStatus, Notice, NoticePatch, NoticeSeverity,
    METERS_PREFIX, NOTICES_CHANNEL, TOTALS_CHANNEL,
};

/// A fetched REST answer as the host got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchedBody<'a> {
    /// A text body (HTTP 2xx).
    Text(&'a str),
    /// A binary body (HTTP 2xx).
    Binary(&'a [u8]),
    /// No usable answer: a network error (`status` 0) or an HTTP error status.
    Failed {
        /// The HTTP status, 0 for a network error.
        status: u16,
    },
}

fn bad(why: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::BadField, why)
}

fn server(op: ServerOp) -> Inbound {
    Inbound::Stream(SessionInput::Server(op))
}

/// Decodes a text message from the socket. Never panics.
pub fn decode_socket_text(text: &str, arrival: Arrival, cfg: &Config) -> Inbound {
    if let Err(e) = check_payload_size(text.len(), cfg) {
        return Inbound::Rejected(e);
    }
    // The hot message, a `meters.<group>` DELTA, in one pass without a tree;
    // whatever that path is unsure of (errors included) is decided below.
    if let Some(op) = super::delta::meters_delta(text) {
        return server(op);
    }
    // A `HEARTBEAT_ACK` (any text with a `sent` object) in one pass, its
    // `sent` map without a tree; it decides only what the general path
    // would (`wire::ack`).
    if let Some(inbound) = decode_socket_text_sent(text, arrival, cfg) {
        return inbound;
    }
    decode_socket_text_general(text, arrival, cfg)
}

/// What the one-pass reader of `wire::ack` decides `text` is, or `None` where
/// it leaves the text to [`decode_socket_text_general`], which it equals
/// wherever it decides. Public (hidden) for the differential test only.
/// Never panics.
#[doc(hidden)]
pub fn decode_socket_text_sent(text: &str, arrival: Arrival, cfg: &Config) -> Option<Inbound> {
    let v1 = || live(json::decode(Envelope::Live, text, arrival, cfg), text.len());
    Some(match ack::read(text) {
        ack::Read::Defer => return None,
        // The general path's tree would fail too: the text goes to the v1 decoder.
        ack::Read::NotJson => v1(),
        ack::Read::Object { members, sent } => match members.get("op") {
            Some(Value::String(op)) => {
                let op = if op == "HEARTBEAT_ACK" {
                    heartbeat_ack(&sent)
                } else {
                    server_op(&members, text.len())
                };
                match op {
                    Ok(op) => server(op),
                    Err(e) => Inbound::Rejected(e),
                }
            }
            _ => v1(),
        },
    })
}

/// [`decode_socket_text`] without its DELTA fast path: the general decoder,
/// kept public (hidden) as the oracle of the differential test. Never panics.
#[doc(hidden)]
pub fn decode_socket_text_general(text: &str, arrival: Arrival, cfg: &Config) -> Inbound {
    if let Err(e) = check_payload_size(text.len(), cfg) {
        return Inbound::Rejected(e);
    }
    // A server op is an object with a string `op`; anything else (or not even
    // JSON: the v1 decoder says what is wrong) is a v1 payload. A v1 frame is
    // parsed once, by the v1 decoder: the skim below rules it out as an op
    // without building a tree.
    if may_be_server_op(text.as_bytes()) {
        if let Ok(Value::Object(obj)) = lite::parse(text) {
            if matches!(obj.get("op"), Some(Value::String(_))) {
                return match server_op(&obj, text.len()) {
                    Ok(op) => server(op),
                    Err(e) => Inbound::Rejected(e),
                };
            }
        }
    }
    live(json::decode(Envelope::Live, text, arrival, cfg), text.len())
}

/// False only if `text` cannot be an object with a string `op` at its top
/// level: it does not start with `{`, or its top level was walked to the end
/// and no key that may be `op` (spelled so, or with an escape) has a string
/// value. True is "maybe" (malformed text included): the caller parses. One
/// pass over the bytes, no allocation.
#[doc(hidden)]
pub fn may_be_server_op(text: &[u8]) -> bool {
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = 0;
    while text.get(i).copied().is_some_and(ws) {
        i += 1;
    }
    if text.get(i) != Some(&b'{') {
        return false;
    }
    i += 1;
    let mut depth = 1usize;
    // At depth 1: the next string is a key (after `{` or `,`).
    let mut expect_key = true;
    // The last key may be `op`: its value decides.
    let mut candidate = false;
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => {
                let start = i + 1;
                i = start;
                let mut escaped = false;
                loop {
                    match text.get(i) {
                        None => return true,
                        Some(b'\\') => {
                            escaped = true;
                            i += 2;
                        }
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                if depth == 1 && expect_key {
                    let key = text.get(start..i).unwrap_or_default();
                    candidate = escaped || key == b"op";
                    expect_key = false;
                }
            }
            b':' if depth == 1 && candidate => {
                let mut j = i + 1;
                while text.get(j).copied().is_some_and(ws) {
                    j += 1;
                }
                if text.get(j) == Some(&b'"') {
                    return true;
                }
                candidate = false;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    true
}

/// Decodes a binary message from the socket: a v1 kind-2 live frame, or a
/// kind-4 `meters.<group>` DELTA (sent only to a client that asked for
/// `binary_deltas`). Never panics.
pub fn decode_socket_binary(bytes: &[u8], arrival: Arrival, cfg: &Config) -> Inbound {
    if binary::is_meters_delta(bytes) {
        return match binary::decode_meters_delta(bytes, cfg) {
            Ok(op) => server(op),
            Err(e) => Inbound::Rejected(e),
        };
    }
    live(binary::decode(Envelope::Live, bytes, arrival, cfg), bytes.len())
}

/// A v1 live frame (`wire_bytes` long) becomes a `DELTA` of its channel;
/// anything else stays.
fn live(inbound: Inbound, wire_bytes: usize) -> Inbound {
    match inbound {
        Inbound::Live(f) => server(ServerOp::Delta {
            channel: f.channel.clone(),
            epoch: f.epoch,
            seq: f.seq,
            body: Payload::Frame(Box::new(f)),
            wire_bytes,
        }),
        other => other,
    }
}

fn str_field<'a>(obj: &'a Object<'_>, f: &str) -> Result<&'a str, CoreError> {
    match obj.get(f) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(format!("{f}: must be a string"))),
        None => Err(bad(format!("{f}: missing"))),
    }
}

/// A JSON number as a whole number in `0..=MAX_WHOLE`, exactly.
fn whole_of(n: &lite::Number<'_>) -> Option<u64> {
    whole_json(n.text())
}

fn whole_field(obj: &Object<'_>, f: &str) -> Result<u64, CoreError> {
    match obj.get(f) {
        Some(Value::Number(n)) => {
            whole_of(n).ok_or_else(|| bad(format!("{f}: must be a whole number ≤ 2^53")))
        }
        Some(_) => Err(bad(format!("{f}: must be a whole number"))),
        None => Err(bad(format!("{f}: missing"))),
    }
}

fn num_field(obj: &Object<'_>, f: &str) -> Result<f64, CoreError> {
    match obj.get(f).and_then(Value::as_f64) {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(bad(format!("{f}: must be a finite number"))),
    }
}

fn channel_field<'a>(obj: &'a Object<'_>) -> Result<&'a str, CoreError> {
    let c = str_field(obj, "channel")?;
    if !valid_channel_name(c) {
        return Err(CoreError::new(
            ErrorCode::BadChannel,
            format!("channel: {:?} is not 1-64 bytes of A-Z a-z 0-9 . _ -", trunc(c)),
        ));
    }
    Ok(c)
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A `sent` entry's value in the tree: `(epoch, seq)` if it is an array of
/// exactly two whole numbers.
fn tree_position(pos: &Value<'_>) -> Option<(u64, u64)> {
    let a = pos.as_array().filter(|a| a.len() == 2)?;
    let n = |i: usize| match a.get(i) {
        Some(Value::Number(n)) => whole_of(n),
        _ => None,
    };
    Some((n(0)?, n(1)?))
}

/// The `HEARTBEAT_ACK` of a `sent` map's entries (document order).
fn heartbeat_ack(entries: &[SentEntry<'_>]) -> Result<ServerOp, CoreError> {
    match ack::by_channel(entries) {
        Ok(sent) => Ok(ServerOp::HeartbeatAck { sent }),
        Err(channel) => {
            Err(bad(format!("sent.{}: must be [epoch, seq] of a valid channel", trunc(channel))))
        }
    }
}

/// The server op `obj`, from a message of `wire_bytes` bytes.
fn server_op(obj: &Object<'_>, wire_bytes: usize) -> Result<ServerOp, CoreError> {
    let op = str_field(obj, "op")?;
    Ok(match op {
        "HELLO" => ServerOp::Hello {
            heartbeat_interval_ms: num_field(obj, "heartbeat_interval_ms")?,
            session_id: str_field(obj, "session_id")?.to_string(),
            server_time_ms: obj.get("server_time_ms").and_then(Value::as_f64).unwrap_or(0.0),
            resume_url: match obj.get("resume_url") {
                Some(Value::String(u)) => Some(u.to_string()),
                _ => None,
            },
        },
        "READY" => ServerOp::Ready { session_id: str_field(obj, "session_id")?.to_string() },
        "RESUMED" => ServerOp::Resumed,
        "HEARTBEAT" => ServerOp::Heartbeat,
        "RECONNECT" => ServerOp::Reconnect,
        "INVALID_SESSION" => ServerOp::InvalidSession {
            resumable: obj.get("resumable").and_then(Value::as_bool).unwrap_or(false),
        },
        "HEARTBEAT_ACK" => {
            // Each position read in document order (the tree in place), then
            // by channel name, each once (its last position), as a map keeps
            // them (`ack::by_channel`, which the one-pass reader shares).
            let entries: Vec<SentEntry<'_>> = match obj.get("sent") {
                Some(Value::Object(m)) => {
                    m.iter().map(|(k, pos)| (Cow::Borrowed(k), tree_position(pos))).collect()
                }
                _ => Vec::new(),
            };
            heartbeat_ack(&entries)?
        }
        "DELTA" => {
            let channel = channel_field(obj)?;
            let epoch = whole_field(obj, "epoch")?;
            let seq = whole_field(obj, "seq")?;
            let patch = match obj.get("patch") {
                Some(Value::Object(p)) => p,
                _ => return Err(bad("patch: must be an object")),
            };
            let body = if channel.starts_with(METERS_PREFIX) {
                // In columns, as the one-pass reader (`super::delta`) and a
                // binary DELTA give it: one string for the ids, one name per
                // resource. Only a patch columns cannot hold stays in rows.
                let p = meter_patch(patch, "upsert")?;
                match MeterColumns::from_patch(&p) {
                    Some(c) => Payload::MeterColumns(Box::new(c)),
                    None => Payload::Meters(Box::new(p)),
                }
            } else if channel == NOTICES_CHANNEL {
                Payload::Notices(Box::new(notice_patch(patch, "upsert")?))
            } else {
                return Err(bad(format!(
                    "DELTA on channel '{channel}': only meters.<group> and notices carry DELTA ops"
                )));
            };
            ServerOp::Delta { channel: channel.to_string(), epoch, seq, body, wire_bytes }
        }
        other => {
            return Err(CoreError::new(
                ErrorCode::UnexpectedOp,
                format!("op: unknown server op '{}': ignored", trunc(other)),
            ))
        }
    })
}

fn list<'a, 'v>(obj: &'a Object<'v>, f: &str) -> Result<&'a [Value<'v>], CoreError> {
    match obj.get(f) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(format!("{f}: must be an array"))),
    }
}

fn ids(obj: &Object<'_>, f: &str) -> Result<Vec<String>, CoreError> {
    list(obj, f)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) if meter_id_problem(s).is_none() => Ok(s.to_string()),
            _ => Err(bad(format!("{f}[{i}]: must be an id of 1-256 bytes"))),
        })
        .collect()
}

fn meter_patch(obj: &Object<'_>, rows: &str) -> Result<MeterPatch, CoreError> {
    let upsert = list(obj, rows)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            meter_row(v).map_err(|e| CoreError::new(e.code, format!("{rows}[{i}].{}", e.message)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MeterPatch { upsert, remove: ids(obj, "remove")? })
}

/// One row of a `meters.<group>` patch. A value out of range is refused with
/// the code a kind-4 frame's row gets for it (PROTOCOL.md 3.10): `bad_meter_id`,
/// `bad_timestamp` for a non-finite `ts`, `bad_value` for a non-finite `value`,
/// a `count` past 2^53, an unknown `status` or a `total` beyond 18 decimals or
/// `i64`; a missing field or one of the wrong type stays `bad_field`.
fn meter_row(v: &Value<'_>) -> Result<MeterRow, CoreError> {
    let Value::Object(o) = v else { return Err(bad("must be an object")) };
    let meter = str_field(o, "meter")?;
    if let Some(why) = meter_id_problem(meter) {
        return Err(CoreError::new(ErrorCode::BadMeterId, format!("meter: {why}")));
    }
    let status = str_field(o, "status")?;
    let total = match o.get("total") {
        Some(Value::String(t)) => Decimal::parse_text(t).map_err(|e| match e {
            ParseError::Syntax => bad("total: must be an exact decimal string"),
            ParseError::Range => CoreError::new(
                ErrorCode::BadValue,
                "total: not an exact decimal within range (at most 18 decimals, a mantissa within i64)",
            ),
        })?,
        _ => return Err(bad("total: must be an exact decimal string")),
    };
    // At most 64 characters; 64 bytes or fewer are that already (one copy).
    let resource = str_field(o, "resource")?;
    let resource = if resource.len() <= 64 {
        resource.to_string()
    } else {
        resource.chars().take(64).collect()
    };
    Ok(MeterRow {
        meter: meter.to_string(),
        resource,
        ts: row_number(o, "ts", ErrorCode::BadTimestamp)?,
        value: row_number(o, "value", ErrorCode::BadValue)?,
        status: MeterStatus::parse(status).ok_or_else(|| {
            CoreError::new(ErrorCode::BadValue, "status: must be ok, stale or offline")
        })?,
        count: match o.get("count") {
            Some(Value::Number(n)) => whole_of(n).ok_or_else(|| {
                CoreError::new(ErrorCode::BadValue, "count: must be a whole number ≤ 2^53")
            })?,
            _ => return Err(bad("count: must be a whole number")),
        },
        total,
    })
}

/// A row's finite number `f`: `code` if it is a number beyond the `f64` range.
fn row_number(o: &Object<'_>, f: &str, code: ErrorCode) -> Result<f64, CoreError> {
    match o.get(f) {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| CoreError::new(code, format!("{f}: must be a finite number"))),
        _ => Err(bad(format!("{f}: must be a finite number"))),
    }
}

/// Longest notice title and text kept, in characters.
const MAX_NOTICE_TEXT: usize = 4_096;

fn notice_patch(obj: &Object<'_>, rows: &str) -> Result<NoticePatch, CoreError> {
    let upsert = list(obj, rows)?
        .iter()
        .enumerate()
        .map(|(i, v)| notice(v).map_err(|e| bad(format!("{rows}[{i}].{}", e.message))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NoticePatch { upsert, remove: ids(obj, "remove")? })
}

fn notice(v: &Value<'_>) -> Result<Notice, CoreError> {
    let Value::Object(o) = v else { return Err(bad("must be an object")) };
    let id = str_field(o, "id")?;
    if meter_id_problem(id).is_some() {
        return Err(bad("id: must be 1-256 bytes"));
    }
    let text = |f: &str| -> Result<String, CoreError> {
        let s = str_field(o, f)?;
        if s.chars().count() > MAX_NOTICE_TEXT {
            return Err(bad(format!("{f}: longer than {MAX_NOTICE_TEXT} characters")));
        }
        Ok(s.to_string())
    };
    Ok(Notice {
        id: id.to_string(),
        severity: NoticeSeverity::parse(str_field(o, "severity")?)
            .ok_or_else(|| bad("severity: must be info, warning or critical"))?,
        title: text("title")?,
        text: text("text")?,
        from_ms: num_field(o, "fromMs")?,
        to_ms: num_field(o, "toMs")?,
    })
}

#[cold]
#[inline(never)]
fn bad_fetch(request_id: u64, message: impl Into<String>) -> Inbound {
    Inbound::Stream(SessionInput::BadFetch { request_id, message: message.into() })
}

/// Decodes a fetched REST answer to the session's `Fetch` `request_id`. Never panics.
pub fn decode_fetched(
    request_id: u64,
    body: FetchedBody<'_>,
    arrival: Arrival,
    cfg: &Config,
) -> Inbound {
    if super::groups::is_groups_request(request_id) {
        return super::groups::decode_groups_fetched(request_id, body, arrival, cfg);
    }
    let text =
        match body {
            FetchedBody::Failed { .. } => {
                return Inbound::Stream(SessionInput::FetchFailed { request_id })
            }
            FetchedBody::Binary(_) => return bad_fetch(
                request_id,
                "a binary body carries no channel, epoch or snapshot_seq: fetch snapshots as JSON",
            ),
            FetchedBody::Text(t) => t,
        };
    if let Err(e) = check_payload_size(text.len(), cfg) {
        return bad_fetch(request_id, e.message);
    }
    match fetched_text(request_id, text, arrival, cfg) {
        Ok(input) => Inbound::Stream(input),
        Err(e) => bad_fetch(request_id, e.message),
    }
}

fn fetched_text(
    request_id: u64,
    text: &str,
    arrival: Arrival,
    cfg: &Config,
) -> Result<SessionInput, CoreError> {
    let doc =
        lite::parse(text).map_err(|e| bad(format!("fetched body is not a JSON object ({e})")))?;
    let Value::Object(o) = &doc else {
        return Err(bad("fetched body is not a JSON object"));
    };
    let channel = match o.get("channel") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.to_string()),
        Some(_) => {
            return Err(bad("fetched body is not a JSON object (channel: must be a string)"))
        }
    };
    let Some(channel) = channel else {
        if o.get("meter").is_some_and(|m| *m != Value::Null) {
            if text.len() > cfg.max_detail_bytes as usize {
                return Err(bad(format!(
                    "detail body of {} bytes is longer than maxDetailBytes ({})",
                    text.len(),
                    cfg.max_detail_bytes
                )));
            }
            return Ok(SessionInput::DetailReply { request_id, body: text.to_string() });
        }
        return Err(bad("fetched body has neither `channel` (a snapshot) nor `meter` (a detail)"));
    };
    if !valid_channel_name(&channel) {
        return Err(bad(format!("channel: {:?} is not a valid channel name", trunc(&channel))));
    }
    let (epoch, snapshot_seq, since_seq, body) = if channel == TOTALS_CHANNEL {
        for f in ["epoch", "snapshot_seq"] {
            if o.get(f).is_none() {
                return Err(bad(format!("totals snapshot: missing field `{f}`")));
            }
        }
        let c = match json::decode(Envelope::Catchup, text, arrival, cfg) {
            Inbound::Catchup(c) => c,
            Inbound::Rejected(e) => return Err(e),
            _ => return Err(bad("totals snapshot: not a catch-up body")),
        };
        let since = since(o)?;
        (
            whole_field(o, "epoch")?,
            whole_field(o, "snapshot_seq")?,
            since,
            Payload::Catchup(Box::new(c)),
        )
    } else {
        let body = if channel.starts_with(METERS_PREFIX) {
            Payload::Meters(Box::new(meter_patch(o, "meters")?))
        } else if channel == NOTICES_CHANNEL {
            Payload::Notices(Box::new(notice_patch(o, "notices")?))
        } else {
            return Err(bad(format!("snapshot of unknown channel kind '{channel}'")));
        };
        (whole_field(o, "epoch")?, whole_field(o, "snapshot_seq")?, since(o)?, body)
    };
    Ok(SessionInput::Snapshot(SnapshotReply {
        request_id,
        channel,
        epoch,
        snapshot_seq,
        since_seq,
        body,
    }))
}

fn since(o: &Object<'_>) -> Result<Option<u64>, CoreError> {
    match o.get("since_seq") {
        None | Some(Value::Null) => Ok(None),
        Some(_) => whole_field(o, "since_seq").map(Some),
    }
}

/// The page's `session` message.
pub(crate) fn session_message(obj: &Object<'_>) -> Result<Inbound, CoreError> {
    let op = str_field(obj, "op")?;
    let input = match op {
        "start" => {
            let channels = match obj.get("channels") {
                None | Some(Value::Null) => vec![TOTALS_CHANNEL.to_string()],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("channels: must be an array of strings"))?,
                Some(_) => return Err(bad("channels: must be an array of strings")),
            };
            SessionInput::StartWith { channels }
        }
        "stop" => SessionInput::Stop,
        "subscribe" => SessionInput::Subscribe { channel: str_field(obj, "channel")?.to_string() },
        "unsubscribe" => {
            SessionInput::Unsubscribe { channel: str_field(obj, "channel")?.to_string() }
        }
        "detail" => SessionInput::FetchDetail { meter: str_field(obj, "meter")?.to_string() },
        other => {
            return Err(bad(format!(
                "op: '{}' is not one of start, stop, subscribe, unsubscribe, detail",
                trunc(other)
            )))
        }
    };
    Ok(Inbound::Stream(input))
}

/// The page's `rendered` message.
pub(crate) fn rendered_message(obj: &Object<'_>) -> Result<Inbound, CoreError> {
    let channel = str_field(obj, "channel")?.to_string();
    let frames = whole_field(obj, "frames")?;
    let frames = u32::try_from(frames).map_err(|_| bad("frames: must be ≤ 4294967295"))?;
    Ok(Inbound::Stream(SessionInput::Rendered { channel, frames }))
}

/// The page's `socket` message (a text `data`; the binding passes an
/// `ArrayBuffer` to [`decode_socket_binary`] itself).
pub(crate) fn socket_message(obj: &Object<'_>, cfg: &Config) -> Result<Inbound, CoreError> {
    match str_field(obj, "event")? {
        "open" => Ok(Inbound::Stream(SessionInput::Opened)),
        "close" => {
            let code = match obj.get("code") {
                None | Some(Value::Null) => 1006,
                Some(_) => u16::try_from(whole_field(obj, "code")?)
                    .map_err(|_| bad("code: must be a WebSocket close code (0..=65535)"))?,
            };
            let reason = match obj.get("reason") {
                Some(Value::String(r)) => trunc(r),
                _ => String::new(),
            };
            Ok(Inbound::Stream(SessionInput::Closed { code, reason }))
        }
        "message" => match obj.get("data") {
            Some(Value::String(t)) => Ok(decode_socket_text(t, Arrival::default(), cfg)),
            _ => Err(bad("data: must be a string (or an ArrayBuffer, via the binding)")),
        },
        other => Err(bad(format!("event: '{}' is not one of open, message, close", trunc(other)))),
    }
}

/// The page's `fetched` message (a text `data`; the binding passes an
/// `ArrayBuffer` to [`decode_fetched`] itself).
pub(crate) fn fetched_message(obj: &Object<'_>, cfg: &Config) -> Result<Inbound, CoreError> {
    let request_id = whole_field(obj, "requestId")?;
    let time = |f: &str| obj.get(f).and_then(Value::as_f64);
    let arrival = Arrival { sent_at_ms: time("sentAt"), received_at_ms: time("receivedAt") };
    let ok = obj.get("ok").and_then(Value::as_bool).unwrap_or(false);
    let status = obj.get("status").and_then(Value::as_u64).unwrap_or(0).min(999) as u16;
    let body = match (ok, obj.get("data")) {
        (true, Some(Value::String(t))) => FetchedBody::Text(t),
        (true, Some(v @ Value::Object(_))) => {
            let mut t = String::new();
            v.write_json(&mut t);
            return Ok(decode_fetched(request_id, FetchedBody::Text(&t), arrival, cfg));
        }
        _ => FetchedBody::Failed { status },
    };
    Ok(decode_fetched(request_id, body, arrival, cfg))
}
