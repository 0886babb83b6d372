/**
 * The `Mailer` over SMTP (nodemailer), with every mail recorded in `mail_outbox`.
 *
 * With NEXMDM_SMTP_URL set, a mail is recorded, handed to the SMTP server, and its row updated with
 * `sent_at` or the last `error` and the number of `attempts`. Transient failures (no connection,
 * timeouts, 4xx replies) are retried NEXMDM_MAIL_RETRIES times with exponential backoff; a 5xx
 * reply or a refused login is final.
 * Without it (the embedded default) the row is the mail: it stays unsent, and the log says that a
 * mail was queued, to whom and with what subject. Never the body: it may hold a reset link.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Option, Redacted, Schedule } from "effect"
import nodemailer from "nodemailer"
import type SMTPTransport from "nodemailer/lib/smtp-transport/index.js"
import { type Mail, MailError, Mailer } from "../admin/Mailer.js"
import { EngineConfig } from "../EngineConfig.js"

/** nodemailer error codes that mean "try again later" rather than "this mail cannot go". */
const transientCodes = new Set(["ECONNECTION", "ETIMEDOUT", "ESOCKET", "EDNS", "ECONNREFUSED", "ECONNRESET", "EPIPE"])

/** A 4xx reply, or no reply at all because the connection failed. */
export const isTransient = (error: unknown): boolean => {
  const { code, responseCode } = (error ?? {}) as { code?: unknown; responseCode?: unknown }
  if (typeof responseCode === "number") return responseCode >= 400 && responseCode < 500
  return typeof code === "string" && transientCodes.has(code)
}

/** What the outbox and the log keep of an SMTP failure (nodemailer messages carry no credentials). */
const describeError = (error: unknown): string => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  const text = typeof message === "string" ? message : String(error)
  return typeof code === "string" && !text.startsWith(code) ? `${code}: ${text}` : text
}

const recipientsOf = (mail: Mail): ReadonlyArray<string> => (typeof mail.to === "string" ? [mail.to] : mail.to)

const describeUrl = (url: string) => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.hostname}:${parsed.port || (parsed.protocol === "smtps:" ? "465" : "587")}`
  } catch {
    return "(unparseable NEXMDM_SMTP_URL)"
  }
}

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient

  const transport = yield* Option.match(config.smtpUrl, {
    onNone: () =>
      Effect.as(
        Effect.logWarning("no SMTP server configured (NEXMDM_SMTP_URL): mails are kept in the mail_outbox table, unsent").pipe(
          Effect.annotateLogs({ module: "Mailer" })
        ),
        Option.none<nodemailer.Transporter<SMTPTransport.SentMessageInfo>>()
      ),
    onSome: (url) =>
      Effect.acquireRelease(
        Effect.sync(() =>
          nodemailer.createTransport({
            url: Redacted.value(url),
            ignoreTLS: config.smtpTls === "none",
            requireTLS: config.smtpTls === "required",
            tls: { rejectUnauthorized: config.smtpTlsVerify },
            connectionTimeout: 10_000,
            greetingTimeout: 10_000,
            socketTimeout: 60_000
          } satisfies SMTPTransport.Options)
        ),
        (transport) => Effect.sync(() => transport.close())
      ).pipe(
        Effect.tap(Effect.logInfo("mail goes through SMTP").pipe(
          Effect.annotateLogs({ module: "Mailer", smtp: describeUrl(Redacted.value(url)) })
        )),
        Effect.map(Option.some)
      )
  })

  const record = (mail: Mail, to: ReadonlyArray<string>) =>
    sql<{ id: string }>`insert into mail_outbox (to_addresses, subject, text_body, html_body)
      values (${to}, ${mail.subject}, ${mail.text}, ${mail.html ?? null}) returning id`.pipe(
      Effect.map((rows) => rows[0]!.id)
    )

  const retryPolicy = Schedule.exponential(config.mailRetryDelay, 2)

  const deliver = (smtp: nodemailer.Transporter<SMTPTransport.SentMessageInfo>, mail: Mail, to: ReadonlyArray<string>) => {
    let attempts = 0
    return Effect.suspend(() => {
      attempts++
      return Effect.tryPromise({
        try: () => smtp.sendMail({ from: config.mailFrom, to: [...to], subject: mail.subject, text: mail.text, ...(mail.html === undefined ? {} : { html: mail.html }) }),
        catch: (cause) => cause
      })
    }).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("SMTP send failed").pipe(
          Effect.annotateLogs({ attempt: attempts, error: describeError(error), transient: isTransient(error) })
        )
      ),
      Effect.retry({ schedule: retryPolicy, times: config.mailRetries, while: isTransient }),
      Effect.either,
      Effect.map((result) => ({ result, attempts }))
    )
  }

  const markOutcome = (outboxId: string, attempts: number, error: string | null) =>
    (error === null
      ? sql`update mail_outbox set attempts = ${attempts}, sent_at = now(), error = null where id = ${outboxId}`
      : sql`update mail_outbox set attempts = ${attempts}, error = ${error} where id = ${outboxId}`
    ).pipe(Effect.catchAll((cause) => Effect.logWarning("mail outcome not recorded in mail_outbox", cause)))

  const send = Effect.fn("Mailer.send")(
    function* (mail: Mail) {
      const to = recipientsOf(mail)
      if (to.length === 0) return yield* new MailError({ message: "mail without recipients", cause: undefined })
      const recorded = yield* Effect.either(record(mail, to))
      const outboxId = Option.getRight(recorded)
      yield* Effect.annotateLogsScoped({ outboxId: Option.getOrNull(outboxId), to: to.join(", "), subject: mail.subject })
      if (Option.isNone(transport)) {
        if (recorded._tag === "Left") {
          return yield* new MailError({ message: "no SMTP server configured and the mail could not be queued", cause: recorded.left })
        }
        yield* Effect.logInfo("mail queued in mail_outbox (no SMTP server configured)")
        return
      }
      if (recorded._tag === "Left") yield* Effect.logWarning("mail not recorded in mail_outbox; sending anyway", recorded.left)
      const { result, attempts } = yield* deliver(transport.value, mail, to)
      const error = result._tag === "Left" ? describeError(result.left) : null
      if (Option.isSome(outboxId)) yield* markOutcome(outboxId.value, attempts, error)
      if (result._tag === "Left") {
        yield* Effect.logError("mail not sent").pipe(Effect.annotateLogs({ attempts, error }))
        return yield* new MailError({ message: `mail not sent after ${attempts} attempt(s): ${error}`, cause: result.left })
      }
      yield* Effect.logDebug("mail sent").pipe(Effect.annotateLogs({ attempts }))
    },
    Effect.scoped,
    Effect.annotateLogs({ module: "Mailer" })
  )

  return Mailer.of({ send })
})

/** The Mailer from the engine's config. */
export const layer = Layer.scoped(Mailer, make)
