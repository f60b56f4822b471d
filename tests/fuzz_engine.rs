#![cfg(not(target_arch = "wasm32"))]
//! Stateful fuzzing of one engine through the wire (issue 6), with proptest
//! (cargo-fuzz needs a nightly toolchain).
//!
//! A case is a sequence of page messages fed to one engine, each decoded as
//! the worker or replay decodes it: readings (JSON, binary kind 1), live frames
//! (JSON, kind 2), hellos, catch-ups (JSON, kind 3), configs at every boundary
//! of every bound (just under, at, just over), queries, resets, ticks, flushes
//! and clock advances; valid messages, batches with bad items mixed in,
//! mutated payloads (bit flips, truncations, junk) and hostile JSON (extreme
//! exponents, huge digit strings, deep nesting, numbers around ±2^53).
//!
//! After every step:
//! - nothing panicked;
//! - the HLC of `totals` never went backwards (ARCHITECTURE.md);
//! - memory follows the payload: `engine_bytes` stays within what a fresh
//!   engine of any configuration applied so far holds, plus 64 bytes per payload
//!   byte received, plus the configured per-meter state of each meter, plus the
//!   ring slab `maxMeters × window × 8` of any configuration; and no
//!   single allocation made while handling a message exceeds 64 bytes per byte
//!   of that message plus 1 MiB, or the ring slab `maxMeters × window × 8`
//!   reserved at once (configuration changes excepted: they reserve what the
//!   configured caps say, which the `engine_bytes` bound covers);
//! - valid items interleaved with garbage are all applied: a twin engine is fed
//!   only the valid part (the batch without its bad items; nothing for a
//!   message refused whole), and both show the same meters, the same windows
//!   (bit for bit) and the same totals.
//!
//! Known issue-6 bugs this finds (each fails the test until fixed): an amount
//! `1e-2147483648` panics in `Decimal::parse`; a kind-1/kind-2 frame binding a
//! far key under a large `maxStreamKeys` grows a key table far beyond the
//! payload; refused readings intern their meters (and exhaust `maxMeters`);
//! a catch-up refused whole (hour listed twice, 300-byte meter id) or from 24 h
//! ahead changes the totals; `"+5"` and `" 5 "` are accepted amounts; a live
//! amount of 9.007e15 lands in a window beyond `maxAbsValue`; and, not in the
//! issue, a full `reset` restarts the HLC so `totals` go back in time.
//!
//! Cases: `METERFLOW_FUZZ_CASES` (default 300 here; each case is up to 40
//! messages). `make fuzz` runs a bounded number; a long run:
//! `METERFLOW_FUZZ_CASES=100000 cargo test --release --test fuzz_engine`.

#[path = "common/cases.rs"]
mod cases;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use base64::Engine as _;
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::{format_units, Decimal};
use meterflow::core::error::ErrorCode;
use meterflow::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, Outbound, Query,
    ReadingBatch, ResetScope, TotalsEvent,
};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_catchup, encode_live, encode_readings, TsLayout};
use meterflow::wire::{decode_binary, decode_message, decode_text, Arrival, Envelope};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Value};

/// Counts the largest single allocation this thread made since the last reset.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// thread-local is a `Cell<usize>` with a const initialiser (no allocation, no
// destructor), so noting a size never re-enters the allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

const T0: f64 = 1_764_064_800_000.0;
const HOUR: f64 = 3_600_000.0;
const METERS: [&str; 6] = ["m0", "m1", "m2", "m3", "m4", "m5"];
const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];
const TWO_53: u64 = 1 << 53;

/// Whether the HLC check spans a `reset` of everything. It should (the
/// worker's HLC never goes backwards, and the page keeps the totals with the
/// newest HLC), but `Engine::reset(All)` builds a new engine with a new clock,
/// so after a reset the totals' HLC can go back (found by this test). Until
/// that is fixed the check starts over at a full reset.
const RESET_KEEPS_HLC: bool = true;

/// Whether a refused reading may leave its meter interned. It must not (issue
/// 6: 5,000 refused readings with new ids exhaust `maxMeters`), but today
/// ingest interns before it validates; until that is fixed the twin check
/// accepts extra meters with empty windows in the fuzzed engine.
const REFUSED_ITEMS_MAY_INTERN: bool = false;

/// Whether a catch-up refused whole (an hour listed twice) leaves the ledger
/// as it was. It must (PROTOCOL.md 3.6, decode → check → apply), but today it
/// advances the watermark (issue 6); until that is fixed the twin gets the
/// refused body too, so the twin check does not see it.
const REFUSED_CATCHUP_LEAVES_NO_TRACE: bool = true;

/// Whether live readings pass the readings checks on their way into the
/// windows. They must (one validation for every path), but today a live amount
/// of 9.007e15 lands in a window beyond `maxAbsValue` (issue 6); until that is
/// fixed the window bound is not checked.
const LIVE_READINGS_CHECKED: bool = true;

fn cases() -> u32 {
    cases::cases_from("METERFLOW_FUZZ_CASES", 300)
}

