/**
 * Runs one actor per active device: state + bounded mailbox. An actor's fiber exists only while it
 * must wait (loading its state from the database; messages queue meanwhile); a loaded actor drains
 * its mailbox synchronously in the caller's turn, so a heartbeat costs no fiber and an idle device
 * is a small object (a parked fiber per device would cost ~11 KB). The registry owns the sweeper
 * that turns time into Tick messages (presence deadlines, durable notices, command expiry, wake-up
 * retries, long-poll deadlines), passivates long-offline actors, and publishes state changes for
 * watchers (one device or the whole fleet).
 */
import { CloseCode } from "@nexmdm/protocol"
import { Context, Duration, Effect, FiberSet, Layer, Option, PubSub, type Queue, Schedule, type Scope, Stream } from "effect"
import {
  type ActorEffect,
  type ActorMessage,
  type ActorPolicy,
  type DeviceRecord,
  type DeviceState,
  type Env,
  type HeartbeatSample,
  errorFrame,
  initialState,
  needsTick,
  step
} from "./DeviceActor.js"
import { DeviceDirectory } from "./DeviceDirectory.js"
import { DeviceEventLog } from "./DeviceEventLog.js"
import { batteryPolicyOf, EngineConfig } from "./EngineConfig.js"
import * as Metrics from "./Metrics.js"
import { TelemetryWriter } from "./TelemetryWriter.js"
import { Tickets } from "./Tickets.js"
import { CommandLog } from "./commands/CommandLog.js"
import { Waker } from "./commands/Waker.js"

/** What watchers see of a device. */
export interface DeviceView {
  readonly deviceId: string
  readonly presence: DeviceState["presence"]
  readonly presenceReason: string
  readonly presenceSince: number
  readonly transport: DeviceState["transport"]
  readonly lastHeartbeatAt: number | undefined
  readonly lastHeartbeat: HeartbeatSample | undefined
  readonly acceptedSeq: number
  readonly durableSeq: number
}

export type TellResult = "queued" | "mailbox_full" | "stopping"

interface Actor {
  readonly deviceId: string
  state: DeviceState | undefined
  readonly mailbox: Array<ActorMessage>
  running: boolean
  /** Lowest heartbeat seq refused because the mailbox was full, handed to the next step. */
  overflowSeq: number | undefined
}

export class DeviceRegistry extends Context.Tag("@nexmdm/engine/DeviceRegistry")<
  DeviceRegistry,
  {
    /** Queues a message for a device's actor, starting the actor if needed. Never blocks. */
    readonly tell: (deviceId: string, message: ActorMessage) => TellResult
    readonly view: (deviceId: string) => Option.Option<DeviceView>
    readonly snapshot: () => ReadonlyArray<DeviceView>
    /**
     * Visits the state of every loaded actor without copying it: for periodic whole-fleet scans
     * (alert evaluation), where a snapshot's 10,000 views lived long enough to be promoted. The
     * visitor must copy what it keeps: the state changes under it.
     */
    readonly forEachState: (visit: (state: Readonly<DeviceState>) => void) => void
    /** Every state change of every device (a slow watcher loses the oldest changes, never blocks actors). */
    readonly changes: Stream.Stream<DeviceView>
    readonly watch: (deviceId: string) => Stream.Stream<DeviceView>
    /** `changes` as a queue subscribed when this returns (take a snapshot after it: nothing falls in between). */
    readonly subscribe: Effect.Effect<Queue.Dequeue<DeviceView>, never, Scope.Scope>
    readonly counts: () => { readonly actors: number; readonly ws: number; readonly http: number }
    /** Runs one sweep now (the sweeper fiber also runs it every NEXMDM_SWEEP_INTERVAL_MS). */
    readonly sweep: Effect.Effect<void>
    /** Stops accepting messages and closes every socket with the given code. */
    readonly closeAll: (code: number, reason: string) => Effect.Effect<void>
  }
>() {}

