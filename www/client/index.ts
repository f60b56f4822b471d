// The page-side meterflow client: one typed object around the worker.
//
//   const mf = await startMeterflow({ worker, config, transport: 'page' });
//   mf.on('totals', (t) => ...);               // typed per event
//   const ack = await mf.post({ type: 'readings', data }, [data]);
//   const stats = await mf.query({ query: 'stats' });
//   const s = await mf.series({ group: 'north', resource: 'electricity' });
//   const stop = mf.subscribeSeries('north-el', { group: 'north', resource: 'electricity' });
//   mf.on('series', (s) => ...);               // subscription updates, `computing` notes
//   mf.rendered('totals', t.frames);           // credit: exactly the deltas rendered
//   mf.close();
//
// `post` and `query` give each message an `id`; the worker answers a posted
// payload with `{ type: 'ack', id, accepted, refused, ms }` and a query with
// its answer carrying the same `id` (an answer is matched by `id`, never by
// its type: a periodic `stats` has none). At most `maxPending` of them wait at
// once; past that `post`/`query` reject with `pending_limit` (the caller is
// posting faster than the worker answers: back off) rather than queue without
// bound. With `transport: 'page'` the client also runs the page transport
// (transport.ts).
import type {
  AckMessage,
  AnomalyMessage,
  ClearedMessage,
  ClientConfig,
  ClientPageMessage,
  ClientWorkerMessage,
  ConnectionMessage,
  DetailMessage,
  ErrorCode,
  ErrorMessage,
  MeterMessage,
  MetersMessage,
  NoticesMessage,
  ReadyMessage,
  SeriesComputing,
  SeriesData,
  SeriesMessage,
  SeriesSpec,
  StatsMessage,
  TotalsUpdate,
  WarningMessage,
  WindowMessage,
} from './protocol.js';
import { PageTransport, type DownloadProgress, type FetchLike, type SocketFactory, type TransportErrorCode } from './transport.js';

export * from './protocol.js';
export { DEFAULT_PROGRESS_MIN_BYTES, PageTransport, streamUrl } from './transport.js';
export type { DownloadProgress } from './transport.js';

/** The subset of `Worker` the client drives (a fake in unit tests). */
export interface WorkerLike {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  // Typed as the DOM's `Worker` types them, so a real worker fits as it is.
  onmessage: ((this: any, ev: MessageEvent) => unknown) | null;
  onerror?: ((this: any, ev: ErrorEvent) => unknown) | null;
  terminate?(): void;
}

/** An error the client itself raises (the transport, a refused post); worker errors keep their codes. */
export interface ClientError {
  type: 'error'; v: 1; code: ClientErrorCode; message: string; source: 'client';
}
export type ClientErrorCode = TransportErrorCode | 'worker_failed' | 'pending_limit' | 'closed' | 'timeout';

/** The events `on` takes, and what each handler receives. */
export interface ClientEvents {
  ready: ReadyMessage;
  totals: TotalsUpdate;
  anomaly: AnomalyMessage;
  cleared: ClearedMessage;
  connection: ConnectionMessage;
  meters: MetersMessage;
  notices: NoticesMessage;
  detail: DetailMessage;
  stats: StatsMessage;
  /** Every series message: subscription updates (`sub`), `computing` notes, and answers (which also resolve `series()`). */
  series: SeriesMessage;
  warning: WarningMessage;
  error: ErrorMessage | ClientError;
  /** A REST body the page downloads (page transport, and the ledger's catch-ups): bytes of `Content-Length`. */
  download: DownloadProgress;
}
export type ClientEvent = keyof ClientEvents;

export type QueryRequest =
  | { query: 'stats' } | { query: 'totals' } | { query: 'window'; meter: string } | { query: 'meter'; meter: string }
  | ({ query: 'series' } & SeriesSpec);
export type QueryAnswer<Q extends QueryRequest> = Q extends { query: 'stats' } ? StatsMessage
  : Q extends { query: 'totals' } ? TotalsUpdate
  : Q extends { query: 'window' } ? WindowMessage
  : Q extends { query: 'series' } ? SeriesData
  : MeterMessage;

/** Options of one `series()` call. */
export interface SeriesOptions {
  /** Each `computing` note the worker sends before the answer (progress); the wait restarts with each. */
  onComputing?: (note: SeriesComputing) => void;
  /** Rejects with `timeout` if neither a note nor the answer comes this long (default `answerTimeoutMs`). */
  timeoutMs?: number;
}

