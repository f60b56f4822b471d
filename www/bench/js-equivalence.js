// The fairness check of the path benchmark (issue 9): the careful JS worker
// (bench/js-worker.js) must do meterflow's work, so both must post the same
// alerts on the same readings. Runs before the timed passes; a mismatch voids
// the comparison (the run fails).
//
// The same readings go to meterflow's `MeterflowEngine` (the core the shipped
// worker runs; here on the page, so the engine clock can be driven) and,
// through `postMessage`, to a fresh JS worker with its clock driven by the page
// (`{type:'clock', manual:true}`, `readings` with `now`, `{type:'tick', now}`).
// Both use the default config. Every 500 ms of engine time, one payload with
// one reading per reporting meter (binary kind-1 frames and JSON text,
// alternately), then one evaluation tick. The data is made so that every rule
// fires and clears: level + noise on every meter, and after the meters are
// trained (`baselineReadings`, 7,200 readings) voted spikes, a single-tick blip
// (suppressed), drifts, stuck runs, silences long enough to turn critical,
// heavy-tailed noise, a moderate spike after heavy tails have passed, a held
// level on a meter with rare one-reading bursts (the median rule), two dips
// (a spike incident's readings learned capped: learn.rs `Teach::var_cap`), quantised meters
// (docs/DETECTION.md, "Quantised meters"), a week of short cycles judged against the week
// (season.rs `longer_cycle`), a weak cycle under a wander (season.rs, the block means'
// differences) with a drop, one-reading blips coming densely (excursion.rs, the blip density). Every `anomaly` and `cleared` message must match in order:
// meter, kind, severity, evaluations, ts, at exactly; z, value, mean, std and
// score to a relative 1e-9.
import init, { MeterflowEngine } from '../pkg/meterflow.js';
import { encodeReadingsFrame } from '../frames.js';
import { random } from './random.js';

const STEP_MS = 500;
const TOLERANCE = 1e-9;
const T0 = 1_764_000_000_000;

/** Which incident meter `m` carries (by its index modulo 11 within the first half). */
function scenario(meters, steps) {
  const trained = 7300;
  const at = (m) => trained + ((m * 37) % Math.max(1, steps - trained - 900));
  return (m, k, level, noise, prev) => {
    const kind = m < meters / 2 ? m % 11 : m % 10 === 0 ? 11 : m % 10 === 5 ? 12 : m % 10 === 3 ? 13 : -1;
    const t = k - at(m);
    switch (kind) {
      case 0: // a voted spike: 4 evaluations in a row far out
        return t >= 0 && t < 4 ? level + 60 : level + noise;
      case 1: // a one-evaluation blip: suppressed by the vote
        return t === 0 ? level + 60 : level + noise;
      case 2: // a drift: the level creeps up
        return level + noise + (t > 0 ? Math.min(t, 600) * 0.02 : 0);
      case 3: // stuck at the last value for 150 readings
        return t >= 0 && t < 150 ? prev : level + noise;
      case 4: // silent for 300 s (critical past 120 s): null = no reading
        return t >= 0 && t < 600 ? null : level + noise;
      case 5: // heavy tails (Laplace-like): widens the spike threshold
        return level + noise * (1 + 3 * (((m * 7919 + k * 104729) % 97) === 0 ? 4 : 0));
      case 6: // a cycle of 96 readings (the seasonal rule finds it), one cycle 1.6 times as high
        return level + noise + 10 * Math.sin((2 * Math.PI * k) / 96) * (t >= 0 && t < 96 ? 1.6 : 1);
      case 7: { // a week of 7 cycles of 24, days 5 and 6 flatter (judged against the week:
        // season.rs `longer_cycle`), one day from t at half its height
        const d = 0.5 - 0.5 * Math.cos((2 * Math.PI * k) / 24);
        const shape = Math.floor(k / 24) % 7 >= 5 ? 0.55 + 0.35 * d : 0.2 + 0.8 * d;
        return level + noise + 40 * shape * (t >= 0 && t < 24 ? 0.5 : 1);
      }
      case 8: // heavy tails early (long-run kurtosis high), then normal noise and a voted
        // spike of 6 sd: the quiet window's kurtosis keeps the threshold at 4 (rules.rs `tails`)
        return level + noise * (k < 3000 && k % 397 === 0 ? 13 : 1) + (t >= 0 && t < 4 ? 6 : 0);
      case 9: // rare one-reading bursts (the readings' threshold widens, the median's does
        // not: median.rs), then a level held 5 sd up for 60 readings
        return level + noise * (k % 211 === 0 ? 9 : 1) + (t >= 0 && t < 60 ? 5 : 0);
      case 10: // two dips of 30 sd for 150 readings, 2,000 apart: the first one's readings
        // are learned capped while in the window (evaluate.rs `spike_recent`), and the
        // second's alert reports z and std against that long-run variance
        return level + noise - ((k >= 2000 && k < 2150) || (k >= 4000 && k < 4150) ? 30 : 0);
      case 11: // quantised to 4 with noise of 0.25: a few values, one-reading hops (excursion.rs
        // `learn_step`), a window within its rounding (stuck not judged), then 3 readings 4 quanta up
        return Math.round((level + 1.3 + 0.25 * noise) / 4) * 4 + (t >= 0 && t < 3 ? 16 : 0);
      case 12: { // a weak cycle of 24 (±1) on a slow wander (±5): the block means show no
        // cycle, their differences do (season.rs `repeats_throughout`); then a drop of 7 for 30
        const wander = 3 * Math.sin((2 * Math.PI * k) / 977 + m) + 2 * Math.sin((2 * Math.PI * k) / 1531 + 2 * m);
        const day = -Math.cos((2 * Math.PI * k) / 24);
        return level + wander + day + 0.2 * noise - (t >= 0 && t < 30 ? 7 : 0);
      }
      case 13: // one-reading blips every 8 readings for 120 readings: each alone is
        // suppressed by the vote, densely they are found (excursion.rs, the blip density)
        return level + noise + (t >= 0 && t < 120 && t % 8 === 0 ? 60 : 0);
      default:
        return level + noise;
    }
  };
}

