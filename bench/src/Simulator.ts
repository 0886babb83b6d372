/**
 * A simulator worker: a forked process that enrolls its share of devices, connects them and
 * sends one heartbeat per device per second, behaving like a well-written agent (PROTOCOL.md):
 * a persistent-outbox model where entries leave only when durable, resend from `welcome.durableSeq`,
 * pause-and-resend on BACKPRESSURE, ticket renewal, jittered reconnects.
 *
 * Heartbeats are spread evenly over each second (device i fires at i/N of the period) so the
 * engine sees a steady rate instead of bursts; the scheduler is open-loop (it does not wait for
 * acks), and reports how late it ran, because a saturated simulator inflates latency figures.
 */
import {
  CloseCode,
  decodeEngineFrame,
  EnrollResponse,
  HeartbeatBatchResponse,
  MAX_FRAME_BYTES,
  PendingMessagesResponse,
  TicketResponse,
  type HttpHeartbeat,
  type NetworkType
} from "@nexmdm/protocol"
import { commandSigningString, resultSigningString, sign, verifySignature } from "@nexmdm/protocol/signing"
import { Either, Schema } from "effect"
import { writeFileSync } from "node:fs"
import http from "node:http"
import https from "node:https"
import { performance } from "node:perf_hooks"
import WebSocket from "ws"
import { LatencyHistogram } from "./Stats.js"
import type { Counters, DeviceReport, ParentMessage, WorkerConfig, WorkerMessage } from "./WorkerMessages.js"
import { SeqSet } from "./ZeroLoss.js"

// ---------------------------------------------------------------------------------------------
// IPC
// ---------------------------------------------------------------------------------------------

const post = (message: WorkerMessage): void => {
  process.send?.(message)
}
const log = (text: string): void => post({ type: "log", text })

// ---------------------------------------------------------------------------------------------
// Device state
// ---------------------------------------------------------------------------------------------

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

const APPS = ["com.example.kiosk", "com.example.pos", "com.android.settings", "com.example.scanner"]
const AGENT_VERSION = "bench-0.1.0"

class Device {
  deviceId = ""
  secret = ""
  /** HMAC key from enrollment: verifies command frames, signs command results (PROTOCOL.md 16). */
  hmacKey: Buffer = Buffer.alloc(0)
  ticket = ""
  ws: WebSocket | null = null
  /** Authenticated: `welcome` received on the current socket. */
  online = false
  welcomedOnce = false
  welcomeAt = 0
  connectAttempts = 0
  reconnectTimer: NodeJS.Timeout | null = null
  retired = false

  /** Next seq to produce; seqs strictly increase for the device's life (PROTOCOL.md 9.1). */
  nextSeq = 1
  firstSeq = 1
  /** Heartbeats not yet durable, in seq order (Map keeps insertion order, and seqs only grow). */
  readonly outbox = new Map<number, HttpHeartbeat>()
  /** Lowest outbox seq not yet sent on the current connection. */
  sendCursor = 1
  /** Highest seq ever sent: a send at or below it is a resend. */
  highestSent = 0
  /** Time of the latest (re)send of each unacked seq. */
  readonly sentAt = new Map<number, number>()
  readonly acked = new SeqSet()
  durableSeq = 0
  /** When durableSeq last caught up with the highest acked seq (null: it has not, yet). */
  durableReachedAt: number | null = 0
  pausedUntil = 0
  httpInFlight = false

  // Random-walk telemetry.
  battery = 20 + Math.floor(Math.random() * 80)
  charging = Math.random() < 0.3
  readonly memTotal = [2048, 3072, 4096, 6144][Math.floor(Math.random() * 4)]!
  memFree = 0
  storageFree = 8000 + Math.floor(Math.random() * 50_000)
  signal = -60 - Math.floor(Math.random() * 40)
  readonly network: NetworkType = Math.random() < 0.85 ? "wifi" : "cellular"
  app = APPS[Math.floor(Math.random() * APPS.length)]!
  readonly bootAt = Date.now() - Math.floor(Math.random() * 86_400_000)

  constructor(readonly index: number, readonly hardwareId: string, readonly http: boolean, readonly phaseMs: number) {
    this.memFree = Math.floor(this.memTotal * (0.2 + Math.random() * 0.5))
  }

  /** The next sample: small random steps, like a real device between two heartbeats. */
  sample(): HttpHeartbeat {
    const r = Math.random()
    if (r < 0.002) this.charging = !this.charging
    if (r < 0.05) this.battery = Math.max(0, Math.min(100, this.battery + (this.charging ? 1 : -1)))
    this.memFree = Math.max(64, Math.min(this.memTotal - 64, this.memFree + Math.round((Math.random() - 0.5) * 40)))
    if (r > 0.99) this.storageFree = Math.max(0, this.storageFree - 1)
    this.signal = Math.max(-120, Math.min(-40, this.signal + Math.round((Math.random() - 0.5) * 4)))
    if (r > 0.995) this.app = APPS[Math.floor(Math.random() * APPS.length)]!
    const now = Date.now()
    const heartbeat: Mutable<HttpHeartbeat> = {
      seq: this.nextSeq++,
      ts: now,
      batteryPct: this.battery,
      charging: this.charging,
      memFreeMb: this.memFree,
      memTotalMb: this.memTotal,
      storageFreeMb: this.storageFree,
      network: this.network,
      agentVersion: AGENT_VERSION,
      uptimeS: Math.floor((now - this.bootAt) / 1000)
    }
    if (this.network === "cellular") heartbeat.signalDbm = this.signal
    if (r < 0.9) heartbeat.foregroundApp = this.app
    return heartbeat
  }

