// The stream v2 session in headless Chromium against the REAL feed server:
// `meterflow-feed` (target/release, `cargo build --release --features feed
// --bin meterflow-feed`) on a free 127.0.0.1 port serves the test page
// (www/tests/feed.html), the worker and the wasm package itself (`--www www`),
// so the page, the worker and the WebSocket share one origin (the server
// refuses upgrades from any other).
//
// For each transport (the worker's own WebSocket + fetch, and the page's), the
// page starts the worker, starts a session on `totals`, waits for `ready` and
// live totals, and then compares the worker's totals with `GET /truth` exactly;
// then checks that the ledger's own catch-ups asked the hours per meter
// (`/truth`'s `catchupRequests`), rebuilt the rows, and that every group's
// totals equal `/truth?meters=1` summed over `/groups` exactly.
//
// Clock: `--speed 1` with the server's default start (the wall clock), so the
// stamps are real time and the worker's default `maxOffsetMs` holds; at a
// higher speed the browser's clock falls behind the simulated stamps.
// Comparing a moving stream: the server ticks every 500 ms; a comparison counts
// when /truth read before and after the worker's totals names the same seq (a
// quiet moment), and the worker must match the truth at one of them. A wrong
// total never matches, so a bug fails the test (after the guard).
//
// Run: `make build feed-bin && cd www && node --test tests/` (part of `make test`).
// Waits are liveness guards for a hung page, not speed assertions.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, requirePackage } from './harness.mjs';
import { startFeed } from './feed-harness.mjs';

const GUARD_MS = Number(process.env.E2E_GUARD_MS ?? 30_000);
const METERS = 500;

let feed;
let browser;
before(async () => {
  requirePackage();
  feed = await startFeed({ meters: METERS, seed: 11, speed: 1, heartbeatMs: 2000 });
  browser = await launchChromium();
});

/** `promise`, or a rejection naming `what` after the guard (the timer is cleared either way). */
async function guarded(promise, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${GUARD_MS} ms`)), GUARD_MS);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}
after(async () => {
  await browser?.close();
  await feed?.stop();
});

async function truth(url = feed.url) {
  const r = await fetch(`${url}/truth`);
  assert.equal(r.status, 200);
  return r.json();
}

/** The `/meters/{id}` body of some meter of the feed (ids are `w-`, `e-` or `b-` + 5 digits). */
async function someMeter() {
  for (const id of ['w-00000', 'e-00000', 'b-00000', 'w-00001', 'e-00001', 'b-00001']) {
    const r = await fetch(`${feed.url}/meters/${id}`);
    if (r.status === 200) return r.json();
  }
  throw new Error('the feed has none of the first meter ids');
}

/** A decimal string ("812.125") as an integer count of 10^-decimals units. */
function units(decimal, decimals) {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(decimal);
  assert.ok(m, `not a decimal: ${decimal}`);
  const frac = (m[3] ?? '').padEnd(decimals, '0');
  assert.equal(frac.length, decimals, `${decimal} has more than ${decimals} decimals`);
  const v = BigInt(m[2] + frac);
  return m[1] ? -v : v;
}

/** Every difference between the worker's `totals` message and the truth. */
function differences(totals, t) {
  const diffs = [];
  for (const r of t.resources) {
    const mine = totals.resources.find((x) => x.resource === r.resource);
    if (!mine) {
      diffs.push(`${r.resource}: missing`);
      continue;
    }
    assert.equal(mine.decimals, r.decimals, `${r.resource} decimals`);
    const listed = new Set();
    for (const b of r.buckets) {
      listed.add(b.hour);
      const got = mine.buckets.find((x) => x.hour === b.hour);
      const want = units(b.total, r.decimals);
      if (!got || BigInt(got.total) !== want) {
        diffs.push(`${r.resource} hour ${b.hour}: worker ${got?.total} truth ${want}`);
      }
    }
    for (const b of mine.buckets) {
      if (!listed.has(b.hour) && BigInt(b.total) !== 0n) {
        diffs.push(`${r.resource} hour ${b.hour}: worker ${b.total}, truth has no such hour`);
      }
    }
  }
  return diffs;
}

/**
 * Waits for a quiet moment (the truth's seq the same before and after reading
 * the worker's totals) at which the worker's totals equal the truth exactly.
 */
async function matchTruth(page, url = feed.url) {
  const deadline = Date.now() + GUARD_MS;
  let last = 'no quiet moment';
  while (Date.now() < deadline) {
    const before = await truth(url);
    const totals = await guarded(page.evaluate(() => window.feedTest.totals()), 'totals reply');
    const after = await truth(url);
    if (before.channels.totals.seq === after.channels.totals.seq) {
      const diffs = differences(totals, before);
      if (diffs.length === 0 && !totals.incomplete) return { totals, truth: before };
      last = `at seq ${before.channels.totals.seq}: incomplete ${totals.incomplete}; ${diffs.join('; ')}`;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the worker's totals never matched /truth: ${last}`);
}

