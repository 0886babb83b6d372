import { Either } from "effect"
import { createHmac, randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { makeAccessTokens } from "../src/admin/AccessTokens.js"
import type { UserId } from "../src/admin/Principal.js"

const key = randomBytes(32)
const tokens = makeAccessTokens(key, 15 * 60_000)
const subject = { id: "usr_0123456789abcdefghij" as UserId, role: "admin" as const }

const codeOf = (result: Either.Either<unknown, { readonly code: string }>) => (Either.isLeft(result) ? result.left.code : "OK")
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

describe("access tokens (HS256 JWT)", () => {
  it("carry sub, role, iat, exp, jti and typ, and verify until they expire", () => {
    const now = Date.now()
    const issued = tokens.issue(subject, now)
    const claims = Either.getOrThrow(tokens.verify(issued.token, now))
    expect(claims).toMatchObject({ sub: subject.id, role: "admin", typ: "access", iat: Math.floor(now) / 1000, exp: Math.floor(now / 1000) + 900 })
    expect(claims.jti).toMatch(/^[0-9a-z]{16}$/)
    expect(issued.expiresAt.getTime()).toBe(claims.exp * 1000)
    expect(codeOf(tokens.verify(issued.token, issued.expiresAt.getTime() - 1))).toBe("OK")
    expect(codeOf(tokens.verify(issued.token, issued.expiresAt.getTime()))).toBe("TOKEN_EXPIRED")
  })

  it("refuse a changed payload, another key, alg none and any other header", () => {
    const { token } = tokens.issue(subject)
    const [header, payload, signature] = token.split(".") as [string, string, string]
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString())
    const promoted = `${header}.${b64({ ...claims, role: "owner" })}.${signature}`
    expect(codeOf(tokens.verify(promoted, Date.now()))).toBe("TOKEN_INVALID")
    expect(codeOf(makeAccessTokens(randomBytes(32), 60_000).verify(token, Date.now()))).toBe("TOKEN_INVALID")
    expect(codeOf(tokens.verify(`${b64({ alg: "none", typ: "JWT" })}.${payload}.`, Date.now()))).toBe("TOKEN_INVALID")
    // Correctly signed with our key, but announcing another algorithm: still refused.
    const otherHeader = b64({ alg: "HS512", typ: "JWT" })
    const resigned = `${otherHeader}.${payload}.${createHmac("sha256", key).update(`${otherHeader}.${payload}`).digest("base64url")}`
    expect(codeOf(tokens.verify(resigned, Date.now()))).toBe("TOKEN_INVALID")
    for (const junk of ["", "a.b", "a.b.c.d", token + "x", "x".repeat(5000)]) expect(codeOf(tokens.verify(junk, Date.now()))).toBe("TOKEN_INVALID")
  })

  it("refuse a signed token whose claims are not an access token's", () => {
    const header = b64({ alg: "HS256", typ: "JWT" })
    const payload = b64({ sub: subject.id, role: "admin", iat: 1, exp: 9_999_999_999, jti: "x", typ: "refresh" })
    const signed = `${header}.${payload}.${createHmac("sha256", key).update(`${header}.${payload}`).digest("base64url")}`
    expect(codeOf(tokens.verify(signed, Date.now()))).toBe("TOKEN_INVALID")
  })

  it("verify in microseconds", () => {
    const { token } = tokens.issue(subject)
    const now = Date.now()
    for (let i = 0; i < 1000; i++) tokens.verify(token, now)
    const runs = 20_000
    const start = process.hrtime.bigint()
    for (let i = 0; i < runs; i++) tokens.verify(token, now)
    const microseconds = Number(process.hrtime.bigint() - start) / 1000 / runs
    console.log(`access token verify: ${microseconds.toFixed(1)} µs`)
    // Typically ~5 µs here; the bound leaves room for a busy CI machine.
    expect(microseconds).toBeLessThan(100)
  })
})
