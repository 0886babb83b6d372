/**
 * Alert rules, the alerts they raise, and the mails about them.
 *
 * One evaluator fiber runs every NEXMDM_ALERT_EVAL_INTERVAL_MS over the latest state of every
 * device (read from the registry at each evaluation, not per change: the heartbeat path pays nothing
 * for alerting; a passivated device keeps its last sample, so it is not forgotten), the
 * write-behind's backlog and new enrolment events, and turns each rule's observations into
 * actions (internal/Conditions.ts): open, repeat, resolve. Alerts are rows: one open alert per
 * (rule, dedup key), where a repeat bumps `count` and `last_seen_at`. Command failures arrive
 * through `commandFailed`, from the command service.
 *
 * Mail is never one per alert: notices (opened, resolved) are collected per rule for the rule's
 * digest window and mailed as one digest to each recipient (internal/Digest.ts). Alerts are
 * recorded whether or not anyone is mailed. Shutdown mails what is pending.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Clock, Context, Duration, Effect, Either, FiberSet, Layer, ParseResult, Schedule, Schema } from "effect"
import { Mailer } from "../admin/Mailer.js"
import { DeviceRegistry } from "../DeviceRegistry.js"
import { EngineConfig } from "../EngineConfig.js"
import { randomId } from "../Secrets.js"
import { TelemetryWriter } from "../TelemetryWriter.js"
import {
  type Alert,
  AlertNotFound,
  type AlertPage,
  AlertQueryInvalid,
  type CommandFailure,
  ListAlertsQuery
} from "./Alert.js"
import {
  type AlertRule,
  type AlertRuleId,
  AlertRuleInvalid,
  AlertRuleNotFound,
  AlertRulePatch,
  NewAlertRule,
  RuleCondition
} from "./AlertRule.js"
import * as Conditions from "./internal/Conditions.js"
import * as Digest from "./internal/Digest.js"

export class Alerts extends Context.Tag("@nexmdm/engine/Alerts")<
  Alerts,
  {
    readonly listRules: Effect.Effect<ReadonlyArray<AlertRule>, SqlError.SqlError>
    readonly createRule: (input: typeof NewAlertRule.Encoded) => Effect.Effect<AlertRule, AlertRuleInvalid | SqlError.SqlError>
    /** Disabling a rule resolves its open alerts ("rule disabled"). */
    readonly updateRule: (
      id: string,
      patch: typeof AlertRulePatch.Encoded
    ) => Effect.Effect<AlertRule, AlertRuleInvalid | AlertRuleNotFound | SqlError.SqlError>
    /** Resolves the rule's open alerts ("rule deleted") and deletes it; its alerts stay, without a rule. */
    readonly deleteRule: (id: string) => Effect.Effect<void, AlertRuleNotFound | SqlError.SqlError>
    /** Newest first, `limit` (default 50) at a time. */
    readonly listAlerts: (query: typeof ListAlertsQuery.Encoded) => Effect.Effect<AlertPage, AlertQueryInvalid | SqlError.SqlError>
    /**
     * Resolves an alert by hand (an already resolved alert is returned as it is). While its
     * condition lasts it does not open again; a new occurrence does.
     */
    readonly resolve: (alertId: string) => Effect.Effect<Alert, AlertNotFound | SqlError.SqlError>
    /** Reports a failed command: opens (or repeats) an alert for each matching command_failed rule. Never fails. */
    readonly commandFailed: (failure: CommandFailure) => Effect.Effect<void>
    /** Evaluates every rule and mails the digests that are due, now (the evaluator fiber does it periodically). */
    readonly evaluate: Effect.Effect<void>
  }
>() {}

/** Enrolment events are looked for this far back, so a late-committing enrolment is not missed. */
const ENROLMENT_LOOKBACK_MS = 60_000
/** Longest wait at shutdown for pending digests to be mailed. */
const SHUTDOWN_MAIL_TIMEOUT = Duration.seconds(15)
const DEFAULT_PAGE = 50

