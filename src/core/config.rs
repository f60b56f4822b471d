//! Engine configuration: every limit and threshold is a named field with a default.
//!
//! `Config::default()` is the documented default set (README, "Defaults"). A
//! `ConfigPatch` from the page changes some fields; `Config::apply` validates the
//! result as a whole so the engine never runs on an inconsistent configuration.

use super::error::{CoreError, ErrorCode};
use super::groups::{RowChange, CHANGE_LOG_CAP};
use super::keys::WORST_BYTES_PER_KEY;
use crate::core::session::SessionConfig;

/// The `bad_config` error for `field`. One out-of-line copy, called by every
/// check in `validate`: a closure was inlined into each of them (docs/SIZE.md).
#[cold]
#[inline(never)]
fn refuse_config(field: &str, why: &str) -> Result<(), CoreError> {
    Err(CoreError::new(ErrorCode::BadConfig, format!("config.{field}: {why}")))
}

/// Most partitions a pool may cut the meters into (`partition.of`), as many as
/// the pool's workers (`MAX_POOL_WORKERS` in `www/client/pool.ts`).
pub const MAX_PARTITIONS: u32 = 64;

/// One engine's share of a pool's meters (`config.partition`, `{ index, of }`):
/// a meter belongs to partition `fnv1a32(id's UTF-8 bytes) % of`, the hash the
/// pool's page side (`shardOf` in `www/client/pool.ts`) partitions by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// This engine's partition, `0..of`. Partition 0 also reports what belongs
    /// to no meter: payloads refused as a whole, items the decoder refused,
    /// unknown keys.
    pub index: u32,
    /// Partitions in the pool, `1..=MAX_PARTITIONS`.
    pub of: u32,
}

impl Partition {
    /// The default: one partition owning every meter.
    pub const WHOLE: Partition = Partition { index: 0, of: 1 };

    /// Whether this partition owns meter `id`.
    #[inline]
    pub fn owns(self, id: &str) -> bool {
        self.of <= 1 || fnv1a32(id.as_bytes()) % self.of == self.index
    }

    /// Whether this partition reports what belongs to no meter (partition 0).
    #[inline]
    pub fn reports_payload(self) -> bool {
        self.index == 0
    }
}

