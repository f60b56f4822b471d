//! A deterministic simulation of the whole consumption pipeline: meters report to
//! a server that stamps and streams them; a lossy network; a page whose clock is
//! skewed, which forwards frames, hellos and REST results to the engine and runs
//! the REST catch-ups the engine asks for. An oracle knows every reading.
//!
//! Checked on every `totals` event: no bucket shows more than the oracle says
//! the engine has seen (delivered frames) or been told of (delivered REST
//! watermarks); the worker's HLC only grows. At quiescence (production stopped,
//! everything delivered, a covering REST result applied): every kept bucket of
//! every resource equals the oracle exactly and `incomplete` is false.
//!
//! Every server message reaches the engine through the wire (`wire.rs`): encoded
//! as JSON text or a binary frame and decoded as the worker decodes it.

#[path = "../common/rng.rs"]
pub mod rng;
pub mod server;
pub mod wire;

use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::event::{Catchup, Inbound, LiveFrame, Outbound, StreamHello, TotalsEvent};
use meterflow::core::hlc::Hlc;
use meterflow::core::ledger::{hour_of, HOUR_MS};
use meterflow::core::Engine;
use meterflow::wire::decode_message;
use rng::Rng;
use server::{Server, RESOURCES};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;
use wire::Page;

/// An hour boundary: 2025-11-25 10:00:00 UTC.
pub const HOUR_BOUNDARY: f64 = 1_764_064_800_000.0;

/// One schedule: the load, the faults and the engine's limits.
#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub rate: u32,
    pub meters: u32,
    pub start_ms: f64,
    pub duration_ms: f64,
    pub skew_ms: f64,
    pub step_back: Option<(f64, f64)>,
    pub delay_ms: (f64, f64),
    pub drop_p: f64,
    pub dup_p: f64,
    pub reorder_p: f64,
    pub reorder_ms: f64,
    pub disconnects: Vec<(f64, f64)>,
    pub rest_rtt_ms: (f64, f64),
    pub rest_late_p: f64,
    pub rest_old_p: f64,
    pub rest_lag_ms: f64,
    pub hlc_jump: Option<(f64, f64)>,
    pub backfill_p: f64,
    pub rest_recent_p: f64,
    pub binary_keys: bool,
    pub patch: ConfigPatch,
    /// Every fault (drops, duplicates, reorders, late, old or partial REST
    /// results, lagging watermarks) stops this long after the start; `None`:
    /// faults last until production ends.
    pub faults_end_ms: Option<f64>,
    /// Each leg of a REST round trip (request, response) drawn log-uniformly
    /// from this range, independently (asymmetric); `None`: half of a draw from
    /// `rest_rtt_ms` each way.
    pub rest_leg_ms: Option<(f64, f64)>,
    /// Totals must be complete on every `totals` event from this long after the
    /// start (the liveness check); `None`: only at quiescence.
    pub complete_from_ms: Option<f64>,
}

impl Params {
    /// A random schedule at `rate` readings per second.
    pub fn random(seed: u64, rate: u32) -> Params {
        let mut g = Rng(seed ^ 0xA5A5_0000_0000_0000);
        let fast = rate >= 1_000;
        let duration_ms =
            if fast { g.range(8_000.0, 25_000.0) } else { g.range(60_000.0, 200_000.0) };
        let start_ms = (HOUR_BOUNDARY - g.range(0.0, 2.0 * duration_ms)).floor();
        let mut p = Params {
            seed,
            rate,
            meters: if fast { 200 + g.below(400) as u32 } else { 3 + g.below(40) as u32 },
            start_ms,
            duration_ms,
            skew_ms: if g.chance(0.7) { g.range(-300_000.0, 300_000.0).floor() } else { 0.0 },
            step_back: None,
            delay_ms: (2.0, 2.0 + g.range(0.0, 60.0)),
            drop_p: if g.chance(0.5) { g.range(0.0, 0.05) } else { 0.0 },
            dup_p: if g.chance(0.5) { g.range(0.0, 0.05) } else { 0.0 },
            reorder_p: if g.chance(0.5) { 0.1 } else { 0.0 },
            reorder_ms: g.range(0.0, 400.0),
            disconnects: Vec::new(),
            rest_rtt_ms: (20.0, 20.0 + g.range(0.0, 300.0)),
            rest_late_p: if g.chance(0.5) { g.range(0.0, 0.3) } else { 0.0 },
            rest_old_p: if g.chance(0.4) { g.range(0.0, 0.2) } else { 0.0 },
            rest_lag_ms: if g.chance(0.3) { 300_000.0 } else { 0.0 },
            hlc_jump: None,
            backfill_p: if g.chance(0.3) { g.range(0.0, 0.02) } else { 0.0 },
            rest_recent_p: if g.chance(0.3) { g.range(0.0, 0.5) } else { 0.0 },
            binary_keys: g.chance(0.5),
            patch: ConfigPatch { detect_live: Some(g.chance(0.1)), ..Default::default() },
            faults_end_ms: None,
            rest_leg_ms: None,
            complete_from_ms: None,
        };
        if g.chance(0.2) {
            p.step_back = Some((g.range(0.0, duration_ms), g.range(500.0, 3_000.0)));
        }
        for _ in 0..g.below(3) {
            p.disconnects.push((g.range(0.0, duration_ms), g.range(1_000.0, 20_000.0)));
        }
        if g.chance(0.2) {
            p.hlc_jump = Some((g.range(0.0, duration_ms), g.range(1_000.0, 8_000.0)));
        }
        if g.chance(0.2) {
            let per_min = f64::from(rate) * 60.0;
            p.patch.max_pending_readings = Some((per_min * g.range(0.05, 0.5)).max(1.0) as u32);
        }
        if g.chance(0.2) {
            p.patch.dedup_window = Some(64);
        }
        if g.chance(0.3) {
            p.patch.catchup_interval_ms = Some(g.range(5_000.0, 30_000.0));
        }
        p
    }
}

