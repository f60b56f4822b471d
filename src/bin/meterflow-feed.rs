//! `meterflow-feed`: the feed server (docs/STREAM.md, "Feed server").
//!
//! `meterflow-feed [--host 127.0.0.1] [--port 8090] [--meters 5000] [--seed 1]
//! [--speed 1] [--start-ms MS] [--epoch N] [--history-hours 168] [--meter-history-hours 8] [--ring 240]
//! [--ring-readings 1200000]
//! [--heartbeat-ms 15000] [--www DIR] [--groups 8] [--delta-ring 32]
//! [--max-notices 64] [--drop-pct P] [--duplicate-pct P] [--reorder-window N]
//! [--disconnect-every-s S] [--rest-delay-ms MS] [--rest-out-of-order true]
//! [--clock-skew-ms MS] [--credit-overrun N]`. Prints the URL it listens on,
//! then serves until SIGINT or SIGTERM. Faults change at runtime through
//! `POST /admin/faults` (docs/STREAM.md §7).
//!
//! Redis mode (`redis` feature, docs/STREAM.md §8): `--redis URL` (or the
//! `FEED_REDIS` variable) with `--role writer` (the simulator: XADDs every
//! tick, persists the durable totals; no HTTP) or `--role gateway` (the
//! default: one instance serving the stream read from Redis; `--instance
//! NAME`, default `gw-<port>`); `--redis-prefix P`, `--redis-max-len N`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use meterflow::feed::{start, FeedConfig};

const USAGE: &str =
    "usage: meterflow-feed [--host IP] [--port N] [--meters N] [--seed N] [--speed X] \
[--start-ms MS] [--epoch N] [--history-hours N] [--meter-history-hours N] [--catchup-meter-entries N] [--ring N] [--ring-readings N] [--heartbeat-ms N] [--www DIR] \
[--groups N] [--delta-ring N] [--max-notices N] [--drop-pct P] [--duplicate-pct P] \
[--reorder-window N] [--disconnect-every-s S] [--rest-delay-ms MS] [--rest-out-of-order BOOL] \
[--clock-skew-ms MS] [--credit-overrun N] \
[--redis URL] [--role writer|gateway] [--instance NAME] [--redis-prefix P] [--redis-max-len N]";

/// Embedded (the default) or one process of the Redis mode.
enum Mode {
    Embedded,
    #[cfg(feature = "redis")]
    Writer(meterflow::feed::redis::RedisConfig),
    #[cfg(feature = "redis")]
    Gateway(meterflow::feed::redis::RedisConfig),
}

/// The Redis flags, read whatever the build; only a `redis` build takes them.
#[derive(Default)]
struct RedisFlags {
    url: Option<String>,
    role: Option<String>,
    instance: Option<String>,
    prefix: Option<String>,
    max_len: Option<u64>,
}

#[cfg(feature = "redis")]
fn mode(f: RedisFlags, port: u16) -> Result<Mode, String> {
    use meterflow::feed::redis::RedisConfig;
    let Some(url) = f.url else {
        return match f.role {
            Some(_) => Err("--role needs --redis URL (or FEED_REDIS)".into()),
            None => Ok(Mode::Embedded),
        };
    };
    let d = RedisConfig::default();
    let rc = RedisConfig {
        url,
        instance: f.instance.unwrap_or_else(|| format!("gw-{port}")),
        prefix: f.prefix.unwrap_or(d.prefix),
        max_len: f.max_len.unwrap_or(d.max_len),
        ..d
    };
    rc.validate()?;
    match f.role.as_deref() {
        Some("writer") => Ok(Mode::Writer(rc)),
        None | Some("gateway") => Ok(Mode::Gateway(rc)),
        Some(r) => Err(format!("--role: bad value '{r}' (writer or gateway)")),
    }
}

#[cfg(not(feature = "redis"))]
fn mode(f: RedisFlags, _port: u16) -> Result<Mode, String> {
    let any = f.url.or(f.role).or(f.instance).or(f.prefix).or(f.max_len.map(|n| n.to_string()));
    match any {
        Some(_) => Err("this meterflow-feed was built without the `redis` feature \
(cargo build --features redis); unset FEED_REDIS for the embedded server"
            .into()),
        None => Ok(Mode::Embedded),
    }
}