/// FNV-1a, 32 bits, over `bytes`: the pool's partition hash.
#[inline]
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// All tunables of the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Samples kept per meter (the ring length). 1,200 = 10 min at 2 Hz.
    pub window: u32,
    /// Most meters tracked at once; a new meter past it is refused with an error.
    pub max_meters: u32,
    /// Evaluation interval (the tick), in ms.
    pub tick_ms: f64,
    /// How often a `stats` event is emitted, in ms.
    pub stats_interval_ms: f64,
    /// Estimated engine bytes above which the window is halved (once).
    pub memory_ceiling_bytes: f64,
    /// Window used after the memory guard fires.
    pub reduced_window: u32,
    /// Readings a meter needs before it may raise any alert.
    pub warmup: u32,
    /// Base |z| threshold for a spike breach, before adaptation to the tails.
    pub spike_z: f64,
    /// Evaluations looked back over for the spike vote.
    pub spike_votes_of: u32,
    /// Breaching evaluations among the last `spike_votes_of` that raise a spike.
    pub spike_votes_needed: u32,
    /// Readings in the short-term mean used for drift.
    pub drift_short: u32,
    /// Drift threshold in standard errors of the short-term mean.
    pub drift_z: f64,
    /// Consecutive breaching evaluations that raise a drift alert.
    pub drift_consecutive: u32,
    /// Identical consecutive readings that make a meter `stuck`: the least,
    /// whatever the meter has learned.
    pub stuck_run: u32,
    /// A run is stuck once `stuck_factor` times longer than the longest the
    /// meter completed at that kind of value (its plateau, or any other).
    pub stuck_factor: f64,
    /// Readings a meter learns its normal from before drift and stuck are
    /// judged; also the time constant (in readings) of its slow baseline.
    pub baseline_readings: u32,
    /// A meter with no reading for this long (ms) is `silent`.
    pub silent_after_ms: f64,
    /// Normal evaluations after which an alert is cleared.
    pub clear_after: u32,
    /// |z| at or above `critical_factor` x threshold makes an alert critical.
    pub critical_factor: f64,
    /// Absolute floor under the window standard deviation a z-score divides by
    /// (reading units), so a flat window never divides by zero.
    pub std_floor: f64,
    /// Floor under that standard deviation relative to |window mean|.
    pub std_floor_rel: f64,
    /// Most the tail adaptation may widen the spike threshold: at most
    /// `spike_widen_max` x `spike_z`.
    pub spike_widen_max: f64,
    /// Exact recompute of a meter's moments after this many removals
    /// (default 1,200, once per default window: the rolling error stays
    /// near 1e-13 relative, see `moments.rs`; the collapse guards rebuild
    /// sooner whenever cancellation threatens).
    pub recompute_every: u32,
    /// Most seasonal scans one evaluation tick runs (default 1,024: about
    /// 12 ms in wasm at window 1,200). A meter whose scan falls due past it
    /// owes the scan and runs it at its next evaluation with room, so a
    /// tick after a burst (most meters due at once) stays bounded; at 2 Hz
    /// about one meter in 2,400 is due per tick (docs/DETECTION.md,
    /// "Seasonal").
    pub max_scans_per_tick: u32,
    /// Most `ack`s the worker holds while more page messages wait (default 64;
    /// 0 posts each at once). A worker's `postMessage` that wakes a sleeping
    /// page costs it ~0.1 ms on a VM; acks held until the messages already
    /// queued have run go out together, in order, before anything else the
    /// worker posts (docs/PROTOCOL.md section 4, "ack").
    pub max_held_acks: u32,
    /// Largest accepted payload (JSON text or binary frame), in bytes.
    pub max_payload_bytes: u32,
    /// Most readings in one batch.
    pub max_batch: u32,
    /// Stream keys a binary frame may bind: keys `0..maxStreamKeys`. Each key
    /// table (the engine's and one per channel) may come to hold them all, so
    /// [`Config::worst_case_bytes`] bounds it (about 2.1 M at the other defaults).
    pub max_stream_keys: u32,
    /// Largest |value| accepted for a reading.
    pub max_abs_value: f64,
    /// A reading older than `now - max_age_ms` is refused as outside the window.
    pub max_age_ms: f64,
    /// A reading newer than `now + max_future_ms` is refused.
    pub max_future_ms: f64,
    /// Most `error` events one batch produces; the rest are summed up in one more.
    pub max_errors_per_batch: u32,
    /// The share of the meters this engine owns in a pool of workers
    /// (`www/client/pool.ts`): readings of other meters are skipped before
    /// interning. Default: the only partition of one, every meter.
    pub partition: Partition,

    // ---- Consumption ledger (live stream + REST catch-up) ----
    /// The resources the ledger totals, each with its unit and resolution.
    pub resources: Vec<ResourceSpec>,
    /// Complete past hours kept besides the current one (older buckets roll off).
    pub history_hours: u32,
    /// A remote HLC more than this far (ms) ahead of the corrected clock is refused.
    pub max_offset_ms: f64,
    /// Largest accepted |server clock - worker clock| (ms); larger sync samples are refused.
    pub max_clock_skew_ms: f64,
    /// `totals` events are coalesced to at most one per this interval (ms).
    pub totals_flush_ms: f64,
    /// A scheduled `fetch` (REST catch-up) is requested this often (ms).
    pub catchup_interval_ms: f64,
    /// An unanswered `fetch` is repeated after this long (ms), doubling on each
    /// repetition up to `catchup_interval_ms`.
    pub fetch_retry_ms: f64,
    /// Most follow-up pages (`fetch` reason `page`) asked after one catch-up
    /// the server cut, before the ledger stops and says so
    /// (`catchup_pages_limit`); 0 asks none. The kept hours need at most
    /// `historyHours + 1` (docs/LEDGER.md, "At 50,000 meters").
    pub max_catchup_pages: u32,
    /// Ask for a catch-up at the first timer even before any live frame, hello
    /// or catch-up was seen (otherwise a page using only anomaly detection is
    /// never asked).
    pub catchup_on_start: bool,
    /// Most live readings held until a REST result covers them.
    pub max_pending_readings: u32,
    /// Reading ids per meter remembered for duplicate detection (a sliding window).
    pub dedup_window: u32,
    /// Most missing sequence numbers tracked individually per channel.
    pub max_missing_seqs: u32,
    /// Most stream channels tracked (each with its own key table, see `maxStreamKeys`).
    pub max_channels: u32,
    /// The worker's HLC node id (reported with every `totals`).
    pub node_id: u32,
    /// Live readings also feed the meter's anomaly window.
    pub detect_live: bool,
    /// Ask the server for `meters.<group>` DELTAs as binary kind-4 frames
    /// (`binary_deltas` in IDENTIFY/RESUME); default false: JSON text.
    pub binary_deltas: bool,
    /// Who runs the stream v2 socket and fetches: the page or the worker.
    pub transport: Transport,
    /// Feed base URL for the worker transport (`http(s)://host:port`; the
    /// stream is `ws(s)://host:port/stream`). Empty: none configured.
    pub feed_url: String,
    /// Stream channels subscribed at once (1..=256).
    pub max_subscriptions: u32,
    /// Deltas buffered per channel while it waits for a snapshot (1..=1,000,000).
    pub max_buffered_deltas: u32,
    /// Encoded bytes of the deltas buffered per channel while it waits for a
    /// snapshot (65,536..=1 GiB; default 32 MiB); past it the channel drops its
    /// buffer, reports `buffer_limit` and fetches its snapshot again.
    pub max_buffered_bytes: u32,
    /// Deltas in flight per channel: granted, buffered or awaiting render (1..=1,000,000).
    pub credit_window: u32,
    /// First reconnect backoff ceiling, ms (1..=`backoffCapMs`).
    pub backoff_base_ms: f64,
    /// Largest reconnect backoff ceiling, ms (1..=600,000).
    pub backoff_cap_ms: f64,
    /// Time allowed from `connect` to HELLO, ms (100..=600,000).
    pub hello_timeout_ms: f64,
    /// Seed of the session's jitter generator.
    pub stream_seed: u32,
    /// Meter rows held over all `meters.<group>` channels (1..=1,000,000).
    pub max_meter_entities: u32,
    /// Notices held (1..=100,000).
    pub max_notices: u32,
    /// Meter details cached (1..=4,096; the selected meter is kept beyond it).
    pub detail_cache_size: u32,
    /// Bytes of one `/meters/{id}` body (1,024..=16 MiB; default 65,536): a
    /// longer one is refused (`bad_fetch`), so the cache is bounded in bytes.
    pub max_detail_bytes: u32,
    /// A cached detail is fresh this long, ms (> 0).
    pub detail_ttl_ms: f64,
    /// Entities per `meters`/`notices` message (1..=100,000).
    pub max_updates_per_message: u32,
    /// After a stream delta or a live frame is applied, its `totals`/`meters`
    /// update is posted within this many ms by a one-shot flush: at once if
    /// the last one-shot flush is this old, else this long after it (at most one
    /// one-shot flush per interval; a burst coalesces). `totalsFlushMs` stays
    /// the periodic ceiling. Finite, in (0, 10,000].
    pub delta_flush_ms: f64,
    /// Groups in the meter → group map (1..=4,096).
    pub max_groups: u32,
    /// Groups one meter may belong to (1..=64).
    pub max_groups_per_meter: u32,
    /// The map is fetched again this often, ms (1,000..=86,400,000).
    pub groups_refresh_ms: f64,
    /// Series subscriptions, and also cached series answers and queued series
    /// computations, each at most this many (1..=1,024).
    pub max_series_subscriptions: u32,
    /// Series computations running at once, one chunk each per tick (1..=64).
    pub max_concurrent_queries: u32,
    /// Meters a series sums per chunk; a larger group is computed over ticks
    /// (100..=10,000,000).
    pub series_chunk_meters: u32,
    /// `(meter, resource)` series held (3,720 B each), 0..=1,000,000; `None`
    /// (the default) holds one per meter and resource (`maxMeters ×
    /// resources`), fewer if the 4 GiB budget leaves less room (see
    /// [`Config::series_pairs`]). Past it a reading is not in the series,
    /// counted in `stats.series.missed`, the answers covering it are
    /// `incomplete`, and a `series_limit` error names each pair refused.
    pub max_series_pairs: Option<u32>,
    /// Live readings remembered since the last catch-up's watermark, so a
    /// catch-up listing per-meter hours can rebuild those rows exactly
    /// (catch-up value + the readings stamped after its watermark), at
    /// 0..=4,194,304 (32 B each). Past it the oldest are forgotten, and a
    /// rebuild that would need one is refused (`rebuild_refused` warning).
    pub max_row_log_readings: u32,
}

