/**
 * Zero-touch provisioning in the admin API, next to the enrollment tokens it works from. The
 * engine keeps only a hash of a token's secret, so the caller sends the whole token (shown once at
 * creation) in the body; it is checked against the id and never stored.
 *
 *   POST /enrollment-tokens/:id/script?platform=bash|powershell|cmd   {token, serverUrl?, channel?}
 *        -> the script as an attachment (text/x-shellscript, text/plain for .ps1 and .cmd)
 *   POST /enrollment-tokens/:id/qr?format=json|png|svg                {token, serverUrl?, channel?, wifi?,
 *        skipEncryption?, leaveAllSystemAppsEnabled?} -> the provisioning JSON, or its QR code
 *   GET  /enrollment-tokens/:id/reports?limit                         -> ProvisioningReport[] (newest first)
 *
 * 409 ProvisioningConflict: NO_AGENT_RELEASE (the channel has no agent: nothing to point a device
 * at), TOKEN_MISMATCH (not the token of :id), TOKEN_NOT_ACTIVE (expired, used up or revoked).
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ValidationError } from "../admin/AdminErrors.js"
import { EnrollmentTokenId } from "../admin/api/EnrollmentTokensGroup.js"
import { protectedGroup } from "../admin/api/Middleware.js"
import { ProvisioningReport } from "./ProvisioningModel.js"
import { WifiSettings } from "./QrProvisioning.js"

export class ProvisioningConflict extends Schema.TaggedError<ProvisioningConflict>()(
  "ProvisioningConflict",
  { code: Schema.Literal("NO_AGENT_RELEASE", "TOKEN_MISMATCH", "TOKEN_NOT_ACTIVE", "NO_SERVER_URL"), message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "No agent release to provision with, or the token is not this one or not usable" })
) {}

export const ServerUrl = Schema.String.pipe(
  Schema.pattern(/^https?:\/\/[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/),
  Schema.filter((url) => !url.endsWith("/") && !url.includes("?") && !url.includes("#"), {
    message: () => "an http(s) URL without query, fragment or trailing /"
  }),
  Schema.maxLength(500)
).annotations({ description: "Device plane URL as phones reach it; default NEXMDM_PUBLIC_DEVICE_URL" })

const Channel = Schema.Literal("stable", "beta")

export const ScriptRequest = Schema.Struct({
  token: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)),
  serverUrl: Schema.optional(ServerUrl),
  channel: Schema.optionalWith(Channel, { default: () => "stable" as const })
})

export const QrRequest = Schema.Struct({
  ...ScriptRequest.fields,
  wifi: Schema.optional(WifiSettings),
  skipEncryption: Schema.optional(Schema.Boolean),
  leaveAllSystemAppsEnabled: Schema.optional(Schema.Boolean)
})

const tokenPath = HttpApiSchema.param("id", EnrollmentTokenId)

export class ProvisioningGroup extends protectedGroup("provisioning")
  .add(
    HttpApiEndpoint.post("script")`/${tokenPath}/script`
      .setUrlParams(Schema.Struct({ platform: Schema.optionalWith(Schema.Literal("bash", "powershell", "cmd"), { default: () => "bash" as const }) }))
      .setPayload(ScriptRequest)
      .addSuccess(HttpApiSchema.Text({ contentType: "text/plain" }))
      .addError(ProvisioningConflict)
      .addError(ValidationError)
      .annotate(OpenApi.Summary, "An enrollment script for this token (bash, powershell, or the cmd launcher of the PowerShell one)")
  )
  .add(
    HttpApiEndpoint.post("qr")`/${tokenPath}/qr`
      .setUrlParams(Schema.Struct({ format: Schema.optionalWith(Schema.Literal("json", "png", "svg"), { default: () => "png" as const }) }))
      .setPayload(QrRequest)
      .addSuccess(Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({ description: "format=json; png and svg answer image/png and image/svg+xml" }))
      .addError(ProvisioningConflict)
      .addError(ValidationError)
      .annotate(OpenApi.Summary, "Android Enterprise QR provisioning for this token (JSON, PNG or SVG)")
  )
  .add(
    HttpApiEndpoint.get("reports")`/${tokenPath}/reports`
      .setUrlParams(Schema.Struct({ limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)), { default: () => 200 }) }))
      .addSuccess(Schema.Array(ProvisioningReport))
      .annotate(OpenApi.Summary, "What enrollment scripts reported about devices of this token (failed preflights...), newest first")
  )
  .prefix("/enrollment-tokens")
  .annotate(OpenApi.Description, "Zero-touch enrollment: scripts, QR provisioning, and what scripts reported.") {}
