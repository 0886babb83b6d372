/**
 * argon2 admission control as the planes answer it, with real argon2 and real PostgreSQL: the admin
 * plane's logins and password changes (429 RATE_LIMITED + Retry-After, answered without hashing),
 * and enrollment progressing while device-secret checks are being hammered. The service's own
 * timing rules are tested on the TestClock in SlowHashBudget.test.ts.
 */
import { EnrollRequest, TicketRequest } from "@nexmdm/protocol"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Metric } from "effect"
import { randomInt } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DevicePlane } from "../src/DevicePlane.js"
import { Enrollment } from "../src/Enrollment.js"
import type { EngineConfigShape } from "../src/EngineConfig.js"
import { type Lane, SlowHashRefused, slowHashRefusedTotal, slowHashSecondsTotal } from "../src/SlowHashBudget.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { ApiClient, createUser, PASSWORD, signedIn, startAdmin, type TestAdmin } from "./support/TestAdmin.js"
import { openDatabase, postJson } from "./support/TestEngine.js"

/** The production cost of an admin password (~150 ms here): a refusal must be visibly cheaper. */
const productionPasswordCost = { memoryCost: 65536, timeCost: 3, parallelism: 1 }

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin

// The admin lane is not the subject here except where a test starts its own engine; the device
// lane is tight: 50 ms of argon2 a second, device secrets at 8 MiB (~5 ms a check here).
const overrides: Partial<EngineConfigShape> = {
  argon2Password: productionPasswordCost,
  argon2Device: { memoryCost: 8192, timeCost: 1, parallelism: 1 },
  slowHashAdminMsPerSecond: 1000,
  slowHashDeviceMsPerSecond: 50
}

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  admin = await startAdmin(database, overrides)
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
})

const secondsOf = (lane: Lane, outcome: string) =>
  admin.run(Effect.map(Metric.value(slowHashSecondsTotal.pipe(Metric.tagged("lane", lane), Metric.tagged("outcome", outcome))), (state) => state.count))

const refusedOf = (lane: Lane, reason: string) =>
  admin.run(Effect.map(Metric.value(slowHashRefusedTotal.pipe(Metric.tagged("lane", lane), Metric.tagged("reason", reason))), (state) => state.count))

const loginFailures = (userId: string) =>
  admin.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ n: number }>`select count(*)::int as n from audit_log where action = 'auth.login' and outcome = 'failure' and target_id = ${userId}`
    )
  )

const expectRateLimited = (response: Awaited<ReturnType<ApiClient["post"]>>) => {
  expect(response.status).toBe(429)
  expect(response.body).toMatchObject({ _tag: "TooManyRequests", code: "RATE_LIMITED" })
  const retryAfter = Number(response.headers.get("retry-after"))
  expect(retryAfter).toBeGreaterThanOrEqual(1)
  expect(response.body.retryAfterSeconds).toBe(retryAfter)
  return retryAfter
}

