//! Core outputs into the plain JS objects the worker posts (PROTOCOL.md section 4).
//!
//! Every message goes through `crate::wire::encode` (the one definition of the
//! wire shape) and serde-wasm-bindgen's JSON-compatible serializer, so a JS
//! consumer sees exactly what a JSON consumer would. The exception is `window`:
//! its samples become one `Float64Array` (copied out of wasm memory once), whose
//! buffer the worker transfers instead of cloning.

use crate::core::event::Outbound;
use crate::wire;
use js_sys::{Float64Array, Object, Reflect};
use serde::Serialize;
use serde_wasm_bindgen::Serializer;
use wasm_bindgen::JsValue;

/// JSON-compatible: maps as plain objects, `None` as `null`, no BigInts.
const SERIALIZER: Serializer = Serializer::json_compatible();

/// One message ready to post, and the buffer to transfer with it, if any.
pub(crate) struct Posted {
    pub message: JsValue,
    pub transfer: Option<JsValue>,
}

/// Converts one output. Never fails: a conversion error (a bug) becomes an
/// `error` message with code `internal`.
pub(crate) fn to_js(out: &Outbound) -> Posted {
    match out {
        Outbound::Window { meter, values } => return window(None, meter, values),
        Outbound::Answer { id, answer } => {
            if let Outbound::Window { meter, values } = answer.as_ref() {
                return window(Some(*id), meter, values);
            }
        }
        _ => {}
    }
    match wire::encode(out).serialize(&SERIALIZER) {
        Ok(message) => Posted { message, transfer: None },
        Err(e) => Posted { message: internal_error(&format!("{e}")), transfer: None },
    }
}

/// Converts a batch, in order, into a JS array (for the `MeterflowEngine` class).
pub(crate) fn to_js_array(outs: &[Outbound]) -> js_sys::Array {
    outs.iter().map(|o| to_js(o).message).collect()
}

fn window(id: Option<f64>, meter: &str, values: &[f64]) -> Posted {
    let samples = Float64Array::from(values);
    let buffer: JsValue = samples.buffer().into();
    let mut fields = vec![("type", "window".into()), ("v", 1.into())];
    if let Some(id) = id {
        fields.push(("id", id.into()));
    }
    fields.push(("meter", meter.into()));
    fields.push(("values", samples.into()));
    let msg = object(&fields);
    Posted { message: msg, transfer: Some(buffer) }
}

/// `{ type: 'error', v: 1, code: 'internal', message }`.
pub(crate) fn internal_error(message: &str) -> JsValue {
    object(&[
        ("type", "error".into()),
        ("v", 1.into()),
        ("code", crate::core::error::ErrorCode::Internal.as_str().into()),
        ("message", format!("meterflow could not convert an outbound message: {message}").into()),
    ])
}

/// A plain object from `(key, value)` pairs.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in fields {
        // Setting a data property on a fresh plain object cannot throw.
        let _ = Reflect::set(&obj, &JsValue::from_str(k), v);
    }
    obj.into()
}
