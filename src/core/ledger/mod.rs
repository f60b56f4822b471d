//! The consumption ledger: live readings and REST catch-up merged into hourly
//! buckets per resource, with nothing lost and nothing counted twice.
//! (Being built; the engine dispatches to it.)

pub mod event;
