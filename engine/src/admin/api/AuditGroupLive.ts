/** Handlers of `AuditGroup` (read-only). */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { AdminApi } from "../AdminApi.js"
import { Audit } from "../Audit.js"
import { orInternal } from "../internal/handlers.js"
import { AuditPageBody } from "./AuditGroup.js"

export const AuditGroupLive = HttpApiBuilder.group(AdminApi, "audit", (handlers) =>
  Effect.gen(function* () {
    const audit = yield* Audit
    return handlers.handle("list", ({ urlParams }) =>
      audit
        .list({
          from: urlParams.from,
          to: urlParams.to,
          actorKind: urlParams.actorKind,
          actorId: urlParams.actorId,
          action: urlParams.action,
          targetKind: urlParams.targetKind,
          targetId: urlParams.targetId,
          outcome: urlParams.outcome,
          before: urlParams.cursor,
          limit: urlParams.limit
        })
        .pipe(
          Effect.map((page) => new AuditPageBody(page)),
          orInternal
        )
    )
  })
)
