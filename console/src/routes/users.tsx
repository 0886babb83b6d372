import { createResource, createSignal, For, Show } from "solid-js"
import { Badge, Card, EmptyState, ErrorBanner, PageHeader, Skeleton, tableClass, tdClass, Tabs, thClass } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { Checkbox } from "../components/ui/Checkbox"
import { Dialog } from "../components/ui/Dialog"
import { Field, SelectField } from "../components/ui/Field"
import { toast, toastError } from "../components/ui/Toast"
import { ApiError, get, post, put } from "../lib/api"
import { dateTime } from "../lib/format"
import type { AdminUser, ApiKeyInfo, Role } from "../lib/model"
import { can, user } from "../lib/session"

const SCOPES = ["read", "devices:write", "commands:send", "apk:upload", "tokens:write", "admin"]

export default function UsersPage() {
  const [tab, setTab] = createSignal("users")
  return (
    <div>
      <PageHeader title="Users and API keys" />
      <Show when={can("owner")}>
        <Tabs value={tab()} onChange={setTab} tabs={[{ value: "users", label: "Users" }, { value: "keys", label: "API keys" }]} />
      </Show>
      <Show when={tab() === "users"} fallback={<ApiKeys />}>
        <Users />
      </Show>
    </div>
  )
}

function Users() {
  const [users, { refetch }] = createResource(() => get<Array<AdminUser>>("/users"))
  const [open, setOpen] = createSignal(false)
  const [form, setForm] = createSignal({ email: "", displayName: "", role: "viewer", password: "" })
  const [error, setError] = createSignal<ApiError | undefined>(undefined)
  const [pending, setPending] = createSignal(false)
  const set = (key: string, value: string) => setForm({ ...form(), [key]: value })

  const create = async (event: SubmitEvent) => {
    event.preventDefault()
    setPending(true)
    setError(undefined)
    try {
      await post<AdminUser>("/users", form())
      toast("success", `User ${form().email} created`)
      setOpen(false)
      setForm({ email: "", displayName: "", role: "viewer", password: "" })
      void refetch()
    } catch (failure) {
      setError(failure as ApiError)
    } finally {
      setPending(false)
    }
  }
  const act = async (label: string, run: () => Promise<unknown>) => {
    try {
      await run()
      toast("success", label)
      void refetch()
    } catch (failure) {
      toastError(`Could not ${label.toLowerCase()}`, failure)
    }
  }

  return (
    <>
      <Show when={can("admin")}>
        <div class="mb-3">
          <Button onClick={() => setOpen(true)}>New user</Button>
        </div>
      </Show>
      <Show when={!users.error} fallback={<ErrorBanner message={String(users.error?.message)} onRetry={() => void refetch()} />}>
        <Show when={users() !== undefined} fallback={<Skeleton rows={4} />}>
          <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <table class={tableClass} data-testid="users-table">
              <thead>
                <tr>
                  <th class={thClass}>User</th>
                  <th class={thClass}>Role</th>
                  <th class={thClass}>State</th>
                  <th class={thClass}>Created</th>
                  <th class={thClass} />
                </tr>
              </thead>
              <tbody>
                <For each={users()}>
                  {(row) => (
                    <tr class="border-t border-slate-100 dark:border-slate-800">
                      <td class={tdClass}>
                        <div class="font-medium">{row.displayName}</div>
                        <div class="text-xs text-slate-500">{row.email}</div>
                      </td>
                      <td class={tdClass}>
                        <Show when={can("owner") && row.id !== user()?.id} fallback={<Badge tone="indigo">{row.role}</Badge>}>
                          <select
                            aria-label={`Role of ${row.email}`}
                            class="rounded border border-slate-300 bg-white px-2 py-1 text-xs dark:border-slate-600 dark:bg-slate-900"
                            value={row.role}
                            onChange={(e) => void act("Role changed", () => put(`/users/${row.id}/role`, { role: e.currentTarget.value as Role }))}
                          >
                            <option value="viewer">viewer</option>
                            <option value="admin">admin</option>
                            <option value="owner">owner</option>
                          </select>
                        </Show>
                      </td>
                      <td class={tdClass}>{row.disabledAt === null ? <Badge tone="green">active</Badge> : <Badge tone="red">disabled</Badge>}</td>
                      <td class={`${tdClass} text-xs`}>{dateTime(row.createdAt)}</td>
                      <td class={tdClass}>
                        <Show when={can("admin") && row.id !== user()?.id}>
                          <Show
                            when={row.disabledAt === null}
                            fallback={
                              <Button size="sm" variant="ghost" onClick={() => void act("User enabled", () => post(`/users/${row.id}/enable`))}>
                                Enable
                              </Button>
                            }
                          >
                            <Button size="sm" variant="ghost" onClick={() => void act("User disabled", () => post(`/users/${row.id}/disable`))}>
                              Disable
                            </Button>
                          </Show>
                        </Show>
                      </td>
                    </tr>
                  )}
                </For>
              </tbody>
            </table>
          </div>
        </Show>
      </Show>
      <Dialog open={open()} onOpenChange={setOpen} title="New user" description="Admins create viewers; only an owner creates admins and owners.">
        <form class="flex flex-col gap-3" onSubmit={create} noValidate>
          <Field label="Email" name="email" type="email" value={form().email} onInput={(v) => set("email", v)} error={error()?.fieldError("email") ?? (error()?.code === "EMAIL_TAKEN" ? "this email has an account already" : undefined)} />
          <Field label="Name" name="displayName" value={form().displayName} onInput={(v) => set("displayName", v)} error={error()?.fieldError("displayName")} />
          <SelectField
            label="Role"
            name="role"
            value={form().role}
            onChange={(v) => set("role", v)}
            options={(can("owner") ? ["viewer", "admin", "owner"] : ["viewer"]).map((role) => ({ value: role, label: role }))}
          />
          <Field label="Initial password" name="password" type="password" value={form().password} onInput={(v) => set("password", v)} description="At least 12 characters; they can change it." error={error()?.fieldError("password")} />
          <Show when={error() !== undefined && error()!.issues.length === 0 && error()!.code !== "EMAIL_TAKEN"}>
            <p class="text-sm text-red-600">{error()!.message}</p>
          </Show>
          <div>
            <Button type="submit" pending={pending()}>
              Create user
            </Button>
          </div>
        </form>
      </Dialog>
    </>
  )
}

