// Where a JSON readings batch's time goes inside the wasm engine (issue 9),
// stage by stage, for the path benchmark's payload (bench/path.js: 10,000
// readings over 5,000 meters, one integer ts, values with 3 decimals), with
// `MeterflowEngine` called directly: no postMessage, no structured clone, so
// the stages are not hidden in the queue. Shared by the page
// (bench-json-stages.html, in Chromium) and Node (bench/json-stages.mjs).
//
// Every variant is a `handle` of one batch; ns per reading, the median of
// `reps` batches per round, rounds alternated, the median over rounds reported:
//   json_string      the page's string: encodeInto + scan + bindings + apply
//   json_bytes       the same text as a Uint8Array: memcpy + scan + ... + apply
//   json_js_encoded  the string, encoded to bytes in JavaScript (`TextEncoder.encode`,
//                    timed) and handed over as json_bytes is
//   json_one_meter   every reading naming one meter (same length): the scan and
//                    the per-reading lookup without 5,000 distinct bindings
//   json_int_values  values rounded to integers: the scan with shorter numbers
//   binary           the same readings as a kind-1 frame (shared ts): decode + apply
//   encode_into      `TextEncoder.encodeInto` of the string into a JS Uint8Array
//                    alone (the copy json_string makes)
// Differences give the stages: the text's cost over binary = json_string -
// binary; the 5,000 distinct meters = json_string - json_one_meter (less the
// apply's cache misses, which binary shows); the copy = encode_into.

import { encodeReadingsFrame } from '../frames.js';
import { random } from './random.js';

const METERS = 5000;
const BATCH = 10_000;
const WINDOW = 1200;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Runs every variant; `MeterflowEngine` from an initialised package.
 * @returns {{ bytesPerReading: number, nsPerReading: Record<string, number> }}
 */
export function runStages(MeterflowEngine, { reps = 20, rounds = 5, only, onRound } = {}) {
  const rand = random(9);
  const ids = Array.from({ length: METERS }, (_, i) => `meter-${String(i).padStart(6, '0')}`);
  const values = () => {
    const v = new Float64Array(BATCH);
    for (let i = 0; i < BATCH; i++) {
      const level = 50 + ((i % METERS) % 100);
      v[i] = Math.round((level + (rand() + rand() + rand() - 1.5) * 2) * 1000) / 1000;
    }
    return v;
  };
  const jsonText = (ts, v, id = (i) => ids[i % METERS]) => {
    const parts = new Array(v.length);
    for (let i = 0; i < v.length; i++) parts[i] = `{"meter":"${id(i)}","ts":${ts},"value":${v[i]}}`;
    return `{"type":"readings","readings":[${parts.join(',')}]}`;
  };
  const keys = Uint32Array.from({ length: BATCH }, (_, i) => i % METERS);
  const now = 1_764_860_000_000;
  const engine = new MeterflowEngine({ maxMeters: METERS, memoryCeilingBytes: 1e12 });
  const check = (out, what) => {
    for (const m of out) if (m.type === 'error' || m.type === 'warning') throw new Error(`${what}: ${m.code}: ${m.message}`);
  };
  // Bind and fill every window (binary), a minute old.
  const fill = (i) => encodeReadingsFrame({ bindings: i ? [] : ids.map((id, k) => [k, id]), keys, ts: now - 60_000, values: values() });
  for (let i = 0; i < (METERS * WINDOW) / BATCH; i++) check(engine.handle({ type: 'readings', data: fill(i) }, now), 'fill');

  const utf8 = new TextEncoder();
  const sample = Array.from({ length: 4 }, () => values());
  const ts = now - 1000;
  const variants = {
    json_string: (v) => jsonText(ts, v),
    json_js_encoded: (v) => jsonText(ts, v),
    json_flat: (v) => new TextDecoder().decode(utf8.encode(jsonText(ts, v))),
    json_bytes: (v) => utf8.encode(jsonText(ts, v)),
    json_one_meter: (v) => jsonText(ts, v, () => ids[7]),
    json_int_values: (v) => jsonText(ts, v.map(Math.round)),
    binary: (v) => encodeReadingsFrame({ keys, ts, values: v }),
  };
  const payloads = {};
  for (const [name, make] of Object.entries(variants)) {
    if (!only || only.includes(name)) payloads[name] = sample.map(make);
  }
  const texts = sample.map((v) => jsonText(ts, v));

  const time = (name) => {
    const xs = [];
    for (let r = 0; r < reps; r++) {
      // Bytes are read, not transferred: the same buffer serves again.
      const p = payloads[name][r % 4];
      const t0 = performance.now();
      const msg = { type: 'readings', data: name === 'json_js_encoded' ? utf8.encode(p) : p };
      const out = engine.handle(msg, now);
      xs.push(performance.now() - t0);
      check(out, name);
    }
    return median(xs);
  };
  const dst = new Uint8Array(texts[0].length + 16);
  const timeEncode = () => {
    const xs = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      utf8.encodeInto(texts[r % 4], dst);
      xs.push(performance.now() - t0);
    }
    return median(xs);
  };
  // Warm-up (untimed): every variant's code hot, so that V8 has tiered it up
  // from its baseline wasm compiler before the timed rounds (on a loaded
  // machine the optimising compile can lag, and a variant timed first then
  // ran 2-3× slower).
  for (let w = 0; w < 3; w++) for (const n of Object.keys(payloads)) time(n);
  const all = {};
  for (let r = 0; r < rounds; r++) {
    const names = Object.keys(payloads);
    if (r % 2) names.reverse();
    for (const n of names) (all[n] ??= []).push(time(n));
    (all.encode_into ??= []).push(timeEncode());
    onRound?.(r);
  }
  const ns = Object.fromEntries(Object.entries(all).map(([k, xs]) => [k, +((median(xs) * 1e6) / BATCH).toFixed(1)]));
  return { bytesPerReading: +(texts[0].length / BATCH).toFixed(1), nsPerReading: ns, reps, rounds };
}