/// Small limits so that limits are hit and engines stay cheap.
fn base_config() -> Config {
    let p = ConfigPatch {
        window: Some(16),
        reduced_window: Some(16),
        warmup: Some(4),
        drift_short: Some(4),
        stuck_run: Some(4),
        max_meters: Some(64),
        max_stream_keys: Some(256),
        max_payload_bytes: Some(1 << 16),
        max_batch: Some(200),
        max_errors_per_batch: Some(8),
        dedup_window: Some(64),
        ..Default::default()
    };
    Config::default().apply(&p).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Messages

/// How a payload reaches the engine.
#[derive(Clone, Debug)]
enum Msg {
    /// A whole page message, through `decode_message` (replay's path).
    Page(Value),
    /// JSON text after the envelope, through `decode_text` (the worker's path).
    Text(Envelope, String),
    /// A binary frame after the envelope, through `decode_binary`.
    Binary(Envelope, Vec<u8>),
    Tick,
    Flush,
    /// The clock moves on by this many ms.
    Advance(f64),
}

impl Msg {
    fn len(&self) -> usize {
        match self {
            Msg::Page(v) => v.to_string().len(),
            Msg::Text(_, s) => s.len(),
            Msg::Binary(_, b) => b.len(),
            _ => 0,
        }
    }

    fn decode(&self, cfg: &Config) -> Option<Inbound> {
        Some(match self {
            Msg::Page(v) => decode_message(v, cfg),
            Msg::Text(env, s) => decode_text(*env, s, Arrival::default(), cfg),
            Msg::Binary(env, b) => decode_binary(*env, b, cfg),
            Msg::Tick => Inbound::Tick(Default::default()),
            Msg::Flush => Inbound::Flush,
            Msg::Advance(_) => return None,
        })
    }
}

/// One step: what the fuzzed engine gets, and what its twin gets (`None`:
/// nothing, the message must be refused whole; `Same`: the same message).
#[derive(Clone, Debug)]
struct Step {
    msg: Msg,
    twin: Twin,
}

#[derive(Clone, Debug)]
enum Twin {
    Same,
    Nothing,
    Other(Msg),
    /// A mutated or hostile payload: if it decodes to anything but a refusal,
    /// the twin gets it too.
    IfAccepted,
    /// Refused if the resource is configured when the message arrives, else
    /// the twin gets it too.
    NothingIfConfigured(String),
}

fn same(msg: Msg) -> Step {
    Step { msg, twin: Twin::Same }
}

// ---------------------------------------------------------------------------
// Recipes: what proptest generates, turned into messages by plain code.

/// A bad reading item for a JSON batch (the rest of the batch still applies).
#[derive(Clone, Debug)]
enum BadReading {
    EmptyMeter,
    LongMeter,
    NewMeterBadValue(u8),
    ValueString,
    ValueHuge,
    ValueOverflow,
    TsString,
    TsFarPast,
    TsOverflow,
    Missing,
    NotObject,
}

/// A bad record for a JSON live frame.
#[derive(Clone, Debug)]
enum BadLive {
    Negative,
    TooFine,
    UnknownResource,
    IdFraction,
    IdPast53,
    AmountWord,
    HugeDigits,
    /// `"+5"` and `" 5 "`: one grammar for amounts (issue 6), both refused.
    Plus,
    Spaces,
}

#[derive(Clone, Debug)]
enum Recipe {
    Readings {
        binary: bool,
        page: bool,
        items: Vec<(usize, i32, f64)>,
        bad: Vec<(usize, BadReading)>,
    },
    Live {
        binary: bool,
        epoch: u64,
        seq: u64,
        ahead_ms: i32,
        items: Vec<(usize, usize, u64, i32, u32)>,
        bad: Vec<(usize, BadLive)>,
        scale: u8,
    },
    Hello {
        epoch: u64,
        next_seq: Option<u64>,
        ahead_ms: Option<i32>,
    },
    Catchup {
        binary: bool,
        as_of_back_ms: u32,
        buckets: Vec<(usize, u8, u32)>,
        /// An hour listed twice: the whole result must be refused.
        duplicate: bool,
        /// A watermark 24 h ahead of the clock: refused whole (issue 6).
        future: bool,
        /// A per-meter bucket whose meter id is 300 bytes: refused whole.
        long_meter: bool,
        rtt: Option<(u16, u16)>,
    },
    Config(&'static str, Value),
    Query(u8, usize),
    Reset(Option<usize>),
    Tick,
    Flush,
    Advance(u32),
    Mutated(Box<Recipe>, Mutation),
    Hostile(Hostile),
    /// `maxStreamKeys` set to `max_keys`, then a frame (kind 1 or 2) binding
    /// one far `key`: memory must follow the payload, not the key.
    FarKey {
        kind1: bool,
        key: u32,
        max_keys: u32,
    },
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    Junk(usize, u8),
    Cut(usize, usize),
}

#[derive(Clone, Debug)]
enum Hostile {
    /// `readings` with a number of this text as value or ts.
    Number(String, bool),
    /// A live frame whose epoch/seq/id/hlc is this number text.
    FrameField(&'static str, String),
    /// Nested arrays as data.
    Nesting(usize),
    /// An amount of this text.
    Amount(String),
}

/// Number texts around every edge a JSON number has.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("9007199254740991".to_string()),
        Just("9007199254740992".to_string()),
        Just("9007199254740993".to_string()),
        Just("-9007199254740993".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e308".to_string()),
        Just("1e309".to_string()),
        Just("-1e309".to_string()),
        Just("1e-400".to_string()),
        Just("5e-324".to_string()),
        Just("-0".to_string()),
        Just("0.1e1".to_string()),
        Just("1E+2".to_string()),
        Just("4294967295".to_string()),
        Just("4294967296".to_string()),
        Just("1.7976931348623157e308".to_string()),
        Just("1e-2147483648".to_string()),
        Just("1e-2147483649".to_string()),
        Just("1e2147483647".to_string()),
        Just("0.5e-2147483648".to_string()),
        (1usize..2_000).prop_map(|n| "9".repeat(n)),
        (1usize..500).prop_map(|n| format!("0.{}1", "0".repeat(n))),
        any::<f64>().prop_map(|x| format!("{x:e}")),
        any::<i64>().prop_map(|x| x.to_string()),
        (-400i32..400).prop_map(|e| format!("1e{e}")),
    ]
}

fn bad_reading() -> impl Strategy<Value = BadReading> {
    prop_oneof![
        Just(BadReading::EmptyMeter),
        Just(BadReading::LongMeter),
        // While refused items intern their meters, few distinct ones, so that
        // they cannot exhaust `maxMeters` and hide the twin check's findings.
        any::<u8>().prop_map(|k| BadReading::NewMeterBadValue(if REFUSED_ITEMS_MAY_INTERN {
            k % 8
        } else {
            k
        })),
        Just(BadReading::ValueString),
        Just(BadReading::ValueHuge),
        Just(BadReading::ValueOverflow),
        Just(BadReading::TsString),
        Just(BadReading::TsFarPast),
        Just(BadReading::TsOverflow),
        Just(BadReading::Missing),
        Just(BadReading::NotObject),
    ]
}

fn bad_live() -> impl Strategy<Value = BadLive> {
    prop_oneof![
        Just(BadLive::Negative),
        Just(BadLive::TooFine),
        Just(BadLive::UnknownResource),
        Just(BadLive::IdFraction),
        Just(BadLive::IdPast53),
        Just(BadLive::AmountWord),
        Just(BadLive::HugeDigits),
        Just(BadLive::Plus),
        Just(BadLive::Spaces),
    ]
}

fn whole_53() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..20, 1 => Just(TWO_53 - 1), 1 => Just(TWO_53)]
}

