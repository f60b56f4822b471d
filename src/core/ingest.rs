//! Applying a decoded `ReadingBatch`: resolve keys to meters, validate each
//! record against the clock, score it against the window *before* it enters,
//! then push it.
//!
//! Errors are reported per item with its position, at most
//! `max_errors_per_batch` events per batch plus one summary, so a hostile or
//! broken batch cannot flood the page; every refused record is counted in
//! `readingsRejected`.

use super::error::{CoreError, ErrorCode, ErrorSink};
use super::event::{KeyScope, ReadingBatch};
use super::{add_reading, intern_meter, Engine, UNBOUND};

impl Engine {
    pub(super) fn ingest(&mut self, batch: &ReadingBatch, now_ms: f64) {
        let mut sink = ErrorSink::new(&mut self.out, self.cfg.max_errors_per_batch);
        self.counters.readings_rejected += batch.errors.len() as f64;
        for e in &batch.errors {
            sink.push(e.clone());
        }

        // Resolve bindings to dense meter indices, interning new meters.
        let mut local: Vec<u32> = Vec::new();
        if batch.scope == KeyScope::Batch {
            local.resize(batch.bindings.len(), UNBOUND);
        }
        for (key, id) in &batch.bindings {
            // Check the key first: a refused binding must not use up a meter slot.
            if batch.scope == KeyScope::Stream && *key >= self.cfg.max_stream_keys {
                sink.push(CoreError::new(
                    ErrorCode::KeyOutOfRange,
                    format!("stream key {key} >= maxStreamKeys {}", self.cfg.max_stream_keys),
                ));
                continue;
            }
            let (meters, windows, detector) =
                (&mut self.meters, &mut self.windows, &mut self.detector);
            let m = match intern_meter(meters, windows, detector, id, self.cfg.max_meters) {
                Ok(m) => m,
                Err(e) => {
                    sink.push(e);
                    UNBOUND
                }
            };
            let table = match batch.scope {
                KeyScope::Batch => &mut local,
                KeyScope::Stream => &mut self.stream_keys,
            };
            let k = *key as usize;
            if k >= table.len() {
                table.resize(k + 1, UNBOUND);
            }
            if let Some(slot) = table.get_mut(k) {
                *slot = m;
            }
        }

        let table: &[u32] = match batch.scope {
            KeyScope::Batch => &local,
            KeyScope::Stream => &self.stream_keys,
        };
        let n = batch.keys.len().min(batch.ts.len()).min(batch.values.len());
        // Plausibility is judged on the corrected clock: a laptop clock that is
        // minutes off must not refuse every reading.
        let now_ms = self.ledger.corrected(now_ms);
        let oldest = now_ms - self.cfg.max_age_ms;
        let newest = now_ms + self.cfg.max_future_ms;
        let mut ingested = 0u64;
        let mut rejected = 0u64;
        for i in 0..n {
            let (key, ts, x) = (batch.keys[i], batch.ts[i], batch.values[i]);
            let pos = batch.positions.get(i).map_or(i, |&p| p as usize);
            let m = table.get(key as usize).copied().unwrap_or(UNBOUND);
            if m == UNBOUND {
                rejected += 1;
                sink.push(CoreError::at(
                    ErrorCode::UnknownKey,
                    pos,
                    format!("record names key {key}, which is bound to no accepted meter"),
                ));
                continue;
            }
            if !(ts >= oldest && ts <= newest) {
                rejected += 1;
                sink.push(CoreError::at(
                    ErrorCode::BadTimestamp,
                    pos,
                    format!("timestamp {ts} outside [{oldest}, {newest}] (now {now_ms})"),
                ));
                continue;
            }
            if !(x.is_finite() && x.abs() <= self.cfg.max_abs_value) {
                rejected += 1;
                sink.push(CoreError::at(
                    ErrorCode::BadValue,
                    pos,
                    format!("value {x} is not finite or beyond maxAbsValue"),
                ));
                continue;
            }
            add_reading(&mut self.windows, &mut self.detector, m as usize, x, ts, &self.cfg);
            ingested += 1;
        }
        sink.finish();
        self.counters.readings_ingested += ingested as f64;
        self.counters.readings_rejected += rejected as f64;
    }
}
