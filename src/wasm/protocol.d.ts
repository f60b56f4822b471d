// TypeScript types of the meterflow worker protocol (docs/PROTOCOL.md sections
// 2, 4 and 5), appended to the generated meterflow.d.ts by src/wasm/types.rs.
// tests/worker.rs checks that every MeterflowConfig field is one the config
// decoder knows; tests/protocol_docs.rs that the ErrorCode and WarningCode
// unions list exactly the variants of the Rust enums.
/** A hybrid logical clock timestamp: order by `wallMs`, then `counter`. */
export interface Hlc { wallMs: number; counter: number; }

/** Stable error codes (PROTOCOL.md section 6); new codes may be added. */
export type ErrorCode =
  | "malformed_json" | "bad_field" | "unknown_type" | "unsupported_version"
  | "bad_value" | "bad_timestamp" | "truncated_frame" | "bad_frame"
  | "payload_too_large" | "errors_suppressed" | "pending_limit" | "channel_limit"
  | "unknown_key" | "key_out_of_range" | "bad_meter_id"
  | "meter_capacity" | "unknown_meter" | "bad_config" | "clock_ahead"
  | "unknown_resource" | "late_reading" | "out_of_memory"
  | "bad_channel" | "buffer_limit" | "credit_overrun" | "unexpected_op" | "bad_snapshot"
  | "fatal_close" | "not_subscribed" | "entity_limit" | "detail_limit" | "group_limit"
  | "series_limit"
  /** The binding could not convert an outbound message (a bug; please report it). */
  | "internal";

/** Stable warning codes (PROTOCOL.md section 6); new codes may be added. */
export type WarningCode =
  | "memory_ceiling" | "replay_gap" | "groups_refresh_failed" | "pending_limit_cleared"
  | "rebuild_refused" | "catchup_pages_limit";

/** A resource the ledger totals; `resources` in a config patch replaces the whole list. */
export interface ResourceSpec { name: string; unit: string; decimals: number; }

/** Configuration fields (all optional in a patch; unknown fields are refused); defaults in the README. */
export interface MeterflowConfig {
  window?: number; maxMeters?: number; tickMs?: number; statsIntervalMs?: number;
  memoryCeilingBytes?: number; reducedWindow?: number; warmup?: number;
  spikeZ?: number; spikeVotesOf?: number; spikeVotesNeeded?: number;
  driftShort?: number; driftZ?: number; driftConsecutive?: number; stuckRun?: number;
  stuckFactor?: number; baselineReadings?: number;
  silentAfterMs?: number; clearAfter?: number; criticalFactor?: number;
  stdFloor?: number; stdFloorRel?: number; spikeWidenMax?: number;
  recomputeEvery?: number; maxScansPerTick?: number; maxHeldAcks?: number; maxPayloadBytes?: number; maxBatch?: number;
  maxStreamKeys?: number; maxAbsValue?: number; maxAgeMs?: number; maxFutureMs?: number;
  maxErrorsPerBatch?: number; resources?: ResourceSpec[]; historyHours?: number;
  maxOffsetMs?: number; maxClockSkewMs?: number; totalsFlushMs?: number;
  catchupIntervalMs?: number; fetchRetryMs?: number; maxCatchupPages?: number; catchupOnStart?: boolean; maxPendingReadings?: number;
  dedupWindow?: number; maxMissingSeqs?: number; maxChannels?: number;
  nodeId?: number; detectLive?: boolean;
  /** Ask the feed for `meters.<group>` DELTAs as binary kind-4 frames (PROTOCOL.md 3.10;
   *  `"binary_deltas": true` in IDENTIFY/RESUME). Default false: JSON text DELTAs. */
  binaryDeltas?: boolean;
  /** Stream v2 session (PROTOCOL.md section 7). `transport: "worker"`: the worker runs
   *  the socket and fetches itself, against `feedUrl` (empty: its own origin). */
  transport?: "page" | "worker"; feedUrl?: string; maxSubscriptions?: number;
  maxBufferedDeltas?: number;
  /** Encoded bytes buffered per channel while it waits for a snapshot (default 32 MiB; 65536..=1 GiB). */
  maxBufferedBytes?: number; creditWindow?: number; backoffBaseMs?: number;
  backoffCapMs?: number; helloTimeoutMs?: number; streamSeed?: number;
  maxMeterEntities?: number; maxNotices?: number; detailCacheSize?: number;
  /** Bytes of one `/meters/{id}` body (default 65536; 1024..=16 MiB): a longer one is refused. */
  maxDetailBytes?: number;
  detailTtlMs?: number; maxUpdatesPerMessage?: number;
  /** One-shot flush this long after a delta or live frame (default 16; (0, 10000]). */
  deltaFlushMs?: number;
  /** Meter groups (PROTOCOL.md, `groups`). */
  maxGroups?: number; maxGroupsPerMeter?: number; groupsRefreshMs?: number;
  /** Series (PROTOCOL.md, `series`). */
  maxSeriesSubscriptions?: number; maxConcurrentQueries?: number; seriesChunkMeters?: number;
  maxSeriesPairs?: number;
  /** Live readings kept to rebuild per-meter rows from a catch-up (default 65,536; 0..=4,194,304). */
  maxRowLogReadings?: number;
  /** This worker's share of a pool's meters (PROTOCOL.md 5; default `{ index: 0, of: 1 }`, every
   *  meter): readings of meters whose FNV-1a id hash modulo `of` is not `index` are skipped. */
  partition?: { index: number; of: number };
}

