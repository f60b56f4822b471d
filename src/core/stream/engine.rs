//! How the engine drives its session: inputs in, requests and deliveries out.

use super::store::{DetailCache, MeterStore, NoticeStore, Refused, StreamCounters};
use super::{
    fetch_path, DetailEvent, MetersEvent, NoticesEvent, StreamRequest, METERS_PREFIX,
    NOTICES_CHANNEL, TOTALS_CHANNEL,
};
use super::{MeterColumns, MeterRow, MeterRowRef};
use crate::core::config::Config;
use crate::core::detect::Detector;
use crate::core::error::ErrorSink;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Outbound;
use crate::core::meters::MeterTable;
use crate::core::session::{
    Delivery, FetchWhat, Payload, Session, SessionError, SessionErrorCode, SessionInput,
    SessionOutput,
};
use crate::core::windows::Windows;
use crate::core::{add_reading, intern_meter, Counters, Engine, ReadingBounds};

/// The engine's session and the stores its channels fill.
#[derive(Clone, Debug)]
pub(crate) struct StreamState {
    pub(crate) session: Session,
    pub(crate) meters: MeterStore,
    pub(crate) notices: NoticeStore,
    pub(crate) details: DetailCache,
    /// Detail fetches in flight: `(request id, meter)`, at most `detailCacheSize`.
    pending_details: Vec<(u64, String)>,
    pub(crate) counters: StreamCounters,
    scratch: Vec<SessionOutput>,
    /// A session input was seen: `stats` carry the session's counters.
    used: bool,
    /// Per meter index: the newest `ts` that entered its window from a
    /// `meters.*` row (NaN: none).
    newest_row_ts: Vec<f64>,
    /// Per meter index: the newest `ts` that entered its window from any stream path.
    newest_ts: Vec<f64>,
    /// When the one-shot flush after a delta is due (engine ms); `None`: no
    /// delta or live frame since the last flush.
    flush_due: Option<f64>,
    /// Per channel: deltas delivered since the last flush whose effects no
    /// message has shown yet (at most one entry per subscribed channel).
    unshown: Vec<(String, u32)>,
    /// When the last one-shot flush ran (the periodic one does not count: it
    /// runs on its own clock, and counting it would phase-lock every delta
    /// that follows it to a `deltaFlushMs` wait).
    last_flush: Option<f64>,
}

impl StreamState {
    /// A disconnected session configured from `cfg` (already validated).
    pub(crate) fn new(cfg: &Config) -> StreamState {
        // `Config::validate` checked the session's fields; the default is the
        // safe side should the two ever disagree.
        let session = Session::new(cfg.session_config()).unwrap_or_default();
        StreamState {
            session,
            meters: MeterStore::default(),
            notices: NoticeStore::default(),
            details: DetailCache::default(),
            pending_details: Vec::new(),
            counters: StreamCounters::default(),
            scratch: Vec::new(),
            used: false,
            newest_row_ts: Vec::new(),
            newest_ts: Vec::new(),
            flush_due: None,
            last_flush: None,
            unshown: Vec::new(),
        }
    }

    /// Makes room in the per-meter ts slabs for meter `m` (of `meters`
    /// tracked); false if memory for them cannot be had.
    fn slot(&mut self, m: usize, meters: usize) -> bool {
        ts_slot(&mut self.newest_ts, &mut self.newest_row_ts, m, meters)
    }

    /// Whether a live reading of meter `m` at `ts` enters its window: not if a
    /// `meters.*` row at the same or a later `ts` already entered it. Records
    /// the newest stream `ts` of the meter. Without the memory to record it,
    /// the reading enters (v1 behaviour).
    pub(crate) fn live_reading_enters(&mut self, m: usize, ts: f64, meters: usize) -> bool {
        if !self.slot(m, meters) {
            return true;
        }
        if self.newest_row_ts.get(m).is_some_and(|&r| ts <= r) {
            return false;
        }
        if let Some(n) = self.newest_ts.get_mut(m) {
            if n.is_nan() || ts > *n {
                *n = ts;
            }
        }
        true
    }

