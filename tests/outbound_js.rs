//! The worker's outbound messages (JS objects built without serde,
//! `src/wasm/outbound.rs`) against the native JSON text of the same outputs
//! (`wire::encode(..).to_json()`, which tests/wire_encode.rs pins byte for
//! byte): one definition of the wire shape, two emitters, equal on every
//! variant, edge values included (NaN, counts past 2^53, absent and `null`
//! fields, empty arrays, answers with an `id`).
//!
//! Compared as `JSON.stringify` of the JS object (typed arrays as plain
//! arrays) against `JSON.stringify(JSON.parse(native))`: same keys, same
//! order, same values. Typed arrays must be views of the one transferred buffer.
//!
//! Run: `make test-worker` (headless Chromium, with tests/worker.rs).
#![cfg(target_arch = "wasm32")]

use js_sys::{Function, Reflect, JSON};
use meterflow::core::decimal::Decimal;
use meterflow::core::error::{CoreError, ErrorCode, WarningCode};
use meterflow::core::event::*;
use meterflow::core::hlc::Hlc;
use meterflow::core::series::{Resolution, SeriesBody, SeriesData, SeriesTarget};
use meterflow::core::stream::{MeterRow, MeterStatus, Notice, NoticeSeverity};
use meterflow::wasm::outbound_js;
use meterflow::wire;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const BIG: u64 = 1 << 53;

fn resource(name: &str, total: i64) -> ResourceTotals {
    ResourceTotals {
        resource: name.into(),
        unit: "kWh".into(),
        decimals: 3,
        total,
        current_hour: -7,
        buckets: vec![
            BucketTotal { hour_ms: 3_600_000.0, total: 5, as_of: None },
            BucketTotal {
                hour_ms: 7_200_000.0,
                total: -(1 << 53),
                as_of: Some(Hlc { wall_ms: 9, counter: 2 }),
            },
        ],
    }
}

fn group(name: &str) -> GroupTotals {
    GroupTotals {
        group: name.into(),
        meters: 3,
        resources: vec![resource("energy", 1 << 53)],
        incomplete: true,
        readings_per_sec: 2.5,
        active_alerts: 1,
    }
}

fn series(target: SeriesTarget, sub: Option<&str>, empty: bool) -> SeriesEvent {
    let n = if empty { 0 } else { 3 };
    let data = SeriesData {
        target,
        resource: "water".into(),
        decimals: 2,
        resolution: Resolution::FiveMinutes,
        ts: (0..n).map(|i| f64::from(i) * 300_000.0).collect(),
        count: vec![1.0; n as usize],
        sum_units: (0..n).map(|i| i64::from(i) * 125).collect(),
        min: vec![f64::NAN; n as usize],
        max: (0..n).map(f64::from).collect(),
        last: vec![0.5; n as usize],
        source_watermark: (!empty).then_some(12.0),
        incomplete: empty,
    };
    SeriesEvent {
        sub: sub.map(Into::into),
        body: SeriesBody::Data { data: Box::new(data), cached: !empty },
    }
}

