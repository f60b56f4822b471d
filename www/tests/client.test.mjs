// Unit tests of the page-side client (www/client/, emitted to www/build/client
// by `make dash`): dispatch, ids and acks, the pending bound, and the page
// transport, against a fake worker, a fake WebSocket and a fake fetch. The
// real path (a browser, the worker, the feed server) is dashboard.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = fileURLToPath(new URL('../build/client/index.js', import.meta.url));
if (!existsSync(built)) throw new Error('www/build/client is missing: run `make dash` first');
const { startMeterflow, streamUrl, MeterflowClientError } = await import(built);

/** A worker that records posts; `answer(msg)` plays a message from the worker. */
function fakeWorker() {
  const w = {
    posted: [],
    transfers: [],
    onmessage: null,
    onerror: null,
    terminated: false,
    postMessage(m, t) {
      w.posted.push(m);
      w.transfers.push(t);
    },
    answer(data) {
      w.onmessage({ data });
    },
    terminate() {
      w.terminated = true;
    },
  };
  return w;
}

function fakeSockets() {
  const made = [];
  const open = (url) => {
    const s = {
      url, binaryType: 'blob', readyState: 0, sent: [], closedWith: null,
      onopen: null, onmessage: null, onclose: null, onerror: null,
      send(d) { s.sent.push(d); },
      close(code, reason) {
        if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) throw new Error('InvalidAccessError');
        s.closedWith = { code, reason };
      },
    };
    made.push(s);
    return s;
  };
  return { made, open };
}

function fakeFetch(routes) {
  const asked = [];
  const f = async (url) => {
    asked.push(url);
    const r = routes(url);
    if (r instanceof Error) throw r;
    return {
      ok: r.status >= 200 && r.status < 300,
      status: r.status,
      headers: { get: (n) => (n.toLowerCase() === 'content-type' ? r.type : null) },
      text: async () => r.body,
      arrayBuffer: async () => r.body,
    };
  };
  f.asked = asked;
  return f;
}

const tick = () => new Promise((r) => setTimeout(r, 0));

async function started(opts = {}) {
  const worker = fakeWorker();
  let clock = 1000;
  const p = startMeterflow({ worker, now: () => clock++, feedUrl: 'http://127.0.0.1:8090', ...opts });
  worker.answer({ type: 'ready', v: 1, version: '0.1.0' });
  return { worker, mf: await p };
}

test('start posts the config first and resolves on ready; events reach their handlers', async () => {
  const worker = fakeWorker();
  const p = startMeterflow({ worker, config: { catchupOnStart: true } });
  assert.deepEqual(worker.posted, [{ type: 'config', config: { catchupOnStart: true } }]);
  let resolved = false;
  p.then(() => (resolved = true));
  worker.answer({ type: 'stats', v: 1, meters: 1 });
  await tick();
  assert.equal(resolved, false, 'resolved before ready');
  worker.answer({ type: 'ready', v: 1, version: 'x' });
  const mf = await p;
  const seen = [];
  for (const e of ['totals', 'anomaly', 'cleared', 'connection', 'meters', 'notices', 'detail', 'stats', 'error']) {
    mf.on(e, (m) => seen.push(`${e}:${m.type}`));
  }
  const off = mf.on('anomaly', () => seen.push('second'));
  off();
  for (const type of ['totals', 'anomaly', 'cleared', 'meters', 'notices', 'detail', 'stats', 'error']) worker.answer({ type, v: 1 });
  worker.answer({ type: 'connection', v: 1, state: 'ready', attempt: 0, nextRetryAt: null, lastCloseCode: null, reason: '' });
  worker.answer({ type: 'window', v: 1 });
  assert.deepEqual(seen, [
    'totals:totals', 'anomaly:anomaly', 'cleared:cleared', 'meters:meters', 'notices:notices',
    'detail:detail', 'stats:stats', 'error:error', 'connection:connection',
  ]);
});

test('transport and feedUrl go into the config only when given', async () => {
  const worker = fakeWorker();
  startMeterflow({ worker, transport: 'worker', feedUrl: 'http://h:1' });
  assert.deepEqual(worker.posted, [{ type: 'config', config: { transport: 'worker', feedUrl: 'http://h:1' } }]);
  const w2 = fakeWorker();
  startMeterflow({ worker: w2 });
  assert.deepEqual(w2.posted, [], 'an empty config is not posted');
});

test('a worker that fails before ready rejects the start', async () => {
  const worker = fakeWorker();
  const p = startMeterflow({ worker });
  worker.onerror({ message: 'boom', preventDefault() {} });
  await assert.rejects(p, (e) => e instanceof MeterflowClientError && e.code === 'worker_failed');
});

