#![cfg(not(target_arch = "wasm32"))]
//! Ledger scenarios, one behaviour each: the seed's overwrite bug, stale results,
//! coalescing, clocks, gaps, roll-off, limits and bad items. The simulation in
//! `ledger_sim.rs` checks the same rules under random interleavings.

use meterflow::core::config::{Config, ConfigPatch, ResourceSpec};
use meterflow::core::decimal::Decimal;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::{
    Catchup, CatchupBucket, FetchReason, Inbound, KeyScope, LiveBinding, LiveFrame, Outbound,
    StreamHello, TotalsEvent,
};
use meterflow::core::hlc::Hlc;
use meterflow::core::ledger::HOUR_MS;
use meterflow::core::Engine;

/// 10:30 on an hour boundary day; hour 10 starts at `H10`.
const H10: f64 = 1_764_064_800_000.0;
const NOW: f64 = H10 + 1_800_000.0;

fn stamp(ms: f64) -> Hlc {
    Hlc { wall_ms: ms as u64, counter: 0 }
}

/// A frame of `(meter, resource, id, ts, amount)` readings.
fn frame(epoch: u64, seq: u64, at: f64, readings: &[(&str, &str, u64, f64, &str)]) -> Inbound {
    let mut f =
        LiveFrame { epoch, seq, stamp: stamp(at), scope: KeyScope::Batch, ..Default::default() };
    for (i, &(meter, resource, id, ts, amount)) in readings.iter().enumerate() {
        f.bindings.push(LiveBinding {
            key: i as u32,
            meter: meter.into(),
            resource: resource.into(),
        });
        f.keys.push(i as u32);
        f.ids.push(id);
        f.ts.push(ts);
        f.amounts.push(Decimal::parse(amount).unwrap());
    }
    Inbound::Live(f)
}

/// A REST result at `as_of` covering hours 4..=10 with the given water totals.
fn rest(as_of: f64, water: &[(f64, &str)]) -> Inbound {
    Inbound::Catchup(Catchup {
        as_of: stamp(as_of),
        from_hour_ms: Some(H10 - 6.0 * HOUR_MS),
        to_hour_ms: Some(H10),
        buckets: water
            .iter()
            .enumerate()
            .map(|(i, &(hour_ms, total))| CatchupBucket {
                meter: None,
                resource: "water".into(),
                hour_ms,
                total: Decimal::parse(total).unwrap(),
                position: i as u32,
            })
            .collect(),
        server_time_ms: Some(as_of),
        ..Default::default()
    })
}

struct Harness {
    e: Engine,
    out: Vec<Outbound>,
}

impl Harness {
    fn new(patch: ConfigPatch) -> Self {
        let mut e = Engine::new(Config::default().apply(&patch).unwrap()).unwrap();
        let hello = StreamHello {
            epoch: 1,
            next_seq: Some(0),
            stamp: Some(stamp(NOW - 1.0)),
            server_time_ms: Some(NOW),
            ..Default::default()
        };
        let out = e.handle(Inbound::Hello(hello), NOW);
        Harness { e, out }
    }

    fn send(&mut self, input: Inbound, at: f64) -> &mut Self {
        let out = self.e.handle(input, at);
        self.out.extend(out);
        self
    }

    fn totals(&mut self, at: f64) -> TotalsEvent {
        match self.e.handle(Inbound::Query(meterflow::core::event::Query::Totals), at).pop() {
            Some(Outbound::Totals(t)) => t,
            other => panic!("no totals: {other:?}"),
        }
    }

    fn errors(&self) -> Vec<(ErrorCode, Option<u32>)> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Outbound::Error(e) => Some((e.code, e.position)),
                _ => None,
            })
            .collect()
    }

    fn fetches(&self) -> Vec<FetchReason> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Outbound::Fetch(f) => Some(f.reason),
                _ => None,
            })
            .collect()
    }
}

/// Water's current hour (10:00), in units of 0.001 m3.
fn water_now(t: &TotalsEvent) -> i64 {
    t.resources[0].current_hour
}

#[test]
fn rest_result_never_overwrites_live_readings_it_does_not_include() {
    // The seed's bug: REST replaced the current hour and dropped ~30 s of stream.
    let mut h = Harness::new(ConfigPatch::default());
    h.send(frame(1, 0, NOW + 100.0, &[("a", "water", 1, NOW, "1.000")]), NOW + 120.0);
    h.send(frame(1, 1, NOW + 200.0, &[("a", "water", 2, NOW, "2.000")]), NOW + 220.0);
    // The REST result was computed at NOW+150: it includes reading 1 (stamp 100)
    // but not reading 2 (stamp 200).
    h.send(rest(NOW + 150.0, &[(H10, "101.000")]), NOW + 300.0);
    let t = h.totals(NOW + 300.0);
    assert_eq!(water_now(&t), 103_000, "REST 101 (with reading 1) + live reading 2");
    assert!(!t.incomplete);
    assert_eq!((t.counters.live_pending, t.counters.live_counted), (1, 2));
}

#[test]
fn stale_rest_is_discarded_and_counted() {
    let mut h = Harness::new(ConfigPatch::default());
    h.send(rest(NOW + 500.0, &[(H10, "10")]), NOW + 600.0);
    h.send(rest(NOW + 400.0, &[(H10, "9")]), NOW + 700.0);
    let t = h.totals(NOW + 700.0);
    assert_eq!(water_now(&t), 10_000);
    assert_eq!((t.counters.rest_applied, t.counters.stale_rest), (1, 1));
}

