//! The wire layer: untrusted payloads in, core inputs out; core outputs in, wire
//! shapes out. Pure Rust, shared by the wasm binding, the replay command, the
//! tests and the benchmarks.
//!
//! Invariants:
//! - Nothing here panics on any input: no `unwrap`, no `expect`, no unchecked
//!   index on a decode path. A payload that cannot be decoded at all becomes
//!   [`Inbound::Rejected`] with a stable [`ErrorCode`]; a bad item inside a
//!   batch goes into the batch's `errors` (with its position) and the other
//!   items still apply.
//! - Amounts and totals are taken exactly from their JSON text or their binary
//!   mantissa (via [`Decimal`](crate::core::decimal::Decimal)), never through an
//!   `f64` sum.
//! - One grammar for amounts and one rule for meter ids on every path (JSON and
//!   binary, PROTOCOL.md 3.9): `Decimal::parse_text` and
//!   `field::meter_id_problem` are their only readers.
//! - Allocation follows the payload: decoding allocates at most a small
//!   constant times the payload's length (`tests/alloc_bounds.rs`); counts in
//!   a header are checked against the bytes left before anything is reserved,
//!   and no table is sized by a key a payload names.
//! - The layouts and codes are those of `docs/PROTOCOL.md`, version 1.
//!
//! Modules: [`json`] (readings, live frame, hello, catch-up text payloads),
//! [`control`] (whole page messages: config, query, reset, and the envelopes),
//! [`binary`] (frame v1 decoding and the Rust-side encoders), [`out`] (outbound
//! wire shapes), `doc` (the one-pass top level of a JSON payload), `ack` (the
//! one-pass reader of a `HEARTBEAT_ACK`'s `sent` map), `field`
//! (shared checks of JSON fields), [`lite`] (the strict JSON reader every
//! inbound decoder reads with: no serde_json parser in the `.wasm`).

mod ack;
pub mod binary;
pub mod control;
mod delta;
mod doc;
mod field;
pub mod groups;
pub mod json;
pub mod lite;
pub mod out;
mod scan;
#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
pub mod serde_oracle;
pub mod stream;

use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{Inbound, Outbound};

pub use control::{decode_config, decode_message};
pub use control::{decode_config_value, decode_message_text, decode_value};
#[doc(hidden)]
pub use delta::meters_delta;
pub use out::WireOut;
pub use stream::{decode_fetched, decode_socket_binary, decode_socket_text, FetchedBody};
#[doc(hidden)]
pub use stream::{decode_socket_text_general, decode_socket_text_sent};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// Which page message carried a payload (PROTOCOL.md section 2). The payload's
/// own type must fit it, otherwise it is `unknown_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `readings`: JSON `readings` or binary kind 1.
    Readings,
    /// `live`: JSON `frame` or `hello`, or binary kind 2.
    Live,
    /// `catchup`: JSON `catchup`.
    Catchup,
}

impl Envelope {
    /// The page message type that carries this envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Envelope::Readings => "readings",
            Envelope::Live => "live",
            Envelope::Catchup => "catchup",
        }
    }
}

/// When the page sent the request behind a payload and when the payload arrived
/// (page `Date.now()`), for clock-offset samples of REST catch-ups.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Arrival {
    pub sent_at_ms: Option<f64>,
    pub received_at_ms: Option<f64>,
}

/// Decodes a JSON text payload carried by `envelope`. Never panics: anything
/// undecodable becomes `Inbound::Rejected(err)`.
pub fn decode_text(envelope: Envelope, text: &str, arrival: Arrival, cfg: &Config) -> Inbound {
    json::decode(envelope, text, arrival, cfg)
}

/// Decodes a payload given as bytes (PROTOCOL.md 2): UTF-8 JSON text if its
/// first byte other than JSON whitespace is `{`, else a binary frame (whose
/// magic `MFLW` never is). JSON bytes that are not UTF-8 are `malformed_json`.
/// Never panics.
pub fn decode_bytes(envelope: Envelope, bytes: &[u8], arrival: Arrival, cfg: &Config) -> Inbound {
    let first = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return binary::decode(envelope, bytes, arrival, cfg);
    }
    decode_text_bytes(envelope, bytes, arrival, cfg)
}

