/**
 * Write-behind for heartbeats. The actor offers a row and acks at once; this service batches rows
 * into multi-row inserts (unnest of typed arrays), two shards in flight by default, sharded by
 * device so each device's rows are committed in seq order. After a batch commits it reports the
 * new durable watermark of every device in it. When PostgreSQL is away it keeps retrying and
 * holds rows in memory up to NEXMDM_BUFFER_MAX_ROWS; past that `offer` refuses and the device
 * is told to back off (it keeps the heartbeat in its outbox).
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import type { NetworkType } from "@nexmdm/protocol"
import { EngineConfig } from "./EngineConfig.js"
import * as PgArrays from "./internal/PgArrays.js"
import * as WriteBehind from "./internal/WriteBehind.js"

export interface HeartbeatRow {
  readonly deviceId: string
  readonly seq: number
  /** Engine clock, epoch ms; strictly increasing per device. */
  readonly recordedAt: number
  readonly deviceTs: number
  readonly batteryPct: number
  readonly charging: boolean
  readonly memFreeMb: number
  readonly memTotalMb: number
  readonly storageFreeMb: number
  readonly network: NetworkType
  readonly signalDbm: number | undefined
  readonly foregroundApp: string | undefined
  readonly agentVersion: string
  readonly uptimeS: number
  /** The agent's interval and own cost since its previous sample (PROTOCOL.md 9.6), when sent. */
  readonly intervalS?: number | undefined
  readonly wakeups?: number | undefined
  readonly txBytes?: number | undefined
  readonly reconnects?: number | undefined
}

/** Stored as smallint: two bytes instead of a string per row. */
export const networkCode: Record<NetworkType, number> = { none: 0, wifi: 1, cellular: 2, ethernet: 3, vpn: 4, other: 9 }
export const networkFromCode = (code: number): NetworkType =>
  (Object.entries(networkCode).find(([, value]) => value === code)?.[0] as NetworkType | undefined) ?? "other"

/** Called after each commit with the highest persisted seq of every device in the batch. */
export type DurableListener = (durable: ReadonlyMap<string, number>) => void

export class TelemetryWriter extends Context.Tag("@nexmdm/engine/TelemetryWriter")<
  TelemetryWriter,
  {
    readonly offer: (row: HeartbeatRow) => boolean
    readonly hasRoom: (rows: number) => boolean
    readonly buffered: () => number
    readonly totals: () => { readonly written: number; readonly failedAttempts: number; readonly batches: number }
    readonly onDurable: (listener: DurableListener) => void
    /** Completes when every row offered before the call is committed. */
    readonly flush: Effect.Effect<void>
  }
>() {}

const insertHeartbeats = `
insert into heartbeats (device_id, seq, recorded_at, device_ts, battery_pct, charging, mem_free_mb,
  mem_total_mb, storage_free_mb, network, signal_dbm, foreground_app, agent_version, uptime_s,
  interval_s, wakeups, tx_bytes, reconnects)
select d, s, to_timestamp(r / 1000.0), to_timestamp(t / 1000.0), b, c, mf, mt, sf, n, sig, fg, av, up,
  iv, wk, tx, rc
from unnest($1::text[], $2::int8[], $3::float8[], $4::float8[], $5::int2[], $6::bool[], $7::int4[],
  $8::int4[], $9::int4[], $10::int2[], $11::int2[], $12::text[], $13::text[], $14::int4[],
  $15::int4[], $16::int4[], $17::int4[], $18::int4[])
  as u(d, s, r, t, b, c, mf, mt, sf, n, sig, fg, av, up, iv, wk, tx, rc)`

// Numeric columns of a batch, in statement order after device_id; NaN stands for NULL.
const SEQ = 0
const RECORDED_AT = 1
const DEVICE_TS = 2
const BATTERY_PCT = 3
const CHARGING = 4
const MEM_FREE = 5
const MEM_TOTAL = 6
const STORAGE_FREE = 7
const NETWORK = 8
const SIGNAL = 9
const UPTIME = 10
const INTERVAL = 11
const WAKEUPS = 12
const TX_BYTES = 13
const RECONNECTS = 14
const NUMERIC_COLUMNS = 15

const orNaN = (value: number | undefined) => (value === undefined ? NaN : value)

/**
 * Up to `capacity` heartbeats stored as columns: numbers in one preallocated Float64Array, strings
 * as references to the actors' long-lived copies. A row copied in here leaves no object behind,
 * and the arrays are reused batch after batch (see WriteBehind's `store`).
 */
export class HeartbeatBatch {
  length = 0
  readonly numbers: Float64Array
  readonly deviceIds: Array<string>
  readonly foregroundApps: Array<string | undefined>
  readonly agentVersions: Array<string>

  constructor(readonly capacity: number) {
    this.numbers = new Float64Array(capacity * NUMERIC_COLUMNS)
    this.deviceIds = new Array<string>(capacity).fill("")
    this.foregroundApps = new Array<string | undefined>(capacity).fill(undefined)
    this.agentVersions = new Array<string>(capacity).fill("")
  }

