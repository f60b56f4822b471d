// End to end: the dashboard as `make demo` serves it, in Debian's headless
// Chromium against the real feed server (`meterflow-feed`, stream session on).
//
// - Layout: at 1366x768 and at 3840x2160 the page does not scroll sideways,
//   every panel lies inside the viewport's width, no element sticks out of
//   its panel (scroll areas aside: the totals table, the meter list, the
//   feed scroll on purpose) and no element cuts its own content off
//   (overflow hidden with more content than room). Screenshots of both go to
//   www/artifacts/ (E2E_ARTIFACTS to move them).
// - Keyboard: Tab reaches the meter list; with nothing selected the first
//   ArrowDown selects the first meter (it used to select the second), ArrowDown
//   and ArrowUp move by one, Enter opens the meter's detail.
// - An accelerated server: at 360x the server's clock is hours ahead within
//   30 s; the bare URL (the page reads the server's speed from `GET /clock`)
//   and `?speed=360` refuse none; `?speed=1`, which overrides the server, is
//   reported beside them (its readings are refused within seconds).
//
// Run: `make build dash && cd www && node --test tests/dashboard-demo.test.mjs`.
// Waits are liveness guards for a hung page, not speed assertions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, WWW } from './harness.mjs';
import { requireDashboard, startFeed } from './dash-harness.mjs';

const GUARD_MS = Number(process.env.E2E_GUARD_MS ?? 60_000);
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(WWW, 'artifacts');
const METERS = 300;
const SCREENS = [[1366, 768], [3840, 2160]];

let browser;
const feeds = [];
before(async () => {
  requireDashboard();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  for (const f of feeds) await f.stop();
});

/** A page with page errors, console errors and CSP violations collected. */
async function open(feed, query) {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const response = await page.goto(new URL(query, feed.url).href);
  assert.equal(response.status(), 200);
  await page.waitForSelector('#worker[data-state="ready"]', { timeout: GUARD_MS });
  await page.waitForSelector('#connection[data-state="live"]', { timeout: GUARD_MS });
  return { page, problems };
}

/** What sticks out: the page sideways, panels past the viewport, elements past their panel, content cut off. */
function layoutProblems() {
  const out = [];
  const vw = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > vw) out.push(`the page is ${document.documentElement.scrollWidth} px wide in ${vw}`);
  const scrolls = (e) => /auto|scroll/.test(getComputedStyle(e).overflowX);
  const name = (e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.classList.length ? `.${[...e.classList].join('.')}` : ''}`;
  for (const panel of document.querySelectorAll('.topbar, .panel')) {
    const p = panel.getBoundingClientRect();
    if (p.left < -0.5 || p.right > vw + 0.5) out.push(`${name(panel)} spans ${p.left}..${p.right} of ${vw}`);
    for (const e of panel.querySelectorAll('*')) {
      const r = e.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      // Inside a scroll area its content may be wider: that is what it is for.
      let a = e.parentElement;
      while (a && a !== panel && !scrolls(a)) a = a.parentElement;
      if (a && a !== panel) continue;
      if (r.left < p.left - 1 || r.right > p.right + 1) out.push(`${name(e)} in ${name(panel)} spans ${r.left}..${r.right}, the panel ${p.left}..${p.right}`);
      const cs = getComputedStyle(e);
      if (/hidden|clip/.test(cs.overflowX) && e.scrollWidth > e.clientWidth + 1) out.push(`${name(e)} cuts off ${e.scrollWidth - e.clientWidth} px`);
    }
  }
  return out.slice(0, 20);
}

test('at 1366x768 and 3840x2160 nothing overflows or is clipped, and the meter list walks with the keyboard', { timeout: 4 * GUARD_MS }, async () => {
  const feed = await startFeed(['--meters', String(METERS), '--seed', '3', '--speed', '1']);
  feeds.push(feed);
  const { page, problems } = await open(feed, '?tz=UTC');
  await page.waitForFunction((n) => window.meterflowDashboard.meters.size === n, METERS, { timeout: GUARD_MS });
  await page.waitForSelector('#totals tbody tr', { timeout: GUARD_MS });
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const [width, height] of SCREENS) {
    await page.setViewportSize({ width, height });
    // Two renders at the new size (the charts follow their hosts by ResizeObserver).
    const renders = await page.evaluate(() => window.meterflowDashboard.renders);
    await page.waitForFunction((n) => window.meterflowDashboard.renders > n + 1, renders, { timeout: GUARD_MS });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const found = await page.evaluate(layoutProblems);
    assert.deepEqual(found, [], `at ${width}x${height}`);
    await page.screenshot({ path: join(ARTIFACTS, `dashboard-demo-${width}x${height}.png`) });
  }
  await page.setViewportSize({ width: 1366, height: 768 });

  // Tab from the top of the page reaches the meter list.
  await page.evaluate(() => document.activeElement?.blur());
  let tabs = 0;
  for (; tabs < 60; tabs++) {
    if (await page.evaluate(() => document.activeElement?.id === 'meter-list')) break;
    await page.keyboard.press('Tab');
  }
  assert.ok(tabs < 60, 'Tab never reached the meter list');
  const ids = await page.evaluate(() => window.meterflowDashboard.meters.ids().slice(0, 3));
  const selected = () => page.$$eval('#meter-list [aria-selected="true"]', (l) => l.map((e) => e.dataset.meter));
  assert.deepEqual(await selected(), [], 'nothing selected before the first key');
  const press = async (key, meter) => {
    await page.keyboard.press(key);
    await page.waitForSelector(`#meter-list [aria-selected="true"][data-meter="${meter}"]`, { timeout: GUARD_MS });
    assert.deepEqual(await selected(), [meter], `${key}: one row selected`);
    assert.equal(await page.getAttribute('#meter-list', 'aria-activedescendant'), await page.getAttribute(`#meter-list [data-meter="${meter}"]`, 'id'));
  };
  await press('ArrowDown', ids[0]);
  await press('ArrowDown', ids[1]);
  await press('ArrowUp', ids[0]);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#detail[data-meter="${ids[0]}"] h3`, { timeout: GUARD_MS });
  assert.match(await page.textContent('#detail h3'), new RegExp(`^${ids[0]}`));
  console.log(`# Tab x${tabs} to the list; ArrowDown ${ids[0]}, ArrowDown ${ids[1]}, ArrowUp ${ids[0]}, Enter opened ${ids[0]}`);

  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'CSP violations');
  assert.deepEqual(problems, []);
  await page.close();
});

