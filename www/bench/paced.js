// Paced live load (issue 9): `meters` meters × `hz` readings/s as binary live
// frames of 1,000 readings posted in real time (every 100 ms at 5,000 × 2 Hz)
// to the shipped worker (www/worker.js), plus a REST catch-up every
// `catchupSec`. Measured on the page:
//   - frame → page totals latency: from the frame's `postMessage` to the first
//     `totals` message whose exact sum includes it (the page knows every amount,
//     so "includes" is exact), percentiles after a warm-up of `warmupSec`;
//   - where the time goes: post → `ack` (queueing and the worker's handling,
//     the ack's own `ms`), then ack → totals (the wait for the `totalsFlushMs`
//     flush: v1 `live` frames have no eager flush);
//   - main-thread long tasks (`PerformanceObserver`, `longtask`) during the run,
//     each attributed by overlap to the page's own load generator (building and
//     posting frames), to a message from the worker (its handler, plus the
//     structured clone before it, in the same task) or to neither (a GC, the
//     scheduler of a loaded machine);
//   - the final totals equal the page's oracle exactly.
// `flushMs` sets `totalsFlushMs` (default: the worker's 250 ms).
import { LiveLoad, percentiles } from './soak-load.js';

const params = new URLSearchParams(location.search);
const METERS = Number(params.get('meters') ?? 5000);
const HZ = Number(params.get('hz') ?? 2);
const SECONDS = Number(params.get('seconds') ?? 120);
const CATCHUP_SEC = Number(params.get('catchupSec') ?? 60);
const WARMUP_SEC = Number(params.get('warmupSec') ?? 5);
const FLUSH_MS = params.get('flushMs') ? Number(params.get('flushMs')) : undefined;
const PER_FRAME = 1000;
const FRAME_MS = (1000 * PER_FRAME) / (METERS * HZ);

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const status = (t) => (document.querySelector('#status').textContent = t);