/** A binary payload: transfer it (`postMessage(msg, [buf])`). */
export type BinaryPayload = ArrayBuffer | ArrayBufferView;

// ---- page -> worker (section 2) ----

export interface ReadingsMessage { type: "readings"; v?: 1; data: string | BinaryPayload; id?: number; }
export interface LiveMessage { type: "live"; v?: 1; data: string | BinaryPayload; receivedAt?: number; id?: number; }
export interface CatchupMessage { type: "catchup"; v?: 1; data: string | BinaryPayload; sentAt?: number; receivedAt?: number; id?: number; }
export interface ConfigMessage { type: "config"; v?: 1; config: MeterflowConfig; }
export type QueryMessage =
  | { type: "query"; v?: 1; id?: number; query: "stats" | "totals" }
  | { type: "query"; v?: 1; id?: number; query: "window" | "meter"; meter: string }
  | ({ type: "query"; v?: 1; id?: number; query: "series" } & SeriesSpec);
/** What a series is of: exactly one of `meter` and `group`. */
export type SeriesSpec = ({ meter: string; group?: never } | { group: string; meter?: never }) & {
  resource: string; spanMs?: number; resolution?: "1m" | "5m";
};
export type SeriesControlMessage =
  | ({ type: "series"; v?: 1; op: "subscribe"; sub: string } & SeriesSpec)
  | { type: "series"; v?: 1; op: "unsubscribe"; sub: string };
export interface ResetMessage { type: "reset"; v?: 1; meter?: string; }
export type SessionMessage =
  | { type: "session"; v?: 1; op: "start"; channels?: string[] }
  | { type: "session"; v?: 1; op: "stop" }
  | { type: "session"; v?: 1; op: "subscribe" | "unsubscribe"; channel: string }
  | { type: "session"; v?: 1; op: "detail"; meter: string };
export interface RenderedMessage { type: "rendered"; v?: 1; channel: string; frames: number; }
/** A socket message as it arrived: text, or an ArrayBuffer (binary kind 2 on `totals`,
 *  kind 4 `meters.<group>` DELTAs when `binaryDeltas` asked for them, PROTOCOL.md 3.10). */
export type SocketMessage =
  | { type: "socket"; v?: 1; event: "open" }
  | { type: "socket"; v?: 1; event: "message"; data: string | ArrayBuffer }
  | { type: "socket"; v?: 1; event: "close"; code: number; reason: string };
export interface FetchedMessage {
  type: "fetched"; v?: 1; requestId: number; ok: boolean; status: number;
  data?: string | ArrayBuffer; sentAt?: number; receivedAt?: number;
}
export type PageMessage =
  | ReadingsMessage | LiveMessage | CatchupMessage | ConfigMessage | QueryMessage | ResetMessage
  | SessionMessage | RenderedMessage | SocketMessage | FetchedMessage | SeriesControlMessage;

// ---- worker -> page (section 4) ----

export type AnomalyKind = "spike" | "drift" | "stuck" | "silent";
export type Severity = "warning" | "critical";

