// Renders the telemetry state into the page. Called at most once per
// animation frame; builds DOM with textContent only (no HTML strings, no
// inline styles), so the page runs under `default-src 'self'`.
import type { AnomalyKind, ConnectionMessage, MeterMessage, MeterRow, TotalsMessage } from '../client/index.js';
import {
  formatBytes, formatCount, formatDateTime, formatDecimal, formatHour, formatMs, formatTime, formatReading, formatTotal, formatValue, unitName,
} from './format.js';
import { refusedText, type MeterAlerts, type TelemetryState } from './store.js';
import type { ProgressItem } from './progress.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Severity shape and word, so it reads without colour too. */
const SEVERITY_MARK = { critical: '▲', warning: '●' } as const;

/** One badge: colour, shape and words; blinks while active. */
export function badge(kind: AnomalyKind, severity: 'warning' | 'critical', active: boolean): HTMLElement {
  const b = el('span', `badge ${severity}${active ? ' active' : ''}`);
  b.dataset.kind = kind;
  b.dataset.severity = severity;
  b.dataset.active = String(active);
  b.textContent = `${SEVERITY_MARK[severity]} ${kind}`;
  b.title = `${severity} ${kind}${active ? ' (active)' : ' (cleared)'}`;
  return b;
}

export function badges(alerts: MeterAlerts | undefined): HTMLElement[] {
  if (!alerts) return [];
  return Object.entries(alerts.kinds).flatMap(([kind, k]) => (k ? [badge(kind as AnomalyKind, k.severity, k.active)] : []));
}

// ---- totals ----------------------------------------------------------------

/** Why totals may be incomplete, in words (PROTOCOL.md `totals`). */
function incompleteText(t: TotalsMessage): string {
  if (t.asOf === null) return 'Incomplete: no server catch-up has been applied yet, so readings the server already counted may be missing. Totals settle when the first catch-up arrives.';
  return 'Incomplete: some readings the server stamped may be missing (a sequence gap, a new stream epoch, a refused frame or an unverifiable reading). Totals marked ◐ settle when the next catch-up covers them.';
}

/**
 * The newest data the page holds (ms): the newest reading time it has seen
 * (`clock`, from the `meters` rows and anomalies), or the last catch-up's
 * `asOf` if that is newer (a catch-up counts every reading up to it: without
 * the stream it is all the page has). Null before either.
 */
export function dataTime(s: TelemetryState): number | null {
  const asOf = s.totals?.asOf?.wallMs ?? null;
  if (s.clock === null) return asOf;
  return asOf === null ? s.clock : Math.max(s.clock, asOf);
}

/**
 * The header's two clocks, in the page's zone: "Data up to" the newest data
 * (`dataTime`) and the "last server catch-up" (`asOf`). On the stream the
 * catch-up is rare (bootstrap, a gap), so its time can be far behind the
 * readings; showing it as the data's time hid that the page was current.
 */
export function renderClocks(s: TelemetryState): void {
  const data = $('data-time');
  const d = dataTime(s);
  data.textContent = d === null ? 'no readings yet' : formatDateTime(d);
  data.dataset.ms = d === null ? '' : String(d);
  const asOf = $('as-of');
  const t = s.totals;
  if (!t) return;
  asOf.textContent = t.asOf ? formatDateTime(t.asOf.wallMs) : 'none yet';
  asOf.dataset.asOf = t.asOf ? `${t.asOf.wallMs}.${t.asOf.counter}` : '';
}