test('post and query carry ids and resolve on the answer with that id only', async () => {
  const { worker, mf } = await started();
  const buf = new ArrayBuffer(8);
  const a = mf.post({ type: 'readings', data: buf }, [buf]);
  const b = mf.post({ type: 'reset' });
  const q = mf.query({ query: 'stats' });
  const [pa, pb, pq] = worker.posted.slice(-3);
  assert.equal(pa.type, 'readings');
  assert.equal(worker.transfers.at(-3)[0], buf, 'the payload is transferred');
  assert.deepEqual([typeof pa.id, new Set([pa.id, pb.id, pq.id]).size], ['number', 3]);
  assert.deepEqual(pq, { type: 'query', query: 'stats', id: pq.id });
  assert.equal(mf.pending, 3);
  const stats = [];
  mf.on('stats', (s) => stats.push(s));
  // The periodic stats (no id) is not the answer.
  worker.answer({ type: 'stats', v: 1, meters: 1 });
  worker.answer({ type: 'ack', v: 1, id: pb.id, accepted: 0, refused: 0, ms: 0.1 });
  assert.deepEqual(await b, { type: 'ack', v: 1, id: pb.id, accepted: 0, refused: 0, ms: 0.1 });
  worker.answer({ type: 'stats', v: 1, id: pq.id, meters: 2 });
  assert.equal((await q).meters, 2);
  assert.deepEqual(stats.map((s) => s.meters), [1, 2]);
  assert.equal(mf.pending, 1);
  worker.answer({ type: 'ack', v: 1, id: 9999, accepted: 1, refused: 0, ms: 0 });
  assert.equal(mf.pending, 1, 'an ack for no waiter settles nothing');
  worker.answer({ type: 'ack', v: 1, id: pa.id, accepted: 5, refused: 1, ms: 0.2 });
  assert.deepEqual([(await a).accepted, (await a).refused], [5, 1]);
});

test('past maxPending a post is refused with pending_limit; close rejects the rest', async () => {
  const { worker, mf } = await started({ maxPending: 2 });
  const p1 = mf.post({ type: 'reset' });
  const p2 = mf.post({ type: 'reset' });
  const before = worker.posted.length;
  await assert.rejects(mf.post({ type: 'reset' }), (e) => e.code === 'pending_limit');
  assert.equal(worker.posted.length, before, 'a refused post is not sent');
  mf.close();
  await assert.rejects(p1, (e) => e.code === 'closed');
  await assert.rejects(p2, (e) => e.code === 'closed');
  assert.equal(worker.terminated, true);
  await assert.rejects(mf.post({ type: 'reset' }), (e) => e.code === 'closed');
  assert.throws(() => startMeterflow({ worker: fakeWorker(), maxPending: 0 }), RangeError);
});

test('a query answer without its id settles the oldest query of its kind and meter', async () => {
  const { worker, mf } = await started();
  const wa = mf.query({ query: 'window', meter: 'm-1' });
  const wb = mf.query({ query: 'window', meter: 'm-2' });
  const m1 = mf.query({ query: 'meter', meter: 'm-1' });
  assert.equal(mf.pending, 3);
  // A worker that does not echo `id` answers in order; the meter picks the waiter.
  worker.answer({ type: 'window', v: 1, meter: 'm-2', values: new Float64Array([2]) });
  assert.equal((await wb).values[0], 2);
  worker.answer({ type: 'meter', v: 1, meter: 'm-1', count: 7 });
  assert.equal((await m1).count, 7);
  worker.answer({ type: 'window', v: 1, meter: 'm-9', values: new Float64Array([9]) });
  assert.equal(mf.pending, 1, 'an answer for a meter nobody asked about settles nothing');
  worker.answer({ type: 'window', v: 1, meter: 'm-1', values: new Float64Array([1]) });
  assert.equal((await wa).values[0], 1);
  assert.equal(mf.pending, 0);
  // `send` posts without an id and awaits nothing.
  mf.send({ type: 'session', op: 'start' });
  assert.deepEqual(worker.posted.at(-1), { type: 'session', op: 'start' });
  assert.equal(mf.pending, 0);
});

test('an unanswered post or query rejects with timeout and frees its slot', async () => {
  const { mf } = await started({ answerTimeoutMs: 20, maxPending: 1 });
  const q = mf.query({ query: 'window', meter: 'm-1' });
  await assert.rejects(mf.post({ type: 'reset' }), (e) => e.code === 'pending_limit');
  await assert.rejects(q, (e) => e instanceof MeterflowClientError && e.code === 'timeout');
  assert.equal(mf.pending, 0);
  const p = mf.post({ type: 'reset' });
  await assert.rejects(p, (e) => e.code === 'timeout');
  assert.throws(() => startMeterflow({ worker: fakeWorker(), answerTimeoutMs: 0 }), RangeError);
});

