import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DeviceSocket, enrol, eventually, heartbeat, openDatabase, postJson, startEngine, createToken, type TestEngine } from "./support/TestEngine.js"
import type { TestDatabase } from "./support/TestDatabase.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let engine: TestEngine

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  engine = await startEngine(database, { authTimeout: (await import("effect")).Duration.seconds(1) })
})

afterAll(async () => {
  await engine?.dispose()
  await releaseDatabase?.()
})

const rowsOf = (deviceId: string) =>
  engine.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ seq: string }>`select seq from heartbeats where device_id = ${deviceId} order by seq`)
  ).then((rows) => rows.map((row) => Number(row.seq)))

const enrolled = async (hardwareId: string) => {
  const token = await createToken(engine)
  return enrol(engine, token.token, hardwareId)
}

describe("device plane", () => {
  it("a device enrols, connects with its ticket, and every acked heartbeat lands in PostgreSQL", async () => {
    const device = await enrolled("hw-happy")
    expect(device.deviceId).toMatch(/^dev_/)
    const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
    const welcome = await socket.waitFor((f) => f.type === "welcome")
    expect(welcome).toMatchObject({ deviceId: device.deviceId, durableSeq: 0, heartbeatIntervalS: 1 })
    for (let seq = 1; seq <= 5; seq++) socket.send(heartbeat(seq))
    const lastAck = await socket.waitFor((f) => f.type === "ack" && f.seq === 5)
    expect(lastAck.durableSeq).toBeLessThanOrEqual(5)
    expect(await eventually(async () => ((await rowsOf(device.deviceId)).length === 5 ? rowsOf(device.deviceId) : undefined))).toEqual([1, 2, 3, 4, 5])
    // The next ack carries the durable watermark.
    socket.send(heartbeat(6))
    const ack6 = await socket.waitFor((f) => f.type === "ack" && f.seq === 6)
    expect(ack6.durableSeq).toBeGreaterThanOrEqual(5)
    socket.close()
  })

  it("stores the agent's interval and own cost with the heartbeat, and nulls for an agent that sends none", async () => {
    const device = await enrolled("hw-battery-budget")
    const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
    const welcome = await socket.waitFor((f) => f.type === "welcome")
    expect(welcome.heartbeatPolicy).toMatchObject({ chargingS: 1, batteryS: 2 })
    socket.send(heartbeat(1, { intervalS: 2, wakeups: 3, txBytes: 1840, reconnects: 1 }))
    socket.send(heartbeat(2))
    await socket.waitFor((f) => f.type === "ack" && f.seq === 2)
    socket.close()
    const stored = await eventually(async () => {
      const rows = await engine.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql`select seq, interval_s, wakeups, tx_bytes, reconnects from heartbeats where device_id = ${device.deviceId} order by seq`
        )
      )
      return rows.length === 2 ? rows : undefined
    })
    expect(stored).toEqual([
      { seq: "1", interval_s: 2, wakeups: 3, tx_bytes: 1840, reconnects: 1 },
      { seq: "2", interval_s: null, wakeups: null, tx_bytes: null, reconnects: null }
    ])
  })

  it("a resent heartbeat (same seq) is acked again but stored once", async () => {
    const device = await enrolled("hw-dedup")
    const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
    await socket.waitFor((f) => f.type === "welcome")
    socket.send(heartbeat(1))
    socket.send(heartbeat(2))
    socket.send(heartbeat(1, { batteryPct: 5 }))
    socket.send(heartbeat(2))
    await eventually(() => (socket.frames.filter((f) => f.type === "ack").length === 4 ? true : undefined))
    socket.close()
    // Reconnect and resend everything, as an agent does after a restart.
    const again = await DeviceSocket.open(engine.wsUrl, device.ticket)
    const welcome = await again.waitFor((f) => f.type === "welcome")
    expect(welcome.durableSeq).toBeLessThanOrEqual(2)
    again.send(heartbeat(1))
    again.send(heartbeat(2))
    again.send(heartbeat(3))
    await again.waitFor((f) => f.type === "ack" && f.seq === 3)
    expect(await eventually(async () => ((await rowsOf(device.deviceId)).length >= 3 ? rowsOf(device.deviceId) : undefined))).toEqual([1, 2, 3])
    again.close()
  })

  it("authenticates with a hello frame when no header was sent", async () => {
    const device = await enrolled("hw-hello")
    const socket = await DeviceSocket.open(engine.wsUrl)
    socket.send({ type: "hello", v: 1, ticket: device.ticket })
    const welcome = await socket.waitFor((f) => f.type === "welcome")
    expect(welcome.deviceId).toBe(device.deviceId)
    socket.send({ type: "ping", nonce: "n1" })
    expect(await socket.waitFor((f) => f.type === "pong")).toMatchObject({ nonce: "n1" })
    socket.close()
  })

  it("refuses the upgrade with 401 and a typed body when the ticket is forged", async () => {
    const device = await enrolled("hw-forged")
    const forged = device.ticket.slice(0, -3) + (device.ticket.endsWith("AAA") ? "BBB" : "AAA")
    await expect(DeviceSocket.open(engine.wsUrl, forged)).rejects.toThrow(/401/)
    const http = await postJson(`${engine.url}/v1/device/heartbeats`, { heartbeats: [heartbeat(1)] }, { authorization: `Bearer ${forged}` })
    expect(http.status).toBe(401)
    expect(http.body.error.code).toBe("TICKET_INVALID")
  })

  it("closes with 4001 when a bad ticket comes in hello, and when a frame precedes hello", async () => {
    const bad = await DeviceSocket.open(engine.wsUrl)
    bad.send({ type: "hello", v: 1, ticket: "t1.nope" })
    expect((await bad.waitFor((f) => f.type === "error")).code).toBe("TICKET_INVALID")
    expect((await bad.waitForClose()).code).toBe(4001)

    const early = await DeviceSocket.open(engine.wsUrl)
    early.send(heartbeat(1))
    expect((await early.waitFor((f) => f.type === "error")).code).toBe("UNAUTHENTICATED")
    expect((await early.waitForClose()).code).toBe(4001)
  })

  it("closes a socket that never says hello with 4005", async () => {
    const silent = await DeviceSocket.open(engine.wsUrl)
    expect((await silent.waitForClose(5000)).code).toBe(4005)
    expect(silent.frames[0]).toMatchObject({ type: "error", code: "AUTH_TIMEOUT" })
  })

  it("answers malformed and unknown frames with typed errors, keeps the socket, and closes after ten", async () => {
    const device = await enrolled("hw-malformed")
    const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
    await socket.waitFor((f) => f.type === "welcome")
    socket.send("{not json")
    socket.send({ type: "selfdestruct" })
    socket.send(heartbeat(1, { batteryPct: 400 }))
    socket.socket.send(Buffer.from([1, 2, 3]), { binary: true })
    await eventually(() => (socket.frames.filter((f) => f.type === "error").length === 4 ? true : undefined))
    expect(socket.frames.filter((f) => f.type === "error").map((f) => f.code)).toEqual(["BAD_FRAME", "UNKNOWN_TYPE", "BAD_FRAME", "BAD_FRAME"])
    expect(socket.frames.find((f) => f.code === "BAD_FRAME" && /batteryPct/.test(f.message))).toBeDefined()
    // Still usable.
    socket.send(heartbeat(1))
    await socket.waitFor((f) => f.type === "ack" && f.seq === 1)
    for (let i = 0; i < 6; i++) socket.send("[]")
    expect((await socket.waitForClose()).code).toBe(4009)
    expect(await rowsOf(device.deviceId).then(async () => eventually(async () => ((await rowsOf(device.deviceId)).length === 1 ? true : undefined)))).toBe(true)
  })

  it("closes with 1009 on a frame over the size limit", async () => {
    const device = await enrolled("hw-big")
    const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
    await socket.waitFor((f) => f.type === "welcome")
    socket.send(heartbeat(1, { foregroundApp: "x".repeat(20_000) }))
    expect((await socket.waitForClose()).code).toBe(1009)
    expect(socket.frames.at(-1)).toMatchObject({ type: "error", code: "FRAME_TOO_LARGE" })
  })

  it("a second connection of the same device supersedes the first with 4004", async () => {
    const device = await enrolled("hw-twice")
    const first = await DeviceSocket.open(engine.wsUrl, device.ticket)
    await first.waitFor((f) => f.type === "welcome")
    const second = await DeviceSocket.open(engine.wsUrl, device.ticket)
    await second.waitFor((f) => f.type === "welcome")
    expect((await first.waitForClose()).code).toBe(4004)
    second.send(heartbeat(1))
    await second.waitFor((f) => f.type === "ack")
    second.close()
  })

  it("rate-limits a flooding connection with RATE_LIMITED errors", async () => {
    const device = await enrolled("hw-flood")
    const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
    await socket.waitFor((f) => f.type === "welcome")
    for (let i = 0; i < 700; i++) socket.send({ type: "ping" })
    const limited = await socket.waitFor((f) => f.type === "error" && f.code === "RATE_LIMITED")
    expect(limited.retryAfterMs).toBeGreaterThan(0)
    socket.close()
  })

  it("serves the HTTP fallback: heartbeat batches, order check, long-poll", async () => {
    const device = await enrolled("hw-http")
    const auth = { authorization: `Bearer ${device.ticket}` }
    const { type: _t1, ...hb1 } = heartbeat(1)
    const { type: _t2, ...hb2 } = heartbeat(2)
    const ok = await postJson(`${engine.url}/v1/device/heartbeats`, { heartbeats: [hb1, hb2] }, auth)
    expect(ok.status).toBe(200)
    expect(ok.body).toMatchObject({ acked: [1, 2], heartbeatIntervalS: 1 })
    // Engine interval 1 s: the Doze advice is the 900 s floor.
    expect(ok.body.heartbeatPolicy).toEqual({ chargingS: 1, batteryS: 2, meteredS: 4, lowBatteryS: 10, lowBatteryPct: 15, dozeS: 900 })
    const unordered = await postJson(`${engine.url}/v1/device/heartbeats`, { heartbeats: [hb2, hb1] }, auth)
    expect(unordered.status).toBe(400)
    expect(unordered.body.error.code).toBe("BAD_REQUEST")
    const garbage = await postJson(`${engine.url}/v1/device/heartbeats`, "{", auth)
    expect(garbage.status).toBe(400)
    const started = Date.now()
    const poll = await fetch(`${engine.url}/v1/device/messages?waitS=1`, { headers: auth })
    expect(poll.status).toBe(200)
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    expect(await poll.json()).toMatchObject({ messages: [] })
    expect(await eventually(async () => ((await rowsOf(device.deviceId)).length === 2 ? rowsOf(device.deviceId) : undefined))).toEqual([1, 2])
  })

  it("answers unknown routes and methods with typed JSON errors", async () => {
    const missing = await fetch(`${engine.url}/nope`)
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as any).error.code).toBe("NOT_FOUND")
    const wrongMethod = await fetch(`${engine.url}/v1/enroll`)
    expect(wrongMethod.status).toBe(405)
  })
})
