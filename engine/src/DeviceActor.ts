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
import type { CommandAck, CommandResult, ErrorCode, Heartbeat, HttpHeartbeat } from "@nexmdm/protocol"
import { CloseCode } from "@nexmdm/protocol"
import { applyReport, type CommandTransition, type NewCommand, type OpenCommand, openCommand } from "./CommandLifecycle.js"
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

/** The actor's copy of its latest heartbeat: one object per device, overwritten in place. */
export type MutableHeartbeatSample = { -readonly [K in keyof HeartbeatSample]: HeartbeatSample[K] }

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
  /** Key the engine signs this device's commands with. */
  readonly hmacKey: Uint8Array
  /** FCM registration token, when the device registered one and FCM has not rejected it. */
  readonly fcmToken: string | undefined
  /** Commands not finished yet, oldest first. */
  readonly openCommands: ReadonlyArray<NewCommand>
  /** The device's own heartbeat interval (a succeeded set_heartbeat_interval), if any. */
  readonly heartbeatIntervalS: number | undefined
}

/** An HTTP-fallback device waiting for messages (long-poll). */
export interface PollWaiter {
  readonly id: number
  readonly deadline: number
  readonly reply: (answer: { readonly frames: ReadonlyArray<string>; readonly durableSeq: number } | "superseded" | "retired") => void
}

/**
 * An actor's state. It belongs to one actor and `step` is its only writer. Most messages are rare
 * and replace the state with a copy; the fields a heartbeat changes (marked "hot") are updated in
 * place instead: a heartbeat then allocates nothing that outlives it. Objects that lived one
 * heartbeat interval (~1 s) survived two young-generation GCs, were promoted, and grew the old
 * generation by ~1 MB/s at 2,000 devices, which is where the engine's memory went.
 */
export interface DeviceState {
  readonly deviceId: string
  readonly generation: number
  readonly retired: boolean
  readonly presence: Presence
  readonly presenceReason: string
  readonly presenceSince: number
  /** Hot. */
  transport: Transport | undefined
  readonly connection: Connection | undefined
  readonly disconnectedAt: number | undefined
  /**
   * Hot. Engine time of the latest heartbeat, 0 when none yet. A number from the start (not
   * undefined): V8 then keeps the field as an unboxed double updated in place, where a field that
   * ever held undefined boxes every new value in a fresh heap number, which lived one heartbeat
   * interval and was promoted (~160 KB/s at 10,000 devices).
   */
  lastHeartbeatAt: number
  /** Hot: overwritten field by field; copy it before handing it out (see DeviceRegistry's views). */
  lastHeartbeat: MutableHeartbeatSample | undefined
  /** Hot. Highest seq taken into the write buffer: anything at or below is a resend. */
  acceptedSeq: number
  /** Hot. Highest seq committed to PostgreSQL. */
  durableSeq: number
  /** Hot. Highest durableSeq the device was told. */
  toldDurableSeq: number
  /** Hot. */
  lastRecordedAt: number
  readonly hmacKey: Uint8Array
  readonly fcmToken: string | undefined
  /** Set by a succeeded set_heartbeat_interval: the device heartbeats at this interval instead of the engine's. */
  readonly heartbeatIntervalS: number | undefined
  /** Open commands, oldest first: sent in this order, and resent in it after a reconnect. */
  readonly commands: ReadonlyArray<OpenCommand>
  readonly pollWaiter: PollWaiter | undefined
  /**
   * The lowest seq refused (buffer full, rate limit, full mailbox) and when. Until the device
   * resends it, later seqs are refused too: otherwise they would overtake it, and its resend would
   * look like a duplicate (and the durable watermark would pass over a row that is not stored).
   */
  readonly refusedFrom: { readonly seq: number; readonly since: number } | undefined
}

