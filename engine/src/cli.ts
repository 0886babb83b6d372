/**
 * `npm run mdm -- <command>`: operator commands that work on the database directly.
 *
 *   migrate                                   apply pending migrations
 *   tokens create [--expires 24h] [--max-uses 1] [--label text] [--json]
 *   tokens list [--json]
 *   tokens revoke <token-id>
 *   tokens script <token-id> --token-stdin [--platform bash|powershell|cmd] [--server-url URL] [--channel stable|beta] [--output FILE]
 *   users create --email EMAIL [--name NAME] [--role viewer|admin|owner | --owner] --password-stdin [--json]
 *
 * Uses DATABASE_URL, or the embedded database in NEXMDM_DATA_DIR like the engine does.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Data, Duration, Effect, Layer, Logger, LogLevel, Option, Redacted, Schema } from "effect"
import { parseArgs } from "node:util"
import * as AccessTokens from "./admin/AccessTokens.js"
import * as Accounts from "./admin/Accounts.js"
import { Email, NewPassword } from "./admin/AdminModel.js"
import * as Audit from "./admin/Audit.js"
import { MailError, Mailer } from "./admin/Mailer.js"
import { Role } from "./admin/Principal.js"
import * as Database from "./Database.js"
import { EngineConfig } from "./EngineConfig.js"
import * as Enrollment from "./Enrollment.js"
import * as SlowHashBudget from "./SlowHashBudget.js"
import * as Tickets from "./Tickets.js"
import { generateScript, type ScriptPlatform, scriptPlatforms, UnsafeScriptValue } from "./provisioning/EnrollmentScripts.js"
import { ServerUrl } from "./provisioning/ProvisioningGroup.js"
import * as Provisioning from "./provisioning/ProvisioningRequests.js"
import * as ProvisioningStore from "./provisioning/ProvisioningStore.js"
import * as Releases from "./releases/Releases.js"
import { writeFile } from "node:fs/promises"

class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

const usage = `usage: npm run mdm -- <command>

  migrate                                        apply pending database migrations
  tokens create [--expires 24h] [--max-uses N] [--label TEXT] [--json]
                                                 create an enrollment token (shown once)
  tokens list [--json]                           list enrollment tokens (never their secrets)
  tokens revoke TOKEN_ID                         revoke a token
  tokens script TOKEN_ID --token-stdin [--platform bash|powershell|cmd] [--server-url URL]
               [--channel stable|beta] [--output FILE]
                                                 an enrollment script for the token (read from standard
                                                 input) and the channel's agent; the URL defaults to
                                                 NEXMDM_PUBLIC_DEVICE_URL
  users create --email EMAIL [--name NAME] [--role viewer|admin|owner | --owner] --password-stdin [--json]
                                                 create an admin-plane user; the password is read
                                                 from standard input (e.g. the first owner)

Environment: DATABASE_URL (else the embedded database in NEXMDM_DATA_DIR, default .data)`

/** "90s", "30m", "24h", "7d" */
export const parseDuration = (text: string): Duration.Duration | undefined => {
  const match = /^(\d{1,6})([smhd])$/.exec(text)
  if (match === null) return undefined
  const n = Number(match[1])
  const unit = match[2]
  const duration = unit === "s" ? Duration.seconds(n) : unit === "m" ? Duration.minutes(n) : unit === "h" ? Duration.hours(n) : Duration.days(n)
  return Duration.greaterThan(duration, Duration.zero) ? duration : undefined
}

/** Checks the arguments before anything touches the database. */
const tokenOptions = (options: { expires: string; maxUses: string }) =>
  Effect.gen(function* () {
    const expiresIn = parseDuration(options.expires)
    if (expiresIn === undefined) return yield* new UsageError({ message: `--expires: expected e.g. 30m, 24h or 7d, got "${options.expires}"` })
    const maxUses = Number(options.maxUses)
    if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 1_000_000) {
      return yield* new UsageError({ message: `--max-uses: expected an integer from 1 to 1000000, got "${options.maxUses}"` })
    }
    return { expiresIn, maxUses }
  })

const tokensCreate = (options: { expiresIn: Duration.Duration; maxUses: number; label: string | undefined; json: boolean }) =>
  Effect.gen(function* () {
    const { expiresIn, maxUses } = options
    const enrollment = yield* Enrollment.Enrollment
    const token = yield* enrollment.createToken({ expiresIn, maxUses, label: options.label, createdBy: "cli" })
    if (options.json) {
      yield* Console.log(JSON.stringify({ id: token.id, token: token.token, expiresAt: token.expiresAt.toISOString(), maxUses, label: token.label }))
    } else {
      yield* Console.log(`token:      ${token.token}\nid:         ${token.id}\nexpires:    ${token.expiresAt.toISOString()}\nmax uses:   ${maxUses}\n\nThe token is shown only now; the engine keeps only its hash.`)
    }
  })

