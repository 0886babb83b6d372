import { SqlClient } from "@effect/sql"
import { Effect, Exit } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { routesOf } from "../src/admin/AccessPolicy.js"
import { Conflict } from "../src/admin/AdminErrors.js"
import { AdminApi } from "../src/admin/AdminApi.js"
import type { Actor } from "../src/admin/Audit.js"
import { Audit, type AuditContext } from "../src/admin/Audit.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { type ApiClient, signedIn, startAdmin, type TestAdmin } from "./support/TestAdmin.js"
import { openDatabase } from "./support/TestEngine.js"

let database: TestDatabase
let releaseDatabase: () => Promise<void>
let admin: TestAdmin
let owner: ApiClient
let ownerId: string

beforeAll(async () => {
  ;({ database, release: releaseDatabase } = await openDatabase())
  admin = await startAdmin(database)
  const signed = await signedIn(admin, "owner")
  owner = signed.client
  ownerId = signed.user.id
})

afterAll(async () => {
  await admin?.dispose()
  await releaseDatabase?.()
})

interface Row {
  action: string
  outcome: string
  actor_kind: string
  actor_id: string | null
  target_kind: string | null
  target_id: string | null
  source_ip: string | null
  detail: any
}

const auditRows = (where: string, ...params: Array<unknown>) =>
  admin.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.unsafe<Row>(`select action, outcome, actor_kind, actor_id, target_kind, target_id, source_ip, detail from audit_log where ${where} order by id`, params)
    )
  )

const keyExists = (name: string) =>
  admin.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`select count(*)::int as n from engine_keys where name = ${name}`)).then(
    (rows) => rows[0]!.n === 1
  )

const context: AuditContext = { actor: { kind: "system", id: null, label: "test" }, sourceIp: "192.0.2.1" }

