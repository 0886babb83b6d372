/**
 * FCM wake-ups through the real firebase-admin SDK against a local FCM HTTP v1 server
 * (support/FcmServer.ts): the message on the wire, each FCM answer mapped to a `PushOutcome`
 * (with the SDK's own retries counted at the server), the config path (disabled, service-account
 * file and JSON), metrics, and tokens kept out of the logs.
 *
 * The slow cases (503 and connection resets retried by the SDK for ~4 and ~7 s) run concurrently,
 * each against its own token.
 */
import { it } from "@effect/vitest"
import { ConfigError, Context, Effect, Either, Layer, Logger, LogLevel, Metric, Option, Redacted } from "effect"
import { generateKeyPairSync, randomUUID } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect } from "vitest"
import { EngineConfig, type EngineConfigShape } from "../src/EngineConfig.js"
import * as Metrics from "../src/Metrics.js"
import { Push, type PushOptions, PushOutcome, type WakeInput } from "../src/push/Push.js"
import { closedPort, FcmServer, hasOpenssl } from "./support/FcmServer.js"

if (!hasOpenssl) console.warn("Push.test.ts: FCM tests skipped: no openssl on PATH to make the test CA and fcm.googleapis.com certificate")

let fcm: FcmServer
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nexmdm-push-"))
  if (hasOpenssl) fcm = await FcmServer.start()
})

afterAll(async () => {
  await fcm?.close()
  rmSync(dir, { recursive: true, force: true })
})

const projectId = "nexmdm-test"
const testCredential = { getAccessToken: async () => ({ access_token: "test", expires_in: 3600 }) }

/** A token that looks like FCM's (long, opaque) and is unique to the test. */
const newToken = (label: string) => `${label}:APA91b${randomUUID().replaceAll("-", "")}${"x".repeat(100)}`

const wakeOf = (fcmToken: string, commandId = `cmd-${randomUUID()}`): WakeInput => ({
  deviceId: `dev-${randomUUID()}`,
  fcmToken,
  commandId,
  reason: "command"
})

/** Log lines (logfmt) go to `logs` when given; otherwise nothing is logged. */
const logging = (logs?: Array<string>) =>
  logs === undefined
    ? Logger.minimumLogLevel(LogLevel.None)
    : Layer.merge(
        Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (line) => void logs.push(line))),
        Logger.minimumLogLevel(LogLevel.Debug)
      )

const pushAt = (options: Partial<PushOptions> = {}, logs?: Array<string>) =>
  Push.layerWith({ projectId, credential: testCredential, httpAgent: fcm.agent(), ...options }).pipe(Layer.provide(logging(logs)))

const wake = (input: WakeInput) => Effect.flatMap(Push, (push) => push.wake(input))

