#![cfg(not(target_arch = "wasm32"))]
//! Outbound wire shapes: the exact JSON text of every `Outbound` variant.

use meterflow::core::error::{CoreError, ErrorCode};
use meterflow::core::event::{
    AnomalyEvent, AnomalyKind, BucketTotal, ClearedEvent, FetchReason, FetchRequest,
    LedgerCounters, MemoryBytes, MeterSnapshot, Outbound, ResourceTotals, Severity, StatsEvent,
    TotalsEvent, WarningEvent,
};
use meterflow::core::hlc::Hlc;
use meterflow::wire::encode;

fn check(out: Outbound, expected: &str) {
    let text = serde_json::to_string(&encode(&out)).unwrap();
    assert_eq!(text, expected);
}

#[test]
fn anomaly_cleared_warning_error() {
    check(
        Outbound::Anomaly(AnomalyEvent {
            meter: "pump-17".into(),
            kind: AnomalyKind::Spike,
            severity: Severity::Critical,
            z: 9.5,
            value: 120.0,
            mean: 100.0,
            std: 2.0,
            ts: 1764064800000.0,
            evaluations: 3,
            score: 0.75,
        }),
        r#"{"type":"anomaly","v":1,"meter":"pump-17","kind":"spike","severity":"critical","z":9.5,"value":120.0,"mean":100.0,"std":2.0,"ts":1764064800000.0,"evaluations":3,"score":0.75}"#,
    );
    check(
        Outbound::Cleared(ClearedEvent { meter: "m".into(), kind: AnomalyKind::Silent, at: 5.0 }),
        r#"{"type":"cleared","v":1,"meter":"m","kind":"silent","at":5.0}"#,
    );
    check(
        Outbound::Warning(WarningEvent {
            code: meterflow::core::error::WarningCode::MemoryCeiling,
            message: "halved".into(),
            count: None,
        }),
        r#"{"type":"warning","v":1,"code":"memory_ceiling","message":"halved"}"#,
    );
    check(
        Outbound::Error(CoreError::at(ErrorCode::BadValue, 4, "readings[4].value: out of range")),
        r#"{"type":"error","v":1,"code":"bad_value","message":"readings[4].value: out of range","position":4}"#,
    );
    check(
        Outbound::Error(CoreError::new(ErrorCode::MalformedJson, "x")),
        r#"{"type":"error","v":1,"code":"malformed_json","message":"x"}"#,
    );
}

#[test]
fn stats_window_meter() {
    check(
        Outbound::Stats(StatsEvent {
            meters: 2,
            window: 1200,
            linear_memory_bytes: 65536.0,
            engine_bytes: 1000.0,
            readings_ingested: 10.0,
            readings_rejected: 1.0,
            evaluations: 4.0,
            last_tick_eval_ms: 0.25,
            active_alerts: 1,
            stream: None,
            groups: None,
            series: None,
            memory: Box::new(MemoryBytes {
                windows: 600,
                rows: 300,
                fixed: 100,
                ..Default::default()
            }),
        }),
        r#"{"type":"stats","v":1,"meters":2,"window":1200,"linearMemoryBytes":65536.0,"engineBytes":1000.0,"readingsIngested":10.0,"readingsRejected":1.0,"evaluations":4.0,"lastTickEvalMs":0.25,"activeAlerts":1,"memory":{"windows":600,"detector":0,"meterIds":0,"keys":0,"ledger":0,"dedup":0,"rows":300,"changeLog":0,"rowLog":0,"series":0,"seriesCache":0,"groups":0,"stream":0,"fixed":100}}"#,
    );
    check(
        Outbound::Window { meter: "m".into(), values: vec![1.0, 2.5] },
        r#"{"type":"window","v":1,"meter":"m","values":[1.0,2.5]}"#,
    );
    check(
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
        r#"{"type":"meter","v":1,"meter":"m","count":3,"mean":2.0,"variance":1.0,"skewness":0.0,"excessKurtosis":-1.5,"lastTs":9.0,"alerts":["drift","stuck"],"score":0.5}"#,
    );
}

#[test]
fn totals_send_hlcs_as_parts_and_big_totals_as_strings() {
    let as_of = Hlc { wall_ms: 1764064860000, counter: 12 };
    let max_safe = (1i64 << 53) - 1;
    check(
        Outbound::Totals(TotalsEvent {
            frames: 3,
            hlc: Hlc { wall_ms: 1764064860250, counter: 0 },
            node: 1,
            as_of: Some(as_of),
            incomplete: false,
            current_hour_ms: 1764064800000.0,
            resources: vec![ResourceTotals {
                resource: "water".into(),
                unit: "m3".into(),
                decimals: 3,
                total: max_safe + 1,
                current_hour: max_safe,
                buckets: vec![
                    BucketTotal {
                        hour_ms: 1764043200000.0,
                        total: -max_safe - 1,
                        as_of: Some(as_of),
                    },
                    BucketTotal { hour_ms: 1764046800000.0, total: 4567, as_of: None },
                ],
            }],
            counters: LedgerCounters { duplicates: 2, late: u64::MAX, ..Default::default() },
        }),
        concat!(
            r#"{"type":"totals","v":1,"hlc":{"wallMs":1764064860250,"counter":0},"node":1,"#,
            r#""asOf":{"wallMs":1764064860000,"counter":12},"incomplete":false,"currentHour":1764064800000.0,"#,
            r#""resources":[{"resource":"water","unit":"m3","decimals":3,"total":"9007199254740992","currentHour":9007199254740991,"#,
            r#""buckets":[{"hour":1764043200000.0,"total":"-9007199254740992","asOf":{"wallMs":1764064860000,"counter":12}},"#,
            r#"{"hour":1764046800000.0,"total":4567,"asOf":null}]}],"#,
            r#""counters":{"livePending":0,"liveCounted":0,"duplicates":2,"covered":0,"unverifiable":0,"#,
            r#""overflow":0,"late":"18446744073709551615","restApplied":0,"staleRest":0,"refusedRest":0,"refusedClocks":0,"#,
            r#""clockRegressions":0,"gaps":0,"fetches":0,"catchupPages":0},"frames":3}"#
        ),
    );
}

#[test]
fn fetch_with_and_without_min_as_of() {
    check(
        Outbound::Fetch(FetchRequest {
            reason: FetchReason::PendingLimit,
            min_as_of: Some(Hlc { wall_ms: 7, counter: 1 }),
            from_hour_ms: 3600000.0,
            to_hour_ms: None,
        }),
        r#"{"type":"fetch","v":1,"reason":"pending_limit","minAsOf":{"wallMs":7,"counter":1},"fromHour":3600000.0,"path":"/catchup?from=3600000&meters=1"}"#,
    );
    check(
        Outbound::Fetch(FetchRequest {
            reason: FetchReason::Startup,
            min_as_of: None,
            from_hour_ms: 0.0,
            to_hour_ms: None,
        }),
        r#"{"type":"fetch","v":1,"reason":"startup","minAsOf":null,"fromHour":0.0,"path":"/catchup?from=0&meters=1"}"#,
    );
    check(
        Outbound::Fetch(FetchRequest {
            reason: FetchReason::Page,
            min_as_of: None,
            from_hour_ms: 0.0,
            to_hour_ms: Some(7_200_000.0),
        }),
        r#"{"type":"fetch","v":1,"reason":"page","minAsOf":null,"fromHour":0.0,"toHour":7200000.0,"path":"/catchup?from=0&meters=1&to=7200000"}"#,
    );
}
