/**
 * Remote commands end to end through a real engine and PostgreSQL: signed delivery over the
 * socket and over the HTTP fallback, device acks and signed results, idempotency, ordering,
 * re-send on reconnect, expiry, cancellation and bulk fan-out.
 */
import { SqlClient } from "@effect/sql"
import { commandSigningString, resultSigningString, sign, verifySignature } from "@nexmdm/protocol/signing"
import { Duration, Effect, Either } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Commands, type CreateCommand } from "../src/commands/Commands.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, DeviceSocket, enrol, type Enrolled, eventually, type Frame, openDatabase, postJson, startEngine, type TestEngine } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let engine: TestEngine

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  engine = await startEngine(database)
})

afterAll(async () => {
  await engine?.dispose()
  await release?.()
})

const create = (input: Omit<CreateCommand, "createdBy">) =>
  engine.run(Effect.flatMap(Commands, (commands) => commands.create({ createdBy: "test", ...input })))

const row = (id: string) =>
  engine.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Record<string, any>>`select * from commands where id = ${id}`)).then((rows) => rows[0]!)

const untilStatus = (id: string, status: string, timeoutMs = 5000) =>
  eventually(async () => {
    const current = await row(id)
    return current.status === status ? current : undefined
  }, timeoutMs)

const device = async (hardwareId: string) => {
  const token = await createToken(engine)
  return enrol(engine, token.token, hardwareId)
}

const connect = async (enrolled: Enrolled) => {
  const socket = await DeviceSocket.open(engine.wsUrl, enrolled.ticket)
  await socket.waitFor((f) => f.type === "welcome")
  return socket
}

/** What an agent does: verify the command's signature, then ack, accept and report, signed. */
const verifyCommand = (enrolled: Enrolled, frame: Frame) =>
  verifySignature(
    Buffer.from(enrolled.hmacKey, "base64"),
    commandSigningString({ id: frame.id, deviceId: enrolled.deviceId, commandType: frame.commandType, issuedAt: frame.issuedAt, expiresAt: frame.expiresAt, params: frame.params }),
    frame.sig
  )

const signedResult = (enrolled: Enrolled, id: string, status: "succeeded" | "failed", extra: { result?: Record<string, unknown>; error?: string } = {}) => {
  const completedAt = Date.now()
  const sig = sign(Buffer.from(enrolled.hmacKey, "base64"), resultSigningString({ id, deviceId: enrolled.deviceId, status, completedAt, ...extra }))
  return { type: "command_result", id, status, completedAt, ...extra, sig }
}

