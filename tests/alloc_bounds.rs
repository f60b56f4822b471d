#![cfg(not(target_arch = "wasm32"))]
//! Allocation follows the payload (ARCHITECTURE.md invariants): decoding any
//! payload allocates at most `BYTES_PER_PAYLOAD_BYTE × its length + SLACK`
//! bytes at its peak, whatever keys, counts or lengths it names.
//!
//! A counting global allocator keeps, per thread, the bytes live now and the
//! peak since [`peak_during`] started measuring, so tests may run in parallel.
//! To add a case (an engine-level one, say): call `peak_during(|| ...)` around
//! the step and compare with [`bound`] or a bound of its own, e.g. a configured
//! cap plus `bound(len)`.
//!
//! Why 128: the worst case is a JSON list of 2-byte items (`1,`) that are
//! not objects: each becomes a 16-byte raw item and a 40-byte error with a
//! ~60-byte message, kept until the engine reports them (at most `maxBatch`
//! items are kept at all), and vectors that double can hold three times their
//! contents while they grow: about 100 bytes per payload byte. A binary record
//! of 20–28 bytes becomes at most ~40 bytes of columns, or an error of ~100
//! bytes; a binding of 7 bytes plus names a 56-byte entry plus its names.
//! Compare a table sized by the key a frame names: 1,048,575 × 48 bytes for
//! one 100-byte frame is a factor of 500,000.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Catchup, CatchupBucket, KeyScope, LiveBinding, LiveFrame};
use meterflow::core::hlc::Hlc;
use meterflow::wire::binary::{encode_catchup, encode_live, TsLayout};
use meterflow::wire::{decode_binary, decode_text, Arrival, Envelope};

/// The factor of the bound: peak bytes allocated per payload byte (see the module docs).
pub const BYTES_PER_PAYLOAD_BYTE: usize = 128;
/// The constant of the bound: a few small fixed allocations per decode.
pub const SLACK: usize = 4096;

/// The bound for a payload of `len` bytes.
pub fn bound(len: usize) -> usize {
    BYTES_PER_PAYLOAD_BYTE * len + SLACK
}

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// Allocations made (`alloc` and `realloc` calls), for bounds on work
    /// whose memory is freed at once (a text made and dropped).
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: the thread's counters may already be gone while it exits.
    if delta > 0 {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every method forwards to `System` with the caller's own arguments and
// only updates thread-local counters besides, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        // SAFETY: the caller upholds `alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // While a block moves, both the old and the new one are live.
        note(new_size as isize);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, valid for `layout`'s align.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        note(-(layout.size() as isize));
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result and the peak of the bytes it had allocated
/// and not yet freed at any moment (on this thread).
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, usize::try_from(peak - start).unwrap_or(0))
}

/// Decodes `bytes` as a binary payload of `env` and checks the bound.
fn check_binary(what: &str, env: Envelope, bytes: &[u8], cfg: &Config) {
    let (decoded, peak) = peak_during(|| decode_binary(env, bytes, cfg));
    let limit = bound(bytes.len());
    assert!(peak <= limit, "{what}: {peak} bytes for a {}-byte frame (bound {limit})", bytes.len());
    drop(decoded);
}

/// Decodes `text` as a JSON payload of `env` and checks the bound.
fn check_text(what: &str, env: Envelope, text: &str, cfg: &Config) {
    let (decoded, peak) = peak_during(|| decode_text(env, text, Arrival::default(), cfg));
    let limit = bound(text.len());
    assert!(
        peak <= limit,
        "{what}: {peak} bytes for a {}-byte payload (bound {limit})",
        text.len()
    );
    drop(decoded);
}

const H10: f64 = 1_764_064_800_000.0;

fn catchup(buckets: Vec<CatchupBucket>) -> Catchup {
    Catchup { as_of: Hlc { wall_ms: H10 as u64, counter: 0 }, buckets, ..Default::default() }
}

fn bucket(meter: Option<&str>, resource: &str, i: u32) -> CatchupBucket {
    CatchupBucket {
        meter: meter.map(str::to_owned),
        resource: resource.into(),
        hour_ms: H10,
        total: Decimal::new(i64::from(i), 3),
        position: i,
    }
}

