// Groups and series in the browser worker (issue 10): what a meter → group map
// of 3 groups per meter adds to each live reading, a group's 6-hour 5-minute
// series query fresh and recomputed, and the memory each store holds.
//
// Every run starts the shipped worker (www/worker.js) afresh and talks to it
// only with `postMessage`, as a page does. The load is v1 binary kind-2 `live`
// frames (docs/PROTOCOL.md 3.5) of 1,000 readings, `meters` meters each
// reporting `energy`: what reaches the ledger, the per-meter rows, the
// series and (with a map) the groups; the anomaly windows take them too.
//   1. Both arms start the stream session (page transport, its socket never
//      opened: the groups' `/groups` fetch needs a session in use) and
//      see the worker's `/groups` fetch: arm `map` answers it with the map
//      (`district-0..7`, `tariff-0..3` and `all`: 3 groups per meter), arm
//      `noMap` never does (`groupsRefreshMs` is a day, so it is neither
//      retried nor failed), so no map is ever in force. The map arm's
//      refreshes (every 5 s) are answered; one right before the timed frames.
//   2. Fill (untimed): from `fillMinutes` (default 355, inside the 6-hour
//      `maxAgeMs` and series horizon) before the real clock up to a minute
//      before the timed frames, one reading per meter per simulated minute,
//      with a catch-up every simulated 10 minutes.
//   3. Timed: `frames` frames at 10,000 readings/s of simulated time (one
//      frame per 100 ms), all encoded before the clock starts, posted at once
//      (transferred); the time runs from the first post to the last frame's
//      `ack`. `deltaFlushMs` is set to 0.001 so every frame is followed by
//      its flush (totals, and with the map the groups), as at 10,000
//      readings/s in frames of 1,000 every 100 ms with the default 16 ms: the
//      flush of each frame but the last is inside the timed span. Also
//      reported: the worker's own time in the handler (sum of `ack.ms`,
//      flushes excluded).
//   4. Arm `map` only: the series query `{query:'series', group:'all',
//      resource:'energy', spanMs: 6 h, resolution:'5m'}` (5,000 members),
//      timed from its post to the answer: `recomputed` after a new frame
//      (a member's bucket moved) and after a map change (a new `/groups`
//      version, same members, answered to the next refresh and applied
//      before the query is posted: timed apart, to a `stats` answer), `fresh` (the same query again,
//      answered from the cache: `cached: true`).
//   5. `stats` at the end: `memory` (per store), meters, linear memory.
// Arms alternate order between passes (noMap first on even passes).
// Asserts no timing; fails on a worker error, an answer of the wrong kind
// (a fresh answer not cached, a recomputed one cached) or inexact totals.
import { LiveLoad, HOUR_MS } from './soak-load.js';

const params = new URLSearchParams(location.search);
const SMOKE = params.has('smoke');
const METERS = Number(params.get('meters') ?? (SMOKE ? 500 : 5000));
const FRAMES = Number(params.get('frames') ?? (SMOKE ? 20 : 1000));
const PASSES = Number(params.get('passes') ?? (SMOKE ? 1 : 5));
const FILL_MINUTES = Number(params.get('fillMinutes') ?? (SMOKE ? 30 : 355));
const QUERIES = Number(params.get('queries') ?? (SMOKE ? 2 : 7));
const PER_FRAME = 1000;
const FRAME_MS = 100;
const ENERGY = 1;
const SPAN_MS = 6 * HOUR_MS;
// The map arm's `groupsRefreshMs`: short, so the map changes come soon; each
// refresh is answered (the same map right before the timed frames, so none
// falls inside them).
const REFRESH_MS = 5_000;

const status = (t) => (document.querySelector('#status').textContent = t);

/** The `/groups` body: district (8), tariff (4) and `all`: every meter in 3 groups. */
export function mapBody(names, version) {
  const groups = {};
  names.forEach((id, m) => {
    for (const g of [`district-${m % 8}`, `tariff-${Math.floor(m / 8) % 4}`, 'all']) (groups[g] ??= []).push(id);
  });
  return JSON.stringify({ version, groups });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};
export const summary = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs.length });

