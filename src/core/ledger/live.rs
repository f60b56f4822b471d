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
use crate::core::groups::LoggedReading;
use crate::core::keys::{KeyTable, PendingNames};

/// A key's value in a ledger key table: meter `m` and resource `r`.
fn pack(m: u32, r: usize) -> u64 {
    (u64::from(m) << 8) | (r as u64 & 0xFF)
}

/// The engine's meter table as the ledger sees it: look an id up, check a new
/// one would be accepted, intern it (giving it anomaly state). A meter is
/// interned only when one of its readings is counted.
pub trait MeterIds {
    /// The dense index of `id`, if it is tracked.
    fn find(&self, id: &str) -> Option<u32>;
    /// `Ok` if `id` is valid and a new meter would fit.
    fn check_new(&self, id: &str) -> Result<(), CoreError>;
    /// How many more meters `maxMeters` leaves room for.
    fn room(&self) -> usize;
    /// The dense index of `id`, interning it if new.
    fn intern(&mut self, id: &str) -> Result<u32, CoreError>;
}

/// The meter table handed to [`Ledger::on_live`].
pub type InternMeter<'a> = dyn MeterIds + 'a;

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
        let was_engaged = self.engaged;
        self.meter_hours.set_time(now_ms);
        self.on_live_frame(f, now_ms, cfg, intern, out);
        // Before the first frame, the stream was not seen: readings stamped
        // before it are missing from the per-meter rows (a stamp refused as
        // too far ahead stands for no later than the corrected clock).
        let first = (!was_engaged).then(|| f.stamp.min(self.now_stamp(now_ms + cfg.max_offset_ms)));
        self.note_missed(first);
    }

    fn on_live_frame(
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
        self.end_pending_episode(cfg, out);
        let accepted = self.receive(f.stamp, "frame", now_ms, cfg, out);
        // The stamp the frame's position and needs are recorded at: a stamp
        // refused for its clock records needs only up to the corrected clock
        // (see `Ledger::need_stamp`). Readings are counted at `f.stamp`, and
        // only when it was accepted (then the two are equal).
        let need = self.need_stamp(f.stamp, accepted, now_ms, cfg);
        let Some(ci) = self.cursor_index(&f.channel, cfg) else {
            self.channel_refused(&f.channel, Some(need), cfg, now_ms, out);
            return;
        };
        let place = self
            .cursors
            .get_mut(ci)
            .map(|c| c.place(f.epoch, f.seq, need, cfg.max_missing_seqs as usize));
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
        // A straggler from an older epoch cannot use the current epoch's keys.
        let keys = match place {
            Some(FramePlace::OldEpoch) => None,
            _ => Some(ci),
        };
        // Bindings apply even when the frame's clock is refused: they are the
        // epoch's, and the later frames of the epoch name their keys only.
        let causes = self.apply_frame(f, keys, accepted, cfg, intern, out);
        if !accepted {
            // The frame's readings are the server's; a REST result whose asOf
            // reaches this stamp will carry them.
            self.add_need(need);
            self.dirty = true;
            self.ask(FetchReason::Clock, now_ms, out);
            return;
        }
        if causes.refused || causes.unverifiable || causes.overflow {
            self.add_need(need);
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

    /// Applies the frame's bindings, then (if `accepted`) its readings. Binary
    /// keys resolve through cursor `keys` (the channel's current epoch), or
    /// through the frame's own bindings only.
    fn apply_frame(
        &mut self,
        f: &LiveFrame,
        keys: Option<usize>,
        accepted: bool,
        cfg: &Config,
        intern: &mut InternMeter<'_>,
        out: &mut Vec<Outbound>,
    ) -> Causes {
        let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
        let mut causes = Causes { refused: !f.errors.is_empty(), ..Default::default() };
        for e in &f.errors {
            sink.push_with(|| e.clone());
        }
        // Bind keys: this frame's table (JSON, or a straggler) or the epoch's (binary).
        let persistent = match f.scope {
            KeyScope::Stream => keys,
            KeyScope::Batch => None,
        };
        let mut local_keys = KeyTable::new(UNBOUND_KEY);
        let mut local_pending = PendingNames::default();
        // Resources first: the key table below borrows the cursor.
        let resources: Vec<Option<usize>> =
            f.bindings.iter().map(|b| self.resource(&b.resource)).collect();
        let (table, pending) = match persistent.and_then(|ci| self.cursors.get_mut(ci)) {
            Some(cursor) => cursor.keys_mut(),
            None => (&mut local_keys, &mut local_pending),
        };
        // The epoch's table persists: its oldest waiting name makes room.
        let evict = persistent.is_some();
        for (b, resource) in f.bindings.iter().zip(resources) {
            // Check key and resource first: a refused binding must not use up a meter slot.
            if b.key >= cfg.max_stream_keys {
                sink.push_with(|| {
                    CoreError::new(
                        ErrorCode::KeyOutOfRange,
                        format!("key {} >= maxStreamKeys {}", b.key, cfg.max_stream_keys),
                    )
                });
                continue;
            }
            pending.remove(b.key);
            let packed = match resource {
                None => {
                    sink.push_with(|| {
                        CoreError::new(
                            ErrorCode::UnknownResource,
                            format!(
                                "meter '{}': resource '{}' is not configured",
                                b.meter, b.resource
                            ),
                        )
                    });
                    UNBOUND_KEY
                }
                Some(r) => match intern.find(&b.meter) {
                    Some(m) => pack(m, r),
                    None => {
                        // The meter is interned when one of its readings is counted.
                        let waiting = intern.check_new(&b.meter).and_then(|()| {
                            // A frame's own table is bounded by the frame; the
                            // epoch's keeps as many waiting names as there is room.
                            let room = intern.room();
                            let cap = if evict { room } else { usize::MAX };
                            match pending.insert(b.key, &b.meter, r as u8, cap, evict) {
                                true => Ok(()),
                                false => Err(CoreError::new(
                                    ErrorCode::MeterCapacity,
                                    format!("meter '{}' refused: with the {room} new meters named before it, maxMeters is reached", b.meter),
                                )),
                            }
                        });
                        if let Err(e) = waiting {
                            sink.push(e);
                        }
                        UNBOUND_KEY
                    }
                },
            };
            if table.bind(b.key, packed, cfg.max_stream_keys).is_err() {
                pending.remove(b.key);
                sink.push_with(|| {
                    CoreError::new(
                        ErrorCode::OutOfMemory,
                        format!("no memory to bind key {}", b.key),
                    )
                });
            }
        }
        if !accepted {
            sink.finish();
            return causes;
        }
        let stamp = f.stamp;
        let stamp_hour = hour_of(stamp.wall_ms as f64).unwrap_or(i64::MAX);
        let mut held = self.buckets.pending();
        let max_pending = u64::from(cfg.max_pending_readings);
        let n = f.keys.len().min(f.ids.len()).min(f.ts.len()).min(f.amounts.len());
        // Room for the whole frame's feed up front, so the pushes below never
        // reallocate; without it the readings still count, only not in windows.
        let feed = cfg.detect_live && self.feed.try_reserve(n).is_ok();
        let mut overflowed = 0u64;
        if cfg.detect_live && !feed {
            sink.push_with(|| CoreError::new(
                ErrorCode::OutOfMemory,
                format!("no memory to feed this frame's {n} readings to the anomaly windows; they still count in the totals"),
            ));
        }
        for i in 0..n {
            let (key, id, ts, amount) = (f.keys[i], f.ids[i], f.ts[i], f.amounts[i]);
            let pos = f.positions.get(i).map_or(i, |&p| p as usize);
            let mut packed = table.get(key);
            if packed == UNBOUND_KEY && pending.get(key).is_none() {
                causes.refused = true;
                sink.push_with(|| {
                    CoreError::at(
                        ErrorCode::UnknownKey,
                        pos,
                        format!("record names key {key}, which is bound to no accepted meter"),
                    )
                });
                continue;
            }
            let r = match pending.get(key) {
                Some((_, r)) if packed == UNBOUND_KEY => usize::from(r),
                _ => (packed & 0xFF) as usize,
            };
            let Some(hour) = hour_of(ts).map(|h| h.min(stamp_hour)) else {
                causes.refused = true;
                sink.push_with(|| {
                    CoreError::at(
                        ErrorCode::BadTimestamp,
                        pos,
                        format!("timestamp {ts} is not finite"),
                    )
                });
                continue;
            };
            match self.buckets.place(hour) {
                HourPlace::Kept => {}
                HourPlace::Late => {
                    self.counters.late += 1;
                    sink.push_with(|| CoreError::at(
                        ErrorCode::LateReading,
                        pos,
                        format!("reading {id} of key {key} is for hour {hour}, which has rolled off; counted as late"),
                    ));
                    continue;
                }
                HourPlace::Future => {
                    causes.refused = true;
                    sink.push_with(|| {
                        CoreError::at(
                            ErrorCode::BadTimestamp,
                            pos,
                            format!("timestamp {ts} is more than an hour past the current hour"),
                        )
                    });
                    continue;
                }
            }
            let decimals = self.resources.get(r).map_or(0, |s| s.decimals);
            let units = match amount.to_units(decimals) {
                Ok(u) if u >= 0 => u,
                _ => {
                    causes.refused = true;
                    sink.push_with(|| CoreError::at(
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
                // In the REST total, which cannot be split by meter: the
                // per-meter rows count it live, each (meter, id) once.
                // A row rebuilt at or after this stamp holds it already.
                let rebuilt = self.meter_hours.rebuilt_at(r, hour).is_some_and(|w| stamp <= w);
                match packed {
                    UNBOUND_KEY if rebuilt => self.meter_hours.miss_series_through(hour),
                    UNBOUND_KEY => self.meter_hours.miss_through(hour),
                    _ => match self.ids.check((packed >> 8) as usize, id) {
                        IdCheck::New => {
                            let (m, wall) = ((packed >> 8) as u32, stamp.wall_ms as f64);
                            if rebuilt {
                                self.meter_hours.add_series(m, r, hour, ts, units, wall);
                            } else if !self.meter_hours.add_reading(m, r, hour, ts, units, wall) {
                                self.row_log.forget(stamp);
                            }
                        }
                        IdCheck::Duplicate => {}
                        IdCheck::Unverifiable if rebuilt => {
                            self.meter_hours.miss_series_through(hour)
                        }
                        IdCheck::Unverifiable => self.meter_hours.miss_through(hour),
                    },
                }
                continue;
            }
            if held >= max_pending {
                self.counters.overflow += 1;
                overflowed += 1;
                causes.overflow = true;
                continue;
            }
            if packed == UNBOUND_KEY {
                // The meter's first counted reading: intern it now.
                let interned = match pending.get(key) {
                    Some((name, _)) => intern.intern(name),
                    None => continue,
                };
                pending.remove(key);
                match interned {
                    Ok(m) => {
                        packed = pack(m, r);
                        if table.bind(key, packed, cfg.max_stream_keys).is_err() {
                            sink.push_with(|| {
                                CoreError::at(
                                    ErrorCode::OutOfMemory,
                                    pos,
                                    format!("no memory to bind key {key}"),
                                )
                            });
                        }
                    }
                    Err(e) => {
                        causes.refused = true;
                        sink.push(CoreError { position: u32::try_from(pos).ok(), ..e });
                        continue;
                    }
                }
            }
            let m = (packed >> 8) as u32;
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
                sink.push_with(|| {
                    CoreError::at(ErrorCode::BadValue, pos, "amount overflows the bucket total")
                });
                continue;
            }
            if !self.meter_hours.add_reading(m, r, hour, ts, units, stamp.wall_ms as f64) {
                self.row_log.forget(stamp);
            } else if self.as_of.is_none_or(|a| stamp > a) {
                let stamp = stamp.packed();
                self.row_log.push(LoggedReading {
                    meter: m,
                    resource: r as u8,
                    hour,
                    units,
                    stamp,
                });
            }
            held += 1;
            self.counters.live_counted += 1;
            self.dirty = true;
            if feed {
                let value = units as f64 / 10f64.powi(i32::from(decimals));
                self.feed.push((m, ts, value));
            }
        }
        if causes.overflow {
            // Once per episode: the rest of it is counted and reported when it ends.
            if self.pending_refused == 0 {
                sink.push_with(|| CoreError::new(
                    ErrorCode::PendingLimit,
                    format!(
                        "maxPendingReadings ({}) reached: live readings wait for the next catch-up (reported once; pending_limit_cleared counts them when room returns)",
                        cfg.max_pending_readings
                    ),
                ));
            }
            self.pending_refused = self.pending_refused.saturating_add(overflowed);
        }
        sink.finish();
        causes
    }
}
