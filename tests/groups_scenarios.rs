#![cfg(not(target_arch = "wasm32"))]
//! Meter groups, one scenario per rule, every message through the wire: the
//! refresh life cycle (failures counted in a row, the map kept, bounds named,
//! stats), live readings a REST watermark already covers, which the
//! resource totals take from REST but the groups must count live, and rows
//! rebuilt (or a rebuild refused) from a catch-up listing per-meter hours.

use meterflow::core::config::Config;
use meterflow::core::event::{GroupsEvent, Inbound, Outbound, Query, StreamRequest};
use meterflow::core::Engine;
use meterflow::wire::{
    decode_fetched, decode_message, decode_text, Arrival, Envelope, FetchedBody,
};

const T: f64 = 1_764_064_800_000.0 + 600_000.0;

fn started(cfg: &Config) -> Engine {
    let mut e = Engine::new(cfg.clone()).unwrap_or_default();
    let start = serde_json::json!({"type": "session", "v": 1, "op": "start"});
    e.handle(decode_message(&start, cfg), T);
    e
}

/// The `/groups` fetch a tick asks for, if any.
fn tick(e: &mut Engine, now: f64) -> (Option<u64>, Vec<Outbound>) {
    let out = e.handle(Inbound::Tick(Default::default()), now);
    let id = out.iter().find_map(|o| match o {
        Outbound::Stream(StreamRequest::Fetch { request_id, path }) if path == "/groups" => {
            Some(*request_id)
        }
        _ => None,
    });
    (id, out)
}

fn warnings(out: &[Outbound]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Warning(w) => Some(format!("{}: {}", w.code.as_str(), w.message)),
            _ => None,
        })
        .collect()
}

fn groups_event(out: &[Outbound]) -> Option<GroupsEvent> {
    out.iter().find_map(|o| match o {
        Outbound::Groups(g) => Some(g.clone()),
        _ => None,
    })
}

fn live(e: &mut Engine, cfg: &Config, text: &str, now: f64) -> Vec<Outbound> {
    let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(now) };
    e.handle(decode_text(Envelope::Live, text, arrival, cfg), now)
}

