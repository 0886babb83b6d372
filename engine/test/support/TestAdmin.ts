/**
 * The admin plane (ops routes + REST API) on a fresh test database, without the device plane:
 * enrollment, tickets, the admin services, a Mailer that keeps what it sends, cheap argon2, and
 * `x-forwarded-for` trusted so each test can speak from its own address (rate limits are per IP).
 */
import { Duration, Effect, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted } from "effect"
import { randomInt } from "node:crypto"
import { Accounts } from "../../src/admin/Accounts.js"
import * as AdminApiLive from "../../src/admin/AdminApiLive.js"
import type { AdminUser } from "../../src/admin/AdminModel.js"
import { systemActor } from "../../src/admin/Audit.js"
import { type Mail, Mailer } from "../../src/admin/Mailer.js"
import type { Role } from "../../src/admin/Principal.js"
import { AdminServer } from "../../src/AdminServer.js"
import * as Alerts from "../../src/alerts/Alerts.js"
import * as Engine from "../../src/Engine.js"
import type { EngineConfig, EngineConfigShape } from "../../src/EngineConfig.js"
import type { SqlClient } from "@effect/sql"
import { EngineStatus } from "../../src/EngineStatus.js"
import { Push } from "../../src/push/Push.js"
import type { TestDatabase } from "./TestDatabase.js"
import { testConfig } from "./TestEngine.js"

export const adminTestConfig = (database: TestDatabase, overrides: Partial<EngineConfigShape> = {}) =>
  testConfig(database, {
    argon2Password: { memoryCost: 1024, timeCost: 1, parallelism: 1 },
    trustedProxyHeader: Option.some("x-forwarded-for"),
    ...overrides
  })

/** A Mailer that keeps every mail in `sent` (for tests that read a reset link). */
export const capturingMailer = () => {
  const sent: Array<Mail> = []
  return { sent, layer: Layer.succeed(Mailer, { send: (mail) => Effect.sync(() => void sent.push(mail)) }) }
}

/** Logs go to the console from Warning up, or (with `logs`) every level into that array. */
const loggingLayer = (logs?: Array<string>) =>
  logs === undefined
    ? Logger.minimumLogLevel(process.env["NEXMDM_TEST_LOG_LEVEL"] === "debug" ? LogLevel.Debug : LogLevel.Warning)
    : Layer.merge(
        Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (line) => void logs.push(line))),
        Logger.minimumLogLevel(LogLevel.All)
      )

/** The admin plane over the engine core (devices, commands) and alerts, push disabled. */
export const adminLayer = <E>(
  database: TestDatabase,
  overrides: Partial<EngineConfigShape>,
  mailer: Layer.Layer<Mailer, E, EngineConfig | SqlClient.SqlClient>,
  logs?: Array<string>
) =>
  AdminApiLive.layer.pipe(
    Layer.provideMerge(Alerts.layer),
    Layer.provideMerge(mailer),
    Layer.provideMerge(Engine.coreLayerWith(Push.layerDisabled)),
    Layer.provideMerge(EngineStatus.layer),
    Layer.provideMerge(adminTestConfig(database, overrides)),
    Layer.provide(loggingLayer(logs))
  )

type AdminServices = Layer.Layer.Success<ReturnType<typeof adminLayer>>

export interface TestAdmin {
  readonly run: <A, E>(effect: Effect.Effect<A, E, AdminServices>) => Promise<A>
  /** Base URL of the admin plane, e.g. http://127.0.0.1:41234 */
  readonly url: string
  /** Mails the engine sent. */
  readonly mail: ReadonlyArray<Mail>
  readonly dispose: () => Promise<void>
}

