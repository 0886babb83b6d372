/**
 * The device plane on uWebSockets.js: WebSocket sessions, the HTTP fallback, enrollment and
 * ticket renewal, on one port (TLS when given a certificate). This module turns bytes into typed
 * messages and typed errors; what a message means is decided by the device actor.
 *
 * Hot path: frame -> token bucket -> JSON + Schema decode -> registry.tell -> actor -> ack.
 * Nothing on it awaits the database or runs argon2: a reconnect costs one HMAC.
 */
import {
  CloseCode,
  CommandUpdatesRequest,
  decodeDeviceFrame,
  describeParseError,
  EnrollRequest,
  type ErrorCode,
  FcmTokenRequest,
  HeartbeatBatchRequest,
  TicketRequest
} from "@nexmdm/protocol"
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Either, FiberSet, Layer, Option, Schedule, Schema } from "effect"
import { type Connection, errorFrame, heartbeatPolicyFor } from "./DeviceActor.js"
import { DeviceRegistry, type TellResult } from "./DeviceRegistry.js"
import { batteryPolicyOf, EngineConfig } from "./EngineConfig.js"
import { Enrollment, EnrollmentRejected } from "./Enrollment.js"
import { exchange, type Exchange, readBody, respond, respondError, respondRaw } from "./internal/HttpIo.js"
import { type Bucket, type BucketPolicy, KeyedLimiter, newBucket, take } from "./internal/TokenBucket.js"
import { nativeBindingLoaded, type TemplatedApp, type us_listen_socket, uws, type WebSocket } from "./internal/Uws.js"
import * as Metrics from "./Metrics.js"
import * as ProvisioningRoutes from "./provisioning/ProvisioningRoutes.js"
import * as ReleaseRoutes from "./releases/ReleaseRoutes.js"
import { SlowHashRefused } from "./SlowHashBudget.js"
import { type TicketClaims, Tickets } from "./Tickets.js"
import { lastForwardedAddress } from "./internal/ForwardedFor.js"

interface SocketData {
  readonly connectionId: number
  readonly remoteIp: string
  readonly openedAt: number
  authenticated: boolean
  deviceId: string
  generation: number
  ticketExpiresAt: number
  closed: boolean
  badFrames: number
  rateViolations: number
  readonly bucket: Bucket
  connection: Connection | undefined
}

export class DevicePlane extends Context.Tag("@nexmdm/engine/DevicePlane")<
  DevicePlane,
  { readonly port: number; readonly url: string; readonly tls: boolean }
>() {}

const MAX_BAD_FRAMES = 10
const MAX_BACKPRESSURE_BYTES = 64 * 1024
const BODY_LIMIT_SMALL = 16 * 1024
const BODY_LIMIT_HEARTBEATS = 256 * 1024
const MAX_LONG_POLL_S = 30

const decodeJsonBody = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(Schema.parseJson(schema), { errors: "first" })
  return (text: string): Either.Either<A, string> =>
    Either.mapLeft(decode(text), (error) => describeParseError(error))
}
const decodeEnroll = decodeJsonBody(EnrollRequest)
const decodeTicketRequest = decodeJsonBody(TicketRequest)
const decodeHeartbeatBatch = decodeJsonBody(HeartbeatBatchRequest)
const decodeCommandUpdates = decodeJsonBody(CommandUpdatesRequest)
const decodeFcmToken = decodeJsonBody(FcmTokenRequest)

const rejectionStatus: Record<EnrollmentRejected["code"], number> = {
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 410,
  TOKEN_EXHAUSTED: 410,
  CREDENTIALS_INVALID: 401,
  DEVICE_RETIRED: 403
}