interface RuleRow {
  readonly id: string
  readonly name: string
  readonly kind: string
  readonly params: unknown
  readonly enabled: boolean
  readonly recipients: ReadonlyArray<string>
  readonly digest_window_s: number
  readonly created_at: Date
  readonly updated_at: Date
}

interface AlertRow {
  readonly id: string
  readonly rule_id: string | null
  readonly kind: Alert["kind"]
  readonly device_id: string | null
  readonly dedup_key: string
  readonly state: Alert["state"]
  readonly opened_at: Date
  readonly resolved_at: Date | null
  readonly resolution: string | null
  readonly last_seen_at: Date
  readonly count: number
  readonly summary: string
  readonly detail: Record<string, unknown>
}

const alertColumns = "id, rule_id, kind, device_id, dedup_key, state, opened_at, resolved_at, resolution, last_seen_at, count, summary, detail"

const toAlert = (row: AlertRow): Alert => ({
  id: row.id as Alert["id"],
  ruleId: row.rule_id,
  kind: row.kind,
  deviceId: row.device_id,
  dedupKey: row.dedup_key,
  state: row.state,
  openedAt: row.opened_at,
  resolvedAt: row.resolved_at,
  resolution: row.resolution,
  lastSeenAt: row.last_seen_at,
  count: row.count,
  summary: row.summary,
  detail: row.detail
})

const decodeCondition = Schema.decodeUnknownEither(RuleCondition)

const toRule = (row: RuleRow): Either.Either<AlertRule, ParseResult.ParseError> =>
  Either.map(decodeCondition({ kind: row.kind, params: row.params }), (condition) => ({
    id: row.id as AlertRuleId,
    name: row.name,
    enabled: row.enabled,
    recipients: row.recipients,
    digestWindowS: row.digest_window_s,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...condition
  }))

const invalid = (error: ParseResult.ParseError) => new AlertRuleInvalid({ message: ParseResult.TreeFormatter.formatErrorSync(error) })

const oneLine = (text: string, max: number) => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length > max ? `${line.slice(0, max - 3)}...` : line
}

type MutableSample = { -readonly [K in keyof Conditions.DeviceSample]: Conditions.DeviceSample[K] }


