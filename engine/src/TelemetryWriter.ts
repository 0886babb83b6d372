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

/** The batch as one array literal per column (see internal/PgArrays: pg's own array encoding was the hot spot). */
const toColumns = (rows: ReadonlyArray<HeartbeatRow>): Array<string> => [
  PgArrays.textArray(rows, (row) => row.deviceId),
  PgArrays.numberArray(rows, (row) => row.seq),
  PgArrays.numberArray(rows, (row) => row.recordedAt),
  PgArrays.numberArray(rows, (row) => row.deviceTs),
  PgArrays.numberArray(rows, (row) => row.batteryPct),
  PgArrays.booleanArray(rows, (row) => row.charging),
  PgArrays.numberArray(rows, (row) => row.memFreeMb),
  PgArrays.numberArray(rows, (row) => row.memTotalMb),
  PgArrays.numberArray(rows, (row) => row.storageFreeMb),
  PgArrays.numberArray(rows, (row) => networkCode[row.network]),
  PgArrays.numberArray(rows, (row) => row.signalDbm),
  PgArrays.textArray(rows, (row) => row.foregroundApp),
  PgArrays.textArray(rows, (row) => row.agentVersion),
  PgArrays.numberArray(rows, (row) => row.uptimeS),
  PgArrays.numberArray(rows, (row) => row.intervalS),
  PgArrays.numberArray(rows, (row) => row.wakeups),
  PgArrays.numberArray(rows, (row) => row.txBytes),
  PgArrays.numberArray(rows, (row) => row.reconnects)
]

export interface WriterHooks {
  readonly onBatch?: (info: { readonly rows: number; readonly seconds: number }) => void
  readonly onWriteFailed?: (info: { readonly rows: number; readonly attempt: number; readonly error: unknown }) => void
}

export const make = (hooks: WriterHooks = {}) =>
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const sql = yield* SqlClient.SqlClient
    const listeners: Array<DurableListener> = []
    const queue = yield* WriteBehind.make<HeartbeatRow>({
      name: "TelemetryWriter",
      shards: config.writeShards,
      shardOf: (row) => WriteBehind.shardOfKey(row.deviceId),
      maxBatch: config.batchMaxRows,
      maxDelay: config.batchMaxDelay,
      capacity: config.bufferMaxRows,
      finalFlushTimeout: config.shutdownTimeout,
      write: (rows) => sql.unsafe(insertHeartbeats, toColumns(rows)),
      onWritten: (rows) => {
        const durable = new Map<string, number>()
        for (const row of rows) durable.set(row.deviceId, row.seq)
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
