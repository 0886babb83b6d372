/** Display helpers: short, consistent, locale-aware where it matters. */
export const relativeTime = (epochMs: number | null | undefined, now = Date.now()): string => {
  if (epochMs === null || epochMs === undefined || Number.isNaN(epochMs)) return "never"
  const seconds = Math.round((now - epochMs) / 1000)
  if (seconds < 5) return "just now"
  if (seconds < 60) return `${seconds}s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`
  return `${Math.floor(seconds / 86400)}d ago`
}

export const dateTime = (value: string | number | null | undefined): string =>
  value === null || value === undefined ? "—" : new Date(value).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" })

export const megabytes = (mb: number | null | undefined): string =>
  mb === null || mb === undefined ? "—" : mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${Math.round(mb)} MB`

export const presenceTone = (presence: string) =>
  presence === "connected" ? "green" : presence === "grace" ? "indigo" : presence === "overdue" ? "amber" : "red"

export const presenceLabel: Record<string, string> = { connected: "Online", grace: "Reconnecting", overdue: "Overdue", offline: "Offline" }

export const statusTone = (status: string) =>
  status === "succeeded" ? "green" : status === "failed" || status === "expired" ? "red" : status === "cancelled" ? "slate" : "indigo"
