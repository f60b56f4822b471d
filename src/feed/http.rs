//! REST endpoints and their bodies: `/catchup` and `/snapshot-v2` (the ledger's
//! catch-up, PROTOCOL.md 3.6 JSON or 3.8 binary kind 3, with the `totals`
//! stream's `epoch` and `snapshot_seq`; the `meters.<group>` and `notices`
//! snapshots; `since_seq` mini-snapshots), `/groups`, `/clock`, `/truth`, `/meters/{id}`,
//! `/admin/faults` (loopback peers only), static files. Each copies what it
//! needs from a read model under one read lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Component, Path};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::faults::Command;
use super::model::{CatchupRefusal, CatchupView, MeterHoursView, ReadModel, HOUR_MS, TOTALS};
use super::sim::{DECIMALS, RESOURCES};
use super::Shared;
use crate::core::decimal::format_units;
use crate::wire::binary::{encode_catchup_columns, CatchupHead};

/// Every route on one port.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/stream", get(super::ws::upgrade))
        .route("/catchup", get(catchup))
        .route("/snapshot-v2", get(snapshot))
        .route("/truth", get(truth))
        .route("/groups", get(groups))
        .route("/clock", get(clock))
        .route("/admin/faults", get(faults_get).merge(post(faults_post)))
        .route("/meters/{id}", get(meter))
        .fallback(get(static_file))
        .with_state(shared)
}