export const startAdmin = async (
  database: TestDatabase,
  overrides: Partial<EngineConfigShape> = {},
  options: {
    readonly logs?: Array<string>
    /** A real mailer (e.g. SmtpMailer against a test SMTP server) instead of the capturing one. */
    readonly mailer?: Layer.Layer<Mailer, unknown, EngineConfig | SqlClient.SqlClient>
  } = {}
): Promise<TestAdmin> => {
  const mailer = capturingMailer()
  const runtime = ManagedRuntime.make(adminLayer(database, overrides, options.mailer ?? mailer.layer, options.logs))
  const { url } = await runtime.runPromise(AdminServer)
  return { run: (effect) => runtime.runPromise(effect), url, mail: mailer.sent, dispose: () => runtime.dispose() }
}

export const PASSWORD = "correct horse battery staple"

/** Creates a user directly (as the system), with PASSWORD unless told otherwise. */
export const createUser = (admin: TestAdmin, role: Role, options: { readonly email?: string; readonly password?: string } = {}) =>
  admin.run(
    Effect.flatMap(Accounts, (accounts) =>
      accounts.createUser(
        {
          email: options.email ?? `${role}-${randomInt(1_000_000_000)}@example.com`,
          displayName: `A ${role}`,
          role,
          password: Redacted.make(options.password ?? PASSWORD)
        },
        { actor: systemActor("test"), sourceIp: null }
      )
    )
  )

export interface ApiResponse {
  readonly status: number
  readonly headers: Headers
  readonly body: any
  readonly text: string
}

/** A caller of the admin API from one source address (x-forwarded-for), optionally signed in. */
export class ApiClient {
  constructor(
    readonly admin: TestAdmin,
    readonly ip: string = `198.51.100.${randomInt(1, 255)}`,
    readonly credentials: { readonly token?: string; readonly key?: string } = {}
  ) {}

  /** A new address: a fresh rate limit. */
  static fresh(admin: TestAdmin) {
    return new ApiClient(admin, `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`)
  }

  withToken(token: string) {
    return new ApiClient(this.admin, this.ip, { token })
  }

  withKey(key: string) {
    return new ApiClient(this.admin, this.ip, { key })
  }

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
    const response = await fetch(`${this.admin.url}${path}`, {
      method,
      headers: {
        "x-forwarded-for": this.ip,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(this.credentials.token === undefined ? {} : { authorization: `Bearer ${this.credentials.token}` }),
        ...(this.credentials.key === undefined ? {} : { "x-admin-key": this.credentials.key }),
        ...headers
      },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
    })
    const text = await response.text()
    let parsed: unknown = undefined
    try {
      parsed = text === "" ? undefined : JSON.parse(text)
    } catch {
      parsed = undefined
    }
    return { status: response.status, headers: response.headers, body: parsed, text }
  }

  get = (path: string, headers?: Record<string, string>) => this.request("GET", path, undefined, headers)
  post = (path: string, body: unknown = {}, headers?: Record<string, string>) => this.request("POST", path, body, headers)
  put = (path: string, body: unknown = {}) => this.request("PUT", path, body)

  /** Signs in; returns a client carrying the access token, and the whole session. */
  async login(email: string, password: string = PASSWORD) {
    const response = await this.post("/api/v1/auth/login", { email, password })
    if (response.status !== 200) throw new Error(`login failed: ${response.status} ${response.text}`)
    return { client: this.withToken(response.body.accessToken), session: response.body as Session }
  }
}

export interface Session {
  readonly tokenType: "Bearer"
  readonly accessToken: string
  readonly accessTokenExpiresAt: string
  readonly refreshToken: string
  readonly refreshTokenExpiresAt: string
  readonly user: { readonly id: string; readonly email: string; readonly role: Role }
}

/** A signed-in client for a new user of `role`. */
export const signedIn = async (admin: TestAdmin, role: Role): Promise<{ client: ApiClient; user: AdminUser }> => {
  const user = await createUser(admin, role)
  const { client } = await ApiClient.fresh(admin).login(user.email)
  return { client, user }
}

export const waitFor = async <A>(check: () => Promise<A | undefined> | A | undefined, timeout = Duration.seconds(5)): Promise<A> => {
  const deadline = Date.now() + Duration.toMillis(timeout)
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
