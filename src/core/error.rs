//! Typed errors with stable machine-readable codes.
//!
//! Every error the engine reports reaches the page as an `error` event carrying
//! `code` (one of [`ErrorCode::as_str`], stable across releases), a human message,
//! and where it applies the position of the offending item in its batch.

use std::fmt;

use super::event::Outbound;

/// Stable error codes. New codes may be added; existing strings never change.
///
/// The wire string of a variant is its name in snake_case (derived, so the
/// list of codes is the enum itself: [`ErrorCode::iter`] walks every variant,
/// and `tests/protocol_docs.rs` checks PROTOCOL.md and `protocol.d.ts` against
/// it both ways). Each code means one thing, so a page can branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::EnumIter, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
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
    /// More errors in one batch than `maxErrorsPerBatch`: one event counts the rest.
    ErrorsSuppressed,
    /// `maxPendingReadings` live readings wait for a catch-up: later ones are not counted yet.
    PendingLimit,
    /// A live frame or hello named a new channel while `maxChannels` are tracked.
    ChannelLimit,
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
    /// Stream: a channel name is empty, too long or outside `A–Z a–z 0–9 . _ -`.
    BadChannel,
    /// Stream: a channel's buffer passed `maxBufferedDeltas`; it refetches.
    BufferLimit,
    /// Stream: the server sent a delta beyond the granted credit; refused.
    CreditOverrun,
    /// Stream: a server op the session's state does not allow; ignored.
    UnexpectedOp,
    /// Stream: a snapshot or fetched body that does not fit its request or channel.
    BadSnapshot,
    /// Stream: the server closed with a fatal code; the session stopped.
    FatalClose,
    /// Stream: a delta or request for a channel that is not subscribed.
    NotSubscribed,
    /// Stream: entities refused at a store's cap (`maxMeterEntities`, `maxNotices`).
    EntityLimit,
    /// Stream: a detail request past `detailCacheSize` fetches in flight.
    DetailLimit,
    /// Groups: a group past `maxGroups`, or a meter's membership past
    /// `maxGroupsPerMeter`, in a `/groups` map; the rest of the map applies.
    GroupLimit,
    /// series: past `maxSeriesSubscriptions` subscriptions or queued computations.
    SeriesLimit,
    /// The binding could not convert an outbound message (a bug). Never produced
    /// by the core; the wasm binding posts it.
    Internal,
}

impl ErrorCode {
    /// The stable wire string, e.g. `"malformed_json"`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every code, in declaration order.
    pub fn iter() -> impl Iterator<Item = ErrorCode> {
        <ErrorCode as strum::IntoEnumIterator>::iter()
    }
}

/// Stable warning codes: something the page should know that is not an error.
/// Wire strings are the variant names in snake_case, as for [`ErrorCode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::EnumIter, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum WarningCode {
    /// The memory guard fired: every meter's window was reduced to `reducedWindow`.
    MemoryCeiling,
    /// Replay only: timer fires over a gap in the recording were skipped.
    ReplayGap,
    /// Groups: a `/groups` refresh failed or was malformed; the previous map stays.
    GroupsRefreshFailed,
    /// Ledger: a `pending_limit` episode ended (pending live readings fell below
    /// `maxPendingReadings`); `count` says how many readings it refused.
    PendingLimitCleared,
    /// Groups: a catch-up listing per-meter hours could not rebuild the rows
    /// (live readings after its watermark were forgotten past
    /// `maxRowLogReadings`, or a meter it names could not be tracked); the
    /// rows stay as they were and the groups stay `incomplete`.
    RebuildRefused,
    /// ledger: a cut per-meter catch-up needed more follow-up pages than
    /// `maxCatchupPages`; the groups stay `incomplete` until a later catch-up
    /// (or the missed hour ages out).
    CatchupPagesLimit,
}

impl WarningCode {
    /// The stable wire string, e.g. `"memory_ceiling"`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every code, in declaration order.
    pub fn iter() -> impl Iterator<Item = WarningCode> {
        <WarningCode as strum::IntoEnumIterator>::iter()
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
    /// An error with no item position. Left to the inliner: the ingest
    /// decoders call it (docs/SIZE.md, "Cuts", on forcing it out of line).
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

    /// Like [`ErrorSink::push`], but the error is only made (its text
    /// formatted) if it will be reported: a body may refuse millions.
    pub(crate) fn push_with(&mut self, make: impl FnOnce() -> CoreError) {
        if self.sent < self.max {
            self.push(make());
        } else {
            self.suppressed += 1;
        }
    }

    /// Counts `n` errors that are not reported individually (a decoder that
    /// knows they fall past the cap and never made them).
    pub(crate) fn suppress(&mut self, n: usize) {
        self.suppressed = self.suppressed.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Reports how many errors were not reported individually, if any.
    pub(crate) fn finish(self) {
        if self.suppressed > 0 {
            self.out.push(Outbound::Error(suppressed(self.suppressed, self.max)));
        }
    }
}

/// The one `errors_suppressed` error: `n` errors past `maxErrorsPerBatch` (`max`).
fn suppressed(n: u32, max: u32) -> CoreError {
    CoreError::new(
        ErrorCode::ErrorsSuppressed,
        format!(
            "{n} more errors in this batch not reported individually (maxErrorsPerBatch = {max})"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_are_snake_case_and_unique() {
        assert_eq!(ErrorCode::MalformedJson.as_str(), "malformed_json");
        assert_eq!(ErrorCode::OutOfMemory.as_str(), "out_of_memory");
        assert_eq!(WarningCode::MemoryCeiling.as_str(), "memory_ceiling");
        let mut all: Vec<&str> = ErrorCode::iter().map(ErrorCode::as_str).collect();
        all.extend(WarningCode::iter().map(WarningCode::as_str));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a code string is used twice");
    }
}
