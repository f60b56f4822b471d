//! The incremental read model (seed §5, Option A): updated by the one writer
//! after every tick, read by every request. Exact totals per resource and hour,
//! exact totals per meter and hour for the newest `meter_hours` hours (one
//! flat `i64` slab of all meters per hour: a meter measures one resource, so
//! meters × hours covers meters × hours × resources), a bounded ring of recent
//! `totals` frames for resume, the latest reading per meter. A request copies
//! what it needs under a read lock; nothing is ever recomputed from history.
//!
//! Invariant: every hour from `meter_from` on that the model holds has a
//! per-meter slab whose sum per resource equals that hour's resource total.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use super::sim::{Reading, DECIMALS, RESOURCES};
use crate::core::decimal::{format_units, Decimal};
use crate::core::event::{KeyScope, LiveBinding, LiveFrame};
use crate::core::hlc::{Hlc, HybridClock};
use crate::wire::binary::{encode_live, TsLayout};

/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 3_600_000;
/// The channel the ledger's live frames travel on.
pub const TOTALS: &str = "totals";

/// One `totals` delta: a tick's readings under one HLC stamp, encoded at most
/// once per format (a resent frame is byte-identical).
#[derive(Debug)]
pub struct Frame {
    pub epoch: u64,
    pub seq: u64,
    pub stamp: Hlc,
    pub readings: Vec<Reading>,
    meter_ids: Arc<Vec<String>>,
    meter_resources: Arc<Vec<usize>>,
    json: OnceLock<Arc<str>>,
    binary: OnceLock<Arc<[u8]>>,
}

impl Frame {
    /// PROTOCOL.md 3.2: JSON text with exact decimal-string amounts.
    pub fn json(&self) -> Arc<str> {
        self.json.get_or_init(|| Arc::from(self.encode_json())).clone()
    }

    /// PROTOCOL.md 3.5: binary kind 2, one shared `ts`; every key it uses is
    /// bound in the frame itself, so any frame decodes on its own (a client that
    /// joins or resumes mid-epoch never meets an unknown key).
    pub fn binary(&self) -> Arc<[u8]> {
        self.binary.get_or_init(|| Arc::from(self.encode_binary())).clone()
    }

    fn encode_json(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(160 + self.readings.len() * 96);
        let _ = write!(
            s,
            r#"{{"type":"frame","channel":"{TOTALS}","epoch":{},"seq":{},"hlc":{{"wallMs":{},"counter":{}}},"readings":["#,
            self.epoch, self.seq, self.stamp.wall_ms, self.stamp.counter
        );
        for (i, r) in self.readings.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let m = r.meter as usize;
            let meter = self.meter_ids.get(m).map_or("", String::as_str);
            let resource =
                self.meter_resources.get(m).and_then(|&x| RESOURCES.get(x)).map_or("", |r| r.0);
            let _ = write!(
                s,
                r#"{{"meter":"{meter}","resource":"{resource}","id":{},"ts":{},"amount":"{}"}}"#,
                r.id,
                r.ts_ms,
                format_units(r.units, DECIMALS)
            );
        }
        s.push_str("]}");
        s
    }

    fn live_frame(&self) -> LiveFrame {
        let n = self.readings.len();
        let mut f = LiveFrame {
            channel: TOTALS.to_string(),
            epoch: self.epoch,
            seq: self.seq,
            stamp: self.stamp,
            scope: KeyScope::Stream,
            bindings: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            amounts: Vec::with_capacity(n),
            positions: Vec::new(),
            errors: Vec::new(),
        };
        for r in &self.readings {
            let m = r.meter as usize;
            f.bindings.push(LiveBinding {
                key: r.meter,
                meter: self.meter_ids.get(m).cloned().unwrap_or_default(),
                resource: self
                    .meter_resources
                    .get(m)
                    .and_then(|&x| RESOURCES.get(x))
                    .map_or("", |r| r.0)
                    .to_string(),
            });
            f.keys.push(r.meter);
            f.ids.push(r.id);
            f.ts.push(r.ts_ms as f64);
            f.amounts.push(Decimal::new(r.units, DECIMALS));
        }
        f
    }

    fn encode_binary(&self) -> Vec<u8> {
        // A tick's readings share one ts, amounts are whole units ≥ 0 far below
        // 2^53, names fit their length fields: the encoder cannot refuse this
        // frame; if it ever did, an empty message says so to the client's
        // decoder rather than a panic here.
        encode_live(&self.live_frame(), DECIMALS, TsLayout::Shared).unwrap_or_default()
    }
}

