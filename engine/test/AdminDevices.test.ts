/**
 * The devices group of the admin API against a real engine core and PostgreSQL: live devices
 * connected through the device plane (their state comes from the actors), others only in the
 * database (state from their rows and latest heartbeat); filters, sorts, cursor paging, CSV,
 * changes with their audit rows, retirement closing the socket, heartbeat series, events, the
 * fleet summary; and the commands group driven over HTTP.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DevicePlane } from "../src/DevicePlane.js"
import { Enrollment } from "../src/Enrollment.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { ApiClient, signedIn, startAdmin, type TestAdmin, waitFor } from "./support/TestAdmin.js"
import { DeviceSocket, type Enrolled, heartbeat, openDatabase, postJson } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin
let planeUrl: string
let owner: ApiClient
let adminUser: ApiClient
let viewer: ApiClient

const NOW = Date.now()
const HOUR = 3_600_000
const STORED = 45
const LIVE_BATTERIES = [10, 30, 50, 70, 90]

const storedId = (i: number) => `dev_db${String(i).padStart(4, "0")}${"a".repeat(18)}`
const storedName = (i: number) => (i === 0 ? '=HYPERLINK("http://evil.example")' : i === 1 ? 'Doe, "Jr"' : `device-${String(i).padStart(2, "0")}`)
const storedBattery = (i: number) => (i * 7) % 100
const storedCharging = (i: number) => i % 4 === 0
const storedAgent = (i: number) => (i < 20 ? "1.0.0" : i < 35 ? "1.1.0" : "2.0.0")
const storedTags = (i: number) => (i % 3 === 0 ? ["kiosk", "floor-1"] : i % 3 === 1 ? ["warehouse"] : [])
const storedLastSeen = (i: number) => new Date(NOW - (i + 1) * HOUR)

interface LiveDevice {
  readonly enrolled: Enrolled
  readonly socket: DeviceSocket
}
const live: Array<LiveDevice> = []

const sql = <A extends object>(run: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
  admin.run(Effect.flatMap(SqlClient.SqlClient, run)) as Promise<ReadonlyArray<A>>

const enrolLive = async (hardwareId: string, battery: number): Promise<LiveDevice> => {
  const token = await admin.run(Effect.flatMap(Enrollment, (enrollment) => enrollment.createToken({ expiresIn: Duration.hours(1), maxUses: 1, label: "test" })))
  const response = await postJson(`${planeUrl}/v1/enroll`, { token: token.token, hardwareId, model: "Live Model", manufacturer: "Acme", agentVersion: "3.0.0" })
  expect(response.status).toBe(201)
  const enrolled = response.body as Enrolled
  const socket = await DeviceSocket.open(`${planeUrl.replace(/^http/, "ws")}/v1/device/ws`, enrolled.ticket)
  await socket.waitFor((f) => f.type === "welcome")
  socket.send(heartbeat(1, { batteryPct: battery, agentVersion: "3.0.0", foregroundApp: "com.example.live" }))
  await socket.waitFor((f) => f.type === "ack" && f.seq === 1)
  return { enrolled, socket }
}

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  admin = await startAdmin(database)
  planeUrl = (await admin.run(DevicePlane)).url
  owner = (await signedIn(admin, "owner")).client
  adminUser = (await signedIn(admin, "admin")).client
  viewer = (await signedIn(admin, "viewer")).client
  const ids = Array.from({ length: STORED }, (_, i) => i)
  await sql((sql) =>
    sql`insert into devices (id, hardware_id, name, model, manufacturer, os_version, agent_version, tags, enrolled_at, secret_hash, hmac_key,
        presence, presence_reason, presence_since, last_seen_at)
      select u.id, u.hw, u.name, u.model, 'Maker', '14', u.agent, coalesce(string_to_array(nullif(u.tags, ''), ','), '{}'), to_timestamp(u.enrolled / 1000.0), 'x', '\\x00'::bytea,
        'offline', 'no heartbeat for 75s', to_timestamp(u.seen / 1000.0), to_timestamp(u.seen / 1000.0)
      from unnest(${ids.map(storedId)}::text[], ${ids.map((i) => `hw-db-${i}`)}::text[], ${ids.map(storedName)}::text[],
        ${ids.map((i) => (i % 2 === 1 ? "Pixel 8" : "Galaxy Tab"))}::text[], ${ids.map(storedAgent)}::text[], ${ids.map((i) => storedTags(i).join(","))}::text[],
        ${ids.map((i) => NOW - (100 - i) * 24 * HOUR)}::float8[], ${ids.map((i) => storedLastSeen(i).getTime())}::float8[])
        as u(id, hw, name, model, agent, tags, enrolled, seen)`
  )
  await sql((sql) =>
    sql`insert into heartbeats (device_id, seq, recorded_at, device_ts, battery_pct, charging, mem_free_mb, mem_total_mb, storage_free_mb, network,
        signal_dbm, foreground_app, agent_version, uptime_s)
      select u.id, 1, to_timestamp(u.at / 1000.0), to_timestamp(u.at / 1000.0), u.battery, u.charging, 1000, 4000, 20000, 2, -70, 'com.example.stored', u.agent, 60
      from unnest(${ids.map(storedId)}::text[], ${ids.map((i) => storedLastSeen(i).getTime() - 60_000)}::float8[], ${ids.map(storedBattery)}::int[],
        ${ids.map(storedCharging)}::bool[], ${ids.map(storedAgent)}::text[]) as u(id, at, battery, charging, agent)`
  )
  for (const [i, battery] of LIVE_BATTERIES.entries()) live.push(await enrolLive(`hw-live-${i}`, battery))
})

afterAll(async () => {
  for (const device of live) device.socket.close()
  await admin?.dispose()
  await releaseDatabase?.()
})

const list = async (query: string, client: ApiClient = viewer) => {
  const response = await client.get(`/api/v1/devices?${query}`)
  expect(response.status, response.text).toBe(200)
  return response.body as { items: Array<any>; nextCursor: string | null }
}

const idsOf = (query: string) => list(`${query}&limit=500`).then((page) => page.items.map((item) => item.id as string).sort())
const storedWhere = (predicate: (i: number) => boolean) => Array.from({ length: STORED }, (_, i) => i).filter(predicate).map(storedId)
const liveIds = () => live.map((device) => device.enrolled.deviceId)

describe("device list", () => {
  it("shows live devices with the actor's state and stored ones with their latest stored heartbeat", async () => {
    const page = await list("limit=500")
    expect(page.items).toHaveLength(STORED + live.length)
    expect(page.nextCursor).toBeNull()
    const connected = page.items.find((item) => item.id === live[2]!.enrolled.deviceId)
    expect(connected).toMatchObject({
      presence: "connected",
      model: "Live Model",
      manufacturer: "Acme",
      agentVersion: "3.0.0",
      heartbeat: { batteryPct: 50, charging: false, network: "wifi", signalDbm: -60, foregroundApp: "com.example.live", memTotalMb: 4000 }
    })
    expect(Date.parse(connected.lastSeenAt)).toBeGreaterThanOrEqual(NOW - 1000)
    const stored = page.items.find((item) => item.id === storedId(3))
    expect(stored).toMatchObject({
      name: "device-03",
      hardwareId: "hw-db-3",
      tags: ["kiosk", "floor-1"],
      presence: "offline",
      presenceReason: "no heartbeat for 75s",
      agentVersion: "1.0.0",
      heartbeat: { batteryPct: 21, charging: false, network: "cellular", foregroundApp: "com.example.stored" }
    })
    expect(Date.parse(stored.lastSeenAt)).toBe(storedLastSeen(3).getTime())
  })

  it("filters by presence, tag, battery, last seen and text", async () => {
    expect(await idsOf("presence=connected")).toEqual(liveIds().sort())
    expect(await idsOf("presence=offline")).toEqual(storedWhere(() => true).sort())
    expect(await idsOf("presence=grace")).toEqual([])
    expect(await idsOf("tag=kiosk")).toEqual(storedWhere((i) => i % 3 === 0).sort())
    expect(await idsOf("batteryBelow=20")).toEqual([...storedWhere((i) => storedBattery(i) < 20), live[0]!.enrolled.deviceId].sort())
    expect(await idsOf(`lastSeenBefore=${new Date(NOW - 10.5 * HOUR).toISOString()}`)).toEqual(storedWhere((i) => i >= 10).sort())
    expect(await idsOf(`lastSeenAfter=${new Date(NOW - 2.5 * HOUR).toISOString()}`)).toEqual([...storedWhere((i) => i < 2), ...liveIds()].sort())
    expect(await idsOf("q=PIXEL")).toEqual(storedWhere((i) => i % 2 === 1).sort())
    expect(await idsOf("q=hw-db-1")).toEqual(storedWhere((i) => i === 1 || (i >= 10 && i <= 19)).sort())
    expect(await idsOf("q=dev_db0004")).toEqual([storedId(4)])
    expect(await idsOf("q=%25")).toEqual([])
    expect(await idsOf("tag=kiosk&batteryBelow=50&q=galaxy")).toEqual(storedWhere((i) => i % 3 === 0 && storedBattery(i) < 50 && i % 2 === 0).sort())
  })

  const keyOf: Record<string, (item: any) => number | string> = {
    name: (item) => item.name ?? "",
    lastSeen: (item) => (item.lastSeenAt === null ? -1 : Date.parse(item.lastSeenAt)),
    battery: (item) => item.heartbeat?.batteryPct ?? -1,
    enrolledAt: (item) => Date.parse(item.enrolledAt)
  }

  it.each(["name", "lastSeen", "battery", "enrolledAt"].flatMap((sort) => [[sort, "asc"], [sort, "desc"]] as const))(
    "sorts by %s %s, and cursor pages of 7 walk the same order without gaps or repeats",
    async (sort, order) => {
      const all = (await list(`sort=${sort}&order=${order}&limit=500`)).items
      expect(all).toHaveLength(STORED + live.length)
      const sign = order === "asc" ? 1 : -1
      for (let i = 1; i < all.length; i++) {
        const [a, b] = [keyOf[sort]!(all[i - 1]), keyOf[sort]!(all[i])]
        // Names are compared by the database's collation: check the plain ones only.
        if (sort === "name" && !(String(a).startsWith("device-") && String(b).startsWith("device-"))) continue
        if (a === b) expect(sign * all[i - 1].id.localeCompare(all[i].id)).toBeLessThan(0)
        else expect(sign * (a < b ? -1 : 1)).toBe(-1)
      }
      const walked: Array<string> = []
      let cursor: string | null = null
      let pages = 0
      do {
        const page: { items: Array<any>; nextCursor: string | null } = await list(
          `sort=${sort}&order=${order}&limit=7${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`
        )
        walked.push(...page.items.map((item) => item.id))
        cursor = page.nextCursor
        pages++
      } while (cursor !== null)
      expect(pages).toBe(Math.ceil(all.length / 7))
      expect(walked).toEqual(all.map((item) => item.id))
    }
  )

  it("refuses bad filters with 400 ValidationError", async () => {
    for (const query of ["presence=asleep", "limit=501", "limit=0", "batteryBelow=abc", "sort=color", "cursor=bm9wZQ", "lastSeenBefore=yesterday"]) {
      const response = await viewer.get(`/api/v1/devices?${query}`)
      expect([query, response.status, response.body?._tag]).toEqual([query, 400, "ValidationError"])
    }
    // A cursor of one sort is refused by another.
    const page = await list("sort=battery&limit=3")
    const crossed = await viewer.get(`/api/v1/devices?sort=name&cursor=${encodeURIComponent(page.nextCursor!)}`)
    expect(crossed.status).toBe(400)
  })
})

describe("CSV export", () => {
  it("exports the filtered list as RFC 4180 CSV with formula cells neutralised", async () => {
    const response = await viewer.get("/api/v1/devices/export.csv?tag=kiosk&sort=enrolledAt")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^text\/csv/)
    const lines = response.text.split("\r\n")
    expect(lines[0]).toBe(
      "id,name,hardwareId,model,manufacturer,osVersion,agentVersion,tags,presence,presenceReason,presenceSince,lastSeenAt,batteryPct,charging,memFreeMb,memTotalMb,storageFreeMb,network,signalDbm,foregroundApp"
    )
    expect(lines.at(-1)).toBe("")
    expect(lines).toHaveLength(1 + 15 + 1)
    // Device 0 (oldest enrolment, tag kiosk) is named =HYPERLINK("..."): quoted, and prefixed so no spreadsheet runs it.
    expect(lines[1]).toMatch(new RegExp(`^${storedId(0)},"'=HYPERLINK\\(""http://evil.example""\\)",hw-db-0,Galaxy Tab,Maker,14,1.0.0,kiosk;floor-1,offline,`))
    expect(lines[1]).toMatch(/,0,true,1000,4000,20000,cellular,-70,com\.example\.stored$/)
    const quoted = await viewer.get(`/api/v1/devices/export.csv?q=${encodeURIComponent("Doe")}`)
    expect(quoted.text.split("\r\n")[1]).toMatch(new RegExp(`^${storedId(1)},"Doe, ""Jr""",hw-db-1,`))
  })
})

describe("fleet summary", () => {
  it("counts presence, low battery and agent versions over live and stored devices", async () => {
    const response = await viewer.get("/api/v1/fleet/summary")
    expect(response.status).toBe(200)
    const stored = Array.from({ length: STORED }, (_, i) => i)
    const lowStored = stored.filter((i) => storedBattery(i) < 20 && !storedCharging(i)).length
    expect(response.body).toEqual({
      total: STORED + live.length,
      byPresence: { connected: live.length, overdue: 0, grace: 0, offline: STORED },
      lowBattery: lowStored + 1,
      agentVersions: [
        { version: "1.0.0", devices: 20 },
        { version: "1.1.0", devices: 15 },
        { version: "2.0.0", devices: 10 },
        { version: "3.0.0", devices: 5 }
      ],
      retired: 0
    })
  })
})

describe("one device", () => {
  it("answers 404 for an unknown device on every device route", async () => {
    const unknown = "dev_zzzzzzzzzzzzzzzzzzzzzzzz"
    for (const response of [
      await viewer.get(`/api/v1/devices/${unknown}`),
      await viewer.get(`/api/v1/devices/${unknown}/heartbeats`),
      await viewer.get(`/api/v1/devices/${unknown}/events`),
      await adminUser.request("PATCH", `/api/v1/devices/${unknown}`, { name: "x" }),
      await adminUser.post(`/api/v1/devices/${unknown}/retire`)
    ]) {
      expect([response.status, response.body.code]).toEqual([404, "NOT_FOUND"])
    }
  })

  it("renames and retags a device, audited; a key needs devices:write", async () => {
    const id = live[0]!.enrolled.deviceId
    const response = await adminUser.request("PATCH", `/api/v1/devices/${id}`, { name: "  Front desk ", tags: ["lobby", "kiosk", "lobby"] })
    expect(response.status, response.text).toBe(200)
    expect(response.body).toMatchObject({ id, name: "Front desk", tags: ["lobby", "kiosk"], presence: "connected" })
    expect((await viewer.get(`/api/v1/devices/${id}`)).body).toMatchObject({ name: "Front desk", tags: ["lobby", "kiosk"] })
    const [audit] = await sql<{ outcome: string; detail: any; actor_kind: string }>(
      (sql) => sql`select outcome, detail, actor_kind from audit_log where action = 'device.update' and target_id = ${id}`
    )
    expect(audit).toEqual({ outcome: "success", actor_kind: "user", detail: { name: "Front desk", tags: ["lobby", "kiosk"] } })
    expect((await adminUser.request("PATCH", `/api/v1/devices/${id}`, { tags: ["has space"] })).status).toBe(400)

    const keyFor = async (scopes: Array<string>) =>
      ApiClient.fresh(admin).withKey((await owner.post("/api/v1/api-keys", { name: scopes.join(" "), scopes })).body.key)
    const reader = await keyFor(["read"])
    expect((await reader.request("PATCH", `/api/v1/devices/${id}`, { name: "nope" })).body.code).toBe("INSUFFICIENT_SCOPE")
    const writer = await keyFor(["devices:write"])
    const cleared = await writer.request("PATCH", `/api/v1/devices/${id}`, { name: null })
    expect([cleared.status, cleared.body.name, cleared.body.tags]).toEqual([200, null, ["lobby", "kiosk"]])
  })

  it("returns raw heartbeats in a range, or averages per bucket, and refuses more than 5,000 points", async () => {
    const id = storedId(5)
    const base = Math.floor((NOW - 3 * HOUR) / 300_000) * 300_000
    await sql((sql) =>
      sql`insert into heartbeats (device_id, seq, recorded_at, device_ts, battery_pct, charging, mem_free_mb, mem_total_mb, storage_free_mb, network, agent_version, uptime_s)
        select ${id}, 10 + k, to_timestamp((${base}::float8 + k * 60000) / 1000.0), now(), 50 + k, false, 100 * k, 4000, 1000, 1, '1.0.0', 1
        from generate_series(0, 9) as k`
    )
    const range = `from=${new Date(base).toISOString()}&to=${new Date(base + 600_000).toISOString()}`
    const raw = await viewer.get(`/api/v1/devices/${id}/heartbeats?${range}`)
    expect(raw.status, raw.text).toBe(200)
    expect(raw.body.bucketSeconds).toBeNull()
    expect(raw.body.points.map((p: any) => p.batteryPct)).toEqual([50, 51, 52, 53, 54, 55, 56, 57, 58, 59])
    expect(raw.body.points[0]).toMatchObject({ seq: 10, network: "wifi", signalDbm: null, recordedAt: new Date(base).toISOString() })
    const buckets = await viewer.get(`/api/v1/devices/${id}/heartbeats?${range}&bucketSeconds=300`)
    expect(buckets.body.points).toEqual([])
    expect(buckets.body.buckets).toEqual([
      { bucketStart: new Date(base).toISOString(), samples: 5, batteryPct: 52, memFreeMb: 200, storageFreeMb: 1000, signalDbm: null },
      { bucketStart: new Date(base + 300_000).toISOString(), samples: 5, batteryPct: 57, memFreeMb: 700, storageFreeMb: 1000, signalDbm: null }
    ])
    // Defaults: the last 24 hours, which holds the seeded heartbeat too.
    expect((await viewer.get(`/api/v1/devices/${id}/heartbeats`)).body.points).toHaveLength(11)

    const tooFine = await viewer.get(`/api/v1/devices/${id}/heartbeats?from=${new Date(NOW - 2 * HOUR).toISOString()}&to=${new Date(NOW).toISOString()}&bucketSeconds=1`)
    expect([tooFine.status, tooFine.body._tag]).toEqual([400, "ValidationError"])
    const busy = storedId(6)
    await sql((sql) =>
      sql`insert into heartbeats (device_id, seq, recorded_at, device_ts, battery_pct, charging, mem_free_mb, mem_total_mb, storage_free_mb, network, agent_version, uptime_s)
        select ${busy}, 10 + k, now() - interval '1 second' * k, now(), 50, false, 1, 1, 1, 1, '1.0.0', 1 from generate_series(1, 5001) as k`
    )
    expect((await viewer.get(`/api/v1/devices/${busy}/heartbeats`)).status).toBe(400)
    expect((await viewer.get(`/api/v1/devices/${busy}/heartbeats?bucketSeconds=60`)).body.buckets.length).toBeGreaterThan(80)
    const backwards = await viewer.get(`/api/v1/devices/${id}/heartbeats?from=${new Date(NOW).toISOString()}&to=${new Date(NOW - HOUR).toISOString()}`)
    expect(backwards.status).toBe(400)
  })

  it("lists a device's events newest first: enrolment and presence transitions with reasons", async () => {
    const id = live[1]!.enrolled.deviceId
    const events = await waitFor(async () => {
      const response = await viewer.get(`/api/v1/devices/${id}/events`)
      return response.body.length >= 2 ? (response.body as Array<any>) : undefined
    })
    expect(events.map((e) => [e.kind, e.presence, e.reason])).toEqual([
      ["presence", "connected", "connected"],
      ["enrolled", null, "enrolled"]
    ])
    const older = await viewer.get(`/api/v1/devices/${id}/events?before=${encodeURIComponent(events[0].at)}&limit=1`)
    expect(older.body.map((e: any) => e.kind)).toEqual(["enrolled"])
  })

  it("retiring closes the live socket with 4003, is audited, and the device can no longer connect", async () => {
    const { enrolled, socket } = live[4]!
    const response = await adminUser.post(`/api/v1/devices/${enrolled.deviceId}/retire`)
    expect(response.status, response.text).toBe(200)
    expect(response.body.retiredAt).not.toBeNull()
    expect(await socket.waitForClose()).toMatchObject({ code: 4003 })
    expect(socket.frames.at(-1)).toMatchObject({ type: "error", code: "DEVICE_RETIRED" })
    const device = (await viewer.get(`/api/v1/devices/${enrolled.deviceId}`)).body
    expect(device).toMatchObject({ presence: "offline", presenceReason: "retired" })

    const again = await DeviceSocket.open(`${planeUrl.replace(/^http/, "ws")}/v1/device/ws`, enrolled.ticket)
    expect((await again.waitForClose()).code).toBe(4003)
    const ticket = await postJson(`${planeUrl}/v1/device/ticket`, { deviceId: enrolled.deviceId, deviceSecret: enrolled.deviceSecret })
    expect([ticket.status, ticket.body.error.code]).toEqual([403, "DEVICE_RETIRED"])

    const [row] = await sql<{ credential_generation: number }>((sql) => sql`select credential_generation from devices where id = ${enrolled.deviceId}`)
    expect(row!.credential_generation).toBe(2)
    const [audit] = await sql<{ outcome: string }>((sql) => sql`select outcome from audit_log where action = 'device.retire' and target_id = ${enrolled.deviceId}`)
    expect(audit!.outcome).toBe("success")
    expect(await idsOf("q=hw-live-4")).toEqual([])
    expect(await idsOf("q=hw-live-4&includeRetired=true")).toEqual([enrolled.deviceId])
    expect((await viewer.get("/api/v1/fleet/summary")).body).toMatchObject({ total: STORED + live.length - 1, retired: 1 })
    const twice = await adminUser.post(`/api/v1/devices/${enrolled.deviceId}/retire`)
    expect([twice.status, twice.body._tag]).toEqual([409, "Conflict"])
    const events = await waitFor(async () => {
      const body = (await viewer.get(`/api/v1/devices/${enrolled.deviceId}/events`)).body as Array<any>
      return body.some((e) => e.kind === "retired") ? body : undefined
    })
    expect(events.find((e) => e.presence === "offline")?.reason).toBe("retired")
  })
})

describe("commands over HTTP", () => {
  it("a key with commands:send queues a command the device receives; retries are idempotent; bad params are 422; viewers 403", async () => {
    const { enrolled, socket } = live[1]!
    const key = ApiClient.fresh(admin).withKey((await owner.post("/api/v1/api-keys", { name: "sender", scopes: ["commands:send"] })).body.key)
    const body = { type: "lock", params: { message: "Back at 9" }, idempotencyKey: "lock-once" }
    const created = await key.post(`/api/v1/devices/${enrolled.deviceId}/commands`, body)
    expect(created.status, created.text).toBe(201)
    expect(created.body).toMatchObject({ created: true, command: { deviceId: enrolled.deviceId, type: "lock", status: "queued", createdBy: expect.stringMatching(/^api_key:/) } })
    const id = created.body.command.id as string
    const frame = await socket.waitFor((f) => f.type === "command" && f.id === id)
    expect(frame).toMatchObject({ commandType: "lock", params: { message: "Back at 9" } })
    const status = await waitFor(async () => {
      const response = await viewer.get(`/api/v1/commands/${id}`)
      return response.body.status === "sent" ? response.body : undefined
    })
    expect(status).toMatchObject({ id, sentVia: "socket", attempts: 1 })

    const retry = await key.post(`/api/v1/devices/${enrolled.deviceId}/commands`, body)
    expect([retry.status, retry.body.created, retry.body.command.id]).toEqual([201, false, id])
    const invalid = await key.post(`/api/v1/devices/${enrolled.deviceId}/commands`, { type: "lock", params: { bogus: 1 } })
    expect([invalid.status, invalid.body._tag, invalid.body.code]).toEqual([422, "CommandError", "INVALID_COMMAND"])
    const refused = await viewer.post(`/api/v1/devices/${enrolled.deviceId}/commands`, { type: "ping" })
    expect([refused.status, refused.body.code]).toEqual([403, "INSUFFICIENT_ROLE"])
  })
})
