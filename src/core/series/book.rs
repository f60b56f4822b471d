//! `SeriesBook`: what the worker keeps about series answers: the last answer
//! per query with the source it was computed from (fresh while that source
//! has not moved: freshness by watermark, not by a TTL), the subscriptions,
//! and the chunked computations of large groups with at most
//! `maxConcurrentQueries` running at once.
//!
//! Invariants:
//! - A cached answer is returned only while its [`Source`] is unchanged: the
//!   same buckets, no member changed since (the slab's change counter), the
//!   same map, nothing newly missed. So a cached answer equals a recomputed one.
//! - At most `maxSeriesSubscriptions` subscriptions, cached answers and queued
//!   computations each; past them a `series_limit` error, nothing dropped silently.

use std::collections::VecDeque;

use super::{plan, Accumulator, Plan, SeriesBody, SeriesEvent, SeriesQuery, SeriesSlab};
use super::{SeriesData, SeriesInput, SeriesTarget, MINUTE_MS};
use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Outbound;
use crate::core::ledger::HOUR_MS;
use crate::core::meters::MeterTable;

/// What an answer was computed from: equal sources give equal answers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Source {
    first: i64,
    len: usize,
    changed: u64,
    map: Option<u64>,
    incomplete: bool,
}

/// Who waits for an answer.
#[derive(Clone, Debug, PartialEq)]
enum Reply {
    /// A query, with its `id` if it had one.
    Query(Option<f64>),
    /// A subscription's update.
    Sub(String),
}

#[derive(Clone, Debug, PartialEq)]
struct Job {
    reply: Reply,
    plan: Plan,
    source: Source,
    members: Vec<u32>,
    next: usize,
    acc: Accumulator,
}

#[derive(Clone, Debug, PartialEq)]
struct Subscription {
    sub: String,
    query: SeriesQuery,
    pushed: Option<Source>,
    computing: bool,
}

/// Counters for `stats.series`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SeriesStats {
    /// Answers returned from the cache, unrecomputed.
    pub cache_hits: u64,
    /// Answers computed.
    pub recomputes: u64,
    /// Chunks of large computations run.
    pub chunks: u64,
    /// Computations waiting or running.
    pub queue_depth: u32,
    /// Subscriptions.
    pub subscriptions: u32,
    /// `(meter, resource)` pairs with a series.
    pub pairs: u64,
    /// Bytes per pair.
    pub bytes_per_pair: u32,
    /// Readings the series could not hold (older than the horizon, a full bucket, memory).
    pub missed: u64,
    /// Most pairs held (`maxSeriesPairs`, or its default: one per meter and resource).
    pub max_pairs: u64,
}

impl SeriesStats {
    /// `Some` once a series was asked for or held.
    pub fn used(self) -> Option<SeriesStats> {
        (self.pairs > 0 || self.subscriptions > 0 || self.recomputes > 0 || self.cache_hits > 0)
            .then_some(self)
    }
}

/// What a series answer reads: the engine's state, borrowed for one call.
pub struct SeriesSources<'a> {
    /// The per-meter buckets.
    pub slab: &'a SeriesSlab,
    /// The newest hour the per-meter rows may lack a reading of.
    pub rows_missed_hour: Option<i64>,
    /// Interned meters.
    pub meters: &'a MeterTable,
    /// The map in force's version.
    pub map_version: Option<u64>,
    /// A group's members (meter indices), `None` if the map has no such group.
    pub members: &'a mut dyn FnMut(&str) -> Option<Vec<u32>>,
    /// The configuration.
    pub cfg: &'a Config,
    /// Worker time, ms.
    pub now_ms: f64,
}

/// Cached answers, subscriptions and running computations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesBook {
    cache: VecDeque<(SeriesQuery, Source, SeriesData)>,
    subs: Vec<Subscription>,
    jobs: VecDeque<Job>,
    stats: SeriesStats,
}

fn limit(why: String) -> CoreError {
    CoreError::new(ErrorCode::SeriesLimit, why)
}

fn emit(reply: &Reply, body: SeriesBody, out: &mut Vec<Outbound>) {
    match reply {
        Reply::Query(id) => {
            let ev = Outbound::Series(SeriesEvent { sub: None, body });
            out.push(match id {
                Some(id) => Outbound::Answer { id: *id, answer: Box::new(ev) },
                None => ev,
            });
        }
        Reply::Sub(sub) => out.push(Outbound::Series(SeriesEvent { sub: Some(sub.clone()), body })),
    }
}

fn fail(reply: &Reply, e: CoreError, out: &mut Vec<Outbound>) {
    match reply {
        Reply::Query(Some(id)) => {
            out.push(Outbound::Answer { id: *id, answer: Box::new(Outbound::Error(e)) })
        }
        Reply::Query(None) => out.push(Outbound::Error(e)),
        Reply::Sub(sub) => out.push(Outbound::Error(CoreError {
            message: format!("series subscription '{sub}': {}", e.message),
            ..e
        })),
    }
}

