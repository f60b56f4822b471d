// The dashboard's state: one Redux Toolkit `telemetry` slice, fed from every
// worker event as it arrives (ingest), read by the renderer at most once per
// animation frame. `anomalyDetected` is dispatched for every anomaly event,
// so a downstream middleware can log or forward each one (seed 004).
//
// Bounded: the anomaly feed keeps `FEED_LIMIT` entries, the error list
// `ERROR_LIMIT`; a meter's badges are dropped `BADGE_TTL_MS` after its last
// alert once no alert of it is active. That time is the data's clock (the
// readings' `ts`, which an accelerated feed server runs fast), not the page's:
// `clock` is the newest reading time seen (anomalies and `meters` rows). Per-meter rows of the `meters` channel
// live outside the store (meters.ts): tens of thousands of rows do not belong
// in an immutable tree copied on every update.
import { configureStore, createSlice, type PayloadAction } from '@reduxjs/toolkit';
import { formatCount } from './format.js';
import type {
  AnomalyKind,
  AnomalyMessage,
  ClearedMessage,
  ConnectionMessage,
  Notice,
  NoticesMessage,
  Severity,
  StatsMessage,
  TotalsMessage,
} from '../client/index.js';

/** Anomaly feed entries kept, newest first. */
export const FEED_LIMIT = 200;
/** Errors kept for display (every one is counted). */
export const ERROR_LIMIT = 50;
/** A meter's badges go this long after its last alert, once none is active (data clock, ms). */
export const BADGE_TTL_MS = 300_000;
/** Notices kept. */
export const NOTICE_LIMIT = 100;

export interface AlertState {
  severity: Severity;
  active: boolean;
  z: number;
  value: number;
  /** Page time of the last anomaly event of this kind. */
  at: number;
  /** Reading time (data clock) of that event. */
  ts: number;
}
export interface MeterAlerts {
  kinds: Partial<Record<AnomalyKind, AlertState>>;
  /** Reading time (data clock) of the meter's last anomaly event. */
  lastAlertAt: number;
}
export interface FeedItem {
  key: number;
  meter: string;
  kind: AnomalyKind;
  severity: Severity;
  z: number;
  value: number;
  ts: number;
  at: number;
}
export interface ErrorItem {
  code: string;
  message: string;
  at: number;
}
export type WorkerState = 'starting' | 'ready' | 'failed';

export interface TelemetryState {
  worker: { state: WorkerState; version: string; reason: string };
  totals: TotalsMessage | null;
  /** Page time the last totals message arrived. */
  totalsAt: number | null;
  anomalies: Record<string, MeterAlerts>;
  /** The data clock: the newest reading time seen (ms), null before any. */
  clock: number | null;
  /** Every anomaly event since start. */
  alertCount: number;
  feed: FeedItem[];
  connection: ConnectionMessage | null;
  stats: StatsMessage | null;
  notices: Notice[];
  errors: ErrorItem[];
  errorCount: number;
  /**
   * Why readings were refused: the worker's error events per reading-refusal
   * code (`READING_REFUSALS`), with the latest message. The worker reports at
   * most `maxErrorsPerBatch` per batch individually (then one
   * `errors_suppressed`), so these counts are a lower bound of the stats'
   * `readingsRejected`, which counts every refused reading.
   */
  refusals: Record<string, { count: number; message: string }>;
}

/**
 * The error codes that mean "a reading was refused" (PROTOCOL.md 6), in
 * words an operator reads. A reading that arrives twice (in a `totals` frame
 * and in a `meters.*` row) enters once and is neither refused nor an error.
 */
export const READING_REFUSALS: Record<string, string> = {
  bad_timestamp: 'time outside the plausible window',
  bad_value: 'not a finite value in range',
  late_reading: 'too late for its hour',
  bad_meter_id: 'bad meter id',
  unknown_meter: 'unknown meter',
  unknown_key: 'unknown meter key',
  key_out_of_range: 'meter key out of range',
  meter_capacity: 'meter table full',
};

const initialState: TelemetryState = {
  worker: { state: 'starting', version: '', reason: '' },
  totals: null,
  totalsAt: null,
  anomalies: {},
  clock: null,
  alertCount: 0,
  feed: [],
  connection: null,
  stats: null,
  notices: [],
  errors: [],
  errorCount: 0,
  refusals: {},
};

/** Orders HLC stamps: by wall time, then counter. */
function hlcAfter(a: { wallMs: number; counter: number }, b: { wallMs: number; counter: number }): boolean {
  return a.wallMs > b.wallMs || (a.wallMs === b.wallMs && a.counter > b.counter);
}

function expire(state: TelemetryState, now: number): void {
  for (const [meter, m] of Object.entries(state.anomalies)) {
    const active = Object.values(m.kinds).some((k) => k?.active);
    if (!active && now - m.lastAlertAt >= BADGE_TTL_MS) delete state.anomalies[meter];
  }
}

