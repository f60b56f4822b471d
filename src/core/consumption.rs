//! The engine's side of the consumption ledger: dispatching live frames,
//! hellos, catch-ups and flushes to `Ledger`, interning the meters they name,
//! and feeding accepted live readings into the anomaly windows.

use super::event::{Catchup, LiveFrame, StreamHello};
use super::{add_reading, intern_meter, Engine};

impl Engine {
    pub(super) fn live(&mut self, f: &LiveFrame, now_ms: f64) {
        let Engine { ledger, meters, windows, detector, cfg, out, counters, .. } = self;
        let max = cfg.max_meters;
        let mut intern = |id: &str| intern_meter(meters, windows, detector, id, max);
        ledger.on_live(f, now_ms, cfg, &mut intern, out);
        let mut fed = 0u64;
        for (m, ts, x) in ledger.take_feed() {
            add_reading(windows, detector, m as usize, x, ts, cfg);
            fed += 1;
        }
        counters.readings_ingested += fed as f64;
        self.guard_memory();
    }

    pub(super) fn hello(&mut self, h: &StreamHello, now_ms: f64) {
        self.ledger.on_hello(h, now_ms, &self.cfg, &mut self.out);
    }

    pub(super) fn catchup(&mut self, c: &Catchup, now_ms: f64) {
        self.ledger.on_catchup(c, now_ms, &self.cfg, &mut self.out);
    }

    pub(super) fn flush(&mut self, now_ms: f64) {
        self.ledger.on_flush(now_ms, &self.cfg, &mut self.out);
    }
}
