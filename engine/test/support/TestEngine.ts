/**
 * The engine's core (device plane, actors, write-behind, enrollment) on a fresh test database,
 * on ephemeral ports, with fast presence timings and cheap argon2, plus a WebSocket device client.
 */
import { Duration, Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted, Scope } from "effect"
import WebSocket from "ws"
import { DevicePlane } from "../../src/DevicePlane.js"
import * as Engine from "../../src/Engine.js"
import { EngineConfig, type EngineConfigShape } from "../../src/EngineConfig.js"
import { Enrollment } from "../../src/Enrollment.js"
import { Push } from "../../src/push/Push.js"
import { type TestDatabase, testDatabase } from "./TestDatabase.js"

export const testConfig = (database: TestDatabase, overrides: Partial<EngineConfigShape> = {}) =>
  EngineConfig.layerWith({
    databaseUrl: Option.some(Redacted.make(database.url)),
    host: "127.0.0.1",
    devicePort: 0,
    adminPort: 0,
    demoDevices: 0,
    heartbeatInterval: Duration.seconds(1),
    batchMaxDelay: Duration.millis(20),
    sweepInterval: Duration.millis(100),
    argon2Device: { memoryCost: 1024, timeCost: 1, parallelism: 1 },
    enrollRatePerMinute: 100_000,
    dbPoolSize: 5,
    // Port 0 would make the default origin useless: tests name the console's origin.
    consoleOrigin: "http://localhost:3000",
    ...overrides
  })

export type CoreServices = Layer.Layer.Success<ReturnType<typeof Engine.coreLayerWith>>

/** A running engine core; `dispose` shuts it down gracefully (flushes), like SIGTERM. */
export interface TestEngine {
  readonly runtime: ManagedRuntime.ManagedRuntime<CoreServices, unknown>
  readonly run: <A, E>(effect: Effect.Effect<A, E, CoreServices>) => Promise<A>
  readonly url: string
  readonly wsUrl: string
  readonly dispose: () => Promise<void>
}

export const startEngine = async (
  database: TestDatabase,
  overrides: Partial<EngineConfigShape> = {},
  options: { readonly push?: Layer.Layer<Push> } = {}
): Promise<TestEngine> => {
  const runtime = ManagedRuntime.make(
    Engine.coreLayerWith(options.push ?? Push.layerDisabled).pipe(
      Layer.provideMerge(testConfig(database, overrides)),
      // Engine logs are noise in test output unless something goes wrong.
      Layer.provide(Logger.minimumLogLevel(process.env["NEXMDM_TEST_LOG_LEVEL"] === "debug" ? LogLevel.Debug : LogLevel.Warning))
    )
  )
  const plane = await runtime.runPromise(DevicePlane)
  return {
    runtime,
    run: (effect) => runtime.runPromise(effect),
    url: plane.url,
    wsUrl: `${plane.url.replace(/^http/, "ws")}/v1/device/ws`,
    dispose: () => runtime.dispose()
  }
}

/** A fresh database for the test file; `release` drops it. */
export const openDatabase = async (): Promise<{ database: TestDatabase; release: () => Promise<void> }> => {
  const scope = await Effect.runPromise(Scope.make())
  const database = await Effect.runPromise(Scope.extend(testDatabase, scope))
  return { database, release: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

// ---------------------------------------------------------------------------------------------
// Device side

export interface Enrolled {
  readonly deviceId: string
  readonly deviceSecret: string
  readonly hmacKey: string
  readonly ticket: string
  readonly ticketExpiresAt: number
  readonly heartbeatIntervalS: number
  readonly reenrolled: boolean
}

export const createToken = (engine: TestEngine, maxUses = 1, expiresIn = Duration.hours(1)) =>
  engine.run(Effect.flatMap(Enrollment, (enrollment) => enrollment.createToken({ expiresIn, maxUses, label: "test" })))

export const postJson = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === "" ? undefined : (JSON.parse(text) as any) }
}

export const enrol = async (engine: TestEngine, token: string, hardwareId: string): Promise<Enrolled> => {
  const response = await postJson(`${engine.url}/v1/enroll`, { token, hardwareId, model: "test" })
  if (response.status !== 201) throw new Error(`enrol failed: ${response.status} ${JSON.stringify(response.body)}`)
  return response.body as Enrolled
}

export const heartbeat = (seq: number, overrides: Record<string, unknown> = {}) => ({
  type: "heartbeat",
  seq,
  ts: Date.now(),
  batteryPct: 80,
  charging: false,
  memFreeMb: 1000,
  memTotalMb: 4000,
  storageFreeMb: 20000,
  network: "wifi",
  signalDbm: -60,
  foregroundApp: "com.example.kiosk",
  agentVersion: "1.0.0",
  uptimeS: 100,
  ...overrides
})

export interface Frame {
  readonly type: string
  readonly [key: string]: any
}

/** A device's socket with a frame inbox the test can wait on. */
export class DeviceSocket {
  readonly frames: Array<Frame> = []
  closed: { code: number; reason: string } | undefined
  private waiters: Array<() => void> = []

  private constructor(readonly socket: WebSocket) {
    socket.on("message", (raw) => {
      this.frames.push(JSON.parse(String(raw)) as Frame)
      this.notify()
    })
    socket.on("close", (code, reason) => {
      this.closed = { code, reason: String(reason) }
      this.notify()
    })
    socket.on("error", () => {})
  }

  private notify() {
    for (const waiter of this.waiters.splice(0)) waiter()
  }

  static open(url: string, ticket?: string): Promise<DeviceSocket> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, ticket === undefined ? {} : { headers: { authorization: `Bearer ${ticket}` } })
      const device = new DeviceSocket(socket)
      socket.once("open", () => resolve(device))
      socket.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)))
      socket.once("error", reject)
    })
  }

  send(frame: unknown) {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame))
  }

  /** Waits until a frame matching `predicate` arrived (searching from the start) and returns it. */
  async waitFor(predicate: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.frames.find(predicate)
      if (found !== undefined) return found
      if (this.closed !== undefined) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before the frame arrived; got ${JSON.stringify(this.frames)}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for a frame; got ${JSON.stringify(this.frames)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  async waitForClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs
    while (this.closed === undefined) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`socket still open; frames ${JSON.stringify(this.frames)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.closed
  }

  close() {
    this.socket.close()
  }
}

/** Waits until `check` returns a value other than undefined, polling. */
export const eventually = async <A>(check: () => Promise<A | undefined> | A | undefined, timeoutMs = 5000, everyMs = 25): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}