/// Sets every binding key of a one-binding kind-2/kind-3 frame and every
/// record's key to `key`.
fn rekey(bytes: &mut [u8], binding_at: usize, keys_at: usize, records: usize, key: u32) {
    bytes[binding_at..binding_at + 4].copy_from_slice(&key.to_le_bytes());
    for r in 0..records {
        let at = keys_at + 4 * r;
        bytes[at..at + 4].copy_from_slice(&key.to_le_bytes());
    }
}

#[test]
fn a_catchup_naming_a_high_key_allocates_for_what_it_carries() {
    let cfg = Config::default();
    let top = cfg.max_stream_keys - 1; // 1,048,575 by default
    let mut bytes = encode_catchup(&catchup(vec![bucket(Some("m"), "water", 1)]), 3).unwrap();
    // Header 16 + kind header 40: the binding at 56 (4 + 2 + 1 + 1 + 5 bytes),
    // padding to 72, the keys column at 72.
    rekey(&mut bytes, 56, 72, 1, top);
    let meterflow::core::event::Inbound::Catchup(c) =
        decode_binary(Envelope::Catchup, &bytes, &cfg)
    else {
        panic!("not a catch-up")
    };
    assert_eq!((c.buckets.len(), c.errors.len()), (1, 0), "{c:?}");
    check_binary("kind 3, key 2^20 - 1", Envelope::Catchup, &bytes, &cfg);
    for key in [0, 1, 65_535, top / 2] {
        rekey(&mut bytes, 56, 72, 1, key);
        check_binary(&format!("kind 3, key {key}"), Envelope::Catchup, &bytes, &cfg);
    }
}

#[test]
fn a_live_frame_naming_a_high_key_decodes_within_the_bound() {
    let cfg = Config::default();
    let f = LiveFrame {
        epoch: 1,
        scope: KeyScope::Stream,
        stamp: Hlc { wall_ms: 1, counter: 0 },
        bindings: vec![LiveBinding { key: 0, meter: "m".into(), resource: "water".into() }],
        keys: vec![0],
        ids: vec![1],
        ts: vec![1.0],
        amounts: vec![Decimal::new(1, 0)],
        ..Default::default()
    };
    let mut bytes = encode_live(&f, 0, TsLayout::PerRecord).unwrap();
    // Header 16 + kind header 32, empty channel: the binding at 48 (13 bytes),
    // padding to 64, the keys column at 64.
    for key in [cfg.max_stream_keys - 1, u32::MAX] {
        rekey(&mut bytes, 48, 64, 1, key);
        check_binary(&format!("kind 2, key {key}"), Envelope::Live, &bytes, &cfg);
    }
}

#[test]
fn header_counts_past_the_payload_allocate_nothing_for_them() {
    let cfg = Config::default();
    let bytes = encode_catchup(&catchup(vec![bucket(None, "water", 1)]), 3).unwrap();
    for kind in [1u8, 2, 3] {
        for (bindings, records) in [(u32::MAX, 0u32), (0, 1_000_000), (u32::MAX, 1_000_000)] {
            let mut b = bytes.clone();
            b[5] = kind;
            b[8..12].copy_from_slice(&bindings.to_le_bytes());
            b[12..16].copy_from_slice(&records.to_le_bytes());
            let env =
                [Envelope::Readings, Envelope::Live, Envelope::Catchup][usize::from(kind - 1)];
            check_binary(&format!("kind {kind} B={bindings} N={records}"), env, &b, &cfg);
        }
    }
}

