/**
 * The command service behind the admin API: validates and persists commands (idempotently),
 * hands them to the device's actor for signed delivery, cancels them, fans one command out to
 * many devices, and exposes their persisted transitions as a stream.
 */
import { SqlClient, SqlError } from "@effect/sql"
import { CommandParams, CommandType, type CommandStatus, describeParseError, sensitiveParams } from "@nexmdm/protocol"
import { Chunk, Context, Data, Deferred, Duration, Effect, Either, Layer, Schema, Stream } from "effect"
import type { CommandTransition } from "../CommandLifecycle.js"
import { DeviceRegistry } from "../DeviceRegistry.js"
import { EngineConfig } from "../EngineConfig.js"
import { randomId } from "../Secrets.js"
import { CommandLog } from "./CommandLog.js"

export class CommandRejected extends Data.TaggedError("CommandRejected")<{
  readonly code: "INVALID_COMMAND" | "DEVICE_NOT_FOUND" | "DEVICE_RETIRED" | "NOT_FOUND" | "NOT_CANCELLABLE" | "NO_TARGETS"
  readonly message: string
}> {}

export interface CommandView {
  readonly id: string
  readonly deviceId: string
  readonly type: string
  readonly params: Record<string, unknown>
  readonly status: CommandStatus
  readonly idempotencyKey: string | null
  readonly bulkJobId: string | null
  readonly createdBy: string
  readonly createdAt: Date
  readonly expiresAt: Date
  readonly sentAt: Date | null
  readonly sentVia: string | null
  readonly deliveredAt: Date | null
  readonly acknowledgedAt: Date | null
  readonly completedAt: Date | null
  readonly attempts: number
  readonly result: unknown
  readonly error: string | null
  readonly unreachableAt: Date | null
}

export type BulkTarget =
  | { readonly deviceIds: ReadonlyArray<string> }
  | { readonly tag: string }
  | { readonly all: true }

export interface BulkProgress {
  readonly jobId: string
  readonly total: number
  readonly byStatus: Readonly<Record<string, number>>
  readonly done: number
}

export interface CreateBulk {
  readonly type: string
  readonly params: unknown
  readonly target: BulkTarget
  readonly idempotencyKey?: string | undefined
  readonly createdBy: string
  readonly expiresIn?: Duration.Duration | undefined
}

export interface CreateCommand {
  readonly deviceId: string
  readonly type: string
  readonly params: unknown
  readonly idempotencyKey?: string | undefined
  readonly createdBy: string
  readonly expiresIn?: Duration.Duration | undefined
}

export class Commands extends Context.Tag("@nexmdm/engine/Commands")<
  Commands,
  {
    /** Creates a command, or returns the existing one for the same (device, idempotency key). */
    readonly create: (input: CreateCommand) => Effect.Effect<{ readonly command: CommandView; readonly created: boolean }, CommandRejected | SqlError.SqlError>
    /**
     * `create` in two halves, for callers that insert inside their own transaction (the audit log):
     * run `dispatch` only after that transaction committed, or a fast device could report on a row
     * that does not exist yet.
     */
    readonly insert: (input: CreateCommand) => Effect.Effect<
      { readonly command: CommandView; readonly created: boolean; readonly dispatch: Effect.Effect<void> },
      CommandRejected | SqlError.SqlError
    >
    readonly get: (id: string) => Effect.Effect<CommandView, CommandRejected | SqlError.SqlError>
    readonly list: (filter: {
      readonly deviceId?: string | undefined
      readonly status?: CommandStatus | undefined
      readonly bulkJobId?: string | undefined
      readonly before?: Date | undefined
      readonly limit: number
    }) => Effect.Effect<ReadonlyArray<CommandView>, SqlError.SqlError>
    readonly cancel: (id: string) => Effect.Effect<CommandView, CommandRejected | SqlError.SqlError>
    readonly createBulk: (input: CreateBulk) => Effect.Effect<{ readonly jobId: string; readonly total: number; readonly created: boolean }, CommandRejected | SqlError.SqlError>
    /** `createBulk` in two halves (see `insert`). */
    readonly insertBulk: (input: CreateBulk) => Effect.Effect<
      { readonly jobId: string; readonly total: number; readonly created: boolean; readonly dispatch: Effect.Effect<void> },
      CommandRejected | SqlError.SqlError
    >
    readonly bulkProgress: (jobId: string) => Effect.Effect<BulkProgress, CommandRejected | SqlError.SqlError>
    /** Persisted transitions of every command. */
    readonly updates: Stream.Stream<CommandTransition>
  }
