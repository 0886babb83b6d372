/**
 * Heartbeat retention by day partitions: creates the partitions for today and the next days
 * ahead of time (so inserts never wait on DDL at midnight), drops whole partitions older than
 * NEXMDM_RETENTION_HOURS (cheap, unlike DELETE), trims the default partition, and deletes device
 * events past their own, longer retention. Runs at start-up and then hourly.
 */
import { SqlClient, SqlError } from "@effect/sql"
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import { EngineConfig } from "./EngineConfig.js"

const DAY_MS = 86_400_000
const DAYS_AHEAD = 2
const EVENT_RETENTION_DAYS = 90

export interface RetentionReport {
  readonly created: ReadonlyArray<string>
  readonly dropped: ReadonlyArray<string>
}

export class Retention extends Context.Tag("@nexmdm/engine/Retention")<
  Retention,
  {
    /** One pass; `now` is injectable so tests can move through days. */
    readonly runOnce: (now?: Date) => Effect.Effect<RetentionReport, SqlError.SqlError>
  }
>() {}

const dayStart = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10)
export const partitionName = (dayMs: number) => `heartbeats_p${isoDay(dayMs).replaceAll("-", "")}`
const partitionDay = /^heartbeats_p(\d{4})(\d{2})(\d{2})$/

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient
  const retentionMs = config.retentionHours * 3_600_000

  const runOnce = (now: Date = new Date()) =>
    Effect.gen(function* () {
      const existing = new Set(
        (yield* sql<{ name: string }>`
          select c.relname as name from pg_inherits i
          join pg_class c on c.oid = i.inhrelid
          join pg_class p on p.oid = i.inhparent
          where p.relname = 'heartbeats'`).map((row) => row.name)
      )
      const created: Array<string> = []
      const today = dayStart(now.getTime())
      for (let day = today; day <= today + DAYS_AHEAD * DAY_MS; day += DAY_MS) {
        const name = partitionName(day)
        if (existing.has(name)) continue
        const from = `'${isoDay(day)} 00:00:00+00'`
        const to = `'${isoDay(day + DAY_MS)} 00:00:00+00'`
        // Rows of that day may already sit in the default partition (a clock jump, or retention
        // down for days): PostgreSQL then refuses the new partition, so move them in with it.
        const createDay = sql.withTransaction(
          Effect.gen(function* () {
            yield* sql.unsafe(`create table ${name} (like heartbeats including defaults)`)
            yield* sql.unsafe(
              `with moved as (delete from heartbeats_default where recorded_at >= ${from} and recorded_at < ${to} returning *)
               insert into ${name} select * from moved`
            )
            yield* sql.unsafe(`alter table heartbeats attach partition ${name} for values from (${from}) to (${to})`)
          })
        )
        const outcome = yield* Effect.either(createDay)
        if (outcome._tag === "Left") {
          yield* Effect.logError("cannot create heartbeat partition").pipe(
            Effect.annotateLogs({ module: "Retention", partition: name, error: String(outcome.left) })
          )
          continue
        }
        created.push(name)
      }
      const dropped: Array<string> = []
      const cutoff = now.getTime() - retentionMs
      for (const name of existing) {
        const match = partitionDay.exec(name)
        if (match === null) continue
        const start = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))
        // Only whole days past the cutoff: a partial day stays until all of it is old.
        if (start + DAY_MS <= cutoff) {
          yield* sql.unsafe(`drop table if exists ${name}`)
          dropped.push(name)
        }
      }
      yield* sql`delete from heartbeats_default where recorded_at < ${new Date(cutoff)}`
      yield* sql`delete from device_events where at < ${new Date(now.getTime() - EVENT_RETENTION_DAYS * DAY_MS)}`
      if (created.length > 0 || dropped.length > 0) {
        yield* Effect.logInfo("heartbeat partitions maintained").pipe(
          Effect.annotateLogs({ module: "Retention", created, dropped })
        )
      }
      return { created, dropped }
    }).pipe(Effect.withSpan("Retention.runOnce"))

  // First pass before anything writes, then hourly; a failed pass is logged and retried next hour.
  yield* runOnce()
  yield* runOnce().pipe(
    Effect.catchAllCause((cause) => Effect.logError("retention pass failed", cause)),
    Effect.repeat(Schedule.spaced(Duration.hours(1))),
    Effect.delay(Duration.hours(1)),
    Effect.forkScoped
  )
  return Retention.of({ runOnce })
})

export const layer = Layer.scoped(Retention, make)
