/**
 * The password-reset flow end to end through a real SMTP server: the engine's SmtpMailer
 * (nodemailer) delivers the link, the link resets the password once.
 */
import { Option, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as SmtpMailer from "../src/mail/SmtpMailer.js"
import { SmtpTestServer } from "./support/SmtpTestServer.js"
import { ApiClient, createUser, startAdmin, type TestAdmin, waitFor } from "./support/TestAdmin.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { openDatabase } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let smtp: SmtpTestServer
let admin: TestAdmin

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  smtp = await SmtpTestServer.start()
  admin = await startAdmin(database, { smtpUrl: Option.some(Redacted.make(smtp.url())) }, { mailer: SmtpMailer.layer })
})

afterAll(async () => {
  await admin?.dispose()
  await smtp?.close()
  await release?.()
})

describe("password reset through SMTP", () => {
  it("mails a single-use link that resets the password", async () => {
    const user = await createUser(admin, "admin")
    const client = ApiClient.fresh(admin)
    expect((await client.post("/api/v1/auth/password-reset", { email: user.email })).status).toBe(202)
    const mail = await waitFor(() => smtp.received.find((m) => m.to.includes(user.email)))
    expect(mail.subject).toBe("Reset your NexMDM password")
    const token = /#token=(nxp_[A-Za-z0-9_-]{43})/.exec(mail.text)?.[1]
    expect(token).toBeDefined()
    expect((await client.post("/api/v1/auth/password-reset/confirm", { token, password: "reset over smtp 123" })).status).toBe(204)
    await ApiClient.fresh(admin).login(user.email, "reset over smtp 123")
    const again = await client.post("/api/v1/auth/password-reset/confirm", { token, password: "another password 456" })
    expect(again.status).toBe(401)
  })
})
