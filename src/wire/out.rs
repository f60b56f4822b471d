//! Outbound wire shapes (PROTOCOL.md section 4): every message an object with
//! a `type` tag, `v: 1` and camelCase fields.
//!
//! The shapes borrow from the core's `Outbound`, so encoding copies nothing
//! until a serializer runs. They serialise alike with `serde_json` and
//! `serde-wasm-bindgen`: no `u64`/`i64` ever crosses as a number beyond
//! 2^53 − 1 (totals and counters past it become decimal strings; HLCs cross as
//! `{wallMs, counter}`, both exact).

use serde::{Serialize, Serializer};

use crate::core::error::CoreError;
use crate::core::event::{
    AnomalyEvent, AnomalyKind, BucketTotal, ClearedEvent, FetchRequest, LedgerCounters,
    MeterSnapshot, Outbound, ResourceTotals, StatsEvent, TotalsEvent, WarningEvent,
};
use crate::core::event::{ConnectionStatus, DetailEvent, MetersEvent, NoticesEvent, StreamRequest};
use crate::core::event::{GroupTotals, GroupsEvent, GroupsStats, SeriesEvent, SeriesStats};
use crate::core::hlc::Hlc;
use crate::core::series::{SeriesBody, SeriesTarget};

/// Largest integer a JS number carries exactly, 2^53 − 1.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// An outbound message in its wire shape. Serialise it; do not inspect it.
#[derive(Serialize, Debug)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum WireOut<'a> {
    Anomaly(AnomalyOut<'a>),
    Cleared(ClearedOut<'a>),
    Stats(StatsOut<'a>),
    Error(ErrorOut<'a>),
    Warning(WarningOut<'a>),
    Window(WindowOut<'a>),
    Meter(MeterOut<'a>),
    Totals(TotalsOut<'a>),
    Fetch(FetchOut<'a>),
    Connect(ConnectOut<'a>),
    Send(SendOut<'a>),
    Close(CloseOut<'a>),
    /// A session fetch: `type: "fetch"` with `requestId` and `path` (the
    /// ledger's own catch-up `fetch` has neither).
    #[serde(rename = "fetch")]
    StreamFetch(StreamFetchOut<'a>),
    Connection(ConnectionOut<'a>),
    Meters(MetersOut<'a>),
    Notices(NoticesOut<'a>),
    Detail(DetailOut<'a>),
    Ack(AckOut),
    Groups(GroupsOut<'a>),
    Series(SeriesOut<'a>),
}

/// `v`, first in every body. Bodies are plain structs (never maps, never
/// flattened) so serde-wasm-bindgen makes plain JS objects of them.
const V: u8 = super::PROTOCOL_VERSION;

/// The wire shape of `out`.
pub(crate) fn encode(out: &Outbound) -> WireOut<'_> {
    encode_answer(out, None)
}

/// The wire shape of `out`, carrying the `id` of the query it answers.
fn encode_answer(out: &Outbound, id: Option<f64>) -> WireOut<'_> {
    match out {
        Outbound::Answer { id, answer } => encode_answer(answer, Some(*id)),
        Outbound::Anomaly(a) => WireOut::Anomaly(AnomalyOut(a)),
        Outbound::Cleared(c) => WireOut::Cleared(ClearedOut(c)),
        Outbound::Stats(s) => WireOut::Stats(StatsOut(s, id)),
        Outbound::Error(e) => WireOut::Error(ErrorOut(e, id)),
        Outbound::Warning(w) => WireOut::Warning(WarningOut(w)),
        Outbound::Window { meter, values } => {
            WireOut::Window(WindowOut { v: V, id, meter, values })
        }
        Outbound::Meter(m) => WireOut::Meter(MeterOut(m, id)),
        Outbound::Totals(t) => WireOut::Totals(TotalsOut(t, id)),
        Outbound::Fetch(f) => WireOut::Fetch(FetchOut(f)),
        Outbound::Stream(StreamRequest::Connect { url }) => {
            WireOut::Connect(ConnectOut { v: V, url: url.as_deref() })
        }
        Outbound::Stream(StreamRequest::Send { text }) => {
            WireOut::Send(SendOut { v: V, data: text })
        }
        Outbound::Stream(StreamRequest::Close { code, reason }) => {
            WireOut::Close(CloseOut { v: V, code: *code, reason })
        }
        Outbound::Stream(StreamRequest::Fetch { request_id, path }) => {
            WireOut::StreamFetch(StreamFetchOut {
                v: V,
                request_id: Count(i128::from(*request_id)),
                path,
            })
        }
        Outbound::Connection(c) => WireOut::Connection(ConnectionOut(c)),
        Outbound::Meters(m) => WireOut::Meters(MetersOut(m)),
        Outbound::Notices(n) => WireOut::Notices(NoticesOut(n)),
        Outbound::Detail(d) => WireOut::Detail(DetailOut(d)),
        Outbound::Ack(a) => WireOut::Ack(AckOut {
            v: V,
            id: a.id,
            accepted: a.accepted,
            refused: a.refused,
            ms: a.ms,
        }),
        Outbound::Groups(g) => WireOut::Groups(GroupsOut(g)),
        Outbound::Series(e) => WireOut::Series(SeriesOut { event: e, id, arrays: true }),
    }
}

/// An integer count: a number up to 2^53 − 1 in magnitude, a decimal string past it.
#[derive(Debug)]
pub struct Count(i128);

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(self.0) {
            Ok(x) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&x) => s.serialize_i64(x),
            _ => s.collect_str(&self.0),
        }
    }
}

/// An HLC as `{wallMs, counter}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HlcOut {
    wall_ms: u64,
    counter: u32,
}

fn hlc(h: Hlc) -> HlcOut {
    HlcOut { wall_ms: h.wall_ms, counter: h.counter }
}

/// The `anomaly` body.
#[derive(Debug)]
pub struct AnomalyOut<'a>(&'a AnomalyEvent);

impl Serialize for AnomalyOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'b> {
            v: u8,
            meter: &'b str,
            kind: &'static str,
            severity: &'static str,
            z: f64,
            value: f64,
            mean: f64,
            std: f64,
            ts: f64,
            evaluations: u32,
            score: f64,
        }
        let a = self.0;
        Body {
            v: V,
            meter: &a.meter,
            kind: a.kind.as_str(),
            severity: a.severity.as_str(),
            z: a.z,
            value: a.value,
            mean: a.mean,
            std: a.std,
            ts: a.ts,
            evaluations: a.evaluations,
            score: a.score,
        }
        .serialize(s)
    }
}

/// The `cleared` body.
#[derive(Debug)]
pub struct ClearedOut<'a>(&'a ClearedEvent);

impl Serialize for ClearedOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'b> {
            v: u8,
            meter: &'b str,
            kind: &'static str,
            at: f64,
        }
        Body { v: V, meter: &self.0.meter, kind: self.0.kind.as_str(), at: self.0.at }.serialize(s)
    }
}

/// The `stats` body.
#[derive(Debug)]
pub struct StatsOut<'a>(&'a StatsEvent, Option<f64>);

impl Serialize for StatsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            v: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<f64>,
            meters: u32,
            window: u32,
            linear_memory_bytes: f64,
            engine_bytes: f64,
            readings_ingested: f64,
            readings_rejected: f64,
            evaluations: f64,
            last_tick_eval_ms: f64,
            active_alerts: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            stream: Option<StreamStatsOut>,
            #[serde(skip_serializing_if = "Option::is_none")]
            groups: Option<GroupsStatsOut>,
            #[serde(skip_serializing_if = "Option::is_none")]
            series: Option<SeriesStatsOut>,
        }
        let t = self.0;
        Body {
            v: V,
            id: self.1,
            meters: t.meters,
            window: t.window,
            linear_memory_bytes: t.linear_memory_bytes,
            engine_bytes: t.engine_bytes,
            readings_ingested: t.readings_ingested,
            readings_rejected: t.readings_rejected,
            evaluations: t.evaluations,
            last_tick_eval_ms: t.last_tick_eval_ms,
            active_alerts: t.active_alerts,
            stream: t.stream.map(|s| StreamStatsOut {
                state: s.state.map_or("disconnected", |x| x.as_str()),
                gaps: Count(i128::from(s.gaps)),
                resumes_ok: Count(i128::from(s.resumes_ok)),
                resumes_failed: Count(i128::from(s.resumes_failed)),
                credit_exhausted: Count(i128::from(s.credit_exhausted)),
                credit_overruns: Count(i128::from(s.credit_overruns)),
                coalesced_updates: Count(i128::from(s.coalesced_updates)),
                snapshot_fetches: Count(i128::from(s.snapshot_fetches)),
                evictions: Count(i128::from(s.evictions)),
                refused_entities: Count(i128::from(s.refused_entities)),
                detail_cache_hits: Count(i128::from(s.detail_cache_hits)),
                reconnects: Count(i128::from(s.reconnects)),
                queue_depth: Count(i128::from(s.queue_depth)),
                meter_entities: Count(i128::from(s.meter_entities)),
                notices: Count(i128::from(s.notices)),
                details_cached: Count(i128::from(s.details_cached)),
            }),
            groups: t.groups.as_ref().map(groups_stats_out),
            series: t.series.as_ref().map(series_stats_out),
        }
        .serialize(s)
    }
}

