/**
 * Throttle and digest, as pure functions over explicit times. The first notice of a rule opens its
 * window; every notice of that rule until the window ends joins it; at the end of the window one
 * digest goes out with the counts and the first `LIST_LIMIT` entries of each kind. So a site
 * losing power gives each recipient one mail listing its devices, and a rule mails at most once
 * per window. A window of 0 sends at the next evaluation.
 */
import type { AlertKind } from "../AlertRule.js"

export interface Notice {
  readonly alertId: string
  readonly change: "opened" | "resolved"
  readonly deviceId: string | null
  readonly summary: string
  readonly at: number
}

export interface RuleInfo {
  readonly id: string
  readonly name: string
  readonly kind: AlertKind
  readonly recipients: ReadonlyArray<string>
  readonly windowMs: number
}

export interface Pending {
  readonly rule: RuleInfo
  /** When the first notice arrived: the window ends at `since + rule.windowMs`. */
  readonly since: number
  readonly opened: number
  readonly resolved: number
  /** The first LIST_LIMIT notices of each change, in arrival order. */
  readonly openedList: ReadonlyArray<Notice>
  readonly resolvedList: ReadonlyArray<Notice>
}

export type DigestState = ReadonlyMap<string, Pending>

export const empty: DigestState = new Map()

export const LIST_LIMIT = 100

/** Adds a notice, seen at `now`, to its rule's window (opening the window if none is open). */
export const add = (state: DigestState, rule: RuleInfo, notice: Notice, now: number): DigestState => {
  const current = state.get(rule.id) ?? { rule, since: now, opened: 0, resolved: 0, openedList: [], resolvedList: [] }
  const opened = notice.change === "opened"
  const next: Pending = {
    // The latest recipients and name win; the window keeps its start.
    rule: { ...rule, windowMs: current.rule.windowMs },
    since: current.since,
    opened: current.opened + (opened ? 1 : 0),
    resolved: current.resolved + (opened ? 0 : 1),
    openedList: opened && current.openedList.length < LIST_LIMIT ? [...current.openedList, notice] : current.openedList,
    resolvedList: !opened && current.resolvedList.length < LIST_LIMIT ? [...current.resolvedList, notice] : current.resolvedList
  }
  return new Map(state).set(rule.id, next)
}

/** Takes the digests whose window has ended at `now` (all of them when `now` is Infinity). */
export const due = (state: DigestState, now: number): readonly [DigestState, ReadonlyArray<Pending>] => {
  const ready: Array<Pending> = []
  const rest = new Map<string, Pending>()
  for (const [ruleId, pending] of state) {
    if (pending.since + pending.rule.windowMs <= now) ready.push(pending)
    else rest.set(ruleId, pending)
  }
  return ready.length === 0 ? [state, ready] : [rest, ready]
}

/** Drops a rule's pending notices (the rule was deleted). */
export const drop = (state: DigestState, ruleId: string): DigestState => {
  if (!state.has(ruleId)) return state
  const next = new Map(state)
  next.delete(ruleId)
  return next
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

const section = (title: string, total: number, list: ReadonlyArray<Notice>) => {
  if (total === 0) return []
  const lines = [`${title} (${total}):`]
  for (const notice of list) lines.push(`- ${notice.deviceId ?? "engine"}: ${notice.summary} [${iso(notice.at)}, alert ${notice.alertId}]`)
  if (total > list.length) lines.push(`- ... and ${total - list.length} more (see the alert list)`)
  return [...lines, ""]
}

/** The digest mail: subject and plain text. */
export const render = (pending: Pending, now: number): { readonly subject: string; readonly text: string } => {
  const { rule, opened, resolved } = pending
  const counts = [opened > 0 ? `${opened} new` : undefined, resolved > 0 ? `${resolved} resolved` : undefined]
    .filter((part) => part !== undefined)
    .join(", ")
  const single = opened + resolved === 1 ? (pending.openedList[0] ?? pending.resolvedList[0]) : undefined
  const subject = single === undefined
    ? `[NexMDM] ${rule.name}: ${counts}`
    : `[NexMDM] ${rule.name}: ${single.change === "resolved" ? "resolved: " : ""}${single.deviceId ?? "engine"} ${single.summary}`
  const text = [
    `Alert rule "${rule.name}" (${rule.kind}): ${plural(opened, "new alert")}, ${resolved} resolved`,
    `between ${iso(pending.since)} and ${iso(now)}.`,
    "",
    ...section("New", opened, pending.openedList),
    ...section("Resolved", resolved, pending.resolvedList),
    "Sent by NexMDM. Alerts are listed and resolved in the admin console."
  ].join("\n")
  const line = subject.replace(/\s+/g, " ")
  return { subject: line.length > 200 ? `${line.slice(0, 197)}...` : line, text }
}
