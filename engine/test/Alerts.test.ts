/**
 * Alerts: the pure conditions and digest logic with explicit times; the evaluator's schedule and
 * digest window on the TestClock; and the whole engine (Engine.layer, real PostgreSQL, real
 * devices over WebSocket, a real SMTP server) for offline, battery, backlog, enrolment and
 * command-failure rules, dedup, resolution, and one digest for a site that loses power.
 */
import { it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted, TestClock } from "effect"
import { afterAll, beforeAll, describe, expect } from "vitest"
import type { Alert } from "../src/alerts/Alert.js"
import { Alerts, layer as alertsLayer } from "../src/alerts/Alerts.js"
import * as Conditions from "../src/alerts/internal/Conditions.js"
import * as Digest from "../src/alerts/internal/Digest.js"
import { DevicePlane } from "../src/DevicePlane.js"
import { DeviceRegistry, type DeviceView } from "../src/DeviceRegistry.js"
import * as Engine from "../src/Engine.js"
import { Enrollment } from "../src/Enrollment.js"
import type { EngineConfigShape } from "../src/EngineConfig.js"
import * as SmtpMailer from "../src/mail/SmtpMailer.js"
import { TelemetryWriter } from "../src/TelemetryWriter.js"
import { type ReceivedMail, SmtpTestServer } from "./support/SmtpTestServer.js"
import type { TestDatabase } from "./support/TestDatabase.js"
import {
  type CoreServices,
  createToken,
  DeviceSocket,
  enrol,
  eventually,
  heartbeat,
  openDatabase,
  startEngine,
  testConfig,
  type TestEngine
} from "./support/TestEngine.js"

let smtp: SmtpTestServer

beforeAll(async () => {
  smtp = await SmtpTestServer.start()
})

afterAll(async () => {
  await smtp?.close()
})

const mailsTo = (address: string): ReadonlyArray<ReceivedMail> => smtp.received.filter((mail) => mail.to.includes(address))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// The engine with alerts (Engine.layer, as `npm start` runs it) on its own database

interface AlertEngine extends TestEngine {
  readonly alerts: <A, E>(f: (alerts: Context.Tag.Service<Alerts>) => Effect.Effect<A, E>) => Promise<A>
}

const startAlertEngine = async (overrides: Partial<EngineConfigShape> = {}): Promise<AlertEngine> => {
  const { database, release } = await openDatabase()
  const runtime = ManagedRuntime.make(
    Engine.layer.pipe(
      Layer.provideMerge(
        testConfig(database, {
          smtpUrl: Option.some(Redacted.make(smtp.url())),
          // Devices stay "connected" without heartbeats; a closed socket is "offline" 300 ms later.
          overdueAfter: Duration.seconds(20),
          offlineAfter: Duration.seconds(40),
          grace: Duration.millis(300),
          ...overrides
        })
      ),
      Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
    )
  )
  const plane = await runtime.runPromise(DevicePlane)
  return {
    runtime,
    run: (effect) => runtime.runPromise(effect),
    alerts: (f) => runtime.runPromise(Effect.flatMap(Alerts, f)),
    url: plane.url,
    wsUrl: `${plane.url.replace(/^http/, "ws")}/v1/device/ws`,
    dispose: async () => {
      await runtime.dispose()
      await release()
    }
  }
}

const viewOf = (engine: TestEngine, deviceId: string) =>
  engine.run(Effect.map(DeviceRegistry, (registry) => Option.getOrUndefined(registry.view(deviceId))))

/** Waits until the device's presence is `presence` (and, when given, entered after `after`). */
const waitPresence = (engine: TestEngine, deviceId: string, presence: DeviceView["presence"], after?: DeviceView) =>
  eventually(async () => {
    const view = await viewOf(engine, deviceId)
    return view?.presence === presence && (after === undefined || view.presenceSince > after.presenceSince) ? view : undefined
  })

/** Enrols a device, opens its socket and sends a first heartbeat. */
const connectNew = async (engine: TestEngine, hardwareId: string, token?: string) => {
  const device = await enrol(engine, token ?? (await createToken(engine)).token, hardwareId)
  const socket = await connect(engine, device.ticket)
  socket.send(heartbeat(1))
  await socket.waitFor((f) => f.type === "ack")
  return { device, socket }
}

