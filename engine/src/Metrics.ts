/**
 * Every metric the engine exports, declared once (Prometheus names, help texts, buckets), with
 * synchronous recorders for the hot paths and a registry of scrape-time collectors.
 *
 * Effect metrics (constants below): engine_heartbeats_total{outcome}, engine_hb_ack_seconds,
 * engine_write_batch_rows{table}, engine_write_batch_seconds{table}, engine_write_rows_total{table},
 * engine_write_failures_total{table}, engine_frames_rejected_total{code},
 * engine_presence_transitions_total{to}, engine_enrollments_total{outcome},
 * engine_http_requests_total{route,status}, engine_push_sends_total{outcome},
 * engine_push_send_seconds{outcome}.
 * Read at scrape time: engine_actors_active and engine_devices_connected{transport}
 * (`registerRegistryGauges`), engine_write_buffer_rows{table} (a collector of the write-behind's owner).
 * Process metrics: internal/Prometheus.ts.
 *
 * The recorders call `Metric#unsafeUpdate` directly, so plain callbacks (the uWS handlers) record
 * without running an Effect. They pass label arrays allocated once per label value: effect caches
 * a metric's registry hook per label-array identity (a WeakMap), so a reused array costs one
 * WeakMap lookup where a fresh array would hash the whole metric key on every update.
 * Effect code may use the constants with `Metric.increment`/`Metric.tagged` as usual.
 */
import { Effect, GlobalValue, Metric, MetricBoundaries, MetricLabel } from "effect"
import type { Scope } from "effect"

type Labels = ReadonlyArray<MetricLabel.MetricLabel>

export type HeartbeatOutcome = "accepted" | "duplicate" | "backpressure"

/** How an FCM wake-up ended (push/Push.ts `PushOutcome`, in snake case). */
export type PushSendOutcome = "sent" | "token_invalid" | "rate_limited" | "unavailable" | "disabled"

const buckets = (values: ReadonlyArray<number>) => MetricBoundaries.fromIterable(values)

// ---------------------------------------------------------------------------------------------
// Effect metrics (each constant is the camelCase of its Prometheus name without `engine_`)

export const heartbeatsTotal = Metric.counter("engine_heartbeats_total", {
  description: "Heartbeats received, by outcome (accepted = new, duplicate = already seen, backpressure = refused)",
  incremental: true
})

export const hbAckSeconds = Metric.histogram(
  "engine_hb_ack_seconds",
  buckets([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]),
  "Time from a heartbeat's arrival to its ack being handed to the socket (seconds)"
)

export const writeBatchRows = Metric.histogram(
  "engine_write_batch_rows",
  buckets([1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000]),
  "Rows per committed write-behind batch, by table"
)

