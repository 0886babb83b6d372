/** Handlers of `CommandsGroup`: the `Commands` service; every change audited, dispatched after commit. */
import { HttpApiBuilder } from "@effect/platform"
import { Duration, Effect } from "effect"
import { type CommandRejected, Commands, type CommandView } from "../../commands/Commands.js"
import { NotFound } from "../AdminErrors.js"
import { AdminApi } from "../AdminApi.js"
import { Audit } from "../Audit.js"
import { auditContext, orInternal } from "../internal/handlers.js"
import { CurrentPrincipal } from "../Principal.js"
import { BulkJobCreated, BulkJobProgress, Command, CommandCreated, CommandError } from "./CommandsGroup.js"

const toCommand = (view: CommandView) => new Command({ ...view, params: view.params })

/** The service's refusals as HTTP errors: missing things are 404, the rest 422 with the same code. */
const asHttp = (error: CommandRejected) =>
  error.code === "NOT_FOUND" || error.code === "DEVICE_NOT_FOUND"
    ? new NotFound({ message: error.message })
    : new CommandError({ code: error.code, message: error.message })

const lifetime = (seconds: number | undefined) => (seconds === undefined ? undefined : Duration.seconds(seconds))

export const CommandsGroupLive = HttpApiBuilder.group(AdminApi, "commands", (handlers) =>
  Effect.gen(function* () {
    const commands = yield* Commands
    const audit = yield* Audit
    const createdBy = Effect.map(CurrentPrincipal, (principal) => `${principal.kind}:${principal.id}`)
    return handlers
      .handle("create", ({ path, payload }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const inserted = yield* audit.inTransaction(
            context,
            {
              action: "command.create",
              target: { kind: "device", id: path.deviceId },
              detail: { type: payload.type, idempotencyKey: payload.idempotencyKey ?? null }
            },
            commands.insert({
              deviceId: path.deviceId,
              type: payload.type,
              params: payload.params,
              idempotencyKey: payload.idempotencyKey,
              createdBy: yield* createdBy,
              expiresIn: lifetime(payload.expiresInSeconds)
            }),
            (result) => ({ detail: { type: payload.type, commandId: result.command.id, created: result.created } })
          )
          yield* inserted.dispatch
          return new CommandCreated({ command: toCommand(inserted.command), created: inserted.created })
        }).pipe(Effect.catchTag("CommandRejected", (error) => Effect.fail(asHttp(error))), orInternal)
      )
      .handle("listForDevice", ({ path, urlParams }) =>
        commands
          .list({ deviceId: path.deviceId, status: urlParams.status, before: urlParams.before, limit: urlParams.limit })
          .pipe(Effect.map((views) => views.map(toCommand)), orInternal)
      )
      .handle("createBulk", ({ payload }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const inserted = yield* audit.inTransaction(
            context,
            { action: "command.bulk", detail: { type: payload.type, target: payload.target, idempotencyKey: payload.idempotencyKey ?? null } },
            commands.insertBulk({
              type: payload.type,
              params: payload.params,
              target: payload.target,
              idempotencyKey: payload.idempotencyKey,
              createdBy: yield* createdBy,
              expiresIn: lifetime(payload.expiresInSeconds)
            }),
            (result) => ({ target: { kind: "bulk_job", id: result.jobId }, detail: { type: payload.type, total: result.total, created: result.created } })
          )
          yield* inserted.dispatch
          return new BulkJobCreated({ jobId: inserted.jobId, total: inserted.total, created: inserted.created })
        }).pipe(Effect.catchTag("CommandRejected", (error) => Effect.fail(asHttp(error))), orInternal)
      )
      .handle("bulkProgress", ({ path }) =>
        commands.bulkProgress(path.jobId).pipe(
          Effect.map((progress) => new BulkJobProgress(progress)),
          Effect.catchTag("CommandRejected", (error) => Effect.fail(new NotFound({ message: error.message }))),
          orInternal
        )
      )
      .handle("get", ({ path }) =>
        commands.get(path.id).pipe(
          Effect.map(toCommand),
          Effect.catchTag("CommandRejected", (error) => Effect.fail(new NotFound({ message: error.message }))),
          orInternal
        )
      )
      .handle("cancel", ({ path }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const cancelled = yield* commands.cancel(path.id).pipe(
            Effect.tapBoth({
              onFailure: (error) =>
                audit
                  .record({ ...context, action: "command.cancel", target: { kind: "command", id: path.id }, outcome: "failure", detail: { reason: error.message } })
                  .pipe(Effect.ignore),
              onSuccess: () => audit.record({ ...context, action: "command.cancel", target: { kind: "command", id: path.id }, outcome: "success" })
            })
          )
          return toCommand(cancelled)
        }).pipe(Effect.catchTag("CommandRejected", (error) => Effect.fail(asHttp(error))), orInternal)
      )
  })
)
