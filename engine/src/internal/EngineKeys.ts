/**
 * Engine-wide signing keys (session tickets, admin JWTs): from configuration when given, else
 * generated once and kept in `engine_keys`, so tokens survive restarts and every engine sharing
 * the database agrees on them.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"

export const loadOrCreateKey = (name: string, configured: Option.Option<Redacted.Redacted>, variable: string) =>
  Effect.gen(function* () {
    if (Option.isSome(configured)) {
      const key = Buffer.from(Redacted.value(configured.value), "base64")
      if (key.length < 32) return yield* Effect.dieMessage(`${variable} must be base64 of at least 32 bytes`)
      return key
    }
    const sql = yield* SqlClient.SqlClient
    yield* sql`insert into engine_keys (name, secret) values (${name}, ${randomBytes(32)}) on conflict (name) do nothing`
    const rows = yield* sql<{ secret: Uint8Array }>`select secret from engine_keys where name = ${name}`
    return Buffer.from(rows[0]!.secret)
  })
