/**
 * People who use the console.
 *
 *   GET  /users               -> AdminUser[]
 *   POST /users               {email, displayName, role, password} -> 201 AdminUser
 *                             (admins create viewers; only an owner creates admins and owners)
 *   PUT  /users/:id/role      {role} -> AdminUser (owners only; never leaves no active owner)
 *   POST /users/:id/disable   -> AdminUser (revokes every session; not yourself, not the last owner;
 *                             only an owner disables an admin or an owner)
 *   POST /users/:id/enable    -> AdminUser
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Conflict, NotFound } from "../AdminErrors.js"
import { AdminUser, DisplayName, Email, NewPassword } from "../AdminModel.js"
import { Role, UserId } from "../Principal.js"
import { protectedGroup } from "./Middleware.js"

const id = HttpApiSchema.param("id", UserId)

export class UsersGroup extends protectedGroup("users")
  .add(HttpApiEndpoint.get("list", "/").addSuccess(Schema.Array(AdminUser)).annotate(OpenApi.Summary, "List users"))
  .add(
    HttpApiEndpoint.post("create", "/")
      .setPayload(Schema.Struct({ email: Email, displayName: DisplayName, role: Role, password: NewPassword }))
      .addSuccess(AdminUser, { status: 201 })
      .addError(Conflict)
      .annotate(OpenApi.Summary, "Create a user (only an owner creates admins and owners)")
  )
  .add(
    HttpApiEndpoint.put("setRole")`/${id}/role`
      .setPayload(Schema.Struct({ role: Role }))
      .addSuccess(AdminUser)
      .addError(NotFound)
      .addError(Conflict)
      .annotate(OpenApi.Summary, "Change a user's role (revokes their sessions)")
  )
  .add(
    HttpApiEndpoint.post("disable")`/${id}/disable`
      .addSuccess(AdminUser)
      .addError(NotFound)
      .addError(Conflict)
      .annotate(OpenApi.Summary, "Disable a user (revokes their sessions)")
  )
  .add(
    HttpApiEndpoint.post("enable")`/${id}/enable`.addSuccess(AdminUser).addError(NotFound).addError(Conflict).annotate(OpenApi.Summary, "Enable a user")
  )
  .prefix("/users")
  .annotate(OpenApi.Description, "People who use the console and the API.") {}