const connect = async (engine: TestEngine, ticket: string) => {
  const socket = await DeviceSocket.open(engine.wsUrl, ticket)
  await socket.waitFor((f) => f.type === "welcome")
  return socket
}

const alertsOf = (engine: AlertEngine, query: { kind?: Alert["kind"]; deviceId?: string; ruleId?: string; state?: Alert["state"]; limit?: number }) =>
  engine.alerts((alerts) => Effect.map(alerts.listAlerts(query), (page) => page.items))

// ---------------------------------------------------------------------------------------------

describe("alert conditions (pure)", () => {
  const device = (overrides: Partial<Conditions.DeviceSample>): Conditions.DeviceSample => ({
    deviceId: "dev_a",
    presence: "connected",
    presenceReason: "connected",
    presenceSince: 0,
    batteryPct: 80,
    charging: false,
    ...overrides
  })

  it("battery_low opens below the threshold when not charging, and resolves only when charging or 5 points above", () => {
    const rule = { belowPct: 20 }
    const tags = [
      device({ batteryPct: 15 }),
      device({ batteryPct: 15, charging: true }),
      device({ batteryPct: 22 }),
      device({ batteryPct: 25 }),
      device({ batteryPct: undefined, charging: undefined })
    ].map((sample) => Conditions.batteryLow(rule, sample)?._tag)
    expect(tags).toEqual(["Holds", "Clear", undefined, "Clear", undefined])
  })

  it("device_offline holds after the rule's minutes, says nothing in grace, and clears when connected", () => {
    const rule = { minutes: 10 }
    const since = 1_000_000
    expect(Conditions.deviceOffline(rule, device({ presence: "offline", presenceSince: since }), since + 9 * 60_000)).toBeUndefined()
    expect(Conditions.deviceOffline(rule, device({ presence: "offline", presenceSince: since }), since + 10 * 60_000)).toMatchObject({
      _tag: "Holds",
      episode: String(since),
      summary: "offline for 10 min (connected)"
    })
    expect(Conditions.deviceOffline(rule, device({ presence: "grace" }), since)).toBeUndefined()
    expect(Conditions.deviceOffline(rule, device({ presence: "connected" }), since)?._tag).toBe("Clear")
  })

  it("reconcile: a new occurrence while open is a repeat, the same one is nothing, a hand-resolved key is forgotten when it clears", () => {
    const holds = (key: string, episode: string) =>
      ({ _tag: "Holds", key, deviceId: key, episode, summary: "", detail: {} }) as const
    const firing = new Map<string, Conditions.Firing>([
      ["a", { alertId: "1", episode: "e1" }],
      ["b", { alertId: "2", episode: "e1" }],
      ["c", { alertId: undefined, episode: "e1" }],
      ["d", { alertId: undefined, episode: "e1" }]
    ])
    const actions = Conditions.reconcile(firing, [
      holds("a", "e1"),
      holds("b", "e2"),
      holds("c", "e1"),
      { _tag: "Clear", key: "d" },
      holds("new", "e1"),
      { _tag: "Clear", key: "never-fired" }
    ])
    expect(actions.map((action) => `${action._tag} ${action._tag === "Open" ? action.observation.key : action.key}`)).toEqual([
      "Open b",
      "Forget d",
      "Open new"
    ])
  })
})

