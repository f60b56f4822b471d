// The careful hand-written JavaScript worker the path benchmark races meterflow
// against (www/bench/path.js). It does the same work as meterflow's readings
// path on the same messages, done well in plain JavaScript (flat typed arrays,
// no allocation per reading):
//   - the same page messages: `readings` with `data` a JSON string (`JSON.parse`)
//     or a binary kind-1 frame (docs/PROTOCOL.md 3.4; keys persist across
//     frames), an `id` answered with `{type:'ack', id, accepted, refused, ms}`;
//   - the same checks per reading: a string meter id, finite value within
//     maxAbsValue, timestamp within [now − maxAgeMs, now + maxFutureMs];
//   - meters interned in a `Map` at their first accepted reading, rings in one
//     flat `Float64Array` (window 1,200), moments with the same shifted, stable
//     add/remove updates and the same exact rebuilds as src/core/moments.rs (so
//     window mean and variance agree with meterflow's to rounding);
//   - the same detection (src/core/detect/, docs/DETECTION.md) with the
//     default config: per-reading scoring before the reading enters the window,
//     then an evaluation tick every `tickMs` (500 ms, the worker's timer) over
//     the meters with new readings (spike votes with the kurtosis-widened
//     threshold, drift against the learned slow baseline, stuck runs against the
//     learned plateau, silence on its schedule), posting the same `anomaly` and
//     `cleared` messages. The port is split as the Rust is: `CFG` (config.rs
//     defaults), `RULES` (rules.rs), `learn*` (learn.rs), `evaluate`/`settle`/
//     `raise`/`checkSilence` (evaluate.rs) and `tick`/`observe` (mod.rs), so a
//     rule change on the Rust side is a small edit of the matching function here.
// Earlier versions also kept exact hourly totals of every reading here; the
// `readings` path of meterflow keeps none (totals belong to the ledger's `live`
// frames), so that was extra work for this arm and is gone.
//
// For the equivalence check (bench/js-equivalence.js) the page may drive the
// engine clock: `{type:'clock', manual:true}` stops the tick timer, `readings`
// then carry `now` (engine time), and `{type:'tick', now, id?}` runs one
// evaluation tick (answered by an `ack` after its events). `query` `meter`
// answers `{type:'meter', meter, count, mean, variance}`; `config` takes
// `maxMeters` before the first meter, `maxScansPerTick` and `maxHeldAcks`.

/** src/core/config.rs `Config::default()`, the fields this worker uses. */
const CFG = {
  window: 1200,
  maxMeters: 5000,
  tickMs: 500,
  warmup: 60,
  spikeZ: 4.0,
  spikeVotesOf: 5,
  spikeVotesNeeded: 3,
  driftZ: 5.0,
  driftConsecutive: 5,
  stuckRun: 30,
  stuckFactor: 3.0,
  baselineReadings: 7200,
  silentAfterMs: 60_000,
  clearAfter: 10,
  criticalFactor: 2.0,
  stdFloor: 1e-6,
  stdFloorRel: 1e-6,
  spikeWidenMax: 2.0,
  recomputeEvery: 1200, // the engine's default (src/core/config.rs)
  maxScansPerTick: 1024,
  maxHeldAcks: 64,
  maxAbsValue: 1e15,
  maxAgeMs: 6 * 3_600_000,
  maxFutureMs: 300_000,
};
const WINDOW = CFG.window;
const INV_WINDOW = 1 / WINDOW;
/** learn.rs SCALE_MEMORY, VARIANCE_Z, VARIANCE_RATIO_MIN, VARIANCE_READINGS. */
const SCALE_MEMORY = 4.0;
// learn.rs DRIFT_LEARN_Z, DRIFT_LEARN_G2: the drift scale learns each term capped
// at (min(3, driftZ)·scale)² on meters with long-run excess kurtosis below 1.
const DRIFT_LEARN_Z = 3.0;
const DRIFT_LEARN_G2 = 1.0;
const VARIANCE_Z = 5.0;
const VARIANCE_RATIO_MIN = 3.0;
/** learn.rs VARIANCE_HOLD_U2: learning holds from this u² on, not only at a breach. */
const VARIANCE_HOLD_U2 = 0.25;
const VARIANCE_READINGS = 10.0;
// learn.rs SPIKE_CAP_G2, VAR_CAP, M4_CAP: while a spike incident may be in the
// window (evaluate.rs spike_recent) the long-run moments learn capped terms.
const SPIKE_CAP_G2 = 3.0;
const VAR_CAP = VARIANCE_RATIO_MIN;
const M4_CAP = 2.0 * VAR_CAP - 1.0;
// detect/season.rs.
const SEASON_BLOCK = 8;
const SEASON_MIN_PERIOD = 2 * SEASON_BLOCK;
const SEASON_PERIODS = 3;
const SEASON_ACF = 0.6;
const SEASON_DIP = 0.5;
const SEASON_NEAR_BEST = 0.9;
const SEASON_EXPLAINED = 0.5;
const SEASON_LONGER = 0.5;
const SEASON_TRIM = 4;
const SEASON_THIRDS_RHO = 0.25;
const SEASON_WARM = 120;
const SEASON_MEMORY = 1200.0;
const SEASON_MAX_READINGS = 16;
const M2_COLLAPSE = 1e-4;
const M4_COLLAPSE = 1e-6;
const KINDS = ['spike', 'drift', 'stuck', 'silent'];
const SPIKE = 0;
const DRIFT = 1;
const STUCK = 2;
const SILENT = 3;
const U16 = 0xffff;
const U32 = 0xffffffff;

// f64::max / f64::min: a NaN operand yields the other one (Math.max would give NaN).
const fmax = (a, b) => (a !== a ? b : b !== b ? a : a > b ? a : b);
const fmin = (a, b) => (a !== a ? b : b !== b ? a : a < b ? a : b);
const popcount = (v) => {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
};

/** src/core/detect/rules.rs. */
const RULES = {
  flooredVariance(v, mean) {
    const rel = CFG.stdFloorRel * Math.abs(mean);
    return fmax(fmax(v, rel * rel), CFG.stdFloor * CFG.stdFloor);
  },
  widen(g2) {
    const z = CFG.spikeZ;
    const slope = fmax((z * z - 3.0) / 24.0, 0.0);
    return fmax(fmin(1.0 + slope * fmax(g2, 0.0), CFG.spikeWidenMax), 1.0);
  },
  /** rules.rs `tails`: the smaller kurtosis once the window carries TAILS_VAR_SHARE of the long-run variance. */
  tails(windowG2, longG2, windowVar, longVar) {
    if (longVar > 0 && windowVar >= 0.5 * longVar) return fmin(windowG2, longG2);
    return fmax(windowG2, longG2);
  },
  score(u2) {
    if (u2 !== u2 || u2 <= 0) return 0;
    if (u2 === Infinity) return 1;
    return u2 / (1 + u2);
  },
  voteMask() {
    return (U32 >>> Math.min(Math.max(32 - CFG.spikeVotesOf, 0), 31)) >>> 0;
  },
  voteSpan(votes) {
    return 32 - Math.clz32(votes);
  },
};