/// The `error` body: `code`, `message`, `position` when the error is about an item.
#[derive(Debug)]
pub struct ErrorOut<'a>(&'a CoreError, Option<f64>);

impl Serialize for ErrorOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'b> {
            v: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<f64>,
            code: &'static str,
            message: &'b str,
            #[serde(skip_serializing_if = "Option::is_none")]
            position: Option<u32>,
        }
        let e = self.0;
        Body { v: V, id: self.1, code: e.code.as_str(), message: &e.message, position: e.position }
            .serialize(s)
    }
}

/// The `warning` body.
#[derive(Debug)]
pub struct WarningOut<'a>(&'a WarningEvent);

impl Serialize for WarningOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'b> {
            v: u8,
            code: &'static str,
            message: &'b str,
        }
        Body { v: V, code: self.0.code.as_str(), message: &self.0.message }.serialize(s)
    }
}

/// The `window` body: `values` oldest first (the binding sends a `Float64Array`).
#[derive(Serialize, Debug)]
pub struct WindowOut<'a> {
    v: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<f64>,
    meter: &'a str,
    values: &'a [f64],
}

/// The `meter` body.
#[derive(Debug)]
pub struct MeterOut<'a>(&'a MeterSnapshot, Option<f64>);

impl Serialize for MeterOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'b> {
            v: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<f64>,
            meter: &'b str,
            count: u32,
            mean: f64,
            variance: f64,
            skewness: f64,
            excess_kurtosis: f64,
            last_ts: f64,
            alerts: Vec<&'static str>,
            score: f64,
        }
        let m = self.0;
        Body {
            v: V,
            id: self.1,
            meter: &m.meter,
            count: m.count,
            mean: m.mean,
            variance: m.variance,
            skewness: m.skewness,
            excess_kurtosis: m.excess_kurtosis,
            last_ts: m.last_ts,
            alerts: m.alerts.iter().map(|k: &AnomalyKind| k.as_str()).collect(),
            score: m.score,
        }
        .serialize(s)
    }
}

