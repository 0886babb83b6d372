/**
 * The real LiveRpcServer over WebSocket in-process, without a database: a fake registry whose
 * devices and changes the test drives, fake accounts whose sessions it can revoke, real tokens.
 */
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeSocket } from "@effect/platform-node"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Context, Effect, Layer, Option, PubSub, type Scope, Stream } from "effect"
import { createServer } from "node:http"
import { AccessTokens, makeAccessTokens } from "../../src/admin/AccessTokens.js"
import { Accounts } from "../../src/admin/Accounts.js"
import * as LiveRpcServer from "../../src/admin/LiveRpcServer.js"
import type { UserId } from "../../src/admin/Principal.js"
import { Commands } from "../../src/commands/Commands.js"
import { DeviceRegistry, type DeviceView } from "../../src/DeviceRegistry.js"

export const deviceView = (i: number, seq: number, now = Date.now()): DeviceView => ({
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

/**
 * A registry whose state is `latest` and whose changes are what the test publishes to `pubsub`
 * (`subscribe`: how a watcher subscribes, e.g. counted).
 */
export const fakeRegistry = (
  latest: Map<string, DeviceView>,
  pubsub: PubSub.PubSub<DeviceView>,
  subscribe: DeviceRegistry["Type"]["subscribe"] = PubSub.subscribe(pubsub)
): DeviceRegistry["Type"] =>
  DeviceRegistry.of({
    tell: () => "queued",
    view: (id) => Option.fromNullable(latest.get(id)),
    snapshot: () => [...latest.values()],
    forEachState: () => undefined,
    changes: Stream.fromPubSub(pubsub),
    watch: () => Stream.never,
    subscribe,
    counts: () => ({ actors: latest.size, ws: latest.size, http: 0 }),
    sweep: Effect.void,
    closeAll: () => Effect.void
  })

export interface LiveServer {
  readonly url: string
  /** Registry state: the latest view of each device. */
  readonly latest: Map<string, DeviceView>
  /** A device changes (registry state and change stream). */
  readonly publish: (view: DeviceView) => void
  /** Open subscriptions to the registry's changes. */
  readonly registrySubscribers: () => number
  /** An access token of a viewer (`usr_` and 20 of [0-9a-z]). */
  readonly tokenFor: (userId: string) => string
  /** Revokes every token of the user issued until now. */
  readonly revoke: (userId: string) => void
  readonly clientLayer: Layer.Layer<RpcClient.Protocol>
}

export const make = (devices: number): Effect.Effect<LiveServer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pubsub = yield* PubSub.sliding<DeviceView>(16_384)
    const latest = new Map<string, DeviceView>()
    for (let i = 0; i < devices; i++) latest.set(`dev_${i}`, deviceView(i, 0))
    let subscribers = 0
    const registry = fakeRegistry(
      latest,
      pubsub,
      Effect.acquireRelease(
        Effect.sync(() => void subscribers++),
        () => Effect.sync(() => void subscribers--)
      ).pipe(Effect.zipRight(PubSub.subscribe(pubsub)))
    )
    const tokens = makeAccessTokens(Buffer.alloc(32, 7), 3_600_000)
    const validAfter = new Map<string, number>()
    const accounts = {
      sessionState: (userId: string) => ({ email: "a@example.com", role: "viewer", disabled: false, tokensValidAfterMs: validAfter.get(userId) ?? 0 })
    } as unknown as Accounts["Type"]
    const commands = { updates: Stream.never } as unknown as Commands["Type"]
    const services = Layer.mergeAll(
      Layer.succeed(DeviceRegistry, registry),
      Layer.succeed(AccessTokens, tokens),
      Layer.succeed(Accounts, accounts),
      Layer.succeed(Commands, commands)
    )
    const server = Layer.unwrapScoped(
      Effect.map(LiveRpcServer.httpApp, (app) => HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.get(LiveRpcServer.LIVE_PATH, app))))
    ).pipe(Layer.provide(services), Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
    const context = yield* Layer.build(server).pipe(Effect.orDie)
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    const url = `ws://127.0.0.1:${address.port}${LiveRpcServer.LIVE_PATH}`
    return {
      url,
      latest,
      publish: (view) => {
        latest.set(view.deviceId, view)
        pubsub.unsafeOffer(view)
      },
      registrySubscribers: () => subscribers,
      tokenFor: (userId) => tokens.issue({ id: userId as UserId, role: "viewer" }).token,
      revoke: (userId) => void validAfter.set(userId, Date.now() + 1),
      clientLayer: RpcClient.layerProtocolSocket().pipe(
        Layer.provide(NodeSocket.layerWebSocket(url)),
        Layer.provide(RpcSerialization.layerJson)
      )
    }
  })
