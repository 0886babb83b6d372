/**
 * The demo fleet keeps the battery budget like a real agent (PROTOCOL.md 9.6): each device
 * follows the engine's advice for its power state and reports that interval and its own cost,
 * except the one playing an older agent, so the console has both kinds to show.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DemoFleet from "../src/DemoFleet.js"
import * as Engine from "../src/Engine.js"
import { Push } from "../src/push/Push.js"
import { waitFor } from "./support/TestAdmin.js"
import { openDatabase, testConfig } from "./support/TestEngine.js"

let release: () => Promise<void>
let runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown>

interface Stored {
  readonly hardware_id: string
  readonly at_ms: number
  readonly agent_version: string
  readonly interval_s: number | null
  readonly wakeups: number | null
  readonly tx_bytes: number | null
  readonly reconnects: number | null
}

const stored = () =>
  runtime.runPromise(
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql<Stored>`select d.hardware_id, extract(epoch from h.recorded_at)::float8 * 1000 as at_ms, h.agent_version, h.interval_s, h.wakeups,
          h.tx_bytes, h.reconnects
        from heartbeats h join devices d on d.id = h.device_id order by h.recorded_at`
    )
  )

beforeAll(async () => {
  const opened = await openDatabase()
  release = opened.release
  // Engine interval 1 s: the default advice is 1 s charging, 2 s on battery, 4 s metered.
  runtime = ManagedRuntime.make(
    DemoFleet.layer.pipe(
      Layer.provideMerge(Engine.coreLayerWith(Push.layerDisabled)),
      Layer.provideMerge(testConfig(opened.database, { demoDevices: 5, heartbeatInterval: Duration.seconds(1) })),
      Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
    )
  )
  await runtime.runPromise(Effect.void)
})

afterAll(async () => {
  await runtime?.dispose()
  await release?.()
})

describe("demo fleet", () => {
  it("follows the advised interval for each device's state and reports its cost; the older agent reports none", async () => {
    const rows = await waitFor(async () => {
      const all = await stored()
      const scanner = all.filter((row) => row.hardware_id === "demo-1")
      return scanner.length >= 2 && new Set(all.map((row) => row.hardware_id)).size === 5 ? all : undefined
    }, Duration.seconds(15))
    const latest = new Map(rows.map((row) => [row.hardware_id, row]))
    // The scanner on battery over wifi, the cellular phone metered, the kiosks (one over HTTP) plugged in.
    expect([1, 2, 3, 5].map((n) => latest.get(`demo-${n}`)?.interval_s)).toEqual([2, 1, 4, 1])
    expect(latest.get("demo-4")).toMatchObject({ agent_version: "0.0.9-demo", interval_s: null, wakeups: null, tx_bytes: null, reconnects: null })
    const [first, second] = rows.filter((row) => row.hardware_id === "demo-1")
    // Its first sample counts the connection (a wake-up and a reconnect), the next one the bytes of the first.
    expect(first).toMatchObject({ wakeups: 1, reconnects: 1, tx_bytes: 0 })
    expect(second!.tx_bytes).toBeGreaterThan(200)
    expect(second!.wakeups).toBeGreaterThanOrEqual(1)
    expect(second!.at_ms - first!.at_ms).toBeGreaterThan(1_500)
  })
})
