/**
 * FCM wake-ups: when a command waits for a device that is not connected, `Push.wake` sends the
 * device a high-priority FCM data message telling it to connect and fetch. FCM is only the bell:
 * the message carries the command's id and a reason, never the command, which stays on the
 * signed device channel.
 *
 * The message is `{ token, data: { type: "wake", commandId, reason }, android: { priority: "high",
 * ttl: 60 s, collapseKey: "nexmdm-wake" } }`: data only (no notification, so nothing is shown and
 * the app's messaging service runs), and wake-ups not yet delivered collapse into one.
 *
 * Sending goes through firebase-admin (`getMessaging(app).send`, HTTP/1.1, which honours
 * `httpAgent`). The SDK retries 503s and connection resets itself (5 tries, 0/1/2/4 s apart, or
 * the server's Retry-After up to 60 s); `wake` never fails: every end is a `PushOutcome` the caller
 * records, and an invalid token is reported as such so the caller stops using it. The SDK's errors
 * keep neither the attempts nor Retry-After: internal/HttpExchanges.ts reads them off Node's HTTP
 * diagnostics channels (logged as `attempts`, returned as `retryAfterMs`).
 *
 * Credentials: NEXMDM_FCM_SERVICE_ACCOUNT_FILE (or the JSON itself in
 * NEXMDM_FCM_SERVICE_ACCOUNT_JSON). Without them push is disabled, said once at start-up, and
 * `wake` answers `Disabled`. Logs show a token's first characters only, never a credential.
 */
import { ConfigError, Context, Data, Duration, Effect, Layer, Option, Redacted } from "effect"
import { cert, type Credential, deleteApp, initializeApp } from "firebase-admin/app"
import { getMessaging, type TokenMessage } from "firebase-admin/messaging"
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import type { Agent } from "node:http"
import https from "node:https"
import { EngineConfig } from "../EngineConfig.js"
import * as Metrics from "../Metrics.js"
import * as HttpExchanges from "./internal/HttpExchanges.js"

export interface WakeInput {
  readonly deviceId: string
  readonly fcmToken: string
  readonly commandId: string
  /**
   * Why the device is woken (e.g. "command"); sent to the device as `data.reason`, cut to its
   * first 256 characters: a message FCM finds too big is an INVALID_ARGUMENT, which would read as
   * an invalid token.
   */
  readonly reason: string
}

/**
 * How a wake-up ended. `code` is firebase-admin's error code (e.g.
 * "messaging/registration-token-not-registered", "app/network-error"); `latencyMs` is the whole
 * send, the SDK's retries included.
 */
export type PushOutcome = Data.TaggedEnum<{
  /** FCM accepted the message (delivery to the device is up to FCM). */
  Sent: { readonly messageId: string; readonly latencyMs: number }
  /** The token is unknown to FCM or malformed: mark it invalid and never send to it again. */
  TokenInvalid: { readonly code: string; readonly latencyMs: number }
  /** FCM's quota was exceeded (429; the SDK does not retry it): try later, not before `retryAfterMs` when FCM sent a Retry-After. */
  RateLimited: { readonly code: string; readonly latencyMs: number; readonly retryAfterMs?: number }
  /**
   * Not sent for another reason: FCM unavailable after the SDK's retries, network errors, or an
   * error that says nothing about the token (credentials, internal). Try later; `retryAfterMs` is
   * the Retry-After of FCM's last answer, when it had one (over 60 s the SDK does not even retry).
   */
  Unavailable: { readonly code: string; readonly latencyMs: number; readonly retryAfterMs?: number }
  /** No FCM credentials configured: nothing was sent. */
  Disabled: {}
}>

export const PushOutcome = Data.taggedEnum<PushOutcome>()

/** What `Push.layerWith` needs: tests point the real SDK at a local FCM server with it. */
export interface PushOptions {
  readonly projectId: string
  /** Any firebase-admin credential, e.g. `{ getAccessToken: async () => ({ access_token, expires_in }) }`. */
  readonly credential: Credential
  /** Agent for every request to FCM; the SDK's default when absent. */
  readonly httpAgent?: Agent | undefined
}