  /** Highest seq the engine acked. */
  highestAcked(): number {
    return this.acked.max()
  }
}

// ---------------------------------------------------------------------------------------------
// Counters and latency
// ---------------------------------------------------------------------------------------------

const counters = {
  produced: 0,
  sent: 0,
  resent: 0,
  acks: 0,
  backpressure: 0,
  disconnects: 0,
  reconnects: 0,
  ticketRenewals: 0,
  violations: 0,
  errors: {} as Record<string, number>
}
const snapshotCounters = (): Counters => ({ ...counters, errors: { ...counters.errors } })
const countError = (code: string) => {
  counters.errors[code] = (counters.errors[code] ?? 0) + 1
}
let violationsLogged = 0
const violation = (text: string) => {
  counters.violations++
  if (violationsLogged++ < 10) log(`protocol violation: ${text}`)
}

/**
 * Commands (the `commands` scenario): first arrival of each command id (epoch ms, Date.now(): the
 * engine's clock domain on the same machine), signature failures, and a second heartbeat-latency
 * histogram that records only while the parent marks a window (the fan-out).
 */
const commandReceipts: Array<{ id: string; deviceId: string; atEpochMs: number }> = []
const commandsSeen = new Set<string>()
let signatureFailures = 0
let commandRejections = 0
let commandDuplicates = 0
let markActive = false
const markLatency = new LatencyHistogram()

/** performance.now() from which latencies are recorded (after the warm-up). */
let recordFrom = Number.POSITIVE_INFINITY
const wsLatency = new LatencyHistogram()

/**
 * BENCH_TRACE=<file prefix>: every device keeps a log of what it sent and got (time, event, seq),
 * written to <prefix>-<worker>.jsonl at the end. For investigating a zero-loss failure.
 */
const tracePrefix = process.env["BENCH_TRACE"]
const traces = new Map<string, Array<string>>()
const trace = (device: { deviceId: string }, event: string, seq: number | string) => {
  if (tracePrefix === undefined) return
  let list = traces.get(device.deviceId)
  if (list === undefined) traces.set(device.deviceId, (list = []))
  list.push(`${performance.now().toFixed(1)} ${event} ${seq}`)
}
const httpLatency = new LatencyHistogram()
let schedLagMaxMs = 0
/** Date.now() of the latest welcome (the reconnect-storm and crash scenarios time recovery with it). */
let lastWelcomeEpochMs = 0

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

interface HttpResult {
  readonly status: number
  readonly body: unknown
  readonly code: string | null
  readonly retryAfterMs: number | null
}

// node:http with a keep-alive agent rather than fetch: undici's fetch costs several times more CPU
// per request, and the simulator's CPU is what limits how many devices one core can play.
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 256 })
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 256 })

const requestJson = (method: "GET" | "POST", url: string, body: unknown, ticket?: string): Promise<HttpResult> =>
  new Promise((resolve, reject) => {
    const target = new URL(url)
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const headers: http.OutgoingHttpHeaders = {}
    if (payload !== undefined) {
      headers["content-type"] = "application/json"
      headers["content-length"] = Buffer.byteLength(payload)
    }
    if (ticket !== undefined) headers["authorization"] = `Bearer ${ticket}`
    const secure = target.protocol === "https:"
    const request = (secure ? https : http).request(
      target,
      { method, headers, agent: secure ? httpsAgent : httpAgent, timeout: 30_000 },
      (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("error", reject)
        response.on("end", () => resolve(toResult(method, target.pathname, response, Buffer.concat(chunks).toString("utf8"))))
      }
    )
    request.on("timeout", () => request.destroy(new Error(`${method} ${target.pathname}: no answer within 30 s`)))
    request.on("error", reject)
    request.end(payload)
  })

const toResult = (method: string, path: string, response: http.IncomingMessage, text: string): HttpResult => {
  const status = response.statusCode ?? 0
  let json: unknown = null
  try {
    json = text.length > 0 ? JSON.parse(text) : null
  } catch {
    json = text
  }
  let code: string | null = null
  let retryAfterMs: number | null = null
  if (status >= 300) {
    const error = (json as { error?: { code?: unknown; retryAfterMs?: unknown } } | null)?.error
    if (typeof error?.code === "string") code = error.code
    else violation(`${method} ${path} -> ${status} without an HttpErrorBody: ${text.slice(0, 200)}`)
    if (typeof error?.retryAfterMs === "number") retryAfterMs = error.retryAfterMs
    const header = response.headers["retry-after"]
    if (retryAfterMs === null && header !== undefined && Number.isFinite(Number(header))) retryAfterMs = Number(header) * 1000
    if ((status === 429 || status === 503) && header === undefined) {
      violation(`${method} ${path} -> ${status} without a Retry-After header`)
    }
  }
  return { status, body: json, code, retryAfterMs }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Full-jitter exponential backoff (PROTOCOL.md 12.1): base 1 s, factor 2, cap 60 s. */
const backoffMs = (attempt: number) => Math.random() * Math.min(60_000, 1000 * 2 ** attempt)

/** Runs `task` over `items` with at most `limit` in flight. */
const forEachLimit = async <A>(items: ReadonlyArray<A>, limit: number, task: (item: A) => Promise<void>) => {
  let next = 0
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!)
  })
  await Promise.all(runners)
}

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------

