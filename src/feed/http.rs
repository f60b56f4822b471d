//! REST endpoints and their bodies: `/catchup` and `/snapshot-v2` (the ledger's
//! catch-up, PROTOCOL.md 3.6 JSON or 3.8 binary kind 3, with the `totals`
//! stream's `epoch` and `snapshot_seq`), `/truth`, `/meters/{id}`, static files.
//! Each copies what it needs from the read model under one read lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Component, Path};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::model::{CatchupRefusal, CatchupView, HOUR_MS, TOTALS};
use super::sim::{DECIMALS, RESOURCES};
use super::Shared;
use crate::core::decimal::{format_units, Decimal};
use crate::core::event::{Catchup, CatchupBucket};
use crate::wire::binary::encode_catchup;

/// Every route on one port.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/stream", get(super::ws::upgrade))
        .route("/catchup", get(catchup))
        .route("/snapshot-v2", get(snapshot))
        .route("/truth", get(truth))
        .route("/meters/{id}", get(meter))
        .fallback(get(static_file))
        .with_state(shared)
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = "no-store".parse() {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": code, "message": message }).to_string();
    respond(status, "application/json", body)
}

/// The catch-up body in JSON (PROTOCOL.md 3.6) with the stream position added.
pub fn catchup_json(c: &CatchupView, server_time_ms: u64) -> String {
    let mut s = String::with_capacity(256 + c.hours.len() * 3 * 64);
    let _ = write!(
        s,
        r#"{{"type":"catchup","channel":"{TOTALS}","epoch":{},"snapshot_seq":{},"asOf":{{"wallMs":{},"counter":{}}},"serverTime":{server_time_ms},"from":{},"to":{},"buckets":["#,
        c.epoch, c.snapshot_seq, c.as_of.wall_ms, c.as_of.counter, c.from_hour_ms, c.to_hour_ms
    );
    let mut first = true;
    for h in &c.hours {
        for (r, units) in h.units.iter().enumerate() {
            if *units == 0 {
                continue;
            }
            if !first {
                s.push(',');
            }
            first = false;
            let name = RESOURCES.get(r).map_or("", |x| x.0);
            let _ = write!(
                s,
                r#"{{"resource":"{name}","hour":{},"total":"{}"}}"#,
                h.hour_ms,
                format_units(*units, DECIMALS)
            );
        }
    }
    s.push_str("]}");
    s
}

/// The catch-up body as binary kind 3 (PROTOCOL.md 3.8).
pub fn catchup_binary(c: &CatchupView, server_time_ms: u64) -> Result<Vec<u8>, String> {
    let mut buckets = Vec::with_capacity(c.hours.len() * RESOURCES.len());
    for h in &c.hours {
        for (r, units) in h.units.iter().enumerate() {
            if *units != 0 {
                buckets.push(CatchupBucket {
                    meter: None,
                    resource: RESOURCES.get(r).map_or("", |x| x.0).to_string(),
                    hour_ms: h.hour_ms as f64,
                    total: Decimal::new(*units, DECIMALS),
                    position: buckets.len() as u32,
                });
            }
        }
    }
    let body = Catchup {
        as_of: c.as_of,
        from_hour_ms: Some(c.from_hour_ms as f64),
        to_hour_ms: Some(c.to_hour_ms as f64),
        buckets,
        server_time_ms: Some(server_time_ms as f64),
        sent_at_ms: None,
        received_at_ms: None,
        errors: Vec::new(),
    };
    encode_catchup(&body, DECIMALS).map_err(|e| e.message.to_string())
}

