//! One evaluation of one meter, and the silence check.
//!
//! An evaluation turns what [`Pending`] collected since the meter's last one
//! into a breach / no-breach verdict per kind, then [`Judge::settle`] applies the
//! alert life cycle, the same for every kind:
//!
//! - not active: raise when the kind's rule says so (spike: votes; drift:
//!   consecutive breaches; stuck: the breach itself);
//! - active: clear after `clear_after` evaluations in a row without a breach,
//!   otherwise re-raise once, as critical, if a breach meets the critical rule
//!   while the alert is still a warning. Nothing else is repeated.

use super::super::config::Config;
use super::super::event::{AnomalyEvent, AnomalyKind, ClearedEvent, Outbound, Severity};
use super::super::meters::MeterTable;
use super::super::moments::Moments;
use super::super::windows::Windows;
use super::learn::{Learned, Teach, SPIKE_CAP_G2, VARIANCE_HOLD_U2};
use super::rules;
use super::season::{ScanScratch, Season};
use super::state::{index, Pending, Verdicts, KINDS};
use std::collections::VecDeque;

/// What an anomaly event reports about the reading (or statistic) behind it.
pub(super) struct Finding {
    pub z: f64,
    pub value: f64,
    pub mean: f64,
    pub std: f64,
    pub ts: f64,
    pub evaluations: u32,
    pub critical: bool,
    /// The evidence over the threshold, squared (`rules::score` grades it).
    pub u2: f64,
}

/// The context of one tick: engine time, the windows, names and the outputs.
pub(super) struct Judge<'a> {
    pub now: f64,
    pub windows: &'a Windows,
    pub names: &'a MeterTable,
    pub cfg: &'a Config,
    pub out: &'a mut Vec<Outbound>,
    /// The spike widening's constants, once a tick.
    pub widening: rules::Widening,
    /// The detector's count of active alerts, kept with each bit of
    /// `Verdicts::active` set or cleared here.
    pub alerts: &'a mut u32,
    /// The tick's seasonal scans.
    pub scans: Scans<'a>,
}

/// A tick's seasonal scans: the buffers, the budget left and the meters
/// that owe one. Apart from `Judge`, so that the seasonal evaluation, out of
/// line, borrows this and not the whole judge.
pub(super) struct Scans<'a> {
    /// The seasonal scan's buffers, reused by every scan.
    pub scratch: &'a mut ScanScratch,
    /// Seasonal scans this tick may still run (`maxScansPerTick`).
    pub left: u32,
    /// The meters that owe a scan, oldest first (`Detector::owed`).
    pub owed: &'a mut VecDeque<u32>,
    /// One bit a meter: whether it is in `owed`.
    pub owed_bits: &'a mut Vec<u64>,
}

