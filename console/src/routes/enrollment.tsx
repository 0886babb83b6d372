import { createResource, createSignal, For, Show } from "solid-js"
import { A } from "@solidjs/router"
import { Badge, Card, EmptyState, ErrorBanner, PageHeader, Skeleton, tableClass, tdClass, thClass } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { Dialog } from "../components/ui/Dialog"
import { Field, SelectField } from "../components/ui/Field"
import { toast, toastError } from "../components/ui/Toast"
import { ApiError, download, get, post, toApiError } from "../lib/api"
import { dateTime } from "../lib/format"
import type { CreatedEnrollmentToken, EnrollmentToken } from "../lib/model"
import { authorizedFetch, can } from "../lib/session"

const EXPIRIES = [
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "1 day" },
  { value: "604800", label: "7 days" },
  { value: "2592000", label: "30 days" }
]

const stateTone = { active: "green", expired: "slate", used_up: "amber", revoked: "red" } as const

/** POSTs the whole token to a provisioning route and returns the response (script text or QR image). */
const provisioning = async (id: string, route: string, token: string): Promise<Response> => {
  const response = await authorizedFetch(`/api/v1/enrollment-tokens/${id}/${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token })
  })
  if (!response.ok) throw toApiError(response.status, await response.json().catch(() => undefined))
  return response
}

export default function EnrollmentPage() {
  const [tokens, { refetch }] = createResource(() => get<Array<EnrollmentToken>>("/enrollment-tokens"))
  const [open, setOpen] = createSignal(false)
  const [created, setCreated] = createSignal<CreatedEnrollmentToken | undefined>(undefined)
  const [label, setLabel] = createSignal("")
  const [expiry, setExpiry] = createSignal("86400")
  const [maxUses, setMaxUses] = createSignal("1")
  const [tags, setTags] = createSignal("")
  const [error, setError] = createSignal<ApiError | undefined>(undefined)
  const [pending, setPending] = createSignal(false)
  const [qr, setQr] = createSignal<string | undefined>(undefined)
  const [provisionNote, setProvisionNote] = createSignal<string | undefined>(undefined)
  const [showDevices, setShowDevices] = createSignal<string | undefined>(undefined)
  const [tokenDevices] = createResource(showDevices, (id) =>
    get<Array<{ id: string; name: string | null; hardwareId: string; model: string | null; enrolledAt: string; retiredAt: string | null }>>(`/console/enrollment-tokens/${id}/devices`)
  )

  const create = async (event: SubmitEvent) => {
    event.preventDefault()
    setPending(true)
    setError(undefined)
    try {
      const uses = Number(maxUses())
      const tagList = tags()
        .split(/[\s,]+/)
        .filter((tag) => tag !== "")
      const token = await post<CreatedEnrollmentToken>("/enrollment-tokens", {
        expiresInSeconds: Number(expiry()),
        maxUses: Number.isInteger(uses) ? uses : maxUses(),
        ...(label().trim() === "" ? {} : { label: label().trim() }),
        ...(tagList.length === 0 ? {} : { tags: tagList })
      })
      setCreated(token)
      setQr(undefined)
      setProvisionNote(undefined)
      setOpen(false)
      setLabel("")
      setTags("")
      toast("success", "Enrollment token created", "Copy it now: it is shown only once.")
      void refetch()
      void loadQr(token)
    } catch (failure) {
      setError(failure as ApiError)
    } finally {
      setPending(false)
    }
  }

  const loadQr = async (token: CreatedEnrollmentToken) => {
    try {
      const response = await provisioning(token.id, "qr?format=svg", token.token)
      setQr(URL.createObjectURL(await response.blob()))
    } catch (failure) {
      const code = failure instanceof ApiError ? failure.code : ""
      setProvisionNote(
        code === "NO_AGENT_RELEASE"
          ? "No agent release is published yet: upload one on the Releases page to get a provisioning QR code and scripts."
          : `QR code unavailable: ${failure instanceof Error ? failure.message : String(failure)}`
      )
    }
  }

  const downloadScript = async (platform: "bash" | "powershell" | "cmd") => {
    const token = created()
    if (token === undefined) return
    try {
      const response = await provisioning(token.id, `script?platform=${platform}`, token.token)
      const extension = platform === "bash" ? "sh" : platform === "powershell" ? "ps1" : "cmd"
      download(`enrol-${token.id}.${extension}`, await response.text(), "text/plain")
    } catch (failure) {
      toastError("Could not make the script", failure)
    }
  }

  const copy = async (text: string) => {
    try {
      await navigator.clipboard.writeText(text)
      toast("success", "Copied to the clipboard")
    } catch {
      toast("info", "Select the token and copy it by hand")
    }
  }

  const revoke = async (id: string) => {
    try {
      await post(`/enrollment-tokens/${id}/revoke`)
      toast("success", "Token revoked")
      void refetch()
    } catch (failure) {
      toastError("Could not revoke", failure)
    }
  }

  return (
    <div>
      <PageHeader title="Enrollment" subtitle="Tokens devices enrol with: single-use or for a batch, with an expiry.">
        <Show when={can("admin")}>
          <Button onClick={() => setOpen(true)}>New token</Button>
        </Show>
      </PageHeader>

      <Show when={created()}>
        {(token) => (
          <div class="mb-4 rounded-lg border border-emerald-300 bg-emerald-50 p-4 dark:border-emerald-800 dark:bg-emerald-950" data-testid="created-token">
            <p class="mb-2 text-sm font-medium">Token {token().label ?? token().id} — shown only now. It expires {dateTime(token().expiresAt)} and works {token().maxUses} time(s).</p>
            <div class="flex flex-wrap items-center gap-2">
              <code class="rounded bg-white px-2 py-1 font-mono text-sm break-all dark:bg-slate-900" data-testid="token-secret">
                {token().token}
              </code>
              <Button size="sm" variant="secondary" onClick={() => void copy(token().token)}>
                Copy token
              </Button>
              <Button size="sm" variant="secondary" onClick={() => void downloadScript("bash")}>
                Bash script
              </Button>
              <Button size="sm" variant="secondary" onClick={() => void downloadScript("powershell")}>
                PowerShell script
              </Button>
              <Button size="sm" variant="secondary" onClick={() => void downloadScript("cmd")}>
                Windows .cmd
              </Button>
              <Button size="sm" variant="ghost" onClick={() => setCreated(undefined)}>
                Done
              </Button>
            </div>
            <Show when={qr()}>
              {(url) => <img src={url()} alt="Provisioning QR code: scan it on a factory-reset device" class="mt-3 size-48 rounded bg-white p-2" data-testid="token-qr" />}
            </Show>
            <Show when={provisionNote()}>
              <p class="mt-2 text-xs text-slate-600 dark:text-slate-300">{provisionNote()}</p>
            </Show>
          </div>
        )}
      </Show>

      <Show when={!tokens.error} fallback={<ErrorBanner message={String(tokens.error?.message)} onRetry={() => void refetch()} />}>
        <Show when={!tokens.loading || tokens() !== undefined} fallback={<Skeleton rows={4} />}>
          <Show when={(tokens() ?? []).length > 0} fallback={<EmptyState title="No enrollment tokens yet">Create one, then run its script or scan its QR code on a device.</EmptyState>}>
            <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
              <table class={tableClass} data-testid="token-table">
                <thead>
                  <tr>
                    <th class={thClass}>Label</th>
                    <th class={thClass}>State</th>
                    <th class={thClass}>Used</th>
                    <th class={thClass}>Expires</th>
                    <th class={thClass}>Created</th>
                    <th class={thClass} />
                  </tr>
                </thead>
                <tbody>
                  <For each={tokens()}>
                    {(token) => (
                      <tr class="border-t border-slate-100 dark:border-slate-800" data-token-id={token.id}>
                        <td class={tdClass}>
                          <div class="font-medium">{token.label ?? "—"}</div>
                          <div class="font-mono text-xs text-slate-500">{token.id}</div>
                          <Show when={token.tags.length > 0}>
                            <div class="mt-1 flex flex-wrap gap-1" data-token-tags>
                              <For each={token.tags}>{(tag) => <Badge>{tag}</Badge>}</For>
                            </div>
                          </Show>
                        </td>
                        <td class={tdClass}>
                          <Badge tone={stateTone[token.state]}>{token.state.replace("_", " ")}</Badge>
                        </td>
                        <td class={`${tdClass} tabular-nums`}>
                          {token.uses} / {token.maxUses}
                        </td>
                        <td class={`${tdClass} text-xs`}>{dateTime(token.expiresAt)}</td>
                        <td class={`${tdClass} text-xs`}>{dateTime(token.createdAt)}</td>
                        <td class={`${tdClass} whitespace-nowrap`}>
                          <Show when={token.uses > 0}>
                            <Button size="sm" variant="ghost" onClick={() => setShowDevices(showDevices() === token.id ? undefined : token.id)}>
                              {showDevices() === token.id ? "Hide devices" : "Devices"}
                            </Button>
                          </Show>
                          <Show when={can("admin") && token.state === "active"}>
                            <Button size="sm" variant="ghost" onClick={() => void revoke(token.id)}>
                              Revoke
                            </Button>
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
      </Show>

      <Show when={showDevices()}>
        {(id) => (
          <Card title={`Devices enrolled with ${id()}`} class="mt-4">
            <Show when={tokenDevices() !== undefined} fallback={<Skeleton rows={3} />}>
              <Show when={tokenDevices()!.length > 0} fallback={<EmptyState title="No device enrolled with this token" />}>
                <table class={tableClass} data-testid="token-devices">
                  <tbody>
                    <For each={tokenDevices()}>
                      {(device) => (
                        <tr class="border-t border-slate-100 dark:border-slate-800">
                          <td class={tdClass}>
                            <A href={`/devices/${device.id}`} class="text-indigo-700 hover:underline dark:text-indigo-300">
                              {device.name ?? device.id}
                            </A>
                          </td>
                          <td class={`${tdClass} text-xs`}>{device.model ?? "—"}</td>
                          <td class={`${tdClass} font-mono text-xs`}>{device.hardwareId}</td>
                          <td class={`${tdClass} text-xs`}>enrolled {dateTime(device.enrolledAt)}</td>
                          <td class={tdClass}>{device.retiredAt === null ? null : <Badge tone="red">retired</Badge>}</td>
                        </tr>
                      )}
                    </For>
                  </tbody>
                </table>
              </Show>
            </Show>
          </Card>
        )}
      </Show>

      <Dialog open={open()} onOpenChange={setOpen} title="New enrollment token">
        <form class="flex flex-col gap-3" onSubmit={create} noValidate>
          <Field label="Label" name="label" value={label()} onInput={setLabel} placeholder="Warehouse tablets, batch 3" error={error()?.fieldError("label")} />
          <SelectField label="Expires after" name="expiry" value={expiry()} options={EXPIRIES} onChange={setExpiry} />
          <Field label="Device limit" name="maxUses" type="number" value={maxUses()} onInput={setMaxUses} description="How many devices may enrol with it." error={error()?.fieldError("maxUses")} />
          <Field
            label="Tags to apply"
            name="tags"
            value={tags()}
            onInput={setTags}
            placeholder="warehouse-3 channel:beta"
            description="Every device enrolled with this token gets these tags (space or comma separated)."
            error={error()?.fieldError("tags")}
          />
          <Show when={error() !== undefined && error()!.issues.length === 0}>
            <p class="text-sm text-red-600">{error()!.message}</p>
          </Show>
          <div>
            <Button type="submit" pending={pending()}>
              Create token
            </Button>
          </div>
        </form>
      </Dialog>
    </div>
  )
}
