#!/usr/bin/env node
// Regenerates the README's paced-latency and soak lines from the newest results
// in benches/results/ (paced-YYYY-MM-DD.json, paced-YYYY-MM-DD-flushN.json
// variants of the same day, soak-YYYY-MM-DD.json, soak-pool-YYYY-MM-DD.json, written by
// `www/bench/soak-run.mjs`), between the markers
//   <!-- bench-soak:begin --> … <!-- bench-soak:end -->
// (kept apart from scripts/bench-table.mjs, which owns the path table).
//
//   node scripts/soak-table.mjs            rewrite README.md
//   node scripts/soak-table.mjs --print    print the lines only

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeReadmeSection } from './readme-section.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'benches', 'results');
const print = process.argv.includes('--print');

const names = (await readdir(RESULTS)).sort();
const newest = (re) => names.filter((n) => re.test(n)).at(-1);
const load = async (n) => (n ? JSON.parse(await readFile(join(RESULTS, n), 'utf8')) : null);
const pacedName = newest(/^paced-\d{4}-\d{2}-\d{2}\.json$/);
const day = pacedName?.slice(6, 16);
const variants = names.filter((n) => day && n.startsWith(`paced-${day}-flush`) && n.endsWith('.json'));
const soakName = newest(/^soak-\d{4}-\d{2}-\d{2}\.json$/);
const poolName = newest(/^soak-pool-\d{4}-\d{2}-\d{2}\.json$/);
if (!pacedName && !soakName && !newest(/^soak-pool-/)) throw new Error(`no paced-*.json or soak-*.json in ${RESULTS}: run make bench-soak`);

const num = (x, d = 0) => Number(x).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const ms = (x) => (x === null || x === undefined ? '–' : `${num(x, 1)} ms`);
const mib = (b) => `${num(b / 1048576, 2)} MiB`;
const loadOf = (r) => `load ${num(r.machine.loadavgBefore[0], 1)}`;
const rows = [];

const paced = [await load(pacedName), ...(await Promise.all(variants.map(load)))].filter(Boolean);
if (paced.length) {
  const p0 = paced[0].paced;
  rows.push(
    `| paced live load: ${num(p0.meters)} meters × ${p0.hz} Hz (${num(p0.readingsPerSec)} readings/s) as binary live frames of ${num(p0.perFrame)} every ${num(p0.frameMs)} ms, a catch-up every ${p0.catchupSec} s, ${p0.seconds} s | p50 | p90 | p99 | max | target |`,
    '|---|---:|---:|---:|---:|---|',
  );
  for (const r of paced) {
    const p = r.paced;
    const flush = `\`totalsFlushMs\` ${p.totalsFlushMs}${p.totalsFlushMs === 250 ? ' (default)' : ''}`;
    const row = (label, x, target = '') => rows.push(`| ${label} | ${ms(x.p50)} | ${ms(x.p90)} | ${ms(x.p99)} | ${ms(x.max)} | ${target} |`);
    row(`frame → page \`totals\`, ${flush}, ${loadOf(r)}`, p.latencyMs, 'p99 ≤ 16 ms');
    row(`&nbsp;&nbsp;of which post → \`ack\` (queue + worker), ${flush}`, p.postToAckMs);
    row(`&nbsp;&nbsp;of which the worker's handling (\`ack.ms\`), ${flush}`, p.workerHandleMs);
    row(`&nbsp;&nbsp;of which \`ack\` → \`totals\` (waiting for the flush), ${flush}`, p.ackToShownMs);
  }
  rows.push('');
  rows.push(
    paced
      .map((r) => {
        const l = r.paced.longTasks;
        const c = l.byCause ?? {};
        const part = (k) => `${c[k]?.count ?? '?'} ${k}${c[k]?.count ? ` (max ${num(c[k].maxMs)} ms)` : ''}`;
        return `${r.paced.totalsFlushMs} ms flush: ${l.count} main-thread long tasks (${part('worker message')}, ${part('load generator')}, ${part('other')}), totals ${r.paced.totalsExact ? 'exact' : 'NOT exact'}`;
      })
      .join('; ') + '.',
  );
}
const soak = await load(soakName);
if (soak) {
  const s = soak.soak;
  const last = s.samples.at(-1);
  const g = s.growthAfterWarmup;
  if (rows.length) rows.push('');
  rows.push(
    `| soak: ${s.minutes} simulated minutes, ${num(s.meters)} meters × ${s.hz} Hz (${num(s.readings)} live readings, catch-up every simulated minute), sampled every ${s.sampleSec} simulated s (${loadOf(soak)}) | at the end | growth after ${s.warmupMin} min warm-up | margin |`,
    '|---|---:|---:|---:|',
    `| wasm linear memory | ${mib(last.linearBytes)} | ${num(g.linearBytes)} B | ${mib(s.margins.linearBytes)} |`,
    `| worker JS memory (\`measureUserAgentSpecificMemory\`) | ${mib(last.workerJsBytes)} | ${num(g.workerJsBytes)} B | ${mib(s.margins.workerJsBytes)} |`,
    `| the engine's own estimate (\`stats.engineBytes\`) | ${mib(last.engineBytes)} | ${num(g.engineBytes)} B | ${s.margins.engineBytes === undefined ? 'none (run before 2026-12-04)' : mib(s.margins.engineBytes)} |`,
    '',
    `${num(s.readingsPerSec / 1e6, 2)} M live readings/s through \`postMessage\` (one simulated second acknowledged before the next); final totals ${s.totalsExact ? 'exact' : 'NOT exact'}.`,
  );
}
const pool = await load(poolName);
if (pool) {
  const p = pool.pool;
  const mps = (x) => `${num(x / 1e6, 2)} M/s`;
  if (rows.length) rows.push('');
  rows.push(
    `| worker pool (\`www/client/pool.ts\`): ${num(p.readings)} readings over ${num(p.meters)} meters, batches of ${num(p.batch)}, window 300, ${p.cores} cores (${loadOf(pool)}) | binary kind-1 | page time in \`readings\` (split + post) | JSON text | page time in \`readings\` (split + post) |`,
    '|---|---:|---:|---:|---:|',
  );
  for (const r of p.runs) {
    const t = r.throughput;
    rows.push(`| ${r.workers} worker${r.workers > 1 ? 's' : ''} | ${mps(t.binary.readingsPerSec)} | ${num(t.binary.pageSplitMs)} ms | ${mps(t.json.readingsPerSec)} | ${num(t.json.pageSplitMs)} ms |`);
  }
  rows.push('');
  rows.push(
    `With ${p.runs.map((r) => r.workers).join(', ')} workers: ${p.alertEvents} identical alert events (${Object.entries(p.runs[0].alerts.kinds ?? {}).map(([k, c]) => `${c} ${k}`).join(', ')}), merged totals ${p.runs.every((r) => r.totals.exactAfterLastCatchup && r.totals.exactBeforeLastCatchup) ? 'exact' : 'NOT exact'} (${num(p.runs[0].totals.readings)} live readings).`,
  );
}
const block = rows.join('\n');
if (print) {
  console.log(block);
} else {
  await writeReadmeSection('bench-soak', block);
  console.error('README.md: soak lines regenerated');
}
