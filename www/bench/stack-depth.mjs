#!/usr/bin/env node
// How deep the wasm module's stack really goes (issue 9: the stack is part of
// linear memory, so its size counts against the bytes per meter).
//
// Loads the release package (www/pkg, `make build`) in Node: the stack lives in
// linear memory (rustc places it first, from address 0 up to its top, growing
// down) and what a call uses there is fixed by the compiled code, the same in
// Node as in the browser's worker. Before each scenario every byte of the stack
// is set to a pattern; after it, the lowest byte no longer holding the pattern
// is the high-water mark: `top − address` bytes were used.
//
// Scenarios: the deepest nesting the recursive JSON reader allows (`lite.rs`'s
// MAX_DEPTH: config, socket text, fetched bodies), one level more (refused),
// and 100,000 levels (the readings, catch-up and live decoders skip unknown
// values without recursing, so their use must not grow), on every JSON path
// the page can send, as arrays and as objects; and the heavy paths: a 50,000-meter engine's ticks
// with alerts raised, a 50,000-reading JSON batch, a 5,000 × 7 h × 3 JSON
// catch-up (8.8 MB), the stats/totals/meter queries.
//
//   node www/bench/stack-depth.mjs             every scenario, a table
//   node www/bench/stack-depth.mjs --json F    also write the results to F
//   node www/bench/stack-depth.mjs --quick     5,000 meters instead of 50,000
//
// `www/tests/stack.test.mjs` runs the same scenarios (quick) and fails on a
// trap or on less than 2× headroom. This script reports; it asserts nothing.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ReadingFrameEncoder } from '../frames.js';

const PKG = new URL('../pkg/', import.meta.url);

/** JSON readers' deepest nesting: lite.rs MAX_DEPTH, serde_json's recursion limit. */
export const MAX_DEPTH = 128;
const PATTERN = 0xa5a5a5a5;

/** Reads an unsigned LEB128 at `at`; returns [value, next offset]. */
function leb(bytes, at) {
  let v = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return [v, at];
  }
}

/**
 * The initial value of the module's stack pointer (its first mutable i32
 * global, `__stack_pointer`), read from the module's global section.
 */
export function stackTop(wasm) {
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = leb(wasm, at + 1);
    if (id === 6) {
      let [count, p] = leb(wasm, body);
      for (let i = 0; i < count; i++) {
        const type = wasm[p];
        const mutable = wasm[p + 1];
        p += 2;
        // init: an i32.const (0x41) with a signed LEB, then `end` (0x0b).
        if (type === 0x7f && mutable === 1 && wasm[p] === 0x41) {
          let v = 0;
          let shift = 0;
          let b;
          p++;
          do {
            b = wasm[p++];
            v |= (b & 0x7f) << shift;
            shift += 7;
          } while (b & 0x80);
          return v >>> 0;
        }
        // Skip this global's init expression up to its `end`.
        while (wasm[p] !== 0x0b) p++;
        p++;
      }
      break;
    }
    at = body + size;
  }
  throw new Error('no mutable i32 global (the stack pointer) in the module');
}

/** Loads www/pkg in Node: `{ MeterflowEngine, memory, top }`. */
export async function load() {
  const wasm = readFileSync(new URL('meterflow_bg.wasm', PKG));
  const glue = await import(new URL('meterflow.js', PKG).href);
  const exports = glue.initSync({ module: wasm });
  return { MeterflowEngine: glue.MeterflowEngine, memory: exports.memory, top: stackTop(wasm) };
}

/**
 * Runs `fn` with the stack below `top` set to the pattern first; returns the
 * bytes of stack it used (the lowest changed word's distance from `top`) and
 * what `fn` returned. A trap (stack overflow included) is thrown as is.
 */
