// The page transport: the page owns the network (PROTOCOL.md section 1), so
// when `transport: 'page'` the client executes what the worker asks for: the
// session's `connect` / `send` / `close` / `fetch` (with `requestId`) on one
// WebSocket and `fetch`, answered with `socket` and `fetched` messages, and the
// ledger's own catch-up `fetch` (`GET` its `path`, `/catchup?from=<fromHour>&meters=1`), answered
// with a `catchup` message carrying `sentAt` and `receivedAt`.
//
// Binary bodies cross as ArrayBuffers and are transferred, never copied.
// Nothing here parses a payload: the worker decodes everything.
import type {
  CloseRequest,
  ConnectRequest,
  FetchMessage,
  SendRequest,
  SessionFetchRequest,
} from './protocol.js';

/** What the transport posts to the worker (a raw post: no `id`, no ack awaited). */
export type PostRaw = (message: object, transfer?: Transferable[]) => void;

/** The subset of `WebSocket` the transport uses (a fake in unit tests). */
export interface SocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: unknown) => unknown) | null;
  onmessage: ((ev: { data: unknown }) => unknown) | null;
  onclose: ((ev: { code: number; reason: string }) => unknown) | null;
  onerror: ((ev: unknown) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type SocketFactory = (url: string) => SocketLike;
/** The subset of `fetch` the transport uses. */
export type FetchLike = (url: string) => Promise<{
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
  /** The streamed body, when the platform has one: read chunk by chunk for download progress. */
  body?: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; releaseLock?(): void } } | null;
}>;

/**
 * One step of a REST download the transport runs (a snapshot, a catch-up, a
 * detail): bytes received so far and the `Content-Length` (null when the
 * server did not say); `done` once the whole body is in (or it failed).
 */
export interface DownloadProgress {
  /** A stable key of this download (`<path>#<n>`). */
  key: string;
  path: string;
  received: number;
  total: number | null;
  done: boolean;
}

export interface PageTransportOptions {
  /** Base URL of the feed server, e.g. `http://127.0.0.1:8090` (no trailing slash needed). */
  feedUrl: string;
  /** Ask for binary frames (`?format=binary`) on the stream and the ledger's catch-ups. */
  binary: boolean;
  post: PostRaw;
  openSocket: SocketFactory;
  fetch: FetchLike;
  now: () => number;
  /** A transport failure the worker cannot see (a catch-up request that failed). */
  onError: (code: TransportErrorCode, message: string) => void;
  /** Download progress of each REST body, per chunk (optional). */
  onProgress?: (p: DownloadProgress) => void;
  /**
   * Bodies smaller than this (by `Content-Length`) are read whole, without
   * progress (default `DEFAULT_PROGRESS_MIN_BYTES`; 0 = every body streamed).
   */
  progressMinBytes?: number;
}

/** Below this a download is too quick to show progress for (bytes). */
export const DEFAULT_PROGRESS_MIN_BYTES = 256 * 1024;

export type TransportErrorCode = 'catchup_failed' | 'socket_send_failed';

/** WebSocket.OPEN, CLOSING and CLOSED. */
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** The stream URL of a feed base URL: `ws(s)://host/stream`. */
export function streamUrl(feedUrl: string, binary: boolean): string {
  const u = new URL('/stream', feedUrl);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  if (binary) u.searchParams.set('format', 'binary');
  return u.toString();
}

/** Whether a response body is binary: the feed server sends kind 3 as octet-stream. */
function isBinary(contentType: string | null): boolean {
  return (contentType ?? '').split(';')[0]?.trim() === 'application/octet-stream';
}

type FetchResponse = Awaited<ReturnType<FetchLike>>;

export class PageTransport {
  private socket: SocketLike | null = null;
  private closed = false;
  private downloads = 0;
  /** The current socket's close was posted to the worker and no connect came since. */
  private closePosted = false;

  constructor(private readonly o: PageTransportOptions) {}