/// A kept snapshot body, sent without a copy.
struct SharedBody(Arc<str>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
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
        r#"{{"type":"catchup","channel":"{TOTALS}","epoch":{},"snapshot_seq":{},"#,
        c.epoch, c.snapshot_seq
    );
    if let Some(n) = c.since_seq {
        let _ = write!(s, r#""since_seq":{n},"#);
    }
    let _ = write!(
        s,
        r#""asOf":{{"wallMs":{},"counter":{}}},"serverTime":{server_time_ms},"from":{},"to":{},"buckets":["#,
        c.as_of.wall_ms, c.as_of.counter, c.from_hour_ms, c.to_hour_ms
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
    if let Some(m) = &c.meters {
        for (hour, units) in &m.hours {
            for (i, u) in units.iter().enumerate() {
                if *u == 0 {
                    continue;
                }
                if !first {
                    s.push(',');
                }
                first = false;
                let (meter, name) = meter_of(m, i);
                let _ = write!(
                    s,
                    r#"{{"meter":"{meter}","resource":"{name}","hour":{hour},"total":"{}"}}"#,
                    format_units(*u, DECIMALS)
                );
            }
        }
    }
    s.push_str("]}");
    s
}

/// Meter `i`'s id and resource name in a per-meter view.
fn meter_of(m: &MeterHoursView, i: usize) -> (&str, &'static str) {
    let meter = m.meter_ids.get(i).map_or("", String::as_str);
    let resource = m.meter_resources.get(i).and_then(|&r| RESOURCES.get(r)).map_or("", |r| r.0);
    (meter, resource)
}

/// The catch-up body as binary kind 3 (PROTOCOL.md 3.8), written straight
/// from the view's columns (`encode_catchup_columns`: one allocation, no
/// per-record one): resource totals first, then the per-meter hours, oldest
/// hour first and meters in index order; keys in order of first use, so the
/// bytes are those of the general encoder given the same buckets
/// (`tests/feed_catchup_binary.rs` holds the two equal).
pub fn catchup_binary(c: &CatchupView, server_time_ms: u64) -> Result<Vec<u8>, String> {
    // Keys: the resources' totals (by first use), then each meter at its
    // first non-zero hour.
    let mut resource_key = [u32::MAX; RESOURCES.len()];
    let mut bindings: Vec<(&str, &str)> = Vec::new();
    let mut records = 0usize;
    for h in &c.hours {
        for (r, units) in h.units.iter().enumerate() {
            if *units != 0 {
                records += 1;
                if let Some(k) = resource_key.get_mut(r) {
                    if *k == u32::MAX {
                        *k = bindings.len() as u32;
                        bindings.push(("", RESOURCES.get(r).map_or("", |x| x.0)));
                    }
                }
            }
        }
    }
    let mut meter_key: Vec<u32> = Vec::new();
    if let Some(m) = &c.meters {
        meter_key = vec![u32::MAX; m.meter_ids.len()];
        for (_, units) in &m.hours {
            for ((i, u), k) in units.iter().enumerate().zip(meter_key.iter_mut()) {
                if *u != 0 {
                    records += 1;
                    if *k == u32::MAX {
                        *k = bindings.len() as u32;
                        bindings.push(meter_of(m, i));
                    }
                }
            }
        }
    }
    let head = CatchupHead {
        as_of: c.as_of,
        scale: DECIMALS,
        from_hour_ms: Some(c.from_hour_ms as f64),
        to_hour_ms: Some(c.to_hour_ms as f64),
        server_time_ms: Some(server_time_ms as f64),
    };
    let totals = c.hours.iter().flat_map(|h| {
        h.units
            .iter()
            .zip(resource_key)
            .filter(|(u, _)| **u != 0)
            .map(|(u, k)| (k, h.hour_ms as f64, *u))
    });
    let per_meter = c.meters.iter().flat_map(|m| m.hours.iter()).flat_map(|(hour, units)| {
        units.iter().zip(&meter_key).filter(|(u, _)| **u != 0).map(|(u, k)| (*k, *hour as f64, *u))
    });
    encode_catchup_columns(&head, &bindings, records, totals.chain(per_meter))
        .map_err(|e| e.message.to_string())
}

/// The REST delay fault (fixed, or random so answers come out of order).
async fn rest_delay(shared: &Shared) {
    let ms = shared.faults().rest_delay(shared.next_random());
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

fn serve_catchup(
    shared: &Shared,
    q: &HashMap<String, String>,
    default_from: Option<u64>,
) -> Response {
    serve_catchup_since(shared, q, default_from, None)
}

/// A `/catchup` query the server refuses: HTTP status, error code, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchupQueryError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl CatchupQueryError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        CatchupQueryError { status, code, message: message.into() }
    }

    fn response(&self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

/// A `/catchup` (or `totals` snapshot) query: its parameters checked, the
/// view taken from `model`, and whether the binary body was asked; or why it
/// is refused. The server's handler and the native paging test
/// (`tests/feed_catchup_pages.rs`) share it.
pub fn catchup_view(
    model: &ReadModel,
    q: &HashMap<String, String>,
    default_from: Option<u64>,
) -> Result<(CatchupView, bool), CatchupQueryError> {
    let bad = |code, message: &str| CatchupQueryError::new(StatusCode::BAD_REQUEST, code, message);
    let from = match q.get("from").map(|f| f.parse::<u64>()) {
        Some(Ok(f)) => f,
        Some(Err(_)) => return Err(bad("bad_from", "from must be a whole number of ms")),
        None => match default_from {
            Some(f) => f,
            None => return Err(bad("bad_from", "from is required")),
        },
    };
    let binary = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("binary") => true,
        Some(_) => return Err(bad("bad_format", "format must be json or binary")),
    };
    let per_meter = match q.get("meters").map(String::as_str) {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(bad("bad_meters", "meters must be 0 or 1")),
    };
    let to = match q.get("to").map(|t| t.parse::<u64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return Err(bad("bad_to", "to must be a whole number of ms")),
    };
    match model.catchup_page(from, per_meter, to) {
        Ok(v) => Ok((v, binary)),
        Err(CatchupRefusal::Evicted { oldest_hour_ms }) => Err(CatchupQueryError::new(
            StatusCode::GONE,
            "evicted",
            format!("hours before {oldest_hour_ms} are no longer held (historyHours)"),
        )),
        Err(CatchupRefusal::TooLong) => {
            Err(bad("range_too_long", "from..asOf spans more than 366 days"))
        }
    }
}

fn serve_catchup_since(
    shared: &Shared,
    q: &HashMap<String, String>,
    default_from: Option<u64>,
    since_seq: Option<u64>,
) -> Response {
    let (view, binary) = match catchup_view(&shared.model(), q, default_from) {
        Ok((mut v, binary)) => {
            v.since_seq = since_seq;
            (v, binary)
        }
        Err(e) => return e.response(),
    };
    let server_time = shared.server_time_ms();
    shared.catchups_served.fetch_add(1, Ordering::Relaxed);
    let mut r = if binary {
        match catchup_binary(&view, server_time) {
            Ok(b) => respond(StatusCode::OK, "application/octet-stream", b),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "encode", &e),
        }
    } else {
        respond(StatusCode::OK, "application/json", catchup_json(&view, server_time))
    };
    let since = view.since_seq.map(|n| ("x-meterflow-since-seq", n));
    for (name, v) in
        [("x-meterflow-epoch", view.epoch), ("x-meterflow-snapshot-seq", view.snapshot_seq)]
            .into_iter()
            .chain(since)
    {
        if let Ok(v) = v.to_string().parse() {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

/// `GET /catchup?from=MS[&format=binary][&meters=1][&to=MS]` (`meters=1`:
/// the hours the model holds per meter are listed per meter, PROTOCOL.md
/// 3.6; `to`: a page, only hours up to `to`'s listed per meter).
async fn catchup(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    shared.catchup_requests.fetch_add(1, Ordering::Relaxed);
    if q.get("meters").map(String::as_str) == Some("1") {
        shared.catchup_requests_per_meter.fetch_add(1, Ordering::Relaxed);
    }
    rest_delay(&shared).await;
    serve_catchup(&shared, &q, None)
}

/// A whole number query parameter (`None` if absent); `Err(key)` if not one.
fn whole<'a>(q: &HashMap<String, String>, key: &'a str) -> Result<Option<u64>, &'a str> {
    match q.get(key).map(|v| v.parse::<u64>()) {
        None => Ok(None),
        Some(Ok(n)) => Ok(Some(n)),
        Some(Err(_)) => Err(key),
    }
}

/// `GET /snapshot-v2?channel=C[&epoch=E&since_seq=N][&from=MS][&format=binary][&meters=1]`:
/// `totals` is the catch-up (without `from`: every hour held; with `since_seq`:
/// from the hour of the oldest frame after `N`, every hour held if `N` is not);
/// `meters.<group>` and `notices` are JSON entity snapshots (see channels.rs).
async fn snapshot(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    rest_delay(&shared).await;
    let (epoch, since) = match (whole(&q, "epoch"), whole(&q, "since_seq")) {
        (Ok(e), Ok(n)) => (e, n),
        (Err(key), _) | (_, Err(key)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("bad_{key}"),
                &format!("{key} must be a whole number"),
            )
        }
    };
    let Some(channel) = q.get("channel") else {
        return error(StatusCode::BAD_REQUEST, "bad_channel", "channel is required");
    };
    if channel == TOTALS {
        // Every hour held; before the first reading, the hour of `asOf` (the start).
        let (oldest, mini) = {
            let m = shared.model();
            let oldest = m.hours().front().map_or(m.as_of().wall_ms, |h| h.hour_ms);
            // Per meter, reach back as far as the model knows every reading
            // (hours before its start total 0), so the result can cover every
            // hour a worker keeps and its rebuild can clear `incomplete`.
            let oldest = match q.get("meters").map(String::as_str) {
                Some("1") => oldest.min(m.whole_from()),
                _ => oldest,
            };
            let mini = match (epoch, since) {
                (Some(e), Some(n)) if e == m.epoch() => m.hour_after(n).map(|h| (h, n)),
                _ => None,
            };
            (oldest, mini)
        };
        return match mini {
            Some((hour, n)) => serve_catchup_since(&shared, &q, Some(hour.max(oldest)), Some(n)),
            None => serve_catchup(&shared, &q, Some(oldest)),
        };
    }
    let since = epoch.zip(since);
    // A full snapshot is encoded once per channel position and kept: every
    // request until the channel's next delta gets the same body.
    let cached = since.is_none().then(|| shared.channels().cached_snapshot(channel)).flatten();
    let (snap_epoch, snap_seq, body, was_cached) = match cached {
        Some((e, n, body)) => (e, n, body, true),
        None => {
            let snap = {
                let c = shared.channels();
                c.snapshot(channel, since).map(|s| (s, c.names().clone()))
            };
            let Some((snap, names)) = snap else {
                return error(
                    StatusCode::NOT_FOUND,
                    "unknown_channel",
                    "channels: totals, meters.<group> (GET /groups), notices",
                );
            };
            let body: Arc<str> = snap.json(&names).into();
            if snap.since_seq.is_none() {
                shared.channels().keep_snapshot(
                    channel,
                    snap.epoch,
                    snap.snapshot_seq,
                    body.clone(),
                );
            }
            (snap.epoch, snap.snapshot_seq, body, false)
        }
    };
    shared.catchups_served.fetch_add(1, Ordering::Relaxed);
    let mut r = respond(StatusCode::OK, "application/json", Bytes::from_owner(SharedBody(body)));
    if let Ok(v) = (if was_cached { "hit" } else { "miss" }).parse() {
        r.headers_mut().insert("x-meterflow-snapshot-cache", v);
    }
    for (name, v) in [("x-meterflow-epoch", snap_epoch), ("x-meterflow-snapshot-seq", snap_seq)] {
        if let Ok(v) = v.to_string().parse() {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

/// `GET /clock`: `{"serverTime":T,"speed":S,"start":T0}`, the simulated clock
/// the server stamps with. A page opened without `?speed=` reads it to widen
/// the worker's clock allowances for an accelerated server (PROTOCOL.md 5);
/// no lock, nothing copied.
async fn clock(State(shared): State<Arc<Shared>>) -> Response {
    let body = json!({
        "serverTime": shared.now_ms(),
        "speed": shared.cfg.speed,
        "start": shared.clock.start_ms,
    })
    .to_string();
    respond(StatusCode::OK, "application/json", body)
}

/// `GET /groups`: `{"version":V,"groups":{"north":["w-00001",…],…}}`.
async fn groups(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.channels().groups_json();
    respond(StatusCode::OK, "application/json", body)
}

/// Refuses a peer that is not on the loopback interface.
fn loopback_only(peer: SocketAddr) -> Option<Response> {
    (!peer.ip().is_loopback())
        .then(|| error(StatusCode::FORBIDDEN, "forbidden", "the admin API is loopback only"))
}

/// `GET /admin/faults`: the faults now.
async fn faults_get(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if let Some(r) = loopback_only(peer) {
        return r;
    }
    respond(StatusCode::OK, "application/json", shared.faults().to_json().to_string())
}

/// `POST /admin/faults` with a JSON object: the fields given replace the
/// faults (`reset: true` first clears them); `reconnect: true` sends RECONNECT
/// on every open connection, `invalidSession: {"resumable": bool}` an
/// INVALID_SESSION, `pause: true` stops simulated time (no reading is made and
/// the server's clock stands still; `false` restarts it where it stopped).
/// Answers the faults now, `notified` connections and `paused`.
async fn faults_post(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: String,
) -> Response {
    if let Some(r) = loopback_only(peer) {
        return r;
    }
    let Ok(Value::Object(patch)) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_json", "the body must be a JSON object");
    };
    let invalid = match patch.get("invalidSession") {
        None => None,
        Some(v) => match v.get("resumable").and_then(Value::as_bool) {
            Some(resumable) => Some(Command::InvalidSession { resumable }),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_fault",
                    "invalidSession: must be {\"resumable\": bool}",
                )
            }
        },
    };
    let reconnect = match patch.get("reconnect") {
        None => false,
        Some(v) => match v.as_bool() {
            Some(b) => b,
            None => {
                return error(StatusCode::BAD_REQUEST, "bad_fault", "reconnect: must be a boolean")
            }
        },
    };
    let pause = match patch.get("pause") {
        None => None,
        Some(_) if shared.fleet.is_some() => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_fault",
                "pause: not with Redis (the writer process owns the clock)",
            )
        }
        Some(v) => match v.as_bool() {
            Some(b) => Some(b),
            None => return error(StatusCode::BAD_REQUEST, "bad_fault", "pause: must be a boolean"),
        },
    };
    let faults = match shared.faults().patched(&patch) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_fault", &e),
    };
    shared.set_faults(faults);
    let mut notified = 0;
    if let Some(c) = invalid {
        notified += shared.command(c);
    }
    if reconnect {
        notified += shared.command(Command::Reconnect);
    }
    if let Some(stop) = pause {
        // Stopped: answers once the writer has made the ticks up to that
        // moment (within a second; a writer held by a test may take longer).
        if shared.set_frozen(stop) {
            for _ in 0..200 {
                if shared.settled() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
    let body =
        json!({ "faults": faults.to_json(), "notified": notified, "paused": shared.frozen() });
    respond(StatusCode::OK, "application/json", body.to_string())
}

/// `GET /truth[?meters=1]`: exact totals per resource and hour, incidents, the
/// stream's position; with `meters=1` also `meterHours`, the exact non-zero
/// per-meter totals of each hour held per meter (`{"hour":H,"meters":{id:total}}`).
async fn truth(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut channels = serde_json::Map::new();
    for s in shared.channels().streams() {
        let v = json!({ "epoch": shared.cfg.epoch, "seq": s.seq(), "oldestSeq": s.oldest_seq() });
        channels.insert(s.name.to_string(), v);
    }
    let m = shared.model();
    channels.insert(
        TOTALS.into(),
        json!({ "epoch": m.epoch(), "seq": m.seq(), "oldestSeq": m.oldest_seq() }),
    );
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
    let meter_hours: Option<Vec<Value>> =
        (q.get("meters").map(String::as_str) == Some("1")).then(|| {
            let first = m.meter_from().unwrap_or(u64::MAX);
            // Only hours whose slab is whole.
            let ids = m.meter_ids();
            m.meter_hours()
                .iter()
                .filter(|(h, _)| *h >= first)
                .map(|(h, units)| {
                    let meters: serde_json::Map<String, Value> = units
                        .iter()
                        .enumerate()
                        .filter(|(_, u)| **u != 0)
                        .map(|(i, u)| {
                            let id = ids.get(i).cloned().unwrap_or_default();
                            (id, Value::String(format_units(*u, DECIMALS)))
                        })
                        .collect();
                    json!({ "hour": h, "meters": meters })
                })
                .collect()
        });
    let as_of = m.as_of();
    let mut body = json!({
        "asOf": { "wallMs": as_of.wall_ms, "counter": as_of.counter },
        "serverTime": shared.now_ms(),
        "paused": shared.frozen(),
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
        "channels": channels,
        "catchupRequests": {
            "all": shared.catchup_requests.load(Ordering::Relaxed),
            "perMeter": shared.catchup_requests_per_meter.load(Ordering::Relaxed),
        },
    });
    drop(m);
    if let (Some(v), Some(o)) = (meter_hours, body.as_object_mut()) {
        o.insert("meterHours".into(), Value::Array(v));
    }
    respond(StatusCode::OK, "application/json", body.to_string())
}

/// `GET /meters/{id}`: one meter's description, latest reading and counters.
async fn meter(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>) -> Response {
    rest_delay(&shared).await;
    let found = shared.model().meter(&id).map(|(i, r, s)| (i, r.to_string(), s));
    let Some((i, resource, state)) = found else {
        return error(StatusCode::NOT_FOUND, "unknown_meter", "no such meter");
    };
    let Some(spec) = shared.meters.get(i) else {
        return error(StatusCode::NOT_FOUND, "unknown_meter", "no such meter");
    };
    let (group, status) = {
        let c = shared.channels();
        let status = c.entity(i as u32).map_or("ok", |e| e.status.as_str());
        (c.group_of(i as u32).unwrap_or("").to_string(), status)
    };
    let body = json!({
        "meter": id,
        "resource": resource,
        "group": group,
        "status": status,
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
    let mut r = match tokio::fs::read(&path).await {
        Ok(bytes) => respond(StatusCode::OK, content_type(&path), bytes),
        Err(_) => error(StatusCode::NOT_FOUND, "not_found", "no such file"),
    };
    for (name, value) in page_headers() {
        if let Ok(v) = value.parse() {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

/// The policy the dashboard is served with: scripts, styles, workers, wasm,
/// fetches and the stream socket from this origin only (CSP Level 3 `'self'`
/// covers `ws:`/`wss:` to the same host and port); no inline script or style,
/// no plugins, no framing. `'wasm-unsafe-eval'` lets the worker compile the
/// wasm module.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; connect-src 'self'; worker-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers on every static file: the CSP above, cross-origin isolation
/// (COOP + COEP, and CORP so the page's own files may be embedded by it), and
/// no MIME sniffing.
fn page_headers() -> [(header::HeaderName, &'static str); 5] {
    [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (header::HeaderName::from_static("cross-origin-embedder-policy"), "require-corp"),
        (header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_api_refuses_peers_off_the_loopback() {
        let status = |a: &str| {
            let peer: SocketAddr =
                a.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            loopback_only(peer).map(|r| r.status())
        };
        assert_eq!(status("127.0.0.1:5000"), None);
        assert_eq!(status("[::1]:5000"), None);
        assert_eq!(status("10.0.0.7:5000"), Some(StatusCode::FORBIDDEN));
        assert_eq!(status("[2001:db8::1]:5000"), Some(StatusCode::FORBIDDEN));
    }
}