export interface ActorPolicy {
  readonly heartbeatIntervalS: number
  readonly ticketTtlMs: number
  readonly overdueAfterMs: number
  readonly offlineAfterMs: number
  readonly graceMs: number
  /** Quiet time after which a watermark advance is pushed in a `durable` frame. */
  readonly durableNoticeAfterMs: number
  /** Wait between FCM wake-ups of an absent device with queued commands, and how many to send. */
  readonly wakeRetryMs: number
  readonly maxWakeups: number
  readonly battery: BatteryPolicy
}

export interface Env {
  readonly now: number
  readonly policy: ActorPolicy
  /** Whether the write buffer takes `rows` more rows. */
  readonly writerHasRoom: (rows: number) => boolean
  /** The write-behind's latest durable watermark for this device (0 when it knows none). */
  readonly durableSeq: number
  /** Lowest heartbeat seq the runtime refused since the last step because the mailbox was full. */
  readonly overflowSeq?: number | undefined
}

/** A device that never resends a refused seq (it lost it) is not blocked longer than this. */
export const REFUSAL_GATE_MS = 5 * 60_000

export interface HttpHeartbeatResult {
  readonly acked: ReadonlyArray<number>
  readonly durableSeq: number
  /** Set when some heartbeats were refused for lack of buffer space. */
  readonly backpressure: boolean
  /** The device's heartbeat interval (its own, or the engine's): what the answer announces. */
  readonly intervalS: number
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
      /** The connection's rate limit was exceeded: refuse it (the actor still learns its seq). */
      readonly rateLimitedMs?: number | undefined
    }
  | {
      readonly _tag: "HttpHeartbeats"
      readonly generation: number
      readonly heartbeats: ReadonlyArray<HttpHeartbeat>
      readonly reply: (result: HttpHeartbeatResult | "superseded" | "retired") => void
    }
  | { readonly _tag: "Tick" }
  /** The device enrolled again: tickets of older generations, and the socket using one, are void. */
  | { readonly _tag: "CredentialsReplaced"; readonly generation: number; readonly hmacKey: Uint8Array }
  | { readonly _tag: "CommandQueued"; readonly command: NewCommand }
  | {
      readonly _tag: "CommandReport"
      readonly connectionId: number | undefined
      /** Set for HTTP reports: the ticket's credential generation (a socket was checked at connect). */
      readonly generation?: number | undefined
      readonly report: CommandAck | CommandResult
    }
  | { readonly _tag: "CancelCommand"; readonly commandId: string; readonly reply: (cancelled: boolean) => void }
  /** HTTP fallback: give me my messages, waiting up to `waitMs` for one. */
  | {
      readonly _tag: "Poll"
      readonly generation: number
      readonly waiterId: number
      readonly waitMs: number
      readonly reply: (answer: { readonly frames: ReadonlyArray<string>; readonly durableSeq: number } | "superseded" | "retired") => void
    }
  | { readonly _tag: "FcmToken"; readonly token: string | undefined }
  /** An admin retired the device: its socket is closed and it may not connect again (until re-enrolled). */
  | { readonly _tag: "Retired"; readonly generation: number }

export type ActorEffect =
  | { readonly _tag: "Send"; readonly connection: Connection; readonly frame: string }
  | { readonly _tag: "Close"; readonly connection: Connection; readonly code: number; readonly reason: string }
  | { readonly _tag: "Write"; readonly row: HeartbeatRow }
  | { readonly _tag: "Record"; readonly event: DeviceEvent }
  | { readonly _tag: "Reply"; readonly run: () => void }
  /** Send the connection a fresh ticket (its current one is past half its life). */
  | { readonly _tag: "RenewTicket"; readonly connection: Connection }
  | { readonly _tag: "CommandChanged"; readonly transition: CommandTransition }
  /** Wake the absent device through FCM so it connects and fetches its commands. */
  | { readonly _tag: "Wake"; readonly commandId: string; readonly fcmToken: string; readonly attempt: number }
  /** The device's own heartbeat interval changed (undefined: back to the engine's): persist it. */
  | { readonly _tag: "HeartbeatIntervalChanged"; readonly intervalS: number | undefined }
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
  lastHeartbeatAt: 0,
  lastHeartbeat: undefined,
  acceptedSeq: record.durableSeq,
  durableSeq: record.durableSeq,
  toldDurableSeq: 0,
  lastRecordedAt: record.lastRecordedAt,
  hmacKey: record.hmacKey,
  fcmToken: record.fcmToken,
  heartbeatIntervalS: record.heartbeatIntervalS,
  commands: record.openCommands.map((command) => openCommand(record.deviceId, record.hmacKey, command)),
  pollWaiter: undefined,
  refusedFrom: undefined
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
/** An error frame as text; `extra` appends already-encoded fields (e.g. `,"seq":5`). */
export const errorFrame = (code: ErrorCode, message: string, extra = "") =>
  `{"type":"error","code":"${code}","message":${JSON.stringify(message)}${extra}}`

