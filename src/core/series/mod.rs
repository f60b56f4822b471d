//! Downsampled series (docs/LEDGER.md "Series"; PROTOCOL.md `series`): per
//! meter and per group, per resource, 1-minute and 5-minute buckets of count,
//! exact sum, min, max and last over the 6-hour horizon.
//!
//! The per-meter buckets live in [`SeriesSlab`] (`slab`), which the ledger
//! fills through `MeterHours` with every reading it counts, each `(meter, id)`
//! once. A group's series is the sum over its members' buckets, computed on
//! demand (`answer`), in chunks over ticks when the group is large, and kept
//! per query in [`SeriesBook`] (`book`) until its source moves.
//!
//! Invariants:
//! - A series' sums are exact integer units: the sum of a meter's buckets over
//!   an hour equals its hourly row in `MeterHours`, and a group's equals the
//!   sum of its members'.
//! - An answer is `incomplete` when a reading of its span may be missing (a
//!   ledger need, the time before the stream was seen, a reading the series
//!   could not hold).

mod answer;
mod book;
mod slab;

pub use answer::{plan, Accumulator, Plan, SeriesData};
pub use book::{SeriesBook, SeriesSources, SeriesStats};
pub use slab::{
    Bucket, Overflowed, SeriesSlab, BUCKETS, FIVES, MAX_PER_BUCKET, MINUTES, MINUTE_MS,
};

/// Longest span a query may ask for, ms: the horizon.
pub const MAX_SPAN_MS: f64 = 6.0 * 3_600_000.0;
/// Longest span answered at 1 minute, ms (and the default span).
pub const MINUTE_SPAN_MS: f64 = 2.0 * 3_600_000.0;

/// What a series is of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SeriesTarget {
    /// One meter, by id.
    Meter(String),
    /// One group of the map in force, by name.
    Group(String),
}

/// A bucket width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// One minute.
    Minute,
    /// Five minutes.
    FiveMinutes,
}

impl Resolution {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "1m",
            Resolution::FiveMinutes => "5m",
        }
    }

    /// Bucket width, ms.
    pub fn step_ms(self) -> f64 {
        match self {
            Resolution::Minute => MINUTE_MS,
            Resolution::FiveMinutes => 5.0 * MINUTE_MS,
        }
    }
}

/// A `series` query or subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesQuery {
    /// A meter or a group.
    pub target: SeriesTarget,
    /// Resource name.
    pub resource: String,
    /// Span ending at the newest bucket, ms (default 2 h, at most 6 h).
    pub span_ms: Option<f64>,
    /// Bucket width (default 1 m up to 2 h, 5 m beyond).
    pub resolution: Option<Resolution>,
}

/// The page's `series` message.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesInput {
    /// Push this query's answer whenever its source moves, as `sub`.
    Subscribe { sub: String, query: SeriesQuery },
    /// Stop pushing `sub`.
    Unsubscribe { sub: String },
}

/// A `series` message to the page.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesEvent {
    /// The subscription it updates, if any.
    pub sub: Option<String>,
    /// The answer, or that it is being computed.
    pub body: SeriesBody,
}

/// The body of a `series` message.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesBody {
    /// The series; `cached` when returned without recomputation.
    Data { data: Box<SeriesData>, cached: bool },
    /// Being computed over ticks: ask again (or wait) after `retry_after_ms`.
    Computing { retry_after_ms: f64 },
}