    /// One more delta of `channel` delivered, not shown yet.
    fn delivered(&mut self, channel: &str) {
        if let Some((_, n)) = self.unshown.iter_mut().find(|(c, _)| c == channel) {
            *n = n.saturating_add(1);
        } else if self.unshown.try_reserve(1).is_ok() {
            // One entry per subscribed channel (`maxSubscriptions`); without
            // memory for it the delta stays outstanding until a resubscribe.
            self.unshown.push((channel.to_string(), 1));
        }
    }

    /// Takes the count of `channel`'s delivered deltas not shown yet.
    pub(crate) fn take_unshown(&mut self, channel: &str) -> u32 {
        self.unshown.iter_mut().find(|(c, _)| c == channel).map_or(0, |(_, n)| std::mem::take(n))
    }

    /// Forgets the per-meter marks and the store's links to meter indices
    /// (the engine's meters were reset).
    pub(crate) fn forget_meters(&mut self) {
        self.newest_ts = Vec::new();
        self.newest_row_ts = Vec::new();
        self.meters.forget_links();
    }

    /// Whether a session input other than a tick was seen.
    pub(crate) fn used(&self) -> bool {
        self.used
    }

    /// Bytes held (estimate).
    pub(crate) fn bytes(&self) -> usize {
        self.meters.bytes()
            + self.notices.bytes()
            + self.details.bytes()
            + self.pending_details.len() * 64
            + (self.newest_row_ts.capacity() + self.newest_ts.capacity()) * 8
            + self.session.bytes()
    }
}

/// What feeding a row's reading to its meter's window touches: the
/// engine's meters, windows, detector and counters, the stream's per-meter
/// marks, the batch's reading bounds and its error sink.
struct RowFeed<'e> {
    meters: &'e mut MeterTable,
    windows: &'e mut Windows,
    detector: &'e mut Detector,
    cfg: &'e Config,
    counters: &'e mut Counters,
    newest_ts: &'e mut Vec<f64>,
    newest_row_ts: &'e mut Vec<f64>,
    bounds: ReadingBounds,
    sink: ErrorSink<'e>,
}

impl RowFeed<'_> {
    /// Row `i`'s reading into its meter's window, if newer than every stream
    /// reading that entered it. `link`: the store slot's link to the meter's
    /// index (plus one; 0 unknown), used when set and set when found.
    fn feed(&mut self, i: usize, r: &MeterRowRef<'_>, link: Option<&mut u32>) {
        // The link, when set, is this meter's index (the store sets it for
        // its own id only, and forgets it when the meters reset).
        let known = link.as_ref().and_then(|l| l.checked_sub(1));
        let m = match known {
            Some(m) => m as usize,
            None => {
                let (meters, windows, detector) =
                    (&mut *self.meters, &mut *self.windows, &mut *self.detector);
                match intern_meter(meters, windows, detector, r.meter, self.cfg.max_meters) {
                    Ok(m) => {
                        if let Some(l) = link {
                            *l = m.checked_add(1).unwrap_or(0);
                        }
                        m as usize
                    }
                    Err(refused) => {
                        let max_meters = self.cfg.max_meters;
                        self.sink.push_with(|| refused.error(r.meter, max_meters));
                        self.counters.readings_rejected += 1.0;
                        return;
                    }
                }
            }
        };
        if !ts_slot(self.newest_ts, self.newest_row_ts, m, self.meters.len()) {
            self.sink.push_with(|| {
                CoreError::new(
                    ErrorCode::OutOfMemory,
                    format!("meter '{}': no memory to track its stream readings", r.meter),
                )
            });
            return;
        }
        let newest = self.newest_ts.get(m).copied().unwrap_or(f64::NAN);
        if r.ts <= newest {
            return;
        }
        if let Err(e) = self.bounds.check(r.ts, r.value, i) {
            self.sink.push_with(|| e.error());
            self.counters.readings_rejected += 1.0;
            return;
        }
        add_reading(self.windows, self.detector, m, r.value, r.ts, self.cfg);
        self.counters.readings_ingested += 1.0;
        if let (Some(a), Some(b)) = (self.newest_ts.get_mut(m), self.newest_row_ts.get_mut(m)) {
            *a = r.ts;
            *b = r.ts;
        }
    }
}

