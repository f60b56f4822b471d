#!/usr/bin/env node
// Runs bench/json-stages.js (where a JSON readings batch's time goes inside
// the wasm engine) in Node, or with --browser in headless Chromium
// (bench-json-stages.html), and prints ns per reading per variant with the
// machine's load. Asserts nothing about speed.
//
//   node www/bench/json-stages.mjs [--browser [--eager]] [--pkg pkg] [--reps 20] [--rounds 5] [--only a,b]
//
// --pkg names a package directory under www/ (default `pkg`, what `make build`
// writes), so an older build copied to www/pkg-old can be run alternately.

import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { launchChromium, startServer, WWW } from '../tests/harness.mjs';
import { runStages } from './json-stages.js';

const args = process.argv.slice(2);
const opt = (name, d) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : d;
};
const pkg = opt('--pkg', 'pkg');
const reps = opt('--reps', '20');
const rounds = opt('--rounds', '5');
const only = opt('--only');
const load = [loadavg()[0]];
let result;
if (args.includes('--browser')) {
  const server = await startServer();
  // --eager: every wasm function compiled by the optimising tier at start
  // (no Liftoff), so a stage is never timed while V8 still tiers it up.
  const browser = await launchChromium(args.includes('--eager') ? ['--js-flags=--no-liftoff --no-wasm-dynamic-tiering'] : []);
  try {
    const page = await browser.context.newPage();
    const q = new URLSearchParams({ pkg, reps, rounds, ...(only ? { only } : {}) });
    await page.goto(`${server.url}bench-json-stages.html?${q}`);
    await page.waitForFunction(() => window.benchResult?.done, null, { timeout: 20 * 60_000, polling: 250 });
    result = await page.evaluate(() => window.benchResult);
    result.userAgent = await page.evaluate(() => navigator.userAgent);
  } finally {
    await browser.close();
    server.stop();
  }
} else {
  const { default: init, MeterflowEngine } = await import(join(WWW, pkg, 'meterflow.js'));
  await init({ module_or_path: await readFile(join(WWW, pkg, 'meterflow_bg.wasm')) });
  result = runStages(MeterflowEngine, { reps: Number(reps), rounds: Number(rounds), only: only?.split(',') });
  result.node = process.version;
}
load.push(loadavg()[0]);
console.log(JSON.stringify({ pkg, ...result, load }));
if (result.error) process.exit(1);
