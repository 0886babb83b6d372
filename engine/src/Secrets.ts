/**
 * Random identifiers and secrets, and argon2id hashing of the secrets that must be stored.
 * argon2 costs tens to hundreds of milliseconds of CPU, so it runs only on enrollment, ticket
 * renewal and admin passwords, never on the heartbeat or reconnect path; callers in the engine
 * run these through `SlowHashBudget` (one at a time, failed checks rationed), never directly.
 */
import argon2 from "argon2"
import { Data, Effect } from "effect"
import { randomBytes } from "node:crypto"

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

/** `length` characters of [0-9a-z], uniformly chosen (rejection sampling, no modulo bias). */
export const randomId = (length: number): string => {
  let out = ""
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 252 && out.length < length) out += alphabet[byte % 36]
    }
  }
  return out
}

/** 32 random bytes, base64url: 256 bits, for secrets a machine keeps. */
export const randomSecret = (): string => randomBytes(32).toString("base64url")

export interface Argon2Params {
  readonly memoryCost: number
  readonly timeCost: number
  readonly parallelism: number
}

export class HashingError extends Data.TaggedError("HashingError")<{ readonly cause: unknown }> {}

export const hashSecret = (secret: string, params: Argon2Params) =>
  Effect.tryPromise({
    try: () => argon2.hash(secret, { type: argon2.argon2id, ...params }),
    catch: (cause) => new HashingError({ cause })
  }).pipe(Effect.withSpan("Secrets.hash"))

/** False for a wrong secret and for a malformed hash (never throws on bad input). */
export const verifySecret = (hash: string, secret: string) =>
  Effect.promise(() => argon2.verify(hash, secret).catch(() => false)).pipe(Effect.withSpan("Secrets.verify"))
