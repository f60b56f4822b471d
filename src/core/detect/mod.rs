//! Anomaly detection: spike (with variance), drift, stuck and silent, with vote-based blip
//! suppression, warm-up, severity and clearing. The rules, with every default,
//! are written for users in `docs/DETECTION.md`.
//!
//! The detector owns no samples: it reads each meter's window and moments from
//! [`Windows`]. Its own state is a few fixed-size records per meter in flat
//! `Vec`s indexed by the dense meter index ([`state`], [`learn`], [`season`], [`excursion`], [`median`]; 292 bytes a
//! meter), plus a list of *dirty* meters, those with readings since their last
//! evaluation.
//!
//! Two entry points, with different budgets:
//!
//! - [`Detector::observe`] runs on the ingest path for every reading, *before*
//!   it enters the window: it scores the reading against the window's moments,
//!   keeps the highest-|z| reading since the last evaluation, the run of
//!   identical values and the newest value and timestamp, and puts the meter on
//!   the dirty list. No division, no square root, no allocation.
//! - [`Detector::tick`] runs once per evaluation interval: one evaluation per
//!   dirty meter ([`evaluate`]), then the silence check, which visits meters
//!   only when one of them can have become silent (see [`SilenceSchedule`]).
//!
//! Invariants: `pending`, `verdicts`, `learned` and `seen` have one entry per meter;
//! `pending[m].new > 0` exactly when `m` is on `dirty`, once; nothing here
//! panics or allocates per reading.
#![forbid(unsafe_code)]

mod evaluate;
mod excursion;
mod learn;
mod median;
mod rules;
mod season;
#[cfg(test)]
mod season_oracle;
mod state;

use super::config::Config;
use super::event::{AnomalyKind, Outbound};
use super::meters::MeterTable;
use super::moments::Moments;
use super::windows::Windows;
use evaluate::{kinds_in, Judge, Scans};
use excursion::Excursion;
use learn::Learned;
use median::Median;
use season::ScanScratch;
use state::{Pending, Verdicts};
use std::collections::VecDeque;

/// Per-meter detection state in flat arrays.
#[derive(Clone, Debug, Default)]
pub struct Detector {
    /// What `observe` collected since each meter's last evaluation.
    pending: Vec<Pending>,
    /// What evaluations remember per meter.
    verdicts: Vec<Verdicts>,
    /// What each meter has learned about its normal behaviour.
    learned: Vec<Learned>,
    /// Each meter's excursion rule state, written by `observe`.
    excursions: Vec<Excursion>,
    /// Each meter's median rule state, written by `observe`.
    medians: Vec<Median>,
    /// Engine time of each meter's last evaluation (−∞ before its first). A
    /// meter's readings arrived at most one tick before this.
    seen: Vec<f64>,
    /// Meters with readings since their last evaluation, in order of first reading.
    dirty: Vec<u32>,
    /// Active (meter, kind) alerts: the set bits of every `Verdicts::active`,
    /// kept as they change (`stats` reads it every tick; counting the bits
    /// read every meter's `Verdicts` again).
    alerts: u32,
    silence: SilenceSchedule,
    /// The window the meters' cached seasonal scan counts
    /// (`season::Season::scan_at`) were computed for: a tick that finds
    /// another window forgets them first.
    scan_window: usize,
    /// The seasonal scan's buffers (two windows of samples at most), kept
    /// so that scans do not allocate.
    scan: ScanScratch,
    /// Meters that owe a seasonal scan (due past `maxScansPerTick`), oldest
    /// first, each once: a tick's scans go to them first, so under a
    /// sustained excess of due scans the meters take turns. Empty but after
    /// a burst; it keeps the room a burst took (at most one entry a meter).
    owed: VecDeque<u32>,
    /// One bit a meter: whether it is in `owed`. Read only where a scan is
    /// due past the budget, and by the tick's payment of owed scans.
    owed_bits: Vec<u64>,
}

/// Whether meter `m`'s bit is set in `bits`.
fn owes(bits: &[u64], m: usize) -> bool {
    bits.get(m / 64).is_some_and(|w| w >> (m % 64) & 1 == 1)
}

/// Sets or clears meter `m`'s bit in `bits` (a meter past them: nothing).
fn set_owes(bits: &mut [u64], m: usize, on: bool) {
    if let Some(w) = bits.get_mut(m / 64) {
        let bit = 1u64 << (m % 64);
        *w = if on { *w | bit } else { *w & !bit };
    }
}

