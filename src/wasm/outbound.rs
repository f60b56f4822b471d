//! Core outputs into the plain JS objects the worker posts (PROTOCOL.md section 4).
//!
//! Every message goes through `crate::wire::out::emit` (the one definition of
//! the wire shape, shared with the native JSON text) into [`Js`], which builds
//! the objects directly (`Object` + `Reflect.set` with cached keys), without
//! serde. A JS consumer sees what a JSON consumer would, except that number
//! columns (`window`'s `values`, `series`' six arrays) are `Float64Array` views
//! of one buffer (copied out of wasm memory once), which the worker transfers
//! instead of cloning, and that NaN stays NaN.

use crate::core::event::Outbound;
use crate::wire::out::{emit, Emit};
use js_sys::{Array, Float64Array, Object};
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

/// One message ready to post, and the buffer to transfer with it, if any.
pub(crate) struct Posted {
    pub message: JsValue,
    pub transfer: Option<JsValue>,
}

/// Converts one output. Never fails.
pub(crate) fn to_js(out: &Outbound) -> Posted {
    let mut js = Js { open: Vec::new(), message: JsValue::UNDEFINED, transfer: None };
    emit(out, &mut js);
    Posted { message: js.message, transfer: js.transfer }
}

/// Converts a batch, in order, into a JS array (for the `MeterflowEngine` class).
pub(crate) fn to_js_array(outs: &[Outbound]) -> js_sys::Array {
    outs.iter().map(|o| to_js(o).message).collect()
}

thread_local! {
    /// Field names as JS strings, made once: keys are `&'static str`, so
    /// their address identifies them.
    static KEYS: RefCell<FxHashMap<(usize, usize), JsValue>> = RefCell::default();
}

/// Calls `f` with `k` as a JS string, borrowed from the cache (a clone would
/// cost two calls into JS).
fn with_key<R>(k: &'static str, f: impl FnOnce(&JsValue) -> R) -> R {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        f(keys.entry((k.as_ptr() as usize, k.len())).or_insert_with(|| k.into()))
    })
}

#[wasm_bindgen]
extern "C" {
    /// A plain object or array being built: `o[k] = v` and `a.push(v)`, one
    /// call into JS each, numbers and strings passed as such (no `JsValue` to
    /// make and drop, no `Reflect.set` and its try/catch).
    type Slot;
    #[wasm_bindgen(method, indexing_setter)]
    fn set_num(this: &Slot, k: &JsValue, v: f64);
    #[wasm_bindgen(method, indexing_setter)]
    fn set_str(this: &Slot, k: &JsValue, v: &str);
    #[wasm_bindgen(method, indexing_setter)]
    fn set_val(this: &Slot, k: &JsValue, v: &JsValue);
    #[wasm_bindgen(method, js_name = push)]
    fn push_num(this: &Slot, v: f64) -> u32;
    #[wasm_bindgen(method, js_name = push)]
    fn push_str(this: &Slot, v: &str) -> u32;
    #[wasm_bindgen(method, js_name = push)]
    fn push_val(this: &Slot, v: &JsValue) -> u32;
}

/// A value to put.
enum Val<'a> {
    Num(f64),
    Str(&'a str),
    Js(&'a JsValue),
}

/// Builds one message as JS objects.
struct Js {
    /// The open objects and arrays, innermost last (`true`: an array).
    open: Vec<(JsValue, bool)>,
    /// The message, once its outermost object is closed.
    message: JsValue,
    transfer: Option<JsValue>,
}

impl Js {
    fn put(&mut self, k: &'static str, v: Val<'_>) {
        match self.open.last() {
            Some((list, true)) => {
                let list: &Slot = list.unchecked_ref();
                match v {
                    Val::Num(x) => list.push_num(x),
                    Val::Str(x) => list.push_str(x),
                    Val::Js(x) => list.push_val(x),
                };
            }
            Some((obj, false)) => {
                let obj: &Slot = obj.unchecked_ref();
                with_key(k, |k| match v {
                    Val::Num(x) => obj.set_num(k, x),
                    Val::Str(x) => obj.set_str(k, x),
                    Val::Js(x) => obj.set_val(k, x),
                });
            }
            None => {
                if let Val::Js(x) = v {
                    self.message = x.clone();
                }
            }
        }
    }
}

impl Emit for Js {
    fn num(&mut self, k: &'static str, v: f64) {
        self.put(k, Val::Num(v));
    }
    fn int(&mut self, k: &'static str, v: i64) {
        self.put(k, Val::Num(v as f64));
    }
    fn str(&mut self, k: &'static str, v: &str) {
        self.put(k, Val::Str(v));
    }
    fn bool(&mut self, k: &'static str, v: bool) {
        let v = if v { JsValue::TRUE } else { JsValue::FALSE };
        self.put(k, Val::Js(&v));
    }
    fn null(&mut self, k: &'static str) {
        self.put(k, Val::Js(&JsValue::NULL));
    }
    fn open(&mut self, k: &'static str, list: bool) {
        let v: JsValue = if list { Array::new().into() } else { Object::new().into() };
        self.put(k, Val::Js(&v));
        self.open.push((v, list));
    }
    fn close(&mut self) {
        self.open.pop();
    }
    fn columns(&mut self, cols: &[(&'static str, &[f64])]) {
        if let [(k, col)] = cols {
            // One column: one copy out of wasm memory, its buffer transferred.
            let values = Float64Array::from(*col);
            self.transfer = Some(values.buffer().into());
            return self.put(k, Val::Js(&values));
        }
        let n: usize = cols.iter().map(|(_, c)| c.len()).sum();
        let all = Float64Array::new_with_length(n as u32);
        let buffer = all.buffer();
        let mut at = 0usize;
        for (k, col) in cols {
            let view = Float64Array::new_with_byte_offset_and_length(
                &buffer,
                (at * 8) as u32,
                col.len() as u32,
            );
            view.copy_from(col);
            self.put(k, Val::Js(&view));
            at += col.len();
        }
        self.transfer = Some(buffer.into());
    }
    fn json(&mut self, k: &'static str, text: &str) {
        // Checked to be a JSON object at the edge; `null` should it ever not parse.
        let v = js_sys::JSON::parse(text).unwrap_or(JsValue::NULL);
        self.put(k, Val::Js(&v));
    }
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
pub(crate) fn object(fields: &[(&'static str, JsValue)]) -> JsValue {
    let obj = Object::new();
    let slot: &Slot = obj.unchecked_ref();
    for (k, v) in fields {
        with_key(k, |k| slot.set_val(k, v));
    }
    obj.into()
}

/// One output as the worker posts it: the message and the buffer it
/// transfers, if any (for tests/outbound_js.rs, through `crate::wasm`).
pub fn posted(out: &Outbound) -> (JsValue, Option<JsValue>) {
    let p = to_js(out);
    (p.message, p.transfer)
}
