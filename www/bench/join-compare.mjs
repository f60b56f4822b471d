#!/usr/bin/env node
// Every output of two builds of the module on the same messages, compared:
// for a change to the join path (interning, the rings' reservation), the old
// www/pkg against the new one, in Node.
//
//   node www/bench/join-compare.mjs OLD_PKG_DIR NEW_PKG_DIR [--meters N]
//
// The messages: maxMeters, then a kind-1 frame binding N meters (2·N records,
// keys `i % N`), two keys bound to one new name, a name bound twice in one
// frame, bad and over-long ids, JSON readings naming new and known meters
// (some refused by value), batch-scope (JSON) names past maxMeters, frames
// without bindings, ticks, and a `meter` query for a sample of the meters
// plus `stats`. Times (`ms`, the linear memory) are dropped; everything else
// must be equal, message by message. Exits non-zero on the first difference.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { encodeReadingsFrame } from '../frames.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const [oldDir, newDir] = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (!oldDir || !newDir) {
  console.error('usage: node www/bench/join-compare.mjs OLD_PKG_DIR NEW_PKG_DIR [--meters N]');
  process.exit(2);
}
const N = Number(opt('--meters', 3000));
const MAX = N + 40;
const T0 = 1.7e12;

/** The messages, built once, as functions (transfers detach buffers). */
function script() {
  const id = (i) => `meter-${String(i).padStart(6, '0')}`;
  const msgs = [];
  msgs.push(() => ({ type: 'config', config: { maxMeters: MAX } }));
  const keys = Uint32Array.from({ length: 2 * N }, (_, i) => i % N);
  const values = Float64Array.from(keys, (k, i) => 50 + (k % 100) + ((i * 7919) % 1000) / 1000);
  // Meter 7's values out of bounds in this frame: its key stays pending.
  for (let i = 0; i < keys.length; i++) if (keys[i] === 7) values[i] = NaN;
  const bindings = Array.from({ length: N }, (_, k) => [k, id(k)]);
  // Keys N, N+1 bound to one new name; N+2 to a known one; N+3 to a bad id.
  bindings.push([N, 'shared-new'], [N + 1, 'shared-new'], [N + 2, id(3)]);
  const extraKeys = Uint32Array.from([...keys, N, N + 1, N + 2]);
  const extraValues = Float64Array.from([...values, 1, 2, 3]);
  msgs.push(() => ({ type: 'readings', id: 1, data: encodeReadingsFrame({ bindings, keys: extraKeys, ts: T0 - 1000, values: extraValues }) }));
  // Frames refused whole (a bad and an over-long id), then one naming a known id anew.
  for (const [k, name] of [[N + 3, 'bad\u0001id'], [N + 4, 'x'.repeat(300)], [N + 5, id(N - 1)]]) {
    msgs.push(() => ({ type: 'readings', id: k, data: encodeReadingsFrame({ bindings: [[k, name]], keys: [k], ts: T0 - 990, values: [k] }) }));
  }
  for (let f = 0; f < 3; f++) {
    const v = Float64Array.from(keys, (k, i) => 50 + (k % 100) + (((i + f) * 104729) % 1000) / 1000);
    msgs.push(() => ({ type: 'readings', id: 2 + f, data: encodeReadingsFrame({ keys, ts: T0 - 900 + f, values: v }) }));
  }
  // JSON: new meters (up to and past maxMeters), known ones, refused values.
  const readings = [];
  for (let i = 0; i < 60; i++) readings.push({ meter: `json-${i}`, ts: T0 - 500, value: i % 9 === 0 ? 'x' : i });
  for (let i = 0; i < 20; i++) readings.push({ meter: id(i * 7), ts: T0 - 400, value: i });
  msgs.push(() => ({ type: 'readings', id: 10, data: JSON.stringify({ type: 'readings', readings }) }));
  msgs.push(() => ({ type: 'tick' }));
  const q = [0, 1, 3, 7, N - 1].concat(Array.from({ length: 20 }, (_, i) => (i * 149) % N));
  for (const m of q) msgs.push(() => ({ type: 'query', query: 'meter', meter: id(m) }));
  for (const m of ['shared-new', 'json-1', 'json-39', 'absent']) msgs.push(() => ({ type: 'query', query: 'meter', meter: m }));
  msgs.push(() => ({ type: 'query', query: 'stats' }));
  return msgs;
}

const DROP = new Set(['ms', 'linearMemoryBytes', 'lastTickEvalMs', 'deltaApplyMs', 'deliveryLatencyMs']);
const clean = (x) => JSON.parse(JSON.stringify(x, (k, v) => (DROP.has(k) ? undefined : v)));

async function run(dir) {
  const url = pathToFileURL(resolve(dir, 'meterflow.js')).href;
  const mod = await import(`${url}?${Math.random()}`);
  await mod.default({ module_or_path: await readFile(resolve(dir, 'meterflow_bg.wasm')) });
  const engine = new mod.MeterflowEngine({ memoryCeilingBytes: 1e12 });
  const out = [];
  let now = T0;
  for (const make of script()) {
    const msg = make();
    now += 1;
    const got = msg.type === 'tick' ? engine.tick(now) : engine.handle(msg, now);
    out.push(clean(got));
  }
  return out;
}

const a = await run(oldDir);
const b = await run(newDir);
let count = 0;
for (let i = 0; i < Math.max(a.length, b.length); i++) {
  const x = JSON.stringify(a[i]);
  const y = JSON.stringify(b[i]);
  count += Array.isArray(a[i]) ? a[i].length : 1;
  if (x !== y) {
    console.error(`message ${i} differs:\n old ${x?.slice(0, 600)}\n new ${y?.slice(0, 600)}`);
    process.exit(1);
  }
}
const kinds = {};
if (process.env.JOIN_COMPARE_DUMP) for (const [i, m] of a.entries()) console.log(i, JSON.stringify(m).slice(0, 300));
for (const m of a.flat()) kinds[m.type] = (kinds[m.type] ?? 0) + 1;
console.log(`${a.length} messages, ${count} outputs equal (${JSON.stringify(kinds)}), ${N} meters joined`);
