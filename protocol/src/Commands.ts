/**
 * Remote commands: their types and parameters, the frames that carry them, and the signing rules.
 *
 * Every command frame is signed by the engine with the device's own HMAC-SHA256 key (from
 * enrollment) over a canonical string, and carries its id, issue time and expiry, so a device can
 * reject tampering, replay and stale commands. Device results are signed back with the same key.
 * Signing.ts holds the canonical encoding; vectors/signing.json pins it for other implementations.
 */
import { Schema } from "effect"
import { PrintableString } from "./DeviceFrames.js"

const EpochMillis = Schema.Int.pipe(Schema.between(0, 8_640_000_000_000_000))
const PackageName = Schema.String.pipe(Schema.pattern(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/), Schema.maxLength(255))
const Sha256Hex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))

export const CommandId = Schema.String.pipe(Schema.pattern(/^cmd_[0-9a-z]{20,32}$/), Schema.brand("CommandId"))
export type CommandId = typeof CommandId.Type

/** An empty struct would accept any object: commands without parameters must get none. */
const NoParams = Schema.Struct({}).pipe(
  Schema.filter((params) => Object.keys(params).length === 0, { message: () => "this command takes no parameters" })
)

/** Parameters of each command type. Unknown types and bad parameters are rejected before queueing. */
export const CommandParams = {
  ping: NoParams,
  lock: Schema.Struct({ message: Schema.optional(PrintableString(0, 200)) }),
  reboot: NoParams,
  reset_password: Schema.Struct({ password: PrintableString(4, 64) }),
  launch_app: Schema.Struct({ packageName: PackageName }),
  relaunch_app: Schema.Struct({ packageName: PackageName }),
  set_auto_relaunch: Schema.Struct({
    packageName: PackageName,
    enabled: Schema.Boolean,
    checkIntervalS: Schema.Int.pipe(Schema.between(10, 3600))
  }),
  install_apk: Schema.Struct({
    url: Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/), Schema.maxLength(2048)),
    sha256: Sha256Hex,
    packageName: Schema.optional(PackageName),
    versionCode: Schema.optional(Schema.Int.pipe(Schema.positive()))
  }),
  clear_app_data: Schema.Struct({ packageName: PackageName }),
  set_heartbeat_interval: Schema.Struct({ intervalS: Schema.Int.pipe(Schema.between(5, 3600)) }),
  request_heartbeat: NoParams,
  wipe: Schema.Struct({
    /** A wipe erases the device: the caller must type this literal to confirm. */
    confirm: Schema.Literal("WIPE"),
    reason: Schema.optional(PrintableString(0, 200))
  })
} as const

export type CommandType = keyof typeof CommandParams
export const CommandType = Schema.Literal(...(Object.keys(CommandParams) as [CommandType, ...Array<CommandType>]))

/** Which params may be shown back to admins: a screen-lock password must not be. */
export const sensitiveParams: Partial<Record<CommandType, ReadonlyArray<string>>> = { reset_password: ["password"] }

/** A command as the device receives it (engine -> device). */
export class CommandFrame extends Schema.Class<CommandFrame>("CommandFrame")({
  type: Schema.Literal("command"),
  id: Schema.String,
  commandType: CommandType,
  params: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  issuedAt: EpochMillis,
  expiresAt: EpochMillis,
  /** base64url HMAC-SHA256 over `commandSigningString`. */
  sig: Schema.String
}) {}

/** Device -> engine: the command arrived ("received") and passed verification, execution starts ("accepted"). */
export class CommandAck extends Schema.Class<CommandAck>("CommandAck")({
  type: Schema.Literal("command_ack"),
  id: Schema.String.pipe(Schema.maxLength(64)),
  stage: Schema.Literal("received", "accepted")
}) {}

export const CommandOutcome = Schema.Literal("succeeded", "failed")

/** Device -> engine: how the command ended, signed with the device key over `resultSigningString`. */
export class CommandResult extends Schema.Class<CommandResult>("CommandResult")({
  type: Schema.Literal("command_result"),
  id: Schema.String.pipe(Schema.maxLength(64)),
  status: CommandOutcome,
  completedAt: EpochMillis,
  /** Small structured result (e.g. ping round trip, installed version). */
  result: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  /** Why it failed (e.g. SIGNATURE_INVALID, EXPIRED, PACKAGE_NOT_FOUND). */
  error: Schema.optional(PrintableString(0, 500)),
  sig: Schema.String.pipe(Schema.maxLength(128))
}) {}

/** Lifecycle, in order; succeeded/failed/expired/cancelled are final. */
export const CommandStatus = Schema.Literal(
  "queued",
  "sent",
  "delivered",
  "acknowledged",
  "succeeded",
  "failed",
  "expired",
  "cancelled"
)
export type CommandStatus = typeof CommandStatus.Type
export const finalStatuses: ReadonlySet<CommandStatus> = new Set(["succeeded", "failed", "expired", "cancelled"])