/// What `/meters/{id}` shows of one meter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterState {
    /// The latest reading, if any.
    pub last: Option<Reading>,
    /// Units counted since the start.
    pub total_units: i64,
    /// Readings counted since the start.
    pub readings: u64,
}

/// Exact totals of one hour, per resource, in units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourTotals {
    /// Hour start, ms.
    pub hour_ms: u64,
    pub units: [i64; 3],
}

/// Per-meter hourly totals copied out of the model for a catch-up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeterHoursView {
    /// Meter index → id and resource index.
    pub meter_ids: Arc<Vec<String>>,
    pub meter_resources: Arc<Vec<usize>>,
    /// `(hour start, units per meter index)`, oldest first.
    pub hours: Vec<(u64, Vec<i64>)>,
}

impl MeterHoursView {
    /// Non-zero per-meter totals listed.
    pub fn entries(&self) -> usize {
        self.hours.iter().map(|(_, u)| u.iter().filter(|&&x| x != 0).count()).sum()
    }
}

/// A catch-up (and `totals` snapshot) as of the model's last frame.
#[derive(Clone, Debug, PartialEq)]
pub struct CatchupView {
    pub epoch: u64,
    pub snapshot_seq: u64,
    /// A `totals` mini-snapshot: the frames after this `seq` are covered.
    pub since_seq: Option<u64>,
    pub as_of: Hlc,
    pub from_hour_ms: u64,
    pub to_hour_ms: u64,
    /// Hours in `from..=to` the model holds as resource totals; hours not
    /// listed here nor in `meters` total 0.
    pub hours: Vec<HourTotals>,
    /// Hours listed per meter instead (a catch-up asked with `meters`).
    pub meters: Option<MeterHoursView>,
}

/// Why a catch-up cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchupRefusal {
    /// `from` is before the oldest hour the model still holds.
    Evicted { oldest_hour_ms: u64 },
    /// `from..=to` spans more than the ledger's 366 days.
    TooLong,
}

/// The read model.
#[derive(Debug)]
pub struct ReadModel {
    epoch: u64,
    seq: u64,
    clock: HybridClock,
    sim_ms: u64,
    hours: VecDeque<HourTotals>,
    max_hours: usize,
    /// The oldest hour still held once older ones were dropped.
    evicted: bool,
    ring: VecDeque<Arc<Frame>>,
    ring_cap: usize,
    /// Readings in the ring, and their cap (the newest frame is always kept).
    ring_readings: usize,
    max_ring_readings: usize,
    meters: Vec<MeterState>,
    meter_ids: Arc<Vec<String>>,
    meter_resources: Arc<Vec<usize>>,
    /// Meter id → index, for `/meters/{id}`.
    index: std::collections::HashMap<String, usize>,
    readings: u64,
    /// Per-meter hourly slabs (`meter_ids.len()` units each), oldest first,
    /// at most `max_meter_hours`.
    meter_hours: VecDeque<(u64, Vec<i64>)>,
    max_meter_hours: usize,
    /// Most non-zero per-meter totals one catch-up lists (older hours past
    /// it are listed as resource totals).
    max_catchup_meter_entries: usize,
    /// The first hour whose per-meter slab is whole (older slabs were dropped,
    /// or an older hour arrived with no room).
    meter_from: u64,
}

impl ReadModel {
    /// An empty model for `meter_ids` (each measuring `meter_resources[i]`) at
    /// simulated time `start_ms`, keeping `max_hours` hours and `ring_cap` frames.
    pub fn new(
        epoch: u64,
        start_ms: u64,
        meter_ids: Vec<String>,
        meter_resources: Vec<usize>,
        max_hours: usize,
        ring_cap: usize,
    ) -> ReadModel {
        let n = meter_ids.len();
        // The clock starts at the start: before the first frame, `asOf` is the
        // start (no reading is stamped at or before it), never the Unix epoch.
        let mut clock = HybridClock::default();
        clock.now(start_ms);
        ReadModel {
            epoch,
            seq: 0,
            clock,
            sim_ms: start_ms,
            hours: VecDeque::new(),
            max_hours: max_hours.max(1),
            evicted: false,
            ring: VecDeque::new(),
            ring_cap: ring_cap.max(1),
            ring_readings: 0,
            max_ring_readings: usize::MAX,
            meters: vec![MeterState::default(); n],
            index: meter_ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect(),
            meter_ids: Arc::new(meter_ids),
            meter_resources: Arc::new(meter_resources),
            readings: 0,
            meter_hours: VecDeque::new(),
            max_meter_hours: 0,
            max_catchup_meter_entries: usize::MAX,
            meter_from: 0,
        }
    }