/// [`StreamState::slot`] on its two slabs (for a caller that holds other
/// fields of the state borrowed).
fn ts_slot(
    newest_ts: &mut Vec<f64>,
    newest_row_ts: &mut Vec<f64>,
    m: usize,
    meters: usize,
) -> bool {
    if newest_ts.len() > m {
        return true;
    }
    let n = meters.max(m + 1);
    let more = n - newest_ts.len();
    if newest_ts.try_reserve(more).is_err() || newest_row_ts.try_reserve(more).is_err() {
        return false;
    }
    newest_ts.resize(n, f64::NAN);
    newest_row_ts.resize(n, f64::NAN);
    true
}

/// The engine's error for a session error.
pub(crate) fn core_error(e: SessionError) -> CoreError {
    let code = match e.code {
        SessionErrorCode::BadChannel => ErrorCode::BadChannel,
        SessionErrorCode::ChannelLimit => ErrorCode::ChannelLimit,
        SessionErrorCode::BufferLimit => ErrorCode::BufferLimit,
        SessionErrorCode::CreditOverrun => ErrorCode::CreditOverrun,
        SessionErrorCode::UnexpectedOp => ErrorCode::UnexpectedOp,
        SessionErrorCode::BadSnapshot => ErrorCode::BadSnapshot,
        SessionErrorCode::FatalClose => ErrorCode::FatalClose,
        SessionErrorCode::NotSubscribed => ErrorCode::NotSubscribed,
        SessionErrorCode::BadMeterId => ErrorCode::BadMeterId,
        SessionErrorCode::BadConfig => ErrorCode::BadConfig,
    };
    CoreError::new(code, e.message)
}

impl Engine {
    /// When the host should run [`Inbound::DeltaFlush`](crate::core::event::Inbound::DeltaFlush)
    /// (engine ms), once a stream delivery or live frame changed something
    /// since the last flush; `None` when nothing waits. The periodic flush
    /// (`totalsFlushMs`) stays the ceiling.
    pub fn flush_due_ms(&self) -> Option<f64> {
        self.stream.flush_due
    }

    /// Something the page shows changed at `now_ms`: a flush is due within
    /// `deltaFlushMs`. At once (the host's next turn) if the last one-shot
    /// flush is at least `deltaFlushMs` old, else `deltaFlushMs` after it: at
    /// most one one-shot flush per `deltaFlushMs`, so a burst coalesces while
    /// a lone delta waits for no timer. Later changes join the flush already due.
    pub(crate) fn flush_soon(&mut self, now_ms: f64) {
        if self.stream.flush_due.is_none() {
            let due = match self.stream.last_flush {
                Some(last) => (last + self.cfg.delta_flush_ms).max(now_ms),
                None => now_ms,
            };
            self.stream.flush_due = Some(due);
        }
    }

    /// Posts what changed since the last flush: the ledger's `totals`, then
    /// the stores' `meters`/`notices`, each carrying `frames`, the deltas of
    /// its channel it shows first. Deltas that changed nothing shown are
    /// acknowledged here, as if rendered: nothing is left for the page to
    /// draw. Whichever timer runs it, no one-shot flush is due afterwards.
    pub(crate) fn flush_updates(&mut self, now_ms: f64) {
        self.stream.flush_due = None;
        let queued = self.out.len();
        self.flush(now_ms);
        let totals = self.out.iter_mut().skip(queued).rev().find_map(|o| match o {
            Outbound::Totals(t) => Some(t),
            _ => None,
        });
        if let Some(t) = totals {
            t.frames = self.stream.take_unshown(TOTALS_CHANNEL);
        }
        self.stream_flush();
        let unshown = std::mem::take(&mut self.stream.unshown);
        for (channel, frames) in unshown {
            if frames > 0 {
                self.stream_input(SessionInput::Rendered { channel, frames }, now_ms);
            }
        }
    }

