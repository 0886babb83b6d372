/**
 * The agent APK registry in the admin API.
 *
 *   POST /releases?channel=stable|beta&notes=   body: the APK (application/vnd.android.package-archive)
 *        -> 201 Release. Streamed to disk (NEXMDM_APK_MAX_BYTES, else 413 APK_TOO_LARGE), verified
 *        (v2/v3 signature and digest, signer pinned by NEXMDM_APK_SIGNER_SHA256), version code above
 *        everything the channel served. 422 ReleaseInvalid with the verifier's code, 503 when no
 *        signer is pinned (APK_SIGNER_NOT_CONFIGURED), 409 when the same file is already a release.
 *   GET  /releases?channel&limit                 -> Release[] (newest first)
 *   GET  /releases/adoption                      -> devices per channel and agent version
 *   GET  /releases/channels/:channel/history     -> ChannelEvent[] (publish, promote, rollback)
 *   POST /releases/channels/:channel/rollback    -> {from, to}
 *   GET  /releases/:id                           -> Release
 *   GET  /releases/:id/apk                       -> the file (Content-Length, ETag = "sha256", Range)
 *   POST /releases/:id/promote {channel}         -> Release (now served on that channel)
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { NotFound } from "../admin/AdminErrors.js"
import { protectedGroup } from "../admin/api/Middleware.js"

export const RELEASES_PATH = "/api/v1/releases"

/** The upload route reads its own (large) body: the admin API's small body limit does not apply to it. */
export const isApkUpload = (method: string, url: string) => method === "POST" && url.split("?")[0] === RELEASES_PATH

export const ReleaseChannelSchema = Schema.Literal("stable", "beta")
export const ReleaseId = Schema.String.pipe(Schema.pattern(/^rel_[0-9a-z]{20}$/)).annotations({ identifier: "ReleaseId" })
const Sha256Hex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))

export class Release extends Schema.Class<Release>("Release")({
  id: ReleaseId,
  packageName: Schema.String,
  versionCode: Schema.Int,
  versionName: Schema.String,
  /** The channel it was uploaded to. */
  channel: ReleaseChannelSchema,
  sha256Hex: Sha256Hex,
  sizeBytes: Schema.Int,
  signerCertSha256Hex: Sha256Hex,
  /** Device-plane path serving the APK. */
  downloadPath: Schema.String,
  status: Schema.Literal("active", "rolled_back"),
  notes: Schema.NullOr(Schema.String),
  uploadedBy: Schema.String,
  createdAt: Schema.Date,
  schemes: Schema.Array(Schema.Int),
  /** Channels whose current release this is. */
  servedOn: Schema.Array(ReleaseChannelSchema),
  downloads: Schema.Int,
  completedDownloads: Schema.Int
}) {}

export class ChannelEventView extends Schema.Class<ChannelEventView>("ChannelEvent")({
  id: Schema.String,
  channel: ReleaseChannelSchema,
  releaseId: ReleaseId,
  action: Schema.Literal("publish", "promote", "rollback"),
  previousReleaseId: Schema.NullOr(ReleaseId),
  actor: Schema.String,
  at: Schema.Date
}) {}

export const AdoptionRow = Schema.Struct({
  channel: ReleaseChannelSchema,
  agentVersion: Schema.NullOr(Schema.String),
  devices: Schema.Int
})

const ReleaseBrief = Schema.Struct({ id: ReleaseId, versionCode: Schema.Int, versionName: Schema.String })

/** 422: the APK is not acceptable (did not verify, wrong signer, version not increasing, ...). */
export class ReleaseInvalid extends Schema.TaggedError<ReleaseInvalid>()(
  "ReleaseInvalid",
  {
    code: Schema.Literal(
      "APK_TRUNCATED",
      "APK_NOT_ZIP",
      "APK_SIGNATURE_MISSING",
      "APK_SIGNATURE_MALFORMED",
      "APK_SIGNATURE_INVALID",
      "APK_DIGEST_MISMATCH",
      "APK_UNSUPPORTED_ALGORITHM",
      "APK_SIGNER_MISMATCH",
      "APK_SIGNER_NOT_TRUSTED",
      "APK_MANIFEST_INVALID",
      "APK_VERSION_NOT_INCREASING",
      "APK_PACKAGE_MISMATCH",
      "APK_EMPTY"
    ),
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 422, description: "The APK did not verify or does not fit the channel" })
) {}