impl Judge<'_> {
    /// Evaluates meter `m` over the readings summarised in `r`, judging each
    /// kind against what the meter has learned (`l`), then learning from it.
    /// `excursion_u2` is what the excursion rule found since (`excursion`),
    /// `coarse` whether the window's spread was within the meter's rounding
    /// (`Excursion::coarse`).
    pub fn evaluate(
        &mut self,
        m: usize,
        v: &mut Verdicts,
        l: &mut Learned,
        r: &Pending,
        excursion_u2: f64,
        coarse: bool,
    ) {
        let cfg = self.cfg;
        let mo = self.windows.moments(m);
        let n = f64::from(mo.n);
        let warm = mo.n >= cfg.warmup;
        let mean = mo.mean();
        let var = mo.variance();
        // The floor alone (the stuck rule's test below), then the floored
        // variance from it: `floored_variance(var, ..)` bit for bit, with two
        // `max` (branches in V8's code) instead of four (`rules`).
        let floor = rules::variance_floor(mean, cfg);
        let fvar = rules::max_select(var, floor);
        let critical_factor = cfg.critical_factor;

        // Drift's statistic first (settled below, after spike): a level shift
        // also inflates the window variance, and is drift's to report.
        let trained = l.trained(cfg);
        let d = mean - l.slow;
        let scale2 = l.drift_scale2(fvar, n);
        let limit2 = cfg.drift_z * cfg.drift_z * scale2;
        let drift_u2 = if trained { d * d / limit2 } else { 0.0 };
        let drift_breach = warm && drift_u2 > 1.0;

        // Variance: the window's variance against the meter's long-run one, in
        // units of the meter's own normal excess, carried by at least
        // `VARIANCE_READINGS` readings (`learn`). Judged once trained and not
        // while drift breaches, alerts or alerted within the window's readings
        // (a level that returns leaves its step in the window); a breach is a spike breach (an
        // explosion of variance is reported as a spike, see docs/DETECTION.md).
        let judged = trained
            && !drift_breach
            && !v.is_active(index(AnomalyKind::Drift))
            && v.drift_quiet >= mo.n;
        let var_u2 = if judged { l.variance_u2(&mo, fvar, v.vscale2) } else { 0.0 };

        // Spike: the largest |z| since the last evaluation, its variance floored
        // by the meter's long-run window variance, against the threshold in
        // force, then the vote over the last `spike_votes_of` evaluations.
        // |z| > t is tested as d² > t²·s², without a square root or division.
        let threshold = cfg.spike_z * f64::from(v.widen);
        let spike_var = l.spike_var(r.peak_var);
        let peak_u2 = r.peak_d * r.peak_d / (threshold * threshold * spike_var);
        // Seasonal: the newest readings against one period before (`season`).
        // A meter without a period whose scan is not due (most meters) passes
        // with one comparison; the rest is out of line.
        let due = v.season.scan_due(m, l.readings, r.new, self.windows.window());
        let season_u2 = if v.season.period != 0 || due {
            season(
                self.windows,
                self.cfg,
                &mut self.scans,
                m,
                &mut v.season,
                (due, r.new),
                threshold,
                mean,
            )
        } else {
            0.0
        };
        // An excursion found (`excursion`) already spans `spikeVotesNeeded`
        // readings that returned: it raises without waiting for the vote.
        let spike_u2 = rules::max_select(
            rules::max_select(rules::max_select(peak_u2, var_u2), season_u2),
            excursion_u2,
        );
        let breach = warm && spike_u2 > 1.0;
        v.votes =
            if warm { ((v.votes << 1) | u32::from(breach)) & rules::vote_mask(cfg) } else { 0 };
        if v.votes == 0 {
            // `widen(tails(..))` without a branch on the kurtoses (whether
            // they are above 0, which is smaller: coin tosses per meter);
            // the config's part once a tick (`rules::Widening`).
            let (window_g2, long_g2) = (mo.excess_kurtosis(), l.excess_kurtosis());
            v.widen = self.widening.of_tails(window_g2, long_g2, var, l.var) as f32;
        }
        let raise =
            breach && (v.votes.count_ones() >= cfg.spike_votes_needed || excursion_u2 > 1.0);
        let votes = v.votes;
        self.settle(m, v, AnomalyKind::Spike, breach, raise, || {
            let std = spike_var.sqrt();
            let z = r.peak_d / std;
            Finding {
                z,
                value: r.peak_x,
                mean: r.peak_mean,
                std,
                ts: r.peak_ts,
                evaluations: rules::vote_span(votes),
                critical: z.abs() >= critical_factor * threshold
                    || var_u2.max(season_u2).max(excursion_u2) >= critical_factor * critical_factor,
                u2: spike_u2,
            }
        });

        // Drift: the window mean against the meter's slow baseline, in units of
        // the meter's own learned distance between the two (see `learn`).
        let breach = drift_breach;
        v.drift_run = if breach { v.drift_run.saturating_add(1) } else { 0 };
        let raise = u32::from(v.drift_run) >= cfg.drift_consecutive;
        let run = v.drift_run;
        let slow = l.slow;
        self.settle(m, v, AnomalyKind::Drift, breach, raise, || {
            let std = scale2.sqrt();
            let z = d / std;
            Finding {
                z,
                value: mean,
                mean: slow,
                std,
                ts: r.last_ts,
                evaluations: u32::from(run),
                critical: z.abs() >= critical_factor * cfg.drift_z,
                u2: drift_u2,
            }
        });
        // Learn, but not from a drift incident (`learn::Teach::drift`).
        let drift_active = v.is_active(index(AnomalyKind::Drift));
        if drift_active {
            v.drift_held = v.drift_held.saturating_add(r.new);
            v.drift_quiet = 0;
        } else {
            v.drift_held = 0;
            v.drift_quiet = v.drift_quiet.saturating_add(r.new);
        }
        // Nor the long-run variance from a variance incident, nor from a
        // window that still holds a spike incident's readings (`spike_recent`).
        // One test in the common case (no spike alert, no flag); the rest out of line.
        let spike_bits = (1 << index(AnomalyKind::Spike)) | SPIKE_RECENT;
        let recent = (v.active | v.critical) & spike_bits != 0 && spike_recent(v, l, fvar, &mo);
        // The variance rule's learning holds while it breaches, and from
        // half its limit on (`learn::VARIANCE_HOLD_U2`) on a light-tailed
        // meter with no spike incident in view: an explosion's build-up is
        // not learned. A window that holds a spike incident learns capped
        // terms instead; a heavy-tailed meter (a tap's bursts) learns its
        // wide swings of window variance as before.
        let var_hold = warm
            && (var_u2 > 1.0
                || (var_u2 > VARIANCE_HOLD_U2 && !recent && l.excess_kurtosis() < SPIKE_CAP_G2));
        v.var_held = if var_hold { v.var_held.saturating_add(r.new) } else { 0 };
        if warm {
            let teach = Teach::drift(drift_active, v.drift_held, v.drift_quiet, cfg)
                .variance(var_hold, v.var_held, recent, cfg);
            l.learn_moments(&mo, fvar, r.new, limit2, teach, &mut v.vscale2, cfg);
        }

        // Stuck: a run of identical readings `stuckFactor` times longer than the
        // meter's own longest at that kind of value, while the window still had
        // variance above the floor (an always-flat meter is not stuck). Once
        // raised it stays while the run lasts, even after the run fills the window.
        // A window whose spread is within the meter's rounding (`coarse`) does
        // not count as varying: its runs are the rounding's, not the meter's.
        let stuck = index(AnomalyKind::Stuck);
        l.learn_run(r.run, r.last_x, r.new, v.ended_run, v.is_active(stuck));
        v.ended_run = 0;
        v.stuck_evals = if r.run <= r.new { 1 } else { v.stuck_evals.saturating_add(1) };
        let spread = var > floor && !coarse;
        let limit = l.stuck_limit(r.last_x, cfg);
        let judged = warm && l.judges_run(r.run, cfg) && (spread || v.is_active(stuck));
        let stuck_u = if judged { f64::from(r.run) / limit } else { 0.0 };
        let breach = stuck_u >= 1.0;
        let evals = v.stuck_evals;
        let std = fvar.sqrt();
        self.settle(m, v, AnomalyKind::Stuck, breach, breach, || Finding {
            z: (r.last_x - mean) / std,
            value: r.last_x,
            mean,
            std,
            ts: r.last_ts,
            evaluations: evals,
            critical: f64::from(r.run) >= critical_factor * limit,
            u2: stuck_u * stuck_u,
        });

        // The meter's score: its strongest evidence in this evaluation (not
        // during warm-up, when no rule may breach).
        let u2 = if warm {
            let u2 = rules::max_unbranched(spike_u2, drift_u2);
            rules::max_unbranched(u2, stuck_u * stuck_u)
        } else {
            0.0
        };
        v.score_u2 = u2;

        // Silent: the meter has just reported, so this evaluation is normal.
        self.settle(m, v, AnomalyKind::Silent, false, false, || unreachable_finding(r));
    }

    /// Checks meter `m`, last evaluated at engine time `seen`, for silence.
    /// Returns the earliest engine time at which its silence state can change.
    pub fn check_silence(&mut self, m: usize, v: &mut Verdicts, seen: f64, r: &Pending) -> f64 {
        let cfg = self.cfg;
        let i = index(AnomalyKind::Silent);
        if seen == f64::NEG_INFINITY || (self.windows.len(m) as f64) < f64::from(cfg.warmup) {
            // Never evaluated, or not warm: only a new reading can change that.
            return f64::INFINITY;
        }
        let after = cfg.silent_after_ms;
        let critical_after = cfg.critical_factor * after;
        let silence = self.now - seen;
        let critical = silence >= critical_after;
        let u = silence / after;
        if u > 1.0 && rules::score(u * u) as f32 > v.score() {
            // The larger score (as an f32, as it is read) wins.
            v.score_u2 = u * u;
        }
        if silence > after && (!v.is_active(i) || (critical && v.critical & (1 << i) == 0)) {
            v.calm[i] = 0;
            let finding = self.silent_finding(m, r);
            self.raise(m, v, AnomalyKind::Silent, Finding { critical, u2: u * u, ..finding });
        }
        if !v.is_active(i) {
            seen + after
        } else if v.critical & (1 << i) == 0 {
            seen + critical_after
        } else {
            f64::INFINITY
        }
    }

    fn silent_finding(&self, m: usize, r: &Pending) -> Finding {
        let mo = self.windows.moments(m);
        let mean = mo.mean();
        let std = rules::floored_variance(mo.variance(), mean, self.cfg).sqrt();
        Finding {
            z: 0.0,
            value: r.last_x,
            mean,
            std,
            ts: r.last_ts,
            evaluations: 0,
            critical: false,
            u2: 0.0,
        }
    }

    /// Applies one evaluation's verdict for `kind` to the alert life cycle.
    /// `finding` is only computed when an event is emitted.
    fn settle(
        &mut self,
        m: usize,
        v: &mut Verdicts,
        kind: AnomalyKind,
        breach: bool,
        raise: bool,
        finding: impl FnOnce() -> Finding,
    ) {
        let i = index(kind);
        v.calm[i] = if breach { 0 } else { v.calm[i].saturating_add(1) };
        if !v.is_active(i) {
            if raise {
                self.raise(m, v, kind, finding());
            }
        } else if u32::from(v.calm[i]) >= self.cfg.clear_after {
            v.active &= !(1 << i);
            v.critical &= !(1 << i);
            *self.alerts -= 1;
            self.out.push(Outbound::Cleared(ClearedEvent {
                meter: self.names.name(m).to_string(),
                kind,
                at: self.now,
            }));
        } else if breach && v.critical & (1 << i) == 0 {
            let f = finding();
            if f.critical {
                self.raise(m, v, kind, f);
            }
        }
    }

    /// Marks `kind` active for meter `m` at the finding's severity and says so.
    fn raise(&mut self, m: usize, v: &mut Verdicts, kind: AnomalyKind, f: Finding) {
        let bit = 1 << index(kind);
        *self.alerts += u32::from(v.active & bit == 0);
        v.active |= bit;
        let severity = if f.critical {
            v.critical |= bit;
            Severity::Critical
        } else {
            v.critical &= !bit;
            Severity::Warning
        };
        self.out.push(Outbound::Anomaly(AnomalyEvent {
            meter: self.names.name(m).to_string(),
            kind,
            severity,
            z: f.z,
            value: f.value,
            mean: f.mean,
            std: f.std,
            ts: f.ts,
            evaluations: f.evaluations,
            score: rules::score(f.u2),
        }));
    }
}

