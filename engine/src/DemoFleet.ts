/**
 * A handful of simulated devices that enrol and heartbeat through the real device plane, so a
 * first `npm start` shows a living fleet: most hold a WebSocket, one uses the HTTP fallback, and
 * one drops its socket now and then to show presence moving through grace. Hardware ids are
 * fixed, so each start re-enrols the same devices (the documented re-enrolment path).
 *
 * They keep the battery budget like a real agent (PROTOCOL.md 9.6): each follows the engine's
 * `heartbeatPolicy` for its power state (kiosks stay plugged in, handhelds drain and recharge, the
 * cellular one is metered) and reports that interval and its own cost with every heartbeat. The
 * fourth plays an older agent that reports neither, so the console shows both kinds.
 */
import type { HeartbeatPolicy } from "@nexmdm/protocol"
import { Duration, Effect, Layer } from "effect"
import WebSocket from "ws"
import { DevicePlane } from "./DevicePlane.js"
import { EngineConfig } from "./EngineConfig.js"
import { Enrollment } from "./Enrollment.js"

interface DemoDevice {
  readonly index: number
  readonly deviceId: string
  ticket: string
  seq: number
  battery: number
  charging: boolean
  /** What the engine last announced: the interval, and the advice by power state when it sent one. */
  intervalS: number
  policy: HeartbeatPolicy | undefined
  /** The agent's own cost since its previous sample. */
  wakeups: number
  txBytes: number
  reconnects: number
}

const MODELS = ["TC52 scanner", "Galaxy Tab A8 kiosk", "Pixel 7a", "CT40 handheld", "Lenovo M10 kiosk"]
const APPS = ["com.example.kiosk", "com.example.scanner", "com.android.chrome", "com.example.pos"]
const AGENT_VERSION = "0.1.0-demo"
/** Before the battery budget: no interval, no cost in its heartbeats. */
const OLD_AGENT_VERSION = "0.0.9-demo"

const between = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1))

const isKiosk = (index: number) => MODELS[index % MODELS.length]!.includes("kiosk")
const isOldAgent = (index: number) => index === 3
const isMetered = (index: number) => index % 3 === 2

/** The interval the agent keeps now: the first of the policy that applies (PROTOCOL.md 9.6; no Doze here). */
export const intervalFor = (
  state: { readonly charging: boolean; readonly battery: number; readonly metered: boolean },
  announcedS: number,
  policy: HeartbeatPolicy | undefined
): number => {
  if (policy === undefined) return announcedS
  if (state.charging) return policy.chargingS
  if (state.battery <= policy.lowBatteryPct) return policy.lowBatteryS
  return state.metered ? policy.meteredS : policy.batteryS
}

const currentInterval = (device: DemoDevice) =>
  isOldAgent(device.index)
    ? device.intervalS
    : intervalFor({ charging: device.charging, battery: device.battery, metered: isMetered(device.index) }, device.intervalS, device.policy)

/**
 * A plausible next sample: kiosks stay on their charger; the others drain on battery, plug in
 * below 10 % and unplug when full; the rest wanders within bounds. Takes the cost so far.
 */
const nextHeartbeat = (device: DemoDevice, uptimeS: number) => {
  device.seq += 1
  if (isKiosk(device.index)) device.charging = true
  else if (device.charging && device.battery >= 100) device.charging = false
  else if (!device.charging && device.battery <= 10) device.charging = true
  device.battery = Math.max(3, Math.min(100, device.battery + (device.charging ? 3 : -1)))
  const sample = {
    seq: device.seq,
    ts: Date.now(),
    batteryPct: device.battery,
    charging: device.charging,
    memFreeMb: between(400, 1800),
    memTotalMb: 3072,
    storageFreeMb: between(9000, 12000),
    network: isMetered(device.index) ? ("cellular" as const) : ("wifi" as const),
    signalDbm: between(-90, -45),
    foregroundApp: APPS[device.index % APPS.length]!,
    agentVersion: isOldAgent(device.index) ? OLD_AGENT_VERSION : AGENT_VERSION,
    uptimeS
  }
  if (isOldAgent(device.index)) return sample
  const cost = { intervalS: currentInterval(device), wakeups: device.wakeups, txBytes: device.txBytes, reconnects: device.reconnects }
  device.wakeups = 0
  device.txBytes = 0
  device.reconnects = 0
  return { ...sample, ...cost }
}

/** A timer tick: one wake-up, now and then another (a network change, an FCM wake). */
const wake = (device: DemoDevice) => {
  device.wakeups += between(0, 9) === 0 ? 2 : 1
}

