#!/usr/bin/env node
// The first frame of a join in the shipped worker (www/bench/join.html), in
// Debian's headless Chromium: fresh workers, `maxMeters` set, one kind-1
// frame binding N meters with 2·N records, then frames without bindings.
// Prints the worker's own time (`ack.ms`) and post→ack time per frame, the
// linear memory per meter after the join, and the machine's load.
//
//   node www/bench/join.mjs                    5,000 meters, maxMeters 50,000, 7 passes
//   --meters N --max-meters N --passes N --label TEXT
//
// Needs www/pkg (`make build`). Asserts nothing about speed; exits non-zero
// only if a run failed. For an A/B of two builds, run it on each www/pkg in
// turn (alternated).

import os from 'node:os';
import { launchChromium, requirePackage, startServer } from '../tests/harness.mjs';
import { benchPageResult } from './bench-page.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const meters = Number(opt('--meters', 5000));
const maxMeters = Number(opt('--max-meters', 50_000));
const passes = Number(opt('--passes', 7));
const label = opt('--label', '');

requirePackage();
const server = await startServer();
const browser = await launchChromium();
let failed = false;
try {
  const load1Before = os.loadavg()[0];
  const url = `${server.url}bench/join.html?meters=${meters}&maxMeters=${maxMeters}&passes=${passes}`;
  const r = await benchPageResult(browser, url, { timeoutMs: 10 * 60_000 });
  const round = (x) => Math.round(x * 1000) / 1000;
  const s = (m) => `median ${round(m.median)} (min ${round(m.min)}, max ${round(m.max)}) [${m.all.map(round).join(' ')}]`;
  console.log(JSON.stringify({ label, meters, maxMeters, passes, load1Before: round(load1Before), load1After: round(os.loadavg()[0]),
    firstWorkerMs: s(r.firstWorkerMs), firstWallMs: s(r.firstWallMs), nextWorkerMs: s(r.nextWorkerMs),
    linearBytesPerMeter: r.linearBytesPerMeter && Math.round(r.linearBytesPerMeter) }, null, 1));
} catch (e) {
  failed = true;
  console.error(e.message ?? e);
} finally {
  await browser.close();
  server.stop();
}
process.exit(failed ? 1 : 0);
