/**
 * People of the admin plane: users, passwords, sessions, password resets.
 *
 * - Passwords are argon2id hashes (NEXMDM_ARGON2_PASSWORD_*, default m=64 MiB, t=3, p=1: ~150 ms
 *   of one core on this hardware), one lane each: with p=4 each verify took both cores of a 2-core
 *   machine (for the same wall time, since the lanes hardly overlap under load) and stalled
 *   heartbeat acks behind it. Every hash goes through `SlowHashBudget` (admin lane): one at a time
 *   in the engine, and a password check (login, password change) is first admitted per client IP
 *   and per account email, then paced by the lane's budget for failed checks; a refusal is a 429
 *   `TooManyRequests` (RATE_LIMITED, with the delay) answered before any hashing or query.
 *   A login for an unknown email is limited and verified like any other, against a dummy hash of
 *   the same cost, so neither the answer nor its timing tells whether the account exists. Hashes
 *   made with older parameters are redone at the next successful login.
 * - A session is an access token (JWT, `AccessTokens`) plus a refresh token. A refresh token is
 *   single-use: refreshing revokes it and issues the next one of the same family; presenting a
 *   revoked one again (a stolen copy, or the thief's after the owner refreshed) revokes the whole
 *   family. Refresh and reset tokens are 256-bit random values stored as SHA-256 (see the
 *   migration for why a fast hash is right for them).
 * - Changing or resetting a password, changing a role and disabling a user revoke the user's
 *   refresh tokens and set `tokens_valid_after` (from the engine's clock, the one that stamps `iat`),
 *   which the authentication middleware checks against each access token's `iat` (from an
 *   in-memory copy: no query per request).
 * - A password reset request answers at once whatever the email; the token is made and mailed in
 *   the background, so the response time does not tell whether the account exists.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import argon2 from "argon2"
import { Context, Duration, Effect, FiberSet, Layer, Option, Redacted, Schedule, Schema } from "effect"
import { createHash } from "node:crypto"
import { EngineConfig } from "../EngineConfig.js"
import { hashSecret, HashingError, randomId, randomSecret, verifySecret } from "../Secrets.js"
import { ipSource, SlowHashBudget, type SlowHashRefused, type Source } from "../SlowHashBudget.js"
import { AccessTokens } from "./AccessTokens.js"
import { Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, ValidationError } from "./AdminErrors.js"
import { AdminUser, Email, NewPassword, Session } from "./AdminModel.js"
import { type Actor, Audit, type AuditContext, systemActor } from "./Audit.js"
import { Mailer } from "./Mailer.js"
import type { Role, UserId } from "./Principal.js"

/** Where a request came from (for the audit log and the session list). */
export interface ClientMeta {
  readonly ip: string | null
  readonly userAgent: string | null
}

/** What the authentication middleware needs to accept an access token, kept in memory. */
export interface SessionState {
  readonly email: string
  readonly role: Role
  readonly disabled: boolean
  /** Access tokens issued before this (epoch milliseconds, the engine's clock) are refused. */
  readonly tokensValidAfterMs: number
}

export interface NewUser {
  readonly email: string
  readonly displayName: string
  readonly role: Role
  readonly password: Redacted.Redacted<string>
}

type Failure = SqlError.SqlError | HashingError