describe.skipIf(!hasOpenssl).concurrent("wake-ups through firebase-admin", () => {
  it.live("a wake-up is one data-only, high-priority message with a 60 s TTL and collapse key; Sent carries FCM's message id", () =>
    Effect.gen(function* () {
      const token = newToken("sent")
      const outcome = yield* wake({ deviceId: "dev-1", fcmToken: token, commandId: "cmd-42", reason: "command" })
      const [request] = fcm.sendsTo(token)
      expect(fcm.sendsTo(token)).toHaveLength(1)
      expect(outcome).toEqual(PushOutcome.Sent({ messageId: request!.name!, latencyMs: expect.any(Number) as unknown as number }))
      expect(request!.name).toMatch(new RegExp(`^projects/${projectId}/messages/[0-9a-f-]{36}$`))
      expect(request).toMatchObject({ method: "POST", path: `/v1/projects/${projectId}/messages:send` })
      expect(request!.headers).toMatchObject({
        host: "fcm.googleapis.com",
        authorization: "Bearer test",
        "content-type": "application/json;charset=utf-8",
        "x-firebase-client": expect.stringMatching(/^fire-admin-node\/13\./)
      })
      // Exactly this: no notification block, nothing else the device could show.
      expect(request!.body).toEqual({
        message: {
          token,
          data: { type: "wake", commandId: "cmd-42", reason: "command" },
          android: { priority: "high", ttl: "60s", collapse_key: "nexmdm-wake" }
        }
      })
    }).pipe(Effect.provide(pushAt())))

  it.live("UNREGISTERED (404) is TokenInvalid after one request, and the token never appears whole in the log", () => {
    const logs: Array<string> = []
    return Effect.gen(function* () {
      const token = newToken("gone")
      fcm.fail(token, { kind: "unregistered" })
      const outcome = yield* wake(wakeOf(token))
      expect(outcome).toMatchObject({ _tag: "TokenInvalid", code: "messaging/registration-token-not-registered" })
      expect(fcm.sendsTo(token)).toHaveLength(1)
      const line = logs.find((line) => line.includes("FCM token invalid"))
      expect(line).toContain(`token=${token.slice(0, 8)}…`)
      expect(line).toContain("attempts=1")
      expect(logs.join("\n")).not.toContain(token.slice(0, 20))
    }).pipe(Effect.provide(pushAt({}, logs)))
  })

  it.live("INVALID_ARGUMENT on the token (400) is TokenInvalid", () =>
    Effect.gen(function* () {
      const token = newToken("malformed")
      fcm.fail(token, { kind: "invalidArgument" })
      expect(yield* wake(wakeOf(token))).toMatchObject({ _tag: "TokenInvalid", code: "messaging/invalid-argument" })
      expect(fcm.sendsTo(token)).toHaveLength(1)
    }).pipe(Effect.provide(pushAt())))

  it.live("QUOTA_EXCEEDED (429) is RateLimited at once, with the server's Retry-After", () =>
    Effect.gen(function* () {
      const token = newToken("quota")
      fcm.fail(token, { kind: "quotaExceeded", retryAfterS: 30 })
      const outcome = yield* wake(wakeOf(token))
      expect(outcome).toMatchObject({ _tag: "RateLimited", code: "messaging/message-rate-exceeded", retryAfterMs: 30_000 })
      expect(fcm.sendsTo(token)).toHaveLength(1)
    }).pipe(Effect.provide(pushAt())))

  it.live("UNAVAILABLE (503) is retried by the SDK (5 requests in all), then Unavailable", () =>
    Effect.gen(function* () {
      const token = newToken("down")
      fcm.fail(token, { kind: "unavailable", retryAfterS: 1 })
      const outcome = yield* wake(wakeOf(token))
      expect(outcome).toMatchObject({ _tag: "Unavailable", code: "messaging/server-unavailable", retryAfterMs: 1000 })
      expect(fcm.sendsTo(token).map((request) => request.answer)).toEqual(Array(5).fill("unavailable"))
      expect((outcome as { latencyMs: number }).latencyMs).toBeGreaterThanOrEqual(4000)
    }).pipe(Effect.provide(pushAt())))

  it.live("a 503 that clears is Sent on the SDK's third request", () =>
    Effect.gen(function* () {
      const token = newToken("flaky")
      fcm.fail(token, { kind: "unavailable", retryAfterS: 1 }, 2)
      const outcome = yield* wake(wakeOf(token))
      expect(outcome._tag).toBe("Sent")
      expect(fcm.sendsTo(token).map((request) => request.answer)).toEqual(["unavailable", "unavailable", "sent"])
    }).pipe(Effect.provide(pushAt())))

  it.live("a 503 asking for more than 60 s is not retried by the SDK: Unavailable with that Retry-After", () =>
    Effect.gen(function* () {
      const token = newToken("maintenance")
      fcm.fail(token, { kind: "unavailable", retryAfterS: 120 })
      const outcome = yield* wake(wakeOf(token))
      expect(outcome).toMatchObject({ _tag: "Unavailable", code: "messaging/server-unavailable", retryAfterMs: 120_000 })
      expect(fcm.sendsTo(token)).toHaveLength(1)
    }).pipe(Effect.provide(pushAt())))

  it.live("a connection closed under the request is retried by the SDK (5 requests), then Unavailable", () =>
    Effect.gen(function* () {
      const token = newToken("reset")
      fcm.fail(token, { kind: "reset" })
      const outcome = yield* wake(wakeOf(token))
      expect(outcome).toMatchObject({ _tag: "Unavailable", code: "app/network-error" })
      expect(outcome).not.toHaveProperty("retryAfterMs")
      expect(fcm.sendsTo(token).map((request) => request.answer)).toEqual(Array(5).fill("reset"))
    }).pipe(Effect.provide(pushAt())))

  it.live("FCM unreachable (connection refused) is Unavailable at once", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(closedPort)
      const outcome = yield* Effect.flatMap(Push, (push) => push.wake(wakeOf(newToken("refused")))).pipe(
        Effect.provide(pushAt({ httpAgent: fcm.agent(port) }))
      )
      expect(outcome).toMatchObject({ _tag: "Unavailable", code: "app/network-error" })
    }))

  it.live("a rejected access token (401) is Unavailable, never TokenInvalid: bad credentials must not condemn the fleet's tokens", () =>
    Effect.gen(function* () {
      const token = newToken("unauthenticated")
      const outcome = yield* wake(wakeOf(token))
      expect(outcome).toMatchObject({ _tag: "Unavailable", code: "messaging/third-party-auth-error" })
      expect(fcm.sendsTo(token)).toMatchObject([{ answer: "unauthenticated", headers: { authorization: "Bearer expired" } }])
    }).pipe(
      Effect.provide(pushAt({ credential: { getAccessToken: async () => ({ access_token: "expired", expires_in: 3600 }) } }))
    ))

  it.live("an empty token is TokenInvalid without a request", () =>
    Effect.gen(function* () {
      const before = fcm.requests.length
      expect(yield* wake(wakeOf(""))).toMatchObject({ _tag: "TokenInvalid", code: "messaging/invalid-registration-token" })
      expect(fcm.requests.length).toBe(before)
    }).pipe(Effect.provide(pushAt())))

  it.live("a long reason is cut to 256 characters, so the message never grows into an INVALID_ARGUMENT", () =>
    Effect.gen(function* () {
      const token = newToken("long")
      expect((yield* wake({ ...wakeOf(token), reason: "r".repeat(5000) }))._tag).toBe("Sent")
      expect(fcm.sendsTo(token)[0]!.body).toMatchObject({ message: { data: { reason: "r".repeat(256) } } })
    }).pipe(Effect.provide(pushAt())))

  it.live("wake-ups in parallel through one service each get their own message and outcome", () =>
    Effect.gen(function* () {
      const tokens = Array.from({ length: 20 }, (_, i) => newToken(`many${i}`))
      fcm.fail(tokens[3]!, { kind: "unregistered" })
      const outcomes = yield* Effect.forEach(tokens, (token) => wake(wakeOf(token, `cmd-${token.slice(0, 6)}`)), { concurrency: "unbounded" })
      expect(outcomes.map((outcome) => outcome._tag)).toEqual(tokens.map((_, i) => (i === 3 ? "TokenInvalid" : "Sent")))
      for (const [i, token] of tokens.entries()) {
        const sends = fcm.sendsTo(token)
        expect(sends).toHaveLength(1)
        expect(sends[0]!.body).toMatchObject({ message: { data: { commandId: `cmd-${token.slice(0, 6)}` } } })
        if (i !== 3) expect(outcomes[i]).toMatchObject({ messageId: sends[0]!.name })
      }
    }).pipe(Effect.provide(pushAt())))
})