export interface ReadyMessage { type: "ready"; v: 1; version: string; }
export interface AnomalyMessage {
  type: "anomaly"; v: 1; meter: string; kind: AnomalyKind; severity: Severity;
  z: number; value: number; mean: number; std: number; ts: number; evaluations: number;
  /** Graded evidence in [0, 1], 0.5 at the kind's threshold (DETECTION.md, "Score"). */
  score: number;
}
export interface ClearedMessage { type: "cleared"; v: 1; meter: string; kind: AnomalyKind; at: number; }
export interface StatsMessage {
  type: "stats"; v: 1; id?: number; meters: number; window: number; linearMemoryBytes: number;
  engineBytes: number; readingsIngested: number; readingsRejected: number;
  evaluations: number; lastTickEvalMs: number; activeAlerts: number;
  /** Stream delta arrival in the worker → the `totals`/`meters` message showing it,
   *  over the last 1,024 updates; absent until a delta has been shown. */
  deliveryLatencyMs?: Timing;
  /** The worker's handling of one stream delta message, over the last 1,024. */
  deltaApplyMs?: Timing;
  /** Present once the stream v2 session was used (PROTOCOL.md section 7). */
  stream?: StreamStats;
  /** Present once the session was used or a group map applied. */
  groups?: GroupsStats;
  /** Present once a series was asked for or held. */
  series?: SeriesStats;
  /** Bytes held per store; the parts sum to `engineBytes` (PROTOCOL.md 4, `stats`). */
  memory: MemoryBreakdown;
}
/** The engine's estimate of the bytes each store holds (`stats.memory`). */
export interface MemoryBreakdown {
  /** Rings and rolling moments. */
  windows: Total;
  /** The detector's per-meter records. */
  detector: Total;
  /** Interned meter ids. */
  meterIds: Total;
  /** The engine's stream key table and the names waiting for a first reading. */
  keys: Total;
  /** Hourly buckets, stream cursors, the window feed. */
  ledger: Total;
  /** Per-meter reading-id bitmaps. */
  dedup: Total;
  /** Per-meter hourly rows and rate bins (the groups' sums come from them). */
  rows: Total;
  /** The rows' change log (at most 16,384 entries of 24 B). */
  changeLog: Total;
  /** Live readings kept for rebuilds (at most `maxRowLogReadings`). */
  rowLog: Total;
  /** The series slab (at most `maxSeriesPairs` pairs). */
  series: Total;
  /** Series answers kept and group sums in progress. */
  seriesCache: Total;
  /** The group map in force and the group sums. */
  groups: Total;
  /** The stream v2 session, its buffers and stores. */
  stream: Total;
  /** The engine's own record. */
  fixed: Total;
}
export interface SeriesStats {
  cacheHits: Total; recomputes: Total; chunks: Total; queueDepth: number;
  subscriptions: number; pairs: Total; bytesPerPair: number; missed: Total;
  /** Most `(meter, resource)` pairs held: `maxSeriesPairs` or its default. */
  maxPairs: Total;
}
/** The meter → group map's state in `stats`. */
export interface GroupsStats {
  version: Total | null; groups: number; meters: number; memberships: number;
  ageMs: number | null; refreshLatencyMs: number | null; consecutiveFailures: number;
  refreshes: Total; failures: Total; rowBytesPerMeter: number;
  /** Live readings kept for rebuilds (stamped after the applied catch-up), and `maxRowLogReadings`. */
  rowLog: number; rowLogCap: number;
  /** Catch-ups that rebuilt per-meter rows, and those refused (`rebuild_refused`). */
  rebuilds: Total; rebuildsRefused: Total;
}
/** Session counters in `stats` (counts only; no timings). */
export interface StreamStats {
  state: ConnectionState; gaps: Total; resumesOk: Total; resumesFailed: Total;
  creditExhausted: Total; creditOverruns: Total; coalescedUpdates: Total;
  snapshotFetches: Total; evictions: Total; refusedEntities: Total; detailCacheHits: Total;
  reconnects: Total; queueDepth: Total; meterEntities: Total; notices: Total; detailsCached: Total;
}
/** Milliseconds, timed by the worker (`performance.now()`). */
export interface Timing { p50: number; p95: number; p99: number; max: number; samples: number; }
export interface ErrorMessage { type: "error"; v: 1; id?: number; code: ErrorCode; message: string; position?: number; }
export interface WarningMessage {
  type: "warning"; v: 1; code: WarningCode; message: string;
  /** Items the warning counts (`pending_limit_cleared`: live readings refused). */
  count?: number;
}
export interface WindowMessage { type: "window"; v: 1; id?: number; meter: string; values: Float64Array; }
export interface MeterMessage {
  type: "meter"; v: 1; id?: number; meter: string; count: number; mean: number; variance: number;
  skewness: number; excessKurtosis: number; lastTs: number; alerts: AnomalyKind[];
  /** The meter's current anomaly score in [0, 1] (DETECTION.md, "Score"). */
  score: number;
}
/** An integer count of `10^-decimals` units; a decimal string beyond ±(2^53 − 1). */
export type Total = number | string;
export interface TotalsBucket { hour: number; total: Total; asOf: Hlc | null; }
export interface ResourceTotals {
  resource: string; unit: string; decimals: number; total: Total; currentHour: Total;
  buckets: TotalsBucket[];
}
/** Ledger counters; like totals, a count beyond 2^53 − 1 is a decimal string. */
export interface LedgerCounters {
  livePending: Total; liveCounted: Total; duplicates: Total; covered: Total;
  unverifiable: Total; overflow: Total; late: Total; restApplied: Total;
  staleRest: Total; refusedRest: Total; refusedClocks: Total; clockRegressions: Total;
  gaps: Total; fetches: Total; catchupPages: Total;
}
export interface TotalsMessage {
  type: "totals"; v: 1; id?: number; hlc: Hlc; node: number; asOf: Hlc | null; incomplete: boolean;
  currentHour: number; resources: ResourceTotals[]; counters: LedgerCounters;
  /** Deltas of the stream `totals` channel first shown here: acknowledge them with `rendered` (PROTOCOL.md 7). */
  frames: number;
}
export type FetchReason =
  | "startup" | "scheduled" | "gap" | "epoch" | "clock" | "pending_limit" | "dedup" | "refused" | "page";