/// A spare bit of `Verdicts::critical` (bits 0..4 are the kinds'): the
/// window may still hold a spike incident's readings.
const SPIKE_RECENT: u8 = 1 << 4;

/// Whether the window may still hold a spike incident's readings (updates the
/// flag), so that what the long-run variance and 4th moment learn is capped
/// (`learn::Teach::var_cap`; docs/DETECTION.md, "Spike incidents are not
/// learned"): set when a spike alert is active on a meter whose long-run
/// excess kurtosis is below [`SPIKE_CAP_G2`], kept until the alert has
/// cleared and the window's (floored) variance `var` and 4th moment are
/// within the caps (`Learned::within_caps`). A failure dip's readings, learned as
/// the meter's normal spread and tails, widened the threshold 4 → 8 and
/// doubled the variance z divides by, and the meter's next dip was missed.
#[cold]
#[inline(never)]
fn spike_recent(v: &mut Verdicts, l: &Learned, var: f64, mo: &Moments) -> bool {
    let spike = index(AnomalyKind::Spike);
    if v.is_active(spike) {
        if v.critical & SPIKE_RECENT == 0 && l.excess_kurtosis() < SPIKE_CAP_G2 {
            v.critical |= SPIKE_RECENT;
        }
    } else if v.critical & SPIKE_RECENT != 0 && l.within_caps(var, mo) {
        v.critical &= !SPIKE_RECENT;
    }
    v.critical & SPIKE_RECENT != 0
}

