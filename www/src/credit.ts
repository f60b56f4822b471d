// Credit for the stream session (PROTOCOL.md 7, `rendered`): what the page
// acknowledges after a render. Each `meters` / `totals` message says how many
// server deltas of its channel it shows first (`frames`); the page sums what
// it received since the last render and acknowledges exactly that sum, per
// channel, once the render has drawn it. A worker older than `frames` does
// not say: for a channel where a message came without it, the page falls back
// to acknowledging up to a whole window (`fallback`), which the worker caps
// at what it holds.

export class Credit {
  private readonly frames = new Map<string, number>();
  private readonly uncounted = new Set<string>();

  /** A message of `channel` arrived carrying `frames` (undefined: an older worker's message). */
  delivered(channel: string, frames: number | undefined): void {
    if (typeof frames === 'number' && Number.isSafeInteger(frames) && frames >= 0) {
      this.frames.set(channel, (this.frames.get(channel) ?? 0) + frames);
    } else {
      this.uncounted.add(channel);
    }
  }

  /**
   * After a render: the `[channel, frames]` to acknowledge (none with 0), and
   * forgets them. `fallback` is the window a channel without counts gets.
   */
  take(fallback: number): [string, number][] {
    const out: [string, number][] = [];
    const channels = new Set([...this.frames.keys(), ...this.uncounted]);
    for (const c of channels) {
      const n = this.frames.get(c) ?? 0;
      const ack = this.uncounted.has(c) ? Math.max(n, fallback) : n;
      if (ack > 0) out.push([c, ack]);
    }
    this.frames.clear();
    this.uncounted.clear();
    return out;
  }
}
