/**
 * Throughput of one WatchFleet stream (no database): the real LiveRpcServer handlers behind a fake
 * registry whose change PubSub is driven synthetically (N devices x R changes/s), one client over
 * WebSocket. Prints changes published/s, device views received/s, batches/s and batch sizes, and
 * checks the coalescing contract (each batch <= FLEET_CHUNK; per flush at most one view per device).
 */
import { RpcClient } from "@effect/rpc"
import { FLEET_CHUNK, type FleetBatch, LiveRpcs } from "@nexmdm/protocol/live"
import { Duration, Effect, Fiber, Schedule, Stream } from "effect"
import { describe, expect, it } from "vitest"
import * as LiveServer from "./support/LiveServer.js"

const DEVICES = Number(process.env["LIVE_LOAD_DEVICES"] ?? 2000)
const RATE_PER_DEVICE = Number(process.env["LIVE_LOAD_RATE"] ?? 10)
const SECONDS = Number(process.env["LIVE_LOAD_SECONDS"] ?? 4)

const run = (flushMs: number) =>
  Effect.gen(function* () {
    const server = yield* LiveServer.make(DEVICES)
    const token = server.tokenFor("usr_loadtest000000000000")

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
        server.publish(LiveServer.deviceView(i, ++seqs[i]!, now))
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
    ).pipe(Effect.provide(server.clientLayer))
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
    // No device twice in one batch (guaranteed), and how often one arrives twice in batches that
    // arrived together (a figure only: a slow client's catch-up batch can arrive right behind the
    // next shared flush; FleetBroadcaster.test pins what a catch-up holds).
    let duplicatesInBatch = 0
    for (const b of window) if (new Set(b.batch.devices.map((d) => d.id)).size !== b.batch.devices.length) duplicatesInBatch++
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
      duplicatesInBatch,
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
      expect(result.duplicatesInBatch).toBe(0)
      expect(result.viewsPerS).toBeGreaterThan(0)
    }, 60_000)
  }
})
