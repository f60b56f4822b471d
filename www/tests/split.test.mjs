// The module in two parts (scripts/split-wasm.mjs, docs/SIZE.md "The split"):
// the warm part (pkg/meterflow_bg.wasm) starts the worker and ingests alone;
// the cold part (pkg/meterflow_bg_cold.wasm) is loaded in the background once
// the worker is ready, or synchronously by the first cold function called
// before that. Both ways must give the same answers, in a real worker
// (synchronous request) and in Node (synchronous file read).
//
// Run: `make build && cd www && node --test tests/split.test.mjs`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { requirePackage, serveAndLaunch } from './harness.mjs';

const PKG = new URL('../pkg/', import.meta.url);
// Recent enough for the worker, whose clock is the real one.
const T0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;

// Readings for 3 meters, then the questions only cold code answers: stats
// (Engine::answer), a series (core::series), a meter's snapshot, a bad
// message (an error text).
const readings = JSON.stringify({
  type: 'readings',
  readings: Array.from({ length: 60 }, (_, i) => ({ meter: `m-${i % 3}`, ts: T0 + 500 * i, value: 1 + (i % 7) })),
});
const MESSAGES = [
  { type: 'readings', data: readings, id: 1 },
  { type: 'query', id: 2, query: 'meter', meter: 'm-1' },
  { type: 'query', id: 3, query: 'window', meter: 'm-2' },
  { type: 'query', id: 4, query: 'meter', meter: 'nobody' },
  { type: 'reset', meter: 'm-0' },
  { type: 'query', id: 5, query: 'meter', meter: 'm-0' },
  { type: 'no-such-type' },
  // Last, so that a run waiting for every answer has the error above too.
  { type: 'query', id: 6, query: 'meter', meter: 'm-2' },
];

/** A run's answers and errors, without the time (`ms`) each took; a worker's
 * timer messages (stats, totals) are left out. */
const comparable = (out) =>
  out
    .filter((m) => m.id !== undefined || m.type === 'error')
    .map((m) => JSON.parse(JSON.stringify(m, (k, v) => (k === 'ms' ? undefined : v))));

test('the package has a warm and a cold part, wired through placeholders and the shared table', () => {
  requirePackage();
  const warm = new WebAssembly.Module(readFileSync(new URL('meterflow_bg.wasm', PKG)));
  const cold = new WebAssembly.Module(readFileSync(new URL('meterflow_bg_cold.wasm', PKG)));
  const placeholders = WebAssembly.Module.imports(warm).filter((i) => i.module === 'placeholder');
  assert.ok(placeholders.length > 0, 'the warm part imports no placeholder');
  assert.ok(placeholders.every((i) => i.kind === 'function' && /^\d+$/.test(i.name)));
  const coldImports = WebAssembly.Module.imports(cold);
  assert.ok(coldImports.every((i) => i.module === 'primary'), 'the cold part imports from the warm part only');
  const exported = new Set(WebAssembly.Module.exports(warm).map((e) => `${e.name}:${e.kind}`));
  for (const i of coldImports) assert.ok(exported.has(`${i.name}:${i.kind}`), `the warm part does not export ${i.name}`);
  assert.ok(exported.has('table:table') && exported.has('__wbindgen_externrefs:table'));
});

test('the default init loads both parts; initWarm the warm part alone', () => {
  const script = (init) => `
    import { readFileSync } from 'node:fs';
    const pkg = new URL(${JSON.stringify(PKG.href)});
    const glue = await import(new URL('meterflow.js', pkg).href);
    await glue.${init}({ module_or_path: readFileSync(new URL('meterflow_bg.wasm', pkg)) });
    process.stdout.write(String(glue.coldLoaded()));
  `;
  for (const [init, loaded] of [['default', 'true'], ['initWarm', 'false']]) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script(init)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, loaded, `${init}: cold part loaded ${r.stdout}`);
  }
});