/// Every config bound: just under, at and just over, and a few ordinary values.
fn config_choice() -> impl Strategy<Value = (&'static str, Value)> {
    let table: Vec<(&'static str, Value)> = vec![
        ("window", json!(7)),
        ("window", json!(8)),
        ("window", json!(16)),
        ("window", json!(32)),
        ("reducedWindow", json!(7)),
        ("reducedWindow", json!(8)),
        ("reducedWindow", json!(16)),
        ("reducedWindow", json!(17)),
        ("maxMeters", json!(0)),
        ("maxMeters", json!(1)),
        ("maxMeters", json!(3)),
        ("maxMeters", json!(64)),
        ("maxPayloadBytes", json!(63)),
        ("maxPayloadBytes", json!(64)),
        ("maxPayloadBytes", json!(65536)),
        ("maxBatch", json!(0)),
        ("maxBatch", json!(1)),
        ("maxBatch", json!(200)),
        ("maxStreamKeys", json!(0)),
        ("maxStreamKeys", json!(1)),
        ("maxStreamKeys", json!(256)),
        ("maxErrorsPerBatch", json!(0)),
        ("maxErrorsPerBatch", json!(1)),
        ("historyHours", json!(0)),
        ("historyHours", json!(1)),
        ("historyHours", json!(168)),
        ("historyHours", json!(169)),
        ("maxOffsetMs", json!(-1)),
        ("maxOffsetMs", json!(0)),
        ("maxOffsetMs", json!(500)),
        ("dedupWindow", json!(63)),
        ("dedupWindow", json!(64)),
        ("dedupWindow", json!(65)),
        ("dedupWindow", json!(128)),
        ("maxPendingReadings", json!(0)),
        ("maxPendingReadings", json!(1)),
        ("maxPendingReadings", json!(5)),
        ("maxMissingSeqs", json!(0)),
        ("maxMissingSeqs", json!(1)),
        ("maxChannels", json!(0)),
        ("maxChannels", json!(1)),
        ("spikeVotesOf", json!(0)),
        ("spikeVotesOf", json!(32)),
        ("spikeVotesOf", json!(33)),
        ("spikeVotesNeeded", json!(0)),
        ("spikeVotesNeeded", json!(1)),
        ("stdFloor", json!(1e-13)),
        ("stdFloor", json!(1e-12)),
        ("stdFloorRel", json!(-1e-300)),
        ("stdFloorRel", json!(1.0)),
        ("stdFloorRel", json!(1.0000000000000002)),
        ("spikeWidenMax", json!(0.9999999999999999)),
        ("spikeWidenMax", json!(1.0)),
        ("spikeWidenMax", json!(100.0)),
        ("spikeWidenMax", json!(100.00000000000001)),
        ("driftConsecutive", json!(0)),
        ("driftConsecutive", json!(65535)),
        ("driftConsecutive", json!(65536)),
        ("clearAfter", json!(0)),
        ("clearAfter", json!(1)),
        ("clearAfter", json!(65536)),
        ("tickMs", json!(0)),
        ("tickMs", json!(5e-324)),
        ("tickMs", json!(1e308)),
        ("totalsFlushMs", json!(1e-300)),
        ("catchupIntervalMs", json!(1)),
        ("fetchRetryMs", json!(1e308)),
        ("maxAbsValue", json!(0)),
        ("maxAbsValue", json!(1)),
        ("maxAbsValue", json!(1.7976931348623157e308)),
        ("maxAgeMs", json!(1)),
        ("maxFutureMs", json!(1)),
        ("maxClockSkewMs", json!(0)),
        ("nodeId", json!(0)),
        ("nodeId", json!(4294967295u64)),
        ("nodeId", json!(4294967296u64)),
        ("window", json!(1_048_576)),
        ("window", json!(1_048_577)),
        ("maxMeters", json!(16_777_216)),
        ("maxMeters", json!(16_777_217)),
        ("maxStreamKeys", json!(1_048_576)),
        ("maxStreamKeys", json!(4_294_967_295u64)),
        ("maxPayloadBytes", json!(4_294_967_295u64)),
        ("maxBatch", json!(4_294_967_295u64)),
        ("detectLive", json!(false)),
        ("detectLive", json!(true)),
        ("resources", json!([{"name": "water", "unit": "m3", "decimals": 9}])),
        ("resources", json!([{"name": "water", "unit": "m3", "decimals": 10}])),
        ("resources", json!([{"name": "", "unit": "m3", "decimals": 3}])),
        ("resources", json!([{"name": "w".repeat(64), "unit": "", "decimals": 0}])),
        ("resources", json!([{"name": "w".repeat(65), "unit": "", "decimals": 0}])),
        (
            "resources",
            json!((0..33)
                .map(|i| json!({"name": format!("r{i}"), "unit": "u", "decimals": 3}))
                .collect::<Vec<_>>()),
        ),
        (
            "resources",
            json!(RESOURCES
                .iter()
                .map(|r| json!({"name": r, "unit": "u", "decimals": 3}))
                .collect::<Vec<_>>()),
        ),
    ];
    // While refused items intern their meters, a `maxMeters` below the
    // meters the generators name would turn that bug into refused valid ones.
    let table: Vec<(&'static str, Value)> = table
        .into_iter()
        .filter(|(k, v)| {
            !(REFUSED_ITEMS_MAY_INTERN && *k == "maxMeters" && v.as_u64().is_some_and(|n| n < 64))
        })
        .collect();
    prop::sample::select(table)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Junk(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Cut(i, n)),
    ]
}