describe.skipIf(!hasOpenssl)("push metrics", () => {
  const sends = (outcome: Metrics.PushSendOutcome) =>
    Metric.value(Metrics.pushSendsTotal.pipe(Metric.tagged("outcome", outcome))).pipe(Effect.map((state) => state.count))
  const timed = (outcome: Metrics.PushSendOutcome) =>
    Metric.value(Metrics.pushSendSeconds.pipe(Metric.tagged("outcome", outcome))).pipe(Effect.map((state) => state.count))

  it.live("counts wake-ups by outcome and times each send", () =>
    Effect.gen(function* () {
      const before = yield* Effect.all([sends("sent"), sends("token_invalid"), timed("sent"), timed("token_invalid")])
      const gone = newToken("metrics-gone")
      fcm.fail(gone, { kind: "unregistered" })
      yield* wake(wakeOf(newToken("metrics-a")))
      yield* wake(wakeOf(newToken("metrics-b")))
      yield* wake(wakeOf(gone))
      const after = yield* Effect.all([sends("sent"), sends("token_invalid"), timed("sent"), timed("token_invalid")])
      expect(after.map((value, i) => value - before[i]!)).toEqual([2, 1, 2, 1])
    }).pipe(Effect.provide(pushAt())))
})

// ---------------------------------------------------------------------------------------------
// From the engine's config

