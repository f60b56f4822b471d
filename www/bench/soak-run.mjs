#!/usr/bin/env node
// Runs the paced live load (www/bench/paced.html), the soak
// (www/bench/soak.html) and the worker pool (www/bench/soak-pool.html; needs
// `make dash` for www/build/client) in one headless Chromium against the
// shipped worker, prints the results as JSON and writes them to
// benches/results/ (paced-DATE.json, soak-DATE.json, soak-pool-DATE.json);
// `node scripts/soak-table.mjs` turns them into the README's lines.
//
//   node www/bench/soak-run.mjs                     paced 120 s + soak 60 simulated minutes
//   --only paced|soak|pool                          one of the three
//   --workers 1,2,4 --pool-smoke                    the pool run (smoke: 5,000 meters, 200,000 readings)
//   --pool-phases throughput                        only these of alerts,totals,partition,throughput
//                                                   (A/B runs of two builds' readings/s)
//   --seconds N --catchup-sec N --flush-ms N        the paced run (defaults 120 / 60 / the worker's 250)
//   --minutes N --sample-sec N --warmup-min N       the soak (defaults 60 / 60 / 5)
//   --churn N                                       the soak adds N new meters per simulated minute
//   --meters N --hz N                               both (defaults 5,000 / 2)
//   --check                                         the bound check `make test` runs: a 2-minute soak
//                                                   sampled every 10 simulated s, warm-up 1 minute
//   --json FILE                                     write the soak's (or the only run's) JSON to FILE
//
// Needs www/pkg (`make build`). Exits non-zero if a run failed, including a
// soak whose memory grew past its margins after warm-up. Asserts no timing.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, requirePackage, startServer, WWW } from '../tests/harness.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const check = args.includes('--check');
const only = opt('--only', check ? 'soak' : undefined);
const day = new Date().toISOString().slice(0, 10);
const results = join(WWW, '..', 'benches', 'results');

const paced = new URLSearchParams({
  meters: opt('--meters', '5000'),
  hz: opt('--hz', '2'),
  seconds: opt('--seconds', '120'),
  catchupSec: opt('--catchup-sec', '60'),
});
if (opt('--flush-ms')) paced.set('flushMs', opt('--flush-ms'));
const soak = new URLSearchParams({
  meters: opt('--meters', '5000'),
  hz: opt('--hz', '2'),
  minutes: opt('--minutes', check ? '2' : '60'),
  sampleSec: opt('--sample-sec', check ? '10' : '60'),
  warmupMin: opt('--warmup-min', check ? '1' : '5'),
  churn: opt('--churn', '0'),
});

const pool = new URLSearchParams({ workers: opt('--workers', '1,2,4') });
if (opt('--meters')) pool.set('meters', opt('--meters'));
if (args.includes('--pool-smoke')) pool.set('smoke', '1');
if (opt('--pool-phases')) pool.set('phases', opt('--pool-phases'));

requirePackage();
const server = await startServer();
// harness.mjs's flags, plus eager memory measurement: without it
// measureUserAgentSpecificMemory waits for a garbage collection (up to 20 s).
const profile = await mkdtemp(join(tmpdir(), 'meterflow-soak-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-sync', '--disable-quic', '--enable-blink-features=ForceEagerMeasureMemory'],
});
let failed = false;

async function runPage(path, key) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  const loadBefore = loadavg();
  await page.goto(`${server.url}${path}`);
  await page.waitForFunction(() => window.benchResult?.done, null, { timeout: 120 * 60_000, polling: 500 });
  const result = await page.evaluate(() => window.benchResult);
  await page.close();
  const report = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavgBefore: loadBefore, loadavgAfter: loadavg() },
    env: result.env,
    [key]: result[key],
  };
  const why = [result.error, ...(result[key]?.failures ?? []), ...problems].filter(Boolean);
  if (why.length) {
    console.error(`${path}: ${why.join('; ')}`);
    failed = true;
    report.failures = why;
  }
  return report;
}

try {
  const out = {};
  if (!only || only === 'paced') out.paced = await runPage(`bench/paced.html?${paced}`, 'paced');
  if (!only || only === 'soak') out.soak = await runPage(`bench/soak.html?${soak}`, 'soak');
  if (!only || only === 'pool') out.pool = await runPage(`bench/soak-pool.html?${pool}`, 'pool');
  console.log(JSON.stringify(out, null, 2));
  const json = opt('--json');
  for (const [key, report] of Object.entries(out)) {
    if (report.failures && !json) continue;
    const name = key === 'pool' ? 'soak-pool' : key;
    const file = json && (only || key === 'soak') ? json : join(results, `${name}-${day}.json`);
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, JSON.stringify(report, null, 2) + '\n');
    console.error(`written: ${file}`);
  }
} finally {
  await context.close().catch(() => {});
  await rm(profile, { recursive: true, force: true });
  server.stop();
}
process.exit(failed ? 1 : 0);
