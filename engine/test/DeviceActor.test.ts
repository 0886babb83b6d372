/**
 * The actor's behaviour as pure state transitions: no runtime, no clock, explicit times.
 */
import { describe, expect, it } from "vitest"
import { Heartbeat } from "@nexmdm/protocol"
import { resultSigningString, sign } from "@nexmdm/protocol/signing"
import {
  type ActorEffect,
  type ActorMessage,
  type ActorPolicy,
  type Connection,
  type DeviceState,
  initialState,
  needsTick,
  step
} from "../src/DeviceActor.js"

const policy: ActorPolicy = {
  heartbeatIntervalS: 30,
  ticketTtlMs: 24 * 3_600_000,
  overdueAfterMs: 75_000,
  offlineAfterMs: 150_000,
  graceMs: 45_000,
  durableNoticeAfterMs: 1_000,
  wakeRetryMs: 60_000,
  maxWakeups: 3,
  battery: { batteryFactor: 2, meteredFactor: 4, lowBatteryFactor: 10, lowBatteryPct: 15, dozeFactor: 10, dozeMinS: 900 }
}

const T0 = 1_764_000_000_000

const env = (now: number, overrides: { room?: boolean; durableSeq?: number } = {}) => ({
  now,
  policy,
  writerHasRoom: () => overrides.room ?? true,
  durableSeq: overrides.durableSeq ?? 0
})

const connection = (id: number): Connection => ({ id, send: () => true, close: () => {} })

/** Frames the effects send to one connection, decoded. */
const sentTo = (effects: ReadonlyArray<ActorEffect>, c: Connection) =>
  effects.flatMap((effect) => (effect._tag === "Send" && effect.connection === c ? [JSON.parse(effect.frame)] : []))

const fresh = (): DeviceState =>
  initialState(
    {
      deviceId: "dev_aaaaaaaaaaaaaaaaaaaaaaaa",
      generation: 1,
      retired: false,
      durableSeq: 0,
      lastRecordedAt: 0,
      presence: "offline",
      presenceReason: undefined,
      presenceSince: undefined,
      hmacKey: Buffer.alloc(32, 1),
      fcmToken: undefined,
      openCommands: [],
      heartbeatIntervalS: undefined
    },
    T0
  )

const hb = (seq: number) =>
  new Heartbeat({
    type: "heartbeat",
    seq,
    ts: T0,
    batteryPct: 50,
    charging: false,
    memFreeMb: 1,
    memTotalMb: 2,
    storageFreeMb: 3,
    network: "wifi",
    agentVersion: "1.0.0",
    uptimeS: 1
  })

/** Runs messages in order, collecting every effect. */
const run = (state: DeviceState, steps: ReadonlyArray<readonly [number, ActorMessage, { room?: boolean; durableSeq?: number }?]>) => {
  const effects: Array<ActorEffect> = []
  for (const [now, message, options] of steps) {
    const [next, produced] = step(state, message, env(now, options))
    state = next
    effects.push(...produced)
  }
  return { state, effects }
}

const presenceEvents = (effects: ReadonlyArray<ActorEffect>) =>
  effects.flatMap((effect) => (effect._tag === "Record" && effect.event.presence ? [`${effect.event.presence}: ${effect.event.reason}`] : []))

const connect = (c: Connection, now = T0): readonly [number, ActorMessage] => [
  now,
  { _tag: "Connect", connection: c, generation: 1, ticketExpiresAt: now + policy.ticketTtlMs }
]

