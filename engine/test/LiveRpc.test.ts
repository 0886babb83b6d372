/**
 * The console's live streams (/api/live, @effect/rpc over WebSocket) against a real engine and
 * PostgreSQL: fleet snapshot then coalesced batches, one device's heartbeats, command transitions,
 * and token checks (none, bad, expiring, revoked).
 */
import { NodeSocket } from "@effect/platform-node"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { type DeviceLive, type FleetBatch, LiveRpcs } from "@nexmdm/protocol/live"
import { resultSigningString, sign } from "@nexmdm/protocol/signing"
import { Duration, Effect, Exit, Fiber, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AccessTokens } from "../src/admin/AccessTokens.js"
import { Accounts } from "../src/admin/Accounts.js"
import { systemActor } from "../src/admin/Audit.js"
import { Commands } from "../src/commands/Commands.js"
import { DevicePlane } from "../src/DevicePlane.js"
import { Enrollment } from "../src/Enrollment.js"
import { createUser, startAdmin, type TestAdmin } from "./support/TestAdmin.js"
import { DeviceSocket, type Enrolled, eventually, heartbeat, openDatabase, postJson } from "./support/TestEngine.js"
import type { TestDatabase } from "./support/TestDatabase.js"

let database: TestDatabase
let release: () => Promise<void>
let admin: TestAdmin
let deviceUrl: string
let liveUrl: string
let token: string


const clientLayer = (url: string) =>
  RpcClient.layerProtocolSocket().pipe(Layer.provide(NodeSocket.layerWebSocket(url)), Layer.provide(RpcSerialization.layerJson))

/** Runs one stream of a fresh client in the background, collecting what arrives. */
const watch = <A, E>(open: (client: RpcClient.FromGroup<typeof LiveRpcs, RpcClientError>) => Stream.Stream<A, E>) => {
  const items: Array<{ readonly at: number; readonly value: A }> = []
  const fiber = Effect.runFork(
    Effect.scoped(
      Effect.gen(function* () {
        const client = yield* RpcClient.make(LiveRpcs)
        yield* Stream.runForEach(open(client), (value) => Effect.sync(() => void items.push({ at: Date.now(), value })))
      })
    ).pipe(Effect.provide(clientLayer(liveUrl)))
  )
  return {
    items,
    values: () => items.map((item) => item.value),
    exit: () => Effect.runPromise(Fiber.await(fiber)),
    stop: () => Effect.runPromise(Fiber.interrupt(fiber))
  }
}

const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? (exit.cause._tag === "Fail" ? (exit.cause.error as any) : String(exit.cause)) : undefined

const enrolDevice = async (hardwareId: string): Promise<Enrolled> => {
  const created = await admin.run(
    Effect.flatMap(Enrollment, (enrollment) => enrollment.createToken({ expiresIn: Duration.hours(1), maxUses: 1, label: "test" }))
  )
  const response = await postJson(`${deviceUrl}/v1/enroll`, { token: created.token, hardwareId, model: "test" })
  if (response.status !== 201) throw new Error(`enrol failed: ${response.status}`)
  return response.body as Enrolled
}

const connect = async (enrolled: Enrolled) => {
  const socket = await DeviceSocket.open(`${deviceUrl.replace(/^http/, "ws")}/v1/device/ws`, enrolled.ticket)
  await socket.waitFor((f) => f.type === "welcome")
  return socket
}

const issueFor = (role: "owner" | "viewer") =>
  createUser(admin, role).then((user) => admin.run(Effect.map(AccessTokens, (tokens) => ({ user, token: tokens.issue({ id: user.id, role: user.role }).token }))))

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  admin = await startAdmin(database)
  deviceUrl = (await admin.run(DevicePlane)).url
  liveUrl = `${admin.url.replace(/^http/, "ws")}/api/live`
  token = (await issueFor("viewer")).token
})

afterAll(async () => {
  await admin?.dispose()
  await release?.()
})

const fleetDevices = (batches: ReadonlyArray<FleetBatch>, kind: FleetBatch["kind"]) =>
  batches.filter((b) => b.kind === kind).flatMap((b) => b.devices)

