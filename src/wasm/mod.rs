//! Web Worker binding (wasm32 only): being written.