#[test]
fn duplicated_and_covered_readings_count_once() {
    let mut h = Harness::new(ConfigPatch::default());
    let f =
        frame(1, 0, NOW + 100.0, &[("a", "water", 7, NOW, "0.5"), ("b", "energy", 7, NOW, "0.25")]);
    h.send(f.clone(), NOW + 110.0).send(f.clone(), NOW + 120.0);
    let t = h.totals(NOW + 130.0);
    assert_eq!((t.resources[0].current_hour, t.resources[1].current_hour), (500, 250));
    assert_eq!(t.counters.duplicates, 2);
    // A REST result covering the frame, then the frame once more: covered.
    h.send(rest(NOW + 100.0, &[(H10, "0.5")]), NOW + 140.0);
    h.send(f, NOW + 150.0);
    let t = h.totals(NOW + 160.0);
    assert_eq!(t.resources[0].current_hour, 500);
    assert_eq!(t.resources[1].current_hour, 0, "energy's REST part (0) now covers its reading");
    assert_eq!(t.counters.covered, 2);
}

#[test]
fn totals_are_coalesced_to_one_per_flush_and_only_on_change() {
    let mut h = Harness::new(ConfigPatch::default());
    h.send(rest(NOW, &[]), NOW + 1.0);
    let mut totals = 0;
    for k in 0..100u64 {
        h.send(
            frame(1, k, NOW + 10.0 + k as f64, &[("a", "water", k + 1, NOW, "1")]),
            NOW + 20.0 + k as f64,
        );
    }
    for _ in 0..3 {
        totals +=
            h.e.handle(Inbound::Flush, NOW + 250.0)
                .iter()
                .filter(|o| matches!(o, Outbound::Totals(_)))
                .count();
    }
    assert_eq!(totals, 1, "100 frames, three flushes: one totals event");
}

#[test]
fn skewed_laptop_clock_accepts_frames_and_runaway_stamps_are_refused() {
    // The laptop is 3 minutes behind; the hello carries the server's time.
    let laptop = NOW - 180_000.0;
    let mut e = Engine::default();
    let hello = StreamHello {
        epoch: 1,
        next_seq: Some(0),
        stamp: None,
        server_time_ms: Some(NOW),
        ..Default::default()
    };
    e.handle(Inbound::Hello(hello), laptop);
    e.handle(rest(NOW, &[]), laptop + 50.0); // answers the hello's catch-up request
    let out = e.handle(frame(1, 0, NOW + 100.0, &[("a", "water", 1, NOW, "1")]), laptop + 120.0);
    assert!(!out.iter().any(|o| matches!(o, Outbound::Error(_))), "{out:?}");
    // A stamp 10 s ahead of the corrected clock: refused, named, clock unchanged.
    let out = e.handle(frame(1, 1, NOW + 10_200.0, &[("a", "water", 2, NOW, "1")]), laptop + 200.0);
    let err = out.iter().find_map(|o| match o {
        Outbound::Error(e) => Some(e.clone()),
        _ => None,
    });
    let err = err.expect("clock_ahead error");
    assert_eq!(err.code, ErrorCode::ClockAhead);
    assert!(err.message.contains("ahead of the corrected clock"), "{}", err.message);
    assert!(out.iter().any(|o| matches!(o, Outbound::Fetch(f) if f.reason == FetchReason::Clock)));
    let t =
        match e.handle(Inbound::Query(meterflow::core::event::Query::Totals), laptop + 300.0).pop()
        {
            Some(Outbound::Totals(t)) => t,
            o => panic!("{o:?}"),
        };
    assert!(
        t.hlc.wall_ms < (NOW + 10_000.0) as u64,
        "the worker clock did not follow: {:?}",
        t.hlc
    );
    assert_eq!(t.counters.refused_clocks, 1);
    assert_eq!(t.resources[0].current_hour, 1_000, "the refused frame's reading is not counted");
    assert!(t.incomplete);
}

#[test]
fn gap_asks_for_a_catch_up_at_once_and_a_covering_result_clears_it() {
    let mut h = Harness::new(ConfigPatch::default());
    h.send(rest(NOW, &[]), NOW + 1.0);
    h.out.clear();
    h.send(frame(1, 0, NOW + 100.0, &[("a", "water", 1, NOW, "1")]), NOW + 110.0);
    h.send(frame(1, 3, NOW + 400.0, &[("a", "water", 4, NOW, "1")]), NOW + 410.0);
    assert_eq!(h.fetches(), vec![FetchReason::Gap]);
    assert!(h.totals(NOW + 420.0).incomplete);
    // A result whose watermark stops before the frame that revealed the gap does not clear it.
    h.send(rest(NOW + 350.0, &[(H10, "3")]), NOW + 500.0);
    assert!(h.totals(NOW + 510.0).incomplete);
    h.send(rest(NOW + 400.0, &[(H10, "4")]), NOW + 600.0);
    let t = h.totals(NOW + 610.0);
    assert!(!t.incomplete);
    assert_eq!(water_now(&t), 4_000);
}

