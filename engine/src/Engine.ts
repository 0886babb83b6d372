/**
 * The whole engine as one layer. Layers provided later are built earlier and closed later, so
 * start-up runs database -> retention -> write-behind -> actors -> enrollment -> device plane ->
 * admin plane -> ready, and shutdown runs the reverse: draining, stop accepting and close sockets
 * with "going away", stop actors, flush the write-behind, close the database.
 */
import { Effect, Layer, SubscriptionRef } from "effect"
import * as AdminApiLive from "./admin/AdminApiLive.js"
import * as Alerts from "./alerts/Alerts.js"
import * as CommandLog from "./commands/CommandLog.js"
import * as Commands from "./commands/Commands.js"
import * as Waker from "./commands/Waker.js"
import * as Database from "./Database.js"
import * as DemoFleet from "./DemoFleet.js"
import * as DeviceDirectory from "./DeviceDirectory.js"
import * as DeviceEventLog from "./DeviceEventLog.js"
import * as DevicePlane from "./DevicePlane.js"
import * as DeviceRegistry from "./DeviceRegistry.js"
import { EngineStatus } from "./EngineStatus.js"
import * as Enrollment from "./Enrollment.js"
import * as SmtpMailer from "./mail/SmtpMailer.js"
import * as Metrics from "./Metrics.js"
import * as ProvisioningStore from "./provisioning/ProvisioningStore.js"
import * as Releases from "./releases/Releases.js"
import * as Rollouts from "./releases/Rollouts.js"
import { Push } from "./push/Push.js"
import * as Retention from "./Retention.js"
import * as SlowHashBudget from "./SlowHashBudget.js"
import * as TelemetryWriter from "./TelemetryWriter.js"
import * as Tickets from "./Tickets.js"

/** Write-behind with its metrics wired. */
const writerLayer = Layer.scoped(
  TelemetryWriter.TelemetryWriter,
  Effect.gen(function* () {
    const writer = yield* TelemetryWriter.make({
      onBatch: ({ rows, seconds }) => Metrics.writeBatch("heartbeats", rows, seconds),
      onWriteFailed: () => Metrics.writeFailures("heartbeats")
    })
    yield* Metrics.registerCollectorScoped("engine_write_buffer_rows", "Rows held in memory by the write-behind and not yet committed, by table", "gauge", () => [
      { labels: { table: "heartbeats" }, value: writer.buffered() }
    ])
    return writer
  })
)

/** Marks the engine ready once everything is up, and draining as the first step of shutdown. */
const lifecycle = Layer.scopedDiscard(
  Effect.gen(function* () {
    const status = yield* EngineStatus
    yield* Effect.acquireRelease(SubscriptionRef.set(status.phase, "ready"), () =>
      SubscriptionRef.set(status.phase, "draining").pipe(Effect.zipRight(Effect.logInfo("engine draining")))
    )
  })
)

/**
 * Everything except the demo fleet and the admin plane: what tests start. `push` is how absent
 * devices are woken (tests pass one pointed at a local FCM server).
 */
export const coreLayerWith = <E, R>(push: Layer.Layer<Push, E, R>) =>
  Rollouts.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(DevicePlane.layer, Commands.layer)),
    Layer.provideMerge(Layer.mergeAll(Enrollment.layer, ProvisioningStore.layer, Releases.layer)),
    Layer.provideMerge(DeviceRegistry.layer),
    Layer.provideMerge(Layer.mergeAll(writerLayer, DeviceEventLog.layer, DeviceDirectory.layer, CommandLog.layer, Waker.layer)),
    Layer.provideMerge(push),
    Layer.provideMerge(Layer.merge(Tickets.layer, SlowHashBudget.layer)),
    Layer.provideMerge(Retention.layer),
    Layer.provideMerge(Database.layer)
  )

export const coreLayer = coreLayerWith(Push.layer)

/** Alert rules and their evaluation, mailing through SMTP (or into mail_outbox without it). */
const alertsLayer = Alerts.layer.pipe(Layer.provideMerge(SmtpMailer.layer))

export const layer = Layer.mergeAll(lifecycle, DemoFleet.layer).pipe(
  // The admin plane: ops routes and the REST API (/api/v1, /api/openapi.json, /api/docs).
  Layer.provideMerge(AdminApiLive.layer),
  Layer.provideMerge(alertsLayer),
  Layer.provideMerge(coreLayer),
  Layer.provideMerge(EngineStatus.layer)
)
