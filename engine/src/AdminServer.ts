/**
 * The admin plane's HTTP server (Node http via @effect/platform): the ops routes /healthz,
 * /readyz and /metrics, and whatever routes are added with `AdminServer.layerWith` (the REST API).
 *
 * - /healthz: 200 while the process runs.
 * - /readyz: 200 only when the engine is "ready" and the database answers `select 1` within 1 s;
 *   otherwise 503 with the phase or "database-unavailable".
 * - /metrics: Prometheus text format 0.0.4 (internal/Prometheus.ts).
 * Unknown paths get the engine's JSON error body with code NOT_FOUND. Every response carries
 * baseline security headers (nosniff, frame DENY, no referrer, a CSP allowing nothing).
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpServerError } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, SubscriptionRef } from "effect"
import * as Http from "node:http"
import { EngineConfig } from "./EngineConfig.js"
import { EngineStatus } from "./EngineStatus.js"
import * as Prometheus from "./internal/Prometheus.js"
import * as Metrics from "./Metrics.js"

/** How long /readyz waits for `select 1`. */
export const READINESS_QUERY_TIMEOUT = Duration.seconds(1)

/** The engine's JSON error body (same shape as the device plane's `HttpErrorBody`). */
export const errorResponse = (status: number, code: string, message: string) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status })

/**
 * Wraps a route handler: counts the answer in engine_http_requests_total under the route template
 * and turns a defect into a logged 500 (failures stay typed: the handler decides their response).
 */
export const counted =
  (route: string) =>
  <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    handler.pipe(
      Effect.catchAllDefect((defect) =>
        Effect.as(
          Effect.logError("admin route failed", defect).pipe(Effect.annotateLogs({ module: "AdminServer", route })),
          errorResponse(500, "INTERNAL", "internal error")
        )
      ),
      Effect.tap((response) => Effect.sync(() => Metrics.httpRequests(route, response.status)))
    )

const healthz = counted("/healthz")(Effect.succeed(HttpServerResponse.unsafeJson({ status: "ok" })))

const databaseAnswers = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // Disconnected so that a query stuck in an uninterruptible section cannot hold the answer.
  return yield* sql`select 1`.pipe(
    Effect.disconnect,
    Effect.timeout(READINESS_QUERY_TIMEOUT),
    Effect.as(true),
    Effect.catchAll((error) =>
      Effect.as(
        Effect.logDebug("readiness: database did not answer", error).pipe(Effect.annotateLogs({ module: "AdminServer" })),
        false
      )
    )
  )
})

const readyz = counted("/readyz")(
  Effect.gen(function* () {
    const status = yield* EngineStatus
    const phase = yield* SubscriptionRef.get(status.phase)
    if (phase !== "ready") return HttpServerResponse.unsafeJson({ status: phase }, { status: 503 })
    return (yield* databaseAnswers)
      ? HttpServerResponse.unsafeJson({ status: "ready" })
      : HttpServerResponse.unsafeJson({ status: "database-unavailable" }, { status: 503 })
  })
)

const metrics = counted("/metrics")(
  Effect.sync(() => HttpServerResponse.text(Prometheus.scrape(), { contentType: Prometheus.CONTENT_TYPE }))
)

/** The ops routes; the REST API is added beside them with `AdminServer.layerWith`. */
export const opsRouter: HttpRouter.HttpRouter<never, EngineStatus | SqlClient.SqlClient> = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", healthz),
  HttpRouter.get("/readyz", readyz),
  HttpRouter.get("/metrics", metrics)
)

/** Answers RouteNotFound with a JSON 404 (counted under the route "unmatched"). */
const withNotFound = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E | HttpServerError.RouteNotFound, R>) =>
  Effect.catchIf(
    app,
    (error): error is HttpServerError.RouteNotFound =>
      typeof error === "object" && error !== null && "_tag" in error && error._tag === "RouteNotFound",
    () =>
      Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
        Metrics.httpRequests("unmatched", 404)
        return errorResponse(404, "NOT_FOUND", `no route for ${request.method} ${request.url.split("?")[0]}`)
      })
  )

/** Set on every admin-plane response that does not set them itself (the API sets its own). */
const baselineHeaders: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'"
}

const withBaselineHeaders = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.map(app, (response) => {
    const missing = Object.entries(baselineHeaders).filter(([name]) => response.headers[name] === undefined)
    return missing.length === 0 ? response : HttpServerResponse.setHeaders(response, Object.fromEntries(missing))
  })

export interface AdminServerShape {
  /** The bound address: with port 0 in the config, the port the system chose. */
  readonly address: HttpServer.TcpAddress
  /** Base URL, e.g. http://127.0.0.1:8081 */
  readonly url: string
}

export class AdminServer extends Context.Tag("@nexmdm/engine/AdminServer")<AdminServer, AdminServerShape>() {
  /**
   * Serves the ops routes plus `routes` on `config.host`:`config.adminPort` for the lifetime of
   * the layer, with the process metrics registered.
   */
  static readonly layerWith = <E, R>(routes: HttpRouter.HttpRouter<E, R>) =>
    Layer.unwrapScoped(
      Effect.gen(function* () {
        const config = yield* EngineConfig
        yield* Prometheus.processMetricsScoped
        const app = withBaselineHeaders(withNotFound(HttpRouter.concat(opsRouter, routes)))
        const listener = NodeHttpServer.layer(() => Http.createServer(), { port: config.adminPort, host: config.host })
        const describe = Layer.effect(
          AdminServer,
          Effect.gen(function* () {
            const server = yield* HttpServer.HttpServer
            const address = server.address
            if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("admin plane: expected a TCP address"))
            const url = `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`
            yield* Effect.logInfo("admin plane listening").pipe(Effect.annotateLogs({ module: "AdminServer", address: url }))
            return { address, url }
          })
        )
        // The handler is attached before the address is announced.
        return describe.pipe(Layer.provide(HttpServer.serve(app)), Layer.provide(listener))
      })
    )

  /** The ops routes only. */
  static readonly layer = AdminServer.layerWith(HttpRouter.empty)
}
