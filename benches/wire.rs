//! Native criterion benchmarks of the wire layer.
//!
//! - `decode/*`: readings/s decoding one 5,000-record payload: binary kind 1
//!   (per-record and shared timestamps, keys already bound; and a first frame
//!   binding all 5,000 meters), binary kind 2 (likewise), JSON readings (5,000
//!   distinct meters) through the scanner (`json_readings`, from bytes:
//!   `json_readings_bytes`) and through the general serde decoder alone
//!   (`json_readings_general`, what every JSON payload took before the
//!   scanner), JSON live frame (amounts as decimal strings); the general
//!   decoder and the frame also through `wire::serde_oracle` (`*_serde`, the
//!   serde_json decoder `wire::lite` replaced, issue 9), in the same run.
//! - `decode_ingest/*`: readings/s for decode + `Engine::handle` of one
//!   5,000-record payload at 5,000 meters (one reading per meter, keys already
//!   bound for binary, windows full).
//!
//! - `stream/*`: one `meters.<group>` DELTA of 1,000 rows (the README's
//!   "1,000-entity delta batch") on a live channel of 1,000 meters:
//!   `stream_delta_decode_1000` the socket text to `Inbound` alone,
//!   `stream_delta_apply_1000` decode + `Engine::handle` (session order and
//!   credit, the meter store, the rows' readings into the anomaly windows), what
//!   the browser figure (`make bench-stream`, `deltaApplyMs`) times in the worker;
//!   `stream_delta_predecoded_1000` `Engine::handle` alone on the decoded
//!   `Inbound` (decoded outside the timing: what a free decoder, e.g. a binary
//!   columnar DELTA, would leave), and `stream_delta_nodetect_1000` likewise
//!   with `detectLive` off (the session and the store alone, no windows).
//!   `stream_delta_decode_binary_1000` and `stream_delta_apply_binary_1000`:
//!   the same DELTA as a binary kind-4 frame (PROTOCOL.md 3.10, negotiated by
//!   `binaryDeltas`), decode alone and decode + `Engine::handle`.
//!
//! - `json_path/*`: the browser path benchmark's JSON payload
//!   (`www/bench/path.js`: 10,000 readings over 5,000 meters, one integer
//!   `ts`, values with 3 decimals), per reading: `scan` (bytes to a batch),
//!   `apply` (`Engine::handle` of the decoded batch alone, at 5,000 meters with
//!   full windows), `scan_apply` (both, what the worker does after the copy),
//!   and `binary_apply` (the same readings as a kind-1 frame, decode + apply)
//!   for the share of the text.
//!
//! Run: `cargo bench --bench wire` (add `-- --quick` for a short run).

use criterion::{criterion_group, Criterion, Throughput};
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{KeyScope, LiveBinding, LiveFrame, ReadingBatch};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_live, encode_meters_delta, encode_readings, TsLayout};
use meterflow::wire::json::decode_general;
use meterflow::wire::{decode_binary, decode_bytes, decode_text, serde_oracle, Arrival, Envelope};
use std::hint::black_box;

const T0: f64 = 1.7e12;
const N: usize = 5_000;

fn meter(m: usize) -> String {
    format!("meter-{m:06}")
}

