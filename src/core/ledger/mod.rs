//! The consumption ledger: live readings and REST catch-up merged into hourly
//! buckets per resource, with **no reading lost and none counted twice**,
//! whatever the order of arrival.
//!
//! The rule (see `buckets` for the bucket algebra): each bucket shows the REST
//! total at its watermark `asOf` plus the live readings stamped after `asOf`,
//! each counted once. It holds because the server's watermark is closed — a REST
//! result includes every reading stamped at or before `asOf` and none stamped
//! after it can be missing later — so the two parts never overlap and, once a
//! REST result covers every stamp the worker may have missed, nothing is absent.
//!
//! The worker may miss readings (sequence gaps, reconnects, frames refused for
//! their clock, readings it cannot deduplicate, the pending limit); each such
//! event records the stamp a REST watermark must reach to cover what was missed
//! (a *need*), marks the totals `incomplete` and asks the page for a catch-up
//! (`fetch`). The flag clears when a REST result covering every need and every
//! kept hour is applied.
//!
//! A REST result is checked whole before anything of it applies, its watermark
//! against the corrected clock like any remote stamp: a refused result leaves
//! the ledger as it was (only `refusedRest` counts it), so it can neither
//! advance the watermark nor poison later results.
//!
//! Submodules: `buckets` (hourly buckets), `dedup` (per-meter reading-id
//! windows), `cursor` (stream positions and holes), `live` (applying a frame),
//! `fetch` (when to ask for a catch-up), `event` (inputs and outputs).

mod buckets;
mod cursor;
mod dedup;
pub mod event;
mod fetch;
mod live;
mod rebuild;

pub use buckets::{hour_of, HOUR_MS};
pub use live::{InternMeter, MeterIds};

use rustc_hash::FxHashSet;

use crate::core::clock::ClockSync;
use crate::core::config::{Config, ResourceSpec};
use crate::core::error::{CoreError, ErrorCode, ErrorSink, WarningCode};
use crate::core::event::{Outbound, WarningEvent};
use crate::core::groups::{MeterHours, RowLog};
use crate::core::hlc::{Hlc, HybridClock, MAX_WALL_MS};
use buckets::{HourBuckets, HourPlace};
use cursor::StreamCursor;
use dedup::ReadingIds;
use event::TotalsEvent;
use event::{BucketTotal, Catchup, FetchReason, LedgerCounters, ResourceTotals, StreamHello};
use fetch::FetchPolicy;

/// The ledger's state.
#[derive(Clone, Debug)]
pub struct Ledger {
    resources: Vec<ResourceSpec>,
    buckets: HourBuckets,
    ids: ReadingIds,
    cursors: Vec<StreamCursor>,
    clock: HybridClock,
    sync: ClockSync,
    /// The newest applied REST watermark.
    as_of: Option<Hlc>,
    /// Newest stamp of readings missed outside stream holes (refused frames,
    /// refused or unverifiable readings, overflow).
    need: Option<Hlc>,
    counters: LedgerCounters,
    fetch: FetchPolicy,
    /// Something shown changed since the last `totals`.
    dirty: bool,
    /// The stream session holds the `totals` channel back (a snapshot is
    /// being fetched, deltas may wait in its buffer): frames the worker
    /// received or knows were sent are not in the totals yet.
    stream_held: bool,
    /// A live frame, hello or catch-up was seen: the page uses the ledger, so
    /// catch-ups may be asked for.
    engaged: bool,
    /// Readings to feed the anomaly windows: `(meter, ts, value)`.
    feed: Vec<(u32, f64, f64)>,
    /// Live readings refused at `maxPendingReadings` in the current
    /// `pending_limit` episode (0: none). The episode is reported once, at its
    /// first refusal, and its end once, with this count.
    pending_refused: u64,
    /// Per meter, resource and hour: the live readings counted or covered,
    /// each `(meter, id)` once, and the hours some may be missing from (the
    /// groups' totals are sums over these rows; docs/LEDGER.md, "Groups").
    meter_hours: MeterHours,
    /// Live readings the rows took stamped after `as_of`, replayed when a
    /// catch-up listing per-meter hours rebuilds rows (`rebuild`).
    row_log: RowLog,
    /// Catch-ups that rebuilt rows, and those whose rebuild was refused.
    rebuilds: u64,
    rebuilds_refused: u64,
    /// The newest watermark a rebuild made the rows whole up to (every
    /// resource of its hours, no need after it): a session snapshot applied
    /// at or before it need not mark its hours missed.
    rows_rebuilt_through: Option<Hlc>,
}

/// How an hour of a resource is listed in a catch-up result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listed {
    No,
    Total,
    PerMeter,
}

/// Longest hour range a catch-up result may span.
const MAX_RANGE_HOURS: i64 = 24 * 366;

impl Ledger {
    /// An empty ledger for `cfg`.
    pub fn new(cfg: &Config) -> Ledger {
        Ledger {
            resources: cfg.resources.clone(),
            buckets: HourBuckets::new(cfg.resources.len(), cfg.history_hours),
            ids: ReadingIds::new(cfg.dedup_window),
            cursors: Vec::new(),
            clock: HybridClock::default(),
            sync: ClockSync::default(),
            as_of: None,
            need: None,
            counters: LedgerCounters::default(),
            fetch: FetchPolicy::default(),
            dirty: true,
            stream_held: false,
            engaged: false,
            feed: Vec::new(),
            pending_refused: 0,
            meter_hours: MeterHours::new(cfg.resources.len(), cfg.history_hours)
                .with_series_pairs(cfg.series_pairs())
                .with_max_meters(cfg.max_meters),
            row_log: RowLog::new(cfg.max_row_log_readings),
            rebuilds: 0,
            rebuilds_refused: 0,
            rows_rebuilt_through: None,
        }
    }