/// Each leg of an honest schedule's REST round trip is at most this long, so a
/// round trip takes 10 ms to 90 s.
pub const HONEST_LEG_MS: (f64, f64) = (5.0, 45_000.0);

/// How long faulty messages still arrive once the faults stop: a frame's delay
/// (under 62 ms) plus a reorder (under 400 ms) plus a duplicate's extra delay
/// (under 500 ms), rounded up, and a reconnect's hello (scheduled 1 s before).
pub const FAULT_SETTLE_MS: f64 = 2_000.0;

/// The liveness bound: how long after the last fault an honest schedule's
/// totals must be complete (and stay so). Once the faults have settled, the
/// fetch policy asks for a catch-up within `catchupIntervalMs` (the longest it
/// waits between two requests while the totals are incomplete: `fetchRetryMs`
/// today, backed-off retries included); that request is served after it was
/// sent, so its watermark covers every reading stamped before, and its answer
/// arrives within one round trip (at most 2 × 45 s); the next tick and totals
/// flush report it. With the defaults: 2 + 60 + 90 + 0.5 + 0.25 = 152.75 s.
pub fn liveness_bound_ms(cfg: &Config) -> f64 {
    FAULT_SETTLE_MS
        + cfg.catchup_interval_ms
        + 2.0 * HONEST_LEG_MS.1
        + cfg.tick_ms
        + cfg.totals_flush_ms
}

impl Params {
    /// An honest server (its stamps and `serverTime` tell the truth, no HLC
    /// jump) behind a network whose faults stop: drops, duplicates, reorders,
    /// disconnects (new epochs), a backward step of the page clock, late, old,
    /// partial and lagging REST results all happen before `faults_end_ms`, and so
    /// does the hour rollover. REST legs are drawn independently (asymmetric)
    /// up to 50 ms, 2.5 s or 45 s per schedule. Production goes on, fault-free,
    /// past the liveness bound, and every totals event after it must be
    /// complete. The page's clock may be skewed by up to ±300 s (that is the
    /// page's clock, not a lie of the server). No meter backfill and no pending
    /// or dedup limits below the load: those make totals incomplete by design.
    pub fn honest(seed: u64) -> Params {
        let mut p = Params::random(seed, 10);
        let mut g = Rng(seed ^ 0x40E5_7000_0000_0000);
        let faults = g.range(60_000.0, 180_000.0);
        let cfg: Config = Config::default().apply(&p.patch).unwrap_or_default();
        p.patch.max_pending_readings = None;
        p.patch.dedup_window = None;
        let bound = liveness_bound_ms(&cfg);
        p.duration_ms = faults + bound + g.range(30_000.0, 120_000.0);
        // The hour rolls over during the faults, at least a minute before they end.
        p.start_ms = (HOUR_BOUNDARY - g.range(0.0, faults - 60_000.0)).floor();
        p.hlc_jump = None;
        p.backfill_p = 0.0;
        p.step_back = p.step_back.map(|(_, ms)| (g.range(0.0, faults - 5_000.0), ms));
        p.disconnects.clear();
        for _ in 0..g.below(4) {
            let len = g.range(1_000.0, 20_000.0);
            p.disconnects.push((g.range(0.0, faults - len - 3_000.0), len));
        }
        if p.binary_keys && p.drop_p > 0.0 {
            // A kind-2 binding lost with a dropped frame leaves its meter's
            // records `unknown_key` until the epoch ends (PROTOCOL.md 3.5), so
            // the faults end with a reconnect, as a WebSocket that lost a frame
            // would; the new epoch starts just after the faults end, so its
            // first frames cannot be dropped.
            let len = g.range(1_000.0, 5_000.0);
            p.disconnects.push((faults - len + 2.0, len));
        }
        let hi = [50.0, 2_500.0, HONEST_LEG_MS.1][g.below(3) as usize];
        p.rest_leg_ms = Some((HONEST_LEG_MS.0, hi));
        p.faults_end_ms = Some(faults);
        p.complete_from_ms = Some(faults + bound);
        p
    }
}