>() {}

interface Row {
  id: string
  device_id: string
  type: string
  params: Record<string, unknown>
  status: CommandStatus
  idempotency_key: string | null
  bulk_job_id: string | null
  created_by: string
  created_at: Date
  expires_at: Date
  sent_at: Date | null
  sent_via: string | null
  delivered_at: Date | null
  acknowledged_at: Date | null
  completed_at: Date | null
  attempts: number
  result: unknown
  error: string | null
  unreachable_at: Date | null
}

/** Parameters admins may see: secrets (a screen-lock password) are masked. */
const visibleParams = (type: string, params: Record<string, unknown>) => {
  const hidden = sensitiveParams[type as CommandType]
  if (hidden === undefined) return params
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, hidden.includes(k) ? "********" : v]))
}

const toView = (row: Row): CommandView => ({
  id: row.id,
  deviceId: row.device_id,
  type: row.type,
  params: visibleParams(row.type, row.params),
  status: row.status,
  idempotencyKey: row.idempotency_key,
  bulkJobId: row.bulk_job_id,
  createdBy: row.created_by,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  sentAt: row.sent_at,
  sentVia: row.sent_via,
  deliveredAt: row.delivered_at,
  acknowledgedAt: row.acknowledged_at,
  completedAt: row.completed_at,
  attempts: row.attempts,
  result: row.result,
  error: row.error,
  unreachableAt: row.unreachable_at
})


/** Checks the type and its parameters; nothing unknown or malformed is ever queued. */
export const validateCommand = (type: string, params: unknown): Either.Either<{ type: CommandType; params: Record<string, unknown> }, CommandRejected> => {
  if (!Schema.is(CommandType)(type)) {
    return Either.left(new CommandRejected({ code: "INVALID_COMMAND", message: `unknown command type "${type.slice(0, 40)}"` }))
  }
  const decoded = Schema.decodeUnknownEither(CommandParams[type] as Schema.Schema<Record<string, unknown>, Record<string, unknown>>, {
    onExcessProperty: "error",
    errors: "first"
  })(params ?? {})
  return Either.match(decoded, {
    onLeft: (error) => Either.left(new CommandRejected({ code: "INVALID_COMMAND", message: describeParseError(error, "params") })),
    onRight: (value) => Either.right({ type, params: value })
  })
}

