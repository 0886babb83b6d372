/**
 * What the provisioning endpoints need from the database: a token check that enrollment scripts can
 * afford to call every few seconds, the reports scripts send about devices, and which serials have
 * enrolled with a token.
 *
 * Checking a token costs one argon2 verify; a script polls with the same token for minutes, so a
 * token that verified once is remembered (by its SHA-256, in memory, for a few minutes). Its state
 * (uses, expiry, revocation) is still read from the database on every call.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Data, Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import { type HashingError, verifySecret } from "../Secrets.js"
import { ipSource, SlowHashBudget, type SlowHashRefused } from "../SlowHashBudget.js"
import {
  type DeviceFacts,
  type EnrolledSerial,
  ProvisioningReport,
  type ProvisioningProblem,
  type ReportStage,
  type TokenState,
  type TokenStatus
} from "./ProvisioningModel.js"

export class ProvisioningTokenRejected extends Data.TaggedError("ProvisioningTokenRejected")<{
  readonly code: "TOKEN_INVALID"
  readonly message: string
}> {}

export interface NewReport {
  readonly serial: string
  readonly stage: ReportStage
  readonly ok: boolean
  readonly problems: ReadonlyArray<ProvisioningProblem>
  readonly facts: DeviceFacts
  readonly sourceIp: string | null
}

export class ProvisioningStore extends Context.Tag("@nexmdm/engine/ProvisioningStore")<
  ProvisioningStore,
  {
    /**
     * The token's status when `token` is a genuine enrollment token (in any state), else TOKEN_INVALID.
     * With `client` (the device plane: anyone may call) the secret check goes through the device
     * lane of SlowHashBudget and may be refused; without it (an admin or the CLI, already
     * authenticated) it only waits for its turn.
     */
    readonly authenticate: (
      token: string,
      client?: { readonly ip: string }
    ) => Effect.Effect<TokenStatus, ProvisioningTokenRejected | SqlError.SqlError | HashingError | SlowHashRefused>
    readonly recordReport: (tokenId: string, report: NewReport) => Effect.Effect<void, SqlError.SqlError>
    /** Newest first. */
    readonly listReports: (tokenId: string, limit: number) => Effect.Effect<ReadonlyArray<ProvisioningReport>, SqlError.SqlError>
    /** Which of `serials` enrolled with this token (as the serial the agent reported at enrollment). */
    readonly enrolledSerials: (tokenId: string, serials: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<EnrolledSerial>, SqlError.SqlError>
  }
>() {}

const tokenShape = /^(et_[0-9a-z]{16})\.([A-Za-z0-9_-]{43})$/
const VERIFIED_TTL_MS = 5 * 60 * 1000
const MAX_REMEMBERED = 10_000

export const stateOf = (row: { readonly revokedAt: Date | null; readonly expiresAt: Date; readonly uses: number; readonly maxUses: number }, now: number): TokenState =>
  row.revokedAt !== null ? "revoked" : row.expiresAt.getTime() <= now ? "expired" : row.uses >= row.maxUses ? "used_up" : "active"

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const budget = yield* SlowHashBudget
  /** sha256(token) -> when its verification stops counting. */
  const verified = new Map<string, number>()
  const invalid = () => new ProvisioningTokenRejected({ code: "TOKEN_INVALID", message: "unknown enrollment token" })

  const authenticate = Effect.fn("ProvisioningStore.authenticate")(function* (token: string, client?: { readonly ip: string }) {
    const match = tokenShape.exec(token)
    if (match === null) return yield* invalid()
    const [, tokenId, secret] = match as unknown as [string, string, string]
    const [row] = yield* sql<{
      secret_hash: string
      label: string | null
      max_uses: number
      uses: number
      expires_at: Date
      revoked_at: Date | null
    }>`select secret_hash, label, max_uses, uses, expires_at, revoked_at from enrollment_tokens where id = ${tokenId}`
    // Device-plane callers are admitted by the budget only when argon2 is due: a script polling with
    // a token verified lately is answered from `verified` and never waits behind an attack.
    const sources = client === undefined ? undefined : [{ kind: "token" as const, key: tokenId }, ...ipSource(client.ip)]
    if (row === undefined) {
      if (sources !== undefined) yield* Effect.flatMap(budget.admit("device", sources), (admission) => admission.reject)
      return yield* invalid()
    }
    const key = createHash("sha256").update(token).digest("base64url")
    const now = Date.now()
    if ((verified.get(key) ?? 0) <= now) {
      const check = verifySecret(row.secret_hash, secret)
      const ok =
        sources === undefined
          ? yield* budget.trusted("device", check)
          : yield* Effect.flatMap(budget.admit("device", sources), (admission) =>
              admission.verify(check, (matches) => (matches ? "accepted" : "wrong_secret"))
            )
      if (!ok) return yield* invalid()
      if (verified.size >= MAX_REMEMBERED) {
        for (const [k, until] of verified) if (until <= now) verified.delete(k)
        if (verified.size >= MAX_REMEMBERED) verified.clear()
      }
      verified.set(key, now + VERIFIED_TTL_MS)
    }
    const status = { revokedAt: row.revoked_at, expiresAt: row.expires_at, uses: row.uses, maxUses: row.max_uses }
    return { id: tokenId, label: row.label, state: stateOf(status, now), maxUses: row.max_uses, uses: row.uses, expiresAt: row.expires_at }
  })

  const recordReport = (tokenId: string, report: NewReport) =>
    sql`insert into provisioning_reports (token_id, serial, stage, ok, problems, facts, source_ip)
      values (${tokenId}, ${report.serial}, ${report.stage}, ${report.ok}, ${JSON.stringify(report.problems)}::jsonb,
        ${JSON.stringify(report.facts)}::jsonb, ${report.sourceIp})`.pipe(Effect.asVoid, Effect.withSpan("ProvisioningStore.recordReport"))

  const listReports = (tokenId: string, limit: number) =>
    sql<{
      id: string | number
      serial: string
      at: Date
      stage: ReportStage
      ok: boolean
      problems: ReadonlyArray<ProvisioningProblem>
      facts: DeviceFacts
      source_ip: string | null
    }>`select id, serial, at, stage, ok, problems, facts, source_ip from provisioning_reports
      where token_id = ${tokenId} order by at desc, id desc limit ${limit}`.pipe(
      Effect.map((rows) =>
        rows.map(
          (row) =>
            new ProvisioningReport({
              id: Number(row.id),
              serial: row.serial,
              at: row.at,
              stage: row.stage,
              ok: row.ok,
              problems: row.problems,
              facts: row.facts,
              sourceIp: row.source_ip
            })
        )
      )
    )

  const enrolledSerials = (tokenId: string, serials: ReadonlyArray<string>) =>
    serials.length === 0
      ? Effect.succeed([])
      : sql<{ serial: string; device_id: string; enrolled_at: Date }>`
          select e.serial, d.id as device_id, d.enrolled_at
          from devices d
          join lateral (
            select detail ->> 'serial' as serial from device_events
            where device_id = d.id and kind in ('enrolled', 'reenrolled')
            order by at desc, id desc limit 1
          ) e on true
          where d.enrollment_token_id = ${tokenId} and d.retired_at is null and e.serial in ${sql.in(serials)}`.pipe(
          Effect.map((rows) => rows.map((row): EnrolledSerial => ({ serial: row.serial, deviceId: row.device_id, enrolledAt: row.enrolled_at })))
        )

  return ProvisioningStore.of({ authenticate, recordReport, listReports, enrolledSerials })
})

export const layer = Layer.effect(ProvisioningStore, make)