describe("digest and throttle (pure, explicit times)", () => {
  const rule: Digest.RuleInfo = { id: "ar_1", name: "Site A offline", kind: "device_offline", recipients: ["ops@example.com"], windowMs: 60_000 }
  const notice = (i: number, change: Digest.Notice["change"] = "opened"): Digest.Notice => ({
    alertId: String(i),
    change,
    deviceId: `dev_${String(i).padStart(4, "0")}`,
    summary: "offline for 2 min (socket closed)",
    at: 1_000 + i
  })

  it("notices within a rule's window leave as one digest when the window ends, and the next notice opens a new window", () => {
    let state = Digest.empty
    for (let i = 0; i < 1000; i++) state = Digest.add(state, rule, notice(i), 1_000 + i * 50)
    expect(Digest.due(state, 60_999)[1]).toHaveLength(0)
    const [after, ready] = Digest.due(state, 61_000)
    expect(ready.map((pending) => [pending.opened, pending.resolved, pending.openedList.length])).toEqual([[1000, 0, Digest.LIST_LIMIT]])
    // Throttle: a notice right after the digest waits a whole window.
    const next = Digest.add(after, rule, notice(1001, "resolved"), 61_001)
    expect(Digest.due(next, 121_000)[1]).toHaveLength(0)
    expect(Digest.due(next, 121_001)[1].map((pending) => pending.resolved)).toEqual([1])
  })

  it("a digest counts everything and lists the first 100", () => {
    let state = Digest.empty
    for (let i = 0; i < 1000; i++) state = Digest.add(state, rule, notice(i), 1_000)
    state = Digest.add(state, rule, notice(5000, "resolved"), 2_000)
    const { subject, text } = Digest.render(Digest.due(state, 61_000)[1][0]!, 61_000)
    expect(subject).toBe("[NexMDM] Site A offline: 1000 new, 1 resolved")
    expect(text).toContain("New (1000):")
    expect(text).toContain("- dev_0099: offline for 2 min (socket closed)")
    expect(text).not.toContain("dev_0100")
    expect(text).toContain("- ... and 900 more")
    expect(text).toContain("Resolved (1):\n- dev_5000:")
  })

  it("rules are digested apart, each on its own window", () => {
    const other = { ...rule, id: "ar_2", name: "Battery", kind: "battery_low" as const, windowMs: 0 }
    const state = Digest.add(Digest.add(Digest.empty, rule, notice(1), 1_000), other, notice(2), 1_000)
    expect(Digest.due(state, 1_000)[1].map((pending) => pending.rule.id)).toEqual(["ar_2"])
  })
})

describe("evaluation schedule and digest window (TestClock)", () => {
  let engine: TestEngine
  let database: TestDatabase
  let release: () => Promise<void>
  let context: Context.Context<CoreServices>
  const deviceIds: Array<string> = []

  beforeAll(async () => {
    ;({ database, release } = await openDatabase())
    // The engine core runs on the real clock; the Alerts service under test is built on the TestClock.
    engine = await startEngine(database)
    context = await engine.run(Effect.context<CoreServices>())
    const token = await createToken(engine, 3)
    for (const n of [1, 2, 3]) deviceIds.push((await enrol(engine, token.token, `hw-clock-${n}`)).deviceId)
  })

  afterAll(async () => {
    await engine?.dispose()
    await release?.()
  })

  /** Alerts (and its mailer) over the live engine's services, built inside the test: on its TestClock. */
  const clockedAlerts = () =>
    alertsLayer.pipe(
      Layer.provideMerge(SmtpMailer.layer),
      Layer.provide(Layer.merge(Layer.succeedContext(context), testConfig(database, { smtpUrl: Option.some(Redacted.make(smtp.url())) })))
    )

  const liveSleep = (ms: number) => Effect.promise(() => sleep(ms))

  it.effect("failures inside a rule's window wait for the window's end and go out as one mail", () =>
    Effect.gen(function* () {
      const alerts = yield* Alerts
      yield* alerts.createRule({ name: "Commands", kind: "command_failed", params: {}, recipients: ["clock@example.com"], digestWindowS: 60 })
      for (const [i, deviceId] of deviceIds.entries()) {
        yield* alerts.commandFailed({ deviceId, commandId: `cmd-${i}`, type: "reboot", error: "device refused" })
      }
      yield* TestClock.adjust("30 seconds")
      yield* liveSleep(300)
      expect(mailsTo("clock@example.com")).toHaveLength(0)

      yield* TestClock.adjust("30 seconds")
      yield* Effect.promise(() => eventually(() => (mailsTo("clock@example.com").length > 0 ? true : undefined)))
      yield* liveSleep(300)
      const mails = mailsTo("clock@example.com")
      expect(mails.map((mail) => mail.subject)).toEqual(["[NexMDM] Commands: 3 new"])
      for (const deviceId of deviceIds) expect(mails[0]!.text).toContain(`- ${deviceId}: command reboot failed: device refused`)
    }).pipe(Effect.provide(Layer.suspend(clockedAlerts))))
})

