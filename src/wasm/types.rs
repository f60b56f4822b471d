//! TypeScript types for every message of the worker protocol (PROTOCOL.md
//! sections 2 and 4) and the configuration (section 5), shipped in the
//! generated `meterflow.d.ts`, plus the JS types the exported functions take.
//!
//! The types themselves are in `protocol.d.ts` beside this file. Keep them in
//! step with `docs/PROTOCOL.md` and `crate::wire`; the worker suite checks that
//! every `MeterflowConfig` field is one the config decoder accepts, and
//! `tests/protocol_docs.rs` that the `ErrorCode`/`WarningCode` unions are
//! exactly the variants of `core::error::ErrorCode`/`WarningCode`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const PROTOCOL_TYPES: &'static str = include_str!("protocol.d.ts");

#[wasm_bindgen]
extern "C" {
    /// A configuration patch object.
    #[wasm_bindgen(typescript_type = "MeterflowConfig")]
    pub type ConfigJs;

    /// One page message.
    #[wasm_bindgen(typescript_type = "PageMessage")]
    pub type PageMessageJs;

    /// The messages one call produced, in order.
    #[wasm_bindgen(typescript_type = "WorkerMessage[]")]
    pub type WorkerMessages;

    /// Anything with `postMessage` and an `onmessage` property.
    #[wasm_bindgen(typescript_type = "MessagePortLike")]
    pub type MessagePortLike;

    #[wasm_bindgen(method, catch, js_name = postMessage)]
    pub fn post_message(this: &MessagePortLike, message: &JsValue) -> Result<(), JsValue>;

    #[wasm_bindgen(method, catch, js_name = postMessage)]
    pub fn post_message_with_transfer(
        this: &MessagePortLike,
        message: &JsValue,
        transfer: &js_sys::Array,
    ) -> Result<(), JsValue>;

    #[wasm_bindgen(method, setter = onmessage)]
    pub fn set_onmessage(this: &MessagePortLike, handler: Option<&js_sys::Function>);
}
