// The cost of a meter's first reading in the browser: per pass, a fresh
// shipped worker (www/worker.js) gets `maxMeters`, then one kind-1 frame that
// binds METERS meters (`meter-000000`…) and carries 2·METERS records over keys
// `i % METERS` with one shared ts (the first frame of www/bench/path.js), then
// NEXT frames of the same records without bindings. Each frame is timed from
// its post to its `ack` (wall) and by the worker's own `ack.ms` (decode and
// apply). A `stats` query after the last frame gives the linear memory.
// Results go to `window.benchResult` (www/bench/join.mjs prints them).

import { encodeReadingsFrame } from '../frames.js';

const params = new URLSearchParams(location.search);
const METERS = Number(params.get('meters') ?? 5000);
const MAX_METERS = Number(params.get('maxMeters') ?? 50_000);
const PASSES = Number(params.get('passes') ?? 7);
const NEXT = 3;
const RECORDS = 2 * METERS;

const ids = Array.from({ length: METERS }, (_, i) => `meter-${String(i).padStart(6, '0')}`);
const bindings = ids.map((id, key) => [key, id]);
const keys = Uint32Array.from({ length: RECORDS }, (_, i) => i % METERS);

/** A kind-1 frame: RECORDS records over keys `i % METERS`, one shared ts, bindings if `bind`. */
function frame(ts, seed, bind) {
  const values = new Float64Array(RECORDS);
  for (let i = 0; i < RECORDS; i++) values[i] = 50 + ((i % METERS) % 100) + ((i * 7919 + seed) % 1000) / 1000;
  return encodeReadingsFrame({ bindings: bind ? bindings : [], keys, ts, values });
}

async function pass() {
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  const waiting = new Map();
  const errors = [];
  let ready;
  const readyP = new Promise((r) => (ready = r));
  let stats;
  let statsP = new Promise((r) => (stats = r));
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'ready') ready();
    else if (m.type === 'ack') waiting.get(m.id)?.(m);
    else if (m.type === 'stats') stats(m);
    else if (m.type === 'error' || m.type === 'warning') errors.push(`${m.code}: ${m.message}`);
  };
  await readyP;
  // A ceiling above the rings of 50,000 meters: the join alone is timed, not the guard's halving.
  worker.postMessage({ type: 'config', config: { maxMeters: MAX_METERS, memoryCeilingBytes: 4e9 } });
  const now = Date.now() - 1000;
  const timed = async (id, buf) => {
    const acked = new Promise((r) => waiting.set(id, r));
    const t0 = performance.now();
    worker.postMessage({ type: 'readings', id, data: buf }, [buf]);
    const a = await acked;
    return { wallMs: performance.now() - t0, workerMs: a.ms, accepted: a.accepted, refused: a.refused };
  };
  // Built before the first post, so no frame is built between the timings.
  const frames = Array.from({ length: NEXT + 1 }, (_, i) => frame(now, i, i === 0));
  const first = await timed(1, frames[0]);
  const next = [];
  for (let i = 1; i <= NEXT; i++) next.push(await timed(1 + i, frames[i]));
  statsP = new Promise((r) => (stats = r));
  worker.postMessage({ type: 'query', query: 'stats' });
  const s = await Promise.race([statsP, new Promise((r) => setTimeout(() => r(null), 5000))]);
  worker.terminate();
  if (errors.length) throw new Error(errors.slice(0, 3).join('; '));
  if (first.accepted !== RECORDS) throw new Error(`join frame accepted ${first.accepted} of ${RECORDS}`);
  return { first, next, linearMemoryBytes: s?.linearMemoryBytes ?? null, meters: s?.meters ?? null };
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], all: xs };
}

async function main() {
  const runs = [];
  for (let p = 0; p < PASSES; p++) {
    document.querySelector('#out').textContent = `pass ${p + 1}/${PASSES}…`;
    runs.push(await pass());
  }
  const last = runs[runs.length - 1];
  return {
    meters: METERS,
    maxMeters: MAX_METERS,
    records: RECORDS,
    passes: PASSES,
    firstWorkerMs: summary(runs.map((r) => r.first.workerMs)),
    firstWallMs: summary(runs.map((r) => r.first.wallMs)),
    nextWorkerMs: summary(runs.flatMap((r) => r.next.map((n) => n.workerMs))),
    linearBytesPerMeter: last.linearMemoryBytes && last.meters ? last.linearMemoryBytes / last.meters : null,
    userAgent: navigator.userAgent,
  };
}

main()
  .then((r) => {
    window.benchResult = { ...r, done: true };
    document.querySelector('#out').textContent = JSON.stringify(r, null, 2);
  })
  .catch((e) => {
    window.benchResult = { error: String(e?.stack ?? e), done: true };
    document.querySelector('#out').textContent = String(e?.stack ?? e);
  });
