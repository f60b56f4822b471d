//! The `meterflow` command:
//! - `meterflow replay FILE.ndjson [--config FILE.json] [--only TYPES]` replays
//!   a recording of page messages through the engine with a simulated clock
//!   and prints every outbound message as NDJSON (see `docs/REPLAY.md`).
//! - `meterflow eval [CORPUS_DIR] ...` scores the detector on a labelled corpus
//!   (see `docs/DETECTION.md`, "Evaluation"; the work is in `meterflow::eval`).
//!
//! Exit codes: 0 done (bad lines are reported in the output), 1 a file could
//! not be read or written, the configuration is invalid, or (eval) the figures
//! fell below the baseline, 2 bad usage.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::process::ExitCode;

use meterflow::core::config::Config;
// `eval` is native only (like its module): the wasm32 test build compiles this
// binary too.
#[cfg(not(target_arch = "wasm32"))]
use meterflow::eval::arms::Detector;
#[cfg(not(target_arch = "wasm32"))]
use meterflow::eval::corpus::{self, Length};
#[cfg(not(target_arch = "wasm32"))]
use meterflow::eval::{files, report};
use meterflow::replay::{replay_with, OutType, ReplayError, ReplayOptions};
use meterflow::wire::decode_config;

const USAGE: &str = "usage: meterflow replay FILE.ndjson [--config FILE.json] [--only TYPES]
       meterflow eval [CORPUS_DIR] [--detector meterflow|zscore] [--corpus meters|nab-like]
                      [--short] [--seed N]
                      [--series] [--only NAMES] [--config FILE.json] [--baseline FILE]
                      [--write-baseline FILE]
       meterflow eval --generate DIR [--corpus meters|nab-like] [--short] [--seed N]