test('series: resolved by its id only; computing notes report progress and restart the wait; an error with the id rejects', async () => {
  const { worker, mf } = await started({ answerTimeoutMs: 60 });
  const notes = [];
  const events = [];
  mf.on('series', (m) => events.push(m.state ?? m.sub ?? 'answer'));
  const a = mf.series({ group: 'north', resource: 'electricity', spanMs: 3_600_000 }, { onComputing: (n) => notes.push(n.retryAfterMs) });
  const b = mf.series({ meter: 'm-1', resource: 'water' });
  const [pa, pb] = worker.posted.slice(-2);
  assert.deepEqual(pa, { type: 'query', query: 'series', group: 'north', resource: 'electricity', spanMs: 3_600_000, id: pa.id });
  assert.equal(pb.meter, 'm-1');
  const bTimedOut = assert.rejects(b, (e) => e.code === 'timeout');
  // Each note restarts the wait: 3 notes 40 ms apart outlast the 60 ms timeout.
  for (let i = 0; i < 3; i++) {
    worker.answer({ type: 'series', id: pa.id, state: 'computing', retryAfterMs: 10 });
    await new Promise((r) => setTimeout(r, 40));
  }
  assert.deepEqual(notes, [10, 10, 10]);
  assert.equal(mf.pending, 1, 'b timed out, a still waits');
  await bTimedOut;
  const arrays = { ts: new Float64Array([0, 60_000]), count: new Float64Array([1, 0]), sum: new Float64Array([2, 0]) };
  // Another id's answer (or a subscription update) settles nothing.
  worker.answer({ type: 'series', sub: 's-1', resource: 'electricity', ...arrays });
  worker.answer({ type: 'series', id: pa.id + 100, resource: 'electricity', ...arrays });
  assert.equal(mf.pending, 1);
  worker.answer({ type: 'series', id: pa.id, resource: 'electricity', resolution: '1m', stepMs: 60_000, ...arrays, incomplete: false });
  const got = await a;
  assert.deepEqual([got.id, got.sum[0], got.resolution], [pa.id, 2, '1m']);
  assert.deepEqual(events, ['computing', 'computing', 'computing', 's-1', 'answer', 'answer'], 'every series message is also an event');
  const c = mf.series({ meter: 'nope', resource: 'gas' });
  worker.answer({ type: 'error', v: 1, id: worker.posted.at(-1).id, code: 'unknown_meter', message: 'no meter nope' });
  await assert.rejects(c, (e) => e instanceof MeterflowClientError && e.code === 'unknown_meter');
  // Subscriptions: subscribe, then the returned function unsubscribes.
  const stop = mf.subscribeSeries('s-2', { group: 'east', resource: 'gas', resolution: '5m' });
  assert.deepEqual(worker.posted.at(-1), { type: 'series', op: 'subscribe', sub: 's-2', group: 'east', resource: 'gas', resolution: '5m' });
  stop();
  assert.deepEqual(worker.posted.at(-1), { type: 'series', op: 'unsubscribe', sub: 's-2' });
});

test('stats and totals answers resolve by id, not by type: a periodic one in between settles nothing', async () => {
  const { worker, mf } = await started();
  const t = mf.query({ query: 'totals' });
  const id = worker.posted.at(-1).id;
  worker.answer({ type: 'totals', v: 1, hlc: { wallMs: 1, counter: 0 }, resources: [], frames: 2 });
  assert.equal(mf.pending, 1, 'an unasked totals (no id) is no answer');
  worker.answer({ type: 'totals', v: 1, id, hlc: { wallMs: 2, counter: 0 }, resources: [], frames: 0 });
  assert.equal((await t).hlc.wallMs, 2);
});

