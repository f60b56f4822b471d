#!/usr/bin/env node
// Profiles the benchmark's tick where the user runs it: in a dedicated worker
// of headless Chromium, through the DevTools protocol's sampling profiler, and
// prints the functions with the most self time while `engine.tick` runs.
//
//   node www/bench/profile-tick.mjs --build     make www/pkg-prof: the release
//                                               .wasm with its function names
//   node www/bench/profile-tick.mjs [options]   profile, print the top functions
//
// Options: --meters N (5000), --ticks N (300 timed ticks), --untrained (skip
// the training: the bench's `tickUntrained`), --pkg DIR (pkg-prof; `pkg` runs
// the shipped module, whose functions are unnamed), --interval US (sampling
// interval, 50), --top N (30), --profile FILE (also write the .cpuprofile,
// which DevTools' Performance panel opens), --js-flags FLAGS (V8's, e.g.
// `--perf-prof` to write a jitdump for Linux `perf inject --jit`).
//
// --build needs `make build` first: it runs wasm-bindgen and wasm-opt on
// cargo's .wasm exactly as `make build` does, with `wasm-opt -g` added, which
// keeps the name section and changes no code (stripped of its names, the
// result is byte-identical to www/pkg's module). www/pkg-* is not committed.
// `--build --no-inline 'PATTERN'` keeps the functions whose names match out
// of line (wasm-opt inlines every function with one caller, so the whole tick
// is otherwise one function): with `'*detect::*'` and `#[inline(never)]` on
// the evaluation's parts, the profile splits the evaluation (this changes the
// code: read the split, not its total). Times under the profiler run about
// 1.5× the benchmark's.
//
// `--ingest` profiles an ingest burst instead, through `postMessage` as the
// path benchmark sends it (www/bench/path.js): the page builds `--readings N`
// (1,000,000) readings over the meters in kind-1 frames of `--batch N`
// (10,000; keys `i % meters`, one shared ts), posts them back to back with
// their buffers transferred, and the worker hands each to `engine.handle`
// and acks it. It prints the wall time from the first post to the last ack,
// the time inside `engine.handle`, and the functions under `handle` (the JS
// glue's imports, such as the copy of the frame into wasm memory, included).
// The meters are filled but not trained (the per-reading work does not
// depend on training).
//
// `--join` profiles the first frame of a join instead (www/bench/join.mjs
// times it in the shipped worker): after 20 joins of 200 meters unprofiled
// (so the code has tiered up), one fresh engine (`--max-meters N`, 50,000)
// gets one kind-1 frame binding `--meters` meters with two records each, in
// linear memory no engine has touched yet; then `--repeat N` (3) more fresh
// engines do the same, each in the memory the freed one before it left
// (already touched). Both are profiled and reported apart: the difference is
// what first touching the memory costs.
//
// Not part of `make test`; it reports figures and asserts nothing.

import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, startServer, WWW } from '../tests/harness.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};

if (args.includes('--build')) {
  const root = join(WWW, '..');
  const out = join(WWW, 'pkg-prof');
  const wasm = join(root, 'target/wasm32-unknown-unknown/release/meterflow.wasm');
  if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run \`make build\` first`);
  const run = (cmd, argv) => execFileSync(cmd, argv, { stdio: 'inherit', cwd: root });
  run('wasm-bindgen', ['--target', 'web', '--out-dir', out, wasm]);
  const flags = execFileSync('make', ['-s', '--no-print-directory', '-f', 'Makefile', '-f', '-', 'print-wasm-opt-flags'], {
    cwd: root,
    input: 'print-wasm-opt-flags:\n\t@echo $(WASM_OPT_FLAGS)\n',
  }).toString().trim().split(/\s+/);
  const keep = opt('--no-inline');
  const split = keep ? [`--no-inline=${keep}`] : [];
  run(join(WWW, 'node_modules/.bin/wasm-opt'), [...split, ...flags, '-g', join(out, 'meterflow_bg.wasm'), '-o', join(out, 'meterflow_bg.wasm')]);
  console.log(`built ${out}`);
  process.exit(0);
}

const meters = Number(opt('--meters', '5000'));
const ticks = Number(opt('--ticks', '300'));
const ingest = args.includes('--ingest');
const joinMode = args.includes('--join');
const maxMeters = Number(opt('--max-meters', '50000'));
const repeat = Number(opt('--repeat', '3'));
const trained = !args.includes('--untrained') && !ingest;
const readings = Number(opt('--readings', '1000000'));
const batch = Number(opt('--batch', '10000'));
const pkg = opt('--pkg', 'pkg-prof');
const interval = Number(opt('--interval', '50'));
const top = Number(opt('--top', '30'));
const profileFile = opt('--profile');
const jsFlags = opt('--js-flags');
if (!existsSync(join(WWW, pkg, 'meterflow_bg.wasm'))) {
  throw new Error(`www/${pkg} is missing: run \`make build\`, then \`node www/bench/profile-tick.mjs --build\``);
}

