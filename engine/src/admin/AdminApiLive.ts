/**
 * The admin API served on the admin plane: `/api/v1/...` (AdminApi), `/api/openapi.json` and the
 * reference page `/api/docs`, next to the ops routes of `AdminServer`.
 *
 * Around the generated app, outermost first:
 * - CORS for the console's origin only (NEXMDM_CONSOLE_ORIGIN); no credentials mode (tokens travel
 *   in headers, not cookies);
 * - security headers on every response (nosniff, frame DENY, no referrer, no-store, and a CSP that
 *   allows nothing for JSON; the docs page gets one with the hashes of its own inline scripts);
 * - a JSON 404 for unknown /api paths and a logged 500 for anything unexpected;
 * - (inside the API) the body limit, and decode failures turned into 400 `ValidationError`s.
 * Start-up refuses to serve when a route and the access policy disagree, and creates the first
 * owner from NEXMDM_OWNER_EMAIL / NEXMDM_OWNER_PASSWORD.
 */
import {
  HttpApiBuilder,
  HttpApiSwagger,
  HttpApp,
  HttpMiddleware,
  HttpRouter,
  HttpServerRequest,
  HttpServerResponse,
  OpenApi
} from "@effect/platform"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import { Cause, Effect, Layer, Option } from "effect"
import { createHash } from "node:crypto"
import { AdminServer } from "../AdminServer.js"
import { EngineConfig } from "../EngineConfig.js"
import { documentAccess, policyProblems } from "./AccessPolicy.js"
import * as AccessTokens from "./AccessTokens.js"
import * as Accounts from "./Accounts.js"
import { InternalError, NotFound, PayloadTooLarge, ValidationError } from "./AdminErrors.js"
import { AdminApi } from "./AdminApi.js"
import { AlertsGroupLive } from "./api/AlertsGroupLive.js"
import { ApiKeysGroupLive } from "./api/ApiKeysGroupLive.js"
import { AuditGroupLive } from "./api/AuditGroupLive.js"
import { AuthGroupLive } from "./api/AuthGroupLive.js"
import { CommandsGroupLive } from "./api/CommandsGroupLive.js"
import { ConsoleGroupLive } from "./api/ConsoleGroupLive.js"
import { DevicesGroupLive } from "./api/DevicesGroupLive.js"
import { EnrollmentTokensGroupLive } from "./api/EnrollmentTokensGroupLive.js"
import { MeGroupLive } from "./api/MeGroupLive.js"
import { AuthenticationLive, RateLimitLive } from "./api/MiddlewareLive.js"
import { UsersGroupLive } from "./api/UsersGroupLive.js"
import * as ApiKeys from "./ApiKeys.js"
import * as Audit from "./Audit.js"
import * as LiveRpcServer from "./LiveRpcServer.js"
import { ProvisioningGroupLive } from "../provisioning/ProvisioningGroupLive.js"
import { isApkUpload } from "../releases/ReleasesGroup.js"
import { ReleasesGroupLive } from "../releases/ReleasesGroupLive.js"
import { RolloutsGroupLive } from "../releases/RolloutsGroupLive.js"

export const OPENAPI_PATH = "/api/openapi.json"
export const DOCS_PATH = "/api/docs"

/** The API as documented: each operation says what it requires (from the access policy). */
export const DocumentedAdminApi = AdminApi.annotate(OpenApi.Transform, documentAccess)

// ---------------------------------------------------------------------------------------------
// Inside the API: body limit, decode failures as 400s

interface DecodeIssue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

const isTagged = (value: unknown, tag: string): value is { readonly _tag: string } & Record<string, unknown> =>
  typeof value === "object" && value !== null && (value as { _tag?: unknown })._tag === tag

const toValidationError = (error: { readonly message?: unknown; readonly issues?: unknown }) =>
  new ValidationError({
    code: "VALIDATION_FAILED",
    message: "the request does not match its schema",
    issues: (Array.isArray(error.issues) ? (error.issues as ReadonlyArray<DecodeIssue>) : []).map((issue) => ({
      path: issue.path.map((segment) => (typeof segment === "number" ? segment : String(segment))),
      message: issue.message
    }))
  })

const requestLimits = HttpApiBuilder.middleware(
  AdminApi,
  Effect.map(EngineConfig, (config) => {
    const limit = config.adminMaxBodyBytes
    const tooLarge = new PayloadTooLarge({ message: `request body over ${limit} bytes` })
    return (app: HttpApp.Default) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        // The APK upload streams its body to disk under its own limit (NEXMDM_APK_MAX_BYTES).
        if (isApkUpload(request.method, request.url)) return yield* app
        if (Number(request.headers["content-length"] ?? 0) > limit) return yield* tooLarge
        return yield* app
      }).pipe(
        IncomingMessage.withMaxBodySize(Option.some(limit)),
        Effect.catchAllCause((cause) => {
          const failure = Cause.failureOption(cause)
          if (Option.isSome(failure) && isTagged(failure.value, "HttpApiDecodeError")) return Effect.fail(toValidationError(failure.value))
          // The body is read (and parsed) by the router with orDie: its errors arrive as defects.
          const defect = Cause.dieOption(cause)
          if (Option.isSome(defect) && isTagged(defect.value, "RequestError")) {
            const reason = (defect.value["cause"] as { message?: unknown } | undefined)?.message
            return Effect.fail(
              reason === "maxBytes exceeded"
                ? tooLarge
                : new ValidationError({ code: "MALFORMED_JSON", message: "the request body is not valid JSON", issues: [] })
            )
          }
          return Effect.failCause(cause as Cause.Cause<never>)
        })
      )
  })
)

