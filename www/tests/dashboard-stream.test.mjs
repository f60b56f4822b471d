// End to end on the live stream: the built dashboard (www/dist) served by the
// real feed server, in Debian's headless Chromium, running the worker's
// stream v2 session (channels `totals`, `notices`, `meters.<group>`).
//
// - With faults on (drops, duplicates, reorders, a disconnect every few
//   seconds, slow out-of-order REST) over 2 simulated hours at 60x, across
//   three hour rollovers: once faults stop (`POST /admin/faults
//   {"reset":true}`) and simulated time stops (`{"pause":true}`), every
//   total on the page (read from the DOM), the open hour's included, equals
//   `/truth` exactly; the meter list fills from `meters.<group>`, the detail
//   panel shows the REST detail, the window sparkline and the moments.
// - The feed server killed and restarted mid-run on the same port: the page
//   shows reconnecting, then goes live again and its totals converge to the
//   new server's truth exactly.
// - A page that never acknowledges its renders (`rendered=off`) stops its
//   channels after `creditWindow` deltas while the server goes on; the
//   worker's memory stays flat.
// - The same with `transport=worker` (the worker owns the socket and REST).
// No console error, no CSP violation, no error on the page. Screenshots at
// 1366x768 and 1920x1080 (www/artifacts/stream-*.png; E2E_ARTIFACTS moves them).
//
// "Exactly": the page and `/truth` are compared only while the server's
// writer stands still (the truth read before and after the DOM is the same,
// reading for reading), so neither can move during the comparison; the
// waits are liveness guards for a hung page, not speed assertions.
//
// Run: `make build dash && cd www && node --test tests/dashboard-stream.test.mjs`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, WWW } from './harness.mjs';
import { requireDashboard, startFeed } from './dash-harness.mjs';

const GUARD_MS = Number(process.env.E2E_GUARD_MS ?? 120_000);
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(WWW, 'artifacts');
const H = 3_600_000;

let browser;
before(async () => {
  requireDashboard();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** "37,856.591" -> 37856591n with 3 decimals. */
function units(text, decimals) {
  const m = /^(\d{1,3}(?:,\d{3})*|\d+)(?:\.(\d+))?$/.exec(text.trim());
  assert.ok(m, `not an amount: '${text}'`);
  const frac = (m[2] ?? '').padEnd(decimals, '0');
  assert.equal(frac.length, decimals, `'${text}' has more than ${decimals} decimals`);
  return BigInt(m[1].replaceAll(',', '') + frac);
}

async function truth(feed) {
  const r = await fetch(new URL('truth', feed.url));
  assert.equal(r.status, 200);
  return r.json();
}

/** A page with every problem collected; counts the `connect` requests the worker posts to the page. */
async function openDashboard(feed, query) {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('worker', (w) => w.on('close', () => problems.push('the worker closed')));
  await page.addInitScript(() => {
    window.__csp = [];
    window.__connectRequests = 0;
    window.__states = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    const W = window.Worker;
    window.Worker = class extends W {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => {
          if (e.data?.type === 'connect') window.__connectRequests += 1;
          if (e.data?.type === 'connection') window.__states.push(e.data.state);
        });
      }
    };
  });
  await page.setViewportSize({ width: 1366, height: 768 });
  const response = await page.goto(new URL(query, feed.url).href);
  assert.equal(response.status(), 200);
  return { page, problems };
}

function readTotals(page) {
  return page.evaluate(() => [...document.querySelectorAll('#totals tbody tr')].map((tr) => ({
    resource: tr.dataset.resource,
    cells: [...tr.querySelectorAll('td[data-hour]')].map((td) => ({ hour: Number(td.dataset.hour), text: td.querySelector('.num').textContent })),
  })));
}

