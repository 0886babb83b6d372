/**
 * Session tickets: what a device presents on every connect and HTTP request.
 *
 *   t1.<deviceId>.<credentialGeneration>.<expiresAtEpochSeconds>.<base64url HMAC-SHA256>
 *
 * The MAC is over everything before the last dot, keyed by the engine's ticket key (persistent, so
 * tickets survive restarts). Verifying costs one HMAC (microseconds), which is why reconnects are
 * cheap; the generation lets re-enrolment and retirement invalidate every older ticket.
 * Tickets are opaque to devices.
 */
import { Context, Data, Duration, Effect, Either, Layer } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"
import { EngineConfig } from "./EngineConfig.js"
import { loadOrCreateKey } from "./internal/EngineKeys.js"

export interface TicketClaims {
  readonly deviceId: string
  readonly generation: number
  readonly expiresAt: number
}

export class TicketRejected extends Data.TaggedError("TicketRejected")<{
  readonly code: "TICKET_INVALID" | "TICKET_EXPIRED"
  readonly message: string
}> {}

export interface IssuedTicket {
  readonly ticket: string
  readonly expiresAt: number
}

export class Tickets extends Context.Tag("@nexmdm/engine/Tickets")<
  Tickets,
  {
    readonly issue: (deviceId: string, generation: number) => IssuedTicket
    /** Checks format, MAC and expiry; the caller checks the generation against the device. */
    readonly verify: (ticket: string, nowMs: number) => Either.Either<TicketClaims, TicketRejected>
    readonly ttlMs: number
  }
>() {}

const PREFIX = "t1"
const ticketShape = /^t1\.(dev_[0-9a-z]{20,32})\.(\d{1,9})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/

export const makeTickets = (key: Buffer, ttlMs: number): Tickets["Type"] => {
  const mac = (payload: string) => createHmac("sha256", key).update(payload).digest()
  return {
    ttlMs,
    issue: (deviceId, generation) => {
      const expiresAtS = Math.floor((Date.now() + ttlMs) / 1000)
      const payload = `${PREFIX}.${deviceId}.${generation}.${expiresAtS}`
      return { ticket: `${payload}.${mac(payload).toString("base64url")}`, expiresAt: expiresAtS * 1000 }
    },
    verify: (ticket, nowMs) => {
      const match = ticketShape.exec(ticket)
      if (match === null) return Either.left(new TicketRejected({ code: "TICKET_INVALID", message: "malformed ticket" }))
      const [, deviceId, generation, expiresAtS, signature] = match
      const expected = mac(ticket.slice(0, ticket.lastIndexOf(".")))
      const given = Buffer.from(signature!, "base64url")
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return Either.left(new TicketRejected({ code: "TICKET_INVALID", message: "ticket signature does not match" }))
      }
      const expiresAt = Number(expiresAtS) * 1000
      if (expiresAt <= nowMs) return Either.left(new TicketRejected({ code: "TICKET_EXPIRED", message: "ticket expired" }))
      return Either.right({ deviceId: deviceId!, generation: Number(generation), expiresAt })
    }
  }
}

export const layer = Layer.effect(
  Tickets,
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const key = yield* loadOrCreateKey("ticket", config.ticketKey, "NEXMDM_TICKET_KEY")
    return makeTickets(key, Duration.toMillis(config.ticketTtl))
  })
)
