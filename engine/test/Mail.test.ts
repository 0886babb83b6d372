/**
 * The SMTP mailer against a real SMTP server started by the test: delivery with the URL's
 * credentials, retry of transient failures with backoff, final failures recorded in mail_outbox,
 * and the embedded default without SMTP (the outbox row is the mail, the log never shows a body).
 */
import { it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect } from "vitest"
import { Mailer } from "../src/admin/Mailer.js"
import * as Database from "../src/Database.js"
import type { EngineConfigShape } from "../src/EngineConfig.js"
import * as SmtpMailer from "../src/mail/SmtpMailer.js"
import { closedPort, SmtpTestServer } from "./support/SmtpTestServer.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import { openDatabase, testConfig } from "./support/TestEngine.js"

let database: TestDatabase
let release: () => Promise<void>
let smtp: SmtpTestServer
let downPort: number
const credentials = { user: "mailer", pass: "p@ss:word" }

beforeAll(async () => {
  ;({ database, release } = await openDatabase())
  smtp = await SmtpTestServer.start(credentials)
  downPort = await closedPort()
})

afterAll(async () => {
  await smtp?.close()
  await release?.()
})

/** Mailer + SqlClient on the test database; log lines (logfmt) go to `logs` when given. */
const mailer = (overrides: Partial<EngineConfigShape>, logs?: Array<string>) =>
  SmtpMailer.layer.pipe(
    Layer.provideMerge(Database.layer),
    Layer.provideMerge(testConfig(database, { mailRetryDelay: Duration.millis(20), ...overrides })),
    Layer.provide(
      logs === undefined
        ? Logger.minimumLogLevel(LogLevel.None)
        : Layer.merge(
            Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (line) => void logs.push(line))),
            Logger.minimumLogLevel(LogLevel.Debug)
          )
    )
  )

const viaSmtp = (url: string, overrides: Partial<EngineConfigShape> = {}) => mailer({ smtpUrl: Option.some(Redacted.make(url)), ...overrides })

const outboxRow = (subject: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ to_addresses: Array<string>; text_body: string; sent_at: Date | null; error: string | null; attempts: number }>`
      select to_addresses, text_body, sent_at, error, attempts from mail_outbox where subject = ${subject}`
  )

describe("SMTP mailer", () => {
  it.live("hands a mail to the SMTP server, logged in with the URL's credentials, and records it as sent", () =>
    Effect.gen(function* () {
      const subject = "Reset your NexMDM password"
      const text = "Open https://console.example/reset#token=r3set-s3cret within an hour.\nThis link works once."
      yield* Effect.flatMap(Mailer, (m) => m.send({ to: "ops@example.com", subject, text }))
      const received = smtp.received.filter((mail) => mail.subject === subject)
      expect(received).toHaveLength(1)
      expect(received[0]).toMatchObject({ to: ["ops@example.com"], from: "nexmdm@localhost", user: "mailer", subject, text })
      const rows = yield* outboxRow(subject)
      expect(rows).toEqual([{ to_addresses: ["ops@example.com"], text_body: text, sent_at: expect.any(Date), error: null, attempts: 1 }])
    }).pipe(Effect.provide(viaSmtp(smtp.url(credentials)))))

  it.live("retries a 451 (try later) reply with backoff, then delivers", () =>
    Effect.gen(function* () {
      const subject = "retried after 451"
      smtp.refuseNext.push(451)
      yield* Effect.flatMap(Mailer, (m) => m.send({ to: "ops@example.com", subject, text: "second time lucky" }))
      expect(smtp.received.filter((mail) => mail.subject === subject).map((mail) => mail.text)).toEqual(["second time lucky"])
      const [row] = yield* outboxRow(subject)
      expect(row).toMatchObject({ attempts: 2, error: null, sent_at: expect.any(Date) })
    }).pipe(Effect.provide(viaSmtp(smtp.url()))))

  it.live("a 550 (no such mailbox) reply is final: not retried, recorded as the error", () =>
    Effect.gen(function* () {
      const subject = "refused with 550"
      smtp.refuseNext.push(550)
      const before = smtp.recipientAttempts
      const error = yield* Effect.flip(Effect.flatMap(Mailer, (m) => m.send({ to: "nobody@example.com", subject, text: "x" })))
      expect(error._tag).toBe("MailError")
      expect(smtp.recipientAttempts - before).toBe(1)
      const [row] = yield* outboxRow(subject)
      expect(row).toMatchObject({ attempts: 1, sent_at: null })
      expect(row!.error).toContain("550")
    }).pipe(Effect.provide(viaSmtp(smtp.url()))))

  it.live("with the SMTP server down, retries with backoff and then records the error", () =>
    Effect.gen(function* () {
      const subject = "smtp is down"
      const started = Date.now()
      const error = yield* Effect.flip(Effect.flatMap(Mailer, (m) => m.send({ to: "ops@example.com", subject, text: "lost?" })))
      const elapsed = Date.now() - started
      expect(error.message).toMatch(/after 3 attempt\(s\)/)
      // Waits of 20 ms then 40 ms between the three attempts.
      expect(elapsed).toBeGreaterThanOrEqual(60)
      const [row] = yield* outboxRow(subject)
      expect(row).toMatchObject({ attempts: 3, sent_at: null, text_body: "lost?" })
      expect(row!.error).toMatch(/ECONNREFUSED|ECONNECTION|ESOCKET/)
    }).pipe(Effect.provide(viaSmtp(`smtp://127.0.0.1:${downPort}`, { mailRetries: 2 }))))

  it.live("without SMTP, keeps the mail in mail_outbox and logs recipient and subject, never the body", () => {
    const logs: Array<string> = []
    return Effect.gen(function* () {
      const subject = "Welcome to NexMDM"
      const text = "Set your password: https://console.example/invite#token=inv1te-s3cret"
      yield* Effect.flatMap(Mailer, (m) => m.send({ to: ["a@example.com", "b@example.com"], subject, text }))
      const rows = yield* outboxRow(subject)
      expect(rows).toEqual([{ to_addresses: ["a@example.com", "b@example.com"], text_body: text, sent_at: null, error: null, attempts: 0 }])
      const queued = logs.filter((line) => line.includes("mail queued"))
      expect(queued).toHaveLength(1)
      expect(queued[0]).toContain(subject)
      expect(queued[0]).toContain("a@example.com, b@example.com")
      expect(logs.join("\n")).not.toContain("inv1te-s3cret")
    }).pipe(Effect.provide(mailer({ smtpUrl: Option.none() }, logs)))
  })
})
