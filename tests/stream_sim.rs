#![cfg(not(target_arch = "wasm32"))]
//! The stream v2 session inside the engine, through the user's path: page
//! messages (JSON) → `wire::decode_message` → `Engine::handle` →
//! `wire::encode` → JSON.

use meterflow::core::config::Config;
use meterflow::core::event::Inbound;
use meterflow::core::Engine;
use meterflow::wire;
use serde_json::{json, Value};

/// A page driving an engine with JSON messages, keeping what it was told.
struct Page {
    engine: Engine,
    now: f64,
    told: Vec<Value>,
}

impl Page {
    fn new(cfg: Config, now: f64) -> Page {
        Page { engine: Engine::new(cfg).expect("config"), now, told: Vec::new() }
    }

    fn post(&mut self, msg: Value) -> Vec<Value> {
        let inbound = wire::decode_message(&msg, self.engine.config());
        self.handle(inbound)
    }

    fn handle(&mut self, inbound: Inbound) -> Vec<Value> {
        let outs = self.engine.handle(inbound, self.now);
        let vals: Vec<Value> =
            outs.iter().map(|o| serde_json::to_value(wire::encode(o)).expect("encodes")).collect();
        self.told.extend(vals.iter().cloned());
        vals
    }

    fn socket(&mut self, text: &str) -> Vec<Value> {
        self.post(json!({"type": "socket", "event": "message", "data": text}))
    }
}

fn of_type<'a>(vals: &'a [Value], ty: &str) -> Vec<&'a Value> {
    vals.iter().filter(|v| v["type"] == ty).collect()
}

const T0: f64 = 1_764_064_800_000.0;

fn frame(epoch: u64, seq: u64, wall: u64, meter: &str, id: u64, amount: &str) -> String {
    json!({"type": "frame", "channel": "totals", "epoch": epoch, "seq": seq,
        "hlc": {"wallMs": wall, "counter": 0},
        "readings": [{"meter": meter, "resource": "water", "id": id, "ts": wall, "amount": amount}]})
    .to_string()
}

#[test]
fn totals_channel_end_to_end_through_the_wire() {
    let mut p = Page::new(Config::default(), T0 + 1_000.0);
    let out = p.post(json!({"type": "session", "op": "start"}));
    assert_eq!(of_type(&out, "connect").len(), 1, "{out:?}");
    let snap = of_type(&out, "fetch");
    assert_eq!(snap.len(), 1, "{out:?}");
    assert_eq!(snap[0]["path"], "/snapshot-v2?channel=totals");
    let rid = snap[0]["requestId"].as_u64().expect("id");
    p.post(json!({"type": "socket", "event": "open"}));
    let out = p.socket(r#"{"op":"HELLO","heartbeat_interval_ms":15000,"session_id":"s-1","server_time_ms":1764064801000}"#);
    let sent = of_type(&out, "send");
    assert!(sent[0]["data"].as_str().is_some_and(|d| d.contains("IDENTIFY")), "{out:?}");
    p.socket(r#"{"op":"READY","session_id":"s-1"}"#);
    // Deltas 4 and 5 arrive before the snapshot (at seq 4): 4 is dropped, 5 applies.
    p.socket(&frame(9, 4, 1_764_064_800_400, "m-1", 4, "1.000"));
    p.socket(&frame(9, 5, 1_764_064_800_500, "m-1", 5, "0.250"));
    let body = json!({"type": "catchup", "channel": "totals", "epoch": 9, "snapshot_seq": 4,
        "asOf": {"wallMs": 1_764_064_800_400u64, "counter": 0}, "serverTime": 1_764_064_801_000u64,
        "from": T0, "to": T0,
        "buckets": [{"resource": "water", "hour": T0, "total": "10.000"}]});
    let out = p.post(json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200,
        "data": body.to_string()}));
    assert!(of_type(&out, "error").is_empty(), "{out:?}");
    p.socket(&frame(9, 6, 1_764_064_800_600, "m-2", 1, "0.125"));
    let out = p.post(json!({"type": "query", "query": "totals"}));
    let t = of_type(&out, "totals");
    let water = &t[0]["resources"][0];
    assert_eq!(water["resource"], "water");
    // 10.000 at seq 4, + 0.250 + 0.125: exact, the buffered delta 4 not twice.
    assert_eq!(water["currentHour"], 10_375, "{t:?}");
    assert_eq!(t[0]["counters"]["gaps"], 0, "no spurious hole after the cursor sync");
    assert!(of_type(&p.told, "error").is_empty(), "{:?}", of_type(&p.told, "error"));
}