/// When the silence check must next visit the meters.
///
/// `due` is a lower bound of the earliest engine time at which any meter's
/// silence state can change (a reporting meter's `seen + silent_after_ms`, a
/// silent warning's `seen + critical_factor·silent_after_ms`). Ticks before it
/// skip the check; a check recomputes it exactly; an evaluation can only lower
/// it. So with every meter reporting the check runs about once per
/// `silent_after_ms`, not once per tick. `basis` holds the config fields the
/// bound was computed with; when they change the next tick checks.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SilenceSchedule {
    due: f64,
    basis: (u32, u64, u64),
}

impl Default for SilenceSchedule {
    fn default() -> Self {
        SilenceSchedule { due: f64::INFINITY, basis: (0, 0, 0) }
    }
}

impl SilenceSchedule {
    fn basis_of(cfg: &Config) -> (u32, u64, u64) {
        (cfg.warmup, cfg.silent_after_ms.to_bits(), cfg.critical_factor.to_bits())
    }
}

/// Meters' room the first meter reserves at once (at most `maxMeters`): 1.5 MB
/// of detection state, so a large cap with few meters in use costs little.
const FIRST_ROOM: usize = 8_192;

impl Detector {
    /// Reserves room for `extra` more meters in each per-meter table; `false`
    /// if some could not be had (those that could keep their room).
    fn try_reserve(&mut self, extra: usize) -> bool {
        self.pending.try_reserve_exact(extra).is_ok()
            && self.verdicts.try_reserve_exact(extra).is_ok()
            && self.learned.try_reserve_exact(extra).is_ok()
            && self.excursions.try_reserve_exact(extra).is_ok()
            && self.medians.try_reserve_exact(extra).is_ok()
            && self.seen.try_reserve_exact(extra).is_ok()
    }

    /// Adds state for a new meter; `cap_meters` (the engine's `maxMeters`)
    /// bounds the room reserved ahead.
    pub fn add_meter(&mut self, cap_meters: usize) {
        // The first meter reserves for the cap at once, up to `FIRST_ROOM`, so
        // 5,000 meters under `maxMeters: 5000` have exactly their room (the
        // estimate in `bytes` counts capacity, and the per-meter budget is
        // tight). Past it the tables double (at least 64), never past
        // `cap_meters`. They grew by an eighth: a join of 50,000 meters then
        // moved them 16 times, copying 366,000 meters' state (110 MB, seven
        // times their final size, each copy into memory not yet touched):
        // 5–14 % of that join natively (docs/PERFORMANCE.md, "A meter's
        // first reading"); doubling moves them 3 times (57,000 meters'
        // state). If a doubling
        // cannot be had, the eighths follow; each step leaves the tables it
        // outgrew behind as holes in wasm's linear memory, which the rings'
        // page-sized chunks fill.
        if self.pending.capacity() == 0 {
            let _room = self.try_reserve(cap_meters.clamp(1, FIRST_ROOM));
        }
        if self.pending.len() == self.pending.capacity() {
            let len = self.pending.len();
            let step = |s: usize| s.max(64).min(cap_meters.saturating_sub(len)).max(1);
            if !self.try_reserve(step(len)) {
                let extra = step(len / 8);
                self.pending.reserve_exact(extra);
                self.verdicts.reserve_exact(extra);
                self.learned.reserve_exact(extra);
                self.excursions.reserve_exact(extra);
                self.medians.reserve_exact(extra);
                self.seen.reserve_exact(extra);
            }
        }
        self.pending.push(Pending::default());
        self.verdicts.push(Verdicts::default());
        self.learned.push(Learned::default());
        self.excursions.push(Excursion::default());
        self.medians.push(Median::default());
        self.seen.push(f64::NEG_INFINITY);
        if self.owed_bits.len() * 64 < self.pending.len() {
            self.owed_bits.push(0);
        }
        // The dirty list never holds a meter twice, so this capacity means
        // `observe` never reallocates.
        let want = self.pending.capacity();
        if self.dirty.capacity() < want {
            self.dirty.reserve_exact(want - self.dirty.len());
        }
    }

    /// Forgets meter `m`'s detection state and alerts (no `cleared` is sent: the
    /// page asked for the reset).
    pub fn reset_meter(&mut self, m: usize) {
        let Some(p) = self.pending.get_mut(m) else { return };
        if p.new > 0 {
            // Rare (a reset between a reading and the next tick); keeps the dirty
            // list free of duplicates.
            self.dirty.retain(|&d| d as usize != m);
        }
        *p = Pending::default();
        if let Some(v) = self.verdicts.get_mut(m) {
            self.alerts -= v.active.count_ones();
            *v = Verdicts::default();
        }
        if let Some(l) = self.learned.get_mut(m) {
            *l = Learned::default();
        }
        if let Some(e) = self.excursions.get_mut(m) {
            *e = Excursion::default();
        }
        if let Some(md) = self.medians.get_mut(m) {
            *md = Median::default();
        }
        if let Some(s) = self.seen.get_mut(m) {
            *s = f64::NEG_INFINITY;
        }
        if owes(&self.owed_bits, m) {
            // Rare (a reset while a burst's scans are owed).
            set_owes(&mut self.owed_bits, m, false);
            self.owed.retain(|&o| o as usize != m);
        }
    }

