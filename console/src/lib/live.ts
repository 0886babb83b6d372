/**
 * The admin plane's live streams (`LiveRpcs` of @nexmdm/protocol/live) over one WebSocket at
 * /api/live on this origin. `watch` runs one stream and keeps it running: on a dropped socket it
 * reports "reconnecting" and calls again with backoff; on TOKEN_EXPIRED it refreshes the session
 * first; on a revoked session it ends the session. Every (re)call starts from a fresh snapshot,
 * so nothing that changed while disconnected is missed.
 */
// Deep imports: the package indexes would drag every module (HTTP API docs pages...) into the build.
import * as Socket from "@effect/platform/Socket"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { LiveRpcs } from "@nexmdm/protocol/live"
import { Context, Duration, Effect, Fiber, Layer, ManagedRuntime, Stream } from "effect"
import { createSignal } from "solid-js"
import { accessToken, expireSession, refresh } from "./session"

export type LiveStatus = "connecting" | "live" | "reconnecting"

class LiveClient extends Context.Tag("nexmdm/console/LiveClient")<LiveClient, Effect.Effect.Success<ReturnType<typeof makeClient>>>() {}

const makeClient = () => RpcClient.make(LiveRpcs)

const liveUrl = () => `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/api/live`

let runtime: ManagedRuntime.ManagedRuntime<LiveClient, never> | undefined
const liveRuntime = () =>
  (runtime ??= ManagedRuntime.make(
    Layer.scoped(LiveClient, makeClient()).pipe(
      Layer.provide(RpcClient.layerProtocolSocket({ retryTransientErrors: true })),
      Layer.provide(Socket.layerWebSocket(liveUrl())),
      Layer.provide(Socket.layerWebSocketConstructorGlobal),
      Layer.provide(RpcSerialization.layerJson)
    )
  ))

/** Connection state shared by every stream (the shell shows it). */
const [status, setStatus] = createSignal<LiveStatus>("connecting")
export const liveStatus = status
const active = new Set<number>()
const failing = new Set<number>()
let nextId = 0
const publish = () => setStatus(failing.size > 0 ? "reconnecting" : active.size > 0 ? "live" : "connecting")

export type LiveClientShape = Context.Tag.Service<LiveClient>

/**
 * Runs `open(client, token)` until disposed: `onItem` for each element; `onRestart` before each
 * new call (the stream starts again from a snapshot). Returns the disposer (use in onCleanup).
 */
export const watch = <A>(
  open: (client: LiveClientShape, token: string) => Stream.Stream<A, unknown>,
  handlers: { readonly onItem: (item: A) => void; readonly onRestart?: () => void; readonly onStatus?: (status: LiveStatus) => void }
): (() => void) => {
  const id = nextId++
  let attempt = 0
  const mark = (state: LiveStatus) => {
    if (state === "reconnecting") failing.add(id)
    else failing.delete(id)
    if (state === "live") active.add(id)
    publish()
    handlers.onStatus?.(state)
  }
  const once = Effect.gen(function* () {
    const client = yield* LiveClient
    const token = yield* Effect.promise(() => accessToken())
    if (token === undefined) return yield* Effect.fail({ _tag: "SignedOut" as const })
    handlers.onRestart?.()
    yield* open(client, token).pipe(
      Stream.runForEach((item) =>
        Effect.sync(() => {
          if (attempt !== 0 || failing.has(id) || !active.has(id)) {
            attempt = 0
            mark("live")
          }
          handlers.onItem(item)
        })
      )
    )
  })
  const loop: Effect.Effect<void, never, LiveClient> = once.pipe(
    Effect.catchAll((error: any) =>
      Effect.gen(function* () {
        const code = error?.code as string | undefined
        if (error?._tag === "SignedOut") return yield* Effect.never
        if (code === "SESSION_REVOKED" || code === "ACCOUNT_DISABLED") {
          expireSession()
          return yield* Effect.never
        }
        if (code === "TOKEN_EXPIRED" || code === "TOKEN_INVALID" || code === "TOKEN_MISSING") {
          const ok = yield* Effect.promise(() => refresh())
          if (!ok) return yield* Effect.never
        } else {
          mark("reconnecting")
        }
      })
    ),
    Effect.zipRight(Effect.suspend(() => Effect.sleep(Duration.millis(Math.min(5000, 250 * 2 ** attempt++))))),
    Effect.forever
  )
  const fiber = liveRuntime().runFork(loop)
  return () => {
    active.delete(id)
    failing.delete(id)
    publish()
    liveRuntime().runFork(Fiber.interrupt(fiber))
  }
}