export class Accounts extends Context.Tag("@nexmdm/engine/admin/Accounts")<
  Accounts,
  {
    /** Refuses a taken email (EMAIL_TAKEN) and a password under 12 characters (WEAK_PASSWORD). */
    readonly createUser: (user: NewUser, context: AuditContext) => Effect.Effect<AdminUser, Conflict | ValidationError | Failure>
    readonly listUsers: Effect.Effect<ReadonlyArray<AdminUser>, SqlError.SqlError>
    readonly getUser: (id: UserId) => Effect.Effect<AdminUser, NotFound | SqlError.SqlError>
    /** Refuses to leave no active owner (LAST_OWNER). */
    readonly setRole: (id: UserId, role: Role, context: AuditContext) => Effect.Effect<AdminUser, NotFound | Conflict | SqlError.SqlError>
    /** Disabling revokes every session; refuses the caller's own account and the last active owner. */
    readonly setDisabled: (
      id: UserId,
      disabled: boolean,
      context: AuditContext
    ) => Effect.Effect<AdminUser, NotFound | Conflict | SqlError.SqlError>
    /** TooManyRequests: too many failed logins from this address or for this account, or too many password checks at once. */
    readonly login: (
      credentials: { readonly email: string; readonly password: Redacted.Redacted<string> },
      client: ClientMeta
    ) => Effect.Effect<Session, Unauthorized | TooManyRequests | Failure>
    /** Rotates the refresh token. */
    readonly refresh: (refreshToken: Redacted.Redacted<string>, client: ClientMeta) => Effect.Effect<Session, Unauthorized | SqlError.SqlError>
    /** Revokes the token's family (its login session); unknown tokens are ignored. */
    readonly logout: (refreshToken: Redacted.Redacted<string>, client: ClientMeta) => Effect.Effect<void, SqlError.SqlError>
    /** Needs the current password (checked under the same limits as a login); revokes every other session and returns a fresh one. */
    readonly changePassword: (
      id: UserId,
      passwords: { readonly current: Redacted.Redacted<string>; readonly next: Redacted.Redacted<string> },
      client: ClientMeta
    ) => Effect.Effect<Session, Forbidden | Unauthorized | TooManyRequests | ValidationError | Failure>
    /** Always succeeds at once; the mail (if the account exists and is enabled) goes out in the background. */
    readonly requestPasswordReset: (email: string, client: ClientMeta) => Effect.Effect<void>
    /** Single use; revokes every session of the user. */
    readonly resetPassword: (
      token: Redacted.Redacted<string>,
      next: Redacted.Redacted<string>,
      client: ClientMeta
    ) => Effect.Effect<void, Unauthorized | ValidationError | Failure>
    /** In-memory, for the authentication middleware (no query). */
    readonly sessionState: (id: string) => SessionState | undefined
    readonly countUsers: Effect.Effect<number, SqlError.SqlError>
  }
>() {}

interface UserRow {
  id: string
  email: string
  display_name: string
  role: Role
  password_hash: string
  created_at: Date
  disabled_at: Date | null
  password_changed_at: Date
  tokens_valid_after: Date
}

const userColumns = "id, email, display_name, role, password_hash, created_at, disabled_at, password_changed_at, tokens_valid_after"

const toUser = (row: UserRow) =>
  new AdminUser({
    id: row.id as UserId,
    email: row.email,
    displayName: row.display_name,
    role: row.role,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
    passwordChangedAt: row.password_changed_at
  })

export const sha256 = (text: string): Buffer => createHash("sha256").update(text).digest()

/** Lower-cased and trimmed, as stored. */
export const normalizeEmail = (email: string) => email.trim().toLowerCase()

const decodeEmail = Schema.decodeUnknownEither(Email)
const decodeNewPassword = Schema.decodeUnknownEither(NewPassword)

const userActor = (row: { id: string; email: string }): Actor => ({ kind: "user", id: row.id, label: row.email })

/** The budget's refusal as the admin API answers it (429 with the delay; the handler adds Retry-After). */
const tooManyRequests = (refused: SlowHashRefused) => {
  const seconds = Math.max(1, Math.ceil(refused.retryAfterMs / 1000))
  return new TooManyRequests({
    message:
      refused.reason === "budget"
        ? `too many password checks right now: retry in ${seconds} s`
        : `too many failed attempts from this address or for this account: retry in ${seconds} s`,
    retryAfterSeconds: seconds
  })
}

/** What a password check counts against: the client's address and the account (by email, known or not). */
const passwordSources = (email: string, client: ClientMeta): ReadonlyArray<Source> => [...ipSource(client.ip), { kind: "account", key: email }]

/** An unknown login: the attempted email is kept only if it looks like one (not a mistyped password). */
const unknownActor = (email: string): Actor => ({ kind: "user", id: null, label: /^[^\s@]{1,64}@[^\s@]{1,190}$/.test(email) ? email : null })

const refreshPrefix = "nxr_"
const resetPrefix = "nxp_"

