#!/usr/bin/env node
// The page's cost of splitting payloads in the worker pool (www/client/pool.ts),
// alone: no workers (fakes that answer `ready` and ack at once), in Node, so
// the figure is the split itself, not the main thread waiting for cores the
// workers hold. Needs `make dash` (www/build/client).
//
//   node www/bench/soak-pool-split.mjs [--meters 20000] [--batches 100]
import { MeterflowPool } from '../build/client/pool.js';

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(n) ? Number(args[args.indexOf(n) + 1]) : d);
const METERS = opt('--meters', 20000);
const BATCHES = opt('--batches', 100);
const BATCH = 10_000;

function fakeWorker() {
  const w = {
    onmessage: null,
    postMessage(m) {
      if (m?.id !== undefined) queueMicrotask(() => w.onmessage?.({ data: { type: 'ack', v: 1, id: m.id, accepted: 0, refused: 0, ms: 0 } }));
    },
    terminate() {},
  };
  setTimeout(() => w.onmessage?.({ data: { type: 'ready', v: 1, version: 'fake' } }), 0);
  return w;
}

const utf8 = new TextEncoder();
const pad8 = (n) => (n + 7) & ~7;
function frame(keys, bind) {
  const names = bind ? Array.from({ length: METERS }, (_, i) => utf8.encode(`tp-${String(i).padStart(6, '0')}`)) : [];
  let at = 16;
  for (const b of names) at += 6 + b.length;
  const k = pad8(at);
  const t = pad8(k + 4 * keys.length);
  const buf = new ArrayBuffer(t + 8 + 8 * keys.length);
  const v = new DataView(buf);
  new Uint8Array(buf).set([0x4d, 0x46, 0x4c, 0x57, 1, 1]);
  v.setUint16(6, 1, true);
  v.setUint32(8, names.length, true);
  v.setUint32(12, keys.length, true);
  at = 16;
  names.forEach((b, i) => {
    v.setUint32(at, i, true);
    v.setUint16(at + 4, b.length, true);
    new Uint8Array(buf).set(b, at + 6);
    at += 6 + b.length;
  });
  new Uint32Array(buf, k, keys.length).set(keys);
  return buf;
}
const keysOf = (b) => Uint32Array.from({ length: BATCH }, (_, i) => (b * BATCH + i) % METERS);
const json = (b) => `{"type":"readings","readings":[${Array.from(keysOf(b), (k, i) => `{"meter":"tp-${String(k).padStart(6, '0')}","ts":1764000000000,"value":${(i % 1000) / 8}}`).join(',')}]}`;

const out = [];
for (const workers of [1, 2, 4]) {
  const pool = await MeterflowPool.start({ workers, createWorker: fakeWorker, maxPending: 1_000_000 });
  await pool.readings(frame(keysOf(0), true));
  const row = { workers };
  for (const format of ['binary', 'json']) {
    const payloads = Array.from({ length: BATCHES }, (_, b) => (format === 'binary' ? frame(keysOf(b), false) : json(b)));
    const t0 = performance.now();
    await Promise.all(payloads.map((p) => pool.readings(p)));
    row[`${format}NsPerReading`] = Math.round(((performance.now() - t0) * 1e6) / (BATCHES * BATCH));
  }
  pool.close();
  out.push(row);
}
console.log(JSON.stringify({ meters: METERS, readings: BATCHES * BATCH, rows: out }));
