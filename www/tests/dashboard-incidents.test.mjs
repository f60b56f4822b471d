// End to end: every incident the feed server injects, as an operator sees it.
// The real server (`meterflow-feed`, seed 5, 20x simulated time) serves the
// built dashboard to Debian's headless Chromium; the page runs the stream v2
// session. The server's incidents (`GET /truth`, src/feed/sim.rs) come 5
// simulated minutes apart from its start; for each the test waits for
// - the `anomalyDetected` action (recorded from the page's Redux store
//   `dispatch`) for that meter, of the kind and first severity the incident
//   should raise (DETECTION.md, "At 2 Hz with the defaults"), with the reading
//   time inside the incident and within the documented delay:
//     spike (5 s at 20-30x)       spike, critical, within 3 evaluations
//     burst pipe (water, +50x)    spike, critical, within 3 evaluations
//     stuck (a bandwidth meter)   stuck, warning, at a limit of stuckRun (30) identical readings (read
//                                 from the alert's score; critical first if a burst passed 60)
//     drift (to 3x in 2 min)      drift, warning, within 3 min
//     dropout (5 min)             silent, warning, its `ts` the last reading before
//     leak (+4 sd, 60 min)        spike (or drift), warning, within 8 min (LEAK_SD in
//                                 sim.rs: at 2 sd no rule saw it with 5 minutes of training)
//     stuck at zero (10 min)      stuck, warning, at a limit of stuckRun (30) zeros (as stuck)
//                                 (a spike comes first: DETECTION.md, "Stuck at zero")
// - a badge of that kind on the page, its severity as a shape and its kind in
//   words (the meter's detail badges, read from the DOM); the stuck meter's
//   badge escalates from warning (● in orange, dashed) to critical (▲ in red,
//   solid, upper case) at twice its limit: colour is never the only signal;
// - the header's clocks: "Data up to" the newest reading time (between the
//   server's clock minus a few flushes and its clock, per `/truth`), not the
//   last server catch-up's `asOf`, which is shown beside it and is older;
// then: few of the other 195 meters raised any alert during the run: at most
// HEALTHY_TOLERANCE.fine of the bandwidth meters and
// HEALTHY_TOLERANCE.coarse of the water and energy ones. The meters that
// alerted in CI (bandwidth 1 to 5 of 100 a run in the 7 runs of
// 2026-12-04/05: b-00000, b-00020, b-00041, b-00119, b-00135, b-00195;
// water and energy 2 to 9) read a few values of a coarse quantum (100 MB
// steps on a few hundred MB; a few units a reading at night): their rounding
// made excursions, spikes and stuck runs. Since the quantised-meter rules
// (DETECTION.md, "Quantised meters") `tests/feed_healthy.rs` replays these
// meters natively (both tick phases, jitter, four times of day: 0 alerting
// in every run, 9 to 31 before) and this test measured 0 of 193 in 3 runs.
// The tolerances leave room for the browser's stalls, which the native
// replay does not model; the worker
// refused no reading and scored about every reading the server produced (the
// "readings refused" counter read 352,400 against 127,323 in before the page
// widened `maxFutureMs` with `maxOffsetMs`); the first meter whose badges go loses
// them 300 s of *simulated* time after its last alert; every time on the page
// is in the zone the header names (`?tz=UTC` in a browser whose own zone is
// Asia/Kolkata, with an en-US locale: the charts' axes included); every kind
// of message that crossed has the client's TypeScript type; no CSP violation
// and no console error.
//
// Training is shortened (`baselineReadings=600`, 5 simulated minutes); the
// worker evaluates every 50 ms (`tickMs`), so at 20x an evaluation covers one
// simulated second (2 readings per meter); `silentAfterMs=8000` (8 s of the
// worker's clock, 160 s simulated: the dropout lasts 300). The server starts
// 30 simulated seconds before the run; the dropout's alert comes about 27
// simulated minutes in (about 80 s).
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
/** Simulated time the server's history starts before the run (the incidents come at +5, +10, ... min). */
const HEAD_START_MS = 30_000;
const BADGE_TTL_MS = 300_000;
const METERS = 200;
/** Healthy meters that may raise some alert during the run, fine (bandwidth) and coarse (water, energy): see the header. */
const HEALTHY_TOLERANCE = { fine: 3, coarse: 5 };
const TICK_MS = 500;
/** What each incident kind of the feed simulator should raise first (DETECTION.md, "At 2 Hz with the defaults"). */
const EXPECT = {
  spike: { kind: 'spike', severity: 'critical', evaluations: 3 },
  burst_pipe: { kind: 'spike', severity: 'critical', evaluations: 3 },
  // The stuck run starts with the last reading before the incident (the value it repeats): 30 readings end 14 s in.
  // `run`: the run's readings at an alert whose newest reading is `ms` into the incident.
  stuck: { kind: 'stuck', severity: 'warning', minMs: 28 * TICK_MS, run: (ms) => Math.floor(ms / TICK_MS) + 2 },
  drift: { kind: 'drift', severity: 'warning', maxMs: 180_000 },
  dropout: { kind: 'silent', severity: 'warning' },
  // Half its readings pass z = 4, none z = 8: a spike warning; a drift warning would do as well.
  leak: { kind: 'spike', also: ['drift'], severity: 'warning', maxMs: 8 * 60_000 },
  // The first reading at zero starts the run: 30 of them end 14.5 s in.
  stuck_zero: { kind: 'stuck', severity: 'warning', minMs: 28 * TICK_MS, run: (ms) => Math.floor(ms / TICK_MS) + 1 },
};
/**
 * The stuck rule (DETECTION.md, "Stuck"): a meter that never repeats a reading
 * is stuck at `stuckRun` identical readings, critical at `criticalFactor` times
 * that. A stuck alert's time is not a fixed delay: the worker judges a meter
 * once per evaluation, over every reading since the last, and a loaded machine
 * delivers the 20x stream in bursts (14 to 73 simulated seconds across runs
 * before). So the test reads the limit the detector applied from the alert
 * itself (score = u²/(1+u²), u = run / limit; the run from the alert's newest
 * reading) and holds it to the documented one; the first alert is critical
 * exactly when the run had passed twice the limit at that evaluation.
 */
