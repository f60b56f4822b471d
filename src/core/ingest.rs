//! Applying a decoded `ReadingBatch`: resolve keys to meters, validate each
//! record against the clock, score it against the window *before* it enters,
//! then push it.
//!
//! A binding to a meter that is not tracked yet does not intern it: the name
//! waits (`PendingNames`) until one of its readings passes the checks, so
//! readings that are all refused never use up a meter slot.
//!
//! Errors are reported per item with its position, at most
//! `max_errors_per_batch` events per batch plus one summary, so a hostile or
//! broken batch cannot flood the page; every refused record is counted in
//! `readingsRejected`.
//!
//! In a pool (`config.partition` of more than one), every worker may be handed
//! the whole payload: a binding whose meter id hashes to another partition
//! binds its key to `FOREIGN` (no id check, no interning, no pending name), and
//! that key's readings are skipped before any check: neither accepted nor
//! refused, no error, no meter. What belongs to no meter (the items the
//! decoder refused, which it knows by position only, and readings of a key
//! nothing bound) is reported by partition 0 alone, so each is reported and
//! counted once in the pool.

use super::error::{CoreError, ErrorCode, ErrorSink};
use super::event::{KeyScope, ReadingBatch};
use super::keys::{KeyTable, PendingNames};
use super::meters::{check_meter_id, MeterTable};
use super::{add_reading, intern_meter, Engine, ReadingBounds, FOREIGN, UNBOUND};

/// Readings whose ring slots are touched together ahead of their pushes: enough
/// misses in flight to cover a cache miss's latency, few enough that the lines
/// are still in the first-level cache when the pushes reach them. 32 rather
/// than 16: in the browser (`profile-tick.mjs --ingest`, 5,000 meters, five
/// alternated pairs at load 4–7) `handle` took 377 → 333 ms for 4 M
/// readings (faster in 4 of 5 pairs); 64 was then no faster than 32. Since
/// the slots are read in a loop of their own (`RingSlab::warm`), more of
/// them are in flight at once: natively (`path_cpu/decode_handle`, three
/// alternated runs, medians) 550 µs a frame of 10,000 before, 505 with 32
/// ahead, 500 with 64, 128 no less (docs/PERFORMANCE.md). At most
/// `ring::WARM_MAX`.
const WARM_AHEAD: usize = 64;

