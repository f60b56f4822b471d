// The demo page: starts the meterflow worker, feeds it a synthetic stream of
// binary reading frames, and renders what it posts back.
//
// URL parameters (for trying things out): `meters` (default 5000).
import { SyntheticFeed } from './synthetic.js';
import { ReadingFrameEncoder } from './frames.js';

const params = new URLSearchParams(location.search);
const METERS = Number(params.get('meters') ?? 5000);
/** Steps of history sent at start-up (5 min at 2 Hz), so windows are past warm-up and trained at once. */
const HISTORY_STEPS = 600;
/**
 * The demo's configuration: room for its meters, a 10 s silence limit so the
 * dropout shows soon, and training (`baselineReadings`, docs/DETECTION.md) short
 * enough to end within the 5 min of history, so drift and stuck can alert in a
 * two-minute demo (the default, 7,200 readings, is an hour at 2 Hz).
 */
const CONFIG = { maxMeters: METERS, silentAfterMs: 10_000, baselineReadings: 500 };
const MAX_ROWS = 300;

const $ = (sel) => document.querySelector(sel);
const fmt = new Intl.NumberFormat('en-US');
const fmt2 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB');

const state = { ready: false, stats: null, alerts: new Map(), errors: [], warnings: [], sent: 0 };
window.meterflowDemo = state;

// ---- the worker ------------------------------------------------------------

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
worker.onmessage = (event) => onWorkerMessage(event.data);
worker.onerror = (event) => {
  event.preventDefault();
  fail(`worker error: ${event.message || 'the worker failed to start'}`);
};
worker.onmessageerror = () => fail('a worker message could not be deserialized');
// Posted before the worker is ready: worker.js queues it.
worker.postMessage({ type: 'config', config: CONFIG });

function onWorkerMessage(msg) {
  switch (msg.type) {
    case 'ready':
      state.ready = true;
      $('#status').textContent = `ready (meterflow ${msg.version})`;
      $('#status').dataset.state = 'ready';
      break;
    case 'stats':
      renderStats(msg);
      break;
    case 'anomaly':
      renderAnomaly(msg);
      break;
    case 'cleared':
      renderCleared(msg);
      break;
    case 'error':
      state.errors.push(msg);
      $('#error-count').textContent = String(state.errors.length);
      $('#error-count').dataset.count = String(state.errors.length);
      logLine(`${msg.code}: ${msg.message}${msg.position === undefined ? '' : ` (item ${msg.position})`}`);
      break;
    case 'warning':
      state.warnings.push(msg);
      logLine(`warning ${msg.code}: ${msg.message}`);
      break;
    default:
      break; // totals, fetch, window, meter: not used by this page
  }
}

function fail(text) {
  state.errors.push({ code: 'page', message: text });
  $('#status').textContent = text;
  $('#status').dataset.state = 'failed';
  $('#error-count').textContent = String(state.errors.length);
  $('#error-count').dataset.count = String(state.errors.length);
  logLine(text);
}

function logLine(text) {
  const li = document.createElement('li');
  li.textContent = text;
  const list = $('#errors');
  list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
}

// ---- the synthetic feed ----------------------------------------------------

const feed = new SyntheticFeed({ meters: METERS });
const encoder = new ReadingFrameEncoder(feed.meterIds);
const t0 = Date.now();
const shown = new Set();

function send(step) {
  const { indices, values } = feed.step(step);
  const buf = encoder.frame(t0 + step * feed.stepMs, values, indices);
  worker.postMessage({ type: 'readings', data: buf }, [buf]);
  state.sent += indices.length;
  for (const inj of feed.injectionsAt(step)) {
    const key = `${inj.cycle}/${inj.label}`;
    if (step >= inj.fromStep && !shown.has(key)) {
      shown.add(key);
      renderInjected(inj, t0 + inj.fromStep * feed.stepMs);
    }
  }
}

for (let step = -HISTORY_STEPS; step < 0; step++) send(step);
let next = 0;
setInterval(() => {
  // Catch up on every step that is due (timers in a background tab fire late).
  const due = Math.floor((Date.now() - t0) / feed.stepMs);
  for (; next <= due; next++) send(next);
  const sent = $('[data-stat="sent"]');
  sent.textContent = fmt.format(state.sent);
  sent.dataset.value = String(state.sent);
}, feed.stepMs / 2);

// ---- rendering -------------------------------------------------------------

function setStat(name, text, value) {
  const el = $(`[data-stat="${name}"]`);
  el.textContent = text;
  el.dataset.value = String(value);
}

function renderStats(s) {
  state.stats = s;
  setStat('meters', fmt.format(s.meters), s.meters);
  setStat('window', fmt.format(s.window), s.window);
  setStat('memory', mb(s.linearMemoryBytes), s.linearMemoryBytes);
  setStat('engine', mb(s.engineBytes), s.engineBytes);
  setStat('tick', `${s.lastTickEvalMs.toFixed(2)} ms`, s.lastTickEvalMs);
  setStat('ingested', fmt.format(s.readingsIngested), s.readingsIngested);
  setStat('alerts', fmt.format(s.activeAlerts), s.activeAlerts);
}

function renderAnomaly(a) {
  const key = `${a.meter}/${a.kind}`;
  let row = state.alerts.get(key);
  if (!row) {
    row = document.createElement('tr');
    row.dataset.meter = a.meter;
    row.dataset.kind = a.kind;
    state.alerts.set(key, row);
  }
  row.dataset.state = 'active';
  row.dataset.severity = a.severity;
  row.replaceChildren(
    cell(a.meter),
    cell(a.kind, `badge kind-${a.kind}`),
    cell(a.severity, `sev-${a.severity}`),
    cell(fmt2.format(a.z)),
    cell(fmt2.format(a.value)),
    cell(`${fmt2.format(a.mean)} ± ${fmt2.format(a.std)}`),
    cell(clock(a.ts)),
    cell('active', 'state'),
  );
  const body = $('#alerts tbody');
  body.prepend(row);
  while (body.children.length > MAX_ROWS) {
    const last = body.lastChild;
    state.alerts.delete(`${last.dataset.meter}/${last.dataset.kind}`);
    last.remove();
  }
}

function renderCleared(c) {
  const row = state.alerts.get(`${c.meter}/${c.kind}`);
  if (!row) return;
  row.dataset.state = 'cleared';
  row.querySelector('.state').textContent = `cleared ${clock(c.at)}`;
}

function renderInjected(inj, atMs) {
  const row = document.createElement('tr');
  row.dataset.meter = inj.meter;
  row.dataset.label = inj.label;
  row.dataset.expect = inj.expect;
  row.append(cell(inj.meter), cell(inj.label), cell(clock(atMs)), cell(inj.expect));
  const body = $('#injected tbody');
  body.prepend(row);
  while (body.children.length > 50) body.lastChild.remove();
}

function cell(text, className) {
  const td = document.createElement('td');
  if (className) {
    const span = document.createElement('span');
    span.className = className;
    span.textContent = text;
    td.append(span);
  } else {
    td.textContent = text;
  }
  return td;
}
