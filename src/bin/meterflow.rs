//! The `meterflow` command: `meterflow replay FILE.ndjson [--config FILE.json] [--only TYPES]`.
//!
//! Replays a recording of page messages through the engine with a simulated
//! clock and prints every outbound message as NDJSON (see `docs/REPLAY.md`).
//! Exit codes: 0 done (bad lines are reported in the output), 1 a file could
//! not be read or written or the configuration is invalid, 2 bad usage.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::process::ExitCode;

use meterflow::core::config::Config;
use meterflow::replay::{replay_with, OutType, ReplayError, ReplayOptions};
use meterflow::wire::decode_config;

const USAGE: &str = "usage: meterflow replay FILE.ndjson [--config FILE.json] [--only TYPES]

Replays a recording of worker page messages (one JSON object per line, each
with its arrival time \"t\" in ms) through the engine with a simulated clock and
prints every outbound message as one JSON line with \"t\" added.

  FILE.ndjson       the recording; - reads standard input
  --config FILE     a JSON object of config fields (camelCase) to start with
  --only TYPES      print only these message types, comma-separated (e.g.
                    anomaly,totals); of anomaly, cleared, stats, error,
                    warning, window, meter, totals, fetch
";

/// What the command line asks for.
struct Args {
    input: String,
    config: Option<String>,
    only: Option<Vec<OutType>>,
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

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
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
