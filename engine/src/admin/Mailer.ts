/**
 * Outgoing mail, as the rest of the engine sees it: password resets, invitations and alert digests
 * all go through `Mailer.send`. The implementation (SMTP through nodemailer, or the `mail_outbox`
 * table when no SMTP server is configured) is `mail/SmtpMailer.ts`.
 */
import { Context, Data, type Effect } from "effect"

/** The mail could not be handed to the SMTP server (after retries) or recorded. */
export class MailError extends Data.TaggedError("MailError")<{
  readonly message: string
  readonly cause: unknown
}> {}

export interface Mail {
  /** One address or several (every recipient sees the others). */
  readonly to: string | ReadonlyArray<string>
  readonly subject: string
  readonly text: string
  readonly html?: string | undefined
}

export class Mailer extends Context.Tag("@nexmdm/engine/Mailer")<
  Mailer,
  {
    /** Sends one mail; completes once the SMTP server accepted it (or it was queued in the outbox). */
    readonly send: (mail: Mail) => Effect.Effect<void, MailError>
  }
>() {}
