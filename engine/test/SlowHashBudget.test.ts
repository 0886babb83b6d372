/**
 * The argon2 admission control on its own, on the TestClock: a stand-in check that takes a given
 * time of the test clock plays argon2, and counts how often it ran (a refusal must not run it).
 * The planes' answers (429 + Retry-After, real argon2, real PostgreSQL) are in SlowHashAdmission.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, HashMap, Layer, Logger, Metric, Option, TestClock } from "effect"
import { EngineConfig, type EngineConfigShape } from "../src/EngineConfig.js"
import {
  type Lane,
  SlowHashBudget,
  SlowHashRefused,
  layer as slowHashBudgetLayer,
  slowHashRefusedTotal,
  type Source
} from "../src/SlowHashBudget.js"

/** Generous everywhere unless a test says otherwise: each test tightens the limit it is about. */
const budgetLayer = (overrides: Partial<EngineConfigShape>) =>
  slowHashBudgetLayer.pipe(
    Layer.provide(
      EngineConfig.layerWith({
        slowHashAdminMsPerSecond: 1000,
        slowHashDeviceMsPerSecond: 1000,
        slowHashQueue: 100,
        slowHashMaxWait: Duration.seconds(10),
        slowHashFailuresPerIpPerMinute: 1000,
        slowHashFailuresPerTargetPerMinute: 1000,
        ...overrides
      })
    )
  )

/** Plays argon2: takes `ms` of the test clock, answers `ok`, and counts its runs. */
const fakeCheck = (ms: number, ok: boolean) => {
  const runs = { count: 0 }
  const check = Effect.gen(function* () {
    runs.count++
    yield* TestClock.adjust(Duration.millis(ms))
    return ok
  })
  return { runs, check }
}

const ip = (key: string): Source => ({ kind: "ip", key })
const account = (key: string): Source => ({ kind: "account", key })

/** One check the way the services make it: admitted per source, then verified in the lane. */
const attempt = (lane: Lane, sources: ReadonlyArray<Source>, check: Effect.Effect<boolean>) =>
  Effect.flatMap(SlowHashBudget, (budget) =>
    Effect.flatMap(budget.admit(lane, sources), (admission) => admission.verify(check, (ok) => (ok ? "accepted" : "wrong_secret")))
  )

const refusal = <A, E, R>(effect: Effect.Effect<A, E | SlowHashRefused, R>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error).toBeInstanceOf(SlowHashRefused)
    return error as SlowHashRefused
  })

describe("per-source limits", () => {
  it.effect("a source's failed checks refuse it at once, without hashing; other addresses, planes and later attempts go on", () =>
    Effect.gen(function* () {
      const wrong = fakeCheck(10, false)
      for (let i = 0; i < 3; i++) expect(yield* attempt("admin", [ip("198.51.100.1"), account(`a${i}@example.com`)], wrong.check)).toBe(false)
      const refused = yield* refusal(attempt("admin", [ip("198.51.100.1"), account("fresh@example.com")], wrong.check))
      expect(refused).toMatchObject({ lane: "admin", reason: "ip" })
      // 3 a minute: the next failure is allowed ~20 s after the bucket ran dry.
      expect(refused.retryAfterMs).toBeGreaterThan(19_000)
      expect(refused.retryAfterMs).toBeLessThanOrEqual(20_000)
      expect(wrong.runs.count).toBe(3)
      yield* attempt("admin", [ip("198.51.100.2"), account("a0@example.com")], wrong.check)
      yield* attempt("device", [ip("198.51.100.1"), { kind: "device", key: "dev_1" }], wrong.check)
      expect(wrong.runs.count).toBe(5)
      yield* TestClock.adjust(Duration.seconds(20))
      yield* attempt("admin", [ip("198.51.100.1"), account("fresh@example.com")], wrong.check)
      expect(wrong.runs.count).toBe(6)
    }).pipe(Effect.provide(budgetLayer({ slowHashFailuresPerIpPerMinute: 3 })))
  )

  it.effect("only failures count: a right secret from the same address never runs the address dry", () =>
    Effect.gen(function* () {
      const right = fakeCheck(10, true)
      for (let i = 0; i < 20; i++) expect(yield* attempt("admin", [ip("198.51.100.3"), account("owner@example.com")], right.check)).toBe(true)
      expect(right.runs.count).toBe(20)
    }).pipe(Effect.provide(budgetLayer({ slowHashFailuresPerIpPerMinute: 3, slowHashFailuresPerTargetPerMinute: 3 })))
  )

  it.effect("an unknown id counts against its target like a wrong secret", () =>
    Effect.gen(function* () {
      const budget = yield* SlowHashBudget
      const target: Source = { kind: "token", key: "et_0000000000000000" }
      for (let i = 0; i < 4; i++) yield* Effect.flatMap(budget.admit("device", [target]), (admission) => admission.reject)
      expect(yield* refusal(budget.admit("device", [target]))).toMatchObject({ lane: "device", reason: "token" })
      yield* budget.admit("device", [{ kind: "token", key: "et_1111111111111111" }])
    }).pipe(Effect.provide(budgetLayer({ slowHashFailuresPerTargetPerMinute: 4 })))
  )
})

