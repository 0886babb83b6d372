/**
 * `npm start`: the engine with configuration from the environment, JSON logs, and graceful
 * shutdown on SIGINT/SIGTERM (runMain interrupts the main fiber; every layer's finalizer runs).
 */
// First: V8 settings must be in place before the engine allocates (see the module).
import { adjustHeapHeadroom } from "./internal/RuntimeTuning.js"
// Second: find libuv's pool and lower its priority while the process is still quiet (see the module).
import { poolPriority } from "./internal/ThreadPoolPriority.js"
import { NodeRuntime } from "@effect/platform-node"
import { Duration, Effect, Layer, Logger, Option, Schedule } from "effect"
import { AdminServer } from "./AdminServer.js"
import { DatabaseInfoTag } from "./Database.js"
import { DevicePlane } from "./DevicePlane.js"
import { DeviceRegistry } from "./DeviceRegistry.js"
import * as Engine from "./Engine.js"
import { EngineConfig, engineConfig } from "./EngineConfig.js"

const announce = Effect.gen(function* () {
  const plane = yield* DevicePlane
  const admin = yield* AdminServer
  const database = yield* DatabaseInfoTag
  const config = yield* EngineConfig
  yield* Effect.logInfo("NexMDM engine ready").pipe(
    Effect.annotateLogs({
      devicePlane: plane.url,
      adminPlane: admin.url,
      metrics: `${admin.url}/metrics`,
      apiReference: `${admin.url}/api/docs`,
      database: `${database.kind}: ${database.location}`,
      demoDevices: config.demoDevices
    })
  )
  // argon2 runs on libuv's pool: at low priority it cannot crowd out the heartbeat path.
  const pool = yield* Effect.promise(() => poolPriority)
  yield* (pool.threads > 0 ? Effect.logDebug("thread pool at low priority") : Effect.logDebug("thread pool priority unchanged")).pipe(
    Effect.annotateLogs({ nice: pool.nice, threads: pool.threads })
  )
  if (database.kind === "embedded") {
    yield* Effect.logWarning(
      "running on the embedded PGlite database: it never fsyncs and is for trying NexMDM out; set DATABASE_URL for production"
    )
  }
  if (Option.isNone(config.tlsCertFile)) {
    yield* Effect.logInfo("device plane without TLS: put it behind a TLS proxy or set NEXMDM_TLS_CERT_FILE/NEXMDM_TLS_KEY_FILE")
  }
})

/** The GC headroom follows the connected fleet (see RuntimeTuning.heapGrowingPercentFor). */
const heapHeadroom = Layer.scopedDiscard(
  Effect.gen(function* () {
    const registry = yield* DeviceRegistry
    let last: number | undefined
    const adjust = Effect.suspend(() => {
      const { ws, http } = registry.counts()
      const percent = adjustHeapHeadroom(ws + http)
      if (percent === last) return Effect.void
      last = percent
      return Effect.logDebug("heap headroom").pipe(Effect.annotateLogs({ heapGrowingPercent: percent, devices: ws + http }))
    })
    yield* Effect.forkScoped(Effect.repeat(adjust, Schedule.spaced(Duration.seconds(10))))
  })
)

Layer.launch(Layer.mergeAll(Layer.effectDiscard(announce), heapHeadroom).pipe(Layer.provideMerge(Engine.layer), Layer.provide(EngineConfig.layer))).pipe(
  Effect.provide(Logger.json),
  Effect.provide(Layer.unwrapEffect(Effect.map(engineConfig, (config) => Logger.minimumLogLevel(config.logLevel)))),
  Effect.tapErrorCause((cause) => Effect.logFatal("engine failed to start", cause)),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
