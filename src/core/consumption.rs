//! The engine's side of the consumption ledger: dispatching live frames,
//! hellos, catch-ups and flushes to `Ledger`, interning the meters they name,
//! and feeding counted live readings into the anomaly windows.
//!
//! A live reading counted by the ledger enters the anomaly window only if it
//! passes the same [`ReadingBounds`] check as every other reading; otherwise it
//! is reported (`bad_timestamp`/`bad_value`, counted in `readingsRejected`) and
//! stays in the totals, which are the server's data.

use super::config::Config;
use super::detect::Detector;
use super::error::{CoreError, ErrorCode, ErrorSink};
use super::event::Outbound;
use super::event::{Catchup, LiveFrame, StreamHello};
use super::ledger::{Ledger, MeterIds};
use super::meters::{check_meter_id, MeterTable};
use super::series::MAX_PER_BUCKET;
use super::windows::Windows;
use super::{add_reading, intern_meter, Engine, ReadingBounds};

/// The engine's meter table, windows and detector, as the ledger interns meters.
struct EngineMeters<'a> {
    meters: &'a mut MeterTable,
    windows: &'a mut Windows,
    detector: &'a mut Detector,
    max_meters: u32,
}

impl MeterIds for EngineMeters<'_> {
    fn find(&self, id: &str) -> Option<u32> {
        self.meters.get(id)
    }

    fn check_new(&self, id: &str) -> Result<(), CoreError> {
        check_meter_id(id).and_then(|()| self.meters.check_room(id, self.max_meters))
    }

    fn room(&self) -> usize {
        (self.max_meters as usize).saturating_sub(self.meters.len())
    }

    fn intern(&mut self, id: &str) -> Result<u32, CoreError> {
        intern_meter(self.meters, self.windows, self.detector, id, self.max_meters)
            .map_err(|r| r.error(id, self.max_meters))
    }
}

impl Engine {
    pub(super) fn live(&mut self, f: &LiveFrame, now_ms: f64) {
        let Engine { ledger, meters, windows, detector, cfg, out, counters, stream, .. } = self;
        let mut ids = EngineMeters { meters, windows, detector, max_meters: cfg.max_meters };
        ledger.on_live(f, now_ms, cfg, &mut ids, out);
        let bounds = ReadingBounds::new(cfg, ledger.corrected(now_ms));
        let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
        let (mut fed, mut rejected) = (0u64, 0u64);
        for (i, (m, ts, x)) in ledger.take_feed().enumerate() {
            // A reading a `meters.*` row already put in the window enters once.
            if !stream.live_reading_enters(m as usize, ts, meters.len()) {
                continue;
            }
            match bounds.check(ts, x, i) {
                Ok(()) => {
                    add_reading(windows, detector, m as usize, x, ts, cfg);
                    fed += 1;
                }
                Err(refused) => {
                    sink.push_with(|| {
                        let e = refused.error();
                        CoreError {
                            position: None,
                            message: format!(
                                "live reading of meter '{}' counted in the totals but kept out of its window: {}",
                                meters.name(m as usize),
                                e.message
                            ),
                            ..e
                        }
                    });
                    rejected += 1;
                }
            }
        }
        sink.finish();
        report_series_refused(ledger, meters, cfg, out);
        counters.readings_ingested += fed as f64;
        counters.readings_rejected += rejected as f64;
        self.guard_memory();
    }

    pub(super) fn hello(&mut self, h: &StreamHello, now_ms: f64) {
        self.ledger.on_hello(h, now_ms, &self.cfg, &mut self.out);
    }

    pub(super) fn catchup(&mut self, c: &Catchup, now_ms: f64) {
        let Engine { ledger, meters, windows, detector, cfg, out, .. } = self;
        let mut ids = EngineMeters { meters, windows, detector, max_meters: cfg.max_meters };
        ledger.on_catchup(c, now_ms, cfg, &mut ids, out);
    }

    pub(super) fn flush(&mut self, now_ms: f64) {
        self.ledger.on_flush(now_ms, &self.cfg, &mut self.out);
        report_series_refused(&mut self.ledger, &self.meters, &self.cfg, &mut self.out);
    }
}

/// One `series_limit` error per `(meter, resource)` pair the series refused
/// at `maxSeriesPairs`, and one for the readings its buckets refused since the
/// last report (their readings still count everywhere else).
fn report_series_refused(
    ledger: &mut Ledger,
    meters: &MeterTable,
    cfg: &Config,
    out: &mut Vec<Outbound>,
) {
    let overflow = ledger.meter_hours_mut().take_series_overflow();
    let refused = ledger.meter_hours_mut().take_series_refused();
    if refused.is_empty() && overflow.is_none() {
        return;
    }
    let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
    if let Some(o) = overflow {
        let resource = cfg.resources.get(o.resource).map_or("?", |x| x.name.as_str());
        sink.push_with(|| CoreError::new(
            ErrorCode::SeriesLimit,
            format!(
                "series: {} reading(s) past a bucket's bound ({} readings or ±2^47 units a bucket), the first of meter '{}' resource '{resource}' in minute {} (ms {}): they count in the totals but not in the series, whose answers covering them say incomplete",
                o.readings,
                MAX_PER_BUCKET,
                meters.name(o.meter as usize),
                o.minute,
                o.minute.saturating_mul(60_000)
            ),
        ));
    }
    for (m, r) in refused {
        let resource = cfg.resources.get(r).map_or("?", |x| x.name.as_str());
        sink.push_with(|| CoreError::new(
            ErrorCode::SeriesLimit,
            format!(
                "series: meter '{}' resource '{resource}' past maxSeriesPairs ({} pairs held): its readings count in the totals but not in its series, which say incomplete",
                meters.name(m as usize),
                cfg.series_pairs()
            ),
        ));
    }
    sink.finish();
}