/** The ledger's catch-up request: `GET feedUrl + path` (append `&format=binary` for the binary body), post the body back as `catchup`. */
export interface FetchMessage {
  type: "fetch"; v: 1; reason: FetchReason; minAsOf: Hlc | null; fromHour: number;
  /** A `page`: the newest hour the server should list per meter (PROTOCOL.md "fetch"). */
  toHour?: number;
  path: string;
}
/** The answer to a `readings` / `live` / `catchup` message that carried an `id`. */
export interface AckMessage { type: "ack"; v: 1; id: number; accepted: number; refused: number; ms: number; }
export interface ConnectMessage { type: "connect"; v: 1; url: string | null; }
export interface SendMessage { type: "send"; v: 1; data: string; }
export interface CloseMessage { type: "close"; v: 1; code: number; reason: string; }
export interface StreamFetchMessage { type: "fetch"; v: 1; requestId: number; path: string; }
export type ConnectionState =
  | "disconnected" | "connecting" | "identifying" | "resuming" | "ready" | "stopped";
export interface ConnectionMessage {
  type: "connection"; v: 1; state: ConnectionState; attempt: number;
  nextRetryAt: number | null; lastCloseCode: number | null; reason: string;
}
export interface MeterRow {
  meter: string; resource: string; ts: number; value: number;
  status: "ok" | "stale" | "offline"; count: number; total: string;
}
/** `frames`: deltas of `channel` first shown here; `rendered` acknowledges them (PROTOCOL.md 7). */
export interface MetersMessage { type: "meters"; v: 1; channel: string; upsert: MeterRow[]; remove: string[]; frames: number; }
export interface Notice {
  id: string; severity: "info" | "warning" | "critical"; title: string; text: string;
  fromMs: number; toMs: number;
}
export interface NoticesMessage { type: "notices"; v: 1; upsert: Notice[]; remove: string[]; frames: number; }
/** The feed server's `GET /meters/{id}` body; other servers may add fields. */
export interface MeterDetail {
  meter: string; resource: string; quantum?: string; noisy?: boolean;
  latest?: { id: number; ts: number; amount: string } | null; total?: string; readings?: number;
  incidents?: { kind: string; start: number; end: number }[];
  [field: string]: unknown;
}
export interface DetailMessage { type: "detail"; v: 1; meter: string; detail: MeterDetail; cached: boolean; }
/** One group's figures (`group` is "" for `unassigned`); buckets' `asOf` is null. */
export interface GroupTotals {
  group: string; meters: number; resources: ResourceTotals[]; incomplete: boolean;
  readingsPerSec: number; activeAlerts: number;
}
export interface GroupsMessage {
  type: "groups"; v: 1; version: Total | null; currentHour: number; completeFrom: number | null;
  groups: GroupTotals[]; unassigned: GroupTotals;
}
/** A series answer (arrays are views of one transferred buffer; empty buckets
 *  have count 0 and NaN min/max/last), or `computing` while a large group is summed. */
export type SeriesMessage =
  | {
      type: "series"; v: 1; id?: number; sub?: string; meter?: string; group?: string;
      resource: string; resolution: "1m" | "5m"; stepMs: number; from: number; to: number;
      ts: Float64Array; count: Float64Array; sum: Float64Array; min: Float64Array;
      max: Float64Array; last: Float64Array; sourceWatermark: number | null;
      incomplete: boolean; cached: boolean;
    }
  | { type: "series"; v: 1; id?: number; sub?: string; state: "computing"; retryAfterMs: number };
export type WorkerMessage =
  | ReadyMessage | AnomalyMessage | ClearedMessage | StatsMessage | ErrorMessage
  | WarningMessage | WindowMessage | MeterMessage | TotalsMessage | FetchMessage
  | ConnectMessage | SendMessage | CloseMessage | StreamFetchMessage | ConnectionMessage
  | MetersMessage | NoticesMessage | DetailMessage | AckMessage | GroupsMessage | SeriesMessage;

/** What `startOnPort` drives: a `MessagePort`, a `Worker`, a worker's global scope. */
export interface MessagePortLike {
  postMessage(message: any, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent) => any) | null;
}
