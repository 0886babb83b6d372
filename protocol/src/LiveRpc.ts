/**
 * Live streams for the console, over WebSocket at `/api/live` on the admin plane (@effect/rpc,
 * JSON serialization). Every rpc carries the caller's access JWT in its payload (`accessToken`):
 * a browser cannot set an Authorization header on a WebSocket. A missing, invalid, expired or
 * revoked token fails the stream with `Unauthorized`; a stream that was accepted ends with
 * `Unauthorized` (TOKEN_EXPIRED) at the token's `exp`, and (SESSION_REVOKED / ACCOUNT_DISABLED)
 * within a few seconds of a revocation. The console refreshes its token and calls again.
 *
 * - WatchFleet: the whole fleet, first as a snapshot (chunks of at most FLEET_CHUNK devices, the
 *   last one with kind "snapshotEnd"), then coalesced changes: per device only the latest view,
 *   flushed every `flushMs` (default 250 ms; the engine rounds it down to a multiple of 50 ms so
 *   that subscribers share their flushes), as batches of kind "changes". A client that has not
 *   acked by the time two flushes are due misses them and then receives, in their place, one set
 *   of "changes" batches with the latest view of every device they held.
 * - WatchDevice: one device's current view (if the engine knows it), then each change.
 * - WatchCommands: persisted command transitions, of every device or of `deviceId`.
 *
 * Imported from "@nexmdm/protocol/live" (not the package index: device-side code never loads rpc).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { CommandStatus } from "./Commands.js"
import { NetworkType } from "./DeviceFrames.js"

/** The largest number of devices in one WatchFleet message. */
export const FLEET_CHUNK = 1000
export const DEFAULT_FLUSH_MS = 250
export const MIN_FLUSH_MS = 50
export const MAX_FLUSH_MS = 10_000

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  code: Schema.Literal("TOKEN_MISSING", "TOKEN_INVALID", "TOKEN_EXPIRED", "SESSION_REVOKED", "ACCOUNT_DISABLED"),
  message: Schema.String
}) {}

export const LiveHeartbeat = Schema.Struct({
  seq: Schema.Number,
  batteryPct: Schema.Number,
  charging: Schema.Boolean,
  memFreeMb: Schema.Number,
  memTotalMb: Schema.Number,
  storageFreeMb: Schema.Number,
  network: NetworkType,
  signalDbm: Schema.optional(Schema.Number),
  foregroundApp: Schema.optional(Schema.String),
  agentVersion: Schema.String,
  uptimeS: Schema.Number,
  /** Engine clock, epoch ms. */
  recordedAt: Schema.Number
}).annotations({ identifier: "LiveHeartbeat" })
export type LiveHeartbeat = typeof LiveHeartbeat.Type

/** A device as the engine sees it now (times are epoch milliseconds). */
export const DeviceLive = Schema.Struct({
  id: Schema.String,
  presence: Schema.Literal("connected", "grace", "overdue", "offline"),
  presenceReason: Schema.String,
  presenceSince: Schema.Number,
  transport: Schema.optional(Schema.Literal("ws", "http")),
  lastHeartbeatAt: Schema.optional(Schema.Number),
  lastHeartbeat: Schema.optional(LiveHeartbeat),
  acceptedSeq: Schema.Number,
  durableSeq: Schema.Number
}).annotations({ identifier: "DeviceLive" })
export type DeviceLive = typeof DeviceLive.Type

export const FleetBatch = Schema.Struct({
  kind: Schema.Literal("snapshot", "snapshotEnd", "changes"),
  devices: Schema.Array(DeviceLive)
}).annotations({ identifier: "FleetBatch" })
export type FleetBatch = typeof FleetBatch.Type

export const CommandUpdate = Schema.Struct({
  commandId: Schema.String,
  deviceId: Schema.String,
  status: CommandStatus,
  at: Schema.Number,
  sentVia: Schema.optional(Schema.Literal("socket", "poll")),
  attempts: Schema.optional(Schema.Number),
  result: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  error: Schema.optional(Schema.String),
  unreachable: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "CommandUpdate" })
export type CommandUpdate = typeof CommandUpdate.Type

const accessToken = Schema.String

export class WatchFleet extends Rpc.make("WatchFleet", {
  payload: {
    accessToken,
    flushMs: Schema.optional(Schema.Int.pipe(Schema.between(MIN_FLUSH_MS, MAX_FLUSH_MS)))
  },
  success: FleetBatch,
  error: Unauthorized,
  stream: true
}) {}

export class WatchDevice extends Rpc.make("WatchDevice", {
  payload: { accessToken, deviceId: Schema.String },
  success: DeviceLive,
  error: Unauthorized,
  stream: true
}) {}

export class WatchCommands extends Rpc.make("WatchCommands", {
  payload: { accessToken, deviceId: Schema.optional(Schema.String) },
  success: CommandUpdate,
  error: Unauthorized,
  stream: true
}) {}

export class LiveRpcs extends RpcGroup.make(WatchFleet, WatchDevice, WatchCommands) {}
