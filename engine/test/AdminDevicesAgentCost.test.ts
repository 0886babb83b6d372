/**
 * The agent's own cost (PROTOCOL.md 9.6) in a device's heartbeat series: per bucket or point,
 * and summed over the range for the device page; absent, not 0, wherever the agent sent none
 * (older agents). Stored rows for the arithmetic, one device through the plane for the path
 * from the wire to the API.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DevicePlane } from "../src/DevicePlane.js"
import { Enrollment } from "../src/Enrollment.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { type ApiClient, signedIn, startAdmin, type TestAdmin, waitFor } from "./support/TestAdmin.js"
import { DeviceSocket, type Enrolled, heartbeat, openDatabase, postJson } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin
let planeUrl: string
let viewer: ApiClient

const MINUTE = 60_000
/** A 10-minute boundary two hours ago: buckets of 600 s start on it. */
const BASE = Math.floor((Date.now() - 2 * 3_600_000) / (10 * MINUTE)) * 10 * MINUTE
const CURRENT = "dev_costcurrent0000000000"
const OLDER = "dev_costolder000000000000"

interface Row {
  readonly at: number
  readonly intervalS?: number
  readonly wakeups?: number
  readonly txBytes?: number
  readonly reconnects?: number
}

/** The current agent's heartbeats: the first from before its upgrade, one with part of the cost, one after the range. */
const CURRENT_ROWS: ReadonlyArray<Row> = [
  { at: BASE },
  { at: BASE + MINUTE, intervalS: 60, wakeups: 1, txBytes: 500, reconnects: 1 },
  { at: BASE + 2 * MINUTE, intervalS: 60, wakeups: 2, txBytes: 400, reconnects: 0 },
  { at: BASE + 11 * MINUTE, intervalS: 120, wakeups: 1, txBytes: 300 },
  { at: BASE + 22 * MINUTE, intervalS: 120 },
  { at: BASE + 40 * MINUTE, intervalS: 300, wakeups: 9, txBytes: 9000, reconnects: 9 }
]
const OLDER_ROWS: ReadonlyArray<Row> = [{ at: BASE }, { at: BASE + MINUTE }, { at: BASE + 12 * MINUTE }]

const insert = (deviceId: string, rows: ReadonlyArray<Row>) =>
  admin.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`insert into heartbeats (device_id, seq, recorded_at, device_ts, battery_pct, charging, mem_free_mb, mem_total_mb, storage_free_mb, network,
          agent_version, uptime_s, interval_s, wakeups, tx_bytes, reconnects)
        select ${deviceId}, u.seq, to_timestamp(u.at / 1000.0), to_timestamp(u.at / 1000.0), 50, false, 1000, 4000, 20000, 1, '1.0.0', 60,
          u.iv, u.wk, u.tx, u.rc
        from unnest(${rows.map((_, i) => i + 1)}::int8[], ${rows.map((r) => r.at)}::float8[], ${rows.map((r) => r.intervalS ?? null)}::int4[],
          ${rows.map((r) => r.wakeups ?? null)}::int4[], ${rows.map((r) => r.txBytes ?? null)}::int4[], ${rows.map((r) => r.reconnects ?? null)}::int4[])
          as u(seq, at, iv, wk, tx, rc)`
    )
  )

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  admin = await startAdmin(database)
  planeUrl = (await admin.run(DevicePlane)).url
  viewer = (await signedIn(admin, "viewer")).client
  await admin.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`insert into devices (id, hardware_id, enrolled_at, secret_hash, hmac_key)
        values (${CURRENT}, 'hw-cost-current', now() - interval '1 day', 'x', '\\x00'::bytea),
               (${OLDER}, 'hw-cost-older', now() - interval '1 day', 'x', '\\x00'::bytea)`
    )
  )
  await insert(CURRENT, CURRENT_ROWS)
  await insert(OLDER, OLDER_ROWS)
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
})

const series = async (deviceId: string, query: string) => {
  const response = await viewer.get(`/api/v1/devices/${deviceId}/heartbeats?${query}`)
  expect(response.status, response.text).toBe(200)
  return response.body
}

const RANGE = `from=${new Date(BASE).toISOString()}&to=${new Date(BASE + 30 * MINUTE).toISOString()}`

/** Three reporting heartbeats, the first covering the minute before it: 4 wake-ups and 1,200 bytes in 11 minutes. */
const expectedCost = {
  intervalS: 120,
  samples: 3,
  wakeups: 4,
  txBytes: 1200,
  reconnects: 1
}
const HOURS = 11 / 60

