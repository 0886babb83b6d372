/**
 * Enrollment tokens (what the CLI's `tokens` commands do, over HTTP; every change audited).
 *
 *   GET  /enrollment-tokens              -> EnrollmentToken[] (never their secrets)
 *   POST /enrollment-tokens              {expiresInSeconds?, maxUses?, label?, tags?} -> 201 CreatedEnrollmentToken
 *   POST /enrollment-tokens/:id/revoke   -> 204
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { NotFound } from "../AdminErrors.js"
import { Tag } from "./DevicesGroup.js"
import { protectedGroup } from "./Middleware.js"

export const EnrollmentTokenId = Schema.String.pipe(Schema.pattern(/^et_[0-9a-z]{16}$/)).annotations({ identifier: "EnrollmentTokenId" })

export class EnrollmentToken extends Schema.Class<EnrollmentToken>("EnrollmentToken")({
  id: EnrollmentTokenId,
  label: Schema.NullOr(Schema.String),
  maxUses: Schema.Int,
  uses: Schema.Int,
  state: Schema.Literal("active", "expired", "used_up", "revoked"),
  expiresAt: Schema.Date,
  revokedAt: Schema.NullOr(Schema.Date),
  createdAt: Schema.Date,
  /** Applied to every device that enrols with this token. */
  tags: Schema.Array(Schema.String)
}) {}

export class CreatedEnrollmentToken extends Schema.Class<CreatedEnrollmentToken>("CreatedEnrollmentToken")({
  id: EnrollmentTokenId,
  /** The whole token for the device, shown only in this response. */
  token: Schema.String,
  expiresAt: Schema.Date,
  maxUses: Schema.Int,
  label: Schema.NullOr(Schema.String),
  tags: Schema.Array(Schema.String)
}) {}

export const CreateEnrollmentToken = Schema.Struct({
  expiresInSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(60, 365 * 86400)), { default: () => 86400 }),
  maxUses: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1_000_000)), { default: () => 1 }),
  label: Schema.optional(Schema.Trim.pipe(Schema.maxLength(200))),
  /** Tags every device enrolled with the token gets (e.g. "warehouse-3", "channel:beta"). */
  tags: Schema.optionalWith(Schema.Array(Tag).pipe(Schema.maxItems(20)), { default: () => [] })
})

export class EnrollmentTokensGroup extends protectedGroup("enrollmentTokens")
  .add(HttpApiEndpoint.get("list", "/").addSuccess(Schema.Array(EnrollmentToken)).annotate(OpenApi.Summary, "List enrollment tokens"))
  .add(
    HttpApiEndpoint.post("create", "/")
      .setPayload(CreateEnrollmentToken)
      .addSuccess(CreatedEnrollmentToken, { status: 201 })
      .annotate(OpenApi.Summary, "Create an enrollment token (the token is shown only once)")
  )
  .add(
    HttpApiEndpoint.post("revoke")`/${HttpApiSchema.param("id", EnrollmentTokenId)}/revoke`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Revoke an enrollment token")
  )
  .prefix("/enrollment-tokens")
  .annotate(OpenApi.Description, "Single- or N-use tokens devices enrol with.") {}
