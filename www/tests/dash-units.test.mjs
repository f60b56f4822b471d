// Unit tests of the dashboard's pure parts (emitted to www/build/src by
// `make dash`): the telemetry slice and exact total formatting. What the page
// shows is tested in dashboard.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../build/src/', import.meta.url));
if (!existsSync(`${dir}store.js`)) throw new Error('www/build/src is missing: run `make dash` first');
const store = await import(`${dir}store.js`);
const { formatTotal, formatDecimal, setZone, zoneName, formatClock, formatTime, formatHour, formatDateTime } = await import(`${dir}format.js`);

const anomaly = (meter, kind, severity = 'warning', ts = 0) => ({
  type: 'anomaly', v: 1, meter, kind, severity, z: 5, value: 1, mean: 0, std: 1, ts, evaluations: 3,
});

test('every anomaly event is an anomalyDetected action, seen by middleware, counted and fed', () => {
  const s = store.makeStore();
  const seen = [];
  s.subscribe(() => seen.push(s.getState().telemetry.alertCount));
  for (let i = 0; i < store.FEED_LIMIT + 5; i++) s.dispatch(store.anomalyDetected({ anomaly: anomaly(`m-${i % 3}`, 'spike'), at: i }));
  const t = s.getState().telemetry;
  assert.equal(t.alertCount, store.FEED_LIMIT + 5);
  assert.equal(seen.length, store.FEED_LIMIT + 5, 'one state change per anomaly');
  assert.equal(t.feed.length, store.FEED_LIMIT, 'the feed is bounded');
  assert.equal(t.feed[0].at, store.FEED_LIMIT + 4, 'newest first');
  assert.deepEqual(Object.keys(t.anomalies).sort(), ['m-0', 'm-1', 'm-2']);
  assert.equal(store.anomalyDetected.type, 'telemetry/anomalyDetected');
});

test('badges go 300 s after the meter\'s last alert, and not while an alert is active', () => {
  const s = store.makeStore();
  // `at` is page time, `ts` the reading's (data clock): expiry follows `ts` only.
  s.dispatch(store.anomalyDetected({ anomaly: anomaly('m-1', 'spike', 'critical', 1000), at: 7e12 }));
  s.dispatch(store.anomalyDetected({ anomaly: anomaly('m-2', 'drift', 'warning', 1000), at: 7e12 }));
  s.dispatch(store.anomalyDetected({ anomaly: anomaly('m-2', 'stuck', 'warning', 50_000), at: 7e12 }));
  s.dispatch(store.anomalyCleared({ type: 'cleared', v: 1, meter: 'm-1', kind: 'spike', at: 2000 }));
  s.dispatch(store.anomalyCleared({ type: 'cleared', v: 1, meter: 'm-2', kind: 'drift', at: 2000 }));
  s.dispatch(store.badgesExpired({ now: 1000 + store.BADGE_TTL_MS - 1 }));
  assert.deepEqual(Object.keys(s.getState().telemetry.anomalies).sort(), ['m-1', 'm-2']);
  s.dispatch(store.badgesExpired({ now: 1000 + store.BADGE_TTL_MS }));
  assert.deepEqual(Object.keys(s.getState().telemetry.anomalies), ['m-2'], 'm-1 cleared and 300 s old: gone');
  s.dispatch(store.badgesExpired({ now: 50_000 + store.BADGE_TTL_MS * 10 }));
  assert.deepEqual(Object.keys(s.getState().telemetry.anomalies), ['m-2'], 'm-2 stuck still active: kept');
  s.dispatch(store.anomalyCleared({ type: 'cleared', v: 1, meter: 'm-2', kind: 'stuck', at: 3000 }));
  s.dispatch(store.badgesExpired({ now: 50_000 + store.BADGE_TTL_MS }));
  assert.deepEqual(Object.keys(s.getState().telemetry.anomalies), []);
});

