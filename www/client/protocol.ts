// The messages the page-side client exchanges with the meterflow worker.
//
// Version-1 messages (docs/PROTOCOL.md sections 2 and 4) come from the one
// hand-written source, src/wasm/protocol.d.ts, which tests/protocol_docs.rs
// keeps in step with the Rust error codes. The stream v2 session messages
// below are the shapes agreed for issue 11 (PROTOCOL.md, "Stream v2
// session"); they move into protocol.d.ts when the session is wired into the
// worker, and this file then re-exports them from there.
import type {
  AnomalyMessage,
  BinaryPayload,
  ClearedMessage,
  ErrorMessage,
  FetchMessage,
  MeterflowConfig,
  MeterMessage,
  PageMessage,
  QueryMessage,
  ReadyMessage,
  StatsMessage,
  TotalsMessage,
  WarningMessage,
  WindowMessage,
} from '../../src/wasm/protocol';

export type {
  AnomalyKind,
  AnomalyMessage,
  BinaryPayload,
  ClearedMessage,
  ErrorCode,
  ErrorMessage,
  FetchMessage,
  Hlc,
  MemoryBreakdown,
  MeterflowConfig,
  MeterMessage,
  PageMessage,
  ReadyMessage,
  ResourceTotals,
  Severity,
  StatsMessage,
  Total,
  TotalsBucket,
  TotalsMessage,
  WarningMessage,
  WindowMessage,
} from '../../src/wasm/protocol';

// ---- page -> worker: stream v2 session ----

export type SessionOp =
  | { op: 'start'; channels?: string[] }
  | { op: 'stop' }
  | { op: 'subscribe'; channel: string }
  | { op: 'unsubscribe'; channel: string }
  | { op: 'detail'; meter: string };
export type SessionMessage = { type: 'session'; v?: 1 } & SessionOp;
export interface RenderedMessage { type: 'rendered'; v?: 1; channel: string; frames: number; }
export type SocketMessage =
  | { type: 'socket'; v?: 1; event: 'open' }
  | { type: 'socket'; v?: 1; event: 'message'; data: string | ArrayBuffer }
  | { type: 'socket'; v?: 1; event: 'close'; code: number; reason: string };
export interface FetchedMessage {
  type: 'fetched'; v?: 1; requestId: number; ok: boolean; status: number;
  data?: string | ArrayBuffer; sentAt?: number; receivedAt?: number;
}
/** Every message the page may post; each may carry an `id` the worker's `ack` echoes. */
/** A `query` carries an `id` its answer echoes (the client always sets one). */
export type ClientQueryMessage = QueryMessage & { id?: number };
export type ClientPageMessage =
  | PageMessage | ClientQueryMessage | SessionMessage | RenderedMessage | SocketMessage | FetchedMessage
  | SeriesQueryMessage | SeriesSubscribeMessage | SeriesUnsubscribeMessage;

/** The configuration, with the session's transport fields. */
export interface ClientConfig extends MeterflowConfig {
  transport?: 'page' | 'worker';
  feedUrl?: string;
}

// ---- worker -> page: stream v2 session ----

/** The worker asks the page transport to open the stream (`url: null`: the configured one). */
export interface ConnectRequest { type: 'connect'; v: 1; url: string | null; }
export interface SendRequest { type: 'send'; v: 1; data: string; }
export interface CloseRequest { type: 'close'; v: 1; code: number; reason: string; }
/** A session REST request; the answer goes back as `fetched` with the same `requestId`. */
export interface SessionFetchRequest { type: 'fetch'; v: 1; requestId: number; path: string; }

export type ConnectionState = 'disconnected' | 'connecting' | 'identifying' | 'resuming' | 'ready' | 'stopped';
export interface ConnectionMessage {
  type: 'connection'; v: 1; state: ConnectionState; attempt: number;
  nextRetryAt: number | null; lastCloseCode: number | null; reason: string;
}
export type MeterStatus = 'ok' | 'stale' | 'offline';
export interface MeterRow {
  meter: string; resource: string; ts: number; value: number; status: MeterStatus;
  count: number; total: string;
}
/**
 * `frames`: the server deltas of `channel` whose effects this message shows
 * first (PROTOCOL.md 7); the page acknowledges exactly the sum it rendered.
 * Absent from workers older than the field.
 */
export interface MetersMessage { type: 'meters'; v: 1; channel: string; upsert: MeterRow[]; remove: string[]; frames?: number; }
export type NoticeSeverity = 'info' | 'warning' | 'critical';
export interface Notice { id: string; severity: NoticeSeverity; title: string; text: string; fromMs: number; toMs: number; }
export interface NoticesMessage { type: 'notices'; v: 1; upsert: Notice[]; remove: string[]; }
export interface DetailMessage { type: 'detail'; v: 1; meter: string; detail: Record<string, unknown>; cached: boolean; }
/** The worker's answer to a page message that carried `id`. */
export interface AckMessage { type: 'ack'; v: 1; id: number; accepted: number; refused: number; ms: number; }

/**
 * A `totals` message with the session's fields: `frames` (the `totals`
 * channel's deltas it shows first, 0 when none) and `id` when it answers a
 * `query`. Both absent from older workers.
 */
export type TotalsUpdate = TotalsMessage & { frames?: number; id?: number };

// ---- series (PROTOCOL.md, "Series") ----

export type SeriesResolution = '1m' | '5m';
/** Exactly one of `meter` / `group`. */
export type SeriesTarget = { meter: string; group?: never } | { group: string; meter?: never };
/** What a series covers: `spanMs` default 2 h, at most 6 h; `resolution` default 1m up to 2 h, 5m beyond. */
export type SeriesSpec = SeriesTarget & { resource: string; spanMs?: number; resolution?: SeriesResolution };
export type SeriesQueryMessage = { type: 'query'; v?: 1; query: 'series'; id?: number } & SeriesSpec;
export type SeriesSubscribeMessage = { type: 'series'; v?: 1; op: 'subscribe'; sub: string } & SeriesSpec;
export interface SeriesUnsubscribeMessage { type: 'series'; v?: 1; op: 'unsubscribe'; sub: string; }
/**
 * A series: one entry per bucket in each array (buffers transferred); an empty
 * bucket has count 0 and NaN min/max/last.
 */
export interface SeriesData {
  type: 'series'; v?: 1; id?: number; sub?: string; meter?: string; group?: string; resource: string;
  resolution: SeriesResolution; stepMs: number; from: number; to: number;
  ts: Float64Array; count: Float64Array; sum: Float64Array; min: Float64Array; max: Float64Array; last: Float64Array;
  sourceWatermark: number | null; incomplete: boolean; cached: boolean; state?: undefined;
}
/** Heavy work is chunked: the answer follows later with the same `id`/`sub`. */
export interface SeriesComputing { type: 'series'; v?: 1; id?: number; sub?: string; state: 'computing'; retryAfterMs: number; }
export type SeriesMessage = SeriesData | SeriesComputing;

/** Every message the worker may post, v1 and session. */
export type ClientWorkerMessage =
  | ReadyMessage | AnomalyMessage | ClearedMessage | StatsMessage | ErrorMessage | WarningMessage
  | WindowMessage | MeterMessage | TotalsUpdate | FetchMessage
  | ConnectRequest | SendRequest | CloseRequest | SessionFetchRequest
  | ConnectionMessage | MetersMessage | NoticesMessage | DetailMessage | AckMessage | SeriesMessage;

export type { BinaryPayload as Payload };
