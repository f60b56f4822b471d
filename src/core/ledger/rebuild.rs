//! Rebuilding the per-meter rows from a catch-up that lists per-meter hours
//! (docs/LEDGER.md, "Groups", "Rebuilding rows from a catch-up").
//!
//! A catch-up at watermark `W` holds every reading the server stamped at or
//! before `W`; the row log ([`RowLog`]) holds every live reading a row took
//! stamped after the previously applied watermark. So for each kept hour of
//! the result's range that is not listed as a resource total, every meter's
//! row is set exactly to its catch-up value (0 if not listed) plus the logged
//! readings of that meter and hour stamped after `W`; the column remembers
//! `W`, so a reading stamped at or before it arriving later is not added to
//! the row again. The groups' sums of those hours are then recomputed from
//! the rows (the columns are dirty).
//!
//! The rebuild is checked before it changes a row: if the log forgot a
//! reading stamped after `W` (`maxRowLogReadings`), or a meter the result
//! names cannot be tracked, it is refused with a `rebuild_refused` warning,
//! the rows stay as they were and the hours stay `incomplete`: a total that
//! might be wrong is never shown as complete.

use rustc_hash::FxHashSet;

use super::live::InternMeter;
use super::{hour_of, Ledger};
use crate::core::error::WarningCode;
use crate::core::event::{Outbound, WarningEvent};
use crate::core::groups::RowLog;
use crate::core::hlc::Hlc;
use crate::core::ledger::event::Catchup;

impl Ledger {
    /// The live readings kept for rebuilds.
    pub fn row_log(&self) -> &RowLog {
        &self.row_log
    }

    /// `(rebuilds, rebuilds refused)` since start.
    pub fn rebuilds(&self) -> (u64, u64) {
        (self.rebuilds, self.rebuilds_refused)
    }