export interface StartOptions {
  worker: WorkerLike;
  /** Posted before anything else; `transport` and `feedUrl` only if given (older workers refuse unknown fields). */
  config?: ClientConfig;
  /** Who owns the network: the page (default) or the worker. */
  transport?: 'page' | 'worker';
  /** Feed base URL for the page transport; default: the page's origin. */
  feedUrl?: string;
  /** Binary frames on the stream and binary catch-ups (default false: JSON). */
  binary?: boolean;
  /** Most `post`/`query` promises waiting for their answer (default 1,024; 1..=1,000,000). */
  maxPending?: number;
  /**
   * A `post`/`query` unanswered this long rejects with `timeout` and frees its
   * slot (default 10,000 ms; 1..=3,600,000), so a message the worker never
   * answers cannot hold a pending slot for ever.
   */
  answerTimeoutMs?: number;
  /** REST bodies at least this large (bytes) are streamed with `download` progress (default 256 KiB). */
  progressMinBytes?: number;
  /** Seams for tests; default the page's `WebSocket`, `fetch` and `Date.now`. */
  openSocket?: SocketFactory;
  fetch?: FetchLike;
  now?: () => number;
}

export const DEFAULT_MAX_PENDING = 1024;
export const DEFAULT_ANSWER_TIMEOUT_MS = 10_000;

type Handler<E extends ClientEvent> = (message: ClientEvents[E]) => void;
type Waiter = {
  resolve: (m: never) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  timeoutMs: number;
  onComputing?: (note: SeriesComputing) => void;
};
/** The answer types of a query, for matching answers that do not echo the `id`. */
type QueryKind = 'stats' | 'totals' | 'window' | 'meter' | 'series';

/** A rejected `post`/`query`, with a stable `code`. */
export class MeterflowClientError extends Error {
  constructor(readonly code: ClientErrorCode | ErrorCode, message: string) {
    super(message);
    this.name = 'MeterflowClientError';
  }
}

export class MeterflowClient {
  private readonly handlers = new Map<ClientEvent, Set<Handler<ClientEvent>>>();
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;
  private closed = false;
  private readonly transport: PageTransport;
  /** Whether this client executes the session's socket and REST requests. */
  readonly pageOwnsStream: boolean;
  private readonly maxPending: number;
  private readonly answerTimeoutMs: number;
  /**
   * Query ids per answer kind, oldest first. A worker that does not echo a
   * query's `id` answers queries in the order it got them, so a `window` or
   * `meter` answer without a known `id` settles the oldest query of its kind
   * for its meter (the worker sends those two only when asked).
   */
  private readonly queries = new Map<QueryKind, { id: number; meter?: string }[]>();
  /** The worker's version, from its `ready` message. */
  version = '';
  /** Whether the worker runs a stream v2 session (it has posted `connection`): only then is credit meaningful. */
  sessionActive = false;

