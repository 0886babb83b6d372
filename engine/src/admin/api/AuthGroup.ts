/**
 * Sign-in and password reset: the routes anyone may call (strict per-IP rate limit).
 *
 *   POST /auth/login                   {email, password} -> Session
 *   POST /auth/refresh                 {refreshToken} -> Session (the token is single-use)
 *   POST /auth/logout                  {refreshToken} -> 204 (revokes that login's session)
 *   POST /auth/password-reset          {email} -> 202 whatever the email (a link is mailed if it exists)
 *   POST /auth/password-reset/confirm  {token, password} -> 204
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Unauthorized } from "../AdminErrors.js"
import { NewPassword, PasswordInput, SecretToken, Session } from "../AdminModel.js"
import { publicGroup } from "./Middleware.js"

/** Not validated as an email: a login must not say why it failed. */
const LoginEmail = Schema.String.pipe(Schema.maxLength(320))

export class AuthGroup extends publicGroup("auth")
  .add(
    HttpApiEndpoint.post("login", "/login")
      .setPayload(Schema.Struct({ email: LoginEmail, password: PasswordInput }))
      .addSuccess(Session)
      .addError(Unauthorized)
      .annotate(OpenApi.Summary, "Sign in with email and password")
  )
  .add(
    HttpApiEndpoint.post("refresh", "/refresh")
      .setPayload(Schema.Struct({ refreshToken: SecretToken }))
      .addSuccess(Session)
      .addError(Unauthorized)
      .annotate(OpenApi.Summary, "Exchange a refresh token for a new session (the old token stops working)")
  )
  .add(
    HttpApiEndpoint.post("logout", "/logout")
      .setPayload(Schema.Struct({ refreshToken: SecretToken }))
      .addSuccess(HttpApiSchema.NoContent)
      .annotate(OpenApi.Summary, "Revoke the session of this refresh token")
  )
  .add(
    HttpApiEndpoint.post("requestPasswordReset", "/password-reset")
      .setPayload(Schema.Struct({ email: LoginEmail }))
      .addSuccess(HttpApiSchema.Accepted)
      .annotate(OpenApi.Summary, "Mail a password reset link (answers 202 whether or not the account exists)")
  )
  .add(
    HttpApiEndpoint.post("resetPassword", "/password-reset/confirm")
      .setPayload(Schema.Struct({ token: SecretToken, password: NewPassword }))
      .addSuccess(HttpApiSchema.NoContent)
      .addError(Unauthorized)
      .annotate(OpenApi.Summary, "Set a new password with the token from the reset mail (single use)")
  )
  .prefix("/auth")
  .annotate(OpenApi.Description, "Sign-in, sessions and password reset. No credentials needed; strict rate limit per IP.") {}
