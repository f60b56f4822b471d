#!/usr/bin/env node
// Regenerates the README's detection table from the committed output of
// `make eval` (tests/data/eval/full-seed1.json, written by
// `meterflow eval --write-baseline`), between the markers
//   <!-- eval:begin --> … <!-- eval:end -->
//
//   node scripts/eval-table.mjs            rewrite README.md
//   node scripts/eval-table.mjs --print    print the table only
//   node scripts/eval-table.mjs FILE.json  from that output

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeReadmeSection } from './readme-section.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const args = process.argv.slice(2);
const print = args.includes('--print');
const file = args.find((a) => a.endsWith('.json')) ?? join(ROOT, 'tests', 'data', 'eval', 'full-seed1.json');
const r = JSON.parse(await readFile(file, 'utf8'));

// issue 8's recall targets per class (stuck, burst, spike train, dropout: 98%).
const target = (c) => (/^(stuck|burst|spike_train|dropout)/.test(c) ? 0.98 : 0.9);
const pct = (x) => `${(100 * x).toFixed(0)}%`;
const dets = r.detectors;
const classes = [...new Set(dets.flatMap((d) => Object.keys(d.classes)))].sort();
const m = dets[0];
const rows = [];
rows.push(`| seed ${r.seed}${r.short ? ', short' : ''}: ${m.series} series, ${m.windows} labelled windows | target | ${dets.map((d) => d.detector).join(' | ')} |`);
rows.push(`|---|---|${dets.map(() => '---').join('|')}|`);
rows.push(`| windowed score (0 never alerts, 100 perfect) | ≥ zscore + 20 | ${dets.map((d) => d.score.toFixed(1)).join(' | ')} |`);
rows.push(`| alerts inside / outside windows | | ${dets.map((d) => `${d.inside} / ${d.outside}`).join(' | ')} |`);
rows.push(`| false alerts per meter-day, negative controls | ≤ 1 | ${dets.map((d) => d.false_per_day_negative.toFixed(1)).join(' | ')} |`);
for (const c of classes) {
  const cell = (d) => {
    const x = d.classes[c];
    if (!x) return '-';
    const delay = x.mean_delay_readings == null ? '' : `, ${x.mean_delay_readings.toFixed(0)}`;
    return `${x.detected}/${x.windows} (${pct(x.recall)}${delay})`;
  };
  rows.push(`| recall ${c.replace('_', ' ')} (mean delay, readings) | ${pct(target(c))} | ${dets.map(cell).join(' | ')} |`);
}
const table = rows.join('\n');
if (print) {
  console.log(table);
} else {
  await writeReadmeSection('eval', table);
}