export function renderTotals(s: TelemetryState): void {
  const t = s.totals;
  const table = $<HTMLTableElement>('totals');
  const note = $('incomplete');
  if (!t) return;
  note.hidden = !t.incomplete;
  note.textContent = t.incomplete ? incompleteText(t) : '';
  table.dataset.incomplete = String(t.incomplete);

  // Columns: the current hour first, then the past hours, newest first.
  const hours = [...(t.resources[0]?.buckets ?? [])].map((b) => b.hour).sort((a, b) => b - a);
  const head = el('tr');
  head.append(el('th', undefined, 'resource'));
  for (const h of hours) {
    const th = el('th', h === t.currentHour ? 'current' : undefined);
    th.scope = 'col';
    th.append(el('span', 'hour', formatHour(h)));
    th.append(el('span', 'hour-note', h === t.currentHour ? 'current hour' : `${Math.round((t.currentHour - h) / 3_600_000)} h ago`));
    head.append(th);
  }
  const total = el('th', 'sum', 'all hours shown');
  total.scope = 'col';
  head.append(total);
  table.tHead?.replaceChildren(head);

  const rows = t.resources.map((r) => {
    const tr = el('tr');
    tr.dataset.resource = r.resource;
    const name = el('th', undefined, r.resource);
    name.scope = 'row';
    tr.append(name);
    const byHour = new Map(r.buckets.map((b) => [b.hour, b]));
    for (const h of hours) {
      const b = byHour.get(h);
      const td = el('td', h === t.currentHour ? 'current' : undefined);
      td.dataset.resource = r.resource;
      td.dataset.hour = String(h);
      const unconfirmed = t.incomplete || !b || b.asOf === null;
      td.dataset.confirmed = String(!unconfirmed);
      const v = el('span', 'num', b ? formatTotal(b.total, r.decimals) : '—');
      v.dataset.total = b ? String(b.total) : '';
      td.append(v, el('span', 'unit', ` ${unitName(r.unit)}`));
      if (unconfirmed) td.append(el('span', 'mark', ' ◐'));
      tr.append(td);
    }
    const sum = el('td', 'sum');
    sum.append(el('span', 'num', formatTotal(r.total, r.decimals)), el('span', 'unit', ` ${unitName(r.unit)}`));
    tr.append(sum);
    return tr;
  });
  table.tBodies[0]?.replaceChildren(...rows);
  $('totals-legend').hidden = table.querySelector('td[data-confirmed="false"]') === null;
}

// ---- connection --------------------------------------------------------------

/** What the connection pill says: live, reconnecting with countdown, resyncing, fatal with reason. */
export function connectionText(c: ConnectionMessage | null, s: TelemetryState, now: number): { state: string; text: string } {
  if (s.worker.state === 'failed') return { state: 'fatal', text: `worker failed: ${s.worker.reason}` };
  if (!c) {
    if (!s.totals) return { state: 'starting', text: 'starting: waiting for the first catch-up' };
    return { state: 'rest', text: 'catch-ups only · stream not connected' };
  }
  switch (c.state) {
    case 'ready':
      return { state: 'live', text: 'live' };
    case 'connecting':
      return { state: 'connecting', text: `connecting (attempt ${c.attempt})` };
    case 'identifying':
    case 'resuming':
      return { state: 'resyncing', text: c.state === 'resuming' ? 'resyncing: resuming the session' : 'resyncing: new session' };
    case 'disconnected': {
      const code = c.lastCloseCode === null ? '' : `, closed ${c.lastCloseCode}`;
      if (c.nextRetryAt === null) return { state: 'reconnecting', text: `disconnected${code}: ${c.reason}` };
      const secs = Math.max(0, Math.ceil((c.nextRetryAt - now) / 1000));
      return { state: 'reconnecting', text: `reconnecting in ${secs} s (attempt ${c.attempt}${code})${c.reason ? `: ${c.reason}` : ''}` };
    }
    case 'stopped':
      return c.reason ? { state: 'fatal', text: `stopped: ${c.reason}` } : { state: 'stopped', text: 'stopped' };
  }
}

export function renderConnection(s: TelemetryState, now: number): void {
  const { state, text } = connectionText(s.connection, s, now);
  const pill = $('connection');
  pill.dataset.state = state;
  pill.textContent = text;
  const w = $('worker');
  w.dataset.state = s.worker.state;
  w.textContent = s.worker.state === 'ready' ? `worker ${s.worker.version}` : s.worker.state === 'failed' ? 'worker failed' : 'worker starting…';
}

// ---- stats -------------------------------------------------------------------