// One statement for a rule's opens and repeats: a repeat of an open (rule, key) bumps count.
// Keys of devices deleted meanwhile are skipped.
const upsertAlerts = `
insert into alerts (rule_id, kind, device_id, dedup_key, opened_at, last_seen_at, summary, detail)
select $1::text, $2::text, u.d, u.k, $3::timestamptz, $3::timestamptz, u.s, u.j::jsonb
from unnest($4::text[], $5::text[], $6::text[], $7::text[]) as u(d, k, s, j)
where u.d is null or exists (select 1 from devices where id = u.d)
on conflict (rule_id, dedup_key) where state = 'open'
do update set count = alerts.count + 1, last_seen_at = excluded.last_seen_at, summary = excluded.summary, detail = excluded.detail
returning id, dedup_key, device_id, summary, (xmax = 0) as inserted`

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient
  const registry = yield* DeviceRegistry
  const writer = yield* TelemetryWriter
  const mailer = yield* Mailer
  const sends = yield* FiberSet.make<void, never>()
  // Evaluation, hooks and rule changes take turns: they share the firing and digest state.
  const lock = yield* Effect.makeSemaphore(1)
  const serialized = lock.withPermits(1)
  const startedAt = yield* Clock.currentTimeMillis

  /** Latest known state of every device seen since start. */
  const devices = new Map<string, MutableSample>()
  /** Per rule: keys with an open (or hand-resolved, still holding) alert. Loaded from the table on first use. */
  const firing = new Map<string, Map<string, Conditions.Firing>>()
  let digests: Digest.DigestState = Digest.empty
  /** Enabled command_failed rules, kept between evaluations so a burst of failures costs no rule queries. */
  let commandRules: ReadonlyArray<AlertRule> | undefined

  // ---------------------------------------------------------------------------------------------
  // Rules

  const selectRules = (where: ReturnType<typeof sql.and>) =>
    sql<RuleRow>`select id, name, kind, params, enabled, recipients, digest_window_s, created_at, updated_at
      from alert_rules where ${where} order by created_at, id`

  /** Rules as stored; a row whose params no longer decode is logged and skipped. */
  const loadRules = (where: ReturnType<typeof sql.and>) =>
    Effect.flatMap(selectRules(where), (rows) =>
      Effect.forEach(rows, (row) =>
        Either.match(toRule(row), {
          onLeft: (error) =>
            Effect.as(
              Effect.logWarning("alert rule skipped: its params do not match its kind").pipe(
                Effect.annotateLogs({ ruleId: row.id, error: ParseResult.TreeFormatter.formatErrorSync(error) })
              ),
              []
            ),
          onRight: (rule) => Effect.succeed([rule])
        })
      ).pipe(Effect.map((nested) => nested.flat()))
    )

  const findRule = (id: string) =>
    Effect.flatMap(loadRules(sql.and([sql`id = ${id}`])), (rules) =>
      rules[0] === undefined ? Effect.fail(new AlertRuleNotFound({ id })) : Effect.succeed(rules[0])
    )

  const listRules = loadRules(sql.and([]))

  const createRule = Effect.fn("Alerts.createRule")(function* (input: typeof NewAlertRule.Encoded) {
    const rule = yield* Schema.decodeUnknown(NewAlertRule)(input).pipe(Effect.mapError(invalid))
    const id = `ar_${randomId(16)}`
    const [row] = yield* serialized(
      sql<RuleRow>`insert into alert_rules (id, name, kind, params, enabled, recipients, digest_window_s)
        values (${id}, ${rule.name.trim()}, ${rule.kind}, ${JSON.stringify(rule.params)}::jsonb, ${rule.enabled},
          ${rule.recipients}::text[], ${rule.digestWindowS})
        returning id, name, kind, params, enabled, recipients, digest_window_s, created_at, updated_at`.pipe(
        Effect.ensuring(Effect.sync(() => (commandRules = undefined)))
      )
    )
    return Either.getOrThrow(toRule(row!))
  })

  /** Resolves a rule's open alerts without mail (someone changed the rule on purpose). */
  const resolveAllOf = (ruleId: string, resolution: string, now: number) =>
    sql`update alerts set state = 'resolved', resolved_at = ${new Date(now)}, resolution = ${resolution}
      where rule_id = ${ruleId} and state = 'open'`.pipe(Effect.zipRight(Effect.sync(() => firing.delete(ruleId))))

  const updateRule = Effect.fn("Alerts.updateRule")(function* (id: string, input: typeof AlertRulePatch.Encoded) {
    const patch = yield* Schema.decodeUnknown(AlertRulePatch)(input).pipe(Effect.mapError(invalid))
    return yield* serialized(
      Effect.gen(function* () {
        commandRules = undefined
        const rule = yield* findRule(id)
        const params = patch.params === undefined
          ? rule.params
          : (yield* decodeCondition({ kind: rule.kind, params: patch.params }).pipe(Effect.mapError(invalid))).params
        const now = yield* Clock.currentTimeMillis
        const [row] = yield* sql.withTransaction(
          Effect.gen(function* () {
            if (rule.enabled && patch.enabled === false) yield* resolveAllOf(id, "rule disabled", now)
            return yield* sql<RuleRow>`update alert_rules set
                name = ${patch.name?.trim() ?? rule.name}, params = ${JSON.stringify(params)}::jsonb,
                enabled = ${patch.enabled ?? rule.enabled}, recipients = ${patch.recipients ?? rule.recipients}::text[],
                digest_window_s = ${patch.digestWindowS ?? rule.digestWindowS}, updated_at = now()
              where id = ${id}
              returning id, name, kind, params, enabled, recipients, digest_window_s, created_at, updated_at`
          })
        )
        if (row === undefined) return yield* new AlertRuleNotFound({ id })
        return Either.getOrThrow(toRule(row))
      })
    )
  })

  const deleteRule = Effect.fn("Alerts.deleteRule")(function* (id: string) {
    yield* serialized(
      Effect.gen(function* () {
        commandRules = undefined
        const now = yield* Clock.currentTimeMillis
        const deleted = yield* sql.withTransaction(
          Effect.zipRight(resolveAllOf(id, "rule deleted", now), sql`delete from alert_rules where id = ${id} returning id`)
        )
        if (deleted.length === 0) return yield* new AlertRuleNotFound({ id })
        digests = Digest.drop(digests, id)
      })
    )
  })

  // ---------------------------------------------------------------------------------------------
  // Alerts

  const notify = (rule: AlertRule, notice: Digest.Notice, now: number) => {
    if (rule.recipients.length === 0) return
    digests = Digest.add(
      digests,
      { id: rule.id, name: rule.name, kind: rule.kind, recipients: rule.recipients, windowMs: rule.digestWindowS * 1000 },
      notice,
      now
    )
  }

  /** Opens or repeats alerts of one rule; returns the rows (new ones have `inserted`). */
  const upsert = (rule: AlertRule, holds: ReadonlyArray<Extract<Conditions.Observation, { _tag: "Holds" }>>, now: number) =>
    holds.length === 0
      ? Effect.succeed([])
      : sql.unsafe<{ id: string; dedup_key: string; device_id: string | null; summary: string; inserted: boolean }>(upsertAlerts, [
          rule.id,
          rule.kind,
          new Date(now),
          holds.map((o) => o.deviceId),
          holds.map((o) => o.key),
          holds.map((o) => o.summary),
          holds.map((o) => JSON.stringify({ ...o.detail, episode: o.episode }))
        ])

  const firingOf = (ruleId: string) =>
    Effect.gen(function* () {
      const known = firing.get(ruleId)
      if (known !== undefined) return known
      const rows = yield* sql<{ id: string; dedup_key: string; episode: string | null }>`
        select id, dedup_key, detail->>'episode' as episode from alerts where rule_id = ${ruleId} and state = 'open'`
      const loaded = new Map(rows.map((row) => [row.dedup_key, { alertId: row.id, episode: row.episode ?? "" }]))
      firing.set(ruleId, loaded)
      return loaded
    })

  /** Applies one rule's observations: opens, repeats and resolutions, with their notices. */
  const apply = (rule: AlertRule, observations: Iterable<Conditions.Observation>, now: number) =>
    Effect.gen(function* () {
      const fired = yield* firingOf(rule.id)
      const actions = Conditions.reconcile(fired, observations)
      if (actions.length === 0) return
      const holds = actions.flatMap((action) => (action._tag === "Open" ? [action.observation] : []))
      const opened = yield* upsert(rule, holds, now)
      const episodes = new Map(holds.map((o) => [o.key, o.episode]))
      let inserted = 0
      for (const row of opened) {
        fired.set(row.dedup_key, { alertId: row.id, episode: episodes.get(row.dedup_key)! })
        episodes.delete(row.dedup_key)
        if (row.inserted) {
          inserted++
          notify(rule, { alertId: row.id, change: "opened", deviceId: row.device_id, summary: row.summary, at: now }, now)
        }
      }
      // Keys left are devices deleted meanwhile: stop looking at them.
      for (const key of episodes.keys()) devices.delete(key)
      if (opened.length > 0) {
        yield* Effect.logInfo("alerts opened").pipe(Effect.annotateLogs({ ruleId: rule.id, kind: rule.kind, opened: inserted, repeated: opened.length - inserted }))
      }

      for (const action of actions) if (action._tag === "Forget") fired.delete(action.key)
      const resolving = actions.flatMap((action) => (action._tag === "Resolve" ? [action.key] : []))
      if (resolving.length === 0) return
      const resolved = yield* sql<{ id: string; dedup_key: string; device_id: string | null; summary: string }>`
        update alerts set state = 'resolved', resolved_at = ${new Date(now)}, resolution = 'cleared'
        where rule_id = ${rule.id} and state = 'open' and dedup_key = any(${resolving}::text[])
        returning id, dedup_key, device_id, summary`
      for (const key of resolving) fired.delete(key)
      for (const row of resolved) {
        notify(rule, { alertId: row.id, change: "resolved", deviceId: row.device_id, summary: row.summary, at: now }, now)
      }
      if (resolved.length > 0) {
        yield* Effect.logInfo("alerts resolved").pipe(Effect.annotateLogs({ ruleId: rule.id, kind: rule.kind, resolved: resolved.length }))
      }
    })

  const observeDevices = (observe: (device: Conditions.DeviceSample) => Conditions.Observation | undefined) => {
    const observations: Array<Conditions.Observation> = []
    for (const device of devices.values()) {
      const observation = observe(device)
      if (observation !== undefined) observations.push(observation)
    }
    return observations
  }

  /** token_used: one informational alert (resolved as recorded) per enrolment event since the rule exists. */
  const recordEnrolments = (rule: AlertRule, now: number) =>
    Effect.gen(function* () {
      const since = new Date(Math.max(startedAt, rule.createdAt.getTime(), now - ENROLMENT_LOOKBACK_MS))
      const rows = yield* sql<{ id: string; device_id: string; summary: string; opened_at: Date }>`
        insert into alerts (rule_id, kind, device_id, dedup_key, state, opened_at, resolved_at, resolution, last_seen_at, summary, detail)
        select ${rule.id}::text, 'token_used', e.device_id, 'enrolment:' || e.id, 'resolved', e.at, e.at, 'informational', e.at,
          case when e.kind = 'reenrolled' then 'enrolled again' else 'enrolled' end || ' with token '
            || coalesce(t.id || coalesce(' "' || t.label || '"', ''), e.detail->>'tokenId', 'unknown'),
          jsonb_build_object('eventId', e.id, 'event', e.kind, 'tokenId', e.detail->>'tokenId', 'tokenLabel', t.label,
            'model', e.detail->>'model')
        from device_events e
        left join enrollment_tokens t on t.id = e.detail->>'tokenId'
        where e.kind in ('enrolled', 'reenrolled') and e.at > ${since}
          and not exists (select 1 from alerts a where a.rule_id = ${rule.id} and a.dedup_key = 'enrolment:' || e.id)
        order by e.id
        returning id, device_id, summary, opened_at`
      for (const row of rows) {
        notify(rule, { alertId: row.id, change: "opened", deviceId: row.device_id, summary: row.summary, at: row.opened_at.getTime() }, now)
      }
    })

  /** Hands the digests that are due (all of them with `everything`) to the mailer, in the background. */
  const mailDue = (now: number, everything = false) =>
    Effect.gen(function* () {
      const [rest, ready] = Digest.due(digests, everything ? Number.POSITIVE_INFINITY : now)
      digests = rest
      for (const pending of ready) {
        const { subject, text } = Digest.render(pending, now)
        for (const to of pending.rule.recipients) {
          yield* FiberSet.run(
            sends,
            mailer.send({ to, subject, text }).pipe(
              Effect.catchAll((error) => Effect.logWarning("alert digest not mailed", error)),
              Effect.annotateLogs({ module: "Alerts", ruleId: pending.rule.id, opened: pending.opened, resolved: pending.resolved })
            )
          )
        }
      }
    })

  const evaluateRule = (rule: AlertRule, now: number) => {
    switch (rule.kind) {
      case "device_offline":
        return apply(rule, observeDevices((device) => Conditions.deviceOffline(rule.params, device, now)), now)
      case "battery_low":
        return apply(rule, observeDevices((device) => Conditions.batteryLow(rule.params, device)), now)
      case "write_backlog":
        return apply(rule, [Conditions.writeBacklog(rule.params, writer.buffered())], now)
      case "token_used":
        return recordEnrolments(rule, now)
      case "command_failed":
        // Reported through `commandFailed`.
        return Effect.void
    }
  }

  /**
   * The latest sample of every device the registry holds; passivated devices keep their last one.
   * Samples are updated in place: a new object per device per evaluation (10,000 every 5 s) lived
   * until the next one and was promoted, feeding full GCs on the heartbeat path.
   */
  const refreshSamples = () =>
    registry.forEachState((state) => {
      const sample = devices.get(state.deviceId)
      const batteryPct = state.lastHeartbeat?.batteryPct
      const charging = state.lastHeartbeat?.charging
      if (sample === undefined) {
        devices.set(state.deviceId, {
          deviceId: state.deviceId,
          presence: state.presence,
          presenceReason: state.presenceReason,
          presenceSince: state.presenceSince,
          batteryPct,
          charging
        })
        return
      }
      sample.presence = state.presence
      sample.presenceReason = state.presenceReason
      sample.presenceSince = state.presenceSince
      sample.batteryPct = batteryPct
      sample.charging = charging
    })

  const evaluate = serialized(
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      refreshSamples()
      const loaded = yield* Effect.either(loadRules(sql.and([sql`enabled`])))
      if (Either.isLeft(loaded)) {
        yield* Effect.logWarning("alert rules not loaded", loaded.left)
        return yield* mailDue(now)
      }
      const rules = loaded.right
      commandRules = rules.filter((rule) => rule.kind === "command_failed")
      for (const rule of rules) {
        yield* evaluateRule(rule, now).pipe(
          Effect.catchAllCause((cause) =>
            Effect.logError("alert rule evaluation failed", cause).pipe(Effect.annotateLogs({ ruleId: rule.id }))
          )
        )
      }
      // Rules disabled behind our back: their state is reloaded if they come back.
      const enabled = new Set<string>(rules.map((rule) => rule.id))
      for (const ruleId of firing.keys()) if (!enabled.has(ruleId)) firing.delete(ruleId)
      yield* mailDue(now)
    })
  ).pipe(
    Effect.catchAllCause((cause) => Effect.logError("alert evaluation failed", cause)),
    Effect.annotateLogs({ module: "Alerts" }),
    Effect.withSpan("Alerts.evaluate")
  )

  const commandFailed = (failure: CommandFailure) =>
    serialized(
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        commandRules ??= yield* loadRules(sql.and([sql`enabled`, sql`kind = 'command_failed'`]))
        for (const rule of commandRules) {
          if (rule.kind !== "command_failed" || (rule.params.types !== undefined && !rule.params.types.includes(failure.type))) continue
          const rows = yield* upsert(rule, [{
            _tag: "Holds",
            key: failure.deviceId,
            deviceId: failure.deviceId,
            episode: failure.commandId,
            summary: oneLine(`command ${failure.type} failed: ${failure.error}`, 300),
            detail: { commandId: failure.commandId, type: failure.type, error: oneLine(failure.error, 2000) }
          }], now)
          for (const row of rows) {
            if (row.inserted) notify(rule, { alertId: row.id, change: "opened", deviceId: row.device_id, summary: row.summary, at: now }, now)
          }
        }
      })
    ).pipe(
      Effect.catchAllCause((cause) => Effect.logError("command failure not recorded as an alert", cause)),
      Effect.annotateLogs({ module: "Alerts", deviceId: failure.deviceId, commandId: failure.commandId }),
      Effect.withSpan("Alerts.commandFailed")
    )

  const listAlerts = Effect.fn("Alerts.listAlerts")(function* (input: typeof ListAlertsQuery.Encoded) {
    const query = yield* Schema.decodeUnknown(ListAlertsQuery)(input).pipe(
      Effect.mapError((error) => new AlertQueryInvalid({ message: ParseResult.TreeFormatter.formatErrorSync(error) }))
    )
    const limit = query.limit ?? DEFAULT_PAGE
    const where = sql.and([
      ...(query.state === undefined ? [] : [sql`state = ${query.state}`]),
      ...(query.kind === undefined ? [] : [sql`kind = ${query.kind}`]),
      ...(query.deviceId === undefined ? [] : [sql`device_id = ${query.deviceId}`]),
      ...(query.ruleId === undefined ? [] : [sql`rule_id = ${query.ruleId}`]),
      ...(query.cursor === undefined ? [] : [sql`id < ${query.cursor}::int8`])
    ])
    const rows = yield* sql<AlertRow>`select ${sql.literal(alertColumns)} from alerts where ${where} order by id desc limit ${limit + 1}`
    const items = rows.slice(0, limit).map(toAlert)
    return { items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null }
  })

  const resolve = Effect.fn("Alerts.resolve")(function* (alertId: string) {
    if (!/^[1-9][0-9]{0,17}$/.test(alertId)) return yield* new AlertNotFound({ id: alertId })
    return yield* serialized(
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const [row] = yield* sql<AlertRow>`update alerts set state = 'resolved', resolved_at = ${new Date(now)}, resolution = 'manual'
          where id = ${alertId}::int8 and state = 'open' returning ${sql.literal(alertColumns)}`
        if (row !== undefined) {
          // Acknowledged: this occurrence does not open again while it lasts.
          const fired = row.rule_id === null ? undefined : firing.get(row.rule_id)
          const current = fired?.get(row.dedup_key)
          if (fired !== undefined && current !== undefined) fired.set(row.dedup_key, { alertId: undefined, episode: current.episode })
          return toAlert(row)
        }
        const [existing] = yield* sql<AlertRow>`select ${sql.literal(alertColumns)} from alerts where id = ${alertId}::int8`
        if (existing === undefined) return yield* new AlertNotFound({ id: alertId })
        return toAlert(existing)
      })
    )
  })

  // ---------------------------------------------------------------------------------------------
  // Inputs and the evaluator

  // What the registry does not hold: devices offline since before the start (not loaded as actors).
  yield* sql<{ id: string; presence_reason: string | null; since: number }>`
    select id, presence_reason, extract(epoch from presence_since) * 1000 as since
    from devices where presence = 'offline' and presence_since is not null and retired_at is null`.pipe(
    Effect.tap((rows) =>
      Effect.sync(() => {
        for (const row of rows) {
          if (devices.has(row.id)) continue
          devices.set(row.id, {
            deviceId: row.id,
            presence: "offline",
            presenceReason: row.presence_reason ?? "offline",
            presenceSince: Math.round(Number(row.since)),
            batteryPct: undefined,
            charging: undefined
          })
        }
      })
    ),
    Effect.catchAll((error) => Effect.logWarning("offline devices not loaded for alerting", error))
  )

  yield* evaluate.pipe(Effect.repeat(Schedule.spaced(config.alertEvalInterval)), Effect.forkScoped)

  // Runs before the evaluator stops: mail what is pending rather than drop it.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      yield* serialized(mailDue(now, true))
      yield* FiberSet.awaitEmpty(sends)
    }).pipe(
      Effect.timeout(SHUTDOWN_MAIL_TIMEOUT),
      Effect.catchAllCause((cause) => Effect.logWarning("pending alert mails not all sent at shutdown", cause)),
      Effect.annotateLogs({ module: "Alerts" })
    )
  )

  return Alerts.of({ listRules, createRule, updateRule, deleteRule, listAlerts, resolve, commandFailed, evaluate })
})

export const layer = Layer.scoped(Alerts, make)