    /// The one-shot flush, if one is due.
    pub(crate) fn delta_flush(&mut self, now_ms: f64) {
        if self.stream.flush_due.is_some() {
            self.stream.last_flush = Some(now_ms);
            self.flush_updates(now_ms);
        }
    }

    /// Handles one session input (`Inbound::Stream`).
    pub(crate) fn stream_input(&mut self, input: SessionInput, now_ms: f64) {
        if !matches!(input, SessionInput::Tick) {
            self.stream.used = true;
        }
        let input = match input {
            SessionInput::DetailReply { request_id, body } => {
                return self.detail_reply(request_id, body, now_ms)
            }
            SessionInput::FetchFailed { request_id } if self.detail_pending(request_id) => {
                return self.detail_failed(request_id, "no answer")
            }
            SessionInput::BadFetch { request_id, message } if self.detail_pending(request_id) => {
                return self.detail_failed(request_id, &message)
            }
            SessionInput::FetchDetail { meter } => {
                let ttl = self.cfg.detail_ttl_ms;
                if let Some(body) = self.stream.details.select(&meter, now_ms, ttl) {
                    self.stream.counters.detail_cache_hits += 1;
                    self.out.push(Outbound::Detail(DetailEvent { meter, body, cached: true }));
                    return;
                }
                if self.stream.pending_details.iter().any(|(_, m)| *m == meter) {
                    return;
                }
                if self.stream.pending_details.len() >= self.cfg.detail_cache_size as usize {
                    self.out.push(Outbound::Error(CoreError::new(
                        ErrorCode::DetailLimit,
                        format!(
                            "detail for meter '{meter}' refused: {} detail fetches in flight (detailCacheSize)",
                            self.stream.pending_details.len()
                        ),
                    )));
                    return;
                }
                SessionInput::FetchDetail { meter }
            }
            SessionInput::Unsubscribe { channel } => {
                self.drop_channel(&channel);
                SessionInput::Unsubscribe { channel }
            }
            other => other,
        };
        let mut outs = std::mem::take(&mut self.stream.scratch);
        self.stream.session.handle_into(input, now_ms, &mut outs);
        for o in outs.drain(..) {
            self.session_output(o, now_ms);
        }
        self.stream.scratch = outs;
        // While the session holds `totals` back (after a gap, a new epoch, a
        // dropped buffer, or before its first snapshot), frames it received
        // or knows were sent are not in the ledger: the totals must not say
        // complete (tests/ledger_adversary.rs).
        self.ledger.set_stream_held(self.stream.session.held(TOTALS_CHANNEL));
    }

    /// Runs the session's timers (with the engine's tick).
    pub(crate) fn stream_tick(&mut self, now_ms: f64) {
        self.stream_input(SessionInput::Tick, now_ms);
    }

    fn session_output(&mut self, o: SessionOutput, now_ms: f64) {
        let msg = match o {
            SessionOutput::Send(op) => Outbound::Stream(StreamRequest::Send { text: op.to_json() }),
            SessionOutput::Connect { url } => Outbound::Stream(StreamRequest::Connect { url }),
            SessionOutput::Close { code, reason } => {
                Outbound::Stream(StreamRequest::Close { code, reason })
            }
            SessionOutput::Fetch { request_id, what } => {
                if let FetchWhat::Detail { meter } = &what {
                    self.stream.counters.detail_fetches += 1;
                    self.stream.pending_details.push((request_id, meter.clone()));
                }
                Outbound::Stream(StreamRequest::Fetch { request_id, path: fetch_path(&what) })
            }
            SessionOutput::Connection(s) => Outbound::Connection(s),
            SessionOutput::Error(e) => Outbound::Error(core_error(e)),
            SessionOutput::Deliver { channel, item } => {
                return self.deliver(&channel, item, now_ms)
            }
            SessionOutput::Covered { channel, body, .. } => {
                // A `totals` frame the snapshot claims to cover: the ledger
                // counts its readings stamped after the applied watermark
                // (none, if the claim is true) and skips the rest, each
                // `(meter, id)` once. Other channels' rows are not replayed:
                // an older row must not overwrite the snapshot's.
                if let Payload::Frame(f) = body {
                    if channel == TOTALS_CHANNEL {
                        self.flush_soon(now_ms);
                        self.live(&f, now_ms);
                    }
                }
                return;
            }
        };
        self.out.push(msg);
    }

