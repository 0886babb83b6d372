/**
 * Handlers of `ReleasesGroup`. An upload is staged (streamed to disk, verified) outside any
 * transaction, then published in the audit transaction; a refused upload is audited as a failure.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest, NodeStream } from "@effect/platform-node"
import { Data, Effect, Stream } from "effect"
import { createReadStream } from "node:fs"
import { NotFound, ValidationError } from "../admin/AdminErrors.js"
import { AdminApi } from "../admin/AdminApi.js"
import { Audit, describeFailure } from "../admin/Audit.js"
import { ClientInfo } from "../admin/api/Middleware.js"
import { auditContext, orInternal } from "../admin/internal/handlers.js"
import { CurrentPrincipal, type Principal } from "../admin/Principal.js"
import { EngineConfig } from "../EngineConfig.js"
import { etagOf, notModified, parseRange } from "./internal/ByteRange.js"
import {
  type ApkTooLarge,
  type ReleaseConflict,
  type ReleaseInfo,
  type ReleaseNotFound,
  type ReleaseRejected,
  Releases,
  type ReleaseView,
  type UploadsNotConfigured
} from "./Releases.js"
import { ApkTooLargeError, ChannelEventView, Release, ReleaseInvalid, ReleaseStateConflict, UploadsDisabled } from "./ReleasesGroup.js"

class UploadReadFailed extends Data.TaggedError("UploadReadFailed") {}

const actorLabel = (principal: Principal) => `${principal.kind}:${principal.id}`

type ServiceError = ReleaseNotFound | UploadsNotConfigured | ApkTooLarge | ReleaseRejected | ReleaseConflict

/** The registry's errors as the API's. */
const toApiError = (error: ServiceError) => {
  switch (error._tag) {
    case "ReleaseNotFound":
      return new NotFound({ message: `no release ${error.releaseId}` })
    case "UploadsNotConfigured":
      return new UploadsDisabled({ code: error.code, message: error.message })
    case "ApkTooLarge":
      return new ApkTooLargeError({ code: error.code, message: `the APK is over ${error.limit} bytes (NEXMDM_APK_MAX_BYTES)`, limitBytes: error.limit })
    case "ReleaseRejected":
      return new ReleaseInvalid({ code: error.code, message: error.message })
    case "ReleaseConflict":
      return new ReleaseStateConflict({ code: error.code, message: error.message })
  }
}

const isServiceError = (error: { readonly _tag: string }): error is ServiceError =>
  ["ReleaseNotFound", "UploadsNotConfigured", "ApkTooLarge", "ReleaseRejected", "ReleaseConflict"].includes(error._tag)

/** Each service error replaced by its API error, the rest unchanged. */
type ApiErrorOf<E> = E extends ReleaseNotFound
  ? NotFound
  : E extends UploadsNotConfigured
    ? UploadsDisabled
    : E extends ApkTooLarge
      ? ApkTooLargeError
      : E extends ReleaseRejected
        ? ReleaseInvalid
        : E extends ReleaseConflict
          ? ReleaseStateConflict
          : E

const mapServiceErrors = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, ApiErrorOf<E>, R> =>
  Effect.mapError(effect, (error) => (isServiceError(error) ? toApiError(error) : error)) as Effect.Effect<A, ApiErrorOf<E>, R>

const toRelease = (view: ReleaseView) => new Release({ ...view, schemes: [...view.schemes], servedOn: [...view.servedOn] })
const brief = (info: ReleaseInfo) => ({ id: info.id, versionCode: info.versionCode, versionName: info.versionName })