const fromConfig = (overrides: Partial<EngineConfigShape>, logs?: Array<string>) =>
  Push.layer.pipe(
    Layer.provide(EngineConfig.layerWith({ fcmServiceAccountFile: Option.none(), fcmServiceAccountJson: Option.none(), ...overrides })),
    Layer.provide(logging(logs))
  )

/** A service-account key file like the one Firebase's console hands out (fresh RSA key). */
const serviceAccount = () => {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  return {
    type: "service_account",
    project_id: projectId,
    private_key_id: randomUUID().replaceAll("-", ""),
    private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    client_email: `nexmdm-push@${projectId}.iam.gserviceaccount.com`,
    client_id: "1234567890",
    token_uri: "https://oauth2.googleapis.com/token"
  }
}

/** Builds Push from the config; the Push (enabled or not) or the start-up error as text. */
const start = (overrides: Partial<EngineConfigShape>, logs?: Array<string>) =>
  Effect.gen(function* () {
    const built = yield* Effect.either(Layer.build(fromConfig(overrides, logs)))
    return Either.map(built, (context) => Context.get(context, Push))
  }).pipe(Effect.scoped)

describe("push from the engine's config", () => {
  it.live("without credentials push is disabled: one log line at start, and wake answers Disabled without a request", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const before = fcm?.requests.length ?? 0
      const disabledBefore = (yield* Metric.value(Metrics.pushSendsTotal.pipe(Metric.tagged("outcome", "disabled")))).count
      const outcomes = yield* Effect.gen(function* () {
        const push = yield* Push
        expect(push.enabled).toBe(false)
        return yield* Effect.all([push.wake(wakeOf(newToken("off"))), push.wake(wakeOf(newToken("off")))])
      }).pipe(Effect.provide(fromConfig({}, logs)))
      expect(outcomes).toEqual([PushOutcome.Disabled(), PushOutcome.Disabled()])
      const loud = logs.filter((line) => !line.includes("level=DEBUG"))
      expect(loud).toHaveLength(1)
      expect(loud[0]).toContain('message="push disabled: set NEXMDM_FCM_SERVICE_ACCOUNT_FILE to enable FCM wake-ups"')
      expect(fcm?.requests.length ?? 0).toBe(before)
      expect((yield* Metric.value(Metrics.pushSendsTotal.pipe(Metric.tagged("outcome", "disabled")))).count - disabledBefore).toBe(2)
    }))

  it.live("a service-account file enables push; the log names the project and account, never the key", () =>
    Effect.gen(function* () {
      const account = serviceAccount()
      const file = join(dir, "service-account.json")
      writeFileSync(file, JSON.stringify(account))
      const logs: Array<string> = []
      const push = Either.getOrThrow(yield* start({ fcmServiceAccountFile: Option.some(file) }, logs))
      expect(push.enabled).toBe(true)
      expect(logs.join("\n")).toContain(`projectId=${projectId}`)
      expect(logs.join("\n")).toContain(`clientEmail=${account.client_email}`)
      const keyBody = account.private_key.split("\n")[1]!
      expect(logs.join("\n")).not.toContain(keyBody)
    }))

  it.live("the JSON itself (NEXMDM_FCM_SERVICE_ACCOUNT_JSON) enables push too", () =>
    Effect.gen(function* () {
      const push = Either.getOrThrow(yield* start({ fcmServiceAccountJson: Option.some(Redacted.make(JSON.stringify(serviceAccount()))) }))
      expect(push.enabled).toBe(true)
    }))

  it.live.each([
    ["an unreadable file", { fcmServiceAccountFile: Option.some("/nonexistent/sa.json") }, "NEXMDM_FCM_SERVICE_ACCOUNT_FILE", "ENOENT"],
    ["JSON that does not parse", { fcmServiceAccountJson: Option.some(Redacted.make('{"private_key": "-----BEGIN s3cret-key-material')) }, "NEXMDM_FCM_SERVICE_ACCOUNT_JSON", "not valid JSON"],
    ["a key file without its key", { fcmServiceAccountJson: Option.some(Redacted.make('{"project_id":"p","client_email":"e@p","private_key_id":"s3cret-key-material"}')) }, "NEXMDM_FCM_SERVICE_ACCOUNT_JSON", "lacks private_key"],
    ["a private key that is not one", { fcmServiceAccountJson: Option.some(Redacted.make('{"project_id":"p","client_email":"e@p","private_key":"s3cret-key-material"}')) }, "NEXMDM_FCM_SERVICE_ACCOUNT_JSON", "Failed to parse private key"],
    ["both variables", { fcmServiceAccountFile: Option.some("/x.json"), fcmServiceAccountJson: Option.some(Redacted.make("{}")) }, "NEXMDM_FCM_SERVICE_ACCOUNT_FILE", "both set"]
  ] as const)("%s fails start-up with a ConfigError naming the variable, without its content", ([, overrides, variable, reason]) =>
    Effect.gen(function* () {
      const result = yield* start(overrides as Partial<EngineConfigShape>)
      expect(Either.isLeft(result) && ConfigError.isConfigError(result.left)).toBe(true)
      const text = String(Either.flip(result).pipe(Either.getOrThrow))
      expect(text).toContain(variable)
      expect(text).toContain(reason)
      expect(text).not.toContain("s3cret")
    }))
})