/// The `totals` body.
#[derive(Debug)]
pub struct TotalsOut<'a>(&'a TotalsEvent, Option<f64>);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BucketOut {
    hour: f64,
    total: Count,
    as_of: Option<HlcOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceOut<'b> {
    resource: &'b str,
    unit: &'b str,
    decimals: u8,
    total: Count,
    current_hour: Count,
    buckets: Vec<BucketOut>,
}

fn resource_out(r: &ResourceTotals) -> ResourceOut<'_> {
    let bucket = |b: &BucketTotal| BucketOut {
        hour: b.hour_ms,
        total: Count(i128::from(b.total)),
        as_of: b.as_of.map(hlc),
    };
    ResourceOut {
        resource: &r.resource,
        unit: &r.unit,
        decimals: r.decimals,
        total: Count(i128::from(r.total)),
        current_hour: Count(i128::from(r.current_hour)),
        buckets: r.buckets.iter().map(bucket).collect(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountersOut {
    live_pending: Count,
    live_counted: Count,
    duplicates: Count,
    covered: Count,
    unverifiable: Count,
    overflow: Count,
    late: Count,
    rest_applied: Count,
    stale_rest: Count,
    refused_rest: Count,
    refused_clocks: Count,
    clock_regressions: Count,
    gaps: Count,
    fetches: Count,
}

fn counters_out(c: &LedgerCounters) -> CountersOut {
    let n = |x: u64| Count(i128::from(x));
    CountersOut {
        live_pending: n(c.live_pending),
        live_counted: n(c.live_counted),
        duplicates: n(c.duplicates),
        covered: n(c.covered),
        unverifiable: n(c.unverifiable),
        overflow: n(c.overflow),
        late: n(c.late),
        rest_applied: n(c.rest_applied),
        stale_rest: n(c.stale_rest),
        refused_rest: n(c.refused_rest),
        refused_clocks: n(c.refused_clocks),
        clock_regressions: n(c.clock_regressions),
        gaps: n(c.gaps),
        fetches: n(c.fetches),
    }
}

impl Serialize for TotalsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'b> {
            v: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<f64>,
            hlc: HlcOut,
            node: u32,
            as_of: Option<HlcOut>,
            incomplete: bool,
            current_hour: f64,
            resources: Vec<ResourceOut<'b>>,
            counters: CountersOut,
            frames: u32,
        }
        let t = self.0;
        Body {
            v: V,
            id: self.1,
            hlc: hlc(t.hlc),
            node: t.node,
            as_of: t.as_of.map(hlc),
            incomplete: t.incomplete,
            current_hour: t.current_hour_ms,
            resources: t.resources.iter().map(resource_out).collect(),
            counters: counters_out(&t.counters),
            frames: t.frames,
        }
        .serialize(s)
    }
}

