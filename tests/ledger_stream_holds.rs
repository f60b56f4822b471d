#![cfg(not(target_arch = "wasm32"))]
//! Minimal scenarios `tests/ledger_adversary.rs` found in the stream v2
//! `totals` channel, through the page's path (page JSON → `decode_message`
//! → `Engine::handle` → `encode`): totals that said complete while the
//! worker lacked readings it had been sent.

use meterflow::core::config::Config;
use meterflow::core::Engine;
use meterflow::wire::{decode_message, encode};
use serde_json::{json, Value};

const HOUR: u64 = 3_600_000;
/// 2025-11-25 10:00 UTC.
const H: u64 = 1_764_064_800_000;

struct Page {
    engine: Engine,
    now: u64,
    /// Snapshot requests not answered yet: `(request id, path)`.
    asks: Vec<(u64, String)>,
}

impl Page {
    fn new(now: u64) -> Page {
        Page { engine: Engine::new(Config::default()).expect("config"), now, asks: Vec::new() }
    }

    fn post(&mut self, msg: Value) -> Vec<Value> {
        let input = decode_message(&msg, self.engine.config());
        let outs: Vec<Value> = self
            .engine
            .handle(input, self.now as f64)
            .iter()
            .map(|o| serde_json::to_value(encode(o)).expect("json"))
            .collect();
        for v in &outs {
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == "fetch" {
                if let Some(rid) = v["requestId"].as_u64() {
                    self.asks.push((rid, v["path"].as_str().unwrap_or("").to_string()));
                }
            }
        }
        outs
    }

    fn socket(&mut self, op: Value) -> Vec<Value> {
        self.post(json!({"type": "socket", "event": "message", "data": op.to_string()}))
    }

    /// Session started on `totals`, socket open, HELLO, READY.
    fn ready(&mut self) {
        self.post(json!({"type": "session", "op": "start", "channels": ["totals"]}));
        self.post(json!({"type": "socket", "event": "open"}));
        self.socket(json!({"op": "HELLO", "heartbeat_interval_ms": 600_000,
            "session_id": "s-1", "server_time_ms": self.now}));
        self.socket(json!({"op": "READY", "session_id": "s-1"}));
    }

    /// Answers the oldest snapshot request with a `totals` catch-up at `as_of`.
    fn answer(&mut self, seq: u64, as_of: u64, from: u64, buckets: Value) {
        let (rid, path) = self.asks.remove(0);
        assert!(path.starts_with("/snapshot-v2?channel=totals"), "{path}");
        let mut body = json!({"type": "catchup", "channel": "totals", "epoch": 1,
            "snapshot_seq": seq, "asOf": {"wallMs": as_of, "counter": 0},
            "serverTime": self.now, "from": from, "to": as_of / HOUR * HOUR, "buckets": buckets});
        if let Some(n) = path.split("since_seq=").nth(1) {
            body["since_seq"] =
                json!(n.split('&').next().unwrap_or("").parse::<u64>().unwrap_or(0));
        }
        self.post(json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200,
            "data": body.to_string(), "receivedAt": self.now}));
    }

    /// A `totals` frame of one water reading.
    fn frame(&mut self, seq: u64, stamp: u64, id: u64, ts: u64, amount: &str) {
        self.socket(json!({"type": "frame", "channel": "totals", "epoch": 1, "seq": seq,
            "hlc": {"wallMs": stamp, "counter": 0},
            "readings": [{"meter": "m-1", "resource": "water", "id": id, "ts": ts, "amount": amount}]}));
    }

    /// `(incomplete, water total of hour h)`.
    fn totals(&mut self, h: u64) -> (bool, i64) {
        let outs = self.post(json!({"type": "query", "query": "totals"}));
        let t = outs.iter().find(|v| v["type"] == "totals").expect("totals");
        let water = &t["resources"][0];
        assert_eq!(water["resource"], "water");
        let b =
            water["buckets"].as_array().expect("buckets").iter().find(|b| b["hour"] == h as f64);
        (
            t["incomplete"].as_bool().expect("incomplete"),
            b.map_or(0, |b| b["total"].as_i64().unwrap_or(-1)),
        )
    }
}

/// Frame 3 arrives, frame 2 never did: the session buffers 3 and fetches a
/// mini-snapshot. Until it is answered the worker holds a reading it has not
/// counted and knows of a frame it lacks, so the totals must say
/// `incomplete` (they said complete: the session's gap was not the ledger's).
#[test]
fn totals_are_incomplete_while_the_session_holds_a_gap() {
    let mut p = Page::new(H + 600_000);
    p.ready();
    p.answer(1, H + 500_000, H - 6 * HOUR, json!([]));
    p.now = H + 700_000;
    p.frame(3, H + 620_000, 3, H + 610_000, "2");
    assert_eq!(p.asks.len(), 1, "the gap is fetched");
    assert_eq!(p.totals(H), (true, 0), "frame 3 held, frame 2 missing: complete would be wrong");
    // The mini-snapshot from seq 1: frame 3 follows it and is counted live.
    p.answer(2, H + 615_000, H, json!([{"resource": "water", "hour": H, "total": "1"}]));
    assert_eq!(p.totals(H), (false, 3_000), "frame 2 in the snapshot, frame 3 live");
}
/// A partial REST result newer than the session's next snapshot leaves an
/// older hour's REST part behind. The snapshot, stale by its `asOf`, is
/// discarded, but the session still treats the frames up to its
/// `snapshot_seq` as covered: frame 2's reading (an hour-old `ts`) was then
/// in neither part while the totals said complete.
#[test]
fn a_stale_snapshot_over_a_partial_result_leaves_the_totals_incomplete() {
    let mut p = Page::new(H + 600_000);
    p.ready();
    p.answer(1, H + 500_000, H - 6 * HOUR, json!([]));
    // A REST result at a newer watermark, listing only the current hour.
    let rest = json!({"type": "catchup", "asOf": {"wallMs": H + 640_000, "counter": 0},
        "serverTime": H + 650_000, "from": H, "to": H,
        "buckets": [{"resource": "water", "hour": H, "total": "1"}]});
    p.now = H + 650_000;
    p.post(json!({"type": "catchup", "data": rest.to_string(), "receivedAt": p.now}));
    assert_eq!(p.totals(H - HOUR), (false, 0));
    // Frame 3 shows frame 2 missing; frame 2 (stamp H + 520 s) carried a
    // reading of the hour before.
    p.frame(3, H + 630_000, 5, H + 629_000, "1");
    let earlier = json!([{"resource": "water", "hour": H - HOUR, "total": "4"},
        {"resource": "water", "hour": H, "total": "1"}]);
    p.answer(3, H + 630_000, H - HOUR, earlier);
    let (incomplete, total) = p.totals(H - HOUR);
    assert!(incomplete || total == 4_000, "hour H-1 shows {total} and says complete");
}