// Node: one process loads the cold part ahead (`loadCold` with its bytes), the
// other lets the first cold call read it synchronously.
function nodeRun(ahead) {
  const script = `
    import { readFileSync } from 'node:fs';
    const pkg = new URL(${JSON.stringify(PKG.href)});
    const glue = await import(new URL('meterflow.js', pkg).href);
    glue.initSync({ module: readFileSync(new URL('meterflow_bg.wasm', pkg)) });
    if (${ahead}) await glue.loadCold(readFileSync(new URL('meterflow_bg_cold.wasm', pkg)));
    const engine = new glue.MeterflowEngine({});
    const out = [];
    for (const m of ${JSON.stringify(MESSAGES)}) out.push(...engine.handle(m, ${T0 + 60_000}));
    process.stdout.write(JSON.stringify(out));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('in Node, the cold part read on first need answers as the one loaded ahead', () => {
  const lazy = comparable(nodeRun(false));
  const ahead = comparable(nodeRun(true));
  assert.deepEqual(lazy, ahead);
  const byId = (id) => lazy.find((m) => m.id === id);
  assert.equal(byId(1).type, 'ack', JSON.stringify(lazy));
  assert.equal(byId(1).accepted, 60);
  assert.equal(byId(2).type, 'meter');
  assert.equal(byId(2).count, 20);
  assert.equal(Object.keys(byId(3).values).length, 20);
  assert.equal(byId(4).code, 'unknown_meter');
  assert.equal(byId(5).count, 0, 'm-0 was reset');
  assert.ok(lazy.some((m) => m.type === 'error' && m.code === 'unknown_type'), 'no error for the unknown type');
});

test('start-up and ingest need only the warm part: an engine made, configured and fed JSON and binary readings in Node never loads the cold part', () => {
  const script = `
    import { readFileSync } from 'node:fs';
    import { encodeReadingsFrame } from ${JSON.stringify(new URL('../frames.js', import.meta.url).href)};
    const pkg = new URL(${JSON.stringify(PKG.href)});
    const glue = await import(new URL('meterflow.js', pkg).href);
    glue.initSync({ module: readFileSync(new URL('meterflow_bg.wasm', pkg)) });
    const steps = [];
    const engine = new glue.MeterflowEngine({ maxMeters: 1000 });
    steps.push(['new', glue.coldLoaded(), []]);
    let out = engine.handle({ type: 'config', config: { window: 600 } }, ${T0});
    steps.push(['config', glue.coldLoaded(), out]);
    out = engine.handle(${JSON.stringify(MESSAGES[0])}, ${T0 + 60_000});
    steps.push(['json readings', glue.coldLoaded(), out]);
    const keys = Array.from({ length: 50 }, (_, k) => k);
    for (let b = 0; b < 20; b++) {
      const frame = encodeReadingsFrame({
        bindings: b === 0 ? keys.map((k) => [k, 'b-' + k]) : [],
        keys, ts: ${T0} + 500 * b, values: keys.map((k) => 10 + ((k + b) % 5)),
      });
      out = engine.handle({ type: 'readings', data: frame, id: 100 + b }, ${T0 + 60_000});
    }
    steps.push(['binary readings', glue.coldLoaded(), out]);
    process.stdout.write(JSON.stringify(steps));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const steps = JSON.parse(r.stdout);
  for (const [what, loaded, out] of steps) {
    assert.equal(loaded, false, `${what} loaded the cold part`);
    assert.ok(out.every((m) => m.type !== 'error'), `${what}: ${JSON.stringify(out)}`);
  }
  assert.deepEqual(steps[2][2].map((m) => [m.type, m.accepted]), [['ack', 60]]);
  assert.deepEqual(steps[3][2].map((m) => [m.type, m.accepted]), [['ack', 50]]);
});

const ctx = serveAndLaunch({ before, after });

// In a worker: messages posted before `ready` are replayed before the
// background load starts (www/worker.js), so the first cold call loads the
// cold part with a synchronous request; messages posted after the background
// load has finished take the table directly.
async function workerRun(page, early) {
  return page.evaluate(
    async ({ messages, early }) => {
      const worker = new Worker('/worker.js', { type: 'module' });
      const out = [];
      const want = messages.filter((m) => m.id !== undefined).length;
      const done = new Promise((resolve, reject) => {
        worker.onerror = (e) => reject(new Error(`worker error: ${e.message}`));
        worker.onmessage = (e) => {
          out.push(e.data);
          if (out.filter((m) => m.id !== undefined).length === want) resolve();
        };
      });
      const ready = new Promise((resolve) => worker.addEventListener('message', (e) => e.data.type === 'ready' && resolve()));
      if (!early) {
        await ready;
        // Long enough for the background load on any machine this runs on.
        await new Promise((r) => setTimeout(r, 2000));
      }
      for (const m of messages) worker.postMessage(m);
      await done;
      worker.terminate();
      return out;
    },
    { messages: MESSAGES, early },
  );
}

test('in a worker, the cold part fetched synchronously before the background load answers as the one loaded in the background', async () => {
  const page = await ctx.browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // A page of the server's origin for the worker: its 404 page will do (that
  // 404, and the favicon's, are not problems).
  const origin = new URL('split-test-origin', ctx.server.url).href;
  page.on('console', (m) => {
    const url = m.location()?.url ?? '';
    if (m.type() === 'error' && url !== origin && !url.endsWith('/favicon.ico')) {
      problems.push(`console error: ${m.text()} (${url})`);
    }
  });
  await page.goto(origin);
  const early = comparable(await workerRun(page, true));
  const late = comparable(await workerRun(page, false));
  assert.deepEqual(early, late);
  assert.deepEqual(early, comparable(nodeRun(true)), 'the worker answers as the engine in Node');
  assert.deepEqual(problems, []);
  await page.close();
});
