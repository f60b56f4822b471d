// The worker `profile-tick.mjs` profiles: the benchmark worker's tick phase
// (bench/worker.js, step 2b), alone, so a CPU profile taken around it holds
// nothing else.
//
// Messages: `{ pkg, meters, baseline, trained }` loads
// `../<pkg>/meterflow.js`, fills every window (1,200 readings per meter,
// binary frames) and, if `trained`, trains every meter on `baseline` readings
// (else the ticks are the bench's `tickUntrained`), then answers
// `{ ready: true }`; `{ ticks }` then runs that many rounds of one binary
// frame (every meter dirty) followed by one `engine.tick`, the tick alone
// timed, and answers `{ tickMs: [...] }`. For `profile-tick.mjs --ingest`, a
// `{ type: 'readings', id, data }` message (a transferred kind-1 frame from
// the page) goes to `engine.handle` as www/worker.js would hand it on, and is
// answered `{ ack: id, ms }` (`ms`: the time inside `engine.handle`).
// For `profile-tick.mjs --join`, `{ join: n, maxMeters, repeat, pkg }` makes
// `repeat` fresh engines in turn, each given one kind-1 frame that binds `n`
// meters with 2·n records (keys `i % n`, one shared ts), the frame's
// `engine.handle` timed, the engine freed before the next: the first join
// takes fresh linear memory, the later ones reuse what the freed engines
// left (memory already touched), answered `{ joinMs: [...] }`.
import { ReadingFrameEncoder, encodeReadingsFrame, sharedTsOffset } from '../frames.js';
import { random } from './random.js';

const WINDOW = 1200;
const STEP_MS = 500;
const TRAIN_READINGS_PER_TICK = 10;

let engine;
let nextFrame;
let clock;

function check(out, what) {
  for (const m of out) {
    if (m.type === 'error' || m.type === 'warning') throw new Error(`${what}: ${m.type} ${m.code}: ${m.message}`);
  }
  return out;
}

async function setup({ pkg, meters, baseline, trained }) {
  const mod = await import(`../${pkg}/meterflow.js`);
  await mod.default();
  // The benchmark worker's configuration (bench/worker.js), stats every tick.
  engine = new mod.MeterflowEngine({ maxMeters: meters, memoryCeilingBytes: 1e12, statsIntervalMs: 1, baselineReadings: baseline });
  const rand = random(meters);
  const ids = Array.from({ length: meters }, (_, i) => `meter-${String(i).padStart(6, '0')}`);
  const encoder = new ReadingFrameEncoder(ids);
  const level = Float64Array.from(ids, (_, i) => 50 + (i % 100));
  const values = () => Float64Array.from(level, (l) => l + (rand() + rand() + rand() - 1.5) * 2);
  const first = encoder.frame(0, values());
  const frames = Array.from({ length: 8 }, () => encoder.frame(0, values()));
  const tsAt = sharedTsOffset(frames[0]);
  const views = frames.map((f) => new DataView(f));
  let k = 0;
  nextFrame = (ts) => {
    const i = k++ % frames.length;
    views[i].setFloat64(tsAt, ts, true);
    return frames[i];
  };
  const start = Date.now() - WINDOW * STEP_MS;
  new DataView(first).setFloat64(sharedTsOffset(first), start, true);
  check(engine.handle({ type: 'readings', data: first }, Date.now()), 'bind');
  for (let s = 1; s < WINDOW; s++) {
    check(engine.handle({ type: 'readings', data: nextFrame(start + s * STEP_MS) }, Date.now()), 'fill');
  }
  check(engine.tick(Date.now()), 'first tick');
  clock = Date.now();
  let learned = WINDOW;
  while (trained && learned < baseline) {
    for (let i = 0; i < TRAIN_READINGS_PER_TICK; i++) {
      clock += STEP_MS;
      check(engine.handle({ type: 'readings', data: nextFrame(clock) }, clock), 'training frame');
    }
    check(engine.tick(clock), 'training tick');
    learned += TRAIN_READINGS_PER_TICK;
  }
}

function ticks(n) {
  const tickMs = [];
  for (let r = 0; r < n; r++) {
    clock += STEP_MS;
    check(engine.handle({ type: 'readings', data: nextFrame(clock) }, clock), 'tick frame');
    const t0 = performance.now();
    const out = engine.tick(clock);
    tickMs.push(performance.now() - t0);
    check(out, 'tick');
  }
  return tickMs;
}

async function joins({ join: n, maxMeters, repeat, pkg }) {
  const mod = await import(`../${pkg}/meterflow.js`);
  await mod.default();
  const bindings = Array.from({ length: n }, (_, k) => [k, `meter-${String(k).padStart(6, '0')}`]);
  const keys = Uint32Array.from({ length: 2 * n }, (_, i) => i % n);
  const values = Float64Array.from(keys, (k) => 50 + (k % 100));
  const joinMs = [];
  for (let r = 0; r < repeat; r++) {
    const fresh = new mod.MeterflowEngine({ maxMeters, memoryCeilingBytes: 1e12 });
    const data = encodeReadingsFrame({ bindings, keys, ts: Date.now() - 1000, values });
    const t0 = performance.now();
    const out = fresh.handle({ type: 'readings', data }, Date.now());
    joinMs.push(performance.now() - t0);
    check(out, 'join frame');
    fresh.free();
  }
  return joinMs;
}

self.onmessage = async (e) => {
  try {
    if (e.data.join !== undefined) {
      self.postMessage({ joinMs: await joins(e.data) });
    } else if (e.data.type === 'readings') {
      const t0 = performance.now();
      const out = engine.handle(e.data, Date.now());
      const ms = performance.now() - t0;
      check(out, 'ingest frame');
      self.postMessage({ ack: e.data.id, ms });
    } else if (e.data.ticks === undefined) {
      await setup(e.data);
      self.postMessage({ ready: true });
    } else {
      self.postMessage({ tickMs: ticks(e.data.ticks) });
    }
  } catch (err) {
    self.postMessage({ error: String(err?.stack ?? err) });
  }
};
