import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AccessTokens } from "../src/admin/AccessTokens.js"
import type { UserId } from "../src/admin/Principal.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { ApiClient, createUser, PASSWORD, signedIn, startAdmin, type TestAdmin, waitFor } from "./support/TestAdmin.js"
import { openDatabase } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  admin = await startAdmin(database)
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
})

const query = <A extends object>(text: string, ...params: Array<unknown>) =>
  admin.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, params)))

const auditOf = (action: string, outcome?: "success" | "failure") =>
  query<{ actor_id: string | null; actor_label: string | null; outcome: string; detail: any; source_ip: string | null }>(
    `select actor_id, actor_label, outcome, detail, source_ip from audit_log where action = $1 ${outcome === undefined ? "" : "and outcome = $2"} order by id`,
    ...(outcome === undefined ? [action] : [action, outcome])
  )

describe("sign-in", () => {
  it("login returns an access token and a refresh token; the access token opens the API", async () => {
    const user = await createUser(admin, "viewer")
    const anonymous = ApiClient.fresh(admin)
    const response = await anonymous.post("/api/v1/auth/login", { email: user.email.toUpperCase(), password: PASSWORD })
    expect(response.status).toBe(200)
    expect(response.body).toMatchObject({ tokenType: "Bearer", user: { id: user.id, email: user.email, role: "viewer" } })
    expect(response.body.refreshToken).toMatch(/^nxr_[A-Za-z0-9_-]{43}$/)
    const accessTtl = Date.parse(response.body.accessTokenExpiresAt) - Date.now()
    expect(accessTtl).toBeGreaterThan(14 * 60_000)
    expect(accessTtl).toBeLessThanOrEqual(15 * 60_000)
    expect(Date.parse(response.body.refreshTokenExpiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000)
    const me = await anonymous.withToken(response.body.accessToken).get("/api/v1/me")
    expect(me.status).toBe(200)
    expect(me.body).toMatchObject({ _tag: "user", user: { id: user.id, role: "viewer" } })
    const [row] = await auditOf("auth.login", "success").then((rows) => rows.filter((r) => r.actor_id === user.id))
    expect(row).toMatchObject({ actor_label: user.email, source_ip: anonymous.ip })
  })

  it("a wrong password and an unknown email both answer 401 INVALID_CREDENTIALS, and both are audited as failures", async () => {
    const user = await createUser(admin, "admin")
    const client = ApiClient.fresh(admin)
    const wrong = await client.post("/api/v1/auth/login", { email: user.email, password: "not the password" })
    const unknown = await client.post("/api/v1/auth/login", { email: "nobody@example.com", password: PASSWORD })
    for (const response of [wrong, unknown]) {
      expect(response.status).toBe(401)
      expect(response.body).toEqual({ _tag: "Unauthorized", code: "INVALID_CREDENTIALS", message: "wrong email or password" })
    }
    const failures = await auditOf("auth.login", "failure")
    expect(failures).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actor_id: user.id, detail: { code: "INVALID_CREDENTIALS" } }),
        expect.objectContaining({ actor_id: null, actor_label: "nobody@example.com", detail: { code: "INVALID_CREDENTIALS" } })
      ])
    )
  })

  it("refresh rotates the refresh token: the new pair works and the old token is refused", async () => {
    const user = await createUser(admin, "viewer")
    const { session } = await ApiClient.fresh(admin).login(user.email)
    const client = ApiClient.fresh(admin)
    const refreshed = await client.post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })
    expect(refreshed.status).toBe(200)
    expect(refreshed.body.refreshToken).not.toBe(session.refreshToken)
    expect((await client.withToken(refreshed.body.accessToken).get("/api/v1/me")).status).toBe(200)
    const again = await client.post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })
    expect(again.status).toBe(401)
    expect(again.body.code).toBe("REFRESH_TOKEN_INVALID")
  })

  it("reusing a rotated refresh token revokes the whole session, including the newest refresh token", async () => {
    const user = await createUser(admin, "viewer")
    const client = ApiClient.fresh(admin)
    const { session } = await client.login(user.email)
    const second = (await client.post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })).body
    // A thief replays the first token: refused, and the legitimate holder's next refresh fails too.
    expect((await client.post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })).status).toBe(401)
    const legit = await client.post("/api/v1/auth/refresh", { refreshToken: second.refreshToken })
    expect(legit.status).toBe(401)
    const reuse = await auditOf("auth.refresh_reuse")
    expect(reuse.some((row) => row.actor_id === user.id && row.outcome === "failure")).toBe(true)
  })

  it("logout revokes the session's refresh token", async () => {
    const user = await createUser(admin, "viewer")
    const client = ApiClient.fresh(admin)
    const { session } = await client.login(user.email)
    const logout = await client.post("/api/v1/auth/logout", { refreshToken: session.refreshToken })
    expect(logout.status).toBe(204)
    const refresh = await client.post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })
    expect([refresh.status, refresh.body.code]).toEqual([401, "REFRESH_TOKEN_INVALID"])
    expect((await auditOf("auth.logout", "success")).some((row) => row.actor_id === user.id)).toBe(true)
    // Logging out twice, or with a token nobody issued, is not an error.
    expect((await client.post("/api/v1/auth/logout", { refreshToken: session.refreshToken })).status).toBe(204)
    expect((await client.post("/api/v1/auth/logout", { refreshToken: "nxr_nonsense" })).status).toBe(204)
  })

  it("a disabled user cannot log in or refresh, and their access token stops working at once", async () => {
    const { client: owner } = await signedIn(admin, "owner")
    const user = await createUser(admin, "viewer")
    const { client: victim, session } = await ApiClient.fresh(admin).login(user.email)
    expect((await victim.get("/api/v1/me")).status).toBe(200)
    expect((await owner.post(`/api/v1/users/${user.id}/disable`)).status).toBe(200)

    const me = await victim.get("/api/v1/me")
    expect([me.status, me.body.code]).toEqual([401, "ACCOUNT_DISABLED"])
    const login = await ApiClient.fresh(admin).post("/api/v1/auth/login", { email: user.email, password: PASSWORD })
    expect([login.status, login.body.code]).toEqual([401, "ACCOUNT_DISABLED"])
    const refresh = await ApiClient.fresh(admin).post("/api/v1/auth/refresh", { refreshToken: session.refreshToken })
    expect(refresh.status).toBe(401)

    expect((await owner.post(`/api/v1/users/${user.id}/enable`)).status).toBe(200)
    expect((await ApiClient.fresh(admin).login(user.email)).session.user.id).toBe(user.id)
  })

  it("an expired access token is refused with TOKEN_EXPIRED, a forged one with TOKEN_INVALID", async () => {
    const user = await createUser(admin, "admin")
    const expired = await admin.run(
      Effect.map(AccessTokens, (tokens) => tokens.issue({ id: user.id as UserId, role: "admin" }, Date.now() - tokens.ttlMs - 1000).token)
    )
    const client = ApiClient.fresh(admin)
    const response = await client.withToken(expired).get("/api/v1/me")
    expect(response.status).toBe(401)
    expect(response.body).toMatchObject({ _tag: "Unauthorized", code: "TOKEN_EXPIRED" })
    const forged = await client.withToken(`${expired.split(".").slice(0, 2).join(".")}.${"A".repeat(43)}`).get("/api/v1/me")
    expect([forged.status, forged.body.code]).toEqual([401, "TOKEN_INVALID"])
    const notBearer = await client.get("/api/v1/me", { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` })
    expect([notBearer.status, notBearer.body.code]).toEqual([401, "TOKEN_INVALID"])
  })
})

describe("passwords", () => {
  it("changing the password needs the current one, revokes the other sessions and returns a new one", async () => {
    const user = await createUser(admin, "viewer")
    const { client: laptop, session: laptopSession } = await ApiClient.fresh(admin).login(user.email)
    const { client: phone } = await ApiClient.fresh(admin).login(user.email)

    const wrong = await phone.post("/api/v1/me/password", { currentPassword: "nope", newPassword: "a brand new password" })
    expect([wrong.status, wrong.body.code]).toEqual([403, "WRONG_PASSWORD"])
    const weak = await phone.post("/api/v1/me/password", { currentPassword: PASSWORD, newPassword: "short" })
    expect([weak.status, weak.body.code]).toEqual([400, "VALIDATION_FAILED"])
    expect(weak.text).not.toContain("short\"")

    const changed = await phone.post("/api/v1/me/password", { currentPassword: PASSWORD, newPassword: "a brand new password" })
    expect(changed.status).toBe(200)
    expect((await phone.withToken(changed.body.accessToken).get("/api/v1/me")).status).toBe(200)
    // The laptop's access token and refresh token no longer work.
    expect((await laptop.get("/api/v1/me")).status).toBe(401)
    expect((await laptop.post("/api/v1/auth/refresh", { refreshToken: laptopSession.refreshToken })).status).toBe(401)
    const old = await ApiClient.fresh(admin).post("/api/v1/auth/login", { email: user.email, password: PASSWORD })
    expect(old.status).toBe(401)
    await ApiClient.fresh(admin).login(user.email, "a brand new password")
  })

  it("password reset: the mailed link works once, and signs out every session", async () => {
    const user = await createUser(admin, "admin")
    const { client: before } = await ApiClient.fresh(admin).login(user.email)
    const client = ApiClient.fresh(admin)
    const request = await client.post("/api/v1/auth/password-reset", { email: user.email })
    expect(request.status).toBe(202)
    const mail = await waitFor(() => admin.mail.find((m) => m.to === user.email))
    expect(mail.subject).toBe("Reset your NexMDM password")
    const token = /#token=(nxp_[A-Za-z0-9_-]{43})/.exec(mail.text)?.[1]
    expect(mail.text).toContain("http://localhost:3000/reset-password#token=")
    expect(token).toBeDefined()

    const confirm = await client.post("/api/v1/auth/password-reset/confirm", { token, password: "reset password 123" })
    expect(confirm.status).toBe(204)
    await ApiClient.fresh(admin).login(user.email, "reset password 123")
    expect((await before.get("/api/v1/me")).status).toBe(401)
    const again = await client.post("/api/v1/auth/password-reset/confirm", { token, password: "another password 456" })
    expect([again.status, again.body.code]).toEqual([401, "RESET_TOKEN_INVALID"])
    // The token is stored only as a hash.
    const stored = await query<{ n: number }>(`select count(*)::int as n from password_resets where token_hash::text like $1`, `%${token}%`)
    expect(stored[0]!.n).toBe(0)
  })

  it("an expired reset link is refused, and only the newest link works", async () => {
    const user = await createUser(admin, "viewer")
    const client = ApiClient.fresh(admin)
    const linkFor = async (count: number) => {
      await client.post("/api/v1/auth/password-reset", { email: user.email })
      const mails = await waitFor(() => {
        const sent = admin.mail.filter((m) => m.to === user.email)
        return sent.length >= count ? sent : undefined
      })
      return /#token=(nxp_[A-Za-z0-9_-]{43})/.exec(mails[count - 1]!.text)![1]!
    }
    const first = await linkFor(1)
    const second = await linkFor(2)
    const superseded = await client.post("/api/v1/auth/password-reset/confirm", { token: first, password: "password number one" })
    expect([superseded.status, superseded.body.code]).toEqual([401, "RESET_TOKEN_INVALID"])
    await query(`update password_resets set expires_at = now() - interval '1 second' where user_id = $1 and used_at is null`, user.id)
    const expired = await client.post("/api/v1/auth/password-reset/confirm", { token: second, password: "password number two" })
    expect([expired.status, expired.body.code]).toEqual([401, "RESET_TOKEN_INVALID"])
    await ApiClient.fresh(admin).login(user.email)
  })

  it("a reset request for an unknown email answers 202 too, and sends nothing", async () => {
    const before = admin.mail.length
    const response = await ApiClient.fresh(admin).post("/api/v1/auth/password-reset", { email: "stranger@example.com" })
    expect(response.status).toBe(202)
    await waitFor(async () => ((await auditOf("auth.password_reset_request", "failure")).length > 0 ? true : undefined))
    expect(admin.mail.length).toBe(before)
  })
})

describe("rate limits", () => {
  it("a login brute force from one address gets 429 with Retry-After; another address is unaffected", async () => {
    const user = await createUser(admin, "owner")
    const attacker = ApiClient.fresh(admin)
    const statuses: Array<number> = []
    let limited: Awaited<ReturnType<ApiClient["post"]>> | undefined
    for (let attempt = 0; attempt < 10; attempt++) {
      const response = await attacker.post("/api/v1/auth/login", { email: user.email, password: `guess ${attempt}` })
      statuses.push(response.status)
      if (response.status === 429) limited ??= response
    }
    // 5 failed password checks per minute per address (NEXMDM_SLOW_HASH_FAILURES_PER_IP_PER_MIN),
    // refused before the password is hashed; the RateLimit middleware's 10 requests come after.
    expect(statuses.slice(0, 5)).toEqual(Array(5).fill(401))
    expect(statuses.slice(5)).toEqual(Array(5).fill(429))
    expect(limited!.body).toMatchObject({ _tag: "TooManyRequests", code: "RATE_LIMITED" })
    const retryAfter = Number(limited!.headers.get("retry-after"))
    expect(retryAfter).toBeGreaterThanOrEqual(1)
    expect(retryAfter).toBeLessThanOrEqual(12)
    expect(limited!.body.retryAfterSeconds).toBe(retryAfter)
    // Even the right password waits now; from elsewhere it works.
    expect((await attacker.post("/api/v1/auth/login", { email: user.email, password: PASSWORD })).status).toBe(429)
    await ApiClient.fresh(admin).login(user.email)
  })

  it("only the last entry of the trusted proxy header counts (the client cannot pick its own bucket)", async () => {
    const user = await createUser(admin, "viewer")
    const proxy = ApiClient.fresh(admin)
    for (let attempt = 0; attempt < 5; attempt++) {
      // The client forges a different first entry every time; our proxy appends the real address.
      const response = await proxy.post("/api/v1/auth/login", { email: user.email, password: "x" }, { "x-forwarded-for": `203.0.113.${attempt}, ${proxy.ip}` })
      expect(response.status).toBe(401)
    }
    const next = await proxy.post("/api/v1/auth/login", { email: user.email, password: "x" }, { "x-forwarded-for": `203.0.113.99, ${proxy.ip}` })
    expect(next.status).toBe(429)
  })
})

describe("first owner", () => {
  it("is created from NEXMDM_OWNER_EMAIL / NEXMDM_OWNER_PASSWORD when no user exists, and only then", async () => {
    const { database: fresh, release } = await openDatabase()
    try {
      const first = await startAdmin(fresh, { ownerEmail: Option.some(" Owner@Example.com "), ownerPassword: Option.some(Redacted.make("first owner password")) })
      const { session } = await ApiClient.fresh(first).login("owner@example.com", "first owner password")
      expect(session.user.role).toBe("owner")
      await first.dispose()
      const second = await startAdmin(fresh, { ownerEmail: Option.some("other@example.com"), ownerPassword: Option.some(Redacted.make("second owner password")) })
      const users = await ApiClient.fresh(second).withToken((await ApiClient.fresh(second).login("owner@example.com", "first owner password")).session.accessToken).get("/api/v1/users")
      expect(users.body.map((u: { email: string }) => u.email)).toEqual(["owner@example.com"])
      await second.dispose()
    } finally {
      await release()
    }
  })
})
