#!/usr/bin/env node
// Snapshot-v2 serve time of the real feed server (issue 7 target: 5,000 meters
// in ≤ 20 ms p99). Starts the release `meterflow-feed` (`make feed-bin`) on a
// free 127.0.0.1 port per case, lets it run, then times sequential
// `GET /snapshot-v2?channel=…` requests over real HTTP, each on a fresh
// connection, from the request to the last byte of the body. Machine load
// (1-minute load average, cores) is written beside every case.
//
//   node www/bench/stream-feed.mjs                    5,000 and 50,000 meters, 500 requests each
//   node www/bench/stream-feed.mjs --requests 1000 --json FILE
//   node www/bench/stream-feed.mjs --smoke            1,000 meters, 50 requests, no file unless --json
//
// Default output: benches/results/stream-feed-YYYY-MM-DD.json (README "Stream"
// table: scripts/stream-table.mjs).

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join, dirname } from 'node:path';
import { ROOT, startFeed, pct, round } from './stream-common.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const smoke = args.includes('--smoke');
const requests = Number(opt('--requests', smoke ? 50 : 500));
const warmup = Math.min(20, requests);
const date = new Date().toISOString().slice(0, 10);
const jsonOut = opt('--json', smoke ? null : join(ROOT, 'benches', 'results', `stream-feed-${date}.json`));

// Each case: the server's size and grouping, and the channels timed. One
// group holding all 5,000 meters is the worst case at 5,000; at 50,000 the
// default 8 districts hold about 6,250 meters each.
const CASES = smoke
  ? [{ meters: 1_000, groups: 1, channels: ['meters.north', 'totals'] }]
  : [
      { meters: 5_000, groups: 1, channels: ['meters.north', 'totals'] },
      { meters: 5_000, groups: 8, channels: ['meters.north'] },
      { meters: 50_000, groups: 8, channels: ['meters.north', 'totals'] },
      // At --speed 1 a channel moves every 500 ms, so nearly every request is
      // served the kept body; at 10× (a tick every 50 ms real) about one in
      // twenty is encoded afresh, and the p99 shows that cost.
      { meters: 5_000, groups: 1, speed: 10, channels: ['meters.north'] },
    ];

/** One GET on a fresh connection: [ms to the last byte, status, body bytes, snapshot cache header]. */
function timedGet(port, path) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve([Number(process.hrtime.bigint() - t0) / 1e6, res.statusCode, bytes,
        res.headers['x-meterflow-snapshot-cache'] ?? null]));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function measure(c) {
  const www = mkdtempSync(join(os.tmpdir(), 'stream-feed-www-'));
  const feed = await startFeed(['--meters', String(c.meters), '--groups', String(c.groups), '--seed', '1',
    '--speed', String(c.speed ?? 1), '--www', www]);
  try {
    // Let the read model fill: a few ticks of every meter (2 Hz) and a notice hour.
    await new Promise((r) => setTimeout(r, 3_000));
    const out = [];
    for (const channel of c.channels) {
      const path = `/snapshot-v2?channel=${channel}`;
      for (let i = 0; i < warmup; i++) await timedGet(feed.port, path);
      const load1Before = os.loadavg()[0];
      const times = [];
      let bytes = 0;
      const cache = { hit: 0, miss: 0 };
      for (let i = 0; i < requests; i++) {
        const [ms, status, n, kept] = await timedGet(feed.port, path);
        if (status !== 200) throw new Error(`${path}: HTTP ${status}`);
        times.push(ms);
        bytes = n;
        if (kept) cache[kept] = (cache[kept] ?? 0) + 1;
      }
      const load1After = os.loadavg()[0];
      times.sort((a, b) => a - b);
      const r = {
        meters: c.meters, groups: c.groups, speed: c.speed ?? 1, channel, requests, bodyBytes: bytes,
        p50Ms: round(pct(times, 0.5)), p95Ms: round(pct(times, 0.95)), p99Ms: round(pct(times, 0.99)),
        maxMs: round(times[times.length - 1]), meanMs: round(times.reduce((a, b) => a + b, 0) / times.length),
        load1Before: round(load1Before), load1After: round(load1After),
        // Full snapshots of meters/notices: served from the kept body (hit) or encoded (miss).
        snapshotCache: channel === 'totals' ? null : cache,
      };
      console.log(`${c.meters} meters, ${c.groups} groups, speed ${c.speed ?? 1}, ${channel} (${bytes} bytes): ` +
        `p50 ${r.p50Ms} ms, p95 ${r.p95Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms (load ${r.load1Before} → ${r.load1After})`);
      out.push(r);
    }
    return out;
  } finally {
    await feed.stop();
  }
}

let commit = null;
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
} catch { /* not a checkout */ }
const results = [];
for (const c of CASES) results.push(...(await measure(c)));
const doc = {
  kind: 'stream-feed',
  date: new Date().toISOString(),
  commit,
  command: `node www/bench/stream-feed.mjs${smoke ? ' --smoke' : ''} --requests ${requests}`,
  what: 'GET /snapshot-v2 over real HTTP on 127.0.0.1, sequential, a fresh connection each, request to last byte, release meterflow-feed at --speed 1 (10 where `speed` says so)',
  target: { meters: 5_000, p99Ms: 20 },
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? null, loadavg: os.loadavg().map(round) },
  results,
};
if (jsonOut) {
  mkdirSync(dirname(jsonOut), { recursive: true });
  writeFileSync(jsonOut, JSON.stringify(doc, null, 2) + '\n');
  console.log(`wrote ${jsonOut}`);
}
