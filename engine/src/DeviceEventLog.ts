/**
 * Device events (enrolment, presence transitions with their reason) are written behind in batches,
 * like heartbeats, and the device row's presence columns follow the newest presence event.
 * Low volume except in a reconnect storm, when batching keeps 10,000 transitions to a few inserts.
 */
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer } from "effect"
import { EngineConfig } from "./EngineConfig.js"
import * as WriteBehind from "./internal/WriteBehind.js"

export type Presence = "connected" | "grace" | "overdue" | "offline"

export interface DeviceEvent {
  readonly deviceId: string
  readonly at: number
  readonly kind: string
  /** Set for presence transitions: the device row's presence follows it. */
  readonly presence?: Presence
  readonly reason?: string
  readonly detail?: Record<string, unknown>
}

export class DeviceEventLog extends Context.Tag("@nexmdm/engine/DeviceEventLog")<
  DeviceEventLog,
  {
    /** Queues an event; false when the buffer is full (the caller logs the event instead). */
    readonly record: (event: DeviceEvent) => boolean
    readonly buffered: () => number
    readonly flush: Effect.Effect<void>
  }
>() {}

// Events of devices deleted meanwhile are skipped rather than failing the batch forever.
const insertEvents = `
insert into device_events (device_id, at, kind, presence, reason, detail)
select u.d, to_timestamp(u.a / 1000.0), u.k, u.p, u.r, u.j::jsonb
from unnest($1::text[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::text[]) with ordinality as u(d, a, k, p, r, j, o)
where exists (select 1 from devices where id = u.d)
order by u.o`

const updatePresence = `
update devices set presence = u.p, presence_reason = u.r, presence_since = to_timestamp(u.a / 1000.0),
  last_seen_at = greatest(last_seen_at, to_timestamp(u.a / 1000.0))
from unnest($1::text[], $2::text[], $3::text[], $4::float8[]) as u(d, p, r, a)
where devices.id = u.d`

const write = (sql: SqlClient.SqlClient, events: ReadonlyArray<DeviceEvent>) => {
  const latestPresence = new Map<string, DeviceEvent>()
  for (const event of events) if (event.presence !== undefined) latestPresence.set(event.deviceId, event)
  const presence = [...latestPresence.values()]
  return sql.withTransaction(
    Effect.zipRight(
      sql.unsafe(insertEvents, [
        events.map((e) => e.deviceId),
        events.map((e) => e.at),
        events.map((e) => e.kind),
        events.map((e) => e.presence ?? null),
        events.map((e) => e.reason ?? null),
        events.map((e) => (e.detail === undefined ? null : JSON.stringify(e.detail)))
      ]),
      presence.length === 0
        ? Effect.void
        : sql.unsafe(updatePresence, [
            presence.map((e) => e.deviceId),
            presence.map((e) => e.presence!),
            presence.map((e) => e.reason ?? null),
            presence.map((e) => e.at)
          ])
    )
  )
}

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient
  const queue = yield* WriteBehind.make<DeviceEvent>({
    name: "DeviceEventLog",
    shards: 1,
    shardOf: () => 0,
    maxBatch: 2000,
    maxDelay: Duration.millis(200),
    capacity: 1_000_000,
    finalFlushTimeout: config.shutdownTimeout,
    write: (events) => write(sql, events),
    onWritten: () => {}
  })
  return DeviceEventLog.of({
    record: queue.offer,
    buffered: queue.buffered,
    flush: queue.flush
  })
})

export const layer = Layer.scoped(DeviceEventLog, make)