/// Who runs the stream v2 connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// The page runs the socket and fetches; the worker posts `connect`,
    /// `send`, `close`, `fetch` requests (the default).
    #[default]
    Page,
    /// The worker runs them itself (the binding's web-sys transport).
    Worker,
}

impl Transport {
    /// Wire string: `page`, `worker`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Page => "page",
            Transport::Worker => "worker",
        }
    }
}

/// A resource the ledger totals: its name on the wire, unit and resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Name used in frames and REST bodies, e.g. `"water"`.
    pub name: String,
    /// Display unit, e.g. `"m3"`.
    pub unit: String,
    /// Decimal places of the resolution: amounts are exact multiples of `10^-decimals`.
    pub decimals: u8,
}

impl ResourceSpec {
    /// A resource spec.
    pub fn new(name: &str, unit: &str, decimals: u8) -> Self {
        ResourceSpec { name: name.into(), unit: unit.into(), decimals }
    }
}

/// Most resources a ledger totals.
pub const MAX_RESOURCES: usize = 32;
/// Most decimals a resource resolution may have.
pub const MAX_DECIMALS: u8 = 9;

impl Default for Config {
    fn default() -> Self {
        Config {
            window: 1_200,
            max_meters: 5_000,
            tick_ms: 500.0,
            stats_interval_ms: 1_000.0,
            memory_ceiling_bytes: 300e6,
            reduced_window: 600,
            warmup: 60,
            spike_z: 4.0,
            spike_votes_of: 5,
            spike_votes_needed: 3,
            drift_short: 20,
            drift_z: 5.0,
            drift_consecutive: 5,
            stuck_run: 30,
            stuck_factor: 3.0,
            baseline_readings: 7_200,
            silent_after_ms: 60_000.0,
            clear_after: 10,
            critical_factor: 2.0,
            std_floor: 1e-6,
            std_floor_rel: 1e-6,
            spike_widen_max: 2.0,
            recompute_every: 1_200,
            max_scans_per_tick: 1_024,
            max_held_acks: 64,
            max_payload_bytes: 16 << 20,
            max_batch: 1_000_000,
            max_stream_keys: 1 << 20,
            max_abs_value: 1e15,
            max_age_ms: 6.0 * 3_600_000.0,
            max_future_ms: 300_000.0,
            max_errors_per_batch: 100,
            partition: Partition::WHOLE,
            resources: vec![
                ResourceSpec::new("water", "m3", 3),
                ResourceSpec::new("energy", "kWh", 3),
                ResourceSpec::new("bandwidth", "MB", 3),
            ],
            history_hours: 6,
            max_offset_ms: 500.0,
            max_clock_skew_ms: 86_400_000.0,
            totals_flush_ms: 250.0,
            catchup_interval_ms: 60_000.0,
            fetch_retry_ms: 5_000.0,
            max_catchup_pages: 8,
            catchup_on_start: false,
            max_pending_readings: 2_000_000,
            dedup_window: 1_024,
            max_missing_seqs: 4_096,
            max_channels: 48,
            node_id: 1,
            detect_live: true,
            binary_deltas: false,
            transport: Transport::Page,
            feed_url: String::new(),
            max_subscriptions: 16,
            max_buffered_deltas: 1_024,
            max_buffered_bytes: 32 << 20,
            credit_window: 256,
            backoff_base_ms: 500.0,
            backoff_cap_ms: 30_000.0,
            hello_timeout_ms: 10_000.0,
            stream_seed: 1,
            max_meter_entities: 100_000,
            max_notices: 1_024,
            detail_cache_size: 64,
            max_detail_bytes: 65_536,
            detail_ttl_ms: 30_000.0,
            max_updates_per_message: 1_000,
            delta_flush_ms: 16.0,
            max_groups: 256,
            max_groups_per_meter: 8,
            groups_refresh_ms: 30_000.0,
            max_series_subscriptions: 8,
            max_concurrent_queries: 2,
            series_chunk_meters: 10_000,
            max_series_pairs: None,
            max_row_log_readings: 65_536,
        }
    }
}

/// A partial configuration sent by the page; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigPatch {
    pub window: Option<u32>,
    pub max_meters: Option<u32>,
    pub tick_ms: Option<f64>,
    pub stats_interval_ms: Option<f64>,
    pub memory_ceiling_bytes: Option<f64>,
    pub reduced_window: Option<u32>,
    pub warmup: Option<u32>,
    pub spike_z: Option<f64>,
    pub spike_votes_of: Option<u32>,
    pub spike_votes_needed: Option<u32>,
    pub drift_short: Option<u32>,
    pub drift_z: Option<f64>,
    pub drift_consecutive: Option<u32>,
    pub stuck_run: Option<u32>,
    pub stuck_factor: Option<f64>,
    pub baseline_readings: Option<u32>,
    pub silent_after_ms: Option<f64>,
    pub clear_after: Option<u32>,
    pub critical_factor: Option<f64>,
    pub std_floor: Option<f64>,
    pub std_floor_rel: Option<f64>,
    pub spike_widen_max: Option<f64>,
    pub recompute_every: Option<u32>,
    pub max_scans_per_tick: Option<u32>,
    pub max_held_acks: Option<u32>,
    pub max_payload_bytes: Option<u32>,
    pub max_batch: Option<u32>,
    pub max_stream_keys: Option<u32>,
    pub max_abs_value: Option<f64>,
    pub max_age_ms: Option<f64>,
    pub max_future_ms: Option<f64>,
    pub max_errors_per_batch: Option<u32>,
    pub partition: Option<Partition>,
    pub resources: Option<Vec<ResourceSpec>>,
    pub history_hours: Option<u32>,
    pub max_offset_ms: Option<f64>,
    pub max_clock_skew_ms: Option<f64>,
    pub totals_flush_ms: Option<f64>,
    pub catchup_interval_ms: Option<f64>,
    pub fetch_retry_ms: Option<f64>,
    pub max_catchup_pages: Option<u32>,
    pub catchup_on_start: Option<bool>,
    pub max_pending_readings: Option<u32>,
    pub dedup_window: Option<u32>,
    pub max_missing_seqs: Option<u32>,
    pub max_channels: Option<u32>,
    pub node_id: Option<u32>,
    pub detect_live: Option<bool>,
    pub binary_deltas: Option<bool>,
    pub transport: Option<Transport>,
    pub feed_url: Option<String>,
    pub max_subscriptions: Option<u32>,
    pub max_buffered_deltas: Option<u32>,
    pub max_buffered_bytes: Option<u32>,
    pub credit_window: Option<u32>,
    pub backoff_base_ms: Option<f64>,
    pub backoff_cap_ms: Option<f64>,
    pub hello_timeout_ms: Option<f64>,
    pub stream_seed: Option<u32>,
    pub max_meter_entities: Option<u32>,
    pub max_notices: Option<u32>,
    pub detail_cache_size: Option<u32>,
    pub max_detail_bytes: Option<u32>,
    pub detail_ttl_ms: Option<f64>,
    pub max_updates_per_message: Option<u32>,
    pub delta_flush_ms: Option<f64>,
    pub max_groups: Option<u32>,
    pub max_groups_per_meter: Option<u32>,
    pub groups_refresh_ms: Option<f64>,
    pub max_series_subscriptions: Option<u32>,
    pub max_concurrent_queries: Option<u32>,
    pub series_chunk_meters: Option<u32>,
    pub max_series_pairs: Option<u32>,
    pub max_row_log_readings: Option<u32>,
}

