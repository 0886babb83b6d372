import { afterEach, describe, expect, it, vi } from "vitest"

const user = { id: "usr_aaaaaaaaaaaaaaaaaaaa", email: "a@example.com", displayName: "A", role: "viewer", createdAt: "", disabledAt: null, passwordChangedAt: "" }
const session = (n: number, ttlMs = 900_000) => ({
  tokenType: "Bearer",
  accessToken: `access-${n}`,
  accessTokenExpiresAt: new Date(Date.now() + ttlMs).toISOString(),
  refreshToken: `refresh-${n}`,
  refreshTokenExpiresAt: new Date(Date.now() + 86400_000).toISOString(),
  user
})
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } })

afterEach(() => {
  vi.unstubAllGlobals()
  vi.resetModules()
  sessionStorage.clear()
})

describe("session", () => {
  it("refreshes once for parallel expired calls, rotates the refresh token, and retries with the new access token", async () => {
    const { signIn, authorizedFetch, can } = await import("../../src/lib/session")
    const refreshBodies: Array<unknown> = []
    const fetch = vi.fn(async (url: string, init: RequestInit) => {
      if (url.endsWith("/auth/login")) return json(200, session(1))
      if (url.endsWith("/auth/refresh")) {
        refreshBodies.push(JSON.parse(String(init.body)))
        await new Promise((resolve) => setTimeout(resolve, 20))
        return json(200, session(2))
      }
      const auth = (init.headers as Record<string, string>)["authorization"]
      return auth === "Bearer access-2" ? json(200, { ok: true }) : json(401, { _tag: "Unauthorized", code: "TOKEN_EXPIRED", message: "expired" })
    })
    vi.stubGlobal("fetch", fetch)
    await signIn("a@example.com", "pw")
    expect([can("viewer"), can("admin")]).toEqual([true, false])
    const responses = await Promise.all([authorizedFetch("/api/v1/devices", { method: "GET" }), authorizedFetch("/api/v1/users", { method: "GET" })])
    expect(responses.map((response) => response.status)).toEqual([200, 200])
    expect(refreshBodies).toEqual([{ refreshToken: "refresh-1" }])
    expect(sessionStorage.getItem("nexmdm.refresh")).toBe("refresh-2")
  })

  it("ends the session as expired when the refresh token is refused", async () => {
    const { signIn, refresh, sessionEnded, user: current } = await import("../../src/lib/session")
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => (url.endsWith("/auth/login") ? json(200, session(1)) : json(401, { _tag: "Unauthorized", code: "REFRESH_TOKEN_INVALID", message: "no" })))
    )
    await signIn("a@example.com", "pw")
    expect(await refresh()).toBe(false)
    expect([sessionEnded(), current(), sessionStorage.getItem("nexmdm.refresh")]).toEqual(["expired", undefined, null])
  })

  it("keeps the session when the engine is only unreachable or rate limiting", async () => {
    const { signIn, refresh, sessionEnded } = await import("../../src/lib/session")
    vi.stubGlobal("fetch", vi.fn(async (url: string) => (url.endsWith("/auth/login") ? json(200, session(1)) : json(429, { code: "RATE_LIMITED", message: "slow down", retryAfterSeconds: 5 }))))
    await signIn("a@example.com", "pw")
    expect(await refresh()).toBe(false)
    expect(sessionEnded()).toBeUndefined()
  })
})