  constructor(private readonly worker: WorkerLike, o: StartOptions) {
    const max = o.maxPending ?? DEFAULT_MAX_PENDING;
    if (!Number.isInteger(max) || max < 1 || max > 1_000_000) {
      throw new RangeError(`maxPending must be a whole number in 1..=1000000, not ${max}`);
    }
    this.maxPending = max;
    const timeout = o.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 3_600_000) {
      throw new RangeError(`answerTimeoutMs must be a whole number in 1..=3600000, not ${timeout}`);
    }
    this.answerTimeoutMs = timeout;
    const now = o.now ?? (() => Date.now());
    // The ledger's own catch-up `fetch` is the page's in either mode; the
    // session's socket and REST requests only with `transport: 'page'`.
    this.transport = new PageTransport({
      feedUrl: o.feedUrl ?? globalThis.location?.origin ?? 'http://127.0.0.1',
      binary: o.binary ?? false,
      post: (m, t) => this.postRaw(m, t),
      openSocket: o.openSocket ?? ((url) => new WebSocket(url) as unknown as ReturnType<SocketFactory>),
      fetch: o.fetch ?? ((url) => globalThis.fetch(url)),
      now,
      onError: (code, message) => this.emit('error', { type: 'error', v: 1, code, message, source: 'client' }),
      onProgress: (p) => this.emit('download', p),
      progressMinBytes: o.progressMinBytes,
    });
    this.pageOwnsStream = (o.transport ?? 'page') === 'page';
  }

  /** Adds a handler; returns the function that removes it. */
  on<E extends ClientEvent>(event: E, handler: Handler<E>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler<ClientEvent>);
    return () => set.delete(handler as Handler<ClientEvent>);
  }

  /** Posts a page message with an `id`; resolves with the worker's `ack` for it. */
  post(message: ClientPageMessage, transfer?: Transferable[]): Promise<AckMessage> {
    return this.request<AckMessage>(message, transfer);
  }

  /** Posts a page message without an `id`: nothing is awaited (session commands, transport events). */
  send(message: ClientPageMessage, transfer?: Transferable[]): void {
    this.postRaw(message, transfer);
  }

  /** Posts a `query` with an `id`; resolves with the answer carrying that `id`. */
  query<Q extends QueryRequest>(q: Q): Promise<QueryAnswer<Q>> {
    return this.queryWith(q);
  }

  /**
   * A series of one meter or group (PROTOCOL.md, "Series"): resolves with the
   * answer carrying this query's `id`; `computing` notes before it go to
   * `o.onComputing` (and the `series` event) and restart the wait.
   */
  series(spec: SeriesSpec, o: SeriesOptions = {}): Promise<SeriesData> {
    return this.queryWith({ query: 'series', ...spec } as QueryRequest & { query: 'series' }, o) as Promise<SeriesData>;
  }

  /**
   * Subscribes `sub` to a series: its answers and updates come as `series`
   * events carrying `sub`. Returns the function that unsubscribes.
   */
  subscribeSeries(sub: string, spec: SeriesSpec): () => void {
    this.postRaw({ type: 'series', op: 'subscribe', sub, ...spec });
    return () => this.postRaw({ type: 'series', op: 'unsubscribe', sub });
  }

  private queryWith<Q extends QueryRequest>(q: Q, o: SeriesOptions = {}): Promise<QueryAnswer<Q>> {
    const answer = this.request<QueryAnswer<Q>>({ type: 'query', ...q } as ClientPageMessage, undefined, o);
    const id = this.nextId - 1;
    if (this.waiting.has(id)) {
      let list = this.queries.get(q.query);
      if (!list) this.queries.set(q.query, (list = []));
      list.push({ id, meter: 'meter' in q ? q.meter : undefined });
    }
    return answer;
  }

  /**
   * Credit: the page rendered `frames` delivered updates of `channel`. Posted
   * only while a session runs (a worker without one has nothing to credit);
   * returns whether it was posted.
   */
  rendered(channel: string, frames: number): boolean {
    if (this.closed || !this.sessionActive || !(frames > 0)) return false;
    this.postRaw({ type: 'rendered', channel, frames });
    return true;
  }

  /** Stops listening, closes the page transport's socket, rejects what still waits, ends the worker. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.shutdown();
    this.worker.onmessage = null;
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new MeterflowClientError('closed', 'the client was closed'));
    }
    this.waiting.clear();
    this.queries.clear();
    this.worker.terminate?.();
  }

  /** How many `post`/`query` promises wait for an answer. */
  get pending(): number {
    return this.waiting.size;
  }

  /** One message from the worker (wired to `worker.onmessage`; public for tests). */
  dispatch(raw: unknown): void {
    if (this.closed || typeof raw !== 'object' || raw === null) return;
    const msg = raw as ClientWorkerMessage & { id?: unknown };
    if (msg.type === 'series' && msg.state === 'computing') {
      // Not the answer yet: progress, and the wait restarts.
      if (typeof msg.id === 'number') this.extend(msg.id, msg);
      this.emit('series', msg);
      return;
    }
    if (typeof msg.id === 'number' && this.settle(msg.id, msg)) {
      if (msg.type === 'ack') return;
    } else if (msg.type === 'window' || msg.type === 'meter') {
      // Only these two: `stats` and `totals` also come unasked, so without an `id` they answer nothing.
      this.settleOldest(msg.type, msg.meter, msg);
    }
    switch (msg.type) {
      case 'connect':
        if (this.pageOwnsStream) this.transport.connect(msg);
        return;
      case 'send':
        if (this.pageOwnsStream) this.transport.send(msg);
        return;
      case 'close':
        if (this.pageOwnsStream) this.transport.close(msg);
        return;
      case 'fetch':
        if ('requestId' in msg) {
          if (this.pageOwnsStream) void this.transport.sessionFetch(msg);
        } else {
          void this.transport.catchup(msg);
        }
        return;
      case 'connection':
        this.sessionActive = msg.state !== 'stopped';
        this.emit('connection', msg);
        return;
      case 'ready':
        this.version = msg.version;
        this.emit('ready', msg);
        return;
      case 'totals':
      case 'anomaly':
      case 'cleared':
      case 'meters':
      case 'notices':
      case 'detail':
      case 'stats':
      case 'warning':
      case 'error':
      case 'series':
        this.emit(msg.type, msg as never);
        return;
      default:
        return; // window, meter, ack without a waiter: answered through `query`/`post` only
    }
  }

  /** A worker that failed to start or crashed. */
  fail(message: string): void {
    this.emit('error', { type: 'error', v: 1, code: 'worker_failed', message, source: 'client' });
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new MeterflowClientError('worker_failed', message));
    }
    this.waiting.clear();
    this.queries.clear();
  }

  private request<T>(message: ClientPageMessage, transfer?: Transferable[], o: SeriesOptions = {}): Promise<T> {
    if (this.closed) return Promise.reject(new MeterflowClientError('closed', 'the client was closed'));
    if (this.waiting.size >= this.maxPending) {
      return Promise.reject(
        new MeterflowClientError('pending_limit', `${this.waiting.size} messages wait for the worker's answer (maxPending ${this.maxPending})`),
      );
    }
    const id = this.nextId++;
    const timeoutMs = o.timeoutMs ?? this.answerTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, {
        resolve: resolve as (m: never) => void, reject, timer: this.expire(id, timeoutMs), timeoutMs, onComputing: o.onComputing,
      });
      this.postRaw({ ...message, id }, transfer);
    });
  }

  /** The timer that rejects `id` with `timeout` after `ms`. */
  private expire(id: number, ms: number): ReturnType<typeof setTimeout> {
    return setTimeout(() => {
      const w = this.waiting.get(id);
      if (!w) return;
      this.waiting.delete(id);
      this.forgetQuery(id);
      w.reject(new MeterflowClientError('timeout', `no answer from the worker within ${ms} ms`));
    }, ms);
  }

  /** A `computing` note for `id`: tells its caller, restarts its wait (the note's retry plus the timeout). */
  private extend(id: number, note: SeriesComputing): void {
    const w = this.waiting.get(id);
    if (!w) return;
    clearTimeout(w.timer);
    const retry = Number.isFinite(note.retryAfterMs) && note.retryAfterMs > 0 ? Math.min(note.retryAfterMs, 3_600_000) : 0;
    w.timer = this.expire(id, w.timeoutMs + retry);
    w.onComputing?.(note);
  }

  private settle(id: number, msg: ClientWorkerMessage): boolean {
    const w = this.waiting.get(id);
    if (!w) return false;
    this.waiting.delete(id);
    this.forgetQuery(id);
    clearTimeout(w.timer);
    // An `error` carrying the `id` refuses that message: the caller's promise rejects with its code.
    if (msg.type === 'error') w.reject(new MeterflowClientError(msg.code, msg.message));
    else w.resolve(msg as never);
    return true;
  }

  /** An answer without a known `id`: settles the oldest query of its kind (and meter). */
  private settleOldest(kind: QueryKind, meter: string | undefined, msg: ClientWorkerMessage): void {
    const list = this.queries.get(kind);
    const i = list?.findIndex((q) => q.meter === meter) ?? -1;
    const q = i >= 0 ? list?.[i] : undefined;
    if (q) this.settle(q.id, msg);
  }

  private forgetQuery(id: number): void {
    for (const list of this.queries.values()) {
      const i = list.findIndex((q) => q.id === id);
      if (i >= 0) {
        list.splice(i, 1);
        return;
      }
    }
  }

  private postRaw(message: object, transfer?: Transferable[]): void {
    if (this.closed) return;
    if (transfer && transfer.length > 0) this.worker.postMessage(message, transfer);
    else this.worker.postMessage(message);
  }

  private emit<E extends ClientEvent>(event: E, message: ClientEvents[E]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const h of set) h(message);
  }
}

/**
 * Starts a client on `worker`: posts the config first (the worker queues
 * messages while its module loads), resolves once the worker says `ready`,
 * rejects if the worker fails before that.
 */
export function startMeterflow(o: StartOptions): Promise<MeterflowClient> {
  const mf = new MeterflowClient(o.worker, o);
  return new Promise((resolve, reject) => {
    let started = false;
    o.worker.onmessage = (ev) => {
      const data = ev.data as { type?: unknown } | null;
      mf.dispatch(data);
      if (!started && data?.type === 'ready') {
        started = true;
        resolve(mf);
      }
    };
    o.worker.onerror = (ev) => {
      ev.preventDefault?.();
      const message = `worker error: ${ev.message || 'the worker failed to start'}`;
      mf.fail(message);
      if (!started) reject(new MeterflowClientError('worker_failed', message));
    };
    const config: ClientConfig = { ...(o.config ?? {}) };
    if (o.transport !== undefined) config.transport = o.transport;
    if (o.transport === 'worker' && o.feedUrl !== undefined) config.feedUrl = o.feedUrl;
    if (Object.keys(config).length > 0) o.worker.postMessage({ type: 'config', config });
  });
}
