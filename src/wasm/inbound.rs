//! Page messages (JS values) into core inputs.
//!
//! The envelope is read here; the payload is decoded by `crate::wire`:
//! - `readings` / `live` / `catchup` with `data` a string: `wire::decode_text`;
//!   with `data` an `ArrayBuffer` or a typed array / `DataView`: copied into
//!   wasm memory once (into the host's scratch buffer) and `wire::decode_bytes`
//!   (UTF-8 JSON text if it starts with `{`, else a binary frame). Strings are
//!   transcoded once with `TextEncoder.encodeInto` into the same buffer.
//!   A detached buffer is `bad_frame`, an empty one `truncated_frame`, a
//!   `SharedArrayBuffer` `bad_field`: never a JS exception.
//! - `socket` with `event: "message"`: its `data` (string, or bytes copied once
//!   as above) through `wire::decode_socket_text` / `decode_socket_binary`;
//!   `fetched`: `requestId`, `ok`, `status` read here, `data` as above, through
//!   `wire::decode_fetched`.
//! - any other `type` (`config`, `query`, `reset`, `session`, `rendered`,
//!   `socket` open/close, unknown ones): the object is
//!   written as JSON text (`JSON.stringify`) and `wire::decode_message_text` decides.
//!
//! Every JavaScript type mismatch becomes `Inbound::Rejected` with a code, which
//! the engine reports as an `error` message. Nothing here panics.

use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Inbound;
use crate::wire::{self, Arrival, Envelope, FetchedBody};
use js_sys::{ArrayBuffer, JsString, Reflect, SharedArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

/// Decodes one page message; never fails (a bad message is `Inbound::Rejected`).
/// A `readings` / `live` / `catchup` message with an `id` is answered with an
/// `ack`, even when its payload is refused.
pub(crate) fn decode(msg: &JsValue, cfg: &Config, scratch: &mut Vec<u8>) -> Inbound {
    let input = decode_payload(msg, cfg, scratch).unwrap_or_else(Inbound::Rejected);
    let ty =
        if msg.is_object() { field(msg, "type").ok().and_then(|t| t.as_string()) } else { None };
    let input = match ty.as_deref() {
        Some("readings") => wire::for_partition(Envelope::Readings, input, cfg),
        Some("live" | "catchup") => input,
        _ => return input,
    };
    match field(msg, "id") {
        Ok(id) if id.is_undefined() || id.is_null() => input,
        Ok(id) => match wire::control::ack_id(id.as_f64()) {
            Ok(id) => wire::control::acked(Some(id), input),
            Err(e) => Inbound::Rejected(e),
        },
        Err(e) => Inbound::Rejected(e),
    }
}

fn decode_payload(
    msg: &JsValue,
    cfg: &Config,
    scratch: &mut Vec<u8>,
) -> Result<Inbound, CoreError> {
    if !msg.is_object() {
        return Err(bad_field("a message must be an object with a string `type`"));
    }
    let ty = field(msg, "type")?
        .as_string()
        .ok_or_else(|| bad_field("message.type must be a string"))?;
    check_version(msg)?;
    let arrival = || -> Result<Arrival, CoreError> {
        Ok(Arrival {
            sent_at_ms: optional_time(msg, "sentAt")?,
            received_at_ms: optional_time(msg, "receivedAt")?,
        })
    };
    let envelope = match ty.as_str() {
        "readings" => Envelope::Readings,
        "live" => Envelope::Live,
        "catchup" => Envelope::Catchup,
        "socket" => return cold_socket(msg, cfg, scratch),
        "fetched" => return cold_fetched(msg, arrival()?, cfg, scratch),
        _ => return page_control(msg, cfg),
    };
    let arrival = arrival()?;
    Ok(match payload(&field(msg, "data")?, &ty, cfg, scratch)? {
        Payload::Text(text) => wire::decode_text_bytes(envelope, text, arrival, cfg),
        Payload::Binary(bytes) => wire::decode_bytes(envelope, bytes, arrival, cfg),
    })
}

/// `socket`: a `message` event's data goes to the socket decoders; `open` and
/// `close` are control messages. Out of line, in the module's cold part
/// (scripts/split-wasm.mjs), as is `cold_fetched`.
#[inline(never)]
fn cold_socket(msg: &JsValue, cfg: &Config, scratch: &mut Vec<u8>) -> Result<Inbound, CoreError> {
    if field(msg, "event")?.as_string().as_deref() != Some("message") {
        return control(msg, cfg);
    }
    let arrival = Arrival::default();
    Ok(match payload(&field(msg, "data")?, "socket", cfg, scratch)? {
        Payload::Text(text) => wire::decode_socket_text(utf8(text)?, arrival, cfg),
        Payload::Binary(bytes) => wire::decode_socket_binary(bytes, arrival, cfg),
    })
}

/// `fetched`: a REST answer to the session's `fetch` with `requestId`. A 2xx
/// answer whose `data` is a string or bytes is read here (the bytes copied once);
/// anything else (a failure, a missing or odd `requestId` or `data`) goes whole
/// to `wire::decode_message`, which holds the rules for it.
#[inline(never)]
fn cold_fetched(
    msg: &JsValue,
    arrival: Arrival,
    cfg: &Config,
    scratch: &mut Vec<u8>,
) -> Result<Inbound, CoreError> {
    let request_id = field(msg, "requestId")?
        .as_f64()
        .filter(|id| id.fract() == 0.0 && (0.0..=MAX_REQUEST_ID).contains(id));
    let ok = field(msg, "ok")?.as_bool() == Some(true);
    let data = field(msg, "data")?;
    let (Some(request_id), true) = (request_id, ok) else { return control(msg, cfg) };
    if !data.is_string() && !data.is_instance_of::<ArrayBuffer>() && !ArrayBuffer::is_view(&data) {
        return control(msg, cfg);
    }
    let request_id = request_id as u64;
    Ok(match payload(&data, "fetched", cfg, scratch)? {
        Payload::Text(text) => {
            wire::decode_fetched(request_id, FetchedBody::Text(utf8(text)?), arrival, cfg)
        }
        Payload::Binary(bytes) => {
            wire::decode_fetched(request_id, FetchedBody::Binary(bytes), arrival, cfg)
        }
    })
}

/// The largest `requestId` (2^53, as the wire's whole numbers).
const MAX_REQUEST_ID: f64 = 9_007_199_254_740_992.0;

/// A message's `data`: a string (as UTF-8) or bytes, copied once into `scratch`.
enum Payload<'a> {
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

/// Bytes `encodeInto` wrote, as `&str` (always valid UTF-8; checked, not assumed).
fn utf8(bytes: &[u8]) -> Result<&str, CoreError> {
    std::str::from_utf8(bytes).map_err(|_| bad_field("data is not valid UTF-8"))
}

/// Reads `data` (a string, an `ArrayBuffer`, a typed array or a `DataView`),
/// refusing it before any copy if it is larger than `maxPayloadBytes`.
fn payload<'a>(
    data: &JsValue,
    ty: &str,
    cfg: &Config,
    scratch: &'a mut Vec<u8>,
) -> Result<Payload<'a>, CoreError> {
    if data.is_string() {
        return Ok(Payload::Text(text(data, ty, cfg, scratch)?));
    }
    let Some(bytes) = bytes_of(data, ty)? else {
        // Zero bytes: nothing to copy, and the decoder says `truncated_frame`.
        return Ok(Payload::Binary(&[]));
    };
    let len = bytes.length() as usize;
    if len > cfg.max_payload_bytes as usize {
        return Err(too_large(ty, len, cfg));
    }
    // The one copy from JS into wasm memory. The buffer is zero-filled only
    // when it grows, so frames of a steady size cost one memcpy and nothing
    // else; the growth itself is fallible.
    grow(scratch, len, ty)?;
    let dst = scratch.get_mut(..len).ok_or_else(|| bad_field("scratch buffer"))?;
    bytes.copy_to(dst);
    Ok(Payload::Binary(dst))
}