export function renderStats(s: TelemetryState): void {
  const st = s.stats;
  const c = s.totals?.counters;
  const items: [string, string, string][] = [
    ['meters', 'meters (detection)', st ? formatCount(st.meters) : '—'],
    ['memory', 'wasm memory', st ? formatBytes(st.linearMemoryBytes) : '—'],
    ['engine', 'engine estimate', st ? formatBytes(st.engineBytes) : '—'],
    ['tick', 'last tick', st ? formatMs(st.lastTickEvalMs) : '—'],
    ['ingested', 'readings scored', st ? formatCount(st.readingsIngested) : '—'],
    ['rejected', 'readings refused', st ? refusedText(st.readingsRejected, s.refusals) : '—'],
    ['alerts', 'active alerts', st ? formatCount(st.activeAlerts) : '—'],
    ['catchups', 'catch-ups applied', c ? formatCount(c.restApplied) : '—'],
    ['refused', 'catch-ups refused', c ? formatCount(c.refusedRest) : '—'],
    ['gaps', 'sequence gaps', c ? formatCount(c.gaps) : '—'],
    ['fetches', 'catch-ups asked', c ? formatCount(c.fetches) : '—'],
    // A catch-up longer than one answer arrives in pages (`&to=H`); this
    // counts the follow-up pages asked, so a long outage's recovery shows.
    ['pages', 'catch-up pages', c ? formatCount(c.catchupPages) : '—'],
    ['live', 'live readings', c ? formatCount(c.liveCounted) : '—'],
  ];
  // The stream session's counters, once the worker runs one.
  const ss = st?.stream;
  if (ss) {
    const n = (v: number | string): string => formatCount(Number(v));
    items.push(
      ['stream-gaps', 'stream gaps', n(ss.gaps)],
      ['reconnects', 'reconnects', n(ss.reconnects)],
      ['resumes', 'resumes ok / failed', `${n(ss.resumesOk)} / ${n(ss.resumesFailed)}`],
      ['snapshots', 'snapshots fetched', n(ss.snapshotFetches)],
      ['credit', 'credit exhausted', n(ss.creditExhausted)],
      ['queue', 'queue depth', n(ss.queueDepth)],
      ['coalesced', 'updates coalesced', n(ss.coalescedUpdates)],
    );
  }
  // Delta arrival in the worker -> the message that shows it (worker-timed).
  const lat = st?.deliveryLatencyMs;
  if (lat) items.push(['delivery', 'delta → page p50 / p95', `${formatMs(lat.p50)} / ${formatMs(lat.p95)}`]);
  // The worker's own handling of a delta message (decode + apply), p50 / p99.
  const apply = st?.deltaApplyMs;
  if (apply) items.push(['apply', 'delta apply p50 / p99', `${formatMs(apply.p50)} / ${formatMs(apply.p99)}`]);
  const dl = $('stats');
  dl.replaceChildren(...items.flatMap(([key, label, value]) => {
    const dd = el('dd', undefined, value);
    dd.dataset.stat = key;
    return [el('dt', undefined, label), dd];
  }));
}

// ---- anomaly feed, notices, errors -------------------------------------------

export function renderFeed(s: TelemetryState): void {
  const count = $('alert-count');
  count.textContent = formatCount(s.alertCount);
  count.dataset.count = String(s.alertCount);
  $('feed-empty').hidden = s.feed.length > 0;
  $('anomaly-feed').replaceChildren(...s.feed.slice(0, 60).map((f) => {
    const li = el('li');
    li.dataset.meter = f.meter;
    li.dataset.kind = f.kind;
    const active = s.anomalies[f.meter]?.kinds[f.kind]?.active ?? false;
    li.append(badge(f.kind, f.severity, active && s.anomalies[f.meter]?.kinds[f.kind]?.at === f.at));
    li.append(el('span', 'meter', f.meter));
    li.append(el('span', 'z', `z ${formatValue(f.z)}`));
    li.append(el('time', 'when', formatTime(f.ts)));
    return li;
  }));
}

export function renderSide(s: TelemetryState): void {
  const count = $('error-count');
  count.textContent = formatCount(s.errorCount);
  count.dataset.count = String(s.errorCount);
  $('errors').replaceChildren(...s.errors.slice(0, 8).map((e) => el('li', undefined, `${formatTime(e.at)} ${e.code}: ${e.message}`)));
  const notices = s.notices.map((n) => {
    const li = el('li', `notice ${n.severity}`);
    li.append(el('b', undefined, `${n.severity === 'critical' ? '▲' : n.severity === 'warning' ? '●' : 'ℹ'} ${n.title}`), el('span', undefined, ` ${n.text} (${formatTime(n.fromMs)}–${formatTime(n.toMs)})`));
    return li;
  });
  $('notices').replaceChildren(...(notices.length ? notices : [el('li', 'empty', 'None.')]));
}

/** The selected meter: its REST detail (through the session), detection window and moments. */
export interface DetailState {
  meter: string | null;
  body: Record<string, unknown> | null;
  cached: boolean;
  /** The meter's detection window, oldest first (`query window`). */
  window: Float64Array | null;
  moments: MeterMessage | null;
}

/** A sparkline of the window on a canvas (no inline style: CSP `default-src 'self'`). */
function sparkline(values: Float64Array): HTMLCanvasElement {
  const c = el('canvas', 'spark');
  const w = 320;
  const h = 64;
  const ratio = window.devicePixelRatio || 1;
  c.width = w * ratio;
  c.height = h * ratio;
  c.setAttribute('role', 'img');
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  c.setAttribute('aria-label', values.length ? `last ${values.length} readings, from ${formatValue(lo)} to ${formatValue(hi)}` : 'no readings yet');
  c.dataset.samples = String(values.length);
  const g = c.getContext('2d');
  if (!g || values.length < 2) return c;
  g.scale(ratio, ratio);
  const span = hi - lo || 1;
  g.strokeStyle = '#1f6feb';
  g.lineWidth = 1.25;
  g.beginPath();
  values.forEach((v, i) => {
    const x = (i / (values.length - 1)) * (w - 2) + 1;
    const y = h - 2 - ((v - lo) / span) * (h - 4);
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
  return c;
}

/** Detail fields a person reads first, with the rest after them. */
function detailValue(v: unknown, key = ''): string {
  if (typeof v === 'number') return /ts|Ms$|time/i.test(key) && v > 1e11 ? formatDateTime(v) : formatValue(v);
  if (Array.isArray(v)) return v.length ? v.map((x) => detailValue(x)).join('; ') : 'none';
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v).map(([k, x]) => `${k} ${detailValue(x, k)}`).join(' · ');
  }
  return String(v);
}