describe("admin plane", () => {
  it("five failed logins from one address, then 429 with Retry-After, answered without argon2; the owner still signs in from elsewhere", async () => {
    const user = await createUser(admin, "owner")
    const attacker = ApiClient.fresh(admin)
    const started = performance.now()
    for (let attempt = 0; attempt < 5; attempt++) {
      const response = await attacker.post("/api/v1/auth/login", { email: user.email, password: `guess ${attempt}` })
      expect([response.status, response.body.code]).toEqual([401, "INVALID_CREDENTIALS"])
    }
    const perCheckMs = (performance.now() - started) / 5

    const hashedBefore = await secondsOf("admin", "wrong_secret")
    const refusedBefore = await refusedOf("admin", "ip")
    const at = performance.now()
    const refused = await attacker.post("/api/v1/auth/login", { email: user.email, password: "guess 5" })
    const tookMs = performance.now() - at
    // 5 failures a minute: the next one is ~12 s away.
    expect(expectRateLimited(refused)).toBeLessThanOrEqual(12)
    expect(refused.body.message).toMatch(/too many failed attempts/)
    expect(await secondsOf("admin", "wrong_secret")).toBe(hashedBefore)
    expect(await refusedOf("admin", "ip")).toBe(refusedBefore + 1)
    expect(tookMs).toBeLessThan(perCheckMs / 2)
    // Refused before the password is looked at, even the right one; not audited (it cost nothing).
    expectRateLimited(await attacker.post("/api/v1/auth/login", { email: user.email, password: PASSWORD }))
    expect(await loginFailures(user.id)).toEqual([{ n: 5 }])

    // One address cannot throttle the account: its own limit (5) is under the account's (10).
    await ApiClient.fresh(admin).login(user.email)
  })

  it("failed logins for one account from many addresses throttle that account for everyone, the right password too; other accounts are not", async () => {
    const victim = await createUser(admin, "owner")
    const other = await createUser(admin, "viewer")
    for (let attempt = 0; attempt < 10; attempt++) {
      expect((await ApiClient.fresh(admin).post("/api/v1/auth/login", { email: victim.email, password: `spray ${attempt}` })).status).toBe(401)
    }
    const owner = await ApiClient.fresh(admin).post("/api/v1/auth/login", { email: victim.email, password: PASSWORD })
    expect(expectRateLimited(owner)).toBeLessThanOrEqual(6)
    // An unknown email is limited the same way, so a 429 does not tell whether an account exists.
    const ghost = `ghost-${randomInt(1_000_000)}@example.com`
    for (let attempt = 0; attempt < 10; attempt++) await ApiClient.fresh(admin).post("/api/v1/auth/login", { email: ghost, password: "x" })
    expectRateLimited(await ApiClient.fresh(admin).post("/api/v1/auth/login", { email: ghost, password: "x" }))
    await ApiClient.fresh(admin).login(other.email)
  })

  it("a password change checks the current password under the same limits", async () => {
    const { client } = await signedIn(admin, "viewer")
    for (let attempt = 0; attempt < 5; attempt++) {
      const response = await client.post("/api/v1/me/password", { currentPassword: `nope ${attempt}`, newPassword: "a brand new password" })
      expect([response.status, response.body.code]).toEqual([403, "WRONG_PASSWORD"])
    }
    expectRateLimited(await client.post("/api/v1/me/password", { currentPassword: PASSWORD, newPassword: "a brand new password" }))
  })

  it("the admin lane refuses concurrent failed logins beyond its budget at once; a login a second later succeeds", async () => {
    const { database: strictDatabase, release } = await openDatabase()
    const strict = await startAdmin(strictDatabase, {
      argon2Password: productionPasswordCost,
      slowHashAdminMsPerSecond: 150,
      slowHashQueue: 0,
      slowHashMaxWait: Duration.zero
    })
    try {
      const user = await createUser(strict, "owner")
      const responses = await Promise.all(
        Array.from({ length: 6 }, (_, i) => ApiClient.fresh(strict).post("/api/v1/auth/login", { email: `nobody-${i}@example.com`, password: "wrong" }))
      )
      expect(responses.map((r) => r.status).sort()).toEqual([401, 429, 429, 429, 429, 429])
      for (const response of responses.filter((r) => r.status === 429)) {
        expectRateLimited(response)
        expect(response.body.message).toMatch(/too many password checks right now/)
      }
      // Waiting as told lets the owner in (the budget counts wall time: on a busy machine a
      // failure costs more, and the wait is longer).
      const owner = ApiClient.fresh(strict)
      for (let attempt = 0; ; attempt++) {
        const response = await owner.post("/api/v1/auth/login", { email: user.email, password: PASSWORD })
        if (response.status === 200) break
        expect(attempt).toBeLessThan(5)
        await new Promise((resolve) => setTimeout(resolve, expectRateLimited(response) * 1000))
      }
    } finally {
      await strict.dispose()
      await release()
    }
  })
})

