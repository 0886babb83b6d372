/**
 * Throughput of one WatchFleet stream (no database): the real LiveRpcServer handlers behind a fake
 * registry whose change PubSub is driven synthetically (N devices x R changes/s), one client over
 * WebSocket. Prints changes published/s, device views received/s, batches/s and batch sizes, and
 * checks the coalescing contract (each batch <= FLEET_CHUNK; per flush at most one view per device).
 */
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeSocket } from "@effect/platform-node"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { FLEET_CHUNK, type FleetBatch, LiveRpcs } from "@nexmdm/protocol/live"
import { Duration, Effect, Fiber, Layer, Option, PubSub, Schedule, Stream } from "effect"
import { createServer } from "node:http"
import { describe, expect, it } from "vitest"
import { AccessTokens, makeAccessTokens } from "../src/admin/AccessTokens.js"
import { Accounts } from "../src/admin/Accounts.js"
import * as LiveRpcServer from "../src/admin/LiveRpcServer.js"
import { Commands } from "../src/commands/Commands.js"
import { DeviceRegistry, type DeviceView } from "../src/DeviceRegistry.js"
import type { UserId } from "../src/admin/Principal.js"

const DEVICES = Number(process.env["LIVE_LOAD_DEVICES"] ?? 2000)
const RATE_PER_DEVICE = Number(process.env["LIVE_LOAD_RATE"] ?? 10)
const SECONDS = Number(process.env["LIVE_LOAD_SECONDS"] ?? 4)

const viewOf = (i: number, seq: number, now: number): DeviceView => ({
  deviceId: `dev_${i}`,
  presence: "connected",
  presenceReason: "connected",
  presenceSince: now,
  transport: "ws",
  lastHeartbeatAt: now,
  lastHeartbeat: {
    seq,
    deviceTs: now,
    batteryPct: 80,
    charging: false,
    memFreeMb: 1000,
    memTotalMb: 4000,
    storageFreeMb: 20000,
    network: "wifi",
    signalDbm: -60,
    foregroundApp: "com.example.kiosk",
    agentVersion: "1.0.0",
    uptimeS: 100,
    recordedAt: now
  },
  acceptedSeq: seq,
  durableSeq: seq
})

