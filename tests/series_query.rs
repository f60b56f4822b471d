#![cfg(not(target_arch = "wasm32"))]
//! `query` answers through the page's path (JSON message → `decode_message`
//! → engine → `wire::encode` → JSON): an `id` on the query comes back on the
//! answer, whatever was asked and even when the query is refused; without an
//! `id` the answer has none, and the periodic `stats` never has one.

use meterflow::core::config::Config;
use meterflow::core::event::Inbound;
use meterflow::core::Engine;
use meterflow::wire::{decode_message, encode};
use serde_json::{json, Value};

const T: f64 = 1_764_064_800_000.0 + 600_000.0;

/// Every message `msg` produces, as the JSON the page would see.
fn ask(e: &mut Engine, cfg: &Config, msg: Value, now: f64) -> Vec<Value> {
    e.handle(decode_message(&msg, cfg), now)
        .iter()
        .map(|o| serde_json::to_value(encode(o)).unwrap_or(Value::Null))
        .collect()
}

fn engine_with_meter(cfg: &Config) -> Engine {
    let mut e = Engine::new(cfg.clone()).unwrap_or_default();
    let readings = json!({"type": "readings", "data": {"readings": [
        {"meter": "m1", "ts": T - 1000.0, "value": 1.5}
    ]}});
    ask(&mut e, cfg, readings, T);
    e
}

#[test]
fn every_query_answer_carries_its_id() {
    let cfg = Config::default();
    let mut e = engine_with_meter(&cfg);
    for (n, (query, ty)) in
        [("stats", "stats"), ("totals", "totals"), ("window", "window"), ("meter", "meter")]
            .into_iter()
            .enumerate()
    {
        let id = 40.0 + n as f64;
        let out = ask(&mut e, &cfg, json!({"type":"query","query":query,"meter":"m1","id":id}), T);
        assert_eq!(out.len(), 1, "{query}: one answer, got {out:?}");
        assert_eq!(out[0]["type"], ty, "{query}");
        assert_eq!(out[0]["id"], json!(id), "{query}: {:?}", out[0]);
        // Without an id, the same answer carries none.
        let out = ask(&mut e, &cfg, json!({"type":"query","query":query,"meter":"m1"}), T);
        assert_eq!(out[0]["type"], ty);
        assert!(out[0].get("id").is_none(), "{query}: {:?}", out[0]);
    }
}

#[test]
fn refused_queries_answer_with_their_id() {
    let cfg = Config::default();
    let mut e = engine_with_meter(&cfg);
    let out = ask(&mut e, &cfg, json!({"type":"query","query":"meter","meter":"nope","id":7}), T);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0]["type"].clone(), out[0]["code"].clone()),
        (json!("error"), json!("unknown_meter"))
    );
    assert_eq!(out[0]["id"], json!(7.0));
    let out = ask(&mut e, &cfg, json!({"type":"query","query":"bogus","id":8}), T);
    assert_eq!((out[0]["code"].clone(), out[0]["id"].clone()), (json!("bad_field"), json!(8.0)));
    // An id that is not a finite number is itself refused (and so has no id to carry).
    let out = ask(&mut e, &cfg, json!({"type":"query","query":"stats","id":"x"}), T);
    assert_eq!(out[0]["code"], json!("bad_field"));
    assert!(out[0].get("id").is_none());
}

#[test]
fn periodic_stats_have_no_id() {
    let cfg = Config::default();
    let mut e = engine_with_meter(&cfg);
    let mut stats = 0;
    for k in 1..=5 {
        let now = T + k as f64 * cfg.stats_interval_ms;
        for o in e.handle(Inbound::Tick(Default::default()), now) {
            let v = serde_json::to_value(encode(&o)).unwrap_or(Value::Null);
            if v["type"] == "stats" {
                stats += 1;
                assert!(v.get("id").is_none(), "{v:?}");
            }
        }
    }
    assert!(stats > 0, "ticks past statsIntervalMs post stats");
}
