//! The largest stall a server or a page can cause, per inbound message kind:
//! one payload near `maxPayloadBytes` (16 MiB), shaped to cost the most,
//! through the path the worker takes (the page message's bytes, the wire
//! decoder, `Engine::handle`), next to the best case (valid JSON readings of
//! the same size). docs/PERFORMANCE.md, "Hostile payloads", keeps the table.
//!
//! Each case is built once, then decoded and handled `REPS` times, each time
//! into a fresh engine in the state the message expects (a session live on
//! its channel for the stream ops). Times are the thread's CPU time (the
//! machine is shared); the table gives the median and the range, the decode
//! alone and with `handle`, ns per payload byte and the ratio to the JSON
//! readings' cost per byte. Each case also checks the answer it measures (how
//! many records were refused, how many error events came out), so a case that
//! does not do what its name says fails rather than measuring something else.
//!
//! Run: `cargo bench --bench hostile` (add a case name's part to run only
//! the cases that contain it, e.g. `cargo bench --bench hostile -- kind2`).

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, Outbound, ReadingBatch,
};
use meterflow::core::hlc::Hlc;
use meterflow::core::stream::StreamRequest;
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_catchup, encode_live, encode_readings, TsLayout};
use meterflow::wire::{self, Arrival, Envelope, FetchedBody};
use std::hint::black_box;
use std::time::{Duration, Instant};

const T0: f64 = 1.7e12;
const REPS: usize = 5;
/// Payloads are built up to this many bytes (a little under `maxPayloadBytes`).
const BUDGET: usize = (16 << 20) - 4096;
/// Meters the valid readings spread over (the default `maxMeters`).
const METERS: usize = 5_000;

/// Nanoseconds this thread has run on a CPU, if the kernel says.
fn on_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn cpu_time<T>(body: impl FnOnce() -> T) -> (Duration, T) {
    let (c0, t0) = (on_cpu_ns(), Instant::now());
    let out = body();
    let d = match (c0, on_cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => t0.elapsed(),
    };
    (d, out)
}

/// A payload as the page posts it.
enum Message {
    /// `readings` / `live` / `catchup` with `data` as text or bytes.
    Payload(Envelope, Vec<u8>),
    /// `socket` `message` with `data` a string.
    SocketText(String),
    /// `fetched`, ok, answering the engine's first fetch (the snapshot).
    Fetched(String),
    /// `fetched`, ok, answering a `/groups` fetch.
    Groups(String),
    /// A page control message (`config`, ...), as the JSON text the binding writes.
    Control(String),
}

impl Message {
    fn len(&self) -> usize {
        match self {
            Message::Payload(_, b) => b.len(),
            Message::SocketText(s)
            | Message::Fetched(s)
            | Message::Groups(s)
            | Message::Control(s) => s.len(),
        }
    }

    fn decode(&self, cfg: &Config, fetch_id: u64) -> Inbound {
        let a = Arrival::default();
        match self {
            Message::Payload(env, b) => wire::decode_bytes(*env, b, a, cfg),
            Message::SocketText(s) => wire::decode_socket_text(s, a, cfg),
            Message::Fetched(s) => wire::decode_fetched(fetch_id, FetchedBody::Text(s), a, cfg),
            Message::Groups(s) => {
                let id = meterflow::core::groups::GROUPS_REQUEST_BASE;
                wire::decode_fetched(id, FetchedBody::Text(s), a, cfg)
            }
            Message::Control(s) => wire::decode_message_text(s, cfg),
        }
    }
}

/// The engine state a case's message is posted into.
#[derive(Clone, Copy)]
enum State {
    /// A fresh engine, default configuration.
    Fresh,
    /// A session live on `meters.north` (snapshot applied), for stream ops.
    Live,
    /// A session started on `meters.north`, its snapshot fetch outstanding.
    AwaitingSnapshot,
}

/// `Case::refused` for a case whose answer depends on state this bench does
/// not set up (its cost is the decoder's).
const UNCHECKED: usize = usize::MAX;

struct Case {
    name: &'static str,
    /// Records (or entries) the payload carries.
    records: usize,
    /// Records the decoder and the engine must refuse (error events + suppressed).
    refused: usize,
    state: State,
    msg: Message,
}

fn socket_json(text: &str) -> String {
    serde_json::json!({"type": "socket", "event": "message", "data": text}).to_string()
}