// Per meter, in flat slabs sized at the first meter (`maxMeters`).
let ring, head, len;
// Moments: n, shift, centered mean, m2, m3, m4, peak m2, peak m4, removals.
const MO = 9;
let mo;
// detect/state.rs Pending: new, peakD, peakVar, peakX, peakTs, peakMean, run, lastX, lastTs.
const PD = 9;
let pend;
// detect/state.rs Verdicts.
let votes, widenF32, driftRun, stuckEvals, endedRun, calm, active, critical, scoreF32;
// Verdicts.drift_held / drift_quiet (learn::Teach::drift).
let driftHeld, driftQuiet;
// detect/learn.rs Learned: slow, dev2, var, m4, plateauX, runX | readings, plateauRun, otherRun, runSeen.
const LF = 6;
let lf;
const LU = 4;
let lu;
// Learned.vscale2 (an f32, as in the Rust) and Learned.var_held.
let vscale2, varHeld;
// Verdicts.season (season.rs Season): scale2 (f32), period, learned (u16).
let seasonScale2, seasonPeriod, seasonLearned;
// season.rs `Season::owe` / `Detector::owed`: meters owing a scan, each once,
// oldest first (`owedQueue` from `owedHead`), and the scans a tick has left.
let seasonOwes;
let owedQueue = [];
let owedHead = 0;
let scansLeft = 0;
// detect/excursion.rs Excursion: last[3], base, scale, openU2, foundU2 | readings | open, up, coarse, blips, at.
const XF = 7;
let xf, xReadings, xOpen, xUp, xCoarse, xBlips, xAt;
// detect/median.rs Median: m2, m4 | t2 (f32) | n, votes | step (f32, the excursion rule's learned least step).
const MF = 2;
let mdf, mdT2, mdN, mdVotes, mdStep;
// Engine time of each meter's last evaluation (−∞ before its first).
let seen;
// Meters with readings since their last evaluation, in order of first reading.
let dirty;
let dirtyLen = 0;
// detect/mod.rs SilenceSchedule (the basis is fixed: this worker's config never changes).
let silenceDue = Infinity;
let silenceChecked = false;

function allocate(maxMeters) {
  CFG.maxMeters = maxMeters;
  ring = new Float64Array(maxMeters * WINDOW);
  head = new Int32Array(maxMeters);
  len = new Int32Array(maxMeters);
  mo = new Float64Array(maxMeters * MO);
  pend = new Float64Array(maxMeters * PD);
  votes = new Uint32Array(maxMeters);
  widenF32 = new Float32Array(maxMeters).fill(1);
  driftRun = new Uint16Array(maxMeters);
  stuckEvals = new Uint32Array(maxMeters);
  endedRun = new Uint32Array(maxMeters);
  driftHeld = new Uint32Array(maxMeters);
  driftQuiet = new Uint32Array(maxMeters).fill(U32);
  calm = new Uint16Array(maxMeters * 4);
  active = new Uint8Array(maxMeters);
  critical = new Uint8Array(maxMeters);
  scoreF32 = new Float32Array(maxMeters);
  lf = new Float64Array(maxMeters * LF);
  lu = new Uint32Array(maxMeters * LU);
  vscale2 = new Float32Array(maxMeters);
  varHeld = new Uint32Array(maxMeters);
  seasonScale2 = new Float32Array(maxMeters);
  seasonPeriod = new Uint16Array(maxMeters);
  seasonLearned = new Uint16Array(maxMeters);
  seasonOwes = new Uint8Array(maxMeters);
  xf = new Float64Array(maxMeters * XF);
  xReadings = new Uint32Array(maxMeters);
  xOpen = new Uint8Array(maxMeters);
  xUp = new Uint8Array(maxMeters);
  xAt = new Uint8Array(maxMeters);
  xCoarse = new Uint8Array(maxMeters);
  xBlips = new Uint8Array(maxMeters);
  mdf = new Float64Array(maxMeters * MF);
  mdT2 = new Float32Array(maxMeters).fill(Infinity);
  mdN = new Uint32Array(maxMeters);
  mdVotes = new Uint32Array(maxMeters);
  mdStep = new Float32Array(maxMeters).fill(-Infinity);
  seen = new Float64Array(maxMeters).fill(-Infinity);
  dirty = new Int32Array(maxMeters);
}
allocate(CFG.maxMeters);

const ids = new Map();
const names = [];
// Stream keys of binary frames → meter index (−1 unbound); pending names.
let keyTable = new Int32Array(1024).fill(-1);
const keyNames = new Map();

const utf8 = new TextDecoder();

function intern(id) {
  let m = ids.get(id);
  if (m === undefined) {
    if (names.length >= CFG.maxMeters) return -1;
    m = names.length;
    names.push(id);
    ids.set(id, m);
    // Defaults that are not zero (state.rs, learn.rs).
    pend[m * PD + 2] = 1; // peak_var
    pend[m * PD + 8] = -Infinity; // last_ts
    lf[m * LF + 4] = NaN; // plateau_x
    lf[m * LF + 5] = NaN; // run_x
  }
  return m;
}

// Accumulators of `recompute` (sum, then centred powers 2, 3, 4; 4 lanes each),
// kept across calls so a rebuild allocates nothing.
const acc = new Float64Array(16);

/** Adds `ring[base+from .. base+to] − k` to the 4 lanes of acc[0..4], in the order moments.rs does. */
function sumLanes(base, from, to, k) {
  const cnt = to - from;
  const full = cnt - (cnt % 4);
  for (let i = 0; i < full; i += 4) for (let j = 0; j < 4; j++) acc[j] += ring[base + from + i + j] - k;
  for (let j = 0; j < cnt % 4; j++) acc[j] += ring[base + from + full + j] - k;
}

function centredLane(j, x, k, md) {
  const d = x - k - md;
  const d2 = d * d;
  acc[4 + j] += d2;
  acc[8 + j] += d2 * d;
  acc[12 + j] += d2 * d2;
}

function centredLanes(base, from, to, k, md) {
  const cnt = to - from;
  const full = cnt - (cnt % 4);
  for (let i = 0; i < full; i += 4) for (let j = 0; j < 4; j++) centredLane(j, ring[base + from + i + j], k, md);
  for (let j = 0; j < cnt % 4; j++) centredLane(j, ring[base + from + full + j], k, md);
}

const laneSum = (at) => acc[at] + acc[at + 1] + (acc[at + 2] + acc[at + 3]);

/** moments.rs `Moments::recompute`: an exact rebuild from the ring, oldest first, as two slices. */
function recompute(m) {
  const n = len[m];
  const base = m * WINDOW;
  const start = (head[m] - n + WINDOW) % WINDOW;
  const a0 = start;
  const a1 = start + n <= WINDOW ? start + n : WINDOW;
  const b1 = start + n <= WINDOW ? 0 : start + n - WINDOW;
  const k = n ? ring[base + start] : 0;
  acc.fill(0);
  sumLanes(base, a0, a1, k);
  sumLanes(base, 0, b1, k);
  const md = laneSum(0) / n;
  centredLanes(base, a0, a1, k, md);
  centredLanes(base, 0, b1, k, md);
  const o = m * MO;
  mo[o] = n;
  mo[o + 1] = k;
  mo[o + 2] = md;
  mo[o + 3] = mo[o + 6] = laneSum(4);
  mo[o + 4] = laneSum(8);
  mo[o + 5] = mo[o + 7] = laneSum(12);
  mo[o + 8] = 0;
}

