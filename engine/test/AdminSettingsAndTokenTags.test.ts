/**
 * Two admin workflows the console offers: enrollment tokens that tag the devices they enrol, and a
 * test mail from Settings that proves the mail set-up (audited, admins only).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EnrollRequest } from "@nexmdm/protocol"
import { Enrollment } from "../src/Enrollment.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { type ApiClient, signedIn, startAdmin, type TestAdmin } from "./support/TestAdmin.js"
import { openDatabase } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let admin: TestAdmin
let owner: ApiClient
let viewer: ApiClient

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  admin = await startAdmin(database)
  owner = (await signedIn(admin, "owner")).client
  viewer = (await signedIn(admin, "viewer")).client
})

afterAll(async () => {
  await admin?.dispose()
  await release?.()
})

const tagsOf = (deviceId: string) =>
  admin
    .run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ tags: ReadonlyArray<string> }>`select tags from devices where id = ${deviceId}`))
    .then((rows) => rows[0]?.tags)

describe("enrollment token tags", () => {
  it("are stored with the token, listed, and applied to every device it enrols (merged on re-enrolment)", async () => {
    const created = await owner.post("/api/v1/enrollment-tokens", { maxUses: 3, label: "dock 3", tags: ["warehouse-3", "channel:beta", "warehouse-3"] })
    expect(created.status).toBe(201)
    expect(created.body.tags).toEqual(["warehouse-3", "channel:beta"])
    const listed = await owner.get("/api/v1/enrollment-tokens")
    expect(listed.body.find((token: { id: string }) => token.id === created.body.id).tags.sort()).toEqual(["channel:beta", "warehouse-3"])

    const enrol = (hardwareId: string, token: string) =>
      admin.run(Effect.flatMap(Enrollment, (enrollment) => enrollment.enroll(new EnrollRequest({ token, hardwareId }))))
    const first = await enrol("hw-tags-1", created.body.token)
    expect([...((await tagsOf(first.deviceId)) ?? [])].sort()).toEqual(["channel:beta", "warehouse-3"])

    const other = await owner.post("/api/v1/enrollment-tokens", { tags: ["kiosk"] })
    const again = await enrol("hw-tags-1", other.body.token)
    expect(again.deviceId).toBe(first.deviceId)
    expect([...((await tagsOf(first.deviceId)) ?? [])].sort()).toEqual(["channel:beta", "kiosk", "warehouse-3"])
  })

  it("refuse a tag with whitespace or a separator, naming the field", async () => {
    const refused = await owner.post("/api/v1/enrollment-tokens", { tags: ["two words"] })
    expect(refused.status).toBe(400)
    expect(refused.text).toContain("tags")
  })
})

describe("test mail from Settings", () => {
  it("goes through the mailer, says how it went, and is audited; viewers may not send one", async () => {
    const sent = await owner.post("/api/v1/console/test-mail", { to: "ops@example.com" })
    expect(sent.status).toBe(200)
    expect(sent.body).toEqual({ via: "outbox" })
    const mail = admin.mail.at(-1)!
    expect(mail.to).toBe("ops@example.com")
    expect(mail.subject).toBe("NexMDM test mail")
    const audit = await owner.get("/api/v1/audit?action=settings.test_mail")
    expect(audit.status).toBe(200)
    expect(JSON.stringify(audit.body)).toContain("ops@example.com")

    expect((await viewer.post("/api/v1/console/test-mail", { to: "ops@example.com" })).status).toBe(403)
    expect((await owner.post("/api/v1/console/test-mail", { to: "not an address" })).status).toBe(400)
  })
})
