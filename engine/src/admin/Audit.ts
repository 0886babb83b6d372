/**
 * The audit trail: who changed what, from where, and whether it worked.
 *
 * A change and its audit row commit together: `record` runs on whatever transaction is current in
 * the calling fiber (the SqlClient's transaction lives in the fiber's context), so
 *
 *   sql.withTransaction(change.pipe(Effect.zipLeft(audit.record(entry))))
 *
 * either keeps both or neither. `inTransaction` does exactly that, and when the change fails it
 * rolls back and then records a `failure` row in its own statement (a failed attempt is evidence
 * too, and must not vanish with the rollback).
 *
 * The table is append-only: this module only inserts and selects, and no route updates or
 * deletes a row.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { type ActorKind, AuditRecord, type Outcome } from "./AdminModel.js"
import type { Principal } from "./Principal.js"

export interface Actor {
  readonly kind: ActorKind
  readonly id: string | null
  readonly label: string | null
}

export const actorOf = (principal: Principal): Actor => ({ kind: principal.kind, id: principal.id, label: principal.label })

/** The engine itself (start-up, CLI). */
export const systemActor = (label: string): Actor => ({ kind: "system", id: null, label })

/** Who acts and from where: what every audited service call takes. */
export interface AuditContext {
  readonly actor: Actor
  readonly sourceIp: string | null
}

export interface AuditTarget {
  readonly kind: string
  readonly id: string
}

export interface AuditEntry extends AuditContext {
  /** Dotted verb, e.g. "user.create", "auth.login", "enrollment_token.revoke". */
  readonly action: string
  readonly target?: AuditTarget | undefined
  readonly outcome: Outcome
  /** Never a secret: no password, token or key (ids and prefixes are fine). */
  readonly detail?: Record<string, unknown> | undefined
}

export interface AuditEvent {
  readonly action: string
  readonly target?: AuditTarget | undefined
  readonly detail?: Record<string, unknown> | undefined
}

export interface AuditFilter {
  readonly from?: Date | undefined
  readonly to?: Date | undefined
  readonly actorKind?: ActorKind | undefined
  readonly actorId?: string | undefined
  /** Exact action, or a prefix ending in "." ("user." = every user action). */
  readonly action?: string | undefined
  readonly targetKind?: string | undefined
  readonly targetId?: string | undefined
  readonly outcome?: Outcome | undefined
  /** Only rows older than this id (the previous page's `nextCursor`). */
  readonly before?: string | undefined
  readonly limit: number
}

export interface AuditPage {
  readonly items: ReadonlyArray<AuditRecord>
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  readonly nextCursor: string | null
}

/** What a failure row says about the error: its tag and code, never a stack or a secret. */
export const describeFailure = (error: unknown): Record<string, unknown> => {
  if (typeof error !== "object" || error === null) return { error: String(error) }
  const { _tag, code, message } = error as { _tag?: unknown; code?: unknown; message?: unknown }
  const isOurs = typeof code === "string"
  return {
    error: typeof _tag === "string" ? _tag : "Error",
    ...(isOurs ? { code } : {}),
    ...(isOurs && typeof message === "string" ? { message } : {})
  }
}

export class Audit extends Context.Tag("@nexmdm/engine/admin/Audit")<
  Audit,
  {
    /** Inserts one row on the current transaction, if any. */
    readonly record: (entry: AuditEntry) => Effect.Effect<void, SqlError.SqlError>
    /**
     * Runs `change` in a transaction that also inserts the success row (`describe` may add the
     * target and detail known only from the result); on failure, rolls back and inserts a failure
     * row on its own.
     */
    readonly inTransaction: <A, E, R>(
      context: AuditContext,
      event: AuditEvent,
      change: Effect.Effect<A, E, R>,
      describe?: (result: A) => Partial<AuditEvent>
    ) => Effect.Effect<A, E | SqlError.SqlError, R>
    /** Newest first, filtered, one page. */
    readonly list: (filter: AuditFilter) => Effect.Effect<AuditPage, SqlError.SqlError>
  }
