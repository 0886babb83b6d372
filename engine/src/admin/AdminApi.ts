/**
 * The admin REST API (`/api/v1`), as an @effect/platform `HttpApi`: the one place where its
 * groups are listed. The OpenAPI document (`/api/openapi.json`) and the reference page
 * (`/api/docs`) are generated from it.
 *
 * Adding a group (devices, alerts, ...):
 *   1. define it in `api/XGroup.ts` with `protectedGroup("x")` (Authentication + RateLimit);
 *   2. add it below;
 *   3. give each of its endpoints a requirement in `AccessPolicy.ts` (the compiler insists);
 *   4. implement it in `api/XGroupLive.ts` with `HttpApiBuilder.group(AdminApi, "x", ...)` and add
 *      that layer to `AdminApiLive.ts` (the compiler insists).
 * Every request and response is a Schema; every error a `Schema.TaggedError` from `AdminErrors.ts`
 * (or one with the same shape: status annotation, `code`, `message`).
 */
import { HttpApi, OpenApi } from "@effect/platform"
import { InternalError, PayloadTooLarge, ValidationError } from "./AdminErrors.js"
import { AlertsGroup } from "./api/AlertsGroup.js"
import { ApiKeysGroup } from "./api/ApiKeysGroup.js"
import { AuditGroup } from "./api/AuditGroup.js"
import { AuthGroup } from "./api/AuthGroup.js"
import { CommandsGroup } from "./api/CommandsGroup.js"
import { ConsoleGroup } from "./api/ConsoleGroup.js"
import { DevicesGroup } from "./api/DevicesGroup.js"
import { EnrollmentTokensGroup } from "./api/EnrollmentTokensGroup.js"
import { MeGroup } from "./api/MeGroup.js"
import { UsersGroup } from "./api/UsersGroup.js"
import { ProvisioningGroup } from "../provisioning/ProvisioningGroup.js"
import { ReleasesGroup } from "../releases/ReleasesGroup.js"
import { RolloutsGroup } from "../releases/RolloutsGroup.js"

export class AdminApi extends HttpApi.make("nexmdm-admin")
  .add(AuthGroup)
  .add(MeGroup)
  .add(UsersGroup)
  .add(ApiKeysGroup)
  .add(AuditGroup)
  .add(EnrollmentTokensGroup)
  .add(ProvisioningGroup)
  .add(DevicesGroup)
  .add(CommandsGroup)
  .add(AlertsGroup)
  .add(ConsoleGroup)
  .add(ReleasesGroup)
  .add(RolloutsGroup)
  .addError(ValidationError)
  .addError(PayloadTooLarge)
  .addError(InternalError)
  .prefix("/api/v1")
  .annotate(OpenApi.Title, "NexMDM admin API")
  .annotate(OpenApi.Version, "1")
  .annotate(
    OpenApi.Description,
    "REST API of the NexMDM admin plane. Authenticate with `Authorization: Bearer <access token>` (from /auth/login) " +
      "or `X-Admin-Key: <API key>`. Errors are JSON `{_tag, code, message}` with a stable `code`."
  ) {}