export class Push extends Context.Tag("@nexmdm/engine/Push")<
  Push,
  {
    /** False when no credentials are configured: every `wake` is then `Disabled`. */
    readonly enabled: boolean
    /** Sends one wake-up to one device; never fails (see `PushOutcome`). */
    readonly wake: (input: WakeInput) => Effect.Effect<PushOutcome>
  }
>() {
  /**
   * From NEXMDM_FCM_SERVICE_ACCOUNT_FILE / _JSON; disabled without them. Credentials that cannot
   * be read or used fail start-up with a ConfigError naming the variable (never its content).
   * `httpAgent` carries every request (OAuth token exchange and sends; a proxy, or a test's local
   * FCM); by default a keep-alive agent, so wake-ups reuse one TLS connection to FCM.
   */
  static readonly layerFromConfig = (
    options: { readonly httpAgent?: Agent | undefined } = {}
  ): Layer.Layer<Push, ConfigError.ConfigError, EngineConfig> =>
    Layer.scoped(
      Push,
      Effect.gen(function* () {
        const config = yield* EngineConfig
        const account = yield* readServiceAccount(config.fcmServiceAccountFile, config.fcmServiceAccountJson)
        if (Option.isNone(account)) {
          yield* Effect.logWarning("push disabled: set NEXMDM_FCM_SERVICE_ACCOUNT_FILE to enable FCM wake-ups").pipe(
            Effect.annotateLogs({ module: "Push" })
          )
          return disabled
        }
        const { projectId, clientEmail, source } = account.value
        const agent = options.httpAgent ?? (yield* Effect.acquireRelease(
          Effect.sync(() => new https.Agent({ keepAlive: true })),
          (agent) => Effect.sync(() => agent.destroy())
        ))
        yield* Effect.logInfo("push enabled: FCM wake-ups through firebase-admin").pipe(
          Effect.annotateLogs({ module: "Push", projectId, clientEmail })
        )
        return yield* make({ projectId, credential: cert(source, agent), httpAgent: agent })
      })
    )

  /** `layerFromConfig()`: the engine's Push. */
  static readonly layer: Layer.Layer<Push, ConfigError.ConfigError, EngineConfig> = Push.layerFromConfig()

  /** Push with these credentials (and agent), whatever the config says. */
  static readonly layerWith = (options: PushOptions): Layer.Layer<Push> => Layer.scoped(Push, make(options))

  /** Push that is off: every `wake` answers `Disabled`. */
  static readonly layerDisabled: Layer.Layer<Push> = Layer.sync(Push, () => disabled)
}

/** firebase-admin's FCM host (hard-coded in the SDK). */
const fcmHost = "fcm.googleapis.com"

/** Time-to-live of a wake-up: a device that cannot be reached within a minute is woken again later, by the caller. */
export const wakeTtl = Duration.seconds(60)
/** FCM keeps one pending wake-up per device under this key. */
export const wakeCollapseKey = "nexmdm-wake"

const maxReasonLength = 256

/** The FCM message for a wake-up. */
export const wakeMessage = (input: WakeInput): TokenMessage => ({
  token: input.fcmToken,
  data: { type: "wake", commandId: input.commandId, reason: input.reason.slice(0, maxReasonLength) },
  android: { priority: "high", ttl: Duration.toMillis(wakeTtl), collapseKey: wakeCollapseKey }
})

/** The first characters of a token, enough to tell tokens apart in a log. */
export const tokenPrefix = (token: string) => (token.length <= 8 ? "…" : `${token.slice(0, 8)}…`)

/** Codes that condemn the token itself. (mismatched-credential does not: a wrong service account would condemn every token.) */
const tokenInvalidCodes = new Set([
  "messaging/registration-token-not-registered",
  "messaging/invalid-registration-token",
  "messaging/invalid-argument"
])