// detect/excursion.rs (EXCURSION_Z, EXCURSION_WINDOW_SHARE, EXCURSION_MEMORY).
const EXCURSION_Z = 5.0;
const EXCURSION_WINDOW_SHARE = 0.5;
const EXCURSION_MEMORY = 1200;
// detect/excursion.rs (BLIP_WEIGHT, BLIP_U2, BLIP_DENSE): the blip density's leaky count.
const BLIP_WEIGHT = 16;
const BLIP_U2 = 4.0;
const BLIP_DENSE = 64;

function median3(a, b, c) {
  const lo = a <= b ? a : b;
  const hi = a <= b ? b : a;
  return c <= lo ? lo : c >= hi ? hi : c;
}

/** excursion.rs `quantum`: the learned step once confirmed (positive), else 0 (a candidate is negative, none −∞). */
function quantum(step) {
  return step > 0 ? step : 0.0;
}

/** excursion.rs `learn_step`: a hop of height `d` that came straight back; f32 as in the Rust. */
function learnStep(m, d) {
  const df = Math.fround(d);
  const s = mdStep[m];
  if (df > 0 && df < Math.abs(s)) mdStep[m] = -df;
  else if (s < 0 && df === -s) mdStep[m] = df;
}

/** excursion.rs `beyond`: |r| less the quantum `q`, never below 0. */
function beyond(r, q) {
  const a = Math.abs(r) - q;
  return a > 0 ? a : 0.0;
}

/**
 * detect/excursion.rs `Excursion::observe`: reading `x`, `v` the window's floored variance before it.
 * Returns the median of the three readings before `x`, or NaN before there were three.
 */
function excursionObserve(m, x, v) {
  const o = m * XF;
  const readings = xReadings[m];
  const q = quantum(mdStep[m]);
  xCoarse[m] = 4.0 * v < q * q ? 1 : 0;
  if (xBlips[m] > 0) xBlips[m]--;
  let median = NaN;
  if (readings >= 3) {
    median = median3(xf[o], xf[o + 1], xf[o + 2]);
    const share2 = EXCURSION_WINDOW_SHARE * EXCURSION_WINDOW_SHARE * v;
    const scale2 = xf[o + 4] * xf[o + 4];
    const limit2 = EXCURSION_Z * EXCURSION_Z * (scale2 > share2 ? scale2 : share2);
    if (xOpen[m] > 0) {
      const r = x - xf[o + 3];
      const a = beyond(r, q);
      if ((r > 0) === (xUp[m] === 1) && a * a > limit2) {
        if (xOpen[m] >= CFG.spikeVotesOf) {
          xOpen[m] = 0;
        } else {
          xOpen[m]++;
          const u2 = (a * a) / limit2;
          if (u2 < xf[o + 5]) xf[o + 5] = u2;
        }
      } else {
        const returned = 4.0 * a * a <= limit2;
        if (returned && xOpen[m] < CFG.spikeVotesNeeded) {
          // A blip: alone it never counts; coming densely it does, if it was at least twice the limit away.
          if (xf[o + 5] >= BLIP_U2) {
            xBlips[m] = Math.min(255, xBlips[m] + BLIP_WEIGHT);
            if (xBlips[m] >= BLIP_DENSE && xf[o + 5] > xf[o + 6]) xf[o + 6] = xf[o + 5];
          }
        } else if (returned && xf[o + 5] > xf[o + 6]) {
          xf[o + 6] = xf[o + 5];
        }
        xOpen[m] = 0;
      }
    } else {
      const r = x - median;
      const a = beyond(r, q);
      if (a * a > limit2) {
        if (readings >= CFG.warmup) {
          xOpen[m] = 1;
          xUp[m] = r > 0 ? 1 : 0;
          xf[o + 3] = median;
          xf[o + 5] = (a * a) / limit2;
        }
      } else {
        const seenN = Math.min(readings, EXCURSION_MEMORY);
        xf[o + 4] += (Math.abs(r) - xf[o + 4]) / seenN;
      }
    }
  }
  // A one-reading hop that came straight back (b, c, x with x === b !== c): the slot xAt holds the
  // oldest of the three, so b is at xAt + 1 and c at xAt + 2.
  if (readings >= 2) {
    const b = xf[o + (xAt[m] + 1) % 3];
    const c = xf[o + (xAt[m] + 2) % 3];
    if (x === b && c !== x) learnStep(m, Math.abs(c - x));
  }
  xReadings[m] = Math.min(readings + 1, U32);
  xf[o + xAt[m]] = x;
  xAt[m] = xAt[m] >= 2 ? 0 : xAt[m] + 1;
  return median;
}

// detect/median.rs (MEDIAN_MEMORY).
const MEDIAN_MEMORY = 7200;

/**
 * detect/median.rs `Median::observe`: `median` of the three readings before, the window's mean and
 * floored variance. Returns the evidence squared when this median closes the rule's vote, else 0.
 */
function medianObserve(m, median, mean, v, warm) {
  const o = m * MF;
  const d = median - mean;
  const d2 = d * d;
  const scale2 = v > mdf[o] ? v : mdf[o];
  const limit2 = mdT2[m] * scale2;
  const breach = warm && d2 > limit2;
  mdVotes[m] = warm ? (((mdVotes[m] << 1) | (breach ? 1 : 0)) & RULES.voteMask()) >>> 0 : 0;
  const found = breach && popcount(mdVotes[m]) >= CFG.spikeVotesNeeded ? d2 / limit2 : 0.0;
  const n = Math.min(mdN[m] + 1, U32);
  mdN[m] = n;
  const w = n >= MEDIAN_MEMORY ? 1.0 / MEDIAN_MEMORY : 1.0 / n;
  mdf[o] += (d2 - mdf[o]) * w;
  mdf[o + 1] += (d2 * d2 - mdf[o + 1]) * w;
  if (mdVotes[m] === 0) {
    // median.rs `threshold2`: f32 arithmetic, as in the Rust.
    const m2 = mdf[o];
    const z = Math.fround(CFG.spikeZ);
    const t = m2 > 0 ? Math.fround(z * Math.fround(RULES.widen(mdf[o + 1] / (m2 * m2) - 3.0))) : z;
    mdT2[m] = t * t;
  }
  return found;
}