export const writeBatchSeconds = Metric.histogram(
  "engine_write_batch_seconds",
  buckets([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  "Duration of a committed write-behind batch, from the start of the write to its commit (seconds), by table"
)

export const writeRowsTotal = Metric.counter("engine_write_rows_total", {
  description: "Rows committed by the write-behind, by table",
  incremental: true
})

export const writeFailuresTotal = Metric.counter("engine_write_failures_total", {
  description: "Failed write-behind batch attempts (each is retried), by table",
  incremental: true
})

export const framesRejectedTotal = Metric.counter("engine_frames_rejected_total", {
  description: "Device frames answered with an error frame, by error code",
  incremental: true
})

export const presenceTransitionsTotal = Metric.counter("engine_presence_transitions_total", {
  description: "Device presence changes, by the state entered",
  incremental: true
})

export const enrollmentsTotal = Metric.counter("engine_enrollments_total", {
  description: "Enrollment requests, by outcome",
  incremental: true
})

export const httpRequestsTotal = Metric.counter("engine_http_requests_total", {
  description: "HTTP requests answered, by route template and status code",
  incremental: true
})

export const pushSendsTotal = Metric.counter("engine_push_sends_total", {
  description: "FCM wake-ups, by outcome (sent, token_invalid, rate_limited, unavailable, disabled = no credentials)",
  incremental: true
})

export const pushSendSeconds = Metric.histogram(
  "engine_push_send_seconds",
  buckets([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]),
  "Duration of an FCM wake-up send, the SDK's own retries included (seconds), by outcome; not recorded when push is disabled"
)

// ---------------------------------------------------------------------------------------------
// Label arrays, allocated once per value

/** One label array per value of `key`, created on first use and then reused. */
const labelsOf = (key: string) => {
  const cache = new Map<string, Labels>()
  return (value: string): Labels => {
    let labels = cache.get(value)
    if (labels === undefined) {
      labels = [MetricLabel.make(key, value)]
      cache.set(value, labels)
    }
    return labels
  }
}

/** Same for two labels; the second may be a number (e.g. an HTTP status). */
const labelsOf2 = (key1: string, key2: string) => {
  const cache = new Map<string, Map<string | number, Labels>>()
  return (value1: string, value2: string | number): Labels => {
    let inner = cache.get(value1)
    if (inner === undefined) {
      inner = new Map()
      cache.set(value1, inner)
    }
    let labels = inner.get(value2)
    if (labels === undefined) {
      labels = [MetricLabel.make(key1, value1), MetricLabel.make(key2, String(value2))]
      inner.set(value2, labels)
    }
    return labels
  }
}

const outcomeLabels = labelsOf("outcome")
const tableLabels = labelsOf("table")
const codeLabels = labelsOf("code")
const toLabels = labelsOf("to")
const routeStatusLabels = labelsOf2("route", "status")
const noLabels: Labels = []

// Series that read 0 before anything happened, so rates and alerts work from the first scrape.
for (const outcome of ["accepted", "duplicate", "backpressure"] satisfies ReadonlyArray<HeartbeatOutcome>) {
  heartbeatsTotal.unsafeUpdate(0, outcomeLabels(outcome))
}
hbAckSeconds.register()
for (const outcome of ["sent", "token_invalid", "rate_limited", "unavailable", "disabled"] satisfies ReadonlyArray<PushSendOutcome>) {
  pushSendsTotal.unsafeUpdate(0, outcomeLabels(outcome))
}

// ---------------------------------------------------------------------------------------------
// Synchronous recorders (no Effect runs: safe from any callback, ~0.1 µs each)

/** Counts one heartbeat. */
export const heartbeats = (outcome: HeartbeatOutcome): void => heartbeatsTotal.unsafeUpdate(1, outcomeLabels(outcome))

/** Records one heartbeat's arrival-to-ack time, in seconds. */
export const observeAck = (seconds: number): void => hbAckSeconds.unsafeUpdate(seconds, noLabels)

/** Records a committed batch: its size, its duration and its rows (fits WriteBehind's `onBatch`). */
export const writeBatch = (table: string, rows: number, seconds: number): void => {
  const labels = tableLabels(table)
  writeBatchRows.unsafeUpdate(rows, labels)
  writeBatchSeconds.unsafeUpdate(seconds, labels)
  writeRowsTotal.unsafeUpdate(rows, labels)
}

/** Counts one failed batch attempt. */
export const writeFailures = (table: string): void => writeFailuresTotal.unsafeUpdate(1, tableLabels(table))

/** Counts one rejected frame, by protocol error code. */
export const framesRejected = (code: string): void => framesRejectedTotal.unsafeUpdate(1, codeLabels(code))

/** Counts one presence change, by the state entered. */
export const presenceTransitions = (to: string): void => presenceTransitionsTotal.unsafeUpdate(1, toLabels(to))

/** Counts one enrollment request, by outcome. */
export const enrollments = (outcome: string): void => enrollmentsTotal.unsafeUpdate(1, outcomeLabels(outcome))

/** Counts one answered request; `route` is the route template (e.g. "/healthz"), never the raw path. */
export const httpRequests = (route: string, status: number): void =>
  httpRequestsTotal.unsafeUpdate(1, routeStatusLabels(route, status))

/** Counts one FCM wake-up and, when a send was attempted, records how long it took (seconds). */
export const pushSend = (outcome: PushSendOutcome, seconds?: number): void => {
  const labels = outcomeLabels(outcome)
  pushSendsTotal.unsafeUpdate(1, labels)
  if (seconds !== undefined) pushSendSeconds.unsafeUpdate(seconds, labels)
}

// ---------------------------------------------------------------------------------------------
// Scrape-time collectors

export type CollectorType = "counter" | "gauge"

export interface CollectedSample {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** A metric family whose samples are read when /metrics is scraped (buffer depth, pool usage...). */
export interface Collector {
  readonly name: string
  readonly help: string
  readonly type: CollectorType
  readonly collect: () => ReadonlyArray<CollectedSample>
}

const collectors = GlobalValue.globalValue(Symbol.for("@nexmdm/engine/Metrics/collectors"), () => new Set<Collector>())

/**
 * Registers a collector and returns the function that removes it. Several collectors may share a
 * name (e.g. one per table) as long as their label sets differ; they render as one family.
 */
export const registerCollector = (
  name: string,
  help: string,
  type: CollectorType,
  collect: () => ReadonlyArray<CollectedSample>
): (() => void) => {
  const collector: Collector = { name, help, type, collect }
  collectors.add(collector)
  return () => {
    collectors.delete(collector)
  }
}

/** `registerCollector` for the lifetime of the current scope. */
export const registerCollectorScoped = (
  name: string,
  help: string,
  type: CollectorType,
  collect: () => ReadonlyArray<CollectedSample>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.asVoid(
    Effect.acquireRelease(
      Effect.sync(() => registerCollector(name, help, type, collect)),
      (unregister) => Effect.sync(unregister)
    )
  )

/** The collectors registered now, in registration order. */
export const registeredCollectors = (): ReadonlyArray<Collector> => Array.from(collectors)

// ---------------------------------------------------------------------------------------------
// Device registry gauges (read at scrape time)

export interface RegistryCounts {
  /** Actors held in memory. */
  readonly actors: number
  /** Devices connected over WebSocket. */
  readonly ws: number
  /** Devices present through the HTTP fallback. */
  readonly http: number
}

const registrySlot = GlobalValue.globalValue(Symbol.for("@nexmdm/engine/Metrics/registryGauges"), () => ({
  unregister: undefined as (() => void) | undefined
}))

/**
 * `engine_actors_active` and `engine_devices_connected{transport="ws"|"http"}`, read from the
 * device registry when scraped (one `counts()` call per scrape). There is one registry per
 * process: a new registration replaces the previous one. Returns the function that removes it.
 */
export const registerRegistryGauges = (counts: () => RegistryCounts): (() => void) => {
  registrySlot.unregister?.()
  // Collectors run in registration order: the first takes the snapshot the second uses.
  let snapshot: RegistryCounts | undefined
  const removeActors = registerCollector("engine_actors_active", "Device actors currently held in memory", "gauge", () => {
    snapshot = counts()
    return [{ labels: {}, value: snapshot.actors }]
  })
  const removeDevices = registerCollector(
    "engine_devices_connected",
    "Devices with a live session, by transport (ws = WebSocket, http = HTTP fallback)",
    "gauge",
    () => {
      const current = snapshot ?? counts()
      snapshot = undefined
      return [
        { labels: { transport: "ws" }, value: current.ws },
        { labels: { transport: "http" }, value: current.http }
      ]
    }
  )
  const unregister = () => {
    removeActors()
    removeDevices()
    if (registrySlot.unregister === unregister) registrySlot.unregister = undefined
  }
  registrySlot.unregister = unregister
  return unregister
}