impl SeriesBook {
    /// Counters now.
    pub fn stats(&self, slab: &SeriesSlab) -> SeriesStats {
        SeriesStats {
            queue_depth: self.jobs.len() as u32,
            subscriptions: self.subs.len() as u32,
            pairs: slab.pairs() as u64,
            bytes_per_pair: slab.bytes_per_pair() as u32,
            missed: slab.missed(),
            max_pairs: slab.max_pairs() as u64,
            ..self.stats
        }
    }

    /// Bytes held (the cache and the computations).
    pub fn bytes(&self) -> usize {
        let data = |d: &SeriesData| d.ts.capacity() * 6 * 8;
        self.cache.iter().map(|(_, _, d)| data(d)).sum::<usize>()
            + self.jobs.iter().map(|j| j.members.capacity() * 4 + j.plan.len * 40).sum::<usize>()
    }

    /// A `series` query.
    pub fn query(
        &mut self,
        q: SeriesQuery,
        id: Option<f64>,
        src: &mut SeriesSources,
        out: &mut Vec<Outbound>,
    ) {
        self.run(Reply::Query(id), q, src, out);
    }

    /// A `series` subscribe or unsubscribe.
    pub fn input(&mut self, input: SeriesInput, src: &mut SeriesSources, out: &mut Vec<Outbound>) {
        match input {
            SeriesInput::Subscribe { sub, query } => {
                self.subs.retain(|s| s.sub != sub);
                self.jobs.retain(|j| j.reply != Reply::Sub(sub.clone()));
                if self.subs.len() >= src.cfg.max_series_subscriptions as usize {
                    let shown: String = sub.chars().take(64).collect();
                    out.push(Outbound::Error(limit(format!(
                        "series subscription '{shown}' refused: maxSeriesSubscriptions ({}) reached",
                        src.cfg.max_series_subscriptions
                    ))));
                    return;
                }
                self.subs.push(Subscription { sub, query, pushed: None, computing: false });
                self.on_flush(src, out);
            }
            SeriesInput::Unsubscribe { sub } => {
                self.subs.retain(|s| s.sub != sub);
                self.jobs.retain(|j| j.reply != Reply::Sub(sub.clone()));
            }
        }
    }

    /// The flush timer: every subscription whose source moved gets its new answer.
    pub fn on_flush(&mut self, src: &mut SeriesSources, out: &mut Vec<Outbound>) {
        let mut subs = std::mem::take(&mut self.subs);
        for s in subs.iter_mut().filter(|s| !s.computing) {
            let (p, members) = match Self::prepare(&s.query, src) {
                Ok(x) => x,
                Err(e) => {
                    // Refused now (an unknown meter or group): said once, until it resolves.
                    if s.pushed != Some(UNKNOWN) {
                        fail(&Reply::Sub(s.sub.clone()), e, out);
                        s.pushed = Some(UNKNOWN);
                    }
                    continue;
                }
            };
            let source = Self::source(&p, &members, src);
            if s.pushed == Some(source) {
                continue;
            }
            s.pushed = Some(source);
            s.computing = self.compute(Reply::Sub(s.sub.clone()), p, members, source, src, out);
        }
        self.subs = subs;
    }

    /// The tick: the running computations take one chunk each.
    pub fn on_tick(&mut self, src: &mut SeriesSources, out: &mut Vec<Outbound>) {
        let running = (src.cfg.max_concurrent_queries as usize).min(self.jobs.len());
        let chunk = src.cfg.series_chunk_meters as usize;
        let mut done = Vec::new();
        for (k, job) in self.jobs.iter_mut().take(running).enumerate() {
            if job.source.map != src.map_version {
                // The map changed under it: start again on the new members.
                match Self::prepare(&job.plan.query, src) {
                    Ok((p, members)) => {
                        let Some(acc) = Accumulator::new(p.len) else { continue };
                        job.source = Self::source(&p, &members, src);
                        *job = Job { plan: p, members, next: 0, acc, ..job.clone() };
                    }
                    Err(e) => {
                        fail(&job.reply, e, out);
                        done.push((k, false));
                        continue;
                    }
                }
            }
            let end = (job.next + chunk).min(job.members.len());
            for &m in job.members.get(job.next..end).unwrap_or(&[]) {
                job.acc.add_meter(src.slab, m as usize, &job.plan);
            }
            job.next = end;
            self.stats.chunks += 1;
            if end >= job.members.len() {
                done.push((k, true));
            }
        }
        for (k, ok) in done.into_iter().rev() {
            let Some(job) = self.jobs.remove(k) else { continue };
            if let Reply::Sub(sub) = &job.reply {
                if let Some(s) = self.subs.iter_mut().find(|s| &s.sub == sub) {
                    s.computing = false;
                }
            }
            if !ok {
                continue;
            }
            let data = job.acc.finish(&job.plan, job.source.incomplete);
            self.stats.recomputes += 1;
            self.remember(&job.plan.query, job.source, &data, src.cfg);
            emit(&job.reply, SeriesBody::Data { data: Box::new(data), cached: false }, out);
        }
    }