test('the data clock, not the page clock, dismisses badges: 300 s of reading time after the last alert', () => {
  const s = store.makeStore();
  const t0 = 1_764_064_800_000;
  s.dispatch(store.anomalyDetected({ anomaly: anomaly('m-1', 'spike', 'critical', t0), at: 5 }));
  s.dispatch(store.anomalyCleared({ type: 'cleared', v: 1, meter: 'm-1', kind: 'spike', at: t0 + 10_000 }));
  assert.equal(s.getState().telemetry.clock, t0);
  s.dispatch(store.clockAdvanced({ now: t0 + store.BADGE_TTL_MS - 1 }));
  assert.deepEqual(Object.keys(s.getState().telemetry.anomalies), ['m-1'], 'one ms short of 300 s: kept');
  s.dispatch(store.clockAdvanced({ now: t0 + 1 }));
  assert.equal(s.getState().telemetry.clock, t0 + store.BADGE_TTL_MS - 1, 'the clock never goes back');
  s.dispatch(store.clockAdvanced({ now: t0 + store.BADGE_TTL_MS }));
  assert.deepEqual(Object.keys(s.getState().telemetry.anomalies), [], '300 s of reading time later: gone');
});

test('crossing totals messages: the newest worker HLC wins', () => {
  const s = store.makeStore();
  const totals = (wallMs, counter) => ({ type: 'totals', v: 1, hlc: { wallMs, counter }, resources: [] });
  s.dispatch(store.totalsReceived({ totals: totals(10, 2), at: 1 }));
  s.dispatch(store.totalsReceived({ totals: totals(10, 1), at: 2 }));
  s.dispatch(store.totalsReceived({ totals: totals(9, 9), at: 3 }));
  assert.deepEqual(s.getState().telemetry.totals.hlc, { wallMs: 10, counter: 2 });
  s.dispatch(store.totalsReceived({ totals: totals(11, 0), at: 4 }));
  assert.deepEqual([s.getState().telemetry.totals.hlc.wallMs, s.getState().telemetry.totalsAt], [11, 4]);
});

test('errors and notices stay bounded', () => {
  const s = store.makeStore();
  for (let i = 0; i < store.ERROR_LIMIT * 2; i++) s.dispatch(store.errorReported({ code: 'x', message: String(i), at: i }));
  assert.equal(s.getState().telemetry.errors.length, store.ERROR_LIMIT);
  assert.equal(s.getState().telemetry.errorCount, store.ERROR_LIMIT * 2);
  const n = (id) => ({ id, severity: 'info', title: id, text: '', fromMs: 0, toMs: 1 });
  s.dispatch(store.noticesReceived({ upsert: [n('a'), n('b')], remove: [] }));
  s.dispatch(store.noticesReceived({ upsert: [n('b')], remove: ['a'] }));
  assert.deepEqual(s.getState().telemetry.notices.map((x) => x.id), ['b']);
});

test('totals are shown digit for digit, past 2^53 too', () => {
  assert.equal(formatTotal(1234567, 3), '1,234.567');
  assert.equal(formatTotal(5, 3), '0.005');
  assert.equal(formatTotal(0, 3), '0.000');
  assert.equal(formatTotal(1234, 0), '1,234');
  assert.equal(formatTotal('123456789012345678901', 3), '123,456,789,012,345,678.901');
  assert.equal(formatTotal(-1500, 3), '−1.500');
  assert.equal(formatTotal(Number.MAX_SAFE_INTEGER, 2), '90,071,992,547,409.91');
  assert.equal(formatDecimal('812125.125'), '812,125.125');
  assert.equal(formatDecimal('12'), '12');
  // Padded to the resource's decimals so a column lines up, never rounded.
  assert.equal(formatDecimal('89254.03', 3), '89,254.030');
  assert.equal(formatDecimal('12', 3), '12.000');
  assert.equal(formatDecimal('17133.60875', 3), '17,133.60875');
  assert.equal(formatDecimal('-1.5', 3), '−1.500');
});