/** One fresh worker, one arm. */
async function runArm(arm) {
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  const errors = [];
  const waiting = new Map();
  let groupsFetch = null;
  let ready;
  const readyP = new Promise((r) => (ready = r));
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'ready') ready();
    else if (m.type === 'fetch' && m.path === '/groups') {
      groupsFetch?.(m.requestId);
    } else if (m.type === 'error') errors.push(`error ${m.code}: ${m.message}`);
    const key = m.type === 'ack' ? `ack:${m.id}` : m.id !== undefined ? `${m.type}:${m.id}` : null;
    const w = key && waiting.get(key);
    if (w) {
      waiting.delete(key);
      w(m);
    }
  };
  worker.onerror = (e) => errors.push(`worker error: ${e.message}`);
  await readyP;
  let id = 0;
  const expect = (key) => new Promise((resolve) => waiting.set(key, resolve));
  const post = (type, data) => {
    const p = expect(`ack:${++id}`);
    if (typeof data === 'string') worker.postMessage({ type, data, id });
    else worker.postMessage({ type, data, id }, [data]);
    return p;
  };
  const ask = (query, extra = {}) => {
    const p = expect(`${query === 'series' ? 'series' : query}:${++id}`);
    worker.postMessage({ type: 'query', query, id, ...extra });
    return p;
  };

  const load = new LiveLoad({ meters: METERS, perFrame: PER_FRAME, resource: ENERGY });
  let version = 1;
  const mapApplyMs = [];
  // The next `/groups` fetch, answered with the map (version `version`) or a failure.
  const answerMap = () =>
    new Promise((resolve) => {
      groupsFetch = (requestId) => {
        groupsFetch = null;
        if (arm !== 'map') return resolve();
        // `fetched` has no `ack`: a `stats` query posted after it is answered
        // once the map is applied (decoded, built, swapped).
        const data = mapBody(load.names, version);
        const t = performance.now();
        worker.postMessage({ type: 'fetched', requestId, ok: true, status: 200, data });
        ask('stats').then(() => {
          mapApplyMs.push(performance.now() - t);
          resolve();
        });
      };
    });
  worker.postMessage({ type: 'config', config: { maxMeters: METERS, deltaFlushMs: 0.001, groupsRefreshMs: arm === 'map' ? REFRESH_MS : 86_400_000 } });
  const mapped = answerMap();
  worker.postMessage({ type: 'session', op: 'start' });
  status(`${arm}: waiting for the /groups fetch`);
  await mapped;
  status(`${arm}: fill`);

  // Fill: simulated time ends a minute before the real clock at the start.
  const realStart = Date.now();
  const timedSpan = (FRAMES + 50 + QUERIES * 2) * FRAME_MS;
  const fillMs = FILL_MINUTES * 60_000 - timedSpan - 60_000;
  const fillFrames = Math.ceil((fillMs / 60_000) * (METERS / PER_FRAME));
  const fillFrameMs = Math.floor(fillMs / fillFrames);
  let stamp = realStart - FILL_MINUTES * 60_000;
  await post('live', load.hello(stamp - 1, realStart));
  await post('catchup', load.catchup(realStart));
  let last;
  for (let f = 1; f <= fillFrames; f++) {
    stamp += fillFrameMs;
    last = post('live', load.frame(stamp));
    if (f % Math.ceil(fillFrames / (FILL_MINUTES / 10)) === 0) {
      await last;
      last = post('catchup', load.catchup(Date.now()));
    }
    if (f % 200 === 0) await last;
  }
  await last;
  // Warm-up at the timed rate, then the timed frames, encoded first.
  const encode = (n) => Array.from({ length: n }, () => load.frame((stamp += FRAME_MS)));
  await Promise.all(encode(50).map((d) => post('live', d)));
  if (arm === 'map') {
    status(`${arm}: waiting for a refresh before the timed frames`);
    await answerMap();
  }
  status(`${arm}: timed frames`);
  const frames = encode(FRAMES);
  const t0 = performance.now();
  const acks = await Promise.all(frames.map((d) => post('live', d)));
  const wallMs = performance.now() - t0;
  const handlerMs = acks.reduce((s, a) => s + (a.ms ?? 0), 0);
  if (acks.some((a) => a.refused)) errors.push('a timed frame was refused');

  const queries = { recomputedAfterFrame: [], recomputedAfterMapChange: [], fresh: [] };
  const series = { group: 'all', resource: 'energy', spanMs: SPAN_MS, resolution: '5m' };
  let shape = null;
  const timeQuery = async (kind, wantCached) => {
    const t = performance.now();
    const a = await ask('series', series);
    const ms = performance.now() - t;
    if (a.state === 'computing') errors.push(`series answered computing (${kind})`);
    else if (a.cached !== wantCached) errors.push(`${kind} series answer had cached: ${a.cached}`);
    shape = { buckets: a.ts?.length, from: a.from, to: a.to, incomplete: a.incomplete, members: METERS };
    queries[kind].push(ms);
  };
  status(`${arm}: queries`);
  if (arm === 'map') {
    for (let q = 0; q < QUERIES; q++) {
      await post('live', load.frame((stamp += FRAME_MS)));
      await timeQuery('recomputedAfterFrame', false);
      await timeQuery('fresh', true);
    }
    for (let q = 0; q < Math.min(QUERIES, 2); q++) {
      version += 1;
      await answerMap();
      // The map was applied (a `stats` query after its `fetched` answered) before this query.
      await timeQuery('recomputedAfterMapChange', false);
    }
  }
  status(`${arm}: stats`);
  const stats = await ask('stats');
  const totals = await ask('totals');
  const inexact = load.compare(totals);
  worker.terminate();
  if (inexact.length) errors.push(`totals not exact: ${inexact.slice(0, 2).join('; ')}`);
  if (errors.length) throw new Error(`${arm}: ${errors.slice(0, 3).join('; ')}`);
  const readings = FRAMES * PER_FRAME;
  return {
    arm,
    readings,
    wallMs,
    nsPerReading: (wallMs * 1e6) / readings,
    handlerNsPerReading: (handlerMs * 1e6) / readings,
    fillReadings: fillFrames * PER_FRAME,
    queries,
    mapApplyMs,
    seriesShape: shape,
    stats: {
      meters: stats.meters,
      linearMemoryBytes: stats.linearMemoryBytes,
      engineBytes: stats.engineBytes,
      memory: stats.memory,
      series: stats.series ?? null,
      groups: stats.groups ? { groups: stats.groups.groups, memberships: stats.groups.memberships, version: stats.groups.version } : null,
    },
  };
}