export const make = Effect.gen(function* () {
  const config = yield* EngineConfig
  const sql = yield* SqlClient.SqlClient
  const audit = yield* Audit
  const accessTokens = yield* AccessTokens
  const mailer = yield* Mailer
  const budget = yield* SlowHashBudget
  const background = yield* FiberSet.make()
  const params = config.argon2Password
  const refreshTtlMs = Duration.toMillis(config.refreshTokenTtl)
  const resetTtlMs = Duration.toMillis(config.passwordResetTtl)

  // Hashing a new password follows a success (or an admin's request): trusted work, one at a time.
  const hashPassword = (password: Redacted.Redacted<string>) => budget.trusted("admin", hashSecret(Redacted.value(password), params))
  const dummyHash = yield* budget.trusted("admin", hashSecret(randomSecret(), params))
  /**
   * A password check for a caller not yet proved: admitted per address and account before `lookup`
   * (the query) runs, then verified in the admin lane. `accepted` says whether a right password
   * lets the request go on (a disabled account: no, which the budget charges like a failure).
   */
  const checkPassword = <Row, E>(
    email: string,
    client: ClientMeta,
    lookup: Effect.Effect<Row, E>,
    hashOf: (row: Row) => string | undefined,
    password: Redacted.Redacted<string>,
    accepted: (row: Row) => boolean
  ) =>
    Effect.gen(function* () {
      const admission = yield* Effect.mapError(budget.admit("admin", passwordSources(email, client)), tooManyRequests)
      const row = yield* lookup
      const hash = hashOf(row)
      // Verify even when there is no such user, against a hash of the same cost.
      const matches = yield* admission
        .verify(verifySecret(hash ?? dummyHash, Redacted.value(password)), (ok) =>
          !ok || hash === undefined ? "wrong_secret" : accepted(row) ? "accepted" : "refused"
        )
        .pipe(Effect.mapError(tooManyRequests))
      return { row, matches: matches && hash !== undefined }
    })

  // ------------------------------------------------------------------------------------------
  // In-memory session state (loaded now, updated after every change this process commits and at
  // every login or refresh, which read the row anyway)

  const sessions = new Map<string, SessionState>()
  const remember = (row: Pick<UserRow, "id" | "email" | "role" | "disabled_at" | "tokens_valid_after">) => {
    sessions.set(row.id, {
      email: row.email,
      role: row.role,
      disabled: row.disabled_at !== null,
      tokensValidAfterMs: row.tokens_valid_after.getTime()
    })
  }
  for (const row of yield* sql<UserRow>`select ${sql.literal(userColumns)} from admin_users`) remember(row)

  // ------------------------------------------------------------------------------------------
  // Sessions

  const newSession = (user: UserRow, familyId: string, client: ClientMeta, replacing?: string) =>
    Effect.gen(function* () {
      const id = `rt_${randomId(20)}`
      const refreshToken = `${refreshPrefix}${randomSecret()}`
      const expiresAt = new Date(Date.now() + refreshTtlMs)
      if (replacing !== undefined) {
        const rotated = yield* sql`update refresh_tokens set revoked_at = now(), last_used_at = now(), replaced_by = ${id}
          where id = ${replacing} and revoked_at is null returning id`
        if (rotated.length === 0) return Option.none()
      }
      yield* sql`insert into refresh_tokens (id, user_id, family_id, token_hash, expires_at, user_agent, ip)
        values (${id}, ${user.id}, ${familyId}, ${sha256(refreshToken)}, ${expiresAt}, ${client.userAgent?.slice(0, 300) ?? null}, ${client.ip})`
      const access = accessTokens.issue({ id: user.id as UserId, role: user.role })
      return Option.some(
        new Session({
          tokenType: "Bearer",
          accessToken: access.token,
          accessTokenExpiresAt: access.expiresAt,
          refreshToken,
          refreshTokenExpiresAt: expiresAt,
          user: toUser(user)
        })
      )
    })

  const revokeAllSessions = (userId: string) =>
    sql`update refresh_tokens set revoked_at = now() where user_id = ${userId} and revoked_at is null`

  const findUser = (id: string) =>
    Effect.flatMap(sql<UserRow>`select ${sql.literal(userColumns)} from admin_users where id = ${id}`, ([row]) =>
      row === undefined ? Effect.fail(new NotFound({ message: `no user ${id}` })) : Effect.succeed(row)
    )

  const checkNewPassword = (password: Redacted.Redacted<string>) =>
    decodeNewPassword(Redacted.value(password)).pipe(
      Effect.mapError(() => new ValidationError({ code: "WEAK_PASSWORD", message: "password must have 12 to 256 characters", issues: [] }))
    )

  // ------------------------------------------------------------------------------------------
  // Users

  const createUser = Effect.fn("Accounts.createUser")(function* (user: NewUser, context: AuditContext) {
    const email = normalizeEmail(user.email)
    yield* checkNewPassword(user.password)
    const passwordHash = yield* hashPassword(user.password)
    const id = `usr_${randomId(20)}`
    const row = yield* audit.inTransaction(
      context,
      { action: "user.create", target: { kind: "user", id }, detail: { email, role: user.role } },
      Effect.gen(function* () {
        const [row] = yield* sql<UserRow>`insert into admin_users (id, email, display_name, role, password_hash)
          values (${id}, ${email}, ${user.displayName}, ${user.role}, ${passwordHash})
          on conflict (email) do nothing returning ${sql.literal(userColumns)}`
        if (row === undefined) return yield* new Conflict({ code: "EMAIL_TAKEN", message: `a user with email ${email} exists` })
        return row
      })
    )
    remember(row)
    return toUser(row)
  })

  const listUsers = sql<UserRow>`select ${sql.literal(userColumns)} from admin_users order by created_at, id`.pipe(
    Effect.map((rows) => rows.map(toUser))
  )

  const getUser = (id: UserId) => Effect.map(findUser(id), toUser)

  /** Inside a transaction: locks the active owners and fails if `change` would leave none. */
  const keepAnOwner = (excluding: string) =>
    Effect.gen(function* () {
      const owners = yield* sql<{ id: string }>`select id from admin_users where role = 'owner' and disabled_at is null for update`
      if (owners.every((owner) => owner.id === excluding)) {
        return yield* new Conflict({ code: "LAST_OWNER", message: "this would leave no active owner" })
      }
    })

  const setRole = Effect.fn("Accounts.setRole")(function* (id: UserId, role: Role, context: AuditContext) {
    const row = yield* audit.inTransaction(
      context,
      { action: "user.role_change", target: { kind: "user", id }, detail: { role } },
      Effect.gen(function* () {
        const current = yield* findUser(id)
        if (current.role === "owner" && role !== "owner") yield* keepAnOwner(id)
        const [row] = yield* sql<UserRow>`update admin_users set role = ${role},
            tokens_valid_after = case when role = ${role} then tokens_valid_after else ${new Date()} end
          where id = ${id} returning ${sql.literal(userColumns)}`
        if (current.role !== role) yield* revokeAllSessions(id)
        return row!
      }),
      () => ({ detail: { role } })
    )
    remember(row)
    return toUser(row)
  })

  const setDisabled = Effect.fn("Accounts.setDisabled")(function* (id: UserId, disabled: boolean, context: AuditContext) {
    const row = yield* audit.inTransaction(
      context,
      { action: disabled ? "user.disable" : "user.enable", target: { kind: "user", id } },
      Effect.gen(function* () {
        if (disabled && context.actor.kind === "user" && context.actor.id === id) {
          return yield* new Conflict({ code: "SELF_CHANGE", message: "you cannot disable your own account" })
        }
        const current = yield* findUser(id)
        if (disabled && current.role === "owner") yield* keepAnOwner(id)
        const [row] = disabled
          ? yield* sql<UserRow>`update admin_users set disabled_at = coalesce(disabled_at, now()), tokens_valid_after = ${new Date()}
              where id = ${id} returning ${sql.literal(userColumns)}`
          : yield* sql<UserRow>`update admin_users set disabled_at = null where id = ${id} returning ${sql.literal(userColumns)}`
        if (disabled) yield* revokeAllSessions(id)
        return row!
      })
    )
    remember(row)
    return toUser(row)
  })

  // ------------------------------------------------------------------------------------------
  // Login, refresh, logout

  const login = Effect.fn("Accounts.login")(function* (
    credentials: { readonly email: string; readonly password: Redacted.Redacted<string> },
    client: ClientMeta
  ) {
    const email = normalizeEmail(credentials.email).slice(0, 254)
    const { row: user, matches } = yield* checkPassword(
      email,
      client,
      Effect.map(sql<UserRow>`select ${sql.literal(userColumns)} from admin_users where email = ${email}`, (rows) => rows[0]),
      (row) => row?.password_hash,
      credentials.password,
      (row) => row?.disabled_at === null
    )
    const context = { actor: user === undefined ? unknownActor(email) : userActor(user), sourceIp: client.ip }
    const refuse = (error: Unauthorized) =>
      Effect.zipRight(
        audit.record({ ...context, action: "auth.login", target: user && { kind: "user", id: user.id }, outcome: "failure", detail: { code: error.code } }),
        Effect.fail(error)
      )
    if (user === undefined || !matches) {
      return yield* refuse(new Unauthorized({ code: "INVALID_CREDENTIALS", message: "wrong email or password" }))
    }
    if (user.disabled_at !== null) return yield* refuse(new Unauthorized({ code: "ACCOUNT_DISABLED", message: "this account is disabled" }))
    remember(user)
    if (argon2.needsRehash(user.password_hash, params)) {
      const rehashed = yield* hashPassword(credentials.password)
      yield* sql`update admin_users set password_hash = ${rehashed} where id = ${user.id} and password_hash = ${user.password_hash}`
    }
    const session = yield* sql.withTransaction(
      newSession(user, `rf_${randomId(20)}`, client).pipe(
        Effect.tap(() => audit.record({ ...context, action: "auth.login", target: { kind: "user", id: user.id }, outcome: "success" }))
      )
    )
    return Option.getOrThrow(session)
  })

  const revokeFamily = (familyId: string) =>
    sql`update refresh_tokens set revoked_at = now() where family_id = ${familyId} and revoked_at is null`

  const refresh = Effect.fn("Accounts.refresh")(function* (refreshToken: Redacted.Redacted<string>, client: ClientMeta) {
    const invalid = new Unauthorized({ code: "REFRESH_TOKEN_INVALID", message: "refresh token is unknown, expired or revoked" })
    const token = Redacted.value(refreshToken)
    if (!token.startsWith(refreshPrefix)) return yield* invalid
    const [row] = yield* sql<
      UserRow & { token_id: string; family_id: string; expires_at: Date; revoked_at: Date | null; replaced_by: string | null }
    >`
      select rt.id as token_id, rt.family_id, rt.expires_at, rt.revoked_at, rt.replaced_by,
        u.id, u.email, u.display_name, u.role, u.password_hash, u.created_at, u.disabled_at, u.password_changed_at, u.tokens_valid_after
      from refresh_tokens rt join admin_users u on u.id = rt.user_id
      where rt.token_hash = ${sha256(token)}`
    if (row === undefined) return yield* invalid
    const context = { actor: userActor(row), sourceIp: client.ip }
    const reuse = Effect.gen(function* () {
      yield* revokeFamily(row.family_id)
      yield* audit.record({
        ...context,
        action: "auth.refresh_reuse",
        target: { kind: "user", id: row.id },
        outcome: "failure",
        detail: { family: row.family_id, code: "REFRESH_TOKEN_INVALID" }
      })
      yield* Effect.logWarning("a revoked refresh token was presented again: its session is revoked").pipe(
        Effect.annotateLogs({ module: "Accounts", userId: row.id, family: row.family_id, ip: client.ip })
      )
      return yield* invalid
    })
    // Rotated already (it has a successor): someone else holds a copy. Revoked otherwise (logout,
    // password change, disabled): merely invalid.
    if (row.revoked_at !== null) return yield* row.replaced_by !== null ? reuse : invalid
    if (row.expires_at.getTime() <= Date.now()) return yield* invalid
    if (row.disabled_at !== null) return yield* new Unauthorized({ code: "ACCOUNT_DISABLED", message: "this account is disabled" })
    remember(row)
    const session = yield* sql.withTransaction(newSession(row, row.family_id, client, row.token_id))
    // Lost a race with another use of the same token: that is a reuse too.
    if (Option.isNone(session)) return yield* reuse
    return session.value
  })

  const logout = Effect.fn("Accounts.logout")(function* (refreshToken: Redacted.Redacted<string>, client: ClientMeta) {
    const rows = yield* sql<{ user_id: string; email: string }>`
      update refresh_tokens rt set revoked_at = now()
      from admin_users u
      where u.id = rt.user_id and rt.revoked_at is null
        and rt.family_id = (select family_id from refresh_tokens where token_hash = ${sha256(Redacted.value(refreshToken))})
      returning rt.user_id, u.email`
    const [row] = rows
    if (row !== undefined) {
      yield* audit.record({
        actor: userActor({ id: row.user_id, email: row.email }),
        sourceIp: client.ip,
        action: "auth.logout",
        target: { kind: "user", id: row.user_id },
        outcome: "success"
      })
    }
  })

  // ------------------------------------------------------------------------------------------
  // Passwords

  /** Inside a transaction: new hash, every session revoked, older access tokens refused. */
  const replacePassword = (userId: string, passwordHash: string) =>
    Effect.gen(function* () {
      const [row] = yield* sql<UserRow>`update admin_users set password_hash = ${passwordHash}, password_changed_at = now(),
          tokens_valid_after = ${new Date()}
        where id = ${userId} returning ${sql.literal(userColumns)}`
      yield* revokeAllSessions(userId)
      return row!
    })

  const changePassword = Effect.fn("Accounts.changePassword")(function* (
    id: UserId,
    passwords: { readonly current: Redacted.Redacted<string>; readonly next: Redacted.Redacted<string> },
    client: ClientMeta
  ) {
    const user = yield* findUser(id).pipe(
      Effect.catchTag("NotFound", () => Effect.fail(new Unauthorized({ code: "SESSION_REVOKED", message: "unknown user" })))
    )
    const context = { actor: userActor(user), sourceIp: client.ip }
    const { matches } = yield* checkPassword(user.email, client, Effect.succeed(user), (row) => row.password_hash, passwords.current, () => true)
    if (!matches) {
      yield* audit.record({ ...context, action: "user.password_change", target: { kind: "user", id }, outcome: "failure", detail: { code: "WRONG_PASSWORD" } })
      return yield* new Forbidden({ code: "WRONG_PASSWORD", message: "the current password is wrong" })
    }
    yield* checkNewPassword(passwords.next)
    const passwordHash = yield* hashPassword(passwords.next)
    const session = yield* audit.inTransaction(
      context,
      { action: "user.password_change", target: { kind: "user", id } },
      Effect.flatMap(replacePassword(id, passwordHash), (row) => {
        remember(row)
        return newSession(row, `rf_${randomId(20)}`, client)
      })
    )
    return Option.getOrThrow(session)
  })

  const mailReset = (email: string, client: ClientMeta) =>
    Effect.gen(function* () {
      const [user] = yield* sql<UserRow>`select ${sql.literal(userColumns)} from admin_users where email = ${email} and disabled_at is null`
      if (user === undefined) {
        return yield* audit.record({
          actor: unknownActor(email),
          sourceIp: client.ip,
          action: "auth.password_reset_request",
          outcome: "failure",
          detail: { code: "NO_SUCH_ACTIVE_USER" }
        })
      }
      const token = `${resetPrefix}${randomSecret()}`
      const context = { actor: userActor(user), sourceIp: client.ip }
      yield* audit.inTransaction(
        context,
        { action: "auth.password_reset_request", target: { kind: "user", id: user.id } },
        Effect.gen(function* () {
          // Only the newest link works.
          yield* sql`update password_resets set used_at = now() where user_id = ${user.id} and used_at is null`
          yield* sql`insert into password_resets (id, user_id, token_hash, expires_at, requested_ip)
            values (${`pr_${randomId(20)}`}, ${user.id}, ${sha256(token)}, ${new Date(Date.now() + resetTtlMs)}, ${client.ip})`
        })
      )
      // A fragment, not a query: browsers do not send it to the console's server or in a Referer.
      const link = `${config.consoleOrigin.replace(/\/+$/, "")}/reset-password#token=${token}`
      const minutes = Math.round(resetTtlMs / 60_000)
      yield* mailer
        .send({
          to: user.email,
          subject: "Reset your NexMDM password",
          text: `Someone (hopefully you) asked to reset the password of the NexMDM account ${user.email}.\n\nOpen this link within ${minutes} minutes to choose a new password:\n\n${link}\n\nIf you did not ask for this, ignore this mail: your password stays as it is.\n`
        })
        .pipe(
          Effect.tapError((error) =>
            audit.record({ ...context, action: "auth.password_reset_mail", target: { kind: "user", id: user.id }, outcome: "failure", detail: { error: error.message } })
          )
        )
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logError("password reset mail not sent", cause).pipe(Effect.annotateLogs({ module: "Accounts" }))),
      Effect.withSpan("Accounts.mailReset")
    )

  const requestPasswordReset = (email: string, client: ClientMeta) =>
    FiberSet.run(background, mailReset(normalizeEmail(email).slice(0, 254), client)).pipe(Effect.asVoid)

  const resetPassword = Effect.fn("Accounts.resetPassword")(function* (
    token: Redacted.Redacted<string>,
    next: Redacted.Redacted<string>,
    client: ClientMeta
  ) {
    const invalid = new Unauthorized({ code: "RESET_TOKEN_INVALID", message: "reset link is unknown, used or expired" })
    const hash = sha256(Redacted.value(token))
    const [reset] = yield* sql<{ id: string; user_id: string; email: string }>`
      select pr.id, pr.user_id, u.email from password_resets pr join admin_users u on u.id = pr.user_id
      where pr.token_hash = ${hash} and pr.used_at is null and pr.expires_at > now() and u.disabled_at is null`
    if (reset === undefined) {
      yield* audit.record({ actor: { kind: "user", id: null, label: null }, sourceIp: client.ip, action: "auth.password_reset", outcome: "failure", detail: { code: invalid.code } })
      return yield* invalid
    }
    yield* checkNewPassword(next)
    const passwordHash = yield* hashPassword(next)
    const row = yield* audit.inTransaction(
      { actor: userActor({ id: reset.user_id, email: reset.email }), sourceIp: client.ip },
      { action: "auth.password_reset", target: { kind: "user", id: reset.user_id } },
      Effect.gen(function* () {
        // Conditional: of two requests racing with one token, one wins.
        const used = yield* sql`update password_resets set used_at = now() where id = ${reset.id} and used_at is null and expires_at > now() returning id`
        if (used.length === 0) return yield* invalid
        return yield* replacePassword(reset.user_id, passwordHash)
      })
    )
    remember(row)
  })

  // ------------------------------------------------------------------------------------------
  // Housekeeping: expired refresh tokens and reset links go after a day (revoked ones stay until
  // they expire, so a reused one is still recognised).
  yield* Effect.gen(function* () {
    yield* sql`delete from refresh_tokens where expires_at < now() - interval '1 day'`
    yield* sql`delete from password_resets where expires_at < now() - interval '1 day'`
  }).pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("admin session cleanup failed", cause).pipe(Effect.annotateLogs({ module: "Accounts" }))),
    Effect.repeat(Schedule.spaced(Duration.hours(1))),
    Effect.delay(Duration.minutes(1)),
    Effect.forkScoped
  )

  return Accounts.of({
    createUser,
    listUsers,
    getUser,
    setRole,
    setDisabled,
    login,
    refresh,
    logout,
    changePassword,
    requestPasswordReset,
    resetPassword,
    sessionState: (id) => sessions.get(id),
    countUsers: Effect.map(sql<{ n: number }>`select count(*)::int as n from admin_users`, ([row]) => row!.n)
  })
})