fn serve_catchup(
    shared: &Shared,
    q: &HashMap<String, String>,
    default_from: Option<u64>,
) -> Response {
    let from = match q.get("from").map(|f| f.parse::<u64>()) {
        Some(Ok(f)) => f,
        Some(Err(_)) => {
            return error(StatusCode::BAD_REQUEST, "bad_from", "from must be a whole number of ms")
        }
        None => match default_from {
            Some(f) => f,
            None => return error(StatusCode::BAD_REQUEST, "bad_from", "from is required"),
        },
    };
    let binary = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("binary") => true,
        Some(_) => {
            return error(StatusCode::BAD_REQUEST, "bad_format", "format must be json or binary")
        }
    };
    let view = shared.model().catchup(from);
    let server_time = shared.clock.now_ms();
    let view = match view {
        Ok(v) => v,
        Err(CatchupRefusal::Evicted { oldest_hour_ms }) => {
            return error(
                StatusCode::GONE,
                "evicted",
                &format!("hours before {oldest_hour_ms} are no longer held (historyHours)"),
            )
        }
        Err(CatchupRefusal::TooLong) => {
            return error(
                StatusCode::BAD_REQUEST,
                "range_too_long",
                "from..asOf spans more than 366 days",
            )
        }
    };
    shared.catchups_served.fetch_add(1, Ordering::Relaxed);
    let mut r = if binary {
        match catchup_binary(&view, server_time) {
            Ok(b) => respond(StatusCode::OK, "application/octet-stream", b),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "encode", &e),
        }
    } else {
        respond(StatusCode::OK, "application/json", catchup_json(&view, server_time))
    };
    for (name, v) in
        [("x-meterflow-epoch", view.epoch), ("x-meterflow-snapshot-seq", view.snapshot_seq)]
    {
        if let Ok(v) = v.to_string().parse() {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

/// `GET /catchup?from=MS[&format=binary]`.
async fn catchup(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    serve_catchup(&shared, &q, None)
}

/// `GET /snapshot-v2?channel=totals[&from=MS][&format=binary]`: the totals
/// snapshot is the catch-up; without `from`, every hour held.
async fn snapshot(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match q.get("channel").map(String::as_str) {
        Some(TOTALS) => {}
        _ => {
            return error(StatusCode::NOT_FOUND, "unknown_channel", "only channel=totals is served")
        }
    }
    // Every hour held; before the first reading, the hour of `asOf` (the start).
    let oldest = {
        let m = shared.model();
        m.hours().front().map_or(m.as_of().wall_ms, |h| h.hour_ms)
    };
    serve_catchup(&shared, &q, Some(oldest))
}

/// `GET /truth`: exact totals per resource and hour, incidents, the stream's position.
async fn truth(State(shared): State<Arc<Shared>>) -> Response {
    let m = shared.model();
    let resources: Vec<_> = RESOURCES
        .iter()
        .enumerate()
        .map(|(r, (name, unit))| {
            let buckets: Vec<_> = m
                .hours()
                .iter()
                .map(|h| json!({ "hour": h.hour_ms, "total": format_units(h.units[r], DECIMALS) }))
                .collect();
            json!({ "resource": name, "unit": unit, "decimals": DECIMALS, "buckets": buckets })
        })
        .collect();
    let as_of = m.as_of();
    let body = json!({
        "asOf": { "wallMs": as_of.wall_ms, "counter": as_of.counter },
        "serverTime": shared.clock.now_ms(),
        "start": shared.clock.start_ms,
        "speed": shared.cfg.speed,
        "meters": shared.meters.len(),
        "readings": m.readings(),
        "hourMs": HOUR_MS,
        "resources": resources,
        "incidents": shared.incidents.iter().map(|i| json!({
            "kind": i.kind.as_str(),
            "meter": shared.meters.get(i.meter as usize).map_or("", |s| s.id.as_str()),
            "start": i.start_ms,
            "end": i.end_ms,
        })).collect::<Vec<_>>(),
        "channels": { TOTALS: { "epoch": m.epoch(), "seq": m.seq(), "oldestSeq": m.oldest_seq() } },
    });
    drop(m);
    respond(StatusCode::OK, "application/json", body.to_string())
}

/// `GET /meters/{id}`: one meter's description, latest reading and counters.
async fn meter(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>) -> Response {
    let found = shared.model().meter(&id).map(|(i, r, s)| (i, r.to_string(), s));
    let Some((i, resource, state)) = found else {
        return error(StatusCode::NOT_FOUND, "unknown_meter", "no such meter");
    };
    let Some(spec) = shared.meters.get(i) else {
        return error(StatusCode::NOT_FOUND, "unknown_meter", "no such meter");
    };
    let body = json!({
        "meter": id,
        "resource": resource,
        "quantum": format_units(spec.quantum, DECIMALS),
        "noisy": spec.noise > 0.3,
        "latest": state.last.map(|r| json!({ "id": r.id, "ts": r.ts_ms, "amount": format_units(r.units, DECIMALS) })),
        "total": format_units(state.total_units, DECIMALS),
        "readings": state.readings,
        "incidents": shared.incidents.iter().filter(|x| x.meter as usize == i).map(|x| json!({
            "kind": x.kind.as_str(), "start": x.start_ms, "end": x.end_ms,
        })).collect::<Vec<_>>(),
    });
    respond(StatusCode::OK, "application/json", body.to_string())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Any other `GET`: a file under `www/` (no `..`, no hidden names; `/` is `index.html`).
async fn static_file(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let rel = uri.path().trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let rel = Path::new(rel);
    let safe = rel.components().all(|c| match c {
        Component::Normal(s) => !s.to_string_lossy().starts_with('.'),
        _ => false,
    });
    if !safe {
        return error(StatusCode::NOT_FOUND, "not_found", "no such file");
    }
    let path = shared.cfg.www.join(rel);
    match tokio::fs::read(&path).await {
        Ok(bytes) => respond(StatusCode::OK, content_type(&path), bytes),
        Err(_) => error(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}
