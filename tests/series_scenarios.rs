#![cfg(not(target_arch = "wasm32"))]
//! Series, one scenario per rule, every message through the wire (JSON page
//! messages → `decode_message` → engine → `wire::encode` → JSON): a large
//! group is summed in chunks over ticks (`computing` with `retryAfterMs`, then
//! the answer with the query's `id`), at most `maxConcurrentQueries` at once;
//! an answer is returned from the cache while its source has not moved and
//! recomputed once it has; subscriptions push on the flush only when their
//! source moved; every bound is a named error.

use meterflow::core::config::Config;
use meterflow::core::event::{Inbound, Outbound, StreamRequest};
use meterflow::core::Engine;
use meterflow::wire::{
    decode_fetched, decode_message, decode_text, encode, Arrival, Envelope, FetchedBody,
};
use serde_json::{json, Value};

const T: f64 = 1_764_064_800_000.0 + 600_000.0;

struct Page {
    cfg: Config,
    e: Engine,
    now: f64,
    seq: u64,
    id: u64,
}

impl Page {
    /// An engine with a session in use, a hello, and a map: group "big" of
    /// meters m-0..m-(n-1), group "odd" of the odd ones.
    fn new(cfg: Config, n: usize) -> Page {
        let mut e = Engine::new(cfg.clone()).unwrap_or_default();
        e.handle(decode_message(&json!({"type":"session","v":1,"op":"start"}), &cfg), T);
        let mut p = Page { cfg, e, now: T, seq: 0, id: 0 };
        let hello = format!(r#"{{"type":"hello","epoch":1,"nextSeq":0,"serverTime":{T}}}"#);
        p.live(&hello);
        let out = p.e.handle(Inbound::Tick(Default::default()), p.now);
        let req = out.iter().find_map(|o| match o {
            Outbound::Stream(StreamRequest::Fetch { request_id, path }) if path == "/groups" => {
                Some(*request_id)
            }
            _ => None,
        });
        let all: Vec<String> = (0..n).map(|m| format!("\"m-{m}\"")).collect();
        let odd: Vec<String> = (1..n).step_by(2).map(|m| format!("\"m-{m}\"")).collect();
        let map = format!(
            r#"{{"version":1,"groups":{{"big":[{}],"odd":[{}]}}}}"#,
            all.join(","),
            odd.join(",")
        );
        let input =
            decode_fetched(req.unwrap_or(0), FetchedBody::Text(&map), Arrival::default(), &p.cfg);
        p.e.handle(input, p.now);
        p
    }

    fn live(&mut self, text: &str) -> Vec<Value> {
        let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(self.now) };
        let input = decode_text(Envelope::Live, text, arrival, &self.cfg);
        let out = self.e.handle(input, self.now);
        out.iter().filter_map(|o| serde_json::to_value(encode(o)).ok()).collect()
    }

    /// One frame: a reading of `units` thousandths for each meter, at `now - 1 s`.
    /// Returns the `series_limit` errors it raised (no other error may come).
    fn frame(&mut self, meters: std::ops::Range<usize>, units: u64) -> Vec<Value> {
        self.now += 10.0;
        let items: Vec<String> = meters
            .map(|m| {
                self.id += 1;
                format!(
                    r#"{{"meter":"m-{m}","resource":"energy","id":{},"ts":{},"amount":"{}.{:03}"}}"#,
                    self.id,
                    self.now - 1000.0,
                    units / 1000,
                    units % 1000
                )
            })
            .collect();
        let text = format!(
            r#"{{"type":"frame","epoch":1,"seq":{},"hlc":{{"wallMs":{},"counter":0}},"readings":[{}]}}"#,
            self.seq,
            self.now,
            items.join(",")
        );
        self.seq += 1;
        let out = self.live(&text);
        let errors: Vec<Value> = out.into_iter().filter(|o| o["type"] == "error").collect();
        assert!(errors.iter().all(|e| e["code"] == "series_limit"), "{errors:?}");
        errors
    }

