// The soak (issue 9): `minutes` simulated minutes of `meters` meters × `hz`
// readings/s (binary kind-2 live frames of 1,000 readings, stamped in simulated
// time that ends before the real clock, so no stamp runs ahead of it) posted to
// the shipped worker (www/worker.js) as fast as it acknowledges them, a REST
// catch-up every simulated minute (retiring the pending live readings, as the
// worker's own schedule asks), and every `sampleSec` simulated seconds a
// memory sample:
//   - the wasm linear memory and the engine's estimate (`stats` query);
//   - the worker's JS memory from `performance.measureUserAgentSpecificMemory()`
//     (the page is cross-origin isolated; the runner passes Chromium
//     `--enable-blink-features=ForceEagerMeasureMemory` so it answers at once),
//     the bytes attributed to the worker's `DedicatedWorkerGlobalScope`
//     (`workerJsBytes`; Chromium does not count the wasm linear memory there,
//     as measured: ~0.6 MB beside 55 MB of linear memory).
//     `performance.memory` does not exist in workers.
// After `warmupMin` simulated minutes, none may grow past its margin
// (`linearMarginBytes`, default 1 MiB; `engineMarginBytes`, default 1 MiB, the
// engine's own count of what it holds: linear memory never shrinks and the
// allocator keeps headroom after a doubling, so 500 new meters (6.8 MB of
// rings) can fit in already-grown linear memory, as measured 2026-12-04;
// `jsMarginBytes`, default 8 MiB: a sample is taken without a forced GC, so
// garbage not yet collected shows).
// `churn` meters are added each simulated minute (new ids; for proving that the
// check fails on real growth). The final totals must equal the page's oracle.
import { LiveLoad } from './soak-load.js';

const params = new URLSearchParams(location.search);
const METERS = Number(params.get('meters') ?? 5000);
const HZ = Number(params.get('hz') ?? 2);
const MINUTES = Number(params.get('minutes') ?? 60);
const SAMPLE_SEC = Number(params.get('sampleSec') ?? 60);
const WARMUP_MIN = Number(params.get('warmupMin') ?? 5);
const CHURN = Number(params.get('churn') ?? 0);
const LINEAR_MARGIN = Number(params.get('linearMarginBytes') ?? 1 << 20);
const JS_MARGIN = Number(params.get('jsMarginBytes') ?? 8 << 20);
const ENGINE_MARGIN = Number(params.get('engineMarginBytes') ?? 1 << 20);
const PER_FRAME = 1000;
const FRAME_MS = (1000 * PER_FRAME) / (METERS * HZ);

const status = (t) => (document.querySelector('#status').textContent = t);

async function workerBytes(workerUrl) {
  if (!crossOriginIsolated || !performance.measureUserAgentSpecificMemory) return { bytes: null, page: null };
  const m = await performance.measureUserAgentSpecificMemory();
  let bytes = 0;
  let page = 0;
  for (const b of m.breakdown) {
    const w = b.attribution.some((a) => a.scope === 'DedicatedWorkerGlobalScope' && a.url === workerUrl);
    if (w) bytes += b.bytes;
    else if (b.attribution.some((a) => a.scope === 'Window')) page += b.bytes;
  }
  return { bytes, page };
}

