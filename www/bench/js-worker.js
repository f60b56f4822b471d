// The careful hand-written JavaScript worker the path benchmark races meterflow
// against (www/bench/path.js). It does the same per-reading work as meterflow's
// readings path, done well in plain JavaScript:
//   - the same page messages: `readings` with `data` a JSON string (`JSON.parse`)
//     or a binary kind-1 frame (docs/PROTOCOL.md 3.4; keys persist across
//     frames), an `id` answered with `{type:'ack', id, accepted, refused, ms}`;
//   - the same checks per reading: a string meter id, finite value within
//     maxAbsValue, timestamp within [now − maxAgeMs, now + maxFutureMs];
//   - meters interned in a `Map`, rings in one flat `Float64Array` (window
//     1,200), moments with the same shifted, stable add/remove updates and the
//     same exact rebuild every 100 removals as src/core/moments.rs (so window
//     mean and variance agree with meterflow's to rounding);
//   - the detector's per-reading bookkeeping (the largest deviation since the
//     last tick, run of equal values, last timestamp);
//   - and more than meterflow does on this path: exact hourly totals of every
//     reading (values carry 3 decimals; sums kept in integer thousandths, exact
//     below 2^53).
// `query` `meter` answers `{type:'meter', meter, count, mean, variance}` for
// the equivalence check.

const WINDOW = 1200;
const RECOMPUTE_EVERY = 100;
const MAX_METERS = 5000;
const MAX_ABS = 1e15;
const MAX_AGE_MS = 6 * 3_600_000;
const MAX_FUTURE_MS = 300_000;
const STD_FLOOR = 1e-6;
const STD_FLOOR_REL = 1e-6;
const M2_COLLAPSE = 1e-4;
const M4_COLLAPSE = 1e-6;

// Per meter, in flat slabs.
const ring = new Float64Array(MAX_METERS * WINDOW);
const head = new Int32Array(MAX_METERS); // next write position
const len = new Int32Array(MAX_METERS);
// Moments: n, shift, centered mean, m2, m3, m4, peak m2, peak m4, removals.
const MO = 9;
const mo = new Float64Array(MAX_METERS * MO);
// Detector bookkeeping: new, peakD, peakVar, peakX, peakTs, peakMean, run, lastX, lastTs.
const PD = 9;
const pend = new Float64Array(MAX_METERS * PD);
const dirty = [];
const ids = new Map();
const names = [];
// Stream keys of binary frames → meter index (−1 unbound); pending names.
let keyTable = new Int32Array(1024).fill(-1);
const keyNames = new Map();
// Exact hourly totals: hour → sum in thousandths.
const hourly = new Map();
let lastHour = NaN;
let lastHourSum = 0;

const utf8 = new TextDecoder();

function intern(id) {
  let m = ids.get(id);
  if (m === undefined) {
    if (names.length >= MAX_METERS) return -1;
    m = names.length;
    names.push(id);
    ids.set(id, m);
  }
  return m;
}

function recompute(m) {
  const n = len[m];
  const base = m * WINDOW;
  const start = (head[m] - n + WINDOW) % WINDOW;
  // Oldest first, as two slices, in chunks of 4 accumulators (src/core/moments.rs).
  const a0 = start, a1 = start + n <= WINDOW ? start + n : WINDOW;
  const b1 = start + n <= WINDOW ? 0 : start + n - WINDOW;
  const k = n ? ring[base + start] : 0;
  const s = [0, 0, 0, 0];
  const sum4 = (from, to) => {
    const cnt = to - from;
    const full = cnt - (cnt % 4);
    for (let i = 0; i < full; i += 4) for (let j = 0; j < 4; j++) s[j] += ring[base + from + i + j] - k;
    for (let j = 0; j < cnt % 4; j++) s[j] += ring[base + from + full + j] - k;
  };
  sum4(a0, a1);
  sum4(0, b1);
  const md = (s[0] + s[1] + (s[2] + s[3])) / n;
  const c2 = [0, 0, 0, 0], c3 = [0, 0, 0, 0], c4 = [0, 0, 0, 0];
  const cen = (from, to) => {
    const cnt = to - from;
    const full = cnt - (cnt % 4);
    const add = (j, x) => {
      const d = x - k - md;
      const d2 = d * d;
      c2[j] += d2;
      c3[j] += d2 * d;
      c4[j] += d2 * d2;
    };
    for (let i = 0; i < full; i += 4) for (let j = 0; j < 4; j++) add(j, ring[base + from + i + j]);
    for (let j = 0; j < cnt % 4; j++) add(j, ring[base + from + full + j]);
  };
  cen(a0, a1);
  cen(0, b1);
  const sum = (v) => v[0] + v[1] + (v[2] + v[3]);
  const o = m * MO;
  mo[o] = n;
  mo[o + 1] = k;
  mo[o + 2] = md;
  mo[o + 3] = mo[o + 6] = sum(c2);
  mo[o + 4] = sum(c3);
  mo[o + 5] = mo[o + 7] = sum(c4);
  mo[o + 8] = 0;
}