macro_rules! patch_fields {
    ($cfg:ident, $patch:ident, $($f:ident),*) => {
        $( if let Some(v) = &$patch.$f { $cfg.$f = v.clone(); } )*
    };
}

/// Smallest `std_floor`: its square stays a normal positive `f64`.
pub const MIN_STD_FLOOR: f64 = 1e-12;
/// Hard upper bound on the window so `meters x window` never overflows.
pub const MAX_WINDOW: u32 = 1 << 20;
/// Hard upper bound on meters (dense indices are `u32`; the slab is addressed by `usize`).
pub const MAX_METERS: u32 = 1 << 24;

/// The memory a wasm32 instance can address: 4 GiB.
pub const ADDRESS_SPACE_BYTES: u128 = 1 << 32;

/// Bytes of one `(meter, resource)` series: 168 buckets of 22 bytes and a 24-byte head.
pub const SERIES_PAIR_BYTES: u128 = 168 * 22 + 24;
/// Most live readings the row log may keep (`maxRowLogReadings`).
/// Largest `maxHeldAcks`.
pub const MAX_HELD_ACKS: u32 = 1 << 16;
pub const MAX_ROW_LOG_READINGS: u32 = 4_194_304;
/// Bytes per row-log entry at worst (a 32-byte entry; the ring's capacity
/// is at most the next power of two of `maxRowLogReadings`).
const ROW_LOG_ENTRY_BYTES: u128 = 64;

/// Most `(meter, resource)` series a config may ask for (`maxSeriesPairs`).
pub const MAX_SERIES_PAIRS: u32 = 1_000_000;
/// The series slab grows a block of `BLOCK_PAIRS` (8) pairs at a time: at most one block unused.
/// (`series::slab`'s tests check it against the slab's constants.)
pub const SERIES_BLOCK_SLACK_BYTES: u128 = 8 * 168 * 22;
/// Per meter besides its ring and id bitmap: moments, detection state, the id
/// (at most 256 bytes) in the table twice with its map slot, and slack.
pub const METER_FIXED_BYTES: u128 = 2_048;
/// Per name waiting for a meter's first accepted reading: the id (at most 256
/// bytes), its map slot (about 73 bytes at worst load) and its place in the
/// order queue (up to 64 bytes with the queue's slack).
pub const PENDING_NAME_BYTES: u128 = 400;
/// Per missing sequence number kept individually (a B-tree entry).
pub const HOLE_BYTES: u128 = 48;
/// Per channel: its cursor and name.
pub const CHANNEL_FIXED_BYTES: u128 = 512;
/// Per live reading held until a catch-up (an aggregated entry, with vector growth).
pub const PENDING_READING_BYTES: u128 = 64;
/// Per record of a decoded batch or frame (columns, positions, the windows' feed).
pub const BATCH_RECORD_BYTES: u128 = 64;
/// The payload's bytes as received plus what decoding it may hold at once.
pub const PAYLOAD_FACTOR: u128 = 8;
/// A buffered delta's slot in its channel's buffer (epoch, seq, the body's
/// enum, its counted bytes: 56 B) at up to twice the deltas held while the
/// buffer doubles, rounded up; its body is counted by `maxBufferedBytes`.
pub const BUFFERED_SLOT_BYTES: u128 = 128;
/// Per hourly bucket of a resource.
pub const BUCKET_BYTES: u128 = 256;

