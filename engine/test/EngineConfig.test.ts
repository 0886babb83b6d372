import { ConfigError, ConfigProvider, Duration, Effect, Either, Option, Redacted } from "effect"
import { inspect } from "node:util"
import { describe, expect, it } from "vitest"
import { EngineConfig } from "../src/EngineConfig.js"

/** Resolves the engine's config from exactly these variables (the process environment is not read). */
const resolve = (variables: Record<string, string>) =>
  Effect.runSync(
    EngineConfig.pipe(
      Effect.provide(EngineConfig.layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(variables)))),
      Effect.either
    )
  )

const seconds = (duration: Duration.Duration) => Duration.toMillis(duration) / 1000

describe("engine config", () => {
  it("defaults to 30 s heartbeats, overdue after 75 s and offline after 150 s", () => {
    const config = Either.getOrThrow(resolve({}))
    expect([config.heartbeatInterval, config.overdueAfter, config.offlineAfter].map(seconds)).toEqual([30, 75, 150])
    expect(Option.isNone(config.databaseUrl)).toBe(true)
  })

  it("derives overdue and offline from the heartbeat interval unless they are set", () => {
    const derived = Either.getOrThrow(resolve({ NEXMDM_HEARTBEAT_INTERVAL_S: "10" }))
    expect([derived.overdueAfter, derived.offlineAfter].map(seconds)).toEqual([25, 50])
    const explicit = Either.getOrThrow(resolve({ NEXMDM_HEARTBEAT_INTERVAL_S: "10", NEXMDM_OVERDUE_AFTER_S: "12" }))
    expect([explicit.overdueAfter, explicit.offlineAfter].map(seconds)).toEqual([12, 50])
  })

  it("points password-reset links and CORS at the admin plane, which serves the console, unless told otherwise", () => {
    expect(Either.getOrThrow(resolve({})).consoleOrigin).toBe("http://localhost:8081")
    expect(Either.getOrThrow(resolve({ NEXMDM_ADMIN_PORT: "9001" })).consoleOrigin).toBe("http://localhost:9001")
    expect(Either.getOrThrow(resolve({ NEXMDM_CONSOLE_ORIGIN: "https://mdm.example.com" })).consoleOrigin).toBe("https://mdm.example.com")
  })

  it.each([
    ["NEXMDM_HEARTBEAT_INTERVAL_S", "abc"],
    ["NEXMDM_DEVICE_PORT", "70000"],
    ["NEXMDM_TICKET_TTL_H", "0"],
    ["NEXMDM_OFFLINE_AFTER_S", "0"]
  ])("fails with a ConfigError naming %s when it is %s", (name, value) => {
    const result = resolve({ [name]: value })
    expect(Either.isLeft(result) && ConfigError.isConfigError(result.left)).toBe(true)
    expect(String(Either.flip(result).pipe(Either.getOrThrow))).toContain(name)
  })

  it("keeps DATABASE_URL redacted: its value appears in no rendering of the config", () => {
    const url = "postgres://mdm:s3cret-password@db.internal:5432/mdm"
    const config = Either.getOrThrow(resolve({ DATABASE_URL: url }))
    expect(Option.map(config.databaseUrl, Redacted.value)).toEqual(Option.some(url))
    for (const rendering of [String(config), JSON.stringify(config), inspect(config, { depth: 10 }), String(config.databaseUrl)]) {
      expect(rendering).not.toContain("s3cret")
    }
  })
})