/// `config`, `query`, `reset` and unknown types: the whole message as JSON.
fn control(msg: &JsValue, cfg: &Config) -> Result<Inbound, CoreError> {
    let text = json_text(msg).map_err(|why| bad_field(format!("message {why}")))?;
    Ok(wire::decode_message_text(&text, cfg))
}

/// The page's own control messages (`config`, `query`, `session`, ...) are
/// bounded like payloads: a huge one is refused before it is copied into wasm
/// memory (which never shrinks) and before the decoder walks it. (A failed
/// `fetched` answer is not: it carries the server's error body, and the
/// session must learn of the failure whatever its size.)
fn page_control(msg: &JsValue, cfg: &Config) -> Result<Inbound, CoreError> {
    let js = json_string(msg).map_err(|why| bad_field(format!("message {why}")))?;
    let max = cfg.max_payload_bytes as usize;
    let too_large = |len: usize| {
        CoreError::new(
            ErrorCode::PayloadTooLarge,
            format!("a control message is {len} bytes as JSON; maxPayloadBytes is {max}"),
        )
    };
    // UTF-8 never takes fewer bytes than UTF-16 code units (see `text`).
    let units = js.length() as usize;
    if units > max {
        return Err(too_large(units));
    }
    let text = rust_string(js).map_err(|why| bad_field(format!("message {why}")))?;
    if text.len() > max {
        return Err(too_large(text.len()));
    }
    Ok(wire::decode_message_text(&text, cfg))
}

