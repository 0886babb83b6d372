/**
 * The admin plane's HTTP server (Node http via @effect/platform): the ops routes /healthz,
 * /readyz and /metrics, and whatever routes are added with `AdminServer.layerWith` (the REST API).
 *
 * - /healthz: 200 while the process runs.
 * - /readyz: 200 only when the engine is "ready" and the database answers `select 1` within 1 s;
 *   otherwise 503 with the phase or "database-unavailable".
 * - /metrics: Prometheus text format 0.0.4 (internal/Prometheus.ts).
 * - everything else that is a GET outside /api: the web console's built files (console/.output/public,
 *   or NEXMDM_CONSOLE_DIR), with the SPA's index.html for unknown paths, a 503 page when the
 *   console was not built, and immutable caching for hashed assets (see `serveConsole`).
 * Unknown /api paths get the engine's JSON error body with code NOT_FOUND. Every response carries
 * baseline security headers (nosniff, frame DENY, no referrer, a CSP allowing nothing).
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpServerError } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, SubscriptionRef } from "effect"
import { createHash } from "node:crypto"
import { readFile, stat } from "node:fs/promises"
import * as Http from "node:http"
import { extname, join, normalize, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
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

// ---------------------------------------------------------------------------------------------
// The web console: a client-rendered SPA built by `vinxi build` (console/), served on this origin
// so /api and /api/live need no CORS. Both engine/src and engine/build sit two levels below the root.

/** Where the console's build output is read from. */
export const consoleDirectory = resolve(
  process.env["NEXMDM_CONSOLE_DIR"] ?? join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "console", ".output", "public")
)

const contentTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json"
}

/** The SPA shell has one inline script (the asset manifest): allowed by its hash, nothing else inline. */
const consoleCsp = (html: string): string => {
  const hashes = [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].map(
    (match) => `'sha256-${createHash("sha256").update(match[1] ?? "").digest("base64")}'`
  )
  return [
    "default-src 'self'",
    `script-src 'self' ${hashes.join(" ")}`.trim(),
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'"
  ].join("; ")
}

const notBuiltPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>NexMDM console not built</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;line-height:1.5">
<h1>The NexMDM console is not built</h1>
<p>The engine is running (the admin API is at <a href="/api/docs">/api/docs</a>), but it found no console files in
<code>${consoleDirectory.replace(/[<>&]/g, "")}</code>.</p>
<p>Build them with <code>npm run build --workspace console</code> (or start the engine with <code>npm start</code>, which builds
the console when needed), then reload this page.</p></body></html>`

const readIfFile = (path: string) =>
  Effect.promise(() =>
    stat(path).then(
      (info) => (info.isFile() ? readFile(path) : undefined),
      () => undefined
    )
  )

/**
 * GET/HEAD outside /api: the file under `consoleDirectory` (precompressed .br/.gz when the client
 * takes it), index.html for paths without a file (client-side routes), 503 when nothing is built.
 * Hashed assets (/_build/assets/...) are cached for a year; the shell is revalidated every time.
 */
const serveConsole = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function* () {
    const raw = request.url.split("?")[0] ?? "/"
    let pathname = "/"
    try {
      pathname = decodeURIComponent(raw)
    } catch {
      // A malformed escape is no file of ours: fall through to the shell.
    }
    const relative = normalize(pathname).replace(/^([/\\])+/, "")
    const candidate = join(consoleDirectory, relative)
    const inside = candidate === consoleDirectory || candidate.startsWith(consoleDirectory + sep)
    const accepts = String(request.headers["accept-encoding"] ?? "")
    const immutable = pathname.startsWith("/_build/assets/")
    const file = inside && relative !== "" && !relative.endsWith(".gz") && !relative.endsWith(".br") ? candidate : undefined
    if (file !== undefined && extname(file) !== ".html") {
      for (const [encoding, suffix] of [["br", ".br"], ["gzip", ".gz"], [undefined, ""]] as const) {
        if (encoding !== undefined && !accepts.includes(encoding)) continue
        const body = yield* readIfFile(file + suffix)
        if (body === undefined) continue
        Metrics.httpRequests("console", 200)
        return HttpServerResponse.uint8Array(body, {
          contentType: contentTypes[extname(file)] ?? "application/octet-stream",
          headers: {
            "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
            vary: "accept-encoding",
            ...(encoding === undefined ? {} : { "content-encoding": encoding })
          }
        })
      }
      // A missing hashed asset is a stale page, not a route: say so instead of sending the shell.
      if (immutable || extname(file) !== "") {
        Metrics.httpRequests("console", 404)
        return HttpServerResponse.text("not found", { status: 404 })
      }
    }
    const shell = yield* readIfFile(join(consoleDirectory, "index.html"))
    if (shell === undefined) {
      Metrics.httpRequests("console", 503)
      return HttpServerResponse.text(notBuiltPage, {
        status: 503,
        contentType: "text/html; charset=utf-8",
        headers: { "cache-control": "no-store", "retry-after": "30", "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'" }
      })
    }
    const html = shell.toString("utf8")
    Metrics.httpRequests("console", 200)
    return HttpServerResponse.text(html, {
      contentType: "text/html; charset=utf-8",
      headers: { "cache-control": "no-cache", "content-security-policy": consoleCsp(html) }
    })
  })

/** Answers RouteNotFound: the console for GET/HEAD outside /api, else a JSON 404 (route "unmatched"). */
const withNotFound = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E | HttpServerError.RouteNotFound, R>) =>
  Effect.catchIf(
    app,
    (error): error is HttpServerError.RouteNotFound =>
      typeof error === "object" && error !== null && "_tag" in error && error._tag === "RouteNotFound",
    () =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        const path = request.url.split("?")[0] ?? "/"
        if ((request.method === "GET" || request.method === "HEAD") && path !== "/api" && !path.startsWith("/api/")) return serveConsole(request)
        Metrics.httpRequests("unmatched", 404)
        return Effect.succeed(errorResponse(404, "NOT_FOUND", `no route for ${request.method} ${path}`))
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
