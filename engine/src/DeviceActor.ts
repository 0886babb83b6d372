/**
 * The device actor's behaviour as pure functions: `step(state, message, env)` returns the next
 * state and a list of effects (frames to send, rows to write, events to record). The registry
 * runs one actor per device and interprets the effects; tests run `step` directly, no runtime.
 *
 * Presence is explained, not a bare flag:
 *   connected  a socket is open (or HTTP heartbeats arrive) and heartbeats are on time
 *   overdue    connected, but no heartbeat for NEXMDM_OVERDUE_AFTER_S
 *   grace      the socket closed; the device is expected back within NEXMDM_GRACE_S (not "offline":
 *              a device that reconnects inside the window never flaps to offline)
 *   offline    grace ran out, or no heartbeat for NEXMDM_OFFLINE_AFTER_S
 * Every transition carries a reason and a time and is recorded as a device event.
 */
import type { Heartbeat, HttpHeartbeat } from "@nexmdm/protocol"
import { CloseCode } from "@nexmdm/protocol"
import type { DeviceEvent, Presence } from "./DeviceEventLog.js"
import type { HeartbeatRow } from "./TelemetryWriter.js"

export type Transport = "ws" | "http"

/** A live device socket as the actor sees it. */
export interface Connection {
  readonly id: number
  /** Sends a text frame; false when the socket is gone or its send buffer overflowed. */
  readonly send: (frame: string) => boolean
  readonly close: (code: number, reason: string) => void
}

export type HeartbeatSample = Omit<HeartbeatRow, "deviceId" | "recordedAt"> & { readonly recordedAt: number }

export interface DeviceRecord {
  readonly deviceId: string
  readonly generation: number
  readonly retired: boolean
  /** Highest seq persisted and the engine time it was recorded at (0 when none). */
  readonly durableSeq: number
  readonly lastRecordedAt: number
  readonly presence: Presence
  readonly presenceReason: string | undefined
  readonly presenceSince: number | undefined
}

export interface DeviceState {
  readonly deviceId: string
  readonly generation: number
  readonly retired: boolean
  readonly presence: Presence
  readonly presenceReason: string
  readonly presenceSince: number
  readonly transport: Transport | undefined
  readonly connection: Connection | undefined
  readonly disconnectedAt: number | undefined
  readonly lastHeartbeatAt: number | undefined
  readonly lastHeartbeat: HeartbeatSample | undefined
  /** Highest seq taken into the write buffer: anything at or below is a resend. */
  readonly acceptedSeq: number
  /** Highest seq committed to PostgreSQL. */
  readonly durableSeq: number
  /** Highest durableSeq the device was told. */
  readonly toldDurableSeq: number
  readonly lastRecordedAt: number
}

export interface ActorPolicy {
  readonly heartbeatIntervalS: number
  readonly ticketTtlMs: number
  readonly overdueAfterMs: number
  readonly offlineAfterMs: number
  readonly graceMs: number
  /** Quiet time after which a watermark advance is pushed in a `durable` frame. */
  readonly durableNoticeAfterMs: number
}

export interface Env {
  readonly now: number
  readonly policy: ActorPolicy
  /** Whether the write buffer takes `rows` more rows. */
  readonly writerHasRoom: (rows: number) => boolean
  /** The write-behind's latest durable watermark for this device (0 when it knows none). */
  readonly durableSeq: number
}

export interface HttpHeartbeatResult {
  readonly acked: ReadonlyArray<number>
  readonly durableSeq: number
  /** Set when some heartbeats were refused for lack of buffer space. */
  readonly backpressure: boolean
}

export type ActorMessage =
  | {
      readonly _tag: "Connect"
      readonly connection: Connection
      readonly generation: number
      readonly ticketExpiresAt: number
    }
  | { readonly _tag: "Disconnect"; readonly connectionId: number; readonly code: number }
  | {
      readonly _tag: "Heartbeat"
      readonly connectionId: number
      readonly heartbeat: Heartbeat
      /** performance.now() when the frame arrived, for the ack-latency metric. */
      readonly receivedAt: number
    }
  | {
      readonly _tag: "HttpHeartbeats"
      readonly generation: number
      readonly heartbeats: ReadonlyArray<HttpHeartbeat>
      readonly reply: (result: HttpHeartbeatResult | "superseded") => void
    }
  | { readonly _tag: "Tick" }
  /** The device enrolled again: tickets of older generations, and the socket using one, are void. */
  | { readonly _tag: "CredentialsReplaced"; readonly generation: number }

