// The series panel's pure parts (PROTOCOL.md, "Series"): which resolution a
// span gets, the chart's data from the transferred arrays, and the caption
// that says what the chart shows (resolution, watermark, `incomplete`).
import type { SeriesData, SeriesResolution } from '../client/index.js';
import { formatDateTime } from './format.js';

/** Spans the panel offers (ms): the worker's default for a meter (2 h) and its maximum (6 h). */
export const SPANS_MS = [3_600_000, 7_200_000, 21_600_000] as const;
/** Up to this span buckets are 1 minute, beyond it 5 minutes (the worker's default switch). */
export const FINE_SPAN_MS = 7_200_000;

export function resolutionFor(spanMs: number): SeriesResolution {
  return spanMs <= FINE_SPAN_MS ? '1m' : '5m';
}

/**
 * The chart's columns from a series: x in seconds (uPlot's time scale), then
 * per bucket the sum (resource units), min and max; an empty bucket
 * (count 0) is a gap (null), not a zero.
 */
export function chartColumns(s: SeriesData): [number[], (number | null)[], (number | null)[], (number | null)[]] {
  const n = Math.min(s.ts.length, s.count.length, s.sum.length, s.min.length, s.max.length);
  const xs = new Array<number>(n);
  const sum = new Array<number | null>(n);
  const min = new Array<number | null>(n);
  const max = new Array<number | null>(n);
  for (let i = 0; i < n; i++) {
    xs[i] = (s.ts[i] ?? 0) / 1000;
    const empty = !((s.count[i] ?? 0) > 0);
    sum[i] = empty ? null : (s.sum[i] ?? null);
    min[i] = empty || !Number.isFinite(s.min[i]) ? null : (s.min[i] ?? null);
    max[i] = empty || !Number.isFinite(s.max[i]) ? null : (s.max[i] ?? null);
  }
  return [xs, sum, min, max];
}

/** What the chart shows, in words: resolution, buckets with data, watermark, incompleteness. */
export function seriesCaption(s: SeriesData): { text: string; incomplete: boolean } {
  const step = s.resolution === '1m' ? '1 min' : '5 min';
  let filled = 0;
  for (let i = 0; i < s.count.length; i++) if ((s.count[i] ?? 0) > 0) filled++;
  const parts = [`${step} buckets`, `${filled.toLocaleString()} of ${s.count.length.toLocaleString()} with data`];
  parts.push(s.sourceWatermark === null ? 'no data yet' : `data up to ${formatDateTime(s.sourceWatermark)}`);
  if (s.incomplete) parts.push('◐ incomplete: some readings of this span are missing or not yet confirmed, so buckets may still change');
  return { text: parts.join(' · '), incomplete: s.incomplete };
}
