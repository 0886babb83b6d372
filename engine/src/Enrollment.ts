/**
 * Enrollment tokens and device credentials.
 *
 * A token is "<id>.<secret>": the id finds the row, the secret is checked against its argon2id hash.
 * Redeeming a token is one conditional UPDATE (uses < max_uses, not expired, not revoked), so N
 * devices racing a single-use token produce exactly one winner. Enrolling creates the device (or,
 * for a hardware id already known, keeps its id and history and replaces its credentials: the
 * credential generation goes up, so every older ticket stops working) and returns the device
 * secret and HMAC key once, with a first session ticket.
 *
 * argon2 goes through `SlowHashBudget` (device lane): checking a token's or a device's secret is
 * admitted per enrollment token id / device id (and per client IP when the caller passes it)
 * before the row is even read, so unknown and known ids are limited alike; hashing a new device
 * secret or token is trusted work (it follows a success or an admin's request).
 */
import { SqlClient, SqlError } from "@effect/sql"
import type { EnrollRequest, TicketRequest } from "@nexmdm/protocol"
import { Context, Data, Duration, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { EngineConfig } from "./EngineConfig.js"
import { hashSecret, HashingError, randomId, randomSecret, verifySecret } from "./Secrets.js"
import { ipSource, SlowHashBudget, type SlowHashRefused, type Source } from "./SlowHashBudget.js"
import { type IssuedTicket, Tickets } from "./Tickets.js"

export class EnrollmentRejected extends Data.TaggedError("EnrollmentRejected")<{
  readonly code: "TOKEN_INVALID" | "TOKEN_EXPIRED" | "TOKEN_EXHAUSTED" | "CREDENTIALS_INVALID" | "DEVICE_RETIRED"
  readonly message: string
}> {}

export interface TokenInfo {
  readonly id: string
  readonly label: string | null
  readonly maxUses: number
  readonly uses: number
  readonly expiresAt: Date
  readonly revokedAt: Date | null
  readonly createdAt: Date
  /** Applied to every device that enrols with the token. */
  readonly tags: ReadonlyArray<string>
}

export interface CreatedToken {
  readonly id: string
  /** The full token, shown once. */
  readonly token: string
  readonly expiresAt: Date
  readonly maxUses: number
  readonly label: string | null
}

export interface Enrolled {
  readonly deviceId: string
  readonly deviceSecret: string
  readonly hmacKey: string
  readonly generation: number
  readonly ticket: IssuedTicket
  readonly reenrolled: boolean
}

export interface RenewedTicket {
  readonly deviceId: string
  readonly generation: number
  readonly ticket: IssuedTicket
}

/** Where a device-plane request came from (its IP as the device plane determines it), when known. */
export interface DeviceClient {
  readonly ip: string | null
}

/** `SlowHashRefused`: too many failed checks for this token, device or address, or the device lane's argon2 budget is spent (429). */
type Failure = EnrollmentRejected | SlowHashRefused | SqlError.SqlError | HashingError

export class Enrollment extends Context.Tag("@nexmdm/engine/Enrollment")<
  Enrollment,
  {
    readonly createToken: (options: {
      readonly expiresIn: Duration.Duration
      readonly maxUses: number
      readonly label?: string | undefined
      readonly createdBy?: string | undefined
      readonly tags?: ReadonlyArray<string> | undefined
    }) => Effect.Effect<CreatedToken, SqlError.SqlError | HashingError>
    readonly listTokens: Effect.Effect<ReadonlyArray<TokenInfo>, SqlError.SqlError>
    /** False when no such token exists or it was already revoked. */
    readonly revokeToken: (id: string) => Effect.Effect<boolean, SqlError.SqlError>
    readonly enroll: (request: EnrollRequest, client?: DeviceClient) => Effect.Effect<Enrolled, Failure>
    readonly renewTicket: (request: TicketRequest, client?: DeviceClient) => Effect.Effect<RenewedTicket, Failure>
  }
>() {}

const tokenShape = /^(et_[0-9a-z]{16})\.([A-Za-z0-9_-]{43})$/

const reject = (code: EnrollmentRejected["code"], message: string) => new EnrollmentRejected({ code, message })

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient
  const tickets = yield* Tickets
  const budget = yield* SlowHashBudget
  // argon2 is CPU-bound on libuv's pool: the budget runs one at a time and rations failed checks.
  const hash = (secret: string) => budget.trusted("device", hashSecret(secret, config.argon2Device))
  const sourcesOf = (target: Source, client: DeviceClient | undefined): ReadonlyArray<Source> => [target, ...ipSource(client?.ip)]

  const createToken = Effect.fn("Enrollment.createToken")(function* (options: {
    readonly expiresIn: Duration.Duration
    readonly maxUses: number
    readonly label?: string | undefined
    readonly createdBy?: string | undefined
    readonly tags?: ReadonlyArray<string> | undefined
  }) {
    const id = `et_${randomId(16)}`
    const secret = randomSecret()
    const secretHash = yield* hash(secret)
    const expiresAt = new Date(Date.now() + Duration.toMillis(options.expiresIn))
    const tags = [...new Set(options.tags ?? [])]
    yield* sql.unsafe(
      `insert into enrollment_tokens (id, secret_hash, label, max_uses, expires_at, created_by, tags)
       values ($1, $2, $3, $4, $5, $6, $7::text[])`,
      [id, secretHash, options.label ?? null, options.maxUses, expiresAt, options.createdBy ?? null, tags]
    )
    return { id, token: `${id}.${secret}`, expiresAt, maxUses: options.maxUses, label: options.label ?? null }
  })

  const listTokens = sql<{
    id: string
    label: string | null
    max_uses: number
    uses: number
    expires_at: Date
    revoked_at: Date | null
    created_at: Date
    tags: ReadonlyArray<string>
  }>`select id, label, max_uses, uses, expires_at, revoked_at, created_at, tags from enrollment_tokens order by created_at desc`.pipe(
    Effect.map((rows) =>
      rows.map((row): TokenInfo => ({
        id: row.id,
        label: row.label,
        maxUses: row.max_uses,
        uses: row.uses,
        expiresAt: row.expires_at,
        revokedAt: row.revoked_at,
        createdAt: row.created_at,
        tags: row.tags
      }))
    )
  )

  const revokeToken = (id: string) =>
    sql`update enrollment_tokens set revoked_at = now() where id = ${id} and revoked_at is null returning id`.pipe(
      Effect.map((rows) => rows.length === 1)
    )

  /** Why a token cannot be redeemed, for a precise error. */
  const tokenProblem = (row: { expires_at: Date; revoked_at: Date | null; uses: number; max_uses: number }) =>
    row.revoked_at !== null
      ? reject("TOKEN_EXHAUSTED", "enrollment token was revoked")
      : row.expires_at.getTime() <= Date.now()
        ? reject("TOKEN_EXPIRED", "enrollment token expired")
        : row.uses >= row.max_uses
          ? reject("TOKEN_EXHAUSTED", "enrollment token has no uses left")
          : undefined

  const enroll = Effect.fn("Enrollment.enroll")(function* (request: EnrollRequest, client?: DeviceClient) {
    const match = tokenShape.exec(request.token)
    if (match === null) return yield* reject("TOKEN_INVALID", "malformed enrollment token")
    const [, tokenId, tokenSecret] = match as unknown as [string, string, string]
    const admission = yield* budget.admit("device", sourcesOf({ kind: "token", key: tokenId }, client))
    const [token] = yield* sql<{
      secret_hash: string
      expires_at: Date
      revoked_at: Date | null
      uses: number
      max_uses: number
    }>`select secret_hash, expires_at, revoked_at, uses, max_uses from enrollment_tokens where id = ${tokenId}`
    if (token === undefined) {
      yield* admission.reject
      return yield* reject("TOKEN_INVALID", "unknown enrollment token")
    }
    const problem = tokenProblem(token)
    const matches = yield* admission.verify(verifySecret(token.secret_hash, tokenSecret), (ok) =>
      !ok ? "wrong_secret" : problem === undefined ? "accepted" : "refused"
    )
    if (!matches) return yield* reject("TOKEN_INVALID", "unknown enrollment token")
    if (problem !== undefined) return yield* problem

    const deviceSecret = randomSecret()
    const secretHash = yield* hash(deviceSecret)
    const hmacKey = randomBytes(32)
    const newId = `dev_${randomId(24)}`

    const device = yield* sql.withTransaction(
      Effect.gen(function* () {
        const redeemed = yield* sql`update enrollment_tokens set uses = uses + 1
          where id = ${tokenId} and uses < max_uses and revoked_at is null and expires_at > now() returning id`
        if (redeemed.length === 0) {
          // Lost a race or expired meanwhile: report the token's state as it is now.
          const [now] = yield* sql<{ expires_at: Date; revoked_at: Date | null; uses: number; max_uses: number }>`
            select expires_at, revoked_at, uses, max_uses from enrollment_tokens where id = ${tokenId}`
          return yield* (now === undefined ? undefined : tokenProblem(now)) ??
            reject("TOKEN_EXHAUSTED", "enrollment token has no uses left")
        }
        const [row] = yield* sql<{ id: string; credential_generation: number; reenrolled: boolean }>`
          insert into devices (id, hardware_id, model, manufacturer, os_version, agent_version, enrollment_token_id,
            secret_hash, hmac_key, tags)
          values (${newId}, ${request.hardwareId}, ${request.model ?? null}, ${request.manufacturer ?? null},
            ${request.osVersion ?? null}, ${request.agentVersion ?? null}, ${tokenId}, ${secretHash}, ${hmacKey},
            (select tags from enrollment_tokens where id = ${tokenId}))
          on conflict (hardware_id) do update set
            tags = array(select distinct t from unnest(devices.tags || excluded.tags) as t order by t),
            credential_generation = devices.credential_generation + 1,
            secret_hash = excluded.secret_hash, hmac_key = excluded.hmac_key, retired_at = null,
            model = excluded.model, manufacturer = excluded.manufacturer, os_version = excluded.os_version,
            agent_version = excluded.agent_version, enrollment_token_id = excluded.enrollment_token_id,
            enrolled_at = now()
          returning id, credential_generation, (xmax <> 0) as reenrolled`
        yield* sql`insert into device_events (device_id, at, kind, reason, detail)
          values (${row!.id}, now(), ${row!.reenrolled ? "reenrolled" : "enrolled"},
            ${row!.reenrolled ? "enrolled again: previous credentials revoked" : "enrolled"},
            ${JSON.stringify({ tokenId, model: request.model ?? null, agentVersion: request.agentVersion ?? null, serial: request.serial ?? null })}::jsonb)`
        return row!
      })
    )
    yield* Effect.annotateCurrentSpan({ deviceId: device.id, reenrolled: device.reenrolled })
    return {
      deviceId: device.id,
      deviceSecret,
      hmacKey: hmacKey.toString("base64"),
      generation: device.credential_generation,
      ticket: tickets.issue(device.id, device.credential_generation),
      reenrolled: device.reenrolled
    }
  })

  const renewTicket = Effect.fn("Enrollment.renewTicket")(function* (request: TicketRequest, client?: DeviceClient) {
    const admission = yield* budget.admit("device", sourcesOf({ kind: "device", key: request.deviceId }, client))
    const [device] = yield* sql<{ secret_hash: string; credential_generation: number; retired: boolean }>`
      select secret_hash, credential_generation, retired_at is not null as retired from devices where id = ${request.deviceId}`
    // Unknown device and wrong secret answer alike (and count alike against the limits), so ids cannot be probed.
    const invalid = reject("CREDENTIALS_INVALID", "unknown device or wrong secret")
    if (device === undefined) {
      yield* admission.reject
      return yield* invalid
    }
    const matches = yield* admission.verify(verifySecret(device.secret_hash, request.deviceSecret), (ok) =>
      !ok ? "wrong_secret" : device.retired ? "refused" : "accepted"
    )
    if (!matches) return yield* invalid
    if (device.retired) return yield* reject("DEVICE_RETIRED", "this device was retired: enrol it again")
    return {
      deviceId: request.deviceId,
      generation: device.credential_generation,
      ticket: tickets.issue(request.deviceId, device.credential_generation)
    }
  })

  return Enrollment.of({ createToken, listTokens, revokeToken, enroll, renewTicket })
})

export const layer = Layer.effect(Enrollment, make)
