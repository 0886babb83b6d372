/**
 * The device inventory over the admin API (changes audited; live state from the device actors).
 *
 *   GET   /devices                   ?presence&tag&batteryBelow&lastSeenBefore&lastSeenAfter&q&includeRetired&sort&order&cursor&limit -> DevicePage
 *   GET   /devices/export.csv        same filters -> text/csv (RFC 4180, formula-injection safe)
 *   GET   /devices/:id               -> Device
 *   PATCH /devices/:id               {name?, tags?} -> Device
 *   POST  /devices/:id/retire        -> Device (its socket is closed with 4003; it must enrol again)
 *   GET   /devices/:id/heartbeats    ?from&to&bucketSeconds -> HeartbeatSeries (≤ 5,000 points, with the agent's cost)
 *   GET   /devices/:id/events        ?before&limit -> DeviceEvent[]
 *   GET   /fleet/summary             -> FleetSummary
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Conflict, NotFound } from "../AdminErrors.js"
import { protectedGroup } from "./Middleware.js"

const DeviceIdParam = Schema.String.pipe(Schema.pattern(/^dev_[0-9a-z]{20,32}$/)).annotations({ identifier: "DeviceId" })
const Presence = Schema.Literal("connected", "overdue", "grace", "offline")
const Network = Schema.Literal("none", "wifi", "cellular", "ethernet", "vpn", "other")
/** A device tag; enrollment tokens use the same rule for the tags they apply. */
export const Tag = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64), Schema.pattern(/^[^\s,;]+$/))

export class LatestHeartbeat extends Schema.Class<LatestHeartbeat>("LatestHeartbeat")({
  recordedAt: Schema.Date,
  batteryPct: Schema.Int,
  charging: Schema.Boolean,
  memFreeMb: Schema.Int,
  memTotalMb: Schema.Int,
  storageFreeMb: Schema.Int,
  network: Network,
  signalDbm: Schema.NullOr(Schema.Int),
  foregroundApp: Schema.NullOr(Schema.String),
  agentVersion: Schema.String
}) {}

export class Device extends Schema.Class<Device>("Device")({
  id: Schema.String,
  name: Schema.NullOr(Schema.String),
  hardwareId: Schema.String,
  model: Schema.NullOr(Schema.String),
  manufacturer: Schema.NullOr(Schema.String),
  osVersion: Schema.NullOr(Schema.String),
  agentVersion: Schema.NullOr(Schema.String),
  tags: Schema.Array(Schema.String),
  enrolledAt: Schema.Date,
  retiredAt: Schema.NullOr(Schema.Date),
  presence: Presence,
  presenceReason: Schema.NullOr(Schema.String),
  presenceSince: Schema.NullOr(Schema.Date),
  lastSeenAt: Schema.NullOr(Schema.Date),
  /** The latest heartbeat (the actor's when it is in memory, else the stored one); null before the first. */
  heartbeat: Schema.NullOr(LatestHeartbeat)
}) {}

export class DevicePage extends Schema.Class<DevicePage>("DevicePage")({
  items: Schema.Array(Device),
  /** Pass as `cursor` (with the same filters and sort) for the next page; null on the last. */
  nextCursor: Schema.NullOr(Schema.String)
}) {}

const BooleanFromString = Schema.Literal("true", "false").pipe(
  Schema.transform(Schema.Boolean, { strict: true, decode: (s) => s === "true", encode: (b) => (b ? "true" : "false") })
)

export const DeviceFilterParams = {
  presence: Schema.optional(Presence),
  tag: Schema.optional(Tag),
  batteryBelow: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 101))),
  lastSeenBefore: Schema.optional(Schema.Date),
  lastSeenAfter: Schema.optional(Schema.Date),
  /** Case-insensitive substring of id, name, hardware id or model. */
  q: Schema.optional(Schema.String.pipe(Schema.maxLength(200))),
  includeRetired: Schema.optional(BooleanFromString)
}

export const ListDevices = Schema.Struct({
  ...DeviceFilterParams,
  sort: Schema.optionalWith(Schema.Literal("name", "lastSeen", "battery", "enrolledAt"), { default: () => "name" as const }),
  order: Schema.optionalWith(Schema.Literal("asc", "desc"), { default: () => "asc" as const }),
  cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(1000))),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)), { default: () => 100 })
})

export const ExportDevices = Schema.Struct({
  ...DeviceFilterParams,
  sort: Schema.optionalWith(Schema.Literal("name", "lastSeen", "battery", "enrolledAt"), { default: () => "name" as const }),
  order: Schema.optionalWith(Schema.Literal("asc", "desc"), { default: () => "asc" as const })
})

export const UpdateDevice = Schema.Struct({
  /** null clears the name. */
  name: Schema.optional(Schema.NullOr(Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200)))),
  tags: Schema.optional(Schema.Array(Tag).pipe(Schema.maxItems(50)))
})

/**
 * The agent's interval and own cost since its previous sample (PROTOCOL.md 9.6); each absent when
 * the agent did not send it (agents before the battery budget send none).
 */
const AgentCostFields = {
  intervalS: Schema.optional(Schema.Int),
  wakeups: Schema.optional(Schema.Int),
  txBytes: Schema.optional(Schema.Int),
  reconnects: Schema.optional(Schema.Int)
}

export class HeartbeatPoint extends Schema.Class<HeartbeatPoint>("HeartbeatPoint")({
  recordedAt: Schema.Date,
  seq: Schema.Int,
  batteryPct: Schema.Int,
  charging: Schema.Boolean,
  memFreeMb: Schema.Int,
  memTotalMb: Schema.Int,
  storageFreeMb: Schema.Int,
  network: Network,
  signalDbm: Schema.NullOr(Schema.Int),
  foregroundApp: Schema.NullOr(Schema.String),
  ...AgentCostFields
}) {}

