// End to end: the feed server's injected incidents, as an operator sees them.
// The real server (`meterflow-feed`, 20x simulated time) serves the built
// dashboard to Debian's headless Chromium; the page runs the stream v2
// session. For the incident the server labels in `GET /truth` that this run
// shows reliably (the burst pipe: see "Not covered") the test waits for:
// - an `anomalyDetected` action for that meter of the kind the incident
//   should raise (spike, recorded from the page's Redux store `dispatch`),
//   with the reading time inside the incident and within the documented 3
//   evaluations (DETECTION.md, "At 2 Hz with the defaults");
// - a badge of that kind on the page, with its severity as a shape and its
//   kind in words (the meter's detail badges, read from the DOM);
// then badge expiry on the data clock: an alert dispatched (through the
// client, as the worker posts it) for a live meter at the current data time,
// then cleared, leaves the page 300 s of *simulated* time later, not before,
// while the accelerated server's rows move the clock (store.ts); and that
// every kind of message the worker and the page exchanged during the run (up
// to 5 of each) has the client's TypeScript type (protocol-check.mjs).
//
// Training is shortened (`baselineReadings=600`, 5 simulated minutes); the
// worker evaluates every 50 ms (`tickMs`), so at 20x an evaluation covers one
// simulated second (2 readings per meter), close to what the documented rules
// assume. The server starts 3 simulated minutes before the run: the burst pipe
// comes after about 50 s.
//
// Not covered (seen in 4 runs on a 2-core machine at load 12-14, left for the
// detection/stream work): the 5 s spike incident raised no alert in any run
// (at 20x it lasts 250 ms of real time, one or two evaluations when the
// worker's 50 ms ticks are delayed); the stuck meter alerted within the
// incident in 3 runs of 4; the 30 min drift raised none within 4 minutes;
// silence is judged on the worker's clock, where accelerated data and stalls
// raised silent alerts on every meter at once (`silentAfterMs` 3-8 s), so the
// dropout's own alert could not be told apart.
//
// Run: `make build dash && cd www && node --test tests/dashboard-incidents.test.mjs`.
// Waits are liveness guards for a hung page, not speed assertions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, WWW } from './harness.mjs';
import { requireDashboard, startFeed } from './dash-harness.mjs';
import { literal, typecheck } from './protocol-check.mjs';

const GUARD_MS = Number(process.env.E2E_GUARD_MS ?? 240_000);
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(WWW, 'artifacts');
const SPEED = 20;
/** Simulated time the server's history starts before the run (the incidents come at +10, +20, ... min). */
const HEAD_START_MS = 3 * 60_000;
const BADGE_TTL_MS = 300_000;
/** What each incident kind of the feed simulator should raise (DETECTION.md, "At 2 Hz with the defaults"). */
const EXPECT = {
  burst_pipe: { kinds: ['spike'], evaluations: 3 },
};

let feed;
let browser;
before(async () => {
  requireDashboard();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await feed?.stop();
});

