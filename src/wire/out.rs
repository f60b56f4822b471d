//! Outbound wire shapes (PROTOCOL.md section 4): every message an object with
//! a `type` tag, `v: 1` and camelCase fields.
//!
//! One definition, [`emit`], walks a core `Outbound` into an [`Emit`]ter, field
//! by field in wire order. Two emitters exist: natively [`JsonText`] writes the
//! compact JSON text serde_json would (so [`WireOut`] serialises with serde
//! for the CLI, the feed server and the tests); in the wasm build
//! `src/wasm/outbound.rs` builds the JS objects directly, without serde. No
//! `u64`/`i64` ever crosses as a number beyond 2^53 − 1 (totals and counters
//! past it become decimal strings; HLCs cross as `{wallMs, counter}`, both exact).

use crate::core::error::CoreError;
use crate::core::event::{
    AnomalyEvent, BucketTotal, ClearedEvent, FetchRequest, LedgerCounters, MeterSnapshot, Outbound,
    ResourceTotals, StatsEvent, TotalsEvent,
};
use crate::core::event::{ConnectionStatus, MetersEvent, NoticesEvent, StreamRequest};
use crate::core::event::{GroupTotals, GroupsEvent, GroupsStats, SeriesEvent, SeriesStats};
use crate::core::hlc::Hlc;
use crate::core::series::{SeriesBody, SeriesTarget};