describe("device plane", () => {

  const enrollment = <A, E>(f: (service: Enrollment["Type"]) => Effect.Effect<A, E>) => admin.run(Effect.flatMap(Enrollment, f))
  const address = () => `192.0.2.${randomInt(1, 255)}`
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  it("a fleet enrols while device-secret checks are hammered: every device gets in, and the attack's argon2 time stays within the lane's budget", async () => {
    // Devices the attacker knows the ids of (not their secrets).
    const victimsToken = await enrollment((e) => e.createToken({ expiresIn: Duration.hours(1), maxUses: 20 }))
    const victims = await Promise.all(
      Array.from({ length: 20 }, (_, i) => enrollment((e) => e.enroll(new EnrollRequest({ token: victimsToken.token, hardwareId: `victim-${i}` }))))
    )
    const fleetToken = await enrollment((e) => e.createToken({ expiresIn: Duration.hours(1), maxUses: 30 }))
    const hashedBefore = await secondsOf("device", "wrong_secret")
    const started = performance.now()

    let done = false
    const attack = { ran: 0, refused: 0 }
    const attacker = async (n: number) => {
      for (let i = n; !done; i += 12) {
        const request = new TicketRequest({ deviceId: victims[i % victims.length]!.deviceId, deviceSecret: "not-the-secret" })
        const outcome = await admin.run(Effect.either(Effect.flatMap(Enrollment, (e) => e.renewTicket(request, { ip: address() }))))
        if (outcome._tag === "Right") throw new Error("a wrong secret got a ticket")
        if (outcome.left instanceof SlowHashRefused) attack.refused++
        else attack.ran++
        await sleep(1)
      }
    }
    // A device as the agent behaves: on 429 it waits as told and tries again.
    const device = async (i: number) => {
      for (let attempt = 0; attempt < 20; attempt++) {
        const outcome = await admin.run(
          Effect.either(Effect.flatMap(Enrollment, (e) => e.enroll(new EnrollRequest({ token: fleetToken.token, hardwareId: `fleet-${i}` }), { ip: "198.51.100.77" })))
        )
        if (outcome._tag === "Right") return outcome.right.deviceId
        if (!(outcome.left instanceof SlowHashRefused)) throw new Error(`enrollment failed: ${String(outcome.left)}`)
        await sleep(outcome.left.retryAfterMs)
      }
      throw new Error(`fleet-${i} never got in`)
    }
    const attackers = Array.from({ length: 12 }, (_, n) => attacker(n))
    // The attack runs alone for a second first: by then it has met its limits.
    await sleep(1000)
    const fleet = await Promise.all(Array.from({ length: 30 }, (_, i) => device(i)))
    done = true
    await Promise.all(attackers)
    const seconds = (performance.now() - started) / 1000

    expect(new Set(fleet).size).toBe(30)
    expect(attack.ran).toBeGreaterThan(0)
    // Whether the attack meets refusals or only waits in the bounded line depends on this machine's
    // speed; what must hold is the fleet getting in and the attack's argon2 time staying in budget.
    // 50 ms of argon2 per second for failures, plus the burst and the overdraft (50 ms each) and
    // the one check that overdrew it.
    const hashedForAttack = (await secondsOf("device", "wrong_secret")) - hashedBefore
    expect(hashedForAttack).toBeLessThanOrEqual(0.05 * seconds + 0.1 + 0.05)
    expect(seconds).toBeLessThan(10)
  })


  it("POST /v1/device/ticket: five wrong secrets from one address, then 429 RATE_LIMITED with Retry-After, even for the right one", async () => {
    // Its own engine: the other device-plane tests spend the shared one's device lane budget.
    const { database: ownDatabase, release } = await openDatabase()
    const own = await startAdmin(ownDatabase, overrides)
    try {
      const enrol = <A, E>(use: (enrollment: Enrollment["Type"]) => Effect.Effect<A, E>) => own.run(Effect.flatMap(Enrollment, use))
      const token = await enrol((e) => e.createToken({ expiresIn: Duration.hours(1), maxUses: 1 }))
      const device = await enrol((e) => e.enroll(new EnrollRequest({ token: token.token, hardwareId: "ticket-victim" })))
      const { url } = await own.run(DevicePlane)
      const from = { "x-forwarded-for": address() }
      for (let attempt = 0; attempt < 5; attempt++) {
        const response = await postJson(`${url}/v1/device/ticket`, { deviceId: device.deviceId, deviceSecret: `wrong-${attempt}` }, from)
        expect([response.status, response.body.error.code]).toEqual([401, "CREDENTIALS_INVALID"])
      }
      const refused = await postJson(`${url}/v1/device/ticket`, { deviceId: device.deviceId, deviceSecret: device.deviceSecret }, from)
      expect([refused.status, refused.body.error.code]).toEqual([429, "RATE_LIMITED"])
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
      expect(refused.body.error.retryAfterMs).toBeGreaterThan(0)
      // Another address, with the right secret: the device's own limit (10) is not reached.
      const renewed = await postJson(`${url}/v1/device/ticket`, { deviceId: device.deviceId, deviceSecret: device.deviceSecret }, { "x-forwarded-for": address() })
      expect(renewed.status).toBe(200)
    } finally {
      await own.dispose()
      await release()
    }
  })
})