impl Engine {
    pub(super) fn ingest(&mut self, batch: &ReadingBatch, now_ms: f64) {
        // Plausibility is judged on the corrected clock: a laptop clock that is
        // minutes off must not refuse every reading.
        let bounds = ReadingBounds::new(&self.cfg, self.ledger.corrected(now_ms));
        let Engine { cfg, meters, windows, detector, stream_keys, stream_pending, out, .. } = self;
        let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
        let partition = cfg.partition;
        let reports_payload = partition.reports_payload();
        if reports_payload {
            self.counters.readings_rejected += batch.errors.len() as f64;
            for e in &batch.errors {
                sink.push(e.clone());
            }
        }

        // Resolve bindings: to a tracked meter, or to a name waiting for its
        // first accepted reading.
        let mut local_keys = KeyTable::new(UNBOUND);
        let mut local_waiting = KeyTable::new(NOT_WAITING);
        if batch.scope == KeyScope::Batch {
            // A batch's keys are its bindings' indices: one table of the right
            // size (a failure here only leaves the table to grow as it binds).
            let n = batch.bindings.iter().map(|&(k, _)| k as usize + 1).max().unwrap_or(0);
            if n <= batch.bindings.len().saturating_mul(2) {
                let _ = local_keys.reserve_dense(n);
                let _ = local_waiting.reserve_dense(n);
            }
        }
        let (table, mut pending) = match batch.scope {
            KeyScope::Batch => (
                &mut local_keys,
                Waiting::Batch { at: &mut local_waiting, bindings: &batch.bindings },
            ),
            KeyScope::Stream => (stream_keys, Waiting::Stream(stream_pending)),
        };
        let max_meters = cfg.max_meters;
        for (binding, (key, id)) in batch.bindings.iter().enumerate() {
            let in_range = batch.scope == KeyScope::Batch || *key < cfg.max_stream_keys;
            if !partition.owns(id) {
                // Another worker's meter: its readings are skipped, and its
                // owner checks the id and the key. A key out of range or a
                // failure to bind leaves the key unbound, whose readings only
                // partition 0 reports.
                pending.remove(*key);
                if in_range {
                    let _ = table.bind(*key, FOREIGN, cfg.max_stream_keys);
                }
                continue;
            }
            // Check the key first: a refused binding must not use up a meter slot.
            if !in_range {
                sink.push_with(|| {
                    CoreError::new(
                        ErrorCode::KeyOutOfRange,
                        format!("stream key {key} >= maxStreamKeys {}", cfg.max_stream_keys),
                    )
                });
                continue;
            }
            pending.remove(*key);
            // A batch's own table is bounded by the batch; its names are checked
            // against maxMeters when their first reading is accepted. A stream's
            // persistent table keeps at most as many waiting names as there is room.
            let room = (max_meters as usize).saturating_sub(meters.len());
            let cap = if batch.scope == KeyScope::Stream { room } else { usize::MAX };
            let m = match meters.get(id) {
                Some(m) => m,
                None => {
                    // A refusal's text (the id in it) is made only if it is
                    // reported: a payload may name 300,000 new meters past
                    // maxMeters (docs/PERFORMANCE.md, "Hostile payloads").
                    if let Err(e) = check_meter_id(id) {
                        sink.push(e);
                    } else if meters.is_full(max_meters) {
                        sink.push_with(|| MeterTable::full_error(id, max_meters));
                    } else if !pending.insert(*key, id, binding, cap, cfg.max_stream_keys) {
                        let tracked = meters.len();
                        sink.push_with(|| {
                            CoreError::new(
                                ErrorCode::MeterCapacity,
                                format!("meter '{id}' refused: {tracked} meters tracked and {room} new ones named before it reach maxMeters {max_meters}"),
                            )
                        });
                    }
                    UNBOUND
                }
            };
            if table.bind(*key, m, cfg.max_stream_keys).is_err() {
                pending.remove(*key);
                sink.push_with(|| {
                    CoreError::new(
                        ErrorCode::OutOfMemory,
                        format!("no memory to bind key {key} to meter '{id}'"),
                    )
                });
            }
        }

        let n = batch.keys.len().min(batch.ts.len()).min(batch.values.len());
        let mut ingested = 0u64;
        let mut rejected = 0u64;
        for i in 0..n {
            if i % WARM_AHEAD == 0 {
                // Touch the ring slots of the next readings first (a read only,
                // see `Windows::warm`): their cache misses overlap.
                let ahead = batch.keys.get(i..n.min(i + WARM_AHEAD)).unwrap_or(&[]);
                let m = ahead.iter().map(|&k| table.get(k)).filter(|&m| m < FOREIGN);
                std::hint::black_box(windows.warm(m.map(|m| m as usize)));
            }
            let (key, ts, x) = (batch.keys[i], batch.ts[i], batch.values[i]);
            let pos = batch.positions.get(i).map_or(i, |&p| p as usize);
            let mut m = table.get(key);
            if m == FOREIGN {
                continue;
            }
            if m == UNBOUND && pending.get(key).is_none() {
                if !reports_payload {
                    continue;
                }
                rejected += 1;
                sink.push_with(|| {
                    CoreError::at(
                        ErrorCode::UnknownKey,
                        pos,
                        format!("record names key {key}, which is bound to no accepted meter"),
                    )
                });
                continue;
            }
            if let Err(e) = bounds.check(ts, x, pos) {
                rejected += 1;
                sink.push_with(|| e.error());
                continue;
            }
            if m == UNBOUND {
                // The meter's first accepted reading: intern it now.
                // A refusal's text (a full table's names one per reading) is
                // made only if it is reported.
                let interned = match pending.get(key) {
                    Some(id) => {
                        intern_meter(meters, windows, detector, id, max_meters).map_err(|r| {
                            let position = u32::try_from(pos).ok();
                            sink.push_with(|| CoreError { position, ..r.error(id, max_meters) });
                        })
                    }
                    None => continue,
                };
                pending.remove(key);
                match interned {
                    Ok(new) => {
                        m = new;
                        // Without room in the table this reading still applies; the
                        // key's later readings are refused as unknown.
                        if table.bind(key, m, cfg.max_stream_keys).is_err() {
                            sink.push_with(|| {
                                CoreError::at(
                                    ErrorCode::OutOfMemory,
                                    pos,
                                    format!("no memory to bind key {key}"),
                                )
                            });
                        }
                    }
                    Err(()) => {
                        rejected += 1;
                        continue;
                    }
                }
            }
            add_reading(windows, detector, m as usize, x, ts, cfg);
            ingested += 1;
        }
        sink.finish();
        self.counters.readings_ingested += ingested as f64;
        self.counters.readings_rejected += rejected as f64;
    }
}

/// A batch key that waits for no name.
const NOT_WAITING: u32 = u32::MAX;

/// Keys bound to a meter not interned yet, waiting for its first accepted
/// reading. A stream's wait in the engine's `PendingNames` (they outlive the
/// batch, capped by the room left, the oldest evicted). A batch's names are
/// the batch's own: each waiting key holds the index of its binding, with no
/// copy of the name and no hashing, in a table as dense as the batch's keys.
/// A body naming 335,461 new meters spent most of `handle` in the copies and
/// the hash map's probes (docs/PERFORMANCE.md, "Hostile payloads").
enum Waiting<'a> {
    Stream(&'a mut PendingNames<u8>),
    Batch { at: &'a mut KeyTable<u32>, bindings: &'a [(u32, String)] },
}

impl Waiting<'_> {
    fn get(&self, key: u32) -> Option<&str> {
        match self {
            Waiting::Stream(p) => p.get(key).map(|(id, _)| id),
            Waiting::Batch { at, bindings } => match at.get(key) {
                NOT_WAITING => None,
                i => bindings.get(i as usize).map(|(_, id)| id.as_str()),
            },
        }
    }

    fn remove(&mut self, key: u32) {
        match self {
            Waiting::Stream(p) => p.remove(key),
            // Unbinding a key that is not bound stores nothing.
            Waiting::Batch { at, .. } => {
                let _ = at.bind(key, NOT_WAITING, u32::MAX);
            }
        }
    }

    /// Makes `key` wait on `id`, its batch's binding number `binding`: a
    /// stream's at most `cap` names, the oldest evicted; a batch's all of
    /// them (its names are refused past `maxMeters` as their readings
    /// come). `false` if the name cannot wait (no room, no memory).
    fn insert(&mut self, key: u32, id: &str, binding: usize, cap: usize, max_keys: u32) -> bool {
        match self {
            Waiting::Stream(p) => p.insert(key, id, 0, cap, true),
            Waiting::Batch { at, .. } => u32::try_from(binding)
                .ok()
                .filter(|&b| b != NOT_WAITING)
                .is_some_and(|b| at.bind(key, b, max_keys).is_ok()),
        }
    }
}
