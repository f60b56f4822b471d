#![cfg(not(target_arch = "wasm32"))]
//! The `totals` channel and the ledger's pending limit, through the user's path
//! (page JSON → `wire::decode_message` → `Engine::handle` → `wire::encode`),
//! against the simulated feed server of `stream_sim` (a 40-frame ring, exact
//! hourly totals as the oracle).
//!
//! Live readings wait in their bucket ("pending") until a catch-up whose `asOf`
//! covers them; past `maxPendingReadings` further readings are not counted and
//! the totals must say `incomplete` until a catch-up carries them. The totals
//! channel's own snapshots (bootstrap, gaps) only come when the stream breaks,
//! and a mini-snapshot covers only the hours from its first missing frame: the
//! pending readings of older hours are retired by the ledger's own catch-up
//! (`fetch` without `requestId`, which the page answers with `catchup`).
//!
//! - `a_page_that_never_answers_the_ledger_is_told_incomplete`: the
//!   deterministic shrink of `feed_session_soak`'s failure: a client that keeps
//!   up (no gaps), a page that executes only the session's requests, readings
//!   past the pending limit: the totals end inexact and say so; once the page
//!   answers the ledger's catch-up they are exact and complete.
//! - `simulated_schedules_never_show_a_wrong_total_as_complete`: random
//!   schedules (faults, pending limits, hour rollovers, a page that answers the
//!   ledger's catch-ups sometimes or never); at quiescence every total is exact
//!   or the totals say `incomplete`; after the final catch-up all are exact
//!   and complete. `PENDING_SIM_SCHEDULES` (default 300), `PENDING_SIM_SEED`.

#[path = "common/rng.rs"]
mod rng;
#[path = "stream_sim/server.rs"]
mod server;

use std::collections::BTreeMap;

use meterflow::core::config::Config;
use meterflow::core::event::{HostStats, Inbound, Outbound, Query, TotalsEvent};
use meterflow::core::Engine;
use meterflow::wire::{self, decode_socket_binary, Arrival};
use rng::Rng;
use serde_json::{json, Value};
use server::{Msg, Server, HOUR, RESOURCES};

/// Errors a faulty server or the pending limit may cause; anything else fails.
const EXPECTED_ERRORS: [&str; 5] =
    ["credit_overrun", "buffer_limit", "unexpected_op", "bad_snapshot", "pending_limit"];

struct Sim {
    engine: Engine,
    server: Server,
    rng: Rng,
    now: u64,
    step: u64,
    /// Simulated ms per step.
    dt: u64,
    /// Session fetches: `(due step, request id, path)`.
    fetches: Vec<(u64, u64, String)>,
    /// The ledger's catch-up requests: `(due step, path)`.
    catchups: Vec<(u64, String)>,
    /// Chance that the page answers a ledger catch-up request (else it ignores it).
    answer_p: f64,
    unrendered: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    first_error: BTreeMap<String, String>,
    /// Catch-ups the page answered.
    answered: u64,
}

