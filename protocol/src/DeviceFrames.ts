/**
 * The device <-> engine wire contract, version 1.
 *
 * Frames are JSON text objects discriminated by `type`. Every frame a device may send is in
 * `DeviceFrame`; every frame the engine may send is in `EngineFrame`. PROTOCOL.md is the prose
 * form of this file and protocol/vectors/ holds frames with their expected decode results.
 */
import { Schema } from "effect"

export const PROTOCOL_VERSION = 1 as const

/** Largest frame (in bytes) either side accepts; larger frames close the socket with 1009. */
export const MAX_FRAME_BYTES = 16 * 1024

export const DeviceId = Schema.String.pipe(
  Schema.pattern(/^dev_[0-9a-z]{20,32}$/),
  Schema.brand("DeviceId")
)
export type DeviceId = typeof DeviceId.Type

/** Heartbeat sequence number: strictly increasing per device, starting at 1. */
export const Seq = Schema.Int.pipe(Schema.between(1, Number.MAX_SAFE_INTEGER))

/** Durable watermark: highest seq the engine has persisted for the device (0 = none yet). */
export const DurableSeq = Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER))

const EpochMillis = Schema.Int.pipe(Schema.between(0, 8_640_000_000_000_000))
const NonNegativeInt = Schema.Int.pipe(Schema.between(0, 2_147_483_647))

export const NetworkType = Schema.Literal("wifi", "cellular", "ethernet", "vpn", "none", "other")
export type NetworkType = typeof NetworkType.Type

/** Printable ASCII only: these strings are stored and shown, and PostgreSQL rejects NUL bytes. */
export const PrintableString = (min: number, max: number) =>
  Schema.String.pipe(Schema.minLength(min), Schema.maxLength(max), Schema.pattern(/^[\x20-\x7E]*$/))

/** A heartbeat interval, seconds: at most a day. */
export const IntervalSeconds = Schema.Int.pipe(Schema.between(1, 86_400))

const PackageName = PrintableString(1, 255)
const VersionString = PrintableString(1, 64)

// ---------------------------------------------------------------------------------------------
// Device -> engine
// ---------------------------------------------------------------------------------------------

/** First frame on a socket that was not authenticated at upgrade. */
export class Hello extends Schema.Class<Hello>("Hello")({
  type: Schema.Literal("hello"),
  v: Schema.Literal(PROTOCOL_VERSION),
  ticket: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(512))
}) {}

/** One telemetry sample. Fields are flat so that agents can encode them without nesting. */
export const HeartbeatFields = {
  seq: Seq,
  /** Device clock, epoch milliseconds. */
  ts: EpochMillis,
  batteryPct: Schema.Int.pipe(Schema.between(0, 100)),
  charging: Schema.Boolean,
  memFreeMb: NonNegativeInt,
  memTotalMb: NonNegativeInt,
  storageFreeMb: NonNegativeInt,
  network: NetworkType,
  signalDbm: Schema.optional(Schema.Int.pipe(Schema.between(-200, 0))),
  foregroundApp: Schema.optional(PackageName),
  agentVersion: VersionString,
  uptimeS: NonNegativeInt,
  // The agent's own cost since its previous sample (PROTOCOL.md 9.6). Optional: older agents
  // do not send them.
  /** Heartbeat interval the agent was using when it took this sample (its choice by the policy). */
  intervalS: Schema.optional(IntervalSeconds),
  /** Times the agent woke up or was woken for its own work. */
  wakeups: Schema.optional(NonNegativeInt),
  /** Bytes the agent sent to the engine (frame payloads and HTTP bodies). */
  txBytes: Schema.optional(NonNegativeInt),
  /** WebSocket connection attempts. */
  reconnects: Schema.optional(NonNegativeInt)
}

export class Heartbeat extends Schema.Class<Heartbeat>("Heartbeat")({
  type: Schema.Literal("heartbeat"),
  ...HeartbeatFields
}) {}

export class Ping extends Schema.Class<Ping>("Ping")({
  type: Schema.Literal("ping"),
  nonce: Schema.optional(Schema.String.pipe(Schema.maxLength(64)))
}) {}

/** Asks for a fresh session ticket on an authenticated socket. */
export class RenewTicket extends Schema.Class<RenewTicket>("RenewTicket")({
  type: Schema.Literal("renew_ticket")
}) {}


