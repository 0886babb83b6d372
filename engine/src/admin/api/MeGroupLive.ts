/** Handlers of `MeGroup`. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Accounts } from "../Accounts.js"
import { Forbidden, Unauthorized } from "../AdminErrors.js"
import { AdminApi } from "../AdminApi.js"
import { clientMeta, orInternal, withRetryAfter } from "../internal/handlers.js"
import { CurrentPrincipal } from "../Principal.js"

export const MeGroupLive = HttpApiBuilder.group(AdminApi, "me", (handlers) =>
  Effect.gen(function* () {
    const accounts = yield* Accounts
    return handlers
      .handle("get", () =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          if (principal.kind === "api_key") return { _tag: "api_key", id: principal.id, name: principal.label, scopes: principal.scopes } as const
          const user = yield* accounts
            .getUser(principal.id)
            .pipe(Effect.catchTag("NotFound", () => Effect.fail(new Unauthorized({ code: "SESSION_REVOKED", message: "unknown user" }))))
          return { _tag: "user", user } as const
        }).pipe(orInternal)
      )
      .handle("changePassword", ({ payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          if (principal.kind !== "user") return yield* new Forbidden({ code: "USERS_ONLY", message: "API keys have no password" })
          const client = yield* clientMeta
          return yield* accounts.changePassword(principal.id, { current: payload.currentPassword, next: payload.newPassword }, client)
        }).pipe(orInternal, withRetryAfter)
      )
  })
)
