/**
 * Handlers of `UsersGroup`. Beyond each route's requirement (AccessPolicy): only an owner creates,
 * disables or enables an admin or an owner.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Accounts } from "../Accounts.js"
import { AdminApi } from "../AdminApi.js"
import { auditContext, guarded, orInternal } from "../internal/handlers.js"
import { requireRole, type Role, type UserId } from "../Principal.js"

export const UsersGroupLive = HttpApiBuilder.group(AdminApi, "users", (handlers) =>
  Effect.gen(function* () {
    const accounts = yield* Accounts

    /** People above viewer are managed by owners only. */
    const mayManage = (role: Role, action: string, id?: UserId) =>
      role === "viewer" ? Effect.void : guarded(requireRole("owner"), { action, target: id === undefined ? undefined : { kind: "user", id }, detail: { role } })

    const setDisabled = (id: UserId, disabled: boolean) =>
      Effect.gen(function* () {
        const target = yield* accounts.getUser(id)
        yield* mayManage(target.role, disabled ? "user.disable" : "user.enable", id)
        return yield* accounts.setDisabled(id, disabled, yield* auditContext)
      }).pipe(orInternal)

    return handlers
      .handle("list", () => orInternal(accounts.listUsers))
      .handle("create", ({ payload }) =>
        Effect.gen(function* () {
          yield* mayManage(payload.role, "user.create")
          return yield* accounts.createUser(payload, yield* auditContext)
        }).pipe(orInternal)
      )
      .handle("setRole", ({ path, payload }) => orInternal(Effect.flatMap(auditContext, (context) => accounts.setRole(path.id, payload.role, context))))
      .handle("disable", ({ path }) => setDisabled(path.id, true))
      .handle("enable", ({ path }) => setDisabled(path.id, false))
  })
)
