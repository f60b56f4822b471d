//! The pure core: `Engine::handle(Inbound, now_ms) -> Vec<Outbound>`.
//!
//! No I/O, no clock, no JavaScript: time arrives as `now_ms`, host-only
//! measurements arrive inside `Inbound::Tick`. Outputs are queued while an input
//! is handled and returned together once the state is consistent again ("flush,
//! then return"). Nothing on an input path panics: bad input becomes
//! `Outbound::Error`.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
mod consumption;
pub mod decimal;
pub mod detect;
pub mod error;
pub mod event;
pub mod groups;
pub mod hlc;
mod ingest;
pub mod keys;
pub mod ledger;
pub mod meters;
pub mod moments;
pub mod order;
pub mod ring;
pub mod series;
pub mod session;
pub mod stream;
pub mod windows;

use config::Config;
use detect::Detector;
use error::{CoreError, ErrorCode};
use event::{
    AckEvent, HostStats, Inbound, MemoryBytes, MeterSnapshot, Outbound, Query, ResetScope,
    StatsEvent, WarningEvent,
};
use groups::Groups;
use keys::{KeyTable, PendingNames};
use ledger::Ledger;
use meters::MeterTable;
use series::{SeriesBook, SeriesSources};
use stream::engine::StreamState;
use windows::Windows;

/// Running counters reported in `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub readings_ingested: f64,
    pub readings_rejected: f64,
    pub evaluations: f64,
}

/// The engine: every meter's window, moments and detection state.
#[derive(Clone, Debug)]
pub struct Engine {
    cfg: Config,
    meters: MeterTable,
    windows: Windows,
    detector: Detector,
    ledger: Ledger,
    /// Stream key -> meter index (`UNBOUND` where no frame bound it, or where
    /// the meter waits in `stream_pending`).
    stream_keys: KeyTable<u32>,
    /// Stream keys bound to meters not interned yet (no reading accepted so far).
    /// The tag is unused (always 0): `u8` as the ledger's, so the `.wasm` has
    /// one copy of the map's code, not two (docs/SIZE.md).
    stream_pending: PendingNames<u8>,
    counters: Counters,
    host: HostStats,
    next_stats_ms: Option<f64>,
    memory_guard_fired: bool,
    /// The stream v2 session and the stores its channels fill.
    stream: StreamState,
    /// The meter → group map and the per group totals.
    groups: Groups,
    series: SeriesBook,
    out: Vec<Outbound>,
}

/// Marks a stream key no frame has bound.
pub(crate) const UNBOUND: u32 = u32::MAX;
/// Marks a key bound to a meter another partition owns (`config.partition`):
/// its readings are skipped. Above every meter index (`MAX_METERS` is 2^24).
pub(crate) const FOREIGN: u32 = u32::MAX - 1;

impl Default for Engine {
    fn default() -> Self {
        Engine::with_valid_config(Config::default())
    }
}

impl Engine {
    /// An engine with `cfg`, or an error naming the first invalid field.
    pub fn new(cfg: Config) -> Result<Engine, CoreError> {
        cfg.validate()?;
        Ok(Engine::with_valid_config(cfg))
    }

    fn with_valid_config(cfg: Config) -> Engine {
        Engine {
            stream: StreamState::new(&cfg),
            windows: Windows::new(cfg.window as usize, cfg.recompute_every),
            ledger: Ledger::new(&cfg),
            cfg,
            meters: MeterTable::default(),
            detector: Detector::default(),
            stream_keys: KeyTable::new(UNBOUND),
            stream_pending: PendingNames::default(),
            counters: Counters::default(),
            host: HostStats::default(),
            next_stats_ms: None,
            memory_guard_fired: false,
            groups: Groups::default(),
            series: SeriesBook::default(),
            out: Vec::new(),
        }
    }