/// An engine in `state`, and the request id of its outstanding snapshot fetch.
fn engine(state: State) -> (Engine, u64) {
    let cfg = Config { credit_window: 1_000_000, ..Config::default() };
    let mut e = Engine::new(cfg.clone()).expect("valid config");
    if let State::Fresh = state {
        return (e, 0);
    }
    let post = |e: &mut Engine, msg: &str| e.handle(wire::decode_message_text(msg, &cfg), T0);
    let out = post(&mut e, r#"{"type":"session","op":"start","channels":["meters.north"]}"#);
    let rid = out
        .iter()
        .find_map(|o| match o {
            Outbound::Stream(StreamRequest::Fetch { request_id, .. }) => Some(*request_id),
            _ => None,
        })
        .expect("snapshot fetch");
    let hello = r#"{"op":"HELLO","heartbeat_interval_ms":3600000,"session_id":"s","server_time_ms":1.7e12}"#;
    post(&mut e, &socket_json(hello));
    post(&mut e, &socket_json(r#"{"op":"READY","session_id":"s"}"#));
    if let State::AwaitingSnapshot = state {
        return (e, rid);
    }
    let snap = format!(
        r#"{{"channel":"meters.north","epoch":1,"snapshot_seq":0,"meters":[{}]}}"#,
        meter_row_text(0, "1.5")
    );
    let out =
        e.handle(wire::decode_fetched(rid, FetchedBody::Text(&snap), Arrival::default(), &cfg), T0);
    assert!(!out.iter().any(|o| matches!(o, Outbound::Error(_))), "{out:?}");
    (e, rid)
}

fn meter_row_text(i: usize, value: &str) -> String {
    format!(
        r#"{{"meter":"m-{:06}","resource":"water","ts":{},"value":{value},"status":"ok","count":1,"total":"1.5"}}"#,
        i % METERS,
        T0 as u64
    )
}

/// Items `item(i)` joined by commas until the text would pass `BUDGET`
/// (`frame` is the text around them, `{}` where the items go).
fn fill(frame: &str, item: impl Fn(usize) -> String) -> (String, usize) {
    let (head, tail) = frame.split_once("{}").expect("frame has {}");
    let mut s = String::with_capacity(BUDGET + 256);
    s.push_str(head);
    let mut n = 0;
    loop {
        let it = item(n);
        if s.len() + it.len() + 1 + tail.len() > BUDGET {
            break;
        }
        if n > 0 {
            s.push(',');
        }
        s.push_str(&it);
        n += 1;
    }
    s.push_str(tail);
    (s, n)
}

fn json_readings(name: &'static str, refused: bool, item: impl Fn(usize) -> String) -> Case {
    let (text, n) = fill(r#"{"type":"readings","readings":[{}]}"#, item);
    Case {
        name,
        records: n,
        refused: if refused { n } else { 0 },
        state: State::Fresh,
        msg: Message::Payload(Envelope::Readings, text.into_bytes()),
    }
}

fn reading(i: usize, value: &str, ts: &str) -> String {
    let ts = if ts.is_empty() { format!("{}", T0 as u64 - (i % 1000) as u64) } else { ts.into() };
    format!(r#"{{"meter":"meter-{:06}","ts":{ts},"value":{value}}}"#, i % METERS)
}

/// Records of a binary frame that fit `BUDGET` at `bytes` a record.
fn fit(bytes: usize) -> usize {
    (BUDGET - (256 << 10)) / bytes
}

fn kind1(name: &'static str, bind: bool, value: f64, ts: f64, refused: bool) -> Case {
    let n = fit(20);
    let b = ReadingBatch {
        bindings: if bind {
            (0..METERS).map(|m| (m as u32, format!("meter-{m:06}"))).collect()
        } else {
            Vec::new()
        },
        keys: (0..n).map(|i| (i % METERS) as u32).collect(),
        ts: vec![ts; n],
        values: vec![value; n],
        ..Default::default()
    };
    let bytes = encode_readings(&b, TsLayout::PerRecord).expect("encodable");
    Case {
        name,
        records: n,
        refused: if refused { n } else { 0 },
        state: State::Fresh,
        msg: Message::Payload(Envelope::Readings, bytes),
    }
}

/// A kind-2 frame of valid records, then column `col` (0 ids, 1 ts, 2 amounts)
/// overwritten with `bad`.
fn kind2(name: &'static str, col: usize, bad: f64) -> Case {
    let n = fit(28);
    let f = LiveFrame {
        channel: "c".into(),
        epoch: 1,
        seq: 1,
        stamp: Hlc { wall_ms: T0 as u64, counter: 0 },
        scope: KeyScope::Stream,
        bindings: (0..METERS)
            .map(|m| LiveBinding {
                key: m as u32,
                meter: format!("meter-{m:06}"),
                resource: "water".into(),
            })
            .collect(),
        keys: (0..n).map(|i| (i % METERS) as u32).collect(),
        ids: (0..n as u64).collect(),
        ts: vec![T0; n],
        amounts: vec![Decimal::new(1, 3); n],
        ..Default::default()
    };
    let bytes = encode_live(&f, 3, TsLayout::PerRecord).expect("encodable");
    every_record_refused(name, Envelope::Live, bytes, n, 3 - col, bad)
}

/// A kind-3 catch-up of `n` well-formed buckets over `METERS` meters and
/// `hours` hours back from `T0`'s: with 4 hours, each (meter, hour) is listed
/// about 41 times and every repeat is refused ("lists meter twice"); with
/// 166, each once, and the body applies.
fn catchup_bytes(hours: usize) -> (Vec<u8>, usize) {
    let n = fit(20);
    let c = Catchup {
        as_of: Hlc { wall_ms: T0 as u64, counter: 0 },
        buckets: (0..n)
            .map(|i| CatchupBucket {
                meter: Some(format!("meter-{:06}", i % METERS)),
                resource: "water".into(),
                hour_ms: (T0 / 3.6e6).floor() * 3.6e6 - 3.6e6 * (i / METERS % hours) as f64,
                total: Decimal::new(1, 3),
                position: i as u32,
            })
            .collect(),
        ..Default::default()
    };
    (encode_catchup(&c, 3).expect("encodable"), n)
}

/// Hours enough that the largest kind-3 frame lists each (meter, hour) once.
fn n_hours_for_distinct() -> usize {
    fit(20).div_ceil(METERS)
}

/// A kind-3 catch-up of 4 hours, then the totals (or hours) overwritten.
fn kind3(name: &'static str, hours: bool, bad: f64) -> Case {
    let (bytes, n) = catchup_bytes(4);
    every_record_refused(name, Envelope::Catchup, bytes, n, if hours { 2 } else { 1 }, bad)
}

/// A binary body of `n` records whose `from_end`-th last column of `f64`s
/// (`n` of them) is overwritten with `bad`: every record refused.
fn every_record_refused(
    name: &'static str,
    envelope: Envelope,
    mut bytes: Vec<u8>,
    n: usize,
    from_end: usize,
    bad: f64,
) -> Case {
    let at = bytes.len() - 8 * n * from_end;
    for c in bytes[at..at + 8 * n].chunks_exact_mut(8) {
        c.copy_from_slice(&bad.to_le_bytes());
    }
    Case {
        name,
        records: n,
        refused: n,
        state: State::Fresh,
        msg: Message::Payload(envelope, bytes),
    }
}

/// `0..n` in a fixed shuffled order (xorshift64), the same each run.
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for j in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(j, (x % (j as u64 + 1)) as usize);
    }
    order
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // The best case: valid JSON readings.
    v.push(json_readings("json readings, valid (best case)", false, |i| {
        reading(i, &format!("{}.{}", 100 + i % 50, i % 10), "")
    }));
    v.push(json_readings("json readings, value 1.7976931348623157e308", true, |i| {
        reading(i, "1.7976931348623157e308", "")
    }));
    v.push(json_readings("json readings, value -1e400 (out of range)", true, |i| {
        reading(i, "-1e400", "")
    }));
    v.push(json_readings("json readings, ts 1.7976931348623157e308", true, |i| {
        reading(i, "1", "1.7976931348623157e308")
    }));
    v.push(json_readings("json readings, value a string", true, |i| reading(i, "\"x\"", "")));
    v.push(json_readings("json readings, unknown key", false, |i| {
        format!(r#"{{"meter":"meter-{:06}","ts":{},"value":1,"zz":1}}"#, i % METERS, T0 as u64)
    }));
    v.push(json_readings("json readings, empty meter id", true, |_| {
        format!(r#"{{"meter":"","ts":{},"value":1}}"#, T0 as u64)
    }));
    v.push(json_readings("json readings, meter id of 257 bytes", true, |i| {
        format!(r#"{{"meter":"{:0257}","ts":{},"value":1}}"#, i, T0 as u64)
    }));
    let mut c = json_readings("json readings, 6,000 new meters (capacity)", false, |i| {
        format!(r#"{{"meter":"n{:07}","ts":{},"value":1}}"#, i % 6_000, T0 as u64)
    });
    c.refused = (0..c.records).filter(|i| i % 6_000 >= METERS).count();
    v.push(c);
    let mut c = json_readings("json readings, every meter new (capacity)", false, |i| {
        format!(r#"{{"meter":"n{i:07}","ts":{},"value":1}}"#, T0 as u64)
    });
    c.refused = c.records - METERS;
    v.push(c);
    v.push(kind1("kind 1, valid", true, 1.5, T0, false));
    v.push(kind1("kind 1, value f64::MAX", true, f64::MAX, T0, true));
    v.push(kind1("kind 1, ts f64::MAX", true, 1.0, f64::MAX, true));
    v.push(kind1("kind 1, unbound keys", false, 1.0, T0, true));
    v.push(kind2("kind 2, id f64::MAX", 0, f64::MAX));
    v.push(kind2("kind 2, ts NaN", 1, f64::NAN));
    v.push(kind2("kind 2, amount f64::MAX", 2, f64::MAX));
    v.push(kind2("kind 2, amount -f64::MIN_POSITIVE", 2, -f64::MIN_POSITIVE));
    // Well-formed, but each (meter, hour) listed about 41 times: refused (the
    // name is the table's since 2026-12-05; it measures the check).
    v.push(kind3("kind 3, valid", false, 1.0));
    v.last_mut().expect("case").refused = UNCHECKED;
    {
        let (bytes, n) = catchup_bytes(n_hours_for_distinct());
        v.push(Case {
            name: "kind 3, valid, each (meter, hour) once",
            records: n,
            refused: 0,
            state: State::Fresh,
            msg: Message::Payload(Envelope::Catchup, bytes),
        });
    }
    v.push(kind3("kind 3, total f64::MAX", false, f64::MAX));
    v.push(kind3("kind 3, hour f64::MAX", true, f64::MAX));
    {
        let (text, n) = fill(
            &format!(
                r#"{{"type":"frame","channel":"c","epoch":1,"seq":1,"hlc":{{"wallMs":{},"counter":0}},"readings":[{{}}]}}"#,
                T0 as u64
            ),
            |i| {
                format!(
                    r#"{{"meter":"meter-{:06}","resource":"water","id":1e300,"ts":{},"amount":"1"}}"#,
                    i % METERS,
                    T0 as u64
                )
            },
        );
        v.push(Case {
            name: "json frame, id 1e300",
            records: n,
            refused: n,
            state: State::Fresh,
            msg: Message::Payload(Envelope::Live, text.into_bytes()),
        });
    }
    {
        let (text, n) = fill(
            &format!(
                r#"{{"type":"catchup","asOf":{{"wallMs":{},"counter":0}},"buckets":[{{}}]}}"#,
                T0 as u64
            ),
            |i| {
                format!(
                    r#"{{"meter":"meter-{:06}","resource":"water","hour":1.7976931348623157e308,"total":"1"}}"#,
                    i % METERS
                )
            },
        );
        v.push(Case {
            name: "json catchup, hour 1.79e308",
            records: n,
            refused: n,
            state: State::Fresh,
            msg: Message::Payload(Envelope::Catchup, text.into_bytes()),
        });
    }
    {
        let (text, n) =
            fill(r#"{"op":"HEARTBEAT_ACK","sent":{{}}}"#, |i| format!(r#""c{i:07}":[1,{i}]"#));
        v.push(Case {
            name: "HEARTBEAT_ACK, distinct channels",
            records: n,
            refused: 0,
            state: State::Live,
            msg: Message::SocketText(text),
        });
        // The same channels out of order: the decoder sorts them by name
        // (`lite::Object::entries_by_key`), which costs more unsorted.
        let order = shuffled(n);
        let (text, n) = fill(r#"{"op":"HEARTBEAT_ACK","sent":{{}}}"#, |i| {
            let c = order.get(i).copied().unwrap_or(i);
            format!(r#""c{c:07}":[1,{c}]"#)
        });
        v.push(Case {
            name: "HEARTBEAT_ACK, distinct channels shuffled",
            records: n,
            refused: 0,
            state: State::Live,
            msg: Message::SocketText(text),
        });
    }
    // A DELTA refuses its whole body at the first bad row: one refusal.
    for (name, value, refused) in
        [("DELTA text, valid rows", "1.5", 0), ("DELTA text, value a string", "\"x\"", 1)]
    {
        let (text, n) = fill(
            r#"{"op":"DELTA","channel":"meters.north","epoch":1,"seq":1,"patch":{"upsert":[{}],"remove":[]}}"#,
            |i| meter_row_text(i, value),
        );
        v.push(Case {
            name,
            records: n,
            refused,
            state: State::Live,
            msg: Message::SocketText(text),
        });
    }
    {
        let (text, n) =
            fill(r#"{"channel":"meters.north","epoch":1,"snapshot_seq":0,"meters":[{}]}"#, |i| {
                meter_row_text(i, "1.5")
            });
        v.push(Case {
            name: "SNAPSHOT (fetched), valid rows",
            records: n,
            refused: 0,
            state: State::AwaitingSnapshot,
            msg: Message::Fetched(text),
        });
    }
    {
        let (text, n) = fill(r#"{"version":1,"groups":{{}}}"#, |i| format!(r#""g{i:07}":[]"#));
        v.push(Case {
            name: "groups (fetched), empty groups",
            records: n,
            refused: UNCHECKED,
            state: State::Fresh,
            msg: Message::Groups(text),
        });
        // The same names out of order: a sort of the names (tried for the
        // repeat check) costs more unsorted; `wire::groups::repeat` should not.
        let order = shuffled(n);
        let (text, n) = fill(r#"{"version":1,"groups":{{}}}"#, |i| {
            let g = order.get(i).copied().unwrap_or(i);
            format!(r#""g{g:07}":[]"#)
        });
        v.push(Case {
            name: "groups (fetched), empty groups shuffled",
            records: n,
            refused: UNCHECKED,
            state: State::Fresh,
            msg: Message::Groups(text),
        });
        let (text, n) = fill(r#"{"version":1,"groups":{"g":[{}]}}"#, |i| format!(r#""m{i:06}""#));
        v.push(Case {
            name: "groups (fetched), one group's members",
            records: n,
            refused: UNCHECKED,
            state: State::Fresh,
            msg: Message::Groups(text),
        });
    }
    {
        let (text, n) = fill(r#"{"type":"config","config":{{}}}"#, |i| format!(r#""w{i:07}":1"#));
        v.push(Case {
            name: "config, unknown keys",
            records: n,
            refused: 1,
            state: State::Fresh,
            msg: Message::Control(text),
        });
    }
    v
}

/// Error events and the count an `errors_suppressed` summary carries.
fn refusals(out: &[Outbound]) -> (usize, usize) {
    let mut events = 0;
    let mut suppressed = 0;
    for o in out {
        if let Outbound::Error(e) = o {
            events += 1;
            if e.code == ErrorCode::ErrorsSuppressed {
                let n = e.message.split_whitespace().next().and_then(|n| n.parse().ok());
                suppressed += n.unwrap_or(0);
                events -= 1;
            }
        }
    }
    (events, suppressed)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let cases = cases();
    let mut best_ns_per_byte = None;
    println!("| payload | bytes | records | decode ms | decode + handle ms (min–max) | ns/byte | × best |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for c in &cases {
        let best = best_ns_per_byte.is_none();
        if !best && !filter.is_empty() && !filter.iter().any(|f| c.name.contains(f.as_str())) {
            continue;
        }
        let (mut dec, mut all) = (Vec::new(), Vec::new());
        for _ in 0..REPS {
            let (mut e, rid) = engine(c.state);
            let cfg = e.config().clone();
            let (d, input) = cpu_time(|| c.msg.decode(&cfg, rid));
            let (h, out) = cpu_time(|| e.handle(black_box(input), T0));
            let (events, suppressed) = refusals(&out);
            if c.refused == UNCHECKED {
            } else if c.refused > 1 {
                // A refused body adds its own error to the records'.
                let n = events + suppressed;
                assert!(
                    (c.refused..=c.refused + 1).contains(&n),
                    "{}: {n} {:?}",
                    c.name,
                    out.first()
                );
                assert!(events <= cfg.max_errors_per_batch as usize + 1, "{}: {events}", c.name);
            } else if c.refused == 0 {
                assert_eq!(events + suppressed, 0, "{}: {:?}", c.name, out.first());
            } else {
                assert!(events >= 1, "{}: no error", c.name);
            }
            drop(black_box(out));
            dec.push(d.as_secs_f64() * 1e3);
            all.push((d + h).as_secs_f64() * 1e3);
        }
        let (dm, ..) = median(dec);
        let (m, lo, hi) = median(all);
        let per_byte = m * 1e6 / c.msg.len() as f64;
        let base = *best_ns_per_byte.get_or_insert(per_byte);
        println!(
            "| {} | {} | {} | {dm:.1} | {m:.1} ({lo:.1}–{hi:.1}) | {per_byte:.2} | {:.1} |",
            c.name,
            c.msg.len(),
            c.records,
            per_byte / base
        );
    }
}