fn parse(args: &[String]) -> Result<(FeedConfig, SocketAddr, Mode), String> {
    let mut cfg = FeedConfig {
        // A new epoch per process: a restarted server's stream is a new one.
        epoch: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs().max(1)),
        ..FeedConfig::default()
    };
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut port: u16 = 8090;
    let mut rf = RedisFlags {
        url: std::env::var("FEED_REDIS").ok().filter(|v| !v.is_empty()),
        ..RedisFlags::default()
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |_| format!("{flag}: bad value '{value}'");
        let bad_f = || format!("{flag}: bad value '{value}'");
        match flag.as_str() {
            "--host" => {
                host = value.parse().map_err(|_| format!("--host: bad address '{value}'"))?
            }
            "--port" => port = value.parse().map_err(bad)?,
            "--meters" => cfg.meters = value.parse().map_err(bad)?,
            "--seed" => cfg.seed = value.parse().map_err(bad)?,
            "--speed" => {
                cfg.speed = value.parse().map_err(|_| format!("--speed: bad value '{value}'"))?
            }
            "--start-ms" => cfg.start_ms = Some(value.parse().map_err(bad)?),
            "--epoch" => cfg.epoch = value.parse().map_err(bad)?,
            "--history-hours" => cfg.history_hours = value.parse().map_err(bad)?,
            "--meter-history-hours" => cfg.meter_history_hours = value.parse().map_err(bad)?,
            "--catchup-meter-entries" => cfg.catchup_meter_entries = value.parse().map_err(bad)?,
            "--ring" => cfg.ring_frames = value.parse().map_err(bad)?,
            "--ring-readings" => cfg.ring_readings = value.parse().map_err(bad)?,
            "--heartbeat-ms" => cfg.heartbeat_interval_ms = value.parse().map_err(bad)?,
            "--www" => cfg.www = value.into(),
            "--groups" => cfg.groups = value.parse().map_err(bad)?,
            "--delta-ring" => cfg.delta_ring = value.parse().map_err(bad)?,
            "--max-notices" => cfg.max_notices = value.parse().map_err(bad)?,
            "--drop-pct" => cfg.faults.drop_pct = value.parse().map_err(|_| bad_f())?,
            "--duplicate-pct" => cfg.faults.duplicate_pct = value.parse().map_err(|_| bad_f())?,
            "--reorder-window" => cfg.faults.reorder_window = value.parse().map_err(bad)?,
            "--disconnect-every-s" => {
                let s: f64 = value.parse().map_err(|_| bad_f())?;
                if !(0.0..=86_400.0).contains(&s) {
                    return Err(format!("{flag}: must be 0..=86400"));
                }
                cfg.faults.disconnect_every_ms = (s * 1e3) as u64;
            }
            "--rest-delay-ms" => cfg.faults.rest_delay_ms = value.parse().map_err(bad)?,
            "--rest-out-of-order" => {
                cfg.faults.rest_out_of_order = value.parse().map_err(|_| bad_f())?
            }
            "--clock-skew-ms" => cfg.faults.clock_skew_ms = value.parse().map_err(|_| bad_f())?,
            "--credit-overrun" => cfg.faults.credit_overrun = value.parse().map_err(bad)?,
            "--redis" => rf.url = Some(value.clone()),
            "--role" => rf.role = Some(value.clone()),
            "--instance" => rf.instance = Some(value.clone()),
            "--redis-prefix" => rf.prefix = Some(value.clone()),
            "--redis-max-len" => rf.max_len = Some(value.parse().map_err(bad)?),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    cfg.validate()?;
    let mode = mode(rf, port)?;
    Ok((cfg, SocketAddr::new(host, port), mode))
}

async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, addr, mode) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meterflow-feed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let started = match mode {
            Mode::Embedded => start(cfg.clone(), addr).await,
            #[cfg(feature = "redis")]
            Mode::Writer(rc) => return run_writer(cfg, rc).await,
            #[cfg(feature = "redis")]
            Mode::Gateway(rc) => {
                eprintln!("meterflow-feed: gateway {} on {}", rc.instance, rc.url);
                meterflow::feed::redis::start_gateway(cfg.clone(), addr, rc)
                    .await
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", e.code())))
            }
        };
        let server = match started {
            Ok(s) => s,
            Err(e) => {
                eprintln!("meterflow-feed: {e}");
                return ExitCode::FAILURE;
            }
        };
        // A gateway's meters, seed and epoch are the writer's.
        let cfg = server.shared().cfg.clone();
        println!("{}", server.url());
        eprintln!(
            "meterflow-feed: {} meters, seed {}, speed {}x, epoch {}; stream at {}/stream",
            cfg.meters,
            cfg.seed,
            cfg.speed,
            cfg.epoch,
            server.url().replacen("http", "ws", 1)
        );
        // A gateway whose stream failed its checks stops by itself.
        let mut stopped = server.shared().shutdown();
        tokio::select! {
            () = signal() => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
        eprintln!("meterflow-feed: stopping");
        match server.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("meterflow-feed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(feature = "redis")]
async fn run_writer(cfg: FeedConfig, rc: meterflow::feed::redis::RedisConfig) -> ExitCode {
    let url = rc.url.clone();
    let writer = match meterflow::feed::redis::start_writer(cfg.clone(), rc).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("meterflow-feed: {}: {e}", e.code());
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "meterflow-feed: writer, {} meters, seed {}, speed {}x, epoch {}, to {url}",
        cfg.meters, cfg.seed, cfg.speed, cfg.epoch
    );
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            () = signal() => break,
            _ = tick.tick() => if writer.is_finished() { break },
        }
    }
    eprintln!("meterflow-feed: stopping the writer");
    match writer.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meterflow-feed: {}: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}