export type ActorEffect =
  | { readonly _tag: "Send"; readonly connection: Connection; readonly frame: string }
  | { readonly _tag: "Close"; readonly connection: Connection; readonly code: number; readonly reason: string }
  | { readonly _tag: "Write"; readonly row: HeartbeatRow }
  | { readonly _tag: "Record"; readonly event: DeviceEvent }
  | { readonly _tag: "Reply"; readonly run: () => void }
  /** Send the connection a fresh ticket (its current one is past half its life). */
  | { readonly _tag: "RenewTicket"; readonly connection: Connection }
  /** State that watchers see (presence or last heartbeat) changed. */
  | { readonly _tag: "Changed" }
  | { readonly _tag: "HeartbeatCounted"; readonly outcome: "accepted" | "duplicate" | "backpressure" }

export type Step = readonly [DeviceState, ReadonlyArray<ActorEffect>]

export const initialState = (record: DeviceRecord, now: number): DeviceState => ({
  deviceId: record.deviceId,
  generation: record.generation,
  retired: record.retired,
  // After an engine restart nobody is connected yet: start from what the database said,
  // but never claim a connection we do not have.
  presence: record.presence === "offline" ? "offline" : "grace",
  presenceReason: record.presence === "offline" ? (record.presenceReason ?? "never connected") : "engine restarted",
  presenceSince: record.presence === "offline" ? (record.presenceSince ?? now) : now,
  transport: undefined,
  connection: undefined,
  disconnectedAt: record.presence === "offline" ? undefined : now,
  lastHeartbeatAt: undefined,
  lastHeartbeat: undefined,
  acceptedSeq: record.durableSeq,
  durableSeq: record.durableSeq,
  toldDurableSeq: 0,
  lastRecordedAt: record.lastRecordedAt
})

const transition = (
  state: DeviceState,
  presence: Presence,
  reason: string,
  now: number,
  effects: Array<ActorEffect>
): DeviceState => {
  if (state.presence === presence) return state
  effects.push(
    { _tag: "Record", event: { deviceId: state.deviceId, at: now, kind: "presence", presence, reason } },
    { _tag: "Changed" }
  )
  return { ...state, presence, presenceReason: reason, presenceSince: now }
}

const ackFrame = (seq: number, durableSeq: number) => `{"type":"ack","seq":${seq},"durableSeq":${durableSeq}}`
const errorFrame = (code: string, message: string, extra = "") =>
  `{"type":"error","code":"${code}","message":${JSON.stringify(message)}${extra}}`

export const welcomeFrame = (state: DeviceState, now: number, ticketExpiresAt: number, heartbeatIntervalS: number) =>
  JSON.stringify({
    type: "welcome",
    deviceId: state.deviceId,
    serverTime: now,
    heartbeatIntervalS,
    durableSeq: state.durableSeq,
    ticketExpiresAt
  })

const seconds = (ms: number) => `${Math.round(ms / 1000)}s`

