// A synthetic meter stream with injected anomalies, for the demo and the tests.
//
// N meters report at `hz` (2 Hz: one reading each per 500 ms step). Meter i is
// Gaussian noise around its own level. Every `cycleSteps` steps a new cycle
// injects five anomalies, each on a different meter (the meters move on every
// cycle):
//
//   spike     4 readings at +15 sd, then normal again
//   burst     a burst pipe: the level steps up by 20 sd and stays up until the cycle ends
//   stuck     the meter reads exactly 0 for 47 s
//   drift     the level ramps up by 0.05 sd per reading (to at most +3 sd) for 57 s
//   dropout   the meter sends nothing for 27 s
//
// Every other meter is normal throughout. The generator is deterministic for a
// given seed and knows nothing of the worker, frames or the DOM: the demo page
// turns each step into a binary frame, and a later feed server can replace it.

/**
 * What each injected anomaly looks like, relative to the start of its cycle (in
 * steps), and the alert kind it must raise. An injection may raise other kinds
 * too (a meter stuck at zero is also a spike, and its short mean drifts).
 */
export const INJECTIONS = [
  { label: 'spike', expect: 'spike', meterOffset: 42, from: 6, to: 10 },
  { label: 'burst', expect: 'spike', meterOffset: 1234, from: 6, to: 200 },
  { label: 'stuck', expect: 'stuck', meterOffset: 2500, from: 6, to: 100 },
  { label: 'drift', expect: 'drift', meterOffset: 3333, from: 6, to: 120 },
  { label: 'dropout', expect: 'silent', meterOffset: 4444, from: 6, to: 60 },
];

/** A small, fast deterministic PRNG (mulberry32). */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class SyntheticFeed {
  /**
   * @param {{ meters?: number, hz?: number, seed?: number, cycleSteps?: number }} [opts]
   */
  constructor({ meters = 5000, hz = 2, seed = 1, cycleSteps = 240 } = {}) {
    this.meterCount = meters;
    this.stepMs = 1000 / hz;
    this.cycleSteps = cycleSteps;
    this.random = mulberry32(seed);
    this.meterIds = Array.from({ length: meters }, (_, i) => `meter-${String(i).padStart(5, '0')}`);
    this.level = new Float64Array(meters);
    this.sd = new Float64Array(meters);
    for (let i = 0; i < meters; i++) {
      this.level[i] = 20 + ((i * 37) % 100);
      this.sd[i] = 0.5 + (i % 7) * 0.25;
    }
    this.spare = NaN;
  }

  /** A standard normal deviate (Box-Muller, both halves used). */
  gauss() {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = NaN;
      return s;
    }
    const u = 1 - this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * The injections active or scheduled in the cycle containing `step`, with their
   * meters. Steps before 0 (history sent at start-up) have none.
   */
  injectionsAt(step) {
    if (step < 0) return [];
    const cycle = Math.floor(step / this.cycleSteps);
    const base = cycle * this.cycleSteps;
    return INJECTIONS.map((inj) => {
      const m = (inj.meterOffset + cycle * 101) % this.meterCount;
      return { ...inj, cycle, meterIndex: m, meter: this.meterIds[m], fromStep: base + inj.from, toStep: base + inj.to };
    });
  }

  /**
   * The readings of step `step` (negative steps are history): the indices of the
   * meters that report and their values.
   * @returns {{ indices: Uint32Array, values: Float64Array }}
   */
  step(step) {
    const n = this.meterCount;
    const values = new Float64Array(n);
    for (let i = 0; i < n; i++) values[i] = this.level[i] + this.sd[i] * this.gauss();
    let silent = -1;
    for (const inj of this.injectionsAt(step)) {
      if (step < inj.fromStep || step >= inj.toStep) continue;
      const m = inj.meterIndex;
      const k = step - inj.fromStep;
      switch (inj.label) {
        case 'spike':
          values[m] = this.level[m] + 15 * this.sd[m];
          break;
        case 'burst':
          values[m] += 20 * this.sd[m];
          break;
        case 'stuck':
          values[m] = 0;
          break;
        case 'drift':
          values[m] += Math.min(0.05 * k, 3) * this.sd[m];
          break;
        case 'dropout':
          silent = m;
          break;
      }
    }
    if (silent < 0) return { indices: Uint32Array.from(this.meterIds.keys()), values };
    const indices = new Uint32Array(n - 1);
    const kept = new Float64Array(n - 1);
    for (let i = 0, j = 0; i < n; i++) {
      if (i === silent) continue;
      indices[j] = i;
      kept[j++] = values[i];
    }
    return { indices, values: kept };
  }
}
