#![cfg(not(target_arch = "wasm32"))]
//! JSON payload decoding: readings, live frames, hellos, catch-ups, page
//! messages and config patches. Every error code reachable from JSON input,
//! its position, and that valid items of the same batch still apply.

use meterflow::core::config::{Config, ConfigPatch, Partition, ResourceSpec};
use meterflow::core::decimal::Decimal;
use meterflow::core::error::{CoreError, ErrorCode};
use meterflow::core::event::{
    Catchup, Inbound, KeyScope, LiveFrame, Query, ReadingBatch, ResetScope, StreamHello,
};
use meterflow::core::hlc::Hlc;
use meterflow::wire::{decode_config, decode_message, decode_text, Arrival, Envelope};
use serde_json::json;

fn cfg() -> Config {
    Config::default()
}

fn text(env: Envelope, t: &str) -> Inbound {
    decode_text(env, t, Arrival::default(), &cfg())
}

fn readings(t: &str) -> ReadingBatch {
    match text(Envelope::Readings, t) {
        Inbound::Readings(b) => b,
        other => panic!("expected readings, got {other:?}"),
    }
}

fn frame(t: &str) -> LiveFrame {
    match text(Envelope::Live, t) {
        Inbound::Live(f) => f,
        other => panic!("expected a live frame, got {other:?}"),
    }
}

fn catchup(t: &str) -> Catchup {
    match text(Envelope::Catchup, t) {
        Inbound::Catchup(c) => c,
        other => panic!("expected a catch-up, got {other:?}"),
    }
}

fn rejected(i: Inbound) -> CoreError {
    match i {
        Inbound::Rejected(e) => e,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// `(code, position)` of each error, and checks each message names `path`s.
fn codes(errors: &[CoreError]) -> Vec<(ErrorCode, Option<u32>)> {
    errors.iter().map(|e| (e.code, e.position)).collect()
}

/// A payload of `env` is rejected with `code` and a message containing `needle`.
fn check_rejected(env: Envelope, payload: &str, code: ErrorCode, needle: &str) {
    let e = rejected(text(env, payload));
    assert_eq!(e.code, code, "{payload}: {e}");
    assert!(e.message.contains(needle), "{payload}: message {:?} lacks {needle:?}", e.message);
    assert_eq!(e.position, None, "{payload}");
}

#[test]
fn readings_decode_into_batch_keys_one_binding_per_meter() {
    let b = readings(
        r#"{"type":"readings","v":1,"extra":[1,2],"readings":[
            {"meter":"pump-17","ts":1764064800000,"value":12.5},
            {"meter":"pump-\u0031","ts":1764064800500,"value":-3,"unit":"ignored"},
            {"meter":"pump-17","ts":1764064801000,"value":1e3}]}"#,
    );
    assert_eq!(b.scope, KeyScope::Batch);
    assert_eq!(b.bindings, vec![(0, "pump-17".to_string()), (1, "pump-1".to_string())]);
    assert_eq!(b.keys, vec![0, 1, 0]);
    assert_eq!(b.ts, vec![1764064800000.0, 1764064800500.0, 1764064801000.0]);
    assert_eq!(b.values, vec![12.5, -3.0, 1000.0]);
    assert!(b.positions.is_empty() && b.errors.is_empty());
    // No `type` is fine in a readings envelope.
    assert_eq!(readings(r#"{"readings":[]}"#).keys.len(), 0);
}

#[test]
fn bad_reading_items_are_reported_with_positions_and_the_rest_apply() {
    let b = readings(
        r#"{"readings":[
            {"meter":"a","ts":1,"value":1},
            {"meter":"","ts":1,"value":1},
            {"ts":1,"value":1},
            {"meter":"b","ts":"1","value":1},
            {"meter":"c","ts":1,"value":1e999},
            {"meter":"d","ts":1e400,"value":1},
            7,
            {"meter":5,"ts":1,"value":1},
            {"meter":"a","ts":2,"value":2},
            {"meter":"a","ts":3,"value":true}]}"#,
    );
    assert_eq!(
        codes(&b.errors),
        vec![
            (ErrorCode::BadMeterId, Some(1)),
            (ErrorCode::BadField, Some(2)),
            (ErrorCode::BadField, Some(3)),
            (ErrorCode::BadValue, Some(4)),
            (ErrorCode::BadTimestamp, Some(5)),
            (ErrorCode::BadField, Some(6)),
            (ErrorCode::BadField, Some(7)),
            (ErrorCode::BadField, Some(9)),
        ]
    );
    let msgs: Vec<&str> = b.errors.iter().map(|e| e.message.as_str()).collect();
    assert!(msgs[1].contains("readings[2].meter") && msgs[1].contains("missing"), "{msgs:?}");
    assert!(msgs[2].contains("readings[3].ts"), "{msgs:?}");
    assert!(msgs[3].contains("readings[4].value"), "{msgs:?}");
    assert!(msgs[5].contains("readings[6]"), "{msgs:?}");
    assert_eq!(b.keys, vec![0, 0]);
    assert_eq!(b.values, vec![1.0, 2.0]);
    assert_eq!(b.positions, vec![0, 8]);
    assert_eq!(b.bindings, vec![(0, "a".to_string())]);
}

