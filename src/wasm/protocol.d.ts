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
  /** The binding could not convert an outbound message (a bug; please report it). */
  | "internal";

/** Stable warning codes (PROTOCOL.md section 6); new codes may be added. */
export type WarningCode = "memory_ceiling" | "replay_gap";

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
  recomputeEvery?: number; maxPayloadBytes?: number; maxBatch?: number;
  maxStreamKeys?: number; maxAbsValue?: number; maxAgeMs?: number; maxFutureMs?: number;
  maxErrorsPerBatch?: number; resources?: ResourceSpec[]; historyHours?: number;
  maxOffsetMs?: number; maxClockSkewMs?: number; totalsFlushMs?: number;
  catchupIntervalMs?: number; fetchRetryMs?: number; catchupOnStart?: boolean; maxPendingReadings?: number;
  dedupWindow?: number; maxMissingSeqs?: number; maxChannels?: number;
  nodeId?: number; detectLive?: boolean;
}

/** A binary payload: transfer it (`postMessage(msg, [buf])`). */
export type BinaryPayload = ArrayBuffer | ArrayBufferView;

// ---- page -> worker (section 2) ----

export interface ReadingsMessage { type: "readings"; v?: 1; data: string | BinaryPayload; }
export interface LiveMessage { type: "live"; v?: 1; data: string | BinaryPayload; receivedAt?: number; }
export interface CatchupMessage { type: "catchup"; v?: 1; data: string | BinaryPayload; sentAt?: number; receivedAt?: number; }
export interface ConfigMessage { type: "config"; v?: 1; config: MeterflowConfig; }
export type QueryMessage =
  | { type: "query"; v?: 1; query: "stats" | "totals" }
  | { type: "query"; v?: 1; query: "window" | "meter"; meter: string };
export interface ResetMessage { type: "reset"; v?: 1; meter?: string; }
export type PageMessage =
  | ReadingsMessage | LiveMessage | CatchupMessage | ConfigMessage | QueryMessage | ResetMessage;

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
  type: "stats"; v: 1; meters: number; window: number; linearMemoryBytes: number;
  engineBytes: number; readingsIngested: number; readingsRejected: number;
  evaluations: number; lastTickEvalMs: number; activeAlerts: number;
}
export interface ErrorMessage { type: "error"; v: 1; code: ErrorCode; message: string; position?: number; }
export interface WarningMessage { type: "warning"; v: 1; code: WarningCode; message: string; }
export interface WindowMessage { type: "window"; v: 1; meter: string; values: Float64Array; }
export interface MeterMessage {
  type: "meter"; v: 1; meter: string; count: number; mean: number; variance: number;
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
  gaps: Total; fetches: Total;
}
export interface TotalsMessage {
  type: "totals"; v: 1; hlc: Hlc; node: number; asOf: Hlc | null; incomplete: boolean;
  currentHour: number; resources: ResourceTotals[]; counters: LedgerCounters;
}
export type FetchReason =
  | "startup" | "scheduled" | "gap" | "epoch" | "clock" | "pending_limit" | "dedup" | "refused";
export interface FetchMessage { type: "fetch"; v: 1; reason: FetchReason; minAsOf: Hlc | null; fromHour: number; }
export type WorkerMessage =
  | ReadyMessage | AnomalyMessage | ClearedMessage | StatsMessage | ErrorMessage
  | WarningMessage | WindowMessage | MeterMessage | TotalsMessage | FetchMessage;

/** What `startOnPort` drives: a `MessagePort`, a `Worker`, a worker's global scope. */
export interface MessagePortLike {
  postMessage(message: any, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent) => any) | null;
}
