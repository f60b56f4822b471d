// The worker pool (issue 9, "Past one worker"; www/client/pool.ts) with 1, 2
// and 4 real workers (www/worker.js), each run from fresh workers:
//   1. alerts: 60 meters, 300 steps of one reading each (binary kind-1 frames
//      and JSON text alternately, split by the pool), with spikes, stuck runs
//      and drifts injected; config tickMs 20, statsIntervalMs 1, warmup 20,
//      baselineReadings 100. After each step the page waits for a `stats` from
//      every worker posted after the step's ack, i.e. for an evaluation tick
//      after the readings: every meter is evaluated after each of its readings
//      whatever the pool's size, so the alerts must be identical (every field
//      but `at`), and must include every injected incident;
//   2. exact totals: 5,000 meters of binary kind-2 live frames split by the
//      pool, a hello to every worker, catch-ups fetched through worker 0's
//      client (the `fetch` seam answers from the page's oracle) and fanned out,
//      and the merged totals must equal the oracle exactly, before and after
//      the last catch-up;
//   2b. the partition (each worker's `config.partition`; JSON reaches every
//      worker whole and each applies its own meters'): 48 meters owned by
//      every worker between them, JSON text, JSON bytes and binary kind-1
//      batches with duplicates, items the decoder refuses, readings the
//      engine refuses, an unbound key and a payload refused as a whole, all
//      against the page's oracle: the summed acks, each error once (code,
//      position), each worker's meters and readings exactly the ones it owns,
//      and every meter's window, asked of its owner, the oracle's (a worker
//      asked for a meter it does not own must not know it);
//   3. readings/s against workers: `readings` readings over `meters` meters
//      (window 300, filled first) in batches of 10,000, binary and JSON, timed
//      from the first post to the last ack, with the page's split time.
import { MeterflowPool, shardOf } from '../build/client/pool.js';
import { encodeReadingsFrame } from '../frames.js';
import { LiveLoad } from './soak-load.js';
import { random } from './random.js';

const params = new URLSearchParams(location.search);
const smoke = params.get('smoke') === '1';
const WORKERS = (params.get('workers') ?? '1,2,4').split(',').map(Number);
const METERS = Number(params.get('meters') ?? (smoke ? 5000 : 20000));
const READINGS = Number(params.get('readings') ?? (smoke ? 200_000 : 2_000_000));
const BATCH = 10_000;
// `phases=throughput` runs the readings/s part alone (for A/B runs of builds).
const PHASES = new Set((params.get('phases') ?? 'alerts,totals,partition,throughput').split(','));
const status = (t) => (document.querySelector('#status').textContent = t);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const workerUrl = new URL('../worker.js', import.meta.url);
const create = () => new Worker(workerUrl, { type: 'module' });

const jsonReadings = (ids, ts, keys, values) =>
  `{"type":"readings","readings":[${Array.from(keys, (k, i) => `{"meter":"${ids[k]}","ts":${ts},"value":${values[i]}}`).join(',')}]}`;

async function start(workers, config, extra = {}) {
  const pool = await MeterflowPool.start({ workers, createWorker: create, config, answerTimeoutMs: 600_000, maxPending: 100_000, ...extra });
  const errors = [];
  pool.on('error', (m, w) => errors.push(`worker ${w}: ${m.code}: ${m.message}`));
  pool.on('warning', (m, w) => errors.push(`worker ${w}: warning ${m.code}: ${m.message}`));
  return { pool, errors };
}

