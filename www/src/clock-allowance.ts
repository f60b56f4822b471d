// The worker's clock allowances for a feed server on accelerated time
// (`meterflow-feed --speed`, `make demo SPEED=60`). Such a server's clock runs
// `speed` times as fast as the viewer's on purpose, so its stamps and its
// readings drift ahead by (speed − 1) × the real time since it started (or
// behind, below 1x). With the worker's defaults a stamp more than
// `maxOffsetMs` (500 ms) ahead is refused (`clock_ahead`), a reading more than
// `maxFutureMs` (5 min) ahead or `maxAgeMs` (6 h) behind is kept out of
// detection (`bad_timestamp`), and a clock sample past `maxClockSkewMs` (1
// day) is refused: at SPEED=60 readings were refused after 5 s and every
// meter went silent. The page widens all four for `ALLOWANCE_HOURS` of real
// running at the server's speed (its `GET /clock`, or `?speed=`), or to an
// explicit `?maxOffsetMs=`.

/** Real time an accelerated page keeps within its allowances (hours). */
export const ALLOWANCE_HOURS = 24;
/** The worker's defaults (PROTOCOL.md 5, README "Defaults"). */
export const DEFAULTS = { maxFutureMs: 300_000, maxAgeMs: 21_600_000, maxClockSkewMs: 86_400_000 } as const;

export interface ClockAllowance {
  maxOffsetMs?: number;
  maxFutureMs?: number;
  maxAgeMs?: number;
  maxClockSkewMs?: number;
}

/**
 * The config fields to send for a server running at `speed` (1 or not a
 * positive finite number: none), or with an explicit `maxOffsetMs` (it wins
 * for the offset; the readings are then plausible that far ahead too).
 */
export function clockAllowance(speed: number, maxOffsetMs?: number): ClockAllowance {
  const drift = (factor: number): number => Math.ceil(factor * ALLOWANCE_HOURS * 3_600_000);
  const fast = Number.isFinite(speed) && speed > 1;
  const slow = Number.isFinite(speed) && speed > 0 && speed < 1;
  const out: ClockAllowance = {};
  const ahead = maxOffsetMs ?? (fast ? drift(speed - 1) : undefined);
  if (ahead !== undefined) {
    out.maxOffsetMs = ahead;
    out.maxFutureMs = Math.max(DEFAULTS.maxFutureMs, ahead);
    if (ahead > DEFAULTS.maxClockSkewMs) out.maxClockSkewMs = ahead;
  }
  if (slow) {
    // Behind: its readings age as they arrive.
    const behind = drift(1 - speed);
    out.maxAgeMs = DEFAULTS.maxAgeMs + behind;
    out.maxClockSkewMs = Math.max(out.maxClockSkewMs ?? DEFAULTS.maxClockSkewMs, behind);
  }
  return out;
}

/** How long the page waits for `/clock` before starting with the defaults (ms). */
export const CLOCK_FETCH_MS = 3000;

/**
 * The speed the feed server at `base` says its clock runs at (`GET /clock`,
 * `{"serverTime","speed","start"}`), or 1 when it does not say: another
 * server without the endpoint, a network error, a timeout or a body that is
 * not a positive finite speed. Starting with the defaults is what a page did
 * before the endpoint existed, so a failure costs nothing but the allowance.
 */
export async function serverSpeed(base: string, fetchImpl: typeof fetch = fetch): Promise<number> {
  try {
    const r = await fetchImpl(new URL('/clock', base), { cache: 'no-store', signal: AbortSignal.timeout(CLOCK_FETCH_MS) });
    if (!r.ok) return 1;
    const body: unknown = await r.json();
    const speed = typeof body === 'object' && body !== null ? (body as { speed?: unknown }).speed : undefined;
    return typeof speed === 'number' && Number.isFinite(speed) && speed > 0 ? speed : 1;
  } catch {
    return 1;
  }
}
