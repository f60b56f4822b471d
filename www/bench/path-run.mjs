#!/usr/bin/env node
// Runs the path benchmark (www/bench-path.html: postMessage to a real worker,
// meterflow against a careful JS worker) and the engine benchmark
// (www/bench.html: tick time and linear memory per meter) in one headless
// Chromium, adds the `.wasm` size and the machine's load, prints the result as
// JSON and writes it to benches/results/ (the README table is generated from
// there by scripts/bench-table.mjs).
//
//   node www/bench/path-run.mjs                   4 M readings × 5 passes, ticks at 5,000 / 20,000 / 50,000
//   node www/bench/path-run.mjs --smoke           small and quick: proves it runs
//   node www/bench/path-run.mjs --json FILE       write the JSON to FILE instead
//   --meters N --readings N --batch N --passes N  the path workload (defaults 5,000 / 4 M / 10,000 / 5)
//   --held-acks N                                 `maxHeldAcks` for both arms (0: every ack at once)
//   --large-meters N                              the path workload again over N meters (50,000; 0: not)
//   --sizes 5000,20000,50000                      the engine page's sizes
//
// Needs www/pkg (`make build`). Asserts nothing about speed; exits non-zero only
// if a run failed (or the arms' window moments disagree).

import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { launchChromium, requirePackage, startServer, WWW } from '../tests/harness.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const smoke = args.includes('--smoke');
// Page parameters passed through (meters, readings, batch, passes, heldAcks).
const pageParams = ['meters', 'readings', 'batch', 'passes', 'held-acks']
  .filter((k) => opt(`--${k}`))
  .map((k) => `${k.replace(/-(.)/g, (_, c) => c.toUpperCase())}=${opt(`--${k}`)}`);
if (smoke) pageParams.push('smoke=1');
const sizes = opt('--sizes') ?? (smoke ? '5000' : '5000,20000,50000');
// The same path workload over many meters, in a browser of its own: each
// arm's rings are then ~500 MB, so every push misses the caches and the TLB.
const largeMeters = Number(opt('--large-meters') ?? (smoke ? 0 : 50_000));
const largeParams = [...pageParams.filter((p) => !p.startsWith('meters=')), `meters=${largeMeters}`, 'detection=0'];
const day = new Date().toISOString().slice(0, 10);
const jsonFile = opt('--json') ?? join(WWW, '..', 'benches', 'results', `browser-${smoke ? 'smoke-' : ''}${day}.json`);

requirePackage();
const wasm = await readFile(join(WWW, 'pkg', 'meterflow_bg.wasm'));
// The module's cold part (scripts/split-wasm.mjs), loaded after `ready`.
const cold = await readFile(join(WWW, 'pkg', 'meterflow_bg_cold.wasm'));
const server = await startServer();
let browser = await launchChromium();
let failed = false;

async function runPage(url) {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => window.benchResult?.done, null, { timeout: 30 * 60_000, polling: 500 });
  const result = await page.evaluate(() => window.benchResult);
  await page.close();
  if (result.error || problems.length) {
    console.error(`${url}: ${[result.error, ...problems].filter(Boolean).join('; ')}`);
    failed = true;
  }
  return result;
}

try {
  const loadBefore = loadavg();
  const path = await runPage(`${server.url}bench-path.html?${pageParams.join('&')}`);
  let large;
  if (largeMeters > 0) {
    await browser.close();
    browser = await launchChromium();
    large = await runPage(`${server.url}bench-path.html?${largeParams.join('&')}`);
  }
  // The engine page in a browser of its own: after the path arms
  // workers (4 M readings each pass) the same browser's 50,000-meter tick
  // read 2.3-3.4 ms where a fresh one reads 2.0-2.2 on the same build
  // (docs/PERFORMANCE.md, 2026-12-05 night); a dashboard's worker does not
  // start after forty others.
  await browser.close();
  browser = await launchChromium();
  const engine = await runPage(`${server.url}bench.html?sizes=${sizes}${smoke ? '&smoke=1' : ''}`);
  const report = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavgBefore: loadBefore, loadavgAfter: loadavg() },
    env: path.env,
    wasm: {
      rawBytes: wasm.length,
      gzipBytes: gzipSync(wasm, { level: 9 }).length,
      coldRawBytes: cold.length,
      coldGzipBytes: gzipSync(cold, { level: 9 }).length,
    },
    path: path.path,
    ...(large ? { pathLarge: large.path } : {}),
    engine: (engine.results ?? []).map((r) => ({
      meters: r.meters,
      window: r.window,
      baselineReadings: r.baselineReadings,
      tick: r.tick,
      tickUntrained: r.tickUntrained,
      linearBytesPerMeter: r.memory.linearBytesPerMeter,
      engineBytesPerMeter: r.memory.engineBytesPerMeter,
      directBinaryReadingsPerSec: r.binary.readingsPerSec,
      directJsonReadingsPerSec: r.json.readingsPerSec,
    })),
  };
  console.log(JSON.stringify(report, null, 2));
  if (!failed) {
    await mkdir(join(jsonFile, '..'), { recursive: true });
    await writeFile(jsonFile, JSON.stringify(report, null, 2) + '\n');
    console.error(`written: ${jsonFile}`);
  }
} finally {
  await browser.close();
  server.stop();
}
process.exit(failed ? 1 : 0);
