/**
 * The write-behind under failure: PostgreSQL cut off mid-stream, a full buffer, and shutdown.
 * Nothing the engine acked as durable may be lost, and nothing may be stored twice.
 */
import { Duration, Effect } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { scrape } from "../src/internal/Prometheus.js"
import { TelemetryWriter } from "../src/TelemetryWriter.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { TcpProxy } from "./support/TcpProxy.js"
import { createToken, DeviceSocket, enrol, eventually, heartbeat, openDatabase, startEngine, type TestEngine } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let proxy: TcpProxy

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  const url = new URL(database.url)
  proxy = await TcpProxy.start(url.hostname, Number(url.port || 5432))
})

afterAll(async () => {
  await proxy?.close()
  await release?.()
})

/** The database url routed through the proxy. */
const viaProxy = () => {
  const url = new URL(database.url)
  url.port = String(proxy.port)
  return { ...database, url: url.toString() }
}

const storedSeqs = async (deviceId: string): Promise<Array<number>> => {
  const client = new pg.Client({ connectionString: database.url })
  await client.connect()
  try {
    const result = await client.query<{ seq: string }>("select seq from heartbeats where device_id = $1 order by seq", [deviceId])
    return result.rows.map((row) => Number(row.seq))
  } finally {
    await client.end()
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

const connectDevice = async (engine: TestEngine, hardwareId: string) => {
  const token = await createToken(engine)
  const device = await enrol(engine, token.token, hardwareId)
  const socket = await DeviceSocket.open(engine.wsUrl, device.ticket)
  await socket.waitFor((f) => f.type === "welcome")
  return { device, socket }
}

describe("write-behind", () => {
  it("keeps acking while PostgreSQL is unreachable and persists everything exactly once when it returns", async () => {
    const engine = await startEngine(viaProxy())
    try {
      const { device, socket } = await connectDevice(engine, "hw-outage")
      for (const seq of range(1, 10)) socket.send(heartbeat(seq))
      await eventually(async () => ((await storedSeqs(device.deviceId)).length === 10 ? true : undefined))

      proxy.cut()
      const failuresBefore = (await engine.run(Effect.map(TelemetryWriter, (w) => w.totals()))).failedAttempts
      for (const seq of range(11, 40)) socket.send(heartbeat(seq))
      const lastAck = await socket.waitFor((f) => f.type === "ack" && f.seq === 40)
      // Acked from memory, but not claimed durable: the watermark stays at what was committed.
      expect(lastAck.durableSeq).toBe(10)
      await eventually(async () => {
        const totals = await engine.run(Effect.map(TelemetryWriter, (w) => w.totals()))
        return totals.failedAttempts > failuresBefore ? true : undefined
      })
      expect(await engine.run(Effect.map(TelemetryWriter, (w) => w.buffered()))).toBe(30)

      proxy.restore()
      expect(await eventually(async () => {
        const seqs = await storedSeqs(device.deviceId)
        return seqs.length >= 40 ? seqs : undefined
      }, 15_000)).toEqual(range(1, 40))
      // The device learns that everything is durable without sending anything else.
      const notice = await socket.waitFor((f) => f.type === "durable" && f.durableSeq === 40, 5000)
      expect(notice.durableSeq).toBe(40)
      socket.close()
    } finally {
      proxy.restore()
      await engine.dispose()
    }
  })

  it("tells devices to back off when the buffer is full, and loses nothing they resend", async () => {
    const engine = await startEngine(viaProxy(), { bufferMaxRows: 100 })
    try {
      const { device, socket } = await connectDevice(engine, "hw-backpressure")
      proxy.cut()
      for (const seq of range(1, 120)) socket.send(heartbeat(seq))
      await eventually(() => (socket.frames.filter((f) => f.type === "ack" || f.type === "error").length === 120 ? true : undefined))
      const acked = socket.frames.filter((f) => f.type === "ack").map((f) => f.seq as number)
      const refused = socket.frames.filter((f) => f.type === "error")
      expect(acked).toEqual(range(1, 100))
      expect(refused.map((f) => f.code)).toEqual(Array(20).fill("BACKPRESSURE"))
      expect(refused.map((f) => f.seq)).toEqual(range(101, 120))
      expect(refused[0]!.retryAfterMs).toBeGreaterThan(0)

      proxy.restore()
      await eventually(async () => ((await storedSeqs(device.deviceId)).length === 100 ? true : undefined), 15_000)
      // The device resends what was refused, as its outbox tells it to.
      for (const seq of range(101, 120)) socket.send(heartbeat(seq))
      await socket.waitFor((f) => f.type === "ack" && f.seq === 120)
      expect(await eventually(async () => {
        const seqs = await storedSeqs(device.deviceId)
        return seqs.length === 120 ? seqs : undefined
      }, 10_000)).toEqual(range(1, 120))
      socket.close()
    } finally {
      proxy.restore()
      await engine.dispose()
    }
  })

  it("flushes buffered heartbeats on graceful shutdown and closes sockets with 1001", async () => {
    // A long batch delay keeps the rows in memory until shutdown forces the flush.
    const engine = await startEngine(database, { batchMaxDelay: Duration.seconds(60), batchMaxRows: 10_000 })
    const { device, socket } = await connectDevice(engine, "hw-shutdown")
    for (const seq of range(1, 25)) socket.send(heartbeat(seq))
    await socket.waitFor((f) => f.type === "ack" && f.seq === 25)
    expect(await storedSeqs(device.deviceId)).toEqual([])
    await engine.dispose()
    expect((await socket.waitForClose()).code).toBe(1001)
    expect(await storedSeqs(device.deviceId)).toEqual(range(1, 25))
  })

  it("counts batches and rows in the metrics", async () => {
    const engine = await startEngine(database)
    try {
      const { socket } = await connectDevice(engine, "hw-metrics")
      for (const seq of range(1, 5)) socket.send(heartbeat(seq))
      await socket.waitFor((f) => f.type === "ack" && f.seq === 5)
      await engine.run(Effect.flatMap(TelemetryWriter, (w) => w.flush))
      const text = scrape()
      expect(text).toMatch(/engine_write_rows_total\{table="heartbeats"\} [1-9]/)
      expect(text).toMatch(/engine_heartbeats_total\{outcome="accepted"\} [1-9]/)
      expect(text).toMatch(/engine_hb_ack_seconds_count [1-9]/)
      socket.close()
    } finally {
      await engine.dispose()
    }
  })
})
