// The benchmark worker: one size, one fresh wasm instance, `MeterflowEngine`
// used directly (no postMessage in the timed paths).
//
// For N meters it
//   1. binds the meters and fills every window (1,200 readings each) with binary
//      frames, one reading per meter per frame;
//   2. times ticks with every meter dirty (one binary frame before each tick),
//      first on meters still learning (`tickUntrained`: the learned rules are
//      skipped until `baselineReadings`, so this flatters the cost), then
//      after training every meter on `baselineReadings` readings (`tick`: drift,
//      variance and stuck judged, as on a page that has run for an hour);
//   3. times binary ingest: `engine.handle({type:'readings', data: ArrayBuffer})`,
//      which includes the JS→wasm copy, decoding and ingest (frames are built
//      beforehand; only their shared timestamp is rewritten in place);
//   4. times JSON ingest the same way with prebuilt JSON strings (the string
//      crosses into wasm as UTF-8, then is parsed);
//   5. reports linear memory per meter and the engine's own estimate;
//   6. then the consumption ledger, in a fresh engine (bench/ledger.js).
import init, { MeterflowEngine } from '../pkg/meterflow.js';
import { ReadingFrameEncoder, sharedTsOffset } from '../frames.js';
import { runLedger } from './ledger.js';
import { random } from './random.js';

const WINDOW = 1200;
const STEP_MS = 500;
// The engine's default `baselineReadings` (docs/DETECTION.md), set explicitly
// so that the training below is sized from the value the engine uses; the
// smoke run trains on fewer, to stay quick while taking the same path.
const BASELINE = 7200;
const SMOKE_BASELINE = WINDOW + 100;
// Readings per meter between ticks while training (a tenth of the ticks).
const TRAIN_READINGS_PER_TICK = 10;

self.onmessage = async (e) => {
  try {
    await init();
    const result = run(e.data);
    result.ledger = runLedger(e.data);
    self.postMessage(result);
  } catch (err) {
    self.postMessage({ error: String(err?.stack ?? err) });
  }
};

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Fails loudly if the engine reported an error: a benchmark of refused input measures nothing. */
function check(out, what) {
  for (const m of out) {
    if (m.type === 'error' || m.type === 'warning') throw new Error(`${what}: ${m.type} ${m.code}: ${m.message}`);
  }
  return out;
}

