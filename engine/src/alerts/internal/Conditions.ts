/**
 * What each rule kind sees, as pure functions: a device's latest state (or the write backlog) in,
 * an `Observation` out: the condition `Holds` for a key (open or repeat), is `Clear` (resolve), or
 * nothing is said (between the open and resolve thresholds, or not known yet).
 * `reconcile` compares observations with what is firing and returns what to do. Tests run these
 * without a runtime.
 */
import type { Presence } from "../../DeviceEventLog.js"

/** What the evaluator keeps of a device (from the registry's change stream). */
export interface DeviceSample {
  readonly deviceId: string
  readonly presence: Presence
  readonly presenceReason: string
  readonly presenceSince: number
  readonly batteryPct: number | undefined
  readonly charging: boolean | undefined
}

export type Observation =
  | {
      readonly _tag: "Holds"
      readonly key: string
      readonly deviceId: string | null
      /**
       * Which occurrence this is (e.g. when the device went offline). The same episode seen again
       * changes nothing; a new episode while the alert is open counts as a repeat.
       */
      readonly episode: string
      readonly summary: string
      readonly detail: Readonly<Record<string, unknown>>
    }
  | { readonly _tag: "Clear"; readonly key: string }

/** A key with an open alert, or (alertId undefined) one resolved by hand while its condition still held. */
export interface Firing {
  readonly alertId: string | undefined
  readonly episode: string
}

export type Action =
  /** Open an alert, or fold a repeat into the open one. */
  | { readonly _tag: "Open"; readonly observation: Extract<Observation, { _tag: "Holds" }> }
  | { readonly _tag: "Resolve"; readonly key: string }
  /** A hand-resolved key whose condition ended: it may fire again. */
  | { readonly _tag: "Forget"; readonly key: string }

const minutes = (ms: number) => (ms < 60_000 ? `${Math.max(0, Math.round(ms / 1000))} s` : `${Math.round(ms / 60_000)} min`)

export const deviceOffline = (params: { readonly minutes: number }, device: DeviceSample, now: number): Observation | undefined => {
  if (device.presence === "connected") return { _tag: "Clear", key: device.deviceId }
  if (device.presence !== "offline" || now - device.presenceSince < params.minutes * 60_000) return undefined
  return {
    _tag: "Holds",
    key: device.deviceId,
    deviceId: device.deviceId,
    episode: String(device.presenceSince),
    summary: `offline for ${minutes(now - device.presenceSince)} (${device.presenceReason})`,
    detail: { offlineSince: new Date(device.presenceSince).toISOString(), reason: device.presenceReason }
  }
}

/** Hysteresis: a battery hovering around the threshold opens once and resolves once. */
export const BATTERY_CLEAR_MARGIN = 5

export const batteryLow = (params: { readonly belowPct: number }, device: DeviceSample): Observation | undefined => {
  if (device.batteryPct === undefined || device.charging === undefined) return undefined
  if (device.charging || device.batteryPct >= params.belowPct + BATTERY_CLEAR_MARGIN) return { _tag: "Clear", key: device.deviceId }
  if (device.batteryPct >= params.belowPct) return undefined
  return {
    _tag: "Holds",
    key: device.deviceId,
    deviceId: device.deviceId,
    episode: "low",
    summary: `battery at ${device.batteryPct}% and not charging (threshold ${params.belowPct}%)`,
    detail: { batteryPct: device.batteryPct, belowPct: params.belowPct }
  }
}

export const ENGINE_KEY = "engine"

export const writeBacklog = (params: { readonly rows: number }, buffered: number): Observation =>
  buffered > params.rows
    ? {
        _tag: "Holds",
        key: ENGINE_KEY,
        deviceId: null,
        episode: "backlog",
        summary: `${buffered} heartbeat rows waiting to be written (threshold ${params.rows})`,
        detail: { bufferedRows: buffered, thresholdRows: params.rows }
      }
    : { _tag: "Clear", key: ENGINE_KEY }

/** What to do about one rule's observations, given what is firing for it. */
export const reconcile = (firing: ReadonlyMap<string, Firing>, observations: Iterable<Observation>): Array<Action> => {
  const actions: Array<Action> = []
  for (const observation of observations) {
    const current = firing.get(observation.key)
    if (observation._tag === "Holds") {
      if (current === undefined || current.episode !== observation.episode) actions.push({ _tag: "Open", observation })
    } else if (current !== undefined) {
      actions.push(current.alertId === undefined ? { _tag: "Forget", key: observation.key } : { _tag: "Resolve", key: observation.key })
    }
  }
  return actions
}