    fn send(&mut self, msg: Value) -> Vec<Value> {
        let out = self.e.handle(decode_message(&msg, &self.cfg), self.now);
        out.iter().filter_map(|o| serde_json::to_value(encode(o)).ok()).collect()
    }

    fn input(&mut self, input: Inbound) -> Vec<Value> {
        self.now += 1.0;
        let out = self.e.handle(input, self.now);
        out.iter().filter_map(|o| serde_json::to_value(encode(o)).ok()).collect()
    }

    fn stats(&mut self) -> Value {
        let out = self.send(json!({"type":"query","query":"stats"}));
        out.into_iter().find(|o| o["type"] == "stats").unwrap_or(Value::Null)["series"].clone()
    }
}

fn series(out: &[Value]) -> Vec<&Value> {
    out.iter().filter(|o| o["type"] == "series").collect()
}

fn total(ev: &Value) -> f64 {
    ev["sum"].as_array().into_iter().flatten().filter_map(Value::as_f64).sum()
}

#[test]
fn a_large_group_is_summed_over_ticks_then_cached_until_its_source_moves() {
    let cfg = Config { series_chunk_meters: 100, ..Config::default() };
    let mut p = Page::new(cfg, 250);
    p.frame(0..250, 2_000);
    let q = json!({"type":"query","query":"series","group":"big","resource":"energy","spanMs":21_600_000,"id":5});
    let out = p.send(q.clone());
    let s = series(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!((s[0]["state"].clone(), s[0]["id"].clone()), (json!("computing"), json!(5.0)));
    // Three chunks of 100 meters at one tick each: retry after about 3 ticks.
    assert_eq!(s[0]["retryAfterMs"], json!(3.0 * p.cfg.tick_ms));
    assert_eq!(p.stats()["queueDepth"], json!(1));
    let mut answer = None;
    for k in 0..3 {
        let out = p.input(Inbound::Tick(Default::default()));
        let s = series(&out);
        if k < 2 {
            assert!(s.is_empty(), "answered after {} chunks: {s:?}", k + 1);
        } else {
            answer = s.first().map(|v| (*v).clone());
        }
    }
    let a = answer.expect("the answer after the third chunk");
    assert_eq!((a["id"].clone(), a["cached"].clone()), (json!(5.0), json!(false)));
    assert_eq!(a["resolution"], "5m");
    assert_eq!(total(&a), 500.0, "250 meters x 2.000");
    let st = p.stats();
    assert_eq!((st["chunks"].clone(), st["queueDepth"].clone()), (json!(3), json!(0)));
    // Asked again with nothing new: from the cache, at once.
    let out = p.send(q.clone());
    let s = series(&out);
    assert_eq!((s[0]["cached"].clone(), total(s[0])), (json!(true), 500.0));
    assert_eq!(p.stats()["cacheHits"], json!(1));
    // One new reading of a member: its source moved, so it is summed again.
    p.frame(7..8, 1_000);
    let out = p.send(q);
    assert_eq!(series(&out)[0]["state"], "computing");
    for _ in 0..3 {
        p.input(Inbound::Tick(Default::default()));
    }
    assert_eq!(p.stats()["recomputes"], json!(2));
}

#[test]
fn at_most_max_concurrent_queries_run_and_the_queue_is_bounded() {
    let cfg = Config {
        series_chunk_meters: 100,
        max_concurrent_queries: 1,
        max_series_subscriptions: 2,
        ..Config::default()
    };
    let mut p = Page::new(cfg, 450);
    p.frame(0..450, 1_000);
    let ask = |g: &str, id: u32| json!({"type":"query","query":"series","group":g,"resource":"energy","id":id});
    assert_eq!(series(&p.send(ask("big", 1)))[0]["state"], "computing");
    assert_eq!(series(&p.send(ask("odd", 2)))[0]["state"], "computing");
    // A third waiting computation is past maxSeriesSubscriptions (2).
    let out = p.send(ask("big", 3));
    assert_eq!((out[0]["code"].clone(), out[0]["id"].clone()), (json!("series_limit"), json!(3.0)));
    // One at a time: "big" (5 chunks) first, then "odd" (3 chunks).
    let mut done = Vec::new();
    for tick in 1..=8 {
        for s in series(&p.input(Inbound::Tick(Default::default()))) {
            done.push((tick, s["id"].as_f64(), total(s)));
        }
    }
    assert_eq!(done, vec![(5, Some(1.0), 450.0), (8, Some(2.0), 225.0)]);
}

#[test]
fn subscriptions_push_when_their_source_moves_and_are_bounded() {
    let cfg = Config { max_series_subscriptions: 1, ..Config::default() };
    let mut p = Page::new(cfg, 4);
    p.frame(0..4, 1_500);
    let sub =
        json!({"type":"series","op":"subscribe","sub":"chart-1","meter":"m-2","resource":"energy"});
    let out = p.send(sub);
    let s = series(&out);
    assert_eq!(s.len(), 1, "the current series at once: {out:?}");
    assert_eq!((s[0]["sub"].clone(), s[0].get("id").cloned()), (json!("chart-1"), None));
    assert_eq!((s[0]["resolution"].clone(), total(s[0])), (json!("1m"), 1.5));
    // Nothing moved: a flush pushes nothing.
    assert!(series(&p.input(Inbound::Flush)).is_empty());
    // Another meter's reading does not move m-2's series either.
    p.frame(0..1, 1_000);
    assert!(series(&p.input(Inbound::Flush)).is_empty());
    // m-2 reads twice before the flush: one push, with both.
    p.frame(2..3, 1_000);
    p.frame(2..3, 1_000);
    let out = p.input(Inbound::Flush);
    let s = series(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(total(s[0]), 3.5);
    assert_eq!(p.stats()["subscriptions"], json!(1));
    // A second subscription is past maxSeriesSubscriptions (1).
    let out = p.send(
        json!({"type":"series","op":"subscribe","sub":"chart-2","group":"big","resource":"energy"}),
    );
    assert_eq!(out[0]["code"], "series_limit", "{out:?}");
    let out = p.send(json!({"type":"series","op":"unsubscribe","sub":"chart-1"}));
    assert!(out.is_empty());
    p.frame(2..3, 1_000);
    assert!(series(&p.input(Inbound::Flush)).is_empty());
    assert_eq!(p.stats()["subscriptions"], json!(0));
}

#[test]
fn bad_series_queries_are_named_errors() {
    let mut p = Page::new(Config::default(), 2);
    p.frame(0..2, 1_000);
    let cases = [
        (json!({"meter":"m-1","group":"big","resource":"energy"}), "bad_field"),
        (json!({"resource":"energy"}), "bad_field"),
        (json!({"meter":"m-1"}), "bad_field"),
        (json!({"meter":"m-1","resource":"energy","spanMs":21_600_001}), "bad_field"),
        (
            json!({"meter":"m-1","resource":"energy","spanMs":10_800_000,"resolution":"1m"}),
            "bad_field",
        ),
        (json!({"meter":"m-1","resource":"energy","resolution":"10m"}), "bad_field"),
        (json!({"meter":"m-1","resource":"steam"}), "unknown_resource"),
        (json!({"meter":"m-9","resource":"energy"}), "unknown_meter"),
        (json!({"group":"nowhere","resource":"energy"}), "bad_field"),
    ];
    for (n, (fields, code)) in cases.into_iter().enumerate() {
        let mut msg = json!({"type":"query","query":"series","id":n});
        for (k, v) in fields.as_object().into_iter().flatten() {
            msg[k] = v.clone();
        }
        let out = p.send(msg.clone());
        assert_eq!(out.len(), 1, "{msg}: {out:?}");
        assert_eq!(out[0]["code"], code, "{msg}: {out:?}");
        assert_eq!(out[0]["id"].as_f64(), Some(n as f64), "{msg}");
    }
    // A 3-hour span defaults to 5 minutes, a 30-minute one to 1 minute.
    let out = p.send(json!({"type":"query","query":"series","meter":"m-1","resource":"energy","spanMs":10_800_000}));
    assert_eq!(
        (out[0]["resolution"].clone(), out[0]["ts"].as_array().map(Vec::len)),
        (json!("5m"), Some(36))
    );
    let out = p.send(json!({"type":"query","query":"series","meter":"m-1","resource":"energy","spanMs":1_800_000}));
    assert_eq!(
        (out[0]["resolution"].clone(), out[0]["ts"].as_array().map(Vec::len)),
        (json!("1m"), Some(30))
    );
    assert_eq!(out[0]["to"].as_f64(), out[0]["ts"][29].as_f64().map(|t| t + 60_000.0));
}

#[test]
fn pairs_past_max_series_pairs_are_missed_and_say_incomplete() {
    let cfg = Config { max_series_pairs: Some(2), ..Config::default() };
    let mut p = Page::new(cfg, 4);
    // Each refused pair is named once, however many of its readings follow.
    let errors = p.frame(0..4, 1_000);
    let named: Vec<&str> = errors.iter().filter_map(|e| e["message"].as_str()).collect();
    assert_eq!(named.len(), 2, "{errors:?}");
    for (e, m) in named.iter().zip(["m-2", "m-3"]) {
        assert!(e.contains(&format!("meter '{m}' resource 'energy'")), "{e}");
        assert!(e.contains("maxSeriesPairs (2 pairs held)"), "{e}");
    }
    assert_eq!(p.frame(0..4, 1_000), Vec::<Value>::new());
    let st = p.stats();
    assert_eq!((st["pairs"].clone(), st["missed"].clone()), (json!(2), json!(4)));
    let ask = |m: &str| json!({"type":"query","query":"series","meter":m,"resource":"energy","spanMs":600_000});
    let out = p.send(ask("m-3"));
    assert_eq!((total(&out[0]), out[0]["incomplete"].clone()), (0.0, json!(true)), "{out:?}");
    // The meters that have a series have their reading, and the same minute is missed.
    let out = p.send(ask("m-0"));
    assert_eq!((total(&out[0]), out[0]["incomplete"].clone()), (2.0, json!(true)));
}

#[test]
fn readings_past_a_buckets_bound_are_named_and_the_series_says_incomplete() {
    let mut p = Page::new(Config::default(), 2);
    // 10^14 units (10^11 kWh at 3 decimals) fit a bucket's 48-bit sum alone;
    // a second one in the same minute would pass ±2^47 and is refused.
    let big = 100_000_000_000_000;
    assert_eq!(p.frame(0..2, big), Vec::<Value>::new());
    let errors = p.frame(0..2, big);
    assert_eq!(errors.len(), 1, "one error for the frame's refused readings: {errors:?}");
    let e = errors[0]["message"].as_str().unwrap_or_default();
    assert!(e.starts_with("series: 2 reading(s) past a bucket's bound"), "{e}");
    assert!(e.contains("the first of meter 'm-0' resource 'energy'"), "{e}");
    // Nothing refused since: no error; a reading that fits is taken.
    assert_eq!(p.frame(0..2, 1_000), Vec::<Value>::new());
    let st = p.stats();
    assert_eq!((st["pairs"].clone(), st["missed"].clone()), (json!(2), json!(2)));
    let out = p.send(
        json!({"type":"query","query":"series","meter":"m-1","resource":"energy","spanMs":600_000}),
    );
    assert_eq!(
        (total(&out[0]), out[0]["incomplete"].clone()),
        (1e11 + 1.0, json!(true)),
        "{out:?}"
    );
}