#[test]
fn rolled_off_hours_count_late_and_new_hours_start_empty() {
    let mut h = Harness::new(ConfigPatch::default());
    h.send(rest(NOW, &[(H10 - 6.0 * HOUR_MS, "5"), (H10, "1")]), NOW + 1.0);
    let t = h.totals(NOW + 2.0);
    assert_eq!(t.resources[0].buckets.len(), 7);
    assert_eq!(t.resources[0].total, 6_000);
    // An hour later hour 4 has rolled off; a backfilled reading for it is late.
    let later = NOW + HOUR_MS;
    h.send(frame(1, 0, later, &[("a", "water", 1, H10 - 6.0 * HOUR_MS + 5.0, "1")]), later + 10.0);
    assert_eq!(h.errors(), vec![(ErrorCode::LateReading, Some(0))]);
    let t = h.totals(later + 20.0);
    assert_eq!(t.counters.late, 1);
    assert_eq!(t.resources[0].total, 1_000, "hour 4 left the window");
    assert_eq!(t.resources[0].current_hour, 0, "hour 11 starts empty");
}

#[test]
fn a_channel_past_max_channels_is_refused_with_its_own_code() {
    let mut h = Harness::new(ConfigPatch { max_channels: Some(1), ..Default::default() });
    h.out.clear();
    let mut f = frame(1, 0, NOW + 100.0, &[("a", "water", 1, NOW, "1")]);
    if let Inbound::Live(lf) = &mut f {
        lf.channel = "second".into();
    }
    h.send(f, NOW + 110.0);
    assert_eq!(h.errors(), vec![(ErrorCode::ChannelLimit, None)]);
}

#[test]
fn pending_limit_defers_to_the_next_catch_up_and_says_so() {
    let mut h = Harness::new(ConfigPatch { max_pending_readings: Some(2), ..Default::default() });
    h.send(rest(NOW, &[]), NOW + 1.0);
    h.out.clear();
    let readings: Vec<(&str, &str, u64, f64, &str)> =
        (1..=4).map(|i| ("a", "water", i, NOW, "1")).collect();
    h.send(frame(1, 0, NOW + 100.0, &readings), NOW + 110.0);
    assert!(h.errors().contains(&(ErrorCode::PendingLimit, None)));
    assert_eq!(h.fetches(), vec![FetchReason::PendingLimit]);
    let t = h.totals(NOW + 120.0);
    assert_eq!((water_now(&t), t.counters.overflow, t.incomplete), (2_000, 2, true));
    h.send(rest(NOW + 100.0, &[(H10, "4")]), NOW + 200.0);
    let t = h.totals(NOW + 210.0);
    assert_eq!((water_now(&t), t.counters.live_pending, t.incomplete), (4_000, 0, false));
}

/// A `pending_limit` episode is one error, however many frames it refuses,
/// and its end is one `pending_limit_cleared` warning counting every refused
/// reading; a later episode is reported afresh.
#[test]
fn pending_limit_is_reported_once_per_episode_and_its_end_counts_the_refused() {
    use meterflow::core::error::WarningCode;
    let mut h = Harness::new(ConfigPatch { max_pending_readings: Some(2), ..Default::default() });
    h.send(rest(NOW, &[]), NOW + 1.0);
    h.out.clear();
    let mut id = 0;
    let mut next = |n: u64| -> Vec<(&'static str, &'static str, u64, f64, &'static str)> {
        (0..n)
            .map(|_| {
                id += 1;
                ("a", "water", id, NOW, "1")
            })
            .collect()
    };
    // Frame 0 fills the two pending slots and refuses 2; frames 1..=4 refuse 3 each.
    h.send(frame(1, 0, NOW + 100.0, &next(4)), NOW + 110.0);
    for seq in 1..=4 {
        h.send(frame(1, seq, NOW + 100.0 + seq as f64, &next(3)), NOW + 110.0 + seq as f64);
    }
    let limits = |h: &Harness| h.errors().iter().filter(|e| e.0 == ErrorCode::PendingLimit).count();
    let cleared = |h: &Harness| -> Vec<Option<u64>> {
        h.out
            .iter()
            .filter_map(|o| match o {
                Outbound::Warning(w) if w.code == WarningCode::PendingLimitCleared => Some(w.count),
                _ => None,
            })
            .collect()
    };
    assert_eq!(limits(&h), 1, "{:?}", h.errors());
    assert!(cleared(&h).is_empty());
    assert_eq!(h.totals(NOW + 120.0).counters.overflow, 14);
    // The catch-up covering them frees the pending slots: the episode ends.
    h.send(rest(NOW + 105.0, &[(H10, "16")]), NOW + 200.0);
    assert_eq!(cleared(&h), vec![Some(14)]);
    let t = h.totals(NOW + 210.0);
    assert_eq!((water_now(&t), t.counters.live_pending, t.incomplete), (16_000, 0, false));
    // The next overflow is a new episode: reported again.
    h.out.clear();
    h.send(frame(1, 5, NOW + 300.0, &next(3)), NOW + 310.0);
    assert_eq!(limits(&h), 1);
    h.send(frame(1, 6, NOW + 301.0, &next(1)), NOW + 311.0);
    assert_eq!(limits(&h), 1);
    assert!(cleared(&h).is_empty());
}