describe("alerts in the running engine", () => {
  let engine: AlertEngine

  beforeAll(async () => {
    // Evaluated when the test says so.
    engine = await startAlertEngine({ alertEvalInterval: Duration.hours(1) })
  })

  afterAll(async () => {
    await engine?.dispose()
  })

  const evaluate = () => engine.alerts((alerts) => alerts.evaluate)

  it("a device offline past the rule's minutes opens one alert; offline again while open is a repeat; back online resolves it", async () => {
    const rule = await engine.alerts((alerts) =>
      alerts.createRule({ name: "Offline now", kind: "device_offline", params: { minutes: 0 }, recipients: ["offline@example.com"], digestWindowS: 0 })
    )
    const patient = await engine.alerts((alerts) =>
      alerts.createRule({ name: "Offline an hour", kind: "device_offline", params: { minutes: 60 }, recipients: ["hour@example.com"] })
    )
    const { device, socket } = await connectNew(engine, "hw-offline")
    socket.close()
    const first = await waitPresence(engine, device.deviceId, "offline")
    await evaluate()
    const opened = await alertsOf(engine, { ruleId: rule.id, deviceId: device.deviceId })
    expect(opened.map((alert) => [alert.state, alert.count])).toEqual([["open", 1]])
    expect(opened[0]!.summary).toMatch(/^offline for \d+ s \(socket closed \(code \d+\); no reconnect within 0s\)$/)

    // Back for a moment and gone again between two evaluations: the same open alert, counted twice.
    const again = await connect(engine, device.ticket)
    await waitPresence(engine, device.deviceId, "connected")
    again.close()
    await waitPresence(engine, device.deviceId, "offline", first)
    await evaluate()
    const repeated = await alertsOf(engine, { ruleId: rule.id, deviceId: device.deviceId })
    expect(repeated.map((alert) => [alert.id, alert.state, alert.count])).toEqual([[opened[0]!.id, "open", 2]])
    expect(repeated[0]!.lastSeenAt.getTime()).toBeGreaterThan(opened[0]!.lastSeenAt.getTime())

    const back = await connect(engine, device.ticket)
    await waitPresence(engine, device.deviceId, "connected")
    await evaluate()
    const resolved = await alertsOf(engine, { ruleId: rule.id, deviceId: device.deviceId })
    expect(resolved.map((alert) => [alert.id, alert.state, alert.resolution])).toEqual([[opened[0]!.id, "resolved", "cleared"]])
    expect(await alertsOf(engine, { ruleId: patient.id })).toEqual([])

    // One mail when it opened, none for the repeat, one when it resolved.
    const mails = await eventually(() => (mailsTo("offline@example.com").length >= 2 ? mailsTo("offline@example.com") : undefined))
    await sleep(200)
    expect(mailsTo("offline@example.com").map((mail) => mail.subject.replace(/ for \d+ s .*/, ""))).toEqual([
      `[NexMDM] Offline now: ${device.deviceId} offline`,
      `[NexMDM] Offline now: resolved: ${device.deviceId} offline`
    ])
    expect(mails[0]!.text).toContain(`Alert rule "Offline now" (device_offline): 1 new alert, 0 resolved`)
    expect(mailsTo("hour@example.com")).toEqual([])
    back.close()
    await engine.alerts((alerts) => Effect.all([alerts.deleteRule(rule.id), alerts.deleteRule(patient.id)]))
  })

  it("battery_low opens on a low, discharging battery, holds within 5 points, and resolves when charging", async () => {
    const rule = await engine.alerts((alerts) =>
      alerts.createRule({ name: "Battery", kind: "battery_low", params: { belowPct: 20 }, recipients: [] })
    )
    const { device, socket } = await connectNew(engine, "hw-battery")
    const report = async (seq: number, batteryPct: number, charging: boolean) => {
      socket.send(heartbeat(seq, { batteryPct, charging }))
      await eventually(async () => ((await viewOf(engine, device.deviceId))?.lastHeartbeat?.seq === seq ? true : undefined))
      await evaluate()
      return (await alertsOf(engine, { ruleId: rule.id })).map((alert) => `${alert.state} ${alert.summary}`)
    }
    expect(await report(2, 15, false)).toEqual(["open battery at 15% and not charging (threshold 20%)"])
    expect(await report(3, 22, false)).toEqual(["open battery at 15% and not charging (threshold 20%)"])
    expect(await report(4, 22, true)).toEqual(["resolved battery at 15% and not charging (threshold 20%)"])
    expect(await report(5, 12, false)).toEqual([
      "open battery at 12% and not charging (threshold 20%)",
      "resolved battery at 15% and not charging (threshold 20%)"
    ])
    socket.close()
    await engine.alerts((alerts) => alerts.deleteRule(rule.id))
  })

  it("command failures: one open alert per device counting repeats, filtered by type; a hand-resolved alert opens anew on the next failure", async () => {
    const rule = await engine.alerts((alerts) =>
      alerts.createRule({ name: "Reboots", kind: "command_failed", params: { types: ["reboot"] }, recipients: ["cmd@example.com"], digestWindowS: 0 })
    )
    const token = await createToken(engine, 2)
    const [a, b] = [await enrol(engine, token.token, "hw-cmd-a"), await enrol(engine, token.token, "hw-cmd-b")]
    const fail = (deviceId: string, commandId: string, type = "reboot") =>
      engine.alerts((alerts) => alerts.commandFailed({ deviceId, commandId, type, error: "timed out\nafter 30 s" }))
    await fail(a.deviceId, "c1")
    await fail(a.deviceId, "c2")
    await fail(a.deviceId, "c3", "install_app")
    await fail(b.deviceId, "c4")
    const open = await alertsOf(engine, { ruleId: rule.id, state: "open" })
    expect(open.map((alert) => [alert.deviceId, alert.count, alert.summary, alert.detail["commandId"]])).toEqual([
      [b.deviceId, 1, "command reboot failed: timed out after 30 s", "c4"],
      [a.deviceId, 2, "command reboot failed: timed out after 30 s", "c2"]
    ])

    const resolved = await engine.alerts((alerts) => alerts.resolve(open[1]!.id))
    expect([resolved.state, resolved.resolution]).toEqual(["resolved", "manual"])
    await fail(a.deviceId, "c5")
    const afterResolve = await alertsOf(engine, { ruleId: rule.id, deviceId: a.deviceId })
    expect(afterResolve.map((alert) => [alert.state, alert.count])).toEqual([["open", 1], ["resolved", 2]])

    await evaluate()
    const mail = (await eventually(() => mailsTo("cmd@example.com")[0]))
    expect(mail.subject).toBe("[NexMDM] Reboots: 3 new")
    await engine.alerts((alerts) => alerts.deleteRule(rule.id))
  })

  it("token_used records each enrolment as an informational alert, once", async () => {
    const rule = await engine.alerts((alerts) => alerts.createRule({ name: "Enrolments", kind: "token_used", params: {} }))
    const token = await engine.run(
      Effect.flatMap(Enrollment, (enrollment) => enrollment.createToken({ expiresIn: Duration.hours(1), maxUses: 1, label: "warehouse" }))
    )
    const device = await enrol(engine, token.token, "hw-enrolled")
    await evaluate()
    await evaluate()
    const recorded = await alertsOf(engine, { ruleId: rule.id })
    expect(recorded.map((alert) => [alert.deviceId, alert.state, alert.resolution, alert.summary])).toEqual([
      [device.deviceId, "resolved", "informational", `enrolled with token ${token.id} "warehouse"`]
    ])
    await engine.alerts((alerts) => alerts.deleteRule(rule.id))
  })

  it("lists alerts newest first, a page at a time, and filters by state", async () => {
    const rule = await engine.alerts((alerts) => alerts.createRule({ name: "Paging", kind: "command_failed", params: {} }))
    const token = await createToken(engine, 5)
    const devices = []
    for (let i = 0; i < 5; i++) devices.push(await enrol(engine, token.token, `hw-page-${i}`))
    for (const [i, device] of devices.entries()) {
      await engine.alerts((alerts) => alerts.commandFailed({ deviceId: device.deviceId, commandId: `p${i}`, type: "lock", error: "x" }))
    }
    const pages: Array<Array<string | null>> = []
    let cursor: string | undefined
    do {
      const page = await engine.alerts((alerts) => alerts.listAlerts({ ruleId: rule.id, limit: 2, ...(cursor === undefined ? {} : { cursor }) }))
      pages.push(page.items.map((alert) => alert.deviceId))
      cursor = page.nextCursor ?? undefined
    } while (cursor !== undefined)
    const ids = devices.map((device) => device.deviceId).reverse()
    expect(pages).toEqual([ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)])
    const bad = await engine.alerts((alerts) => Effect.flip(alerts.listAlerts({ cursor: "not-a-cursor" })))
    expect(bad._tag).toBe("AlertQueryInvalid")
    await engine.alerts((alerts) => alerts.deleteRule(rule.id))
    expect(await alertsOf(engine, { ruleId: rule.id })).toEqual([])
  })

  it("rules: params are checked against the kind; disabling or deleting a rule resolves its open alerts and keeps them", async () => {
    const invalid = await Promise.all(
      [
        { name: "x", kind: "battery_low", params: { belowPct: 150 } },
        { name: "x", kind: "device_offline", params: {} },
        { name: "x", kind: "reboot_storm", params: {} },
        { name: "x", kind: "token_used", params: {}, recipients: ["not an address"] }
      ].map((input) => engine.alerts((alerts) => Effect.flip(alerts.createRule(input as never))))
    )
    expect(invalid.map((error) => error._tag)).toEqual(["AlertRuleInvalid", "AlertRuleInvalid", "AlertRuleInvalid", "AlertRuleInvalid"])

    const rule = await engine.alerts((alerts) => alerts.createRule({ name: "Lifecycle", kind: "command_failed", params: {} }))
    expect(rule).toMatchObject({ enabled: true, recipients: [], digestWindowS: 60, params: {} })
    const badPatch = await engine.alerts((alerts) => Effect.flip(alerts.updateRule(rule.id, { params: { belowPct: 10, types: "reboot" } })))
    expect(badPatch._tag).toBe("AlertRuleInvalid")
    const updated = await engine.alerts((alerts) => alerts.updateRule(rule.id, { params: { types: ["wipe"] }, recipients: ["sec@example.com"] }))
    expect(updated).toMatchObject({ kind: "command_failed", params: { types: ["wipe"] }, recipients: ["sec@example.com"] })

    const device = await enrol(engine, (await createToken(engine)).token, "hw-lifecycle")
    await engine.alerts((alerts) => alerts.commandFailed({ deviceId: device.deviceId, commandId: "w1", type: "wipe", error: "denied" }))
    await engine.alerts((alerts) => alerts.updateRule(rule.id, { enabled: false }))
    expect((await alertsOf(engine, { ruleId: rule.id })).map((alert) => [alert.state, alert.resolution])).toEqual([["resolved", "rule disabled"]])
    await engine.alerts((alerts) => alerts.commandFailed({ deviceId: device.deviceId, commandId: "w2", type: "wipe", error: "denied" }))
    expect(await alertsOf(engine, { ruleId: rule.id, state: "open" })).toEqual([])

    await engine.alerts((alerts) => alerts.updateRule(rule.id, { enabled: true }))
    await engine.alerts((alerts) => alerts.commandFailed({ deviceId: device.deviceId, commandId: "w3", type: "wipe", error: "denied" }))
    await engine.alerts((alerts) => alerts.deleteRule(rule.id))
    const kept = await alertsOf(engine, { deviceId: device.deviceId })
    expect(kept.map((alert) => [alert.ruleId, alert.state, alert.resolution])).toEqual([
      [null, "resolved", "rule deleted"],
      [null, "resolved", "rule disabled"]
    ])
    const missing = await engine.alerts((alerts) => Effect.flip(alerts.deleteRule(rule.id)))
    expect(missing._tag).toBe("AlertRuleNotFound")
  })
})

