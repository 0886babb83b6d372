/**
 * Loads what a device actor needs to start (credential generation, retirement, durable watermark,
 * last presence). Loads arriving within 2 ms are answered by one query, so a reconnect storm of
 * 10,000 devices costs tens of queries, not 10,000.
 */
import { SqlClient, SqlError } from "@effect/sql"
import { RequestResolver as DataLoader } from "@effect/experimental"
import { Context, Duration, Effect, Layer, Option, Request, RequestResolver } from "effect"
import type { CommandType } from "@nexmdm/protocol"
import type { NewCommand } from "./CommandLifecycle.js"
import type { DeviceRecord } from "./DeviceActor.js"
import type { Presence } from "./DeviceEventLog.js"

class LoadDevice extends Request.TaggedClass("LoadDevice")<Option.Option<DeviceRecord>, SqlError.SqlError, {
  readonly deviceId: string
}> {}

interface Row {
  readonly id: string
  readonly credential_generation: number
  readonly retired: boolean
  readonly presence: string
  readonly presence_reason: string | null
  readonly presence_since_ms: number | null
  readonly seq: string | null
  readonly recorded_at_ms: number | null
  readonly hmac_key: Uint8Array
  readonly fcm_token: string | null
  readonly heartbeat_interval_s: number | null
}

interface CommandRow {
  readonly id: string
  readonly device_id: string
  readonly type: string
  readonly params: Record<string, unknown>
  readonly status: string
  readonly attempts: number
  readonly issued_at_ms: number
  readonly expires_at_ms: number
}

const toOpenCommand = (row: CommandRow): NewCommand => ({
  id: row.id,
  type: row.type as CommandType,
  params: row.params,
  issuedAt: row.issued_at_ms,
  expiresAt: row.expires_at_ms,
  status: row.status as NonNullable<NewCommand["status"]>,
  attempts: row.attempts
})

const presences: ReadonlySet<string> = new Set<Presence>(["connected", "grace", "overdue", "offline"])

const toRecord = (row: Row, commands: ReadonlyArray<NewCommand>): DeviceRecord => ({
  deviceId: row.id,
  generation: row.credential_generation,
  retired: row.retired,
  durableSeq: row.seq === null ? 0 : Number(row.seq),
  lastRecordedAt: row.recorded_at_ms ?? 0,
  presence: presences.has(row.presence) ? (row.presence as Presence) : "offline",
  presenceReason: row.presence_reason ?? undefined,
  presenceSince: row.presence_since_ms ?? undefined,
  hmacKey: Buffer.from(row.hmac_key),
  fcmToken: row.fcm_token ?? undefined,
  heartbeatIntervalS: row.heartbeat_interval_s ?? undefined,
  openCommands: commands
})

export class DeviceDirectory extends Context.Tag("@nexmdm/engine/DeviceDirectory")<
  DeviceDirectory,
  {
    readonly load: (deviceId: string) => Effect.Effect<Option.Option<DeviceRecord>, SqlError.SqlError>
    /** Devices the database last saw present (not offline, not retired): after a restart their
     * actors must exist, or nobody would ever move them to offline. */
    readonly loadPresent: Effect.Effect<ReadonlyArray<DeviceRecord>, SqlError.SqlError>
    /** Stores a device's own heartbeat interval (undefined: the engine's), for the next load. */
    readonly saveHeartbeatInterval: (deviceId: string, intervalS: number | undefined) => Effect.Effect<void, SqlError.SqlError>
  }
>() {}

const selectRecords = (where: string) => `
  select d.id, d.credential_generation, d.retired_at is not null as retired, d.presence, d.presence_reason,
    (extract(epoch from d.presence_since) * 1000)::float8 as presence_since_ms, d.hmac_key,
    case when d.fcm_token_status = 'valid' then d.fcm_token end as fcm_token, d.heartbeat_interval_s,
    h.seq, (extract(epoch from h.recorded_at) * 1000)::float8 as recorded_at_ms
  from devices d
  left join lateral (
    select seq, recorded_at from heartbeats where device_id = d.id order by recorded_at desc limit 1
  ) h on true
  where ${where}`

export const layer = Layer.scoped(
  DeviceDirectory,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    /** Open commands of these devices, oldest first, grouped by device. */
    const openCommandsOf = (ids: ReadonlyArray<string>) =>
      sql
        .unsafe<CommandRow>(
          `select id, device_id, type, params, status, attempts,
             (extract(epoch from created_at) * 1000)::float8 as issued_at_ms,
             (extract(epoch from expires_at) * 1000)::float8 as expires_at_ms
           from commands
           where device_id = any($1::text[]) and status in ('queued', 'sent', 'delivered', 'acknowledged')
           order by created_at, id`,
          [ids]
        )
        .pipe(
          Effect.map((rows) => {
            const byDevice = new Map<string, Array<NewCommand>>()
            for (const row of rows) {
              const list = byDevice.get(row.device_id) ?? []
              list.push(toOpenCommand(row))
              byDevice.set(row.device_id, list)
            }
            return byDevice
          })
        )
    const resolver = RequestResolver.makeBatched((requests: ReadonlyArray<LoadDevice>) => {
      const ids = [...new Set(requests.map((request) => request.deviceId))]
      return sql
        .unsafe<Row>(selectRecords("d.id = any($1::text[])"), [ids])
        .pipe(
          Effect.zip(openCommandsOf(ids)),
          Effect.flatMap(([rows, commands]) => {
            const byId = new Map(rows.map((row) => [row.id, toRecord(row, commands.get(row.id) ?? [])]))
            return Effect.forEach(
              requests,
              (request) => Request.succeed(request, Option.fromNullable(byId.get(request.deviceId))),
              { discard: true }
            )
          }),
          Effect.catchAll((error) =>
            Effect.forEach(requests, (request) => Request.fail(request, error), { discard: true })
          )
        )
    })
    const batched = yield* DataLoader.dataLoader(resolver, { window: Duration.millis(2), maxBatchSize: 1000 })
    return DeviceDirectory.of({
      load: (deviceId) => Effect.request(new LoadDevice({ deviceId }), batched),
      saveHeartbeatInterval: (deviceId, intervalS) =>
        sql`update devices set heartbeat_interval_s = ${intervalS ?? null} where id = ${deviceId}`.pipe(Effect.asVoid),
      loadPresent: sql
        .unsafe<Row>(selectRecords("d.presence <> 'offline' and d.retired_at is null"))
        .pipe(
          Effect.flatMap((rows) =>
            Effect.map(openCommandsOf(rows.map((row) => row.id)), (commands) =>
              rows.map((row) => toRecord(row, commands.get(row.id) ?? []))
            )
          )
        )
    })
  })
)