async function alerts(workers) {
  const METERS_A = 60;
  const STEPS = 300;
  const { pool, errors } = await start(workers, { tickMs: 20, statsIntervalMs: 1, warmup: 20, baselineReadings: 100 });
  const events = [];
  pool.on('anomaly', (m) => events.push(m));
  pool.on('cleared', (m) => events.push(m));
  const ticked = new Array(workers).fill(0);
  pool.on('stats', (_, w) => ticked[w]++);
  const ids = Array.from({ length: METERS_A }, (_, m) => `pool-${String(m).padStart(4, '0')}`);
  const rand = random(4);
  const prev = new Float64Array(METERS_A);
  const keys = Uint32Array.from({ length: METERS_A }, (_, m) => m);
  const t0 = Date.now() - STEPS * 1000;
  for (let k = 0; k < STEPS; k++) {
    const values = new Float64Array(METERS_A);
    for (let m = 0; m < METERS_A; m++) {
      const level = 20 + (m % 10) * 5;
      const noise = (rand() + rand() + rand() - 1.5) * 2;
      const t = k - 150 - (m % 7) * 10;
      let x = level + noise;
      if (m % 6 === 0 && t >= 0 && t < 4) x = level + 60;
      if (m % 6 === 1 && t >= 0 && t < 100) x = prev[m];
      if (m % 6 === 2 && t > 0) x += Math.min(t, 40);
      prev[m] = Math.round(x * 1000) / 1000;
      values[m] = prev[m];
    }
    const ts = t0 + k * 1000;
    const data = k % 2 ? jsonReadings(ids, ts, keys, values) : encodeReadingsFrame({ bindings: k === 0 ? ids.map((id, i) => [i, id]) : [], keys, ts, values });
    const ack = await pool.readings(data);
    if (ack.accepted !== METERS_A) errors.push(`step ${k}: accepted ${ack.accepted}`);
    // Wait for a tick after these readings in every worker that got some.
    const seen = [...ticked];
    const deadline = performance.now() + 30_000;
    while (ticked.some((c, w) => c === seen[w]) && performance.now() < deadline) await sleep(1);
    if (errors.length) break;
  }
  pool.close();
  if (errors.length) throw new Error(`alerts with ${workers} workers: ${errors.slice(0, 3).join('; ')}`);
  const key = (e) => `${e.meter} ${e.kind} ${e.type} ${e.ts ?? ''} ${e.severity ?? ''}`;
  // Engine times (`at`) are the workers' clocks; reading times relative to the run's start.
  const list = events.map((e) => ({ ...e, at: undefined, ts: e.ts === undefined ? undefined : e.ts - t0 })).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const raised = new Set(events.filter((e) => e.type === 'anomaly').map((e) => `${e.meter} ${e.kind}`));
  const missing = [];
  for (let m = 0; m < METERS_A; m++) {
    // Drifts are injected too, but with baselineReadings 100 and 300 readings
    // the learned scale often absorbs them: only their sameness is required.
    const kind = ['spike', 'stuck'][m % 6];
    if (kind && !raised.has(`${ids[m]} ${kind}`)) missing.push(`${ids[m]} ${kind}`);
  }
  const kinds = {};
  for (const e of events) if (e.type === 'anomaly') kinds[e.kind] = (kinds[e.kind] ?? 0) + 1;
  return { events: list, raised: raised.size, missing, kinds };
}

async function totals(workers) {
  const load = new LiveLoad({ meters: 5000, perFrame: 1000, prefix: 'pool' });
  const body = { current: '' };
  const fetch = async () => ({ ok: true, status: 200, headers: { get: () => 'application/json' }, text: async () => body.current, arrayBuffer: async () => new ArrayBuffer(0) });
  const { pool, errors } = await start(workers, {}, { fetch });
  let merged = null;
  pool.onTotals((t) => (merged = t));
  const now = Date.now();
  let stamp = now - 120_000;
  body.current = load.catchup(now);
  await pool.hello(load.hello(stamp - 1, now));
  await pool.catchup(load.catchup(now));
  const checks = [];
  for (let f = 0; f < (smoke ? 60 : 200); f++) {
    stamp += 100;
    await pool.live(load.frame(stamp));
    if (f % 50 === 49) {
      // A catch-up through the worker-0 client's fetch (the pool fans it out) …
      body.current = load.catchup(Date.now());
      pool.clients[0].dispatch({ type: 'fetch', v: 1, reason: 'scheduled', minAsOf: null, fromHour: 0, path: '/catchup?from=0&meters=1' });
      // … and one the page posts itself.
      await pool.catchup(load.catchup(Date.now()));
      const t = await pool.query({ query: 'totals' });
      checks.push({ frame: f, exact: load.compare(t).length === 0, incomplete: t.incomplete });
    }
  }
  const before = await pool.query({ query: 'totals' });
  const exactBefore = load.compare(before);
  await pool.catchup(load.catchup(Date.now()));
  const after = await pool.query({ query: 'totals' });
  const exactAfter = load.compare(after);
  await sleep(300); // one flush: the merged `totals` event
  pool.close();
  if (errors.length) throw new Error(`totals with ${workers} workers: ${errors.slice(0, 3).join('; ')}`);
  return {
    readings: load.readings,
    exactBeforeLastCatchup: exactBefore.length === 0,
    exactAfterLastCatchup: exactAfter.length === 0 && !after.incomplete,
    mismatches: [...exactBefore, ...exactAfter].slice(0, 5),
    checks,
    mergedEventExact: merged ? load.compare(merged).length === 0 : null,
    livePendingAfter: after.counters.livePending,
  };
}