>() {}

interface Row {
  id: string
  at: Date
  actor_kind: ActorKind
  actor_id: string | null
  actor_label: string | null
  action: string
  target_kind: string | null
  target_id: string | null
  source_ip: string | null
  outcome: Outcome
  detail: Record<string, unknown> | null
}

const toRecord = (row: Row) =>
  new AuditRecord({
    id: String(row.id),
    at: row.at,
    actorKind: row.actor_kind,
    actorId: row.actor_id,
    actorLabel: row.actor_label,
    action: row.action,
    targetKind: row.target_kind,
    targetId: row.target_id,
    sourceIp: row.source_ip,
    outcome: row.outcome,
    detail: row.detail
  })

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const record = (entry: AuditEntry) =>
    sql`insert into audit_log (actor_kind, actor_id, actor_label, action, target_kind, target_id, source_ip, outcome, detail)
      values (${entry.actor.kind}, ${entry.actor.id}, ${entry.actor.label}, ${entry.action}, ${entry.target?.kind ?? null},
        ${entry.target?.id ?? null}, ${entry.sourceIp}, ${entry.outcome},
        ${entry.detail === undefined ? null : JSON.stringify(entry.detail)}::jsonb)`.pipe(Effect.asVoid, Effect.withSpan("Audit.record"))

  const inTransaction = <A, E, R>(
    context: AuditContext,
    event: AuditEvent,
    change: Effect.Effect<A, E, R>,
    describe?: (result: A) => Partial<AuditEvent>
  ): Effect.Effect<A, E | SqlError.SqlError, R> =>
    sql
      .withTransaction(
        Effect.tap(change, (result) => {
          const more = describe?.(result) ?? {}
          return record({
            ...context,
            action: event.action,
            target: more.target ?? event.target,
            outcome: "success",
            detail: event.detail === undefined && more.detail === undefined ? undefined : { ...event.detail, ...more.detail }
          })
        })
      )
      .pipe(
        Effect.tapError((error) =>
          record({ ...context, ...event, outcome: "failure", detail: { ...event.detail, ...describeFailure(error) } }).pipe(
            Effect.catchAll((cause) =>
              Effect.logError("audit: could not record a failed change", cause).pipe(Effect.annotateLogs({ module: "Audit", action: event.action }))
            )
          )
        )
      )

  const list = Effect.fn("Audit.list")(function* (filter: AuditFilter) {
    const conditions = [
      filter.from === undefined ? undefined : sql`at >= ${filter.from}`,
      filter.to === undefined ? undefined : sql`at < ${filter.to}`,
      filter.actorKind === undefined ? undefined : sql`actor_kind = ${filter.actorKind}`,
      filter.actorId === undefined ? undefined : sql`actor_id = ${filter.actorId}`,
      filter.action === undefined
        ? undefined
        : filter.action.endsWith(".")
          ? sql`starts_with(action, ${filter.action})`
          : sql`action = ${filter.action}`,
      filter.targetKind === undefined ? undefined : sql`target_kind = ${filter.targetKind}`,
      filter.targetId === undefined ? undefined : sql`target_id = ${filter.targetId}`,
      filter.outcome === undefined ? undefined : sql`outcome = ${filter.outcome}`,
      filter.before === undefined ? undefined : sql`id < ${filter.before}`
    ].filter((condition) => condition !== undefined)
    const rows = yield* sql<Row>`select id, at, actor_kind, actor_id, actor_label, action, target_kind, target_id, source_ip,
        outcome, detail
      from audit_log where ${sql.and(conditions)} order by id desc limit ${filter.limit + 1}`
    const items = rows.slice(0, filter.limit).map(toRecord)
    return { items, nextCursor: rows.length > filter.limit ? items[items.length - 1]!.id : null }
  })

  return Audit.of({ record, inTransaction, list })
})

export const layer = Layer.effect(Audit, make)