async function main() {
  const runs = [];
  for (let p = 0; p < PASSES; p++) {
    const order = p % 2 === 0 ? ['noMap', 'map'] : ['map', 'noMap'];
    for (const arm of order) {
      status(`pass ${p + 1}/${PASSES}: ${arm}`);
      runs.push({ pass: p, ...(await runArm(arm)) });
    }
  }
  const of = (arm) => runs.filter((r) => r.arm === arm);
  const added = [];
  const addedHandler = [];
  for (let p = 0; p < PASSES; p++) {
    const [m, n] = [of('map')[p], of('noMap')[p]];
    added.push(m.nsPerReading - n.nsPerReading);
    addedHandler.push(m.handlerNsPerReading - n.handlerNsPerReading);
  }
  const maps = of('map');
  const lastMap = maps.at(-1);
  const lastNoMap = of('noMap').at(-1);
  const perMeter = (s, k) => (s.memory[k] ?? 0) / s.meters;
  return {
    meters: METERS,
    perFrame: PER_FRAME,
    frames: FRAMES,
    passes: PASSES,
    fillMinutes: FILL_MINUTES,
    load: 'v1 binary kind-2 live frames (ledger, per-meter rows, series, anomaly windows; with the map, the groups)',
    groupsPerMeter: 3,
    nsPerReading: { noMap: summary(of('noMap').map((r) => r.nsPerReading)), map: summary(maps.map((r) => r.nsPerReading)) },
    addedNsPerReading: summary(added),
    handlerNsPerReading: { noMap: summary(of('noMap').map((r) => r.handlerNsPerReading)), map: summary(maps.map((r) => r.handlerNsPerReading)) },
    addedHandlerNsPerReading: summary(addedHandler),
    seriesQueryMs: {
      fresh: summary(maps.flatMap((r) => r.queries.fresh)),
      recomputedAfterFrame: summary(maps.flatMap((r) => r.queries.recomputedAfterFrame)),
      recomputedAfterMapChange: summary(maps.flatMap((r) => r.queries.recomputedAfterMapChange)),
      // The map change itself: the `fetched` post of the 5,000-meter body → a `stats` answer after it.
      mapApply: summary(maps.flatMap((r) => r.mapApplyMs)),
      shape: lastMap.seriesShape,
    },
    memory: {
      map: lastMap.stats,
      noMap: lastNoMap.stats,
      seriesBytesPerMeter: perMeter(lastMap.stats, 'series'),
      engineBytesPerMeter: lastMap.stats.engineBytes / lastMap.stats.meters,
      linearBytesPerMeter: lastMap.stats.linearMemoryBytes / lastMap.stats.meters,
    },
    runs,
  };
}

window.benchResult = { done: false, env: { userAgent: navigator.userAgent, crossOriginIsolated } };
try {
  window.benchResult.groups = await main();
  status('done');
  document.querySelector('#out').textContent = JSON.stringify(window.benchResult.groups, null, 2);
} catch (e) {
  window.benchResult.error = String(e?.stack ?? e);
  status(`failed: ${window.benchResult.error}`);
}
window.benchResult.done = true;