Replays a recording of worker page messages (one JSON object per line, each
with its arrival time \"t\" in ms) through the engine with a simulated clock and
prints every outbound message as one JSON line with \"t\" added.

  FILE.ndjson       the recording; - reads standard input
  --config FILE     a JSON object of config fields (camelCase) to start with
  --only TYPES      print only these message types, comma-separated (e.g.
                    anomaly,totals); of anomaly, cleared, stats, error,
                    warning, window, meter, totals, fetch

eval replays each labelled series of a corpus as one meter at 2 Hz with the
default config (or --config) and prints, per detector, the alerts inside and
outside the labelled windows, recall and delay per incident class, false
alerts per meter-day and the windowed score (docs/DETECTION.md, Evaluation).

  CORPUS_DIR        labels.json and one NAME.csv (t_ms,value) per series;
                    without it, the built-in seeded corpus
  --detector D      only this detector (default: meterflow and zscore)
  --corpus F        the built-in family: meters (default; two days of 2 Hz
                    meter data per series) or nab-like (NAB-like shapes at
                    their native point counts, replayed one per 500 ms)
  --short           the meters corpus at 4 hours per series (the smoke run)
  --seed N          the built-in corpus's seed (default 1)
  --series          also print the per-series tables
  --only NAMES      only these series (comma-separated names)
  --baseline FILE   exit 1 if the figures fall below FILE by its margins
  --write-baseline FILE   write the figures as a baseline (margins 5 points, 0.10 recall)
  --generate DIR    write the built-in corpus to DIR and stop
";

/// What the command line asks for.
struct Args {
    input: String,
    config: Option<String>,
    only: Option<Vec<OutType>>,
}

/// What `meterflow eval` is asked for.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Default)]
struct EvalArgs {
    corpus: Option<String>,
    detector: Option<Detector>,
    short: bool,
    family: Option<corpus::Family>,
    seed: Option<u64>,
    series: bool,
    only: Option<String>,
    config: Option<String>,
    baseline: Option<String>,
    write_baseline: Option<String>,
    generate: Option<String>,
}

enum Command {
    Replay(Args),
    #[cfg(not(target_arch = "wasm32"))]
    Eval(EvalArgs),
}

fn parse_command(mut args: impl Iterator<Item = String>) -> Result<Option<Command>, String> {
    #[cfg_attr(target_arch = "wasm32", allow(unused_mut))]
    let mut args = args.by_ref().peekable();
    #[cfg(not(target_arch = "wasm32"))]
    if args.peek().map(String::as_str) == Some("eval") {
        args.next();
        return parse_eval(args).map(|a| a.map(Command::Eval));
    }
    parse_args(args).map(|a| a.map(Command::Replay))
}

/// The value after option `name`, once.
#[cfg(not(target_arch = "wasm32"))]
fn once(slot: &mut Option<String>, name: &str, v: Option<String>) -> Result<(), String> {
    match v {
        Some(_) if slot.is_some() => Err(format!("{name} given twice")),
        Some(v) => {
            *slot = Some(v);
            Ok(())
        }
        None => Err(format!("{name} needs a value")),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn parse_eval(mut args: impl Iterator<Item = String>) -> Result<Option<EvalArgs>, String> {
    let mut e = EvalArgs::default();
    let (mut detector, mut seed, mut family) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--short" => e.short = true,
            "--series" => e.series = true,
            "--detector" => once(&mut detector, "--detector", args.next())?,
            "--seed" => once(&mut seed, "--seed", args.next())?,
            "--corpus" => once(&mut family, "--corpus", args.next())?,
            "--config" => once(&mut e.config, "--config", args.next())?,
            "--only" => once(&mut e.only, "--only", args.next())?,
            "--baseline" => once(&mut e.baseline, "--baseline", args.next())?,
            "--write-baseline" => once(&mut e.write_baseline, "--write-baseline", args.next())?,
            "--generate" => once(&mut e.generate, "--generate", args.next())?,
            s if s.starts_with("--") => return Err(format!("unknown option '{s}'")),
            _ if e.corpus.is_none() => e.corpus = Some(a),
            _ => return Err(format!("unexpected argument '{a}'")),
        }
    }
    if let Some(d) = detector {
        e.detector = Some(
            Detector::parse(&d).ok_or(format!("unknown detector '{d}' (meterflow or zscore)"))?,
        );
    }
    if let Some(f) = family {
        e.family = Some(
            corpus::Family::parse(&f)
                .ok_or(format!("unknown corpus family '{f}' (meters or nab-like)"))?,
        );
    }
    if e.short && e.family == Some(corpus::Family::NabLike) {
        return Err("--short is for the meters corpus (nab-like is short already)".into());
    }
    if let Some(s) = seed {
        e.seed = Some(s.parse().map_err(|_| format!("--seed: '{s}' is not a whole number"))?);
    }
    if e.corpus.is_some()
        && (e.generate.is_some() || e.family.is_some() || e.short || e.seed.is_some())
    {
        return Err(
            "--generate, --corpus, --short and --seed are for the built-in corpus, not CORPUS_DIR"
                .into(),
        );
    }
    Ok(Some(e))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    match args.next().as_deref() {
        Some("replay") => {}
        Some("-h" | "--help" | "help") => return Ok(None),
        Some(other) => return Err(format!("unknown command '{other}'")),
        None => return Err("missing command".into()),
    }
    let (mut input, mut config, mut only) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" => match args.next() {
                Some(f) if config.is_none() => config = Some(f),
                Some(_) => return Err("--config given twice".into()),
                None => return Err("--config needs a file".into()),
            },
            "--only" => match args.next() {
                Some(list) if only.is_none() => only = Some(OutType::parse_list(&list)?),
                Some(_) => return Err("--only given twice".into()),
                None => return Err("--only needs a list of message types".into()),
            },
            s if s.starts_with("--") => return Err(format!("unknown option '{s}'")),
            _ if input.is_none() => input = Some(a),
            _ => return Err(format!("unexpected argument '{a}'")),
        }
    }
    let input = input.ok_or("missing the recording (FILE.ndjson, or - for stdin)")?;
    Ok(Some(Args { input, config, only }))
}