    /// The host's latest measure of its linear memory (bytes), reported by
    /// `stats` until the next tick or note replaces it.
    pub fn note_linear_memory(&mut self, bytes: f64) {
        self.host.linear_memory_bytes = bytes;
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Running counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Number of meters tracked.
    pub fn meter_count(&self) -> usize {
        self.meters.len()
    }

    /// The rings and moments (read-only), for tests and benchmarks.
    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// The consumption ledger (read-only), for tests and benchmarks.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The dense index of meter `id`, if tracked.
    pub fn meter_index(&self, id: &str) -> Option<u32> {
        self.meters.get(id)
    }

    /// Handles one input at engine time `now_ms` and returns what it produced.
    pub fn handle(&mut self, input: Inbound, now_ms: f64) -> Vec<Outbound> {
        self.handle_into(input, now_ms);
        std::mem::take(&mut self.out)
    }

    /// Like [`Engine::handle`] but leaves the outputs queued; take them with
    /// [`Engine::drain`]. Lets a caller reuse one output buffer across inputs.
    pub fn handle_into(&mut self, input: Inbound, now_ms: f64) {
        match input {
            Inbound::Config(patch) => match self.cfg.apply(&patch) {
                Ok(cfg) => self.reconfigure(cfg),
                Err(e) => self.out.push(Outbound::Error(e)),
            },
            Inbound::Readings(batch) => {
                self.ingest(&batch, now_ms);
                self.guard_memory();
            }
            Inbound::Tick(host) => self.tick(host, now_ms),
            Inbound::Acked { id, input } => self.acked(id, *input, now_ms),
            other => self.cold_input(other, now_ms),
        }
    }

    /// Every input but config, readings (acknowledged or not) and the tick:
    /// kept out of line so that the module's warm part (what a worker needs to
    /// start and ingest) carries no inlined copy of the rest
    /// (scripts/split-wasm.mjs, docs/SIZE.md, "The split").
    #[inline(never)]
    fn cold_input(&mut self, input: Inbound, now_ms: f64) {
        match input {
            Inbound::Config(_)
            | Inbound::Readings(_)
            | Inbound::Tick(_)
            | Inbound::Acked { .. } => self.handle_into(input, now_ms),
            Inbound::Query(q) => self.answer(q, now_ms),
            Inbound::Asked { id, query: Ok(Query::Series(q)) } => {
                self.with_series(now_ms, |book, src, out| book.query(q, Some(id), src, out));
            }
            Inbound::Asked { id, query } => {
                let from = self.out.len();
                match query {
                    Ok(q) => self.answer(q, now_ms),
                    Err(e) => self.out.push(Outbound::Error(e)),
                }
                let answers: Vec<Outbound> = self.out.drain(from..).collect();
                for answer in answers {
                    self.out.push(Outbound::Answer { id, answer: Box::new(answer) });
                }
            }
            Inbound::Reset(scope) => self.reset(scope),
            Inbound::Rejected(e) => self.out.push(Outbound::Error(e)),
            Inbound::Live(f) => {
                self.live(&f, now_ms);
                self.flush_soon(now_ms);
            }
            Inbound::Hello(h) => self.hello(&h, now_ms),
            Inbound::Catchup(c) => self.catchup(&c, now_ms),
            Inbound::Flush => {
                self.flush_updates(now_ms);
                self.groups_flush(now_ms);
                self.with_series(now_ms, |book, src, out| book.on_flush(src, out));
            }
            Inbound::DeltaFlush => self.delta_flush(now_ms),
            Inbound::Stream(input) => self.stream_input(input, now_ms),
            Inbound::Groups(input) => self.groups.on_input(input, now_ms, &self.cfg, &mut self.out),
            Inbound::Series(input) => {
                self.with_series(now_ms, |book, src, out| book.input(input, src, out));
            }
        }
    }

    /// Handles `input`, then answers with an `ack` counting what it applied.
    fn acked(&mut self, id: f64, input: Inbound, now_ms: f64) {
        let records = matches!(input, Inbound::Readings(_));
        let (ingested, rejected) =
            (self.counters.readings_ingested, self.counters.readings_rejected);
        let queued = self.out.len();
        self.handle_into(input, now_ms);
        let (accepted, refused) = if records {
            (self.counters.readings_ingested - ingested, self.counters.readings_rejected - rejected)
        } else {
            let failed = self.out.iter().skip(queued).any(|o| matches!(o, Outbound::Error(_)));
            if failed {
                (0.0, 1.0)
            } else {
                (1.0, 0.0)
            }
        };
        self.out.push(Outbound::Ack(AckEvent { id, accepted, refused, ms: 0.0 }));
    }

    /// Takes the queued outputs.
    pub fn drain(&mut self, into: &mut Vec<Outbound>) {
        into.append(&mut self.out);
    }

    fn reconfigure(&mut self, cfg: Config) {
        if cfg.partition != self.cfg.partition
            && (!self.meters.is_empty() || self.stream_keys.entries() > 0)
        {
            // Meters tracked (or keys bound) under the old partition may belong
            // to another worker under the new one.
            self.out.push(Outbound::Error(CoreError::new(
                ErrorCode::BadConfig,
                format!(
                    "config.partition: {} meters are tracked already; reset first",
                    self.meters.len()
                ),
            )));
            return;
        }
        if (cfg.max_meters as usize) < self.meters.len() {
            self.out.push(Outbound::Error(CoreError::new(
                ErrorCode::BadConfig,
                format!(
                    "config.maxMeters: {} meters are tracked already; reset first",
                    self.meters.len()
                ),
            )));
            return;
        }
        let window_changed = cfg.window != self.cfg.window;
        if window_changed {
            // First, so a window that cannot be had leaves config and state as they were.
            if self.windows.set_window(cfg.window as usize).is_err() {
                self.out.push(Outbound::Error(CoreError::new(
                    ErrorCode::BadConfig,
                    format!(
                        "config.window: no memory for {} meters × {} samples; the window stays {}",
                        self.meters.len(),
                        cfg.window,
                        self.windows.window()
                    ),
                )));
                return;
            }
            self.detector.on_window_change(&self.windows);
            self.memory_guard_fired = false;
        }
        self.windows.set_recompute_every(cfg.recompute_every);
        if cfg.stats_interval_ms != self.cfg.stats_interval_ms {
            self.next_stats_ms = None;
        }
        self.ledger.reconfigure(&cfg);
        // Validated with the rest of the config above.
        let _ = self.stream.session.reconfigure(cfg.session_config());
        self.cfg = cfg;
        self.guard_memory();
    }

    fn tick(&mut self, host: HostStats, now_ms: f64) {
        self.host = host;
        let evaluated =
            self.detector.tick(now_ms, &self.windows, &self.meters, &self.cfg, &mut self.out);
        self.counters.evaluations += f64::from(evaluated);
        self.cold_tick(now_ms);
    }

    /// The tick's timers past detection (ledger, stream, groups, series,
    /// memory guard, stats), out of line like [`Engine::cold_input`].
    #[inline(never)]
    fn cold_tick(&mut self, now_ms: f64) {
        self.ledger.on_timer(now_ms, &self.cfg, &mut self.out);
        self.stream_tick(now_ms);
        self.groups.on_expired(now_ms, &self.cfg, &mut self.out);
        let active = self.stream.used();
        self.groups.on_timer(now_ms, active, &self.cfg, &mut self.out);
        self.with_series(now_ms, |book, src, out| book.on_tick(src, out));
        self.guard_memory();
        let due = self.next_stats_ms.is_none_or(|t| now_ms >= t);
        if due {
            self.out.push(Outbound::Stats(self.stats_at(now_ms)));
            self.next_stats_ms = Some(now_ms + self.cfg.stats_interval_ms);
        }
    }

    /// Estimated bytes held by the engine's state: the sum of [`Engine::memory`].
    pub fn engine_bytes(&self) -> usize {
        self.memory().total() as usize
    }

    /// Estimated bytes held by each store (`stats.memory`).
    pub fn memory(&self) -> MemoryBytes {
        let rows = self.ledger.meter_hours();
        let b = |x: usize| x as u64;
        MemoryBytes {
            windows: b(self.windows.bytes()),
            detector: b(self.detector.bytes()),
            meter_ids: b(self.meters.bytes()),
            keys: b(self.stream_keys.bytes() + self.stream_pending.bytes()),
            ledger: b(self.ledger.own_bytes()),
            dedup: b(self.ledger.dedup_bytes()),
            rows: b(rows.row_bytes()),
            change_log: b(rows.change_log_bytes()),
            row_log: b(self.ledger.row_log().bytes()),
            series: b(rows.series().bytes()),
            series_cache: b(self.series.bytes()),
            groups: b(self.groups.bytes()),
            stream: b(self.stream.bytes()),
            fixed: b(std::mem::size_of::<Engine>()),
        }
    }

    /// A `stats` event describing the engine now.
    pub fn stats(&self) -> StatsEvent {
        let memory = self.memory();
        StatsEvent {
            meters: self.meters.len() as u32,
            window: self.windows.window() as u32,
            linear_memory_bytes: self.host.linear_memory_bytes,
            engine_bytes: memory.total() as f64,
            readings_ingested: self.counters.readings_ingested,
            readings_rejected: self.counters.readings_rejected,
            evaluations: self.counters.evaluations,
            last_tick_eval_ms: self.host.last_tick_eval_ms,
            active_alerts: self.detector.active_alerts(),
            stream: self.stream_stats(),
            groups: None,
            series: self.series.stats(self.ledger.meter_hours().series()).used(),
            memory: Box::new(memory),
        }
    }

    /// Runs `f` on the series book with the engine's state it reads.
    fn with_series(
        &mut self,
        now_ms: f64,
        f: impl FnOnce(&mut SeriesBook, &mut SeriesSources, &mut Vec<Outbound>),
    ) {
        let map_version = self.groups.map().version();
        let (groups, meters) = (&mut self.groups, &self.meters);
        let mut members = |name: &str| groups.members(meters, name);
        let rows = self.ledger.meter_hours();
        let mut src = SeriesSources {
            slab: rows.series(),
            rows_missed_hour: rows.missed_through(),
            meters: &self.meters,
            map_version,
            members: &mut members,
            cfg: &self.cfg,
            now_ms,
        };
        f(&mut self.series, &mut src, &mut self.out);
    }

    /// [`Engine::stats`] with the groups' part as of `now_ms`.
    fn stats_at(&self, now_ms: f64) -> StatsEvent {
        let groups = (self.groups.map().version().is_some() || self.stream.used())
            .then(|| self.groups.stats(now_ms, &self.ledger));
        StatsEvent { groups, ..self.stats() }
    }

    /// The meter → group map, its sums and refresh state (read-only).
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The flush timer's `groups` event, if a map is in force and it changed.
    fn groups_flush(&mut self, now_ms: f64) {
        let detector = &self.detector;
        let alerts = |m: usize| detector.alert_count(m);
        // Per meter only when some alert is active.
        let alerts = (detector.active_alerts() > 0).then_some(&alerts as &dyn Fn(usize) -> u32);
        self.groups.on_flush(
            now_ms,
            &mut self.ledger,
            &self.meters,
            alerts,
            &self.cfg,
            &mut self.out,
        );
    }

    /// Halves the window once when the estimate passes the ceiling, keeping the
    /// newest samples, and says so.
    fn guard_memory(&mut self) {
        let bytes = self.engine_bytes() as f64;
        if self.memory_guard_fired || bytes <= self.cfg.memory_ceiling_bytes {
            return;
        }
        self.memory_guard_fired = true;
        let from = self.windows.window();
        let to = self.cfg.reduced_window as usize;
        // Shrinking needs no new slab, only a scratch ring: if even that fails,
        // the window stays and the warning below says so.
        if to < from && self.windows.set_window(to).is_ok() {
            self.detector.on_window_change(&self.windows);
            self.cfg.window = to as u32;
        }
        self.out.push(Outbound::Warning(WarningEvent {
            count: None,
            code: error::WarningCode::MemoryCeiling,
            message: format!(
                "estimated engine memory {:.1} MB passed the ceiling {:.1} MB: window reduced from {from} to {} samples for all meters; now {:.1} MB",
                bytes / 1e6,
                self.cfg.memory_ceiling_bytes / 1e6,
                self.windows.window(),
                self.engine_bytes() as f64 / 1e6
            ),
        }));
    }

    fn answer(&mut self, q: Query, now_ms: f64) {
        let msg = match q {
            Query::Stats => Outbound::Stats(self.stats_at(now_ms)),
            Query::Totals => {
                let mut t = self.ledger.totals(now_ms, &self.cfg);
                t.frames = self.stream.take_unshown(stream::TOTALS_CHANNEL);
                Outbound::Totals(t)
            }
            Query::Series(q) => {
                self.with_series(now_ms, |book, src, out| book.query(q, None, src, out));
                return;
            }
            Query::Window { meter } => match self.meters.get(&meter) {
                Some(m) => Outbound::Window { values: self.windows.samples(m as usize), meter },
                None => unknown_meter(&meter),
            },
            Query::Meter { meter } => match self.meters.get(&meter) {
                Some(m) => Outbound::Meter(self.snapshot(m as usize, meter)),
                None => unknown_meter(&meter),
            },
        };
        self.out.push(msg);
    }

    fn snapshot(&self, m: usize, meter: String) -> MeterSnapshot {
        let mo = self.windows.moments(m);
        MeterSnapshot {
            meter,
            count: mo.n,
            mean: mo.mean(),
            variance: mo.variance(),
            skewness: mo.skewness(),
            excess_kurtosis: mo.excess_kurtosis(),
            last_ts: self.detector.last_ts(m),
            alerts: self.detector.alerts(m),
            score: self.detector.score(m),
        }
    }

    fn reset(&mut self, scope: ResetScope) {
        match scope {
            ResetScope::Meter(id) => match self.meters.get(&id) {
                Some(m) => {
                    self.windows.clear_meter(m as usize);
                    self.detector.reset_meter(m as usize);
                }
                None => self.out.push(unknown_meter(&id)),
            },
            ResetScope::All => {
                // Everything restarts but time: the HLC must never go backwards
                // (ARCHITECTURE.md), so the ledger keeps its clock.
                let cfg = self.cfg.clone();
                let mut ledger = std::mem::replace(&mut self.ledger, Ledger::new(&cfg));
                ledger.restart(&cfg);
                // The connection is the page's to stop: the session and the
                // stores its channels fill survive a reset (they mirror the
                // server, which did not reset); the per-meter marks go.
                let mut stream = std::mem::replace(&mut self.stream, StreamState::new(&cfg));
                stream.forget_meters();
                // The map stays too: it is the server's, not the meters' state.
                let mut groups = std::mem::take(&mut self.groups);
                groups.forget_meters();
                *self = Engine { ledger, stream, groups, ..Engine::with_valid_config(cfg) };
            }
        }
    }
}

/// Why [`intern_meter`] refused an id. A full table, the refusal a payload can
/// repeat for every new name it carries, is a marker whose text
/// ([`MeterTable::full_error`]) the caller makes only if it reports it.
pub(crate) enum InternRefused {
    Full,
    Error(CoreError),
}

impl InternRefused {
    /// The error refusing `id`.
    pub(crate) fn error(self, id: &str, max_meters: u32) -> CoreError {
        match self {
            InternRefused::Full => MeterTable::full_error(id, max_meters),
            InternRefused::Error(e) => e,
        }
    }
}

impl From<CoreError> for InternRefused {
    fn from(e: CoreError) -> Self {
        InternRefused::Error(e)
    }
}

/// The dense index of meter `id`, interning it (with its ring, moments and
/// detection state) if it is new. The ring is added before the id is interned,
/// so a refusal leaves no meter without a ring.
pub(crate) fn intern_meter(
    meters: &mut MeterTable,
    windows: &mut Windows,
    detector: &mut Detector,
    id: &str,
    max_meters: u32,
) -> Result<u32, InternRefused> {
    if let Some(m) = meters.get(id) {
        return Ok(m);
    }
    meters::check_meter_id(id)?;
    if meters.is_full(max_meters) {
        return Err(InternRefused::Full);
    }
    // Window first, then the id: a refusal leaves no meter without a window. A
    // window added for an id that then failed is used by the next new meter.
    if windows.meters() == meters.len() && windows.add_meter(max_meters as usize).is_none() {
        return Err(InternRefused::Error(CoreError::new(
            ErrorCode::OutOfMemory,
            format!(
                "meter '{id}' refused: no memory for its {}-sample window ({} meters tracked)",
                windows.window(),
                meters.len()
            ),
        )));
    }
    let (m, _) = meters.intern(id, max_meters)?;
    detector.add_meter(max_meters as usize);
    Ok(m)
}

/// What a reading must satisfy to enter a window: a timestamp within
/// `[now - maxAgeMs, now + maxFutureMs]` on the corrected clock and a finite
/// value with `|x| <= maxAbsValue`. Every path into the windows checks it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadingBounds {
    now_ms: f64,
    oldest: f64,
    newest: f64,
    max_abs: f64,
}

