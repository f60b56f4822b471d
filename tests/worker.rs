//! The wasm binding, tested where it lives: in a dedicated worker in headless
//! Chromium. Run: `CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test worker`.
//!
//! The session tests do real `postMessage` round trips: the engine runs behind
//! one port of a `MessageChannel` (`startOnPort`), the test posts on the other
//! and awaits the replies. Ordering comes from the protocol, never from sleeps:
//! a message's replies are posted before the next message is handled, and a
//! tick evaluates a meter only when it has a new reading, so `stats.evaluations`
//! tells the test that a tick has seen what it posted.
//!
//! Tests return `Result` instead of panicking: with panic=abort a panic traps
//! the instance mid-future, and the runner then hangs instead of reporting.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Float64Array, Function, Promise, Reflect, Uint8Array, JSON};
use meterflow::wasm::{start_on_port, MeterflowEngine, WorkerMessages, WorkerSession};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{MessageChannel, MessageEvent, MessagePort};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// How long to wait for a reply before failing: a liveness guard for a hung
/// worker, not a speed assertion (replies take milliseconds).
const GUARD_MS: i32 = 20_000;

// ---- helpers -----------------------------------------------------------------

type TestResult = Result<(), JsValue>;

/// Fails the test (returns `Err`) unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(JsValue::from_str(&format!("{} ({})", format!($($msg)+), stringify!($cond))));
        }
    };
}

/// Fails the test unless `left == right`.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(, $($msg:tt)+)?) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            let ctx: String = String::new() $(+ &format!($($msg)+))?;
            return Err(JsValue::from_str(&format!(
                "{} != {}: {:?} != {:?} {ctx}", stringify!($left), stringify!($right), l, r
            )));
        }
    }};
}

fn js(text: &str) -> JsValue {
    JSON::parse(text).unwrap_or_else(|e| panic!("bad test JSON {text}: {e:?}"))
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn text(v: &JsValue, key: &str) -> Result<String, JsValue> {
    get(v, key).as_string().ok_or_else(|| format!("{key} is not a string in {}", show(v)).into())
}

fn num(v: &JsValue, key: &str) -> Result<f64, JsValue> {
    get(v, key).as_f64().ok_or_else(|| format!("{key} is not a number in {}", show(v)).into())
}

/// `m.key`, or NaN: for predicates that skip messages without the field.
fn num_or_nan(m: &JsValue, key: &str) -> f64 {
    get(m, key).as_f64().unwrap_or(f64::NAN)
}

fn show(v: &JsValue) -> String {
    JSON::stringify(v).ok().and_then(|s| s.as_string()).unwrap_or_else(|| format!("{v:?}"))
}

fn now() -> f64 {
    js_sys::Date::now()
}

/// A JSON `readings` message for one meter, one reading per 500 ms ending now.
fn json_readings(meter: &str, values: &[f64]) -> JsValue {
    let end = now();
    let items: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ts = end - 500.0 * (values.len() - 1 - i) as f64;
            format!(r#"{{"meter":"{meter}","ts":{ts},"value":{v}}}"#)
        })
        .collect();
    let payload = format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(","));
    let msg = js(r#"{"type":"readings"}"#);
    Reflect::set(&msg, &"data".into(), &payload.into()).unwrap();
    msg
}

/// A binary kind-1 frame (PROTOCOL.md 3.4) with one shared timestamp.
fn frame(bindings: &[(u32, &str)], keys: &[u32], ts: f64, values: &[f64]) -> Vec<u8> {
    let pad8 = |v: &mut Vec<u8>| v.resize(v.len().div_ceil(8) * 8, 0);
    let mut f = b"MFLW".to_vec();
    f.extend_from_slice(&[1, 1]);
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&(bindings.len() as u32).to_le_bytes());
    f.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for (key, id) in bindings {
        f.extend_from_slice(&key.to_le_bytes());
        f.extend_from_slice(&(id.len() as u16).to_le_bytes());
        f.extend_from_slice(id.as_bytes());
    }
    pad8(&mut f);
    keys.iter().for_each(|k| f.extend_from_slice(&k.to_le_bytes()));
    pad8(&mut f);
    f.extend_from_slice(&ts.to_le_bytes());
    values.iter().for_each(|v| f.extend_from_slice(&v.to_le_bytes()));
    f
}