/// A JS value as JSON text (`JSON.stringify`: `undefined` members dropped,
/// NaN and infinities as `null`), for the wire's JSON reader.
pub(crate) fn json_text(v: &JsValue) -> Result<String, String> {
    json_string(v).and_then(rust_string)
}

/// The text `JSON.stringify` gave, copied into wasm memory.
fn rust_string(s: JsString) -> Result<String, String> {
    JsValue::from(s).as_string().ok_or_else(|| GAVE_NOTHING.to_string())
}

/// `JSON.stringify(v)`, still a JS string (nothing copied into wasm memory).
/// `undefined` (a `toJSON` may return it) is refused here, so that the
/// string's `length` can be read.
fn json_string(v: &JsValue) -> Result<JsString, String> {
    let s = js_sys::JSON::stringify(v).map_err(|e| {
        format!(
            "is not plain JSON-like data: {}",
            e.as_string().unwrap_or_else(|| "JSON.stringify failed".into())
        )
    })?;
    if s.is_string() {
        Ok(s)
    } else {
        Err(GAVE_NOTHING.to_string())
    }
}

const GAVE_NOTHING: &str = "is not plain JSON-like data (JSON.stringify gave nothing)";

/// `data` as UTF-8 in `scratch`, refusing it before the copy if it cannot fit.
///
/// One `TextEncoder.encodeInto` straight into wasm memory: native transcoding,
/// no intermediate `String` (wasm-bindgen's own string passing copies ASCII
/// one character at a time in JavaScript, the largest cost of a JSON batch).
/// Lone surrogates become U+FFFD, as with any conversion to a Rust string.
fn text<'s>(
    data: &JsValue,
    ty: &str,
    cfg: &Config,
    scratch: &'s mut Vec<u8>,
) -> Result<&'s [u8], CoreError> {
    // UTF-8 never takes fewer bytes than UTF-16 code units, so a string with more
    // units than the limit is too large without converting it.
    let source = data.unchecked_ref::<JsString>();
    let units = source.length() as usize;
    let max = cfg.max_payload_bytes as usize;
    if units > max {
        return Err(too_large(ty, units, cfg));
    }
    let encoder = ENCODER.with(Clone::clone);
    // ASCII fits in `units` bytes; anything else takes up to 3 bytes a unit,
    // and past `max` bytes it is too large (`max + 4` holds one more character).
    for room in [units, units.saturating_mul(3).min(max + 4)] {
        grow(scratch, room, ty)?;
        let dst = scratch.get_mut(..room).ok_or_else(|| bad_field("scratch buffer"))?;
        let view = wasm_view(dst);
        let done = encoder.encode_into(source, &view);
        if done.read() as usize == units {
            let written = done.written() as usize;
            return scratch.get(..written).ok_or_else(|| bad_field("scratch buffer"));
        }
    }
    Err(too_large(ty, units.saturating_mul(3), cfg))
}

/// `scratch` at least `len` bytes long; the growth is fallible.
fn grow(scratch: &mut Vec<u8>, len: usize, ty: &str) -> Result<(), CoreError> {
    if let Some(more) = len.checked_sub(scratch.len()).filter(|&n| n > 0) {
        scratch.try_reserve(more).map_err(|_| {
            CoreError::new(
                ErrorCode::OutOfMemory,
                format!("{ty}.data: no memory to copy a payload of {len} bytes"),
            )
        })?;
        scratch.resize(len, 0);
    }
    Ok(())
}

/// A `Uint8Array` over `dst` in wasm memory. Valid until wasm memory grows:
/// use it before anything allocates.
fn wasm_view(dst: &mut [u8]) -> Uint8Array {
    let memory = wasm_bindgen::memory().unchecked_into::<js_sys::WebAssembly::Memory>();
    Uint8Array::new_with_byte_offset_and_length(
        &memory.buffer(),
        dst.as_mut_ptr() as usize as u32,
        dst.len() as u32,
    )
}