fn corpus() -> Vec<Outbound> {
    let stats = StatsEvent {
        meters: 2,
        window: 1200,
        linear_memory_bytes: 65536.0,
        engine_bytes: 1000.5,
        readings_ingested: 10.0,
        readings_rejected: f64::NAN,
        evaluations: 4.0,
        last_tick_eval_ms: 0.25,
        active_alerts: 1,
        stream: Some(StreamStats { gaps: BIG, reconnects: 3, ..Default::default() }),
        groups: Some(GroupsStats {
            version: Some(BIG + 1),
            groups: 2,
            age_ms: Some(4.5),
            refresh_latency_ms: None,
            refreshes: 7,
            ..Default::default()
        }),
        series: Some(SeriesStats { cache_hits: 1, missed: u64::MAX, ..Default::default() }),
        memory: Box::new(MemoryBytes {
            windows: 9_000,
            row_log: BIG,
            fixed: 1,
            ..Default::default()
        }),
    };
    let totals = TotalsEvent {
        frames: 3,
        hlc: Hlc { wall_ms: 1_764_064_860_250, counter: 0 },
        node: 1,
        as_of: None,
        incomplete: false,
        current_hour_ms: 1_764_064_800_000.0,
        resources: vec![resource("water", (1 << 53) - 1), resource("energy", 1 << 53)],
        counters: LedgerCounters { duplicates: 2, late: u64::MAX, ..Default::default() },
    };
    let answer = |id: f64, out: Outbound| Outbound::Answer { id, answer: Box::new(out) };
    vec![
        Outbound::Anomaly(AnomalyEvent {
            meter: "pump-\"17\"\n".into(),
            kind: AnomalyKind::Spike,
            severity: Severity::Critical,
            z: f64::INFINITY,
            value: -0.0,
            mean: 1e300,
            std: 2.0e-9,
            ts: 1_764_064_800_000.0,
            evaluations: 3,
            score: 0.75,
        }),
        Outbound::Cleared(ClearedEvent { meter: "m".into(), kind: AnomalyKind::Silent, at: 5.0 }),
        Outbound::Warning(WarningEvent {
            code: WarningCode::MemoryCeiling,
            message: "é".into(),
            count: None,
        }),
        Outbound::Error(CoreError::at(ErrorCode::BadValue, 4, "readings[4].value")),
        Outbound::Error(CoreError::new(ErrorCode::MalformedJson, "x")),
        answer(7.0, Outbound::Error(CoreError::new(ErrorCode::BadField, "id"))),
        Outbound::Stats(stats.clone()),
        Outbound::Stats(StatsEvent::default()),
        answer(1.5, Outbound::Stats(stats)),
        Outbound::Window { meter: "m".into(), values: vec![1.0, 2.5, f64::NAN] },
        answer(2.0, Outbound::Window { meter: "m".into(), values: vec![] }),
        Outbound::Meter(MeterSnapshot {
            meter: "m".into(),
            count: 3,
            mean: 2.0,
            variance: 1.0,
            skewness: 0.0,
            excess_kurtosis: -1.5,
            last_ts: 9.0,
            alerts: vec![AnomalyKind::Drift, AnomalyKind::Stuck],
            score: 0.5,
        }),
        answer(
            3.0,
            Outbound::Meter(MeterSnapshot {
                meter: String::new(),
                count: 0,
                mean: f64::NAN,
                variance: 0.0,
                skewness: 0.0,
                excess_kurtosis: 0.0,
                last_ts: 0.0,
                alerts: vec![],
                score: 0.0,
            }),
        ),
        Outbound::Totals(totals.clone()),
        answer(4.0, Outbound::Totals(totals)),
        Outbound::Fetch(FetchRequest {
            reason: FetchReason::PendingLimit,
            min_as_of: Some(Hlc { wall_ms: 7, counter: 1 }),
            from_hour_ms: 3_600_000.0,
            to_hour_ms: None,
        }),
        Outbound::Fetch(FetchRequest {
            reason: FetchReason::Page,
            min_as_of: None,
            from_hour_ms: 3_600_000.0,
            to_hour_ms: Some(7_200_000.0),
        }),
        Outbound::Stream(StreamRequest::Connect { url: None }),
        Outbound::Stream(StreamRequest::Connect { url: Some("ws://127.0.0.1/x".into()) }),
        Outbound::Stream(StreamRequest::Send { text: "{\"op\":2}".into() }),
        Outbound::Stream(StreamRequest::Close { code: 4000, reason: "bye".into() }),
        Outbound::Stream(StreamRequest::Fetch { request_id: BIG + 3, path: "/groups".into() }),
        Outbound::Connection(ConnectionStatus {
            state: ConnectionState::Connecting,
            attempt: 2,
            next_retry_ms: Some(1500.0),
            last_close_code: None,
            reason: String::new(),
        }),
        Outbound::Connection(ConnectionStatus {
            state: ConnectionState::Disconnected,
            attempt: 0,
            next_retry_ms: None,
            last_close_code: Some(1006),
            reason: "gone".into(),
        }),
        Outbound::Meters(MetersEvent {
            channel: "meters.north".into(),
            upsert: vec![MeterRow {
                meter: "m1".into(),
                resource: "energy".into(),
                ts: 5.0,
                value: 1.25,
                status: MeterStatus::Stale,
                count: BIG,
                total: Decimal { mantissa: -12345, scale: 3 },
            }],
            remove: vec!["m2".into(), "m3".into()],
            frames: 2,
        }),
        Outbound::Meters(MetersEvent::default()),
        Outbound::Notices(NoticesEvent {
            upsert: vec![Notice {
                id: "n1".into(),
                severity: NoticeSeverity::Warning,
                title: "t".into(),
                text: "x".into(),
                from_ms: 1.0,
                to_ms: f64::NAN,
            }],
            remove: vec!["n0".into()],
            frames: 1,
        }),
        Outbound::Detail(DetailEvent {
            meter: "m1".into(),
            body: r#"{"a":[1,2.5,{"b":null}],"id":"m1","z":"é"}"#.into(),
            cached: true,
        }),
        Outbound::Detail(DetailEvent {
            meter: "m1".into(),
            body: "{not json".into(),
            cached: false,
        }),
        Outbound::Ack(AckEvent { id: 9.0, accepted: 10_000.0, refused: 0.0, ms: 0.125 }),
        Outbound::Groups(GroupsEvent {
            version: Some(4),
            current_hour_ms: 3_600_000.0,
            complete_from_ms: None,
            groups: vec![group("north"), group("south")],
            unassigned: group(""),
        }),
        Outbound::Groups(GroupsEvent {
            version: None,
            current_hour_ms: 0.0,
            complete_from_ms: Some(1.0),
            groups: vec![],
            unassigned: group("x"),
        }),
        Outbound::Series(series(SeriesTarget::Meter("m1".into()), Some("s1"), false)),
        Outbound::Series(series(SeriesTarget::Group("north".into()), None, true)),
        answer(5.0, Outbound::Series(series(SeriesTarget::Group("g".into()), None, false))),
        answer(
            6.0,
            Outbound::Series(SeriesEvent {
                sub: None,
                body: SeriesBody::Computing { retry_after_ms: 250.0 },
            }),
        ),
    ]
}