/** How the advised interval (PROTOCOL.md 9.6) stretches the device's interval by power state. */
export interface BatteryPolicy {
  readonly batteryFactor: number
  readonly meteredFactor: number
  readonly lowBatteryFactor: number
  readonly lowBatteryPct: number
  readonly dozeFactor: number
  readonly dozeMinS: number
}

const MAX_INTERVAL_S = 86_400

/** The `heartbeatPolicy` announced to a device whose interval is `intervalS`. */
export const heartbeatPolicyFor = (intervalS: number, battery: BatteryPolicy) => {
  const scaled = (factor: number, atLeast = 1) => Math.min(MAX_INTERVAL_S, Math.max(atLeast, Math.round(intervalS * factor)))
  return {
    chargingS: scaled(1),
    batteryS: scaled(battery.batteryFactor),
    meteredS: scaled(battery.meteredFactor),
    lowBatteryS: scaled(battery.lowBatteryFactor),
    lowBatteryPct: battery.lowBatteryPct,
    dozeS: scaled(battery.dozeFactor, battery.dozeMinS)
  }
}

/**
 * The interval a device is told to heartbeat at (`intervalS`: its own from set_heartbeat_interval,
 * else the engine's), the pace it says it keeps (`paceS`: the larger of that and the `intervalS`
 * of its latest heartbeat, which follows the battery policy), and the engine's thresholds for it.
 * Overdue and offline scale with the pace: a phone told to heartbeat every 10 minutes, or one in
 * Doze following the advice, is not overdue after the engine's 75 seconds. Never shorter than
 * the configured thresholds.
 */
export const timingOf = (state: DeviceState, policy: ActorPolicy) => {
  const intervalS = state.heartbeatIntervalS ?? policy.heartbeatIntervalS
  const reported = state.lastHeartbeat?.intervalS
  const paceS = reported !== undefined && reported > intervalS ? reported : intervalS
  if (paceS <= policy.heartbeatIntervalS) {
    return { intervalS, paceS, overdueAfterMs: policy.overdueAfterMs, offlineAfterMs: policy.offlineAfterMs }
  }
  const factor = paceS / policy.heartbeatIntervalS
  return {
    intervalS,
    paceS,
    overdueAfterMs: Math.round(policy.overdueAfterMs * factor),
    offlineAfterMs: Math.round(policy.offlineAfterMs * factor)
  }
}

export const welcomeFrame = (state: DeviceState, now: number, ticketExpiresAt: number, policy: ActorPolicy) => {
  const intervalS = timingOf(state, policy).intervalS
  return JSON.stringify({
    type: "welcome",
    deviceId: state.deviceId,
    serverTime: now,
    heartbeatIntervalS: intervalS,
    durableSeq: state.durableSeq,
    ticketExpiresAt,
    heartbeatPolicy: heartbeatPolicyFor(intervalS, policy.battery)
  })
}

const seconds = (ms: number) => `${Math.round(ms / 1000)}s`

/**
 * A device's first sample, as an object literal. Built by rest or spread (`{ ...row }`), it came
 * out with 17 properties added one by one: a dictionary-mode object, whose every in-place update
 * boxed the new numbers (engine CPU at 10,000 devices went from 44 % to 51 %).
 */