/** A meter id's resource (the feed names meters `w-`, `e-`, `b-` + digits). */
const RESOURCE_OF = { w: 'water', e: 'energy', b: 'bandwidth' };

/**
 * Every difference between the worker's `groups` message and the truth per
 * meter (`/truth?meters=1`, `meterHours`) summed over the feed's `/groups` map:
 * each group's total per resource and hour, exactly, for the hours the worker
 * keeps and the truth holds per meter.
 */
function groupDifferences(msg, t, map) {
  const diffs = [];
  const want = new Map(); // `${group}|${resource}|${hour}` → units
  const groupsOf = new Map();
  for (const [g, ids] of Object.entries(map.groups)) {
    for (const id of ids) groupsOf.set(id, [...(groupsOf.get(id) ?? []), g]);
  }
  const hours = new Set();
  for (const { hour, meters } of t.meterHours) {
    hours.add(hour);
    for (const [id, total] of Object.entries(meters)) {
      const resource = RESOURCE_OF[id[0]];
      for (const g of groupsOf.get(id) ?? ['']) {
        const k = `${g}|${resource}|${hour}`;
        want.set(k, (want.get(k) ?? 0n) + units(total, 3));
      }
    }
  }
  for (const g of [...msg.groups, msg.unassigned]) {
    if (g.incomplete) diffs.push(`group '${g.group}' incomplete`);
    for (const r of g.resources) {
      for (const b of r.buckets) {
        if (!hours.has(b.hour)) continue;
        const k = `${g.group}|${r.resource}|${b.hour}`;
        const w = want.get(k) ?? 0n;
        want.delete(k);
        if (BigInt(b.total) !== w) diffs.push(`group '${g.group}' ${r.resource} hour ${b.hour}: worker ${b.total} truth ${w}`);
      }
    }
  }
  for (const [k, w] of want) if (w !== 0n) diffs.push(`${k}: truth ${w}, the worker has no such bucket`);
  return diffs;
}

/**
 * Waits for a quiet moment at which the worker's next `groups` message equals
 * the truth per group exactly (every meter's rows right, so every group sum is).
 */