#[test]
fn long_meter_ids_are_refused_at_257_bytes() {
    let ok = "m".repeat(256);
    let long = "m".repeat(257);
    let b = readings(&format!(
        r#"{{"readings":[{{"meter":"{long}","ts":1,"value":1}},{{"meter":"{ok}","ts":1,"value":1}}]}}"#
    ));
    assert_eq!(codes(&b.errors), vec![(ErrorCode::BadMeterId, Some(0))]);
    assert_eq!(b.positions, vec![1]);
    assert_eq!(b.bindings[0].1.len(), 256);
}

#[test]
fn whole_payload_errors() {
    use Envelope::*;
    check_rejected(Readings, "", ErrorCode::MalformedJson, "not JSON");
    check_rejected(Readings, "{\"readings\":[", ErrorCode::MalformedJson, "not JSON");
    check_rejected(Readings, "{\"readings\":[]} x", ErrorCode::MalformedJson, "not JSON");
    check_rejected(Readings, "[1,2]", ErrorCode::BadField, "readings payload");
    check_rejected(Readings, "{}", ErrorCode::BadField, "readings: missing");
    check_rejected(Readings, r#"{"readings":{}}"#, ErrorCode::BadField, "must be an array");
    check_rejected(Readings, r#"{"v":2,"readings":[]}"#, ErrorCode::UnsupportedVersion, "2");
    check_rejected(Readings, r#"{"v":"1","readings":[]}"#, ErrorCode::UnsupportedVersion, "v");
    check_rejected(Readings, r#"{"type":"frame","readings":[]}"#, ErrorCode::UnknownType, "frame");
    check_rejected(Readings, r#"{"type":7,"readings":[]}"#, ErrorCode::BadField, "type");
    check_rejected(Live, r#"{"type":"readings","readings":[]}"#, ErrorCode::UnknownType, "live");
    check_rejected(Live, r#"{"epoch":1}"#, ErrorCode::BadField, "type: missing");
    check_rejected(Catchup, r#"{"type":"hello","epoch":1}"#, ErrorCode::UnknownType, "hello");
    check_rejected(Live, r#"{"type":"gossip"}"#, ErrorCode::UnknownType, "gossip");
}

#[test]
fn payload_and_batch_limits() {
    let c = Config::default()
        .apply(&ConfigPatch {
            max_payload_bytes: Some(200),
            max_batch: Some(2),
            ..Default::default()
        })
        .unwrap();
    let big = format!(r#"{{"readings":[],"pad":"{}"}}"#, "x".repeat(200));
    let e = rejected(decode_text(Envelope::Readings, &big, Arrival::default(), &c));
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    assert!(e.message.contains("maxPayloadBytes"), "{e}");
    let three = r#"{"readings":[{"meter":"a","ts":1,"value":1},{"meter":"a","ts":1,"value":1},{"meter":"a","ts":1,"value":1}]}"#;
    let e = rejected(decode_text(Envelope::Readings, three, Arrival::default(), &c));
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    assert!(e.message.contains("maxBatch"), "{e}");
}

const FRAME: &str = r#"{ "type": "frame", "channel": "", "epoch": 7, "seq": 1042,
  "hlc": { "wallMs": 1764064800123, "counter": 0 },
  "readings": [
    { "meter": "m-1", "resource": "water", "id": 881, "ts": 1764064800000, "amount": 0.125 },
    { "meter": "m-1", "resource": "energy", "id": 882, "ts": 1764064800000, "amount": "1234567.891" },
    { "meter": "m-1", "resource": "water", "id": 883, "ts": 1764064800001, "amount": 1.1e1 } ] }"#;

#[test]
fn live_frame_decodes_exact_amounts_and_binds_each_pair_once() {
    let f = frame(FRAME);
    assert_eq!((f.channel.as_str(), f.epoch, f.seq), ("", 7, 1042));
    assert_eq!(f.stamp, Hlc { wall_ms: 1764064800123, counter: 0 });
    assert_eq!(f.scope, KeyScope::Batch);
    assert_eq!(f.bindings.len(), 2);
    assert_eq!((f.bindings[1].meter.as_str(), f.bindings[1].resource.as_str()), ("m-1", "energy"));
    assert_eq!(f.keys, vec![0, 1, 0]);
    assert_eq!(f.ids, vec![881, 882, 883]);
    assert_eq!(
        f.amounts,
        vec![Decimal::new(125, 3), Decimal::new(1234567891, 3), Decimal::new(11, 0)]
    );
    assert!(f.errors.is_empty() && f.positions.is_empty());
}

#[test]
fn amounts_past_f64_precision_stay_exact() {
    // 0.1 + 0.2 style values and 17+ significant digits: read from the text.
    let f = frame(
        r#"{"type":"frame","epoch":0,"seq":0,"hlc":{"wallMs":1,"counter":0},"readings":[
        {"meter":"m","resource":"water","id":1,"ts":1,"amount":9007199254740.993},
        {"meter":"m","resource":"water","id":2,"ts":1,"amount":"0.300"}]}"#,
    );
    assert_eq!(f.amounts, vec![Decimal::new(9007199254740993, 3), Decimal::new(3, 1)]);
}

#[test]
fn bad_live_items_are_reported_with_positions() {
    let f = frame(
        r#"{"type":"frame","epoch":1,"seq":2,"hlc":{"wallMs":5,"counter":1},"readings":[
        {"meter":"m","resource":"water","id":1,"ts":1,"amount":1},
        {"meter":"m","resource":"gas","id":2,"ts":1,"amount":1},
        {"meter":"m","resource":"water","id":-3,"ts":1,"amount":1},
        {"meter":"m","resource":"water","id":4.5,"ts":1,"amount":1},
        {"meter":"m","resource":"water","id":9007199254740993,"ts":1,"amount":1},
        {"meter":"m","resource":"water","id":6,"ts":1,"amount":-1},
        {"meter":"m","resource":"water","id":7,"ts":1,"amount":0.0001},
        {"meter":"m","resource":"water","id":8,"ts":1,"amount":"abc"},
        {"meter":"m","resource":"water","id":9,"ts":1,"amount":null},
        {"meter":"","resource":"water","id":10,"ts":1,"amount":1},
        {"meter":"m","resource":"water","id":11,"amount":1},
        {"meter":"m","resource":"water","id":12,"ts":1,"amount":[1]},
        {"meter":"m","resource":"water","id":13,"ts":1,"amount":1e30},
        {"meter":"m","resource":"water","id":14,"ts":1,"amount":"2.500"}]}"#,
    );
    assert_eq!(
        codes(&f.errors),
        vec![
            (ErrorCode::UnknownResource, Some(1)),
            (ErrorCode::BadValue, Some(2)),
            (ErrorCode::BadValue, Some(3)),
            (ErrorCode::BadValue, Some(4)),
            (ErrorCode::BadValue, Some(5)),
            (ErrorCode::BadValue, Some(6)),
            (ErrorCode::BadField, Some(7)),
            (ErrorCode::BadField, Some(8)),
            (ErrorCode::BadMeterId, Some(9)),
            (ErrorCode::BadField, Some(10)),
            (ErrorCode::BadField, Some(11)),
            (ErrorCode::BadValue, Some(12)),
        ]
    );
    assert!(f.errors[5].message.contains("finer than the resolution"), "{}", f.errors[5]);
    assert!(f.errors[0].message.contains("'gas'"), "{}", f.errors[0]);
    assert_eq!(f.ids, vec![1, 14]);
    assert_eq!(f.positions, vec![0, 13]);
    assert_eq!(f.amounts, vec![Decimal::new(1, 0), Decimal::new(25, 1)]);
}

#[test]
fn live_frame_header_errors_reject_the_frame() {
    let base = |field: &str, value: &str| {
        let mut v: serde_json::Value = serde_json::from_str(FRAME).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    };
    let without = |field: &str| {
        let mut v: serde_json::Value = serde_json::from_str(FRAME).unwrap();
        v.as_object_mut().unwrap().remove(field);
        v.to_string()
    };
    use Envelope::Live;
    check_rejected(Live, &without("epoch"), ErrorCode::BadField, "epoch: missing");
    check_rejected(Live, &without("seq"), ErrorCode::BadField, "seq: missing");
    check_rejected(Live, &without("hlc"), ErrorCode::BadField, "hlc: missing");
    check_rejected(Live, &without("readings"), ErrorCode::BadField, "readings: missing");
    check_rejected(Live, &base("epoch", "-1"), ErrorCode::BadValue, "epoch");
    check_rejected(Live, &base("seq", "9007199254740993"), ErrorCode::BadValue, "seq");
    check_rejected(Live, &base("seq", "\"3\""), ErrorCode::BadField, "seq");
    check_rejected(
        Live,
        &base("hlc", r#"{"wallMs":1.5,"counter":0}"#),
        ErrorCode::BadTimestamp,
        "hlc",
    );
    check_rejected(
        Live,
        &base("hlc", r#"{"wallMs":1,"counter":65536}"#),
        ErrorCode::BadTimestamp,
        "hlc",
    );
    check_rejected(Live, &base("hlc", r#"{"wallMs":1}"#), ErrorCode::BadField, "hlc");
    check_rejected(Live, &base("channel", "3"), ErrorCode::BadField, "channel");
    let long = format!("\"{}\"", "c".repeat(256));
    check_rejected(Live, &base("channel", &long), ErrorCode::BadField, "channel");
    assert_eq!(frame(&base("seq", "9007199254740992")).seq, 1 << 53);
}

#[test]
fn hello_decodes_with_and_without_optional_fields() {
    let h = match text(
        Envelope::Live,
        r#"{ "type": "hello", "channel": "eu", "epoch": 8, "nextSeq": 0,
            "hlc": { "wallMs": 1764064860000, "counter": 3 }, "serverTime": 1764064860001 }"#,
    ) {
        Inbound::Hello(h) => h,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        h,
        StreamHello {
            channel: "eu".into(),
            epoch: 8,
            next_seq: Some(0),
            stamp: Some(Hlc { wall_ms: 1764064860000, counter: 3 }),
            server_time_ms: Some(1764064860001.0),
        }
    );
    match text(Envelope::Live, r#"{"type":"hello","epoch":0}"#) {
        Inbound::Hello(h) => assert_eq!(h, StreamHello::default()),
        other => panic!("{other:?}"),
    }
    check_rejected(Envelope::Live, r#"{"type":"hello"}"#, ErrorCode::BadField, "epoch");
    check_rejected(
        Envelope::Live,
        r#"{"type":"hello","epoch":1,"serverTime":"now"}"#,
        ErrorCode::BadField,
        "serverTime",
    );
}

const CATCHUP: &str = r#"{ "type": "catchup", "asOf": { "wallMs": 1764064860000, "counter": 12 },
  "serverTime": 1764064860004, "from": 1764043200000, "to": 1764064800000,
  "buckets": [ { "resource": "water", "hour": 1764061200000, "total": "1234.567" },
               { "resource": "energy", "hour": 1764064800000, "total": 12 } ] }"#;

#[test]
fn catchup_decodes_exactly_with_arrival_times() {
    let arrival = Arrival { sent_at_ms: Some(10.0), received_at_ms: Some(30.0) };
    let c = match decode_text(Envelope::Catchup, CATCHUP, arrival, &cfg()) {
        Inbound::Catchup(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.as_of, Hlc { wall_ms: 1764064860000, counter: 12 });
    assert_eq!((c.from_hour_ms, c.to_hour_ms), (Some(1764043200000.0), Some(1764064800000.0)));
    assert_eq!(c.server_time_ms, Some(1764064860004.0));
    assert_eq!((c.sent_at_ms, c.received_at_ms), (Some(10.0), Some(30.0)));
    assert_eq!(c.buckets.len(), 2);
    assert_eq!(c.buckets[0].total, Decimal::new(1234567, 3));
    assert_eq!((c.buckets[1].resource.as_str(), c.buckets[1].position), ("energy", 1));
    assert!(c.errors.is_empty());
}

#[test]
fn bad_buckets_are_reported_and_the_rest_apply() {
    let c = catchup(
        r#"{"asOf":{"wallMs":1,"counter":0},"buckets":[
        {"resource":"water","hour":3600000,"total":1},
        {"resource":"steam","hour":3600000,"total":1},
        {"resource":"water","hour":3600001,"total":1},
        {"resource":"water","hour":7200000,"total":-1},
        {"resource":"water","hour":7200000,"total":"0.0005"},
        {"resource":"water","hour":7200000},
        {"resource":"water","hour":"x","total":1},
        {"resource":"water","hour":10800000,"total":"7"}]}"#,
    );
    assert_eq!(
        codes(&c.errors),
        vec![
            (ErrorCode::UnknownResource, Some(1)),
            (ErrorCode::BadTimestamp, Some(2)),
            (ErrorCode::BadValue, Some(3)),
            (ErrorCode::BadValue, Some(4)),
            (ErrorCode::BadField, Some(5)),
            (ErrorCode::BadField, Some(6)),
        ]
    );
    assert!(c.errors[4].message.contains("buckets[5].total: missing"), "{}", c.errors[4]);
    let kept: Vec<u32> = c.buckets.iter().map(|b| b.position).collect();
    assert_eq!(kept, vec![0, 7]);
    use Envelope::Catchup as C;
    check_rejected(C, r#"{"buckets":[]}"#, ErrorCode::BadField, "asOf: missing");
    check_rejected(C, r#"{"asOf":{"wallMs":1,"counter":0}}"#, ErrorCode::BadField, "buckets");
    check_rejected(
        C,
        r#"{"asOf":{"wallMs":1,"counter":0},"from":1,"buckets":[]}"#,
        ErrorCode::BadTimestamp,
        "from",
    );
    check_rejected(
        C,
        r#"{"asOf":{"wallMs":1,"counter":0},"from":7200000,"to":3600000,"buckets":[]}"#,
        ErrorCode::BadTimestamp,
        "after",
    );
}

#[test]
fn page_messages_decode_every_type() {
    let c = cfg();
    let m = |v: serde_json::Value| decode_message(&v, &c);
    match m(
        json!({"type":"readings","data":"{\"readings\":[{\"meter\":\"a\",\"ts\":1,\"value\":2}]}"}),
    ) {
        Inbound::Readings(b) => assert_eq!(b.values, vec![2.0]),
        other => panic!("{other:?}"),
    }
    // Inline JSON data is re-serialised and decoded the same way.
    match m(
        json!({"type":"live","v":1,"data":serde_json::from_str::<serde_json::Value>(FRAME).unwrap()}),
    ) {
        Inbound::Live(f) => assert_eq!(f.ids, vec![881, 882, 883]),
        other => panic!("{other:?}"),
    }
    match m(json!({"type":"catchup","data":CATCHUP,"sentAt":1,"receivedAt":2})) {
        Inbound::Catchup(c) => assert_eq!((c.sent_at_ms, c.received_at_ms), (Some(1.0), Some(2.0))),
        other => panic!("{other:?}"),
    }
    assert_eq!(m(json!({"type":"query","query":"stats"})), Inbound::Query(Query::Stats));
    assert_eq!(m(json!({"type":"query","query":"totals"})), Inbound::Query(Query::Totals));
    assert_eq!(
        m(json!({"type":"query","query":"window","meter":"a"})),
        Inbound::Query(Query::Window { meter: "a".into() })
    );
    assert_eq!(
        m(json!({"type":"query","query":"meter","meter":"b"})),
        Inbound::Query(Query::Meter { meter: "b".into() })
    );
    assert_eq!(m(json!({"type":"reset"})), Inbound::Reset(ResetScope::All));
    assert_eq!(
        m(json!({"type":"reset","meter":"a"})),
        Inbound::Reset(ResetScope::Meter("a".into()))
    );
    match m(json!({"type":"config","config":{"window":600,"spikeZ":5.5,"detectLive":false}})) {
        Inbound::Config(p) => {
            assert_eq!((p.window, p.spike_z, p.detect_live), (Some(600), Some(5.5), Some(false)))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn page_message_errors() {
    let c = cfg();
    let check = |v: serde_json::Value, code: ErrorCode, needle: &str| {
        let e = rejected(decode_message(&v, &c));
        assert_eq!(e.code, code, "{v}: {e}");
        assert!(e.message.contains(needle), "{v}: {e}");
    };
    check(json!([1]), ErrorCode::BadField, "object");
    check(json!({"data":"{}"}), ErrorCode::BadField, "type: missing");
    check(json!({"type":1}), ErrorCode::BadField, "type");
    check(json!({"type":"nope"}), ErrorCode::UnknownType, "nope");
    check(json!({"type":"query","query":"stats","v":2}), ErrorCode::UnsupportedVersion, "2");
    check(json!({"type":"readings"}), ErrorCode::BadField, "data: missing");
    check(json!({"type":"readings","data":5}), ErrorCode::BadField, "data");
    check(json!({"type":"readings","dataBase64":"!!!"}), ErrorCode::BadField, "base64");
    check(json!({"type":"readings","data":"{","sentAt":"x"}), ErrorCode::BadField, "sentAt");
    check(json!({"type":"readings","data":"{"}), ErrorCode::MalformedJson, "not JSON");
    check(json!({"type":"query"}), ErrorCode::BadField, "query: missing");
    check(json!({"type":"query","query":"everything"}), ErrorCode::BadField, "query");
    check(json!({"type":"query","query":"window"}), ErrorCode::BadField, "meter");
    check(json!({"type":"reset","meter":3}), ErrorCode::BadField, "meter");
    check(json!({"type":"config"}), ErrorCode::BadField, "config: missing");
    check(json!({"type":"config","config":[]}), ErrorCode::BadConfig, "object");
}

#[test]
fn config_patch_names_unknown_and_mistyped_fields() {
    let e = decode_config(&json!({"window":600,"windw":3})).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadConfig);
    assert!(e.message.contains("config.windw") && e.message.contains("unknown"), "{e}");
    for (field, bad) in [
        ("window", json!(-1)),
        ("window", json!(1.5)),
        ("window", json!("600")),
        ("maxMeters", json!(4294967296u64)),
        ("tickMs", json!("fast")),
        ("detectLive", json!(1)),
        ("resources", json!([{"name":"gas","unit":"m3"}])),
        ("resources", json!([{"name":"gas","unit":"m3","decimals":256}])),
        ("resources", json!({"name":"gas"})),
    ] {
        let e = decode_config(&json!({ field: bad })).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadConfig, "{field}");
        assert!(e.message.contains(&format!("config.{field}")), "{field}: {e}");
    }
}

#[test]
fn every_config_field_is_reachable_by_its_camel_case_name() {
    let mut all = json!({
        "window": 2400, "maxMeters": 7, "tickMs": 250, "statsIntervalMs": 2000,
        "memoryCeilingBytes": 1e9, "reducedWindow": 1000, "warmup": 30, "spikeZ": 5,
        "spikeVotesOf": 7, "spikeVotesNeeded": 4, "driftShort": 25, "driftZ": 6,
        "driftConsecutive": 6, "stuckRun": 40, "silentAfterMs": 90000, "clearAfter": 12,
        "criticalFactor": 3, "recomputeEvery": 50, "maxPayloadBytes": 1000000,
        "maxBatch": 10000, "maxStreamKeys": 4096, "maxAbsValue": 1e9, "maxAgeMs": 3600000,
        "maxFutureMs": 60000, "maxErrorsPerBatch": 20,
        "resources": [{"name":"gas","unit":"m3","decimals":2}], "historyHours": 12,
        "maxOffsetMs": 1000, "maxClockSkewMs": 60000, "totalsFlushMs": 500,
        "catchupIntervalMs": 30000, "fetchRetryMs": 2000, "maxPendingReadings": 1000,
        "dedupWindow": 128, "maxMissingSeqs": 100, "maxChannels": 4, "nodeId": 9,
        "detectLive": false, "stdFloor": 0.001, "stdFloorRel": 0.0001, "spikeWidenMax": 3
    });
    all["catchupOnStart"] = json!(true);
    all["maxScansPerTick"] = json!(64);
    all["maxHeldAcks"] = json!(8);
    all["maxCatchupPages"] = json!(5);
    all["partition"] = json!({"index": 1, "of": 3});
    let stream = json!({
        "transport": "worker", "feedUrl": "http://127.0.0.1:8090", "maxSubscriptions": 8,
        "maxBufferedDeltas": 512, "maxBufferedBytes": 1048576, "creditWindow": 128, "backoffBaseMs": 250, "backoffCapMs": 20000,
        "helloTimeoutMs": 5000, "streamSeed": 7, "maxMeterEntities": 9000, "maxNotices": 99,
        "detailCacheSize": 16, "maxDetailBytes": 4096, "binaryDeltas": true,
        "detailTtlMs": 10000, "maxUpdatesPerMessage": 500,
        "deltaFlushMs": 8,
        "maxGroups": 12, "maxGroupsPerMeter": 3, "groupsRefreshMs": 5000,
        "maxSeriesSubscriptions": 5, "maxConcurrentQueries": 3, "seriesChunkMeters": 500,
        "maxSeriesPairs": 900, "maxRowLogReadings": 4096
    });
    for (k, v) in stream.as_object().unwrap() {
        all[k] = v.clone();
    }
    all["stuckFactor"] = json!(4);
    all["baselineReadings"] = json!(3600);
    let p = decode_config(&all).unwrap();
    let c = Config::default().apply(&p).unwrap();
    let expected = Config {
        window: 2400,
        max_meters: 7,
        tick_ms: 250.0,
        stats_interval_ms: 2000.0,
        memory_ceiling_bytes: 1e9,
        reduced_window: 1000,
        warmup: 30,
        spike_z: 5.0,
        spike_votes_of: 7,
        spike_votes_needed: 4,
        drift_short: 25,
        drift_z: 6.0,
        drift_consecutive: 6,
        stuck_run: 40,
        stuck_factor: 4.0,
        baseline_readings: 3600,
        silent_after_ms: 90000.0,
        clear_after: 12,
        critical_factor: 3.0,
        std_floor: 0.001,
        std_floor_rel: 0.0001,
        spike_widen_max: 3.0,
        recompute_every: 50,
        max_scans_per_tick: 64,
        max_held_acks: 8,
        max_payload_bytes: 1_000_000,
        max_batch: 10_000,
        max_stream_keys: 4096,
        max_abs_value: 1e9,
        max_age_ms: 3_600_000.0,
        max_future_ms: 60_000.0,
        max_errors_per_batch: 20,
        partition: Partition { index: 1, of: 3 },
        resources: vec![ResourceSpec::new("gas", "m3", 2)],
        history_hours: 12,
        max_offset_ms: 1000.0,
        max_clock_skew_ms: 60_000.0,
        totals_flush_ms: 500.0,
        catchup_interval_ms: 30_000.0,
        fetch_retry_ms: 2000.0,
        max_catchup_pages: 5,
        catchup_on_start: true,
        max_pending_readings: 1000,
        dedup_window: 128,
        max_missing_seqs: 100,
        max_channels: 4,
        node_id: 9,
        detect_live: false,
        binary_deltas: true,
        transport: meterflow::core::config::Transport::Worker,
        feed_url: "http://127.0.0.1:8090".into(),
        max_subscriptions: 8,
        max_buffered_deltas: 512,
        max_buffered_bytes: 1_048_576,
        credit_window: 128,
        backoff_base_ms: 250.0,
        backoff_cap_ms: 20_000.0,
        hello_timeout_ms: 5000.0,
        stream_seed: 7,
        max_meter_entities: 9000,
        max_notices: 99,
        detail_cache_size: 16,
        max_detail_bytes: 4_096,
        detail_ttl_ms: 10_000.0,
        max_updates_per_message: 500,
        delta_flush_ms: 8.0,
        max_groups: 12,
        max_groups_per_meter: 3,
        groups_refresh_ms: 5_000.0,
        max_series_subscriptions: 5,
        max_concurrent_queries: 3,
        series_chunk_meters: 500,
        max_series_pairs: Some(900),
        max_row_log_readings: 4096,
    };
    assert_eq!(c, expected);
}

#[test]
fn decoded_json_drives_the_engine_with_item_positions() {
    use meterflow::core::event::Outbound;
    use meterflow::core::Engine;
    let c = Config::default()
        .apply(&ConfigPatch {
            max_meters: Some(1),
            max_errors_per_batch: Some(3),
            ..Default::default()
        })
        .unwrap();
    let now = 1764064800000.0;
    let mut engine = Engine::new(c.clone()).unwrap();
    let payload = format!(
        r#"{{"readings":[
        {{"meter":"a","ts":{now},"value":1}},
        {{"meter":"b","ts":{now},"value":2}},
        {{"meter":"a","ts":{now},"value":1e16}},
        {{"meter":"a","ts":1,"value":3}},
        {{"meter":"a","ts":{now},"value":"x"}},
        {{"meter":"a","ts":{now},"value":4}}]}}"#
    );
    let out = engine.handle(decode_text(Envelope::Readings, &payload, Arrival::default(), &c), now);
    let errs: Vec<(ErrorCode, Option<u32>)> = out
        .iter()
        .filter_map(|o| match o {
            Outbound::Error(e) => Some((e.code, e.position)),
            _ => None,
        })
        .collect();
    // The decoder's bad_field (item 4) comes first, then the engine's refusals
    // in record order ('b' at its first reading, which would have been
    // accepted); past maxErrorsPerBatch (3) one summary counts the rest.
    assert_eq!(
        errs,
        vec![
            (ErrorCode::BadField, Some(4)),
            (ErrorCode::MeterCapacity, Some(1)),
            (ErrorCode::BadValue, Some(2)),
            (ErrorCode::ErrorsSuppressed, None),
        ]
    );
    assert_eq!(engine.counters().readings_ingested, 2.0);
}