export class HeartbeatBucket extends Schema.Class<HeartbeatBucket>("HeartbeatBucket")({
  bucketStart: Schema.Date,
  samples: Schema.Int,
  batteryPct: Schema.Number,
  memFreeMb: Schema.Number,
  storageFreeMb: Schema.Number,
  signalDbm: Schema.NullOr(Schema.Number),
  /** Sums of the bucket's wakeups, txBytes and reconnects, and the interval of its latest heartbeat that had one. */
  ...AgentCostFields
}) {}

/** The agent's own cost over a heartbeat range (PROTOCOL.md 9.6), for the device page. */
export class AgentCost extends Schema.Class<AgentCost>("AgentCost")({
  /** The interval the device's latest heartbeat before `to` reported; null when it had none. */
  intervalS: Schema.NullOr(Schema.Int),
  /** Heartbeats in the range that carried some cost. */
  samples: Schema.Int,
  /** Sums over the range; null when no heartbeat in it carried the field. */
  wakeups: Schema.NullOr(Schema.Int),
  txBytes: Schema.NullOr(Schema.Int),
  reconnects: Schema.NullOr(Schema.Int),
  /** Hours the sums cover: from the first reporting heartbeat (less its interval, not before `from`) to the last. */
  hours: Schema.Number,
  wakeupsPerHour: Schema.NullOr(Schema.Number),
  txBytesPerHour: Schema.NullOr(Schema.Number)
}) {}

export class HeartbeatSeries extends Schema.Class<HeartbeatSeries>("HeartbeatSeries")({
  from: Schema.Date,
  to: Schema.Date,
  /** Null for raw rows. */
  bucketSeconds: Schema.NullOr(Schema.Int),
  /** Raw rows (without bucketSeconds), oldest first. */
  points: Schema.Array(HeartbeatPoint),
  /** Averages per bucket (with bucketSeconds), oldest first; empty buckets are left out. */
  buckets: Schema.Array(HeartbeatBucket),
  /** The agent's cost over the range; absent when the agent reports none (an agent before the battery budget). */
  agentCost: Schema.optional(AgentCost)
}) {}

export const HeartbeatRange = Schema.Struct({
  /** Default: 24 hours before `to`. */
  from: Schema.optional(Schema.Date),
  /** Default: now. */
  to: Schema.optional(Schema.Date),
  bucketSeconds: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 30 * 86400)))
})

export class DeviceEvent extends Schema.Class<DeviceEvent>("DeviceEvent")({
  id: Schema.String,
  at: Schema.Date,
  kind: Schema.String,
  presence: Schema.NullOr(Schema.String),
  reason: Schema.NullOr(Schema.String),
  detail: Schema.Unknown
}) {}

export const ListEvents = Schema.Struct({
  before: Schema.optional(Schema.Date),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 500)), { default: () => 100 })
})

export class FleetSummary extends Schema.Class<FleetSummary>("FleetSummary")({
  /** Devices not retired. */
  total: Schema.Int,
  byPresence: Schema.Struct({ connected: Schema.Int, overdue: Schema.Int, grace: Schema.Int, offline: Schema.Int }),
  /** Battery under 20 % and not charging. */
  lowBattery: Schema.Int,
  agentVersions: Schema.Array(Schema.Struct({ version: Schema.String, devices: Schema.Int })),
  retired: Schema.Int
}) {}

const id = HttpApiSchema.param("id", DeviceIdParam)

export class DevicesGroup extends protectedGroup("devices")
  .add(
    HttpApiEndpoint.get("list", "/devices")
      .setUrlParams(ListDevices)
      .addSuccess(DevicePage)
      .annotate(OpenApi.Summary, "List devices: filter, sort, cursor-paginate")
  )
  .add(
    HttpApiEndpoint.get("exportCsv", "/devices/export.csv")
      .setUrlParams(ExportDevices)
      .addSuccess(HttpApiSchema.Text({ contentType: "text/csv" }))
      .annotate(OpenApi.Summary, "Export the filtered device list as CSV")
  )
  .add(HttpApiEndpoint.get("get")`/devices/${id}`.addSuccess(Device).addError(NotFound).annotate(OpenApi.Summary, "One device with its live state"))
  .add(
    HttpApiEndpoint.patch("update")`/devices/${id}`
      .setPayload(UpdateDevice)
      .addSuccess(Device)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "Rename a device and/or replace its tags")
  )
  .add(
    HttpApiEndpoint.post("retire")`/devices/${id}/retire`
      .addSuccess(Device)
      .addError(NotFound)
      .addError(Conflict)
      .annotate(OpenApi.Summary, "Retire a device: void its credentials and close its socket")
  )
  .add(
    HttpApiEndpoint.get("heartbeats")`/devices/${id}/heartbeats`
      .setUrlParams(HeartbeatRange)
      .addSuccess(HeartbeatSeries)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "A device's heartbeats over a range, raw or averaged per bucket (at most 5,000 points)")
  )
  .add(
    HttpApiEndpoint.get("events")`/devices/${id}/events`
      .setUrlParams(ListEvents)
      .addSuccess(Schema.Array(DeviceEvent))
      .addError(NotFound)
      .annotate(OpenApi.Summary, "A device's events (presence transitions with reasons, enrolment, retirement), newest first")
  )
  .add(HttpApiEndpoint.get("summary", "/fleet/summary").addSuccess(FleetSummary).annotate(OpenApi.Summary, "Fleet counts: presence, low battery, agent versions"))
  .annotate(OpenApi.Description, "The device inventory with live presence and telemetry.") {}
