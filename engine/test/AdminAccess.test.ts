import { HttpApi, HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { accessPolicy, policyProblems, type RouteEntry, routesOf } from "../src/admin/AccessPolicy.js"
import { AdminApi } from "../src/admin/AdminApi.js"
import { protectedGroup, publicGroup } from "../src/admin/api/Middleware.js"
import { type Requirement, roleRank } from "../src/admin/Principal.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { ApiClient, createUser, signedIn, startAdmin, type TestAdmin, waitFor } from "./support/TestAdmin.js"
import { openDatabase } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin
let owner: ApiClient
let viewer: ApiClient

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  admin = await startAdmin(database)
  owner = (await signedIn(admin, "owner")).client
  viewer = (await signedIn(admin, "viewer")).client
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
})

const routes = routesOf(AdminApi)

/** A concrete URL for a route template (ids only need to match the router, not a row). */
const urlOf = (route: RouteEntry) =>
  route.path
    .replace(":id", route.key.startsWith("users.") ? "usr_aaaaaaaaaaaaaaaaaaaa" : route.key.startsWith("apiKeys.") ? "ak_aaaaaaaaaaaaaaaaaaaa" : "et_aaaaaaaaaaaaaaaa")

const call = (client: ApiClient, route: RouteEntry) => client.request(route.method, urlOf(route), route.method === "GET" ? undefined : {})

/** Routes a viewer may use although they are not reads: changing one's own password. */
const selfService = new Set(["me.changePassword"])

const createKey = async (scopes: ReadonlyArray<string>) => {
  const response = await owner.post("/api/v1/api-keys", { name: `key ${scopes.join(" ")}`, scopes })
  expect(response.status).toBe(201)
  return response.body as { id: string; key: string; prefix: string; scopes: Array<string> }
}

describe("access policy", () => {
  it("every route of the API has a rule, and exactly the public routes go without authentication", () => {
    expect(policyProblems(AdminApi)).toEqual([])
    expect(routes.map((route) => route.key).sort()).toEqual(Object.keys(accessPolicy).sort())
    expect(routes.filter((route) => route.requirement?._tag === "Public").map((route) => route.key)).toEqual([
      "auth.login",
      "auth.refresh",
      "auth.logout",
      "auth.requestPasswordReset",
      "auth.resetPassword"
    ])
  })

  it("start-up finds a route without a rule, or whose middlewares contradict its rule", () => {
    const careless = HttpApi.make("careless")
      .add(publicGroup("users").add(HttpApiEndpoint.get("list", "/users")))
      .add(protectedGroup("auth").add(HttpApiEndpoint.post("login", "/login")))
      .add(HttpApiGroup.make("audit").add(HttpApiEndpoint.get("list", "/audit")).add(HttpApiEndpoint.del("purge", "/audit")))
    expect(policyProblems(careless)).toEqual([
      "users.list (GET /users) needs credentials in AccessPolicy but lacks the Authentication middleware",
      "auth.login (POST /login) is public in AccessPolicy but has the Authentication middleware",
      "audit.list (GET /audit) lacks the RateLimit middleware",
      "audit.list (GET /audit) needs credentials in AccessPolicy but lacks the Authentication middleware",
      "audit.purge (DELETE /audit) has no entry in AccessPolicy"
    ])
  })

  it("every mutating route needs more than a viewer, except changing one's own password", () => {
    const mutating = routes.filter((route) => route.method !== "GET" && route.requirement?._tag === "Authenticated")
    expect(mutating.length).toBeGreaterThan(5)
    for (const route of mutating) {
      const requirement = route.requirement as Extract<Requirement, { _tag: "Authenticated" }>
      if (selfService.has(route.key)) continue
      expect({ route: route.key, needs: requirement.users }).not.toEqual({ route: route.key, needs: "viewer" })
    }
  })

  describe.each(routes.filter((route) => route.requirement?._tag === "Authenticated").map((route) => [`${route.method} ${route.path} (${route.key})`, route] as const))(
    "%s",
    (_, route) => {
      const requirement = route.requirement as Extract<Requirement, { _tag: "Authenticated" }>

      it("answers 401 UNAUTHORIZED without credentials, and with a bad token or key", async () => {
        const anonymous = ApiClient.fresh(admin)
        const responses = [await call(anonymous, route), await call(anonymous.withToken("nope"), route), await call(anonymous.withKey("nxk_nope"), route)]
        expect(responses.map((response) => response.status)).toEqual([401, 401, 401])
        expect(responses.map((response) => response.body.code)).toEqual(["UNAUTHORIZED", "TOKEN_INVALID", "API_KEY_INVALID"])
      })

      const viewerAllowed = requirement.users !== "nobody" && roleRank[requirement.users] <= roleRank.viewer
      it(viewerAllowed ? "lets a viewer through" : "answers 403 to a viewer, and audits the refusal", async () => {
        const response = await call(viewer, route)
        if (viewerAllowed) {
          expect([401, 403]).not.toContain(response.status)
        } else {
          expect(response.status).toBe(403)
          expect(response.body).toMatchObject({ _tag: "Forbidden", code: "INSUFFICIENT_ROLE" })
          const denied = await admin.run(
            Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`select count(*)::int as n from audit_log
              where action = 'access.denied' and target_id = ${route.key} and outcome = 'failure'`)
          )
          expect(denied[0]!.n).toBeGreaterThan(0)
        }
      })
    }
  )
})