    /// Also keeps per-meter totals for the newest `hours` hours (0: none);
    /// memory: 8 bytes × meters × `hours`.
    pub fn with_meter_hours(mut self, hours: usize) -> ReadModel {
        self.max_meter_hours = hours;
        self
    }

    /// A catch-up lists at most `max` non-zero per-meter totals: the newest
    /// hours that fit are listed per meter, older ones as resource totals
    /// (still exact; the worker's rows of those hours are then not rebuilt).
    pub fn with_catchup_meter_entries(mut self, max: usize) -> ReadModel {
        self.max_catchup_meter_entries = max;
        self
    }

    /// Per-meter slabs held, oldest first: `(hour start, units per meter index)`.
    pub fn meter_hours(&self) -> &VecDeque<(u64, Vec<i64>)> {
        &self.meter_hours
    }

    /// The first hour a catch-up may list per meter (every reading of every
    /// hour from it on is in a slab held); `None` when none are kept.
    pub fn meter_from(&self) -> Option<u64> {
        (self.max_meter_hours > 0).then_some(self.meter_from)
    }

    /// The oldest hour the model knows every reading of: the oldest held once
    /// an hour was dropped, else the start of the `max_hours` hours up to
    /// `asOf` (there was no reading before the first held).
    pub fn whole_from(&self) -> u64 {
        let to = self.as_of().wall_ms / HOUR_MS * HOUR_MS;
        match (self.evicted, self.hours.front()) {
            (true, Some(h)) => h.hour_ms,
            _ => to.saturating_sub((self.max_hours as u64 - 1) * HOUR_MS),
        }
    }

    /// Meter index → id.
    pub fn meter_ids(&self) -> &Arc<Vec<String>> {
        &self.meter_ids
    }

    fn add_meter(&mut self, hour_ms: u64, m: usize, units: i64) {
        if self.max_meter_hours == 0 || hour_ms < self.meter_from {
            return;
        }
        let i = match self.meter_hours.iter().rposition(|(h, _)| *h <= hour_ms) {
            Some(i) if self.meter_hours[i].0 == hour_ms => i,
            found => {
                let at = found.map_or(0, |i| i + 1);
                if at == 0 && self.meter_hours.len() >= self.max_meter_hours {
                    // Older than every slab held and no room: never listed.
                    self.meter_from = self.meter_from.max(hour_ms + HOUR_MS);
                    return;
                }
                // Drop the oldest slab when full, and reuse it.
                let (at, mut slab) = match self.meter_hours.len() >= self.max_meter_hours {
                    true => match self.meter_hours.pop_front() {
                        Some((h, u)) => {
                            self.meter_from = self.meter_from.max(h + HOUR_MS);
                            (at - 1, u)
                        }
                        None => (at, Vec::new()),
                    },
                    false => (at, Vec::new()),
                };
                slab.clear();
                slab.resize(self.meter_ids.len(), 0);
                self.meter_hours.insert(at, (hour_ms, slab));
                at
            }
        };
        if let Some(u) = self.meter_hours.get_mut(i).and_then(|(_, s)| s.get_mut(m)) {
            *u += units;
        }
    }

    /// The ring also keeps at most `max` readings in all (so its memory does
    /// not grow with the meter count); the newest frame is always kept.
    pub fn with_ring_readings(mut self, max: usize) -> ReadModel {
        self.max_ring_readings = max;
        self
    }

    /// Readings held in the frame ring.
    pub fn ring_readings(&self) -> usize {
        self.ring_readings
    }

