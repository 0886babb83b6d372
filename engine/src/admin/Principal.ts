/**
 * Who is calling the admin API, and what they may do.
 *
 * People have one role: `viewer` (reads everything a console shows, changes nothing but their own
 * password) < `admin` (manages devices, enrollment tokens and viewers) < `owner` (also admins,
 * owners, roles and API keys). Automation uses API keys, which have scopes instead of a role:
 *
 * | scope           | grants                                                                  |
 * |-----------------|-------------------------------------------------------------------------|
 * | `read`          | every read route (users, enrollment tokens, and later devices, alerts)  |
 * | `tokens:write`  | create and revoke enrollment tokens                                     |
 * | `devices:write` | change devices (devices API)                                            |
 * | `commands:send` | send commands to devices (commands API)                                 |
 * | `apk:upload`    | upload APKs (APK API)                                                   |
 * | `admin`         | everything above, plus user management and the audit log                |
 *
 * Owner-only routes (roles, API keys) refuse API keys whatever their scopes. The requirement of
 * every route is in `AccessPolicy.ts`, the one table the authentication middleware enforces.
 */
import { Context, Effect, Schema } from "effect"
import { Forbidden } from "./AdminErrors.js"

export const Role = Schema.Literal("owner", "admin", "viewer").annotations({ identifier: "Role" })
export type Role = typeof Role.Type

export const roleRank: Readonly<Record<Role, number>> = { viewer: 1, admin: 2, owner: 3 }

/** Every API key scope (see the table above). */
export const Scope = Schema.Literal("read", "devices:write", "commands:send", "apk:upload", "tokens:write", "admin").annotations({
  identifier: "Scope"
})
export type Scope = typeof Scope.Type

export const UserId = Schema.String.pipe(Schema.pattern(/^usr_[0-9a-z]{20}$/), Schema.brand("UserId")).annotations({ identifier: "UserId" })
export type UserId = typeof UserId.Type

export const ApiKeyId = Schema.String.pipe(Schema.pattern(/^ak_[0-9a-z]{20}$/), Schema.brand("ApiKeyId")).annotations({ identifier: "ApiKeyId" })
export type ApiKeyId = typeof ApiKeyId.Type

export interface UserPrincipal {
  readonly kind: "user"
  readonly id: UserId
  /** The email. */
  readonly label: string
  readonly role: Role
}

export interface ApiKeyPrincipal {
  readonly kind: "api_key"
  readonly id: ApiKeyId
  /** The key's name. */
  readonly label: string
  readonly scopes: ReadonlyArray<Scope>
}

export type Principal = UserPrincipal | ApiKeyPrincipal

/** Provided to every authenticated handler by the `Authentication` middleware. */
export class CurrentPrincipal extends Context.Tag("@nexmdm/engine/admin/CurrentPrincipal")<CurrentPrincipal, Principal>() {}

/**
 * What a route needs. `users`: least role of a person ("nobody" = people are refused);
 * `keys`: the scope an API key needs ("any" = every valid key, "none" = keys are refused).
 * `limit`: which per-IP rate limit the route counts against (`auth` is the strict one).
 */
export type Requirement =
  | { readonly _tag: "Public"; readonly limit: "auth" | "api" }
  | {
      readonly _tag: "Authenticated"
      readonly users: Role | "nobody"
      readonly keys: Scope | "any" | "none"
      readonly limit: "auth" | "api"
    }

/** No credentials needed (login, refresh, password reset): always on the strict limit. */
export const publicRoute: Requirement = { _tag: "Public", limit: "auth" }

/** People with at least `role`, and API keys with `keys`. */
export const allow = (
  users: Role | "nobody",
  keys: Scope | "any" | "none",
  options: { readonly limit?: "auth" | "api" } = {}
): Requirement => ({ _tag: "Authenticated", users, keys, limit: options.limit ?? "api" })

const hasScope = (principal: ApiKeyPrincipal, scope: Scope) => principal.scopes.includes(scope) || principal.scopes.includes("admin")

/** Why `principal` may not use a route with `requirement`, or undefined when it may. */
export const denial = (principal: Principal, requirement: Requirement): Forbidden | undefined => {
  if (requirement._tag === "Public") return undefined
  if (principal.kind === "user") {
    if (requirement.users === "nobody") return new Forbidden({ code: "FORBIDDEN", message: "this route is for API keys only" })
    return roleRank[principal.role] >= roleRank[requirement.users]
      ? undefined
      : new Forbidden({ code: "INSUFFICIENT_ROLE", message: `needs role ${requirement.users} or higher` })
  }
  if (requirement.keys === "none") return new Forbidden({ code: "USERS_ONLY", message: "API keys cannot use this route" })
  if (requirement.keys === "any" || hasScope(principal, requirement.keys)) return undefined
  return new Forbidden({ code: "INSUFFICIENT_SCOPE", message: `needs scope ${requirement.keys}` })
}

/**
 * Finer checks inside a handler (the route's own requirement was already enforced), e.g. only an
 * owner may create an admin. An API key with the `admin` scope counts as an admin, other keys
 * as viewers.
 */
export const requireRole = (role: Role): Effect.Effect<void, Forbidden, CurrentPrincipal> =>
  Effect.flatMap(CurrentPrincipal, (principal) => {
    const rank = principal.kind === "user" ? roleRank[principal.role] : hasScope(principal, "admin") ? roleRank.admin : roleRank.viewer
    return rank >= roleRank[role]
      ? Effect.void
      : Effect.fail(new Forbidden({ code: "INSUFFICIENT_ROLE", message: `needs role ${role} or higher` }))
  })

/** An API key must hold `scope` (or `admin`); people pass (their role was checked by the route). */
export const requireScope = (scope: Scope): Effect.Effect<void, Forbidden, CurrentPrincipal> =>
  Effect.flatMap(CurrentPrincipal, (principal) =>
    principal.kind === "user" || hasScope(principal, scope)
      ? Effect.void
      : Effect.fail(new Forbidden({ code: "INSUFFICIENT_SCOPE", message: `needs scope ${scope}` }))
  )