async function main() {
  const longTasks = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push({ start: e.startTime, ms: e.duration, name: e.name });
  });
  observer.observe({ type: 'longtask', buffered: true });

  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  const errors = [];
  const acks = new Map();
  const frames = []; // per frame: post time, cumulative sum, ack time, ack ms, shown time
  let shownUpTo = 0; // frames[0..shownUpTo) have been shown
  let lastTotals = null;
  const catchups = [];
  let ready;
  const readyP = new Promise((r) => (ready = r));
  const genSpans = [];
  const msgSpans = [];
  worker.onmessage = (e) => {
    const t = performance.now();
    handle(e.data, t);
    msgSpans.push(t, performance.now());
  };
  const handle = (m, t) => {
    if (m.type === 'ready') ready();
    else if (m.type === 'ack') acks.get(m.id)?.(m, t);
    else if (m.type === 'totals') {
      lastTotals = m;
      let sum = 0;
      for (const r of m.resources) sum += Number(r.total);
      while (shownUpTo < frames.length && frames[shownUpTo].sum <= sum) frames[shownUpTo++].shown = t;
    } else if (m.type === 'error' || m.type === 'warning') errors.push(`${m.type} ${m.code}: ${m.message}`);
  };
  worker.onerror = (e) => errors.push(`worker error: ${e.message}`);
  await readyP;
  if (FLUSH_MS !== undefined) worker.postMessage({ type: 'config', config: { totalsFlushMs: FLUSH_MS } });

  const load = new LiveLoad({ meters: METERS, perFrame: PER_FRAME });
  const post = (type, data, id, onAck) => {
    if (id !== undefined) acks.set(id, onAck);
    const msg = { type, data, id, receivedAt: Date.now() };
    if (typeof data === 'string') worker.postMessage(msg);
    else worker.postMessage(msg, [data]);
  };
  let stamp = Date.now();
  post('live', load.hello(stamp - 1, stamp));
  post('catchup', load.catchup(Date.now()));

  const total = Math.round((SECONDS * 1000) / FRAME_MS);
  const start = performance.now();
  let nextCatchup = start + CATCHUP_SEC * 1000;
  let id = 0;
  for (let k = 0; k < total; k++) {
    if (k) genSpans.push(performance.now());
    await sleep(start + k * FRAME_MS - performance.now());
    genSpans.push(performance.now());
    if (performance.now() >= nextCatchup) {
      nextCatchup += CATCHUP_SEC * 1000;
      const c = { posted: performance.now() };
      catchups.push(c);
      post('catchup', load.catchup(Date.now()), ++id, (a, t) => Object.assign(c, { acked: t, ms: a.ms, refused: a.refused }));
    }
    stamp = Math.max(stamp + 1, Date.now());
    const data = load.frame(stamp); // built before the clock starts for this frame
    const f = { posted: performance.now(), sum: load.shownSum(Date.now()), warm: k * FRAME_MS >= WARMUP_SEC * 1000 };
    frames.push(f);
    post('live', data, ++id, (a, t) => Object.assign(f, { acked: t, ms: a.ms, refused: a.refused }));
    // A frame shown as soon as it is posted (sum unchanged: every amount was 0) never waits.
    if (k % 50 === 0) status(`frame ${k + 1}/${total}`);
    if (errors.length) break;
  }
  genSpans.push(performance.now());
  // The last frames: wait for their totals (at most a few flushes).
  const deadline = performance.now() + 5000;
  while (shownUpTo < frames.length && performance.now() < deadline) await sleep(20);
  // A final catch-up retires every pending reading; the totals must then equal the oracle.
  await new Promise((r) => post('catchup', load.catchup(Date.now()), -1, r));
  worker.postMessage({ type: 'query', query: 'totals' });
  const t0 = performance.now();
  while ((!lastTotals || lastTotals.incomplete || load.compare(lastTotals).length) && performance.now() - t0 < 5000) await sleep(20);
  const exact = lastTotals ? load.compare(lastTotals) : ['no totals'];
  observer.disconnect();
  worker.terminate();

  const warm = frames.filter((f) => f.warm);
  const unshown = frames.filter((f) => f.shown === undefined).length;
  const during = longTasks.filter((t) => t.start >= start);
  const overlaps = (spans, t) => {
    for (let i = 0; i + 1 < spans.length; i += 2) if (spans[i] < t.start + t.ms && spans[i + 1] > t.start) return true;
    return false;
  };
  for (const t of during) t.cause = overlaps(genSpans, t) ? 'load generator' : overlaps(msgSpans, t) ? 'worker message' : 'other';
  const byCause = (c) => during.filter((t) => t.cause === c);
  const result = {
    meters: METERS,
    hz: HZ,
    readingsPerSec: METERS * HZ,
    frameMs: FRAME_MS,
    perFrame: PER_FRAME,
    seconds: SECONDS,
    catchupSec: CATCHUP_SEC,
    totalsFlushMs: FLUSH_MS ?? 250,
    frames: frames.length,
    unshown,
    latencyMs: percentiles(warm.filter((f) => f.shown !== undefined).map((f) => f.shown - f.posted)),
    postToAckMs: percentiles(warm.filter((f) => f.acked !== undefined).map((f) => f.acked - f.posted)),
    workerHandleMs: percentiles(warm.filter((f) => f.ms !== undefined).map((f) => f.ms)),
    ackToShownMs: percentiles(warm.filter((f) => f.shown !== undefined && f.acked !== undefined).map((f) => Math.max(0, f.shown - f.acked))),
    catchups: catchups.map((c) => ({ postToAckMs: c.acked - c.posted, workerMs: c.ms, refused: c.refused })),
    longTasks: {
      count: during.length,
      totalMs: during.reduce((s, t) => s + t.ms, 0),
      maxMs: Math.max(0, ...during.map((t) => t.ms)),
      byCause: Object.fromEntries(['worker message', 'load generator', 'other'].map((c) => [c, { count: byCause(c).length, maxMs: Math.max(0, ...byCause(c).map((t) => t.ms)) }])),
      worst: [...during].sort((a, b) => b.ms - a.ms).slice(0, 5),
    },
    totalsExact: exact.length === 0,
    totalsMismatches: exact.slice(0, 5),
  };
  if (errors.length) throw new Error(errors.slice(0, 3).join('; '));
  if (unshown) throw new Error(`${unshown} frames never shown in totals`);
  if (exact.length) throw new Error(`final totals differ from the oracle: ${exact.slice(0, 3).join('; ')}`);
  if (result.catchups.some((c) => c.refused)) throw new Error('a catch-up was refused');
  return result;
}

window.benchResult = { done: false, env: { userAgent: navigator.userAgent, crossOriginIsolated } };
try {
  window.benchResult.paced = await main();
  status('done');
  document.querySelector('#out').textContent = JSON.stringify(window.benchResult.paced, null, 2);
} catch (e) {
  window.benchResult.error = String(e?.stack ?? e);
  status(`failed: ${window.benchResult.error}`);
}
window.benchResult.done = true;
