// The path benchmark (issue 9): readings posted from the page to a worker with
// `postMessage`, timed from the first post to the worker's `ack` of the last
// batch, meterflow (the shipped www/worker.js + startWorker) side by side with a
// careful JavaScript worker (bench/js-worker.js) doing the same work.
//
// Per format (binary kind-1 frames, transferred; JSON text) and pass: for each
// arm, in an order alternated per pass (A B, B A, …), a fresh worker is
// started (start → `ready` timed), every meter's window is filled (1,200
// readings each, binary, untimed), then READINGS readings over METERS meters
// are posted back to back in batches of BATCH, each with an `id`; the time is
// from the first post to the ack of the last. Then every meter's window mean
// and variance are read back from both workers and compared (relative 1e-12).
// Results are published as `window.benchResult`.

import { encodeReadingsFrame } from '../frames.js';
import { checkDetection } from './js-equivalence.js';
import { random } from './random.js';

const params = new URLSearchParams(location.search);
const smoke = params.get('smoke') === '1';
const METERS = Number(params.get('meters') ?? 5000);
const READINGS = Number(params.get('readings') ?? (smoke ? 200_000 : 4_000_000));
const BATCH = Number(params.get('batch') ?? 10_000);
const PASSES = Number(params.get('passes') ?? (smoke ? 1 : 5));
// The JS worker's alerts are checked against meterflow's once per benchmark
// (`detection=0` skips it: the 50,000-meter page, after the 5,000-meter one).
const DETECTION = params.get('detection') !== '0';
const WINDOW = 1200;
const TOLERANCE = 1e-12;
// `maxHeldAcks` for both arms when given (each worker's default, 64, otherwise).
const HELD_ACKS = params.has('heldAcks') ? Number(params.get('heldAcks')) : undefined;

const ARMS = {
  meterflow: () => new Worker(new URL('../worker.js', import.meta.url), { type: 'module' }),
  js: () => new Worker(new URL('./js-worker.js', import.meta.url), { type: 'module' }),
};

const ids = Array.from({ length: METERS }, (_, i) => `meter-${String(i).padStart(6, '0')}`);

/** Values with 3 decimals (exact thousandths), around a per-meter level. */
function batchValues(rand, n) {
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const level = 50 + ((i % METERS) % 100);
    v[i] = Math.round((level + (rand() + rand() + rand() - 1.5) * 2) * 1000) / 1000;
  }
  return v;
}

/**
 * A kind-1 frame: `n` records over meters `(first + i) % METERS`, one shared
 * ts, bindings if `bind`.
 */
function frame(ts, values, bind, first = 0) {
  const keys = new Uint32Array(values.length);
  for (let i = 0; i < keys.length; i++) keys[i] = (first + i) % METERS;
  return encodeReadingsFrame({ bindings: bind ? ids.map((id, key) => [key, id]) : [], keys, ts, values });
}

function jsonText(ts, values, first = 0) {
  const parts = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    parts[i] = `{"meter":"${ids[(first + i) % METERS]}","ts":${ts},"value":${values[i]}}`;
  }
  return `{"type":"readings","readings":[${parts.join(',')}]}`;
}

/** A worker wrapped with an ack waiter and a reply queue. */
function start(arm) {
  const t0 = performance.now();
  const worker = ARMS[arm]();
  const acks = new Map();
  const replies = [];
  const errors = [];
  let ready;
  const readyP = new Promise((r) => (ready = r));
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'ready') ready(performance.now() - t0);
    else if (m.type === 'ack') acks.get(m.id)?.(m);
    else if (m.type === 'meter') replies.push(m);
    else if (m.type === 'error' || m.type === 'warning') errors.push(`${m.code}: ${m.message}`);
  };
  worker.onerror = (e) => errors.push(`worker error: ${e.message}`);
  const ackOf = (id) => new Promise((r) => acks.set(id, r));
  return { worker, readyP, ackOf, replies, errors };
}

/** Posts `payloads` back to back (transferring ArrayBuffers), resolves with ms to the last ack. */
async function post(w, payloads, firstId) {
  let accepted = 0;
  let refused = 0;
  let workerMs = 0;
  const all = payloads.map((_, i) =>
    w.ackOf(firstId + i).then((a) => {
      accepted += a.accepted;
      refused += a.refused;
      workerMs += a.ms;
    }),
  );
  const t0 = performance.now();
  payloads.forEach((data, i) => {
    const msg = { type: 'readings', id: firstId + i, data };
    if (typeof data === 'string') w.worker.postMessage(msg);
    else w.worker.postMessage(msg, [data]);
  });
  await Promise.all(all);
  return { ms: performance.now() - t0, accepted, refused, workerMs };
}

async function moments(w) {
  w.replies.length = 0;
  for (const meter of ids) w.worker.postMessage({ type: 'query', query: 'meter', meter });
  while (w.replies.length < ids.length && !w.errors.length) await new Promise((r) => setTimeout(r, 5));
  return new Map(w.replies.map((m) => [m.meter, m]));
}

function compare(a, b) {
  let worst = 0;
  for (const id of ids) {
    const x = a.get(id);
    const y = b.get(id);
    if (!x || !y) return { ok: false, worst: Infinity, why: `no moments for ${id}` };
    for (const k of ['mean', 'variance']) {
      const rel = Math.abs(x[k] - y[k]) / Math.max(Math.abs(x[k]), Math.abs(y[k]), 1e-300);
      worst = Math.max(worst, rel);
    }
  }
  return { ok: worst <= TOLERANCE, worst };
}

/**
 * Fills every window (untimed): 1,200 readings per meter in binary frames
 * made as they are posted, a chunk at a time (at 50,000 meters the fill is
 * 480 MB of frames), values cycled from `data.fillValues`.
 */
