// Past one worker (issue 9): a pool of N meterflow workers behind one client
// API. Meters are partitioned by a stable hash of their id (FNV-1a over the
// id's UTF-8 bytes, modulo N); worker i is started with `config.partition`
// `{ index: i, of: N }`, so its engine owns exactly the meters the page routes
// to it and skips any other meter's readings before interning them.
//   - `readings`, JSON (text, or its UTF-8 bytes) in the spelling
//     `JSON.stringify` writes: split on the page without building objects
//     (`splitReadingsText`: one pass over the bytes, each id hashed as it is
//     read, each item copied as it is into its owner's part; the parts are
//     transferred). Any other JSON (whitespace, escapes, other fields, a bad
//     item, a payload refused as a whole) goes whole to every worker, each of
//     which applies only its own meters' readings; what belongs to no meter is
//     reported by worker 0 alone. Either way the summed acks and the errors
//     are one worker's (only a refused reading's `position` is its place in
//     its worker's part when the page split the payload). It used to be
//     `JSON.parse` and one `JSON.stringify` per worker on the main thread
//     (docs/PERFORMANCE.md, "The pool's JSON readings");
//   - `readings`, binary kind-1 frames: split by key on the page (the pool
//     keeps the key → meter bindings, which persist across frames); a frame
//     the pool cannot read goes to worker 0, which refuses it;
//   - `live`: binary kind-2 frames are split by key too, and every worker gets a
//     frame for every `seq` (possibly without readings), so no worker sees a gap;
//   - `catchup` (JSON): per-meter entries go to their meter's worker; the
//     fleet's per-resource entries go whole to worker 0 and, with the same
//     `asOf` and zero totals, to the others. Each worker then holds the REST
//     part once (worker 0) plus its own live readings after `asOf`, so the sum
//     over workers is the fleet's exact total.
// Totals are merged exactly (integer units added as BigInt, never as floats);
// `window`/`meter` queries go to the owning worker. Each worker's `fetch`
// (the ledger's catch-up request) is answered once, through worker 0's client,
// whose catch-up is fanned out as above. The stream v2 session is not pooled
// (one worker per socket): the pool serves the page-owned v1 payloads.

import { MeterflowClient, MeterflowClientError, startMeterflow, type ClientEvents, type StartOptions, type WorkerLike } from './index.js';
import type { AckMessage, AnomalyMessage, ClearedMessage, ErrorMessage, StatsMessage, TotalsMessage, WarningMessage } from './protocol.js';

/** Most workers a pool takes. */
export const MAX_POOL_WORKERS = 64;
/**
 * Largest binary key + 1 the pool routes (the worker's default `maxStreamKeys`):
 * keys are chosen by the sender and must not size the page's table. Readings
 * with a larger key go to worker 0, which refuses them with its own error.
 */
export const MAX_POOL_KEYS = 1 << 20;
/** Meter ids whose owner is cached; past it the cache starts again (hashing is cheap). */
export const MAX_OWNER_CACHE = 1 << 20;

export interface PoolOptions extends Omit<StartOptions, 'worker'> {
  /** Number of workers, 1..=64. */
  workers: number;
  /** Makes one worker (e.g. `() => new Worker(url, { type: 'module' })`). */
  createWorker: () => WorkerLike;
}