impl ReadingBounds {
    /// The bounds at corrected time `now_ms`.
    pub(crate) fn new(cfg: &Config, now_ms: f64) -> Self {
        ReadingBounds {
            now_ms,
            oldest: now_ms - cfg.max_age_ms,
            newest: now_ms + cfg.max_future_ms,
            max_abs: cfg.max_abs_value,
        }
    }

    /// `Ok` if reading `x` at `ts` (item `pos`) may enter a window, else the
    /// refusal, whose `bad_timestamp` or `bad_value` error text is only made
    /// ([`OutOfBounds::error`]) if it will be reported: a body may refuse
    /// millions of readings past `maxErrorsPerBatch`.
    #[inline]
    pub(crate) fn check(&self, ts: f64, x: f64, pos: usize) -> Result<(), OutOfBounds> {
        if ts >= self.oldest && ts <= self.newest && x.is_finite() && x.abs() <= self.max_abs {
            Ok(())
        } else {
            Err(OutOfBounds { bounds: *self, ts, x, pos })
        }
    }
}

/// A reading [`ReadingBounds::check`] refused; [`OutOfBounds::error`] makes
/// its error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutOfBounds {
    bounds: ReadingBounds,
    ts: f64,
    x: f64,
    pos: usize,
}

impl OutOfBounds {
    /// The `bad_timestamp` (checked first) or `bad_value` error.
    #[cold]
    #[inline(never)]
    pub(crate) fn error(&self) -> CoreError {
        let (b, ts, x) = (&self.bounds, self.ts, self.x);
        if !(ts >= b.oldest && ts <= b.newest) {
            return CoreError::at(
                ErrorCode::BadTimestamp,
                self.pos,
                format!("timestamp {ts} outside [{}, {}] (now {})", b.oldest, b.newest, b.now_ms),
            );
        }
        CoreError::at(
            ErrorCode::BadValue,
            self.pos,
            format!("value {x} is not finite or beyond maxAbsValue"),
        )
    }
}

/// Adds reading `x` at `ts` to meter `m`: scored by the detector against the
/// window as it was *before* the reading entered, then pushed into the window.
/// Every path a reading takes into the anomaly engine goes through here.
#[inline]
pub(crate) fn add_reading(
    windows: &mut Windows,
    detector: &mut Detector,
    m: usize,
    x: f64,
    ts: f64,
    cfg: &Config,
) {
    let before = windows.moments(m);
    detector.observe(m, x, ts, &before, cfg);
    windows.push(m, x);
}

fn unknown_meter(id: &str) -> Outbound {
    Outbound::Error(CoreError::new(ErrorCode::UnknownMeter, format!("meter '{id}' is not tracked")))
}
