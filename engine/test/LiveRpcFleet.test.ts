/**
 * WatchFleet's sharing over the real rpc server (fake registry, no database): subscribers of one
 * flush period share one broadcaster; one that does not keep up gets the latest state once,
 * not every flush; revocation ends each subscriber's stream on its own.
 */
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { FleetBatch, LiveRpcs } from "@nexmdm/protocol/live"
import { Effect, Exit, Fiber, Schema, Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import WebSocket from "ws"
import * as EncodedJson from "../src/admin/internal/EncodedJson.js"
import { flushGroup } from "../src/admin/LiveRpcServer.js"
import * as LiveServer from "./support/LiveServer.js"
import { eventually } from "./support/TestEngine.js"

const withServer = async (devices: number, test: (server: LiveServer.LiveServer) => Promise<void>) => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(LiveServer.make(devices), scope))
  try {
    await test(server)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** A WatchFleet stream of a fresh RpcClient (its own socket), collecting the batches. */
const watchFleet = (server: LiveServer.LiveServer, accessToken: string, flushMs: number) => {
  const batches: Array<FleetBatch> = []
  const fiber = Effect.runFork(
    Effect.scoped(
      Effect.gen(function* () {
        const client = yield* RpcClient.make(LiveRpcs)
        yield* Stream.runForEach(client.WatchFleet({ accessToken, flushMs }), (batch) => Effect.sync(() => void batches.push(batch)))
      })
    ).pipe(Effect.provide(server.clientLayer))
  )
  return {
    batches,
    snapshotDone: () => batches.some((b) => b.kind === "snapshotEnd"),
    /** Latest seq seen per device in "changes" batches. */
    changes: () => {
      const seen = new Map<string, number>()
      for (const batch of batches) if (batch.kind === "changes") for (const d of batch.devices) seen.set(d.id, d.acceptedSeq)
      return seen
    },
    exit: () => Effect.runPromise(Fiber.await(fiber)),
    stop: () => Effect.runPromise(Fiber.interrupt(fiber))
  }
}

type Chunk = { readonly _tag: "Chunk"; readonly requestId: string; readonly values: ReadonlyArray<FleetBatch> }

/** A subscriber speaking the rpc protocol on a raw socket, acking chunks only when told to. */
const rawSubscriber = async (url: string, accessToken: string, flushMs: number) => {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  const chunks: Array<Chunk> = []
  ws.on("message", (data: Buffer) => {
    const message = JSON.parse(data.toString("utf8"))
    if (message._tag === "Chunk") chunks.push(message)
  })
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject))
  ws.send(JSON.stringify({ _tag: "Request", id: "1", tag: "WatchFleet", payload: { accessToken, flushMs }, headers: [] }))
  return {
    chunks,
    ack: () => ws.send(JSON.stringify({ _tag: "Ack", requestId: "1" })),
    close: () => ws.terminate()
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("WatchFleet shared by its subscribers", () => {
  it("subscribers of one flush period receive the same changes from one registry subscription, released with the last", async () => {
    await withServer(50, async (server) => {
      const token = server.tokenFor("usr_fleet000000000000001")
      // 100 and 120 ms share the 100 ms group.
      expect(flushGroup(120)).toBe(100)
      const a = watchFleet(server, token, 100)
      const b = watchFleet(server, token, 120)
      await eventually(() => (a.snapshotDone() && b.snapshotDone() ? true : undefined))
      expect(server.registrySubscribers()).toBe(1)

      for (const i of range(50)) server.publish(LiveServer.deviceView(i, 1))
      for (const i of range(10)) server.publish(LiveServer.deviceView(i, 2))
      const expected = new Map(range(50).map((i) => [`dev_${i}`, i < 10 ? 2 : 1]))
      await eventually(() => (a.changes().size === 50 && b.changes().size === 50 ? true : undefined))
      await eventually(() => ([...expected].every(([id, seq]) => a.changes().get(id) === seq && b.changes().get(id) === seq) ? true : undefined))
      expect(a.changes()).toEqual(expected)
      expect(b.changes()).toEqual(expected)

      await a.stop()
      expect(server.registrySubscribers()).toBe(1)
      await b.stop()
      await eventually(() => (server.registrySubscribers() === 0 ? true : undefined))
    })
  })

  it("a subscriber that stops acking gets no flush meanwhile, then one batch with each device's latest view; the others get every flush", async () => {
    await withServer(200, async (server) => {
      const token = server.tokenFor("usr_fleet000000000000002")
      const fast = watchFleet(server, token, 100)
      const slow = await rawSubscriber(server.url, token, 100)
      try {
        // The snapshot arrives as one chunk; the slow subscriber does not ack it.
        await eventually(() => (fast.snapshotDone() && slow.chunks.length === 1 ? true : undefined))
        expect(slow.chunks[0]!.values.flatMap((b) => b.devices)).toHaveLength(200)

        const rounds = 10
        for (let round = 1; round <= rounds; round++) {
          for (const i of range(200)) server.publish(LiveServer.deviceView(i, round))
          await eventually(() => (fast.changes().get("dev_199") === round ? true : undefined))
        }
        // The fast subscriber saw each round; the slow one received nothing more.
        const fastViews = fast.batches.filter((b) => b.kind === "changes").reduce((n, b) => n + b.devices.length, 0)
        expect(fastViews).toBeGreaterThanOrEqual(rounds * 200)
        expect(slow.chunks).toHaveLength(1)

        slow.ack()
        await eventually(() => (slow.chunks.length === 2 ? true : undefined))
        const caughtUp = slow.chunks[1]!.values
        expect(caughtUp.every((b) => b.kind === "changes")).toBe(true)
        const devices = caughtUp.flatMap((b) => b.devices)
        expect(devices).toHaveLength(200)
        expect(new Set(devices.map((d) => d.id)).size).toBe(200)
        expect(devices.every((d) => d.acceptedSeq === rounds && d.lastHeartbeat?.seq === rounds)).toBe(true)

        // Acked again, it is back on the shared flushes.
        slow.ack()
        server.publish(LiveServer.deviceView(7, rounds + 1))
        await eventually(() => (slow.chunks.length === 3 ? true : undefined))
        expect(slow.chunks[2]!.values.flatMap((b) => b.devices).map((d) => [d.id, d.acceptedSeq])).toEqual([["dev_7", rounds + 1]])
      } finally {
        slow.close()
        await fast.stop()
      }
    })
  })

  it("revoking one user's session ends that user's fleet stream and no other", async () => {
    await withServer(20, async (server) => {
      const revoked = watchFleet(server, server.tokenFor("usr_fleet000000000000003"), 100)
      const kept = watchFleet(server, server.tokenFor("usr_fleet000000000000004"), 100)
      await eventually(() => (revoked.snapshotDone() && kept.snapshotDone() ? true : undefined))

      server.revoke("usr_fleet000000000000003")
      const exit = await revoked.exit()
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : exit).toMatchObject({
        _tag: "Unauthorized",
        code: "SESSION_REVOKED"
      })

      server.publish(LiveServer.deviceView(3, 1))
      await eventually(() => (kept.changes().get("dev_3") === 1 ? true : undefined))
      await sleep(1500) // past a revocation check of the kept stream
      server.publish(LiveServer.deviceView(4, 1))
      await eventually(() => (kept.changes().get("dev_4") === 1 ? true : undefined))
      await kept.stop()
    })
  })

  it("FleetBatch has no transformations: its JSON is its schema encoding (the server sends JSON.stringify's text)", () => {
    const batch: FleetBatch = {
      kind: "changes",
      devices: [
        { id: "dev_1", presence: "offline", presenceReason: "timeout", presenceSince: 1, acceptedSeq: 0, durableSeq: 0 },
        {
          id: "dev_2",
          presence: "connected",
          presenceReason: "connected",
          presenceSince: 2,
          transport: "ws",
          lastHeartbeatAt: 3,
          lastHeartbeat: {
            seq: 4,
            batteryPct: 50,
            charging: true,
            memFreeMb: 1,
            memTotalMb: 2,
            storageFreeMb: 3,
            network: "cellular",
            agentVersion: "1.2.3",
            uptimeS: 9,
            recordedAt: 10
          },
          acceptedSeq: 4,
          durableSeq: 3
        }
      ]
    }
    expect(Schema.encodeSync(FleetBatch)(batch)).toEqual(JSON.parse(JSON.stringify(batch)))
    expect(Schema.decodeUnknownSync(FleetBatch)(JSON.parse(JSON.stringify(batch)))).toEqual(batch)
  })

  it("the serialization writes an EncodedJson's text where RpcSerialization.json would write the value", () => {
    const values = [{ kind: "changes", devices: [{ id: "dev_\"quoted\"", n: 1.5 }] }, { kind: "snapshotEnd", devices: [] }]
    const ours = EncodedJson.serialization.unsafeMake()
    const json = RpcSerialization.json.unsafeMake()
    const chunk = (vs: ReadonlyArray<unknown>) => ({ _tag: "Chunk", requestId: "7", values: vs })
    const encoded = ours.encode(chunk(values.map(EncodedJson.encode))) as string
    expect(JSON.parse(encoded)).toEqual(chunk(values))
    expect(JSON.parse(ours.encode([chunk(values.map(EncodedJson.encode)), { _tag: "Pong" }]) as string)).toEqual([chunk(values), { _tag: "Pong" }])
    // Other messages are plain JSON.
    const exit = { _tag: "Exit", requestId: "7", exit: { _tag: "Success", value: null } }
    expect(ours.encode(exit)).toBe(json.encode(exit))
    expect(ours.decode(JSON.stringify(exit))).toEqual(json.decode(JSON.stringify(exit)))
  })
})