test('the burst pipe raises anomalyDetected and a spike badge within 3 evaluations; a badge goes 300 simulated seconds after the last alert; what crossed has its TypeScript type', { timeout: 3 * GUARD_MS }, async () => {
  const t0 = Date.now() - HEAD_START_MS;
  feed = await startFeed(['--meters', '200', '--seed', '5', '--speed', String(SPEED), '--start-ms', String(t0), '--heartbeat-ms', '5000']);
  const truth = await (await fetch(new URL('truth', feed.url))).json();
  assert.deepEqual(truth.incidents.map((i) => i.kind).sort(), ['burst_pipe', 'drift', 'dropout', 'spike', 'stuck'], 'one incident of each kind');
  const incidents = truth.incidents.filter((i) => EXPECT[i.kind]);

  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  await page.addInitScript(() => {
    // Up to 5 messages of each type, both ways, with typed arrays and buffers marked.
    window.__messages = { page: {}, worker: {} };
    const plain = (v) => {
      if (v instanceof Float64Array) return { __f64: true };
      if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return { __ab: true };
      if (Array.isArray(v)) return v.slice(0, 3).map(plain);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
      return v;
    };
    const keep = (dir, m) => {
      const t = `${m?.type}`;
      const list = (window.__messages[dir][t] ??= []);
      if (list.length < 5) list.push(plain(m));
    };
    const W = window.Worker;
    window.Worker = class extends W {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => keep('worker', e.data));
      }
      postMessage(m, t) {
        keep('page', m);
        return t === undefined ? super.postMessage(m) : super.postMessage(m, t);
      }
    };
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.setViewportSize({ width: 1366, height: 768 });
  // The worker's clock check allows the server's clock to run up to 2 h ahead.
  const response = await page.goto(new URL('?maxOffsetMs=7200000&baselineReadings=600&tickMs=50', feed.url).href);
  assert.equal(response.status(), 200);
  await page.waitForSelector('#worker[data-state="ready"]', { timeout: GUARD_MS });
  // Every anomalyDetected action the page dispatches, and when a meter's badges first go.
  await page.evaluate(() => {
    const { store } = window.meterflowDashboard;
    window.__detected = [];
    window.__removed = null;
    const dispatch = store.dispatch;
    store.dispatch = (action) => {
      if (action.type === 'telemetry/anomalyDetected') window.__detected.push(action.payload.anomaly);
      return dispatch(action);
    };
    let prev = {};
    store.subscribe(() => {
      const t = store.getState().telemetry;
      if (t.anomalies === prev) return;
      for (const [meter, m] of Object.entries(prev)) {
        if (!t.anomalies[meter] && !window.__removed) window.__removed = { meter, clock: t.clock, lastAlertAt: m.lastAlertAt };
      }
      prev = t.anomalies;
    });
  });
  await page.waitForSelector('#connection[data-state="live"]', { timeout: GUARD_MS });

  // Each incident: the first alert of an expected kind for its meter.
  const found = new Map();
  const deadline = Date.now() + GUARD_MS;
  while (found.size < incidents.length) {
    const detected = await page.evaluate(() => window.__detected);
    for (const inc of incidents) {
      if (found.has(inc.kind)) continue;
      const hit = detected.find((a) => a.meter === inc.meter && EXPECT[inc.kind].kinds.includes(a.kind) && a.ts >= inc.start && a.ts <= inc.end);
      if (!hit) continue;
      found.set(inc.kind, hit);
      // The badge, on the page: open the meter and read its detail badges.
      await page.evaluate((m) => window.meterflowDashboard.open(m), inc.meter);
      await page.waitForSelector(`#detail-badges[data-meter="${inc.meter}"] .badge[data-kind="${hit.kind}"]`, { timeout: GUARD_MS });
      const b = await page.$eval(`#detail-badges .badge[data-kind="${hit.kind}"]`, (e) => ({ severity: e.dataset.severity, text: e.textContent }));
      assert.match(b.text, new RegExp(hit.kind), 'the badge names its kind in words');
      assert.match(b.text, b.severity === 'critical' ? /▲/ : /●/, 'and carries the severity as a shape');
      console.log(`# ${inc.kind} on ${inc.meter}: ${hit.kind} ${hit.severity} after ${((hit.ts - inc.start) / 1000).toFixed(1)} s simulated, ${hit.evaluations} evaluations`);
    }
    if (found.size === incidents.length) break;
    if (Date.now() > deadline) {
      const missing = incidents.filter((i) => !found.has(i.kind)).map((i) => `${i.kind} on ${i.meter}`);
      const seen = detected.filter((a) => incidents.some((i) => i.meter === a.meter)).map((a) => `${a.meter} ${a.kind} @${a.ts}`);
      throw new Error(`no alert for: ${missing.join(', ')}; alerts on incident meters: ${seen.join('; ')}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const inc of incidents) {
    const hit = found.get(inc.kind);
    assert.ok(hit.evaluations <= EXPECT[inc.kind].evaluations, `${inc.kind}: ${hit.kind} after ${hit.evaluations} evaluations (documented: ${EXPECT[inc.kind].evaluations})`);
  }
  // The store counted every event the page dispatched.
  const counts = await page.evaluate(() => ({ actions: window.__detected.length, alertCount: window.meterflowDashboard.store.getState().telemetry.alertCount }));
  assert.equal(counts.alertCount, counts.actions, 'one anomalyDetected per anomaly event');

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-incidents-1366x768.png') });

  // Expiry: an alert for a live meter without badges, at the current data time, then cleared.
  const quiet = await page.evaluate(() => {
    const d = window.meterflowDashboard;
    const t = d.store.getState().telemetry;
    const meter = d.meters.ids().find((id) => !t.anomalies[id]);
    const mf = d.client();
    mf.dispatch({ type: 'anomaly', v: 1, meter, kind: 'spike', severity: 'critical', z: 9, value: 1, mean: 0, std: 1, ts: t.clock, evaluations: 3 });
    mf.dispatch({ type: 'cleared', v: 1, meter, kind: 'spike', at: t.clock });
    d.open(meter);
    return { meter, at: t.clock };
  });
  await page.waitForSelector(`#detail-badges[data-meter="${quiet.meter}"] .badge[data-kind="spike"][data-severity="critical"]`, { timeout: GUARD_MS });
  // The first meter whose badges go (this one, or one the detector alerted) loses them 300 s of simulated time after its last alert.
  await page.waitForFunction(() => window.__removed !== null, null, { timeout: GUARD_MS });
  const removed = await page.evaluate(() => window.__removed);
  const after = removed.clock - removed.lastAlertAt;
  console.log(`# ${removed.meter}: badges removed ${(after / 1000).toFixed(1)} s (simulated) after its last alert`);
  assert.ok(after >= BADGE_TTL_MS, `removed ${after} ms after the last alert: before 300 s`);
  // Rows arrive every flush (at 20x, a 250 ms flush is 5 s simulated): the removal follows within a few.
  assert.ok(after < BADGE_TTL_MS + 60_000, `removed ${after} ms after the last alert: long after 300 s`);
  await page.waitForSelector(`#detail-badges[data-meter="${quiet.meter}"][hidden]`, { state: 'attached', timeout: GUARD_MS });
  const gone = await page.evaluate((m) => {
    const t = window.meterflowDashboard.store.getState().telemetry;
    return { present: Boolean(t.anomalies[m]), clock: t.clock };
  }, quiet.meter);
  assert.equal(gone.present, false);
  assert.ok(gone.clock - quiet.at >= BADGE_TTL_MS, `${quiet.meter}: gone ${gone.clock - quiet.at} ms of data time after its alert`);
  assert.equal(await page.$$eval('#detail-badges .badge', (l) => l.length), 0, 'the badge is gone from the page');

  // What really crossed, both ways, against the client's types.
  const messages = await page.evaluate(() => window.__messages);
  const sample = (dir) => Object.values(messages[dir]).flat().map((m, i) => ({ text: literal(m), line: i }));
  const crossed = { page: sample('page'), worker: sample('worker') };
  console.log(`# types checked: page -> worker ${Object.keys(messages.page).join(', ')}; worker -> page ${Object.keys(messages.worker).join(', ')}`);
  for (const t of ['ready', 'totals', 'meters', 'connection', 'anomaly', 'stats', 'connect', 'send']) {
    assert.ok(messages.worker[t], `no '${t}' message recorded: the type check would not cover it`);
  }
  const checked = typecheck(crossed);
  assert.equal(checked.status, 0, `a message that crossed does not have its TypeScript type:\n${checked.output}`);

  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'CSP violations');
  assert.deepEqual(problems, []);
  await page.close();
});