async function partition(workers) {
  const pool = await MeterflowPool.start({
    workers, createWorker: create, config: { window: 300, reducedWindow: 150, maxErrorsPerBatch: 10_000 }, answerTimeoutMs: 600_000,
  });
  const heard = [];
  pool.on('error', (m, w) => heard.push({ w, code: m.code, position: m.position ?? null }));
  pool.on('warning', (m, w) => heard.push({ w, code: `warning ${m.code}`, position: null }));
  const ids = Array.from({ length: 48 }, (_, m) => `part-${m}`);
  const owners = ids.map((id) => shardOf(id, workers));
  const problems = [];
  for (let w = 0; w < workers; w++) if (!owners.includes(w)) problems.push(`no meter hashes to worker ${w}`);
  const rand = random(11);
  const pick = () => Math.floor(rand() * ids.length);
  const oracle = new Map(); // meter → accepted values, in order
  const expected = []; // `${batch} ${code} ${position}` per error
  let accepted = 0;
  let refused = 0;
  let got = { accepted: 0, refused: 0 };
  const ts0 = Date.now() - 60_000;
  const keep = (m, x) => {
    oracle.set(ids[m], [...(oracle.get(ids[m]) ?? []), x]);
    accepted++;
  };
  const refuse = (b, code, position) => {
    expected.push(`${b} ${code} ${position}`);
    refused++;
  };
  // Batch kinds (b % 5): JSON text the page splits, JSON text it sends whole
  // (an item the decoder refuses), the same as bytes, JSON bytes the page
  // splits, a binary frame. Where the page split the payload, errors'
  // positions are the parts' (only their codes are compared).
  const split = (b) => b % 5 === 0 || b % 5 === 3 || b % 5 === 4;
  for (let b = 0; b < 10; b++) {
    const ts = ts0 + b * 1000;
    const from = heard.length;
    let data;
    if (b % 5 === 4) {
      // Binary kind 1: keys are the meters' indices, bound in the first frame; key 999 is bound to nothing.
      const n = 40;
      const keys = new Uint32Array(n);
      const values = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const m = pick();
        keys[i] = i === 7 ? 999 : m;
        values[i] = i === 13 ? 1e300 : Math.round(rand() * 8000) / 8;
        if (i === 7) refuse(b, 'unknown_key', '?');
        else if (i === 13) refuse(b, 'bad_value', '?');
        else keep(m, values[i]);
      }
      data = encodeReadingsFrame({ bindings: b === 4 ? ids.map((id, m) => [m, id]) : [], keys, ts, values });
    } else {
      const items = [];
      for (let i = 0; i < 40; i++) {
        const m = i % 10 === 9 ? items[i - 1].m : pick(); // duplicates: the same meter again
        const x = Math.round(rand() * 8000) / 8;
        if (i === 5 && !split(b)) {
          items.push({ m, text: `{"meter":"${ids[m]}","ts":${ts},"value":"x"}` });
          refuse(b, 'bad_field', i);
        } else if (i === 11) {
          items.push({ m, text: `{"meter":"${ids[m]}","ts":${ts},"value":1e300}` });
          refuse(b, 'bad_value', split(b) ? '?' : i);
        } else {
          items.push({ m, text: `{"meter":"${ids[m]}","ts":${ts},"value":${x}}` });
          keep(m, x);
        }
      }
      const text = `{"type":"readings","readings":[${items.map((i) => i.text).join(',')}]}`;
      data = b % 5 >= 2 ? new TextEncoder().encode(text).buffer : text;
    }
    const a = await pool.readings(data);
    got = { accepted: got.accepted + a.accepted, refused: got.refused + a.refused };
    for (const e of heard.slice(from)) {
      e.batch = b;
      if (split(b)) e.position = '?';
    }
  }
  // A payload refused as a whole: reported once (by worker 0), applied nowhere.
  const from = heard.length;
  const a = await pool.readings(`{"type":"readings","readings":[{"meter":"${ids[0]}","ts":${ts0},"value":1}`);
  got = { accepted: got.accepted + a.accepted, refused: got.refused + a.refused };
  for (const e of heard.slice(from)) e.batch = 'whole';
  refuse('whole', 'malformed_json', null);
  if (got.accepted !== accepted || got.refused !== refused) {
    problems.push(`acks: accepted ${got.accepted} refused ${got.refused}, expected ${accepted} / ${refused}`);
  }
  const said = heard.map((e) => `${e.batch} ${e.code} ${e.position}`).sort();
  if (JSON.stringify(said) !== JSON.stringify([...expected].sort())) {
    problems.push(`errors: ${said.length} heard, ${expected.length} expected; first heard ${said.slice(0, 4)}; expected ${[...expected].sort().slice(0, 4)}`);
  }
  if (heard.some((e) => e.w !== 0 && e.position === null)) problems.push('a payload error from a worker other than 0');
  const stats = await pool.stats();
  let checked = 0;
  for (let w = 0; w < workers; w++) {
    const mine = ids.filter((id, m) => owners[m] === w && oracle.has(id));
    const readings = mine.reduce((s, id) => s + oracle.get(id).length, 0);
    if (stats[w].meters !== mine.length || stats[w].readingsIngested !== readings) {
      problems.push(`worker ${w}: ${stats[w].meters} meters / ${stats[w].readingsIngested} readings, owns ${mine.length} / ${readings}`);
    }
  }
  for (const [m, id] of ids.entries()) {
    if (!oracle.has(id)) continue;
    const win = await pool.query({ query: 'window', meter: id }).catch((e) => ({ values: [`${e.code}`] }));
    if (JSON.stringify(Array.from(win.values)) !== JSON.stringify(oracle.get(id))) {
      problems.push(`${id}: window ${Array.from(win.values).slice(0, 5)}… is not the oracle's ${oracle.get(id).slice(0, 5)}…`);
    }
    for (let w = 0; w < workers; w++) {
      if (w === owners[m]) continue;
      const other = await pool.clients[w].query({ query: 'meter', meter: id }).then(() => 'known', (e) => e.code);
      if (other !== 'unknown_meter') problems.push(`worker ${w} answers for ${id}, which worker ${owners[m]} owns: ${other}`);
    }
    checked++;
  }
  pool.close();
  return { meters: checked, accepted, refused, errors: expected.length, problems };
}