/** Differences between the page's totals and the truth; empty when every shown total and every held hour agree. */
function diff(rows, t) {
  const out = [];
  let nonZero = 0;
  for (const r of t.resources) {
    const row = rows.find((x) => x.resource === r.resource);
    if (!row) {
      out.push(`no row for ${r.resource}`);
      continue;
    }
    const shown = new Set();
    for (const c of row.cells) {
      shown.add(c.hour);
      const want = r.buckets.find((b) => b.hour === c.hour);
      const expected = want ? units(want.total, r.decimals) : 0n;
      const got = c.text === '—' ? 0n : units(c.text, r.decimals);
      if (got !== expected) out.push(`${r.resource} ${new Date(c.hour).toISOString()}: page ${c.text}, truth ${want?.total ?? 0}`);
      if (got > 0n) nonZero += 1;
    }
    for (const b of r.buckets) {
      if (!shown.has(b.hour) && units(b.total, r.decimals) !== 0n) out.push(`${r.resource} ${new Date(b.hour).toISOString()}: not on the page`);
    }
  }
  if (nonZero === 0) out.push('every total on the page is zero');
  return out;
}

/**
 * Waits until the page's totals equal the truth exactly, compared only while
 * the server's writer stood still (same `readings` before and after the DOM
 * read). Returns the truth it matched.
 */