test('the page transport reports download progress from a streamed body: bytes of Content-Length, then done; small bodies are read whole', async () => {
  const body = new TextEncoder().encode('{"type":"catchup","v":1}');
  const parts = [body.slice(0, 5), body.slice(5, 12), body.slice(12)];
  const fetch = async () => ({
    ok: true, status: 200,
    headers: { get: (n) => ({ 'content-type': 'application/json', 'content-length': String(body.length) })[n.toLowerCase()] ?? null },
    text: async () => { throw new Error('read through the stream, not text()'); },
    arrayBuffer: async () => { throw new Error('read through the stream'); },
    body: { getReader: () => ({ read: async () => (parts.length ? { done: false, value: parts.shift() } : { done: true }) }) },
  });
  const { worker, mf } = await started({ fetch, progressMinBytes: 0 });
  const seen = [];
  mf.on('download', (p) => seen.push([p.received, p.total, p.done]));
  worker.answer({ type: 'fetch', v: 1, fromHour: 0, path: '/catchup?from=0&meters=1' });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, [[0, 24, false], [5, 24, false], [12, 24, false], [24, 24, false], [24, 24, true]]);
  const posted = worker.posted.find((m) => m.type === 'catchup');
  assert.equal(posted.data, '{"type":"catchup","v":1}', 'the body arrives whole');
  // Under progressMinBytes (default 256 KiB) the body is read with text(): no progress.
  const small = await started({ fetch: async () => ({ ...(await fetch()), text: async () => 'whole' }) });
  const none = [];
  small.mf.on('download', (p) => none.push(p));
  small.worker.answer({ type: 'fetch', v: 1, fromHour: 0, path: '/catchup?from=0&meters=1' });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual([none.length, small.worker.posted.find((m) => m.type === 'catchup')?.data], [0, 'whole']);
});

test('the page transport runs connect, send and close and reports what the socket did', async () => {
  const sockets = fakeSockets();
  const { worker, mf } = await started({ openSocket: sockets.open });
  const errors = [];
  mf.on('error', (e) => errors.push(e.code));
  worker.answer({ type: 'send', v: 1, data: '{"op":"HEARTBEAT"}' });
  assert.deepEqual(errors, ['socket_send_failed']);
  assert.deepEqual(worker.posted.at(-1), { type: 'socket', event: 'close', code: 1006, reason: 'send without an open socket' });

  worker.answer({ type: 'connect', v: 1, url: null });
  const [ws] = sockets.made;
  assert.equal(ws.url, 'ws://127.0.0.1:8090/stream');
  assert.equal(ws.binaryType, 'arraybuffer');
  ws.readyState = 1;
  ws.onopen({});
  assert.deepEqual(worker.posted.at(-1), { type: 'socket', event: 'open' });
  worker.answer({ type: 'send', v: 1, data: 'hi' });
  assert.deepEqual(ws.sent, ['hi']);
  ws.onmessage({ data: '{"op":"HELLO"}' });
  assert.deepEqual(worker.posted.at(-1), { type: 'socket', event: 'message', data: '{"op":"HELLO"}' });
  const buf = new ArrayBuffer(4);
  ws.onmessage({ data: buf });
  assert.equal(worker.posted.at(-1).data, buf);
  assert.deepEqual(worker.transfers.at(-1), [buf], 'binary messages are transferred');
  // A code the browser refuses from a page still closes the socket.
  worker.answer({ type: 'close', v: 1, code: 1001, reason: 'going' });
  assert.deepEqual(ws.closedWith, { code: 1000, reason: 'going' });
  ws.onclose({ code: 1000, reason: 'going' });
  assert.deepEqual(worker.posted.at(-1), { type: 'socket', event: 'close', code: 1000, reason: 'going' });
  // A send that crossed the close (the worker had not yet heard it) is moot: no error, no second close.
  const before = worker.posted.length;
  worker.answer({ type: 'send', v: 1, data: 'late' });
  assert.deepEqual([errors, worker.posted.length, ws.sent.at(-1)], [['socket_send_failed'], before, 'hi']);

  // A socket that is closing drops the send quietly: its own close event follows.
  worker.answer({ type: 'connect', v: 1, url: null });
  const closing = sockets.made.at(-1);
  closing.readyState = 2;
  worker.answer({ type: 'send', v: 1, data: 'late' });
  assert.deepEqual([errors, closing.sent], [['socket_send_failed'], []]);
  // Before the socket opens a send is still the session's mistake.
  closing.readyState = 0;
  worker.answer({ type: 'send', v: 1, data: 'early' });
  assert.deepEqual(errors, ['socket_send_failed', 'socket_send_failed']);

  // A second connect replaces the first socket without a stale close.
  worker.answer({ type: 'connect', v: 1, url: 'ws://127.0.0.1:9/other' });
  worker.answer({ type: 'connect', v: 1, url: 'ws://127.0.0.1:9/third' });
  assert.deepEqual(sockets.made.map((s) => s.url).slice(2), ['ws://127.0.0.1:9/other', 'ws://127.0.0.1:9/third']);
  assert.equal(sockets.made[2].onclose, null, 'the replaced socket no longer reports');
  assert.equal(streamUrl('https://x.example/base', true), 'wss://x.example/stream?format=binary');
});

