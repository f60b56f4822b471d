#![cfg(not(target_arch = "wasm32"))]
//! Memory follows the meters in use, not `maxMeters` (issue 9): an engine
//! configured for 50,000 meters with 5,000 in use reserves about 5,000 meters'
//! worth, so the reservation alone no longer trips the memory guard.

use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::event::{Inbound, KeyScope, Outbound, ReadingBatch};
use meterflow::core::Engine;

const NOW: f64 = 1.7e12;

#[test]
fn max_meters_50000_with_5000_in_use_reserves_for_5000() -> Result<(), String> {
    let patch = ConfigPatch { max_meters: Some(50_000), ..Default::default() };
    let cfg = Config::default().apply(&patch).map_err(|e| e.to_string())?;
    let window = cfg.window as usize;
    let mut engine = Engine::new(cfg).map_err(|e| e.to_string())?;
    let mut b = ReadingBatch { scope: KeyScope::Batch, ..Default::default() };
    for m in 0..5_000u32 {
        b.bindings.push((m, format!("m-{m}")));
        b.keys.push(m);
        b.ts.push(NOW - 1_000.0);
        b.values.push(f64::from(m));
    }
    let out = engine.handle(Inbound::Readings(b), NOW);
    assert!(!out.iter().any(|o| matches!(o, Outbound::Warning(_) | Outbound::Error(_))), "{out:?}");
    assert_eq!(engine.meter_count(), 5_000);
    assert_eq!(engine.windows().window(), window, "the memory guard must not have fired");
    // 5,000 rings of 1,200 samples are 48 MB; 50,000 would be 480 MB.
    let per_meter = engine.engine_bytes() as f64 / 5_000.0;
    assert!(per_meter < 11_000.0, "{per_meter} bytes per meter");
    Ok(())
}
