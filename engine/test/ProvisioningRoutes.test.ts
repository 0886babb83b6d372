/**
 * The device-plane endpoints enrollment scripts call (token in the body), and the optional
 * `serial` of EnrollRequest that lets a script recognise its device (protocol/vectors/enroll-requests.json).
 */
import { EnrollRequest } from "@nexmdm/protocol"
import { Effect, Either, Option, Schema } from "effect"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ProvisioningStore } from "../src/provisioning/ProvisioningStore.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { createToken, openDatabase, postJson, startEngine, type TestEngine } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let engine: TestEngine

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  engine = await startEngine(database)
})

afterAll(async () => {
  await engine?.dispose()
  await releaseDatabase?.()
})

const status = (body: unknown) => postJson(`${engine.url}/v1/provisioning/status`, body)
const report = (body: unknown) => postJson(`${engine.url}/v1/provisioning/reports`, body)

describe("EnrollRequest.serial vectors", () => {
  const file = JSON.parse(readFileSync(fileURLToPath(new URL("../../protocol/vectors/enroll-requests.json", import.meta.url)), "utf8")) as {
    vectors: Array<{ name: string; body: string; expect: { ok: true; value: unknown } | { ok: false; code: string } }>
  }
  const decode = Schema.decodeUnknownEither(Schema.parseJson(EnrollRequest))
  for (const vector of file.vectors) {
    it(vector.name, () => {
      const decoded = decode(vector.body)
      if (vector.expect.ok) {
        expect(Either.isRight(decoded)).toBe(true)
        expect({ ...(Either.getOrThrow(decoded) as object) }).toEqual(vector.expect.value)
      } else {
        expect(Either.isLeft(decoded)).toBe(true)
      }
    })
  }
})

describe("provisioning endpoints of the device plane", () => {
  it("status: the token's state and which of the asked serials enrolled with it", async () => {
    const token = await createToken(engine, 3)
    const before = await status({ token: token.token, serials: ["SER-1", "SER-2"] })
    expect(before.status).toBe(200)
    expect(before.body).toMatchObject({ token: { id: token.id, state: "active", maxUses: 3, uses: 0, usesLeft: 3 }, enrolled: [] })

    const withSerial = await postJson(`${engine.url}/v1/enroll`, { token: token.token, hardwareId: "hw-1", serial: "SER-1" })
    expect(withSerial.status).toBe(201)
    // Enrolled without a serial: counted as a use, matched to no serial.
    expect((await postJson(`${engine.url}/v1/enroll`, { token: token.token, hardwareId: "hw-2" })).status).toBe(201)

    const after = await status({ token: token.token, serials: ["SER-1", "SER-2"] })
    expect(after.body.token).toMatchObject({ uses: 2, usesLeft: 1, state: "active" })
    expect(after.body.enrolled).toEqual([{ serial: "SER-1", deviceId: withSerial.body.deviceId, enrolledAt: expect.any(String) }])

    expect((await postJson(`${engine.url}/v1/enroll`, { token: token.token, hardwareId: "hw-3", serial: "SER-3" })).status).toBe(201)
    const usedUp = await status({ token: token.token, serials: ["SER-3"] })
    expect(usedUp.body.token).toMatchObject({ state: "used_up", usesLeft: 0 })
    expect(usedUp.body.enrolled.map((device: { serial: string }) => device.serial)).toEqual(["SER-3"])
  })

  it("reports: stored per token with stage, problems and facts; listed newest first", async () => {
    const token = await createToken(engine, 1)
    const body = {
      token: token.token,
      serial: "ZY22ACCOUNT",
      stage: "preflight",
      ok: false,
      problems: [{ code: "ACCOUNTS_PRESENT", message: "1 account(s) on the device" }],
      facts: { model: "moto g", androidRelease: "12", sdk: 31 }
    }
    expect((await report(body)).status).toBe(201)
    expect((await report({ ...body, stage: "install", problems: [{ code: "INSTALL_FAILED", message: "no space" }] })).status).toBe(201)
    const stored = await engine.run(Effect.flatMap(ProvisioningStore, (store) => store.listReports(token.id, 10)))
    expect(stored.map((row) => [row.stage, row.problems[0]?.code, row.facts.sdk, row.sourceIp])).toEqual([
      ["install", "INSTALL_FAILED", 31, "127.0.0.1"],
      ["preflight", "ACCOUNTS_PRESENT", 31, "127.0.0.1"]
    ])
  })

  it("refuses unknown tokens (401), bad bodies (400) and other methods (405) with typed errors", async () => {
    const token = await createToken(engine, 1)
    const forged = `${token.id}.${"B".repeat(43)}`
    expect(await status({ token: forged })).toMatchObject({ status: 401, body: { error: { code: "TOKEN_INVALID" } } })
    expect(await report({ token: "nonsense", serial: "S", stage: "preflight", ok: true, problems: [] })).toMatchObject({
      status: 401,
      body: { error: { code: "TOKEN_INVALID" } }
    })
    const bad = [
      "not json",
      { token: token.token, serials: ["has space"] },
      { token: token.token, serial: "S", stage: "launch", ok: true, problems: [] },
      { token: token.token, serial: "S", stage: "preflight", ok: false, problems: [{ code: "lower case", message: "x" }] },
      { token: token.token, serial: "S\n", stage: "preflight", ok: true, problems: [] }
    ]
    for (const body of bad) {
      const answer = typeof body === "object" && "serials" in body ? await status(body) : await report(body)
      expect(answer.status, JSON.stringify(body)).toBe(400)
      expect(answer.body.error.code).toBe("BAD_REQUEST")
    }
    const get = await fetch(`${engine.url}/v1/provisioning/status`)
    expect(get.status).toBe(405)
  })

  it("wrong token secrets count against the address like any secret check: after five, 429 without argon2; another address still gets in", async () => {
    // Its own engine, behind a trusted proxy header: each request names its address.
    const { database: ownDatabase, release } = await openDatabase()
    const own = await startEngine(ownDatabase, { trustedProxyHeader: Option.some("x-forwarded-for") })
    try {
      const token = await createToken(own, 1)
      const wrong = `${token.id}.${"C".repeat(43)}`
      const ask = (tokenText: string, address: string) =>
        postJson(`${own.url}/v1/provisioning/status`, { token: tokenText, serials: [] }, { "x-forwarded-for": address })
      for (let attempt = 0; attempt < 5; attempt++) {
        const answer = await ask(wrong, "198.51.100.20")
        expect(answer.status, JSON.stringify(answer.body)).toBe(401)
      }
      const refused = await ask(token.token, "198.51.100.20")
      expect(refused.status).toBe(429)
      expect(refused.body.error.code).toBe("RATE_LIMITED")
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
      expect((await ask(token.token, "198.51.100.21")).status).toBe(200)
    } finally {
      await own.dispose()
      await release()
    }
  })

  it("rate-limits per source address (429 with Retry-After) without touching the enrollment limit", async () => {
    const answers = await Promise.all(Array.from({ length: 80 }, () => status("{}")))
    const limited = answers.filter((answer) => answer.status === 429)
    expect(limited.length).toBeGreaterThan(0)
    expect(limited[0]!.body.error.code).toBe("RATE_LIMITED")
    expect(Number(limited[0]!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    const token = await createToken(engine, 1)
    expect((await postJson(`${engine.url}/v1/enroll`, { token: token.token, hardwareId: "hw-after-limit" })).status).toBe(201)
  })
})