fn base_recipe() -> impl Strategy<Value = Recipe> {
    let reading = (0usize..METERS.len(), -60_000i32..60_000, -1e6f64..1e6);
    let live_item = (
        0usize..METERS.len(),
        0usize..RESOURCES.len(),
        0u64..200,
        -60_000i32..60_000,
        0u32..100_000,
    );
    prop_oneof![
        4 => (
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::collection::vec(reading, 0..12),
            prop::collection::vec((0usize..12, bad_reading()), 0..4),
        )
            .prop_map(|(binary, page, items, bad)| Recipe::Readings { binary, page, items, bad }),
        4 => (
            any::<bool>(),
            whole_53(),
            whole_53(),
            -2_000i32..2_000,
            prop::collection::vec(live_item, 0..10),
            prop::collection::vec((0usize..10, bad_live()), 0..3),
            3u8..=9,
        )
            .prop_map(|(binary, epoch, seq, ahead_ms, items, bad, scale)| Recipe::Live {
                binary,
                epoch,
                seq,
                ahead_ms,
                items,
                bad,
                scale,
            }),
        1 => (whole_53(), prop::option::of(whole_53()), prop::option::of(-2_000i32..2_000))
            .prop_map(|(epoch, next_seq, ahead_ms)| Recipe::Hello { epoch, next_seq, ahead_ms }),
        2 => (
            any::<bool>(),
            0u32..600_000,
            prop::collection::vec((0usize..RESOURCES.len(), 0u8..8, 0u32..1_000_000), 0..12),
            prop::bool::weighted(0.2),
            prop::option::of((0u16..5_000, 0u16..5_000)),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(binary, as_of_back_ms, buckets, duplicate, rtt, future, long_meter)| {
                Recipe::Catchup { binary, as_of_back_ms, buckets, duplicate, future, long_meter, rtt }
            }),
        1 => (any::<bool>(), prop::sample::select(vec![255u32, 65_535, 1_048_575, 4_294_967_294]), prop::sample::select(vec![256u32, 1_048_576, 4_294_967_295]))
            .prop_map(|(kind1, key, max_keys)| Recipe::FarKey { kind1, key, max_keys }),
        1 => config_choice().prop_map(|(k, v)| Recipe::Config(k, v)),
        1 => (0u8..5, 0usize..METERS.len()).prop_map(|(q, m)| Recipe::Query(q, m)),
        1 => prop::option::of(0usize..METERS.len() + 1).prop_map(Recipe::Reset),
        1 => Just(Recipe::Tick),
        1 => Just(Recipe::Flush),
        2 => (0u32..5_000).prop_map(Recipe::Advance),
        1 => prop_oneof![
            (number_text(), any::<bool>()).prop_map(|(n, v)| Hostile::Number(n, v)),
            (prop::sample::select(vec!["epoch", "seq", "id", "wallMs", "counter"]), number_text())
                .prop_map(|(f, n)| Hostile::FrameField(f, n)),
            (1usize..20_000).prop_map(Hostile::Nesting),
            number_text().prop_map(Hostile::Amount),
        ]
        .prop_map(Recipe::Hostile),
    ]
}

fn recipe() -> impl Strategy<Value = Recipe> {
    prop_oneof![
        6 => base_recipe(),
        1 => (base_recipe(), mutation()).prop_map(|(r, m)| Recipe::Mutated(Box::new(r), m)),
    ]
}

// ---------------------------------------------------------------------------
// Building messages

fn readings_item(meter: &str, ts: f64, value: f64) -> Value {
    json!({ "meter": meter, "ts": ts, "value": value })
}

