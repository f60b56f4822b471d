//! The engine's closed input and output enums and the types they carry.
//!
//! These are core types, not wire types: `crate::wire` converts JSON and binary
//! payloads into [`Inbound`] and [`Outbound`] into JSON; `src/wasm` turns outbound
//! bulk data (windows) into typed arrays.

use super::config::ConfigPatch;
use super::error::{CoreError, WarningCode};
pub use super::groups::{GroupTotals, GroupsEvent, GroupsInput, GroupsStats};
pub use super::ledger::event::{
    BucketTotal, Catchup, CatchupBucket, FetchReason, FetchRequest, LedgerCounters, LiveBinding,
    LiveFrame, ResourceTotals, StreamHello, TotalsEvent,
};
pub use super::series::{SeriesEvent, SeriesInput, SeriesQuery, SeriesStats};
pub use super::session::{ConnectionState, ConnectionStatus, SessionInput};
pub use super::stream::{DetailEvent, MetersEvent, NoticesEvent, StreamRequest};

/// Everything the engine can be told.
// One `Inbound` is built and moved per page message; boxing the large variants
// would add an allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Inbound {
    /// Change some configuration fields.
    Config(ConfigPatch),
    /// A batch of readings, already decoded; may carry decode errors to report.
    Readings(ReadingBatch),
    /// Ask for something; the answer is one outbound message.
    Query(Query),
    /// A `query` with an `id`: answered like [`Inbound::Query`], the answer
    /// (or the error refusing it, when it did not decode) wrapped in
    /// [`Outbound::Answer`].
    Asked { id: f64, query: Result<Query, CoreError> },
    /// Forget one meter's samples and alerts, or everything.
    Reset(ResetScope),
    /// The evaluation timer fired. Carries what only the host can measure.
    Tick(HostStats),
    /// A payload that could not be decoded at all (malformed JSON, unknown type, ...).
    Rejected(CoreError),
    /// A live ledger frame from the WebSocket.
    Live(LiveFrame),
    /// The stream's greeting after a (re)connect.
    Hello(StreamHello),
    /// A REST catch-up result.
    Catchup(Catchup),
    /// The totals flush timer fired (every `totalsFlushMs`): emit coalesced
    /// totals and the stream stores' coalesced `meters`/`notices` updates.
    Flush,
    /// The one-shot flush after deltas came due ([`crate::core::Engine::flush_due_ms`]:
    /// within `deltaFlushMs` of the first delta or live frame since the last
    /// flush): emit coalesced totals and `meters`/`notices` updates (not the
    /// groups, which stay on the periodic flush). Nothing if no flush is due.
    DeltaFlush,
    /// A stream v2 session input (docs/STREAM.md): page commands, socket
    /// events and fetched bodies, decoded at the edge by `crate::wire::stream`.
    Stream(SessionInput),
    /// A fetched `/groups` map (or its failure), decoded at the edge by
    /// `crate::wire::groups`.
    Groups(GroupsInput),
    /// The page's `series` subscribe/unsubscribe.
    Series(SeriesInput),
    /// A `readings` / `live` / `catchup` payload whose page message carried an
    /// `id`: handled as `input`, then answered with [`Outbound::Ack`].
    Acked { id: f64, input: Box<Inbound> },
}

/// The answer to a payload message that carried an `id` (`ack`, PROTOCOL.md 4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AckEvent {
    /// The page message's `id`.
    pub id: f64,
    /// `readings`: records applied; `live` / `catchup`: 1 if the payload applied.
    pub accepted: f64,
    /// `readings`: records refused; `live` / `catchup`: 1 if it was refused.
    pub refused: f64,
    /// Wall time the worker spent on the message (decode + apply), in ms, as
    /// the host measured it (0 where the host does not measure).
    pub ms: f64,
}

/// Measurements only the host can make, passed in with each tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HostStats {
    /// Size of the wasm linear memory, in bytes (0 natively).
    pub linear_memory_bytes: f64,
    /// Wall time the previous tick's evaluation took, in ms, as the host measured it.
    pub last_tick_eval_ms: f64,
}

/// A decoded batch of readings in columns.
///
/// Meters are referred to by *keys*. `bindings` bind keys to meter ids before
/// the records apply. With [`KeyScope::Stream`] (binary frames) bindings persist
/// across batches, so a stream names each meter once; with [`KeyScope::Batch`]
/// (JSON) keys index `bindings` of this batch only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadingBatch {
    pub scope: KeyScope,
    /// `(key, meter id)` pairs.
    pub bindings: Vec<(u32, String)>,
    /// Per record: the meter key.
    pub keys: Vec<u32>,
    /// Per record: timestamp, ms since the Unix epoch.
    pub ts: Vec<f64>,
    /// Per record: the reading's value.
    pub values: Vec<f64>,
    /// Per record: its position in the original payload (for error events).
    /// Empty means record `i` is at position `i`.
    pub positions: Vec<u32>,
    /// Items the decoder refused; reported as `error` events, the rest still applies.
    /// Those past the first `maxErrorsPerBatch` carry their code and position
    /// but no text: the engine reports these first and no more of them.
    pub errors: Vec<CoreError>,
}