export const ReleasesGroupLive = HttpApiBuilder.group(AdminApi, "releases", (handlers) =>
  Effect.gen(function* () {
    const releases = yield* Releases
    const audit = yield* Audit
    const config = yield* EngineConfig

    return handlers
      .handleRaw("upload", ({ request, urlParams }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const context = yield* auditContext
          const event = { action: "release.upload", detail: { channel: urlParams.channel } }
          const declared = Number(request.headers["content-length"] ?? 0)
          const staged = yield* Effect.gen(function* () {
            // Refuse before reading when the client says how big it is.
            if (config.apkSignerSha256.length > 0 && declared > config.apkMaxBytes) {
              return yield* Effect.fail(
                new ApkTooLargeError({ code: "APK_TOO_LARGE", message: `the APK is over ${config.apkMaxBytes} bytes (NEXMDM_APK_MAX_BYTES)`, limitBytes: config.apkMaxBytes })
              )
            }
            // Not `request.stream`: that destroys the socket when reading stops early, and the client
            // would never see the 413. Left open, Node discards the rest of the body after the answer.
            const body = NodeStream.fromReadable<UploadReadFailed, Uint8Array>(
              () => NodeHttpServerRequest.toIncomingMessage(request),
              () => new UploadReadFailed(),
              { closeOnDone: false }
            )
            return yield* releases.stage(body).pipe(
              mapServiceErrors,
              Effect.catchTag("UploadReadFailed", () =>
                Effect.fail(new ValidationError({ code: "VALIDATION_FAILED", message: "the request body could not be read", issues: [] }))
              )
            )
          }).pipe(
            Effect.tapError((error) =>
              audit
                .record({ ...context, ...event, outcome: "failure", detail: { ...event.detail, ...describeFailure(error) } })
                .pipe(Effect.catchAll((cause) => Effect.logError("audit: could not record a refused upload", cause)))
            )
          )
          const info = yield* audit
            .inTransaction(
              context,
              event,
              releases.publish(staged, { channel: urlParams.channel, uploadedBy: actorLabel(principal), notes: urlParams.notes ?? null }),
              (release) => ({
                target: { kind: "release", id: release.id },
                detail: {
                  channel: urlParams.channel,
                  packageName: release.packageName,
                  versionCode: release.versionCode,
                  versionName: release.versionName,
                  sha256: release.sha256Hex,
                  signer: release.signerCertSha256Hex
                }
              })
            )
            .pipe(Effect.tapError(() => releases.discard(staged)), mapServiceErrors)
          // Just committed: its absence would be a bug, not the caller's problem.
          const view = yield* releases.view(info.id).pipe(Effect.catchTag("ReleaseNotFound", Effect.die))
          return toRelease(view)
        }).pipe(orInternal)
      )
      .handle("list", ({ urlParams }) =>
        releases.list({ channel: urlParams.channel, limit: urlParams.limit }).pipe(Effect.map((views) => views.map(toRelease)), orInternal)
      )
      .handle("adoption", () => orInternal(releases.adoption))
      .handle("history", ({ path }) =>
        releases.history(path.channel, 200).pipe(Effect.map((events) => events.map((event) => new ChannelEventView(event))), orInternal)
      )
      .handle("rollback", ({ path }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const context = yield* auditContext
          const result = yield* audit.inTransaction(
            context,
            { action: "release.rollback", detail: { channel: path.channel } },
            releases.rollback(path.channel, actorLabel(principal)),
            ({ from, to }) => ({ target: { kind: "release", id: from.id }, detail: { channel: path.channel, from: from.id, to: to.id } })
          )
          return { from: brief(result.from), to: brief(result.to) }
        }).pipe(mapServiceErrors, orInternal)
      )
      .handle("get", ({ path }) => releases.view(path.id).pipe(Effect.map(toRelease), mapServiceErrors, orInternal))
      .handleRaw("download", ({ path, request }) =>
        Effect.gen(function* () {
          const file = yield* releases.open(path.id).pipe(mapServiceErrors)
          const client = yield* ClientInfo
          return yield* serveFile(releases, file.info, file.filePath, {
            range: request.headers["range"],
            ifRange: request.headers["if-range"],
            ifNoneMatch: request.headers["if-none-match"],
            clientKind: "admin",
            sourceIp: client.ip
          })
        })
      )
      .handle("promote", ({ path, payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const context = yield* auditContext
          yield* audit.inTransaction(
            context,
            { action: "release.promote", target: { kind: "release", id: path.id }, detail: { channel: payload.channel } },
            releases.promote(path.id, payload.channel, actorLabel(principal))
          )
          return toRelease(yield* releases.view(path.id))
        }).pipe(mapServiceErrors, orInternal)
      )
  })
)

/** The APK with Content-Length, ETag (its SHA-256) and single-range support; each download recorded. */
const serveFile = (
  releases: Releases["Type"],
  info: ReleaseInfo,
  filePath: string,
  request: {
    readonly range: string | undefined
    readonly ifRange: string | undefined
    readonly ifNoneMatch: string | undefined
    readonly clientKind: "admin"
    readonly sourceIp: string | null
  }
) =>
  Effect.gen(function* () {
    const etag = etagOf(info.sha256Hex)
    const common = { etag, "accept-ranges": "bytes", "content-disposition": `attachment; filename="${info.packageName}-${info.versionCode}.apk"` }
    if (notModified(request.ifNoneMatch, etag)) return HttpServerResponse.empty({ status: 304, headers: common })
    const range = request.ifRange !== undefined && request.ifRange !== etag ? { _tag: "Whole" as const } : parseRange(request.range, info.sizeBytes)
    if (range._tag === "Unsatisfiable") {
      return HttpServerResponse.empty({ status: 416, headers: { ...common, "content-range": `bytes */${info.sizeBytes}` } })
    }
    const start = range._tag === "Partial" ? range.start : 0
    const end = range._tag === "Partial" ? range.end : info.sizeBytes - 1
    const downloadId = yield* releases.recordDownloadStart({
      releaseId: info.id,
      clientKind: request.clientKind,
      deviceId: null,
      sourceIp: request.sourceIp,
      rangeStart: range._tag === "Partial" ? start : null
    })
    let sent = 0
    const body = NodeStream.fromReadable<Error, Uint8Array>(
      () => createReadStream(filePath, { start, end }),
      (cause) => (cause instanceof Error ? cause : new Error(String(cause)))
    ).pipe(
      Stream.tap((chunk) => Effect.sync(() => void (sent += chunk.byteLength))),
      Stream.ensuring(Effect.suspend(() => releases.recordDownloadEnd(downloadId, sent, end === info.sizeBytes - 1 && start + sent === info.sizeBytes)))
    )
    return HttpServerResponse.stream(body, {
      status: range._tag === "Partial" ? 206 : 200,
      contentType: "application/vnd.android.package-archive",
      contentLength: end - start + 1,
      headers: range._tag === "Partial" ? { ...common, "content-range": `bytes ${start}-${end}/${info.sizeBytes}` } : common
    })
  })