#[test]
fn bad_items_are_named_and_the_rest_of_the_frame_applies() {
    let mut h = Harness::new(ConfigPatch::default());
    h.send(rest(NOW, &[]), NOW + 1.0);
    h.out.clear();
    h.send(
        frame(
            1,
            0,
            NOW + 100.0,
            &[
                ("a", "water", 1, NOW, "0.0005"), // finer than 0.001
                ("a", "gas", 2, NOW, "1"),        // not configured
                ("a", "water", 3, NOW, "-1"),     // negative
                ("a", "water", 4, NOW, "2.5"),
            ],
        ),
        NOW + 110.0,
    );
    let errs = h.errors();
    assert!(errs.contains(&(ErrorCode::BadValue, Some(0))), "{errs:?}");
    assert!(errs.iter().any(|e| e.0 == ErrorCode::UnknownResource), "{errs:?}");
    assert!(errs.contains(&(ErrorCode::BadValue, Some(2))), "{errs:?}");
    let t = h.totals(NOW + 120.0);
    assert_eq!(water_now(&t), 2_500);
    assert!(t.incomplete, "refused readings are the server's: a catch-up must carry them");
}

#[test]
fn totals_past_two_to_the_53_stay_exact() {
    let mut h = Harness::new(ConfigPatch {
        resources: Some(vec![ResourceSpec::new("water", "m3", 9)]),
        ..Default::default()
    });
    h.send(rest(NOW, &[(H10, "9007199.254740993")]), NOW + 1.0);
    h.send(frame(1, 0, NOW + 100.0, &[("a", "water", 1, NOW, "0.000000001")]), NOW + 110.0);
    let t = h.totals(NOW + 120.0);
    assert_eq!(water_now(&t), 9_007_199_254_740_994);
}

#[test]
fn first_timer_asks_for_history_once_the_ledger_is_used_or_when_configured() {
    let startup = |out: &[Outbound]| {
        out.iter().any(|o| matches!(o, Outbound::Fetch(f) if f.reason == FetchReason::Startup))
    };
    // Greeted by a stream: the hello's own request is the first.
    let mut e = Engine::default();
    let hello = StreamHello { epoch: 1, ..Default::default() };
    let out = e.handle(Inbound::Hello(hello), NOW);
    assert!(out.iter().any(|o| matches!(o, Outbound::Fetch(_))));
    // Not greeted: nothing until configured.
    let mut e = Engine::default();
    let out = e.handle(Inbound::Flush, NOW);
    assert!(!out.iter().any(|o| matches!(o, Outbound::Fetch(_))), "{out:?}");
    let t = out.iter().find_map(|o| match o {
        Outbound::Totals(t) => Some(t.clone()),
        _ => None,
    });
    assert!(t.expect("initial totals").incomplete, "no history yet");
    let cfg = Config::default()
        .apply(&ConfigPatch { catchup_on_start: Some(true), ..Default::default() })
        .unwrap();
    let mut e = Engine::new(cfg).unwrap();
    assert!(startup(&e.handle(Inbound::Flush, NOW)));
}

#[test]
fn a_page_using_only_anomaly_detection_is_never_asked_for_a_catch_up() {
    let mut e = Engine::default();
    let mut fetches = 0;
    for s in 0..86_400u32 {
        let at = NOW + 1_000.0 * f64::from(s);
        if s % 60 == 0 {
            let r = format!(
                r#"{{"type":"readings","readings":[{{"meter":"pump","ts":{at},"value":{}}}]}}"#,
                s % 7
            );
            let input = decode_text(Envelope::Readings, &r, Arrival::default(), e.config());
            fetches +=
                e.handle(input, at).iter().filter(|o| matches!(o, Outbound::Fetch(_))).count();
        }
        for input in [Inbound::Tick(Default::default()), Inbound::Flush] {
            fetches +=
                e.handle(input, at).iter().filter(|o| matches!(o, Outbound::Fetch(_))).count();
        }
    }
    assert_eq!(fetches, 0);
}

#[test]
fn unanswered_fetches_back_off_exponentially_to_the_catch_up_interval() {
    let mut e = Engine::default();
    let mut times = Vec::new();
    let hello = StreamHello { epoch: 1, ..Default::default() };
    if e.handle(Inbound::Hello(hello), NOW).iter().any(|o| matches!(o, Outbound::Fetch(_))) {
        times.push(0.0);
    }
    for k in 1..=6_000u32 {
        let dt = 100.0 * f64::from(k);
        if e.handle(Inbound::Flush, NOW + dt).iter().any(|o| matches!(o, Outbound::Fetch(_))) {
            times.push(dt);
        }
    }
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [
            5_000.0, 10_000.0, 20_000.0, 40_000.0, 60_000.0, 60_000.0, 60_000.0, 60_000.0,
            60_000.0, 60_000.0, 60_000.0, 60_000.0
        ],
        "retries double from fetchRetryMs and stop at catchupIntervalMs"
    );
    // An answer resets the delay: the next unanswered request is retried after 5 s.
    let body = wire_catchup(NOW + 600_000.0, FROM, H10, &[]);
    wire(&mut e, Envelope::Catchup, &body, Arrival::default(), NOW + 600_050.0);
    let gap = wire_frame(5, NOW + 600_100.0, 1, NOW + 600_000.0, "1");
    let first = wire(&mut e, Envelope::Live, &gap, Arrival::default(), NOW + 600_100.0);
    assert!(first.iter().any(|o| matches!(o, Outbound::Fetch(f) if f.reason == FetchReason::Gap)));
    let again = (1..=50u32)
        .find(|k| {
            let at = NOW + 600_100.0 + 100.0 * f64::from(*k);
            e.handle(Inbound::Flush, at).iter().any(|o| matches!(o, Outbound::Fetch(_)))
        })
        .map(|k| 100.0 * f64::from(k));
    assert_eq!(again, Some(5_000.0));
}

