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