describe("agent cost in the heartbeat series", () => {
  it("sums each bucket's cost and keeps its latest interval; a bucket without a field has none, not 0", async () => {
    const body = await series(CURRENT, `${RANGE}&bucketSeconds=600`)
    expect(body.buckets.map(({ bucketStart, samples, intervalS, wakeups, txBytes, reconnects }: any) => ({ bucketStart, samples, intervalS, wakeups, txBytes, reconnects }))).toEqual([
      { bucketStart: new Date(BASE).toISOString(), samples: 3, intervalS: 60, wakeups: 3, txBytes: 900, reconnects: 1 },
      { bucketStart: new Date(BASE + 10 * MINUTE).toISOString(), samples: 1, intervalS: 120, wakeups: 1, txBytes: 300, reconnects: undefined },
      { bucketStart: new Date(BASE + 20 * MINUTE).toISOString(), samples: 1, intervalS: 120, wakeups: undefined, txBytes: undefined, reconnects: undefined }
    ])
    expect(Object.keys(body.buckets[2])).not.toContain("wakeups")
    // The range's summary: the interval of the latest heartbeat before `to` (not the one after it).
    expect(body.agentCost).toMatchObject(expectedCost)
    expect(body.agentCost.hours).toBeCloseTo(HOURS, 6)
    expect(body.agentCost.wakeupsPerHour).toBeCloseTo(4 / HOURS, 6)
    expect(body.agentCost.txBytesPerHour).toBeCloseTo(1200 / HOURS, 6)
  })

  it("gives raw points their own cost fields and the same summary", async () => {
    const body = await series(CURRENT, RANGE)
    expect(body.points.map(({ intervalS, wakeups, txBytes, reconnects }: any) => [intervalS, wakeups, txBytes, reconnects])).toEqual([
      [undefined, undefined, undefined, undefined],
      [60, 1, 500, 1],
      [60, 2, 400, 0],
      [120, 1, 300, undefined],
      [120, undefined, undefined, undefined]
    ])
    expect(body.agentCost).toMatchObject(expectedCost)
    expect(body.agentCost.hours).toBeCloseTo(HOURS, 6)
  })

  it("leaves the cost out for an agent that reports none", async () => {
    const buckets = await series(OLDER, `${RANGE}&bucketSeconds=600`)
    expect(buckets.buckets.map((bucket: any) => Object.keys(bucket).sort())).toEqual([
      ["batteryPct", "bucketStart", "memFreeMb", "samples", "signalDbm", "storageFreeMb"],
      ["batteryPct", "bucketStart", "memFreeMb", "samples", "signalDbm", "storageFreeMb"]
    ])
    expect(buckets).not.toHaveProperty("agentCost")
    const raw = await series(OLDER, RANGE)
    expect(raw.points).toHaveLength(3)
    expect(raw.points.every((point: any) => !("wakeups" in point) && !("intervalS" in point))).toBe(true)
    expect(raw).not.toHaveProperty("agentCost")
  })

  it("reports the interval of an agent that sent no cost in the range, with null sums", async () => {
    // Only the heartbeat with an interval and no cost is in this range.
    const body = await series(CURRENT, `from=${new Date(BASE + 20 * MINUTE).toISOString()}&to=${new Date(BASE + 30 * MINUTE).toISOString()}&bucketSeconds=60`)
    expect(body.agentCost).toEqual({ intervalS: 120, samples: 0, wakeups: null, txBytes: null, reconnects: null, hours: 0, wakeupsPerHour: null, txBytesPerHour: null })
  })

  it("shows what a device sent over the wire: its cost summed, its latest interval", async () => {
    const token = await admin.run(Effect.flatMap(Enrollment, (enrollment) => enrollment.createToken({ expiresIn: Duration.hours(1), maxUses: 1, label: "test" })))
    const response = await postJson(`${planeUrl}/v1/enroll`, { token: token.token, hardwareId: "hw-cost-live", model: "Pixel 8", manufacturer: "Google", agentVersion: "1.2.0" })
    expect(response.status).toBe(201)
    const enrolled = response.body as Enrolled
    const socket = await DeviceSocket.open(`${planeUrl.replace(/^http/, "ws")}/v1/device/ws`, enrolled.ticket)
    await socket.waitFor((f) => f.type === "welcome")
    socket.send(heartbeat(1, { intervalS: 2, wakeups: 3, txBytes: 1840, reconnects: 1 }))
    socket.send(heartbeat(2, { intervalS: 4, wakeups: 1, txBytes: 900 }))
    await socket.waitFor((f) => f.type === "ack" && f.seq === 2)
    socket.close()
    const cost = await waitFor(async () => {
      const body = await series(enrolled.deviceId, "bucketSeconds=60")
      return body.agentCost?.samples === 2 ? body.agentCost : undefined
    })
    expect(cost).toMatchObject({ intervalS: 4, samples: 2, wakeups: 4, txBytes: 2740, reconnects: 1 })
  })
})
