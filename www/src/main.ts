// The operator dashboard: starts the meterflow worker through the page-side
// client, feeds every event into the Redux store as it arrives, and renders
// at most once per animation frame; after each render it acknowledges what
// it rendered (credit), so the stream follows the page's real speed.
//
// By default the page starts the worker's stream v2 session on the feed
// server that serves it (channels `totals`, `notices`, `meters.<group>`):
// totals come from the `totals` snapshot (the ledger's catch-up) and its live
// deltas, the meter list from `meters.<group>`, notices from `notices`.
// URL parameters: `transport=worker` hands the socket and REST to the worker
// (default `page`: the client executes the worker's connect/send/close/fetch);
// `stream=off` runs without the session, on the ledger's periodic catch-ups
// only (`catchupMs`, default 5,000); `binary=1` for binary frames and
// catch-ups; `speed` (or `maxOffsetMs`) for a feed server on accelerated time;
// `creditWindow` and `rendered=off` (below); `tz` (an IANA zone, e.g. UTC)
// for the zone every time is shown in (default: the viewer's).
import { startMeterflow, type MeterflowClient } from '../client/index.js';
import type uPlot from 'uplot';
import { BucketChart } from './chart.js';
import { clockAllowance, serverSpeed } from './clock-allowance.js';
import { Credit } from './credit.js';
import { Progress } from './progress.js';
import { SeriesPanel } from './series-panel.js';
import type { DetailState } from './view.js';
import { setZone } from './format.js';
import { MeterTable, VirtualList } from './meters.js';
import {
  anomalyCleared, anomalyDetected, clockAdvanced, connectionChanged, errorReported, makeStore, noticesReceived,
  statsReceived, totalsReceived, workerFailed, workerReady, type RootState,
} from './store.js';
import {
  renderClocks, renderConnection, renderDetail, renderDetailBadges, renderFeed, renderMeterRow, renderProgress, renderSide, renderStats, renderTotals,
} from './view.js';
import './style.css';

const params = new URLSearchParams(location.search);
const CATCHUP_MS = Number(params.get('catchupMs') ?? 5000);
const STREAM_V2 = params.get('stream') !== 'off';
const TRANSPORT = params.get('transport') === 'worker' ? 'worker' : 'page';
// A feed server on accelerated time (`--speed`) has a clock that runs fast on
// purpose; the worker's clock allowances must widen to match for a day of
// running (clock-allowance.ts). The page asks the server's `/clock` for its
// speed; `?speed=` (what `make demo SPEED=60` prints) or `?maxOffsetMs=` set
// them explicitly and win. Without any of them, once the server's clock was
// 5 minutes ahead every live reading was counted in the totals but kept out
// of detection as `bad_timestamp` (the "readings refused" counter grew past
// the readings ingested, and every meter went silent at once).
const SPEED_PARAM = params.has('speed') ? Number(params.get('speed')) : undefined;
const OFFSET_PARAM = params.has('maxOffsetMs') ? Number(params.get('maxOffsetMs')) : undefined;
// Detection settings for a short accelerated run (a demo, the incident test):
// `baselineReadings` (training length; drift and stuck wait for it),
// `silentAfterMs` (silence in the worker's own time) and `tickMs` (one
// evaluation per tick: on accelerated time a shorter tick keeps a few readings
// per evaluation, as the documented rules assume). DETECTION.md gives the
// defaults and bounds; the worker refuses a value out of range (bad_config).
const DETECTION: Record<string, number> = {};
for (const key of ['baselineReadings', 'silentAfterMs', 'tickMs']) {
  if (params.has(key)) DETECTION[key] = Number(params.get(key));
}
// The session's credit window per channel (default: the worker's), and, for
// the credit test and for seeing what a stalled page does, `rendered=off`:
// the page renders but never acknowledges, so the stream stops at the window.
const CREDIT_WINDOW = params.has('creditWindow') ? Number(params.get('creditWindow')) : undefined;
const ACK_RENDERS = params.get('rendered') !== 'off';
/** The session's default `creditWindow` (PROTOCOL.md 7). */
const CREDIT_ACK = CREDIT_WINDOW ?? 256;
const BINARY = params.get('binary') === '1';
// `meters.<group>` deltas as binary kind-4 frames (PROTOCOL.md 3.10): about a
// third of the JSON text's apply time in the worker; `?binaryDeltas=0` asks
// for JSON text instead.
const BINARY_DELTAS = params.get('binaryDeltas') !== '0';
const GROUPS = ['north', 'south', 'east', 'west', 'centre', 'harbour', 'hills', 'airport'];

