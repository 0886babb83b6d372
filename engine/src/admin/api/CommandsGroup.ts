/**
 * Remote commands over the admin API (every change audited; live updates are on the RPC stream).
 *
 *   POST /devices/:deviceId/commands   {type, params?, idempotencyKey?, expiresInSeconds?} -> 201 CommandCreated
 *   GET  /devices/:deviceId/commands   ?status&before&limit -> Command[]
 *   GET  /commands/:id                 -> Command
 *   POST /commands/:id/cancel          -> Command
 *   POST /commands/bulk                {type, params?, target, idempotencyKey?, expiresInSeconds?} -> 201 BulkJobCreated
 *   GET  /commands/bulk/:jobId         -> BulkJobProgress
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { CommandStatus, CommandType } from "@nexmdm/protocol"
import { Schema } from "effect"
import { NotFound } from "../AdminErrors.js"
import { protectedGroup } from "./Middleware.js"

const DeviceIdParam = Schema.String.pipe(Schema.pattern(/^dev_[0-9a-z]{20,32}$/)).annotations({ identifier: "DeviceId" })
const CommandIdParam = Schema.String.pipe(Schema.pattern(/^cmd_[0-9a-z]{20,32}$/)).annotations({ identifier: "CommandId" })
const BulkJobIdParam = Schema.String.pipe(Schema.pattern(/^bulk_[0-9a-z]{20}$/)).annotations({ identifier: "BulkJobId" })

/** A command the engine refused to queue or change, with a stable code. */
export class CommandError extends Schema.TaggedError<CommandError>()(
  "CommandError",
  {
    code: Schema.Literal("INVALID_COMMAND", "DEVICE_RETIRED", "NOT_CANCELLABLE", "NO_TARGETS"),
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 422 })
) {}

export class Command extends Schema.Class<Command>("Command")({
  id: Schema.String,
  deviceId: Schema.String,
  type: Schema.String,
  /** Secret parameters (a screen-lock password) are masked. */
  params: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  status: CommandStatus,
  idempotencyKey: Schema.NullOr(Schema.String),
  bulkJobId: Schema.NullOr(Schema.String),
  createdBy: Schema.String,
  createdAt: Schema.Date,
  expiresAt: Schema.Date,
  sentAt: Schema.NullOr(Schema.Date),
  sentVia: Schema.NullOr(Schema.String),
  deliveredAt: Schema.NullOr(Schema.Date),
  acknowledgedAt: Schema.NullOr(Schema.Date),
  completedAt: Schema.NullOr(Schema.Date),
  attempts: Schema.Int,
  result: Schema.Unknown,
  error: Schema.NullOr(Schema.String),
  unreachableAt: Schema.NullOr(Schema.Date)
}) {}

export class CommandCreated extends Schema.Class<CommandCreated>("CommandCreated")({
  command: Command,
  /** False when the idempotency key matched an earlier request: nothing new was created. */
  created: Schema.Boolean
}) {}

const Lifetime = Schema.Int.pipe(Schema.between(10, 30 * 86400))
const IdempotencyKey = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128))

export const CreateCommand = Schema.Struct({
  type: CommandType,
  /** Checked against the type's parameter schema (see the device protocol); unknown fields are refused. */
  params: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { default: () => ({}) }),
  idempotencyKey: Schema.optional(IdempotencyKey),
  expiresInSeconds: Schema.optional(Lifetime)
})

export const BulkTarget = Schema.Union(
  Schema.Struct({ deviceIds: Schema.Array(DeviceIdParam).pipe(Schema.minItems(1), Schema.maxItems(100_000)) }),
  Schema.Struct({ tag: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)) }),
  Schema.Struct({ all: Schema.Literal(true) })
)

export const CreateBulk = Schema.Struct({
  type: CommandType,
  params: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { default: () => ({}) }),
  target: BulkTarget,
  idempotencyKey: Schema.optional(IdempotencyKey),
  expiresInSeconds: Schema.optional(Lifetime)
})

export class BulkJobCreated extends Schema.Class<BulkJobCreated>("BulkJobCreated")({
  jobId: Schema.String,
  total: Schema.Int,
  created: Schema.Boolean
}) {}

export class BulkJobProgress extends Schema.Class<BulkJobProgress>("BulkJobProgress")({
  jobId: Schema.String,
  total: Schema.Int,
  done: Schema.Int,
  byStatus: Schema.Record({ key: Schema.String, value: Schema.Int })
}) {}

export const ListCommands = Schema.Struct({
  status: Schema.optional(CommandStatus),
  before: Schema.optional(Schema.Date),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)), { default: () => 100 })
})

export class CommandsGroup extends protectedGroup("commands")
  .add(
    HttpApiEndpoint.post("create")`/devices/${HttpApiSchema.param("deviceId", DeviceIdParam)}/commands`
      .setPayload(CreateCommand)
      .addSuccess(CommandCreated, { status: 201 })
      .addError(NotFound)
      .addError(CommandError)
      .annotate(OpenApi.Summary, "Send a command to one device (idempotent with idempotencyKey)")
  )
  .add(
    HttpApiEndpoint.get("listForDevice")`/devices/${HttpApiSchema.param("deviceId", DeviceIdParam)}/commands`
      .setUrlParams(ListCommands)
      .addSuccess(Schema.Array(Command))
      .annotate(OpenApi.Summary, "A device's commands, newest first")
  )
  .add(
    HttpApiEndpoint.post("createBulk", "/commands/bulk")
      .setPayload(CreateBulk)
      .addSuccess(BulkJobCreated, { status: 201 })
      .addError(NotFound)
      .addError(CommandError)
      .annotate(OpenApi.Summary, "Send one command to a list of devices, a tag, or every device")
  )
  .add(
    HttpApiEndpoint.get("bulkProgress")`/commands/bulk/${HttpApiSchema.param("jobId", BulkJobIdParam)}`
      .addSuccess(BulkJobProgress)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Progress of a bulk job: per-status counts")
  )
  .add(
    HttpApiEndpoint.get("get")`/commands/${HttpApiSchema.param("id", CommandIdParam)}`
      .addSuccess(Command)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "One command with its lifecycle timestamps and result")
  )
  .add(
    HttpApiEndpoint.post("cancel")`/commands/${HttpApiSchema.param("id", CommandIdParam)}/cancel`
      .addSuccess(Command)
      .addError(NotFound)
      .addError(CommandError)
      .annotate(OpenApi.Summary, "Cancel a command the device has not completed")
  )
  .annotate(OpenApi.Description, "Signed remote commands: queued -> sent -> delivered -> acknowledged -> succeeded | failed | expired | cancelled.") {}