const tokensList = (json: boolean) =>
  Effect.gen(function* () {
    const enrollment = yield* Enrollment.Enrollment
    const tokens = yield* enrollment.listTokens
    if (json) return yield* Console.log(JSON.stringify(tokens))
    if (tokens.length === 0) return yield* Console.log("no enrollment tokens")
    const now = Date.now()
    for (const token of tokens) {
      const state = token.revokedAt !== null ? "revoked" : token.expiresAt.getTime() <= now ? "expired" : token.uses >= token.maxUses ? "used up" : "active"
      yield* Console.log(
        `${token.id}  ${state.padEnd(8)} uses ${token.uses}/${token.maxUses}  expires ${token.expiresAt.toISOString()}  ${token.label ?? ""}`
      )
    }
  })

const tokensRevoke = (id: string | undefined) =>
  Effect.gen(function* () {
    if (id === undefined) return yield* new UsageError({ message: "tokens revoke: give the token id (et_...)" })
    const enrollment = yield* Enrollment.Enrollment
    const revoked = yield* enrollment.revokeToken(id)
    if (!revoked) return yield* new UsageError({ message: `no active token with id ${id}` })
    yield* Console.log(`revoked ${id}`)
  })

/** The whole of standard input, without its final line break. */
const readStdin = Effect.promise(async () => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "")
})

/** Checks the arguments and reads the password before anything touches the database. */
const userOptions = (options: { email: string | undefined; role: string; passwordStdin: boolean }) =>
  Effect.gen(function* () {
    const email = Schema.decodeUnknownOption(Email)(options.email ?? "")
    if (email._tag === "None") return yield* new UsageError({ message: "users create: --email must be an email address" })
    const role = Schema.decodeUnknownOption(Role)(options.role)
    if (role._tag === "None") return yield* new UsageError({ message: `users create: --role must be viewer, admin or owner, got "${options.role}"` })
    if (!options.passwordStdin) {
      return yield* new UsageError({ message: "users create: give the password on standard input with --password-stdin (never on the command line)" })
    }
    const password = Schema.decodeUnknownOption(NewPassword)(yield* readStdin)
    if (password._tag === "None") return yield* new UsageError({ message: "users create: the password must have 12 to 256 characters" })
    return { email: email.value, role: role.value, password: password.value }
  })

const usersCreate = (options: {
  email: string
  name: string | undefined
  role: Role
  password: Redacted.Redacted<string>
  json: boolean
}) =>
  Effect.gen(function* () {
    const accounts = yield* Accounts.Accounts
    const user = yield* accounts
      .createUser(
        { email: options.email, displayName: options.name ?? options.email, role: options.role, password: options.password },
        { actor: Audit.systemActor("cli"), sourceIp: null }
      )
      .pipe(Effect.catchTags({ Conflict: (error) => new UsageError({ message: error.message }), ValidationError: (error) => new UsageError({ message: error.message }) }))
    yield* Console.log(options.json ? JSON.stringify({ id: user.id, email: user.email, role: user.role }) : `created ${user.role} ${user.email} (${user.id})`)
  })

/** Checks the arguments and reads the token before anything touches the database. */
const scriptOptions = (options: {
  id: string | undefined
  platform: string
  serverUrl: string | undefined
  channel: string
  tokenStdin: boolean
}) =>
  Effect.gen(function* () {
    if (options.id === undefined || !/^et_[0-9a-z]{16}$/.test(options.id)) {
      return yield* new UsageError({ message: "tokens script: give the token id (et_...)" })
    }
    const platform = scriptPlatforms.find((candidate) => candidate === options.platform)
    if (platform === undefined) return yield* new UsageError({ message: `--platform must be bash, powershell or cmd, got "${options.platform}"` })
    if (options.channel !== "stable" && options.channel !== "beta") {
      return yield* new UsageError({ message: `--channel must be stable or beta, got "${options.channel}"` })
    }
    if (options.serverUrl !== undefined && Option.isNone(Schema.decodeUnknownOption(ServerUrl)(options.serverUrl))) {
      return yield* new UsageError({ message: "--server-url: expected an http(s) URL without query, fragment or trailing /" })
    }
    if (!options.tokenStdin) {
      return yield* new UsageError({ message: "tokens script: give the whole token on standard input with --token-stdin (it is shown once, at creation)" })
    }
    const token = (yield* readStdin).trim()
    return { id: options.id, platform, serverUrl: options.serverUrl, channel: options.channel as "stable" | "beta", token }
  })