    /// Forgets every meter.
    pub fn clear(&mut self) {
        *self = Detector::default();
    }

    /// Scores reading `x` at `ts` for meter `m` against `before`, the window's
    /// moments before the reading enters it, and marks the meter dirty.
    ///
    /// Its z is `(x − mean) / s` with `s² = floored_variance` (see
    /// `docs/DETECTION.md`). Only the reading with the largest |z| since the
    /// last evaluation is kept, compared as `d²·s_peak² > d_peak²·s²` to avoid a
    /// division per reading.
    #[inline]
    pub fn observe(&mut self, m: usize, x: f64, ts: f64, before: &Moments, cfg: &Config) {
        let Some(p) = self.pending.get_mut(m) else { return };
        let mean = before.mean();
        // `floored_variance(..)` bit for bit with two `max` (branches in V8's
        // code) instead of four, as the evaluation does (`rules`' oracle).
        let var = rules::max_select(before.variance(), rules::variance_floor(mean, cfg));
        let d = x - mean;
        // A reading rounded to a quantum q carries a rounding error of
        // variance q²/12: a meter that mostly reads one value of a coarse
        // quantum has a window spread below that, and its one-step moves
        // would score as spikes (docs/DETECTION.md, "Quantised meters").
        let q = self.medians.get(m).map_or(0.0, |md| excursion::quantum(md.step));
        let spike_var = rules::max_select(var, Median::rounding_variance(q));
        if p.new == 0 {
            self.dirty.push(m as u32);
        }
        if p.new == 0 || d * d * p.peak_var > p.peak_d * p.peak_d * spike_var {
            p.peak_d = d;
            p.peak_var = spike_var;
            p.peak_x = x;
            p.peak_ts = ts;
            p.peak_mean = mean;
        }
        if p.run > p.new && x != p.last_x {
            // The run in progress at the last evaluation (it began before the
            // `p.new` readings since) ends here, after exactly `p.run`
            // readings: recorded for `learn_run`, which cannot tell it from
            // the readings that followed when an evaluation sees several.
            if let Some(v) = self.verdicts.get_mut(m) {
                v.ended_run = p.run;
            }
        }
        if let (Some(e), Some(md)) = (self.excursions.get_mut(m), self.medians.get_mut(m)) {
            if let Some(median) = e.observe(x, var, q, &mut md.step, cfg) {
                // A median vote that closes is a finding (`median`), raised
                // as a found excursion is.
                e.found(md.observe(median, mean, spike_var, before.n >= cfg.warmup, cfg));
            }
        }
        p.new = p.new.saturating_add(1);
        p.run = if p.run > 0 && x == p.last_x { p.run.saturating_add(1) } else { 1 };
        p.last_x = x;
        if ts > p.last_ts {
            p.last_ts = ts;
        }
    }

    /// One evaluation tick at engine time `now_ms`: evaluates every meter with
    /// readings since its last evaluation, then checks for silent meters.
    /// Returns the number of meters evaluated. A non-finite `now_ms` evaluates
    /// nothing (the readings wait for the next tick), so no event carries it.
    pub fn tick(
        &mut self,
        now_ms: f64,
        windows: &Windows,
        names: &MeterTable,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) -> u32 {
        if !now_ms.is_finite() {
            return 0;
        }
        if windows.window() != self.scan_window {
            // Rare (memory guard, config): every due count was per `window`.
            for v in &mut self.verdicts {
                v.season.scan_at = 0;
            }
            self.owed.clear();
            self.owed_bits.iter_mut().for_each(|w| *w = 0);
            self.scan_window = windows.window();
        }
        let widening = rules::Widening::of(cfg);
        // The scans owed since earlier ticks first, oldest first.
        let mut scans_left = cfg.max_scans_per_tick;
        if !self.owed.is_empty() {
            scans_left = self.pay_owed_scans(windows, scans_left);
        }
        let alerts = &mut self.alerts;
        let scan = &mut self.scan;
        let owed = &mut self.owed;
        let owed_bits = &mut self.owed_bits;
        let mut judge = Judge {
            now: now_ms,
            windows,
            names,
            cfg,
            out,
            widening,
            alerts,
            scans: Scans { scratch: scan, left: scans_left, owed, owed_bits },
        };
        let mut evaluated = 0u32;
        let mut due = self.silence.due;
        for &m in &self.dirty {
            let m = m as usize;
            let (Some(p), Some(v), Some(l), Some(e), Some(seen)) = (
                self.pending.get_mut(m),
                self.verdicts.get_mut(m),
                self.learned.get_mut(m),
                self.excursions.get_mut(m),
                self.seen.get_mut(m),
            ) else {
                continue;
            };
            if p.new == 0 {
                continue;
            }
            judge.evaluate(m, v, l, p, e.take(), e.coarse());
            p.new = 0;
            *seen = now_ms;
            evaluated += 1;
        }
        if evaluated > 0 {
            // Once, not per meter (a `fmin`, two float selects in wasm): the
            // same bound for every meter evaluated, and `min` is idempotent.
            due = due.min(now_ms + cfg.silent_after_ms);
        }
        self.dirty.clear();
        self.silence.due = due;

        let basis = SilenceSchedule::basis_of(cfg);
        if basis != self.silence.basis || now_ms >= self.silence.due {
            let mut next = f64::INFINITY;
            let meters = self.pending.iter().zip(self.verdicts.iter_mut()).zip(&self.seen);
            for (m, ((p, v), &seen)) in meters.enumerate() {
                next = next.min(judge.check_silence(m, v, seen, p));
            }
            self.silence = SilenceSchedule { due: next, basis };
        }
        evaluated
    }