// ---------------------------------------------------------------------------------------------
// Engine -> device
// ---------------------------------------------------------------------------------------------

/**
 * The engine's advice on the heartbeat interval by power and network state (PROTOCOL.md 9.6).
 * The agent picks the first that applies: Doze, charging, low battery, metered network, battery.
 */
export class HeartbeatPolicy extends Schema.Class<HeartbeatPolicy>("HeartbeatPolicy")({
  chargingS: IntervalSeconds,
  batteryS: IntervalSeconds,
  meteredS: IntervalSeconds,
  lowBatteryS: IntervalSeconds,
  lowBatteryPct: Schema.Int.pipe(Schema.between(0, 100)),
  dozeS: IntervalSeconds
}) {}

export class Welcome extends Schema.Class<Welcome>("Welcome")({
  type: Schema.Literal("welcome"),
  deviceId: Schema.String,
  serverTime: EpochMillis,
  heartbeatIntervalS: Schema.Int.pipe(Schema.positive()),
  /** Highest seq already persisted: the device resends everything in its outbox above it. */
  durableSeq: DurableSeq,
  ticketExpiresAt: EpochMillis,
  heartbeatPolicy: Schema.optional(HeartbeatPolicy)
}) {}

/** Acknowledges one heartbeat. The device may drop outbox entries up to `durableSeq` only. */
export class Ack extends Schema.Class<Ack>("Ack")({
  type: Schema.Literal("ack"),
  seq: Seq,
  durableSeq: DurableSeq
}) {}

export class Pong extends Schema.Class<Pong>("Pong")({
  type: Schema.Literal("pong"),
  nonce: Schema.optional(Schema.String),
  serverTime: EpochMillis
}) {}

export class TicketIssued extends Schema.Class<TicketIssued>("TicketIssued")({
  type: Schema.Literal("ticket"),
  ticket: Schema.String,
  expiresAt: EpochMillis
}) {}

/** Sent once per durable-watermark advance that no ack carried (e.g. after a flush). */
export class Durable extends Schema.Class<Durable>("Durable")({
  type: Schema.Literal("durable"),
  durableSeq: DurableSeq
}) {}

export const ErrorCode = Schema.Literal(
  "BAD_FRAME",
  "BAD_REQUEST",
  "UNKNOWN_TYPE",
  "FRAME_TOO_LARGE",
  "UNAUTHENTICATED",
  "AUTH_TIMEOUT",
  "TICKET_INVALID",
  "TICKET_EXPIRED",
  "DEVICE_RETIRED",
  "SUPERSEDED",
  "RATE_LIMITED",
  "BACKPRESSURE",
  "PROTOCOL_VERSION",
  "TOKEN_INVALID",
  "TOKEN_EXHAUSTED",
  "TOKEN_EXPIRED",
  "CREDENTIALS_INVALID",
  "NOT_FOUND",
  "METHOD_NOT_ALLOWED",
  "PAYLOAD_TOO_LARGE",
  "SHUTTING_DOWN",
  "SIGNATURE_INVALID",
  "UNKNOWN_COMMAND",
  "INTERNAL"
)
export type ErrorCode = typeof ErrorCode.Type

export class ErrorFrame extends Schema.Class<ErrorFrame>("ErrorFrame")({
  type: Schema.Literal("error"),
  code: ErrorCode,
  message: Schema.String,
  /** The heartbeat this error refers to, when it refers to one. */
  seq: Schema.optional(Seq),
  /** When set, the device waits at least this long before sending again. */
  retryAfterMs: Schema.optional(NonNegativeInt),
  /** The command this error refers to (SIGNATURE_INVALID, UNKNOWN_COMMAND). */
  commandId: Schema.optional(Schema.String)
}) {}


/** WebSocket close codes the engine uses (PROTOCOL.md, "Close codes"). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  tooLarge: 1009,
  internal: 1011,
  /** The engine cannot take the session now (shutting down, or the device's mailbox is full). */
  tryAgainLater: 1013,
  unauthenticated: 4001,
  ticketExpired: 4002,
  deviceRetired: 4003,
  superseded: 4004,
  authTimeout: 4005,
  rateLimited: 4008,
  tooManyBadFrames: 4009,
  /** The device did not read its frames: the engine's send buffer for it overflowed. */
  slowConsumer: 4010
} as const