/// How a batch's keys are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyScope {
    /// Keys index this batch's `bindings` (JSON batches).
    #[default]
    Batch,
    /// Keys live in the engine's stream key table and persist (binary frames).
    Stream,
}

/// What a page can ask for.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// One meter's window, oldest first.
    Window { meter: String },
    /// One meter's moments and alert state.
    Meter { meter: String },
    /// A `stats` event now.
    Stats,
    /// A `totals` event now.
    Totals,
    /// A meter's or group's downsampled series.
    Series(SeriesQuery),
}

/// What a reset forgets.
#[derive(Clone, Debug, PartialEq)]
pub enum ResetScope {
    /// One meter: its samples, moments and alerts (the meter stays interned).
    Meter(String),
    /// Every meter, the stream key table and the counters; the config stays.
    All,
}

/// Everything the engine can say.
#[derive(Clone, Debug, PartialEq)]
pub enum Outbound {
    Anomaly(AnomalyEvent),
    Cleared(ClearedEvent),
    Stats(StatsEvent),
    Error(CoreError),
    Warning(WarningEvent),
    /// The answer to a `query` that carried an `id`: `answer` with that `id`
    /// on the wire (PROTOCOL.md 2, `query`).
    Answer {
        id: f64,
        answer: Box<Outbound>,
    },
    /// Answer to `Query::Window`: samples oldest first.
    Window {
        meter: String,
        values: Vec<f64>,
    },
    /// Answer to `Query::Meter`.
    Meter(MeterSnapshot),
    /// Consumption totals per resource and hour.
    Totals(TotalsEvent),
    /// Ask the page for a REST catch-up now.
    Fetch(FetchRequest),
    /// Stream v2: the host must connect, send, close or fetch.
    Stream(StreamRequest),
    /// Stream v2: the connection's state changed.
    Connection(ConnectionStatus),
    /// Stream v2: meter rows changed (coalesced per flush).
    Meters(MetersEvent),
    /// Stream v2: notices changed (coalesced per flush).
    Notices(NoticesEvent),
    /// Stream v2: a meter's detail.
    Detail(DetailEvent),
    /// A payload message with an `id` was handled.
    Ack(AckEvent),
    /// Per group totals, rates and alerts (coalesced per flush).
    Groups(GroupsEvent),
    /// A series answer or subscription update (or `computing`).
    Series(SeriesEvent),
}

/// The kinds of anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    Spike,
    Drift,
    Stuck,
    Silent,
}

impl AnomalyKind {
    /// Wire string: `spike`, `drift`, `stuck`, `silent`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::Drift => "drift",
            AnomalyKind::Stuck => "stuck",
            AnomalyKind::Silent => "silent",
        }
    }
}

/// How bad an anomaly is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    /// Wire string: `warning`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// An alert raised for one meter.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyEvent {
    pub meter: String,
    pub kind: AnomalyKind,
    pub severity: Severity,
    /// The z-score behind the alert (for drift: in standard errors of the short mean).
    pub z: f64,
    /// The reading's value (for drift: the short-term mean; for silent: the last value).
    pub value: f64,
    /// Window mean and standard deviation the z was taken against.
    pub mean: f64,
    pub std: f64,
    /// Timestamp of the reading behind the alert (for silent: the last reading).
    pub ts: f64,
    /// Evaluations of this meter from the first breach to the alert.
    pub evaluations: u32,
    /// Graded evidence in [0, 1], monotone in it: 0.5 at the kind's threshold
    /// (docs/DETECTION.md, "Score").
    pub score: f64,
}

/// A meter is back to normal for `kind`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClearedEvent {
    pub meter: String,
    pub kind: AnomalyKind,
    /// The engine time (`now_ms`) at which it cleared.
    pub at: f64,
}

/// Periodic engine statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsEvent {
    pub meters: u32,
    pub window: u32,
    pub linear_memory_bytes: f64,
    pub engine_bytes: f64,
    pub readings_ingested: f64,
    pub readings_rejected: f64,
    pub evaluations: f64,
    pub last_tick_eval_ms: f64,
    pub active_alerts: u32,
    /// The stream v2 session's counters, once a session input was seen.
    pub stream: Option<StreamStats>,
    /// The meter → group map's state, once a map fetch was issued.
    pub groups: Option<GroupsStats>,
    /// The series' counters, once a series was asked for.
    pub series: Option<SeriesStats>,
    /// Bytes held per store; the parts sum to `engine_bytes` (boxed: it
    /// would make `Stats` the one large `Outbound` variant).
    pub memory: Box<MemoryBytes>,
}

