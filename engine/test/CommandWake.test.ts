/**
 * Absent devices are woken through FCM (the real firebase-admin SDK against a local FCM v1
 * server): one wake per attempt, recorded; a rejected token is never used again; after the
 * allowed wake-ups the command is marked unreachable; a woken device gets its command over the socket.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Commands } from "../src/commands/Commands.js"
import { Push } from "../src/push/Push.js"
import { FcmServer, hasOpenssl } from "./support/FcmServer.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, DeviceSocket, enrol, eventually, openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let engine: TestEngine
let fcm: FcmServer

const credential = { getAccessToken: async () => ({ access_token: "test", expires_in: 3600 }) }

beforeAll(async () => {
  if (!hasOpenssl) return
  ;({ database, release } = await openDatabase())
  fcm = await FcmServer.start()
  engine = await startEngine(
    database,
    { wakeRetry: Duration.millis(400), maxWakeups: 2 },
    { push: Push.layerWith({ projectId: "nexmdm-test", credential, httpAgent: fcm.agent() }) }
  )
})

afterAll(async () => {
  await engine?.dispose()
  await fcm?.close()
  await release?.()
})

const query = <A extends object>(text: string, ...params: Array<unknown>) =>
  engine.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, params)))

const absentDevice = async (hardwareId: string, fcmToken: string) => {
  const token = await createToken(engine)
  const enrolled = await enrol(engine, token.token, hardwareId)
  const response = await fetch(`${engine.url}/v1/device/fcm-token`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${enrolled.ticket}` },
    body: JSON.stringify({ token: fcmToken })
  })
  expect(response.status).toBe(200)
  return enrolled
}

const create = (deviceId: string) =>
  engine.run(Effect.flatMap(Commands, (commands) => commands.create({ deviceId, type: "ping", params: {}, createdBy: "test" })))

describe.skipIf(!hasOpenssl)("command wake-ups through FCM", () => {
  it("wakes an absent device with a data-only high-priority message, records it, and delivers once it connects", async () => {
    const enrolled = await absentDevice("hw-wake", "fcm-token-wake")
    const { command } = await create(enrolled.deviceId)
    const [wake] = await eventually(() => {
      const sent = fcm.sendsTo("fcm-token-wake")
      return sent.length >= 1 ? sent : undefined
    })
    expect(wake!.body).toEqual({
      message: {
        token: "fcm-token-wake",
        data: { type: "wake", commandId: command.id, reason: "command (attempt 1)" },
        android: { priority: "high", ttl: "60s", collapse_key: "nexmdm-wake" }
      }
    })
    const recorded = await eventually(async () => {
      const rows = await query<{ outcome: string; message_id: string }>("select outcome, message_id from push_sends where command_id = $1", command.id)
      return rows.length >= 1 ? rows : undefined
    })
    expect(recorded[0]).toMatchObject({ outcome: "Sent" })
    expect(recorded[0]!.message_id).toMatch(/^projects\/nexmdm-test\/messages\//)
    const socket = await DeviceSocket.open(engine.wsUrl, enrolled.ticket)
    await socket.waitFor((f) => f.type === "command" && f.id === command.id)
    socket.close()
  })

  it("marks an unregistered token invalid and never wakes with it again", async () => {
    fcm.fail("fcm-token-gone", { kind: "unregistered" })
    const enrolled = await absentDevice("hw-gone", "fcm-token-gone")
    await create(enrolled.deviceId)
    await eventually(async () => {
      const rows = await query<{ fcm_token_status: string }>("select fcm_token_status from devices where id = $1", enrolled.deviceId)
      return rows[0]!.fcm_token_status === "invalid" ? true : undefined
    })
    await create(enrolled.deviceId)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(fcm.sendsTo("fcm-token-gone")).toHaveLength(1)
  })

  it("retries the wake-up, then shows the command as unreachable", async () => {
    const enrolled = await absentDevice("hw-asleep", "fcm-token-asleep")
    const { command } = await create(enrolled.deviceId)
    const row = await eventually(async () => {
      const rows = await query<{ unreachable_at: Date | null; status: string }>("select unreachable_at, status from commands where id = $1", command.id)
      return rows[0]!.unreachable_at !== null ? rows[0] : undefined
    }, 5000)
    expect(row.status).toBe("queued")
    expect(fcm.sendsTo("fcm-token-asleep")).toHaveLength(2)
  })
})