export const layer = Layer.scoped(Accounts, make)

/**
 * At start-up: with NEXMDM_OWNER_EMAIL and NEXMDM_OWNER_PASSWORD set and no user yet, creates that
 * owner. Without them and without users, says how to create one. Never a default password.
 */
export const bootstrapOwner = Effect.gen(function* () {
  const config = yield* EngineConfig
  const accounts = yield* Accounts
  const users = yield* accounts.countUsers
  const log = Effect.annotateLogs({ module: "Accounts" })
  if (Option.isSome(config.ownerEmail) !== Option.isSome(config.ownerPassword)) {
    return yield* Effect.dieMessage("NEXMDM_OWNER_EMAIL and NEXMDM_OWNER_PASSWORD go together: set both or neither")
  }
  if (Option.isNone(config.ownerEmail) || Option.isNone(config.ownerPassword)) {
    if (users === 0) {
      yield* Effect.logWarning(
        "no admin user yet: set NEXMDM_OWNER_EMAIL and NEXMDM_OWNER_PASSWORD, or run `npm run mdm -- users create --owner --email you@example.com --password-stdin`"
      ).pipe(log)
    }
    return
  }
  if (users > 0) return
  const email = decodeEmail(config.ownerEmail.value)
  if (email._tag === "Left") return yield* Effect.dieMessage("NEXMDM_OWNER_EMAIL is not an email address")
  if (decodeNewPassword(Redacted.value(config.ownerPassword.value))._tag === "Left") {
    return yield* Effect.dieMessage("NEXMDM_OWNER_PASSWORD must have 12 to 256 characters")
  }
  const owner = yield* accounts
    .createUser(
      { email: email.right, displayName: email.right, role: "owner", password: config.ownerPassword.value },
      { actor: systemActor("startup"), sourceIp: null }
    )
    .pipe(Effect.catchTag("Conflict", () => Effect.succeed(undefined)))
  if (owner !== undefined) yield* Effect.logInfo("created the first owner from NEXMDM_OWNER_EMAIL").pipe(log, Effect.annotateLogs({ email: owner.email }))
})
