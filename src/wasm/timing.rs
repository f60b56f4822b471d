//! Timings only the host can take, for `stats` (the core reads no clock):
//! how long a stream delta takes to apply, and how long it waits from its
//! arrival in the worker to the page update that shows it.
//!
//! Each is a fixed ring of the last [`TIMING_SAMPLES`] samples (memory stays
//! flat); percentiles are computed when `stats` is posted.

use crate::core::event::Outbound;

/// Samples kept per timing (a ring; older ones are overwritten).
pub(crate) const TIMING_SAMPLES: usize = 1024;

/// The last [`TIMING_SAMPLES`] durations, in ms.
#[derive(Default)]
pub(crate) struct SampleRing {
    samples: Vec<f64>,
    next: usize,
}

/// A timing as posted in `stats`: `{ p50, p95, p99, max, samples }`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

impl SampleRing {
    pub(crate) fn push(&mut self, ms: f64) {
        let ms = ms.max(0.0);
        if self.samples.len() < TIMING_SAMPLES {
            // Bounded by TIMING_SAMPLES; a failed growth only loses the sample.
            if self.samples.try_reserve(1).is_ok() {
                self.samples.push(ms);
            }
        } else if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = ms;
        }
        self.next = (self.next + 1) % TIMING_SAMPLES;
    }

    /// Nearest-rank percentiles; `None` before the first sample.
    pub(crate) fn summary(&self) -> Option<Summary> {
        if self.samples.is_empty() {
            return None;
        }
        // Sorted as `u64` keys in `f64::total_cmp` order: the module's one
        // `[u64]::sort_unstable` (the kind-3 binding table uses it too) instead
        // of a merge sort and a float sort of its own (docs/SIZE.md).
        let mut sorted: Vec<u64> = self.samples.iter().map(|&x| total_order_key(x)).collect();
        sorted.sort_unstable();
        let at = |q: f64| {
            let i = ((sorted.len() - 1) as f64 * q).round() as usize;
            sorted.get(i).map_or(f64::NAN, |&k| from_total_order_key(k))
        };
        Some(Summary {
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
            samples: sorted.len(),
        })
    }
}

/// `x`'s bits as a `u64` whose order is `f64::total_cmp`'s: a negative value
/// (sign bit set) has all its bits flipped, any other gets the sign bit set.
fn total_order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The inverse of [`total_order_key`].
fn from_total_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// How long stream deltas wait before the page sees them: from the arrival of
/// the oldest delta not yet shown (the moment its socket message is decoded) to
/// the next `totals` or `meters` output. A delta that changes nothing (a
/// duplicate, one buffered for a snapshot) waits for the next update that does.
#[derive(Default)]
pub(crate) struct DeliveryLatency {
    pending_since: Option<f64>,
    ring: SampleRing,
}

impl DeliveryLatency {
    /// A delta arrived at `now`.
    pub(crate) fn arrived(&mut self, now: f64) {
        self.pending_since.get_or_insert(now);
    }

    /// An engine call returned `out` at `now`.
    pub(crate) fn observe(&mut self, out: &[Outbound], now: f64) {
        let Some(since) = self.pending_since else { return };
        if out.iter().any(|o| matches!(o, Outbound::Totals(_) | Outbound::Meters(_))) {
            self.pending_since = None;
            self.ring.push(now - since);
        }
    }

    pub(crate) fn summary(&self) -> Option<Summary> {
        self.ring.summary()
    }
}
