//! The engine's stream v2 session against the real feed server **with its
//! faults on** (`--features feed`): the server runs in-process on
//! 127.0.0.1:0 at 60× across an hour rollover, with dropped, duplicated and
//! reordered deltas, a disconnect every second (real), REST answers delayed at
//! random (so they come back out of order), a skewed server clock and, midway,
//! a non-resumable INVALID_SESSION, all set through `POST /admin/faults`. This test is the page transport: it runs every
//! `connect`/`send`/`close`/`fetch` the engine posts over a real WebSocket and
//! real HTTP (fetches concurrently, so out-of-order answers reach the engine
//! out of order), posts back what arrives as page messages through
//! `wire::decode_message` (the same decoder the worker runs), and renders the
//! engine's `meters`/`notices` messages into a page-side model.
//!
//! Subscribed: `totals`, `notices` and two `meters.<group>` channels. After the
//! faulty phase the faults are reset, a RECONNECT makes the session resume, the
//! server pauses, and once every channel stands at the server's head the test
//! checks exact equality: totals per resource and hour against `/truth`, and
//! the engine's stores and the page's model against the server's read model
//! (its full `/snapshot-v2` of each channel, served from the paused model).
#![cfg(feature = "feed")]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::time::Duration;

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Inbound, Outbound, Query};
use meterflow::core::Engine;
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
use feed_page::{admin, http, notice, row, Page, Row};

