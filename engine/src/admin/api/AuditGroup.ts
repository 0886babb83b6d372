/**
 * The audit trail, read-only (there is no route that changes or deletes a row).
 *
 *   GET /audit?from&to&actorKind&actorId&action&targetKind&targetId&outcome&cursor&limit
 *       -> {items: AuditRecord[] (newest first), nextCursor}
 *   `action` is exact, or a prefix when it ends with "." ("user." = every user action).
 */
import { HttpApiEndpoint, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ActorKind, AuditRecord, Outcome } from "../AdminModel.js"
import { protectedGroup } from "./Middleware.js"

const Text = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))

export const AuditQuery = Schema.Struct({
  from: Schema.optional(Schema.Date.annotations({ description: "ISO time: rows at or after" })),
  to: Schema.optional(Schema.Date.annotations({ description: "ISO time: rows before" })),
  actorKind: Schema.optional(ActorKind),
  actorId: Schema.optional(Text),
  action: Schema.optional(Text),
  targetKind: Schema.optional(Text),
  targetId: Schema.optional(Text),
  outcome: Schema.optional(Outcome),
  cursor: Schema.optional(Schema.String.pipe(Schema.pattern(/^\d{1,19}$/)).annotations({ description: "nextCursor of the previous page" })),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)), { default: () => 50 })
})

export class AuditPageBody extends Schema.Class<AuditPageBody>("AuditPage")({
  items: Schema.Array(AuditRecord),
  nextCursor: Schema.NullOr(Schema.String)
}) {}

export class AuditGroup extends protectedGroup("audit")
  .add(
    HttpApiEndpoint.get("list", "/")
      .setUrlParams(AuditQuery)
      .addSuccess(AuditPageBody)
      .annotate(OpenApi.Summary, "Audit records, newest first, filtered, one page at a time")
  )
  .prefix("/audit")
  .annotate(OpenApi.Description, "Who changed what, from where, and whether it worked. Append-only.") {}
