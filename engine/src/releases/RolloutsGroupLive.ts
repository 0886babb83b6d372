/**
 * Handlers of `RolloutsGroup`. Starting and resuming send commands, which must reach devices only
 * after their rows committed, so these are audited right after the change (success or failure)
 * rather than inside one transaction with it; pause is audited in its transaction.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { NotFound } from "../admin/AdminErrors.js"
import { AdminApi } from "../admin/AdminApi.js"
import { Audit, type AuditEvent, describeFailure } from "../admin/Audit.js"
import { auditContext, orInternal } from "../admin/internal/handlers.js"
import { CurrentPrincipal } from "../admin/Principal.js"
import type { CommandRejected } from "../commands/Commands.js"
import { type RolloutRejected, Rollouts, type RolloutView } from "./Rollouts.js"
import { Rollout, RolloutConflict, RolloutStage } from "./RolloutsGroup.js"

const toRollout = (view: RolloutView) =>
  new Rollout({ ...view, stages: [...view.stages], perStage: view.perStage.map((stage) => new RolloutStage(stage)) })

type ServiceError = RolloutRejected | CommandRejected
const isServiceError = (error: { readonly _tag: string }): error is ServiceError => error._tag === "RolloutRejected" || error._tag === "CommandRejected"

/** The service's refusals as 409s (an unknown id as 404 only where `notFound`); anything else is our bug. */
const refusal = (error: ServiceError): Effect.Effect<never, RolloutConflict | NotFound> => {
  switch (error.code) {
    case "ROLLOUT_NOT_FOUND":
      return Effect.fail(new NotFound({ message: error.message }))
    case "NO_RELEASE":
    case "ROLLOUT_ACTIVE":
    case "BAD_STATE":
    case "NO_DEVICES":
      return Effect.fail(new RolloutConflict({ code: error.code, message: error.message }))
    case "NO_TARGETS":
      return Effect.fail(new RolloutConflict({ code: "NO_DEVICES", message: error.message }))
    default:
      return Effect.die(error)
  }
}

const conflicts = <A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, ServiceError> | RolloutConflict | NotFound, R> =>
  Effect.catchAll(effect, (error): Effect.Effect<never, unknown> => (isServiceError(error) ? refusal(error) : Effect.fail(error))) as Effect.Effect<
    A,
    Exclude<E, ServiceError> | RolloutConflict | NotFound,
    R
  >

/** Where a rollout already exists (start): a 404 cannot happen. */
const startConflicts = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.catchTag(conflicts(effect), "NotFound", Effect.die)

/** Reads: only an unknown id. */
const notFound = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.catchTag(conflicts(effect), "RolloutConflict", Effect.die)

export const RolloutsGroupLive = HttpApiBuilder.group(AdminApi, "rollouts", (handlers) =>
  Effect.gen(function* () {
    const rollouts = yield* Rollouts
    const audit = yield* Audit

    /** Runs `change`, then records its outcome in the audit log. */
    const audited = <A, E, R>(event: AuditEvent, change: Effect.Effect<A, E, R>, describe: (result: A) => Partial<AuditEvent>) =>
      Effect.gen(function* () {
        const context = yield* auditContext
        const record = (entry: Parameters<typeof audit.record>[0]) =>
          audit.record(entry).pipe(Effect.catchAll((cause) => Effect.logError("audit: could not record a rollout change", cause)))
        return yield* change.pipe(
          Effect.tap((result) => record({ ...context, ...event, ...describe(result), outcome: "success" })),
          Effect.tapError((error) => record({ ...context, ...event, outcome: "failure", detail: { ...event.detail, ...describeFailure(error) } }))
        )
      })

    return handlers
      .handle("start", ({ payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const view = yield* audited(
            { action: "rollout.start", detail: { ...payload } },
            rollouts.start({ ...payload, startedBy: `${principal.kind}:${principal.id}` }),
            (started) => ({ target: { kind: "rollout", id: started.id }, detail: { ...payload, releaseId: started.releaseId } })
          )
          return toRollout(view)
        }).pipe(startConflicts, orInternal)
      )
      .handle("list", ({ urlParams }) => rollouts.list(urlParams.limit).pipe(Effect.map((views) => views.map(toRollout)), orInternal))
      .handle("get", ({ path }) => rollouts.get(path.id).pipe(Effect.map(toRollout), notFound, orInternal))
      .handle("pause", ({ path }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const view = yield* audit.inTransaction(context, { action: "rollout.pause", target: { kind: "rollout", id: path.id } }, rollouts.pause(path.id))
          return toRollout(view)
        }).pipe(conflicts, orInternal)
      )
      .handle("resume", ({ path }) =>
        audited({ action: "rollout.resume", target: { kind: "rollout", id: path.id } }, rollouts.resume(path.id), () => ({})).pipe(
          Effect.map(toRollout),
          conflicts,
          orInternal
        )
      )
  })
)
