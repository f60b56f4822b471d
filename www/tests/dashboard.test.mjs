// End to end: the built operator dashboard (www/dist) served by the real feed
// server (`meterflow-feed --www www/dist`), in Debian's headless Chromium.
//
// What a person would see: the worker starts, totals appear, and once a
// catch-up is applied every total on the page (read from the DOM, not from
// the worker) equals the server's ground truth (`GET /truth`) exactly, for
// each resource and hour; at 240x simulated time, across two hour rollovers,
// every closed hour equals the truth too; no console error, no CSP violation, no error on
// the page; keyboard switching of the chart works; the meter list stays
// virtualised at 50,000 meters and the keyboard walks it; screenshots at 1366x768
// and 1920x1080 are saved under www/artifacts/ (E2E_ARTIFACTS to move them).
//
// These tests run the page without the stream session (`?stream=off`), on
// the ledger's periodic catch-ups; dashboard-stream.test.mjs runs it on the
// live stream v2 session with faults, a server restart and both transports.
//
// Run: `make build dash && cd www && node --test tests/dashboard.test.mjs`.
// Waits are liveness guards for a hung page, not speed assertions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, WWW } from './harness.mjs';
import { requireDashboard, startFeed } from './dash-harness.mjs';

const GUARD_MS = Number(process.env.E2E_GUARD_MS ?? 120_000);
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(WWW, 'artifacts');
const UNITS = { m3: 'm³', kWh: 'kWh', MB: 'MB' };

let feed;
let browser;
before(async () => {
  requireDashboard();
  // A quarter speed: the server's asOf moves every 2 s of real time, so a loaded
  // machine still has time to show a catch-up before it is superseded.
  feed = await startFeed(['--meters', '2000', '--seed', '11', '--speed', '0.25']);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await feed?.stop();
});

/** "37,856.591" -> 37856591n with 3 decimals; "200.312" likewise. */
function units(text, decimals) {
  const m = /^(\d{1,3}(?:,\d{3})*|\d+)(?:\.(\d+))?$/.exec(text.trim());
  assert.ok(m, `not an amount: '${text}'`);
  const frac = (m[2] ?? '').padEnd(decimals, '0');
  assert.equal(frac.length, decimals, `'${text}' has more than ${decimals} decimals`);
  return BigInt(m[1].replaceAll(',', '') + frac);
}

async function truth() {
  const r = await fetch(new URL('truth', feed.url));
  assert.equal(r.status, 200);
  return r.json();
}
const stamp = (h) => `${h.wallMs}.${h.counter}`;