#[derive(Debug)]
enum Ev {
    Produce,
    Frame(Rc<(LiveFrame, Vec<usize>)>),
    Hello(StreamHello),
    Serve { sent_local: f64, quiet: bool },
    Rest { c: Catchup, sent_local: f64 },
    Tick,
    Flush,
    Disconnect(f64),
    Reconnect,
    Jump(f64),
    EndProduction,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub totals_checked: u64,
    pub frames_delivered: u64,
    pub rests_applied: u64,
    pub errors: u64,
    /// Totals events checked complete after the liveness bound.
    pub complete_after_bound: u64,
    /// Payloads decoded from JSON text and from binary frames, and their bytes.
    pub json_messages: u64,
    pub binary_messages: u64,
    pub wire_bytes: u64,
    pub last: Option<TotalsEvent>,
}

struct World {
    p: Params,
    rng: Rng,
    engine: Engine,
    cfg: Config,
    /// The page: every server message goes through the wire to the engine.
    page: Page,
    server: Server,
    queue: BinaryHeap<Reverse<(i64, u64)>>,
    events: HashMap<u64, Ev>,
    next_ev: u64,
    connected: bool,
    quiet: bool,
    /// Oracle: readings the engine has seen or been told of, per (resource, hour).
    bound: HashMap<(usize, i64), i64>,
    in_bound: Vec<bool>,
    /// Oracle: readings delivered to the engine in a frame.
    delivered: Vec<bool>,
    covered_upto: usize,
    max_as_of: Option<Hlc>,
    /// Newest stamp the engine has been shown (frames and hellos): every reading
    /// stamped at or before it is either present or knowably missing.
    seen_stamp: Option<Hlc>,
    last_hlc: Option<Hlc>,
    report: Report,
}

impl World {
    fn at(&mut self, t: f64, ev: Ev) {
        let id = self.next_ev;
        self.next_ev += 1;
        self.events.insert(id, ev);
        self.queue.push(Reverse((t as i64, id)));
    }

    /// No fault applies at `t`: production has ended, or the schedule's faults have.
    fn calm(&self, t: f64) -> bool {
        self.quiet || self.p.faults_end_ms.is_some_and(|end| t >= self.p.start_ms + end)
    }

    /// One leg of a REST round trip.
    fn rest_leg(&mut self) -> f64 {
        match self.p.rest_leg_ms {
            Some((lo, hi)) => (lo.ln() + self.rng.range(0.0, 1.0) * (hi / lo).ln()).exp(),
            None => self.rng.range(self.p.rest_rtt_ms.0, self.p.rest_rtt_ms.1) / 2.0,
        }
    }

    fn local(&self, t: f64) -> f64 {
        let back = match self.p.step_back {
            Some((at, ms)) if t >= self.p.start_ms + at => ms,
            _ => 0.0,
        };
        t + self.p.skew_ms - back
    }

    fn count(&mut self, i: usize) {
        if !self.in_bound[i] {
            self.in_bound[i] = true;
            let r = &self.server.readings[i];
            *self.bound.entry((r.resource, r.hour)).or_default() += r.units;
        }
    }

    fn sync_oracle(&mut self) {
        self.in_bound.resize(self.server.readings.len(), false);
        self.delivered.resize(self.server.readings.len(), false);
        if let Some(a) = self.max_as_of {
            while self.covered_upto < self.server.readings.len()
                && self.server.readings[self.covered_upto].stamp <= a
            {
                self.count(self.covered_upto);
                self.covered_upto += 1;
            }
        }
    }