impl Sim {
    fn new(seed: u64, cfg: Config, dt: u64) -> Sim {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x9E4D);
        let now = 1_764_064_800_000u64 + rng.below(3_500_000);
        Sim {
            engine: Engine::new(cfg).expect("config"),
            server: Server::new(now),
            rng,
            now,
            step: 0,
            dt,
            fetches: Vec::new(),
            catchups: Vec::new(),
            answer_p: 1.0,
            unrendered: BTreeMap::new(),
            errors: BTreeMap::new(),
            first_error: BTreeMap::new(),
            answered: 0,
        }
    }

    fn post(&mut self, msg: Value) -> Result<(), String> {
        let inbound = wire::decode_message(&msg, self.engine.config());
        self.handle(inbound)
    }

    fn handle(&mut self, inbound: Inbound) -> Result<(), String> {
        let outs = self.engine.handle(inbound, self.now as f64);
        for o in &outs {
            self.output(o)?;
        }
        Ok(())
    }

    fn output(&mut self, o: &Outbound) -> Result<(), String> {
        let v = serde_json::to_value(wire::encode(o)).map_err(|e| e.to_string())?;
        match v["type"].as_str().unwrap_or("") {
            "connect" => self.server.connect(),
            "send" => {
                let text = v["data"].as_str().unwrap_or("").to_string();
                if self.server.conn.is_some() {
                    self.server.on_text(&text, &mut self.rng)?;
                }
            }
            "close" => self.server.conn = None,
            "fetch" => {
                let due = self.step + self.rng.below(4);
                match v["requestId"].as_u64() {
                    Some(rid) => {
                        let path = v["path"].as_str().unwrap_or("").to_string();
                        self.fetches.push((due, rid, path));
                    }
                    None => {
                        let path = v["path"].as_str().ok_or(format!("no path: {v}"))?;
                        self.catchups.push((due, path.to_string()));
                    }
                }
            }
            "totals" | "notices" | "meters" => {
                let ch = match v["type"].as_str() {
                    Some("meters") => v["channel"].as_str().unwrap_or(""),
                    other => other.unwrap_or(""),
                };
                let frames = v["frames"].as_u64().ok_or(format!("no frames on {v}"))?;
                *self.unrendered.entry(ch.to_string()).or_default() += frames;
            }
            "error" => {
                let code = v["code"].as_str().unwrap_or("").to_string();
                self.first_error.entry(code.clone()).or_insert_with(|| v["message"].to_string());
                *self.errors.entry(code).or_default() += 1;
            }
            _ => {}
        }
        Ok(())
    }

    fn deliver(&mut self, msg: Msg) -> Result<(), String> {
        match msg {
            Msg::Text(t) => self.post(json!({"type": "socket", "event": "message", "data": t})),
            Msg::Binary(b) => {
                let inbound = decode_socket_binary(&b, Arrival::default(), self.engine.config());
                self.handle(inbound)
            }
        }
    }

    fn step(&mut self, faulty: bool, produce: bool) -> Result<(), String> {
        self.step += 1;
        self.now += self.dt;
        self.server.now = self.now;
        if produce {
            self.server.produce(&mut self.rng);
        }
        if faulty {
            if self.rng.chance(0.004) {
                self.server.bump_epoch("totals");
            }
            if self.server.conn.is_some() && self.rng.chance(0.01) {
                self.server.conn = None;
                self.post(json!({"type": "socket", "event": "close", "code": 1006, "reason": ""}))?;
            }
        }
        self.server.pump(&mut self.rng);
        for _ in 0..1 + self.rng.below(8) {
            let Some(conn) = &mut self.server.conn else { break };
            if faulty && conn.out.len() > 1 && self.rng.chance(0.02) {
                conn.out.swap(0, 1);
            }
            let Some(m) = conn.out.pop_front() else { break };
            self.deliver(m)?;
        }
        let step = self.step;
        let (due, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.fetches).into_iter().partition(|f| f.0 <= step);
        self.fetches = keep;
        for (_, rid, path) in due {
            if faulty && self.rng.chance(0.05) {
                self.post(
                    json!({"type": "fetched", "requestId": rid, "ok": false, "status": 503}),
                )?;
            } else {
                let body = self.server.get(&path)?;
                self.post(json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200, "data": body}))?;
            }
        }
        let (due, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.catchups).into_iter().partition(|f| f.0 <= step);
        self.catchups = keep;
        for (_, path) in due {
            if self.rng.chance(self.answer_p) {
                // What the transports do: `GET <path>` (`FetchRequest::path`) → `catchup`.
                let body = self.server.get(&path)?;
                self.answered += 1;
                self.post(json!({"type": "catchup", "data": body}))?;
            }
        }
        let told: Vec<(String, u64)> =
            self.unrendered.iter().filter(|(_, n)| **n > 0).map(|(c, n)| (c.clone(), *n)).collect();
        for (channel, n) in told {
            self.unrendered.insert(channel.clone(), 0);
            self.post(json!({"type": "rendered", "channel": channel, "frames": n}))?;
        }
        self.handle(Inbound::Tick(HostStats::default()))?;
        self.handle(Inbound::Flush)
    }

    /// The totals channel stands at the server's head, live, nothing in flight.
    fn converged(&self) -> bool {
        let s = &self.server.streams["totals"];
        // (At long steps a HEARTBEAT_ACK is always queued: the position says
        // whether every frame arrived.)
        self.server.conn.as_ref().is_some_and(|c| c.greeted)
            // (the groups map refresh runs on its own clock)
            && self.fetches.iter().all(|f| f.2 == "/groups")
            && self.engine.session().channels().iter().any(|v| {
                v.name == "totals"
                    && v.position == Some((s.epoch, s.seq))
                    && !v.paused
                    && v.buffered == 0
            })
    }

    fn totals(&mut self) -> Result<TotalsEvent, String> {
        let outs = self.engine.handle(Inbound::Query(Query::Totals), self.now as f64);
        outs.into_iter()
            .find_map(|o| if let Outbound::Totals(t) = o { Some(t) } else { None })
            .ok_or_else(|| "no totals".to_string())
    }

    /// `(resource, hour) → (engine, server)` for every kept hour where they differ.
    fn differences(&mut self) -> Result<Vec<(String, i64, i64, i64)>, String> {
        let t = self.totals()?;
        let oldest =
            t.current_hour_ms as i64 - i64::from(self.engine.config().history_hours) * HOUR;
        let mut diff = Vec::new();
        for (r, name) in RESOURCES.iter().enumerate() {
            let res = t.resources.iter().find(|x| x.resource == *name).ok_or("resource missing")?;
            let got: BTreeMap<i64, i64> =
                res.buckets.iter().map(|b| (b.hour_ms as i64, b.total)).collect();
            let mut hours: Vec<i64> = got.keys().copied().collect();
            hours.extend(self.server.hours.keys().copied().filter(|h| *h >= oldest));
            hours.sort_unstable();
            hours.dedup();
            for h in hours {
                let g = got.get(&h).copied().unwrap_or(0);
                let w = self.server.hours.get(&h).map_or(0, |u| u[r]);
                if g != w {
                    diff.push((name.to_string(), h, g, w));
                }
            }
        }
        Ok(diff)
    }

    /// Steps without new readings until the totals channel is at the head.
    fn settle(&mut self) -> Result<(), String> {
        let mut quiet = 0;
        while !self.converged() {
            quiet += 1;
            if quiet > 4_000 {
                return Err(format!(
                    "no convergence: channels {:?}, fetches {:?}, queued {:?}",
                    self.engine.session().channels(),
                    self.fetches,
                    self.server.conn.as_ref().map(|c| (c.greeted, c.out.len()))
                ));
            }
            self.step(false, false)?;
        }
        Ok(())
    }

    /// The page now answers every ledger catch-up: steps until one was
    /// answered after quiescence and the totals say complete.
    fn final_catchup(&mut self) -> Result<(), String> {
        self.answer_p = 1.0;
        let before = self.answered;
        let limit = self.engine.config().catchup_interval_ms as u64 * 3 / self.dt + 50;
        for _ in 0..limit {
            if self.answered > before && !self.totals()?.incomplete {
                return Ok(());
            }
            self.step(false, false)?;
        }
        let t = self.totals()?;
        Err(format!(
            "still incomplete {limit} steps after quiescence with every catch-up answered \
             ({} answered, {} before; dt {}, now {}, server stamp {}, asOf {:?}, current hour {}): {:?}",
            self.answered,
            before,
            self.dt,
            self.now,
            self.server.last_stamp,
            t.as_of,
            t.current_hour_ms,
            t.counters,
        ))
        .map_err(|e: String| {
            let d = self.engine.ledger().digest();
            let keep: Vec<&str> = d.split(", ").filter(|p| p.contains("need") || p.contains("holes") || p.contains("as_of: Some") && p.len() < 80 || p.contains("fetch")).collect();
            format!("{e}\n{keep:?}")
        })
    }

    fn unexpected_errors(&self) -> Result<(), String> {
        for (code, n) in &self.errors {
            if !EXPECTED_ERRORS.contains(&code.as_str()) {
                return Err(format!("unexpected error {code} ×{n}: {}", self.first_error[code]));
            }
        }
        Ok(())
    }
}