export const make = Effect.gen(function* () {
  if (!nativeBindingLoaded()) {
    return yield* Effect.dieMessage(
      "uWebSockets.js did not load its native binary (Node ABI mismatch?): NexMDM needs Node 20 (see .nvmrc)"
    )
  }
  const config = yield* EngineConfig
  const registry = yield* DeviceRegistry
  const tickets = yield* Tickets
  const enrollment = yield* Enrollment
  const sql = yield* SqlClient.SqlClient
  // The one bridge from uWS callbacks into Effect: fibers tracked in this scope.
  const run = yield* FiberSet.makeRuntime<never>()

  const framePolicy: BucketPolicy = { ratePerSecond: config.frameRatePerSecond, capacity: Math.max(50, config.frameRatePerSecond * 25) }
  const ipLimiter = new KeyedLimiter({
    ratePerSecond: config.enrollRatePerMinute / 60,
    capacity: Math.max(1, Math.min(config.enrollRatePerMinute, 10))
  })
  const heartbeatIntervalS = Math.round(Duration.toSeconds(config.heartbeatInterval))
  const batteryPolicy = batteryPolicyOf(config)
  const authTimeoutMs = Duration.toMillis(config.authTimeout)
  const trustedHeader = Option.map(config.trustedProxyHeader, (name) => name.toLowerCase())

  // Decodes straight from uWS's ArrayBuffer (no Buffer wrapper per frame). Invalid UTF-8 becomes
  // U+FFFD, which the frame schemas reject where it matters (printable-ASCII fields).
  const utf8 = new TextDecoder("utf-8")
  let nextConnectionId = 1
  let accepting = true
  const awaitingHello = new Set<WebSocket<SocketData>>()

  const clientIp = (res: { getRemoteAddressAsText(): ArrayBuffer }, header: string | undefined): string => {
    return lastForwardedAddress(header) ?? Buffer.from(res.getRemoteAddressAsText()).toString()
  }

  // ------------------------------------------------------------------------------------------
  // WebSocket sessions

  const connectionFor = (ws: WebSocket<SocketData>, data: SocketData): Connection => ({
    id: data.connectionId,
    send: (frame) => {
      if (data.closed) return false
      const status = ws.send(frame, false)
      if (status === 2) {
        // Dropped: the device is not reading. Its outbox resends after reconnect.
        data.closed = true
        ws.end(CloseCode.slowConsumer, "send buffer overflow")
        return false
      }
      return true
    },
    close: (code, reason) => {
      if (data.closed) return
      data.closed = true
      ws.end(code, reason)
    }
  })

  const sendFrame = (data: SocketData, frame: string) => data.connection?.send(frame)

  const rejectFrame = (data: SocketData, code: ErrorCode, message: string, extra = "") => {
    Metrics.framesRejected(code)
    sendFrame(data, errorFrame(code, message, extra))
  }

  const badFrame = (data: SocketData, code: ErrorCode, message: string) => {
    rejectFrame(data, code, message)
    if (++data.badFrames >= MAX_BAD_FRAMES) data.connection?.close(CloseCode.tooManyBadFrames, "too many bad frames")
  }

  const authenticate = (data: SocketData, claims: TicketClaims) => {
    data.authenticated = true
    data.deviceId = claims.deviceId
    data.generation = claims.generation
    data.ticketExpiresAt = claims.expiresAt
    const told = registry.tell(claims.deviceId, {
      _tag: "Connect",
      connection: data.connection!,
      generation: claims.generation,
      ticketExpiresAt: claims.expiresAt
    })
    if (told !== "queued") {
      refuseTell(data, told, undefined)
      data.connection?.close(CloseCode.tryAgainLater, "try again later")
    }
  }

  const refuseTell = (data: SocketData, told: Exclude<TellResult, "queued">, seq: number | undefined) => {
    const seqField = seq === undefined ? "" : `,"seq":${seq}`
    if (told === "stopping") {
      rejectFrame(data, "SHUTTING_DOWN", "engine is shutting down: reconnect later", `${seqField},"retryAfterMs":5000`)
    } else {
      rejectFrame(data, "BACKPRESSURE", "device mailbox is full: resend later", `${seqField},"retryAfterMs":1000`)
    }
  }

  const onMessage = (ws: WebSocket<SocketData>, message: ArrayBuffer, isBinary: boolean) => {
    const receivedAt = performance.now()
    const data = ws.getUserData()
    const now = Date.now()
    const wait = take(data.bucket, framePolicy, now)
    if (wait > 0 && ++data.rateViolations >= framePolicy.capacity) {
      rejectFrame(data, "RATE_LIMITED", "too many frames")
      data.connection?.close(CloseCode.rateLimited, "rate limited")
      return
    }
    if (message.byteLength > config.maxFrameBytes) {
      rejectFrame(data, "FRAME_TOO_LARGE", `frame of ${message.byteLength} bytes is over the ${config.maxFrameBytes}-byte limit`)
      data.connection?.close(CloseCode.tooLarge, "frame too large")
      return
    }
    if (isBinary) return badFrame(data, "BAD_FRAME", "binary frames are not accepted: send JSON text frames")
    const decoded = decodeDeviceFrame(utf8.decode(message))
    if (Either.isLeft(decoded)) return badFrame(data, decoded.left.code, decoded.left.message)
    const frame = decoded.right
    if (wait > 0) {
      // A rate-limited heartbeat still goes to the actor, refused: it must know the seq, so that
      // later heartbeats do not overtake it.
      if (data.authenticated && frame.type === "heartbeat") {
        const told = registry.tell(data.deviceId, {
          _tag: "Heartbeat",
          connectionId: data.connectionId,
          heartbeat: frame,
          receivedAt,
          rateLimitedMs: wait
        })
        if (told === "queued") return
      }
      return rejectFrame(data, "RATE_LIMITED", "too many frames", `,"retryAfterMs":${wait}`)
    }
    if (!data.authenticated) {
      awaitingHello.delete(ws)
      if (frame.type !== "hello") {
        rejectFrame(data, "UNAUTHENTICATED", "send hello with a ticket first")
        data.connection?.close(CloseCode.unauthenticated, "unauthenticated")
        return
      }
      const claims = tickets.verify(frame.ticket, now)
      if (Either.isLeft(claims)) {
        rejectFrame(data, claims.left.code, claims.left.message)
        const code = claims.left.code === "TICKET_EXPIRED" ? CloseCode.ticketExpired : CloseCode.unauthenticated
        data.connection?.close(code, claims.left.code)
        return
      }
      return authenticate(data, claims.right)
    }
    switch (frame.type) {
      case "heartbeat": {
        const told = registry.tell(data.deviceId, {
          _tag: "Heartbeat",
          connectionId: data.connectionId,
          heartbeat: frame,
          receivedAt
        })
        if (told !== "queued") refuseTell(data, told, frame.seq)
        return
      }
      case "ping":
        sendFrame(
          data,
          JSON.stringify(frame.nonce === undefined ? { type: "pong", serverTime: now } : { type: "pong", nonce: frame.nonce, serverTime: now })
        )
        return
      case "renew_ticket": {
        const issued = tickets.issue(data.deviceId, data.generation)
        sendFrame(data, JSON.stringify({ type: "ticket", ticket: issued.ticket, expiresAt: issued.expiresAt }))
        return
      }
      case "command_ack":
      case "command_result": {
        const told = registry.tell(data.deviceId, { _tag: "CommandReport", connectionId: data.connectionId, report: frame })
        if (told !== "queued") refuseTell(data, told, undefined)
        return
      }
      case "hello":
        return badFrame(data, "BAD_FRAME", "already authenticated")
    }
  }

  const sweepAwaitingHello = Effect.sync(() => {
    const now = Date.now()
    for (const ws of awaitingHello) {
      const data = ws.getUserData()
      if (now - data.openedAt < authTimeoutMs) continue
      awaitingHello.delete(ws)
      rejectFrame(data, "AUTH_TIMEOUT", `no hello within ${Math.round(authTimeoutMs / 1000)}s`)
      data.connection?.close(CloseCode.authTimeout, "auth timeout")
    }
  })

  // ------------------------------------------------------------------------------------------
  // HTTP: enrollment, tickets, fallback

  /** The ticket in `Authorization: Bearer ...`, verified; answers 401 itself when absent or bad. */
  const bearer = (ex: Exchange, header: string): TicketClaims | undefined => {
    if (!header.startsWith("Bearer ")) {
      respondError(ex, 401, "UNAUTHENTICATED", "missing Authorization: Bearer <ticket>")
      return undefined
    }
    const claims = tickets.verify(header.slice(7).trim(), Date.now())
    if (Either.isLeft(claims)) {
      respondError(ex, 401, claims.left.code, claims.left.message)
      return undefined
    }
    return claims.right
  }

  const rateLimited = (ex: Exchange, ip: string): boolean => {
    const wait = ipLimiter.take(ip, Date.now())
    if (wait === 0) return false
    respondError(ex, 429, "RATE_LIMITED", "too many requests from this address", wait)
    return true
  }

  /** An actor that cannot take an HTTP request now answers 503 with the reason. */
  const refuseHttp = (ex: Exchange, told: Exclude<TellResult, "queued">) =>
    told === "stopping"
      ? respondError(ex, 503, "SHUTTING_DOWN", "engine is shutting down", 5000)
      : respondError(ex, 503, "BACKPRESSURE", "device mailbox is full", 1000)

  /** Runs an admin-side effect for an HTTP exchange and maps its failures to typed answers. */
  const runForExchange = <A>(
    ex: Exchange,
    route: string,
    effect: Effect.Effect<A, EnrollmentRejected | { readonly _tag: string }>,
    onSuccess: (value: A) => void
  ) =>
    run(
      effect.pipe(
        Effect.matchCauseEffect({
          onSuccess: (value) => Effect.sync(() => onSuccess(value)),
          onFailure: (cause) =>
            Effect.gen(function* () {
              const failure = cause._tag === "Fail" ? cause.error : undefined
              if (failure instanceof EnrollmentRejected) {
                return respondError(ex, rejectionStatus[failure.code], failure.code, failure.message)
              }
              // Too many failed checks for this token, device or address, or the argon2 budget is spent.
              if (failure instanceof SlowHashRefused) {
                return respondError(ex, 429, "RATE_LIMITED", failure.message, failure.retryAfterMs)
              }
              if (failure !== undefined && failure._tag === "SqlError") {
                yield* Effect.logWarning("database unavailable for a device request").pipe(Effect.annotateLogs({ route }))
                return respondError(ex, 503, "INTERNAL", "database unavailable: retry later", 5000)
              }
              yield* Effect.logError("device request failed", cause).pipe(Effect.annotateLogs({ route }))
              respondError(ex, 500, "INTERNAL", "internal error")
            })
        })
      )
    )

  const onEnroll = (res: Parameters<Parameters<TemplatedApp["post"]>[1]>[0], ip: string) => {
    const ex = exchange(res)
    if (rateLimited(ex, ip)) return
    readBody(ex, BODY_LIMIT_SMALL, (text) => {
      const request = decodeEnroll(text)
      if (Either.isLeft(request)) return respondError(ex, 400, "BAD_REQUEST", request.left)
      runForExchange(
        ex,
        "enroll",
        enrollment.enroll(request.right, { ip }).pipe(
          Effect.tap((enrolled) =>
            enrolled.reenrolled
              ? Effect.sync(() => registry.tell(enrolled.deviceId, {
                  _tag: "CredentialsReplaced",
                  generation: enrolled.generation,
                  hmacKey: Buffer.from(enrolled.hmacKey, "base64")
                }))
              : Effect.void
          ),
          Effect.tapBoth({
            onFailure: (error) =>
              Effect.sync(() => Metrics.enrollments(error._tag === "EnrollmentRejected" ? error.code : error._tag === "SlowHashRefused" ? "RATE_LIMITED" : "error")),
            onSuccess: (enrolled) => Effect.sync(() => Metrics.enrollments(enrolled.reenrolled ? "reenrolled" : "enrolled"))
          })
        ),
        (enrolled) =>
          respond(ex, 201, {
            deviceId: enrolled.deviceId,
            deviceSecret: enrolled.deviceSecret,
            hmacKey: enrolled.hmacKey,
            ticket: enrolled.ticket.ticket,
            ticketExpiresAt: enrolled.ticket.expiresAt,
            heartbeatIntervalS,
            reenrolled: enrolled.reenrolled
          })
      )
    })
  }

  const onTicket = (res: Parameters<Parameters<TemplatedApp["post"]>[1]>[0], ip: string) => {
    const ex = exchange(res)
    if (rateLimited(ex, ip)) return
    readBody(ex, BODY_LIMIT_SMALL, (text) => {
      const request = decodeTicketRequest(text)
      if (Either.isLeft(request)) return respondError(ex, 400, "BAD_REQUEST", request.left)
      runForExchange(ex, "ticket", enrollment.renewTicket(request.right, { ip }), (renewed) =>
        respond(ex, 200, { ticket: renewed.ticket.ticket, ticketExpiresAt: renewed.ticket.expiresAt })
      )
    })
  }

  const onHttpHeartbeats = (res: Parameters<Parameters<TemplatedApp["post"]>[1]>[0], authorization: string) => {
    const ex = exchange(res)
    const claims = bearer(ex, authorization)
    if (claims === undefined) return
    readBody(ex, BODY_LIMIT_HEARTBEATS, (text) => {
      const request = decodeHeartbeatBatch(text)
      if (Either.isLeft(request)) return respondError(ex, 400, "BAD_REQUEST", request.left)
      const heartbeats = request.right.heartbeats
      for (let i = 1; i < heartbeats.length; i++) {
        if (heartbeats[i]!.seq <= heartbeats[i - 1]!.seq) {
          return respondError(ex, 400, "BAD_REQUEST", "heartbeats must be in increasing seq order")
        }
      }
      const told = registry.tell(claims.deviceId, {
        _tag: "HttpHeartbeats",
        generation: claims.generation,
        heartbeats,
        reply: (result) => {
          if (result === "superseded") return respondError(ex, 401, "TICKET_INVALID", "credentials were replaced or device unknown")
          if (result === "retired") return respondError(ex, 403, "DEVICE_RETIRED", "this device was retired: enrol it again")
          if (result.backpressure && result.acked.length === 0) {
            return respondError(ex, 503, "BACKPRESSURE", "engine write buffer is full: resend later", heartbeatIntervalS * 1000)
          }
          const now = Date.now()
          const renewal = claims.expiresAt - now < tickets.ttlMs / 2 ? tickets.issue(claims.deviceId, claims.generation) : undefined
          respond(ex, 200, {
            acked: result.acked,
            durableSeq: result.durableSeq,
            heartbeatIntervalS: result.intervalS,
            heartbeatPolicy: heartbeatPolicyFor(result.intervalS, batteryPolicy),
            ...(renewal === undefined ? {} : { ticket: renewal.ticket, ticketExpiresAt: renewal.expiresAt })
          })
        }
      })
      if (told !== "queued") refuseHttp(ex, told)
    })
  }

  let nextWaiterId = 1

  const onMessages = (res: Parameters<Parameters<TemplatedApp["get"]>[1]>[0], authorization: string, waitParam: string) => {
    const ex = exchange(res)
    const claims = bearer(ex, authorization)
    if (claims === undefined) return
    const waitS = waitParam === "" ? 0 : Number(waitParam)
    if (!Number.isInteger(waitS) || waitS < 0 || waitS > MAX_LONG_POLL_S) {
      return respondError(ex, 400, "BAD_REQUEST", `waitS must be an integer from 0 to ${MAX_LONG_POLL_S}`)
    }
    // The actor answers when a command arrives or the wait is over (its sweeper Tick), whichever first.
    const told = registry.tell(claims.deviceId, {
      _tag: "Poll",
      generation: claims.generation,
      waiterId: nextWaiterId++,
      waitMs: waitS * 1000,
      reply: (answer) => {
        if (answer === "superseded") return respondError(ex, 401, "TICKET_INVALID", "credentials were replaced or device unknown")
        if (answer === "retired") return respondError(ex, 403, "DEVICE_RETIRED", "this device was retired: enrol it again")
        respondRaw(ex, 200, `{"messages":[${answer.frames.join(",")}],"durableSeq":${answer.durableSeq}}`)
      }
    })
    if (told !== "queued") refuseHttp(ex, told)
  }

  const onCommandUpdates = (res: Parameters<Parameters<TemplatedApp["post"]>[1]>[0], authorization: string) => {
    const ex = exchange(res)
    const claims = bearer(ex, authorization)
    if (claims === undefined) return
    readBody(ex, BODY_LIMIT_SMALL * 8, (text) => {
      const request = decodeCommandUpdates(text)
      if (Either.isLeft(request)) return respondError(ex, 400, "BAD_REQUEST", request.left)
      for (const report of request.right.updates) {
        const told = registry.tell(claims.deviceId, { _tag: "CommandReport", connectionId: undefined, generation: claims.generation, report })
        if (told !== "queued") return refuseHttp(ex, told)
      }
      respond(ex, 200, { accepted: request.right.updates.length })
    })
  }

  const onFcmToken = (res: Parameters<Parameters<TemplatedApp["put"]>[1]>[0], authorization: string) => {
    const ex = exchange(res)
    const claims = bearer(ex, authorization)
    if (claims === undefined) return
    readBody(ex, BODY_LIMIT_SMALL, (text) => {
      const request = decodeFcmToken(text)
      if (Either.isLeft(request)) return respondError(ex, 400, "BAD_REQUEST", request.left)
      const token = request.right.token
      runForExchange(
        ex,
        "fcm-token",
        sql`update devices set fcm_token = ${token}, fcm_token_status = 'valid'
          where id = ${claims.deviceId} and credential_generation = ${claims.generation} and retired_at is null
          returning id`,
        (rows) => {
          if (rows.length === 0) return respondError(ex, 401, "TICKET_INVALID", "credentials were replaced or device unknown")
          registry.tell(claims.deviceId, { _tag: "FcmToken", token })
          respond(ex, 200, { registered: true })
        }
      )
    })
  }

  // ------------------------------------------------------------------------------------------
  // The app

  const tls = Option.isSome(config.tlsCertFile) && Option.isSome(config.tlsKeyFile)
  const app: TemplatedApp = tls
    ? uws.SSLApp({ cert_file_name: Option.getOrThrow(config.tlsCertFile), key_file_name: Option.getOrThrow(config.tlsKeyFile) })
    : uws.App()

  const headerOf = (req: { getHeader(name: string): string }) =>
    Option.match(trustedHeader, { onNone: () => undefined, onSome: (name) => req.getHeader(name) })

  app.ws<SocketData>("/v1/device/ws", {
    // uWS drops a socket without a close frame past this hard limit; up to it, onMessage answers
    // oversized frames with FRAME_TOO_LARGE and close code 1009 as PROTOCOL.md promises.
    maxPayloadLength: Math.max(config.maxFrameBytes * 4, 64 * 1024),
    idleTimeout: Math.round(Duration.toSeconds(config.idleTimeout)),
    maxBackpressure: MAX_BACKPRESSURE_BYTES,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const key = req.getHeader("sec-websocket-key")
      const protocol = req.getHeader("sec-websocket-protocol")
      const extensions = req.getHeader("sec-websocket-extensions")
      const authorization = req.getHeader("authorization")
      const ip = clientIp(res, headerOf(req))
      const ex = exchange(res)
      if (!accepting) return respondError(ex, 503, "SHUTTING_DOWN", "engine is shutting down", 5000)
      const now = Date.now()
      const data: SocketData = {
        connectionId: nextConnectionId++,
        remoteIp: ip,
        openedAt: now,
        authenticated: false,
        deviceId: "",
        generation: 0,
        ticketExpiresAt: 0,
        closed: false,
        badFrames: 0,
        rateViolations: 0,
        bucket: newBucket(framePolicy, now),
        connection: undefined
      }
      let claims: TicketClaims | undefined
      if (authorization !== "") {
        claims = bearer(ex, authorization)
        if (claims === undefined) return
      }
      ex.answered = true
      res.upgrade({ ...data, pendingClaims: claims }, key, protocol, extensions, context)
    },
    open: (ws) => {
      const data = ws.getUserData() as SocketData & { pendingClaims?: TicketClaims | undefined }
      data.connection = connectionFor(ws, data)
      if (data.pendingClaims !== undefined) authenticate(data, data.pendingClaims)
      else awaitingHello.add(ws)
    },
    message: onMessage,
    close: (ws, code) => {
      const data = ws.getUserData()
      data.closed = true
      awaitingHello.delete(ws)
      if (data.authenticated) registry.tell(data.deviceId, { _tag: "Disconnect", connectionId: data.connectionId, code })
    }
  })
  app.post("/v1/enroll", (res, req) => onEnroll(res, clientIp(res, headerOf(req))))
  app.post("/v1/device/ticket", (res, req) => onTicket(res, clientIp(res, headerOf(req))))
  app.post("/v1/device/heartbeats", (res, req) => onHttpHeartbeats(res, req.getHeader("authorization")))
  app.get("/v1/device/messages", (res, req) => onMessages(res, req.getHeader("authorization"), req.getQuery("waitS") ?? ""))
  app.post("/v1/device/command-updates", (res, req) => onCommandUpdates(res, req.getHeader("authorization")))
  app.put("/v1/device/fcm-token", (res, req) => onFcmToken(res, req.getHeader("authorization")))
  for (const path of ["/v1/enroll", "/v1/device/ticket", "/v1/device/heartbeats", "/v1/device/messages", "/v1/device/command-updates", "/v1/device/fcm-token"]) {
    app.any(path, (res) => respondError(exchange(res), 405, "METHOD_NOT_ALLOWED", "method not allowed"))
  }
  yield* ProvisioningRoutes.register(app, (res, req) => clientIp(res, headerOf(req)))
  yield* ReleaseRoutes.register(app, (res, req) => clientIp(res, headerOf(req)))
  app.any("/*", (res, req) => respondError(exchange(res), 404, "NOT_FOUND", `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}`))

  const listenSocket = yield* Effect.acquireRelease(
    Effect.async<us_listen_socket, Error>((resume) => {
      app.listen(config.host, config.devicePort, (socket) => {
        resume(socket === false ? Effect.fail(new Error(`device plane cannot listen on ${config.host}:${config.devicePort}`)) : Effect.succeed(socket))
      })
    }).pipe(Effect.orDie),
    (socket) =>
      Effect.gen(function* () {
        accepting = false
        uws.us_listen_socket_close(socket)
        yield* registry.closeAll(CloseCode.goingAway, "going away")
        for (const ws of awaitingHello) ws.getUserData().connection?.close(CloseCode.goingAway, "going away")
        yield* Effect.logInfo("device plane closed")
      })
  )
  const port = uws.us_socket_local_port(listenSocket as never)
  const url = `${tls ? "https" : "http"}://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${port}`
  yield* Effect.logInfo("device plane listening").pipe(Effect.annotateLogs({ module: "DevicePlane", url, tls }))

  yield* sweepAwaitingHello.pipe(Effect.repeat(Schedule.spaced(Duration.seconds(1))), Effect.forkScoped)
  yield* Effect.sync(() => ipLimiter.prune(Date.now())).pipe(Effect.repeat(Schedule.spaced(Duration.minutes(1))), Effect.forkScoped)

  return DevicePlane.of({ port, url, tls })
})

export const layer = Layer.scoped(DevicePlane, make)
