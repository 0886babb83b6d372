/**
 * The agent APK registry through the real admin HTTP server and PostgreSQL, with APKs signed by
 * apksigner at test time: upload with an `apk:upload` key, scope and size limits, pinned signer,
 * increasing version codes, promote, rollback, audit rows, and downloads (admin API and device
 * plane) whose bytes hash to the release's SHA-256, with ETag and Range.
 */
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Effect, Either, Option } from "effect"
import { engineConfig } from "../src/EngineConfig.js"
import { createHash } from "node:crypto"
import { mkdtempSync, readdirSync } from "node:fs"
import { request as httpRequest } from "node:http"
import { readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DevicePlane } from "../src/DevicePlane.js"
import { Releases } from "../src/releases/Releases.js"
import { apkToolsAvailable, fixtureApk, signingKey, tamperedCopy } from "./support/ApkFixtures.js"
import { ApiClient, createUser, startAdmin, type TestAdmin, waitFor } from "./support/TestAdmin.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { openDatabase } from "./support/TestEngine.js"

const toolsRequired = process.env["NEXMDM_TEST_REQUIRE_TOOLCHAINS"] === "1"
const tools = await apkToolsAvailable()
if (!tools && toolsRequired) throw new Error("apksigner/keytool missing but NEXMDM_TEST_REQUIRE_TOOLCHAINS=1")
if (!tools) console.warn("Releases tests skipped: apksigner and keytool (JDK) are not on PATH")

const MAX_BYTES = 1024 * 1024

let database: TestDatabase
let release: () => Promise<void>
let admin: TestAdmin
let unpinned: TestAdmin
let owner: ApiClient
let uploader: string
let reader: string
let deviceUrl: string
let dataDir: string

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const createKey = async (scopes: ReadonlyArray<string>) => {
  const response = await owner.post("/api/v1/api-keys", { name: `key ${scopes.join(" ")}`, scopes })
  expect(response.status).toBe(201)
  return response.body.key as string
}

/** POSTs an APK file as the raw body. */
const upload = async (target: TestAdmin, key: string, path: string, query = "") => {
  const response = await fetch(`${target.url}/api/v1/releases${query}`, {
    method: "POST",
    headers: { "x-admin-key": key, "content-type": "application/vnd.android.package-archive", "x-forwarded-for": "198.51.100.7" },
    body: await readFile(path)
  })
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
}

/**
 * POSTs `bytes` with chunked transfer encoding (no Content-Length) and reads the answer even when
 * the server answers before the body is complete (it then stops reading; the write may fail).
 */
const chunkedPost = (url: string, headers: Record<string, string>, bytes: Buffer) =>
  new Promise<{ status: number; text: string }>((resolve, reject) => {
    const request = httpRequest(url, { method: "POST", headers: { ...headers, "transfer-encoding": "chunked" } }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (text += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text }))
      response.on("error", reject)
    })
    request.on("error", () => {})
    let at = 0
    const pump = () => {
      while (at < bytes.length) {
        const chunk = bytes.subarray(at, at + 64 * 1024)
        at += chunk.length
        if (!request.write(chunk)) return void request.once("drain", pump)
      }
      request.end()
    }
    pump()
  })

describe("release configuration", () => {
  const read = (env: Record<string, string>) =>
    Effect.runPromise(Effect.either(Effect.withConfigProvider(engineConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))))
  it("reads pinned signers as lower-case hex without colons, and refuses anything else naming the variable", async () => {
    const upper = "AB:".repeat(31) + "AB"
    const ok = await read({ NEXMDM_APK_SIGNER_SHA256: ` ${upper} , ${"c".repeat(64)}` })
    expect(Either.getOrThrow(ok).apkSignerSha256).toEqual(["ab".repeat(32), "c".repeat(64)])
    expect(Either.getOrThrow(await read({})).apkSignerSha256).toEqual([])
    const bad = await read({ NEXMDM_APK_SIGNER_SHA256: "not-a-fingerprint" })
    expect(Either.isLeft(bad) && String(bad.left)).toMatch(/NEXMDM_APK_SIGNER_SHA256/)
  })
})

