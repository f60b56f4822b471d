//! Applying a live frame: clock check, stream position, then each reading.
//!
//! Per reading, in order: resolve its key; find its bucket (the hour of its `ts`,
//! or of its stamp if earlier: a meter clock running ahead cannot put consumption
//! in an hour the server has not reached); skip it if the bucket's REST part
//! already covers its stamp; refuse it past `maxPendingReadings`; deduplicate
//! it by `(meter, id)`; count it. Every reading the server stamped that ends up
//! neither counted, covered nor a duplicate records a need, so the totals say
//! `incomplete` until a REST result covers it: nothing is lost, only deferred.

use super::buckets::HourPlace;
use super::cursor::{FramePlace, UNBOUND_KEY};
use super::dedup::IdCheck;
use super::event::{FetchReason, LiveFrame};
use super::{hour_of, Ledger};
use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode, ErrorSink};
use crate::core::event::{KeyScope, Outbound};

/// Resolves a meter id to its dense index, interning it (and giving it anomaly
/// state) if new. Provided by the engine, which owns the meter table.
pub type InternMeter<'a> = dyn FnMut(&str) -> Result<u32, CoreError> + 'a;

/// Why a frame's readings need a catch-up, found while applying it.
#[derive(Default)]
struct Causes {
    refused: bool,
    unverifiable: bool,
    overflow: bool,
}

impl Ledger {
    /// Applies live frame `f` arriving at worker time `now_ms`.
    pub fn on_live(
        &mut self,
        f: &LiveFrame,
        now_ms: f64,
        cfg: &Config,
        intern: &mut InternMeter<'_>,
        out: &mut Vec<Outbound>,
    ) {
        self.engaged = true;
        self.sync.bootstrap(f.stamp.wall_ms as f64, now_ms, cfg.max_clock_skew_ms);
        self.roll(now_ms);
        let accepted = self.receive(f.stamp, "frame", now_ms, cfg, out);
        // A stamp refused for its clock records needs only up to the corrected
        // clock (see `Ledger::need_stamp`): the frame goes on with that stamp.
        let capped;
        let f = match self.need_stamp(f.stamp, accepted, now_ms, cfg) {
            s if s == f.stamp => f,
            stamp => {
                capped = LiveFrame { stamp, ..f.clone() };
                &capped
            }
        };
        let Some(ci) = self.cursor_index(&f.channel, cfg) else {
            self.channel_refused(&f.channel, Some(f.stamp), cfg, now_ms, out);
            return;
        };
        let place = self
            .cursors
            .get_mut(ci)
            .map(|c| c.place(f.epoch, f.seq, f.stamp, cfg.max_missing_seqs as usize));
        match place {
            Some(FramePlace::NewEpoch) => {
                self.counters.gaps += 1;
                self.dirty = true;
                self.ask(FetchReason::Epoch, now_ms, out);
            }
            Some(FramePlace::Gap { .. }) => {
                self.counters.gaps += 1;
                self.dirty = true;
                self.ask(FetchReason::Gap, now_ms, out);
            }
            Some(FramePlace::FilledHole) => self.dirty = true,
            _ => {}
        }
        if !accepted {
            // The frame's readings are the server's; a REST result whose asOf
            // reaches this stamp will carry them.
            self.add_need(f.stamp);
            self.dirty = true;
            self.ask(FetchReason::Clock, now_ms, out);
            return;
        }
        // A straggler from an older epoch cannot use the current epoch's keys.
        let keys = match place {
            Some(FramePlace::OldEpoch) => None,
            _ => Some(ci),
        };
        let causes = self.apply_readings(f, keys, cfg, intern, out);
        if causes.refused || causes.unverifiable || causes.overflow {
            self.add_need(f.stamp);
            self.dirty = true;
        }
        if causes.overflow {
            self.ask(FetchReason::PendingLimit, now_ms, out);
        } else if causes.unverifiable {
            self.ask(FetchReason::Dedup, now_ms, out);
        } else if causes.refused {
            self.ask(FetchReason::Refused, now_ms, out);
        }
    }