const tokensScript = (options: {
  id: string
  platform: ScriptPlatform
  serverUrl: string | undefined
  channel: "stable" | "beta"
  token: string
  output: string | undefined
}) =>
  Effect.gen(function* () {
    const prepared = yield* Provisioning.prepare(options.id, { token: options.token, serverUrl: options.serverUrl, channel: options.channel }, Option.none()).pipe(
      Effect.catchTag("ProvisioningConflict", (error) => new UsageError({ message: `${error.code}: ${error.message}` }))
    )
    const file = generateScript(options.platform, Provisioning.scriptInputOf(prepared, options.token))
    if (file instanceof UnsafeScriptValue) return yield* new UsageError({ message: file.message })
    if (options.output === undefined) return yield* Effect.sync(() => void process.stdout.write(file.body))
    const output = options.output
    // The file holds the token: readable by its owner only (and executable for the Bash script).
    yield* Effect.promise(() => writeFile(output, file.body, { mode: options.platform === "bash" ? 0o700 : 0o600 }))
    yield* Console.error(`wrote ${output} (agent ${prepared.release.versionName}, engine ${prepared.serverUrl}); it contains the token: delete it after use`)
  })

/** The CLI sends no mail (only the running engine mails password reset links). */
const noMail = Layer.succeed(Mailer, { send: () => Effect.fail(new MailError({ message: "the CLI sends no mail", cause: undefined })) })

const program = Effect.gen(function* () {
  const { values, positionals } = yield* Effect.try({
    try: () =>
      parseArgs({
        args: process.argv.slice(2),
        allowPositionals: true,
        options: {
          expires: { type: "string", default: "24h" },
          "max-uses": { type: "string", default: "1" },
          label: { type: "string" },
          email: { type: "string" },
          name: { type: "string" },
          role: { type: "string", default: "viewer" },
          owner: { type: "boolean", default: false },
          "password-stdin": { type: "boolean", default: false },
          "token-stdin": { type: "boolean", default: false },
          platform: { type: "string", default: "bash" },
          "server-url": { type: "string" },
          channel: { type: "string", default: "stable" },
          output: { type: "string", short: "o" },
          json: { type: "boolean", default: false },
          help: { type: "boolean", short: "h", default: false }
        }
      }),
    catch: (error) => new UsageError({ message: error instanceof Error ? error.message : String(error) })
  })
  const [command, sub, arg] = positionals
  if (values.help || command === undefined || command === "help") return yield* Console.log(usage)
  const withDatabase = <A, E>(effect: Effect.Effect<A, E, Enrollment.Enrollment>) =>
    effect.pipe(
      Effect.provide(
        Enrollment.layer.pipe(Layer.provide(Layer.merge(Tickets.layer, SlowHashBudget.layer)), Layer.provideMerge(Database.layer), Layer.provide(EngineConfig.layer))
      )
    )
  switch (`${command} ${sub ?? ""}`.trim()) {
    case "migrate":
      return yield* withDatabase(Console.log("database schema is up to date"))
    case "tokens create": {
      const checked = yield* tokenOptions({ expires: values.expires, maxUses: values["max-uses"] })
      return yield* withDatabase(tokensCreate({ ...checked, label: values.label, json: values.json }))
    }
    case "tokens list":
      return yield* withDatabase(tokensList(values.json))
    case "users create": {
      const checked = yield* userOptions({ email: values.email, role: values.owner ? "owner" : values.role, passwordStdin: values["password-stdin"] })
      const accounts = Accounts.layer.pipe(
        Layer.provide(Layer.mergeAll(Audit.layer, AccessTokens.layer, noMail, SlowHashBudget.layer)),
        Layer.provideMerge(Database.layer),
        Layer.provide(EngineConfig.layer)
      )
      return yield* usersCreate({ ...checked, name: values.name, json: values.json }).pipe(Effect.provide(accounts))
    }
    case "tokens script": {
      const checked = yield* scriptOptions({
        id: arg,
        platform: values.platform,
        serverUrl: values["server-url"],
        channel: values.channel,
        tokenStdin: values["token-stdin"]
      })
      const provisioning = Layer.mergeAll(ProvisioningStore.layer, Releases.layer).pipe(Layer.provide(SlowHashBudget.layer), Layer.provideMerge(Database.layer), Layer.provideMerge(EngineConfig.layer))
      return yield* tokensScript({ ...checked, output: values.output }).pipe(Effect.provide(provisioning))
    }
    case "tokens revoke":
      if (arg === undefined) return yield* new UsageError({ message: "tokens revoke: give the token id (et_...)" })
      return yield* withDatabase(tokensRevoke(arg))
    default:
      return yield* new UsageError({ message: `unknown command "${positionals.join(" ")}"\n\n${usage}` })
  }
})

program.pipe(
  Effect.catchTag("UsageError", (error) =>
    Console.error(error.message).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 2))))
  ),
  Effect.tapErrorCause((cause) => Effect.logError("command failed", cause)),
  Logger.withMinimumLogLevel(LogLevel.Warning),
  Effect.provide(Logger.json),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