    /// Takes the new configuration. Changing the resources or the kept hours
    /// restarts the totals (a new catch-up fills them); the clock survives.
    pub fn reconfigure(&mut self, cfg: &Config) {
        self.meter_hours.set_series_pairs(cfg.series_pairs());
        self.meter_hours.set_max_meters(cfg.max_meters);
        self.row_log.set_cap(cfg.max_row_log_readings);
        if cfg.resources != self.resources || i64::from(cfg.history_hours) != self.buckets.history()
        {
            let (clock, sync, engaged) = (self.clock, self.sync.clone(), self.engaged);
            let current = self.buckets.current();
            *self = Ledger { clock, sync, engaged, ..Ledger::new(cfg) };
            // The per-meter rows restart too: what came before is missed.
            if let Some(h) = current.filter(|_| engaged) {
                self.meter_hours.miss_through(h);
            }
            // The readings the old rows held are gone: no rebuild before now.
            self.row_log.forget(clock.last());
        } else if u64::from(cfg.dedup_window) != self.ids.window() {
            // A smaller or larger window forgets the ids seen; anything it can no
            // longer verify is left to the next REST result.
            self.ids = ReadingIds::new(cfg.dedup_window);
        }
    }

    /// Forgets every total, cursor and need (a full `reset`), keeping what the
    /// worker knows of time: its HLC, so stamps it issues never go backwards,
    /// and the clock offset estimate.
    pub fn restart(&mut self, cfg: &Config) {
        let (clock, sync) = (self.clock, self.sync.clone());
        *self = Ledger { clock, sync, ..Ledger::new(cfg) };
        self.row_log.forget(clock.last());
    }

    /// The corrected clock (server time estimate) at worker time `now_ms`.
    pub fn corrected(&self, now_ms: f64) -> f64 {
        self.sync.corrected(now_ms)
    }

    /// Physical time for the HLC: the corrected clock in whole ms.
    fn pt(&self, now_ms: f64) -> u64 {
        let c = self.corrected(now_ms);
        if c.is_finite() && c > 0.0 {
            c as u64
        } else {
            0
        }
    }

    /// Counters as of now.
    pub fn counters(&self) -> LedgerCounters {
        LedgerCounters {
            live_pending: self.buckets.pending(),
            clock_regressions: self.clock.regressions(),
            ..self.counters
        }
    }

    /// The ledger's whole state except its counters, as text: equal digests
    /// mean equal buckets, watermark, needs, stream positions, clocks and fetch
    /// state. For tests that a refused input changed nothing.
    pub fn digest(&self) -> String {
        format!("{:?}", Ledger { counters: LedgerCounters::default(), ..self.clone() })
    }

