import { createHash } from "node:crypto"
import * as Http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { accessPolicy, routesOf } from "../src/admin/AccessPolicy.js"
import { AdminApi } from "../src/admin/AdminApi.js"
import type { Requirement } from "../src/admin/Principal.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { ApiClient, createUser, PASSWORD, signedIn, startAdmin, type TestAdmin, waitFor } from "./support/TestAdmin.js"
import { openDatabase } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin
const logs: Array<string> = []

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  admin = await startAdmin(database, {}, { logs })
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
})

describe("OpenAPI document and reference page", () => {
  it("/api/openapi.json is OpenAPI 3.x listing every route with its requirement", async () => {
    const response = await ApiClient.fresh(admin).get("/api/openapi.json")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("application/json")
    const spec = JSON.parse(response.text)
    expect(spec.openapi).toMatch(/^3\.\d+\.\d+$/)
    expect(spec.info.title).toBe("NexMDM admin API")
    expect(Object.keys(spec.components.securitySchemes).sort()).toEqual(["adminKey", "bearer"])
    const routes = routesOf(AdminApi)
    expect(routes).toHaveLength(Object.keys(accessPolicy).length)
    for (const route of routes) {
      const operation = spec.paths[route.path.replace(/:(\w+)/g, "{$1}")]?.[route.method.toLowerCase()]
      expect(operation?.operationId, `${route.method} ${route.path}`).toBe(route.key)
      const requirement = route.requirement as Requirement
      expect(operation["x-nexmdm-access"]).toEqual(requirement)
      const expected = requirement._tag === "Public" ? [] : requirement.keys === "none" ? [{ bearer: [] }] : [{ bearer: [] }, { adminKey: [] }]
      expect(operation.security).toEqual(expected)
      if (requirement._tag === "Authenticated") expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(["401", "403", "429"]))
    }
    // Clients never see the library's decode error: it is answered as a ValidationError.
    expect(response.text).not.toContain("HttpApiDecodeError")
  })

  it("/api/docs is an HTML page that runs only its own inline scripts", async () => {
    const response = await ApiClient.fresh(admin).get("/api/docs")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("text/html")
    expect(response.text).toContain("swagger-ui")
    expect(response.text).toContain("NexMDM admin API")
    const csp = response.headers.get("content-security-policy")!
    const scripts = [...response.text.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((match) => match[1]!)
    expect(scripts.length).toBeGreaterThan(0)
    for (const script of scripts) expect(csp).toContain(`'sha256-${createHash("sha256").update(script).digest("base64")}'`)
    expect(csp).not.toContain("unsafe-eval")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(response.text).not.toMatch(/<script[^>]+src=/)
  })
})