/// Bytes held by each of the engine's stores (`stats.memory`, an estimate
/// from the stores' capacities). Every store the engine keeps is in exactly
/// one part, so the parts sum to [`StatsEvent::engine_bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryBytes {
    /// The rings and rolling moments (`Windows`).
    pub windows: u64,
    /// The detector's per-meter records and dirty list.
    pub detector: u64,
    /// The interned meter ids (`MeterTable`).
    pub meter_ids: u64,
    /// The engine's kind-1/live key table and the names waiting for a first reading.
    pub keys: u64,
    /// The ledger's hourly buckets, stream cursors and window feed.
    pub ledger: u64,
    /// The ledger's per-meter reading-id bitmaps (dedup).
    pub dedup: u64,
    /// The per-meter hourly rows and rate bins the groups sum.
    pub rows: u64,
    /// The rows' change log (at most `CHANGE_LOG_CAP` entries).
    pub change_log: u64,
    /// The row log kept for rebuilds (at most `maxRowLogReadings`).
    pub row_log: u64,
    /// The series slab (at most `maxSeriesPairs` pairs).
    pub series: u64,
    /// The series answers kept and the group sums in progress.
    pub series_cache: u64,
    /// The group map in force, its resolved memberships and the group sums.
    pub groups: u64,
    /// The stream v2 session, its buffers and the stream stores.
    pub stream: u64,
    /// The engine's own fixed-size record.
    pub fixed: u64,
}

impl MemoryBytes {
    /// The parts in wire order, with their `stats.memory` names.
    pub fn parts(&self) -> [(&'static str, u64); 14] {
        [
            ("windows", self.windows),
            ("detector", self.detector),
            ("meterIds", self.meter_ids),
            ("keys", self.keys),
            ("ledger", self.ledger),
            ("dedup", self.dedup),
            ("rows", self.rows),
            ("changeLog", self.change_log),
            ("rowLog", self.row_log),
            ("series", self.series),
            ("seriesCache", self.series_cache),
            ("groups", self.groups),
            ("stream", self.stream),
            ("fixed", self.fixed),
        ]
    }

    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.parts().iter().map(|(_, b)| b).sum()
    }
}

/// The stream v2 session's part of `stats` (counts; delta apply time is not
/// measured: the core has no clock, and the host's timings are per message).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StreamStats {
    /// The connection state now.
    pub state: Option<ConnectionState>,
    /// Gaps detected (out-of-order delta, lost tail, discontinuous buffer).
    pub gaps: u64,
    /// RESUMED received.
    pub resumes_ok: u64,
    /// INVALID_SESSION received while resuming.
    pub resumes_failed: u64,
    /// Times a channel's credit reached zero.
    pub credit_exhausted: u64,
    /// Deltas refused beyond the granted credit.
    pub credit_overruns: u64,
    /// Entity updates merged into a newer one before a flush.
    pub coalesced_updates: u64,
    /// Snapshot and mini-snapshot fetches issued.
    pub snapshot_fetches: u64,
    /// Entities dropped by the stores (snapshot replace, unsubscribe, detail LRU/TTL).
    pub evictions: u64,
    /// Entities refused at a store's cap.
    pub refused_entities: u64,
    /// Detail requests answered from the cache.
    pub detail_cache_hits: u64,
    /// Reconnects scheduled.
    pub reconnects: u64,
    /// Deltas buffered in the session plus entity changes waiting for a flush.
    pub queue_depth: u64,
    /// Meter rows held.
    pub meter_entities: u64,
    /// Notices held.
    pub notices: u64,
    /// Meter details cached.
    pub details_cached: u64,
}

/// Something the page should know that is not an error (e.g. the memory guard fired).
#[derive(Clone, Debug, PartialEq)]
pub struct WarningEvent {
    pub code: WarningCode,
    pub message: String,
    /// How many items the warning is about, where it counts some (e.g. the
    /// readings refused during a `pending_limit` episode).
    pub count: Option<u64>,
}

/// One meter's state, for `Query::Meter`.
#[derive(Clone, Debug, PartialEq)]
pub struct MeterSnapshot {
    pub meter: String,
    pub count: u32,
    pub mean: f64,
    pub variance: f64,
    pub skewness: f64,
    pub excess_kurtosis: f64,
    pub last_ts: f64,
    /// Kinds currently alerting.
    pub alerts: Vec<AnomalyKind>,
    /// The meter's current anomaly score in [0, 1] (docs/DETECTION.md, "Score").
    pub score: f64,
}
