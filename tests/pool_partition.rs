#![cfg(not(target_arch = "wasm32"))]
//! The pool's partition filter (`config.partition`, `src/core/ingest.rs`)
//! through the page's path: JSON readings text → `wire::decode_text_bytes` →
//! `wire::for_partition` → an acked `Engine::handle`, as the worker runs it
//! when the pool (`www/client/pool.ts`) hands every worker the same payload.
//!
//! For random batches (meters hashing to every partition, duplicates, items
//! the decoder refuses, readings the engine refuses, bad meter ids, payloads
//! refused as a whole) and pools of 2, 3 and 4 partitions:
//! - each partition's windows are the oracle's, restricted to the meters it
//!   owns (FNV-1a of the id modulo the partitions), and it tracks no other;
//! - over the partitions, the meters, windows, accepted and refused counts
//!   and the errors (code, position, text) are one whole engine's, each
//!   exactly once: nothing dropped, nothing counted twice.

#[path = "common/cases.rs"]
mod cases;
use std::collections::BTreeMap;

use meterflow::core::config::{fnv1a32, Config, ConfigPatch, Partition};
use meterflow::core::event::{Inbound, KeyScope, Outbound, ReadingBatch};
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_readings, TsLayout};
use meterflow::wire::{self, Arrival, Envelope};
use proptest::prelude::*;

const T0: f64 = 1.7e12;
const WINDOW: u32 = 16;

fn engine(partition: Partition) -> Engine {
    let patch = ConfigPatch {
        window: Some(WINDOW),
        reduced_window: Some(WINDOW),
        drift_short: Some(WINDOW),
        stuck_run: Some(WINDOW),
        warmup: Some(8),
        max_errors_per_batch: Some(10_000),
        partition: Some(partition),
        ..Default::default()
    };
    Engine::new(Config::default().apply(&patch).expect("a valid config")).expect("an engine")
}

/// One generated item of a readings payload.
#[derive(Clone, Debug)]
enum Item {
    /// A good reading of meter `m` (the decoder and the engine accept it).
    Good(usize, f64),
    /// `value` a string: the decoder refuses the item (it knows no meter).
    BadValue(usize),
    /// A reading far in the future: the engine (the owner) refuses it.
    Future(usize, f64),
    /// |value| past `maxAbsValue`: the engine (the owner) refuses it.
    Huge(usize),
    /// An id with a control character: refused (`bad_meter_id`).
    BadId,
}

fn item() -> impl Strategy<Value = Item> {
    let m = 0usize..24;
    prop_oneof![
        12 => (m.clone(), -1000i32..1000).prop_map(|(m, v)| Item::Good(m, f64::from(v) / 8.0)),
        1 => m.clone().prop_map(Item::BadValue),
        1 => (m.clone(), 0i32..10).prop_map(|(m, v)| Item::Future(m, f64::from(v))),
        1 => m.prop_map(Item::Huge),
        1 => Just(Item::BadId),
    ]
}

fn meter(m: usize) -> String {
    format!("pool-meter-{m}")
}