/** Accepts one heartbeat into the write buffer, or explains why not. */
const acceptHeartbeat = (
  state: DeviceState,
  heartbeat: HttpHeartbeat,
  transport: Transport,
  env: Env,
  effects: Array<ActorEffect>
): readonly [DeviceState, "accepted" | "duplicate" | "backpressure"] => {
  if (heartbeat.seq <= state.acceptedSeq) {
    effects.push({ _tag: "HeartbeatCounted", outcome: "duplicate" })
    return [state, "duplicate"]
  }
  if (!env.writerHasRoom(1)) {
    effects.push({ _tag: "HeartbeatCounted", outcome: "backpressure" })
    return [state, "backpressure"]
  }
  const recordedAt = Math.max(env.now, state.lastRecordedAt + 1)
  const sample: HeartbeatSample = {
    seq: heartbeat.seq,
    recordedAt,
    deviceTs: heartbeat.ts,
    batteryPct: heartbeat.batteryPct,
    charging: heartbeat.charging,
    memFreeMb: heartbeat.memFreeMb,
    memTotalMb: heartbeat.memTotalMb,
    storageFreeMb: heartbeat.storageFreeMb,
    network: heartbeat.network,
    signalDbm: heartbeat.signalDbm,
    foregroundApp: heartbeat.foregroundApp,
    agentVersion: heartbeat.agentVersion,
    uptimeS: heartbeat.uptimeS
  }
  effects.push(
    { _tag: "Write", row: { ...sample, deviceId: state.deviceId } },
    { _tag: "HeartbeatCounted", outcome: "accepted" },
    { _tag: "Changed" }
  )
  let next: DeviceState = {
    ...state,
    acceptedSeq: heartbeat.seq,
    lastRecordedAt: recordedAt,
    lastHeartbeat: sample,
    lastHeartbeatAt: env.now,
    transport: state.connection === undefined ? transport : state.transport
  }
  if (next.presence !== "connected") {
    const reason =
      next.presence === "overdue"
        ? "heartbeat resumed"
        : transport === "http"
          ? "heartbeat over HTTP fallback"
          : "heartbeat received"
    next = transition(next, "connected", reason, env.now, effects)
  }
  return [next, "accepted"]
}