    /// Applies one tick's readings (simulated time `ts_ms`): stamps them once,
    /// takes the next `seq`, adds them to the totals, keeps the frame in the ring.
    pub fn apply(&mut self, ts_ms: u64, readings: Vec<Reading>) -> Arc<Frame> {
        self.apply_at(ts_ms, ts_ms, readings)
    }

    /// [`apply`](Self::apply) with the stamp taken at server wall time `wall_ms`
    /// (the clock-skew fault); buckets follow the ledger's rule (the hour of
    /// `min(ts, stamp)`), so the totals stay what a client computes.
    pub fn apply_at(&mut self, ts_ms: u64, wall_ms: u64, readings: Vec<Reading>) -> Arc<Frame> {
        let stamp = self.clock.now(wall_ms);
        self.seq += 1;
        self.sim_ms = self.sim_ms.max(ts_ms);
        for r in &readings {
            let m = r.meter as usize;
            let Some(&resource) = self.meter_resources.get(m) else { continue };
            // The ledger's bucket: the hour of ts, or of the stamp if earlier.
            let hour = r.ts_ms.min(stamp.wall_ms) / HOUR_MS * HOUR_MS;
            self.add(hour, resource, r.units);
            self.add_meter(hour, m, r.units);
            if let Some(s) = self.meters.get_mut(m) {
                s.last = Some(*r);
                s.total_units += r.units;
                s.readings += 1;
            }
            self.readings += 1;
        }
        let frame = Arc::new(Frame {
            epoch: self.epoch,
            seq: self.seq,
            stamp,
            readings,
            meter_ids: self.meter_ids.clone(),
            meter_resources: self.meter_resources.clone(),
            json: OnceLock::new(),
            binary: OnceLock::new(),
        });
        self.ring_readings += frame.readings.len();
        self.ring.push_back(frame.clone());
        while self.ring.len() > 1
            && (self.ring.len() > self.ring_cap || self.ring_readings > self.max_ring_readings)
        {
            if let Some(old) = self.ring.pop_front() {
                self.ring_readings -= old.readings.len();
            }
        }
        frame
    }

    fn add(&mut self, hour_ms: u64, resource: usize, units: i64) {
        // Hours arrive in order (ts and stamps only grow): the newest is last.
        let i = match self.hours.iter().rposition(|h| h.hour_ms <= hour_ms) {
            Some(i) if self.hours[i].hour_ms == hour_ms => i,
            found => {
                let at = found.map_or(0, |i| i + 1);
                self.hours.insert(at, HourTotals { hour_ms, units: [0; 3] });
                if self.hours.len() > self.max_hours {
                    self.hours.pop_front();
                    self.evicted = true;
                    if at == 0 {
                        return;
                    }
                    at - 1
                } else {
                    at
                }
            }
        };
        if let Some(u) = self.hours.get_mut(i).and_then(|h| h.units.get_mut(resource)) {
            *u += units;
        }
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The last frame's `seq` (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The last stamp issued: every reading stamped at or before it is in the model.
    pub fn as_of(&self) -> Hlc {
        self.clock.last()
    }

    /// The end of the last tick applied (simulated ms).
    pub fn sim_ms(&self) -> u64 {
        self.sim_ms
    }

    /// Readings applied since the start.
    pub fn readings(&self) -> u64 {
        self.readings
    }

    /// Frames after `after_seq` still in the ring, oldest first, at most `max`;
    /// `None` when `after_seq + 1` is no longer (or not yet validly) held.
    pub fn frames_after(&self, after_seq: u64, max: usize) -> Option<Vec<Arc<Frame>>> {
        let first = self.ring.front().map_or(self.seq + 1, |f| f.seq);
        if after_seq > self.seq || after_seq + 1 < first {
            return None;
        }
        let skip = (after_seq + 1 - first) as usize;
        Some(self.ring.iter().skip(skip).take(max).cloned().collect())
    }

    /// The hour a `totals` mini-snapshot `since_seq = after` starts from: the
    /// ledger bucket hour of the oldest frame after `after` (the hour of `asOf`
    /// when none is); `None` when that frame is no longer held.
    pub fn hour_after(&self, after: u64) -> Option<u64> {
        let frames = self.frames_after(after, 1)?;
        let Some(f) = frames.first() else {
            return Some(self.as_of().wall_ms / HOUR_MS * HOUR_MS);
        };
        let ms = f.readings.iter().map(|r| r.ts_ms).min().unwrap_or(f.stamp.wall_ms);
        Some(ms.min(f.stamp.wall_ms) / HOUR_MS * HOUR_MS)
    }

    /// The oldest `seq` still in the ring.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.ring.front().map(|f| f.seq)
    }