    /// After catch-up `c` over hours `from..=to` was applied (its buckets and
    /// watermark, before the log is pruned to it): rebuilds the rows of the
    /// kept hours it lists per meter, or refuses with a warning. Returns the
    /// hour the next page should list per meter down from, when the rows
    /// became exact down to an hour above the oldest kept one while an
    /// older kept hour is still missed (the server cut the per-meter list).
    pub(super) fn rebuild_rows(
        &mut self,
        c: &Catchup,
        (from, to): (i64, i64),
        intern: &mut InternMeter<'_>,
        out: &mut Vec<Outbound>,
    ) -> Option<i64> {
        if !c.buckets.iter().any(|b| b.meter.is_some()) {
            return None;
        }
        let current = self.buckets.current()?;
        let oldest = current - self.buckets.history();
        let (lo, hi) = (from.max(oldest), to.min(current));
        if lo > hi {
            return None;
        }
        let w = c.as_of;
        let nres = self.resources.len();
        let span = (hi - lo + 1) as usize;
        // `(r, hour - lo)` listed as a resource total: its rows are not rebuilt.
        let mut total_listed = vec![false; nres * span];
        let mut items: Vec<(&str, usize, usize, i64)> = Vec::new();
        for b in &c.buckets {
            let (Some(r), Some(h)) = (self.resource(&b.resource), hour_of(b.hour_ms)) else {
                continue;
            };
            if !(lo..=hi).contains(&h) {
                continue;
            }
            let k = (h - lo) as usize;
            let decimals = self.resources.get(r).map_or(0, |s| s.decimals);
            match (&b.meter, b.total.to_units(decimals)) {
                (None, _) => {
                    if let Some(t) = total_listed.get_mut(r * span + k) {
                        *t = true;
                    }
                }
                (Some(m), Ok(u)) if u > 0 => items.push((m.as_str(), r, k, u)),
                _ => {}
            }
        }
        // Check before changing anything: the log, then the meters named.
        let refuse = |why: String, out: &mut Vec<Outbound>| {
            out.push(Outbound::Warning(WarningEvent {
                code: WarningCode::RebuildRefused,
                message: format!(
                    "catch-up asOf {}.{}: per-meter rows of hours {lo}..={hi} not rebuilt: {why}; the rows stay as they were and the groups stay incomplete until a later catch-up",
                    w.wall_ms, w.counter
                ),
                count: None,
            }));
        };
        if !self.row_log.can_rebuild(w) {
            let lost = self.row_log.lost().unwrap_or(Hlc { wall_ms: 0, counter: 0 });
            self.rebuilds_refused += 1;
            refuse(
                format!(
                    "live readings stamped up to {}.{} were forgotten past maxRowLogReadings ({})",
                    lost.wall_ms,
                    lost.counter,
                    self.row_log.cap()
                ),
                out,
            );
            return None;
        }
        let mut unknown: FxHashSet<&str> = FxHashSet::default();
        for &(m, ..) in &items {
            if intern.find(m).is_none() {
                unknown.insert(m);
            }
        }
        let problem = if unknown.len() > intern.room() {
            Some(format!(
                "{} meter(s) it names are not tracked and maxMeters leaves room for {}",
                unknown.len(),
                intern.room()
            ))
        } else {
            unknown.iter().find_map(|m| intern.check_new(m).err()).map(|e| e.message)
        };
        if let Some(why) = problem {
            self.rebuilds_refused += 1;
            refuse(why, out);
            return None;
        }
        // Apply: track the meters named (a catch-up's per-meter total is the
        // meter's consumption, as accepted as a reading), then the columns.
        let mut resolved: Vec<(u32, usize, usize, i64)> = Vec::with_capacity(items.len());
        for &(name, r, k, u) in &items {
            match intern.find(name).map_or_else(|| intern.intern(name), Ok) {
                Ok(m) => resolved.push((m, r, k, u)),
                Err(e) => {
                    self.rebuilds_refused += 1;
                    refuse(e.message, out);
                    return None;
                }
            }
        }
        let rows_needed = resolved.iter().map(|x| x.0 as usize + 1).max().unwrap_or(0);
        if !self.meter_hours.grow_to(rows_needed) {
            self.rebuilds_refused += 1;
            refuse("no memory for the meters' rows".to_string(), out);
            return None;
        }
        let mut cols: Vec<Option<usize>> = vec![None; nres * span];
        for r in 0..nres {
            for k in 0..span {
                let i = r * span + k;
                if total_listed.get(i) == Some(&false) {
                    if let Some(c) = cols.get_mut(i) {
                        *c = self.meter_hours.rebuild_column(r, lo + k as i64, w);
                    }
                }
            }
        }
        let col = |r: usize, k: usize| cols.get(r * span + k).copied().flatten();
        for &(m, r, k, u) in &resolved {
            if let Some(c) = col(r, k) {
                self.meter_hours.add_at(m, c, u);
            }
        }
        for e in self.row_log.after(w) {
            let k = e.hour - lo;
            if (0..span as i64).contains(&k) {
                if let Some(c) = col(usize::from(e.resource), k as usize) {
                    self.meter_hours.add_at(e.meter, c, e.units);
                }
            }
        }
        self.rebuilds += 1;
        // The hours whose every resource was rebuilt: the contiguous run
        // ending at the newest of them. Every row of the run is exact, and
        // if nothing after `W` was missed (every need covered) those hours
        // hold every reading. A body listing every hour per meter rebuilds
        // all of `lo..=hi`; one the server cut (or a page, whose newer hours
        // come as resource totals) a run above or below others.
        let rebuilt = |k: usize| (0..nres).all(|r| col(r, k).is_some());
        let top = (0..span).rev().find(|&k| rebuilt(k))?;
        let bottom = (0..=top).rev().take_while(|&k| rebuilt(k)).last().unwrap_or(top);
        let (run_lo, run_hi) = (lo + bottom as i64, lo + top as i64);
        if self.need_max().is_some_and(|n| n > w) {
            return None;
        }
        self.meter_hours.rebuilt(run_lo, run_hi);
        if run_lo == lo && run_hi == hi {
            self.rows_rebuilt_through = self.rows_rebuilt_through.max(Some(w));
        }
        // Rows below the run may still miss readings: the next page lists
        // per meter the hours down from the newest of them.
        self.meter_hours.rows_missed_through().filter(|&m| m >= oldest && m < run_lo)
    }
}