/// Starts a session on `channels` and answers HELLO/READY; returns the
/// snapshot fetches (`path` → `requestId`).
fn ready(p: &mut Page, channels: &[&str]) -> Vec<(String, u64)> {
    let out = p.post(json!({"type": "session", "op": "start", "channels": channels}));
    p.socket(r#"{"op":"HELLO","heartbeat_interval_ms":15000,"session_id":"s-1","server_time_ms":1764064801000}"#);
    p.socket(r#"{"op":"READY","session_id":"s-1"}"#);
    of_type(&out, "fetch")
        .iter()
        .map(|f| {
            (f["path"].as_str().unwrap_or("").to_string(), f["requestId"].as_u64().unwrap_or(0))
        })
        .collect()
}

fn row(meter: &str, ts: u64, value: f64, count: u64, total: &str) -> Value {
    json!({"meter": meter, "resource": "water", "ts": ts, "value": value, "status": "ok",
        "count": count, "total": total})
}

#[test]
fn meters_channel_coalesces_caps_and_feeds_each_reading_once() {
    let cfg = Config { max_meter_entities: 3, ..Config::default() };
    let mut p = Page::new(cfg, T0 + 1_000.0);
    let fetches = ready(&mut p, &["totals", "meters.north"]);
    let (path, rid) = fetches[1].clone();
    assert_eq!(path, "/snapshot-v2?channel=meters.north");
    let t = 1_764_064_800_000u64;
    let snap = json!({"channel": "meters.north", "epoch": 2, "snapshot_seq": 10,
        "meters": [row("m-1", t, 1.0, 1, "1.0"), row("m-2", t, 2.0, 1, "2.0")]});
    p.post(json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200,
        "data": snap.to_string()}));
    // Two deltas touch m-1 twice before a flush: one upsert (newest) reaches the page.
    for (seq, v) in [(11u64, 5.0), (12, 6.0)] {
        let d = json!({"op": "DELTA", "channel": "meters.north", "epoch": 2, "seq": seq,
            "patch": {"upsert": [row("m-1", t + seq, v, seq, "9.5")], "remove": []}});
        p.socket(&d.to_string());
    }
    // A duplicate of 12 changes nothing; 13 adds two meters, one past the cap of 3.
    let d = json!({"op": "DELTA", "channel": "meters.north", "epoch": 2, "seq": 13,
        "patch": {"upsert": [row("m-3", t, 3.0, 1, "3"), row("m-4", t, 4.0, 1, "4")],
                  "remove": ["m-2"]}});
    p.socket(&d.to_string());
    let errs: Vec<Value> = of_type(&p.told, "error").into_iter().cloned().collect();
    assert_eq!(errs.len(), 0, "{errs:?}");
    let d = json!({"op": "DELTA", "channel": "meters.north", "epoch": 2, "seq": 14,
        "patch": {"upsert": [row("m-4", t, 4.0, 1, "4"), row("m-5", t, 5.0, 1, "5")], "remove": []}});
    let out = p.socket(&d.to_string());
    let errs = of_type(&out, "error");
    assert_eq!(errs.len(), 1, "{out:?}");
    assert_eq!(errs[0]["code"], "entity_limit");
    assert!(errs[0]["message"].as_str().is_some_and(|m| m.contains("meters.north")));
    assert!(p.engine.meter_store().len() <= 3);
    let out = p.post(json!({"type": "query", "query": "stats"}));
    assert!(of_type(&out, "stats")[0]["stream"]["coalescedUpdates"].as_u64() >= Some(1));
    let out = p.handle(Inbound::Flush);
    let m = of_type(&out, "meters");
    assert_eq!(m.len(), 1, "{out:?}");
    let ups = m[0]["upsert"].as_array().cloned().unwrap_or_default();
    let m1: Vec<&Value> = ups.iter().filter(|r| r["meter"] == "m-1").collect();
    assert_eq!(m1.len(), 1, "one row per meter per flush");
    assert_eq!(m1[0]["value"], 6.0, "newest wins");
    assert_eq!(m[0]["remove"], json!(["m-2"]));
    // The same reading through totals after its row: it enters the window once.
    let (_, totals_rid) = fetches[0].clone();
    let body = json!({"type": "catchup", "channel": "totals", "epoch": 9, "snapshot_seq": 0,
        "asOf": {"wallMs": t, "counter": 0}, "from": T0, "to": T0, "buckets": []});
    let out = p.post(json!({"type": "fetched", "requestId": totals_rid, "ok": true, "status": 200,
        "data": body.to_string()}));
    assert!(of_type(&out, "error").is_empty(), "{out:?}");
    let n =
        |p: &Page| p.engine.windows().moments(p.engine.meter_index("m-1").unwrap_or(0) as usize).n;
    let before = n(&p);
    p.socket(&frame(9, 1, t + 12, "m-1", 100, "0.5"));
    assert_eq!(n(&p), before, "a (meter, ts) carried by both channels enters once");
    p.socket(&frame(9, 2, t + 20, "m-1", 101, "0.5"));
    assert_eq!(n(&p), before + 1.0, "a newer live reading enters");
}

#[test]
fn detail_is_cached_and_the_selected_meter_stays() {
    let cfg = Config { detail_cache_size: 1, ..Config::default() };
    let mut p = Page::new(cfg, T0);
    ready(&mut p, &["totals"]);
    let fetch = |p: &mut Page, meter: &str| {
        let out = p.post(json!({"type": "session", "op": "detail", "meter": meter}));
        let f = of_type(&out, "fetch");
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(f[0]["path"], format!("/meters/{meter}"));
        let rid = f[0]["requestId"].as_u64().unwrap_or(0);
        let body = json!({"meter": meter, "total": "1.5"}).to_string();
        let out = p.post(
            json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200, "data": body}),
        );
        let d = of_type(&out, "detail");
        assert_eq!(d[0]["cached"], false);
        assert_eq!(d[0]["detail"]["total"], "1.5");
    };
    fetch(&mut p, "m-1");
    let out = p.post(json!({"type": "session", "op": "detail", "meter": "m-1"}));
    assert!(of_type(&out, "fetch").is_empty());
    assert_eq!(of_type(&out, "detail")[0]["cached"], true);
    // m-2 is selected now; m-1 goes (cap 1), m-2 stays even past its TTL's neighbours.
    fetch(&mut p, "m-2");
    assert_eq!(p.engine.detail_cache().len(), 1);
    assert_eq!(p.engine.detail_cache().selected(), Some("m-2"));
    p.now += 60_000.0;
    let out = p.post(json!({"type": "session", "op": "detail", "meter": "m-2"}));
    assert_eq!(of_type(&out, "fetch").len(), 1, "expired: fetched again");
}