describe("write backlog", () => {
  let engine: AlertEngine

  beforeAll(async () => {
    // Rows wait up to a minute before they are written, so the backlog is real and stays put.
    engine = await startAlertEngine({ alertEvalInterval: Duration.hours(1), batchMaxDelay: Duration.seconds(60) })
  })

  afterAll(async () => {
    await engine?.dispose()
  })

  it("opens when the write-behind holds more rows than the rule allows, and resolves once they are written", async () => {
    const rule = await engine.alerts((alerts) =>
      alerts.createRule({ name: "Backlog", kind: "write_backlog", params: { rows: 5 }, recipients: ["db@example.com"], digestWindowS: 0 })
    )
    const { socket } = await connectNew(engine, "hw-backlog")
    for (let seq = 2; seq <= 10; seq++) socket.send(heartbeat(seq))
    await eventually(async () => ((await engine.run(Effect.map(TelemetryWriter, (writer) => writer.buffered()))) >= 10 ? true : undefined))
    await engine.alerts((alerts) => alerts.evaluate)
    const open = await alertsOf(engine, { ruleId: rule.id })
    expect(open.map((alert) => [alert.state, alert.deviceId, alert.dedupKey, alert.summary])).toEqual([
      ["open", null, "engine", "10 heartbeat rows waiting to be written (threshold 5)"]
    ])
    await engine.run(Effect.flatMap(TelemetryWriter, (writer) => writer.flush))
    await engine.alerts((alerts) => alerts.evaluate)
    expect((await alertsOf(engine, { ruleId: rule.id })).map((alert) => alert.state)).toEqual(["resolved"])
    const mails = await eventually(() => (mailsTo("db@example.com").length >= 2 ? mailsTo("db@example.com") : undefined))
    // Each digest is mailed by its own background fiber: they may arrive in either order.
    expect(mails.map((mail) => mail.subject).sort()).toEqual([
      "[NexMDM] Backlog: engine 10 heartbeat rows waiting to be written (threshold 5)",
      "[NexMDM] Backlog: resolved: engine 10 heartbeat rows waiting to be written (threshold 5)"
    ].sort())
    socket.close()
  })
})