function run({ meters, smoke }) {
  const rand = random(meters);
  const baseline = smoke ? SMOKE_BASELINE : BASELINE;
  const engine = new MeterflowEngine({ maxMeters: meters, memoryCeilingBytes: 1e12, statsIntervalMs: 1, baselineReadings: baseline });
  const ids = Array.from({ length: meters }, (_, i) => `meter-${String(i).padStart(6, '0')}`);
  const encoder = new ReadingFrameEncoder(ids);
  const level = Float64Array.from(ids, (_, i) => 50 + (i % 100));
  const values = () => Float64Array.from(level, (l) => l + (rand() + rand() + rand() - 1.5) * 2);

  // Prebuilt frames without bindings, cycled; their shared ts is rewritten in place.
  const first = encoder.frame(0, values()); // binds every meter
  const frames = Array.from({ length: 8 }, () => encoder.frame(0, values()));
  const tsAt = sharedTsOffset(frames[0]);
  const views = frames.map((f) => new DataView(f));
  const frameBytes = frames[0].byteLength;
  let k = 0;
  const nextFrame = (ts) => {
    const i = k++ % frames.length;
    views[i].setFloat64(tsAt, ts, true);
    return frames[i];
  };

  // 1. Fill every window: readings from 10 minutes ago up to now.
  const start = Date.now() - WINDOW * STEP_MS;
  new DataView(first).setFloat64(sharedTsOffset(first), start, true);
  let t0 = performance.now();
  check(engine.handle({ type: 'readings', data: first }, Date.now()), 'bind');
  for (let s = 1; s < WINDOW; s++) {
    check(engine.handle({ type: 'readings', data: nextFrame(start + s * STEP_MS) }, Date.now()), 'fill');
  }
  const fillSeconds = (performance.now() - t0) / 1000;
  const tickOut = engine.tick(Date.now()); // evaluates the fill, starts the stats clock
  const statsAfterFill = check(tickOut, 'first tick').find((m) => m.type === 'stats');
  if (!statsAfterFill || statsAfterFill.meters !== meters || statsAfterFill.window !== WINDOW) {
    throw new Error(`fill did not track ${meters} meters with window ${WINDOW}: ${JSON.stringify(statsAfterFill)}`);
  }

  // 2. Ticks with every meter dirty. Engine time advances one step per round (a
  // virtual clock running ahead of Date.now(), readings stamped with it), so
  // each tick's stats carry the previous tick's time as measured inside wasm.
  const rounds = smoke ? 3 : 30;
  let clock = Date.now();
  const timeTicks = () => {
    const tickMs = [];
    const engineTickMs = [];
    for (let r = 0; r < rounds; r++) {
      clock += STEP_MS;
      check(engine.handle({ type: 'readings', data: nextFrame(clock) }, clock), 'tick frame');
      t0 = performance.now();
      const out = engine.tick(clock);
      tickMs.push(performance.now() - t0);
      const stats = check(out, 'tick').find((m) => m.type === 'stats');
      if (stats && r > 0) engineTickMs.push(stats.lastTickEvalMs);
    }
    return {
      rounds,
      medianMs: median(tickMs),
      minMs: Math.min(...tickMs),
      maxMs: Math.max(...tickMs),
      engineMedianMs: engineTickMs.length ? median(engineTickMs) : NaN,
    };
  };
  // 2a. Untrained: WINDOW + rounds readings per meter, short of the baseline.
  const tickUntrained = timeTicks();
  // 2b. Train: frames until every meter has been evaluated over `baseline`
  // readings (the fill, the rounds above, then these), ticking every
  // TRAIN_READINGS_PER_TICK frames; then time the same ticks again.
  let learned = WINDOW + rounds;
  t0 = performance.now();
  while (learned < baseline) {
    for (let i = 0; i < TRAIN_READINGS_PER_TICK; i++) {
      clock += STEP_MS;
      check(engine.handle({ type: 'readings', data: nextFrame(clock) }, clock), 'training frame');
    }
    check(engine.tick(clock), 'training tick');
    learned += TRAIN_READINGS_PER_TICK;
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  const tick = timeTicks();
  // Engine time from here on continues from the virtual clock.
  const skew = clock - Date.now();
  const now = () => Date.now() + skew;

  // 3. Binary ingest, windows full.
  const binaryTarget = smoke ? 3 * meters : Math.max(3_000_000, 20 * meters);
  const binaryFrames = Math.ceil(binaryTarget / meters);
  let binaryMs = 0;
  for (let i = 0; i < binaryFrames; i++) {
    const data = nextFrame(now() - 1000);
    const msg = { type: 'readings', data };
    t0 = performance.now();
    const out = engine.handle(msg, now());
    binaryMs += performance.now() - t0;
    if (out.length) check(out, 'binary ingest');
  }
  const binaryReadings = binaryFrames * meters;

  // 4. JSON ingest, same meters, prebuilt strings.
  const jsonTexts = Array.from({ length: 4 }, () => {
    const v = values();
    const ts = now() - 1000;
    const items = ids.map((id, i) => `{"meter":"${id}","ts":${ts},"value":${v[i]}}`);
    return `{"type":"readings","readings":[${items.join(',')}]}`;
  });
  const jsonTarget = smoke ? 2 * meters : Math.max(1_000_000, 8 * meters);
  const jsonMessages = Math.ceil(jsonTarget / meters);
  let jsonMs = 0;
  let jsonBytes = 0;
  for (let i = 0; i < jsonMessages; i++) {
    const data = jsonTexts[i % jsonTexts.length];
    t0 = performance.now();
    const out = engine.handle({ type: 'readings', data }, now());
    jsonMs += performance.now() - t0;
    jsonBytes += data.length;
    if (out.length) check(out, 'JSON ingest');
  }
  const jsonReadings = jsonMessages * meters;

  // 5. Memory.
  const stats = engine.handle({ type: 'query', query: 'stats' }, now()).find((m) => m.type === 'stats');
  const linearMemoryBytes = engine.linearMemoryBytes();
  engine.free();
  return {
    meters,
    window: WINDOW,
    fill: { seconds: fillSeconds, readingsPerSec: (meters * WINDOW) / fillSeconds },
    baselineReadings: baseline,
    train: { readingsPerMeter: learned, seconds: trainSeconds },
    tick,
    tickUntrained,
    binary: {
      readings: binaryReadings,
      frameBytes,
      bytesPerReading: frameBytes / meters,
      readingsPerSec: binaryReadings / (binaryMs / 1000),
      mbPerSec: (binaryFrames * frameBytes) / 1e6 / (binaryMs / 1000),
    },
    json: {
      readings: jsonReadings,
      bytesPerReading: jsonBytes / jsonReadings,
      readingsPerSec: jsonReadings / (jsonMs / 1000),
      mbPerSec: jsonBytes / 1e6 / (jsonMs / 1000),
    },
    memory: {
      linearMemoryBytes,
      linearBytesPerMeter: linearMemoryBytes / meters,
      engineBytes: stats.engineBytes,
      engineBytesPerMeter: stats.engineBytes / meters,
      readingsIngested: stats.readingsIngested,
      readingsRejected: stats.readingsRejected,
    },
  };
}