    fn deliver(&mut self, channel: &str, item: Delivery, now_ms: f64) {
        self.flush_soon(now_ms);
        let (at, full, body) = match item {
            Delivery::Snapshot { epoch, snapshot_seq, since_seq, body } => {
                ((epoch, snapshot_seq), since_seq.is_none(), body)
            }
            Delivery::Delta { epoch, seq, body } => {
                self.stream.delivered(channel);
                ((epoch, seq), false, body)
            }
        };
        match body {
            Payload::Catchup(c) if channel == TOTALS_CHANNEL => {
                self.catchup(&c, now_ms);
                let (cfg, out) = (&self.cfg, &mut self.out);
                // The hours it lists start at `from`, or its oldest bucket.
                let listed = c.buckets.iter().map(|b| b.hour_ms).reduce(f64::min);
                let from = c.from_hour_ms.or(listed);
                self.ledger.sync_stream(channel, at.0, at.1, c.as_of, from, now_ms, cfg, out);
            }
            Payload::Frame(f) if channel == TOTALS_CHANNEL => self.live(&f, now_ms),
            Payload::Meters(p) if channel.starts_with(METERS_PREFIX) => {
                let rows = p.upsert.iter().map(MeterRow::as_ref);
                self.meter_rows(channel, rows, p.remove.iter().map(String::as_str), at, full, now_ms);
            }
            Payload::MeterColumns(c) if channel.starts_with(METERS_PREFIX) => {
                if full {
                    self.meter_rows(channel, c.upserts(), c.removes(), at, full, now_ms);
                } else {
                    self.meter_delta(channel, &c, at, now_ms);
                }
            }
            Payload::Notices(p) if channel == NOTICES_CHANNEL => {
                let cap = self.cfg.max_notices as usize;
                let p = *p;
                let refused = self.stream.notices.apply(
                    p.upsert,
                    &p.remove,
                    at,
                    full,
                    cap,
                    &mut self.stream.counters,
                );
                self.refused(refused, "maxNotices");
            }
            _ => self.out.push(Outbound::Error(CoreError::new(
                ErrorCode::BadSnapshot,
                format!(
                    "channel '{channel}': update {}/{} has a body this channel does not carry: ignored",
                    at.0, at.1
                ),
            ))),
        }
    }