test('the connection pill: catch-ups only, live, reconnecting with countdown, resyncing, fatal with reason', async () => {
  const { connectionText } = await import(`${dir}view.js`);
  const base = store.makeStore().getState().telemetry;
  const ready = { ...base, worker: { state: 'ready', version: '0.1.0', reason: '' } };
  const conn = (state, extra = {}) => ({ type: 'connection', v: 1, state, attempt: 0, nextRetryAt: null, lastCloseCode: null, reason: '', ...extra });
  const now = 1_000_000;
  assert.equal(connectionText(null, ready, now).state, 'starting');
  assert.deepEqual(connectionText(null, { ...ready, totals: {} }, now), { state: 'rest', text: 'catch-ups only · stream not connected' });
  assert.deepEqual(connectionText(conn('ready'), ready, now), { state: 'live', text: 'live' });
  assert.deepEqual(
    connectionText(conn('disconnected', { attempt: 3, nextRetryAt: now + 6_200, lastCloseCode: 1006, reason: 'connection lost' }), ready, now),
    { state: 'reconnecting', text: 'reconnecting in 7 s (attempt 3, closed 1006): connection lost' },
  );
  assert.equal(connectionText(conn('disconnected', { nextRetryAt: now - 5 }), ready, now).text, 'reconnecting in 0 s (attempt 0)');
  assert.equal(connectionText(conn('resuming'), ready, now).state, 'resyncing');
  assert.equal(connectionText(conn('identifying'), ready, now).state, 'resyncing');
  assert.equal(connectionText(conn('connecting', { attempt: 2 }), ready, now).text, 'connecting (attempt 2)');
  assert.deepEqual(connectionText(conn('stopped', { reason: 'unsupported server version' }), ready, now), { state: 'fatal', text: 'stopped: unsupported server version' });
  assert.deepEqual(connectionText(conn('stopped'), ready, now), { state: 'stopped', text: 'stopped' });
  assert.equal(connectionText(conn('ready'), { ...ready, worker: { state: 'failed', version: '', reason: 'boom' } }, now).state, 'fatal');
});

test('credit: the page acknowledges exactly the frames it rendered, per channel', async () => {
  const { Credit } = await import(`${dir}credit.js`);
  const c = new Credit();
  c.delivered('totals', 3);
  c.delivered('meters.north', 2);
  c.delivered('totals', 0);
  c.delivered('meters.north', 5);
  c.delivered('meters.south', 0);
  assert.deepEqual(c.take(256), [['totals', 3], ['meters.north', 7]], 'sums, and nothing for 0');
  assert.deepEqual(c.take(256), [], 'taken once');
  // A message without `frames` (an older worker): that channel falls back to a whole window.
  c.delivered('meters.east', undefined);
  c.delivered('meters.east', 4);
  c.delivered('totals', 1);
  assert.deepEqual(c.take(256), [['meters.east', 256], ['totals', 1]]);
  c.delivered('totals', -1);
  c.delivered('notices', 1.5);
  assert.deepEqual(c.take(8), [['totals', 8], ['notices', 8]], 'a count that is not a whole number is not trusted');
});

test('series: 1 m buckets up to 2 h and 5 m beyond; empty buckets are gaps, not zeros; the caption says incomplete and the watermark', async () => {
  const series = await import(`${dir}series.js`);
  assert.deepEqual(series.SPANS_MS.map(series.resolutionFor), ['1m', '1m', '5m']);
  assert.equal(series.resolutionFor(7_200_001), '5m');
  const f = (a) => new Float64Array(a);
  const s = {
    type: 'series', v: 1, resource: 'water', resolution: '1m', stepMs: 60_000, from: 0, to: 180_000,
    ts: f([0, 60_000, 120_000]), count: f([2, 0, 1]), sum: f([5, 0, 1.5]), min: f([2, NaN, 1.5]), max: f([3, NaN, 1.5]), last: f([3, NaN, 1.5]),
    sourceWatermark: 1_764_064_860_000, incomplete: true, cached: false,
  };
  assert.deepEqual(series.chartColumns(s), [[0, 60, 120], [5, null, 1.5], [2, null, 1.5], [3, null, 1.5]]);
  const c = series.seriesCaption(s);
  assert.equal(c.incomplete, true);
  assert.match(c.text, /1 min buckets · 2 of 3 with data · data up to .+ · ◐ incomplete/);
  assert.match(series.seriesCaption({ ...s, sourceWatermark: null, incomplete: false, resolution: '5m' }).text, /^5 min buckets .* no data yet$/);
});

