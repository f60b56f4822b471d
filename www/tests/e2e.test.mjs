// End to end: the synthetic demo page (www/synthetic.html: readings generated
// in the page, for anomaly detection) in Debian's headless Chromium, served by
// www/serve.mjs, running the built wasm package (www/pkg) in its worker. The
// operator dashboard against the feed server is dashboard.test.mjs.
//
// It checks what a person would see: the worker says ready, the stats line
// shows 5,000 meters, each injected anomaly shows up as an alert of its kind
// (and the spike clears), no meter that was left alone raises an alert, and
// neither the page nor the worker reports an error.
//
// Run: `make build && cd www && node --test tests/` (part of `make test`).
// Waits are liveness guards for a hung page, not speed assertions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SyntheticFeed } from '../synthetic.js';
import { serveAndLaunch } from './harness.mjs';

const GUARD_MS = Number(process.env.E2E_GUARD_MS ?? 150_000);

const ctx = serveAndLaunch({ before, after });

test('the demo page streams 5,000 meters and shows the injected anomalies', { timeout: 4 * GUARD_MS }, async () => {
  const page = await ctx.browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('worker', (w) => w.on('close', () => problems.push('the worker closed')));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));

  const response = await page.goto(new URL('synthetic.html', ctx.server.url).href);
  assert.equal(response.status(), 200);
  assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'COOP/COEP headers missing');

  await page.waitForSelector('#status[data-state="ready"]', { timeout: GUARD_MS });
  assert.match(await page.textContent('#status'), /^ready \(meterflow \d+\.\d+\.\d+/);

  await page.waitForSelector('[data-stat="meters"][data-value="5000"]', { timeout: GUARD_MS });
  assert.equal(await page.textContent('[data-stat="meters"]'), '5,000');
  assert.equal(await page.getAttribute('[data-stat="window"]', 'data-value'), '1200');
  const memory = Number(await page.getAttribute('[data-stat="memory"]', 'data-value'));
  assert.ok(memory >= 5000 * 1200 * 8, `linear memory ${memory} cannot hold 5,000 windows`);

  // The first cycle's injections, as the page's own generator schedules them.
  const injected = new SyntheticFeed({ meters: 5000 }).injectionsAt(0);
  const expected = injected.map((inj) => ({ meter: inj.meter, kind: inj.expect, label: inj.label }));
  const alerted = await page.waitForFunction(
    (want) => {
      const rows = [...document.querySelectorAll('#alerts tr[data-meter]')];
      const have = (m, k) => rows.some((r) => r.dataset.meter === m && r.dataset.kind === k);
      return want.every(({ meter, kind }) => have(meter, kind)) && rows.map((r) => ({ ...r.dataset }));
    },
    expected,
    { timeout: GUARD_MS, polling: 250 },
  ).catch(async (e) => {
    const rows = await page.$$eval('#alerts tr[data-meter]', (rs) => rs.map((r) => `${r.dataset.meter}/${r.dataset.kind}`));
    const errors = await page.textContent('#errors');
    throw new Error(`not every injected anomaly alerted: want ${JSON.stringify(expected)}; have [${rows}]; errors: ${errors}; ${e.message}`);
  });

  // Nothing but the injected meters alerted.
  const rows = await alerted.jsonValue();
  const injectedMeters = new Set(injected.map((inj) => inj.meter));
  const strays = rows.filter((r) => !injectedMeters.has(r.meter)).map((r) => `${r.meter}/${r.kind}`);
  assert.deepEqual(strays, [], 'normal meters raised alerts');
  for (const r of rows) assert.ok(['warning', 'critical'].includes(r.severity), `severity ${r.severity}`);

  // The spike is over after 4 readings: its alert clears.
  const spike = injected.find((inj) => inj.label === 'spike');
  await page.waitForSelector(`#alerts tr[data-meter="${spike.meter}"][data-kind="spike"][data-state="cleared"]`, {
    timeout: GUARD_MS,
  });

  const tick = Number(await page.getAttribute('[data-stat="tick"]', 'data-value'));
  assert.ok(Number.isFinite(tick) && tick >= 0, `last tick ${tick}`);
  assert.equal(await page.getAttribute('#error-count', 'data-count'), '0', await page.textContent('#errors'));
  assert.deepEqual(problems, []);
  await page.close();
});