const rateLimitedCodes = new Set([
  "messaging/message-rate-exceeded",
  "messaging/device-message-rate-exceeded",
  "messaging/topics-message-rate-exceeded"
])

const errorCode = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "string" && code !== "" ? code : "unknown"
}

/** For the log: the SDK's messages are generic (no token, no credential), but "unknown-error" quotes the server's answer. */
const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error)).slice(0, 300)

const classify = (error: unknown, latencyMs: number, retryAfterMs: number | undefined): PushOutcome => {
  const code = errorCode(error)
  const wait = retryAfterMs === undefined ? {} : { retryAfterMs }
  if (tokenInvalidCodes.has(code)) return PushOutcome.TokenInvalid({ code, latencyMs })
  if (rateLimitedCodes.has(code)) return PushOutcome.RateLimited({ code, latencyMs, ...wait })
  return PushOutcome.Unavailable({ code, latencyMs, ...wait })
}

const metricOutcome = {
  Sent: "sent",
  TokenInvalid: "token_invalid",
  RateLimited: "rate_limited",
  Unavailable: "unavailable",
  Disabled: "disabled"
} as const satisfies Record<PushOutcome["_tag"], Metrics.PushSendOutcome>

const disabled = Push.of({
  enabled: false,
  wake: (input) =>
    Effect.sync(() => {
      Metrics.pushSend("disabled")
      return PushOutcome.Disabled()
    }).pipe(
      Effect.tap(Effect.logDebug("wake-up not sent: push disabled")),
      Effect.annotateLogs({ module: "Push", deviceId: input.deviceId, commandId: input.commandId })
    )
})

const make = (options: PushOptions) =>
  Effect.gen(function* () {
    yield* Effect.acquireRelease(Effect.sync(HttpExchanges.observe), (stop) => Effect.sync(stop))
    const app = yield* Effect.acquireRelease(
      Effect.sync(() =>
        initializeApp(
          {
            projectId: options.projectId,
            credential: options.credential,
            ...(options.httpAgent === undefined ? {} : { httpAgent: options.httpAgent })
          },
          `nexmdm-push-${randomUUID()}`
        )
      ),
      (app) => Effect.promise(() => deleteApp(app).catch(() => undefined))
    )
    const messaging = getMessaging(app)

    const send = (message: TokenMessage) =>
      Effect.suspend(() => {
        const { exchanges, result } = HttpExchanges.track(fcmHost, () => messaging.send(message))
        return Effect.tryPromise({ try: () => result, catch: (error) => error }).pipe(
          Effect.either,
          Effect.map((either) => ({ either, exchanges }))
        )
      })

    const wake = Effect.fn("Push.wake")(
      function* (input: WakeInput) {
        if (input.fcmToken.trim() === "") {
          // The SDK refuses it before any request ("messaging/invalid-payload"); say what is wrong.
          const outcome = PushOutcome.TokenInvalid({ code: "messaging/invalid-registration-token", latencyMs: 0 })
          Metrics.pushSend("token_invalid", 0)
          yield* Effect.logInfo("wake-up not sent: empty FCM token")
          return outcome
        }
        const [elapsed, { either, exchanges }] = yield* Effect.timed(send(wakeMessage(input)))
        const latencyMs = Math.round(Duration.toMillis(elapsed))
        const outcome = either._tag === "Right"
          ? PushOutcome.Sent({ messageId: either.right, latencyMs })
          : classify(either.left, latencyMs, exchanges.retryAfterMs)
        Metrics.pushSend(metricOutcome[outcome._tag], latencyMs / 1000)
        const annotations = {
          outcome: outcome._tag,
          latencyMs,
          attempts: exchanges.attempts,
          ...(either._tag === "Left" ? { code: errorCode(either.left), error: errorMessage(either.left) } : {}),
          ...(exchanges.retryAfterMs === undefined ? {} : { retryAfterMs: exchanges.retryAfterMs })
        }
        yield* PushOutcome.$match(outcome, {
          Sent: () => Effect.logDebug("wake-up sent"),
          TokenInvalid: () => Effect.logInfo("wake-up not sent: FCM token invalid"),
          RateLimited: () => Effect.logWarning("wake-up not sent: FCM rate limit"),
          Unavailable: () => Effect.logWarning("wake-up not sent: FCM unavailable"),
          Disabled: () => Effect.void
        }).pipe(Effect.annotateLogs(annotations))
        return outcome
      },
      (effect, input) =>
        Effect.annotateLogs(effect, {
          module: "Push",
          deviceId: input.deviceId,
          commandId: input.commandId,
          token: tokenPrefix(input.fcmToken)
        })
    )

    return Push.of({ enabled: true, wake })
  })