#[test]
fn a_result_with_a_malformed_bucket_is_refused_whole_and_retried() {
    let mut h = Harness::new(ConfigPatch::default());
    h.send(rest(NOW, &[(H10, "7")]), NOW + 1.0);
    h.send(frame(1, 0, NOW + 100.0, &[("a", "water", 1, NOW, "1")]), NOW + 110.0);
    // The decoder dropped a bad bucket (say, hour 10's) and reported it.
    let Inbound::Catchup(mut c) = rest(NOW + 200.0, &[]) else { unreachable!() };
    c.errors.push(meterflow::core::error::CoreError::at(ErrorCode::BadValue, 0, "total: bad"));
    h.send(Inbound::Catchup(c), NOW + 210.0);
    let t = h.totals(NOW + 220.0);
    assert_eq!(water_now(&t), 8_000, "hour 10 keeps REST 7 + live 1, not 0");
    assert_eq!((t.counters.refused_rest, t.counters.rest_applied), (1, 1));
    // An unknown resource alone does not poison a result.
    let Inbound::Catchup(mut c) = rest(NOW + 300.0, &[(H10, "9")]) else { unreachable!() };
    c.errors.push(meterflow::core::error::CoreError::at(ErrorCode::UnknownResource, 1, "gas"));
    h.send(Inbound::Catchup(c), NOW + 310.0);
    assert_eq!(water_now(&h.totals(NOW + 320.0)), 9_000);
}

#[test]
fn per_meter_totals_are_summed_and_a_meter_listed_twice_is_refused() {
    let mut h = Harness::new(ConfigPatch::default());
    let per_meter = |as_of: f64, entries: &[(&str, &str)]| {
        let Inbound::Catchup(mut c) = rest(as_of, &[]) else { unreachable!() };
        for (i, &(meter, total)) in entries.iter().enumerate() {
            c.buckets.push(CatchupBucket {
                meter: Some(meter.into()),
                resource: "water".into(),
                hour_ms: H10,
                total: Decimal::parse(total).unwrap(),
                position: i as u32,
            });
        }
        Inbound::Catchup(c)
    };
    h.send(per_meter(NOW, &[("a", "1.5"), ("b", "2"), ("c", "0.25")]), NOW + 1.0);
    assert_eq!(water_now(&h.totals(NOW + 2.0)), 3_750);
    h.out.clear();
    h.send(per_meter(NOW + 100.0, &[("a", "9"), ("a", "9")]), NOW + 101.0);
    // The item is named, then the whole result is refused.
    assert_eq!(h.errors(), vec![(ErrorCode::BadValue, Some(1)), (ErrorCode::BadValue, None)]);
    let t = h.totals(NOW + 102.0);
    assert_eq!(water_now(&t), 3_750, "nothing of a refused result applies");
    assert_eq!(t.as_of, Some(stamp(NOW)), "the watermark does not advance");
    assert_eq!((t.counters.refused_rest, t.counters.rest_applied), (1, 1));
}

// ---- Through the wire: JSON payloads decoded as the worker decodes them ----

use meterflow::wire::{decode_text, Arrival, Envelope};

/// Feeds a JSON payload through the wire decoder into the engine at worker time `at`.
fn wire(e: &mut Engine, env: Envelope, text: &str, arrival: Arrival, at: f64) -> Vec<Outbound> {
    let input = decode_text(env, text, arrival, e.config());
    e.handle(input, at)
}

fn wire_frame(seq: u64, stamp_ms: f64, id: u64, ts: f64, amount: &str) -> String {
    format!(
        r#"{{"type":"frame","epoch":1,"seq":{seq},"hlc":{{"wallMs":{stamp_ms},"counter":0}},"readings":[{{"meter":"a","resource":"water","id":{id},"ts":{ts},"amount":"{amount}"}}]}}"#
    )
}