const sampleOf = (row: HeartbeatRow): MutableHeartbeatSample => ({
  seq: row.seq,
  recordedAt: row.recordedAt,
  deviceTs: row.deviceTs,
  batteryPct: row.batteryPct,
  charging: row.charging,
  memFreeMb: row.memFreeMb,
  memTotalMb: row.memTotalMb,
  storageFreeMb: row.storageFreeMb,
  network: row.network,
  signalDbm: row.signalDbm,
  foregroundApp: row.foregroundApp,
  agentVersion: row.agentVersion,
  uptimeS: row.uptimeS,
  intervalS: row.intervalS,
  wakeups: row.wakeups,
  txBytes: row.txBytes,
  reconnects: row.reconnects
})

/** Remembers a refused seq so that later seqs cannot overtake it. */
const refuse = (state: DeviceState, seq: number, now: number): DeviceState =>
  state.refusedFrom !== undefined && state.refusedFrom.seq <= seq ? state : { ...state, refusedFrom: { seq, since: state.refusedFrom?.since ?? now } }

/**
 * Accepts one heartbeat into the write buffer, or explains why not. `pending` counts rows this
 * step already decided to write (they reach the buffer only when the effects run).
 */
const acceptHeartbeat = (
  current: DeviceState,
  heartbeat: HttpHeartbeat,
  transport: Transport,
  env: Env,
  effects: Array<ActorEffect>,
  pending = 0
): readonly [DeviceState, "accepted" | "duplicate" | "backpressure"] => {
  let state = current
  if (heartbeat.seq <= state.acceptedSeq) {
    effects.push({ _tag: "HeartbeatCounted", outcome: "duplicate" })
    return [state, "duplicate"]
  }
  const gate = state.refusedFrom
  if (gate !== undefined) {
    if (heartbeat.seq > gate.seq && env.now - gate.since < REFUSAL_GATE_MS) {
      effects.push({ _tag: "HeartbeatCounted", outcome: "backpressure" })
      return [state, "backpressure"]
    }
    state = { ...state, refusedFrom: undefined }
  }
  if (!env.writerHasRoom(pending + 1)) {
    effects.push({ _tag: "HeartbeatCounted", outcome: "backpressure" })
    return [refuse(state, heartbeat.seq, env.now), "backpressure"]
  }
  const recordedAt = Math.max(env.now, state.lastRecordedAt + 1)
  // Hot fields, in place (see DeviceState).
  let next = state
  next.acceptedSeq = heartbeat.seq
  next.lastRecordedAt = recordedAt
  next.lastHeartbeatAt = env.now
  if (next.connection === undefined) next.transport = transport
  // Strings change rarely: the row and the sample take the stored copy when equal, so this frame's
  // copies die young (JSON.parse makes new ones every time; the sample lives a whole interval, and
  // the row lives until its batch is copied into columns).
  const stored = next.lastHeartbeat
  const network = stored !== undefined && stored.network === heartbeat.network ? stored.network : heartbeat.network
  const foregroundApp = stored !== undefined && stored.foregroundApp === heartbeat.foregroundApp ? stored.foregroundApp : heartbeat.foregroundApp
  const agentVersion = stored !== undefined && stored.agentVersion === heartbeat.agentVersion ? stored.agentVersion : heartbeat.agentVersion
  // A literal, not a spread of the sample: on this path a spread costs ~280 ns against ~20.
  const row: HeartbeatRow = {
    deviceId: state.deviceId,
    seq: heartbeat.seq,
    recordedAt,
    deviceTs: heartbeat.ts,
    batteryPct: heartbeat.batteryPct,
    charging: heartbeat.charging,
    memFreeMb: heartbeat.memFreeMb,
    memTotalMb: heartbeat.memTotalMb,
    storageFreeMb: heartbeat.storageFreeMb,
    network,
    signalDbm: heartbeat.signalDbm,
    foregroundApp,
    agentVersion,
    uptimeS: heartbeat.uptimeS,
    intervalS: heartbeat.intervalS,
    wakeups: heartbeat.wakeups,
    txBytes: heartbeat.txBytes,
    reconnects: heartbeat.reconnects
  }
  if (stored === undefined) {
    next.lastHeartbeat = sampleOf(row)
  } else {
    stored.seq = row.seq
    stored.recordedAt = recordedAt
    stored.deviceTs = row.deviceTs
    stored.batteryPct = row.batteryPct
    stored.charging = row.charging
    stored.memFreeMb = row.memFreeMb
    stored.memTotalMb = row.memTotalMb
    stored.storageFreeMb = row.storageFreeMb
    stored.network = network
    stored.signalDbm = row.signalDbm
    stored.foregroundApp = foregroundApp
    stored.agentVersion = agentVersion
    stored.uptimeS = row.uptimeS
    stored.intervalS = row.intervalS
    stored.wakeups = row.wakeups
    stored.txBytes = row.txBytes
    stored.reconnects = row.reconnects
  }
  effects.push({ _tag: "Write", row }, { _tag: "HeartbeatCounted", outcome: "accepted" }, { _tag: "Changed" })
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

/**
 * Sends commands over the socket, in order: on a new connection every one the device has not
 * acknowledged receiving ("queued" or "sent" over an earlier socket), otherwise only new ones.
 */
const sendPending = (
  state: DeviceState,
  connection: Connection,
  now: number,
  effects: Array<ActorEffect>,
  resendSent: boolean
): DeviceState => {
  let changed = false
  const commands = state.commands.map((command) => {
    if (command.status !== "queued" && !(resendSent && command.status === "sent")) return command
    if (command.expiresAt <= now) return command
    changed = true
    effects.push({ _tag: "Send", connection, frame: command.frame })
    const attempts = command.attempts + 1
    effects.push({
      _tag: "CommandChanged",
      transition: { commandId: command.id, deviceId: state.deviceId, status: "sent", at: now, sentVia: "socket", attempts }
    })
    return { ...command, status: "sent" as const, attempts }
  })
  return changed ? { ...state, commands } : state
}

/** Answers a waiting long-poll with every command the device does not have yet. */
const answerPoll = (state: DeviceState, waiter: PollWaiter, now: number, effects: Array<ActorEffect>): DeviceState => {
  const frames: Array<string> = []
  const commands = state.commands.map((command) => {
    if ((command.status !== "queued" && command.status !== "sent") || command.expiresAt <= now) return command
    frames.push(command.frame)
    const attempts = command.attempts + 1
    effects.push({
      _tag: "CommandChanged",
      transition: { commandId: command.id, deviceId: state.deviceId, status: "sent", at: now, sentVia: "poll", attempts }
    })
    return { ...command, status: "sent" as const, attempts }
  })
  const durableSeq = state.durableSeq
  effects.push({ _tag: "Reply", run: () => waiter.reply({ frames, durableSeq }) })
  return { ...state, commands, pollWaiter: undefined }
}

/** Wakes an absent device through FCM for its oldest undelivered command, within the retry policy. */
const maybeWake = (state: DeviceState, now: number, policy: ActorPolicy, effects: Array<ActorEffect>): DeviceState => {
  if (state.connection !== undefined || state.pollWaiter !== undefined || state.fcmToken === undefined) return state
  // Queued, or sent over a socket that dropped before the device acked it.
  const index = state.commands.findIndex((c) => (c.status === "queued" || c.status === "sent") && c.expiresAt > now)
  if (index < 0) return state
  const command = state.commands[index]!
  if (command.lastWakeAt !== undefined && now - command.lastWakeAt < policy.wakeRetryMs) return state
  if (command.wakeups >= policy.maxWakeups) {
    if (command.wakeups === policy.maxWakeups) {
      effects.push({
        _tag: "CommandChanged",
        transition: { commandId: command.id, deviceId: state.deviceId, status: command.status, at: now, unreachable: true }
      })
      const commands = state.commands.slice()
      commands[index] = { ...command, wakeups: command.wakeups + 1 }
      return { ...state, commands }
    }
    return state
  }
  effects.push({ _tag: "Wake", commandId: command.id, fcmToken: state.fcmToken, attempt: command.wakeups + 1 })
  const commands = state.commands.slice()
  commands[index] = { ...command, wakeups: command.wakeups + 1, lastWakeAt: now }
  return { ...state, commands }
}

/** Expires open commands past their expiry: they are never executed late. */
const expireCommands = (state: DeviceState, now: number, effects: Array<ActorEffect>): DeviceState => {
  if (!state.commands.some((c) => c.expiresAt <= now)) return state
  const commands = state.commands.filter((command) => {
    if (command.expiresAt > now) return true
    effects.push({
      _tag: "CommandChanged",
      transition: { commandId: command.id, deviceId: state.deviceId, status: "expired", at: now, error: "expired before the device completed it" }
    })
    return false
  })
  return { ...state, commands }
}

export const step = (current: DeviceState, message: ActorMessage, env: Env): Step => {
  const effects: Array<ActorEffect> = []
  let state = current
  if (env.durableSeq > state.durableSeq) state.durableSeq = env.durableSeq // hot, in place
  if (env.overflowSeq !== undefined && env.overflowSeq > state.acceptedSeq) state = refuse(state, env.overflowSeq, env.now)
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
        frame: welcomeFrame(next, now, message.ticketExpiresAt, policy)
      })
      if (message.ticketExpiresAt - now < policy.ticketTtlMs / 2) effects.push({ _tag: "RenewTicket", connection })
      next = sendPending(next, connection, now, effects, true)
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
      if (message.rateLimitedMs !== undefined) {
        effects.push({ _tag: "HeartbeatCounted", outcome: "backpressure" })
        effects.push({
          _tag: "Send",
          connection,
          frame: errorFrame("RATE_LIMITED", "too many frames", `,"seq":${message.heartbeat.seq},"retryAfterMs":${message.rateLimitedMs}`)
        })
        return [message.heartbeat.seq > state.acceptedSeq ? refuse(state, message.heartbeat.seq, now) : state, effects]
      }
      const [next, outcome] = acceptHeartbeat(state, message.heartbeat, "ws", env, effects)
      if (outcome === "backpressure") {
        effects.push({
          _tag: "Send",
          connection,
          frame: errorFrame(
            "BACKPRESSURE",
            next.refusedFrom !== undefined && next.refusedFrom.seq < message.heartbeat.seq
              ? `an earlier heartbeat (seq ${next.refusedFrom.seq}) was refused: resend from it, in order`
              : "engine write buffer is full: keep the heartbeat and resend later",
            `,"seq":${message.heartbeat.seq},"retryAfterMs":${policy.heartbeatIntervalS * 1000}`
          )
        })
        return [next, effects]
      }
      effects.push({ _tag: "Send", connection, frame: ackFrame(message.heartbeat.seq, next.durableSeq) })
      next.toldDurableSeq = next.durableSeq // hot, in place
      return [next, effects]
    }
    case "HttpHeartbeats": {
      if (message.generation !== state.generation || state.retired) {
        const answer = state.retired ? "retired" : "superseded"
        effects.push({ _tag: "Reply", run: () => message.reply(answer) })
        return [state, effects]
      }
      let next = state
      const acked: Array<number> = []
      let backpressure = false
      let pending = 0
      for (const heartbeat of message.heartbeats) {
        const [after, outcome] = acceptHeartbeat(next, heartbeat, "http", env, effects, pending)
        next = after
        if (outcome === "backpressure") {
          backpressure = true
          break // later seqs must not overtake the refused one
        }
        if (outcome === "accepted") pending++
        acked.push(heartbeat.seq)
      }
      const result: HttpHeartbeatResult = { acked, durableSeq: next.durableSeq, backpressure, intervalS: timingOf(next, policy).intervalS }
      effects.push({ _tag: "Reply", run: () => message.reply(result) })
      return [next, effects]
    }
    case "CredentialsReplaced": {
      if (message.generation <= state.generation) return [state, effects]
      // Open commands were signed with the old key: sign them again, or the device rejects them.
      const commands = state.commands.map((command) => ({
        ...openCommand(state.deviceId, message.hmacKey, command),
        attempts: command.attempts,
        wakeups: command.wakeups,
        lastWakeAt: command.lastWakeAt
      }))
      // A re-enrolled device starts over at the engine's interval (PROTOCOL.md 15.7).
      let next: DeviceState = { ...state, generation: message.generation, retired: false, hmacKey: message.hmacKey, commands, heartbeatIntervalS: undefined }
      if (state.heartbeatIntervalS !== undefined) effects.push({ _tag: "HeartbeatIntervalChanged", intervalS: undefined })
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
    case "CommandQueued": {
      if (state.commands.some((c) => c.id === message.command.id)) return [state, effects]
      let next: DeviceState = { ...state, commands: [...state.commands, openCommand(state.deviceId, state.hmacKey, message.command)] }
      if (next.connection !== undefined) next = sendPending(next, next.connection, now, effects, false)
      else if (next.pollWaiter !== undefined) next = answerPoll(next, next.pollWaiter, now, effects)
      else next = maybeWake(next, now, policy, effects)
      return [next, effects]
    }
    case "CommandReport": {
      if (state.retired || (message.generation !== undefined && message.generation !== state.generation)) return [state, effects]
      const outcome = applyReport(state.deviceId, state.hmacKey, state.commands, message.report, now)
      switch (outcome._tag) {
        case "Ignored":
          return [state, effects]
        case "Rejected":
          if (state.connection !== undefined && message.connectionId === state.connection.id) {
            effects.push({
              _tag: "Send",
              connection: state.connection,
              frame: errorFrame(outcome.code, outcome.message, `,"commandId":${JSON.stringify(message.report.id.slice(0, 64))}`)
            })
          }
          return [state, effects]
        case "Advanced":
          effects.push({ _tag: "CommandChanged", transition: outcome.transition })
          return [{ ...state, commands: state.commands.map((c) => (c.id === outcome.command.id ? outcome.command : c)) }, effects]
        case "Completed": {
          effects.push({ _tag: "CommandChanged", transition: outcome.transition })
          const completed = state.commands.find((c) => c.id === outcome.transition.commandId)
          let next: DeviceState = { ...state, commands: state.commands.filter((c) => c.id !== outcome.transition.commandId) }
          if (completed?.type === "set_heartbeat_interval" && outcome.transition.status === "succeeded") {
            const intervalS = completed.params["intervalS"]
            if (typeof intervalS === "number") {
              next = { ...next, heartbeatIntervalS: intervalS }
              effects.push({ _tag: "HeartbeatIntervalChanged", intervalS })
            }
          }
          return [next, effects]
        }
      }
    }
    case "CancelCommand": {
      const command = state.commands.find((c) => c.id === message.commandId)
      effects.push({ _tag: "Reply", run: () => message.reply(command !== undefined) })
      if (command === undefined) return [state, effects]
      effects.push({
        _tag: "CommandChanged",
        transition: { commandId: command.id, deviceId: state.deviceId, status: "cancelled", at: now }
      })
      return [{ ...state, commands: state.commands.filter((c) => c.id !== command.id) }, effects]
    }
    case "Poll": {
      if (message.generation !== state.generation || state.retired) {
        const answer = state.retired ? "retired" : "superseded"
        effects.push({ _tag: "Reply", run: () => message.reply(answer) })
        return [state, effects]
      }
      let next = state
      if (next.pollWaiter !== undefined) {
        // A newer poll replaces the old one (the device gave up on it).
        const old = next.pollWaiter
        const durableSeq = next.durableSeq
        effects.push({ _tag: "Reply", run: () => old.reply({ frames: [], durableSeq }) })
        next = { ...next, pollWaiter: undefined }
      }
      const waiter: PollWaiter = { id: message.waiterId, deadline: now + message.waitMs, reply: message.reply }
      const hasWork = next.commands.some((c) => (c.status === "queued" || c.status === "sent") && c.expiresAt > now)
      if (hasWork || message.waitMs === 0) return [answerPoll(next, waiter, now, effects), effects]
      return [{ ...next, pollWaiter: waiter }, effects]
    }
    case "FcmToken":
      return [{ ...state, fcmToken: message.token }, effects]
    case "Retired": {
      let next: DeviceState = { ...state, retired: true, generation: Math.max(state.generation, message.generation) }
      if (state.connection !== undefined) {
        effects.push(
          { _tag: "Send", connection: state.connection, frame: errorFrame("DEVICE_RETIRED", "this device was retired: enrol it again") },
          { _tag: "Close", connection: state.connection, code: CloseCode.deviceRetired, reason: "device retired" }
        )
        next = { ...next, connection: undefined, disconnectedAt: now }
      }
      if (state.pollWaiter !== undefined) {
        const waiter = state.pollWaiter
        effects.push({ _tag: "Reply", run: () => waiter.reply("retired") })
        next = { ...next, pollWaiter: undefined }
      }
      return [transition(next, "offline", "retired", now, effects), effects]
    }
    case "Tick": {
      let next = state
      const silentFor = now - (state.lastHeartbeatAt > 0 ? state.lastHeartbeatAt : state.presenceSince)
      const timing = timingOf(state, policy)
      if (state.presence === "connected" || state.presence === "overdue") {
        if (silentFor >= timing.offlineAfterMs) {
          next = transition(next, "offline", `no heartbeat for ${seconds(silentFor)}`, now, effects)
        } else if (state.presence === "connected" && silentFor >= timing.overdueAfterMs) {
          next = transition(
            next,
            "overdue",
            `heartbeat overdue: none for ${seconds(silentFor)} (interval ${timing.paceS}s)`,
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
      next = expireCommands(next, now, effects)
      if (next.pollWaiter !== undefined && next.pollWaiter.deadline <= now) next = answerPoll(next, next.pollWaiter, now, effects)
      next = maybeWake(next, now, policy, effects)
      return [next, effects]
    }
  }
}

/** What the sweeper checks, without a message, to decide whether an actor needs a Tick. */
export const needsTick = (state: DeviceState, now: number, policy: ActorPolicy, durableSeq = state.durableSeq): boolean => {
  switch (state.presence) {
    case "connected":
    case "overdue": {
      const silentFor = now - (state.lastHeartbeatAt > 0 ? state.lastHeartbeatAt : state.presenceSince)
      const timing = timingOf(state, policy)
      if (silentFor >= timing.offlineAfterMs) return true
      if (state.presence === "connected" && silentFor >= timing.overdueAfterMs) return true
      break
    }
    case "grace":
      if (now - (state.disconnectedAt ?? state.presenceSince) >= policy.graceMs) return true
      break
    case "offline":
      break
  }
  if (state.pollWaiter !== undefined && state.pollWaiter.deadline <= now) return true
  for (const command of state.commands) {
    if (command.expiresAt <= now) return true
    if (
      (command.status === "queued" || command.status === "sent") &&
      state.connection === undefined &&
      state.fcmToken !== undefined &&
      command.wakeups <= policy.maxWakeups &&
      (command.lastWakeAt === undefined || now - command.lastWakeAt >= policy.wakeRetryMs)
    ) {
      return true
    }
  }
  return (
    state.connection !== undefined &&
    Math.max(state.durableSeq, durableSeq) > state.toldDurableSeq &&
    now - state.lastHeartbeatAt >= policy.durableNoticeAfterMs
  )
}