    fn run(
        &mut self,
        reply: Reply,
        q: SeriesQuery,
        src: &mut SeriesSources,
        out: &mut Vec<Outbound>,
    ) {
        match Self::prepare(&q, src) {
            Ok((p, members)) => {
                let source = Self::source(&p, &members, src);
                self.compute(reply, p, members, source, src, out);
            }
            Err(e) => fail(&reply, e, out),
        }
    }

    /// Answers from the cache, now, or in chunks. `true` if it went to chunks.
    fn compute(
        &mut self,
        reply: Reply,
        p: Plan,
        members: Vec<u32>,
        source: Source,
        src: &mut SeriesSources,
        out: &mut Vec<Outbound>,
    ) -> bool {
        if let Some(at) = self.cache.iter().position(|(q, s, _)| q == &p.query && *s == source) {
            if let Some(entry) = self.cache.remove(at) {
                self.stats.cache_hits += 1;
                emit(
                    &reply,
                    SeriesBody::Data { data: Box::new(entry.2.clone()), cached: true },
                    out,
                );
                self.cache.push_back(entry);
            }
            return false;
        }
        let Some(mut acc) = Accumulator::new(p.len) else {
            fail(
                &reply,
                CoreError::new(ErrorCode::OutOfMemory, "no memory for a series answer"),
                out,
            );
            return false;
        };
        if members.len() <= src.cfg.series_chunk_meters as usize {
            for &m in &members {
                acc.add_meter(src.slab, m as usize, &p);
            }
            let data = acc.finish(&p, source.incomplete);
            self.stats.recomputes += 1;
            self.remember(&p.query, source, &data, src.cfg);
            emit(&reply, SeriesBody::Data { data: Box::new(data), cached: false }, out);
            return false;
        }
        if self.jobs.len() >= src.cfg.max_series_subscriptions as usize {
            fail(
                &reply,
                limit(format!(
                    "series computation refused: {} already queued (maxSeriesSubscriptions)",
                    self.jobs.len()
                )),
                out,
            );
            return false;
        }
        let waiting = self.jobs.len() / (src.cfg.max_concurrent_queries.max(1) as usize);
        let chunks = members.len().div_ceil(src.cfg.series_chunk_meters.max(1) as usize);
        let retry = (waiting + 1) as f64 * chunks as f64 * src.cfg.tick_ms;
        if let Reply::Query(_) = reply {
            emit(&reply, SeriesBody::Computing { retry_after_ms: retry }, out);
        }
        self.jobs.push_back(Job { reply, plan: p, source, members, next: 0, acc });
        true
    }

    fn remember(&mut self, q: &SeriesQuery, source: Source, data: &SeriesData, cfg: &Config) {
        self.cache.retain(|(c, _, _)| c != q);
        while self.cache.len() >= cfg.max_series_subscriptions as usize {
            self.cache.pop_front();
        }
        self.cache.push_back((q.clone(), source, data.clone()));
    }

    /// The plan and the meters it sums.
    fn prepare(q: &SeriesQuery, src: &mut SeriesSources) -> Result<(Plan, Vec<u32>), CoreError> {
        let newest = src.slab.newest_minute().map_or(src.now_ms, |m| m as f64 * MINUTE_MS);
        let p = plan(q, newest, src.cfg)?;
        let members = match &q.target {
            SeriesTarget::Meter(id) => match src.meters.get(id) {
                Some(m) => vec![m],
                None => {
                    let shown: String = id.chars().take(64).collect();
                    return Err(CoreError::new(
                        ErrorCode::UnknownMeter,
                        format!("meter: '{shown}' is not tracked"),
                    ));
                }
            },
            SeriesTarget::Group(name) => match (src.members)(name) {
                Some(m) => m,
                None => {
                    let shown: String = name.chars().take(64).collect();
                    return Err(CoreError::new(
                        ErrorCode::BadField,
                        format!("group: '{shown}' is not a group of the map in force"),
                    ));
                }
            },
        };
        Ok((p, members))
    }

    fn source(p: &Plan, members: &[u32], src: &SeriesSources) -> Source {
        let changed = members
            .iter()
            .filter_map(|&m| src.slab.source(m as usize, p.resource))
            .map(|(c, _)| c)
            .max()
            .unwrap_or(0);
        let from_ms = p.first as f64 * p.resolution.step_ms();
        let from_hour = (from_ms / HOUR_MS).floor() as i64;
        let from_minute = (from_ms / MINUTE_MS).floor() as i64;
        let incomplete = src.rows_missed_hour.is_some_and(|h| h >= from_hour)
            || src.slab.missed_through().is_some_and(|m| m >= from_minute);
        let map =
            matches!(p.query.target, SeriesTarget::Group(_)).then_some(src.map_version).flatten();
        Source { first: p.first, len: p.len, changed, map, incomplete }
    }
}

/// The source recorded for a subscription whose target is unknown.
const UNKNOWN: Source = Source { first: i64::MIN, len: 0, changed: 0, map: None, incomplete: true };
