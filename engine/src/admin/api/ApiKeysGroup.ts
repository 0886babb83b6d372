/**
 * API keys for automation (owners only; keys cannot manage keys).
 *
 *   GET  /api-keys              -> ApiKeyInfo[]
 *   POST /api-keys              {name, scopes} -> 201 CreatedApiKey (the key is shown only here)
 *   POST /api-keys/:id/revoke   -> ApiKeyInfo
 */
import { HttpApiEndpoint, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Conflict, NotFound } from "../AdminErrors.js"
import { ApiKeyInfo, CreatedApiKey } from "../AdminModel.js"
import { ApiKeyId, Scope } from "../Principal.js"
import { protectedGroup } from "./Middleware.js"

export class ApiKeysGroup extends protectedGroup("apiKeys")
  .add(HttpApiEndpoint.get("list", "/").addSuccess(Schema.Array(ApiKeyInfo)).annotate(OpenApi.Summary, "List API keys (never their secrets)"))
  .add(
    HttpApiEndpoint.post("create", "/")
      .setPayload(Schema.Struct({ name: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(100)), scopes: Schema.NonEmptyArray(Scope) }))
      .addSuccess(CreatedApiKey, { status: 201 })
      .annotate(OpenApi.Summary, "Create an API key; the response holds the key, shown only once")
  )
  .add(
    HttpApiEndpoint.post("revoke")`/${HttpApiSchema.param("id", ApiKeyId)}/revoke`
      .addSuccess(ApiKeyInfo)
      .addError(NotFound)
      .addError(Conflict)
      .annotate(OpenApi.Summary, "Revoke an API key (at once)")
  )
  .prefix("/api-keys")
  .annotate(OpenApi.Description, "Keys for automation, sent as X-Admin-Key. Owners only.") {}
