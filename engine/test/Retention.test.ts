import { SqlClient } from "@effect/sql"
import { EnrollRequest } from "@nexmdm/protocol"
import { Duration, Effect, Layer, ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Engine from "../src/Engine.js"
import { Enrollment } from "../src/Enrollment.js"
import { partitionName, Retention } from "../src/Retention.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { openDatabase, testConfig } from "./support/TestEngine.js"

const DAY_MS = 86_400_000

let database: TestDatabase
let releaseDatabase: () => Promise<void>
// The engine core built here rather than with startEngine, so Retention is in the runtime's type.
let engine: ManagedRuntime.ManagedRuntime<Layer.Layer.Success<typeof Engine.coreLayer>, unknown>

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  engine = ManagedRuntime.make(Engine.coreLayer.pipe(Layer.provideMerge(testConfig(database))))
  await engine.runPromise(Effect.void)
})

afterAll(async () => {
  await engine?.dispose()
  await releaseDatabase?.()
})

const query = <A extends object>(text: string, ...params: Array<unknown>) =>
  engine.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, params)))

const partitions = () =>
  query<{ name: string }>(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
     join pg_class p on p.oid = i.inhparent where p.relname = 'heartbeats' order by 1`
  ).then((rows) => rows.map((row) => row.name))

const runOnce = (now: Date) => engine.runPromise(Effect.flatMap(Retention, (retention) => retention.runOnce(now)))

const insertHeartbeat = (deviceId: string, seq: number, recordedAt: Date) =>
  query(
    `insert into heartbeats (device_id, seq, recorded_at, device_ts, battery_pct, charging, mem_free_mb, mem_total_mb,
       storage_free_mb, network, agent_version, uptime_s)
     values ($1, $2, $3, $3, 50, false, 100, 200, 300, 1, '1.0.0', 10)`,
    deviceId,
    seq,
    recordedAt
  )

const storedSeqs = (deviceId: string) =>
  query<{ seq: string; partition: string }>(
    "select seq, tableoid::regclass::text as partition from heartbeats where device_id = $1 order by seq",
    deviceId
  ).then((rows) => rows.map((row) => [Number(row.seq), row.partition]))

describe("heartbeat retention", () => {
  it("the engine starts with partitions for today and the next two days", async () => {
    const today = Math.floor(Date.now() / DAY_MS) * DAY_MS
    expect(await partitions()).toEqual(
      expect.arrayContaining([partitionName(today), partitionName(today + DAY_MS), partitionName(today + 2 * DAY_MS)])
    )
  })

  it("five days on, a pass creates the days ahead, drops whole days past 48 h with their rows, and trims the default partition", async () => {
    const now = new Date()
    const today = Math.floor(now.getTime() / DAY_MS) * DAY_MS
    const at = (days: number, hours = 12) => new Date(today + days * DAY_MS + hours * 3_600_000)
    // Partitions for today .. today+4 (the first pass only guards against midnight passing since start-up).
    await runOnce(now)
    await runOnce(new Date(now.getTime() + 2 * DAY_MS))

    const token = await engine.runPromise(
      Effect.flatMap(Enrollment, (e) => e.createToken({ expiresIn: Duration.hours(1), maxUses: 1 }))
    )
    const { deviceId } = await engine.runPromise(
      Effect.flatMap(Enrollment, (e) => e.enroll(new EnrollRequest({ token: token.token, hardwareId: "hw-retention" })))
    )
    await insertHeartbeat(deviceId, 1, at(-10)) // no partition: lands in heartbeats_default, and is old
    await insertHeartbeat(deviceId, 2, at(0)) // today's partition
    await insertHeartbeat(deviceId, 3, at(2)) // today+2: its whole day ends before the cutoff
    await insertHeartbeat(deviceId, 4, at(3)) // today+3: the day is not over at the cutoff
    await insertHeartbeat(deviceId, 5, at(10)) // no partition: heartbeats_default, newer than the cutoff
    expect((await storedSeqs(deviceId)).map(([, partition]) => partition)).toEqual([
      "heartbeats_default",
      partitionName(today),
      partitionName(today + 2 * DAY_MS),
      partitionName(today + 3 * DAY_MS),
      "heartbeats_default"
    ])

    const report = await runOnce(new Date(now.getTime() + 5 * DAY_MS))

    expect(report.created).toEqual([5, 6, 7].map((day) => partitionName(today + day * DAY_MS)))
    expect([...report.dropped].sort()).toEqual([0, 1, 2].map((day) => partitionName(today + day * DAY_MS)))
    expect(await partitions()).toEqual(["heartbeats_default", ...[3, 4, 5, 6, 7].map((day) => partitionName(today + day * DAY_MS))])
    expect(await storedSeqs(deviceId)).toEqual([
      [4, partitionName(today + 3 * DAY_MS)],
      [5, "heartbeats_default"]
    ])
  })

  it("a row already in the default partition moves into its day's new partition instead of blocking it", async () => {
    const today = Math.floor(Date.now() / DAY_MS) * DAY_MS
    const token = await engine.runPromise(
      Effect.flatMap(Enrollment, (e) => e.createToken({ expiresIn: Duration.hours(1), maxUses: 1 }))
    )
    const { deviceId } = await engine.runPromise(
      Effect.flatMap(Enrollment, (e) => e.enroll(new EnrollRequest({ token: token.token, hardwareId: "hw-default-row" })))
    )
    const day = today + 20 * DAY_MS
    await insertHeartbeat(deviceId, 1, new Date(day + 3_600_000))
    expect(await storedSeqs(deviceId)).toEqual([[1, "heartbeats_default"]])
    const report = await runOnce(new Date(day + 60_000))
    expect(report.created).toContain(partitionName(day))
    expect(await storedSeqs(deviceId)).toEqual([[1, partitionName(day)]])
  })
})