const STUCK_RUN = 30;
const CRITICAL_FACTOR = 2;
/** The data clock may trail the server's by a few flushes and a loaded machine (simulated ms: 6 s real at 20x). */
const DATA_LAG_MS = 120_000;

/** A badge as a person sees it: its words, shape, colour and border. */
async function badgeLook(page, sel) {
  // Found and read in one evaluation: the page re-renders badges every frame,
  // and a detached element has no computed style.
  const look = await page.waitForFunction((s) => {
    const e = document.querySelector(s);
    if (!e) return null;
    const c = getComputedStyle(e);
    return { text: e.textContent, color: c.color, border: c.borderTopStyle, transform: c.textTransform };
  }, sel, { timeout: GUARD_MS });
  return look.jsonValue();
}
/** Whether alert `a` is the one incident `inc` should raise (a silent alert carries the last reading's time). */
function matches(inc, a) {
  const e = EXPECT[inc.kind];
  if (a.meter !== inc.meter || (a.kind !== e.kind && !e.also?.includes(a.kind))) return false;
  if (inc.kind === 'dropout') return a.ts < inc.start && a.ts >= inc.start - 2 * TICK_MS;
  return a.ts >= inc.start && a.ts <= inc.end;
}

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

test('every injected incident raises anomalyDetected of its kind and a badge on its meter (severity as shape, words and colour), the header tells data time from catch-up time, healthy meters stay quiet, no reading is refused, badges go 300 simulated seconds after the last alert, times are in the zone the header names', { timeout: 3 * GUARD_MS }, async () => {
  const t0 = Date.now() - HEAD_START_MS;
  feed = await startFeed(['--meters', String(METERS), '--seed', '5', '--speed', String(SPEED), '--start-ms', String(t0), '--heartbeat-ms', '5000']);
  const truth = await (await fetch(new URL('truth', feed.url))).json();
  const incidents = truth.incidents;
  assert.deepEqual(incidents.map((i) => i.kind).sort(), Object.keys(EXPECT).sort(), 'one incident of each kind');

  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  // A viewer in Kolkata (+05:30) with a US locale (12-hour clock) who asks for UTC.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setTimezoneOverride', { timezoneId: 'Asia/Kolkata' });
  await cdp.send('Emulation.setLocaleOverride', { locale: 'en-US' });
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
  // The worker's clock check (and the readings' plausible future) allow the server's clock to run up to 2 h ahead.
  const response = await page.goto(new URL('?maxOffsetMs=7200000&baselineReadings=600&tickMs=50&silentAfterMs=8000&tz=UTC', feed.url).href);
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
        if (!t.anomalies[meter] && !window.__removed) window.__removed = { meter, clock: t.clock, lastAlertAt: m.lastAlertAt, detected: window.__detected.length };
      }
      prev = t.anomalies;
    });
  });
  await page.waitForSelector('#connection[data-state="live"]', { timeout: GUARD_MS });
  const clockAtStart = await page.evaluate(() => window.meterflowDashboard.store.getState().telemetry.clock);

  // Each incident: the first alert of its expected kind for its meter.
  const found = new Map();
  const deadline = Date.now() + GUARD_MS;
  while (found.size < incidents.length) {
    const detected = await page.evaluate(() => window.__detected);
    for (const inc of incidents) {
      if (found.has(inc.kind)) continue;
      const hit = detected.find((a) => matches(inc, a));
      if (!hit) continue;
      found.set(inc.kind, hit);
      // The badge, on the page: open the meter and read its detail badges.
      await page.evaluate((m) => window.meterflowDashboard.open(m), inc.meter);
      await page.waitForSelector(`#detail-badges[data-meter="${inc.meter}"] .badge[data-kind="${hit.kind}"]`, { timeout: GUARD_MS });
      const b = await page.$eval(`#detail-badges .badge[data-kind="${hit.kind}"]`, (e) => ({ severity: e.dataset.severity, text: e.textContent }));
      assert.match(b.text, new RegExp(hit.kind), 'the badge names its kind in words');
      assert.match(b.text, b.severity === 'critical' ? /▲/ : /●/, 'and carries the severity as a shape');
      console.log(`# ${inc.kind} on ${inc.meter}: ${hit.kind} ${hit.severity} at ${((hit.ts - inc.start) / 1000).toFixed(1)} s simulated from its start, ${hit.evaluations} evaluations`);
      if (inc.kind === 'stuck' && hit.severity === 'critical') {
        console.log('# stuck: the first alert was already critical (a burst carried the run past twice the limit); its warning badge look is not checked this run');
      } else if (inc.kind === 'stuck') {
        // Severity: the warning (its entry in the anomaly feed keeps the
        // event's severity), then, 60 readings in (30 s simulated), the
        // escalation: the meter's detail badge turns critical. Shape, words
        // and border differ, not only the colour.
        const warning = await badgeLook(page, `#anomaly-feed li[data-meter="${inc.meter}"][data-kind="stuck"] .badge[data-severity="warning"]`);
        await page.waitForFunction((m) => window.__detected.some((a) => a.meter === m && a.kind === 'stuck' && a.severity === 'critical'), inc.meter, { timeout: GUARD_MS });
        const critical = await badgeLook(page, `#detail-badges[data-meter="${inc.meter}"] .badge[data-kind="stuck"][data-severity="critical"]`);
        console.log(`# stuck badge: warning ${JSON.stringify(warning)}, critical ${JSON.stringify(critical)}`);
        assert.match(warning.text, /^● stuck$/);
        assert.match(critical.text, /^▲ stuck$/);
        assert.equal(warning.color, 'rgb(179, 92, 0)', 'warning is orange');
        assert.equal(critical.color, 'rgb(192, 38, 45)', 'critical is red');
        assert.deepEqual([warning.border, critical.border], ['dashed', 'solid'], 'the border tells them apart without colour');
        assert.deepEqual([warning.transform, critical.transform], ['none', 'uppercase'], 'and the case of the words');
      }
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
    const e = EXPECT[inc.kind];
    if (e.run) {
      const run = e.run(hit.ts - inc.start);
      const u = Math.sqrt(hit.score / (1 - hit.score));
      const limit = run / u;
      console.log(`# ${inc.kind}: run ${run} at the alert, score ${hit.score.toFixed(4)}: limit ${limit.toFixed(2)} (documented ${STUCK_RUN})`);
      assert.ok(Math.abs(limit - STUCK_RUN) <= 1, `${inc.kind}: the alert's run ${run} and score ${hit.score} say the limit was ${limit.toFixed(2)}, not stuckRun ${STUCK_RUN}`);
      assert.ok(hit.ts - inc.start >= e.minMs, `${inc.kind}: alert ${hit.ts - inc.start} ms in, before the documented run`);
      const severity = run >= CRITICAL_FACTOR * STUCK_RUN ? 'critical' : 'warning';
      assert.equal(hit.severity, severity, `${inc.kind}: first alert ${hit.kind} ${hit.severity} at run ${run}`);
      continue;
    }
    assert.equal(hit.severity, e.severity, `${inc.kind}: first alert ${hit.kind} ${hit.severity}`);
    if (e.evaluations) assert.ok(hit.evaluations <= e.evaluations, `${inc.kind}: ${hit.kind} after ${hit.evaluations} evaluations (documented: ${e.evaluations})`);
    if (e.minMs !== undefined) assert.ok(hit.ts - inc.start >= e.minMs, `${inc.kind}: alert ${hit.ts - inc.start} ms in, before the documented run`);
    if (e.maxMs !== undefined) assert.ok(hit.ts - inc.start <= e.maxMs, `${inc.kind}: alert ${hit.ts - inc.start} ms in (documented: within ${e.maxMs})`);
  }
  // The header's clocks against the server's (`/truth`, read before and after the page).
  const t1 = await (await fetch(new URL('truth', feed.url))).json();
  const clocks = await page.evaluate(() => ({
    data: Number(document.getElementById('data-time').dataset.ms),
    dataText: document.getElementById('data-time').textContent,
    asOf: Number(document.getElementById('as-of').dataset.asOf.split('.')[0]),
    asOfText: document.getElementById('as-of').textContent,
    header: document.querySelector('.asof').textContent,
  }));
  const t2 = await (await fetch(new URL('truth', feed.url))).json();
  console.log(`# header: ${clocks.header.replace(/\s+/g, ' ')}; server clock ${new Date(t2.serverTime).toISOString()}, data ${(t2.serverTime - clocks.data) / 1000} s behind it, the catch-up ${(clocks.data - clocks.asOf) / 1000} s behind the data`);
  assert.match(clocks.header, /^Data up to .+ · last server catch-up .+ \(times in UTC\)$/s);
  assert.ok(clocks.data <= t2.serverTime, `data up to ${clocks.data}, after the server's clock ${t2.serverTime}`);
  assert.ok(clocks.data >= t1.serverTime - DATA_LAG_MS, `data up to ${clocks.data}: ${t1.serverTime - clocks.data} ms behind the server`);
  assert.ok(clocks.asOf > 0 && clocks.asOf <= t2.asOf.wallMs && clocks.asOf <= clocks.data, `catch-up ${clocks.asOf}`);
  const hms = (ms) => new Date(ms).toISOString().slice(11, 19);
  assert.match(clocks.dataText, new RegExp(`${hms(clocks.data)} UTC$`), 'the data time, in the zone the header names');
  assert.match(clocks.asOfText, new RegExp(`${hms(clocks.asOf)} UTC$`), 'the catch-up time, in the same zone');

  // Healthy meters: the others, over the whole run.
  const detected = await page.evaluate(() => window.__detected);
  const incidentMeters = new Set(incidents.map((i) => i.meter));
  const healthy = [...new Set(detected.filter((a) => !incidentMeters.has(a.meter)).map((a) => a.meter))];
  console.log(`# healthy meters with an alert: ${healthy.length} of ${METERS - incidentMeters.size} (${detected.filter((a) => !incidentMeters.has(a.meter)).map((a) => `${a.meter} ${a.kind}`).join(', ')})`);
  const fine = healthy.filter((m) => m.startsWith('b-'));
  assert.ok(fine.length <= HEALTHY_TOLERANCE.fine, `${fine.length} healthy bandwidth meters raised an alert: ${fine.join(', ')}`);
  assert.ok(healthy.length - fine.length <= HEALTHY_TOLERANCE.coarse, `${healthy.length - fine.length} healthy water/energy meters raised an alert`);

  // Readings: none refused, about every one the server produced scored (the
  // stats come every `statsIntervalMs`; the page shows what they say).
  await page.waitForFunction(() => window.meterflowDashboard.store.getState().telemetry.stats?.readingsIngested > 0, null, { timeout: GUARD_MS });
  const acct = await page.evaluate(() => {
    const t = window.meterflowDashboard.store.getState().telemetry;
    return { clock: t.clock, ingested: t.stats.readingsIngested, rejected: t.stats.readingsRejected, shown: document.querySelector('[data-stat="rejected"]')?.textContent, refusals: t.refusals };
  });
  const produced = (METERS * (acct.clock - clockAtStart)) / TICK_MS;
  console.log(`# readings scored ${acct.ingested}, refused ${acct.rejected}; the server produced about ${Math.round(produced)} after the page went live`);
  assert.equal(acct.rejected, 0, `readings refused: ${JSON.stringify(acct.refusals)}`);
  assert.equal(acct.shown, '0', 'the page shows no refused reading');
  assert.ok(acct.ingested >= 0.9 * produced, `scored ${acct.ingested} of about ${produced} readings`);

  // The store counted every event the page dispatched.
  const counts = await page.evaluate(() => ({ actions: window.__detected.length, alertCount: window.meterflowDashboard.store.getState().telemetry.alertCount }));
  assert.equal(counts.alertCount, counts.actions, 'one anomalyDetected per anomaly event');

  // Expiry: the first meter whose badges went lost them 300 s of simulated
  // time after its last alert (the spike's, 5 minutes in, went before now).
  await page.waitForFunction(() => window.__removed !== null, null, { timeout: GUARD_MS });
  const removed = await page.evaluate(() => window.__removed);
  const after = removed.clock - removed.lastAlertAt;
  console.log(`# ${removed.meter}: badges removed ${(after / 1000).toFixed(1)} s (simulated) after its last alert`);
  assert.ok(after >= BADGE_TTL_MS, `removed ${after} ms after the last alert: before 300 s`);
  // Rows arrive every flush (a few simulated seconds at 20x): the removal follows within a few.
  assert.ok(after < BADGE_TTL_MS + 60_000, `removed ${after} ms after the last alert: long after 300 s`);
  // A meter may alert again after its badges went (a healthy meter's alerts
  // recur): then its entry must hold only the new alerts, not the old ones.
  const state = await page.evaluate((r) => {
    const d = window.meterflowDashboard;
    d.open(r.meter);
    const again = window.__detected.slice(r.detected).filter((a) => a.meter === r.meter).length;
    const entry = d.store.getState().telemetry.anomalies[r.meter];
    return { again, held: Boolean(entry), lastAlertAt: entry?.lastAlertAt ?? null };
  }, removed);
  if (state.again === 0) {
    assert.equal(state.held, false);
    await page.waitForSelector(`#detail-badges[data-meter="${removed.meter}"][hidden]`, { state: 'attached', timeout: GUARD_MS });
    assert.equal(await page.$$eval('#detail-badges .badge', (l) => l.length), 0, 'the badge is gone from the page');
  } else {
    console.log(`# ${removed.meter} alerted ${state.again} more time(s) after its badges went`);
    assert.ok(!state.held || state.lastAlertAt > removed.lastAlertAt, 'the old alert came back with the new one');
  }

  // One zone: the header says UTC, and so does every time on the page, the
  // charts' axes included (uPlot's ticks on UTC minutes, labelled in UTC,
  // 24-hour, though the browser is in Kolkata with a US locale).
  assert.equal(await page.textContent('#zone'), 'UTC');
  assert.match(await page.textContent('#as-of'), /UTC$/);
  const utc = (s) => new Date(s * 1000).toISOString().slice(11, 16);
  await page.waitForFunction(() => (window.meterflowDashboard.charts().buckets?.axes[0]?._values ?? []).length > 0, null, { timeout: GUARD_MS });
  const axes = await page.evaluate(() => {
    const c = window.meterflowDashboard.charts();
    const ax = (u) => (u ? { splits: u.axes[0]._splits, values: u.axes[0]._values } : null);
    return { buckets: ax(c.buckets), series: ax(c.series) };
  });
  for (const [name, ax] of Object.entries(axes)) {
    if (!ax) continue;
    console.log(`# ${name} x axis: ${ax.values.join(' ')}`);
    ax.splits.forEach((s, i) => {
      assert.equal(s % 60, 0, `${name}: tick ${s} is not on a whole UTC minute`);
      assert.equal(ax.values[i], utc(s), `${name}: tick ${s} labelled ${ax.values[i]}`);
    });
  }

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-incidents-1366x768.png') });
  await page.setViewportSize({ width: 1920, height: 1080 });
  // After a render at the new size.
  const renders = await page.evaluate(() => window.meterflowDashboard.renders);
  await page.waitForFunction((n) => window.meterflowDashboard.renders > n + 1, renders, { timeout: GUARD_MS });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-incidents-1920x1080.png') });

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
