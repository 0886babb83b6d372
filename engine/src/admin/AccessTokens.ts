/**
 * Access tokens of the admin API: compact JWTs (RFC 7519) signed with HMAC-SHA256.
 *
 *   base64url({"alg":"HS256","typ":"JWT"}) . base64url(claims) . base64url(HMAC-SHA256)
 *   claims: { sub: user id, role, iat, exp (seconds since the epoch), jti (random id), typ: "access" }
 *
 * `iat` has millisecond precision (NumericDate may be fractional), so a revocation takes effect
 * for every token issued before it, even within the same second.
 *
 * Verification is one HMAC and a Schema decode (a few microseconds), so every API request is
 * authenticated without the database. The header must be exactly the one above: any other
 * algorithm (including "none") is refused before the signature is looked at. The key comes from
 * NEXMDM_JWT_KEY, else it is generated once and kept in `engine_keys` (name 'jwt'), so tokens
 * survive restarts. Revocation before `exp` (password or role change, disabled user) is checked
 * by the authentication middleware against the user's `tokens_valid_after`.
 */
import { Context, Duration, Effect, Either, Layer, Schema } from "effect"
import { createHmac, createSecretKey, timingSafeEqual } from "node:crypto"
import { EngineConfig } from "../EngineConfig.js"
import { loadOrCreateKey } from "../internal/EngineKeys.js"
import { randomId } from "../Secrets.js"
import { Unauthorized } from "./AdminErrors.js"
import { Role, UserId } from "./Principal.js"

export const AccessClaims = Schema.Struct({
  sub: UserId,
  role: Role,
  iat: Schema.Number.pipe(Schema.finite()),
  exp: Schema.Int,
  jti: Schema.String,
  typ: Schema.Literal("access")
})
export type AccessClaims = typeof AccessClaims.Type

export interface IssuedAccessToken {
  readonly token: string
  readonly expiresAt: Date
}

export class AccessTokens extends Context.Tag("@nexmdm/engine/admin/AccessTokens")<
  AccessTokens,
  {
    /** Signs a token for this user, valid from `nowMs` (default: now) for the configured TTL. */
    readonly issue: (subject: { readonly id: UserId; readonly role: Role }, nowMs?: number) => IssuedAccessToken
    /** Checks header, signature, claims and expiry. */
    readonly verify: (token: string, nowMs: number) => Either.Either<AccessClaims, Unauthorized>
    readonly ttlMs: number
  }
>() {}

const HEADER = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url")
const MAX_TOKEN_LENGTH = 2048

const decodeClaims = Schema.decodeUnknownEither(Schema.parseJson(AccessClaims))
const invalid = (message: string) => Either.left(new Unauthorized({ code: "TOKEN_INVALID", message }))

export const makeAccessTokens = (key: Buffer, ttlMs: number): AccessTokens["Type"] => {
  const secret = createSecretKey(key)
  const sign = (signingInput: string) => createHmac("sha256", secret).update(signingInput).digest()
  return {
    ttlMs,
    issue: (subject, nowMs = Date.now()) => {
      const iat = Math.floor(nowMs) / 1000
      const exp = Math.floor(iat) + Math.max(1, Math.round(ttlMs / 1000))
      const claims: AccessClaims = { sub: subject.id, role: subject.role, iat, exp, jti: randomId(16), typ: "access" }
      const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`
      return { token: `${signingInput}.${sign(signingInput).toString("base64url")}`, expiresAt: new Date(exp * 1000) }
    },
    verify: (token, nowMs) => {
      if (token.length > MAX_TOKEN_LENGTH) return invalid("access token too long")
      const first = token.indexOf(".")
      const second = token.indexOf(".", first + 1)
      if (first < 0 || second < 0 || token.indexOf(".", second + 1) >= 0) return invalid("malformed access token")
      if (token.slice(0, first) !== HEADER) return invalid("unsupported token header")
      const given = Buffer.from(token.slice(second + 1), "base64url")
      const expected = sign(token.slice(0, second))
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return invalid("access token signature does not match")
      const claims = decodeClaims(Buffer.from(token.slice(first + 1, second), "base64url").toString("utf8"))
      if (Either.isLeft(claims)) return invalid("malformed access token claims")
      if (claims.right.exp * 1000 <= nowMs) return Either.left(new Unauthorized({ code: "TOKEN_EXPIRED", message: "access token expired" }))
      return Either.right(claims.right)
    }
  }
}

export const layer = Layer.effect(
  AccessTokens,
  Effect.gen(function* () {
    const config = yield* EngineConfig
    const key = yield* loadOrCreateKey("jwt", config.jwtKey, "NEXMDM_JWT_KEY")
    return makeAccessTokens(key, Duration.toMillis(config.accessTokenTtl))
  })
)
