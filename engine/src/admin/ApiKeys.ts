/**
 * API keys for automation: `nxk_<prefix>_<secret>`, sent as the `X-Admin-Key` header.
 *
 * The prefix (10 characters of [0-9a-z]) finds the row and is shown in lists so people can tell
 * keys apart; the secret is 256 random bits. Only SHA-256 of the secret is stored: argon2 would
 * add ~140 ms to every request made with a key, and a slow hash protects only secrets that can be
 * guessed, which 256 random bits cannot. Verification compares digests in constant time, and an
 * unknown prefix still costs a comparison. The key is shown once, at creation.
 *
 * `last_used_at` / `last_used_ip` are written at most once a minute per key, in the background,
 * never on the request's path.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Effect, FiberSet, Layer, Schema } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { randomId, randomSecret } from "../Secrets.js"
import { Conflict, NotFound, Unauthorized } from "./AdminErrors.js"
import { ApiKeyInfo, CreatedApiKey } from "./AdminModel.js"
import { Audit, type AuditContext } from "./Audit.js"
import { type ApiKeyId, type ApiKeyPrincipal, Scope } from "./Principal.js"

/** How often a key's last use is written at most. */
export const LAST_USE_WRITE_INTERVAL_MS = 60_000

export class ApiKeys extends Context.Tag("@nexmdm/engine/admin/ApiKeys")<
  ApiKeys,
  {
    readonly create: (
      key: { readonly name: string; readonly scopes: ReadonlyArray<Scope> },
      context: AuditContext
    ) => Effect.Effect<CreatedApiKey, SqlError.SqlError>
    readonly list: Effect.Effect<ReadonlyArray<ApiKeyInfo>, SqlError.SqlError>
    readonly revoke: (id: ApiKeyId, context: AuditContext) => Effect.Effect<ApiKeyInfo, NotFound | Conflict | SqlError.SqlError>
    /** The principal for a presented key, or API_KEY_INVALID / API_KEY_REVOKED. */
    readonly verify: (key: string, ip: string | null) => Effect.Effect<ApiKeyPrincipal, Unauthorized | SqlError.SqlError>
  }
>() {}

const keyShape = /^nxk_([0-9a-z]{10})_([A-Za-z0-9_-]{43})$/

const digest = (secret: string) => createHash("sha256").update(secret).digest()

interface Row {
  id: string
  name: string
  prefix: string
  key_hash: Uint8Array
  scopes: ReadonlyArray<string>
  created_by: string | null
  created_at: Date
  revoked_at: Date | null
  last_used_at: Date | null
  last_used_ip: string | null
}

const isScope = Schema.is(Scope)

const toInfo = (row: Row) =>
  new ApiKeyInfo({
    id: row.id as ApiKeyId,
    name: row.name,
    prefix: row.prefix,
    // A scope this engine does not know (written by a newer one) grants nothing here.
    scopes: row.scopes.filter(isScope),
    createdBy: row.created_by,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    lastUsedIp: row.last_used_ip
  })

const columns = "id, name, prefix, key_hash, scopes, created_by, created_at, revoked_at, last_used_at, last_used_ip"

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const audit = yield* Audit
  const background = yield* FiberSet.make()
  const lastWritten = new Map<string, number>()
  const dummyDigest = digest(randomSecret())

  const create = Effect.fn("ApiKeys.create")(function* (
    key: { readonly name: string; readonly scopes: ReadonlyArray<Scope> },
    context: AuditContext
  ) {
    const id = `ak_${randomId(20)}`
    const prefix = randomId(10)
    const secret = randomSecret()
    const scopes = [...new Set(key.scopes)]
    const createdBy = context.actor.kind === "user" ? context.actor.id : null
    const row = yield* audit.inTransaction(
      context,
      { action: "api_key.create", target: { kind: "api_key", id }, detail: { name: key.name, prefix, scopes } },
      Effect.map(
        sql<Row>`insert into api_keys (id, name, prefix, key_hash, scopes, created_by)
          values (${id}, ${key.name}, ${prefix}, ${digest(secret)}, ${scopes}, ${createdBy}) returning ${sql.literal(columns)}`,
        (rows) => rows[0]!
      )
    )
    return new CreatedApiKey({ ...toInfo(row), key: `nxk_${prefix}_${secret}` })
  })

  const list = Effect.map(sql<Row>`select ${sql.literal(columns)} from api_keys order by created_at desc, id`, (rows) => rows.map(toInfo))

  const revoke = Effect.fn("ApiKeys.revoke")(function* (id: ApiKeyId, context: AuditContext) {
    const row = yield* audit.inTransaction(
      context,
      { action: "api_key.revoke", target: { kind: "api_key", id } },
      Effect.gen(function* () {
        const [row] = yield* sql<Row>`update api_keys set revoked_at = now() where id = ${id} and revoked_at is null returning ${sql.literal(columns)}`
        if (row !== undefined) return row
        const [existing] = yield* sql`select id from api_keys where id = ${id}`
        return yield* existing === undefined
          ? new NotFound({ message: `no API key ${id}` })
          : new Conflict({ code: "ALREADY_REVOKED", message: `API key ${id} is already revoked` })
      })
    )
    return toInfo(row)
  })

  const recordUse = (row: Row, ip: string | null) => {
    const now = Date.now()
    if (now - (lastWritten.get(row.id) ?? 0) < LAST_USE_WRITE_INTERVAL_MS) return Effect.void
    lastWritten.set(row.id, now)
    return FiberSet.run(
      background,
      sql`update api_keys set last_used_at = now(), last_used_ip = ${ip} where id = ${row.id}`.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("could not record an API key's last use", cause).pipe(Effect.annotateLogs({ module: "ApiKeys" })))
      )
    ).pipe(Effect.asVoid)
  }

  const verify = Effect.fn("ApiKeys.verify")(function* (key: string, ip: string | null) {
    const invalid = new Unauthorized({ code: "API_KEY_INVALID", message: "unknown API key" })
    const match = keyShape.exec(key)
    if (match === null) return yield* invalid
    const [, prefix, secret] = match as unknown as [string, string, string]
    const [row] = yield* sql<Row>`select ${sql.literal(columns)} from api_keys where prefix = ${prefix}`
    const expected = row === undefined ? dummyDigest : Buffer.from(row.key_hash)
    const given = digest(secret)
    const matches = expected.length === given.length && timingSafeEqual(expected, given)
    if (row === undefined || !matches) return yield* invalid
    if (row.revoked_at !== null) return yield* new Unauthorized({ code: "API_KEY_REVOKED", message: "this API key was revoked" })
    yield* recordUse(row, ip)
    const principal: ApiKeyPrincipal = { kind: "api_key", id: row.id as ApiKeyId, label: row.name, scopes: row.scopes.filter(isScope) }
    return principal
  })

  return ApiKeys.of({ create, list, revoke, verify })
})

export const layer = Layer.scoped(ApiKeys, make)