describe("device actor", () => {
  it("connects, welcomes with the durable watermark, and acks heartbeats", () => {
    const c = connection(1)
    const { state, effects } = run(fresh(), [
      connect(c),
      [T0 + 10, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }],
      [T0 + 20, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(2), receivedAt: 0 }, { durableSeq: 1 }]
    ])
    expect(state.presence).toBe("connected")
    expect(state.acceptedSeq).toBe(2)
    expect(sentTo(effects, c)[0]).toMatchObject({ type: "welcome", durableSeq: 0, heartbeatIntervalS: 30 })
    expect(sentTo(effects, c).slice(1)).toEqual([
      { type: "ack", seq: 1, durableSeq: 0 },
      { type: "ack", seq: 2, durableSeq: 1 }
    ])
    expect(effects.filter((e) => e._tag === "Write")).toHaveLength(2)
  })

  it("stores a resent heartbeat once but acks it again", () => {
    const c = connection(1)
    const { effects } = run(fresh(), [
      connect(c),
      [T0 + 1, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }],
      [T0 + 2, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }]
    ])
    expect(effects.filter((e) => e._tag === "Write")).toHaveLength(1)
    expect(sentTo(effects, c).filter((f) => f.type === "ack")).toHaveLength(2)
    expect(effects).toContainEqual({ _tag: "HeartbeatCounted", outcome: "duplicate" })
  })

  it("gives each row a strictly increasing recorded_at even when the clock stands still or steps back", () => {
    const c = connection(1)
    const { effects } = run(fresh(), [
      connect(c),
      [T0 + 5, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }],
      [T0 + 5, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(2), receivedAt: 0 }],
      [T0 - 1000, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(3), receivedAt: 0 }]
    ])
    const times = effects.flatMap((e) => (e._tag === "Write" ? [e.row.recordedAt] : []))
    expect(times).toEqual([T0 + 5, T0 + 6, T0 + 7])
  })

  it("refuses with BACKPRESSURE (and no ack) when the write buffer is full", () => {
    const c = connection(1)
    const { state, effects } = run(fresh(), [
      connect(c),
      [T0 + 1, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }, { room: false }]
    ])
    expect(state.acceptedSeq).toBe(0)
    expect(effects.filter((e) => e._tag === "Write")).toHaveLength(0)
    expect(sentTo(effects, c).at(-1)).toMatchObject({ type: "error", code: "BACKPRESSURE", seq: 1, retryAfterMs: 30_000 })
  })

  it("goes overdue, then offline, when a connected device falls silent", () => {
    const c = connection(1)
    let { state } = run(fresh(), [connect(c), [T0, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }]])
    expect(needsTick(state, T0 + 74_000, policy)).toBe(false)
    expect(needsTick(state, T0 + 75_000, policy)).toBe(true)
    const overdue = run(state, [[T0 + 75_000, { _tag: "Tick" }]])
    expect(overdue.state.presence).toBe("overdue")
    expect(presenceEvents(overdue.effects)).toEqual(["overdue: heartbeat overdue: none for 75s (interval 30s)"])
    const offline = run(overdue.state, [[T0 + 150_000, { _tag: "Tick" }]])
    expect(offline.state.presence).toBe("offline")
    expect(presenceEvents(offline.effects)).toEqual(["offline: no heartbeat for 150s"])
    state = offline.state
    const back = run(state, [[T0 + 151_000, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(2), receivedAt: 0 }]])
    expect(back.state.presence).toBe("connected")
  })

  it("does not flap to offline when the socket comes back within grace", () => {
    const first = connection(1)
    const second = connection(2)
    const { state, effects } = run(fresh(), [
      connect(first),
      [T0 + 1000, { _tag: "Disconnect", connectionId: 1, code: 1006 }],
      [T0 + 30_000, { _tag: "Tick" }],
      connect(second, T0 + 40_000),
      [T0 + 100_000, { _tag: "Tick" }]
    ])
    expect(state.presence).toBe("connected")
    expect(presenceEvents(effects)).toEqual([
      "connected: connected",
      "grace: socket closed (code 1006)",
      "connected: reconnected within grace"
    ])
  })

  it("goes offline with the close reason when grace runs out", () => {
    const c = connection(1)
    const { state, effects } = run(fresh(), [
      connect(c),
      [T0 + 1000, { _tag: "Disconnect", connectionId: 1, code: 1001 }]
    ])
    expect(needsTick(state, T0 + 1000 + 44_999, policy)).toBe(false)
    expect(needsTick(state, T0 + 1000 + 45_000, policy)).toBe(true)
    const after = run(state, [[T0 + 46_000, { _tag: "Tick" }]])
    expect(after.state.presence).toBe("offline")
    expect(presenceEvents([...effects, ...after.effects]).at(-1)).toBe("offline: socket closed (code 1001); no reconnect within 45s")
  })

  it("ignores a Disconnect or Heartbeat of a connection that was superseded", () => {
    const first = connection(1)
    const second = connection(2)
    const { state, effects } = run(fresh(), [
      connect(first),
      connect(second),
      [T0 + 5, { _tag: "Disconnect", connectionId: 1, code: 4004 }],
      [T0 + 6, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }]
    ])
    expect(state.presence).toBe("connected")
    expect(state.connection?.id).toBe(2)
    expect(state.acceptedSeq).toBe(0)
    expect(effects).toContainEqual({ _tag: "Close", connection: first, code: 4004, reason: "superseded" })
  })

  it("rejects a connection whose ticket is of an older credential generation", () => {
    const c = connection(1)
    const replaced = run(fresh(), [[T0, { _tag: "CredentialsReplaced", generation: 2, hmacKey: Buffer.alloc(32, 2) }]]).state
    const { state, effects } = run(replaced, [connect(c)])
    expect(state.connection).toBeUndefined()
    expect(effects).toContainEqual({ _tag: "Close", connection: c, code: 4001, reason: "stale credentials" })
  })

  it("sends a durable notice to a quiet device whose watermark advanced", () => {
    const c = connection(1)
    const { state } = run(fresh(), [connect(c), [T0, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }]])
    expect(needsTick({ ...state, durableSeq: 1 }, T0 + 500, policy)).toBe(false)
    expect(needsTick({ ...state, durableSeq: 1 }, T0 + 1000, policy)).toBe(true)
    const notice = run(state, [[T0 + 1000, { _tag: "Tick" }, { durableSeq: 1 }]])
    expect(sentTo(notice.effects, c)).toEqual([{ type: "durable", durableSeq: 1 }])
    expect(notice.state.toldDurableSeq).toBe(1)
  })

  it("accepts HTTP batches in order and stops at the first refused heartbeat", () => {
    let reply: unknown
    const { state } = run(fresh(), [
      [T0, { _tag: "HttpHeartbeats", generation: 1, heartbeats: [hb(1), hb(2)], reply: (r) => (reply = r) }]
    ])
    expect(state.transport).toBe("http")
    expect(state.presence).toBe("connected")
    const [, effects] = step(state, { _tag: "HttpHeartbeats", generation: 1, heartbeats: [hb(3)], reply: (r) => (reply = r) }, env(T0 + 1, { room: false }))
    for (const effect of effects) if (effect._tag === "Reply") effect.run()
    expect(reply).toEqual({ acked: [], durableSeq: 0, backpressure: true, intervalS: 30 })
  })

  it("a refused heartbeat blocks later seqs until it is resent, so nothing overtakes it", () => {
    const c = connection(1)
    const hbMsg = (seq: number) => ({ _tag: "Heartbeat", connectionId: 1, heartbeat: hb(seq), receivedAt: 0 }) as const
    const { state, effects } = run(fresh(), [
      connect(c),
      [T0 + 1, hbMsg(1)],
      [T0 + 2, hbMsg(2), { room: false }],
      // Room again, but 3 must not overtake 2.
      [T0 + 3, hbMsg(3)],
      [T0 + 4, hbMsg(2)],
      [T0 + 5, hbMsg(3)]
    ])
    const frames = sentTo(effects, c).slice(1)
    expect(frames.map((f) => `${f.type}:${f.seq}`)).toEqual(["ack:1", "error:2", "error:3", "ack:2", "ack:3"])
    expect(effects.flatMap((e) => (e._tag === "Write" ? [e.row.seq] : []))).toEqual([1, 2, 3])
    expect(state.refusedFrom).toBeUndefined()
  })

  it("a rate-limited heartbeat is refused with its seq and gates later ones", () => {
    const c = connection(1)
    const { effects } = run(fresh(), [
      connect(c),
      [T0 + 1, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0, rateLimitedMs: 250 }],
      [T0 + 2, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(2), receivedAt: 0 }]
    ])
    expect(sentTo(effects, c).slice(1)).toEqual([
      { type: "error", code: "RATE_LIMITED", message: "too many frames", seq: 1, retryAfterMs: 250 },
      expect.objectContaining({ type: "error", code: "BACKPRESSURE", seq: 2 })
    ])
  })

  it("an HTTP batch never acks more heartbeats than the write buffer takes", () => {
    let reply: unknown
    const roomFor = 2
    const [, effects] = step(
      fresh(),
      { _tag: "HttpHeartbeats", generation: 1, heartbeats: [hb(1), hb(2), hb(3), hb(4)], reply: (r) => (reply = r) },
      { now: T0, policy, writerHasRoom: (rows) => rows <= roomFor, durableSeq: 0 }
    )
    for (const effect of effects) if (effect._tag === "Reply") effect.run()
    expect(reply).toEqual({ acked: [1, 2], durableSeq: 0, backpressure: true, intervalS: 30 })
    expect(effects.filter((e) => e._tag === "Write")).toHaveLength(2)
  })

  it("a retired device's socket gets DEVICE_RETIRED and 4003, goes offline with reason retired, and cannot connect again", () => {
    const c = connection(1)
    const { state, effects } = run(fresh(), [
      connect(c),
      [T0 + 10, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }],
      [T0 + 20, { _tag: "Retired", generation: 2 }]
    ])
    expect(state).toMatchObject({ retired: true, generation: 2, connection: undefined, presence: "offline", presenceReason: "retired" })
    expect(sentTo(effects, c).at(-1)).toMatchObject({ type: "error", code: "DEVICE_RETIRED" })
    expect(effects.at(-3)).toEqual({ _tag: "Close", connection: c, code: 4003, reason: "device retired" })
    expect(presenceEvents(effects).at(-1)).toBe("offline: retired")
    const again = connection(2)
    const after = run(state, [connect(again, T0 + 30)])
    expect(after.state.connection).toBeUndefined()
    expect(after.effects).toContainEqual({ _tag: "Close", connection: again, code: 4003, reason: "device retired" })
  })

  it("a new command on a live socket sends only itself, not the earlier unacknowledged ones again", () => {
    const c = connection(1)
    const command = (id: string) => ({ id, type: "ping" as const, params: {}, issuedAt: T0, expiresAt: T0 + 60_000 })
    const { effects } = run(fresh(), [
      connect(c),
      [T0 + 1, { _tag: "CommandQueued", command: command("cmd_aaaaaaaaaaaaaaaaaaaaaaaa") }],
      [T0 + 2, { _tag: "CommandQueued", command: command("cmd_bbbbbbbbbbbbbbbbbbbbbbbb") }]
    ])
    expect(sentTo(effects, c).filter((f) => f.type === "command").map((f) => f.id)).toEqual([
      "cmd_aaaaaaaaaaaaaaaaaaaaaaaa",
      "cmd_bbbbbbbbbbbbbbbbbbbbbbbb"
    ])
  })

  it("a succeeded set_heartbeat_interval scales the device's overdue and offline thresholds, and re-enrolment resets them", () => {
    const c = connection(1)
    const id = "cmd_cccccccccccccccccccccccc"
    const key = Buffer.alloc(32, 1)
    const completedAt = T0 + 3
    const sig = sign(key, resultSigningString({ id, deviceId: "dev_aaaaaaaaaaaaaaaaaaaaaaaa", status: "succeeded", completedAt }))
    const { state, effects } = run(fresh(), [
      connect(c),
      [T0 + 1, { _tag: "CommandQueued", command: { id, type: "set_heartbeat_interval", params: { intervalS: 300 }, issuedAt: T0, expiresAt: T0 + 60_000 } }],
      [T0 + 2, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(1), receivedAt: 0 }],
      [T0 + 3, { _tag: "CommandReport", connectionId: 1, report: { type: "command_result", id, status: "succeeded", completedAt, sig } as never }]
    ])
    expect(state.heartbeatIntervalS).toBe(300)
    expect(effects).toContainEqual({ _tag: "HeartbeatIntervalChanged", intervalS: 300 })
    // The engine's 75 s (2.5 x 30 s) becomes 750 s for a device heartbeating every 300 s.
    expect(needsTick(state, T0 + 2 + 700_000, policy)).toBe(false)
    const quiet = run(state, [[T0 + 2 + 700_000, { _tag: "Tick" }]])
    expect(quiet.state.presence).toBe("connected")
    const overdue = run(quiet.state, [[T0 + 2 + 750_000, { _tag: "Tick" }]])
    expect(presenceEvents(overdue.effects)).toEqual(["overdue: heartbeat overdue: none for 750s (interval 300s)"])
    // The next connection is welcomed with the device's own interval.
    const again = run(overdue.state, [connect(connection(2), T0 + 800_000)])
    const welcome = again.effects.flatMap((e) => (e._tag === "Send" && e.frame.includes('"welcome"') ? [JSON.parse(e.frame)] : []))
    expect(welcome[0]).toMatchObject({ heartbeatIntervalS: 300 })
    // ... and the battery advice derived from it.
    expect(welcome[0].heartbeatPolicy).toEqual({ chargingS: 300, batteryS: 600, meteredS: 1200, lowBatteryS: 3000, lowBatteryPct: 15, dozeS: 3000 })
    const reenrolled = run(again.state, [[T0 + 900_000, { _tag: "CredentialsReplaced", generation: 2, hmacKey: Buffer.alloc(32, 2) }]])
    expect(reenrolled.state.heartbeatIntervalS).toBeUndefined()
    expect(reenrolled.effects).toContainEqual({ _tag: "HeartbeatIntervalChanged", intervalS: undefined })
  })

  it("welcomes with the battery advice, and follows the interval a heartbeat says it keeps", () => {
    const c = connection(1)
    const onBattery = new Heartbeat({ ...hb(1), intervalS: 300, wakeups: 2, txBytes: 900, reconnects: 1 })
    const { state, effects } = run(fresh(), [connect(c), [T0, { _tag: "Heartbeat", connectionId: 1, heartbeat: onBattery, receivedAt: 0 }]])
    expect(sentTo(effects, c)[0].heartbeatPolicy).toEqual({ chargingS: 30, batteryS: 60, meteredS: 120, lowBatteryS: 300, lowBatteryPct: 15, dozeS: 900 })
    // The agent's cost goes to storage with the row.
    expect(effects.find((e) => e._tag === "Write")).toMatchObject({ row: { intervalS: 300, wakeups: 2, txBytes: 900, reconnects: 1 } })
    // Ten times the engine's interval: overdue after 750 s, not 75 s.
    expect(needsTick(state, T0 + 749_000, policy)).toBe(false)
    const overdue = run(state, [[T0 + 750_000, { _tag: "Tick" }]])
    expect(presenceEvents(overdue.effects)).toEqual(["overdue: heartbeat overdue: none for 750s (interval 300s)"])
    // Plugged in again: the next heartbeat reports 30 s and the engine's thresholds are back.
    const charging = run(overdue.state, [[T0 + 751_000, { _tag: "Heartbeat", connectionId: 1, heartbeat: new Heartbeat({ ...hb(2), charging: true, intervalS: 30 }), receivedAt: 0 }]])
    expect(needsTick(charging.state, T0 + 751_000 + 75_000, policy)).toBe(true)
    // A heartbeat without intervalS (an older agent) means the announced interval.
    const older = run(charging.state, [[T0 + 752_000, { _tag: "Heartbeat", connectionId: 1, heartbeat: hb(3), receivedAt: 0 }]])
    expect(older.state.lastHeartbeat?.intervalS).toBeUndefined()
    expect(needsTick(older.state, T0 + 752_000 + 75_000, policy)).toBe(true)
  })

  it("answers an HTTP batch with the device's interval (the plane adds the advice)", () => {
    let answer: unknown
    const { effects } = run(fresh(), [[T0, { _tag: "HttpHeartbeats", generation: 1, heartbeats: [hb(1)], reply: (result) => void (answer = result) }]])
    for (const effect of effects) if (effect._tag === "Reply") effect.run()
    expect(answer).toMatchObject({ acked: [1], intervalS: 30 })
  })
})