describe("commands", () => {
  it("set_heartbeat_interval: once the device reports success the engine stores the interval and welcomes with it", async () => {
    const enrolled = await device("hw-cmd-interval")
    const socket = await connect(enrolled)
    const { command } = await create({ deviceId: enrolled.deviceId, type: "set_heartbeat_interval", params: { intervalS: 300 } })
    await socket.waitFor((f) => f.type === "command" && f.id === command.id)
    socket.send(signedResult(enrolled, command.id, "succeeded", { result: { intervalS: 300 } }))
    await untilStatus(command.id, "succeeded")
    const stored = await eventually(async () => {
      const [device] = await engine.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ heartbeat_interval_s: number | null }>`select heartbeat_interval_s from devices where id = ${enrolled.deviceId}`)
      )
      return device?.heartbeat_interval_s ?? undefined
    })
    expect(stored).toBe(300)
    socket.close()
    const again = await DeviceSocket.open(engine.wsUrl, enrolled.ticket)
    expect(await again.waitFor((f) => f.type === "welcome")).toMatchObject({ heartbeatIntervalS: 300 })
    again.close()
  })

  it("runs the full lifecycle over the socket with signatures both ways", async () => {
    const enrolled = await device("hw-cmd-socket")
    const socket = await connect(enrolled)
    const { command } = await create({ deviceId: enrolled.deviceId, type: "lock", params: { message: "Return to desk 4" } })
    const frame = await socket.waitFor((f) => f.type === "command" && f.id === command.id)
    expect(frame).toMatchObject({ commandType: "lock", params: { message: "Return to desk 4" } })
    expect(verifyCommand(enrolled, frame)).toBe(true)
    socket.send({ type: "command_ack", id: command.id, stage: "received" })
    socket.send({ type: "command_ack", id: command.id, stage: "accepted" })
    socket.send(signedResult(enrolled, command.id, "succeeded", { result: { locked: true } }))
    const done = await untilStatus(command.id, "succeeded")
    expect(done.sent_via).toBe("socket")
    expect(done.result).toEqual({ locked: true })
    for (const stage of ["sent_at", "delivered_at", "acknowledged_at", "completed_at"]) expect(done[stage]).toBeInstanceOf(Date)
    expect(done.sent_at <= done.delivered_at && done.delivered_at <= done.acknowledged_at && done.acknowledged_at <= done.completed_at).toBe(true)
    socket.close()
  })

  it("runs the lifecycle over the HTTP fallback: long-poll, then posted acks and result", async () => {
    const enrolled = await device("hw-cmd-http")
    const auth = { authorization: `Bearer ${enrolled.ticket}` }
    const started = Date.now()
    const poll = fetch(`${engine.url}/v1/device/messages?waitS=10`, { headers: auth }).then((r) => r.json() as Promise<any>)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const { command } = await create({ deviceId: enrolled.deviceId, type: "ping", params: {} })
    const body = await poll
    expect(Date.now() - started).toBeLessThan(5000)
    expect(body.messages).toHaveLength(1)
    expect(verifyCommand(enrolled, body.messages[0])).toBe(true)
    const posted = await postJson(
      `${engine.url}/v1/device/command-updates`,
      { updates: [{ type: "command_ack", id: command.id, stage: "received" }, signedResult(enrolled, command.id, "succeeded", { result: { rttMs: 3 } })] },
      auth
    )
    expect(posted.status).toBe(200)
    const done = await untilStatus(command.id, "succeeded")
    expect(done.sent_via).toBe("poll")
  })

  it("rejects a forged result signature and results for unknown commands", async () => {
    const enrolled = await device("hw-cmd-forged")
    const socket = await connect(enrolled)
    const { command } = await create({ deviceId: enrolled.deviceId, type: "reboot", params: {} })
    await socket.waitFor((f) => f.type === "command")
    const forged = { ...signedResult(enrolled, command.id, "succeeded"), sig: sign(Buffer.alloc(32, 9), "nope") }
    socket.send(forged)
    expect(await socket.waitFor((f) => f.type === "error" && f.code === "SIGNATURE_INVALID")).toMatchObject({ commandId: command.id })
    socket.send(signedResult(enrolled, "cmd_doesnotexistdoesnotexist", "succeeded"))
    await socket.waitFor((f) => f.type === "error" && f.code === "UNKNOWN_COMMAND")
    expect((await untilStatus(command.id, "sent")).completed_at).toBeNull()
    socket.close()
  })

  it("an idempotency key makes a retried request create nothing new", async () => {
    const enrolled = await device("hw-cmd-idem")
    const socket = await connect(enrolled)
    const first = await create({ deviceId: enrolled.deviceId, type: "ping", params: {}, idempotencyKey: "retry-me" })
    const second = await create({ deviceId: enrolled.deviceId, type: "ping", params: {}, idempotencyKey: "retry-me" })
    expect(first.created).toBe(true)
    expect(second.created).toBe(false)
    expect(second.command.id).toBe(first.command.id)
    await socket.waitFor((f) => f.type === "command")
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(socket.frames.filter((f) => f.type === "command")).toHaveLength(1)
    socket.close()
  })

  it("rejects unknown types and bad parameters before anything is queued", async () => {
    const enrolled = await device("hw-cmd-invalid")
    const attempts: Array<[string, unknown, RegExp]> = [
      ["format_disk", {}, /unknown command type/],
      ["launch_app", { packageName: "not a package" }, /params.packageName/],
      ["wipe", {}, /params.confirm/],
      ["set_heartbeat_interval", { intervalS: 1 }, /params.intervalS/],
      ["ping", { extra: true }, /takes no parameters/]
    ]
    for (const [type, params, message] of attempts) {
      const result = await engine.runtime.runPromise(
        Effect.either(Effect.flatMap(Commands, (commands) => commands.create({ deviceId: enrolled.deviceId, type, params, createdBy: "test" })))
      )
      expect(Either.isLeft(result) && result.left._tag === "CommandRejected" && result.left.code).toBe("INVALID_COMMAND")
      if (Either.isLeft(result) && result.left._tag === "CommandRejected") expect(result.left.message).toMatch(message)
    }
    const count = await engine.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: string }>`select count(*) as n from commands where device_id = ${enrolled.deviceId}`))
    expect(Number(count[0]!.n)).toBe(0)
  })

  it("delivers commands queued while offline in order on connect, and re-sends undelivered ones after a reconnect", async () => {
    const enrolled = await device("hw-cmd-order")
    const ids: Array<string> = []
    for (const packageName of ["com.a.one", "com.a.two", "com.a.three"]) {
      ids.push((await create({ deviceId: enrolled.deviceId, type: "launch_app", params: { packageName } })).command.id)
    }
    const socket = await connect(enrolled)
    await socket.waitFor((f) => f.type === "command" && f.id === ids[2])
    expect(socket.frames.filter((f) => f.type === "command").map((f) => f.id)).toEqual(ids)
    // The device acks only the first, then drops off: the other two are re-sent on reconnect.
    socket.send({ type: "command_ack", id: ids[0], stage: "received" })
    await untilStatus(ids[0]!, "delivered")
    socket.close()
    await socket.waitForClose()
    const again = await connect(enrolled)
    await again.waitFor((f) => f.type === "command" && f.id === ids[2])
    expect(again.frames.filter((f) => f.type === "command").map((f) => f.id)).toEqual(ids.slice(1))
    await eventually(async () => ((await row(ids[1]!)).attempts === 2 ? true : undefined))
    again.close()
  })

  it("expires a command that was not completed in time and never delivers it late", async () => {
    const enrolled = await device("hw-cmd-expire")
    const { command } = await create({ deviceId: enrolled.deviceId, type: "reboot", params: {}, expiresIn: Duration.millis(300) })
    const expired = await untilStatus(command.id, "expired")
    expect(expired.error).toMatch(/expired/)
    const socket = await connect(enrolled)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(socket.frames.filter((f) => f.type === "command")).toHaveLength(0)
    socket.close()
  })

  it("cancels a queued command so it is never delivered", async () => {
    const enrolled = await device("hw-cmd-cancel")
    const { command } = await create({ deviceId: enrolled.deviceId, type: "reboot", params: {} })
    const cancelled = await engine.run(Effect.flatMap(Commands, (commands) => commands.cancel(command.id)))
    expect(cancelled.status).toBe("cancelled")
    const socket = await connect(enrolled)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(socket.frames.filter((f) => f.type === "command")).toHaveLength(0)
    socket.close()
  })

  it("fans one command out to many devices and tracks the job to completion", async () => {
    const devices = await Promise.all(Array.from({ length: 20 }, (_, i) => device(`hw-bulk-${i}`)))
    const sockets = await Promise.all(devices.map(connect))
    const job = await engine.run(
      Effect.flatMap(Commands, (commands) =>
        commands.createBulk({ type: "ping", params: {}, target: { deviceIds: devices.map((d) => d.deviceId) }, createdBy: "test", idempotencyKey: "bulk-1" })
      )
    )
    expect(job.total).toBe(20)
    await Promise.all(
      sockets.map(async (socket, i) => {
        const frame = await socket.waitFor((f) => f.type === "command")
        expect(verifyCommand(devices[i]!, frame)).toBe(true)
        socket.send(signedResult(devices[i]!, frame.id, "succeeded"))
      })
    )
    const progress = await eventually(async () => {
      const p = await engine.run(Effect.flatMap(Commands, (commands) => commands.bulkProgress(job.jobId)))
      return p.done === 20 ? p : undefined
    })
    expect(progress.byStatus).toEqual({ succeeded: 20 })
    const retried = await engine.run(
      Effect.flatMap(Commands, (commands) =>
        commands.createBulk({ type: "ping", params: {}, target: { deviceIds: devices.map((d) => d.deviceId) }, createdBy: "test", idempotencyKey: "bulk-1" })
      )
    )
    expect(retried).toEqual({ jobId: job.jobId, total: 20, created: false })
    for (const socket of sockets) socket.close()
  })

  it("masks secret parameters when commands are read back", async () => {
    const enrolled = await device("hw-cmd-secret")
    const socket = await connect(enrolled)
    const { command } = await create({ deviceId: enrolled.deviceId, type: "reset_password", params: { password: "4711-secret" } })
    expect(command.params).toEqual({ password: "********" })
    // The device itself gets the real value, over the signed channel.
    expect((await socket.waitFor((f) => f.type === "command")).params).toEqual({ password: "4711-secret" })
    socket.close()
  })

  it("re-signs open commands with the new key when the device enrols again", async () => {
    const first = await device("hw-cmd-reenrol")
    const { command } = await create({ deviceId: first.deviceId, type: "ping", params: {} })
    const token = await createToken(engine)
    const again = await enrol(engine, token.token, "hw-cmd-reenrol")
    expect(again.reenrolled).toBe(true)
    const socket = await connect(again)
    const frame = await socket.waitFor((f) => f.type === "command" && f.id === command.id)
    expect(verifyCommand(again, frame)).toBe(true)
    expect(verifyCommand(first, frame)).toBe(false)
    socket.close()
  })
})
