/** Handlers of `AuthGroup`: thin calls into `Accounts`. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Accounts } from "../Accounts.js"
import { AdminApi } from "../AdminApi.js"
import { clientMeta, orInternal, withRetryAfter } from "../internal/handlers.js"

export const AuthGroupLive = HttpApiBuilder.group(AdminApi, "auth", (handlers) =>
  Effect.gen(function* () {
    const accounts = yield* Accounts
    return handlers
      .handle("login", ({ payload }) => orInternal(Effect.flatMap(clientMeta, (client) => accounts.login(payload, client))).pipe(withRetryAfter))
      .handle("refresh", ({ payload }) => orInternal(Effect.flatMap(clientMeta, (client) => accounts.refresh(payload.refreshToken, client))))
      .handle("logout", ({ payload }) => orInternal(Effect.flatMap(clientMeta, (client) => accounts.logout(payload.refreshToken, client))))
      .handle("requestPasswordReset", ({ payload }) => Effect.flatMap(clientMeta, (client) => accounts.requestPasswordReset(payload.email, client)))
      .handle("resetPassword", ({ payload }) =>
        orInternal(Effect.flatMap(clientMeta, (client) => accounts.resetPassword(payload.token, payload.password, client)))
      )
  })
)