#[test]
fn large_frames_stay_within_the_bound() {
    let cfg = Config::default();
    // Per-meter catch-up: long meter ids shared by many buckets.
    let long = "m".repeat(256);
    let mut buckets = Vec::new();
    for i in 0..2_000u32 {
        let meter = format!("{long:.250}{:06}", i % 7);
        buckets.push(bucket(Some(&meter), ["water", "energy", "bandwidth"][i as usize % 3], i));
    }
    let bytes = encode_catchup(&catchup(buckets.clone()), 3).unwrap();
    check_binary("kind 3, 2,000 per-meter buckets", Envelope::Catchup, &bytes, &cfg);
    // The same buckets naming an unknown resource: every one an error.
    for b in &mut buckets {
        b.resource = "r".repeat(255);
    }
    let bytes = encode_catchup(&catchup(buckets), 3).unwrap();
    check_binary("kind 3, 2,000 bad buckets", Envelope::Catchup, &bytes, &cfg);

    // A live frame of 5,000 records, then the same with every record bad.
    let n = 5_000;
    let f = LiveFrame {
        epoch: 1,
        scope: KeyScope::Stream,
        stamp: Hlc { wall_ms: 1, counter: 0 },
        bindings: vec![LiveBinding { key: 0, meter: "m".into(), resource: "water".into() }],
        keys: vec![0; n],
        ids: (0..n as u64).collect(),
        ts: vec![1.0; n],
        amounts: vec![Decimal::new(1, 0); n],
        ..Default::default()
    };
    let mut bytes = encode_live(&f, 0, TsLayout::PerRecord).unwrap();
    check_binary("kind 2, 5,000 records", Envelope::Live, &bytes, &cfg);
    let amounts_at = bytes.len() - 8 * n;
    for r in 0..n {
        let at = amounts_at + 8 * r;
        bytes[at..at + 8].copy_from_slice(&(-1.5f64).to_le_bytes());
    }
    check_binary("kind 2, 5,000 bad records", Envelope::Live, &bytes, &cfg);
}