/// What one schedule saw.
struct Seen {
    /// Totals that differed from the truth at quiescence (all while `incomplete`).
    inexact_at_quiescence: usize,
    pending_limit: u64,
}

/// One schedule: faults and readings, a quiet server until the client is at
/// the head (then: exact or `incomplete`), then the page answers the ledger's
/// catch-ups (then: exact and complete).
fn run(seed: u64) -> Result<Seen, String> {
    let mut r = Rng(seed ^ 0x9E4D_1A7E);
    let cfg = Config {
        max_pending_readings: 1 + r.below(400) as u32,
        history_hours: 1 + r.below(6) as u32,
        credit_window: 4 + r.below(60) as u32,
        max_buffered_deltas: 4 + r.below(60) as u32,
        catchup_interval_ms: 2_000.0 + r.below(600_000) as f64,
        fetch_retry_ms: 300.0 + r.below(5_000) as f64,
        backoff_base_ms: 50.0,
        backoff_cap_ms: 1_000.0,
        hello_timeout_ms: 60_000.0,
        max_offset_ms: 60_000.0,
        stream_seed: seed as u32,
        ..Config::default()
    };
    // 50 ms to 30 s per step: some schedules cross one or more hours.
    let dt = [50, 500, 5_000, 30_000][r.below(4) as usize];
    let mut sim = Sim::new(seed, cfg, dt);
    let f = &mut sim.server.faults;
    let faulty = r.chance(0.7);
    if faulty {
        f.drop = r.unit() * 0.05;
        f.dup = r.unit() * 0.05;
        f.overrun = r.unit() * 0.05;
        f.resume_fail = r.unit() * 0.3;
    }
    f.binary = r.unit() * 0.5;
    sim.answer_p = [0.0, 0.0, r.unit(), 1.0][r.below(4) as usize];
    sim.post(json!({"type": "session", "op": "start", "channels": ["totals"]}))?;
    let steps = 60 + r.below(600);
    for _ in 0..steps {
        sim.step(faulty, true)?;
    }
    let f = &mut sim.server.faults;
    (f.drop, f.dup, f.overrun, f.resume_fail) = (0.0, 0.0, 0.0, 0.0);
    sim.settle()?;
    // At quiescence: exact, or the totals say they cannot vouch for it.
    let diff = sim.differences()?;
    let t = sim.totals()?;
    if !diff.is_empty() && !t.incomplete {
        return Err(format!(
            "shown complete while wrong: (resource, hour, engine, server) {diff:?}; counters {:?}",
            t.counters
        ));
    }
    sim.final_catchup()?;
    let after = sim.differences()?;
    if !after.is_empty() {
        return Err(format!("inexact after the final catch-up: {after:?}"));
    }
    sim.unexpected_errors()?;
    Ok(Seen {
        inexact_at_quiescence: diff.len(),
        pending_limit: sim.errors.get("pending_limit").copied().unwrap_or(0),
    })
}

