/**
 * The device-plane endpoints enrollment scripts call, authenticated by the enrollment token they
 * carry (in the JSON body, never in the URL, so it stays out of access logs):
 *
 *   POST /v1/provisioning/reports  ProvisioningReportRequest -> 201 {recorded: true}
 *        what a script found about a device (a failed preflight: accounts present, another device
 *        owner, Android too old...; or a later stage that failed), listed per token by the admin API.
 *   POST /v1/provisioning/status   ProvisioningStatusRequest -> 200 {token, enrolled}
 *        the token's state and uses, and which of the given serials enrolled with it: scripts poll
 *        this once per round for all their pending devices.
 *
 * Errors are the device plane's `{"error":{code,message}}`: 400 BAD_REQUEST, 401 TOKEN_INVALID,
 * 429 RATE_LIMITED (per source IP, separate from the enrollment limit so polling cannot starve
 * enrollments), 503 when the database is away. Registered by DevicePlane with one line.
 */
import { describeParseError } from "@nexmdm/protocol"
import { Duration, Effect, Either, FiberSet, Schedule, Schema } from "effect"
import { exchange, type Exchange, readBody, respond, respondError } from "../internal/HttpIo.js"
import { KeyedLimiter } from "../internal/TokenBucket.js"
import { SlowHashRefused } from "../SlowHashBudget.js"
import type { HttpRequest, HttpResponse, TemplatedApp } from "../internal/Uws.js"
import { ProvisioningReportRequest, ProvisioningStatusRequest, REPORTS_PATH, STATUS_PATH } from "./ProvisioningModel.js"
import { ProvisioningStore, ProvisioningTokenRejected } from "./ProvisioningStore.js"

const BODY_LIMIT = 64 * 1024

/** Requests per minute per source IP: a technician's laptop polling for a batch stays far below. */
const PROVISIONING_RATE_PER_MINUTE = 600

const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(Schema.parseJson(schema), { errors: "first" })
  return (text: string) => Either.mapLeft(decode(text), (error) => describeParseError(error))
}
const decodeReport = decoder(ProvisioningReportRequest)
const decodeStatus = decoder(ProvisioningStatusRequest)

/** Adds the provisioning routes to the device plane's app (before its catch-all). */
export const register = (app: TemplatedApp, clientIp: (res: HttpResponse, req: HttpRequest) => string) =>
  Effect.gen(function* () {
    const store = yield* ProvisioningStore
    const run = yield* FiberSet.makeRuntime<never>()
    const limiter = new KeyedLimiter({ ratePerSecond: PROVISIONING_RATE_PER_MINUTE / 60, capacity: 60 })

    const answer = <A>(ex: Exchange, route: string, effect: Effect.Effect<A, { readonly _tag: string }>, onSuccess: (value: A) => void) =>
      run(
        effect.pipe(
          Effect.matchCauseEffect({
            onSuccess: (value) => Effect.sync(() => onSuccess(value)),
            onFailure: (cause) =>
              Effect.gen(function* () {
                const failure = cause._tag === "Fail" ? cause.error : undefined
                if (failure instanceof ProvisioningTokenRejected) return respondError(ex, 401, failure.code, failure.message)
                if (failure instanceof SlowHashRefused) return respondError(ex, 429, "RATE_LIMITED", failure.message, failure.retryAfterMs)
                if (failure !== undefined && failure._tag === "SqlError") {
                  yield* Effect.logWarning("database unavailable for a provisioning request").pipe(Effect.annotateLogs({ module: "ProvisioningRoutes", route }))
                  return respondError(ex, 503, "INTERNAL", "database unavailable: retry later", 5000)
                }
                yield* Effect.logError("provisioning request failed", cause).pipe(Effect.annotateLogs({ module: "ProvisioningRoutes", route }))
                respondError(ex, 500, "INTERNAL", "internal error")
              })
          })
        )
      )

    const accept = (res: HttpResponse, req: HttpRequest, onBody: (ex: Exchange, text: string, ip: string) => void) => {
      const ip = clientIp(res, req)
      const ex = exchange(res)
      const wait = limiter.take(ip, Date.now())
      if (wait > 0) return respondError(ex, 429, "RATE_LIMITED", "too many provisioning requests from this address", wait)
      readBody(ex, BODY_LIMIT, (text) => onBody(ex, text, ip))
    }

    app.post(REPORTS_PATH, (res, req) =>
      accept(res, req, (ex, text, ip) => {
        const request = decodeReport(text)
        if (Either.isLeft(request)) return respondError(ex, 400, "BAD_REQUEST", request.left)
        const { token, ...report } = request.right
        answer(
          ex,
          "reports",
          Effect.flatMap(store.authenticate(token, { ip }), (status) => store.recordReport(status.id, { ...report, sourceIp: ip })),
          () => respond(ex, 201, { recorded: true })
        )
      })
    )
    app.post(STATUS_PATH, (res, req) =>
      accept(res, req, (ex, text, ip) => {
        const request = decodeStatus(text)
        if (Either.isLeft(request)) return respondError(ex, 400, "BAD_REQUEST", request.left)
        answer(
          ex,
          "status",
          Effect.flatMap(store.authenticate(request.right.token, { ip }), (status) =>
            Effect.map(store.enrolledSerials(status.id, request.right.serials), (enrolled) => ({ status, enrolled }))
          ),
          ({ enrolled, status }) =>
            respond(ex, 200, {
              token: {
                id: status.id,
                state: status.state,
                maxUses: status.maxUses,
                uses: status.uses,
                usesLeft: status.state === "active" ? status.maxUses - status.uses : 0,
                expiresAt: status.expiresAt.toISOString()
              },
              enrolled: enrolled.map((device) => ({ serial: device.serial, deviceId: device.deviceId, enrolledAt: device.enrolledAt.toISOString() }))
            })
        )
      })
    )
    for (const path of [REPORTS_PATH, STATUS_PATH]) {
      app.any(path, (res) => respondError(exchange(res), 405, "METHOD_NOT_ALLOWED", "method not allowed"))
    }
    yield* Effect.sync(() => limiter.prune(Date.now())).pipe(Effect.repeat(Schedule.spaced(Duration.minutes(1))), Effect.forkScoped)
  })
