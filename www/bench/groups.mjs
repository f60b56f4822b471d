#!/usr/bin/env node
// Groups and series in the browser worker (issue 10): runs www/bench/groups.html
// (see www/bench/groups.js for what is timed and how) in headless Chromium
// against the shipped worker, prints the result as JSON and writes it to
// benches/results/groups-DATE.json, with the machine's load before and after;
// `node scripts/groups-table.mjs` turns the newest such file into the
// README's table.
//
//   node www/bench/groups.mjs                    5,000 meters, 1,000 timed frames of 1,000, 5 passes per arm
//   node www/bench/groups.mjs --smoke            small and quick: proves it runs (written to a temp file)
//   --meters N --frames N --passes N --fill-minutes N --queries N
//   --json FILE                                  write the JSON to FILE instead
//
// Needs www/pkg (`make build`). Asserts nothing about speed; exits non-zero if
// a run failed (worker error, a series answer of the wrong kind, inexact totals).

import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium, requirePackage, startServer, WWW } from '../tests/harness.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const smoke = args.includes('--smoke');
const q = new URLSearchParams();
for (const [flag, key] of [['--meters', 'meters'], ['--frames', 'frames'], ['--passes', 'passes'],
  ['--fill-minutes', 'fillMinutes'], ['--queries', 'queries']]) {
  if (opt(flag)) q.set(key, opt(flag));
}
if (smoke) q.set('smoke', '1');
const day = new Date().toISOString().slice(0, 10);
const file = opt('--json') ?? (smoke ? join(tmpdir(), `groups-smoke-${process.pid}.json`)
  : join(WWW, '..', 'benches', 'results', `groups-${day}.json`));

requirePackage();
const server = await startServer();
const browser = await launchChromium();
let failed = false;
try {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  const loadBefore = loadavg();
  await page.goto(`${server.url}bench/groups.html?${q}`);
  // Progress on stderr (the page's status line), every 10 s.
  const progress = setInterval(() => {
    page.evaluate(() => document.querySelector('#status')?.textContent).then((t) => console.error(`groups bench: ${t}`), () => {});
  }, 10_000);
  await page.waitForFunction(() => window.benchResult?.done, null, { timeout: 60 * 60_000, polling: 500 })
    .finally(() => clearInterval(progress));
  const result = await page.evaluate(() => window.benchResult);
  await page.close();
  const report = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavgBefore: loadBefore, loadavgAfter: loadavg() },
    env: result.env,
    command: `node www/bench/groups.mjs ${args.join(' ')}`.trim(),
    groups: result.groups,
  };
  const why = [result.error, ...problems].filter(Boolean);
  if (why.length) {
    console.error(`groups bench: ${why.join('; ')}`);
    report.failures = why;
    failed = true;
  }
  console.log(JSON.stringify({ ...report, groups: report.groups && { ...report.groups, runs: undefined } }, null, 2));
  if (!failed) {
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, JSON.stringify(report, null, 2) + '\n');
    console.error(`written: ${file}`);
  }
} finally {
  await browser.close();
  server.stop();
}
process.exit(failed ? 1 : 0);