impl Config {
    /// Returns this config with `patch` applied, or an error naming the first bad field.
    pub fn apply(&self, patch: &ConfigPatch) -> Result<Config, CoreError> {
        let mut c = self.clone();
        patch_fields!(
            c,
            patch,
            window,
            max_meters,
            tick_ms,
            stats_interval_ms,
            memory_ceiling_bytes,
            reduced_window,
            warmup,
            spike_z,
            spike_votes_of,
            spike_votes_needed,
            drift_short,
            drift_z,
            drift_consecutive,
            stuck_run,
            stuck_factor,
            baseline_readings,
            silent_after_ms,
            clear_after,
            critical_factor,
            std_floor,
            std_floor_rel,
            spike_widen_max,
            recompute_every,
            max_scans_per_tick,
            max_held_acks,
            max_payload_bytes,
            max_batch,
            max_stream_keys,
            max_abs_value,
            max_age_ms,
            max_future_ms,
            max_errors_per_batch,
            partition,
            resources,
            history_hours,
            max_offset_ms,
            max_clock_skew_ms,
            totals_flush_ms,
            catchup_interval_ms,
            fetch_retry_ms,
            max_catchup_pages,
            catchup_on_start,
            max_pending_readings,
            dedup_window,
            max_missing_seqs,
            max_channels,
            node_id,
            detect_live,
            binary_deltas,
            transport,
            feed_url,
            max_subscriptions,
            max_buffered_deltas,
            max_buffered_bytes,
            credit_window,
            backoff_base_ms,
            backoff_cap_ms,
            hello_timeout_ms,
            stream_seed,
            max_meter_entities,
            max_notices,
            detail_cache_size,
            max_detail_bytes,
            detail_ttl_ms,
            max_updates_per_message,
            delta_flush_ms,
            max_groups,
            max_groups_per_meter,
            groups_refresh_ms,
            max_series_subscriptions,
            max_concurrent_queries,
            series_chunk_meters,
            max_row_log_readings
        );
        if let Some(v) = patch.max_series_pairs {
            c.max_series_pairs = Some(v);
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every field's range and the relations between fields.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = refuse_config;
        let pos = |x: f64| x.is_finite() && x > 0.0;
        if self.partition.of == 0
            || self.partition.of > MAX_PARTITIONS
            || self.partition.index >= self.partition.of
        {
            return bad("partition", "must be {index, of} with of in 1..=64 and index in 0..of");
        }
        if self.window < 8 || self.window > MAX_WINDOW {
            return bad("window", "must be in 8..=1048576");
        }
        if self.reduced_window < 8 || self.reduced_window > self.window {
            return bad("reducedWindow", "must be in 8..=window");
        }
        if self.max_meters == 0 || self.max_meters > MAX_METERS {
            return bad("maxMeters", "must be in 1..=16777216");
        }
        if !(pos(self.tick_ms) && pos(self.stats_interval_ms) && pos(self.memory_ceiling_bytes)) {
            return bad("tickMs/statsIntervalMs/memoryCeilingBytes", "must be finite and > 0");
        }
        if !(pos(self.spike_z) && pos(self.drift_z) && pos(self.critical_factor)) {
            return bad("spikeZ/driftZ/criticalFactor", "must be finite and > 0");
        }
        if self.spike_votes_of == 0 || self.spike_votes_of > 32 {
            return bad("spikeVotesOf", "must be in 1..=32");
        }
        if self.spike_votes_needed == 0 || self.spike_votes_needed > self.spike_votes_of {
            return bad("spikeVotesNeeded", "must be in 1..=spikeVotesOf");
        }
        if self.drift_short < 2 || self.drift_short > self.reduced_window {
            return bad("driftShort", "must be in 2..=reducedWindow");
        }
        if self.stuck_run < 2 || self.stuck_run > self.reduced_window {
            return bad("stuckRun", "must be in 2..=reducedWindow");
        }
        if !(self.stuck_factor >= 1.0 && self.stuck_factor <= 1_000.0) {
            return bad("stuckFactor", "must be in 1..=1000");
        }
        if self.baseline_readings == 0 || self.baseline_readings > 100_000_000 {
            return bad("baselineReadings", "must be in 1..=100000000");
        }
        if !(self.std_floor.is_finite() && self.std_floor >= MIN_STD_FLOOR) {
            return bad("stdFloor", "must be finite and >= 1e-12");
        }
        if !(self.std_floor_rel >= 0.0 && self.std_floor_rel <= 1.0) {
            return bad("stdFloorRel", "must be in 0..=1");
        }
        if !(self.spike_widen_max >= 1.0 && self.spike_widen_max <= 100.0) {
            return bad("spikeWidenMax", "must be in 1..=100");
        }
        // Each reading moves the drift statistic by at most spikeZ standard
        // deviations (docs/DETECTION.md), so its largest value is spikeZ·√driftShort.
        if self.drift_z >= self.spike_z * f64::from(self.drift_short).sqrt() {
            return bad("driftZ", "must be below spikeZ·sqrt(driftShort), or drift can never fire");
        }
        if self.drift_consecutive > 65_535 || self.clear_after > 65_535 {
            return bad("driftConsecutive/clearAfter", "must be at most 65535");
        }
        if self.drift_consecutive == 0 || self.clear_after == 0 || self.recompute_every == 0 {
            return bad("driftConsecutive/clearAfter/recomputeEvery", "must be >= 1");
        }
        if self.max_scans_per_tick == 0 {
            return bad("maxScansPerTick", "must be >= 1");
        }
        if self.max_held_acks > MAX_HELD_ACKS {
            return bad("maxHeldAcks", "must be at most 65536");
        }
        if !(pos(self.silent_after_ms) && pos(self.max_abs_value)) {
            return bad("silentAfterMs/maxAbsValue", "must be finite and > 0");
        }
        if !(pos(self.max_age_ms) && pos(self.max_future_ms)) {
            return bad("maxAgeMs/maxFutureMs", "must be finite and > 0");
        }
        if self.max_errors_per_batch == 0 {
            return bad("maxErrorsPerBatch", "must be >= 1");
        }
        if self.max_payload_bytes < 64 || self.max_batch == 0 || self.max_stream_keys == 0 {
            return bad("maxPayloadBytes/maxBatch/maxStreamKeys", "too small");
        }
        self.validate_ledger()
    }

    fn validate_ledger(&self) -> Result<(), CoreError> {
        let bad = refuse_config;
        let pos = |x: f64| x.is_finite() && x > 0.0;
        if self.resources.is_empty() || self.resources.len() > MAX_RESOURCES {
            return bad("resources", "must list 1..=32 resources");
        }
        for (i, r) in self.resources.iter().enumerate() {
            if r.name.is_empty() || r.name.len() > 64 || r.unit.len() > 64 {
                return bad("resources", "names must be 1..=64 bytes, units at most 64");
            }
            if r.decimals > MAX_DECIMALS {
                return bad("resources", "decimals must be in 0..=9");
            }
            if self.resources[..i].iter().any(|o| o.name == r.name) {
                return bad("resources", "names must be unique");
            }
        }
        if self.history_hours == 0 || self.history_hours > 168 {
            return bad("historyHours", "must be in 1..=168");
        }
        if !(self.max_offset_ms.is_finite() && self.max_offset_ms >= 0.0) {
            return bad("maxOffsetMs", "must be finite and >= 0");
        }
        if !(pos(self.max_clock_skew_ms) && pos(self.totals_flush_ms)) {
            return bad("maxClockSkewMs/totalsFlushMs", "must be finite and > 0");
        }
        if !(pos(self.catchup_interval_ms) && pos(self.fetch_retry_ms)) {
            return bad("catchupIntervalMs/fetchRetryMs", "must be finite and > 0");
        }
        if self.max_catchup_pages > 169 {
            return bad("maxCatchupPages", "must be in 0..=169");
        }
        if self.max_pending_readings == 0 || self.max_missing_seqs == 0 || self.max_channels == 0 {
            return bad("maxPendingReadings/maxMissingSeqs/maxChannels", "must be >= 1");
        }
        if self.dedup_window < 64 || self.dedup_window > 1 << 16 || self.dedup_window % 64 != 0 {
            return bad("dedupWindow", "must be a multiple of 64 in 64..=65536");
        }
        if let Err(e) = self.session_config().validate() {
            return Err(CoreError::new(ErrorCode::BadConfig, format!("config: {}", e.message)));
        }
        if !(1..=1_000_000).contains(&self.max_meter_entities) {
            return bad("maxMeterEntities", "must be in 1..=1000000");
        }
        if !(1..=100_000).contains(&self.max_notices) {
            return bad("maxNotices", "must be in 1..=100000");
        }
        if !(1..=4_096).contains(&self.detail_cache_size) {
            return bad("detailCacheSize", "must be in 1..=4096");
        }
        if !(1_024..=16 << 20).contains(&self.max_detail_bytes) {
            return bad("maxDetailBytes", "must be in 1024..=16777216");
        }
        if !pos(self.detail_ttl_ms) {
            return bad("detailTtlMs", "must be finite and > 0");
        }
        if !(1..=100_000).contains(&self.max_updates_per_message) {
            return bad("maxUpdatesPerMessage", "must be in 1..=100000");
        }
        if !(pos(self.delta_flush_ms) && self.delta_flush_ms <= 10_000.0) {
            return bad("deltaFlushMs", "must be finite, > 0 and <= 10000");
        }
        if !(1..=4_096).contains(&self.max_groups) {
            return bad("maxGroups", "must be in 1..=4096");
        }
        if !(1..=64).contains(&self.max_groups_per_meter) {
            return bad("maxGroupsPerMeter", "must be in 1..=64");
        }
        if !(self.groups_refresh_ms >= 1_000.0 && self.groups_refresh_ms <= 86_400_000.0) {
            return bad("groupsRefreshMs", "must be in 1000..=86400000");
        }
        if !(1..=1_024).contains(&self.max_series_subscriptions) {
            return bad("maxSeriesSubscriptions", "must be in 1..=1024");
        }
        if !(1..=64).contains(&self.max_concurrent_queries) {
            return bad("maxConcurrentQueries", "must be in 1..=64");
        }
        if !(100..=10_000_000).contains(&self.series_chunk_meters) {
            return bad("seriesChunkMeters", "must be in 100..=10000000");
        }
        if self.max_series_pairs.is_some_and(|p| p > MAX_SERIES_PAIRS) {
            return bad("maxSeriesPairs", "must be in 0..=1000000");
        }
        if self.max_row_log_readings > MAX_ROW_LOG_READINGS {
            return bad("maxRowLogReadings", "must be in 0..=4194304");
        }
        if self.feed_url.len() > 2_048 {
            return bad("feedUrl", "must be at most 2048 bytes");
        }
        let worst = self.worst_case_bytes();
        if worst > ADDRESS_SPACE_BYTES {
            return Err(CoreError::new(
                ErrorCode::BadConfig,
                format!(
                    "config: the engine's state could reach {:.2} GB at these limits (maxMeters × window, maxStreamKeys × (maxChannels + 1), maxPendingReadings, ...), past the 4 GiB a wasm32 address space holds",
                    worst as f64 / 1e9
                ),
            ));
        }
        Ok(())
    }

    /// The session's part of this config. The session retries a failed
    /// snapshot after `fetchRetryMs` (clamped to its 1..=600,000 bound).
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            max_channels: self.max_subscriptions,
            max_buffered_deltas: self.max_buffered_deltas,
            max_buffered_bytes: u64::from(self.max_buffered_bytes),
            credit_window: self.credit_window,
            backoff_base_ms: self.backoff_base_ms,
            backoff_cap_ms: self.backoff_cap_ms,
            hello_timeout_ms: self.hello_timeout_ms,
            fetch_retry_ms: self.fetch_retry_ms.clamp(1.0, 600_000.0),
            seed: u64::from(self.stream_seed),
            binary_deltas: self.binary_deltas,
        }
    }

    /// The most bytes the engine's state may hold under this config, whatever
    /// the inputs: every store at its configured bound, each at its worst-case
    /// cost per entry (allocator slack and growth included). `validate` refuses
    /// a config for which this passes [`ADDRESS_SPACE_BYTES`], so no input can
    /// make the engine need more memory than a wasm32 instance can address.
    ///
    /// - meters: `maxMeters × (window × 8 + dedupWindow / 8 + METER_FIXED_BYTES)`
    ///   (ring, reading-id bitmap, moments, detection state, the id twice);
    /// - key tables: `(maxChannels + 1) × (maxStreamKeys × WORST_BYTES_PER_KEY +
    ///   maxMeters × PENDING_NAME_BYTES)` (the engine's kind-1 table and one per
    ///   channel, each with its names waiting for a first accepted reading);
    /// - channels: `maxChannels × (maxMissingSeqs × HOLE_BYTES + CHANNEL_FIXED_BYTES)`;
    /// - live readings held: `maxPendingReadings × PENDING_READING_BYTES`, and
    ///   one batch in flight: `maxBatch × BATCH_RECORD_BYTES`;
    /// - the payload being decoded: `maxPayloadBytes × PAYLOAD_FACTOR`;
    /// - buckets: `resources × (historyHours + 2) × BUCKET_BYTES`;
    /// - groups: per meter its hourly rows (`resources × (historyHours + 2) ×
    ///   8 + 24`, grown by doubling but never past `maxMeters` rows) and `maxGroupsPerMeter × 2` resolved memberships; the map
    ///   held (at most one body's worth: `maxPayloadBytes × PAYLOAD_FACTOR`);
    ///   the sums (`(maxGroups + 1) × resources × (historyHours + 2) × 8`);
    ///   the row log (`maxRowLogReadings × ROW_LOG_ENTRY_BYTES`) and the
    ///   rows' change log (`CHANGE_LOG_CAP` entries of 24 bytes, 384 KiB);
    /// - series: [`Config::series_pairs`] `× SERIES_PAIR_BYTES` (buckets, head), an
    ///   index entry (4 B) per meter and resource, and one block's slack; `maxSeriesSubscriptions` cached answers of at most 120
    ///   buckets × 6 × 8 bytes and as many computations (member list + sums).
    ///
    /// - the session's buffered deltas: [`Config::buffered_worst_bytes`];
    /// - the stream stores: [`Config::stream_stores_worst_bytes`].
    pub fn worst_case_bytes(&self) -> u128 {
        self.worst_case_besides_pairs() + u128::from(self.series_pairs()) * SERIES_PAIR_BYTES
    }

    /// The `(meter, resource)` series the engine holds at most: `maxSeriesPairs`
    /// if set; by default one per meter and resource (`maxMeters ×
    /// resources`: 15,000 at 5,000 meters and 3 resources, 61 MB), capped to
    /// what the 4 GiB address space leaves beside every other store at its
    /// bound (at 50,000 meters and the other defaults, about 2,500 pairs).
    pub fn series_pairs(&self) -> u32 {
        if let Some(p) = self.max_series_pairs {
            return p;
        }
        let want = u128::from(self.max_meters) * self.resources.len() as u128;
        let room =
            ADDRESS_SPACE_BYTES.saturating_sub(self.worst_case_besides_pairs()) / SERIES_PAIR_BYTES;
        want.min(room).min(u128::from(MAX_SERIES_PAIRS)) as u32
    }

    /// [`Config::worst_case_bytes`] without the series pairs' own bytes.
    fn worst_case_besides_pairs(&self) -> u128 {
        let n = u128::from;
        let meters = n(self.max_meters)
            * (n(self.window) * 8 + n(self.dedup_window) / 8 + METER_FIXED_BYTES);
        let tables = (n(self.max_channels) + 1)
            * (n(self.max_stream_keys) * u128::from(WORST_BYTES_PER_KEY)
                + n(self.max_meters) * PENDING_NAME_BYTES);
        let channels =
            n(self.max_channels) * (n(self.max_missing_seqs) * HOLE_BYTES + CHANNEL_FIXED_BYTES);
        let held = n(self.max_pending_readings) * PENDING_READING_BYTES
            + n(self.max_batch) * BATCH_RECORD_BYTES;
        let payload = n(self.max_payload_bytes) * PAYLOAD_FACTOR;
        let buckets = (self.resources.len() as u128) * (n(self.history_hours) + 2) * BUCKET_BYTES;
        let slots = (self.resources.len() as u128) * (n(self.history_hours) + 2);
        let groups = n(self.max_meters) * (slots * 8 + 24 + n(self.max_groups_per_meter) * 2 + 8)
            + n(self.max_payload_bytes) * PAYLOAD_FACTOR
            + (n(self.max_groups) + 1) * slots * 8;
        let row_log = n(self.max_row_log_readings) * ROW_LOG_ENTRY_BYTES
            + CHANGE_LOG_CAP as u128 * std::mem::size_of::<RowChange>() as u128;
        let series = n(self.max_meters) * (self.resources.len() as u128) * 4
            + SERIES_BLOCK_SLACK_BYTES
            + n(self.max_series_subscriptions) * (120 * 48 + n(self.max_meters) * 4 + 120 * 40);
        meters
            + tables
            + channels
            + held
            + payload
            + buckets
            + groups
            + row_log
            + series
            + self.buffered_worst_bytes()
            + self.stream_stores_worst_bytes()
    }

    /// The most bytes the stream stores may hold: `maxMeterEntities` rows,
    /// `maxNotices` notices, each at its worst (ids of 256 bytes, a 64-character
    /// resource, notice texts of 4,096 characters, the store's vectors and
    /// index just grown; `store::METER_ENTITY_WORST_BYTES`,
    /// `store::NOTICE_WORST_BYTES`), and `detailCacheSize + 1` detail bodies
    /// (the selected meter's beyond the cap) of `maxDetailBytes`. 152 MB at
    /// the defaults.
    pub fn stream_stores_worst_bytes(&self) -> u128 {
        use crate::core::stream::store::{
            DETAIL_ENTRY_BYTES, METER_ENTITY_WORST_BYTES, NOTICE_WORST_BYTES,
        };
        let n = u128::from;
        n(self.max_meter_entities) * METER_ENTITY_WORST_BYTES
            + n(self.max_notices) * NOTICE_WORST_BYTES
            + (n(self.detail_cache_size) + 1) * (n(self.max_detail_bytes) + DETAIL_ENTRY_BYTES)
    }

    /// The most bytes the session's buffered deltas may hold:
    /// `maxSubscriptions × (maxBufferedBytes + maxBufferedDeltas ×
    /// BUFFERED_SLOT_BYTES)` (a buffered delta is charged the larger of its
    /// encoded size and what its decoded body holds, so `maxBufferedBytes`
    /// bounds memory; plus its slot in the buffer). 537 MB at the defaults,
    /// counted in [`Config::worst_case_bytes`] (docs/STREAM.md §6).
    pub fn buffered_worst_bytes(&self) -> u128 {
        let n = u128::from;
        n(self.max_subscriptions)
            * (n(self.max_buffered_bytes) + n(self.max_buffered_deltas) * BUFFERED_SLOT_BYTES)
    }

    /// The largest `maxStreamKeys` this config's other limits leave room for
    /// (0 if none), so tests and pages can ask for "as many keys as fit".
    pub fn max_stream_keys_limit(&self) -> u32 {
        let (mut lo, mut hi) = (0u32, u32::MAX);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let c = Config { max_stream_keys: mid, ..self.clone() };
            if c.worst_case_bytes() <= ADDRESS_SPACE_BYTES {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn bad_patch_is_refused_and_names_the_field() {
        let p = ConfigPatch { window: Some(3), ..Default::default() };
        let e = Config::default().apply(&p).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadConfig);
        assert!(e.message.contains("window"), "{}", e.message);
    }

    #[test]
    fn patch_changes_only_named_fields() {
        let p = ConfigPatch { spike_z: Some(6.0), ..Default::default() };
        let c = Config::default().apply(&p);
        assert_eq!(c.as_ref().map(|c| (c.spike_z, c.window)), Ok((6.0, 1_200)));
    }

    fn with(f: impl FnOnce(&mut Config)) -> Config {
        let mut c = Config::default();
        f(&mut c);
        c
    }

    fn refused(c: &Config) -> bool {
        matches!(c.validate(), Err(e) if e.code == ErrorCode::BadConfig)
    }

    #[test]
    fn max_scans_per_tick_must_allow_a_scan() {
        assert!(refused(&with(|c| c.max_scans_per_tick = 0)));
        assert!(with(|c| c.max_scans_per_tick = 1).validate().is_ok());
        let e = Config::default()
            .apply(&ConfigPatch { max_scans_per_tick: Some(0), ..Default::default() })
            .unwrap_err();
        assert!(e.message.contains("maxScansPerTick"), "{}", e.message);
    }

    #[test]
    fn max_held_acks_is_bounded_and_zero_posts_at_once() {
        assert!(with(|c| c.max_held_acks = 0).validate().is_ok());
        assert!(with(|c| c.max_held_acks = MAX_HELD_ACKS).validate().is_ok());
        let e = Config::default()
            .apply(&ConfigPatch { max_held_acks: Some(MAX_HELD_ACKS + 1), ..Default::default() })
            .unwrap_err();
        assert!(e.message.contains("maxHeldAcks"), "{}", e.message);
    }

    #[test]
    fn default_worst_case_fits_a_wasm32_address_space() {
        let c = Config::default();
        assert!(c.worst_case_bytes() <= ADDRESS_SPACE_BYTES);
        assert!(c.max_stream_keys_limit() >= c.max_stream_keys);
        // The fleet sizes the README and the benchmarks use still fit.
        for meters in [20_000, 50_000] {
            assert!(with(|c| c.max_meters = meters).validate().is_ok(), "{meters}");
        }
    }

    #[test]
    fn max_stream_keys_is_accepted_up_to_the_limit_and_refused_past_it() {
        let limit = Config::default().max_stream_keys_limit();
        assert!(limit > 1 << 20 && limit < 1 << 22, "{limit}");
        assert!(with(|c| c.max_stream_keys = limit).validate().is_ok());
        assert!(refused(&with(|c| c.max_stream_keys = limit + 1)));
        // Accepted before: one 40-byte frame then forced a 16–32 GiB table.
        let e = with(|c| c.max_stream_keys = u32::MAX).validate().unwrap_err();
        assert!(e.message.contains("4 GiB"), "{}", e.message);
        // Fewer channels leave room for more keys.
        let one = with(|c| c.max_channels = 1);
        assert!(one.max_stream_keys_limit() > 20 * limit);
    }

    #[test]
    fn rings_past_the_address_space_are_refused() {
        // On wasm32 this product wrapped to 0 and the reservation was skipped.
        assert!(refused(&with(|c| {
            c.max_meters = 4_194_304;
            c.window = 1_024;
            c.reduced_window = 1_024;
        })));
        assert!(refused(&with(|c| c.window = MAX_WINDOW)));
        // Just under and just over, all else default but a fixed series bound
        // (by default the series shrink to what the meters leave).
        let meters = |n: u32| {
            with(|c| {
                c.max_meters = n;
                c.max_series_pairs = Some(2_000);
            })
        };
        let base = meters(1).worst_case_bytes();
        let per_meter = meters(2).worst_case_bytes() - base;
        let room = ((ADDRESS_SPACE_BYTES - base) / per_meter + 1) as u32;
        assert!(meters(room).validate().is_ok());
        assert!(refused(&meters(room + 1)));
    }

    #[test]
    fn series_pairs_default_to_every_meter_and_resource_within_the_budget() {
        // A 5,000-meter page of 3 resources holds every pair out of the box.
        let c = Config::default();
        assert_eq!((c.max_meters, c.resources.len()), (5_000, 3));
        assert_eq!(c.series_pairs(), 15_000);
        // At 50,000 meters the other stores leave room for fewer; the pairs
        // held are counted in the worst case, which still fits.
        let big = with(|c| c.max_meters = 50_000);
        let pairs = big.series_pairs();
        assert!(pairs > 1_000 && pairs < 150_000, "{pairs}");
        assert!(big.worst_case_bytes() <= ADDRESS_SPACE_BYTES);
        assert!(ADDRESS_SPACE_BYTES - big.worst_case_bytes() < SERIES_PAIR_BYTES);
        // An explicit bound is taken as asked, and refused past the budget.
        assert_eq!(with(|c| c.max_series_pairs = Some(7)).series_pairs(), 7);
        assert!(refused(&with(|c| {
            c.max_meters = 50_000;
            c.max_series_pairs = Some(pairs + 1);
        })));
        assert!(refused(&with(|c| c.max_series_pairs = Some(MAX_SERIES_PAIRS + 1))));
        let p = ConfigPatch { max_series_pairs: Some(900), ..Default::default() };
        assert_eq!(c.apply(&p).map(|c| c.series_pairs()), Ok(900));
    }

    #[test]
    fn every_store_counts_in_the_worst_case() {
        let grow: [fn(&mut Config); 14] = [
            |c| c.max_subscriptions += 1,
            |c| c.max_buffered_bytes += 1,
            |c| c.max_buffered_deltas += 1,
            |c| c.max_meter_entities += 1,
            |c| c.max_notices += 1,
            |c| c.detail_cache_size += 1,
            |c| c.max_row_log_readings += 1,
            |c| c.max_meters += 1,
            |c| c.window += 1,
            |c| c.max_channels += 1,
            |c| c.max_missing_seqs += 1,
            |c| c.max_pending_readings += 1,
            |c| c.max_batch += 1,
            |c| c.max_payload_bytes += 1,
        ];
        // With a fixed series bound (by default the series take what the
        // other stores leave, so the total would stay put).
        let base = with(|c| c.max_series_pairs = Some(1_000)).worst_case_bytes();
        for (i, g) in grow.iter().enumerate() {
            let c = with(|c| {
                c.max_series_pairs = Some(1_000);
                g(c)
            });
            assert!(c.worst_case_bytes() > base, "field {i}");
        }
    }

    #[test]
    fn the_session_buffers_worst_case_grows_with_each_of_its_fields() {
        let c = Config::default();
        assert_eq!(c.buffered_worst_bytes(), 16 * ((32 << 20) + 1_024 * 128));
        let grow: [fn(&mut Config); 3] = [
            |c| c.max_subscriptions += 1,
            |c| c.max_buffered_bytes += 1,
            |c| c.max_buffered_deltas += 1,
        ];
        for (i, g) in grow.iter().enumerate() {
            assert!(with(g).buffered_worst_bytes() > c.buffered_worst_bytes(), "field {i}");
        }
        // Counted in the worst case: a 50,000-meter page at the other
        // defaults still fits, with room left for the series (the margin
        // docs/STREAM.md §6 gives), and a larger buffer is refused there.
        let big = with(|c| c.max_meters = 50_000);
        assert!(big.validate().is_ok());
        let room = ADDRESS_SPACE_BYTES - big.worst_case_besides_pairs();
        let at64 = with(|c| {
            c.max_meters = 50_000;
            c.max_channels = 64;
        });
        eprintln!(
            "50k: buffers {} stores {} room {} pairs {} freed by 48 channels {}; 5k worst {}; \
             per meter row {} per notice {}",
            big.buffered_worst_bytes(),
            big.stream_stores_worst_bytes(),
            room,
            big.series_pairs(),
            at64.worst_case_besides_pairs() - big.worst_case_besides_pairs(),
            c.worst_case_bytes(),
            crate::core::stream::store::METER_ENTITY_WORST_BYTES,
            crate::core::stream::store::NOTICE_WORST_BYTES,
        );
        assert!(room > 50_000_000, "{room}");
        assert!(refused(&with(|c| {
            c.max_meters = 50_000;
            c.max_buffered_bytes = 64 << 20;
        })));
    }

    #[test]
    fn the_row_log_bound_is_checked() {
        assert!(!refused(&with(|c| c.max_row_log_readings = 0)));
        assert!(!refused(&with(|c| c.max_row_log_readings = MAX_ROW_LOG_READINGS)));
        assert!(refused(&with(|c| c.max_row_log_readings = MAX_ROW_LOG_READINGS + 1)));
    }
}