describe.skipIf(!tools)("agent releases", () => {
  beforeAll(async () => {
    ;({ database, release } = await openDatabase())
    const [rsa, ec] = await Promise.all([signingKey("rsa"), signingKey("ec"), signingKey("other-rsa")])
    dataDir = mkdtempSync(join(tmpdir(), "nexmdm-releases-"))
    admin = await startAdmin(database, {
      dataDir,
      apkMaxBytes: MAX_BYTES,
      apkSignerSha256: [rsa.certSha256Hex, ec.certSha256Hex]
    })
    unpinned = await startAdmin(database, { dataDir: mkdtempSync(join(tmpdir(), "nexmdm-releases-")), apkSignerSha256: [] })
    deviceUrl = (await admin.run(DevicePlane)).url
    const user = await createUser(admin, "owner")
    ;({ client: owner } = await ApiClient.fresh(admin).login(user.email))
    uploader = await createKey(["apk:upload"])
    reader = await createKey(["read"])
  }, 120_000)

  afterAll(async () => {
    await unpinned?.dispose()
    await admin?.dispose()
    await release?.()
  })

  it("accepts an APK from a pinned signer uploaded with an apk:upload key, and serves exactly its bytes", async () => {
    const path = await fixtureApk({ versionCode: 10, versionName: "1.0.10" })
    const bytes = await readFile(path)
    const created = await upload(admin, uploader, path, "?channel=stable&notes=first")
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({
      packageName: "com.nexmdm.agent",
      versionCode: 10,
      versionName: "1.0.10",
      channel: "stable",
      sha256Hex: sha256(bytes),
      sizeBytes: bytes.length,
      signerCertSha256Hex: (await signingKey("rsa")).certSha256Hex,
      servedOn: ["stable"],
      schemes: [2, 3],
      notes: "first",
      status: "active"
    })
    const id = created.body.id as string
    const current = await admin.run(Effect.flatMap(Releases, (releases) => releases.current("stable")))
    expect(Option.getOrThrow(current)).toMatchObject({ id, versionCode: 10, downloadPath: `/v1/releases/${id}/agent.apk` })

    // Admin API download: whole file, then a resumed range, then a conditional request.
    const api = ApiClient.fresh(admin).withKey(reader)
    const whole = await fetch(`${admin.url}/api/v1/releases/${id}/apk`, { headers: { "x-admin-key": reader, "x-forwarded-for": api.ip } })
    expect(whole.status).toBe(200)
    expect(whole.headers.get("etag")).toBe(`"${sha256(bytes)}"`)
    expect(whole.headers.get("content-length")).toBe(String(bytes.length))
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(sha256(bytes))
    const partial = await fetch(`${admin.url}/api/v1/releases/${id}/apk`, {
      headers: { "x-admin-key": reader, "x-forwarded-for": api.ip, range: "bytes=100-" }
    })
    expect(partial.status).toBe(206)
    expect(partial.headers.get("content-range")).toBe(`bytes 100-${bytes.length - 1}/${bytes.length}`)
    expect(Buffer.from(await partial.arrayBuffer()).equals(bytes.subarray(100))).toBe(true)

    // Device plane: no credentials, same bytes, same ETag; ranges and 304 too.
    const device = await fetch(`${deviceUrl}/v1/releases/${id}/agent.apk?client=script`)
    expect(device.status).toBe(200)
    expect(device.headers.get("etag")).toBe(`"${sha256(bytes)}"`)
    expect(sha256(new Uint8Array(await device.arrayBuffer()))).toBe(sha256(bytes))
    const tail = await fetch(`${deviceUrl}/v1/releases/${id}/agent.apk`, { headers: { range: "bytes=-50" } })
    expect(tail.status).toBe(206)
    expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(bytes.length - 50))).toBe(true)
    const cached = await fetch(`${deviceUrl}/v1/releases/${id}/agent.apk`, { headers: { "if-none-match": `"${sha256(bytes)}"` } })
    expect(cached.status).toBe(304)
    expect((await fetch(`${deviceUrl}/v1/releases/${id}/agent.apk`, { headers: { range: `bytes=${bytes.length}-` } })).status).toBe(416)
    expect((await fetch(`${deviceUrl}/v1/releases/rel_aaaaaaaaaaaaaaaaaaaa/agent.apk`)).status).toBe(404)

    // Every download is recorded: who, how far, whether it reached the end.
    // The end of a download is recorded just after its last byte left: wait for all four.
    const downloads = await waitFor(async () => {
      const rows = await admin.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ client_kind: string; bytes_sent: string; completed: boolean; finished_at: Date | null }>`
            select client_kind, bytes_sent, completed, finished_at from release_downloads where release_id = ${id} order by id`
        )
      )
      return rows.length === 4 && rows.every((row) => row.finished_at !== null) ? rows : undefined
    })
    expect(downloads.map((row) => [row.client_kind, Number(row.bytes_sent), row.completed])).toEqual([
      ["admin", bytes.length, true],
      ["admin", bytes.length - 100, true],
      ["script", bytes.length, true],
      ["anonymous", 50, true]
    ])
    const listed = await api.get("/api/v1/releases?channel=stable")
    expect(listed.status).toBe(200)
    expect(listed.body[0]).toMatchObject({ id, downloads: 4, completedDownloads: 4 })
  }, 60_000)

  it("refuses a key without apk:upload (403) and an upload over NEXMDM_APK_MAX_BYTES (413), streamed or declared", async () => {
    const small = await fixtureApk({ versionCode: 11 })
    const denied = await upload(admin, reader, small)
    expect(denied.status).toBe(403)
    expect(denied.body.code).toBe("INSUFFICIENT_SCOPE")

    const big = await fixtureApk({ versionCode: 12, assetBytes: 2 * MAX_BYTES })
    const declared = await upload(admin, uploader, big)
    expect(declared.status).toBe(413)
    expect(declared.body).toMatchObject({ code: "APK_TOO_LARGE", limitBytes: MAX_BYTES })

    // Without Content-Length (chunked): the limit holds while streaming.
    const bytes = await readFile(big)
    const chunked = await chunkedPost(`${admin.url}/api/v1/releases`, { "x-admin-key": uploader, "x-forwarded-for": "198.51.100.8" }, bytes)
    expect(chunked.status).toBe(413)
    expect(JSON.parse(chunked.text).code).toBe("APK_TOO_LARGE")
  }, 60_000)

  it("refuses a signer that is not pinned, a tampered APK, a repeated file and a version code that does not increase", async () => {
    const other = await upload(admin, uploader, await fixtureApk({ key: "other-rsa", versionCode: 20 }))
    expect(other.status).toBe(422)
    expect(other.body.code).toBe("APK_SIGNER_NOT_TRUSTED")

    const tampered = await upload(admin, uploader, await tamperedCopy(await fixtureApk({ versionCode: 21 }), 300, "upload"))
    expect(tampered.status).toBe(422)
    expect(tampered.body.code).toBe("APK_DIGEST_MISMATCH")

    const unsigned = await upload(admin, uploader, await fixtureApk({ versionCode: 22, unsigned: true }))
    expect(unsigned.body.code).toBe("APK_SIGNATURE_MISSING")

    const again = await upload(admin, uploader, await fixtureApk({ versionCode: 10, versionName: "1.0.10" }))
    expect(again.status).toBe(409)
    expect(again.body.code).toBe("RELEASE_EXISTS")

    const older = await upload(admin, uploader, await fixtureApk({ versionCode: 9, versionName: "0.9" }))
    expect(older.status).toBe(422)
    expect(older.body.code).toBe("APK_VERSION_NOT_INCREASING")

    // Nothing of the refused uploads is left: stable still serves version 10.
    const current = await admin.run(Effect.flatMap(Releases, (releases) => releases.current("stable")))
    expect(Option.getOrThrow(current).versionCode).toBe(10)

    // Refusals are in the audit log with their code.
    const audit = await owner.get("/api/v1/audit?action=release.upload&limit=50")
    const failures = (audit.body.items as Array<{ outcome: string; detail: { code?: string } }>).filter((row) => row.outcome === "failure")
    expect(failures.map((row) => row.detail.code)).toEqual(
      expect.arrayContaining(["APK_SIGNER_NOT_TRUSTED", "APK_DIGEST_MISMATCH", "RELEASE_EXISTS", "APK_VERSION_NOT_INCREASING"])
    )
  }, 60_000)

  it("refuses every upload with APK_SIGNER_NOT_CONFIGURED when no signer is pinned", async () => {
    const user = await createUser(unpinned, "owner")
    const { client } = await ApiClient.fresh(unpinned).login(user.email)
    const key = (await client.post("/api/v1/api-keys", { name: "ci", scopes: ["apk:upload"] })).body.key as string
    const refused = await upload(unpinned, key, await fixtureApk({ versionCode: 30 }))
    expect(refused.status).toBe(503)
    expect(refused.body.code).toBe("APK_SIGNER_NOT_CONFIGURED")
  }, 60_000)

  it("promotes a beta release to stable and rolls stable back to the release before", async () => {
    const beta = await upload(admin, uploader, await fixtureApk({ key: "ec", versionCode: 40, versionName: "4.0-beta" }), "?channel=beta")
    expect(beta.status).toBe(201)
    expect(beta.body).toMatchObject({ channel: "beta", servedOn: ["beta"], schemes: [2, 3] })

    const promoted = await ApiClient.fresh(admin).withKey(uploader).post(`/api/v1/releases/${beta.body.id}/promote`, { channel: "stable" })
    expect(promoted.status).toBe(200)
    expect(promoted.body.servedOn).toEqual(["beta", "stable"])
    const stable = () => admin.run(Effect.flatMap(Releases, (releases) => releases.current("stable"))).then(Option.getOrThrow)
    expect((await stable()).versionCode).toBe(40)

    const twice = await ApiClient.fresh(admin).withKey(uploader).post(`/api/v1/releases/${beta.body.id}/promote`, { channel: "stable" })
    expect(twice.body.code).toBe("ALREADY_ON_CHANNEL")

    const rolledBack = await owner.post("/api/v1/releases/channels/stable/rollback")
    expect(rolledBack.status).toBe(200)
    expect(rolledBack.body).toMatchObject({ from: { versionCode: 40 }, to: { versionCode: 10 } })
    expect((await stable()).versionCode).toBe(10)
    expect((await owner.get(`/api/v1/releases/${beta.body.id}`)).body.status).toBe("rolled_back")

    // Stable cannot go back beyond its first release; a rolled-back release is not promoted again.
    expect((await owner.post("/api/v1/releases/channels/stable/rollback")).body.code).toBe("NOTHING_TO_ROLL_BACK")
    expect((await owner.post(`/api/v1/releases/${beta.body.id}/promote`, { channel: "stable" })).body.code).toBe("RELEASE_ROLLED_BACK")

    const history = await owner.get("/api/v1/releases/channels/stable/history")
    expect(history.body.map((event: { action: string }) => event.action)).toEqual(["rollback", "promote", "publish"])
    const audit = await owner.get("/api/v1/audit?limit=100")
    const actions = (audit.body.items as Array<{ action: string; outcome: string }>).filter((row) => row.outcome === "success").map((row) => row.action)
    expect(actions).toEqual(expect.arrayContaining(["release.upload", "release.promote", "release.rollback"]))
  }, 60_000)

  it("exposes rollouts in the admin API: bad stages are a 400, no device on the channel a 409, a read key a 403", async () => {
    const badStages = await owner.post("/api/v1/rollouts", { channel: "stable", stages: [50, 20, 100] })
    expect(badStages.status).toBe(400)
    const noDevices = await owner.post("/api/v1/rollouts", { channel: "stable" })
    expect(noDevices.status).toBe(409)
    expect(noDevices.body.code).toBe("NO_DEVICES")
    const denied = await ApiClient.fresh(admin).withKey(reader).post("/api/v1/rollouts", { channel: "stable" })
    expect(denied.status).toBe(403)
    expect((await owner.get("/api/v1/rollouts")).body).toEqual([])
    expect((await owner.get("/api/v1/rollouts/ro_aaaaaaaaaaaaaaaaaaaa")).status).toBe(404)
    const audit = await owner.get("/api/v1/audit?action=rollout.start")
    expect(audit.body.items.map((row: { outcome: string; detail: { code?: string } }) => [row.outcome, row.detail.code])).toEqual([["failure", "NO_DEVICES"]])
  }, 60_000)

  it("streams a larger APK from the device plane intact, and leaves no temporary upload behind", async () => {
    const path = await fixtureApk({ versionCode: 50, versionName: "5.0-beta", assetBytes: 900 * 1024 })
    const bytes = await readFile(path)
    const created = await upload(admin, uploader, path, "?channel=beta")
    expect(created.status).toBe(201)
    const downloads = await Promise.all(
      Array.from({ length: 4 }, () => fetch(`${deviceUrl}/v1/releases/${created.body.id}/agent.apk`).then(async (response) => new Uint8Array(await response.arrayBuffer())))
    )
    for (const body of downloads) expect(sha256(body)).toBe(sha256(bytes))
    // Refused and oversized uploads were deleted; accepted ones were moved out of incoming/.
    expect(readdirSync(join(dataDir, "releases", "incoming"))).toEqual([])
  }, 60_000)
})
