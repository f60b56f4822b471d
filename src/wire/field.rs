//! Checks of individual JSON fields, shared by the payload decoders.
//!
//! Each check takes the field's raw JSON text ([`Raw`], so numbers can be
//! read exactly) and a [`Loc`] naming where it is, and returns the value or a
//! `CoreError` whose message names the field and whose position is the item's.
//! These run on the slow path only where they can: decoders first try a typed
//! fast parse and use these to explain a failure.

use std::borrow::Cow;

use super::doc::{self, DocError, Raw};
use super::lite::{Cursor, Number};

use crate::core::config::Config;
use crate::core::decimal::{
    Decimal, ParseError, MAX_AMOUNT_DIGITS, MAX_EXPONENT_DIGITS, MAX_SCALE,
};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::hlc::Hlc;
pub(crate) use crate::core::meters::meter_id_problem;

/// Largest whole number accepted for epochs, sequence numbers and reading ids (2^53).
pub(crate) const MAX_WHOLE: u64 = 1 << 53;

/// Where a field is: an item of a list (`readings[3]`) or the payload itself.
/// A quiet `Loc` makes its errors without their text: an item past the
/// body's `maxErrorsPerBatch`-th error, whose text would never be shown
/// (`wire::record_text`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc<'s> {
    pub list: &'s str,
    pub index: Option<usize>,
    pub quiet: bool,
}

impl<'s> Loc<'s> {
    /// The payload's top level.
    pub fn top() -> Loc<'static> {
        Loc { list: "", index: None, quiet: false }
    }

    /// Item `index` of `list`, quiet once the body's decoder has made
    /// `shown` errors and that reaches `maxErrorsPerBatch`.
    pub fn record(list: &'s str, index: usize, shown: usize, cfg: &Config) -> Loc<'s> {
        Loc { list, index: Some(index), quiet: shown >= cfg.max_errors_per_batch as usize }
    }

    /// An error about `field` here (`field` may be empty for the item itself).
    pub fn err(&self, code: ErrorCode, field: &str, why: impl std::fmt::Display) -> CoreError {
        if self.quiet {
            return CoreError { code, message: String::new(), position: self.position() };
        }
        let path = match (self.index, field.is_empty()) {
            (Some(i), true) => format!("{}[{i}]", self.list),
            (Some(i), false) => format!("{}[{i}].{field}", self.list),
            (None, _) => field.to_string(),
        };
        let message = format!("{path}: {why}");
        match self.index {
            Some(i) => CoreError::at(code, i, message),
            None => CoreError::new(code, message),
        }
    }

    fn position(&self) -> Option<u32> {
        self.index.and_then(|i| u32::try_from(i).ok())
    }

    /// `bad_field` for a missing required field.
    pub fn missing(&self, field: &str) -> CoreError {
        self.err(ErrorCode::BadField, field, "missing")
    }
}

/// A short excerpt of raw JSON for messages (never the whole of a large value).
pub(crate) fn excerpt(raw: Raw<'_>) -> String {
    let s = raw.get();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn is_number_text(raw: Raw<'_>) -> bool {
    matches!(raw.get().as_bytes().first(), Some(b'-' | b'0'..=b'9'))
}

/// A required field.
pub(crate) fn required<'a>(
    raw: Option<Raw<'a>>,
    loc: Loc<'_>,
    field: &str,
) -> Result<Raw<'a>, CoreError> {
    raw.ok_or_else(|| loc.missing(field))
}

/// A finite JSON number. Not a number is `bad_field`; beyond the f64 range is
/// `out_of_range` (the caller's code: `bad_value` or `bad_timestamp`).
pub(crate) fn number(
    raw: Raw<'_>,
    loc: Loc<'_>,
    field: &str,
    out_of_range: ErrorCode,
) -> Result<f64, CoreError> {
    if !is_number_text(raw) {
        return Err(loc.err(
            ErrorCode::BadField,
            field,
            format_args!("must be a number, got {}", excerpt(raw)),
        ));
    }
    match Number::from_text(raw.get()).as_f64() {
        Some(x) => Ok(x),
        None => Err(loc.err(out_of_range, field, format_args!("{} is out of range", excerpt(raw)))),
    }
}

/// A whole number in `0..=max`, exactly (a JSON integer beyond 2^53 is not
/// rounded into range). Not a number is `bad_field`, anything else `bad_value`.
pub(crate) fn whole(raw: Raw<'_>, loc: Loc<'_>, field: &str, max: u64) -> Result<u64, CoreError> {
    if !is_number_text(raw) {
        return Err(loc.err(
            ErrorCode::BadField,
            field,
            format_args!("must be a whole number, got {}", excerpt(raw)),
        ));
    }
    match whole_text(raw.get(), max) {
        Some(v) => Ok(v),
        None => Err(loc.err(
            ErrorCode::BadValue,
            field,
            format_args!("{} is not a whole number in 0..={max}", excerpt(raw)),
        )),
    }
}

/// JSON number text as a whole number in `0..=2^53` ([`whole_text`] with
/// [`MAX_WHOLE`]); up to 15 plain digits (JSON has no leading zeros) is below
/// 2^53 and is read without building a decimal.
pub(crate) fn whole_json(text: &str) -> Option<u64> {
    if text.len() <= 15 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    whole_text(text, MAX_WHOLE)
}