fn bad_reading_item(b: &BadReading, now: f64) -> String {
    match b {
        BadReading::EmptyMeter => format!(r#"{{"meter":"","ts":{now},"value":1}}"#),
        BadReading::LongMeter => {
            format!(r#"{{"meter":"{}","ts":{now},"value":1}}"#, "x".repeat(257))
        }
        BadReading::NewMeterBadValue(k) => {
            format!(r#"{{"meter":"bad-{k}","ts":{now},"value":"x"}}"#)
        }
        BadReading::ValueString => format!(r#"{{"meter":"m0","ts":{now},"value":"1"}}"#),
        BadReading::ValueHuge => format!(r#"{{"meter":"m1","ts":{now},"value":-1.8e308}}"#),
        BadReading::ValueOverflow => format!(r#"{{"meter":"m2","ts":{now},"value":1e999}}"#),
        BadReading::TsString => r#"{"meter":"m3","ts":"now","value":1}"#.to_string(),
        BadReading::TsFarPast => r#"{"meter":"m4","ts":1000,"value":1}"#.to_string(),
        BadReading::TsOverflow => r#"{"meter":"m5","ts":1e400,"value":1}"#.to_string(),
        BadReading::Missing => r#"{"meter":"m0"}"#.to_string(),
        BadReading::NotObject => "[1,2,3]".to_string(),
    }
}

fn live_record(meter: &str, resource: &str, id: u64, ts: f64, amount: &str) -> String {
    format!(
        r#"{{"meter":"{meter}","resource":"{resource}","id":{id},"ts":{ts},"amount":{amount}}}"#
    )
}

fn bad_live_record(b: &BadLive, now: f64) -> String {
    match b {
        BadLive::Negative => live_record("m0", "water", 5, now, "\"-1\""),
        BadLive::TooFine => live_record("m1", "water", 5, now, "\"1.0000000001\""),
        BadLive::UnknownResource => live_record("m2", "gas", 5, now, "1"),
        BadLive::IdFraction => {
            live_record("m3", "energy", 0, now, "1").replace("\"id\":0", "\"id\":1.5")
        }
        BadLive::IdPast53 => {
            live_record("m4", "energy", 0, now, "1").replace("\"id\":0", "\"id\":9007199254740993")
        }
        BadLive::AmountWord => live_record("m5", "bandwidth", 5, now, "\"five\""),
        BadLive::HugeDigits => live_record("m0", "bandwidth", 6, now, &"9".repeat(400)),
        BadLive::Plus => live_record("m1", "bandwidth", 7, now, "\"+5\""),
        BadLive::Spaces => live_record("m2", "bandwidth", 8, now, "\" 5 \""),
    }
}

fn hlc_json(h: Hlc) -> String {
    format!(r#"{{"wallMs":{},"counter":{}}}"#, h.wall_ms, h.counter)
}

fn stamp(now: f64, ahead_ms: i32) -> Hlc {
    Hlc { wall_ms: (now + f64::from(ahead_ms)).max(0.0) as u64, counter: 0 }
}

/// Inserts `bad` items at their positions among `good` (JSON item texts).
fn interleave(good: &[String], bad: &[(usize, String)]) -> String {
    let mut out: Vec<&str> = good.iter().map(String::as_str).collect();
    for (pos, b) in bad {
        let at = (*pos).min(out.len());
        out.insert(at, b);
    }
    out.join(",")
}

fn mutate(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let n = bytes.len();
    match *m {
        Mutation::FlipBit(i, b) => bytes[i % n] ^= 1 << b,
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Junk(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Cut(i, k) => {
            let at = i % n;
            bytes.drain(at..(at + k).min(n));
        }
    }
    bytes
}

/// The steps of one recipe: one, or a config and a frame for [`Recipe::FarKey`].
fn build_all(r: &Recipe, now: f64) -> Vec<Step> {
    let Recipe::FarKey { kind1, key, max_keys } = r else { return vec![build(r, now)] };
    let config =
        same(Msg::Page(json!({ "type": "config", "config": { "maxStreamKeys": max_keys } })));
    let frame = if *kind1 {
        let b = ReadingBatch {
            scope: KeyScope::Stream,
            bindings: vec![(*key, "m0".to_string())],
            keys: vec![*key],
            ts: vec![now],
            values: vec![1.0],
            ..Default::default()
        };
        encode_readings(&b, TsLayout::PerRecord).map(|b| Msg::Binary(Envelope::Readings, b))
    } else {
        let f = LiveFrame {
            epoch: 1,
            seq: 0,
            stamp: stamp(now, 0),
            scope: KeyScope::Stream,
            bindings: vec![LiveBinding { key: *key, meter: "m0".into(), resource: "water".into() }],
            keys: vec![*key],
            ids: vec![1],
            ts: vec![now],
            amounts: vec![Decimal::new(1, 3)],
            ..Default::default()
        };
        encode_live(&f, 3, TsLayout::PerRecord).map(|b| Msg::Binary(Envelope::Live, b))
    };
    match frame {
        Ok(m) => vec![config, same(m)],
        Err(_) => vec![config],
    }
}

fn build(r: &Recipe, now: f64) -> Step {
    match r {
        Recipe::FarKey { .. } => same(Msg::Tick),
        Recipe::Readings { binary: true, items, .. } => {
            // Kind 1: every frame binds the keys it uses (key = meter index).
            let mut used: Vec<usize> = items.iter().map(|i| i.0).collect();
            used.sort_unstable();
            used.dedup();
            let b = ReadingBatch {
                scope: KeyScope::Stream,
                bindings: used.iter().map(|&m| (m as u32, METERS[m].to_string())).collect(),
                keys: items.iter().map(|i| i.0 as u32).collect(),
                ts: items.iter().map(|i| now + f64::from(i.1)).collect(),
                values: items.iter().map(|i| i.2).collect(),
                ..Default::default()
            };
            match encode_readings(&b, TsLayout::PerRecord) {
                Ok(bytes) => same(Msg::Binary(Envelope::Readings, bytes)),
                Err(_) => same(Msg::Tick),
            }
        }
        Recipe::Readings { binary: false, page, items, bad } => {
            let good: Vec<String> = items
                .iter()
                .map(|&(m, dt, v)| readings_item(METERS[m], now + f64::from(dt), v).to_string())
                .collect();
            let bad: Vec<(usize, String)> =
                bad.iter().map(|(p, b)| (*p, bad_reading_item(b, now))).collect();
            let text = |bad: &[(usize, String)]| {
                format!(r#"{{"type":"readings","readings":[{}]}}"#, interleave(&good, bad))
            };
            let wrap = |t: String| {
                if *page {
                    Msg::Page(json!({ "type": "readings", "data": t }))
                } else {
                    Msg::Text(Envelope::Readings, t)
                }
            };
            let twin = if bad.is_empty() { Twin::Same } else { Twin::Other(wrap(text(&[]))) };
            Step { msg: wrap(text(&bad)), twin }
        }
        Recipe::Live { binary: true, epoch, seq, ahead_ms, items, scale, .. } => {
            let key = |m: usize, r: usize| (m * RESOURCES.len() + r) as u32;
            let mut used: Vec<(usize, usize)> = items.iter().map(|i| (i.0, i.1)).collect();
            used.sort_unstable();
            used.dedup();
            let f = LiveFrame {
                epoch: *epoch,
                seq: *seq,
                stamp: stamp(now, *ahead_ms),
                scope: KeyScope::Stream,
                bindings: used
                    .iter()
                    .map(|&(m, r)| LiveBinding {
                        key: key(m, r),
                        meter: METERS[m].to_string(),
                        resource: RESOURCES[r].to_string(),
                    })
                    .collect(),
                keys: items.iter().map(|i| key(i.0, i.1)).collect(),
                ids: items.iter().map(|i| i.2).collect(),
                ts: items.iter().map(|i| now + f64::from(i.3)).collect(),
                amounts: items.iter().map(|i| Decimal::new(i64::from(i.4), 3)).collect(),
                ..Default::default()
            };
            match encode_live(&f, *scale, TsLayout::PerRecord) {
                Ok(bytes) => same(Msg::Binary(Envelope::Live, bytes)),
                Err(_) => same(Msg::Tick),
            }
        }
        Recipe::Live { binary: false, epoch, seq, ahead_ms, items, bad, .. } => {
            let good: Vec<String> = items
                .iter()
                .map(|&(m, r, id, dt, units)| {
                    let amount = format!("\"{}\"", format_units(i64::from(units), 3));
                    live_record(METERS[m], RESOURCES[r], id, now + f64::from(dt), &amount)
                })
                .collect();
            let bad: Vec<(usize, String)> =
                bad.iter().map(|(p, b)| (*p, bad_live_record(b, now))).collect();
            let h = hlc_json(stamp(now, *ahead_ms));
            let text = |bad: &[(usize, String)]| {
                format!(
                    r#"{{"type":"frame","epoch":{epoch},"seq":{seq},"hlc":{h},"readings":[{}]}}"#,
                    interleave(&good, bad)
                )
            };
            let twin = if bad.is_empty() {
                Twin::Same
            } else {
                Twin::Other(Msg::Text(Envelope::Live, text(&[])))
            };
            Step { msg: Msg::Text(Envelope::Live, text(&bad)), twin }
        }
        Recipe::Hello { epoch, next_seq, ahead_ms } => {
            let mut s = format!(r#"{{"type":"hello","epoch":{epoch}"#);
            if let Some(n) = next_seq {
                s.push_str(&format!(r#","nextSeq":{n}"#));
            }
            if let Some(a) = ahead_ms {
                s.push_str(&format!(r#","hlc":{},"serverTime":{}"#, hlc_json(stamp(now, *a)), now));
            }
            s.push('}');
            same(Msg::Text(Envelope::Live, s))
        }
        Recipe::Catchup { binary, as_of_back_ms, buckets, duplicate, future, long_meter, rtt } => {
            let hour0 = (now / HOUR).floor() * HOUR;
            let mut seen = std::collections::HashSet::new();
            let mut list: Vec<CatchupBucket> = Vec::new();
            for &(r, back, units) in buckets {
                if seen.insert((r, back)) {
                    list.push(CatchupBucket {
                        meter: None,
                        resource: RESOURCES[r].to_string(),
                        hour_ms: hour0 - f64::from(back) * HOUR,
                        total: Decimal::new(i64::from(units), 3),
                        position: list.len() as u32,
                    });
                }
            }
            // An hour listed twice refuses the body, unless its resource is not
            // configured (then the decoder drops both and the ledger ignores them).
            let duplicated =
                (*duplicate).then(|| list.first().map(|b| b.resource.clone())).flatten();
            if duplicated.is_some() {
                let mut again = list[0].clone();
                again.position = list.len() as u32;
                list.push(again);
            }
            let long = *long_meter && !list.is_empty();
            if long {
                list.push(CatchupBucket {
                    meter: Some("x".repeat(300)),
                    resource: RESOURCES[0].to_string(),
                    hour_ms: hour0 - 7.0 * HOUR,
                    total: Decimal::new(1, 3),
                    position: list.len() as u32,
                });
            }
            let refused = long || *future;
            let as_of = if *future {
                stamp(now, 24 * 3_600_000)
            } else {
                stamp(now, -(*as_of_back_ms as i32))
            };
            let (sent, received) = match rtt {
                Some((a, b)) => (Some(now - f64::from(*a) - f64::from(*b)), Some(now)),
                None => (None, None),
            };
            let c = Catchup {
                as_of,
                from_hour_ms: Some(hour0 - 7.0 * HOUR),
                to_hour_ms: Some(hour0),
                buckets: list,
                server_time_ms: rtt.map(|(_, b)| now - f64::from(b)),
                ..Default::default()
            };
            let msg = if *binary {
                match encode_catchup(&c, 3) {
                    Ok(bytes) => {
                        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                        let mut v = json!({ "type": "catchup", "dataBase64": b64 });
                        if let (Some(s), Some(r)) = (sent, received) {
                            v["sentAt"] = json!(s);
                            v["receivedAt"] = json!(r);
                        }
                        Msg::Page(v)
                    }
                    Err(_) => Msg::Tick,
                }
            } else {
                let mut s = format!(r#"{{"type":"catchup","asOf":{}"#, hlc_json(as_of));
                s.push_str(&format!(r#","from":{},"to":{}"#, hour0 - 7.0 * HOUR, hour0));
                if let Some(t) = c.server_time_ms {
                    s.push_str(&format!(r#","serverTime":{t}"#));
                }
                s.push_str(r#","buckets":["#);
                let items: Vec<String> = c
                    .buckets
                    .iter()
                    .map(|b| {
                        let meter = b.meter.as_ref().map(|m| format!(r#","meter":"{m}""#));
                        format!(
                            r#"{{"resource":"{}","hour":{},"total":"{}"{}}}"#,
                            b.resource,
                            b.hour_ms,
                            format_units(b.total.to_units(3).unwrap_or(0), 3),
                            meter.unwrap_or_default()
                        )
                    })
                    .collect();
                s.push_str(&items.join(","));
                s.push_str("]}");
                let mut v = json!({ "type": "catchup", "data": s });
                if let (Some(s), Some(r)) = (sent, received) {
                    v["sentAt"] = json!(s);
                    v["receivedAt"] = json!(r);
                }
                Msg::Page(v)
            };
            let twin = match duplicated {
                _ if refused && REFUSED_CATCHUP_LEAVES_NO_TRACE => Twin::Nothing,
                Some(resource) if REFUSED_CATCHUP_LEAVES_NO_TRACE => {
                    Twin::NothingIfConfigured(resource)
                }
                _ => Twin::Same,
            };
            Step { msg, twin }
        }
        Recipe::Config(k, v) => {
            let mut config = serde_json::Map::new();
            config.insert((*k).to_string(), v.clone());
            same(Msg::Page(json!({ "type": "config", "config": config })))
        }
        Recipe::Query(q, m) => {
            let msg = match q {
                0 => json!({ "type": "query", "query": "stats" }),
                1 => json!({ "type": "query", "query": "totals" }),
                2 => json!({ "type": "query", "query": "window", "meter": METERS[*m] }),
                3 => json!({ "type": "query", "query": "meter", "meter": METERS[*m] }),
                _ => json!({ "type": "query", "query": "window" }),
            };
            same(Msg::Page(msg))
        }
        Recipe::Reset(m) => {
            let msg = match m {
                Some(m) if *m < METERS.len() => json!({ "type": "reset", "meter": METERS[*m] }),
                Some(_) => json!({ "type": "reset", "meter": "no-such-meter" }),
                None => json!({ "type": "reset" }),
            };
            same(Msg::Page(msg))
        }
        Recipe::Tick => same(Msg::Tick),
        Recipe::Flush => same(Msg::Flush),
        Recipe::Advance(ms) => same(Msg::Advance(f64::from(*ms))),
        Recipe::Mutated(base, m) => {
            let step = build(base, now);
            let msg = match step.msg {
                Msg::Text(env, s) => {
                    let bytes = mutate(s.into_bytes(), m);
                    Msg::Text(env, String::from_utf8_lossy(&bytes).into_owned())
                }
                Msg::Binary(env, b) => Msg::Binary(env, mutate(b, m)),
                Msg::Page(v) => {
                    let bytes = mutate(v.to_string().into_bytes(), m);
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(v) => Msg::Page(v),
                        Err(_) => Msg::Text(
                            Envelope::Readings,
                            String::from_utf8_lossy(&bytes).into_owned(),
                        ),
                    }
                }
                other => other,
            };
            Step { msg, twin: Twin::IfAccepted }
        }
        Recipe::Hostile(h) => {
            let text = match h {
                Hostile::Number(n, true) => {
                    format!(
                        r#"{{"type":"readings","readings":[{{"meter":"m0","ts":{now},"value":{n}}}]}}"#
                    )
                }
                Hostile::Number(n, false) => {
                    format!(
                        r#"{{"type":"readings","readings":[{{"meter":"m0","ts":{n},"value":1}}]}}"#
                    )
                }
                Hostile::Nesting(depth) => format!(
                    r#"{{"type":"readings","readings":[{}{}]}}"#,
                    "[".repeat(*depth),
                    "]".repeat(*depth)
                ),
                Hostile::FrameField(field, n) => {
                    let (mut epoch, mut seq, mut id) =
                        ("1".to_string(), "0".to_string(), "1".to_string());
                    let (mut wall, mut counter) = (format!("{}", now as u64), "0".to_string());
                    match *field {
                        "epoch" => epoch = n.clone(),
                        "seq" => seq = n.clone(),
                        "id" => id = n.clone(),
                        "wallMs" => wall = n.clone(),
                        _ => counter = n.clone(),
                    }
                    let env = Envelope::Live;
                    let s = format!(
                        r#"{{"type":"frame","epoch":{epoch},"seq":{seq},"hlc":{{"wallMs":{wall},"counter":{counter}}},"readings":[{{"meter":"m0","resource":"water","id":{id},"ts":{now},"amount":"1"}}]}}"#
                    );
                    return Step { msg: Msg::Text(env, s), twin: Twin::IfAccepted };
                }
                Hostile::Amount(n) => {
                    let env = Envelope::Live;
                    let s = format!(
                        r#"{{"type":"frame","epoch":1,"seq":0,"hlc":{},"readings":[{}]}}"#,
                        hlc_json(stamp(now, 0)),
                        live_record("m0", "water", 1, now, n)
                    );
                    return Step { msg: Msg::Text(env, s), twin: Twin::IfAccepted };
                }
            };
            Step { msg: Msg::Text(Envelope::Readings, text), twin: Twin::IfAccepted }
        }
    }
}

// ---------------------------------------------------------------------------
// Running and checking

struct Run {
    a: Engine,
    b: Engine,
    now: f64,
    received: usize,
    fresh_max: usize,
    configs_seen: Vec<Config>,
    last_hlc: Option<Hlc>,
    log: Vec<String>,
}

/// What an engine of `cfg` holds once it has seen one meter, one reading and
/// one live frame: its fixed state and whatever it reserves up front for its
/// configured caps (the ring slab for `maxMeters`, ...).
fn fresh_bytes(cfg: &Config) -> usize {
    let Ok(mut e) = Engine::new(cfg.clone()) else { return 0 };
    let readings = r#"{"readings":[{"meter":"probe","ts":1764064800000,"value":1}]}"#;
    let frame = r#"{"type":"frame","epoch":1,"seq":0,"hlc":{"wallMs":1764064800000,"counter":0},
        "readings":[{"meter":"probe","resource":"water","id":1,"ts":1764064800000,"amount":"0"}]}"#;
    for (env, text) in [(Envelope::Readings, readings), (Envelope::Live, frame)] {
        let input = decode_text(env, text, Arrival::default(), cfg);
        e.handle(input, T0);
    }
    e.engine_bytes()
}

impl Run {
    fn new() -> Run {
        let cfg = base_config();
        let fresh = fresh_bytes(&cfg);
        Run {
            a: Engine::new(cfg.clone()).unwrap_or_else(|e| panic!("base config: {e}")),
            b: Engine::new(cfg.clone()).unwrap_or_else(|e| panic!("base config: {e}")),
            now: T0 + 1_000.0,
            received: 0,
            fresh_max: fresh,
            configs_seen: vec![cfg],
            last_hlc: None,
            log: Vec::new(),
        }
    }

    fn fail(&self, why: String) -> TestCaseError {
        TestCaseError::fail(format!("{why}\nsteps:\n{}", self.log.join("\n")))
    }

    fn outputs(&mut self, outs: &[Outbound]) -> Result<(), TestCaseError> {
        for o in outs {
            if let Outbound::Totals(t) = o {
                if self.last_hlc.is_some_and(|h| t.hlc < h) {
                    return Err(self.fail(format!(
                        "totals HLC went backwards: {:?} after {:?}",
                        t.hlc, self.last_hlc
                    )));
                }
                self.last_hlc = Some(t.hlc);
            }
            if let Outbound::Error(e) = o {
                if e.message.is_empty() {
                    return Err(self.fail(format!("an error without a message: {e:?}")));
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let shown = format!("{:?}", step.msg);
        self.log.push(shown.chars().take(300).collect());
        if let Msg::Advance(ms) = step.msg {
            self.now += ms;
            return Ok(());
        }
        let len = step.msg.len();
        self.received += len;
        let Some(input) = step.msg.decode(self.a.config()) else { return Ok(()) };
        let too_large =
            matches!(&input, Inbound::Rejected(e) if e.code == ErrorCode::PayloadTooLarge);
        let refused = match &input {
            Inbound::Rejected(_) => true,
            Inbound::Config(p) => self.a.config().apply(p).is_err(),
            _ => false,
        };
        let is_config = matches!(input, Inbound::Config(_));
        if !RESET_KEEPS_HLC && matches!(input, Inbound::Reset(ResetScope::All)) {
            self.last_hlc = None;
        }
        LARGEST.with(|l| l.set(0));
        let outs = self.a.handle(input, self.now);
        let largest = LARGEST.with(Cell::get);
        self.outputs(&outs)?;
        // The ring slab is reserved for `maxMeters` at once (a configured cap;
        // the memory guard may have shrunk the window since).
        let slab = self
            .configs_seen
            .iter()
            .chain([self.a.config()])
            .map(|c| (c.max_meters as usize).saturating_mul(c.window as usize).saturating_mul(8))
            .max()
            .unwrap_or(0);
        if !is_config && largest > (64 * len + (1 << 20)).max(slab) {
            return Err(self.fail(format!(
                "one allocation of {largest} bytes while handling a {len}-byte message"
            )));
        }
        if !self.configs_seen.contains(self.a.config()) {
            let cfg = self.a.config().clone();
            self.fresh_max = self.fresh_max.max(fresh_bytes(&cfg));
            self.configs_seen.push(cfg);
        }
        let twin = match &step.twin {
            Twin::Same => Some(&step.msg),
            // A limit on the whole payload (`maxBatch`, `maxPayloadBytes`)
            // counts the bad items too: refused whole, the twin gets nothing.
            Twin::Other(_) if too_large => None,
            Twin::Other(m) => Some(m),
            Twin::Nothing => None,
            Twin::IfAccepted => (!refused).then_some(&step.msg),
            Twin::NothingIfConfigured(r) => {
                (!self.a.config().resources.iter().any(|s| &s.name == r)).then_some(&step.msg)
            }
        };
        if let Some(m) = twin {
            if let Some(input) = m.decode(self.b.config()) {
                self.b.handle(input, self.now);
            }
        }
        self.check_memory()?;
        self.compare()
    }

    fn check_memory(&self) -> Result<(), TestCaseError> {
        let per_meter = self
            .configs_seen
            .iter()
            .map(|c| c.dedup_window as usize / 8 * 4 + 2_048)
            .max()
            .unwrap_or(0);
        // The ring slab a config may fill: `maxMeters × window × 8`, a cap
        // (a fresh engine does not show it: its memory guard shrinks the window
        // when the whole reservation passes the ceiling).
        let slab = self
            .configs_seen
            .iter()
            .map(|c| (c.max_meters as usize).saturating_mul(c.window as usize).saturating_mul(8))
            .max()
            .unwrap_or(0);
        let budget = (self.fresh_max + 64 * self.received + per_meter * self.a.meter_count())
            .saturating_add(slab);
        let bytes = self.a.engine_bytes();
        if bytes > budget {
            return Err(self.fail(format!(
                "engine_bytes {bytes} above {budget} (fresh {} + 64 × {} bytes received + {per_meter} × {} meters + slab {slab})",
                self.fresh_max,
                self.received,
                self.a.meter_count()
            )));
        }
        Ok(())
    }

    /// The fuzzed engine and its twin show the same meters, windows and totals.
    fn compare(&mut self) -> Result<(), TestCaseError> {
        let extra_ok = REFUSED_ITEMS_MAY_INTERN && self.a.meter_count() > self.b.meter_count();
        if self.a.meter_count() != self.b.meter_count() && !extra_ok {
            return Err(self.fail(format!(
                "{} meters, but {} with only the valid items",
                self.a.meter_count(),
                self.b.meter_count()
            )));
        }
        for m in METERS {
            let wa = window(&mut self.a, m, self.now);
            let wb = window(&mut self.b, m, self.now);
            // One validation for every path into the windows: nothing beyond
            // the largest `maxAbsValue` configured so far, nothing non-finite.
            let limit = self.configs_seen.iter().map(|c| c.max_abs_value).fold(0.0, f64::max);
            if let Some(v) = wa
                .iter()
                .flatten()
                .map(|&b| f64::from_bits(b))
                .find(|v| !v.is_finite() || v.abs() > limit)
                .filter(|_| LIVE_READINGS_CHECKED)
            {
                return Err(
                    self.fail(format!("window of {m} holds {v:e}, beyond maxAbsValue {limit:e}"))
                );
            }
            let empty_ok = REFUSED_ITEMS_MAY_INTERN && wb.is_none() && wa.as_deref() == Some(&[]);
            if wa != wb && !empty_ok {
                return Err(
                    self.fail(format!("window of {m}: {wa:?}, with only the valid items {wb:?}"))
                );
            }
        }
        let ta = totals(&mut self.a, self.now);
        let tb = totals(&mut self.b, self.now);
        if let Some(t) = &ta {
            if self.last_hlc.is_some_and(|h| t.hlc < h) {
                return Err(self.fail(format!(
                    "totals HLC went backwards: {:?} after {:?}",
                    t.hlc, self.last_hlc
                )));
            }
            self.last_hlc = Some(t.hlc);
        }
        let shown = |t: &Option<TotalsEvent>| {
            t.as_ref().map(|t| {
                let buckets: Vec<(String, Vec<ShownBucket>)> = t
                    .resources
                    .iter()
                    .map(|r| {
                        (
                            r.resource.clone(),
                            r.buckets
                                .iter()
                                .map(|b| (b.hour_ms.to_bits(), b.total, b.as_of))
                                .collect(),
                        )
                    })
                    .collect();
                (t.as_of, buckets)
            })
        };
        if shown(&ta) != shown(&tb) {
            return Err(self.fail(format!(
                "totals differ from those with only the valid items:\n{:?}\n{:?}",
                shown(&ta),
                shown(&tb)
            )));
        }
        Ok(())
    }
}

/// A bucket as the twin check compares it: hour bits, total, watermark.
type ShownBucket = (u64, i64, Option<Hlc>);

/// Bits of a meter's window, or `None` for an unknown meter.
fn window(e: &mut Engine, meter: &str, now: f64) -> Option<Vec<u64>> {
    e.handle(Inbound::Query(Query::Window { meter: meter.to_string() }), now).into_iter().find_map(
        |o| match o {
            Outbound::Window { values, .. } => Some(values.iter().map(|v| v.to_bits()).collect()),
            _ => None,
        },
    )
}

fn totals(e: &mut Engine, now: f64) -> Option<TotalsEvent> {
    e.handle(Inbound::Query(Query::Totals), now).into_iter().find_map(|o| match o {
        Outbound::Totals(t) => Some(t),
        _ => None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    /// One engine, a sequence of valid, mixed, mutated and hostile messages.
    #[test]
    fn engine_survives_every_message_sequence(recipes in prop::collection::vec(recipe(), 1..40)) {
        let mut run = Run::new();
        for r in &recipes {
            for step in build_all(r, run.now) {
                run.step(&step)?;
            }
        }
    }
}