export class ApkTooLargeError extends Schema.TaggedError<ApkTooLargeError>()(
  "ApkTooLarge",
  { code: Schema.Literal("APK_TOO_LARGE"), message: Schema.String, limitBytes: Schema.Int },
  HttpApiSchema.annotations({ status: 413, description: "The APK is over NEXMDM_APK_MAX_BYTES" })
) {}

export class UploadsDisabled extends Schema.TaggedError<UploadsDisabled>()(
  "UploadsDisabled",
  { code: Schema.Literal("APK_SIGNER_NOT_CONFIGURED"), message: Schema.String },
  HttpApiSchema.annotations({ status: 503, description: "No signer is pinned (NEXMDM_APK_SIGNER_SHA256): uploads are refused" })
) {}

export class ReleaseStateConflict extends Schema.TaggedError<ReleaseStateConflict>()(
  "ReleaseStateConflict",
  { code: Schema.Literal("RELEASE_EXISTS", "NOTHING_TO_ROLL_BACK", "RELEASE_ROLLED_BACK", "ALREADY_ON_CHANNEL"), message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "The change conflicts with the registry's state" })
) {}

const releasePath = HttpApiSchema.param("id", ReleaseId)
const channelPath = HttpApiSchema.param("channel", ReleaseChannelSchema)

export class ReleasesGroup extends protectedGroup("releases")
  .add(
    HttpApiEndpoint.post("upload", "/")
      .setUrlParams(
        Schema.Struct({
          channel: Schema.optionalWith(ReleaseChannelSchema, { default: () => "stable" as const }),
          notes: Schema.optional(Schema.String.pipe(Schema.maxLength(500)))
        })
      )
      .setPayload(HttpApiSchema.Uint8Array({ contentType: "application/vnd.android.package-archive" }))
      .addSuccess(Release, { status: 201 })
      .addError(ReleaseInvalid)
      .addError(ApkTooLargeError)
      .addError(UploadsDisabled)
      .addError(ReleaseStateConflict)
      .annotate(OpenApi.Summary, "Upload a signed agent APK (the body is the file)")
  )
  .add(
    HttpApiEndpoint.get("list", "/")
      .setUrlParams(
        Schema.Struct({
          channel: Schema.optional(ReleaseChannelSchema),
          limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)), { default: () => 100 })
        })
      )
      .addSuccess(Schema.Array(Release))
      .annotate(OpenApi.Summary, "List agent releases, newest first")
  )
  .add(
    HttpApiEndpoint.get("adoption", "/adoption")
      .addSuccess(Schema.Array(AdoptionRow))
      .annotate(OpenApi.Summary, "Devices per channel and agent version")
  )
  .add(
    HttpApiEndpoint.get("history")`/channels/${channelPath}/history`
      .addSuccess(Schema.Array(ChannelEventView))
      .annotate(OpenApi.Summary, "What a channel served over time")
  )
  .add(
    HttpApiEndpoint.post("rollback")`/channels/${channelPath}/rollback`
      .addSuccess(Schema.Struct({ from: ReleaseBrief, to: ReleaseBrief }))
      .addError(ReleaseStateConflict)
      .annotate(OpenApi.Summary, "Point a channel back at its previous release")
  )
  .add(HttpApiEndpoint.get("get")`/${releasePath}`.addSuccess(Release).addError(NotFound).annotate(OpenApi.Summary, "One release"))
  .add(
    HttpApiEndpoint.get("download")`/${releasePath}/apk`
      .addSuccess(HttpApiSchema.Uint8Array({ contentType: "application/vnd.android.package-archive" }))
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Download a release's APK (Range and ETag supported)")
  )
  .add(
    HttpApiEndpoint.post("promote")`/${releasePath}/promote`
      .setPayload(Schema.Struct({ channel: ReleaseChannelSchema }))
      .addSuccess(Release)
      .addError(NotFound)
      .addError(ReleaseInvalid)
      .addError(ReleaseStateConflict)
      .annotate(OpenApi.Summary, "Make a release the current one of a channel (e.g. beta -> stable)")
  )
  .prefix("/releases")
  .annotate(OpenApi.Description, "Verified agent APKs, their channels (stable, beta) and adoption.") {}
