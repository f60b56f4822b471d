// The test page's script (www/tests/feed.html): starts the meterflow worker and
// exposes `window.feedTest` to tests/feed-*.test.mjs.
//
// `?transport=worker` (default): the worker owns the WebSocket and fetches
// (config `transport: "worker"`); this page must never be asked to run them.
// `?transport=page`: this page is the transport (PROTOCOL.md, "Stream v2
// session"): it executes `connect` / `send` / `close` / `fetch` with its own
// WebSocket and fetch(), and posts `socket` / `fetched` / `catchup` back.
// Either way it acknowledges what it "renders" with `rendered`, which is what
// replenishes the stream's credit.

const transport = new URLSearchParams(location.search).get('transport') ?? 'worker';
const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });

/** Messages seen per type, the latest of each, every error and connection status. */
const counts = {};
const latest = {};
const errors = [];
const connections = [];
/** Transport requests the worker posted to this page, per type. */
const asked = { connect: 0, send: 0, close: 0, fetch: 0 };
let waiters = [];

worker.onmessage = (event) => {
  const m = event.data;
  counts[m.type] = (counts[m.type] ?? 0) + 1;
  latest[m.type] = m;
  if (m.type === 'error') errors.push(m);
  if (m.type === 'connection') connections.push(m);
  if (m.type in asked) {
    asked[m.type] += 1;
    if (transport === 'page') execute(m);
  }
  acknowledge(m);
  waiters = waiters.filter((w) => !w(m));
};

/**
 * Grants back the credit of what a dashboard would now have drawn: exactly the
 * `frames` each `totals`, `meters` or `notices` message says it shows first.
 */
function acknowledge(m) {
  const channel = m.type === 'meters' ? m.channel : m.type;
  if ((m.type === 'totals' || m.type === 'meters' || m.type === 'notices') && m.frames > 0) {
    worker.postMessage({ type: 'rendered', channel, frames: m.frames });
  }
}

// ---- the page transport ----

let socket = null;

function streamUrl() {
  return `${location.origin.replace(/^http/, 'ws')}/stream?format=binary`;
}

/** Stops listening to a socket and closes it. */
function retire(s, code, reason) {
  s.onopen = s.onmessage = s.onclose = s.onerror = null;
  if (s.readyState <= 1) {
    try {
      s.close(code, reason);
    } catch {
      s.close();
    }
  }
}

function execute(m) {
  switch (m.type) {
    case 'connect': {
      if (socket) retire(socket, 4000, 'replaced by a new connection');
      let s;
      try {
        s = new WebSocket(m.url ?? streamUrl());
      } catch (e) {
        socket = null;
        queueMicrotask(() =>
          worker.postMessage({ type: 'socket', event: 'close', code: 1006, reason: String(e) }),
        );
        return;
      }
      s.binaryType = 'arraybuffer';
      socket = s;
      s.onopen = () => worker.postMessage({ type: 'socket', event: 'open' });
      s.onmessage = (e) => {
        if (typeof e.data === 'string') {
          worker.postMessage({ type: 'socket', event: 'message', data: e.data });
        } else {
          worker.postMessage({ type: 'socket', event: 'message', data: e.data }, [e.data]);
        }
      };
      s.onclose = (e) => {
        if (socket === s) socket = null;
        worker.postMessage({ type: 'socket', event: 'close', code: e.code, reason: e.reason });
      };
      return;
    }
    case 'send':
      if (socket?.readyState === 1) socket.send(m.data);
      return;
    case 'close':
      if (socket) retire(socket, m.code, m.reason);
      socket = null;
      return;
    case 'fetch':
      if (m.requestId === undefined) catchup(m);
      else fetched(m);
      return;
  }
}

async function get(path) {
  const sentAt = Date.now();
  try {
    const r = await fetch(path);
    const binary = (r.headers.get('content-type') ?? '').startsWith('application/octet-stream');
    const data = r.ok ? await (binary ? r.arrayBuffer() : r.text()) : undefined;
    return { ok: r.ok, status: r.status, data, sentAt, receivedAt: Date.now() };
  } catch {
    return { ok: false, status: 0, sentAt, receivedAt: Date.now() };
  }
}

/** A session fetch (snapshot, mini-snapshot, detail), answered by request id. */
async function fetched(m) {
  const r = await get(m.path);
  const msg = { type: 'fetched', requestId: m.requestId, ...r };
  worker.postMessage(msg, r.data instanceof ArrayBuffer ? [r.data] : []);
}

/** The ledger's own catch-up (the path the worker built); a failure is left to the ledger's retry. */
async function catchup(m) {
  const r = await get(`${m.path}&format=binary`);
  if (!r.ok) return;
  const msg = { type: 'catchup', data: r.data, sentAt: r.sentAt, receivedAt: r.receivedAt };
  worker.postMessage(msg, [r.data]);
}

// ---- what the test drives ----

/** Resolves with the first message (from now on) of `type` that passes `pred`. */
function waitFor(type, pred = () => true) {
  return new Promise((resolve) => {
    waiters.push((m) => {
      if (m.type !== type || !pred(m)) return false;
      resolve(m);
      return true;
    });
  });
}

window.feedTest = {
  transport,
  counts,
  latest,
  errors,
  connections,
  asked,
  ready: waitFor('ready'),
  post: (msg) => worker.postMessage(msg),
  waitFor,
  waitForState: (state) =>
    connections.some((c) => c.state === state)
      ? Promise.resolve(connections.find((c) => c.state === state))
      : waitFor('connection', (c) => c.state === state),
  /** The worker's totals now (`query: "totals"`). */
  totals() {
    const next = waitFor('totals');
    worker.postMessage({ type: 'query', query: 'totals' });
    return next;
  },
};