fn clock_errors(out: &[Outbound]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Error(e) if e.code == ErrorCode::ClockAhead => Some(e.message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_slow_honest_round_trip_does_not_refuse_the_next_frame() {
    // Worker and server clocks identical. An honest 2 s round trip gives the
    // offset -990 +- 1000; a frame stamped 50 ms before it arrives is honest.
    let mut e = Engine::default();
    let t = NOW;
    let body = format!(
        r#"{{"type":"catchup","asOf":{{"wallMs":{},"counter":0}},"serverTime":{},"from":{},"to":{},"buckets":[]}}"#,
        t - 1_990.0,
        t - 1_990.0,
        H10 - 6.0 * HOUR_MS,
        H10
    );
    let arrival = Arrival { sent_at_ms: Some(t - 2_000.0), received_at_ms: Some(t) };
    let out = wire(&mut e, Envelope::Catchup, &body, arrival, t);
    assert!(clock_errors(&out).is_empty(), "{out:?}");
    let out = wire(
        &mut e,
        Envelope::Live,
        &wire_frame(0, t + 950.0, 1, t, "1"),
        Arrival::default(),
        t + 1_000.0,
    );
    assert!(clock_errors(&out).is_empty(), "{:?}", clock_errors(&out));
    let c = e.ledger().corrected(t + 1_000.0) - (t + 1_000.0);
    assert!((-50.0..=10.0).contains(&c), "the frame's one-way bound narrows the estimate: {c}");
    let t2 =
        match e.handle(Inbound::Query(meterflow::core::event::Query::Totals), t + 1_100.0).pop() {
            Some(Outbound::Totals(x)) => x,
            o => panic!("{o:?}"),
        };
    assert_eq!(t2.resources[0].current_hour, 1_000);
    assert_eq!(t2.counters.refused_clocks, 0);
}

#[test]
fn a_server_hlc_pushed_ahead_cannot_walk_the_corrected_clock() {
    // The hello's untimed sample puts the offset in [-1000, 1000]. Each frame is
    // stamped as far ahead as is still accepted; the corrected clock must stay
    // inside the sample's interval however many such frames arrive.
    let mut e = Engine::default();
    let hello = r#"{"type":"hello","epoch":1,"nextSeq":0,"serverTime":NOW}"#
        .replace("NOW", &NOW.to_string());
    wire(&mut e, Envelope::Live, &hello, Arrival::default(), NOW);
    let mut accepted = 0;
    for k in 0..200u64 {
        let at = NOW + 10.0 * k as f64;
        let limit = at + 1_000.0 + 500.0; // now + hi + maxOffsetMs
        let out = wire(
            &mut e,
            Envelope::Live,
            &wire_frame(k, limit.floor(), k + 1, NOW, "1"),
            Arrival::default(),
            at,
        );
        accepted += usize::from(clock_errors(&out).is_empty());
        let offset = e.ledger().corrected(at) - at;
        assert!(offset <= 1_000.0 + 1.0, "frame {k}: offset {offset}");
    }
    assert!(accepted > 0, "stamps within maxOffsetMs of the bound are accepted");
    // Far beyond: refused.
    let out = wire(
        &mut e,
        Envelope::Live,
        &wire_frame(200, NOW + 10_000.0, 999, NOW, "1"),
        Arrival::default(),
        NOW + 2_000.0,
    );
    assert_eq!(clock_errors(&out).len(), 1);
}

/// A JSON catch-up body: `buckets` are `(meter, hour_ms, total)`.
fn wire_catchup(as_of: f64, from: f64, to: f64, buckets: &[(Option<&str>, f64, &str)]) -> String {
    let items: Vec<String> = buckets
        .iter()
        .map(|&(meter, hour, total)| match meter {
            Some(m) => {
                format!(r#"{{"meter":"{m}","resource":"water","hour":{hour},"total":"{total}"}}"#)
            }
            None => format!(r#"{{"resource":"water","hour":{hour},"total":"{total}"}}"#),
        })
        .collect();
    format!(
        r#"{{"type":"catchup","asOf":{{"wallMs":{as_of},"counter":0}},"from":{from},"to":{to},"buckets":[{}]}}"#,
        items.join(",")
    )
}

fn wire_totals(e: &mut Engine, at: f64) -> TotalsEvent {
    match e.handle(Inbound::Query(meterflow::core::event::Query::Totals), at).pop() {
        Some(Outbound::Totals(t)) => t,
        o => panic!("{o:?}"),
    }
}

/// An engine greeted by an honest server at `NOW` (clocks identical).
fn greeted() -> Engine {
    let mut e = Engine::default();
    let hello = format!(
        r#"{{"type":"hello","epoch":1,"nextSeq":0,"hlc":{{"wallMs":{NOW},"counter":0}},"serverTime":{NOW}}}"#
    );
    wire(&mut e, Envelope::Live, &hello, Arrival::default(), NOW);
    e
}

const FROM: f64 = H10 - 6.0 * HOUR_MS;

#[test]
fn a_catch_up_from_the_future_is_refused_whole_and_cannot_poison_the_ledger() {
    let mut e = greeted();
    let ok = wire_catchup(NOW + 100.0, FROM, H10, &[(None, H10, "10")]);
    wire(&mut e, Envelope::Catchup, &ok, Arrival::default(), NOW + 200.0);
    // A watermark a day ahead, its range reaching the hour of that watermark.
    let day = 86_400_000.0;
    let future = wire_catchup(NOW + day, FROM, H10 + day, &[(None, H10, "10")]);
    let before = e.ledger().digest();
    let out = wire(&mut e, Envelope::Catchup, &future, Arrival::default(), NOW + 300.0);
    assert_eq!(clock_errors(&out).len(), 1, "{out:?}");
    assert_eq!(e.ledger().digest(), before, "a refused body changes nothing");
    // Live readings after the honest watermark count; the honest catch-up applies.
    wire(
        &mut e,
        Envelope::Live,
        &wire_frame(0, NOW + 1_000.0, 1, NOW, "2.5"),
        Arrival::default(),
        NOW + 1_010.0,
    );
    let honest = wire_catchup(NOW + 1_500.0, FROM, H10, &[(None, H10, "12.5")]);
    wire(&mut e, Envelope::Catchup, &honest, Arrival::default(), NOW + 1_600.0);
    wire(
        &mut e,
        Envelope::Live,
        &wire_frame(1, NOW + 2_000.0, 2, NOW, "5"),
        Arrival::default(),
        NOW + 2_010.0,
    );
    let t = wire_totals(&mut e, NOW + 2_100.0);
    assert_eq!(water_now(&t), 17_500);
    assert!(!t.incomplete);
    assert_eq!(t.as_of, Some(stamp(NOW + 1_500.0)));
    assert_eq!(
        (t.counters.rest_applied, t.counters.refused_rest, t.counters.stale_rest),
        (2, 1, 0)
    );
    assert_eq!(t.counters.covered, 0);
}

#[test]
fn a_refused_catch_up_leaves_the_ledger_unchanged_and_its_corrected_resend_applies() {
    let big = "9000000000000000"; // 9e18 units: two of them overflow an i64
    let year = 367.0 * 24.0 * HOUR_MS;
    let refused: Vec<(&str, String)> = vec![
        (
            "hour listed twice",
            wire_catchup(NOW + 500.0, FROM, H10, &[(None, H10, "1"), (None, H10, "2")]),
        ),
        (
            "meter listed twice",
            wire_catchup(NOW + 500.0, FROM, H10, &[(Some("a"), H10, "1"), (Some("a"), H10, "2")]),
        ),
        (
            "total mixed with per-meter",
            wire_catchup(NOW + 500.0, FROM, H10, &[(Some("a"), H10, "1"), (None, H10, "2")]),
        ),
        (
            "per-meter mixed with total",
            wire_catchup(NOW + 500.0, FROM, H10, &[(None, H10, "1"), (Some("a"), H10, "2")]),
        ),
        (
            "sum overflow",
            wire_catchup(NOW + 500.0, FROM, H10, &[(Some("a"), H10, big), (Some("b"), H10, big)]),
        ),
        ("range over 366 days", wire_catchup(NOW + 500.0, H10 - year, H10, &[(None, H10, "1")])),
        ("negative total", wire_catchup(NOW + 500.0, FROM, H10, &[(None, H10, "-1")])),
        (
            "hour outside the range",
            wire_catchup(NOW + 500.0, FROM, H10 - HOUR_MS, &[(None, H10, "1")]),
        ),
        ("watermark from the future", wire_catchup(NOW + 60_000.0, FROM, H10, &[(None, H10, "1")])),
    ];
    for (why, body) in refused {
        let mut e = greeted();
        wire(
            &mut e,
            Envelope::Catchup,
            &wire_catchup(NOW + 100.0, FROM, H10, &[(None, H10, "7")]),
            Arrival::default(),
            NOW + 150.0,
        );
        wire(
            &mut e,
            Envelope::Live,
            &wire_frame(0, NOW + 200.0, 1, NOW, "1"),
            Arrival::default(),
            NOW + 210.0,
        );
        let before = e.ledger().digest();
        let counted = e.ledger().counters();
        let out = wire(&mut e, Envelope::Catchup, &body, Arrival::default(), NOW + 300.0);
        assert!(out.iter().any(|o| matches!(o, Outbound::Error(_))), "{why}: no error");
        assert_eq!(e.ledger().digest(), before, "{why}: the ledger changed");
        let c = e.ledger().counters();
        assert_eq!(
            (c.refused_rest, c.rest_applied),
            (counted.refused_rest + 1, counted.rest_applied),
            "{why}"
        );
        assert_eq!(water_now(&wire_totals(&mut e, NOW + 310.0)), 8_000, "{why}");
        // The corrected resend, same asOf (the future one is resent once the clock is there).
        let (at, as_of) = if why.contains("future") {
            (NOW + 60_000.0, NOW + 60_000.0)
        } else {
            (NOW + 400.0, NOW + 500.0)
        };
        let fixed = wire_catchup(as_of, FROM, H10, &[(None, H10, "9")]);
        let out = wire(&mut e, Envelope::Catchup, &fixed, Arrival::default(), at);
        assert!(!out.iter().any(|o| matches!(o, Outbound::Error(_))), "{why}: {out:?}");
        let t = wire_totals(&mut e, at + 10.0);
        assert_eq!(
            (t.as_of, water_now(&t), t.counters.stale_rest),
            (Some(stamp(as_of)), 9_000, 0),
            "{why}"
        );
        assert!(!t.incomplete, "{why}");
    }
}

fn fetch_requests(out: &[Outbound], into: &mut Vec<meterflow::core::event::FetchRequest>) {
    into.extend(out.iter().filter_map(|o| match o {
        Outbound::Fetch(f) => Some(f.clone()),
        _ => None,
    }));
}

#[test]
fn after_a_stamp_at_the_end_of_time_an_honest_server_brings_the_totals_to_complete() {
    let max = 140_737_488_355_328.0; // 2^47 ms, the largest wall time
    for via_hello in [false, true] {
        let mut e = greeted();
        let ok = wire_catchup(NOW + 100.0, FROM, H10, &[(None, H10, "7")]);
        wire(&mut e, Envelope::Catchup, &ok, Arrival::default(), NOW + 200.0);
        let bogus = if via_hello {
            format!(
                r#"{{"type":"hello","epoch":2,"nextSeq":0,"hlc":{{"wallMs":{max},"counter":65535}}}}"#
            )
        } else {
            wire_frame(0, max, 1, NOW, "1")
        };
        let out = wire(&mut e, Envelope::Live, &bogus, Arrival::default(), NOW + 300.0);
        assert_eq!(clock_errors(&out).len(), 1, "{via_hello}: {out:?}");
        assert!(wire_totals(&mut e, NOW + 310.0).incomplete, "{via_hello}");
        // The honest server answers the fetch; its readings keep arriving.
        let epoch = if via_hello { 2 } else { 1 };
        let honest = wire_frame(1, NOW + 900.0, 2, NOW, "2")
            .replace(r#""epoch":1"#, &format!(r#""epoch":{epoch}"#));
        wire(&mut e, Envelope::Live, &honest, Arrival::default(), NOW + 910.0);
        let ok = wire_catchup(NOW + 1_000.0, FROM, H10, &[(None, H10, "9")]);
        wire(&mut e, Envelope::Catchup, &ok, Arrival::default(), NOW + 1_100.0);
        let t = wire_totals(&mut e, NOW + 1_200.0);
        assert!(!t.incomplete, "{via_hello}: complete again");
        assert_eq!(water_now(&t), 9_000, "{via_hello}: exact");
        // And the fetches stop: only the scheduled catch-up in the next 10 minutes.
        let mut fetches = Vec::new();
        for k in 1..=6_000u32 {
            let at = NOW + 1_200.0 + 100.0 * f64::from(k);
            let out = e.handle(Inbound::Flush, at);
            fetch_requests(&out, &mut fetches);
        }
        assert!(
            fetches.iter().all(|f| f.reason == FetchReason::Scheduled && f.min_as_of.is_none()),
            "{via_hello}: nothing is needed any more: {fetches:?}"
        );
    }
}

#[test]
fn extreme_numbers_in_core_inputs_are_refused_or_bounded_never_a_panic() {
    let two53 = 9_007_199_254_740_992.0;
    let huge =
        [0.0, -1.0, two53, -two53, 1e300, -1e300, f64::MAX, f64::MIN, f64::NAN, f64::INFINITY];
    for &x in &huge {
        let mut h = Harness::new(ConfigPatch::default());
        h.send(rest(NOW, &[(H10, "7")]), NOW + 1.0);
        // Catch-ups with extreme ranges, hours and clock samples.
        let Inbound::Catchup(mut c) = rest(NOW + 10.0, &[(H10, "1")]) else { unreachable!() };
        c.from_hour_ms = Some(x);
        h.send(Inbound::Catchup(c.clone()), NOW + 20.0);
        c.from_hour_ms = Some(H10 - HOUR_MS);
        c.to_hour_ms = Some(x);
        h.send(Inbound::Catchup(c.clone()), NOW + 30.0);
        c.to_hour_ms = Some(H10);
        c.buckets[0].hour_ms = x;
        h.send(Inbound::Catchup(c.clone()), NOW + 40.0);
        let Inbound::Catchup(mut c) = rest(NOW + 50.0, &[]) else { unreachable!() };
        (c.server_time_ms, c.sent_at_ms, c.received_at_ms) = (Some(x), Some(-x), Some(x));
        c.as_of = Hlc { wall_ms: u64::MAX, counter: u32::MAX };
        h.send(Inbound::Catchup(c), NOW + 60.0);
        // Live frames with extreme timestamps and stamps; ids at the top of u64.
        let Inbound::Live(mut f) = frame(1, 0, NOW + 70.0, &[("a", "water", u64::MAX, x, "1")])
        else {
            unreachable!()
        };
        h.send(Inbound::Live(f.clone()), NOW + 80.0);
        f.seq = u64::MAX;
        f.epoch = u64::MAX;
        f.stamp = Hlc { wall_ms: 1 << 47, counter: 0xFFFF };
        h.send(Inbound::Live(f), NOW + 90.0);
        let t = h.totals(NOW + 100.0);
        assert_eq!(t.counters.rest_applied, 1, "{x}: only the honest result applied");
        assert!(t.as_of <= Some(stamp(NOW + 100.0)), "{x}: {:?}", t.as_of);
        assert!(water_now(&t) >= 7_000 && water_now(&t) <= 8_000, "{x}");
        // The worker clock itself at the extremes: hours roll (never back), no panic.
        let Inbound::Catchup(mut c) = rest(NOW + 300.0, &[]) else { unreachable!() };
        c.as_of = Hlc { wall_ms: u64::MAX, counter: 0 };
        h.send(Inbound::Catchup(c), x);
        h.send(Inbound::Flush, x);
        h.send(frame(1, 1, NOW + 200.0, &[("a", "water", 5, x, "1")]), x);
        let t = h.totals(x);
        assert!(t.current_hour_ms.is_finite(), "{x}");
    }
}

#[test]
fn a_full_reset_forgets_the_totals_but_not_the_clock() {
    // The HLC never goes backwards (ARCHITECTURE.md): a page that keeps the
    // newest totals by stamp must see the totals after a reset as newer.
    let mut h = Harness::new(ConfigPatch::default());
    h.send(frame(1, 0, NOW + 400.0, &[("a", "water", 1, NOW, "1.000")]), NOW + 10.0);
    let before = h.totals(NOW + 20.0);
    assert!(before.hlc > stamp(NOW + 400.0), "the frame's stamp was received");
    assert_eq!(water_now(&before), 1_000);
    h.send(Inbound::Reset(meterflow::core::event::ResetScope::All), NOW + 30.0);
    let after = h.totals(NOW + 40.0);
    assert!(after.hlc > before.hlc, "{:?} after {:?}", after.hlc, before.hlc);
    assert_eq!(water_now(&after), 0, "the totals restart");
    assert!(after.incomplete, "they need a catch-up again");
    assert_eq!(h.e.meter_count(), 0);
}
