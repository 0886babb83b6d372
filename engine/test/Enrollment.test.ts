import { SqlClient } from "@effect/sql"
import { Duration, Effect, Option } from "effect"
import WebSocket from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Enrollment } from "../src/Enrollment.js"
import { makeTickets, Tickets } from "../src/Tickets.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, DeviceSocket, enrol, openDatabase, postJson, startEngine, type TestEngine } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let engine: TestEngine

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  // The ticket key must come from engine_keys: the expired-ticket test signs with it.
  engine = await startEngine(database, { ticketKey: Option.none() })
})

afterAll(async () => {
  await engine?.dispose()
  await releaseDatabase?.()
})

const query = <A extends object>(text: string, ...params: Array<unknown>) =>
  engine.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, params)))

const enrolRaw = (body: unknown) => postJson(`${engine.url}/v1/enroll`, body)

/** Opens a socket (ticket in the header) and says whether the engine welcomed it. */
const connect = async (ticket: string) => {
  const socket = await DeviceSocket.open(engine.wsUrl, ticket)
  await socket.waitFor((f) => f.type === "welcome" || f.type === "error")
  return socket
}

/** The status and typed body with which the engine refuses a WebSocket upgrade. */
const refusedUpgrade = (ticket: string) =>
  new Promise<{ status: number; body: any }>((resolve, reject) => {
    const socket = new WebSocket(engine.wsUrl, { headers: { authorization: `Bearer ${ticket}` } })
    socket.once("open", () => reject(new Error("upgrade was accepted")))
    socket.once("error", () => {})
    socket.once("unexpected-response", (_req, res) => {
      let text = ""
      res.on("data", (chunk: Buffer) => (text += chunk.toString()))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
    })
  })