async function main() {
  const workerUrl = new URL('../worker.js', import.meta.url).href;
  const worker = new Worker(workerUrl, { type: 'module' });
  const errors = [];
  const waiting = new Map();
  let ready;
  const readyP = new Promise((r) => (ready = r));
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'ready') ready();
    else if (m.type === 'ack' || m.type === 'stats' || m.type === 'totals') {
      const key = m.type === 'ack' ? m.id : m.type;
      const w = waiting.get(key);
      if (w && (m.type === 'ack' || w.query)) {
        waiting.delete(key);
        w.resolve(m);
      }
      if (m.type === 'ack' && m.refused) errors.push(`message ${m.id} refused`);
    } else if (m.type === 'error' || m.type === 'warning') errors.push(`${m.type} ${m.code}: ${m.message}`);
  };
  worker.onerror = (e) => errors.push(`worker error: ${e.message}`);
  await readyP;
  if (CHURN) worker.postMessage({ type: 'config', config: { maxMeters: METERS + CHURN * MINUTES } });
  const ask = (query) =>
    new Promise((resolve) => {
      waiting.set(query, { resolve, query: true });
      worker.postMessage({ type: 'query', query });
    });
  let id = 0;
  const post = (type, data) =>
    new Promise((resolve) => {
      waiting.set(++id, { resolve });
      const msg = { type, data, id };
      if (typeof data === 'string') worker.postMessage(msg);
      else worker.postMessage(msg, [data]);
    });

  const load = new LiveLoad({ meters: METERS, perFrame: PER_FRAME });
  const realStart = Date.now();
  // Simulated time ends a minute before the real clock at the start.
  const simStart = realStart - (MINUTES + 1) * 60_000;
  let stamp = simStart;
  await post('live', load.hello(stamp - 1, realStart));
  await post('catchup', load.catchup(realStart));

  const samples = [];
  const sample = async (simSec) => {
    const stats = await ask('stats');
    const mem = await workerBytes(workerUrl);
    const s = {
      simMinute: simSec / 60,
      readings: load.readings,
      meters: stats.meters,
      linearBytes: stats.linearMemoryBytes,
      engineBytes: stats.engineBytes,
      // Per store (PROTOCOL.md 4, `stats.memory`); absent from older workers.
      engineMemory: stats.memory ?? null,
      workerBytes: mem.bytes,
      workerJsBytes: mem.bytes,
      pageBytes: mem.page,
      realMs: Date.now() - realStart,
    };
    samples.push(s);
    return s;
  };
  await sample(0);
  const framesPerSec = 1000 / FRAME_MS;
  const t0 = performance.now();
  for (let sec = 1; sec <= MINUTES * 60; sec++) {
    // One simulated second of frames, acknowledged before the next, so the
    // worker's queue holds at most one second.
    let last;
    for (let f = 0; f < framesPerSec; f++) {
      stamp += FRAME_MS;
      last = post('live', load.frame(stamp));
    }
    await last;
    if (sec % 60 === 0) {
      await post('catchup', load.catchup(Date.now()));
      if (CHURN) load.grow(load.meters + CHURN);
    }
    if (sec % SAMPLE_SEC === 0) {
      const s = await sample(sec);
      status(`simulated minute ${s.simMinute.toFixed(1)}/${MINUTES}: linear ${s.linearBytes} B, worker ${s.workerBytes} B`);
    }
    if (errors.length) break;
  }
  const wallMs = performance.now() - t0;
  // `stats` report the linear memory at the moment of asking.
  await sample(MINUTES * 60);
  const totals = await ask('totals');
  const exact = load.compare(totals);
  worker.terminate();
  if (errors.length) throw new Error(errors.slice(0, 3).join('; '));

  // Growth after warm-up: the largest later sample against the one at the end of warm-up.
  const base = samples.filter((s) => s.simMinute <= WARMUP_MIN).at(-1);
  const later = samples.filter((s) => s.simMinute > WARMUP_MIN);
  const growth = (k) => (base[k] === null || !later.length ? null : Math.max(...later.map((s) => s[k])) - base[k]);
  const result = {
    meters: METERS,
    hz: HZ,
    minutes: MINUTES,
    readings: load.readings,
    sampleSec: SAMPLE_SEC,
    warmupMin: WARMUP_MIN,
    churnPerMinute: CHURN,
    wallMs,
    readingsPerSec: load.readings / (wallMs / 1000),
    jsMemorySource: samples[0].workerBytes === null ? 'unavailable (not cross-origin isolated)' : 'performance.measureUserAgentSpecificMemory, bytes attributed to the DedicatedWorkerGlobalScope (no linear memory in it)',
    margins: { linearBytes: LINEAR_MARGIN, engineBytes: ENGINE_MARGIN, workerJsBytes: JS_MARGIN },
    growthAfterWarmup: { linearBytes: growth('linearBytes'), engineBytes: growth('engineBytes'), workerJsBytes: growth('workerJsBytes') },
    totalsExact: exact.length === 0 && !totals.incomplete,
    samples,
  };
  const g = result.growthAfterWarmup;
  const over = [];
  if (g.linearBytes === null) over.push('no sample after warm-up');
  if (g.linearBytes > LINEAR_MARGIN) over.push(`linear memory grew ${g.linearBytes} B after warm-up (margin ${LINEAR_MARGIN})`);
  if (g.engineBytes > ENGINE_MARGIN) over.push(`engine memory grew ${g.engineBytes} B after warm-up (margin ${ENGINE_MARGIN})`);
  if (g.workerJsBytes !== null && g.workerJsBytes > JS_MARGIN) over.push(`worker JS memory grew ${g.workerJsBytes} B after warm-up (margin ${JS_MARGIN})`);
  if (!result.totalsExact) over.push(`final totals not exact: ${totals.incomplete ? 'incomplete; ' : ''}${exact.slice(0, 3).join('; ')}`);
  result.failures = over;
  return result;
}

window.benchResult = { done: false, env: { userAgent: navigator.userAgent, crossOriginIsolated } };
try {
  window.benchResult.soak = await main();
  status(window.benchResult.soak.failures.length ? `failed: ${window.benchResult.soak.failures.join('; ')}` : 'done');
  document.querySelector('#out').textContent = JSON.stringify(window.benchResult.soak, null, 2);
} catch (e) {
  window.benchResult.error = String(e?.stack ?? e);
  status(`failed: ${window.benchResult.error}`);
}
window.benchResult.done = true;