#[test]
fn a_failed_refresh_keeps_the_map_and_counts_failures_in_a_row() {
    let cfg = Config { max_groups: 2, ..Config::default() };
    let mut e = started(&cfg);
    let fetched =
        |id: u64, body: FetchedBody<'_>| decode_fetched(id, body, Arrival::default(), &cfg);

    // First map: three groups, the third past maxGroups is named; the rest applies.
    let (id, _) = tick(&mut e, T);
    let id = id.expect("a /groups fetch once the session is used");
    assert!(id >= 1 << 52);
    let map =
        r#"{"version":4,"groups":{"north":["m-1","m-2"],"tariff-a":["m-1"],"south":["m-3"]}}"#;
    let out = e.handle(fetched(id, FetchedBody::Text(map)), T + 40.0);
    let errors: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Outbound::Error(e) => Some((e.code.as_str(), e.message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "group_limit");
    assert!(errors[0].1.contains("'south'"), "{}", errors[0].1);
    assert_eq!(e.groups().map().names(), ["north", "tariff-a"]);

    // No second fetch before groupsRefreshMs.
    assert_eq!(tick(&mut e, T + 10_000.0).0, None);
    // Then: an HTTP failure, a malformed body, an unanswered fetch.
    let (id, _) = tick(&mut e, T + 30_000.0);
    let out = e.handle(fetched(id.unwrap_or(0), FetchedBody::Failed { status: 503 }), T + 30_100.0);
    let w = warnings(&out);
    assert!(
        w.len() == 1 && w[0].contains("HTTP 503") && w[0].contains("1 failure(s) in a row"),
        "{w:?}"
    );
    // Retried after fetchRetryMs (5 s), not 30 s.
    let (id, _) = tick(&mut e, T + 35_100.0);
    let out = e.handle(
        fetched(id.unwrap_or(0), FetchedBody::Text(r#"{"version":5,"groups":["#)),
        T + 35_200.0,
    );
    let w = warnings(&out);
    assert!(
        w.len() == 1
            && w[0].starts_with("groups_refresh_failed")
            && w[0].contains("2 failure(s) in a row"),
        "{w:?}"
    );
    let (id, _) = tick(&mut e, T + 40_200.0);
    assert!(id.is_some());
    let (again, out) = tick(&mut e, T + 70_200.0);
    let w = warnings(&out);
    assert!(w.len() == 1 && w[0].contains("3 failure(s) in a row"), "{w:?}");
    assert!(again.is_some(), "the schedule's next fetch goes out with the expiry");
    // The map in force never moved.
    assert_eq!(e.groups().map().version(), Some(4));
    assert_eq!(e.groups().map().names(), ["north", "tariff-a"]);
    // An answer to the expired fetch is ignored.
    let late = fetched(id.unwrap_or(0), FetchedBody::Text(r#"{"version":9,"groups":{}}"#));
    let late = e.handle(late, T + 70_300.0);
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(e.groups().map().version(), Some(4));

    // A good refresh resets the count; stats say so.
    let good = fetched(
        again.unwrap_or(0),
        FetchedBody::Text(r#"{"version":6,"groups":{"west":["m-9"]}}"#),
    );
    let out = e.handle(good, T + 70_450.0);
    assert!(warnings(&out).is_empty());
    let stats = e.handle(Inbound::Query(Query::Stats), T + 71_450.0);
    let g = stats
        .iter()
        .find_map(|o| match o {
            Outbound::Stats(s) => s.groups,
            _ => None,
        })
        .expect("stats carry groups");
    assert_eq!(g.version, Some(6));
    assert_eq!((g.groups, g.meters, g.memberships), (1, 1, 1));
    assert_eq!(g.consecutive_failures, 0);
    assert_eq!((g.refreshes, g.failures), (2, 3));
    assert_eq!(g.refresh_latency_ms, Some(250.0));
    assert_eq!(g.age_ms, Some(1_000.0));
    assert_eq!(g.row_bytes_per_meter, 3 * 8 * 8 + 24);
}

#[test]
fn covered_live_readings_count_in_their_groups_once() {
    let cfg = Config { detect_live: false, ..Config::default() };
    let mut e = started(&cfg);
    let (id, _) = tick(&mut e, T);
    let map = r#"{"version":1,"groups":{"north":["m-1"],"all":["m-1","m-2"]}}"#;
    e.handle(decode_fetched(id.unwrap_or(0), FetchedBody::Text(map), Arrival::default(), &cfg), T);
    let hello = format!(r#"{{"type":"hello","epoch":1,"nextSeq":0,"serverTime":{T}}}"#);
    live(&mut e, &cfg, &hello, T);
    let frame = |seq: u64, wall: f64, meter: &str, id: u64, amount: &str| {
        format!(
            r#"{{"type":"frame","epoch":1,"seq":{seq},"hlc":{{"wallMs":{wall},"counter":0}},"readings":[{{"meter":"{meter}","resource":"water","id":{id},"ts":{},"amount":"{amount}"}}]}}"#,
            wall - 100.0
        )
    };
    // Frame 0 counts live; frame 1 is delayed past frame 2 and a catch-up
    // whose watermark covers it.
    live(&mut e, &cfg, &frame(0, T + 1_000.0, "m-1", 1, "1.000"), T + 1_000.0);
    live(&mut e, &cfg, &frame(2, T + 12_000.0, "m-2", 1, "4.000"), T + 12_000.0);
    let hour = (T / 3_600_000.0).floor() * 3_600_000.0;
    let catchup = format!(
        r#"{{"type":"catchup","asOf":{{"wallMs":{},"counter":0}},"serverTime":{},"from":{},"to":{hour},"buckets":[{{"resource":"water","hour":{hour},"total":"3.000"}}]}}"#,
        T + 10_000.0,
        T + 12_500.0,
        hour - 6.0 * 3_600_000.0
    );
    let arrival = Arrival { sent_at_ms: Some(T + 12_400.0), received_at_ms: Some(T + 12_600.0) };
    let out = e.handle(decode_text(Envelope::Catchup, &catchup, arrival, &cfg), T + 12_600.0);
    assert!(!out.iter().any(|o| matches!(o, Outbound::Error(_))), "{out:?}");
    let b = frame(1, T + 5_000.0, "m-1", 2, "2.000");
    live(&mut e, &cfg, &b, T + 13_000.0);
    live(&mut e, &cfg, &b, T + 13_100.0); // a duplicate
    let ev = groups_event(&e.handle(Inbound::Flush, T + 13_200.0)).expect("a groups event");
    let water = |g: &meterflow::core::event::GroupTotals| {
        g.resources.iter().find(|r| r.resource == "water").map(|r| r.current_hour)
    };
    let by_name = |n: &str| ev.groups.iter().find(|g| g.group == n);
    assert_eq!(by_name("north").and_then(water), Some(3_000), "1.000 live + 2.000 covered");
    assert_eq!(by_name("all").and_then(water), Some(7_000));
    assert_eq!(water(&ev.unassigned), Some(0));
    assert_eq!(by_name("all").map(|g| g.meters), Some(2));
    // Readings received over the last minute / 60, each (meter, id) once.
    assert_eq!(by_name("all").map(|g| g.readings_per_sec), Some(3.0 / 60.0));
    assert_eq!(by_name("north").map(|g| g.readings_per_sec), Some(2.0 / 60.0));
    // The gap (frame 2 before frame 1) and the stream's start leave this hour incomplete.
    assert!(ev.groups.iter().all(|g| g.incomplete));
    assert_eq!(ev.complete_from_ms, Some(hour + 3_600_000.0));

    // A full reset forgets the readings and meters, not the map: m-2's next
    // reading (interned first now) lands in its groups.
    let reset = serde_json::json!({"type": "reset", "v": 1});
    e.handle(decode_message(&reset, &cfg), T + 14_000.0);
    live(&mut e, &cfg, &frame(3, T + 15_000.0, "m-2", 2, "0.500"), T + 15_000.0);
    let ev = groups_event(&e.handle(Inbound::Flush, T + 15_100.0)).expect("a groups event");
    let by_name = |n: &str| ev.groups.iter().find(|g| g.group == n);
    assert_eq!(ev.version, Some(1));
    assert_eq!(by_name("all").and_then(water), Some(500));
    assert_eq!(by_name("north").and_then(water), Some(0));
    assert_eq!(by_name("all").map(|g| g.meters), Some(1));
}

#[test]
fn active_alerts_count_in_each_group_of_their_meter() {
    let cfg = Config::default();
    let mut e = started(&cfg);
    let (id, _) = tick(&mut e, T);
    let map = r#"{"version":1,"groups":{"north":["m-1"],"all":["m-1","m-2"]}}"#;
    e.handle(decode_fetched(id.unwrap_or(0), FetchedBody::Text(map), Arrival::default(), &cfg), T);
    // 200 steady readings per meter, then a spike on m-1 only.
    let mut items = Vec::new();
    for i in 0..200 {
        for m in ["m-1", "m-2", "m-3"] {
            let v = 10.0 + f64::from(i % 7) * 0.1;
            items.push(format!(
                r#"{{"meter":"{m}","ts":{},"value":{v}}}"#,
                T - 200_000.0 + f64::from(i) * 1_000.0
            ));
        }
    }
    let text = format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(","));
    e.handle(decode_text(Envelope::Readings, &text, Arrival::default(), &cfg), T);
    e.handle(Inbound::Tick(Default::default()), T + 500.0);
    // A spike on m-1 over three evaluations (one reading per tick).
    let mut said = Vec::new();
    for k in 0..3 {
        let ts = T + 1_000.0 * f64::from(k + 1);
        let text = format!(
            r#"{{"type":"readings","readings":[{{"meter":"m-1","ts":{ts},"value":500}}]}}"#
        );
        e.handle(decode_text(Envelope::Readings, &text, Arrival::default(), &cfg), ts);
        said.extend(e.handle(Inbound::Tick(Default::default()), ts + 500.0));
    }
    assert!(said.iter().any(|o| matches!(o, Outbound::Anomaly(a) if a.meter == "m-1")), "{said:?}");
    let ev = groups_event(&e.handle(Inbound::Flush, T + 4_000.0)).expect("a groups event");
    let alerts = |n: &str| ev.groups.iter().find(|g| g.group == n).map(|g| g.active_alerts);
    assert_eq!(alerts("north"), Some(1));
    assert_eq!(alerts("all"), Some(1));
    assert_eq!(ev.unassigned.active_alerts, 0);
    assert_eq!(ev.unassigned.meters, 1, "m-3");
}

/// A catch-up listing per-meter hours at watermark `wall`, answered at
/// server time `now`: `(meter, amount)` water items of this hour.
fn per_meter_catchup(wall: f64, now: f64, items: &[(&str, &str)]) -> String {
    let hour = (T / 3_600_000.0).floor() * 3_600_000.0;
    let buckets: Vec<String> = items
        .iter()
        .map(|(m, a)| {
            format!(r#"{{"meter":"{m}","resource":"water","hour":{hour},"total":"{a}"}}"#)
        })
        .collect();
    format!(
        r#"{{"type":"catchup","asOf":{{"wallMs":{wall},"counter":0}},"serverTime":{now},"from":{},"to":{hour},"buckets":[{}]}}"#,
        hour - 6.0 * 3_600_000.0,
        buckets.join(",")
    )
}

#[test]
fn a_per_meter_catchup_rebuilds_rows_exactly_or_refuses_and_stays_incomplete() {
    let cfg = Config { detect_live: false, ..Config::default() };
    let mut e = started(&cfg);
    let (id, _) = tick(&mut e, T);
    let map = r#"{"version":1,"groups":{"north":["m-1"],"south":["m-2","m-3"]}}"#;
    e.handle(decode_fetched(id.unwrap_or(0), FetchedBody::Text(map), Arrival::default(), &cfg), T);
    let hello = format!(r#"{{"type":"hello","epoch":1,"nextSeq":0,"serverTime":{T}}}"#);
    live(&mut e, &cfg, &hello, T);
    let frame = |seq: u64, wall: f64, meter: &str, id: u64, amount: &str| {
        format!(
            r#"{{"type":"frame","epoch":1,"seq":{seq},"hlc":{{"wallMs":{wall},"counter":0}},"readings":[{{"meter":"{meter}","resource":"water","id":{id},"ts":{},"amount":"{amount}"}}]}}"#,
            wall - 100.0
        )
    };
    let catchup = |e: &mut Engine, text: &str, now: f64| {
        let arrival = Arrival { sent_at_ms: Some(now - 50.0), received_at_ms: Some(now) };
        e.handle(decode_text(Envelope::Catchup, text, arrival, &cfg), now)
    };
    let water = |g: &meterflow::core::event::GroupTotals| {
        g.resources.iter().find(|r| r.resource == "water").map(|r| r.current_hour)
    };
    let hour = (T / 3_600_000.0).floor() * 3_600_000.0;
    // Frame 1 (m-2's 2.000) is dropped: a gap; frame 3 comes after the watermark.
    live(&mut e, &cfg, &frame(0, T + 1_000.0, "m-1", 1, "1.000"), T + 1_000.0);
    let dropped = frame(1, T + 3_000.0, "m-2", 1, "2.000");
    live(&mut e, &cfg, &frame(2, T + 5_000.0, "m-1", 2, "0.500"), T + 5_000.0);
    live(&mut e, &cfg, &frame(3, T + 12_000.0, "m-3", 1, "0.250"), T + 12_000.0);
    let ev = groups_event(&e.handle(Inbound::Flush, T + 12_100.0)).expect("a groups event");
    assert!(ev.groups.iter().all(|g| g.incomplete));
    let south = |ev: &GroupsEvent| ev.groups.iter().find(|g| g.group == "south").and_then(water);
    assert_eq!(south(&ev), Some(250), "m-2's reading was dropped");

    // Per meter at T + 10 s: m-1 1.500, m-2 2.000, m-4 (never seen live) 7.000;
    // m-3 not listed (nothing before the watermark). Rows = value + m-3's 0.250.
    let body = per_meter_catchup(
        T + 10_000.0,
        T + 12_500.0,
        &[("m-1", "1.500"), ("m-2", "2.000"), ("m-4", "7.000")],
    );
    let out = catchup(&mut e, &body, T + 12_500.0);
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    let ev = groups_event(&e.handle(Inbound::Flush, T + 12_600.0)).expect("a groups event");
    let north = |ev: &GroupsEvent| ev.groups.iter().find(|g| g.group == "north").and_then(water);
    assert_eq!(north(&ev), Some(1_500));
    assert_eq!(south(&ev), Some(2_250));
    assert_eq!(water(&ev.unassigned), Some(7_000), "m-4 tracked through the catch-up");
    assert!(ev.groups.iter().all(|g| !g.incomplete), "{ev:?}");
    assert!(ev.complete_from_ms.is_some_and(|c| c <= hour - 6.0 * 3_600_000.0));
    // The dropped frame arrives late, covered by the watermark: not counted twice.
    live(&mut e, &cfg, &dropped, T + 13_000.0);
    let out = e.handle(Inbound::Flush, T + 13_100.0);
    assert!(groups_event(&out).is_none_or(|ev| south(&ev) == Some(2_250)));
    let stats = |e: &mut Engine, now: f64| {
        e.handle(Inbound::Query(Query::Stats), now)
            .iter()
            .find_map(|o| match o {
                Outbound::Stats(s) => s.groups.map(|g| (g, s.series.map(|x| x.max_pairs))),
                _ => None,
            })
            .expect("stats carry groups")
    };
    let (g, max_pairs) = stats(&mut e, T + 13_200.0);
    assert_eq!((g.rebuilds, g.rebuilds_refused, g.row_log, g.row_log_cap), (1, 0, 1, 65_536));
    assert_eq!(max_pairs, Some(15_000));

    // A log of one reading; frame 4 (m-1's 0.100 at T + 15 s) is dropped, and
    // frames 5 to 7 come after the gap. The log forgets frames 5 and 6, so
    // a catch-up at T + 20.5 s (before frame 6) cannot rebuild.
    let patch = serde_json::json!({"type": "config", "config": {"maxRowLogReadings": 1}});
    e.handle(decode_message(&patch, &cfg), T + 14_000.0);
    for (seq, wall) in [(5, T + 20_000.0), (6, T + 21_000.0), (7, T + 22_000.0)] {
        live(&mut e, &cfg, &frame(seq, wall, "m-1", seq, "1.000"), wall);
    }
    let body = per_meter_catchup(
        T + 20_500.0,
        T + 22_500.0,
        &[("m-1", "2.600"), ("m-2", "2.000"), ("m-3", "0.250"), ("m-4", "7.000")],
    );
    let out = catchup(&mut e, &body, T + 22_500.0);
    let w = warnings(&out);
    assert!(w.len() == 1 && w[0].starts_with("rebuild_refused"), "{w:?}");
    let ev = groups_event(&e.handle(Inbound::Flush, T + 22_600.0)).expect("a groups event");
    assert!(ev.groups.iter().all(|g| g.incomplete), "frame 4 is missing: {ev:?}");
    assert_eq!(north(&ev), Some(4_500), "rows as they were: 1.500 + 3 × 1.000");
    let (g, _) = stats(&mut e, T + 22_700.0);
    assert_eq!((g.rebuilds, g.rebuilds_refused, g.row_log_cap), (1, 1, 1));

    // A catch-up past every forgotten reading rebuilds, exactly, and completes.
    let body = per_meter_catchup(
        T + 22_500.0,
        T + 23_500.0,
        &[("m-1", "4.600"), ("m-2", "2.000"), ("m-3", "0.250"), ("m-4", "7.000")],
    );
    let out = catchup(&mut e, &body, T + 23_500.0);
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    let ev = groups_event(&e.handle(Inbound::Flush, T + 23_600.0)).expect("a groups event");
    assert_eq!(north(&ev), Some(4_600), "frame 4 is in the catch-up");
    assert!(ev.groups.iter().all(|g| !g.incomplete), "{ev:?}");
}
