/**
 * The slice of the device protocol (PROTOCOL.md) that the two reference servers speak, so that the
 * bench's simulator drives them exactly as it drives the engine: enrollment, WebSocket
 * authentication at upgrade, heartbeat -> ack, the HTTP fallback's batch and poll endpoints.
 *
 * Simplified on purpose: any enrollment token is accepted, the ticket is the device id, nothing is
 * hashed or signed. What remains is the work every design must do per heartbeat: parse the frame,
 * find the device, answer.
 */
import { randomBytes } from "node:crypto"

export const HEARTBEAT_INTERVAL_S = 1

/** Per device: the highest seq accepted and the highest seq known durable. */
export interface DeviceState {
  accepted: number
  durable: number
}

export const enrollResponse = (hardwareId: string, prefix: string): { readonly deviceId: string; readonly body: string } => {
  const deviceId = `${prefix}-${hardwareId}`.slice(0, 64)
  const body = JSON.stringify({
    deviceId,
    deviceSecret: randomBytes(16).toString("base64url"),
    hmacKey: randomBytes(32).toString("base64"),
    ticket: deviceId,
    ticketExpiresAt: Date.now() + 86_400_000,
    heartbeatIntervalS: HEARTBEAT_INTERVAL_S,
    reenrolled: false
  })
  return { deviceId, body }
}

export const welcomeFrame = (deviceId: string, durableSeq: number): string =>
  JSON.stringify({
    type: "welcome",
    deviceId,
    serverTime: Date.now(),
    heartbeatIntervalS: HEARTBEAT_INTERVAL_S,
    durableSeq,
    ticketExpiresAt: Date.now() + 86_400_000
  })

export const ackFrame = (seq: number, durableSeq: number): string => `{"type":"ack","seq":${seq},"durableSeq":${durableSeq}}`

export const errorFrame = (code: string, message: string): string => JSON.stringify({ type: "error", code, message })

export const backpressureFrame = (seq: number, message: string): string =>
  JSON.stringify({ type: "error", code: "BACKPRESSURE", message, seq, retryAfterMs: 1000 })

export const httpError = (code: string, message: string): string => JSON.stringify({ error: { code, message } })

/** The ticket from `Authorization: Bearer <ticket>` (the baselines' ticket is the device id). */
export const bearer = (header: string | undefined): string | null => {
  if (header === undefined || !header.startsWith("Bearer ")) return null
  const ticket = header.slice(7).trim()
  return ticket.length > 0 && ticket.length <= 64 ? ticket : null
}

/** A heartbeat frame's seq, or null when the frame is not a well-formed heartbeat. */
export const heartbeatSeq = (frame: unknown): number | null => {
  if (typeof frame !== "object" || frame === null) return null
  const record = frame as Record<string, unknown>
  if (record["type"] !== "heartbeat") return null
  const seq = record["seq"]
  return typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0 ? seq : null
}

/** Reads `--port N` and `--database-url U` style arguments. */
export const argument = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? process.argv[at + 1] : undefined
}

/** Tells the parent (bench/src/BaselineProcess.ts) where it listens: one line on stdout. */
export const announce = (port: number): void => {
  process.stdout.write(`listening ${port}\n`)
}