// ---------------------------------------------------------------------------------------------
// Service-account credentials

interface ServiceAccountJson {
  readonly project_id: string
  readonly client_email: string
  readonly private_key: string
}

interface ServiceAccount {
  readonly projectId: string
  readonly clientEmail: string
  /**
   * What `cert()` is given: the file's path when there is a file, because firebase-admin 13 uses
   * the credential's agent for the token exchange only then (firebase-admin-node#2960: with an
   * object the agent is dropped and the token request goes out directly).
   */
  readonly source: string | { readonly projectId: string; readonly clientEmail: string; readonly privateKey: string }
}

const invalid = (variable: string, message: string) => ConfigError.InvalidData([variable], message)

/**
 * Parses a service-account JSON. Error messages name the variable and the missing field, never
 * the content (JSON.parse's own message quotes the text, so it is not passed on).
 */
const parseServiceAccount = (
  variable: string,
  text: string,
  file: string | undefined
): Effect.Effect<ServiceAccount, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: () => invalid(variable, "is not valid JSON (expected a Firebase service-account key file)")
    })
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* Effect.fail(invalid(variable, "is not a JSON object (expected a Firebase service-account key file)"))
    }
    const record = json as Partial<Record<keyof ServiceAccountJson, unknown>>
    const missing = (["project_id", "client_email", "private_key"] as const).filter(
      (field) => typeof record[field] !== "string" || record[field] === ""
    )
    if (missing.length > 0) {
      return yield* Effect.fail(invalid(variable, `lacks ${missing.join(", ")} (expected a Firebase service-account key file)`))
    }
    const account = json as ServiceAccountJson
    const serviceAccount = { projectId: account.project_id, clientEmail: account.client_email, privateKey: account.private_key }
    // cert() checks the private key; its messages name the problem, not the key.
    yield* Effect.try({
      try: () => cert({ ...serviceAccount }),
      catch: (error) => invalid(variable, `is not a usable service account: ${errorMessage(error)}`)
    })
    return { projectId: account.project_id, clientEmail: account.client_email, source: file ?? serviceAccount }
  })

const readServiceAccount = (
  file: Option.Option<string>,
  json: Option.Option<Redacted.Redacted>
): Effect.Effect<Option.Option<ServiceAccount>, ConfigError.ConfigError> => {
  if (Option.isSome(file) && Option.isSome(json)) {
    return Effect.fail(
      invalid("NEXMDM_FCM_SERVICE_ACCOUNT_FILE", "and NEXMDM_FCM_SERVICE_ACCOUNT_JSON are both set: set one of them")
    )
  }
  if (Option.isSome(json)) {
    return Effect.asSome(parseServiceAccount("NEXMDM_FCM_SERVICE_ACCOUNT_JSON", Redacted.value(json.value), undefined))
  }
  if (Option.isSome(file)) {
    return Effect.try({
      try: () => readFileSync(file.value, "utf8"),
      catch: (error) =>
        invalid("NEXMDM_FCM_SERVICE_ACCOUNT_FILE", `cannot be read (${(error as { code?: string }).code ?? errorMessage(error)}): ${file.value}`)
    }).pipe(
      Effect.flatMap((text) => parseServiceAccount("NEXMDM_FCM_SERVICE_ACCOUNT_FILE", text, file.value)),
      Effect.asSome
    )
  }
  return Effect.succeedNone
}
