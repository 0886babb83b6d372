/**
 * The abuse scenario's attacker (a sidecar process): at `rate` attempts per second, round robin
 * over hostile things a device plane and an admin plane meet on the internet, each on a fresh
 * connection, while the normal fleet keeps heartbeating:
 *
 * - socket-no-auth: WebSocket without a ticket, then malformed JSON and a non-hello frame;
 * - socket-bad-ticket: WebSocket with a forged ticket in the Authorization header;
 * - socket-bad-hello: WebSocket without a ticket, then `hello` with a forged ticket;
 * - socket-oversized: WebSocket without a ticket, then a 64 KiB frame (4x MAX_FRAME_BYTES);
 * - device-malformed: an enrolled attacker device (valid ticket) sending malformed JSON, an unknown
 *   frame type, a heartbeat with out-of-range fields and an oversized frame;
 * - enroll-bad-token: POST /v1/enroll with a wrong token (a device-plane login attempt);
 * - login-bad-password: POST /api/v1/auth/login with a wrong password (admin plane);
 * - http-garbage: POST /v1/device/heartbeats with no ticket and a body that is not JSON.
 *
 * Each attempt ends as refused (an error status, an error frame or a close), accepted (a success
 * answer to something that must fail: a hole), silent (no answer within 3 s) or failed (the
 * connection could not be made: the engine is down or refusing connections).
 */
import http from "node:http"
import WebSocket from "ws"
import { runSidecar } from "./Sidecar.js"

export interface AttackerConfig {
  readonly deviceUrl: string
  readonly adminUrl: string | null
  readonly token: string
  readonly rate: number
  /** Owner e-mail for the bad logins (the password is always wrong). */
  readonly ownerEmail: string
  /** Which attacks to make (default: all of ATTACK_KINDS). */
  readonly kinds: ReadonlyArray<string> | null
}

export type Outcome = "refused" | "accepted" | "silent" | "failed"

export interface AttackerResult {
  readonly attempts: number
  readonly byKind: Readonly<Record<string, Readonly<Record<Outcome, number>>>>
  readonly samples: ReadonlyArray<string>
}

export const ATTACK_KINDS = [
  "socket-no-auth",
  "socket-bad-ticket",
  "socket-bad-hello",
  "socket-oversized",
  "device-malformed",
  "enroll-bad-token",
  "login-bad-password",
  "http-garbage"
] as const
type Kind = (typeof ATTACK_KINDS)[number]

const ANSWER_TIMEOUT_MS = 3000
const MAX_IN_FLIGHT = 256

const wsUrl = (base: string) => {
  const url = new URL("/v1/device/ws", base)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  return url.toString()
}

/** Opens a socket, sends `frames` once open, and settles on the first answer, close or timeout. */
const socketAttempt = (url: string, headers: Record<string, string>, frames: ReadonlyArray<string>): Promise<Outcome> =>
  new Promise((resolve) => {
    let settled = false
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: ANSWER_TIMEOUT_MS })
    const settle = (outcome: Outcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.terminate()
      resolve(outcome)
    }
    const timer = setTimeout(() => settle("silent"), ANSWER_TIMEOUT_MS)
    ws.on("open", () => {
      for (const frame of frames) if (ws.readyState === ws.OPEN) ws.send(frame)
    })
    ws.on("message", (data: Buffer) => {
      const text = data.toString("utf8")
      // A welcome to a forged ticket would be a hole; an error frame is the expected answer.
      if (text.includes('"welcome"')) settle("accepted")
      else if (text.includes('"error"')) settle("refused")
    })
    ws.on("unexpected-response", (_req, res) => {
      res.resume()
      settle((res.statusCode ?? 0) >= 400 ? "refused" : "accepted")
    })
    ws.on("close", () => settle("refused"))
    ws.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED" || error.code === "ECONNRESET") settle("failed")
    })
  })

const httpAttempt = (url: string, body: string, contentType = "application/json"): Promise<Outcome> =>
  new Promise((resolve) => {
    const request = http.request(
      url,
      { method: "POST", headers: { "content-type": contentType, "content-length": Buffer.byteLength(body) }, timeout: ANSWER_TIMEOUT_MS },
      (res) => {
        res.resume()
        res.on("end", () => resolve((res.statusCode ?? 0) >= 400 ? "refused" : "accepted"))
      }
    )
    request.on("timeout", () => {
      request.destroy()
      resolve("silent")
    })
    request.on("error", () => resolve("failed"))
    request.end(body)
  })

interface AttackerDevice {
  readonly ticket: string
}

