/**
 * Staged agent updates in the admin API (see `Rollouts.ts` for how they advance and halt).
 *
 *   POST /rollouts {channel, stages?, maxFailureRate?, maxOfflineRate?, soakSeconds?} -> 201 Rollout
 *        rolls the channel's current release out; the first stage's install_apk commands go at once
 *   GET  /rollouts?limit          -> Rollout[] (newest first)
 *   GET  /rollouts/:id            -> Rollout (per-stage devices, succeeded, failed, pending)
 *   POST /rollouts/:id/pause      -> Rollout (no further stages; sent commands still run)
 *   POST /rollouts/:id/resume     -> Rollout (a paused or halted one runs again)
 *
 * 409 RolloutConflict: NO_RELEASE, NO_DEVICES, ROLLOUT_ACTIVE (one per channel), BAD_STATE.
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { NotFound } from "../admin/AdminErrors.js"
import { protectedGroup } from "../admin/api/Middleware.js"
import { ReleaseChannelSchema, ReleaseId } from "./ReleasesGroup.js"
import { DEFAULT_STAGES, validStages } from "./Rollouts.js"

export const RolloutId = Schema.String.pipe(Schema.pattern(/^ro_[0-9a-z]{20}$/)).annotations({ identifier: "RolloutId" })

const Rate = Schema.Number.pipe(Schema.between(0, 1))

export class RolloutStage extends Schema.Class<RolloutStage>("RolloutStage")({
  percent: Schema.Int,
  devices: Schema.Int,
  succeeded: Schema.Int,
  failed: Schema.Int,
  pending: Schema.Int
}) {}

export class Rollout extends Schema.Class<Rollout>("Rollout")({
  id: RolloutId,
  releaseId: ReleaseId,
  versionCode: Schema.Int,
  versionName: Schema.String,
  channel: ReleaseChannelSchema,
  stages: Schema.Array(Schema.Int),
  currentStage: Schema.Int,
  state: Schema.Literal("running", "paused", "halted", "completed"),
  maxFailureRate: Schema.Number,
  maxOfflineRate: Schema.Number,
  soakSeconds: Schema.Int,
  haltReason: Schema.NullOr(Schema.String),
  startedBy: Schema.String,
  createdAt: Schema.Date,
  updatedAt: Schema.Date,
  perStage: Schema.Array(RolloutStage),
  offlineAfterUpdate: Schema.Int
}) {}

export const StartRolloutRequest = Schema.Struct({
  channel: ReleaseChannelSchema,
  stages: Schema.optionalWith(
    Schema.Array(Schema.Int).pipe(Schema.filter(validStages, { message: () => "increasing whole percentages (1-100) ending at 100" })),
    { default: () => [...DEFAULT_STAGES] }
  ),
  maxFailureRate: Schema.optionalWith(Rate, { default: () => 0.1 }),
  maxOfflineRate: Schema.optionalWith(Rate, { default: () => 0.2 }),
  soakSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 7 * 86400)), { default: () => 600 })
})

export class RolloutConflict extends Schema.TaggedError<RolloutConflict>()(
  "RolloutConflict",
  { code: Schema.Literal("NO_RELEASE", "NO_DEVICES", "ROLLOUT_ACTIVE", "BAD_STATE"), message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "The rollout cannot start or change state now" })
) {}

const rolloutPath = HttpApiSchema.param("id", RolloutId)

export class RolloutsGroup extends protectedGroup("rollouts")
  .add(
    HttpApiEndpoint.post("start", "/")
      .setPayload(StartRolloutRequest)
      .addSuccess(Rollout, { status: 201 })
      .addError(RolloutConflict)
      .annotate(OpenApi.Summary, "Roll a channel's current agent release out in stages")
  )
  .add(
    HttpApiEndpoint.get("list", "/")
      .setUrlParams(Schema.Struct({ limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 200)), { default: () => 50 }) }))
      .addSuccess(Schema.Array(Rollout))
      .annotate(OpenApi.Summary, "List rollouts, newest first")
  )
  .add(HttpApiEndpoint.get("get")`/${rolloutPath}`.addSuccess(Rollout).addError(NotFound).annotate(OpenApi.Summary, "One rollout with its progress"))
  .add(
    HttpApiEndpoint.post("pause")`/${rolloutPath}/pause`
      .addSuccess(Rollout)
      .addError(NotFound)
      .addError(RolloutConflict)
      .annotate(OpenApi.Summary, "Stop issuing further stages")
  )
  .add(
    HttpApiEndpoint.post("resume")`/${rolloutPath}/resume`
      .addSuccess(Rollout)
      .addError(NotFound)
      .addError(RolloutConflict)
      .annotate(OpenApi.Summary, "Continue a paused or halted rollout")
  )
  .prefix("/rollouts")
  .annotate(OpenApi.Description, "Staged agent updates through install_apk commands, halting on failures or devices lost after updating.") {}