type Phase = "setup" | "running" | "draining" | "closing"

class Simulation {
  readonly devices: Array<Device>
  readonly wsUrl: string
  phase: Phase = "setup"
  startPerf = 0
  stopPerf = 0
  readonly periodMs: number
  /** Devices with a backlog (resends after a reconnect or BACKPRESSURE, HTTP leftovers). */
  readonly backlogged = new Set<Device>()
  failures: Array<string> = []
  reenrolled = 0
  intervalWarned = false
  framesSeen = 0

  constructor(readonly config: WorkerConfig) {
    this.periodMs = 1000 / config.rateHz
    const n = config.totalDevices
    const share = config.httpShare
    this.devices = config.indices.map((index) => {
      // Exactly floor(N * share) HTTP devices, spread evenly over the index range.
      const http = Math.floor((index + 1) * share) > Math.floor(index * share)
      return new Device(index, `${config.hardwareIdPrefix}-${index}`, http, (index / n) * this.periodMs)
    })
    const url = new URL("/v1/device/ws", config.target)
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
    this.wsUrl = url.toString()
  }

  private fail(device: Device, what: string) {
    if (this.failures.length < 20) this.failures.push(`${device.hardwareId}: ${what}`)
  }

  // ---- setup ------------------------------------------------------------------------------

  async setup(): Promise<void> {
    let done = 0
    let failed = 0
    const enrolled: Array<Device> = []
    await forEachLimit(this.devices, this.config.enrollConcurrency, async (device) => {
      if (await this.enroll(device)) enrolled.push(device)
      else failed++
      if (++done % 100 === 0) post({ type: "progress", phase: "enroll", done, failed })
    })
    post({ type: "progress", phase: "enroll", done, failed })

    done = 0
    const ready: Array<Device> = []
    const sockets = enrolled.filter((d) => !d.http)
    await forEachLimit(sockets, this.config.connectConcurrency, async (device) => {
      if (await this.connectWithRetry(device)) ready.push(device)
      else failed++
      if (++done % 100 === 0) post({ type: "progress", phase: "connect", done, failed })
    })
    const httpDevices = enrolled.filter((d) => d.http)
    await forEachLimit(httpDevices, this.config.enrollConcurrency, async (device) => {
      // An HTTP device learns its durable watermark from the long-poll endpoint (waitS=0).
      if (await this.pollDurable(device, true)) {
        device.nextSeq = Math.max(device.nextSeq, device.durableSeq + 1)
        device.firstSeq = device.nextSeq
        device.sendCursor = device.nextSeq
        ready.push(device)
      } else failed++
    })
    // Keep the phase order (the scheduler walks devices by phase).
    const readySet = new Set(ready)
    this.devices.splice(0, this.devices.length, ...this.devices.filter((d) => readySet.has(d)))
    post({
      type: "ready",
      devices: this.devices.map((d) => ({ deviceId: d.deviceId, firstSeq: d.firstSeq })),
      http: httpDevices.filter((d) => readySet.has(d)).length,
      failed,
      reenrolled: this.reenrolled,
      failures: this.failures
    })
  }

  private async enroll(device: Device): Promise<boolean> {
    for (let attempt = 0; attempt < 8; attempt++) {
      let result: HttpResult
      try {
        result = await requestJson("POST", new URL("/v1/enroll", this.config.target).toString(), {
          token: this.config.token,
          hardwareId: device.hardwareId,
          model: "BenchPhone",
          manufacturer: "NexMDM",
          osVersion: "14",
          agentVersion: AGENT_VERSION
        })
      } catch (error) {
        await sleep(backoffMs(attempt))
        continue
      }
      if (result.status === 201) {
        const decoded = Schema.decodeUnknownEither(EnrollResponse)(result.body)
        if (Either.isLeft(decoded)) {
          violation(`EnrollResponse does not match the schema: ${JSON.stringify(result.body).slice(0, 300)}`)
          this.fail(device, "bad EnrollResponse")
          return false
        }
        const response = decoded.right
        device.deviceId = response.deviceId
        device.secret = response.deviceSecret
        device.hmacKey = Buffer.from(response.hmacKey, "base64")
        device.ticket = response.ticket
        if (response.reenrolled) this.reenrolled++
        return true
      }
      if (result.status === 200) violation(`POST /v1/enroll answered 200, expected 201`)
      if (result.status === 429 || result.status >= 500) {
        await sleep(Math.max(result.retryAfterMs ?? 0, backoffMs(attempt)))
        continue
      }
      this.fail(device, `enroll -> ${result.status} ${result.code ?? ""} ${JSON.stringify(result.body).slice(0, 200)}`)
      return false
    }
    this.fail(device, "enroll: gave up after 8 attempts")
    return false
  }