/// The silent verdict of an evaluation never breaches, so its finding is never
/// read; it still must be a value, and a harmless one.
fn unreachable_finding(r: &Pending) -> Finding {
    Finding {
        z: 0.0,
        value: r.last_x,
        mean: 0.0,
        std: 0.0,
        ts: r.last_ts,
        evaluations: 0,
        critical: false,
        u2: 0.0,
    }
}

/// Kinds whose bit is set in `mask`, in [`KINDS`] order.
pub(super) fn kinds_in(mask: u8) -> Vec<AnomalyKind> {
    KINDS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, k)| *k).collect()
}

/// The seasonal rule's evaluation of meter `m` (window mean `mean`) over its
/// newest `new` readings against threshold `t`, after a rescan if `due`: its
/// evidence squared (`Season::judge`). Out of line: most evaluations do not
/// come here, and a scan's frame is large.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn season(
    windows: &Windows,
    cfg: &Config,
    scans: &mut Scans,
    m: usize,
    s: &mut Season,
    (due, new): (bool, u32),
    t: f64,
    mean: f64,
) -> f64 {
    let ring = windows.newest(m, usize::MAX);
    let window = windows.window();
    // A full window's due scan past this tick's budget is owed, not lost:
    // the tick after a burst stays bounded. The tick ran the scans owed
    // before (`Detector::tick`) first, so a meter still owing here has its
    // turn in the queue already.
    let full = ring.0.len() + ring.1.len() == window;
    let mut scan = due && (!full || scans.left > 0);
    if due && full && !scan && !super::owes(scans.owed_bits, m) {
        if scans.owed.try_reserve(1).is_ok() {
            super::set_owes(scans.owed_bits, m, true);
            scans.owed.push_back(m as u32);
        } else {
            // No room to queue it: the scan runs now, past the budget.
            scan = true;
        }
    }
    if due && full && scan {
        scans.left = scans.left.saturating_sub(1);
    }
    s.rescan(ring, window, scan, scans.scratch);
    let floor2 = rules::floored_variance(0.0, mean, cfg);
    s.judge(ring, new, t, floor2)
}