const toView = (state: DeviceState): DeviceView => ({
  deviceId: state.deviceId,
  presence: state.presence,
  presenceReason: state.presenceReason,
  presenceSince: state.presenceSince,
  transport: state.transport,
  lastHeartbeatAt: state.lastHeartbeatAt > 0 ? state.lastHeartbeatAt : undefined,
  // The actor overwrites its sample in place on every heartbeat: a view keeps its own copy.
  lastHeartbeat: state.lastHeartbeat === undefined ? undefined : { ...state.lastHeartbeat },
  acceptedSeq: state.acceptedSeq,
  durableSeq: state.durableSeq
})

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const directory = yield* DeviceDirectory
  const writer = yield* TelemetryWriter
  const eventLog = yield* DeviceEventLog
  const tickets = yield* Tickets
  const commandLog = yield* CommandLog
  const waker = yield* Waker
  const changes = yield* PubSub.sliding<DeviceView>(16_384)
  const run = yield* FiberSet.makeRuntime<never>()

  const policy: ActorPolicy = {
    heartbeatIntervalS: Math.round(Duration.toSeconds(config.heartbeatInterval)),
    ticketTtlMs: tickets.ttlMs,
    overdueAfterMs: Duration.toMillis(config.overdueAfter),
    offlineAfterMs: Duration.toMillis(config.offlineAfter),
    graceMs: Duration.toMillis(config.grace),
    // Quiet for two sweeps: a device heartbeating every second gets its watermark in acks instead.
    durableNoticeAfterMs: Math.max(2 * Duration.toMillis(config.sweepInterval), 4 * Duration.toMillis(config.batchMaxDelay)),
    wakeRetryMs: Duration.toMillis(config.wakeRetry),
    battery: batteryPolicyOf(config),
    maxWakeups: config.maxWakeups
  }
  const actors = new Map<string, Actor>()
  /** Subscribers of `changes`: while there are none, state changes are not turned into views. */
  let watchers = 0
  const subscribe = Effect.acquireRelease(
    Effect.sync(() => {
      watchers++
    }),
    () =>
      Effect.sync(() => {
        watchers--
      })
  ).pipe(Effect.zipRight(PubSub.subscribe(changes)))
  const changeStream = Stream.unwrapScoped(Effect.map(subscribe, (queue) => Stream.fromQueue(queue)))
  // The writer's knowledge of what is persisted; actors read it when they step.
  const durable = new Map<string, number>()
  writer.onDurable((batch) => {
    for (const [deviceId, seq] of batch) if (seq > (durable.get(deviceId) ?? 0)) durable.set(deviceId, seq)
  })
  let stopping = false

  const envFor = (actor: Actor, now: number): Env => ({
    now,
    policy,
    writerHasRoom: writer.hasRoom,
    durableSeq: durable.get(actor.deviceId) ?? 0,
    overflowSeq: actor.overflowSeq
  })

  /** Logs from plain code (rare paths only): each runs as its own small fiber. */
  const logError = (message: string, annotations: Record<string, unknown>) =>
    void run(Effect.logError(message).pipe(Effect.annotateLogs({ module: "DeviceRegistry", ...annotations })))

  /** Carries out a step's effects. Plain synchronous code: it runs on the heartbeat path. */
  const apply = (actor: Actor, effects: ReadonlyArray<ActorEffect>) => {
    let changed = false
    for (const effect of effects) {
      switch (effect._tag) {
        case "Send":
          effect.connection.send(effect.frame)
          break
        case "Close":
          effect.connection.close(effect.code, effect.reason)
          break
        case "Write":
          // The step checked for room; a refusal here would be a bug, and must be loud.
          if (!writer.offer(effect.row)) {
            logError("write buffer refused a row the actor accepted", { deviceId: actor.deviceId, seq: effect.row.seq })
          }
          break
        case "Record":
          Metrics.presenceTransitions(effect.event.presence ?? effect.event.kind)
          if (!eventLog.record(effect.event)) {
            logError("device event buffer full: event not stored", {
              deviceId: effect.event.deviceId,
              kind: effect.event.kind,
              reason: effect.event.reason
            })
          }
          break
        case "Reply":
          effect.run()
          break
        case "Changed":
          changed = true
          break
        case "HeartbeatCounted":
          Metrics.heartbeats(effect.outcome)
          break
        case "CommandChanged":
          if (!commandLog.record(effect.transition)) {
            logError("command log buffer full: transition not stored", {
              deviceId: effect.transition.deviceId,
              commandId: effect.transition.commandId
            })
          }
          break
        case "Wake": {
          const { commandId, fcmToken, attempt } = effect
          run(
            waker.wake({ deviceId: actor.deviceId, fcmToken, commandId, attempt }).pipe(
              Effect.flatMap((result) =>
                result === "token_invalid" ? Effect.sync(() => tell(actor.deviceId, { _tag: "FcmToken", token: undefined })) : Effect.void
              )
            )
          )
          break
        }
        case "HeartbeatIntervalChanged":
          run(
            directory.saveHeartbeatInterval(actor.deviceId, effect.intervalS).pipe(
              Effect.retry(Schedule.exponential(Duration.millis(200)).pipe(Schedule.compose(Schedule.recurs(8)))),
              Effect.catchAll((error) =>
                Effect.logError("device heartbeat interval not stored: it reverts to the engine's after a restart", error).pipe(
                  Effect.annotateLogs({ module: "DeviceRegistry", deviceId: actor.deviceId })
                )
              )
            )
          )
          break
        case "RenewTicket": {
          const issued = tickets.issue(actor.deviceId, actor.state!.generation)
          effect.connection.send(JSON.stringify({ type: "ticket", ticket: issued.ticket, expiresAt: issued.expiresAt }))
          break
        }
      }
    }
    // Sliding PubSub: offering never blocks the actor; a slow watcher loses the oldest changes.
    // Without watchers (no console open) a heartbeat builds no view at all.
    if (changed && watchers > 0 && actor.state !== undefined) changes.unsafeOffer(toView(actor.state))
  }

  /**
   * Processes the mailbox until it is empty, synchronously. A loaded actor needs no fiber for this:
   * forking one per message cost ~50 µs of the ~90 µs a heartbeat took (profiled at 2,000/s).
   */
  const drainLoaded = (actor: Actor) => {
    try {
      while (actor.mailbox.length > 0) {
        const message = actor.mailbox.shift()!
        const [next, effects] = step(actor.state!, message, envFor(actor, Date.now()))
        actor.overflowSeq = undefined
        actor.state = next
        apply(actor, effects)
        if (message._tag === "Heartbeat") Metrics.observeAck((performance.now() - message.receivedAt) / 1000)
      }
    } catch (error) {
      logError("device actor failed", { deviceId: actor.deviceId, error: String(error) })
    } finally {
      actor.running = false
    }
  }

  /** Answers every queued message of an actor that cannot start (unknown device). */
  const refuseAll = (actor: Actor) => {
    for (const message of actor.mailbox.splice(0)) {
      if (message._tag === "Connect") {
        message.connection.send(errorFrame("TICKET_INVALID", "unknown device"))
        message.connection.close(CloseCode.unauthenticated, "unknown device")
      } else if (message._tag === "HttpHeartbeats" || message._tag === "Poll") {
        message.reply("superseded")
      } else if (message._tag === "CancelCommand") {
        message.reply(false)
      }
    }
  }

  const load = (actor: Actor) =>
    directory.load(actor.deviceId).pipe(
      Effect.retry(Schedule.exponential(Duration.millis(100)).pipe(Schedule.either(Schedule.spaced(Duration.seconds(5))))),
      Effect.map(Option.map((record: DeviceRecord) => initialState(record, Date.now())))
    )

  /** The actor's fiber: loads its starting state from the database (messages queue meanwhile), then drains. */
  const loadAndDrain = (actor: Actor): Effect.Effect<void> =>
    Effect.gen(function* () {
      const loaded = yield* load(actor)
      if (Option.isNone(loaded)) {
        refuseAll(actor)
        actors.delete(actor.deviceId)
        actor.running = false
        return
      }
      actor.state = loaded.value
      drainLoaded(actor)
    }).pipe(
      Effect.catchAllCause((cause) =>
        Effect.logError("device actor failed to load", cause).pipe(
          Effect.annotateLogs({ module: "DeviceRegistry", deviceId: actor.deviceId }),
          Effect.zipRight(
            Effect.sync(() => {
              actor.running = false
            })
          )
        )
      )
    )

  const tell = (deviceId: string, message: ActorMessage): TellResult => {
    if (stopping) return "stopping"
    let actor = actors.get(deviceId)
    if (actor === undefined) {
      actor = { deviceId, state: undefined, mailbox: [], running: false, overflowSeq: undefined }
      actors.set(deviceId, actor)
    }
    if (actor.mailbox.length >= config.mailboxSize) {
      const seq = message._tag === "Heartbeat" ? message.heartbeat.seq : message._tag === "HttpHeartbeats" ? message.heartbeats[0]?.seq : undefined
      if (seq !== undefined) actor.overflowSeq = Math.min(actor.overflowSeq ?? seq, seq)
      return "mailbox_full"
    }
    actor.mailbox.push(message)
    if (!actor.running) {
      actor.running = true
      if (actor.state === undefined) run(loadAndDrain(actor))
      else drainLoaded(actor)
    }
    return "queued"
  }

  const sweep = Effect.sync(() => {
    const now = Date.now()
    const passivateAfterMs = Duration.toMillis(config.passivateAfter)
    for (const actor of actors.values()) {
      const state = actor.state
      if (state === undefined || actor.running || actor.mailbox.length > 0) continue
      const durableSeq = Math.max(state.durableSeq, durable.get(actor.deviceId) ?? 0)
      if (needsTick(state, now, policy, durableSeq)) {
        tell(actor.deviceId, { _tag: "Tick" })
      } else if (
        state.presence === "offline" &&
        state.connection === undefined &&
        now - state.presenceSince >= passivateAfterMs &&
        state.acceptedSeq <= durableSeq
      ) {
        // Everything it accepted is persisted: the database can rebuild this actor.
        actors.delete(actor.deviceId)
        durable.delete(actor.deviceId)
      }
    }
  })

  // Devices present when the engine last stopped start in grace: they either reconnect or the
  // sweeper declares them offline, with the reason "engine restarted".
  const present = yield* directory.loadPresent.pipe(Effect.orDie)
  const startedAt = Date.now()
  for (const record of present) {
    actors.set(record.deviceId, {
      deviceId: record.deviceId,
      state: initialState(record, startedAt),
      mailbox: [],
      running: false,
      overflowSeq: undefined
    })
  }
  if (present.length > 0) {
    yield* Effect.logInfo("restored device actors").pipe(Effect.annotateLogs({ module: "DeviceRegistry", devices: present.length }))
  }

  yield* sweep.pipe(
    Effect.repeat(Schedule.spaced(config.sweepInterval)),
    Effect.catchAllCause((cause) => Effect.logError("sweeper failed", cause)),
    Effect.forkScoped
  )

  const counts = () => {
    let ws = 0
    let http = 0
    for (const actor of actors.values()) {
      const state = actor.state
      if (state === undefined || state.presence === "offline" || state.presence === "grace") continue
      if (state.connection !== undefined) ws++
      else if (state.transport === "http") http++
    }
    return { actors: actors.size, ws, http }
  }
  yield* Effect.acquireRelease(
    Effect.sync(() => Metrics.registerRegistryGauges(counts)),
    (unregister) => Effect.sync(unregister)
  )

  const closeAll = (code: number, reason: string) =>
    Effect.sync(() => {
      stopping = true
      for (const actor of actors.values()) actor.state?.connection?.close(code, reason)
    })

  const view = (deviceId: string) => Option.map(Option.fromNullable(actors.get(deviceId)?.state), toView)

  return DeviceRegistry.of({
    tell,
    view,
    snapshot: () => [...actors.values()].flatMap((actor) => (actor.state === undefined ? [] : [toView(actor.state)])),
    forEachState: (visit) => {
      for (const actor of actors.values()) if (actor.state !== undefined) visit(actor.state)
    },
    changes: changeStream,
    watch: (deviceId) => changeStream.pipe(Stream.filter((change) => change.deviceId === deviceId)),
    subscribe,
    counts,
    sweep,
    closeAll
  })
})

export const layer = Layer.scoped(DeviceRegistry, make)
