//! The Web Worker binding (wasm32 only): the one place that knows JavaScript.
//!
//! - [`MeterflowEngine`]: the engine as a JS class, for benchmarks and embedding
//!   without a worker (`new`, `handle`, `tick`, `flush`, `linearMemoryBytes`).
//! - [`start_worker`] / [`start_on_port`]: the worker loop: `onmessage`, the
//!   evaluation tick and totals flush timers (`gloo-timers`), `postMessage`.
//! - `inbound`: page messages (JS objects) into core `Inbound`s, through the
//!   `crate::wire` decoders; `outbound`: core `Outbound`s into plain JS objects.
//! - `types`: the TypeScript types of every message, shipped in the `.d.ts`.
//!
//! Invariants: nothing here panics on anything JavaScript passes in (a JS type
//! mismatch becomes an `error` message with a code); outputs are collected
//! while the engine handles an input and posted only after it returns.

mod engine;
mod held_acks;
mod host;
mod inbound;
mod outbound;
mod session;
mod timing;
mod transport;
mod types;

pub use engine::MeterflowEngine;
/// One outbound message as the worker posts it (tests/outbound_js.rs).
#[doc(hidden)]
pub use outbound::posted as outbound_js;
pub use session::{start_on_port, start_worker, WorkerSession};
pub use types::{ConfigJs, MessagePortLike, PageMessageJs, WorkerMessages};

use std::sync::Once;

/// Sends panic messages to the console. A panic still ends the instance (wasm32
/// aborts), but it leaves a readable trace instead of `unreachable executed`.
/// Any hook installed before (a test harness's) still runs after it.
pub(crate) fn install_panic_hook() {
    static HOOK: Once = Once::new();
    if std::thread::panicking() {
        return; // after an abort-mode panic (tests go on in one instance), hooks are frozen
    }
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            web_sys::console::error_1(&format!("meterflow panicked: {info}").into());
            previous(info);
        }));
    });
}