describe("HTTP hygiene", () => {
  it("every admin response carries security headers; API responses are not cached", async () => {
    const client = ApiClient.fresh(admin)
    for (const response of [await client.get("/api/v1/me"), await client.get("/api/v1/nope"), await client.get("/healthz"), await client.get("/metrics")]) {
      expect(response.headers.get("x-content-type-options")).toBe("nosniff")
      expect(response.headers.get("x-frame-options")).toBe("DENY")
      expect(response.headers.get("referrer-policy")).toBe("no-referrer")
      expect(response.headers.get("content-security-policy")).toContain("default-src 'none'")
    }
    expect((await client.get("/api/v1/me")).headers.get("cache-control")).toBe("no-store")
  })

  it("CORS answers the console's origin only", async () => {
    const client = ApiClient.fresh(admin)
    const console = await client.get("/api/v1/me", { origin: "http://localhost:3000" })
    expect(console.headers.get("access-control-allow-origin")).toBe("http://localhost:3000")
    const evil = await client.get("/api/v1/me", { origin: "https://evil.example" })
    expect(evil.headers.get("access-control-allow-origin")).toBeNull()

    const preflight = (origin: string) =>
      client.request("OPTIONS", "/api/v1/users", undefined, {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"
      })
    const allowed = await preflight("http://localhost:3000")
    expect(allowed.status).toBe(204)
    expect(allowed.headers.get("access-control-allow-origin")).toBe("http://localhost:3000")
    expect(allowed.headers.get("access-control-allow-headers")).toBe("authorization,content-type,x-admin-key")
    expect(allowed.headers.get("access-control-allow-credentials")).toBeNull()
    expect((await preflight("https://evil.example")).headers.get("access-control-allow-origin")).toBeNull()
  })

  it("a declared body over the limit gets 413 PAYLOAD_TOO_LARGE; a chunked one is cut off at the limit", async () => {
    const big = JSON.stringify({ email: "x@example.com", password: "p".repeat(70 * 1024) })
    const declared = await ApiClient.fresh(admin).post("/api/v1/auth/login", big)
    expect([declared.status, declared.body.code]).toEqual([413, "PAYLOAD_TOO_LARGE"])

    // Without a Content-Length the body is read until the limit, then the connection is closed
    // (the platform destroys the request stream): the request never reaches its handler.
    const { client } = await signedIn(admin, "owner")
    const outcome = await new Promise<string>((resolve) => {
      const request = Http.request(`${admin.url}/api/v1/users`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${client.credentials.token}`, "x-forwarded-for": client.ip }
      })
      request.on("response", (response) => resolve(String(response.statusCode)))
      request.on("error", (error) => resolve((error as NodeJS.ErrnoException).code ?? error.message))
      request.write(`{"email":"chunked@example.com","displayName":"${"x".repeat(70 * 1024)}`)
      request.end(`","role":"viewer","password":"a good long password"}`)
    })
    expect(["413", "ECONNRESET", "EPIPE"]).toContain(outcome)
    expect((await client.get("/api/v1/users")).body.map((user: { email: string }) => user.email)).not.toContain("chunked@example.com")
  })

  it("malformed JSON and schema mismatches get 400 with a code, and never echo a password", async () => {
    const { client } = await signedIn(admin, "owner")
    const malformed = await client.post("/api/v1/users", "{not json")
    expect(malformed.status).toBe(400)
    expect(malformed.body).toMatchObject({ _tag: "ValidationError", code: "MALFORMED_JSON" })

    const secret = "s3cret-but-too-long-".repeat(20)
    const invalid = await client.post("/api/v1/users", { email: "not-an-email", displayName: "X", role: "emperor", password: secret })
    expect(invalid.status).toBe(400)
    expect(invalid.body).toMatchObject({ _tag: "ValidationError", code: "VALIDATION_FAILED" })
    expect(invalid.body.issues.length).toBeGreaterThan(0)
    expect(invalid.body.issues[0]).toEqual({ path: expect.any(Array), message: expect.any(String) })
    expect(invalid.text).not.toContain("s3cret")
  })

  it("unknown API paths answer a JSON 404 NOT_FOUND", async () => {
    const response = await ApiClient.fresh(admin).get("/api/v1/gadgets/nope")
    expect(response.status).toBe(404)
    expect(response.body).toEqual({ _tag: "NotFound", code: "NOT_FOUND", message: "no route for GET /api/v1/gadgets/nope" })
  })

  it("API requests are counted in engine_http_requests_total under their route template", async () => {
    const { client, user } = await signedIn(admin, "owner")
    await client.post(`/api/v1/users/${user.id}/enable`)
    const metrics = await ApiClient.fresh(admin).get("/metrics")
    expect(metrics.text).toMatch(/^engine_http_requests_total\{route="\/api\/v1\/auth\/login",status="200"\} [1-9]\d*$/m)
    expect(metrics.text).toMatch(/^engine_http_requests_total\{route="\/api\/v1\/users\/:id\/enable",status="200"\} [1-9]\d*$/m)
  })

  it("no password, token or key ever reaches the log", async () => {
    const user = await createUser(admin, "owner", { password: "log-canary-password-1" })
    const client = ApiClient.fresh(admin)
    await client.post("/api/v1/auth/login", { email: user.email, password: "log-canary-wrong-2" })
    const { client: signed, session } = await client.login(user.email, "log-canary-password-1")
    const rotated = (await client.post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })).body
    await client.post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })
    const key = (await signed.post("/api/v1/api-keys", { name: "canary", scopes: ["read"] })).body.key as string
    await ApiClient.fresh(admin).withKey(key).get("/api/v1/users")
    await ApiClient.fresh(admin).withKey(key.slice(0, -2) + "zz").get("/api/v1/users")
    await client.post("/api/v1/auth/password-reset", { email: user.email })
    const mail = await waitFor(() => admin.mail.find((m) => m.to === user.email))
    const resetToken = /#token=(\S+)/.exec(mail.text)![1]!
    await client.post("/api/v1/auth/password-reset/confirm", { token: resetToken, password: "log-canary-password-3" })
    await client.post("/api/v1/auth/password-reset/confirm", { token: resetToken, password: "log-canary-password-4" })
    await signed.post("/api/v1/me/password", { currentPassword: "log-canary-wrong-5", newPassword: "log-canary-password-6" })

    expect(logs.length).toBeGreaterThan(0)
    const everything = logs.join("\n")
    for (const secret of [
      "log-canary",
      PASSWORD,
      session.accessToken.split(".")[2]!,
      session.refreshToken.slice(4),
      rotated.refreshToken.slice(4),
      key.slice(15),
      resetToken.slice(4)
    ]) {
      expect(everything).not.toContain(secret)
    }
  })
})
