import { A } from "@solidjs/router"
import { createResource, createSignal, For, Show } from "solid-js"
import { Badge, Card, EmptyState, ErrorBanner, PageHeader, Skeleton, tableClass, tdClass, Tabs, thClass } from "../components/ui/Bits"
import { Button } from "../components/ui/Button"
import { Checkbox } from "../components/ui/Checkbox"
import { Dialog } from "../components/ui/Dialog"
import { Field, SelectField } from "../components/ui/Field"
import { toast, toastError } from "../components/ui/Toast"
import { ApiError, del, get, patch, post } from "../lib/api"
import { dateTime } from "../lib/format"
import type { AlertRule, Page } from "../lib/model"
import { can } from "../lib/session"

/** Each rule kind's one parameter, as the rules editor asks for it. */
const KINDS: Record<string, { readonly label: string; readonly param?: { readonly name: string; readonly label: string; readonly fallback: string } }> = {
  device_offline: { label: "Device offline", param: { name: "minutes", label: "Offline for at least (minutes)", fallback: "10" } },
  battery_low: { label: "Battery low", param: { name: "belowPct", label: "Battery below (%)", fallback: "15" } },
  write_backlog: { label: "Write backlog", param: { name: "rows", label: "Rows waiting above", fallback: "100000" } },
  command_failed: { label: "Command failed" },
  token_used: { label: "Enrollment token used" }
}

export default function AlertsPage() {
  const [tab, setTab] = createSignal("open")
  return (
    <div>
      <PageHeader title="Alerts" />
      <Tabs value={tab()} onChange={setTab} tabs={[{ value: "open", label: "Open" }, { value: "resolved", label: "Resolved" }, { value: "rules", label: "Rules" }]} />
      <Show when={tab() === "rules"} fallback={<AlertList state={tab() as "open" | "resolved"} />}>
        <Rules />
      </Show>
    </div>
  )
}