async function fill(w) {
  const frames = Math.ceil((METERS * WINDOW) / BATCH);
  const chunk = 64;
  for (let f = 0, id = 1; f < frames; f += chunk) {
    const payloads = [];
    for (let i = f; i < Math.min(frames, f + chunk); i++) {
      const values = data.fillValues[i % data.fillValues.length];
      payloads.push(frame(data.fillTs, values, i === 0, (i * BATCH) % METERS));
    }
    const done = await post(w, payloads, id);
    if (done.refused) return done;
    id += payloads.length;
  }
  return { refused: 0 };
}

let data;

async function runArm(arm, format) {
  const w = start(arm);
  const readyMs = await w.readyP;
  // Room for every meter in both arms; meterflow's memory guard (300 MB by
  // default) would halve its window past ~28,000 meters.
  w.worker.postMessage({ type: 'config', config: { maxMeters: METERS, memoryCeilingBytes: 4e9 } });
  if (HELD_ACKS !== undefined) w.worker.postMessage({ type: 'config', config: { maxHeldAcks: HELD_ACKS } });
  const filled = await fill(w);
  // The timed run: fresh copies (transfers detach them).
  const payloads = format === 'binary' ? data.binary.map((b) => b.slice(0)) : data.json;
  const run = await post(w, payloads, 100_000_000);
  const m = await moments(w);
  w.worker.terminate();
  if (w.errors.length) throw new Error(`${arm}/${format}: ${w.errors.slice(0, 3).join('; ')}`);
  if (filled.refused || run.refused) throw new Error(`${arm}/${format}: refused ${filled.refused + run.refused} readings`);
  // workerMs: the time the worker itself reported in its acks (decode + apply),
  // the rest of `ms` is posting, cloning, queueing and the worker's other work.
  return { readyMs, ms: run.ms, workerMs: run.workerMs, readings: run.accepted, readingsPerSec: run.accepted / (run.ms / 1000), moments: m };
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], all: xs };
}

async function main() {
  const rand = random(9);
  const now = Date.now();
  const batches = Math.ceil(READINGS / BATCH);
  // Fill: 1,200 readings per meter, a minute old, the values of 1,200 frames
  // (at 5,000 meters and batches of 10,000: every fill frame's own).
  const fillValues = Array.from({ length: Math.min(1200, Math.ceil((METERS * WINDOW) / BATCH)) }, () => batchValues(rand, BATCH));
  const values = Array.from({ length: batches }, () => batchValues(rand, BATCH));
  const first = (b) => (b * BATCH) % METERS;
  data = {
    fillTs: now - 60_000,
    fillValues,
    binary: values.map((v, b) => frame(now - 1000, v, false, first(b))),
    json: values.map((v, b) => jsonText(now - 1000, v, first(b))),
  };
  const jsonBytes = data.json.reduce((s, t) => s + t.length, 0);
  const binaryBytes = data.binary.reduce((s, b) => s + b.byteLength, 0);
  const result = { meters: METERS, readings: batches * BATCH, batch: BATCH, passes: PASSES, window: WINDOW, heldAcks: HELD_ACKS ?? 'default', formats: {} };
  // The JS worker must post meterflow's alerts on the same readings, or the race is void (throws).
  document.querySelector('#status').textContent = 'checking that the JS worker alerts as meterflow does…';
  if (DETECTION) result.detectionEquivalence = await checkDetection();
  for (const format of ['binary', 'json']) {
    const runs = { meterflow: [], js: [] };
    const ratios = [];
    let worstRel = 0;
    for (let p = 0; p < PASSES; p++) {
      const order = p % 2 === 0 ? ['meterflow', 'js'] : ['js', 'meterflow'];
      const got = {};
      for (const arm of order) {
        document.querySelector('#status').textContent = `${format} pass ${p + 1}/${PASSES}: ${arm}…`;
        got[arm] = await runArm(arm, format);
        runs[arm].push(got[arm]);
      }
      const eq = compare(got.meterflow.moments, got.js.moments);
      worstRel = Math.max(worstRel, eq.worst);
      if (!eq.ok) throw new Error(`${format} pass ${p + 1}: window moments differ between arms (worst relative ${eq.worst}${eq.why ? `, ${eq.why}` : ''})`);
      ratios.push(got.meterflow.readingsPerSec / got.js.readingsPerSec);
    }
    const rate = (arm) => summary(runs[arm].map((r) => r.readingsPerSec));
    result.formats[format] = {
      bytes: format === 'json' ? jsonBytes : binaryBytes,
      meterflow: rate('meterflow'),
      js: rate('js'),
      ratio: summary(ratios),
      // Share of the wall time the worker spent inside its handler (from the acks).
      workerShare: { meterflow: summary(runs.meterflow.map((r) => r.workerMs / r.ms)), js: summary(runs.js.map((r) => r.workerMs / r.ms)) },
      readyMs: { meterflow: summary(runs.meterflow.map((r) => r.readyMs)), js: summary(runs.js.map((r) => r.readyMs)) },
      equivalence: { tolerance: TOLERANCE, worstRelative: worstRel },
    };
  }
  return result;
}

window.benchResult = { done: false, env: { userAgent: navigator.userAgent, crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, smoke } };
try {
  window.benchResult.path = await main();
  document.querySelector('#status').textContent = 'done';
  document.querySelector('#out').textContent = JSON.stringify(window.benchResult.path, null, 2);
} catch (e) {
  window.benchResult.error = String(e?.stack ?? e);
  document.querySelector('#status').textContent = `failed: ${window.benchResult.error}`;
}
window.benchResult.done = true;