  private async connectWithRetry(device: Device): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const outcome = await this.connect(device)
      if (outcome === "ok") return true
      if (outcome === "retired") {
        this.fail(device, "retired")
        return false
      }
      if (outcome === "ticket") await this.renewTicket(device)
      await sleep(backoffMs(attempt))
    }
    this.fail(device, "could not connect after 5 attempts")
    return false
  }

  /** Opens a socket authenticated at upgrade; resolves once `welcome` arrived or the attempt failed. */
  private connect(device: Device): Promise<"ok" | "failed" | "ticket" | "retired"> {
    return new Promise((resolve) => {
      let settled = false
      const settle = (outcome: "ok" | "failed" | "ticket" | "retired") => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(outcome)
      }
      const ws = new WebSocket(this.wsUrl, {
        headers: { authorization: `Bearer ${device.ticket}` },
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: 15_000
      })
      device.ws = ws
      const timer = setTimeout(() => {
        if (!settled) {
          this.fail(device, "no welcome within 15 s")
          ws.terminate()
          settle("failed")
        }
      }, 15_000)
      ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
        if (device.ws !== ws) return
        if (isBinary) violation("engine sent a binary frame")
        const wasOnline = device.online
        // binaryType is "nodebuffer" (the default), so data is one Buffer.
        this.onFrame(device, (data as Buffer).toString("utf8"))
        if (!wasOnline && device.online) settle("ok")
      })
      ws.on("unexpected-response", (_request, response) => {
        // The spec answers rejected tickets after the upgrade with error + close 4001/4002, but an
        // agent must also treat an HTTP 401 to the upgrade like 4001 (PROTOCOL.md 5.1).
        this.fail(device, `upgrade answered HTTP ${response.statusCode}`)
        response.resume()
        ws.terminate()
        settle(response.statusCode === 401 ? "ticket" : response.statusCode === 403 ? "retired" : "failed")
      })
      ws.on("error", () => {
        // 'close' follows; the error itself is reported there.
      })
      ws.on("close", (code: number, reason: Buffer) => {
        const wasOnline = device.online && device.ws === ws
        if (device.ws === ws) {
          device.ws = null
          device.online = false
        }
        if (!settled) {
          if (code === CloseCode.unauthenticated || code === CloseCode.ticketExpired) settle("ticket")
          else if (code === CloseCode.deviceRetired) settle("retired")
          else {
            this.fail(device, `closed before welcome: ${code} ${reason.toString("utf8")}`)
            settle("failed")
          }
          return
        }
        if (wasOnline) this.onDisconnect(device, code, reason.toString("utf8"))
      })
    })
  }

  private get closing(): boolean {
    return this.phase === "closing"
  }

  /** A socket that was up dropped: reconnect like an agent would (PROTOCOL.md 11, 12). */
  private onDisconnect(device: Device, code: number, reason: string) {
    if (this.closing) return
    counters.disconnects++
    if (counters.disconnects <= 10) log(`device ${device.deviceId} disconnected: ${code} ${reason}`)
    // The backoff resets only after a connection stayed up for 60 s.
    if (performance.now() - device.welcomeAt >= 60_000) device.connectAttempts = 0
    this.scheduleReconnect(device, code)
  }

  private scheduleReconnect(device: Device, code: number) {
    if (code === CloseCode.deviceRetired) {
      device.retired = true
      return
    }
    const needsTicket = code === CloseCode.unauthenticated || code === CloseCode.ticketExpired
    const attempt = device.connectAttempts++
    device.reconnectTimer = setTimeout(async () => {
      device.reconnectTimer = null
      if (this.closing) return
      if (needsTicket) await this.renewTicket(device)
      counters.reconnects++
      const outcome = await this.connect(device)
      if (outcome === "ok" || this.closing) return
      const next = outcome === "ticket" ? CloseCode.unauthenticated : outcome === "retired" ? CloseCode.deviceRetired : 1006
      this.scheduleReconnect(device, next)
    }, needsTicket && attempt === 0 ? 0 : backoffMs(attempt))
  }

  private async renewTicket(device: Device): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const result = await requestJson("POST", new URL("/v1/device/ticket", this.config.target).toString(), {
          deviceId: device.deviceId,
          deviceSecret: device.secret
        })
        if (result.status === 200) {
          const decoded = Schema.decodeUnknownEither(TicketResponse)(result.body)
          if (Either.isRight(decoded)) {
            device.ticket = decoded.right.ticket
            counters.ticketRenewals++
            return
          }
          violation(`TicketResponse does not match the schema: ${JSON.stringify(result.body).slice(0, 200)}`)
          return
        }
        if (result.code !== null) countError(result.code)
        if (result.status === 403) {
          device.retired = true
          return
        }
        if (result.status !== 429 && result.status < 500) return
        await sleep(Math.max(result.retryAfterMs ?? 0, backoffMs(attempt)))
      } catch {
        await sleep(backoffMs(attempt))
      }
    }
  }

  // ---- engine frames ----------------------------------------------------------------------

  private onFrame(device: Device, text: string) {
    const now = performance.now()
    let frame: Record<string, unknown>
    try {
      frame = JSON.parse(text) as Record<string, unknown>
    } catch {
      violation(`engine frame is not JSON: ${text.slice(0, 200)}`)
      return
    }
    const type = frame["type"]
    // Full schema validation is too costly for every ack at 10k/s on the simulator's core; check
    // every rare frame and 1 % of acks/durables, so a non-conforming engine still shows up.
    if ((type !== "ack" && type !== "durable") || this.framesSeen++ % 100 === 0) {
      const decoded = decodeEngineFrame(text)
      if (Either.isLeft(decoded)) violation(`engine frame fails the schema (${decoded.left.message}): ${text.slice(0, 200)}`)
    }
    switch (type) {
      case "welcome": {
        const durableSeq = Number(frame["durableSeq"])
        if (device.online) violation("second welcome on one socket")
        device.online = true
        device.welcomeAt = now
        lastWelcomeEpochMs = Date.now()
        if (frame["deviceId"] !== device.deviceId) violation(`welcome.deviceId ${String(frame["deviceId"])} != ${device.deviceId}`)
        const interval = Number(frame["heartbeatIntervalS"])
        if (!this.intervalWarned && interval !== this.periodMs / 1000) {
          this.intervalWarned = true
          log(`engine asks for heartbeatIntervalS=${interval}; the bench sends every ${this.periodMs} ms regardless`)
        }
        // A device continues after the engine's watermark (it may have been enrolled by an earlier run).
        device.nextSeq = Math.max(device.nextSeq, durableSeq + 1)
        if (!device.welcomedOnce) {
          device.welcomedOnce = true
          device.firstSeq = device.nextSeq
        }
        this.advanceDurable(device, durableSeq, now)
        // Resend everything above the watermark, in order (PROTOCOL.md 9.4).
        device.sendCursor = durableSeq + 1
        if (device.sendCursor < device.nextSeq) this.backlogged.add(device)
        return
      }
      case "ack": {
        const seq = Number(frame["seq"])
        counters.acks++
        trace(device, `ack(d=${String(frame["durableSeq"])})`, seq)
        if (seq >= device.nextSeq) violation(`ack for seq ${seq} that was never sent`)
        const sentAt = device.sentAt.get(seq)
        if (sentAt !== undefined) {
          if (now >= recordFrom) wsLatency.record(now - sentAt)
          if (markActive) markLatency.record(now - sentAt)
          device.sentAt.delete(seq)
        }
        if (device.acked.add(seq) && seq === device.acked.max() && device.durableSeq < seq) device.durableReachedAt = null
        this.advanceDurable(device, Number(frame["durableSeq"]), now)
        if (this.config.closedLoop === true && seq === device.nextSeq - 1 && this.phase === "running") this.produce(device, now)
        return
      }
      case "durable":
        this.advanceDurable(device, Number(frame["durableSeq"]), now)
        return
      case "ticket":
        if (typeof frame["ticket"] === "string") device.ticket = frame["ticket"]
        return
      case "pong":
        return
      case "command":
        this.onCommand(device, frame)
        return
      case "error": {
        const code = String(frame["code"])
        countError(code)
        if (typeof frame["commandId"] === "string") {
          commandRejections++
          if (commandRejections <= 10) log(`device ${device.deviceId}: command ${String(frame["commandId"])} refused: ${code} ${String(frame["message"])}`)
        }
        trace(device, `error:${code}`, String(frame["seq"]))
        const retryAfterMs = typeof frame["retryAfterMs"] === "number" ? frame["retryAfterMs"] : 1000
        if (code === "BACKPRESSURE" || code === "RATE_LIMITED" || code === "SHUTTING_DOWN") {
          if (code === "BACKPRESSURE") counters.backpressure++
          // Not accepted: keep it, pause the whole outbox, then resend from it in order (PROTOCOL.md 9.3).
          device.pausedUntil = now + retryAfterMs
          const seq = frame["seq"]
          if (typeof seq === "number") {
            device.sendCursor = Math.min(device.sendCursor, seq)
            device.sentAt.delete(seq)
          } else {
            if (code === "BACKPRESSURE") violation("BACKPRESSURE error without seq")
            // RATE_LIMITED drops a frame without saying which: resend from the lowest unacked seq.
            for (const pending of device.outbox.keys()) {
              if (!device.acked.has(pending)) {
                device.sendCursor = Math.min(device.sendCursor, pending)
                break
              }
            }
          }
          this.backlogged.add(device)
        } else if ((counters.errors[code] ?? 0) <= 3) {
          log(`device ${device.deviceId} got error ${code}: ${String(frame["message"])}`)
        }
        return
      }
      default:
        // Later protocol versions add frame types; an agent ignores them.
        return
    }
  }

  /**
   * A `command` frame: verify the engine's signature with the device key, remember when it arrived,
   * answer `command_ack` received, then a signed `command_result` succeeded (a ping does nothing).
   */
  private onCommand(device: Device, frame: Record<string, unknown>) {
    const atEpochMs = Date.now()
    const id = String(frame["id"])
    const commandType = String(frame["commandType"])
    const issuedAt = Number(frame["issuedAt"])
    const expiresAt = Number(frame["expiresAt"])
    const signed = commandSigningString({ id, deviceId: device.deviceId, commandType, issuedAt, expiresAt, params: frame["params"] ?? {} })
    if (typeof frame["sig"] !== "string" || !verifySignature(device.hmacKey, signed, frame["sig"])) {
      signatureFailures++
      if (signatureFailures <= 10) log(`device ${device.deviceId}: command ${id} signature does not verify`)
      return
    }
    // The engine sends a command again while it is not acknowledged as received (after a reconnect,
    // and when another command is queued for the device meanwhile): answer again, count it once.
    if (commandsSeen.has(id)) commandDuplicates++
    else {
      commandsSeen.add(id)
      commandReceipts.push({ id, deviceId: device.deviceId, atEpochMs })
    }
    const ws = device.ws
    if (ws === null) return
    ws.send(JSON.stringify({ type: "command_ack", id, stage: "received" }))
    const completedAt = Date.now()
    const result = commandType === "ping" ? { agentVersion: AGENT_VERSION } : undefined
    const sig = sign(device.hmacKey, resultSigningString({ id, deviceId: device.deviceId, status: "succeeded", completedAt, result }))
    ws.send(JSON.stringify({ type: "command_result", id, status: "succeeded", completedAt, ...(result === undefined ? {} : { result }), sig }))
  }

  private advanceDurable(device: Device, durableSeq: number, now: number) {
    if (!Number.isSafeInteger(durableSeq)) return
    if (durableSeq < device.durableSeq) {
      violation(`durableSeq went down for ${device.deviceId}: ${device.durableSeq} -> ${durableSeq}`)
      return
    }
    if (durableSeq >= device.nextSeq) violation(`durableSeq ${durableSeq} beyond the highest seq sent (${device.nextSeq - 1})`)
    if (durableSeq > device.durableSeq) {
      device.durableSeq = durableSeq
      for (const seq of device.outbox.keys()) {
        if (seq > durableSeq) break
        device.outbox.delete(seq)
      }
    }
    if (device.durableReachedAt === null && device.durableSeq >= device.highestAcked()) device.durableReachedAt = now
  }

  // ---- sending ----------------------------------------------------------------------------

  private sendFrame(device: Device, heartbeat: HttpHeartbeat, now: number) {
    const ws = device.ws
    if (ws === null) return
    ws.send(JSON.stringify({ type: "heartbeat", ...heartbeat }))
    trace(device, "send", heartbeat.seq)
    if (heartbeat.seq <= device.highestSent) counters.resent++
    else device.highestSent = heartbeat.seq
    device.sentAt.set(heartbeat.seq, now)
    counters.sent++
  }

  /** A device's turn in the schedule: produce one heartbeat and send it if nothing is queued before it. */
  private produce(device: Device, now: number) {
    if (device.retired) return
    const heartbeat = device.sample()
    counters.produced++
    device.outbox.set(heartbeat.seq, heartbeat)
    if (device.http) {
      if (!device.httpInFlight && now >= device.pausedUntil) void this.postBatch(device)
      else this.backlogged.add(device)
      return
    }
    if (device.online && now >= device.pausedUntil && device.sendCursor === heartbeat.seq) {
      this.sendFrame(device, heartbeat, now)
      device.sendCursor++
    } else {
      this.backlogged.add(device)
    }
  }

  /**
   * Backlog service, every 100 ms: at most one resend per device per round (10 frames/s), well
   * under the engine's 20 frames/s per connection.
   */
  serviceBacklog() {
    const now = performance.now()
    for (const device of this.backlogged) {
      if (device.retired) {
        this.backlogged.delete(device)
        continue
      }
      if (now < device.pausedUntil) continue
      if (device.http) {
        if (device.httpInFlight) continue
        if (this.hasUnacked(device)) void this.postBatch(device)
        else this.backlogged.delete(device)
        continue
      }
      if (!device.online) continue
      while (device.sendCursor < device.nextSeq) {
        const heartbeat = device.outbox.get(device.sendCursor++)
        if (heartbeat !== undefined) {
          this.sendFrame(device, heartbeat, now)
          break
        }
      }
      if (device.sendCursor >= device.nextSeq) this.backlogged.delete(device)
    }
  }

  private hasUnacked(device: Device): boolean {
    for (const seq of device.outbox.keys()) if (!device.acked.has(seq)) return true
    return false
  }

  /**
   * HTTP fallback: POST every outbox entry above durableSeq, acked or not (up to 100, in seq order;
   * PROTOCOL.md 12.2). An acked entry is resent until it is durable: if the engine died between the
   * ack and the commit, nothing else would ever bring it back (the HTTP fallback has no welcome).
   */
  private async postBatch(device: Device) {
    const batch: Array<HttpHeartbeat> = []
    for (const heartbeat of device.outbox.values()) {
      batch.push(heartbeat)
      if (batch.length === 100) break
    }
    if (batch.length === 0) return
    device.httpInFlight = true
    const sentAt = performance.now()
    for (const heartbeat of batch) {
      if (heartbeat.seq <= device.highestSent) counters.resent++
      else device.highestSent = heartbeat.seq
      device.sentAt.set(heartbeat.seq, sentAt)
      trace(device, "http-send", heartbeat.seq)
      counters.sent++
    }
    try {
      const result = await requestJson("POST", new URL("/v1/device/heartbeats", this.config.target).toString(), { heartbeats: batch }, device.ticket)
      const now = performance.now()
      if (result.status === 200) {
        const decoded = Schema.decodeUnknownEither(HeartbeatBatchResponse)(result.body)
        if (Either.isLeft(decoded)) {
          violation(`HeartbeatBatchResponse does not match the schema: ${JSON.stringify(result.body).slice(0, 200)}`)
          return
        }
        const response = decoded.right
        trace(device, `http-200(d=${response.durableSeq})`, response.acked.join(","))
        for (const seq of response.acked) {
          counters.acks++
          const at = device.sentAt.get(seq)
          if (at !== undefined) {
            if (now >= recordFrom) httpLatency.record(now - at)
            if (markActive) markLatency.record(now - at)
            device.sentAt.delete(seq)
          } else violation(`HTTP ack for seq ${seq} not in the request`)
          if (device.acked.add(seq) && seq === device.acked.max() && device.durableSeq < seq) device.durableReachedAt = null
        }
        if (response.ticket !== undefined) device.ticket = response.ticket
        this.advanceDurable(device, response.durableSeq, now)
        if (response.acked.length < batch.length) this.backlogged.add(device)
        else if (this.config.closedLoop === true && this.phase === "running" && device.acked.has(device.nextSeq - 1)) {
          // The next POST starts once this one has returned (finally below), hence the microtask.
          queueMicrotask(() => this.produce(device, performance.now()))
        }
        return
      }
      if (result.code !== null) countError(result.code)
      trace(device, `http-${result.status}:${result.code ?? ""}`, "")
      if (result.status === 503 && result.code === "BACKPRESSURE") counters.backpressure++
      if (result.status === 401) await this.renewTicket(device)
      else if (result.status === 403) device.retired = true
      else device.pausedUntil = now + (result.retryAfterMs ?? 1000)
      this.backlogged.add(device)
    } catch (error) {
      countError("HTTP_FAILED")
      device.pausedUntil = performance.now() + 1000
      this.backlogged.add(device)
    } finally {
      device.httpInFlight = false
    }
  }

  /** GET /v1/device/messages?waitS=0: the HTTP way to learn durableSeq. */
  private async pollDurable(device: Device, adopt = false): Promise<boolean> {
    try {
      const result = await requestJson("GET", new URL("/v1/device/messages?waitS=0", this.config.target).toString(), undefined, device.ticket)
      if (result.status !== 200) {
        if (result.code !== null) countError(result.code)
        this.fail(device, `GET /v1/device/messages -> ${result.status} ${result.code ?? ""}`)
        if (result.status === 401) await this.renewTicket(device)
        return false
      }
      const decoded = Schema.decodeUnknownEither(PendingMessagesResponse)(result.body)
      if (Either.isLeft(decoded)) {
        violation(`PendingMessagesResponse does not match the schema: ${JSON.stringify(result.body).slice(0, 200)}`)
        return false
      }
      // At setup the device adopts the engine's watermark (it may have been enrolled by an earlier run).
      if (adopt) device.nextSeq = Math.max(device.nextSeq, decoded.right.durableSeq + 1)
      this.advanceDurable(device, decoded.right.durableSeq, performance.now())
      return true
    } catch (error) {
      this.fail(device, `GET /v1/device/messages failed: ${String(error)}`)
      return false
    }
  }

  // ---- schedule ---------------------------------------------------------------------------

  private cursor = 0
  private round = 0

  /** Open-loop scheduler: device k fires at start + round * period + phase(k). */
  private tick = () => {
    if (this.phase !== "running" || this.devices.length === 0) return
    const now = performance.now()
    for (;;) {
      const device = this.devices[this.cursor]!
      const due = this.startPerf + this.round * this.periodMs + device.phaseMs
      if (due > now) {
        setTimeout(this.tick, Math.max(0, due - performance.now()))
        return
      }
      const lag = now - due
      if (lag > schedLagMaxMs) schedLagMaxMs = lag
      this.produce(device, now)
      if (++this.cursor === this.devices.length) {
        this.cursor = 0
        this.round++
        // Closed loop: the schedule only starts each device once; acks drive the rest.
        if (this.config.closedLoop === true) return
      }
    }
  }

  start(atPerf: number) {
    this.phase = "running"
    this.startPerf = atPerf
    setTimeout(this.tick, Math.max(0, atPerf - performance.now()))
  }

  // ---- end of run -------------------------------------------------------------------------

  onlineCount(): number {
    let n = 0
    for (const device of this.devices) if (device.http ? !device.retired : device.online) n++
    return n
  }

  unackedCount(): number {
    let n = 0
    for (const device of this.devices) {
      if (device.retired) continue
      for (const seq of device.outbox.keys()) if (!device.acked.has(seq)) n++
    }
    return n
  }

  ackedDistinct(): number {
    let n = 0
    for (const device of this.devices) n += device.acked.size
    return n
  }

  notDurableCount(): number {
    let n = 0
    for (const device of this.devices) if (!device.retired && device.durableSeq < device.highestAcked()) n++
    return n
  }

  /** Waits until every device saw its acked heartbeats become durable; HTTP devices poll for it. */
  async awaitDurable(timeoutMs: number): Promise<{ wsLagMs: number | null; httpLagMs: number | null; notDurable: number }> {
    const deadline = performance.now() + timeoutMs
    let lastPoll = 0
    while (this.notDurableCount() > 0 && performance.now() < deadline) {
      if (performance.now() - lastPoll >= 200) {
        lastPoll = performance.now()
        const pending = this.devices.filter((d) => d.http && !d.retired && d.durableSeq < d.highestAcked())
        await forEachLimit(pending, 32, async (device) => {
          await this.pollDurable(device)
        })
      }
      await sleep(10)
    }
    let wsLag: number | null = null
    let httpLag: number | null = null
    for (const device of this.devices) {
      if (device.retired || device.durableReachedAt === null) continue
      const lag = Math.max(0, device.durableReachedAt - this.stopPerf)
      if (device.http) httpLag = Math.max(httpLag ?? 0, lag)
      else wsLag = Math.max(wsLag ?? 0, lag)
    }
    return { wsLagMs: wsLag, httpLagMs: httpLag, notDurable: this.notDurableCount() }
  }

  reports(): Array<DeviceReport> {
    return this.devices.map((device) => ({
      deviceId: device.deviceId,
      http: device.http,
      firstSeq: device.firstSeq,
      lastSeq: device.nextSeq - 1,
      acked: device.acked.toRanges(),
      durableSeq: device.durableSeq
    }))
  }

  async closeAll(): Promise<void> {
    this.phase = "closing"
    const closed: Array<Promise<void>> = []
    for (const device of this.devices) {
      if (device.reconnectTimer !== null) clearTimeout(device.reconnectTimer)
      const ws = device.ws
      if (ws === null) continue
      closed.push(new Promise((resolve) => {
        ws.once("close", () => resolve())
        ws.close(1000, "bench done")
      }))
    }
    await Promise.race([Promise.all(closed), sleep(5000)])
  }
}

