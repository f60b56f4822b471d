#![cfg(not(target_arch = "wasm32"))]
//! Clock samples that lie by being old, through the user's path: page
//! messages (JSON) → `wire::decode_message` → `Engine::handle` →
//! `wire::encode` → JSON (docs/LEDGER.md, "Clocks").
//!
//! A REST result answered from an old copy carries the `serverTime` of when
//! the copy was made: as a clock sample it says the server's clock is behind
//! by the copy's age. Such a sample must never leave honest later results
//! refused as `clock_ahead`; a real step of the worker's clock, forward or
//! back, must still be followed; and the totals stay exact whenever they say
//! complete.

use meterflow::core::config::Config;
use meterflow::core::event::{Inbound, Query};
use meterflow::core::ledger::HOUR_MS;
use meterflow::core::Engine;
use meterflow::wire;
use serde_json::{json, Value};

/// 10:30 on an hour boundary day; hour 10 starts at `H10`.
const H10: f64 = 1_764_064_800_000.0;
const NOW: f64 = H10 + 1_800_000.0;
const FROM: f64 = H10 - 6.0 * HOUR_MS;

/// A page driving an engine with JSON messages. `skew` is how far the
/// worker's clock (`Date.now()`) is ahead of the server's.
struct Page {
    engine: Engine,
    skew: f64,
    seq: u64,
    id: u64,
}

impl Page {
    /// Greeted by an honest server at server time `NOW`, and caught up
    /// (one reading of 1 in hour 10 at `asOf` `NOW + 100`).
    fn greeted() -> Page {
        let mut p = Page {
            engine: Engine::new(Config::default()).expect("config"),
            skew: 0.0,
            seq: 0,
            id: 0,
        };
        let hello = json!({"type": "hello", "epoch": 1, "nextSeq": 0,
            "hlc": {"wallMs": NOW, "counter": 0}, "serverTime": NOW});
        let out = p.post_at(NOW, json!({"type": "live", "data": hello.to_string()}));
        p.expect_clean(&out);
        let out = p.catchup(NOW + 200.0, NOW + 100.0, NOW + 150.0, None, 1_000);
        p.expect_clean(&out);
        p
    }

    fn post_at(&mut self, server_ms: f64, msg: Value) -> Vec<Value> {
        let inbound = wire::decode_message(&msg, self.engine.config());
        let outs = self.engine.handle(inbound, server_ms + self.skew);
        outs.iter().map(|o| serde_json::to_value(wire::encode(o)).expect("encodes")).collect()
    }

    /// A catch-up body (water in hour 10 only) received at server time `at`.
    /// `rtt`: the page's measured round trip, if it sent `sentAt`/`receivedAt`.
    fn catchup(
        &mut self,
        at: f64,
        as_of: f64,
        server_time: f64,
        rtt: Option<f64>,
        water: i64,
    ) -> Vec<Value> {
        let body = json!({"type": "catchup", "asOf": {"wallMs": as_of, "counter": 0},
            "serverTime": server_time, "from": FROM, "to": H10,
            "buckets": [{"resource": "water", "hour": H10, "total": format!("{}.{:03}", water / 1000, water % 1000)}]});
        let mut msg = json!({"type": "catchup", "data": body.to_string()});
        if let Some(rtt) = rtt {
            let local = at + self.skew;
            msg["sentAt"] = json!(local - rtt);
            msg["receivedAt"] = json!(local);
        }
        self.post_at(at, msg)
    }

    /// A greeted page that took five live frames at server times
    /// `NOW + 400 ..= NOW + 800` without error: the page, the frames' stamps
    /// and the last frame's time.
    fn five_clean_frames() -> (Page, Vec<f64>, f64) {
        let mut p = Page::greeted();
        let mut stamps = Vec::new();
        let mut t = NOW + 300.0;
        for _ in 0..5 {
            t += 100.0;
            let out = p.frame(t);
            p.expect_clean(&out);
            stamps.push(t - 10.0);
        }
        (p, stamps, t)
    }

    /// A live frame stamped 10 ms before it arrives at server time `at`, with
    /// one reading of 1 water in hour 10.
    fn frame(&mut self, at: f64) -> Vec<Value> {
        let (seq, id) = (self.seq, self.id + 1);
        self.seq += 1;
        self.id += 1;
        let f = json!({"type": "frame", "epoch": 1, "seq": seq,
            "hlc": {"wallMs": at - 10.0, "counter": 0},
            "readings": [{"meter": "a", "resource": "water", "id": id, "ts": H10 + 1.0, "amount": "1"}]});
        self.post_at(at, json!({"type": "live", "data": f.to_string()}))
    }

    fn totals(&mut self, at: f64) -> Value {
        let outs = self.engine.handle(Inbound::Query(Query::Totals), at + self.skew);
        outs.first()
            .map(|o| serde_json::to_value(wire::encode(o)).expect("encodes"))
            .expect("totals")
    }