const server = await startServer();
const browser = await launchChromium(jsFlags ? [`--js-flags=${jsFlags}`] : []);
let failed = false;
try {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${server.url}bench-profile.html`);

  // Playwright opens CDP sessions on pages only; the worker's is reached
  // through the page's, non-flattened (Target.sendMessageToTarget).
  const cdp = await page.context().newCDPSession(page);
  let workerSession;
  const attached = new Promise((resolve) => {
    cdp.on('Target.attachedToTarget', (e) => {
      if (e.targetInfo.type === 'worker') {
        workerSession = e.sessionId;
        resolve();
      }
    });
  });
  let nextId = 1;
  const pending = new Map();
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    if (e.sessionId !== workerSession) return;
    const msg = JSON.parse(e.message);
    const p = msg.id !== undefined && pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
    else p.resolve(msg.result);
  });
  const inWorker = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject, method });
      cdp
        .send('Target.sendMessageToTarget', { sessionId: workerSession, message: JSON.stringify({ id, method, params }) })
        .catch(reject);
    });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });

  const ask = (msg) =>
    page.evaluate(
      (m) =>
        new Promise((resolve, reject) => {
          window.profileWorker ??= new Worker('/bench/profile-tick-worker.js', { type: 'module' });
          window.profileWorker.onmessage = (e) => (e.data.error ? reject(new Error(e.data.error)) : resolve(e.data));
          window.profileWorker.onerror = (e) => reject(new Error(`worker failed: ${e.message}`));
          window.profileWorker.postMessage(m);
        }),
      msg,
    );
  const setupStart = Date.now();
  const ready = joinMode ? ask({ join: 200, maxMeters, repeat: 20, pkg }) : ask({ pkg, meters, baseline: 7200, trained });
  await attached;
  await ready;
  const setupSeconds = (Date.now() - setupStart) / 1000;

  if (joinMode) {
    for (const [what, times] of [['fresh memory', 1], ['reused memory', repeat]]) {
      await inWorker('Profiler.enable');
      await inWorker('Profiler.setSamplingInterval', { interval });
      await inWorker('Profiler.start');
      const { joinMs } = await ask({ join: meters, maxMeters, repeat: times, pkg });
      const { profile } = await inWorker('Profiler.stop');
      if (profileFile) writeFileSync(profileFile.replace(/(\.cpuprofile)?$/, `-${times === 1 ? 'fresh' : 'reused'}$1`), JSON.stringify(profile));
      console.log(`join of ${meters} meters (maxMeters ${maxMeters}), ${what}: engine.handle ${joinMs.map((x) => x.toFixed(1)).join(', ')} ms`);
      report(profile, { focus: 'handle', units: times, unit: 'join', setupSeconds, join: true });
      console.log();
    }
  } else if (ingest) {
    // The frames, built in the page before the profile starts; a first
    // quarter of them (copies) posted unprofiled so the code has tiered up.
    await page.evaluate(
      async ({ meters, readings, batch }) => {
        const { encodeReadingsFrame } = await import('/frames.js');
        let seed = 9;
        const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
        const ts = Date.now() - 1000;
        window.ingestFrames = Array.from({ length: Math.ceil(readings / batch) }, (_, f) => {
          const keys = Uint32Array.from({ length: batch }, (_, i) => (f * batch + i) % meters);
          const values = Float64Array.from(keys, (k) => Math.round((50 + (k % 100) + (rand() - 0.5) * 4) * 1000) / 1000);
          return encodeReadingsFrame({ keys, ts, values });
        });
        window.postIngest = (frames, firstId) =>
          new Promise((resolve, reject) => {
            let left = frames.length;
            let handleMs = 0;
            window.profileWorker.onmessage = (e) => {
              if (e.data.error) return reject(new Error(e.data.error));
              handleMs += e.data.ms;
              if (--left === 0) resolve({ wallMs: performance.now() - t0, handleMs });
            };
            const t0 = performance.now();
            frames.forEach((data, i) => window.profileWorker.postMessage({ type: 'readings', id: firstId + i, data }, [data]));
          });
      },
      { meters, readings, batch },
    );
    const post = (warm) =>
      page.evaluate(
        ([warm]) => {
          const all = window.ingestFrames;
          return window.postIngest(warm ? all.slice(0, Math.ceil(all.length / 4)).map((b) => b.slice(0)) : all, warm ? 1 : 1_000_000);
        },
        [warm],
      );
    await post(true);
    await inWorker('Profiler.enable');
    await inWorker('Profiler.setSamplingInterval', { interval });
    await inWorker('Profiler.start');
    const burst = await post(false);
    const { profile } = await inWorker('Profiler.stop');
    if (profileFile) writeFileSync(profileFile, JSON.stringify(profile));
    report(profile, { focus: 'handle', units: readings / 1e6, unit: 'M readings', setupSeconds, burst });
  } else {
    // A few ticks unprofiled first, so the wasm code has tiered up.
    await ask({ ticks: 20 });
    await inWorker('Profiler.enable');
    await inWorker('Profiler.setSamplingInterval', { interval });
    await inWorker('Profiler.start');
    const { tickMs } = await ask({ ticks });
    const { profile } = await inWorker('Profiler.stop');
    if (profileFile) writeFileSync(profileFile, JSON.stringify(profile));
    report(profile, { focus: 'tick', units: ticks, unit: 'tick', setupSeconds, tickMs });
  }
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
  server.stop();
}
process.exit(failed ? 1 : 0);

/** A function's name without Rust's hash suffix and V8's `$` prefix. */
function nameOf(frame) {
  const raw = frame.functionName || `(anonymous ${frame.url.split('/').pop()}:${frame.lineNumber})`;
  return raw.replace(/^\$/, '').replace(/::h[0-9a-f]{16}$/, '');
}

function report(profile, { focus, units, unit, setupSeconds, tickMs, burst, join }) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample i lasts until sample i + 1 (timeDeltas[i + 1]); the last one gets the interval.
  const weight = (i) => (i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : interval) / 1000;
  // A sample is in the tick phase when the JS wrapper `tick` of meterflow.js is on its stack.
  const isTickWrapper = (n) => n.callFrame.functionName === 'tick' && n.callFrame.url.endsWith('meterflow.js');
  const isHandleWrapper = (n) => n.callFrame.functionName === 'handle' && n.callFrame.url.endsWith('meterflow.js');
  const phaseOf = new Map();
  const phase = (id) => {
    if (phaseOf.has(id)) return phaseOf.get(id);
    const n = byId.get(id);
    const p = isTickWrapper(n) ? 'tick' : isHandleWrapper(n) ? 'handle' : parent.has(id) ? phase(parent.get(id)) : 'other';
    phaseOf.set(id, p);
    return p;
  };
  const phases = { tick: 0, handle: 0, other: 0 };
  const self = new Map();
  const inclusive = new Map();
  let otherNames = new Map();
  profile.samples.forEach((id, i) => {
    const w = weight(i);
    const p = phase(id);
    phases[p] += w;
    const leaf = nameOf(byId.get(id).callFrame);
    if (p === 'other') otherNames.set(leaf, (otherNames.get(leaf) ?? 0) + w);
    if (p !== focus) return;
    self.set(leaf, (self.get(leaf) ?? 0) + w);
    // Inclusive: every distinct function on the stack, up to the wrapper.
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const n = byId.get(at);
      const name = nameOf(n.callFrame);
      if (!seen.has(name)) {
        seen.add(name);
        inclusive.set(name, (inclusive.get(name) ?? 0) + w);
      }
      if (isTickWrapper(n) || isHandleWrapper(n)) break;
    }
  });
  const total = phases[focus];
  const pct = (x) => ((100 * x) / total).toFixed(1).padStart(5);
  const ms = (x) => (x / units).toFixed(4);
  if (focus === 'tick') {
    const sorted = [...tickMs].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)];
    console.log(`tick profile: ${meters} meters, ${trained ? 'trained' : 'untrained'}, ${units} ticks, pkg www/${pkg}, sampling ${interval} µs, setup ${setupSeconds.toFixed(1)} s`);
    console.log(`tick wall time (performance.now around engine.tick): median ${med.toFixed(3)} ms, min ${sorted[0].toFixed(3)}, max ${sorted.at(-1).toFixed(3)}`);
  } else if (!join) {
    const rate = (t) => `${(readings / (t / 1000) / 1e6).toFixed(2)} M/s`;
    console.log(`ingest profile: ${readings} readings over ${meters} meters in frames of ${batch}, pkg www/${pkg}, sampling ${interval} µs, setup ${setupSeconds.toFixed(1)} s`);
    console.log(`first post → last ack ${burst.wallMs.toFixed(1)} ms (${rate(burst.wallMs)}); inside engine.handle ${burst.handleMs.toFixed(1)} ms (${rate(burst.handleMs)})`);
  }
  console.log(`sampled ms: tick ${phases.tick.toFixed(1)}, frame handle ${phases.handle.toFixed(1)}, other ${phases.other.toFixed(1)} (ms a ${unit}: ${ms(total)})`);
  const topOther = [...otherNames].sort((a, b) => b[1] - a[1]).slice(0, 5);
  console.log(`  other: ${topOther.map(([n, w]) => `${n} ${w.toFixed(1)}`).join(', ')}`);
  console.log();
  console.log(`top ${top} by self time in the ${focus} (% of its samples, ms a ${unit}):`);
  for (const [name, w] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(w)} %  ${ms(w)}  ${name}`);
  }
  console.log();
  console.log(`top ${top} by inclusive time in the ${focus}:`);
  for (const [name, w] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(w)} %  ${ms(w)}  ${name}`);
  }
}