/** detect/mod.rs `Detector::observe` (before the reading enters), then windows.rs `push`. */
function add(m, x, ts) {
  const o = m * MO;
  const n0 = mo[o];
  const mean = mo[o + 1] + mo[o + 2];
  const v0 = n0 < 2 || mo[o + 3] <= 0 ? 0 : mo[o + 3] / n0;
  const v = RULES.flooredVariance(v0, mean);
  const d = x - mean;
  const p = m * PD;
  // median.rs `rounding_variance`: step²/12 floors the spike's and the median rule's variance.
  const q = quantum(mdStep[m]);
  const q2 = (q * q) / 12.0;
  const spikeV = v > q2 ? v : q2;
  if (pend[p] === 0) dirty[dirtyLen++] = m;
  if (pend[p] === 0 || d * d * pend[p + 2] > pend[p + 1] * pend[p + 1] * spikeV) {
    pend[p + 1] = d;
    pend[p + 2] = spikeV;
    pend[p + 3] = x;
    pend[p + 4] = ts;
    pend[p + 5] = mean;
  }
  const median = excursionObserve(m, x, v);
  if (median === median) {
    // excursion.rs `Excursion::found`: a median vote closed raises as a found excursion does.
    const u2 = medianObserve(m, median, mean, spikeV, n0 >= CFG.warmup);
    if (u2 > xf[m * XF + 6]) xf[m * XF + 6] = u2;
  }
  // state.rs Verdicts.ended_run: the run in progress at the last evaluation ends here.
  if (pend[p + 6] > pend[p] && x !== pend[p + 7]) endedRun[m] = pend[p + 6];
  pend[p] = Math.min(pend[p] + 1, U32);
  pend[p + 6] = pend[p + 6] > 0 && x === pend[p + 7] ? Math.min(pend[p + 6] + 1, U32) : 1;
  pend[p + 7] = x;
  if (ts > pend[p + 8]) pend[p + 8] = ts;

  // Ring.
  const at = m * WINDOW + head[m];
  let evicted = NaN;
  if (len[m] === WINDOW) evicted = ring[at];
  else len[m]++;
  ring[at] = x;
  head[m] = head[m] + 1 === WINDOW ? 0 : head[m] + 1;

  // Moments: a full window replaces the evicted sample in one fixed-n update
  // (moments.rs `Moments::replace`, windows.rs `push`); otherwise remove, then add.
  if (evicted === evicted && mo[o] === WINDOW) {
    const d = x - evicted;
    const dl = d * INV_WINDOW;
    const cm = mo[o + 2];
    const aa = evicted - mo[o + 1] - cm - dl;
    const bb = x - mo[o + 1] - cm - dl;
    const a2 = aa * aa;
    const b2 = bb * bb;
    const dl2 = dl * dl;
    const m2 = mo[o + 3];
    const m3 = mo[o + 4];
    mo[o + 5] += 6 * dl2 * m2 - 4 * dl * m3 + d * ((aa + bb) * (a2 + b2) + dl2 * dl);
    mo[o + 4] += d * (a2 + aa * bb + b2 - dl2) - 3 * dl * m2;
    mo[o + 3] += d * (aa + bb + dl);
    mo[o + 2] = cm + dl;
    if (mo[o + 3] > mo[o + 6]) mo[o + 6] = mo[o + 3];
    if (mo[o + 5] > mo[o + 7]) mo[o + 7] = mo[o + 5];
    mo[o + 8]++;
    rebuildIfDrifted(m, o);
    return;
  }
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
  rebuildIfDrifted(m, o);
}

/** moments.rs `needs_recompute`, then `recompute`. */
function rebuildIfDrifted(m, o) {
  const r = mo[o + 8];
  if (
    r >= CFG.recomputeEvery ||
    mo[o + 3] < 0 ||
    mo[o + 5] < 0 ||
    (r > 0 && (mo[o + 3] < M2_COLLAPSE * mo[o + 6] || mo[o + 5] < M4_COLLAPSE * mo[o + 7]))
  ) {
    recompute(m);
  }
}

// ---- detect/learn.rs ------------------------------------------------------

function learnWeight(m, n, memory) {
  const s = fmax(fmin(lu[m * LU] + n, memory), 1.0);
  return fmin(n / s, 1.0);
}

// learn.rs DRIFT_HOLD: a drift alert holds the slow baseline for this many
// `baselineReadings`, then the level is adopted.
const DRIFT_HOLD = 4.0;

/** learn.rs `Learned::variance_excess`. */
function varianceExcess(m, v) {
  const lv = lf[m * LF + 2];
  return lv > 0 && v > lv ? fmax(v / lv - 1.0, 0.0) : 0.0;
}

/** learn.rs `Learned::variance_limit2`. */
function varianceLimit2(m) {
  const floor = VARIANCE_RATIO_MIN - 1.0;
  const tails = fmax((learnedKurtosis(m) + 2.0) / 2.0, 1.0);
  return fmax(VARIANCE_Z * VARIANCE_Z * vscale2[m], floor * floor * tails);
}

/** learn.rs `Learned::variance_u2`. */
function varianceU2(m, o, v) {
  if (!(v > VARIANCE_RATIO_MIN * lf[m * LF + 2])) return 0;
  const q = varianceExcess(m, v);
  const L = m * LF;
  const n = mo[o];
  const em2 = v - lf[L + 2];
  const em4 = n > 0 ? mo[o + 5] / n - lf[L + 3] : 0;
  if (em4 > 0 && n * em2 * em2 < VARIANCE_READINGS * em4) return 0;
  return (q * q) / varianceLimit2(m);
}

// `slow`, `varTeach`: 0 follow, 1 hold, 2 adopt (learn::Slow); `scale`: learn dev2.
function learnMoments(m, o, fvar, n, cap2, slow, scale, varTeach, varCap) {
  const memory = CFG.baselineReadings;
  const L = m * LF;
  const mean = mo[o + 1] + mo[o + 2];
  const fresh = lu[m * LU] === 0;
  const a = learnWeight(m, n, memory);
  const d = mean - lf[L];
  if (slow === 0) lf[L] += a * d;
  else if (slow === 2) lf[L] = mean;
  const m4 = mo[o] > 0 ? mo[o + 5] / mo[o] : 0;
  if (varTeach === 0) {
    if (!fresh) {
      const q = varianceExcess(m, fvar);
      const term = q > VARIANCE_RATIO_MIN - 1.0 ? fmin(q * q, varianceLimit2(m)) : q * q;
      const b = learnWeight(m, n, SCALE_MEMORY * memory);
      const v2 = vscale2[m];
      vscale2[m] = v2 + b * (term - v2);
    }
    // learn.rs, Teach::var_cap: capped while a spike incident may be in the window.
    const capped = varCap && lf[L + 2] > 0;
    const v = capped ? fmin(fvar, VAR_CAP * lf[L + 2]) : fvar;
    const m4v = capped ? fmin(m4, M4_CAP * lf[L + 3]) : m4;
    lf[L + 2] += a * (v - lf[L + 2]);
    if (Number.isFinite(m4v)) lf[L + 3] += a * (m4v - lf[L + 3]);
  } else if (varTeach === 2) {
    lf[L + 2] = fvar;
    if (Number.isFinite(m4)) lf[L + 3] = m4;
  }
  if (!fresh && scale) {
    const b = learnWeight(m, n, SCALE_MEMORY * memory);
    const dz2 = CFG.driftZ * CFG.driftZ;
    const k2 = fmin(DRIFT_LEARN_Z * DRIFT_LEARN_Z, dz2);
    const t = d * d;
    const term = t * dz2 <= cap2 * k2 ? t : learnedKurtosis(m) < DRIFT_LEARN_G2 ? (cap2 * k2) / dz2 : fmin(t, cap2);
    lf[L + 1] += b * (term - lf[L + 1]);
  }
  lu[m * LU] = Math.min(lu[m * LU] + n, U32);
}

function learnRun(m, run, x, n, endedAt, stuckActive) {
  const L = m * LF;
  const U = m * LU;
  if (run <= n && lu[U + 3] > 0 && !stuckActive) {
    const ended = endedAt > 0 ? endedAt : lu[U + 3];
    const v = lf[L + 5];
    if (v === lf[L + 4]) lu[U + 1] = Math.max(lu[U + 1], ended);
    else if (ended > lu[U + 1]) {
      lu[U + 2] = Math.max(lu[U + 2], lu[U + 1]);
      lf[L + 4] = v;
      lu[U + 1] = ended;
    } else lu[U + 2] = Math.max(lu[U + 2], ended);
  }
  lu[U + 3] = run;
  lf[L + 5] = x;
}

