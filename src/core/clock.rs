//! `ClockSync`: the estimated offset between the worker's clock and the server's,
//! and the *corrected clock* (`local + offset`) the HLC and the hour boundaries run on.
//!
//! Browser clocks are often wrong by minutes, so the worker never compares server
//! stamps with its raw `Date.now()`. The estimator, NTP's clock filter in small:
//!
//! - A **sync sample** comes with each `hello` and each REST result that carries
//!   `serverTime`. With the page's `sentAt`/`receivedAt` around the request, the
//!   sample's offset is `serverTime - (sentAt + receivedAt) / 2` with uncertainty
//!   `± (receivedAt - sentAt) / 2`; without them, the arrival time is used and the
//!   uncertainty is taken as [`UNTIMED_UNCERTAINTY_MS`].
//! - The estimate is the sample with the **smallest uncertainty** among the last
//!   [`SAMPLES`] (a slow round trip cannot drag it off by more than its own half
//!   round trip).
//! - A sample whose |offset| exceeds `maxClockSkewMs` is refused (`clock_ahead`)
//!   and changes nothing.
//! - Until the first sync sample, the first accepted frame stamp gives a
//!   provisional offset (`stamp - arrival`, a lower bound of the true offset by the
//!   network delay); any sync sample replaces it.
//! - Frame stamps never move an established estimate: a server HLC that runs ahead
//!   (pushed by a faulty node) therefore cannot drag the corrected clock with it,
//!   and its frames stay refused by the `maxOffsetMs` check until its clock is sane.
//!
//! Bounds: |offset| <= `maxClockSkewMs`; the estimate's error is at most the
//! chosen sample's uncertainty plus the drift of the two clocks since it was taken.

/// Sync samples remembered.
pub const SAMPLES: usize = 8;
/// Uncertainty assumed for a sync sample without a measured round trip (ms).
pub const UNTIMED_UNCERTAINTY_MS: f64 = 1_000.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    offset_ms: f64,
    uncertainty_ms: f64,
}

/// The offset estimator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClockSync {
    samples: [Sample; SAMPLES],
    /// Samples in `samples` (at most `SAMPLES`), next slot `taken % SAMPLES`.
    taken: usize,
    /// The current estimate: server clock minus worker clock (ms).
    offset_ms: f64,
    uncertainty_ms: f64,
    provisional: bool,
}

/// A refused sync sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SkewRefusal {
    pub offset_ms: f64,
    pub max_skew_ms: f64,
}

impl ClockSync {
    /// The corrected clock at worker time `local_ms`.
    pub fn corrected(&self, local_ms: f64) -> f64 {
        local_ms + self.offset_ms
    }

    /// The current offset estimate (server minus worker, ms).
    pub fn offset_ms(&self) -> f64 {
        self.offset_ms
    }

    /// The uncertainty of the estimate (ms; infinite before any sample).
    pub fn uncertainty_ms(&self) -> f64 {
        if self.taken == 0 && !self.provisional {
            f64::INFINITY
        } else {
            self.uncertainty_ms
        }
    }

    /// Whether any sync sample has been accepted.
    pub fn synced(&self) -> bool {
        self.taken > 0
    }

    /// Adds a sync sample: the server said `server_ms`; the worker sent the request
    /// at `sent_ms` (if known) and got the answer at `received_ms`.
    pub fn sample(
        &mut self,
        server_ms: f64,
        sent_ms: Option<f64>,
        received_ms: f64,
        max_skew_ms: f64,
    ) -> Result<(), SkewRefusal> {
        let (mid, uncertainty) = match sent_ms {
            Some(s) if s.is_finite() && s <= received_ms => {
                ((s + received_ms) / 2.0, (received_ms - s) / 2.0)
            }
            _ => (received_ms, UNTIMED_UNCERTAINTY_MS),
        };
        let offset_ms = server_ms - mid;
        if !(offset_ms.is_finite() && offset_ms.abs() <= max_skew_ms) {
            return Err(SkewRefusal { offset_ms, max_skew_ms });
        }
        if let Some(slot) = self.samples.get_mut(self.taken % SAMPLES) {
            *slot = Sample { offset_ms, uncertainty_ms: uncertainty };
        }
        self.taken += 1;
        self.provisional = false;
        let kept = &self.samples[..self.taken.min(SAMPLES)];
        let best = kept.iter().copied().reduce(|a, b| {
            // On a tie the later slot wins; both are equally precise.
            if b.uncertainty_ms <= a.uncertainty_ms {
                b
            } else {
                a
            }
        });
        if let Some(b) = best {
            self.offset_ms = b.offset_ms;
            self.uncertainty_ms = b.uncertainty_ms;
        }
        Ok(())
    }

    /// A frame stamped at server wall time `stamp_ms` arrived at worker time
    /// `arrival_ms`. Sets a provisional offset if nothing better is known.
    pub fn observe_stamp(&mut self, stamp_ms: f64, arrival_ms: f64, max_skew_ms: f64) {
        if self.taken > 0 || self.provisional {
            return;
        }
        let offset_ms = stamp_ms - arrival_ms;
        if offset_ms.is_finite() && offset_ms.abs() <= max_skew_ms {
            self.offset_ms = offset_ms;
            self.uncertainty_ms = UNTIMED_UNCERTAINTY_MS;
            self.provisional = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_sample_with_the_shortest_round_trip() {
        let mut c = ClockSync::default();
        // Server 120 s ahead. A slow request (400 ms round trip) then a fast one (20 ms).
        assert!(c.sample(1_120_200.0, Some(1_000_000.0), 1_000_400.0, 86_400_000.0).is_ok());
        assert_eq!(c.offset_ms(), 120_000.0);
        assert!(c.sample(1_130_010.0 + 3.0, Some(1_010_000.0), 1_010_020.0, 86_400_000.0).is_ok());
        assert_eq!(c.offset_ms(), 120_003.0);
        assert_eq!(c.uncertainty_ms(), 10.0);
        // A later slow sample that disagrees does not displace the precise one.
        assert!(c.sample(1_150_000.0, Some(1_020_000.0), 1_021_000.0, 86_400_000.0).is_ok());
        assert_eq!(c.offset_ms(), 120_003.0);
    }

    #[test]
    fn refuses_absurd_skew_and_keeps_the_estimate() {
        let mut c = ClockSync::default();
        assert!(c.sample(5_000.0, None, 1_000.0, 86_400_000.0).is_ok());
        let before = c.clone();
        assert!(c.sample(1e15, None, 1_000.0, 86_400_000.0).is_err());
        assert!(c.sample(f64::NAN, None, 1_000.0, 86_400_000.0).is_err());
        assert_eq!(c, before);
    }

    #[test]
    fn frame_stamps_only_bootstrap() {
        let mut c = ClockSync::default();
        c.observe_stamp(61_000.0, 1_000.0, 86_400_000.0);
        assert_eq!(c.offset_ms(), 60_000.0);
        c.observe_stamp(999_000.0, 1_000.0, 86_400_000.0);
        assert_eq!(c.offset_ms(), 60_000.0);
        assert!(c.sample(2_000.0, Some(900.0), 1_100.0, 86_400_000.0).is_ok());
        assert_eq!(c.offset_ms(), 1_000.0);
    }
}