    fn handle(&mut self, input: Inbound, t: f64) -> Result<(), String> {
        let now = self.local(t);
        for o in self.engine.handle(input, now) {
            match o {
                Outbound::Totals(tot) => {
                    self.check(&tot)?;
                    self.check_live(&tot, t)?;
                }
                Outbound::Fetch(_) => {
                    let out = self.rest_leg();
                    let quiet = self.calm(t);
                    self.at(t + out, Ev::Serve { sent_local: now, quiet });
                }
                Outbound::Error(_) => self.report.errors += 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn check(&mut self, tot: &TotalsEvent) -> Result<(), String> {
        self.report.totals_checked += 1;
        if self.last_hlc.is_some_and(|h| tot.hlc <= h) {
            return Err(format!(
                "worker HLC went backwards: {:?} after {:?}",
                tot.hlc, self.last_hlc
            ));
        }
        self.last_hlc = Some(tot.hlc);
        self.sync_oracle();
        for (r, res) in tot.resources.iter().enumerate() {
            for b in &res.buckets {
                let h = (b.hour_ms / HOUR_MS) as i64;
                let limit = self.bound.get(&(r, h)).copied().unwrap_or(0);
                if b.total > limit {
                    return Err(format!(
                        "{} hour {h} shows {} but only {limit} was seen or covered",
                        res.resource, b.total
                    ));
                }
            }
        }
        // Complete means exactly: each bucket holds what its REST watermark
        // covers plus every reading delivered live, nothing more, nothing less.
        let every = if self.p.rate >= 1_000 { 16 } else { 1 };
        if !tot.incomplete && self.report.totals_checked % every == 0 {
            self.check_complete(tot)?;
        }
        self.report.last = Some(tot.clone());
        Ok(())
    }

    /// Liveness: from `complete_from_ms` on, every totals event is complete.
    fn check_live(&mut self, tot: &TotalsEvent, t: f64) -> Result<(), String> {
        let Some(from) = self.p.complete_from_ms else { return Ok(()) };
        if t < self.p.start_ms + from {
            return Ok(());
        }
        if tot.incomplete {
            return Err(format!(
                "totals still incomplete {:.1} s after the last fault (bound {:.1} s); \
                 counters {:?}; {} frames and {} REST results delivered",
                (t - self.p.start_ms - self.p.faults_end_ms.unwrap_or(0.0)) / 1_000.0,
                (from - self.p.faults_end_ms.unwrap_or(0.0)) / 1_000.0,
                tot.counters,
                self.report.frames_delivered,
                self.report.rests_applied,
            ));
        }
        self.report.complete_after_bound += 1;
        Ok(())
    }

    fn check_complete(&self, tot: &TotalsEvent) -> Result<(), String> {
        // Flat per-(resource, kept hour) slots: this runs on every totals event.
        let hours = tot.resources.first().map_or(0, |r| r.buckets.len());
        let first = tot
            .resources
            .first()
            .and_then(|r| r.buckets.first())
            .map_or(0, |b| (b.hour_ms / HOUR_MS) as i64);
        let slot = |r: usize, h: i64| {
            let k = h - first;
            (0..hours as i64).contains(&k).then(|| r * hours + k as usize)
        };
        let as_of: Vec<Option<Hlc>> =
            tot.resources.iter().flat_map(|r| r.buckets.iter().map(|b| b.as_of)).collect();
        let mut want = vec![0i64; as_of.len()];
        for (i, rd) in self.server.readings.iter().enumerate() {
            let Some(k) = slot(rd.resource, rd.hour) else { continue };
            let present =
                as_of[k].is_some_and(|a| rd.stamp <= a) || self.delivered.get(i) == Some(&true);
            if present {
                want[k] += rd.units;
            } else if self.seen_stamp.is_some_and(|s| rd.stamp <= s) {
                return Err(format!(
                    "totals say complete but reading {} of m{} ({} units, hour {}, stamp {:?}) is missing; the engine has seen stamp {:?}",
                    rd.id, rd.meter, rd.units, rd.hour, rd.stamp, self.seen_stamp
                ));
            }
        }
        for (r, res) in tot.resources.iter().enumerate() {
            for (k, b) in res.buckets.iter().enumerate() {
                let w = want[r * hours + k];
                if b.total != w {
                    return Err(format!(
                        "complete totals: {} hour {} shows {} want {w} (asOf {:?}, counters {:?})",
                        res.resource,
                        (b.hour_ms / HOUR_MS) as i64,
                        b.total,
                        b.as_of,
                        tot.counters
                    ));
                }
            }
        }
        Ok(())
    }

    fn send_frame(&mut self, t: f64, frame: Rc<(LiveFrame, Vec<usize>)>) {
        let calm = self.calm(t);
        if !calm && self.rng.chance(self.p.drop_p) {
            return;
        }
        let mut d = self.rng.range(self.p.delay_ms.0, self.p.delay_ms.1);
        if !calm && self.rng.chance(self.p.reorder_p) {
            d += self.rng.range(0.0, self.p.reorder_ms);
        }
        if !calm && self.rng.chance(self.p.dup_p) {
            let d2 = d + self.rng.range(0.0, 500.0);
            self.at(t + d2, Ev::Frame(frame.clone()));
        }
        self.at(t + d, Ev::Frame(frame));
    }

    fn step(&mut self, t: f64, ev: Ev, cfg: &Config) -> Result<(), String> {
        let frame_ms = 100.0;
        match ev {
            Ev::Produce => {
                if self.quiet {
                    return Ok(());
                }
                // Poisson-free but fractional rates: carry the remainder.
                let n = (f64::from(self.p.rate) * frame_ms / 1_000.0).round().max(1.0) as usize;
                let (frame, idx) = self.server.produce(&mut self.rng, t, n, self.p.backfill_p);
                if self.connected {
                    self.send_frame(t, Rc::new((frame, idx)));
                }
                self.at(t + frame_ms, Ev::Produce);
            }
            Ev::Frame(f) => {
                self.report.frames_delivered += 1;
                self.sync_oracle();
                for &i in &f.1 {
                    self.count(i);
                    self.delivered[i] = true;
                }
                self.seen_stamp = self.seen_stamp.max(Some(f.0.stamp));
                let input = self.page.live(&f.0, self.local(t), &self.cfg)?;
                self.handle(input, t)?;
            }
            Ev::Hello(h) => {
                self.seen_stamp = self.seen_stamp.max(h.stamp);
                let input = self.page.hello(&h, self.local(t), &self.cfg)?;
                self.handle(input, t)?
            }
            Ev::Serve { sent_local, quiet } => {
                let quiet = quiet || self.calm(t);
                let c = if !quiet
                    && !self.server.answered.is_empty()
                    && self.rng.chance(self.p.rest_old_p)
                {
                    let k = self.rng.below(self.server.answered.len() as u64) as usize;
                    self.server.answered[k].clone()
                } else {
                    let lag = if quiet { 0.0 } else { self.p.rest_lag_ms };
                    let recent = !quiet && self.rng.chance(self.p.rest_recent_p);
                    self.server.catchup(t, lag, i64::from(cfg.history_hours), recent)
                };
                let mut back = self.rest_leg();
                if !quiet && self.rng.chance(self.p.rest_late_p) {
                    back += self.rng.range(5_000.0, 40_000.0);
                }
                self.at(t + back, Ev::Rest { c, sent_local });
            }
            Ev::Rest { mut c, sent_local } => {
                c.sent_at_ms = Some(sent_local);
                c.received_at_ms = Some(self.local(t));
                self.max_as_of = self.max_as_of.max(Some(c.as_of));
                self.report.rests_applied += 1;
                let input = self.page.catchup(&c, &self.cfg)?;
                self.handle(input, t)?;
            }
            Ev::Tick => {
                self.handle(Inbound::Tick(Default::default()), t)?;
                self.at(t + cfg.tick_ms, Ev::Tick);
            }
            Ev::Flush => {
                self.handle(Inbound::Flush, t)?;
                self.at(t + cfg.totals_flush_ms, Ev::Flush);
            }
            Ev::Disconnect(len) => {
                if self.connected {
                    self.connected = false;
                    self.at(t + len, Ev::Reconnect);
                }
            }
            Ev::Reconnect => {
                if !self.connected {
                    self.connected = true;
                    let h = self.server.reconnect(t);
                    let d = self.rng.range(self.p.delay_ms.0, self.p.delay_ms.1);
                    self.at(t + d, Ev::Hello(h));
                }
            }
            Ev::Jump(ms) => {
                // A faulty peer pushes the server's HLC ahead of its physical clock.
                let rogue = Hlc { wall_ms: (t + ms) as u64, counter: 0 };
                let _ = self.server.hlc.receive(rogue, t as u64, u64::MAX);
            }
            Ev::EndProduction => {
                self.quiet = true;
                if !self.connected {
                    self.at(t, Ev::Reconnect);
                }
            }
        }
        Ok(())
    }
}

/// Runs one schedule; `Err` names the first violated property.
pub fn run(p: &Params) -> Result<Report, String> {
    let cfg = Config::default().apply(&p.patch).map_err(|e| e.to_string())?;
    let engine = Engine::new(cfg.clone()).map_err(|e| e.to_string())?;
    let mut w = World {
        rng: Rng(p.seed),
        engine,
        cfg: cfg.clone(),
        page: Page::new(p.seed),
        server: Server::new(p.meters, p.binary_keys),
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        next_ev: 0,
        connected: true,
        quiet: false,
        bound: HashMap::new(),
        in_bound: Vec::new(),
        delivered: Vec::new(),
        covered_upto: 0,
        max_as_of: None,
        seen_stamp: None,
        last_hlc: None,
        report: Report::default(),
        p: p.clone(),
    };
    let t0 = p.start_ms;
    w.server.history(&mut w.rng, t0 - 7.0 * HOUR_MS, t0 - 1_000.0, 300);
    // The page connects: the server greets, then streams.
    let hello = w.server.reconnect(t0);
    w.at(t0 + 5.0, Ev::Hello(hello));
    w.at(t0 + 10.0, Ev::Produce);
    w.at(t0 + cfg.tick_ms, Ev::Tick);
    w.at(t0 + cfg.totals_flush_ms, Ev::Flush);
    for &(at, len) in &p.disconnects {
        w.at(t0 + at, Ev::Disconnect(len));
    }
    if let Some((at, ms)) = p.hlc_jump {
        w.at(t0 + at, Ev::Jump(ms));
    }
    let end = t0 + p.duration_ms;
    w.at(end, Ev::EndProduction);
    // Drain: long enough for late REST responses and retries, ending at least
    // ten seconds away from an hour boundary so the final clocks agree on the hour.
    let mut settle = end + 90_000.0;
    let into_hour = settle.rem_euclid(HOUR_MS);
    if !(10_000.0..HOUR_MS - 10_000.0).contains(&into_hour) {
        settle += 30_000.0;
    }
    while let Some(Reverse((t, id))) = w.queue.pop() {
        let t = t as f64;
        if t > settle {
            break;
        }
        if let Some(ev) = w.events.remove(&id) {
            w.step(t, ev, &cfg).map_err(|e| format!("seed {} at t+{}: {e}", p.seed, t - t0))?;
        }
    }
    // The covering catch-up, then the totals.
    let c = w.server.catchup(settle, 0.0, i64::from(cfg.history_hours), false);
    w.step(settle + 1.0, Ev::Rest { c, sent_local: w.local(settle) }, &cfg)?;
    let query = decode_message(&serde_json::json!({ "type": "query", "query": "totals" }), &cfg);
    w.handle(query, settle + 2.0)?;
    w.report.json_messages = w.page.json;
    w.report.binary_messages = w.page.binary;
    w.report.wire_bytes = w.page.bytes;
    let last = w.report.last.clone().ok_or("no totals")?;
    quiescent_check(&w.server, &last).map_err(|e| format!("seed {} at quiescence: {e}", p.seed))?;
    Ok(w.report)
}

fn quiescent_check(server: &Server, t: &TotalsEvent) -> Result<(), String> {
    if t.incomplete {
        return Err(format!("still incomplete: {:?}", t.counters));
    }
    let mut expected: HashMap<(usize, i64), i64> = HashMap::new();
    for r in &server.readings {
        *expected.entry((r.resource, r.hour)).or_default() += r.units;
    }
    for (r, res) in t.resources.iter().enumerate() {
        if res.resource != RESOURCES[r] {
            return Err(format!("resource order: {}", res.resource));
        }
        let mut sum = 0;
        for b in &res.buckets {
            let h = hour_of(b.hour_ms).ok_or("bad hour")?;
            let want = expected.get(&(r, h)).copied().unwrap_or(0);
            if b.total != want {
                return Err(format!(
                    "{} hour {h}: shows {} want {want} (counters {:?})",
                    res.resource, b.total, t.counters
                ));
            }
            sum += want;
        }
        if res.total != sum {
            return Err(format!("{} total {} want {sum}", res.resource, res.total));
        }
    }
    Ok(())
}
