// Binary reading frames, kind 1 (docs/PROTOCOL.md 3.4), built in JavaScript.
//
// A frame is: a 16-byte header (magic "MFLW", version 1, kind 1, flags, B
// bindings, N records), B bindings (`u32 key, u16 len, len bytes of UTF-8 meter
// id`), zero padding to 8, `keys: u32 × N`, padding to 8, `ts: f64 × N` (× 1
// with SHARED_TS), `values: f64 × N`. Everything little-endian.
//
// Keys persist in the worker across frames, so a stream binds each meter once:
// `ReadingFrameEncoder` remembers which keys it has bound and adds bindings only
// for new ones. No DOM here: the demo page, the benchmark worker and Node
// scripts share this module.

export const MAGIC = [0x4d, 0x46, 0x4c, 0x57];
export const VERSION = 1;
export const KIND_READINGS = 1;
export const FLAG_SHARED_TS = 1;
export const HEADER_BYTES = 16;

const utf8 = new TextEncoder();
const pad8 = (n) => (n + 7) & ~7;

/**
 * Encodes one kind-1 frame.
 * @param {{ bindings?: Array<[number, string]>, keys: Uint32Array | number[],
 *           ts: number | Float64Array | number[], values: Float64Array | number[] }} frame
 *   `ts` a single number means one timestamp for every record (SHARED_TS).
 * @returns {ArrayBuffer}
 */
export function encodeReadingsFrame({ bindings = [], keys, ts, values }) {
  const n = keys.length;
  if (values.length !== n) throw new RangeError(`values has ${values.length} items, keys ${n}`);
  const sharedTs = typeof ts === 'number';
  if (!sharedTs && ts.length !== n) throw new RangeError(`ts has ${ts.length} items, keys ${n}`);
  const ids = bindings.map(([key, meter]) => [key, utf8.encode(meter)]);
  let bindingBytes = 0;
  for (const [, id] of ids) {
    if (id.length > 0xffff) throw new RangeError('meter id longer than 65535 bytes');
    bindingBytes += 6 + id.length;
  }
  const keysAt = pad8(HEADER_BYTES + bindingBytes);
  const tsAt = pad8(keysAt + 4 * n);
  const valuesAt = tsAt + 8 * (sharedTs ? 1 : n);
  const total = valuesAt + 8 * n;

  const buf = new ArrayBuffer(total);
  const bytes = new Uint8Array(buf);
  const view = new DataView(buf);
  bytes.set(MAGIC, 0);
  view.setUint8(4, VERSION);
  view.setUint8(5, KIND_READINGS);
  view.setUint16(6, sharedTs ? FLAG_SHARED_TS : 0, true);
  view.setUint32(8, ids.length, true);
  view.setUint32(12, n, true);
  let at = HEADER_BYTES;
  for (const [key, id] of ids) {
    view.setUint32(at, key, true);
    view.setUint16(at + 4, id.length, true);
    bytes.set(id, at + 6);
    at += 6 + id.length;
  }
  // The column offsets are multiples of 8, so typed-array views line up
  // (Uint32Array needs 4, Float64Array 8) and the copies are plain memcpys.
  new Uint32Array(buf, keysAt, n).set(keys);
  if (sharedTs) view.setFloat64(tsAt, ts, true);
  else new Float64Array(buf, tsAt, n).set(ts);
  new Float64Array(buf, valuesAt, n).set(values);
  return buf;
}

/** Byte offset of the shared timestamp in a SHARED_TS frame, so it can be rewritten in place. */
export function sharedTsOffset(buf) {
  const view = new DataView(buf);
  const b = view.getUint32(8, true);
  const n = view.getUint32(12, true);
  let at = HEADER_BYTES;
  for (let i = 0; i < b; i++) at += 6 + view.getUint16(at + 4, true);
  return pad8(pad8(at) + 4 * n);
}

/**
 * Encodes a stream of kind-1 frames for a fixed set of meters, binding each
 * meter's key (its index in `meters`) in the first frame that carries it.
 */
export class ReadingFrameEncoder {
  /** @param {string[]} meters meter ids; meter i gets stream key `firstKey + i`. */
  constructor(meters, firstKey = 0) {
    this.meters = meters;
    this.firstKey = firstKey;
    this.bound = new Uint8Array(meters.length);
  }

  /**
   * A frame with one reading for each meter index in `indices` (all meters if
   * omitted), all at timestamp `ts`.
   * @param {number} ts
   * @param {Float64Array} values one value per entry of `indices`
   * @param {Uint32Array} [indices]
   */
  frame(ts, values, indices) {
    const idx = indices ?? Uint32Array.from(this.meters.keys());
    const keys = new Uint32Array(idx.length);
    const bindings = [];
    for (let i = 0; i < idx.length; i++) {
      const m = idx[i];
      keys[i] = this.firstKey + m;
      if (!this.bound[m]) {
        this.bound[m] = 1;
        bindings.push([keys[i], this.meters[m]]);
      }
    }
    return encodeReadingsFrame({ bindings, keys, ts, values });
  }

  /** Forgets the bindings, as the worker does on `reset` (everything). */
  reset() {
    this.bound.fill(0);
  }
}