test('progress: bootstrap counts channels snapshotted of those subscribed; downloads by bytes of Content-Length; each item goes when done', async () => {
  const { Progress, MAX_DOWNLOADS_SHOWN } = await import(`${dir}progress.js`);
  const p = new Progress();
  assert.deepEqual(p.items(), []);
  p.bootstrap(['totals', 'meters.north', 'meters.south']);
  p.snapshotted('meters.north');
  p.snapshotted('meters.north');
  p.snapshotted('not-subscribed');
  assert.deepEqual(p.items().map((i) => [i.key, i.value, i.max, i.detail]), [['bootstrap', 1, 3, '1 of 3 channels snapshotted (3 subscribed)']]);
  p.download({ key: '/catchup?from=0#1', path: '/catchup?from=0', received: 512 * 1024, total: 2 * 1024 * 1024, done: false });
  assert.deepEqual(p.items().at(-1).detail, '512 KB of 2 MB');
  assert.equal(p.items().at(-1).label, 'Catch-up');
  p.snapshotted('totals');
  p.snapshotted('meters.south');
  assert.equal(p.bootstrapping, false);
  p.download({ key: '/catchup?from=0#1', path: '/catchup?from=0', received: 2 * 1024 * 1024, total: 2 * 1024 * 1024, done: true });
  assert.deepEqual(p.items(), [], 'gone when done');
  for (let i = 0; i < MAX_DOWNLOADS_SHOWN + 2; i++) p.download({ key: `k${i}`, path: '/snapshot-v2?channel=x', received: 1, total: null, done: false });
  const items = p.items();
  assert.equal(items.length, MAX_DOWNLOADS_SHOWN + 1, 'bounded: the rest are counted in one item');
  assert.equal(items.at(-1).detail, '2 more');
  p.seriesComputing({ label: 'group north, water, 6 h', retryAfterMs: 250 });
  assert.match(p.items().at(-1).detail, /computing, next answer in about 250 ms/);
  p.seriesComputing(null);
  assert.equal(p.items().some((i) => i.key === 'series'), false);
});

test('every time on the page is in the zone the header names: ?tz=UTC gives UTC whatever the viewer\'s zone; a bad name keeps the viewer\'s', () => {
  const viewer = Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    // 2026-12-03 21:07:09 UTC is 02:37:09 on Dec 4 in Kolkata (+05:30).
    const t = Date.UTC(2026, 11, 3, 21, 7, 9);
    assert.equal(setZone('Asia/Kolkata'), 'Asia/Kolkata');
    assert.equal(zoneName(), 'Asia/Kolkata');
    assert.equal(formatClock(t), '02:37');
    assert.equal(formatTime(t), '02:37:09');
    assert.equal(formatHour(Date.UTC(2026, 11, 3, 21)), '02:30–03:30');
    assert.equal(setZone('UTC'), 'UTC');
    assert.equal(formatClock(t), '21:07');
    assert.equal(formatTime(t), '21:07:09');
    assert.equal(formatHour(Date.UTC(2026, 11, 3, 21)), '21:00–22:00');
    assert.match(formatDateTime(t), /21:07:09 UTC$/);
    assert.equal(setZone('Not/AZone'), viewer);
    assert.equal(setZone(null), viewer);
  } finally {
    setZone(null);
  }
});

test('refused readings are counted by reason in words; duplicates and other errors are not refusals', () => {
  const s = store.makeStore();
  const report = (code, message) => s.dispatch(store.errorReported({ code, message, at: 0 }));
  report('bad_timestamp', 'timestamp 5 outside [1, 2] (now 1)');
  report('bad_timestamp', 'timestamp 6 outside [1, 2] (now 1)');
  report('bad_value', 'value NaN is not finite');
  report('errors_suppressed', '100 more errors in this batch not reported individually');
  report('entity_limit', 'channel meters.north: 3 new entities refused');
  const t = s.getState().telemetry;
  assert.deepEqual(Object.keys(t.refusals).sort(), ['bad_timestamp', 'bad_value']);
  assert.deepEqual(t.refusals.bad_timestamp, { count: 2, message: 'timestamp 6 outside [1, 2] (now 1)' });
  assert.equal(store.refusedText(0, t.refusals), '0');
  assert.equal(
    store.refusedText(352400, t.refusals),
    '352,400: time outside the plausible window (bad_timestamp, 2 reported); not a finite value in range (bad_value, 1 reported)',
  );
  assert.equal(store.refusedText(3, {}), '3: reasons not reported');
});