function ApiKeys() {
  const [keys, { refetch }] = createResource(() => get<Array<ApiKeyInfo>>("/api-keys"))
  const [name, setName] = createSignal("")
  const [scopes, setScopes] = createSignal<ReadonlyArray<string>>(["read"])
  const [created, setCreated] = createSignal<string | undefined>(undefined)
  const [error, setError] = createSignal<ApiError | undefined>(undefined)
  const create = async (event: SubmitEvent) => {
    event.preventDefault()
    setError(undefined)
    try {
      const key = await post<ApiKeyInfo & { key: string }>("/api-keys", { name: name(), scopes: scopes() })
      setCreated(key.key)
      setName("")
      void refetch()
    } catch (failure) {
      setError(failure as ApiError)
    }
  }
  return (
    <div class="grid gap-4 lg:grid-cols-3">
      <Card title="New API key">
        <form class="flex flex-col gap-3" onSubmit={create} noValidate>
          <Field label="Name" name="name" value={name()} onInput={setName} error={error()?.fieldError("name")} />
          <fieldset class="flex flex-col gap-1">
            <legend class="mb-1 text-sm font-medium">Scopes</legend>
            <For each={SCOPES}>
              {(scope) => (
                <Checkbox
                  label={scope}
                  checked={scopes().includes(scope)}
                  onChange={(on) => setScopes(on ? [...scopes(), scope] : scopes().filter((s) => s !== scope))}
                />
              )}
            </For>
            <Show when={error()?.fieldError("scopes")}>
              <p class="text-xs text-red-600">{error()?.fieldError("scopes")}</p>
            </Show>
          </fieldset>
          <div>
            <Button type="submit">Create key</Button>
          </div>
          <Show when={created()}>
            <p class="text-xs">Copy it now, it is shown only once:</p>
            <code class="rounded bg-slate-100 p-2 font-mono text-xs break-all dark:bg-slate-800">{created()}</code>
          </Show>
        </form>
      </Card>
      <Card title="Keys" class="lg:col-span-2">
        <Show when={keys() !== undefined} fallback={<Skeleton rows={3} />}>
          <Show when={keys()!.length > 0} fallback={<EmptyState title="No API keys" />}>
            <table class={tableClass}>
              <tbody>
                <For each={keys()}>
                  {(key) => (
                    <tr class="border-t border-slate-100 dark:border-slate-800">
                      <td class={tdClass}>
                        <div class="font-medium">{key.name}</div>
                        <div class="font-mono text-xs text-slate-500">{key.prefix}</div>
                      </td>
                      <td class={`${tdClass} text-xs`}>{key.scopes.join(", ")}</td>
                      <td class={`${tdClass} text-xs`}>last used {dateTime(key.lastUsedAt)}</td>
                      <td class={tdClass}>
                        <Show when={key.revokedAt === null} fallback={<Badge tone="red">revoked</Badge>}>
                          <Button
                            size="sm"
                            variant="ghost"
                            onClick={async () => {
                              try {
                                await post(`/api-keys/${key.id}/revoke`)
                                toast("success", "Key revoked")
                                void refetch()
                              } catch (failure) {
                                toastError("Could not revoke", failure)
                              }
                            }}
                          >
                            Revoke
                          </Button>
                        </Show>
                      </td>
                    </tr>
                  )}
                </For>
              </tbody>
            </table>
          </Show>
        </Show>
      </Card>
    </div>
  )
}