    /// Runs up to `budget` of the scans owed since earlier ticks, oldest
    /// first; returns the budget left. Out of line: the queue is empty but
    /// after a burst, and the tick's loop is the hot path.
    #[inline(never)]
    fn pay_owed_scans(&mut self, windows: &Windows, budget: u32) -> u32 {
        let mut left = budget;
        while left > 0 {
            let Some(m) = self.owed.pop_front() else { break };
            let m = m as usize;
            let Some(v) = self.verdicts.get_mut(m) else { continue };
            if owes(&self.owed_bits, m) {
                set_owes(&mut self.owed_bits, m, false);
                let ring = windows.newest(m, usize::MAX);
                v.season.rescan(ring, windows.window(), true, &mut self.scan);
                left -= 1;
            }
        }
        left
    }

    /// Whether meter `m` owes a seasonal scan (the tests').
    #[cfg(test)]
    fn owes_scan(&self, m: usize) -> bool {
        owes(&self.owed_bits, m)
    }

    /// Kinds meter `m` is currently alerting on.
    pub fn alerts(&self, m: usize) -> Vec<AnomalyKind> {
        self.verdicts.get(m).map_or_else(Vec::new, |v| kinds_in(v.active))
    }

    /// How many alert kinds are active on meter `m` (`alerts(m).len()`
    /// without building the list).
    pub fn alert_count(&self, m: usize) -> u32 {
        self.verdicts.get(m).map_or(0, |v| v.active.count_ones())
    }

    /// Meter `m`'s current anomaly score in [0, 1] (0 for an unknown meter).
    pub fn score(&self, m: usize) -> f64 {
        self.verdicts.get(m).map_or(0.0, |v| f64::from(v.score()))
    }

    /// Timestamp of meter `m`'s newest reading (NaN before any).
    pub fn last_ts(&self, m: usize) -> f64 {
        match self.pending.get(m) {
            Some(p) if p.run > 0 => p.last_ts,
            _ => f64::NAN,
        }
    }

    /// Number of (meter, kind) alerts currently active.
    pub fn active_alerts(&self) -> u32 {
        debug_assert_eq!(
            self.alerts,
            self.verdicts.iter().map(|v| v.active.count_ones()).sum::<u32>(),
            "the alert count follows every change of an active bit"
        );
        self.alerts
    }

    /// The window changed (memory guard or config). Nothing needs remapping:
    /// detection state counts readings and evaluations, not window positions,
    /// and every evaluation reads the (rebuilt) moments afresh. The spike
    /// widening of a quiet meter follows the new window at its next evaluation,
    /// and what a meter has learned (`learn`) does not depend on the window's length.
    pub fn on_window_change(&mut self, _windows: &Windows) {}

    /// Bytes reserved by the detection state.
    pub fn bytes(&self) -> usize {
        self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.verdicts.capacity() * std::mem::size_of::<Verdicts>()
            + self.learned.capacity() * std::mem::size_of::<Learned>()
            + self.excursions.capacity() * std::mem::size_of::<Excursion>()
            + self.medians.capacity() * std::mem::size_of::<Median>()
            + self.seen.capacity() * std::mem::size_of::<f64>()
            + self.dirty.capacity() * std::mem::size_of::<u32>()
            + self.scan.bytes()
            + self.owed.capacity() * std::mem::size_of::<u32>()
            + self.owed_bits.capacity() * std::mem::size_of::<u64>()
            + std::mem::size_of::<Detector>()
    }
}

#[cfg(test)]
mod tests;