/// `Err` with what differs, if the JS message is not the native one.
fn same(out: &Outbound) -> Result<(), String> {
    let js_err = |e: JsValue| format!("{e:?}");
    let (message, transfer) = outbound_js(out);
    let plain = Function::new_with_args("k, v", "return ArrayBuffer.isView(v) ? Array.from(v) : v");
    let got = JSON::stringify_with_replacer(&message, &plain).map_err(js_err)?;
    let native = wire::encode(out).to_json();
    let want = JSON::stringify(&JSON::parse(&native).map_err(js_err)?).map_err(js_err)?;
    if got != want {
        return Err(format!("{out:?}\n  js:     {got}\n  native: {want}"));
    }
    // Every typed array is a view of the transferred buffer.
    let keys = js_sys::Object::keys(message.unchecked_ref::<js_sys::Object>());
    for k in keys.iter() {
        let v = Reflect::get(&message, &k).map_err(js_err)?;
        if let Some(view) = v.dyn_ref::<js_sys::Float64Array>() {
            if transfer.as_ref() != Some(&view.buffer().into()) {
                return Err(format!("{out:?}: {k:?} is not a view of the transferred buffer"));
            }
        }
    }
    Ok(())
}

#[wasm_bindgen_test]
fn every_outbound_message_equals_its_native_json() -> Result<(), String> {
    let all = corpus();
    // Not vacuous: every variant's type tag is in the corpus.
    let mut types: Vec<String> = all
        .iter()
        .filter_map(|o| JSON::parse(&wire::encode(o).to_json()).ok())
        .filter_map(|v| Reflect::get(&v, &"type".into()).ok()?.as_string())
        .collect();
    types.sort();
    types.dedup();
    if types.len() < 19 {
        return Err(format!("only {} message types in the corpus: {types:?}", types.len()));
    }
    let failures: Vec<String> = all.iter().filter_map(|o| same(o).err()).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

#[wasm_bindgen_test]
fn the_comparison_can_fail() -> Result<(), String> {
    // A JS message missing a field the native text has is caught.
    let out =
        Outbound::Cleared(ClearedEvent { meter: "m".into(), kind: AnomalyKind::Silent, at: 5.0 });
    let (message, _) = outbound_js(&out);
    Reflect::delete_property(message.unchecked_ref::<js_sys::Object>(), &"at".into())
        .map_err(|e| format!("{e:?}"))?;
    let got = JSON::stringify(&message).map_err(|e| format!("{e:?}"))?;
    let want =
        JSON::stringify(&JSON::parse(&wire::encode(&out).to_json()).map_err(|e| format!("{e:?}"))?)
            .map_err(|e| format!("{e:?}"))?;
    if got == want {
        return Err("a message without `at` compared equal".into());
    }
    Ok(())
}
