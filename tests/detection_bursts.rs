#![cfg(not(target_arch = "wasm32"))]
//! The stuck rule's learned runs when evaluations see bursts of readings (a
//! page that stalled and then delivered seconds of a 20x stream at once): a
//! meter that never repeats a reading, trained with 40 readings per
//! evaluation, must still be stuck after `stuckRun` identical readings
//! (docs/DETECTION.md, "Stuck"), as it is when each evaluation sees one.
//! Before `ended_run`, each burst was learned as one run of its length, so the
//! limit became `stuckFactor` x 40 = 120 readings (the dashboard test's stuck
//! alert came 14 to 73 simulated seconds in, moving with the machine's load).

#[path = "common/rng.rs"]
mod rng;
use meterflow::core::config::Config;
use meterflow::core::event::{AnomalyKind, HostStats, Inbound, KeyScope, Outbound, ReadingBatch};
use meterflow::core::Engine;
use rng::Rng;

const T0: f64 = 1.7e12;
const STEP_MS: f64 = 500.0;

/// The step (reading index) of the first stuck alert when `history` noisy
/// readings arrive `burst` per evaluation, then `stuck` readings of one value
/// one per evaluation.
fn first_stuck(seed: u64, burst: usize, history: usize, stuck: usize) -> Option<(usize, u32)> {
    let mut rng = Rng(seed);
    let mut xs: Vec<f64> = (0..history).map(|_| 100.0 + 5.0 * rng.normal()).collect();
    xs.extend(std::iter::repeat_n(123.456, stuck));
    let mut e = Engine::new(Config::default()).expect("default config");
    let mut step = 0;
    while step < xs.len() {
        let n = if step < history { burst.min(history - step) } else { 1 };
        let mut b = ReadingBatch { scope: KeyScope::Batch, ..Default::default() };
        b.bindings.push((0, "m".to_string()));
        for (i, x) in xs.iter().enumerate().skip(step).take(n) {
            b.keys.push(0);
            b.ts.push(T0 + STEP_MS * i as f64);
            b.values.push(*x);
        }
        step += n;
        let now = T0 + STEP_MS * (step - 1) as f64;
        let mut out = e.handle(Inbound::Readings(b), now);
        out.extend(e.handle(Inbound::Tick(HostStats::default()), now));
        for o in out {
            match o {
                Outbound::Anomaly(a) if a.kind == AnomalyKind::Stuck => {
                    return Some((step - history, a.evaluations))
                }
                Outbound::Error(e) => panic!("step {step}: {e:?}"),
                _ => {}
            }
        }
    }
    None
}

#[test]
fn bursts_of_readings_do_not_teach_long_runs() {
    let cfg = Config::default();
    let run = cfg.stuck_run as usize;
    let history = 4 * cfg.baseline_readings as usize;
    for seed in 1..=3 {
        // One reading per evaluation: stuck at the `stuckRun`-th identical reading.
        let calm = first_stuck(seed, 1, history, 400);
        assert_eq!(calm.map(|s| s.0), Some(run), "seed {seed}: one reading per evaluation");
        // 40 (and 7) readings per evaluation in training: the same.
        for burst in [7, 40] {
            let got = first_stuck(seed, burst, history, 400);
            assert_eq!(got.map(|s| s.0), Some(run), "seed {seed}: {burst} readings per evaluation");
        }
    }
}