    /// Applies the frame's readings; binary keys resolve through cursor `keys`
    /// (the channel's current epoch), or through the frame's own bindings only.
    fn apply_readings(
        &mut self,
        f: &LiveFrame,
        keys: Option<usize>,
        cfg: &Config,
        intern: &mut InternMeter<'_>,
        out: &mut Vec<Outbound>,
    ) -> Causes {
        let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
        let mut causes = Causes { refused: !f.errors.is_empty(), ..Default::default() };
        for e in &f.errors {
            sink.push(e.clone());
        }
        // Bind keys: this frame's table (JSON, or a straggler) or the epoch's (binary).
        let persistent = match f.scope {
            KeyScope::Stream => keys,
            KeyScope::Batch => None,
        };
        let mut local: Vec<u64> = Vec::new();
        for b in &f.bindings {
            // Check key and resource first: a refused binding must not use up a meter slot.
            if b.key >= cfg.max_stream_keys {
                sink.push(CoreError::new(
                    ErrorCode::KeyOutOfRange,
                    format!("key {} >= maxStreamKeys {}", b.key, cfg.max_stream_keys),
                ));
                continue;
            }
            let resolved = match self.resource(&b.resource) {
                None => {
                    sink.push(CoreError::new(
                        ErrorCode::UnknownResource,
                        format!("meter '{}': resource '{}' is not configured", b.meter, b.resource),
                    ));
                    None
                }
                Some(r) => match intern(&b.meter) {
                    Ok(m) => Some((m, r)),
                    Err(e) => {
                        sink.push(e);
                        None
                    }
                },
            };
            let packed = resolved.map_or(UNBOUND_KEY, |(m, r)| (u64::from(m) << 8) | r as u64);
            match persistent.and_then(|ci| self.cursors.get_mut(ci)) {
                Some(cursor) => cursor.bind(b.key, packed),
                None => {
                    let k = b.key as usize;
                    if k >= local.len() {
                        local.resize(k + 1, UNBOUND_KEY);
                    }
                    if let Some(slot) = local.get_mut(k) {
                        *slot = packed;
                    }
                }
            }
        }
        let table: &[u64] = match persistent.and_then(|ci| self.cursors.get(ci)) {
            Some(cursor) => cursor.keys(),
            None => &local,
        };
        let stamp = f.stamp;
        let stamp_hour = hour_of(stamp.wall_ms as f64).unwrap_or(i64::MAX);
        let mut pending = self.buckets.pending();
        let max_pending = u64::from(cfg.max_pending_readings);
        let n = f.keys.len().min(f.ids.len()).min(f.ts.len()).min(f.amounts.len());
        for i in 0..n {
            let (key, id, ts, amount) = (f.keys[i], f.ids[i], f.ts[i], f.amounts[i]);
            let pos = f.positions.get(i).map_or(i, |&p| p as usize);
            let packed = table.get(key as usize).copied().unwrap_or(UNBOUND_KEY);
            if packed == UNBOUND_KEY {
                causes.refused = true;
                sink.push(CoreError::at(
                    ErrorCode::UnknownKey,
                    pos,
                    format!("record names key {key}, which is bound to no accepted meter"),
                ));
                continue;
            }
            let (m, r) = ((packed >> 8) as u32, (packed & 0xFF) as usize);
            let Some(hour) = hour_of(ts).map(|h| h.min(stamp_hour)) else {
                causes.refused = true;
                sink.push(CoreError::at(
                    ErrorCode::BadTimestamp,
                    pos,
                    format!("timestamp {ts} is not finite"),
                ));
                continue;
            };
            match self.buckets.place(hour) {
                HourPlace::Kept => {}
                HourPlace::Late => {
                    self.counters.late += 1;
                    sink.push(CoreError::at(
                        ErrorCode::LateReading,
                        pos,
                        format!("reading {id} of meter {m} is for hour {hour}, which has rolled off; counted as late"),
                    ));
                    continue;
                }
                HourPlace::Future => {
                    causes.refused = true;
                    sink.push(CoreError::at(
                        ErrorCode::BadTimestamp,
                        pos,
                        format!("timestamp {ts} is more than an hour past the current hour"),
                    ));
                    continue;
                }
            }
            let decimals = self.resources.get(r).map_or(0, |s| s.decimals);
            let units = match amount.to_units(decimals) {
                Ok(u) if u >= 0 => u,
                _ => {
                    causes.refused = true;
                    sink.push(CoreError::at(
                        ErrorCode::BadValue,
                        pos,
                        format!(
                            "amount {}e-{} is negative, too large or finer than the resolution (10^-{decimals})",
                            amount.mantissa, amount.scale
                        ),
                    ));
                    continue;
                }
            };
            let Some(bucket) = self.buckets.get_mut(r, hour) else {
                self.counters.late += 1;
                continue;
            };
            if bucket.covers(stamp) {
                self.counters.covered += 1;
                continue;
            }
            if pending >= max_pending {
                self.counters.overflow += 1;
                causes.overflow = true;
                continue;
            }
            match self.ids.check(m as usize, id) {
                IdCheck::New => {}
                IdCheck::Duplicate => {
                    self.counters.duplicates += 1;
                    continue;
                }
                IdCheck::Unverifiable => {
                    self.counters.unverifiable += 1;
                    causes.unverifiable = true;
                    continue;
                }
            }
            if bucket.add_live(stamp, units, 1).is_err() {
                causes.refused = true;
                sink.push(CoreError::at(
                    ErrorCode::BadValue,
                    pos,
                    "amount overflows the bucket total",
                ));
                continue;
            }
            pending += 1;
            self.counters.live_counted += 1;
            self.dirty = true;
            if cfg.detect_live {
                let value = units as f64 / 10f64.powi(i32::from(decimals));
                self.feed.push((m, ts, value));
            }
        }
        if causes.overflow {
            sink.push(CoreError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "maxPendingReadings ({}) reached: live readings wait for the next catch-up",
                    cfg.max_pending_readings
                ),
            ));
        }
        sink.finish();
        causes
    }
}