describe("audit rows and transactions", () => {
  it("a change and its audit row commit together; a failed change leaves only a failure row", async () => {
    const change = (name: string, fail: boolean) =>
      Effect.gen(function* () {
        const audit = yield* Audit
        const sql = yield* SqlClient.SqlClient
        return yield* audit.inTransaction(
          context,
          { action: "test.change", target: { kind: "engine_key", id: name } },
          Effect.gen(function* () {
            yield* sql`insert into engine_keys (name, secret) values (${name}, ${Buffer.from("x")})`
            if (fail) return yield* new Conflict({ message: "refused after the insert" })
          })
        )
      }).pipe(Effect.exit)

    expect(Exit.isSuccess(await admin.run(change("kept", false)))).toBe(true)
    expect(await keyExists("kept")).toBe(true)
    expect(await auditRows(`action = 'test.change' and target_id = 'kept'`)).toEqual([
      expect.objectContaining({ outcome: "success", actor_kind: "system", source_ip: "192.0.2.1" })
    ])

    expect(Exit.isFailure(await admin.run(change("rolled-back", true)))).toBe(true)
    expect(await keyExists("rolled-back")).toBe(false)
    expect(await auditRows(`action = 'test.change' and target_id = 'rolled-back'`)).toEqual([
      expect.objectContaining({ outcome: "failure", detail: { error: "Conflict", code: "CONFLICT", message: "refused after the insert" } })
    ])
  })

  it("when the audit row cannot be written, the change is rolled back with it", async () => {
    const badActor = { kind: "robot", id: null, label: null } as unknown as Actor
    const exit = await admin.run(
      Effect.gen(function* () {
        const audit = yield* Audit
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(
          sql`insert into engine_keys (name, secret) values ('unaudited', ${Buffer.from("x")})`.pipe(
            Effect.zipLeft(audit.record({ actor: badActor, sourceIp: null, action: "test.unaudited", outcome: "success" }))
          )
        )
      }).pipe(Effect.exit)
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(await keyExists("unaudited")).toBe(false)
  })

  it("each API mutation writes one success row with actor, target and address", async () => {
    const created = await owner.post("/api/v1/enrollment-tokens", { maxUses: 5, label: "audited" })
    expect(created.status).toBe(201)
    expect((await owner.post(`/api/v1/enrollment-tokens/${created.body.id}/revoke`)).status).toBe(204)
    const rows = await auditRows(`target_id = $1`, created.body.id)
    expect(rows).toEqual([
      expect.objectContaining({
        action: "enrollment_token.create",
        outcome: "success",
        actor_kind: "user",
        actor_id: ownerId,
        target_kind: "enrollment_token",
        source_ip: owner.ip,
        detail: { maxUses: 5, expiresInSeconds: 86400, label: "audited", tags: [] }
      }),
      expect.objectContaining({ action: "enrollment_token.revoke", outcome: "success", actor_id: ownerId })
    ])
    // Never the token itself.
    expect(JSON.stringify(rows)).not.toContain(created.body.token.split(".")[1])
  })

  it("a failed API mutation writes a failure row and no success row", async () => {
    const missing = "et_0000000000000000"
    const response = await owner.post(`/api/v1/enrollment-tokens/${missing}/revoke`)
    expect([response.status, response.body.code]).toEqual([404, "NOT_FOUND"])
    expect(await auditRows(`target_id = $1`, missing)).toEqual([
      expect.objectContaining({ action: "enrollment_token.revoke", outcome: "failure", actor_id: ownerId, detail: expect.objectContaining({ code: "NOT_FOUND" }) })
    ])
  })
})

describe("audit API", () => {
  it("filters by time range, actor, action (exact or prefix), target and outcome", async () => {
    const start = new Date(Date.now() - 1000).toISOString()
    const { client: other, user: otherUser } = await signedIn(admin, "admin")
    const token = (await other.post("/api/v1/enrollment-tokens", { label: "filter" })).body
    await other.post("/api/v1/enrollment-tokens/et_1111111111111111/revoke")
    const page = async (query: string) => {
      const response = await owner.get(`/api/v1/audit?${query}`)
      expect(response.status).toBe(200)
      return response.body as { items: Array<{ action: string; outcome: string; actorId: string; targetId: string }>; nextCursor: string | null }
    }

    const byActor = await page(`actorKind=user&actorId=${otherUser.id}`)
    expect(byActor.items.map((item) => [item.action, item.outcome])).toEqual([
      ["enrollment_token.revoke", "failure"],
      ["enrollment_token.create", "success"],
      ["auth.login", "success"]
    ])
    expect((await page(`action=enrollment_token.create&actorId=${otherUser.id}`)).items).toHaveLength(1)
    expect((await page(`action=enrollment_token.&actorId=${otherUser.id}`)).items).toHaveLength(2)
    expect((await page(`targetKind=enrollment_token&targetId=${token.id}`)).items.map((item) => item.action)).toEqual(["enrollment_token.create"])
    expect((await page(`outcome=failure&actorId=${otherUser.id}`)).items.map((item) => item.targetId)).toEqual(["et_1111111111111111"])
    expect((await page(`from=${encodeURIComponent(start)}&actorId=${otherUser.id}`)).items).toHaveLength(3)
    expect((await page(`to=${encodeURIComponent(start)}&actorId=${otherUser.id}`)).items).toHaveLength(0)
    expect((await page(`from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).items).toHaveLength(0)

    const bad = await owner.get("/api/v1/audit?outcome=maybe&limit=0")
    expect([bad.status, bad.body.code]).toEqual([400, "VALIDATION_FAILED"])
  })

  it("the cursor pages through every row once, newest first", async () => {
    const all = (await owner.get("/api/v1/audit?limit=500")).body.items as Array<{ id: string }>
    expect(all.length).toBeGreaterThan(8)
    const seen: Array<string> = []
    let cursor: string | null = null
    do {
      const response: { body: { items: Array<{ id: string }>; nextCursor: string | null } } = await owner.get(
        `/api/v1/audit?limit=3${cursor === null ? "" : `&cursor=${cursor}`}`
      )
      seen.push(...response.body.items.map((item) => item.id))
      cursor = response.body.nextCursor
    } while (cursor !== null)
    expect(seen.slice(0, all.length)).toEqual(all.map((item) => item.id))
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen.map(Number)).toEqual([...seen.map(Number)].sort((a, b) => b - a))
  })

  it("there is no route that changes or deletes audit rows", async () => {
    const auditRoutes = routesOf(AdminApi).filter((route) => route.path.startsWith("/api/v1/audit"))
    expect(auditRoutes.map((route) => `${route.method} ${route.path}`)).toEqual(["GET /api/v1/audit"])
    const anyId = (await owner.get("/api/v1/audit?limit=1")).body.items[0].id
    for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
      for (const path of ["/api/v1/audit", `/api/v1/audit/${anyId}`]) {
        const response = await owner.request(method, path, method === "DELETE" ? undefined : {})
        expect({ method, path, status: response.status }).toEqual({ method, path, status: 404 })
      }
    }
  })
})
