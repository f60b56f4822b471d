// The apply time of real `meters.<group>` deltas in the shipped worker
// (www/worker.js, page transport). Run by stream-apply.mjs on a page served by
// meterflow-feed, so the deltas come from the real server:
//  1. capture: GET /snapshot-v2 of the channel, then a WebSocket IDENTIFY from
//     that snapshot's seq, keeping HELLO, READY and the next `deltas` DELTA texts;
//  2. replay: start the worker's session on the channel (page transport), answer
//     its connect/IDENTIFY/snapshot fetch with the captured texts, then post each
//     delta as a `socket` message (and `rendered` for it, so credit never runs
//     out), and read the worker's own `stats.deltaApplyMs` (each delta message's
//     decode → check → apply, timed inside the worker).
//  3. the binary arm (`binary=1`, the default): a second socket asks the server
//     for the same deltas as binary kind-4 frames (`binary_deltas: true`,
//     PROTOCOL.md 3.10) from the same snapshot seq; each pass replays the text
//     deltas and then the binary ones (ArrayBuffers, as a socket delivers them)
//     into fresh workers.
// Result in window.benchResult.

const params = new URLSearchParams(location.search);
const channel = params.get('channel') ?? 'meters.north';
const deltas = Number(params.get('deltas') ?? 300);
const passes = Number(params.get('passes') ?? 3);
const binaryArm = params.get('binary') !== '0';
/** Where the run is, for a runner that times out. */
const step = (what) => (window.benchStep = what);

/** The binary kind-4 deltas of `channel` after `seq` (a socket that asked `binary_deltas`). */
function captureBinary(snap) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/stream`);
    ws.binaryType = 'arraybuffer';
    const out = [];
    const guard = setTimeout(() => reject(new Error(`capture binary: ${out.length} deltas after 120 s`)), 120_000);
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') {
        if (JSON.parse(e.data).op === 'HELLO') {
          ws.send(JSON.stringify({ op: 'IDENTIFY', binary_deltas: true, channels: [{ name: channel,
            credit: deltas + 16, epoch: snap.epoch, snapshot_seq: snap.snapshot_seq }] }));
        }
        return;
      }
      out.push(e.data);
      if (out.length === deltas) {
        clearTimeout(guard);
        ws.close(1000);
        resolve(out);
      }
    };
    ws.onerror = () => reject(new Error('capture binary: WebSocket error'));
  });
}

function capture() {
  return new Promise(async (resolve, reject) => {
    step('capture: snapshot');
    const groupsText = await (await fetch('/groups')).text();
    const snapText = await (await fetch(`/snapshot-v2?channel=${channel}`)).text();
    const snap = JSON.parse(snapText);
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/stream`);
    const got = { snapText, groupsText, hello: null, ready: null, deltas: [], binary: null };
    const binary = binaryArm ? captureBinary(snap) : Promise.resolve(null);
    const guard = setTimeout(() => reject(new Error(`capture: ${got.deltas.length} deltas after 120 s`)), 120_000);
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      step(`capture: ${m.op} (${got.deltas.length} deltas)`);
      if (m.op === 'HELLO') {
        got.hello = e.data;
        ws.send(JSON.stringify({ op: 'IDENTIFY', channels: [{ name: channel, credit: deltas + 16,
          epoch: snap.epoch, snapshot_seq: snap.snapshot_seq }] }));
      } else if (m.op === 'READY') {
        got.ready = e.data;
      } else if (m.op === 'DELTA' && m.channel === channel && m.seq > snap.snapshot_seq) {
        got.deltas.push(e.data);
        if (got.deltas.length === deltas) {
          clearTimeout(guard);
          ws.close(1000);
          binary.then((b) => resolve({ ...got, binary: b }), reject);
        }
      }
    };
    ws.onerror = () => reject(new Error('capture: WebSocket error'));
  });
}

function startWorker() {
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  const waiters = [];
  const errors = [];
  worker.onmessage = (e) => {
    const m = e.data;
    if (m?.type === 'error') errors.push(m);
    (window.benchSeen ??= []).push(m?.type === 'error' || m?.type === 'warning' || m?.type === 'fetch' ? JSON.stringify(m) : m?.type);
    for (let i = 0; i < waiters.length; i++) {
      if (waiters[i].test(m)) {
        waiters.splice(i, 1)[0].resolve(m);
        break;
      }
    }
  };
  const next = (test) => new Promise((resolve) => waiters.push({ test, resolve }));
  return { worker, next, errors };
}

