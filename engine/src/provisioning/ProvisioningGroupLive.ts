/** Handlers of `ProvisioningGroup`: scripts and QR codes from the token, the channel's release and the public URL. */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect, Option } from "effect"
import { ValidationError } from "../admin/AdminErrors.js"
import { AdminApi } from "../admin/AdminApi.js"
import { Audit } from "../admin/Audit.js"
import { auditContext, orInternal } from "../admin/internal/handlers.js"
import { DevicePlane } from "../DevicePlane.js"
import type { EngineConfig } from "../EngineConfig.js"
import type { Releases } from "../releases/Releases.js"
import { generateScript, type ScriptPlatform, UnsafeScriptValue } from "./EnrollmentScripts.js"
import { prepare, type ProvisioningRequest, scriptInputOf } from "./ProvisioningRequests.js"
import { ProvisioningStore } from "./ProvisioningStore.js"
import { provisioningJson, renderPng, renderSvg, type WifiSettings } from "./QrProvisioning.js"

const unsafe = (error: UnsafeScriptValue) =>
  new ValidationError({ code: "VALIDATION_FAILED", message: error.message, issues: [{ path: error.field.split("."), message: error.message }] })

export const ProvisioningGroupLive = HttpApiBuilder.group(AdminApi, "provisioning", (handlers) =>
  Effect.gen(function* () {
    const store = yield* ProvisioningStore
    const plane = yield* DevicePlane

    const audit = yield* Audit
    const context = yield* Effect.context<ProvisioningStore | Releases | EngineConfig>()
    /** Prepared, and audited either way: who obtained an enrollment script or QR code for which token. */
    const prepareFor = (action: string, tokenId: string, request: ProvisioningRequest, detail: Record<string, unknown>) =>
      prepare(tokenId, request, Option.some(plane.url)).pipe(
        Effect.provide(context),
        Effect.tapBoth({
          onSuccess: (prepared) => record(action, tokenId, "success", { ...detail, releaseId: prepared.release.id, serverUrl: prepared.serverUrl }),
          onFailure: (error) => (error._tag === "ProvisioningConflict" ? record(action, tokenId, "failure", { ...detail, code: error.code }) : Effect.void)
        })
      )
    const record = (action: string, tokenId: string, outcome: "success" | "failure", detail: Record<string, unknown>) =>
      Effect.flatMap(auditContext, (who) => audit.record({ ...who, action, target: { kind: "enrollment_token", id: tokenId }, outcome, detail })).pipe(
        Effect.catchAll((cause) => Effect.logError("audit: could not record a provisioning request", cause))
      )

    const attachment = (filename: string, contentType: string, body: string | Uint8Array) =>
      (typeof body === "string" ? HttpServerResponse.text(body, { contentType }) : HttpServerResponse.uint8Array(body, { contentType })).pipe(
        HttpServerResponse.setHeader("content-disposition", `attachment; filename="${filename}"`)
      )

    return handlers
      .handle("script", ({ path, payload, urlParams }) =>
        Effect.gen(function* () {
          const prepared = yield* prepareFor("enrollment_token.script", path.id, payload, { platform: urlParams.platform, channel: payload.channel })
          const file = generateScript(urlParams.platform as ScriptPlatform, scriptInputOf(prepared, payload.token))
          if (file instanceof UnsafeScriptValue) return yield* unsafe(file)
          return attachment(file.filename, file.contentType, file.body)
        }).pipe(orInternal)
      )
      .handle("qr", ({ path, payload, urlParams }) =>
        Effect.gen(function* () {
          const { apkUrl, release, serverUrl } = yield* prepareFor("enrollment_token.qr", path.id, payload, { format: urlParams.format, channel: payload.channel })
          const text = provisioningJson({
            serverUrl,
            token: payload.token,
            agent: { packageName: release.packageName, apkUrl, signerCertSha256Hex: release.signerCertSha256Hex },
            wifi: payload.wifi as WifiSettings | undefined,
            skipEncryption: payload.skipEncryption,
            leaveAllSystemAppsEnabled: payload.leaveAllSystemAppsEnabled
          })
          const name = `nexmdm-provisioning-${path.id}`
          switch (urlParams.format) {
            case "json":
              return HttpServerResponse.text(text, { contentType: "application/json" })
            case "png":
              return attachment(`${name}.png`, "image/png", yield* renderPng(text).pipe(Effect.orDie))
            case "svg":
              return attachment(`${name}.svg`, "image/svg+xml", yield* renderSvg(text).pipe(Effect.orDie))
          }
        }).pipe(orInternal)
      )
      .handle("reports", ({ path, urlParams }) => store.listReports(path.id, urlParams.limit).pipe(orInternal))
  })
)