/// The `fetch` body: `reason`, `minAsOf` (HLC or `null`), `fromHour`.
#[derive(Debug)]
pub struct FetchOut<'a>(&'a FetchRequest);

impl Serialize for FetchOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            v: u8,
            reason: &'static str,
            min_as_of: Option<HlcOut>,
            from_hour: f64,
        }
        let f = self.0;
        Body {
            v: V,
            reason: f.reason.as_str(),
            min_as_of: f.min_as_of.map(hlc),
            from_hour: f.from_hour_ms,
        }
        .serialize(s)
    }
}

/// The `connect` body: `url` (`null`: the configured stream URL).
#[derive(Serialize, Debug)]
pub struct ConnectOut<'a> {
    v: u8,
    url: Option<&'a str>,
}

/// The `send` body: `data`, the text to send on the socket.
#[derive(Serialize, Debug)]
pub struct SendOut<'a> {
    v: u8,
    data: &'a str,
}

/// The `close` body: `code`, `reason`.
#[derive(Serialize, Debug)]
pub struct CloseOut<'a> {
    v: u8,
    code: u16,
    reason: &'a str,
}

/// The session's `fetch` body: `requestId`, `path` (relative to the feed base URL).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StreamFetchOut<'a> {
    v: u8,
    request_id: Count,
    path: &'a str,
}

/// The `connection` body: `state`, `attempt`, `nextRetryAt`, `lastCloseCode`, `reason`.
#[derive(Debug)]
pub struct ConnectionOut<'a>(&'a ConnectionStatus);

impl Serialize for ConnectionOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'b> {
            v: u8,
            state: &'static str,
            attempt: u32,
            next_retry_at: Option<f64>,
            last_close_code: Option<u16>,
            reason: &'b str,
        }
        let c = self.0;
        Body {
            v: V,
            state: c.state.as_str(),
            attempt: c.attempt,
            next_retry_at: c.next_retry_ms,
            last_close_code: c.last_close_code,
            reason: &c.reason,
        }
        .serialize(s)
    }
}

/// The `meters` body: `channel`, `upsert` rows, `remove` ids.
#[derive(Debug)]
pub struct MetersOut<'a>(&'a MetersEvent);

impl Serialize for MetersOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'b> {
            meter: &'b str,
            resource: &'b str,
            ts: f64,
            value: f64,
            status: &'static str,
            count: Count,
            /// Exact decimal text.
            total: String,
        }
        #[derive(Serialize)]
        struct Body<'b> {
            v: u8,
            channel: &'b str,
            upsert: Vec<Row<'b>>,
            remove: &'b [String],
            frames: u32,
        }
        let m = self.0;
        let upsert = m
            .upsert
            .iter()
            .map(|r| Row {
                meter: &r.meter,
                resource: &r.resource,
                ts: r.ts,
                value: r.value,
                status: r.status.as_str(),
                count: Count(i128::from(r.count)),
                total: crate::core::decimal::format_units(r.total.mantissa, r.total.scale),
            })
            .collect();
        Body { v: V, channel: &m.channel, upsert, remove: &m.remove, frames: m.frames }.serialize(s)
    }
}

