/** Handlers of `EnrollmentTokensGroup`: the `Enrollment` service, each change audited in its transaction. */
import { HttpApiBuilder } from "@effect/platform"
import { Duration, Effect } from "effect"
import { Enrollment, type TokenInfo } from "../../Enrollment.js"
import { NotFound } from "../AdminErrors.js"
import { AdminApi } from "../AdminApi.js"
import { Audit } from "../Audit.js"
import { auditContext, orInternal } from "../internal/handlers.js"
import { CurrentPrincipal } from "../Principal.js"
import { CreatedEnrollmentToken, EnrollmentToken } from "./EnrollmentTokensGroup.js"

const stateOf = (token: TokenInfo, now: number): EnrollmentToken["state"] =>
  token.revokedAt !== null ? "revoked" : token.expiresAt.getTime() <= now ? "expired" : token.uses >= token.maxUses ? "used_up" : "active"

export const EnrollmentTokensGroupLive = HttpApiBuilder.group(AdminApi, "enrollmentTokens", (handlers) =>
  Effect.gen(function* () {
    const enrollment = yield* Enrollment
    const audit = yield* Audit
    return handlers
      .handle("list", () =>
        enrollment.listTokens.pipe(
          Effect.map((tokens) => {
            const now = Date.now()
            return tokens.map((token) => new EnrollmentToken({ ...token, state: stateOf(token, now) }))
          }),
          orInternal
        )
      )
      .handle("create", ({ payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const context = yield* auditContext
          const label = payload.label === undefined || payload.label === "" ? undefined : payload.label
          const token = yield* audit.inTransaction(
            context,
            { action: "enrollment_token.create", detail: { maxUses: payload.maxUses, expiresInSeconds: payload.expiresInSeconds, label: label ?? null, tags: payload.tags } },
            enrollment.createToken({
              expiresIn: Duration.seconds(payload.expiresInSeconds),
              maxUses: payload.maxUses,
              label,
              tags: payload.tags,
              createdBy: `${principal.kind}:${principal.id}`
            }),
            (created) => ({ target: { kind: "enrollment_token", id: created.id } })
          )
          return new CreatedEnrollmentToken({
            id: token.id,
            token: token.token,
            expiresAt: token.expiresAt,
            maxUses: token.maxUses,
            label: token.label,
            tags: [...new Set(payload.tags)]
          })
        }).pipe(orInternal)
      )
      .handle("revoke", ({ path }) =>
        Effect.gen(function* () {
          const context = yield* auditContext
          yield* audit.inTransaction(
            context,
            { action: "enrollment_token.revoke", target: { kind: "enrollment_token", id: path.id } },
            Effect.flatMap(enrollment.revokeToken(path.id), (revoked) =>
              revoked ? Effect.void : Effect.fail(new NotFound({ message: `no active enrollment token ${path.id}` }))
            )
          )
        }).pipe(orInternal)
      )
  })
)
