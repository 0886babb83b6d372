/**
 * The admin API's data as Schemas: what requests carry and responses return. Imports only effect
 * (and our other wire modules), so the API definition can be shared with a client.
 * Passwords and tokens decode to `Redacted`, so they cannot end up in a log by accident; their
 * validation messages never repeat the value.
 */
import { Schema } from "effect"
import { ApiKeyId, Role, Scope, UserId } from "./Principal.js"

export const ActorKind = Schema.Literal("user", "api_key", "system")
export type ActorKind = typeof ActorKind.Type

export const Outcome = Schema.Literal("success", "failure")
export type Outcome = typeof Outcome.Type

/** Trimmed and lower-cased; at most 254 characters. */
export const Email = Schema.Trim.pipe(
  Schema.compose(Schema.Lowercase),
  Schema.maxLength(254),
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "expected an email address" })
).annotations({ identifier: "Email" })

/** A new password: 12 to 256 characters (checked without ever echoing it). */
export const NewPassword = Schema.Redacted(
  Schema.String.pipe(
    Schema.minLength(12, { message: () => "password must have at least 12 characters" }),
    Schema.maxLength(256, { message: () => "password must have at most 256 characters" })
  )
).annotations({ identifier: "NewPassword" })

/** A password being checked (login, current password): any non-empty string up to 1024 characters. */
export const PasswordInput = Schema.Redacted(
  Schema.String.pipe(
    Schema.minLength(1, { message: () => "password is required" }),
    Schema.maxLength(1024, { message: () => "password too long" })
  )
).annotations({ identifier: "PasswordInput" })

/** An opaque secret the client holds (refresh token, reset token). */
export const SecretToken = Schema.Redacted(
  Schema.String.pipe(Schema.minLength(1, { message: () => "token is required" }), Schema.maxLength(256, { message: () => "token too long" }))
)

export const DisplayName = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))

export class AdminUser extends Schema.Class<AdminUser>("AdminUser")({
  id: UserId,
  email: Schema.String,
  displayName: Schema.String,
  role: Role,
  createdAt: Schema.Date,
  disabledAt: Schema.NullOr(Schema.Date),
  passwordChangedAt: Schema.Date
}) {}

/** What login, refresh and a password change return. The refresh token is single-use. */
export class Session extends Schema.Class<Session>("Session")({
  tokenType: Schema.Literal("Bearer"),
  accessToken: Schema.String,
  accessTokenExpiresAt: Schema.Date,
  refreshToken: Schema.String,
  refreshTokenExpiresAt: Schema.Date,
  user: AdminUser
}) {}

export class ApiKeyInfo extends Schema.Class<ApiKeyInfo>("ApiKeyInfo")({
  id: ApiKeyId,
  name: Schema.String,
  /** The public part of the key ("nxk_<prefix>_..."), to recognise it. */
  prefix: Schema.String,
  scopes: Schema.Array(Scope),
  createdBy: Schema.NullOr(Schema.String),
  createdAt: Schema.Date,
  revokedAt: Schema.NullOr(Schema.Date),
  lastUsedAt: Schema.NullOr(Schema.Date),
  lastUsedIp: Schema.NullOr(Schema.String)
}) {}

export class CreatedApiKey extends Schema.Class<CreatedApiKey>("CreatedApiKey")({
  ...ApiKeyInfo.fields,
  /** The whole key, shown only in this response: the engine keeps a hash. */
  key: Schema.String
}) {}

export class AuditRecord extends Schema.Class<AuditRecord>("AuditRecord")({
  /** Increasing with time; also the pagination cursor. */
  id: Schema.String,
  at: Schema.Date,
  actorKind: ActorKind,
  actorId: Schema.NullOr(Schema.String),
  actorLabel: Schema.NullOr(Schema.String),
  action: Schema.String,
  targetKind: Schema.NullOr(Schema.String),
  targetId: Schema.NullOr(Schema.String),
  sourceIp: Schema.NullOr(Schema.String),
  outcome: Outcome,
  detail: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}) {}
