/**
 * The console's live streams (`LiveRpcs` of @nexmdm/protocol/live) served over WebSocket at
 * `/api/live` on the admin plane.
 *
 * Authentication: the access JWT in each rpc's payload, checked like the REST API's bearer token
 * (signature, expiry, then the user's in-memory session state: disabled, tokens_valid_after).
 * An accepted stream is guarded: it fails with `Unauthorized` at the token's `exp`, and within
 * REVOCATION_CHECK of a revocation (a map lookup per stream per check, no query).
 *
 * WatchFleet: the work is shared by the subscribers of one flush period (`flushMs` rounded down
 * to a multiple of FLUSH_STEP_MS, so that the default and the console's choice each make one
 * group). A group's FleetBroadcaster (internal/) collects dirty devices once (a device changing 20
 * times in a period is one entry), and every period builds each device's view as of the flush,
 * cuts it into batches of at most FLEET_CHUNK devices and serializes them to JSON once
 * (EncodedJson); every subscriber's rpc stream sends that same text (the serialization splices it
 * in, no Schema encode or JSON.stringify per subscriber). The wire is unchanged: clients decode
 * FleetBatch as before. The snapshot is built per subscriber (it is rare).
 * A subscriber slower than the flushes holds at most one flush; behind by more, it holds only
 * the number of the first flush it missed and, when it asks again, gets one catch-up batch of
 * every device flushed since, with its view as of then (latest state, not every change). Nothing
 * waits for a subscriber: not the broadcaster, not the other subscribers, not the actors (the
 * registry's sliding PubSub never blocks them).
 */
import { HttpApp } from "@effect/platform"
import { RpcGroup, RpcSchema, RpcServer } from "@effect/rpc"
import {
  DEFAULT_FLUSH_MS,
  type DeviceLive,
  FLEET_CHUNK,
  type FleetBatch,
  MIN_FLUSH_MS,
  Unauthorized,
  WatchCommands,
  WatchDevice,
  WatchFleet
} from "@nexmdm/protocol/live"
import { Chunk, Duration, Effect, Either, Layer, Option, RcMap, Schedule, type Scope, Stream } from "effect"
import type { CommandTransition } from "../CommandLifecycle.js"
import { Commands } from "../commands/Commands.js"
import { DeviceRegistry, type DeviceView } from "../DeviceRegistry.js"
import { AccessTokens } from "./AccessTokens.js"
import { Accounts } from "./Accounts.js"
import * as EncodedJson from "./internal/EncodedJson.js"
import * as FleetBroadcaster from "./internal/FleetBroadcaster.js"

export const LIVE_PATH = "/api/live"
/** How often an open stream re-checks its user's session (revocation, disabled account). */
export const REVOCATION_CHECK = Duration.seconds(1)
/** WatchFleet subscribers share the broadcaster of their flushMs rounded down to a multiple of this. */
export const FLUSH_STEP_MS = 50

/** The broadcaster period serving a requested flushMs. */
export const flushGroup = (flushMs: number): number => Math.max(MIN_FLUSH_MS, Math.floor(flushMs / FLUSH_STEP_MS) * FLUSH_STEP_MS)

/**
 * The server's side of the rpcs: WatchFleet's elements leave as JSON text made once for every
 * subscriber (the client's side, LiveRpcs, decodes that text as FleetBatch).
 */
export class LiveRpcsServer extends RpcGroup.make(
  WatchFleet.setSuccess(RpcSchema.Stream({ success: EncodedJson.schema, failure: Unauthorized })),
  WatchDevice,
  WatchCommands
) {}

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

/**
 * A batch as JSON text. FleetBatch's schema has no transformations (its Type is its Encoded form:
 * the parameter's type checks it), so JSON.stringify is its encoding.
 */
const encodeBatch = (batch: typeof FleetBatch.Encoded): EncodedJson.EncodedJson => EncodedJson.encode(batch)

const chunked = (kind: FleetBatch["kind"], views: ReadonlyArray<DeviceView>): Array<FleetBatch> => {
  const batches: Array<FleetBatch> = []
  for (let i = 0; i < views.length; i += FLEET_CHUNK) {
    batches.push({ kind, devices: views.slice(i, i + FLEET_CHUNK).map(toDeviceLive) })
  }
  return batches
}

/** A flush or catch-up of the fleet stream, encoded once for all its subscribers. */
export const renderChanges = (views: ReadonlyArray<DeviceView>): Array<EncodedJson.EncodedJson> => chunked("changes", views).map(encodeBatch)

/** The snapshot: batches of kind "snapshot", the last one "snapshotEnd" (alone and empty for no devices). */
export const renderSnapshot = (views: ReadonlyArray<DeviceView>): Array<EncodedJson.EncodedJson> => {
  const batches = chunked("snapshot", views)
  if (batches.length === 0) batches.push({ kind: "snapshotEnd", devices: [] })
  else batches[batches.length - 1] = { kind: "snapshotEnd", devices: batches[batches.length - 1]!.devices }
  return batches.map(encodeBatch)
}

export const handlersLayer = LiveRpcsServer.toLayer(
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

    // One broadcaster per flush period in use; it stops with its last subscriber.
    const groups = yield* RcMap.make({
      lookup: (periodMs: number) => FleetBroadcaster.make({ registry, period: Duration.millis(periodMs), render: renderChanges })
    })

    const fleet = (flushMs: number): Stream.Stream<EncodedJson.EncodedJson> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const broadcaster = yield* RcMap.get(groups, flushGroup(flushMs))
          const member = yield* broadcaster.join
          const snapshot = renderSnapshot(member.snapshot)
          const changes = Stream.repeatEffectChunk(Effect.map(member.next, Chunk.unsafeFromArray))
          return Stream.concat(Stream.fromIterable(snapshot), changes)
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
> = Effect.gen(function* () {
  // Built in the caller's scope: the handlers own resources (the fleet broadcasters) that must
  // live as long as the app, not only while it is being made.
  const context = yield* Layer.build(Layer.merge(handlersLayer, EncodedJson.layerSerialization))
  return yield* RpcServer.toHttpAppWebsocket(LiveRpcsServer).pipe(Effect.provide(context))
})