    /// Readings accepted live since the last call, for the anomaly windows.
    pub fn take_feed(&mut self) -> std::vec::Drain<'_, (u32, f64, f64)> {
        self.feed.drain(..)
    }

    /// Bytes held by the ledger: [`Ledger::own_bytes`], the reading-id
    /// bitmaps, the per-meter rows (with their series and change log) and the
    /// row log.
    pub fn bytes(&self) -> usize {
        self.own_bytes() + self.ids.bytes() + self.meter_hours.bytes() + self.row_log.bytes()
    }

    /// Bytes held by the hourly buckets, the stream cursors and the readings
    /// waiting to feed the windows (the ledger without its per-meter stores).
    pub fn own_bytes(&self) -> usize {
        self.buckets.bytes()
            + self.cursors.iter().map(StreamCursor::bytes).sum::<usize>()
            + self.feed.capacity() * 24
    }

    /// Bytes held by the per-meter reading-id bitmaps (dedup).
    pub fn dedup_bytes(&self) -> usize {
        self.ids.bytes()
    }

    /// The per-meter hourly rows the groups sum (read-only).
    pub fn meter_hours(&self) -> &MeterHours {
        &self.meter_hours
    }

    /// The per-meter hourly rows, to move their rate bins and mark them summed.
    pub fn meter_hours_mut(&mut self) -> &mut MeterHours {
        &mut self.meter_hours
    }

    /// The current hour number, once a clock has been seen.
    pub fn current_hour(&self) -> Option<i64> {
        self.buckets.current()
    }

    /// Past hours kept besides the current one.
    pub fn history_hours(&self) -> i64 {
        self.buckets.history()
    }

    /// Every hour up to the newest need's may lack readings the per-meter rows
    /// never saw (a REST result fills the resource totals, not the rows); and
    /// so may every hour up to `first` when the ledger was not engaged before.
    fn note_missed(&mut self, first: Option<Hlc>) {
        for stamp in [self.need_max(), first].into_iter().flatten() {
            if let Some(h) = hour_of(stamp.wall_ms as f64) {
                self.meter_hours.miss_through(h);
            }
        }
    }

    /// The stamp of the corrected clock now, for `note_missed`.
    fn now_stamp(&self, now_ms: f64) -> Hlc {
        Hlc { wall_ms: self.pt(now_ms).min(MAX_WALL_MS), counter: 0 }
    }

    /// The newest stamp some missed reading may carry, if any.
    fn need_max(&self) -> Option<Hlc> {
        self.cursors.iter().map(StreamCursor::need).fold(self.need, Option::max)
    }

    /// Whether the totals may lack readings the server stamped.
    pub fn incomplete(&self) -> bool {
        self.as_of.is_none() || self.need_max().is_some()
    }

    /// Whether every kept hour from `from_ms` (the oldest kept if `None`) to
    /// the hour of `as_of` has a REST part at `as_of` or newer. A partial
    /// result leaves older hours' parts behind: a snapshot at an older
    /// `asOf` than the applied one, discarded as stale, may then be the only
    /// carrier of the frames the session dropped as covered.
    fn rest_reaches(&self, as_of: Hlc, from_ms: Option<f64>) -> bool {
        let Some(current) = self.buckets.current() else { return false };
        let oldest = current - self.buckets.history();
        let first = from_ms.and_then(hour_of).map_or(oldest, |h| h.max(oldest));
        let last = hour_of(as_of.wall_ms as f64).map_or(current, |h| h.min(current));
        (first..=last).all(|h| {
            (0..self.resources.len())
                .all(|r| self.buckets.get(r, h).and_then(|b| b.as_of).is_some_and(|a| a >= as_of))
        })
    }

    /// Whether the stream session holds the `totals` channel back: the
    /// totals then say `incomplete` (but ask for no REST catch-up: the
    /// session's own snapshot fetch is what ends the hold).
    pub fn set_stream_held(&mut self, held: bool) {
        if held != self.stream_held {
            self.stream_held = held;
            self.dirty = true;
        }
    }

    fn add_need(&mut self, stamp: Hlc) {
        self.need = self.need.max(Some(stamp));
    }

    /// Rolls the hours forward to the corrected clock.
    fn roll(&mut self, now_ms: f64) {
        if let Some(h) = hour_of(self.corrected(now_ms)) {
            if self.buckets.current() != Some(h) {
                self.buckets.set_current(h);
                self.dirty = true;
            }
        }
    }

    /// Ends a `pending_limit` episode once the pending live readings are below
    /// `maxPendingReadings` again (a catch-up applied, hours rolled off), with a
    /// `pending_limit_cleared` warning counting the readings it refused.
    pub(super) fn end_pending_episode(&mut self, cfg: &Config, out: &mut Vec<Outbound>) {
        if self.pending_refused == 0
            || self.buckets.pending() >= u64::from(cfg.max_pending_readings)
        {
            return;
        }
        let n = std::mem::take(&mut self.pending_refused);
        out.push(Outbound::Warning(WarningEvent {
            code: WarningCode::PendingLimitCleared,
            message: format!(
                "pending live readings are below maxPendingReadings ({}) again; {n} live readings were refused meanwhile and are counted by the catch-ups",
                cfg.max_pending_readings
            ),
            count: Some(n),
        }));
    }

    /// First hour start (ms) a catch-up should cover.
    fn catchup_start_ms(&self) -> f64 {
        self.buckets.current().map_or(0.0, |c| (c - self.buckets.history()) as f64 * HOUR_MS)
    }

    fn ask(&mut self, reason: FetchReason, now_ms: f64, out: &mut Vec<Outbound>) {
        let (need, from) = (self.need_max(), self.catchup_start_ms());
        if let Some(req) = self.fetch.ask(reason, now_ms, need, from) {
            self.counters.fetches += 1;
            out.push(Outbound::Fetch(req));
        }
    }

    /// Timer work, on every tick and flush: hour roll-off and catch-up scheduling.
    pub fn on_timer(&mut self, now_ms: f64, cfg: &Config, out: &mut Vec<Outbound>) {
        self.roll(now_ms);
        self.end_pending_episode(cfg, out);
        let (need, from) = (self.need_max(), self.catchup_start_ms());
        let incomplete = self.incomplete();
        if let Some(req) = self.fetch.on_timer(now_ms, self.engaged, incomplete, need, from, cfg) {
            self.counters.fetches += 1;
            out.push(Outbound::Fetch(req));
        }
    }

    /// The flush timer: a `totals` event if anything changed since the last one.
    pub fn on_flush(&mut self, now_ms: f64, cfg: &Config, out: &mut Vec<Outbound>) {
        self.on_timer(now_ms, cfg, out);
        if self.dirty {
            let t = self.totals(now_ms, cfg);
            out.push(Outbound::Totals(t));
        }
    }

    /// A `totals` event now.
    pub fn totals(&mut self, now_ms: f64, cfg: &Config) -> TotalsEvent {
        self.roll(now_ms);
        self.dirty = false;
        let hlc = self.clock.now(self.pt(now_ms));
        let current = self.buckets.current().unwrap_or(0);
        let history = self.buckets.history();
        let resources = self
            .resources
            .iter()
            .enumerate()
            .map(|(r, spec)| {
                let buckets: Vec<BucketTotal> = (current - history..=current)
                    .map(|h| {
                        let b = self.buckets.get(r, h);
                        BucketTotal {
                            hour_ms: h as f64 * HOUR_MS,
                            total: b.map_or(0, |b| b.shown()),
                            as_of: b.and_then(|b| b.as_of),
                        }
                    })
                    .collect();
                ResourceTotals::from_buckets(spec, buckets)
            })
            .collect();
        TotalsEvent {
            hlc,
            node: cfg.node_id,
            as_of: self.as_of,
            incomplete: self.incomplete() || self.stream_held,
            current_hour_ms: current as f64 * HOUR_MS,
            resources,
            counters: self.counters(),
            frames: 0,
        }
    }

    /// Merges a remote stamp into the worker's HLC and takes it as a one-way
    /// bound on the clock offset; `false` (and an error) if it is too far ahead
    /// of the corrected clock (see [`clock_refusal`]), which changes nothing.
    fn receive(
        &mut self,
        stamp: Hlc,
        what: &str,
        now_ms: f64,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) -> bool {
        if let Some(e) = clock_refusal(&self.sync, stamp, what, now_ms, cfg) {
            self.counters.refused_clocks += 1;
            out.push(Outbound::Error(e));
            return false;
        }
        let pt = self.pt(now_ms);
        // `clock_refusal` accepted `stamp.wall_ms <= limit`; the HLC needs no
        // further check, and a stamp beyond `pt` moves it forward as the paper says.
        let limit = clock_limit(&self.sync, now_ms, cfg);
        let allowance = (limit.floor().max(0.0) as u64).saturating_sub(pt);
        match self.clock.receive(stamp, pt, allowance) {
            Ok(_) => {
                self.sync.bound(stamp.wall_ms as f64, now_ms);
                true
            }
            Err(_) => {
                // Unreachable by construction; refusing is the safe side.
                self.counters.refused_clocks += 1;
                out.push(Outbound::Error(CoreError::new(
                    ErrorCode::ClockAhead,
                    format!("{what} stamp {}.{} refused by the HLC", stamp.wall_ms, stamp.counter),
                )));
                false
            }
        }
    }

    /// The need a remote stamp records: the stamp itself, unless it was refused
    /// for its clock **and** lies beyond anything an honest server can stamp:
    /// `now + maxClockSkewMs + maxOffsetMs` (a server clock further off is
    /// refused as a sync sample, and an honest HLC leads its clock by at most
    /// `maxOffsetMs`). Such a stamp (2^47, say) is not evidence of readings a
    /// REST result will ever carry: no honest watermark reaches it, so
    /// `incomplete` would never clear and the catch-up would be repeated
    /// forever. Its need is capped at the earliest the server's clock can read
    /// now (`now + lo`): the next honest result covers it, and the refused
    /// readings, stamped beyond every watermark the worker accepts, are never
    /// counted. A stamp refused but within that horizon (the estimate was off,
    /// or the server's HLC was pushed ahead) keeps its need: an honest server's
    /// watermark reaches it once its clock does, and until then the totals
    /// rightly say `incomplete`.
    fn need_stamp(&self, stamp: Hlc, accepted: bool, now_ms: f64, cfg: &Config) -> Hlc {
        let horizon = now_ms + cfg.max_clock_skew_ms + cfg.max_offset_ms;
        if accepted || stamp.wall_ms as f64 <= horizon {
            return stamp;
        }
        let earliest = now_ms + self.sync.estimate_or_prior(now_ms).lo;
        // `as` saturates (NaN to 0); the clamp keeps the part valid.
        let wall = (earliest.floor().max(0.0) as u64).min(MAX_WALL_MS);
        stamp.min(Hlc { wall_ms: wall, counter: 0 })
    }

    /// The index of `channel`'s cursor, created if there is room.
    fn cursor_index(&mut self, channel: &str, cfg: &Config) -> Option<usize> {
        match self.cursors.iter().position(|c| c.channel == channel) {
            Some(i) => Some(i),
            None if self.cursors.len() < cfg.max_channels as usize => {
                self.cursors.push(StreamCursor::new(channel));
                Some(self.cursors.len() - 1)
            }
            None => None,
        }
    }

    fn cursor(&mut self, channel: &str, cfg: &Config) -> Option<&mut StreamCursor> {
        let i = self.cursor_index(channel, cfg)?;
        self.cursors.get_mut(i)
    }

    /// The session applied `channel`'s snapshot at `(epoch, snapshot_seq)`,
    /// a catch-up at `as_of` that [`Ledger::on_catchup`] was just given:
    /// the channel's cursor expects `snapshot_seq + 1` in `epoch` next.
    ///
    /// The session moves on whether or not the ledger took the catch-up: the
    /// deltas up to `snapshot_seq` are dropped as covered and never come
    /// live. If it was refused (the applied watermark does not reach
    /// `as_of`), their readings are in neither part: a need (`as_of`, or the
    /// latest stamp the server can have given them by now if that is earlier:
    /// the refused `asOf` may be from the future) keeps the totals
    /// `incomplete`, and a catch-up is asked (`gap`). So too if it was
    /// discarded as stale while a kept hour it lists (from `from_ms`) has an
    /// older REST part: a newer but partial result left that hour behind.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_stream(
        &mut self,
        channel: &str,
        epoch: u64,
        snapshot_seq: u64,
        as_of: Hlc,
        from_ms: Option<f64>,
        now_ms: f64,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) {
        self.engaged = true;
        if self.as_of.is_none_or(|a| a < as_of) || !self.rest_reaches(as_of, from_ms) {
            let latest = clock_limit(&self.sync, now_ms, cfg);
            // `as` saturates (NaN to 0); the clamp keeps the part valid.
            let wall = (latest.ceil().max(0.0) as u64).saturating_add(1).min(MAX_WALL_MS);
            self.add_need(as_of.min(Hlc { wall_ms: wall, counter: 0 }));
            self.ask(FetchReason::Gap, now_ms, out);
        }
        // Deltas up to `snapshot_seq` came in the snapshot only, which the
        // per-meter rows cannot split: its hours may lack readings there.
        let upto = self.as_of.or(self.buckets.current().map(|h| Hlc {
            wall_ms: ((h as f64 + 1.0) * HOUR_MS - 1.0).max(0.0) as u64,
            counter: 0,
        }));
        // A per-meter snapshot that rebuilt the rows up to its `asOf` (the
        // rebuild checked that no need after its watermark remained) already
        // put those deltas in the rows.
        let rebuilt = self.rows_rebuilt_through;
        for stamp in [self.need_max(), upto].into_iter().flatten() {
            if rebuilt.is_some_and(|w| stamp <= w) {
                continue;
            }
            if let Some(h) = hour_of(stamp.wall_ms as f64) {
                self.meter_hours.miss_through(h);
            }
        }
        if let Some(cursor) = self.cursor(channel, cfg) {
            cursor.sync(epoch, snapshot_seq);
        }
        self.dirty = true;
    }

    /// The stream greeted us after a (re)connect.
    pub fn on_hello(
        &mut self,
        h: &StreamHello,
        now_ms: f64,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) {
        let was_engaged = self.engaged;
        self.on_hello_inner(h, now_ms, cfg, out);
        let now = self.now_stamp(now_ms + cfg.max_offset_ms);
        let first = (!was_engaged).then(|| h.stamp.map_or(now, |s| s.min(now)));
        self.note_missed(first);
    }

    fn on_hello_inner(
        &mut self,
        h: &StreamHello,
        now_ms: f64,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) {
        self.engaged = true;
        if let Some(t) = h.server_time_ms {
            sync_sample(&mut self.sync, &mut self.counters, t, None, now_ms, cfg, out);
        }
        self.roll(now_ms);
        // Refused or not, the greeting stamp bounds what the new stream may have
        // missed (the cursor records it as a need), capped if it was refused.
        let stamp = h.stamp.map(|stamp| {
            self.sync.bootstrap(stamp.wall_ms as f64, now_ms, cfg.max_clock_skew_ms);
            let accepted = self.receive(stamp, "hello", now_ms, cfg, out);
            self.need_stamp(stamp, accepted, now_ms, cfg)
        });
        let Some(cursor) = self.cursor(&h.channel, cfg) else {
            self.channel_refused(&h.channel, stamp, cfg, now_ms, out);
            return;
        };
        if cursor.hello(h.epoch, h.next_seq, stamp) {
            self.counters.gaps += 1;
            self.dirty = true;
            self.ask(FetchReason::Epoch, now_ms, out);
        }
    }

    fn channel_refused(
        &mut self,
        channel: &str,
        stamp: Option<Hlc>,
        cfg: &Config,
        now_ms: f64,
        out: &mut Vec<Outbound>,
    ) {
        out.push(Outbound::Error(CoreError::new(
            ErrorCode::ChannelLimit,
            format!(
                "channel '{channel}' refused: {} channels already tracked (maxChannels)",
                cfg.max_channels
            ),
        )));
        if let Some(s) = stamp {
            self.add_need(s);
        }
        self.dirty = true;
        self.ask(FetchReason::Gap, now_ms, out);
    }

    /// A REST catch-up result arrived: **decode → check → apply**.
    ///
    /// The whole body is checked before the first state change: decoder errors,
    /// its hour range, every bucket, and its watermark against the corrected
    /// clock (as updated by the body's own clock sample). A refused body changes
    /// nothing but `refusedRest` (and `refusedClocks` for a watermark from the
    /// future): not the buckets, not `asOf`, not the HLC, and not the clock
    /// estimate (a body whose watermark is refused may carry a faulty
    /// `serverTime` too). The outstanding request is then repeated as unanswered.
    pub fn on_catchup(
        &mut self,
        c: &Catchup,
        now_ms: f64,
        cfg: &Config,
        intern: &mut InternMeter<'_>,
        out: &mut Vec<Outbound>,
    ) {
        let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
        for e in &c.errors {
            sink.push_with(|| e.clone());
        }
        sink.finish();
        // The body's clock sample, on a copy until the body is accepted.
        let mut sync = self.sync.clone();
        if let Some(t) = c.server_time_ms {
            let received = c.received_at_ms.unwrap_or(now_ms);
            sync_sample(&mut sync, &mut self.counters, t, c.sent_at_ms, received, cfg, out);
        }
        let checked = match self.check_catchup(c, &sync, now_ms, cfg, out) {
            Ok(checked) => checked,
            Err(why) => {
                self.counters.refused_rest += 1;
                out.push(Outbound::Error(CoreError::new(
                    why.code,
                    format!(
                        "catch-up result asOf {}.{} refused whole: {}; the previous totals stay and the catch-up is retried",
                        c.as_of.wall_ms, c.as_of.counter, why.message
                    ),
                )));
                return;
            }
        };
        // A result at the applied watermark is not stale when it lists kept
        // hours an earlier, partial result at that watermark did not (a
        // `totals` mini-snapshot covers only the hours from its first missing
        // frame): with no reading stamped since, the next result carries the
        // same `asOf`, and discarding it would leave `incomplete` set for good.
        // So is a page listing per meter kept hours not rebuilt at it yet.
        let fills = self.as_of == Some(c.as_of)
            && (self.fills(checked.as_ref(), c.as_of) || self.rebuilds_rows_anew(c));
        if self.as_of.is_some_and(|a| c.as_of <= a) && !fills {
            // Valid but not newer: its clock sample still counts. (A malformed
            // stale body was refused above and changed nothing, clock included.)
            self.sync = sync;
            self.engaged = true;
            self.counters.stale_rest += 1;
            return;
        }
        // Apply.
        let first = !self.engaged;
        self.sync = sync;
        self.engaged = true;
        if first {
            // What the worker saw of the stream starts after this result.
            self.note_missed(Some(c.as_of));
        }
        self.roll(now_ms);
        // Accepted by the same check in `check_catchup`, so this cannot refuse.
        self.receive(c.as_of, "REST asOf", now_ms, cfg, out);
        if let Some(range) = &checked {
            for (r, k, total) in range.totals() {
                if let Some(b) = self.buckets.get_mut(r, range.from + k as i64) {
                    b.apply_rest(total, c.as_of);
                }
            }
        }
        self.as_of = Some(c.as_of);
        self.counters.rest_applied += 1;
        self.dirty = true;
        self.end_pending_episode(cfg, out);
        if checked.as_ref().is_some_and(|r| self.covers_kept(r, c.as_of)) {
            if self.need.is_some_and(|n| n <= c.as_of) {
                self.need = None;
            }
            for cursor in &mut self.cursors {
                cursor.covered(c.as_of);
            }
        }
        // Rows listed per meter are rebuilt (once the needs it covers are
        // cleared); then no rebuild can need a reading at or before `asOf`.
        let page_to = checked
            .as_ref()
            .and_then(|range| self.rebuild_rows(c, (range.from, range.to), intern, out));
        self.row_log.applied(c.as_of);
        let still = self.need_max().is_some();
        if let Some(req) =
            self.fetch.answered(now_ms, still, self.need_max(), self.catchup_start_ms())
        {
            self.counters.fetches += 1;
            out.push(Outbound::Fetch(req));
        } else if let Some(to) = page_to {
            self.ask_page(to, now_ms, cfg, out);
        }
    }

    /// The next page of a per-meter catch-up the server cut: per-meter hours
    /// up to hour `to` (docs/LEDGER.md, "At 50,000 meters"), or a
    /// `catchup_pages_limit` warning past `maxCatchupPages`.
    fn ask_page(&mut self, to: i64, now_ms: f64, cfg: &Config, out: &mut Vec<Outbound>) {
        let (need, from) = (self.need_max(), self.catchup_start_ms());
        match self.fetch.page(now_ms, need, from, to as f64 * HOUR_MS, cfg) {
            Ok(req) => {
                self.counters.fetches += 1;
                self.counters.catchup_pages += 1;
                out.push(Outbound::Fetch(req));
            }
            Err(pages) => out.push(Outbound::Warning(WarningEvent {
                code: WarningCode::CatchupPagesLimit,
                message: format!(
                    "the per-meter rows are still missing readings of hours up to {}: {pages} catch-up pages were asked in a row (maxCatchupPages {}); the groups stay incomplete until a later catch-up",
                    to as f64 * HOUR_MS,
                    cfg.max_catchup_pages
                ),
                count: None,
            })),
        }
    }

    /// Whether catch-up `c` lists per meter a kept hour of a resource whose
    /// rows were not rebuilt at its watermark or later.
    fn rebuilds_rows_anew(&self, c: &Catchup) -> bool {
        c.buckets.iter().any(|b| {
            let (Some(r), Some(h)) = (self.resource(&b.resource), hour_of(b.hour_ms)) else {
                return false;
            };
            b.meter.is_some()
                && self.buckets.place(h) == HourPlace::Kept
                && self.meter_hours.rebuilt_at(r, h).is_none_or(|w| w < c.as_of)
        })
    }

    /// Whether a result over `range` at `as_of` reaches back to the oldest
    /// kept hour and forward to the hour of `as_of`: only such a result can
    /// clear needs.
    fn covers_kept(&self, range: &RangeTotals, as_of: Hlc) -> bool {
        self.buckets.current().is_some_and(|current| {
            range.from <= current - self.buckets.history()
                && hour_of(as_of.wall_ms as f64).is_some_and(|h| range.to >= h)
        })
    }

    /// Whether a result at the applied watermark `as_of` adds something: a
    /// kept bucket in its range whose REST part is older, or a need it can
    /// clear (it covers every kept hour).
    fn fills(&self, range: Option<&RangeTotals>, as_of: Hlc) -> bool {
        let Some(range) = range else { return false };
        let older = range.totals().any(|(r, k, _)| {
            let hour = range.from + k as i64;
            self.buckets.place(hour) == HourPlace::Kept
                && self.buckets.get(r, hour).is_none_or(|b| !b.covers(as_of))
        });
        older || (self.need_max().is_some() && self.covers_kept(range, as_of))
    }

    /// Checks a whole catch-up body without changing anything. `Ok(None)` for a
    /// body without an hour range (nothing listed: only its watermark applies);
    /// otherwise the per-(resource, hour) totals to apply. Item problems are
    /// reported into `out` with their positions; the returned error says why the
    /// body is refused.
    fn check_catchup(
        &self,
        c: &Catchup,
        sync: &ClockSync,
        now_ms: f64,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) -> Result<Option<RangeTotals>, CoreError> {
        // A malformed bucket was dropped by the decoder: applying the rest would
        // read its hour as 0. Buckets of resources this dashboard does not total
        // are merely ignored.
        let malformed = c.errors.iter().filter(|e| e.code != ErrorCode::UnknownResource).count();
        if malformed > 0 {
            return Err(CoreError::new(
                ErrorCode::BadField,
                format!("{malformed} malformed item(s)"),
            ));
        }
        // The watermark is a server stamp: one from beyond the corrected clock
        // would cover every later live reading and outlive every honest result.
        if let Some(e) = clock_refusal(sync, c.as_of, "REST asOf", now_ms, cfg) {
            return Err(e);
        }
        let (from, to) = match catchup_range(c) {
            Ok(Some(range)) => range,
            Ok(None) => return Ok(None),
            Err(why) => return Err(CoreError::new(ErrorCode::BadField, why)),
        };
        // `from <= to` and both are below 1e15 in magnitude: no overflow.
        if to - from >= MAX_RANGE_HOURS {
            return Err(CoreError::new(
                ErrorCode::BadField,
                format!("range {from}..={to} spans more than {MAX_RANGE_HOURS} hours"),
            ));
        }
        let span = (to - from + 1) as usize;
        let nres = self.resources.len();
        // Bounded: at most 32 resources × 8,784 hours, whatever the payload says.
        let mut totals = RangeTotals { from, to, span, totals: vec![0; nres * span] };
        let mut listed = vec![Listed::No; nres * span];
        // Per-meter entries: each (meter, slot) at most once.
        let mut meters: FxHashSet<(&str, usize)> = FxHashSet::default();
        // Sized once, for as many pairs as the buckets (each 20 bytes or more
        // of the payload) or as `maxMeters` meters in every slot, the fewer:
        // grown by doubling, its rehashes were a quarter of the check of
        // 825,548 distinct pairs, and sized for every bucket, a body listing
        // 20,000 pairs many times probed a table too large for the cache
        // (docs/PERFORMANCE.md, "Hostile payloads"). A body naming more
        // meters grows it as it goes, as does a failed reservation.
        let pairs = (cfg.max_meters as usize).saturating_mul(nres).saturating_mul(span);
        let _ = meters.try_reserve(c.buckets.len().min(pairs));
        let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
        let mut bad = 0usize;
        for b in &c.buckets {
            let pos = b.position as usize;
            let Some(r) = self.resource(&b.resource) else {
                // Not a resource this dashboard totals (the decoder drops these first).
                sink.push_with(|| {
                    CoreError::at(
                        ErrorCode::UnknownResource,
                        pos,
                        format!("resource '{}' is not configured; bucket ignored", b.resource),
                    )
                });
                continue;
            };
            let Some(h) = hour_of(b.hour_ms).filter(|h| (from..=to).contains(h)) else {
                bad += 1;
                sink.push_with(|| {
                    CoreError::at(
                        ErrorCode::BadField,
                        pos,
                        format!("bucket hour {} is outside the result's range", b.hour_ms),
                    )
                });
                continue;
            };
            let i = r * span + (h - from) as usize;
            let decimals = self.resources.get(r).map_or(0, |s| s.decimals);
            // What is wrong, as a text made only under the cap (`push_with`):
            // a body may list a million bad buckets (docs/PERFORMANCE.md,
            // "Hostile payloads": a text each was 15 % of such a body's check).
            let problem = match (b.total.to_units(decimals), listed.get(i).copied(), &b.meter) {
                (Ok(u), _, _) if u < 0 => Some(BucketProblem::Total("is negative")),
                (Err(_), _, _) => {
                    Some(BucketProblem::Total("is too large or finer than the resolution"))
                }
                (Ok(_), Some(Listed::Total), None) => Some(BucketProblem::Total("is listed twice")),
                (Ok(_), Some(Listed::PerMeter), None) | (Ok(_), Some(Listed::Total), Some(_)) => {
                    Some(BucketProblem::Total("mixes a resource total with per-meter totals"))
                }
                (Ok(_), _, Some(m)) if !meters.insert((m.as_str(), i)) => {
                    Some(BucketProblem::MeterTwice(m))
                }
                (Ok(u), _, m) => {
                    let kind = if m.is_some() { Listed::PerMeter } else { Listed::Total };
                    if let Some(l) = listed.get_mut(i) {
                        *l = kind;
                    }
                    match totals.totals.get_mut(i).map(|t| t.checked_add(u).map(|s| *t = s)) {
                        Some(None) => Some(BucketProblem::Total("overflows when summed")),
                        _ => None,
                    }
                }
            };
            if let Some(why) = problem {
                bad += 1;
                sink.push_with(|| {
                    let (r, h) = (&b.resource, b.hour_ms);
                    let message = match why {
                        BucketProblem::MeterTwice(m) => {
                            format!("{r} hour {h}: total lists meter '{m}' twice")
                        }
                        BucketProblem::Total(why) => format!("{r} hour {h}: total {why}"),
                    };
                    CoreError::at(ErrorCode::BadValue, pos, message)
                });
            }
        }
        sink.finish();
        if bad > 0 {
            return Err(CoreError::new(ErrorCode::BadValue, format!("{bad} bad bucket(s)")));
        }
        Ok(Some(totals))
    }

    /// The resource index of `name`.
    fn resource(&self, name: &str) -> Option<usize> {
        self.resources.iter().position(|r| r.name == name)
    }
}