    /// Applies a `meters.<group>` patch (from text or columns alike) written
    /// at `at`: the store first, so a row it refuses at the cap does not feed
    /// the windows either (the window's own ts rule keeps the readings
    /// idempotent). A delta in columns (every delta but one too odd for
    /// them) takes [`meter_delta`](Self::meter_delta) instead.
    fn meter_rows<'a, R>(
        &mut self,
        channel: &str,
        rows: R,
        remove: impl IntoIterator<Item = &'a str>,
        at: (u64, u64),
        full: bool,
        now_ms: f64,
    ) where
        R: IntoIterator<Item = MeterRowRef<'a>> + Clone,
    {
        let cap = self.cfg.max_meter_entities as usize;
        let refused = self.stream.meters.apply(
            channel,
            rows.clone(),
            remove,
            at,
            full,
            cap,
            &mut self.stream.counters,
        );
        if self.cfg.detect_live {
            let only_held = refused.as_ref().map(|_| channel);
            self.row_readings(rows, only_held, now_ms);
        }
        self.refused(refused, "maxMeterEntities");
    }

    /// [`meter_rows`](Self::meter_rows) for a delta in columns: with
    /// `detectLive`, each row the store holds feeds its reading as
    /// [`row_readings`](Self::row_readings) would, right after its store
    /// write, reaching the meter's window through the slot's link (one id
    /// lookup per row, not two). A full snapshot, whose evictions follow its
    /// upserts, keeps the two passes.
    fn meter_delta(&mut self, channel: &str, c: &MeterColumns, at: (u64, u64), now_ms: f64) {
        let cap = self.cfg.max_meter_entities as usize;
        let detect = self.cfg.detect_live;
        let (mut rf, store, stream_counters) = self.row_feed(now_ms);
        let mut feed = |i: usize, r: &MeterRowRef<'_>, link: &mut u32| {
            if detect {
                rf.feed(i, r, Some(link));
            }
        };
        let (rows, remove) = (c.upserts(), c.removes());
        let refused =
            store.apply_feeding(channel, rows, remove, at, false, cap, stream_counters, &mut feed);
        rf.sink.finish();
        self.refused(refused, "maxMeterEntities");
    }

    /// Feeds the rows' latest readings to the anomaly windows. A row's
    /// reading enters a meter's window only if its `ts` is newer than every
    /// reading that entered it from the stream (live `totals` frames or rows),
    /// so a reading carried by both channels enters once. With `only_held`
    /// (the store refused some rows of this patch), only rows that channel's
    /// store holds are fed.
    fn row_readings<'a>(
        &mut self,
        rows: impl IntoIterator<Item = MeterRowRef<'a>>,
        only_held: Option<&str>,
        now_ms: f64,
    ) {
        let (mut rf, store, _) = self.row_feed(now_ms);
        for (i, r) in rows.into_iter().enumerate() {
            if only_held.is_some_and(|c| !store.holds(c, r.meter)) {
                continue;
            }
            rf.feed(i, &r, None);
        }
        rf.sink.finish();
    }

    /// A [`RowFeed`] for one batch at `now_ms`, with the stream's meter
    /// store and counters beside it (the store's apply calls the feed).
    fn row_feed(&mut self, now_ms: f64) -> (RowFeed<'_>, &mut MeterStore, &mut StreamCounters) {
        let Engine { meters, windows, detector, cfg, out, counters, stream, ledger, .. } = self;
        let StreamState {
            meters: store, counters: stream_counters, newest_ts, newest_row_ts, ..
        } = stream;
        let rf = RowFeed {
            bounds: ReadingBounds::new(cfg, ledger.corrected(now_ms)),
            sink: ErrorSink::new(out, cfg.max_errors_per_batch),
            meters,
            windows,
            detector,
            cfg,
            counters,
            newest_ts,
            newest_row_ts,
        };
        (rf, store, stream_counters)
    }

    fn refused(&mut self, refused: Option<Refused>, cap: &str) {
        if let Some(r) = refused {
            self.out.push(Outbound::Error(CoreError::new(
                ErrorCode::EntityLimit,
                format!(
                    "channel '{}': {} new entities refused at {cap} (first '{}'); unsubscribe a channel or raise {cap}",
                    r.channel, r.count, r.first
                ),
            )));
        }
    }

    fn drop_channel(&mut self, channel: &str) {
        self.stream.take_unshown(channel);
        if channel.starts_with(METERS_PREFIX) {
            self.stream.meters.drop_channel(channel, &mut self.stream.counters);
        } else if channel == NOTICES_CHANNEL {
            self.stream.notices.clear(&mut self.stream.counters);
        }
    }

    fn detail_pending(&self, request_id: u64) -> bool {
        self.stream.pending_details.iter().any(|(id, _)| *id == request_id)
    }

    fn take_detail(&mut self, request_id: u64) -> Option<String> {
        let i = self.stream.pending_details.iter().position(|(id, _)| *id == request_id)?;
        Some(self.stream.pending_details.swap_remove(i).1)
    }

    fn detail_reply(&mut self, request_id: u64, body: String, now_ms: f64) {
        let Some(meter) = self.take_detail(request_id) else {
            self.out.push(Outbound::Error(CoreError::new(
                ErrorCode::BadSnapshot,
                format!("fetched {request_id}: a meter detail no request is waiting for: ignored"),
            )));
            return;
        };
        let (cap, ttl) = (self.cfg.detail_cache_size as usize, self.cfg.detail_ttl_ms);
        let evicted = self.stream.details.insert(&meter, body.clone(), now_ms, cap, ttl);
        self.stream.counters.evictions += evicted;
        self.out.push(Outbound::Detail(DetailEvent { meter, body, cached: false }));
    }

    fn detail_failed(&mut self, request_id: u64, why: &str) {
        if let Some(meter) = self.take_detail(request_id) {
            self.out.push(Outbound::Error(CoreError::new(
                ErrorCode::BadSnapshot,
                format!(
                    "detail of meter '{meter}' could not be fetched (request {request_id}): {why}"
                ),
            )));
        }
    }

    /// Posts what changed in the stores since the last flush, coalesced per
    /// entity, at most `maxUpdatesPerMessage` entities per message; a
    /// channel's last message carries its `frames`.
    pub(crate) fn stream_flush(&mut self) {
        let max = self.cfg.max_updates_per_message as usize;
        let mut messages = self.stream.meters.flush(max).into_iter().peekable();
        while let Some((channel, upsert, remove)) = messages.next() {
            self.stream.counters.update_messages += 1;
            let last = messages.peek().is_none_or(|(next, _, _)| *next != channel);
            let frames = if last { self.stream.take_unshown(&channel) } else { 0 };
            self.out.push(Outbound::Meters(MetersEvent { channel, upsert, remove, frames }));
        }
        let mut messages = self.stream.notices.flush(max).into_iter().peekable();
        while let Some((upsert, remove)) = messages.next() {
            self.stream.counters.update_messages += 1;
            let frames = if messages.peek().is_none() {
                self.stream.take_unshown(NOTICES_CHANNEL)
            } else {
                0
            };
            self.out.push(Outbound::Notices(NoticesEvent { upsert, remove, frames }));
        }
    }

    /// Delivered deltas of `channel` no message has shown yet, for tests.
    pub fn unshown_frames(&self, channel: &str) -> u32 {
        self.stream.unshown.iter().find(|(c, _)| c == channel).map_or(0, |(_, n)| *n)
    }

    /// The session's part of `stats`, once the session was used.
    pub(crate) fn stream_stats(&self) -> Option<crate::core::event::StreamStats> {
        if !self.stream.used {
            return None;
        }
        let s = &self.stream;
        let c = s.session.counters();
        let queued = s.session.queue_depth() + s.meters.queued() + s.notices.queued();
        Some(crate::core::event::StreamStats {
            state: Some(s.session.state()),
            gaps: c.gaps,
            resumes_ok: c.resumes_ok,
            resumes_failed: c.resumes_failed,
            credit_exhausted: c.credit_exhausted,
            credit_overruns: c.credit_overruns,
            coalesced_updates: s.counters.coalesced_updates,
            snapshot_fetches: c.snapshot_fetches,
            evictions: s.counters.evictions,
            refused_entities: s.counters.refused_entities,
            detail_cache_hits: s.counters.detail_cache_hits,
            reconnects: c.reconnect_attempts,
            queue_depth: queued as u64,
            meter_entities: s.meters.len() as u64,
            notices: s.notices.len() as u64,
            details_cached: s.details.len() as u64,
        })
    }

    /// The stores, for tests and benchmarks.
    pub fn meter_store(&self) -> &MeterStore {
        &self.stream.meters
    }

    /// The notice store, for tests.
    pub fn notice_store(&self) -> &NoticeStore {
        &self.stream.notices
    }

    /// The detail cache, for tests.
    pub fn detail_cache(&self) -> &DetailCache {
        &self.stream.details
    }

    /// The session (read-only), for tests.
    pub fn session(&self) -> &Session {
        &self.stream.session
    }

    /// Stream counters, for tests and `stats`.
    pub fn stream_counters(&self) -> StreamCounters {
        self.stream.counters
    }
}
