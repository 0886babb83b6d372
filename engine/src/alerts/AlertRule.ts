/**
 * Alert rules as Schema: a rule is a kind with that kind's parameters (`RuleCondition`), plus who
 * is told and how often (`recipients`, `digestWindowS`). `NewAlertRule` and `AlertRulePatch` are
 * what callers send; they are decoded at the service boundary, so an HTTP route can pass its
 * payload through unchanged.
 */
import { Schema } from "effect"

export const AlertKind = Schema.Literal("device_offline", "battery_low", "command_failed", "token_used", "write_backlog")
export type AlertKind = typeof AlertKind.Type

export const AlertRuleId = Schema.String.pipe(Schema.pattern(/^ar_[0-9a-z]{16}$/), Schema.brand("AlertRuleId"))
export type AlertRuleId = typeof AlertRuleId.Type

/** Open when a device has been offline this many minutes (fractions allowed; 0 = as soon as it is offline). */
export const DeviceOfflineParams = Schema.Struct({
  minutes: Schema.Number.pipe(Schema.finite(), Schema.between(0, 7 * 24 * 60))
})

/** Open when the last heartbeat reports less than `belowPct` and not charging; resolve when charging or at `belowPct + 5`. */
export const BatteryLowParams = Schema.Struct({ belowPct: Schema.Int.pipe(Schema.between(1, 100)) })

/** Open when the heartbeat write-behind holds more than `rows` uncommitted rows; resolve at or below. */
export const WriteBacklogParams = Schema.Struct({ rows: Schema.Int.pipe(Schema.between(1, 1_000_000_000)) })

/** Open on a failed command (only of these command types, when given); stays open until resolved by hand. */
export const CommandFailedParams = Schema.Struct({
  types: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100))).pipe(Schema.maxItems(100)))
})

/** A device enrolled with a token: an informational alert, resolved as it is recorded. */
export const TokenUsedParams = Schema.Struct({})

/** A rule's kind with its parameters. */
export const RuleCondition = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("device_offline"), params: DeviceOfflineParams }),
  Schema.Struct({ kind: Schema.Literal("battery_low"), params: BatteryLowParams }),
  Schema.Struct({ kind: Schema.Literal("write_backlog"), params: WriteBacklogParams }),
  Schema.Struct({ kind: Schema.Literal("command_failed"), params: CommandFailedParams }),
  Schema.Struct({ kind: Schema.Literal("token_used"), params: TokenUsedParams })
)
export type RuleCondition = typeof RuleCondition.Type

export const Email = Schema.String.pipe(
  Schema.maxLength(254),
  Schema.pattern(/^[^\s@,;<>"]+@[^\s@,;<>"]+$/, { message: () => "expected an e-mail address like ops@example.com" })
)

const RuleName = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200), Schema.pattern(/\S/))
const Recipients = Schema.Array(Email).pipe(Schema.maxItems(50))
/** Seconds a rule's notices are collected before they go out as one mail (0 = at the next evaluation). */
const DigestWindowS = Schema.Int.pipe(Schema.between(0, 86_400))

export const DEFAULT_DIGEST_WINDOW_S = 60

export const NewAlertRule = Schema.extend(
  Schema.Struct({
    name: RuleName,
    enabled: Schema.optionalWith(Schema.Boolean, { default: () => true }),
    recipients: Schema.optionalWith(Recipients, { default: () => [] }),
    digestWindowS: Schema.optionalWith(DigestWindowS, { default: () => DEFAULT_DIGEST_WINDOW_S })
  }),
  RuleCondition
)
export type NewAlertRule = typeof NewAlertRule.Type

/** Changes to a rule. Its kind is fixed; `params` are checked against it. */
export const AlertRulePatch = Schema.Struct({
  name: Schema.optional(RuleName),
  enabled: Schema.optional(Schema.Boolean),
  recipients: Schema.optional(Recipients),
  digestWindowS: Schema.optional(DigestWindowS),
  params: Schema.optional(Schema.Unknown)
})
export type AlertRulePatch = typeof AlertRulePatch.Type

export const AlertRule = Schema.extend(
  Schema.Struct({
    id: AlertRuleId,
    name: Schema.String,
    enabled: Schema.Boolean,
    recipients: Schema.Array(Schema.String),
    digestWindowS: Schema.Int,
    createdAt: Schema.Date,
    updatedAt: Schema.Date
  }),
  RuleCondition
)
export type AlertRule = typeof AlertRule.Type

export class AlertRuleInvalid extends Schema.TaggedError<AlertRuleInvalid>()("AlertRuleInvalid", {
  message: Schema.String
}) {}

export class AlertRuleNotFound extends Schema.TaggedError<AlertRuleNotFound>()("AlertRuleNotFound", {
  id: Schema.String
}) {}