const trained = (m) => lu[m * LU] >= CFG.baselineReadings;
const stuckLimit = (m, x) =>
  fmax(CFG.stuckFactor * (x === lf[m * LF + 4] ? lu[m * LU + 1] : lu[m * LU + 2]), CFG.stuckRun);
const judgesRun = (m, run) => trained(m) && run <= lu[m * LU] - CFG.baselineReadings;
const learnedKurtosis = (m) => {
  const v = lf[m * LF + 2];
  return v > 0 ? lf[m * LF + 3] / (v * v) - 3.0 : 0.0;
};

// ---- detect/evaluate.rs ---------------------------------------------------

// The finding of the kind being settled, filled only when an event needs it
// (the Rust computes it in a closure; one reused record here).
const F = { z: 0, value: 0, mean: 0, std: 0, ts: 0, evaluations: 0, critical: false, u2: 0 };
// What `finding(kind)` reads, set by `evaluate` before each `settle`.
const E = { spikeVar: 0, threshold: 0, votes: 0, spikeU2: 0, varU2: 0, d: 0, scale2: 0, slow: 0, mean: 0, driftRun: 0,
  driftU2: 0, fvar: 0, stuckEvals: 0, limit: 0, stuckU: 0, m: 0 };
let now = 0;

function finding(kind) {
  const p = E.m * PD;
  if (kind === SPIKE) {
    const std = Math.sqrt(E.spikeVar);
    const z = pend[p + 1] / std;
    return setF(z, pend[p + 3], pend[p + 5], std, pend[p + 4], RULES.voteSpan(E.votes),
      Math.abs(z) >= CFG.criticalFactor * E.threshold || E.varU2 >= CFG.criticalFactor * CFG.criticalFactor,
      E.spikeU2);
  }
  if (kind === DRIFT) {
    const std = Math.sqrt(E.scale2);
    const z = E.d / std;
    return setF(z, E.mean, E.slow, std, pend[p + 8], E.driftRun, Math.abs(z) >= CFG.criticalFactor * CFG.driftZ, E.driftU2);
  }
  if (kind === STUCK) {
    const std = Math.sqrt(E.fvar);
    return setF((pend[p + 7] - E.mean) / std, pend[p + 7], E.mean, std, pend[p + 8], E.stuckEvals,
      pend[p + 6] >= CFG.criticalFactor * E.limit, E.stuckU * E.stuckU);
  }
  return setF(0, pend[p + 7], 0, 0, pend[p + 8], 0, false, 0);
}

function setF(z, value, mean, std, ts, evaluations, isCritical, u2) {
  F.z = z;
  F.value = value;
  F.mean = mean;
  F.std = std;
  F.ts = ts;
  F.evaluations = evaluations;
  F.critical = isCritical;
  F.u2 = u2;
  return F;
}

/** season.rs `back`: meter m's sample k readings before the newest (undefined past the window). */
function ringBack(m, k) {
  if (k >= len[m]) return undefined;
  const slot = (((head[m] - 1 - k) % WINDOW) + WINDOW) % WINDOW;
  return ring[m * WINDOW + slot];
}

/** season.rs `scan_due`. */
function scanDue(m, before, after, every) {
  if (every === 0) return false;
  const phase = Number((BigInt(m) * 2654435761n) % BigInt(every));
  return Math.floor((before + phase) / every) !== Math.floor((after + phase) / every);
}

const seasonBlocks = new Float64Array(256);
const seasonR = new Float64Array(90);

/** season.rs `detect_period`, over meter m's window (oldest first). */
function detectPeriod(m) {
  const n = len[m];
  const start = (head[m] - n + WINDOW) % WINDOW;
  const base = m * WINDOW;
  const at = (i) => ring[base + ((start + i) % WINDOW)];
  let nb = Math.floor(n / SEASON_BLOCK);
  if (Math.floor(nb / SEASON_PERIODS) < SEASON_MIN_PERIOD / SEASON_BLOCK + 1) return 0;
  const blocks = seasonBlocks;
  nb = Math.min(nb, blocks.length);
  const skip = n - nb * SEASON_BLOCK;
  let sum = 0.0;
  for (let j = 0; j < nb; j++) {
    let s = 0.0;
    for (let i = 0; i < SEASON_BLOCK; i++) s += at(skip + j * SEASON_BLOCK + i);
    blocks[j] = s / SEASON_BLOCK;
    sum += blocks[j];
  }
  const mu = sum / nb;
  for (let j = 0; j < nb; j++) blocks[j] -= mu;
  let pick;
  let least;
  const [coarse, r1] = coarseLag(blocks, nb);
  if (coarse >= 0) {
    [pick, least] = fineLag(at, n, coarse);
  } else if (r1 < SEASON_ACF) {
    return 0;
  } else {
    // season.rs: no cycle in the block means, so their first differences
    // (a wander hides a weak cycle), then the fine step on x_t − x_{t−B}.
    const diffs = seasonDiffs;
    let dsum = 0.0;
    for (let j = 0; j < nb - 1; j++) {
      diffs[j] = blocks[j + 1] - blocks[j];
      dsum += diffs[j];
    }
    const dmu = dsum / (nb - 1);
    for (let j = 0; j < nb - 1; j++) diffs[j] -= dmu;
    const [dc] = coarseLag(diffs, nb - 1);
    if (dc < 0) return 0;
    const diff = (i) => at(i + SEASON_BLOCK) - at(i);
    const nd = n - SEASON_BLOCK;
    let msd;
    [pick, msd] = fineLag(diff, nd, dc);
    for (let d = 8; d >= 2; d--) {
      const q = Math.floor((pick + Math.floor(d / 2)) / d);
      if (q < SEASON_MIN_PERIOD) continue;
      const [short, mq] = fineLagIn(diff, nd, Math.max(q - 2, 0), q + 2);
      if (mq * SEASON_NEAR_BEST * SEASON_NEAR_BEST * SEASON_NEAR_BEST <= msd) {
        pick = short;
        break;
      }
    }
    if (pick === 0 || !repeatsThroughout(diff, nd, pick)) return 0;
    let s = 0.0;
    for (let i = pick; i < n; i++) {
      const d = at(i) - at(i - pick);
      s += d * d;
    }
    least = s / (n - pick);
  }
  let total = 0.0;
  for (let i = 0; i < n; i++) total += at(i);
  const mean = total / n;
  let m2 = 0.0;
  for (let i = 0; i < n; i++) {
    const d = at(i) - mean;
    m2 += d * d;
  }
  if (!(least <= (2.0 * (1.0 - SEASON_EXPLAINED) * m2) / n)) return 0;
  pick = longerCycle(at, n, pick);
  return pick <= U16 ? pick : 0;
}

const seasonDiffs = new Float64Array(256);