    /// Every held hour, oldest first.
    pub fn hours(&self) -> &VecDeque<HourTotals> {
        &self.hours
    }

    /// One meter's id, resource and state.
    pub fn meter(&self, id: &str) -> Option<(usize, &str, MeterState)> {
        let i = *self.index.get(id)?;
        Some((i, RESOURCES.get(*self.meter_resources.get(i)?)?.0, *self.meters.get(i)?))
    }

    /// The catch-up for hours from `from_ms`'s hour to the hour of `asOf`,
    /// with the hours held per meter listed per meter when `per_meter`.
    pub fn catchup_per_meter(
        &self,
        from_ms: u64,
        per_meter: bool,
    ) -> Result<CatchupView, CatchupRefusal> {
        self.catchup_page(from_ms, per_meter, None)
    }

    /// [`catchup_per_meter`](Self::catchup_per_meter) listing per meter only
    /// hours up to `to_ms`'s hour (a page, `&to=`): the newest of those that
    /// fit the cap; the hours after it, like the older ones, as resource
    /// totals. The body still covers `from..=asOf`.
    pub fn catchup_page(
        &self,
        from_ms: u64,
        per_meter: bool,
        to_ms: Option<u64>,
    ) -> Result<CatchupView, CatchupRefusal> {
        let mut view = self.catchup(from_ms)?;
        if !per_meter {
            return Ok(view);
        }
        let Some(first) = self.meter_from() else { return Ok(view) };
        let mut first = view.from_hour_ms.max(first);
        let top = to_ms.map_or(view.to_hour_ms, |t| (t / HOUR_MS * HOUR_MS).min(view.to_hour_ms));
        // The newest hours whose non-zero entries fit the cap.
        let mut entries = 0usize;
        for (h, units) in self.meter_hours.iter().rev() {
            if *h < first || *h > top {
                continue;
            }
            entries += units.iter().filter(|&&u| u != 0).count();
            if entries > self.max_catchup_meter_entries {
                first = h + HOUR_MS;
                break;
            }
        }
        if first > top {
            return Ok(view);
        }
        let range = first..=top;
        let hours: Vec<(u64, Vec<i64>)> =
            self.meter_hours.iter().filter(|(h, _)| range.contains(h)).cloned().collect();
        // Every hour in range from `first` on is listed per meter (an hour
        // with no slab had no reading): none as a resource total too.
        view.hours.retain(|h| !range.contains(&h.hour_ms));
        view.meters = Some(MeterHoursView {
            meter_ids: self.meter_ids.clone(),
            meter_resources: self.meter_resources.clone(),
            hours,
        });
        Ok(view)
    }