const store = makeStore();
const meters = new MeterTable();
/** Frames delivered per channel since the last render: the credit the next render returns. */
const credit = new Credit();
/** Long work in progress (bootstrap, downloads, series computing). */
const progress = new Progress();
let progressShown = -1;
/** When the session last became `ready` (page time), for ending a bootstrap whose channels stay empty. */
let readySince: number | null = null;
/** A bootstrap still short of some channel this long after `ready` is over anyway (an empty channel posts nothing). */
const BOOTSTRAP_GRACE_MS = 15_000;
let detail: DetailState = { meter: null, body: null, cached: false, window: null, moments: null };
let mf: MeterflowClient | null = null;
let series: SeriesPanel | null = null;

/** For the end-to-end test and for debugging: the store and the client. */
declare global {
  interface Window {
    meterflowDashboard?: {
      store: typeof store; meters: MeterTable; client: () => MeterflowClient | null; renders: number; open: (meter: string) => void;
      charts: () => { buckets: uPlot | null; series: uPlot | null };
    };
  }
}
const handle = {
  store, meters, client: () => mf, renders: 0, open: (meter: string) => openDetail(meter),
  charts: () => ({ buckets: chart.uplot, series: series?.chart.uplot ?? null }),
};
window.meterflowDashboard = handle;

// Every time on the page, charts included, in one zone: the viewer's, or `?tz=` (e.g. UTC).
document.getElementById('zone')!.textContent = setZone(params.get('tz'));

// ---- render loop: at most once per animation frame ---------------------------

let dirty = true;
let scheduled = false;
let lastRendered: RootState['telemetry'] | null = null;
const chart = new BucketChart(document.getElementById('chart')!);
let chartResource = '';
const list = new VirtualList(
  document.getElementById('meter-list')!,
  (row, id) => {
    const m = meters.get(id);
    const t = store.getState().telemetry;
    renderMeterRow(row, m, t.anomalies[id], t.totals?.resources.find((r) => r.resource === m?.resource)?.decimals);
  },
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
    if (s.totals !== lastRendered?.totals || s.clock !== lastRendered?.clock) renderClocks(s);
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
  renderDetail(detail, mf?.sessionActive ?? false);
  renderDetailBadges(detail.meter, s.anomalies);
  series?.render();
  if (progress.version !== progressShown) {
    progressShown = progress.version;
    renderProgress(progress.items());
  }
  handle.renders += 1;
  // Credit: every frame delivered before this render has now been drawn.
  // Each `meters`/`totals` message says how many server deltas it shows
  // first (`frames`), so the page acknowledges exactly their sum per channel
  // (credit.ts; a message without `frames`, from an older worker, falls back
  // to a whole window, which the worker caps at what it holds). A page that
  // does not render acknowledges nothing.
  const acks = credit.take(CREDIT_ACK);
  if (ACK_RENDERS) for (const [channel, frames] of acks) mf?.rendered(channel, frames);
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
  detail = { meter, body: null, cached: false, window: null, moments: null };
  series?.showMeter(meter, meters.get(meter)?.resource);
  // The window and moments exist for meters the session's rows feed; without
  // a session a listed meter may be unknown to the worker (unknown_meter).
  if (mf?.sessionActive) {
    mf.send({ type: 'session', op: 'detail', meter });
    void refreshWindow(meter);
  }
  markDirty();
}

/** The selected meter's detection window (sparkline) and moments, from the worker. */
async function refreshWindow(meter: string): Promise<void> {
  const client = mf;
  if (!client) return;
  try {
    const [w, m] = await Promise.all([client.query({ query: 'window', meter }), client.query({ query: 'meter', meter })]);
    if (detail.meter !== meter) return;
    detail = { ...detail, window: w.values, moments: m };
    markDirty();
  } catch {
    // The client was closed or is over its pending limit: the next refresh tries again.
  }
}

store.subscribe(markDirty);
// The reconnect countdown moves with time, not with events (badges expire
// with the data clock: `clockAdvanced`).
setInterval(() => {
  if (progress.bootstrapping && readySince !== null && Date.now() - readySince >= BOOTSTRAP_GRACE_MS) progress.bootstrapDone();
  if (detail.meter && mf?.sessionActive) void refreshWindow(detail.meter);
  markDirty();
}, 1000);

// ---- the worker ----------------------------------------------------------------

