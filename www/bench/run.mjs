#!/usr/bin/env node
// Runs the in-browser benchmark (www/bench.html) in Debian's headless Chromium
// and prints the results as JSON, then as a table.
//
//   node www/bench/run.mjs                     5,000 / 20,000 / 50,000 meters
//   node www/bench/run.mjs --sizes 5000,20000  chosen sizes
//   node www/bench/run.mjs --smoke             5,000 meters, few repetitions:
//                                              proves it runs, measures little
//   node www/bench/run.mjs --json FILE         also write the JSON to FILE
//
// Needs the release package in www/pkg (`make build`). Reports figures; it
// asserts nothing about speed. Exits non-zero only if the benchmark failed to run.

import { writeFile } from 'node:fs/promises';
import { launchChromium, requirePackage, startServer } from '../tests/harness.mjs';
import { formatTable } from './table.js';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const smoke = args.includes('--smoke');
const sizes = opt('--sizes') ?? (smoke ? '5000' : '5000,20000,50000');
const jsonFile = opt('--json');

requirePackage();
const server = await startServer();
const browser = await launchChromium();
let failed = false;
try {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  await page.goto(`${server.url}bench.html?sizes=${sizes}${smoke ? '&smoke=1' : ''}`);
  // A guard against a hung page, generous for 50,000 meters on a slow machine.
  await page.waitForFunction(() => window.benchResult?.done, null, { timeout: 30 * 60_000, polling: 500 });
  const result = await page.evaluate(() => window.benchResult);
  const report = { ...result, date: new Date().toISOString(), sizes: sizes.split(',').map(Number) };
  console.log(JSON.stringify(report, null, 2));
  console.log();
  console.log(formatTable(result.results));
  console.log();
  console.log(`crossOriginIsolated: ${result.env.crossOriginIsolated} (performance.now() resolution: ${result.env.crossOriginIsolated ? '5 µs' : '100 µs'})`);
  if (jsonFile) await writeFile(jsonFile, JSON.stringify(report, null, 2) + '\n');
  if (result.error || problems.length) {
    console.error(`benchmark failed: ${[result.error, ...problems].filter(Boolean).join('; ')}`);
    failed = true;
  }
} finally {
  await browser.close();
  server.stop();
}
process.exit(failed ? 1 : 0);