function add(m, x, ts) {
  const o = m * MO;
  // Detector: score against the window before the reading enters.
  const n0 = mo[o];
  const mean = mo[o + 1] + mo[o + 2];
  const v0 = n0 < 2 || mo[o + 3] <= 0 ? 0 : mo[o + 3] / n0;
  const rel = STD_FLOOR_REL * Math.abs(mean);
  const v = Math.max(v0, rel * rel, STD_FLOOR * STD_FLOOR);
  const d = x - mean;
  const p = m * PD;
  if (pend[p] === 0) dirty.push(m);
  if (pend[p] === 0 || d * d * pend[p + 2] > pend[p + 1] * pend[p + 1] * v) {
    pend[p + 1] = d;
    pend[p + 2] = v;
    pend[p + 3] = x;
    pend[p + 4] = ts;
    pend[p + 5] = mean;
  }
  pend[p] += 1;
  pend[p + 6] = pend[p + 6] > 0 && x === pend[p + 7] ? pend[p + 6] + 1 : 1;
  pend[p + 7] = x;
  if (ts > pend[p + 8]) pend[p + 8] = ts;

  // Ring.
  const at = m * WINDOW + head[m];
  let evicted = NaN;
  if (len[m] === WINDOW) evicted = ring[at];
  else len[m]++;
  ring[at] = x;
  head[m] = head[m] + 1 === WINDOW ? 0 : head[m] + 1;

  // Moments: remove the evicted sample, then add.
  if (evicted === evicted) {
    const n = mo[o];
    if (n <= 1) {
      mo[o] = mo[o + 1] = mo[o + 2] = mo[o + 3] = mo[o + 4] = mo[o + 5] = 0;
      mo[o + 8]++;
    } else {
      const y = evicted - mo[o + 1];
      const n1 = n - 1;
      const cm = mo[o + 2];
      const mean1 = cm - (y - cm) / n1;
      const delta = y - mean1;
      const dn = delta / n;
      const dn2 = dn * dn;
      const term1 = delta * dn * n1;
      const m2 = mo[o + 3] - term1;
      const m3 = mo[o + 4] - term1 * dn * (n - 2) + 3 * dn * m2;
      const m4 = mo[o + 5] - term1 * dn2 * (n * n - 3 * n + 3) - 6 * dn2 * m2 + 4 * dn * m3;
      if (y !== cm) mo[o + 2] = mean1;
      mo[o + 3] = m2;
      mo[o + 4] = m3;
      mo[o + 5] = m4;
      mo[o] = n1;
      mo[o + 8]++;
    }
  }
  if (mo[o] === 0) {
    mo[o + 1] = x;
    mo[o + 2] = 0;
  }
  const y = x - mo[o + 1];
  const n1 = mo[o];
  const n = n1 + 1;
  const delta = y - mo[o + 2];
  const dn = delta / n;
  const dn2 = dn * dn;
  const term1 = delta * dn * n1;
  mo[o + 2] += dn;
  mo[o + 5] += term1 * dn2 * (n * n - 3 * n + 3) + 6 * dn2 * mo[o + 3] - 4 * dn * mo[o + 4];
  mo[o + 4] += term1 * dn * (n - 2) - 3 * dn * mo[o + 3];
  mo[o + 3] += term1;
  mo[o] = n;
  if (mo[o + 3] > mo[o + 6]) mo[o + 6] = mo[o + 3];
  if (mo[o + 5] > mo[o + 7]) mo[o + 7] = mo[o + 5];
  const r = mo[o + 8];
  if (
    r >= RECOMPUTE_EVERY ||
    mo[o + 3] < 0 ||
    mo[o + 5] < 0 ||
    (r > 0 && (mo[o + 3] < M2_COLLAPSE * mo[o + 6] || mo[o + 5] < M4_COLLAPSE * mo[o + 7]))
  ) {
    recompute(m);
  }

  // Exact hourly totals.
  const hour = Math.floor(ts / 3_600_000);
  if (hour !== lastHour) {
    if (lastHour === lastHour) hourly.set(lastHour, lastHourSum);
    lastHour = hour;
    lastHourSum = hourly.get(hour) ?? 0;
  }
  lastHourSum += Math.round(x * 1000);
}

