//! `MeterflowEngine`: the engine as a JavaScript class, without a worker.
//!
//! Benchmarks and embedders drive it directly: each method takes what the
//! worker would receive and returns the messages the worker would post, as an
//! array, in order. Time is always passed in (`nowMs`).

use super::host::{linear_memory_bytes, Host};
use super::outbound::to_js_array;
use super::types::{ConfigJs, PageMessageJs, WorkerMessages};
use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Outbound;
use crate::core::Engine;
use crate::wire;
use js_sys::Reflect;
use wasm_bindgen::prelude::*;

/// The meterflow engine, for use without a worker.
#[wasm_bindgen(js_name = MeterflowEngine)]
pub struct MeterflowEngine {
    host: Host,
}

#[wasm_bindgen(js_class = MeterflowEngine)]
impl MeterflowEngine {
    /// An engine with the default configuration patched by `config` (fields as
    /// in the `config` message). Throws a `RangeError` whose `code` property is
    /// an error code (`bad_config`, `bad_field`, ...) if the config is refused.
    #[wasm_bindgen(constructor)]
    pub fn new(config: Option<ConfigJs>) -> Result<MeterflowEngine, JsValue> {
        super::install_panic_hook();
        let cfg = match config {
            Some(c) if !c.is_undefined() && !c.is_null() => config_from_js(&c)?,
            _ => Config::default(),
        };
        let engine = Engine::new(cfg).map_err(|e| range_error(&e))?;
        Ok(MeterflowEngine { host: Host::new(engine) })
    }

    /// Handles one page message (PROTOCOL.md section 2) at engine time `nowMs`;
    /// returns the messages the worker would post.
    pub fn handle(
        &mut self,
        msg: &PageMessageJs,
        #[wasm_bindgen(js_name = "nowMs")] now_ms: f64,
    ) -> WorkerMessages {
        if let Some(e) = bad_time(now_ms) {
            return e;
        }
        let outs = self.host.handle(msg, now_ms);
        to_js_array(&outs).unchecked_into()
    }

    /// Runs one evaluation tick at `nowMs`. Its wall time is measured and
    /// reported as `lastTickEvalMs` by the next tick's `stats`.
    pub fn tick(&mut self, #[wasm_bindgen(js_name = "nowMs")] now_ms: f64) -> WorkerMessages {
        if let Some(e) = bad_time(now_ms) {
            return e;
        }
        let outs = self.host.tick(now_ms);
        to_js_array(&outs).unchecked_into()
    }

    /// Runs one totals flush at `nowMs`.
    pub fn flush(&mut self, #[wasm_bindgen(js_name = "nowMs")] now_ms: f64) -> WorkerMessages {
        if let Some(e) = bad_time(now_ms) {
            return e;
        }
        let outs = self.host.flush(now_ms);
        to_js_array(&outs).unchecked_into()
    }

    /// Size of the wasm linear memory, in bytes (shared by every engine in this
    /// module instance).
    #[wasm_bindgen(js_name = linearMemoryBytes)]
    pub fn linear_memory_bytes(&self) -> f64 {
        linear_memory_bytes()
    }
}

/// A config object from JS, through the same decoder as a `config` message.
pub(crate) fn config_from_js(config: &JsValue) -> Result<Config, JsValue> {
    let bad = |why: String| range_error(&CoreError::new(ErrorCode::BadConfig, why));
    let text = super::inbound::json_text(config).map_err(|why| bad(format!("config {why}")))?;
    let value = wire::lite::parse(&text).map_err(|e| bad(format!("config: not JSON ({e})")))?;
    let patch = wire::decode_config_value(&value).map_err(|e| range_error(&e))?;
    Config::default().apply(&patch).map_err(|e| range_error(&e))
}

/// A `RangeError` carrying the error's `code` (and `position`, if any).
pub(crate) fn range_error(e: &CoreError) -> JsValue {
    let err = js_sys::RangeError::new(&e.to_string());
    let _ = Reflect::set(&err, &"code".into(), &e.code.as_str().into());
    if let Some(p) = e.position {
        let _ = Reflect::set(&err, &"position".into(), &p.into());
    }
    err.into()
}

/// An `error` message array if `nowMs` is not a finite number.
fn bad_time(now_ms: f64) -> Option<WorkerMessages> {
    if now_ms.is_finite() {
        return None;
    }
    let e =
        CoreError::new(ErrorCode::BadField, "nowMs must be a finite number (ms since the epoch)");
    Some(to_js_array(&[Outbound::Error(e)]).unchecked_into())
}
