// The hourly bucket chart (uPlot): one resource at a time (they have
// different units), bars per hour, from the `totals` buckets.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { ResourceTotals } from '../client/index.js';
import { formatClock, unitName, zoneName } from './format.js';

/** uPlot's x scale in the page's zone: ticks fall on that zone's hours and minutes (format.ts). */
const tzDate = (ts: number): Date => uPlot.tzDate(new Date(ts * 1e3), zoneName());
/** Time-axis labels, 24-hour, in the page's zone (not the browser locale's format). */
const timeLabels = (_u: uPlot, splits: number[]): string[] => splits.map((s) => formatClock(s * 1000));

/** A total as a number for drawing only (the tables show exact digits). */
function approx(total: number | string, decimals: number): number {
  return Number(total) / 10 ** decimals;
}

export class BucketChart {
  private plot: uPlot | null = null;
  /** The uPlot instance (for the tests: its axes' ticks and labels). */
  get uplot(): uPlot | null {
    return this.plot;
  }
  private unit = '';
  private key = '';

  constructor(private readonly host: HTMLElement) {
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(host);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(200, this.host.clientWidth), height: Math.max(140, this.host.clientHeight) };
  }

  show(r: ResourceTotals | undefined): void {
    if (!r) return;
    const xs = r.buckets.map((b) => b.hour / 1000);
    const ys = r.buckets.map((b) => approx(b.total, r.decimals));
    const key = `${r.resource}:${xs.join(',')}:${ys.join(',')}`;
    if (key === this.key) return;
    this.key = key;
    if (!this.plot || this.unit !== r.unit) {
      this.plot?.destroy();
      this.unit = r.unit;
      const unit = unitName(r.unit);
      this.plot = new uPlot(
        {
          ...this.size(),
          legend: { show: false },
          cursor: { show: true, drag: { x: false, y: false } },
          tzDate,
          scales: { x: { time: true, range: (_u, min, max) => [min, max + 3600] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
          axes: [
            { stroke: '#3b4252', values: timeLabels },
            { stroke: '#3b4252', label: unit, size: 70, values: (_u, splits) => splits.map((s) => s.toLocaleString()) },
          ],
          series: [
            {},
            { label: unit, stroke: '#1f5fa8', fill: 'rgba(31, 95, 168, 0.35)', width: 1, paths: uPlot.paths.bars?.({ size: [0.9, 200], align: 1 }), points: { show: false } },
          ],
        },
        [xs, ys],
        this.host,
      );
    } else {
      this.plot.setData([xs, ys]);
    }
  }
}

/**
 * A series (PROTOCOL.md, "Series"): the per-bucket sum as a line, min and max
 * as thin lines; x in the page's time zone. Fed from the transferred typed
 * arrays (series.ts turns empty buckets into gaps).
 */
export class SeriesChart {
  private plot: uPlot | null = null;
  /** The uPlot instance (for the tests: its axes' ticks and labels). */
  get uplot(): uPlot | null {
    return this.plot;
  }
  private unit = '';

  constructor(private readonly host: HTMLElement) {
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(host);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(200, this.host.clientWidth), height: Math.max(140, this.host.clientHeight) };
  }

  show(columns: uPlot.AlignedData, unit: string): void {
    if (!this.plot || this.unit !== unit) {
      this.plot?.destroy();
      this.unit = unit;
      const u = unitName(unit);
      this.plot = new uPlot(
        {
          ...this.size(),
          legend: { show: false },
          cursor: { show: true, drag: { x: false, y: false } },
          tzDate,
          scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
          axes: [
            { stroke: '#3b4252', values: timeLabels },
            { stroke: '#3b4252', label: `${u} per bucket`, size: 70, values: (_u, splits) => splits.map((s) => s.toLocaleString()) },
          ],
          series: [
            {},
            { label: 'sum', stroke: '#1f5fa8', fill: 'rgba(31, 95, 168, 0.15)', width: 2, spanGaps: false, points: { show: false } },
            { label: 'min', stroke: '#8a96a8', width: 1, dash: [4, 3], spanGaps: false, points: { show: false } },
            { label: 'max', stroke: '#b35c00', width: 1, dash: [4, 3], spanGaps: false, points: { show: false } },
          ],
        },
        columns,
        this.host,
      );
    } else {
      this.plot.setData(columns);
    }
  }

  clear(): void {
    this.plot?.destroy();
    this.plot = null;
    this.unit = '';
  }
}