// ---------------------------------------------------------------------------------------------
// Worker entry point
// ---------------------------------------------------------------------------------------------

if (process.send === undefined) {
  console.error("bench/src/Simulator.ts is a worker: it is forked by bench/src/main.ts")
  process.exit(2)
}

let simulation: Simulation | null = null
let cpuAtStart: NodeJS.CpuUsage = process.cpuUsage()
let backlogTimer: NodeJS.Timeout | null = null
let tickTimer: NodeJS.Timeout | null = null

const reportTick = () => {
  post({
    type: "tick",
    counters: snapshotCounters(),
    ws: wsLatency.takeSnapshot(),
    http: httpLatency.takeSnapshot(),
    schedLagMaxMs,
    online: simulation === null ? 0 : simulation.onlineCount(),
    lastWelcomeEpochMs
  })
  schedLagMaxMs = 0
}

const onMessage = async (message: ParentMessage) => {
  switch (message.type) {
    case "init":
      simulation = new Simulation(message.config)
      await simulation.setup()
      return
    case "start": {
      if (simulation === null) return
      const sim = simulation
      cpuAtStart = process.cpuUsage()
      const startPerf = message.atEpochMs - performance.timeOrigin
      recordFrom = startPerf + message.warmupMs
      sim.start(startPerf)
      backlogTimer = setInterval(() => sim.serviceBacklog(), 100)
      tickTimer = setInterval(reportTick, 1000)
      return
    }
    case "stop": {
      if (simulation === null) return
      const sim = simulation
      sim.phase = "draining"
      sim.stopPerf = performance.now()
      const cpu = process.cpuUsage(cpuAtStart)
      const steadyWallMs = sim.stopPerf - sim.startPerf
      // Drain: let in-flight heartbeats be acked and backpressured ones be resent.
      const deadline = performance.now() + message.drainTimeoutMs
      while (sim.unackedCount() > 0 && performance.now() < deadline) await sleep(20)
      reportTick()
      post({
        type: "drained",
        counters: snapshotCounters(),
        unacked: sim.unackedCount(),
        ackedDistinct: sim.ackedDistinct(),
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system,
        steadyWallMs
      })
      const durable = await sim.awaitDurable(message.durableTimeoutMs)
      post({ type: "durable", ...durable })
      return
    }
    case "final":
      if (simulation === null) return
      if (backlogTimer !== null) clearInterval(backlogTimer)
      if (tickTimer !== null) clearInterval(tickTimer)
      post({ type: "final", devices: simulation.reports(), counters: snapshotCounters() })
      if (tracePrefix !== undefined) {
        const lines = [...traces].map(([deviceId, events]) => JSON.stringify({ deviceId, events }))
        writeFileSync(`${tracePrefix}-${simulation.config.workerIndex}.jsonl`, lines.join("\n") + "\n")
      }
      return
    case "mark":
      if (message.on) {
        markLatency.reset()
        markActive = true
      } else markActive = false
      return
    case "commands": {
      // Receipts since the previous report (the parent accumulates them).
      const receipts = commandReceipts.splice(0, commandReceipts.length)
      post({
        type: "commands",
        receipts,
        signatureFailures,
        rejections: commandRejections,
        duplicates: commandDuplicates,
        mark: markLatency.takeSnapshot()
      })
      return
    }
    case "close":
      if (simulation !== null) await simulation.closeAll()
      process.disconnect?.()
      setTimeout(() => process.exit(0), 100).unref()
      return
  }
}

process.on("message", (message) => {
  onMessage(message as ParentMessage).catch((error: unknown) => {
    log(`worker failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    process.exit(1)
  })
})
// The parent went away (crashed or Ctrl-C): do not linger with thousands of sockets open.
process.on("disconnect", () => setTimeout(() => process.exit(0), 200).unref())