  append(row: HeartbeatRow): void {
    const i = this.length++
    const n = this.numbers
    const c = this.capacity
    n[SEQ * c + i] = row.seq
    n[RECORDED_AT * c + i] = row.recordedAt
    n[DEVICE_TS * c + i] = row.deviceTs
    n[BATTERY_PCT * c + i] = row.batteryPct
    n[CHARGING * c + i] = row.charging ? 1 : 0
    n[MEM_FREE * c + i] = row.memFreeMb
    n[MEM_TOTAL * c + i] = row.memTotalMb
    n[STORAGE_FREE * c + i] = row.storageFreeMb
    n[NETWORK * c + i] = networkCode[row.network]
    n[SIGNAL * c + i] = orNaN(row.signalDbm)
    n[UPTIME * c + i] = row.uptimeS
    n[INTERVAL * c + i] = orNaN(row.intervalS)
    n[WAKEUPS * c + i] = orNaN(row.wakeups)
    n[TX_BYTES * c + i] = orNaN(row.txBytes)
    n[RECONNECTS * c + i] = orNaN(row.reconnects)
    this.deviceIds[i] = row.deviceId
    this.foregroundApps[i] = row.foregroundApp
    this.agentVersions[i] = row.agentVersion
  }

  seqAt(i: number): number {
    return this.numbers[SEQ * this.capacity + i]!
  }

  /** Empties the batch for reuse (and lets go of its strings). */
  clear(): void {
    this.deviceIds.fill("", 0, this.length)
    this.foregroundApps.fill(undefined, 0, this.length)
    this.agentVersions.fill("", 0, this.length)
    this.length = 0
  }

  /** The batch as the insert's parameters: one binary array per column (see internal/PgArrays). */
  toParameters(): Array<Buffer> {
    const column = (type: PgArrays.NumericType, index: number) => PgArrays.numberArray(type, this.numbers, index * this.capacity, this.length)
    return [
      PgArrays.textArray(this.deviceIds, this.length),
      column("int8", SEQ),
      column("float8", RECORDED_AT),
      column("float8", DEVICE_TS),
      column("int2", BATTERY_PCT),
      column("bool", CHARGING),
      column("int4", MEM_FREE),
      column("int4", MEM_TOTAL),
      column("int4", STORAGE_FREE),
      column("int2", NETWORK),
      column("int2", SIGNAL),
      PgArrays.textArray(this.foregroundApps, this.length),
      PgArrays.textArray(this.agentVersions, this.length),
      column("int4", UPTIME),
      column("int4", INTERVAL),
      column("int4", WAKEUPS),
      column("int4", TX_BYTES),
      column("int4", RECONNECTS)
    ]
  }
}

/** A shard's queue of heartbeats: full batches, then the one being filled; emptied ones are kept for reuse. */
export const heartbeatStore = (capacity: number) => (): WriteBehind.ShardStore<HeartbeatRow, HeartbeatBatch> => {
  const queue: Array<HeartbeatBatch> = []
  const spare: Array<HeartbeatBatch> = []
  let size = 0
  return {
    push: (row) => {
      let tail = queue[queue.length - 1]
      if (tail === undefined || tail.length === capacity) {
        tail = spare.pop() ?? new HeartbeatBatch(capacity)
        queue.push(tail)
      }
      tail.append(row)
      size++
    },
    size: () => size,
    // Batches hold at most `capacity` = the writer's maxBatch rows: the oldest is the next batch.
    take: () => {
      const head = queue.shift()!
      size -= head.length
      return head
    },
    batchSize: (batch) => batch.length,
    release: (batch) => {
      batch.clear()
      // Enough for the steady state (one in flight, a few filling); an outage's backlog is let go.
      if (spare.length < 4) spare.push(batch)
    }
  }
}

export interface WriterHooks {
  readonly onBatch?: (info: { readonly rows: number; readonly seconds: number }) => void
  readonly onWriteFailed?: (info: { readonly rows: number; readonly attempt: number; readonly error: unknown }) => void
}

export const make = (hooks: WriterHooks = {}) =>
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const sql = yield* SqlClient.SqlClient
    const listeners: Array<DurableListener> = []
    const queue = yield* WriteBehind.make<HeartbeatRow, HeartbeatBatch>({
      name: "TelemetryWriter",
      shards: config.writeShards,
      shardOf: (row) => WriteBehind.shardOfKey(row.deviceId),
      maxBatch: config.batchMaxRows,
      store: heartbeatStore(config.batchMaxRows),
      maxDelay: config.batchMaxDelay,
      capacity: config.bufferMaxRows,
      finalFlushTimeout: config.shutdownTimeout,
      write: (batch) => sql.unsafe(insertHeartbeats, batch.toParameters()),
      onWritten: (batch) => {
        const durable = new Map<string, number>()
        for (let i = 0; i < batch.length; i++) durable.set(batch.deviceIds[i]!, batch.seqAt(i))
        for (const listener of listeners) listener(durable)
      },
      ...hooks
    })
    return TelemetryWriter.of({
      offer: queue.offer,
      hasRoom: queue.hasRoom,
      buffered: queue.buffered,
      totals: queue.totals,
      onDurable: (listener) => void listeners.push(listener),
      flush: queue.flush
    })
  })

export const layer = Layer.scoped(TelemetryWriter, make())