describe("API keys", () => {
  it("a key with `read` reads but cannot create enrollment tokens; one with `tokens:write` can", async () => {
    const reader = ApiClient.fresh(admin).withKey((await createKey(["read"])).key)
    expect((await reader.get("/api/v1/enrollment-tokens")).status).toBe(200)
    const refused = await reader.post("/api/v1/enrollment-tokens", { maxUses: 2 })
    expect(refused.status).toBe(403)
    expect(refused.body).toMatchObject({ _tag: "Forbidden", code: "INSUFFICIENT_SCOPE" })

    const writer = ApiClient.fresh(admin).withKey((await createKey(["tokens:write"])).key)
    const created = await writer.post("/api/v1/enrollment-tokens", { maxUses: 2, label: "by key" })
    expect(created.status).toBe(201)
    expect(created.body.token).toMatch(/^et_[0-9a-z]{16}\./)
    expect((await writer.post(`/api/v1/enrollment-tokens/${created.body.id}/revoke`)).status).toBe(204)
  })

  it("the key is shown once and stored as a hash; a revoked key gets 401 API_KEY_REVOKED", async () => {
    const created = await createKey(["read", "tokens:write", "read"])
    expect(created.scopes).toEqual(["read", "tokens:write"])
    expect(created.key).toMatch(/^nxk_[0-9a-z]{10}_[A-Za-z0-9_-]{43}$/)
    expect(created.key.startsWith(`nxk_${created.prefix}_`)).toBe(true)
    const listed = await owner.get("/api/v1/api-keys")
    expect(listed.text).not.toContain(created.key.slice(15))
    expect(listed.body.find((key: { id: string }) => key.id === created.id)).toMatchObject({ scopes: ["read", "tokens:write"], revokedAt: null })

    const client = ApiClient.fresh(admin).withKey(created.key)
    expect((await client.get("/api/v1/users")).status).toBe(200)
    expect((await owner.post(`/api/v1/api-keys/${created.id}/revoke`)).status).toBe(200)
    const after = await client.get("/api/v1/users")
    expect([after.status, after.body.code]).toEqual([401, "API_KEY_REVOKED"])
    const again = await owner.post(`/api/v1/api-keys/${created.id}/revoke`)
    expect([again.status, again.body.code]).toEqual([409, "ALREADY_REVOKED"])
    // The right prefix with a wrong secret is just unknown.
    const forged = await ApiClient.fresh(admin).withKey(`nxk_${created.prefix}_${"A".repeat(43)}`).get("/api/v1/users")
    expect([forged.status, forged.body.code]).toEqual([401, "API_KEY_INVALID"])
  })

  it("records the key's last use (once a minute at most, not on every request)", async () => {
    const created = await createKey(["read"])
    const client = ApiClient.fresh(admin).withKey(created.key)
    for (let i = 0; i < 5; i++) expect((await client.get("/api/v1/enrollment-tokens")).status).toBe(200)
    const used = await waitFor(async () => {
      const key = (await owner.get("/api/v1/api-keys")).body.find((k: { id: string }) => k.id === created.id)
      return key.lastUsedAt === null ? undefined : key
    })
    expect(used.lastUsedIp).toBe(client.ip)
    const firstUse = used.lastUsedAt
    await client.get("/api/v1/enrollment-tokens")
    await new Promise((resolve) => setTimeout(resolve, 100))
    const later = (await owner.get("/api/v1/api-keys")).body.find((k: { id: string }) => k.id === created.id)
    expect(later.lastUsedAt).toBe(firstUse)
  })

  it("keys cannot manage keys or change roles, even with the admin scope", async () => {
    const key = ApiClient.fresh(admin).withKey((await createKey(["admin"])).key)
    expect((await key.get("/api/v1/users")).status).toBe(200)
    expect((await key.get("/api/v1/audit")).status).toBe(200)
    for (const response of [
      await key.get("/api/v1/api-keys"),
      await key.post("/api/v1/api-keys", { name: "escalate", scopes: ["admin"] }),
      await key.put("/api/v1/users/usr_aaaaaaaaaaaaaaaaaaaa/role", { role: "owner" }),
      await key.post("/api/v1/me/password", { currentPassword: "x", newPassword: "xxxxxxxxxxxxxxxx" })
    ]) {
      expect([response.status, response.body.code]).toEqual([403, "USERS_ONLY"])
    }
    expect((await key.get("/api/v1/me")).body).toMatchObject({ _tag: "api_key", scopes: ["admin"] })
  })
})

