/** Handlers of `AlertsGroup`: the `Alerts` service; rule changes and manual resolutions audited. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Schema } from "effect"
import { AlertRulePatch, NewAlertRule } from "../../alerts/AlertRule.js"
import { Alerts } from "../../alerts/Alerts.js"
import { NotFound, ValidationError } from "../AdminErrors.js"
import { AdminApi } from "../AdminApi.js"
import { Audit } from "../Audit.js"
import { auditContext, orInternal } from "../internal/handlers.js"

/** The service's own errors as the API's: bad input is a 400, a missing rule or alert a 404. */
const invalid = (error: { readonly message: string }) => Effect.fail(new ValidationError({ message: error.message }))
const missing = (error: { readonly id: string }) => Effect.fail(new NotFound({ message: `no alert or alert rule ${error.id}` }))

export const AlertsGroupLive = HttpApiBuilder.group(AdminApi, "alerts", (handlers) =>
  Effect.gen(function* () {
    const alerts = yield* Alerts
    const audit = yield* Audit
    return handlers
      .handle("list", ({ urlParams }) => alerts.listAlerts(urlParams).pipe(Effect.catchTag("AlertQueryInvalid", invalid), orInternal))
      .handle("resolve", ({ path }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          return yield* audit.inTransaction(context, { action: "alert.resolve", target: { kind: "alert", id: path.id } }, alerts.resolve(path.id))
        }).pipe(Effect.catchTag("AlertNotFound", missing), orInternal)
      )
      .handle("listRules", () => alerts.listRules.pipe(orInternal))
      .handle("createRule", ({ payload }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const input = yield* Schema.encode(NewAlertRule)(payload).pipe(Effect.orDie)
          return yield* audit.inTransaction(context, { action: "alert_rule.create", detail: { kind: payload.kind } }, alerts.createRule(input), (rule) => ({
            target: { kind: "alert_rule", id: rule.id }
          }))
        }).pipe(Effect.catchTag("AlertRuleInvalid", invalid), orInternal)
      )
      .handle("updateRule", ({ path, payload }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const patch = yield* Schema.encode(AlertRulePatch)(payload).pipe(Effect.orDie)
          return yield* audit.inTransaction(context, { action: "alert_rule.update", target: { kind: "alert_rule", id: path.id } }, alerts.updateRule(path.id, patch))
        }).pipe(Effect.catchTags({ AlertRuleInvalid: invalid, AlertRuleNotFound: missing }), orInternal)
      )
      .handle("deleteRule", ({ path }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          yield* audit.inTransaction(context, { action: "alert_rule.delete", target: { kind: "alert_rule", id: path.id } }, alerts.deleteRule(path.id))
        }).pipe(Effect.catchTag("AlertRuleNotFound", missing), orInternal)
      )
  })
)
