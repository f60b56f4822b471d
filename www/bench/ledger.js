// The consumption-ledger part of the browser benchmark (issue 3), run in the
// benchmark worker with `MeterflowEngine` used directly:
//   1. ledger cost per live reading: binary kind-2 frames of 1,000 readings
//      (10 frames per second of stream time = 10,000 readings/s) over N meters,
//      `engine.handle({type:'live', data})` timed, so the JS→wasm copy and the
//      decoding are included; anomaly feeding is off to isolate the ledger;
//   2. memory held for pending live readings after 60 s of that stream with no
//      catch-up in between (the engine's own estimate, and linear memory);
//   3. REST merge: a 7 hours × 3 resources result retiring those 60 s, then a
//      JSON body of per-meter totals, 5,000 meters × 7 hours × 3 resources (the
//      size issue 3 names; 8.8 MB, so larger fleets would pass maxPayloadBytes),
//      decoded and merged; then the same body as a binary kind-3 frame.
// Engine time is a virtual clock that advances with the stream's stamps.
import { MeterflowEngine } from '../pkg/meterflow.js';
import { encodeCatchupFrame, encodeLiveFrame } from '../live-frames.js';

const RESOURCES = ['water', 'energy', 'bandwidth'];
const PER_FRAME = 1000;
const FRAME_MS = 100;
const HOUR_MS = 3_600_000;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Fails loudly on an engine error: a benchmark of refused input measures nothing. */
function check(out, what) {
  for (const m of out) {
    if (m.type === 'error' || m.type === 'warning') throw new Error(`${what}: ${m.type} ${m.code}: ${m.message}`);
  }
  return out;
}

function catchupBody(asOfMs, nowMs, entries) {
  const current = nowMs - (nowMs % HOUR_MS);
  return JSON.stringify({
    type: 'catchup',
    asOf: { wallMs: asOfMs, counter: 0 },
    serverTime: nowMs,
    from: current - 6 * HOUR_MS,
    to: current,
    buckets: entries(current),
  });
}