/// Decodes a JSON text payload given as UTF-8 bytes: the same as
/// [`decode_text`] on the same text; bytes that are not UTF-8 are
/// `malformed_json`. Never panics.
pub fn decode_text_bytes(
    envelope: Envelope,
    bytes: &[u8],
    arrival: Arrival,
    cfg: &Config,
) -> Inbound {
    if let Err(e) = check_payload_size(bytes.len(), cfg) {
        return Inbound::Rejected(e);
    }
    // The readings scanner accepts only ASCII structure and strings, so what it
    // accepts is UTF-8 without checking; everything else is checked first.
    if envelope == Envelope::Readings {
        if let Some(batch) = scan::readings(bytes, cfg) {
            return Inbound::Readings(batch);
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => json::decode_general(envelope, text, arrival, cfg),
        Err(e) => Inbound::Rejected(CoreError::new(
            ErrorCode::MalformedJson,
            format!("{} payload: JSON bytes are not UTF-8 ({e})", envelope.as_str()),
        )),
    }
}

/// The JSON readings scanner alone (`scan.rs`): the batch when `bytes` has the
/// common shape, else `None` (and [`decode_bytes`] hands the payload to the
/// general decoder). For tests and benchmarks that must show a payload takes
/// the fast path rather than the fallback.
pub fn scan_readings(bytes: &[u8], cfg: &Config) -> Option<crate::core::event::ReadingBatch> {
    scan::readings(bytes, cfg)
}

/// A decoded payload as this worker's partition of a pool sees it
/// (`config.partition`): every worker of a pool is handed the same `readings`
/// payload, so one refused as a whole is reported by partition 0 alone; the
/// others take it as an empty batch (no error, an `ack` of nothing). Anything
/// else passes unchanged. The binding calls it on every page payload.
pub fn for_partition(envelope: Envelope, input: Inbound, cfg: &Config) -> Inbound {
    match input {
        Inbound::Rejected(_)
            if envelope == Envelope::Readings && !cfg.partition.reports_payload() =>
        {
            Inbound::Readings(crate::core::event::ReadingBatch::default())
        }
        other => other,
    }
}

/// Decodes a binary frame (PROTOCOL.md 3.4/3.5/3.8) carried by `envelope`. Never
/// panics: anything undecodable becomes `Inbound::Rejected(err)`.
pub fn decode_binary(envelope: Envelope, bytes: &[u8], cfg: &Config) -> Inbound {
    binary::decode(envelope, bytes, Arrival::default(), cfg)
}

/// [`decode_binary`] with the page's request and arrival times, which a binary
/// catch-up (kind 3) turns into a clock-offset sample.
pub fn decode_binary_at(
    envelope: Envelope,
    bytes: &[u8],
    arrival: Arrival,
    cfg: &Config,
) -> Inbound {
    binary::decode(envelope, bytes, arrival, cfg)
}

/// The wire shape of an outbound message (PROTOCOL.md section 4): serialise it
/// with `serde_json` (natively; the wasm build emits JS objects, `src/wasm/outbound.rs`).
pub fn encode(out: &Outbound) -> WireOut<'_> {
    out::encode(out)
}

/// The error for a payload larger than `maxPayloadBytes`, if it is.
pub(crate) fn check_payload_size(len: usize, cfg: &Config) -> Result<(), CoreError> {
    if len > cfg.max_payload_bytes as usize {
        return Err(CoreError::new(
            ErrorCode::PayloadTooLarge,
            format!("payload of {len} bytes exceeds maxPayloadBytes {}", cfg.max_payload_bytes),
        ));
    }
    Ok(())
}

/// A refused record's text, made only if it will be shown: while the body's
/// decoder has made fewer than `maxErrorsPerBatch` errors (`shown` is how many
/// it has). The engine reports a body's decoder errors first and at most
/// `maxErrorsPerBatch` of them, then one `errors_suppressed` counting the
/// rest, so a text past the cap would never be read; the error keeps its code
/// and position, for the counts. Formatting every one cost a 16 MiB body of
/// 825,548 refused records 0.56 s and 290 MB natively (a value near `f64::MAX`
/// prints 309 digits; docs/PERFORMANCE.md, "Hostile payloads").
pub(crate) fn record_text(shown: usize, cfg: &Config, text: impl FnOnce() -> String) -> String {
    if shown < cfg.max_errors_per_batch as usize {
        text()
    } else {
        String::new()
    }
}

/// The error for a batch of more than `maxBatch` items, if it is.
pub(crate) fn check_batch_size(what: &str, n: usize, cfg: &Config) -> Result<(), CoreError> {
    if n > cfg.max_batch as usize {
        return Err(CoreError::new(
            ErrorCode::PayloadTooLarge,
            format!("{what}: {n} items exceed maxBatch {}", cfg.max_batch),
        ));
    }
    Ok(())
}
