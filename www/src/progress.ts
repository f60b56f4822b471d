// Progress of long work, derived from what the page sees (no worker message
// of its own): the session's bootstrap (channels snapshotted of those
// subscribed), REST downloads (bytes received of Content-Length, from the page
// transport's streamed `fetch`) and series answers the worker is still
// computing (with its retry). Each item is gone once its work is done.
import type { DownloadProgress } from '../client/index.js';

export interface ProgressItem {
  key: string;
  /** What is in progress, in words. */
  label: string;
  /** Done so far and the whole (null: unknown, an indeterminate bar). */
  value: number;
  max: number | null;
  /** The amounts in words (e.g. "3 of 10 channels", "1.2 MB of 4.0 MB"). */
  detail: string;
}

/** Downloads shown at once (the rest are counted in the last item). */
export const MAX_DOWNLOADS_SHOWN = 4;

function bytes(n: number): string {
  if (n < 1024) return `${n.toLocaleString()} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toLocaleString(undefined, { maximumFractionDigits: 1 })} KB`;
  return `${(n / 1024 / 1024).toLocaleString(undefined, { maximumFractionDigits: 1 })} MB`;
}

export class Progress {
  private wanted: string[] = [];
  private readonly seen = new Set<string>();
  private readonly downloads = new Map<string, DownloadProgress>();
  private computing: { label: string; retryAfterMs: number; notes: number } | null = null;
  /** Bumped on every change, so a renderer can skip unchanged frames. */
  version = 0;

  /** The session (re)starts with these channels: each counts once its first update (its snapshot) arrives. */
  bootstrap(channels: string[]): void {
    this.wanted = [...channels];
    this.seen.clear();
    this.version++;
  }

  /** A first update of `channel` arrived. */
  snapshotted(channel: string): void {
    if (!this.wanted.includes(channel) || this.seen.has(channel)) return;
    this.seen.add(channel);
    this.version++;
  }

  /** The bootstrap is over (every channel in, or the caller decided it is done). */
  bootstrapDone(): void {
    if (this.wanted.length === 0) return;
    this.wanted = [];
    this.seen.clear();
    this.version++;
  }

  get bootstrapping(): boolean {
    return this.wanted.length > 0 && this.seen.size < this.wanted.length;
  }

  download(p: DownloadProgress): void {
    if (p.done) this.downloads.delete(p.key);
    else this.downloads.set(p.key, p);
    this.version++;
  }

  /** A series answer is being computed (`computing` note), or (null) no longer. */
  seriesComputing(c: { label: string; retryAfterMs: number } | null): void {
    this.computing = c ? { ...c, notes: (this.computing?.notes ?? 0) + 1 } : null;
    this.version++;
  }

  items(): ProgressItem[] {
    const out: ProgressItem[] = [];
    if (this.bootstrapping) {
      const n = this.wanted.length;
      out.push({
        key: 'bootstrap', label: 'Bootstrap', value: this.seen.size, max: n,
        detail: `${this.seen.size} of ${n} channels snapshotted (${n} subscribed)`,
      });
    }
    const list = [...this.downloads.values()];
    for (const d of list.slice(0, MAX_DOWNLOADS_SHOWN)) {
      const path = d.path.split('?')[0] ?? d.path;
      const label = path.startsWith('/catchup') ? 'Catch-up' : path.startsWith('/snapshot') ? 'Snapshot' : `Download ${path}`;
      out.push({
        key: d.key, label, value: d.received, max: d.total,
        detail: d.total === null ? `${bytes(d.received)} received` : `${bytes(d.received)} of ${bytes(d.total)}`,
      });
    }
    if (list.length > MAX_DOWNLOADS_SHOWN) {
      out.push({ key: 'more', label: 'Downloads', value: 0, max: null, detail: `${list.length - MAX_DOWNLOADS_SHOWN} more` });
    }
    if (this.computing) {
      out.push({
        key: 'series', label: 'Series', value: 0, max: null,
        detail: `${this.computing.label}: computing, next answer in about ${Math.round(this.computing.retryAfterMs).toLocaleString()} ms`,
      });
    }
    return out;
  }
}
