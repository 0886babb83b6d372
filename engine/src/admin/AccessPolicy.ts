/**
 * Who may call which admin route: ONE table, keyed by "<group>.<endpoint>" (the OpenAPI
 * operationId). The `Authentication` middleware looks each request's route up here, so a route
 * missing from the table is refused, and the type below makes a missing (or unknown) entry a
 * compile error. Start-up also checks that public routes are exactly the ones without the
 * Authentication middleware (`policyProblems`), and the tests iterate over the table.
 *
 * `allow(users, keys)`: people need at least role `users`; API keys need scope `keys`
 * ("any" = every key, "none" = keys refused). Scopes are listed in `Principal.ts`.
 */
import type { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, OpenApi } from "@effect/platform"
import { HttpApi as Api } from "@effect/platform"
import type { AdminApi } from "./AdminApi.js"
import { Authentication, RateLimit } from "./api/Middleware.js"
import { allow, publicRoute, type Requirement } from "./Principal.js"

type GroupsOf<A> = A extends HttpApi.HttpApi<any, infer Groups, any, any> ? Groups : never
type KeysOf<G> = G extends HttpApiGroup.HttpApiGroup<infer Id, infer Endpoints, any, any, any>
  ? `${Id}.${HttpApiEndpoint.HttpApiEndpoint.Name<Endpoints>}`
  : never

/** "auth.login", "users.create", ...: every endpoint of the admin API. */
export type EndpointKey = KeysOf<GroupsOf<typeof AdminApi>>

export const accessPolicy = {
  "auth.login": publicRoute,
  "auth.refresh": publicRoute,
  "auth.logout": publicRoute,
  "auth.requestPasswordReset": publicRoute,
  "auth.resetPassword": publicRoute,

  "me.get": allow("viewer", "any"),
  "me.changePassword": allow("viewer", "none", { limit: "auth" }),

  "users.list": allow("viewer", "read"),
  "users.create": allow("admin", "admin"),
  "users.setRole": allow("owner", "none"),
  "users.disable": allow("admin", "admin"),
  "users.enable": allow("admin", "admin"),

  "apiKeys.list": allow("owner", "none"),
  "apiKeys.create": allow("owner", "none"),
  "apiKeys.revoke": allow("owner", "none"),

  "audit.list": allow("admin", "admin"),

  "enrollmentTokens.list": allow("viewer", "read"),
  "enrollmentTokens.create": allow("admin", "tokens:write"),
  "enrollmentTokens.revoke": allow("admin", "tokens:write"),
  "provisioning.script": allow("admin", "tokens:write"),
  "provisioning.qr": allow("admin", "tokens:write"),
  "provisioning.reports": allow("viewer", "read"),

  "devices.list": allow("viewer", "read"),
  "devices.exportCsv": allow("viewer", "read"),
  "devices.get": allow("viewer", "read"),
  "devices.update": allow("admin", "devices:write"),
  "devices.retire": allow("admin", "devices:write"),
  "devices.heartbeats": allow("viewer", "read"),
  "devices.events": allow("viewer", "read"),
  "devices.summary": allow("viewer", "read"),

  "commands.create": allow("admin", "commands:send"),
  "commands.listForDevice": allow("viewer", "read"),
  "commands.createBulk": allow("admin", "commands:send"),
  "commands.bulkProgress": allow("viewer", "read"),
  "commands.get": allow("viewer", "read"),
  "commands.cancel": allow("admin", "commands:send"),

  "console.bulkJobs": allow("viewer", "read"),
  "console.bulkJobCommands": allow("viewer", "read"),
  "console.tokenDevices": allow("viewer", "read"),
  "console.status": allow("viewer", "read"),
  "console.testMail": allow("admin", "admin"),

  "alerts.list": allow("viewer", "read"),
  "alerts.resolve": allow("admin", "admin"),
  "alerts.listRules": allow("viewer", "read"),
  "alerts.createRule": allow("admin", "admin"),
  "alerts.updateRule": allow("admin", "admin"),
  "alerts.deleteRule": allow("admin", "admin"),

  "releases.upload": allow("admin", "apk:upload"),
  "releases.list": allow("viewer", "read"),
  "releases.adoption": allow("viewer", "read"),
  "releases.history": allow("viewer", "read"),
  "releases.rollback": allow("admin", "apk:upload"),
  "releases.get": allow("viewer", "read"),
  "releases.download": allow("viewer", "read"),
  "releases.promote": allow("admin", "apk:upload"),

  "rollouts.start": allow("admin", "commands:send"),
  "rollouts.list": allow("viewer", "read"),
  "rollouts.get": allow("viewer", "read"),
  "rollouts.pause": allow("admin", "commands:send"),
  "rollouts.resume": allow("admin", "commands:send")
} as const satisfies Record<EndpointKey, Requirement>

