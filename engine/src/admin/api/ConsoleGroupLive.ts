/** Handlers of `ConsoleGroup` (read-only SQL over bulk_jobs and commands). */
import { HttpApiBuilder } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { NotFound } from "../AdminErrors.js"
import { AdminApi } from "../AdminApi.js"
import { Audit } from "../Audit.js"
import { auditContext, orInternal } from "../internal/handlers.js"
import { Mailer } from "../Mailer.js"
import { EngineConfig } from "../../EngineConfig.js"
import { BulkJobCommand, BulkJobSummary, ConsoleStatus, MailNotSent, TestMailSent, TokenDevice } from "./ConsoleGroup.js"

interface JobRow {
  readonly id: string
  readonly command_type: string
  readonly target: unknown
  readonly total: number
  readonly created_by: string
  readonly created_at: Date
  readonly by_status: Record<string, number> | null
}

interface CommandRow {
  readonly id: string
  readonly device_id: string
  readonly name: string | null
  readonly status: string
  readonly completed_at: Date | null
  readonly error: string | null
  readonly result: unknown
}

export const ConsoleGroupLive = HttpApiBuilder.group(AdminApi, "console", (handlers) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const config = yield* EngineConfig
    const mailer = yield* Mailer
    const audit = yield* Audit
    return handlers
      .handle("testMail", ({ payload }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const via = Option.isSome(config.smtpUrl) ? "smtp" : "outbox"
          const sent = yield* Effect.either(
            mailer.send({
              to: payload.to,
              subject: "NexMDM test mail",
              text: `This is a test mail from NexMDM, sent by ${context.actor.label ?? context.actor.kind} from the console's settings page.\nIf you can read it, alert and password-reset mails reach this address.`
            })
          )
          yield* audit.record({
            ...context,
            action: "settings.test_mail",
            outcome: sent._tag === "Right" ? "success" : "failure",
            detail: { to: payload.to, via }
          })
          if (sent._tag === "Left") return yield* new MailNotSent({ code: "MAIL_NOT_SENT", message: sent.left.message })
          return new TestMailSent({ via })
        }).pipe(orInternal)
      )
      .handle("status", () =>
        sql<{ outcome: string; n: number }>`
          select outcome, count(*)::int as n from push_sends where at > now() - interval '1 day' group by outcome`.pipe(
          Effect.map(
            (rows) =>
              new ConsoleStatus({
                retentionHours: config.retentionHours,
                mail: { smtpConfigured: Option.isSome(config.smtpUrl), from: config.mailFrom },
                push: {
                  configured: Option.isSome(config.fcmServiceAccountFile) || Option.isSome(config.fcmServiceAccountJson),
                  lastDay: Object.fromEntries(rows.map((row) => [row.outcome, row.n]))
                }
              })
          ),
          orInternal
        )
      )
      .handle("bulkJobs", ({ urlParams }) =>
        sql<JobRow>`
          select j.id, j.command_type, j.target, j.total, j.created_by, j.created_at,
            (select jsonb_object_agg(s.status, s.n) from (select status, count(*)::int as n from commands c
              where c.bulk_job_id = j.id group by status) s) as by_status
          from bulk_jobs j order by j.created_at desc, j.id desc limit ${urlParams.limit}`.pipe(
          Effect.map((rows) =>
            rows.map(
              (row) =>
                new BulkJobSummary({
                  id: row.id,
                  commandType: row.command_type,
                  target: row.target,
                  total: row.total,
                  createdBy: row.created_by,
                  createdAt: new Date(row.created_at),
                  byStatus: row.by_status ?? {}
                })
            )
          ),
          orInternal
        )
      )
      .handle("bulkJobCommands", ({ path }) =>
        Effect.gen(function* () {
          const job = yield* sql<{ readonly id: string }>`select id from bulk_jobs where id = ${path.jobId}`
          if (job.length === 0) return yield* Effect.fail(new NotFound({ message: `no bulk job ${path.jobId}` }))
          const rows = yield* sql<CommandRow>`
            select c.id, c.device_id, d.name, c.status, c.completed_at, c.error, c.result
            from commands c left join devices d on d.id = c.device_id
            where c.bulk_job_id = ${path.jobId} order by c.device_id limit 100000`
          return rows.map(
            (row) =>
              new BulkJobCommand({
                commandId: row.id,
                deviceId: row.device_id,
                deviceName: row.name,
                status: row.status,
                completedAt: row.completed_at === null ? null : new Date(row.completed_at),
                error: row.error,
                result: row.result ?? null
              })
          )
        }).pipe(orInternal)
      )
      .handle("tokenDevices", ({ path }) =>
        sql<{ id: string; name: string | null; hardware_id: string; model: string | null; enrolled_at: Date; retired_at: Date | null }>`
          select id, name, hardware_id, model, enrolled_at, retired_at from devices
          where enrollment_token_id = ${path.id} order by enrolled_at desc, id limit 1000`.pipe(
          Effect.map((rows) =>
            rows.map(
              (row) =>
                new TokenDevice({
                  id: row.id,
                  name: row.name,
                  hardwareId: row.hardware_id,
                  model: row.model,
                  enrolledAt: new Date(row.enrolled_at),
                  retiredAt: row.retired_at === null ? null : new Date(row.retired_at)
                })
            )
          ),
          orInternal
        )
      )
  })
)
