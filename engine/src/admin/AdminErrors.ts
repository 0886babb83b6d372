/**
 * Every error the admin API answers with. Each is a `Schema.TaggedError` with its HTTP status and a
 * stable, machine-readable `code` (clients branch on `code`; `message` is for people), e.g.
 *
 *   401 {"_tag":"Unauthorized","code":"TOKEN_EXPIRED","message":"access token expired"}
 *
 * The services of the admin plane fail with these directly when the failure is the caller's (bad
 * credentials, missing rights, unknown id); infrastructure failures (SQL, hashing) stay internal
 * and reach the wire as `InternalError` (logged, never described).
 */
import { HttpApiSchema } from "@effect/platform"
import { Schema } from "effect"

/** A `code` field: one of `codes`, defaulting to the first when constructed without one. */
const codeField = <const Codes extends readonly [string, ...Array<string>]>(...codes: Codes) =>
  Schema.Literal(...codes).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => codes[0] as Codes[0])
  )

export const ValidationIssue = Schema.Struct({
  /** Where in the request, e.g. ["email"]. */
  path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
  message: Schema.String
}).annotations({ identifier: "ValidationIssue" })

/** 400: the request did not match its schema (body, path, query) or was not JSON. */
export class ValidationError extends Schema.TaggedError<ValidationError>()(
  "ValidationError",
  {
    code: codeField("VALIDATION_FAILED", "MALFORMED_JSON", "WEAK_PASSWORD"),
    message: Schema.String,
    issues: Schema.optionalWith(Schema.Array(ValidationIssue), { default: () => [] })
  },
  HttpApiSchema.annotations({ status: 400, description: "The request does not match its schema" })
) {}

/** 401: no credentials, or credentials that are wrong, expired or revoked. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  {
    code: codeField(
      "UNAUTHORIZED",
      "INVALID_CREDENTIALS",
      "TOKEN_INVALID",
      "TOKEN_EXPIRED",
      "SESSION_REVOKED",
      "ACCOUNT_DISABLED",
      "API_KEY_INVALID",
      "API_KEY_REVOKED",
      "REFRESH_TOKEN_INVALID",
      "RESET_TOKEN_INVALID"
    ),
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 401, description: "Missing, wrong, expired or revoked credentials" })
) {}

/** 403: authenticated, but this principal may not do this. */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  {
    code: codeField("FORBIDDEN", "INSUFFICIENT_ROLE", "INSUFFICIENT_SCOPE", "USERS_ONLY", "WRONG_PASSWORD"),
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 403, description: "The principal lacks the role or scope this needs" })
) {}

export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { code: codeField("NOT_FOUND"), message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No such resource" })
) {}

/** 409: the change conflicts with the current state. */
export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  { code: codeField("CONFLICT", "EMAIL_TAKEN", "LAST_OWNER", "SELF_CHANGE", "ALREADY_REVOKED"), message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "The change conflicts with the current state" })
) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { code: codeField("PAYLOAD_TOO_LARGE"), message: Schema.String },
  HttpApiSchema.annotations({ status: 413, description: "Request body over the limit" })
) {}

/** 429, with a `Retry-After` header (seconds) and the same figure in the body. */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  { code: codeField("RATE_LIMITED"), message: Schema.String, retryAfterSeconds: Schema.Int },
  HttpApiSchema.annotations({ status: 429, description: "Rate limit of this source IP reached; see Retry-After" })
) {}

/** 500: logged on the server with its cause; the body says nothing more. */
export class InternalError extends Schema.TaggedError<InternalError>()(
  "InternalError",
  { code: codeField("INTERNAL"), message: Schema.String },
  HttpApiSchema.annotations({ status: 500, description: "Unexpected failure (logged)" })
) {}

export const internalError = () => new InternalError({ message: "internal error" })