const enrollAttacker = async (config: AttackerConfig, index: number, log: (text: string) => void): Promise<AttackerDevice | null> => {
  const response = await fetch(new URL("/v1/enroll", config.deviceUrl), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: config.token, hardwareId: `attacker-${index}`, model: "Evil", manufacturer: "Evil", osVersion: "14", agentVersion: "evil-1" })
  }).catch((error: unknown) => {
    log(`attacker device ${index}: enrollment failed: ${String(error)}`)
    return null
  })
  if (response === null) return null
  const body = (await response.json().catch(() => null)) as { ticket?: unknown } | null
  if (response.status !== 201 || typeof body?.ticket !== "string") {
    log(`attacker device ${index}: enrollment answered ${response.status}: ${JSON.stringify(body).slice(0, 200)}`)
    return null
  }
  return { ticket: body.ticket }
}

const start = (config: AttackerConfig, log: (text: string) => void) => {
  const kinds: ReadonlyArray<Kind> = config.kinds === null ? ATTACK_KINDS : ATTACK_KINDS.filter((k) => config.kinds!.includes(k))
  const byKind = Object.fromEntries(kinds.map((k) => [k, { refused: 0, accepted: 0, silent: 0, failed: 0 }])) as Record<Kind, Record<Outcome, number>>
  const samples: Array<string> = []
  let attempts = 0
  let deviceTurn = 0
  let inFlight = 0
  let stopped = false
  const devices: Array<AttackerDevice> = []
  void Promise.all([0, 1, 2, 3].map((i) => enrollAttacker(config, i, log))).then((enrolled) => {
    for (const d of enrolled) if (d !== null) devices.push(d)
    if (devices.length === 0) log("attacker: could not enroll its devices; device-malformed attempts count as failed")
  })
  const url = wsUrl(config.deviceUrl)
  const oversized = JSON.stringify({ type: "heartbeat", seq: 1, pad: "x".repeat(64 * 1024) })

  const attempt = (kind: Kind): Promise<Outcome> => {
    switch (kind) {
      case "socket-no-auth":
        return socketAttempt(url, {}, ["{not json", JSON.stringify({ type: "heartbeat", seq: 1 })])
      case "socket-bad-ticket":
        return socketAttempt(url, { authorization: `Bearer forged.${Math.random().toString(36).slice(2)}.ticket` }, [])
      case "socket-bad-hello":
        return socketAttempt(url, {}, [JSON.stringify({ type: "hello", v: 1, ticket: `forged.${Math.random().toString(36).slice(2)}` })])
      case "socket-oversized":
        return socketAttempt(url, {}, [oversized])
      case "device-malformed": {
        const device = devices[deviceTurn++ % Math.max(1, devices.length)]
        if (device === undefined) return Promise.resolve("failed")
        return socketAttempt(url, { authorization: `Bearer ${device.ticket}` }, [
          "{\"type\":\"heartbeat\",",
          JSON.stringify({ type: "warp_drive", engage: true }),
          JSON.stringify({ type: "heartbeat", seq: -5, ts: "yesterday", batteryPct: 900 }),
          oversized
        ]).then((outcome) => (outcome === "accepted" ? "refused" : outcome)) // its welcome is legitimate; what follows must not crash anything
      }
      case "enroll-bad-token":
        return httpAttempt(new URL("/v1/enroll", config.deviceUrl).toString(), JSON.stringify({ token: "not-a-token", hardwareId: `x-${attempts}`, model: "m", manufacturer: "m", osVersion: "1", agentVersion: "1" }))
      case "login-bad-password":
        if (config.adminUrl === null) return Promise.resolve("refused")
        return httpAttempt(new URL("/api/v1/auth/login", config.adminUrl).toString(), JSON.stringify({ email: config.ownerEmail, password: "wrong-password-123" }))
      case "http-garbage":
        return httpAttempt(new URL("/v1/device/heartbeats", config.deviceUrl).toString(), "\u0000\u0001garbage{{{", "application/json")
    }
  }

  const periodMs = 1000 / config.rate
  const startedAt = performance.now()
  let k = 0
  const loop = () => {
    if (stopped) return
    const now = performance.now()
    while (startedAt + k * periodMs <= now) {
      k++
      if (inFlight >= MAX_IN_FLIGHT) continue // the engine is slow to answer: do not pile up sockets
      const kind = kinds[attempts % kinds.length]!
      attempts++
      inFlight++
      void attempt(kind).then((outcome) => {
        inFlight--
        byKind[kind][outcome]++
        if (outcome === "accepted" && samples.length < 10) samples.push(`${kind} was accepted`)
      })
    }
    setTimeout(loop, Math.max(1, startedAt + k * periodMs - performance.now()))
  }
  loop()

  return {
    finish: async (): Promise<AttackerResult> => {
      stopped = true
      const deadline = performance.now() + ANSWER_TIMEOUT_MS + 500
      while (inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      return { attempts, byKind, samples }
    }
  }
}

runSidecar(start)