describe("enrollment tokens", () => {
  it("twenty devices racing a single-use token: one enrols, nineteen get 410 TOKEN_EXHAUSTED", async () => {
    const token = await createToken(engine, 1)
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => enrolRaw({ token: token.token, hardwareId: `hw-race-${i}` }))
    )
    const statuses = responses.map((r) => r.status).sort()
    expect(statuses).toEqual([201, ...Array<number>(19).fill(410)])
    expect(new Set(responses.filter((r) => r.status === 410).map((r) => r.body.error.code))).toEqual(new Set(["TOKEN_EXHAUSTED"]))
    const [row] = await query<{ uses: number }>("select uses from enrollment_tokens where id = $1", token.id)
    expect(row?.uses).toBe(1)
    const devices = await query<{ id: string }>("select id from devices where enrollment_token_id = $1", token.id)
    expect(devices.map((d) => d.id)).toEqual([responses.find((r) => r.status === 201)!.body.deviceId])
  })

  it("a token with three uses enrols exactly three of five concurrent devices", async () => {
    const token = await createToken(engine, 3)
    const responses = await Promise.all(
      Array.from({ length: 5 }, (_, i) => enrolRaw({ token: token.token, hardwareId: `hw-three-${i}` }))
    )
    expect(responses.map((r) => r.status).sort()).toEqual([201, 201, 201, 410, 410])
    const [row] = await query<{ uses: number; devices: string }>(
      "select uses, (select count(*) from devices where enrollment_token_id = $1) as devices from enrollment_tokens where id = $1",
      token.id
    )
    expect(row).toEqual({ uses: 3, devices: "3" })
  })

  it("an expired token is refused with 410 TOKEN_EXPIRED", async () => {
    const token = await createToken(engine, 1, Duration.millis(1))
    await new Promise((resolve) => setTimeout(resolve, 20))
    const response = await enrolRaw({ token: token.token, hardwareId: "hw-expired" })
    expect([response.status, response.body.error.code]).toEqual([410, "TOKEN_EXPIRED"])
  })

  it("a revoked token is refused with 410 TOKEN_EXHAUSTED saying it was revoked", async () => {
    const token = await createToken(engine, 5)
    expect(await engine.run(Effect.flatMap(Enrollment, (e) => e.revokeToken(token.id)))).toBe(true)
    const response = await enrolRaw({ token: token.token, hardwareId: "hw-revoked" })
    expect(response.status).toBe(410)
    expect(response.body.error).toMatchObject({ code: "TOKEN_EXHAUSTED", message: expect.stringMatching(/revoked/) })
  })

  it("a wrong secret and a malformed token are refused with 401 TOKEN_INVALID", async () => {
    const token = await createToken(engine, 5)
    const wrongSecret = `${token.id}.${"A".repeat(43)}`
    for (const candidate of [wrongSecret, "not-a-token", `${token.id}.short`]) {
      const response = await enrolRaw({ token: candidate, hardwareId: "hw-invalid" })
      expect([response.status, response.body.error.code]).toEqual([401, "TOKEN_INVALID"])
    }
    const [row] = await query<{ uses: number }>("select uses from enrollment_tokens where id = $1", token.id)
    expect(row?.uses).toBe(0)
  })

  it("a body that is not an enrol request, or has a NUL byte in hardwareId, is refused with 400 BAD_REQUEST", async () => {
    const token = await createToken(engine, 5)
    const bodies: Array<unknown> = ["{", { token: token.token }, { token: token.token, hardwareId: "" }, { token: token.token, hardwareId: "hw\u0000nul" }]
    for (const body of bodies) {
      const response = await enrolRaw(body)
      expect([response.status, response.body.error.code]).toEqual([400, "BAD_REQUEST"])
    }
    expect((await enrolRaw({ token: token.token, hardwareId: "hw\u0000nul" })).body.error.message).toMatch(/hardwareId/)
  })

  it("stores only argon2id hashes of the device secret and the token secret", async () => {
    const token = await createToken(engine, 1)
    const device = await enrol(engine, token.token, "hw-hashed")
    const [row] = await query<{ device_hash: string; token_hash: string }>(
      `select d.secret_hash as device_hash, t.secret_hash as token_hash
       from devices d join enrollment_tokens t on t.id = d.enrollment_token_id where d.id = $1`,
      device.deviceId
    )
    const tokenSecret = token.token.split(".")[1]!
    expect(row!.device_hash).toMatch(/^\$argon2id\$/)
    expect(row!.device_hash).not.toContain(device.deviceSecret)
    expect(row!.token_hash).toMatch(/^\$argon2id\$/)
    expect(row!.token_hash).not.toContain(tokenSecret)
  })
})