export function runLedger({ meters, smoke }) {
  // Every meter here has one resource, so it fills one series pair: hold
  // `meters` of them. By default the engine holds what the 4 GiB worst case
  // leaves room for (about 2,500 at 50,000 meters, docs/LEDGER.md "Series"),
  // and the rest of the fleet's readings would be refused with `series_limit`.
  // The room comes from `maxStreamKeys`: the live frames use keys 0..meters
  // and the binary catch-up one per (meter, resource), not the default 2^20
  // per channel.
  const engine = new MeterflowEngine({
    maxMeters: meters,
    memoryCeilingBytes: 1e12,
    detectLive: false,
    maxStreamKeys: RESOURCES.length * meters,
    maxSeriesPairs: meters,
  });
  const names = Array.from({ length: meters }, (_, i) => `meter-${String(i).padStart(6, '0')}`);
  const bound = new Uint8Array(meters);
  const ids = new Float64Array(meters);
  let clock = Date.now();
  let seq = 0;
  const hello = { type: 'hello', epoch: 1, nextSeq: 0, hlc: { wallMs: clock - 1, counter: 0 }, serverTime: clock };
  check(engine.handle({ type: 'live', data: JSON.stringify(hello) }, clock), 'hello');
  const empty = catchupBody(clock - 1, clock, () => []);
  check(engine.handle({ type: 'catchup', data: empty }, clock), 'first catch-up');

  const nextFrame = () => {
    clock += FRAME_MS;
    const keys = new Uint32Array(PER_FRAME);
    const frameIds = new Float64Array(PER_FRAME);
    const amounts = new Float64Array(PER_FRAME);
    const bindings = [];
    const base = (seq * PER_FRAME) % meters;
    for (let i = 0; i < PER_FRAME; i++) {
      const m = (base + i) % meters;
      if (!bound[m]) {
        bound[m] = 1;
        bindings.push([m, names[m], RESOURCES[m % 3]]);
      }
      keys[i] = m;
      frameIds[i] = ++ids[m];
      amounts[i] = (m * 7 + i) % 900;
    }
    const stamp = { wallMs: clock, counter: 0 };
    return encodeLiveFrame({ epoch: 1, seq: seq++, stamp, scale: 3, bindings, keys, ids: frameIds, ts: clock - 50, amounts });
  };
  const feed = (data) => check(engine.handle({ type: 'live', data }, clock + 5), 'live frame');
  const stats = () => engine.handle({ type: 'query', query: 'stats' }, clock).find((m) => m.type === 'stats');
  const totals = () => engine.handle({ type: 'query', query: 'totals' }, clock).find((m) => m.type === 'totals');

  // Bind every meter first (not timed), so the timed frames carry no bindings.
  for (let i = 0; i * PER_FRAME < meters; i++) feed(nextFrame());

  // 1 + 2. 60 s of stream at 10,000 readings/s, no catch-up in between.
  const frames = smoke ? 20 : 600;
  const bytesBefore = stats().engineBytes;
  const linearBefore = engine.linearMemoryBytes();
  const pendingBefore = totals().counters.livePending;
  let ms = 0;
  for (let f = 0; f < frames; f++) {
    const data = nextFrame(); // built outside the timed call
    const t0 = performance.now();
    const out = engine.handle({ type: 'live', data }, clock + 5);
    ms += performance.now() - t0;
    if (out.length) check(out, 'live frame');
  }
  const after = totals();
  const pending = after.counters.livePending - pendingBefore;
  if (after.incomplete || pending !== frames * PER_FRAME) {
    throw new Error(`expected ${frames * PER_FRAME} pending readings, complete; got ${JSON.stringify(after.counters)}`);
  }
  const pendingBytes = stats().engineBytes - bytesBefore;
  const linearGrowth = engine.linearMemoryBytes() - linearBefore;

  // 3a. The catch-up that retires those 60 s: 7 hours × 3 resources.
  const perResource = (current) =>
    RESOURCES.flatMap((resource) =>
      Array.from({ length: 7 }, (_, h) => ({ resource, hour: current - (6 - h) * HOUR_MS, total: '1000.000' })));
  let t0 = performance.now();
  check(engine.handle({ type: 'catchup', data: catchupBody(clock, clock + 10, perResource) }, clock + 10), 'catch-up');
  const retireMs = performance.now() - t0;
  if (totals().counters.livePending !== 0) throw new Error('the catch-up did not retire the pending readings');

  // 3b. Per-meter totals: meters × 7 hours × 3 resources, decoded and merged.
  const listed = Math.min(meters, 5000);
  const perMeter = (current) => {
    const entries = [];
    for (let m = 0; m < listed; m++) {
      for (let h = 0; h < 7; h++) {
        for (const resource of RESOURCES) {
          entries.push({ meter: names[m], resource, hour: current - (6 - h) * HOUR_MS, total: `${m % 97}.${h}${h}7` });
        }
      }
    }
    return entries;
  };
  const merges = [];
  let bodyBytes = 0;
  for (let r = 0; r < (smoke ? 1 : 5); r++) {
    clock += 1000;
    const body = catchupBody(clock, clock + 10, perMeter);
    bodyBytes = body.length;
    t0 = performance.now();
    check(engine.handle({ type: 'catchup', data: body }, clock + 10), 'per-meter catch-up');
    merges.push(performance.now() - t0);
  }
  // 3c. The same per-meter totals as a binary kind-3 frame.
  const binaryMerges = [];
  let frameBytes = 0;
  for (let r = 0; r < (smoke ? 1 : 5); r++) {
    clock += 1000;
    const current = clock - (clock % HOUR_MS);
    const buckets = perMeter(current).map((b) => ({ ...b, mantissa: Math.round(Number(b.total) * 1000) }));
    const data = encodeCatchupFrame({
      asOf: { wallMs: clock, counter: 0 }, scale: 3, from: current - 6 * HOUR_MS, to: current, serverTime: clock + 10, buckets,
    });
    frameBytes = data.byteLength;
    t0 = performance.now();
    check(engine.handle({ type: 'catchup', data }, clock + 10), 'binary per-meter catch-up');
    binaryMerges.push(performance.now() - t0);
  }
  const applied = totals().counters.restApplied;
  engine.free();
  return {
    frames,
    readings: frames * PER_FRAME,
    nsPerReading: (ms * 1e6) / (frames * PER_FRAME),
    readingsPerSec: (frames * PER_FRAME) / (ms / 1000),
    pending: { readings: pending, engineBytes: pendingBytes, linearGrowthBytes: linearGrowth },
    retireMs,
    perMeterMerge: { entries: listed * 21, bodyBytes, medianMs: median(merges), applied },
    perMeterBinaryMerge: { frameBytes, medianMs: median(binaryMerges) },
  };
}