test('an accelerated server widens the worker\'s clock allowances for a day of its drift; 1x changes nothing', async () => {
  const { clockAllowance, ALLOWANCE_HOURS, DEFAULTS } = await import(`${dir}clock-allowance.js`);
  const day = ALLOWANCE_HOURS * 3_600_000;
  assert.deepEqual(clockAllowance(1), {});
  assert.deepEqual(clockAllowance(Number.NaN), {});
  // `make demo SPEED=60`: the server gains 59 s a second; after a day of it, 59 days.
  assert.deepEqual(clockAllowance(60), { maxOffsetMs: 59 * day, maxFutureMs: 59 * day, maxClockSkewMs: 59 * day });
  // An explicit offset wins; below a day the clock samples' default bound stays.
  assert.deepEqual(clockAllowance(20, 7_200_000), { maxOffsetMs: 7_200_000, maxFutureMs: 7_200_000 });
  assert.deepEqual(clockAllowance(1, 100), { maxOffsetMs: 100, maxFutureMs: DEFAULTS.maxFutureMs });
  // Slower than real time: readings age as they arrive.
  assert.deepEqual(clockAllowance(0.25), { maxAgeMs: DEFAULTS.maxAgeMs + 0.75 * day, maxClockSkewMs: DEFAULTS.maxClockSkewMs });
  // Every allowance covers the drift it is for, at any speed up to the server's 10,000x.
  for (const speed of [1.5, 2, 20, 60, 240, 10_000]) {
    const a = clockAllowance(speed);
    const drift = (speed - 1) * day;
    assert.ok(a.maxOffsetMs >= drift && a.maxFutureMs >= drift && (a.maxClockSkewMs ?? DEFAULTS.maxClockSkewMs) >= drift, `${speed}x`);
  }
});

test('the page learns the server\'s speed from GET /clock; anything else starts with 1x', async () => {
  const { serverSpeed } = await import(`${dir}clock-allowance.js`);
  const asked = [];
  const answer = (status, body) => async (url) => {
    asked.push(String(url));
    return { ok: status === 200, status, json: async () => (typeof body === 'string' ? JSON.parse(body) : body) };
  };
  assert.equal(await serverSpeed('http://127.0.0.1:9/', answer(200, { serverTime: 1, speed: 360, start: 0 })), 360);
  assert.equal(asked[0], 'http://127.0.0.1:9/clock');
  assert.equal(await serverSpeed('http://127.0.0.1:9', answer(200, { speed: 0.25 })), 0.25);
  // Another server (no endpoint), a body without a usable speed, a network failure: the defaults.
  assert.equal(await serverSpeed('http://h', answer(404, {})), 1);
  for (const speed of [0, -2, 'fast', null, Number.NaN]) assert.equal(await serverSpeed('http://h', answer(200, { speed })), 1, String(speed));
  assert.equal(await serverSpeed('http://h', answer(200, '[1]')), 1);
  assert.equal(await serverSpeed('http://h', answer(200, 'null')), 1);
  assert.equal(await serverSpeed('http://h', async () => { throw new TypeError('network'); }), 1);
  assert.equal(await serverSpeed('http://h', async () => ({ ok: true, json: async () => { throw new SyntaxError('html'); } })), 1);
});

test('the header\'s data time is the newest reading seen, or the catch-up\'s asOf when that is newer', async () => {
  const { dataTime } = await import(`${dir}view.js`);
  const s = store.makeStore();
  assert.equal(dataTime(s.getState().telemetry), null);
  const totals = (wallMs) => ({ type: 'totals', v: 1, hlc: { wallMs, counter: 0 }, node: 1, asOf: { wallMs, counter: 0 }, incomplete: false, currentHour: 0, resources: [], counters: {} });
  s.dispatch(store.totalsReceived({ totals: totals(1_000), at: 0 }));
  assert.equal(dataTime(s.getState().telemetry), 1_000, 'catch-ups only: the data is what the catch-up counted');
  s.dispatch(store.clockAdvanced({ now: 900_000 }));
  assert.equal(dataTime(s.getState().telemetry), 900_000, 'the stream: the newest reading, 15 minutes past the catch-up');
  s.dispatch(store.totalsReceived({ totals: totals(950_000), at: 1 }));
  assert.equal(dataTime(s.getState().telemetry), 950_000);
});