/** season.rs `coarse_lag`: over centred block means, [the coarse lag in blocks or −1, the autocorrelation at one block]. */
function coarseLag(blocks, nb) {
  let c0 = 0.0;
  for (let j = 0; j < nb; j++) c0 += blocks[j] * blocks[j];
  if (!(c0 > 0.0) || !Number.isFinite(c0)) return [-1, 0.0];
  c0 = c0 / nb;
  const maxLag = Math.min(Math.floor(nb / SEASON_PERIODS), Math.floor(U16 / SEASON_BLOCK));
  const first = SEASON_MIN_PERIOD / SEASON_BLOCK;
  if (maxLag < first + 1) return [-1, 0.0];
  const acf = (l) => {
    let s = 0.0;
    for (let i = 0; i < nb - l; i++) s += blocks[i] * blocks[i + l];
    return s / ((nb - l) * c0);
  };
  const r = seasonR;
  r.fill(0);
  const top = Math.min(maxLag + 2, r.length - 1, nb - 1);
  for (let l = first - 1; l <= top; l++) r[l] = acf(l);
  let low = Infinity;
  const peaks = [];
  let best = 0.0;
  for (let l = first; l < top; l++) {
    const prev = r[l - 1];
    const here = r[l];
    const next = r[l + 1];
    low = fmin(low, prev);
    if (l <= maxLag + 1 && here >= SEASON_ACF && here - low >= SEASON_DIP && here >= prev && here >= next && peaks.length < 16) {
      peaks.push([l, here]);
      best = fmax(best, here);
    }
  }
  const found = peaks.find((q) => q[1] >= SEASON_NEAR_BEST * best);
  return [found === undefined ? -1 : found[0], r[1]];
}

/** season.rs `fine_lag`: the least-msd lag within a block of the coarse one. */
function fineLag(at, n, coarse) {
  const centre = coarse * SEASON_BLOCK;
  const lo = Math.max(Math.max(centre - SEASON_BLOCK, 0), SEASON_MIN_PERIOD);
  return fineLagIn(at, n, lo, centre + SEASON_BLOCK);
}

/** season.rs `fine_lag_in`: [lag, msd] of the least mean squared lag difference in lo..=hi. */
function fineLagIn(at, n, lo, hi) {
  hi = Math.min(hi, Math.floor(n / SEASON_PERIODS));
  let pick = 0;
  let least = Infinity;
  for (let p = lo; p <= hi; p++) {
    let s = 0.0;
    for (let i = p; i < n; i++) {
      const d = at(i) - at(i - p);
      s += d * d;
    }
    const msd = s / (n - p);
    if (msd < least) {
      least = msd;
      pick = p;
    }
  }
  return [pick, least];
}

/** season.rs `repeats_throughout`: the differences repeat at lag p in each third. */
function repeatsThroughout(y, n, p) {
  const span = Math.floor(Math.max(n - p, 0) / 3);
  if (span < p) return false;
  for (let part = 0; part < 3; part++) {
    const lo = p + part * span;
    let both = 0.0;
    let sd = 0.0;
    for (let i = lo; i < lo + span; i++) {
      const v = y(i);
      const w = y(i - p);
      const d = v - w;
      both += v * v + w * w;
      sd += d * d;
    }
    if (!(both > 0.0 && sd <= (1.0 - SEASON_THIRDS_RHO) * both)) return false;
  }
  return true;
}

/** season.rs `longer_cycle`: the multiple of period p (a week of days) to judge against, or p. */
function longerCycle(at, n, p) {
  if (p > 0 && 2 * p > Math.floor(n / SEASON_PERIODS)) return beyondReach(at, n, p);
  const msd = [];
  let least = Infinity;
  for (let k = 2; k < 32 && p > 0 && k * p <= Math.floor(n / SEASON_PERIODS); k++) {
    msd[k] = trimmedMsd(at, n, k * p, p);
    least = fmin(least, msd[k]);
  }
  const base = trimmedMsd(at, n, p, p);
  if (!Number.isFinite(least) || !(least <= SEASON_LONGER * base)) return p;
  for (let k = 2; k < msd.length; k++) if (msd[k] * SEASON_NEAR_BEST <= least) return k * p;
  return p;
}

/** season.rs `beyond_reach`: a period with no multiple in reach may be several of a shorter cycle. */
function beyondReach(at, n, p) {
  const top = Math.floor(n / SEASON_PERIODS);
  let pick = p;
  let least = Infinity;
  for (let j = 2; j <= 7; j++) {
    const d = Math.floor(p / j);
    if (p % j !== 0 || d < SEASON_MIN_PERIOD) continue;
    const base = trimmedMsd(at, n, p, d);
    for (let q = p + d; q <= top; q += d) {
      const m = trimmedMsd(at, n, q, d);
      if (m <= SEASON_LONGER * base && m < least) {
        pick = q;
        least = m;
      }
    }
  }
  return pick;
}

const seasonTop = new Float64Array(SEASON_TRIM);

/** season.rs `trimmed_msd`: the mean squared lag-q difference over whole p-blocks, less the SEASON_TRIM largest. */
function trimmedMsd(at, n, q, p) {
  const blocks = Math.floor(Math.max(n - q, 0) / Math.max(p, 1));
  if (blocks <= SEASON_TRIM) return Infinity;
  let total = 0.0;
  const top = seasonTop;
  top.fill(0);
  for (let j = 0; j < blocks; j++) {
    let s = 0.0;
    for (let i = q + j * p; i < q + (j + 1) * p; i++) {
      const d = at(i) - at(i - q);
      s += d * d;
    }
    total += s;
    let v = s;
    for (let t = 0; t < SEASON_TRIM; t++) {
      if (v > top[t]) {
        const w = top[t];
        top[t] = v;
        v = w;
      }
    }
  }
  let trimmed = 0.0;
  for (let t = 0; t < SEASON_TRIM; t++) trimmed += top[t];
  return (total - trimmed) / ((blocks - SEASON_TRIM) * p);
}

/** season.rs `Season::adopt`. */
function seasonAdopt(m, p) {
  const had = seasonPeriod[m];
  if (p !== 0 && had !== 0 && Math.abs(p - had) <= SEASON_BLOCK) {
    seasonPeriod[m] = p;
  } else if (p !== had) {
    seasonPeriod[m] = p;
    seasonScale2[m] = 0;
    seasonLearned[m] = 0;
  }
}

/** season.rs `Season::evaluate`: the seasonal evidence squared, learning the residual. */
function seasonEvaluate(m, full, fresh, readings, t, floor2) {
  // evaluate.rs `Judge::season`: a due scan past the tick's budget is owed.
  const due = seasonOwes[m] === 1 || (full && scanDue(m, readings, Math.min(readings + fresh, U32), len[m]));
  const scan = due && (!full || scansLeft > 0);
  if (due && full && !scan && seasonOwes[m] === 0) {
    seasonOwes[m] = 1;
    owedQueue.push(m);
  }
  if (due && full && scan) scansLeft--;
  if (scan) {
    seasonOwes[m] = 0;
    if (full) seasonAdopt(m, detectPeriod(m));
  }
  const p = seasonPeriod[m];
  if (p === 0) return 0;
  let r2 = 0.0;
  const k1 = Math.min(fresh, SEASON_MAX_READINGS);
  for (let k = 0; k < k1; k++) {
    const x = ringBack(m, k);
    const a = ringBack(m, k + p);
    const b = ringBack(m, k + 2 * p);
    if (x === undefined || a === undefined || b === undefined) continue;
    const q1 = x - a;
    const q2 = x - b;
    const q = Math.abs(q1) <= Math.abs(q2) ? q1 : q2;
    r2 = fmax(r2, q * q);
  }
  const learned = seasonLearned[m];
  const s2 = seasonScale2[m];
  const u2 = learned < SEASON_WARM || r2 <= 0.0 ? 0 : r2 / (t * t * fmax(s2, floor2));
  const term = learned < SEASON_WARM ? r2 : fmin(r2, t * t * s2);
  const seenN = fmin(learned + 1.0, SEASON_MEMORY);
  const next = s2 + (term - s2) / seenN;
  if (Number.isFinite(next)) seasonScale2[m] = next;
  seasonLearned[m] = Math.min(learned + 1, U16);
  return u2;
}