function valid(ts, x, now) {
  return ts >= now - MAX_AGE_MS && ts <= now + MAX_FUTURE_MS && Number.isFinite(x) && Math.abs(x) <= MAX_ABS;
}

function json(text, now) {
  let accepted = 0;
  let refused = 0;
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    return [0, 1];
  }
  const items = doc?.readings;
  if (!Array.isArray(items)) return [0, 1];
  for (let i = 0; i < items.length; i++) {
    const r = items[i];
    const id = r?.meter;
    const ts = r?.ts;
    const x = r?.value;
    if (typeof id !== 'string' || typeof ts !== 'number' || typeof x !== 'number' || !valid(ts, x, now)) {
      refused++;
      continue;
    }
    const m = intern(id);
    if (m < 0) {
      refused++;
      continue;
    }
    add(m, x, ts);
    accepted++;
  }
  return [accepted, refused];
}

function binary(buf, now) {
  const view = new DataView(buf);
  if (buf.byteLength < 16 || view.getUint32(0, true) !== 0x574c464d || view.getUint8(5) !== 1) return [0, 1];
  const shared = (view.getUint16(6, true) & 1) === 1;
  const b = view.getUint32(8, true);
  const n = view.getUint32(12, true);
  const bytes = new Uint8Array(buf);
  let at = 16;
  for (let i = 0; i < b; i++) {
    const key = view.getUint32(at, true);
    const l = view.getUint16(at + 4, true);
    const id = utf8.decode(bytes.subarray(at + 6, at + 6 + l));
    at += 6 + l;
    if (key >= keyTable.length) {
      const t = new Int32Array(Math.max(key + 1, keyTable.length * 2)).fill(-1);
      t.set(keyTable);
      keyTable = t;
    }
    const m = ids.get(id);
    if (m === undefined) keyNames.set(key, id);
    keyTable[key] = m ?? -1;
  }
  const keysAt = (at + 7) & ~7;
  const tsAt = (keysAt + 4 * n + 7) & ~7;
  const valuesAt = tsAt + 8 * (shared ? 1 : n);
  if (valuesAt + 8 * n !== buf.byteLength) return [0, 1];
  const keys = new Uint32Array(buf, keysAt, n);
  const tss = new Float64Array(buf, tsAt, shared ? 1 : n);
  const values = new Float64Array(buf, valuesAt, n);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const key = keys[i];
    const ts = shared ? tss[0] : tss[i];
    const x = values[i];
    let m = key < keyTable.length ? keyTable[key] : -1;
    if (!valid(ts, x, now)) {
      refused++;
      continue;
    }
    if (m < 0) {
      const id = keyNames.get(key);
      m = id === undefined ? -1 : intern(id);
      if (m < 0) {
        refused++;
        continue;
      }
      keyNames.delete(key);
      keyTable[key] = m;
    }
    add(m, x, ts);
    accepted++;
  }
  return [accepted, refused];
}

self.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === 'readings') {
    const t0 = performance.now();
    const now = Date.now();
    const [accepted, refused] = typeof msg.data === 'string' ? json(msg.data, now) : binary(msg.data, now);
    if (msg.id !== undefined) {
      self.postMessage({ type: 'ack', v: 1, id: msg.id, accepted, refused, ms: performance.now() - t0 });
    }
  } else if (msg.type === 'query' && msg.query === 'meter') {
    const m = ids.get(msg.meter);
    if (m === undefined) {
      self.postMessage({ type: 'error', code: 'unknown_meter', message: msg.meter });
      return;
    }
    const o = m * MO;
    const n = mo[o];
    const variance = n < 2 || mo[o + 3] <= 0 ? 0 : mo[o + 3] / n;
    self.postMessage({ type: 'meter', meter: msg.meter, count: n, mean: mo[o + 1] + mo[o + 2], variance });
  } else if (msg.type === 'query' && msg.query === 'stats') {
    let total = lastHourSum;
    for (const [h, s] of hourly) if (h !== lastHour) total += s;
    self.postMessage({ type: 'stats', meters: names.length, totalThousandths: total, dirty: dirty.length });
  }
};
self.postMessage({ type: 'ready', v: 1, version: 'js' });
