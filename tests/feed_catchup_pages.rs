#![cfg(feature = "feed")]
//! Catch-up paging at 50,000 meters (docs/LEDGER.md, "At 50,000 meters"):
//! the feed's `--catchup-meter-entries` cap lists three of the seven kept
//! hours per meter in one catch-up, so the ledger asks the older hours page
//! by page (`fetch` reason `page`, `&to=`). Each request the engine makes is
//! answered by the feed's own `/catchup` query handling (`catchup_view`: the
//! parameters as the server parses them, the read model's page) and binary
//! encoder, decoded by the worker's decoder and handled by the engine. At the
//! end every group holds every reading of every kept hour, equal to the sum
//! of its members' per-meter hourly totals in the read model, and none is
//! `incomplete`; with `maxCatchupPages` 0 the groups stay `incomplete` and a
//! `catchup_pages_limit` warning says why (the control: the same run without
//! paging fails the assertion above).

use std::collections::HashMap;

use meterflow::core::config::Config;
use meterflow::core::event::{GroupsEvent, Inbound, Outbound, StreamRequest, TotalsEvent};
use meterflow::core::ledger::event::{FetchReason, FetchRequest};
use meterflow::core::Engine;
use meterflow::feed::http::{catchup_binary, catchup_view};
use meterflow::feed::model::{ReadModel, HOUR_MS};
use meterflow::feed::sim::{Simulator, RESOURCES};
use meterflow::wire::{
    decode_binary_at, decode_fetched, decode_message, Arrival, Envelope, FetchedBody,
};

const METERS: u32 = 50_000;
/// The read model's ticks are 15 simulated minutes apart (every meter reads
/// at each): 31 ticks from 10 minutes into hour 0 fill hours 0..=7.
const STEP_MS: u64 = 900_000;
const TICKS: u64 = 31;
const GROUPS: usize = 8;

/// The model after `TICKS` ticks, and the stamp of its last frame (ms).
fn model() -> (ReadModel, u64) {
    let start = 1_764_000_000_000 / HOUR_MS * HOUR_MS + 600_000;
    let mut sim = Simulator::new(METERS, 7, start);
    let mut m = ReadModel::new(
        1,
        sim.start_ms(),
        sim.meters().iter().map(|x| x.id.clone()).collect(),
        sim.meters().iter().map(|x| x.resource).collect(),
        48,
        2,
    )
    .with_meter_hours(8)
    .with_catchup_meter_entries(150_000);
    let (mut out, mut last) = (Vec::new(), 0);
    for i in 0..TICKS {
        let shift = i * (STEP_MS - 500);
        let ts = sim.step(&mut out) + shift;
        let readings: Vec<_> = out
            .drain(..)
            .map(|mut r| {
                r.ts_ms += shift;
                r
            })
            .collect();
        m.apply_at(ts, ts, readings);
        last = ts;
    }
    (m, last)
}

/// Meter `i`'s groups: district `i % 8`, and `odd` for odd meters; every
/// 97th meter is in none (`unassigned`).
fn groups_of(i: usize) -> Vec<String> {
    if i % 97 == 0 {
        return Vec::new();
    }
    let mut g = vec![format!("d{}", i % GROUPS)];
    if i % 2 == 1 {
        g.push("odd".to_string());
    }
    g
}

