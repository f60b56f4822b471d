//! `Host`: an engine plus what only the host can measure or provide, shared by
//! the [`MeterflowEngine`](super::MeterflowEngine) class and the worker loop.
//!
//! It times each tick with `performance.now()` and hands the time, with the
//! linear memory size, to the *next* tick as `HostStats`; it keeps one scratch
//! buffer that binary payloads are copied into, so steady-state ingest does
//! not allocate.
//!
//! It also times stream deltas (`timing`): how long each takes to apply
//! (`stats.deltaApplyMs`) and how long it waits from its arrival in the worker
//! to the `totals` or `meters` message that shows it (`stats.deliveryLatencyMs`).

use super::inbound;
use super::timing::{DeliveryLatency, SampleRing, Summary};
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
    delta_apply: SampleRing,
}

impl Host {
    pub(crate) fn new(engine: Engine) -> Host {
        Host {
            engine,
            scratch: Vec::new(),
            clock: Clock::new(),
            last_tick_eval_ms: 0.0,
            latency: DeliveryLatency::default(),
            delta_apply: SampleRing::default(),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        self.engine.config()
    }

    /// One page message: decoded here, handled by the engine.
    pub(crate) fn handle(&mut self, msg: &JsValue, now_ms: f64) -> Vec<Outbound> {
        let start = self.clock.now();
        let input = inbound::decode(msg, self.engine.config(), &mut self.scratch);
        let delta = matches!(input, Inbound::Stream(SessionInput::Server(ServerOp::Delta { .. })));
        if delta {
            self.latency.arrived(start);
        }
        // A `stats` answer reports the linear memory of now, not of the last
        // tick (a busy worker can go long between ticks).
        self.engine.note_linear_memory(linear_memory_bytes());
        let mut out = self.engine.handle(input, now_ms);
        let end = self.clock.now();
        if delta {
            self.delta_apply.push(end - start);
        }
        // An `ack` carries the time this message took, decode included.
        if let Some(Outbound::Ack(ack)) = out.last_mut() {
            ack.ms = (end - start).max(0.0);
        }
        self.latency.observe(&out, end);
        out
    }

    /// Delta arrival → page update, over the last updates.
    pub(crate) fn delivery_latency(&self) -> Option<Summary> {
        self.latency.summary()
    }

    /// One delta message's `handle` (the session and its consumer), over the last deltas.
    pub(crate) fn delta_apply(&self) -> Option<Summary> {
        self.delta_apply.summary()
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

    /// The one-shot flush after deltas (`deltaFlushMs`), if one is due.
    pub(crate) fn delta_flush(&mut self, now_ms: f64) -> Vec<Outbound> {
        let out = self.engine.handle(Inbound::DeltaFlush, now_ms);
        self.latency.observe(&out, self.clock.now());
        out
    }

    /// When the engine wants its one-shot flush (engine ms), if it does.
    pub(crate) fn flush_due_ms(&self) -> Option<f64> {
        self.engine.flush_due_ms()
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