  /** `connect`: opens the stream; a socket already open is dropped first (the session asked anew). */
  connect(req: ConnectRequest): void {
    this.detach();
    this.closePosted = false;
    const url = req.url ?? streamUrl(this.o.feedUrl, this.o.binary);
    let ws: SocketLike;
    try {
      ws = this.o.openSocket(url);
    } catch (e) {
      // A bad URL throws synchronously; the session sees a close, as for any failed connect.
      this.o.post({ type: 'socket', event: 'close', code: 1006, reason: `cannot open ${url}: ${String(e)}` });
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.o.post({ type: 'socket', event: 'open' });
    ws.onmessage = (ev) => {
      const data = ev.data;
      if (data instanceof ArrayBuffer) this.o.post({ type: 'socket', event: 'message', data }, [data]);
      else this.o.post({ type: 'socket', event: 'message', data: String(data) });
    };
    ws.onclose = (ev) => {
      if (this.socket === ws) {
        this.socket = null;
        this.closePosted = true;
      }
      this.o.post({ type: 'socket', event: 'close', code: ev.code, reason: ev.reason });
    };
    ws.onerror = () => {}; // a close event always follows and carries the code
    this.socket = ws;
  }

  /**
   * `send`: one text message on the open socket; without one the session hears a close.
   * A send that crossed the socket's close is moot, not an error: the socket is
   * closing (its close event follows) or its close is already on its way to the
   * worker, which then resumes or re-identifies; a browser drops such a send too.
   */
  send(req: SendRequest): void {
    const ws = this.socket;
    if (ws && (ws.readyState === CLOSING || ws.readyState === CLOSED)) return;
    if (!ws && this.closePosted) return;
    if (!ws || ws.readyState !== OPEN) {
      this.o.onError('socket_send_failed', 'the worker asked to send without an open socket');
      this.o.post({ type: 'socket', event: 'close', code: 1006, reason: 'send without an open socket' });
      return;
    }
    ws.send(req.data);
  }

  /** `close`: closes the socket; its close event goes back to the worker. */
  close(req: CloseRequest): void {
    const ws = this.socket;
    if (!ws) return;
    try {
      ws.close(req.code, req.reason);
    } catch {
      // Browsers take only 1000 and 3000..=4999 from a page; any other code closes as 1000.
      ws.close(1000, req.reason);
    }
  }

  /** A session `fetch`: GET `feedUrl + path`, answered by `fetched` with the same `requestId`. */
  async sessionFetch(req: SessionFetchRequest): Promise<void> {
    const sentAt = this.o.now();
    const base = { type: 'fetched', requestId: req.requestId, sentAt };
    try {
      const res = await this.o.fetch(new URL(req.path, this.o.feedUrl).toString());
      const data = await this.body(res, req.path);
      if (this.closed) return;
      const msg = { ...base, ok: res.ok, status: res.status, data, receivedAt: this.o.now() };
      this.o.post(msg, data instanceof ArrayBuffer ? [data] : undefined);
    } catch {
      if (this.closed) return;
      this.o.post({ ...base, ok: false, status: 0, receivedAt: this.o.now() });
    }
  }

  /**
   * The ledger's catch-up `fetch`: GET `req.path` (built by the worker, the
   * same the worker's own transport asks: `/catchup?from=<fromHour>&meters=1`),
   * answered by `catchup`.
   */
  async catchup(req: FetchMessage): Promise<void> {
    const u = new URL(req.path, this.o.feedUrl);
    if (this.o.binary) u.searchParams.set('format', 'binary');
    const sentAt = this.o.now();
    try {
      const res = await this.o.fetch(u.toString());
      const data = await this.body(res, `${u.pathname}${u.search}`);
      if (this.closed) return;
      if (!res.ok) {
        // The ledger repeats an unanswered request after fetchRetryMs; say why this one failed.
        const text = typeof data === 'string' ? data.slice(0, 200) : `${data.byteLength} bytes`;
        this.o.onError('catchup_failed', `GET ${u.pathname}${u.search}: HTTP ${res.status}: ${text}`);
        return;
      }
      this.o.post({ type: 'catchup', data, sentAt, receivedAt: this.o.now() }, data instanceof ArrayBuffer ? [data] : undefined);
    } catch (e) {
      if (!this.closed) this.o.onError('catchup_failed', `GET ${u.pathname}${u.search}: ${String(e)}`);
    }
  }

  /**
   * A response body as text or (octet-stream) bytes. With `onProgress` and a
   * streamed body it is read chunk by chunk, each chunk reported as bytes
   * received of `Content-Length`; the last report has `done` (also on failure).
   */
  private async body(res: FetchResponse, path: string): Promise<string | ArrayBuffer> {
    const binary = isBinary(res.headers.get('content-type'));
    const report = this.o.onProgress;
    const header = res.headers.get('content-length');
    const length = header === null ? NaN : Number(header);
    const total = Number.isSafeInteger(length) && length >= 0 ? length : null;
    const small = total !== null && total < (this.o.progressMinBytes ?? DEFAULT_PROGRESS_MIN_BYTES);
    const reader = report && !small ? res.body?.getReader() : undefined;
    if (!report || !reader) return binary ? res.arrayBuffer() : res.text();
    const key = `${path}#${++this.downloads}`;
    const chunks: Uint8Array[] = [];
    let received = 0;
    report({ key, path, received, total, done: false });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!value) continue;
        chunks.push(value);
        received += value.byteLength;
        report({ key, path, received, total, done: false });
      }
    } finally {
      report({ key, path, received, total, done: true });
    }
    const bytes = new Uint8Array(received);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    return binary ? bytes.buffer : new TextDecoder().decode(bytes);
  }

  /** Closes the socket and ignores answers still in flight. */
  shutdown(): void {
    this.closed = true;
    this.detach();
  }

  private detach(): void {
    const ws = this.socket;
    if (!ws) return;
    this.socket = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000, 'replaced');
    } catch {
      // already closing
    }
  }
}
