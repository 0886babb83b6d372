/**
 * An alert as callers see it, the query that lists alerts (newest first, paged by an opaque
 * cursor), and the errors of the alert operations.
 */
import { Schema } from "effect"
import { AlertKind } from "./AlertRule.js"

/** The alert's row id (a PostgreSQL bigint, kept as a string). */
export const AlertId = Schema.String.pipe(Schema.pattern(/^[1-9][0-9]{0,18}$/), Schema.brand("AlertId"))
export type AlertId = typeof AlertId.Type

export const AlertState = Schema.Literal("open", "resolved")
export type AlertState = typeof AlertState.Type

export const Alert = Schema.Struct({
  id: AlertId,
  /** Null once the rule was deleted. */
  ruleId: Schema.NullOr(Schema.String),
  kind: AlertKind,
  deviceId: Schema.NullOr(Schema.String),
  /** What the alert is about: a device id, "engine", or one enrolment event. */
  dedupKey: Schema.String,
  state: AlertState,
  openedAt: Schema.Date,
  resolvedAt: Schema.NullOr(Schema.Date),
  /** cleared, manual, rule disabled, rule deleted, informational. */
  resolution: Schema.NullOr(Schema.String),
  lastSeenAt: Schema.Date,
  /** Occurrences folded into this alert while it was open. */
  count: Schema.Int,
  summary: Schema.String,
  detail: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type Alert = typeof Alert.Type

export const ListAlertsQuery = Schema.Struct({
  state: Schema.optional(AlertState),
  kind: Schema.optional(AlertKind),
  deviceId: Schema.optional(Schema.String),
  ruleId: Schema.optional(Schema.String),
  /** `nextCursor` of the previous page. */
  cursor: Schema.optional(AlertId),
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 500)))
})
export type ListAlertsQuery = typeof ListAlertsQuery.Type

export const AlertPage = Schema.Struct({
  items: Schema.Array(Alert),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: Schema.NullOr(AlertId)
})
export type AlertPage = typeof AlertPage.Type

/** A failed command, reported by the command service. */
export interface CommandFailure {
  readonly deviceId: string
  readonly commandId: string
  readonly type: string
  readonly error: string
}

export class AlertNotFound extends Schema.TaggedError<AlertNotFound>()("AlertNotFound", {
  id: Schema.String
}) {}

export class AlertQueryInvalid extends Schema.TaggedError<AlertQueryInvalid>()("AlertQueryInvalid", {
  message: Schema.String
}) {}
