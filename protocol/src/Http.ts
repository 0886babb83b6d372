/**
 * HTTP bodies of the device plane: enrollment, ticket renewal and the fallback transport
 * for devices that cannot hold a WebSocket.
 */
import { Schema } from "effect"
import { CommandAck, CommandFrame, CommandResult } from "./Commands.js"
import { DurableSeq, ErrorCode, HeartbeatFields, HeartbeatPolicy, PrintableString, Seq } from "./DeviceFrames.js"

export const MAX_HTTP_HEARTBEATS = 100

export class EnrollRequest extends Schema.Class<EnrollRequest>("EnrollRequest")({
  token: PrintableString(1, 256),
  /** Stable hardware identity (e.g. serial or Android ID); re-enrolment of the same id reuses the device. */
  hardwareId: PrintableString(1, 128),
  model: Schema.optional(PrintableString(0, 128)),
  manufacturer: Schema.optional(PrintableString(0, 128)),
  osVersion: Schema.optional(PrintableString(0, 64)),
  agentVersion: Schema.optional(PrintableString(0, 64)),
  /**
   * Optional: the serial the provisioning script knew the device by (the `device_serial` extra of the
   * agent's ENROLL intent, else the device's own serial). The script waits for this serial to enrol.
   */
  serial: Schema.optional(PrintableString(1, 128))
}) {}

export class EnrollResponse extends Schema.Class<EnrollResponse>("EnrollResponse")({
  deviceId: Schema.String,
  /** Long-lived secret, shown once; only used to obtain a new ticket. */
  deviceSecret: Schema.String,
  /** Base64 HMAC-SHA256 key with which the engine signs commands for this device. */
  hmacKey: Schema.String,
  ticket: Schema.String,
  ticketExpiresAt: Schema.Number,
  heartbeatIntervalS: Schema.Number,
  /** True when this hardware id was enrolled before and its old credentials were replaced. */
  reenrolled: Schema.Boolean
}) {}

export class TicketRequest extends Schema.Class<TicketRequest>("TicketRequest")({
  deviceId: PrintableString(1, 64),
  deviceSecret: PrintableString(1, 256)
}) {}

export class TicketResponse extends Schema.Class<TicketResponse>("TicketResponse")({
  ticket: Schema.String,
  ticketExpiresAt: Schema.Number
}) {}

export const HttpHeartbeat = Schema.Struct(HeartbeatFields)
export type HttpHeartbeat = typeof HttpHeartbeat.Type

export class HeartbeatBatchRequest extends Schema.Class<HeartbeatBatchRequest>("HeartbeatBatchRequest")({
  heartbeats: Schema.Array(HttpHeartbeat).pipe(Schema.minItems(1), Schema.maxItems(MAX_HTTP_HEARTBEATS))
}) {}

export class HeartbeatBatchResponse extends Schema.Class<HeartbeatBatchResponse>("HeartbeatBatchResponse")({
  /** Seqs accepted (new or already seen); a seq missing here was not accepted and must be resent. */
  acked: Schema.Array(Seq),
  durableSeq: DurableSeq,
  heartbeatIntervalS: Schema.Number,
  heartbeatPolicy: Schema.optional(HeartbeatPolicy),
  /** A fresh ticket when the presented one is past half its life. */
  ticket: Schema.optional(Schema.String),
  ticketExpiresAt: Schema.optional(Schema.Number)
}) {}

/** GET /v1/device/messages: signed commands the device has not received yet, oldest first. */
export class PendingMessagesResponse extends Schema.Class<PendingMessagesResponse>("PendingMessagesResponse")({
  messages: Schema.Array(CommandFrame),
  durableSeq: DurableSeq
}) {}

export const MAX_COMMAND_UPDATES = 100

/** POST /v1/device/command-updates: acks and results, as the WebSocket would carry them. */
export class CommandUpdatesRequest extends Schema.Class<CommandUpdatesRequest>("CommandUpdatesRequest")({
  updates: Schema.Array(Schema.Union(CommandAck, CommandResult)).pipe(Schema.minItems(1), Schema.maxItems(MAX_COMMAND_UPDATES))
}) {}

/** PUT /v1/device/fcm-token: the device's current FCM registration token (for wake-ups). */
export class FcmTokenRequest extends Schema.Class<FcmTokenRequest>("FcmTokenRequest")({
  token: PrintableString(1, 4096)
}) {}

/** Every non-2xx response of the device plane carries this body. */
export class HttpErrorBody extends Schema.Class<HttpErrorBody>("HttpErrorBody")({
  error: Schema.Struct({
    code: ErrorCode,
    message: Schema.String,
    retryAfterMs: Schema.optional(Schema.Number)
  })
}) {}
