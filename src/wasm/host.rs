//! `Host`: an engine plus what only the host can measure or provide, shared by
//! the [`MeterflowEngine`](super::MeterflowEngine) class and the worker loop.
//!
//! It times each tick with `performance.now()` and hands the time, with the
//! linear memory size, to the *next* tick as `HostStats`; it keeps one scratch
//! buffer that binary payloads are copied into, so steady-state ingest does
//! not allocate.
//!
//! It also measures, for the benchmark, how long a stream delta waits from its
//! arrival in the worker to the `totals` or `meters` message that shows it
//! ([`DeliveryLatency`]), reported in `stats` as `deliveryLatencyMs`.

use super::inbound;
use crate::core::config::Config;
use crate::core::event::{HostStats, Inbound, Outbound};
use crate::core::session::{ServerOp, SessionInput};
use crate::core::Engine;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;

/// An engine and its host-side measurements.
pub(crate) struct Host {
    engine: Engine,
    /// Binary payloads are copied here from JS (bounded by `maxPayloadBytes`).
    scratch: Vec<u8>,
    clock: Clock,
    last_tick_eval_ms: f64,
    latency: DeliveryLatency,
}

impl Host {
    pub(crate) fn new(engine: Engine) -> Host {
        Host {
            engine,
            scratch: Vec::new(),
            clock: Clock::new(),
            last_tick_eval_ms: 0.0,
            latency: DeliveryLatency::default(),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        self.engine.config()
    }

    /// One page message: decoded here, handled by the engine.
    pub(crate) fn handle(&mut self, msg: &JsValue, now_ms: f64) -> Vec<Outbound> {
        let input = inbound::decode(msg, self.engine.config(), &mut self.scratch);
        if matches!(input, Inbound::Stream(SessionInput::Server(ServerOp::Delta { .. }))) {
            self.latency.arrived(self.clock.now());
        }
        let out = self.engine.handle(input, now_ms);
        self.latency.observe(&out, self.clock.now());
        out
    }

    /// Delta arrival → page update, over the last [`LATENCY_SAMPLES`] updates.
    pub(crate) fn delivery_latency(&self) -> Option<LatencySummary> {
        self.latency.summary()
    }

    /// One evaluation tick, timed; the time reaches `stats` with the next tick.
    pub(crate) fn tick(&mut self, now_ms: f64) -> Vec<Outbound> {
        let host = HostStats {
            linear_memory_bytes: linear_memory_bytes(),
            last_tick_eval_ms: self.last_tick_eval_ms,
        };
        let start = self.clock.now();
        let out = self.engine.handle(Inbound::Tick(host), now_ms);
        let end = self.clock.now();
        self.last_tick_eval_ms = (end - start).max(0.0);
        self.latency.observe(&out, end);
        out
    }

    /// One totals flush.
    pub(crate) fn flush(&mut self, now_ms: f64) -> Vec<Outbound> {
        let out = self.engine.handle(Inbound::Flush, now_ms);
        self.latency.observe(&out, self.clock.now());
        out
    }
}

/// Page updates whose latency is kept (a ring; older ones are overwritten).
pub(crate) const LATENCY_SAMPLES: usize = 1024;

/// How long stream deltas wait before the page sees them: from the arrival of
/// the oldest delta not yet shown (the moment its socket message is decoded) to
/// the next `totals` or `meters` output. A delta that changes nothing (a
/// duplicate, one buffered for a snapshot) waits for the next update that does.
#[derive(Default)]
pub(crate) struct DeliveryLatency {
    pending_since: Option<f64>,
    samples: Vec<f64>,
    next: usize,
}

/// `deliveryLatencyMs` in `stats`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LatencySummary {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    pub samples: usize,
}

impl DeliveryLatency {
    fn arrived(&mut self, now: f64) {
        self.pending_since.get_or_insert(now);
    }

    fn observe(&mut self, out: &[Outbound], now: f64) {
        let Some(since) = self.pending_since else { return };
        if !out.iter().any(|o| matches!(o, Outbound::Totals(_) | Outbound::Meters(_))) {
            return;
        }
        self.pending_since = None;
        let sample = (now - since).max(0.0);
        if self.samples.len() < LATENCY_SAMPLES {
            // Bounded by LATENCY_SAMPLES; a failed growth only loses the sample.
            if self.samples.try_reserve(1).is_ok() {
                self.samples.push(sample);
            }
        } else if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = sample;
        }
        self.next = (self.next + 1) % LATENCY_SAMPLES;
    }

    fn summary(&self) -> Option<LatencySummary> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((sorted.len() - 1) as f64 * q).round() as usize;
            sorted.get(i).copied().unwrap_or(f64::NAN)
        };
        Some(LatencySummary { p50: at(0.5), p95: at(0.95), max: at(1.0), samples: sorted.len() })
    }
}

/// Size of this module's linear memory in bytes.
pub(crate) fn linear_memory_bytes() -> f64 {
    core::arch::wasm32::memory_size::<0>() as f64 * 65_536.0
}

/// `performance.now()` where the global scope has it (window and workers do),
/// else `Date.now()`.
struct Clock(Option<web_sys::Performance>);

impl Clock {
    fn new() -> Clock {
        let perf = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
            .ok()
            .and_then(|p| p.dyn_into::<web_sys::Performance>().ok());
        Clock(perf)
    }

    fn now(&self) -> f64 {
        match &self.0 {
            Some(p) => p.now(),
            None => js_sys::Date::now(),
        }
    }
}
