/**
 * The two middlewares every admin API group uses, and the group constructors that attach them.
 *
 * - `RateLimit` (every route): per-IP token bucket, strict for the routes the access policy marks
 *   `limit: "auth"` (login, refresh, password reset, password change), looser for the rest; answers
 *   429 with `Retry-After`. Provides `ClientInfo` (the client's IP, from the trusted proxy header
 *   when one is configured, and its user agent).
 * - `Authentication` (every route that is not public): `Authorization: Bearer <access JWT>` or
 *   `X-Admin-Key: <API key>`, then the route's requirement from `AccessPolicy` (403 when it is
 *   not met). Provides `CurrentPrincipal`.
 *
 * Define a group with `protectedGroup(id)` (or `publicGroup(id)` for the few routes anyone may
 * call); start-up checks that each route's middlewares agree with its requirement in the policy.
 */
import { HttpApiGroup, HttpApiMiddleware, type HttpServerRequest } from "@effect/platform"
import { Context, Option, Schema } from "effect"
import { Forbidden, TooManyRequests, Unauthorized } from "../AdminErrors.js"
import { CurrentPrincipal } from "../Principal.js"
import { lastForwardedAddress } from "../../internal/ForwardedFor.js"

export interface ClientInfoShape {
  readonly ip: string
  readonly userAgent: string | null
}

export class ClientInfo extends Context.Tag("@nexmdm/engine/admin/ClientInfo")<ClientInfo, ClientInfoShape>() {}

export class RateLimit extends HttpApiMiddleware.Tag<RateLimit>()("@nexmdm/engine/admin/RateLimit", {
  failure: TooManyRequests,
  provides: ClientInfo
}) {}

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("@nexmdm/engine/admin/Authentication", {
  failure: Schema.Union(Unauthorized, Forbidden),
  provides: CurrentPrincipal
}) {}

/** Routes that need credentials. Authentication runs inside the rate limit (a flood costs no lookups). */
export const protectedGroup = <const Id extends string>(id: Id) => HttpApiGroup.make(id).middleware(Authentication).middleware(RateLimit)

/** Routes anyone may call (their requirement in AccessPolicy must be `publicRoute`). */
export const publicGroup = <const Id extends string>(id: Id) => HttpApiGroup.make(id).middleware(RateLimit)

const stripMapped = (ip: string) => (ip.startsWith("::ffff:") ? ip.slice(7) : ip)

/**
 * The client's address: the LAST entry of the trusted proxy header (the one our proxy added;
 * entries before it come from the client and can be forged), else the socket's peer.
 */
export const clientInfoOf = (request: HttpServerRequest.HttpServerRequest, trustedHeader: Option.Option<string>): ClientInfoShape => {
  const forwarded = Option.isSome(trustedHeader) ? request.headers[trustedHeader.value] : undefined
  const ip = lastForwardedAddress(forwarded) ?? Option.getOrElse(request.remoteAddress, () => "unknown")
  const userAgent = request.headers["user-agent"]
  return { ip: stripMapped(ip).slice(0, 100), userAgent: userAgent === undefined ? null : userAgent.slice(0, 300) }
}
