// The operator dashboard: starts the meterflow worker through the page-side
// client, feeds every event into the Redux store as it arrives, and renders
// at most once per animation frame; after each render it acknowledges what
// it rendered (credit), so the stream follows the page's real speed.
//
// Until the stream v2 session is wired into the worker, totals come through
// the ledger's catch-up path: `catchupOnStart` makes the worker ask for a
// catch-up at once and every `catchupIntervalMs` after, and the client's page
// transport answers with `GET /catchup` from the feed server that serves
// this page. URL parameters: `catchupMs` (default 5,000), `binary=1` for
// binary catch-ups and stream frames, `stream=v2` to start the session
// (channels `totals`, `notices`, `meters.<group>`).
import { startMeterflow, type MeterflowClient } from '../client/index.js';
import { BucketChart } from './chart.js';
import { zoneName } from './format.js';
import { MeterTable, VirtualList } from './meters.js';
import {
  anomalyCleared, anomalyDetected, badgesExpired, connectionChanged, errorReported, makeStore, noticesReceived,
  statsReceived, totalsReceived, workerFailed, workerReady, type RootState,
} from './store.js';
import {
  renderConnection, renderDetail, renderFeed, renderMeterRow, renderSide, renderStats, renderTotals,
} from './view.js';
import './style.css';

const params = new URLSearchParams(location.search);
const CATCHUP_MS = Number(params.get('catchupMs') ?? 5000);
const STREAM_V2 = params.get('stream') === 'v2';
const BINARY = params.get('binary') === '1';
const GROUPS = ['north', 'south', 'east', 'west', 'centre', 'harbour', 'hills', 'airport'];

const store = makeStore();
const meters = new MeterTable();
/** Delivered updates per channel since the last render: the credit the next render returns. */
const delivered = new Map<string, number>();
let detail: { meter: string | null; body: Record<string, unknown> | null; cached: boolean } = { meter: null, body: null, cached: false };
let mf: MeterflowClient | null = null;

/** For the end-to-end test and for debugging: the store and the client. */
declare global {
  interface Window { meterflowDashboard?: { store: typeof store; meters: MeterTable; client: () => MeterflowClient | null; renders: number } }
}
const handle = { store, meters, client: () => mf, renders: 0 };
window.meterflowDashboard = handle;

document.getElementById('zone')!.textContent = zoneName();

// ---- render loop: at most once per animation frame ---------------------------

let dirty = true;
let scheduled = false;
let lastRendered: RootState['telemetry'] | null = null;
const chart = new BucketChart(document.getElementById('chart')!);
let chartResource = '';
const list = new VirtualList(
  document.getElementById('meter-list')!,
  (row, id) => renderMeterRow(row, meters.get(id), store.getState().telemetry.anomalies[id]),
  (id) => openDetail(id),
);

function markDirty(): void {
  dirty = true;
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(frame);
  }
}

function frame(): void {
  scheduled = false;
  if (!dirty) return;
  dirty = false;
  const s = store.getState().telemetry;
  const now = Date.now();
  if (s !== lastRendered) {
    if (s.totals !== lastRendered?.totals) {
      renderTotals(s);
      renderTabs(s);
      chart.show(s.totals?.resources.find((r) => r.resource === chartResource) ?? s.totals?.resources[0]);
    }
    if (s.feed !== lastRendered?.feed || s.anomalies !== lastRendered?.anomalies || s.alertCount !== lastRendered?.alertCount) renderFeed(s);
    if (s.stats !== lastRendered?.stats || s.totals !== lastRendered?.totals) renderStats(s);
    if (s.errors !== lastRendered?.errors || s.notices !== lastRendered?.notices) renderSide(s);
    lastRendered = s;
  }
  renderConnection(s, now);
  document.getElementById('meter-count')!.textContent = meters.size.toLocaleString();
  document.getElementById('meters-empty')!.hidden = meters.size > 0;
  list.update(meters.ids());
  renderDetail(detail.meter, detail.body, detail.cached, mf?.sessionActive ?? false);
  handle.renders += 1;
  // Credit: what was delivered before this render has now been shown.
  for (const [channel, frames] of delivered) mf?.rendered(channel, frames);
  delivered.clear();
}