/// `binary_deltas`: ask for `meters.<group>` DELTAs as binary kind-4 frames.
fn engine_config(binary_deltas: bool) -> Config {
    // At 60× a few ms of real scheduling jitter are seconds of simulated time,
    // and the server's clock is skewed on purpose.
    Config {
        max_offset_ms: 120_000.0,
        hello_timeout_ms: 120_000.0,
        binary_deltas,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_session_reaches_the_truth_through_the_servers_faults() {
    reaches_the_truth(false).await;
}

/// The same with binary kind-4 DELTAs on the `meters.<group>` channels
/// (negotiated in IDENTIFY/RESUME): the same exact equality at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_delta_client_reaches_the_truth_through_the_servers_faults() {
    reaches_the_truth(true).await;
}

async fn reaches_the_truth(binary_deltas: bool) {
    let cfg = FeedConfig {
        meters: 400,
        seed: 23,
        speed: SPEED,
        start_ms: Some(START_MS),
        epoch: 6,
        ring_frames: 8_192,
        delta_ring: 4_096,
        // 2 simulated minutes = 2 s real between heartbeats: each ACK names
        // what was sent, so a lost tail is found within one interval.
        heartbeat_interval_ms: 120_000,
        ..FeedConfig::default()
    };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let (status, groups) = http(server.addr, "GET", "/groups", "").await;
    assert_eq!(status, 200, "{groups}");
    let groups: Value = serde_json::from_str(&groups).expect("groups json");
    let mut names: Vec<String> =
        groups["groups"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    names.sort();
    assert!(names.len() >= 2, "two groups at least: {groups}");
    let subscribed: Vec<String> = ["totals".to_string(), "notices".to_string()]
        .into_iter()
        .chain(names.iter().take(2).map(|g| format!("meters.{g}")))
        .collect();

    admin(
        &server,
        json!({"dropPct": 3.0, "duplicatePct": 3.0, "reorderWindow": 4, "disconnectEveryMs": 1_000,
            "restDelayMs": 150, "restOutOfOrder": true, "clockSkewMs": 1_500}),
    )
    .await;

    let (fetched_tx, mut fetched) = mpsc::unbounded_channel();
    let mut page =
        Page::new(Engine::new(engine_config(binary_deltas)).expect("engine"), server, fetched_tx);
    let outs = page.post(json!({"type": "session", "op": "start", "channels": subscribed}));
    page.run(outs).await;
    let mut timer = tokio::time::interval(Duration::from_millis(10));
    let real_start = tokio::time::Instant::now();
    let mut invalidated = false;
    while real_start.elapsed() < FAULTY_FOR {
        if !invalidated && real_start.elapsed() >= FAULTY_FOR / 2 {
            // Midway the server forgets the session: every channel bootstraps afresh.
            invalidated = true;
            admin(&page.server, json!({"invalidSession": {"resumable": false}})).await;
        }
        page.step(&mut fetched, &mut timer).await;
    }
    let faulty = page.engine.session().counters();
    let connects_faulty = page.connects;

    // Faults off; RECONNECT: the session resumes and the server replays what
    // it dropped; a little clean streaming, then the server pauses.
    admin(&page.server, json!({"reset": true})).await;
    admin(&page.server, json!({"reconnect": true})).await;
    let clean_start = tokio::time::Instant::now();
    while clean_start.elapsed() < CLEAN_FOR {
        page.step(&mut fetched, &mut timer).await;
    }
    page.server.set_paused(true);
    // A wake-up of the writer in progress finishes its ticks first (the page
    // keeps running meanwhile).
    let pause_start = tokio::time::Instant::now();
    while pause_start.elapsed() < Duration::from_millis(200) {
        page.step(&mut fetched, &mut timer).await;
    }
    let (status, truth) = http(page.server.addr, "GET", "/truth", "").await;
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
    // The last updates reach the page.
    let outs = page.timer();
    page.run(outs).await;

    // The faults were met, not dodged.
    assert!(
        truth["resources"][0]["buckets"].as_array().map_or(0, Vec::len) >= 2,
        "an hour rollover"
    );
    assert!(connects_faulty >= 3, "disconnected and reconnected: {connects_faulty}");
    assert!(faulty.gaps >= 1, "dropped deltas were found as gaps: {faulty:?}");
    assert!(faulty.duplicates >= 1, "duplicates were seen and ignored: {faulty:?}");
    let counters = page.engine.session().counters();
    assert!(counters.resumes_ok >= 2, "the session resumed: {counters:?}");
    assert!(page.errors.is_empty(), "{:?}", page.errors);
    // Binary DELTAs came exactly when asked for.
    assert_eq!(page.binary_messages > 100, binary_deltas, "{} binary", page.binary_messages);

    // Totals: exact per resource and hour.
    let totals = page
        .handle(Inbound::Query(Query::Totals))
        .into_iter()
        .find_map(|o| if let Outbound::Totals(t) = o { Some(t) } else { None })
        .expect("totals");
    let mut compared = 0;
    for r in truth["resources"].as_array().expect("resources") {
        let name = r["resource"].as_str().expect("name");
        let mine = totals.resources.iter().find(|x| x.resource == name).expect("resource");
        let want: BTreeMap<i64, i64> = r["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                let units = Decimal::parse(b["total"].as_str().unwrap_or(""))
                    .and_then(|d| d.to_units(3).ok())
                    .expect("exact total");
                (b["hour"].as_f64().unwrap_or(0.0) as i64, units)
            })
            .filter(|(_, u)| *u != 0)
            .collect();
        let got: BTreeMap<i64, i64> = mine
            .buckets
            .iter()
            .filter(|b| b.total != 0)
            .map(|b| (b.hour_ms as i64, b.total))
            .collect();
        assert_eq!(got, want, "{name}: hourly totals");
        compared += want.len();
    }
    assert!(compared >= 6, "two hours of three resources: {compared}");

    // The meters channels: the engine's store and the page's model both equal
    // the server's read model.
    for c in subscribed.iter().filter(|c| c.starts_with("meters.")) {
        let (status, snap) =
            http(page.server.addr, "GET", &format!("/snapshot-v2?channel={c}"), "").await;
        assert_eq!(status, 200, "{snap}");
        let snap: Value = serde_json::from_str(&snap).expect("snapshot json");
        assert_eq!(
            Some((snap["epoch"].as_u64().unwrap_or(0), snap["snapshot_seq"].as_u64().unwrap_or(0))),
            heads.get(c).copied()
        );
        let want: BTreeMap<String, Row> = snap["meters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let r = row(m);
                (r.0.clone(), r)
            })
            .collect();
        assert!(want.len() >= 20, "{c}: {} meters", want.len());
        let engine: BTreeMap<String, Row> = page
            .engine
            .meter_store()
            .rows(c)
            .into_iter()
            .map(|r| {
                let v = json!({"meter": r.meter, "resource": r.resource, "ts": r.ts, "value": r.value,
                    "status": r.status.as_str(), "count": r.count,
                    "total": meterflow::core::decimal::format_units(r.total.mantissa, r.total.scale)});
                (r.meter.clone(), row(&v))
            })
            .collect();
        assert_eq!(engine, want, "{c}: the engine's store");
        assert_eq!(page.rows.get(c), Some(&want), "{c}: the page's rows");
    }

    // Notices: at least the maintenance notice of the new hour.
    let (status, snap) = http(page.server.addr, "GET", "/snapshot-v2?channel=notices", "").await;
    assert_eq!(status, 200, "{snap}");
    let snap: Value = serde_json::from_str(&snap).expect("snapshot json");
    let want: BTreeMap<String, String> = snap["notices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| (n["id"].as_str().unwrap_or("").to_string(), notice(n)))
        .collect();
    assert!(!want.is_empty(), "a notice at the rollover: {snap}");
    let engine: BTreeMap<String, String> = page
        .engine
        .notice_store()
        .notices()
        .into_iter()
        .map(|n| {
            let v = json!({"id": n.id, "severity": n.severity.as_str(), "title": n.title,
                "text": n.text, "fromMs": n.from_ms, "toMs": n.to_ms});
            (n.id.clone(), notice(&v))
        })
        .collect();
    assert_eq!(engine, want, "notices: the engine's store");
    assert_eq!(page.notices, want, "notices: the page's model");

    eprintln!(
        "{} connects, {} fetches, faulty phase {faulty:?}, at the end {counters:?}, {:?} real",
        page.connects,
        page.fetches,
        real_start.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(10), page.server.shutdown())
        .await
        .expect("shutdown hangs")
        .expect("server error");
}