/// The newest server wall time a remote stamp may carry at worker time `now_ms`:
/// the upper bound of the server's clock (`now + hi`) plus `maxOffsetMs`, the
/// lead an honest server's HLC may have over its physical clock. Before any
/// clock information, the worker's own clock ± `UNTIMED_UNCERTAINTY_MS`.
fn clock_limit(sync: &ClockSync, now_ms: f64, cfg: &Config) -> f64 {
    now_ms + sync.limit_hi(now_ms) + cfg.max_offset_ms
}

/// The `clock_ahead` error for a remote stamp beyond [`clock_limit`], if it is.
/// That is: more than `maxOffsetMs` plus the offset's error bound ahead of the
/// corrected clock.
fn clock_refusal(
    sync: &ClockSync,
    stamp: Hlc,
    what: &str,
    now_ms: f64,
    cfg: &Config,
) -> Option<CoreError> {
    let limit = clock_limit(sync, now_ms, cfg);
    let wall = stamp.wall_ms as f64;
    // Out of range walls never come from the wire; the HLC refuses them too.
    if wall <= limit && stamp.wall_ms <= MAX_WALL_MS {
        return None;
    }
    let est = sync.estimate_or_prior(now_ms);
    let corrected = now_ms + est.offset_ms();
    Some(CoreError::new(
        ErrorCode::ClockAhead,
        format!(
            "{what} stamp {}.{} is {:.0} ms ahead of the corrected clock {corrected:.0} (worker clock {now_ms}, offset {:.0} ± {:.0} ms), beyond maxOffsetMs {} plus the offset's error bound",
            stamp.wall_ms,
            stamp.counter,
            wall - corrected,
            est.offset_ms(),
            est.error_ms(),
            cfg.max_offset_ms
        ),
    ))
}

