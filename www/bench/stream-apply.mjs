#!/usr/bin/env node
// Apply time of a 1,000-entity `meters.<group>` delta in the browser worker
// (issue 7 target: ≤ 0.2 ms). Starts the release meterflow-feed with 1,000
// meters in one group (so each delta of `meters.north` carries every meter that
// read in that tick, about 1,000), serving www/ so the page, the shipped worker
// (www/worker.js + www/pkg) and the feed share one origin; runs
// www/bench/stream-apply.html in Debian's headless Chromium (it captures real
// deltas from the server, then replays them into fresh workers) and writes the
// worker's own `stats.deltaApplyMs` per pass, with the machine's load; each
// pass also replays the same deltas as binary kind-4 frames (PROTOCOL.md 3.10,
// captured from a socket that asked `binary_deltas`; `--no-binary` skips it).
//
//   node www/bench/stream-apply.mjs                   1,000 meters, 300 deltas, 3 passes
//   node www/bench/stream-apply.mjs --smoke           100 meters, 20 deltas, 1 pass, no file unless --json
//   --meters N --deltas N --passes N --json FILE
//
// Needs www/pkg (`make build`) and target/release/meterflow-feed (`make feed-bin`).
// Default output: benches/results/stream-apply-YYYY-MM-DD.json.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { launchChromium, requirePackage, WWW } from '../tests/harness.mjs';
import { benchPageResult } from './bench-page.mjs';
import { ROOT, startFeed, round } from './stream-common.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const smoke = args.includes('--smoke');
const meters = Number(opt('--meters', smoke ? 100 : 1_000));
const deltas = Number(opt('--deltas', smoke ? 20 : 300));
const passes = Number(opt('--passes', smoke ? 1 : 3));
const binary = !args.includes('--no-binary');
const date = new Date().toISOString().slice(0, 10);
const jsonOut = opt('--json', smoke ? null : join(ROOT, 'benches', 'results', `stream-apply-${date}.json`));

requirePackage();
// 20× so the capture takes seconds, started an hour back so every reading's
// timestamp stays in the worker's past (no `clock_ahead`).
const feed = await startFeed(['--meters', String(meters), '--groups', '1', '--seed', '1', '--speed', '20',
  '--start-ms', String(Date.now() - 3_600_000), '--www', WWW]);
const browser = await launchChromium();
let failed = false;
try {
  const load1Before = os.loadavg()[0];
  const url = `${feed.url}/bench/stream-apply.html?channel=meters.north&deltas=${deltas}&passes=${passes}&binary=${binary ? 1 : 0}`;
  const r = await benchPageResult(browser, url, {
    timeoutMs: smoke ? 60_000 : 5 * 60_000,
    onTimeout: async (page) =>
      `the page was at: ${await page.evaluate(() => window.benchStep)}; seen ${await page.evaluate(() => JSON.stringify(window.benchSeen?.slice(0, 14)))}`,
  });
  const workerErrors = [...r.runs, ...r.binaryRuns].flatMap((x) => x.errors);
  if (workerErrors.length) {
    failed = true;
    console.error(`worker errors: ${JSON.stringify(workerErrors.slice(0, 3))}`);
  }
  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch { /* not a checkout */ }
  const doc = {
    kind: 'stream-apply',
    date: new Date().toISOString(),
    commit,
    command: `node www/bench/stream-apply.mjs${smoke ? ' --smoke' : ''} --meters ${meters} --deltas ${deltas} --passes ${passes}`,
    what: 'one meters.<group> DELTA (real, from meterflow-feed) posted as a socket message to www/worker.js; the worker\'s own stats.deltaApplyMs (decode, check, apply)',
    target: { entities: 1_000, p50Ms: 0.2 },
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? null, load1Before: round(load1Before),
      load1After: round(os.loadavg()[0]), userAgent: r.userAgent },
    meters,
    channel: r.channel,
    deltas: r.deltas,
    entitiesPerDelta: r.entitiesPerDelta,
    bytesPerDelta: r.bytesPerDelta,
    passes: r.runs.map((x) => ({ ...x.deltaApplyMs, batchMs: round(x.batchMs), batchMsPerDelta: round(x.batchMsPerDelta), errors: x.errors.length })),
    binaryBytesPerDelta: r.binaryBytesPerDelta,
    binaryPasses: r.binaryRuns.map((x) => ({ ...x.deltaApplyMs, batchMs: round(x.batchMs), batchMsPerDelta: round(x.batchMsPerDelta), errors: x.errors.length })),
  };
  for (const [i, p] of doc.passes.entries()) {
    console.log(`pass ${i + 1}: ${p.samples} deltas of ${round(r.entitiesPerDelta.mean)} entities: ` +
      `p50 ${round(p.p50)} ms, p95 ${round(p.p95)} ms, p99 ${round(p.p99)} ms, max ${round(p.max)} ms; ` +
      `the batch, page-timed: ${p.batchMsPerDelta} ms a delta`);
  }
  for (const [i, p] of doc.binaryPasses.entries()) {
    console.log(`binary pass ${i + 1}: ${p.samples} kind-4 deltas: ` +
      `p50 ${round(p.p50)} ms, p95 ${round(p.p95)} ms, p99 ${round(p.p99)} ms, max ${round(p.max)} ms; ` +
      `the batch, page-timed: ${p.batchMsPerDelta} ms a delta`);
  }
  if (jsonOut) {
    mkdirSync(dirname(jsonOut), { recursive: true });
    writeFileSync(jsonOut, JSON.stringify(doc, null, 2) + '\n');
    console.log(`wrote ${jsonOut}`);
  }
} finally {
  await browser.close();
  await feed.stop();
}
if (failed) process.exit(1);
