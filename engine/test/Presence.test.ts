/**
 * Presence through the running engine: the sweeper moves silent devices to overdue and offline,
 * a socket that closes enters grace, a quick reconnect never shows offline, and every transition
 * is recorded with its reason and visible on the registry's streams.
 */
import { SqlClient } from "@effect/sql"
import { Chunk, Duration, Effect, Fiber, Option, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DeviceRegistry } from "../src/DeviceRegistry.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, DeviceSocket, enrol, eventually, heartbeat, openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let engine: TestEngine

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  engine = await startEngine(database, {
    overdueAfter: Duration.millis(400),
    offlineAfter: Duration.millis(900),
    grace: Duration.millis(500)
  })
})

afterAll(async () => {
  await engine?.dispose()
  await release?.()
})

const presenceOf = (deviceId: string) =>
  engine.run(Effect.map(DeviceRegistry, (registry) => Option.map(registry.view(deviceId), (view) => view.presence)))

const events = (deviceId: string) =>
  engine.run(
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql<{ presence: string; reason: string }>`select presence, reason from device_events
        where device_id = ${deviceId} and kind = 'presence' order by id`
    )
  )

const connected = async (hardwareId: string) => {
  const token = await createToken(engine)
  const device = await enrol(engine, token.token, hardwareId)
  const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
  await socket.waitFor((f) => f.type === "welcome")
  return { device, socket }
}

describe("presence", () => {
  it("a silent device goes overdue, then offline, with reasons recorded", async () => {
    const { device, socket } = await connected("hw-silent")
    socket.send(heartbeat(1))
    await socket.waitFor((f) => f.type === "ack")
    await eventually(async () => (Option.getOrUndefined(await presenceOf(device.deviceId)) === "offline" ? true : undefined), 5000)
    const recorded = await eventually(async () => {
      const rows = await events(device.deviceId)
      return rows.length >= 3 ? rows : undefined
    })
    expect(recorded.map((row) => row.presence)).toEqual(["connected", "overdue", "offline"])
    expect(recorded[1]!.reason).toMatch(/^heartbeat overdue: none for \ds/)
    expect(recorded[2]!.reason).toMatch(/^no heartbeat for \ds/)
    socket.close()
  })

  it("a device that reconnects within grace is never reported offline", async () => {
    const { device, socket } = await connected("hw-flap")
    socket.send(heartbeat(1))
    await socket.waitFor((f) => f.type === "ack")
    socket.close()
    await eventually(async () => (Option.getOrUndefined(await presenceOf(device.deviceId)) === "grace" ? true : undefined))
    const again = await DeviceSocket.open(engine.wsUrl, device.ticket)
    await again.waitFor((f) => f.type === "welcome")
    again.send(heartbeat(2))
    await again.waitFor((f) => f.type === "ack")
    const rows = await eventually(async () => {
      const recorded = await events(device.deviceId)
      return recorded.length >= 3 ? recorded : undefined
    })
    expect(rows.map((row) => `${row.presence}: ${row.reason}`)).toEqual([
      "connected: connected",
      "grace: socket closed (code 1005)",
      "connected: reconnected within grace"
    ])
    again.close()
  })

  it("streams each change of a device to its watcher, in order", async () => {
    const { device, socket } = await connected("hw-watched")
    const watched = await engine.runtime.runPromise(
      Effect.flatMap(DeviceRegistry, (registry) =>
        registry.watch(device.deviceId).pipe(Stream.take(3), Stream.runCollect, Effect.forkDaemon)
      )
    )
    await new Promise((resolve) => setTimeout(resolve, 50))
    for (const seq of [1, 2, 3]) socket.send(heartbeat(seq, { batteryPct: 60 + seq }))
    const changes = Chunk.toReadonlyArray(await engine.runtime.runPromise(Fiber.join(watched).pipe(Effect.timeout("5 seconds"))))
    expect(changes.map((change) => change.lastHeartbeat?.batteryPct)).toEqual([61, 62, 63])
    expect(changes.every((change) => change.deviceId === device.deviceId)).toBe(true)
    socket.close()
  })

  it("after a restart, a device that was connected and does not come back goes offline", async () => {
    const timings = { overdueAfter: Duration.millis(400), offlineAfter: Duration.millis(900), grace: Duration.millis(500) }
    const first = await startEngine(database, timings)
    const token = await createToken(first)
    const device = await enrol(first, token.token, "hw-restart")
    const socket = await DeviceSocket.open(first.wsUrl, device.ticket)
    await socket.waitFor((f) => f.type === "welcome")
    socket.send(heartbeat(1))
    await socket.waitFor((f) => f.type === "ack")
    await eventually(async () => ((await events(device.deviceId)).length >= 1 ? true : undefined))
    await first.dispose()
    const second = await startEngine(database, timings)
    try {
      const reasons = await eventually(async () => {
        const client = await second.run(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ presence: string; reason: string }>`select presence, reason
            from device_events where device_id = ${device.deviceId} and kind = 'presence' order by id`)
        )
        return client.some((row) => row.presence === "offline") ? client : undefined
      }, 5000)
      expect(reasons.at(-1)).toEqual({ presence: "offline", reason: "engine restarted; no reconnect within 1s" })
    } finally {
      await second.dispose()
    }
  })
})
