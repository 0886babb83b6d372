/**
 * The console's live streams (`LiveRpcs` of @nexmdm/protocol/live) served over WebSocket at
 * `/api/live` on the admin plane.
 *
 * Authentication: the access JWT in each rpc's payload, checked like the REST API's bearer token
 * (signature, expiry, then the user's in-memory session state: disabled, tokens_valid_after).
 * An accepted stream is guarded: it fails with `Unauthorized` at the token's `exp`, and within
 * REVOCATION_CHECK of a revocation (a map lookup per stream per check, no query).
 *
 * Coalescing (WatchFleet): changes of the registry mark devices dirty in a Map (a device changing
 * 20 times in a window is one entry); every `flushMs` the dirty set is emptied and sent as one or
 * more batches (at most FLEET_CHUNK devices each) with each device's view as of the flush. A
 * client slower than the flushes only makes the dirty set wait: it is bounded by the fleet size,
 * and the registry's sliding PubSub never blocks an actor.
 */
import { HttpApp } from "@effect/platform"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import {
  DEFAULT_FLUSH_MS,
  type DeviceLive,
  FLEET_CHUNK,
  type FleetBatch,
  LiveRpcs,
  Unauthorized
} from "@nexmdm/protocol/live"
import { Chunk, Duration, Effect, Either, Layer, Option, Queue, Schedule, type Scope, Stream } from "effect"
import type { CommandTransition } from "../CommandLifecycle.js"
import { Commands } from "../commands/Commands.js"
import { DeviceRegistry, type DeviceView } from "../DeviceRegistry.js"
import { AccessTokens } from "./AccessTokens.js"
import { Accounts } from "./Accounts.js"

export const LIVE_PATH = "/api/live"
/** How often an open stream re-checks its user's session (revocation, disabled account). */
export const REVOCATION_CHECK = Duration.seconds(1)

export const toDeviceLive = (view: DeviceView): DeviceLive => {
  const hb = view.lastHeartbeat
  return {
    id: view.deviceId,
    presence: view.presence,
    presenceReason: view.presenceReason,
    presenceSince: view.presenceSince,
    ...(view.transport === undefined ? {} : { transport: view.transport }),
    ...(view.lastHeartbeatAt === undefined ? {} : { lastHeartbeatAt: view.lastHeartbeatAt }),
    ...(hb === undefined
      ? {}
      : {
          lastHeartbeat: {
            seq: hb.seq,
            batteryPct: hb.batteryPct,
            charging: hb.charging,
            memFreeMb: hb.memFreeMb,
            memTotalMb: hb.memTotalMb,
            storageFreeMb: hb.storageFreeMb,
            network: hb.network,
            ...(hb.signalDbm === undefined ? {} : { signalDbm: hb.signalDbm }),
            ...(hb.foregroundApp === undefined ? {} : { foregroundApp: hb.foregroundApp }),
            agentVersion: hb.agentVersion,
            uptimeS: hb.uptimeS,
            recordedAt: hb.recordedAt
          }
        }),
    acceptedSeq: view.acceptedSeq,
    durableSeq: view.durableSeq
  }
}

const toCommandUpdate = (t: CommandTransition) => ({
  commandId: t.commandId,
  deviceId: t.deviceId,
  status: t.status,
  at: t.at,
  ...(t.sentVia === undefined ? {} : { sentVia: t.sentVia }),
  ...(t.attempts === undefined ? {} : { attempts: t.attempts }),
  ...(t.result === undefined ? {} : { result: t.result }),
  ...(t.error === undefined ? {} : { error: t.error }),
  ...(t.unreachable === undefined ? {} : { unreachable: t.unreachable })
})

const chunked = (kind: FleetBatch["kind"], devices: ReadonlyArray<DeviceLive>): Array<FleetBatch> => {
  const batches: Array<FleetBatch> = []
  for (let i = 0; i < devices.length; i += FLEET_CHUNK) batches.push({ kind, devices: devices.slice(i, i + FLEET_CHUNK) })
  return batches
}

