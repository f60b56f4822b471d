#![cfg(not(target_arch = "wasm32"))]
//! A batch's names that wait for their first accepted reading (`core::ingest`,
//! `Waiting`), against a model of the rule (README "Limits", ARCHITECTURE
//! "ingest"): bindings are read first, in order, the last binding of a key
//! winning; a key bound to a tracked meter reads it, one bound to a new name
//! makes the name wait (no meter slot used), and past `maxMeters` at binding
//! time the name is refused at once. Then readings in order: a waiting name
//! is interned at its key's first reading while there is room, else that
//! reading is refused (`meter_capacity`) and the key stops waiting (its
//! later readings are `unknown_key`), as is a key bound to nothing.
//!
//! Through the page's path (a JSON body, decoded and handled) and as the
//! core takes a batch (repeated and sparse keys, names shared by several
//! keys, which no JSON body makes), by an engine that may already track
//! some meters; the model reads the decoded batch. Checked: which readings are accepted and refused (counters), every
//! error event's code and position, and the meters tracked, in their order.

#[path = "common/cases.rs"]
mod cases;

use meterflow::core::config::Config;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::{Inbound, KeyScope, Outbound, ReadingBatch};
use meterflow::core::Engine;
use meterflow::wire::{decode_bytes, Arrival, Envelope};
use proptest::prelude::*;
use std::collections::HashMap;

const T0: f64 = 1.7e12;

fn name(i: u8) -> String {
    format!("meter-{i}")
}

/// Readings accepted, refused, the error events as (code, position), and the
/// meters tracked in their order.
type Answer = (u64, u64, Vec<(ErrorCode, Option<u32>)>, Vec<String>);

/// What the rule says.
fn model(tracked: &[String], b: &ReadingBatch, max_meters: usize) -> Answer {
    #[derive(Clone)]
    enum Key {
        Meter,
        Waiting(String),
    }
    let mut meters: Vec<String> = tracked.to_vec();
    let mut keys: HashMap<u32, Key> = HashMap::new();
    let mut errors = Vec::new();
    for (key, id) in &b.bindings {
        keys.remove(key);
        if meters.contains(id) {
            keys.insert(*key, Key::Meter);
        } else if meters.len() >= max_meters {
            errors.push((ErrorCode::MeterCapacity, None));
        } else {
            keys.insert(*key, Key::Waiting(id.clone()));
        }
    }
    let (mut accepted, mut refused) = (0, 0);
    for (i, key) in b.keys.iter().enumerate() {
        let pos = b.positions.get(i).map_or(i as u32, |&p| p);
        match keys.get(key).cloned() {
            None => {
                refused += 1;
                errors.push((ErrorCode::UnknownKey, Some(pos)));
            }
            Some(Key::Meter) => accepted += 1,
            Some(Key::Waiting(id)) => {
                if meters.contains(&id) || meters.len() < max_meters {
                    if !meters.contains(&id) {
                        meters.push(id);
                    }
                    keys.insert(*key, Key::Meter);
                    accepted += 1;
                } else {
                    keys.remove(key);
                    refused += 1;
                    errors.push((ErrorCode::MeterCapacity, Some(pos)));
                }
            }
        }
    }
    (accepted, refused, errors, meters)
}

/// Handles `input` in `e` and checks it against the model.
fn check(e: &mut Engine, input: Inbound, max_meters: u32) -> Result<(), TestCaseError> {
    let tracked: Vec<String> = {
        let mut t: Vec<(u32, String)> =
            (0..10u8).filter_map(|m| e.meter_index(&name(m)).map(|i| (i, name(m)))).collect();
        t.sort();
        t.into_iter().map(|(_, n)| n).collect()
    };
    let Inbound::Readings(batch) = &input else {
        return Err(TestCaseError::fail(format!("not a batch: {input:?}")));
    };
    prop_assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    let (accepted, refused, errors, meters) = model(&tracked, batch, max_meters as usize);
    let c0 = e.counters();
    let out = e.handle(input, T0);
    let c1 = e.counters();
    let got: Vec<(ErrorCode, Option<u32>)> = out
        .iter()
        .filter_map(|o| match o {
            Outbound::Error(err) => Some((err.code, err.position)),
            _ => None,
        })
        .collect();
    prop_assert_eq!(got, errors);
    prop_assert_eq!((c1.readings_ingested - c0.readings_ingested) as u64, accepted);
    prop_assert_eq!((c1.readings_rejected - c0.readings_rejected) as u64, refused);
    for (i, m) in meters.iter().enumerate() {
        prop_assert_eq!(e.meter_index(m), Some(i as u32), "{}", m);
    }
    prop_assert_eq!(e.meter_count(), meters.len());
    Ok(())
}

/// An engine of `max_meters` that tracks the meters `before` names (a JSON
/// body reading each once).
fn engine(max_meters: u32, before: &[u8]) -> Engine {
    let cfg = Config { max_meters, ..Config::default() };
    let mut e = Engine::new(cfg.clone()).expect("an engine");
    let items: Vec<u8> = before.to_vec();
    e.handle(decode_bytes(Envelope::Readings, &json(&items), Arrival::default(), &cfg), T0);
    e
}

fn json(meters: &[u8]) -> Vec<u8> {
    let items: Vec<String> = meters
        .iter()
        .map(|&m| format!(r#"{{"meter":"{}","ts":{},"value":1.5}}"#, name(m), T0 as u64))
        .collect();
    format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(",")).into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::cases_or(512), ..ProptestConfig::default() })]

    /// A JSON body, as the page posts it: a key per distinct name.
    #[test]
    fn a_json_body_s_names_wait_by_the_rule(
        max_meters in 1u32..6,
        before in proptest::collection::vec(0u8..10, 0..5),
        readings in proptest::collection::vec(0u8..10, 0..40),
    ) {
        let mut e = engine(max_meters, &before);
        let cfg = e.config().clone();
        let input = decode_bytes(Envelope::Readings, &json(&readings), Arrival::default(), &cfg);
        check(&mut e, input, max_meters)?;
    }

    /// A batch-scoped `ReadingBatch` as the core takes it, with what a JSON
    /// body does not make: a key bound twice, several keys naming one meter,
    /// keys far past the dense part, readings of keys bound to nothing.
    #[test]
    fn a_batch_s_repeated_and_sparse_keys_wait_by_the_rule(
        max_meters in 1u32..6,
        before in proptest::collection::vec(0u8..10, 0..5),
        bindings in proptest::collection::vec((0u32..12, any::<bool>(), 0u8..10), 0..24),
        readings in proptest::collection::vec((0u32..14, any::<bool>()), 0..40),
    ) {
        let mut e = engine(max_meters, &before);
        let key = |k: u32, far: bool| if far { (1 << 24) + k } else { k };
        let keys: Vec<u32> = readings.into_iter().map(|(k, far)| key(k, far)).collect();
        let n = keys.len();
        let batch = ReadingBatch {
            scope: KeyScope::Batch,
            bindings: bindings.into_iter().map(|(k, far, m)| (key(k, far), name(m))).collect(),
            keys,
            ts: vec![T0; n],
            values: vec![1.5; n],
            ..Default::default()
        };
        check(&mut e, Inbound::Readings(batch), max_meters)?;
    }
}
