/**
 * The shared half of WatchFleet, without rpc: members of one broadcaster share each flush's
 * rendering; a member that stops taking holds no flush and later gets one catch-up with each
 * device's latest view. Flushes are run by hand (the broadcaster's own period is an hour here).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, PubSub, Scope } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as FleetBroadcaster from "../src/admin/internal/FleetBroadcaster.js"
import type { DeviceView } from "../src/DeviceRegistry.js"
import { fakeRegistry } from "./support/LiveServer.js"

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

const viewOf = (i: number, seq: number): DeviceView => ({
  deviceId: `dev_${i}`,
  presence: "connected",
  presenceReason: "connected",
  presenceSince: 0,
  transport: "ws",
  lastHeartbeatAt: seq,
  lastHeartbeat: undefined,
  acceptedSeq: seq,
  durableSeq: seq
})

interface Rendered {
  readonly devices: ReadonlyArray<{ readonly id: string; readonly seq: number }>
}

/** A registry of `devices` devices at seq 0 whose changes the test makes, and a broadcaster over it. */
const setup = (devices: number) =>
  Effect.gen(function* () {
    const pubsub = yield* PubSub.unbounded<DeviceView>()
    const latest = new Map<string, DeviceView>()
    for (let i = 0; i < devices; i++) latest.set(`dev_${i}`, viewOf(i, 0))
    const registry = fakeRegistry(latest, pubsub)
    let renders = 0
    const broadcaster = yield* FleetBroadcaster.make<Rendered>({
      registry,
      period: "1 hour",
      render: (views) => {
        renders++
        return [{ devices: views.map((v) => ({ id: v.deviceId, seq: v.acceptedSeq })) }]
      }
    })
    /** Devices `ids` change to `seq`; returns once the broadcaster has marked them dirty. */
    const change = (ids: ReadonlyArray<number>, seq: number) =>
      Effect.gen(function* () {
        for (const i of ids) {
          const view = viewOf(i, seq)
          latest.set(view.deviceId, view)
          yield* PubSub.publish(pubsub, view)
        }
        while (broadcaster.stats().dirty < new Set(ids).size) yield* Effect.yieldNow()
      })
    return { broadcaster, change, renders: () => renders }
  })

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("FleetBroadcaster", () => {
  it.scoped("members get the snapshot as of joining, then every flush, rendered once for all of them", () =>
    Effect.gen(function* () {
      const { broadcaster, change, renders } = yield* setup(3)
      const a = yield* broadcaster.join
      const b = yield* broadcaster.join
      expect(a.snapshot.map((v) => v.deviceId)).toEqual(["dev_0", "dev_1", "dev_2"])

      const waiting = yield* Effect.fork(a.next) // a waits for the flush; b takes it afterwards
      yield* change([1], 1)
      yield* change([1], 2)
      yield* broadcaster.flush
      const toA = yield* Fiber.join(waiting)
      const toB = yield* b.next
      expect(toA).toBe(toB)
      expect(renders()).toBe(1)
      expect(toA).toEqual([{ devices: [{ id: "dev_1", seq: 2 }] }])
    })
  )

  it.scoped("a member that stops taking holds none of the flushes it misses, then gets each device's latest view once", () =>
    Effect.gen(function* () {
      const { broadcaster, change, renders } = yield* setup(100)
      const fast = yield* broadcaster.join
      const slow = yield* broadcaster.join
      const missed: Array<WeakRef<object>> = []
      let fastViews = 0
      for (let round = 1; round <= 30; round++) {
        yield* change(range(100), round)
        yield* broadcaster.flush
        const batches = yield* fast.next
        fastViews += batches.reduce((n, b) => n + b.devices.length, 0)
        missed.push(new WeakRef(batches))
      }
      // The fast member got every flush; the slow one is behind, holding no flush.
      expect(fastViews).toBe(30 * 100)
      expect(broadcaster.stats()).toMatchObject({ members: 2, behind: 1, held: 0, flushes: 30 })
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
      gc()
      // Every missed flush but the last (the fast member just took it) is garbage: nothing queues them.
      expect(missed.slice(0, -1).flatMap((ref, i) => (ref.deref() === undefined ? [] : [i]))).toEqual([])

      const catchUp = yield* slow.next
      expect(renders()).toBe(31)
      const devices = catchUp.flatMap((b) => b.devices)
      expect(devices).toHaveLength(100)
      expect(new Set(devices.map((d) => d.id)).size).toBe(100)
      expect(devices.every((d) => d.seq === 30)).toBe(true)

      // Caught up: back on the shared flushes.
      yield* change([5], 31)
      yield* broadcaster.flush
      const [toSlow, toFast] = [yield* slow.next, yield* fast.next]
      expect(toSlow).toBe(toFast)
      expect(toSlow).toEqual([{ devices: [{ id: "dev_5", seq: 31 }] }])
    })
  )

  it.scoped("a catch-up covers the devices of every flush from the first one missed, and no other", () =>
    Effect.gen(function* () {
      const { broadcaster, change } = yield* setup(10)
      const member = yield* broadcaster.join
      yield* change([0], 1)
      yield* broadcaster.flush
      expect(yield* member.next).toEqual([{ devices: [{ id: "dev_0", seq: 1 }] }])
      yield* change([1], 2)
      yield* broadcaster.flush // held
      expect(broadcaster.stats()).toMatchObject({ held: 1, behind: 0 })
      yield* change([2], 3)
      yield* broadcaster.flush // now behind: the held flush is dropped
      expect(broadcaster.stats()).toMatchObject({ held: 0, behind: 1 })
      yield* change([1], 4)
      yield* broadcaster.flush
      const devices = (yield* member.next).flatMap((b) => b.devices)
      expect(devices.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
        { id: "dev_1", seq: 4 },
        { id: "dev_2", seq: 3 }
      ])
    })
  )

  it.scoped("a member that left receives nothing more, and without members nothing is rendered", () =>
    Effect.gen(function* () {
      const { broadcaster, change, renders } = yield* setup(3)
      const scope = yield* Scope.make()
      yield* Scope.extend(broadcaster.join, scope)
      expect(broadcaster.stats().members).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(broadcaster.stats().members).toBe(0)
      yield* change([0, 1], 1)
      yield* broadcaster.flush
      expect(renders()).toBe(0)
    })
  )
})