thread_local! {
    static ENCODER: Utf8Encoder = Utf8Encoder::new();
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `TextEncoder`, with `encodeInto` taking the JS string itself (web-sys's
    /// binding takes a `&str`, which would copy the string into wasm first).
    #[wasm_bindgen(js_name = TextEncoder)]
    #[derive(Clone)]
    type Utf8Encoder;
    #[wasm_bindgen(constructor, js_class = "TextEncoder")]
    fn new() -> Utf8Encoder;
    #[wasm_bindgen(method, js_class = "TextEncoder", js_name = encodeInto)]
    fn encode_into(this: &Utf8Encoder, source: &JsString, dest: &Uint8Array) -> EncodeIntoResult;

    /// `{ read, written }` of `encodeInto`.
    type EncodeIntoResult;
    #[wasm_bindgen(method, getter)]
    fn read(this: &EncodeIntoResult) -> f64;
    #[wasm_bindgen(method, getter)]
    fn written(this: &EncodeIntoResult) -> f64;
}

/// A byte view of an `ArrayBuffer`, a typed array or a `DataView`, or `None`
/// when it holds no bytes. Nothing here can throw: a view is only made over a
/// live `ArrayBuffer` and a range checked against it, since a JS exception
/// thrown through wasm would leave the engine half-way through `handle`.
/// A detached buffer is `bad_frame`; a `SharedArrayBuffer` (or a view of one),
/// which another thread may write while it is decoded, and anything else are
/// `bad_field`.
fn bytes_of(data: &JsValue, ty: &str) -> Result<Option<Uint8Array>, CoreError> {
    let not_bytes =
        || bad_field(format!("{ty}.data must be a string, an ArrayBuffer or a typed array"));
    let shared = || {
        bad_field(format!(
            "{ty}.data is backed by a SharedArrayBuffer; post (transfer) an ArrayBuffer or a copy"
        ))
    };
    let (buffer, offset, length) = if let Some(buf) = data.dyn_ref::<ArrayBuffer>() {
        check_attached(buf, ty)?;
        (buf.clone(), 0.0, f64::from(buf.byte_length()))
    } else if ArrayBuffer::is_view(data) {
        // Read the view's own accessors, whichever kind of view it is; a
        // DataView's accessors throw once its buffer is detached: check that first.
        let get = |name: &str| Reflect::get(data, &name.into()).map_err(|_| not_bytes());
        let buffer = get("buffer")?;
        let Some(buf) = buffer.dyn_ref::<ArrayBuffer>() else {
            return Err(if buffer.is_instance_of::<SharedArrayBuffer>() {
                shared()
            } else {
                not_bytes()
            });
        };
        check_attached(buf, ty)?;
        let offset = get("byteOffset")?.as_f64().ok_or_else(not_bytes)?;
        let length = get("byteLength")?.as_f64().ok_or_else(not_bytes)?;
        (buf.clone(), offset, length)
    } else if data.is_instance_of::<SharedArrayBuffer>() {
        return Err(shared());
    } else {
        return Err(not_bytes());
    };
    if length == 0.0 {
        return Ok(None);
    }
    let whole = |x: f64| x >= 0.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX);
    let end = offset + length;
    if !(whole(offset) && whole(length) && end <= f64::from(buffer.byte_length())) {
        return Err(CoreError::new(
            ErrorCode::BadFrame,
            format!("{ty}.data: a view of bytes {offset}..{end} lies outside its buffer"),
        ));
    }
    Ok(Some(Uint8Array::new_with_byte_offset_and_length(&buffer, offset as u32, length as u32)))
}

/// `bad_frame` if `buffer` is detached. `detached` is read where the engine
/// has it; elsewhere a detached buffer and its typed arrays have length 0 and
/// end as an empty frame (`truncated_frame`).
fn check_attached(buffer: &ArrayBuffer, ty: &str) -> Result<(), CoreError> {
    let detached = Reflect::get(buffer, &"detached".into()).ok().and_then(|d| d.as_bool());
    if detached == Some(true) {
        return Err(CoreError::new(
            ErrorCode::BadFrame,
            format!(
                "{ty}.data: its ArrayBuffer is detached (already transferred elsewhere); \
                 post each frame's buffer once"
            ),
        ));
    }
    Ok(())
}

/// `v`, if present, must be 1.
fn check_version(msg: &JsValue) -> Result<(), CoreError> {
    let v = field(msg, "v")?;
    if v.is_undefined() || v.as_f64() == Some(1.0) {
        return Ok(());
    }
    Err(CoreError::new(
        ErrorCode::UnsupportedVersion,
        format!("message.v is {v:?}; this worker speaks version 1"),
    ))
}

/// An optional page timestamp (`sentAt`, `receivedAt`): absent/null, or a finite number.
fn optional_time(msg: &JsValue, name: &str) -> Result<Option<f64>, CoreError> {
    let v = field(msg, name)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(t) if t.is_finite() => Ok(Some(t)),
        _ => Err(bad_field(format!("message.{name} must be a finite number (ms since the epoch)"))),
    }
}

fn field(msg: &JsValue, name: &str) -> Result<JsValue, CoreError> {
    Reflect::get(msg, &JsValue::from_str(name))
        .map_err(|_| bad_field(format!("message.{name} could not be read")))
}

fn bad_field(message: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::BadField, message)
}

fn too_large(ty: &str, len: usize, cfg: &Config) -> CoreError {
    CoreError::new(
        ErrorCode::PayloadTooLarge,
        format!("{ty}.data is {len} bytes; maxPayloadBytes is {}", cfg.max_payload_bytes),
    )
}
