// Formatting for people: exact totals with thousands separators and units,
// times in one zone (the viewer's unless `?tz=` names another). Totals are
// never passed through a float: the worker sends an integer count of 10^-decimals units (a number, or a
// decimal string past 2^53 - 1), and it is shown digit for digit.
import type { Total } from '../client/index.js';

/** Display names of the configured units. */
const UNIT_NAMES: Record<string, string> = { m3: 'm³', kWh: 'kWh', MB: 'MB' };

export function unitName(unit: string): string {
  return UNIT_NAMES[unit] ?? unit;
}

/** Groups an unsigned digit string in threes: "1234567" -> "1,234,567". */
function group(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** The exact decimal of a total: 1234567 with 3 decimals -> "1,234.567". */
export function formatTotal(total: Total, decimals: number): string {
  let s = typeof total === 'number' ? BigInt(Math.trunc(total)).toString() : String(total).trim();
  const negative = s.startsWith('-');
  if (negative) s = s.slice(1);
  if (!/^\d+$/.test(s)) return String(total);
  s = s.padStart(decimals + 1, '0');
  const int = s.slice(0, s.length - decimals);
  const frac = decimals > 0 ? `.${s.slice(s.length - decimals)}` : '';
  return `${negative ? '−' : ''}${group(int)}${frac}`;
}

const count = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const twoDecimals = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

export function formatCount(n: number | string): string {
  return typeof n === 'number' ? count.format(n) : group(n);
}
export function formatValue(n: number): string {
  return twoDecimals.format(n);
}
const fixedTwo = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2, minimumFractionDigits: 2 });
/** A live reading in a column of them: always two decimals, so the column lines up. */
export function formatReading(n: number): string {
  return fixedTwo.format(n);
}
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${oneDecimal.format(n / 1e9)} GB`;
  if (n >= 1e6) return `${oneDecimal.format(n / 1e6)} MB`;
  return `${oneDecimal.format(n / 1e3)} kB`;
}
export function formatMs(ms: number): string {
  return `${twoDecimals.format(ms)} ms`;
}

// One zone for every time on the page: the header names it (`zone()`), and the
// tables, the feed, the detail panel and both charts' axes (uPlot `tzDate`,
// chart.ts) are formatted in it, 24-hour, whatever the browser's locale. It
// is the viewer's own zone unless the page is opened with `?tz=<IANA name>`
// (e.g. `?tz=UTC`); an unknown name falls back to the viewer's.
const viewerZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone;
let currentZone = viewerZone();
let hourFmt!: Intl.DateTimeFormat;
let timeFmt!: Intl.DateTimeFormat;
let dateTimeFmt!: Intl.DateTimeFormat;

/** Sets the page's zone (`null`: the viewer's); returns the zone in force. */
export function setZone(requested: string | null): string {
  let z = viewerZone();
  if (requested) {
    try {
      new Intl.DateTimeFormat('en-GB', { timeZone: requested });
      z = requested;
    } catch {
      // RangeError: not a zone this browser knows; the viewer's stays.
    }
  }
  currentZone = z;
  hourFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: z });
  timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZone: z });
  dateTimeFmt = new Intl.DateTimeFormat(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short', timeZone: z,
  });
  return z;
}
setZone(null);

/** "14:00–15:00" for the hour starting at `ms`, in the page's zone. */
export function formatHour(ms: number): string {
  return `${hourFmt.format(ms)}–${hourFmt.format(ms + 3_600_000)}`;
}
/** "14:05" at `ms`, in the page's zone: the charts' time-axis labels. */
export function formatClock(ms: number): string {
  return hourFmt.format(ms);
}
export function formatTime(ms: number): string {
  return timeFmt.format(ms);
}
export function formatDateTime(ms: number): string {
  return dateTimeFmt.format(ms);
}
/** The page's zone (IANA name), shown once so every time on the page is read right. */
export function zoneName(): string {
  return currentZone;
}

/** A decimal string with thousands separators: "12345.125" -> "12,345.125". */
export function formatDecimal(s: string, places = 0): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s.trim());
  if (!m) return s;
  const frac = (m[3] ?? '').padEnd(places, '0');
  return `${m[1] ? '−' : ''}${group(m[2] ?? '')}${frac ? `.${frac}` : ''}`;
}