fn load_config(path: Option<&str>) -> Result<Config, String> {
    let Some(path) = path else { return Ok(Config::default()) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON ({e})"))?;
    let patch = decode_config(&value).map_err(|e| format!("{path}: {e}"))?;
    Config::default().apply(&patch).map_err(|e| format!("{path}: {e}"))
}

/// `meterflow eval`: builds or reads the corpus, runs the detectors, prints.
#[cfg(not(target_arch = "wasm32"))]
fn run_eval(a: EvalArgs) -> Result<ExitCode, String> {
    let cfg = load_config(a.config.as_deref()).map_err(|e| format!("config {e}"))?;
    let seed = a.seed.unwrap_or(1);
    let len = if a.short { Length::Short } else { Length::Full };
    let corpus = match &a.corpus {
        Some(dir) => files::read_dir(std::path::Path::new(dir)).map_err(|e| e.to_string())?,
        None => match a.family.unwrap_or(corpus::Family::Meters) {
            corpus::Family::Meters => corpus::generate(seed, len),
            corpus::Family::NabLike => meterflow::eval::nab_like::generate(seed),
        },
    };
    let corpus = match &a.only {
        Some(names) => {
            let names: Vec<&str> = names.split(',').map(str::trim).collect();
            let unknown: Vec<&&str> =
                names.iter().filter(|n| !corpus.iter().any(|s| s.name == **n)).collect();
            if !unknown.is_empty() {
                return Err(format!("--only: no series named {unknown:?}"));
            }
            corpus.into_iter().filter(|s| names.contains(&s.name.as_str())).collect()
        }
        None => corpus,
    };
    if let Some(dir) = &a.generate {
        files::write_dir(std::path::Path::new(dir), &corpus).map_err(|e| e.to_string())?;
        eprintln!("meterflow: wrote {} series to {dir}", corpus.len());
        return Ok(ExitCode::SUCCESS);
    }
    let detectors = match a.detector {
        Some(d) => vec![d],
        None => vec![Detector::Meterflow, Detector::Zscore],
    };
    let mut figs = Vec::new();
    for d in detectors {
        let (scores, f) = report::evaluate(d, &corpus, &cfg).map_err(|e| e.to_string())?;
        if a.series {
            println!("{}", report::series_table(d.as_str(), &scores));
        }
        figs.push(f);
    }
    let what = a.corpus.clone().unwrap_or_else(|| {
        let family = a.family.unwrap_or(corpus::Family::Meters).as_str();
        format!("built-in {family} corpus, seed {seed}{}", if a.short { ", short" } else { "" })
    });
    println!(
        "{} series, {} labelled windows ({what})",
        corpus.len(),
        figs.first().map_or(0, |f| f.windows)
    );
    print!("{}", report::summary_table(&figs));
    if let Some(path) = &a.write_baseline {
        let b = report::Baseline {
            seed,
            short: a.short,
            corpus: a.family.unwrap_or(corpus::Family::Meters).as_str().to_string(),
            score_margin: 5.0,
            recall_margin: 0.10,
            detectors: figs.clone(),
        };
        let text = serde_json::to_string_pretty(&b).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = &a.baseline {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let b: report::Baseline =
            serde_json::from_str(&text).map_err(|e| format!("{path}: not a baseline ({e})"))?;
        let problems = report::check_baseline(&b, &figs);
        if !problems.is_empty() {
            for p in problems {
                eprintln!("meterflow: regression: {p}");
            }
            return Ok(ExitCode::from(1));
        }
        eprintln!("meterflow: no regression against {path}");
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args = match parse_command(std::env::args().skip(1)) {
        #[cfg(not(target_arch = "wasm32"))]
        Ok(Some(Command::Eval(e))) => {
            return match run_eval(e) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("meterflow: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Ok(Some(Command::Replay(a))) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("meterflow: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meterflow: config {e}");
            return ExitCode::from(1);
        }
    };
    let opts = ReplayOptions { only: args.only, ..ReplayOptions::default() };
    let stdout = io::stdout();
    let out = io::BufWriter::new(stdout.lock());
    let result = if args.input == "-" {
        replay_with(io::stdin().lock(), out, cfg, opts)
    } else {
        match File::open(&args.input) {
            Ok(f) => replay_with(BufReader::new(f), out, cfg, opts),
            Err(e) => {
                eprintln!("meterflow: {}: {e}", args.input);
                return ExitCode::from(1);
            }
        }
    };
    match result {
        Ok(s) => {
            eprintln!(
                "meterflow: replayed {} lines ({} messages, {} bad lines, {} rejected), {} ticks, {} flushes, {} outputs, {} filtered out",
                s.lines, s.messages, s.bad_lines, s.rejected, s.ticks, s.flushes, s.outputs, s.filtered
            );
            ExitCode::SUCCESS
        }
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(ReplayError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = io::stderr().flush();
            eprintln!("meterflow: {e}");
            ExitCode::from(1)
        }
    }
}
