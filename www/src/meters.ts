// The meter list: rows from the session's `meters` events (coalesced per
// flush, newest wins per meter), kept in a bounded table and shown in a
// virtualised list that creates DOM rows only for what is on screen.
//
// Bounded: at most `maxRows` meters (default 100,000); an upsert of a new
// meter past it is counted and reported, never silently dropped or grown.
import type { MeterRow, MetersMessage } from '../client/index.js';

export const DEFAULT_MAX_ROWS = 100_000;
/** Pixel height of one row: fixed, so the list can place rows without measuring. */
export const ROW_HEIGHT = 30;
const OVERSCAN = 6;

export class MeterTable {
  private readonly rows = new Map<string, MeterRow & { channel: string }>();
  private sorted: string[] = [];
  private order = true;
  /** New meters refused because the table was full. */
  refused = 0;

  constructor(readonly maxRows = DEFAULT_MAX_ROWS) {}

  /** Applies one `meters` event; returns how many new meters were refused. */
  apply(m: MetersMessage): number {
    let refused = 0;
    for (const id of m.remove) if (this.rows.delete(id)) this.order = false;
    for (const row of m.upsert) {
      if (!this.rows.has(row.meter)) {
        if (this.rows.size >= this.maxRows) {
          refused += 1;
          continue;
        }
        this.order = false;
      }
      this.rows.set(row.meter, { ...row, channel: m.channel });
    }
    this.refused += refused;
    return refused;
  }

  get size(): number {
    return this.rows.size;
  }

  /** Meter ids in natural order (m-2 before m-10); sorted again only when membership changed. */
  ids(): readonly string[] {
    if (!this.order) {
      this.sorted = [...this.rows.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
      this.order = true;
    }
    return this.sorted;
  }

  get(id: string): (MeterRow & { channel: string }) | undefined {
    return this.rows.get(id);
  }
}

/** Renders one row's cells; the list owns the row element. */
export type RowRenderer = (el: HTMLElement, id: string, selected: boolean) => void;

/**
 * A keyboard-navigable virtualised list (`role="listbox"`): arrows, Page
 * Up/Down, Home/End move the selection (the first key selects the first
 * meter), Enter opens it.
 */
export class VirtualList {
  private ids: readonly string[] = [];
  private selected = -1;
  private readonly spacer: HTMLElement;
  private readonly pool: HTMLElement[] = [];

  constructor(
    private readonly viewport: HTMLElement,
    private readonly renderRow: RowRenderer,
    private readonly onOpen: (id: string) => void,
  ) {
    this.spacer = document.createElement('div');
    this.spacer.className = 'vlist-spacer';
    viewport.append(this.spacer);
    viewport.addEventListener('scroll', () => this.paint());
    viewport.addEventListener('keydown', (e) => this.key(e));
    viewport.addEventListener('click', (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>('[data-meter]');
      if (!row?.dataset.meter) return;
      this.select(this.ids.indexOf(row.dataset.meter));
      this.onOpen(row.dataset.meter);
    });
  }

  selectedId(): string | undefined {
    return this.ids[this.selected];
  }

  update(ids: readonly string[]): void {
    const keep = this.selectedId();
    this.ids = ids;
    this.selected = keep === undefined ? -1 : ids.indexOf(keep);
    this.spacer.style.height = `${ids.length * ROW_HEIGHT}px`;
    this.paint();
  }

  private select(i: number): void {
    if (this.ids.length === 0) return;
    this.selected = Math.max(0, Math.min(this.ids.length - 1, i));
    const top = this.selected * ROW_HEIGHT;
    const vp = this.viewport;
    if (top < vp.scrollTop) vp.scrollTop = top;
    else if (top + ROW_HEIGHT > vp.scrollTop + vp.clientHeight) vp.scrollTop = top + ROW_HEIGHT - vp.clientHeight;
    const id = this.selectedId();
    if (id) vp.setAttribute('aria-activedescendant', rowDomId(id));
    this.paint();
  }

  private key(e: KeyboardEvent): void {
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW_HEIGHT) - 1);
    const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    // With nothing selected yet, the first move selects the first meter (it
    // used to step from index 0, so the first ArrowDown landed on the second).
    if (e.key in moves) this.select(this.selected < 0 ? 0 : this.selected + (moves[e.key] ?? 0));
    else if (e.key === 'Home') this.select(0);
    else if (e.key === 'End') this.select(this.ids.length - 1);
    else if (e.key === 'Enter' && this.selectedId()) this.onOpen(this.selectedId() as string);
    else return;
    e.preventDefault();
  }

  /** Places pooled row elements over the visible slice only. */
  paint(): void {
    const vp = this.viewport;
    const first = Math.max(0, Math.floor(vp.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.ids.length, Math.ceil((vp.scrollTop + vp.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const need = Math.max(0, last - first);
    while (this.pool.length < need) {
      const el = document.createElement('div');
      el.className = 'vlist-row';
      el.setAttribute('role', 'option');
      this.spacer.append(el);
      this.pool.push(el);
    }
    this.pool.forEach((el, k) => {
      const i = first + k;
      const id = this.ids[i];
      if (k >= need || id === undefined) {
        el.hidden = true;
        return;
      }
      el.hidden = false;
      el.style.transform = `translateY(${i * ROW_HEIGHT}px)`;
      el.id = rowDomId(id);
      el.dataset.meter = id;
      el.setAttribute('aria-selected', String(i === this.selected));
      this.renderRow(el, id, i === this.selected);
    });
  }
}

function rowDomId(id: string): string {
  return `meter-row-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}
