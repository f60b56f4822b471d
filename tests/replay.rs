#![cfg(not(target_arch = "wasm32"))]
//! Replay end to end: the example recordings under `tests/data/`, the timer
//! schedule, bad lines, and the `meterflow` binary itself.

use std::io::{self, Write};
use std::process::Command;

use meterflow::core::config::{Config, ConfigPatch};
use meterflow::replay::{
    replay, replay_with, OutType, ReplayOptions, ReplaySummary, MAX_FIRES_PER_GAP, MAX_T_MS,
};
use serde_json::Value;

const T0: f64 = 1764064800000.0;
const BASIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/replay_basic.ndjson");

fn run(input: &str, cfg: Config) -> (ReplaySummary, Vec<Value>) {
    let mut out = Vec::new();
    let summary = replay(input.as_bytes(), &mut out, cfg).unwrap();
    let lines = String::from_utf8(out).unwrap();
    let values = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (summary, values)
}

/// A writer that fails past `cap` bytes, so a runaway replay fails its test
/// instead of writing gigabytes.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
}

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.len() + b.len() > self.cap {
            return Err(io::Error::other(format!("replay output past {} bytes", self.cap)));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`run`] with the output capped at 64 KiB.
fn run_capped(input: &str, cfg: Config) -> (ReplaySummary, Vec<Value>) {
    let mut out = Capped { buf: Vec::new(), cap: 64 << 10 };
    let summary = replay(input.as_bytes(), &mut out, cfg).expect("replay within the output cap");
    let lines = String::from_utf8(out.buf).unwrap();
    let values = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (summary, values)
}

fn of_type<'a>(out: &'a [Value], ty: &str) -> Vec<&'a Value> {
    out.iter().filter(|v| v["type"] == ty).collect()
}

fn rel_t(v: &Value) -> f64 {
    v["t"].as_f64().unwrap() - T0
}

#[test]
fn basic_recording_replays_as_documented() {
    let text = std::fs::read_to_string(BASIC).unwrap();
    let (s, out) = run(&text, Config::default());
    assert_eq!((s.lines, s.messages, s.bad_lines, s.rejected), (15, 14, 1, 1));
    // Ticks every 500 ms from t0 + 500 through the last t (t0 + 2600) plus one
    // tick interval; flushes every 250 ms over the same span.
    assert_eq!((s.ticks, s.flushes), (6, 12));
    assert_eq!(s.outputs as usize, out.len());

    let ts: Vec<f64> = out.iter().map(rel_t).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "output t must not decrease: {ts:?}");
    assert!(ts.iter().all(|&t| t <= 2600.0 + 500.0));
    assert!(out.iter().all(|v| v["v"] == 1 && v["type"].is_string()));

    // Every error names its line; line 9 (live) and 10 (catchup) are the
    // ledger's to answer and not checked here.
    let errors: Vec<(u64, &str, Option<u64>)> = of_type(&out, "error")
        .into_iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap(), e["position"].as_u64()))
        .filter(|(line, _, _)| *line != 9 && *line != 10)
        .collect();
    assert_eq!(
        errors,
        vec![
            (4, "malformed_json", None),
            (5, "bad_field", Some(1)),
            (13, "unknown_meter", None),
            (14, "unknown_type", None)
        ]
    );
    assert!(of_type(&out, "error")[0]["message"].as_str().unwrap().starts_with("line 4:"));

    // Stats from the timer: the first tick, then every statsIntervalMs (1000).
    let timer_stats: Vec<f64> =
        of_type(&out, "stats").into_iter().filter(|v| v.get("line").is_none()).map(rel_t).collect();
    assert_eq!(timer_stats, vec![500.0, 1500.0, 2500.0]);
    let queried = of_type(&out, "stats").into_iter().find(|v| v["line"] == 15).unwrap();
    // 7 readings plus the live frame's one (live readings feed the anomaly windows).
    assert_eq!(
        (queried["meters"].as_u64(), queried["readingsIngested"].as_f64()),
        (Some(3), Some(8.0))
    );
    assert_eq!(queried["readingsRejected"].as_f64(), Some(1.0));

    let windows = of_type(&out, "window");
    assert_eq!(windows[0]["meter"], "pump-17");
    assert_eq!(windows[0]["values"], serde_json::json!([12.5, 12.75, 12.5]));
    assert_eq!((rel_t(windows[0]), windows[0]["line"].as_u64()), (1300.0, Some(7)));
    assert_eq!(windows[1]["values"], serde_json::json!([]), "pump-18 was reset");
    let meter = of_type(&out, "meter")[0];
    assert_eq!((meter["meter"].as_str(), meter["count"].as_u64()), (Some("pump-18"), Some(2)));
    assert_eq!(meter["mean"].as_f64(), Some(3.375));
}