/** A page with every problem collected: page errors, console errors, failed requests, CSP violations. */
async function openDashboard(query) {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('requestfailed', (r) => {
    // The page reads REST bodies as a stream (download progress). Chromium
    // then reports a `no-store` response read to EOF as ERR_ABORTED to the
    // DevTools protocol although the page got every byte (playwright#42742).
    // A body that really failed is still caught: the page transport reports
    // it as a `catchup_failed` error, and the error count must stay 0.
    if (r.failure()?.errorText === 'net::ERR_ABORTED' && /\/(catchup|snapshot-v2|meters\/)/.test(new URL(r.url()).pathname)) return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('worker', (w) => w.on('close', () => problems.push('the worker closed')));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.setViewportSize({ width: 1366, height: 768 });
  const response = await page.goto(new URL(query, feed.url).href);
  assert.equal(response.status(), 200);
  return { page, problems, headers: response.headers() };
}

/**
 * Waits until the page shows a catch-up whose `asOf` is the server's current
 * one (read before and after the DOM, so nothing moved in between), then
 * compares every shown total with the truth, digit for digit.
 */
async function totalsEqualTruth(page) {
  const deadline = Date.now() + GUARD_MS;
  let last = '';
  for (;;) {
    const before = await truth();
    const dom = await page.evaluate(() => ({
      asOf: document.getElementById('as-of').dataset.asOf,
      incomplete: document.getElementById('totals').dataset.incomplete,
      rows: [...document.querySelectorAll('#totals tbody tr')].map((tr) => ({
        resource: tr.dataset.resource,
        cells: [...tr.querySelectorAll('td[data-hour]')].map((td) => ({
          hour: Number(td.dataset.hour),
          text: td.querySelector('.num').textContent,
          unit: td.querySelector('.unit').textContent.trim(),
          confirmed: td.dataset.confirmed,
        })),
        sum: tr.querySelector('td.sum .num')?.textContent,
      })),
    }));
    const afterT = await truth();
    if (dom.asOf && dom.asOf === stamp(before.asOf) && dom.asOf === stamp(afterT.asOf) && dom.incomplete === 'false') {
      return { dom, truth: before };
    }
    last = `page asOf ${dom.asOf} incomplete ${dom.incomplete}; server asOf ${stamp(before.asOf)}..${stamp(afterT.asOf)}`;
    if (Date.now() > deadline) throw new Error(`the page never showed the server's current catch-up: ${last}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

function assertExact({ dom, truth: t }) {
  assert.equal(dom.rows.length, t.resources.length, 'one row per resource');
  let nonZero = 0;
  for (const r of t.resources) {
    const row = dom.rows.find((x) => x.resource === r.resource);
    assert.ok(row, `no row for ${r.resource}`);
    assert.equal(row.cells.length, 7, `${r.resource}: the current hour and the past 6`);
    let sum = 0n;
    for (const c of row.cells) {
      const want = r.buckets.find((b) => b.hour === c.hour);
      const expected = want ? units(want.total, r.decimals) : 0n;
      const shown = units(c.text, r.decimals);
      assert.equal(shown, expected, `${r.resource} hour ${new Date(c.hour).toISOString()}: page ${c.text}, truth ${want?.total ?? 0}`);
      assert.equal(c.unit, UNITS[r.unit], `${r.resource}: unit`);
      assert.equal(c.confirmed, 'true');
      sum += shown;
      if (shown > 0n) nonZero += 1;
    }
    assert.equal(units(row.sum, r.decimals), sum, `${r.resource}: the sum column`);
  }
  // Every hour the server holds is on the page (none fell outside the columns).
  for (const r of t.resources) {
    const hours = new Set(dom.rows.find((x) => x.resource === r.resource).cells.map((c) => c.hour));
    for (const b of r.buckets) assert.ok(hours.has(b.hour) || b.total.replace(/[0.]/g, '') === '', `hour ${b.hour} of ${r.resource} not shown`);
  }
  assert.ok(nonZero > 0, 'every total is zero: the comparison would prove nothing');
}

// Catch-ups every 1,300 ms, not a multiple of the server's tick, so the page's
// catch-ups cannot stay phase-locked just before each tick.
test('the dashboard shows the server\'s exact totals, without console errors or CSP violations', { timeout: 3 * GUARD_MS }, async () => {
  const { page, problems, headers } = await openDashboard('?stream=off&catchupMs=1300');
  // The policy is the server's header (src/feed/http.rs), not a <meta> the page could drop.
  const csp = headers['content-security-policy'] ?? '';
  for (const d of ["default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "style-src 'self'", "connect-src 'self'"]) {
    assert.ok(csp.split(';').map((x) => x.trim()).includes(d), `CSP header lacks ${d}: '${csp}'`);
  }
  assert.equal(await page.locator('meta[http-equiv="Content-Security-Policy"]').count(), 0, 'no <meta> CSP left');
  assert.deepEqual(
    [headers['cross-origin-opener-policy'], headers['cross-origin-embedder-policy']],
    ['same-origin', 'require-corp'],
  );
  assert.equal(await page.evaluate(() => window.crossOriginIsolated), true, 'the page is cross-origin isolated');
  await page.waitForSelector('#worker[data-state="ready"]', { timeout: GUARD_MS });
  await page.waitForSelector('#totals td[data-confirmed="true"]', { timeout: GUARD_MS });
  // Past the first server tick, so there are readings to compare.
  await page.waitForFunction(() => window.meterflowDashboard.store.getState().telemetry.totals.counters.restApplied >= 2, null, { timeout: GUARD_MS });

  assertExact(await totalsEqualTruth(page));
  // And again a few catch-ups later: the page follows the server.
  await page.waitForFunction(() => window.meterflowDashboard.store.getState().telemetry.totals.counters.restApplied >= 4, null, { timeout: GUARD_MS });
  assertExact(await totalsEqualTruth(page));

  // The store holds what the page shows; renders happen (once per frame at most).
  const state = await page.evaluate(() => {
    const d = window.meterflowDashboard;
    const t = d.store.getState().telemetry;
    return { renders: d.renders, worker: t.worker.state, errors: t.errorCount, hasTotals: t.totals !== null };
  });
  assert.deepEqual({ ...state, renders: state.renders > 0 }, { renders: true, worker: 'ready', errors: 0, hasTotals: true });
  assert.equal(await page.getAttribute('#connection', 'data-state'), 'rest');

  // Keyboard: the chart's resource buttons take Tab focus and Enter.
  await page.focus('#chart-tabs button[value="energy"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#chart-tabs button[value="energy"][aria-pressed="true"]', { timeout: GUARD_MS });
  assert.equal(await page.getAttribute('#chart-tabs button[value="water"]', 'aria-pressed'), 'false');

  // What a person sees, before the synthetic meter rows below: nothing wider than the screen.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the page scrolls sideways at 1366x768');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1366x768.png') });
  await page.setViewportSize({ width: 1920, height: 1080 });
  await page.waitForTimeout(300); // a resize settles in the next frames; not a speed assertion
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1920x1080.png') });

  await page.setViewportSize({ width: 1366, height: 768 });

  // The meter list: 50,000 meters in the documented `meters` shape, through
  // the client's dispatch (the worker does not post them until the session
  // lands): a bounded number of DOM rows, and the keyboard reaches the end.
  const listed = await page.evaluate(async () => {
    const mf = window.meterflowDashboard.client();
    const upsert = Array.from({ length: 50_000 }, (_, i) => ({
      meter: `m-${i + 1}`, resource: 'water', ts: 1764064860000, value: 12.5, status: i % 1000 ? 'ok' : 'offline', count: 1234, total: '812345.125',
    }));
    mf.dispatch({ type: 'meters', v: 1, channel: 'meters.north', upsert, remove: [] });
    mf.dispatch({ type: 'meters', v: 1, channel: 'meters.north', upsert: [], remove: ['m-2'] });
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return { count: document.getElementById('meter-count').textContent, rows: document.querySelectorAll('#meter-list .vlist-row:not([hidden])').length };
  });
  assert.equal(listed.count, (49_999).toLocaleString(undefined));
  assert.ok(listed.rows > 0 && listed.rows < 60, `${listed.rows} DOM rows for 49,999 meters: not virtualised`);
  await page.focus('#meter-list');
  await page.keyboard.press('End');
  await page.waitForSelector('#meter-list [aria-selected="true"][data-meter="m-50000"]', { timeout: GUARD_MS });
  await page.keyboard.press('ArrowUp');
  await page.waitForSelector('#meter-list [aria-selected="true"][data-meter="m-49999"]', { timeout: GUARD_MS });
  assert.match(await page.textContent('#meter-list [data-meter="m-49999"]'), /812,345\.125 m³/);
  await page.keyboard.press('Home');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#meter-list [aria-selected="true"][data-meter="m-1"]', { timeout: GUARD_MS });
  // The detail panel renders in the next animation frame after the selection.
  await page.waitForFunction(
    () => /m-1: the detail comes through the stream session/.test(document.getElementById('detail').textContent),
    null,
    { timeout: GUARD_MS },
  );
  await page.evaluate(() => window.scrollTo(0, 0));

  assert.equal(await page.getAttribute('#error-count', 'data-count'), '0', await page.textContent('#errors'));
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'CSP violations');
  assert.deepEqual(problems, []);

  // The violation check can fail: an inline script is refused and reported.
  await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true';
    document.body.append(s);
  });
  await page.waitForFunction(() => window.__csp.length > 0, null, { timeout: GUARD_MS });
  assert.equal(await page.evaluate(() => window.__inlineRan), undefined, 'the CSP let an inline script run');
  await page.close();
});

test('with binary catch-ups (kind 3, transferred ArrayBuffers) the totals are exact too', { timeout: 3 * GUARD_MS }, async () => {
  const { page, problems } = await openDashboard('?stream=off&catchupMs=1300&binary=1');
  const binary = [];
  page.on('request', (r) => r.url().includes('/catchup?') && binary.push(r.url().includes('format=binary')));
  await page.waitForSelector('#totals td[data-confirmed="true"]', { timeout: GUARD_MS });
  assertExact(await totalsEqualTruth(page));
  assert.ok(binary.length > 0 && binary.every(Boolean), `catch-up requests not all binary: ${binary}`);
  assert.equal(await page.getAttribute('#error-count', 'data-count'), '0', await page.textContent('#errors'));
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'CSP violations');
  assert.deepEqual(problems, []);
  await page.close();
});

test('at 240x simulated time, across hour rollovers, every closed hour on the page equals the truth', { timeout: 3 * GUARD_MS }, async () => {
  // The simulation starts a minute before an hour boundary (in the past, so
  // it runs ahead of the wall clock within seconds): about 2.5 simulated
  // hours and two rollovers pass in under a minute.
  const H = 3_600_000;
  const start = Math.floor(Date.now() / H) * H - 60_000;
  const fast = await startFeed(['--meters', '1000', '--seed', '5', '--speed', '240', '--start-ms', String(start)]);
  try {
    const page = await browser.context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
    await page.goto(new URL('?stream=off&catchupMs=1300', fast.url).href);
    // Until the page's catch-up covers 2 whole hours after the first one.
    const covered = start + 60_000 + 2 * H + 60_000;
    await page.waitForFunction((t) => Number(document.getElementById('as-of').dataset.asOf?.split('.')[0] ?? 0) >= t, covered, {
      timeout: GUARD_MS,
      polling: 200,
    });
    const dom = await page.evaluate(() => ({
      asOf: Number(document.getElementById('as-of').dataset.asOf.split('.')[0]),
      incomplete: document.getElementById('totals').dataset.incomplete,
      rows: [...document.querySelectorAll('#totals tbody tr')].map((tr) => ({
        resource: tr.dataset.resource,
        cells: [...tr.querySelectorAll('td[data-hour]')].map((td) => ({ hour: Number(td.dataset.hour), text: td.querySelector('.num').textContent })),
      })),
    }));
    const t = await (await fetch(new URL('truth', fast.url))).json();
    assert.equal(dom.incomplete, 'false');
    let closed = 0;
    for (const r of t.resources) {
      const row = dom.rows.find((x) => x.resource === r.resource);
      for (const c of row.cells) {
        const want = r.buckets.find((b) => b.hour === c.hour);
        const truthUnits = want ? units(want.total, r.decimals) : 0n;
        const shown = units(c.text, r.decimals);
        // A stamp a second past the hour's end: the hour is closed on both sides.
        if (c.hour + H + 1000 <= dom.asOf) {
          assert.equal(shown, truthUnits, `${r.resource} closed hour ${new Date(c.hour).toISOString()}: page ${c.text}, truth ${want?.total ?? 0}`);
          if (shown > 0n) closed += 1;
        } else {
          assert.ok(shown <= truthUnits, `${r.resource} open hour ${new Date(c.hour).toISOString()}: page ${c.text} > truth ${want?.total}`);
        }
      }
    }
    assert.ok(closed >= 3 * 3, `only ${closed} closed non-zero hour totals: no rollover was checked`);
    assert.equal(await page.getAttribute('#error-count', 'data-count'), '0', await page.textContent('#errors'));
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    await fast.stop();
  }
});
