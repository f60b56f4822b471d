//! `Host`: an engine plus what only the host can measure or provide, shared by
//! the [`MeterflowEngine`](super::MeterflowEngine) class and the worker loop.
//!
//! It times each tick with `performance.now()` and hands the time, with the
//! linear memory size, to the *next* tick as `HostStats`; it keeps one scratch
//! buffer that binary payloads are copied into, so steady-state ingest does
//! not allocate.

use super::inbound;
use crate::core::config::Config;
use crate::core::event::{HostStats, Inbound, Outbound};
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
}

impl Host {
    pub(crate) fn new(engine: Engine) -> Host {
        Host { engine, scratch: Vec::new(), clock: Clock::new(), last_tick_eval_ms: 0.0 }
    }

    pub(crate) fn config(&self) -> &Config {
        self.engine.config()
    }

    /// One page message: decoded here, handled by the engine.
    pub(crate) fn handle(&mut self, msg: &JsValue, now_ms: f64) -> Vec<Outbound> {
        let start = self.clock.now();
        let input = inbound::decode(msg, self.engine.config(), &mut self.scratch);
        let mut out = self.engine.handle(input, now_ms);
        // An `ack` carries the time this message took, decode included.
        if let Some(Outbound::Ack(ack)) = out.last_mut() {
            ack.ms = (self.clock.now() - start).max(0.0);
        }
        out
    }

    /// One evaluation tick, timed; the time reaches `stats` with the next tick.
    pub(crate) fn tick(&mut self, now_ms: f64) -> Vec<Outbound> {
        let host = HostStats {
            linear_memory_bytes: linear_memory_bytes(),
            last_tick_eval_ms: self.last_tick_eval_ms,
        };
        let start = self.clock.now();
        let out = self.engine.handle(Inbound::Tick(host), now_ms);
        self.last_tick_eval_ms = (self.clock.now() - start).max(0.0);
        out
    }

    /// One totals flush.
    pub(crate) fn flush(&mut self, now_ms: f64) -> Vec<Outbound> {
        self.engine.handle(Inbound::Flush, now_ms)
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