describe("live streams", () => {
  it("WatchFleet sends a snapshot, then coalesces a device's heartbeats within a window into its latest view", async () => {
    const a = await enrolDevice("hw-live-fleet-a")
    const socketA = await connect(a)
    socketA.send(heartbeat(1))
    await socketA.waitFor((f) => f.type === "ack" && f.seq === 1)
    const fleet = watch((client) => client.WatchFleet({ accessToken: token, flushMs: 1000 }))
    const snapshotEnd = await eventually(() => fleet.values().find((b) => b.kind === "snapshotEnd"))
    const snapshot = fleetDevices(fleet.values(), "snapshot").concat(snapshotEnd.devices)
    expect(snapshot.find((d) => d.id === a.deviceId)?.lastHeartbeat?.seq).toBe(1)

    // 20 heartbeats in a burst (well inside one 1 s window): one view, with the last seq.
    for (let seq = 2; seq <= 21; seq++) socketA.send(heartbeat(seq))
    await socketA.waitFor((f) => f.type === "ack" && f.seq === 21)
    const latest = await eventually(() => {
      const seen = fleetDevices(fleet.values(), "changes").filter((d) => d.id === a.deviceId)
      return seen.some((d) => d.acceptedSeq === 21) ? seen : undefined
    }, 5000)
    expect(latest.filter((d) => (d.lastHeartbeat?.seq ?? 0) > 1).length).toBeLessThanOrEqual(2)
    expect(latest.at(-1)?.lastHeartbeat?.seq).toBe(21)
    await fleet.stop()
    socketA.close()
  })

  it("WatchDevice sends the current view, then every heartbeat", async () => {
    const d = await enrolDevice("hw-live-device")
    const socket = await connect(d)
    const stream = watch((client) => client.WatchDevice({ accessToken: token, deviceId: d.deviceId }))
    await eventually(() => (stream.items.length > 0 ? true : undefined))
    for (let seq = 1; seq <= 5; seq++) {
      socket.send(heartbeat(seq, { batteryPct: 50 + seq }))
      await socket.waitFor((f) => f.type === "ack" && f.seq === seq)
    }
    const views = await eventually(() => {
      const seqs = new Set(stream.values().map((v: DeviceLive) => v.lastHeartbeat?.seq))
      return [1, 2, 3, 4, 5].every((s) => seqs.has(s)) ? stream.values() : undefined
    })
    expect(views.find((v) => v.lastHeartbeat?.seq === 5)?.lastHeartbeat?.batteryPct).toBe(55)
    expect(views[0]!.id).toBe(d.deviceId)
    await stream.stop()
    socket.close()
  })

  it("WatchCommands follows a command from queued to sent to succeeded", async () => {
    const d = await enrolDevice("hw-live-cmd")
    const socket = await connect(d)
    const stream = watch((client) => client.WatchCommands({ accessToken: token, deviceId: d.deviceId }))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const { command } = await admin.run(
      Effect.flatMap(Commands, (commands) => commands.create({ deviceId: d.deviceId, type: "ping", params: {}, createdBy: "test" }))
    )
    await socket.waitFor((f) => f.type === "command" && f.id === command.id)
    socket.send({ type: "command_ack", id: command.id, stage: "received" })
    const completedAt = Date.now()
    const sig = sign(Buffer.from(d.hmacKey, "base64"), resultSigningString({ id: command.id, deviceId: d.deviceId, status: "succeeded", completedAt }))
    socket.send({ type: "command_result", id: command.id, status: "succeeded", completedAt, sig })
    const statuses = await eventually(() => {
      const seen = stream.values().filter((t) => t.commandId === command.id).map((t) => t.status)
      return seen.includes("succeeded") ? seen : undefined
    })
    expect(statuses.indexOf("queued")).toBeLessThan(statuses.indexOf("sent"))
    expect(statuses.indexOf("sent")).toBeLessThan(statuses.indexOf("succeeded"))
    expect(stream.values().every((t) => t.deviceId === d.deviceId)).toBe(true)
    await stream.stop()
    socket.close()
  })

  it("refuses a missing or invalid token with Unauthorized", async () => {
    const none = await watch((client) => client.WatchFleet({ accessToken: "" })).exit()
    expect(failureOf(none)).toMatchObject({ _tag: "Unauthorized", code: "TOKEN_MISSING" })
    const bad = await watch((client) => client.WatchDevice({ accessToken: `${token}x`, deviceId: "dev_x" })).exit()
    expect(failureOf(bad)).toMatchObject({ _tag: "Unauthorized", code: "TOKEN_INVALID" })
  })

  it("ends the stream with Unauthorized within seconds of the user being disabled", async () => {
    const { user, token: own } = await issueFor("viewer")
    const stream = watch((client) => client.WatchCommands({ accessToken: own }))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const disabledAt = Date.now()
    await admin.run(Effect.flatMap(Accounts, (accounts) => accounts.setDisabled(user.id, true, { actor: systemActor("test"), sourceIp: null })))
    const exit = await stream.exit()
    expect(failureOf(exit)).toMatchObject({ _tag: "Unauthorized", code: "ACCOUNT_DISABLED" })
    expect(Date.now() - disabledAt).toBeLessThan(3000)
  })
})

describe("a short-lived token", () => {
  it("ends the stream with Unauthorized (TOKEN_EXPIRED) at the token's exp", async () => {
    const second = await openDatabase()
    const shortAdmin = await startAdmin(second.database, { accessTokenTtl: Duration.seconds(2) })
    try {
      const user = await createUser(shortAdmin, "viewer")
      const issued = await shortAdmin.run(Effect.map(AccessTokens, (tokens) => tokens.issue({ id: user.id, role: user.role })))
      const url = `${shortAdmin.url.replace(/^http/, "ws")}/api/live`
      const started = Date.now()
      const exit = await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const client = yield* RpcClient.make(LiveRpcs)
            return yield* Stream.runDrain(client.WatchFleet({ accessToken: issued.token }))
          })
        ).pipe(Effect.provide(clientLayer(url)), Effect.exit)
      )
      const elapsed = Date.now() - started
      expect(failureOf(exit)).toMatchObject({ _tag: "Unauthorized", code: "TOKEN_EXPIRED" })
      // exp has whole-second precision: the token lives 1-2 s from issue.
      expect(elapsed).toBeGreaterThan(900)
      expect(elapsed).toBeLessThan(2600)
      expect(Math.abs(Date.now() - issued.expiresAt.getTime())).toBeLessThan(500)
    } finally {
      await shortAdmin.dispose()
      await second.release()
    }
  })
})