test('session fetches answer with fetched and the same requestId; ledger fetches with catchup', async () => {
  const bin = new ArrayBuffer(16);
  const fetch = fakeFetch((url) => {
    if (url.includes('/meters/m-17')) return { status: 200, type: 'application/json', body: '{"meter":"m-17"}' };
    if (url.includes('/snapshot-v2')) return { status: 200, type: 'application/octet-stream', body: bin };
    if (url.includes('/catchup?from=3600000')) return { status: 200, type: 'application/json', body: '{"type":"catchup"}' };
    if (url.includes('/catchup?from=0')) return { status: 410, type: 'application/json', body: '{"error":"evicted"}' };
    return new TypeError('network down');
  });
  const { worker, mf } = await started({ fetch });
  const errors = [];
  mf.on('error', (e) => errors.push(`${e.code} ${e.message}`));
  worker.answer({ type: 'fetch', v: 1, requestId: 7, path: '/meters/m-17' });
  worker.answer({ type: 'fetch', v: 1, requestId: 8, path: '/snapshot-v2?channel=totals&epoch=3&since_seq=17' });
  worker.answer({ type: 'fetch', v: 1, requestId: 9, path: '/nowhere' });
  worker.answer({ type: 'fetch', v: 1, reason: 'startup', minAsOf: null, fromHour: 3600000, path: '/catchup?from=3600000&meters=1' });
  worker.answer({ type: 'fetch', v: 1, reason: 'gap', minAsOf: null, fromHour: 0, path: '/catchup?from=0&meters=1' });
  await tick();
  await tick();
  assert.deepEqual(fetch.asked, [
    'http://127.0.0.1:8090/meters/m-17',
    'http://127.0.0.1:8090/snapshot-v2?channel=totals&epoch=3&since_seq=17',
    'http://127.0.0.1:8090/nowhere',
    // The ledger's catch-ups GET the path the worker built (the one its own transport asks).
    'http://127.0.0.1:8090/catchup?from=3600000&meters=1',
    'http://127.0.0.1:8090/catchup?from=0&meters=1',
  ]);
  const byId = (id) => worker.posted.find((m) => m.type === 'fetched' && m.requestId === id);
  assert.deepEqual({ ...byId(7), sentAt: 0, receivedAt: 0 }, {
    type: 'fetched', requestId: 7, ok: true, status: 200, data: '{"meter":"m-17"}', sentAt: 0, receivedAt: 0,
  });
  assert.ok(byId(7).receivedAt > byId(7).sentAt);
  assert.equal(byId(8).data, bin);
  assert.ok(worker.transfers[worker.posted.indexOf(byId(8))].includes(bin), 'binary bodies are transferred');
  assert.deepEqual([byId(9).ok, byId(9).status, 'data' in byId(9)], [false, 0, false]);
  const catchups = worker.posted.filter((m) => m.type === 'catchup');
  assert.equal(catchups.length, 1, 'a failed catch-up is not posted');
  assert.equal(catchups[0].data, '{"type":"catchup"}');
  assert.ok(catchups[0].receivedAt > catchups[0].sentAt);
  assert.equal(errors.length, 1);
  assert.match(errors[0], /^catchup_failed GET \/catchup\?from=0&meters=1: HTTP 410/);
});

test('with the worker transport the session requests are not the page\'s; credit waits for a session', async () => {
  const sockets = fakeSockets();
  const fetch = fakeFetch(() => ({ status: 200, type: 'application/json', body: '{}' }));
  const { worker, mf } = await started({ transport: 'worker', openSocket: sockets.open, fetch });
  worker.answer({ type: 'connect', v: 1, url: null });
  worker.answer({ type: 'fetch', v: 1, requestId: 1, path: '/meters/m-1' });
  worker.answer({ type: 'fetch', v: 1, reason: 'startup', minAsOf: null, fromHour: 3600000, path: '/catchup?from=3600000&meters=1' });
  await tick();
  assert.equal(sockets.made.length, 0);
  assert.deepEqual(fetch.asked, ['http://127.0.0.1:8090/catchup?from=3600000&meters=1'], 'only the ledger catch-up');

  const before = worker.posted.length;
  assert.equal(mf.rendered('totals', 3), false, 'no session: no credit posted');
  assert.equal(worker.posted.length, before);
  worker.answer({ type: 'connection', v: 1, state: 'ready', attempt: 0, nextRetryAt: null, lastCloseCode: null, reason: '' });
  assert.equal(mf.rendered('totals', 3), true);
  assert.deepEqual(worker.posted.at(-1), { type: 'rendered', channel: 'totals', frames: 3 });
  assert.equal(mf.rendered('totals', 0), false);
});