#[test]
fn json_payloads_stay_within_the_bound() {
    let cfg = Config::default();
    let n = 20_000;
    let many = |item: &str| format!(r#"{{"readings":[{}]}}"#, vec![item; n].join(","));
    let cases = [
        ("empty items", Envelope::Readings, many("{}")),
        ("numbers", Envelope::Readings, many("1")),
        ("good readings", Envelope::Readings, many(r#"{"meter":"a","ts":1,"value":1}"#)),
        ("escaped ids", Envelope::Readings, many(r#"{"meter":"\u0061\u0062","ts":1,"value":1}"#)),
        ("bad values", Envelope::Readings, many(r#"{"meter":"a","ts":1,"value":"x"}"#)),
        ("bad live items", Envelope::Live, {
            let body = vec![r#"{"amount":"1e-2147483648"}"#; n].join(",");
            format!(
                r#"{{"type":"frame","epoch":1,"seq":1,"hlc":{{"wallMs":1,"counter":0}},"readings":[{body}]}}"#
            )
        }),
        ("huge amounts", Envelope::Live, {
            let item = format!(
                r#"{{"meter":"m","resource":"water","id":1,"ts":1,"amount":{}}}"#,
                "9".repeat(10_000)
            );
            let body = vec![item.as_str(); 100].join(",");
            format!(
                r#"{{"type":"frame","epoch":1,"seq":1,"hlc":{{"wallMs":1,"counter":0}},"readings":[{body}]}}"#
            )
        }),
        ("empty buckets", Envelope::Catchup, {
            let body = vec!["{}"; n].join(",");
            format!(r#"{{"asOf":{{"wallMs":1,"counter":0}},"buckets":[{body}]}}"#)
        }),
        ("deep nesting", Envelope::Readings, {
            format!(r#"{{"readings":[{}{}]}}"#, "[".repeat(100_000), "]".repeat(100_000))
        }),
    ];
    for (what, env, text) in &cases {
        check_text(what, *env, text, &cfg);
    }
}

#[test]
fn a_meters_delta_decodes_within_the_bound() {
    // The one-pass DELTA reader reserves its rows from the text left: a large
    // DELTA, one with `remove` first, and a tiny one all stay within the bound.
    let cfg = Config::default();
    let row = |m: usize| {
        format!(
            r#"{{"meter":"m-{m:05}","resource":"water","ts":1.7e12,"value":{m}.25,"status":"ok","count":{m},"total":"{m}.5"}}"#
        )
    };
    let rows = |n: usize| (0..n).map(row).collect::<Vec<_>>().join(",");
    let texts = [
        format!(
            r#"{{"op":"DELTA","channel":"meters.north","epoch":1,"seq":2,"patch":{{"upsert":[{}],"remove":[]}}}}"#,
            rows(1_000)
        ),
        format!(
            r#"{{"op":"DELTA","channel":"meters.north","epoch":1,"seq":2,"patch":{{"remove":["a","b"],"upsert":[{}]}}}}"#,
            rows(3)
        ),
        r#"{"op":"DELTA","channel":"meters.north","epoch":1,"seq":2,"patch":{"upsert":[]}}"#
            .to_string(),
    ];
    for text in &texts {
        let (decoded, peak) =
            peak_during(|| meterflow::wire::decode_socket_text(text, Arrival::default(), &cfg));
        assert!(meterflow::wire::meters_delta(text).is_some(), "the fast path took {text:.80}");
        let limit = bound(text.len());
        assert!(
            peak <= limit,
            "DELTA: {peak} bytes for a {}-byte text (bound {limit})",
            text.len()
        );
        drop(decoded);
    }
}

/// Runs `f` and returns its result and the bytes it left allocated (what the
/// result holds, on this thread).
fn held_after<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let start = LIVE.with(Cell::get);
    let out = f();
    (out, LIVE.with(Cell::get) - start)
}

#[test]
fn a_buffered_delta_counts_at_least_what_its_body_holds() {
    // The session charges a buffered delta `max(encoded, held_bytes)` against
    // `maxBufferedBytes` (docs/STREAM.md §6), and `Config::worst_case_bytes`
    // counts `maxBufferedBytes` per channel: so `held_bytes` must be at least
    // what the decoded body really holds. The densest bodies per byte of text:
    // a `remove` list of one-letter ids (~10 bytes held per byte of text, far
    // past the text), the shortest rows, notices, and both decoders.
    use meterflow::core::event::Inbound;
    use meterflow::core::session::{ServerOp, SessionInput};
    let cfg = Config::default();
    let ids = |n: usize| {
        (0..n).map(|i| format!("\"{}\"", (b'a' + (i % 26) as u8) as char)).collect::<Vec<_>>()
    };
    let row = r#"{"meter":"x","resource":"","ts":0,"value":0,"status":"ok","count":0,"total":"0"}"#;
    let notice = r#"{"id":"n","severity":"info","title":"","text":"","fromMs":0,"toMs":0}"#;
    let texts = [
        // The one-pass reader.
        format!(
            r#"{{"op":"DELTA","channel":"meters.n","epoch":1,"seq":2,"patch":{{"remove":[{}]}}}}"#,
            ids(5_000).join(",")
        ),
        format!(
            r#"{{"op":"DELTA","channel":"meters.n","epoch":1,"seq":2,"patch":{{"upsert":[{}]}}}}"#,
            vec![row; 2_000].join(",")
        ),
        // The general decoder (`op` not first).
        format!(
            r#"{{"channel":"meters.n","op":"DELTA","epoch":1,"seq":2,"patch":{{"remove":[{}]}}}}"#,
            ids(5_000).join(",")
        ),
        format!(
            r#"{{"op":"DELTA","channel":"notices","epoch":1,"seq":2,"patch":{{"upsert":[{}],"remove":[{}]}}}}"#,
            vec![notice; 500].join(","),
            ids(2_000).join(",")
        ),
    ];
    let mut checked = 0;
    for text in &texts {
        let (decoded, held) =
            held_after(|| meterflow::wire::decode_socket_text(text, Arrival::default(), &cfg));
        let Inbound::Stream(SessionInput::Server(ServerOp::Delta { body, wire_bytes, .. })) =
            &decoded
        else {
            panic!("not a delta: {decoded:?} for {text:.120}");
        };
        assert_eq!(*wire_bytes, text.len());
        let counted = body.held_bytes();
        // The `Inbound` around the body lives on the stack: what the heap
        // holds is the body's.
        assert!(
            usize::try_from(held).unwrap_or(usize::MAX) <= counted,
            "{text:.80}: holds {held} bytes, counted {counted}"
        );
        if counted > text.len() {
            checked += 1;
        }
    }
    // The remove lists hold more than their text: the case the count exists for.
    assert!(checked >= 2, "{checked}");
}

/// The error events `engine` answers `bytes` with (decoded as the page's
/// message would be), and the count of its `errors_suppressed` summary.
fn refusals(env: Envelope, bytes: &[u8]) -> (Vec<meterflow::core::error::CoreError>, Option<u64>) {
    use meterflow::core::error::ErrorCode;
    use meterflow::core::event::Outbound;
    let mut engine = meterflow::core::Engine::new(Config::default()).unwrap();
    let cfg = engine.config().clone();
    let input = meterflow::wire::decode_bytes(env, bytes, Arrival::default(), &cfg);
    let mut shown = Vec::new();
    let mut suppressed = None;
    for o in engine.handle(input, H10) {
        match o {
            Outbound::Error(e) if e.code == ErrorCode::ErrorsSuppressed => {
                suppressed = e.message.split(' ').next().and_then(|n| n.parse().ok());
            }
            Outbound::Error(e) => shown.push(e),
            _ => {}
        }
    }
    (shown, suppressed)
}

/// A body whose every record is refused, each with a value whose text is long
/// (`f64::MAX` prints 309 digits): the decoder formats a refusal's text only
/// while the body has fewer than `maxErrorsPerBatch` errors, since the engine
/// reports the decoder's errors first and no more than that many. Before, a
/// 16 MiB kind-3 body of such hours held 825,548 texts of about 350 bytes
/// (290 MB) and took 0.56 s natively (docs/PERFORMANCE.md, "Hostile
/// payloads"). The answer is unchanged: the events shown are those of the
/// body's first `maxErrorsPerBatch` records alone, then one summary counting
/// the rest.
#[test]
fn refused_records_cost_no_text_past_max_errors_per_batch() {
    let cfg = Config::default();
    let max = cfg.max_errors_per_batch as usize;
    let live = |n: usize, col: usize, bad: f64| {
        let f = LiveFrame {
            epoch: 1,
            scope: KeyScope::Stream,
            stamp: Hlc { wall_ms: H10 as u64, counter: 0 },
            bindings: vec![LiveBinding { key: 0, meter: "m".into(), resource: "water".into() }],
            keys: vec![0; n],
            ids: (0..n as u64).collect(),
            ts: vec![H10; n],
            amounts: vec![Decimal::new(1, 0); n],
            ..Default::default()
        };
        let mut bytes = encode_live(&f, 0, TsLayout::PerRecord).unwrap();
        let at = bytes.len() - 8 * n * (3 - col);
        for c in bytes[at..at + 8 * n].chunks_exact_mut(8) {
            c.copy_from_slice(&bad.to_le_bytes());
        }
        bytes
    };
    let catchup_of = |n: usize, col: usize, bad: f64| {
        let buckets = (0..n as u32).map(|i| bucket(Some("m"), "water", i)).collect();
        let mut bytes = encode_catchup(&catchup(buckets), 3).unwrap();
        let at = bytes.len() - 8 * n * (2 - col);
        for c in bytes[at..at + 8 * n].chunks_exact_mut(8) {
            c.copy_from_slice(&bad.to_le_bytes());
        }
        bytes
    };
    let json = |n: usize, head: &str, item: &str| {
        let items = vec![item; n].join(",");
        format!(r#"{{{head}[{items}]}}"#).into_bytes()
    };
    let frame = r#""type":"frame","epoch":1,"seq":1,"hlc":{"wallMs":1,"counter":0},"readings":"#;
    type Build<'a> = &'a dyn Fn(usize) -> Vec<u8>;
    let cases: [(&str, Envelope, Build<'_>); 8] = [
        ("json readings, values strings", Envelope::Readings, &|n| {
            json(n, r#""type":"readings","readings":"#, r#"{"meter":"m","ts":1,"value":"x"}"#)
        }),
        ("json frame, ids 1e300", Envelope::Live, &|n| {
            json(n, frame, r#"{"meter":"m","resource":"water","id":1e300,"ts":1,"amount":"1"}"#)
        }),
        ("json catchup, hours 1e300", Envelope::Catchup, &|n| {
            let head = r#""type":"catchup","asOf":{"wallMs":1,"counter":0},"buckets":"#;
            json(n, head, r#"{"meter":"m","resource":"water","hour":1e300,"total":"1"}"#)
        }),
        ("kind 2, ids f64::MAX", Envelope::Live, &|n| live(n, 0, f64::MAX)),
        ("kind 2, ts -inf", Envelope::Live, &|n| live(n, 1, f64::NEG_INFINITY)),
        ("kind 2, amounts -f64::MAX", Envelope::Live, &|n| live(n, 2, -f64::MAX)),
        ("kind 3, hours f64::MAX", Envelope::Catchup, &|n| catchup_of(n, 0, f64::MAX)),
        ("kind 3, totals f64::MAX", Envelope::Catchup, &|n| catchup_of(n, 1, f64::MAX)),
    ];
    let n = 100_000;
    for (what, env, build) in cases {
        let bytes = build(n);
        let (decoded, peak) =
            peak_during(|| meterflow::wire::decode_bytes(env, &bytes, Arrival::default(), &cfg));
        let errors = match &decoded {
            meterflow::core::event::Inbound::Readings(b) => b.errors.len(),
            meterflow::core::event::Inbound::Live(f) => f.errors.len(),
            meterflow::core::event::Inbound::Catchup(c) => c.errors.len(),
            other => panic!("{what}: {other:?}"),
        };
        assert_eq!(errors, n, "{what}: every record refused");
        let limit = 8 * bytes.len() + SLACK;
        assert!(
            peak <= limit,
            "{what}: {peak} bytes for a {}-byte frame (bound {limit})",
            bytes.len()
        );
        drop(decoded);

        let (shown, suppressed) = refusals(env, &bytes);
        let (first, none) = refusals(env, &build(max));
        assert_eq!(none, None, "{what}: {max} records, no summary");
        assert!(first.len() >= max, "{what}: {} errors for {max} records", first.len());
        assert_eq!(shown[..max], first[..max], "{what}: the texts shown");
        assert!(shown[..max].iter().all(|e| !e.message.is_empty()), "{what}");
        assert_eq!(suppressed, Some((n - max) as u64), "{what}: the summary's count");
    }
}

/// Runs `f` and returns its result and how many allocations it made (on this thread).
fn calls_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = CALLS.with(Cell::get);
    let out = f();
    (out, CALLS.with(Cell::get) - start)
}

/// Handles `bytes` (decoded first, as the page's message would be) in a fresh
/// engine of `cfg` that has handled `before` first: the error events shown,
/// the `errors_suppressed` summary's count, `readingsRejected`, and the
/// allocations `Engine::handle` made for `bytes`.
fn handled(
    before: &[u8],
    bytes: &[u8],
    cfg: &Config,
) -> (Vec<meterflow::core::error::CoreError>, Option<u64>, f64, usize) {
    use meterflow::core::error::ErrorCode;
    use meterflow::core::event::Outbound;
    let mut engine = meterflow::core::Engine::new(cfg.clone()).unwrap();
    let decode = |b| meterflow::wire::decode_bytes(Envelope::Readings, b, Arrival::default(), cfg);
    let out = engine.handle(decode(before), H10);
    assert!(!out.iter().any(|o| matches!(o, Outbound::Error(_))), "{out:?}");
    let rejected = engine.counters().readings_rejected;
    let input = decode(bytes);
    let (out, calls) = calls_during(|| engine.handle(input, H10));
    let mut shown = Vec::new();
    let mut suppressed = None;
    for o in out {
        match o {
            Outbound::Error(e) if e.code == ErrorCode::ErrorsSuppressed => {
                suppressed = e.message.split(' ').next().and_then(|n| n.parse().ok());
            }
            Outbound::Error(e) => shown.push(e),
            _ => {}
        }
    }
    (shown, suppressed, engine.counters().readings_rejected - rejected, calls)
}

/// Names past `maxMeters` are refused with a `meter_capacity` error whose
/// text holds the name: made only for the errors reported (at most
/// `maxErrorsPerBatch`), not for each of the 335,461 names a 16 MiB JSON body
/// can carry (docs/PERFORMANCE.md, "Hostile payloads": 4.6× the best case,
/// a text made and dropped per name). Two paths: a JSON body's names wait
/// until their first reading and are refused in the reading loop, once the
/// body's first names have filled the table; a kind-1 frame's stream bindings
/// are refused when bound, once an earlier frame has filled it. The answer
/// is unchanged: the first `maxErrorsPerBatch` errors are those of the body's
/// first names alone, then one summary counting the rest.
#[test]
fn names_past_max_meters_cost_no_text_past_max_errors_per_batch() {
    use meterflow::core::error::ErrorCode;
    use meterflow::core::event::ReadingBatch;
    use meterflow::wire::binary::encode_readings;
    let room = 10;
    let cfg = Config { max_meters: room, ..Config::default() };
    let (room, max) = (room as usize, cfg.max_errors_per_batch as usize);
    let json = |names: std::ops::Range<usize>| {
        let items: Vec<String> = names
            .map(|i| format!(r#"{{"meter":"n{i:07}","ts":{},"value":1}}"#, H10 as u64))
            .collect();
        format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(",")).into_bytes()
    };
    // A frame binding stream key `k` to `n{k}`, with a reading of each key
    // only if `read` (a frame of bindings alone refuses nothing but names).
    let kind1 = |names: std::ops::Range<usize>, read: bool| {
        let keys: Vec<u32> = if read { names.clone().map(|k| k as u32).collect() } else { vec![] };
        let b = ReadingBatch {
            bindings: names.map(|k| (k as u32, format!("n{k:07}"))).collect(),
            ts: vec![H10; keys.len()],
            values: vec![1.0; keys.len()],
            keys,
            ..Default::default()
        };
        encode_readings(&b, TsLayout::PerRecord).unwrap()
    };
    let n = 20_000;
    // Per case: the body before (empty, or filling the table with names
    // `0..room`), the body naming `0..n` (or `room..n`) after it, the readings it refuses, and the allocations
    // `handle` may make per name: a JSON name waits (one boxed copy, its
    // table's growth), a stream binding past the room is refused before it
    // waits. Before, each also made its text.
    type Build<'a> = &'a dyn Fn(usize) -> Vec<u8>;
    let cases: [(&str, Vec<u8>, Build<'_>, usize, f64); 2] = [
        ("json readings", json(0..0), &|n| json(0..n), n - room, 0.05),
        ("kind 1 bindings", kind1(0..room, true), &|n| kind1(room..n, false), 0, 0.0),
    ];
    for (what, before, build, refused, per_name) in cases {
        let (shown, suppressed, rejected, calls) = handled(&before, &build(n), &cfg);
        let (first, none, ..) = handled(&before, &build(room + max), &cfg);
        assert_eq!(none, None, "{what}: {max} refusals, no summary");
        assert_eq!(first.len(), max, "{what}");
        assert_eq!(shown[..max], first[..], "{what}: the texts shown");
        assert!(shown.iter().all(|e| e.code == ErrorCode::MeterCapacity), "{what}: {:?}", shown[0]);
        assert!(shown[0].message.contains("'n0000010'"), "{what}: {}", shown[0].message);
        assert_eq!(suppressed, Some((n - room - max) as u64), "{what}: the summary's count");
        assert_eq!(rejected as usize, refused, "{what}: readingsRejected");
        let limit = (per_name * n as f64) as usize + 2_000;
        assert!(calls <= limit, "{what}: {calls} allocations for {n} names (bound {limit})");
    }
}

/// A `/groups` body of groups past `maxGroups`: the decoder copies what the
/// build keeps or names in an error shown (`maxGroups` groups, then
/// `maxErrorsPerBatch`), and counts the rest without a copy each. Before, a
/// 16 MiB body of 1.2 million empty groups made a `String` per group and
/// took 0.35 s (docs/PERFORMANCE.md, "Hostile payloads"). That the answer
/// is unchanged: `tests/hostile_bodies.rs`, `groups_past_the_cap`.
///
/// And it is read in one pass, without a tree: each group's name is kept as
/// a hash and an offset (12 bytes, in vectors that double), and the hashes
/// are spread once more to find a repeat (8 bytes), at most 32 bytes a group
/// at the peak. The tree (56 bytes a member, in a vector that doubles) and a
/// hash set of the names took about 100 (0.15–0.19 s for 1.2 million).
#[test]
fn groups_past_max_groups_are_counted_not_copied() {
    let cfg = Config::default();
    let n = 100_000;
    // Shuffled names: the order must not matter.
    let items: Vec<String> = (0..n).map(|i| format!(r#""g{:07}":[]"#, (i * 7_919) % n)).collect();
    let text = format!(r#"{{"version":1,"groups":{{{}}}}}"#, items.join(","));
    let decode = || meterflow::wire::groups::decode_groups_text(&text, &cfg);
    let (body, calls) = calls_during(decode);
    let body = body.map_err(|e| e.message).unwrap();
    let copied = (cfg.max_groups + cfg.max_errors_per_batch) as usize;
    assert_eq!((body.groups.len(), body.uncopied), (copied, n - copied));
    // The kept names grow by doubling: a few dozen allocations.
    let limit = copied + 200;
    assert!(calls <= limit, "{calls} allocations for {n} groups (bound {limit})");
    let (again, peak) = peak_during(decode);
    assert_eq!(again.map_err(|e| e.message), Ok(body));
    let limit = 40 * n + SLACK;
    assert!(peak <= limit, "{peak} bytes at the peak for {n} groups (bound {limit})");
}

/// A `HEARTBEAT_ACK` of many channels: its `sent` map is read in one pass
/// (`wire::ack`) into a compact list, one `String` per channel for the op it
/// decodes to and a few growing vectors. Before, the general decoder's tree
/// held an array per entry besides (0.24–0.33 s for 767,463 channels,
/// docs/PERFORMANCE.md, "Hostile payloads"). The op is the general
/// decoder's.
#[test]
fn a_heartbeat_ack_of_many_channels_allocates_a_name_each() {
    let cfg = Config::default();
    let n = 100_000;
    // Shuffled, so the map's order is not the text's.
    let items: Vec<String> =
        (0..n).map(|i| (i * 7_919) % n).map(|c| format!(r#""c{c:07}":[1,{c}]"#)).collect();
    let text = format!(r#"{{"op":"HEARTBEAT_ACK","sent":{{{}}}}}"#, items.join(","));
    let decode = || meterflow::wire::decode_socket_text(&text, Arrival::default(), &cfg);
    let (op, calls) = calls_during(decode);
    assert_eq!(op, meterflow::wire::decode_socket_text_general(&text, Arrival::default(), &cfg));
    let limit = n + 200;
    assert!(calls <= limit, "{calls} allocations for {n} channels (bound {limit})");
}

/// A catch-up that lists each meter many times for one hour: every repeat is
/// a refused bucket (and the body is refused whole), but a refusal's text is
/// made only under `maxErrorsPerBatch`. Before, `Ledger::check_catchup` made
/// a text per refused bucket and dropped most of them: 15 % of the check of
/// the hostile bench's 825,548-bucket catch-up (docs/PERFORMANCE.md,
/// "Hostile payloads"). Through the page's path: the frame's bytes, the
/// wire decoder, `Engine::handle`.
#[test]
fn a_catchup_listing_meters_twice_makes_texts_only_under_the_cap() {
    use meterflow::core::error::ErrorCode;
    use meterflow::core::event::Outbound;
    let cfg = Config::default();
    let n = 20_000u32;
    let meters: Vec<String> = (0..100).map(|m| format!("m{m}")).collect();
    let buckets = (0..n).map(|i| bucket(Some(&meters[(i % 100) as usize]), "water", i)).collect();
    let bytes = encode_catchup(&catchup(buckets), 3).unwrap();
    let mut engine = meterflow::core::Engine::new(cfg.clone()).unwrap();
    let input = meterflow::wire::decode_bytes(Envelope::Catchup, &bytes, Arrival::default(), &cfg);
    let (out, calls) = calls_during(|| engine.handle(input, H10));
    let errors: Vec<_> = out
        .iter()
        .filter_map(|o| if let Outbound::Error(e) = o { Some(e) } else { None })
        .collect();
    let max = cfg.max_errors_per_batch as usize;
    let twice: Vec<_> = errors.iter().filter(|e| e.message.contains("twice")).collect();
    assert_eq!(twice.len(), max, "{errors:?}");
    // The first repeat is bucket 100 (meter m0 again); the text as before.
    assert_eq!(
        (twice[0].code, twice[0].position, twice[0].message.as_str()),
        (ErrorCode::BadValue, Some(100), "water hour 1764064800000: total lists meter 'm0' twice")
    );
    let summary = errors.iter().find(|e| e.code == ErrorCode::ErrorsSuppressed);
    let suppressed: Option<usize> =
        summary.and_then(|e| e.message.split(' ').next()).and_then(|n| n.parse().ok());
    assert_eq!(suppressed, Some(n as usize - 100 - max));
    assert!(errors.iter().any(|e| e.message.contains("refused whole")), "{errors:?}");
    let limit = 2_000;
    assert!(calls <= limit, "{calls} allocations for {n} refused buckets (bound {limit})");
}