fn readings_message(data: &JsValue) -> JsValue {
    let msg = js(r#"{"type":"readings"}"#);
    Reflect::set(&msg, &"data".into(), data).unwrap();
    msg
}

/// A promise that resolves to `"timeout"` after `ms`.
fn timeout(ms: i32) -> Result<Promise, JsValue> {
    let mut result = Ok(());
    let promise = Promise::new(&mut |resolve, _| {
        let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        result = scope
            .set_timeout_with_callback_and_timeout_and_arguments_1(&resolve, ms, &"timeout".into())
            .map(drop);
    });
    result.map(|()| promise)
}

/// The page side of a session: posts on one port, collects every reply in order.
struct Page {
    port: MessagePort,
    queue: Rc<RefCell<VecDeque<JsValue>>>,
    waker: Rc<RefCell<Option<Function>>>,
    /// Every message taken from the queue so far, for assertions after the fact.
    seen: Vec<JsValue>,
    session: WorkerSession,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Page {
    /// Starts an engine with `config` on one port of a new channel.
    fn start(config: Option<&str>) -> Result<Page, JsValue> {
        let channel = MessageChannel::new()?;
        let config = config.map(|c| js(c).unchecked_into());
        let session = start_on_port(channel.port1().unchecked_into(), config)?;
        let queue: Rc<RefCell<VecDeque<JsValue>>> = Rc::default();
        let waker: Rc<RefCell<Option<Function>>> = Rc::default();
        let (q, w) = (queue.clone(), waker.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            q.borrow_mut().push_back(ev.data());
            if let Some(wake) = w.borrow_mut().take() {
                let _ = wake.call0(&JsValue::NULL);
            }
        });
        let port = channel.port2();
        port.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Ok(Page { port, queue, waker, seen: Vec::new(), session, _on_message: on_message })
    }

    fn post(&self, msg: &JsValue) -> TestResult {
        self.port.post_message(msg)
    }

    fn post_transfer(&self, msg: &JsValue, buffer: &JsValue) -> TestResult {
        self.port.post_message_with_transferable(msg, &Array::of1(buffer))
    }

    /// The next reply, in order.
    async fn next(&mut self) -> Result<JsValue, JsValue> {
        loop {
            let first = self.queue.borrow_mut().pop_front();
            if let Some(m) = first {
                self.seen.push(m.clone());
                return Ok(m);
            }
            let waker = self.waker.clone();
            let arrived = Promise::new(&mut |resolve, _| *waker.borrow_mut() = Some(resolve));
            let guard = timeout(GUARD_MS)?;
            let winner = JsFuture::from(Promise::race(&Array::of2(&arrived, &guard))).await?;
            if winner.as_string().as_deref() == Some("timeout") {
                let seen = self.seen_types();
                return Err(format!("no reply within {GUARD_MS} ms; replies so far: {seen}").into());
            }
        }
    }

    /// Skips replies until one satisfies `pred` (timer `stats`/`totals` interleave
    /// freely); gives up after `GUARD_MS` even while replies keep coming.
    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&JsValue) -> bool,
    ) -> Result<JsValue, JsValue> {
        let start = now();
        while now() - start < f64::from(GUARD_MS) {
            let m = self.next().await?;
            if pred(&m) {
                return Ok(m);
            }
        }
        Err(format!("no {what} within {GUARD_MS} ms; replies: {}", self.seen_types()).into())
    }

    async fn next_of(&mut self, ty: &str) -> Result<JsValue, JsValue> {
        self.until(ty, |m| type_of(m) == ty).await
    }

    /// The next reply that is not timer output (`stats`, `totals`, `fetch`).
    async fn next_reply(&mut self) -> Result<JsValue, JsValue> {
        self.until("a reply", |m| !matches!(type_of(m).as_str(), "stats" | "totals" | "fetch"))
            .await
    }

    fn saw_no_error(&self) -> TestResult {
        let errors: Vec<String> =
            self.seen.iter().filter(|m| type_of(m) == "error").map(show).collect();
        ensure!(errors.is_empty(), "unexpected errors: {}", errors.join("; "));
        Ok(())
    }

    fn seen_types(&self) -> String {
        self.seen.iter().map(type_of).collect::<Vec<_>>().join(",")
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.session.stop();
        self.port.set_onmessage(None);
    }
}

fn type_of(m: &JsValue) -> String {
    get(m, "type").as_string().unwrap_or_default()
}

// ---- session: real postMessage round trips ------------------------------------

