#!/usr/bin/env node
// Regenerates the README's "Groups and series (issue 10)" table from the
// newest benches/results/groups-DATE.json (www/bench/groups.mjs), between the
// markers
//   <!-- bench-groups:begin --> … <!-- bench-groups:end -->
//
//   node scripts/groups-table.mjs            rewrite README.md
//   node scripts/groups-table.mjs --print    print the table only
// `make bench-groups` measures, then runs this.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeReadmeSection } from './readme-section.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'benches', 'results');
const print = process.argv.includes('--print');

const names = (await readdir(RESULTS)).filter((n) => /^groups-\d{4}-\d{2}-\d{2}\.json$/.test(n)).sort();
if (!names.length) throw new Error('no benches/results/groups-DATE.json: run `node www/bench/groups.mjs` first');
const name = names[names.length - 1];
const doc = JSON.parse(await readFile(join(RESULTS, name), 'utf8'));
const g = doc.groups;

const num = (x, d = 0) => Number(x).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const ns = (s) => `${num(s.median, 1)} ns (${num(s.min, 1)}–${num(s.max, 1)})`;
const ms = (s) => `${num(s.median, s.median < 1 ? 3 : 2)} ms (${num(s.min, s.min < 1 ? 3 : 2)}–${num(s.max, s.max < 1 ? 3 : 2)})`;
const load = (l) => (l ? l.map((x) => num(x, 2)).join(' / ') : '?');
const verdict = (ok) => (ok ? 'met' : 'not met');
const spread = (s) => s.max - s.min;

const mem = g.memory.map;
const parts = Object.entries(mem.memory);
const kb = (b) => `${num(b / mem.meters, 0)} B`;
const rows = [
  `| groups and series: ${num(g.meters)} meters, ${g.groupsPerMeter} groups per meter (district, tariff, all), ${num(g.frames)} timed live frames of ${num(g.perFrame)} per run, each followed by its flush; ${g.passes} passes per arm, arms alternated in fresh workers; medians (min–max) | measured | target | |`,
  '|---|---:|---|---|',
  `| per reading, page post → last \`ack\`: no map | ${ns(g.nsPerReading.noMap)} | | |`,
  `| per reading, the same with the map | ${ns(g.nsPerReading.map)} | | |`,
  `| **added by the map** (same pass, map − no map) | ${ns(g.addedNsPerReading)} | ≤ 30 ns | ${spread(g.addedNsPerReading) > 4 * 30 ? 'unresolved: the passes spread more than 4× the target (rerun quietly)' : verdict(g.addedNsPerReading.median <= 30)} |`,
  `| &nbsp;&nbsp;the worker's handler time alone (sum of \`ack.ms\`, flushes excluded), added | ${ns(g.addedHandlerNsPerReading)} | | |`,
  `| series query, group of ${num(g.seriesQueryMs.shape?.members ?? g.meters)}, 6 h at 5 min (${g.seriesQueryMs.shape?.buckets ?? '?'} buckets), post → answer: fresh (\`cached\`) | ${ms(g.seriesQueryMs.fresh)} | ≤ 1 ms | ${verdict(g.seriesQueryMs.fresh.median <= 1)} |`,
  `| &nbsp;&nbsp;recomputed after a new frame | ${ms(g.seriesQueryMs.recomputedAfterFrame)} | ≤ 20 ms | ${verdict(g.seriesQueryMs.recomputedAfterFrame.median <= 20)} |`,
  `| &nbsp;&nbsp;recomputed after a map change | ${ms(g.seriesQueryMs.recomputedAfterMapChange)} | ≤ 20 ms | ${verdict(g.seriesQueryMs.recomputedAfterMapChange.median <= 20)} |`,
  ...(g.seriesQueryMs.mapApply ? [`| &nbsp;&nbsp;(the map change itself: \`fetched\` with the ${num(g.meters)}-meter \`/groups\` body → a \`stats\` answer posted after it) | ${ms(g.seriesQueryMs.mapApply)} | | |`] : []),
  `| series memory per meter (\`stats.memory.series\` / meters; one resource per meter) | ${num(g.memory.seriesBytesPerMeter, 0)} B | ≤ 4 KB | ${g.memory.seriesBytesPerMeter <= 4000 ? 'met' : g.memory.seriesBytesPerMeter <= 4096 ? 'met only as 4,096 B (not as 4,000 B, the reading of 10.5 KB above)' : 'not met'} |`,
  '',
  `| \`stats.memory\` at the end (map arm), ${num(mem.meters)} meters | ${parts.map(([k]) => `\`${k}\``).join(' | ')} | \`engineBytes\` | linear memory |`,
  `|---|${parts.map(() => '---:').join('|')}|---:|---:|`,
  `| bytes per meter | ${parts.map(([, b]) => kb(b)).join(' | ')} | ${kb(mem.engineBytes)} | ${kb(mem.linearMemoryBytes)} |`,
  '',
  `Load: ${g.load}. Reproduce: \`make bench-groups\` (\`make build\`, then \`node www/bench/groups.mjs\` and \`node scripts/groups-table.mjs\`). ` +
    `Machine: ${doc.machine.cpus} cores (${doc.machine.model}), shared, load average before ${load(doc.machine.loadavgBefore)}, after ${load(doc.machine.loadavgAfter)}; ${doc.env.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? ''}; from \`benches/results/${name}\`.`,
];
const table = rows.join('\n');
if (print) console.log(table);
else {
  await writeReadmeSection('bench-groups', table);
  console.log(`README.md: groups table regenerated from ${name}`);
}
