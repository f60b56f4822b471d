//! Anomaly detection (placeholder API; the detection engineer replaces the body).

use super::config::Config;
use super::event::{AnomalyKind, Outbound};
use super::meters::MeterTable;
use super::moments::Moments;
use super::windows::Windows;

/// Per-meter detection state in flat arrays.
#[derive(Clone, Debug, Default)]
pub struct Detector {
    pending: Vec<u32>,
}

impl Detector {
    /// Adds state for a new meter.
    pub fn add_meter(&mut self) {
        self.pending.push(0);
    }

    /// Forgets meter `m`'s detection state and alerts.
    pub fn reset_meter(&mut self, m: usize) {
        if let Some(p) = self.pending.get_mut(m) {
            *p = 0;
        }
    }

    /// Forgets every meter.
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Called before reading `x` at `ts` enters meter `m`'s window, whose moments are `before`.
    #[inline]
    pub fn observe(&mut self, m: usize, _x: f64, _ts: f64, _before: &Moments, _cfg: &Config) {
        if let Some(p) = self.pending.get_mut(m) {
            *p += 1;
        }
    }

    /// One evaluation tick. Returns the number of meters evaluated.
    pub fn tick(
        &mut self,
        _now_ms: f64,
        _w: &Windows,
        _names: &MeterTable,
        _cfg: &Config,
        _out: &mut Vec<Outbound>,
    ) -> u32 {
        let mut n = 0;
        for p in &mut self.pending {
            if *p > 0 {
                n += 1;
                *p = 0;
            }
        }
        n
    }

    /// Kinds meter `m` is currently alerting on.
    pub fn alerts(&self, _m: usize) -> Vec<AnomalyKind> {
        Vec::new()
    }

    /// Timestamp of meter `m`'s newest reading (NaN before any).
    pub fn last_ts(&self, _m: usize) -> f64 {
        f64::NAN
    }

    /// Number of (meter, kind) alerts currently active.
    pub fn active_alerts(&self) -> u32 {
        0
    }

    /// The window changed (memory guard or config): histories may need adjusting.
    pub fn on_window_change(&mut self, _w: &Windows) {}

    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.pending.capacity() * 4
    }
}
