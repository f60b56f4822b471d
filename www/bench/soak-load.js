// The live load of the paced and soak benchmarks (issue 9): `meters` meters
// reporting at `hz` each, as binary kind-2 live frames (docs/PROTOCOL.md 3.5) of
// `perFrame` readings, what a feed server sends over its WebSocket; REST
// catch-up bodies (3.6) built from the same readings; and the oracle: exact
// hourly totals per resource in integer thousandths (amounts carry 3 decimals;
// every sum here stays far below 2^53, so `Number` addition is exact).
import { encodeLiveFrame } from '../live-frames.js';

export const RESOURCES = ['water', 'energy', 'bandwidth'];
export const HOUR_MS = 3_600_000;

export class LiveLoad {
  /**
   * @param {{ meters: number, perFrame: number, prefix?: string, resource?: number }} o
   *   `resource`: every meter reports `RESOURCES[resource]` (default: meter m reports `RESOURCES[m % 3]`).
   */
  constructor({ meters, perFrame, prefix = 'meter', resource }) {
    this.res = resource === undefined ? (m) => m % 3 : () => resource;
    this.meters = meters;
    this.perFrame = perFrame;
    this.prefix = prefix;
    this.names = [];
    this.bound = new Uint8Array(0);
    this.ids = new Float64Array(0);
    this.grow(meters);
    this.seq = 0;
    this.cursor = 0;
    this.lastStamp = 0;
    // hour → [water, energy, bandwidth] in thousandths.
    this.oracle = new Map();
    this.readings = 0;
  }

  /** Adds meters (ids never seen before) up to `meters` in all. */
  grow(meters) {
    for (let m = this.names.length; m < meters; m++) this.names.push(`${this.prefix}-${String(m).padStart(6, '0')}`);
    const bound = new Uint8Array(meters);
    bound.set(this.bound);
    const ids = new Float64Array(meters);
    ids.set(this.ids);
    this.bound = bound;
    this.ids = ids;
    this.meters = meters;
  }

  hello(stampMs, serverTime) {
    return JSON.stringify({ type: 'hello', epoch: 1, nextSeq: 0, hlc: { wallMs: stampMs, counter: 0 }, serverTime });
  }

  /** The next frame, stamped `stampMs` (readings at `stampMs − 50`); counts it in the oracle. */
  frame(stampMs) {
    const n = this.perFrame;
    const keys = new Uint32Array(n);
    const frameIds = new Float64Array(n);
    const amounts = new Float64Array(n);
    const bindings = [];
    const ts = stampMs - 50;
    const hour = ts - (ts % HOUR_MS);
    let sums = this.oracle.get(hour);
    if (!sums) this.oracle.set(hour, (sums = [0, 0, 0]));
    for (let i = 0; i < n; i++) {
      const m = this.cursor;
      this.cursor = this.cursor + 1 === this.meters ? 0 : this.cursor + 1;
      if (!this.bound[m]) {
        this.bound[m] = 1;
        bindings.push([m, this.names[m], RESOURCES[this.res(m)]]);
      }
      keys[i] = m;
      frameIds[i] = ++this.ids[m];
      const amount = ((m * 7 + this.seq) % 900) + 1;
      amounts[i] = amount;
      sums[this.res(m)] += amount;
    }
    this.readings += n;
    this.lastStamp = stampMs;
    const stamp = { wallMs: stampMs, counter: 0 };
    return encodeLiveFrame({ epoch: 1, seq: this.seq++, stamp, scale: 3, bindings, keys, ids: frameIds, ts, amounts });
  }

  /** Sum of every resource's total in the 7 hours ending at `serverTime`'s (what `totals` shows). */
  shownSum(serverTime) {
    const current = serverTime - (serverTime % HOUR_MS);
    let s = 0;
    for (const [hour, sums] of this.oracle) if (hour >= current - 6 * HOUR_MS && hour <= current) s += sums[0] + sums[1] + sums[2];
    return s;
  }

  /** A REST catch-up at `asOf` = the last frame's stamp: every reading so far, per resource and hour. */
  catchup(serverTime) {
    const current = serverTime - (serverTime % HOUR_MS);
    const buckets = [];
    for (let h = 6; h >= 0; h--) {
      const hour = current - h * HOUR_MS;
      const sums = this.oracle.get(hour) ?? [0, 0, 0];
      RESOURCES.forEach((resource, r) => buckets.push({ resource, hour, total: (sums[r] / 1000).toFixed(3) }));
    }
    return JSON.stringify({
      type: 'catchup',
      asOf: { wallMs: this.lastStamp, counter: 0 },
      serverTime,
      from: current - 6 * HOUR_MS,
      to: current,
      buckets,
    });
  }

  /** Differences between a `totals` message and the oracle ([] when exact). */
  compare(totals) {
    const bad = [];
    for (const res of totals.resources ?? []) {
      const r = RESOURCES.indexOf(res.resource);
      for (const b of res.buckets) {
        const want = this.oracle.get(b.hour)?.[r] ?? 0;
        if (String(b.total) !== String(want)) bad.push(`${res.resource} ${new Date(b.hour).toISOString()}: ${b.total} vs ${want}`);
      }
    }
    return bad;
  }
}

/** Percentiles of `xs` (ms). */
export function percentiles(xs) {
  const s = Float64Array.from(xs).sort();
  const at = (q) => (s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : null);
  return { samples: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s.length ? s[s.length - 1] : null };
}