async function matchGroups(page) {
  const map = await (await fetch(`${feed.url}/groups`)).json();
  const deadline = Date.now() + GUARD_MS;
  let last = 'no quiet moment';
  while (Date.now() < deadline) {
    const before = await (await fetch(`${feed.url}/truth?meters=1`)).json();
    // The newest `groups` the worker posted (flushed within totalsFlushMs of a frame).
    const msg = await page.evaluate(() => window.feedTest.latest.groups);
    const after = await truth();
    if (msg && before.channels.totals.seq === after.channels.totals.seq && msg.version === map.version) {
      const diffs = groupDifferences(msg, before, map);
      if (diffs.length === 0) return { msg, truth: before, map };
      last = `at seq ${before.channels.totals.seq}: ${diffs.slice(0, 6).join('; ')}`;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the worker's groups never matched /truth?meters=1: ${last}`);
}

for (const transport of ['worker', 'page']) {
  test(`${transport} transport: the session reaches ready and the totals equal /truth exactly`, { timeout: 4 * GUARD_MS }, async () => {
    const page = await browser.context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('worker', (w) => w.on('close', () => problems.push('the worker closed')));

    const response = await page.goto(`${feed.url}/tests/feed.html?transport=${transport}`);
    assert.equal(response.status(), 200);
    await guarded(page.evaluate(() => window.feedTest.ready), 'worker ready');
    await page.evaluate(
      ({ transport, feedUrl }) => {
        const t = window.feedTest;
        // Ledger catch-ups every 2 s, so several run through the transport;
        // totals and groups flushed 50 ms after a frame, well before the next.
        t.post({ type: 'config', config: { transport, feedUrl, catchupIntervalMs: 2000, totalsFlushMs: 50 } });
        t.post({ type: 'session', op: 'start', channels: ['totals'] });
      },
      { transport, feedUrl: feed.url },
    );
    const servedBefore = (await truth()).catchupRequests;
    const ready = await guarded(
      page.evaluate(() => window.feedTest.waitForState('ready')),
      'connection ready',
    ).catch(async (e) => {
      const state = await page.evaluate(() => ({
        connections: window.feedTest.connections, errors: window.feedTest.errors,
        counts: window.feedTest.counts, asked: window.feedTest.asked,
      }));
      throw new Error(`${e.message}: ${JSON.stringify(state)}`);
    });
    assert.equal(ready.lastCloseCode, null);

    const { totals, truth: t } = await matchTruth(page);
    assert.ok(t.channels.totals.seq > 0, 'the stream had delivered frames');

    // The ledger's own catch-ups asked the hours per meter (`meters=1`, the
    // path the worker builds for either transport), and each rebuilt the
    // per-meter rows: more rebuilds than the session's totals snapshots
    // (which ask per meter too) could account for. Then every group total
    // equals the truth per meter summed over the feed's map, exactly.
    const rebuilt = await guarded(
      (async () => {
        for (;;) {
          const served = (await truth()).catchupRequests;
          const stats = await page.evaluate(() => {
            const next = window.feedTest.waitFor('stats', (s) => s.groups !== undefined && s.stream !== undefined);
            window.feedTest.post({ type: 'query', query: 'stats' });
            return next;
          });
          const asked = served.all - servedBefore.all;
          if (asked >= 2 && stats.groups.rebuilds > stats.stream.snapshotFetches) return { served, asked, stats };
          await new Promise((r) => setTimeout(r, 250));
        }
      })(),
      'ledger catch-ups that rebuild the per-meter rows',
    );
    const { served, asked, stats: gs } = rebuilt;
    console.log(`# ${transport} transport: /catchup asked ${asked} (per meter ${served.perMeter - servedBefore.perMeter}); rebuilds ${gs.groups.rebuilds} (refused ${gs.groups.rebuildsRefused}), snapshot fetches ${gs.stream.snapshotFetches}`);
    assert.equal(served.perMeter - servedBefore.perMeter, asked, 'every /catchup the transport ran asked meters=1');
    assert.equal(gs.groups.rebuildsRefused, 0, 'no rebuild was refused');
    const { msg: groupsMsg, truth: gt } = await matchGroups(page);
    assert.ok(groupsMsg.groups.length > 0 && gt.meterHours.length > 0, 'groups and per-meter truth to compare');
    assert.ok(t.readings > 0, 'the server had readings to total');
    assert.ok(totals.resources.some((r) => BigInt(r.total) !== 0n), 'totals are not all zero');

    // The binding timed each delta's wait for the totals message showing it.
    const stats = await guarded(
      page.evaluate(() => {
        const next = window.feedTest.waitFor('stats', (s) => s.deliveryLatencyMs !== undefined);
        window.feedTest.post({ type: 'query', query: 'stats' });
        return next;
      }),
      'stats with deliveryLatencyMs',
    );
    assert.ok(stats.deliveryLatencyMs.samples > 0, JSON.stringify(stats.deliveryLatencyMs));
    console.log(`# ${transport} transport: delivery latency ms ${JSON.stringify(stats.deliveryLatencyMs)}`);

    // A meter's detail through the session: fetched once, then from the cache.
    const meter = await someMeter();
    const askDetail = (m) =>
      guarded(
        page.evaluate((m) => {
          const next = window.feedTest.waitFor('detail', (d) => d.meter === m);
          window.feedTest.post({ type: 'session', op: 'detail', meter: m });
          return next;
        }, m),
        `detail of ${m}`,
      );
    const first = await askDetail(meter.meter);
    assert.equal(first.cached, false);
    assert.equal(first.detail.meter, meter.meter);
    assert.equal(first.detail.resource, meter.resource);
    assert.equal((await askDetail(meter.meter)).cached, true);

    const seen = await page.evaluate(() => ({
      asked: window.feedTest.asked, errors: window.feedTest.errors, counts: window.feedTest.counts,
    }));
    if (transport === 'worker') {
      // The worker ran every request itself: none reached the page.
      assert.deepEqual(seen.asked, { connect: 0, send: 0, close: 0, fetch: 0 });
    } else {
      assert.ok(seen.asked.connect >= 1 && seen.asked.send >= 1 && seen.asked.fetch >= 1,
        `the page transport was asked: ${JSON.stringify(seen.asked)}`);
    }
    assert.deepEqual(seen.errors, [], 'the worker reported errors');

    // Stopping the session closes the socket and says so.
    const stopped = await guarded(
      page.evaluate(() => {
        const next = window.feedTest.waitFor('connection', (c) => c.state === 'disconnected');
        window.feedTest.post({ type: 'session', op: 'stop' });
        return next;
      }),
      'disconnected status after stop',
    );
    assert.equal(stopped.state, 'disconnected');
    assert.deepEqual(problems, []);
    await page.close();
  });
}

// The worker transport rejoins a feed server that restarted on the same port
// (a new process: a new epoch, the old session unknown): the socket closes, the
// session reconnects with backoff, bootstraps afresh, and the totals equal the
// new server's truth exactly.
test('worker transport: a restarted feed server is rejoined and the totals equal its truth', { timeout: 4 * GUARD_MS }, async () => {
  let first = await startFeed({ meters: 300, seed: 12, speed: 1, heartbeatMs: 2000 });
  const port = Number(new URL(first.url).port);
  let second;
  const page = await browser.context.newPage();
  try {
    await page.goto(`${first.url}/tests/feed.html?transport=worker`);
    await guarded(page.evaluate(() => window.feedTest.ready), 'worker ready');
    await page.evaluate((feedUrl) => {
      const t = window.feedTest;
      t.post({ type: 'config', config: { transport: 'worker', feedUrl, backoffCapMs: 1000 } });
      t.post({ type: 'session', op: 'start', channels: ['totals'] });
    }, first.url);
    await guarded(page.evaluate(() => window.feedTest.waitForState('ready')), 'first ready');
    const before = (await truth(first.url)).channels.totals.epoch;
    await first.stop();
    first = null;
    second = await startFeed({ meters: 300, seed: 13, speed: 1, heartbeatMs: 2000, port, epoch: before + 1 });
    const after = await truth(second.url);
    assert.notEqual(after.channels.totals.epoch, before, 'the restarted server has a new epoch');
    const rejoined = await guarded(
      page.evaluate(() => {
        const t = window.feedTest;
        const readies = t.connections.filter((c) => c.state === 'ready');
        return readies.length >= 2 ? readies.at(-1) : t.waitFor('connection', (c) => c.state === 'ready');
      }),
      'ready again after the restart',
    );
    assert.equal(rejoined.state, 'ready');
    await matchTruth(page, second.url);
    const seen = await page.evaluate(() => ({
      asked: window.feedTest.asked, connections: window.feedTest.connections, errors: window.feedTest.errors,
    }));
    console.log(`# restart: ${JSON.stringify(seen.connections.map((c) => [c.state, c.lastCloseCode, c.attempt]))} errors ${JSON.stringify(seen.errors)}`);
    assert.deepEqual(seen.asked, { connect: 0, send: 0, close: 0, fetch: 0 });
    assert.ok(seen.connections.some((c) => c.lastCloseCode !== null), 'the restart was seen as a close');
  } finally {
    await page.close();
    await first?.stop();
    await second?.stop();
  }
});
