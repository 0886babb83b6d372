/**
 * The signed-in session. The access token lives only in memory; the single-use refresh token is
 * kept in sessionStorage (this tab only) so a reload can resume, and is rotated on every refresh.
 * Refreshes are single-flight: parallel 401s share one /auth/refresh call (a second call with the
 * same token would be refused and end the session).
 */
import { createSignal } from "solid-js"
import { toApiError } from "./api"
import type { AdminUser, Role, SessionBody } from "./model"

const REFRESH_KEY = "nexmdm.refresh"
/** Refresh this long before the access token's expiry. */
const EARLY_MS = 30_000

export type SessionEnd = "signed-out" | "expired"

interface Current {
  readonly user: AdminUser
  readonly accessToken: string
  readonly accessTokenExpiresAt: number
  readonly refreshToken: string
}

const [current, setCurrent] = createSignal<Current | undefined>(undefined)
const [ended, setEnded] = createSignal<SessionEnd | undefined>(undefined)

export const user = () => current()?.user
export const sessionEnded = ended

const roleRank: Record<Role, number> = { viewer: 1, admin: 2, owner: 3 }
/** Whether the signed-in user has at least `role` (the engine checks again: this only hides UI). */
export const can = (role: Role): boolean => {
  const who = current()?.user
  return who !== undefined && roleRank[who.role] >= roleRank[role]
}

const storage = (): Storage | undefined => (typeof sessionStorage === "undefined" ? undefined : sessionStorage)

const adopt = (session: SessionBody) => {
  setCurrent({
    user: session.user,
    accessToken: session.accessToken,
    accessTokenExpiresAt: Date.parse(session.accessTokenExpiresAt),
    refreshToken: session.refreshToken
  })
  setEnded(undefined)
  storage()?.setItem(REFRESH_KEY, session.refreshToken)
}

const end = (reason: SessionEnd) => {
  setCurrent(undefined)
  storage()?.removeItem(REFRESH_KEY)
  setEnded(reason)
}

const postAuth = async (path: string, body: unknown): Promise<Response> =>
  fetch(`/api/v1/auth${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

/** Signs in; rejects with ApiError (INVALID_CREDENTIALS, RATE_LIMITED, VALIDATION_FAILED...). */
export const signIn = async (email: string, password: string): Promise<AdminUser> => {
  const response = await postAuth("/login", { email, password })
  const body = await response.json().catch(() => undefined)
  if (!response.ok) throw toApiError(response.status, body)
  adopt(body as SessionBody)
  return (body as SessionBody).user
}

export const signOut = async (): Promise<void> => {
  const refreshToken = current()?.refreshToken ?? storage()?.getItem(REFRESH_KEY)
  end("signed-out")
  if (refreshToken) await postAuth("/logout", { refreshToken }).catch(() => undefined)
}

let refreshing: Promise<boolean> | undefined

/** Rotates the refresh token for a new access token; false (and the session ends as expired) when refused. */
export const refresh = (): Promise<boolean> => {
  refreshing ??= (async () => {
    const refreshToken = current()?.refreshToken ?? storage()?.getItem(REFRESH_KEY)
    if (!refreshToken) return false
    try {
      const response = await postAuth("/refresh", { refreshToken })
      if (response.ok) {
        adopt((await response.json()) as SessionBody)
        return true
      }
      // Rate limited or engine down: the session may still be good; anything else ends it.
      if (response.status === 429 || response.status >= 500) return false
      end("expired")
      return false
    } catch {
      return false
    }
  })().finally(() => {
    refreshing = undefined
  })
  return refreshing
}

/** On start-up: resumes the tab's session from its refresh token, if any. */
export const resume = async (): Promise<boolean> => (current() !== undefined ? true : storage()?.getItem(REFRESH_KEY) ? refresh() : false)

/** A valid access token, refreshed first when it is about to expire; undefined when signed out. */
export const accessToken = async (): Promise<string | undefined> => {
  const now = current()
  if (now === undefined) return undefined
  if (now.accessTokenExpiresAt - Date.now() > EARLY_MS) return now.accessToken
  return (await refresh()) ? current()?.accessToken : undefined
}

/** fetch with the bearer token; one refresh and retry when the engine says the token expired. */
export const authorizedFetch = async (url: string, init: RequestInit): Promise<Response> => {
  const send = (token: string | undefined) =>
    fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), ...(token ? { authorization: `Bearer ${token}` } : {}) } })
  const response = await send(await accessToken())
  if (response.status !== 401) return response
  const body = (await response.clone().json().catch(() => ({}))) as { code?: string }
  if (body.code === "TOKEN_EXPIRED" && (await refresh())) return send(current()?.accessToken)
  if (body.code === "SESSION_REVOKED" || body.code === "ACCOUNT_DISABLED" || body.code === "TOKEN_EXPIRED") end("expired")
  return response
}

/** Replaces the session after a password change (the engine revoked every other one). */
export const adoptSession = adopt

/** Marks the session over when a live stream says it was revoked. */
export const expireSession = () => end("expired")