/** A channel's update arrived: its frames count for credit, and it is snapshotted (bootstrap). */
function count(channel: string, frames: number | undefined): void {
  credit.delivered(channel, frames);
  if (progress.bootstrapping) {
    progress.snapshotted(channel);
    if (!progress.bootstrapping) progress.bootstrapDone();
  }
}

async function start(): Promise<void> {
  const speed = SPEED_PARAM ?? (OFFSET_PARAM === undefined ? await serverSpeed(location.origin) : 1);
  const clock = clockAllowance(speed, OFFSET_PARAM);
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  worker.onmessageerror = () => store.dispatch(errorReported({ code: 'page', message: 'a worker message could not be read', at: Date.now() }));
  const starting = startMeterflow({
    worker,
    binary: BINARY,
    transport: TRANSPORT,
    feedUrl: location.origin,
    // With the session, totals start from the `totals` snapshot and follow its
    // deltas; the ledger still asks for a catch-up itself after a gap.
    config: {
      ...(STREAM_V2 ? { fetchRetryMs: 2000 } : { catchupOnStart: true, catchupIntervalMs: CATCHUP_MS, fetchRetryMs: Math.min(2000, CATCHUP_MS) }),
      ...clock,
      ...DETECTION,
      ...(STREAM_V2 ? { binaryDeltas: BINARY_DELTAS } : {}),
      ...(CREDIT_WINDOW === undefined ? {} : { creditWindow: CREDIT_WINDOW }),
    },
  });
  // Handlers go on before `ready` resolves, so nothing posted with it is missed.
  const client = await starting.catch((e: unknown) => {
    store.dispatch(workerFailed({ reason: e instanceof Error ? e.message : String(e) }));
    return null;
  });
  if (!client) return;
  mf = client;
  store.dispatch(workerReady({ version: client.version }));
  series = new SeriesPanel(GROUPS, () => mf, progress, markDirty);
  client.on('totals', (t) => {
    count('totals', t.frames);
    store.dispatch(totalsReceived({ totals: t, at: Date.now() }));
    series?.setResources(t.resources);
  });
  client.on('series', (m) => series?.onMessage(m));
  client.on('download', (p) => {
    progress.download(p);
    markDirty();
  });
  client.on('anomaly', (a) => store.dispatch(anomalyDetected({ anomaly: a, at: Date.now() })));
  client.on('cleared', (c) => store.dispatch(anomalyCleared(c)));
  client.on('stats', (s) => store.dispatch(statsReceived(s)));
  client.on('connection', (c) => {
    if (c.state === 'ready') readySince ??= Date.now();
    else readySince = null;
    store.dispatch(connectionChanged(c));
  });
  client.on('notices', (n) => {
    count('notices', undefined);
    store.dispatch(noticesReceived(n));
  });
  client.on('meters', (m) => {
    count(m.channel, m.frames);
    // The data clock (badge expiry): the newest reading time among the rows.
    let newest = -Infinity;
    for (const r of m.upsert) if (r.ts > newest) newest = r.ts;
    if (Number.isFinite(newest) && newest > (store.getState().telemetry.clock ?? -Infinity)) store.dispatch(clockAdvanced({ now: newest }));
    const refused = meters.apply(m);
    if (refused > 0) {
      store.dispatch(errorReported({ code: 'meter_list_full', message: `${refused} new meters not listed: the list holds at most ${meters.maxRows.toLocaleString()}`, at: Date.now() }));
    }
    markDirty();
  });
  client.on('detail', (d) => {
    if (d.meter === detail.meter) detail = { ...detail, body: d.detail, cached: d.cached };
    markDirty();
  });
  client.on('error', (e) => {
    // An error carrying an `id` answers that request: its caller (e.g. the
    // series panel, which shows the reason) has it as a rejection.
    if (typeof (e as { id?: unknown }).id === 'number') return;
    if (series?.absorbs(e)) return;
    if (e.code === 'worker_failed') store.dispatch(workerFailed({ reason: e.message }));
    store.dispatch(errorReported({ code: e.code, message: e.message, at: Date.now() }));
  });
  client.on('warning', (w) => store.dispatch(errorReported({ code: `warning ${w.code}`, message: w.message, at: Date.now() })));
  if (STREAM_V2) {
    const channels = ['totals', 'notices', ...GROUPS.map((g) => `meters.${g}`)];
    // Bootstrap progress counts the channels that always post a snapshot
    // (`notices` may be empty and post nothing).
    progress.bootstrap(channels.filter((c) => c !== 'notices'));
    client.send({ type: 'session', op: 'start', channels });
  }
}

void start();