test('an accelerated server\'s readings stay plausible: at 360x none is refused, on the bare URL (the page reads /clock) and with ?speed= (an explicit ?speed=1 is reported beside them)', { timeout: 4 * GUARD_MS }, async () => {
  const SPEED = 360;
  const feed = await startFeed(['--meters', '40', '--seed', '9', '--speed', String(SPEED)]);
  feeds.push(feed);
  const clock = await (await fetch(new URL('clock', feed.url))).json();
  assert.equal(clock.speed, SPEED, 'GET /clock says the server\'s speed');
  assert.ok(Number.isFinite(clock.serverTime) && Number.isFinite(clock.start));
  const stats = (page) => page.evaluate(() => {
    const t = window.meterflowDashboard.store.getState().telemetry;
    return { ingested: t.stats?.readingsIngested ?? 0, rejected: t.stats?.readingsRejected ?? 0, refusals: t.refusals, errors: t.errors.map((e) => e.code) };
  });
  // The control, reported rather than asserted: `?speed=1` overrides what the
  // server says, so the worker keeps its defaults, which usually refuse the
  // readings within seconds (5 minutes ahead is under 1 s of real time); when
  // depends on when the page's clock sync settles, which a loaded CI machine
  // moves (one CI run saw none in 60 s).
  const plain = await open(feed, '?speed=1&tz=UTC');
  const refused = await plain.page.waitForFunction(() => (window.meterflowDashboard.store.getState().telemetry.stats?.readingsRejected ?? 0) > 0, null, { timeout: 20_000 })
    .then(() => true, () => false);
  const control = await stats(plain.page);
  console.log(`# with ?speed=1: ${control.rejected} refused${refused ? '' : ' within 20 s'}, ${control.ingested} scored; errors ${[...new Set(control.errors)].join(', ') || 'none'}`);
  await plain.page.close();

  const pages = [['the bare URL', await open(feed, '?tz=UTC')], [`?speed=${SPEED}`, await open(feed, `?speed=${SPEED}&tz=UTC`)]];
  // Until the server's clock is 2.5 h ahead of the page's: past the 2 h `?maxOffsetMs=7200000` the tests used to pass.
  const ahead = async () => (await (await fetch(new URL('truth', feed.url))).json()).serverTime - Date.now();
  const deadline = Date.now() + GUARD_MS;
  while ((await ahead()) < 2.5 * 3_600_000) {
    assert.ok(Date.now() < deadline, 'the server never got 2.5 h ahead');
    await new Promise((r) => setTimeout(r, 1000));
  }
  for (const [name, { page, problems }] of pages) {
    const first = await stats(page);
    await page.waitForFunction((n) => window.meterflowDashboard.store.getState().telemetry.stats?.readingsIngested > n, first.ingested, { timeout: GUARD_MS });
    const s = await stats(page);
    console.log(`# ${name}: server ${((await ahead()) / 3_600_000).toFixed(2)} h ahead; ${s.rejected} refused, ${s.ingested} scored; errors ${[...new Set(s.errors)].join(', ') || 'none'}`);
    assert.equal(s.rejected, 0, `${name}: readings refused: ${JSON.stringify(s.refusals)}`);
    assert.ok(s.ingested > 0, name);
    assert.deepEqual(s.errors.filter((c) => c === 'bad_timestamp' || c === 'clock_ahead'), [], name);
    assert.equal(await page.textContent('[data-stat="rejected"]'), '0', name);
    assert.deepEqual(await page.evaluate(() => window.__csp), [], `${name}: CSP violations`);
    assert.deepEqual(problems, [], name);
    await page.close();
  }
});
