/**
 * A handful of simulated devices that enrol and heartbeat through the real device plane, so a
 * first `npm start` shows a living fleet: most hold a WebSocket, one uses the HTTP fallback, and
 * one drops its socket now and then to show presence moving through grace. Hardware ids are
 * fixed, so each start re-enrols the same devices (the documented re-enrolment path).
 */
import { Duration, Effect, Layer, Schedule } from "effect"
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
}

const MODELS = ["TC52 scanner", "Galaxy Tab A8 kiosk", "Pixel 7a", "CT40 handheld", "Lenovo M10 kiosk"]
const APPS = ["com.example.kiosk", "com.example.scanner", "com.android.chrome", "com.example.pos"]

const between = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1))

/** A plausible next sample: battery drifts with charging, the rest wanders within bounds. */
const nextHeartbeat = (device: DemoDevice, uptimeS: number) => {
  device.seq += 1
  const charging = between(0, 9) < 3
  device.battery = Math.max(3, Math.min(100, device.battery + (charging ? 1 : -1)))
  return {
    seq: device.seq,
    ts: Date.now(),
    batteryPct: device.battery,
    charging,
    memFreeMb: between(400, 1800),
    memTotalMb: 3072,
    storageFreeMb: between(9000, 12000),
    network: device.index % 3 === 2 ? ("cellular" as const) : ("wifi" as const),
    signalDbm: between(-90, -45),
    foregroundApp: APPS[device.index % APPS.length]!,
    agentVersion: "0.1.0-demo",
    uptimeS
  }
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
            agentVersion: "0.1.0-demo"
          })
        })
        if (!response.ok) throw new Error(`enrol failed: ${response.status} ${await response.text()}`)
        const body = (await response.json()) as { deviceId: string; ticket: string }
        return { index, deviceId: body.deviceId, ticket: body.ticket, seq: 0, battery: 40 + 11 * index } satisfies DemoDevice
      })

    /** One socket session; ends when the socket closes (or after `lifetime`, for the flapping device). */
    const socketSession = (device: DemoDevice, lifetime: Duration.Duration | undefined) =>
      Effect.async<void>((resume) => {
        const socket = new WebSocket(`${plane.url.replace(/^http/, "ws")}/v1/device/ws`, {
          headers: { authorization: `Bearer ${device.ticket}` }
        })
        let timer: NodeJS.Timeout | undefined
        const send = () => {
          if (socket.readyState !== WebSocket.OPEN) return
          const hb = nextHeartbeat(device, Math.round((Date.now() - startedAt) / 1000))
          socket.send(JSON.stringify({ type: "heartbeat", ...hb }))
        }
        socket.on("message", (raw) => {
          const frame = JSON.parse(String(raw)) as { type: string; durableSeq?: number; ticket?: string }
          if (frame.type === "welcome") {
            send()
            timer = setInterval(send, Duration.toMillis(interval))
            if (lifetime !== undefined) setTimeout(() => socket.close(1000, "demo: dropping on purpose"), Duration.toMillis(lifetime))
          } else if (frame.type === "ticket" && frame.ticket !== undefined) {
            device.ticket = frame.ticket
          }
        })
        socket.on("error", () => {})
        socket.on("close", () => {
          clearInterval(timer)
          resume(Effect.void)
        })
        return Effect.sync(() => {
          clearInterval(timer)
          socket.terminate()
        })
      })

    const httpLoop = (device: DemoDevice) =>
      Effect.tryPromise(() =>
        fetch(`${plane.url}/v1/device/heartbeats`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${device.ticket}` },
          body: JSON.stringify({ heartbeats: [nextHeartbeat(device, Math.round((Date.now() - startedAt) / 1000))] })
        })
      ).pipe(Effect.ignore, Effect.repeat(Schedule.spaced(interval)))

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
