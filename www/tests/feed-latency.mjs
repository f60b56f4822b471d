#!/usr/bin/env node
// Measures, in headless Chromium against the real feed server, how long a
// stream delta waits from its arrival in the worker to the `totals` message
// that shows it (`stats.deliveryLatencyMs`, timed by the binding), with the
// worker transport on `totals`. A measurement, not a test: it prints figures
// (one JSON line, with the machine's load average before and after).
//
//   node www/tests/feed-latency.mjs [--meters 5000] [--seconds 30] [--flush-ms 250]
//        [--delta-flush-ms 16] [--json benches/results/stream-latency-<date>.json]
//
// Needs `make build feed-bin`. `--flush-ms` sets `totalsFlushMs`, the periodic
// flush; `--delta-flush-ms` sets `deltaFlushMs`, the one-shot flush after a
// delta (the engine's default when omitted): the figure includes the wait for
// whichever posts the update. `--json` also writes the line to that file.

import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { launchChromium, requirePackage } from './harness.mjs';
import { startFeed } from './feed-harness.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const meters = arg('meters', 5000);
const seconds = arg('seconds', 30);
const flushMs = arg('flush-ms', 250);
const deltaFlushMs = arg('delta-flush-ms', undefined);
const jsonAt = process.argv.indexOf('--json');
const jsonPath = jsonAt > 0 ? process.argv[jsonAt + 1] : undefined;
const loadBefore = loadavg();

requirePackage();
const feed = await startFeed({ meters, seed: 1, speed: 1 });
const browser = await launchChromium();
try {
  const page = await browser.context.newPage();
  await page.goto(`${feed.url}/tests/feed.html?transport=worker`);
  const result = await page.evaluate(
    async ({ feedUrl, flushMs, deltaFlushMs, seconds }) => {
      const t = window.feedTest;
      await t.ready;
      const config = { transport: 'worker', feedUrl, totalsFlushMs: flushMs };
      if (deltaFlushMs !== undefined) config.deltaFlushMs = deltaFlushMs;
      t.post({ type: 'config', config });
      t.post({ type: 'session', op: 'start', channels: ['totals'] });
      await t.waitForState('ready');
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const stats = t.waitFor('stats', (s) => s.deliveryLatencyMs !== undefined);
      t.post({ type: 'query', query: 'stats' });
      const s = await stats;
      return { latency: s.deliveryLatencyMs, apply: s.deltaApplyMs, stream: s.stream, errors: t.errors.length, totals: t.counts.totals };
    },
    { feedUrl: feed.url, flushMs, deltaFlushMs, seconds },
  );
  const line = JSON.stringify({
    date: new Date().toISOString(), meters, seconds, totalsFlushMs: flushMs,
    deltaFlushMs: deltaFlushMs ?? 'default', ...result,
    loadavg: { before: loadBefore, after: loadavg() }, cpus: cpus().length,
  });
  console.log(line);
  if (jsonPath) writeFileSync(jsonPath, `${line}\n`);
} finally {
  await browser.close();
  await feed.stop();
}