// ---------------------------------------------------------------------------------------------
// The whole production path: key file -> OAuth token exchange -> send

describe.skipIf(!hasOpenssl)("push from a service-account file", () => {
  it.live("signs a JWT with the file's key, exchanges it for an access token once, and sends with that token", () =>
    Effect.gen(function* () {
      const account = serviceAccount()
      const file = join(dir, "oauth-service-account.json")
      writeFileSync(file, JSON.stringify(account))
      fcm.trustServiceAccount(account.client_email, account.private_key)
      const tokens = [newToken("oauth1"), newToken("oauth2")]
      const exchangesBefore = fcm.requests.filter((request) => request.path === "/token").length
      const logs: Array<string> = []
      const outcomes = yield* Effect.forEach(tokens, (token) => wake(wakeOf(token))).pipe(
        Effect.provide(
          Push.layerFromConfig({ httpAgent: fcm.agent() }).pipe(
            Layer.provide(EngineConfig.layerWith({ fcmServiceAccountFile: Option.some(file), fcmServiceAccountJson: Option.none() })),
            Layer.provide(logging(logs))
          )
        )
      )
      expect(outcomes.map((outcome) => outcome._tag)).toEqual(["Sent", "Sent"])
      const exchanges = fcm.requests.filter((request) => request.path === "/token").slice(exchangesBefore)
      expect(exchanges.map((request) => [request.headers.host, request.answer])).toEqual([["oauth2.googleapis.com", "token-issued"]])
      const bearers = tokens.map((token) => fcm.sendsTo(token)[0]!.headers.authorization)
      expect(bearers[0]).toMatch(/^Bearer oauth-[0-9a-f-]{36}$/)
      expect(bearers[1]).toBe(bearers[0])
      expect(fcm.sendsTo(tokens[0]!)[0]!.path).toBe(`/v1/projects/${projectId}/messages:send`)
      // The token exchange is not an FCM attempt.
      expect(logs.filter((line) => line.includes("wake-up sent")).map((line) => /attempts=(\d+)/.exec(line)?.[1])).toEqual(["1", "1"])
    }))
})