export interface RouteEntry {
  readonly key: EndpointKey
  readonly method: string
  /** As the router has it, e.g. "/api/v1/users/:id/role". */
  readonly path: string
  /** Undefined when the table lacks the route. */
  readonly requirement: Requirement | undefined
  readonly middleware: ReadonlySet<HttpApiMiddleware.TagClassAny>
}

export interface RouteAccess extends RouteEntry {
  readonly requirement: Requirement
}

/** Every endpoint of `api` with its requirement. */
export const routesOf = (api: HttpApi.HttpApi.Any): ReadonlyArray<RouteEntry> => {
  const routes: Array<RouteEntry> = []
  Api.reflect(api as HttpApi.HttpApi.AnyWithProps, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, group, middleware }) => {
      const key = `${group.identifier}.${endpoint.name}` as EndpointKey
      routes.push({ key, method: endpoint.method, path: endpoint.path, requirement: (accessPolicy as Record<string, Requirement>)[key], middleware })
    }
  })
  return routes
}

/** What is wrong between the API's routes and the table (empty when they agree). */
export const policyProblems = (api: HttpApi.HttpApi.Any): ReadonlyArray<string> =>
  routesOf(api).flatMap((route) => {
    const where = `${route.key} (${route.method} ${route.path})`
    if (route.requirement === undefined) return [`${where} has no entry in AccessPolicy`]
    const authenticated = route.middleware.has(Authentication as unknown as HttpApiMiddleware.TagClassAny)
    return [
      ...(route.middleware.has(RateLimit as unknown as HttpApiMiddleware.TagClassAny) ? [] : [`${where} lacks the RateLimit middleware`]),
      ...(route.requirement._tag === "Public" && authenticated ? [`${where} is public in AccessPolicy but has the Authentication middleware`] : []),
      ...(route.requirement._tag !== "Public" && !authenticated ? [`${where} needs credentials in AccessPolicy but lacks the Authentication middleware`] : [])
    ]
  })

/** "method path" -> the route's access entry, for the middlewares' lookups per request. */
export const routeIndex = (api: HttpApi.HttpApi.Any): ReadonlyMap<string, RouteAccess> =>
  new Map(
    routesOf(api).flatMap((route) => (route.requirement === undefined ? [] : [[`${route.method} ${route.path}`, route as RouteAccess] as const]))
  )

const describe = (requirement: Requirement): string => {
  if (requirement._tag === "Public") return "No credentials (strict rate limit)."
  const users = requirement.users === "nobody" ? "no user" : `role **${requirement.users}** or higher`
  const keys = requirement.keys === "none" ? "API keys refused" : requirement.keys === "any" ? "any API key" : `API key with scope **${requirement.keys}**`
  return `Requires ${users}; ${keys}.`
}

/** Adds each operation's requirement and security schemes (from the table) to the OpenAPI document. */
export const documentAccess = (document: Record<string, any>): Record<string, any> => {
  const spec = document as OpenApi.OpenAPISpec
  const schemes = spec.components.securitySchemes as Record<string, unknown>
  schemes["bearer"] = { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "Access token from POST /api/v1/auth/login" }
  schemes["adminKey"] = { type: "apiKey", in: "header", name: "X-Admin-Key", description: "API key nxk_<prefix>_<secret>" }
  for (const operations of Object.values(spec.paths)) {
    for (const operation of Object.values(operations as Record<string, { operationId: string; description?: string; security: Array<unknown> } & Record<string, unknown>>)) {
      const requirement = (accessPolicy as Record<string, Requirement>)[operation.operationId]
      if (requirement === undefined) continue
      operation.security =
        requirement._tag === "Public" ? [] : requirement.keys === "none" ? [{ bearer: [] }] : [{ bearer: [] }, { adminKey: [] }]
      operation.description = [operation.description, describe(requirement)].filter((text) => text !== undefined).join("\n\n")
      operation["x-nexmdm-access"] = requirement
      // Decode failures reach clients as ValidationError (AdminApiLive), never as HttpApiDecodeError.
      const badRequest = (operation["responses"] as Record<string, any> | undefined)?.["400"]?.content?.["application/json"]
      if (Array.isArray(badRequest?.schema?.anyOf)) {
        const rest = badRequest.schema.anyOf.filter((schema: any) => schema?.$ref !== "#/components/schemas/HttpApiDecodeError")
        badRequest.schema = rest.length === 1 ? rest[0] : { anyOf: rest }
      }
    }
  }
  delete (spec.components.schemas as Record<string, unknown>)["HttpApiDecodeError"]
  return spec
}