/// Adds a clock-sync sample to `sync`; a refused one is counted and reported.
fn sync_sample(
    sync: &mut ClockSync,
    counters: &mut LedgerCounters,
    server_ms: f64,
    sent_ms: Option<f64>,
    received_ms: f64,
    cfg: &Config,
    out: &mut Vec<Outbound>,
) {
    if let Err(r) = sync.sample(server_ms, sent_ms, received_ms, cfg.max_clock_skew_ms) {
        counters.refused_clocks += 1;
        out.push(Outbound::Error(CoreError::new(
            ErrorCode::ClockAhead,
            format!(
                "server time {server_ms} is {:.0} ms from the worker clock {received_ms}, beyond maxClockSkewMs {}: clock sample ignored",
                r.offset_ms, r.max_skew_ms
            ),
        )));
    }
}

/// The hour range a result covers: its `from`/`to`, else its earliest/latest
/// bucket. `Ok(None)` when it names no hour at all; an error for a bound that
/// is not a finite time or an inverted range (nothing would be applied, yet the
/// watermark would advance).
fn catchup_range(c: &Catchup) -> Result<Option<(i64, i64)>, String> {
    let bound = |given: Option<f64>, what: &str| match given {
        Some(ms) => hour_of(ms).map(Some).ok_or(format!("'{what}' {ms} is not a time")),
        None => Ok(None),
    };
    let (from, to) = (bound(c.from_hour_ms, "from")?, bound(c.to_hour_ms, "to")?);
    // The buckets' earliest and latest hours, in one pass over them (a
    // catch-up may list a million: a pass each read 66 MB twice).
    let (earliest, latest) = if from.is_none() || to.is_none() {
        let hours = c.buckets.iter().filter_map(|b| hour_of(b.hour_ms));
        hours.fold((None, None), |(lo, hi): (Option<i64>, Option<i64>), h| {
            (Some(lo.map_or(h, |lo| lo.min(h))), Some(hi.map_or(h, |hi| hi.max(h))))
        })
    } else {
        (None, None)
    };
    let (from, to) = (from.or(earliest), to.or(latest));
    match (from, to) {
        (Some(f), Some(t)) if f <= t => Ok(Some((f, t))),
        (None, None) if c.buckets.is_empty() => Ok(None),
        (f, t) => Err(format!("range {f:?}..={t:?} is empty or inverted")),
    }
}

/// Why a catch-up bucket is refused, kept until its text is made (only under
/// `maxErrorsPerBatch`).
enum BucketProblem<'a> {
    /// Its total: what is wrong with it.
    Total(&'static str),
    /// A meter listed twice for one (resource, hour).
    MeterTwice(&'a str),
}

/// A checked catch-up's totals per (resource, hour) of its range; hours with no
/// bucket total 0.
struct RangeTotals {
    from: i64,
    to: i64,
    span: usize,
    /// `resource * span + (hour - from)` -> total in units.
    totals: Vec<i64>,
}

impl RangeTotals {
    /// `(resource, hour - from, total)` for every slot.
    fn totals(&self) -> impl Iterator<Item = (usize, usize, i64)> + '_ {
        let span = self.span.max(1);
        self.totals.iter().enumerate().map(move |(i, &t)| (i / span, i % span, t))
    }
}
