// The series panel: one group's or one meter's series of one resource
// (PROTOCOL.md, "Series"), 1 h / 2 h / 6 h, 1-minute buckets up to 2 h and
// 5-minute beyond. It asks once with `query` (so an answer, a `computing`
// note or a refusal can be matched by `id`), then subscribes for updates.
// A worker without series refuses the query: the panel then says so.
import type { MeterflowClient, SeriesData, SeriesMessage, SeriesSpec } from '../client/index.js';
import { MeterflowClientError } from '../client/index.js';
import { SeriesChart } from './chart.js';
import type { Progress } from './progress.js';
import { SPANS_MS, chartColumns, resolutionFor, seriesCaption } from './series.js';

export type SeriesTarget = { kind: 'group' | 'meter'; name: string };
export type SeriesState = 'idle' | 'loading' | 'computing' | 'ready' | 'unavailable' | 'failed';

/** How long the first answer (or a `computing` note) may take before the panel gives up (ms). */
export const SERIES_TIMEOUT_MS = 8_000;
/** A refused series (e.g. a group before the worker has the group map) is asked again after this (ms). */
export const SERIES_RETRY_MS = 5_000;

const $ = (id: string): HTMLElement => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from index.html`);
  return e;
};

export class SeriesPanel {
  target: SeriesTarget;
  resource = '';
  spanMs: number = SPANS_MS[1];
  state: SeriesState = 'idle';
  data: SeriesData | null = null;
  message = '';
  private gen = 0;
  private sub = '';
  private unsubscribe: (() => void) | null = null;
  /** Until the worker has answered a series once, a refusal without `id` may be the answer to ours. */
  private probing = true;
  readonly chart = new SeriesChart($('series-chart'));
  private units = new Map<string, string>();
  private drawn: SeriesData | null = null;
  private drawnState: SeriesState | null = null;

  constructor(
    groups: string[],
    private readonly client: () => MeterflowClient | null,
    private readonly progress: Progress,
    private readonly changed: () => void,
  ) {
    this.target = { kind: 'group', name: groups[0] ?? '' };
    const select = $('series-target') as HTMLSelectElement;
    select.replaceChildren(...groups.map((g) => new Option(`group ${g}`, `group:${g}`)));
    select.addEventListener('change', () => {
      const [kind, ...rest] = select.value.split(':');
      this.target = { kind: kind === 'meter' ? 'meter' : 'group', name: rest.join(':') };
      this.request();
    });
    ($('series-resource') as HTMLSelectElement).addEventListener('change', (e) => {
      this.resource = (e.target as HTMLSelectElement).value;
      this.request();
    });
    const spans = $('series-spans');
    spans.replaceChildren(...SPANS_MS.map((ms) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.value = String(ms);
      b.textContent = `${ms / 3_600_000} h`;
      b.setAttribute('aria-pressed', String(ms === this.spanMs));
      b.addEventListener('click', () => {
        this.spanMs = ms;
        for (const o of spans.querySelectorAll('button')) o.setAttribute('aria-pressed', String(o === b));
        this.request();
      });
      return b;
    }));
  }

  /** The resources (and their units) the totals name: the resource choice. */
  setResources(resources: { resource: string; unit: string }[]): void {
    const names = resources.map((r) => r.resource);
    this.units = new Map(resources.map((r) => [r.resource, r.unit]));
    const select = $('series-resource') as HTMLSelectElement;
    if ([...select.options].map((o) => o.value).join('\n') !== names.join('\n')) {
      select.replaceChildren(...names.map((n) => new Option(n, n)));
    }
    if (!this.resource && names[0]) {
      this.resource = names[0];
      select.value = this.resource;
      this.request();
    }
  }

  /** A meter was opened: the panel shows its series (of its resource). */
  showMeter(meter: string, resource: string | undefined): void {
    const select = $('series-target') as HTMLSelectElement;
    for (const o of [...select.options]) if (o.value.startsWith('meter:')) o.remove();
    const value = `meter:${meter}`;
    select.add(new Option(`meter ${meter}`, value), 0);
    select.value = value;
    this.target = { kind: 'meter', name: meter };
    if (resource && this.units.has(resource)) {
      this.resource = resource;
      ($('series-resource') as HTMLSelectElement).value = resource;
    }
    this.request();
  }

  private spec(): SeriesSpec {
    const base = { resource: this.resource, spanMs: this.spanMs, resolution: resolutionFor(this.spanMs) };
    return this.target.kind === 'meter' ? { meter: this.target.name, ...base } : { group: this.target.name, ...base };
  }

  private label(): string {
    return `${this.target.kind} ${this.target.name}, ${this.resource}, ${this.spanMs / 3_600_000} h`;
  }

  /** Asks for the current target's series; an earlier request's answers are ignored from now on. */
  request(): void {
    const mf = this.client();
    if (!mf || !this.resource || !this.target.name) return;
    const gen = ++this.gen;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.sub = '';
    this.state = 'loading';
    this.message = '';
    const spec = this.spec();
    mf.series(spec, {
      timeoutMs: SERIES_TIMEOUT_MS,
      onComputing: (n) => {
        if (gen !== this.gen) return;
        this.state = 'computing';
        this.progress.seriesComputing({ label: this.label(), retryAfterMs: n.retryAfterMs });
        this.changed();
      },
    }).then((d) => {
      if (gen !== this.gen) return;
      this.probing = false;
      this.data = d;
      this.state = 'ready';
      this.progress.seriesComputing(null);
      this.sub = `panel-${gen}`;
      this.unsubscribe = mf.subscribeSeries(this.sub, spec);
      this.changed();
    }, (e: unknown) => {
      if (gen !== this.gen) return;
      this.progress.seriesComputing(null);
      const code = e instanceof MeterflowClientError ? e.code : '';
      const message = e instanceof Error ? e.message : String(e);
      // A worker without series: no answer, or its decoder refuses the query itself.
      if (code === 'timeout' || code === 'unknown_type' || (code === 'bad_field' && message.startsWith('query:'))) {
        this.unavailable();
      } else {
        // Refused for this target (unknown group or meter yet, a limit): say why, ask again later.
        this.state = 'failed';
        this.message = `${code ? `${code}: ` : ''}${message}`;
        setTimeout(() => {
          if (gen === this.gen) this.request();
        }, SERIES_RETRY_MS);
      }
      this.changed();
    });
    this.changed();
  }

  private unavailable(): void {
    this.state = 'unavailable';
    this.data = null;
    this.message = 'series not available from this worker';
  }

  /** A `series` event: an update of the current subscription (or a note for it). */
  onMessage(m: SeriesMessage): void {
    if (!this.sub || m.sub !== this.sub) return;
    if (m.state === 'computing') {
      this.progress.seriesComputing({ label: this.label(), retryAfterMs: m.retryAfterMs });
    } else {
      this.progress.seriesComputing(null);
      this.data = m;
      this.state = 'ready';
    }
    this.changed();
  }

  /**
   * An `error` without `id` while the first series query waits: a worker
   * without series refuses the query field (`bad_field`, "query: ...") or the
   * `series` type (`unknown_type`). The panel explains it; true if absorbed.
   */
  absorbs(e: { code: string; message: string }): boolean {
    if (!this.probing || (this.state !== 'loading' && this.state !== 'unavailable')) return false;
    const refusal = (e.code === 'bad_field' && e.message.startsWith('query:')) || (e.code === 'unknown_type' && /series/.test(e.message));
    if (!refusal) return false;
    this.gen++;
    this.progress.seriesComputing(null);
    this.unavailable();
    this.changed();
    return true;
  }

  render(): void {
    if (this.data === this.drawn && this.state === this.drawnState) return;
    this.drawn = this.data;
    this.drawnState = this.state;
    const panel = $('series-panel');
    panel.dataset.state = this.state;
    const status = $('series-status');
    const caption = $('series-caption');
    status.textContent = this.state === 'loading' ? 'loading…'
      : this.state === 'computing' ? 'computing…'
        : this.state === 'unavailable' || this.state === 'failed' ? this.message : '';
    status.hidden = status.textContent === '';
    const d = this.data;
    if (!d || this.state === 'unavailable') {
      this.chart.clear();
      caption.textContent = '';
      caption.dataset.incomplete = 'false';
      return;
    }
    const { text, incomplete } = seriesCaption(d);
    caption.textContent = text;
    caption.dataset.incomplete = String(incomplete);
    caption.dataset.resolution = d.resolution;
    this.chart.show(chartColumns(d), this.units.get(d.resource) ?? '');
  }
}