const FAN_OUT_CHUNK = 500

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient
  const registry = yield* DeviceRegistry
  const log = yield* CommandLog
  const defaultTtl = config.commandTtl

  const enqueue = (row: Row) =>
    registry.tell(row.device_id, {
      _tag: "CommandQueued",
      command: {
        id: row.id,
        type: row.type as CommandType,
        params: row.params,
        issuedAt: row.created_at.getTime(),
        expiresAt: row.expires_at.getTime()
      }
    })

  const get = (id: string) =>
    sql<Row>`select * from commands where id = ${id}`.pipe(
      Effect.flatMap(([row]) =>
        row === undefined ? Effect.fail(new CommandRejected({ code: "NOT_FOUND", message: `no command ${id}` })) : Effect.succeed(toView(row))
      )
    )

  const insert = Effect.fn("Commands.insert")(function* (input: CreateCommand) {
    const { type, params } = yield* validateCommand(input.type, input.params)
    const [device] = yield* sql<{ retired: boolean }>`select retired_at is not null as retired from devices where id = ${input.deviceId}`
    if (device === undefined) return yield* new CommandRejected({ code: "DEVICE_NOT_FOUND", message: `no device ${input.deviceId}` })
    if (device.retired) return yield* new CommandRejected({ code: "DEVICE_RETIRED", message: `device ${input.deviceId} is retired` })
    const now = Date.now()
    const expiresAt = new Date(now + Duration.toMillis(input.expiresIn ?? defaultTtl))
    const id = `cmd_${randomId(24)}`
    const inserted = yield* sql<Row>`
      insert into commands (id, device_id, type, params, status, idempotency_key, created_by, created_at, expires_at)
      values (${id}, ${input.deviceId}, ${type}, ${JSON.stringify(params)}::jsonb, 'queued', ${input.idempotencyKey ?? null},
        ${input.createdBy}, ${new Date(now)}, ${expiresAt})
      on conflict (device_id, idempotency_key) where idempotency_key is not null do nothing
      returning *`
    if (inserted[0] === undefined) {
      // A retried request: return what the first one created, create nothing.
      const [existing] = yield* sql<Row>`select * from commands where device_id = ${input.deviceId} and idempotency_key = ${input.idempotencyKey ?? null}`
      return { command: toView(existing!), created: false, dispatch: Effect.void }
    }
    const row = inserted[0]
    const dispatch = Effect.suspend(() => {
      const told = enqueue(row)
      // Refused now (mailbox full, shutting down): the actor finds it in the database when it loads.
      return told === "queued"
        ? Effect.void
        : Effect.logWarning("command persisted but the device actor refused it for now").pipe(
            Effect.annotateLogs({ module: "Commands", deviceId: row.device_id, commandId: row.id, reason: told })
          )
    })
    return { command: toView(row), created: true, dispatch }
  })

  const create = (input: CreateCommand) =>
    Effect.tap(insert(input), (inserted) => inserted.dispatch).pipe(Effect.map(({ command, created }) => ({ command, created })))

  const list = (filter: Parameters<Commands["Type"]["list"]>[0]) =>
    sql<Row>`select * from commands where true
      ${filter.deviceId === undefined ? sql`` : sql`and device_id = ${filter.deviceId}`}
      ${filter.status === undefined ? sql`` : sql`and status = ${filter.status}`}
      ${filter.bulkJobId === undefined ? sql`` : sql`and bulk_job_id = ${filter.bulkJobId}`}
      ${filter.before === undefined ? sql`` : sql`and created_at < ${filter.before}`}
      order by created_at desc, id desc limit ${Math.min(Math.max(filter.limit, 1), 500)}`.pipe(Effect.map((rows) => rows.map(toView)))

  const cancel = Effect.fn("Commands.cancel")(function* (id: string) {
    const command = yield* get(id)
    if (command.status === "succeeded" || command.status === "failed" || command.status === "expired" || command.status === "cancelled") {
      return yield* new CommandRejected({ code: "NOT_CANCELLABLE", message: `command ${id} is already ${command.status}` })
    }
    const answer = yield* Deferred.make<boolean>()
    const told = registry.tell(command.deviceId, {
      _tag: "CancelCommand",
      commandId: id,
      reply: (cancelled) => Deferred.unsafeDone(answer, Effect.succeed(cancelled))
    })
    if (told !== "queued") return yield* new CommandRejected({ code: "NOT_CANCELLABLE", message: "device is busy: try again" })
    const cancelled = yield* Deferred.await(answer).pipe(Effect.timeout(Duration.seconds(5)), Effect.orElseSucceed(() => false))
    if (!cancelled) return yield* new CommandRejected({ code: "NOT_CANCELLABLE", message: `command ${id} finished meanwhile` })
    yield* log.flush
    return yield* get(id)
  })

  const targetsOf = (target: BulkTarget) =>
    "deviceIds" in target
      ? sql.unsafe<{ id: string }>("select id from devices where id = any($1::text[]) and retired_at is null order by id", [
          [...new Set(target.deviceIds)]
        ])
      : "tag" in target
        ? sql<{ id: string }>`select id from devices where ${target.tag} = any(tags) and retired_at is null order by id`
        : sql<{ id: string }>`select id from devices where retired_at is null order by id`

  const insertBulk = Effect.fn("Commands.insertBulk")(function* (input: CreateBulk) {
    const { type, params } = yield* validateCommand(input.type, input.params)
    if (input.idempotencyKey !== undefined) {
      const [existing] = yield* sql<{ id: string; total: number }>`select id, total from bulk_jobs where idempotency_key = ${input.idempotencyKey}`
      if (existing !== undefined) return { jobId: existing.id, total: existing.total, created: false, dispatch: Effect.void }
    }
    const devices = (yield* targetsOf(input.target)).map((row) => row.id)
    if (devices.length === 0) return yield* new CommandRejected({ code: "NO_TARGETS", message: "the target matches no enrolled device" })
    const now = Date.now()
    const createdAt = new Date(now)
    const expiresAt = new Date(now + Duration.toMillis(input.expiresIn ?? defaultTtl))
    const jobId = `bulk_${randomId(20)}`
    const ids = devices.map(() => `cmd_${randomId(24)}`)
    const paramsJson = JSON.stringify(params)
    const rows = yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`insert into bulk_jobs (id, command_type, params, target, total, idempotency_key, created_by)
          values (${jobId}, ${type}, ${paramsJson}::jsonb, ${JSON.stringify(input.target)}::jsonb, ${devices.length},
            ${input.idempotencyKey ?? null}, ${input.createdBy})`
        return yield* sql.unsafe<Row>(
          `insert into commands (id, device_id, type, params, status, bulk_job_id, created_by, created_at, expires_at)
           select u.id, u.device_id, $3, $4::jsonb, 'queued', $5, $6, $7, $8
           from unnest($1::text[], $2::text[]) as u(id, device_id)
           returning *`,
          [ids, devices, type, paramsJson, jobId, input.createdBy, createdAt, expiresAt]
        )
      })
    )
    // Fan out in chunks, yielding to other fibers between them. (A macrotask between chunks, to read
    // heartbeats meanwhile, was measured: ack p95 during a 10,000-device fan-out stayed ~1 s and the
    // fan-out took 3.8 s instead of 1.9 s, so the whole job runs as one burst.)
    const dispatch = Effect.forEach(
      Chunk.chunksOf(Chunk.fromIterable(rows), FAN_OUT_CHUNK),
      (chunk) => Effect.zipRight(Effect.sync(() => Chunk.forEach(chunk, enqueue)), Effect.yieldNow()),
      { discard: true }
    )
    return { jobId, total: devices.length, created: true, dispatch }
  })

  const createBulk = (input: CreateBulk) =>
    Effect.tap(insertBulk(input), (inserted) => inserted.dispatch).pipe(
      Effect.map(({ jobId, total, created }) => ({ jobId, total, created }))
    )

  const bulkProgress = (jobId: string) =>
    Effect.gen(function* () {
      const [job] = yield* sql<{ total: number }>`select total from bulk_jobs where id = ${jobId}`
      if (job === undefined) return yield* new CommandRejected({ code: "NOT_FOUND", message: `no bulk job ${jobId}` })
      const counts = yield* sql<{ status: string; n: string }>`select status, count(*) as n from commands where bulk_job_id = ${jobId} group by status`
      const byStatus = Object.fromEntries(counts.map((row) => [row.status, Number(row.n)]))
      const done = ["succeeded", "failed", "expired", "cancelled"].reduce((sum, status) => sum + (byStatus[status] ?? 0), 0)
      return { jobId, total: job.total, byStatus, done }
    })

  return Commands.of({ create, insert, get, list, cancel, createBulk, insertBulk, bulkProgress, updates: log.updates })
})

export const layer = Layer.effect(Commands, make)