// ---------------------------------------------------------------------------------------------
// Around the API: headers, CORS, fallbacks

const jsonError = (status: number, error: NotFound | InternalError) =>
  HttpServerResponse.unsafeJson({ _tag: error._tag, code: error.code, message: error.message }, { status })

const apiHeaders = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

/** The docs page runs its own inline scripts: allow exactly those (by hash), plus inline styles. */
const docsCsp = (response: HttpServerResponse.HttpServerResponse): string => {
  const body = response.body
  const html = body._tag === "Uint8Array" ? new TextDecoder().decode(body.body) : ""
  const hashes: Array<string> = []
  for (const match of html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)) {
    const attributes = match[1] ?? ""
    if (/\bsrc=/.test(attributes) || /type="application\/json"/.test(attributes)) continue
    hashes.push(`'sha256-${createHash("sha256").update(match[2] ?? "").digest("base64")}'`)
  }
  return [
    "default-src 'none'",
    `script-src ${hashes.length > 0 ? hashes.join(" ") : "'none'"}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'"
  ].join("; ")
}

const secured = <R>(app: HttpApp.Default<never, R>, consoleOrigin: string): HttpApp.Default<never, R> => {
  let docsPolicy: string | undefined
  const withHeaders = Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const response = yield* app.pipe(
      Effect.catchAllCause((cause) =>
        Cause.isFailType(cause) && isTagged(cause.error, "RouteNotFound")
          ? Effect.succeed(jsonError(404, new NotFound({ message: `no route for ${request.method} ${request.url.split("?")[0]}` })))
          : Effect.as(
              Effect.logError("admin API: unhandled failure", cause).pipe(Effect.annotateLogs({ module: "AdminApi", method: request.method })),
              jsonError(500, new InternalError({ message: "internal error" }))
            )
      )
    )
    if (request.url.split("?")[0] === DOCS_PATH && response.status === 200) {
      docsPolicy ??= docsCsp(response)
      return HttpServerResponse.setHeaders(response, { ...apiHeaders, "cache-control": "no-cache", "content-security-policy": docsPolicy })
    }
    return HttpServerResponse.setHeaders(response, apiHeaders)
  })
  return HttpMiddleware.cors({
    allowedOrigins: (origin) => origin === consoleOrigin,
    allowedMethods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
    allowedHeaders: ["authorization", "content-type", "x-admin-key"],
    exposedHeaders: ["retry-after"],
    maxAge: 600
  })(withHeaders)
}

// ---------------------------------------------------------------------------------------------
// Layers

/** Refuses to start when a route and the access policy disagree (e.g. a protected route without Authentication). */
const policyCheck = Layer.effectDiscard(
  Effect.suspend(() => {
    const problems = policyProblems(AdminApi)
    return problems.length === 0 ? Effect.void : Effect.dieMessage(`admin API access policy:\n  ${problems.join("\n  ")}`)
  })
)

const groups = Layer.mergeAll(
  AuthGroupLive,
  MeGroupLive,
  UsersGroupLive,
  ApiKeysGroupLive,
  AuditGroupLive,
  EnrollmentTokensGroupLive,
  ProvisioningGroupLive,
  DevicesGroupLive,
  CommandsGroupLive,
  AlertsGroupLive,
  ConsoleGroupLive,
  ReleasesGroupLive,
  RolloutsGroupLive
)

const api = HttpApiBuilder.api(DocumentedAdminApi).pipe(
  Layer.provide(groups),
  Layer.provide(Layer.mergeAll(AuthenticationLive, RateLimitLive))
)

/** The admin plane (ops routes + API) on NEXMDM_ADMIN_PORT. */
const served = Layer.unwrapScoped(
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const app = yield* HttpApiBuilder.httpApp
    // The console's live streams (WebSocket, token in each rpc's payload): matched before /api/*.
    const live = yield* LiveRpcServer.httpApp
    return AdminServer.layerWith(
      HttpRouter.empty.pipe(HttpRouter.get(LiveRpcServer.LIVE_PATH, live), HttpRouter.all("/api/*", secured(app, config.consoleOrigin)))
    )
  })
).pipe(
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: OPENAPI_PATH })),
  Layer.provide(HttpApiSwagger.layer({ path: DOCS_PATH })),
  Layer.provide(requestLimits),
  Layer.provide(api),
  Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]),
  Layer.provide(policyCheck)
)

/** The admin plane's services (also available to the rest of the engine and to tests). */
export const servicesLayer = Layer.mergeAll(Accounts.layer, ApiKeys.layer).pipe(
  Layer.provideMerge(Layer.mergeAll(Audit.layer, AccessTokens.layer))
)

/** Needs EngineConfig, SqlClient, Enrollment, EngineStatus and a Mailer. */
export const layer = Layer.mergeAll(served, Layer.effectDiscard(Accounts.bootstrapOwner)).pipe(Layer.provideMerge(servicesLayer))