function renderTabs(s: RootState['telemetry']): void {
  const host = document.getElementById('chart-tabs')!;
  const names = s.totals?.resources.map((r) => r.resource) ?? [];
  if (!chartResource && names[0]) chartResource = names[0];
  if (host.childElementCount === names.length) {
    for (const b of host.querySelectorAll<HTMLButtonElement>('button')) b.setAttribute('aria-pressed', String(b.value === chartResource));
    return;
  }
  host.replaceChildren(...names.map((name) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.value = name;
    b.textContent = name;
    b.setAttribute('aria-pressed', String(name === chartResource));
    b.addEventListener('click', () => {
      chartResource = name;
      for (const other of host.querySelectorAll<HTMLButtonElement>('button')) other.setAttribute('aria-pressed', String(other === b));
      lastRendered = null;
      markDirty();
    });
    return b;
  }));
}

function openDetail(meter: string): void {
  detail = { meter, body: null, cached: false };
  if (mf?.sessionActive) void mf.post({ type: 'session', op: 'detail', meter }).catch(() => {});
  markDirty();
}

store.subscribe(markDirty);
// Badge expiry and the reconnect countdown move with time, not with events.
setInterval(() => {
  store.dispatch(badgesExpired({ now: Date.now() }));
  markDirty();
}, 1000);

// ---- the worker ----------------------------------------------------------------

function count(channel: string): void {
  delivered.set(channel, (delivered.get(channel) ?? 0) + 1);
}

async function start(): Promise<void> {
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  worker.onmessageerror = () => store.dispatch(errorReported({ code: 'page', message: 'a worker message could not be read', at: Date.now() }));
  const starting = startMeterflow({
    worker,
    binary: BINARY,
    config: { catchupOnStart: true, catchupIntervalMs: CATCHUP_MS, fetchRetryMs: Math.min(2000, CATCHUP_MS) },
  });
  // Handlers go on before `ready` resolves, so nothing posted with it is missed.
  const client = await starting.catch((e: unknown) => {
    store.dispatch(workerFailed({ reason: e instanceof Error ? e.message : String(e) }));
    return null;
  });
  if (!client) return;
  mf = client;
  store.dispatch(workerReady({ version: client.version }));
  client.on('totals', (t) => {
    count('totals');
    store.dispatch(totalsReceived({ totals: t, at: Date.now() }));
  });
  client.on('anomaly', (a) => store.dispatch(anomalyDetected({ anomaly: a, at: Date.now() })));
  client.on('cleared', (c) => store.dispatch(anomalyCleared(c)));
  client.on('stats', (s) => store.dispatch(statsReceived(s)));
  client.on('connection', (c) => store.dispatch(connectionChanged(c)));
  client.on('notices', (n) => {
    count('notices');
    store.dispatch(noticesReceived(n));
  });
  client.on('meters', (m) => {
    count(m.channel);
    const refused = meters.apply(m);
    if (refused > 0) {
      store.dispatch(errorReported({ code: 'meter_list_full', message: `${refused} new meters not listed: the list holds at most ${meters.maxRows.toLocaleString()}`, at: Date.now() }));
    }
    markDirty();
  });
  client.on('detail', (d) => {
    if (d.meter === detail.meter) detail = { meter: d.meter, body: d.detail, cached: d.cached };
    markDirty();
  });
  client.on('error', (e) => {
    if (e.code === 'worker_failed') store.dispatch(workerFailed({ reason: e.message }));
    store.dispatch(errorReported({ code: e.code, message: e.message, at: Date.now() }));
  });
  client.on('warning', (w) => store.dispatch(errorReported({ code: `warning ${w.code}`, message: w.message, at: Date.now() })));
  if (STREAM_V2) {
    void client.post({ type: 'session', op: 'start', channels: ['totals', 'notices', ...GROUPS.map((g) => `meters.${g}`)] }).catch(() => {});
  }
}

void start();