fn cfg(patch: ConfigPatch) -> Config {
    Config::default().apply(&patch).unwrap()
}

fn line(t: f64, rest: &str) -> String {
    format!("{{\"t\":{},{rest}}}\n", T0 + t)
}

#[test]
fn timers_fire_in_order_and_restart_when_config_changes_them() {
    // Every tick emits stats, so stats lines show the tick schedule.
    let c = cfg(ConfigPatch { stats_interval_ms: Some(1.0), ..Default::default() });
    let input = [
        line(0.0, r#""type":"query","query":"totals""#),
        line(1250.0, r#""type":"query","query":"totals""#),
        line(1300.0, r#""type":"config","config":{"tickMs":200,"totalsFlushMs":100}"#),
        line(1700.0, r#""type":"query","query":"totals""#),
    ]
    .concat();
    let (s, out) = run(&input, c.clone());
    let ticks: Vec<f64> = of_type(&out, "stats").into_iter().map(rel_t).collect();
    assert_eq!(ticks, vec![500.0, 1000.0, 1500.0, 1700.0, 1900.0]);
    // Flushes: 250..=1250 every 250 (5), then restarted at 1300 every 100 up to 1900 (6).
    assert_eq!((s.ticks, s.flushes), (5, 11));
    // An unchanged interval does not restart its timer.
    let input = [
        line(0.0, r#""type":"query","query":"totals""#),
        line(700.0, r#""type":"config","config":{"tickMs":500,"spikeZ":6}"#),
        line(1100.0, r#""type":"query","query":"totals""#),
    ]
    .concat();
    let (_, out) = run(&input, c);
    let ticks: Vec<f64> = of_type(&out, "stats").into_iter().map(rel_t).collect();
    assert_eq!(ticks, vec![500.0, 1000.0, 1500.0]);
}

#[test]
fn bad_lines_are_reported_and_replay_continues() {
    let input = [
        line(0.0, r#""type":"query","query":"stats""#),
        "not json\n".to_string(),
        "\n".to_string(),
        "{\"type\":\"query\",\"query\":\"stats\"}\n".to_string(),
        "{\"t\":\"soon\",\"type\":\"query\",\"query\":\"stats\"}\n".to_string(),
        line(-5.0, r#""type":"query","query":"stats""#),
        line(10.0, r#""type":"query","query":"stats","v":2"#),
        line(20.0, r#""type":"query","query":"stats""#),
    ]
    .concat();
    let (s, out) = run(&input, Config::default());
    assert_eq!((s.lines, s.messages, s.bad_lines, s.rejected), (8, 3, 4, 1));
    let errors: Vec<(u64, &str)> = of_type(&out, "error")
        .into_iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (2, "malformed_json"),
            (4, "bad_field"),
            (5, "bad_field"),
            (6, "bad_timestamp"),
            (7, "unsupported_version")
        ]
    );
    let stats_lines: Vec<u64> =
        of_type(&out, "stats").into_iter().filter_map(|v| v["line"].as_u64()).collect();
    assert_eq!(stats_lines, vec![1, 8]);
}

#[test]
fn a_huge_gap_skips_timer_fires_with_a_warning_instead_of_hanging() {
    let input = [
        line(0.0, r#""type":"query","query":"stats""#),
        line(1e12, r#""type":"query","query":"stats""#),
    ]
    .concat();
    let (s, out) = run(&input, Config::default());
    let warnings = of_type(&out, "warning");
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0]["code"], "replay_gap");
    assert!(s.skipped_fires > MAX_FIRES_PER_GAP);
    // After the gap the schedule resumes: one more tick at the end.
    assert_eq!(s.ticks, 1);
}

#[test]
fn an_empty_recording_produces_nothing() {
    let (s, out) = run("", Config::default());
    assert_eq!(s, ReplaySummary::default());
    assert!(out.is_empty());
}

#[test]
fn the_binary_replays_files_and_stdin_and_refuses_bad_usage() {
    let bin = env!("CARGO_BIN_EXE_meterflow");
    let out = Command::new(bin).args(["replay", BASIC]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut expected = Vec::new();
    replay(std::fs::read(BASIC).unwrap().as_slice(), &mut expected, Config::default()).unwrap();
    assert_eq!(out.stdout, expected, "the binary prints what the library writes");
    assert!(String::from_utf8_lossy(&out.stderr).contains("replayed 15 lines"));

    // --config: a JSON object of config fields; stdin with `-`.
    let dir = std::env::temp_dir().join(format!("meterflow-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, r#"{"tickMs": 1000}"#).unwrap();
    let mut child = Command::new(bin)
        .args(["replay", "-", "--config", config.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(line(0.0, r#""type":"query","query":"stats""#).as_bytes()).unwrap();
        stdin.write_all(line(2500.0, r#""type":"query","query":"stats""#).as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 ticks"), "tickMs 1000 over 0..=3500: {stderr}");

    let bad = |args: &[&str], code: i32, needle: &str| {
        let out = Command::new(bin).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    bad(&[], 2, "usage: meterflow replay");
    bad(&["replay"], 2, "missing the recording");
    bad(&["play", BASIC], 2, "unknown command 'play'");
    bad(&["replay", BASIC, "--speed"], 2, "unknown option '--speed'");
    bad(&["replay", BASIC, "--config"], 2, "--config needs a file");
    bad(&["replay", BASIC, BASIC], 2, "unexpected argument");
    bad(&["replay", "/nonexistent/rec.ndjson"], 1, "/nonexistent/rec.ndjson");
    std::fs::write(&config, r#"{"tickMz": 1000}"#).unwrap();
    bad(&["replay", BASIC, "--config", config.to_str().unwrap()], 1, "config.tickMz");
    std::fs::write(&config, r#"{"window": 3}"#).unwrap();
    bad(&["replay", BASIC, "--config", config.to_str().unwrap()], 1, "config.window");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("usage"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The recording's live frame (line 9) and REST body (line 10) drive the ledger
/// exactly as in the worker: the frame's reading, stamped before the body's
/// watermark, is retired into the REST total rather than added to it.
#[test]
fn recorded_live_frames_and_rest_bodies_replay_into_totals() {
    let text = std::fs::read_to_string(BASIC).unwrap();
    let (_, out) = run(&text, Config::default());
    let totals = of_type(&out, "totals");
    let after_rest: Vec<&&Value> = totals.iter().filter(|v| rel_t(v) > 1_600.0).collect();
    let last = after_rest.last().expect("totals after the REST body");
    assert_eq!(last["asOf"], serde_json::json!({"wallMs": 1764064801500u64, "counter": 0}));
    let water = &last["resources"][0];
    assert_eq!(
        (water["resource"].as_str(), water["currentHour"].as_i64()),
        (Some("water"), Some(1_250))
    );
    assert_eq!(last["counters"]["liveCounted"], 1);
    assert_eq!(last["counters"]["livePending"], 0, "retired by the watermark");
    // The body lists one hour and no range: it cannot vouch for the 6 hours before.
    assert_eq!(last["incomplete"], true);
    // Asked for once the live frame showed the ledger is used (its new epoch).
    assert!(of_type(&out, "fetch").iter().any(|f| f["reason"] == "epoch"));
}

/// `t` = 1e25 made `Timer::due` wrap (`as u64 + 1`), so the gap check never
/// fired and the timers walked towards 1e25 forever. Such a `t` is refused.
#[test]
fn an_absurd_t_is_an_error_line_not_an_endless_timer_walk() {
    let stats = r#""type":"query","query":"stats""#;
    let input = [
        line(0.0, stats),
        line(1e25, stats),
        line(1e30, stats),
        line(-1e30, stats),
        line(1_000.0, stats),
    ]
    .concat();
    let (s, out) = run_capped(&input, Config::default());
    assert_eq!((s.lines, s.messages, s.bad_lines), (5, 2, 3));
    let errors: Vec<(u64, &str)> = of_type(&out, "error")
        .into_iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, vec![(2, "bad_timestamp"), (3, "bad_timestamp"), (4, "bad_timestamp")]);
    assert!(of_type(&out, "error")[0]["message"].as_str().unwrap().contains("2^53"));
    // Ticks at 500, 1000 and 1500 (the last t plus one tick interval).
    assert_eq!(s.ticks, 3);
    assert_eq!(s.skipped_fires, 0);
}

/// The largest accepted `t` (2^53 - 1) is a gap the timers skip, bounded.
#[test]
fn the_largest_t_is_a_bounded_gap() {
    let stats = r#""type":"query","query":"stats""#;
    let input = [line(0.0, stats), line(MAX_T_MS - T0, stats)].concat();
    let (s, out) = run_capped(&input, Config::default());
    assert_eq!(s.bad_lines, 0);
    assert_eq!(of_type(&out, "warning").len(), 1);
    assert!(s.skipped_fires > MAX_FIRES_PER_GAP);
    assert!(s.ticks + s.flushes <= 2 * MAX_FIRES_PER_GAP, "{s:?}");
}

/// `tickMs` 1e308 made the end-of-recording walk (`last t + tickMs`) wrap the
/// fire count; the worker clamps an interval to 2^31 - 1 ms, and so does replay.
#[test]
fn a_huge_tick_interval_is_clamped_as_the_worker_clamps_it() {
    let input = [
        line(0.0, r#""type":"config","config":{"tickMs":1e308}"#),
        line(5_000.0, r#""type":"query","query":"stats""#),
    ]
    .concat();
    let (s, out) = run_capped(&input, Config::default());
    assert_eq!(s.bad_lines, 0);
    // The flush every 250 ms would fire 8.6 million times over 2^31 - 1 ms:
    // skipped with one warning.
    assert_eq!(of_type(&out, "warning").len(), 1, "{s:?}");
    assert_eq!(s.ticks, 0);
}

/// `tickMs` 1e-300 never moved the timer past its start: replay looped forever.
/// The worker clamps an interval to at least 1 ms, and so does replay.
#[test]
fn a_tiny_tick_interval_is_clamped_to_one_ms() {
    let input = [
        line(0.0, r#""type":"config","config":{"tickMs":1e-300}"#),
        line(5_000.0, r#""type":"query","query":"stats""#),
    ]
    .concat();
    let (s, _) = run_capped(&input, Config::default());
    // One tick per ms over 0..=5001.
    assert_eq!((s.bad_lines, s.ticks, s.skipped_fires), (0, 5_001, 0));
}

#[test]
fn only_keeps_the_named_message_types() {
    let text = std::fs::read_to_string(BASIC).unwrap();
    let (all, every) = run(&text, Config::default());
    let opts = ReplayOptions {
        only: Some(OutType::parse_list("anomaly,totals").unwrap()),
        ..ReplayOptions::default()
    };
    let mut out = Vec::new();
    let s = replay_with(text.as_bytes(), &mut out, Config::default(), opts).unwrap();
    let kept: Vec<Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let expected: Vec<&Value> =
        every.iter().filter(|v| v["type"] == "anomaly" || v["type"] == "totals").collect();
    assert!(!expected.is_empty());
    assert_eq!(kept.iter().collect::<Vec<_>>(), expected, "the same lines, in order");
    assert_eq!((s.outputs, s.filtered), (kept.len() as u64, all.outputs - kept.len() as u64));
    // The wire `type` of every output is its OutType name.
    for v in &every {
        let ty = v["type"].as_str().unwrap();
        assert!(OutType::iter().any(|t| t.as_str() == ty), "{ty}");
    }
    assert!(OutType::parse_list("anomaly,total").unwrap_err().contains("'total'"));

    let bin = env!("CARGO_BIN_EXE_meterflow");
    let cli =
        Command::new(bin).args(["replay", BASIC, "--only", "anomaly,totals"]).output().unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let mut lib = Vec::new();
    let opts =
        ReplayOptions { only: Some(vec![OutType::Anomaly, OutType::Totals]), ..Default::default() };
    replay_with(text.as_bytes(), &mut lib, Config::default(), opts).unwrap();
    assert_eq!(cli.stdout, lib);
    let bad = Command::new(bin).args(["replay", BASIC, "--only", "stats,nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown message type 'nope'"));
}