export const layer = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* EngineConfig
    if (config.demoDevices === 0) return
    const plane = yield* DevicePlane
    const enrollment = yield* Enrollment
    const interval = config.heartbeatInterval
    const token = yield* enrollment.createToken({
      expiresIn: Duration.minutes(5),
      maxUses: config.demoDevices,
      label: "demo fleet",
      createdBy: "engine"
    })
    const startedAt = Date.now()

    const enrol = (index: number) =>
      Effect.tryPromise(async () => {
        const response = await fetch(`${plane.url}/v1/enroll`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            token: token.token,
            hardwareId: `demo-${index + 1}`,
            model: MODELS[index % MODELS.length],
            manufacturer: "NexMDM demo",
            agentVersion: isOldAgent(index) ? OLD_AGENT_VERSION : AGENT_VERSION
          })
        })
        if (!response.ok) throw new Error(`enrol failed: ${response.status} ${await response.text()}`)
        const body = (await response.json()) as { deviceId: string; ticket: string }
        const device: DemoDevice = {
          index,
          deviceId: body.deviceId,
          ticket: body.ticket,
          seq: 0,
          battery: 40 + 11 * index,
          charging: isKiosk(index),
          intervalS: Math.round(Duration.toSeconds(interval)),
          policy: undefined,
          wakeups: 0,
          txBytes: 0,
          reconnects: 0
        }
        return device
      })

    const uptimeS = () => Math.round((Date.now() - startedAt) / 1000)

    /** One socket session; ends when the socket closes (or after `lifetime`, for the flapping device). */
    const socketSession = (device: DemoDevice, lifetime: Duration.Duration | undefined) =>
      Effect.async<void>((resume) => {
        device.reconnects += 1
        device.wakeups += 1
        const socket = new WebSocket(`${plane.url.replace(/^http/, "ws")}/v1/device/ws`, {
          headers: { authorization: `Bearer ${device.ticket}` }
        })
        let timer: NodeJS.Timeout | undefined
        // Re-armed after every heartbeat with the interval of the device's state then.
        const send = () => {
          if (socket.readyState !== WebSocket.OPEN) return
          const frame = JSON.stringify({ type: "heartbeat", ...nextHeartbeat(device, uptimeS()) })
          socket.send(frame)
          device.txBytes += Buffer.byteLength(frame)
          timer = setTimeout(() => {
            wake(device)
            send()
          }, currentInterval(device) * 1000)
        }
        socket.on("message", (raw) => {
          const frame = JSON.parse(String(raw)) as { type: string; ticket?: string; heartbeatIntervalS?: number; heartbeatPolicy?: HeartbeatPolicy }
          if (frame.type === "welcome") {
            device.intervalS = frame.heartbeatIntervalS ?? device.intervalS
            device.policy = frame.heartbeatPolicy
            send()
            if (lifetime !== undefined) setTimeout(() => socket.close(1000, "demo: dropping on purpose"), Duration.toMillis(lifetime))
          } else if (frame.type === "ticket" && frame.ticket !== undefined) {
            device.ticket = frame.ticket
          }
        })
        socket.on("error", () => {})
        socket.on("close", () => {
          clearTimeout(timer)
          resume(Effect.void)
        })
        return Effect.sync(() => {
          clearTimeout(timer)
          socket.terminate()
        })
      })

    /** One heartbeat over the HTTP fallback; the answer brings the interval and advice, as a welcome does. */
    const httpBeat = (device: DemoDevice) =>
      Effect.tryPromise(async () => {
        wake(device)
        const body = JSON.stringify({ heartbeats: [nextHeartbeat(device, uptimeS())] })
        device.txBytes += Buffer.byteLength(body)
        const response = await fetch(`${plane.url}/v1/device/heartbeats`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${device.ticket}` },
          body
        })
        if (!response.ok) return
        const answer = (await response.json()) as { heartbeatIntervalS?: number; heartbeatPolicy?: HeartbeatPolicy }
        device.intervalS = answer.heartbeatIntervalS ?? device.intervalS
        device.policy = answer.heartbeatPolicy
      }).pipe(Effect.ignore)

    const httpLoop = (device: DemoDevice) =>
      httpBeat(device).pipe(
        Effect.zipRight(Effect.suspend(() => Effect.sleep(Duration.seconds(currentInterval(device))))),
        Effect.forever
      )

    const run = (device: DemoDevice) => {
      if (device.index === 1) return httpLoop(device)
      // The last device drops its socket every few intervals and comes back after a short pause.
      const flapping = config.demoDevices > 2 && device.index === config.demoDevices - 1
      const session = socketSession(device, flapping ? Duration.times(interval, 4) : undefined)
      return session.pipe(
        Effect.zipRight(Effect.sleep(flapping ? Duration.times(interval, 1) : Duration.seconds(2))),
        Effect.forever
      )
    }

    const devices = yield* Effect.forEach(Array.from({ length: config.demoDevices }, (_, i) => i), enrol, {
      concurrency: 1
    }).pipe(Effect.orDie)
    yield* Effect.forEach(devices, (device) => Effect.forkScoped(run(device)), { discard: true })
    yield* Effect.logInfo("demo fleet running").pipe(
      Effect.annotateLogs({ module: "DemoFleet", devices: devices.length, heartbeatIntervalS: Duration.toSeconds(interval) })
    )
  })
)