export const handlersLayer = LiveRpcs.toLayer(
  Effect.gen(function* () {
    const registry = yield* DeviceRegistry
    const commands = yield* Commands
    const accessTokens = yield* AccessTokens
    const accounts = yield* Accounts

    /** Accepts the token now, or says why not; then a guard that fails when it stops being valid. */
    const authenticate = (token: string) =>
      Effect.suspend(() => {
        if (token === "") return Effect.fail(new Unauthorized({ code: "TOKEN_MISSING", message: "an access token is required" }))
        const verified = accessTokens.verify(token, Date.now())
        if (Either.isLeft(verified)) {
          const code = verified.left.code === "TOKEN_EXPIRED" ? "TOKEN_EXPIRED" : "TOKEN_INVALID"
          return Effect.fail(new Unauthorized({ code, message: verified.left.message }))
        }
        const claims = verified.right
        const sessionProblem = (): Unauthorized | undefined => {
          const state = accounts.sessionState(claims.sub)
          if (state?.disabled === true) return new Unauthorized({ code: "ACCOUNT_DISABLED", message: "this account is disabled" })
          if (state === undefined || Math.round(claims.iat * 1000) < state.tokensValidAfterMs) {
            return new Unauthorized({ code: "SESSION_REVOKED", message: "this session was revoked: sign in again" })
          }
          return undefined
        }
        const now = sessionProblem()
        if (now !== undefined) return Effect.fail(now)
        const expiry = Effect.sleep(Duration.millis(Math.max(0, claims.exp * 1000 - Date.now()))).pipe(
          Effect.zipRight(Effect.fail(new Unauthorized({ code: "TOKEN_EXPIRED", message: "access token expired" })))
        )
        const revocation = Effect.suspend(() => {
          const problem = sessionProblem()
          return problem === undefined ? Effect.void : Effect.fail(problem)
        }).pipe(Effect.repeat(Schedule.spaced(REVOCATION_CHECK)), Effect.zipRight(Effect.never))
        // raceFirst: the first to end (here: to fail) wins; `race` would wait for a success.
        return Effect.succeed(Effect.raceFirst(expiry, revocation))
      })

    /** The stream, failing with Unauthorized up front or once the token stops being valid. */
    const guarded = <A, E>(token: string, stream: Stream.Stream<A, E>): Stream.Stream<A, E | Unauthorized> =>
      Stream.unwrap(Effect.map(authenticate(token), (guard) => Stream.interruptWhen(stream, guard)))

    const fleet = (flushMs: number): Stream.Stream<FleetBatch> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const dirty = new Map<string, DeviceView>()
          // Subscribed before the snapshot is taken: no change falls in between.
          const queue = yield* registry.subscribe
          yield* Queue.takeBetween(queue, 1, Number.MAX_SAFE_INTEGER).pipe(
            Effect.tap((views) => Effect.sync(() => Chunk.forEach(views, (view) => void dirty.set(view.deviceId, view)))),
            Effect.forever,
            Effect.forkScoped
          )
          const snapshot = registry.snapshot().map(toDeviceLive)
          const first = chunked("snapshot", snapshot)
          if (first.length === 0) first.push({ kind: "snapshotEnd", devices: [] })
          else first[first.length - 1] = { kind: "snapshotEnd", devices: first[first.length - 1]!.devices }
          const flush = Effect.sync(() => {
            if (dirty.size === 0) return Chunk.empty<FleetBatch>()
            const devices: Array<DeviceLive> = []
            // The view as of now (a later change than the one that marked it is fine: it is newer).
            for (const [id, marked] of dirty) devices.push(toDeviceLive(Option.getOrElse(registry.view(id), () => marked)))
            dirty.clear()
            return Chunk.unsafeFromArray(chunked("changes", devices))
          })
          const changes = Stream.fromSchedule(Schedule.fixed(Duration.millis(flushMs))).pipe(
            Stream.mapConcatChunkEffect(() => flush)
          )
          return Stream.concat(Stream.fromIterable(first), changes)
        })
      )

    return {
      WatchFleet: ({ accessToken, flushMs }) => guarded(accessToken, fleet(flushMs ?? DEFAULT_FLUSH_MS)),
      WatchDevice: ({ accessToken, deviceId }) =>
        guarded(
          accessToken,
          Stream.unwrapScoped(
            Effect.gen(function* () {
              // Subscribe first, then read the current view: no change falls in between.
              const queue = yield* registry.subscribe
              const current = Option.map(registry.view(deviceId), toDeviceLive)
              const rest = Stream.fromQueue(queue).pipe(
                Stream.filter((view) => view.deviceId === deviceId),
                Stream.map(toDeviceLive)
              )
              return Option.isSome(current) ? Stream.concat(Stream.make(current.value), rest) : rest
            })
          )
        ),
      WatchCommands: ({ accessToken, deviceId }) =>
        guarded(
          accessToken,
          (deviceId === undefined ? commands.updates : commands.updates.pipe(Stream.filter((t) => t.deviceId === deviceId))).pipe(
            Stream.map(toCommandUpdate)
          )
        )
    }
  })
)

/** The WebSocket endpoint as an HTTP app (mounted by AdminApiLive at LIVE_PATH). */
export const httpApp: Effect.Effect<
  HttpApp.Default<never, Scope.Scope>,
  never,
  Scope.Scope | DeviceRegistry | Commands | AccessTokens | Accounts
> = RpcServer.toHttpAppWebsocket(LiveRpcs).pipe(
  Effect.provide(Layer.merge(handlersLayer, RpcSerialization.layerJson))
)