/// JSON number text as a whole number in `0..=max`, exactly: read as a decimal
/// (so `9007199254740992.5` or `9007199254740993` is not rounded to 2^53), whole
/// if its value is (`1.0`, `1e3`). `max` is at most `i64::MAX`.
pub(crate) fn whole_text(text: &str, max: u64) -> Option<u64> {
    let d = Decimal::parse_text(text).ok()?;
    let v = u64::try_from(d.mantissa).ok()?;
    (d.scale == 0 && v <= max).then_some(v)
}

/// A JSON string, borrowed when it has no escapes.
pub(crate) fn string<'a>(
    raw: Raw<'a>,
    loc: Loc<'_>,
    field: &str,
) -> Result<Cow<'a, str>, CoreError> {
    match string_text(raw) {
        Some(s) => Ok(s),
        None => Err(loc.err(
            ErrorCode::BadField,
            field,
            format_args!("must be a string, got {}", excerpt(raw)),
        )),
    }
}

/// The string `raw` is, if it is one whose `\u` surrogates pair.
fn string_text(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    Cursor::new(raw.get()).read_string().ok()
}

/// A meter id: a string of 1..=256 bytes.
pub(crate) fn meter_id<'a>(
    raw: Raw<'a>,
    loc: Loc<'_>,
    field: &str,
) -> Result<Cow<'a, str>, CoreError> {
    let s = string(raw, loc, field)?;
    check_meter_id(&s, loc, field)?;
    Ok(s)
}

/// Checks a meter id by the one rule of every path (PROTOCOL.md, "Amounts and
/// meter ids"): see [`meter_id_problem`].
pub(crate) fn check_meter_id(id: &str, loc: Loc<'_>, field: &str) -> Result<(), CoreError> {
    match meter_id_problem(id) {
        None => Ok(()),
        Some(why) => Err(loc.err(ErrorCode::BadMeterId, field, why)),
    }
}

/// An HLC given as `{wallMs, counter}`. Not an object of two numbers is
/// `bad_field`; parts out of range (beyond the double range too) or not whole
/// are `bad_timestamp`.
pub(crate) fn hlc(raw: Raw<'_>, loc: Loc<'_>, field: &str) -> Result<Hlc, CoreError> {
    let shape = || {
        loc.err(
            ErrorCode::BadField,
            field,
            format_args!("must be {{wallMs, counter}} numbers, got {}", excerpt(raw)),
        )
    };
    if !raw.get().starts_with('{') {
        return Err(shape());
    }
    // Both present (`null` too: it fails the number check), each at most once.
    let Some([Some(wall_ms), Some(counter)]) = doc::fields(raw, ["wallMs", "counter"]) else {
        return Err(shape());
    };
    if !(is_number_text(wall_ms) && is_number_text(counter)) {
        return Err(shape());
    }
    let wall_ms = number(wall_ms, loc, field, ErrorCode::BadTimestamp)?;
    let counter = number(counter, loc, field, ErrorCode::BadTimestamp)?;
    Hlc::from_f64(wall_ms, counter).ok_or_else(|| {
        loc.err(
            ErrorCode::BadTimestamp,
            field,
            format_args!(
                "wallMs {wall_ms} and counter {counter} must be whole, wallMs <= 2^47, counter <= 65535"
            ),
        )
    })
}

/// An exact decimal given as a JSON number or a decimal string, by the one
/// amount grammar: not grammatical is `bad_field`, out of range `bad_value`.
pub(crate) fn decimal(raw: Raw<'_>, loc: Loc<'_>, field: &str) -> Result<Decimal, CoreError> {
    let text: Cow<'_, str> = if is_number_text(raw) {
        Cow::Borrowed(raw.get())
    } else {
        match string_text(raw) {
            Some(s) => s,
            None => {
                return Err(loc.err(
                    ErrorCode::BadField,
                    field,
                    format_args!("must be a number or a decimal string, got {}", excerpt(raw)),
                ))
            }
        }
    };
    Decimal::parse_text(&text).map_err(|e| match e {
        ParseError::Syntax => loc.err(
            ErrorCode::BadField,
            field,
            format_args!(
                "{} is not an amount (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, at most \
                 {MAX_AMOUNT_DIGITS} digits and a {MAX_EXPONENT_DIGITS}-digit exponent)",
                excerpt(raw)
            ),
        ),
        ParseError::Range => loc.err(
            ErrorCode::BadValue,
            field,
            format_args!(
                "{} is not an exact decimal within range (at most {MAX_SCALE} decimals, \
                 a mantissa within i64)",
                excerpt(raw)
            ),
        ),
    })
}

/// Checks `v`, if present: it must be the number 1.
pub(crate) fn version(raw: Option<Raw<'_>>) -> Result<(), CoreError> {
    match raw {
        None => Ok(()),
        Some(v) if is_number_text(v) && Number::from_text(v.get()).as_f64() == Some(1.0) => Ok(()),
        Some(v) => Err(CoreError::new(
            ErrorCode::UnsupportedVersion,
            format!("v: protocol version {} is not supported (this worker speaks 1)", excerpt(v)),
        )),
    }
}

/// Maps a payload without a top level to `malformed_json` (not JSON) or
/// `bad_field` (JSON, but not an object).
pub(crate) fn payload_error(e: &DocError, what: &str) -> CoreError {
    match e {
        DocError::Syntax(_) => {
            CoreError::new(ErrorCode::MalformedJson, format!("{what}: not JSON ({e})"))
        }
        DocError::Shape(_) => CoreError::new(
            ErrorCode::BadField,
            format!("{what}: expected a JSON object with the documented fields ({e})"),
        ),
    }
}