async function throughput(workers) {
  const { pool, errors } = await start(workers, { maxMeters: METERS, window: 300, reducedWindow: 150 });
  const ids = Array.from({ length: METERS }, (_, m) => `tp-${String(m).padStart(6, '0')}`);
  const rand = random(7);
  const values = () => Float64Array.from({ length: BATCH }, (_, i) => Math.round((50 + (i % 100) + rand() * 2) * 1000) / 1000);
  const ts = Date.now() - 1000;
  const keysOf = (b) => Uint32Array.from({ length: BATCH }, (_, i) => (b * BATCH + i) % METERS);
  // Fill every window (300 each), binary, binding every meter in the first frame.
  const fills = Math.ceil((METERS * 300) / BATCH);
  const fillAcks = [];
  for (let b = 0; b < fills; b++) fillAcks.push(pool.readings(encodeReadingsFrame({ bindings: b === 0 ? ids.map((id, i) => [i, id]) : [], keys: keysOf(b), ts: ts - 60_000, values: values() })));
  await Promise.all(fillAcks);
  const batches = Math.ceil(READINGS / BATCH);
  const out = {};
  for (const format of ['binary', 'json']) {
    const payloads = Array.from({ length: batches }, (_, b) => {
      const k = keysOf(b);
      return format === 'binary' ? encodeReadingsFrame({ keys: k, ts, values: values() }) : jsonReadings(ids, ts, k, values());
    });
    let splitMs = 0;
    const t0 = performance.now();
    const acks = payloads.map((p) => {
      const s = performance.now();
      const a = pool.readings(p);
      splitMs += performance.now() - s;
      return a;
    });
    const got = await Promise.all(acks);
    const ms = performance.now() - t0;
    const accepted = got.reduce((s, a) => s + a.accepted, 0);
    if (accepted !== batches * BATCH) errors.push(`${format}: accepted ${accepted} of ${batches * BATCH}`);
    out[format] = { readingsPerSec: accepted / (ms / 1000), ms, pageSplitMs: splitMs };
  }
  pool.close();
  if (errors.length) throw new Error(`throughput with ${workers} workers: ${errors.slice(0, 3).join('; ')}`);
  return out;
}