#[wasm_bindgen_test]
async fn ready_comes_first_then_queries_are_answered() -> TestResult {
    let mut page = Page::start(None)?;
    let ready = page.next().await?;
    ensure_eq!(text(&ready, "type")?, "ready");
    ensure_eq!(num(&ready, "v")?, 1.0);
    ensure_eq!(text(&ready, "version")?, env!("CARGO_PKG_VERSION"));

    page.post(&js(r#"{"type":"query","query":"stats"}"#))?;
    let stats = page.next_of("stats").await?;
    ensure_eq!(num(&stats, "v")?, 1.0);
    ensure_eq!(num(&stats, "meters")?, 0.0);
    ensure_eq!(num(&stats, "window")?, 1200.0);
    page.saw_no_error()
}

#[wasm_bindgen_test]
async fn json_readings_come_back_as_a_float64array_window() -> TestResult {
    let mut page = Page::start(None)?;
    page.next_of("ready").await?;
    page.post(&json_readings("pump-1", &[1.0, 2.5, 3.0, 4.25]))?;
    page.post(&js(r#"{"type":"query","query":"window","meter":"pump-1"}"#))?;
    let w = page.next_reply().await?;
    ensure_eq!(text(&w, "type")?, "window", "{}", show(&w));
    ensure_eq!(text(&w, "meter")?, "pump-1");
    let values = get(&w, "values");
    ensure!(values.is_instance_of::<Float64Array>(), "values is not a Float64Array: {}", show(&w));
    ensure_eq!(values.unchecked_into::<Float64Array>().to_vec(), vec![1.0, 2.5, 3.0, 4.25]);
    page.saw_no_error()
}

#[wasm_bindgen_test]
async fn binary_frames_are_transferred_and_views_are_read_at_their_offset() -> TestResult {
    let mut page = Page::start(None)?;
    page.next_of("ready").await?;
    let t = now();
    // A whole transferred ArrayBuffer, binding two meters.
    let bytes = frame(&[(0, "a"), (1, "b")], &[0, 1, 0], t, &[10.0, 20.0, 30.0]);
    let buffer: JsValue = Uint8Array::from(&bytes[..]).buffer().into();
    page.post_transfer(&readings_message(&buffer), &buffer)?;
    ensure_eq!(num(&buffer, "byteLength")?, 0.0, "the buffer was not transferred");
    // A Uint8Array view 8 bytes into a larger buffer; the keys stay bound.
    let more = frame(&[], &[1, 1], t, &[40.0, 60.0]);
    let len = more.len() as u32;
    let backing = Uint8Array::new_with_length(len + 16);
    backing.subarray(8, 8 + len).copy_from(&more);
    let view = Uint8Array::new_with_byte_offset_and_length(&backing.buffer(), 8, len);
    page.post(&readings_message(&view))?;

    page.post(&js(r#"{"type":"query","query":"meter","meter":"a"}"#))?;
    let a = page.next_reply().await?;
    ensure_eq!((num(&a, "count")?, num(&a, "mean")?), (2.0, 20.0), "{}", show(&a));
    page.post(&js(r#"{"type":"query","query":"meter","meter":"b"}"#))?;
    let b = page.next_reply().await?;
    ensure_eq!((num(&b, "count")?, num(&b, "mean")?), (3.0, 40.0), "{}", show(&b));
    page.saw_no_error()
}

#[wasm_bindgen_test]
async fn every_type_mismatch_is_an_error_with_a_code_and_the_engine_survives() -> TestResult {
    let mut page = Page::start(Some(r#"{"maxPayloadBytes": 64}"#))?;
    page.next_of("ready").await?;
    let cases: Vec<(JsValue, &str)> = vec![
        (JsValue::from_f64(42.0), "bad_field"),
        (JsValue::from_str("readings"), "bad_field"),
        (js(r#"{"type": 7}"#), "bad_field"),
        (js(r#"{"data": "{}"}"#), "bad_field"),
        (js(r#"{"type": "readings"}"#), "bad_field"),
        (js(r#"{"type": "readings", "data": 42}"#), "bad_field"),
        (js(r#"{"type": "readings", "data": [1, 2]}"#), "bad_field"),
        (js(r#"{"type": "readings", "data": "{not json"}"#), "malformed_json"),
        (js(r#"{"type": "readings", "v": 2, "data": "{}"}"#), "unsupported_version"),
        (js(r#"{"type": "catchup", "data": "{}", "sentAt": "yesterday"}"#), "bad_field"),
        (js(r#"{"type": "no-such-type"}"#), "unknown_type"),
        (readings_message(&Uint8Array::new_with_length(65).buffer()), "payload_too_large"),
        (readings_message(&"x".repeat(65).into()), "payload_too_large"),
        // A control message (here a query) is bounded like a payload.
        (
            js(&format!(r#"{{"type":"query","query":"meter","meter":"{}"}}"#, "m".repeat(40))),
            "payload_too_large",
        ),
        (readings_message(&Uint8Array::from(&b"MFLW"[..]).into()), "truncated_frame"),
        (readings_message(&js_sys::ArrayBuffer::new(0).into()), "truncated_frame"),
        (readings_message(&Uint8Array::new_with_length(0).into()), "truncated_frame"),
        (js(r#"{"type": "query", "query": "meter", "meter": "nobody"}"#), "unknown_meter"),
    ];
    for (msg, code) in &cases {
        page.post(msg)?;
        let e = page.next_reply().await?;
        ensure_eq!(text(&e, "type")?, "error", "for {}: {}", show(msg), show(&e));
        ensure_eq!(text(&e, "code")?, *code, "for {}: {}", show(msg), show(&e));
        ensure!(!text(&e, "message")?.is_empty(), "empty message for {}", show(msg));
        ensure_eq!(num(&e, "v")?, 1.0);
    }
    // Still alive, and nothing was counted.
    page.post(&js(r#"{"type":"query","query":"stats"}"#))?;
    let stats = page.next_of("stats").await?;
    ensure_eq!(num(&stats, "meters")?, 0.0);
    ensure_eq!(num(&stats, "readingsIngested")?, 0.0);
    Ok(())
}

#[wasm_bindgen_test]
async fn a_config_message_rearms_the_tick_timer_and_ticks_report_host_stats() -> TestResult {
    // A tick period of ~11 days: no tick fires unless the config re-arms the timer.
    let mut page = Page::start(Some(r#"{"tickMs": 1e9, "statsIntervalMs": 1}"#))?;
    page.next_of("ready").await?;
    page.post(&json_readings("m", &[1.0, 2.0, 3.0]))?;
    page.post(&js(r#"{"type":"config","config":{"tickMs": 5}}"#))?;
    let ticked = |m: &JsValue| type_of(m) == "stats" && num_or_nan(m, "evaluations") >= 1.0;
    let stats = page.until("a tick's stats", ticked).await?;
    ensure_eq!(num(&stats, "meters")?, 1.0);
    ensure_eq!(num(&stats, "readingsIngested")?, 3.0);
    let memory = num(&stats, "linearMemoryBytes")?;
    ensure!(memory > 0.0 && memory % 65_536.0 == 0.0, "linearMemoryBytes {memory}");
    let tick_ms = num(&stats, "lastTickEvalMs")?;
    ensure!(tick_ms.is_finite() && tick_ms >= 0.0, "lastTickEvalMs {tick_ms}");
    page.saw_no_error()
}

/// Acks are held while more messages wait (`maxHeldAcks`, src/wasm/held_acks.rs):
/// whatever the bound, every payload posted back to back gets exactly one ack,
/// in the order posted, and a query posted after them is answered after all
/// of them (anything else the worker posts releases the held acks first).
#[wasm_bindgen_test]
async fn back_to_back_payloads_get_every_ack_in_order_before_a_later_answer() -> TestResult {
    for config in [None, Some(r#"{"maxHeldAcks":0}"#), Some(r#"{"maxHeldAcks":3}"#)] {
        let mut page = Page::start(config)?;
        page.next_of("ready").await?;
        let posted = 20u32;
        for id in 1..=posted {
            let msg = json_readings(&format!("m{}", id % 4), &[1.0, 2.0, f64::from(id)]);
            Reflect::set(&msg, &"id".into(), &id.into())?;
            page.post(&msg)?;
        }
        // A payload refused as a whole is acked too, in its place.
        let bad = readings_message(&"not json".into());
        Reflect::set(&bad, &"id".into(), &(posted + 1).into())?;
        page.post(&bad)?;
        page.post(&js(r#"{"type":"query","query":"window","meter":"m1"}"#))?;
        for id in 1..=posted + 1 {
            let ack = page
                .until("an ack or the answer", |m| matches!(type_of(m).as_str(), "ack" | "window"));
            let ack = ack.await?;
            ensure_eq!(text(&ack, "type")?, "ack", "{config:?}: {} before ack {id}", show(&ack));
            ensure_eq!(num(&ack, "id")?, f64::from(id), "{config:?}");
            let (accepted, refused) = if id > posted { (0.0, 1.0) } else { (3.0, 0.0) };
            ensure_eq!(num(&ack, "accepted")?, accepted, "{config:?}: ack {id}");
            ensure_eq!(num(&ack, "refused")?, refused, "{config:?}: ack {id}");
        }
        let answer = page.next_reply().await?;
        ensure_eq!(text(&answer, "type")?, "window", "{config:?}: {}", show(&answer));
        ensure_eq!(get(&answer, "values").unchecked_into::<Float64Array>().length(), 15);
        // Refused payloads answer with an `error` too; nothing else may.
        let errors = page.seen.iter().filter(|m| type_of(m) == "error").count();
        ensure_eq!(errors, 1, "{config:?}: {}", page.seen_types());
    }
    Ok(())
}

#[wasm_bindgen_test]
async fn a_spike_through_the_worker_loop_raises_an_anomaly() -> TestResult {
    // Every tick reports stats, so `evaluations` shows when a tick saw a reading.
    let mut page = Page::start(Some(r#"{"tickMs": 5, "statsIntervalMs": 1}"#))?;
    page.next_of("ready").await?;
    let history: Vec<f64> = (0..200).map(|i| 100.0 + ((i * 7919) % 13) as f64 * 0.1).collect();
    page.post(&json_readings("pipe", &history))?;
    let mut evaluations = 0.0;
    // One spike reading per evaluation, so the vote sees several breaching evaluations.
    for round in 0..7 {
        if round > 0 {
            page.post(&json_readings("pipe", &[1_000.0]))?;
        }
        let want = evaluations + 1.0;
        let evaluated = |m: &JsValue| type_of(m) == "stats" && num_or_nan(m, "evaluations") >= want;
        evaluations = num(&page.until("an evaluation", evaluated).await?, "evaluations")?;
    }
    let anomaly = page.seen.iter().find(|m| type_of(m) == "anomaly").cloned();
    let Some(anomaly) = anomaly else {
        return Err(format!("no anomaly; replies: {}", page.seen_types()).into());
    };
    ensure_eq!(text(&anomaly, "meter")?, "pipe");
    ensure_eq!(text(&anomaly, "kind")?, "spike", "{}", show(&anomaly));
    let severity = text(&anomaly, "severity")?;
    ensure!(["warning", "critical"].contains(&severity.as_str()), "severity {severity}");
    ensure_eq!(num(&anomaly, "value")?, 1_000.0);
    ensure!(num(&anomaly, "z")? > 4.0, "{}", show(&anomaly));
    page.saw_no_error()
}

/// A `live` message carrying one JSON frame of one water reading.
fn live_frame(seq: u32, stamp: f64, id: u32, amount: &str) -> JsValue {
    let text = format!(
        r#"{{"type":"frame","epoch":1,"seq":{seq},"hlc":{{"wallMs":{stamp},"counter":0}},"readings":[{{"meter":"a","resource":"water","id":{id},"ts":{stamp},"amount":"{amount}"}}]}}"#
    );
    let msg = js(r#"{"type":"live"}"#);
    Reflect::set(&msg, &"data".into(), &text.into()).unwrap();
    msg
}

/// Issue 3 in the worker: live frames and a REST catch-up that overlaps them,
/// a duplicated frame and a frame the catch-up already covers; the posted
/// totals count every reading exactly once.
#[wasm_bindgen_test]
async fn overlapping_live_and_rest_payloads_are_counted_once() -> TestResult {
    let mut page = Page::start(Some(r#"{"totalsFlushMs": 20}"#))?;
    page.next_of("ready").await?;
    let hour_ms = 3_600_000.0;
    let t = now();
    // Keep every stamp in one hour, even right after an hour boundary.
    let base = if t % hour_ms < 5_000.0 { t - t % hour_ms - 5_000.0 } else { t - 2_000.0 };
    let bucket = base - base % hour_ms;
    let current = t - t % hour_ms;
    let hello = format!(
        r#"{{"type":"hello","epoch":1,"nextSeq":0,"hlc":{{"wallMs":{},"counter":0}},"serverTime":{t}}}"#,
        base - 100.0
    );
    let msg = js(r#"{"type":"live"}"#);
    Reflect::set(&msg, &"data".into(), &hello.into()).unwrap();
    page.post(&msg)?;
    page.post(&live_frame(0, base, 1, "1.000"))?;
    page.post(&live_frame(1, base + 100.0, 2, "2.000"))?;
    page.post(&live_frame(0, base, 1, "1.000"))?; // duplicated frame
                                                  // The catch-up was taken between the two frames: it includes reading 1 only.
    let rest = format!(
        r#"{{"type":"catchup","asOf":{{"wallMs":{},"counter":0}},"serverTime":{t},"from":{},"to":{current},"buckets":[{{"resource":"water","hour":{bucket},"total":"101.000"}}]}}"#,
        base + 50.0,
        current - 6.0 * hour_ms
    );
    let msg = js(r#"{"type":"catchup"}"#);
    Reflect::set(&msg, &"data".into(), &rest.into()).unwrap();
    Reflect::set(&msg, &"sentAt".into(), &(t - 5.0).into()).unwrap();
    Reflect::set(&msg, &"receivedAt".into(), &t.into()).unwrap();
    page.post(&msg)?;
    page.post(&live_frame(0, base, 1, "1.000"))?; // now covered by the catch-up
    let counter = |m: &JsValue, name: &str| num_or_nan(&get(m, "counters"), name);
    let settled = |m: &JsValue| type_of(m) == "totals" && counter(m, "covered") >= 1.0;
    let totals = page.until("totals after the catch-up", settled).await?;
    ensure_eq!(get(&totals, "incomplete").as_bool(), Some(false), "{}", show(&totals));
    let water = Reflect::get(&get(&totals, "resources"), &0.into())?;
    ensure_eq!(text(&water, "resource")?, "water");
    let buckets: Array = get(&water, "buckets").unchecked_into();
    let hour = buckets.iter().find(|b| num_or_nan(b, "hour") == bucket);
    let Some(hour) = hour else {
        return Err(format!("no bucket for hour {bucket}: {}", show(&totals)).into());
    };
    // REST 101.000 (with reading 1) + live reading 2, in 0.001 m3.
    ensure_eq!(num(&hour, "total")?, 103_000.0, "{}", show(&totals));
    ensure_eq!(counter(&totals, "duplicates"), 1.0);
    ensure_eq!(counter(&totals, "livePending"), 1.0);
    ensure_eq!(counter(&totals, "liveCounted"), 2.0);
    let hlc = get(&totals, "hlc");
    ensure!(num(&hlc, "wallMs")? >= base && num(&hlc, "counter")? >= 0.0, "{}", show(&hlc));
    ensure_eq!(num(&get(&totals, "asOf"), "wallMs")?, base + 50.0);

    // A newer catch-up as a binary kind-3 frame (transferred), covering reading 2.
    let c = meterflow::core::event::Catchup {
        as_of: meterflow::core::hlc::Hlc { wall_ms: (base + 150.0) as u64, counter: 0 },
        from_hour_ms: Some(current - 6.0 * hour_ms),
        to_hour_ms: Some(current),
        server_time_ms: Some(t),
        buckets: vec![meterflow::core::event::CatchupBucket {
            meter: Some("a".into()),
            resource: "water".into(),
            hour_ms: bucket,
            total: meterflow::core::decimal::Decimal::new(103_000, 3),
            position: 0,
        }],
        ..Default::default()
    };
    let frame = meterflow::wire::binary::encode_catchup(&c, 3).map_err(|e| e.to_string())?;
    let buf = Uint8Array::from(frame.as_slice()).buffer();
    let msg = js(r#"{"type":"catchup"}"#);
    Reflect::set(&msg, &"data".into(), &buf)?;
    Reflect::set(&msg, &"sentAt".into(), &(t - 5.0).into())?;
    Reflect::set(&msg, &"receivedAt".into(), &t.into())?;
    page.post_transfer(&msg, &buf)?;
    let retired = |m: &JsValue| type_of(m) == "totals" && counter(m, "restApplied") >= 2.0;
    let totals = page.until("totals after the binary catch-up", retired).await?;
    ensure_eq!(counter(&totals, "livePending"), 0.0, "{}", show(&totals));
    ensure_eq!(num(&get(&totals, "asOf"), "wallMs")?, base + 150.0);
    let water = Reflect::get(&get(&totals, "resources"), &0.into())?;
    let buckets: Array = get(&water, "buckets").unchecked_into();
    let hour = buckets.iter().find(|b| num_or_nan(b, "hour") == bucket);
    ensure_eq!(hour.map(|h| num_or_nan(&h, "total")), Some(103_000.0), "{}", show(&totals));
    page.saw_no_error()
}

// ---- stream v2 session: the page transport and the worker transport ----------

/// A `socket` message event carrying `data`.
fn socket_message(data: &JsValue) -> JsValue {
    let msg = js(r#"{"type":"socket","event":"message"}"#);
    Reflect::set(&msg, &"data".into(), data).unwrap();
    msg
}

/// A binary kind-2 live frame of `totals`: one water reading of meter `a`.
fn totals_frame(epoch: u64, seq: u64, stamp: f64, id: u64, amount_units: i64) -> Vec<u8> {
    use meterflow::core::event::{LiveBinding, LiveFrame};
    let frame = LiveFrame {
        channel: "totals".into(),
        epoch,
        seq,
        stamp: meterflow::core::hlc::Hlc { wall_ms: stamp as u64, counter: 0 },
        bindings: vec![LiveBinding { key: 0, meter: "a".into(), resource: "water".into() }],
        keys: vec![0],
        ids: vec![id],
        ts: vec![stamp],
        amounts: vec![meterflow::core::decimal::Decimal::new(amount_units, 3)],
        ..Default::default()
    };
    meterflow::wire::binary::encode_live(&frame, 3, meterflow::wire::binary::TsLayout::Shared)
        .unwrap_or_default()
}

/// The page transport through the worker loop: `session start` asks the page to
/// `connect`; the page's `socket` open / HELLO / READY messages drive the session
/// to `ready`; the `totals` snapshot is asked for with a `fetch` carrying a
/// `requestId`, answered with `fetched` (a catch-up body), and a transferred
/// binary live frame that follows it is counted on top, exactly.
#[wasm_bindgen_test]
async fn the_page_transport_drives_a_totals_session_to_ready_and_exact_totals() -> TestResult {
    let mut page = Page::start(Some(r#"{"totalsFlushMs": 20}"#))?;
    page.next_of("ready").await?;
    page.post(&js(r#"{"type":"session","op":"start"}"#))?;
    let connect = page.next_of("connect").await?;
    ensure!(get(&connect, "url").is_null(), "connect.url: {}", show(&connect));
    page.post(&js(r#"{"type":"socket","event":"open"}"#))?;
    let t = now();
    let hello = format!(
        r#"{{"op":"HELLO","heartbeat_interval_ms":60000,"session_id":"s-1","server_time_ms":{t}}}"#
    );
    page.post(&socket_message(&hello.into()))?;
    let identify = page
        .until("IDENTIFY", |m| {
            type_of(m) == "send"
                && get(m, "data").as_string().is_some_and(|d| d.contains("IDENTIFY"))
        })
        .await?;
    ensure!(text(&identify, "data")?.contains("totals"), "{}", show(&identify));
    page.post(&socket_message(&r#"{"op":"READY","session_id":"s-1"}"#.into()))?;
    let ready = page.until("ready", |m| get(m, "state").as_string().as_deref() == Some("ready"));
    ready.await?;
    let asked = |m: &JsValue| type_of(m) == "fetch" && get(m, "requestId").as_f64().is_some();
    let fetch = match page.seen.iter().find(|m| asked(m)) {
        Some(f) => f.clone(),
        None => page.until("a snapshot fetch", asked).await?,
    };
    ensure_eq!(text(&fetch, "path")?, "/snapshot-v2?channel=totals&meters=1");

    let hour_ms = 3_600_000.0;
    let base = if t % hour_ms < 5_000.0 { t - t % hour_ms - 5_000.0 } else { t - 2_000.0 };
    let bucket = base - base % hour_ms;
    let current = t - t % hour_ms;
    let body = format!(
        r#"{{"type":"catchup","channel":"totals","epoch":5,"snapshot_seq":10,"asOf":{{"wallMs":{base},"counter":0}},"serverTime":{t},"from":{},"to":{current},"buckets":[{{"resource":"water","hour":{bucket},"total":"100.000"}}]}}"#,
        current - 6.0 * hour_ms
    );
    let fetched = js(r#"{"type":"fetched","ok":true,"status":200}"#);
    Reflect::set(&fetched, &"requestId".into(), &get(&fetch, "requestId"))?;
    Reflect::set(&fetched, &"data".into(), &body.into())?;
    Reflect::set(&fetched, &"sentAt".into(), &(t - 5.0).into())?;
    Reflect::set(&fetched, &"receivedAt".into(), &t.into())?;
    page.post(&fetched)?;
    let frame = totals_frame(5, 11, base + 100.0, 1, 2_500);
    ensure!(!frame.is_empty(), "the test frame did not encode");
    let buf = Uint8Array::from(frame.as_slice()).buffer();
    page.post_transfer(&socket_message(&buf), &buf)?;
    let water_total = |m: &JsValue| {
        let water = Reflect::get(&get(m, "resources"), &0.into()).unwrap_or_default();
        let buckets: Array = get(&water, "buckets").unchecked_into();
        buckets.iter().find(|b| num_or_nan(b, "hour") == bucket).map(|b| num_or_nan(&b, "total"))
    };
    let counted = |m: &JsValue| {
        type_of(m) == "totals" && num_or_nan(&get(m, "counters"), "liveCounted") >= 1.0
    };
    let totals = page.until("totals with the live frame", counted).await?;
    // The snapshot's 100.000 plus the frame's 2.500, in 0.001 m3.
    ensure_eq!(water_total(&totals), Some(102_500.0), "{}", show(&totals));
    ensure_eq!(get(&totals, "incomplete").as_bool(), Some(false), "{}", show(&totals));
    ensure_eq!(num(&get(&totals, "asOf"), "wallMs")?, base);
    // The delta's wait for that totals message was timed.
    page.post(&js(r#"{"type":"query","query":"stats"}"#))?;
    let stats = page.until("stats with a delivery latency", |m| type_of(m) == "stats").await?;
    let latency = get(&stats, "deliveryLatencyMs");
    ensure_eq!(num(&latency, "samples")?, 1.0, "{}", show(&stats));
    ensure!(
        num(&latency, "p50")? >= 0.0 && num(&latency, "max")? >= num(&latency, "p50")?,
        "{}",
        show(&latency)
    );
    let apply = get(&stats, "deltaApplyMs");
    ensure_eq!(num(&apply, "samples")?, 1.0, "{}", show(&stats));
    ensure!(num(&apply, "p99")? >= 0.0, "{}", show(&apply));
    page.saw_no_error()
}

/// The worker transport executes the requests itself: nothing of `connect`,
/// `send`, `close` or `fetch` reaches the page. A feed that cannot be reached
/// (a closed loopback port) becomes a socket close with code 1006 in the
/// session's `connection` status (and failed fetches), never an exception: the
/// worker keeps answering.
#[wasm_bindgen_test]
async fn the_worker_transport_reports_an_unreachable_feed_as_a_1006_close() -> TestResult {
    let config = r#"{"transport":"worker","feedUrl":"http://127.0.0.1:47","backoffBaseMs":50,"backoffCapMs":100}"#;
    let mut page = Page::start(Some(config))?;
    page.next_of("ready").await?;
    page.post(&js(r#"{"type":"session","op":"start"}"#))?;
    let closed =
        |m: &JsValue| type_of(m) == "connection" && num_or_nan(m, "lastCloseCode") == 1006.0;
    let status = page.until("a connection status after a 1006 close", closed).await?;
    ensure!(num(&status, "attempt")? >= 1.0, "{}", show(&status));
    // It keeps trying: a second failed attempt.
    let again = |m: &JsValue| {
        type_of(m) == "connection"
            && num_or_nan(m, "lastCloseCode") == 1006.0
            && num_or_nan(m, "attempt") >= 2.0
    };
    page.until("a second attempt", again).await?;
    page.post(&js(r#"{"type":"session","op":"stop"}"#))?;
    page.post(&js(r#"{"type":"query","query":"stats"}"#))?;
    page.next_of("stats").await?;
    let posted: Vec<String> = page
        .seen
        .iter()
        .map(type_of)
        .filter(|t| matches!(t.as_str(), "connect" | "send" | "close" | "fetch"))
        .collect();
    ensure!(posted.is_empty(), "the worker transport posted requests: {posted:?}");
    page.saw_no_error()
}

/// A switch from the page transport to the worker transport mid-session: the
/// worker has no socket for the session's next message (a heartbeat), so it
/// reports the connection closed, and the session reconnects through the worker
/// (here to an unreachable feed: 1006 again), instead of sending into nothing.
#[wasm_bindgen_test]
async fn a_switch_to_the_worker_transport_mid_session_reconnects_through_it() -> TestResult {
    let mut page = Page::start(Some(r#"{"backoffBaseMs":50,"backoffCapMs":100}"#))?;
    page.next_of("ready").await?;
    page.post(&js(r#"{"type":"session","op":"start"}"#))?;
    page.next_of("connect").await?;
    page.post(&js(r#"{"type":"socket","event":"open"}"#))?;
    let hello = format!(
        r#"{{"op":"HELLO","heartbeat_interval_ms":200,"session_id":"s-2","server_time_ms":{}}}"#,
        now()
    );
    page.post(&socket_message(&hello.into()))?;
    page.until("IDENTIFY", |m| type_of(m) == "send").await?;
    page.post(&socket_message(&r#"{"op":"READY","session_id":"s-2"}"#.into()))?;
    page.until("ready", |m| get(m, "state").as_string().as_deref() == Some("ready")).await?;
    page.post(&js(
        r#"{"type":"config","config":{"transport":"worker","feedUrl":"http://127.0.0.1:47"}}"#,
    ))?;
    let noticed = |m: &JsValue| {
        type_of(m) == "connection"
            && get(m, "reason").as_string().is_some_and(|r| r.contains("no open socket"))
    };
    let status = page.until("the missing socket reported", noticed).await?;
    ensure_eq!(num(&status, "lastCloseCode")?, 1006.0, "{}", show(&status));
    let retried = |m: &JsValue| {
        type_of(m) == "connection"
            && num_or_nan(m, "attempt") >= 2.0
            && num_or_nan(m, "lastCloseCode") == 1006.0
    };
    page.until("a reconnect through the worker transport", retried).await?;
    let first_switch = page.seen.iter().position(noticed).unwrap_or(0);
    let posted_after: Vec<String> = page.seen[first_switch..]
        .iter()
        .map(type_of)
        .filter(|t| matches!(t.as_str(), "connect" | "send"))
        .collect();
    ensure!(
        posted_after.is_empty(),
        "requests reached the page after the switch: {posted_after:?}"
    );
    page.saw_no_error()
}

// ---- MeterflowEngine, used directly ------------------------------------------

fn calls(out: WorkerMessages) -> Array {
    out.unchecked_into()
}

#[wasm_bindgen_test]
fn a_bad_config_throws_a_range_error_with_a_code() -> TestResult {
    for config in [r#"{"window": 3}"#, r#"{"maxMeters": 0}"#, r#"{"window": "big"}"#] {
        let err = match MeterflowEngine::new(Some(js(config).unchecked_into())) {
            Ok(_) => return Err(format!("config {config} was accepted").into()),
            Err(e) => e,
        };
        ensure!(err.is_instance_of::<js_sys::RangeError>(), "{config}: not a RangeError: {err:?}");
        let code = text(&err, "code")?;
        ensure!(["bad_config", "bad_field"].contains(&code.as_str()), "{config}: code {code}");
    }
    MeterflowEngine::new(None)?;
    MeterflowEngine::new(Some(js(r#"{"maxMeters": 20000}"#).unchecked_into()))?;
    Ok(())
}

#[wasm_bindgen_test]
fn the_engine_class_handles_ticks_flushes_and_bad_times() -> TestResult {
    let mut engine = MeterflowEngine::new(None)?;
    let out = calls(engine.handle(json_readings("e", &[5.0, 6.0, 7.0]).unchecked_ref(), now()));
    ensure_eq!(out.length(), 0, "{}", show(&out));

    let out = calls(engine.tick(now()));
    let stats = out.iter().find(|m| type_of(m) == "stats");
    let Some(stats) = stats else { return Err("the first tick reports no stats".into()) };
    ensure_eq!((num(&stats, "meters")?, num(&stats, "evaluations")?), (1.0, 1.0));
    calls(engine.flush(now()));

    let query = js(r#"{"type":"query","query":"window","meter":"e"}"#);
    let out = calls(engine.handle(query.unchecked_ref(), now()));
    let values: Float64Array = get(&out.get(0), "values").dyn_into()?;
    ensure_eq!(values.to_vec(), vec![5.0, 6.0, 7.0]);

    let query = js(r#"{"type":"query","query":"stats"}"#);
    let out = calls(engine.handle(query.unchecked_ref(), f64::NAN));
    ensure_eq!(out.length(), 1);
    ensure_eq!(text(&out.get(0), "code")?, "bad_field");

    // Called directly (no structured clone), a control message may carry a
    // toJSON that makes JSON.stringify return `undefined`: an error, no throw.
    let no_json = js(r#"{"type":"query","query":"stats"}"#);
    Reflect::set(&no_json, &"toJSON".into(), &Function::new_no_args("return undefined"))?;
    let out = calls(engine.handle(no_json.unchecked_ref(), now()));
    ensure_eq!(out.length(), 1, "{}", show(&out));
    ensure_eq!(text(&out.get(0), "code")?, "bad_field");

    let memory = engine.linear_memory_bytes();
    ensure!(memory > 0.0 && memory % 65_536.0 == 0.0, "linearMemoryBytes {memory}");
    Ok(())
}

/// `buffer` detached the way a page detaches one, by transferring it away.
fn detach(buffer: &JsValue) -> TestResult {
    let structured_clone: Function =
        Reflect::get(&js_sys::global(), &"structuredClone".into())?.dyn_into()?;
    let options = js_sys::Object::new();
    Reflect::set(&options, &"transfer".into(), &Array::of1(buffer))?;
    structured_clone.call2(&JsValue::UNDEFINED, buffer, &options)?;
    ensure_eq!(num(buffer, "byteLength")?, 0.0, "the buffer was not detached");
    Ok(())
}

#[wasm_bindgen_test]
fn detached_empty_and_shared_buffers_are_error_events_not_exceptions() -> TestResult {
    let mut engine = MeterflowEngine::new(None)?;
    let t = now();
    let bytes = frame(&[(0, "a")], &[0], t, &[1.0]);
    let detached_buffer: JsValue = Uint8Array::from(&bytes[..]).buffer().into();
    let view_of_detached = Uint8Array::from(&bytes[..]);
    let data_view_of_detached: JsValue =
        js_sys::DataView::new(&view_of_detached.buffer(), 8, 8).into();
    detach(&detached_buffer)?;
    detach(&view_of_detached.buffer().into())?;
    let mut cases: Vec<(&str, JsValue, &str)> = vec![
        ("a detached ArrayBuffer", detached_buffer, "bad_frame"),
        ("a Uint8Array of a detached buffer", view_of_detached.into(), "bad_frame"),
        ("a DataView of a detached buffer", data_view_of_detached, "bad_frame"),
        ("an empty ArrayBuffer", js_sys::ArrayBuffer::new(0).into(), "truncated_frame"),
        ("an empty Uint8Array", Uint8Array::new_with_length(0).into(), "truncated_frame"),
        ("an object", js(r#"{"byteLength": 8, "buffer": {}}"#), "bad_field"),
        ("a number array", js("[77, 70, 76, 87]"), "bad_field"),
    ];
    // Only a cross-origin isolated scope has SharedArrayBuffer.
    if let Ok(ctor) = Reflect::get(&js_sys::global(), &"SharedArrayBuffer".into()) {
        if let Ok(ctor) = ctor.dyn_into::<Function>() {
            let shared = Reflect::construct(&ctor, &Array::of1(&JsValue::from(16)))?;
            let view: JsValue = Uint8Array::new(&shared).into();
            cases.push(("a SharedArrayBuffer", shared, "bad_field"));
            cases.push(("a view of a SharedArrayBuffer", view, "bad_field"));
        }
    }
    for (what, data, code) in &cases {
        let out = calls(engine.handle(readings_message(data).unchecked_ref(), t));
        ensure_eq!(out.length(), 1, "{what}: {}", show(&out));
        let e = out.get(0);
        ensure_eq!(text(&e, "type")?, "error", "{what}: {}", show(&e));
        ensure_eq!(text(&e, "code")?, *code, "{what}: {}", show(&e));
        if *code == "bad_frame" {
            ensure!(text(&e, "message")?.contains("detached"), "{what}: {}", show(&e));
        }
    }
    // The engine is intact and takes the next frame.
    let fresh: JsValue = Uint8Array::from(&bytes[..]).buffer().into();
    let out = calls(engine.handle(readings_message(&fresh).unchecked_ref(), t));
    ensure_eq!(out.length(), 0, "{}", show(&out));
    let query = js(r#"{"type":"query","query":"meter","meter":"a"}"#);
    let out = calls(engine.handle(query.unchecked_ref(), t));
    ensure_eq!(num(&out.get(0), "count")?, 1.0, "{}", show(&out));
    Ok(())
}

/// The `MeterflowConfig` field names in the shipped TypeScript types.
fn typescript_config_fields() -> Vec<String> {
    let ts = include_str!("../src/wasm/protocol.d.ts");
    let body = ts.split("export interface MeterflowConfig {").nth(1).unwrap_or("");
    let body = body.split('}').next().unwrap_or("");
    // Drop `/** ... */` comments between the fields.
    let mut fields = String::new();
    let mut rest = body;
    while let Some((before, after)) = rest.split_once("/*") {
        fields.push_str(before);
        rest = after.split_once("*/").map_or("", |(_, tail)| tail);
    }
    fields.push_str(rest);
    fields
        .split(';')
        .filter_map(|item| item.trim().split_once("?:").map(|(name, _)| name.trim().to_string()))
        .filter(|name| !name.is_empty())
        .collect()
}

#[wasm_bindgen_test]
fn every_typescript_config_field_is_one_the_decoder_knows() -> TestResult {
    let fields = typescript_config_fields();
    ensure!(fields.len() >= 40, "parsed only {} MeterflowConfig fields: {fields:?}", fields.len());
    let refusal = |field: &str| -> Result<String, JsValue> {
        let config = js_sys::Object::new();
        // An object: no field takes one (a string would be a valid `feedUrl`).
        Reflect::set(&config, &field.into(), &js_sys::Object::new())?;
        match MeterflowEngine::new(Some(config.unchecked_into())) {
            Ok(_) => Err(format!("config.{field} = {{}} was accepted").into()),
            Err(e) => Ok(text(&e, "message")?),
        }
    };
    // The check can fail: a name the decoder does not know is refused as unknown.
    ensure!(refusal("noSuchField")?.contains("unknown field"), "unknown fields are not named");
    for field in &fields {
        let message = refusal(field)?;
        ensure!(!message.contains("unknown field"), "TypeScript lists {field}: {message}");
    }
    Ok(())
}
