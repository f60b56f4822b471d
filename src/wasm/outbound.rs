//! Core outputs into the plain JS objects the worker posts (PROTOCOL.md section 4).
//!
//! Every message goes through `crate::wire::encode` (the one definition of the
//! wire shape) and serde-wasm-bindgen's JSON-compatible serializer, so a JS
//! consumer sees exactly what a JSON consumer would. The exception is `window`:
//! its samples become one `Float64Array` (copied out of wasm memory once), whose
//! buffer the worker transfers instead of cloning.

use crate::core::event::{Outbound, SeriesEvent};
use crate::core::series::SeriesBody;
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
        Outbound::Series(e) => return series(e, None),
        Outbound::Answer { id, answer } => match answer.as_ref() {
            Outbound::Window { meter, values } => return window(Some(*id), meter, values),
            Outbound::Series(e) => return series(e, Some(*id)),
            _ => {}
        },
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

/// A `series` message: the scalar fields through the one wire shape, the six
/// arrays as `Float64Array` views of one buffer, which the worker transfers.
fn series(e: &SeriesEvent, id: Option<f64>) -> Posted {
    let shape = wire::WireOut::Series(wire::SeriesOut { event: e, id, arrays: false });
    let message = match shape.serialize(&SERIALIZER) {
        Ok(m) => m,
        Err(err) => return Posted { message: internal_error(&format!("{err}")), transfer: None },
    };
    let SeriesBody::Data { data, .. } = &e.body else {
        return Posted { message, transfer: None };
    };
    let n = data.ts.len();
    let [sum, min, max, last] = wire::series_columns(data);
    let all = Float64Array::new_with_length((n * 6) as u32);
    let buffer = all.buffer();
    for (k, (name, col)) in [
        ("ts", &data.ts),
        ("count", &data.count),
        ("sum", &sum),
        ("min", &min),
        ("max", &max),
        ("last", &last),
    ]
    .into_iter()
    .enumerate()
    {
        let view =
            Float64Array::new_with_byte_offset_and_length(&buffer, (k * n * 8) as u32, n as u32);
        view.copy_from(col);
        let _ = Reflect::set(&message, &JsValue::from_str(name), &view);
    }
    Posted { message, transfer: Some(buffer.into()) }
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