/** The worker (0..count) that owns `meter`: FNV-1a 32 over its UTF-8 bytes, modulo `count`. */
export function shardOf(meter: string, count: number): number {
  let h = 0x811c9dc5;
  for (const b of utf8.encode(meter)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h % count;
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();
const MAGIC = 0x574c464d;
const pad8 = (n: number): number => (n + 7) & ~7;

/** Answers summed over the workers a payload went to. */
export interface PoolAck { accepted: number; refused: number; ms: number; workers: number }

type Bucket = { hour: number; total: bigint; asOf: TotalsMessage['asOf'] };

export class MeterflowPool {
  private readonly shardCache = new Map<string, number>();
  /** Kind-1 keys → owning worker (−1: not bound). */
  private readingKeys: Int16Array = new Int16Array(0);
  /** Kind-2 keys of the current (channel, epoch) → owning worker. */
  private liveKeys: Int16Array = new Int16Array(0);
  private liveEpoch = '';
  private readonly latest: (TotalsMessage | undefined)[];
  private readonly totalsHandlers = new Set<(t: TotalsMessage) => void>();

  private constructor(readonly clients: MeterflowClient[], private readonly passThrough: Set<string>,
    private readonly limits: { maxPayloadBytes: number; maxBatch: number }) {
    this.latest = clients.map(() => undefined);
    clients.forEach((c, i) =>
      c.on('totals', (t) => {
        this.latest[i] = t;
        if (this.totalsHandlers.size && this.latest.every((x) => x)) {
          const merged = mergeTotals(this.latest as TotalsMessage[]);
          for (const h of this.totalsHandlers) h(merged);
        }
      }),
    );
  }

  /** Starts `workers` workers; resolves once every one is ready. */
  static async start(o: PoolOptions): Promise<MeterflowPool> {
    if (!Number.isInteger(o.workers) || o.workers < 1 || o.workers > MAX_POOL_WORKERS) {
      throw new RangeError(`workers must be a whole number in 1..=${MAX_POOL_WORKERS}, not ${o.workers}`);
    }
    let fan: ((body: string) => string) | undefined;
    const clients: MeterflowClient[] = [];
    const passThrough = new Set<string>();
    const inners: WorkerLike[] = [];
    const starting = Array.from({ length: o.workers }, (_, i) => {
      const inner = o.createWorker();
      inners.push(inner);
      const proxy = poolWorker(inner, i, passThrough, (body) => fan?.(body) ?? body, (msg) => clients[0]?.dispatch(msg));
      // One worker keeps the default partition (every meter), so a pool of one
      // talks to a worker exactly as the plain client does.
      const config = o.workers > 1 ? { ...o.config, partition: { index: i, of: o.workers } } : o.config;
      return startMeterflow({ ...o, config, worker: proxy });
    });
    try {
      clients.push(...(await Promise.all(starting)));
    } catch (e) {
      for (const w of inners) w.terminate?.();
      throw e;
    }
    const pool = new MeterflowPool(clients, passThrough, {
      maxPayloadBytes: o.config?.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      maxBatch: o.config?.maxBatch ?? DEFAULT_MAX_BATCH,
    });
    fan = (body) => pool.fanCatchup(body);
    return pool;
  }

  get workers(): number {
    return this.clients.length;
  }

  /** The worker that owns `meter`. */
  owner(meter: string): number {
    let s = this.shardCache.get(meter);
    if (s === undefined) {
      if (this.shardCache.size >= MAX_OWNER_CACHE) this.shardCache.clear();
      s = shardOf(meter, this.clients.length);
      this.shardCache.set(meter, s);
    }
    return s;
  }

  /** `handler` gets the workers' totals merged, each time one of them posts totals (once all have). */
  onTotals(handler: (t: TotalsMessage) => void): () => void {
    this.totalsHandlers.add(handler);
    return () => this.totalsHandlers.delete(handler);
  }

  /** Events of every worker (each meter's come from its owner only). */
  on(event: 'anomaly' | 'cleared' | 'warning' | 'error' | 'stats',
    handler: (m: AnomalyMessage | ClearedMessage | WarningMessage | ErrorMessage | StatsMessage | ClientEvents['error'], worker: number) => void): () => void {
    const offs = this.clients.map((c, i) => c.on(event, (m: ClientEvents[typeof event]) => handler(m, i)));
    return () => offs.forEach((off) => off());
  }

  /**
   * A `readings` payload: JSON (text, or its UTF-8 bytes) split by owner when
   * the page can (`splitReadingsText`), else whole to every worker, each
   * applying its own meters'; a binary kind-1 frame split by owner.
   */
  readings(data: string | ArrayBuffer): Promise<PoolAck> {
    if (this.clients.length === 1) return this.acks([[0, data]], 'readings');
    if (typeof data === 'string') {
      const parts = data.length <= this.limits.maxPayloadBytes ? splitReadingsText(data, this.clients.length, this.limits.maxBatch) : null;
      // Text the splitter does not take goes whole to every worker (each
      // decodes it and applies its own meters'; worker 0 reports what belongs
      // to no meter).
      return this.acks(parts ?? this.clients.map((_, w) => [w, data]), 'readings');
    }
    const parts = isReadingFrame(data)
      ? this.splitReadingFrame(data)
      : data.byteLength <= this.limits.maxPayloadBytes
        ? splitReadingsBytes(new Uint8Array(data), data.byteLength, this.clients.length, this.limits.maxBatch)
        : null;
    // A frame the page cannot split goes whole to every worker: each applies
    // what it owns of it (if a worker can read it) and worker 0 reports it.
    return parts ? this.acks(parts, 'readings') : this.toEvery(data);
  }

  /** The same `readings` bytes to every worker: copies to all but the last, which gets `buf` transferred. */
  private toEvery(buf: ArrayBuffer): Promise<PoolAck> {
    const last = this.clients.length - 1;
    return this.acks(this.clients.map((_, w) => [w, w === last ? buf : buf.slice(0)]), 'readings');
  }

  /** A `live` payload: a binary kind-2 frame, split by owner (every worker gets every `seq`). */
  live(data: ArrayBuffer): Promise<PoolAck> {
    if (this.clients.length === 1) return this.acks([[0, data]], 'live');
    return this.acks(this.splitLiveFrame(data), 'live');
  }

  /** A JSON `hello` (a stream (re)connect): every worker's ledger needs it. */
  hello(data: string): Promise<PoolAck> {
    return this.acks(this.clients.map((_, w) => [w, data]), 'live');
  }

  /** A JSON `catchup` body: see the module comment. */
  catchup(data: string): Promise<PoolAck> {
    const parts = this.splitCatchup(data);
    for (const [w, part] of parts) if (w === 0) this.passThrough.add(part);
    return this.acks(parts, 'catchup');
  }

  /** `window`/`meter` from the owner; `totals` merged from all. */
  async query(q: { query: 'window' | 'meter'; meter: string } | { query: 'totals' }): Promise<unknown> {
    if (q.query === 'totals') {
      // The next `totals` of each worker after asking: a worker that does not
      // echo the query's `id` answers it as an ordinary `totals` message.
      const next = this.clients.map(
        (c) =>
          new Promise<TotalsMessage>((resolve) => {
            const off = c.on('totals', (t) => {
              off();
              resolve(t);
            });
            c.send({ type: 'query', query: 'totals' } as never);
          }),
      );
      return mergeTotals(await Promise.all(next));
    }
    const c = this.clients[this.owner(q.meter)];
    if (!c) throw new MeterflowClientError('closed', 'no worker');
    return c.query(q);
  }

  /** Every worker's `stats` answer. */
  stats(): Promise<StatsMessage[]> {
    return Promise.all(this.clients.map((c) => c.query({ query: 'stats' })));
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  private async acks(parts: [number, string | ArrayBuffer][], type: 'readings' | 'live' | 'catchup'): Promise<PoolAck> {
    const answers = await Promise.all(
      parts.map(([w, data]) => {
        const c = this.clients[w];
        if (!c) return Promise.reject(new MeterflowClientError('closed', `no worker ${w}`));
        const msg = { type, data } as never;
        return typeof data === 'string' ? c.post(msg) : c.post(msg, [data]);
      }),
    );
    return answers.reduce<PoolAck>(
      (s, a: AckMessage) => ({ accepted: s.accepted + a.accepted, refused: s.refused + a.refused, ms: Math.max(s.ms, a.ms), workers: s.workers + 1 }),
      { accepted: 0, refused: 0, ms: 0, workers: 0 },
    );
  }

  /** A catch-up worker 0's client fetched: sends the others their parts, returns worker 0's. */
  private fanCatchup(body: string): string {
    let mine = body;
    for (const [w, part] of this.splitCatchup(body)) {
      if (w === 0) mine = part;
      else this.clients[w]?.send({ type: 'catchup', data: part } as never);
    }
    return mine;
  }

  private splitReadingFrame(buf: ArrayBuffer): [number, ArrayBuffer][] | null {
    const v = new DataView(buf);
    const shared = (v.getUint16(6, true) & 1) === 1;
    const b = v.getUint32(8, true);
    const n = v.getUint32(12, true);
    const bytes = new Uint8Array(buf);
    const bindings: [number, Uint8Array][][] = this.clients.map(() => []);
    let at = 16;
    for (let i = 0; i < b; i++) {
      if (at + 6 > buf.byteLength) return null;
      const key = v.getUint32(at, true);
      const len = v.getUint16(at + 4, true);
      const name = bytes.subarray(at + 6, at + 6 + len);
      at += 6 + len;
      const w = this.owner(utf8d.decode(name));
      this.readingKeys = bind(this.readingKeys, key, w);
      bindings[w]?.push([key, name]);
    }
    const keysAt = pad8(at);
    const tsAt = pad8(keysAt + 4 * n);
    const valuesAt = tsAt + 8 * (shared ? 1 : n);
    if (valuesAt + 8 * n !== buf.byteLength) return null;
    const keys = new Uint32Array(buf, keysAt, n);
    const ts = new Float64Array(buf, tsAt, shared ? 1 : n);
    const values = new Float64Array(buf, valuesAt, n);
    const picks = this.partition(keys, this.readingKeys);
    const out: [number, ArrayBuffer][] = [];
    picks.forEach((idx, w) => {
      const bs = bindings[w] ?? [];
      if (!idx.length && !bs.length) return;
      let size = 16;
      for (const [, name] of bs) size += 6 + name.length;
      const k = pad8(size);
      const t = pad8(k + 4 * idx.length);
      const x = t + 8 * (shared ? 1 : idx.length);
      const o = new ArrayBuffer(x + 8 * idx.length);
      const ov = new DataView(o);
      const ob = new Uint8Array(o);
      ob.set(bytes.subarray(0, 8), 0);
      ov.setUint32(8, bs.length, true);
      ov.setUint32(12, idx.length, true);
      let p = 16;
      for (const [key, name] of bs) {
        ov.setUint32(p, key, true);
        ov.setUint16(p + 4, name.length, true);
        ob.set(name, p + 6);
        p += 6 + name.length;
      }
      const ok = new Uint32Array(o, k, idx.length);
      const ot = new Float64Array(o, t, shared ? 1 : idx.length);
      const ox = new Float64Array(o, x, idx.length);
      if (shared) ot[0] = ts[0] ?? 0;
      for (let j = 0; j < idx.length; j++) {
        const i = idx[j] ?? 0;
        ok[j] = keys[i] ?? 0;
        if (!shared) ot[j] = ts[i] ?? 0;
        ox[j] = values[i] ?? 0;
      }
      out.push([w, o]);
    });
    return out.length ? out : null;
  }

  private splitLiveFrame(buf: ArrayBuffer): [number, ArrayBuffer][] {
    const v = new DataView(buf);
    if (buf.byteLength < 48 || v.getUint32(0, true) !== MAGIC || v.getUint8(5) !== 2) return [[0, buf]];
    const shared = (v.getUint16(6, true) & 1) === 1;
    const b = v.getUint32(8, true);
    const n = v.getUint32(12, true);
    const chanLen = v.getUint8(45);
    const bytes = new Uint8Array(buf);
    const epoch = `${utf8d.decode(bytes.subarray(48, 48 + chanLen))}\u0000${v.getFloat64(16, true)}`;
    if (epoch !== this.liveEpoch) {
      this.liveEpoch = epoch;
      this.liveKeys = new Int16Array(0);
    }
    const bindings: Uint8Array[][] = this.clients.map(() => []);
    let at = 48 + chanLen;
    for (let i = 0; i < b; i++) {
      if (at + 7 > buf.byteLength) return [[0, buf]];
      const key = v.getUint32(at, true);
      const ml = v.getUint16(at + 4, true);
      const rl = v.getUint8(at + 6);
      const w = this.owner(utf8d.decode(bytes.subarray(at + 7, at + 7 + ml)));
      this.liveKeys = bind(this.liveKeys, key, w);
      bindings[w]?.push(bytes.subarray(at, at + 7 + ml + rl));
      at += 7 + ml + rl;
    }
    const keysAt = pad8(at);
    const idsAt = pad8(keysAt + 4 * n);
    const tsAt = idsAt + 8 * n;
    const amountsAt = tsAt + 8 * (shared ? 1 : n);
    if (amountsAt + 8 * n !== buf.byteLength) return [[0, buf]];
    const keys = new Uint32Array(buf, keysAt, n);
    const ids = new Float64Array(buf, idsAt, n);
    const ts = new Float64Array(buf, tsAt, shared ? 1 : n);
    const amounts = new Float64Array(buf, amountsAt, n);
    const picks = this.partition(keys, this.liveKeys);
    return picks.map((idx, w) => {
      const bs = bindings[w] ?? [];
      let size = 48 + chanLen;
      for (const x of bs) size += x.length;
      const k = pad8(size);
      const d = pad8(k + 4 * idx.length);
      const t = d + 8 * idx.length;
      const a = t + 8 * (shared ? 1 : idx.length);
      const o = new ArrayBuffer(a + 8 * idx.length);
      const ov = new DataView(o);
      const ob = new Uint8Array(o);
      ob.set(bytes.subarray(0, 48 + chanLen), 0);
      ov.setUint32(8, bs.length, true);
      ov.setUint32(12, idx.length, true);
      let p = 48 + chanLen;
      for (const x of bs) {
        ob.set(x, p);
        p += x.length;
      }
      const ok = new Uint32Array(o, k, idx.length);
      const od = new Float64Array(o, d, idx.length);
      const ot = new Float64Array(o, t, shared ? 1 : idx.length);
      const oa = new Float64Array(o, a, idx.length);
      if (shared) ot[0] = ts[0] ?? 0;
      for (let j = 0; j < idx.length; j++) {
        const i = idx[j] ?? 0;
        ok[j] = keys[i] ?? 0;
        od[j] = ids[i] ?? 0;
        if (!shared) ot[j] = ts[i] ?? 0;
        oa[j] = amounts[i] ?? 0;
      }
      return [w, o];
    });
  }

  /** Record indices per worker; a key no binding named goes to worker 0, which reports it. */
  private partition(keys: Uint32Array, table: Int16Array): Uint32Array[] {
    // A counting sort by owner: record indices grouped per worker, in order.
    const n = keys.length;
    const owners = new Uint8Array(n);
    const counts = new Uint32Array(this.clients.length);
    for (let i = 0; i < n; i++) {
      const key = keys[i] ?? 0;
      const w = key < table.length ? (table[key] ?? -1) : -1;
      const o = w < 0 ? 0 : w;
      owners[i] = o;
      counts[o] = (counts[o] ?? 0) + 1;
    }
    const order = new Uint32Array(n);
    const next = new Uint32Array(this.clients.length);
    let at = 0;
    const picks: Uint32Array[] = [];
    for (let w = 0; w < counts.length; w++) {
      next[w] = at;
      picks.push(order.subarray(at, at + (counts[w] ?? 0)));
      at += counts[w] ?? 0;
    }
    for (let i = 0; i < n; i++) {
      const o = owners[i] ?? 0;
      const j = next[o] ?? 0;
      order[j] = i;
      next[o] = j + 1;
    }
    return picks;
  }

  private splitCatchup(text: string): [number, string][] {
    if (this.clients.length === 1) return [[0, text]];
    let doc: { buckets?: unknown[] } | null = null;
    try {
      doc = JSON.parse(text) as { buckets?: unknown[] };
    } catch {
      return [[0, text]];
    }
    if (!doc || !Array.isArray(doc.buckets)) return [[0, text]];
    const per: unknown[][] = this.clients.map(() => []);
    for (const b of doc.buckets) {
      const meter = (b as { meter?: unknown } | null)?.meter;
      if (typeof meter === 'string') per[this.owner(meter)]?.push(b);
      else {
        per[0]?.push(b);
        for (let w = 1; w < per.length; w++) per[w]?.push({ ...(b as object), total: '0' });
      }
    }
    return per.map((buckets, w) => [w, JSON.stringify({ ...doc, buckets })]);
  }
}

/** The workers' `maxPayloadBytes` and `maxBatch` defaults (README, "Defaults"). */
const DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_BATCH = 1_000_000;
const READINGS_HEAD = '{"type":"readings","readings":[';
const HEAD = utf8.encode(READINGS_HEAD);
const ITEM = utf8.encode('{"meter":"');
const TS = utf8.encode(',"ts":');
const VALUE = utf8.encode(',"value":');

/** The page's scratch for a readings text's UTF-8 bytes, reused (it grows to the largest text split). */
let scratch = new Uint8Array(0);
/** Per item of the text being split: its owner, start and end (grown as needed). */
let owners = new Uint8Array(0);
let bounds = new Uint32Array(0);

/**
 * JSON readings text split by owner without building objects: the text is
 * encoded once into a reused buffer (`encodeInto`), read in one pass over its
 * bytes, each item's id hashed (FNV-1a, as `shardOf`) as it is read, and the
 * items copied as they are into one payload of bytes per worker (transferred,
 * not cloned), workers without items left out. It takes only the spelling
 * `JSON.stringify` writes for `{type: 'readings', readings: [{meter, ts,
 * value}, …]}`: ids of printable ASCII without `"` or `\`, `ts` and `value`
 * JSON numbers, no whitespace, at most `maxBatch` items. Each part is then
 * valid JSON whose items a worker decodes as it would in the whole payload,
 * so the pool applies and refuses exactly what one worker would; only the
 * `position` of a refused reading is its place in its worker's part. Anything
 * else returns `null` (the caller sends the text whole to every worker).
 */
export function splitReadingsText(text: string, workers: number, maxBatch: number): [number, ArrayBuffer][] | null {
  if (!text.startsWith(READINGS_HEAD)) return null;
  if (scratch.length < text.length) scratch = new Uint8Array(Math.max(text.length, scratch.length * 2));
  // Only ASCII is taken, whose UTF-8 is one byte a character: fewer read means another character.
  if (utf8.encodeInto(text, scratch).read !== text.length) return null;
  return splitReadingsBytes(scratch, text.length, workers, maxBatch);
}

/** [`splitReadingsText`] on the UTF-8 bytes `b[..len]` (JSON readings posted as bytes). */
export function splitReadingsBytes(b: Uint8Array, len: number, workers: number, maxBatch: number): [number, ArrayBuffer][] | null {
  if (len > b.length || !startsWith(b, 0, HEAD)) return null;
  const sizes = new Uint32Array(workers);
  let i = HEAD.length;
  let n = 0;
  if (b[i] !== 93) {
    for (;;) {
      if (n >= maxBatch || !startsWith(b, i, ITEM)) return null;
      if (n >= owners.length) {
        const o = new Uint8Array(Math.max(1024, n * 2));
        o.set(owners);
        owners = o;
        const x = new Uint32Array(2 * o.length);
        x.set(bounds);
        bounds = x;
      }
      const start = i;
      i += ITEM.length;
      let h = 0x811c9dc5;
      let c = b[i] ?? 0;
      if (c === 34) return null; // an empty id: left to the whole payload's decoders
      while (c !== 34) {
        if (c < 0x20 || c > 0x7e || c === 92 || i >= len) return null;
        h = Math.imul(h ^ c, 0x01000193);
        c = b[++i] ?? 0;
      }
      if (!startsWith(b, i + 1, TS)) return null;
      i = jsonNumber(b, i + 1 + TS.length, len);
      if (i < 0 || !startsWith(b, i, VALUE)) return null;
      i = jsonNumber(b, i + VALUE.length, len);
      if (i < 0 || b[i] !== 125) return null;
      i++;
      const w = (h >>> 0) % workers;
      owners[n] = w;
      bounds[2 * n] = start;
      bounds[2 * n + 1] = i;
      sizes[w] = (sizes[w] ?? 0) + (i - start) + 1;
      n++;
      if (b[i] !== 44) break;
      i++;
    }
  }
  if (i + 2 !== len || b[i] !== 93 || b[i + 1] !== 125) return null;
  if (n === 0) return [[0, b.slice(0, len).buffer]];
  const outs: (Uint8Array | null)[] = [];
  const at = new Uint32Array(workers);
  for (let w = 0; w < workers; w++) {
    const size = sizes[w] ?? 0;
    if (!size) {
      outs.push(null);
      continue;
    }
    // The head, the items with a comma after each, the last comma's place taken by `]}`.
    const o = new Uint8Array(HEAD.length + size + 1);
    o.set(HEAD);
    at[w] = HEAD.length;
    outs.push(o);
  }
  for (let k = 0; k < n; k++) {
    const w = owners[k] ?? 0;
    const o = outs[w];
    if (!o) continue;
    const start = bounds[2 * k] ?? 0;
    const end = bounds[2 * k + 1] ?? 0;
    const p = at[w] ?? 0;
    o.set(b.subarray(start, end), p);
    o[p + end - start] = 44;
    at[w] = p + end - start + 1;
  }
  const parts: [number, ArrayBuffer][] = [];
  outs.forEach((o, w) => {
    if (!o) return;
    o[o.length - 2] = 93;
    o[o.length - 1] = 125;
    parts.push([w, o.buffer as ArrayBuffer]);
  });
  return parts;
}

function startsWith(b: Uint8Array, i: number, s: Uint8Array): boolean {
  for (let k = 0; k < s.length; k++) if (b[i + k] !== s[k]) return false;
  return true;
}

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 48 && c <= 57;

/** The end of the JSON number (RFC 8259 grammar) at `i` in `b[..len]`, or −1. */
function jsonNumber(b: Uint8Array, i: number, len: number): number {
  if (b[i] === 45) i++;
  const first = b[i];
  if (first === 48) i++;
  else if (first !== undefined && first >= 49 && first <= 57) while (i < len && isDigit(b[i])) i++;
  else return -1;
  if (b[i] === 46) {
    if (!isDigit(b[++i])) return -1;
    while (i < len && isDigit(b[i])) i++;
  }
  const e = b[i];
  if (e === 101 || e === 69) {
    const s = b[++i];
    if (s === 43 || s === 45) i++;
    if (!isDigit(b[i])) return -1;
    while (i < len && isDigit(b[i])) i++;
  }
  return i >= len ? -1 : i;
}

/** Whether `buf` is a binary kind-1 frame (magic `MFLW`, kind 1): else JSON bytes, or bytes every worker refuses. */
function isReadingFrame(buf: ArrayBuffer): boolean {
  return buf.byteLength >= 16 && new DataView(buf).getUint32(0, true) === MAGIC && new DataView(buf).getUint8(5) === 1;
}

/** Records `key → worker` in a table grown as keys arrive (allocation follows the bindings). */
function bind(table: Int16Array, key: number, w: number): Int16Array {
  if (key >= MAX_POOL_KEYS) return table;
  if (key >= table.length) {
    const t = new Int16Array(Math.min(Math.max(key + 1, table.length * 2, 64), MAX_POOL_KEYS)).fill(-1);
    t.set(table);
    table = t;
  }
  table[key] = w;
  return table;
}

/**
 * Wraps a worker so that its ledger's catch-up requests reach worker 0's client
 * only, and worker 0's client's catch-up bodies are fanned out to the others.
 */
function poolWorker(inner: WorkerLike, index: number, passThrough: Set<string>, fan: (body: string) => string,
  toFirst: (msg: unknown) => void): WorkerLike {
  const proxy: WorkerLike = {
    onmessage: null,
    onerror: null,
    postMessage(message: unknown, transfer?: Transferable[]) {
      const m = message as { type?: string; data?: unknown };
      if (index === 0 && m?.type === 'catchup' && typeof m.data === 'string' && !passThrough.delete(m.data)) {
        // Worker 0's client fetched it for the pool: split, and worker 0 keeps its part.
        inner.postMessage({ ...m, data: fan(m.data) });
        return;
      }
      if (transfer && transfer.length) inner.postMessage(message, transfer);
      else inner.postMessage(message);
    },
    terminate: () => inner.terminate?.(),
  };
  inner.onmessage = (ev: MessageEvent) => {
    const data = ev.data as { type?: string; requestId?: unknown } | null;
    if (index > 0 && data?.type === 'fetch' && data.requestId === undefined) {
      toFirst(data); // one catch-up for the whole pool, through worker 0's client
      return;
    }
    proxy.onmessage?.call(proxy, ev);
  };
  inner.onerror = (ev: ErrorEvent) => proxy.onerror?.call(proxy, ev);
  return proxy;
}

/** The workers' totals as one: every integer summed exactly, `incomplete` if any is. */
export function mergeTotals(parts: TotalsMessage[]): TotalsMessage {
  const first = parts[0];
  if (!first) throw new RangeError('no totals to merge');
  const big = (x: number | string): bigint => BigInt(x);
  const out = (x: bigint): number | string => (x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString());
  const older = (a: TotalsMessage['asOf'], b: TotalsMessage['asOf']): TotalsMessage['asOf'] =>
    !a || !b ? null : a.wallMs < b.wallMs || (a.wallMs === b.wallMs && a.counter <= b.counter) ? a : b;
  const resources = first.resources.map((r) => {
    let total = 0n;
    let current = 0n;
    const buckets = new Map<number, Bucket>();
    for (const p of parts) {
      const pr = p.resources.find((x) => x.resource === r.resource);
      if (!pr) continue;
      total += big(pr.total);
      current += big(pr.currentHour);
      for (const b of pr.buckets) {
        const m = buckets.get(b.hour);
        if (m) {
          m.total += big(b.total);
          m.asOf = older(m.asOf, b.asOf);
        } else buckets.set(b.hour, { hour: b.hour, total: big(b.total), asOf: b.asOf });
      }
    }
    return {
      ...r,
      total: out(total),
      currentHour: out(current),
      buckets: [...buckets.values()].sort((a, b) => a.hour - b.hour).map((b) => ({ hour: b.hour, total: out(b.total), asOf: b.asOf })),
    };
  });
  const counters = { ...first.counters };
  for (const k of Object.keys(counters) as (keyof typeof counters)[]) {
    counters[k] = out(parts.reduce((s, p) => s + big(p.counters[k]), 0n)) as never;
  }
  return {
    ...first,
    asOf: parts.reduce<TotalsMessage['asOf']>((a, p) => older(a, p.asOf), first.asOf),
    incomplete: parts.some((p) => p.incomplete),
    currentHour: Math.max(...parts.map((p) => p.currentHour)),
    resources: resources as TotalsMessage['resources'],
    counters,
  };
}