describe("user management", () => {
  it("an admin creates viewers, but only an owner creates admins and owners", async () => {
    const { client: adminClient } = await signedIn(admin, "admin")
    const viewerBody = { email: `v-${Date.now()}@example.com`, displayName: "V", role: "viewer", password: "a good long password" }
    expect((await adminClient.post("/api/v1/users", viewerBody)).status).toBe(201)
    const promoted = await adminClient.post("/api/v1/users", { ...viewerBody, email: `a-${Date.now()}@example.com`, role: "admin" })
    expect([promoted.status, promoted.body.code]).toEqual([403, "INSUFFICIENT_ROLE"])
    const byOwner = await owner.post("/api/v1/users", { ...viewerBody, email: `A-${Date.now()}@Example.com`, role: "admin" })
    expect(byOwner.status).toBe(201)
    expect(byOwner.body.email).toBe(byOwner.body.email.toLowerCase())
    const duplicate = await owner.post("/api/v1/users", { ...viewerBody, email: byOwner.body.email.toUpperCase() })
    expect([duplicate.status, duplicate.body.code]).toEqual([409, "EMAIL_TAKEN"])
    // An admin cannot disable an admin either.
    const disable = await adminClient.post(`/api/v1/users/${byOwner.body.id}/disable`)
    expect([disable.status, disable.body.code]).toEqual([403, "INSUFFICIENT_ROLE"])
  })

  it("never leaves no active owner, and nobody disables their own account", async () => {
    const { database: fresh, release } = await openDatabase()
    const lone = await startAdmin(fresh)
    try {
      const { client, user } = await signedIn(lone, "owner")
      const demote = await client.put(`/api/v1/users/${user.id}/role`, { role: "admin" })
      expect([demote.status, demote.body.code]).toEqual([409, "LAST_OWNER"])
      const disable = await client.post(`/api/v1/users/${user.id}/disable`)
      expect([disable.status, disable.body.code]).toEqual([409, "SELF_CHANGE"])
      const second = await createUser(lone, "owner")
      expect((await client.put(`/api/v1/users/${second.id}/role`, { role: "viewer" })).status).toBe(200)
      const missing = await client.put(`/api/v1/users/usr_aaaaaaaaaaaaaaaaaaaa/role`, { role: "viewer" })
      expect([missing.status, missing.body.code]).toEqual([404, "NOT_FOUND"])
    } finally {
      await lone.dispose()
      await release()
    }
  })

  it("a role change takes effect at once: tokens issued before it stop working", async () => {
    const { client: demoted, user } = await signedIn(admin, "admin")
    expect((await demoted.post("/api/v1/enrollment-tokens", {})).status).toBe(201)
    expect((await owner.put(`/api/v1/users/${user.id}/role`, { role: "viewer" })).body.role).toBe("viewer")
    const stale = await demoted.post("/api/v1/enrollment-tokens", {})
    expect([stale.status, stale.body.code]).toEqual([401, "SESSION_REVOKED"])
    const { client: fresh } = await ApiClient.fresh(admin).login(user.email)
    expect((await fresh.post("/api/v1/enrollment-tokens", {})).status).toBe(403)
  })
})
