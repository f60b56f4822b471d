#!/usr/bin/env node
// Regenerates the README's "Stream" table (issue 7 targets) from the newest
// results in benches/results/, between the markers
//   <!-- bench-stream:begin --> … <!-- bench-stream:end -->
// Sources (each optional: a missing one shows "not measured"):
//   stream-feed-DATE.json     snapshot-v2 serve time (www/bench/stream-feed.mjs)
//   stream-apply-DATE.json    delta apply in the browser worker (www/bench/stream-apply.mjs)
//   stream-latency-*.json     delta receipt → page update (the stream-core latency run)
//
//   node scripts/stream-table.mjs            rewrite README.md
//   node scripts/stream-table.mjs --print    print the table only
// `make bench-stream` measures, then runs this.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeReadmeSection } from './readme-section.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'benches', 'results');
const print = process.argv.includes('--print');

/** The newest file matching `re` (names sort by date), parsed, or null. */
async function newest(re) {
  const names = (await readdir(RESULTS)).filter((n) => re.test(n)).sort();
  if (!names.length) return null;
  const name = names[names.length - 1];
  return { name, doc: JSON.parse(await readFile(join(RESULTS, name), 'utf8')) };
}

const num = (x, d = 0) => Number(x).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const ms = (x) => (x === undefined || x === null ? '–' : `${num(x, x < 1 ? 3 : 1)} ms`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = (x) => (x === undefined || x === null ? '?' : num(x, 1));
const NOT = 'not measured';

const rows = [
  '| target (issue 7) | measured | p50 | p95 | p99 | load (1 min) | source |',
  '|---|---|---:|---:|---:|---:|---|',
];

const feed = await newest(/^stream-feed-\d{4}-\d{2}-\d{2}\.json$/);
const snapRow = (label, pick) => {
  const r = feed?.doc.results.find(pick);
  if (!r) return rows.push(`| ${label} | ${NOT} | | | | | |`);
  const kept = r.snapshotCache ? `, kept body served ${num(r.snapshotCache.hit)}×, encoded ${num(r.snapshotCache.miss)}×` : '';
  rows.push(`| ${label} | ${num(r.requests)} GETs, ${r.bodyBytes < 10_240 ? `${num(r.bodyBytes)} B` : `${num(r.bodyBytes / 1024, 0)} KB`} body${kept}, max ${ms(r.maxMs)} | ${ms(r.p50Ms)} | ${ms(r.p95Ms)} | ${ms(r.p99Ms)} | ${load(r.load1Before)} → ${load(r.load1After)} | \`${feed.name}\` |`);
};
const slow = (r) => (r.speed ?? 1) === 1;
snapRow('snapshot-v2 served, 5,000 meters in one group (worst case), ≤ 20 ms p99', (r) => slow(r) && r.meters === 5_000 && r.groups === 1 && r.channel.startsWith('meters.'));
snapRow('the same, server at 10× (the channel moves every 50 ms: more encodes)', (r) => r.speed === 10 && r.meters === 5_000 && r.channel.startsWith('meters.'));
snapRow('snapshot-v2 served, 5,000 meters, one of 8 groups', (r) => slow(r) && r.meters === 5_000 && r.groups === 8 && r.channel.startsWith('meters.'));
snapRow('snapshot-v2 served, 50,000 meters, one of 8 groups (≈ 6,250)', (r) => r.meters === 50_000 && r.channel.startsWith('meters.'));
snapRow('`totals` snapshot (= catch-up) served, 5,000 meters', (r) => r.meters === 5_000 && r.channel === 'totals');
snapRow('`totals` snapshot (= catch-up) served, 50,000 meters', (r) => r.meters === 50_000 && r.channel === 'totals');

const apply = await newest(/^stream-apply-\d{4}-\d{2}-\d{2}\.json$/);
if (apply) {
  const a = apply.doc;
  const pick = (k) => median(a.passes.map((p) => p[k]));
  rows.push(`| apply of a ${num(a.entitiesPerDelta.mean)}-entity \`meters.<group>\` delta in the browser worker, ≤ 0.2 ms | worker's \`stats.deltaApplyMs\`, ${a.passes.length} passes × ${num(a.deltas)} real deltas (median of passes); page-timed batch: ${ms(pick('batchMsPerDelta'))} a delta | ${ms(pick('p50'))} | ${ms(pick('p95'))} | ${ms(pick('p99'))} | ${load(a.machine.load1Before)} → ${load(a.machine.load1After)} | \`${apply.name}\` |`);
  if (Array.isArray(a.binaryPasses) && a.binaryPasses.length) {
    const pickB = (k) => median(a.binaryPasses.map((p) => p[k]));
    const bytes = a.binaryBytesPerDelta?.max ?? a.binaryBytesPerDelta;
    const size = Number.isFinite(bytes) ? `, ${num(bytes / 1024, 0)} KB a delta (text: ${num((a.bytesPerDelta?.max ?? a.bytesPerDelta) / 1024, 0)} KB)` : '';
    rows.push(`| the same deltas as binary kind-4 frames (PROTOCOL.md 3.10, \`binaryDeltas\`) | ${a.binaryPasses.length} passes${size}; page-timed batch: ${ms(pickB('batchMsPerDelta'))} a delta | ${ms(pickB('p50'))} | ${ms(pickB('p95'))} | ${ms(pickB('p99'))} | ${load(a.machine.load1Before)} → ${load(a.machine.load1After)} | \`${apply.name}\` |`);
  }
} else {
  rows.push(`| apply of a 1,000-entity \`meters.<group>\` delta in the browser worker, ≤ 0.2 ms | ${NOT} | | | | | |`);
}

// The latency run's shape is its owner's: take the first object with p50/p95/p99
// under `deliveryLatencyMs`, `latency` or `results[]`, with its flush setting.
const latency = await newest(/^stream-latency-.*\.json$/);
const latencyCases = [];
if (latency) {
  const d = latency.doc;
  const cases = Array.isArray(d) ? d : Array.isArray(d.results) ? d.results : Array.isArray(d.runs) ? d.runs : [d];
  for (const c of cases) {
    const l = c.deliveryLatencyMs ?? c.latency ?? c;
    if (l && l.p95 !== undefined) latencyCases.push({ c, l });
  }
}
if (latencyCases.length) {
  for (const { c, l } of latencyCases) {
    const flush = c.deltaFlushMs ?? c.config?.deltaFlushMs;
    const setting = [c.meters && `${num(c.meters)} meters`, flush !== undefined && `deltaFlushMs ${flush}`,
      c.totalsFlushMs !== undefined && `totalsFlushMs ${c.totalsFlushMs}`].filter(Boolean).join(', ');
    const l1 = c.loadavg?.before?.[0] ?? c.load1Before ?? c.machine?.load1Before ?? latency.doc.machine?.load1Before ?? latency.doc.machine?.loadavg?.[0];
    rows.push(`| delta receipt → page update, 5,000 meters × 2 Hz, p95 ≤ 50 ms | ${setting || 'see source'}${l.samples ? `, ${num(l.samples)} samples` : ''} | ${ms(l.p50)} | ${ms(l.p95)} | ${ms(l.p99)} | ${load(l1)} | \`${latency.name}\` |`);
  }
} else {
  rows.push(`| delta receipt → page update, 5,000 meters × 2 Hz, p95 ≤ 50 ms | ${NOT} | | | | | |`);
}

const machine = feed?.doc.machine ?? apply?.doc.machine;
rows.push('');
rows.push(`Reproduce: \`make bench-stream\` (needs \`make build feed-bin\`; runs \`node www/bench/stream-feed.mjs\`, \`node www/bench/stream-apply.mjs\` and \`node www/tests/feed-latency.mjs\` (delivery latency at the defaults), then \`node scripts/stream-table.mjs\`).` +
  (machine ? ` Machine: ${machine.cpus} cores (${machine.model}), shared: read each figure with the load beside it.` : ''));
const table = rows.join('\n');

if (print) {
  console.log(table);
} else {
  await writeReadmeSection('bench-stream', table);
  console.log(`README.md: stream table regenerated from ${[feed?.name, apply?.name, latency?.name].filter(Boolean).join(', ') || 'nothing (not measured)'}`);
}
