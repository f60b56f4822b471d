//! Typed errors with stable machine-readable codes.
//!
//! Every error the engine reports reaches the page as an `error` event carrying
//! `code` (one of [`ErrorCode::as_str`], stable across releases), a human message,
//! and where it applies the position of the offending item in its batch.

use std::fmt;

use super::event::Outbound;

/// Stable error codes. New codes may be added; existing strings never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The payload is not valid JSON.
    MalformedJson,
    /// A field has the wrong type or an item lacks a required field.
    BadField,
    /// The message `type` is not one the engine knows.
    UnknownType,
    /// The protocol version `v` is not supported.
    UnsupportedVersion,
    /// A reading value is NaN, infinite or beyond `maxAbsValue`.
    BadValue,
    /// A reading timestamp is not finite, before the window or too far in the future.
    BadTimestamp,
    /// A binary frame is shorter than its header or declared contents.
    TruncatedFrame,
    /// A binary frame has a wrong magic number or an unknown kind.
    BadFrame,
    /// A payload is larger than `maxPayloadBytes`, or a batch than `maxBatch`.
    PayloadTooLarge,
    /// A binary record names a stream key that no frame has bound.
    UnknownKey,
    /// A stream key is at or past `maxStreamKeys`.
    KeyOutOfRange,
    /// A meter id is empty, too long or not UTF-8.
    BadMeterId,
    /// A new meter arrived while `maxMeters` meters are tracked.
    MeterCapacity,
    /// A query or reset names a meter the engine does not track.
    UnknownMeter,
    /// A configuration patch was refused; the previous configuration stays.
    BadConfig,
    /// A remote clock (frame stamp, REST watermark, server time) is too far ahead
    /// of the corrected clock, or a sync sample is beyond `maxClockSkewMs`.
    ClockAhead,
    /// A reading or bucket names a resource the configuration does not list.
    UnknownResource,
    /// A reading arrived for an hour that has rolled off (it is counted as late).
    LateReading,
    /// Memory for a new meter's window could not be reserved.
    OutOfMemory,
}

impl ErrorCode {
    /// Every code, for documentation checks.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::MalformedJson,
        ErrorCode::BadField,
        ErrorCode::UnknownType,
        ErrorCode::UnsupportedVersion,
        ErrorCode::BadValue,
        ErrorCode::BadTimestamp,
        ErrorCode::TruncatedFrame,
        ErrorCode::BadFrame,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnknownKey,
        ErrorCode::KeyOutOfRange,
        ErrorCode::BadMeterId,
        ErrorCode::MeterCapacity,
        ErrorCode::UnknownMeter,
        ErrorCode::BadConfig,
        ErrorCode::ClockAhead,
        ErrorCode::UnknownResource,
        ErrorCode::LateReading,
        ErrorCode::OutOfMemory,
    ];

    /// The stable wire string, e.g. `"malformed_json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::BadField => "bad_field",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::BadValue => "bad_value",
            ErrorCode::BadTimestamp => "bad_timestamp",
            ErrorCode::TruncatedFrame => "truncated_frame",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::KeyOutOfRange => "key_out_of_range",
            ErrorCode::BadMeterId => "bad_meter_id",
            ErrorCode::MeterCapacity => "meter_capacity",
            ErrorCode::UnknownMeter => "unknown_meter",
            ErrorCode::BadConfig => "bad_config",
            ErrorCode::ClockAhead => "clock_ahead",
            ErrorCode::UnknownResource => "unknown_resource",
            ErrorCode::LateReading => "late_reading",
            ErrorCode::OutOfMemory => "out_of_memory",
        }
    }
}

/// An error found by the core or by a decoder: code, message and the item's position.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct CoreError {
    pub code: ErrorCode,
    pub message: String,
    /// Index of the offending item in its batch (reading, record), if any.
    pub position: Option<u32>,
}

impl CoreError {
    /// An error with no item position.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CoreError { code, message: message.into(), position: None }
    }

    /// An error about item `position` of a batch.
    pub fn at(code: ErrorCode, position: usize, message: impl Into<String>) -> Self {
        let position = u32::try_from(position).ok();
        CoreError { code, message: message.into(), position }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{} at item {}: {}", self.code.as_str(), p, self.message),
            None => write!(f, "{}: {}", self.code.as_str(), self.message),
        }
    }
}

/// Caps the error events one batch produces.
pub(crate) struct ErrorSink<'a> {
    out: &'a mut Vec<Outbound>,
    sent: u32,
    suppressed: u32,
    max: u32,
}

impl<'a> ErrorSink<'a> {
    /// A sink reporting at most `max` errors into `out`.
    pub(crate) fn new(out: &'a mut Vec<Outbound>, max: u32) -> Self {
        ErrorSink { out, sent: 0, suppressed: 0, max }
    }

    /// Reports `e`, or counts it once the cap is reached.
    pub(crate) fn push(&mut self, e: CoreError) {
        if self.sent < self.max {
            self.sent += 1;
            self.out.push(Outbound::Error(e));
        } else {
            self.suppressed += 1;
        }
    }

    /// Reports how many errors were not reported individually, if any.
    pub(crate) fn finish(self) {
        if self.suppressed > 0 {
            self.out.push(Outbound::Error(CoreError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "{} more errors in this batch not reported individually (maxErrorsPerBatch = {})",
                    self.suppressed, self.max
                ),
            )));
        }
    }
}