/** Replays `cap` into a fresh worker; `frames`: the deltas to post (text or ArrayBuffers). */
async function replay(cap, frames = cap.deltas) {
  const { worker, next, errors } = startWorker();
  step('replay: worker start');
  await next((m) => m?.type === 'ready');
  step('replay: session start');
  // The worker asks for the snapshot at once and for /groups later: both
  // answered with what the server served.
  const fetchReq = next((m) => m?.type === 'fetch' && String(m.path).startsWith('/snapshot-v2'));
  const groupsReq = next((m) => m?.type === 'fetch' && m.path === '/groups');
  groupsReq.then((g) => worker.postMessage({ type: 'fetched', requestId: g.requestId, ok: true, status: 200,
    data: cap.groupsText }));
  const connect = next((m) => m?.type === 'connect');
  worker.postMessage({ type: 'session', op: 'start', channels: [channel] });
  await connect;
  const identify = next((m) => m?.type === 'send');
  worker.postMessage({ type: 'socket', event: 'open' });
  worker.postMessage({ type: 'socket', event: 'message', data: cap.hello });
  await identify;
  step('replay: READY');
  worker.postMessage({ type: 'socket', event: 'message', data: cap.ready });
  const f = await fetchReq;
  step('replay: snapshot');
  const shown = next((m) => m?.type === 'meters');
  worker.postMessage({ type: 'fetched', requestId: f.requestId, ok: true, status: 200, data: cap.snapText });
  await shown;
  step('replay: deltas');
  let entities = 0;
  for (const d of cap.deltas) entities += JSON.parse(d).patch.upsert.length;
  // The worker's clock is coarse (performance.now() without cross-origin
  // isolation: 0.1 ms steps), so the page also times the whole batch: first
  // post to the answer of a stats query queued behind the last delta.
  // The answer to the query, not a periodic `stats` posted while the deltas were still queued.
  const stats = next((m) => m?.type === 'stats' && m.deltaApplyMs?.samples >= frames.length);
  const t0 = performance.now();
  for (const d of frames) {
    worker.postMessage({ type: 'socket', event: 'message', data: typeof d === 'string' ? d : d.slice(0) });
    worker.postMessage({ type: 'rendered', channel, frames: 1 });
  }
  worker.postMessage({ type: 'query', query: 'stats' });
  const s = await stats;
  const batchMs = performance.now() - t0;
  step('replay: done');
  worker.terminate();
  return { deltaApplyMs: s.deltaApplyMs, batchMs, batchMsPerDelta: batchMs / cap.deltas.length, stream: s.stream ?? null, errors,
    meanEntities: entities / cap.deltas.length };
}

try {
  const cap = await capture();
  const sizes = cap.deltas.map((d) => JSON.parse(d).patch.upsert.length);
  const bytes = cap.deltas.map((d) => d.length);
  const runs = [];
  const binaryRuns = [];
  for (let p = 0; p < passes; p++) {
    runs.push(await replay(cap));
    if (cap.binary) binaryRuns.push(await replay(cap, cap.binary));
  }
  window.benchResult = {
    done: true,
    channel,
    deltas: cap.deltas.length,
    entitiesPerDelta: { min: Math.min(...sizes), max: Math.max(...sizes), mean: sizes.reduce((a, b) => a + b, 0) / sizes.length },
    bytesPerDelta: { min: Math.min(...bytes), max: Math.max(...bytes) },
    snapshotBytes: cap.snapText.length,
    runs,
    binaryRuns,
    binaryBytesPerDelta: cap.binary
      ? { min: Math.min(...cap.binary.map((b) => b.byteLength)), max: Math.max(...cap.binary.map((b) => b.byteLength)) }
      : null,
    userAgent: navigator.userAgent,
    hardwareConcurrency: navigator.hardwareConcurrency,
  };
} catch (e) {
  window.benchResult = { done: true, error: String(e?.stack ?? e) };
}
document.getElementById('out').textContent = JSON.stringify(window.benchResult, null, 2);