// 150 ms of argon2 per second and checks that take 150 ms: one failed check a second, no line.
const strict = { slowHashAdminMsPerSecond: 150, slowHashQueue: 0, slowHashMaxWait: Duration.zero }

describe("the lane's budget", () => {

  it.effect("paces failed checks: beyond one a second the next is refused at once, and admitted again a second later", () =>
    Effect.gen(function* () {
      const wrong = fakeCheck(150, false)
      expect(yield* attempt("admin", [ip("203.0.113.1")], wrong.check)).toBe(false)
      // The address failed: it needs a positive budget, and the failure spent it.
      const refused = yield* refusal(attempt("admin", [ip("203.0.113.1"), account("next@example.com")], wrong.check))
      expect(refused).toMatchObject({ lane: "admin", reason: "budget", retryAfterMs: 1000 })
      expect(wrong.runs.count).toBe(1)
      yield* TestClock.adjust(Duration.seconds(1))
      expect(yield* attempt("admin", [ip("203.0.113.1"), account("next@example.com")], wrong.check)).toBe(false)
      expect(wrong.runs.count).toBe(2)

      // A steady flood: an attempt every 50 ms (plus the checks' own time), from ever new addresses.
      const before = wrong.runs.count
      const startedAt = yield* TestClock.currentTimeMillis
      for (let i = 0; i < 200; i++) {
        yield* Effect.either(attempt("admin", [ip(`203.0.113.${i % 250}`), account(`x${i}@example.com`)], wrong.check))
        yield* TestClock.adjust(Duration.millis(50))
      }
      const seconds = ((yield* TestClock.currentTimeMillis) - startedAt) / 1000
      const ran = wrong.runs.count - before
      // argon2 time of failures <= 150 ms per second, plus the burst and the overdraft fresh addresses get.
      expect(ran * 150).toBeLessThanOrEqual(150 * seconds + 300)
      expect(ran).toBeGreaterThanOrEqual(Math.floor(seconds) - 2)
    }).pipe(Effect.provide(budgetLayer(strict)))
  )

  it.effect("a fresh source may overdraw the budget by one second's worth; a source that failed may not", () =>
    Effect.gen(function* () {
      const wrong = fakeCheck(150, false)
      yield* attempt("admin", [ip("203.0.113.7")], wrong.check)
      yield* refusal(attempt("admin", [ip("203.0.113.7")], wrong.check))
      // Budget 0: fresh addresses still get in until it is 150 ms below (it refills while they run).
      expect(yield* attempt("admin", [ip("203.0.113.8")], wrong.check)).toBe(false)
      expect(yield* attempt("admin", [ip("203.0.113.9")], wrong.check)).toBe(false)
      expect(yield* refusal(attempt("admin", [ip("203.0.113.10")], wrong.check))).toMatchObject({ reason: "budget" })
      expect(wrong.runs.count).toBe(3)
    }).pipe(Effect.provide(budgetLayer(strict)))
  )

  it.effect("a bounded line: a check waits its turn; one more than the line holds is refused at once", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const slow = Effect.gen(function* () {
        yield* Deferred.succeed(started, undefined)
        yield* Deferred.await(release)
        yield* TestClock.adjust(Duration.millis(150))
        return false
      })
      const wrong = fakeCheck(150, false)
      const first = yield* Effect.fork(attempt("admin", [ip("192.0.2.1")], slow))
      yield* Deferred.await(started)
      const second = yield* Effect.fork(attempt("admin", [ip("192.0.2.2")], wrong.check))
      yield* Effect.yieldNow()
      // The line holds one: the third is refused without waiting.
      expect(yield* refusal(attempt("admin", [ip("192.0.2.3")], wrong.check))).toMatchObject({ reason: "budget" })
      yield* Deferred.succeed(release, undefined)
      expect(yield* Fiber.join(first)).toBe(false)
      expect(yield* Fiber.join(second)).toBe(false)
      expect(wrong.runs.count).toBe(1)
    }).pipe(Effect.provide(budgetLayer({ ...strict, slowHashQueue: 1, slowHashMaxWait: Duration.seconds(5) })))
  )

  it.effect("a check whose sources have no recent failure goes ahead of one whose sources have", () =>
    Effect.gen(function* () {
      const order: Array<string> = []
      const recording = (name: string) =>
        Effect.gen(function* () {
          order.push(name)
          yield* TestClock.adjust(Duration.millis(150))
          return false
        })
      // 203.0.113.66 failed once: it is suspect for a while.
      yield* attempt("admin", [ip("203.0.113.66")], fakeCheck(150, false).check)
      yield* TestClock.adjust(Duration.seconds(1))
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        attempt("admin", [ip("203.0.113.1")], Effect.zipRight(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(release)), recording("holder")))
      )
      yield* Deferred.await(started)
      const suspect = yield* Effect.fork(attempt("admin", [ip("203.0.113.66"), account("s@example.com")], recording("suspect")))
      yield* Effect.yieldNow()
      const clean = yield* Effect.fork(attempt("admin", [ip("203.0.113.2"), account("c@example.com")], recording("clean")))
      const budget = yield* SlowHashBudget
      while (budget.queued("admin") < 3) yield* Effect.yieldNow()
      yield* Deferred.succeed(release, undefined)
      for (let i = 0; i < 100 && order.length < 3; i++) {
        yield* Effect.yieldNow()
        yield* TestClock.adjust(Duration.millis(100))
      }
      yield* Fiber.join(Fiber.zip(holder, Fiber.zip(suspect, clean)))
      expect(order).toEqual(["holder", "clean", "suspect"])
    }).pipe(Effect.provide(budgetLayer({ ...strict, slowHashQueue: 5, slowHashMaxWait: Duration.seconds(10), slowHashFailuresPerIpPerMinute: 5 })))
  )

  it.effect("successes cost no budget: a fleet's checks run back to back, and failures still find the budget whole", () =>
    Effect.gen(function* () {
      const right = fakeCheck(150, true)
      for (let i = 0; i < 10; i++) expect(yield* attempt("device", [{ kind: "token", key: "et_fleet" }], right.check)).toBe(true)
      expect(right.runs.count).toBe(10)
      const wrong = fakeCheck(150, false)
      expect(yield* attempt("device", [{ kind: "token", key: "et_other" }], wrong.check)).toBe(false)
      expect(yield* refusal(attempt("device", [{ kind: "token", key: "et_other" }], wrong.check))).toMatchObject({ lane: "device", reason: "budget" })
    }).pipe(Effect.provide(budgetLayer({ slowHashDeviceMsPerSecond: 150, slowHashQueue: 0, slowHashMaxWait: Duration.zero })))
  )

  it.effect("lanes are separate: the admin lane spent does not refuse a device check", () =>
    Effect.gen(function* () {
      const wrong = fakeCheck(150, false)
      yield* attempt("admin", [ip("192.0.2.10")], wrong.check)
      yield* refusal(attempt("admin", [ip("192.0.2.10")], wrong.check))
      expect(yield* attempt("device", [ip("192.0.2.10")], wrong.check)).toBe(false)
    }).pipe(Effect.provide(budgetLayer({ ...strict, slowHashDeviceMsPerSecond: 150 })))
  )

  it.effect("trusted work (after a success) is never refused and costs no budget", () =>
    Effect.gen(function* () {
      const budget = yield* SlowHashBudget
      const wrong = fakeCheck(150, false)
      yield* attempt("admin", [ip("192.0.2.20")], wrong.check)
      yield* refusal(attempt("admin", [ip("192.0.2.20")], wrong.check))
      const hashed = fakeCheck(150, true)
      for (let i = 0; i < 3; i++) expect(yield* budget.trusted("admin", hashed.check)).toBe(true)
      expect(hashed.runs.count).toBe(3)
      // The lane refilled meanwhile (450 ms of clock), and the trusted work took none of it.
      yield* TestClock.adjust(Duration.millis(600))
      expect(yield* attempt("admin", [ip("192.0.2.20")], wrong.check)).toBe(false)
    }).pipe(Effect.provide(budgetLayer(strict)))
  )
})