function same(a, b) {
  const exact = ['type', 'meter', 'kind', 'severity', 'evaluations', 'ts', 'at'];
  for (const k of exact) if (!Object.is(a[k], b[k])) return `${k}: ${a[k]} vs ${b[k]}`;
  if (a.type === 'anomaly') {
    for (const k of ['z', 'value', 'mean', 'std', 'score']) {
      const rel = Math.abs(a[k] - b[k]) / Math.max(Math.abs(a[k]), Math.abs(b[k]), 1e-300);
      if (!(rel <= TOLERANCE) && !Object.is(a[k], b[k])) return `${k}: ${a[k]} vs ${b[k]}`;
    }
  }
  return null;
}

/**
 * Runs the check; resolves with a summary, rejects (the run is void) when the
 * alerts differ or some kind never fired.
 */
export async function checkDetection({ meters = 200, steps = 9000, seed = 9 } = {}) {
  await init();
  const engine = new MeterflowEngine({});
  const worker = new Worker(new URL('./js-worker.js', import.meta.url), { type: 'module' });
  const jsEvents = [];
  const errors = [];
  let done;
  const finished = new Promise((r) => (done = r));
  let ready;
  const readyP = new Promise((r) => (ready = r));
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'ready') ready();
    else if (m.type === 'anomaly' || m.type === 'cleared') jsEvents.push(m);
    else if (m.type === 'ack' && m.id === -1) done();
    else if (m.type === 'ack' && m.refused) errors.push(`js worker refused ${m.refused} readings`);
    else if (m.type === 'error') errors.push(`js worker: ${m.code}: ${m.message}`);
  };
  worker.onerror = (e) => errors.push(`js worker: ${e.message}`);
  await readyP;
  worker.postMessage({ type: 'clock', manual: true });

  const rand = random(seed);
  const ids = Array.from({ length: meters }, (_, i) => `eq-${String(i).padStart(5, '0')}`);
  const levels = Float64Array.from({ length: meters }, (_, m) => 20 + (m % 50) * 3);
  const prev = new Float64Array(meters);
  const value = scenario(meters, steps);
  const mfEvents = [];
  const keys = new Uint32Array(meters);
  const values = new Float64Array(meters);
  for (let k = 0; k < steps; k++) {
    const now = T0 + k * STEP_MS;
    const ts = now - 100;
    let n = 0;
    for (let m = 0; m < meters; m++) {
      const noise = (rand() + rand() + rand() - 1.5) * 2;
      const x = value(m, k, levels[m], noise, prev[m]);
      if (x === null) continue;
      const v = Math.round(x * 1000) / 1000;
      prev[m] = v;
      keys[n] = m;
      values[n++] = v;
    }
    let data;
    if (k % 2 === 0) {
      const bindings = k === 0 ? ids.map((id, key) => [key, id]) : [];
      data = encodeReadingsFrame({ bindings, keys: keys.subarray(0, n), ts, values: values.subarray(0, n) });
    } else {
      const parts = new Array(n);
      for (let i = 0; i < n; i++) parts[i] = `{"meter":"${ids[keys[i]]}","ts":${ts},"value":${values[i]}}`;
      data = `{"type":"readings","readings":[${parts.join(',')}]}`;
    }
    for (const out of engine.handle({ type: 'readings', data }, now)) {
      if (out.type === 'error' || out.type === 'warning') errors.push(`meterflow: ${out.code}: ${out.message}`);
    }
    if (typeof data === 'string') worker.postMessage({ type: 'readings', id: k, data, now });
    else worker.postMessage({ type: 'readings', id: k, data, now }, [data]);
    for (const out of engine.tick(now + STEP_MS / 2)) {
      if (out.type === 'anomaly' || out.type === 'cleared') mfEvents.push(out);
    }
    worker.postMessage({ type: 'tick', now: now + STEP_MS / 2 });
    if (errors.length) break;
  }
  worker.postMessage({ type: 'tick', now: NaN, id: -1 });
  await finished;
  worker.terminate();
  engine.free();
  if (errors.length) throw new Error(`equivalence run: ${errors.slice(0, 3).join('; ')}`);

  const byKind = {};
  for (const e of mfEvents) {
    const key = `${e.type === 'cleared' ? 'cleared' : e.severity} ${e.kind}`;
    byKind[key] = (byKind[key] ?? 0) + 1;
  }
  const summary = { meters, steps, events: mfEvents.length, jsEvents: jsEvents.length, byKind, tolerance: TOLERANCE };
  for (let i = 0; i < Math.max(mfEvents.length, jsEvents.length); i++) {
    const a = mfEvents[i];
    const b = jsEvents[i];
    const why = !a || !b ? 'missing event' : same(a, b);
    if (why) {
      throw new Error(`alerts differ at event ${i} (${why}): meterflow ${JSON.stringify(a)} js ${JSON.stringify(b)}`);
    }
  }
  for (const kind of ['spike', 'drift', 'stuck', 'silent']) {
    const raised = Object.entries(byKind).some(([k, c]) => k.endsWith(kind) && !k.startsWith('cleared') && c > 0);
    if (!raised) throw new Error(`equivalence run: no ${kind} alert was raised, so the check proves nothing for it (${JSON.stringify(byKind)})`);
  }
  return summary;
}
