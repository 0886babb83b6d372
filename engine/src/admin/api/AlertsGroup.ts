/**
 * Alerts and alert rules, over the `Alerts` service (alerts/Alerts.ts).
 *
 *   GET    /alerts?state&kind&deviceId&ruleId&cursor&limit  -> {items: Alert[] (newest first), nextCursor}
 *   POST   /alerts/:id/resolve                              -> Alert (resolved by hand)
 *   GET    /alerts/rules                                    -> AlertRule[]
 *   POST   /alerts/rules      NewAlertRule                  -> 201 AlertRule
 *   PATCH  /alerts/rules/:id  AlertRulePatch                -> AlertRule
 *   DELETE /alerts/rules/:id                                -> 204 (its alerts stay, resolved)
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Alert, AlertId, AlertPage, AlertState } from "../../alerts/Alert.js"
import { AlertKind, AlertRule, AlertRuleId, AlertRulePatch, NewAlertRule } from "../../alerts/AlertRule.js"
import { NotFound } from "../AdminErrors.js"
import { protectedGroup } from "./Middleware.js"

const Text = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))

/** `ListAlertsQuery` as URL parameters (`limit` arrives as text). */
export const AlertsUrlParams = Schema.Struct({
  state: Schema.optional(AlertState),
  kind: Schema.optional(AlertKind),
  deviceId: Schema.optional(Text),
  ruleId: Schema.optional(Text),
  cursor: Schema.optional(AlertId.annotations({ description: "nextCursor of the previous page" })),
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)))
})

const alertId = HttpApiSchema.param("id", AlertId)
const ruleId = HttpApiSchema.param("id", AlertRuleId)

export class AlertsGroup extends protectedGroup("alerts")
  .add(
    HttpApiEndpoint.get("list", "/")
      .setUrlParams(AlertsUrlParams)
      .addSuccess(AlertPage.annotations({ identifier: "AlertPage" }))
      .annotate(OpenApi.Summary, "Alerts, newest first, filtered, one page at a time")
  )
  .add(
    HttpApiEndpoint.post("resolve")`/${alertId}/resolve`
      .addSuccess(Alert.annotations({ identifier: "Alert" }))
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Resolve an alert by hand (it does not reopen while its condition lasts)")
  )
  .add(
    HttpApiEndpoint.get("listRules", "/rules")
      .addSuccess(Schema.Array(AlertRule.annotations({ identifier: "AlertRule" })))
      .annotate(OpenApi.Summary, "List alert rules")
  )
  .add(
    HttpApiEndpoint.post("createRule", "/rules")
      .setPayload(NewAlertRule)
      .addSuccess(AlertRule, { status: 201 })
      .annotate(OpenApi.Summary, "Create an alert rule (params are checked against its kind)")
  )
  .add(
    HttpApiEndpoint.patch("updateRule")`/rules/${ruleId}`
      .setPayload(AlertRulePatch)
      .addSuccess(AlertRule)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Change an alert rule (disabling it resolves its open alerts)")
  )
  .add(
    HttpApiEndpoint.del("deleteRule")`/rules/${ruleId}`
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Delete an alert rule (its alerts are kept, resolved)")
  )
  .prefix("/alerts")
  .annotate(
    OpenApi.Description,
    "Rules (device_offline, battery_low, write_backlog, command_failed, token_used) and the alerts they raise. " +
      "One open alert per rule and device; mails are digested per rule window."
  ) {}