describe("visibility", () => {
  it.effect("refusals are counted by lane and reason, and logged at most once a minute, without addresses", () => {
    const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
    const capture = Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ annotations, message }) => {
        lines.push({
          message: Array.isArray(message) ? message.join(" ") : String(message),
          annotations: Object.fromEntries(HashMap.toEntries(annotations))
        })
      })
    )
    const refusedBudget = slowHashRefusedTotal.pipe(Metric.tagged("lane", "admin"), Metric.tagged("reason", "budget"))
    return Effect.gen(function* () {
      const before = (yield* Metric.value(refusedBudget)).count
      const wrong = fakeCheck(150, false)
      yield* attempt("admin", [ip("192.0.2.30")], wrong.check)
      for (let i = 0; i < 5; i++) yield* refusal(attempt("admin", [ip("192.0.2.30")], wrong.check))
      expect((yield* Metric.value(refusedBudget)).count - before).toBe(5)
      expect(lines).toHaveLength(1)
      yield* TestClock.adjust(Duration.seconds(60))
      yield* attempt("admin", [ip("192.0.2.30")], wrong.check)
      yield* refusal(attempt("admin", [ip("192.0.2.30")], wrong.check))
      expect(lines).toHaveLength(2)
      expect(lines[1]!.annotations).toMatchObject({ module: "SlowHashBudget", lane: "admin", refused: { budget: 5 } })
      expect(JSON.stringify(lines)).not.toContain("192.0.2.")
    }).pipe(Effect.provide(budgetLayer(strict)), Effect.provide(capture))
  })
})