/// The payload's text; `cut` drops its last byte (refused as a whole).
fn payload(items: &[Item], ts: f64, cut: bool) -> String {
    let body: Vec<String> = items
        .iter()
        .map(|it| match it {
            Item::Good(m, v) => format!(r#"{{"meter":"{}","ts":{ts},"value":{v}}}"#, meter(*m)),
            Item::BadValue(m) => format!(r#"{{"meter":"{}","ts":{ts},"value":"x"}}"#, meter(*m)),
            Item::Future(m, v) => {
                format!(r#"{{"meter":"{}","ts":{},"value":{v}}}"#, meter(*m), ts + 3.6e6)
            }
            Item::Huge(m) => format!(r#"{{"meter":"{}","ts":{ts},"value":1e300}}"#, meter(*m)),
            Item::BadId => format!(r#"{{"meter":"bad\u0001id","ts":{ts},"value":1}}"#),
        })
        .collect();
    let mut text = format!(r#"{{"type":"readings","readings":[{}]}}"#, body.join(","));
    if cut {
        text.pop();
    }
    text
}

/// What one engine said about the payloads: ack sums and every error.
#[derive(Debug, Default)]
struct Heard {
    accepted: f64,
    refused: f64,
    errors: Vec<(String, Option<u32>, String)>,
}

fn feed(e: &mut Engine, text: &str, now: f64, heard: &mut Heard) {
    let cfg = e.config().clone();
    let input =
        wire::decode_text_bytes(Envelope::Readings, text.as_bytes(), Arrival::default(), &cfg);
    let input =
        wire::control::acked(Some(1.0), wire::for_partition(Envelope::Readings, input, &cfg));
    for out in e.handle(input, now) {
        match out {
            Outbound::Ack(a) => {
                heard.accepted += a.accepted;
                heard.refused += a.refused;
            }
            Outbound::Error(err) => {
                heard.errors.push((err.code.as_str().to_string(), err.position, err.message))
            }
            _ => {}
        }
    }
}

fn samples(e: &Engine, id: &str) -> Option<Vec<f64>> {
    e.meter_index(id).map(|m| e.windows().samples(m as usize))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases::cases_or(256)))]

    #[test]
    fn partitions_together_are_one_engine(
        batches in prop::collection::vec((prop::collection::vec(item(), 0..60), prop::bool::weighted(0.1)), 1..4),
        of in 2u32..=4,
    ) {
        let mut whole = engine(Partition::WHOLE);
        let mut parts: Vec<Engine> = (0..of).map(|index| engine(Partition { index, of })).collect();
        let mut heard_whole = Heard::default();
        let mut heard: Vec<Heard> = (0..of).map(|_| Heard::default()).collect();
        // The oracle: each meter's accepted values, in order.
        let mut oracle: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (b, (items, cut)) in batches.iter().enumerate() {
            let ts = T0 - 60_000.0 + b as f64 * 1_000.0;
            let text = payload(items, ts, *cut);
            feed(&mut whole, &text, T0, &mut heard_whole);
            for (p, e) in parts.iter_mut().enumerate() {
                feed(e, &text, T0, &mut heard[p]);
            }
            if !*cut {
                for it in items {
                    if let Item::Good(m, v) = it {
                        oracle.entry(meter(*m)).or_default().push(*v);
                    }
                }
            }
        }
        // The whole engine is the oracle's.
        prop_assert_eq!(whole.meter_count(), oracle.len());
        for (id, values) in &oracle {
            let keep = values.len().saturating_sub(WINDOW as usize);
            prop_assert_eq!(samples(&whole, id), Some(values[keep..].to_vec()), "meter {}", id);
        }
        // Each partition: the oracle restricted to the meters it owns.
        for (p, e) in parts.iter().enumerate() {
            let owned = oracle.keys().filter(|id| fnv1a32(id.as_bytes()) % of == p as u32).count();
            prop_assert_eq!(e.meter_count(), owned, "partition {}", p);
            for id in oracle.keys() {
                let mine = fnv1a32(id.as_bytes()) % of == p as u32;
                let got = samples(e, id);
                if mine {
                    prop_assert_eq!(got, samples(&whole, id), "partition {} meter {}", p, id);
                } else {
                    prop_assert_eq!(got, None, "partition {} applied meter {}", p, id);
                }
            }
        }
        // Over the partitions: every count and every error once.
        let sum = |f: fn(&Heard) -> f64| heard.iter().map(f).sum::<f64>();
        prop_assert_eq!(sum(|h| h.accepted), heard_whole.accepted);
        prop_assert_eq!(sum(|h| h.refused), heard_whole.refused);
        let ingested: f64 = parts.iter().map(|e| e.counters().readings_ingested).sum();
        let rejected: f64 = parts.iter().map(|e| e.counters().readings_rejected).sum();
        prop_assert_eq!(ingested, whole.counters().readings_ingested);
        prop_assert_eq!(rejected, whole.counters().readings_rejected);
        let mut errors: Vec<_> = heard.iter().flat_map(|h| h.errors.iter().cloned()).collect();
        let mut expected = heard_whole.errors.clone();
        errors.sort();
        expected.sort();
        prop_assert_eq!(errors, expected);
    }
}

/// The pool's hash (`shardOf` in `www/client/pool.ts`) is FNV-1a 32: the
/// published test vectors.
#[test]
fn fnv1a32_is_the_published_hash() {
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
}

/// A partition outside `0..of`, or `of` outside `1..=64`, is `bad_config`;
/// changing the partition with meters tracked is refused (they may be
/// another worker's under the new one).
#[test]
fn partition_is_validated() {
    let bad = |index, of| {
        Config::default()
            .apply(&ConfigPatch { partition: Some(Partition { index, of }), ..Default::default() })
            .is_err()
    };
    assert!(bad(0, 0));
    assert!(bad(2, 2));
    assert!(bad(0, 65));
    assert!(!bad(63, 64));
    let text = r#"{"type":"config","config":{"partition":{"index":1,"of":2}}}"#;
    let Inbound::Config(p) = wire::decode_message_text(text, &Config::default()) else {
        panic!("a config message");
    };
    assert_eq!(p.partition, Some(Partition { index: 1, of: 2 }));
    let text = r#"{"type":"config","config":{"partition":{"index":1}}}"#;
    assert!(matches!(wire::decode_message_text(text, &Config::default()), Inbound::Rejected(_)));

    let mut e = engine(Partition::WHOLE);
    let mut heard = Heard::default();
    feed(&mut e, &payload(&[Item::Good(1, 1.0)], T0 - 1_000.0, false), T0, &mut heard);
    assert_eq!(e.meter_count(), 1);
    let patch =
        ConfigPatch { partition: Some(Partition { index: 1, of: 2 }), ..Default::default() };
    let out = e.handle(Inbound::Config(patch), T0);
    assert!(
        matches!(&out[..], [Outbound::Error(err)] if err.message.starts_with("config.partition"))
    );
    assert_eq!(e.config().partition, Partition::WHOLE);
}

/// A binary kind-1 frame handed whole to every worker (what the pool does
/// with a frame it cannot split): a binding whose key is past
/// `maxStreamKeys` is reported once, by its meter's owner, and the
/// readings of keys nothing bound once, by partition 0, as one engine does.
#[test]
fn a_whole_binary_frame_is_reported_once_over_the_partitions() {
    let ids: Vec<String> = (0..12).map(meter).collect();
    let mut batch = ReadingBatch { scope: KeyScope::Stream, ..Default::default() };
    for (k, id) in ids.iter().enumerate() {
        // Every third binding past maxStreamKeys (64 below).
        let key = if k % 3 == 0 { 1_000 + k as u32 } else { k as u32 };
        batch.bindings.push((key, id.clone()));
        batch.keys.push(key);
        batch.ts.push(T0 - 1_000.0);
        batch.values.push(k as f64);
    }
    let bytes = encode_readings(&batch, TsLayout::PerRecord).expect("encodes");
    let limit = |p| {
        let patch = ConfigPatch {
            max_stream_keys: Some(64),
            partition: Some(p),
            max_errors_per_batch: Some(1_000),
            ..Default::default()
        };
        Engine::new(Config::default().apply(&patch).expect("a valid config")).expect("an engine")
    };
    let run = |e: &mut Engine| {
        let cfg = e.config().clone();
        let input = wire::decode_bytes(Envelope::Readings, &bytes, Arrival::default(), &cfg);
        let input = wire::for_partition(Envelope::Readings, input, &cfg);
        let mut errors: Vec<(String, Option<u32>, String)> = Vec::new();
        for out in e.handle(input, T0) {
            if let Outbound::Error(err) = out {
                errors.push((err.code.as_str().to_string(), err.position, err.message));
            }
        }
        errors
    };
    let mut whole = limit(Partition::WHOLE);
    let mut expected = run(&mut whole);
    assert_eq!(expected.len(), 8, "4 bindings past the key bound, their 4 readings unknown");
    let mut got: Vec<_> =
        (0..2).flat_map(|index| run(&mut limit(Partition { index, of: 2 }))).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}
