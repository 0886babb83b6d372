/** Handlers of `DevicesGroup`: the `DeviceQueries` service; changes audited, the actor told after commit. */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import * as DeviceQueries from "../../devices/DeviceQueries.js"
import { Conflict, NotFound, ValidationError } from "../AdminErrors.js"
import { AdminApi } from "../AdminApi.js"
import { Audit } from "../Audit.js"
import { auditContext, orInternal } from "../internal/handlers.js"
import { CurrentPrincipal } from "../Principal.js"
import { AgentCost, Device, DeviceEvent, DevicePage, FleetSummary, HeartbeatBucket, HeartbeatPoint, HeartbeatSeries, LatestHeartbeat } from "./DevicesGroup.js"

const toDevice = (info: DeviceQueries.DeviceInfo) =>
  new Device({ ...info, heartbeat: info.heartbeat === null ? null : new LatestHeartbeat(info.heartbeat) })

const notFound = (error: DeviceQueries.DeviceMissing) => new NotFound({ message: `no device ${error.deviceId}` })
const invalid = (error: DeviceQueries.DeviceQueryInvalid) => new ValidationError({ code: "VALIDATION_FAILED", message: error.message, issues: [] })

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180), safe to open in a spreadsheet

const CSV_COLUMNS = [
  "id", "name", "hardwareId", "model", "manufacturer", "osVersion", "agentVersion", "tags", "presence", "presenceReason",
  "presenceSince", "lastSeenAt", "batteryPct", "charging", "memFreeMb", "memTotalMb", "storageFreeMb", "network", "signalDbm", "foregroundApp"
] as const

/** Quotes when needed; a cell a spreadsheet would run as a formula (= + - @, tab, CR) gets a leading quote. */
export const csvCell = (value: string | number | boolean | null | undefined): string => {
  if (value === null || value === undefined) return ""
  let text = String(value)
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

const csvRow = (info: DeviceQueries.DeviceInfo): string => {
  const hb = info.heartbeat
  return [
    info.id, info.name, info.hardwareId, info.model, info.manufacturer, info.osVersion, info.agentVersion, info.tags.join(";"), info.presence,
    info.presenceReason, info.presenceSince?.toISOString(), info.lastSeenAt?.toISOString(), hb?.batteryPct, hb?.charging, hb?.memFreeMb,
    hb?.memTotalMb, hb?.storageFreeMb, hb?.network, hb?.signalDbm, hb?.foregroundApp
  ]
    .map(csvCell)
    .join(",")
}

/** Rows exported at most (the list's pages, walked server-side). */
const EXPORT_MAX = 100_000

const DAY_MS = 86_400_000

export const DevicesGroupLive = HttpApiBuilder.group(AdminApi, "devices", (handlers) =>
  Effect.gen(function* () {
    const devices = yield* DeviceQueries.DeviceQueries
    const audit = yield* Audit
    return handlers
      .handle("list", ({ urlParams }) =>
        devices.list(urlParams).pipe(
          Effect.map((page) => new DevicePage({ items: page.items.map(toDevice), nextCursor: page.nextCursor })),
          Effect.catchTag("DeviceQueryInvalid", (error) => Effect.fail(invalid(error))),
          orInternal
        )
      )
      .handle("exportCsv", ({ urlParams }) =>
        Effect.gen(function* () {
          const lines: Array<string> = [CSV_COLUMNS.join(",")]
          let cursor: string | undefined = undefined
          do {
            const page: DeviceQueries.DevicePage = yield* devices.list({ ...urlParams, cursor, limit: 500 })
            for (const item of page.items) lines.push(csvRow(item))
            cursor = page.nextCursor ?? undefined
          } while (cursor !== undefined && lines.length <= EXPORT_MAX)
          return HttpServerResponse.text(lines.join("\r\n") + "\r\n", {
            contentType: "text/csv; charset=utf-8",
            headers: { "content-disposition": 'attachment; filename="devices.csv"' }
          })
        }).pipe(
          Effect.catchTag("DeviceQueryInvalid", (error) => Effect.fail(invalid(error))),
          orInternal
        )
      )
      .handle("get", ({ path }) =>
        devices.get(path.id).pipe(Effect.map(toDevice), Effect.catchTag("DeviceMissing", (error) => Effect.fail(notFound(error))), orInternal)
      )
      .handle("update", ({ path, payload }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const tags = payload.tags === undefined ? undefined : [...new Set(payload.tags)]
          yield* audit.inTransaction(
            context,
            {
              action: "device.update",
              target: { kind: "device", id: path.id },
              detail: { ...(payload.name === undefined ? {} : { name: payload.name }), ...(tags === undefined ? {} : { tags }) }
            },
            devices.update(path.id, { name: payload.name, tags })
          )
          return toDevice(yield* devices.get(path.id))
        }).pipe(Effect.catchTag("DeviceMissing", (error) => Effect.fail(notFound(error))), orInternal)
      )
      .handle("retire", ({ path }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          const principal = yield* CurrentPrincipal
          const retired = yield* audit.inTransaction(
            context,
            { action: "device.retire", target: { kind: "device", id: path.id } },
            Effect.flatMap(devices.retire(path.id), (result) =>
              result === null ? Effect.fail(new Conflict({ message: `device ${path.id} is already retired` })) : Effect.succeed(result)
            )
          )
          yield* devices.retired(path.id, retired.generation, `${principal.kind}:${principal.id}`)
          return toDevice(yield* devices.get(path.id))
        }).pipe(Effect.catchTag("DeviceMissing", (error) => Effect.fail(notFound(error))), orInternal)
      )
      .handle("heartbeats", ({ path, urlParams }) =>
        Effect.gen(function* () {
          const to = urlParams.to ?? new Date()
          const from = urlParams.from ?? new Date(to.getTime() - DAY_MS)
          const series = yield* devices.heartbeats(path.id, { from, to, bucketSeconds: urlParams.bucketSeconds })
          return new HeartbeatSeries({
            from,
            to,
            bucketSeconds: urlParams.bucketSeconds ?? null,
            points: series._tag === "Raw" ? series.points.map((point) => new HeartbeatPoint(point)) : [],
            buckets: series._tag === "Buckets" ? series.buckets.map((bucket) => new HeartbeatBucket(bucket)) : [],
            ...(series.agentCost === undefined ? {} : { agentCost: new AgentCost(series.agentCost) })
          })
        }).pipe(
          Effect.catchTags({
            DeviceMissing: (error) => Effect.fail(notFound(error)),
            DeviceQueryInvalid: (error) => Effect.fail(invalid(error))
          }),
          orInternal
        )
      )
      .handle("events", ({ path, urlParams }) =>
        devices.events(path.id, urlParams).pipe(
          Effect.map((events) => events.map((event) => new DeviceEvent(event))),
          Effect.catchTag("DeviceMissing", (error) => Effect.fail(notFound(error))),
          orInternal
        )
      )
      .handle("summary", () => devices.summary.pipe(Effect.map((summary) => new FleetSummary(summary)), orInternal))
  })
).pipe(Layer.provide(DeviceQueries.layer))