export function measure({ memory, top }, fn) {
  new Uint32Array(memory.buffer, 0, top >>> 2).fill(PATTERN);
  const value = fn();
  // Memory may have grown (a new buffer): the stack stays at the bottom.
  const words = new Uint32Array(memory.buffer, 0, top >>> 2);
  let i = 0;
  while (i < words.length && words[i] === PATTERN) i++;
  return { used: top - 4 * i, value };
}

/** `depth` nested arrays (`[[…]]`) or objects (`{"a":{…}}`) around a 1. */
function nest(depth, kind) {
  return kind === 'arrays' ? '['.repeat(depth) + '1' + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

const T = Date.UTC(2026, 11, 4, 12);
const HOUR_MS = 3_600_000;

/**
 * The deep documents: for each JSON path, a message whose whole JSON text is
 * `depth` levels deep (the top-level object counts as one), via an extra field.
 */
function deepMessages(depth, kind) {
  const x = nest(depth - 1, kind);
  const current = T - (T % HOUR_MS);
  const catchup = `{"type":"catchup","asOf":{"wallMs":${T},"counter":0},"serverTime":${T},"from":${current - 6 * HOUR_MS},"to":${current},"buckets":[],"x":${x}}`;
  return {
    readings: { type: 'readings', data: `{"type":"readings","readings":[{"meter":"m-1","ts":${T},"value":1}],"x":${x}}` },
    'readings (bytes)': { type: 'readings', data: new TextEncoder().encode(`{"type":"readings","readings":[],"x":${x}}`).buffer },
    catchup: { type: 'catchup', data: catchup },
    live: { type: 'live', data: `{"type":"hello","epoch":1,"nextSeq":0,"hlc":{"wallMs":${T},"counter":0},"serverTime":${T},"x":${x}}` },
    config: { type: 'config', config: { x: JSON.parse(nest(depth - 2, kind)) } },
    socket: { type: 'socket', event: 'message', data: `{"op":"hello","x":${x}}` },
    fetched: { type: 'fetched', requestId: 1, ok: true, status: 200, data: `{"x":${x}}` },
  };
}

/** A nesting far past every limit: readers that skip unknown values iteratively must not care. */
export const FAR_DEPTH = 100_000;

/**
 * The deep-nesting scenarios: [name, depth, run(engine) → outputs]. The
 * config message is a JS object (the engine writes it as JSON text), so it is
 * left out at FAR_DEPTH, where `JSON.stringify` itself would run out of stack.
 */
export function deepScenarios() {
  const out = [];
  for (const kind of ['arrays', 'objects']) {
    for (const depth of [MAX_DEPTH, MAX_DEPTH + 1, FAR_DEPTH]) {
      for (const [path, msg] of Object.entries(deepMessages(depth, kind))) {
        if (path === 'config' && depth === FAR_DEPTH) continue;
        out.push([`${path}, ${depth} deep (${kind})`, depth, (e) => e.handle(msg, T)]);
      }
    }
  }
  return out;
}

/**
 * The heavy scenarios over one engine of `meters` meters: each entry is
 * [name, run] and they must run in order (they build on each other).
 */
export function heavyScenarios(MeterflowEngine, meters) {
  let engine;
  const ids = Array.from({ length: meters }, (_, i) => `meter-${String(i).padStart(6, '0')}`);
  const encoder = new ReadingFrameEncoder(ids);
  const values = (r) => Float64Array.from(ids, (_, i) => 50 + (i % 100) + ((r * 7 + i) % 5) * 0.1);
  let clock = T;
  const frame = (v) => {
    clock += 500;
    return engine.handle({ type: 'readings', data: encoder.frame(clock, v) }, clock);
  };
  const current = T - (T % HOUR_MS);
  const resources = ['water', 'energy', 'bandwidth'];
  return [
    ['new engine, first frame binds every meter', () => {
      // A short baseline so the learned rules (drift, variance, stuck) run.
      engine = new MeterflowEngine({ maxMeters: meters, memoryCeilingBytes: 1e12, baselineReadings: 100 });
      return frame(values(0));
    }],
    ['150 frames and ticks (training)', () => {
      const out = [];
      for (let r = 1; r <= 150; r++) {
        out.push(...frame(values(r)));
        out.push(...engine.tick(clock));
      }
      return out;
    }],
    ['tick raising spike, drift and stuck alerts on every meter', () => {
      const out = [];
      for (let r = 0; r < 40; r++) {
        // Every 10th meter spikes, every 10th (+1) steps up, the rest stick.
        const v = Float64Array.from(ids, (_, i) => (i % 10 === 0 ? 1e6 : i % 10 === 1 ? 1e3 : 42));
        out.push(...frame(v));
        out.push(...engine.tick(clock));
      }
      return out;
    }],
    [`JSON readings, ${meters.toLocaleString('en-US')} in one text`, () => {
      const items = ids.map((id, i) => `{"meter":"${id}","ts":${clock},"value":${i % 97}.25}`);
      return engine.handle({ type: 'readings', data: `{"type":"readings","readings":[${items.join(',')}]}` }, clock);
    }],
    ['JSON catch-up, 5,000 meters × 7 h × 3 resources', () => {
      const buckets = [];
      for (let m = 0; m < Math.min(meters, 5000); m++) {
        for (let h = 0; h < 7; h++) {
          for (const resource of resources) buckets.push({ meter: ids[m], resource, hour: current - (6 - h) * HOUR_MS, total: `${m % 97}.${h}${h}7` });
        }
      }
      const body = { type: 'catchup', asOf: { wallMs: clock, counter: 0 }, serverTime: clock, from: current - 6 * HOUR_MS, to: current, buckets };
      return engine.handle({ type: 'catchup', data: JSON.stringify(body) }, clock);
    }],
    ['queries: stats, totals, meter, flush', () => [
      ...engine.handle({ type: 'query', query: 'stats' }, clock),
      ...engine.handle({ type: 'query', query: 'totals' }, clock),
      ...engine.handle({ type: 'query', query: 'meter', meter: ids[0] }, clock),
      ...engine.flush(clock),
    ]],
    ['config: window 1,200 → 600 (in-place re-layout)', () => engine.handle({ type: 'config', config: { window: 600 } }, clock)],
    ['free', () => { engine.free(); return []; }],
  ];
}

/** Runs every scenario; returns `{ top, rows: [{ name, used, errors }] }`. */
export async function run({ meters = 50_000 } = {}) {
  const ctx = await load();
  const rows = [];
  const engine = new ctx.MeterflowEngine({});
  const codes = (out) => [...new Set(out.filter((m) => m.type === 'error').map((m) => m.code))];
  for (const [name, , fn] of deepScenarios()) {
    const { used, value } = measure(ctx, () => fn(engine));
    rows.push({ name, used, errors: codes(value) });
  }
  engine.free();
  for (const [name, fn] of heavyScenarios(ctx.MeterflowEngine, meters)) {
    const { used, value } = measure(ctx, fn);
    rows.push({ name, used, errors: codes(value ?? []) });
  }
  return { top: ctx.top, meters, rows };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const jsonAt = args.indexOf('--json');
  const result = await run({ meters: args.includes('--quick') ? 5_000 : 50_000 });
  const width = Math.max(...result.rows.map((r) => r.name.length));
  for (const r of result.rows) {
    console.log(`${r.name.padEnd(width)}  ${String(r.used).padStart(7)} B  ${r.errors.join(' ')}`);
  }
  const max = Math.max(...result.rows.map((r) => r.used));
  console.log(`\nstack top (size) ${result.top} B; deepest use ${max} B (${((100 * max) / result.top).toFixed(1)} %), ${(result.top / max).toFixed(1)}× headroom`);
  if (jsonAt >= 0) writeFileSync(args[jsonAt + 1], JSON.stringify({ date: new Date().toISOString(), ...result, max }, null, 2) + '\n');
}