fn map_body(ids: &[String]) -> String {
    let mut members: Vec<(String, Vec<&str>)> =
        (0..GROUPS).map(|g| (format!("d{g}"), Vec::new())).collect();
    members.push(("odd".to_string(), Vec::new()));
    for (i, id) in ids.iter().enumerate() {
        for g in groups_of(i) {
            if let Some(x) = members.iter_mut().find(|x| x.0 == g) {
                x.1.push(id);
            }
        }
    }
    let groups: Vec<String> = members
        .iter()
        .map(|(g, ids)| {
            let list: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
            format!("\"{g}\":[{}]", list.join(","))
        })
        .collect();
    format!(r#"{{"version":1,"groups":{{{}}}}}"#, groups.join(","))
}

fn config(max_catchup_pages: u32) -> Config {
    Config {
        max_meters: METERS,
        // Small windows: the meters the catch-ups track need no long ones here.
        window: 128,
        reduced_window: 128,
        detect_live: false,
        catchup_on_start: true,
        max_catchup_pages,
        ..Config::default()
    }
}

/// The query of a request path, as the server's router splits it.
fn query(path: &str) -> HashMap<String, String> {
    let q = path.split_once('?').map_or("", |x| x.1);
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fetches(out: &[Outbound]) -> Vec<FetchRequest> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Fetch(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

struct Run {
    asked: Vec<FetchRequest>,
    warnings: Vec<String>,
    groups: GroupsEvent,
    totals: TotalsEvent,
}

/// Runs the engine's catch-ups (and the `/groups` refresh) against the model
/// until it asks nothing more.
fn run(m: &ReadModel, last: u64, cfg: &Config) -> Run {
    let now = (last + 2_000) as f64;
    let mut e = Engine::new(cfg.clone()).expect("a 50,000-meter config is valid");
    let start = serde_json::json!({"type": "session", "v": 1, "op": "start"});
    e.handle(decode_message(&start, cfg), now);
    let mut out = e.handle(Inbound::Tick(Default::default()), now);
    let map_id = out.iter().find_map(|o| match o {
        Outbound::Stream(StreamRequest::Fetch { request_id, path }) if path == "/groups" => {
            Some(*request_id)
        }
        _ => None,
    });
    let map = map_body(m.meter_ids());
    let map_id = map_id.expect("the engine asks for /groups");
    out.extend(
        e.handle(decode_fetched(map_id, FetchedBody::Text(&map), Arrival::default(), cfg), now),
    );
    let mut pending = fetches(&out);
    let mut warnings = Vec::new();
    let mut asked = Vec::new();
    while let Some(req) = pending.pop() {
        assert!(asked.len() < 20, "the engine kept asking: {asked:?}");
        asked.push(req.clone());
        // A transport asks for the binary body by appending `&format=binary`.
        let q = query(&format!("{}&format=binary", req.path()));
        let Ok((view, binary)) = catchup_view(m, &q, None) else {
            panic!("the feed refused {}", req.path());
        };
        assert!(binary);
        let body = catchup_binary(&view, last + 1_000).expect("the feed encodes its view");
        let arrival = Arrival { sent_at_ms: Some(now - 10.0), received_at_ms: Some(now) };
        let out = e.handle(decode_binary_at(Envelope::Catchup, &body, arrival, cfg), now);
        for o in &out {
            match o {
                Outbound::Warning(w) => {
                    warnings.push(format!("{}: {}", w.code.as_str(), w.message))
                }
                Outbound::Error(x) => panic!("catch-up refused: {}", x.message),
                _ => {}
            }
        }
        pending.extend(fetches(&out));
    }
    let out = e.handle(Inbound::Flush, now + 300.0);
    let groups = out.iter().find_map(|o| match o {
        Outbound::Groups(g) => Some(g.clone()),
        _ => None,
    });
    let totals = out.iter().find_map(|o| match o {
        Outbound::Totals(t) => Some(t.clone()),
        _ => None,
    });
    Run {
        asked,
        warnings,
        groups: groups.expect("a groups event"),
        totals: totals.expect("a totals event"),
    }
}

/// `(group, resource) -> kept hour start -> units`, from the model's
/// per-meter slabs.
type Sums = HashMap<(String, String), HashMap<u64, i64>>;

fn oracle(m: &ReadModel, resource_of: &[usize], kept: &[u64]) -> Sums {
    let mut sums: Sums = HashMap::new();
    for (hour, units) in m.meter_hours() {
        if !kept.contains(hour) {
            continue;
        }
        for (i, &ri) in resource_of.iter().enumerate() {
            let r = RESOURCES.get(ri).map_or("", |x| x.0);
            let mut gs = groups_of(i);
            if gs.is_empty() {
                gs.push(String::new());
            }
            for g in gs {
                *sums.entry((g, r.to_string())).or_default().entry(*hour).or_default() += units[i];
            }
        }
    }
    sums
}

fn engine_sums(ev: &GroupsEvent) -> Sums {
    let mut sums: Sums = HashMap::new();
    for g in ev.groups.iter().chain(std::iter::once(&ev.unassigned)) {
        for r in &g.resources {
            let hours = sums.entry((g.group.clone(), r.resource.clone())).or_default();
            for b in &r.buckets {
                hours.insert(b.hour_ms as u64, b.total);
            }
        }
    }
    sums
}

#[test]
fn fifty_thousand_meters_page_their_catch_up_until_every_group_is_complete_and_exact() {
    let (m, last) = model();
    let current = last / HOUR_MS * HOUR_MS;
    let kept: Vec<u64> = (0..=6).map(|k| current - (6 - k) * HOUR_MS).collect();
    // Every meter reads every hour: one catch-up lists only the newest three.
    let whole = m.catchup_per_meter(kept[0], true).expect("a catch-up");
    let per_meter = whole.meters.expect("hours listed per meter");
    assert_eq!(per_meter.hours.len(), 3, "the cap cuts the per-meter hours");

    let r = run(&m, last, &config(8));
    let reasons: Vec<(FetchReason, Option<u64>)> =
        r.asked.iter().map(|f| (f.reason, f.to_hour_ms.map(|t| t as u64))).collect();
    assert_eq!(
        reasons,
        vec![
            (FetchReason::Startup, None),
            (FetchReason::Page, Some(kept[3])),
            (FetchReason::Page, Some(kept[0])),
        ],
        "one whole catch-up, then a page per three hours down to the oldest kept"
    );
    assert!(r.asked.iter().all(|f| f.path().contains("meters=1")));
    assert!(r.asked[1].path().ends_with(&format!("&to={}", kept[3])));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.totals.counters.catchup_pages, 2);
    assert!(!r.totals.incomplete);
    assert!(r.groups.groups.iter().all(|g| !g.incomplete), "every group complete");
    assert!(!r.groups.unassigned.incomplete);
    assert!(r.groups.complete_from_ms.is_none_or(|c| c <= kept[0] as f64));
    let want = oracle(&m, &per_meter.meter_resources, &kept);
    let got = engine_sums(&r.groups);
    for (key, hours) in &want {
        for (h, units) in hours {
            let g = got.get(key).and_then(|x| x.get(h)).copied().unwrap_or(0);
            assert_eq!(g, *units, "group {key:?}, hour {h}");
        }
    }
    let nonzero = want.values().flat_map(|h| h.values()).filter(|&&u| u != 0).count();
    assert!(nonzero >= 9 * 3 * 7 / 2, "the oracle sums something: {nonzero}");
    // The resource totals equal the model's hours exactly.
    for res in &r.totals.resources {
        let ri = RESOURCES.iter().position(|x| x.0 == res.resource).expect("a feed resource");
        for b in &res.buckets {
            let want =
                m.hours().iter().find(|h| h.hour_ms == b.hour_ms as u64).map_or(0, |h| h.units[ri]);
            assert_eq!(b.total, want, "{} at {}", res.resource, b.hour_ms);
        }
    }

    // Without pages the older hours stay as the first catch-up left them.
    let r = run(&m, last, &config(0));
    assert_eq!(r.asked.len(), 1);
    assert!(r.groups.groups.iter().all(|g| g.incomplete));
    assert!(r.warnings.iter().any(|w| w.starts_with("catchup_pages_limit")), "{:?}", r.warnings);
}