async function convergesToTruth(page, feed, label) {
  const deadline = Date.now() + GUARD_MS;
  let last = 'no stable moment';
  for (;;) {
    const a = await truth(feed);
    const rows = await readTotals(page);
    const b = await truth(feed);
    if (a.readings === b.readings) {
      const d = diff(rows, a);
      if (d.length === 0) return a;
      last = d.slice(0, 6).join('; ');
    }
    if (Date.now() > deadline) throw new Error(`${label}: the page's totals never equalled the truth: ${last}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function setFaults(feed, body) {
  const r = await fetch(new URL('admin/faults', feed.url), { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text);
}

/**
 * No error on the page, no CSP violation, no browser problem. `allow`: error
 * codes expected in this run (e.g. a `/groups` refresh that fell while the
 * server was down); every other one fails.
 */
async function noProblems(page, problems, allow = []) {
  const errors = await page.evaluate(() => {
    const t = window.meterflowDashboard.store.getState().telemetry;
    return { count: t.errorCount, codes: t.errors.map((e) => e.code) };
  });
  const unexpected = errors.codes.filter((c) => !allow.includes(c));
  const shown = await page.textContent('#errors');
  assert.deepEqual(unexpected, [], shown);
  assert.equal(errors.count, errors.codes.length, `more errors than the page lists: ${shown}`);
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'CSP violations');
  assert.deepEqual(problems, []);
}

/** Opens the first meter of the list; the detail panel shows the REST detail, the window sparkline and the moments. */
async function detailWorks(page) {
  await page.waitForFunction(() => window.meterflowDashboard.meters.size > 0, null, { timeout: GUARD_MS });
  await page.focus('#meter-list');
  await page.keyboard.press('Home');
  await page.keyboard.press('Enter');
  const meter = await page.getAttribute('#meter-list [aria-selected="true"]', 'data-meter');
  assert.ok(meter, 'no meter selected');
  await page.waitForSelector(`#detail[data-meter="${meter}"] dl.rest`, { timeout: GUARD_MS });
  await page.waitForSelector('#detail canvas.spark:not([data-samples="0"])', { timeout: GUARD_MS });
  await page.waitForSelector('#detail dl.moments', { timeout: GUARD_MS });
  return meter;
}

test('faults on across two simulated hours and their rollovers: after they stop, every total on the page equals the truth exactly', { timeout: 4 * GUARD_MS }, async () => {
  // 60x simulated time starting 40 s (simulated) before an hour boundary:
  // under faults for 2 h 1 min of simulated time (about 2 min real), across
  // three rollovers. The page reads the server's speed from `/clock` and widens
  // its clock allowances to match (www/src/clock-allowance.ts).
  const SPEED = 60;
  const start = Math.floor(Date.now() / H) * H - 2 * H - 40_000;
  const feed = await startFeed([
    '--meters', '300', '--seed', '7', '--speed', String(SPEED), '--start-ms', String(start), '--heartbeat-ms', '2000',
    '--drop-pct', '3', '--duplicate-pct', '3', '--reorder-window', '4', '--disconnect-every-s', '6',
    '--rest-delay-ms', '400', '--rest-out-of-order', 'true',
  ]);
  try {
    const t0 = Date.now();
    const { page, problems } = await openDashboard(feed, '?catchupMs=5000');
    await page.waitForSelector('#connection[data-state="live"]', { timeout: GUARD_MS });
    const ready = Date.now() - t0;
    await page.waitForSelector('#totals td[data-hour]', { timeout: GUARD_MS });
    const firstTotals = Date.now() - t0;
    // Under faults until the simulation has run 2 h 1 min (20 s past the
    // third rollover) and the page has lived through at least one disconnect.
    const edge = start + 40_000;
    const until = start + 2 * H + 60_000;
    const guard = Date.now() + GUARD_MS + (2 * H) / SPEED;
    for (;;) {
      const now = (await truth(feed)).serverTime;
      const states = await page.evaluate(() => window.__states);
      if (now >= until && states.includes('disconnected') && states.at(-1) === 'ready') break;
      assert.ok(Date.now() < guard, `still waiting for 2 simulated hours and a disconnect: server time ${now} (until ${until}), states ${states.slice(-8)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const counters = await page.evaluate(() => window.meterflowDashboard.store.getState().telemetry.stats);
    const simulated = (await truth(feed)).serverTime - start;
    // Faults off, then simulated time stops (`pause`: no reading is made and
    // the server's clock stands still), so the open hour stops moving too and
    // the whole page, the current hour included, can equal the truth at once.
    await setFaults(feed, { reset: true });
    const stopped = Date.now();
    assert.equal((await setFaults(feed, { pause: true })).paused, true);
    const t = await convergesToTruth(page, feed, 'after faults');
    const converged = Date.now() - stopped;
    // The rollovers are in what was compared: the hours on both sides of each hold readings.
    const hours = new Set(t.resources[0].buckets.filter((b) => b.total.replace(/[0.]/g, '') !== '').map((b) => b.hour));
    for (const h of [edge - H, edge, edge + H, edge + 2 * H]) assert.ok(hours.has(h), `hour ${new Date(h).toISOString()} not in the compared truth: ${[...hours].map((x) => new Date(x).toISOString())}`);
    assert.ok(simulated >= 2 * H, `only ${simulated} simulated ms under faults`);
    await detailWorks(page);
    await noProblems(page, problems);
    console.log(`# faults: ${(simulated / H).toFixed(2)} simulated hours at ${SPEED}x, ready ${ready} ms, first totals ${firstTotals} ms, converged ${converged} ms after faults stopped; states ${JSON.stringify(await page.evaluate(() => window.__states.length))} connection messages; stream stats ${JSON.stringify(Object.fromEntries(Object.entries(counters?.stream ?? {}).filter(([k]) => /gap|resume|snapshot|credit|overrun|duplicate/i.test(k))))}`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the page scrolls sideways at 1366x768');
    await page.screenshot({ path: join(ARTIFACTS, 'stream-1366x768.png') });
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.waitForTimeout(300); // a resize settles in the next frames
    await page.screenshot({ path: join(ARTIFACTS, 'stream-1920x1080.png') });
    await page.close();
  } finally {
    await feed.stop();
  }
});

test('the feed server killed and restarted: the page shows reconnecting, goes live again, and converges to the truth', { timeout: 4 * GUARD_MS }, async () => {
  const start = Date.now() - 20 * 60_000;
  const args = ['--meters', '1000', '--seed', '3', '--start-ms', String(start), '--heartbeat-ms', '2000'];
  let feed = await startFeed([...args, '--epoch', '1']);
  try {
    const { page, problems } = await openDashboard(feed, '');
    await page.waitForSelector('#connection[data-state="live"]', { timeout: GUARD_MS });
    await convergesToTruth(page, feed, 'first server');
    const port = feed.port;
    await feed.stop();
    await page.waitForSelector('#connection[data-state="reconnecting"]', { timeout: GUARD_MS });
    const pill = await page.textContent('#connection');
    assert.match(pill, /reconnecting in \d+ s|disconnected/, pill);
    // Same history (seed, start), a new stream epoch: the session cannot resume and bootstraps afresh.
    feed = await startFeed([...args, '--epoch', '2'], port);
    const back = Date.now();
    await page.waitForSelector('#connection[data-state="live"]', { timeout: GUARD_MS });
    await convergesToTruth(page, feed, 'restarted server');
    console.log(`# restart: live and exact ${Date.now() - back} ms after the server came back`);
    // A `/groups` refresh due while the server was down fails, and says so;
    // Chromium logs each request refused while it was down (a REST fetch or
    // the socket's reconnect): expected here, and only here.
    const refused = /^console error: Failed to load resource: net::ERR_CONNECTION_REFUSED$/;
    await noProblems(page, problems.filter((p) => !refused.test(p)), ['warning groups_refresh_failed']);
    await page.close();
  } finally {
    await feed.stop();
  }
});

test('a page that never acknowledges its renders stops its channels at the credit window; the worker\'s memory stays flat', { timeout: 4 * GUARD_MS }, async () => {
  const feed = await startFeed(['--meters', '1000', '--seed', '4', '--speed', '4', '--start-ms', String(Date.now() - 10 * 60_000)]);
  try {
    const { page, problems } = await openDashboard(feed, '?rendered=off&creditWindow=16&maxOffsetMs=60000');
    await page.waitForSelector('#connection[data-state="live"]', { timeout: GUARD_MS });
    // The worker's periodic stats and latest totals, as the store holds them.
    const stream = () => page.evaluate(() => {
      const { stats: s, totals: t } = window.meterflowDashboard.store.getState().telemetry;
      return { exhausted: Number(s?.stream?.creditExhausted ?? 0), memory: s?.linearMemoryBytes, live: Number(t?.counters.liveCounted ?? 0) };
    });
    // 16 totals deltas at 4x: a few seconds until the window is used up.
    for (const deadline = Date.now() + GUARD_MS; (await stream()).exhausted === 0;) {
      assert.ok(Date.now() < deadline, 'the credit never ran out');
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.waitForTimeout(1_000); // what was in flight lands
    const a = await stream();
    const truthA = (await truth(feed)).readings;
    await page.waitForTimeout(4_000); // the server goes on; the page must not
    const b = await stream();
    const truthB = (await truth(feed)).readings;
    assert.ok(truthB > truthA, 'the server stood still: the check would prove nothing');
    assert.equal(b.live, a.live, `live readings counted went on without credit: ${a.live} -> ${b.live}`);
    assert.equal(b.memory, a.memory, 'the worker\'s memory grew while the stream was stopped');
    await noProblems(page, problems);
    console.log(`# credit: stopped at ${a.live} live readings while the server went from ${truthA} to ${truthB}`);
    await page.close();
  } finally {
    await feed.stop();
  }
});

test('with transport=worker the worker owns the socket and REST, goes live and converges to the truth', { timeout: 4 * GUARD_MS }, async (t) => {
  const feed = await startFeed(['--meters', '1000', '--seed', '9', '--start-ms', String(Date.now() - 10 * 60_000)]);
  try {
    const { page, problems } = await openDashboard(feed, '?transport=worker');
    const outcome = await page.waitForFunction(() => {
      if (window.__connectRequests > 0) return 'page';
      return document.getElementById('connection')?.dataset.state === 'live' ? 'live' : false;
    }, null, { timeout: GUARD_MS, polling: 100 });
    if ((await outcome.jsonValue()) === 'page') {
      await page.close();
      t.skip('this worker has no worker-owned transport yet (it posted `connect` to the page)');
      return;
    }
    await convergesToTruth(page, feed, 'worker transport');
    await detailWorks(page);
    assert.equal(await page.evaluate(() => window.__connectRequests), 0, 'the worker asked the page to connect');
    await noProblems(page, problems);
    await page.close();
  } finally {
    await feed.stop();
  }
});
