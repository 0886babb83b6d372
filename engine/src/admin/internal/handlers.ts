/**
 * Small helpers shared by the admin API's handlers: who is acting (for the audit log), where the
 * request came from, and turning infrastructure failures into a logged `InternalError`.
 */
import { HttpApp, HttpServerResponse } from "@effect/platform"
import type { SqlError } from "@effect/sql"
import { Effect } from "effect"
import type { HashingError } from "../../Secrets.js"
import type { ClientMeta } from "../Accounts.js"
import { type InternalError, internalError, TooManyRequests } from "../AdminErrors.js"
import { actorOf, Audit, type AuditContext, type AuditEvent, describeFailure } from "../Audit.js"
import { ClientInfo } from "../api/Middleware.js"
import { CurrentPrincipal } from "../Principal.js"

/** The caller and its address, as the audit log records them. */
export const auditContext: Effect.Effect<AuditContext, never, CurrentPrincipal | ClientInfo> = Effect.map(
  Effect.all([CurrentPrincipal, ClientInfo]),
  ([principal, client]) => ({ actor: actorOf(principal), sourceIp: client.ip })
)

export const clientMeta: Effect.Effect<ClientMeta, never, ClientInfo> = Effect.map(ClientInfo, (client) => ({
  ip: client.ip,
  userAgent: client.userAgent
}))

type Infrastructure = SqlError.SqlError | HashingError

const isInfrastructure = (error: { readonly _tag: string }): boolean => error._tag === "SqlError" || error._tag === "HashingError"

/** SQL and hashing failures become a logged 500 (their detail stays in the log). */
export const orInternal = <A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, Infrastructure> | InternalError, R> =>
  Effect.catchIf(
    effect,
    (error): error is Extract<E, Infrastructure> => isInfrastructure(error),
    (error) =>
      Effect.zipRight(
        Effect.logError("admin API: internal failure", error).pipe(Effect.annotateLogs({ module: "AdminApi" })),
        Effect.fail(internalError())
      )
  ) as Effect.Effect<A, Exclude<E, Infrastructure> | InternalError, R>

/** A check made before a change (e.g. "only an owner creates admins"): a refusal is audited as a failure. */
export const guarded = <E, R>(check: Effect.Effect<void, E, R>, event: AuditEvent) =>
  Effect.gen(function* () {
    const audit = yield* Audit
    const context = yield* auditContext
    yield* check.pipe(
      Effect.tapError((error) =>
        audit
          .record({ ...context, ...event, outcome: "failure", detail: { ...event.detail, ...describeFailure(error) } })
          .pipe(Effect.catchAll((cause) => Effect.logError("audit: could not record a refusal", cause)))
      )
    )
  })

/**
 * A 429 from a service (the argon2 budget behind login and password change, see SlowHashBudget)
 * also gets the `Retry-After` header, like the RateLimit middleware's.
 */
export const withRetryAfter = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.tapError(effect, (error) =>
    error instanceof TooManyRequests
      ? HttpApp.appendPreResponseHandler((_, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(error.retryAfterSeconds)))
        )
      : Effect.void
  )