async function main() {
  const runs = [];
  for (const w of WORKERS) {
    status(`${w} workers: alerts…`);
    const a = PHASES.has('alerts') ? await alerts(w) : { events: [], missing: [] };
    status(`${w} workers: totals…`);
    const t = PHASES.has('totals') ? await totals(w) : { exactBeforeLastCatchup: true, exactAfterLastCatchup: true, checks: [], mismatches: [] };
    status(`${w} workers: partition…`);
    const q = PHASES.has('partition') ? await partition(w) : { problems: [] };
    status(`${w} workers: readings/s…`);
    const p = PHASES.has('throughput') ? await throughput(w) : null;
    runs.push({ workers: w, alerts: a, totals: t, partition: q, throughput: p });
  }
  const failures = [];
  const ref = JSON.stringify(runs[0].alerts.events);
  for (const r of runs) {
    if (r.alerts.missing.length) failures.push(`${r.workers} workers: injected incidents not raised: ${r.alerts.missing.slice(0, 5).join(', ')}`);
    if (JSON.stringify(r.alerts.events) !== ref) {
      const i = r.alerts.events.findIndex((e, j) => JSON.stringify(e) !== JSON.stringify(runs[0].alerts.events[j]));
      failures.push(`${r.workers} workers: alerts differ from ${runs[0].workers} worker(s) at ${i}: ${JSON.stringify(r.alerts.events[i])} vs ${JSON.stringify(runs[0].alerts.events[i])}`);
    }
    for (const p of r.partition.problems) failures.push(`${r.workers} workers: partition: ${p}`);
    if (!r.totals.exactBeforeLastCatchup || !r.totals.exactAfterLastCatchup || r.totals.checks.some((c) => !c.exact)) {
      failures.push(`${r.workers} workers: totals not exact: ${r.totals.mismatches.join('; ')}`);
    }
  }
  return {
    meters: METERS,
    readings: READINGS,
    batch: BATCH,
    cores: navigator.hardwareConcurrency,
    failures,
    runs: runs.map((r) => ({ ...r, alerts: { count: r.alerts.events.length, raised: r.alerts.raised, kinds: r.alerts.kinds, missing: r.alerts.missing } })),
    alertEvents: runs[0].alerts.events.length,
  };
}

window.benchResult = { done: false, env: { userAgent: navigator.userAgent, crossOriginIsolated, smoke } };
try {
  window.benchResult.pool = await main();
  const f = window.benchResult.pool.failures;
  status(f.length ? `failed: ${f.join('; ')}` : 'done');
  document.querySelector('#out').textContent = JSON.stringify(window.benchResult.pool, null, 2);
} catch (e) {
  window.benchResult.error = String(e?.stack ?? e);
  status(`failed: ${window.benchResult.error}`);
}
window.benchResult.done = true;