/// Values around 100 with cheap noise (an LCG), one per meter.
fn values(seed: &mut u64) -> Vec<f64> {
    (0..N)
        .map(|m| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            100.0 + (m % 50) as f64 + ((*seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 4.0
        })
        .collect()
}

fn kind1(bind: bool, layout: TsLayout, seed: &mut u64) -> Vec<u8> {
    let b = ReadingBatch {
        bindings: if bind { (0..N).map(|m| (m as u32, meter(m))).collect() } else { Vec::new() },
        keys: (0..N as u32).collect(),
        ts: (0..N).map(|i| if layout == TsLayout::Shared { T0 } else { T0 + i as f64 }).collect(),
        values: values(seed),
        ..Default::default()
    };
    encode_readings(&b, layout).expect("encodable")
}

fn kind2(bind: bool) -> Vec<u8> {
    let f = LiveFrame {
        epoch: 1,
        seq: 1,
        stamp: Hlc { wall_ms: T0 as u64, counter: 0 },
        scope: KeyScope::Stream,
        bindings: if bind {
            (0..N)
                .map(|m| LiveBinding { key: m as u32, meter: meter(m), resource: "water".into() })
                .collect()
        } else {
            Vec::new()
        },
        keys: (0..N as u32).collect(),
        ids: (0..N as u64).collect(),
        ts: vec![T0; N],
        amounts: (0..N as i64).map(|i| Decimal::new(i % 1000, 3)).collect(),
        ..Default::default()
    };
    encode_live(&f, 3, TsLayout::PerRecord).expect("encodable")
}

fn json_readings(seed: &mut u64) -> String {
    let items: Vec<String> = values(seed)
        .iter()
        .enumerate()
        .map(|(m, v)| format!(r#"{{"meter":"{}","ts":{},"value":{v}}}"#, meter(m), T0 + m as f64))
        .collect();
    format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(","))
}

fn json_frame() -> String {
    let items: Vec<String> = (0..N)
        .map(|m| {
            format!(
                r#"{{"meter":"{}","resource":"water","id":{m},"ts":{T0},"amount":"{}.{:03}"}}"#,
                meter(m),
                m / 1000,
                m % 1000
            )
        })
        .collect();
    format!(
        r#"{{"type":"frame","epoch":1,"seq":1,"hlc":{{"wallMs":{},"counter":0}},"readings":[{}]}}"#,
        T0 as u64,
        items.join(",")
    )
}

fn decode(c: &mut Criterion) {
    let cfg = Config::default();
    let mut seed = 1u64;
    let k1 = kind1(false, TsLayout::PerRecord, &mut seed);
    let k1_shared = kind1(false, TsLayout::Shared, &mut seed);
    let k1_bind = kind1(true, TsLayout::PerRecord, &mut seed);
    let k2 = kind2(false);
    let k2_bind = kind2(true);
    let jr = json_readings(&mut seed);
    let jf = json_frame();
    let mut g = c.benchmark_group("decode");
    g.sample_size(30);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("binary_kind1", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Readings, black_box(&k1), &cfg)))
    });
    g.bench_function("binary_kind1_shared_ts", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Readings, black_box(&k1_shared), &cfg)))
    });
    g.bench_function("binary_kind1_binding_5000_meters", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Readings, black_box(&k1_bind), &cfg)))
    });
    g.bench_function("binary_kind2", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Live, black_box(&k2), &cfg)))
    });
    g.bench_function("binary_kind2_binding_5000_pairs", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Live, black_box(&k2_bind), &cfg)))
    });
    g.bench_function("json_readings", |b| {
        b.iter(|| {
            black_box(decode_text(Envelope::Readings, black_box(&jr), Arrival::default(), &cfg))
        })
    });
    g.bench_function("json_readings_general", |b| {
        b.iter(|| {
            black_box(decode_general(Envelope::Readings, black_box(&jr), Arrival::default(), &cfg))
        })
    });
    g.bench_function("json_readings_general_serde", |b| {
        b.iter(|| {
            black_box(serde_oracle::decode_general(
                Envelope::Readings,
                black_box(&jr),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    g.bench_function("json_readings_bytes", |b| {
        b.iter(|| {
            black_box(decode_bytes(
                Envelope::Readings,
                black_box(jr.as_bytes()),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    g.bench_function("json_frame", |b| {
        b.iter(|| black_box(decode_text(Envelope::Live, black_box(&jf), Arrival::default(), &cfg)))
    });
    g.bench_function("json_frame_serde", |b| {
        b.iter(|| {
            black_box(serde_oracle::decode_general(
                Envelope::Live,
                black_box(&jf),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    g.finish();
}

/// An engine with N meters bound to stream keys 0..N and full windows.
fn full_engine() -> Engine {
    let patch = ConfigPatch { memory_ceiling_bytes: Some(4e9), ..Default::default() };
    let cfg = Config::default().apply(&patch).expect("valid config");
    let mut engine = Engine::new(cfg.clone()).expect("valid config");
    let mut seed = 3u64;
    let first = kind1(true, TsLayout::Shared, &mut seed);
    engine.handle(decode_binary(Envelope::Readings, &first, &cfg), T0);
    for _ in 0..1_200 {
        let frame = kind1(false, TsLayout::Shared, &mut seed);
        engine.handle(decode_binary(Envelope::Readings, &frame, &cfg), T0);
    }
    engine
}

fn decode_ingest(c: &mut Criterion) {
    let mut engine = full_engine();
    let cfg = engine.config().clone();
    let mut seed = 7u64;
    let binary = kind1(false, TsLayout::Shared, &mut seed);
    let binary_per_record = kind1(false, TsLayout::PerRecord, &mut seed);
    let json = json_readings(&mut seed);
    let mut g = c.benchmark_group("decode_ingest");
    g.sample_size(30);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("binary_kind1_5000_meters", |b| {
        b.iter(|| {
            let input = decode_binary(Envelope::Readings, black_box(&binary), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.bench_function("binary_kind1_per_record_ts_5000_meters", |b| {
        b.iter(|| {
            let input = decode_binary(Envelope::Readings, black_box(&binary_per_record), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.bench_function("json_readings_5000_meters", |b| {
        b.iter(|| {
            let input = decode_text(Envelope::Readings, black_box(&json), Arrival::default(), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.finish();
}

const DELTA_ROWS: usize = 1_000;

fn delta_text(seq: u64) -> String {
    let rows: Vec<String> = (0..DELTA_ROWS)
        .map(|m| {
            let v = (seq as usize * 31 + m * 7) % 1_000;
            format!(
                r#"{{"meter":"m-{m:05}","resource":"water","ts":{},"value":{v}.25,"status":"ok","count":{seq},"total":"{seq}.{v:03}"}}"#,
                T0 as u64 + seq * 500
            )
        })
        .collect();
    format!(
        r#"{{"op":"DELTA","channel":"meters.north","epoch":1,"seq":{seq},"patch":{{"upsert":[{}],"remove":[]}}}}"#,
        rows.join(",")
    )
}

/// [`delta_text`]'s DELTA as a binary kind-4 frame: the same rows, the values
/// its text reads as.
fn delta_binary(seq: u64) -> Vec<u8> {
    use meterflow::core::stream::{MeterRowRef, MeterStatus};
    let ids: Vec<String> = (0..DELTA_ROWS).map(|m| format!("m-{m:05}")).collect();
    let rows: Vec<MeterRowRef<'_>> = ids
        .iter()
        .enumerate()
        .map(|(m, id)| {
            let v = (seq as usize * 31 + m * 7) % 1_000;
            MeterRowRef {
                meter: id,
                resource: "water",
                ts: (T0 as u64 + seq * 500) as f64,
                value: v as f64 + 0.25,
                status: MeterStatus::Ok,
                count: seq,
                total: Decimal::parse(&format!("{seq}.{v:03}")).expect("decimal"),
            }
        })
        .collect();
    encode_meters_delta("meters.north", 1, seq, &rows, &[]).expect("encodable")
}

fn socket(text: &str) -> String {
    serde_json::json!({"type": "socket", "event": "message", "data": text}).to_string()
}

/// An engine whose session is live on `meters.north` at seq 0 with 1,000 meters.
fn stream_engine() -> Engine {
    stream_engine_with(true)
}

/// [`stream_engine`] with `detectLive` as given.
fn stream_engine_with(detect_live: bool) -> Engine {
    let cfg = Config { credit_window: 1_000_000, detect_live, ..Config::default() };
    let mut e = Engine::new(cfg.clone()).expect("valid config");
    let post = |e: &mut Engine, msg: String| {
        let input = meterflow::wire::decode_message_text(&msg, &cfg);
        e.handle(input, T0)
    };
    let out =
        post(&mut e, r#"{"type":"session","op":"start","channels":["meters.north"]}"#.to_string());
    let rid = out
        .iter()
        .find_map(|o| match o {
            meterflow::core::event::Outbound::Stream(
                meterflow::core::stream::StreamRequest::Fetch { request_id, .. },
            ) => Some(*request_id),
            _ => None,
        })
        .expect("snapshot fetch");
    let hello = r#"{"op":"HELLO","heartbeat_interval_ms":3600000,"session_id":"s","server_time_ms":1.7e12}"#;
    post(&mut e, socket(hello));
    post(&mut e, socket(r#"{"op":"READY","session_id":"s"}"#));
    let snap = delta_text(0)
        .replace(r#""op":"DELTA","#, "")
        .replace(r#""seq":0,"patch":{"upsert":"#, r#""snapshot_seq":0,"meters":"#);
    let snap = snap.strip_suffix(r#","remove":[]}}"#).map(|s| format!("{s}}}")).expect("shape");
    let fetched = serde_json::json!({"type": "fetched", "requestId": rid, "ok": true,
        "status": 200, "data": snap});
    let out = post(&mut e, fetched.to_string());
    assert!(
        !out.iter().any(|o| matches!(o, meterflow::core::event::Outbound::Error(_))),
        "{out:?}"
    );
    assert_eq!(e.meter_store().len(), DELTA_ROWS);
    e
}

fn stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    g.sample_size(30);
    g.throughput(Throughput::Elements(DELTA_ROWS as u64));
    let cfg = Config::default();
    let one = delta_text(1);
    g.bench_function("stream_delta_decode_1000", |b| {
        b.iter(|| {
            black_box(meterflow::wire::decode_socket_text(
                black_box(&one),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    let mut engine = stream_engine();
    let cfg = engine.config().clone();
    let mut seq = 0u64;
    g.bench_function("stream_delta_apply_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let text = delta_text(seq);
                let start = std::time::Instant::now();
                let input = meterflow::wire::decode_socket_text(&text, Arrival::default(), &cfg);
                black_box(engine.handle(input, T0 + seq as f64 * 500.0));
                total += start.elapsed();
                // Shown and acknowledged outside the timing, as the page would.
                engine.handle(meterflow::core::event::Inbound::Flush, T0 + seq as f64 * 500.0);
            }
            total
        })
    });
    let bin = delta_binary(1);
    g.bench_function("stream_delta_decode_binary_1000", |b| {
        b.iter(|| {
            black_box(meterflow::wire::decode_socket_binary(
                black_box(&bin),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    let mut engine = stream_engine();
    let mut seq = 0u64;
    g.bench_function("stream_delta_apply_binary_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let frame = delta_binary(seq);
                let start = std::time::Instant::now();
                let input = meterflow::wire::decode_socket_binary(&frame, Arrival::default(), &cfg);
                black_box(engine.handle(input, T0 + seq as f64 * 500.0));
                total += start.elapsed();
                engine.handle(meterflow::core::event::Inbound::Flush, T0 + seq as f64 * 500.0);
            }
            total
        })
    });
    for (name, detect) in
        [("stream_delta_predecoded_1000", true), ("stream_delta_nodetect_1000", false)]
    {
        let mut engine = stream_engine_with(detect);
        let cfg = engine.config().clone();
        let mut seq = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    seq += 1;
                    let text = delta_text(seq);
                    let input =
                        meterflow::wire::decode_socket_text(&text, Arrival::default(), &cfg);
                    let start = std::time::Instant::now();
                    black_box(engine.handle(input, T0 + seq as f64 * 500.0));
                    total += start.elapsed();
                    engine.handle(meterflow::core::event::Inbound::Flush, T0 + seq as f64 * 500.0);
                }
                total
            })
        });
    }
    g.finish();
}

/// Fixed-count mode for alternated old/new comparisons on a loaded machine:
/// with `METERFLOW_DELTA_FIXED=N`, each stream variant runs `N` deltas and
/// prints the median (and p10/p90) of the per-delta times; a delta's time
/// is one measured span, so preemption only lands in the upper percentiles.
fn fixed(n: usize) {
    let cfg = Config::default();
    // `METERFLOW_DELTA_ONLY=apply_bin`: that variant alone (for a profiler).
    let only = std::env::var("METERFLOW_DELTA_ONLY").ok();
    let skip = |name: &str| only.as_deref().is_some_and(|o| o != name);
    let pct = |mut v: Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p) as usize]
    };
    let report = |name: &str, v: Vec<f64>| {
        println!(
            "{name:<14} median {:>8.1} us  p10 {:>8.1}  p90 {:>8.1}  (n={})",
            pct(v.clone(), 0.5),
            pct(v.clone(), 0.1),
            pct(v.clone(), 0.9),
            v.len()
        );
    };
    if !skip("decode") {
        let mut decode = Vec::with_capacity(n);
        for seq in 1..=n as u64 {
            let text = delta_text(seq);
            let start = std::time::Instant::now();
            black_box(meterflow::wire::decode_socket_text(&text, Arrival::default(), &cfg));
            decode.push(start.elapsed().as_secs_f64() * 1e6);
        }
        report("decode", decode);
    }
    if !skip("decode_bin") {
        let mut decode = Vec::with_capacity(n);
        for seq in 1..=n as u64 {
            let frame = delta_binary(seq);
            let start = std::time::Instant::now();
            black_box(meterflow::wire::decode_socket_binary(&frame, Arrival::default(), &cfg));
            decode.push(start.elapsed().as_secs_f64() * 1e6);
        }
        report("decode_bin", decode);
    }
    if !skip("apply_bin") {
        let mut engine = stream_engine_with(true);
        let ecfg = engine.config().clone();
        let mut times = Vec::with_capacity(n);
        for seq in 1..=n as u64 {
            let frame = delta_binary(seq);
            let now = T0 + seq as f64 * 500.0;
            let start = std::time::Instant::now();
            let input = meterflow::wire::decode_socket_binary(&frame, Arrival::default(), &ecfg);
            black_box(engine.handle(input, now));
            times.push(start.elapsed().as_secs_f64() * 1e6);
            engine.handle(meterflow::core::event::Inbound::Flush, now);
        }
        report("apply_bin", times);
    }
    for (name, detect, predecoded) in
        [("apply", true, false), ("predecoded", true, true), ("nodetect", false, true)]
    {
        if skip(name) {
            continue;
        }
        let mut engine = stream_engine_with(detect);
        let ecfg = engine.config().clone();
        let mut times = Vec::with_capacity(n);
        for seq in 1..=n as u64 {
            let text = delta_text(seq);
            let now = T0 + seq as f64 * 500.0;
            let (input, start) = if predecoded {
                let input = meterflow::wire::decode_socket_text(&text, Arrival::default(), &ecfg);
                (input, std::time::Instant::now())
            } else {
                let start = std::time::Instant::now();
                (meterflow::wire::decode_socket_text(&text, Arrival::default(), &ecfg), start)
            };
            black_box(engine.handle(input, now));
            times.push(start.elapsed().as_secs_f64() * 1e6);
            engine.handle(meterflow::core::event::Inbound::Flush, now);
        }
        report(name, times);
    }
}

const PATH_READINGS: usize = 10_000;

/// The browser path benchmark's JSON text (`www/bench/path.js` `jsonText`):
/// reading `i` names meter `i % 5,000`, every reading the same integer `ts`,
/// values around a per-meter level rounded to thousandths (printed shortest,
/// as JavaScript prints them).
fn path_json(seed: &mut u64, ts: f64) -> (String, Vec<f64>) {
    let values: Vec<f64> = (0..PATH_READINGS)
        .map(|i| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let noise = ((*seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 4.0;
            let level = 50.0 + ((i % N) % 100) as f64;
            ((level + noise) * 1000.0).round() / 1000.0
        })
        .collect();
    let items: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!(r#"{{"meter":"{}","ts":{ts},"value":{v}}}"#, meter(i % N)))
        .collect();
    (format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(",")), values)
}

fn json_path(c: &mut Criterion) {
    let mut engine = full_engine();
    let cfg = engine.config().clone();
    let mut seed = 11u64;
    let ts = T0 - 1_000.0;
    let (text, values) = path_json(&mut seed, ts);
    let bytes = text.into_bytes();
    assert!(meterflow::wire::scan_readings(&bytes, &cfg).is_some(), "the fast path refused it");
    let keys: Vec<u32> = (0..PATH_READINGS as u32).map(|i| i % N as u32).collect();
    let batch = ReadingBatch {
        scope: KeyScope::Stream,
        keys,
        ts: vec![ts; PATH_READINGS],
        values,
        ..Default::default()
    };
    let binary = encode_readings(&batch, TsLayout::Shared).expect("encodable");
    let mut g = c.benchmark_group("json_path");
    g.sample_size(30);
    g.throughput(Throughput::Elements(PATH_READINGS as u64));
    g.bench_function("scan", |b| {
        b.iter(|| {
            black_box(decode_bytes(Envelope::Readings, black_box(&bytes), Arrival::default(), &cfg))
        })
    });
    let decoded = decode_bytes(Envelope::Readings, &bytes, Arrival::default(), &cfg);
    assert!(
        matches!(&decoded, meterflow::core::event::Inbound::Readings(b) if b.keys.len() == PATH_READINGS)
    );
    g.bench_function("apply", |b| {
        b.iter_batched(
            || decoded.clone(),
            |input| black_box(engine.handle(input, T0)),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("scan_apply", |b| {
        b.iter(|| {
            let input =
                decode_bytes(Envelope::Readings, black_box(&bytes), Arrival::default(), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.bench_function("binary_apply", |b| {
        b.iter(|| {
            let input = decode_binary(Envelope::Readings, black_box(&binary), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.finish();
}

criterion_group!(benches, decode, decode_ingest, stream, json_path);

fn main() {
    if let Some(n) = std::env::var("METERFLOW_DELTA_FIXED").ok().and_then(|v| v.parse().ok()) {
        return fixed(n);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