export const step = (current: DeviceState, message: ActorMessage, env: Env): Step => {
  const effects: Array<ActorEffect> = []
  const state = env.durableSeq > current.durableSeq ? { ...current, durableSeq: env.durableSeq } : current
  const { now, policy } = env
  switch (message._tag) {
    case "Connect": {
      const { connection } = message
      if (state.retired) {
        effects.push(
          { _tag: "Send", connection, frame: errorFrame("DEVICE_RETIRED", "this device was retired: enrol it again") },
          { _tag: "Close", connection, code: CloseCode.deviceRetired, reason: "device retired" }
        )
        return [state, effects]
      }
      if (message.generation !== state.generation) {
        effects.push(
          { _tag: "Send", connection, frame: errorFrame("TICKET_INVALID", "credentials were replaced: get a new ticket") },
          { _tag: "Close", connection, code: CloseCode.unauthenticated, reason: "stale credentials" }
        )
        return [state, effects]
      }
      if (state.connection !== undefined) {
        effects.push(
          { _tag: "Send", connection: state.connection, frame: errorFrame("SUPERSEDED", "a newer connection of this device took over") },
          { _tag: "Close", connection: state.connection, code: CloseCode.superseded, reason: "superseded" }
        )
      }
      const reason = state.presence === "grace" ? "reconnected within grace" : "connected"
      let next: DeviceState = { ...state, connection, transport: "ws", disconnectedAt: undefined, toldDurableSeq: state.durableSeq }
      next = transition(next, "connected", reason, now, effects)
      if (next.presence === state.presence) effects.push({ _tag: "Changed" })
      effects.push({
        _tag: "Send",
        connection,
        frame: welcomeFrame(next, now, message.ticketExpiresAt, policy.heartbeatIntervalS)
      })
      if (message.ticketExpiresAt - now < policy.ticketTtlMs / 2) effects.push({ _tag: "RenewTicket", connection })
      return [next, effects]
    }
    case "Disconnect": {
      if (state.connection === undefined || state.connection.id !== message.connectionId) return [state, effects]
      let next: DeviceState = { ...state, connection: undefined, disconnectedAt: now }
      if (state.presence === "connected" || state.presence === "overdue") {
        next = transition(next, "grace", `socket closed (code ${message.code})`, now, effects)
      }
      return [next, effects]
    }
    case "Heartbeat": {
      const connection = state.connection
      // A frame from a connection that was superseded meanwhile: ignore it, the device resends.
      if (connection === undefined || connection.id !== message.connectionId) return [state, effects]
      const [next, outcome] = acceptHeartbeat(state, message.heartbeat, "ws", env, effects)
      if (outcome === "backpressure") {
        effects.push({
          _tag: "Send",
          connection,
          frame: errorFrame(
            "BACKPRESSURE",
            "engine write buffer is full: keep the heartbeat and resend later",
            `,"seq":${message.heartbeat.seq},"retryAfterMs":${policy.heartbeatIntervalS * 1000}`
          )
        })
        return [next, effects]
      }
      effects.push({ _tag: "Send", connection, frame: ackFrame(message.heartbeat.seq, next.durableSeq) })
      return [{ ...next, toldDurableSeq: next.durableSeq }, effects]
    }
    case "HttpHeartbeats": {
      if (message.generation !== state.generation || state.retired) {
        effects.push({ _tag: "Reply", run: () => message.reply("superseded") })
        return [state, effects]
      }
      let next = state
      const acked: Array<number> = []
      let backpressure = false
      for (const heartbeat of message.heartbeats) {
        const [after, outcome] = acceptHeartbeat(next, heartbeat, "http", env, effects)
        next = after
        if (outcome === "backpressure") {
          backpressure = true
          break // later seqs must not overtake the refused one
        }
        acked.push(heartbeat.seq)
      }
      const result: HttpHeartbeatResult = { acked, durableSeq: next.durableSeq, backpressure }
      effects.push({ _tag: "Reply", run: () => message.reply(result) })
      return [next, effects]
    }
    case "CredentialsReplaced": {
      if (message.generation <= state.generation) return [state, effects]
      let next: DeviceState = { ...state, generation: message.generation, retired: false }
      if (state.connection !== undefined) {
        effects.push(
          { _tag: "Send", connection: state.connection, frame: errorFrame("TICKET_INVALID", "credentials were replaced: get a new ticket") },
          { _tag: "Close", connection: state.connection, code: CloseCode.unauthenticated, reason: "stale credentials" }
        )
        next = { ...next, connection: undefined, disconnectedAt: now }
        next = transition(next, "grace", "credentials replaced by re-enrolment", now, effects)
      }
      return [next, effects]
    }
    case "Tick": {
      let next = state
      const silentFor = now - (state.lastHeartbeatAt ?? state.presenceSince)
      if (state.presence === "connected" || state.presence === "overdue") {
        if (silentFor >= policy.offlineAfterMs) {
          next = transition(next, "offline", `no heartbeat for ${seconds(silentFor)}`, now, effects)
        } else if (state.presence === "connected" && silentFor >= policy.overdueAfterMs) {
          next = transition(
            next,
            "overdue",
            `heartbeat overdue: none for ${seconds(silentFor)} (interval ${policy.heartbeatIntervalS}s)`,
            now,
            effects
          )
        }
      } else if (state.presence === "grace" && now - (state.disconnectedAt ?? state.presenceSince) >= policy.graceMs) {
        next = transition(next, "offline", `${state.presenceReason}; no reconnect within ${seconds(policy.graceMs)}`, now, effects)
      }
      if (next.connection !== undefined && next.durableSeq > next.toldDurableSeq) {
        effects.push({ _tag: "Send", connection: next.connection, frame: `{"type":"durable","durableSeq":${next.durableSeq}}` })
        next = { ...next, toldDurableSeq: next.durableSeq }
      }
      return [next, effects]
    }
  }
}

/** What the sweeper checks, without a message, to decide whether an actor needs a Tick. */
export const needsTick = (state: DeviceState, now: number, policy: ActorPolicy): boolean => {
  switch (state.presence) {
    case "connected":
    case "overdue": {
      const silentFor = now - (state.lastHeartbeatAt ?? state.presenceSince)
      if (silentFor >= policy.offlineAfterMs) return true
      if (state.presence === "connected" && silentFor >= policy.overdueAfterMs) return true
      break
    }
    case "grace":
      if (now - (state.disconnectedAt ?? state.presenceSince) >= policy.graceMs) return true
      break
    case "offline":
      break
  }
  return (
    state.connection !== undefined &&
    state.durableSeq > state.toldDurableSeq &&
    now - (state.lastHeartbeatAt ?? 0) >= policy.durableNoticeAfterMs
  )
}