/// Largest integer a JS number carries exactly, 2^53 − 1.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Where a message's fields go, in wire order. Inside a list the keys are
/// ignored (`""`). Numbers are `num` (an `f64`: `1.0` in JSON text) or `int`
/// (an integer: `1`), a distinction JS does not see.
pub(crate) trait Emit {
    fn num(&mut self, k: &'static str, v: f64);
    fn int(&mut self, k: &'static str, v: i64);
    fn str(&mut self, k: &'static str, v: &str);
    fn bool(&mut self, k: &'static str, v: bool);
    fn null(&mut self, k: &'static str);
    /// Opens an object (`list` false) or an array, the value of `k`.
    fn open(&mut self, k: &'static str, list: bool);
    /// Closes the innermost open object or array.
    fn close(&mut self);
    /// Number columns (`values` of `window`, the six of `series`): plain
    /// arrays in JSON (NaN as `null`), `Float64Array` views of one
    /// transferred buffer in the wasm build.
    fn columns(&mut self, cols: &[(&'static str, &[f64])]);
    /// A JSON object text received from the server (`detail`), as a value;
    /// `null` should it not parse.
    fn json(&mut self, k: &'static str, text: &str);
}

/// `v`, first in every body.
const V: i64 = super::PROTOCOL_VERSION as i64;

/// An integer count: a number up to 2^53 − 1 in magnitude, a decimal string past it.
fn count<E: Emit>(e: &mut E, k: &'static str, x: u64) {
    match i64::try_from(x) {
        Ok(x) if x <= MAX_SAFE_INTEGER => e.int(k, x),
        _ => e.str(k, &x.to_string()),
    }
}

fn opt_num<E: Emit>(e: &mut E, k: &'static str, x: Option<f64>) {
    match x {
        Some(x) => e.num(k, x),
        None => e.null(k),
    }
}

/// An HLC as `{wallMs, counter}` (`null` if none).
fn hlc<E: Emit>(e: &mut E, k: &'static str, h: Option<Hlc>) {
    let Some(h) = h else { return e.null(k) };
    e.open(k, false);
    count(e, "wallMs", h.wall_ms);
    e.int("counter", i64::from(h.counter));
    e.close();
}

/// `{type, v}` and `id` when the message answers a query.
fn head<E: Emit>(e: &mut E, ty: &'static str, id: Option<f64>) {
    e.str("type", ty);
    e.int("v", V);
    if let Some(id) = id {
        e.num("id", id);
    }
}

/// Writes `out` into `e` as one message. The one definition of the wire shapes.
pub(crate) fn emit<E: Emit>(out: &Outbound, e: &mut E) {
    emit_answer(out, None, e)
}

/// `out`, carrying the `id` of the query it answers. What a worker posts while
/// it ingests and ticks (alerts, stats, errors, warnings, acks) is written
/// here; the rest by `cold_emit`, out of line so that it sits in the module's
/// cold part (scripts/split-wasm.mjs, docs/SIZE.md "The split").
fn emit_answer<E: Emit>(out: &Outbound, id: Option<f64>, e: &mut E) {
    if let Outbound::Answer { id, answer } = out {
        return emit_answer(answer, Some(*id), e);
    }
    e.open("", false);
    match out {
        Outbound::Anomaly(a) => anomaly(e, a),
        Outbound::Cleared(c) => cleared(e, c),
        Outbound::Stats(s) => stats(e, s, id),
        Outbound::Error(x) => error(e, x, id),
        Outbound::Warning(w) => {
            head(e, "warning", None);
            e.str("code", w.code.as_str());
            e.str("message", &w.message);
            if let Some(n) = w.count {
                count(e, "count", n);
            }
        }
        Outbound::Ack(a) => {
            head(e, "ack", None);
            e.num("id", a.id);
            e.num("accepted", a.accepted);
            e.num("refused", a.refused);
            e.num("ms", a.ms);
        }
        other => cold_emit(other, id, e),
    }
    e.close();
}

/// The outputs [`emit_answer`] leaves to the cold part, between its `open`
/// and `close`.
#[inline(never)]
fn cold_emit<E: Emit>(out: &Outbound, id: Option<f64>, e: &mut E) {
    match out {
        Outbound::Answer { .. }
        | Outbound::Anomaly(_)
        | Outbound::Cleared(_)
        | Outbound::Stats(_)
        | Outbound::Error(_)
        | Outbound::Warning(_)
        | Outbound::Ack(_) => {}
        Outbound::Window { meter, values } => {
            head(e, "window", id);
            e.str("meter", meter);
            e.columns(&[("values", values)]);
        }
        Outbound::Meter(m) => meter(e, m, id),
        Outbound::Totals(t) => totals(e, t, id),
        Outbound::Fetch(f) => fetch(e, f),
        Outbound::Stream(StreamRequest::Connect { url }) => {
            head(e, "connect", None);
            match url {
                Some(u) => e.str("url", u),
                None => e.null("url"),
            }
        }
        Outbound::Stream(StreamRequest::Send { text }) => {
            head(e, "send", None);
            e.str("data", text);
        }
        Outbound::Stream(StreamRequest::Close { code, reason }) => {
            head(e, "close", None);
            e.int("code", i64::from(*code));
            e.str("reason", reason);
        }
        Outbound::Stream(StreamRequest::Fetch { request_id, path }) => {
            // A session fetch: `requestId` and `path` (the ledger's own
            // catch-up `fetch` has neither).
            head(e, "fetch", None);
            count(e, "requestId", *request_id);
            e.str("path", path);
        }
        Outbound::Connection(c) => connection(e, c),
        Outbound::Meters(m) => meters(e, m),
        Outbound::Notices(n) => notices(e, n),
        Outbound::Detail(d) => {
            head(e, "detail", None);
            e.str("meter", &d.meter);
            e.json("detail", &d.body);
            e.bool("cached", d.cached);
        }
        Outbound::Groups(g) => groups(e, g),
        Outbound::Series(s) => series(e, s, id),
    }
}

fn anomaly<E: Emit>(e: &mut E, a: &AnomalyEvent) {
    head(e, "anomaly", None);
    e.str("meter", &a.meter);
    e.str("kind", a.kind.as_str());
    e.str("severity", a.severity.as_str());
    e.num("z", a.z);
    e.num("value", a.value);
    e.num("mean", a.mean);
    e.num("std", a.std);
    e.num("ts", a.ts);
    e.int("evaluations", i64::from(a.evaluations));
    e.num("score", a.score);
}

fn cleared<E: Emit>(e: &mut E, c: &ClearedEvent) {
    head(e, "cleared", None);
    e.str("meter", &c.meter);
    e.str("kind", c.kind.as_str());
    e.num("at", c.at);
}

fn stats<E: Emit>(e: &mut E, t: &StatsEvent, id: Option<f64>) {
    head(e, "stats", id);
    e.int("meters", i64::from(t.meters));
    e.int("window", i64::from(t.window));
    e.num("linearMemoryBytes", t.linear_memory_bytes);
    e.num("engineBytes", t.engine_bytes);
    e.num("readingsIngested", t.readings_ingested);
    e.num("readingsRejected", t.readings_rejected);
    e.num("evaluations", t.evaluations);
    e.num("lastTickEvalMs", t.last_tick_eval_ms);
    e.int("activeAlerts", i64::from(t.active_alerts));
    if let Some(s) = &t.stream {
        e.open("stream", false);
        e.str("state", s.state.map_or("disconnected", |x| x.as_str()));
        for (k, x) in [
            ("gaps", s.gaps),
            ("resumesOk", s.resumes_ok),
            ("resumesFailed", s.resumes_failed),
            ("creditExhausted", s.credit_exhausted),
            ("creditOverruns", s.credit_overruns),
            ("coalescedUpdates", s.coalesced_updates),
            ("snapshotFetches", s.snapshot_fetches),
            ("evictions", s.evictions),
            ("refusedEntities", s.refused_entities),
            ("detailCacheHits", s.detail_cache_hits),
            ("reconnects", s.reconnects),
            ("queueDepth", s.queue_depth),
            ("meterEntities", s.meter_entities),
            ("notices", s.notices),
            ("detailsCached", s.details_cached),
        ] {
            count(e, k, x);
        }
        e.close();
    }
    if let Some(g) = &t.groups {
        groups_stats(e, g);
    }
    if let Some(x) = &t.series {
        series_stats(e, x);
    }
    e.open("memory", false);
    for (k, x) in t.memory.parts() {
        count(e, k, x);
    }
    e.close();
}

/// The `error` body: `code`, `message`, `position` when the error is about an item.
fn error<E: Emit>(e: &mut E, x: &CoreError, id: Option<f64>) {
    head(e, "error", id);
    e.str("code", x.code.as_str());
    e.str("message", &x.message);
    if let Some(p) = x.position {
        e.int("position", i64::from(p));
    }
}

fn meter<E: Emit>(e: &mut E, m: &MeterSnapshot, id: Option<f64>) {
    head(e, "meter", id);
    e.str("meter", &m.meter);
    e.int("count", i64::from(m.count));
    e.num("mean", m.mean);
    e.num("variance", m.variance);
    e.num("skewness", m.skewness);
    e.num("excessKurtosis", m.excess_kurtosis);
    e.num("lastTs", m.last_ts);
    e.open("alerts", true);
    for k in &m.alerts {
        e.str("", k.as_str());
    }
    e.close();
    e.num("score", m.score);
}

fn bucket<E: Emit>(e: &mut E, b: &BucketTotal) {
    e.open("", false);
    e.num("hour", b.hour_ms);
    count_i128(e, "total", i128::from(b.total));
    hlc(e, "asOf", b.as_of);
    e.close();
}

/// A signed count (bucket and resource totals).
fn count_i128<E: Emit>(e: &mut E, k: &'static str, x: i128) {
    match i64::try_from(x) {
        Ok(x) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&x) => e.int(k, x),
        _ => e.str(k, &x.to_string()),
    }
}

fn resources<E: Emit>(e: &mut E, rs: &[ResourceTotals]) {
    e.open("resources", true);
    for r in rs {
        e.open("", false);
        e.str("resource", &r.resource);
        e.str("unit", &r.unit);
        e.int("decimals", i64::from(r.decimals));
        count_i128(e, "total", i128::from(r.total));
        count_i128(e, "currentHour", i128::from(r.current_hour));
        e.open("buckets", true);
        for b in &r.buckets {
            bucket(e, b);
        }
        e.close();
        e.close();
    }
    e.close();
}

fn counters<E: Emit>(e: &mut E, c: &LedgerCounters) {
    e.open("counters", false);
    for (k, x) in [
        ("livePending", c.live_pending),
        ("liveCounted", c.live_counted),
        ("duplicates", c.duplicates),
        ("covered", c.covered),
        ("unverifiable", c.unverifiable),
        ("overflow", c.overflow),
        ("late", c.late),
        ("restApplied", c.rest_applied),
        ("staleRest", c.stale_rest),
        ("refusedRest", c.refused_rest),
        ("refusedClocks", c.refused_clocks),
        ("clockRegressions", c.clock_regressions),
        ("gaps", c.gaps),
        ("fetches", c.fetches),
        ("catchupPages", c.catchup_pages),
    ] {
        count(e, k, x);
    }
    e.close();
}

fn totals<E: Emit>(e: &mut E, t: &TotalsEvent, id: Option<f64>) {
    head(e, "totals", id);
    hlc(e, "hlc", Some(t.hlc));
    e.int("node", i64::from(t.node));
    hlc(e, "asOf", t.as_of);
    e.bool("incomplete", t.incomplete);
    e.num("currentHour", t.current_hour_ms);
    resources(e, &t.resources);
    counters(e, &t.counters);
    e.int("frames", i64::from(t.frames));
}

/// The `fetch` body: `reason`, `minAsOf` (HLC or `null`), `fromHour`, `path`
/// (what to `GET`, [`FetchRequest::path`]).
fn fetch<E: Emit>(e: &mut E, f: &FetchRequest) {
    head(e, "fetch", None);
    e.str("reason", f.reason.as_str());
    hlc(e, "minAsOf", f.min_as_of);
    e.num("fromHour", f.from_hour_ms);
    if let Some(to) = f.to_hour_ms {
        e.num("toHour", to);
    }
    e.str("path", &f.path());
}

/// The `connection` body: `state`, `attempt`, `nextRetryAt`, `lastCloseCode`, `reason`.
fn connection<E: Emit>(e: &mut E, c: &ConnectionStatus) {
    head(e, "connection", None);
    e.str("state", c.state.as_str());
    e.int("attempt", i64::from(c.attempt));
    opt_num(e, "nextRetryAt", c.next_retry_ms);
    match c.last_close_code {
        Some(x) => e.int("lastCloseCode", i64::from(x)),
        None => e.null("lastCloseCode"),
    }
    e.str("reason", &c.reason);
}

fn removed<E: Emit>(e: &mut E, ids: &[String]) {
    e.open("remove", true);
    for id in ids {
        e.str("", id);
    }
    e.close();
}

/// The `meters` body: `channel`, `upsert` rows, `remove` ids.
fn meters<E: Emit>(e: &mut E, m: &MetersEvent) {
    head(e, "meters", None);
    e.str("channel", &m.channel);
    e.open("upsert", true);
    for r in &m.upsert {
        e.open("", false);
        e.str("meter", &r.meter);
        e.str("resource", &r.resource);
        e.num("ts", r.ts);
        e.num("value", r.value);
        e.str("status", r.status.as_str());
        count(e, "count", r.count);
        // Exact decimal text.
        e.str("total", &crate::core::decimal::format_units(r.total.mantissa, r.total.scale));
        e.close();
    }
    e.close();
    removed(e, &m.remove);
    e.int("frames", i64::from(m.frames));
}

/// The `notices` body: `upsert` notices, `remove` ids.
fn notices<E: Emit>(e: &mut E, n: &NoticesEvent) {
    head(e, "notices", None);
    e.open("upsert", true);
    for r in &n.upsert {
        e.open("", false);
        e.str("id", &r.id);
        e.str("severity", r.severity.as_str());
        e.str("title", &r.title);
        e.str("text", &r.text);
        e.num("fromMs", r.from_ms);
        e.num("toMs", r.to_ms);
        e.close();
    }
    e.close();
    removed(e, &n.remove);
    e.int("frames", i64::from(n.frames));
}

/// The `groups` part of `stats`.
fn groups_stats<E: Emit>(e: &mut E, g: &GroupsStats) {
    e.open("groups", false);
    match g.version {
        Some(v) => count(e, "version", v),
        None => e.null("version"),
    }
    e.int("groups", i64::from(g.groups));
    e.int("meters", i64::from(g.meters));
    e.int("memberships", i64::from(g.memberships));
    opt_num(e, "ageMs", g.age_ms);
    opt_num(e, "refreshLatencyMs", g.refresh_latency_ms);
    e.int("consecutiveFailures", i64::from(g.consecutive_failures));
    count(e, "refreshes", g.refreshes);
    count(e, "failures", g.failures);
    e.int("rowBytesPerMeter", i64::from(g.row_bytes_per_meter));
    e.int("rowLog", i64::from(g.row_log));
    e.int("rowLogCap", i64::from(g.row_log_cap));
    count(e, "rebuilds", g.rebuilds);
    count(e, "rebuildsRefused", g.rebuilds_refused);
    e.close();
}

fn group<E: Emit>(e: &mut E, k: &'static str, g: &GroupTotals) {
    e.open(k, false);
    e.str("group", &g.group);
    e.int("meters", i64::from(g.meters));
    resources(e, &g.resources);
    e.bool("incomplete", g.incomplete);
    e.num("readingsPerSec", g.readings_per_sec);
    e.int("activeAlerts", i64::from(g.active_alerts));
    e.close();
}

/// The `groups` body: `version`, `currentHour`, `completeFrom`, `groups`, `unassigned`.
fn groups<E: Emit>(e: &mut E, g: &GroupsEvent) {
    head(e, "groups", None);
    match g.version {
        Some(v) => count(e, "version", v),
        None => e.null("version"),
    }
    e.num("currentHour", g.current_hour_ms);
    opt_num(e, "completeFrom", g.complete_from_ms);
    e.open("groups", true);
    for x in &g.groups {
        group(e, "", x);
    }
    e.close();
    group(e, "unassigned", &g.unassigned);
}

/// `stats.series`.
fn series_stats<E: Emit>(e: &mut E, x: &SeriesStats) {
    e.open("series", false);
    count(e, "cacheHits", x.cache_hits);
    count(e, "recomputes", x.recomputes);
    count(e, "chunks", x.chunks);
    e.int("queueDepth", i64::from(x.queue_depth));
    e.int("subscriptions", i64::from(x.subscriptions));
    count(e, "pairs", x.pairs);
    e.int("bytesPerPair", i64::from(x.bytes_per_pair));
    count(e, "missed", x.missed);
    count(e, "maxPairs", x.max_pairs);
    e.close();
}

/// The `series` body (PROTOCOL.md 4, `series`): the answer, or
/// `state: "computing"` with `retryAfterMs`. Sums are in resource units;
/// `min`/`max`/`last` of an empty bucket are NaN (`null` in JSON).
fn series<E: Emit>(e: &mut E, s: &SeriesEvent, id: Option<f64>) {
    head(e, "series", id);
    if let Some(sub) = &s.sub {
        e.str("sub", sub);
    }
    let (d, cached) = match &s.body {
        SeriesBody::Computing { retry_after_ms } => {
            e.str("state", "computing");
            e.num("retryAfterMs", *retry_after_ms);
            return;
        }
        SeriesBody::Data { data, cached } => (data, *cached),
    };
    match &d.target {
        SeriesTarget::Meter(m) => e.str("meter", m),
        SeriesTarget::Group(g) => e.str("group", g),
    }
    e.str("resource", &d.resource);
    e.str("resolution", d.resolution.as_str());
    e.num("stepMs", d.resolution.step_ms());
    e.num("from", d.from_ms());
    e.num("to", d.to_ms());
    let [sum, min, max, last] = series_columns(d);
    e.columns(&[
        ("ts", &d.ts),
        ("count", &d.count),
        ("sum", &sum),
        ("min", &min),
        ("max", &max),
        ("last", &last),
    ]);
    opt_num(e, "sourceWatermark", d.source_watermark);
    e.bool("incomplete", d.incomplete);
    e.bool("cached", cached);
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

/// An outbound message in its wire shape: serialise it (natively, with
/// serde, as the JSON text [`JsonText`] writes); do not inspect it.
#[derive(Debug)]
pub struct WireOut<'a>(&'a Outbound);

/// The wire shape of `out`.
pub(crate) fn encode(out: &Outbound) -> WireOut<'_> {
    WireOut(out)
}

pub use text::JsonText;

/// The JSON text of the native users (the CLI's `replay`/`eval`, the tests).
/// It compiles for wasm too (`replay` does) but the wasm binding never
/// reaches it, so no serde code of it lands in the `.wasm`.
mod text {
    use super::{emit, Emit, WireOut};
    use serde::{Serialize, Serializer};
    use std::fmt::Write as _;

    impl WireOut<'_> {
        /// The message as compact JSON text.
        pub fn to_json(&self) -> String {
            let mut w = JsonText::default();
            emit(self.0, &mut w);
            w.text
        }
    }

    impl Serialize for WireOut<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let raw = serde_json::value::RawValue::from_string(self.to_json())
                .map_err(serde::ser::Error::custom)?;
            raw.serialize(s)
        }
    }

    /// Compact JSON text, byte for byte what serde_json writes for the same
    /// fields (floats through serde_json, so `1.0` and NaN as `null`).
    #[derive(Default)]
    pub struct JsonText {
        text: String,
        /// Per open object or array: whether it is a list, and whether it has an item yet.
        open: Vec<(bool, bool)>,
    }

    impl JsonText {
        fn key(&mut self, k: &str) {
            if let Some((list, any)) = self.open.last_mut() {
                if *any {
                    self.text.push(',');
                }
                *any = true;
                if !*list {
                    self.quoted(k);
                    self.text.push(':');
                }
            }
        }

        fn quoted(&mut self, s: &str) {
            // Writing a str to a String cannot fail.
            let _ = serde_json::to_string(s).map(|q| self.text.push_str(&q));
        }

        fn float(&mut self, v: f64) {
            let _ = serde_json::to_string(&v).map(|q| self.text.push_str(&q));
        }
    }

    impl Emit for JsonText {
        fn num(&mut self, k: &'static str, v: f64) {
            self.key(k);
            self.float(v);
        }
        fn int(&mut self, k: &'static str, v: i64) {
            self.key(k);
            let _ = write!(self.text, "{v}");
        }
        fn str(&mut self, k: &'static str, v: &str) {
            self.key(k);
            self.quoted(v);
        }
        fn bool(&mut self, k: &'static str, v: bool) {
            self.key(k);
            self.text.push_str(if v { "true" } else { "false" });
        }
        fn null(&mut self, k: &'static str) {
            self.key(k);
            self.text.push_str("null");
        }
        fn open(&mut self, k: &'static str, list: bool) {
            self.key(k);
            self.text.push(if list { '[' } else { '{' });
            self.open.push((list, false));
        }
        fn close(&mut self) {
            if let Some((list, _)) = self.open.pop() {
                self.text.push(if list { ']' } else { '}' });
            }
        }
        fn columns(&mut self, cols: &[(&'static str, &[f64])]) {
            for (k, col) in cols {
                self.open(k, true);
                for &x in *col {
                    self.num("", x);
                }
                self.close();
            }
        }
        fn json(&mut self, k: &'static str, text: &str) {
            self.key(k);
            // Checked to be a JSON object at the edge; `null` should it ever
            // not parse. Through `Value`, as before: keys sorted.
            let v = serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
            let _ = serde_json::to_string(&v).map(|q| self.text.push_str(&q));
        }
    }
}
