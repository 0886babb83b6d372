/**
 * The caller's own account.
 *
 *   GET  /me           -> who is calling (a user with their account, or an API key with its scopes)
 *   POST /me/password  {currentPassword, newPassword} -> Session (every other session is revoked)
 */
import { HttpApiEndpoint, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { AdminUser, NewPassword, PasswordInput, Session } from "../AdminModel.js"
import { ApiKeyId, Scope } from "../Principal.js"
import { protectedGroup } from "./Middleware.js"

export const Me = Schema.Union(
  Schema.TaggedStruct("user", { user: AdminUser }),
  Schema.TaggedStruct("api_key", { id: ApiKeyId, name: Schema.String, scopes: Schema.Array(Scope) })
).annotations({ identifier: "Me" })

export class MeGroup extends protectedGroup("me")
  .add(HttpApiEndpoint.get("get", "/").addSuccess(Me).annotate(OpenApi.Summary, "Who is calling"))
  .add(
    HttpApiEndpoint.post("changePassword", "/password")
      .setPayload(Schema.Struct({ currentPassword: PasswordInput, newPassword: NewPassword }))
      .addSuccess(Session)
      .annotate(OpenApi.Summary, "Change your password (needs the current one); returns a new session and revokes the others")
  )
  .prefix("/me")
  .annotate(OpenApi.Description, "The caller's own account.") {}