describe("device credentials", () => {
  it("re-enrolling a hardware id keeps the device id, bumps the generation and voids every older ticket", async () => {
    const first = await enrol(engine, (await createToken(engine)).token, "hw-again")
    const oldSocket = await connect(first.ticket)
    expect(oldSocket.frames[0]?.type).toBe("welcome")

    const second = await enrol(engine, (await createToken(engine)).token, "hw-again")
    expect(second).toMatchObject({ deviceId: first.deviceId, reenrolled: true })
    const [row] = await query<{ credential_generation: number }>("select credential_generation from devices where id = $1", first.deviceId)
    expect(row?.credential_generation).toBe(2)

    // The live socket on the old ticket is told and closed.
    expect((await oldSocket.waitFor((f) => f.type === "error")).code).toBe("TICKET_INVALID")
    expect((await oldSocket.waitForClose()).code).toBe(4001)

    // A new connection on the old ticket is refused without a welcome.
    const stale = await DeviceSocket.open(engine.wsUrl, first.ticket)
    expect((await stale.waitForClose()).code).toBe(4001)
    expect(stale.frames.map((f) => [f.type, f.code])).toEqual([["error", "TICKET_INVALID"]])

    const fresh = await connect(second.ticket)
    expect(fresh.frames[0]).toMatchObject({ type: "welcome", deviceId: first.deviceId })
    fresh.close()

    const events = await query<{ kind: string }>("select kind from device_events where device_id = $1 and kind in ('enrolled', 'reenrolled') order by id", first.deviceId)
    expect(events.map((e) => e.kind)).toEqual(["enrolled", "reenrolled"])
  })

  it("renews a ticket over HTTP with the device secret; a wrong secret and an unknown device get the same 401", async () => {
    const device = await enrol(engine, (await createToken(engine)).token, "hw-renew-http")
    const renewed = await postJson(`${engine.url}/v1/device/ticket`, { deviceId: device.deviceId, deviceSecret: device.deviceSecret })
    expect(renewed.status).toBe(200)
    const socket = await connect(renewed.body.ticket)
    expect(socket.frames[0]).toMatchObject({ type: "welcome", deviceId: device.deviceId })
    socket.close()

    const wrongSecret = await postJson(`${engine.url}/v1/device/ticket`, { deviceId: device.deviceId, deviceSecret: "x".repeat(43) })
    const unknown = await postJson(`${engine.url}/v1/device/ticket`, { deviceId: "dev_000000000000000000000000", deviceSecret: device.deviceSecret })
    expect([wrongSecret.status, wrongSecret.body.error.code]).toEqual([401, "CREDENTIALS_INVALID"])
    expect(unknown).toMatchObject({ status: wrongSecret.status, body: wrongSecret.body })
  })

  it("refuses an expired ticket: close 4002 when sent in hello, 401 TICKET_EXPIRED at upgrade", async () => {
    const device = await enrol(engine, (await createToken(engine)).token, "hw-expired-ticket")
    const [key] = await query<{ secret: Uint8Array }>("select secret from engine_keys where name = 'ticket'")
    const expired = makeTickets(Buffer.from(key!.secret), -60_000).issue(device.deviceId, 1).ticket
    // Same key: the engine would accept this ticket were it not expired.
    const live = makeTickets(Buffer.from(key!.secret), 60_000).issue(device.deviceId, 1).ticket
    expect(await engine.run(Effect.map(Tickets, (t) => t.verify(live, Date.now())._tag))).toBe("Right")

    const socket = await DeviceSocket.open(engine.wsUrl)
    socket.send({ type: "hello", v: 1, ticket: expired })
    expect((await socket.waitForClose()).code).toBe(4002)
    expect(socket.frames.map((f) => [f.type, f.code])).toEqual([["error", "TICKET_EXPIRED"]])

    const refused = await refusedUpgrade(expired)
    expect([refused.status, refused.body.error.code]).toEqual([401, "TICKET_EXPIRED"])
  })

  it("a ticket renewed over the socket opens a new connection", async () => {
    const device = await enrol(engine, (await createToken(engine)).token, "hw-renew-ws")
    const socket = await connect(device.ticket)
    socket.send({ type: "renew_ticket" })
    const issued = await socket.waitFor((f) => f.type === "ticket")
    expect(issued.expiresAt).toBeGreaterThanOrEqual(device.ticketExpiresAt)
    socket.close()
    const again = await connect(issued.ticket)
    expect(again.frames[0]).toMatchObject({ type: "welcome", deviceId: device.deviceId })
    again.close()
  })
})

describe("enrollment rate limit", () => {
  it("answers the fourth request a minute from one address with 429 RATE_LIMITED and Retry-After", async () => {
    const limited = await startEngine(database, { enrollRatePerMinute: 3 })
    try {
      const responses = []
      // Bad bodies are enough: the limit is checked before the body is read.
      for (let i = 0; i < 5; i++) responses.push(await postJson(`${limited.url}/v1/enroll`, {}))
      expect(responses.map((r) => r.status)).toEqual([400, 400, 400, 429, 429])
      expect(responses[3]!.body.error.code).toBe("RATE_LIMITED")
      expect(Number(responses[3]!.headers.get("retry-after"))).toBeGreaterThan(0)
    } finally {
      await limited.dispose()
    }
  })
})
