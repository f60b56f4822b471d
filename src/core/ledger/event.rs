//! The ledger's inputs (live frames, stream hellos, REST catch-up bodies) and
//! outputs (`totals`, `fetch`), as core types. `crate::wire` builds the inputs
//! from JSON or binary payloads and turns the outputs into wire shapes.

use crate::core::decimal::Decimal;
use crate::core::error::CoreError;
use crate::core::event::KeyScope;
use crate::core::hlc::Hlc;

/// A frame of live readings from the WebSocket, stamped by the server.
///
/// Every reading in a frame carries the frame's `stamp`: the server stamps a
/// reading once, when it ingests it, and a resent frame repeats it unchanged.
/// Within one `(channel, epoch)` stream, `seq` increases by one per frame and
/// stamps increase with `seq`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveFrame {
    /// Stream channel ("" is the default channel).
    pub channel: String,
    /// Stream epoch: a new epoch means the server started a new stream (reconnect).
    pub epoch: u64,
    /// Sequence number of this frame within its epoch.
    pub seq: u64,
    /// The server's HLC stamp of every reading in the frame.
    pub stamp: Hlc,
    /// How `keys` resolve: this frame's `bindings` (JSON) or the persistent
    /// ledger key table (binary).
    pub scope: KeyScope,
    /// Keys bound to `(meter, resource)` before the records apply.
    pub bindings: Vec<LiveBinding>,
    /// Per record: the key of its `(meter, resource)`.
    pub keys: Vec<u32>,
    /// Per record: the reading id, unique per meter (a per-meter counter).
    pub ids: Vec<u64>,
    /// Per record: the reading's timestamp (end of its interval), ms since the epoch.
    pub ts: Vec<f64>,
    /// Per record: the amount consumed over its interval (>= 0), exact.
    pub amounts: Vec<Decimal>,
    /// Per record: its position in the payload; empty means record `i` is at `i`.
    pub positions: Vec<u32>,
    /// Items the decoder refused; reported, the rest of the frame still applies.
    /// Those past the first `maxErrorsPerBatch` carry their code and position
    /// but no text: the engine reports these first and no more of them.
    pub errors: Vec<CoreError>,
}

/// A key bound to a meter and the resource it measures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveBinding {
    pub key: u32,
    pub meter: String,
    pub resource: String,
}

/// The server's greeting on a (re)connected stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamHello {
    pub channel: String,
    /// The epoch of the stream that follows.
    pub epoch: u64,
    /// The `seq` of the first frame that will follow, if the server says.
    pub next_seq: Option<u64>,
    /// The server's HLC when it greeted: every reading stamped before it was sent
    /// before this stream started (so it bounds what a REST result must cover).
    pub stamp: Option<Hlc>,
    /// The server's wall clock when it greeted (ms since the epoch), for clock sync.
    pub server_time_ms: Option<f64>,
}

/// A REST catch-up result: hourly totals per resource at one closed watermark.
///
/// It includes every reading the server had stamped at or before `as_of`, and no
/// reading stamped at or before `as_of` can appear later. Hours in
/// `from_hour_ms..=to_hour_ms` that list no bucket for a resource total 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catchup {
    pub as_of: Hlc,
    /// Start (ms) of the first hour the result covers; defaults to its earliest bucket.
    pub from_hour_ms: Option<f64>,
    /// Start (ms) of the last hour the result covers; defaults to its latest bucket.
    pub to_hour_ms: Option<f64>,
    pub buckets: Vec<CatchupBucket>,
    /// The server's wall clock when it answered, for clock sync.
    pub server_time_ms: Option<f64>,
    /// Page clock (`Date.now()`) when the request was sent, for the round trip.
    pub sent_at_ms: Option<f64>,
    /// Page clock when the response arrived.
    pub received_at_ms: Option<f64>,
    /// Items the decoder refused (a bad bucket); reported, the rest applies.
    /// Those past the first `maxErrorsPerBatch` carry their code and position
    /// but no text: the engine reports these first and no more of them.
    pub errors: Vec<CoreError>,
}

/// One hourly total in a REST result: a resource's, or one meter's share of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CatchupBucket {
    /// Set when the result lists per-meter totals; the ledger sums them per
    /// resource and hour. An hour is listed either per meter or once in total.
    pub meter: Option<String>,
    pub resource: String,
    /// Start of the hour, ms since the epoch (a multiple of 3,600,000).
    pub hour_ms: f64,
    pub total: Decimal,
    /// Position in the payload, for error events.
    pub position: u32,
}

/// Counters reported with every `totals` event.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LedgerCounters {
    /// Live readings counted and not yet covered by a REST result.
    pub live_pending: u64,
    /// Live readings counted since start.
    pub live_counted: u64,
    /// Live readings dropped as duplicates of one already counted.
    pub duplicates: u64,
    /// Live readings already included in the applied REST result (stamp <= asOf).
    pub covered: u64,
    /// Live readings whose id fell below the per-meter dedup window: not counted
    /// live (it could be a duplicate); the next REST result covers it.
    pub unverifiable: u64,
    /// Live readings not held because `maxPendingReadings` was reached; the next
    /// REST result covers them.
    pub overflow: u64,
    /// Readings for an hour that has rolled off (or REST buckets outside the kept hours).
    pub late: u64,
    /// REST results applied.
    pub rest_applied: u64,
    /// REST results discarded because their `asOf` was not newer than the applied one.
    pub stale_rest: u64,
    /// REST results refused whole, changing nothing: a malformed item (applying
    /// the rest would read the bad bucket as 0), a bad range, or a watermark
    /// ahead of the corrected clock.
    pub refused_rest: u64,
    /// Remote timestamps refused for running ahead of the corrected clock.
    pub refused_clocks: u64,
    /// Times the physical clock stepped backwards.
    pub clock_regressions: u64,
    /// Gaps in stream sequence numbers, and new epochs.
    pub gaps: u64,
    /// `fetch` requests emitted.
    pub fetches: u64,
    /// Of those, follow-up pages of a cut per-meter catch-up (`page`).
    pub catchup_pages: u64,
}

