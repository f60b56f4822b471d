//! meterflow: the live engine behind resource-consumption dashboards.
//!
//! The crate has three layers (see `ARCHITECTURE.md`):
//! - [`core`]: a pure state machine, `Engine::handle(Inbound, now_ms)`, with no I/O,
//!   no clock and no JavaScript. It owns the per-meter rings, rolling moments and
//!   anomaly detection.
//! - [`wire`]: decoding of untrusted payloads (JSON text, binary frames) into core
//!   inputs, and encoding of core outputs as JSON. Native and wasm share it.
//! - `wasm` (wasm32 only): the Web Worker binding, the only code that knows JavaScript.
//!
//! [`replay`] drives the core from an NDJSON recording with a simulated clock; the
//! `meterflow replay` command, the tests and the benchmarks use it. `eval`
//! (native only) scores the detector on a labelled corpus (`meterflow eval`).

pub mod core;
#[cfg(not(target_arch = "wasm32"))]
pub mod eval;
pub mod replay;
pub mod wire;

/// Unit tests' property case counts (`PROPTEST_CASES`); the properties run natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod test_cases;

/// The native feed server (`feed` feature; `meterflow-feed`).
#[cfg(all(feature = "feed", not(target_arch = "wasm32")))]
pub mod feed;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
