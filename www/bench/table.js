// The human-readable table of benchmark results (shared by the page and run.mjs).

const f = (x, digits = 0) =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–';

/** @param {object[]} results one entry per size, as bench/worker.js posts them */
export function formatTable(results) {
  const rows = [
    ['meters', (r) => f(r.meters)],
    ['tick, all meters dirty, trained: median ms', (r) => f(r.tick.medianMs, 3)],
    ['  min / max ms', (r) => `${f(r.tick.minMs, 3)} / ${f(r.tick.maxMs, 3)}`],
    ['  inside wasm (engine), median ms', (r) => f(r.tick.engineMedianMs, 3)],
    ['tick before training (learned rules skipped): median ms', (r) => f(r.tickUntrained?.medianMs, 3)],
    ['  training to baselineReadings, s', (r) => f(r.train?.seconds, 1)],
    ['binary ingest, readings/s', (r) => f(r.binary.readingsPerSec)],
    ['  MB/s of frames', (r) => f(r.binary.mbPerSec, 1)],
    ['JSON ingest, readings/s', (r) => f(r.json.readingsPerSec)],
    ['  MB/s of JSON text', (r) => f(r.json.mbPerSec, 1)],
    ['fill (1,200/meter, binary), readings/s', (r) => f(r.fill.readingsPerSec)],
    ['linear memory, bytes/meter', (r) => f(r.memory.linearBytesPerMeter)],
    ['engine estimate, bytes/meter', (r) => f(r.memory.engineBytesPerMeter)],
    ['linear memory, MB', (r) => f(r.memory.linearMemoryBytes / 1e6, 1)],
    ['ledger: ns per live reading (binary, incl. decode)', (r) => f(r.ledger?.nsPerReading, 1)],
    ['  live readings/s', (r) => f(r.ledger?.readingsPerSec)],
    ['  pending after 60 s at 10,000/s: readings', (r) => f(r.ledger?.pending.readings)],
    ['  bytes held for them (engine estimate)', (r) => f(r.ledger?.pending.engineBytes)],
    ['  linear memory growth, bytes', (r) => f(r.ledger?.pending.linearGrowthBytes)],
    ['  REST 7h x 3 merge retiring them, ms', (r) => f(r.ledger?.retireMs, 3)],
    ['  REST per-meter (5,000 x 7h x 3) merge, ms', (r) => f(r.ledger?.perMeterMerge.medianMs, 1)],
    ['    entries / JSON MB', (r) => `${f(r.ledger?.perMeterMerge.entries)} / ${f((r.ledger?.perMeterMerge.bodyBytes ?? NaN) / 1e6, 1)}`],
    ['  same as binary kind 3: merge ms / frame MB', (r) => `${f(r.ledger?.perMeterBinaryMerge.medianMs, 1)} / ${f((r.ledger?.perMeterBinaryMerge.frameBytes ?? NaN) / 1e6, 1)}`],
  ];
  const cols = [rows.map(([name]) => name), ...results.map((r) => rows.map(([, get]) => get(r)))];
  const widths = cols.map((c) => Math.max(...c.map((s) => s.length)));
  return rows
    .map((_, i) => cols.map((c, j) => (j === 0 ? c[i].padEnd(widths[j]) : c[i].padStart(widths[j]))).join('  '))
    .join('\n');
}