function AlertList(props: { readonly state: "open" | "resolved" }) {
  const [alerts, { refetch }] = createResource(() => props.state, (state) => get<Page<any>>("/alerts", { state, limit: 200 }))
  return (
    <Show when={!alerts.error} fallback={<ErrorBanner message={String(alerts.error?.message)} onRetry={() => void refetch()} />}>
      <Show when={alerts() !== undefined} fallback={<Skeleton rows={4} />}>
        <Show when={alerts()!.items.length > 0} fallback={<EmptyState title={props.state === "open" ? "No open alerts: all quiet" : "No resolved alerts"} />}>
          <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <table class={tableClass}>
              <thead>
                <tr>
                  <th class={thClass}>Alert</th>
                  <th class={thClass}>Device</th>
                  <th class={thClass}>Opened</th>
                  <th class={thClass}>Count</th>
                  <th class={thClass} />
                </tr>
              </thead>
              <tbody>
                <For each={alerts()!.items}>
                  {(alert) => (
                    <tr class="border-t border-slate-100 dark:border-slate-800">
                      <td class={tdClass}>
                        <Badge tone={props.state === "open" ? "red" : "slate"}>{String(alert.kind)}</Badge>
                        <div class="mt-1">{String(alert.summary)}</div>
                      </td>
                      <td class={tdClass}>
                        <Show when={alert.deviceId} fallback="—">
                          <A href={`/devices/${alert.deviceId}`} class="text-indigo-700 hover:underline dark:text-indigo-300">
                            {String(alert.deviceId)}
                          </A>
                        </Show>
                      </td>
                      <td class={`${tdClass} text-xs`}>{dateTime(alert.openedAt)}</td>
                      <td class={`${tdClass} tabular-nums`}>{String(alert.count)}</td>
                      <td class={tdClass}>
                        <Show when={props.state === "open" && can("admin")}>
                          <Button
                            size="sm"
                            variant="ghost"
                            onClick={async () => {
                              try {
                                await post(`/alerts/${alert.id}/resolve`)
                                toast("success", "Alert resolved")
                                void refetch()
                              } catch (failure) {
                                toastError("Could not resolve", failure)
                              }
                            }}
                          >
                            Resolve
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
  )
}

function Rules() {
  const [rules, { refetch }] = createResource(() => get<Array<AlertRule>>("/alerts/rules"))
  const [open, setOpen] = createSignal(false)
  const [name, setName] = createSignal("")
  const [kind, setKind] = createSignal("device_offline")
  const [param, setParam] = createSignal("")
  const [recipients, setRecipients] = createSignal("")
  const [error, setError] = createSignal<ApiError | undefined>(undefined)
  /** The rule being edited; undefined while the dialog creates a new one. */
  const [editing, setEditing] = createSignal<AlertRule | undefined>(undefined)

  const startCreate = () => {
    setEditing(undefined)
    setName("")
    setKind("device_offline")
    setParam("")
    setRecipients("")
    setError(undefined)
    setOpen(true)
  }
  const startEdit = (rule: AlertRule) => {
    const spec = KINDS[rule.kind]
    setEditing(rule)
    setName(rule.name)
    setKind(rule.kind)
    setParam(spec?.param === undefined ? "" : String((rule.params as Record<string, unknown>)[spec.param.name] ?? ""))
    setRecipients(((rule["recipients"] as Array<string> | undefined) ?? []).join(", "))
    setError(undefined)
    setOpen(true)
  }

  const save = async (event: SubmitEvent) => {
    event.preventDefault()
    setError(undefined)
    const spec = KINDS[kind()]!
    const params: Record<string, unknown> = {}
    if (spec.param !== undefined) params[spec.param.name] = Number(param() || spec.param.fallback)
    const fields = {
      name: name(),
      params,
      recipients: recipients()
        .split(/[,\s]+/)
        .filter((r) => r !== "")
    }
    try {
      const rule = editing()
      if (rule === undefined) await post("/alerts/rules", { ...fields, kind: kind() })
      else await patch(`/alerts/rules/${rule.id}`, fields)
      toast("success", rule === undefined ? "Rule created" : "Rule saved")
      setOpen(false)
      void refetch()
    } catch (failure) {
      setError(failure as ApiError)
    }
  }
  const toggle = async (rule: AlertRule, enabled: boolean) => {
    try {
      await patch(`/alerts/rules/${rule.id}`, { enabled })
      void refetch()
    } catch (failure) {
      toastError("Could not change the rule", failure)
    }
  }

  return (
    <>
      <Show when={can("admin")}>
        <div class="mb-3">
          <Button onClick={startCreate}>New rule</Button>
        </div>
      </Show>
      <Show when={rules() !== undefined} fallback={<Skeleton rows={3} />}>
        <Show when={rules()!.length > 0} fallback={<EmptyState title="No alert rules">Create one to be told when devices go offline or run low.</EmptyState>}>
          <div class="grid gap-3 md:grid-cols-2">
            <For each={rules()}>
              {(rule) => (
                <Card
                  title={rule.name}
                  actions={
                    <Show when={can("admin")}>
                      <div class="flex items-center gap-2">
                        <Checkbox label="Enabled" checked={rule.enabled} onChange={(on) => void toggle(rule, on)} />
                        <Button size="sm" variant="ghost" onClick={() => startEdit(rule)}>
                          Edit
                        </Button>
                        <Button
                          size="sm"
                          variant="ghost"
                          onClick={async () => {
                            try {
                              await del(`/alerts/rules/${rule.id}`)
                              void refetch()
                            } catch (failure) {
                              toastError("Could not delete", failure)
                            }
                          }}
                        >
                          Delete
                        </Button>
                      </div>
                    </Show>
                  }
                >
                  <p class="text-sm">
                    {KINDS[rule.kind]?.label ?? rule.kind} <span class="font-mono text-xs text-slate-500">{JSON.stringify(rule.params)}</span>
                  </p>
                  <p class="text-xs text-slate-500">Mails: {((rule["recipients"] as Array<string> | undefined) ?? []).join(", ") || "none"}</p>
                </Card>
              )}
            </For>
          </div>
        </Show>
      </Show>
      <Dialog open={open()} onOpenChange={setOpen} title={editing() === undefined ? "New alert rule" : `Edit "${editing()!.name}"`}>
        <form class="flex flex-col gap-3" onSubmit={save} noValidate>
          <Field label="Name" name="name" value={name()} onInput={setName} error={error()?.fieldError("name")} />
          <Show
            when={editing() === undefined}
            fallback={<p class="text-sm">When: {KINDS[kind()]?.label ?? kind()} (a rule's kind does not change: create another rule)</p>}
          >
            <SelectField label="When" name="kind" value={kind()} onChange={setKind} options={Object.entries(KINDS).map(([value, spec]) => ({ value, label: spec.label }))} />
          </Show>
          <Show when={KINDS[kind()]?.param}>
            {(spec) => <Field label={spec().label} name="param" type="number" value={param()} onInput={setParam} placeholder={spec().fallback} error={error()?.fieldError("params")} />}
          </Show>
          <Field label="Mail to" name="recipients" value={recipients()} onInput={setRecipients} placeholder="ops@example.com" error={error()?.fieldError("recipients")} />
          <Show when={error() !== undefined && error()!.issues.length === 0}>
            <p class="text-sm text-red-600">{error()!.message}</p>
          </Show>
          <div>
            <Button type="submit">{editing() === undefined ? "Create rule" : "Save rule"}</Button>
          </div>
        </form>
      </Dialog>
    </>
  )
}