    fn expect_clean(&self, out: &[Value]) {
        let errors: Vec<&Value> = out.iter().filter(|v| v["type"] == "error").collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}

fn clock_ahead(out: &[Value]) -> usize {
    out.iter().filter(|v| v["type"] == "error" && v["code"] == "clock_ahead").count()
}

/// Water in the current hour, hour 10 (units of 0.001), and whether the totals say `incomplete`.
fn water(t: &Value) -> (i64, bool) {
    let res = t["resources"].as_array().and_then(|r| r.iter().find(|x| x["resource"] == "water"));
    let hour = res.and_then(|r| r["currentHour"].as_i64()).unwrap_or(0);
    (hour, t["incomplete"].as_bool().unwrap_or(true))
}

/// The water a REST result at watermark `as_of` holds: the greeting's
/// reading plus every frame reading stamped at or before it.
fn rest_total(stamps: &[f64], as_of: f64) -> i64 {
    1_000 + 1_000 * stamps.iter().filter(|s| **s <= as_of).count() as i64
}

#[test]
fn an_old_server_time_never_refuses_the_next_honest_result() {
    // The old copy's age when it arrives (ms): just past the untimed
    // sample's full width (the sample overlaps the honest ones), at it, far
    // beyond.
    let mut failed = Vec::new();
    for age in [1_600.0, 1_800.0, 2_000.0, 5_000.0, 600_000.0] {
        // The honest result's round trip (untimed, fast, slow) and whether
        // the server read its clock at the start or the end of it.
        for (rtt, early) in
            [(None, false), (Some(20.0), false), (Some(3_000.0), false), (Some(3_000.0), true)]
        {
            let case = format!("age {age} rtt {rtt:?} early {early}");
            let (mut p, mut stamps, mut t) = Page::five_clean_frames();
            // The old copy: the greeting result again, `age` ms after it was made.
            t = t.max(NOW + 150.0 + age - 100.0) + 100.0;
            let _ = p.catchup(NOW + 150.0 + age, NOW + 100.0, NOW + 150.0, None, 1_000);
            let (shown, _) = water(&p.totals(t));
            assert_eq!(
                shown,
                rest_total(&stamps, f64::MAX),
                "{case}: an old body changes no total"
            );
            // Live frames go on; whatever the clock made of them, the next
            // honest result covers them.
            for _ in 0..3 {
                t += 100.0;
                let _ = p.frame(t);
                stamps.push(t - 10.0);
            }
            t += 4_000.0;
            let server_time = match rtt {
                Some(r) if early => t - r + 10.0,
                _ => t - 10.0,
            };
            let as_of = server_time - 5.0;
            let out = p.catchup(t, as_of, server_time, rtt, rest_total(&stamps, as_of));
            let mut refused = clock_ahead(&out);
            for _ in 0..3 {
                t += 100.0;
                refused += clock_ahead(&p.frame(t));
                stamps.push(t - 10.0);
            }
            let (shown, incomplete) = water(&p.totals(t + 10.0));
            if refused > 0 || incomplete {
                failed.push(format!("{case}: {refused} honest refused, incomplete {incomplete}"));
            } else {
                // Complete, so exact: every reading once.
                assert_eq!(shown, rest_total(&stamps, f64::MAX), "{case}");
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The old copy delivered twice (a duplicated reply) is no more believable
/// than once: the honest result after it is accepted.
#[test]
fn an_old_copy_delivered_twice_is_not_two_samples() {
    let (mut p, mut stamps, _) = Page::five_clean_frames();
    for at in [NOW + 1_950.0, NOW + 1_960.0] {
        let _ = p.catchup(at, NOW + 100.0, NOW + 150.0, None, 1_000);
    }
    let t = NOW + 2_000.0;
    let out = p.catchup(t, t - 20.0, t - 10.0, None, rest_total(&stamps, t - 20.0));
    assert_eq!(clock_ahead(&out), 0, "{out:?}");
    let out = p.frame(t + 100.0);
    assert_eq!(clock_ahead(&out), 0, "{out:?}");
    stamps.push(t + 90.0);
    let (shown, incomplete) = water(&p.totals(t + 110.0));
    assert!(!incomplete);
    assert_eq!(shown, rest_total(&stamps, f64::MAX));
}

/// The worker's clock is set forward or back by `jump` ms at server time
/// `NOW + 1_000`; frames and honest untimed results go on. Returns the
/// offset estimate (server minus worker) at the end, checking on the way
/// that the totals end complete and exact.
fn run_jump(jump: f64) -> f64 {
    let (mut p, mut stamps, _) = Page::five_clean_frames();
    let mut t = NOW + 1_000.0;
    p.skew = jump;
    for k in 0..4 {
        for _ in 0..5 {
            t += 100.0;
            let _ = p.frame(t);
            stamps.push(t - 10.0);
        }
        t += 100.0;
        let out = p.catchup(t, t - 20.0, t - 10.0, None, rest_total(&stamps, t - 20.0));
        if k > 0 {
            assert_eq!(clock_ahead(&out), 0, "jump {jump}, result {k}: {out:?}");
        }
    }
    for _ in 0..3 {
        t += 100.0;
        let out = p.frame(t);
        assert_eq!(clock_ahead(&out), 0, "jump {jump}: {out:?}");
        stamps.push(t - 10.0);
    }
    let (shown, incomplete) = water(&p.totals(t + 10.0));
    assert!(!incomplete, "jump {jump}: still incomplete");
    assert_eq!(shown, rest_total(&stamps, f64::MAX), "jump {jump}");
    let local = t + 10.0 + jump;
    p.engine.ledger().corrected(local) - local
}

#[test]
fn a_worker_clock_set_forward_is_followed() {
    for jump in [60_000.0, 3_000.0, 1_200_000.0] {
        let offset = run_jump(jump);
        assert!((offset + jump).abs() <= 1_000.0, "jump {jump}: offset {offset}");
    }
}

#[test]
fn a_worker_clock_set_back_is_followed() {
    for jump in [-60_000.0, -3_000.0, -3_600_000.0] {
        let offset = run_jump(jump);
        assert!((offset + jump).abs() <= 1_000.0, "jump {jump}: offset {offset}");
    }
}