/// The `notices` body: `upsert` notices, `remove` ids.
#[derive(Debug)]
pub struct NoticesOut<'a>(&'a NoticesEvent);

impl Serialize for NoticesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Row<'b> {
            id: &'b str,
            severity: &'static str,
            title: &'b str,
            text: &'b str,
            from_ms: f64,
            to_ms: f64,
        }
        #[derive(Serialize)]
        struct Body<'b> {
            v: u8,
            upsert: Vec<Row<'b>>,
            remove: &'b [String],
            frames: u32,
        }
        let n = self.0;
        let upsert = n
            .upsert
            .iter()
            .map(|r| Row {
                id: &r.id,
                severity: r.severity.as_str(),
                title: &r.title,
                text: &r.text,
                from_ms: r.from_ms,
                to_ms: r.to_ms,
            })
            .collect();
        Body { v: V, upsert, remove: &n.remove, frames: n.frames }.serialize(s)
    }
}

/// The `detail` body: `meter`, `detail` (the `/meters/{id}` object), `cached`.
#[derive(Debug)]
pub struct DetailOut<'a>(&'a DetailEvent);

impl Serialize for DetailOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'b> {
            v: u8,
            meter: &'b str,
            detail: serde_json::Value,
            cached: bool,
        }
        let d = self.0;
        // Checked to be a JSON object at the edge; `null` should it ever not parse.
        let detail = serde_json::from_str(&d.body).unwrap_or(serde_json::Value::Null);
        Body { v: V, meter: &d.meter, detail, cached: d.cached }.serialize(s)
    }
}

/// The `stream` part of `stats` (counts; no timings).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct StreamStatsOut {
    state: &'static str,
    gaps: Count,
    resumes_ok: Count,
    resumes_failed: Count,
    credit_exhausted: Count,
    credit_overruns: Count,
    coalesced_updates: Count,
    snapshot_fetches: Count,
    evictions: Count,
    refused_entities: Count,
    detail_cache_hits: Count,
    reconnects: Count,
    queue_depth: Count,
    meter_entities: Count,
    notices: Count,
    details_cached: Count,
}

/// The `ack` body: `id`, `accepted`, `refused`, `ms`.
#[derive(Serialize, Debug)]
pub struct AckOut {
    v: u8,
    id: f64,
    accepted: f64,
    refused: f64,
    ms: f64,
}

/// The `groups` part of `stats`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupsStatsOut {
    version: Option<Count>,
    groups: u32,
    meters: u32,
    memberships: u32,
    age_ms: Option<f64>,
    refresh_latency_ms: Option<f64>,
    consecutive_failures: u32,
    refreshes: Count,
    failures: Count,
    row_bytes_per_meter: u32,
}

fn groups_stats_out(g: &GroupsStats) -> GroupsStatsOut {
    GroupsStatsOut {
        version: g.version.map(|v| Count(i128::from(v))),
        groups: g.groups,
        meters: g.meters,
        memberships: g.memberships,
        age_ms: g.age_ms,
        refresh_latency_ms: g.refresh_latency_ms,
        consecutive_failures: g.consecutive_failures,
        refreshes: Count(i128::from(g.refreshes)),
        failures: Count(i128::from(g.failures)),
        row_bytes_per_meter: g.row_bytes_per_meter,
    }
}

/// The `groups` body: `version`, `currentHour`, `completeFrom`, `groups`, `unassigned`.
#[derive(Debug)]
pub struct GroupsOut<'a>(&'a GroupsEvent);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupOut<'b> {
    group: &'b str,
    meters: u32,
    resources: Vec<ResourceOut<'b>>,
    incomplete: bool,
    readings_per_sec: f64,
    active_alerts: u32,
}

fn group_out(g: &GroupTotals) -> GroupOut<'_> {
    GroupOut {
        group: &g.group,
        meters: g.meters,
        resources: g.resources.iter().map(resource_out).collect(),
        incomplete: g.incomplete,
        readings_per_sec: g.readings_per_sec,
        active_alerts: g.active_alerts,
    }
}