describe("a site loses power", () => {
  let engine: AlertEngine

  beforeAll(async () => {
    // The evaluator runs by itself, every 100 ms.
    engine = await startAlertEngine({ alertEvalInterval: Duration.millis(100) })
  })

  afterAll(async () => {
    await engine?.dispose()
  })

  it("50 devices going offline within the window make ONE mail listing all 50, and their return one more", async () => {
    const rule = await engine.alerts((alerts) =>
      alerts.createRule({ name: "Site A", kind: "device_offline", params: { minutes: 0 }, recipients: ["site-a@example.com"], digestWindowS: 2 })
    )
    const token = await createToken(engine, 50)
    const enrolled = []
    for (let i = 0; i < 50; i++) enrolled.push(await enrol(engine, token.token, `hw-site-${i}`))
    const fleet = await Promise.all(
      enrolled.map(async (device) => {
        const socket = await connect(engine, device.ticket)
        socket.send(heartbeat(1))
        await socket.waitFor((f) => f.type === "ack")
        return { device, socket }
      })
    )

    for (const { socket } of fleet) socket.close()
    await eventually(async () => ((await alertsOf(engine, { ruleId: rule.id, state: "open", limit: 100 })).length === 50 ? true : undefined), 5000)
    const [mail] = await eventually(() => (mailsTo("site-a@example.com").length > 0 ? mailsTo("site-a@example.com") : undefined), 5000)
    expect(mail!.subject).toBe("[NexMDM] Site A: 50 new")
    for (const { device } of fleet) expect(mail!.text).toContain(`- ${device.deviceId}: offline for`)

    const back = await Promise.all(fleet.map(({ device }) => connect(engine, device.ticket)))
    const mails = await eventually(() => (mailsTo("site-a@example.com").length > 1 ? mailsTo("site-a@example.com") : undefined), 5000)
    expect(mails[1]!.subject).toBe("[NexMDM] Site A: 50 resolved")
    await sleep(2500)
    expect(mailsTo("site-a@example.com")).toHaveLength(2)
    for (const socket of back) socket.close()
  })
})