    /// The catch-up for hours from `from_ms`'s hour to the hour of `asOf`.
    pub fn catchup(&self, from_ms: u64) -> Result<CatchupView, CatchupRefusal> {
        let as_of = self.as_of();
        let to = as_of.wall_ms / HOUR_MS * HOUR_MS;
        let from = (from_ms / HOUR_MS * HOUR_MS).min(to);
        if to - from > 366 * 24 * HOUR_MS {
            return Err(CatchupRefusal::TooLong);
        }
        if self.evicted {
            if let Some(oldest) = self.hours.front() {
                if from < oldest.hour_ms {
                    return Err(CatchupRefusal::Evicted { oldest_hour_ms: oldest.hour_ms });
                }
            }
        }
        let hours =
            self.hours.iter().filter(|h| (from..=to).contains(&h.hour_ms)).copied().collect();
        Ok(CatchupView {
            epoch: self.epoch,
            snapshot_seq: self.seq,
            since_seq: None,
            as_of,
            from_hour_ms: from,
            to_hour_ms: to,
            hours,
            meters: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::Simulator;
    use super::*;

    fn model(sim: &Simulator, hours: usize, ring: usize) -> ReadModel {
        let ids = sim.meters().iter().map(|m| m.id.clone()).collect();
        let res = sim.meters().iter().map(|m| m.resource).collect();
        ReadModel::new(3, sim.start_ms(), ids, res, hours, ring)
    }

    #[test]
    fn totals_equal_the_sum_of_generated_readings_exactly() {
        // Start 20 minutes before an hour so the run crosses a boundary.
        let mut sim = Simulator::new(300, 5, 1_764_000_000_000 - 20 * 60_000);
        let mut m = model(&sim, 48, 16);
        let mut want = std::collections::BTreeMap::<(u64, usize), i64>::new();
        let mut out = Vec::new();
        for _ in 0..4_000 {
            let ts = sim.step(&mut out);
            for r in &out {
                let res = sim.meters()[r.meter as usize].resource;
                *want.entry((r.ts_ms / HOUR_MS * HOUR_MS, res)).or_default() += r.units;
            }
            m.apply(ts, std::mem::take(&mut out));
        }
        let mut got = std::collections::BTreeMap::new();
        for h in m.hours() {
            for (r, u) in h.units.iter().enumerate() {
                if *u != 0 {
                    got.insert((h.hour_ms, r), *u);
                }
            }
        }
        want.retain(|_, u| *u != 0);
        assert_eq!(got, want);
        assert!(m.hours().len() >= 2);
        let c = m.catchup(sim.start_ms() - HOUR_MS).ok();
        assert!(c.is_some_and(|c| c.snapshot_seq == 4_000 && c.hours.len() == m.hours().len()));
    }

    #[test]
    fn fifty_thousand_meters_total_exactly() {
        let mut sim = Simulator::new(50_000, 2, 1_764_000_000_000);
        // At most 4 frames, and at most 150,000 readings: 3 frames of 50,000.
        let mut m = model(&sim, 4, 4).with_ring_readings(150_000);
        let (mut out, mut want) = (Vec::new(), [0i64; 3]);
        for _ in 0..20 {
            let ts = sim.step(&mut out);
            for r in &out {
                want[sim.meters()[r.meter as usize].resource] += r.units;
            }
            m.apply(ts, std::mem::take(&mut out));
        }
        let got = m.hours().iter().fold([0i64; 3], |mut a, h| {
            (0..3).for_each(|r| a[r] += h.units[r]);
            a
        });
        assert_eq!(got, want);
        assert_eq!(m.readings(), 20 * 50_000);
        assert_eq!((m.oldest_seq(), m.ring_readings()), (Some(18), 150_000));
        assert!(
            m.meter("b-49999").is_some()
                || m.meter("w-49999").is_some()
                || m.meter("e-49999").is_some()
        );
    }

    #[test]
    fn ring_and_hours_stay_bounded_and_resume_knows_what_it_holds() {
        let mut sim = Simulator::new(10, 1, 1_764_000_000_000);
        let mut m = model(&sim, 2, 8);
        let mut out = Vec::new();
        for _ in 0..(3 * 7_200 + 10) {
            let ts = sim.step(&mut out);
            m.apply(ts, std::mem::take(&mut out));
        }
        assert_eq!(m.hours().len(), 2);
        assert_eq!(m.oldest_seq(), Some(m.seq() - 7));
        assert!(m.frames_after(m.seq() - 9, 100).is_none());
        assert_eq!(m.frames_after(m.seq() - 8, 100).map(|f| f.len()), Some(8));
        assert_eq!(m.frames_after(m.seq(), 100).map(|f| f.len()), Some(0));
        assert!(m.frames_after(m.seq() + 1, 100).is_none());
        assert!(matches!(m.catchup(sim.start_ms()), Err(CatchupRefusal::Evicted { .. })));
        assert_eq!(m.catchup(0), Err(CatchupRefusal::TooLong));
        let oldest = m.hours()[0].hour_ms;
        assert!(m.catchup(oldest).is_ok());
    }

    #[test]
    fn per_meter_hours_equal_the_generated_readings_and_a_catchup_lists_them_exactly() {
        // 3 hours per meter over a 5-hour run: older slabs are dropped.
        let mut sim = Simulator::new(40, 7, 1_764_000_000_000 - 20 * 60_000);
        let mut m = model(&sim, 48, 16).with_meter_hours(3);
        let mut want = std::collections::BTreeMap::<(u64, usize), i64>::new();
        let mut out = Vec::new();
        // Alternately skewed stamps: some readings bucket at the stamp's hour.
        for i in 0..(5 * 3_600) {
            let ts = sim.step(&mut out);
            let wall = if i % 7 == 0 { ts.saturating_sub(90_000) } else { ts };
            let stamp = m.clock.last().wall_ms.max(wall);
            for r in &out {
                let hour = r.ts_ms.min(stamp) / HOUR_MS * HOUR_MS;
                *want.entry((hour, r.meter as usize)).or_default() += r.units;
            }
            m.apply_at(ts, wall, std::mem::take(&mut out));
        }
        let first = m.meter_from().unwrap_or(u64::MAX);
        assert_eq!(m.meter_hours().len(), 3);
        assert_eq!(first, m.meter_hours()[0].0, "the slabs held are whole from the oldest on");
        let mut got = std::collections::BTreeMap::new();
        for (h, units) in m.meter_hours() {
            for (i, u) in units.iter().enumerate() {
                if *u != 0 {
                    got.insert((*h, i), *u);
                }
            }
        }
        want.retain(|(h, _), u| *h >= first && *u != 0);
        assert_eq!(got, want);
        // Per meter from `first` on, resource totals before it, none twice;
        // per-meter sums equal the resource totals of the same hours.
        let c = m.catchup_per_meter(0, true);
        assert_eq!(c, Err(CatchupRefusal::TooLong));
        let c = m.catchup_per_meter(m.hours()[0].hour_ms, true).ok();
        let Some(c) = c else { return assert!(c.is_some()) };
        let mv = c.meters.clone().unwrap_or_default();
        assert!(c.hours.iter().all(|h| h.hour_ms < first));
        assert!(mv.hours.iter().all(|(h, _)| *h >= first));
        assert_eq!(c.hours.len() + mv.hours.len(), m.hours().len());
        for (h, units) in &mv.hours {
            let mut sum = [0i64; 3];
            for (i, u) in units.iter().enumerate() {
                sum[mv.meter_resources[i]] += u;
            }
            let held = m.hours().iter().find(|x| x.hour_ms == *h).map(|x| x.units);
            assert_eq!(Some(sum), held, "hour {h}");
        }
        assert_eq!(m.catchup_per_meter(first, false).map(|c| c.meters), Ok(None));
        // Capped to fewer entries than two hours hold: only the newest hour
        // is listed per meter, the rest as resource totals.
        let newest = mv.hours.last().map_or(0, |(_, u)| u.iter().filter(|&&x| x != 0).count());
        let m = m.with_catchup_meter_entries(newest + 1);
        let c = m.catchup_per_meter(first, true).ok();
        let Some(c) = c else { return assert!(c.is_some()) };
        let listed: Vec<u64> = c.meters.iter().flat_map(|v| v.hours.iter().map(|h| h.0)).collect();
        assert_eq!(listed, mv.hours.last().map(|h| h.0).into_iter().collect::<Vec<_>>());
        assert_eq!(c.hours.len() + listed.len(), mv.hours.len());
    }

    #[test]
    fn a_frame_encodes_once_and_decodes_to_what_was_applied() {
        use crate::core::config::Config;
        use crate::core::event::Inbound;
        use crate::wire::{decode_binary, decode_text, Arrival, Envelope};
        let mut sim = Simulator::new(20, 9, 1_764_000_000_000);
        let mut m = model(&sim, 4, 4);
        let mut out = Vec::new();
        let ts = sim.step(&mut out);
        let f = m.apply(ts, out);
        assert!(Arc::ptr_eq(&f.json(), &f.json()));
        let cfg = Config::default();
        for inbound in [
            decode_text(Envelope::Live, &f.json(), Arrival::default(), &cfg),
            decode_binary(Envelope::Live, &f.binary(), &cfg),
        ] {
            assert!(matches!(inbound, Inbound::Live(_)), "not a live frame: {inbound:?}");
            let Inbound::Live(got) = inbound else { continue };
            assert_eq!((got.epoch, got.seq, got.stamp), (3, 1, f.stamp));
            assert!(got.errors.is_empty());
            let units: Vec<i64> = got.amounts.iter().map(|a| a.to_units(3).unwrap_or(-1)).collect();
            assert_eq!(units, f.readings.iter().map(|r| r.units).collect::<Vec<_>>());
        }
    }
}