// A spare bit of `critical` (evaluate.rs, SPIKE_RECENT): set when a spike
// alert is active on a meter with long-run excess kurtosis below SPIKE_CAP_G2,
// kept until the alert cleared and the window's variance and 4th moment are
// within the caps (learn.rs within_caps).
const SPIKE_RECENT = 1 << 4;

function spikeRecent(m, o, fvar) {
  const L = m * LF;
  if ((active[m] & (1 << SPIKE)) !== 0) {
    if ((critical[m] & SPIKE_RECENT) === 0 && learnedKurtosis(m) < SPIKE_CAP_G2) critical[m] |= SPIKE_RECENT;
  } else if ((critical[m] & SPIKE_RECENT) !== 0 && fvar <= VAR_CAP * lf[L + 2] && mo[o + 5] <= M4_CAP * lf[L + 3] * mo[o]) {
    critical[m] &= ~SPIKE_RECENT;
  }
  return (critical[m] & SPIKE_RECENT) !== 0;
}

function evaluate(m) {
  const o = m * MO;
  const p = m * PD;
  const n = mo[o];
  const warm = n >= CFG.warmup;
  const mean = mo[o + 1] + mo[o + 2];
  const m2 = mo[o + 3];
  const variance = n < 2 || m2 <= 0 ? 0 : m2 / n;
  const fvar = RULES.flooredVariance(variance, mean);
  const fresh = pend[p];
  E.m = m;
  E.mean = mean;
  E.fvar = fvar;

  // Drift's statistic first (settled after spike).
  const L = m * LF;
  const isTrained = trained(m);
  const d = mean - lf[L];
  const scale2 = fmax(lf[L + 1], fvar / fmax(n, 1.0));
  const limit2 = CFG.driftZ * CFG.driftZ * scale2;
  const driftU2 = isTrained ? (d * d) / limit2 : 0;
  const driftBreach = warm && driftU2 > 1.0;

  // Variance (a breach is a spike breach).
  const varJudged = isTrained && !driftBreach && (active[m] & (1 << DRIFT)) === 0 && driftQuiet[m] >= n;
  const varU2 = varJudged ? varianceU2(m, o, fvar) : 0;

  // Spike.
  const threshold = CFG.spikeZ * widenF32[m];
  const spikeVar = fmax(pend[p + 2], lf[m * LF + 2]);
  const peakU2 = (pend[p + 1] * pend[p + 1]) / (threshold * threshold * spikeVar);
  // Seasonal (season.rs), judged like the variance rule: a spike breach.
  const readings = lu[m * LU];
  const seasonU2 = seasonEvaluate(m, n >= WINDOW, fresh, readings, threshold, RULES.flooredVariance(0.0, mean));
  // excursion.rs `Excursion::take`: an excursion found raises without the vote.
  const excursionU2 = xf[m * XF + 6];
  xf[m * XF + 6] = 0;
  const spikeU2 = fmax(fmax(fmax(peakU2, varU2), seasonU2), excursionU2);
  let breach = warm && spikeU2 > 1.0;
  votes[m] = warm ? (((votes[m] << 1) | (breach ? 1 : 0)) & RULES.voteMask()) >>> 0 : 0;
  if (votes[m] === 0) {
    const g2 = RULES.tails(variance === 0 ? 0 : (n * mo[o + 5]) / (m2 * m2) - 3.0, learnedKurtosis(m), variance, lf[m * LF + 2]);
    widenF32[m] = RULES.widen(g2);
  }
  E.spikeVar = spikeVar;
  E.threshold = threshold;
  E.votes = votes[m];
  E.spikeU2 = spikeU2;
  E.varU2 = fmax(fmax(varU2, seasonU2), excursionU2);
  settle(m, SPIKE, breach, breach && (popcount(votes[m]) >= CFG.spikeVotesNeeded || excursionU2 > 1.0));

  // Drift.
  breach = driftBreach;
  driftRun[m] = breach ? Math.min(driftRun[m] + 1, U16) : 0;
  E.d = d;
  E.scale2 = scale2;
  E.slow = lf[L];
  E.driftRun = driftRun[m];
  E.driftU2 = driftU2;
  settle(m, DRIFT, breach, driftRun[m] >= CFG.driftConsecutive);
  // Learn, but not from a drift incident (learn::Teach::drift).
  const driftActive = (active[m] & (1 << DRIFT)) !== 0;
  if (driftActive) {
    driftHeld[m] = Math.min(driftHeld[m] + fresh, U32);
    driftQuiet[m] = 0;
  } else {
    driftHeld[m] = 0;
    driftQuiet[m] = Math.min(driftQuiet[m] + fresh, U32);
  }
  // Nor the long-run variance from a variance incident, nor all of a window
  // that may still hold a spike incident's readings (evaluate.rs, spike_recent).
  const recent = spikeRecent(m, o, fvar);
  const varHold = warm && (varU2 > 1.0 || (varU2 > VARIANCE_HOLD_U2 && !recent && learnedKurtosis(m) < SPIKE_CAP_G2));
  varHeld[m] = varHold ? Math.min(varHeld[m] + fresh, U32) : 0;
  if (warm) {
    const base = CFG.baselineReadings;
    const slow = !driftActive ? 0 : driftHeld[m] < DRIFT_HOLD * base ? 1 : 2;
    const varTeach = !varHold ? 0 : varHeld[m] < DRIFT_HOLD * base ? 1 : 2;
    learnMoments(m, o, fvar, fresh, limit2, slow, !driftActive && driftQuiet[m] >= base, varTeach, recent);
  }

  // Stuck.
  const run = pend[p + 6];
  const lastX = pend[p + 7];
  const stuckActive = (active[m] & (1 << STUCK)) !== 0;
  learnRun(m, run, lastX, fresh, endedRun[m], stuckActive);
  endedRun[m] = 0;
  stuckEvals[m] = run <= fresh ? 1 : Math.min(stuckEvals[m] + 1, U32);
  // evaluate.rs: a window whose spread is within the meter's rounding (`Excursion::coarse`) does not vary.
  const spread = variance > RULES.flooredVariance(0.0, mean) && xCoarse[m] === 0;
  const limit = stuckLimit(m, lastX);
  const judged = warm && judgesRun(m, run) && (spread || stuckActive);
  const stuckU = judged ? run / limit : 0;
  breach = stuckU >= 1.0;
  E.stuckEvals = stuckEvals[m];
  E.limit = limit;
  E.stuckU = stuckU;
  settle(m, STUCK, breach, breach);

  const u2 = warm ? fmax(fmax(spikeU2, driftU2), stuckU * stuckU) : 0;
  scoreF32[m] = RULES.score(u2);

  settle(m, SILENT, false, false);
}