#[test]
fn a_page_that_never_answers_the_ledger_is_told_incomplete() {
    // The soak's shape, shrunk: no faults, a page that keeps up and executes
    // only the session's requests, more readings than `maxPendingReadings`,
    // across an hour rollover.
    let cfg = Config {
        max_pending_readings: 100,
        max_offset_ms: 60_000.0,
        hello_timeout_ms: 60_000.0,
        ..Config::default()
    };
    let mut sim = Sim::new(7, cfg, 5_000);
    sim.answer_p = 0.0;
    sim.post(json!({"type": "session", "op": "start", "channels": ["totals"]})).expect("start");
    for _ in 0..1_200 {
        sim.step(false, true).expect("step");
    }
    sim.settle().expect("settles");
    let c = sim.engine.session().counters();
    assert_eq!((c.gaps, c.snapshot_fetches), (0, 1), "no gap: the bootstrap snapshot only");
    assert!(sim.catchups.is_empty() && sim.answered == 0);
    let diff = sim.differences().expect("totals");
    let t = sim.totals().expect("totals");
    assert!(!diff.is_empty(), "readings past the limit are not counted live");
    assert!(t.incomplete, "inexact totals shown complete: {diff:?}");
    assert!(sim.errors.get("pending_limit").copied().unwrap_or(0) > 0, "{:?}", sim.errors);
    assert!(t.counters.overflow > 0, "{:?}", t.counters);
    // The page now answers the ledger's catch-up: exact and complete.
    sim.final_catchup().expect("a catch-up closes the hole");
    assert_eq!(sim.differences().expect("totals"), vec![]);
    sim.unexpected_errors().expect("errors");
}

#[test]
fn simulated_schedules_never_show_a_wrong_total_as_complete() {
    let schedules: u64 =
        std::env::var("PENDING_SIM_SCHEDULES").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let seeds: Vec<u64> = match std::env::var("PENDING_SIM_SEED").ok().and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (1..=schedules).collect(),
    };
    let (mut inexact, mut limited, mut hit) = (0usize, 0u64, 0u64);
    for seed in seeds {
        match run(seed) {
            Ok(seen) => {
                inexact += seen.inexact_at_quiescence;
                hit += u64::from(seen.pending_limit > 0);
                limited += seen.pending_limit;
            }
            Err(e) => panic!(
                "seed {seed}: {e}\n(rerun: PENDING_SIM_SEED={seed} cargo test --test stream_sim_pending)"
            ),
        }
    }
    eprintln!(
        "{hit} schedules reached the pending limit ({limited} pending_limit errors); \
         {inexact} totals inexact at quiescence, each while incomplete"
    );
    if schedules >= 100 {
        // The limit was reached and left totals inexact: the check above was exercised.
        assert!(hit > 0 && inexact > 0, "{hit} {inexact}");
    }
}
