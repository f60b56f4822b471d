#!/usr/bin/env node
// Regenerates the README's browser performance table from the newest full
// benchmark result in benches/results/ (browser-YYYY-MM-DD.json, written by
// `make bench-browser`), between the markers
//   <!-- bench-browser:begin --> … <!-- bench-browser:end -->
//
//   node scripts/bench-table.mjs            rewrite README.md
//   node scripts/bench-table.mjs --print    print the table only
//   node scripts/bench-table.mjs FILE.json  from that result

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeReadmeSection } from './readme-section.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'benches', 'results');

const args = process.argv.slice(2);
const print = args.includes('--print');
let file = args.find((a) => a.endsWith('.json'));
if (!file) {
  const names = (await readdir(RESULTS)).filter((n) => /^browser-\d{4}-\d{2}-\d{2}\.json$/.test(n)).sort();
  if (!names.length) throw new Error(`no browser-*.json in ${RESULTS}: run make bench-browser`);
  file = join(RESULTS, names[names.length - 1]);
}
const r = JSON.parse(await readFile(file, 'utf8'));

const num = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const mps = (x) => `${num(x / 1e6, 2)} M/s`;
const m = (x) => num(x / 1e6, 2);
const spread = (s, f, g = f) => `${f(s.median)} (${g(s.min)}–${g(s.max)})`;
const ratio = (x) => `${num(x, 2)}×`;
const ms = (x) => `${num(x, 1)} ms`;

const p = r.path;
// The same workload over 50,000 meters (`pathLarge`), in results since 2026-12-06.
const paths = [p, r.pathLarge].filter(Boolean);
const rows = [
  paths.length > 1
    ? `| path: ${num(p.readings)} readings, batches of ${num(p.batch)}, windows full (${num(p.window)}); medians of ${p.passes} alternated passes (min–max) | meterflow | careful JS worker | ratio (meterflow / JS) | target |`
    : `| path: ${num(p.readings)} readings over ${num(p.meters)} meters, batches of ${num(p.batch)}, windows full (${num(p.window)}); medians of ${p.passes} alternated passes (min–max) | meterflow | careful JS worker | ratio (meterflow / JS) | target |`,
  '|---|---:|---:|---:|---|',
];
const targets = { binary: '≥ 2.5× and ≥ 15 M/s', json: '≥ 1.5× and ≥ 3 M/s' };
const labels = {
  binary: 'binary kind-1 frames, transferred',
  json: 'JSON text (the JS worker runs `JSON.parse` on the same text)',
};
for (const q of paths) {
  const over = paths.length > 1 ? `, ${num(q.meters)} meters` : '';
  for (const f of ['binary', 'json']) {
    const x = q.formats[f];
    if (!x) continue;
    rows.push(`| ${labels[f]}${over} | ${spread(x.meterflow, mps, m)} | ${spread(x.js, mps, m)} | ${spread(x.ratio, ratio, (v) => num(v, 2))} | ${targets[f]} |`);
  }
}
const ready = p.formats.binary?.readyMs ?? p.formats.json?.readyMs;
const allReady = (arm) => {
  const xs = paths.flatMap((q) => ['binary', 'json'].flatMap((f) => q.formats[f]?.readyMs[arm].all ?? [])).sort((a, b) => a - b);
  return { median: xs[Math.floor(xs.length / 2)], min: xs[0], max: xs[xs.length - 1] };
};
if (ready) rows.push(`| worker start → \`ready\` (every run above) | ${spread(allReady('meterflow'), ms, (v) => num(v, 1))} | ${spread(allReady('js'), ms, (v) => num(v, 1))} | | ≤ 50 ms |`);
const eq = paths.flatMap((q) => Object.values(q.formats).map((x) => x.equivalence.worstRelative));
rows.push('');
rows.push(`Window mean and variance of every meter agree between the arms after every run (worst relative difference ${Math.max(...eq).toExponential(1)}, tolerance 1e-12).`);
rows.push('');
rows.push('| engine (MeterflowEngine in a worker, window 1,200, every meter dirty) | ' + r.engine.map((e) => `${num(e.meters)} meters`).join(' | ') + ' | target |');
rows.push('|---|' + r.engine.map(() => '---:').join('|') + '|---|');
const tickCell = (t) => `${num(t.medianMs, 3)} ms (${num(t.minMs, 3)}–${num(t.maxMs, 3)})`;
// Results from before issue 8's fix timed untrained meters only, as `tick`.
const trained = r.engine.every((e) => e.tickUntrained);
rows.push(`| tick${trained ? `, meters trained (${num(r.engine[0].baselineReadings)} readings each)` : ''}, median (min–max) | ` + r.engine.map((e) => tickCell(e.tick)).join(' | ') + ' | ≤ 0.25 ms @5k, ≤ 2.5 ms @50k |');
if (trained) rows.push('| &nbsp;&nbsp;the same before training (learned rules skipped) | ' + r.engine.map((e) => tickCell(e.tickUntrained)).join(' | ') + ' | |');
rows.push('| linear memory per meter | ' + r.engine.map((e) => `${num(e.linearBytesPerMeter)} B`).join(' | ') + ' | ≤ 10,500 B |');
rows.push('');
const kb = (b) => num(b / 1024, 1);
if (r.wasm.coldGzipBytes === undefined) {
  rows.push(`\`.wasm\`: ${kb(r.wasm.rawBytes)} KB raw, ${kb(r.wasm.gzipBytes)} KB gzip (target ≤ 150 KB gzip).`);
} else {
  rows.push(`\`.wasm\`: the warm part a worker fetches and compiles before \`ready\` ${kb(r.wasm.rawBytes)} KB raw, **${kb(r.wasm.gzipBytes)} KB gzip** (target ≤ 150 KB gzip); the cold part, loaded in the background after \`ready\`, ${kb(r.wasm.coldRawBytes)} KB raw, ${kb(r.wasm.coldGzipBytes)} KB gzip; both ${kb(r.wasm.gzipBytes + r.wasm.coldGzipBytes)} KB gzip (docs/SIZE.md, "The split").`);
}
rows.push(`Machine: ${r.machine.cpus} cores (${r.machine.model}), load average before ${r.machine.loadavgBefore.map((x) => num(x, 2)).join(' / ')}, after ${r.machine.loadavgAfter.map((x) => num(x, 2)).join(' / ')}; ${r.env.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? r.env.userAgent}; ${r.date.slice(0, 10)}; from \`benches/results/${file.split('/').pop()}\`.`);
const table = rows.join('\n');

if (print) {
  console.log(table);
} else {
  await writeReadmeSection('bench-browser', table);
  console.log(`README.md: table regenerated from ${file}`);
}