export const telemetry = createSlice({
  name: 'telemetry',
  initialState,
  reducers: {
    workerReady(state, a: PayloadAction<{ version: string }>) {
      state.worker = { state: 'ready', version: a.payload.version, reason: '' };
    },
    workerFailed(state, a: PayloadAction<{ reason: string }>) {
      state.worker = { ...state.worker, state: 'failed', reason: a.payload.reason };
    },
    /** Totals: when messages cross, the newest worker HLC wins (PROTOCOL.md `totals`). */
    totalsReceived(state, a: PayloadAction<{ totals: TotalsMessage; at: number }>) {
      const t = a.payload.totals;
      if (state.totals && !hlcAfter(t.hlc, state.totals.hlc)) return;
      state.totals = t;
      state.totalsAt = a.payload.at;
    },
    anomalyDetected(state, a: PayloadAction<{ anomaly: AnomalyMessage; at: number }>) {
      const { anomaly: m, at } = a.payload;
      state.alertCount += 1;
      const meter = (state.anomalies[m.meter] ??= { kinds: {}, lastAlertAt: m.ts });
      meter.kinds[m.kind] = { severity: m.severity, active: true, z: m.z, value: m.value, at, ts: m.ts };
      meter.lastAlertAt = Math.max(meter.lastAlertAt, m.ts);
      if (Number.isFinite(m.ts) && (state.clock === null || m.ts > state.clock)) state.clock = m.ts;
      state.feed.unshift({ key: state.alertCount, meter: m.meter, kind: m.kind, severity: m.severity, z: m.z, value: m.value, ts: m.ts, at });
      if (state.feed.length > FEED_LIMIT) state.feed.length = FEED_LIMIT;
    },
    anomalyCleared(state, a: PayloadAction<ClearedMessage>) {
      const k = state.anomalies[a.payload.meter]?.kinds[a.payload.kind];
      if (k) k.active = false;
    },
    /** Drops the badges of meters whose last alert is `BADGE_TTL_MS` older than `now` (data clock) and none active. */
    badgesExpired(state, a: PayloadAction<{ now: number }>) {
      expire(state, a.payload.now);
    },
    /** The data clock moved to `now` (a newer reading time; an older one is ignored); expires badges by it. */
    clockAdvanced(state, a: PayloadAction<{ now: number }>) {
      const now = a.payload.now;
      if (!Number.isFinite(now) || (state.clock !== null && now <= state.clock)) return;
      state.clock = now;
      expire(state, now);
    },
    connectionChanged(state, a: PayloadAction<ConnectionMessage>) {
      state.connection = a.payload;
    },
    statsReceived(state, a: PayloadAction<StatsMessage>) {
      state.stats = a.payload;
    },
    noticesReceived(state, a: PayloadAction<NoticesMessage>) {
      const gone = new Set([...a.payload.remove, ...a.payload.upsert.map((n) => n.id)]);
      state.notices = [...a.payload.upsert, ...state.notices.filter((n) => !gone.has(n.id))].slice(0, NOTICE_LIMIT);
    },
    errorReported(state, a: PayloadAction<ErrorItem>) {
      state.errorCount += 1;
      const { code, message } = a.payload;
      if (code in READING_REFUSALS) {
        const r = (state.refusals[code] ??= { count: 0, message });
        r.count += 1;
        r.message = message;
      }
      state.errors.unshift(a.payload);
      if (state.errors.length > ERROR_LIMIT) state.errors.length = ERROR_LIMIT;
    },
  },
});

export const {
  workerReady, workerFailed, totalsReceived, anomalyDetected, anomalyCleared, badgesExpired, clockAdvanced,
  connectionChanged, statsReceived, noticesReceived, errorReported,
} = telemetry.actions;

export function makeStore() {
  return configureStore({ reducer: { telemetry: telemetry.reducer } });
}
export type Store = ReturnType<typeof makeStore>;
export type RootState = ReturnType<Store['getState']>;

/**
 * Readings the worker refused (invalid or over a limit: kept out of
 * detection; a live one is still counted in the totals), with the reasons its
 * error events gave. A reading that came twice is not refused: it is in once.
 */
export function refusedText(rejected: number, refusals: TelemetryState['refusals']): string {
  if (rejected === 0) return '0';
  const reasons = Object.entries(refusals)
    .sort((a, b) => b[1].count - a[1].count)
    .map(([code, r]) => `${READING_REFUSALS[code] ?? code} (${code}, ${formatCount(r.count)} reported)`);
  return `${formatCount(rejected)}: ${reasons.length > 0 ? reasons.join('; ') : 'reasons not reported'}`;
}