impl Serialize for GroupsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'b> {
            v: u8,
            version: Option<Count>,
            current_hour: f64,
            complete_from: Option<f64>,
            groups: Vec<GroupOut<'b>>,
            unassigned: GroupOut<'b>,
        }
        let g = self.0;
        Body {
            v: V,
            version: g.version.map(|v| Count(i128::from(v))),
            current_hour: g.current_hour_ms,
            complete_from: g.complete_from_ms,
            groups: g.groups.iter().map(group_out).collect(),
            unassigned: group_out(&g.unassigned),
        }
        .serialize(s)
    }
}

/// `stats.series`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct SeriesStatsOut {
    cache_hits: Count,
    recomputes: Count,
    chunks: Count,
    queue_depth: u32,
    subscriptions: u32,
    pairs: Count,
    bytes_per_pair: u32,
    missed: Count,
}

fn series_stats_out(x: &SeriesStats) -> SeriesStatsOut {
    SeriesStatsOut {
        cache_hits: Count(i128::from(x.cache_hits)),
        recomputes: Count(i128::from(x.recomputes)),
        chunks: Count(i128::from(x.chunks)),
        queue_depth: x.queue_depth,
        subscriptions: x.subscriptions,
        pairs: Count(i128::from(x.pairs)),
        bytes_per_pair: x.bytes_per_pair,
        missed: Count(i128::from(x.missed)),
    }
}

/// The `series` body (PROTOCOL.md 4, `series`): the answer, or
/// `state: "computing"` with `retryAfterMs`. Sums are in resource units;
/// `min`/`max`/`last` of an empty bucket are NaN (`null` in JSON). With
/// `arrays` false the six arrays are left out (the binding adds them as typed
/// arrays on one transferred buffer).
#[derive(Debug)]
pub struct SeriesOut<'a> {
    pub(crate) event: &'a SeriesEvent,
    pub(crate) id: Option<f64>,
    pub(crate) arrays: bool,
}

impl Serialize for SeriesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Computing<'b> {
            v: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            sub: Option<&'b str>,
            state: &'static str,
            retry_after_ms: f64,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'b> {
            v: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            sub: Option<&'b str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            meter: Option<&'b str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            group: Option<&'b str>,
            resource: &'b str,
            resolution: &'static str,
            step_ms: f64,
            from: f64,
            to: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            ts: Option<&'b [f64]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            count: Option<&'b [f64]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            sum: Option<Vec<f64>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            min: Option<Vec<f64>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            max: Option<Vec<f64>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            last: Option<Vec<f64>>,
            source_watermark: Option<f64>,
            incomplete: bool,
            cached: bool,
        }
        let sub = self.event.sub.as_deref();
        let (d, cached) = match &self.event.body {
            SeriesBody::Computing { retry_after_ms } => {
                return Computing {
                    v: V,
                    id: self.id,
                    sub,
                    state: "computing",
                    retry_after_ms: *retry_after_ms,
                }
                .serialize(s)
            }
            SeriesBody::Data { data, cached } => (data, *cached),
        };
        let a = self.arrays;
        let (meter, group) = match &d.target {
            SeriesTarget::Meter(m) => (Some(m.as_str()), None),
            SeriesTarget::Group(g) => (None, Some(g.as_str())),
        };
        let cols = series_columns(d);
        Body {
            v: V,
            id: self.id,
            sub,
            meter,
            group,
            resource: &d.resource,
            resolution: d.resolution.as_str(),
            step_ms: d.resolution.step_ms(),
            from: d.from_ms(),
            to: d.to_ms(),
            ts: a.then_some(&d.ts[..]),
            count: a.then_some(&d.count[..]),
            sum: a.then(|| cols[0].clone()),
            min: a.then(|| cols[1].clone()),
            max: a.then(|| cols[2].clone()),
            last: a.then(|| cols[3].clone()),
            source_watermark: d.source_watermark,
            incomplete: d.incomplete,
            cached,
        }
        .serialize(s)
    }
}

/// A series' `sum`, `min`, `max`, `last` in resource units (units / 10^decimals).
pub(crate) fn series_columns(d: &crate::core::series::SeriesData) -> [Vec<f64>; 4] {
    let scale = 10f64.powi(i32::from(d.decimals));
    let units = |v: &[f64]| v.iter().map(|x| x / scale).collect::<Vec<f64>>();
    [
        d.sum_units.iter().map(|&u| u as f64 / scale).collect(),
        units(&d.min),
        units(&d.max),
        units(&d.last),
    ]
}
