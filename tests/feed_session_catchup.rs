//! The worker's per-meter catch-up rebuild through the real path
//! (`--features feed`): the feed server runs in-process on 127.0.0.1:0 at 60×
//! across an hour rollover with its faults on (dropped, duplicated and
//! reordered deltas, disconnects, REST answers delayed out of order, a skewed
//! clock); the engine's stream v2 session subscribes to `totals` over a real
//! WebSocket and real HTTP, fetches the meter → group map from `/groups`, and
//! its `totals` snapshots ask for per-meter hours (`meters=1`). After the
//! faults stop, a non-resumable INVALID_SESSION makes the session bootstrap
//! afresh (a full per-meter catch-up); once it stands at the server's head
//! (the server paused), every meter row of every kept hour equals the
//! server's per-meter truth (`/truth?meters=1`) exactly, every group total
//! equals the sum of its members' truth, `stats.groups.rebuilds > 0`, and no
//! group is `incomplete`.
#![cfg(feature = "feed")]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::time::Duration;

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::Inbound;
use meterflow::core::Engine;
use meterflow::feed::sim::RESOURCES;
use meterflow::feed::{start, FeedConfig};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const SPEED: f64 = 60.0;
/// Two simulated minutes before an hour: the rollover comes 2 s (real) in.
const START_MS: u64 = 1_764_064_800_000 - 2 * 60_000;
/// Real time spent with the faults on (8 simulated minutes at 60×).
const FAULTY_FOR: Duration = Duration::from_millis(8_000);
/// Real time of clean streaming after the reset, before the server pauses.
const CLEAN_FOR: Duration = Duration::from_millis(1_500);
/// A bound on the whole run, so a session that never converges fails instead of hanging.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

#[path = "common/feed_page.rs"]
mod feed_page;
use feed_page::{admin, http, Page};

fn engine_config() -> Config {
    // At 60× a few ms of real scheduling jitter are seconds of simulated time,
    // and the server's clock is skewed on purpose.
    Config { max_offset_ms: 120_000.0, hello_timeout_ms: 120_000.0, ..Config::default() }
}

/// Units of an exact decimal string (3 decimals), `i64::MIN` if not one.
fn units(v: &Value) -> i64 {
    Decimal::parse(v.as_str().unwrap_or("")).and_then(|d| d.to_units(3).ok()).unwrap_or(i64::MIN)
}

/// `(group, resource, hour ms) -> units` from an encoded `groups` event
/// (`""` for unassigned), zeros left out.
type GroupTotals = BTreeMap<(String, String, u64), i64>;

