// Binary frames for the consumption ledger, built in JavaScript: live frames
// (kind 2, docs/PROTOCOL.md 3.5), what a feed server sends over the WebSocket,
// and catch-ups (kind 3, 3.8), a REST body in columns.
//
// Kind 2
// layout: the 16-byte common header (magic "MFLW", version 1, kind 2, flags, B
// bindings, N records), then at 16: epoch f64, seq f64, stamp wallMs f64, stamp
// counter u32, amount scale u8, channel length u8, reserved u16, channel bytes;
// then B bindings (`u32 key, u16 meter_len, u8 resource_len, meter, resource`),
// zero padding to 8, `keys: u32 × N`, padding to 8, `ids: f64 × N`,
// `ts: f64 × N` (× 1 with SHARED_TS), `amounts: f64 × N` (whole mantissas of
// 10^-scale). Everything little-endian.
import { FLAG_SHARED_TS, HEADER_BYTES, MAGIC, VERSION } from './frames.js';

export const KIND_LIVE = 2;
const utf8 = new TextEncoder();
const pad8 = (n) => (n + 7) & ~7;

/** Writes `[key, meterBytes, resourceBytes]` bindings (`u32 key, u16, u8, meter, resource`) from `at`. */
function writePairBindings(view, bytes, at, bindings) {
  for (const [key, meter, resource] of bindings) {
    view.setUint32(at, key, true);
    view.setUint16(at + 4, meter.length, true);
    view.setUint8(at + 6, resource.length);
    bytes.set(meter, at + 7);
    bytes.set(resource, at + 7 + meter.length);
    at += 7 + meter.length + resource.length;
  }
}

/**
 * @param {{ channel?: string, epoch: number, seq: number,
 *           stamp: { wallMs: number, counter: number }, scale: number,
 *           bindings?: Array<[number, string, string]>,
 *           keys: Uint32Array | number[], ids: Float64Array | number[],
 *           ts: number | Float64Array | number[], amounts: Float64Array | number[] }} f
 *   `bindings` are `[key, meter, resource]`; `ts` a single number is SHARED_TS;
 *   `amounts` are whole mantissas (amount × 10^scale).
 * @returns {ArrayBuffer}
 */
export function encodeLiveFrame({ channel = '', epoch, seq, stamp, scale, bindings = [], keys, ids, ts, amounts }) {
  const n = keys.length;
  if (ids.length !== n || amounts.length !== n) throw new RangeError('keys, ids and amounts differ in length');
  const sharedTs = typeof ts === 'number';
  if (!sharedTs && ts.length !== n) throw new RangeError(`ts has ${ts.length} items, keys ${n}`);
  const chan = utf8.encode(channel);
  if (chan.length > 255) throw new RangeError('channel longer than 255 bytes');
  const encoded = bindings.map(([key, meter, resource]) => [key, utf8.encode(meter), utf8.encode(resource)]);
  let at = 48 + chan.length;
  for (const [, meter, resource] of encoded) {
    if (meter.length > 0xffff || resource.length > 0xff) throw new RangeError('meter or resource name too long');
    at += 7 + meter.length + resource.length;
  }
  const keysAt = pad8(at);
  const idsAt = pad8(keysAt + 4 * n);
  const tsAt = idsAt + 8 * n;
  const amountsAt = tsAt + 8 * (sharedTs ? 1 : n);
  const buf = new ArrayBuffer(amountsAt + 8 * n);
  const bytes = new Uint8Array(buf);
  const view = new DataView(buf);
  bytes.set(MAGIC, 0);
  view.setUint8(4, VERSION);
  view.setUint8(5, KIND_LIVE);
  view.setUint16(6, sharedTs ? FLAG_SHARED_TS : 0, true);
  view.setUint32(8, encoded.length, true);
  view.setUint32(12, n, true);
  view.setFloat64(HEADER_BYTES, epoch, true);
  view.setFloat64(24, seq, true);
  view.setFloat64(32, stamp.wallMs, true);
  view.setUint32(40, stamp.counter, true);
  view.setUint8(44, scale);
  view.setUint8(45, chan.length);
  bytes.set(chan, 48);
  writePairBindings(view, bytes, 48 + chan.length, encoded);
  new Uint32Array(buf, keysAt, n).set(keys);
  new Float64Array(buf, idsAt, n).set(ids);
  if (sharedTs) view.setFloat64(tsAt, ts, true);
  else new Float64Array(buf, tsAt, n).set(ts);
  new Float64Array(buf, amountsAt, n).set(amounts);
  return buf;
}

export const KIND_CATCHUP = 3;

/**
 * Encodes a REST catch-up as a binary kind-3 frame (docs/PROTOCOL.md 3.8).
 * @param {{ asOf: { wallMs: number, counter: number }, scale: number,
 *           from?: number, to?: number, serverTime?: number,
 *           buckets: Array<{ meter?: string, resource: string, hour: number, mantissa: number }> }} c
 *   `mantissa` is the total × 10^scale, a whole number.
 * @returns {ArrayBuffer}
 */
export function encodeCatchupFrame({ asOf, scale, from, to, serverTime, buckets }) {
  const keyOf = new Map();
  const bindings = [];
  const keys = new Uint32Array(buckets.length);
  buckets.forEach((b, i) => {
    const id = `${b.meter ?? ''}\u0000${b.resource}`;
    let key = keyOf.get(id);
    if (key === undefined) {
      key = bindings.length;
      keyOf.set(id, key);
      bindings.push([utf8.encode(b.meter ?? ''), utf8.encode(b.resource)]);
    }
    keys[i] = key;
  });
  let at = 56;
  for (const [meter, resource] of bindings) at += 7 + meter.length + resource.length;
  const keysAt = pad8(at);
  const hoursAt = pad8(keysAt + 4 * buckets.length);
  const totalsAt = hoursAt + 8 * buckets.length;
  const buf = new ArrayBuffer(totalsAt + 8 * buckets.length);
  const bytes = new Uint8Array(buf);
  const view = new DataView(buf);
  bytes.set(MAGIC, 0);
  view.setUint8(4, VERSION);
  view.setUint8(5, KIND_CATCHUP);
  view.setUint32(8, bindings.length, true);
  view.setUint32(12, buckets.length, true);
  view.setFloat64(16, asOf.wallMs, true);
  view.setUint32(24, asOf.counter, true);
  view.setUint8(28, scale);
  view.setFloat64(32, from ?? NaN, true);
  view.setFloat64(40, to ?? NaN, true);
  view.setFloat64(48, serverTime ?? NaN, true);
  writePairBindings(view, bytes, 56, bindings.map(([meter, resource], key) => [key, meter, resource]));
  new Uint32Array(buf, keysAt, buckets.length).set(keys);
  const hours = new Float64Array(buf, hoursAt, buckets.length);
  const totals = new Float64Array(buf, totalsAt, buckets.length);
  buckets.forEach((b, i) => {
    hours[i] = b.hour;
    totals[i] = b.mantissa;
  });
  return buf;
}
