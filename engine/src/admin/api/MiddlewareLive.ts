/**
 * The implementations of `RateLimit` and `Authentication` (see Middleware.ts). Both find the
 * request's route in the access policy by the router's method and path template.
 */
import { HttpApp, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Either, Layer, Option } from "effect"
import { EngineConfig } from "../../EngineConfig.js"
import { KeyedLimiter } from "../../internal/TokenBucket.js"
import * as Metrics from "../../Metrics.js"
import { routeIndex } from "../AccessPolicy.js"
import { AccessTokens } from "../AccessTokens.js"
import { Accounts } from "../Accounts.js"
import { Forbidden, TooManyRequests, Unauthorized } from "../AdminErrors.js"
import { AdminApi } from "../AdminApi.js"
import { ApiKeys } from "../ApiKeys.js"
import { actorOf, Audit } from "../Audit.js"
import { denial, type Principal, type UserPrincipal } from "../Principal.js"
import { Authentication, type ClientInfoShape, clientInfoOf, RateLimit } from "./Middleware.js"

const trustedHeaderOf = (header: Option.Option<string>) => Option.map(header, (name) => name.toLowerCase())

export const RateLimitLive = Layer.effect(
  RateLimit,
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const routes = routeIndex(AdminApi)
    const trusted = trustedHeaderOf(config.trustedProxyHeader)
    const limiters = {
      auth: new KeyedLimiter({ ratePerSecond: config.authRatePerMinute / 60, capacity: config.authRatePerMinute }),
      api: new KeyedLimiter({ ratePerSecond: config.apiRatePerMinute / 60, capacity: config.apiRatePerMinute })
    }
    return Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const { route } = yield* HttpRouter.RouteContext
      yield* HttpApp.appendPreResponseHandler((_, response) =>
        Effect.sync(() => {
          Metrics.httpRequests(route.path, response.status)
          return response
        })
      )
      const client = clientInfoOf(request, trusted)
      // A route the policy does not know gets the strict limit (and Authentication refuses it).
      const limit = routes.get(`${route.method} ${route.path}`)?.requirement.limit ?? "auth"
      const waitMs = limiters[limit].take(client.ip, Date.now())
      if (waitMs === 0) return client
      const seconds = Math.max(1, Math.ceil(waitMs / 1000))
      yield* HttpApp.appendPreResponseHandler((_, response) => Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(seconds))))
      return yield* new TooManyRequests({ message: `too many requests from this address: retry in ${seconds} s`, retryAfterSeconds: seconds })
    })
  })
)

const missingCredentials = new Unauthorized({
  code: "UNAUTHORIZED",
  message: "send Authorization: Bearer <access token> or X-Admin-Key: <API key>"
})

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const accessTokens = yield* AccessTokens
    const accounts = yield* Accounts
    const apiKeys = yield* ApiKeys
    const audit = yield* Audit
    const routes = routeIndex(AdminApi)
    const trusted = trustedHeaderOf(config.trustedProxyHeader)

    /** One HMAC and a map lookup: no query. */
    const bearer = (header: string): Either.Either<UserPrincipal, Unauthorized> => {
      if (!/^Bearer /i.test(header)) return Either.left(new Unauthorized({ code: "TOKEN_INVALID", message: "expected Authorization: Bearer <access token>" }))
      return Either.flatMap(accessTokens.verify(header.slice(7).trim(), Date.now()), (claims) => {
        const state = accounts.sessionState(claims.sub)
        if (state?.disabled === true) return Either.left(new Unauthorized({ code: "ACCOUNT_DISABLED", message: "this account is disabled" }))
        if (state === undefined || Math.round(claims.iat * 1000) < state.tokensValidAfterMs) {
          return Either.left(new Unauthorized({ code: "SESSION_REVOKED", message: "this session was revoked: sign in again" }))
        }
        return Either.right({ kind: "user", id: claims.sub, label: state.email, role: state.role })
      })
    }

    const authenticate = (request: HttpServerRequest.HttpServerRequest, client: ClientInfoShape): Effect.Effect<Principal, Unauthorized> => {
      const authorization = request.headers["authorization"]
      if (authorization !== undefined) return bearer(authorization)
      const key = request.headers["x-admin-key"]
      if (key !== undefined) return Effect.catchTag(apiKeys.verify(key.trim(), client.ip), "SqlError", Effect.die)
      return Effect.fail(missingCredentials)
    }

    return Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const { route } = yield* HttpRouter.RouteContext
      const client = clientInfoOf(request, trusted)
      const principal = yield* authenticate(request, client)
      const access = routes.get(`${route.method} ${route.path}`)
      const refused =
        access === undefined ? new Forbidden({ code: "FORBIDDEN", message: "this route has no access rule" }) : denial(principal, access.requirement)
      if (refused === undefined) return principal
      yield* audit
        .record({
          actor: actorOf(principal),
          sourceIp: client.ip,
          action: "access.denied",
          target: { kind: "route", id: access?.key ?? `${route.method} ${route.path}` },
          outcome: "failure",
          detail: { code: refused.code }
        })
        .pipe(Effect.catchAll((cause) => Effect.logError("audit: could not record a refusal", cause).pipe(Effect.annotateLogs({ module: "Authentication" }))))
      return yield* refused
    })
  })
)
