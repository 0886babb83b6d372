/** One device's history from four sources, merged newest first (pure: unit-tested). */
import type { AuditRecord, Command, DeviceEvent } from "./model"

export interface TimelineEntry {
  readonly at: number
  readonly source: "event" | "command" | "alert" | "audit"
  readonly title: string
  readonly detail: string
  readonly id: string
}

export const mergeTimeline = (parts: {
  readonly events: ReadonlyArray<DeviceEvent>
  readonly commands: ReadonlyArray<Command>
  readonly alerts: ReadonlyArray<{ readonly id: string; readonly openedAt?: unknown; readonly summary?: unknown; readonly state?: unknown; readonly kind?: unknown }>
  readonly audit: ReadonlyArray<AuditRecord>
}): Array<TimelineEntry> => {
  const entries: Array<TimelineEntry> = []
  for (const event of parts.events) {
    entries.push({
      at: Date.parse(event.at),
      source: "event",
      id: event.id,
      title: event.presence === null ? event.kind : `${event.kind}: ${event.presence}`,
      detail: event.reason ?? ""
    })
  }
  for (const command of parts.commands) {
    entries.push({
      at: Date.parse(command.createdAt),
      source: "command",
      id: command.id,
      title: `${command.type} → ${command.status}`,
      detail: [`by ${command.createdBy}`, command.error === null ? "" : `error: ${command.error}`].filter((text) => text !== "").join(" · ")
    })
  }
  for (const alert of parts.alerts) {
    entries.push({
      at: Date.parse(String(alert.openedAt ?? "")),
      source: "alert",
      id: alert.id,
      title: `${String(alert.kind ?? "alert")} (${String(alert.state ?? "")})`,
      detail: String(alert.summary ?? "")
    })
  }
  for (const record of parts.audit) {
    entries.push({
      at: Date.parse(record.at),
      source: "audit",
      id: record.id,
      title: `${record.action} (${record.outcome})`,
      detail: `by ${record.actorLabel ?? record.actorKind}${record.sourceIp === null ? "" : ` from ${record.sourceIp}`}`
    })
  }
  return entries.filter((entry) => !Number.isNaN(entry.at)).sort((a, b) => b.at - a.at || a.id.localeCompare(b.id))
}