const run = (flushMs: number) =>
  Effect.gen(function* () {
    const pubsub = yield* PubSub.sliding<DeviceView>(16_384)
    const latest = new Map<string, DeviceView>()
    const registry = DeviceRegistry.of({
      tell: () => "queued",
      view: (id) => Option.fromNullable(latest.get(id)),
      snapshot: () => [...latest.values()],
      changes: Stream.fromPubSub(pubsub),
      watch: () => Stream.never,
      subscribe: PubSub.subscribe(pubsub),
      counts: () => ({ actors: latest.size, ws: latest.size, http: 0 }),
      sweep: Effect.void,
      closeAll: () => Effect.void
    })
    const tokens = makeAccessTokens(Buffer.alloc(32, 7), 3_600_000)
    const accounts = { sessionState: () => ({ email: "a@example.com", role: "viewer", disabled: false, tokensValidAfterMs: 0 }) } as unknown as Accounts["Type"]
    const commands = { updates: Stream.never } as unknown as Commands["Type"]
    const services = Layer.mergeAll(
      Layer.succeed(DeviceRegistry, registry),
      Layer.succeed(AccessTokens, tokens),
      Layer.succeed(Accounts, accounts),
      Layer.succeed(Commands, commands)
    )
    const server = Layer.unwrapScoped(
      Effect.map(LiveRpcServer.httpApp, (app) => HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.get("/api/live", app))))
    ).pipe(Layer.provide(services), Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
    const ctx = yield* Layer.build(server)
    const address = Effect.runSync(Effect.provide(HttpServer.HttpServer, ctx)).address
    if (address._tag !== "TcpAddress") throw new Error("expected TCP")
    const url = `ws://127.0.0.1:${address.port}/api/live`

    for (let i = 0; i < DEVICES; i++) latest.set(`dev_${i}`, viewOf(i, 0, Date.now()))
    const token = tokens.issue({ id: "usr_loadtest000000000000" as UserId, role: "viewer" }).token

    // Publisher: every 10 ms, DEVICES * RATE / 100 changes (round robin over the devices).
    let published = 0
    let cursor = 0
    const perTick = Math.max(1, Math.round((DEVICES * RATE_PER_DEVICE) / 100))
    const seqs = new Array<number>(DEVICES).fill(0)
    const publish = Effect.sync(() => {
      const now = Date.now()
      for (let k = 0; k < perTick; k++) {
        const i = cursor
        cursor = (cursor + 1) % DEVICES
        const view = viewOf(i, ++seqs[i]!, now)
        latest.set(view.deviceId, view)
        pubsub.unsafeOffer(view)
        published++
      }
    })

    const batches: Array<{ at: number; batch: FleetBatch }> = []
    const client = Effect.scoped(
      Effect.gen(function* () {
        const rpc = yield* RpcClient.make(LiveRpcs)
        yield* Stream.runForEach(rpc.WatchFleet({ accessToken: token, flushMs }), (batch) =>
          Effect.sync(() => void batches.push({ at: Date.now(), batch }))
        )
      })
    ).pipe(
      Effect.provide(RpcClient.layerProtocolSocket().pipe(Layer.provide(NodeSocket.layerWebSocket(url)), Layer.provide(RpcSerialization.layerJson)))
    )
    const clientFiber = yield* Effect.fork(client)
    yield* Effect.sleep(Duration.millis(500))
    const startPublished = published
    const started = Date.now()
    const startIndex = batches.length
    const publisher = yield* Effect.fork(Effect.repeat(publish, Schedule.spaced(Duration.millis(10))))
    yield* Effect.sleep(Duration.seconds(SECONDS))
    const elapsedS = (Date.now() - started) / 1000
    const window = batches.slice(startIndex).filter((b) => b.batch.kind === "changes")
    const publishedInWindow = published - startPublished
    yield* Fiber.interrupt(publisher)
    const views = window.reduce((n, b) => n + b.batch.devices.length, 0)
    const sizes = window.map((b) => b.batch.devices.length).sort((a, b) => a - b)
    const snapshot = batches.filter((b) => b.batch.kind !== "changes").reduce((n, b) => n + b.batch.devices.length, 0)
    // Per flush (batches within a few ms of each other), no device twice.
    let duplicates = 0
    let flushes = 0
    for (let i = 0; i < window.length; ) {
      const seen = new Set<string>()
      let j = i
      while (j < window.length && window[j]!.at - window[i]!.at < flushMs / 2) {
        for (const d of window[j]!.batch.devices) {
          if (seen.has(d.id)) duplicates++
          seen.add(d.id)
        }
        j++
      }
      flushes++
      i = j
    }
    yield* Fiber.interrupt(clientFiber)
    return {
      flushMs,
      devices: DEVICES,
      snapshotViews: snapshot,
      publishedPerS: Math.round(publishedInWindow / elapsedS),
      viewsPerS: Math.round(views / elapsedS),
      batchesPerS: Math.round((window.length / elapsedS) * 10) / 10,
      flushesPerS: Math.round((flushes / elapsedS) * 10) / 10,
      batchSize: { min: sizes[0] ?? 0, p50: sizes[Math.floor(sizes.length / 2)] ?? 0, max: sizes.at(-1) ?? 0 },
      duplicatesWithinFlush: duplicates,
      maxChunk: FLEET_CHUNK
    }
  }).pipe(Effect.scoped)

describe("WatchFleet throughput (synthetic registry)", () => {
  for (const flushMs of (process.env["LIVE_LOAD_FLUSH_MS"] ?? "250,50").split(",").map(Number)) {
    it(`one client, ${DEVICES} devices x ${RATE_PER_DEVICE}/s, flush ${flushMs} ms`, async () => {
      const result = await Effect.runPromise(run(flushMs))
      console.log(JSON.stringify(result))
      expect(result.snapshotViews).toBe(DEVICES)
      expect(result.batchSize.max).toBeLessThanOrEqual(FLEET_CHUNK)
      expect(result.duplicatesWithinFlush).toBe(0)
      expect(result.viewsPerS).toBeGreaterThan(0)
    }, 60_000)
  }
})