fn group_totals(ev: &Value) -> GroupTotals {
    let mut t = BTreeMap::new();
    let mut all: Vec<&Value> =
        ev["groups"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    all.push(&ev["unassigned"]);
    for g in all {
        let name = g["group"].as_str().unwrap_or("?").to_string();
        for r in g["resources"].as_array().into_iter().flatten() {
            let res = r["resource"].as_str().unwrap_or("?").to_string();
            for b in r["buckets"].as_array().into_iter().flatten() {
                // Totals in events are whole resolution units (a string past 2^53).
                let u = match &b["total"] {
                    Value::Number(n) => n.as_i64().unwrap_or(i64::MIN),
                    Value::String(s) => s.parse().unwrap_or(i64::MIN),
                    _ => i64::MIN,
                };
                if u != 0 {
                    t.insert(
                        (name.clone(), res.clone(), b["hour"].as_f64().unwrap_or(0.0) as u64),
                        u,
                    );
                }
            }
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_meter_catch_up_rebuilds_every_row_and_group_exactly_after_faults() {
    let cfg = FeedConfig {
        meters: 300,
        seed: 31,
        speed: SPEED,
        start_ms: Some(START_MS),
        epoch: 4,
        ring_frames: 8_192,
        heartbeat_interval_ms: 120_000,
        groups: 4,
        ..FeedConfig::default()
    };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let (status, groups) = http(server.addr, "GET", "/groups", "").await;
    assert_eq!(status, 200, "{groups}");
    let groups: Value = serde_json::from_str(&groups).expect("groups json");
    // Meter id -> the groups it belongs to.
    let mut member_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, ids) in groups["groups"].as_object().into_iter().flatten() {
        for id in ids.as_array().into_iter().flatten() {
            member_of.entry(id.as_str().unwrap_or("").to_string()).or_default().push(g.clone());
        }
    }
    assert!(member_of.len() >= 100, "a map over the meters: {groups}");
    let subscribed = vec!["totals".to_string()];

    admin(
        &server,
        json!({"dropPct": 3.0, "duplicatePct": 3.0, "reorderWindow": 4, "disconnectEveryMs": 1_500,
            "restDelayMs": 150, "restOutOfOrder": true, "clockSkewMs": 1_500}),
    )
    .await;

    let (fetched_tx, mut fetched) = mpsc::unbounded_channel();
    let mut page = Page::new(Engine::new(engine_config()).expect("engine"), server, fetched_tx);
    let outs = page.post(json!({"type": "session", "op": "start", "channels": subscribed}));
    page.run(outs).await;
    let mut timer = tokio::time::interval(Duration::from_millis(10));
    let real_start = tokio::time::Instant::now();
    while real_start.elapsed() < FAULTY_FOR {
        page.step(&mut fetched, &mut timer).await;
    }
    let faulty = page.engine.session().counters();

    // Faults off; the session is forgotten: it bootstraps with a full
    // per-meter catch-up; a little clean streaming, then the server pauses.
    admin(&page.server, json!({"reset": true})).await;
    admin(&page.server, json!({"invalidSession": {"resumable": false}})).await;
    let clean_start = tokio::time::Instant::now();
    while clean_start.elapsed() < CLEAN_FOR {
        page.step(&mut fetched, &mut timer).await;
    }
    page.server.set_paused(true);
    let pause_start = tokio::time::Instant::now();
    while pause_start.elapsed() < Duration::from_millis(200) {
        page.step(&mut fetched, &mut timer).await;
    }
    let (status, truth) = http(page.server.addr, "GET", "/truth?meters=1", "").await;
    assert_eq!(status, 200, "{truth}");
    let truth: Value = serde_json::from_str(&truth).expect("truth json");
    let heads: BTreeMap<String, (u64, u64)> = subscribed
        .iter()
        .map(|c| {
            let t = &truth["channels"][c.as_str()];
            (c.clone(), (t["epoch"].as_u64().unwrap_or(0), t["seq"].as_u64().unwrap_or(0)))
        })
        .collect();
    while !page.at(&heads) {
        assert!(
            real_start.elapsed() < GIVE_UP_AFTER,
            "no convergence to {heads:?}: {:?}",
            page.engine.session().channels()
        );
        page.step(&mut fetched, &mut timer).await;
    }
    let outs = page.timer();
    page.run(outs).await;
    assert!(page.errors.is_empty(), "{:?}", page.errors);
    assert!(faulty.gaps >= 1, "dropped deltas were found as gaps: {faulty:?}");
    assert!(faulty.duplicates >= 1, "duplicates were seen and ignored: {faulty:?}");

    // The server's per-meter truth: (meter, hour) -> units.
    let mut meter_truth: BTreeMap<(String, u64), i64> = BTreeMap::new();
    let truth_hours: Vec<u64> = truth["meterHours"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let hour = h["hour"].as_u64().unwrap_or(0);
            for (id, t) in h["meters"].as_object().into_iter().flatten() {
                meter_truth.insert((id.clone(), hour), units(t));
            }
            hour
        })
        .collect();
    assert!(truth_hours.len() >= 2, "an hour rollover: {truth_hours:?}");
    // Per-meter truth sums to the resource totals of `/truth`.
    let resource_of: BTreeMap<&str, &str> = page
        .server
        .shared()
        .meters
        .iter()
        .map(|m| (m.id.as_str(), RESOURCES.get(m.resource).map_or("", |x| x.0)))
        .collect();
    for r in truth["resources"].as_array().expect("resources") {
        for b in r["buckets"].as_array().into_iter().flatten() {
            let hour = b["hour"].as_u64().unwrap_or(0);
            if truth_hours.contains(&hour) {
                let name = r["resource"].as_str().unwrap_or("");
                let sum: i64 = meter_truth
                    .iter()
                    .filter(|((id, h), _)| {
                        *h == hour && resource_of.get(id.as_str()) == Some(&name)
                    })
                    .map(|(_, u)| u)
                    .sum();
                assert_eq!(sum, units(&b["total"]), "{name} hour {hour}: per-meter truth");
            }
        }
    }

    // Every meter row of every kept hour the server lists per meter.
    let resources: Vec<String> =
        page.engine.config().resources.iter().map(|r| r.name.clone()).collect();
    let mh = page.engine.ledger().meter_hours();
    let mut rows_compared = 0;
    let mut want_groups: GroupTotals = BTreeMap::new();
    for spec in page.server.shared().meters.iter() {
        let res = RESOURCES.get(spec.resource).map_or("", |x| x.0);
        let r = resources.iter().position(|x| x == res).expect("resource configured");
        for &hour in &truth_hours {
            let want = meter_truth.get(&(spec.id.clone(), hour)).copied().unwrap_or(0);
            let h = (hour / 3_600_000) as i64;
            let got = match (page.engine.meter_index(&spec.id), mh.column(r, h)) {
                (Some(m), Some(col)) => mh.at(m as usize, col),
                _ => 0,
            };
            assert_eq!(got, want, "meter {} {res} hour {hour}: row", spec.id);
            rows_compared += 1;
            if want != 0 {
                let gs = member_of.get(&spec.id).cloned().unwrap_or_else(|| vec![String::new()]);
                for g in gs {
                    *want_groups.entry((g, res.to_string(), hour)).or_default() += want;
                }
            }
        }
    }
    assert!(rows_compared >= 600, "{rows_compared} rows");

    // Every group total, and none incomplete.
    let outs = page.handle(Inbound::Flush);
    page.run(outs).await;
    let ev = page.last_groups.clone().expect("a groups event");
    let got = group_totals(&ev);
    let kept: Vec<u64> = truth_hours.clone();
    let got: GroupTotals = got.into_iter().filter(|((_, _, h), _)| kept.contains(h)).collect();
    assert_eq!(got, want_groups, "group totals against the per-meter truth");
    let mut all: Vec<&Value> =
        ev["groups"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    assert!(all.len() >= 4, "every group: {ev}");
    all.push(&ev["unassigned"]);
    eprintln!(
        "completeFrom {} currentHour {} truth hours {truth_hours:?} stats.groups {}",
        ev["completeFrom"],
        ev["currentHour"],
        page.stats()["groups"]
    );
    for g in all {
        assert_eq!(g["incomplete"].as_bool(), Some(false), "{g}");
    }
    let stats = page.stats();
    let rebuilds = stats["groups"]["rebuilds"].as_u64().unwrap_or(0);
    eprintln!(
        "{} connects, {} fetches, faulty phase {faulty:?}, rebuilds {rebuilds}, refused {}, {:?} real",
        page.connects,
        page.fetches,
        stats["groups"]["rebuildsRefused"],
        real_start.elapsed()
    );
    assert!(rebuilds > 0, "a per-meter catch-up rebuilt the rows: {}", stats["groups"]);
    tokio::time::timeout(Duration::from_secs(10), page.server.shutdown())
        .await
        .expect("shutdown hangs")
        .expect("server error");
}