/// One hour of one resource in a `totals` event.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketTotal {
    /// Start of the hour, ms since the epoch.
    pub hour_ms: f64,
    /// REST part plus pending live readings, in units of the resource's resolution.
    pub total: i64,
    /// The watermark of the REST result behind this bucket's REST part.
    pub as_of: Option<Hlc>,
}

/// One resource in a `totals` event.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceTotals {
    pub resource: String,
    pub unit: String,
    /// Totals are integer counts of `10^-decimals` of `unit`.
    pub decimals: u8,
    /// Sum of every kept bucket (the past `historyHours` hours and the current one).
    pub total: i64,
    /// The current hour's bucket.
    pub current_hour: i64,
    /// Kept buckets, oldest first.
    pub buckets: Vec<BucketTotal>,
}

impl ResourceTotals {
    /// One resource's totals from its kept buckets (oldest first): `total` and
    /// `current_hour` are derived from them.
    pub fn from_buckets(
        spec: &crate::core::config::ResourceSpec,
        buckets: Vec<BucketTotal>,
    ) -> Self {
        ResourceTotals {
            resource: spec.name.clone(),
            unit: spec.unit.clone(),
            decimals: spec.decimals,
            total: buckets.iter().fold(0i64, |a, b| a.saturating_add(b.total)),
            current_hour: buckets.last().map_or(0, |b| b.total),
            buckets,
        }
    }
}

/// The ledger's state for the page, coalesced to one per flush interval.
#[derive(Clone, Debug, PartialEq)]
pub struct TotalsEvent {
    /// The worker's HLC when this event was made: keep the newest.
    pub hlc: Hlc,
    /// The worker's HLC node id.
    pub node: u32,
    /// The newest applied REST watermark.
    pub as_of: Option<Hlc>,
    /// Some reading the server stamped may be missing from these totals (a gap, a
    /// new epoch, a refused frame, no REST result yet); cleared by a covering REST result.
    pub incomplete: bool,
    /// Start of the current hour (corrected clock), ms.
    pub current_hour_ms: f64,
    pub resources: Vec<ResourceTotals>,
    pub counters: LedgerCounters,
    /// Stream deltas of the `totals` channel first shown by this event (the
    /// page acknowledges them with `rendered`); set by the engine, 0 here.
    pub frames: u32,
}

/// Why the engine asks for a REST catch-up now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchReason {
    /// The regular catch-up interval elapsed.
    Scheduled,
    /// Nothing applied yet: totals need their history.
    Startup,
    /// A gap in stream sequence numbers.
    Gap,
    /// A new stream epoch (reconnect).
    Epoch,
    /// A frame was refused for its clock.
    Clock,
    /// `maxPendingReadings` was reached.
    PendingLimit,
    /// A reading could not be deduplicated (below the dedup window).
    Dedup,
    /// Readings of a frame were refused (bad item, unknown meter or resource,
    /// meter capacity): the catch-up carries them.
    Refused,
    /// The next page of a catch-up the server cut (it listed per meter only
    /// the newest hours that fit its cap): per-meter hours up to `to_hour_ms`.
    Page,
}

impl FetchReason {
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchReason::Scheduled => "scheduled",
            FetchReason::Startup => "startup",
            FetchReason::Gap => "gap",
            FetchReason::Epoch => "epoch",
            FetchReason::Clock => "clock",
            FetchReason::PendingLimit => "pending_limit",
            FetchReason::Dedup => "dedup",
            FetchReason::Refused => "refused",
            FetchReason::Page => "page",
        }
    }
}

/// Ask the page to run a REST catch-up now and post the body back.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchRequest {
    pub reason: FetchReason,
    /// The REST result should have `asOf` at least this (the newest stamp the
    /// totals are missing readings before), if known.
    pub min_as_of: Option<Hlc>,
    /// First hour start (ms) the catch-up should cover.
    pub from_hour_ms: f64,
    /// A follow-up page (`FetchReason::Page`): the newest hour start (ms)
    /// the server should list per meter; hours after it come as resource
    /// totals (docs/LEDGER.md, "At 50,000 meters").
    pub to_hour_ms: Option<f64>,
}

impl FetchRequest {
    /// The catch-up's path relative to the feed base URL, built here once so
    /// every transport (the page's, the worker's own) asks the same:
    /// `/catchup?from=<from_hour_ms>&meters=1[&to=<to_hour_ms>]`. `meters=1` asks for the hours
    /// the server holds per meter, which rebuild the per-meter rows and the
    /// groups exactly (docs/LEDGER.md, "Rebuilding rows from a catch-up"); a
    /// server that keeps none answers resource totals as before. A transport
    /// wanting the binary body appends `&format=binary`. `to` (a page) asks
    /// for per-meter hours up to that hour only, the body still covering
    /// every hour from `from` to its watermark.
    pub fn path(&self) -> String {
        match self.to_hour_ms {
            Some(to) => format!("/catchup?from={}&meters=1&to={to}", self.from_hour_ms),
            None => format!("/catchup?from={}&meters=1", self.from_hour_ms),
        }
    }
}