export function renderDetail(d: DetailState, sessionActive: boolean): void {
  const host = $('detail');
  const meter = d.meter;
  if (!meter) return;
  host.dataset.meter = meter;
  const parts: HTMLElement[] = [el('h3', undefined, `${meter}${d.cached ? ' (cached)' : ''}`)];
  // The window and moments come from the worker's own detection state.
  const w = d.window;
  if (w || sessionActive) {
    const spark = el('figure', 'spark-box');
    spark.append(w ? sparkline(w) : el('p', 'empty', 'Loading the reading window…'));
    spark.append(el('figcaption', undefined, w ? `last ${formatCount(w.length)} readings (detection window)` : ''));
    parts.push(spark);
  }
  const m = d.moments;
  if (m) {
    const dl = el('dl', 'moments');
    dl.dataset.count = String(m.count);
    const row = (k: string, v: string): void => {
      dl.append(el('dt', undefined, k), el('dd', undefined, v));
    };
    row('readings', formatCount(m.count));
    row('mean', formatValue(m.mean));
    row('std dev', formatValue(Math.sqrt(Math.max(0, m.variance))));
    row('skewness', formatValue(m.skewness));
    row('excess kurtosis', formatValue(m.excessKurtosis));
    row('last reading', m.lastTs ? formatTime(m.lastTs) : '—');
    row('active alerts', m.alerts.length ? m.alerts.join(', ') : 'none');
    parts.push(dl);
  }
  if (d.body) {
    const dl = el('dl', 'rest');
    for (const [k, v] of Object.entries(d.body)) dl.append(el('dt', undefined, k), el('dd', undefined, detailValue(v, k)));
    parts.push(el('h4', undefined, 'from the feed server'), dl);
  } else {
    parts.push(el('p', 'empty', sessionActive ? `Loading ${meter} from the feed server…` : `${meter}: the detail comes through the stream session, which is not connected.`));
  }
  host.replaceChildren(...parts);
}

/**
 * One meter list row. `decimals`: the resource's, from the totals (a total is
 * padded to them so the column lines up; it is never rounded).
 */
export function renderMeterRow(row: HTMLElement, m: (MeterRow & { channel: string }) | undefined, alerts: MeterAlerts | undefined, decimals = 0): void {
  if (!m) return;
  const unit = unitName(m.resource === 'water' ? 'm3' : m.resource === 'energy' ? 'kWh' : m.resource === 'bandwidth' ? 'MB' : '');
  const cells = [
    el('span', 'meter', m.meter),
    el('span', undefined, m.resource),
    el('span', 'num', `${formatReading(m.value)} ${unit}`),
    el('span', 'num', `${formatDecimal(m.total, decimals)} ${unit}`),
    el('span', `status ${m.status}`, m.status),
    el('span', 'alerts'),
  ];
  cells[5]?.append(...badges(alerts));
  row.replaceChildren(...cells);
}

// ---- progress ------------------------------------------------------------------

/** The progress strip: one item per piece of long work; hidden when there is none. */
export function renderProgress(items: ProgressItem[]): void {
  const host = $('progress');
  host.hidden = items.length === 0;
  host.replaceChildren(...items.map((p) => {
    const li = el('li');
    li.dataset.key = p.key;
    li.append(el('span', 'label', p.label));
    const bar = el('progress');
    if (p.max !== null) {
      bar.max = Math.max(1, p.max);
      bar.value = Math.min(p.value, bar.max);
    }
    bar.setAttribute('aria-label', `${p.label}: ${p.detail}`);
    li.append(bar, el('span', 'detail', p.detail));
    return li;
  }));
}

/** The selected meter's badges, above its detail: gone with the store's entry (300 s after its last alert). */
export function renderDetailBadges(meter: string | null, anomalies: TelemetryState['anomalies']): void {
  const host = $('detail-badges');
  const list = meter ? badges(anomalies[meter]) : [];
  host.hidden = list.length === 0;
  host.dataset.meter = meter ?? '';
  host.replaceChildren(...list);
}
