/** Handlers of `ApiKeysGroup`. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { AdminApi } from "../AdminApi.js"
import { ApiKeys } from "../ApiKeys.js"
import { auditContext, orInternal } from "../internal/handlers.js"

export const ApiKeysGroupLive = HttpApiBuilder.group(AdminApi, "apiKeys", (handlers) =>
  Effect.gen(function* () {
    const apiKeys = yield* ApiKeys
    return handlers
      .handle("list", () => orInternal(apiKeys.list))
      .handle("create", ({ payload }) => orInternal(Effect.flatMap(auditContext, (context) => apiKeys.create(payload, context))))
      .handle("revoke", ({ path }) => orInternal(Effect.flatMap(auditContext, (context) => apiKeys.revoke(path.id, context))))
  })
)
