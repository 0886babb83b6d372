/**
 * Read-only views the web console needs beyond the resource APIs.
 *
 *   GET /console/bulk-jobs?limit                -> BulkJobSummary[] (newest first, with per-status counts)
 *   GET /console/bulk-jobs/:jobId/commands      -> BulkJobCommand[] (one row per targeted device)
 *   GET /console/enrollment-tokens/:id/devices  -> TokenDevice[] (the devices that enrolled with it)
 *   GET /console/status                         -> ConsoleStatus (mail and push set-up, push sends of the last day)
 *   POST /console/test-mail {to}                -> TestMailSent (admins: proves the SMTP set-up from Settings)
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { NotFound } from "../AdminErrors.js"
import { Email } from "../AdminModel.js"
import { protectedGroup } from "./Middleware.js"

const BulkJobIdParam = Schema.String.pipe(Schema.pattern(/^bulk_[0-9a-z]{20}$/)).annotations({ identifier: "BulkJobId" })

export class BulkJobSummary extends Schema.Class<BulkJobSummary>("BulkJobSummary")({
  id: Schema.String,
  commandType: Schema.String,
  target: Schema.Unknown,
  total: Schema.Int,
  createdBy: Schema.String,
  createdAt: Schema.Date,
  byStatus: Schema.Record({ key: Schema.String, value: Schema.Int })
}) {}

export class BulkJobCommand extends Schema.Class<BulkJobCommand>("BulkJobCommand")({
  commandId: Schema.String,
  deviceId: Schema.String,
  deviceName: Schema.NullOr(Schema.String),
  status: Schema.String,
  completedAt: Schema.NullOr(Schema.Date),
  error: Schema.NullOr(Schema.String),
  result: Schema.Unknown
}) {}

export class TokenDevice extends Schema.Class<TokenDevice>("TokenDevice")({
  id: Schema.String,
  name: Schema.NullOr(Schema.String),
  hardwareId: Schema.String,
  model: Schema.NullOr(Schema.String),
  enrolledAt: Schema.Date,
  retiredAt: Schema.NullOr(Schema.Date)
}) {}

const EnrollmentTokenIdParam = Schema.String.pipe(Schema.pattern(/^et_[0-9a-z]{16}$/)).annotations({ identifier: "EnrollmentTokenId" })

export class ConsoleStatus extends Schema.Class<ConsoleStatus>("ConsoleStatus")({
  retentionHours: Schema.Int,
  mail: Schema.Struct({ smtpConfigured: Schema.Boolean, from: Schema.String }),
  push: Schema.Struct({
    configured: Schema.Boolean,
    /** FCM sends of the last 24 hours by outcome. */
    lastDay: Schema.Record({ key: Schema.String, value: Schema.Int })
  })
}) {}

export const ListBulkJobs = Schema.Struct({
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 200)), { default: () => 50 })
})

export class TestMailSent extends Schema.Class<TestMailSent>("TestMailSent")({
  /** "smtp": the SMTP server accepted it; "outbox": no SMTP server is configured, it was only recorded. */
  via: Schema.Literal("smtp", "outbox")
}) {}

/** 502: the SMTP server refused the mail or could not be reached (after the mailer's retries). */
export class MailNotSent extends Schema.TaggedError<MailNotSent>()(
  "MailNotSent",
  { code: Schema.Literal("MAIL_NOT_SENT"), message: Schema.String },
  HttpApiSchema.annotations({ status: 502, description: "The SMTP server did not accept the mail" })
) {}

export class ConsoleGroup extends protectedGroup("console")
  .add(
    HttpApiEndpoint.get("bulkJobs", "/bulk-jobs")
      .setUrlParams(ListBulkJobs)
      .addSuccess(Schema.Array(BulkJobSummary))
      .annotate(OpenApi.Summary, "Recent bulk command jobs with per-status counts")
  )
  .add(
    HttpApiEndpoint.get("bulkJobCommands")`/bulk-jobs/${HttpApiSchema.param("jobId", BulkJobIdParam)}/commands`
      .addSuccess(Schema.Array(BulkJobCommand))
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Each device's command and outcome in a bulk job")
  )
  .add(
    HttpApiEndpoint.get("tokenDevices")`/enrollment-tokens/${HttpApiSchema.param("id", EnrollmentTokenIdParam)}/devices`
      .addSuccess(Schema.Array(TokenDevice))
      .annotate(OpenApi.Summary, "The devices that enrolled with an enrollment token (newest first, at most 1,000)")
  )
  .add(HttpApiEndpoint.get("status", "/status").addSuccess(ConsoleStatus).annotate(OpenApi.Summary, "Mail and push set-up, for the console's settings page"))
  .add(
    HttpApiEndpoint.post("testMail", "/test-mail")
      .setPayload(Schema.Struct({ to: Email }))
      .addSuccess(TestMailSent)
      .addError(MailNotSent)
      .annotate(OpenApi.Summary, "Send a test mail through the configured SMTP server")
  )
  .prefix("/console")
  .annotate(OpenApi.Description, "Read-only views for the web console.") {}