function settle(m, i, breach, raiseIt) {
  const c = m * 4 + i;
  const bit = 1 << i;
  calm[c] = breach ? 0 : Math.min(calm[c] + 1, U16);
  if ((active[m] & bit) === 0) {
    if (raiseIt) raise(m, i, finding(i));
  } else if (calm[c] >= CFG.clearAfter) {
    active[m] &= ~bit;
    critical[m] &= ~bit;
    post({ type: 'cleared', v: 1, meter: names[m], kind: KINDS[i], at: now });
  } else if (breach && (critical[m] & bit) === 0) {
    const f = finding(i);
    if (f.critical) raise(m, i, f);
  }
}

function raise(m, i, f) {
  const bit = 1 << i;
  active[m] |= bit;
  let severity;
  if (f.critical) {
    critical[m] |= bit;
    severity = 'critical';
  } else {
    critical[m] &= ~bit;
    severity = 'warning';
  }
  post({
    type: 'anomaly', v: 1, meter: names[m], kind: KINDS[i], severity,
    z: f.z, value: f.value, mean: f.mean, std: f.std, ts: f.ts, evaluations: f.evaluations, score: RULES.score(f.u2),
  });
}

function checkSilence(m) {
  const bit = 1 << SILENT;
  const s = seen[m];
  if (s === -Infinity || len[m] < CFG.warmup) return Infinity;
  const after = CFG.silentAfterMs;
  const criticalAfter = CFG.criticalFactor * after;
  const silence = now - s;
  const isCritical = silence >= criticalAfter;
  const u = silence / after;
  if (u > 1.0) scoreF32[m] = fmax(scoreF32[m], Math.fround(RULES.score(u * u)));
  if (silence > after && ((active[m] & bit) === 0 || (isCritical && (critical[m] & bit) === 0))) {
    calm[m * 4 + SILENT] = 0;
    const o = m * MO;
    const n = mo[o];
    const mean = mo[o + 1] + mo[o + 2];
    const variance = n < 2 || mo[o + 3] <= 0 ? 0 : mo[o + 3] / n;
    const std = Math.sqrt(RULES.flooredVariance(variance, mean));
    raise(m, SILENT, setF(0, pend[m * PD + 7], mean, std, pend[m * PD + 8], 0, isCritical, u * u));
  }
  if ((active[m] & bit) === 0) return s + after;
  if ((critical[m] & bit) === 0) return s + criticalAfter;
  return Infinity;
}

// ---- detect/mod.rs `Detector::tick` ---------------------------------------

function tick(nowMs) {
  if (!Number.isFinite(nowMs)) return 0;
  now = nowMs;
  // mod.rs `Detector::tick`: the scans owed since earlier ticks first.
  scansLeft = CFG.maxScansPerTick;
  while (scansLeft > 0 && owedHead < owedQueue.length) {
    const m = owedQueue[owedHead++];
    if (seasonOwes[m] === 1) {
      seasonOwes[m] = 0;
      if (len[m] === WINDOW) seasonAdopt(m, detectPeriod(m));
      scansLeft--;
    }
  }
  if (owedHead === owedQueue.length) {
    owedQueue = [];
    owedHead = 0;
  }
  let evaluated = 0;
  let due = silenceDue;
  for (let k = 0; k < dirtyLen; k++) {
    const m = dirty[k];
    if (pend[m * PD] === 0) continue;
    evaluate(m);
    pend[m * PD] = 0;
    seen[m] = nowMs;
    due = fmin(due, nowMs + CFG.silentAfterMs);
    evaluated++;
  }
  dirtyLen = 0;
  silenceDue = due;
  if (!silenceChecked || nowMs >= silenceDue) {
    let next = Infinity;
    for (let m = 0; m < names.length; m++) next = fmin(next, checkSilence(m));
    silenceDue = next;
    silenceChecked = true;
  }
  return evaluated;
}

// ---- the page's messages --------------------------------------------------

function valid(ts, x, now) {
  return ts >= now - CFG.maxAgeMs && ts <= now + CFG.maxFutureMs && Number.isFinite(x) && Math.abs(x) <= CFG.maxAbsValue;
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

// Acks held while more page messages wait, as meterflow's worker holds them
// (src/wasm/held_acks.rs): one wake-up through a private MessageChannel runs
// after the messages already queued; the held acks go out together, in
// order, then, or once `maxHeldAcks` are held, or before any other message.
const heldAcks = [];
let wakeScheduled = false;
const wake = new MessageChannel();
wake.port1.onmessage = () => {
  wakeScheduled = false;
  postHeldAcks();
};
function postHeldAcks() {
  for (let i = 0; i < heldAcks.length; i++) self.postMessage(heldAcks[i]);
  heldAcks.length = 0;
}
function post(msg) {
  if (heldAcks.length) postHeldAcks();
  self.postMessage(msg);
}
function postAck(ack) {
  if (CFG.maxHeldAcks === 0) return post(ack);
  if (!wakeScheduled) {
    wakeScheduled = true;
    wake.port2.postMessage(0);
  }
  heldAcks.push(ack);
  if (heldAcks.length >= CFG.maxHeldAcks) postHeldAcks();
}

let manual = false;
let timer = setInterval(() => tick(Date.now()), CFG.tickMs);

self.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === 'readings') {
    const t0 = performance.now();
    const at = manual && typeof msg.now === 'number' ? msg.now : Date.now();
    const [accepted, refused] = typeof msg.data === 'string' ? json(msg.data, at) : binary(msg.data, at);
    if (msg.id !== undefined) {
      postAck({ type: 'ack', v: 1, id: msg.id, accepted, refused, ms: performance.now() - t0 });
    }
  } else if (msg.type === 'tick' && manual) {
    const evaluated = tick(msg.now);
    if (msg.id !== undefined) postAck({ type: 'ack', v: 1, id: msg.id, accepted: evaluated, refused: 0, ms: 0 });
  } else if (msg.type === 'clock') {
    manual = msg.manual === true;
    clearInterval(timer);
    if (!manual) timer = setInterval(() => tick(Date.now()), CFG.tickMs);
  } else if (msg.type === 'config') {
    const max = msg.config?.maxMeters;
    const scans = msg.config?.maxScansPerTick;
    if (Number.isInteger(scans) && scans > 0) CFG.maxScansPerTick = scans;
    const held = msg.config?.maxHeldAcks;
    if (Number.isInteger(held) && held >= 0) CFG.maxHeldAcks = held;
    if (max === undefined) return;
    if (names.length === 0 && Number.isInteger(max) && max > 0) allocate(max);
    else post({ type: 'error', v: 1, code: 'bad_config', message: 'maxMeters only before the first meter' });
  } else if (msg.type === 'query' && msg.query === 'meter') {
    const m = ids.get(msg.meter);
    if (m === undefined) {
      post({ type: 'error', v: 1, code: 'unknown_meter', message: msg.meter });
      return;
    }
    const o = m * MO;
    const n = mo[o];
    const variance = n < 2 || mo[o + 3] <= 0 ? 0 : mo[o + 3] / n;
    post({ type: 'meter', v: 1, meter: msg.meter, count: n, mean: mo[o + 1] + mo[o + 2], variance });
  } else if (msg.type === 'query' && msg.query === 'stats') {
    let alerts = 0;
    for (let m = 0; m < names.length; m++) alerts += popcount(active[m]);
    post({ type: 'stats', v: 1, meters: names.length, activeAlerts: alerts, dirty: dirtyLen });
  }
};
self.postMessage({ type: 'ready', v: 1, version: 'js' });
